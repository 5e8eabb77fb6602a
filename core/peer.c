/* SPDX-License-Identifier: MIT */
/* The daemons' peer link: key, handshake, decoders (core/peer.h). */
#include "peer.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "remote.h"
#include "util.h"

#define WHY(...) (why ? (void)snprintf(why, whylen, __VA_ARGS__) : (void)0)

int cv_peer_key_load(const char *path, uint8_t key[CV_PEER_KEY_LEN],
		     char *why, size_t whylen)
{
	char buf[2 * CV_PEER_KEY_LEN + 3];
	struct stat st;
	ssize_t n;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		rc = -errno;
		WHY("%s: %s", path, strerror(errno));
		return rc;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		WHY("%s: not a regular file", path);
		rc = -EINVAL;
	} else if (st.st_uid != geteuid() || (st.st_mode & 077)) {
		WHY("%s: must be ours and neither group nor others may read "
		    "or write it (chmod 600)", path);
		rc = -EPERM;
	}
	n = rc ? 0 : read(fd, buf, sizeof(buf));
	close(fd);
	if (rc)
		return rc;
	if (n == 2 * CV_PEER_KEY_LEN + 1 && buf[n - 1] == '\n')
		n--;
	if (n != 2 * CV_PEER_KEY_LEN) {
		WHY("%s: the key is %d hex digits, nothing else", path,
		    2 * CV_PEER_KEY_LEN);
		return -EINVAL;
	}
	rc = cv_unhex(buf, CV_PEER_KEY_LEN, key);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (rc) {
		OPENSSL_cleanse(key, CV_PEER_KEY_LEN);
		WHY("%s: the key is %d hex digits, nothing else", path,
		    2 * CV_PEER_KEY_LEN);
	}
	return rc;
}

/* The n bytes at s into out (size bytes, terminated); -EINVAL when too
 * long. */
static int part(char *out, size_t size, const char *s, size_t n)
{
	if (n >= size)
		return -EINVAL;
	memcpy(out, s, n);
	out[n] = 0;
	return 0;
}

int cv_peer_addr_split(const char *s, bool bare_is_port, char *host,
		       size_t hsize, char *port, size_t psize)
{
	const char *c;

	host[0] = port[0] = 0;
	if (s[0] == '[') {
		c = strchr(s, ']');
		if (!c || (c[1] && c[1] != ':'))
			return -EINVAL;
		return part(host, hsize, s + 1, (size_t)(c - s - 1)) ?:
		       part(port, psize, c[1] ? c + 2 : "",
			    c[1] ? strlen(c + 2) : 0);
	}
	c = strrchr(s, ':');
	if (c && strchr(s, ':') != c) /* a bare IPv6 address */
		return part(host, hsize, s, strlen(s));
	if (c)
		return part(host, hsize, s, (size_t)(c - s)) ?:
		       part(port, psize, c + 1, strlen(c + 1));
	return bare_is_port ? part(port, psize, s, strlen(s)) :
			      part(host, hsize, s, strlen(s));
}

int cv_peer_hello_make(struct cv_peer_hello *h, uint32_t role,
		       const char *host)
{
	memset(h, 0, sizeof(*h));
	h->magic = CV_PEER_MAGIC;
	h->version = CV_PEER_VERSION;
	h->role = role;
	snprintf(h->host, sizeof(h->host), "%s", host ? host : "");
	return RAND_bytes(h->nonce, sizeof(h->nonce)) == 1 ? 0 : -EIO;
}

int cv_peer_hello_check(const void *p, size_t len, uint32_t our_role,
			struct cv_peer_hello *out, const char **why)
{
	size_t i;

	if (len != sizeof(*out)) {
		*why = "a HELLO of the wrong size";
		return -EBADMSG;
	}
	memcpy(out, p, sizeof(*out));
	if (out->magic != CV_PEER_MAGIC) {
		*why = "not a cuvisor peer";
		return -EBADMSG;
	}
	if (out->version != CV_PEER_VERSION) {
		*why = "a cuvisor peer of another version";
		return -EBADMSG;
	}
	if (out->role != (our_role == CV_PEER_CLIENT ? CV_PEER_SERVER :
						       CV_PEER_CLIENT)) {
		*why = "a HELLO of the wrong role";
		return -EBADMSG;
	}
	for (i = 0; i < sizeof(out->host) && out->host[i]; i++)
		if ((unsigned char)out->host[i] < 0x21 ||
		    (unsigned char)out->host[i] > 0x7e)
			break;
	if (i == sizeof(out->host) || out->host[i]) {
		*why = "a host name that is not printable or not terminated";
		return -EBADMSG;
	}
	return 0;
}

void cv_peer_mac(const uint8_t key[CV_PEER_KEY_LEN],
		 const struct cv_peer_hello *self,
		 const struct cv_peer_hello *other,
		 uint8_t mac[CV_PEER_MAC_LEN])
{
	static const char label[] = "cuvisor peer v1";
	uint8_t msg[sizeof(label) + 4 + 2 * CV_PEER_NONCE_LEN +
		    CV_PEER_HOST_LEN];
	unsigned int n = CV_PEER_MAC_LEN;
	size_t off = 0;

	memcpy(msg + off, label, sizeof(label));
	off += sizeof(label);
	memcpy(msg + off, &self->role, 4);
	off += 4;
	memcpy(msg + off, self->nonce, CV_PEER_NONCE_LEN);
	off += CV_PEER_NONCE_LEN;
	memcpy(msg + off, other->nonce, CV_PEER_NONCE_LEN);
	off += CV_PEER_NONCE_LEN;
	memcpy(msg + off, self->host, CV_PEER_HOST_LEN);
	off += CV_PEER_HOST_LEN;
	if (!HMAC(EVP_sha256(), key, CV_PEER_KEY_LEN, msg, off, mac, &n))
		memset(mac, 0, CV_PEER_MAC_LEN); /* matches no real MAC */
}

int cv_peer_auth_ok(const uint8_t key[CV_PEER_KEY_LEN],
		    const struct cv_peer_hello *self,
		    const struct cv_peer_hello *other,
		    const struct cv_peer_auth *auth)
{
	uint8_t want[CV_PEER_MAC_LEN], zero[CV_PEER_MAC_LEN] = { 0 };

	/* what the sender of other proves to us, the sender of self */
	cv_peer_mac(key, other, self, want);
	return !CRYPTO_memcmp(want, auth->mac, sizeof(want)) &&
	       CRYPTO_memcmp(want, zero, sizeof(zero));
}

int cv_peer_info_check(const void *p, size_t len, struct cv_peer_info *out,
		       const char **why)
{
	uint32_t i;

	if (len != sizeof(*out)) {
		*why = "an INFO of the wrong size";
		return -EBADMSG;
	}
	memcpy(out, p, sizeof(*out));
	if (out->version != CV_PEER_VERSION || out->ngpus > CV_PEER_MAX_GPUS) {
		*why = "an INFO of another version or with too many GPUs";
		return -EBADMSG;
	}
	if (!memchr(out->host, 0, sizeof(out->host))) {
		*why = "an INFO whose host name is not terminated";
		return -EBADMSG;
	}
	for (i = 0; i < out->ngpus; i++)
		if (!memchr(out->gpu[i].name, 0, sizeof(out->gpu[i].name))) {
			*why = "an INFO whose GPU name is not terminated";
			return -EBADMSG;
		}
	return 0;
}

int cv_peer_vgpu_check(const void *p, size_t len, struct cv_peer_vgpu *out,
		       const char **why)
{
	if (len != sizeof(*out)) {
		*why = "a VGPU request of the wrong size";
		return -EBADMSG;
	}
	memcpy(out, p, sizeof(*out));
	if (out->version != CV_RM_VERSION) {
		*why = "a VGPU request of another version";
		return -EBADMSG;
	}
	if (out->timeout_ms < 1000 || out->timeout_ms > 3600000 ||
	    !out->quota || out->gpu > 1024) {
		*why = "a VGPU request out of range";
		return -EBADMSG;
	}
	return 0;
}

int cv_peer_addr_key(const struct sockaddr *sa, socklen_t len,
		     uint8_t key[16])
{
	const struct sockaddr_in *v4 = (const struct sockaddr_in *)sa;
	const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;

	memset(key, 0, 16);
	if (sa->sa_family == AF_INET && len >= sizeof(*v4)) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &v4->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family != AF_INET6 || len < sizeof(*v6))
		return -EAFNOSUPPORT;
	if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
		memcpy(key, &v6->sin6_addr, 16);
		return 0;
	}
	memcpy(key, &v6->sin6_addr, 8);
	return 0;
}

int cv_peer_pending_admit(const struct cv_peer_pending *tab, int n,
			  int per_addr, const uint8_t key[16], int *evict)
{
	int i, same = 0, old_same = -1, old_any = -1, free_slot = -1;

	for (i = 0; i < n; i++) {
		if (!tab[i].used) {
			if (free_slot < 0)
				free_slot = i;
			continue;
		}
		if (old_any < 0 || tab[i].since < tab[old_any].since)
			old_any = i;
		if (memcmp(tab[i].addr, key, 16))
			continue;
		same++;
		if (old_same < 0 || tab[i].since < tab[old_same].since)
			old_same = i;
	}
	*evict = -1;
	if (same >= per_addr && old_same >= 0)
		*evict = old_same;
	else if (free_slot < 0)
		*evict = old_any;
	return *evict >= 0 ? *evict : free_slot;
}

int cv_peer_poll_ms = 60000;

static int wait_fd(int fd, short events, uint64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	uint64_t now = cv_now_ns();
	int n;

	if (now >= deadline)
		return -ETIMEDOUT;
	n = poll(&p, 1, (int)CV_MIN((deadline - now + 999999) / 1000000,
				    (uint64_t)cv_peer_poll_ms));
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	/* A long wait is done a poll at a time (an idle copy lane waits
	 * without a deadline): only the deadline ends it. */
	return n || cv_now_ns() < deadline ? 0 : -ETIMEDOUT;
}

int cv_peer_write(int fd, const void *p, size_t n, uint64_t deadline)
{
	const uint8_t *b = p;
	ssize_t k;
	int rc;

	while (n) {
		k = send(fd, b, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k > 0) {
			b += k;
			n -= (size_t)k;
			continue;
		}
		if (k < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		rc = wait_fd(fd, POLLOUT, deadline);
		if (rc)
			return rc;
	}
	return 0;
}

int cv_peer_read(int fd, void *p, size_t n, uint64_t deadline)
{
	return cv_peer_read_spin(fd, p, n, deadline, 0);
}

int cv_peer_read_spin(int fd, void *p, size_t n, uint64_t deadline,
		      uint64_t spin_ns)
{
	uint64_t t0 = 0;
	uint8_t *b = p;
	ssize_t k;
	int rc;

	while (n) {
		k = recv(fd, b, n, MSG_DONTWAIT);
		if (k > 0) {
			b += k;
			n -= (size_t)k;
			continue;
		}
		if (k == 0)
			return -ECONNRESET;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		if (spin_ns) {
			if (!t0)
				t0 = cv_now_ns();
			if (cv_now_ns() - t0 < spin_ns) {
				cv_cpu_relax();
				continue;
			}
		}
		rc = wait_fd(fd, POLLIN, deadline);
		if (rc)
			return rc;
	}
	return 0;
}

void cv_peer_session_key(const uint8_t key[CV_PEER_KEY_LEN],
			 const struct cv_peer_hello *a,
			 const struct cv_peer_hello *b,
			 uint8_t out[CV_PEER_KEY_LEN])
{
	static const char label[] = "cuvisor session v1";
	const struct cv_peer_hello *c = a->role == CV_PEER_CLIENT ? a : b;
	const struct cv_peer_hello *s = c == a ? b : a;
	uint8_t msg[sizeof(label) + 2 * CV_PEER_NONCE_LEN];
	unsigned int n = CV_PEER_KEY_LEN;

	memcpy(msg, label, sizeof(label));
	memcpy(msg + sizeof(label), c->nonce, CV_PEER_NONCE_LEN);
	memcpy(msg + sizeof(label) + CV_PEER_NONCE_LEN, s->nonce,
	       CV_PEER_NONCE_LEN);
	if (!HMAC(EVP_sha256(), key, CV_PEER_KEY_LEN, msg, sizeof(msg), out, &n))
		RAND_bytes(out, CV_PEER_KEY_LEN); /* agrees with nobody */
}

int cv_peer_handshake(int fd, const uint8_t key[CV_PEER_KEY_LEN],
		      uint32_t role, const char *host, int timeout_ms,
		      struct cv_peer_hello *peer, char *why, size_t whylen)
{
	return cv_peer_handshake_s(fd, key, role, host, timeout_ms, peer, why,
				   whylen, NULL);
}

int cv_peer_handshake_s(int fd, const uint8_t key[CV_PEER_KEY_LEN],
			uint32_t role, const char *host, int timeout_ms,
			struct cv_peer_hello *peer, char *why, size_t whylen,
			uint8_t session[CV_PEER_KEY_LEN])
{
	uint64_t deadline = cv_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	struct cv_peer_hello me;
	struct cv_peer_auth mine, theirs;
	uint8_t raw[sizeof(struct cv_peer_hello)];
	const char *bad = NULL;
	int rc;

	rc = cv_peer_hello_make(&me, role, host);
	if (rc) {
		WHY("no randomness for a nonce");
		return rc;
	}
	rc = cv_peer_write(fd, &me, sizeof(me), deadline);
	if (!rc)
		rc = cv_peer_read(fd, raw, sizeof(raw), deadline);
	if (rc) {
		WHY("the peer's HELLO: %s", strerror(-rc));
		return rc;
	}
	rc = cv_peer_hello_check(raw, sizeof(raw), role, peer, &bad);
	if (rc) {
		WHY("%s", bad);
		return rc;
	}
	cv_peer_mac(key, &me, peer, mine.mac);
	rc = cv_peer_write(fd, &mine, sizeof(mine), deadline);
	if (!rc)
		rc = cv_peer_read(fd, &theirs, sizeof(theirs), deadline);
	OPENSSL_cleanse(&mine, sizeof(mine));
	if (rc) {
		WHY("the peer's AUTH: %s", strerror(-rc));
		return rc;
	}
	if (!cv_peer_auth_ok(key, &me, peer, &theirs)) {
		WHY("the peer \"%s\" does not hold our key", peer->host);
		return -EACCES;
	}
	if (session)
		cv_peer_session_key(key, &me, peer, session);
	return 0;
}

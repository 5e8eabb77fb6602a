/* SPDX-License-Identifier: MIT */
/*
 * Control protocol transport: one message per SOCK_SEQPACKET datagram,
 * fds as SCM_RIGHTS. See ctl.h for the contract; the per-type payload
 * checks live with the receivers (daemon/msg.c for the daemon).
 */
#include "ctl.h"

#include <errno.h>
#include <libgen.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the control protocol is little-endian; add byte swapping"
#endif

#define CV_ERRNO_MAX 4095

int cv_ctl_hdr_check(const struct cv_ctl_hdr *hdr, size_t dgram_len)
{
	if (dgram_len < sizeof(*hdr))
		return -EBADMSG;
	if (dgram_len > CV_CTL_MAX)
		return -EMSGSIZE;
	if (hdr->magic != CV_CTL_MAGIC || hdr->flags != 0)
		return -EBADMSG;
	if (hdr->status > 0 || hdr->status < -CV_ERRNO_MAX)
		return -EBADMSG;
	if (hdr->len != dgram_len - sizeof(*hdr))
		return -EBADMSG;
	return (int)hdr->len;
}

int cv_ctl_ckpt_check(const struct cv_ctl_ckpt *ck, int nfds, bool keep_ok,
		      const char **why)
{
	const char *n = ck->name;
	size_t len = strnlen(n, sizeof(ck->name)), i;
	bool named = ck->flags & CV_CKPT_NAME;

	*why = NULL;
	if (ck->flags & ~(CV_CKPT_STOP | CV_CKPT_NAME | CV_CKPT_KEEP))
		*why = "unknown checkpoint flags";
	else if ((ck->flags & CV_CKPT_KEEP) &&
		 (!keep_ok || named || !(ck->flags & CV_CKPT_STOP)))
		*why = "only the daemon's move keeps its image with the holder";
	else if (ck->level < 0 || ck->level > CV_CKPT_LEVEL_MAX)
		*why = "a compression level out of range";
	else if (nfds != (named ? 2 : 1))
		*why = "a checkpoint carries the image's fd, and with a name "
		       "its directory's";
	else if (len == sizeof(ck->name))
		*why = "the image's name is not NUL-ended";
	else if (named != (len > 0))
		*why = "a name without CV_CKPT_NAME, or the flag without one";
	else if (memchr(n, '/', len) || !strcmp(n, ".") || !strcmp(n, ".."))
		*why = "the image's name is not one path component";
	for (i = len; !*why && i < sizeof(ck->name); i++)
		if (n[i])
			*why = "bytes after the image's name";
	return *why ? -EINVAL : 0;
}

int cv_ctl_send(int sock, uint16_t type, int32_t status, const void *payload,
		uint32_t len, const int *fds, int nfds)
{
	struct cv_ctl_hdr hdr = {
		.magic = CV_CTL_MAGIC, .type = type, .len = len,
		.status = status,
	};
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * CV_CTL_MAX_FDS)];
	} cbuf;
	struct iovec iov[2] = {
		{ .iov_base = &hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = (void *)payload, .iov_len = len },
	};
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
	struct cmsghdr *cm;
	ssize_t n;

	if (len > CV_CTL_MAX - sizeof(hdr))
		return -EMSGSIZE;
	if ((len && !payload) || nfds < 0 || nfds > CV_CTL_MAX_FDS ||
	    (nfds && !fds))
		return -EINVAL;
	if (nfds) {
		memset(&cbuf, 0, sizeof(cbuf));
		msg.msg_control = cbuf.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
	}
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	/* SOCK_SEQPACKET sends a datagram whole or not at all. */
	if ((size_t)n != sizeof(hdr) + len)
		return -EIO;
	return 0;
}

static void close_fds(int *fds, int n)
{
	int i;

	for (i = 0; i < n; i++)
		close(fds[i]);
}

/* Waits until sock is readable; 0, -ETIMEDOUT or -errno. */
static int wait_readable(int sock, int timeout_ms)
{
	struct pollfd p = { .fd = sock, .events = POLLIN };
	uint64_t deadline = cv_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	uint64_t now;
	int r;

	for (;;) {
		r = poll(&p, 1, timeout_ms);
		if (r > 0)
			return 0; /* readable, or HUP/ERR: recvmsg tells */
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
		now = cv_now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		timeout_ms = (int)((deadline - now + 999999) / 1000000);
	}
}

/*
 * Moves the SCM_RIGHTS fds of msg into got[] (at most CV_CTL_MAX_FDS; the
 * control buffer holds no more) and returns how many.
 */
static int take_fds(struct msghdr *msg, int *got)
{
	struct cmsghdr *cm;
	size_t k, n;
	int ngot = 0;

	for (cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET ||
		    cm->cmsg_type != SCM_RIGHTS ||
		    cm->cmsg_len < CMSG_LEN(0))
			continue;
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (k = 0; k < n && ngot < CV_CTL_MAX_FDS; k++)
			memcpy(&got[ngot++], CMSG_DATA(cm) + k * sizeof(int),
			       sizeof(int));
	}
	return ngot;
}

int cv_ctl_recv(int sock, struct cv_ctl_hdr *hdr, void *buf, uint32_t bufsize,
		int *fds, int *nfds, int timeout_ms)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * CV_CTL_MAX_FDS)];
	} cbuf;
	struct iovec iov[2] = {
		{ .iov_base = hdr, .iov_len = sizeof(*hdr) },
		{ .iov_base = buf, .iov_len = buf ? bufsize : 0 },
	};
	struct msghdr msg = {
		.msg_iov = iov, .msg_iovlen = 2,
		.msg_control = cbuf.buf, .msg_controllen = sizeof(cbuf.buf),
	};
	int got[CV_CTL_MAX_FDS];
	int cap = (fds && nfds) ? *nfds : 0;
	int ngot = 0, r;
	ssize_t n;

	if (nfds)
		*nfds = 0;
	if (timeout_ms >= 0) {
		r = wait_readable(sock, timeout_ms);
		if (r < 0)
			return r;
	}
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	ngot = take_fds(&msg, got);
	if (n == 0) {
		r = -ECONNRESET;
		goto fail;
	}
	if (msg.msg_flags & MSG_TRUNC) {
		r = -EMSGSIZE;
		goto fail;
	}
	if ((msg.msg_flags & MSG_CTRUNC) || ngot > cap) {
		r = -EBADMSG;
		goto fail;
	}
	r = cv_ctl_hdr_check(hdr, (size_t)n);
	if (r < 0)
		goto fail;
	if (ngot)
		memcpy(fds, got, sizeof(int) * (size_t)ngot);
	if (nfds)
		*nfds = ngot;
	return r;
fail:
	close_fds(got, ngot);
	return r;
}

/* Writes "<dir>/cuvisord.sock" into buf; 0 or -ENAMETOOLONG. */
static int sock_in(char *buf, size_t size, const char *fmt, const char *a,
		   unsigned u)
{
	struct sockaddr_un sa;
	int n;

	n = a ? snprintf(buf, size, fmt, a) : snprintf(buf, size, fmt, u);
	if (n < 0 || (size_t)n >= size || (size_t)n >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	return 0;
}

int cv_ctl_default_path(char *buf, size_t size)
{
	const char *env = getenv("CUVISOR_SOCKET");
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	if (env && *env)
		return sock_in(buf, size, "%s", env, 0);
	if (geteuid() == 0)
		return sock_in(buf, size, "%s", "/run/cuvisor/cuvisord.sock",
			       0);
	if (xdg && xdg[0] == '/')
		return sock_in(buf, size, "%s/cuvisor/cuvisord.sock", xdg, 0);
	return sock_in(buf, size, "/tmp/cuvisor-%u/cuvisord.sock", NULL,
		       (unsigned)geteuid());
}

int cv_ctl_refusal(const struct cv_ctl_hdr *h, const void *p, int n,
		   uint16_t type, char *why, size_t size)
{
	struct cv_ctl_refused r;
	size_t i;

	if (h->status >= 0 || n != (int)sizeof(r) ||
	    (h->type != (CV_CTL_REFUSED | CV_CTL_REPLY) &&
	     h->type != (type | CV_CTL_REPLY)))
		return 0;
	memcpy(&r, p, sizeof(r));
	r.msg[sizeof(r.msg) - 1] = 0;
	for (i = 0; r.msg[i]; i++)
		if ((unsigned char)r.msg[i] < 0x20 ||
		    (unsigned char)r.msg[i] > 0x7e)
			r.msg[i] = '?';
	if (why && size)
		snprintf(why, size, "%s", r.msg);
	return h->status;
}

int cv_ctl_refusal_after(int fd, int rc, char *why, size_t size)
{
	uint8_t buf[sizeof(struct cv_ctl_refused)];
	struct cv_ctl_hdr h;
	int i, n, r;

	if (rc != -EPIPE && rc != -ECONNRESET)
		return rc;
	/* An error the close left on the socket comes first (it is read
	 * once), then what the daemon sent before closing. */
	for (i = 0; i < 2; i++) {
		n = cv_ctl_recv(fd, &h, buf, sizeof(buf), NULL, NULL, 0);
		if (n >= 0) {
			r = cv_ctl_refusal(&h, buf, n, CV_CTL_REFUSED, why,
					   size);
			return r ? r : rc;
		}
		if (n != -ECONNRESET)
			break;
	}
	return rc;
}

int cv_ctl_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(path);
	int fd, r;

	if (len == 0)
		return -EINVAL;
	if (len >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, len + 1);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

/* ---- whom we take for the daemon (see ctl.h) ----------------------- */

static bool uid_trusted(uint32_t uid, uint32_t extra)
{
	return uid == (uint32_t)geteuid() || uid == 0 ||
	       (extra != CV_CTL_UID_NONE && uid == extra);
}

/* " or uid N" when another uid is trusted, else "". */
static const char *extra_str(uint32_t extra, char *buf, size_t size)
{
	buf[0] = 0;
	if (extra != CV_CTL_UID_NONE)
		snprintf(buf, size, ", uid %u (CUVISOR_DAEMON_UID)", extra);
	return buf;
}

/* Refuses ("<what> uid N, not us..."): fills t->owner and t->why;
 * returns -EPERM. */
static int refuse(struct cv_ctl_trust *t, uint32_t owner, uint32_t extra,
		  const char *path, const char *what)
{
	char ex[64];

	t->owner = owner;
	snprintf(t->why, sizeof(t->why), "refusing the daemon at %s: %s "
		 "uid %u, not us (uid %u)%s or root; another user may be "
		 "impersonating the daemon", path, what, owner,
		 (unsigned)geteuid(), extra_str(extra, ex, sizeof(ex)));
	return -EPERM;
}

int cv_ctl_trust_dir(const char *path, uint32_t extra, struct cv_ctl_trust *t)
{
	char buf[sizeof(((struct sockaddr_un *)0)->sun_path)], what[160];
	struct stat l, st;
	const char *dir;

	snprintf(buf, sizeof(buf), "%s", path);
	dir = dirname(buf);
	snprintf(what, sizeof(what), "its directory %s is owned by", dir);
	/* lstat: a symlink planted in /tmp is the planter's, whatever it
	 * points to; then the directory itself. */
	if (lstat(dir, &l) < 0 || stat(dir, &st) < 0) {
		snprintf(t->why, sizeof(t->why), "no cuvisor daemon at %s "
			 "(%s: %s)", path, dir, strerror(errno));
		return -errno;
	}
	if (!uid_trusted(l.st_uid, extra))
		return refuse(t, l.st_uid, extra, path, what);
	if (!uid_trusted(st.st_uid, extra))
		return refuse(t, st.st_uid, extra, path, what);
	if (!S_ISDIR(st.st_mode)) {
		snprintf(t->why, sizeof(t->why), "refusing the daemon at %s: "
			 "%s is not a directory", path, dir);
		return -EPERM;
	}
	if (st.st_mode & 022) {
		snprintf(t->why, sizeof(t->why), "refusing the daemon at %s: "
			 "its directory %s (uid %u, mode %04o) is writable by "
			 "others, who could replace the socket", path, dir,
			 (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

int cv_ctl_trust_peer(int fd, const char *path, uint32_t extra,
		      struct cv_ctl_trust *t)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 ||
	    len != sizeof(cr)) {
		snprintf(t->why, sizeof(t->why), "refusing the daemon at %s: "
			 "cannot tell who runs it (SO_PEERCRED: %s)", path,
			 strerror(errno));
		return -EPERM;
	}
	if (!uid_trusted(cr.uid, extra))
		return refuse(t, cr.uid, extra, path, "it runs as");
	return 0;
}

/* CUVISOR_DAEMON_UID, honoured only for a socket named explicitly. */
static int extra_uid(struct cv_ctl_trust *t, uint32_t *extra)
{
	const char *s = getenv("CUVISOR_DAEMON_UID");
	unsigned long v;
	char *end;

	*extra = CV_CTL_UID_NONE;
	if (!s || !*s || !t->named)
		return 0;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || *s < '0' || *s > '9' || v >= CV_CTL_UID_NONE) {
		snprintf(t->why, sizeof(t->why), "CUVISOR_DAEMON_UID='%s' is "
			 "not a uid", s);
		return -EINVAL;
	}
	*extra = (uint32_t)v;
	return 0;
}

int cv_ctl_connect_daemon(const char *path, struct cv_ctl_trust *t)
{
	struct stat st;
	uint32_t extra;
	int fd, r;

	t->owner = CV_CTL_UID_NONE;
	t->why[0] = 0;
	r = extra_uid(t, &extra);
	if (r)
		return r;
	r = cv_ctl_trust_dir(path, extra, t);
	if (r == -EPERM && lstat(path, &st) < 0 && errno == ENOENT) {
		/* Nothing there to refuse: say "no daemon", as before. */
		snprintf(t->why, sizeof(t->why), "no cuvisor daemon at %s (%s)",
			 path, strerror(ENOENT));
		t->owner = CV_CTL_UID_NONE;
		return -ENOENT;
	}
	if (r)
		return r;
	fd = cv_ctl_connect(path);
	if (fd < 0) {
		snprintf(t->why, sizeof(t->why), "no cuvisor daemon at %s (%s)",
			 path, strerror(-fd));
		return fd;
	}
	r = cv_ctl_trust_peer(fd, path, extra, t);
	if (r) {
		close(fd);
		return r;
	}
	return fd;
}

static int suffix_shift(const char *s, unsigned *shift)
{
	static const char units[] = "KMGT";
	const char *u;

	*shift = 0;
	if (!*s)
		return 0;
	u = strchr(units, *s & ~0x20);
	if (!u || !*u)
		return -EINVAL;
	*shift = 10u * (unsigned)(u - units + 1);
	s++;
	if (!strcmp(s, "") || !strcmp(s, "B") || !strcmp(s, "iB"))
		return 0;
	return -EINVAL;
}

int cv_ctl_parse_size(const char *s, uint64_t *out)
{
	uint64_t whole = 0, frac = 0, scale = 1, v, f;
	unsigned shift;
	int digits = 0;

	for (; *s >= '0' && *s <= '9'; s++, digits++) {
		if (__builtin_mul_overflow(whole, 10, &whole) ||
		    __builtin_add_overflow(whole, (uint64_t)(*s - '0'), &whole))
			return -ERANGE;
	}
	if (*s == '.') {
		for (s++; *s >= '0' && *s <= '9'; s++, digits++) {
			if (scale >= 1000000ull)
				continue; /* more digits than matter */
			frac = frac * 10 + (uint64_t)(*s - '0');
			scale *= 10;
		}
	}
	if (!digits || suffix_shift(s, &shift) < 0)
		return -EINVAL;
	if (shift && whole >> (64 - shift))
		return -ERANGE;
	v = whole << shift;
	/* frac < 10^6 < 2^20 and shift <= 40: frac << shift cannot wrap. */
	f = (frac << shift) / scale;
	if (__builtin_add_overflow(v, f, &v))
		return -ERANGE;
	*out = v;
	return 0;
}

char *cv_ctl_fmt_size(uint64_t bytes, char *buf, size_t size)
{
	static const char units[] = "KMGTPE";
	unsigned i = 0;
	double v;

	if (bytes < 1024) {
		snprintf(buf, size, "%lluB", (unsigned long long)bytes);
		return buf;
	}
	v = (double)bytes / 1024.0;
	while (v >= 1023.95 && i + 1 < sizeof(units) - 1) {
		v /= 1024.0;
		i++;
	}
	snprintf(buf, size, "%.1f%c", v, units[i]);
	return buf;
}

/* SPDX-License-Identifier: MIT */
/*
 * The peer link's key file, handshake and decoders (core/peer.h): two
 * ends of a socketpair run the handshake on two threads, with the same
 * key, different keys, the wrong roles, a tampered proof and a peer that
 * says nothing; the key file's refusals; HELLO and INFO decoding.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/peer.h"
#include "../core/util.h"
#include "unit.h"

struct side {
	int fd;
	uint8_t key[CV_PEER_KEY_LEN];
	uint32_t role;
	int rc;
	struct cv_peer_hello peer;
	char why[160];
};

static void *side_main(void *arg)
{
	struct side *s = arg;

	s->rc = cv_peer_handshake(s->fd, s->key, s->role,
				  s->role == CV_PEER_CLIENT ? "alpha" : "beta",
				  2000, &s->peer, s->why, sizeof(s->why));
	return NULL;
}

/* Runs both sides; a and b get the results. */
static void pair(struct side *a, struct side *b)
{
	int sv[2];
	pthread_t ta, tb;

	CHECK(!socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), "socketpair");
	a->fd = sv[0];
	b->fd = sv[1];
	pthread_create(&ta, NULL, side_main, a);
	pthread_create(&tb, NULL, side_main, b);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	close(sv[0]);
	close(sv[1]);
}

static void test_handshake(void)
{
	struct side a = { .role = CV_PEER_CLIENT }, b = { .role = CV_PEER_SERVER };

	memset(a.key, 7, sizeof(a.key));
	memset(b.key, 7, sizeof(b.key));
	pair(&a, &b);
	CHECK(a.rc == 0 && b.rc == 0, "same key: both authenticated (%d %d: "
	      "%s / %s)", a.rc, b.rc, a.why, b.why);
	CHECK(!strcmp(a.peer.host, "beta") && !strcmp(b.peer.host, "alpha"),
	      "each learns the other's name");

	b.key[31] ^= 1;
	pair(&a, &b);
	CHECK(a.rc == -EACCES && b.rc == -EACCES, "keys differing in one bit: "
	      "both refuse (%d %d)", a.rc, b.rc);
	CHECK(strstr(a.why, "does not hold our key") != NULL, "and say so: %s",
	      a.why);

	b.key[31] ^= 1;
	b.role = CV_PEER_CLIENT;
	pair(&a, &b);
	CHECK(a.rc == -EBADMSG && b.rc == -EBADMSG, "two clients: refused as "
	      "the wrong role (%d %d)", a.rc, b.rc);
}

/* A peer that sends a HELLO, then our own proof back (a reflection). */
static void test_reflection(void)
{
	uint8_t key[CV_PEER_KEY_LEN];
	struct cv_peer_hello me, them;
	struct cv_peer_auth a;

	memset(key, 9, sizeof(key));
	CHECK(!cv_peer_hello_make(&me, CV_PEER_SERVER, "s"), "a HELLO");
	CHECK(!cv_peer_hello_make(&them, CV_PEER_CLIENT, "c"), "another");
	cv_peer_mac(key, &them, &me, a.mac);
	CHECK(cv_peer_auth_ok(key, &me, &them, &a), "the right proof passes");
	cv_peer_mac(key, &me, &them, a.mac);
	CHECK(!cv_peer_auth_ok(key, &me, &them, &a), "our own proof sent back "
	      "fails");
	cv_peer_mac(key, &them, &me, a.mac);
	a.mac[0] ^= 0x80;
	CHECK(!cv_peer_auth_ok(key, &me, &them, &a), "a flipped bit fails");
	them.nonce[3] ^= 1;
	cv_peer_mac(key, &them, &me, a.mac);
	them.nonce[3] ^= 1;
	CHECK(!cv_peer_auth_ok(key, &me, &them, &a), "a proof for another "
	      "nonce fails");
}

/* A peer that connects and says nothing: the handshake times out. */
static void test_silent(void)
{
	uint8_t key[CV_PEER_KEY_LEN] = { 0 };
	struct cv_peer_hello peer;
	char why[160];
	int sv[2], rc;

	CHECK(!socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), "socketpair");
	rc = cv_peer_handshake(sv[0], key, CV_PEER_SERVER, "s", 200, &peer,
			       why, sizeof(why));
	CHECK(rc == -ETIMEDOUT, "a silent peer times out (%d: %s)", rc, why);
	close(sv[1]);
	rc = cv_peer_handshake(sv[0], key, CV_PEER_SERVER, "s", 200, &peer,
			       why, sizeof(why));
	CHECK(rc == -ECONNRESET || rc == -EPIPE, "a peer gone: %d (%s)", rc,
	      why);
	close(sv[0]);
}

static void test_decoders(void)
{
	struct cv_peer_hello h, out;
	struct cv_peer_info in, o;
	const char *why;

	CHECK(!cv_peer_hello_make(&h, CV_PEER_CLIENT, "host-1"), "a HELLO");
	CHECK(cv_peer_hello_check(&h, sizeof(h), CV_PEER_SERVER, &out, &why) ==
	      0, "a good HELLO");
	CHECK(cv_peer_hello_check(&h, sizeof(h) - 1, CV_PEER_SERVER, &out,
				  &why) == -EBADMSG, "short");
	CHECK(cv_peer_hello_check(&h, sizeof(h), CV_PEER_CLIENT, &out, &why) ==
	      -EBADMSG, "same role");
	h.version = 2;
	CHECK(cv_peer_hello_check(&h, sizeof(h), CV_PEER_SERVER, &out, &why) ==
	      -EBADMSG && strstr(why, "version"), "another version");
	h.version = CV_PEER_VERSION;
	h.magic ^= 1;
	CHECK(cv_peer_hello_check(&h, sizeof(h), CV_PEER_SERVER, &out, &why) ==
	      -EBADMSG, "bad magic");
	h.magic ^= 1;
	memset(h.host, 'x', sizeof(h.host));
	CHECK(cv_peer_hello_check(&h, sizeof(h), CV_PEER_SERVER, &out, &why) ==
	      -EBADMSG, "an unterminated name");
	snprintf(h.host, sizeof(h.host), "a\tb");
	CHECK(cv_peer_hello_check(&h, sizeof(h), CV_PEER_SERVER, &out, &why) ==
	      -EBADMSG, "a name with a control character");

	memset(&in, 0, sizeof(in));
	in.version = CV_PEER_VERSION;
	in.ngpus = 1;
	snprintf(in.host, sizeof(in.host), "h");
	snprintf(in.gpu[0].name, sizeof(in.gpu[0].name), "g");
	CHECK(cv_peer_info_check(&in, sizeof(in), &o, &why) == 0, "a good INFO");
	in.ngpus = CV_PEER_MAX_GPUS + 1;
	CHECK(cv_peer_info_check(&in, sizeof(in), &o, &why) == -EBADMSG,
	      "too many GPUs");
	in.ngpus = 1;
	memset(in.gpu[0].name, 'n', sizeof(in.gpu[0].name));
	CHECK(cv_peer_info_check(&in, sizeof(in), &o, &why) == -EBADMSG,
	      "an unterminated GPU name");
	CHECK(cv_peer_info_check(&in, 10, &o, &why) == -EBADMSG, "short");
}

static void test_addr_split(void)
{
	static const struct {
		const char *s;
		bool bare_is_port;
		int rc;
		const char *host, *port;
	} c[] = {
		{ "gpu-b:7431", false, 0, "gpu-b", "7431" },
		{ "gpu-b", false, 0, "gpu-b", "" },
		{ "7430", true, 0, "", "7430" },
		{ "127.0.0.1:0", true, 0, "127.0.0.1", "0" },
		{ "[::1]:7430", false, 0, "::1", "7430" },
		{ "[::1]", false, 0, "::1", "" },
		{ "fe80::1", false, 0, "fe80::1", "" },
		{ "[::1", false, -EINVAL, "", "" },
		{ "[::1]7430", false, -EINVAL, "", "" },
	};
	char host[16], port[8];
	size_t i;
	int rc;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		rc = cv_peer_addr_split(c[i].s, c[i].bare_is_port, host,
					sizeof(host), port, sizeof(port));
		CHECK(rc == c[i].rc && (rc || (!strcmp(host, c[i].host) &&
					      !strcmp(port, c[i].port))),
		      "split '%s': %d '%s' '%s'", c[i].s, rc, host, port);
	}
	CHECK(cv_peer_addr_split("a-host-name-too-long:1", false, host,
				 sizeof(host), port, sizeof(port)) == -EINVAL,
	      "a host that does not fit");
}

static void write_file(const char *p, const char *s, mode_t m)
{
	FILE *f = fopen(p, "w");

	CHECK(f != NULL, "write %s", p);
	if (!f)
		return;
	fputs(s, f);
	fclose(f);
	chmod(p, m);
}

static void test_key_file(void)
{
	char dir[] = "/tmp/cv-peer-XXXXXX", p[64], why[256];
	const char *hex = "000102030405060708090a0b0c0d0e0f"
			  "101112131415161718191a1b1c1d1e1f";
	uint8_t key[CV_PEER_KEY_LEN];
	char line[80];
	int i;

	CHECK(mkdtemp(dir) != NULL, "a directory");
	snprintf(p, sizeof(p), "%s/k", dir);
	snprintf(line, sizeof(line), "%s\n", hex);
	write_file(p, line, 0600);
	CHECK(cv_peer_key_load(p, key, why, sizeof(why)) == 0, "a good key: %s",
	      why);
	for (i = 0; i < CV_PEER_KEY_LEN && key[i] == i; i++)
		;
	CHECK(i == CV_PEER_KEY_LEN, "read as written");
	write_file(p, hex, 0640);
	CHECK(cv_peer_key_load(p, key, why, sizeof(why)) == -EPERM,
	      "group-readable: refused (%s)", why);
	write_file(p, "0011", 0600);
	CHECK(cv_peer_key_load(p, key, why, sizeof(why)) == -EINVAL, "short");
	snprintf(line, sizeof(line), "%.63sg", hex);
	write_file(p, line, 0600);
	CHECK(cv_peer_key_load(p, key, why, sizeof(why)) == -EINVAL,
	      "not hex");
	snprintf(line, sizeof(line), "%s\n\n", hex);
	write_file(p, line, 0600);
	CHECK(cv_peer_key_load(p, key, why, sizeof(why)) == -EINVAL,
	      "more than one newline");
	unlink(p);
	CHECK(cv_peer_key_load(p, key, why, sizeof(why)) == -ENOENT,
	      "missing");
	rmdir(dir);
}

static void *late_writer(void *arg)
{
	int fd = *(int *)arg;

	usleep(300000);
	if (write(fd, "x", 1) != 1)
		abort();
	return NULL;
}

/* A wait is polled a piece at a time; only its deadline ends it (an
 * idle copy lane reads without one and must not fail after a poll). */
static void test_long_wait(void)
{
	int sv[2], keep = cv_peer_poll_ms, rc;
	uint64_t t0;
	pthread_t th;
	char c = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		abort();
	cv_peer_poll_ms = 20;
	pthread_create(&th, NULL, late_writer, &sv[0]);
	t0 = cv_now_ns();
	rc = cv_peer_read(sv[1], &c, 1, UINT64_MAX);
	CHECK(rc == 0 && c == 'x' && cv_now_ns() - t0 >= 250000000ull,
	      "a read without a deadline outlasts 15 polls (rc %d)", rc);
	pthread_join(th, NULL);
	t0 = cv_now_ns();
	rc = cv_peer_read(sv[1], &c, 1, t0 + 100000000ull);
	CHECK(rc == -ETIMEDOUT && cv_now_ns() - t0 >= 100000000ull,
	      "a deadline still ends a wait (rc %d)", rc);
	cv_peer_poll_ms = keep;
	close(sv[0]);
	close(sv[1]);
}

/* The pending table (core/peer.h): who is dropped to make room. */
static void test_pending(void)
{
	struct sockaddr_in a4 = { .sin_family = AF_INET };
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 };
	struct cv_peer_pending tab[4];
	uint8_t ka[16], kb[16], kc[16], k6a[16], k6b[16], k6c[16];
	int i, slot, ev;

	inet_pton(AF_INET, "127.0.0.2", &a4.sin_addr);
	CHECK(!cv_peer_addr_key((struct sockaddr *)&a4, sizeof(a4), ka),
	      "key of an IPv4 address");
	inet_pton(AF_INET6, "::ffff:127.0.0.2", &a6.sin6_addr);
	CHECK(!cv_peer_addr_key((struct sockaddr *)&a6, sizeof(a6), kb) &&
	      !memcmp(ka, kb, 16), "IPv4-mapped counts as the IPv4 address");
	inet_pton(AF_INET, "127.0.0.3", &a4.sin_addr);
	cv_peer_addr_key((struct sockaddr *)&a4, sizeof(a4), kc);
	CHECK(memcmp(ka, kc, 16), "another IPv4 address, another key");
	inet_pton(AF_INET6, "2001:db8:1:2::1", &a6.sin6_addr);
	cv_peer_addr_key((struct sockaddr *)&a6, sizeof(a6), k6a);
	inet_pton(AF_INET6, "2001:db8:1:2:ffff::7", &a6.sin6_addr);
	cv_peer_addr_key((struct sockaddr *)&a6, sizeof(a6), k6b);
	inet_pton(AF_INET6, "2001:db8:1:3::1", &a6.sin6_addr);
	cv_peer_addr_key((struct sockaddr *)&a6, sizeof(a6), k6c);
	CHECK(!memcmp(k6a, k6b, 16) && memcmp(k6a, k6c, 16),
	      "IPv6: one /64, one key");
	a4.sin_family = AF_UNIX;
	CHECK(cv_peer_addr_key((struct sockaddr *)&a4, sizeof(a4), kb) ==
	      -EAFNOSUPPORT, "not an IP address");
	CHECK(cv_peer_addr_key((struct sockaddr *)&a6, 8, kb) == -EAFNOSUPPORT,
	      "too short for IPv6");

	memset(tab, 0, sizeof(tab));
	/* address a fills its 2, then replaces its own oldest */
	for (i = 0; i < 2; i++) {
		slot = cv_peer_pending_admit(tab, 4, 2, ka, &ev);
		CHECK(slot == i && ev == -1, "a: free slot %d", slot);
		memcpy(tab[slot].addr, ka, 16);
		tab[slot].since = 100 + (uint64_t)i;
		tab[slot].used = true;
	}
	slot = cv_peer_pending_admit(tab, 4, 2, ka, &ev);
	CHECK(slot == 0 && ev == 0, "a's third drops a's oldest (%d)", ev);
	tab[0].since = 102;
	/* c is not held back by a */
	slot = cv_peer_pending_admit(tab, 4, 2, kc, &ev);
	CHECK(slot == 2 && ev == -1, "c takes a free slot");
	memcpy(tab[2].addr, kc, 16);
	tab[2].since = 50; /* the oldest of all */
	tab[2].used = true;
	slot = cv_peer_pending_admit(tab, 4, 2, k6a, &ev);
	CHECK(slot == 3 && ev == -1, "v6 takes the last free slot");
	memcpy(tab[3].addr, k6a, 16);
	tab[3].since = 103;
	tab[3].used = true;
	/* full: the oldest of all goes, whoever it is */
	slot = cv_peer_pending_admit(tab, 4, 2, k6c, &ev);
	CHECK(slot == 2 && ev == 2, "full: the oldest of all is dropped");
	/* per_addr 1: an address holds one at most */
	slot = cv_peer_pending_admit(tab, 4, 1, k6b, &ev);
	CHECK(slot == 3 && ev == 3, "per_addr 1: the /64's one is replaced");
}

int main(void)
{
	test_handshake();
	test_reflection();
	test_silent();
	test_long_wait();
	test_decoders();
	test_addr_split();
	test_key_file();
	test_pending();
	return unit_done();
}

/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the live-migration stream (core/mig.c): records over a
 * socket pair (every shape of payload, fds, 8 MiB and the largest record
 * while signals interrupt both sides, two senders at once), every error
 * of the reader and the sender and that each stays, the corrupt fault;
 * the PLAN codec and each of its refusals, plan_granules, plan_covers
 * (against a linear scan), hello_check, the ABORT payload, fixed_len.
 *
 *   build/tests/test_mig   (TAP-like output)
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../core/buf.h"
#include "../core/hash.h"
#include "../core/mig.h"
#include "../core/proto.h"
#include "../core/util.h"
#include "unit.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the crafted records below assume a little-endian host"
#endif

#define G CV_GRANULE
#define W CV_WINDOW_ADDR
#define T_MS 5000 /* a receive timeout no healthy test reaches */
#define WHYLEN 256

static void bail(const char *what)
{
	printf("Bail out! %s: %s\n", what, strerror(errno));
	exit(1);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		bail("malloc");
	return p;
}

static void pair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		bail("socketpair");
}

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
	size_t i;

	for (i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
}

static void write_all(int fd, const void *p, size_t n)
{
	const uint8_t *q = p;
	ssize_t k;

	while (n) {
		k = write(fd, q, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			bail("write");
		q += k;
		n -= (size_t)k;
	}
}

/* A record's bytes (CV_MIG_HDR + len + CV_MIG_FOOTER of them) into out,
 * with the right footer. */
static size_t craft(uint8_t *out, uint32_t type, uint32_t len,
		    const void *payload)
{
	memcpy(out, &type, 4);
	memcpy(out + 4, &len, 4);
	if (len)
		memcpy(out + CV_MIG_HDR, payload, len);
	cv_hash128(out, CV_MIG_HDR + (size_t)len, out + CV_MIG_HDR + len);
	return CV_MIG_HDR + (size_t)len + CV_MIG_FOOTER;
}

/* Open fds of this process. */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		bail("opendir /proc/self/fd");
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static int unread(int fd)
{
	int n = -1;

	if (ioctl(fd, FIONREAD, &n) < 0)
		bail("FIONREAD");
	return n;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A memfd of size n * 4096, to tell fds apart by fstat. */
static int sized_fd(int n)
{
	int fd = memfd_create("test_mig", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, (off_t)n * 4096) < 0)
		bail("memfd");
	return fd;
}

static long fd_size(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -1;
	return (long)st.st_size;
}

/* ---- round trips ---------------------------------------------------- */

static void test_roundtrip(void)
{
	static const struct { uint32_t type; size_t hlen, dlen; } recs[] = {
		{ CV_MIG_READY, 0, 0 },
		{ CV_MIG_WELCOME, 8, 0 },
		{ CV_MIG_DIGESTS, 16, 64 },
		{ CV_MIG_GRANULES, 16, 4096 },
		{ CV_MIG_PLAN, 0, 100 },
		{ CV_MIG_ABORT, 208, 0 },
		{ CV_MIG_STATE, 16, 70000 },
	};
	uint8_t head[256], *data = xmalloc(70000), *got = xmalloc(80000);
	struct cv_mig_io a, b;
	uint32_t type, len;
	uint64_t total = 0;
	size_t i;
	int sv[2], ret;

	pair(sv);
	cv_mig_io_init(&a, sv[0]);
	cv_mig_io_init(&b, sv[1]);
	for (i = 0; i < CV_ARRAY_SIZE(recs); i++) {
		fill(head, recs[i].hlen, i);
		fill(data, recs[i].dlen, i + 100);
		ret = cv_mig_send(&a, recs[i].type, recs[i].hlen ? head : NULL,
				  recs[i].hlen, recs[i].dlen ? data : NULL,
				  recs[i].dlen, NULL, 0);
		CHECK(ret == 0, "send type %u (%zu + %zu bytes): %d",
		      recs[i].type, recs[i].hlen, recs[i].dlen, ret);
		type = len = 0xdead;
		ret = cv_mig_recv(&b, &type, got, 80000, &len, NULL, NULL,
				  T_MS);
		CHECK(ret == 0 && type == recs[i].type &&
		      len == recs[i].hlen + recs[i].dlen &&
		      !memcmp(got, head, recs[i].hlen) &&
		      !memcmp(got + recs[i].hlen, data, recs[i].dlen),
		      "recv type %u: %d, type %u, len %u", recs[i].type, ret,
		      type, len);
		total += CV_MIG_HDR + recs[i].hlen + recs[i].dlen +
			 CV_MIG_FOOTER;
	}
	CHECK(a.sent == total && b.received == total && !a.received,
	      "byte counts: sent %llu, received %llu, want %llu",
	      (unsigned long long)a.sent, (unsigned long long)b.received,
	      (unsigned long long)total);
	/* the other way, on the same pair */
	ret = cv_mig_send(&b, CV_MIG_RUNNING, head, 8, NULL, 0, NULL, 0);
	ret = ret ? ret : cv_mig_recv(&a, &type, got, 8, &len, NULL, NULL,
				      T_MS);
	CHECK(ret == 0 && type == CV_MIG_RUNNING && len == 8 &&
	      !memcmp(got, head, 8), "both directions: %d", ret);
	/* cap exactly the length; an empty record into no buffer */
	ret = cv_mig_send(&a, CV_MIG_COMMIT, NULL, 0, NULL, 0, NULL, 0);
	ret = ret ? ret : cv_mig_recv(&b, &type, NULL, 0, &len, NULL, NULL,
				      -1);
	CHECK(ret == 0 && type == CV_MIG_COMMIT && len == 0,
	      "empty record, no buffer, no timeout: %d", ret);
	close(sv[0]);
	close(sv[1]);
	free(data);
	free(got);
}

/* ---- fds ------------------------------------------------------------ */

static void test_fds(void)
{
	int sv[2], f[3], got[4], n, base, ret, i;
	struct cv_mig_hello h = { .magic = CV_MIG_MAGIC };
	uint8_t buf[256], raw[64];
	struct cv_mig_io a, b;
	uint32_t type, len;
	struct msghdr msg = { 0 };
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} cbuf;
	struct iovec iov;
	struct cmsghdr *cm;

	pair(sv);
	cv_mig_io_init(&a, sv[0]);
	cv_mig_io_init(&b, sv[1]);
	for (i = 0; i < 3; i++)
		f[i] = sized_fd(i + 1);
	base = count_fds();

	ret = cv_mig_send(&a, CV_MIG_HELLO, &h, sizeof(h), NULL, 0, f, 2);
	n = 4;
	ret = ret ? ret : cv_mig_recv(&b, &type, buf, sizeof(buf), &len, got,
				      &n, T_MS);
	CHECK(ret == 0 && type == CV_MIG_HELLO && len == sizeof(h) && n == 2 &&
	      fd_size(got[0]) == 4096 && fd_size(got[1]) == 8192,
	      "two fds on a HELLO: %d, %d fds", ret, n);
	CHECK(n == 2 && (fcntl(got[0], F_GETFD) & FD_CLOEXEC) &&
	      (fcntl(got[1], F_GETFD) & FD_CLOEXEC),
	      "received fds are cloexec");
	for (i = 0; i < n; i++)
		close(got[i]);

	ret = cv_mig_send(&a, CV_MIG_HELLO, &h, sizeof(h), NULL, 0, f, 3);
	n = 1;
	ret = ret ? ret : cv_mig_recv(&b, &type, buf, sizeof(buf), &len, got,
				      &n, T_MS);
	CHECK(ret == 0 && n == 1 && fd_size(got[0]) == 4096,
	      "three fds, room for one: %d, %d fds", ret, n);
	if (n == 1)
		close(got[0]);
	CHECK(count_fds() == base, "the two surplus fds were closed");

	ret = cv_mig_send(&a, CV_MIG_COMMIT, NULL, 0, NULL, 0, f, 2);
	ret = ret ? ret : cv_mig_recv(&b, &type, buf, sizeof(buf), &len, NULL,
				      NULL, T_MS);
	CHECK(ret == 0 && type == CV_MIG_COMMIT && count_fds() == base,
	      "fds where none were expected are closed: %d", ret);
	ret = cv_mig_send(&a, CV_MIG_COMMIT, NULL, 0, NULL, 0, f, 1);
	n = 0;
	ret = ret ? ret : cv_mig_recv(&b, &type, buf, sizeof(buf), &len, got,
				      &n, T_MS);
	CHECK(ret == 0 && n == 0 && count_fds() == base,
	      "fds with *nfds == 0 are closed: %d", ret);

	/* fds stay with their record */
	ret = cv_mig_send(&a, CV_MIG_COMMIT, NULL, 0, NULL, 0, &f[1], 1);
	ret = ret ? ret : cv_mig_send(&a, CV_MIG_COMMIT, NULL, 0, NULL, 0,
				      &f[2], 1);
	n = 4;
	ret = ret ? ret : cv_mig_recv(&b, &type, buf, sizeof(buf), &len, got,
				      &n, T_MS);
	CHECK(ret == 0 && n == 1 && fd_size(got[0]) == 8192,
	      "first of two records has its own fd: %d, %d fds", ret, n);
	if (n == 1)
		close(got[0]);
	n = 4;
	ret = cv_mig_recv(&b, &type, buf, sizeof(buf), &len, got, &n, T_MS);
	CHECK(ret == 0 && n == 1 && fd_size(got[0]) == 12288,
	      "second record has its own fd: %d, %d fds", ret, n);
	if (n == 1)
		close(got[0]);

	CHECK(cv_mig_send(&a, CV_MIG_COMMIT, NULL, 0, NULL, 0, f, 5) ==
	      -EINVAL, "five fds are refused");
	CHECK(cv_mig_send(&a, CV_MIG_COMMIT, NULL, 0, NULL, 0, NULL, 1) ==
	      -EINVAL, "nfds without fds is refused");
	CHECK(cv_mig_send(&a, CV_MIG_COMMIT, NULL, 0, NULL, 0, f, -1) ==
	      -EINVAL, "negative nfds is refused");
	CHECK(a.err == 0, "argument errors are not sticky");

	/* an fd on a record whose footer is wrong: closed, not leaked */
	craft(raw, CV_MIG_READY, 0, NULL);
	raw[CV_MIG_HDR] ^= 0x80;
	iov.iov_base = raw;
	iov.iov_len = CV_MIG_HDR + CV_MIG_FOOTER;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	memset(&cbuf, 0, sizeof(cbuf));
	msg.msg_control = cbuf.buf;
	msg.msg_controllen = sizeof(cbuf.buf);
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &f[0], sizeof(int));
	if (sendmsg(sv[0], &msg, 0) < 0)
		bail("sendmsg");
	n = 4;
	ret = cv_mig_recv(&b, &type, buf, sizeof(buf), &len, got, &n, T_MS);
	CHECK(ret == -EBADMSG && n == 0 && count_fds() == base,
	      "fd on a bad record is closed: %d, %d fds", ret, n);
	for (i = 0; i < 3; i++)
		close(f[i]);
	close(sv[0]);
	close(sv[1]);
}

/* ---- large records, signals, two senders ---------------------------- */

static int sigs; /* handled SIGUSR1s; atomic adds (lock-free) */

static void on_sig(int sig)
{
	(void)sig;
	__atomic_fetch_add(&sigs, 1, __ATOMIC_RELAXED);
}

struct sender {
	struct cv_mig_io *io;
	pthread_t th;
	uint32_t id, count;
	size_t len;        /* big: bytes of the record */
	uint8_t *data;
	int ret;
};

static void *big_sender(void *arg)
{
	struct sender *s = arg;
	struct cv_mig_granules g = { .va = W, .len = (uint32_t)s->len,
				     .slot = CV_MIG_INLINE };
	uint32_t i;

	for (i = 0; i < s->count && !s->ret; i++)
		s->ret = cv_mig_send(s->io, CV_MIG_GRANULES, &g, sizeof(g),
				     s->data, s->len - sizeof(g), NULL, 0);
	return NULL;
}

struct pester {
	pthread_t th, target[2];
	volatile int stop;
};

/* SIGUSR1 (no SA_RESTART) at both threads until told to stop. */
static void *pester(void *arg)
{
	struct pester *p = arg;
	struct timespec ts = { 0, 200000 };

	while (!__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) {
		pthread_kill(p->target[0], SIGUSR1);
		pthread_kill(p->target[1], SIGUSR1);
		nanosleep(&ts, NULL);
	}
	return NULL;
}

/* Two records of len bytes from a thread, read with and without a
 * timeout while both threads take signals; on non-blocking sockets when
 * asked (both sides then wait in poll). */
static void big_one(size_t len, bool nonblock)
{
	struct sender s = { .count = 2, .len = len };
	struct pester p = { .stop = 0 };
	struct cv_mig_granules g;
	struct cv_mig_io a, b;
	uint32_t type, n;
	uint8_t *got = xmalloc(len);
	int sv[2], ret[2], k;
	bool same[2];

	pair(sv);
	if (nonblock && (fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0 ||
			 fcntl(sv[1], F_SETFL, O_NONBLOCK) < 0))
		bail("O_NONBLOCK");
	cv_mig_io_init(&a, sv[0]);
	cv_mig_io_init(&b, sv[1]);
	s.io = &a;
	s.data = xmalloc(len);
	fill(s.data, len - sizeof(g), len);
	__atomic_store_n(&sigs, 0, __ATOMIC_RELAXED);
	if (pthread_create(&s.th, NULL, big_sender, &s))
		bail("pthread_create");
	p.target[0] = s.th;
	p.target[1] = pthread_self();
	if (pthread_create(&p.th, NULL, pester, &p))
		bail("pthread_create");
	usleep(20000); /* the sender blocks on a full socket meanwhile */
	for (k = 0; k < 2; k++) {
		memset(got, 0, len);
		ret[k] = cv_mig_recv(&b, &type, got, len, &n, NULL, NULL,
				     k ? -1 : 30000);
		memcpy(&g, got, sizeof(g));
		same[k] = !ret[k] && type == CV_MIG_GRANULES && n == len &&
			  g.va == W && g.len == len &&
			  !memcmp(got + sizeof(g), s.data, len - sizeof(g));
	}
	__atomic_store_n(&p.stop, 1, __ATOMIC_RELEASE);
	pthread_join(p.th, NULL);
	shutdown(sv[1], SHUT_RDWR); /* a sender left waiting gets -EPIPE */
	pthread_join(s.th, NULL);
	CHECK(s.ret == 0, "%zu-byte records sent%s: %d", len,
	      nonblock ? " (non-blocking)" : "", s.ret);
	CHECK(same[0], "%zu bytes received with a timeout, intact: %d", len,
	      ret[0]);
	CHECK(same[1], "%zu bytes received without one, intact: %d", len,
	      ret[1]);
	k = __atomic_load_n(&sigs, __ATOMIC_RELAXED);
	CHECK(k > 0, "%d signals interrupted the transfer", k);
	close(sv[0]);
	close(sv[1]);
	free(s.data);
	free(got);
}

static void test_big(void)
{
	struct sigaction sa = { .sa_handler = on_sig }, old;
	struct cv_mig_io a;
	uint8_t x = 0;
	int sv[2];

	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: calls return EINTR */
	sigaction(SIGUSR1, &sa, &old);
	big_one(8u << 20, false);
	big_one(8u << 20, true);
	big_one(CV_MIG_MAX_PAYLOAD, false);
	sigaction(SIGUSR1, &old, NULL);

	pair(sv);
	cv_mig_io_init(&a, sv[0]);
	CHECK(cv_mig_send(&a, CV_MIG_STATE, &x, 1, &x,
			  CV_MIG_MAX_PAYLOAD, NULL, 0) == -EMSGSIZE &&
	      cv_mig_send(&a, CV_MIG_STATE, &x, CV_MIG_MAX_PAYLOAD + 1ull,
			  NULL, 0, NULL, 0) == -EMSGSIZE &&
	      cv_mig_send(&a, CV_MIG_STATE, &x, 1, &x, SIZE_MAX, NULL, 0) ==
	      -EMSGSIZE, "a record over CV_MIG_MAX_PAYLOAD is refused");
	CHECK(a.err == 0 && !a.sent && unread(sv[1]) == 0,
	      "refused before anything was sent, not sticky");
	close(sv[0]);
	close(sv[1]);
}

#define CONC_N 300
#define CONC_MAX (200u << 10)

static size_t conc_len(uint32_t id, uint32_t seq)
{
	return (size_t)(((uint64_t)seq * 7919 + id * 104729) % CONC_MAX);
}

static void *conc_sender(void *arg)
{
	struct sender *s = arg;
	uint32_t head[2], i;
	size_t n;

	for (i = 0; i < s->count && !s->ret; i++) {
		head[0] = s->id;
		head[1] = i;
		n = conc_len(s->id, i);
		fill(s->data, n, (uint64_t)s->id << 32 | i);
		s->ret = cv_mig_send(s->io, CV_MIG_GRANULES, head, sizeof(head),
				     s->data, n, NULL, 0);
	}
	return NULL;
}

static void test_concurrent(void)
{
	struct sender s[2];
	uint8_t *got = xmalloc(CONC_MAX + 8), *want = xmalloc(CONC_MAX);
	uint32_t next[2] = { 0, 0 }, head[2], type, len, i;
	struct cv_mig_io a, b;
	int sv[2], ret = 0, bad = 0;

	pair(sv);
	cv_mig_io_init(&a, sv[0]);
	cv_mig_io_init(&b, sv[1]);
	for (i = 0; i < 2; i++) {
		s[i] = (struct sender){ .io = &a, .id = i, .count = CONC_N,
					.data = xmalloc(CONC_MAX) };
		if (pthread_create(&s[i].th, NULL, conc_sender, &s[i]))
			bail("pthread_create");
	}
	for (i = 0; i < 2 * CONC_N && !ret; i++) {
		ret = cv_mig_recv(&b, &type, got, CONC_MAX + 8, &len, NULL,
				  NULL, T_MS);
		if (ret)
			break;
		memcpy(head, got, sizeof(head));
		if (head[0] > 1 || head[1] != next[head[0]] ||
		    len != 8 + conc_len(head[0], head[1])) {
			bad++;
			break;
		}
		fill(want, len - 8, (uint64_t)head[0] << 32 | head[1]);
		bad += !!memcmp(got + 8, want, len - 8);
		next[head[0]]++;
	}
	shutdown(sv[1], SHUT_RDWR); /* a sender left waiting gets -EPIPE */
	for (i = 0; i < 2; i++) {
		pthread_join(s[i].th, NULL);
		free(s[i].data);
	}
	CHECK(s[0].ret == 0 && s[1].ret == 0, "two threads sent %d records "
	      "each: %d, %d", CONC_N, s[0].ret, s[1].ret);
	CHECK(ret == 0 && !bad && next[0] == CONC_N && next[1] == CONC_N,
	      "all %d records whole, in each sender's order: %d, %d bad, "
	      "%u + %u", 2 * CONC_N, ret, bad, next[0], next[1]);
	CHECK(a.sent == b.received, "byte counts agree");
	close(sv[0]);
	close(sv[1]);
	free(got);
	free(want);
}

/* ---- errors --------------------------------------------------------- */

/* Writes raw bytes into a fresh pair, closes the writer if asked, and
 * returns the first receive's result (and the second's, sticky). */
static int recv_raw(const void *raw, size_t n, bool close_w, size_t cap,
		    int *again, int *left)
{
	uint8_t buf[4096];
	struct cv_mig_io b;
	uint32_t type, len;
	int sv[2], ret;

	pair(sv);
	write_all(sv[0], raw, n);
	if (close_w)
		close(sv[0]);
	cv_mig_io_init(&b, sv[1]);
	ret = cv_mig_recv(&b, &type, buf, cap, &len, NULL, NULL, close_w ?
			  T_MS : 50);
	if (left)
		*left = unread(sv[1]);
	if (again)
		*again = cv_mig_recv(&b, &type, buf, cap, &len, NULL, NULL, 0);
	if (!close_w)
		close(sv[0]);
	close(sv[1]);
	return ret;
}

static void test_eof(void)
{
	uint8_t rec[256], p[100];
	int again, ret;
	size_t n;

	fill(p, sizeof(p), 1);
	n = craft(rec, CV_MIG_PLAN, 100, p);
	ret = recv_raw(rec, 0, true, 4096, &again, NULL);
	CHECK(ret == -ECONNRESET && again == -ECONNRESET,
	      "end of file at a record boundary: %d, then %d", ret, again);
	ret = recv_raw(rec, 5, true, 4096, &again, NULL);
	CHECK(ret == -EPIPE && again == -EPIPE,
	      "end of file in the header: %d, then %d", ret, again);
	ret = recv_raw(rec, CV_MIG_HDR, true, 4096, NULL, NULL);
	CHECK(ret == -EPIPE, "end of file after the header: %d", ret);
	ret = recv_raw(rec, CV_MIG_HDR + 50, true, 4096, NULL, NULL);
	CHECK(ret == -EPIPE, "end of file in the payload: %d", ret);
	ret = recv_raw(rec, n - 6, true, 4096, NULL, NULL);
	CHECK(ret == -EPIPE, "end of file in the footer: %d", ret);
	ret = recv_raw(rec, n, true, 4096, &again, NULL);
	CHECK(ret == 0 && again == -ECONNRESET,
	      "a whole record, then end of file: %d, %d", ret, again);
}

static void test_bad_records(void)
{
	uint8_t rec[256], p[100];
	int again, left, ret;
	uint32_t v;
	size_t n;

	fill(p, sizeof(p), 2);
	n = craft(rec, CV_MIG_PLAN, 100, p);
	rec[n - 1] ^= 1;
	ret = recv_raw(rec, n, true, 4096, &again, NULL);
	CHECK(ret == -EBADMSG && again == -EBADMSG,
	      "a footer bit flipped: %d, then %d", ret, again);
	n = craft(rec, CV_MIG_PLAN, 100, p);
	rec[CV_MIG_HDR + 40] ^= 0x10;
	ret = recv_raw(rec, n, true, 4096, NULL, NULL);
	CHECK(ret == -EBADMSG, "a payload bit flipped: %d", ret);
	n = craft(rec, CV_MIG_PLAN, 100, p);
	rec[0] ^= 1; /* PLAN (3) becomes WELCOME (2) */
	ret = recv_raw(rec, n, true, 4096, NULL, NULL);
	CHECK(ret == -EBADMSG, "a type bit flipped: %d", ret);

	n = craft(rec, CV_MIG_PLAN, 100, p);
	ret = recv_raw(rec, n, false, 99, &again, &left);
	CHECK(ret == -EMSGSIZE && again == -EMSGSIZE,
	      "100 bytes into 99: %d, then %d", ret, again);
	CHECK(left == (int)(n - CV_MIG_HDR), "the long payload stayed "
	      "unread (%d bytes left)", left);
	ret = recv_raw(rec, n, false, 100, NULL, NULL);
	CHECK(ret == 0, "100 bytes into 100: %d", ret);
	v = CV_MIG_MAX_PAYLOAD + 1;
	memcpy(rec + 4, &v, 4);
	ret = recv_raw(rec, CV_MIG_HDR, true, SIZE_MAX, NULL, &left);
	CHECK(ret == -EMSGSIZE && left == 0,
	      "a length over CV_MIG_MAX_PAYLOAD with a larger cap: %d", ret);

	for (v = 0; v < 3; v++) {
		uint32_t t = v == 0 ? 0 : v == 1 ? CV_MIG_TYPE_MAX + 1 :
			     UINT32_MAX;

		n = craft(rec, t, 100, p);
		ret = recv_raw(rec, n, true, 4096, &again, &left);
		CHECK(ret == -EPROTO && again == -EPROTO && left > 100,
		      "type %u: %d, then %d, payload unread", t, ret, again);
	}
}

static void test_timeout(void)
{
	uint8_t rec[256], p[100];
	struct cv_mig_io b;
	uint32_t type, len;
	uint64_t t0, dt;
	int sv[2], ret;
	size_t n;

	pair(sv);
	cv_mig_io_init(&b, sv[1]);
	t0 = now_ms();
	ret = cv_mig_recv(&b, &type, rec, sizeof(rec), &len, NULL, NULL, 60);
	dt = now_ms() - t0;
	CHECK(ret == -ETIMEDOUT && dt >= 55 && dt < 3000,
	      "nothing comes: %d after %llu ms", ret, (unsigned long long)dt);
	fill(p, sizeof(p), 3);
	n = craft(rec, CV_MIG_PLAN, 100, p);
	write_all(sv[0], rec, n);
	t0 = now_ms();
	ret = cv_mig_recv(&b, &type, rec, sizeof(rec), &len, NULL, NULL, -1);
	CHECK(ret == -ETIMEDOUT && now_ms() - t0 < 50 && unread(sv[1]) ==
	      (int)n, "the timeout is sticky, nothing read: %d", ret);
	CHECK(cv_mig_send(&b, CV_MIG_READY, NULL, 0, NULL, 0, NULL, 0) ==
	      -ETIMEDOUT, "and the sender sees it too");
	close(sv[0]);
	close(sv[1]);

	/* a record that stops in its payload */
	pair(sv);
	cv_mig_io_init(&b, sv[1]);
	write_all(sv[0], rec, CV_MIG_HDR + 10);
	ret = cv_mig_recv(&b, &type, rec, sizeof(rec), &len, NULL, NULL, 60);
	CHECK(ret == -ETIMEDOUT, "a record stops in its payload: %d", ret);
	close(sv[0]);
	close(sv[1]);

	/* timeout 0 with the record there */
	pair(sv);
	cv_mig_io_init(&b, sv[1]);
	n = craft(rec, CV_MIG_PLAN, 100, p);
	write_all(sv[0], rec, n);
	ret = cv_mig_recv(&b, &type, rec, sizeof(rec), &len, NULL, NULL, 0);
	CHECK(ret == 0 && type == CV_MIG_PLAN && len == 100,
	      "timeout 0 with the record waiting: %d", ret);
	close(sv[0]);
	close(sv[1]);
}

/* The corrupt fault spoils exactly one record: the reader fails on it,
 * and a second reader on the same socket reads the next one whole. */
static void corrupt_one(size_t hlen, size_t dlen)
{
	uint8_t head[32], data[64], buf[128];
	struct cv_mig_io a, b, c;
	uint32_t type, len;
	int sv[2], ret, ret2;

	pair(sv);
	cv_mig_io_init(&a, sv[0]);
	cv_mig_io_init(&b, sv[1]);
	cv_mig_io_init(&c, sv[1]);
	fill(head, sizeof(head), 4);
	fill(data, sizeof(data), 5);
	a.fault = CV_MIG_FAULT_CORRUPT;
	ret = cv_mig_send(&a, CV_MIG_STATE, head, hlen, data, dlen, NULL, 0);
	ret2 = cv_mig_send(&a, CV_MIG_STATE, head, hlen, data, dlen, NULL, 0);
	CHECK(ret == 0 && ret2 == 0 && a.fault == CV_MIG_FAULT_NONE,
	      "%zu + %zu bytes: sent, the fault consumed", hlen, dlen);
	ret = cv_mig_recv(&b, &type, buf, sizeof(buf), &len, NULL, NULL, T_MS);
	CHECK(ret == -EBADMSG, "%zu + %zu bytes: the corrupted record is "
	      "caught: %d", hlen, dlen, ret);
	ret = cv_mig_recv(&c, &type, buf, sizeof(buf), &len, NULL, NULL, T_MS);
	CHECK(ret == 0 && len == hlen + dlen && !memcmp(buf, head, hlen) &&
	      !memcmp(buf + hlen, data, dlen),
	      "%zu + %zu bytes: the next record is whole: %d", hlen, dlen,
	      ret);
	close(sv[0]);
	close(sv[1]);
}

static void test_send_errors(void)
{
	struct cv_mig_io a;
	uint8_t x[8] = { 0 };
	uint32_t type, len;
	int sv[2], ret;

	corrupt_one(0, 0);
	corrupt_one(16, 0);
	corrupt_one(0, 64);
	corrupt_one(16, 64);

	pair(sv);
	cv_mig_io_init(&a, sv[0]);
	CHECK(cv_mig_send(&a, 0, NULL, 0, NULL, 0, NULL, 0) == -EINVAL &&
	      cv_mig_send(&a, CV_MIG_TYPE_MAX + 1, NULL, 0, NULL, 0, NULL,
			  0) == -EINVAL &&
	      cv_mig_send(&a, CV_MIG_PLAN, NULL, 4, NULL, 0, NULL, 0) ==
	      -EINVAL &&
	      cv_mig_send(&a, CV_MIG_PLAN, NULL, 0, NULL, 4, NULL, 0) ==
	      -EINVAL, "bad type or missing payload is refused");
	CHECK(a.err == 0 && unread(sv[1]) == 0, "nothing sent, not sticky");
	CHECK(cv_mig_recv(&a, &type, NULL, 8, &len, NULL, NULL, 0) == -EINVAL
	      && a.err == 0, "a receive with cap and no buffer is refused");
	close(sv[1]);
	ret = cv_mig_send(&a, CV_MIG_PLAN, x, sizeof(x), NULL, 0, NULL, 0);
	CHECK(ret == -EPIPE, "send to a closed peer: %d (no SIGPIPE)", ret);
	CHECK(cv_mig_send(&a, CV_MIG_READY, NULL, 0, NULL, 0, NULL, 0) ==
	      -EPIPE && cv_mig_recv(&a, &type, x, 8, &len, NULL, NULL, 0) ==
	      -EPIPE, "the send error is sticky for both sides");
	close(sv[0]);

	cv_mig_io_init(&a, -1);
	CHECK(cv_mig_send(&a, CV_MIG_READY, NULL, 0, NULL, 0, NULL, 0) ==
	      -EBADF, "no fd: -EBADF");
}

/* ---- PLAN ----------------------------------------------------------- */

#define Q_ALL (11 * G) /* the standard plan's device bytes */

static struct cv_mig_range std_ranges[5];
static struct cv_mig_vmm std_vmm[3];
static struct cv_mig_heap std_heap[3];

/* A valid plan: plain, two VMM handles mapped (one adjacent pair, one
 * released), one handle unmapped, the window's last granule; handles
 * out of id order. 3 plain granules + 8 in handles. */
static void std_plan(struct cv_mig_plan *p)
{
	const struct cv_mig_range r[5] = {
		{ W, 2 * G, 0, 0 },
		{ W + 4 * G, G, 7, G },
		{ W + 5 * G, G, 7, 0 },
		{ W + 10 * G, 2 * G, 3, 0 },
		{ W + CV_WINDOW_SIZE - G, G, 0, 0 },
	};
	const struct cv_mig_vmm v[3] = {
		{ 7, false, 2 * G }, { 3, true, 2 * G }, { 9, false, 4 * G },
	};
	const struct cv_mig_heap h[3] = {
		{ 0, 4096 }, { 8192, 1 << 20 }, { CV_HEAP_MAX - 4096, 4096 },
	};

	memcpy(std_ranges, r, sizeof(r));
	memcpy(std_vmm, v, sizeof(v));
	memcpy(std_heap, h, sizeof(h));
	*p = (struct cv_mig_plan){
		.round = 5, .nranges = 5, .nvmm = 3, .nheap = 3,
		.ranges = std_ranges, .vmm = std_vmm, .heap = std_heap,
	};
}

static int decode_buf(const struct cv_wbuf *b, uint64_t quota,
		      struct cv_mig_plan *out, char *why)
{
	return cv_mig_plan_decode(b->p, b->len, quota, CV_HEAP_MAX, out, why,
				  WHYLEN);
}

/* Encodes p, decodes it: refused with -EINVAL and a message that
 * contains needle, nothing left allocated. */
static void reject(const struct cv_mig_plan *p, uint64_t quota,
		   const char *what, const char *needle)
{
	struct cv_mig_plan out;
	char why[WHYLEN] = "";
	struct cv_wbuf b;
	int ret;

	cv_wbuf_init(&b);
	cv_mig_plan_encode(p, &b);
	ret = decode_buf(&b, quota, &out, why);
	CHECK(ret == -EINVAL && strstr(why, needle) && !out.ranges &&
	      !out.vmm && !out.heap && !out.nranges,
	      "%s refused: %d, \"%s\"", what, ret, why);
	cv_wbuf_free(&b);
}

/* Like reject, on the standard plan's bytes with a u32 at off set. */
static void reject_patch(size_t off, uint32_t v, const char *what,
			 const char *needle)
{
	struct cv_mig_plan p, out;
	char why[WHYLEN] = "";
	struct cv_wbuf b;
	int ret;

	std_plan(&p);
	cv_wbuf_init(&b);
	cv_mig_plan_encode(&p, &b);
	memcpy(b.p + off, &v, 4);
	ret = decode_buf(&b, Q_ALL, &out, why);
	CHECK(ret == -EINVAL && strstr(why, needle) && !out.ranges,
	      "%s refused: %d, \"%s\"", what, ret, why);
	cv_wbuf_free(&b);
}

static void test_plan_roundtrip(void)
{
	struct cv_mig_plan p, out, out2;
	struct cv_wbuf b, b2;
	char why[WHYLEN] = "";
	bool same = true;
	uint32_t i;
	int ret;

	std_plan(&p);
	cv_wbuf_init(&b);
	cv_mig_plan_encode(&p, &b);
	CHECK(!b.err && b.len == 16 + 5 * 32 + 3 * 16 + 3 * 16,
	      "PLAN encodes to %zu bytes", b.len);
	ret = decode_buf(&b, Q_ALL, &out, why);
	CHECK(ret == 0, "PLAN decodes at exactly its quota: %d %s", ret, why);
	if (ret)
		goto out;
	same = out.round == 5 && out.nranges == 5 && out.nvmm == 3 &&
	       out.nheap == 3;
	for (i = 0; same && i < 5; i++)
		same = out.ranges[i].va == std_ranges[i].va &&
		       out.ranges[i].size == std_ranges[i].size &&
		       out.ranges[i].vmm == std_ranges[i].vmm &&
		       out.ranges[i].offset == std_ranges[i].offset;
	for (i = 0; same && i < 3; i++)
		same = out.heap[i].off == std_heap[i].off &&
		       out.heap[i].len == std_heap[i].len;
	CHECK(same, "ranges and heap round trip");
	CHECK(out.vmm[0].id == 3 && out.vmm[0].released &&
	      out.vmm[0].size == 2 * G && out.vmm[1].id == 7 &&
	      !out.vmm[1].released && out.vmm[2].id == 9 &&
	      out.vmm[2].size == 4 * G, "handles sorted by id on return");
	cv_wbuf_init(&b2);
	cv_mig_plan_encode(&out, &b2);
	ret = decode_buf(&b2, Q_ALL, &out2, why);
	CHECK(ret == 0 && out2.vmm[0].id == 3 && b2.len == b.len,
	      "the decoded plan encodes and decodes again: %d", ret);
	cv_mig_plan_free(&out2);
	cv_wbuf_free(&b2);
	cv_mig_plan_free(&out);
	CHECK(!out.ranges && !out.nranges, "plan_free clears");
	cv_mig_plan_free(NULL);
out:
	cv_wbuf_free(&b);
	p = (struct cv_mig_plan){ .round = 1 };
	cv_wbuf_init(&b);
	cv_mig_plan_encode(&p, &b);
	ret = decode_buf(&b, 0, &out, why);
	CHECK(ret == 0 && b.len == 16 && out.round == 1 && !out.nranges,
	      "an empty plan decodes under quota 0: %d %s", ret, why);
	cv_mig_plan_free(&out);
	cv_wbuf_free(&b);
}

static void test_plan_ranges(void)
{
	struct cv_mig_plan p;

	std_plan(&p);
	std_ranges[0].va = W + 4 * G;
	std_ranges[1].va = W;
	std_ranges[1].vmm = 0;
	std_ranges[1].offset = 0;
	reject(&p, Q_ALL, "unsorted ranges", "not sorted");
	std_plan(&p);
	std_ranges[1].va = W + G;
	reject(&p, Q_ALL, "a range overlapping the one before", "overlaps");
	std_plan(&p);
	std_ranges[1].va = W;
	reject(&p, Q_ALL, "two ranges at one address", "overlaps");
	std_plan(&p);
	std_ranges[0].va = W - G;
	reject(&p, Q_ALL, "a range below the window", "outside");
	std_plan(&p);
	std_ranges[4].size = 2 * G;
	reject(&p, Q_ALL, "a range past the window's end", "outside");
	std_plan(&p);
	std_ranges[4].va = W + CV_WINDOW_SIZE;
	reject(&p, Q_ALL, "a range just after the window", "outside");
	std_plan(&p);
	p.nranges = 1;
	std_ranges[0].size = 0 - G;
	reject(&p, UINT64_MAX, "a range of 2^64 - 2 MiB bytes", "outside");
	std_plan(&p);
	std_ranges[2].va += 4096;
	reject(&p, Q_ALL, "an unaligned address", "whole granules");
	std_plan(&p);
	std_ranges[0].size = G + 4096;
	reject(&p, Q_ALL, "an unaligned size", "whole granules");
	std_plan(&p);
	std_ranges[0].size = 0;
	reject(&p, Q_ALL, "an empty range", "whole granules");
	std_plan(&p);
	std_ranges[0].offset = G;
	reject(&p, Q_ALL, "plain memory at an offset", "offset");
	reject_patch(16 + 32 + 20, 1, "nonzero padding", "padding");
}

static void test_plan_vmm(void)
{
	const size_t v0 = 16 + 5 * 32; /* the first handle's bytes */
	struct cv_mig_plan p;

	std_plan(&p);
	std_vmm[2].id = 7;
	reject(&p, 100 * G, "a duplicate handle id", "twice");
	std_plan(&p);
	std_vmm[2].id = 0;
	reject(&p, Q_ALL, "handle id 0", "not valid");
	std_plan(&p);
	std_vmm[2].size = 0;
	reject(&p, Q_ALL, "an empty handle", "not valid");
	std_plan(&p);
	std_vmm[2].size = G + 4096;
	reject(&p, Q_ALL, "a handle of part of a granule", "not valid");
	std_plan(&p);
	std_vmm[2].size = CV_WINDOW_SIZE + G;
	reject(&p, UINT64_MAX, "a handle larger than the window",
	       "not valid");
	reject_patch(v0 + 4, 2, "released 2", "released");
	std_plan(&p);
	std_ranges[3].vmm = 5;
	reject(&p, Q_ALL, "a range of an unlisted handle", "not listed");
	std_plan(&p);
	std_ranges[1].size = 2 * G;
	std_ranges[2].va = W + 6 * G;
	reject(&p, Q_ALL, "a range past its handle's end", "past");
	std_plan(&p);
	std_ranges[1].offset = 0 - G;
	reject(&p, Q_ALL, "an offset that overflows", "past");
	std_plan(&p);
	std_ranges[1].offset = 4096;
	reject(&p, Q_ALL, "an unaligned offset", "unaligned");
	std_plan(&p);
	std_vmm[2].released = true;
	reject(&p, Q_ALL, "a released handle mapped nowhere", "nowhere");
}

static void test_plan_heap(void)
{
	struct cv_mig_plan p, out;
	char why[WHYLEN] = "";
	struct cv_wbuf b;
	int ret;

	std_plan(&p);
	std_heap[1].off = 8192 + 512;
	reject(&p, Q_ALL, "a heap range at an unaligned offset", "pages");
	std_plan(&p);
	std_heap[1].len = 4097;
	reject(&p, Q_ALL, "a heap range of an unaligned length", "pages");
	std_plan(&p);
	std_heap[1].len = 0;
	reject(&p, Q_ALL, "an empty heap range", "pages");
	std_plan(&p);
	std_heap[1].off = 0;
	reject(&p, Q_ALL, "heap ranges at one offset", "overlaps");
	std_plan(&p);
	std_heap[0].off = 4096;
	std_heap[0].len = 8192;
	reject(&p, Q_ALL, "overlapping heap ranges", "overlaps");
	std_plan(&p);
	std_heap[0].off = 1 << 30;
	reject(&p, Q_ALL, "unsorted heap ranges", "not sorted");
	std_plan(&p);
	std_heap[2].len = 8192;
	reject(&p, Q_ALL, "a heap range past heap_max", "pages");
	std_plan(&p);
	std_heap[2].off = CV_HEAP_MAX;
	reject(&p, Q_ALL, "a heap range at heap_max", "pages");
	std_plan(&p);
	std_heap[2].off = 0 - 4096ull;
	std_heap[2].len = 8192;
	reject(&p, Q_ALL, "a heap range that wraps", "pages");

	std_plan(&p);
	cv_wbuf_init(&b);
	cv_mig_plan_encode(&p, &b);
	ret = cv_mig_plan_decode(b.p, b.len, Q_ALL, 1 << 30, &out, why,
				 sizeof(why));
	CHECK(ret == -EINVAL && strstr(why, "pages"),
	      "a smaller heap_max is applied: %d, \"%s\"", ret, why);
	cv_wbuf_free(&b);
}

static void test_plan_sizes(void)
{
	struct cv_mig_plan p, out;
	char why[WHYLEN] = "";
	struct cv_wbuf b;
	int ret, fails = 0;
	size_t n, full;

	std_plan(&p);
	reject(&p, Q_ALL - 1, "a plan one byte over the quota", "quota");
	std_plan(&p);
	p.nranges = 0;
	std_vmm[1].released = false;
	reject(&p, 8 * G - 1, "handles alone over the quota", "quota");
	p.nvmm = 2;
	p.nheap = 0;
	reject(&p, 4 * G - 1, "two handles over the quota", "quota");

	std_plan(&p);
	cv_wbuf_init(&b);
	cv_mig_plan_encode(&p, &b);
	full = b.len;
	for (n = 0; n < full; n++) {
		ret = cv_mig_plan_decode(b.p, n, Q_ALL, CV_HEAP_MAX, &out,
					 why, sizeof(why));
		fails += ret == -EINVAL && !out.ranges;
	}
	CHECK(fails == (int)full, "every prefix (0 to %zu bytes) is refused",
	      full - 1);
	ret = cv_mig_plan_decode(b.p, full - 1, Q_ALL, CV_HEAP_MAX, &out,
				 why, sizeof(why));
	CHECK(ret == -EINVAL && strstr(why, "short"), "short: \"%s\"", why);
	ret = cv_mig_plan_decode(b.p, 3, Q_ALL, CV_HEAP_MAX, &out, why,
				 sizeof(why));
	CHECK(ret == -EINVAL && strstr(why, "short"), "3 bytes: \"%s\"", why);
	ret = cv_mig_plan_decode(NULL, 0, Q_ALL, CV_HEAP_MAX, &out, NULL, 0);
	CHECK(ret == -EINVAL, "no bytes, no why: %d", ret);
	cv_wbuf_u32(&b, 0);
	ret = decode_buf(&b, Q_ALL, &out, why);
	CHECK(ret == -EINVAL && strstr(why, "trailing"),
	      "4 trailing bytes: \"%s\"", why);
	cv_wbuf_free(&b);

	reject_patch(4, CV_MIG_MAX_RANGES + 1, "too many ranges", "limit");
	reject_patch(8, UINT32_MAX, "2^32 - 1 handles", "limit");
	reject_patch(12, 4, "a heap count one too many", "short");
	reject_patch(12, 2, "a heap count one too few", "trailing");
}

static void test_granules_covers(void)
{
	struct cv_mig_range r[3] = {
		{ W, 2 * G, 0, 0 }, { W + 2 * G, G, 0, 0 },
		{ W + 10 * G, 4 * G, 0, 0 },
	};
	struct cv_mig_plan p = { .nranges = 3, .ranges = r }, e = { 0 };
	struct cv_mig_range *many;
	uint64_t va, end, len, x = 1;
	uint32_t i, j, bad = 0;
	bool want;

	CHECK(cv_mig_plan_granules(&p, 4096) == 7 * 512 &&
	      cv_mig_plan_granules(&p, G) == 7 &&
	      cv_mig_plan_granules(&p, 64 << 10) == 7 * 32,
	      "granules: %llu at 4 KiB",
	      (unsigned long long)cv_mig_plan_granules(&p, 4096));
	CHECK(cv_mig_plan_granules(&p, 0) == 0 &&
	      cv_mig_plan_granules(&e, 4096) == 0,
	      "granules of granule 0, of an empty plan: 0");

	CHECK(cv_mig_plan_covers(&p, W, 1) && cv_mig_plan_covers(&p, W, 2 * G)
	      && cv_mig_plan_covers(&p, W + 2 * G - 1, 1) &&
	      cv_mig_plan_covers(&p, W + 2 * G, G) &&
	      cv_mig_plan_covers(&p, W + 14 * G - 1, 1) &&
	      cv_mig_plan_covers(&p, W + 10 * G, 4 * G),
	      "covers: the ranges, their first and last bytes");
	CHECK(!cv_mig_plan_covers(&p, W, 2 * G + 1) &&
	      !cv_mig_plan_covers(&p, W + 2 * G - 1, 2),
	      "covers: not across two adjacent ranges");
	CHECK(!cv_mig_plan_covers(&p, W - 1, 1) &&
	      !cv_mig_plan_covers(&p, W - 1, 2) &&
	      !cv_mig_plan_covers(&p, W + 3 * G, 1) &&
	      !cv_mig_plan_covers(&p, W + 10 * G - 1, 2) &&
	      !cv_mig_plan_covers(&p, W + 14 * G, 1) &&
	      !cv_mig_plan_covers(&p, W + 14 * G - 1, 2) &&
	      !cv_mig_plan_covers(&p, 0, 1),
	      "covers: not before, between, after");
	CHECK(!cv_mig_plan_covers(&p, W, 0) &&
	      !cv_mig_plan_covers(&p, W + G, UINT64_MAX) &&
	      !cv_mig_plan_covers(&p, UINT64_MAX, 1) &&
	      !cv_mig_plan_covers(&e, W, 1),
	      "covers: not len 0, not a wrap, not in an empty plan");

	/* 1000 ranges with gaps, against a linear scan */
	many = xmalloc(1000 * sizeof(*many));
	va = W;
	for (i = 0; i < 1000; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		va += (x >> 60) % 3 * G;
		many[i] = (struct cv_mig_range){ va, ((x >> 50) % 4 + 1) * G,
						 0, 0 };
		va += many[i].size;
	}
	end = va;
	p = (struct cv_mig_plan){ .nranges = 1000, .ranges = many };
	for (j = 0; j < 20000; j++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		va = W - G + (x >> 20) % (end - W + 2 * G);
		len = (x & 3) == 0 ? 1 : (x >> 8) % (3 * G) + 1;
		want = false;
		for (i = 0; i < 1000; i++)
			want |= va >= many[i].va &&
				va + len <= many[i].va + many[i].size;
		bad += cv_mig_plan_covers(&p, va, len) != want;
	}
	CHECK(bad == 0, "covers agrees with a linear scan on 20000 probes "
	      "(%u differ)", bad);
	free(many);
}

/* ---- HELLO, ABORT, sizes -------------------------------------------- */

static struct cv_mig_hello good_hello(void)
{
	return (struct cv_mig_hello){
		.magic = CV_MIG_MAGIC, .version = CV_MIG_VERSION,
		.tenant = 3, .quota = 1ull << 30, .seed = 42,
		.granule = 64 << 10, .nslots = 8, .slot_size = 4 << 20,
		.backend = CV_BACKEND_HOST, .cc_major = 9,
	};
}

#define HELLO_CASE(field, value, want, what)                               \
	do {                                                               \
		struct cv_mig_hello h_ = good_hello();                     \
		char w_[WHYLEN] = "";                                      \
		int r_;                                                    \
		h_.field = value;                                          \
		r_ = cv_mig_hello_check(&h_, w_, sizeof(w_));              \
		CHECK(r_ == (want) && (!r_ || w_[0]), "hello %s: %d %s",   \
		      what, r_, w_);                                       \
	} while (0)

static void test_hello(void)
{
	struct cv_mig_hello h = good_hello();

	CHECK(cv_mig_hello_check(&h, NULL, 0) == 0, "a good HELLO passes");
	HELLO_CASE(magic, CV_MIG_MAGIC ^ 1, -EINVAL, "wrong magic");
	HELLO_CASE(version, 0, -EPROTO, "version 0");
	HELLO_CASE(version, 2, -EPROTO, "version 2");
	HELLO_CASE(flags, CV_MIG_HELLO_SHARE, -EINVAL, "sharing, with slots");
	HELLO_CASE(flags, CV_MIG_HELLO_INLINE, -EINVAL, "inline, with slots");
	HELLO_CASE(flags, 4, -EINVAL, "flags 4");
	HELLO_CASE(granule, 0, -EINVAL, "granule 0");
	HELLO_CASE(granule, 4097, -EINVAL, "granule 4097");
	HELLO_CASE(granule, 12288, -EINVAL, "granule 12 KiB (no divisor)");
	HELLO_CASE(granule, 4 << 20, -EINVAL, "granule 4 MiB");
	HELLO_CASE(granule, 4096, 0, "granule 4 KiB");
	HELLO_CASE(granule, 2 << 20, 0, "granule 2 MiB");
	HELLO_CASE(nslots, 257, -EINVAL, "257 slots");
	HELLO_CASE(nslots, 256, 0, "256 slots");
	HELLO_CASE(slot_size, 0, -EINVAL, "slots of 0 bytes");
	HELLO_CASE(slot_size, 4095, -EINVAL, "slots of 4095 bytes");
	HELLO_CASE(slot_size, CV_MIG_MAX_PAYLOAD + 4096ull, -EINVAL,
		   "slots over the largest payload");
	HELLO_CASE(slot_size, CV_MIG_MAX_PAYLOAD, 0, "slots of the largest "
		   "payload");
	h.nslots = 0;
	h.slot_size = 0;
	CHECK(cv_mig_hello_check(&h, NULL, 0) == 0, "no slots, bytes inline");
	h.flags = CV_MIG_HELLO_SHARE;
	CHECK(cv_mig_hello_check(&h, NULL, 0) == 0, "sharing, no slots");
	h.flags = CV_MIG_HELLO_INLINE;
	CHECK(cv_mig_hello_check(&h, NULL, 0) == 0, "inline, no slots");
	h.flags = CV_MIG_HELLO_SHARE | CV_MIG_HELLO_INLINE;
	CHECK(cv_mig_hello_check(&h, NULL, 0) == -EINVAL, "sharing and "
	      "inline at once");
}

static void test_share(void)
{
	static const struct {
		struct cv_mig_share s;
		int want;
		const char *what;
	} c[] = {
		{ { CV_MIG_SHARE_MEM, 0, CV_WINDOW_ADDR, CV_GRANULE }, 0,
		  "plain memory" },
		{ { CV_MIG_SHARE_MEM, 0, CV_WINDOW_ADDR + CV_WINDOW_SIZE -
		    CV_GRANULE, CV_GRANULE }, 0, "at the window's end" },
		{ { CV_MIG_SHARE_MEM, 0, CV_WINDOW_ADDR + CV_WINDOW_SIZE,
		    CV_GRANULE }, -EINVAL, "past the window" },
		{ { CV_MIG_SHARE_MEM, 0, CV_WINDOW_ADDR - CV_GRANULE,
		    CV_GRANULE }, -EINVAL, "before the window" },
		{ { CV_MIG_SHARE_MEM, 0, ~0ull - CV_GRANULE + 1, CV_GRANULE },
		  -EINVAL, "wrapping" },
		{ { CV_MIG_SHARE_MEM, 0, CV_WINDOW_ADDR, 4096 }, -EINVAL,
		  "not whole granules" },
		{ { CV_MIG_SHARE_MEM, 0, CV_WINDOW_ADDR, 0 }, -EINVAL,
		  "empty" },
		{ { CV_MIG_SHARE_MEM, 3, CV_WINDOW_ADDR, CV_GRANULE }, -EINVAL,
		  "plain memory with an id" },
		{ { CV_MIG_SHARE_MEM, 0, CV_WINDOW_ADDR, 4 * CV_GRANULE },
		  -EINVAL, "over the quota" },
		{ { CV_MIG_SHARE_VMM, 7, 0, 2 * CV_GRANULE }, 0, "a handle" },
		{ { CV_MIG_SHARE_VMM, 0, 0, CV_GRANULE }, -EINVAL,
		  "handle 0" },
		{ { CV_MIG_SHARE_VMM, 7, CV_WINDOW_ADDR, CV_GRANULE }, -EINVAL,
		  "a handle with an address" },
		{ { CV_MIG_SHARE_VMM, 7, 0, 4 * CV_GRANULE }, -EINVAL,
		  "a handle over the quota" },
		{ { CV_MIG_SHARE_RESET, 0, 0, 0 }, 0, "reset" },
		{ { CV_MIG_SHARE_RESET, 0, 0, CV_GRANULE }, -EINVAL,
		  "reset with a size" },
		{ { 0, 0, 0, 0 }, -EINVAL, "kind 0" },
		{ { 4, 0, 0, 0 }, -EINVAL, "kind 4" },
	};
	char why[WHYLEN];
	uint32_t i;
	int r;

	for (i = 0; i < CV_ARRAY_SIZE(c); i++) {
		why[0] = 0;
		r = cv_mig_share_check(&c[i].s, 3 * CV_GRANULE, why,
				       sizeof(why));
		CHECK(r == c[i].want && (!r || why[0]), "share %s: %d %s",
		      c[i].what, r, why);
	}
}

static void test_abort(void)
{
	char big[300];
	struct cv_mig_abort a, d;
	uint8_t raw[320];
	int32_t code;
	size_t i;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cv_mig_abort_make(&a, -EIO, big);
	CHECK(a.code == -EIO && !a.pad && strlen(a.msg) == CV_MIG_MSG_LEN - 1,
	      "make truncates a long message to %zu bytes", strlen(a.msg));
	cv_mig_abort_make(&a, -ENOSPC, NULL);
	CHECK(a.code == -ENOSPC && !a.msg[0], "make without a message");
	cv_mig_abort_make(&a, -ENOMEM, "destination out of memory");
	cv_mig_abort_decode(&a, sizeof(a), &d);
	CHECK(d.code == -ENOMEM && !strcmp(d.msg, a.msg), "round trip: %d %s",
	      d.code, d.msg);

	cv_mig_abort_decode(NULL, 0, &d);
	CHECK(d.code == -EPROTO && !d.msg[0], "0 bytes: -EPROTO, no message");
	code = -EIO;
	memcpy(raw, &code, 4);
	cv_mig_abort_decode(raw, 3, &d);
	CHECK(d.code == -EPROTO, "3 bytes: -EPROTO");
	cv_mig_abort_decode(raw, 4, &d);
	CHECK(d.code == -EIO && !d.msg[0], "4 bytes: the code only");
	for (i = 0; i < 5; i++) {
		const int32_t in[5] = { 0, 5, -4096, INT32_MIN, -4095 };
		const int32_t out[5] = { -EPROTO, -EPROTO, -EPROTO, -EPROTO,
					 -4095 };

		memcpy(raw, &in[i], 4);
		cv_mig_abort_decode(raw, 8, &d);
		CHECK(d.code == out[i], "code %d becomes %d", in[i], d.code);
	}
	memset(raw, 0, sizeof(raw));
	memcpy(raw + 8, "a\nb\x01" "c\xff" "d", 7);
	cv_mig_abort_decode(raw, sizeof(a), &d);
	CHECK(!strcmp(d.msg, "a?b?c?d"), "non-printable bytes: \"%s\"", d.msg);
	memcpy(raw + 8, "ab\0cd", 5);
	cv_mig_abort_decode(raw, sizeof(a), &d);
	CHECK(!strcmp(d.msg, "ab"), "cut at the first NUL: \"%s\"", d.msg);
	memset(raw + 8, 'y', sizeof(raw) - 8);
	cv_mig_abort_decode(raw, sizeof(raw), &d);
	CHECK(strlen(d.msg) == CV_MIG_MSG_LEN - 1,
	      "no NUL, trailing bytes: %zu chars and a NUL", strlen(d.msg));
	cv_mig_abort_decode(raw, 20, &d);
	CHECK(strlen(d.msg) == 12, "a short payload: %zu chars",
	      strlen(d.msg));
}

static void test_fixed_len(void)
{
	static const size_t want[CV_MIG_TYPE_MAX + 2] = {
		[0] = SIZE_MAX,
		[CV_MIG_HELLO] = 80, [CV_MIG_WELCOME] = 8,
		[CV_MIG_PLAN] = SIZE_MAX, [CV_MIG_DIGEST_REQ] = 16,
		[CV_MIG_DIGESTS] = 16, [CV_MIG_GRANULES] = 16,
		[CV_MIG_SLOT_FREE] = 8, [CV_MIG_ROUND_END] = 16,
		[CV_MIG_ROUND_DONE] = 16, [CV_MIG_STATE] = 16,
		[CV_MIG_READY] = 0, [CV_MIG_COMMIT] = 0,
		[CV_MIG_RUNNING] = 8, [CV_MIG_ABORT] = SIZE_MAX,
		[CV_MIG_SHARE] = 24, [CV_MIG_TYPE_MAX + 1] = SIZE_MAX,
	};
	uint32_t t;
	int bad = 0;

	for (t = 0; t < CV_ARRAY_SIZE(want); t++)
		bad += cv_mig_fixed_len(t) != want[t];
	CHECK(bad == 0 && cv_mig_fixed_len(UINT32_MAX) == SIZE_MAX,
	      "fixed_len of every type (%d wrong)", bad);
}

int main(void)
{
	test_roundtrip();
	test_fds();
	test_big();
	test_concurrent();
	test_eof();
	test_bad_records();
	test_timeout();
	test_send_errors();
	test_plan_roundtrip();
	test_plan_ranges();
	test_plan_vmm();
	test_plan_heap();
	test_plan_sizes();
	test_granules_covers();
	test_hello();
	test_abort();
	test_fixed_len();
	test_share();
	return unit_done();
}

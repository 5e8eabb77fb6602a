/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the control protocol (core/ctl.c) and of the daemon's
 * input validation (daemon/msg.c): framing over a socketpair, fd passing,
 * refusal of truncated, oversized, mislabelled and mis-sized messages,
 * admission, the probe parser, SIZE parsing and formatting.
 *
 * Prints "N passed, N failed"; exits 1 on any failure.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/ctl.h"
#include "../core/util.h"
#include "../daemon/cuvisord.h"

static int passed, failed;

#define CHECK(cond)                                                    \
	do {                                                           \
		if (cond) {                                            \
			passed++;                                      \
		} else {                                               \
			failed++;                                      \
			fprintf(stderr, "%s:%d: %s: check failed: %s\n",\
				__FILE__, __LINE__, __func__, #cond);  \
		}                                                      \
	} while (0)

static void pair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		perror("socketpair");
		exit(1);
	}
}

static void unpair(int sv[2])
{
	close(sv[0]);
	close(sv[1]);
}

static int count_fds(void)
{
	struct dirent *e;
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the DIR's own fd */
}

/* Sends raw bytes as one datagram, optionally with fds. */
static void send_raw(int sock, const void *p, size_t n, const int *fds,
		     int nfds)
{
	union {
		struct cmsghdr a;
		char b[CMSG_SPACE(sizeof(int) * 8)];
	} cb;
	struct iovec iov = { (void *)p, n };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;

	if (nfds) {
		memset(&cb, 0, sizeof(cb));
		m.msg_control = cb.b;
		m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	if (sendmsg(sock, &m, 0) != (ssize_t)n) {
		perror("sendmsg");
		exit(1);
	}
}

static void test_roundtrip(void)
{
	struct cv_ctl_attach a = { .pid = 42, .gpu = -1, .mem = 1ull << 30,
				   .proto = 1, .name = "app" }, b;
	struct cv_ctl_hdr h;
	int sv[2], n;

	pair(sv);
	CHECK(cv_ctl_send(sv[0], CV_CTL_ATTACH, 0, &a, sizeof(a), NULL, 0) ==
	      0);
	n = cv_ctl_recv(sv[1], &h, &b, sizeof(b), NULL, NULL, 1000);
	CHECK(n == (int)sizeof(a));
	CHECK(h.magic == CV_CTL_MAGIC && h.type == CV_CTL_ATTACH &&
	      h.len == sizeof(a) && h.status == 0 && h.flags == 0);
	CHECK(!memcmp(&a, &b, sizeof(a)));

	CHECK(cv_ctl_send(sv[1], CV_CTL_PS | CV_CTL_REPLY, -ENODEV, NULL, 0,
			  NULL, 0) == 0);
	n = cv_ctl_recv(sv[0], &h, &b, sizeof(b), NULL, NULL, 1000);
	CHECK(n == 0 && h.type == (CV_CTL_PS | CV_CTL_REPLY) &&
	      h.status == -ENODEV);
	unpair(sv);
}

static void test_fd_passing(void)
{
	struct cv_ctl_hdr h;
	int sv[2], p1[2], p2[2], fds[4], nfds = 4, before, n;
	char c = 0;

	pair(sv);
	CHECK(pipe(p1) == 0 && pipe(p2) == 0);
	fds[0] = p1[1];
	fds[1] = p2[1];
	CHECK(cv_ctl_send(sv[0], CV_CTL_W_READY, 0, "x", 1, fds, 2) == 0);
	close(p1[1]);
	close(p2[1]);
	n = cv_ctl_recv(sv[1], &h, &c, 1, fds, &nfds, 1000);
	CHECK(n == 1 && c == 'x' && nfds == 2);
	CHECK((fcntl(fds[0], F_GETFD) & FD_CLOEXEC) != 0);
	CHECK(write(fds[0], "a", 1) == 1 && read(p1[0], &c, 1) == 1 &&
	      c == 'a');
	CHECK(write(fds[1], "b", 1) == 1 && read(p2[0], &c, 1) == 1 &&
	      c == 'b');
	close(fds[0]);
	close(fds[1]);

	/* More fds than the receiver takes: refused, all closed. */
	before = count_fds();
	fds[0] = fds[1] = fds[2] = p1[0];
	CHECK(cv_ctl_send(sv[0], CV_CTL_W_READY, 0, NULL, 0, fds, 3) == 0);
	nfds = 2;
	CHECK(cv_ctl_recv(sv[1], &h, NULL, 0, fds, &nfds, 1000) == -EBADMSG);
	CHECK(nfds == 0 && count_fds() == before);

	/* fds to a receiver that takes none. */
	CHECK(cv_ctl_send(sv[0], CV_CTL_PS, 0, NULL, 0, p1, 1) == 0);
	CHECK(cv_ctl_recv(sv[1], &h, NULL, 0, NULL, NULL, 1000) == -EBADMSG);
	CHECK(count_fds() == before);

	/* More than CV_CTL_MAX_FDS at once (raw): refused, none leak. */
	int many[8] = { p1[0], p1[0], p1[0], p1[0], p1[0], p1[0], p1[0],
			p1[0] };
	struct cv_ctl_hdr raw = { CV_CTL_MAGIC, CV_CTL_PS, 0, 0, 0 };

	send_raw(sv[0], &raw, sizeof(raw), many, 8);
	nfds = 4;
	CHECK(cv_ctl_recv(sv[1], &h, NULL, 0, fds, &nfds, 1000) == -EBADMSG);
	CHECK(count_fds() == before);

	/* Bad arguments to send. */
	CHECK(cv_ctl_send(sv[0], CV_CTL_PS, 0, NULL, 0, fds, 5) == -EINVAL);
	CHECK(cv_ctl_send(sv[0], CV_CTL_PS, 0, NULL, 0, NULL, 1) == -EINVAL);
	CHECK(cv_ctl_send(sv[0], CV_CTL_PS, 0, NULL, 4, NULL, 0) == -EINVAL);
	close(p1[0]);
	close(p2[0]);
	unpair(sv);
}

static void test_bad_frames(void)
{
	static uint8_t big[70000];
	struct cv_ctl_hdr h, raw;
	uint8_t buf[CV_CTL_MAX];
	int sv[2];

	pair(sv);
	/* bad magic */
	raw = (struct cv_ctl_hdr){ 0x12345678, CV_CTL_PS, 0, 0, 0 };
	send_raw(sv[0], &raw, sizeof(raw), NULL, 0);
	CHECK(cv_ctl_recv(sv[1], &h, buf, sizeof(buf), NULL, NULL, 1000) ==
	      -EBADMSG);
	/* shorter than a header */
	send_raw(sv[0], "VCTL\1", 5, NULL, 0);
	CHECK(cv_ctl_recv(sv[1], &h, buf, sizeof(buf), NULL, NULL, 1000) ==
	      -EBADMSG);
	/* len says more than came */
	raw = (struct cv_ctl_hdr){ CV_CTL_MAGIC, CV_CTL_ATTACH, 0, 88, 0 };
	memcpy(big, &raw, sizeof(raw));
	send_raw(sv[0], big, sizeof(raw) + 10, NULL, 0);
	CHECK(cv_ctl_recv(sv[1], &h, buf, sizeof(buf), NULL, NULL, 1000) ==
	      -EBADMSG);
	/* len says less than came */
	raw.len = 4;
	memcpy(big, &raw, sizeof(raw));
	send_raw(sv[0], big, sizeof(raw) + 10, NULL, 0);
	CHECK(cv_ctl_recv(sv[1], &h, buf, sizeof(buf), NULL, NULL, 1000) ==
	      -EBADMSG);
	/* nonzero flags, positive status, status below -4095 */
	raw = (struct cv_ctl_hdr){ CV_CTL_MAGIC, CV_CTL_PS, 1, 0, 0 };
	send_raw(sv[0], &raw, sizeof(raw), NULL, 0);
	CHECK(cv_ctl_recv(sv[1], &h, buf, sizeof(buf), NULL, NULL, 1000) ==
	      -EBADMSG);
	raw = (struct cv_ctl_hdr){ CV_CTL_MAGIC, CV_CTL_PS, 0, 0, 5 };
	send_raw(sv[0], &raw, sizeof(raw), NULL, 0);
	CHECK(cv_ctl_recv(sv[1], &h, buf, sizeof(buf), NULL, NULL, 1000) ==
	      -EBADMSG);
	raw.status = -5000;
	send_raw(sv[0], &raw, sizeof(raw), NULL, 0);
	CHECK(cv_ctl_recv(sv[1], &h, buf, sizeof(buf), NULL, NULL, 1000) ==
	      -EBADMSG);
	/* larger than CV_CTL_MAX, with a header that claims it all */
	raw = (struct cv_ctl_hdr){ CV_CTL_MAGIC, CV_CTL_PS, 0,
				   sizeof(big) - sizeof(raw), 0 };
	memcpy(big, &raw, sizeof(raw));
	send_raw(sv[0], big, sizeof(big), NULL, 0);
	CHECK(cv_ctl_recv(sv[1], &h, buf, sizeof(buf), NULL, NULL, 1000) ==
	      -EMSGSIZE);
	/* a valid message longer than the receiver's buffer */
	CHECK(cv_ctl_send(sv[0], CV_CTL_PS, 0, big, 100, NULL, 0) == 0);
	CHECK(cv_ctl_recv(sv[1], &h, buf, 99, NULL, NULL, 1000) == -EMSGSIZE);
	/* the largest message there is: fine */
	CHECK(cv_ctl_send(sv[0], CV_CTL_PS, 0, big, CV_CTL_MAX - 16, NULL,
			  0) == 0);
	CHECK(cv_ctl_recv(sv[1], &h, buf, sizeof(buf), NULL, NULL, 1000) ==
	      (int)(CV_CTL_MAX - 16));
	CHECK(cv_ctl_send(sv[0], CV_CTL_PS, 0, big, CV_CTL_MAX - 15, NULL,
			  0) == -EMSGSIZE);
	/* after all that the socket still works */
	CHECK(cv_ctl_send(sv[0], CV_CTL_INFO, 0, NULL, 0, NULL, 0) == 0);
	CHECK(cv_ctl_recv(sv[1], &h, buf, sizeof(buf), NULL, NULL, 1000) == 0 &&
	      h.type == CV_CTL_INFO);
	unpair(sv);
}

static void test_timeout_and_hup(void)
{
	struct cv_ctl_hdr h;
	uint64_t t0;
	int sv[2];

	pair(sv);
	t0 = cv_now_ns();
	CHECK(cv_ctl_recv(sv[1], &h, NULL, 0, NULL, NULL, 50) == -ETIMEDOUT);
	CHECK(cv_now_ns() - t0 >= 45000000ull);
	CHECK(cv_ctl_recv(sv[1], &h, NULL, 0, NULL, NULL, 0) == -ETIMEDOUT);
	close(sv[0]);
	CHECK(cv_ctl_recv(sv[1], &h, NULL, 0, NULL, NULL, 1000) ==
	      -ECONNRESET);
	CHECK(cv_ctl_send(sv[1], CV_CTL_PS, 0, NULL, 0, NULL, 0) == -EPIPE);
	close(sv[1]);
}

static void test_hdr_check(void)
{
	struct cv_ctl_hdr h = { CV_CTL_MAGIC, CV_CTL_INFO, 0, 8, 0 };

	CHECK(cv_ctl_hdr_check(&h, 24) == 8);
	CHECK(cv_ctl_hdr_check(&h, 23) == -EBADMSG);
	CHECK(cv_ctl_hdr_check(&h, 15) == -EBADMSG);
	CHECK(cv_ctl_hdr_check(&h, CV_CTL_MAX + 1) == -EMSGSIZE);
	h.len = CV_CTL_MAX - 16;
	CHECK(cv_ctl_hdr_check(&h, CV_CTL_MAX) == (int)(CV_CTL_MAX - 16));
	h.len = 0xffffffffu;
	CHECK(cv_ctl_hdr_check(&h, 16) == -EBADMSG);
	h.len = 0;
	h.status = -4095;
	CHECK(cv_ctl_hdr_check(&h, 16) == 0);
	h.status = -4096;
	CHECK(cv_ctl_hdr_check(&h, 16) == -EBADMSG);
}

static void test_paths(void)
{
	char buf[256], longp[200];

	setenv("CUVISOR_SOCKET", "/x/y.sock", 1);
	CHECK(cv_ctl_default_path(buf, sizeof(buf)) == 0 &&
	      !strcmp(buf, "/x/y.sock"));
	CHECK(cv_ctl_default_path(buf, 5) == -ENAMETOOLONG);
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = 0;
	setenv("CUVISOR_SOCKET", longp, 1);
	CHECK(cv_ctl_default_path(buf, sizeof(buf)) == -ENAMETOOLONG);
	unsetenv("CUVISOR_SOCKET");
	CHECK(cv_ctl_default_path(buf, sizeof(buf)) == 0);
	if (geteuid() == 0) {
		CHECK(!strcmp(buf, "/run/cuvisor/cuvisord.sock"));
	} else {
		setenv("XDG_RUNTIME_DIR", "/run/user/7", 1);
		CHECK(cv_ctl_default_path(buf, sizeof(buf)) == 0 &&
		      !strcmp(buf, "/run/user/7/cuvisor/cuvisord.sock"));
		unsetenv("XDG_RUNTIME_DIR");
		CHECK(cv_ctl_default_path(buf, sizeof(buf)) == 0 &&
		      !strncmp(buf, "/tmp/cuvisor-", 13));
	}
	CHECK(cv_ctl_connect("/nonexistent/cuvisor.sock") == -ENOENT);
	CHECK(cv_ctl_connect(longp) == -ENAMETOOLONG);
	CHECK(cv_ctl_connect("") == -EINVAL);
}

static void test_sizes(void)
{
	static const struct { const char *s; int r; uint64_t v; } t[] = {
		{ "0", 0, 0 }, { "123", 0, 123 }, { "1K", 0, 1024 },
		{ "1k", 0, 1024 }, { "2M", 0, 2ull << 20 },
		{ "1G", 0, 1ull << 30 }, { "3T", 0, 3ull << 40 },
		{ "1.5G", 0, 3ull << 29 }, { "1GiB", 0, 1ull << 30 },
		{ "1GB", 0, 1ull << 30 }, { ".5K", 0, 512 },
		{ "1.999999999K", 0, 2047 }, { "1.5", 0, 1 },
		{ "18446744073709551615", 0, UINT64_MAX },
		{ "16777215T", 0, 16777215ull << 40 },
		{ "", -EINVAL, 0 }, { "abc", -EINVAL, 0 },
		{ "1X", -EINVAL, 0 }, { "1Kb", -EINVAL, 0 },
		{ "1 G", -EINVAL, 0 }, { "-1", -EINVAL, 0 },
		{ ".", -EINVAL, 0 }, { "1G ", -EINVAL, 0 },
		{ "18446744073709551616", -ERANGE, 0 },
		{ "16777216T", -ERANGE, 0 },
	};
	char buf[32];
	uint64_t v;
	size_t i;
	int r;

	for (i = 0; i < CV_ARRAY_SIZE(t); i++) {
		v = 77;
		r = cv_ctl_parse_size(t[i].s, &v);
		if (r != t[i].r || (r == 0 && v != t[i].v))
			fprintf(stderr, "size '%s': %d %llu\n", t[i].s, r,
				(unsigned long long)v);
		CHECK(r == t[i].r && (r || v == t[i].v));
	}
	CHECK(!strcmp(cv_ctl_fmt_size(0, buf, sizeof(buf)), "0B"));
	CHECK(!strcmp(cv_ctl_fmt_size(1023, buf, sizeof(buf)), "1023B"));
	CHECK(!strcmp(cv_ctl_fmt_size(1536, buf, sizeof(buf)), "1.5K"));
	CHECK(!strcmp(cv_ctl_fmt_size(8ull << 30, buf, sizeof(buf)), "8.0G"));
	CHECK(!strcmp(cv_ctl_fmt_size((1ull << 20) - 1, buf, sizeof(buf)),
		      "1.0M"));
	CHECK(!strcmp(cv_ctl_fmt_size(UINT64_MAX, buf, sizeof(buf)), "16.0E"));
}

static int decode(enum cv_d_peer from, uint16_t type, int32_t status,
		  const void *p, uint32_t len, int nfds, struct cv_d_msg *m)
{
	struct cv_ctl_hdr h = { CV_CTL_MAGIC, type, 0, len, status };
	const char *why = NULL;
	int r;

	r = cv_d_msg_decode(from, &h, p, len, nfds, m, &why);
	CHECK(r == 0 || (r == -EBADMSG && why && *why));
	return r;
}

static void test_decode_client(void)
{
	struct cv_ctl_attach a = { .pid = 1, .gpu = 0, .mem = 5, .proto = 1,
				   .name = "prog\n\x1b[31m" };
	struct cv_d_msg m;
	char big[200] = { 0 };

	CHECK(decode(CV_D_PEER_CLIENT, CV_CTL_ATTACH, 0, &a, sizeof(a), 0, &m)
	      == 0);
	CHECK(m.type == CV_CTL_ATTACH && m.u.attach.mem == 5 &&
	      !strcmp(m.u.attach.name, "prog??[31m"));
	CHECK(decode(CV_D_PEER_CLIENT, CV_CTL_ATTACH, 0, &a, sizeof(a) - 1, 0,
		     &m) < 0);
	CHECK(decode(CV_D_PEER_CLIENT, CV_CTL_ATTACH, 0, big, sizeof(a) + 1, 0,
		     &m) < 0);
	CHECK(decode(CV_D_PEER_CLIENT, CV_CTL_ATTACH, 0, &a, sizeof(a), 1, &m)
	      < 0);
	CHECK(decode(CV_D_PEER_CLIENT, CV_CTL_ATTACH, -1, &a, sizeof(a), 0,
		     &m) < 0);
	memset(a.name, 'x', sizeof(a.name));
	CHECK(decode(CV_D_PEER_CLIENT, CV_CTL_ATTACH, 0, &a, sizeof(a), 0, &m)
	      < 0);
	CHECK(decode(CV_D_PEER_CLIENT, CV_CTL_PS, 0, NULL, 0, 0, &m) == 0);
	CHECK(decode(CV_D_PEER_CLIENT, CV_CTL_INFO, 0, NULL, 0, 0, &m) == 0);
	CHECK(decode(CV_D_PEER_CLIENT, CV_CTL_SHUTDOWN, 0, NULL, 0, 0, &m) ==
	      0);
	CHECK(decode(CV_D_PEER_CLIENT, CV_CTL_PS, 0, big, 1, 0, &m) < 0);
	CHECK(decode(CV_D_PEER_CLIENT, CV_CTL_PS | CV_CTL_REPLY, 0, NULL, 0, 0,
		     &m) < 0);
	CHECK(decode(CV_D_PEER_CLIENT, CV_CTL_W_READY, 0, big, 264, 1, &m) <
	      0);
	CHECK(decode(CV_D_PEER_CLIENT, 999, 0, NULL, 0, 0, &m) < 0);
	CHECK(decode(CV_D_PEER_CLIENT, CV_CTL_PS, 0, NULL, 0, 99, &m) < 0);
	CHECK(decode(CV_D_PEER_CLIENT, CV_CTL_PS, 0, NULL, CV_CTL_MAX, 0, &m) <
	      0);
}

static void test_decode_worker(void)
{
	struct cv_ctl_ready r = { .status = 0 };
	struct cv_ctl_w_stats_r s = { .mem_used = 1, .state = 1 };
	struct cv_d_msg m;

	CHECK(decode(CV_D_PEER_WORKER, CV_CTL_W_READY, 0, &r, sizeof(r), 1,
		     &m) == 0);
	CHECK(decode(CV_D_PEER_WORKER, CV_CTL_W_READY, 0, &r, sizeof(r), 0,
		     &m) < 0);
	CHECK(decode(CV_D_PEER_WORKER, CV_CTL_W_READY, 0, &r, sizeof(r), 2,
		     &m) < 0);
	CHECK(decode(CV_D_PEER_WORKER, CV_CTL_W_READY, 0, &r, sizeof(r) - 8,
		     1, &m) < 0);
	CHECK(decode(CV_D_PEER_WORKER, CV_CTL_W_READY, -5, &r, sizeof(r), 1,
		     &m) < 0);
	r.status = -ENOMEM;
	snprintf(r.msg, sizeof(r.msg), "out of\tmemory");
	CHECK(decode(CV_D_PEER_WORKER, CV_CTL_W_READY, 0, &r, sizeof(r), 0,
		     &m) == 0);
	CHECK(m.u.ready.status == -ENOMEM &&
	      !strcmp(m.u.ready.msg, "out of?memory"));
	CHECK(decode(CV_D_PEER_WORKER, CV_CTL_W_READY, 0, &r, sizeof(r), 1,
		     &m) < 0);
	r.status = 3;
	CHECK(decode(CV_D_PEER_WORKER, CV_CTL_W_READY, 0, &r, sizeof(r), 0,
		     &m) < 0);
	r.status = -ENOMEM;
	memset(r.msg, 'z', sizeof(r.msg));
	CHECK(decode(CV_D_PEER_WORKER, CV_CTL_W_READY, 0, &r, sizeof(r), 0,
		     &m) < 0);

	/* W_SPARE: a ready, never an fd, the reason NUL-terminated */
	memset(&r, 0, sizeof(r));
	CHECK(decode(CV_D_PEER_WORKER, CV_CTL_W_SPARE, 0, &r, sizeof(r), 0,
		     &m) == 0 && m.u.ready.status == 0);
	CHECK(decode(CV_D_PEER_WORKER, CV_CTL_W_SPARE, 0, &r, sizeof(r), 1,
		     &m) < 0);
	CHECK(decode(CV_D_PEER_WORKER, CV_CTL_W_SPARE, -5, &r, sizeof(r), 0,
		     &m) < 0);
	CHECK(decode(CV_D_PEER_WORKER, CV_CTL_W_SPARE, 0, &r, sizeof(r) - 1,
		     0, &m) < 0);
	r.status = -ENODEV;
	snprintf(r.msg, sizeof(r.msg), "no\nGPU");
	CHECK(decode(CV_D_PEER_WORKER, CV_CTL_W_SPARE, 0, &r, sizeof(r), 0,
		     &m) == 0 && m.u.ready.status == -ENODEV &&
	      !strcmp(m.u.ready.msg, "no?GPU"));
	r.status = 1;
	CHECK(decode(CV_D_PEER_WORKER, CV_CTL_W_SPARE, 0, &r, sizeof(r), 0,
		     &m) < 0);
	r.status = -ENODEV;
	memset(r.msg, 'z', sizeof(r.msg));
	CHECK(decode(CV_D_PEER_WORKER, CV_CTL_W_SPARE, 0, &r, sizeof(r), 0,
		     &m) < 0);
	CHECK(decode(CV_D_PEER_CLIENT, CV_CTL_W_SPARE, 0, &r, sizeof(r), 0,
		     &m) < 0);

	CHECK(decode(CV_D_PEER_WORKER, CV_CTL_W_STATS | CV_CTL_REPLY, 0, &s,
		     sizeof(s), 0, &m) == 0);
	CHECK(m.u.stats.mem_used == 1 && m.u.stats.state == 1);
	CHECK(decode(CV_D_PEER_WORKER, CV_CTL_W_STATS | CV_CTL_REPLY, -EIO,
		     NULL, 0, 0, &m) == 0);
	CHECK(decode(CV_D_PEER_WORKER, CV_CTL_W_STATS | CV_CTL_REPLY, -EIO, &s,
		     sizeof(s), 0, &m) < 0);
	CHECK(decode(CV_D_PEER_WORKER, CV_CTL_W_STATS | CV_CTL_REPLY, 0, &s,
		     sizeof(s) - 1, 0, &m) < 0);
	CHECK(decode(CV_D_PEER_WORKER, CV_CTL_W_STATS | CV_CTL_REPLY, 0, &s,
		     sizeof(s), 1, &m) < 0);
	s.state = CV_STATE_MAX + 1;
	CHECK(decode(CV_D_PEER_WORKER, CV_CTL_W_STATS | CV_CTL_REPLY, 0, &s,
		     sizeof(s), 0, &m) < 0);
	CHECK(decode(CV_D_PEER_WORKER, CV_CTL_W_STOP | CV_CTL_REPLY, 0, NULL,
		     0, 0, &m) == 0);
	CHECK(decode(CV_D_PEER_WORKER, CV_CTL_W_STOP | CV_CTL_REPLY, 0, &s, 8,
		     0, &m) < 0);
	CHECK(decode(CV_D_PEER_WORKER, CV_CTL_W_STATS, 0, NULL, 0, 0, &m) < 0);
	CHECK(decode(CV_D_PEER_WORKER, CV_CTL_PS, 0, NULL, 0, 0, &m) < 0);
}

/* cv_d_admit without overcommit, its reason in why */
static int admit(const struct cv_d_gpu *g, int n, const struct cv_ctl_attach *a,
		 uint64_t dflt, int *gi, uint64_t *q, char *why)
{
	return cv_d_admit(g, n, a, dflt, false, gi, q, why, 256);
}

static void test_admit(void)
{
	struct cv_d_gpu g[3] = {
		{ .index = 0, .total = 16ull << 30, .ntenants = 2 },
		{ .index = 2, .total = 8ull << 30, .ntenants = 1 },
		{ .index = 5, .total = 80ull << 30, .ntenants = 1 },
	};
	struct cv_ctl_attach a = { .gpu = -1, .proto = CV_PROTO_VERSION };
	uint64_t q = 0;
	char why[256];
	int gi = -1;

	/* (the quotas held are 0 here: the sums are tested below) */
	CHECK(admit(g, 3, &a, 0, &gi, &q, why) == 0 && gi == 1 &&
	      q == 8ull << 30);
	CHECK(admit(g, 3, &a, 1ull << 30, &gi, &q, why) == 0 &&
	      q == 1ull << 30);
	CHECK(admit(g, 3, &a, 9ull << 30, &gi, &q, why) == 0 && gi == 2);
	CHECK(admit(g, 3, &a, 17ull << 30, &gi, &q, why) == 0 && gi == 2);
	CHECK(admit(g, 3, &a, 81ull << 30, &gi, &q, why) == -ENOMEM &&
	      strstr(why, "quota 81.0 GiB asked, more than gpu 5's 80.0 GiB"));
	a.gpu = 5;
	a.mem = 80ull << 30;
	CHECK(admit(g, 3, &a, 0, &gi, &q, why) == 0 && gi == 2 &&
	      q == 80ull << 30);
	a.mem++;
	CHECK(admit(g, 3, &a, 0, &gi, &q, why) == -ENOMEM);
	a.mem = 0;
	a.gpu = 1;
	CHECK(admit(g, 3, &a, 0, &gi, &q, why) == -ENODEV &&
	      strstr(why, "no gpu 1"));
	a.gpu = -2;
	CHECK(admit(g, 3, &a, 0, &gi, &q, why) == -ENODEV);
	a.gpu = 0;
	CHECK(admit(g, 0, &a, 0, &gi, &q, why) == -ENODEV);
	a.proto = 99;
	CHECK(admit(g, 3, &a, 0, &gi, &q, why) == -EPROTO &&
	      strstr(why, "protocol 99"));
	a.proto = CV_PROTO_VERSION;
	a.flags = 1;
	CHECK(admit(g, 3, &a, 0, &gi, &q, why) == -EINVAL);
}

/* Quotas that would add up past a GPU's memory: refused, saying how much
 * is left, unless overcommit; gpu -1 picks a GPU the quota fits. */
static void test_admit_overcommit(void)
{
	struct cv_d_gpu g[2] = {
		{ .index = 0, .total = 80ull << 30, .ntenants = 3,
		  .quota_sum = 78ull << 30 },
		{ .index = 1, .total = 80ull << 30, .ntenants = 4,
		  .quota_sum = 76ull << 30 },
	};
	struct cv_ctl_attach a = { .gpu = 0, .mem = 8ull << 30,
				   .proto = CV_PROTO_VERSION };
	uint64_t q = 0;
	char why[256] = "";
	int gi = -1;

	CHECK(admit(g, 2, &a, 0, &gi, &q, why) == -ENOSPC);
	CHECK(strstr(why, "quota 8.0 GiB asked, 2.0 GiB of gpu 0's 80.0 GiB "
		      "left") != NULL);
	CHECK(strstr(why, "--overcommit") != NULL);
	/* exactly what is left fits */
	a.mem = 2ull << 30;
	CHECK(admit(g, 2, &a, 0, &gi, &q, why) == 0 && gi == 0 &&
	      q == 2ull << 30);
	a.mem++;
	CHECK(admit(g, 2, &a, 0, &gi, &q, why) == -ENOSPC);
	/* overcommit lets it through, up to the GPU's memory */
	a.mem = 8ull << 30;
	CHECK(cv_d_admit(g, 2, &a, 0, true, &gi, &q, why, sizeof(why)) == 0 &&
	      gi == 0 && q == 8ull << 30);
	a.mem = 81ull << 30;
	CHECK(cv_d_admit(g, 2, &a, 0, true, &gi, &q, why, sizeof(why)) ==
	      -ENOMEM);
	/* gpu -1: the GPU where it fits, though it has more tenants */
	a.gpu = -1;
	a.mem = 3ull << 30;
	CHECK(admit(g, 2, &a, 0, &gi, &q, why) == 0 && gi == 1);
	/* fits nowhere: the GPU with the most room is named */
	a.mem = 5ull << 30;
	CHECK(admit(g, 2, &a, 0, &gi, &q, why) == -ENOSPC &&
	      strstr(why, "4.0 GiB of gpu 1's 80.0 GiB left"));
	/* the default quota (the GPU's whole memory) counts too */
	a.mem = 0;
	g[0].quota_sum = 1;
	g[1].quota_sum = 0;
	CHECK(admit(g, 2, &a, 0, &gi, &q, why) == 0 && gi == 1 &&
	      q == 80ull << 30);
	g[1].quota_sum = 1;
	CHECK(admit(g, 2, &a, 0, &gi, &q, why) == -ENOSPC);
	CHECK(admit(g, 2, &a, 1ull << 30, &gi, &q, why) == 0 &&
	      q == 1ull << 30);
	/* a sum already past the total (overcommitted earlier) leaves 0 */
	g[0].quota_sum = 90ull << 30;
	a.gpu = 0;
	a.mem = 1;
	CHECK(admit(g, 2, &a, 0, &gi, &q, why) == -ENOSPC &&
	      strstr(why, "0 B of gpu 0's"));
}

static int probe(const char *s, struct cv_d_gpu *g, int max)
{
	const char *why = NULL;
	int r = cv_d_probe_parse(s, strlen(s), g, max, &why);

	CHECK(r >= 0 || (r == -EBADMSG && why));
	return r;
}

static void test_probe(void)
{
	struct cv_d_gpu g[4];
	char name[200];

	CHECK(probe("", g, 4) == 0);
	CHECK(probe("driver 580\ngpu 1 100 NVIDIA H100 80GB HBM3\n"
		    "noise\ngpu 0 200 B", g, 4) == 2);
	CHECK(g[0].index == 0 && g[0].total == 200 && !strcmp(g[0].name, "B"));
	CHECK(g[1].index == 1 && g[1].total == 100 &&
	      !strcmp(g[1].name, "NVIDIA H100 80GB HBM3"));
	CHECK(probe("gpu 0 1 a\ngpu 0 1 b\n", g, 4) < 0);
	CHECK(probe("gpu 0 0 zero\n", g, 4) < 0);
	CHECK(probe("gpu x 1 a\n", g, 4) < 0);
	CHECK(probe("gpu 0 1\n", g, 4) < 0);
	CHECK(probe("gpu 0 1 \n", g, 4) < 0);
	CHECK(probe("gpu -1 1 a\n", g, 4) < 0);
	CHECK(probe("gpu 65536 1 a\n", g, 4) < 0);
	CHECK(probe("gpu 0 99999999999999999999 a\n", g, 4) < 0);
	CHECK(probe("gpu 0 1 a\ngpu 1 1 b\n", g, 1) < 0);
	CHECK(probe("gpu  0 1 a\n", g, 4) < 0);
	snprintf(name, sizeof(name), "gpu 3 5 %0150d\x01\n", 7);
	CHECK(probe(name, g, 4) == 1 && strlen(g[0].name) == 63);
	CHECK(probe("gpu 3 5 a\x01\x7f\n", g, 4) == 1 &&
	      !strcmp(g[0].name, "a??"));
}

int main(void)
{
	test_roundtrip();
	test_fd_passing();
	test_bad_frames();
	test_timeout_and_hup();
	test_hdr_check();
	test_paths();
	test_sizes();
	test_decode_client();
	test_decode_worker();
	test_admit();
	test_admit_overcommit();
	test_probe();
	printf("test_ctl: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

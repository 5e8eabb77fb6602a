/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the control protocol (core/ctl.c) and of the daemon's
 * input validation (daemon/msg.c): framing over a socketpair, fd passing,
 * refusal of truncated, oversized, mislabelled and mis-sized messages,
 * admission, the probe parser, SIZE parsing and formatting, and whom a
 * client takes for its daemon (cv_ctl_connect_daemon: the socket's
 * directory and the listener's uid; the other-uid cases need root and are
 * skipped, with a line saying so, without it).
 *
 * Prints "N passed, N failed"; exits 1 on any failure.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
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

#define NOBODY 65534u

/* A listening socket at path owned (SO_PEERCRED) by uid: a child binds
 * it as us, drops to uid, listens, says so on a pipe and waits for us to
 * kill it. Its pid, or -1. */
static pid_t listener_as(const char *path, uid_t uid)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int pp[2], fd;
	char c = 0;
	pid_t pid;

	if (pipe(pp) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
		fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
		    setresuid(uid, uid, uid) || listen(fd, 4))
			_exit(1);
		c = 1;
		if (write(pp[1], &c, 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(pp[1]);
	/* EOF (the child failed) or its byte: no sleeping on a guess. */
	if (pid < 0 || read(pp[0], &c, 1) != 1 || c != 1) {
		if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
		pid = -1;
	}
	close(pp[0]);
	return pid;
}

static void kill_listener(pid_t pid, const char *path)
{
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	unlink(path);
}

/* Our own daemon in our own 0700 directory: trusted; the same directory
 * writable by others, or a symlink planted by another uid: refused. */
static void test_trust_dir(const char *dir)
{
	struct cv_ctl_trust t = { .named = false };
	char sock[100], d[64], link[100];
	pid_t pid;
	int fd;

	snprintf(d, sizeof(d), "%s/d", dir);
	snprintf(sock, sizeof(sock), "%s/cuvisord.sock", d);
	CHECK(cv_ctl_connect_daemon(sock, &t) == -ENOENT); /* no dir */
	CHECK(mkdir(d, 0700) == 0);
	pid = listener_as(sock, geteuid());
	CHECK(pid > 0);
	fd = cv_ctl_connect_daemon(sock, &t);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	CHECK(chmod(d, 0777) == 0);
	CHECK(cv_ctl_connect_daemon(sock, &t) == -EPERM &&
	      strstr(t.why, "writable by others"));
	CHECK(chmod(d, 0720) == 0); /* group-writable: no better */
	CHECK(cv_ctl_connect_daemon(sock, &t) == -EPERM);
	CHECK(chmod(d, 0755) == 0);
	fd = cv_ctl_connect_daemon(sock, &t);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	/* Our own symlink to our directory is fine. */
	snprintf(link, sizeof(link), "%s/our-link", dir);
	CHECK(symlink("d", link) == 0);
	strcat(link, "/cuvisord.sock");
	fd = cv_ctl_connect_daemon(link, &t);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	kill_listener(pid, sock);
}

/* As root: a directory or a listener of another uid is refused, naming
 * it, unless the socket is named and CUVISOR_DAEMON_UID trusts it. */
static void test_trust_other_uid(const char *dir)
{
	struct cv_ctl_trust t = { .named = false };
	char sub[64], sock[100], ln[100];
	pid_t pid;
	int fd;

	snprintf(sub, sizeof(sub), "%s/o", dir);
	snprintf(sock, sizeof(sock), "%s/cuvisord.sock", sub);
	CHECK(mkdir(sub, 0700) == 0);
	pid = listener_as(sock, NOBODY);
	CHECK(pid > 0);
	/* Its directory owned by that uid. */
	CHECK(chown(sub, NOBODY, NOBODY) == 0);
	CHECK(cv_ctl_connect_daemon(sock, &t) == -EPERM && t.owner == NOBODY &&
	      strstr(t.why, "is owned by uid 65534"));
	CHECK(chown(sub, 0, 0) == 0);
	/* A symlink that uid planted, to a directory of ours. */
	snprintf(ln, sizeof(ln), "%s/planted", dir);
	CHECK(symlink("o", ln) == 0 && lchown(ln, NOBODY, NOBODY) == 0);
	strcat(ln, "/cuvisord.sock");
	CHECK(cv_ctl_connect_daemon(ln, &t) == -EPERM && t.owner == NOBODY);
	/* Our directory, a listener that runs as uid 65534. */
	CHECK(cv_ctl_connect_daemon(sock, &t) == -EPERM && t.owner == NOBODY &&
	      strstr(t.why, "it runs as uid 65534"));
	/* An untrusted directory with nothing in it: no daemon, no refusal. */
	snprintf(ln, sizeof(ln), "%s/empty", dir);
	CHECK(mkdir(ln, 0700) == 0 && chown(ln, NOBODY, NOBODY) == 0);
	strcat(ln, "/cuvisord.sock");
	CHECK(cv_ctl_connect_daemon(ln, &t) == -ENOENT);
	fd = cv_ctl_connect(sock);
	CHECK(fd >= 0 && cv_ctl_trust_peer(fd, sock, CV_CTL_UID_NONE, &t) ==
				 -EPERM);
	CHECK(fd >= 0 && cv_ctl_trust_peer(fd, sock, NOBODY, &t) == 0);
	if (fd >= 0)
		close(fd);
	/* The explicit opt-in: a named socket and CUVISOR_DAEMON_UID. */
	setenv("CUVISOR_DAEMON_UID", "65534", 1);
	CHECK(cv_ctl_connect_daemon(sock, &t) == -EPERM); /* not named */
	t.named = true;
	fd = cv_ctl_connect_daemon(sock, &t);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	setenv("CUVISOR_DAEMON_UID", "nobody", 1);
	CHECK(cv_ctl_connect_daemon(sock, &t) == -EINVAL &&
	      strstr(t.why, "not a uid"));
	unsetenv("CUVISOR_DAEMON_UID");
	kill_listener(pid, sock);
}

static void test_trust(void)
{
	char dir[] = "/tmp/cv-test-trust.XXXXXX", cmd[64];

	if (!mkdtemp(dir)) {
		failed++;
		return;
	}
	test_trust_dir(dir);
	if (geteuid() == 0)
		test_trust_other_uid(dir);
	else
		printf("# SKIP the other-uid trust checks: they need root\n");
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
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

/* CHECKPOINT: the image's name is one path component, with its flag and
 * the directory's fd, or nothing at all. */
static void test_decode_checkpoint(void)
{
	struct cv_ctl_ckpt ck = { .tenant = 3, .flags = CV_CKPT_STOP };
	struct cv_d_msg m;
	const char *why;

	CHECK(decode(CV_D_PEER_CLIENT, CV_CTL_CHECKPOINT, 0, &ck, sizeof(ck),
		     1, &m) == 0 && m.u.ckpt.tenant == 3);
	CHECK(decode(CV_D_PEER_CLIENT, CV_CTL_CHECKPOINT, 0, &ck, sizeof(ck),
		     0, &m) < 0);
	CHECK(decode(CV_D_PEER_CLIENT, CV_CTL_CHECKPOINT, 0, &ck, sizeof(ck),
		     2, &m) < 0);
	CHECK(decode(CV_D_PEER_CLIENT, CV_CTL_CHECKPOINT, 0, &ck, 16, 1, &m)
	      < 0);
	ck.flags |= CV_CKPT_NAME;
	CHECK(cv_ctl_ckpt_check(&ck, 2, false, &why) == -EINVAL); /* no name */
	strcpy(ck.name, "img.cvimg");
	CHECK(decode(CV_D_PEER_CLIENT, CV_CTL_CHECKPOINT, 0, &ck, sizeof(ck),
		     2, &m) == 0 && !strcmp(m.u.ckpt.name, "img.cvimg"));
	CHECK(cv_ctl_ckpt_check(&ck, 1, false, &why) == -EINVAL);
	strcpy(ck.name, "../img");
	CHECK(cv_ctl_ckpt_check(&ck, 2, false, &why) == -EINVAL);
	strcpy(ck.name, "..");
	CHECK(cv_ctl_ckpt_check(&ck, 2, false, &why) == -EINVAL);
	strcpy(ck.name, "a");
	ck.name[5] = 'x'; /* bytes after the NUL */
	CHECK(cv_ctl_ckpt_check(&ck, 2, false, &why) == -EINVAL);
	memset(ck.name, 'a', sizeof(ck.name)); /* no NUL */
	CHECK(cv_ctl_ckpt_check(&ck, 2, false, &why) == -EINVAL);
	memset(ck.name, 0, sizeof(ck.name));
	strcpy(ck.name, "a");
	ck.flags &= ~CV_CKPT_NAME; /* a name without the flag */
	CHECK(cv_ctl_ckpt_check(&ck, 1, false, &why) == -EINVAL && why);
	ck.flags = 0x80;
	memset(ck.name, 0, sizeof(ck.name));
	CHECK(cv_ctl_ckpt_check(&ck, 1, false, &why) == -EINVAL);
	ck.flags = 0;
	ck.level = CV_CKPT_LEVEL_MAX + 1;
	CHECK(cv_ctl_ckpt_check(&ck, 1, false, &why) == -EINVAL);
	/* KEEP: only the daemon's move (to the worker), with STOP, unnamed */
	ck.level = 0;
	ck.flags = CV_CKPT_STOP | CV_CKPT_KEEP;
	CHECK(cv_ctl_ckpt_check(&ck, 1, true, &why) == 0);
	CHECK(cv_ctl_ckpt_check(&ck, 1, false, &why) == -EINVAL);
	CHECK(decode(CV_D_PEER_CLIENT, CV_CTL_CHECKPOINT, 0, &ck, sizeof(ck),
		     1, &m) < 0);
	ck.flags = CV_CKPT_KEEP;
	CHECK(cv_ctl_ckpt_check(&ck, 1, true, &why) == -EINVAL);
	ck.flags = CV_CKPT_STOP | CV_CKPT_KEEP | CV_CKPT_NAME;
	strcpy(ck.name, "a");
	CHECK(cv_ctl_ckpt_check(&ck, 2, true, &why) == -EINVAL);
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

static void test_caps(void)
{
	char why[160];
	int lim = CV_D_MAX_CLIENTS - CV_D_PRIV_CLIENTS;

	CHECK(cv_d_conn_admit(4, 1001, false, 10, 3, why, sizeof(why)) == 0);
	CHECK(cv_d_conn_admit(4, 1001, false, 10, 4, why, sizeof(why)) ==
	      -EDQUOT && strstr(why, "uid 1001 has 4 connections") &&
	      strstr(why, "--max-conns-per-user 4"));
	/* root and ours: no per-user cap, and the reserve is theirs */
	CHECK(cv_d_conn_admit(4, 0, true, 10, 500, why, sizeof(why)) == 0);
	CHECK(cv_d_conn_admit(900, 1001, false, lim - 1, 0, why,
			      sizeof(why)) == 0);
	CHECK(cv_d_conn_admit(900, 1001, false, lim, 0, why, sizeof(why)) ==
	      -EAGAIN && strstr(why, "kept for root"));
	CHECK(cv_d_conn_admit(900, 0, true, CV_D_MAX_CLIENTS - 1, 0, why,
			      sizeof(why)) == 0);
	CHECK(cv_d_conn_admit(900, 0, true, CV_D_MAX_CLIENTS, 0, why,
			      sizeof(why)) == -EAGAIN);

	lim = CV_D_MAX_TENANTS - CV_D_PRIV_TENANTS;
	CHECK(cv_d_tenant_admit(2, 1001, false, 5, 1, why, sizeof(why)) == 0);
	CHECK(cv_d_tenant_admit(2, 1001, false, 5, 2, why, sizeof(why)) ==
	      -EDQUOT && strstr(why, "uid 1001 has 2 tenants") &&
	      strstr(why, "--max-tenants-per-user 2"));
	CHECK(cv_d_tenant_admit(2, 0, true, 5, 100, why, sizeof(why)) == 0);
	CHECK(cv_d_tenant_admit(500, 1001, false, lim, 0, why, sizeof(why)) ==
	      -EAGAIN && strstr(why, "kept for root"));
	CHECK(cv_d_tenant_admit(500, 0, true, lim, 0, why, sizeof(why)) == 0);
	CHECK(cv_d_tenant_admit(500, 0, true, CV_D_MAX_TENANTS, 0, why,
				sizeof(why)) == -EAGAIN);
}

/* The daemon's side of a refusal, as daemon/client.c does it. */
static void refuse(int fd, int status, const char *why)
{
	struct cv_ctl_refused r;

	memset(&r, 0, sizeof(r));
	snprintf(r.msg, sizeof(r.msg), "%s", why);
	CHECK(cv_ctl_send(fd, CV_CTL_REFUSED | CV_CTL_REPLY, status, &r,
			  sizeof(r), NULL, 0) == 0);
}

static void test_refusal(void)
{
	struct cv_ctl_refused r = { "no\ttabs" };
	struct cv_ctl_hdr h = { CV_CTL_MAGIC, CV_CTL_ATTACH | CV_CTL_REPLY, 0,
				sizeof(r), -EDQUOT };
	uint8_t buf[512];
	char why[256] = "";
	int sv[2], n;

	/* the decoder: an ATTACH refusal with a reason, sanitised */
	CHECK(cv_ctl_refusal(&h, &r, sizeof(r), CV_CTL_ATTACH, why,
			     sizeof(why)) == -EDQUOT && !strcmp(why, "no?tabs"));
	CHECK(cv_ctl_refusal(&h, &r, sizeof(r), CV_CTL_PS, why,
			     sizeof(why)) == 0);
	CHECK(cv_ctl_refusal(&h, &r, sizeof(r) - 1, CV_CTL_ATTACH, why,
			     sizeof(why)) == 0);
	h.status = 0;
	CHECK(cv_ctl_refusal(&h, &r, sizeof(r), CV_CTL_ATTACH, why,
			     sizeof(why)) == 0);
	memset(r.msg, 'x', sizeof(r.msg));
	h.status = -EPERM;
	h.type = CV_CTL_REFUSED | CV_CTL_REPLY;
	CHECK(cv_ctl_refusal(&h, &r, sizeof(r), CV_CTL_PS, why,
			     sizeof(why)) == -EPERM &&
	      strlen(why) == sizeof(r.msg) - 1);

	/* refused before the request came: the send or the read meets the
	 * closed end, the refusal is read after */
	pair(sv);
	refuse(sv[1], -EPERM, "uid 7 is not allowed");
	close(sv[1]);
	n = cv_ctl_send(sv[0], CV_CTL_PS, 0, NULL, 0, NULL, 0);
	CHECK(n == -EPIPE);
	CHECK(cv_ctl_refusal_after(sv[0], n, why, sizeof(why)) == -EPERM &&
	      !strcmp(why, "uid 7 is not allowed"));
	close(sv[0]);
	/* refused with the request unread: the close leaves ECONNRESET,
	 * which comes first */
	pair(sv);
	CHECK(cv_ctl_send(sv[0], CV_CTL_PS, 0, NULL, 0, NULL, 0) == 0);
	refuse(sv[1], -EDQUOT, "a cap");
	close(sv[1]);
	n = cv_ctl_recv(sv[0], &h, buf, sizeof(buf), NULL, NULL, 1000);
	if (n >= 0)
		n = cv_ctl_refusal(&h, buf, n, CV_CTL_PS, why, sizeof(why));
	else
		n = cv_ctl_refusal_after(sv[0], n, why, sizeof(why));
	CHECK(n == -EDQUOT && !strcmp(why, "a cap"));
	close(sv[0]);
	/* a plain hang-up is no refusal */
	pair(sv);
	close(sv[1]);
	CHECK(cv_ctl_refusal_after(sv[0], -ECONNRESET, why, sizeof(why)) ==
	      -ECONNRESET);
	CHECK(cv_ctl_refusal_after(sv[0], -ETIMEDOUT, why, sizeof(why)) ==
	      -ETIMEDOUT);
	close(sv[0]);
}

int main(void)
{
	test_roundtrip();
	test_fd_passing();
	test_bad_frames();
	test_timeout_and_hup();
	test_hdr_check();
	test_paths();
	test_trust();
	test_sizes();
	test_decode_client();
	test_decode_checkpoint();
	test_decode_worker();
	test_admit();
	test_admit_overcommit();
	test_probe();
	test_caps();
	test_refusal();
	printf("test_ctl: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

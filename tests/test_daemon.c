/* SPDX-License-Identifier: MIT */
/*
 * End-to-end tests of cuvisord and the cuvisor CLI, with tests/fake-vgpu.c
 * standing in for the worker (no GPU, no real worker needed):
 *
 *   test_daemon [BUILD_DIR]     (default: the parent of our directory)
 *
 * attach (fds, region, link, GPU choice, quotas), ps and info, the error
 * replies (bad GPU, over quota, protocol, worker failure, crash, garbage,
 * start timeout), malformed clients, SO_PEERCRED (as root), shutdown and
 * SIGTERM (with a worker that ignores W_STOP), --private, stale sockets,
 * the socket directory checks, suspend/resume/evict (forwarding, states,
 * refusals, a worker that is slow, silent, dies, fails or answers
 * garbage, timeouts, late answers), and the CLI (ps, info, suspend,
 * resume, evict, run with a private daemon, exit statuses, signal
 * forwarding).
 *
 * Prints "N passed, N failed"; exits 1 on any failure.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../core/ctl.h"
#include "../core/proto.h"
#include "../core/util.h"
#include "../daemon/cuvisord.h"

static int passed, failed;
static char g_build[PATH_MAX], g_tmp[64], g_self[PATH_MAX];
static int g_seq;

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

#define GIB (1ull << 30)

static void msleep(int ms)
{
	nanosleep(&(struct timespec){ ms / 1000, (ms % 1000) * 1000000L },
		  NULL);
}

/*
 * Deadlines of the waits below. A wait ends as soon as its condition
 * holds; the deadline only bounds a failure, so it is generous: CI runs
 * this on 2 cores beside other CPU-bound work.
 */
#define WAIT_MS 30000

/*
 * kill(pid, sig) for a pid this test got from a daemon or fork. A pid
 * of 0 or less (an attach or start that failed, already reported by its
 * CHECK) is never signalled: kill(0) would kill our own process group,
 * and kill(-1) every process we may signal.
 */
static void signal_pid(pid_t pid, int sig)
{
	if (pid > 0)
		kill(pid, sig);
}

struct daemon {
	pid_t pid;
	char dir[96];
	char sock[108];
	char log[128];
};

/* Whether daemon_start lets the daemon keep spare workers (its default);
 * off for all tests but the spares' own: fake-vgpu is no spare, and a
 * spare the daemon starts again and again changes its fd count. */
static bool g_spares;

/*
 * Starts cuvisord with the fake worker in a fresh directory (or with its
 * socket at sock, directory not made for it); waits until it answers.
 */
static int daemon_start_at(struct daemon *d, const char *sock,
			   const char *modes, const char *const *extra)
{
	char worker[PATH_MAX + 32], daemon[PATH_MAX + 32], logspec[PATH_MAX];
	const char *argv[32];
	int n = 0, i, fd;
	uint64_t t0;

	snprintf(d->dir, sizeof(d->dir), "%s/d%d", g_tmp, ++g_seq);
	snprintf(d->sock, sizeof(d->sock), "%s/s.sock", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/d%d.log", g_tmp, g_seq);
	if (sock)
		snprintf(d->sock, sizeof(d->sock), "%s", sock);
	else
		mkdir(d->dir, 0700);
	snprintf(worker, sizeof(worker), "%s/tests/fake-vgpu", g_build);
	snprintf(daemon, sizeof(daemon), "%s/bin/cuvisord", g_build);
	snprintf(logspec, sizeof(logspec), "debug:%s", d->log);
	argv[n++] = daemon;
	argv[n++] = "--socket";
	argv[n++] = d->sock;
	argv[n++] = "--worker";
	argv[n++] = worker;
	argv[n++] = "--log";
	argv[n++] = logspec;
	if (!g_spares) {
		argv[n++] = "--spare-workers";
		argv[n++] = "0";
	}
	for (i = 0; extra && extra[i]; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	d->pid = fork();
	if (d->pid == 0) {
		/* A process group of its own, so that nothing the daemon
		 * signals by group reaches us; and it goes when we do. */
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (modes)
			setenv("FAKE_VGPU_MODES", modes, 1);
		setenv("FAKE_VGPU_GPUS", "2", 0);
		execv(daemon, (char *const *)argv);
		_exit(127);
	}
	t0 = cv_now_ns();
	while (cv_now_ns() - t0 < WAIT_MS * 1000000ull) {
		fd = cv_ctl_connect(d->sock);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		if (waitpid(d->pid, NULL, WNOHANG) == d->pid) {
			d->pid = -1;
			return -1;
		}
		msleep(10);
	}
	return -1;
}

static int daemon_start(struct daemon *d, const char *modes,
			const char *const *extra)
{
	return daemon_start_at(d, NULL, modes, extra);
}

/* The daemon's exit status, or -1 if it did not exit within ms. */
static int daemon_wait(struct daemon *d, int ms)
{
	int st, i;

	if (d->pid <= 0) /* waitpid(-1) would reap any child */
		return -1;
	for (i = 0; i < ms / 10 + 1; i++) {
		if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
			d->pid = -1;
			return WIFEXITED(st) ? WEXITSTATUS(st)
					     : 128 + WTERMSIG(st);
		}
		msleep(10);
	}
	return -1;
}

static void daemon_kill(struct daemon *d)
{
	if (d->pid > 0) {
		signal_pid(d->pid, SIGKILL);
		waitpid(d->pid, NULL, 0);
		d->pid = -1;
	}
}

static bool file_has(const char *path, const char *needle)
{
	static char buf[1 << 20];
	ssize_t n;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	return strstr(buf, needle) != NULL;
}

/* Waits until the file has needle; true if it did within ms. */
static bool file_until(const char *path, const char *needle, int ms)
{
	int i;

	for (i = 0; i < ms / 10 + 1; i++) {
		if (file_has(path, needle))
			return true;
		msleep(10);
	}
	return false;
}

/* One request on a fresh connection; payload length or -errno. */
static int call(const char *sock, uint16_t type, void *buf, uint32_t size)
{
	struct cv_ctl_hdr h;
	int fd, r;

	fd = cv_ctl_connect(sock);
	if (fd < 0)
		return fd;
	r = cv_ctl_send(fd, type, 0, NULL, 0, NULL, 0);
	if (r == 0)
		r = cv_ctl_recv(fd, &h, buf, size, NULL, NULL, WAIT_MS);
	if (r >= 0 && h.type != (type | CV_CTL_REPLY))
		r = -EPROTO;
	if (r >= 0 && h.status)
		r = h.status;
	close(fd);
	return r;
}

/* The reason of the last refused ATTACH that gave one. */
static char g_attach_why[200];

struct att {
	int conn;      /* the ATTACH connection, kept open */
	int memfd, link;
	struct cv_ctl_attach_r r;
};

static void att_close(struct att *a)
{
	if (a->conn >= 0)
		close(a->conn);
	if (a->memfd >= 0)
		close(a->memfd);
	if (a->link >= 0)
		close(a->link);
	a->conn = a->memfd = a->link = -1;
}

/* The reason of the last refused ATTACH ("" when it sent none). */
static char g_reason[CV_CTL_REASON_LEN];

/* ATTACH; the reply's status. */
static int attach_ex(const char *sock, int gpu, uint64_t mem, uint32_t proto,
		     struct att *a)
{
	struct cv_ctl_attach req = { .pid = (uint32_t)getpid(), .gpu = gpu,
				     .mem = mem, .proto = proto,
				     .name = "e2e-app" };
	uint8_t buf[512];
	struct cv_ctl_hdr h;
	int fds[2] = { -1, -1 }, nfds = 2, n;

	*a = (struct att){ .conn = -1, .memfd = -1, .link = -1 };
	a->conn = cv_ctl_connect(sock);
	if (a->conn < 0)
		return a->conn;
	if (cv_ctl_send(a->conn, CV_CTL_ATTACH, 0, &req, sizeof(req), NULL,
			0) < 0)
		return -EIO;
	n = cv_ctl_recv(a->conn, &h, buf, sizeof(buf), fds, &nfds, WAIT_MS);
	if (n < 0)
		return n;
	if (h.type != (CV_CTL_ATTACH | CV_CTL_REPLY))
		return -EPROTO;
	if (h.status) {
		g_attach_why[0] = 0;
		cv_ctl_refusal(&h, buf, n, CV_CTL_ATTACH, g_attach_why,
			       sizeof(g_attach_why));
		/* a refusal's reason: a string, its NUL included */
		g_reason[0] = 0;
		if (n > 0 && n <= CV_CTL_REASON_LEN && !buf[n - 1])
			memcpy(g_reason, buf, (size_t)n);
		return h.status;
	}
	if (n != sizeof(a->r) || nfds != 2)
		return -EPROTO;
	memcpy(&a->r, buf, sizeof(a->r));
	a->memfd = fds[0];
	a->link = fds[1];
	return 0;
}

static int attach(const char *sock, int gpu, uint64_t mem, struct att *a)
{
	return attach_ex(sock, gpu, mem, CV_PROTO_VERSION, a);
}

static int ps(const char *sock, struct cv_ctl_tenant *t, int max)
{
	static uint8_t buf[CV_CTL_MAX];
	struct cv_ctl_ps_r r;
	int n;

	n = call(sock, CV_CTL_PS, buf, sizeof(buf));
	if (n < (int)sizeof(r))
		return n < 0 ? n : -EPROTO;
	memcpy(&r, buf, sizeof(r));
	if ((size_t)n != sizeof(r) + r.n * sizeof(*t) || (int)r.n > max)
		return -EPROTO;
	memcpy(t, buf + sizeof(r), r.n * sizeof(*t));
	return (int)r.n;
}

/* Waits until ps shows n tenants; true if it did within ms. */
static bool ps_until(const char *sock, int n, int ms)
{
	struct cv_ctl_tenant t[16];
	int i;

	for (i = 0; i < ms / 20 + 1; i++) {
		if (ps(sock, t, 16) == n)
			return true;
		msleep(20);
	}
	return false;
}

static const struct cv_ctl_tenant *find_tenant(const struct cv_ctl_tenant *t,
					       int n, uint64_t id)
{
	int i;

	for (i = 0; i < n; i++)
		if (t[i].id == id)
			return &t[i];
	return NULL;
}

static int count_fds(pid_t pid)
{
	char path[64];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* The daemon's fds once it has seen our last disconnects. */
static int settled_fds(pid_t pid, int want)
{
	int i, n = -1;

	for (i = 0; i < WAIT_MS / 10; i++) {
		n = count_fds(pid);
		if (n == want)
			break;
		msleep(10);
	}
	return n;
}

/* Waits until a child of pid runs a program named comm; true if one did
 * within ms. */
static bool child_until(pid_t pid, const char *comm, int ms)
{
	char path[300], st[512], name[64];
	struct dirent *e;
	int i, fd, ppid;
	ssize_t n;
	DIR *d;

	for (i = 0; i < ms / 10 + 1; i++) {
		d = opendir("/proc");
		while (d && (e = readdir(d))) {
			if (e->d_name[0] < '1' || e->d_name[0] > '9')
				continue;
			snprintf(path, sizeof(path), "/proc/%s/stat",
				 e->d_name);
			fd = open(path, O_RDONLY);
			if (fd < 0)
				continue;
			n = read(fd, st, sizeof(st) - 1);
			close(fd);
			st[n > 0 ? n : 0] = 0;
			/* "PID (COMM) S PPID ...": COMM has no ')' here */
			if (sscanf(st, "%*d (%63[^)]) %*c %d", name, &ppid) ==
				    2 &&
			    ppid == pid && !strcmp(name, comm)) {
				closedir(d);
				return true;
			}
		}
		if (d)
			closedir(d);
		msleep(10);
	}
	return false;
}

static bool pid_gone(pid_t pid, int ms)
{
	char path[64], st[256];
	int i, fd;
	ssize_t n;

	if (pid <= 0)
		return false;
	for (i = 0; i < ms / 10 + 1; i++) {
		if (kill(pid, 0) < 0 && errno == ESRCH)
			return true;
		/* a zombie no one has reaped yet counts as gone */
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
		fd = open(path, O_RDONLY);
		if (fd >= 0) {
			n = read(fd, st, sizeof(st) - 1);
			close(fd);
			st[n > 0 ? n : 0] = 0;
			if (strstr(st, ") Z "))
				return true;
		}
		msleep(10);
	}
	return false;
}

/* ---- tests -------------------------------------------------------- */

static void test_attach(void)
{
	const char *overcommit[] = { "--overcommit", NULL };
	struct daemon d;
	struct att a[3];
	struct cv_ctl_tenant t[16];
	const struct cv_ctl_tenant *e;
	struct cv_region_hdr *h;
	struct cv_ctl_hdr mh;
	uint8_t buf[4096];
	struct cv_ctl_info_r info;
	struct cv_ctl_gpu g[2];
	int n, i;
	void *map;

	/* (--overcommit: gpu 1's quotas add up to 17 of its 16 GiB) */
	CHECK(daemon_start(&d, NULL, overcommit) == 0);
	CHECK(attach(d.sock, -1, 0, &a[0]) == 0);
	CHECK(a[0].r.tenant_id == 1 && a[0].r.gpu == 0 &&
	      a[0].r.quota == 16 * GIB && a[0].r.worker_pid > 0);
	/* the region the worker made */
	map = mmap(NULL, 4096, PROT_READ, MAP_SHARED, a[0].memfd, 0);
	CHECK(map != MAP_FAILED);
	if (map != MAP_FAILED) {
		h = map;
		CHECK(h->magic == CV_PROTO_MAGIC && h->tenant_id == 1 &&
		      h->quota == 16 * GIB &&
		      h->worker_pid == a[0].r.worker_pid);
		munmap(map, 4096);
	}
	/* the link reaches the worker (it echoes) */
	CHECK(cv_ctl_send(a[0].link, 77, 0, "ping", 4, NULL, 0) == 0);
	n = cv_ctl_recv(a[0].link, &mh, buf, sizeof(buf), NULL, NULL,
			WAIT_MS);
	CHECK(n == 4 && mh.type == (77 | CV_CTL_REPLY) && !memcmp(buf, "ping",
								  4));
	/* -1 picks the GPU with the fewest tenants; explicit GPU and quota */
	CHECK(attach(d.sock, -1, 0, &a[1]) == 0 && a[1].r.gpu == 1 &&
	      a[1].r.tenant_id == 2);
	CHECK(attach(d.sock, 1, GIB, &a[2]) == 0 && a[2].r.gpu == 1 &&
	      a[2].r.quota == GIB && a[2].r.tenant_id == 3);

	n = ps(d.sock, t, 16);
	CHECK(n == 3);
	e = find_tenant(t, n, 3);
	CHECK(e && e->state == CV_STATE_RUNNING && e->quota == GIB &&
	      e->mem_used == GIB / 4 && e->pid == (uint32_t)getpid() &&
	      e->gpu == 1 && !strcmp(e->name, "e2e-app") &&
	      e->worker_pid == a[2].r.worker_pid);

	n = call(d.sock, CV_CTL_INFO, buf, sizeof(buf));
	CHECK(n == (int)(sizeof(info) + 2 * sizeof(g[0])));
	memcpy(&info, buf, sizeof(info));
	memcpy(g, buf + sizeof(info), sizeof(g));
	CHECK(info.pid == (uint32_t)d.pid && info.ngpus == 2 &&
	      info.ntenants == 3 && info.backend == CV_BACKEND_HOST &&
	      info.default_quota == 0);
	CHECK(g[0].index == 0 && g[0].ntenants == 1 && g[1].ntenants == 2 &&
	      g[1].quota_sum == 17 * GIB && g[1].total_mem == 16 * GIB &&
	      !strcmp(g[1].name, "Fake GPU 1"));

	/* The ATTACH connection closing keeps the tenant. */
	close(a[0].conn);
	a[0].conn = -1;
	msleep(100);
	CHECK(ps(d.sock, t, 16) == 3);
	/* The guest's link end closing ends it (the worker exits). */
	close(a[0].link);
	a[0].link = -1;
	CHECK(ps_until(d.sock, 2, WAIT_MS));
	CHECK(file_has(d.log, "tenant 1 (\"e2e-app\"): worker pid"));
	/* A worker's death removes its tenant, and is logged. */
	signal_pid((pid_t)a[1].r.worker_pid, SIGKILL);
	CHECK(ps_until(d.sock, 1, WAIT_MS));
	CHECK(file_has(d.log, "killed by signal 9"));
	for (i = 0; i < 3; i++)
		att_close(&a[i]);
	CHECK(ps_until(d.sock, 0, WAIT_MS));
	signal_pid(d.pid, SIGTERM);
	CHECK(daemon_wait(&d, WAIT_MS) == 0);
}

static void test_attach_errors(void)
{
	/* 3 s: every worker of this daemon must be ready by then, also
	 * on a loaded machine */
	const char *extra[] = { "--start-timeout", "3", "--default-mem", "2G",
				NULL };
	struct daemon d;
	struct att a;
	uint64_t t0;
	int fds0;

	CHECK(daemon_start(&d, "1:fail,2:crash,3:garbage,4:hang", extra) ==
	      0);
	msleep(100);
	fds0 = count_fds(d.pid);
	/* refused at admission: no tenant id is used up */
	CHECK(attach(d.sock, 7, 0, &a) == -ENODEV);
	att_close(&a);
	CHECK(attach(d.sock, -5, 0, &a) == -ENODEV);
	att_close(&a);
	CHECK(attach(d.sock, 0, 16 * GIB + 1, &a) == -ENOMEM);
	att_close(&a);
	CHECK(attach_ex(d.sock, 0, 0, 99, &a) == -EPROTO);
	att_close(&a);
	/* the worker says no */
	CHECK(attach(d.sock, 0, 0, &a) == -ENOSPC);
	att_close(&a);
	CHECK(file_has(d.log, "fake failure for the test"));
	/* the worker dies before READY */
	CHECK(attach(d.sock, 0, 0, &a) == -EIO);
	att_close(&a);
	/* the worker sends garbage */
	CHECK(attach(d.sock, 0, 0, &a) == -EIO);
	att_close(&a);
	CHECK(file_has(d.log, "malformed message"));
	/* the worker never gets ready */
	t0 = cv_now_ns();
	CHECK(attach(d.sock, 0, 0, &a) == -ETIMEDOUT);
	att_close(&a);
	CHECK(cv_now_ns() - t0 >= 2900000000ull &&
	      cv_now_ns() - t0 < WAIT_MS * 1000000ull);
	/* and then a good one, with the default quota */
	CHECK(attach(d.sock, 0, 0, &a) == 0 && a.r.tenant_id == 5 &&
	      a.r.quota == 2 * GIB);
	att_close(&a);
	CHECK(ps_until(d.sock, 0, WAIT_MS));
	CHECK(settled_fds(d.pid, fds0) == fds0);
	CHECK(call(d.sock, CV_CTL_SHUTDOWN, NULL, 0) == 0);
	CHECK(daemon_wait(&d, WAIT_MS) == 0);
}

/* Sends raw bytes; true if the daemon then closed the connection. */
static bool refused(const char *sock, const void *p, size_t n, int fd_extra)
{
	union {
		struct cmsghdr a;
		char b[CMSG_SPACE(sizeof(int))];
	} cb;
	struct iovec iov = { (void *)p, n };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cv_ctl_hdr h;
	struct cmsghdr *c;
	uint8_t buf[256];
	int fd, r;

	fd = cv_ctl_connect(sock);
	if (fd < 0)
		return false;
	if (fd_extra >= 0) {
		memset(&cb, 0, sizeof(cb));
		m.msg_control = cb.b;
		m.msg_controllen = sizeof(cb.b);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd_extra, sizeof(int));
	}
	if (sendmsg(fd, &m, MSG_NOSIGNAL) < 0) {
		close(fd);
		return false;
	}
	r = cv_ctl_recv(fd, &h, buf, sizeof(buf), NULL, NULL, WAIT_MS);
	close(fd);
	return r == -ECONNRESET;
}

static void test_malformed(void)
{
	static uint8_t big[70000];
	struct cv_ctl_hdr h = { CV_CTL_MAGIC, CV_CTL_ATTACH, 0, 10, 0 };
	struct cv_ctl_attach at = { .proto = 1 };
	struct daemon d;
	uint8_t buf[sizeof(h) + sizeof(at)];
	int fds0, i, conns[40];

	CHECK(daemon_start(&d, NULL, NULL) == 0);
	msleep(100);
	fds0 = count_fds(d.pid);
	CHECK(refused(d.sock, "garbage", 7, -1));
	CHECK(refused(d.sock, "VCTL", 4, -1));
	memcpy(big, &h, sizeof(h));
	CHECK(refused(d.sock, big, sizeof(h) + 10, -1)); /* wrong length */
	h = (struct cv_ctl_hdr){ CV_CTL_MAGIC, CV_CTL_PS, 0,
				 sizeof(big) - sizeof(h), 0 };
	memcpy(big, &h, sizeof(h));
	CHECK(refused(d.sock, big, sizeof(big), -1)); /* oversized */
	h = (struct cv_ctl_hdr){ 0xdeadbeef, CV_CTL_PS, 0, 0, 0 };
	CHECK(refused(d.sock, &h, sizeof(h), -1)); /* bad magic */
	h = (struct cv_ctl_hdr){ CV_CTL_MAGIC, CV_CTL_PS, 0, 0, 0 };
	CHECK(refused(d.sock, &h, sizeof(h), 0)); /* PS with an fd */
	h.type = 1234;
	CHECK(refused(d.sock, &h, sizeof(h), -1)); /* unknown type */
	h.type = CV_CTL_W_READY;
	CHECK(refused(d.sock, &h, sizeof(h), -1)); /* a worker's message */
	h = (struct cv_ctl_hdr){ CV_CTL_MAGIC, CV_CTL_ATTACH, 0, sizeof(at),
				 0 };
	memset(at.name, 'A', sizeof(at.name)); /* no NUL */
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), &at, sizeof(at));
	CHECK(refused(d.sock, buf, sizeof(buf), -1));
	/* many idle clients, then gone */
	for (i = 0; i < 40; i++)
		conns[i] = cv_ctl_connect(d.sock);
	CHECK(call(d.sock, CV_CTL_INFO, big, 4096) > 0);
	for (i = 0; i < 40; i++)
		close(conns[i]);
	msleep(100);
	CHECK(call(d.sock, CV_CTL_INFO, big, 4096) > 0);
	CHECK(settled_fds(d.pid, fds0) == fds0);
	CHECK(file_has(d.log, "malformed message"));
	signal_pid(d.pid, SIGINT);
	CHECK(daemon_wait(&d, WAIT_MS) == 0);
}

/* In a child as uid 65534: 0 if INFO worked, 1 if refused, 2 on
 * SHUTDOWN -EPERM after a working INFO. */
static int as_nobody(const char *sock, bool try_shutdown)
{
	uint8_t buf[4096];
	pid_t pid;
	int st;

	pid = fork();
	if (pid == 0) {
		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(9);
		if (call(sock, CV_CTL_INFO, buf, sizeof(buf)) < 0)
			_exit(1);
		if (try_shutdown &&
		    call(sock, CV_CTL_SHUTDOWN, buf, sizeof(buf)) == -EPERM)
			_exit(2);
		_exit(0);
	}
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_peercred(void)
{
	const char *deny[] = { "--allow-uid", "12345", NULL };
	const char *allow[] = { "--allow-uid", "65534", NULL };
	struct daemon d;
	struct stat st;

	if (geteuid() != 0) {
		printf("test_peercred: skipped (needs root)\n");
		return;
	}
	chmod(g_tmp, 0755);
	snprintf(d.dir, sizeof(d.dir), "%s/d%d", g_tmp, g_seq + 1);
	mkdir(d.dir, 0755);
	CHECK(daemon_start(&d, NULL, deny) == 0);
	CHECK(stat(d.sock, &st) == 0 && (st.st_mode & 0777) == 0666);
	CHECK(as_nobody(d.sock, false) == 1);
	CHECK(file_has(d.log, "refused a connection from uid 65534"));
	signal_pid(d.pid, SIGTERM);
	CHECK(daemon_wait(&d, WAIT_MS) == 0);

	snprintf(d.dir, sizeof(d.dir), "%s/d%d", g_tmp, g_seq + 1);
	mkdir(d.dir, 0755);
	CHECK(daemon_start(&d, NULL, allow) == 0);
	CHECK(as_nobody(d.sock, true) == 2);
	CHECK(daemon_wait(&d, 100) == -1); /* still running */
	signal_pid(d.pid, SIGTERM);
	CHECK(daemon_wait(&d, WAIT_MS) == 0);
	chmod(g_tmp, 0700);
}

/* ---- limits of the control socket --------------------------------- */

/* Waits up to ms for the daemon's refusal of fd: its status with the
 * reason in why, or 0 when none came (the connection was taken). */
static int refusal_on(int fd, int ms, char *why, size_t size)
{
	uint8_t buf[512];
	struct cv_ctl_hdr h;
	int n;

	n = cv_ctl_recv(fd, &h, buf, sizeof(buf), NULL, NULL, ms);
	if (n == -ETIMEDOUT)
		return 0;
	if (n < 0)
		return cv_ctl_refusal_after(fd, n, why, size);
	return cv_ctl_refusal(&h, buf, n, CV_CTL_REFUSED, why, size);
}

/* What a child as uid 65534 saw (limits tests). */
struct seen {
	int taken, capped, reserved, other;
	int attached, attach_status;
	char why_conn[200], why_att[200];
};

/*
 * In a child as uid 65534: attaches up to natt times (each holds its
 * connection), then opens nconn more connections to sock and says so on
 * out[1]. Once the parent's INFO (on a connection made after them all)
 * was answered, the daemon has taken or refused every one of them, and
 * the parent writes to hold[1]: the child counts those taken and those
 * refused by the per-user cap or the reserve, reports on out[1], and
 * holds everything until the parent writes again or 30 s pass.
 */
static void as_nobody_hold(const char *sock, int nconn, int natt,
			   int out[2], int hold[2])
{
	static int fds[1100];
	struct rlimit rl = { 4096, 4096 };
	struct pollfd pf = { .fd = hold[0], .events = POLLIN };
	struct seen s = { 0 };
	struct att a[8];
	char why[200], c;
	int i, r;

	setrlimit(RLIMIT_NOFILE, &rl);
	if (setgid(65534) < 0 || setuid(65534) < 0)
		_exit(9);
	for (i = 0; i < natt && i < 8; i++) {
		r = attach(sock, -1, GIB, &a[i]);
		s.attached += r == 0;
		if (r && !s.attach_status) {
			s.attach_status = r;
			/* the reason came with the reply (cv_ctl_refused) */
			snprintf(s.why_att, sizeof(s.why_att), "%s",
				 g_attach_why);
		}
	}
	for (i = 0; i < nconn && i < 1100; i++)
		fds[i] = cv_ctl_connect(sock);
	if (write(out[1], "o", 1) != 1 || read(hold[0], &c, 1) != 1)
		_exit(8);
	for (i = 0; i < nconn && i < 1100; i++) {
		r = fds[i] < 0 ? fds[i] : refusal_on(fds[i], 0, why,
						      sizeof(why));
		if (r == 0) {
			s.taken++;
			continue;
		}
		if (r == -EDQUOT)
			s.capped++;
		else if (r == -EAGAIN)
			s.reserved++;
		else
			s.other++;
		snprintf(s.why_conn, sizeof(s.why_conn), "%s", why);
	}
	if (write(out[1], &s, sizeof(s)) != sizeof(s))
		_exit(8);
	poll(&pf, 1, 30000);
	_exit(0);
}

/* Starts as_nobody_hold; *s gets what it saw, *info whether root's INFO
 * was answered while it held its connections. The child's pid. */
static pid_t nobody_start(const char *sock, int nconn, int natt,
			  struct seen *s, int hold[2], bool *info)
{
	uint8_t buf[4096];
	int out[2];
	pid_t pid;
	char c;

	if (pipe(out) || pipe(hold))
		return -1;
	pid = fork();
	if (pid == 0) {
		close(out[0]);
		close(hold[1]);
		as_nobody_hold(sock, nconn, natt, out, hold);
	}
	close(out[1]);
	close(hold[0]);
	memset(s, 0, sizeof(*s));
	*info = false;
	if (read(out[0], &c, 1) == 1) {
		*info = call(sock, CV_CTL_INFO, buf, sizeof(buf)) > 0;
		if (write(hold[1], "g", 1) != 1 ||
		    read(out[0], s, sizeof(*s)) != sizeof(*s))
			s->other = -1;
	}
	close(out[0]);
	return pid;
}

static void nobody_end(pid_t pid, int hold[2])
{
	if (pid <= 0)
		return;
	if (write(hold[1], "x", 1) != 1)
		kill(pid, SIGKILL);
	close(hold[1]);
	waitpid(pid, NULL, 0);
}

static void test_limits_user(void)
{
	const char *caps[] = { "--allow-uid", "65534",
			       "--max-conns-per-user", "3",
			       "--max-tenants-per-user", "2", NULL };
	char most[16];
	const char *big[] = { "--allow-uid", "65534",
			      "--max-conns-per-user", most, NULL };
	uint8_t buf[4096];
	bool info;
	struct daemon d;
	struct seen s;
	struct att a;
	int hold[2], lim = CV_D_MAX_CLIENTS - CV_D_PRIV_CLIENTS;
	pid_t pid;

	if (geteuid() != 0) {
		printf("test_limits_user: skipped (needs root)\n");
		return;
	}
	chmod(g_tmp, 0755);
	/* Per-user caps: 3 connections, 2 tenants; root is not held back:
	 * 3 attaches (2 tenants, a refusal: 3 connections), then 2 more
	 * connections. */
	snprintf(d.dir, sizeof(d.dir), "%s/d%d", g_tmp, g_seq + 1);
	mkdir(d.dir, 0755);
	CHECK(daemon_start(&d, NULL, caps) == 0);
	pid = nobody_start(d.sock, 2, 3, &s, hold, &info);
	CHECK(info);
	CHECK(s.attached == 2 && s.attach_status == -EDQUOT);
	CHECK(strstr(s.why_att, "uid 65534 has 2 tenants already "
				"(--max-tenants-per-user 2)") != NULL);
	CHECK(s.taken == 0 && s.capped == 2 && s.other == 0);
	CHECK(strstr(s.why_conn, "uid 65534 has 3 connections to the daemon "
				 "already (--max-conns-per-user 3)") != NULL);
	CHECK(call(d.sock, CV_CTL_INFO, buf, sizeof(buf)) > 0);
	CHECK(attach(d.sock, -1, GIB, &a) == 0);
	att_close(&a);
	nobody_end(pid, hold);
	CHECK(file_has(d.log, "refused a connection from uid 65534"));
	signal_pid(d.pid, SIGTERM);
	CHECK(daemon_wait(&d, 5000) == 0);

	/* As many connections as a user may hold, and 40 more: they are
	 * refused (the reserve), and root still gets in. */
	snprintf(most, sizeof(most), "%d", CV_D_MAX_CLIENTS);
	snprintf(d.dir, sizeof(d.dir), "%s/d%d", g_tmp, g_seq + 1);
	mkdir(d.dir, 0755);
	CHECK(daemon_start(&d, NULL, big) == 0);
	pid = nobody_start(d.sock, lim + 40, 0, &s, hold, &info);
	CHECK(info);
	CHECK(s.taken == lim && s.reserved == 40 && s.other == 0);
	CHECK(strstr(s.why_conn, "kept for root") != NULL);
	CHECK(call(d.sock, CV_CTL_INFO, buf, sizeof(buf)) > 0);
	nobody_end(pid, hold);
	signal_pid(d.pid, SIGTERM);
	CHECK(daemon_wait(&d, 5000) == 0);
	chmod(g_tmp, 0700);
}

/* A connection that sends nothing is closed after --idle-timeout, with
 * the reason; one that keeps asking is not. */
static void test_idle(void)
{
	const char *extra[] = { "--idle-timeout", "1", NULL };
	uint8_t buf[4096];
	struct cv_ctl_hdr h;
	struct daemon d;
	char why[200] = "";
	uint64_t t0, dt;
	int fd, i, ok = 0;

	CHECK(daemon_start(&d, NULL, extra) == 0);
	fd = cv_ctl_connect(d.sock);
	t0 = cv_now_ns();
	CHECK(refusal_on(fd, 5000, why, sizeof(why)) == -ETIMEDOUT);
	dt = (cv_now_ns() - t0) / 1000000;
	CHECK(dt >= 900 && dt < 4000);
	CHECK(strstr(why, "--idle-timeout") != NULL);
	close(fd);
	fd = cv_ctl_connect(d.sock);
	for (i = 0; i < 6; i++) {
		msleep(400);
		if (cv_ctl_send(fd, CV_CTL_INFO, 0, NULL, 0, NULL, 0) == 0 &&
		    cv_ctl_recv(fd, &h, buf, sizeof(buf), NULL, NULL, 5000) > 0)
			ok++;
	}
	CHECK(ok == 6);
	close(fd);
	CHECK(file_has(d.log, "no request for 1 s (cuvisord --idle-timeout)"));
	signal_pid(d.pid, SIGTERM);
	CHECK(daemon_wait(&d, 5000) == 0);
}

static void test_shutdown(void)
{
	const char *extra[] = { "--pidfile", NULL, NULL };
	char pidfile[PATH_MAX];
	struct daemon d;
	struct att a, b;
	struct stat st;
	uint64_t t0, dt;

	snprintf(pidfile, sizeof(pidfile), "%s/cuvisord.pid", g_tmp);
	extra[1] = pidfile;
	CHECK(daemon_start(&d, "2:nostop", extra) == 0);
	CHECK(stat(pidfile, &st) == 0);
	CHECK(attach(d.sock, 0, 0, &a) == 0);
	CHECK(attach(d.sock, 1, 0, &b) == 0);
	t0 = cv_now_ns();
	CHECK(call(d.sock, CV_CTL_SHUTDOWN, NULL, 0) == 0);
	dt = cv_now_ns() - t0;
	/* worker 2 ignores W_STOP: killed after 2 s (the bound above only
	 * catches a hang: this machine may be loaded) */
	CHECK(dt >= 1900000000ull && dt < WAIT_MS * 1000000ull);
	CHECK(daemon_wait(&d, WAIT_MS) == 0);
	CHECK(pid_gone((pid_t)a.r.worker_pid, WAIT_MS) &&
	      pid_gone((pid_t)b.r.worker_pid, WAIT_MS));
	CHECK(stat(d.sock, &st) < 0 && errno == ENOENT);
	CHECK(stat(pidfile, &st) < 0 && errno == ENOENT);
	CHECK(file_has(d.log, "did not stop in time"));
	att_close(&a);
	att_close(&b);

	/* SIGTERM ends the daemon quickly but not its tenants: their
	 * workers keep serving, for the next daemon to adopt (the real
	 * worker's adoption is tested by tests/run.sh) */
	CHECK(daemon_start(&d, NULL, NULL) == 0);
	CHECK(attach(d.sock, 1, 0, &a) == 0);
	t0 = cv_now_ns();
	signal_pid(d.pid, SIGTERM);
	CHECK(daemon_wait(&d, WAIT_MS) == 0);
	CHECK(cv_now_ns() - t0 < 10000000000ull);
	CHECK(!pid_gone((pid_t)a.r.worker_pid, 300));
	CHECK(stat(d.sock, &st) < 0);
	CHECK(file_has(d.log, "1 tenant(s) keep running"));
	/* its guest going still ends it */
	att_close(&a);
	CHECK(pid_gone((pid_t)a.r.worker_pid, WAIT_MS));
}

/* Waits until pid is a zombie (dead, not reaped); true if within ms. */
static bool zombie_until(pid_t pid, int ms)
{
	char path[64], st[256];
	int i, fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (i = 0; pid > 0 && i < ms / 10 + 1; i++) {
		fd = open(path, O_RDONLY);
		if (fd < 0)
			return false;
		n = read(fd, st, sizeof(st) - 1);
		close(fd);
		st[n > 0 ? n : 0] = 0;
		if (strstr(st, ") Z "))
			return true;
		msleep(10);
	}
	return false;
}

/*
 * A spare worker that dies while the daemon stops: the daemon reaps it
 * (and forgets its pid) before it reads the hangup of its socket, and
 * must not then kill "pid 0", its own process group. (It did: under
 * tests/run.sh that group was `timeout`, this test and its daemons, all
 * killed.) The order is forced: the spare dies while the daemon is
 * stopped (SIGSTOP), then SIGTERM, SIGCHLD and the hangup wait for it
 * together. The daemon has a process group of its own (daemon_start):
 * a kill of it would end the daemon by SIGKILL.
 */
static void test_spare_gone_while_stopping(void)
{
	const char *needle = "gpu 0: starting a spare worker, pid ";
	static char buf[1 << 16];
	struct daemon d;
	pid_t sp = 0;
	ssize_t n;
	char *at;
	int fd;

	g_spares = true;
	setenv("FAKE_VGPU_SPARE", "hold", 1);
	CHECK(daemon_start(&d, NULL, NULL) == 0);
	unsetenv("FAKE_VGPU_SPARE");
	g_spares = false;
	CHECK(file_until(d.log, needle, WAIT_MS));
	fd = open(d.log, O_RDONLY);
	n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = 0;
	at = strstr(buf, needle);
	if (at)
		sp = (pid_t)atoi(at + strlen(needle));
	CHECK(sp > 0);
	signal_pid(d.pid, SIGSTOP);
	signal_pid(sp, SIGKILL);
	CHECK(zombie_until(sp, WAIT_MS));
	signal_pid(d.pid, SIGTERM);
	signal_pid(d.pid, SIGCONT);
	CHECK(daemon_wait(&d, WAIT_MS) == 0);
	daemon_kill(&d);
}

/* A worker that never answers W_STATS delays ps by 200 ms, no more. */
static void test_ps_timeout(void)
{
	struct cv_ctl_tenant t[16];
	const struct cv_ctl_tenant *e;
	struct daemon d;
	struct att a, b;
	uint64_t t0, dt, best;
	int n, i;

	CHECK(daemon_start(&d, "1:nostats", NULL) == 0);
	CHECK(attach(d.sock, 0, GIB, &a) == 0 && a.r.tenant_id == 1);
	CHECK(attach(d.sock, 0, GIB, &b) == 0 && b.r.tenant_id == 2);
	for (i = 0; i < 2; i++) {
		t0 = cv_now_ns();
		n = ps(d.sock, t, 16);
		dt = cv_now_ns() - t0;
		/* at least the 200 ms; the bound above only catches a
		 * hang (this machine may be loaded) */
		CHECK(n == 2 && dt >= 150000000ull && dt < 10000000000ull);
		e = find_tenant(t, n, 1);
		CHECK(e && e->mem_used == 0 && e->quota == GIB &&
		      e->state == CV_STATE_RUNNING);
		e = find_tenant(t, n, 2);
		CHECK(e && e->mem_used == GIB / 4);
	}
	att_close(&a);
	att_close(&b);
	CHECK(ps_until(d.sock, 0, WAIT_MS));
	/* no tenant, no wait: the fastest of 10 (one may be descheduled
	 * on a loaded machine) is well under the 200 ms */
	for (i = 0, best = UINT64_MAX; i < 10; i++) {
		t0 = cv_now_ns();
		n = ps(d.sock, t, 16);
		CHECK(n == 0);
		best = CV_MIN(best, cv_now_ns() - t0);
	}
	CHECK(best < 100000000ull);
	signal_pid(d.pid, SIGTERM);
	CHECK(daemon_wait(&d, WAIT_MS) == 0);
}

static void test_private(void)
{
	const char *extra[] = { "--private", NULL };
	struct daemon d;
	struct att a;

	CHECK(daemon_start(&d, NULL, extra) == 0);
	msleep(200);
	CHECK(daemon_wait(&d, 0) == -1); /* no tenant yet: stays */
	CHECK(attach(d.sock, 0, 0, &a) == 0);
	close(a.conn);
	a.conn = -1;
	msleep(100);
	CHECK(daemon_wait(&d, 0) == -1);
	close(a.link); /* the guest "dies": worker exits, daemon follows */
	a.link = -1;
	CHECK(daemon_wait(&d, WAIT_MS) == 0);
	att_close(&a);
}

static void test_socket_rules(void)
{
	struct daemon a, b;
	char path[PATH_MAX];
	struct stat st;
	int fd;

	CHECK(daemon_start(&a, NULL, NULL) == 0);
	/* a second daemon on a live socket refuses to start */
	b = a;
	b.pid = fork();
	if (b.pid == 0) {
		char w[PATH_MAX + 32], dm[PATH_MAX + 32];

		snprintf(w, sizeof(w), "%s/tests/fake-vgpu", g_build);
		snprintf(dm, sizeof(dm), "%s/bin/cuvisord", g_build);
		dup2(open(a.log, O_WRONLY | O_APPEND), 2);
		execl(dm, dm, "--socket", a.sock, "--worker", w, "--log",
		      "error", (char *)NULL);
		_exit(127);
	}
	CHECK(daemon_wait(&b, WAIT_MS) == 1);
	CHECK(file_has(a.log, "another cuvisord is listening on"));
	CHECK(call(a.sock, CV_CTL_INFO, path, sizeof(path)) > 0);
	/* a stale socket (daemon killed) is replaced */
	daemon_kill(&a);
	CHECK(stat(a.sock, &st) == 0);
	fd = cv_ctl_connect(a.sock);
	CHECK(fd == -ECONNREFUSED);
	g_seq--; /* same directory again */
	CHECK(daemon_start(&b, NULL, NULL) == 0 && !strcmp(a.sock, b.sock));
	signal_pid(b.pid, SIGTERM);
	CHECK(daemon_wait(&b, WAIT_MS) == 0);

	/* a group/world writable directory is refused */
	snprintf(path, sizeof(path), "%s/d%d", g_tmp, g_seq + 1);
	mkdir(path, 0777);
	chmod(path, 0777);
	CHECK(daemon_start(&a, NULL, NULL) < 0);
	if (geteuid() == 0) {
		/* ...and so is one owned by someone else */
		snprintf(path, sizeof(path), "%s/d%d", g_tmp, g_seq + 1);
		mkdir(path, 0700);
		CHECK(chown(path, 65534, 65534) == 0);
		CHECK(daemon_start(&a, NULL, NULL) < 0);
	}
	/* a missing directory is created 0700 */
	snprintf(path, sizeof(path), "%s/fresh/s.sock", g_tmp);
	CHECK(daemon_start_at(&a, path, NULL, NULL) == 0);
	snprintf(path, sizeof(path), "%s/fresh", g_tmp);
	CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode) &&
	      (st.st_mode & 0777) == 0700);
	CHECK(file_has(a.log, "created socket directory"));
	signal_pid(a.pid, SIGTERM);
	CHECK(daemon_wait(&a, WAIT_MS) == 0);
}

/*
 * Runs argv with stdout+stderr into out and up to two more "K=V" in its
 * environment; its exit status (128+sig).
 */
static int run2(const char *const *argv, const char *out, const char *env,
		const char *env2)
{
	pid_t pid;
	int st, fd;

	pid = fork();
	if (pid == 0) {
		fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 1);
		dup2(fd, 2);
		if (env)
			putenv((char *)env);
		if (env2)
			putenv((char *)env2);
		execv(argv[0], (char *const *)argv);
		_exit(99);
	}
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int run(const char *const *argv, const char *out, const char *env)
{
	return run2(argv, out, env, NULL);
}

static void test_cli_query(void)
{
	char cli[PATH_MAX + 32], out[PATH_MAX];
	struct daemon d;
	struct att a;

	snprintf(cli, sizeof(cli), "%s/bin/cuvisor", g_build);
	snprintf(out, sizeof(out), "%s/cli.out", g_tmp);
	CHECK(daemon_start(&d, NULL, NULL) == 0);
	CHECK(attach(d.sock, 1, 8 * GIB, &a) == 0);
	CHECK(run((const char *[]){ cli, "ps", "--socket", d.sock, NULL }, out,
		  NULL) == 0);
	CHECK(file_has(out, "ID     PID      GPU  MEM             STATE      "
			    "NAME"));
	CHECK(file_has(out, "2.0G/8.0G") && file_has(out, "running") &&
	      file_has(out, "e2e-app"));
	CHECK(run((const char *[]){ cli, "info", "--socket", d.sock, NULL },
		  out, NULL) == 0);
	CHECK(file_has(out, "backend:       host") &&
	      file_has(out, "Fake GPU 1"));
	CHECK(run((const char *[]){ cli, "ps", "--socket", "/nonexistent/s",
				    NULL }, out, NULL) == 1);
	CHECK(file_has(out, "cuvisor: no daemon at /nonexistent/s: No such "
			    "file or directory; start cuvisord, or use "
			    "`cuvisor run`"));
	CHECK(run((const char *[]){ cli, "bogus", NULL }, out, NULL) == 2);
	CHECK(run((const char *[]){ cli, "ps", "--bogus", NULL }, out, NULL) ==
	      2);
	CHECK(run((const char *[]){ cli, "ps", "extra", NULL }, out, NULL) ==
	      2);
	CHECK(run((const char *[]){ cli, "run", NULL }, out, NULL) == 2);
	CHECK(run((const char *[]){ cli, "run", "--mem", "lots", "--", "true",
				    NULL }, out, NULL) == 2);
	CHECK(run((const char *[]){ cli, "ps", "--help", NULL }, out, NULL) ==
	      0 && file_has(out, "Usage: cuvisor ps"));
	att_close(&a);
	CHECK(run((const char *[]){ cli, "shutdown", "--socket", d.sock,
				    NULL }, out, NULL) == 0);
	CHECK(daemon_wait(&d, WAIT_MS) == 0);
}

/* ---- suspend, resume, evict ------------------------------------------ */

/* Sends an operation on a fresh connection; the connection or -errno. */
static int op_send(const char *sock, uint16_t type, uint64_t id, int32_t gpu,
		   uint32_t flags)
{
	struct cv_ctl_tenant_op op = { .tenant = id, .gpu = gpu,
				       .flags = flags };
	int fd, r;

	fd = cv_ctl_connect(sock);
	if (fd < 0)
		return fd;
	r = cv_ctl_send(fd, type, 0, &op, sizeof(op), NULL, 0);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

/*
 * The reply to an operation sent on fd (closed here): its status, with
 * *r filled when it carried a cv_ctl_op_r (else r->state is 0 and
 * r->pad 1); -EPROTO for a wrong reply, or the transport's -errno.
 */
static int op_recv(int fd, uint16_t type, int ms, struct cv_ctl_op_r *r)
{
	struct cv_ctl_hdr h;
	uint8_t buf[256];
	int n;

	memset(r, 0, sizeof(*r));
	r->pad = 1;
	n = cv_ctl_recv(fd, &h, buf, sizeof(buf), NULL, NULL, ms);
	close(fd);
	if (n < 0)
		return n;
	if (h.type != (type | CV_CTL_REPLY) || (n && n != sizeof(*r)) ||
	    (!h.status && !n))
		return -EPROTO;
	if (n)
		memcpy(r, buf, sizeof(*r));
	return h.status;
}

static int op(const char *sock, uint16_t type, uint64_t id, int32_t gpu,
	      struct cv_ctl_op_r *r)
{
	int fd = op_send(sock, type, id, gpu, 0);

	return fd < 0 ? fd : op_recv(fd, type, WAIT_MS, r);
}

static uint32_t state_of(const char *sock, uint64_t id)
{
	struct cv_ctl_tenant t[16];
	const struct cv_ctl_tenant *e;
	int n = ps(sock, t, 16);

	e = n > 0 ? find_tenant(t, n, id) : NULL;
	return e ? e->state : 99;
}

/* Waits until ps shows tenant id in state want (99: not at all). */
static bool state_until(const char *sock, uint64_t id, uint32_t want, int ms)
{
	int i;

	for (i = 0; i < ms / 20 + 1; i++) {
		if (state_of(sock, id) == want)
			return true;
		msleep(20);
	}
	return false;
}

/* Tenant 1 behaves; states, refusals, what is logged. */
static void test_ops_basic(const struct daemon *d)
{
	struct cv_ctl_op_r r;
	struct att a;
	int fd;

	CHECK(attach(d->sock, 0, GIB, &a) == 0 && a.r.tenant_id == 1);
	CHECK(op(d->sock, CV_CTL_SUSPEND, 1, -1, &r) == 0 &&
	      r.state == CV_STATE_SUSPENDED && r.bytes == 0 && r.ns == 400000);
	CHECK(state_of(d->sock, 1) == CV_STATE_SUSPENDED);
	CHECK(file_has(d->log, "tenant 1: suspended in 0.4 ms"));
	/* the daemon refuses what the state rules out: no reply payload */
	CHECK(op(d->sock, CV_CTL_SUSPEND, 1, -1, &r) == -EBUSY && r.pad == 1);
	CHECK(op(d->sock, CV_CTL_EVICT, 1, -1, &r) == 0 &&
	      r.state == CV_STATE_EVICTED && r.bytes == GIB / 4);
	CHECK(state_of(d->sock, 1) == CV_STATE_EVICTED);
	CHECK(file_has(d->log, "tenant 1: evicted, 256.0 MiB in 26.8 ms "
			       "(10.0 GB/s)"));
	CHECK(op(d->sock, CV_CTL_EVICT, 1, -1, &r) == -EBUSY);
	CHECK(op(d->sock, CV_CTL_SUSPEND, 1, -1, &r) == -EBUSY);
	/* GPUs: another one is a move, which starts with a checkpoint
	 * (that this fake worker refuses: the tenant stays as it was); an
	 * unknown one is refused */
	CHECK(op(d->sock, CV_CTL_RESUME, 1, 1, &r) == -EOPNOTSUPP);
	CHECK(file_has(d->log, "tenant 1: moving to gpu 1"));
	CHECK(file_has(d->log, "move failed at its checkpoint"));
	CHECK(state_of(d->sock, 1) == CV_STATE_EVICTED);
	CHECK(op(d->sock, CV_CTL_RESUME, 1, 7, &r) == -ENODEV);
	/* fields: flags, gpu where none is taken, gpu out of range */
	fd = op_send(d->sock, CV_CTL_RESUME, 1, -1, 1);
	CHECK(fd >= 0 && op_recv(fd, CV_CTL_RESUME, WAIT_MS, &r) == -EINVAL);
	CHECK(op(d->sock, CV_CTL_SUSPEND, 1, 0, &r) == -EINVAL);
	CHECK(op(d->sock, CV_CTL_RESUME, 1, -2, &r) == -EINVAL);
	CHECK(op(d->sock, CV_CTL_RESUME, 1, 65536, &r) == -EINVAL);
	CHECK(state_of(d->sock, 1) == CV_STATE_EVICTED);
	/* its own GPU is fine (the worker hears -1) */
	CHECK(op(d->sock, CV_CTL_RESUME, 1, 0, &r) == 0 &&
	      r.state == CV_STATE_RUNNING && r.bytes == GIB / 4);
	CHECK(file_has(d->log, "tenant 1: resumed, 256.0 MiB restored in "
			       "26.8 ms (10.0 GB/s)"));
	CHECK(state_of(d->sock, 1) == CV_STATE_RUNNING);
	CHECK(op(d->sock, CV_CTL_RESUME, 1, -1, &r) == -EBUSY);
	/* evict straight from running, then resume */
	CHECK(op(d->sock, CV_CTL_EVICT, 1, -1, &r) == 0 &&
	      r.state == CV_STATE_EVICTED);
	CHECK(op(d->sock, CV_CTL_RESUME, 1, -1, &r) == 0 &&
	      r.state == CV_STATE_RUNNING);
	CHECK(op(d->sock, CV_CTL_SUSPEND, 1, -1, &r) == 0);
	CHECK(op(d->sock, CV_CTL_RESUME, 1, -1, &r) == 0 && r.bytes == 0 &&
	      r.state == CV_STATE_RUNNING);
	CHECK(file_has(d->log, "tenant 1: resumed in 0.4 ms"));
	/* no such tenant */
	CHECK(op(d->sock, CV_CTL_SUSPEND, 99, -1, &r) == -ENOENT);
	CHECK(op(d->sock, CV_CTL_EVICT, 0, -1, &r) == -ENOENT);
	att_close(&a);
}

/* A SUSPEND/RESUME/EVICT whose payload is not exactly 16 bytes. */
static void test_ops_malformed(const struct daemon *d)
{
	struct cv_ctl_hdr h = { CV_CTL_MAGIC, CV_CTL_SUSPEND, 0, 15, 0 };
	uint8_t buf[sizeof(h) + 17] = { 0 };

	memcpy(buf, &h, sizeof(h));
	CHECK(refused(d->sock, buf, sizeof(h) + 15, -1));
	h.type = CV_CTL_EVICT;
	h.len = 17;
	memcpy(buf, &h, sizeof(h));
	CHECK(refused(d->sock, buf, sizeof(h) + 17, -1));
	h.type = CV_CTL_RESUME;
	h.len = 0;
	memcpy(buf, &h, sizeof(h));
	CHECK(refused(d->sock, buf, sizeof(h), -1));
	/* a worker's message from a client */
	h.type = CV_CTL_W_SUSPEND;
	h.len = 16;
	memcpy(buf, &h, sizeof(h));
	CHECK(refused(d->sock, buf, sizeof(h) + 16, -1));
}

/* Tenant 2 answers after 2 s: the daemon carries on meanwhile. */
static void test_ops_slow(const struct daemon *d)
{
	struct cv_ctl_op_r r;
	struct att a;
	uint64_t t0, dt;
	int fd;

	CHECK(attach(d->sock, 1, GIB, &a) == 0 && a.r.tenant_id == 2);
	t0 = cv_now_ns();
	fd = op_send(d->sock, CV_CTL_EVICT, 2, -1, 0);
	CHECK(fd >= 0);
	msleep(50);
	/* one operation at a time; ps and info answer at once */
	CHECK(op(d->sock, CV_CTL_SUSPEND, 2, -1, &r) == -EBUSY);
	CHECK(file_has(d->log, "its evict is still in progress"));
	CHECK(state_of(d->sock, 2) == CV_STATE_RUNNING);
	/* all that while the evict was still in progress */
	CHECK(cv_now_ns() - t0 < 1500000000ull);
	CHECK(op_recv(fd, CV_CTL_EVICT, WAIT_MS, &r) == 0 &&
	      r.state == CV_STATE_EVICTED);
	dt = cv_now_ns() - t0;
	CHECK(dt >= 1950000000ull && dt < WAIT_MS * 1000000ull);
	CHECK(state_of(d->sock, 2) == CV_STATE_EVICTED);
	/* the client leaves before the answer: the result is still kept */
	fd = op_send(d->sock, CV_CTL_RESUME, 2, -1, 0);
	CHECK(fd >= 0);
	CHECK(file_until(d->log, "tenant 2: resume asked by", WAIT_MS));
	close(fd);
	CHECK(state_until(d->sock, 2, CV_STATE_RUNNING, WAIT_MS));
	CHECK(file_until(d->log, "(nobody waits for it)", WAIT_MS));
	att_close(&a);
}

/* Workers that die, fail or answer garbage during an operation. */
static void test_ops_failing(const struct daemon *d)
{
	struct cv_ctl_op_r r;
	struct att a[3];

	CHECK(attach(d->sock, 0, GIB, &a[0]) == 0 && a[0].r.tenant_id == 3);
	CHECK(attach(d->sock, 0, GIB, &a[1]) == 0 && a[1].r.tenant_id == 4);
	CHECK(attach(d->sock, 0, GIB, &a[2]) == 0 && a[2].r.tenant_id == 5);
	/* opdie: the worker exits instead of answering */
	CHECK(op(d->sock, CV_CTL_SUSPEND, 3, -1, &r) == -EIO);
	CHECK(file_has(d->log, "went away during suspend"));
	CHECK(pid_gone((pid_t)a[0].r.worker_pid, WAIT_MS));
	CHECK(state_until(d->sock, 3, 99, WAIT_MS));
	/* opfail: its error and state reach the client */
	CHECK(op(d->sock, CV_CTL_EVICT, 4, -1, &r) == -ENOMEM &&
	      r.pad == 0 && r.state == CV_STATE_RUNNING);
	CHECK(file_has(d->log, "tenant 4: evict failed after 0.4 ms: Cannot "
			       "allocate memory; state running"));
	CHECK(state_of(d->sock, 4) == CV_STATE_RUNNING);
	/* opgarbage: a malformed reply; the worker is killed */
	CHECK(op(d->sock, CV_CTL_SUSPEND, 5, -1, &r) == -EIO);
	CHECK(pid_gone((pid_t)a[2].r.worker_pid, WAIT_MS));
	CHECK(file_has(d->log, "operation reply has the wrong length"));
	att_close(&a[0]);
	att_close(&a[1]);
	att_close(&a[2]);
}

/* Only our uid and root: as uid 65534 (allowed to connect) -EPERM. */
static void test_ops_perm(const struct daemon *d, uint64_t id)
{
	struct cv_ctl_op_r r;
	pid_t pid;
	int st;

	pid = fork();
	if (pid == 0) {
		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(9);
		_exit(op(d->sock, CV_CTL_SUSPEND, id, -1, &r) == -EPERM &&
		      op(d->sock, CV_CTL_EVICT, id, -1, &r) == -EPERM ? 0 : 1);
	}
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(file_has(d->log, "only uid 0 or root may suspend, resume, "
			       "evict or checkpoint tenants"));
	CHECK(state_of(d->sock, id) == CV_STATE_RUNNING);
}

static void test_ops(void)
{
	const char *allow[] = { "--allow-uid", "65534", NULL };
	const char *quick[] = { "--op-timeout", "1", NULL };
	struct cv_ctl_op_r r;
	struct daemon d;
	struct att a, b;
	uint64_t t0, dt;
	int fd;

	if (geteuid() == 0) {
		chmod(g_tmp, 0755);
		snprintf(d.dir, sizeof(d.dir), "%s/d%d", g_tmp, g_seq + 1);
		mkdir(d.dir, 0755);
	}
	CHECK(daemon_start(&d, "2:slowop,3:opdie,4:opfail,5:opgarbage",
			   geteuid() == 0 ? allow : NULL) == 0);
	test_ops_basic(&d);
	test_ops_malformed(&d);
	test_ops_slow(&d);
	test_ops_failing(&d);
	if (geteuid() == 0) {
		CHECK(attach(d.sock, 0, GIB, &a) == 0 && a.r.tenant_id == 6);
		test_ops_perm(&d, a.r.tenant_id);
		att_close(&a);
		chmod(g_tmp, 0700);
	}
	CHECK(call(d.sock, CV_CTL_SHUTDOWN, NULL, 0) == 0);
	CHECK(daemon_wait(&d, WAIT_MS) == 0);

	/* timeouts: tenant 1 never answers, tenant 2 answers after 3 s */
	CHECK(daemon_start(&d, "1:noop,2:lateop", quick) == 0);
	CHECK(attach(d.sock, 0, GIB, &a) == 0 && a.r.tenant_id == 1);
	CHECK(attach(d.sock, 0, GIB, &b) == 0 && b.r.tenant_id == 2);
	t0 = cv_now_ns();
	CHECK(op(d.sock, CV_CTL_SUSPEND, 1, -1, &r) == -ETIMEDOUT);
	dt = cv_now_ns() - t0;
	CHECK(dt >= 900000000ull && dt < WAIT_MS * 1000000ull);
	CHECK(file_has(d.log, "tenant 1: worker pid") &&
	      file_has(d.log, "did not suspend within 1 s"));
	/* still pending with the worker: busy */
	CHECK(op(d.sock, CV_CTL_SUSPEND, 1, -1, &r) == -EBUSY);
	CHECK(op(d.sock, CV_CTL_SUSPEND, 2, -1, &r) == -ETIMEDOUT);
	/* the late answer still counts */
	CHECK(state_until(d.sock, 2, CV_STATE_SUSPENDED, WAIT_MS));
	CHECK(file_until(d.log, "tenant 2: suspended in 0.4 ms (nobody "
			 "waits for it)", WAIT_MS));
	/* the worker dies while a client waits: -EIO at once */
	fd = op_send(d.sock, CV_CTL_RESUME, 2, -1, 0);
	CHECK(file_until(d.log, "tenant 2: resume asked by", WAIT_MS));
	signal_pid((pid_t)b.r.worker_pid, SIGKILL);
	CHECK(fd >= 0 && op_recv(fd, CV_CTL_RESUME, WAIT_MS, &r) == -EIO);
	CHECK(ps_until(d.sock, 1, WAIT_MS));
	att_close(&a);
	att_close(&b);
	CHECK(ps_until(d.sock, 0, WAIT_MS));
	signal_pid(d.pid, SIGTERM);
	CHECK(daemon_wait(&d, WAIT_MS) == 0);
}

/* The CLI's suspend, resume and evict: output and exit statuses. */
static void test_cli_ops(void)
{
	/* tenant 2 never answers; tenant 1 must within 3 s */
	const char *quick[] = { "--op-timeout", "3", NULL };
	char cli[PATH_MAX + 32], out[PATH_MAX];
	struct daemon d;
	struct att a, b;

	snprintf(cli, sizeof(cli), "%s/bin/cuvisor", g_build);
	snprintf(out, sizeof(out), "%s/cli-ops.out", g_tmp);
	CHECK(daemon_start(&d, "2:noop", quick) == 0);
	CHECK(attach(d.sock, 0, GIB, &a) == 0);
	CHECK(attach(d.sock, 0, GIB, &b) == 0);
	CHECK(run((const char *[]){ cli, "suspend", "1", "--socket", d.sock,
				    NULL }, out, NULL) == 0);
	CHECK(file_has(out, "tenant 1: suspended (0.4 ms)"));
	CHECK(run((const char *[]){ cli, "ps", "--socket", d.sock, NULL }, out,
		  NULL) == 0 && file_has(out, "suspended"));
	CHECK(run((const char *[]){ cli, "suspend", "--socket", d.sock, "1",
				    NULL }, out, NULL) == 1);
	CHECK(file_has(out, "cuvisor suspend: tenant 1 is suspended: only a "
			    "running tenant can be suspended"));
	CHECK(run((const char *[]){ cli, "resume", "1", "--gpu", "1",
				    "--socket", d.sock, NULL }, out, NULL) ==
	      1);
	/* a move, whose checkpoint this fake worker refuses */
	CHECK(file_has(out, "cuvisor resume: tenant 1: Operation not "
			    "supported"));
	CHECK(run((const char *[]){ cli, "evict", "1", "--socket", d.sock,
				    NULL }, out, NULL) == 0);
	CHECK(file_has(out, "tenant 1: evicted 256.0 MiB in 26.8 ms "
			    "(10.0 GB/s)"));
	CHECK(run((const char *[]){ cli, "ps", "--socket", d.sock, NULL }, out,
		  NULL) == 0 && file_has(out, "evicted") &&
	      file_has(out, "0B/1.0G"));
	CHECK(run((const char *[]){ cli, "resume", "--gpu=0", "1", "--socket",
				    d.sock, NULL }, out, NULL) == 0);
	CHECK(file_has(out, "tenant 1: resumed, 256.0 MiB restored in "
			    "26.8 ms"));
	CHECK(run((const char *[]){ cli, "resume", "1", "--socket", d.sock,
				    NULL }, out, NULL) == 1);
	CHECK(file_has(out, "cuvisor resume: tenant 1 is running: only a "
			    "suspended or evicted tenant"));
	CHECK(run((const char *[]){ cli, "suspend", "42", "--socket", d.sock,
				    NULL }, out, NULL) == 1);
	CHECK(file_has(out, "cuvisor suspend: no tenant 42 (see `cuvisor "
			    "ps`)"));
	/* the worker does not answer: the daemon's timeout */
	CHECK(run((const char *[]){ cli, "suspend", "2", "--socket", d.sock,
				    NULL }, out, NULL) == 1);
	CHECK(file_has(out, "cuvisor suspend: tenant 2's worker did not "
			    "answer in time"));
	CHECK(run((const char *[]){ cli, "evict", "2", "--socket", d.sock,
				    NULL }, out, NULL) == 1);
	CHECK(file_has(out, "tenant 2 is busy: another operation on it is "
			    "still in progress"));
	/* usage errors */
	CHECK(run((const char *[]){ cli, "suspend", NULL }, out, NULL) == 2);
	CHECK(file_has(out, "which tenant?"));
	CHECK(run((const char *[]){ cli, "evict", "x1", NULL }, out, NULL) ==
	      2);
	CHECK(run((const char *[]){ cli, "evict", "1", "2", NULL }, out,
		  NULL) == 2);
	CHECK(run((const char *[]){ cli, "resume", "1", "--gpu", "-1", NULL },
		  out, NULL) == 2);
	CHECK(run((const char *[]){ cli, "evict", "--help", NULL }, out,
		  NULL) == 0 && file_has(out, "Usage: cuvisor evict"));
	CHECK(run((const char *[]){ cli, "--help", NULL }, out, NULL) == 0 &&
	      file_has(out, "  suspend ") && file_has(out, "  resume ") &&
	      file_has(out, "  evict "));
	att_close(&a);
	att_close(&b);
	CHECK(run((const char *[]){ cli, "shutdown", "--socket", d.sock,
				    NULL }, out, NULL) == 0);
	CHECK(daemon_wait(&d, WAIT_MS) == 0);
}

static void copy(const char *from, const char *to)
{
	char buf[65536];
	ssize_t n;
	int in = open(from, O_RDONLY), out;

	out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0755);
	while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			break;
	close(in);
	close(out);
}

static int count_run_dirs(const char *base)
{
	struct dirent *e;
	DIR *d = opendir(base);
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		n += !strncmp(e->d_name, "run-", 4);
	closedir(d);
	return n;
}

/* `cuvisor run` from an installed layout: bin/ and lib/ side by side. */
/* A socket file nobody listens on (a daemon killed with SIGKILL). */
static int stale_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0), r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	r = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	if (fd >= 0)
		close(fd);
	return r;
}

/*
 * A daemon that is there but refuses us is a failure with its reason,
 * not a private daemon (unless the fallback is allowed): its admission
 * (quotas past the GPU's memory), another backend than --backend. A
 * stale socket is no daemon.
 */
static void test_cli_run_refused(const char *cli, const char *sock,
				 const char *out, const char *xdg,
				 const char *base)
{
	const char *why = "quota 8.0 GiB asked, 4.0 GiB of gpu 0's 16.0 GiB "
			  "left";
	char stale[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int dirs = count_run_dirs(base); /* earlier tests' kept logs */
	struct att a, b;

	CHECK(attach(sock, 0, 12 * GIB, &a) == 0);
	CHECK(attach(sock, 0, 8 * GIB, &b) == -ENOSPC);
	CHECK(strstr(g_reason, why) != NULL);
	att_close(&b);
	CHECK(run((const char *[]){ cli, "run", "--socket", sock, "--gpu", "0",
				    "--mem", "8G", "--", "/bin/true", NULL },
		  out, xdg) == 125);
	CHECK(file_has(out, "refuses a vGPU: ") && file_has(out, why) &&
	      file_has(out, "no private daemon started"));
	CHECK(count_run_dirs(base) == dirs);
	/* the same through CUVISOR_MEM, which the program would use */
	CHECK(run2((const char *[]){ cli, "run", "--socket", sock, "--gpu",
				     "0", "--", "/bin/true", NULL }, out, xdg,
		   "CUVISOR_MEM=8589934592") == 125);
	CHECK(file_has(out, why));
	/* allowed: a private daemon instead, and it says so */
	CHECK(run((const char *[]){ cli, "run", "--socket", sock, "--gpu", "0",
				    "--mem", "8G", "--fallback-private", "--",
				    "/bin/true", NULL }, out, xdg) == 0);
	CHECK(file_has(out, why) &&
	      file_has(out, "starting a private daemon instead"));
	CHECK(run2((const char *[]){ cli, "run", "--socket", sock, "--gpu",
				     "0", "--mem", "8G", "--", "/bin/true",
				     NULL }, out, xdg,
		   "CUVISOR_PRIVATE_FALLBACK=1") == 0);
	CHECK(count_run_dirs(base) == dirs);
	/* what fits is admitted */
	CHECK(run((const char *[]){ cli, "run", "--socket", sock, "--gpu", "0",
				    "--mem", "4G", "--", "/bin/true", NULL },
		  out, xdg) == 0);
	att_close(&a);
	/* --backend cuda never runs on the host backend */
	CHECK(run((const char *[]){ cli, "run", "--socket", sock, "--backend",
				    "cuda", "--", "/bin/true", NULL },
		  out, xdg) == 125);
	CHECK(file_has(out, "--backend cuda: the daemon at ") &&
	      file_has(out, "uses the host backend"));
	CHECK(run((const char *[]){ cli, "run", "--socket", sock, "--backend",
				    "host", "--", "/bin/true", NULL },
		  out, xdg) == 0);
	/* --private: a private daemon though one runs there */
	CHECK(run((const char *[]){ cli, "run", "--socket", sock, "--private",
				    "--backend", "host", "--", "/bin/sh", "-c",
				    "case $CUVISOR_SOCKET in */run-*) exit 0;; "
				    "esac; exit 1", NULL }, out, xdg) == 0);
	/* a stale socket is no daemon: a private one */
	snprintf(stale, sizeof(stale), "%s/stale.sock", g_tmp);
	CHECK(stale_socket(stale) == 0);
	CHECK(run((const char *[]){ cli, "run", "--socket", stale, "--",
				    "/bin/true", NULL }, out, xdg) == 0);
	unlink(stale);
	CHECK(count_run_dirs(base) == dirs);
}

static void test_cli_run(void)
{
	char inst[PATH_MAX], src[PATH_MAX + 64], dst[PATH_MAX + 64];
	char cli[PATH_MAX + 64], out[PATH_MAX], xdg[PATH_MAX + 16];
	char base[PATH_MAX + 32], nosock[PATH_MAX + 16];
	char libdir[PATH_MAX + 16], want[PATH_MAX + 64];
	struct daemon d;
	pid_t pid;
	int st, fd;

	snprintf(inst, sizeof(inst), "%s/inst", g_tmp);
	mkdir(inst, 0755);
	snprintf(dst, sizeof(dst), "%s/bin", inst);
	mkdir(dst, 0755);
	snprintf(dst, sizeof(dst), "%s/lib", inst);
	mkdir(dst, 0755);
	snprintf(src, sizeof(src), "%s/bin/cuvisor", g_build);
	snprintf(cli, sizeof(cli), "%s/bin/cuvisor", inst);
	copy(src, cli);
	snprintf(src, sizeof(src), "%s/bin/cuvisord", g_build);
	snprintf(dst, sizeof(dst), "%s/bin/cuvisord", inst);
	copy(src, dst);
	snprintf(src, sizeof(src), "%s/tests/fake-vgpu", g_build);
	snprintf(dst, sizeof(dst), "%s/bin/cuvisor-vgpu", inst);
	copy(src, dst);
	snprintf(libdir, sizeof(libdir), "%s/lib", inst);
	snprintf(dst, sizeof(dst), "%s/libcuda.so.1", libdir);
	fd = open(dst, O_WRONLY | O_CREAT, 0644);
	close(fd);

	snprintf(xdg, sizeof(xdg), "XDG_RUNTIME_DIR=%s/xdg", g_tmp);
	mkdir(xdg + 16, 0700);
	snprintf(base, sizeof(base), "%s/cuvisor", xdg + 16);
	snprintf(nosock, sizeof(nosock), "%s/none/s.sock", g_tmp);
	snprintf(out, sizeof(out), "%s/run.out", g_tmp);
	setenv("CUVISOR_TEST_LIBDIR", libdir, 1);

	/* a private daemon: started, used, stopped, cleaned up */
	CHECK(run((const char *[]){ cli, "run", "--socket", nosock, "--gpu",
				    "1", "--mem", "1.5G", "--backend", "host",
				    "--log", "warn", "--", g_self,
				    "child-attach", NULL }, out, xdg) == 3);
	CHECK(file_has(out, "child-attach: ok"));
	CHECK(count_run_dirs(base) == 0);
	/* PROG cannot be executed */
	CHECK(run((const char *[]){ cli, "run", "--socket", nosock, "--",
				    "/nonexistent/prog", NULL }, out, xdg) ==
	      127);
	CHECK(file_has(out, "cannot execute /nonexistent/prog"));
	CHECK(count_run_dirs(base) == 0);
	/* killed by a signal */
	CHECK(run((const char *[]){ cli, "run", "--socket", nosock, "--",
				    "/bin/sh", "-c", "kill -TERM $$", NULL },
		  out, xdg) == 128 + SIGTERM);
	/* the private daemon fails to start: 125 and its log */
	CHECK(run2((const char *[]){ cli, "run", "--socket", nosock, "--",
				     "/bin/true", NULL }, out, xdg,
		   "FAKE_VGPU_PROBE=fail") == 125);
	CHECK(file_has(out, "exited at start") &&
	      file_has(out, "probe (backend host) exited with status 1"));
	/* no guest library */
	CHECK(run2((const char *[]){ cli, "run", "--socket", nosock, "--",
				     "/bin/true", NULL }, out, xdg,
		   "CUVISOR_LIBDIR=/nonexistent") == 125);
	CHECK(file_has(out, "/nonexistent/libcuda.so.1 is missing"));

	/* an existing daemon is used, not a private one */
	CHECK(daemon_start(&d, NULL, NULL) == 0);
	setenv("CUVISOR_TEST_SOCKET", d.sock, 1);
	CHECK(run((const char *[]){ cli, "run", "--socket", d.sock, "--",
				    g_self, "child-attach", NULL }, out, xdg) ==
	      3);
	unsetenv("CUVISOR_TEST_SOCKET");
	CHECK(daemon_wait(&d, 0) == -1);
	CHECK(file_has(d.log, "tenant 1 (\"e2e-app\", pid"));
	test_cli_run_refused(cli, d.sock, out, xdg, base);

	/* SIGTERM to cuvisor reaches PROG */
	pid = fork();
	if (pid == 0) {
		fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 1);
		dup2(fd, 2);
		execl(cli, cli, "run", "--socket", d.sock, "--", "/bin/sleep",
		      "30", (char *)NULL);
		_exit(99);
	}
	/* once PROG runs (before, the signal would find no PROG) */
	CHECK(child_until(pid, "sleep", WAIT_MS));
	signal_pid(pid, SIGTERM);
	st = -1;
	for (fd = 0; fd < WAIT_MS / 10 && waitpid(pid, &st, WNOHANG) != pid;
	     fd++)
		msleep(10);
	CHECK(fd < WAIT_MS / 10 && WIFEXITED(st) &&
	      WEXITSTATUS(st) == 128 + SIGTERM);
	if (fd == WAIT_MS / 10) {
		signal_pid(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	snprintf(want, sizeof(want), "%s", d.sock);
	CHECK(call(want, CV_CTL_SHUTDOWN, NULL, 0) == 0);
	CHECK(daemon_wait(&d, WAIT_MS) == 0);
	unsetenv("CUVISOR_TEST_LIBDIR");
}

/*
 * PROG of the `cuvisor run` tests: checks its environment, attaches as a
 * guest would and exits 3 (so that the caller sees our status).
 */
static int child_attach(void)
{
	const char *lib = getenv("CUVISOR_TEST_LIBDIR");
	const char *want_sock = getenv("CUVISOR_TEST_SOCKET");
	const char *ld = getenv("LD_LIBRARY_PATH");
	const char *sock = getenv("CUVISOR_SOCKET");
	const char *gpu = getenv("CUVISOR_GPU");
	const char *mem = getenv("CUVISOR_MEM");
	const char *log = getenv("CUVISOR_LOG");
	char real[PATH_MAX];
	uint64_t m = 0;
	struct att a;
	int r;

	if (!lib || !realpath(lib, real) || !ld ||
	    strncmp(ld, real, strlen(real)) || !sock) {
		fprintf(stderr, "child-attach: bad environment: LD_LIBRARY_PATH"
			"=%s CUVISOR_SOCKET=%s\n", ld ? ld : "",
			sock ? sock : "");
		return 1;
	}
	if (want_sock ? strcmp(sock, want_sock) != 0
		      : !strstr(sock, "/cuvisor/run-")) {
		fprintf(stderr, "child-attach: unexpected socket %s\n", sock);
		return 1;
	}
	if (!want_sock && (!gpu || strcmp(gpu, "1") || !mem ||
			   strcmp(mem, "1610612736") || !log ||
			   strcmp(log, "warn"))) {
		fprintf(stderr, "child-attach: CUVISOR_GPU/MEM/LOG not set\n");
		return 1;
	}
	if (mem)
		m = strtoull(mem, NULL, 10);
	r = attach(sock, gpu ? atoi(gpu) : -1, m, &a);
	if (r < 0 || (mem && a.r.quota != m)) {
		fprintf(stderr, "child-attach: attach: %s\n", strerror(-r));
		return 1;
	}
	printf("child-attach: ok, tenant %llu\n",
	       (unsigned long long)a.r.tenant_id);
	return 3;
}

int main(int argc, char **argv)
{
	char need[PATH_MAX + 32];
	size_t i;

	if (argc > 1 && !strcmp(argv[1], "child-attach"))
		return child_attach();
	/* BUILD_DIR defaults to the parent of our own directory. */
	if (argc > 2 || !realpath("/proc/self/exe", g_self) ||
	    !realpath(argc == 2 ? argv[1] : g_self, g_build)) {
		fprintf(stderr, "usage: test_daemon [BUILD_DIR]\n");
		return 2;
	}
	if (argc == 1)
		for (i = 0; i < 2; i++)
			*strrchr(g_build, '/') = 0;
	for (i = 0; i < 3; i++) {
		snprintf(need, sizeof(need), "%s/%s", g_build,
			 (const char *[]){ "bin/cuvisord", "bin/cuvisor",
					   "tests/fake-vgpu" }[i]);
		if (access(need, X_OK) < 0) {
			printf("test_daemon: skipped: %s is missing (make "
			       "test-ctl)\n", need);
			return 77;
		}
	}
	snprintf(g_tmp, sizeof(g_tmp), "/tmp/cv-test-daemon-XXXXXX");
	if (!mkdtemp(g_tmp)) {
		perror("mkdtemp");
		return 1;
	}
	unsetenv("CUVISOR_SOCKET");
	unsetenv("CUVISOR_LIBDIR");
	setenv("FAKE_VGPU_GPUS", "2", 1);
	signal(SIGPIPE, SIG_IGN);
	test_attach();
	test_attach_errors();
	test_malformed();
	test_peercred();
	test_limits_user();
	test_idle();
	test_shutdown();
	test_spare_gone_while_stopping();
	test_ps_timeout();
	test_private();
	test_socket_rules();
	test_ops();
	test_cli_query();
	test_cli_ops();
	test_cli_run();
	printf("test_daemon: %d passed, %d failed%s%s\n", passed, failed,
	       failed ? "; logs in " : "", failed ? g_tmp : "");
	if (!failed) {
		char cmd[PATH_MAX + 16];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", g_tmp);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", g_tmp);
	}
	return failed ? 1 : 0;
}

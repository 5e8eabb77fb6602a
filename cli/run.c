/* SPDX-License-Identifier: MIT */
/*
 * `cuvisor run [OPTION...] -- PROG [ARG...]`: runs PROG on a virtual GPU.
 *
 * Finds the daemon (--socket or the default path) and asks it whether it
 * admits PROG; when there is none (or with --private), starts a private
 * one (cuvisord --private) in a fresh 0700 directory, detached from us
 * (double fork + setsid), and stops it after PROG. A daemon that is there
 * but refuses us (choose_daemon) is a failure with its reason, unless the
 * private fallback is allowed (--fallback-private,
 * CUVISOR_PRIVATE_FALLBACK=1): PROG never runs outside the operator's
 * daemon without the user asking for it. PROG
 * runs with the guest libcuda.so.1 first on LD_LIBRARY_PATH and
 * CUVISOR_SOCKET (and CUVISOR_GPU, CUVISOR_MEM, CUVISOR_LOG as asked).
 *
 * Exit status: PROG's (128 + N when killed by signal N); 127 when PROG
 * cannot be executed; 125 when cuvisor itself fails; 2 on a usage error.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../core/proto.h"
#include "../core/util.h"

#define EXIT_RUN_FAILED 125
#define EXIT_NOEXEC 127
#define START_TIMEOUT_MS 10000
#define PROBE_TIMEOUT_MS 10000

struct run_ctx {
	const char *socket;
	const char *backend;
	const char *log;
	const char *gpu;
	const char *mem;
	const char *host;       /* --host: a peer's GPU */
	const char *peer_key;   /* for a private daemon */
	bool private_only;      /* --private */
	bool fallback;          /* --fallback-private */
};

/* The socket path must fit sockaddr_un; so must the directory then. */
struct priv {
	char dir[108];
	char sock[108];
	char log[128];
	pid_t pid;
};

static int set_gpu(void *ctx, const char *v)
{
	char *end;
	long g;

	errno = 0;
	g = strtol(v, &end, 10);
	if (!*v || *end || errno || g < 0 || g > 65535) {
		fprintf(stderr, "cuvisor run: --gpu: '%s' is not a GPU index\n",
			v);
		return -EINVAL;
	}
	((struct run_ctx *)ctx)->gpu = v;
	return 0;
}

static int set_mem(void *ctx, const char *v)
{
	static char bytes[24];
	uint64_t m;

	if (cv_ctl_parse_size(v, &m) < 0 || !m) {
		fprintf(stderr, "cuvisor run: --mem: '%s' is not a size (bytes, "
			"or a number with K, M, G or T)\n", v);
		return -EINVAL;
	}
	snprintf(bytes, sizeof(bytes), "%llu", (unsigned long long)m);
	((struct run_ctx *)ctx)->mem = bytes;
	return 0;
}

CV_CLI_CTX_CHECK(struct run_ctx);

static int set_backend(void *ctx, const char *v)
{
	if (strcmp(v, "cuda") && strcmp(v, "host") && strcmp(v, "auto")) {
		fprintf(stderr, "cuvisor run: --backend: '%s' is not cuda, host "
			"or auto\n", v);
		return -EINVAL;
	}
	((struct run_ctx *)ctx)->backend = v;
	return 0;
}

static int set_host(void *ctx, const char *v)
{
	if (!*v || strlen(v) >= CV_CTL_HOST_LEN) {
		fprintf(stderr, "cuvisor run: --host: '%s' is not HOST[:PORT]\n",
			v);
		return -EINVAL;
	}
	((struct run_ctx *)ctx)->host = v;
	return 0;
}

static int set_peer_key(void *ctx, const char *v)
{
	static char abs[PATH_MAX];

	/* The private daemon and its workers do not run where we do. */
	if (!realpath(v, abs)) {
		fprintf(stderr, "cuvisor run: --peer-key %s: %s\n", v,
			strerror(errno));
		return -EINVAL;
	}
	((struct run_ctx *)ctx)->peer_key = abs;
	return 0;
}

static int set_private(void *ctx, const char *v)
{
	((struct run_ctx *)ctx)->private_only = true;
	return 0;
}

static int set_fallback(void *ctx, const char *v)
{
	((struct run_ctx *)ctx)->fallback = true;
	return 0;
}

static int set_log(void *ctx, const char *v)
{
	static const char *const levels[] = { "off", "error", "warn", "info",
					      "debug" };
	size_t n = strcspn(v, ":"), i;

	for (i = 0; i < CV_ARRAY_SIZE(levels); i++) {
		if (strlen(levels[i]) == n && !strncmp(v, levels[i], n)) {
			((struct run_ctx *)ctx)->log = v;
			return 0;
		}
	}
	fprintf(stderr, "cuvisor run: --log: '%s' is not LEVEL[:PATH] with "
		"LEVEL one of error, warn, info, debug, off\n", v);
	return -EINVAL;
}

/* ---- the daemon --------------------------------------------------- */

/* What is at the socket path (probe_daemon). */
enum found { FOUND_DAEMON, FOUND_NONE, FOUND_REFUSING };

/*
 * Looks for a daemon at path and asks it INFO. FOUND_NONE when nothing
 * is there: no socket file, or a stale one nobody listens on
 * (ECONNREFUSED). FOUND_REFUSING, with why, when something is there but
 * will not serve us: the socket cannot be used (EACCES...), the daemon
 * closes the connection without answering (it does not accept our uid),
 * does not answer, or answers with an error.
 */
static enum found probe_daemon(const char *path, struct cv_ctl_info_r *info,
			       char *why, size_t size)
{
	uint8_t buf[CV_CTL_MAX];
	struct ucred cr = { .pid = 0, .uid = (uid_t)-1 };
	socklen_t len = sizeof(cr);
	int fd, n;

	/* Only a daemon of ours or root's (cv_ctl_connect_daemon; another
	 * one is refused, and said why, by cv_cli_connect). */
	fd = cv_cli_connect(path, true);
	if (fd == -EPERM || fd == -EINVAL) {
		snprintf(why, size, "the daemon at %s is not one to use (above)",
			 path);
		return FOUND_REFUSING;
	}
	if (fd == -ENOENT || fd == -ENOTDIR || fd == -ECONNREFUSED)
		return FOUND_NONE;
	if (fd < 0) {
		snprintf(why, size, "the daemon's socket %s cannot be used: %s",
			 path, strerror(-fd));
		return FOUND_REFUSING;
	}
	getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len);
	n = cv_cli_call(fd, CV_CTL_INFO, NULL, 0, buf, sizeof(buf),
			PROBE_TIMEOUT_MS);
	close(fd);
	if (n >= (int)sizeof(*info)) {
		memcpy(info, buf, sizeof(*info));
		return FOUND_DAEMON;
	}
	/* cv_cli_call printed the reason of a CV_CTL_REFUSED (its status). */
	if (n == -ECONNRESET || n == -EPIPE)
		snprintf(why, size, "the daemon at %s (pid %d, uid %u) closed "
			 "the connection without answering: it does not accept "
			 "uid %u (see cuvisord --allow-uid), or has too many "
			 "clients", path, (int)cr.pid, (unsigned)cr.uid,
			 (unsigned)geteuid());
	else if (n == -ETIMEDOUT)
		snprintf(why, size, "the daemon at %s (pid %d) did not answer "
			 "within %d s", path, (int)cr.pid,
			 PROBE_TIMEOUT_MS / 1000);
	else
		snprintf(why, size, "the daemon at %s refused us: %s", path,
			 strerror(n < 0 ? -n : EPROTO));
	return FOUND_REFUSING;
}

/* --backend B never runs on another backend: 0, or -1 with why. */
static int check_backend(const struct run_ctx *c, const char *path,
			 const struct cv_ctl_info_r *info, char *why,
			 size_t size)
{
	const char *have = info->backend == CV_BACKEND_CUDA ? "cuda" : "host";

	if (!c->backend || !strcmp(c->backend, "auto") ||
	    !strcmp(c->backend, have))
		return 0;
	snprintf(why, size, "--backend %s: the daemon at %s uses the %s "
		 "backend%s, not %s", c->backend, path, have,
		 info->backend == CV_BACKEND_CUDA ? "" : " (a CPU, no GPU)",
		 c->backend);
	return -1;
}

/* The ATTACH the program's guest library will send (guest/attach.c). */
static int attach_like_guest(const struct run_ctx *c, const char *prog,
			     struct cv_ctl_attach *a)
{
	const char *gpu = c->gpu ? c->gpu : getenv("CUVISOR_GPU");
	const char *mem = c->mem ? c->mem : getenv("CUVISOR_MEM");
	const char *host = c->host ? c->host : getenv("CUVISOR_HOST");
	const char *base = strrchr(prog, '/');
	char *end;

	memset(a, 0, sizeof(*a));
	a->pid = (uint32_t)getpid();
	a->proto = CV_PROTO_VERSION;
	a->gpu = -1;
	if (gpu && *gpu) {
		a->gpu = (int32_t)strtol(gpu, &end, 0);
		if (*end)
			return -EINVAL;
	}
	if (mem && *mem) {
		a->mem = strtoull(mem, &end, 0);
		if (*end)
			return -EINVAL;
	}
	snprintf(a->name, sizeof(a->name), "%s", base ? base + 1 : prog);
	if (host && snprintf(a->host, sizeof(a->host), "%s", host) >=
			    (int)sizeof(a->host))
		return -EINVAL;
	return 0;
}

/*
 * Asks the daemon whether it would admit the program now (ADMIT): 0, or
 * -1 with why (its reason). Anything else (a daemon that does not know
 * ADMIT closes the connection) is left to the program's own attach.
 */
static int ask_admit(const struct run_ctx *c, const char *path,
		     const char *prog, char *why, size_t size)
{
	char buf[CV_CTL_REASON_LEN + 64];
	struct cv_ctl_attach a;
	struct cv_ctl_hdr h;
	int fd, n, i;

	if (attach_like_guest(c, prog, &a) < 0)
		return 0;
	fd = cv_cli_connect(path, true);
	if (fd < 0)
		return 0;
	n = cv_ctl_send(fd, CV_CTL_ADMIT, 0, &a, sizeof(a), NULL, 0);
	if (n == 0)
		n = cv_ctl_recv(fd, &h, buf, sizeof(buf) - 1, NULL, NULL,
				PROBE_TIMEOUT_MS);
	close(fd);
	if (n < 0 || h.type != (CV_CTL_ADMIT | CV_CTL_REPLY) || !h.status)
		return 0;
	buf[n] = 0;
	for (i = 0; buf[i]; i++)
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
			buf[i] = '?';
	snprintf(why, size, "the daemon at %s refuses a vGPU: %s", path,
		 buf[0] ? buf : strerror(-h.status));
	return -1;
}

/* --fallback-private, or CUVISOR_PRIVATE_FALLBACK=1. */
static bool fallback_allowed(const struct run_ctx *c)
{
	const char *e = getenv("CUVISOR_PRIVATE_FALLBACK");

	return c->fallback || (e && !strcmp(e, "1"));
}

/*
 * Which daemon PROG uses: 0 the one at path, 1 a private one (--private;
 * no daemon at path; or it refuses us and the fallback is allowed, said
 * on stderr), -1 when it refuses us (printed, with why).
 */
static int choose_daemon(const struct run_ctx *c, const char *path,
			 const char *prog)
{
	char why[CV_CTL_REASON_LEN + 512];
	struct cv_ctl_info_r info;
	enum found f;

	if (c->private_only)
		return 1;
	f = probe_daemon(path, &info, why, sizeof(why));
	if (f == FOUND_NONE)
		return 1;
	if (f == FOUND_DAEMON && !check_backend(c, path, &info, why,
						sizeof(why)) &&
	    !ask_admit(c, path, prog, why, sizeof(why)))
		return 0;
	if (fallback_allowed(c)) {
		fprintf(stderr, "cuvisor run: %s; starting a private daemon "
			"instead (fallback allowed)\n", why);
		return 1;
	}
	fprintf(stderr, "cuvisor run: %s\ncuvisor run: no private daemon "
		"started in its place: --private runs on one, "
		"--fallback-private (or CUVISOR_PRIVATE_FALLBACK=1) falls back "
		"to one when a daemon refuses\n", why);
	return -1;
}

/* Creates dir 0700 if missing; it must then be ours and private. */
static int private_mkdir(const char *dir)
{
	struct stat st;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "cuvisor run: cannot create %s: %s\n", dir,
			strerror(errno));
		return -1;
	}
	if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) ||
	    st.st_uid != geteuid() || (st.st_mode & 077)) {
		fprintf(stderr, "cuvisor run: refusing %s: not a directory "
			"owned by us with mode 0700\n", dir);
		return -1;
	}
	return 0;
}

static int private_paths(struct priv *p)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	char base[PATH_MAX];
	int n;

	if (xdg && xdg[0] == '/')
		n = snprintf(base, sizeof(base), "%s/cuvisor", xdg);
	else
		n = snprintf(base, sizeof(base), "/tmp/cuvisor-%u",
			     (unsigned)geteuid());
	if (n < 0 || (size_t)n >= sizeof(base) || private_mkdir(base) < 0)
		return -1;
	n = snprintf(p->dir, sizeof(p->dir), "%s/run-%d", base, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(p->dir) || private_mkdir(p->dir) < 0)
		return -1;
	n = snprintf(p->sock, sizeof(p->sock), "%s/cuvisord.sock", p->dir);
	if (n < 0 || (size_t)n >= sizeof(p->sock)) {
		fprintf(stderr, "cuvisor run: %s: path too long for a socket\n",
			p->dir);
		return -1;
	}
	snprintf(p->log, sizeof(p->log), "%s/cuvisord.log", p->dir);
	/* Left over from an earlier run with our pid. */
	unlink(p->sock);
	unlink(p->log);
	return 0;
}

/* Prints the last lines of the private daemon's log. */
static void print_log_tail(const struct priv *p)
{
	char buf[4096];
	ssize_t n;
	int fd, lines = 0;
	off_t size;
	char *s;

	fd = open(p->log, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	if (size > (off_t)sizeof(buf) - 1)
		lseek(fd, size - (off_t)sizeof(buf) + 1, SEEK_SET);
	else
		lseek(fd, 0, SEEK_SET);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	for (s = buf + n - 1; s > buf; s--)
		if (*s == '\n' && s[1] && ++lines == 10)
			break;
	fprintf(stderr, "cuvisor run: the daemon's log (%s) ends with:\n%s",
		p->log, *s == '\n' ? s + 1 : s);
}

struct rec { int tag; int val; }; /* 1: daemon pid, 2: exec errno */

/* The grandchild: becomes the daemon. Never returns. */
static void exec_daemon(const char *path, char *const *argv,
			const struct priv *p, int wfd)
{
	struct rec r = { 2, 0 };
	int fd;

	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
	}
	/* Early failures, before --log takes over, land in the log too. */
	fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd >= 0)
		dup2(fd, 2);
	execv(path, argv);
	r.val = errno;
	if (write(wfd, &r, sizeof(r)) < 0)
		_exit(126);
	_exit(126);
}

/* Forks the daemon out of our process group; its pid or -1. */
static pid_t spawn_daemon(const char *path, char *const *argv,
			  const struct priv *p)
{
	struct rec r, got = { 0, 0 };
	int pp[2], st;
	pid_t pid, gc;

	if (pipe2(pp, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		setsid();
		gc = fork();
		if (gc == 0)
			exec_daemon(path, argv, p, pp[1]);
		r = (struct rec){ 1, (int)gc };
		_exit(write(pp[1], &r, sizeof(r)) == sizeof(r) ? 0 : 1);
	}
	close(pp[1]);
	if (pid > 0)
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
	/* EOF once the middle child exited and the daemon exec'ed. */
	while (pid > 0 && read(pp[0], &r, sizeof(r)) == sizeof(r)) {
		if (r.tag == 1)
			got.tag = r.val;
		else
			got.val = r.val;
	}
	close(pp[0]);
	if (got.val) {
		fprintf(stderr, "cuvisor run: cannot execute %s: %s\n", path,
			strerror(got.val));
		return -1;
	}
	if (pid < 0 || got.tag <= 0) {
		fprintf(stderr, "cuvisor run: cannot start %s\n", path);
		return -1;
	}
	return got.tag;
}

/* A zombie (or dead) process: state Z or X in /proc/PID/stat. */
static bool is_zombie(pid_t pid)
{
	char path[64], buf[512], *s;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	s = strrchr(buf, ')');
	return s && s[1] == ' ' && (s[2] == 'Z' || s[2] == 'X');
}

/* Whether the daemon pid has exited; pidfd is -1 when not available.
 * Not our child: nobody may reap it soon (a container's init), so a
 * zombie counts as gone. */
static bool daemon_gone(pid_t pid, int pidfd)
{
	struct pollfd pf = { .fd = pidfd, .events = POLLIN };

	if (pidfd >= 0 && poll(&pf, 1, 0) > 0)
		return true;
	if (kill(pid, 0) < 0 && errno == ESRCH)
		return true;
	return is_zombie(pid);
}

/* Waits up to ms for pid to exit; true when it has. */
static bool wait_gone(pid_t pid, int ms)
{
	uint64_t until = cv_now_ns() + (uint64_t)ms * 1000000ull;
	int pidfd = -1;
	bool gone;

#ifdef SYS_pidfd_open
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
#endif
	while (!(gone = daemon_gone(pid, pidfd)) && cv_now_ns() < until)
		nanosleep(&(struct timespec){ 0, 2000000 }, NULL);
	if (pidfd >= 0)
		close(pidfd);
	return gone;
}

static int wait_daemon(struct priv *p)
{
	uint64_t until = cv_now_ns() + START_TIMEOUT_MS * 1000000ull;
	int pidfd = -1, fd, r = -1;

#ifdef SYS_pidfd_open
	pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
#endif
	while (cv_now_ns() < until) {
		fd = cv_ctl_connect(p->sock);
		if (fd >= 0) {
			close(fd);
			r = 0;
			goto out;
		}
		if (daemon_gone(p->pid, pidfd)) {
			fprintf(stderr, "cuvisor run: the private daemon exited "
				"at start\n");
			print_log_tail(p);
			goto out;
		}
		nanosleep(&(struct timespec){ 0, 20000000 }, NULL);
	}
	fprintf(stderr, "cuvisor run: the private daemon did not answer "
		"within %d s\n", START_TIMEOUT_MS / 1000);
	print_log_tail(p);
	kill(p->pid, SIGTERM);
out:
	if (pidfd >= 0)
		close(pidfd);
	return r;
}

static int start_private(const struct run_ctx *c, struct priv *p)
{
	char path[PATH_MAX], logspec[PATH_MAX + 8];
	const char *argv[12];
	int n = 0;

	if (cv_cli_exe_dir(path, sizeof(path) - 16) < 0) {
		fprintf(stderr, "cuvisor run: cannot find our executable\n");
		return -1;
	}
	strcat(path, "/cuvisord");
	if (access(path, X_OK) < 0) {
		fprintf(stderr, "cuvisor run: no daemon answers and %s cannot "
			"be run: %s\n", path, strerror(errno));
		return -1;
	}
	if (private_paths(p) < 0)
		return -1;
	snprintf(logspec, sizeof(logspec), "info:%s", p->log);
	argv[n++] = path;
	argv[n++] = "--private";
	argv[n++] = "--socket";
	argv[n++] = p->sock;
	if (c->backend) {
		argv[n++] = "--backend";
		argv[n++] = c->backend;
	}
	if (c->peer_key) {
		argv[n++] = "--peer-key";
		argv[n++] = c->peer_key;
	}
	argv[n++] = "--log";
	argv[n++] = logspec;
	argv[n] = NULL;
	p->pid = spawn_daemon(path, (char *const *)argv, p);
	if (p->pid < 0)
		return -1;
	return wait_daemon(p);
}

/* True when the log has warnings or errors worth keeping it for. */
static bool log_has_trouble(const char *log)
{
	char line[1024];
	bool bad = false;
	FILE *f;

	f = fopen(log, "re");
	if (!f)
		return false;
	while (!bad && fgets(line, sizeof(line), f))
		bad = strstr(line, "] warn: ") || strstr(line, "] error: ");
	fclose(f);
	return bad;
}

static void stop_private(const struct priv *p)
{
	uint8_t buf[64];
	int fd;

	/* It may be on its way out already (a private daemon stops when its
	 * last tenant is gone), so the request may fail in any way: what
	 * counts is that it exits. */
	fd = cv_ctl_connect(p->sock);
	if (fd >= 0) {
		cv_cli_call(fd, CV_CTL_SHUTDOWN, NULL, 0, buf, sizeof(buf),
			    15000);
		close(fd);
	}
	/* The daemon answers SHUTDOWN before it stops its workers and
	 * removes its socket: wait for it, so that the directory is empty
	 * and nothing of it outlives us. */
	if (!wait_gone(p->pid, 15000)) {
		fprintf(stderr, "cuvisor run: the private daemon (pid %d) is "
			"still running 15 s after it was asked to stop; its "
			"log is %s\n", (int)p->pid, p->log);
		return;
	}
	if (log_has_trouble(p->log)) {
		fprintf(stderr, "cuvisor run: the private daemon logged "
			"problems; see %s\n", p->log);
		return;
	}
	unlink(p->log);
	rmdir(p->dir);
}

/* ---- the program -------------------------------------------------- */

/*
 * The directory of the guest libcuda.so.1, resolved; 0 or -1 (printed).
 * Installed, it is <prefix>/lib/cuvisor (never a directory the system's
 * loader searches by itself); in a build tree, <build>/lib.
 */
static int find_libdir(char *out)
{
	char dir[PATH_MAX], lib[PATH_MAX + 16];
	const char *env = getenv("CUVISOR_LIBDIR");

	if (env && *env) {
		snprintf(dir, sizeof(dir), "%s", env);
	} else if (cv_cli_exe_dir(dir, sizeof(dir) - 16) == 0) {
		strcat(dir, "/../lib/cuvisor");
		snprintf(lib, sizeof(lib), "%s/libcuda.so.1", dir);
		if (access(lib, R_OK) < 0)
			dir[strlen(dir) - strlen("/cuvisor")] = 0;
	} else {
		dir[0] = 0;
	}
	snprintf(lib, sizeof(lib), "%s/libcuda.so.1", dir);
	if (!dir[0] || access(lib, R_OK) < 0 || !realpath(dir, out)) {
		fprintf(stderr, "cuvisor run: the guest driver %s/libcuda.so.1 "
			"is missing; install cuvisor completely or set "
			"CUVISOR_LIBDIR to the directory that holds it\n", dir);
		return -1;
	}
	return 0;
}

/* PROG's environment (set in ours: only PROG runs after this). */
static int set_env(const struct run_ctx *c, const char *libdir,
		   const char *sock)
{
	const char *old = getenv("LD_LIBRARY_PATH");
	size_t n;
	char *v;
	int r = -1;

	n = strlen(libdir) + (old && *old ? strlen(old) + 1 : 0) + 1;
	v = malloc(n);
	if (!v)
		goto out;
	snprintf(v, n, "%s%s%s", libdir, old && *old ? ":" : "",
		 old && *old ? old : "");
	if (setenv("LD_LIBRARY_PATH", v, 1) < 0 ||
	    setenv("CUVISOR_SOCKET", sock, 1) < 0 ||
	    (c->gpu && setenv("CUVISOR_GPU", c->gpu, 1) < 0) ||
	    (c->mem && setenv("CUVISOR_MEM", c->mem, 1) < 0) ||
	    (c->host && setenv("CUVISOR_HOST", c->host, 1) < 0) ||
	    (c->log && setenv("CUVISOR_LOG", c->log, 1) < 0))
		goto out;
	r = 0;
out:
	if (r < 0)
		fprintf(stderr, "cuvisor run: cannot set the environment\n");
	free(v);
	return r;
}

static volatile sig_atomic_t g_child;

/*
 * A terminal's ^C, ^\ or hang-up is sent by the kernel (SI_KERNEL) to the
 * whole foreground process group, which includes the program already:
 * forwarding it would deliver it twice. Everything else (kill(1), a
 * supervisor) was meant for us alone and is passed on.
 */
static void forward(int sig, siginfo_t *si, void *uc)
{
	if (si && si->si_code == SI_KERNEL)
		return;
	if (g_child > 0)
		kill(g_child, sig);
}

static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP };

static void child_exec(char **argv, const sigset_t *mask, int wfd)
{
	int e;

	sigprocmask(SIG_SETMASK, mask, NULL);
	execvp(argv[0], argv);
	e = errno;
	if (write(wfd, &e, sizeof(e)) < 0)
		_exit(EXIT_NOEXEC);
	_exit(EXIT_NOEXEC);
}

static int run_child(char **argv)
{
	struct sigaction sa = { .sa_sigaction = forward,
				.sa_flags = SA_SIGINFO | SA_RESTART };
	sigset_t block, old;
	int pp[2], e = 0, st;
	size_t i;
	pid_t pid;

	if (pipe2(pp, O_CLOEXEC) < 0)
		return EXIT_RUN_FAILED;
	sigemptyset(&block);
	for (i = 0; i < CV_ARRAY_SIZE(forwarded); i++) {
		sigaddset(&block, forwarded[i]);
		sigaction(forwarded[i], &sa, NULL);
	}
	/* Signals that arrive before g_child is set wait, then go on. */
	sigprocmask(SIG_BLOCK, &block, &old);
	pid = fork();
	if (pid == 0)
		child_exec(argv, &old, pp[1]);
	g_child = pid;
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(pp[1]);
	if (pid < 0) {
		close(pp[0]);
		fprintf(stderr, "cuvisor run: fork: %s\n", strerror(errno));
		return EXIT_RUN_FAILED;
	}
	while (read(pp[0], &e, sizeof(e)) < 0 && errno == EINTR)
		;
	close(pp[0]);
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return EXIT_RUN_FAILED;
	g_child = 0;
	if (e) {
		fprintf(stderr, "cuvisor run: cannot execute %s: %s\n", argv[0],
			strerror(e));
		return EXIT_NOEXEC;
	}
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return WEXITSTATUS(st);
}

static int run_run(void *ctx, int argc, char **argv)
{
	struct run_ctx *c = ctx;
	struct priv p = { .pid = -1 };
	char path[108], libdir[PATH_MAX];
	const char *sock = path;
	int r;

	if (argc < 2) {
		fprintf(stderr, "cuvisor run: no program given; usage: cuvisor "
			"run [OPTION...] -- PROG [ARG...]\n");
		return CV_CLI_EXIT_USAGE;
	}
	if (find_libdir(libdir) < 0)
		return EXIT_RUN_FAILED;
	r = cv_cli_socket(c->socket, path, sizeof(path));
	if (r < 0) {
		fprintf(stderr, "cuvisor run: socket path: %s\n", strerror(-r));
		return EXIT_RUN_FAILED;
	}
	r = choose_daemon(c, path, argv[1]);
	if (r < 0)
		return EXIT_RUN_FAILED;
	/* The daemon starts before set_env: it must not see the guest
	 * library on its LD_LIBRARY_PATH. */
	if (r == 1) {
		if (start_private(c, &p) < 0)
			return EXIT_RUN_FAILED;
		sock = p.sock;
	}
	r = set_env(c, libdir, sock) < 0 ? EXIT_RUN_FAILED
					 : run_child(argv + 1);
	if (p.pid > 0)
		stop_private(&p);
	return r;
}

static const struct cv_cli_opt run_opts[] = {
	{ "--gpu", "N", set_gpu,
	  "run on GPU N (default: the daemon picks the least used)" },
	{ "--mem", "SIZE", set_mem,
	  "device memory quota: bytes or K/M/G/T (default: the daemon's)" },
	CV_CLI_SOCKET_OPT,
	{ "--backend", "B", set_backend,
	  "cuda, host or auto (default: auto). A running daemon of another "
	  "backend than B is refused (cuvisor run fails), never used; a "
	  "private daemon is started with B" },
	{ "--private", NULL, set_private,
	  "start a private daemon for PROG, whether or not one runs at the "
	  "socket" },
	{ "--fallback-private", NULL, set_fallback,
	  "when the daemon at the socket refuses us (our uid, its "
	  "admission, its backend), start a private daemon instead of "
	  "failing, and say so (also CUVISOR_PRIVATE_FALLBACK=1)" },
	{ "--log", "LEVEL[:PATH]", set_log,
	  "the guest library's log (CUVISOR_LOG); LEVEL error, warn, info, "
	  "debug" },
	{ "--host", "HOST[:PORT]", set_host,
	  "put the vGPU on a GPU of another host, whose daemon listens for "
	  "peers there (cuvisord --peer-listen; port 7430 by default); the "
	  "program runs here and reaches the GPU over TCP. --gpu then names "
	  "that host's GPU" },
	{ "--peer-key", "FILE", set_peer_key,
	  "the key shared with that host, for a private daemon (a running "
	  "daemon uses its own --peer-key)" },
};

const struct cv_cli_cmd cv_cli_cmd_run = {
	.name = "run",
	.args = "-- PROG [ARG...]",
	.summary = "run a program on a virtual GPU",
	.details =
		"Uses the daemon at --socket (or the default path), after "
		"asking it whether it admits PROG's vGPU (--gpu, --mem). When "
		"there is none (no socket, or a stale one nobody listens on), "
		"or with --private, starts a private one (cuvisord --private, "
		"which logs to $XDG_RUNTIME_DIR/cuvisor/run-PID/ or "
		"/tmp/cuvisor-UID/run-PID/) and stops it when PROG exits; its "
		"log is kept only when it reported problems. When a daemon is "
		"there but refuses us (the socket's permissions, a uid it does "
		"not accept, its admission: \"quota 8.0 GiB asked, 2.0 GiB of "
		"gpu 0's 80.0 GiB left\", another backend than --backend), "
		"cuvisor run says why and fails with 125, unless "
		"--fallback-private or CUVISOR_PRIVATE_FALLBACK=1 lets it start "
		"a private daemon instead. PROG finds cuvisor's libcuda.so.1 "
		"through LD_LIBRARY_PATH (<cuvisor's dir>/../lib/cuvisor, "
		"else <cuvisor's dir>/../lib, or $CUVISOR_LIBDIR). SIGINT, SIGTERM and SIGHUP sent to cuvisor "
		"are passed on to PROG.\n\nExit status: PROG's (128+N if "
		"killed by signal N), 127 if PROG cannot be executed, 125 if "
		"cuvisor run itself fails, 2 on a usage error.",
	.opts = run_opts, .nopts = CV_ARRAY_SIZE(run_opts), .run = run_run,
	.ctx_size = sizeof(struct run_ctx), .stop_at_arg = true,
};

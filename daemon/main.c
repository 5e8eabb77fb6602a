/* SPDX-License-Identifier: MIT */
/*
 * cuvisord: the control plane, one per host. Options, start-up, the
 * poll() loop and the orderly stop. See cuvisord.h for the object rules.
 */
#include "cuvisord.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/remote.h"

static const char *const default_drivers[] = {
	"/usr/lib/x86_64-linux-gnu/libcuda.so.1",
	"/usr/lib64/libcuda.so.1",
	"/usr/local/nvidia/lib64/libcuda.so.1",
	"/usr/lib/wsl/lib/libcuda.so.1",
};

/* ---- options ------------------------------------------------------ */

struct opts {
	struct cv_d_cfg *cfg;
	const char *log_spec;
	bool help;
};

static int set_str(char *dst, size_t size, const char *name, const char *v)
{
	if (!*v || strlen(v) >= size) {
		fprintf(stderr, "cuvisord: %s: empty or too long\n", name);
		return -EINVAL;
	}
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

static int opt_socket(struct opts *o, const char *v)
{
	return set_str(o->cfg->socket, sizeof(o->cfg->socket), "--socket", v);
}

static int opt_backend(struct opts *o, const char *v)
{
	if (!strcmp(v, "cuda"))
		o->cfg->backend = CV_BACKEND_CUDA;
	else if (!strcmp(v, "host"))
		o->cfg->backend = CV_BACKEND_HOST;
	else if (!strcmp(v, "auto"))
		o->cfg->backend = 0;
	else {
		fprintf(stderr, "cuvisord: --backend: '%s' is not cuda, host "
			"or auto\n", v);
		return -EINVAL;
	}
	return 0;
}

static int opt_driver(struct opts *o, const char *v)
{
	if (v[0] != '/') {
		fprintf(stderr, "cuvisord: --driver: '%s' is not an absolute "
			"path\n", v);
		return -EINVAL;
	}
	return set_str(o->cfg->driver, sizeof(o->cfg->driver), "--driver", v);
}

static int opt_worker(struct opts *o, const char *v)
{
	return set_str(o->cfg->worker, sizeof(o->cfg->worker), "--worker", v);
}

static int opt_default_mem(struct opts *o, const char *v)
{
	if (cv_ctl_parse_size(v, &o->cfg->default_mem) < 0 ||
	    !o->cfg->default_mem) {
		fprintf(stderr, "cuvisord: --default-mem: '%s' is not a size "
			"(bytes, or a number with K, M, G or T)\n", v);
		return -EINVAL;
	}
	return 0;
}

static int opt_private(struct opts *o, const char *v)
{
	o->cfg->private_mode = true;
	return 0;
}

static int opt_overcommit(struct opts *o, const char *v)
{
	o->cfg->overcommit = true;
	return 0;
}

static int opt_allow_uid(struct opts *o, const char *v)
{
	struct passwd *pw;
	unsigned long u;
	char *end;

	if (o->cfg->nallow == CV_D_MAX_ALLOW) {
		fprintf(stderr, "cuvisord: --allow-uid: at most %d\n",
			CV_D_MAX_ALLOW);
		return -EINVAL;
	}
	errno = 0;
	u = strtoul(v, &end, 10);
	if (*v && !*end && !errno && u < (uid_t)-1) {
		o->cfg->allow[o->cfg->nallow++] = (uid_t)u;
		return 0;
	}
	pw = getpwnam(v);
	if (!pw) {
		fprintf(stderr, "cuvisord: --allow-uid: '%s' is neither a uid "
			"nor a user name\n", v);
		return -EINVAL;
	}
	o->cfg->allow[o->cfg->nallow++] = pw->pw_uid;
	return 0;
}

static int opt_log(struct opts *o, const char *v)
{
	o->log_spec = v;
	return 0;
}

static int opt_pidfile(struct opts *o, const char *v)
{
	return set_str(o->cfg->pidfile, sizeof(o->cfg->pidfile), "--pidfile",
		       v);
}

/* 1 to 3600 seconds into *out; 0 or -EINVAL after saying why. */
static int parse_seconds(const char *name, const char *v, unsigned *out)
{
	char *end;
	unsigned long s;

	errno = 0;
	s = strtoul(v, &end, 10);
	if (!*v || *end || errno || s == 0 || s > 3600) {
		fprintf(stderr, "cuvisord: %s: '%s' is not 1 to 3600 seconds\n",
			name, v);
		return -EINVAL;
	}
	*out = (unsigned)s;
	return 0;
}

static int opt_start_timeout(struct opts *o, const char *v)
{
	return parse_seconds("--start-timeout", v, &o->cfg->start_timeout_s);
}

static int opt_op_timeout(struct opts *o, const char *v)
{
	return parse_seconds("--op-timeout", v, &o->cfg->op_timeout_s);
}

static int opt_spares(struct opts *o, const char *v)
{
	if (strcmp(v, "0") && strcmp(v, "1")) {
		fprintf(stderr, "cuvisord: --spare-workers: '%s' is not 0 or "
			"1\n", v);
		return -EINVAL;
	}
	o->cfg->spares = v[0] - '0';
	return 0;
}

static int opt_peer_listen(struct opts *o, const char *v)
{
	return set_str(o->cfg->peer_listen, sizeof(o->cfg->peer_listen),
		       "--peer-listen", v);
}

static int opt_peer_key(struct opts *o, const char *v)
{
	return set_str(o->cfg->peer_key, sizeof(o->cfg->peer_key),
		       "--peer-key", v);
}

static int opt_remote_timeout(struct opts *o, const char *v)
{
	return parse_seconds("--remote-timeout", v, &o->cfg->remote_timeout_s);
}

/* A count of 1 to max into *out; 0 or -EINVAL after saying why. */
static int parse_count(const char *name, const char *v, unsigned max,
		       unsigned *out)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(v, &end, 10);
	if (!*v || *end || errno || n == 0 || n > max) {
		fprintf(stderr, "cuvisord: %s: '%s' is not 1 to %u\n", name, v,
			max);
		return -EINVAL;
	}
	*out = (unsigned)n;
	return 0;
}

static int opt_max_conns(struct opts *o, const char *v)
{
	return parse_count("--max-conns-per-user", v, CV_D_MAX_CLIENTS,
			   &o->cfg->max_conns_user);
}

static int opt_max_tenants(struct opts *o, const char *v)
{
	return parse_count("--max-tenants-per-user", v, CV_D_MAX_TENANTS,
			   &o->cfg->max_tenants_user);
}

static int opt_idle_timeout(struct opts *o, const char *v)
{
	return parse_seconds("--idle-timeout", v, &o->cfg->idle_timeout_s);
}

static int opt_peer_per_addr(struct opts *o, const char *v)
{
	return parse_count("--peer-per-addr", v, CV_D_PEER_PENDING,
			   &o->cfg->peer_per_addr);
}

static int opt_help(struct opts *o, const char *v)
{
	o->help = true;
	return 0;
}

struct opt {
	const char *name;
	const char *arg; /* NULL: takes no value */
	int (*set)(struct opts *o, const char *v);
	const char *help;
};

static const struct opt options[] = {
	{ "--socket", "PATH", opt_socket,
	  "control socket (default: %SOCKET%). Its directory is created when "
	  "missing (0700, or 0755 with --allow-uid); an existing one must be "
	  "owned by us and not group or world writable" },
	{ "--backend", "cuda|host|auto", opt_backend,
	  "the workers' device backend (default: auto, i.e. cuda when the "
	  "probe finds a GPU, else host)" },
	{ "--driver", "PATH", opt_driver,
	  "absolute path of NVIDIA's libcuda.so.1 for the workers (default: "
	  "%DRIVER%)" },
	{ "--worker", "PATH", opt_worker,
	  "the worker executable (default: %WORKER%)" },
	{ "--default-mem", "SIZE", opt_default_mem,
	  "quota of a tenant that asks for none: bytes or K/M/G/T (powers of "
	  "1024) (default: the GPU's total memory)" },
	{ "--overcommit", NULL, opt_overcommit,
	  "admit tenants whose quotas add up to more than their GPU's memory "
	  "(default: an attach whose quota would take its GPU's sum of quotas "
	  "past the GPU's memory is refused, saying how much is left; "
	  "--private implies --overcommit)" },
	{ "--private", NULL, opt_private,
	  "exit once there has been a tenant and none is left (as started by "
	  "`cuvisor run`), or on SHUTDOWN" },
	{ "--allow-uid", "UID", opt_allow_uid,
	  "also accept clients of this uid or user name (repeatable); our own "
	  "uid and root are always accepted. Makes the socket mode 0666; "
	  "SO_PEERCRED decides" },
	{ "--max-conns-per-user", "N", opt_max_conns,
	  "control connections a user other than root and ours may hold at "
	  "once (default: %CONNS%); the last %PRIVCONNS% of the %MAXCONNS% "
	  "connections are kept for root and our uid. A refused client is "
	  "told why" },
	{ "--max-tenants-per-user", "N", opt_max_tenants,
	  "tenants a user other than root and ours may have at once "
	  "(default: %TENANTS%); the last %PRIVTENANTS% of the %MAXTENANTS% "
	  "tenants are kept for root and our uid" },
	{ "--idle-timeout", "SECONDS", opt_idle_timeout,
	  "a control connection that sends no request for this long, while "
	  "none of its requests is in progress, is closed (default: "
	  "%IDLE%)" },
	{ "--log", "LEVEL[:PATH]", opt_log,
	  "error, warn, info, debug or off; PATH gets our log and the workers' "
	  "stderr (default: info to stderr). What users and peers can make "
	  "us log at will (refusals, bad messages, caps hit) is logged at "
	  "most 5 lines per 10 s of each kind, then as a count" },
	{ "--pidfile", "PATH", opt_pidfile,
	  "write our pid there once listening; removed on exit" },
	{ "--start-timeout", "SECONDS", opt_start_timeout,
	  "how long a worker may take to become ready (default: 60)" },
	{ "--op-timeout", "SECONDS", opt_op_timeout,
	  "how long a worker may take to suspend or resume its tenant before "
	  "the client is told it timed out (default: 60); evicting may take "
	  "10 times as long" },
	{ "--spare-workers", "0|1", opt_spares,
	  "keep one started worker per GPU ready to be a migration's "
	  "destination (it holds a CUDA context, some hundreds of MiB of GPU "
	  "memory, and 128 MiB of registered host memory); a migration takes "
	  "about 0.2 s less with one (default: 1, 0 with --private)" },
	{ "--peer-listen", "[ADDR:]PORT", opt_peer_listen,
	  "accept other hosts' daemons on this TCP port (7430 is cuvisor's; "
	  "default: none); they must prove that they hold the --peer-key" },
	{ "--peer-per-addr", "N", opt_peer_per_addr,
	  "peer connections from one address (IPv6: one /64) that may be in "
	  "their handshake at once (default: %PERADDR%); a handshake must end "
	  "within %HSMS% ms, and over %PENDING% at once in all (or N from an "
	  "address) the oldest is dropped, so idle connections never keep a "
	  "real peer out" },
	{ "--peer-key", "FILE", opt_peer_key,
	  "the key shared with the peers: 64 hex digits in a file only we "
	  "may read (e.g. `od -An -tx1 -N32 /dev/urandom | tr -d ' \\n' > "
	  "FILE; chmod 600 FILE`)" },
	{ "--remote-timeout", "SECONDS", opt_remote_timeout,
	  "a remote vGPU's peer that says nothing for this long is taken for "
	  "gone: the program's calls then fail with CUDA_ERROR_DEVICE_"
	  "UNAVAILABLE instead of waiting (default: 10); it holds for the "
	  "vGPUs we serve to peers too" },
	{ "--help", NULL, opt_help, "show this help and exit" },
};

/* The value a help text's %NAME% stands for (buf: room for a number);
 * NULL when s does not start with a known one. *len: the name's. */
static const char *help_var(const char *s, const struct cv_d_cfg *cfg,
			    char *buf, size_t size, size_t *len)
{
	static const struct { const char *name; unsigned v; } nums[] = {
		{ "%CONNS%", CV_D_CONNS_PER_USER },
		{ "%PRIVCONNS%", CV_D_PRIV_CLIENTS },
		{ "%MAXCONNS%", CV_D_MAX_CLIENTS },
		{ "%TENANTS%", CV_D_TENANTS_PER_USER },
		{ "%PRIVTENANTS%", CV_D_PRIV_TENANTS },
		{ "%MAXTENANTS%", CV_D_MAX_TENANTS },
		{ "%IDLE%", CV_D_IDLE_TIMEOUT_S },
		{ "%PERADDR%", CV_D_PEER_PER_ADDR },
		{ "%HSMS%", CV_D_PEER_HANDSHAKE_MS },
		{ "%PENDING%", CV_D_PEER_PENDING },
	};
	size_t i;

	for (i = 0; i < CV_ARRAY_SIZE(nums); i++) {
		*len = strlen(nums[i].name);
		if (!strncmp(s, nums[i].name, *len)) {
			snprintf(buf, size, "%u", nums[i].v);
			return buf;
		}
	}
	*len = 8;
	if (!strncmp(s, "%SOCKET%", 8))
		return cfg->socket;
	if (!strncmp(s, "%DRIVER%", 8))
		return cfg->driver[0] ? cfg->driver : "none found";
	if (!strncmp(s, "%WORKER%", 8))
		return cfg->worker;
	return NULL;
}

/* Expands %NAME% in a help text to the default it stands for. */
static void expand(char *out, size_t size, const char *s,
		   const struct cv_d_cfg *cfg)
{
	char num[16];
	const char *v;
	size_t n = 0, k, len;

	while (*s && n + 1 < size) {
		v = *s == '%' ? help_var(s, cfg, num, sizeof(num), &len) : NULL;
		if (!v) {
			out[n++] = *s++;
			continue;
		}
		k = CV_MIN(strlen(v), size - 1 - n);
		memcpy(out + n, v, k);
		n += k;
		s += len;
	}
	out[n] = 0;
}

/* Prints s word-wrapped to 79 columns from column col, indented. */
static void wrap(const char *s, int col, int indent)
{
	int n;

	while (*s) {
		n = (int)strcspn(s, " ");
		if (col > indent && col + 1 + n > 79) {
			printf("\n%*s", indent, "");
			col = indent;
		} else if (col > indent) {
			putchar(' ');
			col++;
		}
		printf("%.*s", n, s);
		col += n;
		s += n;
		while (*s == ' ')
			s++;
	}
	putchar('\n');
}

static void usage(const struct cv_d_cfg *cfg)
{
	char left[48], text[8192];
	size_t i;

	printf("Usage: cuvisord [OPTION...]\n\n");
	wrap("The cuvisor control daemon: admits tenants (programs that load "
	     "cuvisor's libcuda.so.1), starts one cuvisor-vgpu worker per "
	     "tenant and supervises it. SIGTERM, SIGINT and `cuvisor "
	     "shutdown` stop it and its workers.", 0, 0);
	printf("\nOptions:\n");
	for (i = 0; i < CV_ARRAY_SIZE(options); i++) {
		snprintf(left, sizeof(left), "%s%s%s", options[i].name,
			 options[i].arg ? " " : "",
			 options[i].arg ? options[i].arg : "");
		printf("  %-24s ", left);
		expand(text, sizeof(text), options[i].help, cfg);
		wrap(text, 27, 27);
	}
	putchar('\n');
	wrap("Exit status: 0 after an orderly stop, 1 on a start-up failure, "
	     "2 on a usage error.", 0, 0);
}

static const struct opt *find_opt(const char *arg, const char **val)
{
	size_t i, n;

	for (i = 0; i < CV_ARRAY_SIZE(options); i++) {
		n = strlen(options[i].name);
		if (strncmp(arg, options[i].name, n))
			continue;
		if (arg[n] == 0) {
			*val = NULL;
			return &options[i];
		}
		if (arg[n] == '=' && options[i].arg) {
			*val = arg + n + 1;
			return &options[i];
		}
	}
	return NULL;
}

/* 0, or -EINVAL after printing why. */
static int parse_args(struct opts *o, int argc, char **argv)
{
	const struct opt *op;
	const char *val;
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h")) {
			o->help = true;
			continue;
		}
		op = find_opt(argv[i], &val);
		if (!op) {
			fprintf(stderr, "cuvisord: unknown argument '%s'; see "
				"--help\n", argv[i]);
			return -EINVAL;
		}
		if (op->arg && !val) {
			if (i + 1 == argc) {
				fprintf(stderr, "cuvisord: %s needs a value "
					"(%s)\n", op->name, op->arg);
				return -EINVAL;
			}
			val = argv[++i];
		}
		if (op->set(o, val) < 0)
			return -EINVAL;
	}
	return 0;
}

/* Defaults that depend on the host: the socket, driver and worker. */
static void set_defaults(struct cv_d_cfg *cfg)
{
	char exe[4096];
	ssize_t n;
	size_t i;

	cfg->spares = -1;
	if (cv_ctl_default_path(cfg->socket, sizeof(cfg->socket)) < 0)
		cfg->socket[0] = 0;
	for (i = 0; i < CV_ARRAY_SIZE(default_drivers); i++) {
		if (access(default_drivers[i], R_OK) == 0) {
			snprintf(cfg->driver, sizeof(cfg->driver), "%s",
				 default_drivers[i]);
			break;
		}
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = 0;
	snprintf(cfg->worker, sizeof(cfg->worker), "%s/cuvisor-vgpu",
		 n > 0 ? dirname(exe) : ".");
	cfg->start_timeout_s = CV_D_START_TIMEOUT_S;
	cfg->remote_timeout_s = CV_RM_TIMEOUT_MS / 1000;
	cfg->op_timeout_s = CV_D_OP_TIMEOUT_S;
	cfg->max_conns_user = CV_D_CONNS_PER_USER;
	cfg->max_tenants_user = CV_D_TENANTS_PER_USER;
	cfg->idle_timeout_s = CV_D_IDLE_TIMEOUT_S;
	cfg->peer_per_addr = CV_D_PEER_PER_ADDR;
	snprintf(cfg->log_level, sizeof(cfg->log_level), "info");
}

/*
 * --log LEVEL[:PATH]. A PATH becomes our fd 2, so that the workers (which
 * inherit fd 2) log to the same place. 0, -EINVAL (usage) or -errno.
 */
static int setup_log(struct cv_d_cfg *cfg, const char *spec)
{
	const char *colon = strchr(spec, ':');
	size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
	int fd;

	if (n >= sizeof(cfg->log_level))
		goto bad;
	memcpy(cfg->log_level, spec, n);
	cfg->log_level[n] = 0;
	if (cv_log_init_spec("cuvisord", cfg->log_level) < 0)
		goto bad;
	if (!colon || !colon[1])
		return 0;
	fd = open(colon + 1, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC |
				     O_NOCTTY, 0600);
	if (fd < 0 || dup2(fd, 2) < 0) {
		fprintf(stderr, "cuvisord: --log: cannot open %s: %s\n",
			colon + 1, strerror(errno));
		return -EIO;
	}
	close(fd);
	return 0;
bad:
	fprintf(stderr, "cuvisord: --log: '%s' is not LEVEL[:PATH] with LEVEL "
		"one of error, warn, info, debug, off\n", spec);
	return -EINVAL;
}

static int check_paths(const struct cv_d_cfg *cfg)
{
	if (!cfg->socket[0]) {
		cv_err("no socket path (the default is too long); pass "
		       "--socket");
		return -EINVAL;
	}
	if (access(cfg->worker, X_OK) < 0) {
		cv_err("worker %s: %s; pass --worker PATH", cfg->worker,
		       strerror(errno));
		return -ENOENT;
	}
	if (cfg->driver[0] && access(cfg->driver, R_OK) < 0) {
		cv_err("driver %s: %s", cfg->driver, strerror(errno));
		return -ENOENT;
	}
	return 0;
}

/* ---- signals ------------------------------------------------------ */

void cv_d_child_reset(void)
{
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
}

static int setup_signals(struct cv_d *d)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	d->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (d->sig_fd < 0)
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int live_tenants(const struct cv_d *d);

/*
 * A signal ends the daemon, not its tenants (a restart must not cost
 * them their GPU state): their workers keep serving their guests, and
 * the next daemon on our socket adopts them (adopt.c). Only tenants
 * still starting are stopped. `cuvisor shutdown` stops everything.
 */
static void detach(struct cv_d *d, const char *why)
{
	struct cv_d_tenant *t;
	int i, n = 0;

	cv_d_stop_listening(d);
	for (i = 0; i < d->ntenants; i++) {
		t = d->tenants[i];
		if (t->dead)
			continue;
		if (t->state == CV_STATE_STARTING || t->replaces) {
			cv_d_tenant_stop(d, t);
			continue;
		}
		cv_d_tenant_close_ctl(d, t);
		t->dead = true;
		n++;
	}
	cv_info("exiting (%s): %d tenant(s) keep running for the next "
		"cuvisord to adopt", why, n);
	d->stopping = true;
	d->stop_deadline = cv_now_ns() + CV_D_STOP_TIMEOUT_MS * 1000000ull;
}

static void on_signals(struct cv_d *d)
{
	struct signalfd_siginfo si;

	while (read(d->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGCHLD) {
			cv_d_reap(d);
			continue;
		}
		if (d->stopping) {
			cv_info("signal %u while stopping: killing the "
				"workers now", si.ssi_signo);
			d->stop_deadline = 0;
			continue;
		}
		if (d->cfg.private_mode)
			cv_d_stop(d, si.ssi_signo == SIGTERM ? "SIGTERM" :
							      "SIGINT");
		else
			detach(d, si.ssi_signo == SIGTERM ? "SIGTERM" :
							   "SIGINT");
	}
}

/* Clients and workers get at most one fd each, plus a few in flight. */
static void raise_nofile(void)
{
	struct rlimit rl;
	rlim_t want = 4 * (CV_D_MAX_CLIENTS + CV_D_MAX_TENANTS);

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = CV_MIN(want, rl.rlim_max);
	setrlimit(RLIMIT_NOFILE, &rl);
}

/* ---- the loop ----------------------------------------------------- */

static int live_tenants(const struct cv_d *d)
{
	int i, n = 0;

	for (i = 0; i < d->ntenants; i++)
		n += !d->tenants[i]->dead;
	return n;
}

void cv_d_stop(struct cv_d *d, const char *why)
{
	int i;

	if (d->stopping)
		return;
	cv_info("stopping (%s): %d tenant(s)", why, live_tenants(d));
	d->stopping = true;
	d->stop_deadline = cv_now_ns() + CV_D_STOP_TIMEOUT_MS * 1000000ull;
	cv_d_stop_listening(d);
	for (i = 0; i < d->ntenants; i++)
		cv_d_tenant_stop(d, d->tenants[i]);
}

/* New clients get ECONNREFUSED, not a daemon on its way out. */
void cv_d_stop_listening(struct cv_d *d)
{
	cv_d_unlink_socket(d);
}

/* Frees the objects marked dead during the last iteration. */
static void sweep(struct cv_d *d)
{
	int i;

	for (i = 0; i < d->nclients;) {
		if (d->clients[i]->dead) {
			free(d->clients[i]);
			d->clients[i] = d->clients[--d->nclients];
		} else {
			i++;
		}
	}
	for (i = 0; i < d->ntenants;) {
		if (d->tenants[i]->dead) {
			cv_d_tenant_free(d, d->tenants[i]);
			d->tenants[i] = d->tenants[--d->ntenants];
		} else {
			i++;
		}
	}
}

static void min_deadline(uint64_t *best, uint64_t t)
{
	if (t && (!*best || t < *best))
		*best = t;
}

/* Milliseconds until the next timer, -1 if none; log_due: when the
 * rate-limited log has counts to write (cv_log_rl_tick), 0: none. */
static int next_timeout(const struct cv_d *d, uint64_t now, uint64_t log_due)
{
	uint64_t best = log_due;
	bool waiting = false;
	int i;

	for (i = 0; i < d->ntenants; i++) {
		if (d->tenants[i]->state == CV_STATE_STARTING)
			min_deadline(&best, d->tenants[i]->start_deadline);
		waiting |= d->tenants[i]->stats_inflight;
	}
	for (i = 0; i < d->nclients && waiting; i++)
		if (d->clients[i]->ps_pending)
			min_deadline(&best, d->clients[i]->ps_deadline);
	min_deadline(&best, cv_d_op_next_deadline(d));
	min_deadline(&best, cv_d_client_next_deadline(d));
	if (d->stopping)
		min_deadline(&best, d->stop_deadline ? d->stop_deadline : 1);
	if (d->accept_resume)
		min_deadline(&best, d->accept_resume);
	min_deadline(&best, cv_d_spare_next(d));
	if (!best)
		return -1;
	if (best <= now)
		return 0;
	return (int)CV_MIN((best - now + 999999) / 1000000, 60000ull);
}

enum { K_SIG, K_LISTEN, K_CLIENT, K_TENANT, K_SPARE };

struct slot {
	int kind;
	void *obj;
};

static int build_pollfds(struct cv_d *d, struct pollfd *p, struct slot *s)
{
	struct cv_d_client *c;
	int i, n = 0;

	p[n] = (struct pollfd){ .fd = d->sig_fd, .events = POLLIN };
	s[n++] = (struct slot){ K_SIG, NULL };
	if (d->accept_resume && cv_now_ns() >= d->accept_resume)
		d->accept_resume = 0;
	if (d->listen_fd >= 0 && !d->accept_resume) {
		p[n] = (struct pollfd){ .fd = d->listen_fd, .events = POLLIN };
		s[n++] = (struct slot){ K_LISTEN, NULL };
	}
	for (i = 0; i < d->nclients; i++) {
		c = d->clients[i];
		p[n] = (struct pollfd){ .fd = c->fd };
		/* One request at a time: a busy client is only watched for
		 * hang-up. */
		if (!cv_d_client_busy(c))
			p[n].events = POLLIN;
		s[n++] = (struct slot){ K_CLIENT, c };
	}
	for (i = 0; i < d->ntenants; i++) {
		if (d->tenants[i]->ctl_fd < 0)
			continue;
		p[n] = (struct pollfd){ .fd = d->tenants[i]->ctl_fd,
					.events = POLLIN };
		s[n++] = (struct slot){ K_TENANT, d->tenants[i] };
	}
	for (i = 0; i < d->ngpus; i++) {
		if (d->gpus[i].spare.ctl_fd < 0)
			continue;
		p[n] = (struct pollfd){ .fd = d->gpus[i].spare.ctl_fd,
					.events = POLLIN };
		s[n++] = (struct slot){ K_SPARE, &d->gpus[i] };
	}
	return n;
}

static void dispatch(struct cv_d *d, const struct pollfd *p,
		     const struct slot *s, int n)
{
	struct cv_d_client *c;
	struct cv_d_tenant *t;
	int i;

	for (i = 0; i < n; i++) {
		if (!p[i].revents)
			continue;
		switch (s[i].kind) {
		case K_SIG:
			on_signals(d);
			break;
		case K_LISTEN:
			cv_d_accept(d);
			break;
		case K_CLIENT:
			c = s[i].obj;
			if (c->dead)
				break;
			if (p[i].revents & POLLIN)
				cv_d_client_input(d, c);
			else if (p[i].revents & (POLLHUP | POLLERR | POLLNVAL))
				cv_d_client_kill(d, c);
			break;
		case K_TENANT:
			t = s[i].obj;
			if (t->ctl_fd < 0)
				break;
			if (p[i].revents & POLLIN)
				cv_d_tenant_input(d, t);
			else
				cv_d_tenant_hup(d, t);
			break;
		case K_SPARE:
			if (((struct cv_d_gpu *)s[i].obj)->spare.ctl_fd >= 0)
				cv_d_spare_input(d, (int)((struct cv_d_gpu *)
							  s[i].obj - d->gpus));
			break;
		}
	}
}

static void loop(struct cv_d *d)
{
	static struct pollfd p[2 + CV_D_MAX_CLIENTS + CV_D_MAX_TENANTS +
			       CV_D_MAX_GPUS];
	static struct slot s[2 + CV_D_MAX_CLIENTS + CV_D_MAX_TENANTS +
			     CV_D_MAX_GPUS];
	uint64_t now, log_due;
	int n;

	for (;;) {
		now = cv_now_ns();
		log_due = cv_log_rl_tick(now);
		cv_d_tenant_timeouts(d, now);
		cv_d_op_timeouts(d, now);
		cv_d_client_timeouts(d, now);
		cv_d_ps_poll(d, now);
		sweep(d);
		cv_d_spare_tick(d, now);
		if (d->cfg.private_mode && d->had_tenant && !d->ntenants)
			cv_d_stop(d, "private daemon, last tenant gone");
		if (d->stopping &&
		    (!d->ntenants || now >= d->stop_deadline))
			return;
		n = build_pollfds(d, p, s);
		if (poll(p, (nfds_t)n, next_timeout(d, now, log_due)) < 0) {
			if (errno != EINTR)
				cv_warn("poll: %s", strerror(errno));
			continue;
		}
		dispatch(d, p, s, n);
	}
}

/* Kills the workers that did not stop in time and reaps them (bounded). */
static void kill_stragglers(struct cv_d *d)
{
	uint64_t until;
	int i;

	for (i = 0; i < d->ntenants; i++) {
		if (d->tenants[i]->dead)
			continue;
		cv_warn("tenant %llu: worker pid %d did not stop in time; "
			"killing it", (unsigned long long)d->tenants[i]->id,
			(int)d->tenants[i]->worker_pid);
		kill(d->tenants[i]->worker_pid, SIGKILL);
	}
	until = cv_now_ns() + CV_D_STOP_TIMEOUT_MS * 1000000ull;
	while (live_tenants(d) && cv_now_ns() < until) {
		cv_d_reap(d);
		if (live_tenants(d))
			nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
	}
	if (live_tenants(d))
		cv_warn("%d worker(s) could not be reaped", live_tenants(d));
	sweep(d);
}

static void finish(struct cv_d *d)
{
	int i;

	kill_stragglers(d);
	cv_d_unlink_socket(d);
	cv_d_unlink_pidfile(d);
	for (i = 0; i < d->nclients; i++) {
		if (!d->clients[i]->dead && d->clients[i]->shutdown_pending)
			cv_ctl_send(d->clients[i]->fd,
				    CV_CTL_SHUTDOWN | CV_CTL_REPLY, 0, NULL, 0,
				    NULL, 0);
		cv_d_client_kill(d, d->clients[i]);
	}
	sweep(d);
	cv_log_rl_end();
	cv_info("stopped");
}

int main(int argc, char **argv)
{
	static struct cv_d d = { .listen_fd = -1, .sig_fd = -1, .next_id = 1 };
	struct opts o = { .cfg = &d.cfg, .log_spec = "info" };
	int r;

	cv_log_init("cuvisord", CV_LOG_INFO, NULL);
	set_defaults(&d.cfg);
	if (parse_args(&o, argc, argv) < 0)
		return 2;
	if (o.help) {
		usage(&d.cfg);
		return 0;
	}
	r = setup_log(&d.cfg, o.log_spec);
	if (r < 0)
		return r == -EINVAL ? 2 : 1;
	if (check_paths(&d.cfg) < 0)
		return 1;
	raise_nofile();
	r = setup_signals(&d);
	if (r < 0) {
		cv_err("signals: %s", strerror(-r));
		return 1;
	}
	if (cv_d_probe(&d) < 0 || cv_d_listen(&d) < 0)
		return 1;
	if (cv_d_peer_start(&d) < 0) {
		cv_d_unlink_socket(&d);
		return 1;
	}
	if (d.cfg.pidfile[0] && cv_d_write_pidfile(&d) < 0) {
		cv_d_unlink_socket(&d);
		return 1;
	}
	cv_info("listening on %s: backend %s, %d GPU(s), worker %s%s",
		d.cfg.socket, cv_d_backend_name(d.backend), d.ngpus,
		d.cfg.worker, d.cfg.private_mode ? ", private" : "");
	if (d.cfg.spares < 0)
		d.cfg.spares = !d.cfg.private_mode;
	cv_d_spare_init(&d);
	loop(&d);
	/* Both ways out (stop, or exit leaving tenants for the next
	 * daemon) end here: spares go either way. */
	cv_d_spare_stop(&d);
	finish(&d);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * cuvisor CLI internals: the subcommand and option tables and the helpers
 * to talk to the daemon. Subcommands return the process exit status:
 * 0 ok, 1 error, 2 usage (`run` returns its program's status instead).
 */
#ifndef CV_CLI_H
#define CV_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/ctl.h"

#define CV_CLI_EXIT_OK 0
#define CV_CLI_EXIT_ERR 1
#define CV_CLI_EXIT_USAGE 2

struct cv_cli_opt {
	const char *name;  /* "--gpu" */
	const char *arg;   /* "N", or NULL for a flag */
	/* 0, or -EINVAL after printing why */
	int (*set)(void *ctx, const char *val);
	const char *help;
};

struct cv_cli_cmd {
	const char *name;
	const char *args;     /* after the options, for the usage line */
	const char *summary;
	const char *details;  /* more help text, or NULL */
	const struct cv_cli_opt *opts;
	size_t nopts;
	/* argv[0] is the subcommand; rest is what follows the options */
	int (*run)(void *ctx, int argc, char **argv);
	size_t ctx_size;
	/* Options end at the first argument; run() parses the rest (PROG's
	 * arguments for `run`, options after the tenant ID for the
	 * operations). */
	bool stop_at_arg;
};

/*
 * --socket: every command's context begins with `const char *socket`
 * (checked where each is defined), which this option sets.
 */
int cv_cli_set_socket(void *ctx, const char *v);
#define CV_CLI_SOCKET_OPT                                                  \
	{ "--socket", "PATH", cv_cli_set_socket,                           \
	  "the daemon's socket (default: $CUVISOR_SOCKET, else the "       \
	  "per-user or system default)" }
#define CV_CLI_CTX_CHECK(type)                                             \
	_Static_assert(offsetof(type, socket) == 0, #type " starts with socket")

/*
 * Parses the options of cmd from argv[1..]; stops at "--" (skipped) or,
 * when stop_at_arg, at the first argument that is not an option. Returns
 * the index of the first remaining argument, or -1 after a usage error
 * (printed), or 0 when --help was asked and printed.
 */
int cv_cli_parse(const struct cv_cli_cmd *cmd, void *ctx, int argc,
		 char **argv, bool stop_at_arg);
void cv_cli_help(const struct cv_cli_cmd *cmd);

/* --socket PATH if given, else cv_ctl_default_path(); notes whether the
 * path was named (--socket or CUVISOR_SOCKET) for cv_cli_connect. 0 or
 * -errno. */
int cv_cli_socket(const char *opt, char *buf, size_t size);
/* Connects to a daemon we trust (cv_ctl_connect_daemon). On failure
 * prints the standard "no daemon" message unless quiet; a daemon refused
 * as untrusted (-EPERM, or -EINVAL for a bad CUVISOR_DAEMON_UID) is
 * always reported: path, owner and why. fd or -errno. */
int cv_cli_connect(const char *path, bool quiet);
/*
 * Outputs a person names (checkpoint images, migration reports) are
 * written to a new file (O_TMPFILE, or O_CREAT|O_EXCL, which follows no
 * link) that rename() gives its name at the end; rename replaces a link
 * rather than follow it. So that a root CLI never writes into a device
 * or replaces one, and says so instead of silently replacing a link, the
 * name must not exist yet or be a regular file: a symbolic link (checked
 * with lstat, the final component) or any other kind of file is refused
 * here, printed for `cuvisor cmd`. 0 or -errno (-ELOOP, -EINVAL).
 */
int cv_cli_out_check(const char *cmd, const char *path);

/*
 * One request and its reply. Returns the reply's payload length (in buf)
 * or -errno; a reply with an error status returns that status. Prints
 * nothing but the daemon's refusal of the connection (cv_cli_refused).
 */
int cv_cli_call(int fd, uint16_t type, const void *p, uint32_t len, void *buf,
		uint32_t size, int timeout_ms);

/*
 * Whether the daemon refused our connection (CV_CTL_REFUSED): n, h and p
 * are what cv_ctl_recv returned and received, or n < 0 the send's or the
 * receive's error (a refusal may still be waiting on fd). Prints the
 * reason ("cuvisor: the daemon refused the connection: uid 1001 has 64
 * connections ...") and returns the refusal's status; else n.
 */
int cv_cli_refused(int fd, int n, const struct cv_ctl_hdr *h, const void *p);

/*
 * Sends one request (with its nfds fds) on a new connection to path
 * and waits up to wait_ms for its reply, showing tenant id's progress on
 * a terminal ("what: 3.2 GiB of 8.0 GiB, 5.1 GB/s, 1 s left"). The
 * reply's payload length in buf, or -errno (transport, -ETIMEDOUT);
 * *status is the reply's status. (cli/ckpt.c)
 */
int cv_cli_call_progress(const char *path, uint16_t type, const void *p,
			 uint32_t len, const int *fds, int nfds, void *buf,
			 uint32_t size, int *status, const char *what,
			 uint64_t id, int wait_ms);

/* A tenant ID: decimal, nonzero. 0 or -EINVAL. */
int cv_cli_parse_id(const char *s, uint64_t *id);
/* A --gpu index (0..65535); -EINVAL after printing why for `cuvisor cmd`. */
int cv_cli_parse_gpu(const char *cmd, const char *s, int32_t *gpu);
/* Bytes for humans with one decimal and a binary unit: "1.5 GiB". */
void cv_cli_fmt_bytes(uint64_t b, char *buf, size_t size);

/* The directory of our own executable (/proc/self/exe); 0 or -errno. */
int cv_cli_exe_dir(char *buf, size_t size);

/* "running", "suspended"... for an enum cv_vgpu_state; "?" if unknown. */
const char *cv_cli_state_name(uint32_t state);
/*
 * The state of tenant id as the daemon at path lists it (PS). 0, -ENOENT
 * when it lists no such tenant, or -errno. Prints nothing.
 */
int cv_cli_tenant_state(const char *path, uint64_t id, uint32_t *state);
/* The same, its whole PS entry. */
int cv_cli_tenant_get(const char *path, uint64_t id, struct cv_ctl_tenant *out);

/* Subcommands. */
extern const struct cv_cli_cmd cv_cli_cmd_run, cv_cli_cmd_ps,
	cv_cli_cmd_info, cv_cli_cmd_shutdown, cv_cli_cmd_suspend,
	cv_cli_cmd_checkpoint, cv_cli_cmd_restore,
	cv_cli_cmd_resume, cv_cli_cmd_evict,
	cv_cli_cmd_migrate, /* cli/migrate.c */
	cv_cli_cmd_peer;    /* cli/peer.c */

#endif

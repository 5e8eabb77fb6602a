/* SPDX-License-Identifier: MIT */
/*
 * `cuvisor ps`, `cuvisor info` and `cuvisor shutdown`: one request to the
 * daemon each, and the PS lookup that the operations' messages use.
 * Replies are checked like any peer input (exact lengths, counts in
 * range, strings terminated) before anything is printed.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/proto.h"
#include "../core/util.h"

#define REPLY_TIMEOUT_MS 5000
#define SHUTDOWN_TIMEOUT_MS 15000

struct query_ctx {
	const char *socket;
};

CV_CLI_CTX_CHECK(struct query_ctx);

static const struct cv_cli_opt query_opts[] = {
	CV_CLI_SOCKET_OPT,
};

/* Connects and makes one call; the payload length, or -1 (printed). */
static int query(const struct query_ctx *q, const char *cmd, uint16_t type,
		 void *buf, uint32_t size, int timeout_ms)
{
	char path[108];
	int fd, r;

	r = cv_cli_socket(q->socket, path, sizeof(path));
	if (r < 0) {
		fprintf(stderr, "cuvisor %s: socket path: %s\n", cmd,
			strerror(-r));
		return -1;
	}
	fd = cv_cli_connect(path, false);
	if (fd < 0)
		return -1;
	r = cv_cli_call(fd, type, NULL, 0, buf, size, timeout_ms);
	close(fd);
	if (r < 0) {
		fprintf(stderr, "cuvisor %s: %s: %s\n", cmd, path,
			r == -ECONNRESET ? "the daemon closed the connection"
					 : strerror(-r));
		return -1;
	}
	return r;
}

const char *cv_cli_state_name(uint32_t s)
{
	static const char *const names[] = { "starting", "running",
					     "suspended", "evicted", "lost",
					     "stopped" };

	return s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

/* A PS reply's payload of n bytes: its count, or -EBADMSG. */
static int ps_count(const uint8_t *buf, int n)
{
	struct cv_ctl_ps_r r;

	if (n < (int)sizeof(r))
		return -EBADMSG;
	memcpy(&r, buf, sizeof(r));
	if (r.n > (CV_CTL_MAX - sizeof(r)) / sizeof(struct cv_ctl_tenant) ||
	    (size_t)n != sizeof(r) + r.n * sizeof(struct cv_ctl_tenant))
		return -EBADMSG;
	return (int)r.n;
}

int cv_cli_tenant_state(const char *path, uint64_t id, uint32_t *state)
{
	struct cv_ctl_tenant t;
	int r = cv_cli_tenant_get(path, id, &t);

	if (!r)
		*state = t.state;
	return r;
}

int cv_cli_tenant_get(const char *path, uint64_t id, struct cv_ctl_tenant *out)
{
	static uint8_t buf[CV_CTL_MAX];
	struct cv_ctl_tenant t;
	int fd, n, i;

	fd = cv_cli_connect(path, true);
	if (fd < 0)
		return fd;
	n = cv_cli_call(fd, CV_CTL_PS, NULL, 0, buf, sizeof(buf),
			REPLY_TIMEOUT_MS);
	close(fd);
	if (n < 0)
		return n;
	n = ps_count(buf, n);
	for (i = 0; i < n; i++) {
		memcpy(&t, buf + sizeof(struct cv_ctl_ps_r) + i * sizeof(t),
		       sizeof(t));
		if (t.id == id) {
			*out = t;
			return 0;
		}
	}
	return n < 0 ? n : -ENOENT;
}

/* A peer's string for the terminal: terminated, printable. */
static void clean(char *s, size_t size)
{
	size_t i;

	s[size - 1] = 0;
	for (i = 0; s[i]; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			s[i] = '?';
}

/* The REMOTES reply: its entries into rem (at most CV_CTL_MAX_REMOTES),
 * their count; 0 from a daemon that does not answer it. */
static int remotes(void *ctx, struct cv_ctl_remote *rem)
{
	static uint8_t buf[CV_CTL_MAX];
	struct cv_ctl_remotes_r r;
	int n, i;

	n = query(ctx, "ps", CV_CTL_REMOTES, buf, sizeof(buf),
		  REPLY_TIMEOUT_MS);
	if (n < (int)sizeof(r))
		return 0;
	memcpy(&r, buf, sizeof(r));
	if (r.n > CV_CTL_MAX_REMOTES ||
	    (size_t)n != sizeof(r) + r.n * sizeof(*rem))
		return 0;
	memcpy(rem, buf + sizeof(r), r.n * sizeof(*rem));
	for (i = 0; i < (int)r.n; i++)
		clean(rem[i].peer, sizeof(rem[i].peer));
	return (int)r.n;
}

static int run_ps(void *ctx, int argc, char **argv)
{
	static uint8_t buf[CV_CTL_MAX];
	static struct cv_ctl_remote rem[CV_CTL_MAX_REMOTES];
	struct cv_ctl_tenant t;
	char used[16], quota[16], mem[40], where[CV_CTL_HOST_LEN + 32];
	int n, count, i, k, nrem;

	if (argc > 1) {
		fprintf(stderr, "cuvisor ps: unexpected argument '%s'\n",
			argv[1]);
		return CV_CLI_EXIT_USAGE;
	}
	n = query(ctx, "ps", CV_CTL_PS, buf, sizeof(buf), REPLY_TIMEOUT_MS);
	if (n < 0)
		return CV_CLI_EXIT_ERR;
	count = ps_count(buf, n);
	if (count < 0) {
		fprintf(stderr,
			"cuvisor ps: malformed reply from the daemon\n");
		return CV_CLI_EXIT_ERR;
	}
	nrem = remotes(ctx, rem);
	printf("%-6s %-8s %-4s %-15s %-10s %-16s %s\n", "ID", "PID", "GPU",
	       "MEM", "STATE", "NAME", "VGPU");
	for (i = 0; i < count; i++) {
		memcpy(&t, buf + sizeof(struct cv_ctl_ps_r) + i * sizeof(t),
		       sizeof(t));
		clean(t.name, sizeof(t.name));
		snprintf(mem, sizeof(mem), "%s/%s",
			 cv_ctl_fmt_size(t.mem_used, used, sizeof(used)),
			 cv_ctl_fmt_size(t.quota, quota, sizeof(quota)));
		snprintf(where, sizeof(where), "here");
		for (k = 0; k < nrem; k++)
			if (rem[k].kind == CV_REMOTE_VGPU && rem[k].id == t.id) {
				snprintf(where, sizeof(where), "on %s",
					 rem[k].peer);
				t.gpu = rem[k].gpu;
			}
		printf("%-6llu %-8u %-4d %-15s %-10s %-16s %s\n",
		       (unsigned long long)t.id, t.pid, t.gpu, mem,
		       cv_cli_state_name(t.state), t.name, where);
	}
	/* Other hosts' programs on our GPUs. */
	for (k = 0; k < nrem; k++) {
		if (rem[k].kind != CV_REMOTE_SERVED)
			continue;
		printf("%-6s %-8s %-4d %-15s %-10s %-16s here, program of "
		       "tenant %llu on %s\n", "-", "-", rem[k].gpu,
		       cv_ctl_fmt_size(rem[k].quota, quota, sizeof(quota)),
		       "serving", "(peer's)", (unsigned long long)rem[k].id,
		       rem[k].peer);
	}
	return CV_CLI_EXIT_OK;
}

static const char *backend_name(uint32_t b)
{
	return b == CV_BACKEND_CUDA ? "cuda" : b == CV_BACKEND_HOST ? "host"
								   : "?";
}

static int run_info(void *ctx, int argc, char **argv)
{
	static uint8_t buf[CV_CTL_MAX];
	struct cv_ctl_info_r r;
	struct cv_ctl_gpu g;
	char total[16], sum[16];
	uint32_t i;
	int n;

	if (argc > 1) {
		fprintf(stderr, "cuvisor info: unexpected argument '%s'\n",
			argv[1]);
		return CV_CLI_EXIT_USAGE;
	}
	n = query(ctx, "info", CV_CTL_INFO, buf, sizeof(buf),
		  REPLY_TIMEOUT_MS);
	if (n < 0)
		return CV_CLI_EXIT_ERR;
	memcpy(&r, buf, CV_MIN(sizeof(r), (size_t)n));
	if ((size_t)n < sizeof(r) ||
	    r.ngpus > (CV_CTL_MAX - sizeof(r)) / sizeof(g) ||
	    (size_t)n != sizeof(r) + r.ngpus * sizeof(g)) {
		fprintf(stderr,
			"cuvisor info: malformed reply from the daemon\n");
		return CV_CLI_EXIT_ERR;
	}
	printf("daemon pid:    %u\nbackend:       %s\ntenants:       %u\n"
	       "default quota: %s\n", r.pid, backend_name(r.backend),
	       r.ntenants, r.default_quota ? cv_ctl_fmt_size(r.default_quota,
							      total,
							      sizeof(total))
					   : "the GPU's total memory");
	printf("\n%-4s %-9s %-8s %-8s %s\n", "GPU", "MEMORY", "TENANTS",
	       "QUOTAS", "NAME");
	for (i = 0; i < r.ngpus; i++) {
		memcpy(&g, buf + sizeof(r) + i * sizeof(g), sizeof(g));
		clean(g.name, sizeof(g.name));
		printf("%-4d %-9s %-8u %-8s %s\n", g.index,
		       cv_ctl_fmt_size(g.total_mem, total, sizeof(total)),
		       g.ntenants, cv_ctl_fmt_size(g.quota_sum, sum,
						   sizeof(sum)), g.name);
	}
	return CV_CLI_EXIT_OK;
}

static int run_shutdown(void *ctx, int argc, char **argv)
{
	uint8_t buf[64];

	if (argc > 1) {
		fprintf(stderr, "cuvisor shutdown: unexpected argument '%s'\n",
			argv[1]);
		return CV_CLI_EXIT_USAGE;
	}
	if (query(ctx, "shutdown", CV_CTL_SHUTDOWN, buf, sizeof(buf),
		  SHUTDOWN_TIMEOUT_MS) < 0)
		return CV_CLI_EXIT_ERR;
	return CV_CLI_EXIT_OK;
}

const struct cv_cli_cmd cv_cli_cmd_ps = {
	.name = "ps",
	.summary = "list the tenants of the daemon",
	.details = "Columns: tenant ID, guest PID, GPU, MEM (device memory "
		   "used/quota), STATE (starting, running, suspended, "
		   "evicted, lost), NAME (the program) and VGPU (\"here\", or "
		   "\"on HOST:PORT\" for a vGPU on another host's GPU, whose "
		   "index GPU then is). Then, for root and the daemon's user, a "
		   "row per vGPU this host serves to another host's program "
		   "(STATE serving). Users other than the daemon's and root see "
		   "only their own tenants.",
	.opts = query_opts, .nopts = 1, .run = run_ps,
	.ctx_size = sizeof(struct query_ctx),
};

const struct cv_cli_cmd cv_cli_cmd_info = {
	.name = "info",
	.summary = "show the daemon's backend, GPUs and defaults",
	.opts = query_opts, .nopts = 1, .run = run_info,
	.ctx_size = sizeof(struct query_ctx),
};

const struct cv_cli_cmd cv_cli_cmd_shutdown = {
	.name = "shutdown",
	.summary = "stop the daemon and its tenants' workers",
	.details = "Returns once the daemon has stopped its workers (it kills "
		   "those that do not stop within 2 s). Only the daemon's "
		   "user and root may stop it.",
	.opts = query_opts, .nopts = 1, .run = run_shutdown,
	.ctx_size = sizeof(struct query_ctx),
};

/* SPDX-License-Identifier: MIT */
/*
 * `cuvisor suspend ID`, `cuvisor resume ID [--gpu N]` and `cuvisor evict
 * ID`: one SUSPEND, RESUME or EVICT to the daemon, which answers once the
 * tenant's worker has done it (or has not within the daemon's timeout).
 * The reply (status, and cv_ctl_op_r when the worker answered) is checked
 * like any peer input before anything is printed.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/proto.h"
#include "../core/util.h"

/* The daemon answers within --op-timeout (default 60 s; evict 10 times
 * that): we wait a little longer. */
#define OP_WAIT_MS 70000
#define EVICT_WAIT_MS 610000

struct op_ctx {
	const char *socket;
	int32_t gpu;     /* resume: -1, or --gpu */
	bool gpu_set;
};

/* One operation: its request type and how to speak of it. */
struct op_kind {
	uint16_t type;
	const char *name;      /* the subcommand */
	int wait_ms;
	uint32_t ok_states;    /* 1 << each state it applies to */
	const char *rule;      /* said when the state rules it out */
};

static const struct op_kind kinds[] = {
	{ CV_CTL_SUSPEND, "suspend", OP_WAIT_MS, 1u << CV_STATE_RUNNING,
	  "only a running tenant can be suspended" },
	{ CV_CTL_RESUME, "resume", OP_WAIT_MS,
	  1u << CV_STATE_SUSPENDED | 1u << CV_STATE_EVICTED |
		  1u << CV_STATE_STOPPED,
	  "only a suspended or evicted tenant (or one stopped in a move) "
	  "can be resumed" },
	{ CV_CTL_EVICT, "evict", EVICT_WAIT_MS,
	  1u << CV_STATE_RUNNING | 1u << CV_STATE_SUSPENDED,
	  "only a running or suspended tenant can be evicted" },
};

CV_CLI_CTX_CHECK(struct op_ctx);

static int set_gpu(void *ctx, const char *v)
{
	struct op_ctx *o = ctx;

	if (cv_cli_parse_gpu("resume", v, &o->gpu) < 0)
		return -EINVAL;
	o->gpu_set = true;
	return 0;
}

static const struct cv_cli_opt op_opts[] = { CV_CLI_SOCKET_OPT };

static const struct cv_cli_opt resume_opts[] = {
	CV_CLI_SOCKET_OPT,
	{ "--gpu", "N", set_gpu,
	  "the GPU to resume on (default: its own); another one moves the "
	  "tenant there through an image in memory" },
};

static const struct op_kind *kind_of(const char *name)
{
	size_t i;

	for (i = 0; i < CV_ARRAY_SIZE(kinds); i++)
		if (!strcmp(kinds[i].name, name))
			return &kinds[i];
	return NULL;
}

/*
 * Sends the request and receives the reply: 0 with *status and, when the
 * reply carries one, *r (*has_r set); or -errno of the transport.
 */
static int op_call(const char *path, const struct op_kind *k, int wait_ms,
		   const struct cv_ctl_tenant_op *op, int *status,
		   struct cv_ctl_op_r *r, bool *has_r)
{
	char what[48];
	uint8_t buf[256];
	int n;

	snprintf(what, sizeof(what), "%s of tenant %llu", k->name,
		 (unsigned long long)op->tenant);
	n = cv_cli_call_progress(path, k->type, op, sizeof(*op), NULL, 0, buf,
				 sizeof(buf), status, what, op->tenant,
				 wait_ms);
	if (n < 0)
		return n;
	*has_r = n == sizeof(*r);
	if ((n && !*has_r) || (*status == 0 && !*has_r))
		return -EBADMSG;
	if (*has_r) {
		memcpy(r, buf, sizeof(*r));
		if (r->state < CV_STATE_RUNNING || r->state > CV_STATE_MAX)
			return -EBADMSG;
	}
	return 0;
}

static void print_done(const struct op_kind *k, uint64_t id, int32_t gpu,
		       const struct cv_ctl_op_r *r)
{
	double v = (double)r->ns / 1e6;
	char sz[32], rate[32] = "", ms[32];

	cv_cli_fmt_bytes(r->bytes, sz, sizeof(sz));
	snprintf(ms, sizeof(ms), v < 0.1 ? "%.3f ms" : "%.1f ms", v);
	/* bytes per ns are GB/s */
	if (r->bytes && r->ns)
		snprintf(rate, sizeof(rate), " (%.1f GB/s)",
			 (double)r->bytes / (double)r->ns);
	if (k->type == CV_CTL_SUSPEND)
		printf("tenant %llu: suspended (%s)\n", (unsigned long long)id,
		       ms);
	else if (k->type == CV_CTL_EVICT)
		printf("tenant %llu: evicted %s in %s%s\n",
		       (unsigned long long)id, sz, ms, rate);
	else if (r->bytes)
		printf("tenant %llu: resumed, %s restored in %s\n",
		       (unsigned long long)id, sz, ms);
	else if (gpu >= 0)
		printf("tenant %llu: resumed on gpu %d (%s)\n",
		       (unsigned long long)id, (int)gpu, ms);
	else
		printf("tenant %llu: resumed (%s)\n", (unsigned long long)id,
		       ms);
}

/* -EBUSY: the tenant's state rules the operation out, or another one is
 * in progress; ask the daemon which. */
static void print_busy(const char *path, const struct op_kind *k,
		       uint64_t id)
{
	uint32_t st;

	if (cv_cli_tenant_state(path, id, &st) < 0) {
		fprintf(stderr, "cuvisor %s: tenant %llu is busy or not in a "
			"state for it (%s)\n", k->name, (unsigned long long)id,
			strerror(EBUSY));
		return;
	}
	if (st >= 32 || !(k->ok_states & 1u << st))
		fprintf(stderr, "cuvisor %s: tenant %llu is %s: %s\n", k->name,
			(unsigned long long)id, cv_cli_state_name(st), k->rule);
	else
		fprintf(stderr, "cuvisor %s: tenant %llu is busy: another "
			"operation on it is still in progress\n", k->name,
			(unsigned long long)id);
}

/* The daemon's or the worker's refusal, in words. */
static void print_error(const char *path, const struct op_kind *k,
			const struct op_ctx *o, uint64_t id, int status)
{
	const char *c = k->name;
	unsigned long long t = (unsigned long long)id;

	switch (status) {
	case -ENOENT:
		fprintf(stderr, "cuvisor %s: no tenant %llu (see `cuvisor "
			"ps`)\n", c, t);
		break;
	case -EBUSY:
	case -EALREADY:
		print_busy(path, k, id);
		break;
	case -ENODATA:
		fprintf(stderr, "cuvisor %s: tenant %llu is stopped by a "
			"checkpoint: bring it back from its image with `cuvisor "
			"restore FILE`\n", c, t);
		break;
	case -ETIMEDOUT:
		fprintf(stderr, "cuvisor %s: tenant %llu's worker did not "
			"answer in time; the %s may still finish (see `cuvisor "
			"ps` and the daemon's log)\n", c, t, c);
		break;
	case -EOPNOTSUPP:
		if (!strcmp(c, "evict"))
			fprintf(stderr, "cuvisor evict: tenant %llu has memory "
				"from cuMemCreate that is mapped nowhere, which "
				"cannot be evicted; it stays as it was\n", t);
		else
			fprintf(stderr, "cuvisor %s: tenant %llu: %s (see the "
				"daemon's log)\n", c, t, strerror(-status));
		break;
	case -ENODEV:
		fprintf(stderr, "cuvisor %s: the daemon has no GPU %d\n", c,
			(int)o->gpu);
		break;
	case -EPERM:
		fprintf(stderr, "cuvisor %s: only the daemon's user and root "
			"may suspend, resume or evict tenants\n", c);
		break;
	case -EIO:
		fprintf(stderr, "cuvisor %s: tenant %llu's worker went away "
			"during the %s\n", c, t, c);
		break;
	case -ESHUTDOWN:
		fprintf(stderr, "cuvisor %s: the daemon is stopping\n", c);
		break;
	case -EAGAIN:
		fprintf(stderr, "cuvisor %s: tenant %llu's worker is not "
			"reading its control messages; try again\n", c, t);
		break;
	default:
		fprintf(stderr, "cuvisor %s: tenant %llu: %s\n", c, t,
			strerror(-status));
		break;
	}
}

static void print_transport(const char *path, const struct op_kind *k,
			    int r)
{
	if (r == -ECONNRESET)
		fprintf(stderr, "cuvisor %s: %s: the daemon closed the "
			"connection (one without suspend, resume and "
			"evict?)\n", k->name, path);
	else if (r == -ETIMEDOUT)
		fprintf(stderr, "cuvisor %s: %s: no answer from the daemon "
			"within %d s\n", k->name, path, k->wait_ms / 1000);
	else if (r == -EBADMSG)
		fprintf(stderr, "cuvisor %s: malformed reply from the daemon\n",
			k->name);
	else
		fprintf(stderr, "cuvisor %s: %s: %s\n", k->name, path,
			strerror(-r));
}

/* argv: the subcommand, the tenant ID, then options again. */
static int run_op(void *ctx, int argc, char **argv)
{
	const struct op_kind *k = kind_of(argv[0]);
	const struct cv_cli_cmd *cmd;
	struct op_ctx *o = ctx;
	struct cv_ctl_tenant_op op = { .gpu = -1 };
	struct cv_ctl_op_r r = { 0 };
	char path[108];
	bool has_r = false;
	int status = 0, n;

	cmd = k->type == CV_CTL_RESUME ? &cv_cli_cmd_resume :
	      k->type == CV_CTL_EVICT ? &cv_cli_cmd_evict : &cv_cli_cmd_suspend;
	if (argc < 2) {
		fprintf(stderr, "cuvisor %s: which tenant? (an ID from "
			"`cuvisor ps`)\n", k->name);
		return CV_CLI_EXIT_USAGE;
	}
	if (cv_cli_parse_id(argv[1], &op.tenant) < 0) {
		fprintf(stderr, "cuvisor %s: '%s' is not a tenant ID (see "
			"`cuvisor ps`)\n", k->name, argv[1]);
		return CV_CLI_EXIT_USAGE;
	}
	/* Options may follow the ID. */
	n = cv_cli_parse(cmd, ctx, argc - 1, argv + 1, false);
	if (n <= 0)
		return n == 0 ? CV_CLI_EXIT_OK : CV_CLI_EXIT_USAGE;
	if (o->gpu_set)
		op.gpu = o->gpu;
	n = cv_cli_socket(o->socket, path, sizeof(path));
	if (n < 0) {
		fprintf(stderr, "cuvisor %s: socket path: %s\n", k->name,
			strerror(-n));
		return CV_CLI_EXIT_ERR;
	}
	/* A move copies all of the tenant's memory twice: evict's wait. */
	n = op_call(path, k, o->gpu_set ? EVICT_WAIT_MS : k->wait_ms, &op,
		    &status, &r, &has_r);
	if (n < 0) {
		if (n != -ENOTCONN)
			print_transport(path, k, n);
		return CV_CLI_EXIT_ERR;
	}
	if (status < 0) {
		print_error(path, k, o, op.tenant, status);
		if (has_r)
			fprintf(stderr, "cuvisor %s: tenant %llu is %s\n",
				k->name, (unsigned long long)op.tenant,
				cv_cli_state_name(r.state));
		return CV_CLI_EXIT_ERR;
	}
	print_done(k, op.tenant, o->gpu_set ? o->gpu : -1, &r);
	return CV_CLI_EXIT_OK;
}

const struct cv_cli_cmd cv_cli_cmd_suspend = {
	.name = "suspend",
	.args = "ID",
	.summary = "suspend a tenant: its vGPU stops taking commands",
	.details = "In-flight GPU work finishes; the program's next calls "
		   "wait until `cuvisor resume ID`. Its device memory stays "
		   "on the GPU. ID is a tenant ID from `cuvisor ps`. Only the "
		   "daemon's user and root may do this.",
	.opts = op_opts, .nopts = CV_ARRAY_SIZE(op_opts), .run = run_op,
	.ctx_size = sizeof(struct op_ctx), .stop_at_arg = true,
};

const struct cv_cli_cmd cv_cli_cmd_resume = {
	.name = "resume",
	.args = "ID",
	.summary = "resume a suspended or evicted tenant",
	.details = "An evicted tenant's device memory is copied back to the "
		   "GPU first, at the same addresses. With --gpu N (another "
		   "GPU) the tenant is checkpointed into memory and restored "
		   "in a new worker on GPU N, at the same addresses; if that "
		   "fails it stays stopped and `resume` may be tried again. "
		   "Waits up to 70 s for the daemon's answer (610 s with "
		   "--gpu).",
	.opts = resume_opts, .nopts = CV_ARRAY_SIZE(resume_opts),
	.run = run_op, .ctx_size = sizeof(struct op_ctx),
	.stop_at_arg = true,
};

const struct cv_cli_cmd cv_cli_cmd_evict = {
	.name = "evict",
	.args = "ID",
	.summary = "suspend a tenant and move its device memory to the host",
	.details = "The tenant's GPU memory is copied to host memory and "
		   "released, so that others can use it; `cuvisor resume ID` "
		   "brings it back. Waits up to 610 s for the daemon's answer "
		   "(copying many GiB takes a while).",
	.opts = op_opts, .nopts = CV_ARRAY_SIZE(op_opts), .run = run_op,
	.ctx_size = sizeof(struct op_ctx), .stop_at_arg = true,
};

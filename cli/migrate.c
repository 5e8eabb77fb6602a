/* SPDX-License-Identifier: MIT */
/*
 * `cuvisor migrate ID [--gpu N] [--max-pause MS] [--max-rounds R] [--copy]
 * [--max-rate MB/S] [--report FILE] [--fault KIND@ROUND]`: one MIGRATE to the daemon, which
 * answers once the tenant's worker has moved it live to a new worker
 * (docs/migration.md), or has given up and goes on running it.
 *
 * The reply is a cv_ctl_migrate_r and report_len bytes of JSON. Both come
 * from a peer: the lengths must add up exactly, report_len is capped at
 * CV_MIGRATE_REPORT_MAX, msg must be terminated and is made printable
 * before it reaches the terminal. The JSON itself is not parsed here; with
 * --report it goes to FILE as received (scripts/mig-plot.py draws it).
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/util.h"

/* The daemon answers within 10 times its --op-timeout (600 s). */
#define WAIT_MS 610000
#define MAX_PAUSE_MS 60000u

struct mig_ctx {
	const char *socket;
	const char *report;
	int32_t gpu;            /* with gpu_set */
	bool gpu_set;
	uint32_t max_pause_ms;  /* 0: the default */
	uint32_t max_rounds;    /* 0: the default */
	uint32_t max_rate_mbs;  /* 0: no cap */
	bool copy;
	bool inline_bytes;
	uint32_t fault;         /* enum cv_migrate_fault */
	uint32_t fault_round;
	const char *to;         /* --to HOST[:PORT] */
	bool zstd;              /* --compress */
};

/* Reply buffer: the fixed part and the largest report. */
static uint8_t reply[sizeof(struct cv_ctl_migrate_r) + CV_MIGRATE_REPORT_MAX];
_Static_assert(sizeof(reply) <= CV_CTL_MAX - sizeof(struct cv_ctl_hdr),
	       "a migrate reply fits in one control message");

CV_CLI_CTX_CHECK(struct mig_ctx);

static int set_to(void *ctx, const char *v)
{
	if (!*v || strlen(v) >= CV_CTL_HOST_LEN) {
		fprintf(stderr, "cuvisor migrate: --to: '%s' is not "
			"HOST[:PORT]\n", v);
		return -EINVAL;
	}
	((struct mig_ctx *)ctx)->to = v;
	return 0;
}

static int set_gpu(void *ctx, const char *v)
{
	struct mig_ctx *o = ctx;

	if (cv_cli_parse_gpu("migrate", v, &o->gpu) < 0)
		return -EINVAL;
	o->gpu_set = true;
	return 0;
}

/* A decimal in lo..hi into *out; 0 or -EINVAL. */
static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
	unsigned long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (*end || errno || v < lo || v > hi)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static int set_pause(void *ctx, const char *v)
{
	if (parse_u32(v, 1, MAX_PAUSE_MS,
		      &((struct mig_ctx *)ctx)->max_pause_ms) == 0)
		return 0;
	fprintf(stderr, "cuvisor migrate: --max-pause: '%s' is not a number "
		"of milliseconds in 1..%u\n", v, MAX_PAUSE_MS);
	return -EINVAL;
}

static int set_compress(void *ctx, const char *v)
{
	((struct mig_ctx *)ctx)->zstd = true;
	return 0;
}

static int set_inline(void *ctx, const char *v)
{
	((struct mig_ctx *)ctx)->inline_bytes = true;
	return 0;
}

static int set_rate(void *ctx, const char *v)
{
	if (parse_u32(v, 1, CV_MIGRATE_MAX_RATE,
		      &((struct mig_ctx *)ctx)->max_rate_mbs) == 0)
		return 0;
	fprintf(stderr, "cuvisor migrate: --max-rate: '%s' is not a number "
		"of MB/s in 1..%u\n", v, CV_MIGRATE_MAX_RATE);
	return -EINVAL;
}

static int set_rounds(void *ctx, const char *v)
{
	if (parse_u32(v, 1, CV_MIGRATE_MAX_ROUNDS,
		      &((struct mig_ctx *)ctx)->max_rounds) == 0)
		return 0;
	fprintf(stderr, "cuvisor migrate: --max-rounds: '%s' is not a number "
		"of rounds in 1..%u\n", v, CV_MIGRATE_MAX_ROUNDS);
	return -EINVAL;
}

static int set_copy(void *ctx, const char *v)
{
	((struct mig_ctx *)ctx)->copy = true;
	return 0;
}

static int set_report(void *ctx, const char *v)
{
	if (!*v) {
		fprintf(stderr, "cuvisor migrate: --report: empty file name\n");
		return -EINVAL;
	}
	((struct mig_ctx *)ctx)->report = v;
	return 0;
}

static const struct {
	const char *name;
	uint32_t fault;
} faults[] = {
	{ "kill-dest", CV_MIGRATE_FAULT_KILL_DEST },
	{ "cut", CV_MIGRATE_FAULT_CUT },
	{ "corrupt", CV_MIGRATE_FAULT_CORRUPT },
};

/* KIND@ROUND, ROUND a pre-copy round or "stop". */
static int set_fault(void *ctx, const char *v)
{
	struct mig_ctx *o = ctx;
	const char *at = strchr(v, '@');
	size_t i, n = at ? (size_t)(at - v) : 0;

	for (i = 0; at && i < CV_ARRAY_SIZE(faults); i++) {
		if (strlen(faults[i].name) != n ||
		    strncmp(v, faults[i].name, n))
			continue;
		if (!strcmp(at + 1, "stop")) {
			o->fault_round = CV_MIGRATE_AT_STOP;
		} else if (parse_u32(at + 1, 0, CV_MIGRATE_MAX_ROUNDS - 1,
				     &o->fault_round) < 0) {
			break;
		}
		o->fault = faults[i].fault;
		return 0;
	}
	fprintf(stderr, "cuvisor migrate: --fault: '%s' is not KIND@ROUND "
		"(KIND kill-dest, cut or corrupt; ROUND 0..%u or stop)\n", v,
		CV_MIGRATE_MAX_ROUNDS - 1);
	return -EINVAL;
}

static const struct cv_cli_opt mig_opts[] = {
	CV_CLI_SOCKET_OPT,
	{ "--gpu", "N", set_gpu,
	  "the GPU to move the tenant to (default: its own, where nothing is "
	  "copied unless --copy is given)" },
	{ "--to", "HOST[:PORT]", set_to,
	  "onto a GPU of another host, whose daemon listens for peers there "
	  "(port 7430 by default) and holds our daemon's --peer-key; --gpu "
	  "then names that host's GPU (default 0). The program keeps running "
	  "here and reaches its vGPU over TCP; `migrate ID --gpu N` brings it "
	  "back to a GPU of ours. The memory is always copied" },
	{ "--compress", NULL, set_compress,
	  "between hosts: compress the bytes on the network with zstd (level "
	  "1) where that makes them smaller. With --to, both ways for as long "
	  "as the vGPU is there; migrating such a tenant back, for that "
	  "migration. It pays on a network slower than the compression (some "
	  "GB/s over all copy lanes) and for memory that compresses" },
	{ "--max-pause", "MS", set_pause,
	  "stop iterating once the estimated pause is under MS milliseconds "
	  "(1..60000; default 30)" },
	{ "--max-rounds", "R", set_rounds,
	  "at most R pre-copy rounds, the final one included (1..1000; "
	  "default 30)" },
	{ "--max-rate", "MB/S", set_rate,
	  "copy at most MB/S megabytes (10^6 bytes) a second while the "
	  "tenant runs, to leave it more of the GPU's PCIe link; the "
	  "stop-and-copy is never capped (default: no cap)" },
	{ "--inline", NULL, set_inline,
	  "copy, with the bytes in the stream instead of a memory area both "
	  "workers map (as between hosts; slower)" },
	{ "--copy", NULL, set_copy,
	  "copy the memory even when the GPU is the tenant's own" },
	{ "--report", "FILE", set_report,
	  "write the migration's JSON report (per round: bytes, digests, "
	  "dirty rate, time) to FILE, also when it failed; "
	  "scripts/mig-plot.py draws it" },
	{ "--fault", "KIND@ROUND", set_fault,
	  "for testing: make the source worker fail the migration on "
	  "purpose, KIND kill-dest (kill the destination worker), cut (shut "
	  "the stream down) or corrupt (flip a bit of the next record), in "
	  "pre-copy round ROUND (0 is the first) or at the stop-and-copy "
	  "(ROUND stop)" },
};

/* ---- the report file ------------------------------------------------ */

/*
 * A temporary file next to path (so that rename is atomic), created before
 * anything is asked of the daemon so that an unwritable place is said at
 * once. fd or -errno (printed).
 */
static int report_open(const char *path, char *tmp, size_t size)
{
	mode_t mask;
	int fd;

	/* No link, no device: mkostemp and rename follow neither, but a
	 * root CLI must not replace /dev/null either. */
	fd = cv_cli_out_check("migrate", path);
	if (fd < 0)
		return fd;
	if ((size_t)snprintf(tmp, size, "%s.tmp-XXXXXX", path) >= size) {
		fprintf(stderr, "cuvisor migrate: --report: %s: %s\n", path,
			strerror(ENAMETOOLONG));
		return -ENAMETOOLONG;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		fd = -errno;
		fprintf(stderr, "cuvisor migrate: --report: %s: %s\n", path,
			strerror(-fd));
		return fd;
	}
	/* mkostemp makes it 0600; give it what a new file would get. */
	mask = umask(0);
	umask(mask);
	fchmod(fd, 0666 & ~mask);
	return fd;
}

/* Writes len bytes to fd and names it path; 0 or -errno. */
static int report_commit(int fd, const char *tmp, const char *path,
			 const uint8_t *p, size_t len)
{
	ssize_t n;

	while (len) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) < 0)
		return -errno;
	if (rename(tmp, path) < 0)
		return -errno;
	return 0;
}

/*
 * Saves the report if one was asked for (fd >= 0): with report bytes the
 * temporary file becomes FILE, else it is removed and we say there was
 * none. Closes fd. 0, or -1 when FILE could not be written (printed).
 */
static int report_save(const struct mig_ctx *o, int fd, const char *tmp,
		       const uint8_t *json, uint32_t len)
{
	int r = 0;

	if (fd < 0)
		return 0;
	if (len) {
		r = report_commit(fd, tmp, o->report, json, len);
		if (r < 0)
			fprintf(stderr, "cuvisor migrate: --report: %s: %s\n",
				o->report, strerror(-r));
	} else {
		fprintf(stderr, "cuvisor migrate: no report came back; %s not "
			"written\n", o->report);
	}
	if (!len || r < 0)
		unlink(tmp);
	close(fd);
	return r < 0 ? -1 : 0;
}

/* ---- the call ------------------------------------------------------- */

/* A peer's string for the terminal: terminated, printable. */
static void clean(char *s, size_t size)
{
	size_t i;

	s[size - 1] = 0;
	for (i = 0; s[i]; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			s[i] = '?';
}

/*
 * Checks a reply of n bytes in reply[] with status: the fixed part
 * (absent only from a refusal), then exactly report_len bytes of report.
 * Fills *r (zeroed when absent). 0 or -EBADMSG.
 */
static int reply_check(int n, int status, struct cv_ctl_migrate_r *r)
{
	memset(r, 0, sizeof(*r));
	if (n == 0)
		return status < 0 ? 0 : -EBADMSG;
	if ((size_t)n < sizeof(*r))
		return -EBADMSG;
	memcpy(r, reply, sizeof(*r));
	if (r->report_len > CV_MIGRATE_REPORT_MAX ||
	    (size_t)n != sizeof(*r) + r->report_len)
		return -EBADMSG;
	clean(r->msg, sizeof(r->msg));
	return 0;
}

static void print_transport(const char *path, int r)
{
	if (r == -ECONNRESET)
		fprintf(stderr, "cuvisor migrate: %s: the daemon closed the "
			"connection (one without migrate?)\n", path);
	else if (r == -ETIMEDOUT)
		fprintf(stderr, "cuvisor migrate: %s: no answer from the daemon "
			"within %d s\n", path, WAIT_MS / 1000);
	else if (r == -EBADMSG)
		fprintf(stderr, "cuvisor migrate: malformed reply from the "
			"daemon\n");
	else
		fprintf(stderr, "cuvisor migrate: %s: %s\n", path,
			strerror(-r));
}

/* The daemon's or the worker's refusal: its msg when it gave one. */
static void print_error(const struct cv_ctl_migrate *rq,
			const struct cv_ctl_migrate_r *r, int status)
{
	unsigned long long t = (unsigned long long)rq->tenant;

	if (r->msg[0])
		fprintf(stderr, "cuvisor migrate: tenant %llu: %s: %s\n", t,
			strerror(-status), r->msg);
	else if (status == -ENOENT)
		fprintf(stderr, "cuvisor migrate: no tenant %llu (see `cuvisor "
			"ps`)\n", t);
	else if (status == -ENODEV && rq->gpu >= 0)
		fprintf(stderr, "cuvisor migrate: the daemon has no GPU %d\n",
			(int)rq->gpu);
	else if (status == -EPERM)
		fprintf(stderr, "cuvisor migrate: only the daemon's user and "
			"root may migrate tenants\n");
	else
		fprintf(stderr, "cuvisor migrate: tenant %llu: %s\n", t,
			strerror(-status));
}

static void print_done(uint64_t id, const struct cv_ctl_migrate_r *r,
		       const char *host)
{
	double pause = (double)r->pause_ns / 1e6;
	char sz[32], ms[32];

	cv_cli_fmt_bytes(r->bytes, sz, sizeof(sz));
	/* A handover on the same GPU pauses for well under a millisecond. */
	snprintf(ms, sizeof(ms), pause < 1 ? "%.3f ms" : "%.1f ms", pause);
	if (r->flags & CV_MIGRATE_R_SHARED)
		printf("tenant %llu migrated to gpu %d: memory shared, nothing "
		       "copied, pause %s, total %.0f ms\n",
		       (unsigned long long)id, (int)r->gpu, ms,
		       (double)r->total_ns / 1e6);
	else
		printf("tenant %llu migrated to %s%sgpu %d: %s in %u round%s, "
		       "pause %s, total %.0f ms\n", (unsigned long long)id,
		       host ? host : "", host ? " " : "",
		       (int)r->gpu, sz, r->rounds, r->rounds == 1 ? "" : "s",
		       ms, (double)r->total_ns / 1e6);
}

/* argv: the subcommand, the tenant ID, then options again. */
static int run_migrate(void *ctx, int argc, char **argv)
{
	struct mig_ctx *o = ctx;
	struct cv_ctl_migrate rq = { 0 };
	struct cv_ctl_migrate_r r;
	char path[108], what[48], tmp[PATH_MAX];
	int status = 0, fd = -1, n, ret = CV_CLI_EXIT_ERR;

	if (argc < 2 || cv_cli_parse_id(argv[1], &rq.tenant) < 0) {
		fprintf(stderr, "cuvisor migrate: which tenant? (an ID from "
			"`cuvisor ps`)\n");
		return CV_CLI_EXIT_USAGE;
	}
	/* Options may follow the ID. */
	n = cv_cli_parse(&cv_cli_cmd_migrate, ctx, argc - 1, argv + 1, false);
	if (n <= 0)
		return n == 0 ? CV_CLI_EXIT_OK : CV_CLI_EXIT_USAGE;
	rq.gpu = o->gpu_set ? o->gpu : -1;
	rq.flags = (o->copy ? CV_MIGRATE_COPY : 0) |
		   (o->inline_bytes ? CV_MIGRATE_COPY | CV_MIGRATE_INLINE : 0);
	rq.max_pause_ms = o->max_pause_ms;
	rq.max_rounds = o->max_rounds;
	rq.max_rate_mbs = o->max_rate_mbs;
	rq.fault = o->fault;
	rq.fault_round = o->fault_round;
	if (o->to)
		snprintf(rq.host, sizeof(rq.host), "%s", o->to);
	if (o->zstd)
		rq.flags |= CV_MIGRATE_ZSTD;
	n = cv_cli_socket(o->socket, path, sizeof(path));
	if (n < 0) {
		fprintf(stderr, "cuvisor migrate: socket path: %s\n",
			strerror(-n));
		return CV_CLI_EXIT_ERR;
	}
	if (o->report) {
		fd = report_open(o->report, tmp, sizeof(tmp));
		if (fd < 0)
			return CV_CLI_EXIT_ERR;
	}
	snprintf(what, sizeof(what), "migration of tenant %llu",
		 (unsigned long long)rq.tenant);
	n = cv_cli_call_progress(path, CV_CTL_MIGRATE, &rq, sizeof(rq), NULL, 0,
				 reply, sizeof(reply), &status, what,
				 rq.tenant, WAIT_MS);
	if (n >= 0)
		n = reply_check(n, status, &r);
	if (n < 0) {
		if (n != -ENOTCONN)
			print_transport(path, n);
		report_save(o, fd, tmp, NULL, 0);
		return CV_CLI_EXIT_ERR;
	}
	if (status < 0)
		print_error(&rq, &r, status);
	else
		print_done(rq.tenant, &r, o->to);
	if (report_save(o, fd, tmp, reply + sizeof(r), r.report_len) == 0 &&
	    status == 0)
		ret = CV_CLI_EXIT_OK;
	return ret;
}

const struct cv_cli_cmd cv_cli_cmd_migrate = {
	.name = "migrate",
	.args = "ID",
	.summary = "live-migrate a tenant to a new worker, on another GPU or "
		   "its own",
	.details = "A destination worker is started on the GPU asked for; the "
		   "tenant's memory is copied to it in rounds while the tenant "
		   "runs, each round sending only what changed, until what is "
		   "left fits in --max-pause (or stops shrinking, or "
		   "--max-rounds is reached). Then the tenant is paused, the "
		   "rest and its state are sent, and the new worker takes over "
		   "at the same device addresses. On its own GPU without "
		   "--copy nothing is copied: the new worker maps the same "
		   "memory. If anything fails before the new worker takes "
		   "over, the tenant goes on where it was and the command "
		   "fails with the reason. ID is a tenant ID from `cuvisor "
		   "ps`; only the daemon's user and root may do this. Waits up "
		   "to 610 s for the daemon's answer.",
	.opts = mig_opts, .nopts = CV_ARRAY_SIZE(mig_opts),
	.run = run_migrate, .ctx_size = sizeof(struct mig_ctx),
	.stop_at_arg = true,
};

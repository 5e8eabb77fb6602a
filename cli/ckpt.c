/* SPDX-License-Identifier: MIT */
/*
 * `cuvisor checkpoint ID -o FILE [--stop] [--compress LEVEL]` and
 * `cuvisor restore FILE [--gpu N]`.
 *
 * We open the image file ourselves, with our own permissions, and hand
 * its descriptor to the daemon; the tenant's worker writes or reads it.
 * A checkpoint goes to an unnamed file in FILE's directory (O_TMPFILE)
 * that gets its name only once the worker reported success, so a failed
 * checkpoint (a full disk, a killed worker) leaves nothing behind and
 * never clobbers an older image of the same name.
 *
 * While the daemon works, a terminal sees the progress (bytes, rate, time
 * left), read from `cuvisor ps` entries twice a second.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/image.h"
#include "../core/proto.h"
#include "../core/util.h"

/* The daemon answers within 10 times its --op-timeout (600 s). */
#define WAIT_MS 610000
#define TICK_MS 500

struct ck_ctx {
	const char *socket;
	const char *out;
	bool stop;
	int level;
	int32_t gpu;
	bool gpu_set;
	mode_t mode;           /* of the image; 0: the default, 0600 */
};

CV_CLI_CTX_CHECK(struct ck_ctx);

static int set_out(void *ctx, const char *v)
{
	((struct ck_ctx *)ctx)->out = v;
	return 0;
}

static int set_stop(void *ctx, const char *v)
{
	((struct ck_ctx *)ctx)->stop = true;
	return 0;
}

static int set_level(void *ctx, const char *v)
{
	char *end;
	long l;

	errno = 0;
	l = strtol(v, &end, 10);
	if (!*v || *end || errno || l < 1 || l > CV_CKPT_LEVEL_MAX) {
		fprintf(stderr, "cuvisor checkpoint: --compress: '%s' is not "
			"a zstd level (1..%d)\n", v, CV_CKPT_LEVEL_MAX);
		return -EINVAL;
	}
	((struct ck_ctx *)ctx)->level = (int)l;
	return 0;
}

static int set_gpu(void *ctx, const char *v)
{
	struct ck_ctx *o = ctx;

	if (cv_cli_parse_gpu("restore", v, &o->gpu) < 0)
		return -EINVAL;
	o->gpu_set = true;
	return 0;
}

static int set_mode(void *ctx, const char *v)
{
	char *end;
	long m;

	errno = 0;
	m = strtol(v, &end, 8);
	if (!*v || *end || errno || m < 0400 || m > 0777) {
		fprintf(stderr, "cuvisor checkpoint: --mode: '%s' is not an "
			"octal file mode between 0400 and 0777\n", v);
		return -EINVAL;
	}
	((struct ck_ctx *)ctx)->mode = (mode_t)m;
	return 0;
}

static const struct cv_cli_opt ck_opts[] = {
	CV_CLI_SOCKET_OPT,
	{ "-o", "FILE", set_out, "the image file to write (required)" },
	{ "--stop", NULL, set_stop,
	  "leave the tenant stopped, its GPU memory released, until "
	  "`cuvisor restore FILE`" },
	{ "--compress", "LEVEL", set_level,
	  "compress the image with zstd at LEVEL (1..19; default: not "
	  "compressed, which is fastest)" },
	{ "--mode", "OCTAL", set_mode,
	  "the image file's permissions, exactly (the umask does not apply; "
	  "default 0600: an image holds the tenant's whole GPU memory)" },
};

static const struct cv_cli_opt rs_opts[] = {
	CV_CLI_SOCKET_OPT,
	{ "--gpu", "N", set_gpu,
	  "the GPU to restore on (default: the one it was on)" },
};

/* One line of progress on stderr, rewritten in place. The rate is of
 * the current pass: a migration's rounds each count from 0 again, and
 * *t0 moves to the start of the pass that *last shows has begun. */
static void show_progress(const char *path, const char *what, uint64_t id,
			  uint64_t *t0, uint64_t *last)
{
	struct cv_ctl_tenant t;
	char done[32], total[32], left[32] = "";
	double s, rate;

	if (cv_cli_tenant_get(path, id, &t) < 0 || !t.op_total)
		return;
	if (t.op_done < *last) {
		/* a new pass began since the last look: no rate yet */
		*t0 = cv_now_ns();
		*last = t.op_done;
		cv_cli_fmt_bytes(t.op_done, done, sizeof(done));
		cv_cli_fmt_bytes(t.op_total, total, sizeof(total));
		fprintf(stderr, "\r%s: %s of %s%*s", what, done, total, 24, "");
		return;
	}
	*last = t.op_done;
	s = (double)(cv_now_ns() - *t0) / 1e9;
	cv_cli_fmt_bytes(t.op_done, done, sizeof(done));
	cv_cli_fmt_bytes(t.op_total, total, sizeof(total));
	rate = s > 0 ? (double)t.op_done / s : 0;
	if (rate > 0 && t.op_done <= t.op_total)
		snprintf(left, sizeof(left), ", %.0f s left",
			 (double)(t.op_total - t.op_done) / rate + 0.5);
	fprintf(stderr, "\r%s: %s of %s, %.2f GB/s%s   ", what, done, total,
		rate / 1e9, left);
}

int cv_cli_call_progress(const char *path, uint16_t type, const void *p,
			 uint32_t len, const int *fds, int nfds, void *buf,
			 uint32_t size, int *status, const char *what,
			 uint64_t id, int wait_ms)
{
	struct pollfd pf = { .events = POLLIN };
	bool tty = isatty(2);
	uint64_t t0 = cv_now_ns(), last = 0;
	struct cv_ctl_hdr h;
	bool shown = false;
	int sock, n, waited = 0;

	sock = cv_cli_connect(path, false);
	if (sock < 0)
		return -ENOTCONN; /* cv_cli_connect said why */
	n = cv_ctl_send(sock, type, 0, p, len, fds, nfds);
	pf.fd = sock;
	while (n == 0 && waited < wait_ms) {
		n = poll(&pf, 1, TICK_MS);
		if (n > 0)
			break;
		n = 0;
		waited += TICK_MS;
		if (tty && id) {
			show_progress(path, what, id, &t0, &last);
			shown = true;
		}
	}
	if (shown)
		fprintf(stderr, "\r%*s\r", 70, "");
	if (n >= 0)
		n = cv_ctl_recv(sock, &h, buf, size, NULL, NULL, 0);
	n = cv_cli_refused(sock, n, &h, buf);
	close(sock);
	if (n == -EAGAIN)
		n = -ETIMEDOUT;
	if (n < 0)
		return n;
	if (h.type != (type | CV_CTL_REPLY))
		return -EBADMSG;
	*status = h.status;
	return n;
}

/* ---- checkpoint ---------------------------------------------------- */

/*
 * Where an image goes: FILE must not exist or be a regular file
 * (cv_cli_out_check: no symlink, no device; never written in place). The
 * image is written unnamed in FILE's directory, and the worker gives it
 * its name once it is complete (CV_CKPT_NAME): the name then appears even
 * if this CLI or the daemon dies meanwhile, and never names half an image.
 */
struct outfile {
	int fd;
	int dir_fd;
	char base[CV_CTL_FILE_LEN]; /* the name in dir_fd */
	char tmp[CV_CTL_FILE_LEN + 32]; /* fallback temporary name, or "" */
};

/* Removes a fallback temporary file; NULL-safe on a failed open. */
static void out_close(struct outfile *f)
{
	if (f->tmp[0])
		unlinkat(f->dir_fd, f->tmp, 0);
	f->tmp[0] = 0;
	if (f->dir_fd >= 0)
		close(f->dir_fd);
	if (f->fd >= 0)
		close(f->fd);
	f->fd = f->dir_fd = -1;
}

/* Opens path's directory and splits off its last component into f->base.
 * 0 or -errno (printed). */
static int out_dir(const char *path, struct outfile *f)
{
	char dir[PATH_MAX], base[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(dir) || path[n - 1] == '/') {
		fprintf(stderr, "cuvisor checkpoint: %s: not a file name\n",
			path);
		return -EINVAL;
	}
	memcpy(dir, path, n + 1);
	memcpy(base, path, n + 1);
	snprintf(f->base, sizeof(f->base), "%s", basename(base));
	if (strlen(basename(base)) >= sizeof(f->base) ||
	    !strcmp(f->base, ".") || !strcmp(f->base, "..")) {
		fprintf(stderr, "cuvisor checkpoint: %s: not a file name\n",
			path);
		return -EINVAL;
	}
	f->dir_fd = open(dirname(dir), O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (f->dir_fd < 0) {
		fprintf(stderr, "cuvisor checkpoint: %s: %s\n", dir,
			strerror(errno));
		return -errno;
	}
	return 0;
}

/*
 * An unnamed file in path's directory, mode `mode` exactly (no umask: an
 * image is the tenant's whole memory, 0600 unless --mode says otherwise).
 * 0 or -errno (printed).
 */
static int out_open(const char *path, mode_t mode, struct outfile *f)
{
	int r;

	memset(f, 0, sizeof(*f));
	f->fd = f->dir_fd = -1;
	r = cv_cli_out_check("checkpoint", path);
	if (r < 0)
		return r;
	r = out_dir(path, f);
	if (r < 0)
		return r;
	f->fd = openat(f->dir_fd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	if (f->fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR)) {
		snprintf(f->tmp, sizeof(f->tmp), ".%s.tmp-%d", f->base,
			 (int)getpid());
		/* O_EXCL: a link planted at the name is not followed. */
		f->fd = openat(f->dir_fd, f->tmp, O_WRONLY | O_CREAT | O_EXCL |
			       O_NOFOLLOW | O_CLOEXEC, 0600);
		if (f->fd < 0)
			f->tmp[0] = 0; /* not ours to remove */
	}
	if (f->fd < 0 || fchmod(f->fd, mode) < 0) {
		r = -errno;
		fprintf(stderr, "cuvisor checkpoint: %s: %s\n", path,
			strerror(-r));
		out_close(f);
		return r;
	}
	return 0;
}

static void ck_error(const char *path, uint64_t id, int status)
{
	unsigned long long t = (unsigned long long)id;
	uint32_t st;

	switch (status) {
	case -ENOENT:
		fprintf(stderr, "cuvisor checkpoint: no tenant %llu (see "
			"`cuvisor ps`)\n", t);
		break;
	case -EBUSY:
		if (cv_cli_tenant_state(path, id, &st) == 0 &&
		    st != CV_STATE_RUNNING && st != CV_STATE_SUSPENDED &&
		    st != CV_STATE_EVICTED)
			fprintf(stderr, "cuvisor checkpoint: tenant %llu is "
				"%s: only a running, suspended or evicted "
				"tenant can be checkpointed\n", t,
				cv_cli_state_name(st));
		else
			fprintf(stderr, "cuvisor checkpoint: tenant %llu is "
				"busy: another operation on it is still in "
				"progress\n", t);
		break;
	case -ENOSPC:
	case -EDQUOT:
	case -EFBIG:
		fprintf(stderr, "cuvisor checkpoint: tenant %llu: the image "
			"does not fit: %s; nothing was written and the tenant "
			"goes on\n", t, strerror(-status));
		break;
	case -EOPNOTSUPP:
		fprintf(stderr, "cuvisor checkpoint: tenant %llu has memory "
			"from cuMemCreate that is mapped nowhere, which a "
			"checkpoint cannot save; nothing was written and the "
			"tenant goes on\n", t);
		break;
	case -EIO:
		fprintf(stderr, "cuvisor checkpoint: tenant %llu: an I/O "
			"error, or its worker went away (see the daemon's "
			"log); no image was written\n", t);
		break;
	case -EPERM:
		fprintf(stderr, "cuvisor checkpoint: only the daemon's user "
			"and root may checkpoint tenants\n");
		break;
	case -ETIMEDOUT:
		fprintf(stderr, "cuvisor checkpoint: tenant %llu's worker did "
			"not finish in time (see `cuvisor ps` and the "
			"daemon's log)\n", t);
		break;
	default:
		fprintf(stderr, "cuvisor checkpoint: tenant %llu: %s\n", t,
			strerror(-status));
	}
}

static int run_checkpoint(void *ctx, int argc, char **argv)
{
	struct ck_ctx *o = ctx;
	struct cv_ctl_ckpt ck = { 0 };
	struct cv_ctl_op_r r;
	struct outfile f;
	char path[108], sz[32], what[48];
	uint8_t buf[256];
	int status = 0, n, fds[2];

	if (argc < 2 || cv_cli_parse_id(argv[1], &ck.tenant) < 0) {
		fprintf(stderr, "cuvisor checkpoint: which tenant? (an ID "
			"from `cuvisor ps`)\n");
		return CV_CLI_EXIT_USAGE;
	}
	n = cv_cli_parse(&cv_cli_cmd_checkpoint, ctx, argc - 1, argv + 1,
			 false);
	if (n <= 0)
		return n == 0 ? CV_CLI_EXIT_OK : CV_CLI_EXIT_USAGE;
	if (!o->out) {
		fprintf(stderr, "cuvisor checkpoint: where to? (-o FILE)\n");
		return CV_CLI_EXIT_USAGE;
	}
	ck.flags = o->stop ? CV_CKPT_STOP : 0;
	ck.level = o->level;
	n = cv_cli_socket(o->socket, path, sizeof(path));
	if (n < 0 || out_open(o->out, o->mode ? o->mode : 0600, &f) < 0)
		return CV_CLI_EXIT_ERR;
	fds[0] = f.fd;
	fds[1] = f.dir_fd;
	ck.flags |= CV_CKPT_NAME;
	memcpy(ck.name, f.base, sizeof(ck.name));
	snprintf(what, sizeof(what), "checkpoint of tenant %llu",
		 (unsigned long long)ck.tenant);
	n = cv_cli_call_progress(path, CV_CTL_CHECKPOINT, &ck, sizeof(ck),
				 fds, 2, buf, sizeof(buf), &status, what,
				 ck.tenant, WAIT_MS);
	if (n >= 0 && n != 0 && n != (int)sizeof(r))
		n = -EBADMSG;
	if (n < 0 || status < 0) {
		out_close(&f);
		if (n < 0 && n != -ENOTCONN)
			fprintf(stderr, "cuvisor checkpoint: %s: %s\n", path,
				n == -ECONNRESET ? "the daemon closed the "
				"connection" : strerror(-n));
		else
			ck_error(path, ck.tenant, status);
		return CV_CLI_EXIT_ERR;
	}
	if (n != (int)sizeof(r)) {
		out_close(&f);
		return CV_CLI_EXIT_ERR;
	}
	memcpy(&r, buf, sizeof(r));
	out_close(&f);
	cv_cli_fmt_bytes(r.bytes, sz, sizeof(sz));
	printf("tenant %llu: checkpointed to %s: %s in %.1f ms (%.2f GB/s)%s\n",
	       (unsigned long long)ck.tenant, o->out, sz, r.ns / 1e6,
	       r.ns ? (double)r.bytes / (double)r.ns : 0.0,
	       r.state == CV_STATE_STOPPED ? "; stopped, GPU memory released"
					   : "");
	return CV_CLI_EXIT_OK;
}

/* ---- restore ------------------------------------------------------- */

static int run_restore(void *ctx, int argc, char **argv)
{
	struct ck_ctx *o = ctx;
	struct cv_ctl_restore rq = { .gpu = -1 };
	struct cv_ctl_restore_r r;
	struct cv_ckpt_ident id = { 0 };
	struct cv_img_info info;
	char path[108], err[256], sz[32], what[48];
	uint8_t buf[512];
	int status = 0, fd, n;

	if (argc < 2) {
		fprintf(stderr, "cuvisor restore: which image? (FILE)\n");
		return CV_CLI_EXIT_USAGE;
	}
	/* Options may follow the file. */
	n = cv_cli_parse(&cv_cli_cmd_restore, ctx, argc - 1, argv + 1, false);
	if (n <= 0)
		return n == 0 ? CV_CLI_EXIT_OK : CV_CLI_EXIT_USAGE;
	n = 1;
	rq.gpu = o->gpu_set ? o->gpu : -1;
	fd = open(argv[n], O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "cuvisor restore: %s: %s\n", argv[n],
			strerror(errno));
		return CV_CLI_EXIT_ERR;
	}
	/* Our own look first: a damaged file is named without a daemon. */
	if (cv_img_peek(fd, &info, err, sizeof(err)) < 0) {
		fprintf(stderr, "cuvisor restore: %s: %s\n", argv[n], err);
		close(fd);
		return CV_CLI_EXIT_ERR;
	}
	memcpy(&id, info.ident, sizeof(id));
	n = cv_cli_socket(o->socket, path, sizeof(path));
	if (n < 0) {
		close(fd);
		return CV_CLI_EXIT_ERR;
	}
	snprintf(what, sizeof(what), "restore of tenant %llu",
		 (unsigned long long)id.tenant_id);
	n = cv_cli_call_progress(path, CV_CTL_RESTORE, &rq, sizeof(rq), &fd, 1,
				 buf, sizeof(buf), &status, what,
				 id.tenant_id, WAIT_MS);
	close(fd);
	if (n >= 0 && n != (int)sizeof(r) && !(status < 0 && n == 0))
		n = -EBADMSG;
	if (n < 0) {
		if (n != -ENOTCONN)
			fprintf(stderr, "cuvisor restore: %s: %s\n", path,
				n == -ECONNRESET ? "the daemon closed the "
				"connection" : strerror(-n));
		return CV_CLI_EXIT_ERR;
	}
	memset(&r, 0, sizeof(r));
	if (n)
		memcpy(&r, buf, sizeof(r));
	r.msg[sizeof(r.msg) - 1] = 0;
	if (status < 0) {
		fprintf(stderr, "cuvisor restore: %s: %s\n", argv[1],
			r.msg[0] ? r.msg : strerror(-status));
		return CV_CLI_EXIT_ERR;
	}
	cv_cli_fmt_bytes(id.mem_bytes, sz, sizeof(sz));
	printf("tenant %llu: restored from %s on gpu %d: %s of device memory "
	       "in %.1f ms\n", (unsigned long long)r.tenant, argv[1],
	       (int)r.gpu, sz, r.ns / 1e6);
	return CV_CLI_EXIT_OK;
}

const struct cv_cli_cmd cv_cli_cmd_checkpoint = {
	.name = "checkpoint",
	.args = "ID -o FILE",
	.summary = "write a tenant's complete vGPU state to an image file",
	.details = "The tenant is suspended while its device memory, "
		   "modules, functions, streams and events are written, then "
		   "goes on (with --stop it stays stopped, its GPU memory "
		   "released, until `cuvisor restore FILE`). FILE appears "
		   "only once the image is complete; on failure (a full disk, "
		   "say) nothing is written and the tenant goes on. FILE is "
		   "created with mode 0600 (--mode changes it) and must be a "
		   "new name or a regular file: a symbolic link, a device or a "
		   "fifo is refused, never written through. The "
		   "image format is docs/image-format.md.",
	.opts = ck_opts, .nopts = CV_ARRAY_SIZE(ck_opts),
	.run = run_checkpoint, .ctx_size = sizeof(struct ck_ctx),
	.stop_at_arg = true,
};

const struct cv_cli_cmd cv_cli_cmd_restore = {
	.name = "restore",
	.args = "FILE",
	.summary = "bring a stopped tenant back from its image",
	.details = "The image must be the latest checkpoint of a tenant "
		   "stopped with `checkpoint --stop` whose program still "
		   "runs (also across a restart of the daemon). A new worker "
		   "rebuilds the vGPU at the same device addresses and the "
		   "program goes on. A damaged, foreign or mismatched image "
		   "is refused with the reason, and the tenant stays "
		   "stopped.",
	.opts = rs_opts, .nopts = CV_ARRAY_SIZE(rs_opts),
	.run = run_restore, .ctx_size = sizeof(struct ck_ctx),
	.stop_at_arg = true,
};

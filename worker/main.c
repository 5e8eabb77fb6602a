/* SPDX-License-Identifier: MIT */
/*
 * cuvisor-vgpu: one tenant's vGPU. Started by cuvisord with
 *
 *   cuvisor-vgpu --tenant ID --gpu N --mem BYTES --backend cuda|host
 *                --driver PATH --ctl-fd 3 --link-fd 4 [--log SPEC]
 *                [--token-fd N --daemon-socket PATH --guest-pid N --name S]
 *                [--region-fd 5 --restore-fd 6] [--migrate-fd 5]
 *
 * It creates the shared region (a sealed memfd mapped at CV_REGION_ADDR),
 * opens the backend, sends CV_CTL_W_READY with the memfd to the daemon,
 * then consumes the guest's ring. It exits when the guest's end of the
 * link socket closes (the guest died or detached), on CV_CTL_W_STOP, or
 * when the guest breaks the ring. With --region-fd and --restore-fd it
 * takes over an existing guest's region and rebuilds its vGPU from a
 * checkpoint image first (worker/ckpt.c). With --migrate-fd it is the
 * destination of a live migration (worker/migrate.c): the source sends
 * the guest's region, the memory and the state over that socket, and the
 * guest's link with its COMMIT; --link-fd is not given then.
 *
 * When its daemon goes away it carries on serving the guest and connects
 * to --daemon-socket every 100 ms until a new daemon adopts it (W_HELLO).
 *
 * After `checkpoint --stop` the worker re-executes itself as a holder
 * (--hold): no driver, no GPU memory, just the guest's region and link
 * kept open until a restoring worker takes them over (W_HANDOVER), so
 * that the guest never notices its worker went.
 *
 * With --backend remote --remote HOST[:PORT] --peer-key FILE the device
 * is a GPU of another host: the backend (backend_remote.c) asks that
 * host's daemon for a vGPU and calls it over TCP. The daemon there
 * starts a worker with --serve-fd (remote_serve.c) for it.
 *
 *   cuvisor-vgpu --probe --backend cuda|host [--driver PATH]
 * lists the devices, one line each: gpu INDEX TOTAL_BYTES NAME.
 *
 *   cuvisor-vgpu --spare --gpu N --backend cuda|host [--driver PATH]
 *                --ctl-fd 3 [--log SPEC] [--daemon-socket PATH]
 * is a spare (daemon/spare.c): it reserves the region's addresses, opens
 * the GPU, says W_SPARE and waits; W_ASSIGN makes it the destination of
 * a migration, as if started with --migrate-fd and the tenant's options.
 * It exits when the daemon's end of --ctl-fd closes first.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/ctl.h"
#include "../core/log.h"
#include "../core/peer.h"
#include "../core/remote.h"
#include "../core/util.h"
#include "backend.h"
#include "migrate.h"
#include "remote.h"
#include "vgpu.h"
#include "xfer.h"

/* Without its daemon, a worker (or holder) tries its socket again after
 * RECONNECT_MS, then at intervals doubling up to RECONNECT_MAX_MS; a
 * change in the socket's directory (a new daemon binding its socket)
 * brings the next try forward and the interval back to RECONNECT_MS. */
#define RECONNECT_MS 100
#define RECONNECT_MAX_MS 5000
#define HELLO_TIMEOUT_MS 2000

struct wopts {
	uint64_t tenant;
	int gpu;
	uint64_t mem;
	const char *backend;
	const char *driver;
	int ctl_fd;
	int link_fd;
	int serve_fd;           /* --serve-fd: a peer's remote vGPU */
	int session_fd;         /* --session-fd: its session key */
	const char *remote;     /* --backend remote: HOST[:PORT] */
	const char *peer_key;
	int remote_timeout_ms;
	bool remote_compress;
	int region_fd;
	int image_fd;           /* --image-fd: a holder's kept move image */
	int restore_fd;
	int migrate_fd;
	const char *log;
	const char *daemon_socket;
	const char *name;
	uint32_t guest_pid;
	uint8_t token[16];
	int token_fd;           /* --token-fd: a pipe that holds the token */
	bool have_token;
	int probe;
	int hold;
	int spare;
	char name_buf[CV_CTL_NAME_LEN]; /* --spare: the assigned name */
	/* --ckpt-done BYTES:NS: a holder answers the checkpoint it ends */
	bool ckpt_done;
	uint64_t ckpt_bytes, ckpt_ns;
};

/* What the control thread serves: a vGPU, or (holder) only fds. */
struct wstate {
	struct wopts *o;
	struct cv_vgpu *v;      /* NULL in a holder */
	int ctl;                /* -1 while the daemon is away */
	int link;
	int memfd;
	uint64_t tenant;
};

static struct cv_vgpu g_vgpu;
static struct wstate g_ws;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: cuvisor-vgpu --tenant ID --gpu N --mem BYTES --backend cuda|host|remote\n"
		"                    [--driver PATH] --ctl-fd FD --link-fd FD [--log LEVEL[:PATH]]\n"
		"                    [--token-fd FD] [--daemon-socket PATH] [--guest-pid N] [--name S]\n"
		"                    [--region-fd FD --restore-fd FD | --migrate-fd FD]\n"
		"                    [--remote HOST[:PORT] --peer-key FILE] [--remote-timeout MS]\n"
		"                    [--remote-compress]\n"
		"       cuvisor-vgpu --serve-fd FD --tenant ID --gpu N --mem BYTES --backend cuda|host ...\n"
		"       cuvisor-vgpu --hold --tenant ID ... --region-fd FD [--image-fd FD]\n"
		"       cuvisor-vgpu --probe --backend cuda|host [--driver PATH]\n"
		"       cuvisor-vgpu --spare --gpu N --backend cuda|host [--driver PATH] --ctl-fd FD\n"
		"One tenant's vGPU worker; cuvisord starts it, people do not.\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 0);
	return errno || end == s || *end ? -EINVAL : 0;
}

static int parse_fd(const char *s, int *fd)
{
	uint64_t n;

	if (parse_u64(s, &n) || n > 65535)
		return -EINVAL;
	*fd = (int)n;
	return 0;
}

/*
 * The token from --token-fd: exactly 16 bytes, then end of file (the
 * daemon or our predecessor closed the write end after writing it; the
 * pipe is ours alone). Closes the fd. 0 or -EINVAL.
 */
static int read_token(struct wopts *o)
{
	uint8_t extra;
	size_t got = 0;
	ssize_t n;

	while (got < sizeof(o->token)) {
		n = read(o->token_fd, o->token + got, sizeof(o->token) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	while ((n = read(o->token_fd, &extra, 1)) < 0 && errno == EINTR)
		;
	close(o->token_fd);
	o->token_fd = -1;
	return got == sizeof(o->token) && n == 0 ? 0 : -EINVAL;
}

static int parse_args(int argc, char **argv, struct wopts *o)
{
	static const struct option lo[] = {
		{ "tenant", 1, 0, 't' }, { "gpu", 1, 0, 'g' },
		{ "mem", 1, 0, 'm' },    { "backend", 1, 0, 'b' },
		{ "driver", 1, 0, 'd' }, { "ctl-fd", 1, 0, 'c' },
		{ "link-fd", 1, 0, 'l' }, { "log", 1, 0, 'L' },
		{ "region-fd", 1, 0, 'R' }, { "restore-fd", 1, 0, 'I' },
		{ "image-fd", 1, 0, 'j' },
		{ "token-fd", 1, 0, 'T' }, { "daemon-socket", 1, 0, 'S' },
		{ "guest-pid", 1, 0, 'P' }, { "name", 1, 0, 'N' },
		{ "probe", 0, 0, 'p' },  { "hold", 0, 0, 'H' },
		{ "ckpt-done", 1, 0, 'D' }, { "migrate-fd", 1, 0, 'M' },
		{ "spare", 0, 0, 'A' },
		{ "serve-fd", 1, 0, 'F' }, { "remote", 1, 0, 'r' },
		{ "session-fd", 1, 0, 'E' }, { "remote-compress", 0, 0, 'Z' },
		{ "peer-key", 1, 0, 'K' }, { "remote-timeout", 1, 0, 'O' },
		{ "help", 0, 0, 'h' },   { 0, 0, 0, 0 }
	};
	uint64_t n;
	int c;

	*o = (struct wopts){ .gpu = 0, .backend = "cuda", .ctl_fd = -1,
			     .link_fd = -1, .region_fd = -1, .restore_fd = -1,
			     .image_fd = -1,
			     .migrate_fd = -1, .serve_fd = -1, .session_fd = -1,
			     .token_fd = -1,
			     .remote_timeout_ms = CV_RM_TIMEOUT_MS,
			     .name = "?" };
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 't': if (parse_u64(optarg, &o->tenant)) return -EINVAL; break;
		case 'g': if (parse_u64(optarg, &n) || n > 1024) return -EINVAL;
			  o->gpu = (int)n; break;
		case 'm': if (parse_u64(optarg, &o->mem)) return -EINVAL; break;
		case 'b': o->backend = optarg; break;
		case 'd': o->driver = optarg; break;
		case 'c': if (parse_fd(optarg, &o->ctl_fd)) return -EINVAL; break;
		case 'l': if (parse_fd(optarg, &o->link_fd)) return -EINVAL; break;
		case 'R': if (parse_fd(optarg, &o->region_fd)) return -EINVAL; break;
		case 'j': if (parse_fd(optarg, &o->image_fd)) return -EINVAL; break;
		case 'I': if (parse_fd(optarg, &o->restore_fd)) return -EINVAL; break;
		case 'M': if (parse_fd(optarg, &o->migrate_fd)) return -EINVAL; break;
		case 'T': if (parse_fd(optarg, &o->token_fd)) return -EINVAL;
			  o->have_token = true; break;
		case 'S': o->daemon_socket = optarg; break;
		case 'P': if (parse_u64(optarg, &n) || n > INT32_MAX) return -EINVAL;
			  o->guest_pid = (uint32_t)n; break;
		case 'N': o->name = optarg; break;
		case 'L': o->log = optarg; break;
		case 'p': o->probe = 1; break;
		case 'H': o->hold = 1; break;
		case 'A': o->spare = 1; break;
		case 'F': if (parse_fd(optarg, &o->serve_fd)) return -EINVAL; break;
		case 'E': if (parse_fd(optarg, &o->session_fd)) return -EINVAL; break;
		case 'Z': o->remote_compress = true; break;
		case 'r': o->remote = optarg; break;
		case 'K': o->peer_key = optarg; break;
		case 'O': if (parse_u64(optarg, &n) || n < 1000 || n > 3600000)
				  return -EINVAL;
			  o->remote_timeout_ms = (int)n; break;
		case 'D': if (sscanf(optarg, "%" SCNu64 ":%" SCNu64,
				     &o->ckpt_bytes, &o->ckpt_ns) != 2)
				  return -EINVAL;
			  o->ckpt_done = true; break;
		case 'h': usage(stdout); exit(0);
		default: return -EINVAL;
		}
	}
	if (optind != argc)
		return -EINVAL;
	if (o->probe)
		return 0;
	if (!strcmp(o->backend, "remote") != (o->remote && o->peer_key))
		return -EINVAL;
	if (o->serve_fd >= 0)
		return o->ctl_fd >= 0 || o->link_fd >= 0 || o->spare ||
		       o->remote || !o->mem ? -EINVAL : 0;
	if (o->spare)
		return o->ctl_fd < 0 || o->link_fd >= 0 || o->region_fd >= 0 ||
		       o->restore_fd >= 0 || o->migrate_fd >= 0 || o->hold ||
		       o->have_token || o->mem ? -EINVAL : 0;
	if ((o->link_fd < 0) != (o->migrate_fd >= 0) || !o->mem)
		return -EINVAL;
	if (o->migrate_fd >= 0 &&
	    (!o->have_token || o->hold || o->region_fd >= 0))
		return -EINVAL;
	if (o->hold && o->region_fd < 0)
		return -EINVAL;
	if (o->image_fd >= 0 && !o->hold)
		return -EINVAL;
	if ((o->restore_fd >= 0) != (o->region_fd >= 0 && !o->hold))
		return -EINVAL;
	if (o->restore_fd >= 0 && !o->have_token)
		return -EINVAL;
	return 0;
}

static const struct cv_backend_ops *pick_backend(const char *name)
{
	if (!strcmp(name, "cuda"))
		return &cv_backend_cuda;
	if (!strcmp(name, "host"))
		return &cv_backend_host;
	if (!strcmp(name, "remote"))
		return &cv_backend_remote;
	return NULL;
}

static pthread_mutex_t send_lock = PTHREAD_MUTEX_INITIALIZER;

static void send_ready(int ctl, int status, const char *msg, int memfd)
{
	struct cv_ctl_ready r = { .status = status };

	if (ctl < 0)
		return;
	snprintf(r.msg, sizeof(r.msg), "%s", msg ? msg : "");
	if (cv_ctl_send(ctl, CV_CTL_W_READY, 0, &r, sizeof(r),
			memfd >= 0 ? &memfd : NULL, memfd >= 0 ? 1 : 0) < 0)
		cv_warn("cannot tell the daemon about the vGPU: %s",
			strerror(errno));
}

static void ctl_reply(struct wstate *w, uint16_t type, int status,
		      const void *p, uint32_t len, const int *fds, int nfds)
{
	pthread_mutex_lock(&send_lock);
	if (w->ctl >= 0)
		cv_ctl_send(w->ctl, type | CV_CTL_REPLY, status, p, len, fds,
			    nfds);
	pthread_mutex_unlock(&send_lock);
}

static uint32_t vstate(struct wstate *w)
{
	return w->v ? __atomic_load_n(&w->v->ctl->state, __ATOMIC_ACQUIRE) :
		      CV_STATE_STOPPED;
}

/* ---- the holder ---------------------------------------------------- */

static int keep_fd(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	return fl < 0 ? -errno : fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
}

/*
 * Becomes a holder: the same process, a fresh image without the driver.
 * Everything of the GPU goes with the exec (and whatever the driver left
 * open is closed by the holder at start). Returns only on failure.
 */
static int become_holder(struct wstate *w, const struct cv_ctl_op_r *r,
			 int image_fd)
{
	char tenant[24], mem[24], gpu[16], ctl[16], link[16], region[16];
	char image[16], tokfd[16], gpid[16], done[48];
	const char *argv[40];
	int n = 0, tok;

	if (keep_fd(w->link) || keep_fd(w->memfd) ||
	    (w->ctl >= 0 && keep_fd(w->ctl)) ||
	    (image_fd >= 0 && keep_fd(image_fd)))
		return -errno;
	/* The token, as the daemon gave it to us: through a pipe, never
	 * on the command line (cv_secret_pipe says why). */
	tok = cv_secret_pipe(w->o->token, sizeof(w->o->token));
	if (tok < 0)
		return tok;
	if (keep_fd(tok)) {
		close(tok);
		return -errno;
	}
	snprintf(tokfd, sizeof(tokfd), "%d", tok);
	snprintf(tenant, sizeof(tenant), "%llu", (unsigned long long)w->tenant);
	snprintf(mem, sizeof(mem), "%llu", (unsigned long long)w->o->mem);
	snprintf(gpu, sizeof(gpu), "%d", w->o->gpu);
	snprintf(ctl, sizeof(ctl), "%d", w->ctl);
	snprintf(link, sizeof(link), "%d", w->link);
	snprintf(region, sizeof(region), "%d", w->memfd);
	snprintf(gpid, sizeof(gpid), "%u", w->o->guest_pid);
	argv[n++] = "cuvisor-vgpu";
	argv[n++] = "--hold";
	argv[n++] = "--tenant"; argv[n++] = tenant;
	argv[n++] = "--gpu"; argv[n++] = gpu;
	argv[n++] = "--mem"; argv[n++] = mem;
	argv[n++] = "--backend"; argv[n++] = w->o->backend;
	argv[n++] = "--link-fd"; argv[n++] = link;
	argv[n++] = "--region-fd"; argv[n++] = region;
	argv[n++] = "--token-fd"; argv[n++] = tokfd;
	argv[n++] = "--guest-pid"; argv[n++] = gpid;
	argv[n++] = "--name"; argv[n++] = w->o->name;
	if (w->ctl >= 0) {
		argv[n++] = "--ctl-fd";
		argv[n++] = ctl;
	}
	if (image_fd >= 0) {
		snprintf(image, sizeof(image), "%d", image_fd);
		argv[n++] = "--image-fd";
		argv[n++] = image;
	}
	if (w->o->daemon_socket) {
		argv[n++] = "--daemon-socket";
		argv[n++] = w->o->daemon_socket;
	}
	if (w->o->log) {
		argv[n++] = "--log";
		argv[n++] = w->o->log;
	}
	/* The holder answers the checkpoint: whatever the daemon sends
	 * next (W_HANDOVER) then finds a holder, not this worker. */
	snprintf(done, sizeof(done), "%" PRIu64 ":%" PRIu64, r->bytes, r->ns);
	argv[n++] = "--ckpt-done";
	argv[n++] = done;
	argv[n] = NULL;
	execv("/proc/self/exe", (char *const *)argv);
	n = -errno;
	close(tok);
	return n;
}

/* A holder closes every fd it was not given (the driver's, say). */
static void close_others(const struct wopts *o)
{
	struct dirent *e;
	DIR *d = opendir("/proc/self/fd");
	int fd, dfd;

	if (!d)
		return;
	dfd = dirfd(d);
	while ((e = readdir(d))) {
		fd = atoi(e->d_name);
		if (e->d_name[0] == '.' || fd <= 2 || fd == dfd ||
		    fd == o->ctl_fd || fd == o->link_fd || fd == o->region_fd ||
		    fd == o->image_fd)
			continue;
		close(fd);
	}
	closedir(d);
}

/* ---- operations ---------------------------------------------------- */

/* One operation at a time; its thread replies when it is done. */
struct op_args {
	struct wstate *w;
	uint16_t type;
	struct cv_ctl_ckpt ck;
	struct cv_ctl_migrate mig;
	int fd;                 /* W_CHECKPOINT: the image; W_MIGRATE: the
				   stream to the destination */
	int dir_fd;             /* W_CHECKPOINT with CV_CKPT_NAME: where to
				   name the image; else -1 */
};

static pthread_mutex_t op_lock = PTHREAD_MUTEX_INITIALIZER;
static bool op_busy;

static const char *op_name(uint16_t type)
{
	return type == CV_CTL_W_SUSPEND ? "suspend" :
	       type == CV_CTL_W_EVICT ? "evict" :
	       type == CV_CTL_W_CHECKPOINT ? "checkpoint" :
	       type == CV_CTL_W_MIGRATE ? "migration" : "resume";
}

/*
 * Gives the complete image fd the name `name` in directory dir_fd,
 * replacing whatever had that name (a symbolic link too: it is replaced,
 * never followed). Through a temporary name, so the name holds either the
 * old file or the whole image. The directory came from the CLI, opened
 * with its user's rights; only the daemon's own user and root may ask for
 * a checkpoint (daemon/ops.c), so we act for no one with fewer rights
 * than ours. 0 or -errno.
 */
static int name_image(int fd, int dir_fd, const char *name)
{
	char proc[32], tmp[CV_CTL_FILE_LEN + 48];
	uint64_t rnd = 0;
	int rc = -EEXIST, i, d;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	/* A fresh temporary name: one that exists (planted, say) is
	 * neither removed nor followed, another is tried. */
	for (i = 0; i < 8 && rc == -EEXIST; i++) {
		if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
			rnd = cv_now_ns() + (uint64_t)i;
		snprintf(tmp, sizeof(tmp), ".%.200s.cuvisor-%016" PRIx64, name,
			 rnd);
		rc = linkat(AT_FDCWD, proc, dir_fd, tmp, AT_SYMLINK_FOLLOW) ?
			     -errno : 0;
	}
	if (rc)
		return rc;
	if (renameat(dir_fd, tmp, dir_fd, name)) {
		rc = -errno;
		unlinkat(dir_fd, tmp, 0);
		return rc;
	}
	/* The new name is durable before the tenant's GPU state goes
	 * (dir_fd is an O_PATH descriptor, which cannot be synced). */
	d = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d >= 0) {
		if (fsync(d) && errno != EINVAL)
			rc = -errno;
		close(d);
	}
	return rc;
}

/* Suspend (if not already), write the image (and name it), then leave the
 * tenant as it was, or (STOP) release everything and become a holder. */
static int checkpoint(struct op_args *a, uint64_t *bytes, bool *stop)
{
	struct cv_vgpu *v = a->w->v;
	bool was_stopped;
	uint64_t dummy;
	int rc;

	pthread_mutex_lock(&v->rev_lock);
	was_stopped = v->rev_stop;
	pthread_mutex_unlock(&v->rev_lock);
	rc = cv_vgpu_suspend(v);
	if (!rc)
		rc = cv_vgpu_checkpoint(v, a->fd, a->ck.level, 0, bytes);
	if (!rc && a->dir_fd >= 0) {
		rc = name_image(a->fd, a->dir_fd, a->ck.name);
		if (rc)
			cv_warn("tenant %llu: cannot name the image \"%s\": "
				"%s", (unsigned long long)a->w->tenant,
				a->ck.name, strerror(-rc));
	}
	*stop = !rc && (a->ck.flags & CV_CKPT_STOP);
	if (!*stop && !was_stopped)
		cv_vgpu_resume(v, &dummy);
	return rc;
}

/*
 * Migrates the tenant away. Committed: replies and exits, never to run the
 * tenant again (the destination does). Else the tenant runs on here.
 */
static void migrate(struct op_args *a)
{
	static uint8_t buf[sizeof(struct cv_ctl_migrate_r) +
			   CV_MIGRATE_REPORT_MAX];
	struct cv_ctl_migrate_r r;
	size_t len = 0;
	int rc;

	rc = cv_migrate_source(a->w->v, a->fd, a->w->o->gpu, &a->mig,
			       a->w->link, &r, (char *)buf + sizeof(r),
			       CV_MIGRATE_REPORT_MAX, &len);
	memcpy(buf, &r, sizeof(r));
	a->w->v->op_total = 0;
	ctl_reply(a->w, CV_CTL_W_MIGRATE, rc, buf, (uint32_t)(sizeof(r) + len),
		  NULL, 0);
	if (!rc) {
		cv_info("tenant %llu: handed over to the destination; this "
			"worker ends", (unsigned long long)a->w->tenant);
		_exit(0);
	}
	pthread_mutex_lock(&op_lock);
	op_busy = false;
	pthread_mutex_unlock(&op_lock);
}

static void *op_main(void *arg)
{
	struct op_args a = *(struct op_args *)arg;
	struct cv_vgpu *v = a.w->v;
	struct cv_ctl_op_r r = { 0 };
	uint64_t t0 = cv_now_ns();
	bool stop = false;
	int rc;

	free(arg);
	if (a.type == CV_CTL_W_MIGRATE) {
		migrate(&a);
		return NULL;
	}
	if (a.type == CV_CTL_W_RESUME) {
		rc = cv_vgpu_resume(v, &r.bytes);
	} else if (a.type == CV_CTL_W_CHECKPOINT) {
		rc = checkpoint(&a, &r.bytes, &stop);
		/* A move's image stays with the holder (CV_CKPT_KEEP). */
		if (!stop || !(a.ck.flags & CV_CKPT_KEEP)) {
			close(a.fd);
			a.fd = -1;
		}
		if (a.dir_fd >= 0)
			close(a.dir_fd);
	} else {
		rc = cv_vgpu_suspend(v);
		if (!rc && a.type == CV_CTL_W_EVICT)
			rc = cv_vgpu_evict(v, &r.bytes);
	}
	v->op_total = 0;
	r.ns = cv_now_ns() - t0;
	r.state = stop ? CV_STATE_STOPPED : vstate(a.w);
	if (rc)
		cv_warn("tenant %llu: %s failed: %s",
			(unsigned long long)a.w->tenant, op_name(a.type),
			strerror(-rc));
	else
		cv_info("tenant %llu: %s done: %llu bytes in %.3f ms",
			(unsigned long long)a.w->tenant, op_name(a.type),
			(unsigned long long)r.bytes, r.ns / 1e6);
	if (stop) {
		cv_info("tenant %llu: stopped; holding its region for a "
			"restore", (unsigned long long)a.w->tenant);
		/* No reply from here: the holder sends it. */
		pthread_mutex_lock(&send_lock);
		rc = become_holder(a.w, &r, a.fd);
		pthread_mutex_unlock(&send_lock);
		ctl_reply(a.w, a.type, rc, &r, sizeof(r), NULL, 0);
		cv_err("tenant %llu: cannot become a holder: %s; the vGPU "
		       "is lost", (unsigned long long)a.w->tenant,
		       strerror(-rc));
		_exit(3);
	}
	ctl_reply(a.w, a.type, rc, &r, sizeof(r), NULL, 0);
	pthread_mutex_lock(&op_lock);
	op_busy = false;
	pthread_mutex_unlock(&op_lock);
	return NULL;
}

static int op_check(struct wstate *w, uint16_t type, const void *p, int n,
		    int nfds, struct op_args *a)
{
	struct cv_ctl_tenant_op op;
	const char *why;

	if (type == CV_CTL_W_CHECKPOINT) {
		if (n != (int)sizeof(a->ck))
			return -EINVAL;
		memcpy(&a->ck, p, sizeof(a->ck));
		return cv_ctl_ckpt_check(&a->ck, nfds, true, &why);
	}
	if (type == CV_CTL_W_MIGRATE) {
		if (n != (int)sizeof(a->mig) || nfds != 1)
			return -EINVAL;
		memcpy(&a->mig, p, sizeof(a->mig));
		if ((a->mig.flags & ~(CV_MIGRATE_COPY | CV_MIGRATE_INLINE |
				      CV_MIGRATE_ZSTD)) ||
		    a->mig.fault > CV_MIGRATE_FAULT_MAX ||
		    a->mig.max_rounds > CV_MIGRATE_MAX_ROUNDS)
			return -EINVAL;
		/* Not while suspended or evicted by the operator. */
		if (vstate(w) != CV_STATE_RUNNING)
			return -EBUSY;
		return 0;
	}
	if (n != (int)sizeof(op) || nfds)
		return -EINVAL;
	memcpy(&op, p, sizeof(op));
	if (type == CV_CTL_W_RESUME && op.gpu != -1)
		return -EOPNOTSUPP; /* another GPU: not yet */
	return 0;
}

static void start_op(struct wstate *w, uint16_t type, const void *p, int n,
		     int *fds, int nfds)
{
	struct cv_ctl_op_r r = { 0 };
	struct op_args *a = calloc(1, sizeof(*a));
	pthread_attr_t at;
	pthread_t th;
	bool took = false;
	int rc = a ? 0 : -ENOMEM, i;

	if (!rc)
		rc = op_check(w, type, p, n, nfds, a);
	pthread_mutex_lock(&op_lock);
	if (!rc && op_busy)
		rc = -EBUSY;
	if (!rc)
		op_busy = took = true;
	pthread_mutex_unlock(&op_lock);
	if (!rc) {
		a->w = w;
		a->type = type;
		a->fd = nfds ? fds[0] : -1;
		a->dir_fd = nfds > 1 ? fds[1] : -1;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&th, &at, op_main, a))
			rc = -EAGAIN;
		pthread_attr_destroy(&at);
		if (!rc)
			return; /* the thread owns a and the fds */
	}
	free(a);
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	if (took) {
		pthread_mutex_lock(&op_lock);
		op_busy = false;
		pthread_mutex_unlock(&op_lock);
	}
	r.state = vstate(w);
	if (type == CV_CTL_W_MIGRATE)
		ctl_reply(w, type, rc, NULL, 0, NULL, 0);
	else
		ctl_reply(w, type, rc, &r, sizeof(r), NULL, 0);
}

static void send_stats(struct wstate *w)
{
	struct cv_vgpu *v = w->v;
	struct cv_ctl_w_stats_r st = { .state = vstate(w),
				       .quota = w->o->mem };

	if (v) {
		st.mem_used = v->used;
		st.host_pinned = v->heap_mapped;
		st.commands = v->ncmds;
		st.op_total = v->op_total;
		st.op_done = __atomic_load_n(&v->op_done, __ATOMIC_RELAXED);
	}
	ctl_reply(w, CV_CTL_W_STATS, 0, &st, sizeof(st), NULL, 0);
}

/* Serves one message; -errno when the connection is gone or broken. */
static int ctl_message(struct wstate *w)
{
	static uint8_t buf[CV_CTL_MAX];
	int fds[CV_CTL_MAX_FDS], nfds = CV_CTL_MAX_FDS, n, i;
	struct cv_ctl_hdr h;

	n = cv_ctl_recv(w->ctl, &h, buf, sizeof(buf), fds, &nfds, 0);
	if (n == -EAGAIN || n == -ETIMEDOUT)
		return 0;
	if (n < 0)
		return n;
	/* Only a checkpoint (its image) and a migration (its stream) come
	 * with an fd. */
	if (nfds && h.type != CV_CTL_W_CHECKPOINT &&
	    h.type != CV_CTL_W_MIGRATE) {
		for (i = 0; i < nfds; i++)
			close(fds[i]);
		nfds = 0;
	}
	switch (h.type) {
	case CV_CTL_W_STATS:
		send_stats(w);
		break;
	case CV_CTL_W_SUSPEND:
	case CV_CTL_W_RESUME:
	case CV_CTL_W_EVICT:
	case CV_CTL_W_CHECKPOINT:
	case CV_CTL_W_MIGRATE:
		if (w->v) {
			start_op(w, h.type, buf, n, fds, nfds);
			break;
		}
		for (i = 0; i < nfds; i++)
			close(fds[i]);
		if (h.type == CV_CTL_W_MIGRATE)
			ctl_reply(w, h.type, -EBUSY, NULL, 0, NULL, 0);
		else
			ctl_reply(w, h.type, -EBUSY, &(struct cv_ctl_op_r){
					  .state = CV_STATE_STOPPED },
				  sizeof(struct cv_ctl_op_r), NULL, 0);
		break;
	case CV_CTL_W_HANDOVER:
		if (w->v) {
			ctl_reply(w, h.type, -EBUSY, NULL, 0, NULL, 0);
			break;
		}
		fds[0] = w->memfd;
		fds[1] = w->link;
		ctl_reply(w, h.type, 0, NULL, 0, fds, 2);
		cv_info("tenant %llu: handed over to a restoring worker",
			(unsigned long long)w->tenant);
		break;
	case CV_CTL_W_STOP:
		ctl_reply(w, CV_CTL_W_STOP, 0, NULL, 0, NULL, 0);
		cv_info("tenant %llu: stopped by the daemon",
			(unsigned long long)w->tenant);
		_exit(0);
	default:
		cv_warn("tenant %llu: unknown control message %u",
			(unsigned long long)w->tenant, h.type);
		for (i = 0; i < nfds; i++)
			close(fds[i]);
	}
	return 0;
}

/* ---- a new daemon -------------------------------------------------- */

/* Introduces us to a daemon at our socket path; the new ctl fd or -1. */
static int hello(struct wstate *w)
{
	struct cv_ctl_hello m = { .tenant = w->tenant,
				  .worker_pid = (uint32_t)getpid(),
				  .guest_pid = w->o->guest_pid,
				  .gpu = w->o->gpu, .state = vstate(w),
				  .quota = w->o->mem };
	struct cv_ctl_hello_r r;
	struct cv_ctl_trust trust = { .named = false };
	struct cv_ctl_hdr h;
	static bool warned; /* we retry every 100 ms: say it once */
	int fd, n;

	/* The HELLO carries the tenant's token: only to a daemon of our uid
	 * or root's, in a directory nobody else can write. */
	fd = cv_ctl_connect_daemon(w->o->daemon_socket, &trust);
	if (fd == -EPERM && !warned) {
		warned = true;
		cv_warn("tenant %llu: %s", (unsigned long long)w->tenant,
			trust.why);
	}
	if (fd < 0)
		return -1;
	memcpy(m.token, w->o->token, sizeof(m.token));
	snprintf(m.name, sizeof(m.name), "%s", w->o->name);
	/* A holder of a move hands its image to the daemon that adopts it. */
	if (cv_ctl_send(fd, CV_CTL_W_HELLO, 0, &m, sizeof(m), &w->o->image_fd,
			w->o->image_fd >= 0) < 0)
		goto fail;
	n = cv_ctl_recv(fd, &h, &r, sizeof(r), NULL, NULL, HELLO_TIMEOUT_MS);
	if (n >= 0 && h.status == -EAGAIN) {
		/* Another worker of ours (a migration's source) is still
		 * there; asked again in 100 ms. */
		cv_dbg("tenant %llu: the daemon defers our HELLO",
		       (unsigned long long)w->tenant);
		goto fail;
	}
	if (n != (int)sizeof(r) || h.type != (CV_CTL_W_HELLO | CV_CTL_REPLY) ||
	    h.status) {
		cv_warn("tenant %llu: the daemon at %s did not adopt us (%s)",
			(unsigned long long)w->tenant, w->o->daemon_socket,
			n < 0 ? strerror(-n) : h.status ? strerror(-h.status) :
			"bad reply");
		goto fail;
	}
	if (r.tenant != w->tenant) {
		cv_info("tenant %llu: now tenant %llu",
			(unsigned long long)w->tenant,
			(unsigned long long)r.tenant);
		w->tenant = r.tenant;
		if (w->v)
			w->v->hdr->tenant_id = r.tenant;
	}
	cv_info("tenant %llu: adopted by the daemon at %s",
		(unsigned long long)w->tenant, w->o->daemon_socket);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
fail:
	close(fd);
	return -1;
}

/* Answers the guest's "are you alive and idle?" on the link. */
static void link_status(struct wstate *w, struct cv_link_status *st)
{
	if (w->v) {
		cv_vgpu_link_status(w->v, st);
		return;
	}
	/* A holder is busy: the guest waits, as for a suspended vGPU. */
	memset(st, 0, sizeof(*st));
	st->head = UINT64_MAX;
}

/* Looking for a new daemon (ctl_main): when to try its socket next. */
struct away {
	bool on;                /* the daemon is away */
	int watch;              /* inotify on the socket's directory, or -1 */
	uint64_t next_ns;       /* next try */
	unsigned every_ms;      /* the interval after a failed try */
};

/* An inotify fd watching the directory of the socket path for a new
 * socket, or -1 (then only the timer tries). */
static int watch_socket_dir(const char *sock)
{
	char dir[4096], *slash;
	int fd;

	if (!sock || snprintf(dir, sizeof(dir), "%s", sock) >=
			     (int)sizeof(dir) ||
	    !(slash = strrchr(dir, '/')))
		return -1;
	if (slash == dir)
		slash++;
	*slash = 0;
	fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd >= 0 && inotify_add_watch(fd, dir[0] ? dir : ".",
					 IN_CREATE | IN_MOVED_TO |
						 IN_ATTRIB) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static void away_start(struct wstate *w, struct away *a)
{
	a->on = true;
	a->every_ms = RECONNECT_MS;
	a->next_ns = cv_now_ns() + RECONNECT_MS * 1000000ull;
	if (a->watch < 0)
		a->watch = watch_socket_dir(w->o->daemon_socket);
}

/* poll()'s timeout: until the next try while away (none without a
 * socket to try), RECONNECT_MS while we wait for the link, else none. */
static int away_timeout(const struct wstate *w, const struct away *a,
			int link)
{
	uint64_t now = cv_now_ns();

	if (a->on && w->o->daemon_socket)
		return a->next_ns > now ?
			       (int)((a->next_ns - now + 999999) / 1000000) : 0;
	return link < 0 ? RECONNECT_MS : -1;
}

/* Tries the daemon's socket when it is time (or its directory changed);
 * adopted: a->on false and w->ctl the new connection. */
static void away_try(struct wstate *w, struct away *a, short watch_events)
{
	char ev[4096];

	if (!a->on || !w->o->daemon_socket)
		return;
	/* Without the guest's link (a migration's destination before its
	 * COMMIT) we are no tenant's worker yet: a new daemon hears of us
	 * only once we are, and we look again soon. */
	if (__atomic_load_n(&w->link, __ATOMIC_ACQUIRE) < 0) {
		a->next_ns = cv_now_ns() + RECONNECT_MS * 1000000ull;
		return;
	}
	if (watch_events) {
		while (read(a->watch, ev, sizeof(ev)) > 0)
			;
		a->every_ms = RECONNECT_MS;
	} else if (cv_now_ns() < a->next_ns) {
		return;
	}
	pthread_mutex_lock(&send_lock);
	w->ctl = hello(w);
	pthread_mutex_unlock(&send_lock);
	a->on = w->ctl < 0;
	a->next_ns = cv_now_ns() + a->every_ms * 1000000ull;
	a->every_ms = CV_MIN(a->every_ms * 2, RECONNECT_MAX_MS);
}

/*
 * The control thread: serves the daemon, and ends the process as soon as
 * the guest's end of the link closes. Exiting releases every GPU
 * resource of the tenant with the process. Without a daemon it sleeps
 * between tries of the socket (struct away): an idle holder whose daemon
 * is gone wakes only for those and for its guest's questions.
 */
static void *ctl_main(void *arg)
{
	struct wstate *w = arg;
	struct pollfd p[3] = { { w->link, POLLIN, 0 }, { w->ctl, POLLIN, 0 },
			       { -1, POLLIN, 0 } };
	struct away a = { .watch = -1 };
	struct cv_link_status st;
	char c[64];
	int n;

	if (w->ctl < 0)
		away_start(w, &a);
	for (;;) {
		/* A migration's destination gets the link at its COMMIT. */
		p[0].fd = __atomic_load_n(&w->link, __ATOMIC_ACQUIRE);
		p[1].fd = w->ctl;
		p[2].fd = a.on ? a.watch : -1;
		n = poll(p, 3, away_timeout(w, &a, p[0].fd));
		if (n < 0 && errno != EINTR)
			break;
		away_try(w, &a, n > 0 ? p[2].revents : 0);
		if (n <= 0)
			continue;
		if (p[0].revents) {
			/* Data is a status request; end of file, the guest's
			 * death. */
			if (read(w->link, c, sizeof(c)) <= 0)
				break;
			link_status(w, &st);
			if (write(w->link, &st, sizeof(st)) < 0)
				break;
		}
		if (p[1].revents && ((p[1].revents & POLLIN) &&
				     ctl_message(w) == 0))
			continue;
		if (p[1].revents) {
			/* The daemon went away; carry on, and look for the
			 * next one. */
			cv_info("tenant %llu: the daemon went away; serving "
				"on", (unsigned long long)w->tenant);
			pthread_mutex_lock(&send_lock);
			close(w->ctl);
			w->ctl = -1;
			pthread_mutex_unlock(&send_lock);
			away_start(w, &a);
		}
	}
	if (w->v)
		w->v->guest_gone = 1;
	cv_info("tenant %llu: guest gone, releasing the vGPU",
		(unsigned long long)w->tenant);
	_exit(0);
	return NULL;
}

static int probe(const struct wopts *o)
{
	int n;

	if (!strcmp(o->backend, "host"))
		n = cv_backend_host_probe(stdout);
	else if (!strcmp(o->backend, "cuda") && o->driver)
		n = cv_backend_cuda_probe(o->driver, stdout);
	else
		n = -EINVAL;
	fflush(stdout);
	return n > 0 ? 0 : 1;
}

static int hold(struct wopts *o)
{
	close_others(o);
	g_ws = (struct wstate){ .o = o, .ctl = o->ctl_fd, .link = o->link_fd,
				.memfd = o->region_fd, .tenant = o->tenant };
	if (g_ws.ctl >= 0)
		fcntl(g_ws.ctl, F_SETFL, O_NONBLOCK);
	cv_info("tenant %llu: holding the stopped vGPU (no GPU resources)",
		(unsigned long long)o->tenant);
	/* With a move's image, which then reaches a daemon that adopted us
	 * while the checkpoint ran (one that hears of us later gets it with
	 * W_HELLO). */
	if (o->ckpt_done)
		ctl_reply(&g_ws, CV_CTL_W_CHECKPOINT, 0,
			  &(struct cv_ctl_op_r){ .state = CV_STATE_STOPPED,
						 .bytes = o->ckpt_bytes,
						 .ns = o->ckpt_ns },
			  sizeof(struct cv_ctl_op_r), &o->image_fd,
			  o->image_fd >= 0);
	ctl_main(&g_ws);
	return 0;
}

/*
 * The region of a guest whose vGPU is being restored: its memfd, from the
 * daemon. Checked like anything else the guest could have touched: it
 * must be a sealed memfd that can never shrink under our mappings.
 */
/* Reserves the region's addresses (nothing mapped there yet). */
static int region_reserve(void)
{
	void *res = mmap((void *)CV_REGION_ADDR, CV_REGION_SPAN, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
				 MAP_FIXED_NOREPLACE, -1, 0);

	if (res == MAP_FAILED)
		return -errno;
	if (res != (void *)CV_REGION_ADDR) {
		munmap(res, CV_REGION_SPAN);
		return -EEXIST;
	}
	return 0;
}

/* Maps the guest's region memfd at its address; reserved: the addresses
 * are already ours (region_reserve). */
static int region_adopt(int fd, bool reserved, uint8_t **regionp)
{
	void *p;
	off_t size;
	int seals = fcntl(fd, F_GET_SEALS), rc;

	if (seals < 0 || !(seals & F_SEAL_SHRINK))
		return -EPERM;
	size = lseek(fd, 0, SEEK_END);
	if (size < (off_t)CV_HEAP_OFF)
		return -EINVAL;
	if (!reserved && (rc = region_reserve()))
		return rc;
	p = mmap((void *)CV_REGION_ADDR, CV_HEAP_OFF, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	*regionp = p;
	return 0;
}

/*
 * --spare: reserves the region's addresses, opens the backend into *b and
 * *dev, says W_SPARE and waits for W_ASSIGN, which fills in o as the
 * destination of a migration. Returns only when assigned; exits when the
 * daemon goes first or something fails (after saying why).
 */
static void spare_wait(struct wopts *o, const struct cv_backend_ops *ops,
		       struct cv_backend **b, struct cv_devinfo *dev)
{
	struct cv_backend_cfg cfg = { .gpu = o->gpu, .driver = o->driver };
	struct cv_ctl_ready r = { 0 };
	struct cv_ctl_w_assign a;
	struct cv_ctl_hdr h;
	int fd = -1, nfds = 1, n;

	n = region_reserve();
	if (n)
		snprintf(r.msg, sizeof(r.msg), "cannot reserve the region at "
			 "0x%llx: %s", (unsigned long long)CV_REGION_ADDR,
			 strerror(-n));
	else if ((n = ops->open(&cfg, dev, b)))
		snprintf(r.msg, sizeof(r.msg), "cannot open GPU %d on the %s "
			 "backend: CUresult %d", o->gpu, ops->name, n);
	r.status = n ? (n < 0 ? n : -EIO) : 0;
	if (n)
		cv_err("spare on GPU %d: %s", o->gpu, r.msg);
	if (cv_ctl_send(o->ctl_fd, CV_CTL_W_SPARE, 0, &r, sizeof(r), NULL,
			0) < 0 || n)
		_exit(1);
	/* The lanes are the tenant's business only once they move bytes. */
	if (cv_xfer_prepare_backend(ops, *b))
		cv_warn("spare on GPU %d: no transfer lanes yet", o->gpu);
	cv_info("spare on GPU %d: ready", o->gpu);
	n = cv_ctl_recv(o->ctl_fd, &h, &a, sizeof(a), &fd, &nfds, -1);
	if (n == -ECONNRESET || (n >= 0 && h.type == CV_CTL_W_STOP))
		_exit(0);
	if (n != (int)sizeof(a) || h.type != CV_CTL_W_ASSIGN || nfds != 1 ||
	    !a.mem || !memchr(a.name, 0, sizeof(a.name))) {
		cv_err("spare on GPU %d: expected W_ASSIGN and an fd, got %s "
		       "(type %u, %d bytes, %d fds)", o->gpu,
		       n < 0 ? strerror(-n) : "something else",
		       n < 0 ? 0u : h.type, n, n < 0 ? 0 : nfds);
		_exit(1);
	}
	o->tenant = a.tenant;
	o->mem = a.mem;
	memcpy(o->token, a.token, sizeof(o->token));
	o->have_token = true;
	o->guest_pid = a.guest_pid;
	memcpy(o->name_buf, a.name, sizeof(o->name_buf));
	o->name = o->name_buf;
	o->migrate_fd = fd;
	cv_info("tenant %llu: spare on GPU %d assigned, migrating in",
		(unsigned long long)o->tenant, o->gpu);
}

/* Sets the transfer lanes up while the tenant starts, so that its first
 * evict, checkpoint or migration registers nothing (worker/xfer.c). */
static void *lanes_main(void *arg)
{
	if (cv_xfer_prepare(arg))
		cv_warn("tenant %llu: no transfer lanes yet (they are set up "
			"at the first move)",
			(unsigned long long)((struct cv_vgpu *)arg)->tenant);
	return NULL;
}

/*
 * --serve-fd: a vGPU for a peer's worker on the authenticated connection
 * the daemon gave us (remote_serve.c). Opens the GPU, tells the peer,
 * serves until it goes. No region, no ring: the peer's worker has them.
 */
static int serve(struct wopts *o, const struct cv_backend_ops *ops)
{
	struct cv_backend_cfg cfg = { .gpu = o->gpu, .driver = o->driver,
				      .quota = o->mem };
	struct cv_backend *b = NULL;
	struct cv_devinfo dev = { 0 };
	uint8_t session[CV_PEER_KEY_LEN];
	bool have_session = false;
	char host[64] = "?";
	int rc;

	gethostname(host, sizeof(host) - 1);
	/* The session key, which the daemon put in a pipe for us. */
	if (o->session_fd >= 0) {
		have_session = read(o->session_fd, session, sizeof(session)) ==
			       (ssize_t)sizeof(session);
		close(o->session_fd);
	}
	rc = ops->open(&cfg, &dev, &b);
	if (rc)
		cv_err("tenant %llu of %s: cannot open GPU %d on the %s backend: "
		       "CUresult %d", (unsigned long long)o->tenant, o->name,
		       o->gpu, ops->name, rc);
	dev.total_mem = o->mem;
	rc = cv_remote_serve(o->serve_fd, ops, b, &dev, rc, o->mem,
			     o->remote_timeout_ms, o->name, host,
			     have_session ? session : NULL);
	cv_info("tenant %llu of %s: remote vGPU ended", (unsigned long long)o->tenant,
		o->name);
	_exit(rc ? 1 : 0);
}

int main(int argc, char **argv)
{
	const struct cv_backend_ops *ops;
	struct cv_backend_cfg cfg;
	struct cv_backend *b = NULL;
	struct cv_devinfo dev = { 0 };
	struct wopts o;
	uint8_t *region = NULL;
	uint64_t bytes = 0, t0 = cv_now_ns(), tcommit = 0;
	struct cv_mig_hello mh;
	struct cv_mig_io mio;
	bool restore, migrate_in;
	pthread_t th;
	char msg[256];
	int memfd = -1, slot_fd = -1, link = -1, rc;

	signal(SIGPIPE, SIG_IGN);
	/* Memory shared with another worker (a migration on the same GPU)
	 * is one fd per allocation: allow as many as the system does. */
	{
		struct rlimit rl;

		if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	if (parse_args(argc, argv, &o)) {
		usage(stderr);
		return 2;
	}
	if (o.token_fd >= 0 && read_token(&o)) {
		fprintf(stderr, "cuvisor-vgpu: --token-fd: not a 16-byte "
			"token\n");
		return 2;
	}
	cv_log_init("cuvisor-vgpu", CV_LOG_INFO, NULL);
	if (o.log && cv_log_init_spec("cuvisor-vgpu", o.log))
		cv_warn("bad --log '%s', logging at info to stderr", o.log);
	ops = pick_backend(o.backend);
	if (!ops) {
		fprintf(stderr, "cuvisor-vgpu: unknown backend '%s'\n", o.backend);
		return 2;
	}
	if (o.probe)
		return probe(&o);
	if (o.hold)
		return hold(&o);
	if (o.serve_fd >= 0)
		return serve(&o, ops);

	if (o.spare) {
		spare_wait(&o, ops, &b, &dev);
		t0 = cv_now_ns(); /* its time starts with its tenant */
	}
	restore = o.restore_fd >= 0;
	migrate_in = o.migrate_fd >= 0;
	if (migrate_in) {
		/* The source sends the guest's region first. */
		cv_mig_io_init(&mio, o.migrate_fd);
		rc = cv_migrate_accept(&mio, o.token, o.mem, &mh, &memfd,
				       &slot_fd, msg, sizeof(msg));
		if (rc)
			goto fail;
		rc = region_adopt(memfd, o.spare, &region);
		cv_info("tenant %llu: migrating in: the source's HELLO %.1f ms "
			"after the start", (unsigned long long)o.tenant,
			(cv_now_ns() - t0) / 1e6);
	} else if (restore) {
		memfd = o.region_fd;
		rc = region_adopt(memfd, false, &region);
	} else {
		rc = cv_region_create(&memfd, &region);
	}
	if (rc) {
		snprintf(msg, sizeof(msg), "cannot map the shared region at 0x%llx: %s",
			 (unsigned long long)CV_REGION_ADDR, strerror(-rc));
		goto fail;
	}
	cfg = (struct cv_backend_cfg){ .gpu = o.gpu, .driver = o.driver,
				       .quota = o.mem, .remote = o.remote,
				       .key = o.peer_key, .tenant = o.tenant,
				       .timeout_ms = o.remote_timeout_ms,
				       .compress = o.remote_compress };
	rc = b ? 0 : ops->open(&cfg, &dev, &b);
	if (rc) {
		if (o.remote)
			snprintf(msg, sizeof(msg), "cannot reach a vGPU on %s "
				 "gpu %d: CUresult %d (the log says why)",
				 o.remote, o.gpu, rc);
		else
			snprintf(msg, sizeof(msg), "cannot open GPU %d on the %s backend: CUresult %d",
				 o.gpu, ops->name, rc);
		goto fail;
	}
	/* A remote GPU's peer caps the quota at what it has. */
	if (o.remote && dev.total_mem && dev.total_mem < o.mem)
		o.mem = dev.total_mem;
	rc = cv_vgpu_init(&g_vgpu, ops, b, region, memfd, o.mem, o.tenant,
			  &dev, restore || migrate_in);
	if (rc) {
		snprintf(msg, sizeof(msg), "cannot set up the vGPU: %s", strerror(-rc));
		goto fail;
	}
	memcpy(g_vgpu.token, o.token, sizeof(g_vgpu.token));
	if (migrate_in)
		cv_info("tenant %llu: migrating in: vGPU set up %.1f ms after "
			"the start", (unsigned long long)o.tenant,
			(cv_now_ns() - t0) / 1e6);
	g_ws = (struct wstate){ .o = &o, .v = &g_vgpu, .ctl = o.ctl_fd,
				.link = o.link_fd, .memfd = memfd,
				.tenant = o.tenant };
	/* Serves the daemon (progress, W_STOP) while a restore runs. */
	if (pthread_create(&th, NULL, ctl_main, &g_ws)) {
		snprintf(msg, sizeof(msg), "cannot start the control thread");
		goto fail;
	}
	if (restore) {
		rc = cv_vgpu_restore(&g_vgpu, o.restore_fd, 0, &bytes, msg,
				     sizeof(msg));
		close(o.restore_fd);
		if (rc)
			goto fail;
		cv_vgpu_publish(&g_vgpu);
		cv_info("tenant %llu: restored %llu bytes of device memory in "
			"%.1f ms", (unsigned long long)o.tenant,
			(unsigned long long)bytes, (cv_now_ns() - t0) / 1e6);
	}
	if (migrate_in) {
		rc = cv_migrate_dest(&g_vgpu, &mio, &mh, slot_fd, &link,
				     &tcommit, msg, sizeof(msg));
		if (rc)
			goto fail;
		/* The source stopped consuming where the region says. */
		cv_ring_init(&g_vgpu.ring, g_vgpu.ctl, region + CV_RING_OFF,
			     CV_RING_SIZE);
		g_vgpu.done_head = g_vgpu.ring.head;
		cv_vgpu_publish(&g_vgpu);
		__atomic_store_n(&g_ws.link, link, __ATOMIC_RELEASE);
	}
	pthread_mutex_lock(&send_lock);
	send_ready(g_ws.ctl, 0, NULL, memfd);
	pthread_mutex_unlock(&send_lock);
	if (!pthread_create(&th, NULL, lanes_main, &g_vgpu))
		pthread_detach(th);
	if (ops->where)
		cv_info("tenant %llu: vGPU ready on %s (%s backend, quota %llu bytes)",
			(unsigned long long)o.tenant, ops->where(b), ops->name,
			(unsigned long long)o.mem);
	else
		cv_info("tenant %llu: vGPU ready on GPU %d (%s backend, quota %llu bytes)",
			(unsigned long long)o.tenant, o.gpu, ops->name,
			(unsigned long long)o.mem);
	if (migrate_in) {
		cv_migrate_running(&g_vgpu, &mio, cv_now_ns() - tcommit);
		cv_info("tenant %llu: migrated in; running %.3f ms after the "
			"commit", (unsigned long long)o.tenant,
			(cv_now_ns() - tcommit) / 1e6);
	}
	rc = cv_vgpu_run(&g_vgpu);
	/* Ring broken: the guest gets "vGPU lost" from its liveness checks. */
	_exit(rc ? 3 : 0);

fail:
	cv_err("tenant %llu: %s", (unsigned long long)o.tenant, msg);
	pthread_mutex_lock(&send_lock);
	send_ready(o.ctl_fd, rc < 0 && rc > -4096 ? rc : -EIO, msg, -1);
	/* Not exit(): no destructor may run under the other threads, and
	 * everything we made goes with the process. */
	_exit(1);
}

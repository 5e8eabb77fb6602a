/* SPDX-License-Identifier: MIT */
/*
 * cuvisor-vgpu: one tenant's vGPU. Started by cuvisord with
 *
 *   cuvisor-vgpu --tenant ID --gpu N --mem BYTES --backend cuda|host
 *                --driver PATH --ctl-fd 3 --link-fd 4 [--log SPEC]
 *
 * It creates the shared region (a sealed memfd mapped at CV_REGION_ADDR),
 * opens the backend, sends CV_CTL_W_READY with the memfd to the daemon,
 * then consumes the guest's ring. It exits when the guest's end of the
 * link socket closes (the guest died or detached), on CV_CTL_W_STOP, or
 * when the guest breaks the ring.
 *
 *   cuvisor-vgpu --probe --backend cuda|host [--driver PATH]
 * lists the devices, one line each: gpu INDEX TOTAL_BYTES NAME.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../core/ctl.h"
#include "../core/log.h"
#include "../core/util.h"
#include "backend.h"
#include "vgpu.h"

struct wopts {
	uint64_t tenant;
	int gpu;
	uint64_t mem;
	const char *backend;
	const char *driver;
	int ctl_fd;
	int link_fd;
	const char *log;
	int probe;
};

static struct cv_vgpu g_vgpu;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: cuvisor-vgpu --tenant ID --gpu N --mem BYTES --backend cuda|host\n"
		"                    [--driver PATH] --ctl-fd FD --link-fd FD [--log LEVEL[:PATH]]\n"
		"       cuvisor-vgpu --probe --backend cuda|host [--driver PATH]\n"
		"One tenant's vGPU worker; cuvisord starts it, people do not.\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 0);
	return errno || end == s || *end ? -EINVAL : 0;
}

static int parse_args(int argc, char **argv, struct wopts *o)
{
	static const struct option lo[] = {
		{ "tenant", 1, 0, 't' }, { "gpu", 1, 0, 'g' },
		{ "mem", 1, 0, 'm' },    { "backend", 1, 0, 'b' },
		{ "driver", 1, 0, 'd' }, { "ctl-fd", 1, 0, 'c' },
		{ "link-fd", 1, 0, 'l' }, { "log", 1, 0, 'L' },
		{ "probe", 0, 0, 'p' },  { "help", 0, 0, 'h' },
		{ 0, 0, 0, 0 }
	};
	uint64_t n;
	int c;

	*o = (struct wopts){ .gpu = 0, .backend = "cuda", .ctl_fd = -1,
			     .link_fd = -1 };
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 't': if (parse_u64(optarg, &o->tenant)) return -EINVAL; break;
		case 'g': if (parse_u64(optarg, &n) || n > 1024) return -EINVAL;
			  o->gpu = (int)n; break;
		case 'm': if (parse_u64(optarg, &o->mem)) return -EINVAL; break;
		case 'b': o->backend = optarg; break;
		case 'd': o->driver = optarg; break;
		case 'c': if (parse_u64(optarg, &n) || n > 65535) return -EINVAL;
			  o->ctl_fd = (int)n; break;
		case 'l': if (parse_u64(optarg, &n) || n > 65535) return -EINVAL;
			  o->link_fd = (int)n; break;
		case 'L': o->log = optarg; break;
		case 'p': o->probe = 1; break;
		case 'h': usage(stdout); exit(0);
		default: return -EINVAL;
		}
	}
	if (optind != argc)
		return -EINVAL;
	if (!o->probe && (o->ctl_fd < 0 || o->link_fd < 0 || !o->mem))
		return -EINVAL;
	return 0;
}

static const struct cv_backend_ops *pick_backend(const char *name)
{
	if (!strcmp(name, "cuda"))
		return &cv_backend_cuda;
	if (!strcmp(name, "host"))
		return &cv_backend_host;
	return NULL;
}

static void send_ready(int ctl, int status, const char *msg, int memfd)
{
	struct cv_ctl_ready r = { .status = status };

	snprintf(r.msg, sizeof(r.msg), "%s", msg ? msg : "");
	if (cv_ctl_send(ctl, CV_CTL_W_READY, 0, &r, sizeof(r),
			memfd >= 0 ? &memfd : NULL, memfd >= 0 ? 1 : 0) < 0)
		cv_warn("cannot tell the daemon about the vGPU: %s",
			strerror(errno));
}

/* One operation at a time; its thread replies when it is done. */
struct op_args {
	struct cv_vgpu *v;
	int ctl;
	uint16_t type;
};

static pthread_mutex_t op_lock = PTHREAD_MUTEX_INITIALIZER;
static bool op_busy;
static pthread_mutex_t send_lock = PTHREAD_MUTEX_INITIALIZER;

static void ctl_reply(int ctl, uint16_t type, int status, const void *p,
		      uint32_t len)
{
	pthread_mutex_lock(&send_lock);
	cv_ctl_send(ctl, type | CV_CTL_REPLY, status, p, len, NULL, 0);
	pthread_mutex_unlock(&send_lock);
}

static const char *op_name(uint16_t type)
{
	return type == CV_CTL_W_SUSPEND ? "suspend" :
	       type == CV_CTL_W_EVICT ? "evict" : "resume";
}

static void *op_main(void *arg)
{
	struct op_args a = *(struct op_args *)arg;
	struct cv_vgpu *v = a.v;
	struct cv_ctl_op_r r = { 0 };
	uint64_t t0 = cv_now_ns();
	int rc;

	free(arg);
	if (a.type == CV_CTL_W_RESUME) {
		rc = cv_vgpu_resume(v, &r.bytes);
	} else {
		rc = cv_vgpu_suspend(v);
		if (!rc && a.type == CV_CTL_W_EVICT)
			rc = cv_vgpu_evict(v, &r.bytes);
	}
	r.ns = cv_now_ns() - t0;
	r.state = __atomic_load_n(&v->ctl->state, __ATOMIC_ACQUIRE);
	if (rc)
		cv_warn("tenant %llu: %s failed: %s",
			(unsigned long long)v->hdr->tenant_id,
			op_name(a.type), strerror(-rc));
	else
		cv_info("tenant %llu: %s done: %llu bytes in %.3f ms",
			(unsigned long long)v->hdr->tenant_id, op_name(a.type),
			(unsigned long long)r.bytes, r.ns / 1e6);
	ctl_reply(a.ctl, a.type, rc, &r, sizeof(r));
	pthread_mutex_lock(&op_lock);
	op_busy = false;
	pthread_mutex_unlock(&op_lock);
	return NULL;
}

static void start_op(struct cv_vgpu *v, int ctl, uint16_t type,
		     const void *p, int n)
{
	struct cv_ctl_tenant_op op;
	struct cv_ctl_op_r r = { 0 };
	struct op_args *a;
	pthread_attr_t at;
	pthread_t th;
	bool took = false;
	int rc = 0;

	if (n != (int)sizeof(op))
		rc = -EINVAL;
	if (!rc) {
		memcpy(&op, p, sizeof(op));
		if (type == CV_CTL_W_RESUME && op.gpu != -1)
			rc = -EOPNOTSUPP; /* another GPU: not yet */
	}
	pthread_mutex_lock(&op_lock);
	if (!rc && op_busy)
		rc = -EBUSY;
	if (!rc)
		op_busy = took = true;
	pthread_mutex_unlock(&op_lock);
	a = rc ? NULL : malloc(sizeof(*a));
	if (!rc && !a)
		rc = -ENOMEM;
	if (!rc) {
		*a = (struct op_args){ v, ctl, type };
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&th, &at, op_main, a))
			rc = -EAGAIN;
		pthread_attr_destroy(&at);
	}
	if (rc) {
		free(a);
		if (took) {
			pthread_mutex_lock(&op_lock);
			op_busy = false;
			pthread_mutex_unlock(&op_lock);
		}
		r.state = __atomic_load_n(&v->ctl->state, __ATOMIC_ACQUIRE);
		ctl_reply(ctl, type, rc, &r, sizeof(r));
	}
}

static void ctl_message(struct cv_vgpu *v, int ctl)
{
	uint8_t buf[CV_CTL_MAX];
	struct cv_ctl_w_stats_r st;
	struct cv_ctl_hdr h;
	int nfds = 0, n;

	n = cv_ctl_recv(ctl, &h, buf, sizeof(buf), NULL, &nfds, 0);
	if (n < 0)
		return;
	switch (h.type) {
	case CV_CTL_W_STATS:
		st = (struct cv_ctl_w_stats_r){
			.mem_used = v->used, .quota = v->quota,
			.host_pinned = v->heap_mapped, .commands = v->ncmds,
			.state = __atomic_load_n(&v->ctl->state,
						 __ATOMIC_RELAXED),
		};
		ctl_reply(ctl, CV_CTL_W_STATS, 0, &st, sizeof(st));
		break;
	case CV_CTL_W_SUSPEND:
	case CV_CTL_W_RESUME:
	case CV_CTL_W_EVICT:
		start_op(v, ctl, h.type, buf, n);
		break;
	case CV_CTL_W_STOP:
		ctl_reply(ctl, CV_CTL_W_STOP, 0, NULL, 0);
		cv_info("tenant %llu: stopped by the daemon",
			(unsigned long long)v->hdr->tenant_id);
		_exit(0);
	default:
		cv_warn("tenant %llu: unknown control message %u",
			(unsigned long long)v->hdr->tenant_id, h.type);
	}
}

struct ctl_args {
	struct cv_vgpu *v;
	int ctl;
	int link;
};

/*
 * The control thread: serves the daemon, and ends the process as soon as
 * the guest's end of the link closes. Exiting releases every GPU
 * resource of the tenant with the process.
 */
static void *ctl_main(void *arg)
{
	struct ctl_args *a = arg;
	struct pollfd p[2] = { { a->link, POLLIN, 0 }, { a->ctl, POLLIN, 0 } };
	struct cv_link_status st;
	char c[64];

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents) {
			/* Data is a status request; end of file, the guest's
			 * death. */
			if (read(a->link, c, sizeof(c)) <= 0)
				break;
			cv_vgpu_link_status(a->v, &st);
			if (write(a->link, &st, sizeof(st)) < 0)
				break;
		}
		if (p[1].revents & POLLIN)
			ctl_message(a->v, a->ctl);
		else if (p[1].revents)
			p[1].fd = -1; /* the daemon went away; carry on */
	}
	a->v->guest_gone = 1;
	cv_info("tenant %llu: guest gone, releasing the vGPU",
		(unsigned long long)a->v->hdr->tenant_id);
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

int main(int argc, char **argv)
{
	const struct cv_backend_ops *ops;
	struct cv_backend_cfg cfg;
	struct cv_backend *b = NULL;
	struct ctl_args ca;
	struct wopts o;
	uint8_t *region = NULL;
	pthread_t th;
	char msg[200];
	int memfd = -1, rc;

	signal(SIGPIPE, SIG_IGN);
	if (parse_args(argc, argv, &o)) {
		usage(stderr);
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

	rc = cv_region_create(&memfd, &region);
	if (rc) {
		snprintf(msg, sizeof(msg), "cannot map the shared region at 0x%llx: %s",
			 (unsigned long long)CV_REGION_ADDR, strerror(-rc));
		goto fail;
	}
	cfg = (struct cv_backend_cfg){ .gpu = o.gpu, .driver = o.driver,
				       .quota = o.mem };
	rc = ops->open(&cfg, &((struct cv_region_hdr *)region)->dev, &b);
	if (rc) {
		snprintf(msg, sizeof(msg), "cannot open GPU %d on the %s backend: CUresult %d",
			 o.gpu, ops->name, rc);
		goto fail;
	}
	rc = cv_vgpu_init(&g_vgpu, ops, b, region, memfd, o.mem, o.tenant);
	if (rc) {
		snprintf(msg, sizeof(msg), "cannot set up the vGPU: %s", strerror(-rc));
		goto fail;
	}
	ca = (struct ctl_args){ &g_vgpu, o.ctl_fd, o.link_fd };
	if (pthread_create(&th, NULL, ctl_main, &ca)) {
		snprintf(msg, sizeof(msg), "cannot start the control thread");
		goto fail;
	}
	send_ready(o.ctl_fd, 0, NULL, memfd);
	cv_info("tenant %llu: vGPU ready on GPU %d (%s backend, quota %llu bytes)",
		(unsigned long long)o.tenant, o.gpu, ops->name,
		(unsigned long long)o.mem);
	rc = cv_vgpu_run(&g_vgpu);
	/* Ring broken: the guest gets "vGPU lost" from its liveness checks. */
	_exit(rc ? 3 : 0);

fail:
	cv_err("tenant %llu: %s", (unsigned long long)o.tenant, msg);
	send_ready(o.ctl_fd, -EIO, msg, -1);
	return 1;
}

/* SPDX-License-Identifier: MIT */
/*
 * A stand-in for cuvisor-vgpu that speaks the worker's side of the control
 * protocol, for the daemon's end-to-end tests (tests/test_daemon.c):
 *
 *   fake-vgpu --probe --backend B [--driver D]
 *	prints FAKE_VGPU_GPUS (default 1) lines "gpu I 17179869184 Fake GPU
 *	I"; FAKE_VGPU_PROBE=fail exits 1, =nocuda prints nothing for cuda.
 *   fake-vgpu --tenant ID --gpu N --mem BYTES --backend B [--driver D]
 *	   --ctl-fd 3 --link-fd 4 --token-fd 5 [--log SPEC]
 *	checks that the token came through fd 5 (16 bytes, then end of
 *	file; never --token on the command line, which anyone may read),
 *	that fds 3 and 4 are sockets and nothing above is open then,
 *	sends W_READY with a 1 MiB memfd whose start is a cv_region_hdr,
 *	answers W_STATS (mem_used = quota / 4, 0 while evicted, commands =
 *	42, the state) and W_STOP, W_SUSPEND, W_RESUME and W_EVICT like a
 *	worker would (evict and the resume after it move quota / 4 bytes at
 *	10 GB/s; the wrong state gets -EBUSY; a payload that is not 16 bytes
 *	-EINVAL, gpu other than -1 -EOPNOTSUPP; every error reply carries
 *	cv_ctl_op_r with the state), echoes link messages back as replies,
 *	exits on HUP of either.
 *
 * FAKE_VGPU_MODES="ID:MODE,..." changes tenant ID's behaviour: fail (READY
 * with -ENOSPC), crash (exit 3 before READY), hang (never READY), nostop
 * (ignores W_STOP), nostats (ignores W_STATS), garbage (a malformed
 * message instead of READY); and for the operations: noop (never answers
 * them), opdie (exits 3 on one), opfail (answers -ENOMEM, state kept),
 * opgarbage (answers with a 5-byte payload), slowop (answers after
 * 2 s, still answering W_STATS meanwhile), lateop (after 3 s; both long
 * enough for a loaded machine to do what the test does meanwhile).
 *
 *   fake-vgpu --spare --gpu N --backend B ... --ctl-fd 3
 *	a spare that never gets ready: with FAKE_VGPU_SPARE=hold it waits
 *	until the daemon's end of fd 3 closes (or it is killed), else it
 *	exits 2 at once.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/ctl.h"
#include "../core/proto.h"
#include "../core/util.h"

struct args {
	bool probe, spare;
	const char *backend, *tenant, *gpu, *mem, *ctl, *link, *tokfd;
	bool token_argv;        /* --token HEX: the secret for all to see */
};

static int probe(const char *backend)
{
	const char *mode = getenv("FAKE_VGPU_PROBE");
	const char *n = getenv("FAKE_VGPU_GPUS");
	int i, count = n ? atoi(n) : 1;

	if (mode && !strcmp(mode, "fail"))
		return 1;
	if (mode && !strcmp(mode, "nocuda") && !strcmp(backend, "cuda"))
		return 0;
	for (i = 0; i < count; i++)
		printf("gpu %d 17179869184 Fake GPU %d\n", i, i);
	return 0;
}

/* This tenant's mode from FAKE_VGPU_MODES, "" if none. */
static const char *mode_of(const char *tenant, char *buf, size_t size)
{
	const char *m = getenv("FAKE_VGPU_MODES"), *p;
	size_t n = strlen(tenant);

	buf[0] = 0;
	for (p = m; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
		if (!strncmp(p, tenant, n) && p[n] == ':') {
			snprintf(buf, size, "%.*s", (int)strcspn(p + n + 1, ","),
				 p + n + 1);
			break;
		}
	}
	return buf;
}

static int ready(int ctl, uint64_t id, uint64_t quota, const char *why)
{
	struct cv_ctl_ready r = { 0 };
	struct cv_region_hdr h = { 0 };
	int fd, e;

	if (why) {
		r.status = -ENOSPC;
		snprintf(r.msg, sizeof(r.msg), "%s", why);
		return cv_ctl_send(ctl, CV_CTL_W_READY, 0, &r, sizeof(r), NULL,
				   0);
	}
	fd = memfd_create("cuvisor-region", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, 1 << 20) < 0)
		return -errno;
	h.magic = CV_PROTO_MAGIC;
	h.version = CV_PROTO_VERSION;
	h.tenant_id = id;
	h.quota = quota;
	h.worker_pid = (uint32_t)getpid();
	if (pwrite(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
		return -EIO;
	e = cv_ctl_send(ctl, CV_CTL_W_READY, 0, &r, sizeof(r), &fd, 1);
	close(fd);
	return e;
}

/* Returns a reason when the fd layout is not what the daemon promised. */
/* The token: through --token-fd 5, 16 bytes then EOF; closes fd 5. */
static const char *check_token(const struct args *a)
{
	uint8_t tok[17];
	ssize_t n;

	if (a->token_argv)
		return "the token is on the command line (--token)";
	if (!a->tokfd || strcmp(a->tokfd, "5"))
		return "no --token-fd 5";
	n = read(5, tok, sizeof(tok));
	if (n == 16)
		n = read(5, tok, 1) == 0 ? 16 : -1;
	close(5);
	return n == 16 ? NULL : "--token-fd 5 holds no 16-byte token";
}

static const char *check_fds(void)
{
	static char why[64];
	struct stat st;
	int fd;

	if (fstat(3, &st) < 0 || !S_ISSOCK(st.st_mode) ||
	    fstat(4, &st) < 0 || !S_ISSOCK(st.st_mode))
		return "fds 3 and 4 are not sockets";
	for (fd = 5; fd < 1024; fd++) {
		if (fstat(fd, &st) == 0) {
			snprintf(why, sizeof(why), "fd %d leaked into us", fd);
			return why;
		}
	}
	return NULL;
}

/* The fake vGPU's state and its one operation in progress. */
struct fake {
	const char *mode;
	uint64_t quota;
	uint32_t state;
	uint16_t op_type;           /* W_* being "done", 0: none */
	int op_status;
	struct cv_ctl_op_r op_r;
	int op_delay_ms;            /* until the reply goes out */
};

static bool is(const struct fake *f, const char *mode)
{
	return !strcmp(f->mode, mode);
}

/* Does an operation (instantly); fills op_status and op_r. */
static void do_op(struct fake *f, uint16_t type, const void *p, int n)
{
	struct cv_ctl_tenant_op op;
	uint64_t moved = f->quota / 4;
	bool ok;

	f->op_type = type;
	f->op_status = 0;
	f->op_r = (struct cv_ctl_op_r){ .ns = 400000 };
	memcpy(&op, p, n == (int)sizeof(op) ? sizeof(op) : 0);
	if (n != (int)sizeof(op))
		f->op_status = -EINVAL;
	else if (op.gpu != -1)
		f->op_status = -EOPNOTSUPP;
	ok = type == CV_CTL_W_SUSPEND ? f->state == CV_STATE_RUNNING :
	     type == CV_CTL_W_EVICT ? f->state == CV_STATE_RUNNING ||
				      f->state == CV_STATE_SUSPENDED :
				      f->state == CV_STATE_SUSPENDED ||
				      f->state == CV_STATE_EVICTED;
	if (!f->op_status && !ok)
		f->op_status = -EBUSY;
	if (!f->op_status && is(f, "opfail"))
		f->op_status = -ENOMEM;
	if (!f->op_status) {
		/* 10 GB/s: 10 bytes per ns */
		if (type == CV_CTL_W_EVICT ||
		    (type == CV_CTL_W_RESUME && f->state == CV_STATE_EVICTED)) {
			f->op_r.bytes = moved;
			f->op_r.ns = moved / 10 + 1;
		}
		f->state = type == CV_CTL_W_SUSPEND ? CV_STATE_SUSPENDED :
			   type == CV_CTL_W_EVICT ? CV_STATE_EVICTED :
			   CV_STATE_RUNNING;
	}
	f->op_r.state = f->state;
	f->op_delay_ms = is(f, "slowop") ? 2000 : is(f, "lateop") ? 3000 : 0;
}

static void op_reply(struct fake *f, int ctl)
{
	if (is(f, "opgarbage"))
		cv_ctl_send(ctl, f->op_type | CV_CTL_REPLY, 0, "junk!", 5,
			    NULL, 0);
	else
		cv_ctl_send(ctl, f->op_type | CV_CTL_REPLY, f->op_status,
			    &f->op_r, sizeof(f->op_r), NULL, 0);
	f->op_type = 0;
}

/* One message from the daemon; 1 when we are to exit. */
static int ctl_input(struct fake *f, int ctl, const struct cv_ctl_hdr *h,
		     const void *buf, int n)
{
	struct cv_ctl_w_stats_r s = {
		.mem_used = f->state == CV_STATE_EVICTED ? 0 : f->quota / 4,
		.quota = f->quota, .commands = 42, .state = f->state,
	};

	switch (h->type) {
	case CV_CTL_W_STATS:
		if (!is(f, "nostats"))
			cv_ctl_send(ctl, CV_CTL_W_STATS | CV_CTL_REPLY, 0, &s,
				    sizeof(s), NULL, 0);
		return 0;
	case CV_CTL_W_STOP:
		if (is(f, "nostop"))
			return 0;
		cv_ctl_send(ctl, CV_CTL_W_STOP | CV_CTL_REPLY, 0, NULL, 0,
			    NULL, 0);
		return 1;
	case CV_CTL_W_SUSPEND:
	case CV_CTL_W_RESUME:
	case CV_CTL_W_EVICT:
		if (is(f, "opdie"))
			exit(3);
		if (is(f, "noop") || f->op_type)
			return 0;
		do_op(f, h->type, buf, n);
		if (!f->op_delay_ms)
			op_reply(f, ctl);
		return 0;
	case CV_CTL_W_CHECKPOINT: {
		/* Not something a fake can do: refused, state kept. */
		struct cv_ctl_op_r r = { .state = f->state };

		cv_ctl_send(ctl, CV_CTL_W_CHECKPOINT | CV_CTL_REPLY,
			    -EOPNOTSUPP, &r, sizeof(r), NULL, 0);
		return 0;
	}
	default:
		return 0;
	}
}

static int serve(int ctl, int link, uint64_t quota, const char *mode)
{
	struct pollfd p[2] = { { .fd = ctl, .events = POLLIN },
			       { .fd = link, .events = POLLIN } };
	struct fake f = { .mode = mode, .quota = quota,
			  .state = CV_STATE_RUNNING };
	struct cv_ctl_hdr h;
	char buf[4096];
	uint64_t due = 0, now;
	int n, fds[4], nfds, i;

	for (;;) {
		now = cv_now_ns();
		if (f.op_type && f.op_delay_ms && !due)
			due = now + (uint64_t)f.op_delay_ms * 1000000ull;
		if (due && now >= due) {
			op_reply(&f, ctl);
			due = 0;
		}
		if (poll(p, 2, due ? (int)((due - now) / 1000000 + 1) : -1) < 0)
			continue;
		if (p[0].revents) {
			nfds = 4;
			n = cv_ctl_recv(ctl, &h, buf, sizeof(buf), fds, &nfds,
					0);
			for (i = 0; n >= 0 && i < nfds; i++)
				close(fds[i]);
			if (n == -ETIMEDOUT || n == -EAGAIN)
				continue;
			/* Like the real worker: a daemon's going does not
			 * end the tenant; its guest's does. */
			if (n < 0) {
				p[0].fd = -1;
				continue;
			}
			if (ctl_input(&f, ctl, &h, buf, n))
				return 0;
		}
		if (p[1].revents) {
			n = cv_ctl_recv(link, &h, buf, sizeof(buf), NULL, NULL,
					0);
			if (n < 0)
				return 0;
			cv_ctl_send(link, h.type | CV_CTL_REPLY, 0, buf,
				    (uint32_t)n, NULL, 0);
		}
	}
}

/* A spare that never says W_SPARE (see the top of the file). */
static int spare_hold(const char *ctl)
{
	const char *mode = getenv("FAKE_VGPU_SPARE");
	struct pollfd p = { .fd = 3, .events = POLLIN };

	if (!mode || strcmp(mode, "hold") || !ctl || strcmp(ctl, "3"))
		return 2;
	while (poll(&p, 1, -1) < 0 && errno == EINTR)
		;
	return 0;
}

static int parse(struct args *a, int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";

		if (!strcmp(k, "--probe") || !strcmp(k, "--spare")) {
			a->probe |= !strcmp(k, "--probe");
			a->spare |= !strcmp(k, "--spare");
			continue;
		}
		i++;
		if (!strcmp(k, "--backend"))
			a->backend = v;
		else if (!strcmp(k, "--tenant"))
			a->tenant = v;
		else if (!strcmp(k, "--gpu"))
			a->gpu = v;
		else if (!strcmp(k, "--mem"))
			a->mem = v;
		else if (!strcmp(k, "--ctl-fd"))
			a->ctl = v;
		else if (!strcmp(k, "--link-fd"))
			a->link = v;
		else if (!strcmp(k, "--token-fd"))
			a->tokfd = v;
		else if (!strcmp(k, "--token"))
			a->token_argv = true;
		else if (strcmp(k, "--driver") && strcmp(k, "--log") &&
			 strcmp(k, "--guest-pid") &&
			 strcmp(k, "--name") && strcmp(k, "--daemon-socket"))
			return -1;
	}
	return a->backend ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct args a = { 0 };
	const char *why;
	char mode[32];
	uint64_t quota;

	if (parse(&a, argc, argv) < 0) {
		fprintf(stderr, "fake-vgpu: bad arguments\n");
		return 2;
	}
	if (a.probe)
		return probe(a.backend);
	if (a.spare)
		return spare_hold(a.ctl);
	if (!a.tenant || !a.gpu || !a.mem || !a.ctl || !a.link ||
	    strcmp(a.ctl, "3") || strcmp(a.link, "4")) {
		fprintf(stderr, "fake-vgpu: missing or wrong arguments\n");
		return 2;
	}
	quota = strtoull(a.mem, NULL, 10);
	mode_of(a.tenant, mode, sizeof(mode));
	why = check_token(&a);
	if (!why)
		why = check_fds();
	if (!strcmp(mode, "crash"))
		return 3;
	if (!strcmp(mode, "hang"))
		for (;;)
			pause();
	if (!strcmp(mode, "garbage"))
		return write(3, "garbage!", 8) == 8 ? serve(3, 4, quota, "")
						    : 1;
	if (!strcmp(mode, "fail"))
		why = "fake failure for the test";
	if (ready(3, strtoull(a.tenant, NULL, 10), quota, why) < 0)
		return 1;
	return why ? 1 : serve(3, 4, quota, mode);
}

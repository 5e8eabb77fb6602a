/* SPDX-License-Identifier: MIT */
/*
 * Suspend, resume and evict: the operator's SUSPEND, RESUME and EVICT,
 * forwarded to the tenant's worker as W_SUSPEND, W_RESUME and W_EVICT.
 *
 * The daemon never waits for the worker: the request is sent, the client
 * is parked (its socket is not read meanwhile, like a PS in progress) and
 * answered when the worker's reply arrives (cv_d_op_reply), when the
 * client's time is up (cv_d_op_timeouts: -ETIMEDOUT), or when the worker
 * goes away (cv_d_op_abort: -EIO). One operation per tenant at a time;
 * one whose client had its timeout stays pending until the worker answers
 * it or goes, since the worker answers every request once and a second
 * request could not be told from the first.
 *
 * Only our own uid and root may do these (like SHUTDOWN). The daemon
 * refuses what the tenant's state rules out before asking the worker
 * (-EBUSY), using the state of the last reply: only operations change it
 * between RUNNING, SUSPENDED and EVICTED, and they all pass through here.
 */
#include "cuvisord.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../core/log.h"

static const char *state_name(uint32_t s)
{
	static const char *const names[] = { "starting", "running",
					     "suspended", "evicted", "lost",
					     "stopped" };

	return s < CV_ARRAY_SIZE(names) ? names[s] : "unknown";
}

/* Whether the tenant's state allows the operation; -EBUSY if not. */
static int state_allows(const struct cv_d_tenant *t, uint16_t type,
			char *why, size_t size)
{
	uint32_t s = t->state;
	bool ok;

	if (!t->ready || t->ctl_fd < 0 || s == CV_STATE_STARTING ||
	    s == CV_STATE_LOST) {
		snprintf(why, size, "the tenant is %s", t->ready ?
			 "lost" : "still starting");
		return -EBUSY;
	}
	if (type == CV_CTL_SUSPEND)
		ok = s == CV_STATE_RUNNING;
	else if (type == CV_CTL_EVICT)
		ok = s == CV_STATE_RUNNING || s == CV_STATE_SUSPENDED;
	else if (type == CV_CTL_CHECKPOINT)
		ok = s == CV_STATE_RUNNING || s == CV_STATE_SUSPENDED ||
		     s == CV_STATE_EVICTED;
	else
		ok = s == CV_STATE_SUSPENDED || s == CV_STATE_EVICTED;
	if (!ok) {
		snprintf(why, size, "the tenant is %s", state_name(s));
		return -EBUSY;
	}
	return 0;
}

/* RESUME's GPU: -1 or an index of ours; *slot is its d->gpus index,
 * or -1 for the tenant's own GPU (no move). */
static int gpu_allows(const struct cv_d *d, const struct cv_d_tenant *t,
		      int32_t gpu, int *slot, char *why, size_t size)
{
	*slot = -1;
	if (gpu == -1 || gpu == d->gpus[t->gpu].index)
		return 0;
	*slot = cv_d_gpu_slot(d, gpu);
	if (*slot < 0) {
		snprintf(why, size, "there is no gpu %d", (int)gpu);
		return -ENODEV;
	}
	return 0;
}

/* Everything that may refuse the request before the worker hears of it
 * (op is NULL for CHECKPOINT, whose fields msg.c checked). */
static int admit(struct cv_d *d, uint16_t type, uint64_t tenant,
		 const struct cv_ctl_tenant_op *op, struct cv_d_tenant **out,
		 int *slot, char *why, size_t size)
{
	struct cv_d_tenant *t;
	const char *w;
	int r;

	if (d->stopping) {
		snprintf(why, size, "the daemon is stopping");
		return -ESHUTDOWN;
	}
	r = op ? cv_d_op_check(type, op, &w) : 0;
	if (r < 0) {
		snprintf(why, size, "%s", w);
		return r;
	}
	t = cv_d_tenant_by_id(d, tenant);
	if (!t) {
		snprintf(why, size, "no such tenant");
		return -ENOENT;
	}
	if (t->op) {
		snprintf(why, size, "its %s is still in progress",
			 cv_d_op_name(t->op));
		return -EBUSY;
	}
	if (t->mig_pending) {
		snprintf(why, size, "it is being migrated");
		return -EBUSY;
	}
	/* A stopped tenant whose image we hold (a move that failed at the
	 * restore, or whose daemon died) may be resumed: the restore is
	 * tried again. One whose image is a file is restored from it. */
	if (type == CV_CTL_RESUME && t->state == CV_STATE_STOPPED &&
	    t->ctl_fd >= 0 && t->restore_client) {
		snprintf(why, size, "a restore of it is in progress");
		r = -EBUSY;
	} else if (type == CV_CTL_RESUME && t->state == CV_STATE_STOPPED &&
		   t->move_fd >= 0 && t->ctl_fd >= 0)
		r = 0;
	else if (type == CV_CTL_RESUME && t->state == CV_STATE_STOPPED) {
		snprintf(why, size, "it is stopped and its image is a file: "
			 "cuvisor restore FILE");
		r = -ENODATA;
	} else
		r = state_allows(t, type, why, size);
	if (r == 0 && type == CV_CTL_RESUME && op)
		r = gpu_allows(d, t, op->gpu, slot, why, size);
	if (r == 0)
		*out = t;
	return r;
}

/* Sends the worker its message; the operation is pending on success. */
static int forward(struct cv_d *d, struct cv_d_tenant *t, uint16_t type,
		   const void *p, uint32_t len, const int *fds, int nfds,
		   char *why, size_t size)
{
	uint16_t wtype = cv_d_op_to_worker(type);
	uint64_t now = cv_now_ns(), s = d->cfg.op_timeout_s;
	int r;

	r = cv_ctl_send(t->ctl_fd, wtype, 0, p, len, fds, nfds);
	if (r == -EAGAIN) {
		snprintf(why, size, "the worker does not read its control "
			 "socket");
		return -EAGAIN;
	}
	if (r < 0) {
		snprintf(why, size, "cannot reach worker pid %d: %s",
			 (int)t->worker_pid, strerror(-r));
		cv_d_tenant_close_ctl(d, t);
		t->state = CV_STATE_LOST;
		return -EIO;
	}
	if (wtype == CV_CTL_W_EVICT || wtype == CV_CTL_W_CHECKPOINT)
		s *= CV_D_EVICT_FACTOR;
	t->op = wtype;
	t->op_start = now;
	t->op_deadline = now + s * 1000000000ull;
	return 0;
}

/* Any allowed user can ask as often as they like. */
CV_RATELIMIT_STD(rl_op_perm, "operations refused to users not allowed them");

/* Admits and forwards SUSPEND, RESUME, EVICT (op) or CHECKPOINT (ck,
 * with its nfds fds, which stay the caller's). */
static void request(struct cv_d *d, struct cv_d_client *c, uint16_t type,
		    const struct cv_ctl_tenant_op *op,
		    const struct cv_ctl_ckpt *ck, const int *fds, int nfds)
{
	uint64_t tenant = op ? op->tenant : ck->tenant;
	struct cv_ctl_tenant_op w;
	struct cv_d_tenant *t = NULL;
	char why[160] = "";
	int r, slot = -1;

	if (!cv_d_privileged(c->uid)) {
		cv_warn_rl(&rl_op_perm, "%s of tenant %llu from pid %d uid "
			   "%u refused: only uid %u or root may suspend, "
			   "resume, evict or checkpoint tenants",
			   cv_d_op_name(type), (unsigned long long)tenant,
			   (int)c->pid, (unsigned)c->uid, (unsigned)geteuid());
		cv_d_reply(d, c, type, -EPERM, NULL, 0);
		return;
	}
	r = admit(d, type, tenant, op, &t, &slot, why, sizeof(why));
	if (r == 0 && type == CV_CTL_RESUME &&
	    (slot >= 0 || t->state == CV_STATE_STOPPED)) {
		r = cv_d_move(d, t, c, slot >= 0 ? slot : t->gpu, why,
			      sizeof(why));
		if (r == 0)
			return;
	} else if (r == 0 && op) {
		/* The tenant's own GPU and -1 mean the same: where it is. */
		w = *op;
		w.gpu = -1;
		r = forward(d, t, type, &w, sizeof(w), NULL, 0, why,
			    sizeof(why));
	} else if (r == 0) {
		r = forward(d, t, type, ck, sizeof(*ck), fds, nfds, why,
			    sizeof(why));
	}
	if (r < 0) {
		cv_info("tenant %llu: %s from pid %d refused: %s (%s)",
			(unsigned long long)tenant, cv_d_op_name(type),
			(int)c->pid, why, strerror(-r));
		cv_d_reply(d, c, type, r, NULL, 0);
		return;
	}
	t->op_client = c;
	c->op_tenant = t;
	cv_info("tenant %llu: %s asked by pid %d uid %u",
		(unsigned long long)t->id, cv_d_op_name(type), (int)c->pid,
		(unsigned)c->uid);
}

void cv_d_op_request(struct cv_d *d, struct cv_d_client *c, uint16_t type,
		     const struct cv_ctl_tenant_op *op)
{
	request(d, c, type, op, NULL, NULL, 0);
}

void cv_d_checkpoint_request(struct cv_d *d, struct cv_d_client *c,
			     const struct cv_ctl_ckpt *ck, const int *fds,
			     int nfds)
{
	request(d, c, CV_CTL_CHECKPOINT, NULL, ck, fds, nfds);
}

/* The operation is over: nobody waits any more. */
static void op_clear(struct cv_d_tenant *t)
{
	if (t->op_client)
		t->op_client->op_tenant = NULL;
	t->op_client = NULL;
	t->op = 0;
	t->op_deadline = 0;
}

static uint32_t expected_state(uint16_t wtype)
{
	return wtype == CV_CTL_W_SUSPEND ? CV_STATE_SUSPENDED :
	       wtype == CV_CTL_W_EVICT ? CV_STATE_EVICTED : CV_STATE_RUNNING;
}

/* What a tenant may be in after the operation succeeded. */
static bool state_expected(uint16_t wtype, uint32_t st)
{
	/* A checkpoint leaves the tenant as it was, or stopped. */
	if (wtype == CV_CTL_W_CHECKPOINT)
		return st == CV_STATE_RUNNING || st == CV_STATE_SUSPENDED ||
		       st == CV_STATE_EVICTED || st == CV_STATE_STOPPED;
	return st == expected_state(wtype);
}

static void log_result(const struct cv_d_tenant *t, uint16_t wtype,
		       const struct cv_d_msg *m, bool has)
{
	const char *late = t->op_client ? "" : " (nobody waits for it)";
	char what[128], sz[32], ms[32];

	if (m->status == 0) {
		cv_info("tenant %llu: %s%s", (unsigned long long)t->id,
			cv_d_op_describe(what, sizeof(what), wtype, &m->u.op_r),
			late);
		if (!state_expected(wtype, m->u.op_r.state))
			cv_warn("tenant %llu: the worker says %s after %s",
				(unsigned long long)t->id,
				state_name(m->u.op_r.state),
				cv_d_op_name(wtype));
		return;
	}
	if (has)
		cv_warn("tenant %llu: %s failed after %s: %s; state %s, %s "
			"moved%s", (unsigned long long)t->id,
			cv_d_op_name(wtype),
			cv_d_fmt_ms(m->u.op_r.ns, ms, sizeof(ms)),
			strerror(-m->status), state_name(m->u.op_r.state),
			cv_d_fmt_bytes(m->u.op_r.bytes, sz, sizeof(sz)), late);
	else
		cv_warn("tenant %llu: %s failed: %s%s",
			(unsigned long long)t->id, cv_d_op_name(wtype),
			strerror(-m->status), late);
}

/* An adopted worker may also answer an operation that the daemon before
 * us asked for; its state is taken from the answer. */
int cv_d_op_reply(struct cv_d *d, struct cv_d_tenant *t,
		  const struct cv_d_msg *m)
{
	uint16_t wtype = m->type & ~CV_CTL_REPLY;
	bool has = m->len == sizeof(m->u.op_r);
	struct cv_d_client *c = t->op_client;

	if (!t->op && t->adopted) {
		/* Asked of the daemon before us, which died before the
		 * answer: the worker finished it for nobody. */
		if (has)
			t->state = m->u.op_r.state;
		log_result(t, wtype, m, has);
		return 0;
	}
	if (!t->op || t->op != wtype)
		return -EPROTO;
	if (wtype == CV_CTL_W_CHECKPOINT && t->moving) {
		/* The first half of a move to another GPU. */
		if (has)
			t->state = m->u.op_r.state;
		op_clear(t);
		cv_d_move_checkpointed(d, t, c, m->status);
		return 0;
	}
	if (has)
		t->state = m->u.op_r.state;
	log_result(t, wtype, m, has);
	op_clear(t);
	if (c)
		cv_d_reply(d, c, cv_d_op_from_worker(wtype), m->status,
			   has ? &m->u.op_r : NULL,
			   has ? (uint32_t)sizeof(m->u.op_r) : 0);
	return 0;
}

void cv_d_op_abort(struct cv_d *d, struct cv_d_tenant *t, int status)
{
	struct cv_d_client *c = t->op_client;
	uint16_t type = cv_d_op_from_worker(t->op);

	if (!t->op)
		return;
	cv_warn("tenant %llu: worker pid %d went away during %s",
		(unsigned long long)t->id, (int)t->worker_pid,
		cv_d_op_name(t->op));
	op_clear(t);
	if (c)
		cv_d_reply(d, c, type, status, NULL, 0);
}

void cv_d_op_timeouts(struct cv_d *d, uint64_t now)
{
	struct cv_d_client *c;
	struct cv_d_tenant *t;
	int i;

	for (i = 0; i < d->ntenants; i++) {
		t = d->tenants[i];
		if (t->dead || !t->op || !t->op_deadline ||
		    now < t->op_deadline)
			continue;
		cv_warn("tenant %llu: worker pid %d did not %s within %llu s; "
			"it stays busy until it answers",
			(unsigned long long)t->id, (int)t->worker_pid,
			cv_d_op_name(t->op),
			(unsigned long long)((t->op_deadline - t->op_start) /
					     1000000000ull));
		t->op_deadline = 0;
		c = t->op_client;
		if (!c)
			continue;
		c->op_tenant = NULL;
		t->op_client = NULL;
		cv_d_reply(d, c, cv_d_op_from_worker(t->op), -ETIMEDOUT,
			   NULL, 0);
	}
}

uint64_t cv_d_op_next_deadline(const struct cv_d *d)
{
	uint64_t best = 0;
	int i;

	for (i = 0; i < d->ntenants; i++) {
		const struct cv_d_tenant *t = d->tenants[i];

		if (!t->dead && t->op && t->op_deadline &&
		    (!best || t->op_deadline < best))
			best = t->op_deadline;
	}
	return best;
}

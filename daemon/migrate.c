/* SPDX-License-Identifier: MIT */
/*
 * Live migration, the daemon's part (docs/migration.md): it starts the
 * destination worker on the GPU asked for, gives the two workers the
 * ends of one stream socket, and swaps the tenant's records when the
 * migration committed. The workers do the rest between themselves; the
 * source worker is the authority on how it ended.
 *
 * The client hears when both the source's answer (W_MIGRATE reply) and
 * the destination's W_READY are in, or at the first failure. Until the
 * source answers, the destination is a hidden record of the same tenant,
 * and the tenant takes no other operation.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/util.h"
#include "cuvisord.h"

/* Any allowed user can ask as often as they like. */
CV_RATELIMIT_STD(rl_migrate, "refused migrations");

/* Answers the client (if any) with a reply of only a reason. */
static void answer_why(struct cv_d *d, struct cv_d_tenant *t, int status,
		       const char *why, int gpu)
{
	struct cv_ctl_migrate_r r = { .tenant = t->id,
				      .gpu = d->gpus[gpu].index };
	struct cv_d_client *c = t->mig_client;

	t->mig_client = NULL;
	if (!c)
		return;
	c->migrating = NULL;
	snprintf(r.msg, sizeof(r.msg), "%s", why);
	r.total_ns = cv_now_ns() - t->mig_start;
	cv_d_reply(d, c, CV_CTL_MIGRATE, status, &r, sizeof(r));
}

/* Answers the client with the source's own reply. */
static void answer_source(struct cv_d *d, struct cv_d_tenant *t)
{
	struct cv_d_client *c = t->mig_client;

	t->mig_client = NULL;
	if (!c)
		return;
	c->migrating = NULL;
	cv_d_reply(d, c, CV_CTL_MIGRATE, t->mig_status, t->mig_reply,
		   t->mig_reply_len);
}

void cv_d_migrate_request(struct cv_d *d, struct cv_d_client *c,
			  const struct cv_ctl_migrate *req)
{
	struct cv_ctl_migrate_r rr = { .tenant = req->tenant };
	struct cv_ctl_migrate w = *req;
	struct cv_d_tenant *t = NULL, *nt = NULL;
	struct cv_d_spawn x;
	int sv[2] = { -1, -1 }, slot = -1, r = 0;
	char why[200] = "";

	if (!cv_d_privileged(c->uid)) {
		r = -EPERM;
		snprintf(why, sizeof(why), "only uid %u or root may migrate "
			 "tenants", (unsigned)geteuid());
	} else if (d->stopping) {
		r = -ESHUTDOWN;
		snprintf(why, sizeof(why), "the daemon is stopping");
	} else if (!(t = cv_d_tenant_by_id(d, req->tenant))) {
		r = -ENOENT;
		snprintf(why, sizeof(why), "no such tenant");
	} else if (t->op || t->mig_pending || t->restore_client ||
		   t->moving) {
		r = -EBUSY;
		snprintf(why, sizeof(why), "another operation on the tenant "
			 "is in progress");
	} else if (!t->ready || t->ctl_fd < 0 ||
		   t->state != CV_STATE_RUNNING) {
		r = -EBUSY;
		snprintf(why, sizeof(why), "only a running tenant can be "
			 "migrated (resume it first)");
	} else if ((req->flags & CV_MIGRATE_ZSTD) && !req->host[0] &&
		   !t->remote[0]) {
		r = -EINVAL;
		snprintf(why, sizeof(why), "--compress is for bytes between "
			 "hosts: a migration --to a host or from a GPU on "
			 "another host");
	} else if (req->host[0] && !d->cfg.peer_key[0]) {
		r = -ENOKEY;
		snprintf(why, sizeof(why), "a migration to another host needs "
			 "the daemon's --peer-key");
	} else if ((slot = req->host[0] ? 0 : req->gpu < 0 ? t->gpu :
					 cv_d_gpu_slot(d, req->gpu)) <
		   0) {
		r = -ENODEV;
		snprintf(why, sizeof(why), "there is no gpu %d",
			 (int)req->gpu);
	} else if (d->ntenants >= CV_D_MAX_TENANTS ||
		   !(nt = cv_d_tenant_new())) {
		r = -ENOMEM;
		snprintf(why, sizeof(why), "out of tenant slots or memory");
	} else if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) <
		   0) {
		r = -errno;
		snprintf(why, sizeof(why), "socketpair: %s", strerror(errno));
	}
	if (!r) {
		nt->id = t->id;
		nt->guest_pid = t->guest_pid;
		nt->uid = t->uid;
		nt->gpu = slot;
		nt->quota = t->quota;
		nt->stats.quota = t->quota;
		memcpy(nt->token, t->token, sizeof(nt->token));
		memcpy(nt->name, t->name, sizeof(nt->name));
		nt->hidden = true;
		if (req->host[0]) {
			/* A worker here whose backend is the peer's GPU. */
			memcpy(nt->remote, req->host, sizeof(nt->remote));
			nt->remote_gpu = req->gpu < 0 ? 0 : req->gpu;
			nt->remote_zstd = req->flags & CV_MIGRATE_ZSTD;
		}
		x = (struct cv_d_spawn){ .region_fd = -1, .link_fd = -1,
					 .image_fd = -1, .migrate_fd = sv[1] };
		r = nt->remote[0] ? -EAGAIN :
				    cv_d_spare_take(d, slot, nt, sv[1]);
		if (r == -EAGAIN)
			r = cv_d_tenant_spawn(d, nt, &x);
		if (r < 0)
			snprintf(why, sizeof(why), "cannot start a worker: %s",
				 strerror(-r));
	}
	if (sv[1] >= 0)
		close(sv[1]);
	if (!r) {
		w.gpu = nt->remote[0] ? nt->remote_gpu : d->gpus[slot].index;
		/* Between hosts nothing can be shared: the bytes move. */
		if (nt->remote[0] || t->remote[0])
			w.flags |= CV_MIGRATE_COPY;
		/* Compression is the remote side's: the destination's from
		 * its start (remote_zstd), the source's when told so. */
		if (!t->remote[0])
			w.flags &= ~CV_MIGRATE_ZSTD;
		r = cv_ctl_send(t->ctl_fd, CV_CTL_W_MIGRATE, 0, &w, sizeof(w),
				&sv[0], 1);
		if (r < 0) {
			snprintf(why, sizeof(why), "cannot reach worker pid "
				 "%d: %s", (int)t->worker_pid, strerror(-r));
			kill(nt->worker_pid, SIGKILL);
			/* Reaped later as a failed start of nobody's. */
			nt->start_deadline = cv_now_ns();
			cv_d_tenant_add(d, nt);
			nt = NULL;
		}
	}
	if (sv[0] >= 0)
		close(sv[0]);
	if (r) {
		if (nt && !nt->worker_pid)
			free(nt);
		cv_info_rl(&rl_migrate, "migrate from pid %d uid %u refused: "
			   "%s", (int)c->pid, (unsigned)c->uid, why);
		snprintf(rr.msg, sizeof(rr.msg), "%s", why);
		cv_d_reply(d, c, CV_CTL_MIGRATE, r, &rr, sizeof(rr));
		return;
	}
	nt->mig_source = t;
	nt->start_deadline = cv_now_ns() + (uint64_t)d->cfg.op_timeout_s *
						   CV_D_EVICT_FACTOR *
						   1000000000ull;
	cv_d_tenant_add(d, nt);
	t->mig_dest = nt;
	t->mig_client = c;
	t->mig_pending = true;
	t->mig_answered = false;
	t->mig_dest_ok = t->mig_dest_failed = false;
	t->mig_start = cv_now_ns();
	c->migrating = t;
	cv_info("tenant %llu: migrating from worker pid %d on %s%s gpu %d to "
		"worker pid %d on %s%s gpu %d (%s), asked by pid %d uid %u",
		(unsigned long long)t->id, (int)t->worker_pid,
		t->remote[0] ? t->remote : "", t->remote[0] ? "" : "our",
		t->remote[0] ? t->remote_gpu : d->gpus[t->gpu].index,
		(int)nt->worker_pid,
		nt->remote[0] ? nt->remote : "", nt->remote[0] ? "" : "our",
		nt->remote[0] ? nt->remote_gpu : d->gpus[slot].index,
		w.flags & CV_MIGRATE_COPY || slot != t->gpu ? "copying" :
			"sharing its memory",
		(int)c->pid, (unsigned)c->uid);
}

/* The migration is over: the two records forget each other. */
static void unlink_pair(struct cv_d_tenant *t)
{
	if (t->mig_dest)
		t->mig_dest->mig_source = NULL;
	t->mig_dest = NULL;
	t->mig_pending = false;
}

/* Committed and the destination runs: it is the tenant's record now. */
static void finish(struct cv_d *d, struct cv_d_tenant *t)
{
	struct cv_d_tenant *nt = t->mig_dest;
	struct cv_ctl_migrate_r *r = (struct cv_ctl_migrate_r *)t->mig_reply;
	int gpu = nt ? nt->gpu : t->gpu;

	if (nt) {
		nt->hidden = false;
		cv_info("tenant %llu: migrated to worker pid %d on gpu %d in "
			"%.1f ms", (unsigned long long)t->id,
			(int)nt->worker_pid, d->gpus[gpu].index,
			(cv_now_ns() - t->mig_start) / 1e6);
	}
	t->hidden = true;
	unlink_pair(t);
	if (r) {
		r->gpu = d->gpus[gpu].index;
		answer_source(d, t);
	} else {
		answer_why(d, t, 0, "", gpu);
	}
}

/* The destination failed after the source committed: nobody runs it. */
static void lost(struct cv_d *d, struct cv_d_tenant *t)
{
	cv_err("tenant %llu: the destination worker failed after the commit: "
	       "the tenant is lost", (unsigned long long)t->id);
	t->hidden = true;
	if (t->mig_dest)
		t->mig_dest->hidden = false;
	unlink_pair(t);
	answer_why(d, t, -EIO, "the destination worker failed after the "
		   "commit; the tenant is lost", t->gpu);
}

void cv_d_migrate_answer(struct cv_d *d, struct cv_d_tenant *t,
			 const struct cv_d_msg *m)
{
	struct cv_d_tenant *nt = t->mig_dest;
	uint32_t len = m->len;

	if (!t->mig_pending || t->mig_answered) {
		cv_warn("tenant %llu: a migration answer nobody waits for",
			(unsigned long long)t->id);
		return;
	}
	t->mig_answered = true;
	t->mig_status = m->status;
	free(t->mig_reply);
	t->mig_reply = NULL;
	t->mig_reply_len = 0;
	if (len) {
		t->mig_reply = malloc(len);
		if (t->mig_reply) {
			memcpy(t->mig_reply, &m->u.mig_r, sizeof(m->u.mig_r));
			memcpy(t->mig_reply + sizeof(m->u.mig_r), m->report,
			       len - sizeof(m->u.mig_r));
			t->mig_reply_len = len;
		}
	}
	if (m->status < 0) {
		/* Nothing was handed over: the source runs on, and the
		 * destination must not. */
		cv_warn("tenant %llu: migration failed: %s", (unsigned long long)
			t->id, len ? m->u.mig_r.msg : strerror(-m->status));
		if (nt && !nt->dead)
			kill(nt->worker_pid, SIGKILL);
		unlink_pair(t);
		if (t->mig_reply)
			answer_source(d, t);
		else
			answer_why(d, t, m->status, "the source worker failed",
				   t->gpu);
		return;
	}
	if (t->mig_dest_ok)
		finish(d, t);
	else if (t->mig_dest_failed)
		lost(d, t);
	/* else: the destination's W_READY finishes it */
}

void cv_d_migrate_dest_done(struct cv_d *d, struct cv_d_tenant *nt,
			    int status, const char *msg)
{
	struct cv_d_tenant *t = nt->mig_source;
	bool source_gone;

	if (!t || !t->mig_pending)
		return;
	source_gone = t->dead || t->ctl_fd < 0;
	if (status == 0) {
		t->mig_dest_ok = true;
		/* Only a commit makes a destination ready. */
		if ((t->mig_answered && t->mig_status == 0) || source_gone)
			finish(d, t);
		return;
	}
	t->mig_dest_failed = true;
	cv_warn("tenant %llu: migration's destination worker failed: %s",
		(unsigned long long)t->id, msg && msg[0] ? msg : "it exited");
	if (t->mig_answered && t->mig_status == 0) {
		lost(d, t);
	} else if (source_gone) {
		unlink_pair(t);
		answer_why(d, t, -EIO, "both workers of the migration failed",
			   t->gpu);
	}
	/* else: the source notices and answers; the client hears it then */
}

void cv_d_migrate_source_gone(struct cv_d *d, struct cv_d_tenant *t)
{
	if (!t->mig_pending || t->mig_answered)
		return; /* nothing pending, or answered: handled there */
	if (t->mig_dest_ok) {
		finish(d, t);
	} else if (t->mig_dest_failed || !t->mig_dest) {
		unlink_pair(t);
		answer_why(d, t, -EIO, "the tenant's worker died during the "
			   "migration", t->gpu);
	}
	/* else: the destination ends one way or the other */
}

void cv_d_migrate_forget(struct cv_d *d, struct cv_d_tenant *t)
{
	/* The source's worker ended before its destination did (the
	 * program exited mid-migration, say): source_gone left the answer
	 * to the destination's end, which can no longer find this record.
	 * Answer now; the client must not keep a pointer to it either. */
	if (t->mig_client)
		answer_why(d, t, -EIO, "the tenant's worker ended during the "
			   "migration", t->gpu);
	if (t->mig_source) {
		t->mig_source->mig_dest = NULL;
		t->mig_source = NULL;
	}
	if (t->mig_dest) {
		t->mig_dest->mig_source = NULL;
		t->mig_dest = NULL;
	}
}

void cv_d_migrate_forget_client(struct cv_d *d, struct cv_d_client *c)
{
	if (c->migrating)
		c->migrating->mig_client = NULL;
	c->migrating = NULL;
}

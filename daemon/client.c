/* SPDX-License-Identifier: MIT */
/*
 * Clients of the control socket: guests (ATTACH) and the CLI (PS, INFO,
 * SHUTDOWN; SUSPEND, RESUME and EVICT in ops.c). Every connection is
 * authenticated with SO_PEERCRED when it is accepted. A client has at most one request in progress; until it is
 * answered the daemon does not read from it (its next requests wait in the
 * socket). A malformed message closes the connection.
 *
 * Client sockets are non-blocking: a client that does not read its
 * replies is dropped (-EAGAIN on send), never waited for.
 */
#include "cuvisord.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/log.h"

bool cv_d_privileged(uid_t uid)
{
	return uid == 0 || uid == geteuid();
}

static bool allowed(const struct cv_d *d, uid_t uid)
{
	int i;

	if (cv_d_privileged(uid))
		return true;
	for (i = 0; i < d->cfg.nallow; i++)
		if (d->cfg.allow[i] == uid)
			return true;
	return false;
}

/* Refusals a local user can cause as often as they like: logged at most
 * 5 lines per 10 s each, then counted (core/log.h). */
CV_RATELIMIT_STD(rl_refused, "refused control connections");
CV_RATELIMIT_STD(rl_idle, "idle control connections closed");
CV_RATELIMIT_STD(rl_badmsg, "bad messages from clients");
CV_RATELIMIT_STD(rl_noreply, "clients that could not be answered");
CV_RATELIMIT_STD(rl_attach, "refused attaches");
CV_RATELIMIT_STD(rl_shutdown, "refused SHUTDOWNs");
CV_RATELIMIT_STD(rl_accept, "accept failures");

/*
 * Tells the client why its connection goes (CV_CTL_REFUSED, status),
 * then closes it. What the client sent is read first: closing a socket
 * with unread data would turn the client's next read into ECONNRESET
 * before it sees the refusal.
 */
static void refuse_fd(int fd, int status, const char *why)
{
	struct cv_ctl_refused r;
	uint8_t junk[64];
	int i;

	memset(&r, 0, sizeof(r));
	snprintf(r.msg, sizeof(r.msg), "%s", why);
	cv_ctl_send(fd, CV_CTL_REFUSED | CV_CTL_REPLY, status, &r, sizeof(r),
		    NULL, 0);
	for (i = 0; i < 4 && recv(fd, junk, sizeof(junk), MSG_DONTWAIT) > 0;
	     i++)
		;
	close(fd);
}

static int user_conns(const struct cv_d *d, uid_t uid)
{
	int i, n = 0;

	for (i = 0; i < d->nclients; i++)
		n += !d->clients[i]->dead && d->clients[i]->uid == uid;
	return n;
}

static int user_tenants(const struct cv_d *d, uid_t uid)
{
	int i, n = 0;

	for (i = 0; i < d->ntenants; i++)
		n += !d->tenants[i]->dead && !d->tenants[i]->hidden &&
		     d->tenants[i]->uid == uid;
	return n;
}

/* Who may connect, and within which caps; 0 or -errno with why. */
static int admit_conn(const struct cv_d *d, const struct ucred *cr,
		      char *why, size_t size)
{
	if (!allowed(d, cr->uid)) {
		snprintf(why, size, "uid %u is not allowed to use this daemon "
			 "(cuvisord --allow-uid)", (unsigned)cr->uid);
		return -EPERM;
	}
	return cv_d_conn_admit(d->cfg.max_conns_user, cr->uid,
			       cv_d_privileged(cr->uid), d->nclients,
			       user_conns(d, cr->uid), why, size);
}

/* Accepts one connection; false when there was none (or an error). */
static bool accept_one(struct cv_d *d)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	struct cv_d_client *c;
	char why[160];
	int fd, r;

	fd = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			cv_warn_rl(&rl_accept, "accept: %s; pausing new "
				   "connections", strerror(errno));
			d->accept_resume = cv_now_ns() + 100000000ull;
		}
		return false;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
		cv_warn_rl(&rl_refused, "refused a connection: SO_PEERCRED: "
			   "%s", strerror(errno));
		close(fd);
		return true;
	}
	r = admit_conn(d, &cr, why, sizeof(why));
	c = r ? NULL : calloc(1, sizeof(*c));
	if (!r && !c) {
		r = -ENOMEM;
		snprintf(why, sizeof(why), "the daemon is out of memory");
	}
	if (r) {
		cv_warn_rl(&rl_refused, "refused a connection from uid %u "
			   "(pid %d): %s", (unsigned)cr.uid, (int)cr.pid, why);
		refuse_fd(fd, r, why);
		return true;
	}
	c->fd = fd;
	c->uid = cr.uid;
	c->pid = cr.pid;
	c->idle_deadline = cv_now_ns() + d->cfg.idle_timeout_s * 1000000000ull;
	d->clients[d->nclients++] = c;
	cv_dbg("client pid %d uid %u connected", (int)c->pid,
	       (unsigned)c->uid);
	return true;
}

void cv_d_accept(struct cv_d *d)
{
	int i;

	/* A bounded batch, so that a connection storm cannot starve the
	 * rest of the loop. */
	for (i = 0; i < 64 && d->listen_fd >= 0; i++)
		if (!accept_one(d))
			break;
}

bool cv_d_client_busy(const struct cv_d_client *c)
{
	return c->attaching || c->ps_pending || c->shutdown_pending ||
	       c->op_tenant || c->restoring || c->migrating;
}

void cv_d_client_timeouts(struct cv_d *d, uint64_t now)
{
	struct cv_d_client *c;
	char why[96];
	int i;

	for (i = 0; i < d->nclients; i++) {
		c = d->clients[i];
		if (c->dead || cv_d_client_busy(c) || now < c->idle_deadline)
			continue;
		snprintf(why, sizeof(why), "no request for %u s "
			 "(cuvisord --idle-timeout)", d->cfg.idle_timeout_s);
		cv_info_rl(&rl_idle, "closing the connection of pid %d uid "
			   "%u: %s", (int)c->pid, (unsigned)c->uid, why);
		refuse_fd(c->fd, -ETIMEDOUT, why);
		c->fd = -1;
		cv_d_client_kill(d, c);
	}
}

uint64_t cv_d_client_next_deadline(const struct cv_d *d)
{
	uint64_t best = 0;
	int i;

	for (i = 0; i < d->nclients; i++) {
		const struct cv_d_client *c = d->clients[i];

		if (!c->dead && !cv_d_client_busy(c) &&
		    (!best || c->idle_deadline < best))
			best = c->idle_deadline;
	}
	return best;
}

void cv_d_client_kill(struct cv_d *d, struct cv_d_client *c)
{
	if (c->dead)
		return;
	if (c->attaching) {
		/* The tenant stays; its worker exits once the guest end
		 * of the link is closed after READY. */
		c->attaching->client = NULL;
		c->attaching = NULL;
	}
	if (c->op_tenant) {
		/* The operation goes on; its result is only logged. */
		c->op_tenant->op_client = NULL;
		c->op_tenant = NULL;
	}
	if (c->restoring) {
		/* The restore goes on; nobody hears how it ended. */
		c->restoring->restore_client = NULL;
		c->restoring = NULL;
	}
	/* A migration goes on too. */
	cv_d_migrate_forget_client(d, c);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->dead = true;
}

/* Sends a reply; on failure logs and drops the client. */
static void reply(struct cv_d *d, struct cv_d_client *c, uint16_t type,
		  int status, const void *p, uint32_t len, const int *fds,
		  int nfds)
{
	int r;

	if (c->dead)
		return;
	r = cv_ctl_send(c->fd, type | CV_CTL_REPLY, status, p, len, fds, nfds);
	if (r < 0) {
		cv_warn_rl(&rl_noreply, "client pid %d uid %u: cannot send "
			   "reply to type %u: %s; closing", (int)c->pid,
			   (unsigned)c->uid, type, strerror(-r));
		cv_d_client_kill(d, c);
		return;
	}
	c->idle_deadline = cv_now_ns() + d->cfg.idle_timeout_s * 1000000000ull;
}

void cv_d_reply(struct cv_d *d, struct cv_d_client *c, uint16_t type,
		int status, const void *p, uint32_t len)
{
	reply(d, c, type, status, p, len, NULL, 0);
}

void cv_d_attach_refuse(struct cv_d *d, struct cv_d_client *c,
			uint16_t type, int status, const char *why)
{
	char msg[CV_CTL_REASON_LEN] = "";

	if (!c)
		return;
	snprintf(msg, sizeof(msg), "%s", why && *why ? why : strerror(-status));
	reply(d, c, type, status, msg, sizeof(msg), NULL, 0);
}

void cv_d_attach_reply(struct cv_d *d, struct cv_d_client *c, int status,
		       const struct cv_d_tenant *t, const int *fds, int nfds)
{
	struct cv_ctl_attach_r r = { 0 };

	if (!c)
		return;
	if (t && c->attaching == t)
		c->attaching = NULL;
	if (status < 0) {
		cv_d_attach_refuse(d, c, CV_CTL_ATTACH, status, NULL);
		return;
	}
	r.tenant_id = t->id;
	r.gpu = d->gpus[t->gpu].index;
	r.worker_pid = (uint32_t)t->worker_pid;
	r.quota = t->quota;
	reply(d, c, CV_CTL_ATTACH, 0, &r, sizeof(r), fds, nfds);
}

/* The peer holds the GPU and enforces the quota; ours is what was asked,
 * else the daemon's default, else the GPU's whole memory (UINT64_MAX,
 * which the peer caps). No local GPU slot is taken (gpu 0 is nominal). */
static int admit_remote(const struct cv_d *d, const struct cv_ctl_attach *a,
			int *gpu, uint64_t *quota)
{
	*gpu = 0;
	*quota = a->mem ? a->mem :
		 d->cfg.default_mem ? d->cfg.default_mem : UINT64_MAX;
	return 0;
}

/* Whether c's ATTACH a would be admitted now: 0 with *gpu and *quota, or
 * -errno with why (CV_CTL_REASON_LEN bytes) saying why for people. */
static int attach_check(const struct cv_d *d, const struct cv_d_client *c,
			const struct cv_ctl_attach *a, int *gpu,
			uint64_t *quota, char *why)
{
	const size_t n = CV_CTL_REASON_LEN;
	int r;

	*why = 0;
	if (d->stopping) {
		snprintf(why, n, "the daemon is stopping");
		return -ESHUTDOWN;
	}
	r = cv_d_tenant_admit(d->cfg.max_tenants_user, c->uid,
			      cv_d_privileged(c->uid), d->ntenants,
			      user_tenants(d, c->uid), why, n);
	if (r < 0)
		return r;
	if (a->host[0] && !d->cfg.peer_key[0]) {
		snprintf(why, n, "a vGPU on another host needs the daemon's "
			 "--peer-key");
		return -ENOKEY;
	}
	if (a->host[0] && (a->proto != CV_PROTO_VERSION || a->flags))
		return a->flags ? -EINVAL : -EPROTO;
	if (a->host[0])
		return admit_remote(d, a, gpu, quota);
	return cv_d_admit(d->gpus, d->ngpus, a, d->cfg.default_mem,
			  d->cfg.overcommit || d->cfg.private_mode, gpu, quota,
			  why, n);
}

static void handle_attach(struct cv_d *d, struct cv_d_client *c,
			  const struct cv_ctl_attach *a)
{
	char why[CV_CTL_REASON_LEN];
	struct cv_d_tenant *t = NULL;
	uint64_t quota = 0;
	int gpu = -1, r;

	r = attach_check(d, c, a, &gpu, &quota, why);
	if (r == 0)
		r = cv_d_tenant_start(d, c, gpu, quota, a, &t);
	if (r < 0) {
		cv_info_rl(&rl_attach, "attach of \"%s\" (pid %d uid %u, gpu "
			   "%d, mem %llu) refused: %s", a->name, (int)c->pid,
			   (unsigned)c->uid, (int)a->gpu,
			   (unsigned long long)a->mem,
			   *why ? why : strerror(-r));
		cv_d_attach_refuse(d, c, CV_CTL_ATTACH, r, why);
		return;
	}
	c->attaching = t;
}

/* ADMIT: ATTACH's answer without starting anything. */
static void handle_admit(struct cv_d *d, struct cv_d_client *c,
			 const struct cv_ctl_attach *a)
{
	struct cv_ctl_attach_r r = { 0 };
	char why[CV_CTL_REASON_LEN];
	uint64_t quota = 0;
	int gpu = -1, st;

	st = attach_check(d, c, a, &gpu, &quota, why);
	if (st < 0) {
		cv_d_attach_refuse(d, c, CV_CTL_ADMIT, st, why);
		return;
	}
	r.gpu = a->host[0] ? a->gpu : d->gpus[gpu].index;
	r.quota = quota;
	reply(d, c, CV_CTL_ADMIT, 0, &r, sizeof(r), NULL, 0);
}

/* Where the vGPUs are that cross to another host, both ways. */
static void handle_remotes(struct cv_d *d, struct cv_d_client *c)
{
	static uint8_t buf[sizeof(struct cv_ctl_remotes_r) +
			   CV_CTL_MAX_REMOTES * sizeof(struct cv_ctl_remote)];
	struct cv_ctl_remotes_r hdr = { 0 };
	struct cv_ctl_remote e;
	struct cv_d_tenant *t;
	int i;

	for (i = 0; i < d->ntenants && hdr.n < CV_CTL_MAX_REMOTES; i++) {
		t = d->tenants[i];
		if (t->dead || t->hidden || !t->remote[0] ||
		    (!cv_d_privileged(c->uid) && t->uid != c->uid))
			continue;
		memset(&e, 0, sizeof(e));
		e.id = t->id;
		e.kind = CV_REMOTE_VGPU;
		e.gpu = t->remote_gpu;
		e.worker_pid = (uint32_t)t->worker_pid;
		e.quota = t->quota;
		memcpy(e.peer, t->remote, sizeof(e.peer));
		memcpy(buf + sizeof(hdr) + hdr.n++ * sizeof(e), &e, sizeof(e));
	}
	/* What we serve belongs to no local user: root and us see it. */
	if (cv_d_privileged(c->uid))
		hdr.n += (uint32_t)cv_d_peer_served(
			(struct cv_ctl_remote *)(buf + sizeof(hdr)) + hdr.n,
			CV_CTL_MAX_REMOTES - (int)hdr.n);
	memcpy(buf, &hdr, sizeof(hdr));
	reply(d, c, CV_CTL_REMOTES, 0, buf,
	      (uint32_t)(sizeof(hdr) + hdr.n * sizeof(e)), NULL, 0);
}

static void handle_ps(struct cv_d *d, struct cv_d_client *c)
{
	int i;

	c->ps_pending = true;
	c->ps_deadline = cv_now_ns() + CV_D_PS_TIMEOUT_MS * 1000000ull;
	for (i = 0; i < d->ntenants; i++)
		cv_d_tenant_ask_stats(d, d->tenants[i]);
	cv_d_ps_poll(d, cv_now_ns());
}

static void ps_reply(struct cv_d *d, struct cv_d_client *c)
{
	static uint8_t buf[sizeof(struct cv_ctl_ps_r) +
			   CV_D_MAX_TENANTS * sizeof(struct cv_ctl_tenant)];
	struct cv_ctl_ps_r hdr = { 0 };
	struct cv_ctl_tenant e;
	struct cv_d_tenant *t;
	int i;

	for (i = 0; i < d->ntenants; i++) {
		t = d->tenants[i];
		if (t->dead || t->hidden ||
		    (!cv_d_privileged(c->uid) && t->uid != c->uid))
			continue;
		memset(&e, 0, sizeof(e));
		e.id = t->id;
		e.pid = (uint32_t)t->guest_pid;
		e.worker_pid = (uint32_t)t->worker_pid;
		e.gpu = d->gpus[t->gpu].index;
		e.state = t->state;
		e.mem_used = t->stats.mem_used;
		e.quota = t->quota;
		e.op_done = t->stats.op_done;
		e.op_total = t->stats.op_total;
		if (t->replaced_by) { /* restoring: the new worker's */
			e.op_done = t->replaced_by->stats.op_done;
			e.op_total = t->replaced_by->stats.op_total;
		}
		memcpy(e.name, t->name, sizeof(e.name));
		memcpy(buf + sizeof(hdr) + hdr.n * sizeof(e), &e, sizeof(e));
		hdr.n++;
	}
	memcpy(buf, &hdr, sizeof(hdr));
	c->ps_pending = false;
	reply(d, c, CV_CTL_PS, 0, buf,
	      (uint32_t)(sizeof(hdr) + hdr.n * sizeof(e)), NULL, 0);
}

void cv_d_ps_poll(struct cv_d *d, uint64_t now)
{
	bool waiting = false;
	int i;

	for (i = 0; i < d->ntenants; i++)
		if (!d->tenants[i]->dead && d->tenants[i]->stats_inflight)
			waiting = true;
	for (i = 0; i < d->nclients; i++) {
		struct cv_d_client *c = d->clients[i];

		if (!c->dead && c->ps_pending &&
		    (!waiting || now >= c->ps_deadline))
			ps_reply(d, c);
	}
}

static void handle_info(struct cv_d *d, struct cv_d_client *c)
{
	static uint8_t buf[sizeof(struct cv_ctl_info_r) +
			   CV_D_MAX_GPUS * sizeof(struct cv_ctl_gpu)];
	struct cv_ctl_info_r r = {
		.pid = (uint32_t)getpid(), .ngpus = (uint32_t)d->ngpus,
		.backend = (uint32_t)d->backend,
		.default_quota = d->cfg.default_mem,
	};
	struct cv_ctl_gpu g;
	int i;

	for (i = 0; i < d->ntenants; i++)
		r.ntenants += !d->tenants[i]->dead;
	memcpy(buf, &r, sizeof(r));
	for (i = 0; i < d->ngpus; i++) {
		memset(&g, 0, sizeof(g));
		g.index = d->gpus[i].index;
		g.ntenants = d->gpus[i].ntenants;
		g.total_mem = d->gpus[i].total;
		g.quota_sum = d->gpus[i].quota_sum;
		memcpy(g.name, d->gpus[i].name, sizeof(g.name));
		memcpy(buf + sizeof(r) + (size_t)i * sizeof(g), &g, sizeof(g));
	}
	reply(d, c, CV_CTL_INFO, 0, buf,
	      (uint32_t)(sizeof(r) + (size_t)d->ngpus * sizeof(g)), NULL, 0);
}

static void handle_shutdown(struct cv_d *d, struct cv_d_client *c)
{
	char why[96];

	if (!cv_d_privileged(c->uid)) {
		cv_warn_rl(&rl_shutdown, "SHUTDOWN from pid %d uid %u "
			   "refused: only uid %u or root may stop the daemon",
			   (int)c->pid, (unsigned)c->uid, (unsigned)geteuid());
		reply(d, c, CV_CTL_SHUTDOWN, -EPERM, NULL, 0, NULL, 0);
		return;
	}
	/* Answered when the daemon has stopped (main.c). */
	c->shutdown_pending = true;
	snprintf(why, sizeof(why), "SHUTDOWN from pid %d uid %u", (int)c->pid,
		 (unsigned)c->uid);
	cv_d_stop(d, why);
}

/* fds: the request's nfds fds (CHECKPOINT, RESTORE), as decoding
 * checked; one set to -1 is the handler's now. */
static void dispatch(struct cv_d *d, struct cv_d_client *c,
		     const struct cv_d_msg *m, int *fds, int nfds)
{
	switch (m->type) {
	case CV_CTL_ATTACH:
		handle_attach(d, c, &m->u.attach);
		break;
	case CV_CTL_ADMIT:
		handle_admit(d, c, &m->u.attach);
		break;
	case CV_CTL_PS:
		handle_ps(d, c);
		break;
	case CV_CTL_INFO:
		handle_info(d, c);
		break;
	case CV_CTL_REMOTES:
		handle_remotes(d, c);
		break;
	case CV_CTL_SHUTDOWN:
		handle_shutdown(d, c);
		break;
	case CV_CTL_SUSPEND:
	case CV_CTL_RESUME:
	case CV_CTL_EVICT:
		cv_d_op_request(d, c, m->type, &m->u.op);
		break;
	case CV_CTL_CHECKPOINT:
		cv_d_checkpoint_request(d, c, &m->u.ckpt, fds, nfds);
		break;
	case CV_CTL_RESTORE:
		cv_d_restore_request(d, c, &m->u.restore, fds[0]);
		fds[0] = -1; /* its own now */
		break;
	case CV_CTL_W_HELLO:
		cv_d_adopt(d, c, &m->u.hello, nfds ? fds[0] : -1);
		if (nfds)
			fds[0] = -1; /* its own now */
		break;
	case CV_CTL_MIGRATE:
		cv_d_migrate_request(d, c, &m->u.migrate);
		break;
	}
}

void cv_d_client_input(struct cv_d *d, struct cv_d_client *c)
{
	/* Requests are small; anything longer is malformed anyway. */
	uint8_t buf[512];
	int fds[CV_CTL_MAX_FDS], nfds = CV_CTL_MAX_FDS, i, r;
	struct cv_ctl_hdr h;
	struct cv_d_msg m;
	const char *why;

	r = cv_ctl_recv(c->fd, &h, buf, sizeof(buf), fds, &nfds, 0);
	if (r == -EAGAIN || r == -ETIMEDOUT)
		return;
	if (r == -ECONNRESET) {
		cv_dbg("client pid %d disconnected", (int)c->pid);
		cv_d_client_kill(d, c);
		return;
	}
	if (r < 0) {
		cv_warn_rl(&rl_badmsg, "client pid %d uid %u: bad message: "
			   "%s; closing", (int)c->pid, (unsigned)c->uid,
			   strerror(-r));
		cv_d_client_kill(d, c);
		return;
	}
	c->idle_deadline = cv_now_ns() + d->cfg.idle_timeout_s * 1000000000ull;
	if (cv_d_msg_decode(CV_D_PEER_CLIENT, &h, buf, (uint32_t)r, nfds, &m,
			    &why) < 0) {
		cv_warn_rl(&rl_badmsg, "client pid %d uid %u: malformed "
			   "message (type %u, %d bytes): %s; closing",
			   (int)c->pid, (unsigned)c->uid, h.type, r, why);
		cv_d_client_kill(d, c);
	} else {
		dispatch(d, c, &m, fds, nfds);
	}
	for (i = 0; i < nfds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

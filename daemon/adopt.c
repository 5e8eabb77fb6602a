/* SPDX-License-Identifier: MIT */
/*
 * Tenants that outlive a daemon, and restores.
 *
 * Adoption: a worker whose daemon went away keeps serving its guest and
 * connects to the daemon's socket every 100 ms; its first message there
 * is W_HELLO, and the connection becomes the tenant's control connection.
 * Such a tenant is not our child: it ends when that connection closes.
 *
 * Restore: `cuvisor restore FILE` sends the image's fd. Its header names
 * the tenant by a random token the daemon gave it; that tenant must be
 * STOPPED, its worker a holder of the guest's region and link. We ask the
 * holder for them (W_HANDOVER), start a new worker with them and the
 * image, and only when that worker says it is ready does the holder go
 * (W_STOP). If the new worker refuses the image or dies, the holder still
 * holds everything and the tenant stays STOPPED: nothing is half-restored.
 */
#include "cuvisord.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/image.h"
#include "../core/log.h"

static struct cv_d_tenant *by_token(struct cv_d *d, const uint8_t *token,
				    bool stopped)
{
	struct cv_d_tenant *t;
	int i;

	for (i = 0; i < d->ntenants; i++) {
		t = d->tenants[i];
		if (t->dead || t->hidden ||
		    memcmp(t->token, token, sizeof(t->token)))
			continue;
		if (!stopped || t->state == CV_STATE_STOPPED)
			return t;
	}
	return NULL;
}

static bool id_taken(const struct cv_d *d, uint64_t id)
{
	int i;

	for (i = 0; i < d->ntenants; i++)
		if (!d->tenants[i]->dead && d->tenants[i]->id == id)
			return true;
	return false;
}

/* Any allowed user can send these as often as they like. */
CV_RATELIMIT_STD(rl_hello, "refused W_HELLOs");
CV_RATELIMIT_STD(rl_restore, "refused restores");

/* ---- adoption ------------------------------------------------------ */

/*
 * A live record of the tenant with this token whose worker is not pid.
 * Two workers of one tenant meet a new daemon when the old one died during
 * a migration: the source may say HELLO before its COMMIT and again until
 * it exits, the destination (which waits for the guest's link, so for the
 * COMMIT) after it. The second waits until the first's record is gone:
 * nothing is adopted twice.
 */
static bool by_worker_token(const struct cv_d *d, const uint8_t *token,
			    uint32_t pid)
{
	const struct cv_d_tenant *t;
	int i;

	for (i = 0; i < d->ntenants; i++) {
		t = d->tenants[i];
		if (!t->dead && !memcmp(t->token, token, sizeof(t->token)) &&
		    (uint32_t)t->worker_pid != pid)
			return true;
	}
	return false;
}

void cv_d_adopt(struct cv_d *d, struct cv_d_client *c,
		const struct cv_ctl_hello *h, int image_fd)
{
	struct cv_ctl_hello_r r;
	struct cv_d_tenant *t;
	struct stat st;
	char path[32];
	int gpu = cv_d_gpu_slot(d, h->gpu), err = 0;
	bool deferred = false;

	/* Workers run as the daemon's user; the pid must be the peer's. */
	if (c->uid != geteuid() || (uint32_t)c->pid != h->worker_pid)
		err = -EPERM;
	else if ((deferred = by_worker_token(d, h->token, h->worker_pid)))
		err = -EAGAIN;
	else if (d->stopping)
		err = -ESHUTDOWN;
	else if (gpu < 0)
		err = -ENODEV;
	else if (d->ntenants >= CV_D_MAX_TENANTS)
		err = -EAGAIN;
	t = err ? NULL : cv_d_tenant_new();
	if (!err && !t)
		err = -ENOMEM;
	if (err && deferred) {
		/* It says HELLO again every 100 ms: no line each time. */
		cv_dbg("W_HELLO of tenant %llu from worker pid %d deferred: "
		       "another worker of it is still ours",
		       (unsigned long long)h->tenant, (int)c->pid);
	} else if (err) {
		cv_warn_rl(&rl_hello, "W_HELLO of tenant %llu from pid %d "
			   "uid %u refused: %s", (unsigned long long)h->tenant,
			   (int)c->pid, (unsigned)c->uid, strerror(-err));
	}
	if (err) {
		cv_d_reply(d, c, CV_CTL_W_HELLO, err, NULL, 0);
		cv_d_client_kill(d, c);
		if (image_fd >= 0)
			close(image_fd);
		return;
	}
	/* Keep its id unless a tenant of ours got it meanwhile. */
	t->id = id_taken(d, h->tenant) ? d->next_id++ : h->tenant;
	if (t->id >= d->next_id)
		d->next_id = t->id + 1;
	t->adopted = true;
	t->ready = true;
	t->worker_pid = (pid_t)h->worker_pid;
	t->guest_pid = (pid_t)h->guest_pid;
	snprintf(path, sizeof(path), "/proc/%u", h->guest_pid);
	t->uid = stat(path, &st) == 0 ? st.st_uid : c->uid;
	t->gpu = gpu;
	t->quota = h->quota;
	t->stats.quota = h->quota;
	t->state = h->state;
	memcpy(t->token, h->token, sizeof(t->token));
	memcpy(t->name, h->name, sizeof(t->name));
	r.tenant = t->id;
	if (cv_ctl_send(c->fd, CV_CTL_W_HELLO | CV_CTL_REPLY, 0, &r, sizeof(r),
			NULL, 0) < 0) {
		free(t);
		cv_d_client_kill(d, c);
		if (image_fd >= 0)
			close(image_fd);
		return;
	}
	/* A move whose daemon died: `cuvisor resume ID [--gpu N]` restores
	 * from the image its holder kept. */
	t->move_fd = image_fd;
	/* The connection is the tenant's now, not a client's. */
	t->ctl_fd = c->fd;
	c->fd = -1;
	cv_d_client_kill(d, c);
	fcntl(t->ctl_fd, F_SETFL, O_NONBLOCK);
	cv_d_tenant_add(d, t);
	cv_info("tenant %llu (\"%s\", pid %d): adopted worker pid %d on gpu %d "
		"(%s)", (unsigned long long)t->id, t->name, (int)t->guest_pid,
		(int)t->worker_pid, h->gpu,
		t->state == CV_STATE_STOPPED ? t->move_fd >= 0 ?
		"stopped in a move; its image is kept" : "stopped" :
		"running");
}

/* ---- restore ------------------------------------------------------- */

static void restore_reply(struct cv_d *d, struct cv_d_client *c, int status,
			  const struct cv_d_tenant *t, uint64_t ns,
			  const char *msg)
{
	struct cv_ctl_restore_r r = { 0 };
	struct cv_ctl_op_r o = { 0 };

	if (!c)
		return;
	c->restoring = NULL;
	if (c->restore_is_resume) {
		/* A move answers the RESUME it was asked as. */
		c->restore_is_resume = false;
		o.state = status < 0 ? CV_STATE_STOPPED : CV_STATE_RUNNING;
		o.ns = ns;
		cv_d_reply(d, c, CV_CTL_RESUME, status, &o, sizeof(o));
		return;
	}
	if (t) {
		r.tenant = t->id;
		r.gpu = d->gpus[t->gpu].index;
	}
	r.ns = ns;
	snprintf(r.msg, sizeof(r.msg), "%s", msg ? msg : "");
	cv_d_reply(d, c, CV_CTL_RESTORE, status, &r, sizeof(r));
}

/* Asks t's holder for the region and link; the restore goes on in
 * cv_d_restore_handover. fd (the image) is t's from now on. */
static int restore_start(struct cv_d *d, struct cv_d_tenant *t,
			 struct cv_d_client *c, int fd, int gpu, char *why,
			 size_t size)
{
	if (t->restore_client || t->ctl_fd < 0) {
		snprintf(why, size, "tenant %llu is busy",
			 (unsigned long long)t->id);
		return -EBUSY;
	}
	if (cv_ctl_send(t->ctl_fd, CV_CTL_W_HANDOVER, 0, NULL, 0, NULL, 0) <
	    0) {
		snprintf(why, size, "the tenant's holder does not answer");
		return -EIO;
	}
	t->restore_client = c;
	t->restore_fd = fd;
	t->restore_gpu = gpu;
	t->restore_start = cv_now_ns();
	if (c)
		c->restoring = t;
	return 0;
}

/* Why no tenant can take this image, for the operator. */
static void explain(struct cv_d *d, const struct cv_ckpt_ident *id, char *buf,
		    size_t size)
{
	struct cv_d_tenant *t = by_token(d, id->token, false);

	if (t)
		snprintf(buf, size, "mismatched image: tenant %llu it belongs "
			 "to is %s, not stopped (checkpoint it with --stop "
			 "first)", (unsigned long long)t->id,
			 t->state == CV_STATE_RUNNING ? "running" :
			 t->state == CV_STATE_SUSPENDED ? "suspended" :
			 t->state == CV_STATE_EVICTED ? "evicted" : "busy");
	else
		snprintf(buf, size, "mismatched image: no stopped tenant is "
			 "waiting for it (it was tenant %llu; its program may "
			 "have exited, or it was restored already)",
			 (unsigned long long)id->tenant_id);
}

void cv_d_restore_request(struct cv_d *d, struct cv_d_client *c,
			  const struct cv_ctl_restore *req, int fd)
{
	struct cv_ckpt_ident id;
	struct cv_img_info info;
	struct cv_d_tenant *t = NULL;
	char why[256] = "";
	int r = 0, gpu = -1;

	if (!cv_d_privileged(c->uid)) {
		r = -EPERM;
		snprintf(why, sizeof(why), "only uid %u or root may restore "
			 "tenants", (unsigned)geteuid());
	} else if (d->stopping) {
		r = -ESHUTDOWN;
		snprintf(why, sizeof(why), "the daemon is stopping");
	}
	if (!r)
		r = cv_img_peek(fd, &info, why, sizeof(why));
	if (!r) {
		memcpy(&id, info.ident, sizeof(id));
		if (id.kind != CV_CKPT_KIND) {
			r = -EINVAL;
			snprintf(why, sizeof(why), "mismatched image: not a "
				 "vGPU image");
		}
	}
	if (!r) {
		t = by_token(d, id.token, true);
		if (!t) {
			r = -ENOENT;
			explain(d, &id, why, sizeof(why));
		} else if (t->restore_client || t->op || t->ctl_fd < 0) {
			r = -EBUSY;
			snprintf(why, sizeof(why), "tenant %llu is busy (a "
				 "restore or an operation is in progress)",
				 (unsigned long long)t->id);
		}
	}
	if (!r) {
		gpu = req->gpu < 0 ? t->gpu : cv_d_gpu_slot(d, req->gpu);
		if (gpu < 0) {
			r = -ENODEV;
			snprintf(why, sizeof(why), "there is no gpu %d",
				 (int)req->gpu);
		}
	}
	if (!r)
		r = restore_start(d, t, c, fd, gpu, why, sizeof(why));
	if (r) {
		cv_info_rl(&rl_restore, "restore from pid %d uid %u refused: "
			   "%s", (int)c->pid, (unsigned)c->uid, why);
		close(fd);
		restore_reply(d, c, r, NULL, 0, why);
		return;
	}
	cv_info("tenant %llu: restore asked by pid %d uid %u, onto gpu %d",
		(unsigned long long)t->id, (int)c->pid, (unsigned)c->uid,
		d->gpus[gpu].index);
}

int cv_d_move(struct cv_d *d, struct cv_d_tenant *t, struct cv_d_client *c,
	      int slot, char *why, size_t size)
{
	struct cv_ctl_ckpt ck = { .tenant = t->id,
				  .flags = CV_CKPT_STOP | CV_CKPT_KEEP };
	uint64_t now = cv_now_ns();
	int fd, r;

	if (t->state == CV_STATE_STOPPED) {
		/* Its image is ours already: restore from it. */
		fd = dup(t->move_fd);
		if (fd < 0)
			return -errno;
		c->restore_is_resume = true;
		r = restore_start(d, t, c, fd, slot, why, size);
		if (r) {
			c->restore_is_resume = false;
			close(fd);
		}
		return r;
	}
	fd = memfd_create("cuvisor-move", MFD_CLOEXEC);
	if (fd < 0) {
		snprintf(why, size, "memfd_create: %s", strerror(errno));
		return -errno;
	}
	r = cv_ctl_send(t->ctl_fd, CV_CTL_W_CHECKPOINT, 0, &ck, sizeof(ck),
			&fd, 1);
	if (r < 0) {
		close(fd);
		snprintf(why, size, "cannot reach worker pid %d: %s",
			 (int)t->worker_pid, strerror(-r));
		return r;
	}
	t->move_fd = fd;
	t->moving = true;
	t->move_gpu = slot;
	t->op = CV_CTL_W_CHECKPOINT;
	t->op_start = now;
	t->op_deadline = now + (uint64_t)d->cfg.op_timeout_s *
				       CV_D_EVICT_FACTOR * 1000000000ull;
	t->op_client = c;
	c->op_tenant = t;
	cv_info("tenant %llu: moving to gpu %d, asked by pid %d uid %u: "
		"checkpoint into memory first", (unsigned long long)t->id,
		d->gpus[slot].index, (int)c->pid, (unsigned)c->uid);
	return 0;
}

void cv_d_move_checkpointed(struct cv_d *d, struct cv_d_tenant *t,
			    struct cv_d_client *c, int status)
{
	char why[256];
	int fd, r;

	t->moving = false;
	if (status < 0) {
		cv_warn("tenant %llu: move failed at its checkpoint: %s",
			(unsigned long long)t->id, strerror(-status));
		close(t->move_fd);
		t->move_fd = -1;
		if (c)
			cv_d_reply(d, c, CV_CTL_RESUME, status, NULL, 0);
		return;
	}
	fd = dup(t->move_fd);
	r = fd < 0 ? -errno : 0;
	if (!r && c)
		c->restore_is_resume = true;
	if (!r)
		r = restore_start(d, t, c, fd, t->move_gpu, why, sizeof(why));
	if (r) {
		/* Stopped, its image kept: `resume` may try again. */
		cv_warn("tenant %llu: move failed: %s; it stays stopped",
			(unsigned long long)t->id, r == -EBADF ? "dup" : why);
		if (fd >= 0)
			close(fd);
		if (c) {
			c->restore_is_resume = false;
			cv_d_reply(d, c, CV_CTL_RESUME, r, NULL, 0);
		}
	}
}

void cv_d_restore_abort(struct cv_d *d, struct cv_d_tenant *t, int status,
			const char *msg)
{
	struct cv_d_client *c = t->restore_client;

	if (t->restore_fd >= 0)
		close(t->restore_fd);
	t->restore_fd = -1;
	t->restore_client = NULL;
	if (c) {
		cv_warn("tenant %llu: restore failed: %s",
			(unsigned long long)t->id, msg);
		restore_reply(d, c, status, t, cv_now_ns() - t->restore_start,
			      msg);
	}
}

void cv_d_restore_handover(struct cv_d *d, struct cv_d_tenant *t, int status,
			   const int *fds, int nfds)
{
	struct cv_d_spawn x;
	struct cv_d_tenant *nt;
	char why[128];
	int r;

	if (!t->restore_client) {
		cv_dbg("tenant %llu: W_HANDOVER reply nobody waits for",
		       (unsigned long long)t->id);
		return;
	}
	if (status < 0 || nfds != 2) {
		snprintf(why, sizeof(why), "the holder refused to hand the "
			 "tenant over: %s", strerror(status < 0 ? -status :
						     EPROTO));
		cv_d_restore_abort(d, t, status < 0 ? status : -EPROTO, why);
		return;
	}
	nt = d->ntenants < CV_D_MAX_TENANTS ? cv_d_tenant_new() : NULL;
	if (!nt) {
		cv_d_restore_abort(d, t, -ENOMEM, "out of tenant slots or "
				   "memory");
		return;
	}
	nt->id = t->id;
	nt->guest_pid = t->guest_pid;
	nt->uid = t->uid;
	nt->gpu = t->restore_gpu;
	nt->quota = t->quota;
	nt->stats.quota = t->quota;
	memcpy(nt->token, t->token, sizeof(nt->token));
	memcpy(nt->name, t->name, sizeof(nt->name));
	nt->replaces = t;
	nt->hidden = true;
	x = (struct cv_d_spawn){ .region_fd = fds[0], .link_fd = fds[1],
				 .migrate_fd = -1,
				 .image_fd = t->restore_fd };
	r = cv_d_tenant_spawn(d, nt, &x);
	if (r < 0) {
		free(nt);
		snprintf(why, sizeof(why), "cannot start a worker: %s",
			 strerror(-r));
		cv_d_restore_abort(d, t, r, why);
		return;
	}
	close(t->restore_fd);
	t->restore_fd = -1;
	/* Restoring many GiB takes a while: the evict timeout. */
	nt->start_deadline = cv_now_ns() + (uint64_t)d->cfg.op_timeout_s *
						   CV_D_EVICT_FACTOR *
						   1000000000ull;
	cv_d_tenant_add(d, nt);
	t->replaced_by = nt;
	cv_info("tenant %llu: restoring in worker pid %d",
		(unsigned long long)t->id, (int)nt->worker_pid);
}

void cv_d_restore_done(struct cv_d *d, struct cv_d_tenant *nt, int status,
		       const char *msg)
{
	struct cv_d_tenant *t = nt->replaces;
	struct cv_d_client *c;
	char why[300];
	uint64_t ns;

	if (!t)
		return;
	nt->replaces = NULL;
	t->replaced_by = NULL;
	c = t->restore_client;
	t->restore_client = NULL;
	ns = cv_now_ns() - t->restore_start;
	if (status < 0) {
		snprintf(why, sizeof(why), "%s", msg && msg[0] ? msg :
			 "the restoring worker exited before it was ready");
		cv_warn("tenant %llu: restore failed: %s; it stays stopped",
			(unsigned long long)t->id, why);
		/* It may still live: it must not serve the guest. */
		if (!nt->dead)
			kill(nt->worker_pid, SIGKILL);
		nt->state = CV_STATE_LOST;
		restore_reply(d, c, status, t, ns, why);
		return;
	}
	/* The new worker serves the guest: the holder may go, and the
	 * tenant is the new worker's record from now on. */
	cv_ctl_send(t->ctl_fd, CV_CTL_W_STOP, 0, NULL, 0, NULL, 0);
	if (t->move_fd >= 0) {
		close(t->move_fd);
		t->move_fd = -1;
	}
	t->hidden = true;
	nt->hidden = false;
	nt->stats.mem_used = 0;
	cv_info("tenant %llu: restored in worker pid %d on gpu %d in %.1f ms",
		(unsigned long long)nt->id, (int)nt->worker_pid,
		d->gpus[nt->gpu].index, ns / 1e6);
	restore_reply(d, c, 0, nt, ns, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * Tenants and their workers. A tenant is born with an admitted ATTACH: we
 * create two socketpairs, ctl (daemon <-> worker) and link (guest <->
 * worker), and fork+exec the worker with their worker ends as fds 3 and
 * 4. The tenant is STARTING until the worker's W_READY (status 0 and the
 * region memfd); then the guest gets [memfd, link guest end] and we drop
 * our copies. Failure (READY with an error, the worker's death, no READY
 * in time) answers the ATTACH with the error instead.
 *
 * A tenant ends only when its worker is reaped (SIGCHLD). The guest's
 * control connection may close at any time without affecting it: the
 * worker sees the guest's death on the link.
 */
#include "cuvisord.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../core/log.h"

static void close_from(int lowfd)
{
	long fd, max;

#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned)lowfd, ~0u, 0u) == 0)
		return;
#endif
	max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 65536)
		max = 65536;
	for (fd = lowfd; fd < max; fd++)
		close((int)fd);
}

/*
 * In the child: fds[i] becomes fd 3 + i (ctl, link, then a restore's
 * region and image, then the token's pipe), 0 is /dev/null, 1 and 2 are
 * inherited (2 is the daemon's log), nothing else stays open. n <= 8.
 * Own process group, so that a terminal's ^C reaches only the daemon.
 * Never returns.
 */
void cv_d_worker_exec(const char *path, const char *const *argv,
		      const int *fds, int n)
{
	int nul, tmp[8], i;

	if (n > 8)
		_exit(127);
	cv_d_child_reset();
	setpgid(0, 0);
	nul = open("/dev/null", O_RDONLY);
	if (nul > 0) {
		dup2(nul, 0);
		close(nul);
	}
	/* Above the targets first, so that no dup2 below clobbers another's
	 * source; dup2 also clears O_CLOEXEC. */
	for (i = 0; i < n; i++)
		if ((tmp[i] = fcntl(fds[i], F_DUPFD, 3 + n)) < 0)
			_exit(127);
	for (i = 0; i < n; i++)
		if (dup2(tmp[i], 3 + i) < 0)
			_exit(127);
	close_from(3 + n);
	execv(path, (char *const *)argv);
	cv_err("cannot execute worker %s: %s", path, strerror(errno));
	_exit(127);
}

int cv_d_tenant_spawn(struct cv_d *d, struct cv_d_tenant *t,
		      const struct cv_d_spawn *x)
{
	char id[24], gpu[16], mem[24], tokfd[16], gpid[16], tmo[16];
	const char *argv[40];
	int ctl[2] = { -1, -1 }, link[2] = { -1, -1 }, fds[5], n = 0, r;
	int tok = -1, nfds;
	bool restore = x && x->region_fd >= 0;
	bool migrate = x && x->migrate_fd >= 0;
	pid_t pid;

	snprintf(id, sizeof(id), "%llu", (unsigned long long)t->id);
	snprintf(gpu, sizeof(gpu), "%d",
		 t->remote[0] ? t->remote_gpu : d->gpus[t->gpu].index);
	snprintf(tmo, sizeof(tmo), "%u", d->cfg.remote_timeout_s * 1000);
	snprintf(mem, sizeof(mem), "%llu", (unsigned long long)t->quota);
	snprintf(gpid, sizeof(gpid), "%d", (int)t->guest_pid);
	nfds = restore ? 5 : 3;
	snprintf(tokfd, sizeof(tokfd), "%d", 3 + nfds - 1);
	argv[n++] = d->cfg.worker;
	argv[n++] = "--tenant"; argv[n++] = id;
	argv[n++] = "--gpu"; argv[n++] = gpu;
	argv[n++] = "--mem"; argv[n++] = mem;
	if (t->remote[0]) {
		argv[n++] = "--backend"; argv[n++] = "remote";
		argv[n++] = "--remote"; argv[n++] = t->remote;
		argv[n++] = "--peer-key"; argv[n++] = d->cfg.peer_key;
		argv[n++] = "--remote-timeout"; argv[n++] = tmo;
		if (t->remote_zstd)
			argv[n++] = "--remote-compress";
	} else {
		argv[n++] = "--backend";
		argv[n++] = cv_d_backend_name(d->backend);
	}
	if (d->cfg.driver[0] && !t->remote[0]) {
		argv[n++] = "--driver";
		argv[n++] = d->cfg.driver;
	}
	argv[n++] = "--ctl-fd"; argv[n++] = "3";
	if (migrate) {
		/* Its link comes from the source, with the commit. */
		argv[n++] = "--migrate-fd"; argv[n++] = "4";
	} else {
		argv[n++] = "--link-fd"; argv[n++] = "4";
	}
	argv[n++] = "--log"; argv[n++] = d->cfg.log_level;
	argv[n++] = "--token-fd"; argv[n++] = tokfd;
	argv[n++] = "--guest-pid"; argv[n++] = gpid;
	argv[n++] = "--name"; argv[n++] = t->name;
	argv[n++] = "--daemon-socket"; argv[n++] = d->cfg.socket;
	if (restore) {
		argv[n++] = "--region-fd"; argv[n++] = "5";
		argv[n++] = "--restore-fd"; argv[n++] = "6";
	}
	argv[n] = NULL;

	/* The token never goes on the command line (cv_secret_pipe). */
	tok = cv_secret_pipe(t->token, sizeof(t->token));
	if (tok < 0) {
		r = tok;
		goto fail;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0 ||
	    (!restore && !migrate &&
	     socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, link) < 0) ||
	    fcntl(ctl[0], F_SETFL, O_NONBLOCK) < 0) {
		r = -errno;
		goto fail;
	}
	fds[0] = ctl[1];
	fds[1] = restore ? x->link_fd : migrate ? x->migrate_fd : link[1];
	fds[2] = restore ? x->region_fd : -1;
	fds[3] = restore ? x->image_fd : -1;
	fds[nfds - 1] = tok;
	pid = fork();
	if (pid < 0) {
		r = -errno;
		goto fail;
	}
	if (pid == 0)
		cv_d_worker_exec(d->cfg.worker, argv, fds, nfds);
	close(tok);
	close(ctl[1]);
	if (!restore && !migrate)
		close(link[1]);
	t->worker_pid = pid;
	t->ctl_fd = ctl[0];
	t->link_guest_fd = link[0];
	return 0;
fail:
	if (tok >= 0)
		close(tok);
	if (ctl[0] >= 0) {
		close(ctl[0]);
		close(ctl[1]);
	}
	if (link[0] >= 0) {
		close(link[0]);
		close(link[1]);
	}
	return r;
}

struct cv_d_tenant *cv_d_tenant_by_id(struct cv_d *d, uint64_t id)
{
	int i;

	for (i = 0; i < d->ntenants; i++)
		if (!d->tenants[i]->dead && !d->tenants[i]->hidden &&
		    d->tenants[i]->id == id)
			return d->tenants[i];
	return NULL;
}

int cv_d_gpu_slot(const struct cv_d *d, int index)
{
	int i;

	for (i = 0; i < d->ngpus; i++)
		if (d->gpus[i].index == index)
			return i;
	return -1;
}

struct cv_d_tenant *cv_d_tenant_new(void)
{
	struct cv_d_tenant *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->ctl_fd = -1;
	t->link_guest_fd = -1;
	t->restore_fd = -1;
	t->move_fd = -1;
	t->state = CV_STATE_STARTING;
	/* Unguessable: an image names its tenant by it. */
	if (getrandom(t->token, sizeof(t->token), 0) !=
	    (ssize_t)sizeof(t->token)) {
		free(t);
		return NULL;
	}
	return t;
}

void cv_d_tenant_add(struct cv_d *d, struct cv_d_tenant *t)
{
	d->tenants[d->ntenants++] = t;
	/* A remote vGPU takes nothing of ours. */
	if (!t->remote[0]) {
		d->gpus[t->gpu].ntenants++;
		d->gpus[t->gpu].quota_sum += t->quota;
	}
	d->had_tenant = true;
}

int cv_d_tenant_start(struct cv_d *d, struct cv_d_client *c, int gpu,
		      uint64_t quota, const struct cv_ctl_attach *a,
		      struct cv_d_tenant **out)
{
	struct cv_d_tenant *t;
	char sz[32];
	int r;

	t = cv_d_tenant_new();
	if (!t)
		return -ENOMEM;
	t->id = d->next_id++;
	t->guest_pid = c->pid;
	t->uid = c->uid;
	t->gpu = gpu;
	t->quota = quota;
	t->stats.quota = quota;
	memcpy(t->name, a->name, sizeof(t->name));
	if (a->host[0]) {
		memcpy(t->remote, a->host, sizeof(t->remote));
		t->remote_gpu = a->gpu < 0 ? 0 : a->gpu;
	}
	r = cv_d_tenant_spawn(d, t, NULL);
	if (r < 0) {
		free(t);
		return r;
	}
	t->client = c;
	t->start_deadline = cv_now_ns() +
			    d->cfg.start_timeout_s * 1000000000ull;
	cv_d_tenant_add(d, t);
	if (t->remote[0])
		cv_info("tenant %llu (\"%s\", pid %d uid %u): worker pid %d, "
			"vGPU on %s gpu %d, quota %s", (unsigned long long)t->id,
			t->name, (int)t->guest_pid, (unsigned)t->uid,
			(int)t->worker_pid, t->remote, t->remote_gpu,
			quota == UINT64_MAX ? "the GPU's" :
			cv_ctl_fmt_size(quota, sz, sizeof(sz)));
	else
		cv_info("tenant %llu (\"%s\", pid %d uid %u): worker pid %d on gpu %d, "
			"quota %s", (unsigned long long)t->id, t->name,
			(int)t->guest_pid, (unsigned)t->uid, (int)t->worker_pid,
			d->gpus[gpu].index, cv_ctl_fmt_size(quota, sz, sizeof(sz)));
	*out = t;
	return 0;
}

void cv_d_tenant_close_ctl(struct cv_d *d, struct cv_d_tenant *t)
{
	if (t->ctl_fd >= 0)
		close(t->ctl_fd);
	t->ctl_fd = -1;
	t->stats_inflight = false;
	cv_d_op_abort(d, t, d->stopping ? -ESHUTDOWN : -EIO);
}

/*
 * The start failed: answer the ATTACH with status and let go of the
 * worker (closing both ends it talks to makes a live one exit).
 */
static void fail_start(struct cv_d *d, struct cv_d_tenant *t, int status)
{
	if (t->replaces)
		cv_d_restore_done(d, t, status, NULL);
	if (t->mig_source)
		cv_d_migrate_dest_done(d, t, status, NULL);
	cv_d_attach_reply(d, t->client, status, t, NULL, 0);
	t->client = NULL;
	if (t->link_guest_fd >= 0)
		close(t->link_guest_fd);
	t->link_guest_fd = -1;
	cv_d_tenant_close_ctl(d, t);
	t->state = CV_STATE_LOST;
}

/*
 * An adopted worker is gone (its control connection closed, or we closed
 * it): not our child, so no SIGCHLD will say it ended and no reap will
 * sweep its record. Its record goes now, and with it its share of the
 * GPU's accounting.
 */
static void adopted_gone(struct cv_d *d, struct cv_d_tenant *t)
{
	cv_d_tenant_close_ctl(d, t);
	t->state = CV_STATE_LOST;
	t->dead = true;
	if (!t->remote[0]) {
		d->gpus[t->gpu].ntenants--;
		d->gpus[t->gpu].quota_sum -= t->quota;
	}
}

/* The worker broke the protocol: it is of no further use. */
static void worker_broken(struct cv_d *d, struct cv_d_tenant *t,
			  const char *why)
{
	cv_warn("tenant %llu: worker pid %d: %s; killing it",
		(unsigned long long)t->id, (int)t->worker_pid, why);
	if (t->state == CV_STATE_STARTING)
		fail_start(d, t, -EIO);
	/* Once reaped, the pid may belong to someone else. */
	if (!t->dead)
		kill(t->worker_pid, SIGKILL);
	if (t->adopted && !t->dead) {
		adopted_gone(d, t);
		return;
	}
	cv_d_tenant_close_ctl(d, t);
	t->state = CV_STATE_LOST;
}

static void on_ready(struct cv_d *d, struct cv_d_tenant *t,
		     const struct cv_ctl_ready *r, int memfd)
{
	struct stat st;
	int fds[2];

	if (t->state != CV_STATE_STARTING || t->ready) {
		worker_broken(d, t, "W_READY out of turn");
		return;
	}
	if (r->status < 0 && t->replaces) {
		cv_d_restore_done(d, t, r->status, r->msg);
		fail_start(d, t, r->status);
		return;
	}
	if (r->status < 0 && t->mig_source) {
		cv_d_migrate_dest_done(d, t, r->status, r->msg);
		fail_start(d, t, r->status);
		return;
	}
	if (t->mig_source && !t->dead) {
		/* A migration's destination runs the tenant: it had the
		 * commit. */
		t->ready = true;
		t->state = CV_STATE_RUNNING;
		cv_d_migrate_dest_done(d, t, 0, NULL);
		return;
	}
	if (r->status < 0) {
		cv_err("tenant %llu: worker pid %d failed to start: %s (%s)",
		       (unsigned long long)t->id, (int)t->worker_pid, r->msg,
		       strerror(-r->status));
		fail_start(d, t, r->status);
		return;
	}
	if (t->replaces && !t->dead) {
		t->ready = true;
		t->state = CV_STATE_RUNNING;
		cv_d_restore_done(d, t, 0, NULL);
		return;
	}
	if (t->dead) {
		/* Read while reaping: it said READY, then died. */
		fail_start(d, t, -EIO);
		return;
	}
	if (fstat(memfd, &st) < 0 || !S_ISREG(st.st_mode)) {
		worker_broken(d, t, "W_READY fd is not a memfd");
		return;
	}
	t->ready = true;
	t->state = CV_STATE_RUNNING;
	if (t->client) {
		fds[0] = memfd;
		fds[1] = t->link_guest_fd;
		cv_d_attach_reply(d, t->client, 0, t, fds, 2);
		t->client = NULL;
		cv_info("tenant %llu: ready", (unsigned long long)t->id);
	} else {
		cv_info("tenant %llu: ready, but its guest has gone",
			(unsigned long long)t->id);
	}
	/* Our copies go: from now on the worker sees HUP on the link when
	 * the guest's copy closes. */
	close(t->link_guest_fd);
	t->link_guest_fd = -1;
}

/* Stats may say the state too, except while an operation changes it. */
static void on_stats(struct cv_d_tenant *t, const struct cv_d_msg *m)
{
	t->stats_inflight = false;
	if (m->status < 0) {
		cv_dbg("tenant %llu: W_STATS failed: %s",
		       (unsigned long long)t->id, strerror(-m->status));
		return;
	}
	t->stats = m->u.stats;
	/* A restoring worker is STARTING until its W_READY. */
	if (t->state != CV_STATE_LOST && t->state != CV_STATE_STARTING &&
	    !t->op)
		t->state = m->u.stats.state;
}

void cv_d_tenant_hup(struct cv_d *d, struct cv_d_tenant *t)
{
	cv_d_migrate_source_gone(d, t);
	cv_dbg("tenant %llu: worker pid %d closed its control connection",
	       (unsigned long long)t->id, (int)t->worker_pid);
	if (t->restore_client)
		cv_d_restore_abort(d, t, -EIO, "the stopped tenant's holder "
				   "went away");
	if (t->adopted && !t->dead) {
		cv_info("tenant %llu (\"%s\"): worker pid %d went away",
			(unsigned long long)t->id, t->name, (int)t->worker_pid);
		adopted_gone(d, t);
		return;
	}
	if (t->state == CV_STATE_STARTING) {
		cv_err("tenant %llu: worker pid %d went away before it was "
		       "ready", (unsigned long long)t->id, (int)t->worker_pid);
		fail_start(d, t, -EIO);
	}
	cv_d_tenant_close_ctl(d, t);
	t->state = CV_STATE_LOST;
}

/* Handles one message from the worker: 1 if there was one, else 0. */
static int tenant_input(struct cv_d *d, struct cv_d_tenant *t)
{
	/* A migration's answer carries its report: up to 32 KiB. */
	static uint8_t buf[CV_CTL_MAX];
	int fds[CV_CTL_MAX_FDS], nfds = CV_CTL_MAX_FDS, i, r;
	struct cv_ctl_hdr h;
	struct cv_d_msg m;
	const char *why;
	char what[96];

	r = cv_ctl_recv(t->ctl_fd, &h, buf, sizeof(buf), fds, &nfds, 0);
	if (r == -EAGAIN || r == -ETIMEDOUT)
		return 0;
	if (r == -ECONNRESET) {
		cv_d_tenant_hup(d, t);
		return 0;
	}
	if (r < 0 ||
	    cv_d_msg_decode(CV_D_PEER_WORKER, &h, buf, (uint32_t)r, nfds, &m,
			    &why) < 0) {
		snprintf(what, sizeof(what), "malformed message (type %u): %s",
			 r < 0 ? 0u : h.type, r < 0 ? strerror(-r) : why);
		worker_broken(d, t, what);
		goto out;
	}
	switch (m.type) {
	case CV_CTL_W_READY:
		on_ready(d, t, &m.u.ready, nfds ? fds[0] : -1);
		break;
	case CV_CTL_W_STATS | CV_CTL_REPLY:
		on_stats(t, &m);
		break;
	case CV_CTL_W_SUSPEND | CV_CTL_REPLY:
	case CV_CTL_W_RESUME | CV_CTL_REPLY:
	case CV_CTL_W_EVICT | CV_CTL_REPLY:
	case CV_CTL_W_CHECKPOINT | CV_CTL_REPLY:
		/* A holder's kept image: ours unless we hold one. */
		if (nfds && t->move_fd < 0) {
			t->move_fd = fds[0];
			fds[0] = -1;
		}
		if (cv_d_op_reply(d, t, &m) < 0)
			worker_broken(d, t, "an operation's reply out of turn");
		break;
	case CV_CTL_W_HANDOVER | CV_CTL_REPLY:
		cv_d_restore_handover(d, t, m.status, fds, nfds);
		break;
	case CV_CTL_W_MIGRATE | CV_CTL_REPLY:
		cv_d_migrate_answer(d, t, &m);
		break;
	default: /* W_STOP reply */
		cv_dbg("tenant %llu: worker acknowledged W_STOP",
		       (unsigned long long)t->id);
		break;
	}
out:
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	return 1;
}

void cv_d_tenant_input(struct cv_d *d, struct cv_d_tenant *t)
{
	tenant_input(d, t);
}

void cv_d_tenant_timeouts(struct cv_d *d, uint64_t now)
{
	struct cv_d_tenant *t;
	int i;

	for (i = 0; i < d->ntenants; i++) {
		t = d->tenants[i];
		if (t->dead || t->state != CV_STATE_STARTING ||
		    now < t->start_deadline)
			continue;
		cv_err("tenant %llu: worker pid %d not ready after %u s; "
		       "killing it", (unsigned long long)t->id,
		       (int)t->worker_pid, d->cfg.start_timeout_s);
		fail_start(d, t, -ETIMEDOUT);
		kill(t->worker_pid, SIGKILL);
	}
}

void cv_d_tenant_ask_stats(struct cv_d *d, struct cv_d_tenant *t)
{
	int r;

	/* A restoring worker answers before it is ready: its progress. */
	if (t->dead || t->ctl_fd < 0 || (!t->ready && !t->replaces) ||
	    t->stats_inflight)
		return;
	r = cv_ctl_send(t->ctl_fd, CV_CTL_W_STATS, 0, NULL, 0, NULL, 0);
	if (r == 0) {
		t->stats_inflight = true;
	} else if (r != -EAGAIN) {
		cv_warn("tenant %llu: cannot ask worker pid %d for stats: %s",
			(unsigned long long)t->id, (int)t->worker_pid,
			strerror(-r));
		cv_d_tenant_close_ctl(d, t);
		t->state = CV_STATE_LOST;
	}
}

void cv_d_tenant_stop(struct cv_d *d, struct cv_d_tenant *t)
{
	if (t->dead)
		return;
	if (t->state == CV_STATE_STARTING)
		fail_start(d, t, -ESHUTDOWN);
	if (t->ctl_fd >= 0)
		cv_ctl_send(t->ctl_fd, CV_CTL_W_STOP, 0, NULL, 0, NULL, 0);
}

static struct cv_d_tenant *by_pid(struct cv_d *d, pid_t pid)
{
	int i;

	for (i = 0; i < d->ntenants; i++)
		if (!d->tenants[i]->dead && d->tenants[i]->worker_pid == pid)
			return d->tenants[i];
	return NULL;
}

static void tenant_gone(struct cv_d *d, struct cv_d_tenant *t, int st)
{
	char how[48];
	int i;

	t->dead = true;
	if (WIFEXITED(st))
		snprintf(how, sizeof(how), "exited with status %d",
			 WEXITSTATUS(st));
	else
		snprintf(how, sizeof(how), "killed by signal %d",
			 WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		cv_info("tenant %llu (\"%s\"): worker pid %d %s",
			(unsigned long long)t->id, t->name, (int)t->worker_pid,
			how);
	else
		cv_warn("tenant %llu (\"%s\"): worker pid %d %s",
			(unsigned long long)t->id, t->name, (int)t->worker_pid,
			how);
	/* What it said before it died (a W_READY with its reason, often)
	 * may still wait in the socket: SIGCHLD can overtake it. */
	for (i = 0; i < 16 && t->ctl_fd >= 0 && tenant_input(d, t); i++)
		;
	if (t->state == CV_STATE_STARTING)
		fail_start(d, t, -EIO);
	cv_d_tenant_close_ctl(d, t);
	cv_d_migrate_source_gone(d, t);
	if (t->link_guest_fd >= 0)
		close(t->link_guest_fd);
	t->link_guest_fd = -1;
	if (!t->remote[0]) {
		d->gpus[t->gpu].ntenants--;
		d->gpus[t->gpu].quota_sum -= t->quota;
	}
}

void cv_d_reap(struct cv_d *d)
{
	struct cv_d_tenant *t;
	pid_t pid;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		t = by_pid(d, pid);
		if (t)
			tenant_gone(d, t, st);
		else if (!cv_d_spare_reaped(d, pid, st) &&
			 !cv_d_peer_reaped(pid, st))
			cv_dbg("reaped pid %d", (int)pid);
	}
}

void cv_d_tenant_free(struct cv_d *d, struct cv_d_tenant *t)
{
	if (!t)
		return;
	if (t->client && t->client->attaching == t)
		t->client->attaching = NULL;
	cv_d_tenant_close_ctl(d, t);
	if (t->link_guest_fd >= 0)
		close(t->link_guest_fd);
	if (t->restore_fd >= 0)
		close(t->restore_fd);
	if (t->move_fd >= 0)
		close(t->move_fd);
	cv_d_migrate_forget(d, t);
	free(t->mig_reply);
	free(t);
}

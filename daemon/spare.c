/* SPDX-License-Identifier: MIT */
/*
 * Spare workers: one started worker kept ready per GPU (--spare-workers),
 * so that a migration's destination does not wait for a process, the
 * driver and a CUDA context to start (about 0.2 s on the H100, during
 * which the tenant being migrated also loses throughput to the context
 * creation).
 *
 * A spare is `cuvisor-vgpu --spare --gpu N ...` with a control socket and
 * nothing else: it reserves the guest region's address range, opens its
 * GPU and says W_SPARE. A migration to that GPU takes it (W_ASSIGN with
 * the stream) and it becomes the destination worker, an ordinary tenant
 * record from then on. A new spare is started once no migration is in
 * flight (starting a context slows the tenants on that GPU); one that
 * fails or dies is started again after a delay that doubles up to a
 * minute. Spares have no tenant: `ps` does not show them, and they exit
 * when the daemon's end of their socket closes.
 */
#include "cuvisord.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/util.h"

#define SPARE_RETRY_MS 1000ull
#define SPARE_RETRY_MAX_MS 60000ull

static bool migrating(const struct cv_d *d)
{
	int i;

	for (i = 0; i < d->ntenants; i++)
		if (!d->tenants[i]->dead && (d->tenants[i]->mig_pending ||
					     d->tenants[i]->mig_source))
			return true;
	return false;
}

/* Forgets the spare of GPU slot g (its process, if any, is reaped
 * later) and schedules the next one: at once (once no migration is in
 * flight), or after a failure 2, 4, ... up to 60 s later. */
static void drop(struct cv_d *d, int g, bool failed)
{
	struct cv_d_spare *sp = &d->gpus[g].spare;
	uint64_t ms = 0;

	if (sp->ctl_fd >= 0)
		close(sp->ctl_fd);
	sp->ctl_fd = -1;
	sp->ready = false;
	if (failed) {
		sp->fails = CV_MIN(sp->fails + 1, 16u);
		ms = CV_MIN(SPARE_RETRY_MS << sp->fails, SPARE_RETRY_MAX_MS);
	} else {
		sp->fails = 0;
	}
	sp->due = cv_now_ns() + ms * 1000000ull;
}

static int spawn(struct cv_d *d, int g)
{
	struct cv_d_spare *sp = &d->gpus[g].spare;
	const char *argv[20];
	char gpu[16];
	int ctl[2], n = 0;
	pid_t pid;

	snprintf(gpu, sizeof(gpu), "%d", d->gpus[g].index);
	argv[n++] = d->cfg.worker;
	argv[n++] = "--spare";
	argv[n++] = "--gpu"; argv[n++] = gpu;
	argv[n++] = "--backend"; argv[n++] = cv_d_backend_name(d->backend);
	if (d->cfg.driver[0]) {
		argv[n++] = "--driver";
		argv[n++] = d->cfg.driver;
	}
	argv[n++] = "--ctl-fd"; argv[n++] = "3";
	argv[n++] = "--log"; argv[n++] = d->cfg.log_level;
	argv[n++] = "--daemon-socket"; argv[n++] = d->cfg.socket;
	argv[n] = NULL;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0)
		return -errno;
	if (fcntl(ctl[0], F_SETFL, O_NONBLOCK) < 0 || (pid = fork()) < 0) {
		n = -errno;
		close(ctl[0]);
		close(ctl[1]);
		return n;
	}
	if (pid == 0)
		cv_d_worker_exec(d->cfg.worker, argv, &ctl[1], 1);
	close(ctl[1]);
	sp->pid = pid;
	sp->ctl_fd = ctl[0];
	sp->ready = false;
	cv_dbg("gpu %d: starting a spare worker, pid %d", d->gpus[g].index,
	       (int)pid);
	return 0;
}

void cv_d_spare_init(struct cv_d *d)
{
	int g;

	for (g = 0; g < d->ngpus; g++)
		d->gpus[g].spare = (struct cv_d_spare){ .ctl_fd = -1 };
}

void cv_d_spare_tick(struct cv_d *d, uint64_t now)
{
	struct cv_d_spare *sp;
	int g, r;

	if (!d->cfg.spares || d->stopping || migrating(d))
		return;
	for (g = 0; g < d->ngpus; g++) {
		sp = &d->gpus[g].spare;
		if (sp->pid || now < sp->due)
			continue;
		r = spawn(d, g);
		if (r < 0) {
			cv_warn("gpu %d: cannot start a spare worker: %s",
				d->gpus[g].index, strerror(-r));
			drop(d, g, true);
		}
	}
}

uint64_t cv_d_spare_next(const struct cv_d *d)
{
	uint64_t best = 0;
	int g;

	if (!d->cfg.spares || d->stopping || migrating(d))
		return 0; /* the end of a migration wakes the loop anyway */
	for (g = 0; g < d->ngpus; g++)
		if (!d->gpus[g].spare.pid &&
		    (!best || d->gpus[g].spare.due < best))
			best = d->gpus[g].spare.due ? d->gpus[g].spare.due : 1;
	return best;
}

void cv_d_spare_input(struct cv_d *d, int g)
{
	struct cv_d_spare *sp = &d->gpus[g].spare;
	struct cv_ctl_ready buf;
	struct cv_ctl_hdr h;
	struct cv_d_msg m;
	const char *why = "unexpected message";
	int r;

	r = cv_ctl_recv(sp->ctl_fd, &h, &buf, sizeof(buf), NULL, NULL, 0);
	if (r == -EAGAIN || r == -ETIMEDOUT)
		return;
	if (r >= 0)
		r = cv_d_msg_decode(CV_D_PEER_WORKER, &h, &buf, (uint32_t)r,
				    0, &m, &why);
	if (r >= 0 && m.type == CV_CTL_W_SPARE && !sp->ready) {
		if (m.u.ready.status == 0) {
			sp->ready = true;
			sp->fails = 0;
			cv_info("gpu %d: spare worker pid %d ready",
				d->gpus[g].index, (int)sp->pid);
			return;
		}
		why = m.u.ready.msg;
	} else if (r < 0 && r != -EBADMSG) {
		why = r == -ECONNRESET ? "it went away" : strerror(-r);
	}
	cv_warn("gpu %d: spare worker pid %d: %s", d->gpus[g].index,
		(int)sp->pid, why);
	/* 0 once reaped (cv_d_spare_reaped keeps the socket while the
	 * daemon stops): kill(0) would kill our own process group. */
	if (sp->pid > 0)
		kill(sp->pid, SIGKILL);
	drop(d, g, true);
}

bool cv_d_spare_reaped(struct cv_d *d, pid_t pid, int st)
{
	struct cv_d_spare *sp;
	int g;

	for (g = 0; g < d->ngpus; g++) {
		sp = &d->gpus[g].spare;
		if (sp->pid != pid)
			continue;
		if (sp->ctl_fd >= 0 && !d->stopping) {
			cv_warn("gpu %d: spare worker pid %d ended (status "
				"0x%x)", d->gpus[g].index, (int)pid, st);
			drop(d, g, true);
		}
		sp->pid = 0;
		return true;
	}
	return false;
}

int cv_d_spare_take(struct cv_d *d, int g, struct cv_d_tenant *nt,
		    int migrate_fd)
{
	struct cv_d_spare *sp = &d->gpus[g].spare;
	struct cv_ctl_w_assign a = { .tenant = nt->id, .mem = nt->quota,
				     .guest_pid = (uint32_t)nt->guest_pid };
	int r;

	if (!sp->ready || sp->ctl_fd < 0)
		return -EAGAIN;
	memcpy(a.token, nt->token, sizeof(a.token));
	snprintf(a.name, sizeof(a.name), "%s", nt->name);
	r = cv_ctl_send(sp->ctl_fd, CV_CTL_W_ASSIGN, 0, &a, sizeof(a),
			&migrate_fd, 1);
	if (r < 0) {
		cv_warn("gpu %d: spare worker pid %d: %s; starting a worker",
			d->gpus[g].index, (int)sp->pid, strerror(-r));
		if (sp->pid > 0)
			kill(sp->pid, SIGKILL);
		drop(d, g, true);
		return -EAGAIN;
	}
	nt->worker_pid = sp->pid;
	nt->ctl_fd = sp->ctl_fd;
	nt->link_guest_fd = -1;
	cv_info("tenant %llu: the spare worker pid %d on gpu %d takes it",
		(unsigned long long)nt->id, (int)sp->pid, d->gpus[g].index);
	/* The process is the tenant's now: not ours to reap or kill. */
	sp->pid = 0;
	sp->ctl_fd = -1;
	drop(d, g, false);
	return 0;
}

void cv_d_spare_stop(struct cv_d *d)
{
	int g;

	for (g = 0; g < d->ngpus; g++) {
		if (d->gpus[g].spare.pid)
			kill(d->gpus[g].spare.pid, SIGTERM);
		d->gpus[g].spare.pid = 0;
		if (d->gpus[g].spare.ctl_fd >= 0)
			close(d->gpus[g].spare.ctl_fd);
		d->gpus[g].spare.ctl_fd = -1;
		d->gpus[g].spare.ready = false;
	}
}

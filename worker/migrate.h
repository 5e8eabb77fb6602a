/* SPDX-License-Identifier: MIT */
/* Live migration of a vGPU between two workers (worker/migrate.c). */
#ifndef CV_MIGRATE_H
#define CV_MIGRATE_H

#include <stddef.h>
#include <stdint.h>

#include "../core/ctl.h"
#include "../core/mig.h"
#include "vgpu.h"

/*
 * The source side, on an operation thread while the consumer runs: moves
 * v to the worker at the other end of sock (which this takes) and, once
 * the destination has rebuilt everything, commits and hands it the
 * guest's link. 0: committed; the caller must reply and exit, never run
 * the tenant again. Else -errno: nothing was handed over, the tenant runs
 * here as before (resumed if this suspended it), r->msg says why. Either
 * way r and the JSON report (up to cap bytes, *len) are filled.
 */
int cv_migrate_source(struct cv_vgpu *v, int sock, int from_gpu,
		      const struct cv_ctl_migrate *req, int link_fd,
		      struct cv_ctl_migrate_r *r, char *report, size_t cap,
		      size_t *len);

/*
 * The destination side, in a worker started for it. accept reads the
 * source's HELLO (before the backend is opened: it brings the guest's
 * region) and checks it against the tenant this worker was started for.
 * run then serves the stream over a vGPU set up (adopt) on that region
 * until COMMIT: *link_fd is the guest's link, *commit_ns when COMMIT
 * came. 0, or -errno with err filled (the source has been told).
 */
int cv_migrate_accept(struct cv_mig_io *io, const uint8_t token[16],
		      uint64_t quota, struct cv_mig_hello *h, int *region_fd,
		      int *slot_fd, char *err, size_t errlen);
int cv_migrate_dest(struct cv_vgpu *v, struct cv_mig_io *io,
		    const struct cv_mig_hello *h, int slot_fd, int *link_fd,
		    uint64_t *commit_ns, char *err, size_t errlen);
/* The destination runs the tenant: tells the source how long it took,
 * then frees what the migration no longer needs. */
void cv_migrate_running(struct cv_vgpu *v, struct cv_mig_io *io, uint64_t ns);

#endif

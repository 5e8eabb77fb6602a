/* SPDX-License-Identifier: MIT */
/* Bulk moves between device memory and pageable host memory (xfer.c). */
#ifndef CV_XFER_H
#define CV_XFER_H

#include <stdint.h>

struct cv_vgpu;

/* Copies len bytes; 0, -EIO (a copy failed) or -ENOMEM/-EAGAIN. Called
 * by one operation at a time, with the consumer parked. */
int cv_xfer_d2h(struct cv_vgpu *v, void *dst, uint64_t src, uint64_t len);
int cv_xfer_h2d(struct cv_vgpu *v, uint64_t dst, const void *src,
		uint64_t len);

#endif

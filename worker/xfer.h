/* SPDX-License-Identifier: MIT */
/* Bulk moves between device memory and pageable host memory (xfer.c). */
#ifndef CV_XFER_H
#define CV_XFER_H

#include <stdbool.h>
#include <stdint.h>

struct cv_vgpu;

/* Bytes one lane moves at a time: a callback sees at most this many. */
#define CV_XFER_CHUNK (8ull << 20)

/* A device range and, without a callback, its host copy. */
struct cv_xfer_seg {
	uint64_t dev;
	uint8_t *host;
	uint64_t len;
};

/*
 * Called by a lane for each chunk of at most CV_XFER_CHUNK bytes at device
 * address dev: after the DMA out (buf holds the bytes), or before the DMA
 * in (fill buf). Runs on several threads at once. 0, or -errno to stop
 * the move (cv_xfer_run returns it).
 */
typedef int (*cv_xfer_fn)(void *arg, uint64_t dev, void *buf, uint64_t n);

/* Moves every segment, through fn when it is not NULL; v->op_done counts
 * the bytes. 0, -EIO (a copy failed), fn's error, -ENOMEM or -EAGAIN. */
int cv_xfer_run(struct cv_vgpu *v, bool to_device,
		const struct cv_xfer_seg *seg, uint32_t nseg, cv_xfer_fn fn,
		void *arg);

/* Sets the lanes up now (they are otherwise set up by the first move):
 * a migration does it before its pause. 0 or -errno. */
int cv_xfer_prepare(struct cv_vgpu *v);
/*
 * The lanes' buffers as one area (set up if need be): its memfd (still
 * ours), address and size (16 x CV_XFER_CHUNK). A live migration lends it
 * to its destination as the slot area; meanwhile its caller, the one
 * operation running, makes no move of its own. 0 or -errno.
 */
int cv_xfer_area(struct cv_vgpu *v, int *fd, uint8_t **base,
		 uint64_t *size);
/* The same on an open backend before there is a vGPU (a spare worker). */
int cv_xfer_prepare_backend(const struct cv_backend_ops *ops,
			    struct cv_backend *b);

/* Copies len bytes; 0, -EIO (a copy failed) or -ENOMEM/-EAGAIN. Called
 * by one operation at a time, with the consumer parked. */
int cv_xfer_d2h(struct cv_vgpu *v, void *dst, uint64_t src, uint64_t len);
int cv_xfer_h2d(struct cv_vgpu *v, uint64_t dst, const void *src,
		uint64_t len);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * Remote vGPUs (core/remote.h, docs/remote.md): the serving end. The
 * client end is the backend cv_backend_remote (backend.h).
 */
#ifndef CV_WORKER_REMOTE_H
#define CV_WORKER_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

/*
 * Serves the peer's worker on the authenticated connection fd with the
 * backend b (opened with open_rc; a failed open is told to the peer and
 * returned). Returns when the peer closes, goes silent for timeout_ms or
 * breaks the protocol: 0, or -errno when serving could not start.
 * session (32 bytes, or NULL: no copy lanes) is the connection's session
 * key, which authenticates the copy lanes.
 */
int cv_remote_serve(int fd, const struct cv_backend_ops *ops,
		    struct cv_backend *b, const struct cv_devinfo *dev,
		    int open_rc, uint64_t quota, int timeout_ms,
		    const char *peer, const char *host,
		    const uint8_t *session);

/*
 * One copy lane thread's compressor (lane_zstd.c). cv_lane_zstd: the n
 * bytes at p (n <= CV_RM_CHUNK) as one zstd frame (level 1) in z->buf,
 * its size when that saves a tenth at least, else 0 (send them as they
 * are); after such a miss, some pieces are not tried. Zeroed to start;
 * cv_lane_z_exit frees it.
 */
struct cv_lane_z {
	struct ZSTD_CCtx_s *cc;
	uint8_t *buf;
	uint32_t skip, miss;
};

uint32_t cv_lane_zstd(struct cv_lane_z *z, const void *p, uint32_t n);
void cv_lane_z_exit(struct cv_lane_z *z);

/*
 * A lane thread's decompressor. cv_lane_unzstd reads zlen bytes from fd
 * (by the deadline) and writes the one zstd frame they must be into dst:
 * exactly n bytes (n <= CV_RM_CHUNK), never more; 0, -EBADMSG when the
 * bytes are not such a frame (or zlen is out of bounds), or -errno.
 */
struct cv_lane_unz {
	struct ZSTD_DCtx_s *dc;
	uint8_t *buf;
};

int cv_lane_unzstd(struct cv_lane_unz *u, int fd, void *dst, size_t n,
		   uint32_t zlen, uint64_t deadline);
void cv_lane_unz_exit(struct cv_lane_unz *u);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * Remote vGPUs (core/remote.h, docs/remote.md): the serving end. The
 * client end is the backend cv_backend_remote (backend.h).
 */
#ifndef CV_WORKER_REMOTE_H
#define CV_WORKER_REMOTE_H

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

#endif

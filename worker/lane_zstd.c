/* SPDX-License-Identifier: MIT */
/*
 * zstd on the copy lanes of a remote vGPU (docs/remote.md), both ends:
 * each lane thread compresses the pieces it sends with its own context.
 * Memory that does not compress costs a compression per piece for
 * nothing (measured on the H100 over loopback: a 16 GiB migration of
 * counters took 2.3-2.5 s instead of 1.4-1.8), so after a piece that did
 * not pay the thread sends the next ones as they are, twice as many
 * after each further miss (up to 63), then tries again.
 */
#include <errno.h>
#include <stdlib.h>
#include <zstd.h>

#include "../core/peer.h"
#include "../core/remote.h"
#include "remote.h"

#define SKIP_MAX 63u

uint32_t cv_lane_zstd(struct cv_lane_z *z, const void *p, uint32_t n)
{
	size_t r;

	if (n > CV_RM_CHUNK) /* never a lane's piece: not compressed */
		return 0;
	if (z->skip) {
		z->skip--;
		return 0;
	}
	if (!z->cc && !(z->cc = ZSTD_createCCtx()))
		return 0;
	if (!z->buf && !(z->buf = malloc(ZSTD_compressBound(CV_RM_CHUNK))))
		return 0;
	r = ZSTD_compressCCtx(z->cc, z->buf, ZSTD_compressBound(CV_RM_CHUNK),
			      p, n, 1);
	if (ZSTD_isError(r) || r > n - n / 10) {
		z->skip = z->miss < 6 ? (2u << z->miss) - 1 : SKIP_MAX;
		z->miss += z->miss < 6;
		return 0;
	}
	z->miss = 0;
	return (uint32_t)r;
}

void cv_lane_z_exit(struct cv_lane_z *z)
{
	ZSTD_freeCCtx(z->cc);
	free(z->buf);
	z->cc = NULL;
	z->buf = NULL;
}

int cv_lane_unzstd(struct cv_lane_unz *u, int fd, void *dst, size_t n,
		   uint32_t zlen, uint64_t deadline)
{
	size_t got;
	int rc;

	if (!zlen || zlen > ZSTD_compressBound(CV_RM_CHUNK) || n > CV_RM_CHUNK)
		return -EBADMSG;
	if (!u->dc && !(u->dc = ZSTD_createDCtx()))
		return -ENOMEM;
	if (!u->buf && !(u->buf = malloc(ZSTD_compressBound(CV_RM_CHUNK))))
		return -ENOMEM;
	rc = cv_peer_read(fd, u->buf, zlen, deadline);
	if (rc)
		return rc;
	got = ZSTD_decompressDCtx(u->dc, dst, n, u->buf, zlen);
	return ZSTD_isError(got) || got != n ? -EBADMSG : 0;
}

void cv_lane_unz_exit(struct cv_lane_unz *u)
{
	ZSTD_freeDCtx(u->dc);
	free(u->buf);
	u->dc = NULL;
	u->buf = NULL;
}

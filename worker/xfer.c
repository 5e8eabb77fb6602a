/* SPDX-License-Identifier: MIT */
/*
 * Bulk moves between device memory and ordinary host memory for evict and
 * resume. The host side is pageable memory of any size, which DMA cannot
 * reach at full speed, so the bytes go through a few registered staging
 * buffers: each lane (a thread, a buffer, a stream) moves one chunk at a
 * time (DMA, then a CPU copy, or the reverse), so the lanes' DMAs and
 * copies overlap. There is one lane per CPU, up to XFER_THREADS: on the
 * H100's 16-core host, 16 lanes of 8 MiB moved 22-26 GB/s out and 31-40
 * GB/s back (4 lanes of 32 MiB: 8-11 and 15).
 *
 * The buffers (XFER_THREADS x XFER_CHUNK bytes, one sealed memfd) are
 * registered once, by cv_xfer_prepare or the first move, and kept for the
 * worker's life; a live migration uses them as its slot area
 * (cv_xfer_area), so that it registers nothing when it starts.
 */
#include <cuda.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/util.h"
#include "vgpu.h"
#include "xfer.h"

#define XFER_THREADS 16u
#define XFER_CHUNK CV_XFER_CHUNK

#define XFER_AREA ((uint64_t)XFER_THREADS * XFER_CHUNK)

struct xfer_lane {
	uint8_t *buf;              /* in area */
	cv_bobj stream;
};

static struct {
	pthread_mutex_t lock;      /* one move at a time; set-up */
	struct xfer_lane lane[XFER_THREADS];
	uint32_t nlanes;
	bool ready;
	int fd;                    /* the area's memfd, -1 */
	uint8_t *area;             /* XFER_AREA bytes, registered */
	bool registered;
} X = { .lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1 };

struct xfer_job {
	struct cv_vgpu *v;
	bool to_device;
	const struct cv_xfer_seg *seg;
	uint32_t nseg;
	uint64_t *first;           /* first chunk number of each segment */
	uint64_t nchunks;
	cv_xfer_fn fn;
	void *arg;
	uint64_t next;             /* next chunk number (atomic) */
	int err;                   /* first error (atomic) */
};

struct xfer_arg {
	struct xfer_job *job;
	struct xfer_lane *lane;
};

static void lanes_free(const struct cv_backend_ops *ops, struct cv_backend *b)
{
	uint32_t i;

	for (i = 0; i < XFER_THREADS; i++) {
		if (X.lane[i].stream)
			ops->stream_destroy(b, X.lane[i].stream);
		memset(&X.lane[i], 0, sizeof(X.lane[i]));
	}
	if (X.registered)
		ops->host_unregister(b, X.area);
	if (X.area)
		munmap(X.area, XFER_AREA);
	if (X.fd >= 0)
		close(X.fd);
	X.area = NULL;
	X.fd = -1;
	X.registered = false;
}

/* The lanes' buffers are one sealed memfd, registered at once: a
 * migration lends it to the destination as its slot area. */
static int lanes_setup(const struct cv_backend_ops *ops, struct cv_backend *b)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	uint32_t i;
	int rc = 0;

	X.nlanes = (uint32_t)CV_MAX(2, CV_MIN(ncpu, (long)XFER_THREADS));
	X.fd = memfd_create("cuvisor-xfer", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (X.fd < 0 || ftruncate(X.fd, (off_t)XFER_AREA) ||
	    fcntl(X.fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW |
					     F_SEAL_SEAL))
		rc = -errno;
	if (!rc) {
		X.area = mmap(NULL, XFER_AREA, PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_POPULATE, X.fd, 0);
		if (X.area == MAP_FAILED) {
			X.area = NULL;
			rc = -ENOMEM;
		}
	}
	if (!rc && ops->host_register(b, X.area, XFER_AREA))
		rc = -ENOMEM;
	X.registered = !rc;
	for (i = 0; i < X.nlanes && !rc; i++) {
		X.lane[i].buf = X.area + (uint64_t)i * XFER_CHUNK;
		if (ops->stream_create(b, 1, 0, &X.lane[i].stream))
			rc = -EIO;
	}
	if (rc)
		lanes_free(ops, b);
	return rc;
}

/* One chunk through a lane: 0, a CUresult, or what fn returned. */
static int move_chunk(struct xfer_job *j, struct xfer_lane *l,
		      const struct cv_xfer_seg *sg, uint64_t off, uint64_t n)
{
	const struct cv_backend_ops *ops = j->v->ops;
	struct cv_backend *b = j->v->b;
	int rc;

	if (j->to_device) {
		if (j->fn)
			rc = j->fn(j->arg, sg->dev + off, l->buf, n);
		else
			rc = (memcpy(l->buf, sg->host + off, n), 0);
		if (!rc)
			rc = ops->memcpy(b, CV_COPY_HTOD, sg->dev + off,
					 (uint64_t)l->buf, n, l->stream);
		return rc ? rc : ops->stream_sync(b, l->stream);
	}
	rc = ops->memcpy(b, CV_COPY_DTOH, (uint64_t)l->buf, sg->dev + off, n,
			 l->stream);
	if (!rc)
		rc = ops->stream_sync(b, l->stream);
	if (!rc && j->fn)
		rc = j->fn(j->arg, sg->dev + off, l->buf, n);
	else if (!rc)
		memcpy(sg->host + off, l->buf, n);
	return rc;
}

/* The segment holding chunk c (binary search over first[]). */
static uint32_t seg_of(const struct xfer_job *j, uint64_t c)
{
	uint32_t lo = 0, hi = j->nseg - 1, mid;

	while (lo < hi) {
		mid = lo + (hi - lo + 1) / 2;
		if (j->first[mid] <= c)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

static void *lane_main(void *arg)
{
	struct xfer_arg *a = arg;
	struct xfer_job *j = a->job;
	const struct cv_xfer_seg *sg;
	uint64_t c, off, n;
	int rc, zero;

	while ((c = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED)) <
	       j->nchunks) {
		if (__atomic_load_n(&j->err, __ATOMIC_RELAXED))
			break;
		sg = &j->seg[seg_of(j, c)];
		off = (c - j->first[sg - j->seg]) * XFER_CHUNK;
		n = CV_MIN(XFER_CHUNK, sg->len - off);
		rc = move_chunk(j, a->lane, sg, off, n);
		if (rc) {
			zero = 0;
			__atomic_compare_exchange_n(&j->err, &zero, rc, false,
						    __ATOMIC_RELAXED,
						    __ATOMIC_RELAXED);
			break;
		}
		__atomic_fetch_add(&j->v->op_done, n, __ATOMIC_RELAXED);
	}
	return NULL;
}

static int run(struct xfer_job *j)
{
	struct xfer_arg args[XFER_THREADS];
	pthread_t th[XFER_THREADS];
	bool started[XFER_THREADS] = { false };
	uint32_t i, n;
	int rc = 0;

	pthread_mutex_lock(&X.lock);
	if (!X.ready) {
		rc = lanes_setup(j->v->ops, j->v->b);
		X.ready = !rc;
	}
	/* A thread per chunk at most; one chunk (a migration's module
	 * globals, in its pause) moves on this thread, without starting
	 * any. */
	n = (uint32_t)CV_MIN((uint64_t)X.nlanes, j->nchunks);
	if (!rc && n == 1) {
		args[0] = (struct xfer_arg){ j, &X.lane[0] };
		lane_main(&args[0]);
		pthread_mutex_unlock(&X.lock);
		return j->err ? -EIO : 0;
	}
	for (i = 0; !rc && i < n; i++) {
		args[i] = (struct xfer_arg){ j, &X.lane[i] };
		started[i] = !pthread_create(&th[i], NULL, lane_main, &args[i]);
	}
	for (i = 0; !rc && i < n; i++)
		if (started[i])
			pthread_join(th[i], NULL);
	pthread_mutex_unlock(&X.lock);
	if (rc)
		return rc;
	for (i = 0; i < n && !started[i]; i++)
		;
	if (i == n)
		return -EAGAIN;
	return j->err ? -EIO : 0;
}

int cv_xfer_prepare(struct cv_vgpu *v)
{
	return cv_xfer_prepare_backend(v->ops, v->b);
}

int cv_xfer_area(struct cv_vgpu *v, int *fd, uint8_t **base,
		 uint64_t *size)
{
	int rc = cv_xfer_prepare(v);

	if (rc)
		return rc;
	*fd = X.fd;
	*base = X.area;
	*size = XFER_AREA;
	return 0;
}

int cv_xfer_prepare_backend(const struct cv_backend_ops *ops,
			    struct cv_backend *b)
{
	int rc = 0;

	pthread_mutex_lock(&X.lock);
	if (!X.ready) {
		rc = lanes_setup(ops, b);
		X.ready = !rc;
	}
	pthread_mutex_unlock(&X.lock);
	return rc;
}

int cv_xfer_run(struct cv_vgpu *v, bool to_device,
		const struct cv_xfer_seg *seg, uint32_t nseg, cv_xfer_fn fn,
		void *arg)
{
	struct xfer_job j = { .v = v, .to_device = to_device, .seg = seg,
			      .nseg = nseg, .fn = fn, .arg = arg };
	uint32_t i;
	int rc;

	if (!nseg)
		return 0;
	j.first = malloc(nseg * sizeof(*j.first));
	if (!j.first)
		return -ENOMEM;
	for (i = 0; i < nseg; i++) {
		j.first[i] = j.nchunks;
		j.nchunks += (seg[i].len + XFER_CHUNK - 1) / XFER_CHUNK;
	}
	rc = run(&j);
	free(j.first);
	if (rc == -EIO && j.err < 0)
		rc = j.err; /* fn's own -errno */
	return rc;
}

int cv_xfer_d2h(struct cv_vgpu *v, void *dst, uint64_t src, uint64_t len)
{
	struct cv_xfer_seg sg = { src, dst, len };

	return cv_xfer_run(v, false, &sg, 1, NULL, NULL);
}

int cv_xfer_h2d(struct cv_vgpu *v, uint64_t dst, const void *src,
		uint64_t len)
{
	struct cv_xfer_seg sg = { dst, (uint8_t *)src, len };

	return cv_xfer_run(v, true, &sg, 1, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * Copies and memsets (DESIGN.md decision 5). Pinned memory (the region's
 * heap) is copied by the worker directly, zero-copy. Other host memory is
 * staged through the region's chunks, pipelined: while the worker's DMA
 * moves one chunk, this thread fills or drains the next.
 *
 * Synchronous forms return once the copy is complete and report any
 * deferred error; asynchronous forms from pageable memory return once the
 * source has been staged (what the driver does too).
 */
#include <string.h>

#include "../core/util.h"
#include "guest.h"
#include "par.h"

#define D2H_DEPTH 4u /* chunks one D2H copy keeps in flight */
/* From this size on, staged copies spread their pieces over the copy
 * threads (guest/par.c). */
#define PAR_MIN (2 * CV_STAGING_CHUNK)

struct copy {
	uint64_t dst, src, len;
	enum cv_mkind dk, sk;
	uint32_t stream;
	bool async;
};

/* ---- plain copies --------------------------------------------------------- */

static int kind_of(enum cv_mkind dk, enum cv_mkind sk)
{
	if (dk == CV_M_DEVICE && sk == CV_M_DEVICE)
		return CV_COPY_DTOD;
	return dk == CV_M_DEVICE ? CV_COPY_HTOD : CV_COPY_DTOH;
}

static int direct(const struct copy *c)
{
	struct cv_memcpy m = { .dst = c->dst, .src = c->src, .len = c->len,
			       .kind = (uint32_t)kind_of(c->dk, c->sk),
			       .stream = c->stream };

	if (c->async)
		return cv_g_submit(CV_OP_MEMCPY, &m, sizeof(m));
	return cv_g_call(CV_OP_MEMCPY, true, &m, sizeof(m), NULL, 0, NULL);
}

static int finish_sync(uint32_t stream)
{
	struct cv_id a = { stream, 0 };

	return cv_g_call(CV_OP_STREAM_SYNC, true, &a, sizeof(a), NULL, 0, NULL);
}

static uint32_t npieces(uint64_t len)
{
	return (uint32_t)((len + CV_STAGING_CHUNK - 1) / CV_STAGING_CHUNK);
}

/* Piece i of a large H2D copy: stage it and queue its DMA. */
static int piece_h2d(void *arg, uint32_t i)
{
	const struct copy *c = arg;
	uint64_t off = (uint64_t)i * CV_STAGING_CHUNK;
	struct cv_memcpy m = { .dst = c->dst + off,
			       .len = CV_MIN(c->len - off, CV_STAGING_CHUNK),
			       .kind = CV_COPY_HTOD, .stream = c->stream };
	uint32_t ch;
	int rc;

	if ((rc = cv_g_chunk_get(&ch)))
		return rc;
	memcpy(cv_g_chunk_ptr(ch), (const void *)(c->src + off), m.len);
	m.src = (uint64_t)cv_g_chunk_ptr(ch);
	m.signal = ch + 1;
	rc = cv_g_submit(CV_OP_MEMCPY, &m, sizeof(m));
	cv_g_chunk_put(ch);
	return rc;
}

/*
 * A copy that fits one chunk and is waited for anyway: one command that
 * takes a reply, so the worker answers as soon as the DMA is done (no
 * trip through its completion thread). The chunk is ours until then.
 */
static int staged_one(const struct copy *c, bool h2d)
{
	struct cv_memcpy m = { .len = c->len, .stream = c->stream,
			       .kind = h2d ? CV_COPY_HTOD : CV_COPY_DTOH };
	uint32_t ch;
	int rc;

	if ((rc = cv_g_chunk_get(&ch)))
		return rc;
	if (h2d) {
		memcpy(cv_g_chunk_ptr(ch), (const void *)c->src, c->len);
		m.dst = c->dst;
		m.src = (uint64_t)cv_g_chunk_ptr(ch);
	} else {
		m.dst = (uint64_t)cv_g_chunk_ptr(ch);
		m.src = c->src;
	}
	rc = cv_g_call(CV_OP_MEMCPY, true, &m, sizeof(m), NULL, 0, NULL);
	if (!rc && !h2d)
		memcpy((void *)c->dst, cv_g_chunk_ptr(ch), c->len);
	if (rc != CUDA_ERROR_DEVICE_UNAVAILABLE)
		__atomic_store_n(&g.chunk_state[ch], CV_CHUNK_IDLE,
				 __ATOMIC_RELAXED);
	cv_g_chunk_put(ch);
	return rc;
}

static int staged_h2d(const struct copy *c)
{
	struct cv_memcpy m = { .kind = CV_COPY_HTOD, .stream = c->stream };
	uint64_t off, n;
	uint32_t ch;
	int rc;

	if (!c->async && c->len <= CV_STAGING_CHUNK)
		return staged_one(c, true);
	if (c->len >= PAR_MIN) {
		rc = cv_par_for(npieces(c->len), piece_h2d, (void *)c);
		if (rc)
			return rc;
		return c->async ? CUDA_SUCCESS : finish_sync(c->stream);
	}
	for (off = 0; off < c->len; off += n) {
		n = CV_MIN(c->len - off, CV_STAGING_CHUNK);
		rc = cv_g_chunk_get(&ch);
		if (rc)
			return rc;
		memcpy(cv_g_chunk_ptr(ch), (const void *)(c->src + off), n);
		m.dst = c->dst + off;
		m.src = (uint64_t)cv_g_chunk_ptr(ch);
		m.len = n;
		m.signal = ch + 1;
		rc = cv_g_submit(CV_OP_MEMCPY, &m, sizeof(m));
		cv_g_chunk_put(ch);
		if (rc)
			return rc;
	}
	return c->async ? CUDA_SUCCESS : finish_sync(c->stream);
}

/* Issues the D2H copy of piece [off, off + n) into chunk ch. */
static int d2h_issue(const struct copy *c, uint32_t ch, uint64_t off,
		     uint64_t n)
{
	struct cv_memcpy m = { .dst = (uint64_t)cv_g_chunk_ptr(ch),
			       .src = c->src + off, .len = n,
			       .kind = CV_COPY_DTOH, .stream = c->stream,
			       .signal = ch + 1 };

	return cv_g_submit(CV_OP_MEMCPY, &m, sizeof(m));
}

/* Piece i of a large D2H copy: DMA it into a chunk, then copy it out. */
static int piece_d2h(void *arg, uint32_t i)
{
	const struct copy *c = arg;
	uint64_t off = (uint64_t)i * CV_STAGING_CHUNK;
	uint64_t n = CV_MIN(c->len - off, CV_STAGING_CHUNK);
	uint32_t ch;
	int rc;

	if ((rc = cv_g_chunk_get(&ch)))
		return rc;
	rc = d2h_issue(c, ch, off, n);
	if (!rc)
		rc = cv_g_chunk_wait(ch);
	if (!rc)
		memcpy((void *)(c->dst + off), cv_g_chunk_ptr(ch), n);
	cv_g_chunk_put(ch);
	return rc;
}

static int staged_d2h(const struct copy *c)
{
	uint32_t ch[D2H_DEPTH], nch = 0, i;
	uint64_t issued = 0, done = 0, n;
	int rc = 0, err = 0;

	if (c->len <= CV_STAGING_CHUNK)
		return staged_one(c, false);
	if (c->len >= PAR_MIN) {
		err = cv_par_for(npieces(c->len), piece_d2h, (void *)c);
		if (err == CUDA_ERROR_UNKNOWN) /* a chunk failed: ask why */
			err = cv_g_call(CV_OP_NOP, true, NULL, 0, NULL, 0,
					NULL);
		return err;
	}

	/* Fill the pipeline. */
	while (nch < D2H_DEPTH && issued < c->len) {
		if ((rc = cv_g_chunk_get(&ch[nch])))
			break;
		n = CV_MIN(c->len - issued, CV_STAGING_CHUNK);
		if ((rc = d2h_issue(c, ch[nch], issued, n))) {
			cv_g_chunk_put(ch[nch]);
			break;
		}
		issued += n;
		nch++;
	}
	/* Drain in order, reissuing each chunk for the next piece. */
	for (i = 0; done < issued; i = (i + 1) % nch) {
		n = CV_MIN(c->len - done, CV_STAGING_CHUNK);
		if ((rc = cv_g_chunk_wait(ch[i]))) {
			err = err ? err : rc;
			if (rc == CUDA_ERROR_DEVICE_UNAVAILABLE)
				break;
		} else if (!err) {
			memcpy((void *)(c->dst + done), cv_g_chunk_ptr(ch[i]), n);
		}
		done += n;
		if (issued < c->len && !err) {
			n = CV_MIN(c->len - issued, CV_STAGING_CHUNK);
			__atomic_store_n(&g.chunk_state[ch[i]], CV_CHUNK_BUSY,
					 __ATOMIC_RELAXED);
			if ((rc = d2h_issue(c, ch[i], issued, n)))
				err = rc;
			else
				issued += n;
		}
	}
	for (i = 0; i < nch; i++)
		cv_g_chunk_put(ch[i]);
	if (err == CUDA_ERROR_UNKNOWN) /* a chunk failed: ask why */
		err = cv_g_call(CV_OP_NOP, true, NULL, 0, NULL, 0, NULL);
	return err ? err : rc;
}

/*
 * want: the direction the API named (CV_COPY_*), or 0 for cuMemcpy's
 * unified addressing, where the pointers decide.
 */
static CUresult copy(uint64_t dst, uint64_t src, uint64_t len, int want,
		     CUstream s, bool ptds, bool async)
{
	struct copy c = { dst, src, len, 0, 0, 0, async };
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	if ((rc = cv_mem_classify(dst, len, &c.dk)) ||
	    (rc = cv_mem_classify(src, len, &c.sk)))
		return rc;
	if ((want == CV_COPY_HTOD && c.dk != CV_M_DEVICE) ||
	    (want == CV_COPY_DTOH && c.sk != CV_M_DEVICE) ||
	    (want == CV_COPY_DTOD && (c.dk != CV_M_DEVICE ||
				      c.sk != CV_M_DEVICE)))
		return CUDA_ERROR_INVALID_VALUE;
	if ((rc = cv_stream_wire(s, ptds, &c.stream)))
		return rc;
	if (!len)
		return CUDA_SUCCESS;
	if (c.dk != CV_M_DEVICE && c.sk != CV_M_DEVICE) {
		/* host to host: order after earlier work, then copy here */
		if (!async && (rc = finish_sync(c.stream)))
			return rc;
		memmove((void *)dst, (const void *)src, len);
		return CUDA_SUCCESS;
	}
	if (c.dk != CV_M_HOST && c.sk != CV_M_HOST)
		return direct(&c);
	return c.dk == CV_M_DEVICE ? staged_h2d(&c) : staged_d2h(&c);
}

#define P(x) ((uint64_t)(uintptr_t)(x))

CV_API CUresult cuMemcpyHtoD_v2(CUdeviceptr d, const void *h, size_t n)
{
	return copy(d, P(h), n, CV_COPY_HTOD, NULL, false, false);
}
CV_API CUresult cuMemcpyHtoD_v2_ptds(CUdeviceptr d, const void *h, size_t n)
{
	return copy(d, P(h), n, CV_COPY_HTOD, NULL, true, false);
}
CV_API CUresult cuMemcpyDtoH_v2(void *h, CUdeviceptr d, size_t n)
{
	return copy(P(h), d, n, CV_COPY_DTOH, NULL, false, false);
}
CV_API CUresult cuMemcpyDtoH_v2_ptds(void *h, CUdeviceptr d, size_t n)
{
	return copy(P(h), d, n, CV_COPY_DTOH, NULL, true, false);
}
CV_API CUresult cuMemcpyDtoD_v2(CUdeviceptr d, CUdeviceptr s, size_t n)
{
	return copy(d, s, n, CV_COPY_DTOD, NULL, false, false);
}
CV_API CUresult cuMemcpyDtoD_v2_ptds(CUdeviceptr d, CUdeviceptr s, size_t n)
{
	return copy(d, s, n, CV_COPY_DTOD, NULL, true, false);
}
CV_API CUresult cuMemcpy(CUdeviceptr d, CUdeviceptr s, size_t n)
{
	return copy(d, s, n, 0, NULL, false, false);
}
CV_API CUresult cuMemcpy_ptds(CUdeviceptr d, CUdeviceptr s, size_t n)
{
	return copy(d, s, n, 0, NULL, true, false);
}
CV_API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void *h, size_t n,
				     CUstream s)
{
	return copy(d, P(h), n, CV_COPY_HTOD, s, false, true);
}
CV_API CUresult cuMemcpyHtoDAsync_v2_ptsz(CUdeviceptr d, const void *h,
					  size_t n, CUstream s)
{
	return copy(d, P(h), n, CV_COPY_HTOD, s, true, true);
}
CV_API CUresult cuMemcpyDtoHAsync_v2(void *h, CUdeviceptr d, size_t n,
				     CUstream s)
{
	return copy(P(h), d, n, CV_COPY_DTOH, s, false, true);
}
CV_API CUresult cuMemcpyDtoHAsync_v2_ptsz(void *h, CUdeviceptr d, size_t n,
					  CUstream s)
{
	return copy(P(h), d, n, CV_COPY_DTOH, s, true, true);
}
CV_API CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr d, CUdeviceptr src, size_t n,
				     CUstream s)
{
	return copy(d, src, n, CV_COPY_DTOD, s, false, true);
}
CV_API CUresult cuMemcpyDtoDAsync_v2_ptsz(CUdeviceptr d, CUdeviceptr src,
					  size_t n, CUstream s)
{
	return copy(d, src, n, CV_COPY_DTOD, s, true, true);
}
CV_API CUresult cuMemcpyAsync(CUdeviceptr d, CUdeviceptr src, size_t n,
			      CUstream s)
{
	return copy(d, src, n, 0, s, false, true);
}
CV_API CUresult cuMemcpyAsync_ptsz(CUdeviceptr d, CUdeviceptr src, size_t n,
				   CUstream s)
{
	return copy(d, src, n, 0, s, true, true);
}

/* ---- 2D copies ------------------------------------------------------------- */

struct side2d {
	uint64_t base;   /* address of the first byte copied */
	uint64_t pitch;
	enum cv_mkind kind;
};

static int side_2d(CUmemorytype t, const void *host, CUdeviceptr dev,
		   size_t x, size_t y, size_t pitch, size_t w, size_t h,
		   struct side2d *s)
{
	uint64_t span;
	int rc;

	if (t == CU_MEMORYTYPE_ARRAY)
		return CUDA_ERROR_NOT_SUPPORTED;
	if (t == CU_MEMORYTYPE_HOST)
		s->base = P(host);
	else if (t == CU_MEMORYTYPE_DEVICE || t == CU_MEMORYTYPE_UNIFIED)
		s->base = dev;
	else
		return CUDA_ERROR_INVALID_VALUE;
	if (h > 1 && pitch < w)
		return CUDA_ERROR_INVALID_VALUE;
	if (__builtin_mul_overflow((uint64_t)y, (uint64_t)pitch, &span) ||
	    __builtin_add_overflow(s->base, span + x, &s->base))
		return CUDA_ERROR_INVALID_VALUE;
	s->pitch = pitch;
	span = (uint64_t)pitch * (h - 1) + w;
	rc = cv_mem_classify(s->base, span, &s->kind);
	if (rc)
		return rc;
	if (t == CU_MEMORYTYPE_DEVICE && s->kind != CV_M_DEVICE)
		return CUDA_ERROR_INVALID_VALUE;
	if (t == CU_MEMORYTYPE_HOST && s->kind == CV_M_DEVICE)
		return CUDA_ERROR_INVALID_VALUE;
	return CUDA_SUCCESS;
}

static int submit2d(struct cv_memcpy2d *m, bool async)
{
	if (async)
		return cv_g_submit(CV_OP_MEMCPY_2D, m, sizeof(*m));
	return cv_g_call(CV_OP_MEMCPY_2D, true, m, sizeof(*m), NULL, 0, NULL);
}

/* Rows through staging, as many rows per chunk as fit. */
static int staged_2d(const struct side2d *d, const struct side2d *s,
		     uint64_t w, uint64_t h, uint32_t stream, bool async)
{
	bool h2d = d->kind == CV_M_DEVICE;
	uint64_t per = CV_STAGING_CHUNK / w, r0, nr, r;
	struct cv_memcpy2d m = { .width = w, .stream = stream,
				 .kind = h2d ? CV_COPY_HTOD : CV_COPY_DTOH };
	uint8_t *cp;
	uint32_t ch;
	int rc;

	for (r0 = 0; r0 < h; r0 += nr) {
		nr = CV_MIN(per, h - r0);
		if ((rc = cv_g_chunk_get(&ch)))
			return rc;
		cp = cv_g_chunk_ptr(ch);
		if (h2d)
			for (r = 0; r < nr; r++)
				memcpy(cp + r * w, (const void *)(s->base +
					(r0 + r) * s->pitch), w);
		m.dst = h2d ? d->base + r0 * d->pitch : P(cp);
		m.dst_pitch = h2d ? d->pitch : w;
		m.src = h2d ? P(cp) : s->base + r0 * s->pitch;
		m.src_pitch = h2d ? w : s->pitch;
		m.height = nr;
		m.signal = ch + 1;
		rc = cv_g_submit(CV_OP_MEMCPY_2D, &m, sizeof(m));
		if (!rc && !h2d && !(rc = cv_g_chunk_wait(ch)))
			for (r = 0; r < nr; r++)
				memcpy((void *)(d->base + (r0 + r) * d->pitch),
				       cp + r * w, w);
		cv_g_chunk_put(ch);
		if (rc == CUDA_ERROR_UNKNOWN)
			return cv_g_call(CV_OP_NOP, true, NULL, 0, NULL, 0,
					 NULL);
		if (rc)
			return rc;
	}
	return h2d && !async ? finish_sync(stream) : CUDA_SUCCESS;
}

static CUresult copy2d(const CUDA_MEMCPY2D *p, CUstream st, bool ptds,
		       bool async)
{
	struct side2d d, s;
	struct cv_memcpy2d m;
	uint32_t stream;
	uint64_t r;
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	if (!p)
		return CUDA_ERROR_INVALID_VALUE;
	if (!p->WidthInBytes || !p->Height)
		return CUDA_SUCCESS;
	if ((rc = side_2d(p->dstMemoryType, p->dstHost, p->dstDevice,
			  p->dstXInBytes, p->dstY, p->dstPitch, p->WidthInBytes,
			  p->Height, &d)) ||
	    (rc = side_2d(p->srcMemoryType, p->srcHost, p->srcDevice,
			  p->srcXInBytes, p->srcY, p->srcPitch, p->WidthInBytes,
			  p->Height, &s)) ||
	    (rc = cv_stream_wire(st, ptds, &stream)))
		return rc;
	if (d.kind != CV_M_DEVICE && s.kind != CV_M_DEVICE) {
		for (r = 0; r < p->Height; r++)
			memmove((void *)(d.base + r * d.pitch),
				(const void *)(s.base + r * s.pitch),
				p->WidthInBytes);
		return CUDA_SUCCESS;
	}
	if (d.kind == CV_M_HOST || s.kind == CV_M_HOST) {
		if (p->WidthInBytes > CV_STAGING_CHUNK) {
			/* very wide rows: one staged copy per row */
			for (r = 0; r < p->Height; r++) {
				rc = copy(d.base + r * d.pitch,
					  s.base + r * s.pitch, p->WidthInBytes,
					  0, st, ptds, async);
				if (rc)
					return rc;
			}
			return CUDA_SUCCESS;
		}
		return staged_2d(&d, &s, p->WidthInBytes, p->Height, stream,
				 async);
	}
	m = (struct cv_memcpy2d){ d.base, d.pitch, s.base, s.pitch,
				  p->WidthInBytes, p->Height,
				  (uint32_t)kind_of(d.kind, s.kind), stream, 0,
				  0 };
	return submit2d(&m, async);
}

CV_API CUresult cuMemcpy2D_v2(const CUDA_MEMCPY2D *p)
{
	return copy2d(p, NULL, false, false);
}
CV_API CUresult cuMemcpy2D_v2_ptds(const CUDA_MEMCPY2D *p)
{
	return copy2d(p, NULL, true, false);
}
CV_API CUresult cuMemcpy2DUnaligned_v2(const CUDA_MEMCPY2D *p)
{
	return copy2d(p, NULL, false, false);
}
CV_API CUresult cuMemcpy2DUnaligned_v2_ptds(const CUDA_MEMCPY2D *p)
{
	return copy2d(p, NULL, true, false);
}
CV_API CUresult cuMemcpy2DAsync_v2(const CUDA_MEMCPY2D *p, CUstream s)
{
	return copy2d(p, s, false, true);
}
CV_API CUresult cuMemcpy2DAsync_v2_ptsz(const CUDA_MEMCPY2D *p, CUstream s)
{
	return copy2d(p, s, true, true);
}

/* ---- memsets ----------------------------------------------------------------- */

/*
 * Memsets of device memory are asynchronous to the host even in their
 * "synchronous" form, so both forms are queued; errors are deferred.
 */
static CUresult memset_any(CUdeviceptr dst, size_t pitch, uint32_t value,
			   uint32_t elem, size_t w, size_t h, CUstream s,
			   bool ptds)
{
	struct cv_memset m = { .dst = dst, .pitch = pitch, .width = w,
			       .height = h, .value = value, .elem = elem };
	enum cv_mkind k;
	uint64_t span, row;
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	if (!w || !h)
		return CUDA_SUCCESS;
	/* Every product checked: a count of 2^62 + 1 words is no 4 bytes. */
	if ((dst % elem) ||
	    __builtin_mul_overflow((uint64_t)w, (uint64_t)elem, &row) ||
	    (h > 1 && pitch < row) ||
	    __builtin_mul_overflow((uint64_t)(h - 1), (uint64_t)pitch, &span) ||
	    __builtin_add_overflow(span, row, &span))
		return CUDA_ERROR_INVALID_VALUE;
	if ((rc = cv_mem_classify(dst, span, &k)))
		return rc;
	if (k != CV_M_DEVICE)
		return CUDA_ERROR_INVALID_VALUE;
	if ((rc = cv_stream_wire(s, ptds, &m.stream)))
		return rc;
	if (h == 1)
		m.pitch = 0;
	return cv_g_submit(CV_OP_MEMSET, &m, sizeof(m));
}

#define MEMSET1(name, T, E)                                                  \
	CV_API CUresult name##_v2(CUdeviceptr d, T v, size_t n)              \
	{                                                                    \
		return memset_any(d, 0, v, E, n, 1, NULL, false);            \
	}                                                                    \
	CV_API CUresult name##_v2_ptds(CUdeviceptr d, T v, size_t n)         \
	{                                                                    \
		return memset_any(d, 0, v, E, n, 1, NULL, true);             \
	}                                                                    \
	CV_API CUresult name##Async(CUdeviceptr d, T v, size_t n, CUstream s) \
	{                                                                    \
		return memset_any(d, 0, v, E, n, 1, s, false);               \
	}                                                                    \
	CV_API CUresult name##Async_ptsz(CUdeviceptr d, T v, size_t n,       \
					 CUstream s)                         \
	{                                                                    \
		return memset_any(d, 0, v, E, n, 1, s, true);                \
	}

#define MEMSET2(name, T, E)                                                  \
	CV_API CUresult name##_v2(CUdeviceptr d, size_t p, T v, size_t w,    \
				  size_t h)                                  \
	{                                                                    \
		return memset_any(d, p, v, E, w, h, NULL, false);            \
	}                                                                    \
	CV_API CUresult name##_v2_ptds(CUdeviceptr d, size_t p, T v,         \
				       size_t w, size_t h)                   \
	{                                                                    \
		return memset_any(d, p, v, E, w, h, NULL, true);             \
	}                                                                    \
	CV_API CUresult name##Async(CUdeviceptr d, size_t p, T v, size_t w,  \
				    size_t h, CUstream s)                    \
	{                                                                    \
		return memset_any(d, p, v, E, w, h, s, false);               \
	}                                                                    \
	CV_API CUresult name##Async_ptsz(CUdeviceptr d, size_t p, T v,       \
					 size_t w, size_t h, CUstream s)     \
	{                                                                    \
		return memset_any(d, p, v, E, w, h, s, true);                \
	}

MEMSET1(cuMemsetD8, unsigned char, 1)
MEMSET1(cuMemsetD16, unsigned short, 2)
MEMSET1(cuMemsetD32, unsigned int, 4)
MEMSET2(cuMemsetD2D8, unsigned char, 1)
MEMSET2(cuMemsetD2D16, unsigned short, 2)
MEMSET2(cuMemsetD2D32, unsigned int, 4)

/* SPDX-License-Identifier: MIT */
/*
 * Checkpoint images: the writer and the reader (see image.h and
 * docs/image-format.md). The header is in core/image_hdr.c.
 *
 * Writer locking: w->lock guards the offset and the index (end, ents,
 * nsec, cap, finished) and the cache of idle compression contexts.
 * Compression, hashing and pwrite run outside it, so threads that add
 * sections at once only meet to reserve their offsets. err and bytes are
 * atomics, read without the lock.
 *
 * The reader keeps no mutable state after open: reads are preads into
 * the caller's buffer (or a buffer of their own), so any number of
 * threads may read sections at once.
 */
#include "image.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "hash.h"
#include "util.h"

#define CCTX_CACHE 8    /* idle compression contexts kept for reuse */
#define PIECE (1u << 20) /* hashed while in the cache, then copied */
#define ZSTD_MIN_LEN 64 /* shorter sections are stored raw */
#define ZSTD_MAX_LEVEL 19

struct cv_img_w {
	int fd;
	int level;
	bool regular; /* a regular file (fdatasync must work) */
	pthread_mutex_t lock;
	uint64_t end;            /* next free byte; under lock */
	struct cv_img_ent *ents; /* host order, in offset order; under lock */
	uint32_t nsec, cap;      /* under lock */
	bool finished;           /* under lock */
	ZSTD_CCtx *idle[CCTX_CACHE]; /* under lock */
	unsigned nidle;
	_Atomic int err;         /* first write error, sticky */
	_Atomic uint64_t bytes;  /* stored bytes written */
	/* cv_img_w_expect's window: file bytes [map_lo, map_hi) are
	 * reserved and mapped at map + (offset - map_base). */
	uint8_t *map;
	uint64_t map_base, map_lo, map_hi, map_len;
};

struct cv_img_r {
	int fd;
	struct cv_img_info info;
	struct cv_img_sec *secs; /* info.nsec of them */
};

/* ---- writer ---- */

int cv_img_w_open(struct cv_img_w **wp, int fd, int level)
{
	struct cv_img_w *w;
	struct stat st;
	int fl;

	*wp = NULL;
	if (level < 0 || level > ZSTD_MAX_LEVEL)
		return -EINVAL;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fstat(fd, &st) < 0)
		return -errno;
	/* O_APPEND makes Linux ignore pwrite's offset. */
	if ((fl & O_APPEND) || (fl & O_ACCMODE) == O_RDONLY)
		return -EINVAL;
	if (S_ISREG(st.st_mode) && ftruncate(fd, 0) < 0)
		return -errno;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	if (pthread_mutex_init(&w->lock, NULL)) {
		free(w);
		return -ENOMEM;
	}
	w->fd = fd;
	w->level = level;
	w->regular = S_ISREG(st.st_mode);
	w->end = CV_IMG_HDR_SIZE;
	atomic_init(&w->err, 0);
	atomic_init(&w->bytes, 0);
	*wp = w;
	return 0;
}

void cv_img_w_free(struct cv_img_w *w)
{
	unsigned i;

	if (!w)
		return;
	for (i = 0; i < w->nidle; i++)
		ZSTD_freeCCtx(w->idle[i]);
	if (w->map)
		munmap(w->map, w->map_len);
	pthread_mutex_destroy(&w->lock);
	free(w->ents);
	free(w);
}

uint64_t cv_img_w_bytes(const struct cv_img_w *w)
{
	return atomic_load_explicit(&((struct cv_img_w *)w)->bytes,
				    memory_order_relaxed);
}

/* Keeps the first error; returns the one that is kept. */
static int w_set_err(struct cv_img_w *w, int err)
{
	int old = 0;

	if (atomic_compare_exchange_strong(&w->err, &old, err))
		return err;
	return old;
}

static int w_pwrite(int fd, const void *p, size_t n, uint64_t off)
{
	const uint8_t *q = p;
	ssize_t k;

	while (n) {
		k = pwrite(fd, q, n, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -EIO;
		q += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	return 0;
}

static ZSTD_CCtx *cctx_get(struct cv_img_w *w)
{
	ZSTD_CCtx *c = NULL;

	pthread_mutex_lock(&w->lock);
	if (w->nidle)
		c = w->idle[--w->nidle];
	pthread_mutex_unlock(&w->lock);
	return c ? c : ZSTD_createCCtx();
}

static void cctx_put(struct cv_img_w *w, ZSTD_CCtx *c)
{
	pthread_mutex_lock(&w->lock);
	if (w->nidle < CCTX_CACHE) {
		w->idle[w->nidle++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&w->lock);
	ZSTD_freeCCtx(c);
}

/*
 * Compresses len bytes into a new buffer (*out, *outlen) when that makes
 * them smaller; *out stays NULL when they are to be stored raw.
 * 0 or -ENOMEM.
 */
static int w_compress(struct cv_img_w *w, const void *data, uint64_t len,
		      void **out, uint64_t *outlen)
{
	ZSTD_CCtx *c;
	void *dst;
	size_t n;

	*out = NULL;
	if (!w->level || len < ZSTD_MIN_LEN)
		return 0;
	dst = malloc(len);
	c = cctx_get(w);
	if (!dst || !c) {
		free(dst);
		ZSTD_freeCCtx(c);
		return -ENOMEM;
	}
	/* One byte less than raw: zstd fails when it would not shrink. */
	n = ZSTD_compressCCtx(c, dst, len - 1, data, len, w->level);
	cctx_put(w, c);
	if (ZSTD_isError(n)) {
		free(dst);
		return 0;
	}
	*out = dst;
	*outlen = n;
	return 0;
}

/* Index room for one more entry; lock held. 0 or -ENOMEM/-E2BIG. */
static int w_grow_locked(struct cv_img_w *w)
{
	struct cv_img_ent *e;
	uint32_t cap;

	if (w->nsec >= CV_IMG_NSEC_MAX)
		return -E2BIG;
	if (w->nsec < w->cap)
		return 0;
	cap = w->cap ? CV_MIN(w->cap * 2, CV_IMG_NSEC_MAX) : 64;
	e = realloc(w->ents, (size_t)cap * sizeof(*e));
	if (!e)
		return -ENOMEM;
	w->ents = e;
	w->cap = cap;
	return 0;
}

/* Gives e its offset and appends it to the index as entry *idx.
 * 0 or -errno. */
static int w_reserve(struct cv_img_w *w, struct cv_img_ent *e, uint32_t *idx)
{
	int ret;

	pthread_mutex_lock(&w->lock);
	ret = w->finished ? -EINVAL : w_grow_locked(w);
	if (!ret) {
		e->off = w->end;
		w->end += e->stored;
		*idx = w->nsec;
		w->ents[w->nsec++] = *e;
	}
	pthread_mutex_unlock(&w->lock);
	return ret;
}

/* memcpy that also hashes what it copies, piece by piece. */
static void w_copy_hashed(uint8_t *dst, const uint8_t *src, uint64_t n,
			  uint8_t hash[CV_HASH_LEN])
{
	struct cv_hash_st st;
	uint64_t k;

	cv_hash_init(&st);
	for (; n; n -= k, src += k, dst += k) {
		k = CV_MIN(n, PIECE);
		cv_hash_update(&st, src, k);
		memcpy(dst, src, k);
	}
	cv_hash_final(&st, hash);
}

int cv_img_w_add(struct cv_img_w *w, uint32_t type, uint64_t aux,
		 const void *data, uint64_t len)
{
	struct cv_img_ent e = { .type = type, .aux = aux, .raw = len,
				.stored = len };
	const void *src = len ? data : "";
	void *z = NULL;
	uint32_t idx;
	bool mapped;
	int ret;

	if (len > CV_IMG_SEC_MAX || !src)
		return -EINVAL;
	ret = atomic_load(&w->err);
	if (ret)
		return ret;
	ret = w_compress(w, src, len, &z, &e.stored);
	if (ret)
		return ret;
	if (z) {
		src = z;
		e.flags = CV_IMG_SEC_ZSTD;
	}
	/* The offset first, then the hash: into the mapped window each
	 * piece is hashed and copied while it is in the cache. The entry's
	 * hash is filled in afterwards (only finish reads the index, after
	 * every add returned). */
	ret = w_reserve(w, &e, &idx);
	if (ret)
		goto out;
	mapped = w->map && e.off >= w->map_lo &&
		 e.stored <= w->map_hi - e.off;
	if (mapped)
		w_copy_hashed(w->map + (e.off - w->map_base), src, e.stored,
			      e.hash);
	else
		cv_hash128(src, e.stored, e.hash);
	pthread_mutex_lock(&w->lock);
	memcpy(w->ents[idx].hash, e.hash, sizeof(e.hash));
	pthread_mutex_unlock(&w->lock);
	if (!mapped)
		ret = w_pwrite(w->fd, src, e.stored, e.off);
	if (ret)
		ret = w_set_err(w, ret);
	else
		atomic_fetch_add(&w->bytes, e.stored);
out:
	free(z);
	return ret;
}

int cv_img_w_expect(struct cv_img_w *w, uint64_t len)
{
	uint64_t lo, base, pg = (uint64_t)sysconf(_SC_PAGESIZE);
	void *p;

	if (w->level || !w->regular || w->map || len < CV_IMG_MAP_MIN)
		return 0;
	pthread_mutex_lock(&w->lock);
	lo = w->end;
	pthread_mutex_unlock(&w->lock);
	/* The space first: a full disk fails here, before any copy, and a
	 * store into the mapping can never meet ENOSPC (SIGBUS). */
	if (fallocate(w->fd, 0, (off_t)lo, (off_t)len) < 0) {
		if (errno == EOPNOTSUPP || errno == ENOSYS)
			return 0;
		return w_set_err(w, -errno);
	}
	base = lo & ~(pg - 1);
	p = mmap(NULL, lo + len - base, PROT_READ | PROT_WRITE, MAP_SHARED,
		 w->fd, (off_t)base);
	if (p == MAP_FAILED)
		return 0; /* pwrite, into the space reserved all the same */
	madvise(p, lo + len - base, MADV_HUGEPAGE);
	w->map = p;
	w->map_base = base;
	w->map_lo = lo;
	w->map_hi = lo + len;
	w->map_len = lo + len - base;
	return 0;
}

/* fdatasync; a device that cannot sync (/dev/full, a pipe) is let be. */
static int w_sync(struct cv_img_w *w)
{
	if (fdatasync(w->fd) == 0)
		return 0;
	if (!w->regular && errno == EINVAL)
		return 0;
	return -errno;
}

/* Writes the index after the payloads and fills h's index fields. */
static int w_write_index(struct cv_img_w *w, struct cv_img_hdr *h)
{
	struct cv_img_ent *e;
	uint32_t i;

	for (i = 0; i < w->nsec; i++) {
		e = &w->ents[i];
		e->type = htole32(e->type);
		e->flags = htole32(e->flags);
		e->aux = htole64(e->aux);
		e->off = htole64(e->off);
		e->stored = htole64(e->stored);
		e->raw = htole64(e->raw);
		e->reserved = 0;
	}
	h->nsec = w->nsec;
	h->index_off = w->end;
	h->index_len = (uint64_t)w->nsec * CV_IMG_ENT_SIZE;
	h->file_size = h->index_off + h->index_len;
	cv_hash128(w->nsec ? (void *)w->ents : "", h->index_len, h->index_hash);
	return w_pwrite(w->fd, w->ents, h->index_len, h->index_off);
}

static int w_write_hdr(struct cv_img_w *w, struct cv_img_hdr *h,
		       const uint8_t *ident)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	memcpy(h->magic, CV_IMG_MAGIC, CV_IMG_MAGIC_LEN);
	h->version = htole32(CV_IMG_VERSION);
	h->hdr_size = htole32(CV_IMG_HDR_SIZE);
	h->flags = 0;
	h->nsec = htole32(h->nsec);
	h->index_off = htole64(h->index_off);
	h->index_len = htole64(h->index_len);
	h->file_size = htole64(h->file_size);
	h->created_ns = htole64((uint64_t)ts.tv_sec * 1000000000ull +
				(uint64_t)ts.tv_nsec);
	if (ident)
		memcpy(h->ident, ident, CV_IMG_IDENT_LEN);
	cv_hash128(h, __builtin_offsetof(struct cv_img_hdr, hdr_hash),
		   h->hdr_hash);
	return w_pwrite(w->fd, h, sizeof(*h), 0);
}

int cv_img_w_finish(struct cv_img_w *w, const uint8_t ident[CV_IMG_IDENT_LEN])
{
	struct cv_img_hdr h;
	bool again;
	int ret;

	pthread_mutex_lock(&w->lock);
	again = w->finished;
	w->finished = true;
	pthread_mutex_unlock(&w->lock);
	if (again)
		return -EINVAL;
	ret = atomic_load(&w->err);
	if (ret)
		return ret;
	if (w->map) {
		munmap(w->map, w->map_len);
		w->map = NULL;
	}
	memset(&h, 0, sizeof(h));
	ret = w_write_index(w, &h);
	/* Sections may have used less than cv_img_w_expect reserved. */
	if (!ret && w->regular && ftruncate(w->fd, (off_t)h.file_size) < 0)
		ret = -errno;
	/* The payloads and the index on disk before the header that says
	 * they are complete. */
	if (!ret)
		ret = w_sync(w);
	if (!ret)
		ret = w_write_hdr(w, &h, ident);
	if (!ret)
		ret = w_sync(w);
	if (ret)
		ret = w_set_err(w, ret);
	return ret;
}

/* ---- reader ---- */

/* One index entry against the header and the entry before it. */
static int r_check_ent(const struct cv_img_hdr *h, const struct cv_img_ent *e,
		       uint32_t i, uint64_t *prev_end, char *err,
		       size_t errlen)
{
	if (e->flags & ~CV_IMG_SEC_ZSTD)
		return cv_img_fail(err, errlen, -EINVAL,
				   "section %" PRIu32 " (type %" PRIu32 ") has unknown flags 0x%" PRIx32,
				   i, e->type, e->flags);
	if (e->reserved)
		return cv_img_fail(err, errlen, -EINVAL,
				   "section %" PRIu32 " (type %" PRIu32 "): reserved bytes are not zero",
				   i, e->type);
	if (e->raw > CV_IMG_SEC_MAX)
		return cv_img_fail(err, errlen, -EINVAL,
				   "section %" PRIu32 " (type %" PRIu32 ") holds %" PRIu64 " bytes, more than the limit of %llu",
				   i, e->type, e->raw, CV_IMG_SEC_MAX);
	if (!(e->flags & CV_IMG_SEC_ZSTD) && e->stored != e->raw)
		return cv_img_fail(err, errlen, -EINVAL,
				   "section %" PRIu32 " (type %" PRIu32 ") is stored uncompressed in %" PRIu64 " bytes but holds %" PRIu64,
				   i, e->type, e->stored, e->raw);
	if ((e->flags & CV_IMG_SEC_ZSTD) &&
	    e->stored > ZSTD_COMPRESSBOUND(e->raw))
		return cv_img_fail(err, errlen, -EINVAL,
				   "section %" PRIu32 " (type %" PRIu32 "): %" PRIu64 " compressed bytes for %" PRIu64 ", more than zstd ever needs",
				   i, e->type, e->stored, e->raw);
	if (!cv_range_in(e->off, e->stored, CV_IMG_HDR_SIZE,
			 h->index_off - CV_IMG_HDR_SIZE))
		return cv_img_fail(err, errlen, -EINVAL,
				   "section %" PRIu32 " (type %" PRIu32 ") lies outside the file (%" PRIu64 " bytes at offset %" PRIu64 "; sections lie in [%u, %" PRIu64 "))",
				   i, e->type, e->stored, e->off,
				   CV_IMG_HDR_SIZE, h->index_off);
	if (e->off < *prev_end)
		return cv_img_fail(err, errlen, -EINVAL,
				   "section %" PRIu32 " (type %" PRIu32 ", offset %" PRIu64 ") overlaps section %" PRIu32 " or comes before it (that one ends at %" PRIu64 ")",
				   i, e->type, e->off, i - 1, *prev_end);
	*prev_end = e->off + e->stored;
	return 0;
}

static void ent_to_host(struct cv_img_ent *e)
{
	e->type = le32toh(e->type);
	e->flags = le32toh(e->flags);
	e->aux = le64toh(e->aux);
	e->off = le64toh(e->off);
	e->stored = le64toh(e->stored);
	e->raw = le64toh(e->raw);
	e->reserved = le64toh(e->reserved);
}

/* Decodes and checks the index in idx (its checksum already checked). */
static int r_parse_index(struct cv_img_r *r, const struct cv_img_hdr *h,
			 const uint8_t *idx, char *err, size_t errlen)
{
	struct cv_img_ent e;
	struct cv_img_sec *s;
	uint64_t prev_end = CV_IMG_HDR_SIZE;
	uint32_t i;
	int ret;

	for (i = 0; i < h->nsec; i++) {
		memcpy(&e, idx + (size_t)i * CV_IMG_ENT_SIZE, sizeof(e));
		ent_to_host(&e);
		ret = r_check_ent(h, &e, i, &prev_end, err, errlen);
		if (ret)
			return ret;
		s = &r->secs[i];
		s->type = e.type;
		s->flags = e.flags;
		s->aux = e.aux;
		s->off = e.off;
		s->stored = e.stored;
		s->raw = e.raw;
		memcpy(s->hash, e.hash, sizeof(s->hash));
	}
	return 0;
}

/*
 * Reads and checks the index. Its length was checked against the file's
 * size by cv_img_hdr_load, and nsec against CV_IMG_NSEC_MAX, so neither
 * allocation is larger than the file or 256 MiB.
 */
static int r_load_index(struct cv_img_r *r, const struct cv_img_hdr *h,
			char *err, size_t errlen)
{
	uint8_t sum[CV_HASH_LEN];
	uint8_t *idx;
	int ret;

	if (!h->nsec)
		return 0;
	idx = malloc(h->index_len);
	r->secs = calloc(h->nsec, sizeof(*r->secs));
	if (!idx || !r->secs) {
		ret = cv_img_fail(err, errlen, -ENOMEM,
				  "out of memory for an index of %" PRIu32 " sections",
				  h->nsec);
		goto out;
	}
	ret = cv_img_pread(r->fd, idx, h->index_len, h->index_off);
	if (ret) {
		cv_img_fail(err, errlen, ret, "cannot read the index: %s",
			    strerror(-ret));
		goto out;
	}
	cv_hash128(idx, h->index_len, sum);
	if (memcmp(sum, h->index_hash, CV_HASH_LEN)) {
		ret = cv_img_fail(err, errlen, -EBADMSG,
				  "index checksum mismatch (corrupted)");
		goto out;
	}
	ret = r_parse_index(r, h, idx, err, errlen);
out:
	free(idx);
	return ret;
}

int cv_img_r_open(struct cv_img_r **rp, int fd, char *err, size_t errlen)
{
	struct cv_img_hdr h;
	struct cv_img_r *r;
	int ret;

	*rp = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return cv_img_fail(err, errlen, -ENOMEM, "out of memory");
	r->fd = fd;
	ret = cv_img_hdr_load(fd, &h, &r->info, err, errlen);
	if (!ret)
		ret = r_load_index(r, &h, err, errlen);
	if (ret) {
		cv_img_r_close(r);
		return ret;
	}
	*rp = r;
	return 0;
}

void cv_img_r_close(struct cv_img_r *r)
{
	if (!r)
		return;
	free(r->secs);
	free(r);
}

const struct cv_img_info *cv_img_r_info(const struct cv_img_r *r)
{
	return &r->info;
}

uint32_t cv_img_r_count(const struct cv_img_r *r)
{
	return r->info.nsec;
}

const struct cv_img_sec *cv_img_r_sec(const struct cv_img_r *r, uint32_t i)
{
	return i < r->info.nsec ? &r->secs[i] : NULL;
}

/* Decompresses section i's checked stored bytes z into buf. */
static int r_unzstd(const struct cv_img_sec *s, uint32_t i, void *buf,
		    const void *z, char *err, size_t errlen)
{
	uint8_t none;
	size_t n;

	n = ZSTD_decompress(s->raw ? buf : &none, s->raw, z, s->stored);
	if (ZSTD_isError(n) &&
	    ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall)
		return cv_img_fail(err, errlen, -EBADMSG,
				   "section %" PRIu32 " (type %" PRIu32 ") decompresses to more than %" PRIu64 " bytes, its recorded size",
				   i, s->type, s->raw);
	if (ZSTD_isError(n))
		return cv_img_fail(err, errlen, -EBADMSG,
				   "section %" PRIu32 " (type %" PRIu32 ") does not decompress (zstd: %s)",
				   i, s->type, ZSTD_getErrorName(n));
	if (n != s->raw)
		return cv_img_fail(err, errlen, -EBADMSG,
				   "section %" PRIu32 " (type %" PRIu32 ") decompresses to %zu bytes, expected %" PRIu64,
				   i, s->type, n, s->raw);
	return 0;
}

/* Reads section i's stored bytes into dst and checks their checksum. */
static int r_fetch(struct cv_img_r *r, const struct cv_img_sec *s, uint32_t i,
		   void *dst, char *err, size_t errlen)
{
	uint8_t sum[CV_HASH_LEN], *q = dst;
	struct cv_hash_st st;
	uint64_t n, k;
	int ret = 0;

	/* Piece by piece: each one hashed just after it was read. */
	cv_hash_init(&st);
	for (n = 0; n < s->stored && !ret; n += k) {
		k = CV_MIN(s->stored - n, PIECE);
		ret = cv_img_pread(r->fd, q + n, k, s->off + n);
		if (!ret)
			cv_hash_update(&st, q + n, k);
	}
	if (ret == -EIO)
		return cv_img_fail(err, errlen, ret,
				   "section %" PRIu32 " (type %" PRIu32 "): unexpected end of file or I/O error at offset %" PRIu64 " (truncated after opening?)",
				   i, s->type, s->off);
	if (ret)
		return cv_img_fail(err, errlen, ret,
				   "section %" PRIu32 " (type %" PRIu32 "): cannot read: %s",
				   i, s->type, strerror(-ret));
	cv_hash_final(&st, sum);
	if (memcmp(sum, s->hash, CV_HASH_LEN))
		return cv_img_fail(err, errlen, -EBADMSG,
				   "section %" PRIu32 " (type %" PRIu32 ") checksum mismatch (corrupted)",
				   i, s->type);
	return 0;
}

int cv_img_r_read(struct cv_img_r *r, uint32_t i, void *buf, uint64_t cap,
		  char *err, size_t errlen)
{
	const struct cv_img_sec *s = cv_img_r_sec(r, i);
	uint8_t none;
	void *z;
	int ret;

	if (!s)
		return cv_img_fail(err, errlen, -EINVAL,
				   "no section %" PRIu32 ": the image has %" PRIu32,
				   i, r->info.nsec);
	if (cap < s->raw || (s->raw && !buf))
		return cv_img_fail(err, errlen, -ENOBUFS,
				   "section %" PRIu32 " (type %" PRIu32 ") holds %" PRIu64 " bytes; the buffer has room for %" PRIu64,
				   i, s->type, s->raw, buf ? cap : 0);
	if (!(s->flags & CV_IMG_SEC_ZSTD))
		return r_fetch(r, s, i, s->raw ? buf : &none, err, errlen);
	/* stored <= ZSTD_COMPRESSBOUND(CV_IMG_SEC_MAX), checked at open. */
	z = malloc(s->stored ? s->stored : 1);
	if (!z)
		return cv_img_fail(err, errlen, -ENOMEM,
				   "section %" PRIu32 ": out of memory", i);
	ret = r_fetch(r, s, i, z, err, errlen);
	if (!ret)
		ret = r_unzstd(s, i, buf, z, err, errlen);
	free(z);
	return ret;
}

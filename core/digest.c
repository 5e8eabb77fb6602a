/* SPDX-License-Identifier: MIT */
/*
 * cv_digest v1 in C (docs/digest.md): the host backend's digest and the
 * reference for the GPU kernel (worker/digest.cu).
 *
 * The GPU's lane t is a column here: the states of all 256 lanes sit in
 * two arrays (4 KiB), and each row of 2 KiB of the granule feeds one word
 * to every lane, so the data is read once, in order. Two rows go through
 * a lane per visit (a granule always has an even number of rows), which
 * halves the state traffic; the 256 lanes of a row are independent, so
 * the multiplications of neighbouring lanes overlap.
 */
#include "digest.h"

#include <assert.h>
#include <string.h>

#define CV_DG_WORDS (CV_DIGEST_ROW / 8)

struct cv_dg_lanes {
	uint64_t a[CV_DIGEST_LANES];
	uint64_t b[CV_DIGEST_LANES];
};

static inline uint64_t cv_dg_load(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

static inline void cv_dg_store(uint8_t *p, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	memcpy(p, &v, sizeof(v));
}

/* Every lane's initial states under seed (the same for every granule). */
static void cv_dg_init(struct cv_dg_lanes *l, uint64_t seed)
{
	unsigned int t;

	for (t = 0; t < CV_DIGEST_LANES; t++)
		cv_dg_lane_init(seed, t, &l->a[t], &l->b[t]);
}

/* Rows [0, rows) of p into the lanes; rows is even. */
static void cv_dg_rows(struct cv_dg_lanes *l, const uint8_t *p,
		       uint64_t rows)
{
	const uint8_t *r0, *r1;
	uint64_t a, b, k;
	unsigned int t;

	for (k = 0; k < rows; k += 2) {
		r0 = p + k * CV_DIGEST_ROW;
		r1 = r0 + CV_DIGEST_ROW;
		for (t = 0; t < CV_DG_WORDS; t++) {
			a = l->a[t];
			b = l->b[t];
			cv_dg_absorb(&a, &b, cv_dg_load(r0 + 8 * t));
			cv_dg_absorb(&a, &b, cv_dg_load(r1 + 8 * t));
			l->a[t] = a;
			l->b[t] = b;
		}
	}
}

/* The tree: at level s, lane t (t % 2s == 0) folds in lane t + s. */
static void cv_dg_fold(struct cv_dg_lanes *l)
{
	unsigned int s, t;

	for (s = 1; s < CV_DIGEST_LANES; s <<= 1)
		for (t = 0; t < CV_DIGEST_LANES; t += 2 * s)
			cv_dg_merge(&l->a[t], &l->b[t], l->a[t + s],
				    l->b[t + s]);
}

/* One granule from the initial states `init`. */
static void cv_dg_one(const struct cv_dg_lanes *init, const uint8_t *p,
		      uint64_t len, uint8_t out[CV_DIGEST_LEN])
{
	struct cv_dg_lanes l = *init;
	uint64_t lo, hi;

	cv_dg_rows(&l, p, len / CV_DIGEST_ROW);
	cv_dg_fold(&l);
	cv_dg_final(l.a[0], l.b[0], len, &lo, &hi);
	cv_dg_store(out, lo);
	cv_dg_store(out + 8, hi);
}

void cv_digest(const void *p, uint64_t len, uint64_t seed,
	       uint8_t out[CV_DIGEST_LEN])
{
	struct cv_dg_lanes init;

	assert(cv_digest_size_ok(len));
	cv_dg_init(&init, seed);
	cv_dg_one(&init, p, len, out);
}

void cv_digest_many(const void *p, uint64_t len, uint32_t granule,
		    uint64_t seed, uint8_t *out)
{
	const uint8_t *q = p;
	struct cv_dg_lanes init;
	uint64_t off;

	assert(cv_digest_size_ok(granule) && !(len % granule));
	cv_dg_init(&init, seed);
	for (off = 0; off < len; off += granule) {
		cv_dg_one(&init, q + off, granule, out);
		out += CV_DIGEST_LEN;
	}
}

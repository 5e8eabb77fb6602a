/* SPDX-License-Identifier: MIT */
/*
 * cv_digest v1: a keyed 128-bit digest of a granule of device memory, for
 * live migration's dirty detection (DESIGN.md decision 10). The worker
 * computes it on the GPU (worker/digest.cu, embedded in the worker as a
 * fatbin) and on the host with cv_digest(); both give the same 16 bytes.
 * docs/digest.md is the specification.
 *
 * A granule is len bytes, a multiple of 4096 from 4096 to 16 MiB, seen as
 * little-endian u64 words. Lane t (0..255) absorbs words t, t + 256,
 * t + 512, ... into two states; the 256 lanes are folded by a fixed binary
 * tree and a final avalanche mixes in len.
 *
 * Not a MAC: the seed (random per migration) keeps a guest from predicting
 * digests and so from crafting collisions; nothing here resists an
 * attacker who knows the seed.
 *
 * The round functions below are shared, as written, by the C code and the
 * CUDA kernel (compiled __host__ __device__ there), so that the two cannot
 * drift apart; tests/digest_vectors.h pins their output.
 */
#ifndef CV_DIGEST_H
#define CV_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CV_DIGEST_LEN 16                /* bytes of one digest */
#define CV_DIGEST_LANES 256
#define CV_DIGEST_ROW (CV_DIGEST_LANES * 8) /* one word for every lane */
#define CV_DIGEST_MIN 4096u             /* granule sizes: multiples of */
#define CV_DIGEST_MAX (16u << 20)       /* MIN from MIN to MAX */
#define CV_DIGEST_KERNEL "cv_digest_kernel"

/* xxh64's five primes (all odd). */
#define CV_DG_P1 0x9E3779B185EBCA87ull
#define CV_DG_P2 0xC2B2AE3D27D4EB4Full
#define CV_DG_P3 0x165667B19E3779F9ull
#define CV_DG_P4 0x85EBCA77C2B2AE63ull
#define CV_DG_P5 0x27D4EB2F165667C5ull

#ifdef __CUDACC__
#define CV_DG_FN static __host__ __device__ __forceinline__
#else
#define CV_DG_FN static inline
#endif

CV_DG_FN uint64_t cv_dg_rotl(uint64_t x, unsigned int r)
{
	return (x << r) | (x >> (64 - r));
}

/* xxh64's final avalanche; a bijection of the 64-bit values. */
CV_DG_FN uint64_t cv_dg_fmix(uint64_t h)
{
	h ^= h >> 33;
	h *= CV_DG_P2;
	h ^= h >> 29;
	h *= CV_DG_P3;
	h ^= h >> 32;
	return h;
}

/* Lane t's initial states: 512 distinct values for any seed. */
CV_DG_FN void cv_dg_lane_init(uint64_t seed, unsigned int t, uint64_t *a,
			      uint64_t *b)
{
	*a = cv_dg_fmix(seed + (2 * (uint64_t)t + 1) * CV_DG_P1);
	*b = cv_dg_fmix(seed + (2 * (uint64_t)t + 2) * CV_DG_P1);
}

/*
 * One word into a lane: two different rounds, each a bijection of the
 * state for a fixed word and of the word for a fixed state, so a change
 * of one word always changes both states of its lane.
 */
CV_DG_FN void cv_dg_absorb(uint64_t *a, uint64_t *b, uint64_t w)
{
	uint64_t m = w * CV_DG_P2;

	*a = cv_dg_rotl(*a + m, 31) * CV_DG_P1;
	*b = cv_dg_rotl(*b ^ m, 27) * CV_DG_P3;
}

/*
 * Folds the right lane (ya, yb) into the left one (a, b); not commutative,
 * a bijection of either side for a fixed other side (xxh64's merge round
 * for a, its twin with the b round for b).
 */
CV_DG_FN void cv_dg_merge(uint64_t *a, uint64_t *b, uint64_t ya, uint64_t yb)
{
	*a = (*a ^ (cv_dg_rotl(ya * CV_DG_P2, 31) * CV_DG_P1)) * CV_DG_P1 +
	     CV_DG_P4;
	*b = (*b ^ (cv_dg_rotl(yb * CV_DG_P2, 27) * CV_DG_P3)) * CV_DG_P3 +
	     CV_DG_P4;
}

/* Lane 0's folded states and len to the digest (lo, hi); a bijection of
 * (a, b) for a fixed len. */
CV_DG_FN void cv_dg_final(uint64_t a, uint64_t b, uint64_t len, uint64_t *lo,
			  uint64_t *hi)
{
	uint64_t x = cv_dg_fmix(a ^ (len * CV_DG_P5));
	uint64_t y = cv_dg_fmix(b + x);

	*lo = cv_dg_fmix(x + y);
	*hi = y;
}

#ifndef __CUDACC__
/* True when len is a granule size: a multiple of CV_DIGEST_MIN from
 * CV_DIGEST_MIN to CV_DIGEST_MAX. */
static inline bool cv_digest_size_ok(uint64_t len)
{
	return len >= CV_DIGEST_MIN && len <= CV_DIGEST_MAX &&
	       !(len % CV_DIGEST_MIN);
}

/* True for a range of device memory that a backend digests: addr 8-byte
 * aligned (the GPU loads words), granule a size, len a multiple of it,
 * no wrap. */
static inline bool cv_digest_range_ok(uint64_t addr, uint64_t len,
				      uint64_t granule)
{
	return !(addr % 8) && cv_digest_size_ok(granule) &&
	       !(len % granule) && addr + len >= addr;
}

/*
 * The digest of the granule [p, p + len) under seed, 16 bytes to out (lo
 * then hi, little-endian). len must satisfy cv_digest_size_ok; p needs no
 * alignment.
 */
void cv_digest(const void *p, uint64_t len, uint64_t seed,
	       uint8_t out[CV_DIGEST_LEN]);

/*
 * The digests of the len / granule granules of [p, p + len), 16 bytes
 * each, in order, to out. granule must satisfy cv_digest_size_ok and len
 * be a multiple of it (0 writes nothing).
 */
void cv_digest_many(const void *p, uint64_t len, uint32_t granule,
		    uint64_t seed, uint8_t *out);

/*
 * worker/digest.cu compiled to a fatbin (sm_80 and sm_90 code, compute_80
 * PTX), as build/gen/digest_fatbin.c defines it (scripts/embed.py); its
 * length is 0 when the build had no nvcc. Weak: only the worker and
 * bench/digest_gpu link it, and in any other program that links the cuda
 * backend both addresses are NULL.
 */
extern const unsigned char cv_digest_fatbin[] __attribute__((weak));
extern const size_t cv_digest_fatbin_len __attribute__((weak));
#endif

#endif

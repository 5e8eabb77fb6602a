/* SPDX-License-Identifier: MIT */
/*
 * cv_digest v1 on the GPU (docs/digest.md; the C twin is core/digest.c,
 * and both use the round functions of core/digest.h). Built into a fatbin
 * that the worker carries (worker/Makefile.inc) and loads on first use.
 *
 * One block of 256 threads per granule; thread t is lane t, so the 32
 * threads of a warp read 256 consecutive bytes per load. Each thread keeps
 * CV_DG_UNROLL loads in flight before it absorbs them in order. The tree
 * fold runs by shuffles inside each warp (levels 1..16), then over the
 * eight warp results in warp 0 (levels 32..128), in the same order as the
 * C fold.
 *
 * Loads are ld.global.cs (streaming, evict first): the tenant's kernels
 * may run beside the digest and keep their L2 working set. Their writes
 * may race with the loads; a digest taken while the tenant runs is only a
 * hint, and the final one is taken while it is suspended.
 */
#include "../core/digest.h"

#define CV_DG_UNROLL 8
#define CV_DG_WARPS (CV_DIGEST_LANES / 32)
#define CV_DG_ALL 0xffffffffu

typedef unsigned long long u64;

/*
 * Folds lanes [0, n) of the warp into lane 0 by the tree of the spec (n a
 * power of two, at most 32). At level s, lane l with l % 2s == 0 merges
 * lane l + s; other lanes compute values nobody reads.
 */
static __device__ __forceinline__ void cv_dg_warp_fold(uint64_t *a,
						       uint64_t *b,
						       unsigned int lane,
						       unsigned int n)
{
	unsigned int s;

#pragma unroll
	for (s = 1; s < n; s <<= 1) {
		uint64_t ya = __shfl_down_sync(CV_DG_ALL, (u64)*a, s);
		uint64_t yb = __shfl_down_sync(CV_DG_ALL, (u64)*b, s);

		if (!(lane & (2 * s - 1)))
			cv_dg_merge(a, b, ya, yb);
	}
}

/* Lane t's words of the granule at p (p already offset by t). */
static __device__ __forceinline__ void cv_dg_lane(const u64 *p, u64 rows,
						  uint64_t *a, uint64_t *b)
{
	u64 w[CV_DG_UNROLL];
	u64 k = 0;
	int i;

	for (; k + CV_DG_UNROLL <= rows; k += CV_DG_UNROLL) {
#pragma unroll
		for (i = 0; i < CV_DG_UNROLL; i++)
			w[i] = __ldcs(p + (k + i) * CV_DIGEST_LANES);
#pragma unroll
		for (i = 0; i < CV_DG_UNROLL; i++)
			cv_dg_absorb(a, b, w[i]);
	}
	/* rows is even: the rest goes two at a time */
	for (; k < rows; k += 2) {
		w[0] = __ldcs(p + k * CV_DIGEST_LANES);
		w[1] = __ldcs(p + (k + 1) * CV_DIGEST_LANES);
		cv_dg_absorb(a, b, w[0]);
		cv_dg_absorb(a, b, w[1]);
	}
}

/*
 * Digests the n granules of `granule` bytes at base (8-byte aligned;
 * granule a valid size, see cv_digest_size_ok) under seed; digest g goes
 * to out[2g] (lo) and out[2g + 1] (hi). Launch with blockDim (256, 1, 1);
 * any gridDim.x: blocks stride over the granules.
 */
extern "C" __global__ void __launch_bounds__(CV_DIGEST_LANES)
cv_digest_kernel(const u64 *base, u64 granule, u64 n, u64 seed, u64 *out)
{
	__shared__ u64 sa[CV_DG_WARPS], sb[CV_DG_WARPS];
	const unsigned int t = threadIdx.x, lane = t & 31;
	const u64 rows = granule / CV_DIGEST_ROW;
	uint64_t a0, b0, a, b, lo, hi;
	u64 g;

	cv_dg_lane_init(seed, t, &a0, &b0);
	for (g = blockIdx.x; g < n; g += gridDim.x) {
		a = a0;
		b = b0;
		cv_dg_lane(base + g * (granule / 8) + t, rows, &a, &b);
		cv_dg_warp_fold(&a, &b, lane, 32);
		if (!lane) {
			sa[t / 32] = a;
			sb[t / 32] = b;
		}
		/* orders the warp results' stores before warp 0 reads them */
		__syncthreads();
		if (t < 32) {
			a = lane < CV_DG_WARPS ? sa[lane] : 0;
			b = lane < CV_DG_WARPS ? sb[lane] : 0;
			cv_dg_warp_fold(&a, &b, lane, CV_DG_WARPS);
			if (!t) {
				cv_dg_final(a, b, granule, &lo, &hi);
				out[2 * g] = lo;
				out[2 * g + 1] = hi;
			}
		}
		/* warp 0 has read sa/sb before the next granule writes them */
		__syncthreads();
	}
}

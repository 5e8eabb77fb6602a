/* SPDX-License-Identifier: MIT */
/*
 * Test kernels for the driver-API test programs (tests/progs) and the
 * benchmark (bench/bench.c). Every kernel has a twin in host_kernels.c with
 * the same name and parameter list, so one unmodified program runs on a
 * GPU and on the host backend. Keep the two files in step: a kernel added
 * here needs its host version and its entry in cv_host_kernels().
 *
 * Built by tests/Makefile.inc into build/tests/kernels.{fatbin,cubin,ptx}
 * for sm_90 (and compute_90 PTX in the fatbin).
 *
 * Most kernels use grid-stride loops, so their result does not depend on
 * the launch configuration the test picks.
 */
#include <stdint.h>

#include "kernels.h"

__device__ int g_value = CVK_G_VALUE_INIT;
__device__ uint32_t g_table[CVK_G_TABLE_LEN] = CVK_G_TABLE_INIT;

static __device__ __forceinline__ uint64_t gtid(void)
{
	return (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
}

static __device__ __forceinline__ uint64_t gstride(void)
{
	return (uint64_t)gridDim.x * blockDim.x;
}

extern "C" {

/* Does nothing: launch-overhead benchmarks. */
__global__ void empty(void)
{
}

/* c[i] = a[i] + b[i] */
__global__ void vec_add(const float *a, const float *b, float *c, uint32_t n)
{
	for (uint64_t i = gtid(); i < n; i += gstride())
		c[i] = a[i] + b[i];
}

/* x[i] *= s */
__global__ void scale(float *x, float s, uint32_t n)
{
	for (uint64_t i = gtid(); i < n; i += gstride())
		x[i] *= s;
}

/* p[i] = cvk_pattern(seed, i) */
__global__ void fill_pattern(uint32_t *p, uint32_t seed, uint64_t n)
{
	for (uint64_t i = gtid(); i < n; i += gstride())
		p[i] = cvk_pattern(seed, i);
}

/* Adds 1 to the first u32 of each of npages 4 KiB pages at base. */
__global__ void page_inc(uint32_t *base, uint64_t npages)
{
	for (uint64_t i = gtid(); i < npages; i += gstride())
		base[i * CVK_PAGE_WORDS] += 1;
}

/* Adds 1 to each of the n u32 words at base. */
__global__ void words_inc(uint32_t *base, uint64_t n)
{
	for (uint64_t i = gtid(); i < n; i += gstride())
		base[i] += 1;
}

/*
 * Every thread spins for `cycles` SM clock cycles; then thread 0 of
 * block 0 sets *done = 1 when done is not NULL. Used where a test needs
 * work that is still running when the host looks (queries, event timing).
 */
__global__ void spin(uint64_t cycles, uint32_t *done)
{
	long long t0 = clock64();

	while ((uint64_t)(clock64() - t0) < cycles)
		;
	if (done && gtid() == 0) {
		__threadfence_system();
		*done = 1;
	}
}

/* g_value += v (thread 0 only). */
__global__ void global_add(int v)
{
	if (gtid() == 0)
		g_value += v;
}

/* out[0] = g_value; out[1 + i] = g_table[i]. */
__global__ void global_read(uint32_t *out)
{
	if (gtid() == 0)
		out[0] = (uint32_t)g_value;
	for (uint64_t i = gtid(); i < CVK_G_TABLE_LEN; i += gstride())
		out[1 + i] = g_table[i];
}

/* Writes its parameters back (layout in kernels.h). */
__global__ void params_probe(char c, short s, double d, struct cvk_s24 st,
			     uint8_t u8, void *out, float f, int64_t ll)
{
	uint8_t *o = (uint8_t *)out;

	if (gtid() != 0)
		return;
	*(char *)(o + CVK_PROBE_C) = c;
	*(short *)(o + CVK_PROBE_S) = s;
	*(double *)(o + CVK_PROBE_D) = d;
	*(struct cvk_s24 *)(o + CVK_PROBE_ST) = st;
	*(uint8_t *)(o + CVK_PROBE_U8) = u8;
	*(uint64_t *)(o + CVK_PROBE_PTR) = (uint64_t)(uintptr_t)out;
	*(float *)(o + CVK_PROBE_F) = f;
	*(int64_t *)(o + CVK_PROBE_LL) = ll;
	*(uint32_t *)(o + CVK_PROBE_MAGIC) = CVK_PROBE_MAGIC_VAL;
}

/*
 * Compute-bound: each thread runs iters dependent FMAs on four chains and
 * writes one float, so memory traffic is negligible.
 */
__global__ void fma_loop(float *out, uint32_t iters)
{
	float a = 1.0f + 1e-7f * (float)threadIdx.x, b = 0.999999f;
	float x0 = 0.0f, x1 = 1.0f, x2 = 2.0f, x3 = 3.0f;

	for (uint32_t k = 0; k < iters; k++) {
		x0 = fmaf(x0, b, a);
		x1 = fmaf(x1, b, a);
		x2 = fmaf(x2, b, a);
		x3 = fmaf(x3, b, a);
	}
	out[gtid()] = x0 + x1 + x2 + x3;
}

/* p[idx] = v, unchecked: with a wild idx it is the out-of-bounds write of
 * the deferred-error test. */
__global__ void write_at(uint32_t *p, uint64_t idx, uint32_t v)
{
	if (gtid() == 0)
		p[idx] = v;
}

} /* extern "C" */

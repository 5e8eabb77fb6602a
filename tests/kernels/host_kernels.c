/* SPDX-License-Identifier: MIT */
/*
 * The test kernels of kernels.cu as host functions, for the worker's host
 * backend (worker/host_kernels.h): build/tests/libtestkernels.so, named by
 * CUVISOR_HOST_KERNELS.
 *
 * Execution model. The CUDA kernels ignore the y and z dimensions and use
 * grid-stride loops over x, so the threads of one (y, z) replica together
 * visit every index once. A host kernel therefore runs its loop body once
 * per index, for each of grid.y * grid.z * block.y * block.z replicas,
 * which is exactly what the GPU computes (racy read-modify-writes aside).
 * `spin` is the exception: GPU threads spin in parallel, so the host
 * version spins once per launch, for `cycles` nanoseconds (an SM clock of
 * about 1 GHz).
 *
 * Parameters are read with memcpy: the ABI promises CUDA's alignment, but
 * copying costs nothing here and keeps UBSan quiet whatever the packer did.
 *
 * Globals. The backend places g_value and g_table in device memory when a
 * module is loaded (initialised from the table below). Host kernels that
 * use them need their addresses: host_kernels.h has no way to hand them
 * over yet, so this library exports cv_hk_bind_global(), which a backend
 * that supports it calls after placing each global. Without it, the
 * kernels that use globals do nothing and the test program reports the
 * mismatch instead of the worker crashing.
 */
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "../../worker/host_kernels.h"
#include "kernels.h"

#define HK_EXPORT __attribute__((visibility("default")))

static uint64_t hk_reps(const struct cv_hk_dims *d)
{
	return (uint64_t)d->grid[1] * d->grid[2] * d->block[1] * d->block[2];
}

/* Threads per (y, z) replica along x. */
static uint64_t hk_nx(const struct cv_hk_dims *d)
{
	return (uint64_t)d->grid[0] * d->block[0];
}

#define HK_ARG(T, params, i) ({ T v_; memcpy(&v_, (params)[i], sizeof(v_)); v_; })
#define HK_PTR(T, params, i) ((T *)(uintptr_t)HK_ARG(uint64_t, params, i))

/* Addresses of the module's globals in device memory (see top). */
static int32_t *volatile g_value_at;
static uint32_t *volatile g_table_at;

/*
 * Called by a backend that supports it, after it has placed global `name`
 * at `addr`: kernels of later launches use it. Returns 0, or -1 for a name
 * this library does not define.
 */
HK_EXPORT int cv_hk_bind_global(const char *name, void *addr)
{
	if (!strcmp(name, "g_value"))
		g_value_at = addr;
	else if (!strcmp(name, "g_table"))
		g_table_at = addr;
	else
		return -1;
	return 0;
}

static void hk_empty(const struct cv_hk_dims *d, void **params)
{
}

static void hk_vec_add(const struct cv_hk_dims *d, void **params)
{
	const float *a = HK_PTR(const float, params, 0);
	const float *b = HK_PTR(const float, params, 1);
	float *c = HK_PTR(float, params, 2);
	uint32_t n = HK_ARG(uint32_t, params, 3);

	for (uint64_t r = hk_reps(d); r; r--)
		for (uint64_t i = 0; i < n; i++)
			c[i] = a[i] + b[i];
}

static void hk_scale(const struct cv_hk_dims *d, void **params)
{
	float *x = HK_PTR(float, params, 0);
	float s = HK_ARG(float, params, 1);
	uint32_t n = HK_ARG(uint32_t, params, 2);

	for (uint64_t r = hk_reps(d); r; r--)
		for (uint64_t i = 0; i < n; i++)
			x[i] *= s;
}

static void hk_fill_pattern(const struct cv_hk_dims *d, void **params)
{
	uint32_t *p = HK_PTR(uint32_t, params, 0);
	uint32_t seed = HK_ARG(uint32_t, params, 1);
	uint64_t n = HK_ARG(uint64_t, params, 2);

	for (uint64_t r = hk_reps(d); r; r--)
		for (uint64_t i = 0; i < n; i++)
			p[i] = cvk_pattern(seed, i);
}

static void hk_page_inc(const struct cv_hk_dims *d, void **params)
{
	uint32_t *base = HK_PTR(uint32_t, params, 0);
	uint64_t npages = HK_ARG(uint64_t, params, 1);

	for (uint64_t r = hk_reps(d); r; r--)
		for (uint64_t i = 0; i < npages; i++)
			base[i * CVK_PAGE_WORDS] += 1;
}

static void hk_words_inc(const struct cv_hk_dims *d, void **params)
{
	uint32_t *base = HK_PTR(uint32_t, params, 0);
	uint64_t n = HK_ARG(uint64_t, params, 1);

	for (uint64_t r = hk_reps(d); r; r--)
		for (uint64_t i = 0; i < n; i++)
			base[i] += 1;
}

static uint64_t hk_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void hk_spin(const struct cv_hk_dims *d, void **params)
{
	uint64_t cycles = HK_ARG(uint64_t, params, 0);
	uint32_t *done = HK_PTR(uint32_t, params, 1);
	uint64_t t0 = hk_now_ns();

	while (hk_now_ns() - t0 < cycles)
		;
	if (done && hk_nx(d) && hk_reps(d))
		__atomic_store_n(done, 1, __ATOMIC_RELEASE);
}

static void hk_global_add(const struct cv_hk_dims *d, void **params)
{
	int32_t v = HK_ARG(int32_t, params, 0);
	int32_t *g = g_value_at;

	if (!g || !hk_nx(d))
		return;
	for (uint64_t r = hk_reps(d); r; r--)
		*g = (int32_t)((uint32_t)*g + (uint32_t)v);
}

static void hk_global_read(const struct cv_hk_dims *d, void **params)
{
	uint32_t *out = HK_PTR(uint32_t, params, 0);
	int32_t *g = g_value_at;
	uint32_t *t = g_table_at;

	if (!g || !t || !hk_nx(d) || !hk_reps(d))
		return;
	out[0] = (uint32_t)*g;
	for (uint32_t i = 0; i < CVK_G_TABLE_LEN; i++)
		out[1 + i] = t[i];
}

static void hk_params_probe(const struct cv_hk_dims *d, void **params)
{
	uint8_t *o = HK_PTR(uint8_t, params, 5);
	uint64_t out = (uint64_t)(uintptr_t)o;
	uint32_t magic = CVK_PROBE_MAGIC_VAL;

	if (!hk_nx(d) || !hk_reps(d))
		return;
	memcpy(o + CVK_PROBE_C, params[0], 1);
	memcpy(o + CVK_PROBE_S, params[1], 2);
	memcpy(o + CVK_PROBE_D, params[2], 8);
	memcpy(o + CVK_PROBE_ST, params[3], sizeof(struct cvk_s24));
	memcpy(o + CVK_PROBE_U8, params[4], 1);
	memcpy(o + CVK_PROBE_PTR, &out, 8);
	memcpy(o + CVK_PROBE_F, params[6], 4);
	memcpy(o + CVK_PROBE_LL, params[7], 8);
	memcpy(o + CVK_PROBE_MAGIC, &magic, 4);
}

static void hk_fma_loop(const struct cv_hk_dims *d, void **params)
{
	float *out = HK_PTR(float, params, 0);
	uint32_t iters = HK_ARG(uint32_t, params, 1);
	uint64_t nx = hk_nx(d);

	if (!hk_reps(d))
		return;
	for (uint64_t t = 0; t < nx; t++) {
		uint32_t tx = (uint32_t)(t % d->block[0]);
		float a = 1.0f + 1e-7f * (float)tx, b = 0.999999f;
		float x0 = 0.0f, x1 = 1.0f, x2 = 2.0f, x3 = 3.0f;

		for (uint32_t k = 0; k < iters; k++) {
			x0 = x0 * b + a;
			x1 = x1 * b + a;
			x2 = x2 * b + a;
			x3 = x3 * b + a;
		}
		out[t] = x0 + x1 + x2 + x3;
	}
}

static void hk_write_at(const struct cv_hk_dims *d, void **params)
{
	uint32_t *p = HK_PTR(uint32_t, params, 0);
	uint64_t idx = HK_ARG(uint64_t, params, 1);
	uint32_t v = HK_ARG(uint32_t, params, 2);

	if (hk_nx(d) && hk_reps(d))
		p[idx] = v;
}

/* Parameter sizes and alignments, as nvcc lays out the .cu signatures. */
static const uint32_t s_vec_add[] = { 8, 8, 8, 4 }, a_vec_add[] = { 8, 8, 8, 4 };
static const uint32_t s_scale[] = { 8, 4, 4 }, a_scale[] = { 8, 4, 4 };
static const uint32_t s_fill[] = { 8, 4, 8 }, a_fill[] = { 8, 4, 8 };
static const uint32_t s_p8p8[] = { 8, 8 }, a_p8p8[] = { 8, 8 };
static const uint32_t s_i4[] = { 4 }, a_i4[] = { 4 };
static const uint32_t s_p8[] = { 8 }, a_p8[] = { 8 };
static const uint32_t s_probe[] = { 1, 2, 8, sizeof(struct cvk_s24), 1, 8, 4, 8 };
static const uint32_t a_probe[] = { 1, 2, 8, _Alignof(struct cvk_s24), 1, 8, 4, 8 };
static const uint32_t s_fma[] = { 8, 4 }, a_fma[] = { 8, 4 };
static const uint32_t s_write_at[] = { 8, 8, 4 }, a_write_at[] = { 8, 8, 4 };

#define K(n, f, s, a) { n, f, CV_ARRAY_SIZE_(s), s, a }
#define K0(n, f) { n, f, 0, NULL, NULL }
#define CV_ARRAY_SIZE_(x) ((uint32_t)(sizeof(x) / sizeof((x)[0])))

static const struct cv_hk_kernel kernels[] = {
	K0("empty", hk_empty),
	K("vec_add", hk_vec_add, s_vec_add, a_vec_add),
	K("scale", hk_scale, s_scale, a_scale),
	K("fill_pattern", hk_fill_pattern, s_fill, a_fill),
	K("page_inc", hk_page_inc, s_p8p8, a_p8p8),
	K("words_inc", hk_words_inc, s_p8p8, a_p8p8),
	K("spin", hk_spin, s_p8p8, a_p8p8),
	K("global_add", hk_global_add, s_i4, a_i4),
	K("global_read", hk_global_read, s_p8, a_p8),
	K("params_probe", hk_params_probe, s_probe, a_probe),
	K("fma_loop", hk_fma_loop, s_fma, a_fma),
	K("write_at", hk_write_at, s_write_at, a_write_at),
};

/* The same initial values as the __device__ definitions in kernels.cu. */
static const int32_t g_value_init = CVK_G_VALUE_INIT;
static const uint32_t g_table_init[CVK_G_TABLE_LEN] = CVK_G_TABLE_INIT;

static const struct cv_hk_global globals[] = {
	{ "g_value", sizeof(int32_t), &g_value_init },
	{ "g_table", sizeof(g_table_init), g_table_init },
};

static const struct cv_hk_lib lib = {
	.abi = CV_HK_ABI,
	.nkernels = CV_ARRAY_SIZE_(kernels),
	.kernels = kernels,
	.nglobals = CV_ARRAY_SIZE_(globals),
	.globals = globals,
};

HK_EXPORT const struct cv_hk_lib *cv_host_kernels(void)
{
	return &lib;
}

/* SPDX-License-Identifier: MIT */
/*
 * A tiny host kernel library for tests/test_backend_host.c: the C
 * counterparts of
 *
 *	__global__ void vec_add(const float *a, const float *b, float *c,
 *				int n);
 *	__global__ void layout(char c, double d, int i, unsigned *out);
 *	__global__ void dims(unsigned *out);
 *	__device__ unsigned g_table[4] = { 1, 2, 3, 4 };
 *	__device__ char g_zero[100];
 *	__global__ void read_table(unsigned *out); // reads g_table, bumps [0]
 *
 * It exports cv_hk_bind_global(), so read_table sees the launching
 * module's own g_table.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../worker/host_kernels.h"

/* Every thread of the launch, flattened along x only (the tests launch
 * 1D grids). */
static void hk_vec_add(const struct cv_hk_dims *d, void **params)
{
	const float *a = *(const float **)params[0];
	const float *b = *(const float **)params[1];
	float *c = *(float **)params[2];
	int n = *(int *)params[3];
	uint64_t i, total = (uint64_t)d->grid[0] * d->block[0];

	for (i = 0; i < total && i < (uint64_t)(n > 0 ? n : 0); i++)
		c[i] = a[i] + b[i];
}

static void hk_layout(const struct cv_hk_dims *d, void **params)
{
	char c = *(char *)params[0];
	double v = *(double *)params[1];
	int i = *(int *)params[2];
	unsigned *out = *(unsigned **)params[3];

	out[0] = (unsigned)(unsigned char)c;
	out[1] = (unsigned)v;
	out[2] = (unsigned)i;
}

static void hk_dims(const struct cv_hk_dims *d, void **params)
{
	unsigned *out = *(unsigned **)params[0];
	int k;

	for (k = 0; k < 3; k++) {
		out[k] = d->grid[k];
		out[3 + k] = d->block[k];
	}
	out[6] = d->shmem;
}

/* Where the launching module keeps g_table (cv_hk_bind_global). */
static uint32_t *g_table_at;
static int nbind_null;

int cv_hk_bind_global(const char *name, void *addr);
int hk_test_nbind_null(void);

int cv_hk_bind_global(const char *name, void *addr)
{
	if (!addr)
		nbind_null++;
	if (!strcmp(name, "g_table"))
		g_table_at = addr;
	else if (strcmp(name, "g_zero"))
		return -1;
	return 0;
}

/* How often the backend unbound a global (for the test). */
int hk_test_nbind_null(void)
{
	return nbind_null;
}

/* out[0..3] = g_table of the launching module, then g_table[0]++. */
static void hk_read_table(const struct cv_hk_dims *d, void **params)
{
	unsigned *out = *(unsigned **)params[0];
	int k;

	if (!g_table_at)
		return;
	for (k = 0; k < 4; k++)
		out[k] = g_table_at[k];
	g_table_at[0]++;
}

static const uint32_t ptr3_int_size[] = { 8, 8, 8, 4 };
static const uint32_t ptr3_int_align[] = { 8, 8, 8, 4 };
static const uint32_t layout_size[] = { 1, 8, 4, 8 };
static const uint32_t layout_align[] = { 1, 8, 4, 8 };
static const uint32_t ptr_size[] = { 8 };
static const uint32_t ptr_align[] = { 8 };

static const struct cv_hk_kernel hk_kernels[] = {
	{ "_Z7vec_addPKfS0_Pfi", hk_vec_add, 4, ptr3_int_size,
	  ptr3_int_align },
	{ "_Z6layoutcdiPj", hk_layout, 4, layout_size, layout_align },
	{ "_Z4dimsPj", hk_dims, 1, ptr_size, ptr_align },
	{ "_Z10read_tablePj", hk_read_table, 1, ptr_size, ptr_align },
};

static const uint32_t g_table_init[4] = { 1, 2, 3, 4 };

static const struct cv_hk_global hk_globals[] = {
	{ "g_table", sizeof(g_table_init), g_table_init },
	{ "g_zero", 100, NULL },
};

static const struct cv_hk_lib hk_lib = {
	.abi = CV_HK_ABI,
	.nkernels = sizeof(hk_kernels) / sizeof(hk_kernels[0]),
	.kernels = hk_kernels,
	.nglobals = sizeof(hk_globals) / sizeof(hk_globals[0]),
	.globals = hk_globals,
};

const struct cv_hk_lib *cv_host_kernels(void);

const struct cv_hk_lib *cv_host_kernels(void)
{
	return &hk_lib;
}

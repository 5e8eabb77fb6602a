/* SPDX-License-Identifier: MIT */
/*
 * What the test kernels (kernels.cu for the GPU, host_kernels.c for the
 * host backend) and the test programs that check their results agree on:
 * the by-value struct of params_probe, the fill pattern, the initial values
 * of the __device__ globals and the layout of params_probe's output.
 *
 * Included from C (gnu11) and from CUDA C++.
 */
#ifndef CV_TEST_KERNELS_H
#define CV_TEST_KERNELS_H

#include <stdint.h>

#ifdef __CUDACC__
#define CVK_HD __host__ __device__
#else
#define CVK_HD
#endif

/* 24 bytes, 8-byte aligned: passed by value to params_probe. */
struct cvk_s24 {
	int32_t i;
	float f;
	double d;
	int16_t s;
	char c[6];
};
#ifdef __cplusplus
static_assert(sizeof(struct cvk_s24) == 24, "s24 size");
static_assert(alignof(struct cvk_s24) == 8, "s24 align");
#else
_Static_assert(sizeof(struct cvk_s24) == 24, "s24 size");
_Static_assert(_Alignof(struct cvk_s24) == 8, "s24 align");
#endif

/*
 * params_probe(char c, short s, double d, struct cvk_s24 st, uint8_t u8,
 *              void *out, float f, int64_t ll)
 * writes its parameters back into out at these offsets (out must hold
 * CVK_PROBE_SIZE bytes). Mixed sizes and alignments make any packing
 * mistake visible: c at 0, s at 2, d at 8, st at 16, u8 at 40, out at 48,
 * f at 56, ll at 64 in the parameter buffer (72 bytes).
 */
#define CVK_PROBE_C 0
#define CVK_PROBE_S 8
#define CVK_PROBE_D 16
#define CVK_PROBE_ST 24
#define CVK_PROBE_U8 48
#define CVK_PROBE_PTR 56
#define CVK_PROBE_F 64
#define CVK_PROBE_LL 72
#define CVK_PROBE_MAGIC 80 /* u32 0xC0FFEE01 written last */
#define CVK_PROBE_SIZE 88
#define CVK_PROBE_MAGIC_VAL 0xC0FFEE01u
#define CVK_PROBE_PARAM_BYTES 72

/* fill_pattern(p, seed, n): p[i] = cvk_pattern(seed, i) for i < n. */
static inline CVK_HD uint32_t cvk_pattern(uint32_t seed, uint64_t i)
{
	return (uint32_t)(i * 2654435761u) ^ seed ^ (uint32_t)(i >> 32);
}

/* __device__ int g_value = CVK_G_VALUE_INIT;
 * __device__ uint32_t g_table[CVK_G_TABLE_LEN] = CVK_G_TABLE_INIT, so
 * g_table[i] == cvk_g_table_init(i). */
#define CVK_G_VALUE_INIT 42
#define CVK_G_TABLE_LEN 64
#define CVK_T1_(i) (3u * (i) + 1u)
#define CVK_T8_(i) CVK_T1_(i), CVK_T1_(i + 1), CVK_T1_(i + 2), \
	CVK_T1_(i + 3), CVK_T1_(i + 4), CVK_T1_(i + 5), CVK_T1_(i + 6), \
	CVK_T1_(i + 7)
#define CVK_G_TABLE_INIT { CVK_T8_(0), CVK_T8_(8), CVK_T8_(16), \
	CVK_T8_(24), CVK_T8_(32), CVK_T8_(40), CVK_T8_(48), CVK_T8_(56) }
static inline CVK_HD uint32_t cvk_g_table_init(uint32_t i)
{
	return CVK_T1_(i);
}

/* The page counter kernel increments the first u32 of each 4 KiB page. */
#define CVK_PAGE_WORDS 1024u

#endif

/* SPDX-License-Identifier: MIT */
/*
 * Memsets: D8/D16/D32, their 2D forms and async variants. Every case
 * pre-fills the buffer with a known pattern and checks the whole buffer
 * afterwards, so writes outside the target range are caught too.
 */
#include "cvtest.h"

#define BUF (9u << 20)

static CUdeviceptr d;
static uint8_t *host, *exp_;
static CUstream stream;

/* Puts a known background into the device buffer and exp_. */
static void background(uint64_t seed)
{
	cvt_fill_bytes(exp_, BUF, seed);
	if (cuMemcpyHtoD(d, exp_, BUF) != CUDA_SUCCESS)
		cvt_bail("HtoD of the background failed");
}

static void expect_set(size_t off, size_t count, unsigned elem, uint32_t v)
{
	for (size_t i = 0; i < count; i++)
		memcpy(exp_ + off + i * elem, &v, elem);
}

static void compare(const char *what, size_t count)
{
	memset(host, 0, BUF);
	if (cuMemcpyDtoH(host, d, BUF) != CUDA_SUCCESS) {
		cvt_check(false, "%s of %zu: read back", what, count);
		return;
	}
	cvt_check_mem(host, exp_, BUF, "%s of %zu elements, rest untouched",
		      what, count);
}

static void check_1d(void)
{
	static const size_t counts[] = { 1, 3, 255, 4097, (2 << 20) + 1 };

	for (unsigned k = 0; k < CVT_ARRAY_SIZE(counts); k++) {
		size_t n = counts[k];

		background(k);
		CVT_CU(cuMemsetD8(d + 1 + k, (unsigned char)(0x40 + k), n),
		       "cuMemsetD8 at an odd offset, %zu bytes", n);
		expect_set(1 + k, n, 1, 0x40 + k);
		compare("cuMemsetD8", n);

		background(k + 10);
		CVT_CU(cuMemsetD16(d + 2 * (k + 1), (unsigned short)(0xbeef + k),
				   n), "cuMemsetD16, %zu elements", n);
		expect_set(2 * (k + 1), n, 2, 0xbeef + k);
		compare("cuMemsetD16", n);

		background(k + 20);
		CVT_CU(cuMemsetD32(d + 4 * (k + 1), 0xdeadbeefu + k, n),
		       "cuMemsetD32, %zu elements", n);
		expect_set(4 * (k + 1), n, 4, 0xdeadbeefu + k);
		compare("cuMemsetD32", n);
	}
	background(99);
	CVT_CU(cuMemsetD32(d, 0x01020304, BUF / 4), "cuMemsetD32 of 9 MiB");
	expect_set(0, BUF / 4, 4, 0x01020304);
	compare("cuMemsetD32 whole buffer", BUF / 4);
}

static void check_async(void)
{
	background(50);
	CVT_CU(cuMemsetD8Async(d + 3, 0x11, 1000, stream), "cuMemsetD8Async");
	CVT_CU(cuMemsetD16Async(d + 2000, 0x2222, 1000, stream),
	       "cuMemsetD16Async");
	CVT_CU(cuMemsetD32Async(d + 8000, 0x33333333, (3 << 20) / 4, stream),
	       "cuMemsetD32Async");
	/* The later memset overlaps the earlier: stream order decides. */
	CVT_CU(cuMemsetD8Async(d + 8000, 0x44, 10, stream),
	       "overlapping cuMemsetD8Async");
	CVT_CU(cuStreamSynchronize(stream), "stream sync");
	expect_set(3, 1000, 1, 0x11);
	expect_set(2000, 1000, 2, 0x2222);
	expect_set(8000, (3 << 20) / 4, 4, 0x33333333);
	expect_set(8000, 10, 1, 0x44);
	compare("async memsets in stream order", 4);
}

static void check_2d(void)
{
	CUdeviceptr base = d + 4096;
	size_t pitch = 1536, w = 700, h = 50;

	background(60);
	CVT_CU(cuMemsetD2D8(base + 1, pitch, 0x5a, w, h), "cuMemsetD2D8");
	for (size_t y = 0; y < h; y++)
		expect_set(4096 + 1 + y * pitch, w, 1, 0x5a);
	compare("cuMemsetD2D8", w * h);

	background(61);
	CVT_CU(cuMemsetD2D16(base + 2, pitch, 0x1234, w / 2, h),
	       "cuMemsetD2D16");
	for (size_t y = 0; y < h; y++)
		expect_set(4096 + 2 + y * pitch, w / 2, 2, 0x1234);
	compare("cuMemsetD2D16", w / 2 * h);

	background(62);
	CVT_CU(cuMemsetD2D32(base + 4, pitch, 0xcafef00d, w / 4, h),
	       "cuMemsetD2D32");
	for (size_t y = 0; y < h; y++)
		expect_set(4096 + 4 + y * pitch, w / 4, 4, 0xcafef00d);
	compare("cuMemsetD2D32", w / 4 * h);

	background(63);
	CVT_CU(cuMemsetD2D32Async(base, pitch, 0x0badf00d, w / 4, h, stream),
	       "cuMemsetD2D32Async");
	CVT_CU(cuMemsetD2D8Async(base + pitch * h, pitch, 0x77, 33, 3, stream),
	       "cuMemsetD2D8Async");
	CVT_CU(cuStreamSynchronize(stream), "sync");
	for (size_t y = 0; y < h; y++)
		expect_set(4096 + y * pitch, w / 4, 4, 0x0badf00d);
	for (size_t y = 0; y < 3; y++)
		expect_set(4096 + (h + y) * pitch, 33, 1, 0x77);
	compare("async 2D memsets", w / 4 * h);
}

int main(int argc, char **argv)
{
	CUdevice dev;
	CUcontext ctx;

	cvt_setup(&dev, &ctx);
	host = malloc(BUF);
	exp_ = malloc(BUF);
	if (!host || !exp_ || cuMemAlloc(&d, BUF) ||
	    cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING))
		cvt_bail("setup failed");
	check_1d();
	check_async();
	check_2d();
	cvt_error_now_or_at_sync(cuMemsetD32(d + 1, 0, 16),
				 "misaligned cuMemsetD32 is an error");
	CVT_CU(cuMemsetD8(d, 0, 1), "a memset after the error works");
	/* 2^62 + 1 words: their size in bytes wraps to 4 in 64 bits. */
	cvt_cu(cuMemsetD32(d, 0, 0x4000000000000001ull),
	       CUDA_ERROR_INVALID_VALUE, "a count whose bytes wrap is refused");
	cvt_cu(cuMemsetD2D32(d, 0x4000000000000004ull, 0, 0x4000000000000001ull,
			     2), CUDA_ERROR_INVALID_VALUE,
	       "a 2D width whose bytes wrap is refused");
	CVT_CU(cuCtxSynchronize(), "and the context is clean");
	CVT_CU(cuStreamDestroy(stream), "cuStreamDestroy");
	CVT_CU(cuMemFree(d), "cuMemFree");
	free(host);
	free(exp_);
	(void)argc;
	(void)argv;
	return cvt_done();
}

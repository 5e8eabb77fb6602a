/* SPDX-License-Identifier: MIT */
/*
 * Device memory: allocations of many sizes (small ones carved from
 * granules, ones across the 2 MiB granule size), alignment, disjointness,
 * address ranges, pitched allocations, cuMemGetInfo against the quota, and
 * running out of memory.
 *
 * CVT_EXPECT_MEM=BYTES: the quota (see cu_device.c).
 */
#include "cvtest.h"

static int cmp_ptr(const void *a, const void *b)
{
	CUdeviceptr x = *(const CUdeviceptr *)a, y = *(const CUdeviceptr *)b;

	return x < y ? -1 : x > y;
}

/* Every allocation holds its own data: write a distinct pattern into
 * each, then read all back. */
static void check_sizes(void)
{
	static const size_t sizes[] = {
		1, 7, 255, 256, 4095, 4096, 65536, 1 << 20, (2 << 20) - 1,
		2 << 20, (2 << 20) + 1, 3 << 20, (17 << 20) + 5,
	};
	CUdeviceptr d[CVT_ARRAY_SIZE(sizes)];
	size_t i, bad_align = 0, bad_data = 0;

	for (i = 0; i < CVT_ARRAY_SIZE(sizes); i++) {
		d[i] = 0;
		CVT_CU(cuMemAlloc(&d[i], sizes[i]), "cuMemAlloc(%zu)", sizes[i]);
		bad_align += d[i] % 256 != 0;
	}
	cvt_check(!bad_align, "allocations are 256-byte aligned");
	for (i = 0; i < CVT_ARRAY_SIZE(sizes); i++) {
		uint8_t *h = malloc(sizes[i]);

		cvt_fill_bytes(h, sizes[i], i + 1);
		if (d[i] && cuMemcpyHtoD(d[i], h, sizes[i]))
			bad_data++;
		free(h);
	}
	for (i = 0; i < CVT_ARRAY_SIZE(sizes); i++) {
		uint8_t *h = malloc(sizes[i]), *want = malloc(sizes[i]);

		cvt_fill_bytes(want, sizes[i], i + 1);
		if (!d[i] || cuMemcpyDtoH(h, d[i], sizes[i]) ||
		    cvt_cmp(h, want, sizes[i]) >= 0) {
			bad_data++;
			cvt_note("allocation of %zu bytes lost its data",
				 sizes[i]);
		}
		free(h);
		free(want);
	}
	cvt_check(!bad_data, "each allocation keeps its own data");
	for (i = 0; i < CVT_ARRAY_SIZE(sizes); i++)
		CVT_CU(cuMemFree(d[i]), "cuMemFree(%zu bytes)", sizes[i]);
}

/* Many small allocations: distinct, disjoint, freed in random order. */
static void check_many_small(void)
{
	enum { N = 2000 };
	CUdeviceptr *d = calloc(N, sizeof(*d)), *sorted = calloc(N, sizeof(*d));
	size_t *sz = calloc(N, sizeof(*sz));
	uint64_t s = 5;
	int fails = 0, overlap = 0, i;

	for (i = 0; i < N; i++) {
		sz[i] = 1 + cvt_rand(&s) % 3000;
		fails += cuMemAlloc(&d[i], sz[i]) != CUDA_SUCCESS;
	}
	cvt_check(!fails, "2000 small allocations succeed");
	memcpy(sorted, d, N * sizeof(*d));
	qsort(sorted, N, sizeof(*d), cmp_ptr);
	for (i = 1; i < N; i++) {
		size_t prev_sz = 0;

		for (int k = 0; k < N; k++)
			if (d[k] == sorted[i - 1])
				prev_sz = sz[k];
		overlap += sorted[i] < sorted[i - 1] + prev_sz;
	}
	cvt_check(!overlap, "small allocations are disjoint");
	/* Free every other one, allocate again, then free everything. */
	fails = 0;
	for (i = 0; i < N; i += 2)
		fails += cuMemFree(d[i]) != CUDA_SUCCESS;
	for (i = 0; i < N; i += 2)
		fails += cuMemAlloc(&d[i], sz[i]) != CUDA_SUCCESS;
	for (i = N - 1; i >= 0; i--)
		fails += cuMemFree(d[i]) != CUDA_SUCCESS;
	cvt_check(!fails, "free and reallocate small allocations");
	free(d);
	free(sorted);
	free(sz);
}

static void check_address_range(void)
{
	CUdeviceptr d = 0, base = 0;
	size_t size = 0, n = (3 << 20) + 100;

	if (!CVT_CU(cuMemAlloc(&d, n), "cuMemAlloc(3 MiB + 100)"))
		return;
	CVT_CU(cuMemGetAddressRange(&base, &size, d + 12345),
	       "cuMemGetAddressRange of an interior pointer");
	cvt_check(base == d, "range base is the allocation");
	cvt_check(size >= n, "range size covers the allocation");
	cvt_note("size %zu for %zu", size, n);
	CVT_CU(cuMemGetAddressRange(&base, &size, d + n - 1),
	       "cuMemGetAddressRange of the last byte");
	cvt_check(base == d, "last byte belongs to the allocation");
	CVT_CU(cuMemFree(d), "cuMemFree");
	cvt_check(cuMemGetAddressRange(&base, &size, (CUdeviceptr)0x1000) !=
		  CUDA_SUCCESS, "an unallocated address has no range");
}

static void check_pitch(void)
{
	CUdeviceptr d = 0;
	size_t pitch = 0, w = 1000, hgt = 37;
	uint8_t *src = malloc(w * hgt), *back = malloc(w * hgt);
	CUDA_MEMCPY2D c;

	if (!CVT_CU(cuMemAllocPitch(&d, &pitch, w, hgt, 4),
		    "cuMemAllocPitch(1000 x 37, element 4)"))
		goto out;
	cvt_note("pitch %zu", pitch);
	cvt_check(pitch >= w && pitch % 4 == 0, "pitch >= width, multiple of 4");
	cvt_fill_bytes(src, w * hgt, 31);
	memset(&c, 0, sizeof(c));
	c.srcMemoryType = CU_MEMORYTYPE_HOST;
	c.srcHost = src;
	c.srcPitch = w;
	c.dstMemoryType = CU_MEMORYTYPE_DEVICE;
	c.dstDevice = d;
	c.dstPitch = pitch;
	c.WidthInBytes = w;
	c.Height = hgt;
	CVT_CU(cuMemcpy2D(&c), "cuMemcpy2D into the pitched allocation");
	memset(&c, 0, sizeof(c));
	c.srcMemoryType = CU_MEMORYTYPE_DEVICE;
	c.srcDevice = d;
	c.srcPitch = pitch;
	c.dstMemoryType = CU_MEMORYTYPE_HOST;
	c.dstHost = back;
	c.dstPitch = w;
	c.WidthInBytes = w;
	c.Height = hgt;
	CVT_CU(cuMemcpy2D(&c), "cuMemcpy2D out of it");
	cvt_check_mem(back, src, w * hgt, "pitched data round trip");
	CVT_CU(cuMemFree(d), "cuMemFree(pitched)");
out:
	free(src);
	free(back);
}

/* Returns the quota (total). */
static size_t check_info(CUdevice dev)
{
	size_t free0 = 0, total = 0, free1 = 0, total1 = 0, devtotal = 0;
	const char *want = getenv("CVT_EXPECT_MEM");
	CUdeviceptr d = 0;

	CVT_CU(cuMemGetInfo(&free0, &total), "cuMemGetInfo");
	CVT_CU(cuDeviceTotalMem(&devtotal, dev), "cuDeviceTotalMem");
	cvt_note("free %zu total %zu", free0, total);
	cvt_check(total == devtotal, "cuMemGetInfo total equals cuDeviceTotalMem");
	cvt_check(free0 <= total, "free <= total");
	if (want && *want)
		cvt_check(total == strtoull(want, NULL, 0),
			  "total equals the quota");
	else
		cvt_check(total > 0, "total equals the quota");
	if (CVT_CU(cuMemAlloc(&d, 64 << 20), "cuMemAlloc(64 MiB)")) {
		CVT_CU(cuMemGetInfo(&free1, &total1), "cuMemGetInfo after");
		cvt_note("free after 64 MiB: %zu", free1);
		cvt_check(total1 == total, "total does not change");
		cvt_check(free1 + (32 << 20) <= free0,
			  "free drops by about the allocation");
		CVT_CU(cuMemFree(d), "cuMemFree(64 MiB)");
	}
	return total;
}

/* Exhausting the quota gives CUDA_ERROR_OUT_OF_MEMORY and nothing leaks. */
static void check_oom(size_t total)
{
	enum { MAXCHUNKS = 4096 };
	CUdeviceptr big = 0, *d = calloc(MAXCHUNKS, sizeof(*d));
	size_t chunk = total / 16, sum = 0;
	CUresult r = CUDA_SUCCESS;
	int n = 0, fails = 0;

	if (chunk < (2 << 20))
		chunk = 2 << 20;
	cvt_cu(cuMemAlloc(&big, total + (2 << 20)), CUDA_ERROR_OUT_OF_MEMORY,
	       "allocating more than the total is OUT_OF_MEMORY");
	while (n < MAXCHUNKS) {
		r = cuMemAlloc(&d[n], chunk);
		if (r != CUDA_SUCCESS)
			break;
		sum += chunk;
		n++;
	}
	cvt_note("%d chunks of %zu bytes (%zu) before %s", n, chunk, sum,
		 cvt_errname(r));
	cvt_cu(r, CUDA_ERROR_OUT_OF_MEMORY,
	       "filling memory ends with OUT_OF_MEMORY");
	cvt_check(sum <= total, "no more than the total was handed out");
	cvt_check(sum >= total / 2, "at least half the total was usable");
	/* A failed allocation must not break the context. */
	CVT_CU(cuCtxSynchronize(), "context still usable after OOM");
	for (int i = 0; i < n; i++)
		fails += cuMemFree(d[i]) != CUDA_SUCCESS;
	cvt_check(!fails, "free all chunks");
	n = 0;
	while (n < 16 && cuMemAlloc(&d[n], chunk) == CUDA_SUCCESS)
		n++;
	cvt_check(n >= 8, "memory is available again after freeing");
	for (int i = 0; i < n; i++)
		cuMemFree(d[i]);
	free(d);
}

static void check_host_alloc(void)
{
	static const size_t sizes[] = { 1, 4096, 100000, 3 << 20, 64 << 20 };
	unsigned flags = 0;

	for (size_t i = 0; i < CVT_ARRAY_SIZE(sizes); i++) {
		void *p = NULL;

		if (!CVT_CU(cuMemAllocHost(&p, sizes[i]),
			    "cuMemAllocHost(%zu)", sizes[i]))
			continue;
		/* The memory is ordinary host memory to the program. */
		memset(p, 0xa5, sizes[i]);
		cvt_check(((uint8_t *)p)[sizes[i] - 1] == 0xa5,
			  "pinned memory of %zu bytes is writable", sizes[i]);
		CVT_CU(cuMemHostGetFlags(&flags, p), "cuMemHostGetFlags");
		CVT_CU(cuMemFreeHost(p), "cuMemFreeHost(%zu)", sizes[i]);
	}
}

int main(int argc, char **argv)
{
	CUdevice dev;
	CUcontext ctx;
	CUdeviceptr d = 0;
	size_t total;

	cvt_setup(&dev, &ctx);
	check_sizes();
	check_many_small();
	check_address_range();
	check_pitch();
	check_host_alloc();
	total = check_info(dev);
	check_oom(total);
	if (CVT_CU(cuMemAlloc(&d, 4096), "allocate for a double free")) {
		CVT_CU(cuMemFree(d), "first free");
		cvt_error_now_or_at_sync(cuMemFree(d),
					 "double free is an error");
	}
	cvt_cu(cuMemAlloc(&d, 0), CUDA_ERROR_INVALID_VALUE,
	       "cuMemAlloc(0) is INVALID_VALUE");
	(void)argc;
	(void)argv;
	return cvt_done();
}

/* SPDX-License-Identifier: MIT */
/*
 * Copies of every kind, every size class and odd alignments, with the data
 * checked byte for byte: HtoD/DtoH/DtoD, sync and async, pageable and
 * pinned memory (cuMemAllocHost, cuMemHostAlloc with DEVICEMAP and a kernel
 * writing through cuMemHostGetDevicePointer), unified cuMemcpy, and 2D
 * copies including a pitched allocation and sub-rectangles.
 *
 * Sizes cross cuvisor's staging chunk size (4 MiB) and the staging area
 * (32 MiB), so that pageable copies are split and pipelined.
 */
#include "cvtest.h"

#define MAXN ((64u << 20) + 64)

static const size_t sizes[] = {
	1, 3, 17, 4095, 4097, 65537, (1 << 20) + 13, (2 << 20) + 1,
	(4 << 20) - 3, (7 << 20) + 5, (33 << 20) + 7, 64 << 20,
};

static CUstream stream;
static uint8_t *src, *dst, *want;       /* pageable */
static uint8_t *psrc, *pdst;            /* pinned */
static CUdeviceptr da, db;              /* device, MAXN each */

/* Sync copies through pageable memory, odd offsets on both sides. */
static void check_sync(size_t n, unsigned k)
{
	size_t ho = k % 7 + 1, dof = (k * 5) % 13 + 1, dof2 = k % 3;
	bool ok;

	cvt_fill_bytes(src + ho, n, k * 3 + 1);
	memset(dst, 0, n + 16);
	ok = cuMemcpyHtoD(da + dof, src + ho, n) == CUDA_SUCCESS &&
	     cuMemcpyDtoD(db + dof2, da + dof, n) == CUDA_SUCCESS &&
	     cuMemcpyDtoH(dst + 3, db + dof2, n) == CUDA_SUCCESS;
	cvt_check(ok, "sync HtoD, DtoD, DtoH of %zu bytes succeed", n);
	cvt_check_mem(dst + 3, src + ho, n,
		      "sync pageable round trip of %zu bytes", n);
	cvt_check(dst[2] == 0 && dst[3 + n] == 0,
		  "sync DtoH of %zu bytes stays in bounds", n);
}

/* Async copies on a stream, pinned and pageable. */
static void check_async(size_t n, unsigned k)
{
	size_t o = k % 5 + 1;
	bool ok;

	cvt_fill_bytes(psrc + o, n, k * 7 + 2);
	memset(pdst, 0, n + 16);
	ok = cuMemcpyHtoDAsync(da + o, psrc + o, n, stream) == CUDA_SUCCESS &&
	     cuMemcpyDtoDAsync(db + 1, da + o, n, stream) == CUDA_SUCCESS &&
	     cuMemcpyDtoHAsync(pdst + 2, db + 1, n, stream) == CUDA_SUCCESS;
	cvt_check(ok, "async pinned copies of %zu bytes are queued", n);
	CVT_CU(cuStreamSynchronize(stream), "stream sync after pinned copies");
	cvt_check_mem(pdst + 2, psrc + o, n,
		      "async pinned round trip of %zu bytes", n);
	cvt_check(pdst[1] == 0 && pdst[2 + n] == 0,
		  "async pinned DtoH of %zu bytes stays in bounds", n);

	cvt_fill_bytes(src + o, n, k * 7 + 3);
	memcpy(want, src + o, n);
	memset(dst, 0, n + 16);
	ok = cuMemcpyHtoDAsync(da, src + o, n, stream) == CUDA_SUCCESS;
	/* Pageable HtoD returns once the source may be reused. */
	memset(src + o, 0xcc, n);
	ok = ok && cuMemcpyDtoHAsync(dst + 1, da, n, stream) == CUDA_SUCCESS;
	cvt_check(ok, "async pageable copies of %zu bytes are queued", n);
	CVT_CU(cuStreamSynchronize(stream), "stream sync after pageable copies");
	cvt_check_mem(dst + 1, want, n,
		      "async pageable round trip of %zu bytes", n);
}

/* cuMemHostAlloc(DEVICEMAP): a kernel writes host memory directly. */
static void check_mapped(CUfunction fill)
{
	uint32_t *h = NULL;
	CUdeviceptr dp = 0;
	uint64_t n = (3 << 20) / 4 + 11;
	unsigned flags = 0;
	int can = 1;

	/* A vGPU on another host's GPU cannot map our memory. */
	cuDeviceGetAttribute(&can, CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY, 0);
	if (!can) {
		cvt_skip("the device cannot map host memory (a remote vGPU)",
			 "kernel writes through a mapped pointer");
		return;
	}
	if (!CVT_CU(cuMemHostAlloc((void **)&h, n * 4,
				   CU_MEMHOSTALLOC_DEVICEMAP |
				   CU_MEMHOSTALLOC_PORTABLE),
		    "cuMemHostAlloc(DEVICEMAP | PORTABLE)"))
		return;
	memset(h, 0, n * 4);
	CVT_CU(cuMemHostGetDevicePointer(&dp, h, 0),
	       "cuMemHostGetDevicePointer");
	CVT_CU(cuMemHostGetFlags(&flags, h), "cuMemHostGetFlags");
	cvt_check(flags & CU_MEMHOSTALLOC_DEVICEMAP, "flags include DEVICEMAP");
	CVT_CU(cvt_fill(fill, dp, 0xabc, n, stream),
	       "launch fill_pattern into mapped host memory");
	CVT_CU(cuStreamSynchronize(stream), "sync");
	cvt_check_pattern(h, n, 0xabc, "kernel wrote through the mapped pointer");

	/* A copy from device memory into mapped memory, and back out. */
	CVT_CU(cvt_fill(fill, da, 0x77, 1000, stream), "fill device memory");
	CVT_CU(cuMemcpyDtoH(h, da, 4000), "DtoH into mapped host memory");
	cvt_check_pattern(h, 1000, 0x77, "DtoH into mapped memory");
	CVT_CU(cuMemcpyHtoD(db, h, 4000), "HtoD from mapped host memory");
	memset(dst, 0, 4000);
	CVT_CU(cuMemcpyDtoH(dst, db, 4000), "DtoH");
	cvt_check_pattern((uint32_t *)dst, 1000, 0x77,
			  "HtoD from mapped memory");
	CVT_CU(cuMemFreeHost(h), "cuMemFreeHost(mapped)");
}

/* cuMemcpy with unified addresses: device, pinned host. */
static void check_unified(void)
{
	size_t n = (5 << 20) + 3;

	cvt_fill_bytes(psrc, n, 99);
	memset(pdst, 0, n);
	CVT_CU(cuMemcpy(da + 1, (CUdeviceptr)(uintptr_t)psrc, n),
	       "cuMemcpy pinned host -> device");
	CVT_CU(cuMemcpy(db, da + 1, n), "cuMemcpy device -> device");
	CVT_CU(cuMemcpy((CUdeviceptr)(uintptr_t)pdst, db, n),
	       "cuMemcpy device -> pinned host");
	cvt_check_mem(pdst, psrc, n, "unified cuMemcpy round trip");
	memset(pdst, 0, n);
	CVT_CU(cuMemcpyAsync((CUdeviceptr)(uintptr_t)pdst, db, n, stream),
	       "cuMemcpyAsync device -> pinned host");
	CVT_CU(cuStreamSynchronize(stream), "sync");
	cvt_check_mem(pdst, psrc, n, "unified cuMemcpyAsync");
}

static void set2d(CUDA_MEMCPY2D *c, CUmemorytype st, const void *sh,
		  CUdeviceptr sd, size_t sp, CUmemorytype dt, void *dh,
		  CUdeviceptr dd, size_t dp, size_t w, size_t h)
{
	memset(c, 0, sizeof(*c));
	c->srcMemoryType = st;
	c->srcHost = sh;
	c->srcDevice = sd;
	c->srcPitch = sp;
	c->dstMemoryType = dt;
	c->dstHost = dh;
	c->dstDevice = dd;
	c->dstPitch = dp;
	c->WidthInBytes = w;
	c->Height = h;
}

/* 2D: a sub-rectangle of a host image through a pitched allocation, to
 * another device buffer, and back into a host image with another pitch;
 * bytes outside the rectangle must be untouched. */
static void check_2d(void)
{
	const size_t W = 1003, H = 77, w = 517, h = 41, x0 = 5, y0 = 3;
	const size_t hp2 = 1100;
	uint8_t *img = malloc(W * H), *out = malloc(hp2 * H);
	uint8_t *exp = malloc(hp2 * H);
	CUdeviceptr p = 0;
	size_t pitch = 0;
	CUDA_MEMCPY2D c;

	if (!CVT_CU(cuMemAllocPitch(&p, &pitch, W, H, 4), "cuMemAllocPitch"))
		goto out;
	cvt_fill_bytes(img, W * H, 1234);
	memset(out, 0x5c, hp2 * H);
	memcpy(exp, out, hp2 * H);
	for (size_t y = 0; y < h; y++)
		memcpy(exp + (y + 1) * hp2 + 2, img + (y + y0) * W + x0, w);

	set2d(&c, CU_MEMORYTYPE_HOST, img, 0, W, CU_MEMORYTYPE_DEVICE, NULL,
	      p, pitch, w, h);
	c.srcXInBytes = x0;
	c.srcY = y0;
	c.dstXInBytes = 7;
	c.dstY = 2;
	CVT_CU(cuMemcpy2D(&c), "2D HtoD of a sub-rectangle");
	set2d(&c, CU_MEMORYTYPE_DEVICE, NULL, p, pitch, CU_MEMORYTYPE_DEVICE,
	      NULL, da, 600, w, h);
	c.srcXInBytes = 7;
	c.srcY = 2;
	CVT_CU(cuMemcpy2D(&c), "2D DtoD");
	set2d(&c, CU_MEMORYTYPE_DEVICE, NULL, da, 600, CU_MEMORYTYPE_HOST, out,
	      0, hp2, w, h);
	c.dstXInBytes = 2;
	c.dstY = 1;
	CVT_CU(cuMemcpy2D(&c), "2D DtoH");
	cvt_check_mem(out, exp, hp2 * H,
		      "2D round trip; bytes outside the rectangle untouched");

	/* The same with the async form and pinned memory. */
	memset(pdst, 0x5c, hp2 * H);
	set2d(&c, CU_MEMORYTYPE_DEVICE, NULL, da, 600, CU_MEMORYTYPE_HOST, pdst,
	      0, hp2, w, h);
	c.dstXInBytes = 2;
	c.dstY = 1;
	CVT_CU(cuMemcpy2DAsync(&c, stream), "cuMemcpy2DAsync DtoH to pinned");
	CVT_CU(cuStreamSynchronize(stream), "sync");
	cvt_check_mem(pdst, exp, hp2 * H, "2D async into pinned memory");
	set2d(&c, CU_MEMORYTYPE_HOST, img, 0, W, CU_MEMORYTYPE_HOST, out, 0,
	      hp2, w, h);
	memset(out, 0x5c, hp2 * H);
	c.srcXInBytes = x0;
	c.srcY = y0;
	c.dstXInBytes = 2;
	c.dstY = 1;
	CVT_CU(cuMemcpy2D(&c), "2D HtoH");
	cvt_check_mem(out, exp, hp2 * H, "2D host to host");
	CVT_CU(cuMemcpy2DUnaligned(&c), "cuMemcpy2DUnaligned HtoH");
	CVT_CU(cuMemFree(p), "cuMemFree(pitched)");
out:
	free(img);
	free(out);
	free(exp);
}

int main(int argc, char **argv)
{
	char path[PATH_MAX];
	CUdevice dev;
	CUcontext ctx;
	CUmodule mod;
	CUfunction fill;

	cvt_module_path(argc, argv, 1, path, sizeof(path));
	cvt_setup(&dev, &ctx);
	mod = cvt_load(path);
	fill = cvt_func(mod, "fill_pattern");
	src = malloc(MAXN);
	dst = malloc(MAXN);
	want = malloc(MAXN);
	if (!src || !dst || !want)
		cvt_bail("out of host memory");
	if (cuMemAllocHost((void **)&psrc, MAXN) ||
	    cuMemAllocHost((void **)&pdst, MAXN))
		cvt_bail("cuMemAllocHost of 64 MiB failed");
	if (cuMemAlloc(&da, MAXN) || cuMemAlloc(&db, MAXN))
		cvt_bail("cuMemAlloc of 64 MiB failed");
	if (cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING))
		cvt_bail("cuStreamCreate failed");

	for (unsigned k = 0; k < CVT_ARRAY_SIZE(sizes); k++) {
		check_sync(sizes[k], k);
		check_async(sizes[k], k);
	}
	check_mapped(fill);
	check_unified();
	check_2d();

	CVT_CU(cuStreamDestroy(stream), "cuStreamDestroy");
	CVT_CU(cuMemFree(da), "cuMemFree");
	CVT_CU(cuMemFree(db), "cuMemFree");
	CVT_CU(cuMemFreeHost(psrc), "cuMemFreeHost");
	CVT_CU(cuMemFreeHost(pdst), "cuMemFreeHost");
	CVT_CU(cuModuleUnload(mod), "cuModuleUnload");
	free(src);
	free(dst);
	free(want);
	return cvt_done();
}

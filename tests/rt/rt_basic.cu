/* SPDX-License-Identifier: MIT */
/*
 * The first program anyone writes: device query, cudaMalloc/cudaFree,
 * cudaMemcpy in every direction (also cudaMemcpyDefault), cudaMemset,
 * a 2D copy, a vector add kernel and its result.
 *
 * Built twice: rt_basic (static cudart, nvcc's default) and
 * rt_basic_shared (-cudart shared, libcudart.so.13 from the toolkit).
 */
#include "rtcheck.h"

#define N (1 << 20)

__global__ void vec_add(const float *a, const float *b, float *c, int n)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n)
		c[i] = a[i] + b[i];
}

static void check_props(const cudaDeviceProp &p)
{
	int v = 0;

	rt_check(p.name[0] != 0, "device has a name");
	rt_check(p.totalGlobalMem > 0, "totalGlobalMem is set");
	rt_check(p.major >= 1, "compute capability is set");
	rt_check(p.warpSize == 32, "warpSize is 32");
	rt_check(p.maxThreadsPerBlock >= 1024, "maxThreadsPerBlock >= 1024");
	rt_check(p.multiProcessorCount >= 1, "multiProcessorCount >= 1");
	rt_check(p.maxGridSize[0] >= 65535, "maxGridSize[0] >= 65535");
	rt_check(p.unifiedAddressing == 1, "unified addressing");
	RT_CUDA(cudaDeviceGetAttribute(&v, cudaDevAttrMaxThreadsPerBlock, 0),
		"cudaDeviceGetAttribute(MaxThreadsPerBlock)");
	rt_check(v == p.maxThreadsPerBlock, "attribute matches property");
	RT_CUDA(cudaGetDevice(&v), "cudaGetDevice");
	rt_check(v == 0, "current device is 0");
}

static void check_memory(void)
{
	size_t free_b = 0, total_b = 0;
	float *d = NULL, *d2 = NULL;
	float *h = (float *)malloc(N * sizeof(float));
	float *h2 = (float *)malloc(N * sizeof(float));
	float *h3 = (float *)malloc(N * sizeof(float));
	cudaPointerAttributes pa;
	int i;

	if (!h || !h2 || !h3)
		rt_bail("out of host memory");
	for (i = 0; i < N; i++)
		h[i] = (float)(i % 1000) * 0.5f;
	RT_CUDA(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
	rt_check(free_b > 0 && free_b <= total_b, "free <= total");
	RT_CUDA(cudaMalloc(&d, N * sizeof(float)), "cudaMalloc of 4 MiB");
	RT_CUDA(cudaMalloc(&d2, N * sizeof(float)), "cudaMalloc of 4 MiB again");
	if (!d || !d2)
		rt_bail("cudaMalloc failed");
	RT_CUDA(cudaPointerGetAttributes(&pa, d), "cudaPointerGetAttributes");
	rt_check(pa.type == cudaMemoryTypeDevice, "pointer is device memory");
	RT_CUDA(cudaMemcpy(d, h, N * sizeof(float), cudaMemcpyHostToDevice),
		"cudaMemcpy HostToDevice");
	RT_CUDA(cudaMemcpy(d2, d, N * sizeof(float), cudaMemcpyDeviceToDevice),
		"cudaMemcpy DeviceToDevice");
	memset(h2, 0, N * sizeof(float));
	RT_CUDA(cudaMemcpy(h2, d2, N * sizeof(float), cudaMemcpyDeviceToHost),
		"cudaMemcpy DeviceToHost");
	rt_check(!memcmp(h, h2, N * sizeof(float)), "round trip matches");
	RT_CUDA(cudaMemcpy(h3, h2, N * sizeof(float), cudaMemcpyHostToHost),
		"cudaMemcpy HostToHost");
	rt_check(!memcmp(h3, h2, N * sizeof(float)), "host copy matches");

	/* cudaMemcpyDefault: the direction from the pointers (UVA). */
	memset(h2, 0, N * sizeof(float));
	RT_CUDA(cudaMemcpy(d2, h, 4096, cudaMemcpyDefault),
		"cudaMemcpyDefault host to device");
	RT_CUDA(cudaMemcpy(h2, d2, 4096, cudaMemcpyDefault),
		"cudaMemcpyDefault device to host");
	rt_check(!memcmp(h, h2, 4096), "cudaMemcpyDefault round trip matches");

	/* cudaMemset: bytes, then an offset and odd length. */
	RT_CUDA(cudaMemset(d, 0xab, N * sizeof(float)), "cudaMemset 4 MiB");
	RT_CUDA(cudaMemset((char *)d + 3, 0x11, 1001), "cudaMemset odd range");
	RT_CUDA(cudaMemcpy(h2, d, N * sizeof(float), cudaMemcpyDeviceToHost),
		"copy memset result back");
	{
		const unsigned char *b = (const unsigned char *)h2;
		bool ok = true;

		for (i = 0; i < N * 4; i++)
			ok &= b[i] == (i >= 3 && i < 1004 ? 0x11 : 0xab);
		rt_check(ok, "memset bytes are right");
	}
	RT_CUDA(cudaFree(d), "cudaFree");
	RT_CUDA(cudaFree(d2), "cudaFree second");
	RT_CUDA(cudaFree(NULL), "cudaFree(NULL)");
	free(h);
	free(h2);
	free(h3);
}

static void check_2d(void)
{
	enum { W = 100, H = 37 };
	unsigned char src[H][W], dst[H][W];
	size_t pitch = 0;
	void *d = NULL;
	uint64_t s = 7;

	for (int y = 0; y < H; y++)
		for (int x = 0; x < W; x++)
			src[y][x] = (unsigned char)rt_rand(&s);
	memset(dst, 0, sizeof(dst));
	if (!RT_CUDA(cudaMallocPitch(&d, &pitch, W, H), "cudaMallocPitch"))
		return;
	rt_check(pitch >= W, "pitch >= width");
	RT_CUDA(cudaMemset2D(d, pitch, 0, W, H), "cudaMemset2D");
	RT_CUDA(cudaMemcpy2D(d, pitch, src, W, W, H, cudaMemcpyHostToDevice),
		"cudaMemcpy2D HostToDevice");
	RT_CUDA(cudaMemcpy2D(dst, W, d, pitch, W, H, cudaMemcpyDeviceToHost),
		"cudaMemcpy2D DeviceToHost");
	rt_check(!memcmp(src, dst, sizeof(src)), "2D round trip matches");
	RT_CUDA(cudaFree(d), "cudaFree pitched");
}

static void check_vec_add(void)
{
	float *a, *b, *c, *da = NULL, *db = NULL, *dc = NULL;
	size_t bytes = N * sizeof(float);
	int i, bad = 0;

	if (!rt_need_gpu("vector add kernel"))
		return;
	a = (float *)malloc(bytes);
	b = (float *)malloc(bytes);
	c = (float *)malloc(bytes);
	if (!a || !b || !c)
		rt_bail("out of host memory");
	for (i = 0; i < N; i++) {
		a[i] = (float)i;
		b[i] = (float)(2 * i + 1);
	}
	RT_CUDA(cudaMalloc(&da, bytes), "cudaMalloc a");
	RT_CUDA(cudaMalloc(&db, bytes), "cudaMalloc b");
	RT_CUDA(cudaMalloc(&dc, bytes), "cudaMalloc c");
	RT_CUDA(cudaMemcpy(da, a, bytes, cudaMemcpyHostToDevice), "copy a");
	RT_CUDA(cudaMemcpy(db, b, bytes, cudaMemcpyHostToDevice), "copy b");
	vec_add<<<(N + 255) / 256, 256>>>(da, db, dc, N);
	RT_CUDA(cudaGetLastError(), "vec_add launch");
	RT_CUDA(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
	RT_CUDA(cudaMemcpy(c, dc, bytes, cudaMemcpyDeviceToHost), "copy c back");
	for (i = 0; i < N; i++)
		bad += c[i] != (float)(3 * i + 1);
	if (!rt_check(bad == 0, "vec_add result is right"))
		rt_note("%d of %d wrong, c[1] = %g", bad, N, (double)c[1]);
	rt_digest("vec_add", rt_digest_f32(c, N, 1.0));
	cudaFree(da);
	cudaFree(db);
	cudaFree(dc);
	free(a);
	free(b);
	free(c);
}

int main(void)
{
	cudaDeviceProp p;

	rt_start("rt_basic", &p);
	check_props(p);
	check_memory();
	check_2d();
	check_vec_add();
	RT_CUDA(cudaDeviceSynchronize(), "final cudaDeviceSynchronize");
	rt_host_probe("vec_add", [] {
		vec_add<<<1, 32>>>(NULL, NULL, NULL, 0);
	});
	return rt_done();
}

/* SPDX-License-Identifier: MIT */
/*
 * Error paths of the runtime: an invalid launch configuration,
 * cudaGetLastError/cudaPeekAtLastError, copies and frees with bad
 * pointers, an allocation beyond the device, a bad device ordinal, bad
 * handles, the error names and strings; after each of them the context
 * must stay usable (none of these errors is sticky).
 */
#include "rtcheck.h"

__global__ void fill(int *p, int v, int n)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n)
		p[i] = v;
}

/* The context works: an allocation, a copy round trip, a kernel. */
static void check_usable(const char *after)
{
	int h[1000], back[1000];
	int *d = NULL;
	bool ok = true;

	for (int i = 0; i < 1000; i++)
		h[i] = i * 3;
	RT_CUDA(cudaMalloc(&d, sizeof(h)), "after %s: cudaMalloc", after);
	RT_CUDA(cudaMemcpy(d, h, sizeof(h), cudaMemcpyHostToDevice),
		"after %s: copy up", after);
	RT_CUDA(cudaMemcpy(back, d, sizeof(h), cudaMemcpyDeviceToHost),
		"after %s: copy down", after);
	rt_check(!memcmp(h, back, sizeof(h)), "after %s: data is right", after);
	if (rt_need_gpu("after %s: a kernel runs", after)) {
		fill<<<4, 256>>>(d, 77, 1000);
		RT_CUDA(cudaGetLastError(), "after %s: launch", after);
		RT_CUDA(cudaMemcpy(back, d, sizeof(h), cudaMemcpyDeviceToHost),
			"after %s: copy the kernel's result", after);
		for (int i = 0; i < 1000; i++)
			ok &= back[i] == 77;
		rt_check(ok, "after %s: kernel result is right", after);
	}
	RT_CUDA(cudaFree(d), "after %s: cudaFree", after);
	RT_CUDA(cudaGetLastError(), "after %s: no error pending", after);
}

static void check_launch_config(void)
{
	int *d = NULL;

	if (!rt_need_gpu("launch with 2048 threads per block"))
		return;
	RT_CUDA(cudaMalloc(&d, 4096 * sizeof(int)), "cudaMalloc for launches");
	/* The CUDA 13 runtime passes on the driver's answer to these,
	 * CUDA_ERROR_INVALID_VALUE (seen natively on an H100 with driver
	 * 580), not cudaErrorInvalidConfiguration. */
	fill<<<1, 2048>>>(d, 1, 4096);
	rt_cuda_want(cudaPeekAtLastError(), cudaErrorInvalidValue,
		     "cudaPeekAtLastError after 2048 threads per block");
	rt_cuda_want(cudaGetLastError(), cudaErrorInvalidValue,
		     "cudaGetLastError after 2048 threads per block");
	RT_CUDA(cudaGetLastError(), "cudaGetLastError cleared it");
	fill<<<1, dim3(32, 32, 2)>>>(d, 1, 4096);
	rt_cuda_want(cudaGetLastError(), cudaErrorInvalidValue,
		     "block of 32x32x2 threads");
	fill<<<dim3(1, 1, 1 << 17), 32>>>(d, 1, 4096);
	rt_cuda_fails(cudaGetLastError(), "grid z of 131072");
	fill<<<1, 32, 1 << 30>>>(d, 1, 4096);
	rt_cuda_fails(cudaGetLastError(), "1 GiB of dynamic shared memory");
	RT_CUDA(cudaDeviceSynchronize(), "sync after the bad launches");
	RT_CUDA(cudaFree(d), "cudaFree after the bad launches");
}

static void check_bad_pointers(void)
{
	char h[256];
	void *d = NULL;
	void *bogus = (void *)(uintptr_t)0x1000; /* never device memory */

	memset(h, 1, sizeof(h));
	rt_cuda_fails(cudaMemcpy(h, bogus, sizeof(h), cudaMemcpyDeviceToHost),
		      "cudaMemcpy from a bad device pointer");
	cudaGetLastError();
	rt_cuda_fails(cudaMemcpy(bogus, h, sizeof(h), cudaMemcpyHostToDevice),
		      "cudaMemcpy to a bad device pointer");
	cudaGetLastError();
	RT_CUDA(cudaMalloc(&d, 256), "cudaMalloc 256 bytes");
	/*
	 * Past the end of a small allocation: the driver may allow it when
	 * the memory behind is mapped, cuvisor refuses it. Noted, not checked.
	 */
	{
		char *big = (char *)malloc(1 << 20);

		if (big) {
			rt_note("cudaMemcpy past the end of 256 bytes: %s",
				rt_ename(cudaMemcpy(big, d, 1 << 20,
						    cudaMemcpyDeviceToHost)));
			cudaGetLastError();
			free(big);
		}
	}
	RT_CUDA(cudaFree(d), "cudaFree");
	rt_cuda_fails(cudaFree(bogus), "cudaFree of a bad pointer");
	cudaGetLastError();
	rt_cuda_fails(cudaFree(d), "cudaFree twice");
	cudaGetLastError();
	check_usable("bad pointers");
}

static void check_other_errors(void)
{
	void *d = NULL;
	int n = 0;
	cudaEvent_t a, b;
	float ms;

	rt_cuda_want(cudaMalloc(&d, (size_t)1 << 50),
		     cudaErrorMemoryAllocation, "cudaMalloc of 1 PiB");
	rt_cuda_want(cudaGetLastError(), cudaErrorMemoryAllocation,
		     "cudaGetLastError reports the failed allocation");
	RT_CUDA(cudaGetDeviceCount(&n), "cudaGetDeviceCount");
	rt_cuda_want(cudaSetDevice(n + 5), cudaErrorInvalidDevice,
		     "cudaSetDevice of a device that does not exist");
	cudaGetLastError();
	rt_cuda_want(cudaMemcpy(&n, &n, sizeof(n), (cudaMemcpyKind)77),
		     cudaErrorInvalidMemcpyDirection,
		     "cudaMemcpy with a bad direction");
	cudaGetLastError();
	RT_CUDA(cudaEventCreate(&a), "cudaEventCreate a");
	RT_CUDA(cudaEventCreate(&b), "cudaEventCreate b");
	rt_cuda_fails(cudaEventElapsedTime(&ms, a, b),
		      "cudaEventElapsedTime of events never recorded");
	cudaGetLastError();
	cudaEventDestroy(a);
	cudaEventDestroy(b);
	check_usable("other errors");
}

static void check_strings(void)
{
	static const struct {
		cudaError_t e;
		const char *name;
	} t[] = {
		{ cudaSuccess, "cudaSuccess" },
		{ cudaErrorInvalidValue, "cudaErrorInvalidValue" },
		{ cudaErrorMemoryAllocation, "cudaErrorMemoryAllocation" },
		{ cudaErrorInvalidConfiguration, "cudaErrorInvalidConfiguration" },
		{ cudaErrorInvalidDevice, "cudaErrorInvalidDevice" },
		{ cudaErrorIllegalAddress, "cudaErrorIllegalAddress" },
	};

	for (size_t i = 0; i < RT_ARRAY_SIZE(t); i++) {
		const char *s = cudaGetErrorString(t[i].e);

		rt_check(!strcmp(cudaGetErrorName(t[i].e), t[i].name),
			 "cudaGetErrorName(%d) is %s", (int)t[i].e, t[i].name);
		rt_check(s && *s && strcmp(s, "unrecognized error code"),
			 "cudaGetErrorString(%s) has a message", t[i].name);
	}
	rt_note("cudaErrorInvalidConfiguration: %s",
		cudaGetErrorString(cudaErrorInvalidConfiguration));
}

int main(void)
{
	rt_start("rt_errors", NULL);
	check_strings();
	check_launch_config();
	check_usable("bad launches");
	check_bad_pointers();
	check_other_errors();
	RT_CUDA(cudaDeviceSynchronize(), "final cudaDeviceSynchronize");
	RT_CUDA(cudaGetLastError(), "no error left at the end");
	rt_host_probe("fill", [] { fill<<<1, 32>>>(NULL, 0, 0); });
	return rt_done();
}

/* SPDX-License-Identifier: MIT */
/*
 * Separate compilation (nvcc -rdc=true): a kernel in this unit calls a
 * __device__ function and reads a __device__ variable defined in
 * rt_rdc_b.cu; a kernel of that unit is launched through its wrapper.
 * The program's fat binaries are of the -rdc kind (wrapper version 2) and
 * are linked by nvcc's device link step.
 */
#include "rtcheck.h"

#define N 4096

extern __device__ float rdc_bias;
extern __device__ float rdc_combine(float a, float b);
cudaError_t rdc_negate_launch(float *p, int n, cudaStream_t s);

__global__ void rdc_apply(const float *a, const float *b, float *c, int n)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n)
		c[i] = rdc_combine(a[i], b[i]);
}

int main(void)
{
	float a[N], b[N], c[N], bias = 0;
	float *da = NULL, *db = NULL, *dc = NULL;
	int bad = 0;

	rt_start("rt_rdc", NULL);
	for (int i = 0; i < N; i++) {
		a[i] = (float)(i % 97);
		b[i] = (float)(i % 13) * 0.25f;
	}
	RT_CUDA(cudaMalloc(&da, sizeof(a)), "cudaMalloc a");
	RT_CUDA(cudaMalloc(&db, sizeof(b)), "cudaMalloc b");
	RT_CUDA(cudaMalloc(&dc, sizeof(c)), "cudaMalloc c");
	RT_CUDA(cudaMemcpy(da, a, sizeof(a), cudaMemcpyHostToDevice), "copy a");
	RT_CUDA(cudaMemcpy(db, b, sizeof(b), cudaMemcpyHostToDevice), "copy b");
	RT_CUDA(cudaMemset(dc, 0, sizeof(c)), "clear c");
	if (rt_need_gpu("kernel calling a device function of another unit")) {
		RT_CUDA(cudaMemcpyFromSymbol(&bias, rdc_bias, sizeof(bias)),
			"read the other unit's __device__ variable");
		rt_check(bias == 0.5f, "its initial value");
		rdc_apply<<<N / 256, 256>>>(da, db, dc, N);
		RT_CUDA(cudaGetLastError(), "rdc_apply launch");
		RT_CUDA(rdc_negate_launch(dc, N, 0),
			"launch of the other unit's kernel");
		RT_CUDA(cudaMemcpy(c, dc, sizeof(c), cudaMemcpyDeviceToHost),
			"copy c back");
		for (int i = 0; i < N; i++)
			bad += c[i] != -(a[i] * 3.0f + b[i] + 0.5f);
		rt_check(bad == 0, "cross-unit result is right");
		rt_digest("rdc", rt_digest_f32(c, N, 100.0));
	}
	cudaFree(da);
	cudaFree(db);
	RT_CUDA(cudaFree(dc), "cudaFree");
	rt_host_probe("rdc_apply", [] {
		rdc_apply<<<1, 32>>>(NULL, NULL, NULL, 0);
	});
	return rt_done();
}

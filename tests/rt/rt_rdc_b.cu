/* SPDX-License-Identifier: MIT */
/*
 * The second translation unit of rt_rdc (see rt_rdc_a.cu): a __device__
 * function and a __device__ variable used from the other unit's kernel,
 * and a kernel of its own that the other unit launches through a host
 * wrapper.
 */
#include "rtcheck.h"

__device__ float rdc_bias = 0.5f;

__device__ float rdc_combine(float a, float b)
{
	return a * 3.0f + b + rdc_bias;
}

__global__ void rdc_negate(float *p, int n)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n)
		p[i] = -p[i];
}

/* Launches rdc_negate from this unit, as a library would. */
cudaError_t rdc_negate_launch(float *p, int n, cudaStream_t s)
{
	rdc_negate<<<(n + 127) / 128, 128, 0, s>>>(p, n);
	return cudaGetLastError();
}

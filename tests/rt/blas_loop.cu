/* SPDX-License-Identifier: MIT */
/*
 * A long loop of cuBLAS SGEMMs, C = A B / 64 + C / 2, whose final C is
 * printed as a digest: the runtime program that tests/migrate.sh migrates
 * while it runs. The digest must be the one of a run that was not
 * migrated, bit for bit.
 *
 *	blas_loop [ITERATIONS]     (default 200000, about 2 s on an H100)
 *
 * Prints "# ready" once the first GEMM finished. On the host backend the
 * GEMMs are skipped (no GPU code runs there).
 */
#include <cublas_v2.h>
#include <unistd.h>

#include "rtcheck.h"

#define N 512

static float a[N * N], b[N * N], c[N * N];

int main(int argc, char **argv)
{
	long iters = argc > 1 ? atol(argv[1]) : 200000;
	float *da = NULL, *db = NULL, *dc = NULL;
	float alpha = 1.0f / 64, beta = 0.5f;
	uint64_t seed = 0x5eed;
	cublasHandle_t h;
	cublasStatus_t st;
	long i;

	rt_start("blas_loop", NULL);
	printf("# guest_pid %d\n", (int)getpid());
	if (iters < 1 || !rt_need_gpu("the SGEMM loop"))
		return rt_done();
	for (i = 0; i < N * N; i++) {
		a[i] = (float)((int)(rt_rand(&seed) % 17) - 8) / 8;
		b[i] = (float)((int)(rt_rand(&seed) % 17) - 8) / 8;
	}
	RT_CUDA(cudaMalloc(&da, sizeof(a)), "cudaMalloc A");
	RT_CUDA(cudaMalloc(&db, sizeof(b)), "cudaMalloc B");
	RT_CUDA(cudaMalloc(&dc, sizeof(c)), "cudaMalloc C");
	RT_CUDA(cudaMemcpy(da, a, sizeof(a), cudaMemcpyHostToDevice), "A in");
	RT_CUDA(cudaMemcpy(db, b, sizeof(b), cudaMemcpyHostToDevice), "B in");
	RT_CUDA(cudaMemset(dc, 0, sizeof(c)), "C = 0");
	st = cublasCreate(&h);
	if (!rt_check(st == CUBLAS_STATUS_SUCCESS, "cublasCreate"))
		return rt_done();
	for (i = 0; i < iters; i++) {
		st = cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, N, N, N, &alpha,
				 da, N, db, N, &beta, dc, N);
		if (st != CUBLAS_STATUS_SUCCESS)
			break;
		if (i == 0 || i % 1000 == 999) {
			if (cudaDeviceSynchronize() != cudaSuccess)
				break;
			if (i == 0)
				printf("# ready\n");
		}
	}
	rt_check(i == iters && st == CUBLAS_STATUS_SUCCESS,
		 "%ld of %ld SGEMMs ran (last status %d)", i, iters, (int)st);
	RT_CUDA(cudaMemcpy(c, dc, sizeof(c), cudaMemcpyDeviceToHost), "C out");
	rt_digest("sgemm_loop", rt_digest_f32(c, N * N, 1e6));
	cublasDestroy(h);
	cudaFree(da);
	cudaFree(db);
	cudaFree(dc);
	return rt_done();
}

/* SPDX-License-Identifier: MIT */
/*
 * cuBLASLt: one FP32 matmul D = alpha * A * B + beta * C through
 * cublasLtMatmul, with descriptors, layouts, a preference with a
 * workspace limit and the heuristic's first algorithm, on a stream.
 * Exact inputs (multiples of 1/8): the digest must match bit for bit.
 *
 * On the host backend everything up to and including the heuristic runs
 * (no kernels); the matmul itself is skipped.
 */
#include <cublasLt.h>

#include "rtcheck.h"

#define M 64
#define NN 48
#define K 32
#define WS (4u << 20)

RT_PRINTF(2, 3) static bool lt_ok(cublasStatus_t s, const char *fmt, ...)
{
	va_list ap;
	bool ok;

	va_start(ap, fmt);
	ok = rt_vcheck(s == CUBLAS_STATUS_SUCCESS, fmt, ap);
	va_end(ap);
	if (!ok)
		rt_note("got %s (%d); last runtime error %s",
			cublasLtGetStatusName(s), (int)s,
			rt_ename(cudaGetLastError()));
	return ok;
}

static float val(int i, int j, int seed)
{
	return (float)(((i * 5 + j * 11 + seed * 3) % 19) - 9) * 0.125f;
}

int main(void)
{
	static float a[M * K], b[K * NN], c[M * NN], d[M * NN], want[M * NN];
	cublasLtHandle_t lt = NULL;
	cublasLtMatmulDesc_t op = NULL;
	cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
	cublasLtMatmulPreference_t pref = NULL;
	cublasLtMatmulHeuristicResult_t heur[4];
	float *da = NULL, *db = NULL, *dc = NULL, *dd = NULL, alpha = 1,
	      beta = 0.25f;
	void *ws = NULL;
	size_t wsz = WS;
	int nres = 0, bad = 0;
	cudaStream_t s;

	rt_start("blaslt", NULL);
	rt_note("cuBLASLt %zu (cudart %zu), built with %d",
		cublasLtGetVersion(), cublasLtGetCudartVersion(),
		CUBLAS_VERSION);
	for (int j = 0; j < K; j++)
		for (int i = 0; i < M; i++)
			a[j * M + i] = val(i, j, 1);
	for (int j = 0; j < NN; j++)
		for (int i = 0; i < K; i++)
			b[j * K + i] = val(i, j, 2);
	for (int j = 0; j < NN; j++)
		for (int i = 0; i < M; i++) {
			double sum = 0;

			c[j * M + i] = val(i, j, 3);
			for (int l = 0; l < K; l++)
				sum += (double)a[l * M + i] * b[j * K + l];
			want[j * M + i] = (float)(alpha * sum + beta * c[j * M + i]);
		}

	if (!lt_ok(cublasLtCreate(&lt), "cublasLtCreate"))
		rt_bail("no cuBLASLt handle");
	RT_CUDA(cudaStreamCreate(&s), "cudaStreamCreate");
	RT_CUDA(cudaMalloc(&da, sizeof(a)), "cudaMalloc A");
	RT_CUDA(cudaMalloc(&db, sizeof(b)), "cudaMalloc B");
	RT_CUDA(cudaMalloc(&dc, sizeof(c)), "cudaMalloc C");
	RT_CUDA(cudaMalloc(&dd, sizeof(d)), "cudaMalloc D");
	RT_CUDA(cudaMalloc(&ws, WS), "cudaMalloc workspace");
	RT_CUDA(cudaMemcpyAsync(da, a, sizeof(a), cudaMemcpyHostToDevice, s),
		"copy A");
	RT_CUDA(cudaMemcpyAsync(db, b, sizeof(b), cudaMemcpyHostToDevice, s),
		"copy B");
	RT_CUDA(cudaMemcpyAsync(dc, c, sizeof(c), cudaMemcpyHostToDevice, s),
		"copy C");
	RT_CUDA(cudaMemsetAsync(dd, 0, sizeof(d), s), "clear D");

	lt_ok(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F),
	      "cublasLtMatmulDescCreate");
	lt_ok(cublasLtMatrixLayoutCreate(&la, CUDA_R_32F, M, K, M),
	      "layout A");
	lt_ok(cublasLtMatrixLayoutCreate(&lb, CUDA_R_32F, K, NN, K),
	      "layout B");
	lt_ok(cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, M, NN, M),
	      "layout C and D");
	lt_ok(cublasLtMatmulPreferenceCreate(&pref),
	      "cublasLtMatmulPreferenceCreate");
	lt_ok(cublasLtMatmulPreferenceSetAttribute(pref,
			CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsz,
			sizeof(wsz)), "workspace limit");
	lt_ok(cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, lc, pref, 4,
					     heur, &nres),
	      "cublasLtMatmulAlgoGetHeuristic");
	rt_check(nres >= 1, "the heuristic offers an algorithm");
	rt_note("%d algorithms offered", nres);

	if (nres >= 1 && rt_need_gpu("cublasLtMatmul")) {
		lt_ok(cublasLtMatmul(lt, op, &alpha, da, la, db, lb, &beta, dc,
				     lc, dd, lc, &heur[0].algo, ws, WS, s),
		      "cublasLtMatmul");
		RT_CUDA(cudaMemcpyAsync(d, dd, sizeof(d),
					cudaMemcpyDeviceToHost, s), "copy D");
		RT_CUDA(cudaStreamSynchronize(s), "sync");
		for (int i = 0; i < M * NN; i++)
			bad += fabsf(d[i] - want[i]) > 1e-4f;
		rt_check(bad == 0, "matmul matches the CPU reference");
		rt_digest("ltmatmul", rt_digest_f32(d, M * NN, 1e3));
	} else if (nres < 1) {
		rt_skip("no algorithm", "cublasLtMatmul");
	}
	lt_ok(cublasLtMatmulPreferenceDestroy(pref), "destroy preference");
	lt_ok(cublasLtMatrixLayoutDestroy(la), "destroy layout A");
	lt_ok(cublasLtMatrixLayoutDestroy(lb), "destroy layout B");
	lt_ok(cublasLtMatrixLayoutDestroy(lc), "destroy layout C");
	lt_ok(cublasLtMatmulDescDestroy(op), "cublasLtMatmulDescDestroy");
	lt_ok(cublasLtDestroy(lt), "cublasLtDestroy");
	RT_CUDA(cudaStreamSynchronize(s), "final sync");
	cudaFree(da);
	cudaFree(db);
	cudaFree(dc);
	cudaFree(dd);
	RT_CUDA(cudaFree(ws), "cudaFree workspace");
	RT_CUDA(cudaStreamDestroy(s), "cudaStreamDestroy");
	return rt_done();
}

/* SPDX-License-Identifier: MIT */
/*
 * cuBLAS as applications use it: a handle bound to a stream, matrices
 * moved with cublasSetMatrix/GetMatrix, SGEMM and DGEMM (with beta != 0),
 * cublasSgemmStridedBatched and cublasSgemmBatched, each checked against
 * a CPU reference. The inputs are small multiples of 1/8, so every result
 * is exact in float: the digests must match bit for bit between a native
 * run and a run under cuvisor.
 *
 * On the host backend the handle, stream, mode and copy calls run; the
 * GEMMs (kernels) are skipped.
 */
#include <cublas_v2.h>

#include "rtcheck.h"

#define M 64
#define NN 48
#define K 32
#define BATCH 3

static const char *blas_name(cublasStatus_t s)
{
	const char *n = cublasGetStatusName(s);

	return n ? n : "(unknown cuBLAS status)";
}

RT_PRINTF(2, 3) static bool blas_ok(cublasStatus_t s, const char *fmt, ...)
{
	va_list ap;
	bool ok;

	va_start(ap, fmt);
	ok = rt_vcheck(s == CUBLAS_STATUS_SUCCESS, fmt, ap);
	va_end(ap);
	if (!ok)
		rt_note("got %s (%d): %s; last runtime error %s", blas_name(s),
			(int)s, cublasGetStatusString(s),
			rt_ename(cudaGetLastError()));
	return ok;
}

/* Column-major element (i, j) of a matrix with leading dimension ld. */
#define AT(p, ld, i, j) ((p)[(size_t)(j) * (ld) + (i)])

static double val(int i, int j, int seed)
{
	return (double)(((i * 7 + j * 3 + seed * 5) % 17) - 8) * 0.125;
}

template <typename T> static void fill(T *p, int rows, int cols, int seed)
{
	for (int j = 0; j < cols; j++)
		for (int i = 0; i < rows; i++)
			AT(p, rows, i, j) = (T)val(i, j, seed);
}

/* C = alpha * A * B + beta * C, all column-major, no transposes. */
template <typename T>
static void ref_gemm(int m, int n, int k, T alpha, const T *a, const T *b,
		     T beta, T *c)
{
	for (int j = 0; j < n; j++)
		for (int i = 0; i < m; i++) {
			double s = 0;

			for (int l = 0; l < k; l++)
				s += (double)AT(a, m, i, l) * AT(b, k, l, j);
			AT(c, m, i, j) = (T)(alpha * s + beta * AT(c, m, i, j));
		}
}

template <typename T> static double max_err(const T *x, const T *y, size_t n)
{
	double e = 0;

	for (size_t i = 0; i < n; i++)
		e = fmax(e, fabs((double)x[i] - (double)y[i]));
	return e;
}

static void print_versions(cublasHandle_t h)
{
	int v = 0, ma = 0, mi = 0, pa = 0;

	cublasGetVersion(h, &v);
	cublasGetProperty(MAJOR_VERSION, &ma);
	cublasGetProperty(MINOR_VERSION, &mi);
	cublasGetProperty(PATCH_LEVEL, &pa);
	rt_note("cuBLAS %d (%d.%d.%d), built with %d", v, ma, mi, pa,
		CUBLAS_VERSION);
}

/* Handle state and host<->device copies: no kernels involved. */
static void check_handle(cublasHandle_t h, cudaStream_t s)
{
	float a[M * K], back[M * K];
	float *d = NULL;
	cudaStream_t got = NULL;
	cublasPointerMode_t pm;
	cublasMath_t mm;

	blas_ok(cublasSetStream(h, s), "cublasSetStream");
	blas_ok(cublasGetStream(h, &got), "cublasGetStream");
	rt_check(got == s, "stream round trip");
	blas_ok(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST),
		"cublasSetPointerMode");
	blas_ok(cublasGetPointerMode(h, &pm), "cublasGetPointerMode");
	rt_check(pm == CUBLAS_POINTER_MODE_HOST, "pointer mode round trip");
	blas_ok(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
	blas_ok(cublasGetMathMode(h, &mm), "cublasGetMathMode");
	rt_check(mm == CUBLAS_DEFAULT_MATH, "math mode round trip");

	fill(a, M, K, 1);
	memset(back, 0, sizeof(back));
	RT_CUDA(cudaMalloc(&d, sizeof(a)), "cudaMalloc for SetMatrix");
	blas_ok(cublasSetMatrix(M, K, sizeof(float), a, M, d, M),
		"cublasSetMatrix");
	blas_ok(cublasGetMatrix(M, K, sizeof(float), d, M, back, M),
		"cublasGetMatrix");
	rt_check(!memcmp(a, back, sizeof(a)), "matrix round trip matches");
	memset(back, 0, sizeof(back));
	blas_ok(cublasSetVectorAsync(M, sizeof(float), a, 1, d, 1, s),
		"cublasSetVectorAsync");
	blas_ok(cublasGetVectorAsync(M, sizeof(float), d, 1, back, 1, s),
		"cublasGetVectorAsync");
	RT_CUDA(cudaStreamSynchronize(s), "sync after vector copies");
	rt_check(!memcmp(a, back, M * sizeof(float)),
		 "vector round trip matches");
	RT_CUDA(cudaFree(d), "cudaFree");
}

template <typename T> struct gemm_fn;
template <> struct gemm_fn<float> {
	static constexpr const char *name = "sgemm";
	static cublasStatus_t run(cublasHandle_t h, int m, int n, int k,
				  const float *al, const float *a,
				  const float *b, const float *be, float *c)
	{
		return cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, al, a,
				   m, b, k, be, c, m);
	}
};
template <> struct gemm_fn<double> {
	static constexpr const char *name = "dgemm";
	static cublasStatus_t run(cublasHandle_t h, int m, int n, int k,
				  const double *al, const double *a,
				  const double *b, const double *be, double *c)
	{
		return cublasDgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, al, a,
				   m, b, k, be, c, m);
	}
};

/* One GEMM of type T, M x NN x K, alpha 1, beta 0.5. */
template <typename T> static void check_gemm(cublasHandle_t h, cudaStream_t s)
{
	const char *name = gemm_fn<T>::name;
	static T a[M * K], b[K * NN], c[M * NN], want[M * NN];
	T *da = NULL, *db = NULL, *dc = NULL, alpha = 1, beta = 0.5;
	double err;

	if (!rt_need_gpu("%s", name))
		return;
	fill(a, M, K, 2);
	fill(b, K, NN, 3);
	fill(c, M, NN, 4);
	memcpy(want, c, sizeof(c));
	ref_gemm(M, NN, K, alpha, a, b, beta, want);
	RT_CUDA(cudaMalloc(&da, sizeof(a)), "%s: cudaMalloc A", name);
	RT_CUDA(cudaMalloc(&db, sizeof(b)), "%s: cudaMalloc B", name);
	RT_CUDA(cudaMalloc(&dc, sizeof(c)), "%s: cudaMalloc C", name);
	blas_ok(cublasSetMatrix(M, K, sizeof(T), a, M, da, M), "%s: set A", name);
	blas_ok(cublasSetMatrix(K, NN, sizeof(T), b, K, db, K), "%s: set B",
		name);
	blas_ok(cublasSetMatrix(M, NN, sizeof(T), c, M, dc, M), "%s: set C",
		name);
	blas_ok(gemm_fn<T>::run(h, M, NN, K, &alpha, da, db, &beta, dc),
		"cublas %s", name);
	blas_ok(cublasGetMatrix(M, NN, sizeof(T), dc, M, c, M), "%s: get C",
		name);
	RT_CUDA(cudaStreamSynchronize(s), "%s: sync", name);
	err = max_err(c, want, M * NN);
	rt_check(err <= 1e-4, "%s matches the CPU reference", name);
	rt_note("%s: max abs error %g", name, err);
	{
		double v[M * NN];

		for (int i = 0; i < M * NN; i++)
			v[i] = (double)c[i];
		rt_digest(name, rt_digest_f64(v, M * NN, 1e3));
	}
	cudaFree(da);
	cudaFree(db);
	cudaFree(dc);
}

/* BATCH SGEMMs, strided and with pointer arrays; C = A_i * B_i. */
static void check_batched(cublasHandle_t h, cudaStream_t s)
{
	static float a[BATCH][M * K], b[BATCH][K * NN], c[BATCH][M * NN],
		want[BATCH][M * NN];
	float *da = NULL, *db = NULL, *dc = NULL, alpha = 1, beta = 0;
	const float *pa[BATCH], *pb[BATCH];
	float *pc[BATCH];
	const float **dpa = NULL, **dpb = NULL;
	float **dpc = NULL;
	double err = 0;

	if (!rt_need_gpu("sgemm batched (strided and pointer arrays)"))
		return;
	for (int i = 0; i < BATCH; i++) {
		fill(a[i], M, K, 10 + i);
		fill(b[i], K, NN, 20 + i);
		memset(want[i], 0, sizeof(want[i]));
		ref_gemm(M, NN, K, 1.0f, a[i], b[i], 0.0f, want[i]);
	}
	RT_CUDA(cudaMalloc(&da, sizeof(a)), "batched: cudaMalloc A");
	RT_CUDA(cudaMalloc(&db, sizeof(b)), "batched: cudaMalloc B");
	RT_CUDA(cudaMalloc(&dc, sizeof(c)), "batched: cudaMalloc C");
	RT_CUDA(cudaMemcpy(da, a, sizeof(a), cudaMemcpyHostToDevice),
		"batched: copy A");
	RT_CUDA(cudaMemcpy(db, b, sizeof(b), cudaMemcpyHostToDevice),
		"batched: copy B");
	RT_CUDA(cudaMemset(dc, 0, sizeof(c)), "batched: clear C");
	blas_ok(cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, M, NN, K,
					  &alpha, da, M, M * K, db, K, K * NN,
					  &beta, dc, M, M * NN, BATCH),
		"cublasSgemmStridedBatched");
	RT_CUDA(cudaMemcpyAsync(c, dc, sizeof(c), cudaMemcpyDeviceToHost, s),
		"strided: copy C back");
	RT_CUDA(cudaStreamSynchronize(s), "strided: sync");
	err = max_err(&c[0][0], &want[0][0], BATCH * M * NN);
	rt_check(err <= 1e-4, "strided batched matches the CPU reference");
	rt_digest("sgemm_strided_batched",
		  rt_digest_f32(&c[0][0], BATCH * M * NN, 1e3));

	/* Pointer arrays, in reverse order to make the pointers matter. */
	for (int i = 0; i < BATCH; i++) {
		pa[i] = da + (size_t)(BATCH - 1 - i) * M * K;
		pb[i] = db + (size_t)(BATCH - 1 - i) * K * NN;
		pc[i] = dc + (size_t)i * M * NN;
	}
	RT_CUDA(cudaMalloc(&dpa, sizeof(pa)), "batched: pointer array A");
	RT_CUDA(cudaMalloc(&dpb, sizeof(pb)), "batched: pointer array B");
	RT_CUDA(cudaMalloc(&dpc, sizeof(pc)), "batched: pointer array C");
	RT_CUDA(cudaMemcpy(dpa, pa, sizeof(pa), cudaMemcpyHostToDevice),
		"copy pointers A");
	RT_CUDA(cudaMemcpy(dpb, pb, sizeof(pb), cudaMemcpyHostToDevice),
		"copy pointers B");
	RT_CUDA(cudaMemcpy(dpc, pc, sizeof(pc), cudaMemcpyHostToDevice),
		"copy pointers C");
	RT_CUDA(cudaMemset(dc, 0, sizeof(c)), "batched: clear C again");
	blas_ok(cublasSgemmBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, M, NN, K,
				   &alpha, dpa, M, dpb, K, &beta, dpc, M, BATCH),
		"cublasSgemmBatched");
	RT_CUDA(cudaMemcpyAsync(c, dc, sizeof(c), cudaMemcpyDeviceToHost, s),
		"pointer batched: copy C back");
	RT_CUDA(cudaStreamSynchronize(s), "pointer batched: sync");
	err = 0;
	for (int i = 0; i < BATCH; i++)
		err = fmax(err, max_err(c[i], want[BATCH - 1 - i], M * NN));
	rt_check(err <= 1e-4, "pointer-array batched matches the CPU reference");
	rt_digest("sgemm_batched", rt_digest_f32(&c[0][0], BATCH * M * NN, 1e3));
	cudaFree(da);
	cudaFree(db);
	cudaFree(dc);
	cudaFree(dpa);
	cudaFree(dpb);
	cudaFree(dpc);
}

int main(void)
{
	cublasHandle_t h = NULL;
	cudaStream_t s;

	rt_start("blas_gemm", NULL);
	if (!blas_ok(cublasCreate(&h), "cublasCreate"))
		rt_bail("no cuBLAS handle");
	print_versions(h);
	RT_CUDA(cudaStreamCreate(&s), "cudaStreamCreate");
	check_handle(h, s);
	check_gemm<float>(h, s);
	check_gemm<double>(h, s);
	check_batched(h, s);
	blas_ok(cublasDestroy(h), "cublasDestroy");
	RT_CUDA(cudaStreamDestroy(s), "cudaStreamDestroy");
	RT_CUDA(cudaDeviceSynchronize(), "final cudaDeviceSynchronize");
	if (rt_host && cublasCreate(&h) == CUBLAS_STATUS_SUCCESS) {
		float one = 1, zero = 0, *d = NULL;

		cudaMalloc(&d, 64 * sizeof(float));
		rt_note("host backend: cublasSgemm: %s",
			blas_name(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 8, 8,
					      8, &one, d, 8, d, 8, &zero, d, 8)));
		rt_note("host backend: then sync: %s",
			rt_ename(cudaDeviceSynchronize()));
		cublasDestroy(h);
		cudaFree(d);
	}
	return rt_done();
}

// SPDX-License-Identifier: MIT
//
// The runtime benchmark: an ordinary CUDA runtime + cuBLAS program (static
// cudart, nvcc's default), run natively and under cuvisor by
// bench/rt_run.sh, which prints the ratios.
//
//   first_gemm_ms     from the process's exec (its start time in
//                     /proc/self/stat, 10 ms resolution) to the end of the
//                     first finished cuBLAS SGEMM, set-up included
//   sgemm_big_tflops  SGEMM of N x N x N (default 8192), median of 5
//   sgemm_small_us    a loop of 64 x 64 x 64 SGEMMs, µs per GEMM
//   rt_launch_us      many async <<<>>> launches of an empty kernel, µs each
//
// Output: one "metric NAME VALUE UNIT" line each, "#" lines for notes.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <unistd.h>
#include <vector>

#define CK(x)                                                               \
	do {                                                                \
		cudaError_t e_ = (x);                                       \
		if (e_ != cudaSuccess) {                                    \
			fprintf(stderr, "%s: %s\n", #x, cudaGetErrorName(e_)); \
			exit(1);                                            \
		}                                                           \
	} while (0)
#define CB(x)                                                               \
	do {                                                                \
		cublasStatus_t s_ = (x);                                    \
		if (s_ != CUBLAS_STATUS_SUCCESS) {                          \
			fprintf(stderr, "%s: status %d\n", #x, (int)s_);    \
			exit(1);                                            \
		}                                                           \
	} while (0)

__global__ void empty_kernel() {}

static double now_s()
{
	timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Seconds since this process started (CLOCK_BOOTTIME based, like the
// kernel's start time of a process).
static double since_start()
{
	char buf[4096];
	FILE *f = fopen("/proc/self/stat", "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	unsigned long long start = 0;
	timespec ts;
	char *p;
	int i;

	if (f)
		fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')');
	// field 22 (starttime) counting from after the comm field
	for (i = 0; p && i < 20; i++)
		p = strchr(p + 1, ' ');
	if (p)
		start = strtoull(p + 1, NULL, 10);
	clock_gettime(CLOCK_BOOTTIME, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9 -
	       (double)start / (double)sysconf(_SC_CLK_TCK);
}

static void metric(const char *name, double v, const char *unit)
{
	printf("metric %s %.6g %s\n", name, v, unit);
	fflush(stdout);
}

static double median(std::vector<double> v)
{
	std::sort(v.begin(), v.end());
	return v[v.size() / 2];
}

static void fill(float *d, size_t n, float seed)
{
	std::vector<float> h(n);
	for (size_t i = 0; i < n; i++)
		h[i] = (float)((i * 2654435761u + (unsigned)seed) % 1000) / 1000.0f - 0.5f;
	CK(cudaMemcpy(d, h.data(), n * sizeof(float), cudaMemcpyHostToDevice));
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 8192;
	const float one = 1.0f, zero = 0.0f;
	cublasHandle_t h;
	float *a, *b, *c;
	cudaDeviceProp prop;

	// 1. process start to the first finished GEMM
	{
		float *x;
		CB(cublasCreate(&h));
		CK(cudaMalloc(&x, 3 * 256 * 256 * sizeof(float)));
		CB(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 256, 256, 256, &one,
			       x, 256, x + 65536, 256, &zero, x + 131072, 256));
		CK(cudaDeviceSynchronize());
		metric("first_gemm_ms", since_start() * 1e3, "ms");
		CK(cudaFree(x));
	}
	CK(cudaGetDeviceProperties(&prop, 0));
	printf("# device %s, N = %d\n", prop.name, n);

	// 2. large SGEMM
	CK(cudaMalloc(&a, (size_t)n * n * sizeof(float)));
	CK(cudaMalloc(&b, (size_t)n * n * sizeof(float)));
	CK(cudaMalloc(&c, (size_t)n * n * sizeof(float)));
	fill(a, (size_t)n * n, 1);
	fill(b, (size_t)n * n, 2);
	CB(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a, n, b, n,
		       &zero, c, n));
	CK(cudaDeviceSynchronize());
	{
		std::vector<double> t;
		for (int r = 0; r < 5; r++) {
			double t0 = now_s();
			CB(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n,
				       &one, a, n, b, n, &zero, c, n));
			CK(cudaDeviceSynchronize());
			t.push_back(now_s() - t0);
		}
		metric("sgemm_big_tflops", 2.0 * n * n * (double)n /
			       median(t) / 1e12, "TFLOP/s");
	}
	{
		float v;
		CK(cudaMemcpy(&v, c + (size_t)n * n / 2, sizeof(v),
			      cudaMemcpyDeviceToHost));
		printf("# sgemm sample %.6g\n", v);
	}

	// 3. small GEMMs, launch bound
	{
		const int m = 64, iters = 20000;
		std::vector<double> t;
		for (int r = 0; r < 5; r++) {
			double t0 = now_s();
			for (int i = 0; i < iters; i++)
				CB(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, m,
					       m, &one, a, m, b, m, &zero, c,
					       m));
			CK(cudaDeviceSynchronize());
			t.push_back((now_s() - t0) / iters * 1e6);
		}
		metric("sgemm_small_us", median(t), "us");
	}

	// 4. runtime launches
	{
		const int iters = 100000;
		std::vector<double> t;
		empty_kernel<<<1, 1>>>();
		CK(cudaDeviceSynchronize());
		for (int r = 0; r < 5; r++) {
			double t0 = now_s();
			for (int i = 0; i < iters; i++)
				empty_kernel<<<1, 1>>>();
			CK(cudaDeviceSynchronize());
			t.push_back((now_s() - t0) / iters * 1e6);
		}
		CK(cudaGetLastError());
		metric("rt_launch_us", median(t), "us");
	}
	CB(cublasDestroy(h));
	CK(cudaFree(a));
	CK(cudaFree(b));
	CK(cudaFree(c));
	return 0;
}

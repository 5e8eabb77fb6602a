/* SPDX-License-Identifier: MIT */
/*
 * The GPU granule digest (worker/digest.cu, docs/digest.md) on the real
 * driver, natively: is it right, and how fast is it.
 *
 *	digest_gpu
 *
 * Checks (one "PASS name (detail)" or "FAIL name (detail)" line each):
 *  - the kernel, loaded from the fatbin the worker embeds
 *    (cv_digest_fatbin), against the test vectors of
 *    tests/digest_vectors.h;
 *  - against cv_digest_many (core/digest.c) on 256 MiB of random data in
 *    granules of 4, 12 and 64 KiB, 2 and 16 MiB, one block per granule
 *    and with fewer blocks than granules (the grid stride), and from an
 *    address that is 8-byte but not 256-byte aligned;
 *  - the cuda backend's digest op (worker/backend_cuda.c, opened on the
 *    driver this program runs on) on the same data: from a second thread
 *    while this one keeps the GPU busy with copies on a stream of its
 *    own, on a caller's stream, and its refusals; then on the largest
 *    buffer of the timings in 4 KiB granules (several launches) against
 *    the kernel launched directly.
 * Timings ("metric NAME VALUE UNIT", GB/s = 1e9 bytes/s, the best of 5
 * runs after one warm-up, CUDA events): a cuMemcpyDtoD of half the
 * largest buffer (bytes copied; read + write traffic is twice that), then
 * digests of 1, 4 and 16 GiB (as many as fit) in 64 KiB and 2 MiB
 * granules, each also as a percentage of the copy's read + write
 * traffic, and the backend op's 4 KiB-granule digest (wall time,
 * digests copied to pageable host memory included).
 *
 * Exits 0 with "SKIP: no GPU" when the driver has none (or is the
 * toolkit's stub), 1 when a check failed or the driver failed, else 0.
 */
#include <cuda.h>
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/digest.h"
#include "../core/log.h"
#include "../core/util.h"
#include "../tests/digest_vectors.h"
#include "../worker/backend.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define DL CV_DIGEST_LEN
#define CHECK_LEN (256 * MiB)
#define REPS 5

static CUfunction kfn;
static int nfail;

static void die(const char *what, CUresult r)
{
	const char *s = "?";

	cuGetErrorName(r, &s);
	printf("FAIL driver (%s: %s)\n", what, s);
	exit(1);
}

#define CK(call)                                                        \
	do {                                                            \
		CUresult r_ = (call);                                   \
		if (r_ != CUDA_SUCCESS)                                 \
			die(#call, r_);                                 \
	} while (0)

static CV_PRINTF(2, 3) void result(bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("%s ", ok ? "PASS" : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	nfail += !ok;
}

static void metric(const char *name, double v, const char *unit)
{
	printf("metric %s %.1f %s\n", name, v, unit);
	fflush(stdout);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);

	if (!p) {
		printf("FAIL malloc (%zu bytes)\n", n);
		exit(1);
	}
	return p;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- the kernel, launched directly ----------------------------------- */

/* Digests n granules at base into the device buffer out, on st; grid 0:
 * one block per granule. */
static void launch(CUdeviceptr base, uint64_t granule, uint64_t n,
		   uint64_t seed, CUdeviceptr out, unsigned int grid,
		   CUstream st)
{
	void *p[] = { &base, &granule, &n, &seed, &out };

	CK(cuLaunchKernel(kfn, grid ? grid : (unsigned int)n, 1, 1,
			  CV_DIGEST_LANES, 1, 1, 0, st, p, NULL));
}

/* The digests of [d, d + len) into the host buffer out. */
static void gpu_digest(CUdeviceptr d, uint64_t len, uint64_t granule,
		       uint64_t seed, unsigned int grid, uint8_t *out)
{
	uint64_t n = len / granule;
	CUdeviceptr o;

	CK(cuMemAlloc(&o, n * DL));
	CK(cuMemsetD8(o, 0xee, n * DL));
	launch(d, granule, n, seed, o, grid, NULL);
	CK(cuMemcpyDtoH(out, o, n * DL));
	CK(cuMemFree(o));
}

static void check_vectors(CUdeviceptr d)
{
	uint8_t *h = xmalloc(CV_TV_MAX_LEN), got[DL];
	size_t i, bad = 0;

	for (i = 0; i < CV_ARRAY_SIZE(cv_tvs); i++) {
		const struct cv_tv *v = &cv_tvs[i];

		cv_tv_fill(h, v->len, v->data_seed);
		CK(cuMemcpyHtoD(d, h, v->len));
		gpu_digest(d, v->len, v->len, v->seed, 0, got);
		if (memcmp(got, v->digest, DL)) {
			printf("# vector %zu (%llu bytes) differs\n", i,
			       (unsigned long long)v->len);
			bad++;
		}
	}
	result(!bad, "gpu:vectors (%zu test vectors, %zu differ)",
	       CV_ARRAY_SIZE(cv_tvs), bad);
	free(h);
}

/* The GPU's digests of [d + off, + len) against cv_digest_many of the
 * same bytes at h + off. */
static void check_one(CUdeviceptr d, const uint8_t *h, uint64_t off,
		      uint64_t len, uint64_t granule, unsigned int grid)
{
	uint64_t n = len / granule, i, bad = 0;
	uint8_t *g = xmalloc(n * DL), *c = xmalloc(n * DL);

	gpu_digest(d + off, len, granule, 0x600d5eed, grid, g);
	cv_digest_many(h + off, len, (uint32_t)granule, 0x600d5eed, c);
	for (i = 0; i < n; i++)
		bad += memcmp(g + i * DL, c + i * DL, DL) != 0;
	result(!bad, "gpu:random (%llu MiB at +%llu, granule %llu KiB, "
	       "%llu digests, %s: %llu differ from the C)",
	       (unsigned long long)(len / MiB), (unsigned long long)off,
	       (unsigned long long)(granule / KiB), (unsigned long long)n,
	       grid ? "grid stride" : "a block each",
	       (unsigned long long)bad);
	free(g);
	free(c);
}

static void check_random(CUdeviceptr d, const uint8_t *h)
{
	static const uint64_t granules[] = { 4 * KiB, 12 * KiB, 64 * KiB,
					     2 * MiB, 16 * MiB };
	uint64_t len;
	size_t i;

	for (i = 0; i < CV_ARRAY_SIZE(granules); i++) {
		len = CHECK_LEN / granules[i] * granules[i];
		check_one(d, h, 0, len, granules[i], 0);
		check_one(d, h, 0, len, granules[i], 97);
	}
	check_one(d, h, 8, CHECK_LEN / 2, 64 * KiB, 0);
}

/* ---- the cuda backend's op ------------------------------------------- */

struct op_call {
	struct cv_backend *be;
	CUdeviceptr dev;
	uint64_t len, granule;
	uint8_t *out;
	cv_bobj st;
	int r;
	int done;
};

static void *op_thread(void *arg)
{
	struct op_call *c = arg;

	c->r = cv_backend_cuda.digest(c->be, c->dev, c->len,
				      (uint32_t)c->granule, 0x0b5e55ed, c->out,
				      c->st, 0);
	__atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Opens the cuda backend on the driver this program uses. */
static struct cv_backend *open_backend(void)
{
	struct cv_backend_cfg cfg = { .gpu = 0 };
	struct cv_backend *be = NULL;
	struct cv_devinfo info;
	Dl_info di;
	int r;

	if (!dladdr((void *)cuInit, &di) || !di.dli_fname ||
	    di.dli_fname[0] != '/') {
		result(false, "backend:open (no absolute path of the driver)");
		return NULL;
	}
	cfg.driver = di.dli_fname;
	r = cv_backend_cuda.open(&cfg, &info, &be);
	result(!r, "backend:open (%s: %d)", di.dli_fname, r);
	return r ? NULL : be;
}

/* ops->digest from another thread while this one copies 64 MiB over
 * and over on a stream of its own. */
static void check_op_busy(struct cv_backend *be, CUdeviceptr d,
			  const uint8_t *h, uint64_t granule)
{
	uint64_t n = CHECK_LEN / granule, rounds = 0;
	uint8_t *g = xmalloc(n * DL), *c = xmalloc(n * DL);
	struct op_call call = { be, d, CHECK_LEN, granule, g, NULL, -1, 0 };
	CUdeviceptr t;
	pthread_t th;
	CUstream ts;

	CK(cuStreamCreate(&ts, CU_STREAM_NON_BLOCKING));
	CK(cuMemAlloc(&t, 128 * MiB));
	if (pthread_create(&th, NULL, op_thread, &call)) {
		result(false, "backend:busy (pthread_create)");
		goto out;
	}
	while (!__atomic_load_n(&call.done, __ATOMIC_ACQUIRE)) {
		CK(cuMemcpyDtoDAsync(t + 64 * MiB, t, 64 * MiB, ts));
		CK(cuStreamSynchronize(ts));
		rounds++;
	}
	pthread_join(th, NULL);
	cv_digest_many(h, CHECK_LEN, (uint32_t)granule, 0x0b5e55ed, c);
	result(!call.r && !memcmp(g, c, n * DL),
	       "backend:busy (256 MiB in %llu KiB granules from a second "
	       "thread, %llu copies meanwhile: result %d, %s)",
	       (unsigned long long)(granule / KiB),
	       (unsigned long long)rounds, call.r,
	       memcmp(g, c, n * DL) ? "differs from the C" : "as the C");
out:
	CK(cuMemFree(t));
	CK(cuStreamDestroy(ts));
	free(g);
	free(c);
}

/* ops->digest on a caller's stream, and its refusals. */
static void check_op_stream(struct cv_backend *be, CUdeviceptr d,
			    const uint8_t *h)
{
	uint64_t n = CHECK_LEN / (2 * MiB);
	uint8_t *g = xmalloc(n * DL), *c = xmalloc(n * DL), o[DL];
	struct op_call call = { be, d, CHECK_LEN, 2 * MiB, g, NULL, -1, 0 };
	const struct cv_backend_ops *ops = &cv_backend_cuda;
	CUstream st;
	int bad;

	CK(cuStreamCreate(&st, CU_STREAM_NON_BLOCKING));
	call.st = st;
	op_thread(&call);
	cv_digest_many(h, CHECK_LEN, 2 * MiB, 0x0b5e55ed, c);
	result(!call.r && !memcmp(g, c, n * DL),
	       "backend:stream (2 MiB granules on the caller's stream: "
	       "result %d)", call.r);
	bad = (ops->digest(be, d + 4, 4096, 4096, 1, o, NULL, 0) !=
	       CUDA_ERROR_INVALID_VALUE) +
	      (ops->digest(be, d, 4096, 2048, 1, o, NULL, 0) !=
	       CUDA_ERROR_INVALID_VALUE) +
	      (ops->digest(be, d, 12288, 8192, 1, o, NULL, 0) !=
	       CUDA_ERROR_INVALID_VALUE) +
	      (ops->digest(be, d, 0, 4096, 1, o, NULL, 0) != 0);
	result(!bad, "backend:refusals (bad address, granule, length: "
	       "CUDA_ERROR_INVALID_VALUE; 0 bytes: 0)");
	CK(cuStreamDestroy(st));
	free(g);
	free(c);
}

/* ---- timings --------------------------------------------------------- */

/* Best of REPS of `what` (0: the digest, 1: the copy), in ms. */
static double best_ms(int what, CUdeviceptr d, uint64_t len,
		      uint64_t granule, CUdeviceptr o, CUstream st)
{
	double best = INFINITY;
	CUevent e0, e1;
	float ms;
	int r;

	CK(cuEventCreate(&e0, 0));
	CK(cuEventCreate(&e1, 0));
	for (r = -1; r < REPS; r++) {
		CK(cuEventRecord(e0, st));
		if (what)
			CK(cuMemcpyDtoDAsync(d + len, d, len, st));
		else
			launch(d, granule, len / granule, 7, o, 0, st);
		CK(cuEventRecord(e1, st));
		CK(cuEventSynchronize(e1));
		CK(cuEventElapsedTime(&ms, e0, e1));
		if (r >= 0)
			best = fmin(best, ms);
	}
	CK(cuEventDestroy(e0));
	CK(cuEventDestroy(e1));
	return best;
}

/* The largest of 16, 4, 1 GiB that cuMemAlloc gives (0: none). */
static uint64_t alloc_big(CUdeviceptr *d)
{
	uint64_t size;

	for (size = 16 * GiB; size >= GiB; size /= 4) {
		if (!cuMemAlloc(d, size))
			return size;
	}
	return 0;
}

static void time_digests(CUdeviceptr big, uint64_t max, CUstream st)
{
	static const uint64_t granules[] = { 64 * KiB, 2 * MiB };
	double copy_gbs, gbs;
	uint64_t size;
	CUdeviceptr o;
	char name[64];
	size_t i;

	CK(cuMemAlloc(&o, max / (4 * KiB) * DL));
	copy_gbs = (max / 2) / best_ms(1, big, max / 2, 0, 0, st) / 1e6;
	metric("dtod_copy_gbs", copy_gbs, "GB/s");
	printf("# cuMemcpyDtoD of %llu GiB: %.1f GB/s copied, %.1f GB/s "
	       "read + write\n", (unsigned long long)(max / 2 / GiB),
	       copy_gbs, 2 * copy_gbs);
	for (size = GiB; size <= 16 * GiB; size *= 4) {
		if (size > max) {
			printf("# SKIP digest of %llu GiB (no room)\n",
			       (unsigned long long)(size / GiB));
			continue;
		}
		for (i = 0; i < CV_ARRAY_SIZE(granules); i++) {
			gbs = size / best_ms(0, big, size, granules[i], o,
					     st) / 1e6;
			snprintf(name, sizeof(name), "digest_%llug_%llu%s_gbs",
				 (unsigned long long)(size / GiB),
				 (unsigned long long)(granules[i] >= MiB ?
					granules[i] / MiB : granules[i] / KiB),
				 granules[i] >= MiB ? "m" : "k");
			metric(name, gbs, "GB/s");
			printf("# %s: %.0f%% of the copy's read + write\n",
			       name, 100 * gbs / (2 * copy_gbs));
		}
	}
	CK(cuMemFree(o));
}

/* The op on [big, big + max) in 4 KiB granules (several launches) against
 * the kernel launched directly; its wall time. */
static void check_op_big(struct cv_backend *be, CUdeviceptr big,
			 uint64_t max)
{
	uint64_t n = max / (4 * KiB);
	uint8_t *g = xmalloc(n * DL), *k = xmalloc(n * DL);
	double t0, t1;
	int r;

	gpu_digest(big, max, 4 * KiB, 0x0b5e55ed, 0, k);
	t0 = now_s();
	r = cv_backend_cuda.digest(be, big, max, 4 * KiB, 0x0b5e55ed, g,
				   NULL, 0);
	t1 = now_s();
	result(!r && !memcmp(g, k, n * DL), "backend:big (%llu GiB in 4 KiB "
	       "granules, %llu digests: result %d, %s the direct launch)",
	       (unsigned long long)(max / GiB), (unsigned long long)n, r,
	       memcmp(g, k, n * DL) ? "differs from" : "as");
	metric("backend_digest_4k_gbs", max / (t1 - t0) / 1e9, "GB/s");
	/* gentle: one block per multiprocessor, the same digests */
	memset(g, 0, n * DL);
	t0 = now_s();
	r = cv_backend_cuda.digest(be, big, max, 4 * KiB, 0x0b5e55ed, g,
				   NULL, CV_DIGEST_GENTLE);
	t1 = now_s();
	result(!r && !memcmp(g, k, n * DL), "backend:big gentle (result %d, "
	       "%s the direct launch)", r,
	       memcmp(g, k, n * DL) ? "differs from" : "as");
	metric("backend_digest_4k_gentle_gbs", max / (t1 - t0) / 1e9, "GB/s");
	free(g);
	free(k);
}

/* ---- main ------------------------------------------------------------ */

/* cuInit and the primary context of GPU 0; false when there is no GPU. */
static bool start(void)
{
	CUresult r = cuInit(0);
	CUcontext ctx;
	CUdevice dev;
	char name[128];
	int n = 0;

	if (r == CUDA_ERROR_NO_DEVICE || r == CUDA_ERROR_STUB_LIBRARY)
		return false;
	CK(r);
	CK(cuDeviceGetCount(&n));
	if (!n)
		return false;
	CK(cuDeviceGet(&dev, 0));
	CK(cuDeviceGetName(name, sizeof(name), dev));
	CK(cuDevicePrimaryCtxRetain(&ctx, dev));
	CK(cuCtxSetCurrent(ctx));
	printf("# GPU 0: %s\n", name);
	return true;
}

int main(void)
{
	struct cv_backend *be;
	CUdeviceptr d, big;
	uint64_t max;
	CUmodule mod;
	CUstream st;
	uint8_t *h;

	cv_log_init("digest_gpu", CV_LOG_WARN, NULL);
	if (!start()) {
		printf("SKIP: no GPU\n");
		return 0;
	}
	if (!&cv_digest_fatbin_len || !cv_digest_fatbin_len) {
		printf("FAIL kernel (built without nvcc: no kernel image)\n");
		return 1;
	}
	CK(cuModuleLoadData(&mod, cv_digest_fatbin));
	CK(cuModuleGetFunction(&kfn, mod, CV_DIGEST_KERNEL));
	h = xmalloc(CHECK_LEN);
	cv_tv_fill(h, CHECK_LEN, 0x256);
	CK(cuMemAlloc(&d, CHECK_LEN));
	check_vectors(d);
	CK(cuMemcpyHtoD(d, h, CHECK_LEN));
	check_random(d, h);
	be = open_backend();
	if (be) {
		check_op_busy(be, d, h, 64 * KiB);
		check_op_busy(be, d, h, 4 * KiB);
		check_op_stream(be, d, h);
	}
	CK(cuMemFree(d));
	free(h);

	max = alloc_big(&big);
	if (!max) {
		result(false, "timings (no room for 1 GiB)");
	} else {
		CK(cuMemsetD32(big, 0x5a5a5a5a, max / 4));
		CK(cuStreamCreate(&st, CU_STREAM_NON_BLOCKING));
		time_digests(big, max, st);
		if (be)
			check_op_big(be, big, max);
		CK(cuStreamDestroy(st));
		CK(cuMemFree(big));
	}
	if (be)
		cv_backend_cuda.close(be);
	printf("%s: %d check%s failed\n", nfail ? "FAIL" : "PASS", nfail,
	       nfail == 1 ? "" : "s");
	return nfail ? 1 : 0;
}

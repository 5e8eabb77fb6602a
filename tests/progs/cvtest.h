/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the driver-API test programs (tests/progs/cu_*.c) and
 * the benchmark. Header-only: each program is one .c file.
 *
 * Output is TAP-like, one line per check:
 *	ok 3 - cuMemAlloc of 2097153 bytes
 *	not ok 4 - copy back matches
 *	#   first mismatch at byte 17: got 0x12, want 0x34
 * Check descriptions never contain measured values (sizes asked for are
 * fine, addresses and timings are not): tests/gpu-suite.sh compares the
 * check lines of a native run with those of a run under cuvisor. Values go
 * on "#" lines. A program exits 0 only if every check passed, 1 otherwise
 * (also when it bails out early).
 */
#ifndef CV_CVTEST_H
#define CV_CVTEST_H

#include <cuda.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../core/proto.h"
#include "../kernels/kernels.h"

#define CVT_UNUSED __attribute__((unused))
#define CVT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define CVT_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define CVT_MiB (1ull << 20)

static pthread_mutex_t cvt_lock CVT_UNUSED = PTHREAD_MUTEX_INITIALIZER;
static int cvt_npass CVT_UNUSED, cvt_nfail CVT_UNUSED, cvt_nskip CVT_UNUSED;

/*
 * cuGetErrorName for the messages. A program that loads the driver with
 * dlopen (cu_dlopen.c) defines CVT_DLOPEN before including this header,
 * links no libcuda and sets this pointer once it has resolved the name.
 */
#ifdef CVT_DLOPEN
static CUresult (*cvt_get_error_name)(CUresult, const char **);
#else
static CUresult (*cvt_get_error_name)(CUresult, const char **) CVT_UNUSED =
	cuGetErrorName;
#endif

static inline const char *cvt_errname(CUresult r)
{
	const char *s = NULL;

	if (!cvt_get_error_name || cvt_get_error_name(r, &s) != CUDA_SUCCESS ||
	    !s)
		return "unknown error";
	return s;
}

static inline void cvt_vline(const char *prefix, const char *fmt, va_list ap)
{
	fputs(prefix, stdout);
	vfprintf(stdout, fmt, ap);
	fputc('\n', stdout);
}

/* Prints "# ..." (information, ignored when outputs are compared). */
CVT_PRINTF(1, 2) static inline void cvt_note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pthread_mutex_lock(&cvt_lock);
	cvt_vline("#   ", fmt, ap);
	fflush(stdout);
	pthread_mutex_unlock(&cvt_lock);
	va_end(ap);
}

static inline bool cvt_vcheck(bool ok, const char *fmt, va_list ap)
{
	char prefix[32];

	pthread_mutex_lock(&cvt_lock);
	if (ok)
		cvt_npass++;
	else
		cvt_nfail++;
	snprintf(prefix, sizeof(prefix), "%s %d - ", ok ? "ok" : "not ok",
		 cvt_npass + cvt_nfail + cvt_nskip);
	cvt_vline(prefix, fmt, ap);
	fflush(stdout);
	pthread_mutex_unlock(&cvt_lock);
	return ok;
}

/* One check: prints ok/not ok with the description; returns ok. */
CVT_PRINTF(2, 3) static inline bool cvt_check(bool ok, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ok = cvt_vcheck(ok, fmt, ap);
	va_end(ap);
	return ok;
}

/* Checks that a driver call returned `want`; on mismatch notes both. */
CVT_PRINTF(3, 4) static inline bool cvt_cu(CUresult got, CUresult want,
					   const char *fmt, ...)
{
	va_list ap;
	bool ok = got == want;

	va_start(ap, fmt);
	ok = cvt_vcheck(ok, fmt, ap);
	va_end(ap);
	if (!ok)
		cvt_note("got %s (%d), want %s (%d)", cvt_errname(got),
			 (int)got, cvt_errname(want), (int)want);
	return ok;
}

/* Shorthand: the call must succeed. */
#define CVT_CU(call, ...) cvt_cu((call), CUDA_SUCCESS, __VA_ARGS__)

/* A check that cannot be made here; counts as neither pass nor fail. */
CVT_PRINTF(2, 3) static inline void cvt_skip(const char *why,
					     const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pthread_mutex_lock(&cvt_lock);
	cvt_nskip++;
	printf("ok %d - ", cvt_npass + cvt_nfail + cvt_nskip);
	vfprintf(stdout, fmt, ap);
	printf(" # SKIP %s\n", why);
	fflush(stdout);
	pthread_mutex_unlock(&cvt_lock);
	va_end(ap);
}

/* Gives up: a step everything else depends on failed. Exits 1. */
CVT_PRINTF(1, 2) __attribute__((noreturn)) static inline void
cvt_bail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pthread_mutex_lock(&cvt_lock);
	cvt_vline("Bail out! ", fmt, ap);
	printf("# %d passed, %d failed, %d skipped\n", cvt_npass, cvt_nfail,
	       cvt_nskip);
	fflush(stdout);
	va_end(ap);
	_exit(1);
}

/* Prints the summary; the program's exit status. */
static inline int cvt_done(void)
{
	pthread_mutex_lock(&cvt_lock);
	printf("# %d passed, %d failed, %d skipped\n", cvt_npass, cvt_nfail,
	       cvt_nskip);
	fflush(stdout);
	pthread_mutex_unlock(&cvt_lock);
	return cvt_nfail == 0 && cvt_npass > 0 ? 0 : 1;
}

static inline uint64_t cvt_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t cvt_rand(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* Fills n bytes with a pattern that depends on seed and position. */
static inline void cvt_fill_bytes(void *p, size_t n, uint64_t seed)
{
	uint8_t *b = p;
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1, v = 0;

	for (size_t i = 0; i < n; i++) {
		if (!(i & 7))
			v = cvt_rand(&s);
		b[i] = (uint8_t)(v >> ((i & 7) * 8));
	}
}

/* Index of the first differing byte, or -1 when equal. */
static inline long long cvt_cmp(const void *got, const void *want, size_t n)
{
	const uint8_t *g = got, *w = want;

	if (!memcmp(g, w, n))
		return -1;
	for (size_t i = 0; i < n; i++)
		if (g[i] != w[i])
			return (long long)i;
	return -1;
}

/* Checks n bytes against want; notes the first mismatch. */
CVT_PRINTF(4, 5) static inline bool cvt_check_mem(const void *got,
						  const void *want, size_t n,
						  const char *fmt, ...)
{
	long long at = cvt_cmp(got, want, n);
	va_list ap;
	bool ok;

	va_start(ap, fmt);
	ok = cvt_vcheck(at < 0, fmt, ap);
	va_end(ap);
	if (!ok)
		cvt_note("first mismatch at byte %lld of %zu: got 0x%02x, "
			 "want 0x%02x", at, n, ((const uint8_t *)got)[at],
			 ((const uint8_t *)want)[at]);
	return ok;
}

/* Index of the first word of p[0..n) that is not cvk_pattern(seed, i). */
static inline long long cvt_find_pattern_err(const uint32_t *p, uint64_t n,
					     uint32_t seed)
{
	for (uint64_t i = 0; i < n; i++)
		if (p[i] != cvk_pattern(seed, i))
			return (long long)i;
	return -1;
}

CVT_PRINTF(4, 5) static inline bool cvt_check_pattern(const uint32_t *p,
						      uint64_t n,
						      uint32_t seed,
						      const char *fmt, ...)
{
	long long at = cvt_find_pattern_err(p, n, seed);
	va_list ap;
	bool ok;

	va_start(ap, fmt);
	ok = cvt_vcheck(at < 0, fmt, ap);
	va_end(ap);
	if (!ok)
		cvt_note("word %lld of %" PRIu64 ": got 0x%08x, want 0x%08x",
			 at, n, p[at], cvk_pattern(seed, (uint64_t)at));
	return ok;
}

/*
 * The module to load: argv[idx] when given, else kernels.fatbin next to
 * the executable, else ../tests/kernels.fatbin (for build/bench/).
 */
static inline void cvt_module_path(int argc, char **argv, int idx, char *buf,
				   size_t size)
{
	char exe[PATH_MAX], *slash;
	ssize_t n;

	if (idx < argc && argv[idx][0]) {
		snprintf(buf, size, "%s", argv[idx]);
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0) {
		snprintf(buf, size, "kernels.fatbin");
		return;
	}
	exe[n] = 0;
	slash = strrchr(exe, '/');
	if (slash)
		*slash = 0;
	if (snprintf(buf, size, "%s/kernels.fatbin", exe) >= (int)size ||
	    access(buf, R_OK))
		if (snprintf(buf, size, "%s/../tests/kernels.fatbin", exe) >=
		    (int)size)
			snprintf(buf, size, "kernels.fatbin");
}

/* path with its extension replaced by ext ("cubin", "ptx"). */
static inline void cvt_sibling(const char *path, const char *ext, char *buf,
			       size_t size)
{
	const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
	int stem = (int)strlen(path);

	if (dot && (!slash || dot > slash))
		stem = (int)(dot - path);
	snprintf(buf, size, "%.*s.%s", stem, path, ext);
}

/* Reads a whole file, NUL-terminated (for PTX); NULL on error. */
static inline void *cvt_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET))
		goto out;
	buf = malloc((size_t)n + 1);
	if (!buf)
		goto out;
	if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
		goto out;
	}
	buf[n] = 0;
	if (len)
		*len = (size_t)n;
out:
	fclose(f);
	return buf;
}

/*
 * The cuvisor region header when this process runs under cuvisor and the
 * region sits at CV_REGION_ADDR (found in /proc/self/maps, so nothing is
 * touched that is not mapped); NULL otherwise (native, or relocated).
 */
static inline const struct cv_region_hdr *cvt_region(void)
{
	const struct cv_region_hdr *h = NULL;
	unsigned long long lo, hi;
	char line[512];
	FILE *f = fopen("/proc/self/maps", "r");

	if (!f)
		return NULL;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx-%llx", &lo, &hi) != 2)
			continue;
		if (lo <= CV_REGION_ADDR && CV_REGION_ADDR < hi &&
		    hi - CV_REGION_ADDR >= CV_PAGE && strchr(line, 'r')) {
			h = (const struct cv_region_hdr *)(uintptr_t)CV_REGION_ADDR;
			break;
		}
	}
	fclose(f);
	if (h && h->magic != CV_PROTO_MAGIC)
		h = NULL;
	return h;
}

/*
 * True on the host backend, where a launch has completed by the time the
 * next command is looked at and kernels run inside the worker process: a
 * few checks that need truly asynchronous execution or a real MMU are
 * skipped there. Decided by the region header when visible, else by
 * CUVISOR_HOST_KERNELS being set.
 */
static inline bool cvt_host_backend(void)
{
	const struct cv_region_hdr *h = cvt_region();
	const char *e;

	if (h)
		return h->dev.backend == CV_BACKEND_HOST;
	e = getenv("CUVISOR_HOST_KERNELS");
	return e && *e;
}

/* cuInit, device 0, its primary context made current; bails on failure. */
static inline void cvt_setup(CUdevice *dev, CUcontext *ctx)
{
	CUresult r;

	if ((r = cuInit(0)) != CUDA_SUCCESS)
		cvt_bail("cuInit failed: %s (%d)", cvt_errname(r), (int)r);
	if ((r = cuDeviceGet(dev, 0)) != CUDA_SUCCESS)
		cvt_bail("cuDeviceGet(0) failed: %s", cvt_errname(r));
	if ((r = cuDevicePrimaryCtxRetain(ctx, *dev)) != CUDA_SUCCESS)
		cvt_bail("cuDevicePrimaryCtxRetain failed: %s", cvt_errname(r));
	if ((r = cuCtxSetCurrent(*ctx)) != CUDA_SUCCESS)
		cvt_bail("cuCtxSetCurrent failed: %s", cvt_errname(r));
}

static inline CUmodule cvt_load(const char *path)
{
	CUmodule m;
	CUresult r = cuModuleLoad(&m, path);

	if (r != CUDA_SUCCESS)
		cvt_bail("cuModuleLoad(%s) failed: %s (%d)", path,
			 cvt_errname(r), (int)r);
	return m;
}

static inline CUfunction cvt_func(CUmodule m, const char *name)
{
	CUfunction f;
	CUresult r = cuModuleGetFunction(&f, m, name);

	if (r != CUDA_SUCCESS)
		cvt_bail("cuModuleGetFunction(%s) failed: %s", name,
			 cvt_errname(r));
	return f;
}

/* A 1D launch of grid x block threads. */
static inline CUresult cvt_launch(CUfunction f, unsigned grid, unsigned block,
				  CUstream s, void **params)
{
	return cuLaunchKernel(f, grid, 1, 1, block, 1, 1, 0, s, params, NULL);
}

/* fill_pattern(p, seed, n) on stream s. */
static inline CUresult cvt_fill(CUfunction fill, CUdeviceptr p, uint32_t seed,
				uint64_t n, CUstream s)
{
	void *args[] = { &p, &seed, &n };

	return cvt_launch(fill, 64, 256, s, args);
}

/*
 * An error that CUDA may report either at the call or at the next
 * synchronising call (cuvisor defers errors of asynchronous calls): the
 * check passes when the call or the cuCtxSynchronize after it failed.
 * Notes both results.
 */
CVT_PRINTF(2, 3) static inline bool cvt_error_now_or_at_sync(CUresult now,
							     const char *fmt,
							     ...)
{
	CUresult sync = cuCtxSynchronize();
	va_list ap;
	bool ok = now != CUDA_SUCCESS || sync != CUDA_SUCCESS;

	va_start(ap, fmt);
	ok = cvt_vcheck(ok, fmt, ap);
	va_end(ap);
	cvt_note("call: %s (%d), next sync: %s (%d)", cvt_errname(now),
		 (int)now, cvt_errname(sync), (int)sync);
	return ok;
}

#endif

/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the CUDA runtime test programs (tests/rt/ *.cu files). These
 * programs are written as their users write them: the runtime API, <<<>>>
 * launches, the CUDA libraries; they never include cuda.h nor call the
 * driver. Header-only.
 *
 * Output is TAP-like, one line per check, as in tests/progs/cvtest.h:
 *	ok 3 - cudaMalloc of 1048576 bytes
 *	not ok 4 - copy back matches
 *	#   got cudaErrorInvalidValue (1), want cudaSuccess (0)
 *	ok 5 - vector add kernel # SKIP host backend runs no GPU code
 *	# digest sgemm 0x0123456789abcdef
 *	# 4 passed, 1 failed, 1 skipped
 * Check descriptions never contain measured values (sizes asked for are
 * fine; addresses, timings and results are not): tests/gpu-suite.sh
 * compares the check lines and the "# digest" lines of a native run with
 * those of a run under cuvisor. Other values go on "#   " lines.
 *
 * Exit status (rt_done): 0 when every check passed, 77 when every check
 * was skipped, 1 otherwise (also after rt_bail).
 *
 * The host backend (device name containing "cuvisor host") runs no GPU
 * code: programs still run their start-up, device queries, allocations,
 * copies, memsets, streams and events there, and report everything that
 * needs device code as skipped (rt_need_gpu).
 */
#ifndef CV_RTCHECK_H
#define CV_RTCHECK_H

#include <cuda_runtime.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RT_UNUSED __attribute__((unused))
#define RT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define RT_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define RT_HOST_WHY "host backend runs no GPU code"

static pthread_mutex_t rt_lock RT_UNUSED = PTHREAD_MUTEX_INITIALIZER;
static int rt_npass RT_UNUSED, rt_nfail RT_UNUSED, rt_nskip RT_UNUSED;
/* Set by rt_start: the device is cuvisor's host backend. */
static bool rt_host RT_UNUSED;

static inline const char *rt_ename(cudaError_t e)
{
	const char *s = cudaGetErrorName(e);

	return s ? s : "(no name)";
}

static inline void rt_vline(const char *prefix, const char *suffix,
			    const char *fmt, va_list ap)
{
	fputs(prefix, stdout);
	vfprintf(stdout, fmt, ap);
	fputs(suffix, stdout);
	fputc('\n', stdout);
}

/* "#   ..." (information, ignored when outputs are compared). */
RT_PRINTF(1, 2) static inline void rt_note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pthread_mutex_lock(&rt_lock);
	rt_vline("#   ", "", fmt, ap);
	fflush(stdout);
	pthread_mutex_unlock(&rt_lock);
	va_end(ap);
}

static inline bool rt_vcheck(bool ok, const char *fmt, va_list ap)
{
	char prefix[32];

	pthread_mutex_lock(&rt_lock);
	if (ok)
		rt_npass++;
	else
		rt_nfail++;
	snprintf(prefix, sizeof(prefix), "%s %d - ", ok ? "ok" : "not ok",
		 rt_npass + rt_nfail + rt_nskip);
	rt_vline(prefix, "", fmt, ap);
	fflush(stdout);
	pthread_mutex_unlock(&rt_lock);
	return ok;
}

/* One check: prints ok/not ok with the description; returns ok. */
RT_PRINTF(2, 3) static inline bool rt_check(bool ok, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ok = rt_vcheck(ok, fmt, ap);
	va_end(ap);
	return ok;
}

/* Checks that a runtime call returned `want`; on mismatch notes both. */
RT_PRINTF(3, 4) static inline bool rt_cuda_want(cudaError_t got,
						cudaError_t want,
						const char *fmt, ...)
{
	va_list ap;
	bool ok = got == want;

	va_start(ap, fmt);
	ok = rt_vcheck(ok, fmt, ap);
	va_end(ap);
	if (!ok)
		rt_note("got %s (%d), want %s (%d)", rt_ename(got), (int)got,
			rt_ename(want), (int)want);
	return ok;
}

/* Shorthand: the runtime call must succeed. */
#define RT_CUDA(call, ...) rt_cuda_want((call), cudaSuccess, __VA_ARGS__)

/*
 * Checks that a call failed (any error but cudaSuccess); notes which one.
 * For errors whose exact code differs between driver versions.
 */
RT_PRINTF(2, 3) static inline bool rt_cuda_fails(cudaError_t got,
						 const char *fmt, ...)
{
	va_list ap;
	bool ok = got != cudaSuccess;

	va_start(ap, fmt);
	ok = rt_vcheck(ok, fmt, ap);
	va_end(ap);
	rt_note("got %s (%d)", rt_ename(got), (int)got);
	return ok;
}

/* A check that cannot be made here; counts as neither pass nor fail. */
RT_PRINTF(2, 3) static inline void rt_skip(const char *why, const char *fmt,
					   ...)
{
	char prefix[32];
	char suffix[256];
	va_list ap;

	va_start(ap, fmt);
	pthread_mutex_lock(&rt_lock);
	rt_nskip++;
	snprintf(prefix, sizeof(prefix), "ok %d - ",
		 rt_npass + rt_nfail + rt_nskip);
	snprintf(suffix, sizeof(suffix), " # SKIP %s", why);
	rt_vline(prefix, suffix, fmt, ap);
	fflush(stdout);
	pthread_mutex_unlock(&rt_lock);
	va_end(ap);
}

/*
 * True when the device can run GPU code. On the host backend it reports
 * the part named by fmt as skipped and returns false.
 */
RT_PRINTF(1, 2) static inline bool rt_need_gpu(const char *fmt, ...)
{
	char what[256];
	va_list ap;

	if (!rt_host)
		return true;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	rt_skip(RT_HOST_WHY, "%s", what);
	return false;
}

/*
 * "# digest NAME 0x..." : a value that must be the same natively and under
 * cuvisor (compared by tests/gpu-suite.sh), e.g. a hash of results.
 */
static inline void rt_digest(const char *name, uint64_t v)
{
	pthread_mutex_lock(&rt_lock);
	printf("# digest %s 0x%016llx\n", name, (unsigned long long)v);
	fflush(stdout);
	pthread_mutex_unlock(&rt_lock);
}

/* FNV-1a over n bytes, continuing from h (start with RT_FNV_INIT). */
#define RT_FNV_INIT 0xcbf29ce484222325ull
static inline uint64_t rt_fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = (const uint8_t *)p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/* Hash of values rounded to 1/scale (so that -0 and +0 hash alike). */
static inline uint64_t rt_digest_f64(const double *v, size_t n, double scale)
{
	uint64_t h = RT_FNV_INIT;

	for (size_t i = 0; i < n; i++) {
		long long q = llround(v[i] * scale);

		h = rt_fnv(h, &q, sizeof(q));
	}
	return h;
}

static inline uint64_t rt_digest_f32(const float *v, size_t n, double scale)
{
	uint64_t h = RT_FNV_INIT;

	for (size_t i = 0; i < n; i++) {
		long long q = llround((double)v[i] * scale);

		h = rt_fnv(h, &q, sizeof(q));
	}
	return h;
}

/* Gives up: a step everything else depends on failed. Exits 1. */
RT_PRINTF(1, 2) __attribute__((noreturn)) static inline void
rt_bail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pthread_mutex_lock(&rt_lock);
	rt_vline("Bail out! ", "", fmt, ap);
	printf("# %d passed, %d failed, %d skipped\n", rt_npass, rt_nfail,
	       rt_nskip);
	fflush(stdout);
	va_end(ap);
	_exit(1);
}

/* Prints the summary; returns the program's exit status. */
static inline int rt_done(void)
{
	int rc;

	pthread_mutex_lock(&rt_lock);
	printf("# %d passed, %d failed, %d skipped\n", rt_npass, rt_nfail,
	       rt_nskip);
	fflush(stdout);
	if (rt_nfail)
		rc = 1;
	else if (rt_npass)
		rc = 0;
	else
		rc = rt_nskip ? 77 : 1;
	pthread_mutex_unlock(&rt_lock);
	return rc;
}

/* Deterministic pseudo-random numbers (xorshift64). */
static inline uint64_t rt_rand(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/*
 * Start-up of every program: versions, the device count, device 0's
 * properties (rt_host from its name), device 0 made current. Bails when
 * the runtime cannot start, with the runtime's error.
 */
static inline void rt_start(const char *prog, cudaDeviceProp *out)
{
	cudaDeviceProp p;
	cudaError_t e;
	int rv = 0, dv = 0, n = -1;

	/* Line-buffered: the output up to a crash stays in the log. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("# %s (built with CUDA runtime %d)\n", prog, CUDART_VERSION);
	e = cudaRuntimeGetVersion(&rv);
	rt_note("cudaRuntimeGetVersion: %d (%s)", rv, rt_ename(e));
	e = cudaDriverGetVersion(&dv);
	rt_note("cudaDriverGetVersion: %d (%s)", dv, rt_ename(e));
	e = cudaGetDeviceCount(&n);
	if (e != cudaSuccess)
		rt_bail("cudaGetDeviceCount failed: %s (%d): %s", rt_ename(e),
			(int)e, cudaGetErrorString(e));
	rt_check(n >= 1, "cudaGetDeviceCount finds a device");
	if (n < 1)
		rt_bail("no device");
	e = cudaGetDeviceProperties(&p, 0);
	if (e != cudaSuccess)
		rt_bail("cudaGetDeviceProperties(0) failed: %s (%d)",
			rt_ename(e), (int)e);
	rt_host = strstr(p.name, "cuvisor host") != NULL;
	rt_note("device 0: %s, sm_%d%d, %d SMs, %.1f GiB%s", p.name, p.major,
		p.minor, p.multiProcessorCount,
		(double)p.totalGlobalMem / (1 << 30),
		rt_host ? " (cuvisor host backend: GPU code is skipped)" : "");
	e = cudaSetDevice(0);
	if (e != cudaSuccess)
		rt_bail("cudaSetDevice(0) failed: %s (%d)", rt_ename(e), (int)e);
	if (out)
		*out = p;
}

/*
 * On the host backend, after everything else: what a launch of GPU code
 * does there (it should fail with a clear error, not crash or hang).
 * Information only; launch is a callable that launches one kernel.
 */
template <typename F> static inline void rt_host_probe(const char *what, F launch)
{
	cudaError_t e1, e2;

	if (!rt_host)
		return;
	launch();
	e1 = cudaGetLastError();
	e2 = cudaDeviceSynchronize();
	rt_note("host backend: %s: launch %s, sync %s", what, rt_ename(e1),
		rt_ename(e2));
}

#endif

/* SPDX-License-Identifier: MIT */
/*
 * Streams and events: several streams, several host threads each with its
 * own stream, cross-stream ordering with cuStreamWaitEvent, event timing
 * around a spinning kernel, queries that see work in flight and then
 * finished, the legacy default stream's implicit synchronisation, and the
 * CU_STREAM_LEGACY / CU_STREAM_PER_THREAD handles.
 *
 * On the host backend a launch has finished before the next command is
 * looked at, so "still running" cannot be observed there: those checks
 * are skipped (cvt_host_backend()).
 */
#include <math.h>

#include "cvtest.h"

#define SPIN_CYCLES 20000000ull /* ~10 ms on a GPU, 20 ms on the host */
#define N (1u << 20)            /* words per buffer */

static CUcontext ctx;
static CUfunction fill, spin, scale;
static bool host_be;

static void spin_on(CUstream s, uint64_t cycles, CUdeviceptr done)
{
	void *args[] = { &cycles, &done };

	CVT_CU(cuLaunchKernel(spin, 1, 1, 1, 32, 1, 1, 0, s, args, NULL),
	       "launch spin");
}

static void check_multi_stream(void)
{
	enum { NS = 4 };
	CUstream s[NS];
	CUdeviceptr d[NS];
	uint32_t *h[NS];
	unsigned flags;
	int created = 0;

	for (int i = 0; i < NS; i++) {
		d[i] = 0;
		h[i] = NULL;
		created += CVT_CU(cuStreamCreate(&s[i], i % 2 ?
						 CU_STREAM_NON_BLOCKING :
						 CU_STREAM_DEFAULT),
				  "cuStreamCreate %d", i);
		CVT_CU(cuMemAlloc(&d[i], N * 4), "cuMemAlloc for stream %d", i);
		CVT_CU(cuMemAllocHost((void **)&h[i], N * 4), "pinned for %d", i);
	}
	if (created != NS)
		return;
	CVT_CU(cuStreamGetFlags(s[1], &flags), "cuStreamGetFlags");
	cvt_check(flags == CU_STREAM_NON_BLOCKING, "stream flags round trip");
	for (int r = 0; r < 3; r++)
		for (int i = 0; i < NS; i++) {
			CVT_CU(cvt_fill(fill, d[i], (uint32_t)(i * 10 + r), N,
					s[i]), "fill on stream %d", i);
			CVT_CU(cuMemcpyDtoHAsync(h[i], d[i], N * 4, s[i]),
			       "copy back on stream %d", i);
		}
	for (int i = 0; i < NS; i++) {
		CVT_CU(cuStreamSynchronize(s[i]), "sync stream %d", i);
		cvt_check_pattern(h[i], N, (uint32_t)(i * 10 + 2),
				  "stream %d has its last result", i);
		CVT_CU(cuStreamQuery(s[i]), "idle stream %d queries SUCCESS", i);
		CVT_CU(cuStreamDestroy(s[i]), "cuStreamDestroy %d", i);
		cuMemFree(d[i]);
		cuMemFreeHost(h[i]);
	}
}

/* Each host thread: its own stream, 20 rounds of fill + copy + check. */
struct thr {
	int id;
	int bad;
	int fails;
};

static void *thread_main(void *p)
{
	struct thr *t = p;
	CUstream s;
	CUdeviceptr d;
	uint32_t *h;
	uint64_t n = 65536 + 7 * (uint64_t)t->id;

	if (cuCtxSetCurrent(ctx) || cuStreamCreate(&s, CU_STREAM_NON_BLOCKING)) {
		t->fails++;
		return NULL;
	}
	if (cuMemAlloc(&d, n * 4) || cuMemAllocHost((void **)&h, n * 4)) {
		t->fails++;
		return NULL;
	}
	for (int r = 0; r < 20; r++) {
		uint32_t seed = (uint32_t)(t->id * 1000 + r);

		memset(h, 0, n * 4);
		if (cvt_fill(fill, d, seed, n, s) ||
		    cuMemcpyDtoHAsync(h, d, n * 4, s) ||
		    cuStreamSynchronize(s))
			t->fails++;
		else if (cvt_find_pattern_err(h, n, seed) >= 0)
			t->bad++;
	}
	if (cuStreamDestroy(s) || cuMemFree(d) || cuMemFreeHost(h))
		t->fails++;
	return NULL;
}

static void check_threads(void)
{
	enum { NT = 6 };
	pthread_t th[NT];
	struct thr t[NT];
	int bad = 0, fails = 0;

	for (int i = 0; i < NT; i++) {
		t[i] = (struct thr){ i, 0, 0 };
		if (pthread_create(&th[i], NULL, thread_main, &t[i]))
			cvt_bail("pthread_create");
	}
	for (int i = 0; i < NT; i++) {
		pthread_join(th[i], NULL);
		bad += t[i].bad;
		fails += t[i].fails;
	}
	cvt_check(!fails, "6 threads with their own streams: no call failed");
	cvt_check(!bad, "6 threads with their own streams: all results right");
}

/*
 * Stream B waits for an event recorded on A after a slow kernel and a
 * fill; B's copy must see the fill. Without the wait B would overtake.
 */
static void check_wait_event(void)
{
	CUstream a, b;
	CUevent ev;
	CUdeviceptr d;
	uint32_t *h;

	if (cuStreamCreate(&a, CU_STREAM_NON_BLOCKING) ||
	    cuStreamCreate(&b, CU_STREAM_NON_BLOCKING) ||
	    cuEventCreate(&ev, CU_EVENT_DISABLE_TIMING) ||
	    cuMemAlloc(&d, N * 4) || cuMemAllocHost((void **)&h, N * 4))
		cvt_bail("setup for the wait-event check failed");
	CVT_CU(cuMemsetD32(d, 0, N), "clear");
	memset(h, 0, N * 4);
	spin_on(a, 5 * SPIN_CYCLES, 0);
	CVT_CU(cvt_fill(fill, d, 4242, N, a), "fill on A after the spin");
	CVT_CU(cuEventRecord(ev, a), "record event on A");
	CVT_CU(cuStreamWaitEvent(b, ev, 0), "B waits for the event");
	CVT_CU(cuMemcpyDtoHAsync(h, d, N * 4, b), "copy on B");
	CVT_CU(cuStreamSynchronize(b), "sync B only");
	cvt_check_pattern(h, N, 4242, "B's copy saw A's fill (wait event order)");
	CVT_CU(cuEventQuery(ev), "event is complete");
	CVT_CU(cuStreamSynchronize(a), "sync A");
	cuEventDestroy(ev);
	cuStreamDestroy(a);
	cuStreamDestroy(b);
	cuMemFree(d);
	cuMemFreeHost(h);
}

static void check_timing_and_queries(void)
{
	CUstream s;
	CUevent e0, e1, notime, never;
	float ms = -1;
	uint32_t *done;
	CUdeviceptr ddone;
	CUresult q1, q2;

	if (cuStreamCreate(&s, CU_STREAM_NON_BLOCKING) ||
	    cuEventCreate(&e0, CU_EVENT_DEFAULT) ||
	    cuEventCreate(&e1, CU_EVENT_BLOCKING_SYNC) ||
	    cuEventCreate(&notime, CU_EVENT_DISABLE_TIMING) ||
	    cuEventCreate(&never, CU_EVENT_DEFAULT) ||
	    cuMemHostAlloc((void **)&done, 4096, CU_MEMHOSTALLOC_DEVICEMAP) ||
	    cuMemHostGetDevicePointer(&ddone, done, 0))
		cvt_bail("setup for the timing check failed");

	CVT_CU(cuEventQuery(never), "a never-recorded event queries SUCCESS");
	CVT_CU(cuEventRecord(e0, s), "record start");
	spin_on(s, SPIN_CYCLES, 0);
	CVT_CU(cuEventRecord(e1, s), "record end");
	CVT_CU(cuEventSynchronize(e1), "cuEventSynchronize(end)");
	CVT_CU(cuEventElapsedTime(&ms, e0, e1), "cuEventElapsedTime");
	cvt_note("spin of %llu cycles took %.3f ms", SPIN_CYCLES, ms);
	cvt_check(ms > 0, "elapsed time around a spin kernel is > 0");
	cvt_check(ms >= 1.0f && ms < 10000.0f,
		  "elapsed time is in a plausible range");
	CVT_CU(cuEventRecord(notime, s), "record a timing-disabled event");
	CVT_CU(cuEventSynchronize(notime), "sync it");
	cvt_check(cuEventElapsedTime(&ms, e0, notime) != CUDA_SUCCESS,
		  "elapsed time with a timing-disabled event is refused");

	/* Work in flight: queries say NOT_READY until it finishes. */
	*(volatile uint32_t *)done = 0;
	spin_on(s, 20 * SPIN_CYCLES, ddone);
	CVT_CU(cuEventRecord(e1, s), "record after a long spin");
	q1 = cuStreamQuery(s);
	q2 = cuEventQuery(e1);
	if (host_be) {
		cvt_skip("host backend completes work at submission",
			 "stream query of a running kernel is NOT_READY");
		cvt_skip("host backend completes work at submission",
			 "event query of pending work is NOT_READY");
		cvt_skip("host backend completes work at submission",
			 "mapped flag still clear while the kernel runs");
	} else {
		cvt_cu(q1, CUDA_ERROR_NOT_READY,
		       "stream query of a running kernel is NOT_READY");
		cvt_cu(q2, CUDA_ERROR_NOT_READY,
		       "event query of pending work is NOT_READY");
		cvt_check(*(volatile uint32_t *)done == 0,
			  "mapped flag still clear while the kernel runs");
	}
	CVT_CU(cuStreamSynchronize(s), "cuStreamSynchronize");
	CVT_CU(cuStreamQuery(s), "stream query after sync is SUCCESS");
	CVT_CU(cuEventQuery(e1), "event query after sync is SUCCESS");
	cvt_check(*(volatile uint32_t *)done == 1,
		  "the kernel set the mapped flag");

	cuEventDestroy(e0);
	cuEventDestroy(e1);
	cuEventDestroy(notime);
	cuEventDestroy(never);
	cuStreamDestroy(s);
	cuMemFreeHost(done);
}

/*
 * The legacy default stream waits for work on blocking streams: a copy on
 * CU_STREAM_LEGACY after a slow fill on a blocking stream sees the fill.
 */
static void check_legacy(void)
{
	CUstream blocking;
	CUdeviceptr d;
	uint32_t *h;
	float f = 2.0f;
	uint32_t n = N;
	void *sargs[] = { &d, &f, &n };

	if (cuStreamCreate(&blocking, CU_STREAM_DEFAULT) ||
	    cuMemAlloc(&d, N * 4) || cuMemAllocHost((void **)&h, N * 4))
		cvt_bail("setup for the legacy check failed");
	memset(h, 0, N * 4);
	spin_on(blocking, 5 * SPIN_CYCLES, 0);
	CVT_CU(cvt_fill(fill, d, 777, N, blocking), "fill on a blocking stream");
	CVT_CU(cuMemcpyDtoHAsync(h, d, N * 4, CU_STREAM_LEGACY),
	       "copy on CU_STREAM_LEGACY");
	CVT_CU(cuStreamSynchronize(CU_STREAM_LEGACY),
	       "cuStreamSynchronize(CU_STREAM_LEGACY)");
	cvt_check_pattern(h, N, 777,
			  "legacy stream waited for the blocking stream");

	/* Stream 0 is the legacy stream for a program built without
	 * per-thread default streams. */
	CVT_CU(cvt_fill(fill, d, 778, N, 0), "fill on stream 0");
	CVT_CU(cuMemcpyDtoHAsync(h, d, N * 4, 0), "copy on stream 0");
	CVT_CU(cuStreamSynchronize(0), "cuStreamSynchronize(0)");
	cvt_check_pattern(h, N, 778, "stream 0 result");

	/* The per-thread default stream handle. */
	CVT_CU(cvt_fill(fill, d, 779, N, CU_STREAM_PER_THREAD),
	       "fill on CU_STREAM_PER_THREAD");
	CVT_CU(cuLaunchKernel(scale, 32, 1, 1, 256, 1, 1, 0,
			      CU_STREAM_PER_THREAD, sargs, NULL),
	       "scale on CU_STREAM_PER_THREAD");
	CVT_CU(cuMemcpyDtoHAsync(h, d, N * 4, CU_STREAM_PER_THREAD),
	       "copy on CU_STREAM_PER_THREAD");
	CVT_CU(cuStreamSynchronize(CU_STREAM_PER_THREAD),
	       "cuStreamSynchronize(CU_STREAM_PER_THREAD)");
	{
		long long bad = -1;

		/* The GPU does not keep NaN payloads: any NaN matches. */
		for (uint32_t i = 0; i < N && bad < 0; i++) {
			union { uint32_t u; float f; } w = { cvk_pattern(779, i) },
						       g = { h[i] };

			w.f *= 2.0f;
			if (g.u != w.u && !(isnan(g.f) && isnan(w.f)))
				bad = i;
		}
		cvt_check(bad < 0, "per-thread stream ran fill then scale");
	}
	CVT_CU(cuStreamQuery(CU_STREAM_LEGACY), "query CU_STREAM_LEGACY");
	CVT_CU(cuStreamQuery(CU_STREAM_PER_THREAD), "query CU_STREAM_PER_THREAD");
	cuStreamDestroy(blocking);
	cuMemFree(d);
	cuMemFreeHost(h);
}

int main(int argc, char **argv)
{
	char path[PATH_MAX];
	CUdevice dev;
	CUmodule mod;

	cvt_module_path(argc, argv, 1, path, sizeof(path));
	cvt_setup(&dev, &ctx);
	host_be = cvt_host_backend();
	mod = cvt_load(path);
	fill = cvt_func(mod, "fill_pattern");
	spin = cvt_func(mod, "spin");
	scale = cvt_func(mod, "scale");
	check_multi_stream();
	check_threads();
	check_wait_event();
	check_timing_and_queries();
	check_legacy();
	CVT_CU(cuCtxSynchronize(), "cuCtxSynchronize at the end");
	return cvt_done();
}

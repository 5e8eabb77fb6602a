/* SPDX-License-Identifier: MIT */
/*
 * Streams and events as runtime programs use them: several streams (with
 * flags and priorities), pinned memory from cudaMallocHost and
 * cudaHostAlloc, cudaMemcpyAsync/cudaMemsetAsync, events and their
 * elapsed time, cross-stream ordering with cudaStreamWaitEvent,
 * cudaLaunchHostFunc, the default stream, and several host threads each
 * with its own stream.
 *
 * Built twice: rt_streams (legacy default stream) and rt_streams_ptds
 * (--default-stream per-thread: stream 0 is each thread's own stream).
 */
#include <atomic>
#include <thread>
#include <vector>

#include "rtcheck.h"

#define N (1 << 20)     /* floats per buffer */
#define NSTREAMS 4
#define NTHREADS 4

__global__ void scale_add(float *p, float mul, float add, int n)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;

	if (i < n)
		p[i] = p[i] * mul + add;
}

/* Spins for about `cycles` clock cycles: keeps a stream busy. */
__global__ void spin(long long cycles)
{
	long long t0 = clock64();

	while (clock64() - t0 < cycles)
		;
}

static bool all_equal(const float *p, int n, float v)
{
	for (int i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

static void check_default_stream(void)
{
#ifdef CUDA_API_PER_THREAD_DEFAULT_STREAM
	rt_note("built with --default-stream per-thread");
#else
	rt_note("built with the legacy default stream");
#endif
	RT_CUDA(cudaStreamSynchronize(0), "cudaStreamSynchronize(0)");
	RT_CUDA(cudaStreamSynchronize(cudaStreamLegacy),
		"cudaStreamSynchronize(cudaStreamLegacy)");
	RT_CUDA(cudaStreamSynchronize(cudaStreamPerThread),
		"cudaStreamSynchronize(cudaStreamPerThread)");
	RT_CUDA(cudaStreamQuery(0), "cudaStreamQuery(0) when idle");
}

static void check_streams(void)
{
	cudaStream_t s[NSTREAMS];
	float *h[NSTREAMS], *d[NSTREAMS];
	int lo = 0, hi = 0, prio = 0;
	unsigned flags = 0;
	bool made = true;

	RT_CUDA(cudaDeviceGetStreamPriorityRange(&lo, &hi),
		"cudaDeviceGetStreamPriorityRange");
	for (int i = 0; i < NSTREAMS; i++) {
		h[i] = NULL;
		d[i] = NULL;
		if (i == 0)
			made &= RT_CUDA(cudaStreamCreate(&s[i]),
					"cudaStreamCreate");
		else if (i == 1)
			made &= RT_CUDA(cudaStreamCreateWithFlags(&s[i],
					cudaStreamNonBlocking),
					"cudaStreamCreateWithFlags(NonBlocking)");
		else
			made &= RT_CUDA(cudaStreamCreateWithPriority(&s[i],
					cudaStreamDefault, i == 2 ? lo : hi),
					"cudaStreamCreateWithPriority %d", i);
		RT_CUDA(cudaMallocHost(&h[i], N * sizeof(float)),
			"cudaMallocHost %d", i);
		RT_CUDA(cudaMalloc(&d[i], N * sizeof(float)), "cudaMalloc %d", i);
	}
	if (!made)
		rt_bail("no streams");
	RT_CUDA(cudaStreamGetFlags(s[1], &flags), "cudaStreamGetFlags");
	rt_check(flags == cudaStreamNonBlocking, "stream flags round trip");
	RT_CUDA(cudaStreamGetPriority(s[3], &prio), "cudaStreamGetPriority");
	rt_check(prio == hi, "stream priority round trip");

	/* Pinned copies and memsets on every stream, three rounds. */
	for (int r = 0; r < 3; r++) {
		for (int i = 0; i < NSTREAMS; i++) {
			for (int k = 0; k < N; k++)
				h[i][k] = (float)(r * 100 + i);
			RT_CUDA(cudaMemcpyAsync(d[i], h[i], N * sizeof(float),
						cudaMemcpyHostToDevice, s[i]),
				"round %d: cudaMemcpyAsync H2D on stream %d", r, i);
			RT_CUDA(cudaMemsetAsync(d[i], 0, 64 * sizeof(float), s[i]),
				"round %d: cudaMemsetAsync on stream %d", r, i);
			RT_CUDA(cudaMemcpyAsync(h[i], d[i], N * sizeof(float),
						cudaMemcpyDeviceToHost, s[i]),
				"round %d: cudaMemcpyAsync D2H on stream %d", r, i);
		}
		for (int i = 0; i < NSTREAMS; i++) {
			RT_CUDA(cudaStreamSynchronize(s[i]),
				"round %d: cudaStreamSynchronize %d", r, i);
			rt_check(all_equal(h[i], 64, 0.0f) &&
				 all_equal(h[i] + 64, N - 64, (float)(r * 100 + i)),
				 "round %d: stream %d data is right", r, i);
		}
	}

	/* A kernel per stream (GPU only). */
	if (rt_need_gpu("scale_add kernels on %d streams", NSTREAMS)) {
		for (int i = 0; i < NSTREAMS; i++) {
			scale_add<<<(N + 255) / 256, 256, 0, s[i]>>>(d[i], 2.0f,
								     (float)i, N);
			RT_CUDA(cudaGetLastError(), "scale_add launch on %d", i);
			RT_CUDA(cudaMemcpyAsync(h[i], d[i], N * sizeof(float),
						cudaMemcpyDeviceToHost, s[i]),
				"copy back after scale_add %d", i);
		}
		RT_CUDA(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
		for (int i = 0; i < NSTREAMS; i++)
			rt_check(all_equal(h[i], 64, (float)i) &&
				 all_equal(h[i] + 64, N - 64,
					   (float)(2 * (200 + i) + i)),
				 "scale_add result on stream %d", i);
	}
	for (int i = 0; i < NSTREAMS; i++) {
		RT_CUDA(cudaStreamDestroy(s[i]), "cudaStreamDestroy %d", i);
		RT_CUDA(cudaFreeHost(h[i]), "cudaFreeHost %d", i);
		RT_CUDA(cudaFree(d[i]), "cudaFree %d", i);
	}
}

static void check_events(void)
{
	cudaEvent_t a, b, c;
	cudaStream_t s;
	float ms = -1.0f, *d = NULL, *h = NULL;
	size_t bytes = 16u << 20;

	RT_CUDA(cudaStreamCreate(&s), "cudaStreamCreate for events");
	RT_CUDA(cudaEventCreate(&a), "cudaEventCreate");
	RT_CUDA(cudaEventCreateWithFlags(&b, cudaEventBlockingSync),
		"cudaEventCreateWithFlags(BlockingSync)");
	RT_CUDA(cudaEventCreateWithFlags(&c, cudaEventDisableTiming),
		"cudaEventCreateWithFlags(DisableTiming)");
	RT_CUDA(cudaMalloc(&d, bytes), "cudaMalloc 16 MiB");
	RT_CUDA(cudaHostAlloc(&h, bytes, cudaHostAllocDefault),
		"cudaHostAlloc 16 MiB");
	RT_CUDA(cudaEventRecord(a, s), "cudaEventRecord start");
	for (int i = 0; i < 4; i++)
		RT_CUDA(cudaMemcpyAsync(d, h, bytes, cudaMemcpyHostToDevice, s),
			"timed copy %d", i);
	RT_CUDA(cudaEventRecord(b, s), "cudaEventRecord stop");
	RT_CUDA(cudaEventRecord(c, s), "cudaEventRecord untimed");
	RT_CUDA(cudaEventSynchronize(b), "cudaEventSynchronize");
	RT_CUDA(cudaEventQuery(b), "cudaEventQuery after sync");
	RT_CUDA(cudaEventElapsedTime(&ms, a, b), "cudaEventElapsedTime");
	rt_check(ms >= 0.0f, "elapsed time is not negative");
	rt_note("4 copies of 16 MiB: %.3f ms", (double)ms);
	rt_cuda_fails(cudaEventElapsedTime(&ms, a, c),
		      "elapsed time to a DisableTiming event fails");
	/* That error is also the runtime's last error: clear it. */
	(void)cudaGetLastError();

	if (rt_need_gpu("event timing of a spinning kernel")) {
		RT_CUDA(cudaEventRecord(a, s), "record before spin");
		spin<<<1, 32, 0, s>>>(20000000ll);
		RT_CUDA(cudaGetLastError(), "spin launch");
		RT_CUDA(cudaEventRecord(b, s), "record after spin");
		rt_cuda_want(cudaEventQuery(b), cudaErrorNotReady,
			     "cudaEventQuery sees the spin still running");
		RT_CUDA(cudaEventSynchronize(b), "sync after spin");
		RT_CUDA(cudaEventElapsedTime(&ms, a, b), "elapsed over spin");
		rt_check(ms > 0.5f, "spin took measurable time");
		rt_note("spin: %.3f ms", (double)ms);
	}
	cudaEventDestroy(a);
	cudaEventDestroy(b);
	RT_CUDA(cudaEventDestroy(c), "cudaEventDestroy");
	cudaFree(d);
	RT_CUDA(cudaFreeHost(h), "cudaFreeHost of cudaHostAlloc memory");
	RT_CUDA(cudaStreamDestroy(s), "cudaStreamDestroy for events");
}

/*
 * Stream b waits for an event recorded on stream a after a's work: b's
 * copy must see a's memset. On the GPU a spinning kernel on a makes the
 * wait matter.
 */
static void check_wait_event(void)
{
	cudaStream_t a, b;
	cudaEvent_t e;
	float *x = NULL, *y = NULL, *h = NULL;
	size_t bytes = N * sizeof(float);

	RT_CUDA(cudaStreamCreateWithFlags(&a, cudaStreamNonBlocking),
		"stream a");
	RT_CUDA(cudaStreamCreateWithFlags(&b, cudaStreamNonBlocking),
		"stream b");
	RT_CUDA(cudaEventCreateWithFlags(&e, cudaEventDisableTiming),
		"event for the wait");
	RT_CUDA(cudaMalloc(&x, bytes), "cudaMalloc x");
	RT_CUDA(cudaMalloc(&y, bytes), "cudaMalloc y");
	RT_CUDA(cudaMallocHost(&h, bytes), "cudaMallocHost");
	RT_CUDA(cudaMemset(y, 0, bytes), "clear y");
	if (!rt_host)
		spin<<<1, 32, 0, a>>>(10000000ll);
	RT_CUDA(cudaMemsetAsync(x, 0x3f, bytes, a), "memset x on a");
	RT_CUDA(cudaEventRecord(e, a), "record on a");
	RT_CUDA(cudaStreamWaitEvent(b, e, 0), "cudaStreamWaitEvent");
	RT_CUDA(cudaMemcpyAsync(y, x, bytes, cudaMemcpyDeviceToDevice, b),
		"copy x to y on b");
	RT_CUDA(cudaMemcpyAsync(h, y, bytes, cudaMemcpyDeviceToHost, b),
		"copy y back on b");
	RT_CUDA(cudaStreamSynchronize(b), "sync b");
	{
		const unsigned char *p = (const unsigned char *)h;
		bool ok = true;

		for (size_t i = 0; i < bytes; i++)
			ok &= p[i] == 0x3f;
		rt_check(ok, "b saw a's memset through the event");
	}
	cudaEventDestroy(e);
	cudaStreamDestroy(a);
	cudaStreamDestroy(b);
	cudaFree(x);
	cudaFree(y);
	cudaFreeHost(h);
}

struct host_fn_state {
	const float *pinned;
	std::atomic<int> calls;
	float seen;
};

static void CUDART_CB host_fn(void *arg)
{
	struct host_fn_state *st = (struct host_fn_state *)arg;

	st->seen = st->pinned[N - 1];
	st->calls++;
}

/* The host function runs after the copy before it and before the sync. */
static void check_host_func(void)
{
	struct host_fn_state st;
	cudaStream_t s;
	float *d = NULL, *h = NULL;

	st.calls = 0;
	st.seen = 0;
	RT_CUDA(cudaStreamCreate(&s), "stream for host functions");
	RT_CUDA(cudaMalloc(&d, N * sizeof(float)), "cudaMalloc");
	RT_CUDA(cudaHostAlloc(&h, N * sizeof(float), cudaHostAllocPortable),
		"cudaHostAlloc(Portable)");
	for (int i = 0; i < N; i++)
		h[i] = 5.0f;
	RT_CUDA(cudaMemcpyAsync(d, h, N * sizeof(float),
				cudaMemcpyHostToDevice, s), "copy up");
	RT_CUDA(cudaMemsetAsync(d, 0, N * sizeof(float), s), "clear on device");
	RT_CUDA(cudaMemcpyAsync(h, d, N * sizeof(float),
				cudaMemcpyDeviceToHost, s), "copy down");
	st.pinned = h;
	RT_CUDA(cudaLaunchHostFunc(s, host_fn, &st), "cudaLaunchHostFunc");
	RT_CUDA(cudaLaunchHostFunc(s, host_fn, &st), "second cudaLaunchHostFunc");
	RT_CUDA(cudaStreamSynchronize(s), "sync after host functions");
	rt_check(st.calls == 2, "both host functions ran by the sync");
	rt_check(st.seen == 0.0f, "host function saw the copy before it");
	cudaStreamDestroy(s);
	cudaFree(d);
	cudaFreeHost(h);
}

/* One host thread: its own stream (or stream 0), its own buffers. */
static void thread_body(int t, std::atomic<int> *bad)
{
	const int n = 1 << 18;
	cudaStream_t s = 0;
	float *d = NULL, *h = NULL;
	bool own = t % 2 == 0; /* odd threads use the default stream */

	if (own && cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking))
		goto fail;
	if (cudaMalloc(&d, n * sizeof(float)) ||
	    cudaMallocHost(&h, n * sizeof(float)))
		goto fail;
	for (int r = 0; r < 20; r++) {
		float v = (float)(t * 1000 + r);

		for (int i = 0; i < n; i++)
			h[i] = v;
		if (cudaMemcpyAsync(d, h, n * sizeof(float),
				    cudaMemcpyHostToDevice, s))
			goto fail;
		if (!rt_host)
			scale_add<<<(n + 255) / 256, 256, 0, s>>>(d, 1.0f, 1.0f, n);
		if (cudaMemcpyAsync(h, d, n * sizeof(float),
				    cudaMemcpyDeviceToHost, s) ||
		    cudaStreamSynchronize(s))
			goto fail;
		if (!all_equal(h, n, rt_host ? v : v + 1.0f))
			goto fail;
	}
	goto out;
fail:
	(*bad)++;
	rt_note("thread %d: %s", t, rt_ename(cudaGetLastError()));
out:
	if (own && s)
		cudaStreamDestroy(s);
	cudaFree(d);
	cudaFreeHost(h);
}

static void check_threads(void)
{
	std::vector<std::thread> th;
	std::atomic<int> bad(0);

	for (int t = 0; t < NTHREADS; t++)
		th.emplace_back(thread_body, t, &bad);
	for (auto &x : th)
		x.join();
	rt_check(bad == 0, "%d host threads with their own streams%s", NTHREADS,
		 rt_host ? " (copies only)" : "");
	RT_CUDA(cudaDeviceSynchronize(), "cudaDeviceSynchronize after threads");
}

int main(void)
{
	rt_start("rt_streams", NULL);
	check_default_stream();
	check_streams();
	check_events();
	check_wait_event();
	check_host_func();
	check_threads();
	rt_host_probe("scale_add", [] {
		scale_add<<<1, 32>>>(NULL, 1.0f, 0.0f, 0);
	});
	return rt_done();
}

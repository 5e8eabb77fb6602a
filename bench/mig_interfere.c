/* SPDX-License-Identifier: MIT */
/*
 * What slows a launch-bound tenant while a live migration runs beside it,
 * natively, with no cuvisor in the way: the throughput target of the
 * migration benchmark (bench/mig_run.sh) needs to know which of the
 * migration's activities the GPU or the driver makes the tenant pay for.
 *
 *	mig_interfere MODULE SECONDS SCENARIO...
 *
 * The tenant is this process's main thread: rounds of page_inc over 256
 * MiB (one word per 4 KiB page, from MODULE, build/tests/kernels.fatbin)
 * and an empty kernel on the legacy stream, then cuStreamSynchronize of
 * the legacy stream, as cu_pagecount -H 256 under cuvisor. Each scenario
 * runs its interferers for SECONDS and prints
 * "metric NAME ROUNDS_PER_S ... ratio R interferer G GB/s", R against the
 * undisturbed rate measured just before and just after it. A scenario is
 * parts joined by '+', all at once:
 *   d2h-LANES-MIB[-GAP][-block]  LANES threads of this context, each
 *                    copying MIB device-to-host (pinned) on a non-blocking
 *                    stream of its own, sleeping GAP µs between copies,
 *                    waiting with cuStreamSynchronize (-block: on an event
 *                    made with CU_EVENT_BLOCKING_SYNC)
 *   d2hq-DEPTH-MIB   one thread, one stream, DEPTH copies in flight
 *   digest-MIB[-GRID] one thread of this context digesting 4 GiB (the
 *                    worker's digest kernel, 256 KiB granules) on a
 *                    stream of the least priority, MIB per launch, GRID
 *                    blocks per launch (none or 0: one per granule)
 *   other-h2dN       another process copying 8 MiB at a time host-to-
 *                    device from pinned memory on N streams (as a
 *                    destination worker)
 *   other-digest     another process digesting 4 GiB of its own, again
 *                    and again (its kernels time-slice with ours)
 *   other-ctx        another process creating and destroying a context
 *   other-idle       another process holding a context, idle
 *   cpu-N            N threads spinning on the CPU
 * e.g. mig_interfere build/tests/kernels.fatbin 2 d2h-8-8+other-h2d4
 * digest-1024-0 digest-1024-132.
 * Runs on the real driver only.
 */
#include <cuda.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../core/digest.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define HOT (256 * MiB)
#define COLD (4 * GiB)
#define SLOT (8 * MiB)
#define GRANULE (256 * 1024ull)

extern const unsigned char cv_digest_fatbin[];

#define CK(x)                                                              \
	do {                                                               \
		CUresult r_ = (x);                                         \
		if (r_) {                                                  \
			const char *s_ = "?";                              \
			cuGetErrorName(r_, &s_);                           \
			fprintf(stderr, "%s: %s\n", #x, s_);               \
			exit(1);                                           \
		}                                                          \
	} while (0)

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static CUcontext g_ctx;
static CUdeviceptr g_cold;
static CUfunction g_digest;
static volatile int g_stop;

/* ---- interferers in this process ------------------------------------- */

struct worker {
	pthread_t th;
	int kind;       /* 0 spin sync, 1 blocking event, 2 digest, 3 cpu */
	int idx;
	uint64_t chunk; /* copy: bytes per copy; digest: bytes per launch */
	unsigned int grid; /* digest: blocks per launch, 0: one per granule */
	unsigned int gap_us; /* copy: sleep between copies */
};

static uint64_t g_moved; /* bytes copied or digested by the interferers */

static void d2h_loop(struct worker *w)
{
	CUstream st;
	CUevent ev;
	void *host;
	uint64_t off;

	CK(cuStreamCreate(&st, CU_STREAM_NON_BLOCKING));
	CK(cuEventCreate(&ev, CU_EVENT_DISABLE_TIMING |
				      (w->kind ? CU_EVENT_BLOCKING_SYNC : 0)));
	CK(cuMemHostAlloc(&host, w->chunk, 0));
	off = (uint64_t)w->idx * w->chunk;
	while (!g_stop) {
		CK(cuMemcpyDtoHAsync(host, g_cold + off, w->chunk, st));
		if (w->kind) {
			CK(cuEventRecord(ev, st));
			CK(cuEventSynchronize(ev));
		} else {
			CK(cuStreamSynchronize(st));
		}
		__atomic_fetch_add(&g_moved, w->chunk, __ATOMIC_RELAXED);
		off = (off + 16 * w->chunk) % (COLD - w->chunk);
		if (w->gap_us)
			usleep(w->gap_us);
	}
	cuMemFreeHost(host);
	cuEventDestroy(ev);
	cuStreamDestroy(st);
}

/* One thread, one stream, w->idx copies in flight (events between). */
static void d2hq_loop(struct worker *w)
{
	CUstream st;
	CUevent ev[16];
	void *host;
	uint64_t off = 0;
	int depth = w->idx < 1 ? 1 : w->idx > 16 ? 16 : w->idx, i, k = 0;

	CK(cuStreamCreate(&st, CU_STREAM_NON_BLOCKING));
	for (i = 0; i < depth; i++)
		CK(cuEventCreate(&ev[i], CU_EVENT_DISABLE_TIMING |
						 CU_EVENT_BLOCKING_SYNC));
	CK(cuMemHostAlloc(&host, (uint64_t)depth * w->chunk, 0));
	for (i = 0; i < depth; i++) {
		CK(cuMemcpyDtoHAsync((char *)host + i * w->chunk, g_cold + off,
				     w->chunk, st));
		CK(cuEventRecord(ev[i], st));
		off = (off + w->chunk) % COLD;
	}
	while (!g_stop) {
		CK(cuEventSynchronize(ev[k]));
		__atomic_fetch_add(&g_moved, w->chunk, __ATOMIC_RELAXED);
		CK(cuMemcpyDtoHAsync((char *)host + k * w->chunk, g_cold + off,
				     w->chunk, st));
		CK(cuEventRecord(ev[k], st));
		off = (off + w->chunk) % COLD;
		k = (k + 1) % depth;
	}
	CK(cuStreamSynchronize(st));
	cuMemFreeHost(host);
	for (i = 0; i < depth; i++)
		cuEventDestroy(ev[i]);
	cuStreamDestroy(st);
}

static void digest_loop(CUdeviceptr base, uint64_t len, uint64_t chunk,
			unsigned int grid)
{
	CUstream st;
	CUevent ev;
	CUdeviceptr out;
	uint64_t granule = GRANULE, n, seed = 1, off;
	int lo, hi;

	CK(cuCtxGetStreamPriorityRange(&lo, &hi));
	CK(cuStreamCreateWithPriority(&st, CU_STREAM_NON_BLOCKING, lo));
	CK(cuEventCreate(&ev, CU_EVENT_DISABLE_TIMING |
				      CU_EVENT_BLOCKING_SYNC));
	CK(cuMemAlloc(&out, len / GRANULE * CV_DIGEST_LEN));
	while (!g_stop) {
		for (off = 0; off < len && !g_stop; off += chunk) {
			CUdeviceptr b = base + off;
			CUdeviceptr o = out + off / GRANULE * CV_DIGEST_LEN;
			void *p[] = { &b, &granule, &n, &seed, &o };

			n = chunk / GRANULE;
			CK(cuLaunchKernel(g_digest,
					  grid ? grid : (unsigned int)n, 1, 1,
					  CV_DIGEST_LANES, 1, 1, 0, st, p,
					  NULL));
		}
		CK(cuEventRecord(ev, st));
		CK(cuEventSynchronize(ev));
		__atomic_fetch_add(&g_moved, len, __ATOMIC_RELAXED);
	}
	cuMemFree(out);
	cuEventDestroy(ev);
	cuStreamDestroy(st);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	volatile uint64_t x = 0;

	if (w->kind == 3) {
		while (!g_stop)
			x++;
		return NULL;
	}
	CK(cuCtxSetCurrent(g_ctx));
	if (w->kind == 2)
		digest_loop(g_cold, COLD, w->chunk, w->grid);
	else if (w->kind == 4)
		d2hq_loop(w);
	else
		d2h_loop(w);
	return NULL;
}

/* ---- interferers in another process ---------------------------------- */

static void on_term(int sig)
{
	(void)sig;
	g_stop = 1;
}

static int child(const char *kind)
{
	CUdevice dev;
	CUcontext ctx;
	CUdeviceptr buf;
	CUstream st[8];
	void *host[8];
	int i, ns = 4;

	signal(SIGTERM, on_term);
	CK(cuInit(0));
	CK(cuDeviceGet(&dev, 0));
	if (!strcmp(kind, "ctx")) {
		printf("ready\n");
		fflush(stdout);
		while (!g_stop) {
			CK(cuCtxCreate(&ctx, NULL, 0, dev));
			CK(cuMemAlloc(&buf, 64 * MiB));
			CK(cuMemFree(buf));
			CK(cuCtxDestroy(ctx));
		}
		return 0;
	}
	CK(cuCtxCreate(&ctx, NULL, 0, dev));
	if (!strcmp(kind, "idle")) {
		printf("ready\n");
		fflush(stdout);
		while (!g_stop)
			usleep(10000);
		return 0;
	}
	if (!strcmp(kind, "digest")) {
		CUmodule m;

		CK(cuModuleLoadData(&m, cv_digest_fatbin));
		CK(cuModuleGetFunction(&g_digest, m, CV_DIGEST_KERNEL));
		CK(cuMemAlloc(&buf, COLD));
		CK(cuMemsetD8(buf, 7, COLD));
		printf("ready\n");
		fflush(stdout);
		digest_loop(buf, COLD, COLD, 0);
		return 0;
	}
	if (!strncmp(kind, "h2d", 3))
		ns = atoi(kind + 3) < 1 ? 1 : atoi(kind + 3) > 8 ? 8 :
		     atoi(kind + 3);
	CK(cuMemAlloc(&buf, 64 * SLOT));
	for (i = 0; i < ns; i++) {
		CK(cuStreamCreate(&st[i], CU_STREAM_NON_BLOCKING));
		CK(cuMemHostAlloc(&host[i], SLOT, 0));
		memset(host[i], i, SLOT);
	}
	printf("ready\n");
	fflush(stdout);
	for (i = 0; !g_stop; i = (i + 1) % ns) {
		CK(cuStreamSynchronize(st[i]));
		CK(cuMemcpyHtoDAsync(buf + (uint64_t)(i % 64) * SLOT, host[i],
				     SLOT, st[i]));
	}
	return 0;
}

/* Starts `self --child kind` and waits for its "ready"; returns its pid. */
static pid_t spawn(const char *self, const char *kind)
{
	int p[2];
	char c;
	pid_t pid;

	if (pipe(p))
		exit(1);
	pid = fork();
	if (pid < 0)
		exit(1);
	if (!pid) {
		dup2(p[1], 1);
		close(p[0]);
		execl(self, self, "--child", kind, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	while (read(p[0], &c, 1) == 1 && c != '\n')
		;
	close(p[0]);
	return pid;
}

/* ---- the tenant ------------------------------------------------------- */

static CUfunction g_inc, g_empty;
static CUdeviceptr g_hot;

static double rate(double secs)
{
	uint64_t pages = HOT / 4096, n = 0;
	unsigned int grid = (unsigned int)((pages + 255) / 256);
	void *args[] = { &g_hot, &pages };
	double t0 = now(), t;

	if (grid > 4096)
		grid = 4096;
	do {
		CK(cuLaunchKernel(g_inc, grid, 1, 1, 256, 1, 1, 0, NULL, args,
				  NULL));
		CK(cuLaunchKernel(g_empty, 1, 1, 1, 1, 1, 1, 0, NULL, NULL,
				  NULL));
		CK(cuStreamSynchronize(NULL));
		n++;
	} while ((t = now() - t0) < secs);
	return n / t;
}

struct running {
	struct worker w[16];
	int nw;
	pid_t pid[4];
	int npid;
};

/*
 * Starts one part of a scenario: other-KIND (another process: h2dN with N
 * streams, digest, ctx, idle), cpu-N, d2h-LANES-MIB[-GAPus][-block]
 * (LANES threads copying MIB at a time, sleeping GAP µs between copies,
 * waiting on a blocking event with -block), d2hq-DEPTH-MIB (one thread,
 * one stream, DEPTH copies in flight), digest-MIB[-GRID] (MIB per launch,
 * GRID blocks per launch; 0 or none: one per granule). -1 when unknown.
 */
static int start(struct running *r, const char *self, const char *part)
{
	unsigned int a = 0, b = 0, c = 0;
	int n = 0, i, kind;
	uint64_t chunk = SLOT;
	unsigned int grid = 0, gap = 0;

	if (!strncmp(part, "other-", 6)) {
		if (r->npid == 4)
			return -1;
		r->pid[r->npid++] = spawn(self, part + 6);
		return 0;
	}
	if (!strncmp(part, "d2h-", 4) &&
	    sscanf(part + 4, "%u-%u-%u", &a, &b, &c) >= 2) {
		n = (int)a;
		chunk = (uint64_t)b * MiB;
		gap = c;
		kind = strstr(part, "block") ? 1 : 0;
	} else if (!strncmp(part, "d2hq-", 5) &&
		   sscanf(part + 5, "%u-%u", &a, &b) == 2) {
		n = 1;
		chunk = (uint64_t)b * MiB;
		kind = 4;
	} else if (!strncmp(part, "digest-", 7) &&
		   sscanf(part + 7, "%u-%u", &a, &b) >= 1) {
		n = 1;
		kind = 2;
		chunk = (uint64_t)a * MiB;
		grid = b;
	} else if (!strncmp(part, "cpu-", 4)) {
		n = atoi(part + 4);
		kind = 3;
	} else {
		return -1;
	}
	if (!chunk || chunk > COLD / 32 * (kind == 2 ? 32 : 1) ||
	    COLD % chunk || n < 1 || r->nw + n > 16)
		return -1;
	for (i = 0; i < n; i++) {
		struct worker *w = &r->w[r->nw];

		*w = (struct worker){ .kind = kind, .chunk = chunk,
				      .grid = grid, .gap_us = gap,
				      .idx = kind == 4 ? (int)a : i };
		if (pthread_create(&w->th, NULL, worker_main, w))
			exit(1);
		r->nw++;
	}
	return 0;
}

/* name: parts joined by '+', all running at once. */
static void scenario(const char *self, const char *name, double secs)
{
	struct running r = { .nw = 0 };
	char buf[256], *part, *save = NULL;
	double before, during, after, t0, t;
	int i, bad = 0;

	snprintf(buf, sizeof(buf), "%s", name);
	before = rate(secs / 2);
	g_stop = 0;
	for (part = strtok_r(buf, "+", &save); part && !bad;
	     part = strtok_r(NULL, "+", &save))
		if (start(&r, self, part)) {
			fprintf(stderr, "%s: cannot run %s\n", name, part);
			bad = 1;
		}
	usleep(200000);
	__atomic_store_n(&g_moved, 0, __ATOMIC_RELAXED);
	t0 = now();
	during = bad ? 0 : rate(secs);
	t = now() - t0;
	g_stop = 1;
	for (i = 0; i < r.nw; i++)
		pthread_join(r.w[i].th, NULL);
	for (i = 0; i < r.npid; i++) {
		kill(r.pid[i], SIGTERM);
		waitpid(r.pid[i], NULL, 0);
	}
	after = rate(secs / 2);
	if (bad)
		return;
	printf("metric %-26s %7.0f rounds/s  undisturbed %6.0f/%6.0f  "
	       "ratio %.3f  interferer %.1f GB/s\n", name, during, before,
	       after, 2 * during / (before + after),
	       __atomic_load_n(&g_moved, __ATOMIC_RELAXED) / t / 1e9);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	CUdevice dev;
	CUmodule m, dm;
	double secs;
	int i;

	if (argc == 3 && !strcmp(argv[1], "--child"))
		return child(argv[2]);
	if (argc < 3) {
		fprintf(stderr, "usage: mig_interfere MODULE SECONDS "
			"[SCENARIO...]\n");
		return 2;
	}
	secs = atof(argv[2]);
	CK(cuInit(0));
	CK(cuDeviceGet(&dev, 0));
	CK(cuDevicePrimaryCtxRetain(&g_ctx, dev));
	CK(cuCtxSetCurrent(g_ctx));
	CK(cuModuleLoad(&m, argv[1]));
	CK(cuModuleGetFunction(&g_inc, m, "page_inc"));
	CK(cuModuleGetFunction(&g_empty, m, "empty"));
	CK(cuModuleLoadData(&dm, cv_digest_fatbin));
	CK(cuModuleGetFunction(&g_digest, dm, CV_DIGEST_KERNEL));
	CK(cuMemAlloc(&g_hot, HOT));
	CK(cuMemsetD8(g_hot, 0, HOT));
	CK(cuMemAlloc(&g_cold, COLD));
	CK(cuMemsetD8(g_cold, 7, COLD));
	CK(cuCtxSynchronize());
	printf("metric undisturbed %8.0f rounds/s\n", rate(secs));
	for (i = 3; i < argc; i++)
		scenario(argv[0], argv[i], secs);
	return 0;
}

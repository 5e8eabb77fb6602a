/* SPDX-License-Identifier: MIT */
/*
 * Driver-API benchmark: one process measures what DESIGN.md's baselines
 * list, so that bench/run.sh can run it natively and under cuvisor and
 * compare. Output: one line per metric,
 *
 *	metric NAME VALUE UNIT
 *
 * and "#" lines for information. Metrics:
 *   launch_async_us        empty kernel, N async launches then one sync,
 *                          wall time / N, median of 5 runs
 *                          (and "# launch_issue_us": the launches'
 *                          time before that sync)
 *   launch_sync_us         launch + cuStreamSynchronize, median
 *   {h2d,d2h}_{pinned,pageable}_SIZE   GB/s (1e9 B/s), median of reps,
 *                          SIZE 4K .. 1G in powers of 4
 *   alloc_free_ns_SIZE     cuMemAlloc + cuMemFree pair, mean over reps,
 *                          SIZE 256 .. 64K
 *   fma_iters              iterations per thread of the compute kernel
 *                          (calibrated to >= 1 s unless -f gives it)
 *   compute_s              time of that kernel, median of 3
 *   worker_rss_idle_MiB    under cuvisor: the worker's VmRSS once the
 *                          tenant is set up and idle (before the copies)
 *
 *	bench [-n LAUNCHES] [-m MAXBYTES] [-f FMA_ITERS] [-s SECONDS] [MODULE]
 */
#include <math.h>

#include "../tests/progs/cvtest.h"

#define CV_MINU(a, b) ((a) < (b) ? (a) : (b))
#define CV_MAXU(a, b) ((a) > (b) ? (a) : (b))

static CUstream stream;
static CUfunction k_empty, k_fma;
static int nsm = 1;

static void die(const char *what, CUresult r)
{
	fprintf(stderr, "bench: %s: %s (%d)\n", what, cvt_errname(r), (int)r);
	exit(1);
}

#define CK(call)                                                        \
	do {                                                            \
		CUresult r_ = (call);                                   \
		if (r_ != CUDA_SUCCESS)                                 \
			die(#call, r_);                                 \
	} while (0)

static void metric(const char *name, double v, const char *unit)
{
	printf("metric %s %.6g %s\n", name, v, unit);
	fflush(stdout);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void size_name(char *buf, size_t n, uint64_t size)
{
	if (size >= (1ull << 30))
		snprintf(buf, n, "%lluG", (unsigned long long)(size >> 30));
	else if (size >= (1ull << 20))
		snprintf(buf, n, "%lluM", (unsigned long long)(size >> 20));
	else if (size >= 1024)
		snprintf(buf, n, "%lluK", (unsigned long long)(size >> 10));
	else
		snprintf(buf, n, "%llu", (unsigned long long)size);
}

static void bench_launch(int n)
{
	void *none[1] = { NULL };
	double *v;
	uint64_t t0;
	int reps = 2000;

	for (int i = 0; i < 1000; i++)
		CK(cuLaunchKernel(k_empty, 1, 1, 1, 1, 1, 1, 0, stream, none,
				  NULL));
	CK(cuStreamSynchronize(stream));
	v = malloc(sizeof(*v) * (size_t)reps);
	/* median of 5 runs of n launches: the lent machine is noisy */
	for (int r = 0; r < 5; r++) {
		t0 = cvt_now_ns();
		for (int i = 0; i < n; i++)
			CK(cuLaunchKernel(k_empty, 1, 1, 1, 1, 1, 1, 0, stream,
					  none, NULL));
		v[5 + r] = (double)(cvt_now_ns() - t0) / 1e3 / n;
		CK(cuStreamSynchronize(stream));
		v[r] = (double)(cvt_now_ns() - t0) / 1e3 / n;
	}
	metric("launch_async_us", median(v, 5), "us");
	/* how long the calls themselves took, before the sync (information:
	 * where a launch is queued faster than it runs) */
	printf("# launch_issue_us %.3f\n", median(v + 5, 5));

	for (int i = 0; i < reps; i++) {
		t0 = cvt_now_ns();
		CK(cuLaunchKernel(k_empty, 1, 1, 1, 1, 1, 1, 0, stream, none,
				  NULL));
		CK(cuStreamSynchronize(stream));
		v[i] = (double)(cvt_now_ns() - t0) / 1e3;
	}
	metric("launch_sync_us", median(v, reps), "us");
	free(v);
}

/* One direction, one kind of host memory, one size: median GB/s. */
static void bench_copy(const char *dir, const char *kind, void *host,
		       CUdeviceptr dev, uint64_t size, bool pinned)
{
	int reps = (int)CV_MINU(200, CV_MAXU(5, (512ull << 20) / size));
	double *v = malloc(sizeof(*v) * (size_t)reps);
	bool h2d = dir[0] == 'h';
	char name[64], sz[16];
	uint64_t t0;

	for (int i = -1; i < reps; i++) {  /* i == -1: warm-up */
		t0 = cvt_now_ns();
		if (pinned && h2d)
			CK(cuMemcpyHtoDAsync(dev, host, size, stream));
		else if (pinned)
			CK(cuMemcpyDtoHAsync(host, dev, size, stream));
		else if (h2d)
			CK(cuMemcpyHtoD(dev, host, size));
		else
			CK(cuMemcpyDtoH(host, dev, size));
		if (pinned)
			CK(cuStreamSynchronize(stream));
		if (i >= 0)
			v[i] = (double)size / (double)(cvt_now_ns() - t0);
	}
	size_name(sz, sizeof(sz), size);
	snprintf(name, sizeof(name), "%s_%s_%s", dir, kind, sz);
	metric(name, median(v, reps), "GB/s");
	free(v);
}

static void bench_copies(uint64_t max)
{
	void *pinned, *pageable;
	CUdeviceptr dev;

	CK(cuMemAllocHost(&pinned, max));
	CK(cuMemAlloc(&dev, max));
	pageable = malloc(max);
	if (!pageable) {
		fprintf(stderr, "bench: out of host memory\n");
		exit(1);
	}
	/* Fault every page in before timing anything. */
	memset(pageable, 1, max);
	memset(pinned, 1, max);
	for (uint64_t s = 4096; s <= max; s *= 4) {
		bench_copy("h2d", "pinned", pinned, dev, s, true);
		bench_copy("d2h", "pinned", pinned, dev, s, true);
		bench_copy("h2d", "pageable", pageable, dev, s, false);
		bench_copy("d2h", "pageable", pageable, dev, s, false);
	}
	CK(cuMemFree(dev));
	CK(cuMemFreeHost(pinned));
	free(pageable);
}

static void bench_alloc(void)
{
	const int reps = 20000;
	char name[64], sz[16];
	CUdeviceptr d;
	uint64_t t0;

	for (uint64_t s = 256; s <= 65536; s *= 4) {
		for (int i = 0; i < 100; i++) {
			CK(cuMemAlloc(&d, s));
			CK(cuMemFree(d));
		}
		t0 = cvt_now_ns();
		for (int i = 0; i < reps; i++) {
			CK(cuMemAlloc(&d, s));
			CK(cuMemFree(d));
		}
		size_name(sz, sizeof(sz), s);
		snprintf(name, sizeof(name), "alloc_free_ns_%s", sz);
		metric(name, (double)(cvt_now_ns() - t0) / reps, "ns");
	}
}

static double run_fma(CUdeviceptr out, uint32_t iters)
{
	void *args[] = { &out, &iters };
	uint64_t t0 = cvt_now_ns();

	CK(cuLaunchKernel(k_fma, (unsigned)nsm * 4, 1, 1, 256, 1, 1, 0, stream,
			  args, NULL));
	CK(cuStreamSynchronize(stream));
	return (double)(cvt_now_ns() - t0) / 1e9;
}

static void bench_compute(uint32_t iters, double seconds)
{
	CUdeviceptr out;
	double t, v[3];
	float sample = 0;

	CK(cuMemAlloc(&out, (size_t)nsm * 4 * 256 * sizeof(float)));
	if (!iters) {
		/* Calibrate: grow until one run takes >= 1/8 of the goal,
		 * then scale to the goal. */
		iters = 1024;
		while ((t = run_fma(out, iters)) < seconds / 8 &&
		       iters < (1u << 30))
			iters *= 4;
		iters = (uint32_t)CV_MINU((uint64_t)UINT32_MAX,
			(uint64_t)ceil(iters * seconds / t));
	}
	printf("metric fma_iters %u count\n", iters);
	for (int i = 0; i < 3; i++)
		v[i] = run_fma(out, iters);
	metric("compute_s", median(v, 3), "s");
	CK(cuMemcpyDtoH(&sample, out, sizeof(sample)));
	printf("# fma sample result %g\n", (double)sample);
	CK(cuMemFree(out));
}

/*
 * The worker's VmRSS in MiB, or -1 (not under cuvisor, or unreadable).
 * Notes its parts (anonymous, file-backed such as the driver's code,
 * shared memory such as the region) as "#" lines, and sets *priv to the
 * memory the worker holds for itself beyond the pinned staging area:
 * anonymous + shared memory - staging. File-backed pages (the driver's
 * code) are page cache shared by every process that maps the driver.
 */
static double worker_rss_mib(double *priv)
{
	const struct cv_region_hdr *h = cvt_region();
	char path[64], line[256];
	double kb = -1, anon = -1, file = -1, shm = -1;
	FILE *f;

	if (!h || !h->worker_pid)
		return -1;
	snprintf(path, sizeof(path), "/proc/%u/status", h->worker_pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		sscanf(line, "VmRSS: %lf", &kb);
		sscanf(line, "RssAnon: %lf", &anon);
		sscanf(line, "RssFile: %lf", &file);
		sscanf(line, "RssShmem: %lf", &shm);
	}
	fclose(f);
	printf("# worker %u VmRSS %.1f MiB: anon %.1f, file %.1f, shmem %.1f\n",
	       h->worker_pid, kb / 1024, anon / 1024, file / 1024, shm / 1024);
	*priv = (anon + shm) / 1024 -
		(double)(CV_STAGING_CHUNKS * CV_STAGING_CHUNK) / 1048576;
	return kb < 0 || anon < 0 || shm < 0 ? -1 : kb / 1024;
}

int main(int argc, char **argv)
{
	char path[PATH_MAX], name[256];
	uint64_t max = 1ull << 30;
	uint32_t iters = 0;
	double seconds = 1.2, rss, priv = 0;
	int n = 100000, opt;
	CUdevice dev;
	CUcontext ctx;
	CUmodule mod;

	while ((opt = getopt(argc, argv, "n:m:f:s:")) != -1) {
		switch (opt) {
		case 'n': n = atoi(optarg); break;
		case 'm': max = strtoull(optarg, NULL, 0); break;
		case 'f': iters = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 's': seconds = atof(optarg); break;
		default:
			fprintf(stderr, "usage: %s [-n LAUNCHES] [-m MAXBYTES] "
				"[-f FMA_ITERS] [-s SECONDS] [MODULE]\n", argv[0]);
			return 2;
		}
	}
	if (n < 1 || max < 4096 || seconds <= 0) {
		fprintf(stderr, "bench: bad option value\n");
		return 2;
	}
	cvt_module_path(argc, argv, optind, path, sizeof(path));
	cvt_setup(&dev, &ctx);
	CK(cuDeviceGetName(name, sizeof(name), dev));
	CK(cuDeviceGetAttribute(&nsm, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
				dev));
	printf("# device %s, %d SMs, module %s\n", name, nsm, path);
	CK(cuModuleLoad(&mod, path));
	CK(cuModuleGetFunction(&k_empty, mod, "empty"));
	CK(cuModuleGetFunction(&k_fma, mod, "fma_loop"));
	CK(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));

	/* Idle: context, module and stream exist; nothing is running. */
	CK(cuCtxSynchronize());
	usleep(300000);
	rss = worker_rss_mib(&priv);
	if (rss >= 0) {
		metric("worker_rss_idle_MiB", rss, "MiB");
		metric("worker_private_idle_MiB", priv, "MiB");
	}

	bench_launch(n);
	bench_alloc();
	bench_copies(max);
	bench_compute(iters, seconds);
	rss = worker_rss_mib(&priv);
	if (rss >= 0)
		printf("# worker VmRSS at the end: %.1f MiB\n", rss);
	CK(cuStreamDestroy(stream));
	CK(cuModuleUnload(mod));
	return 0;
}

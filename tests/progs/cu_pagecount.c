/* SPDX-License-Identifier: MIT */
/*
 * Counts rounds in every page of a device buffer: the tenant that the ops
 * tests (tests/run.sh) suspend, evict and resume while it works.
 *
 *	cu_pagecount [-m MIB] [-H MIB] [-W] [-Z] [-t SECONDS] [-v ROUNDS] [-V] [MODULE]
 *
 * Allocates -m MiB (default 64) of device memory and fills it with a
 * pattern whose first word in every 4 KiB page is a counter, 0. Then, for
 * -t seconds (default 2; 0: until SIGTERM or SIGINT), each round launches
 * page_inc (every page's counter + 1) and synchronises; after the first
 * round and every -v rounds (default 16) everything is copied back and
 * checked: every counter equals the rounds done (no increment lost or
 * doubled) and every other word still holds the pattern. Each round also
 * adds 1 to the module global g_value (global_add), checked the same way
 * through cuModuleGetGlobal's address: a checkpoint must keep a global's
 * address and its bytes. At the end, one
 * more full check. SIGTERM and SIGINT end the loop early; that is a normal
 * end, not a failure.
 *
 * Prints "# guest_pid N", "# worker_pid N" (0 when not under cuvisor),
 * "# ready" after the first verified round and "# rounds N" about every
 * 100 ms while rounds complete (with the wall-clock time in ns, for the
 * migration benchmark's throughput). Exits 0 only if every check passed.
 *
 * -H MIB: only the first MIB of the buffer is the hot set that rounds
 * count in; the counters of the pages after it stay 0 (and are checked
 * to).
 *
 * -W: each round rewrites every word of the hot set (words_inc: + 1)
 * instead of one word per page: a tenant whose kernels are bound by
 * memory bandwidth rather than by launches. The counters then count as
 * before and every other hot word is its pattern + the rounds.
 *
 * -Z: the pattern's words keep only their low 4 bits: memory that
 * compresses (the migration tests' zstd path).
 */
#include <signal.h>

#include "cvtest.h"

#define PAGE_BYTES (CVK_PAGE_WORDS * 4u)
#define SEED 0x9a9ec0u
#define PRINT_NS 100000000ull

static volatile sig_atomic_t g_stop;

static uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void on_signal(int sig)
{
	g_stop = 1;
}

struct pc {
	CUdeviceptr d;
	uint32_t *h;
	uint64_t words;
	uint64_t npages;
	uint64_t hot;           /* pages counted in (-H), <= npages */
	CUfunction inc;
	CUfunction winc;        /* words_inc, for -W */
	CUfunction gadd;
	CUdeviceptr g;          /* g_value */
	bool vmm;               /* -V */
	CUdeviceptr alias;      /* -V: the first half, mapped again */
	uint32_t *ha;           /* -V: room for one page of the alias */
};

static uint64_t g_hot_words = UINT64_MAX; /* -H: words in the hot set */
static bool g_rewrite;                    /* -W */
static bool g_small;                      /* -Z: patterns of 4 bits */

/* The word i should hold after `rounds` rounds. */
static uint32_t want_word(uint64_t i, uint64_t rounds)
{
	uint32_t base = i % CVK_PAGE_WORDS ? cvk_pattern(SEED, i) : 0;

	if (g_small)
		base &= 0xf;

	if (i >= g_hot_words || (!g_rewrite && i % CVK_PAGE_WORDS))
		return base;
	return base + (uint32_t)rounds;
}

/* g_value counts the rounds too. */
static bool global_right(struct pc *p, uint64_t rounds)
{
	int v = 0;
	CUresult r;

	r = cuMemcpyDtoH(&v, p->g, sizeof(v));
	if (r == CUDA_SUCCESS && v == CVK_G_VALUE_INIT + (int)rounds)
		return true;
	cvt_note("after %llu rounds: g_value is %d (%s), want %d",
		 (unsigned long long)rounds, v, cvt_errname(r),
		 CVK_G_VALUE_INIT + (int)rounds);
	return false;
}

/*
 * Copies the buffer back and checks it against `rounds`; true when right.
 * Notes the first wrong word and how many there are.
 */
static bool verify(struct pc *p, uint64_t rounds)
{
	uint64_t i, nbad = 0, first = 0;
	CUresult r;

	r = cuMemcpyDtoH(p->h, p->d, p->words * 4);
	if (r != CUDA_SUCCESS) {
		cvt_note("cuMemcpyDtoH after %llu rounds: %s",
			 (unsigned long long)rounds, cvt_errname(r));
		return false;
	}
	for (i = 0; i < p->words; i++) {
		if (p->h[i] == want_word(i, rounds))
			continue;
		if (!nbad++)
			first = i;
	}
	if (!global_right(p, rounds))
		return false;
	if (p->vmm) {
		r = cuMemcpyDtoH(p->ha, p->alias, PAGE_BYTES);
		if (r != CUDA_SUCCESS || memcmp(p->ha, p->h, PAGE_BYTES)) {
			cvt_note("after %llu rounds: the alias does not show "
				 "the first page (%s)",
				 (unsigned long long)rounds, cvt_errname(r));
			return false;
		}
	}
	if (nbad)
		cvt_note("after %llu rounds: %llu wrong words; the first is "
			 "word %llu of page %llu: got %u (0x%08x), want %u "
			 "(0x%08x)", (unsigned long long)rounds,
			 (unsigned long long)nbad,
			 (unsigned long long)(first % CVK_PAGE_WORDS),
			 (unsigned long long)(first / CVK_PAGE_WORDS),
			 p->h[first], p->h[first], want_word(first, rounds),
			 want_word(first, rounds));
	return nbad == 0;
}

static CUresult round_once(struct pc *p)
{
	uint64_t blocks = (p->hot + 255) / 256;
	unsigned grid = blocks < 4096 ? (unsigned)blocks : 4096;
	void *args[] = { &p->d, &p->hot };
	uint64_t words = p->hot * CVK_PAGE_WORDS;
	void *wargs[] = { &p->d, &words };
	int one = 1;
	void *gargs[] = { &one };
	CUresult r;

	if (g_rewrite)
		r = cvt_launch(p->winc, 4096, 256, NULL, wargs);
	else
		r = cvt_launch(p->inc, grid, 256, NULL, args);
	if (r == CUDA_SUCCESS)
		r = cvt_launch(p->gadd, 1, 1, NULL, gargs);
	if (r == CUDA_SUCCESS)
		r = cuCtxSynchronize();
	return r;
}

/* -V: the buffer from two VMM handles, the first one also aliased. */
static void setup_vmm(struct pc *p)
{
	CUmemAllocationProp prop = {
		.type = CU_MEM_ALLOCATION_TYPE_PINNED,
		.location = { CU_MEM_LOCATION_TYPE_DEVICE, 0 },
	};
	CUmemAccessDesc acc = { .location = prop.location,
				.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE };
	CUmemGenericAllocationHandle a, b;
	size_t gran = 0, half = p->words * 4 / 2;

	if (!CVT_CU(cuMemGetAllocationGranularity(&gran, &prop,
			CU_MEM_ALLOC_GRANULARITY_MINIMUM), "granularity") ||
	    !gran || half % gran)
		cvt_bail("-V: half the buffer (%zu bytes) is not a multiple of "
			 "the granularity (%zu)", half, gran);
	if (!CVT_CU(cuMemAddressReserve(&p->d, 2 * half, 0, 0, 0), "reserve") ||
	    !CVT_CU(cuMemAddressReserve(&p->alias, half, 0, 0, 0), "reserve") ||
	    !CVT_CU(cuMemCreate(&a, half, &prop, 0), "cuMemCreate") ||
	    !CVT_CU(cuMemCreate(&b, half, &prop, 0), "cuMemCreate") ||
	    !CVT_CU(cuMemMap(p->d, half, 0, a, 0), "cuMemMap") ||
	    !CVT_CU(cuMemMap(p->d + half, half, 0, b, 0), "cuMemMap") ||
	    !CVT_CU(cuMemMap(p->alias, half, 0, a, 0), "cuMemMap alias") ||
	    !CVT_CU(cuMemSetAccess(p->d, 2 * half, &acc, 1), "access") ||
	    !CVT_CU(cuMemSetAccess(p->alias, half, &acc, 1), "access") ||
	    !CVT_CU(cuMemRelease(a), "cuMemRelease") ||
	    !CVT_CU(cuMemRelease(b), "cuMemRelease"))
		cvt_bail("-V: cannot set up the buffer");
	p->ha = malloc(PAGE_BYTES);
	if (!p->ha)
		cvt_bail("malloc");
}

static void setup(struct pc *p, uint64_t mib, const char *module)
{
	CUmodule m = cvt_load(module);
	size_t gsize = 0;
	uint64_t i;

	p->words = mib * CVT_MiB / 4;
	p->npages = mib * CVT_MiB / PAGE_BYTES;
	p->hot = p->npages;

	p->inc = cvt_func(m, "page_inc");
	p->winc = cvt_func(m, "words_inc");
	p->gadd = cvt_func(m, "global_add");
	if (cuModuleGetGlobal(&p->g, &gsize, m, "g_value") != CUDA_SUCCESS ||
	    gsize != sizeof(int))
		cvt_bail("cuModuleGetGlobal(g_value) failed");
	p->h = malloc(p->words * 4);
	if (!p->h)
		cvt_bail("malloc of %llu MiB failed", (unsigned long long)mib);
	for (i = 0; i < p->words; i++)
		p->h[i] = want_word(i, 0);
	if (p->vmm)
		setup_vmm(p);
	else if (!CVT_CU(cuMemAlloc(&p->d, p->words * 4), "cuMemAlloc of %llu MiB",
			 (unsigned long long)mib))
		cvt_bail("cannot allocate the buffer");
	if (!CVT_CU(cuMemcpyHtoD(p->d, p->h, p->words * 4),
		    "cuMemcpyHtoD of the initial pattern"))
		cvt_bail("cannot set up the buffer");
}

static int usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [-m MIB] [-H MIB] [-W] [-Z] [-t SECONDS] "
		"[-v ROUNDS] [-V] [MODULE]\n", argv0);
	return 2;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal,
				.sa_flags = SA_RESTART };
	char path[PATH_MAX];
	const struct cv_region_hdr *rh;
	struct pc p = { 0 };
	double seconds = 2;
	uint64_t mib = 64, hot = 0, every = 16, rounds = 0, fails = 0, bad = 0;
	uint64_t t_end, next_print, now;
	CUdevice dev;
	CUcontext ctx;
	CUresult r;
	char *end;
	int opt;

	while ((opt = getopt(argc, argv, "m:H:t:v:VWZ")) != -1) {
		errno = 0;
		end = "";
		if (opt == 'V')
			p.vmm = true;
		else if (opt == 'W')
			g_rewrite = true;
		else if (opt == 'Z')
			g_small = true;
		else if (opt == 'm')
			mib = strtoull(optarg, &end, 10);
		else if (opt == 'H')
			hot = strtoull(optarg, &end, 10);
		else if (opt == 't')
			seconds = strtod(optarg, &end);
		else if (opt == 'v')
			every = strtoull(optarg, &end, 10);
		else
			return usage(argv[0]);
		if (*end || errno || mib < 1 || mib > 65536 || hot > mib ||
		    every < 1 ||
		    every > 1000000 || !(seconds >= 0 && seconds < 1e7))
			return usage(argv[0]);
	}
	cvt_module_path(argc, argv, optind, path, sizeof(path));
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	printf("# guest_pid %d\n", (int)getpid());
	fflush(stdout);
	cvt_setup(&dev, &ctx);
	rh = cvt_region();
	printf("# worker_pid %u\n", rh ? rh->worker_pid : 0);
	fflush(stdout);
	setup(&p, mib, path);
	if (hot) {
		p.hot = hot * CVT_MiB / PAGE_BYTES;
		g_hot_words = p.hot * CVK_PAGE_WORDS;
	}

	now = cvt_now_ns();
	t_end = now + (uint64_t)(seconds * 1e9);
	next_print = now + PRINT_NS;
	while (!g_stop && (seconds <= 0 || now < t_end)) {
		r = round_once(&p);
		if (r != CUDA_SUCCESS) {
			cvt_note("round %llu: %s (%d)",
				 (unsigned long long)rounds + 1, cvt_errname(r),
				 (int)r);
			fails++;
			break;
		}
		rounds++;
		if (rounds == 1 || rounds % every == 0) {
			if (!verify(&p, rounds)) {
				bad++;
				break;
			}
			if (rounds == 1) {
				printf("# ready\n");
				fflush(stdout);
			}
		}
		now = cvt_now_ns();
		if (now >= next_print) {
			printf("# rounds %llu %llu\n", (unsigned long long)rounds,
			       (unsigned long long)wall_ns());
			fflush(stdout);
			next_print = now + PRINT_NS;
		}
	}

	printf("# rounds %llu\n", (unsigned long long)rounds);
	cvt_note("%llu rounds over %llu pages%s", (unsigned long long)rounds,
		 (unsigned long long)p.npages, g_stop ? ", stopped by a signal"
						      : "");
	cvt_check(!fails, "no call failed while counting");
	cvt_check(!bad, "every periodic check found every page counted once "
		  "per round");
	cvt_check(rounds > 0, "at least one round completed");
	cvt_check(!fails && verify(&p, rounds), "the final check found every "
		  "page counted once per round and the pattern intact");
	if (p.vmm) {
		size_t half = p.words * 4 / 2;

		CVT_CU(cuMemUnmap(p.d, half), "cuMemUnmap");
		CVT_CU(cuMemUnmap(p.d + half, half), "cuMemUnmap");
		CVT_CU(cuMemUnmap(p.alias, half), "cuMemUnmap alias");
		CVT_CU(cuMemAddressFree(p.d, 2 * half), "cuMemAddressFree");
		CVT_CU(cuMemAddressFree(p.alias, half), "cuMemAddressFree");
		free(p.ha);
	} else {
		CVT_CU(cuMemFree(p.d), "cuMemFree");
	}
	free(p.h);
	return cvt_done();
}

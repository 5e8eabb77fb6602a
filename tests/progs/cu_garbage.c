/* SPDX-License-Identifier: MIT */
/*
 * A guest that writes garbage over its own shared region. After cuInit and
 * some good work it fills the region's guest-writable part (ring control
 * words and futex words, the callback queue, staging chunk states, reply
 * slots and the ring itself; not the read-only header page) with random
 * bytes, then keeps making calls. Every call must return (a CUDA error, or
 * the "vGPU lost" error; success is allowed), never hang: a watchdog
 * turns a hang into a failure. A round of calls that all succeeded must
 * have produced the right data, and a final read of data written before
 * the corruption must either fail or return the data intact.
 *
 *	cu_garbage [-s SEED] [-r ROUNDS] [-p all|ctl|ring|replies] [-c]
 *	           [MODULE]
 *
 * -c: instead of scribbling between rounds, a thread keeps writing random
 * 64-byte pieces over the part while the calls run, so that commands are
 * corrupted between the producer's commit and the worker's read. The
 * program's own commands may then be altered into other valid ones, so
 * wrong data is no failure in this mode (it is noted).
 *
 * tests/run.sh runs it under cuvisor while another tenant works, and then
 * checks that the worker did not crash (exit status 0 or 3 in the daemon
 * log, never a signal). Natively, or when the region is not at
 * CV_REGION_ADDR, there is nothing to corrupt and the checks are skipped.
 */
#include <sched.h>
#include <signal.h>

#include "cvtest.h"

#define WATCHDOG_S 45
#define CV_MIN(a, b) ((a) < (b) ? (a) : (b))

static void on_alarm(int sig)
{
	static const char msg[] =
		"not ok - calls after the corruption returned (no hang)\n"
		"#   the watchdog fired: a call hung\n";
	ssize_t r = write(1, msg, sizeof(msg) - 1);

	(void)r;
	(void)sig;
	_exit(1);
}

/* True when [addr, addr + len) is mapped writable (from /proc/self/maps). */
static bool writable(uint64_t addr, uint64_t len)
{
	unsigned long long lo, hi;
	char line[512], perm[8];
	FILE *f = fopen("/proc/self/maps", "r");
	bool ok = false;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx-%llx %7s", &lo, &hi, perm) != 3)
			continue;
		if (lo <= addr && addr + len <= hi && perm[1] == 'w') {
			ok = true;
			break;
		}
	}
	fclose(f);
	return ok;
}

struct scribbler {
	uint64_t off, len, seed;
	int stop;
	unsigned long writes;
};

static void *scribble_thread(void *p)
{
	struct scribbler *sc = p;
	uint8_t *base = (uint8_t *)(uintptr_t)(CV_REGION_ADDR + sc->off);

	const struct cv_ring_ctl *ctl = (const void *)(uintptr_t)
		(CV_REGION_ADDR + CV_RING_CTL_OFF);

	while (!__atomic_load_n(&sc->stop, __ATOMIC_RELAXED)) {
		uint64_t at = (cvt_rand(&sc->seed) % (sc->len - 64)) & ~7ull;

		/* In the ring, half of the pieces land just behind or ahead
		 * of the producer's tail: on records in flight. */
		if (sc->off == CV_RING_OFF && (cvt_rand(&sc->seed) & 1)) {
			uint64_t tail = __atomic_load_n(&ctl->tail,
							__ATOMIC_RELAXED);

			at = (tail + CV_RING_SIZE - 512 +
			      cvt_rand(&sc->seed) % 1024) % CV_RING_SIZE;
			at = CV_MIN(at & ~7ull, sc->len - 64);
		}

		for (int i = 0; i < 8; i++) {
			uint64_t v = cvt_rand(&sc->seed);

			memcpy(base + at + 8 * i, &v, 8);
		}
		sc->writes++;
		if (!(sc->writes & 63))
			sched_yield();
	}
	return NULL;
}

static void scribble(uint64_t off, uint64_t len, uint64_t *seed)
{
	uint8_t *p = (uint8_t *)(uintptr_t)(CV_REGION_ADDR + off);

	for (uint64_t i = 0; i + 8 <= len; i += 8) {
		uint64_t v = cvt_rand(seed);

		memcpy(p + i, &v, 8);
	}
}

struct tally {
	unsigned ok, err;
	unsigned round_err; /* errors in the current round */
	unsigned wrong;     /* rounds whose calls all succeeded, wrongly */
	CUresult last_err;
};

static void count(struct tally *t, CUresult r)
{
	if (r == CUDA_SUCCESS) {
		t->ok++;
	} else {
		t->err++;
		t->round_err++;
		t->last_err = r;
	}
}

/* A mix of calls: synchronous, asynchronous, with and without replies. */
static void calls(struct tally *t, CUfunction fill, CUdeviceptr scratch)
{
	CUdeviceptr x = 0;
	CUstream s = NULL;
	CUevent e = NULL;
	uint8_t buf[4096];
	size_t fr, tot;

	t->round_err = 0;
	memset(buf, 1, sizeof(buf));
	count(t, cuMemAlloc(&x, 4096));
	count(t, cuMemcpyHtoD(scratch, buf, sizeof(buf)));
	count(t, cvt_fill(fill, scratch, 5, 1024, NULL));
	count(t, cuCtxSynchronize());
	if (cuStreamCreate(&s, CU_STREAM_NON_BLOCKING) == CUDA_SUCCESS) {
		count(t, cuMemsetD8Async(scratch, 0, 4096, s));
		count(t, cuStreamQuery(s));
		count(t, cuStreamSynchronize(s));
		count(t, cuStreamDestroy(s));
	} else {
		t->err++;
	}
	if (cuEventCreate(&e, 0) == CUDA_SUCCESS) {
		count(t, cuEventRecord(e, NULL));
		count(t, cuEventSynchronize(e));
		count(t, cuEventDestroy(e));
	} else {
		t->err++;
	}
	count(t, cuMemcpyDtoH(buf, scratch, sizeof(buf)));
	count(t, cuMemGetInfo(&fr, &tot));
	if (x)
		count(t, cuMemFree(x));
	count(t, cuCtxSynchronize());
	/* If everything claimed success, the memset's zeros were read. */
	if (!t->round_err)
		for (size_t i = 0; i < sizeof(buf); i++)
			if (buf[i]) {
				t->wrong++;
				break;
			}
}

int main(int argc, char **argv)
{
	char path[PATH_MAX];
	const char *part = "all";
	const struct cv_region_hdr *rh;
	uint64_t seed = 0, off, len;
	int rounds = 3, opt;
	bool concurrent = false;
	struct scribbler sc;
	pthread_t sth;
	struct tally t = { 0, 0, 0, 0, CUDA_SUCCESS };
	CUdevice dev;
	CUcontext ctx;
	CUfunction fill;
	CUdeviceptr keep = 0, scratch = 0;
	uint32_t *back;
	CUresult r;

	while ((opt = getopt(argc, argv, "s:r:p:c")) != -1) {
		switch (opt) {
		case 'c': concurrent = true; break;
		case 's': seed = strtoull(optarg, NULL, 0); break;
		case 'r': rounds = atoi(optarg); break;
		case 'p': part = optarg; break;
		default:
			fprintf(stderr, "usage: %s [-s SEED] [-r ROUNDS] "
				"[-p all|ctl|ring|replies] [-c] [MODULE]\n",
				argv[0]);
			return 2;
		}
	}
	if (!seed)
		seed = cvt_now_ns() ^ (uint64_t)getpid() << 32;
	cvt_module_path(argc, argv, optind, path, sizeof(path));
	cvt_setup(&dev, &ctx);
	fill = cvt_func(cvt_load(path), "fill_pattern");
	back = malloc(1 << 20);
	if (!back || cuMemAlloc(&keep, 1 << 20) || cuMemAlloc(&scratch, 4096))
		cvt_bail("setup failed");
	CVT_CU(cvt_fill(fill, keep, 1234, (1 << 20) / 4, NULL),
	       "fill before the corruption");
	CVT_CU(cuMemcpyDtoH(back, keep, 1 << 20), "read before the corruption");
	cvt_check_pattern(back, (1 << 20) / 4, 1234, "good work before");

	rh = cvt_region();
	if (!rh) {
		cvt_skip("not under cuvisor (no region at CV_REGION_ADDR)",
			 "calls after the corruption returned (no hang)");
		return cvt_done();
	}
	printf("# worker_pid %u\n# seed 0x%llx\n", rh->worker_pid,
	       (unsigned long long)seed);
	fflush(stdout);
	if (!strcmp(part, "ctl")) {
		off = CV_RING_CTL_OFF;
		len = CV_REPLY_OFF - CV_RING_CTL_OFF;
	} else if (!strcmp(part, "replies")) {
		off = CV_REPLY_OFF;
		len = CV_RING_OFF - CV_REPLY_OFF;
	} else if (!strcmp(part, "ring")) {
		off = CV_RING_OFF;
		len = CV_RING_SIZE;
	} else {
		off = CV_RING_CTL_OFF;
		len = CV_STAGING_OFF - CV_RING_CTL_OFF;
	}
	if (!writable(CV_REGION_ADDR + off, len)) {
		cvt_skip("the region is not writable by the guest",
			 "calls after the corruption returned (no hang)");
		return cvt_done();
	}

	signal(SIGALRM, on_alarm);
	alarm(WATCHDOG_S);
	sc = (struct scribbler){ off, len, seed, 0, 0 };
	if (concurrent && pthread_create(&sth, NULL, scribble_thread, &sc))
		cvt_bail("pthread_create");
	for (int i = 0; i < rounds; i++) {
		if (!concurrent)
			scribble(off, len, &seed);
		calls(&t, fill, scratch);
		cvt_note("round %d: %u calls succeeded, %u failed (last %s)", i,
			 t.ok, t.err, cvt_errname(t.last_err));
	}
	if (concurrent) {
		__atomic_store_n(&sc.stop, 1, __ATOMIC_RELAXED);
		pthread_join(sth, NULL);
		cvt_note("%lu concurrent scribbles; %u rounds with wrong data",
			 sc.writes, t.wrong);
	}
	/* Reaching this line is the check; on_alarm() reports its failure
	 * under the same description. */
	cvt_check(true, "calls after the corruption returned (no hang)");
	if (!concurrent)
		cvt_check(!t.wrong,
			  "no round of calls succeeded with wrong data");
	/* Whether the corruption is noticed depends on timing: the guest
	 * rewrites the ring's tail and the reply slots it uses, and the
	 * worker may never have looked at the garbage. Errors or right
	 * results are both fine; silently wrong results are not (above). */
	cvt_note("%u calls failed after the corruption", t.err);
	memset(back, 0, 1 << 20);
	r = cuMemcpyDtoH(back, keep, 1 << 20);
	cvt_note("final read: %s", cvt_errname(r));
	cvt_check(r != CUDA_SUCCESS ||
		  cvt_find_pattern_err(back, (1 << 20) / 4, 1234) < 0,
		  "a final read fails or returns intact data");
	/* Still bounded by the watchdog: tearing down must not hang. */
	cuCtxSynchronize();
	return cvt_done();
}

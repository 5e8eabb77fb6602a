/* SPDX-License-Identifier: MIT */
/*
 * Streams verified work for a while: the victim of the kill test and the
 * "other tenant" of the kill and garbage tests (tests/run.sh).
 *
 *	cu_streamer [-t SECONDS] [MODULE]
 *
 * Each round queues 8 fill_pattern launches and 8 async copies into
 * pinned memory on two streams, synchronises and checks all 8 results.
 * Prints "# guest_pid N" and, under cuvisor, "# worker_pid N", then
 * "# ready" after the first verified round (the kill test waits for it).
 * -t 0 runs until killed. Exits 0 when every round was right.
 */
#include "cvtest.h"

#define WORDS (256u << 10) /* 1 MiB per buffer */
#define DEPTH 8

int main(int argc, char **argv)
{
	char path[PATH_MAX];
	const struct cv_region_hdr *rh;
	double seconds = 5;
	uint64_t t_end, rounds = 0, bad = 0, fails = 0;
	CUdevice dev;
	CUcontext ctx;
	CUfunction fill;
	CUstream s[2];
	CUdeviceptr d[DEPTH];
	uint32_t *h;
	int opt;

	while ((opt = getopt(argc, argv, "t:")) != -1) {
		if (opt != 't') {
			fprintf(stderr, "usage: %s [-t SECONDS] [MODULE]\n",
				argv[0]);
			return 2;
		}
		seconds = atof(optarg);
	}
	cvt_module_path(argc, argv, optind, path, sizeof(path));
	printf("# guest_pid %d\n", (int)getpid());
	fflush(stdout);
	cvt_setup(&dev, &ctx);
	rh = cvt_region();
	printf("# worker_pid %u\n", rh ? rh->worker_pid : 0);
	fflush(stdout);
	fill = cvt_func(cvt_load(path), "fill_pattern");
	if (cuStreamCreate(&s[0], CU_STREAM_NON_BLOCKING) ||
	    cuStreamCreate(&s[1], CU_STREAM_NON_BLOCKING) ||
	    cuMemAllocHost((void **)&h, (size_t)DEPTH * WORDS * 4))
		cvt_bail("setup failed");
	for (int i = 0; i < DEPTH; i++)
		if (cuMemAlloc(&d[i], WORDS * 4))
			cvt_bail("cuMemAlloc failed");

	t_end = cvt_now_ns() + (uint64_t)(seconds * 1e9);
	do {
		for (int i = 0; i < DEPTH; i++) {
			uint32_t seed = (uint32_t)(rounds * DEPTH + i);
			CUstream st = s[i & 1];

			memset(h + (size_t)i * WORDS, 0, 64);
			fails += cvt_fill(fill, d[i], seed, WORDS, st) !=
				 CUDA_SUCCESS;
			fails += cuMemcpyDtoHAsync(h + (size_t)i * WORDS, d[i],
						   WORDS * 4, st) != CUDA_SUCCESS;
		}
		fails += cuStreamSynchronize(s[0]) != CUDA_SUCCESS;
		fails += cuStreamSynchronize(s[1]) != CUDA_SUCCESS;
		for (int i = 0; i < DEPTH; i++)
			bad += cvt_find_pattern_err(h + (size_t)i * WORDS, WORDS,
						    (uint32_t)(rounds * DEPTH + i)) >= 0;
		if (fails || bad)
			break;
		if (!rounds) {
			printf("# ready\n");
			fflush(stdout);
		}
		rounds++;
	} while (seconds <= 0 || cvt_now_ns() < t_end);

	cvt_note("%llu rounds", (unsigned long long)rounds);
	cvt_check(!fails, "no call failed while streaming");
	cvt_check(!bad, "every round's results were right");
	cvt_check(rounds > 0, "at least one round completed");
	return cvt_done();
}

/* SPDX-License-Identifier: MIT */
/*
 * Deferred launch errors. A launch with an invalid configuration must
 * fail, either at once (the real driver checks it in cuLaunchKernel) or at
 * the next synchronising call (cuvisor may queue the launch first), and
 * the error must not be sticky: the next good launch works. On a GPU, an
 * out-of-bounds write surfaces CUDA_ERROR_ILLEGAL_ADDRESS at the next
 * synchronisation, and the context stays broken (that check runs last).
 */
#include "cvtest.h"

static CUfunction vec_add, write_at;
static CUstream stream;
static CUdeviceptr da, db, dc;
static uint32_t n = 100000;

static bool good_launch_works(const char *after)
{
	float *c = malloc(n * 4);
	void *args[] = { &da, &db, &dc, &n };
	bool ok;
	uint32_t i;

	ok = !cuMemsetD32Async(dc, 0, n, stream) &&
	     !cuLaunchKernel(vec_add, 64, 1, 1, 128, 1, 1, 0, stream, args,
			     NULL) &&
	     !cuMemcpyDtoHAsync(c, dc, n * 4, stream) &&
	     !cuStreamSynchronize(stream);
	for (i = 0; ok && i < n; i++)
		ok = c[i] == 3.0f;
	free(c);
	return cvt_check(ok, "a good launch works after %s", after);
}

static void bad_config(unsigned gx, unsigned gy, unsigned gz, unsigned bx,
		       unsigned by, unsigned bz, unsigned shmem,
		       const char *what)
{
	void *args[] = { &da, &db, &dc, &n };
	CUresult r;

	r = cuLaunchKernel(vec_add, gx, gy, gz, bx, by, bz, shmem, stream, args,
			   NULL);
	cvt_error_now_or_at_sync(r, "%s is an error", what);
	good_launch_works(what);
}

int main(int argc, char **argv)
{
	char path[PATH_MAX];
	CUdevice dev;
	CUcontext ctx;
	CUmodule mod;
	CUresult r, r2;
	void *none[1] = { NULL };

	cvt_module_path(argc, argv, 1, path, sizeof(path));
	cvt_setup(&dev, &ctx);
	mod = cvt_load(path);
	vec_add = cvt_func(mod, "vec_add");
	write_at = cvt_func(mod, "write_at");
	if (cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING) ||
	    cuMemAlloc(&da, n * 4) || cuMemAlloc(&db, n * 4) ||
	    cuMemAlloc(&dc, n * 4) ||
	    cuMemsetD32(da, 0x3f800000, n) ||  /* 1.0f */
	    cuMemsetD32(db, 0x40000000, n))    /* 2.0f */
		cvt_bail("setup failed");
	good_launch_works("setup");

	bad_config(1, 1, 1, 2048, 1, 1, 0, "a block of 2048 threads");
	bad_config(1, 1, 1, 32, 32, 2, 0, "a 32x32x2 block");
	bad_config(1, 1, 1, 1, 1, 128, 0, "block z of 128");
	bad_config(0, 1, 1, 32, 1, 1, 0, "a grid of 0 blocks");
	bad_config(1, 1, 1, 0, 1, 1, 0, "a block of 0 threads");
	bad_config(1, 70000, 1, 32, 1, 1, 0, "grid y of 70000");
	bad_config(1, 1, 1, 32, 1, 1, 1u << 30, "1 GiB of shared memory");

	/* A NULL function is refused. */
	r = cuLaunchKernel(NULL, 1, 1, 1, 1, 1, 1, 0, stream, none, NULL);
	cvt_error_now_or_at_sync(r, "launching a NULL function is an error");
	good_launch_works("a NULL function");

	/* Errors of queued work are reported by the next sync on a stream
	 * too, and only once. */
	{
		void *args[] = { &da, &db, &dc, &n };

		r = cuLaunchKernel(vec_add, 1, 1, 1, 4096, 1, 1, 0, stream, args,
				   NULL);
		r2 = cuStreamSynchronize(stream);
		cvt_check(r != CUDA_SUCCESS || r2 != CUDA_SUCCESS,
			  "bad launch reported at launch or stream sync");
		cvt_cu(cuStreamSynchronize(stream), CUDA_SUCCESS,
		       "the next stream sync is clean");
		cvt_cu(cuCtxSynchronize(), CUDA_SUCCESS,
		       "the next context sync is clean");
	}

	if (cvt_host_backend()) {
		cvt_skip("host backend kernels run in the worker process",
			 "out-of-bounds write surfaces ILLEGAL_ADDRESS at sync");
		cvt_skip("host backend kernels run in the worker process",
			 "the error is sticky");
	} else {
		/* 0x1000 is never mapped on the GPU. */
		CUdeviceptr wild = 0x1000;
		uint64_t idx = 0;
		uint32_t v = 1;
		void *args[] = { &wild, &idx, &v };

		r = cuLaunchKernel(write_at, 1, 1, 1, 1, 1, 1, 0, stream, args,
				   NULL);
		cvt_cu(r, CUDA_SUCCESS, "the out-of-bounds launch is queued");
		r2 = cuStreamSynchronize(stream);
		cvt_cu(r2, CUDA_ERROR_ILLEGAL_ADDRESS,
		       "out-of-bounds write surfaces ILLEGAL_ADDRESS at sync");
		cvt_cu(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS,
		       "the error is sticky");
	}
	return cvt_done();
}

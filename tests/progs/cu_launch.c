/* SPDX-License-Identifier: MIT */
/*
 * Launches: parameter packing of odd sizes and alignments (kernelParams
 * and the `extra` buffer form), cuFuncGetParamInfo, cuLaunchKernelEx with
 * an attribute, many queued launches losing none, function attributes and
 * occupancy, and host functions / stream callbacks running in stream order.
 */
#include "cvtest.h"

static CUfunction fill, probe, vec_add, page_inc, spin;
static CUstream stream;

struct probe_vals {
	char c;
	short s;
	double d;
	struct cvk_s24 st;
	uint8_t u8;
	float f;
	int64_t ll;
};

static const struct probe_vals pv = {
	.c = (char)-7, .s = -12345, .d = -3.25e300,
	.st = { .i = 0x12345678, .f = 1.5f, .d = -2.5e-300, .s = 0x7abc,
		.c = "abcde" },
	.u8 = 0xa5, .f = 6.5f, .ll = 0x0123456789abcdefll,
};

/* Reads back the probe's output and compares every field. */
static void check_probe_out(CUdeviceptr out, const char *how)
{
	uint8_t b[CVK_PROBE_SIZE];
	uint64_t ptr;
	uint32_t magic;

	memset(b, 0, sizeof(b));
	if (!CVT_CU(cuMemcpyDtoH(b, out, sizeof(b)), "read probe (%s)", how))
		return;
	memcpy(&magic, b + CVK_PROBE_MAGIC, 4);
	cvt_check(magic == CVK_PROBE_MAGIC_VAL, "probe ran (%s)", how);
	cvt_check_mem(b + CVK_PROBE_C, &pv.c, 1, "char parameter (%s)", how);
	cvt_check_mem(b + CVK_PROBE_S, &pv.s, 2, "short parameter (%s)", how);
	cvt_check_mem(b + CVK_PROBE_D, &pv.d, 8, "double parameter (%s)", how);
	cvt_check_mem(b + CVK_PROBE_ST, &pv.st, sizeof(pv.st),
		      "24-byte struct parameter (%s)", how);
	cvt_check_mem(b + CVK_PROBE_U8, &pv.u8, 1, "u8 parameter (%s)", how);
	memcpy(&ptr, b + CVK_PROBE_PTR, 8);
	cvt_check(ptr == out, "pointer parameter (%s)", how);
	cvt_check_mem(b + CVK_PROBE_F, &pv.f, 4, "float parameter (%s)", how);
	cvt_check_mem(b + CVK_PROBE_LL, &pv.ll, 8, "int64 parameter (%s)", how);
}

static void check_params(void)
{
	static const size_t want_off[] = { 0, 2, 8, 16, 40, 48, 56, 64 };
	static const size_t want_size[] = { 1, 2, 8, 24, 1, 8, 4, 8 };
	CUdeviceptr out;
	struct probe_vals v = pv;
	void *args[] = { &v.c, &v.s, &v.d, &v.st, &v.u8, &out, &v.f, &v.ll };
	uint8_t buf[CVK_PROBE_PARAM_BYTES];
	size_t bufsize = sizeof(buf), off, size;
	void *extra[] = { CU_LAUNCH_PARAM_BUFFER_POINTER, buf,
			  CU_LAUNCH_PARAM_BUFFER_SIZE, &bufsize,
			  CU_LAUNCH_PARAM_END };
	int bad = 0;

	for (size_t i = 0; i < CVT_ARRAY_SIZE(want_off); i++) {
		off = size = 999;
		if (cuFuncGetParamInfo(probe, i, &off, &size) != CUDA_SUCCESS ||
		    off != want_off[i] || size != want_size[i]) {
			bad++;
			cvt_note("param %zu: offset %zu size %zu", i, off, size);
		}
	}
	cvt_check(!bad, "cuFuncGetParamInfo gives CUDA's layout");
	cvt_check(cuFuncGetParamInfo(probe, 8, &off, &size) != CUDA_SUCCESS,
		  "cuFuncGetParamInfo past the last parameter fails");

	if (cuMemAlloc(&out, CVK_PROBE_SIZE))
		cvt_bail("cuMemAlloc");
	CVT_CU(cuMemsetD8(out, 0, CVK_PROBE_SIZE), "clear");
	CVT_CU(cuLaunchKernel(probe, 1, 1, 1, 1, 1, 1, 0, stream, args, NULL),
	       "launch params_probe with kernelParams");
	/* The launch must have copied the parameters: change them now. */
	memset(&v, 0, sizeof(v));
	CVT_CU(cuStreamSynchronize(stream), "sync");
	check_probe_out(out, "kernelParams");

	/* The same through one packed buffer (the `extra` form). */
	memset(buf, 0, sizeof(buf));
	memcpy(buf + 0, &pv.c, 1);
	memcpy(buf + 2, &pv.s, 2);
	memcpy(buf + 8, &pv.d, 8);
	memcpy(buf + 16, &pv.st, 24);
	memcpy(buf + 40, &pv.u8, 1);
	memcpy(buf + 48, &out, 8);
	memcpy(buf + 56, &pv.f, 4);
	memcpy(buf + 64, &pv.ll, 8);
	CVT_CU(cuMemsetD8(out, 0, CVK_PROBE_SIZE), "clear");
	CVT_CU(cuLaunchKernel(probe, 1, 1, 1, 1, 1, 1, 0, stream, NULL, extra),
	       "launch params_probe with extra");
	CVT_CU(cuStreamSynchronize(stream), "sync");
	check_probe_out(out, "extra buffer");
	cuMemFree(out);
}

static void check_vec_add(void)
{
	uint32_t n = (1 << 20) + 3;
	float *a = malloc(n * 4), *b = malloc(n * 4), *c = malloc(n * 4);
	CUdeviceptr da, db, dc;
	void *args[] = { &da, &db, &dc, &n };
	CUlaunchConfig cfg;
	CUlaunchAttribute at[1];
	int least = 0, greatest = 0, bad = 0;

	for (uint32_t i = 0; i < n; i++) {
		a[i] = (float)i;
		b[i] = (float)(2 * i) + 0.5f;
	}
	if (cuMemAlloc(&da, n * 4) || cuMemAlloc(&db, n * 4) ||
	    cuMemAlloc(&dc, n * 4))
		cvt_bail("cuMemAlloc");
	cuMemcpyHtoD(da, a, n * 4);
	cuMemcpyHtoD(db, b, n * 4);
	/* A pageable cuMemcpyHtoD may return before its DMA has landed, and
	 * `stream` does not wait for the legacy stream: order them. */
	CVT_CU(cuCtxSynchronize(), "copies landed");
	CVT_CU(cuLaunchKernel(vec_add, 256, 1, 1, 256, 1, 1, 0, stream, args,
			      NULL), "launch vec_add");
	CVT_CU(cuMemcpyDtoHAsync(c, dc, n * 4, stream), "copy back");
	CVT_CU(cuStreamSynchronize(stream), "sync");
	for (uint32_t i = 0; i < n; i++)
		bad += c[i] != a[i] + b[i];
	cvt_check(!bad, "vec_add result");

	/* cuLaunchKernelEx with a priority attribute. */
	cuCtxGetStreamPriorityRange(&least, &greatest);
	memset(&cfg, 0, sizeof(cfg));
	memset(at, 0, sizeof(at));
	at[0].id = CU_LAUNCH_ATTRIBUTE_PRIORITY;
	at[0].value.priority = greatest;
	cfg.gridDimX = 1000;
	cfg.gridDimY = cfg.gridDimZ = 1;
	cfg.blockDimX = 128;
	cfg.blockDimY = cfg.blockDimZ = 1;
	cfg.hStream = stream;
	cfg.attrs = at;
	cfg.numAttrs = 1;
	CVT_CU(cuMemsetD32Async(dc, 0, n, stream), "clear c");
	CVT_CU(cuLaunchKernelEx(&cfg, vec_add, args, NULL),
	       "cuLaunchKernelEx with CU_LAUNCH_ATTRIBUTE_PRIORITY");
	CVT_CU(cuMemcpyDtoHAsync(c, dc, n * 4, stream), "copy back");
	CVT_CU(cuStreamSynchronize(stream), "sync");
	bad = 0;
	for (uint32_t i = 0; i < n; i++)
		bad += c[i] != a[i] + b[i];
	cvt_check(!bad, "vec_add result through cuLaunchKernelEx");
	cuMemFree(da);
	cuMemFree(db);
	cuMemFree(dc);
	free(a);
	free(b);
	free(c);
}

/* 5000 queued launches incrementing page counters: none lost, in order. */
static void check_many_launches(void)
{
	enum { NL = 5000, PAGES = 64 };
	CUdeviceptr d;
	uint64_t np = PAGES;
	void *args[] = { &d, &np };
	uint32_t *h = malloc(PAGES * 4096);
	int fails = 0, bad = 0;

	if (cuMemAlloc(&d, PAGES * 4096))
		cvt_bail("cuMemAlloc");
	CVT_CU(cuMemsetD32(d, 0, PAGES * 1024), "clear");
	for (int i = 0; i < NL; i++)
		fails += cuLaunchKernel(page_inc, 2, 1, 1, 32, 1, 1, 0,
					stream, args, NULL) != CUDA_SUCCESS;
	cvt_check(!fails, "5000 launches queued");
	CVT_CU(cuMemcpyDtoHAsync(h, d, PAGES * 4096, stream), "copy back");
	CVT_CU(cuStreamSynchronize(stream), "sync");
	for (int p = 0; p < PAGES; p++) {
		bad += h[p * 1024] != NL;
		bad += h[p * 1024 + 1] != 0;
	}
	cvt_check(!bad, "every page counter is 5000");
	cuMemFree(d);
	free(h);
}

static void check_attrs(void)
{
	int v = -1, nb = -1, minGrid = -1, blk = -1;

	CVT_CU(cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK,
				  vec_add), "cuFuncGetAttribute(MAX_THREADS)");
	cvt_check(v >= 64, "vec_add allows >= 64 threads per block");
	v = -1;
	CVT_CU(cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_NUM_REGS, vec_add),
	       "cuFuncGetAttribute(NUM_REGS)");
	cvt_check(v >= 0, "register count is not negative");
	CVT_CU(cuFuncSetAttribute(vec_add,
				  CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
				  8192), "cuFuncSetAttribute(MAX_DYNAMIC_SHARED)");
	CVT_CU(cuFuncSetCacheConfig(vec_add, CU_FUNC_CACHE_PREFER_L1),
	       "cuFuncSetCacheConfig");
	CVT_CU(cuOccupancyMaxActiveBlocksPerMultiprocessor(&nb, vec_add, 256, 0),
	       "cuOccupancyMaxActiveBlocksPerMultiprocessor");
	cvt_check(nb >= 1, "at least one block of 256 fits on an SM");
	CVT_CU(cuOccupancyMaxPotentialBlockSize(&minGrid, &blk, vec_add, NULL,
						0, 0),
	       "cuOccupancyMaxPotentialBlockSize");
	cvt_check(blk >= 32 && minGrid >= 1, "potential block size is sane");
}

/* Host functions and stream callbacks, in stream order. */
struct cb_log {
	int order[8];
	int n;
	uint32_t seen_first;  /* h[0] as the first host function saw it */
	CUstream cb_stream;
	CUresult cb_status;
	const uint32_t *h;
};

static void CUDA_CB host_fn1(void *p)
{
	struct cb_log *l = p;

	l->seen_first = l->h[0];
	l->order[l->n++] = 1;
}

static void CUDA_CB stream_cb(CUstream s, CUresult status, void *p)
{
	struct cb_log *l = p;

	l->cb_stream = s;
	l->cb_status = status;
	l->order[l->n++] = 2;
}

static void CUDA_CB host_fn3(void *p)
{
	struct cb_log *l = p;

	l->order[l->n++] = 3;
}

static void check_host_funcs(void)
{
	struct cb_log l;
	uint32_t *h;
	CUdeviceptr dh;

	if (cuMemHostAlloc((void **)&h, 4096, CU_MEMHOSTALLOC_DEVICEMAP) ||
	    cuMemHostGetDevicePointer(&dh, h, 0))
		cvt_bail("mapped memory");
	memset(&l, 0, sizeof(l));
	memset(h, 0, 4096);
	l.h = h;
	/* A slow kernel first, so that the callbacks would run too early
	 * if they were not ordered after it. */
	{
		uint64_t cyc = 20000000ull;
		CUdeviceptr none = 0;
		void *a[] = { &cyc, &none };

		CVT_CU(cuLaunchKernel(spin, 1, 1, 1, 1, 1, 1, 0, stream, a,
				      NULL), "launch spin");
	}
	CVT_CU(cvt_fill(fill, dh, 31337, 1024, stream),
	       "fill mapped memory before the host function");
	CVT_CU(cuLaunchHostFunc(stream, host_fn1, &l), "cuLaunchHostFunc 1");
	CVT_CU(cuStreamAddCallback(stream, stream_cb, &l, 0),
	       "cuStreamAddCallback 2");
	CVT_CU(cuLaunchHostFunc(stream, host_fn3, &l), "cuLaunchHostFunc 3");
	CVT_CU(cuStreamSynchronize(stream), "sync");
	cvt_check(l.n == 3 && l.order[0] == 1 && l.order[1] == 2 &&
		  l.order[2] == 3, "callbacks ran once each, in order");
	cvt_check(l.seen_first == cvk_pattern(31337, 0),
		  "host function ran after the kernel before it");
	cvt_check(l.cb_stream == stream, "stream callback got its stream");
	cvt_check(l.cb_status == CUDA_SUCCESS, "stream callback got SUCCESS");

	/* On the legacy default stream too. */
	memset(&l, 0, sizeof(l));
	l.h = h;
	CVT_CU(cuLaunchHostFunc(CU_STREAM_LEGACY, host_fn1, &l),
	       "cuLaunchHostFunc on CU_STREAM_LEGACY");
	CVT_CU(cuStreamAddCallback(0, stream_cb, &l, 0),
	       "cuStreamAddCallback on stream 0");
	CVT_CU(cuCtxSynchronize(), "cuCtxSynchronize");
	cvt_check(l.n == 2 && l.order[0] == 1 && l.order[1] == 2,
		  "default-stream callbacks ran in order");
	cuMemFreeHost(h);
}

int main(int argc, char **argv)
{
	char path[PATH_MAX];
	CUdevice dev;
	CUcontext ctx;
	CUmodule mod;

	cvt_module_path(argc, argv, 1, path, sizeof(path));
	cvt_setup(&dev, &ctx);
	mod = cvt_load(path);
	fill = cvt_func(mod, "fill_pattern");
	probe = cvt_func(mod, "params_probe");
	vec_add = cvt_func(mod, "vec_add");
	page_inc = cvt_func(mod, "page_inc");
	spin = cvt_func(mod, "spin");
	if (cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING))
		cvt_bail("cuStreamCreate");
	check_params();
	check_vec_add();
	check_many_launches();
	check_attrs();
	check_host_funcs();
	{
		void *none[1] = { NULL };

		CVT_CU(cuLaunchKernel(cvt_func(mod, "empty"), 1, 1, 1, 1, 1, 1,
				      1024, stream, none, NULL),
		       "empty kernel with dynamic shared memory");
	}
	CVT_CU(cuStreamSynchronize(stream), "final sync");
	CVT_CU(cuStreamDestroy(stream), "cuStreamDestroy");
	return cvt_done();
}

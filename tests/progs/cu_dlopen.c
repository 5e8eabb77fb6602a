/* SPDX-License-Identifier: MIT */
/*
 * A program that binds to the driver the way the CUDA runtime and PyTorch
 * do: dlopen("libcuda.so.1"), dlsym of a few names, then cuGetProcAddress
 * for everything else (with explicit versions and both default-stream
 * flavours), and does real work through the resolved pointers.
 *
 * Linked without libcuda (see tests/Makefile.inc): whatever libcuda.so.1
 * the search path finds is the one tested.
 */
#include <dlfcn.h>

#define CVT_DLOPEN
#include "cvtest.h"

#include <cudaTypedefs.h>

#define VER 12000 /* the version every lookup asks for */

static PFN_cuGetProcAddress_v12000 get_proc;

/* Looks name up at VER; checks status and a non-NULL pointer. */
static void *proc(const char *name, cuuint64_t flags)
{
	CUdriverProcAddressQueryResult st = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
	void *p = NULL;
	CUresult r = get_proc(name, &p, VER, flags, &st);

	cvt_check(r == CUDA_SUCCESS && st == CU_GET_PROC_ADDRESS_SUCCESS && p,
		  "cuGetProcAddress(%s, %d%s)", name, VER,
		  flags ? ", per-thread" : "");
	if (r != CUDA_SUCCESS || !p)
		cvt_bail("cannot go on without %s", name);
	return p;
}

static void check_lookups(void *h)
{
	CUdriverProcAddressQueryResult st = CU_GET_PROC_ADDRESS_SUCCESS;
	PFN_cuGetProcAddress_v11030 old_get_proc;
	void *p = (void *)1, *q;
	CUresult r;

	r = get_proc("", &p, VER, 0, &st);
	cvt_check(r != CUDA_ERROR_STUB_LIBRARY,
		  "an empty name is not answered with STUB_LIBRARY");
	p = (void *)1;
	r = get_proc("cuNoSuchFunction", &p, VER, 0, &st);
	cvt_note("unknown name: %s, status %d, pfn %p", cvt_errname(r), (int)st, p);
	/* As the real driver (580, CUDA 13.0) and cuda.h say: SUCCESS, a
	 * NULL pointer and the reason in the status. */
	cvt_check(r == CUDA_SUCCESS &&
		  st == CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND && !p,
		  "an unknown name gives SUCCESS, NULL, SYMBOL_NOT_FOUND");
	p = (void *)1;
	r = get_proc("cuLaunchKernelEx", &p, 11000, 0, &st);
	cvt_note("too old: %s, status %d, pfn %p", cvt_errname(r), (int)st, p);
	cvt_check(r == CUDA_SUCCESS &&
		  st == CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT && !p,
		  "a too old version gives SUCCESS, NULL, VERSION_NOT_SUFFICIENT");

	/* Stream-ordered calls have two flavours that differ in what the
	 * NULL stream means; they must be distinct functions. */
	p = proc("cuLaunchKernel", CU_GET_PROC_ADDRESS_DEFAULT);
	q = proc("cuLaunchKernel", CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM);
	cvt_check(p != q, "cuLaunchKernel: per-thread flavour is distinct");
	p = proc("cuMemcpyAsync", CU_GET_PROC_ADDRESS_DEFAULT);
	q = proc("cuMemcpyAsync", CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM);
	cvt_check(p != q, "cuMemcpyAsync: per-thread flavour is distinct");
	/* A call without a stream has one flavour. */
	p = proc("cuMemAlloc", CU_GET_PROC_ADDRESS_DEFAULT);
	q = proc("cuMemAlloc", CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM);
	cvt_check(p == q, "cuMemAlloc: both flavours are the same function");

	/* The 4-argument form (CUDA 11.3 .. 11.8 runtimes). */
	*(void **)&old_get_proc = dlsym(h, "cuGetProcAddress");
	cvt_check(old_get_proc != NULL, "dlsym(cuGetProcAddress)");
	if (old_get_proc) {
		p = NULL;
		r = old_get_proc("cuInit", &p, 11030, 0);
		cvt_check(r == CUDA_SUCCESS && p,
			  "4-argument cuGetProcAddress finds cuInit");
	}
}

/* vec_add through resolved pointers only. */
static void check_work(const char *path)
{
	PFN_cuDeviceGet_v2000 p_dev_get = proc("cuDeviceGet", 0);
	PFN_cuDevicePrimaryCtxRetain_v7000 p_retain =
		proc("cuDevicePrimaryCtxRetain", 0);
	PFN_cuCtxSetCurrent_v4000 p_set = proc("cuCtxSetCurrent", 0);
	PFN_cuModuleLoad_v2000 p_load = proc("cuModuleLoad", 0);
	PFN_cuModuleGetFunction_v2000 p_getf = proc("cuModuleGetFunction", 0);
	PFN_cuMemAlloc_v3020 p_alloc = proc("cuMemAlloc", 0);
	PFN_cuMemFree_v3020 p_free = proc("cuMemFree", 0);
	PFN_cuMemcpyHtoD_v3020 p_htod = proc("cuMemcpyHtoD", 0);
	PFN_cuMemcpyDtoH_v3020 p_dtoh = proc("cuMemcpyDtoH", 0);
	PFN_cuLaunchKernel_v4000 p_launch = proc("cuLaunchKernel", 0);
	PFN_cuCtxSynchronize_v2000 p_sync = proc("cuCtxSynchronize", 0);
	uint32_t n = 10007;
	float *a = malloc(n * 4), *b = malloc(n * 4), *c = malloc(n * 4);
	CUdevice dev;
	CUcontext ctx;
	CUmodule mod;
	CUfunction f;
	CUdeviceptr da, db, dc;
	void *args[] = { &da, &db, &dc, &n };
	int bad = 0;

	for (uint32_t i = 0; i < n; i++) {
		a[i] = (float)i;
		b[i] = 1.0f / (float)(i + 1);
	}
	CVT_CU(p_dev_get(&dev, 0), "cuDeviceGet through the pointer");
	CVT_CU(p_retain(&ctx, dev), "cuDevicePrimaryCtxRetain");
	CVT_CU(p_set(ctx), "cuCtxSetCurrent");
	if (!CVT_CU(p_load(&mod, path), "cuModuleLoad"))
		cvt_bail("cannot load %s", path);
	CVT_CU(p_getf(&f, mod, "vec_add"), "cuModuleGetFunction");
	if (p_alloc(&da, n * 4) || p_alloc(&db, n * 4) || p_alloc(&dc, n * 4))
		cvt_bail("cuMemAlloc through the pointer failed");
	CVT_CU(p_htod(da, a, n * 4), "cuMemcpyHtoD");
	CVT_CU(p_htod(db, b, n * 4), "cuMemcpyHtoD");
	CVT_CU(p_launch(f, 40, 1, 1, 256, 1, 1, 0, NULL, args, NULL),
	       "cuLaunchKernel");
	CVT_CU(p_sync(), "cuCtxSynchronize");
	CVT_CU(p_dtoh(c, dc, n * 4), "cuMemcpyDtoH");
	for (uint32_t i = 0; i < n; i++)
		bad += c[i] != a[i] + b[i];
	cvt_check(!bad, "vec_add through resolved entry points");
	p_free(da);
	p_free(db);
	p_free(dc);
	free(a);
	free(b);
	free(c);
}

int main(int argc, char **argv)
{
	char path[PATH_MAX];
	PFN_cuInit_v2000 p_init;
	PFN_cuDriverGetVersion_v2020 p_ver;
	void *h, *h2;
	Dl_info info;
	int ver = 0;

	cvt_module_path(argc, argv, 1, path, sizeof(path));
	h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!cvt_check(h != NULL, "dlopen(libcuda.so.1)"))
		cvt_bail("%s", dlerror());
	*(void **)&p_init = dlsym(h, "cuInit");
	*(void **)&p_ver = dlsym(h, "cuDriverGetVersion");
	*(void **)&get_proc = dlsym(h, "cuGetProcAddress_v2");
	*(void **)&cvt_get_error_name = dlsym(h, "cuGetErrorName");
	cvt_check(p_init && p_ver && get_proc && cvt_get_error_name,
		  "dlsym of cuInit, cuDriverGetVersion, cuGetProcAddress_v2, "
		  "cuGetErrorName");
	if (!p_init || !get_proc)
		cvt_bail("missing entry points");
	if (dladdr((void *)p_init, &info) && info.dli_fname)
		cvt_note("libcuda.so.1 is %s", info.dli_fname);
	CVT_CU(p_init(0), "cuInit");
	if (p_ver) {
		CVT_CU(p_ver(&ver), "cuDriverGetVersion");
		cvt_check(ver >= CUDA_VERSION, "driver version >= %d",
			  CUDA_VERSION);
	}
	/* PyTorch checks that the runtime's libcuda is already loaded. */
	h2 = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
	cvt_check(h2 == h, "RTLD_NOLOAD finds the same library");
	if (h2)
		dlclose(h2);
	check_lookups(h);
	check_work(path);
	return cvt_done();
}

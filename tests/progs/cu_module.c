/* SPDX-License-Identifier: MIT */
/*
 * Modules: loading a fatbin, a cubin and PTX from files and from memory,
 * the library API, __device__ globals (cuModuleGetGlobal; a kernel reading
 * and writing them; separate copies per module), and the load errors:
 * garbage image, missing file, unknown function or global.
 *
 * argv[1]: the fatbin; kernels.cubin and kernels.ptx are looked for next
 * to it.
 */
#include "cvtest.h"

static CUstream stream;

/* Runs vec_add from m on a small vector; true when the result is right. */
static bool run_vec_add(CUfunction f)
{
	uint32_t n = 4099;
	float a[4099], b[4099], c[4099];
	CUdeviceptr da, db, dc;
	void *args[] = { &da, &db, &dc, &n };
	bool ok = true;

	for (uint32_t i = 0; i < n; i++) {
		a[i] = (float)i * 0.5f;
		b[i] = 3.0f - (float)i;
		c[i] = -1.0f;
	}
	if (cuMemAlloc(&da, n * 4) || cuMemAlloc(&db, n * 4) ||
	    cuMemAlloc(&dc, n * 4))
		return false;
	ok = !cuMemcpyHtoD(da, a, n * 4) && !cuMemcpyHtoD(db, b, n * 4) &&
	     !cuLaunchKernel(f, 17, 1, 1, 64, 1, 1, 0, stream, args, NULL) &&
	     !cuMemcpyDtoHAsync(c, dc, n * 4, stream) &&
	     !cuStreamSynchronize(stream);
	for (uint32_t i = 0; ok && i < n; i++)
		ok = c[i] == a[i] + b[i];
	cuMemFree(da);
	cuMemFree(db);
	cuMemFree(dc);
	return ok;
}

static void check_module(CUmodule m, const char *what)
{
	CUfunction f;

	if (!CVT_CU(cuModuleGetFunction(&f, m, "vec_add"),
		    "cuModuleGetFunction(vec_add) from %s", what))
		return;
	cvt_check(run_vec_add(f), "vec_add from %s computes", what);
}

static void check_loads(const char *fatbin)
{
	char cubin[PATH_MAX], ptx[PATH_MAX];
	void *img;
	size_t len;
	CUmodule m;

	cvt_sibling(fatbin, "cubin", cubin, sizeof(cubin));
	cvt_sibling(fatbin, "ptx", ptx, sizeof(ptx));

	if (CVT_CU(cuModuleLoad(&m, fatbin), "cuModuleLoad(fatbin)")) {
		check_module(m, "a fatbin file");
		CVT_CU(cuModuleUnload(m), "cuModuleUnload");
	}
	if (CVT_CU(cuModuleLoad(&m, cubin), "cuModuleLoad(cubin)")) {
		check_module(m, "a cubin file");
		CVT_CU(cuModuleUnload(m), "cuModuleUnload");
	}
	img = cvt_read_file(fatbin, &len);
	if (img && CVT_CU(cuModuleLoadData(&m, img), "cuModuleLoadData(fatbin)")) {
		check_module(m, "fatbin data");
		CVT_CU(cuModuleUnload(m), "cuModuleUnload");
	}
	if (img && CVT_CU(cuModuleLoadFatBinary(&m, img),
			  "cuModuleLoadFatBinary")) {
		check_module(m, "cuModuleLoadFatBinary");
		CVT_CU(cuModuleUnload(m), "cuModuleUnload");
	}
	free(img);
	img = cvt_read_file(cubin, &len);
	if (img && CVT_CU(cuModuleLoadDataEx(&m, img, 0, NULL, NULL),
			  "cuModuleLoadDataEx(cubin)")) {
		check_module(m, "cubin data");
		CVT_CU(cuModuleUnload(m), "cuModuleUnload");
	}
	free(img);
	img = cvt_read_file(ptx, &len);
	cvt_check(img != NULL, "read the PTX file");
	if (img && CVT_CU(cuModuleLoadData(&m, img), "cuModuleLoadData(PTX)")) {
		check_module(m, "PTX");
		CVT_CU(cuModuleUnload(m), "cuModuleUnload");
	}
	free(img);
}

static void check_library(const char *fatbin)
{
	CUlibrary lib;
	CUkernel k;
	CUfunction f;
	CUdeviceptr g;
	size_t size = 0;
	int32_t v = 0;

	if (!CVT_CU(cuLibraryLoadFromFile(&lib, fatbin, NULL, NULL, 0, NULL,
					  NULL, 0), "cuLibraryLoadFromFile"))
		return;
	CVT_CU(cuLibraryGetKernel(&k, lib, "vec_add"), "cuLibraryGetKernel");
	/* The runtime launches a CUkernel cast to CUfunction. */
	cvt_check(run_vec_add((CUfunction)k), "a CUkernel launches as a CUfunction");
	CVT_CU(cuKernelGetFunction(&f, k), "cuKernelGetFunction");
	cvt_check(run_vec_add(f), "cuKernelGetFunction's function computes");
	CVT_CU(cuLibraryGetGlobal(&g, &size, lib, "g_value"),
	       "cuLibraryGetGlobal(g_value)");
	CVT_CU(cuMemcpyDtoH(&v, g, 4), "read it");
	cvt_check(size == 4 && v == CVK_G_VALUE_INIT,
		  "library global has its initial value");
	cvt_cu(cuLibraryGetKernel(&k, lib, "no_such_kernel"), CUDA_ERROR_NOT_FOUND,
	       "unknown kernel in a library is NOT_FOUND");
	CVT_CU(cuLibraryUnload(lib), "cuLibraryUnload");
}

static void check_globals(const char *fatbin)
{
	CUmodule m1, m2;
	CUdeviceptr g1 = 0, g2 = 0, t = 0, out;
	size_t size = 0;
	int32_t v = 0, seven = 7, five = 5;
	uint32_t tab[CVK_G_TABLE_LEN], rd[1 + CVK_G_TABLE_LEN];
	CUfunction add, read;
	void *aargs[] = { &five };
	void *rargs[] = { &out };
	int bad = 0;

	if (cuModuleLoad(&m1, fatbin) || cuModuleLoad(&m2, fatbin))
		cvt_bail("cuModuleLoad");
	CVT_CU(cuModuleGetGlobal(&g1, &size, m1, "g_value"),
	       "cuModuleGetGlobal(g_value)");
	cvt_check(g1 != 0 && size == 4, "g_value is 4 bytes at a device address");
	CVT_CU(cuMemcpyDtoH(&v, g1, 4), "read g_value");
	cvt_check(v == CVK_G_VALUE_INIT, "g_value has its initial value");
	CVT_CU(cuModuleGetGlobal(&t, &size, m1, "g_table"),
	       "cuModuleGetGlobal(g_table)");
	cvt_check(size == sizeof(tab), "g_table has its size");
	CVT_CU(cuMemcpyDtoH(tab, t, sizeof(tab)), "read g_table");
	for (uint32_t i = 0; i < CVK_G_TABLE_LEN; i++)
		bad += tab[i] != cvk_g_table_init(i);
	cvt_check(!bad, "g_table has its initial values");
	CVT_CU(cuModuleGetGlobal(&g2, NULL, m2, "g_value"),
	       "cuModuleGetGlobal with a NULL size");
	cvt_check(g2 != g1, "each module has its own copy of a global");

	CVT_CU(cuMemcpyHtoD(g1, &seven, 4), "write g_value");
	add = cvt_func(m1, "global_add");
	read = cvt_func(m1, "global_read");
	CVT_CU(cuLaunchKernel(add, 1, 1, 1, 32, 1, 1, 0, stream, aargs, NULL),
	       "launch global_add(5)");
	CVT_CU(cuStreamSynchronize(stream), "sync");
	CVT_CU(cuMemcpyDtoH(&v, g1, 4), "read g_value");
	cvt_check(v == 12, "a kernel updated the global (7 + 5)");
	if (v != 12)
		cvt_note("g_value = %d", v);
	if (cuMemAlloc(&out, sizeof(rd)))
		cvt_bail("cuMemAlloc");
	CVT_CU(cuMemsetD8(out, 0, sizeof(rd)), "clear");
	CVT_CU(cuLaunchKernel(read, 1, 1, 1, 64, 1, 1, 0, stream, rargs, NULL),
	       "launch global_read");
	CVT_CU(cuStreamSynchronize(stream), "sync");
	CVT_CU(cuMemcpyDtoH(rd, out, sizeof(rd)), "read the result");
	bad = rd[0] != 12;
	for (uint32_t i = 0; i < CVK_G_TABLE_LEN; i++)
		bad += rd[1 + i] != cvk_g_table_init(i);
	cvt_check(!bad, "a kernel read the globals");
	CVT_CU(cuMemcpyDtoH(&v, g2, 4), "read the other module's g_value");
	cvt_check(v == CVK_G_VALUE_INIT, "the other module's copy is untouched");
	/* m2's kernel sees m2's global. */
	rargs[0] = &out;
	CVT_CU(cuLaunchKernel(cvt_func(m2, "global_read"), 1, 1, 1, 64, 1, 1, 0,
			      stream, rargs, NULL), "global_read from module 2");
	CVT_CU(cuStreamSynchronize(stream), "sync");
	CVT_CU(cuMemcpyDtoH(rd, out, 4), "read");
	cvt_check(rd[0] == CVK_G_VALUE_INIT, "module 2's kernel reads its own copy");
	cvt_cu(cuModuleGetGlobal(&g1, &size, m1, "no_such_global"),
	       CUDA_ERROR_NOT_FOUND, "unknown global is NOT_FOUND");
	cuMemFree(out);
	CVT_CU(cuModuleUnload(m2), "unload module 2");
	CVT_CU(cuModuleUnload(m1), "unload module 1");
}

static void check_errors(const char *fatbin)
{
	uint8_t garbage[4096];
	uint64_t s = 77;
	CUmodule m;
	CUfunction f;
	CUresult r;

	/* Binary garbage with no known magic and a NUL at the end, so that
	 * even a driver that takes it for PTX stops inside the buffer. */
	for (size_t i = 0; i < sizeof(garbage); i++)
		garbage[i] = (uint8_t)(cvt_rand(&s) | 0x80);
	garbage[sizeof(garbage) - 1] = 0;
	r = cuModuleLoadData(&m, garbage);
	cvt_cu(r, CUDA_ERROR_INVALID_IMAGE,
	       "a garbage image is CUDA_ERROR_INVALID_IMAGE");
	cvt_cu(cuModuleLoad(&m, "/nonexistent/cuvisor/kernels.fatbin"),
	       CUDA_ERROR_FILE_NOT_FOUND,
	       "a missing file is CUDA_ERROR_FILE_NOT_FOUND");
	if (CVT_CU(cuModuleLoad(&m, fatbin), "load the fatbin again")) {
		cvt_cu(cuModuleGetFunction(&f, m, "no_such_kernel"),
		       CUDA_ERROR_NOT_FOUND,
		       "an unknown function is CUDA_ERROR_NOT_FOUND");
		check_module(m, "a module after failed lookups");
		cuModuleUnload(m);
	}
	/* After all these failures the context still works. */
	CVT_CU(cuCtxSynchronize(), "context is fine after load errors");
}

int main(int argc, char **argv)
{
	char path[PATH_MAX];
	CUdevice dev;
	CUcontext ctx;
	CUmoduleLoadingMode mode;

	cvt_module_path(argc, argv, 1, path, sizeof(path));
	cvt_setup(&dev, &ctx);
	if (cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING))
		cvt_bail("cuStreamCreate");
	CVT_CU(cuModuleGetLoadingMode(&mode), "cuModuleGetLoadingMode");
	check_loads(path);
	check_library(path);
	check_globals(path);
	check_errors(path);
	CVT_CU(cuStreamDestroy(stream), "cuStreamDestroy");
	return cvt_done();
}

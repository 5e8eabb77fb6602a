/* SPDX-License-Identifier: MIT */
/*
 * The library API (CUDA 12): a library is a module that belongs to no
 * context, and a CUkernel is a function. Here a CUlibrary is the handle
 * of a module and a CUkernel the handle of a function, so cuLaunchKernel
 * accepts a CUkernel cast to CUfunction, as the runtime expects.
 * Libraries load lazily: cuLibraryLoadData only notes where the image is
 * (the runtime passes CU_LIBRARY_BINARY_IS_PRESERVED for the fat binaries
 * it registers, thousands of them for cuBLAS); the image travels to the
 * worker when a kernel or global of it is first looked up, and not at all
 * when the worker already holds one of the same content.
 */
#include "guest.h"

/*
 * Checks the library options; *preserved tells whether the caller
 * promised to keep the image (CU_LIBRARY_BINARY_IS_PRESERVED, as the
 * runtime does): then it is not copied. The option's value is the value
 * itself (in the pointer's place), not a pointer to it.
 */
static CUresult lib_opts(unsigned int nlib, CUlibraryOption *opts,
			 void **vals, bool *preserved)
{
	unsigned int i;

	*preserved = false;
	if (nlib && !opts)
		return CUDA_ERROR_INVALID_VALUE;
	for (i = 0; i < nlib; i++) {
		if (opts[i] == CU_LIBRARY_BINARY_IS_PRESERVED)
			*preserved = vals && (uintptr_t)vals[i] != 0;
		else if (opts[i] !=
			 CU_LIBRARY_HOST_UNIVERSAL_FUNCTION_AND_DATA_TABLE)
			return CUDA_ERROR_INVALID_VALUE;
	}
	return CUDA_SUCCESS;
}

CV_API CUresult cuLibraryLoadData(CUlibrary *lib, const void *code,
				  CUjit_option *jopts, void **jvals,
				  unsigned int njit, CUlibraryOption *lopts,
				  void **lvals, unsigned int nlib)
{
	bool kept;
	int rc = lib_opts(nlib, lopts, lvals, &kept);

	if (rc)
		return rc;
	return cv_module_open((CUmodule *)lib, code,
			      CV_MOD_LAZY | (kept ? 0 : CV_MOD_COPY));
}

CV_API CUresult cuLibraryLoadFromFile(CUlibrary *lib, const char *file,
				      CUjit_option *jopts, void **jvals,
				      unsigned int njit, CUlibraryOption *lopts,
				      void **lvals, unsigned int nlib)
{
	bool kept;
	int rc = lib_opts(nlib, lopts, lvals, &kept);

	if (rc)
		return rc;
	return cv_module_open_file((CUmodule *)lib, file, CV_MOD_LAZY);
}

CV_API CUresult cuLibraryUnload(CUlibrary lib)
{
	return cuModuleUnload((CUmodule)lib);
}

CV_API CUresult cuLibraryGetModule(CUmodule *mod, CUlibrary lib)
{
	int rc = cv_g_ready();

	if (rc)
		return rc;
	if (!mod)
		return CUDA_ERROR_INVALID_VALUE;
	if (!cv_handle_get((uint64_t)(uintptr_t)lib, CV_H_MODULE))
		return CUDA_ERROR_INVALID_HANDLE;
	*mod = (CUmodule)lib;
	return CUDA_SUCCESS;
}

CV_API CUresult cuLibraryGetKernel(CUkernel *k, CUlibrary lib,
				   const char *name)
{
	int rc = cv_g_ready();

	if (rc)
		return rc;
	return cv_func_lookup((CUfunction *)k, (CUmodule)lib, name);
}

CV_API CUresult cuLibraryGetGlobal(CUdeviceptr *dptr, size_t *bytes,
				   CUlibrary lib, const char *name)
{
	int rc = cv_g_ready();

	if (rc)
		return rc;
	return cv_global_lookup(dptr, bytes, (CUmodule)lib, name);
}

CV_API CUresult cuKernelGetFunction(CUfunction *f, CUkernel k)
{
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	if (!f)
		return CUDA_ERROR_INVALID_VALUE;
	if (!cv_handle_get((uint64_t)(uintptr_t)k, CV_H_FUNC))
		return CUDA_ERROR_INVALID_HANDLE;
	*f = (CUfunction)k;
	return CUDA_SUCCESS;
}

CV_API CUresult cuKernelGetAttribute(int *v, CUfunction_attribute a,
				     CUkernel k, CUdevice dev)
{
	if (dev != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	return cuFuncGetAttribute(v, a, (CUfunction)k);
}

CV_API CUresult cuKernelSetAttribute(CUfunction_attribute a, int v,
				     CUkernel k, CUdevice dev)
{
	if (dev != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	return cuFuncSetAttribute((CUfunction)k, a, v);
}

CV_API CUresult cuKernelSetCacheConfig(CUkernel k, CUfunc_cache c,
				       CUdevice dev)
{
	if (dev != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	return cuFuncSetCacheConfig((CUfunction)k, c);
}

CV_API CUresult cuKernelGetParamInfo(CUkernel k, size_t idx, size_t *off,
				     size_t *size)
{
	return cuFuncGetParamInfo((CUfunction)k, idx, off, size);
}

CV_API CUresult cuKernelGetName(const char **name, CUkernel k)
{
	return cuFuncGetName(name, (CUfunction)k);
}

CV_API CUresult cuKernelGetLibrary(CUlibrary *lib, CUkernel k)
{
	return cuFuncGetModule((CUmodule *)lib, (CUfunction)k);
}

/* SPDX-License-Identifier: MIT */
/*
 * The real driver's entry points used by the cuda backend (internal to
 * the worker).
 *
 * Every entry is resolved with cuGetProcAddress_v2(name, CV_CUDA_ABI,
 * CU_GET_PROC_ADDRESS_DEFAULT): the driver then returns the newest ABI of
 * `name` introduced at or before CV_CUDA_ABI, and with the default flavour
 * the NULL stream is the legacy default stream. So the typedef of each
 * entry must be the newest PFN_<name>_v<N> in <cudaTypedefs.h> with
 * N <= CV_CUDA_ABI (e.g. cuCtxSynchronize is the v13000 form that takes a
 * context, cuEventElapsedTime is v12080). Check this list against the
 * header whenever CV_CUDA_ABI changes.
 */
#ifndef CV_BACKEND_CUDA_API_H
#define CV_BACKEND_CUDA_API_H

#include <cuda.h>
#include <cudaTypedefs.h>

#define CV_CUDA_ABI 13000

/* X(name, version of its PFN typedef) */
#define CV_CUDA_API(X)                                               \
	X(cuGetErrorName, 6000)                                      \
	X(cuInit, 2000)                                              \
	X(cuDriverGetVersion, 2020)                                  \
	X(cuDeviceGet, 2000)                                         \
	X(cuDeviceGetCount, 2000)                                    \
	X(cuDeviceGetName, 2000)                                     \
	X(cuDeviceGetUuid, 11040)                                    \
	X(cuDeviceGetAttribute, 2000)                                \
	X(cuDeviceTotalMem, 3020)                                    \
	X(cuDevicePrimaryCtxRetain, 7000)                            \
	X(cuDevicePrimaryCtxRelease, 11000)                          \
	X(cuCtxSetCurrent, 4000)                                     \
	X(cuCtxSynchronize, 13000)                                   \
	X(cuCtxSetLimit, 3010)                                       \
	X(cuCtxGetLimit, 3010)                                       \
	X(cuMemHostRegister, 6050)                                   \
	X(cuMemHostUnregister, 4000)                                 \
	X(cuMemHostGetDevicePointer, 3020)                           \
	X(cuMemAddressReserve, 10020)                                \
	X(cuMemAddressFree, 10020)                                   \
	X(cuMemCreate, 10020)                                        \
	X(cuMemRelease, 10020)                                       \
	X(cuMemMap, 10020)                                           \
	X(cuMemUnmap, 10020)                                         \
	X(cuMemSetAccess, 10020)                                     \
	X(cuMemExportToShareableHandle, 10020)                       \
	X(cuMemImportFromShareableHandle, 10020)                     \
	X(cuMemGetInfo, 3020)                                        \
	X(cuMemAlloc, 3020)                                          \
	X(cuMemFree, 3020)                                           \
	X(cuStreamCreateWithPriority, 5050)                          \
	X(cuStreamDestroy, 4000)                                     \
	X(cuStreamSynchronize, 2000)                                 \
	X(cuStreamQuery, 2000)                                       \
	X(cuStreamWaitEvent, 3020)                                   \
	X(cuEventCreate, 2000)                                       \
	X(cuEventDestroy, 4000)                                      \
	X(cuEventRecordWithFlags, 11010)                             \
	X(cuEventSynchronize, 2000)                                  \
	X(cuEventQuery, 2000)                                        \
	X(cuEventElapsedTime, 12080)                                 \
	X(cuMemcpyHtoDAsync, 3020)                                   \
	X(cuMemcpyDtoHAsync, 3020)                                   \
	X(cuMemcpyDtoDAsync, 3020)                                   \
	X(cuMemcpy2DAsync, 3020)                                     \
	X(cuMemsetD8Async, 3020)                                     \
	X(cuMemsetD16Async, 3020)                                    \
	X(cuMemsetD32Async, 3020)                                    \
	X(cuMemsetD2D8Async, 3020)                                   \
	X(cuMemsetD2D16Async, 3020)                                  \
	X(cuMemsetD2D32Async, 3020)                                  \
	X(cuModuleLoadDataEx, 2010)                                  \
	X(cuModuleUnload, 2000)                                      \
	X(cuModuleGetFunction, 2000)                                 \
	X(cuModuleGetFunctionCount, 12040)                           \
	X(cuModuleEnumerateFunctions, 12040)                         \
	X(cuFuncGetName, 12030)                                      \
	X(cuModuleGetGlobal, 3020)                                   \
	X(cuFuncGetParamInfo, 12040)                                 \
	X(cuFuncGetAttribute, 2020)                                  \
	X(cuFuncSetAttribute, 9000)                                  \
	X(cuFuncSetCacheConfig, 3000)                                \
	X(cuLaunchKernel, 4000)                                      \
	X(cuLaunchKernelEx, 11060)                                   \
	X(cuLaunchHostFunc, 10000)                                   \
	X(cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags, 7000) \
	X(cuOccupancyAvailableDynamicSMemPerBlock, 10020)            \
	X(cuOccupancyMaxPotentialBlockSizeWithFlags, 7000)            \
	X(cuOccupancyMaxActiveClusters, 11070)                       \
	X(cuOccupancyMaxPotentialClusterSize, 11070)

#define CV_CUDA_FIELD(name, ver) PFN_##name##_v##ver name;
struct cv_cuda_api {
	CV_CUDA_API(CV_CUDA_FIELD)
};
#undef CV_CUDA_FIELD

#endif

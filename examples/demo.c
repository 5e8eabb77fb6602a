/* SPDX-License-Identifier: MIT */
/*
 * The README's demo: an ordinary CUDA driver-API program (nothing in it
 * knows about cuvisor). `make demo` runs it on a virtual GPU through
 * cuvisord; run it without `cuvisor run` and it uses the real driver.
 *
 *   demo [MODULE]    MODULE defaults to kernels.fatbin beside the binary's
 *                    ../tests directory (build/tests/kernels.fatbin).
 */
#include <cuda.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N (16u << 20)

#define CK(call)                                                         \
	do {                                                             \
		CUresult r_ = (call);                                    \
		if (r_ != CUDA_SUCCESS) {                                \
			const char *s_ = "?";                            \
			cuGetErrorName(r_, &s_);                         \
			fprintf(stderr, "demo: %s failed: %s\n", #call, s_); \
			exit(1);                                         \
		}                                                        \
	} while (0)

static void default_module(char *buf, size_t n)
{
	char exe[PATH_MAX];
	ssize_t k = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	exe[k > 0 ? k : 0] = 0;
	snprintf(buf, n, "%s/../tests/kernels.fatbin", dirname(exe));
}

int main(int argc, char **argv)
{
	char name[256], mod_path[PATH_MAX];
	CUdeviceptr a, b, c;
	CUfunction fadd;
	CUmodule mod;
	CUcontext ctx;
	CUevent e0, e1;
	CUstream s;
	CUdevice dev;
	size_t total;
	float *ha, *hc, ms;
	uint32_t n = N, i, bad = 0;
	void *args[] = { &a, &b, &c, &n };

	if (argc > 1)
		snprintf(mod_path, sizeof(mod_path), "%s", argv[1]);
	else
		default_module(mod_path, sizeof(mod_path));
	CK(cuInit(0));
	CK(cuDeviceGet(&dev, 0));
	CK(cuDeviceGetName(name, sizeof(name), dev));
	CK(cuDeviceTotalMem(&total, dev));
	printf("device 0: %s, %.1f GiB\n", name, total / 1073741824.0);
	CK(cuDevicePrimaryCtxRetain(&ctx, dev));
	CK(cuCtxSetCurrent(ctx));
	CK(cuModuleLoad(&mod, mod_path));
	CK(cuModuleGetFunction(&fadd, mod, "vec_add"));
	CK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	CK(cuEventCreate(&e0, 0));
	CK(cuEventCreate(&e1, 0));
	CK(cuMemAlloc(&a, N * sizeof(float)));
	CK(cuMemAlloc(&b, N * sizeof(float)));
	CK(cuMemAlloc(&c, N * sizeof(float)));
	CK(cuMemAllocHost((void **)&ha, N * sizeof(float)));
	hc = malloc(N * sizeof(float));
	if (!hc)
		return 1;
	for (i = 0; i < N; i++)
		ha[i] = (float)i;
	CK(cuMemcpyHtoDAsync(a, ha, N * sizeof(float), s));
	CK(cuMemcpyHtoDAsync(b, ha, N * sizeof(float), s));
	CK(cuEventRecord(e0, s));
	CK(cuLaunchKernel(fadd, 1024, 1, 1, 256, 1, 1, 0, s, args, NULL));
	CK(cuEventRecord(e1, s));
	CK(cuMemcpyDtoHAsync(hc, c, N * sizeof(float), s));
	CK(cuStreamSynchronize(s));
	CK(cuEventElapsedTime(&ms, e0, e1));
	for (i = 0; i < N; i++)
		bad += hc[i] != 2.0f * (float)i;
	printf("vec_add of %u floats: %s (%.3f ms on the device)\n", N,
	       bad ? "WRONG" : "correct", ms);
	CK(cuMemFreeHost(ha));
	CK(cuMemFree(a));
	CK(cuMemFree(b));
	CK(cuMemFree(c));
	CK(cuModuleUnload(mod));
	CK(cuDevicePrimaryCtxRelease(dev));
	free(hc);
	return bad ? 1 : 0;
}

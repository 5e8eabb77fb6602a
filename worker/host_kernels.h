/* SPDX-License-Identifier: MIT */
/*
 * Kernel libraries for the host backend.
 *
 * The host backend runs no GPU code. When a guest loads a module (cubin,
 * fatbin or PTX), the backend checks the image's format and then resolves
 * the module's functions by name in a kernel library: a shared object,
 * named by the worker's environment variable CUVISOR_HOST_KERNELS (a
 * colon-separated list of absolute paths), that exports
 *
 *	const struct cv_hk_lib *cv_host_kernels(void);
 *
 * Test programs build the same kernels twice: with nvcc for the GPU and
 * as C for this library, so one unmodified program runs on both backends.
 *
 * Parameters are laid out as CUDA lays them out: each at the next offset
 * aligned to its own alignment (align[i], a power of two <= 16).
 */
#ifndef CV_HOST_KERNELS_H
#define CV_HOST_KERNELS_H

#include <stdint.h>

#define CV_HK_ABI 1u

struct cv_hk_dims {
	uint32_t grid[3];
	uint32_t block[3];
	uint32_t shmem;
	uint32_t pad;
};

/* params[i] points at parameter i, as with cuLaunchKernel. */
typedef void (*cv_hk_fn)(const struct cv_hk_dims *d, void **params);

struct cv_hk_kernel {
	const char *name;     /* the mangled name, as the cubin has it */
	cv_hk_fn fn;
	uint32_t nparams;
	const uint32_t *size; /* nparams entries */
	const uint32_t *align;/* nparams entries */
};

struct cv_hk_global {
	const char *name;
	uint64_t size;
	const void *init;     /* size bytes, or NULL for zeros */
};

struct cv_hk_lib {
	uint32_t abi;         /* CV_HK_ABI */
	uint32_t nkernels;
	const struct cv_hk_kernel *kernels;
	uint32_t nglobals;
	const struct cv_hk_global *globals;
};

typedef const struct cv_hk_lib *(*cv_hk_entry_fn)(void);
#define CV_HK_ENTRY "cv_host_kernels"

#endif

/* SPDX-License-Identifier: MIT */
/*
 * cuGetProcAddress for the guest library: the table generated from the
 * toolkit headers by scripts/gen-driver-table.py ($(O)/gen/procaddr_table.c)
 * and the lookup over it; and the answer of every driver entry point that
 * nothing in guest/ implements ($(O)/gen/stubs.c).
 *
 * No cuda.h here: the generated stubs.c includes this header and defines
 * the driver's symbols as int f(void), which cuda.h's prototypes would
 * contradict.
 */
#ifndef CV_GUEST_PROCADDR_H
#define CV_GUEST_PROCADDR_H

/*
 * One (name, version, flavour) that the toolkit's cudaTypedefs.h declares
 * as PFN_<name>_v<version>[_ptsz|_ptds], and the exported symbol that
 * implements that ABI.
 */
struct cv_procaddr_entry {
	const char *name; /* what a program asks for, e.g. "cuMemAlloc" */
	void (*fn)(void); /* the symbol's address (not its prototype) */
	const char *sym;  /* the symbol's name, e.g. "cuMemAlloc_v2" */
	int version;      /* the <version> of the PFN, e.g. 3020 */
	int per_thread;   /* 1 for the _ptsz/_ptds flavour */
};

/* Sorted by (name in strcmp order, per_thread, version); generated. */
extern const struct cv_procaddr_entry cv_procaddr_table[];
extern const unsigned int cv_procaddr_count;

/*
 * Looks up `name` as a program built for CUDA `version` would see it: the
 * row of that name with the highest version <= `version`. With per_thread
 * set, the per-thread-default-stream flavour is preferred where one exists
 * for that ABI; names without one (non-stream calls) answer the legacy
 * row. Silent: the caller reports.
 *
 * Returns 0 and sets *fn on success; -ENOENT with *fn = NULL when the name
 * is unknown or no row is old enough; -EINVAL when name or fn is NULL.
 * *status (may be NULL) gets the CUdriverProcAddressQueryResult:
 * CU_GET_PROC_ADDRESS_SUCCESS, _SYMBOL_NOT_FOUND or
 * _VERSION_NOT_SUFFICIENT. Lock-free, callable from any thread, before
 * cuInit and from a library constructor.
 */
int cv_procaddr_lookup(const char *name, int version, int per_thread,
		       void **fn, int *status);

/*
 * What every unimplemented driver entry point returns:
 * CUDA_ERROR_NOT_SUPPORTED (801). Logs the name once at warn level when
 * the guest's logger asks for it. `name` must stay valid for the life of
 * the process (the generated stubs pass string literals). Thread-safe.
 */
int cv_guest_unsupported(const char *name);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * Driver entry-point lookup: cuGetProcAddress (CUDA 11.3 ABI),
 * cuGetProcAddress_v2 (CUDA 12.0 ABI, what the runtime binds through) and
 * the fallback of every entry point nothing in guest/ implements.
 *
 * The table is generated ($(O)/gen/procaddr_table.c); this file only
 * searches it. See scripts/gen-driver-table.py for how a (name, version,
 * flavour) is mapped to an exported symbol.
 */
#include "procaddr.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <cuda.h>

#include "../core/log.h"

/*
 * cuda.h maps cuGetProcAddress to cuGetProcAddress_v2 and declares the
 * 4-argument ABI under its own name only for the driver's build
 * (__CUDA_API_VERSION_INTERNAL); declare the old one and the per-thread
 * twin here with the prototypes cuda.h gives them there.
 */
#undef cuGetProcAddress
CUresult CUDAAPI cuGetProcAddress(const char *symbol, void **pfn,
				  int cudaVersion, cuuint64_t flags);
CUresult CUDAAPI cuGetProcAddress_v2_ptsz(const char *symbol, void **pfn,
					  int cudaVersion, cuuint64_t flags,
					  CUdriverProcAddressQueryResult *status);

/* ---------------------------------------------------------- lookup --- */

/* First row named `name`, or the end of the table. */
static const struct cv_procaddr_entry *lower_bound(const char *name)
{
	unsigned int lo = 0, hi = cv_procaddr_count, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (strcmp(cv_procaddr_table[mid].name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return &cv_procaddr_table[lo];
}

static void set_status(int *status, int v)
{
	if (status)
		*status = v;
}

int cv_procaddr_lookup(const char *name, int version, int per_thread,
		       void **fn, int *status)
{
	const struct cv_procaddr_entry *e, *end, *best[2] = { NULL, NULL };
	const struct cv_procaddr_entry *pick;
	bool known = false;

	if (!name || !fn)
		return -EINVAL;
	*fn = NULL;
	end = cv_procaddr_table + cv_procaddr_count;
	/* Rows of one name are sorted by (per_thread, version): the last
	 * row of each flavour at or below `version` is the newest ABI. */
	for (e = lower_bound(name); e < end && !strcmp(e->name, name); e++) {
		known = true;
		if (e->version <= version)
			best[e->per_thread ? 1 : 0] = e;
	}
	pick = best[0];
	/* A per-thread row older than the legacy pick would be an older
	 * ABI: the right prototype beats the right default stream. */
	if (per_thread && best[1] &&
	    (!pick || best[1]->version >= pick->version))
		pick = best[1];
	if (!pick) {
		set_status(status, known ?
			   CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT :
			   CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
		return -ENOENT;
	}
	*fn = (void *)pick->fn;
	set_status(status, CU_GET_PROC_ADDRESS_SUCCESS);
	return 0;
}

/* ------------------------------------------------- the entry points --- */

/*
 * Common body. Flags: CU_GET_PROC_ADDRESS_DEFAULT (0) is the legacy
 * stream (the per-thread default is chosen by the caller's header, see
 * cuGetProcAddress_v2_ptsz); PER_THREAD_DEFAULT_STREAM wins when both
 * flavour bits are set; any other bit is CUDA_ERROR_INVALID_VALUE.
 * A name that is not found (the runtime probes with "") or is too new for
 * cudaVersion sets *pfn = NULL and, as the driver does (seen with 580 on
 * an H100), answers CUDA_SUCCESS with the reason in *status when the
 * caller passed one, CUDA_ERROR_NOT_FOUND otherwise: never
 * CUDA_ERROR_STUB_LIBRARY, which tells the runtime there is no driver.
 */
static CUresult get_proc_address(const char *symbol, void **pfn,
				 int cudaVersion, cuuint64_t flags,
				 CUdriverProcAddressQueryResult *status)
{
	const cuuint64_t known = CU_GET_PROC_ADDRESS_LEGACY_STREAM |
				 CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM;
	int per_thread, st = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;

	if (!pfn)
		return CUDA_ERROR_INVALID_VALUE;
	*pfn = NULL;
	if (!symbol || (flags & ~known))
		return CUDA_ERROR_INVALID_VALUE;
	per_thread = !!(flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM);
	if (cv_procaddr_lookup(symbol, cudaVersion, per_thread, pfn, &st)) {
		cv_dbg("cuGetProcAddress: %s@%d%s: %s", symbol, cudaVersion,
		       per_thread ? " per-thread" : "",
		       st == CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT ?
		       "version not sufficient" : "not found");
		if (status) {
			*status = (CUdriverProcAddressQueryResult)st;
			return CUDA_SUCCESS;
		}
		return CUDA_ERROR_NOT_FOUND;
	}
	if (status)
		*status = CU_GET_PROC_ADDRESS_SUCCESS;
	return CUDA_SUCCESS;
}

/* CUDA 11.3 ABI: no status out-parameter. */
CUresult CUDAAPI cuGetProcAddress(const char *symbol, void **pfn,
				  int cudaVersion, cuuint64_t flags)
{
	return get_proc_address(symbol, pfn, cudaVersion, flags, NULL);
}

/* CUDA 12.0 ABI; symbolStatus is optional. */
CUresult CUDAAPI cuGetProcAddress_v2(const char *symbol, void **pfn,
				     int cudaVersion, cuuint64_t flags,
				     CUdriverProcAddressQueryResult *symbolStatus)
{
	return get_proc_address(symbol, pfn, cudaVersion, flags, symbolStatus);
}

/*
 * What cuda.h's inline wrapper of the same name does for a program built
 * with per-thread default streams: flags naming no flavour mean per-thread.
 * Exported only where the toolkit's stub library lists it (the version
 * script is generated from that list).
 */
CUresult CUDAAPI cuGetProcAddress_v2_ptsz(const char *symbol, void **pfn,
					  int cudaVersion, cuuint64_t flags,
					  CUdriverProcAddressQueryResult *status)
{
	if (!(flags & (CU_GET_PROC_ADDRESS_LEGACY_STREAM |
		       CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM)))
		flags |= CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM;
	return get_proc_address(symbol, pfn, cudaVersion, flags, status);
}

/* ------------------------------------------- unimplemented fallback --- */

/* Power of two, well above the number of exported symbols (637 in 13.0). */
#define SEEN_SLOTS 4096u

/* Names already reported; a slot goes from NULL to a name exactly once. */
static const char *seen[SEEN_SLOTS];

static uint32_t name_hash(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h;
}

/*
 * True the first time `name` is passed, false after: a lock-free
 * open-addressing set. A full set answers true (report rather than lose).
 */
static bool first_sight(const char *name)
{
	uint32_t h = name_hash(name), i;
	const char *cur, *none;

	for (i = 0; i < SEEN_SLOTS; i++) {
		const char **slot = &seen[(h + i) & (SEEN_SLOTS - 1)];

		/* Acquire: pairs with the release of the CAS below, so the
		 * characters of a name are visible before its pointer. */
		cur = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
		if (!cur) {
			none = NULL;
			if (__atomic_compare_exchange_n(slot, &none, name,
							false, __ATOMIC_RELEASE,
							__ATOMIC_ACQUIRE))
				return true;
			cur = none; /* another thread filled the slot */
		}
		if (!strcmp(cur, name))
			return false;
	}
	return true;
}

int cv_guest_unsupported(const char *name)
{
	if (cv_log_level() >= CV_LOG_WARN && first_sight(name))
		cv_warn("%s: not supported by cuvisor, returning "
			"CUDA_ERROR_NOT_SUPPORTED", name);
	return CUDA_ERROR_NOT_SUPPORTED;
}

/* SPDX-License-Identifier: MIT */
/*
 * The driver's private tables (cuGetExportTable) that the CUDA runtime
 * needs: see docs/cudart-binding.md ("Private tables", "The integrity
 * answer") for what each one is and what the runtime calls.
 */
#ifndef CV_EXPORTS_H
#define CV_EXPORTS_H

#include <stdint.h>

#include "guest.h" /* cuda.h, as the guest includes it */

/*
 * Runs and forgets the context-local-storage entries of context c: every
 * destructor put() registered for c is called once, as dtor(ctx, key,
 * value), newest first, outside any lock (a destructor may call the
 * driver, CLS included). For cv_ctx_release_objects(), i.e. cuCtxDestroy
 * and the primary context's reset or final release; the caller must not
 * hold g.lock. Call it before the context's other objects are dropped,
 * so the destructors still find the streams and memory they free.
 */
void cv_cls_ctx_release(struct cv_ctx *c);

/*
 * The primary context's handle of dev (the one cuDevicePrimaryCtxRetain
 * returns), without retaining or activating it. CUresult. (Belongs with
 * the primary context in api_ctx.c; see its definition for why it lives
 * in exports.c for now.)
 */
CUresult cv_ctx_primary_handle(CUdevice dev, CUcontext *out);

/* The integrity answer's message: a 48-byte record, then one 28-byte
 * record per device. */
#define CV_INTEGRITY_RECORD 48
#define CV_INTEGRITY_DEVICE_RECORD 28

/*
 * The integrity table's answer for a process with the given inputs (one
 * device), into out[0..1]: constants for version % 10 == 0 and 1, else
 * HMAC-MD2 keyed with the runtime's 16-byte key over the packed
 * little-endian records
 *	u32 drv, u32 version, u32 pid, u32 tid, u64 rt_tab, u64 int_tab,
 *	u64 slot1, u64 secs
 *	u8 uuid[16], i32 dom, i32 bus, i32 dev
 * (drv: what cuDriverGetVersion answers; rt_tab, int_tab: addresses of
 * the runtime-interface and integrity tables; slot1: the integrity
 * table's slot [1]). The 16 bytes of the MAC are copied into out.
 */
void cv_integrity_compute(uint32_t drv, uint32_t version, uint32_t pid,
			  uint32_t tid, const void *rt_tab, const void *int_tab,
			  const void *slot1, uint64_t secs,
			  const uint8_t uuid[16], int32_t dom, int32_t bus,
			  int32_t dev, uint64_t out[2]);

#endif

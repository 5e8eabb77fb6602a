/* SPDX-License-Identifier: MIT */
/*
 * cuGetExportTable: the driver's private tables that the CUDA runtime
 * binds through (docs/cudart-binding.md, "Private tables"), and the two
 * tools tables cuFFT needs (tools context, tools module: see there).
 *
 * Each table is a static array of pointers whose slot 0 holds the table's
 * size in bytes (slots x 8), except the context-local-storage table,
 * which starts with a function and ends with NULL. Slots the runtime has
 * not been seen to call hold stubs that log their first call and fail
 * with CUDA_ERROR_NOT_SUPPORTED. The runtime calls those with arguments
 * the stubs do not declare; the x86-64 and AArch64 calling conventions
 * make that harmless (the caller owns its arguments).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/log.h"
#include "exports.h"
#include "guest.h"
#include "hmac.h"
#include "md2.h"

_Static_assert(sizeof(void *) == 8, "the tables are the 64-bit driver's");

#define TAB_SIZE(n) ((const void *)(uintptr_t)((n) * sizeof(void *)))
#define FN(f) ((const void *)(f))

/* ---- stubs ------------------------------------------------------------ */

/* Logs the first call of an unimplemented slot; CUDA_ERROR_NOT_SUPPORTED. */
static CUresult stub_hit(int *seen, const char *table, unsigned int slot)
{
	if (!__atomic_exchange_n(seen, 1, __ATOMIC_RELAXED))
		cv_warn("the runtime called slot [%u] of the driver's %s table, which cuvisor does not implement",
			slot, table);
	return CUDA_ERROR_NOT_SUPPORTED;
}

#define STUB(tab, slot, name)                                              \
	static CUresult stub_##tab##_##slot(void)                          \
	{                                                                  \
		static int seen;                                           \
		return stub_hit(&seen, name, slot);                        \
	}

/* ---- runtime interface (6b d5 fb 6c ...) ------------------------------ */

/*
 * The primary context's handle without a reference. The fast path reads
 * g.pctx under g.lock as api_ctx.c's pctx_locked() does. Before the
 * primary context first exists, only cuDevicePrimaryCtxRetain can create
 * it (its constructor is private to api_ctx.c): we retain, then give the
 * reference back by decrementing g.pctx_refs directly, because
 * cuDevicePrimaryCtxRelease would reset the context when the count
 * drops to 0, and a reset releases objects the program may be creating
 * in it from another thread. The count is briefly one too high; a
 * concurrent final release in that window leaves the reset undone (the
 * objects live on until the next reset or the end of the process).
 */
CUresult cv_ctx_primary_handle(CUdevice dev, CUcontext *out)
{
	struct cv_ctx *c;
	CUresult rc = (CUresult)cv_g_ready();

	if (rc)
		return rc;
	if (!out)
		return CUDA_ERROR_INVALID_VALUE;
	if (dev != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	pthread_mutex_lock(&g.lock);
	c = g.pctx;
	pthread_mutex_unlock(&g.lock);
	if (c) {
		/* The primary context's object is never freed. */
		*out = (CUcontext)(uintptr_t)cv_handle_of(&c->h);
		return *out ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT;
	}
	rc = cuDevicePrimaryCtxRetain(out, dev);
	if (rc)
		return rc;
	pthread_mutex_lock(&g.lock);
	if (g.pctx_refs)
		g.pctx_refs--;
	pthread_mutex_unlock(&g.lock);
	return CUDA_SUCCESS;
}

/* [2] (CUcontext *out, CUdevice dev) */
static CUresult rt_primary_ctx(CUcontext *out, CUdevice dev)
{
	return cv_ctx_primary_handle(dev, out);
}

#define RT_NAME "runtime-interface"
STUB(rt, 1, RT_NAME)
STUB(rt, 3, RT_NAME)
STUB(rt, 4, RT_NAME)
STUB(rt, 5, RT_NAME)
STUB(rt, 6, RT_NAME)
STUB(rt, 7, RT_NAME)
STUB(rt, 8, RT_NAME)
STUB(rt, 9, RT_NAME)
STUB(rt, 10, RT_NAME)
STUB(rt, 11, RT_NAME)
STUB(rt, 12, RT_NAME)

static const void *const rt_table[13] = {
	TAB_SIZE(13),
	FN(stub_rt_1), FN(rt_primary_ctx), FN(stub_rt_3), FN(stub_rt_4),
	FN(stub_rt_5), FN(stub_rt_6), FN(stub_rt_7), FN(stub_rt_8),
	FN(stub_rt_9), FN(stub_rt_10), FN(stub_rt_11), FN(stub_rt_12),
};

/* ---- tools callback hooks (a0 94 79 8c ...) ---------------------------- */

/* All zero: no tool attached. The runtime may write to them. */
static uint32_t tools_buf2[1024];
static uint32_t tools_buf6[14];

/* [2] and [6] (void **buf, size_t *n): n counts 32-bit entries. */
static void hooks_buf2(void **buf, size_t *n)
{
	if (buf)
		*buf = tools_buf2;
	if (n)
		*n = CV_ARRAY_SIZE(tools_buf2);
}

static void hooks_buf6(void **buf, size_t *n)
{
	if (buf)
		*buf = tools_buf6;
	if (n)
		*n = CV_ARRAY_SIZE(tools_buf6);
}

#define HOOKS_NAME "tools-callback-hooks"
STUB(hooks, 1, HOOKS_NAME)
STUB(hooks, 3, HOOKS_NAME)
STUB(hooks, 4, HOOKS_NAME)
STUB(hooks, 5, HOOKS_NAME)

static const void *const hooks_table[7] = {
	TAB_SIZE(7),
	FN(stub_hooks_1), FN(hooks_buf2), FN(stub_hooks_3), FN(stub_hooks_4),
	FN(stub_hooks_5), FN(hooks_buf6),
};

/* ---- tools thread-local storage (42 d8 5a 81 ...) ---------------------- */

#define TLS_NAME "tools-TLS"
STUB(tls, 1, TLS_NAME)

/*
 * [2]: the calling thread's current context. cuBLAS (cublasSgemm) and
 * cuBLASLt call it; public reverse engineering names it "get thread
 * context", and a driver stand-in checked against NVIDIA's returns the
 * current CUcontext through the pointer.
 */
static CUresult tls_thread_context(CUcontext *out)
{
	struct cv_ctx *c;

	if (!out)
		return CUDA_ERROR_INVALID_VALUE;
	c = cv_ctx_current();
	*out = c ? (CUcontext)(uintptr_t)cv_handle_of(&c->h) : NULL;
	return CUDA_SUCCESS;
}

/* Three slots, as NVIDIA's driver 580 has it (size word and two). */
static const void *const tls_table[3] = {
	TAB_SIZE(3), FN(stub_tls_1), FN(tls_thread_context),
};

/* ---- context-local storage (c6 93 33 6e ...) --------------------------- */

/*
 * The runtime keeps its per-context state here, one key per runtime copy
 * (a cuBLAS program has three). The destructor's prototype is ZLUDA's
 * (its dark_api crate): (context, key, value).
 */
typedef void (*cls_dtor_fn)(CUcontext ctx, void *key, void *value);

struct cls_entry {
	struct cls_entry *next;
	struct cv_ctx *ctx;
	CUcontext handle;       /* ctx's handle, for the destructor */
	void *key;
	void *value;
	cls_dtor_fn dtor;       /* may be NULL */
};

/* Every context's entries, newest first. A leaf lock: nothing is called
 * while it is held. Context objects are never freed, so ctx is a stable
 * identity. */
static pthread_mutex_t cls_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cls_entry *cls_head;

static struct cls_entry **cls_find_locked(struct cv_ctx *c, const void *key)
{
	struct cls_entry **e;

	for (e = &cls_head; *e; e = &(*e)->next)
		if ((*e)->ctx == c && (*e)->key == key)
			break;
	return e;
}

/* The context a CLS call names: h, or the calling thread's current one
 * when h is NULL. CUDA_ERROR_INVALID_CONTEXT when there is none. */
static CUresult cls_ctx(CUcontext h, struct cv_ctx **c, CUcontext *handle)
{
	struct cv_ctx *x;

	if (h)
		x = cv_handle_get((uint64_t)(uintptr_t)h, CV_H_CTX);
	else
		x = cv_ctx_current();
	if (!x || x->destroyed)
		return CUDA_ERROR_INVALID_CONTEXT;
	*c = x;
	*handle = h ? h : (CUcontext)(uintptr_t)cv_handle_of(&x->h);
	return CUDA_SUCCESS;
}

/* [0] put(ctx, key, value, dtor): adds, or replaces key's value and
 * destructor without running the old one. */
static CUresult cls_put(CUcontext h, void *key, void *value, cls_dtor_fn dtor)
{
	struct cls_entry **e, *n;
	struct cv_ctx *c;
	CUcontext handle;
	CUresult rc = cls_ctx(h, &c, &handle);

	if (rc)
		return rc;
	n = calloc(1, sizeof(*n));
	if (!n)
		return CUDA_ERROR_OUT_OF_MEMORY;
	pthread_mutex_lock(&cls_lock);
	e = cls_find_locked(c, key);
	if (*e) {
		(*e)->value = value;
		(*e)->dtor = dtor;
	} else {
		*n = (struct cls_entry){ cls_head, c, handle, key, value, dtor };
		cls_head = n;
		n = NULL;
	}
	pthread_mutex_unlock(&cls_lock);
	free(n);
	return CUDA_SUCCESS;
}

/* [1] delete(ctx, key): forgets key without running its destructor.
 * Deleting a missing key succeeds: a reset may have run and forgotten it
 * before the runtime tears its own state down. */
static CUresult cls_delete(CUcontext h, void *key)
{
	struct cls_entry **e, *dead;
	struct cv_ctx *c;
	CUcontext handle;
	CUresult rc = cls_ctx(h, &c, &handle);

	if (rc)
		return rc;
	pthread_mutex_lock(&cls_lock);
	e = cls_find_locked(c, key);
	dead = *e;
	if (dead)
		*e = dead->next;
	pthread_mutex_unlock(&cls_lock);
	free(dead);
	return CUDA_SUCCESS;
}

/* [2] get(void **value, ctx, key): CUDA_ERROR_INVALID_HANDLE when key has
 * no entry in the context (the runtime then creates its state and puts
 * it). */
static CUresult cls_get(void **value, CUcontext h, void *key)
{
	struct cls_entry *e;
	struct cv_ctx *c;
	CUcontext handle;
	CUresult rc;

	if (!value)
		return CUDA_ERROR_INVALID_VALUE;
	rc = cls_ctx(h, &c, &handle);
	if (rc)
		return rc;
	pthread_mutex_lock(&cls_lock);
	e = *cls_find_locked(c, key);
	if (e)
		*value = e->value;
	pthread_mutex_unlock(&cls_lock);
	return e ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

void cv_cls_ctx_release(struct cv_ctx *c)
{
	struct cls_entry *mine = NULL, **tail = &mine, **e, *x;

	pthread_mutex_lock(&cls_lock);
	for (e = &cls_head; *e;) {
		x = *e;
		if (x->ctx != c) {
			e = &x->next;
			continue;
		}
		*e = x->next;
		x->next = NULL;
		*tail = x;
		tail = &x->next;
	}
	pthread_mutex_unlock(&cls_lock);
	while ((x = mine)) {
		mine = x->next;
		if (x->dtor)
			x->dtor(x->handle, x->key, x->value);
		free(x);
	}
}

static const void *const cls_table[4] = {
	FN(cls_put), FN(cls_delete), FN(cls_get), NULL,
};

/* ---- context checks (26 3e 88 60 ...) ---------------------------------- */

/* [2] (CUcontext, uint32_t *out, void **out2): nothing to report. */
static CUresult checks_ctx(CUcontext ctx, uint32_t *out, void **out2)
{
	if (out)
		*out = 0;
	return CUDA_SUCCESS;
}

/* [3] () */
static uint32_t checks_3(void)
{
	return 0;
}

STUB(checks, 1, "context-checks")

static const void *const checks_table[4] = {
	TAB_SIZE(4), FN(stub_checks_1), FN(checks_ctx), FN(checks_3),
};

/* ---- integrity check (d4 08 20 55 ...) --------------------------------- */

/* The key the runtime expects (docs/cudart-binding.md). */
static const uint8_t integrity_key[16] = {
	0x14, 0x6a, 0xdd, 0xae, 0x53, 0xa9, 0xa7, 0x52,
	0xaa, 0x08, 0x41, 0x36, 0x0b, 0xf5, 0x5a, 0x9f,
};

static void put_le32(uint8_t *p, uint32_t v)
{
	for (unsigned int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (unsigned int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void cv_integrity_compute(uint32_t drv, uint32_t version, uint32_t pid,
			  uint32_t tid, const void *rt_tab, const void *int_tab,
			  const void *slot1, uint64_t secs,
			  const uint8_t uuid[16], int32_t dom, int32_t bus,
			  int32_t dev, uint64_t out[2])
{
	uint8_t rec[CV_INTEGRITY_RECORD], drec[CV_INTEGRITY_DEVICE_RECORD];
	uint8_t mac[CV_MD2_DIGEST];
	struct cv_hmac h;

	switch (version % 10) {
	case 0:
		out[0] = 0x3341181C03CB675Cull;
		out[1] = 0x8ED383AA1F4CD1E8ull;
		return;
	case 1:
		out[0] = 0x1841181C03CB675Cull;
		out[1] = 0x8ED383AA1F4CD1E8ull;
		return;
	}
	put_le32(rec + 0, drv);
	put_le32(rec + 4, version);
	put_le32(rec + 8, pid);
	put_le32(rec + 12, tid);
	put_le64(rec + 16, (uintptr_t)rt_tab);
	put_le64(rec + 24, (uintptr_t)int_tab);
	put_le64(rec + 32, (uintptr_t)slot1);
	put_le64(rec + 40, secs);
	memcpy(drec, uuid, 16);
	put_le32(drec + 16, (uint32_t)dom);
	put_le32(drec + 20, (uint32_t)bus);
	put_le32(drec + 24, (uint32_t)dev);

	/* Cannot fail: MD2's sizes are within HMAC's bounds. */
	if (cv_hmac_init(&h, &cv_md2_hash, integrity_key,
			 sizeof(integrity_key))) {
		memset(out, 0, 2 * sizeof(uint64_t));
		return;
	}
	cv_hmac_update(&h, rec, sizeof(rec));
	cv_hmac_update(&h, drec, sizeof(drec));
	cv_hmac_final(&h, mac);
	memcpy(out, mac, sizeof(mac));
}

static CUresult integrity_answer(uint32_t version, uint64_t secs,
				 uint64_t out[2]);

STUB(integrity, 2, "integrity-check")

static const void *const integrity_table[3] = {
	TAB_SIZE(3), FN(integrity_answer), FN(stub_integrity_2),
};

/* What the runtime reads of the device through the API, so that both
 * sides hash the same values. The vGPU is device 0, the only one. */
static CUresult device_ids(CUuuid *uuid, int *dom, int *bus, int *dev)
{
	CUresult rc = cuDeviceGetUuid_v2(uuid, 0);

	if (!rc)
		rc = cuDeviceGetAttribute(dom, CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID,
					  0);
	if (!rc)
		rc = cuDeviceGetAttribute(bus, CU_DEVICE_ATTRIBUTE_PCI_BUS_ID, 0);
	if (!rc)
		rc = cuDeviceGetAttribute(dev, CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID,
					  0);
	return rc;
}

/* [1] (uint32_t version, uint64_t unix_seconds, uint64_t out[2]) */
static CUresult integrity_answer(uint32_t version, uint64_t secs,
				 uint64_t out[2])
{
	CUuuid uuid = { { 0 } };
	int drv = 0, dom = 0, bus = 0, dev = 0;
	CUresult rc;

	if (!out)
		return CUDA_ERROR_INVALID_VALUE;
	if (version % 10 > 1) {
		rc = cuDriverGetVersion(&drv);
		if (!rc)
			rc = device_ids(&uuid, &dom, &bus, &dev);
		if (rc)
			return rc;
	}
	cv_integrity_compute((uint32_t)drv, version, (uint32_t)getpid(),
			     (uint32_t)(uintptr_t)pthread_self(), rt_table,
			     integrity_table, integrity_table[1], secs,
			     (const uint8_t *)uuid.bytes, dom, bus, dev, out);
	return CUDA_SUCCESS;
}

/* ---- tables past their size -------------------------------------------- */

/*
 * Room behind the tables below: their size word declares fewer slots than
 * the driver's current tables have, so a caller that indexes past the size
 * without checking it finds a stub that says so instead of whatever
 * follows the array.
 */
#define TAB_ROOM 128

static CUresult past_end(int *seen, const char *table, unsigned int slots)
{
	if (!__atomic_exchange_n(seen, 1, __ATOMIC_RELAXED))
		cv_warn("the program called a slot past the end (%u slots) of the driver's %s table, which cuvisor does not implement",
			slots, table);
	return CUDA_ERROR_NOT_SUPPORTED;
}

/* ---- tools context (21 31 8c 60 ...) ----------------------------------- */

/*
 * NVIDIA's "tools context" table (CU_ETID_ToolsContext): queries and
 * controls on a context for profilers and debuggers. cuFFT needs it: its
 * start-up (libcufft.so.12 of CUDA 13.0) fetches this table and the
 * tools-module table below right after cuInit and fails with
 * CUFFT_INTERNAL_ERROR when either is refused; afterwards it calls [4]
 * with the context of a plan's stream, to notice when that changes.
 *
 * The table grows at its end and slot 0 says how long it is. The 60
 * slots after it are those of an earlier release's declaration of the
 * table (drivers for CUDA 13.2 to 13.4 were measured elsewhere at 93 to
 * 95 slots): slots answered from cuvisor's state are implemented, the
 * others are stubs. A "tools stream" is the
 * driver's internal stream object, which tools may read through; cuvisor
 * has none to give, so every slot taking or returning one is a stub.
 *
 *  [1] (ctx, tools stream): synchronize     [2] the same: query
 *  [3] (ctx, uint32_t *ordinal): the context's device
 *  [4] (ctx, uint64_t *id): the context's unique id, as cuCtxGetId
 *  [5] (ctx, tools stream, uint64_t *id)    [6] (ctx): synchronize it
 *  [7] (uint32_t clear, uint32_t set): default context flags, void
 *  [8] (ctx, int *api): 1 = a CUDA context (0 = invalid), void
 *  [9] (ctx, CUlimit, size_t) set, [10] (ctx, CUlimit, size_t *) get
 *  [11]-[12] the null stream as a tools stream
 *  [13] (ctx, uint32_t *): as cuCtxGetApiVersion
 *  [14]-[15] local and shared memory window bases
 *  [16]-[20] tools stream <-> CUstream, create, destroy, its context
 *  [21]-[35] dynamic parallelism, power, local-memory layout, constant
 *       banks, scheduler, barrier stream, stream callbacks, enumeration
 *  [36] (ctx, int32_t *least, int32_t *greatest): stream priority range,
 *       both optional
 *  [37]-[39] stream priority, creation with flags, per-process stream id
 *  [40] (ctx, CUcontext *parent): the parent of a "dummy" context, NULL
 *       for an ordinary one (cuvisor has only ordinary contexts)
 *  [41]-[60] performance counters, event ids, clock boost, calls under
 *       the context lock, launch errors, MMU faults, tools stream from
 *       CUstream with a per-thread flag, preemption, capture graph,
 *       constant-bank pipeline, creation flags
 */
#define TCTX_NAME "tools-context"
#define TCTX_SLOTS 61

/* The context a slot names (its handle, or the current one for NULL). */
static CUresult tctx_ctx(CUcontext h)
{
	struct cv_ctx *c;
	CUcontext handle;
	CUresult rc = (CUresult)cv_g_ready();

	return rc ? rc : cls_ctx(h, &c, &handle);
}

/* [3] (ctx, uint32_t *ordinal) */
static CUresult tctx_device(CUcontext ctx, uint32_t *ordinal)
{
	CUdevice dev = 0;
	CUresult rc;

	if (!ordinal)
		return CUDA_ERROR_INVALID_VALUE;
	rc = cuCtxGetDevice_v2(&dev, ctx);
	if (!rc)
		*ordinal = (uint32_t)dev;
	return rc;
}

/* [4] (ctx, uint64_t *id): the id cuCtxGetId gives. */
static CUresult tctx_id(CUcontext ctx, uint64_t *id)
{
	unsigned long long v = 0;
	CUresult rc;

	if (!id)
		return CUDA_ERROR_INVALID_VALUE;
	rc = cuCtxGetId(ctx, &v);
	if (!rc)
		*id = v;
	return rc;
}

/* [6] (ctx) */
static CUresult tctx_sync(CUcontext ctx)
{
	return cuCtxSynchronize_v2(ctx);
}

/* [8] (ctx, int *api), void: which API made the context. */
static void tctx_api(CUcontext ctx, int *api)
{
	if (api)
		*api = tctx_ctx(ctx) == CUDA_SUCCESS ? 1 : 0;
}

/* [13] (ctx, uint32_t *version) */
static CUresult tctx_api_version(CUcontext ctx, uint32_t *version)
{
	unsigned int v = 0;
	CUresult rc;

	if (!version)
		return CUDA_ERROR_INVALID_VALUE;
	rc = cuCtxGetApiVersion(ctx, &v);
	if (!rc)
		*version = v;
	return rc;
}

/* [36] (ctx, int32_t *least, int32_t *greatest), both optional */
static CUresult tctx_prio_range(CUcontext ctx, int32_t *least,
				int32_t *greatest)
{
	CUresult rc = tctx_ctx(ctx);

	if (rc)
		return rc;
	if (least)
		*least = g.dev.prio_least;
	if (greatest)
		*greatest = g.dev.prio_greatest;
	return CUDA_SUCCESS;
}

/* [40] (ctx, CUcontext *parent) */
static CUresult tctx_parent(CUcontext ctx, CUcontext *parent)
{
	CUresult rc;

	if (!parent)
		return CUDA_ERROR_INVALID_VALUE;
	rc = tctx_ctx(ctx);
	if (!rc)
		*parent = NULL;
	return rc;
}

/*
 * Tools stream handles. cuvisor has no internal stream objects, so the
 * tools handle of a stream is its public handle; the legacy stream's is
 * CU_STREAM_LEGACY and a per-thread default stream's CU_STREAM_PER_THREAD.
 * cuBLAS turns the stream of each call into a tools handle ([51]) and
 * then asks for its unique id ([39]).
 */
static CUresult tstream_check(CUstream s)
{
	if (s == CU_STREAM_LEGACY || s == CU_STREAM_PER_THREAD)
		return CUDA_SUCCESS;
	return cv_handle_get((uint64_t)(uintptr_t)s, CV_H_STREAM) ?
		       CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

/* [51] StreamGetToolsHandleEx(ctx, stream, *tools, per_thread) */
static CUresult tctx_stream_handle(CUcontext ctx, CUstream s, void **out,
				   uint8_t per_thread)
{
	CUresult rc = tctx_ctx(ctx);

	if (rc)
		return rc;
	if (!out)
		return CUDA_ERROR_INVALID_VALUE;
	if (!s)
		s = per_thread ? CU_STREAM_PER_THREAD : CU_STREAM_LEGACY;
	rc = tstream_check(s);
	if (!rc)
		*out = (void *)s;
	return rc;
}

/* [5] and [39]: (ctx, tools stream, *id): the handle is unique (it carries
 * a generation), so it serves as the id. */
static CUresult tctx_stream_id(CUcontext ctx, void *ts, uint64_t *id)
{
	CUresult rc = tctx_ctx(ctx);

	if (rc)
		return rc;
	if (!id)
		return CUDA_ERROR_INVALID_VALUE;
	rc = tstream_check((CUstream)ts);
	if (!rc)
		*id = (uint64_t)(uintptr_t)ts;
	return rc;
}

/* [16] StreamGetPublicHandle(tools stream, *stream) */
static CUresult tctx_stream_public(void *ts, CUstream *out)
{
	CUresult rc;

	if (!ts || !out)
		return CUDA_ERROR_INVALID_VALUE;
	rc = tstream_check((CUstream)ts);
	if (!rc)
		*out = (CUstream)ts;
	return rc;
}

STUB(tctx, 1, TCTX_NAME) STUB(tctx, 2, TCTX_NAME)
STUB(tctx, 7, TCTX_NAME) STUB(tctx, 9, TCTX_NAME) STUB(tctx, 10, TCTX_NAME)
STUB(tctx, 11, TCTX_NAME) STUB(tctx, 12, TCTX_NAME) STUB(tctx, 14, TCTX_NAME)
STUB(tctx, 15, TCTX_NAME) STUB(tctx, 17, TCTX_NAME)
STUB(tctx, 18, TCTX_NAME) STUB(tctx, 19, TCTX_NAME) STUB(tctx, 20, TCTX_NAME)
STUB(tctx, 21, TCTX_NAME) STUB(tctx, 22, TCTX_NAME) STUB(tctx, 23, TCTX_NAME)
STUB(tctx, 24, TCTX_NAME) STUB(tctx, 25, TCTX_NAME) STUB(tctx, 26, TCTX_NAME)
STUB(tctx, 27, TCTX_NAME) STUB(tctx, 28, TCTX_NAME) STUB(tctx, 29, TCTX_NAME)
STUB(tctx, 30, TCTX_NAME) STUB(tctx, 31, TCTX_NAME) STUB(tctx, 32, TCTX_NAME)
STUB(tctx, 33, TCTX_NAME) STUB(tctx, 34, TCTX_NAME) STUB(tctx, 35, TCTX_NAME)
STUB(tctx, 37, TCTX_NAME) STUB(tctx, 38, TCTX_NAME)
STUB(tctx, 41, TCTX_NAME) STUB(tctx, 42, TCTX_NAME) STUB(tctx, 43, TCTX_NAME)
STUB(tctx, 44, TCTX_NAME) STUB(tctx, 45, TCTX_NAME) STUB(tctx, 46, TCTX_NAME)
STUB(tctx, 47, TCTX_NAME) STUB(tctx, 48, TCTX_NAME) STUB(tctx, 49, TCTX_NAME)
STUB(tctx, 50, TCTX_NAME) STUB(tctx, 52, TCTX_NAME)
STUB(tctx, 53, TCTX_NAME) STUB(tctx, 54, TCTX_NAME) STUB(tctx, 55, TCTX_NAME)
STUB(tctx, 56, TCTX_NAME) STUB(tctx, 57, TCTX_NAME) STUB(tctx, 58, TCTX_NAME)
STUB(tctx, 59, TCTX_NAME) STUB(tctx, 60, TCTX_NAME)

static CUresult tctx_past_end(void)
{
	static int seen;

	return past_end(&seen, TCTX_NAME, TCTX_SLOTS);
}

#define S(n) FN(stub_tctx_##n)
static const void *const tctx_table[TAB_ROOM] = {
	TAB_SIZE(TCTX_SLOTS),
	S(1), S(2), FN(tctx_device), FN(tctx_id), FN(tctx_stream_id),
	FN(tctx_sync),
	S(7), FN(tctx_api), S(9), S(10), S(11), S(12), FN(tctx_api_version),
	S(14), S(15), FN(tctx_stream_public), S(17), S(18), S(19), S(20), S(21), S(22),
	S(23), S(24), S(25), S(26), S(27), S(28), S(29), S(30), S(31),
	S(32), S(33), S(34), S(35), FN(tctx_prio_range), S(37), S(38),
	FN(tctx_stream_id), FN(tctx_parent), S(41), S(42), S(43), S(44), S(45), S(46),
	S(47), S(48), S(49), S(50), FN(tctx_stream_handle), S(52), S(53), S(54), S(55),
	S(56), S(57), S(58), S(59), S(60),
	[TCTX_SLOTS ... TAB_ROOM - 1] = FN(tctx_past_end),
};
#undef S

/* ---- tools module (6e 16 3f be ...) ------------------------------------ */

/*
 * NVIDIA's "tools module" table (CU_ETID_ToolsModule): queries on modules
 * and functions for tools. cuFFT needs it to exist (above) and checks
 * that it has more than 7 slots before calling [7]
 *	(CUcontext, CUmodule, void (*cb)(void *arg, CUfunction f, ...), arg)
 * which calls cb once per function of the module and returns how many it
 * called it for: cuFFT loads each of its kernels as a module of its own
 * (cuModuleLoadData of a fat binary) and takes, when the answer is 1, the
 * function its callback saw. [7] is answered with the public
 * cuModuleGetFunctionCount and cuModuleEnumerateFunctions; where those
 * fail it calls nothing and returns 0, and cuFFT fails that plan. Only
 * [7]'s prefix is declared (the driver's table is longer: tools also use
 * [20]-[22] for debugger parameters); the other slots are stubs.
 */
#define TMOD_NAME "tools-module"
#define TMOD_SLOTS 8

/* The callback's third argument is not known; it gets NULL. */
typedef void (*tmod_fn_cb)(void *arg, CUfunction f, void *unknown);

/* [7] (CUcontext, CUmodule, cb, arg): how many functions cb was given. */
static uint64_t tmod_functions(CUcontext ctx, CUmodule mod, tmod_fn_cb cb,
			       void *arg)
{
	static int seen;
	CUfunction *fs = NULL;
	unsigned int n = 0, i;
	CUresult rc = cuModuleGetFunctionCount(&n, mod);

	if (!rc && n) {
		fs = calloc(n, sizeof(*fs));
		rc = fs ? cuModuleEnumerateFunctions(fs, n, mod) :
			  CUDA_ERROR_OUT_OF_MEMORY;
	}
	if (rc) {
		if (!__atomic_exchange_n(&seen, 1, __ATOMIC_RELAXED))
			cv_warn("slot [7] of the driver's %s table (enumerate a module's functions) failed: CUresult %d; it enumerates none",
				TMOD_NAME, (int)rc);
		free(fs);
		return 0;
	}
	for (i = 0; i < n && cb; i++)
		cb(arg, fs[i], NULL);
	free(fs);
	return n;
}

STUB(tmod, 1, TMOD_NAME) STUB(tmod, 2, TMOD_NAME) STUB(tmod, 3, TMOD_NAME)
STUB(tmod, 4, TMOD_NAME) STUB(tmod, 5, TMOD_NAME) STUB(tmod, 6, TMOD_NAME)

static CUresult tmod_past_end(void)
{
	static int seen;

	return past_end(&seen, TMOD_NAME, TMOD_SLOTS);
}

static const void *const tmod_table[TAB_ROOM] = {
	TAB_SIZE(TMOD_SLOTS),
	FN(stub_tmod_1), FN(stub_tmod_2), FN(stub_tmod_3), FN(stub_tmod_4),
	FN(stub_tmod_5), FN(stub_tmod_6), FN(tmod_functions),
	[TMOD_SLOTS ... TAB_ROOM - 1] = FN(tmod_past_end),
};

/* ---- lookup ------------------------------------------------------------ */

struct export {
	uint8_t uuid[16];
	const char *name;
	const void *table; /* NULL: known, deliberately refused */
};

static const struct export exports[] = {
	{ { 0xf8, 0xcf, 0xf9, 0x51, 0x21, 0x46, 0x8b, 0x4e,
	    0xb9, 0xe2, 0xfb, 0x46, 0x9e, 0x7c, 0x0d, 0xd9 },
	  /* Optional; its message callback's prototype is not known well
	   * enough to be called safely. */
	  "error-message sink", NULL },
	{ { 0x6b, 0xd5, 0xfb, 0x6c, 0x5b, 0xf4, 0xe7, 0x4a,
	    0x89, 0x87, 0xd9, 0x39, 0x12, 0xfd, 0x9d, 0xf9 },
	  "runtime interface", rt_table },
	{ { 0xa0, 0x94, 0x79, 0x8c, 0x2e, 0x74, 0x2e, 0x74,
	    0x93, 0xf2, 0x08, 0x00, 0x20, 0x0c, 0x0a, 0x66 },
	  "tools callback hooks", hooks_table },
	{ { 0x42, 0xd8, 0x5a, 0x81, 0x23, 0xf6, 0xcb, 0x47,
	    0x82, 0x98, 0xf6, 0xe7, 0x8a, 0x3a, 0xec, 0xdc },
	  "tools thread-local storage", tls_table },
	{ { 0xc6, 0x93, 0x33, 0x6e, 0x11, 0x21, 0xdf, 0x11,
	    0xa8, 0xc3, 0x68, 0xf3, 0x55, 0xd8, 0x95, 0x93 },
	  "context-local storage", cls_table },
	{ { 0x26, 0x3e, 0x88, 0x60, 0x7c, 0xd2, 0x61, 0x43,
	    0x92, 0xf6, 0xbb, 0xd5, 0x00, 0x6d, 0xfa, 0x7e },
	  "context checks", checks_table },
	{ { 0xd4, 0x08, 0x20, 0x55, 0xbd, 0xe6, 0x70, 0x4b,
	    0x8d, 0x34, 0xba, 0x12, 0x3c, 0x66, 0xe1, 0xf2 },
	  "integrity check", integrity_table },
	{ { 0x21, 0x31, 0x8c, 0x60, 0x97, 0x14, 0x32, 0x48,
	    0x8c, 0xa6, 0x41, 0xff, 0x73, 0x24, 0xc8, 0xf2 },
	  "tools context", tctx_table },
	{ { 0x6e, 0x16, 0x3f, 0xbe, 0xb9, 0x58, 0x44, 0x4d,
	    0x83, 0x5c, 0xe1, 0x82, 0xaf, 0xf1, 0x99, 0x1e },
	  "tools module", tmod_table },
};

/* Warns once per unknown UUID (the first 16 distinct ones). */
static void log_unknown(const uint8_t *u)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static uint8_t seen[16][16];
	static unsigned int nseen;
	char hex[16 * 3 + 1];
	bool fresh = true;
	unsigned int i;

	pthread_mutex_lock(&lock);
	for (i = 0; i < nseen && fresh; i++)
		fresh = memcmp(seen[i], u, 16) != 0;
	if (fresh && nseen < CV_ARRAY_SIZE(seen))
		memcpy(seen[nseen++], u, 16);
	else
		fresh = false;
	pthread_mutex_unlock(&lock);
	if (!fresh)
		return;
	for (i = 0; i < 16; i++)
		snprintf(hex + 3 * i, sizeof(hex) - 3 * i, "%02x ", u[i]);
	hex[16 * 3 - 1] = 0;
	cv_warn("cuGetExportTable: unknown table %s: refused", hex);
}

CV_API CUresult cuGetExportTable(const void **ppExportTable,
				 const CUuuid *pExportTableId)
{
	const uint8_t *u;
	unsigned int i;

	if (!ppExportTable || !pExportTableId)
		return CUDA_ERROR_INVALID_VALUE;
	*ppExportTable = NULL;
	u = (const uint8_t *)pExportTableId->bytes;
	for (i = 0; i < CV_ARRAY_SIZE(exports); i++) {
		if (memcmp(exports[i].uuid, u, 16))
			continue;
		if (!exports[i].table) {
			cv_dbg("cuGetExportTable: %s table refused",
			       exports[i].name);
			return CUDA_ERROR_INVALID_VALUE;
		}
		*ppExportTable = exports[i].table;
		return CUDA_SUCCESS;
	}
	log_unknown(u);
	return CUDA_ERROR_INVALID_VALUE;
}

/* SPDX-License-Identifier: MIT */
/*
 * The driver's private tables (cuGetExportTable), as the CUDA runtime
 * uses them (docs/cudart-binding.md): sizes, the primary context's handle
 * without a reference, the tools buffers, the context checks, the
 * integrity answer (constants, and the HMAC-MD2 recomputed here from the
 * public API) and context-local storage with destructors that run on
 * cuCtxDestroy and cuDevicePrimaryCtxReset. Checks read the same natively
 * and under cuvisor; what only differs in value goes on "#" lines.
 *
 * Links guest/md2.o and guest/hmac.o (see tests/Makefile.inc).
 */
#include "cvtest.h"

#include "../../guest/hmac.h"
#include "../../guest/md2.h"

/* A table slot as a function of the given type. */
#define SLOT(tab, i, type) ((type)(uintptr_t)((const void *const *)(tab))[i])

static const struct {
	const char *name;
	uint8_t uuid[16];
	unsigned int slots; /* 0: no size word (CLS) */
} tables[] = {
	{ "runtime interface", { 0x6b, 0xd5, 0xfb, 0x6c, 0x5b, 0xf4, 0xe7,
	  0x4a, 0x89, 0x87, 0xd9, 0x39, 0x12, 0xfd, 0x9d, 0xf9 }, 13 },
	{ "tools callback hooks", { 0xa0, 0x94, 0x79, 0x8c, 0x2e, 0x74, 0x2e,
	  0x74, 0x93, 0xf2, 0x08, 0x00, 0x20, 0x0c, 0x0a, 0x66 }, 7 },
	{ "tools thread-local storage", { 0x42, 0xd8, 0x5a, 0x81, 0x23, 0xf6,
	  0xcb, 0x47, 0x82, 0x98, 0xf6, 0xe7, 0x8a, 0x3a, 0xec, 0xdc }, 3 },
	{ "context-local storage", { 0xc6, 0x93, 0x33, 0x6e, 0x11, 0x21, 0xdf,
	  0x11, 0xa8, 0xc3, 0x68, 0xf3, 0x55, 0xd8, 0x95, 0x93 }, 0 },
	{ "context checks", { 0x26, 0x3e, 0x88, 0x60, 0x7c, 0xd2, 0x61, 0x43,
	  0x92, 0xf6, 0xbb, 0xd5, 0x00, 0x6d, 0xfa, 0x7e }, 4 },
	{ "integrity check", { 0xd4, 0x08, 0x20, 0x55, 0xbd, 0xe6, 0x70, 0x4b,
	  0x8d, 0x34, 0xba, 0x12, 0x3c, 0x66, 0xe1, 0xf2 }, 3 },
};
enum { T_RT, T_HOOKS, T_TLS, T_CLS, T_CHECKS, T_INTEGRITY, T_N };

static const uint8_t sink_uuid[16] = { 0xf8, 0xcf, 0xf9, 0x51, 0x21, 0x46,
	0x8b, 0x4e, 0xb9, 0xe2, 0xfb, 0x46, 0x9e, 0x7c, 0x0d, 0xd9 };
static const uint8_t unknown_uuid[16] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55,
	0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff };

static const void *tab[T_N];

static CUresult get_table(const uint8_t uuid[16], const void **t)
{
	CUuuid id;

	memcpy(id.bytes, uuid, 16);
	*t = NULL;
	return cuGetExportTable(t, &id);
}

static void check_tables(void)
{
	const void *t;
	CUresult r;

	for (unsigned int i = 0; i < T_N; i++) {
		if (!CVT_CU(get_table(tables[i].uuid, &tab[i]),
			    "cuGetExportTable(%s)", tables[i].name) || !tab[i])
			cvt_bail("no %s table", tables[i].name);
		/* Tables grow at their end: NVIDIA's driver may have more
		 * slots than the runtime uses (it does for the tools-TLS and
		 * context-check tables with driver 580). */
		if (tables[i].slots) {
			cvt_check(SLOT(tab[i], 0, uintptr_t) >=
					  tables[i].slots * sizeof(void *) &&
				  SLOT(tab[i], 0, uintptr_t) %
					  sizeof(void *) == 0,
				  "%s: slot 0 is its size, at least %u slots",
				  tables[i].name, tables[i].slots);
			cvt_note("%s: %zu slots", tables[i].name,
				 (size_t)(SLOT(tab[i], 0, uintptr_t) /
					  sizeof(void *)));
		}
	}
	cvt_check(SLOT(tab[T_CLS], 0, void *) && SLOT(tab[T_CLS], 1, void *) &&
		  SLOT(tab[T_CLS], 2, void *),
		  "context-local storage: put, delete and get are set");
	r = get_table(unknown_uuid, &t);
	cvt_check(r != CUDA_SUCCESS, "an unknown UUID is refused");
	cvt_note("unknown UUID: %s (%d)", cvt_errname(r), (int)r);
	/* Optional: the real driver has it, cuvisor refuses it. */
	r = get_table(sink_uuid, &t);
	cvt_note("error-message sink: %s (%d)", cvt_errname(r), (int)r);
}

/* ---- runtime interface [2], tools hooks, context checks ------------- */

typedef CUresult (*primary_fn)(CUcontext *, CUdevice);
typedef void (*buf_fn)(void **, size_t *);
typedef CUresult (*check_fn)(CUcontext, uint32_t *, void **);
typedef uint32_t (*check3_fn)(void);

static bool active(CUdevice dev)
{
	unsigned int flags = 0;
	int on = -1;

	cuDevicePrimaryCtxGetState(dev, &flags, &on);
	return on == 1;
}

/* Called before anything retained the primary context. */
static void check_primary_handle(CUdevice dev)
{
	CUcontext h = NULL, p = NULL;

	cvt_check(!active(dev), "primary context inactive at start");
	CVT_CU(SLOT(tab[T_RT], 2, primary_fn)(&h, dev),
	       "runtime interface [2] (primary context handle)");
	cvt_check(h != NULL, "[2] gives a handle");
	cvt_check(!active(dev), "[2] neither retains nor activates it");
	CVT_CU(cuDevicePrimaryCtxRetain(&p, dev), "cuDevicePrimaryCtxRetain");
	cvt_check(p == h, "[2] is the handle cuDevicePrimaryCtxRetain returns");
	CVT_CU(SLOT(tab[T_RT], 2, primary_fn)(&h, dev), "[2] once retained");
	cvt_check(p == h, "[2] the same handle once retained");
	CVT_CU(cuCtxSetCurrent(p), "cuCtxSetCurrent(primary)");
}

static bool zeros(const uint32_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static void check_hooks_and_checks(void)
{
	void *buf = NULL, *out2 = NULL;
	uint32_t out = 7;
	size_t n = 0;
	CUcontext cur = NULL;

	SLOT(tab[T_HOOKS], 2, buf_fn)(&buf, &n);
	cvt_check(buf && n == 1024 && zeros(buf, n),
		  "tools hooks [2]: 1024 zero entries");
	cvt_note("hooks [2]: %zu entries", n);
	buf = NULL;
	n = 0;
	SLOT(tab[T_HOOKS], 6, buf_fn)(&buf, &n);
	cvt_check(buf && n == 14 && zeros(buf, n),
		  "tools hooks [6]: 14 zero entries");
	cvt_note("hooks [6]: %zu entries", n);
	cuCtxGetCurrent(&cur);
	CVT_CU(SLOT(tab[T_CHECKS], 2, check_fn)(cur, &out, &out2),
	       "context checks [2]");
	cvt_check(out == 0, "context checks [2] reports 0");
	cvt_check(SLOT(tab[T_CHECKS], 3, check3_fn)() == 0,
		  "context checks [3] returns 0");
}

/* ---- tools context and tools module (what cuFFT needs) --------------- */

typedef CUresult (*tctx_dev_fn)(CUcontext, uint32_t *);
typedef CUresult (*tctx_id_fn)(CUcontext, uint64_t *);

static const uint8_t tctx_uuid[16] = { 0x21, 0x31, 0x8c, 0x60, 0x97, 0x14,
	0x32, 0x48, 0x8c, 0xa6, 0x41, 0xff, 0x73, 0x24, 0xc8, 0xf2 };
static const uint8_t tmod_uuid[16] = { 0x6e, 0x16, 0x3f, 0xbe, 0xb9, 0x58,
	0x44, 0x4d, 0x83, 0x5c, 0xe1, 0x82, 0xaf, 0xf1, 0x99, 0x1e };

/*
 * cuFFT fetches both tables at start-up, calls the tools context's [4]
 * (the context id) and, after checking that the tools module has more
 * than 7 slots, its [7]. Their sizes differ by driver: "#" lines.
 */
static void check_tools_tables(CUdevice dev, CUcontext primary)
{
	const void *t = NULL, *m = NULL;
	unsigned long long want = 0;
	uint64_t id = 0;
	uint32_t ord = 99;
	CUcontext c = NULL;

	if (!CVT_CU(get_table(tctx_uuid, &t), "cuGetExportTable(tools context)") ||
	    !CVT_CU(get_table(tmod_uuid, &m), "cuGetExportTable(tools module)") ||
	    !t || !m) {
		cvt_check(false, "tools context and tools module tables exist");
		return;
	}
	cvt_check(SLOT(t, 0, uintptr_t) >= 5 * sizeof(void *),
		  "tools context: at least 5 slots");
	cvt_note("tools context: %zu slots",
		 SLOT(t, 0, uintptr_t) / sizeof(void *));
	cvt_check(SLOT(m, 0, uintptr_t) > 7 * sizeof(void *),
		  "tools module: more than 7 slots");
	cvt_note("tools module: %zu slots",
		 SLOT(m, 0, uintptr_t) / sizeof(void *));
	CVT_CU(cuCtxGetId(primary, &want), "cuCtxGetId(primary)");
	CVT_CU(SLOT(t, 4, tctx_id_fn)(primary, &id), "tools context [4] (primary)");
	cvt_check(id == want, "tools context [4] is cuCtxGetId's id");
	CVT_CU(SLOT(t, 3, tctx_dev_fn)(primary, &ord), "tools context [3]");
	cvt_check(ord == (uint32_t)dev, "tools context [3] is the device");
	if (!CVT_CU(cuCtxCreate(&c, NULL, 0, dev), "cuCtxCreate"))
		return;
	CVT_CU(cuCtxGetId(c, &want), "cuCtxGetId(created)");
	/* What [4] answers for NULL differs: cuvisor takes the current
	 * context, the driver does not (seen with 580). A note, not a check. */
	id = 0;
	cvt_note("tools context [4] of NULL: result %d, %s the current context",
		 (int)SLOT(t, 4, tctx_id_fn)(NULL, &id),
		 id == want ? "is" : "is not");
	CVT_CU(cuCtxDestroy(c), "cuCtxDestroy");
	CVT_CU(cuCtxSetCurrent(primary), "primary current again");
}

/* ---- integrity --------------------------------------------------------- */

typedef CUresult (*integrity_fn)(uint32_t, uint64_t, uint64_t *);

static const uint8_t integrity_key[16] = { 0x14, 0x6a, 0xdd, 0xae, 0x53,
	0xa9, 0xa7, 0x52, 0xaa, 0x08, 0x41, 0x36, 0x0b, 0xf5, 0x5a, 0x9f };

static void le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/*
 * The answer for version on this thread, computed from what the public
 * API says: HMAC-MD2 over a 48-byte record (driver version, version, pid,
 * thread, runtime-interface table, integrity table, its slot [1],
 * seconds) and a 28-byte record per device (UUID, PCI domain, bus,
 * device). False when a query failed.
 */
static bool expected_answer(uint32_t version, uint64_t secs, uint64_t out[2])
{
	uint8_t rec[48], drec[28], mac[16];
	int drv = 0, n = 0, v[3];
	struct cv_hmac h;
	CUuuid u;

	if (cuDriverGetVersion(&drv) || cuDeviceGetCount(&n) ||
	    cv_hmac_init(&h, &cv_md2_hash, integrity_key, 16))
		return false;
	le32(rec, (uint32_t)drv);
	le32(rec + 4, version);
	le32(rec + 8, (uint32_t)getpid());
	le32(rec + 12, (uint32_t)(uintptr_t)pthread_self());
	le64(rec + 16, (uintptr_t)tab[T_RT]);
	le64(rec + 24, (uintptr_t)tab[T_INTEGRITY]);
	le64(rec + 32, SLOT(tab[T_INTEGRITY], 1, uintptr_t));
	le64(rec + 40, secs);
	cv_hmac_update(&h, rec, sizeof(rec));
	for (CUdevice d = 0; d < n; d++) {
		if (cuDeviceGetUuid_v2(&u, d) ||
		    cuDeviceGetAttribute(&v[0], CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID, d) ||
		    cuDeviceGetAttribute(&v[1], CU_DEVICE_ATTRIBUTE_PCI_BUS_ID, d) ||
		    cuDeviceGetAttribute(&v[2], CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID, d))
			return false;
		memcpy(drec, u.bytes, 16);
		for (int i = 0; i < 3; i++)
			le32(drec + 16 + 4 * i, (uint32_t)v[i]);
		cv_hmac_update(&h, drec, sizeof(drec));
	}
	cv_hmac_final(&h, mac);
	memcpy(out, mac, 16);
	return true;
}

struct answer {
	uint64_t secs;
	uint64_t out[2];
	CUresult r;
};

static void *answer_thread(void *arg)
{
	struct answer *a = arg;

	a->r = SLOT(tab[T_INTEGRITY], 1, integrity_fn)(13002, a->secs, a->out);
	return NULL;
}

static void check_integrity(void)
{
	integrity_fn fn = SLOT(tab[T_INTEGRITY], 1, integrity_fn);
	uint64_t out[2] = { 0 }, again[2] = { 0 }, later[2] = { 0 }, want[2];
	uint64_t secs = (uint64_t)time(NULL);
	struct answer other = { .secs = secs };
	pthread_t t;

	CVT_CU(fn(13000, secs, out), "integrity [1](13000)");
	cvt_check(out[0] == 0x3341181C03CB675Cull &&
		  out[1] == 0x8ED383AA1F4CD1E8ull,
		  "integrity answer for 13000 is the constant");
	CVT_CU(fn(13001, secs, out), "integrity [1](13001)");
	cvt_check(out[0] == 0x1841181C03CB675Cull &&
		  out[1] == 0x8ED383AA1F4CD1E8ull,
		  "integrity answer for 13001 is the constant");
	CVT_CU(fn(13002, secs, out), "integrity [1](13002)");
	CVT_CU(fn(13002, secs, again), "integrity [1](13002) again");
	cvt_check(out[0] == again[0] && out[1] == again[1],
		  "13002: the same answer for the same second and thread");
	cvt_note("13002 answer %016" PRIx64 " %016" PRIx64, out[0], out[1]);
	CVT_CU(fn(13002, secs + 1, later), "integrity [1](13002), next second");
	cvt_check(later[0] != out[0] || later[1] != out[1],
		  "13002: another second gives another answer");
	pthread_create(&t, NULL, answer_thread, &other);
	pthread_join(t, NULL);
	CVT_CU(other.r, "integrity [1](13002) on another thread");
	cvt_check(other.out[0] != out[0] || other.out[1] != out[1],
		  "13002: another thread gives another answer");
	cvt_check(expected_answer(13002, secs, want) && want[0] == out[0] &&
		  want[1] == out[1],
		  "13002: HMAC-MD2 of the process, thread, tables and devices");
	cvt_note("expected      %016" PRIx64 " %016" PRIx64, want[0], want[1]);
}

/* ---- context-local storage ------------------------------------------- */

typedef void (*dtor_fn)(CUcontext, void *, void *);
typedef CUresult (*put_fn)(CUcontext, void *, void *, dtor_fn);
typedef CUresult (*del_fn)(CUcontext, void *);
typedef CUresult (*get_fn)(void **, CUcontext, void *);

#define MAX_CALLS 8
static struct {
	CUcontext ctx;
	void *key, *value;
} calls[MAX_CALLS];
static int ncalls;

/* The destructor, as ZLUDA documents it: (context, key, value). */
static void dtor(CUcontext ctx, void *key, void *value)
{
	if (ncalls < MAX_CALLS) {
		calls[ncalls].ctx = ctx;
		calls[ncalls].key = key;
		calls[ncalls].value = value;
	}
	ncalls++;
}

static char key1, key2, val1, val2, val3;

static void *cls_value(CUcontext c, void *key, CUresult *r)
{
	void *v = NULL;

	*r = SLOT(tab[T_CLS], 2, get_fn)(&v, c, key);
	return v;
}

static void check_cls_created(CUdevice dev, CUcontext primary)
{
	put_fn put = SLOT(tab[T_CLS], 0, put_fn);
	CUcontext c = NULL;
	CUresult r;

	if (!CVT_CU(cuCtxCreate(&c, NULL, 0, dev), "cuCtxCreate"))
		return;
	CVT_CU(put(NULL, &key1, &val3, dtor), "CLS put in a created context");
	cvt_check(cls_value(NULL, &key1, &r) == &val3 && r == CUDA_SUCCESS,
		  "CLS: the created context has its own value");
	cvt_check(cls_value(primary, &key1, &r) == &val1 && r == CUDA_SUCCESS,
		  "CLS: the primary context keeps its value");
	ncalls = 0;
	CVT_CU(cuCtxDestroy(c), "cuCtxDestroy");
	cvt_check(ncalls == 1 && calls[0].ctx == c && calls[0].key == &key1 &&
		  calls[0].value == &val3,
		  "cuCtxDestroy runs the destructor once, as (ctx, key, value)");
	cvt_note("destructor calls: %d", ncalls);
	CVT_CU(cuCtxSetCurrent(primary), "primary current again");
}

static void check_cls(CUdevice dev, CUcontext primary)
{
	put_fn put = SLOT(tab[T_CLS], 0, put_fn);
	del_fn del = SLOT(tab[T_CLS], 1, del_fn);
	CUcontext p = NULL;
	CUresult r;

	cls_value(NULL, &key1, &r);
	cvt_check(r != CUDA_SUCCESS, "CLS get of a missing key fails");
	cvt_note("missing key: %s (%d)", cvt_errname(r), (int)r);
	CVT_CU(put(NULL, &key1, &val1, dtor), "CLS put key1 (current context)");
	cvt_check(cls_value(NULL, &key1, &r) == &val1 && r == CUDA_SUCCESS,
		  "CLS get key1 (current context)");
	cvt_check(cls_value(primary, &key1, &r) == &val1 && r == CUDA_SUCCESS,
		  "CLS get key1 by handle");
	CVT_CU(put(primary, &key2, &val2, dtor), "CLS put key2 by handle");
	cvt_check(cls_value(NULL, &key2, &r) == &val2 && r == CUDA_SUCCESS,
		  "CLS get key2");
	CVT_CU(del(primary, &key2), "CLS delete key2");
	cls_value(NULL, &key2, &r);
	cvt_check(r != CUDA_SUCCESS, "CLS get of a deleted key fails");
	cvt_check(ncalls == 0, "CLS delete runs no destructor");

	check_cls_created(dev, primary);

	ncalls = 0;
	CVT_CU(cuDevicePrimaryCtxReset(dev), "cuDevicePrimaryCtxReset");
	cvt_check(ncalls == 1 && calls[0].ctx == primary &&
		  calls[0].key == &key1 && calls[0].value == &val1,
		  "the reset runs the destructor once, as (ctx, key, value)");
	cvt_note("destructor calls: %d", ncalls);
	CVT_CU(cuDevicePrimaryCtxRetain(&p, dev), "retain after the reset");
	CVT_CU(cuCtxSetCurrent(p), "cuCtxSetCurrent(primary)");
	cls_value(NULL, &key1, &r);
	cvt_check(r != CUDA_SUCCESS, "CLS entries are gone after the reset");
	ncalls = 0;
	CVT_CU(cuDevicePrimaryCtxRelease(dev), "release");
	cvt_check(ncalls == 0, "no destructor runs twice");
}

int main(void)
{
	CUdevice dev;
	CUcontext primary = NULL;
	CUresult r;

	if ((r = cuInit(0)) != CUDA_SUCCESS)
		cvt_bail("cuInit failed: %s (%d)", cvt_errname(r), (int)r);
	if ((r = cuDeviceGet(&dev, 0)) != CUDA_SUCCESS)
		cvt_bail("cuDeviceGet(0) failed: %s", cvt_errname(r));
	check_tables();
	check_primary_handle(dev);
	cuCtxGetCurrent(&primary);
	check_hooks_and_checks();
	check_integrity();
	check_tools_tables(dev, primary);
	check_cls(dev, primary);
	return cvt_done();
}

/* SPDX-License-Identifier: MIT */
/*
 * The cuda backend: the tenant's vGPU on a real GPU, through the real
 * driver.
 *
 * The driver is never linked: it is dlopen'ed by absolute path (the search
 * path would find the guest library), only cuGetProcAddress_v2 is looked up
 * with dlsym, and every entry point is resolved through it at one explicit
 * ABI version (backend_cuda_api.h).
 *
 * The tenant's context is the device's primary context. Every op first
 * makes it current on the calling thread (the consumer and the completion
 * thread both call in); a thread-local remembers that it already is.
 *
 * Backend objects are the driver's own handles (CUstream, CUevent,
 * CUmodule, CUfunction), except physical memory, which is wrapped so that
 * a handle of value 0 stays distinguishable from "no object".
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/digest.h"
#include "../core/log.h"
#include "backend.h"
#include "backend_cuda_api.h"
#include "backend_image.h"

_Static_assert(sizeof(CUlaunchAttribute) == sizeof(struct cv_launch_attr),
	       "launch attr size");
_Static_assert(offsetof(CUlaunchAttribute, value) ==
		       offsetof(struct cv_launch_attr, value),
	       "launch attr value offset");
_Static_assert(sizeof(CUlaunchAttributeID) == 4, "launch attr id size");
_Static_assert(sizeof(CUlaunchAttributeValue) == 64, "launch attr value");
_Static_assert(CU_DEVICE_ATTRIBUTE_MAX <= CV_DEV_NATTR, "devinfo attrs");
_Static_assert(sizeof(CUhostFn) == sizeof(cv_bhostfn), "host fn");

struct cv_cuda {
	void *dl;               /* never closed: the driver owns threads */
	struct cv_cuda_api api;
	CUdevice dev;
	CUcontext ctx;          /* the retained primary context */
	struct cv_cuda_dg *dg;  /* digest state, NULL until the first one */
	int sms;                /* multiprocessors, for a gentle digest */
};

/* Physical memory from mem_create. */
struct cv_cuda_mem {
	CUmemGenericAllocationHandle h;
	uint64_t size;
	bool exportable;        /* created with a POSIX fd handle type */
	int fd;                 /* imported from this fd (kept), else -1:
				 * the driver does not export an imported
				 * handle again, so the next move hands on
				 * a duplicate of this one */
};

/* The context current on this thread, as far as this backend knows. */
static __thread CUcontext cv_cuda_cur;

static inline struct cv_cuda *to_cuda(struct cv_backend *b)
{
	return (struct cv_cuda *)b;
}

static inline CUstream cv_cuda_stream(cv_bobj s)
{
	return s ? (CUstream)s : CU_STREAM_LEGACY;
}

static const char *cv_cuda_ename(const struct cv_cuda_api *api, CUresult r)
{
	const char *s = NULL;

	if (!api->cuGetErrorName || api->cuGetErrorName(r, &s) || !s)
		return "CUDA_ERROR_?";
	return s;
}

/* ---- loading the driver ---------------------------------------------- */

#define CV_CUDA_SYM(name, ver) { #name, offsetof(struct cv_cuda_api, name) },
static const struct {
	const char *name;
	size_t off;
} cv_cuda_syms[] = { CV_CUDA_API(CV_CUDA_SYM) };
#undef CV_CUDA_SYM

/*
 * Resolves every entry of *api through gpa. Logs each missing symbol by
 * name; returns 0 or CUDA_ERROR_NOT_FOUND.
 */
static int cv_cuda_resolve(PFN_cuGetProcAddress_v12000 gpa,
			   struct cv_cuda_api *api, const char *driver)
{
	CUdriverProcAddressQueryResult st;
	int missing = 0;
	CUresult r;
	size_t i;
	void *fn;

	for (i = 0; i < CV_ARRAY_SIZE(cv_cuda_syms); i++) {
		fn = NULL;
		st = CU_GET_PROC_ADDRESS_SUCCESS;
		r = gpa(cv_cuda_syms[i].name, &fn, CV_CUDA_ABI,
			CU_GET_PROC_ADDRESS_DEFAULT, &st);
		if (r || !fn) {
			cv_err("cuda: %s: no %s for CUDA %d (result %d, "
			       "status %d%s)", driver, cv_cuda_syms[i].name,
			       CV_CUDA_ABI, (int)r, (int)st,
			       r == CUDA_ERROR_INVALID_VALUE ?
				       ", driver older than CUDA 13.0?" : "");
			missing++;
			continue;
		}
		memcpy((char *)api + cv_cuda_syms[i].off, &fn, sizeof(fn));
	}
	return missing ? CUDA_ERROR_NOT_FOUND : 0;
}

/*
 * dlopens the driver at the absolute path `driver` and resolves *api.
 * Returns 0 or a CUresult; *dl is set on success.
 */
static int cv_cuda_load(const char *driver, void **dl,
			struct cv_cuda_api *api)
{
	PFN_cuGetProcAddress_v12000 gpa;
	void *h;
	int r;

	if (!driver || driver[0] != '/') {
		cv_err("cuda: driver path '%s' is not absolute",
		       driver ? driver : "(null)");
		return CUDA_ERROR_INVALID_VALUE;
	}
	h = dlopen(driver, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		cv_err("cuda: dlopen %s: %s", driver, dlerror());
		return CUDA_ERROR_SHARED_OBJECT_INIT_FAILED;
	}
	*(void **)&gpa = dlsym(h, "cuGetProcAddress_v2");
	if (!gpa) {
		cv_err("cuda: %s has no cuGetProcAddress_v2", driver);
		dlclose(h);
		return CUDA_ERROR_NOT_FOUND;
	}
	memset(api, 0, sizeof(*api));
	r = cv_cuda_resolve(gpa, api, driver);
	if (r) {
		dlclose(h);
		return r;
	}
	*dl = h;
	return 0;
}

/* ---- context --------------------------------------------------------- */

/* Makes the tenant's context current on the calling thread. */
static int cv_cuda_enter(struct cv_cuda *c)
{
	CUresult r;

	if (CV_LIKELY(cv_cuda_cur == c->ctx))
		return 0;
	r = c->api.cuCtxSetCurrent(c->ctx);
	if (r) {
		cv_err("cuda: cuCtxSetCurrent: %s", cv_cuda_ename(&c->api, r));
		return r;
	}
	cv_cuda_cur = c->ctx;
	return 0;
}

/* Declares `c` and enters the context, returning on failure. */
#define CV_CUDA_ENTER(c, b)                                            \
	struct cv_cuda *c = to_cuda(b);                                \
	do {                                                           \
		int enter_r_ = cv_cuda_enter(c);                       \
		if (enter_r_)                                          \
			return enter_r_;                               \
	} while (0)

static void cv_cuda_attrs(struct cv_cuda *c, struct cv_devinfo *info)
{
	int a, v;

	for (a = 1; a < CU_DEVICE_ATTRIBUTE_MAX; a++) {
		if (c->api.cuDeviceGetAttribute(&v, (CUdevice_attribute)a,
						c->dev))
			v = 0;
		info->attr[a] = v;
	}
	info->pci_domain = info->attr[CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID];
	info->pci_bus = info->attr[CU_DEVICE_ATTRIBUTE_PCI_BUS_ID];
	info->pci_device = info->attr[CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID];
	info->cc_major = info->attr[CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR];
	info->cc_minor = info->attr[CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR];
}

/* Fills everything of *info but total_mem. */
static int cv_cuda_devinfo(struct cv_cuda *c, struct cv_devinfo *info)
{
	CUuuid uuid;
	int r, ver;

	memset(info, 0, sizeof(*info));
	r = c->api.cuDeviceGetName(info->name, CV_DEV_NAME_LEN, c->dev);
	if (!r)
		r = c->api.cuDeviceGetUuid(&uuid, c->dev);
	if (!r)
		r = c->api.cuDriverGetVersion(&ver);
	if (r) {
		cv_err("cuda: device %d info: %s", (int)c->dev,
		       cv_cuda_ename(&c->api, r));
		return r;
	}
	info->name[CV_DEV_NAME_LEN - 1] = 0;
	memcpy(info->uuid, uuid.bytes, sizeof(info->uuid));
	info->driver_version = (uint32_t)ver;
	info->backend = CV_BACKEND_CUDA;
	cv_cuda_attrs(c, info);
	return 0;
}

/* cuInit, the device and its primary context, current on this thread. */
static int cv_cuda_start(struct cv_cuda *c, int gpu)
{
	CUresult r;

	r = c->api.cuInit(0);
	if (!r)
		r = c->api.cuDeviceGet(&c->dev, gpu);
	if (r) {
		cv_err("cuda: GPU %d: %s", gpu, cv_cuda_ename(&c->api, r));
		return r;
	}
	r = c->api.cuDevicePrimaryCtxRetain(&c->ctx, c->dev);
	if (r) {
		cv_err("cuda: GPU %d: primary context: %s", gpu,
		       cv_cuda_ename(&c->api, r));
		return r;
	}
	r = cv_cuda_enter(c);
	if (r) {
		c->api.cuDevicePrimaryCtxRelease(c->dev);
		c->ctx = NULL;
	}
	return r;
}

static int cv_cuda_open(const struct cv_backend_cfg *cfg,
			struct cv_devinfo *info, struct cv_backend **out)
{
	struct cv_cuda *c;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return CUDA_ERROR_OUT_OF_MEMORY;
	r = cv_cuda_load(cfg->driver, &c->dl, &c->api);
	if (r)
		goto fail;
	r = cv_cuda_start(c, cfg->gpu);
	if (r)
		goto fail;
	r = cv_cuda_devinfo(c, info);
	if (r) {
		c->api.cuDevicePrimaryCtxRelease(c->dev);
		goto fail;
	}
	if (c->api.cuDeviceGetAttribute(&c->sms,
			CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, c->dev) ||
	    c->sms < 1)
		c->sms = 1;
	cv_info("cuda: GPU %d '%s' cc %d.%d, driver %u", cfg->gpu, info->name,
		info->cc_major, info->cc_minor, info->driver_version);
	*out = (struct cv_backend *)c;
	return 0;
fail:
	free(c);
	return r;
}

/* ==== begin: digest (live migration; core/digest.h, worker/digest.cu) ==== */

/*
 * The kernel comes from the fatbin embedded in the worker
 * (cv_digest_fatbin) and is loaded into the tenant's context on the first
 * digest. cv_cuda_dg_lock guards the state and serialises digests (they
 * share the output buffer); the consumer never takes it.
 *
 * Each launch digests at most CV_CUDA_DG_CHUNK granules into a device
 * buffer outside the tenant's window (cuMemAlloc), which
 * cuMemcpyDtoHAsync then copies into out on the same stream, so the next
 * launch waits for the copy. An event recorded after the last copy is
 * what the caller waits for: on a tenant's stream, not for the work
 * queued after the digest. close frees it all: no digest may be running
 * then.
 */
#define CV_CUDA_DG_CHUNK (1u << 20) /* granules per launch: 16 MiB out */

struct cv_cuda_dg {
	CUmodule mod;
	CUfunction fn;
	CUevent done;           /* recorded after a digest's last copy */
	CUstream st;            /* private, non-blocking; NULL until used */
	CUdeviceptr out;        /* room for out_cap digests, or 0 */
	uint64_t out_cap;
};

static pthread_mutex_t cv_cuda_dg_lock = PTHREAD_MUTEX_INITIALIZER;

/* Frees dg and what it holds (NULL: no-op); the context is current. */
static void cv_cuda_dg_free(struct cv_cuda *c, struct cv_cuda_dg *dg)
{
	if (!dg)
		return;
	if (dg->out)
		c->api.cuMemFree(dg->out);
	if (dg->st)
		c->api.cuStreamDestroy(dg->st);
	if (dg->done)
		c->api.cuEventDestroy(dg->done);
	if (dg->mod)
		c->api.cuModuleUnload(dg->mod);
	if (c->dg == dg)
		c->dg = NULL;
	free(dg);
}

/* Sets c->dg on the first call (the kernel loaded); lock held. A failed
 * load is retried by the next call. */
static int cv_cuda_dg_get(struct cv_cuda *c)
{
	struct cv_cuda_dg *dg;
	CUresult r;

	if (c->dg)
		return 0;
	/* weak: NULL in programs that do not link the image */
	if (!&cv_digest_fatbin_len || !cv_digest_fatbin_len)
		return CUDA_ERROR_NOT_SUPPORTED;
	dg = calloc(1, sizeof(*dg));
	if (!dg)
		return CUDA_ERROR_OUT_OF_MEMORY;
	r = c->api.cuModuleLoadDataEx(&dg->mod, cv_digest_fatbin, 0, NULL,
				      NULL);
	if (!r)
		r = c->api.cuModuleGetFunction(&dg->fn, dg->mod,
					       CV_DIGEST_KERNEL);
	if (!r)
		r = c->api.cuEventCreate(&dg->done, CU_EVENT_DISABLE_TIMING);
	if (r) {
		cv_err("cuda: digest kernel (%zu bytes of fatbin): %s",
		       cv_digest_fatbin_len, cv_cuda_ename(&c->api, r));
		cv_cuda_dg_free(c, dg);
		return r;
	}
	c->dg = dg;
	return 0;
}

/* The stream to run on: s, or the private one; lock held. */
static int cv_cuda_dg_stream(struct cv_cuda *c, cv_bobj s, CUstream *st)
{
	struct cv_cuda_dg *dg = c->dg;
	CUresult r;

	if (s) {
		*st = (CUstream)s;
		return 0;
	}
	if (!dg->st) {
		/* priority 0, the least, as the tenant's default streams */
		r = c->api.cuStreamCreateWithPriority(&dg->st,
						      CU_STREAM_NON_BLOCKING,
						      0);
		if (r)
			return r;
	}
	*st = dg->st;
	return 0;
}

/* Room for n (at most CV_CUDA_DG_CHUNK) digests in the device buffer,
 * which at least doubles when it grows; lock held. No digest is in
 * flight (each one waits for its last copy). */
static int cv_cuda_dg_room(struct cv_cuda *c, uint64_t n)
{
	struct cv_cuda_dg *dg = c->dg;
	CUresult r;

	if (n <= dg->out_cap)
		return 0;
	n = CV_MIN(CV_MAX(n, 2 * dg->out_cap), CV_CUDA_DG_CHUNK);
	if (dg->out)
		c->api.cuMemFree(dg->out);
	dg->out = 0;
	dg->out_cap = 0;
	r = c->api.cuMemAlloc(&dg->out, n * CV_DIGEST_LEN);
	if (!r)
		dg->out_cap = n;
	return r;
}

/* Queues the launches and copies, a block per granule or (gentle) at
 * most one per multiprocessor (the kernel strides over the granules);
 * lock held. Returns the first error. */
static int cv_cuda_dg_queue(struct cv_cuda *c, CUstream st, uint64_t dev,
			    uint64_t len, uint32_t granule, uint64_t seed,
			    uint8_t *out, bool gentle)
{
	struct cv_cuda_dg *dg = c->dg;
	uint64_t n = len / granule, gsize = granule, i, k = 0;
	CUdeviceptr base = dev;
	void *params[] = { &base, &gsize, &k, &seed, &dg->out };
	CUresult r;

	for (i = 0; i < n; i += k) {
		k = CV_MIN(n - i, CV_CUDA_DG_CHUNK);
		base = dev + i * granule;
		r = c->api.cuLaunchKernel(dg->fn, gentle ?
					  (unsigned int)CV_MIN(k, (uint64_t)c->sms) :
					  (unsigned int)k, 1, 1,
					  CV_DIGEST_LANES, 1, 1, 0, st, params,
					  NULL);
		if (!r)
			r = c->api.cuMemcpyDtoHAsync(out + i * CV_DIGEST_LEN,
						     dg->out,
						     k * CV_DIGEST_LEN, st);
		if (r)
			return r;
	}
	return 0;
}

static int cv_cuda_digest(struct cv_backend *b, uint64_t dev, uint64_t len,
			  uint32_t granule, uint64_t seed, uint8_t *out,
			  cv_bobj s, uint32_t flags)
{
	CV_CUDA_ENTER(c, b);
	CUstream st = NULL;
	CUresult r, w;

	if (!cv_digest_range_ok(dev, len, granule))
		return CUDA_ERROR_INVALID_VALUE;
	if (!len)
		return 0;
	pthread_mutex_lock(&cv_cuda_dg_lock);
	r = cv_cuda_dg_get(c);
	if (!r)
		r = cv_cuda_dg_stream(c, s, &st);
	if (!r)
		r = cv_cuda_dg_room(c, CV_MIN(len / granule, CV_CUDA_DG_CHUNK));
	if (r)
		goto out;
	r = cv_cuda_dg_queue(c, st, dev, len, granule, seed, out,
			     flags & CV_DIGEST_GENTLE);
	/* even after an error: no copy into out may outlive the call */
	w = c->api.cuEventRecordWithFlags(c->dg->done, st, 0);
	if (!w)
		w = c->api.cuEventSynchronize(c->dg->done);
	else
		w = c->api.cuStreamSynchronize(st);
	if (!r)
		r = w;
out:
	pthread_mutex_unlock(&cv_cuda_dg_lock);
	return r;
}

/* ==== end: digest ==== */

/* Waits for the device, then drops the primary context; objects still
 * alive die with it (or with the process). */
static void cv_cuda_close(struct cv_backend *b)
{
	struct cv_cuda *c = to_cuda(b);
	CUresult r;

	if (!c)
		return;
	if (!cv_cuda_enter(c)) {
		r = c->api.cuCtxSynchronize(c->ctx);
		if (r)
			cv_warn("cuda: close: synchronize: %s",
				cv_cuda_ename(&c->api, r));
		cv_cuda_dg_free(c, c->dg);
	}
	c->api.cuDevicePrimaryCtxRelease(c->dev);
	cv_cuda_cur = NULL;
	free(c);
}

/* ---- host memory and device VA --------------------------------------- */

static int cv_cuda_host_register(struct cv_backend *b, void *p, size_t len)
{
	CV_CUDA_ENTER(c, b);
	CUdeviceptr d = 0;
	CUresult r;

	r = c->api.cuMemHostRegister(p, len, CU_MEMHOSTREGISTER_PORTABLE |
					     CU_MEMHOSTREGISTER_DEVICEMAP);
	if (r) {
		cv_err("cuda: register host %p+%zu: %s", p, len,
		       cv_cuda_ename(&c->api, r));
		return r;
	}
	r = c->api.cuMemHostGetDevicePointer(&d, p, 0);
	if (r || d != (CUdeviceptr)(uintptr_t)p) {
		cv_err("cuda: host %p registered at device address 0x%llx "
		       "(%s): the addresses must be equal", p,
		       (unsigned long long)d, cv_cuda_ename(&c->api, r));
		c->api.cuMemHostUnregister(p);
		return CUDA_ERROR_NOT_SUPPORTED;
	}
	return 0;
}

static int cv_cuda_host_unregister(struct cv_backend *b, void *p)
{
	CV_CUDA_ENTER(c, b);

	return c->api.cuMemHostUnregister(p);
}

static int cv_cuda_va_reserve(struct cv_backend *b, uint64_t addr,
			      uint64_t size)
{
	CV_CUDA_ENTER(c, b);
	CUdeviceptr p = 0;
	CUresult r;

	r = c->api.cuMemAddressReserve(&p, size, 0, addr, 0);
	if (r) {
		cv_err("cuda: reserve 0x%llx+0x%llx: %s",
		       (unsigned long long)addr, (unsigned long long)size,
		       cv_cuda_ename(&c->api, r));
		return r;
	}
	if (p != addr) {
		cv_err("cuda: reserve 0x%llx+0x%llx got 0x%llx instead",
		       (unsigned long long)addr, (unsigned long long)size,
		       (unsigned long long)p);
		c->api.cuMemAddressFree(p, size);
		return CUDA_ERROR_INVALID_VALUE;
	}
	return 0;
}

/* ---- physical memory ------------------------------------------------- */

static CUresult cv_cuda_mem_try(struct cv_cuda *c, uint64_t size,
				CUmemAllocationHandleType ht,
				CUmemGenericAllocationHandle *h)
{
	CUmemAllocationProp prop;

	memset(&prop, 0, sizeof(prop));
	prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
	prop.requestedHandleTypes = ht;
	prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	prop.location.id = c->dev;
	return c->api.cuMemCreate(h, size, &prop, 0);
}

/* Exportable as a POSIX fd when the device allows it, else plain. */
static int cv_cuda_mem_create(struct cv_backend *b, uint64_t size,
			      cv_bobj *out)
{
	CV_CUDA_ENTER(c, b);
	struct cv_cuda_mem *m;
	CUresult r;

	m = calloc(1, sizeof(*m));
	if (!m)
		return CUDA_ERROR_OUT_OF_MEMORY;
	m->exportable = true;
	m->fd = -1;
	r = cv_cuda_mem_try(c, size, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR,
			    &m->h);
	if (r == CUDA_ERROR_NOT_SUPPORTED || r == CUDA_ERROR_INVALID_VALUE) {
		m->exportable = false;
		r = cv_cuda_mem_try(c, size, CU_MEM_HANDLE_TYPE_NONE, &m->h);
	}
	if (r) {
		cv_dbg("cuda: cuMemCreate %llu: %s", (unsigned long long)size,
		       cv_cuda_ename(&c->api, r));
		free(m);
		return r;
	}
	m->size = size;
	*out = m;
	return 0;
}

static int cv_cuda_mem_release(struct cv_backend *b, cv_bobj mem)
{
	CV_CUDA_ENTER(c, b);
	struct cv_cuda_mem *m = mem;
	CUresult r;

	r = c->api.cuMemRelease(m->h);
	if (!r) {
		if (m->fd >= 0)
			close(m->fd);
		free(m);
	}
	return r;
}

static int cv_cuda_mem_map(struct cv_backend *b, uint64_t va, uint64_t size,
			   cv_bobj mem, uint64_t offset)
{
	CV_CUDA_ENTER(c, b);
	struct cv_cuda_mem *m = mem;
	CUmemAccessDesc acc;
	CUresult r;

	r = c->api.cuMemMap(va, size, offset, m->h, 0);
	if (r)
		return r;
	memset(&acc, 0, sizeof(acc));
	acc.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	acc.location.id = c->dev;
	acc.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
	r = c->api.cuMemSetAccess(va, size, &acc, 1);
	if (r) {
		cv_err("cuda: access 0x%llx+0x%llx: %s",
		       (unsigned long long)va, (unsigned long long)size,
		       cv_cuda_ename(&c->api, r));
		c->api.cuMemUnmap(va, size);
	}
	return r;
}

static int cv_cuda_mem_unmap(struct cv_backend *b, uint64_t va, uint64_t size)
{
	CV_CUDA_ENTER(c, b);

	return c->api.cuMemUnmap(va, size);
}

static int cv_cuda_mem_export(struct cv_backend *b, cv_bobj mem, int *fd)
{
	CV_CUDA_ENTER(c, b);
	struct cv_cuda_mem *m = mem;

	if (!m->exportable)
		return CUDA_ERROR_NOT_SUPPORTED;
	if (m->fd >= 0) {
		*fd = fcntl(m->fd, F_DUPFD_CLOEXEC, 0);
		return *fd < 0 ? CUDA_ERROR_OUT_OF_MEMORY : 0;
	}
	*fd = -1;
	return c->api.cuMemExportToShareableHandle(
		fd, m->h, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0);
}

/* A size larger than the allocation cannot be mapped (cuMemMap checks
 * offset + size against it), so a wrong one does no harm beyond. */
static int cv_cuda_mem_import(struct cv_backend *b, int fd, uint64_t size,
			      cv_bobj *out)
{
	CV_CUDA_ENTER(c, b);
	struct cv_cuda_mem *m;
	CUresult r;

	m = calloc(1, sizeof(*m));
	if (!m)
		return CUDA_ERROR_OUT_OF_MEMORY;
	m->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (m->fd < 0) {
		free(m);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	r = c->api.cuMemImportFromShareableHandle(
		&m->h, (void *)(uintptr_t)fd,
		CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR);
	if (r) {
		cv_err("cuda: import of %llu bytes: %s",
		       (unsigned long long)size, cv_cuda_ename(&c->api, r));
		close(m->fd);
		free(m);
		return r;
	}
	m->size = size;
	m->exportable = true;
	*out = m;
	return 0;
}

static int cv_cuda_mem_info(struct cv_backend *b, uint64_t *free_,
			    uint64_t *total)
{
	CV_CUDA_ENTER(c, b);
	size_t f = 0, t = 0;
	CUresult r;

	r = c->api.cuMemGetInfo(&f, &t);
	if (!r) {
		*free_ = f;
		*total = t;
	}
	return r;
}

/* ---- streams and events ---------------------------------------------- */

static int cv_cuda_stream_create(struct cv_backend *b, uint32_t flags,
				 int prio, cv_bobj *out)
{
	CV_CUDA_ENTER(c, b);
	CUstream s;
	CUresult r;

	r = c->api.cuStreamCreateWithPriority(&s, flags, prio);
	if (!r)
		*out = s;
	return r;
}

static int cv_cuda_stream_destroy(struct cv_backend *b, cv_bobj s)
{
	CV_CUDA_ENTER(c, b);

	return c->api.cuStreamDestroy((CUstream)s);
}

static int cv_cuda_stream_sync(struct cv_backend *b, cv_bobj s)
{
	CV_CUDA_ENTER(c, b);

	return c->api.cuStreamSynchronize(cv_cuda_stream(s));
}

static int cv_cuda_stream_query(struct cv_backend *b, cv_bobj s)
{
	CV_CUDA_ENTER(c, b);

	return c->api.cuStreamQuery(cv_cuda_stream(s));
}

static int cv_cuda_stream_wait_event(struct cv_backend *b, cv_bobj s,
				     cv_bobj ev, uint32_t flags)
{
	CV_CUDA_ENTER(c, b);

	return c->api.cuStreamWaitEvent(cv_cuda_stream(s), (CUevent)ev, flags);
}

static int cv_cuda_event_create(struct cv_backend *b, uint32_t flags,
				cv_bobj *out)
{
	CV_CUDA_ENTER(c, b);
	CUevent ev;
	CUresult r;

	r = c->api.cuEventCreate(&ev, flags);
	if (!r)
		*out = ev;
	return r;
}

static int cv_cuda_event_destroy(struct cv_backend *b, cv_bobj ev)
{
	CV_CUDA_ENTER(c, b);

	return c->api.cuEventDestroy((CUevent)ev);
}

static int cv_cuda_event_record(struct cv_backend *b, cv_bobj ev, cv_bobj s,
				uint32_t flags)
{
	CV_CUDA_ENTER(c, b);

	return c->api.cuEventRecordWithFlags((CUevent)ev, cv_cuda_stream(s),
					     flags);
}

static int cv_cuda_event_sync(struct cv_backend *b, cv_bobj ev)
{
	CV_CUDA_ENTER(c, b);

	return c->api.cuEventSynchronize((CUevent)ev);
}

static int cv_cuda_event_query(struct cv_backend *b, cv_bobj ev)
{
	CV_CUDA_ENTER(c, b);

	return c->api.cuEventQuery((CUevent)ev);
}

static int cv_cuda_event_elapsed(struct cv_backend *b, cv_bobj start,
				 cv_bobj end, float *ms)
{
	CV_CUDA_ENTER(c, b);

	return c->api.cuEventElapsedTime(ms, (CUevent)start, (CUevent)end);
}

/* ---- copies and memsets ---------------------------------------------- */

/* Host addresses are registered region memory: async DMA is right. */
static int cv_cuda_memcpy(struct cv_backend *b, uint32_t kind, uint64_t dst,
			  uint64_t src, uint64_t len, cv_bobj s)
{
	CV_CUDA_ENTER(c, b);
	CUstream st = cv_cuda_stream(s);

	switch (kind) {
	case CV_COPY_HTOD:
		return c->api.cuMemcpyHtoDAsync(dst, (const void *)src, len,
						st);
	case CV_COPY_DTOH:
		return c->api.cuMemcpyDtoHAsync((void *)dst, src, len, st);
	case CV_COPY_DTOD:
		return c->api.cuMemcpyDtoDAsync(dst, src, len, st);
	}
	return CUDA_ERROR_INVALID_VALUE;
}

/* Host sides are region addresses, device sides window addresses. */
static int cv_cuda_memcpy2d(struct cv_backend *b, const struct cv_copy2d *cp,
			    cv_bobj s)
{
	CV_CUDA_ENTER(c, b);
	CUDA_MEMCPY2D m;

	if (cp->kind < CV_COPY_HTOD || cp->kind > CV_COPY_DTOD)
		return CUDA_ERROR_INVALID_VALUE;
	memset(&m, 0, sizeof(m));
	if (cp->kind == CV_COPY_HTOD) {
		m.srcMemoryType = CU_MEMORYTYPE_HOST;
		m.srcHost = (const void *)cp->src;
	} else {
		m.srcMemoryType = CU_MEMORYTYPE_DEVICE;
		m.srcDevice = cp->src;
	}
	if (cp->kind == CV_COPY_DTOH) {
		m.dstMemoryType = CU_MEMORYTYPE_HOST;
		m.dstHost = (void *)cp->dst;
	} else {
		m.dstMemoryType = CU_MEMORYTYPE_DEVICE;
		m.dstDevice = cp->dst;
	}
	m.srcPitch = cp->src_pitch;
	m.dstPitch = cp->dst_pitch;
	m.WidthInBytes = cp->width;
	m.Height = cp->height;
	return c->api.cuMemcpy2DAsync(&m, cv_cuda_stream(s));
}

static int cv_cuda_memset1d(struct cv_cuda *c, uint64_t dst, uint32_t value,
			    uint32_t elem, uint64_t n, CUstream st)
{
	switch (elem) {
	case 1:
		return c->api.cuMemsetD8Async(dst, (unsigned char)value, n, st);
	case 2:
		return c->api.cuMemsetD16Async(dst, (unsigned short)value, n,
					       st);
	case 4:
		return c->api.cuMemsetD32Async(dst, value, n, st);
	}
	return CUDA_ERROR_INVALID_VALUE;
}

static int cv_cuda_memset(struct cv_backend *b, uint64_t dst, uint64_t pitch,
			  uint32_t value, uint32_t elem, uint64_t width,
			  uint64_t height, cv_bobj s)
{
	CV_CUDA_ENTER(c, b);
	CUstream st = cv_cuda_stream(s);

	if (height <= 1)
		return cv_cuda_memset1d(c, dst, value, elem, width, st);
	switch (elem) {
	case 1:
		return c->api.cuMemsetD2D8Async(dst, pitch, (unsigned char)value,
						width, height, st);
	case 2:
		return c->api.cuMemsetD2D16Async(dst, pitch,
						 (unsigned short)value, width,
						 height, st);
	case 4:
		return c->api.cuMemsetD2D32Async(dst, pitch, value, width,
						 height, st);
	}
	return CUDA_ERROR_INVALID_VALUE;
}

/* ---- modules and functions ------------------------------------------- */

#define CV_CUDA_JIT_LOG 8192

/*
 * The driver reads the image without a length: refuse one whose headers
 * point outside it, and PTX (anything else) that is not NUL-terminated.
 */
static int cv_cuda_image_ok(const void *image, size_t len)
{
	const uint8_t *p = image;

	if (cv_image_is_elf(p, len) || cv_image_is_fatbin(p, len) ||
	    cv_image_has_nul(p, len))
		return 0;
	cv_warn("cuda: module image of %zu bytes: not ELF, fatbin or "
		"NUL-terminated PTX", len);
	return CUDA_ERROR_INVALID_IMAGE;
}

static int cv_cuda_module_load(struct cv_backend *b, const void *image,
			       size_t len, cv_bobj *out)
{
	CV_CUDA_ENTER(c, b);
	CUjit_option opt[2] = { CU_JIT_ERROR_LOG_BUFFER,
				CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES };
	void *val[2];
	char *log;
	CUmodule m;
	CUresult r;

	r = cv_cuda_image_ok(image, len);
	if (r)
		return r;
	log = calloc(1, CV_CUDA_JIT_LOG);
	if (!log)
		return CUDA_ERROR_OUT_OF_MEMORY;
	val[0] = log;
	val[1] = (void *)(uintptr_t)(CV_CUDA_JIT_LOG - 1);
	r = c->api.cuModuleLoadDataEx(&m, image, 2, opt, val);
	if (r)
		cv_warn("cuda: module load (%zu bytes): %s%s%s", len,
			cv_cuda_ename(&c->api, r), log[0] ? ": " : "", log);
	else
		*out = m;
	free(log);
	return r;
}

static int cv_cuda_module_unload(struct cv_backend *b, cv_bobj mod)
{
	CV_CUDA_ENTER(c, b);

	return c->api.cuModuleUnload((CUmodule)mod);
}

/* Appends one parameter to *fp, growing its array; -1 on ENOMEM. */
static int cv_cuda_param_add(struct cv_fparams *fp, uint32_t *cap,
			     uint32_t off, uint32_t size)
{
	struct cv_param *np;
	uint32_t ncap;

	if (fp->n == *cap) {
		ncap = *cap ? *cap * 2 : 8;
		np = realloc(fp->p, ncap * sizeof(*np));
		if (!np)
			return -1;
		fp->p = np;
		*cap = ncap;
	}
	fp->p[fp->n].offset = off;
	fp->p[fp->n].size = size;
	fp->n++;
	return 0;
}

/*
 * The parameter layout of f: cuFuncGetParamInfo for index 0, 1, ...
 * until CUDA_ERROR_INVALID_VALUE. On failure fp->p is freed.
 */
static int cv_cuda_params(struct cv_cuda *c, CUfunction f,
			  struct cv_fparams *fp)
{
	uint64_t end = 0;
	uint32_t cap = 0;
	size_t off, size;
	CUresult r;

	memset(fp, 0, sizeof(*fp));
	for (;;) {
		r = c->api.cuFuncGetParamInfo(f, fp->n, &off, &size);
		if (r == CUDA_ERROR_INVALID_VALUE)
			break;
		if (!r && (off > UINT32_MAX || size > UINT32_MAX ||
			   fp->n >= CV_LAUNCH_MAX_PARAMS))
			r = CUDA_ERROR_NOT_SUPPORTED;
		if (!r && cv_cuda_param_add(fp, &cap, off, size))
			r = CUDA_ERROR_OUT_OF_MEMORY;
		if (r)
			goto fail;
		end = CV_MAX(end, (uint64_t)off + size);
	}
	if (end > UINT32_MAX) {
		r = CUDA_ERROR_NOT_SUPPORTED;
		goto fail;
	}
	fp->size = (uint32_t)end;
	return 0;
fail:
	cv_err("cuda: parameter %u: %s", fp->n, cv_cuda_ename(&c->api, r));
	free(fp->p);
	memset(fp, 0, sizeof(*fp));
	return r;
}

static int cv_cuda_get_function(struct cv_backend *b, cv_bobj mod,
				const char *name, cv_bobj *out,
				struct cv_fparams *params)
{
	CV_CUDA_ENTER(c, b);
	CUfunction f;
	CUresult r;

	r = c->api.cuModuleGetFunction(&f, (CUmodule)mod, name);
	if (r)
		return r;
	r = cv_cuda_params(c, f, params);
	if (!r)
		*out = f;
	return r;
}

static int cv_cuda_get_global(struct cv_backend *b, cv_bobj mod,
			      const char *name, uint64_t *dptr, uint64_t *size)
{
	CV_CUDA_ENTER(c, b);
	CUdeviceptr d;
	size_t n;
	CUresult r;

	r = c->api.cuModuleGetGlobal(&d, &n, (CUmodule)mod, name);
	if (!r) {
		*dptr = d;
		*size = n;
	}
	return r;
}

static int cv_cuda_func_get_attr(struct cv_backend *b, cv_bobj f, int attrib,
				 int *value)
{
	CV_CUDA_ENTER(c, b);

	return c->api.cuFuncGetAttribute(value, (CUfunction_attribute)attrib,
					 (CUfunction)f);
}

static int cv_cuda_func_set_attr(struct cv_backend *b, cv_bobj f, int attrib,
				 int value)
{
	CV_CUDA_ENTER(c, b);

	return c->api.cuFuncSetAttribute((CUfunction)f,
					 (CUfunction_attribute)attrib, value);
}

static int cv_cuda_func_set_cache(struct cv_backend *b, cv_bobj f, int config)
{
	CV_CUDA_ENTER(c, b);

	return c->api.cuFuncSetCacheConfig((CUfunction)f, (CUfunc_cache)config);
}

/* ---- launches -------------------------------------------------------- */

/*
 * The attributes are passed through as the guest gave them (the decoder
 * owns any handle translation inside their values).
 */
/* Fills cfg (pointing at a) from a launch's parts; CUresult. */
static int cv_cuda_config(CUlaunchConfig *cfg, CUlaunchAttribute *a,
			  const uint32_t grid[3], const uint32_t block[3],
			  uint32_t shmem, CUstream st,
			  const struct cv_launch_attr *attrs, uint32_t nattrs)
{
	if (nattrs > CV_LAUNCH_MAX_ATTRS)
		return CUDA_ERROR_INVALID_VALUE;
	memcpy(a, attrs, nattrs * sizeof(a[0]));
	memset(cfg, 0, sizeof(*cfg));
	cfg->gridDimX = grid[0];
	cfg->gridDimY = grid[1];
	cfg->gridDimZ = grid[2];
	cfg->blockDimX = block[0];
	cfg->blockDimY = block[1];
	cfg->blockDimZ = block[2];
	cfg->sharedMemBytes = shmem;
	cfg->hStream = st;
	cfg->attrs = a;
	cfg->numAttrs = nattrs;
	return CUDA_SUCCESS;
}

static int cv_cuda_module_function_name(struct cv_backend *b, cv_bobj mod,
					uint32_t index, char *name, size_t size,
					uint32_t *count)
{
	CV_CUDA_ENTER(c, b);
	CUfunction *fns;
	const char *n = NULL;
	unsigned int cnt = 0;
	CUresult r;

	r = c->api.cuModuleGetFunctionCount(&cnt, (CUmodule)mod);
	if (r)
		return r;
	*count = cnt;
	if (index >= cnt)
		return CUDA_SUCCESS;
	fns = calloc(cnt, sizeof(*fns));
	if (!fns)
		return CUDA_ERROR_OUT_OF_MEMORY;
	r = c->api.cuModuleEnumerateFunctions(fns, cnt, (CUmodule)mod);
	if (!r)
		r = c->api.cuFuncGetName(&n, fns[index]);
	if (!r)
		snprintf(name, size, "%s", n ? n : "");
	free(fns);
	return r;
}

static int cv_cuda_occupancy_cluster(struct cv_backend *b, cv_bobj f,
				     uint32_t kind, const uint32_t grid[3],
				     const uint32_t block[3], uint32_t shmem,
				     const struct cv_launch_attr *attrs,
				     uint32_t nattrs, int *value)
{
	CV_CUDA_ENTER(c, b);
	CUlaunchAttribute a[CV_LAUNCH_MAX_ATTRS];
	CUlaunchConfig cfg;
	int r = cv_cuda_config(&cfg, a, grid, block, shmem, NULL, attrs,
			       nattrs);

	if (r)
		return r;
	if (kind == CV_OCC_ACTIVE_CLUSTERS)
		return c->api.cuOccupancyMaxActiveClusters(value,
							   (CUfunction)f, &cfg);
	if (kind == CV_OCC_CLUSTER_SIZE)
		return c->api.cuOccupancyMaxPotentialClusterSize(
			value, (CUfunction)f, &cfg);
	return CUDA_ERROR_INVALID_VALUE;
}

static int cv_cuda_launch_ex(struct cv_cuda *c, CUfunction f,
			     const uint32_t grid[3], const uint32_t block[3],
			     uint32_t shmem, CUstream st, void **params,
			     const struct cv_launch_attr *attrs,
			     uint32_t nattrs)
{
	CUlaunchAttribute a[CV_LAUNCH_MAX_ATTRS];
	CUlaunchConfig cfg;
	int r = cv_cuda_config(&cfg, a, grid, block, shmem, st, attrs, nattrs);

	if (r)
		return r;
	return c->api.cuLaunchKernelEx(&cfg, f, params, NULL);
}

static int cv_cuda_launch(struct cv_backend *b, cv_bobj f,
			  const uint32_t grid[3], const uint32_t block[3],
			  uint32_t shmem, cv_bobj s, void **params,
			  const struct cv_launch_attr *attrs, uint32_t nattrs)
{
	CV_CUDA_ENTER(c, b);
	CUstream st = cv_cuda_stream(s);

	if (nattrs)
		return cv_cuda_launch_ex(c, (CUfunction)f, grid, block, shmem,
					 st, params, attrs, nattrs);
	return c->api.cuLaunchKernel((CUfunction)f, grid[0], grid[1], grid[2],
				     block[0], block[1], block[2], shmem, st,
				     params, NULL);
}

static int cv_cuda_host_func(struct cv_backend *b, cv_bobj s, cv_bhostfn fn,
			     void *arg)
{
	CV_CUDA_ENTER(c, b);

	return c->api.cuLaunchHostFunc(cv_cuda_stream(s), fn, arg);
}

/* ---- context-wide ---------------------------------------------------- */

static int cv_cuda_ctx_sync(struct cv_backend *b)
{
	CV_CUDA_ENTER(c, b);

	return c->api.cuCtxSynchronize(c->ctx);
}

static int cv_cuda_ctx_set_limit(struct cv_backend *b, int limit,
				 uint64_t value)
{
	CV_CUDA_ENTER(c, b);

	return c->api.cuCtxSetLimit((CUlimit)limit, value);
}

static int cv_cuda_ctx_get_limit(struct cv_backend *b, int limit,
				 uint64_t *value)
{
	CV_CUDA_ENTER(c, b);
	size_t v = 0;
	CUresult r;

	r = c->api.cuCtxGetLimit(&v, (CUlimit)limit);
	if (!r)
		*value = v;
	return r;
}

static int cv_cuda_occupancy(struct cv_backend *b, cv_bobj f,
			     const struct cv_occupancy *in,
			     struct cv_occupancy_r *out)
{
	CV_CUDA_ENTER(c, b);
	int n = 0, grid = 0, block = 0;
	size_t smem = 0;
	CUresult r;

	memset(out, 0, sizeof(*out));
	switch (in->kind) {
	case CV_OCC_ACTIVE_BLOCKS:
		r = c->api.cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(
			&n, (CUfunction)f, in->block, in->smem, in->flags);
		out->value = n;
		return r;
	case CV_OCC_AVAIL_SMEM:
		r = c->api.cuOccupancyAvailableDynamicSMemPerBlock(
			&smem, (CUfunction)f, in->nblocks, in->block);
		out->value = (int64_t)smem;
		return r;
	case CV_OCC_POTENTIAL:
		r = c->api.cuOccupancyMaxPotentialBlockSizeWithFlags(
			&grid, &block, (CUfunction)f, NULL, in->smem,
			in->limit, in->flags);
		out->grid = grid;
		out->block = block;
		return r;
	}
	return CUDA_ERROR_INVALID_VALUE;
}

/* ---- markers --------------------------------------------------------- */

static int cv_cuda_marker_create(struct cv_backend *b, cv_bobj *out)
{
	return cv_cuda_event_create(b, CU_EVENT_DISABLE_TIMING, out);
}

static int cv_cuda_marker_record(struct cv_backend *b, cv_bobj m, cv_bobj s)
{
	return cv_cuda_event_record(b, m, s, 0);
}

const struct cv_backend_ops cv_backend_cuda = {
	.name = "cuda",
	.open = cv_cuda_open,
	.close = cv_cuda_close,
	.host_register = cv_cuda_host_register,
	.host_unregister = cv_cuda_host_unregister,
	.va_reserve = cv_cuda_va_reserve,
	.mem_create = cv_cuda_mem_create,
	.mem_release = cv_cuda_mem_release,
	.mem_map = cv_cuda_mem_map,
	.mem_unmap = cv_cuda_mem_unmap,
	.mem_export = cv_cuda_mem_export,
	.mem_import = cv_cuda_mem_import,
	.mem_info = cv_cuda_mem_info,
	.stream_create = cv_cuda_stream_create,
	.stream_destroy = cv_cuda_stream_destroy,
	.stream_sync = cv_cuda_stream_sync,
	.stream_query = cv_cuda_stream_query,
	.stream_wait_event = cv_cuda_stream_wait_event,
	.event_create = cv_cuda_event_create,
	.event_destroy = cv_cuda_event_destroy,
	.event_record = cv_cuda_event_record,
	.event_sync = cv_cuda_event_sync,
	.event_query = cv_cuda_event_query,
	.event_elapsed = cv_cuda_event_elapsed,
	.memcpy = cv_cuda_memcpy,
	.memcpy2d = cv_cuda_memcpy2d,
	.memset = cv_cuda_memset,
	.module_load = cv_cuda_module_load,
	.module_unload = cv_cuda_module_unload,
	.get_function = cv_cuda_get_function,
	.get_global = cv_cuda_get_global,
	.func_get_attr = cv_cuda_func_get_attr,
	.func_set_attr = cv_cuda_func_set_attr,
	.func_set_cache = cv_cuda_func_set_cache,
	.launch = cv_cuda_launch,
	.host_func = cv_cuda_host_func,
	.ctx_sync = cv_cuda_ctx_sync,
	.ctx_set_limit = cv_cuda_ctx_set_limit,
	.ctx_get_limit = cv_cuda_ctx_get_limit,
	.occupancy = cv_cuda_occupancy,
	.occupancy_cluster = cv_cuda_occupancy_cluster,
	.module_function_name = cv_cuda_module_function_name,
	.marker_create = cv_cuda_marker_create,
	.marker_destroy = cv_cuda_event_destroy,
	.marker_record = cv_cuda_marker_record,
	.marker_query = cv_cuda_event_query,
	.marker_wait = cv_cuda_event_sync,
	.digest = cv_cuda_digest,
};

/* ---- probe ----------------------------------------------------------- */

static int cv_cuda_probe_one(const struct cv_cuda_api *api, int i, FILE *out)
{
	char name[CV_DEV_NAME_LEN];
	size_t total = 0;
	CUdevice dev;
	CUresult r;

	r = api->cuDeviceGet(&dev, i);
	if (!r)
		r = api->cuDeviceGetName(name, sizeof(name), dev);
	if (!r)
		r = api->cuDeviceTotalMem(&total, dev);
	if (r) {
		cv_err("cuda probe: GPU %d: %s", i, cv_cuda_ename(api, r));
		return -EIO;
	}
	name[sizeof(name) - 1] = 0;
	fprintf(out, "gpu %d %zu %s\n", i, total, name);
	return 0;
}

/*
 * Prints "gpu <index> <total_bytes> <name>" per GPU the driver at the
 * absolute path `driver` sees. Returns the count, or -EINVAL (relative
 * path), -ENOENT (driver not loadable or incomplete), -EIO (driver error).
 */
int cv_backend_cuda_probe(const char *driver, FILE *out)
{
	struct cv_cuda_api api;
	int r, n = 0, i;
	void *dl = NULL;

	r = cv_cuda_load(driver, &dl, &api);
	if (r)
		return r == CUDA_ERROR_INVALID_VALUE ? -EINVAL : -ENOENT;
	r = api.cuInit(0);
	if (r == CUDA_ERROR_NO_DEVICE)
		return 0;
	if (!r)
		r = api.cuDeviceGetCount(&n);
	if (r) {
		cv_err("cuda probe: %s: %s", driver, cv_cuda_ename(&api, r));
		return -EIO;
	}
	for (i = 0; i < n; i++) {
		r = cv_cuda_probe_one(&api, i, out);
		if (r)
			return r;
	}
	return n;
}

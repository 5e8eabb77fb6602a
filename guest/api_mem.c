/* SPDX-License-Identifier: MIT */
/*
 * Device memory (DESIGN.md decision 3): the guest chooses addresses in its
 * window. Allocations of CV_SMALL_MAX bytes or less are carved out of
 * 2 MiB slabs without a round trip; larger ones get their own
 * granule-aligned range, backed by the worker (MEM_MAP). Pinned host
 * memory (decision 5) lives in the region's heap, mapped at the same
 * address here and in the worker.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../core/log.h"
#include "../core/util.h"
#include "guest.h"

#define CV_SMALL_MAX (1ull << 20)
#define CV_DEV_ALIGN 256ull
#define CV_HSMALL_MAX (256ull << 10)
#define CV_HSLAB (2ull << 20)
#define CV_PITCH_ALIGN 512ull

struct cv_slab {
	struct cv_slab *next;
	uint64_t base;
	struct cv_vaspace space;
	uint64_t used;
};

struct cv_hslab {
	struct cv_hslab *next;
	uint64_t off;              /* heap offset */
	struct cv_vaspace space;   /* host addresses */
	uint64_t used;
};

struct cv_dalloc {
	struct cv_rnode r;         /* the bytes the program asked for */
	struct cv_ctx *ctx;
	struct cv_slab *slab;      /* NULL: own range of map_size bytes */
	uint64_t map_size;
	uint64_t id;
};

struct cv_halloc {
	struct cv_rnode r;
	struct cv_ctx *ctx;
	struct cv_hslab *slab;     /* NULL: own heap range */
	uint64_t map_size;
	unsigned int flags;
	uint64_t id;
};

struct cv_hreg {
	struct cv_rnode r;
	struct cv_ctx *ctx;
	unsigned int flags;
};


static uint64_t next_buffer_id = 1;

/* ---- worker-backed ranges ------------------------------------------------ */

static int map_range(uint64_t va, uint64_t size)
{
	struct cv_mem_range a = { va, size };

	return cv_g_call(CV_OP_MEM_MAP, false, &a, sizeof(a), NULL, 0, NULL);
}

static void unmap_range(uint64_t va, uint64_t size)
{
	struct cv_mem_range a = { va, size };

	cv_g_submit(CV_OP_MEM_UNMAP, &a, sizeof(a));
}

/* Reserves window VA and backs it; CUresult. Called without g.lock. */
static int backed_alloc(uint64_t size, uint64_t *va)
{
	int rc;

	pthread_mutex_lock(&g.lock);
	if (size > g.dev.total_mem - CV_MIN(g.mapped, g.dev.total_mem)) {
		pthread_mutex_unlock(&g.lock);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	rc = cv_vaspace_alloc(&g.dva, size, CV_GRANULE, va);
	if (!rc)
		g.mapped += size;
	pthread_mutex_unlock(&g.lock);
	if (rc)
		return CUDA_ERROR_OUT_OF_MEMORY;
	rc = map_range(*va, size);
	if (rc) {
		pthread_mutex_lock(&g.lock);
		cv_vaspace_free(&g.dva, *va, size);
		g.mapped -= size;
		pthread_mutex_unlock(&g.lock);
	}
	return rc;
}

static void backed_free(uint64_t va, uint64_t size)
{
	unmap_range(va, size);
	pthread_mutex_lock(&g.lock);
	cv_vaspace_free(&g.dva, va, size);
	g.mapped -= size;
	pthread_mutex_unlock(&g.lock);
}

/* ---- device allocations ------------------------------------------------ */

/* Carves size bytes out of an existing slab (under g.lock). */
static struct cv_slab *slab_carve_locked(uint64_t size, uint64_t *out)
{
	struct cv_slab *s;

	for (s = g.slabs; s; s = s->next)
		if (!cv_vaspace_alloc(&s->space, size, CV_DEV_ALIGN, out))
			return s;
	return NULL;
}

static int slab_new(void)
{
	struct cv_slab *s = calloc(1, sizeof(*s));
	uint64_t va;
	int rc;

	if (!s)
		return CUDA_ERROR_OUT_OF_MEMORY;
	rc = backed_alloc(CV_GRANULE, &va);
	if (rc) {
		free(s);
		return rc;
	}
	s->base = va;
	if (cv_vaspace_init(&s->space, va, CV_GRANULE)) {
		backed_free(va, CV_GRANULE);
		free(s);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	pthread_mutex_lock(&g.lock);
	s->next = g.slabs;
	g.slabs = s;
	pthread_mutex_unlock(&g.lock);
	return CUDA_SUCCESS;
}

static int record_alloc(struct cv_dalloc *a)
{
	int rc;

	pthread_mutex_lock(&g.lock);
	a->id = next_buffer_id++;
	rc = cv_rtree_insert(&g.allocs, &a->r);
	pthread_mutex_unlock(&g.lock);
	return rc ? CUDA_ERROR_OUT_OF_MEMORY : CUDA_SUCCESS;
}

static int alloc_small(struct cv_dalloc *a, uint64_t size)
{
	int rc;

	for (;;) {
		pthread_mutex_lock(&g.lock);
		a->slab = slab_carve_locked(size, &a->r.base);
		if (a->slab)
			a->slab->used += size;
		pthread_mutex_unlock(&g.lock);
		if (a->slab)
			return CUDA_SUCCESS;
		rc = slab_new();
		if (rc)
			return rc;
	}
}

static int dev_alloc(struct cv_ctx *c, uint64_t size, uint64_t *out)
{
	struct cv_dalloc *a;
	int rc;

	if (!size)
		return CUDA_ERROR_INVALID_VALUE;
	a = calloc(1, sizeof(*a));
	if (!a)
		return CUDA_ERROR_OUT_OF_MEMORY;
	a->ctx = c;
	a->r.size = size;
	if (size <= CV_SMALL_MAX) {
		rc = alloc_small(a, cv_align_up(size, CV_DEV_ALIGN));
	} else {
		a->map_size = cv_align_up(size, CV_GRANULE);
		rc = a->map_size ? backed_alloc(a->map_size, &a->r.base) :
				   CUDA_ERROR_OUT_OF_MEMORY;
	}
	if (!rc)
		rc = record_alloc(a);
	if (rc) {
		free(a);
		return rc;
	}
	*out = a->r.base;
	return CUDA_SUCCESS;
}

/* Returns a small allocation to its slab; frees an empty slab unless it is
 * the only one (kept to make the next small allocation cheap). */
static void slab_release(struct cv_dalloc *a)
{
	struct cv_slab **pp, *s = a->slab;
	uint64_t sz = cv_align_up(a->r.size, CV_DEV_ALIGN);
	bool drop = false;

	pthread_mutex_lock(&g.lock);
	cv_vaspace_free(&s->space, a->r.base, sz);
	s->used -= sz;
	if (!s->used && (g.slabs != s || s->next)) {
		for (pp = &g.slabs; *pp != s; pp = &(*pp)->next)
			;
		*pp = s->next;
		drop = true;
	}
	pthread_mutex_unlock(&g.lock);
	if (drop) {
		backed_free(s->base, CV_GRANULE);
		cv_vaspace_exit(&s->space);
		free(s);
	}
}

static void dev_free(struct cv_dalloc *a)
{
	if (a->slab)
		slab_release(a);
	else
		backed_free(a->r.base, a->map_size);
	free(a);
}

CV_API CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t size)
{
	uint64_t p;
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	if (!dptr)
		return CUDA_ERROR_INVALID_VALUE;
	rc = dev_alloc(cv_ctx_current(), size, &p);
	if (!rc)
		*dptr = p;
	return rc;
}

CV_API CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pitch,
				   size_t width, size_t height,
				   unsigned int elem)
{
	uint64_t p, total;
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	if (!dptr || !pitch || !width || !height ||
	    (elem != 4 && elem != 8 && elem != 16))
		return CUDA_ERROR_INVALID_VALUE;
	p = cv_align_up(width, CV_PITCH_ALIGN);
	if (!p || __builtin_mul_overflow(p, (uint64_t)height, &total))
		return CUDA_ERROR_INVALID_VALUE;
	rc = dev_alloc(cv_ctx_current(), total, &total);
	if (!rc) {
		*dptr = total;
		*pitch = p;
	}
	return rc;
}

static struct cv_dalloc *take_alloc(uint64_t base)
{
	struct cv_dalloc *a;

	pthread_mutex_lock(&g.lock);
	a = (struct cv_dalloc *)cv_rtree_take(&g.allocs, base);
	pthread_mutex_unlock(&g.lock);
	return a;
}

CV_API CUresult cuMemFree_v2(CUdeviceptr dptr)
{
	struct cv_dalloc *a;
	int rc = cv_g_ready();

	if (rc)
		return rc;
	if (!dptr)
		return CUDA_SUCCESS;
	a = take_alloc(dptr);
	if (!a)
		return CUDA_ERROR_INVALID_VALUE;
	dev_free(a);
	return CUDA_SUCCESS;
}

CV_API CUresult cuMemGetInfo_v2(size_t *free_b, size_t *total)
{
	struct cv_mem_info_r r;
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	rc = cv_g_call(CV_OP_MEM_GET_INFO, false, NULL, 0, &r, sizeof(r),
		       NULL);
	if (rc)
		return rc;
	if (free_b)
		*free_b = r.free;
	if (total)
		*total = r.total;
	return CUDA_SUCCESS;
}

CV_API CUresult cuMemGetAddressRange_v2(CUdeviceptr *base, size_t *size,
					CUdeviceptr dptr)
{
	struct cv_rnode *n;
	int rc = cv_g_ready();

	if (rc)
		return rc;
	pthread_mutex_lock(&g.lock);
	n = cv_rtree_find(&g.allocs, dptr);
	if (!n)
		n = cv_rtree_find(&g.vmaps, dptr);
	if (n) {
		if (base)
			*base = n->base;
		if (size)
			*size = n->size;
	}
	pthread_mutex_unlock(&g.lock);
	return n ? CUDA_SUCCESS : CUDA_ERROR_NOT_FOUND;
}

/* ---- classification for copies --------------------------------------- */

static bool in_heap(uint64_t p)
{
	return cv_range_in(p, 0, CV_REGION_ADDR + CV_HEAP_OFF, CV_HEAP_MAX);
}

/*
 * True when [p, p + len), which starts in VMM mapping n, lies in n and
 * the mappings that follow it without a gap (the driver copies across
 * them as it would inside one). Lock held.
 */
static bool vmaps_span(const struct cv_rnode *n, uint64_t p, uint64_t len)
{
	const struct cv_rnode *next;

	if (p + len < p)
		return false;
	while (p + len > n->base + n->size) {
		next = cv_rtree_find(&g.vmaps, n->base + n->size);
		if (!next || next->base != n->base + n->size)
			return false;
		n = next;
	}
	return true;
}

int cv_mem_classify(uint64_t p, uint64_t len, enum cv_mkind *kind)
{
	struct cv_rnode *n = NULL;
	bool dev = cv_range_in(p, 0, CV_WINDOW_ADDR, CV_WINDOW_SIZE);
	bool span = false;

	pthread_mutex_lock(&g.lock);
	n = g.globals.n ? cv_rtree_find(&g.globals, p) : NULL;
	pthread_mutex_unlock(&g.lock);
	if (n) {
		*kind = CV_M_DEVICE;
		return cv_range_in(p, len, n->base, n->size) ?
			       CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
	}
	if (!dev && !in_heap(p)) {
		*kind = CV_M_HOST;
		return CUDA_SUCCESS;
	}
	pthread_mutex_lock(&g.lock);
	if (dev) {
		n = cv_rtree_find(&g.allocs, p);
		if (!n && (n = cv_rtree_find(&g.vmaps, p)) &&
		    vmaps_span(n, p, len))
			span = true;
	} else {
		n = cv_rtree_find(&g.hallocs, p);
	}
	/* The whole range must lie inside the one allocation (or in
	 * mappings that follow one another, as the driver allows). */
	if (n && !span && !cv_range_in(p, len, n->base, n->size))
		n = NULL;
	pthread_mutex_unlock(&g.lock);
	*kind = dev ? CV_M_DEVICE : CV_M_PINNED;
	return n ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

/* ---- pinned host memory ---------------------------------------------- */

/* Maps heap [off, off + len) here after the worker mapped it. */
static int heap_map(uint64_t off, uint64_t len)
{
	struct cv_heap_range h = { off, len };
	void *want = g.region + CV_HEAP_OFF + off, *p;
	int rc;

	rc = cv_g_call(CV_OP_HEAP_MAP, false, &h, sizeof(h), NULL, 0, NULL);
	if (rc)
		return rc;
	p = mmap(want, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		 g.memfd, (off_t)(CV_HEAP_OFF + off));
	if (p == MAP_FAILED) {
		cv_g_call(CV_OP_HEAP_UNMAP, false, &h, sizeof(h), NULL, 0, NULL);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	return CUDA_SUCCESS;
}

static void heap_unmap(uint64_t off, uint64_t len)
{
	struct cv_heap_range h = { off, len };

	mmap(g.region + CV_HEAP_OFF + off, len, PROT_NONE,
	     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
	cv_g_call(CV_OP_HEAP_UNMAP, false, &h, sizeof(h), NULL, 0, NULL);
}

/* Heap offset range of len bytes, mapped on both sides; CUresult. */
static int heap_range(uint64_t len, uint64_t *off)
{
	int rc;

	pthread_mutex_lock(&g.lock);
	rc = cv_vaspace_alloc(&g.hva, len, CV_PAGE, off);
	pthread_mutex_unlock(&g.lock);
	if (rc)
		return CUDA_ERROR_OUT_OF_MEMORY;
	rc = heap_map(*off, len);
	if (rc) {
		pthread_mutex_lock(&g.lock);
		cv_vaspace_free(&g.hva, *off, len);
		pthread_mutex_unlock(&g.lock);
	}
	return rc;
}

static void heap_range_free(uint64_t off, uint64_t len)
{
	heap_unmap(off, len);
	pthread_mutex_lock(&g.lock);
	cv_vaspace_free(&g.hva, off, len);
	pthread_mutex_unlock(&g.lock);
}

static int hslab_new(void)
{
	struct cv_hslab *s = calloc(1, sizeof(*s));
	int rc;

	if (!s)
		return CUDA_ERROR_OUT_OF_MEMORY;
	rc = heap_range(CV_HSLAB, &s->off);
	if (!rc && cv_vaspace_init(&s->space, CV_REGION_ADDR + CV_HEAP_OFF +
					      s->off, CV_HSLAB)) {
		heap_range_free(s->off, CV_HSLAB);
		rc = CUDA_ERROR_OUT_OF_MEMORY;
	}
	if (rc) {
		free(s);
		return rc;
	}
	pthread_mutex_lock(&g.lock);
	s->next = g.hslabs;
	g.hslabs = s;
	pthread_mutex_unlock(&g.lock);
	return CUDA_SUCCESS;
}

static int host_alloc_small(struct cv_halloc *a, uint64_t size)
{
	struct cv_hslab *s;
	int rc;

	for (;;) {
		pthread_mutex_lock(&g.lock);
		for (s = g.hslabs; s; s = s->next) {
			if (!cv_vaspace_alloc(&s->space, size, 64,
					      &a->r.base)) {
				s->used += size;
				a->slab = s;
				break;
			}
		}
		pthread_mutex_unlock(&g.lock);
		if (a->slab)
			return CUDA_SUCCESS;
		rc = hslab_new();
		if (rc)
			return rc;
	}
}

static int host_alloc(size_t size, unsigned int flags, void **out)
{
	struct cv_halloc *a;
	uint64_t off;
	int rc;

	if (!size)
		return CUDA_ERROR_INVALID_VALUE;
	a = calloc(1, sizeof(*a));
	if (!a)
		return CUDA_ERROR_OUT_OF_MEMORY;
	a->ctx = cv_ctx_current();
	a->r.size = size;
	a->flags = flags;
	if (size <= CV_HSMALL_MAX) {
		rc = host_alloc_small(a, cv_align_up(size, 64));
	} else {
		a->map_size = cv_align_up(size, CV_PAGE);
		rc = a->map_size ? heap_range(a->map_size, &off) :
				   CUDA_ERROR_OUT_OF_MEMORY;
		if (!rc)
			a->r.base = CV_REGION_ADDR + CV_HEAP_OFF + off;
	}
	if (!rc) {
		pthread_mutex_lock(&g.lock);
		a->id = next_buffer_id++;
		if (cv_rtree_insert(&g.hallocs, &a->r))
			rc = CUDA_ERROR_OUT_OF_MEMORY;
		pthread_mutex_unlock(&g.lock);
	}
	if (rc) {
		free(a);
		return rc;
	}
	*out = (void *)a->r.base;
	return CUDA_SUCCESS;
}

static void host_free(struct cv_halloc *a)
{
	struct cv_hslab *s = a->slab, **pp;
	uint64_t sz = cv_align_up(a->r.size, 64);
	bool drop = false;

	if (!s) {
		heap_range_free(a->r.base - CV_REGION_ADDR - CV_HEAP_OFF,
				a->map_size);
		free(a);
		return;
	}
	pthread_mutex_lock(&g.lock);
	cv_vaspace_free(&s->space, a->r.base, sz);
	s->used -= sz;
	if (!s->used && (g.hslabs != s || s->next)) {
		for (pp = &g.hslabs; *pp != s; pp = &(*pp)->next)
			;
		*pp = s->next;
		drop = true;
	}
	pthread_mutex_unlock(&g.lock);
	if (drop) {
		heap_range_free(s->off, CV_HSLAB);
		cv_vaspace_exit(&s->space);
		free(s);
	}
	free(a);
}

CV_API CUresult cuMemAllocHost_v2(void **pp, size_t size)
{
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	if (!pp)
		return CUDA_ERROR_INVALID_VALUE;
	return host_alloc(size, CU_MEMHOSTALLOC_PORTABLE, pp);
}

CV_API CUresult cuMemHostAlloc(void **pp, size_t size, unsigned int flags)
{
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	if (!pp || (flags & ~(unsigned)(CU_MEMHOSTALLOC_PORTABLE |
					CU_MEMHOSTALLOC_DEVICEMAP |
					CU_MEMHOSTALLOC_WRITECOMBINED)))
		return CUDA_ERROR_INVALID_VALUE;
	return host_alloc(size, flags, pp);
}

CV_API CUresult cuMemFreeHost(void *p)
{
	struct cv_halloc *a;
	int rc = cv_g_ready();

	if (rc)
		return rc;
	pthread_mutex_lock(&g.lock);
	a = (struct cv_halloc *)cv_rtree_take(&g.hallocs, (uint64_t)p);
	pthread_mutex_unlock(&g.lock);
	if (!a)
		return CUDA_ERROR_INVALID_VALUE;
	host_free(a);
	return CUDA_SUCCESS;
}

static struct cv_halloc *halloc_find(const void *p)
{
	struct cv_halloc *a;

	pthread_mutex_lock(&g.lock);
	a = (struct cv_halloc *)cv_rtree_find(&g.hallocs, (uint64_t)p);
	pthread_mutex_unlock(&g.lock);
	return a;
}

CV_API CUresult cuMemHostGetDevicePointer_v2(CUdeviceptr *dptr, void *p,
					     unsigned int flags)
{
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	if (!dptr || flags)
		return CUDA_ERROR_INVALID_VALUE;
	/* The heap sits at the same address in the worker and is registered
	 * there for device access, so the device pointer is the pointer. */
	if (!halloc_find(p))
		return CUDA_ERROR_INVALID_VALUE;
	/* A GPU on another host cannot reach our memory (docs/remote.md). */
	if (!g.dev.attr[CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY])
		return CUDA_ERROR_NOT_SUPPORTED;
	*dptr = (CUdeviceptr)p;
	return CUDA_SUCCESS;
}

CV_API CUresult cuMemHostGetFlags(unsigned int *flags, void *p)
{
	struct cv_halloc *a;
	struct cv_hreg *r;
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	if (!flags)
		return CUDA_ERROR_INVALID_VALUE;
	a = halloc_find(p);
	if (a) {
		*flags = a->flags;
		return CUDA_SUCCESS;
	}
	pthread_mutex_lock(&g.lock);
	r = (struct cv_hreg *)cv_rtree_find(&g.registered, (uint64_t)p);
	if (r)
		*flags = r->flags;
	pthread_mutex_unlock(&g.lock);
	return r ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

/*
 * Registered memory stays in the program's address space, which the
 * worker cannot reach: copies from and to it are staged like pageable
 * memory, and it has no device pointer (cuMemHostGetDevicePointer fails
 * with CUDA_ERROR_NOT_SUPPORTED for it).
 */
CV_API CUresult cuMemHostRegister_v2(void *p, size_t size, unsigned int flags)
{
	struct cv_hreg *r;
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	if (!p || !size || (uint64_t)p + size < (uint64_t)p)
		return CUDA_ERROR_INVALID_VALUE;
	if (flags & CU_MEMHOSTREGISTER_IOMEMORY)
		return CUDA_ERROR_NOT_SUPPORTED;
	r = calloc(1, sizeof(*r));
	if (!r)
		return CUDA_ERROR_OUT_OF_MEMORY;
	*r = (struct cv_hreg){ { (uint64_t)p, size }, cv_ctx_current(), flags };
	pthread_mutex_lock(&g.lock);
	rc = cv_rtree_insert(&g.registered, &r->r);
	pthread_mutex_unlock(&g.lock);
	if (rc) {
		free(r);
		return rc == -EEXIST ? CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED :
				       CUDA_ERROR_OUT_OF_MEMORY;
	}
	return CUDA_SUCCESS;
}

CV_API CUresult cuMemHostRegister(void *p, size_t size, unsigned int flags)
{
	return cuMemHostRegister_v2(p, size, flags);
}

CV_API CUresult cuMemHostUnregister(void *p)
{
	struct cv_hreg *r;
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	pthread_mutex_lock(&g.lock);
	r = (struct cv_hreg *)cv_rtree_take(&g.registered, (uint64_t)p);
	pthread_mutex_unlock(&g.lock);
	free(r);
	return r ? CUDA_SUCCESS : CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED;
}

/* ---- pointer attributes ------------------------------------------------ */

struct ptrinfo {
	int type;            /* 0 unknown, CU_MEMORYTYPE_DEVICE or _HOST */
	uint64_t base, size, id;
	struct cv_ctx *ctx;
};

static void ptr_info(uint64_t p, struct ptrinfo *pi)
{
	struct cv_dalloc *a;
	struct cv_halloc *h;
	struct cv_vmap *m;

	memset(pi, 0, sizeof(*pi));
	pthread_mutex_lock(&g.lock);
	if ((a = (struct cv_dalloc *)cv_rtree_find(&g.allocs, p))) {
		*pi = (struct ptrinfo){ CU_MEMORYTYPE_DEVICE, a->r.base,
					a->r.size, a->id, a->ctx };
	} else if ((m = (struct cv_vmap *)cv_rtree_find(&g.vmaps, p))) {
		*pi = (struct ptrinfo){ CU_MEMORYTYPE_DEVICE, m->r.base,
					m->r.size, m->r.base, NULL };
	} else if ((h = (struct cv_halloc *)cv_rtree_find(&g.hallocs, p))) {
		*pi = (struct ptrinfo){ CU_MEMORYTYPE_HOST, h->r.base,
					h->r.size, h->id, h->ctx };
	}
	pthread_mutex_unlock(&g.lock);
}

static int ptr_attr(void *data, CUpointer_attribute attr, uint64_t p,
		    const struct ptrinfo *pi)
{
	switch (attr) {
	case CU_POINTER_ATTRIBUTE_CONTEXT:
		*(CUcontext *)data = pi->ctx ? (CUcontext)(uintptr_t)
				     cv_handle_of(&pi->ctx->h) : NULL;
		return 0;
	case CU_POINTER_ATTRIBUTE_MEMORY_TYPE:
		*(unsigned int *)data = (unsigned int)pi->type;
		return 0;
	case CU_POINTER_ATTRIBUTE_DEVICE_POINTER:
		*(CUdeviceptr *)data = p;
		return 0;
	case CU_POINTER_ATTRIBUTE_HOST_POINTER:
		if (pi->type != CU_MEMORYTYPE_HOST)
			return CUDA_ERROR_INVALID_VALUE;
		*(void **)data = (void *)p;
		return 0;
	case CU_POINTER_ATTRIBUTE_SYNC_MEMOPS:
	case CU_POINTER_ATTRIBUTE_IS_MANAGED:
	case CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE:
	case CU_POINTER_ATTRIBUTE_IS_GPU_DIRECT_RDMA_CAPABLE:
	case CU_POINTER_ATTRIBUTE_IS_HW_DECOMPRESS_CAPABLE:
		*(int *)data = 0;
		return 0;
	case CU_POINTER_ATTRIBUTE_MAPPED:
		*(int *)data = 1;
		return 0;
	case CU_POINTER_ATTRIBUTE_BUFFER_ID:
	case CU_POINTER_ATTRIBUTE_MEMORY_BLOCK_ID:
		*(unsigned long long *)data = pi->id;
		return 0;
	case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL:
		*(int *)data = 0;
		return 0;
	case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR:
	case CU_POINTER_ATTRIBUTE_MAPPING_BASE_ADDR:
		*(CUdeviceptr *)data = pi->base;
		return 0;
	case CU_POINTER_ATTRIBUTE_RANGE_SIZE:
	case CU_POINTER_ATTRIBUTE_MAPPING_SIZE:
		*(size_t *)data = pi->size;
		return 0;
	case CU_POINTER_ATTRIBUTE_ALLOWED_HANDLE_TYPES:
		*(unsigned long long *)data = 0;
		return 0;
	case CU_POINTER_ATTRIBUTE_ACCESS_FLAGS:
		*(unsigned int *)data = CU_POINTER_ATTRIBUTE_ACCESS_FLAG_READWRITE;
		return 0;
	case CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE:
		*(void **)data = NULL;
		return 0;
	default:
		return CUDA_ERROR_INVALID_VALUE;
	}
}

CV_API CUresult cuPointerGetAttribute(void *data, CUpointer_attribute attr,
				      CUdeviceptr p)
{
	struct ptrinfo pi;
	int rc = cv_g_ready();

	if (rc)
		return rc;
	if (!data)
		return CUDA_ERROR_INVALID_VALUE;
	ptr_info(p, &pi);
	if (!pi.type)
		return CUDA_ERROR_INVALID_VALUE;
	return ptr_attr(data, attr, p, &pi);
}

CV_API CUresult cuPointerGetAttributes(unsigned int n,
				       CUpointer_attribute *attrs, void **data,
				       CUdeviceptr p)
{
	struct ptrinfo pi;
	unsigned int i;
	int rc = cv_g_ready();

	if (rc)
		return rc;
	if (!attrs || !data)
		return CUDA_ERROR_INVALID_VALUE;
	ptr_info(p, &pi);
	for (i = 0; i < n; i++) {
		if (!data[i])
			continue;
		/* Unknown pointers get zeroed answers, not an error. */
		if (!pi.type && attrs[i] != CU_POINTER_ATTRIBUTE_MEMORY_TYPE &&
		    attrs[i] != CU_POINTER_ATTRIBUTE_CONTEXT) {
			memset(data[i], 0, sizeof(int));
			continue;
		}
		if (ptr_attr(data[i], attrs[i], p, &pi))
			memset(data[i], 0, sizeof(int));
	}
	return CUDA_SUCCESS;
}

CV_API CUresult cuPointerSetAttribute(const void *value,
				      CUpointer_attribute attr, CUdeviceptr p)
{
	struct ptrinfo pi;
	int rc = cv_g_ready();

	if (rc)
		return rc;
	if (attr != CU_POINTER_ATTRIBUTE_SYNC_MEMOPS)
		return CUDA_ERROR_INVALID_VALUE;
	ptr_info(p, &pi);
	return pi.type ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

/* ---- context teardown ------------------------------------------------- */

struct collect {
	struct cv_ctx *c;
	struct cv_rnode **v;
	size_t n, cap;
};

static void collect_cb(struct cv_rnode *n, void *arg)
{
	struct collect *col = arg;
	struct cv_ctx *owner = ((struct cv_dalloc *)n)->ctx;
	struct cv_rnode **nv;

	if (owner != col->c)
		return;
	if (col->n == col->cap) {
		col->cap = col->cap ? col->cap * 2 : 64;
		nv = realloc(col->v, col->cap * sizeof(*nv));
		if (!nv)
			return;
		col->v = nv;
	}
	col->v[col->n++] = n;
}

void cv_mem_release_ctx(struct cv_ctx *c)
{
	struct collect col = { .c = c };
	size_t i;

	pthread_mutex_lock(&g.lock);
	cv_rtree_walk(&g.allocs, collect_cb, &col);
	for (i = 0; i < col.n; i++)
		cv_rtree_remove(&g.allocs, col.v[i]);
	pthread_mutex_unlock(&g.lock);
	for (i = 0; i < col.n; i++)
		dev_free((struct cv_dalloc *)col.v[i]);
	free(col.v);
}

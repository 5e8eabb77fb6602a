/* SPDX-License-Identifier: MIT */
/*
 * The virtual-memory management API inside the tenant's window: address
 * reservations are guest-local, physical handles and mappings live in the
 * worker (VMM_CREATE / VMM_MAP), with the granularity of CV_GRANULE.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "guest.h"


CV_API CUresult cuMemGetAllocationGranularity(size_t *gran,
					      const CUmemAllocationProp *prop,
					      CUmemAllocationGranularity_flags f)
{
	int rc = cv_g_ready();

	if (rc)
		return rc;
	if (!gran || !prop)
		return CUDA_ERROR_INVALID_VALUE;
	*gran = CV_GRANULE;
	return CUDA_SUCCESS;
}

CV_API CUresult cuMemAddressReserve(CUdeviceptr *ptr, size_t size,
				    size_t align, CUdeviceptr addr,
				    unsigned long long flags)
{
	struct cv_vreserve *r;
	uint64_t va = 0;
	int rc = cv_g_ready();

	if (rc)
		return rc;
	if (!ptr || !size || (size % CV_GRANULE) ||
	    (align && !cv_is_pow2(align)))
		return CUDA_ERROR_INVALID_VALUE;
	r = calloc(1, sizeof(*r));
	if (!r)
		return CUDA_ERROR_OUT_OF_MEMORY;
	align = CV_MAX(align, (size_t)CV_GRANULE);
	pthread_mutex_lock(&g.lock);
	/* The address is a hint: honour it when it is free. */
	if (addr && !(addr % align) && !cv_vaspace_claim(&g.dva, addr, size))
		va = addr;
	else if (cv_vaspace_alloc(&g.dva, size, align, &va))
		va = 0;
	if (va) {
		r->r = (struct cv_rnode){ va, size };
		if (cv_rtree_insert(&g.vreserves, &r->r)) {
			cv_vaspace_free(&g.dva, va, size);
			va = 0;
		}
	}
	pthread_mutex_unlock(&g.lock);
	if (!va) {
		free(r);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	*ptr = va;
	return CUDA_SUCCESS;
}

/* True when [a, a + len) overlaps a mapping (under g.lock). */
static bool mapped_in(uint64_t a, uint64_t len)
{
	uint64_t p;

	for (p = a; p - a < len; p += CV_GRANULE)
		if (cv_rtree_find(&g.vmaps, p))
			return true;
	return false;
}

CV_API CUresult cuMemAddressFree(CUdeviceptr ptr, size_t size)
{
	struct cv_vreserve *r;
	int rc = cv_g_ready();

	if (rc)
		return rc;
	pthread_mutex_lock(&g.lock);
	r = (struct cv_vreserve *)cv_rtree_find(&g.vreserves, ptr);
	if (!r || r->r.base != ptr || r->r.size != size ||
	    mapped_in(ptr, size)) {
		pthread_mutex_unlock(&g.lock);
		return CUDA_ERROR_INVALID_VALUE;
	}
	cv_rtree_remove(&g.vreserves, &r->r);
	cv_vaspace_free(&g.dva, ptr, size);
	pthread_mutex_unlock(&g.lock);
	free(r);
	return CUDA_SUCCESS;
}

static struct cv_memhandle *mh_get(CUmemGenericAllocationHandle h)
{
	return cv_handle_get(h, CV_H_MEMHANDLE);
}

CV_API CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size,
			    const CUmemAllocationProp *prop,
			    unsigned long long flags)
{
	struct cv_vmm_create a;
	struct cv_memhandle *m;
	uint64_t h;
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	if (!handle || !prop || !size || (size % CV_GRANULE) || flags)
		return CUDA_ERROR_INVALID_VALUE;
	if (prop->type != CU_MEM_ALLOCATION_TYPE_PINNED ||
	    prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE)
		return CUDA_ERROR_NOT_SUPPORTED;
	if (prop->location.id != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	m = calloc(1, sizeof(*m));
	if (!m)
		return CUDA_ERROR_OUT_OF_MEMORY;
	m->size = size;
	m->prop = *prop;
	h = cv_handle_new(m, CV_H_MEMHANDLE, &a.id);
	if (!h) {
		free(m);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	a.pad = 0;
	a.size = size;
	rc = cv_g_call(CV_OP_VMM_CREATE, false, &a, sizeof(a), NULL, 0, NULL);
	if (rc) {
		cv_handle_del(h);
		free(m);
		return rc;
	}
	pthread_mutex_lock(&g.lock);
	g.mapped += size;
	pthread_mutex_unlock(&g.lock);
	*handle = h;
	return CUDA_SUCCESS;
}

/* Drops the handle once it is released and no longer mapped. */
static void mh_maybe_free(struct cv_memhandle *m, uint64_t h)
{
	if (!m->released || m->maps)
		return;
	cv_handle_del(h);
	pthread_mutex_lock(&g.lock);
	g.mapped -= m->size;
	pthread_mutex_unlock(&g.lock);
	free(m);
}

CV_API CUresult cuMemRelease(CUmemGenericAllocationHandle h)
{
	struct cv_memhandle *m = mh_get(h);
	struct cv_id a;
	int rc = cv_g_ready();

	if (rc)
		return rc;
	if (!m || m->released)
		return CUDA_ERROR_INVALID_VALUE;
	a = (struct cv_id){ m->h.id, 0 };
	rc = cv_g_submit(CV_OP_VMM_RELEASE, &a, sizeof(a));
	if (rc)
		return rc;
	pthread_mutex_lock(&g.lock);
	m->released = true;
	pthread_mutex_unlock(&g.lock);
	mh_maybe_free(m, h);
	return CUDA_SUCCESS;
}

CV_API CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset,
			 CUmemGenericAllocationHandle h,
			 unsigned long long flags)
{
	struct cv_memhandle *m = mh_get(h);
	struct cv_vreserve *r;
	struct cv_vmm_map a;
	struct cv_vmap *vm;
	int rc = cv_g_ready();

	if (rc)
		return rc;
	if (!m || m->released)
		return CUDA_ERROR_INVALID_HANDLE;
	if (!size || flags || (ptr % CV_GRANULE) || (size % CV_GRANULE) ||
	    (offset % CV_GRANULE) || !cv_range_ok(offset, size, m->size))
		return CUDA_ERROR_INVALID_VALUE;
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return CUDA_ERROR_OUT_OF_MEMORY;
	pthread_mutex_lock(&g.lock);
	r = (struct cv_vreserve *)cv_rtree_find(&g.vreserves, ptr);
	if (!r || !cv_range_in(ptr, size, r->r.base, r->r.size) ||
	    mapped_in(ptr, size))
		rc = CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_unlock(&g.lock);
	if (rc) {
		free(vm);
		return rc;
	}
	a = (struct cv_vmm_map){ ptr, size, offset, m->h.id, 0 };
	rc = cv_g_call(CV_OP_VMM_MAP, false, &a, sizeof(a), NULL, 0, NULL);
	if (rc) {
		free(vm);
		return rc;
	}
	vm->r = (struct cv_rnode){ ptr, size };
	vm->mh = m;
	pthread_mutex_lock(&g.lock);
	m->maps++;
	cv_rtree_insert(&g.vmaps, &vm->r);
	pthread_mutex_unlock(&g.lock);
	return CUDA_SUCCESS;
}

CV_API CUresult cuMemUnmap(CUdeviceptr ptr, size_t size)
{
	struct cv_mem_range a = { ptr, size };
	struct cv_memhandle *m;
	struct cv_vmap *vm;
	uint64_t h;
	int rc = cv_g_ready();

	if (rc)
		return rc;
	pthread_mutex_lock(&g.lock);
	vm = (struct cv_vmap *)cv_rtree_find(&g.vmaps, ptr);
	if (!vm || vm->r.base != ptr || vm->r.size != size)
		vm = NULL;
	else
		cv_rtree_remove(&g.vmaps, &vm->r);
	pthread_mutex_unlock(&g.lock);
	if (!vm)
		return CUDA_ERROR_INVALID_VALUE;
	rc = cv_g_call(CV_OP_VMM_UNMAP, false, &a, sizeof(a), NULL, 0, NULL);
	m = vm->mh;
	h = cv_handle_of(&m->h);
	pthread_mutex_lock(&g.lock);
	m->maps--;
	pthread_mutex_unlock(&g.lock);
	free(vm);
	mh_maybe_free(m, h);
	return rc;
}

CV_API CUresult cuMemSetAccess(CUdeviceptr ptr, size_t size,
			       const CUmemAccessDesc *desc, size_t count)
{
	size_t i;
	uint64_t p;
	int rc = cv_g_ready();

	if (rc)
		return rc;
	if (!desc || !count || !size)
		return CUDA_ERROR_INVALID_VALUE;
	for (i = 0; i < count; i++) {
		if (desc[i].location.type != CU_MEM_LOCATION_TYPE_DEVICE)
			return CUDA_ERROR_NOT_SUPPORTED;
		if (desc[i].location.id != 0)
			return CUDA_ERROR_INVALID_DEVICE;
	}
	/* Mappings are made read-write by the worker; the range must be
	 * mapped throughout. */
	pthread_mutex_lock(&g.lock);
	for (p = ptr; p - ptr < size && !rc; p += CV_GRANULE)
		if (!cv_rtree_find(&g.vmaps, p))
			rc = CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_unlock(&g.lock);
	return rc;
}

CV_API CUresult cuMemGetAccess(unsigned long long *flags,
			       const CUmemLocation *loc, CUdeviceptr ptr)
{
	struct cv_rnode *n;
	int rc = cv_g_ready();

	if (rc)
		return rc;
	if (!flags || !loc)
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&g.lock);
	n = cv_rtree_find(&g.vmaps, ptr);
	pthread_mutex_unlock(&g.lock);
	*flags = n && loc->type == CU_MEM_LOCATION_TYPE_DEVICE && loc->id == 0 ?
		 CU_MEM_ACCESS_FLAGS_PROT_READWRITE : CU_MEM_ACCESS_FLAGS_PROT_NONE;
	return CUDA_SUCCESS;
}

CV_API CUresult cuMemGetAllocationPropertiesFromHandle(
	CUmemAllocationProp *prop, CUmemGenericAllocationHandle h)
{
	struct cv_memhandle *m = mh_get(h);
	int rc = cv_g_ready();

	if (rc)
		return rc;
	if (!prop || !m)
		return CUDA_ERROR_INVALID_VALUE;
	*prop = m->prop;
	return CUDA_SUCCESS;
}

/* SPDX-License-Identifier: MIT */
/* Internal interfaces between the decoder and the rest of the worker. */
#ifndef CV_VGPU_INT_H
#define CV_VGPU_INT_H

#include "vgpu.h"

/* Sets staging chunk i's state (DONE or FAILED) and wakes the guest. */
void cv_vgpu_chunk_set(struct cv_vgpu *v, uint32_t i, uint32_t state);

/* Marks chunk i DONE once the work queued on stream s so far has
 * completed (FAILED if it fails). Returns a CUresult. */
int cv_vgpu_signal_after(struct cv_vgpu *v, cv_bobj s, uint32_t i);

/* Maps and registers [off, off + len) of the pinned heap; CUresult. */
int cv_vgpu_heap_map(struct cv_vgpu *v, uint64_t off, uint64_t len);
int cv_vgpu_heap_unmap(struct cv_vgpu *v, uint64_t off, uint64_t len);

/*
 * Memory rebuilt in a new worker (restore, a migration's destination),
 * not asked for by the guest. vmm_add makes VMM handle id of size bytes;
 * map_add maps [va, va + size): handle vmm's bytes from offset, or fresh
 * memory of its own (vmm 0), and records it in v->dev. Both count it in
 * v->used. mem, when not NULL, is the memory to use instead of fresh
 * memory (a migration's shared memory; plain ranges only for map_add):
 * the vGPU owns it on success, the caller still on failure. 0, -ENOMEM
 * or -EIO, with err (errlen bytes) saying why when the GPU refused.
 */
int cv_vgpu_vmm_add(struct cv_vgpu *v, uint32_t id, uint64_t size,
		    bool released, cv_bobj mem, char *err, size_t errlen);
int cv_vgpu_map_add(struct cv_vgpu *v, uint64_t va, uint64_t size,
		    uint32_t vmm, uint64_t offset, cv_bobj mem, char *err,
		    size_t errlen);

/* Releases VMM handle id's memory and forgets the handle (no mapping of
 * it may be left). */
void cv_vgpu_vmm_drop(struct cv_vgpu *v, uint32_t id);

/* Queues a guest host function on stream s; CUresult. */
int cv_vgpu_host_func(struct cv_vgpu *v, cv_bobj s,
		      const struct cv_host_func *a);

/* Loads img as module id (a reference to img is taken); CUresult. */
int cv_vgpu_module_bind(struct cv_vgpu *v, uint32_t id, struct cv_wimage *img);
void cv_vgpu_module_free(struct cv_wmodule *m);
void cv_vgpu_func_free(struct cv_wfunc *f);
/* Remembers a global of m the guest looked up; 0 or -ENOMEM. */
int cv_vgpu_global_note(struct cv_wmodule *m, const char *name, uint64_t dptr,
			uint64_t real, uint64_t size);
/* Rebases [*a, *a + len) when it lies in a moved global. */
static inline void cv_vgpu_xlate(const struct cv_vgpu *v, uint64_t *a,
				 uint64_t len)
{
	const struct cv_wreloc *r;
	uint32_t i;

	for (i = 0; i < v->nreloc; i++) {
		r = &v->reloc[i];
		if (*a >= r->guest && *a - r->guest < r->size &&
		    len <= r->size - (*a - r->guest)) {
			*a = *a - r->guest + r->real;
			return;
		}
	}
}

#endif

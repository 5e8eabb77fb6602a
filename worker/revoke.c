/* SPDX-License-Identifier: MIT */
/*
 * Revocation (DESIGN.md decision 8): suspend, resume and evict. The
 * control thread asks, the consumer parks between two commands after
 * draining the GPU, and the operation (evicting device memory to host
 * memory, restoring it) runs while the consumer is parked, so nothing else
 * touches the device state meanwhile. The guest notices nothing but the
 * pause: its calls block on a full ring or a reply, and its stall check
 * sees a busy worker.
 */
#include <cuda.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../core/futex.h"
#include "../core/log.h"
#include "../core/util.h"
#include "vgpu.h"
#include "xfer.h"

static void set_state(struct cv_vgpu *v, uint32_t st)
{
	/* Release: the guest and `cuvisor ps` read it without a lock. */
	__atomic_store_n(&v->ctl->state, st, __ATOMIC_RELEASE);
}

/* Called by the consumer between commands when a stop is wanted. */
void cv_vgpu_park(struct cv_vgpu *v)
{
	/* Busy for the guest's stall check while parked. */
	__atomic_store_n(&v->cons_idle, 0, __ATOMIC_SEQ_CST);
	v->ops->ctx_sync(v->b); /* in-flight work completes */
	/* Publish how far we are: a checkpoint records it, and a restore
	 * compares it with the region's. */
	__atomic_store_n(&v->ctl->head, v->ring.head, __ATOMIC_RELEASE);
	v->ring.released = v->ring.head;
	pthread_mutex_lock(&v->rev_lock);
	v->parked = true;
	if (!v->evicted)
		set_state(v, CV_STATE_SUSPENDED);
	pthread_cond_broadcast(&v->rev_cond);
	while (v->rev_stop && !v->guest_gone)
		pthread_cond_wait(&v->rev_cond, &v->rev_lock);
	v->parked = false;
	set_state(v, CV_STATE_RUNNING);
	pthread_cond_broadcast(&v->rev_cond);
	pthread_mutex_unlock(&v->rev_lock);
}

/* Wakes a consumer sleeping on an empty ring. */
static void poke_consumer(struct cv_vgpu *v)
{
	__atomic_fetch_add(&v->ctl->cons_doorbell, 1, __ATOMIC_RELEASE);
	cv_futex_wake(&v->ctl->cons_doorbell, INT32_MAX);
}

int cv_vgpu_suspend(struct cv_vgpu *v)
{
	pthread_mutex_lock(&v->rev_lock);
	v->rev_stop = true;
	pthread_mutex_unlock(&v->rev_lock);
	poke_consumer(v);
	pthread_mutex_lock(&v->rev_lock);
	while (!v->parked && !v->guest_gone)
		pthread_cond_wait(&v->rev_cond, &v->rev_lock);
	pthread_mutex_unlock(&v->rev_lock);
	return v->guest_gone ? -ESRCH : 0;
}

static void *big_alloc(uint64_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	/* Fewer page faults while the copy threads fill it. */
	madvise(p, size, MADV_HUGEPAGE);
	return p;
}

static void saved_free(struct cv_vgpu *v)
{
	uint32_t i;

	for (i = 0; i < v->nsaved; i++)
		if (v->saved[i].buf)
			munmap(v->saved[i].buf, v->saved[i].size);
	free(v->saved);
	v->saved = NULL;
	v->nsaved = 0;
}

struct cover {
	uint64_t lo, hi;
};

static int by_lo(const void *a, const void *b)
{
	const struct cover *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

int cv_vgpu_vmm_covered(struct cv_vgpu *v, const char *op)
{
	const struct cv_wvmm *h;
	const struct cv_wmap *m;
	struct cover *c;
	uint64_t end;
	uint32_t i, k, n;
	int rc = 0;

	if (!v->vmms.count)
		return 0;
	c = malloc((v->dev.n + 1) * sizeof(*c));
	if (!c)
		return -ENOMEM;
	for (i = 1; i < v->vmms.cap && !rc; i++) {
		if (!(h = v->vmms.v[i]))
			continue;
		for (n = 0, k = 0; k < v->dev.n; k++) {
			m = v->dev.r[k].owner;
			if (m->vmm == i)
				c[n++] = (struct cover){ m->offset,
							 m->offset + m->size };
		}
		qsort(c, n, sizeof(*c), by_lo);
		for (end = 0, k = 0; k < n && c[k].lo <= end; k++)
			end = CV_MAX(end, c[k].hi);
		if (end < h->size) {
			cv_warn("tenant %llu: not %s: VMM allocation %u has "
				"bytes that are mapped nowhere",
				(unsigned long long)v->hdr->tenant_id, op, i);
			rc = -EOPNOTSUPP;
		}
	}
	free(c);
	return rc;
}

/*
 * Copies one range out to host memory and unmaps it. Memory of its own
 * (MEM_MAP) is given back at once; a VMM handle's only once all of its
 * ranges are out (release_handles).
 */
static int evict_range(struct cv_vgpu *v, struct cv_saved *s)
{
	int rc;

	s->buf = big_alloc(s->size);
	if (!s->buf)
		return -ENOMEM;
	rc = cv_xfer_d2h(v, s->buf, s->va, s->size) ? CUDA_ERROR_UNKNOWN : 0;
	if (!rc)
		rc = v->ops->mem_unmap(v->b, s->va, s->size);
	if (rc) {
		cv_err("tenant %llu: evicting 0x%llx (+%llu): CUresult %d",
		       (unsigned long long)v->hdr->tenant_id,
		       (unsigned long long)s->va,
		       (unsigned long long)s->size, rc);
		munmap(s->buf, s->size);
		s->buf = NULL;
		return -EIO;
	}
	if (!s->map->vmm) {
		v->ops->mem_release(v->b, s->map->mem);
		s->map->mem = NULL;
	}
	return 0;
}

/* After every range is out: the VMM handles' memory goes too. */
static void release_handles(struct cv_vgpu *v)
{
	struct cv_wvmm *h;
	uint32_t i;

	for (i = 1; i < v->vmms.cap; i++)
		if ((h = v->vmms.v[i]) && h->mem) {
			v->ops->mem_release(v->b, h->mem);
			h->mem = NULL;
		}
	for (i = 0; i < v->nsaved; i++)
		if (v->saved[i].map->vmm)
			v->saved[i].map->mem = NULL;
}

/*
 * Maps memory under a saved range again and copies it back: fresh memory
 * of its own, or its VMM handle's (made anew when it was released).
 */
static int restore_range(struct cv_vgpu *v, struct cv_saved *s)
{
	struct cv_wvmm *h = NULL;
	cv_bobj mem;
	int rc;

	if (s->map->vmm) {
		h = cv_htab_get(&v->vmms, s->map->vmm);
		if (!h)
			return -EIO;
		if (!h->mem && v->ops->mem_create(v->b, h->size, &h->mem))
			return -ENOMEM;
		mem = h->mem;
	} else {
		rc = v->ops->mem_create(v->b, s->size, &mem);
		if (rc)
			return rc == CUDA_ERROR_OUT_OF_MEMORY ? -ENOMEM : -EIO;
	}
	rc = v->ops->mem_map(v->b, s->va, s->size, mem, s->map->offset);
	if (!rc && cv_xfer_h2d(v, s->va, s->buf, s->size)) {
		v->ops->mem_unmap(v->b, s->va, s->size);
		rc = CUDA_ERROR_UNKNOWN;
	}
	if (rc) {
		if (!h)
			v->ops->mem_release(v->b, mem);
		return -EIO;
	}
	s->map->mem = mem;
	munmap(s->buf, s->size);
	s->buf = NULL;
	return 0;
}

/*
 * Evicts a suspended vGPU: every mapped range to host memory, then its
 * GPU memory released. Memory made with the VMM API goes through its
 * mappings; a handle with bytes mapped nowhere is refused (-EOPNOTSUPP)
 * before anything moves, as those bytes could not be brought back.
 */
int cv_vgpu_evict(struct cv_vgpu *v, uint64_t *bytes)
{
	const struct cv_range *r;
	uint32_t i;
	int rc;

	*bytes = 0;
	if (v->evicted)
		return -EALREADY;
	rc = cv_vgpu_vmm_covered(v, "evicted");
	if (rc)
		return rc;
	v->saved = calloc(v->dev.n ? v->dev.n : 1, sizeof(*v->saved));
	if (!v->saved)
		return -ENOMEM;
	/* Progress for `cuvisor evict` on a terminal (W_STATS). */
	__atomic_store_n(&v->op_done, 0, __ATOMIC_RELAXED);
	v->op_total = 0;
	for (i = 0; i < v->dev.n; i++)
		v->op_total += v->dev.r[i].size;
	for (i = 0; i < v->dev.n && !rc; i++) {
		r = &v->dev.r[i];
		v->saved[i] = (struct cv_saved){ r->base, r->size, NULL,
						 r->owner };
		v->nsaved = i + 1;
		rc = evict_range(v, &v->saved[i]);
		if (!rc)
			*bytes += r->size;
	}
	if (rc) {
		/* Put back what was already evicted; the tenant stays whole. */
		for (i = 0; i + 1 < v->nsaved; i++)
			restore_range(v, &v->saved[i]);
		saved_free(v);
		return rc;
	}
	release_handles(v);
	v->evicted = true;
	set_state(v, CV_STATE_EVICTED);
	return 0;
}

/* Restores an evicted vGPU's memory at the same addresses. */
static int unevict(struct cv_vgpu *v, uint64_t *bytes)
{
	uint32_t i;
	int rc;

	__atomic_store_n(&v->op_done, 0, __ATOMIC_RELAXED);
	v->op_total = 0;
	for (i = 0; i < v->nsaved; i++)
		if (v->saved[i].buf)
			v->op_total += v->saved[i].size;

	for (i = 0; i < v->nsaved; i++) {
		if (!v->saved[i].buf)
			continue; /* restored by an earlier, failed try */
		rc = restore_range(v, &v->saved[i]);
		if (rc) {
			cv_err("tenant %llu: cannot restore 0x%llx (+%llu): %s",
			       (unsigned long long)v->hdr->tenant_id,
			       (unsigned long long)v->saved[i].va,
			       (unsigned long long)v->saved[i].size,
			       strerror(-rc));
			return rc; /* still evicted; resume may be retried */
		}
		*bytes += v->saved[i].size;
	}
	saved_free(v);
	v->evicted = false;
	return 0;
}

int cv_vgpu_resume(struct cv_vgpu *v, uint64_t *bytes)
{
	int rc;

	*bytes = 0;
	pthread_mutex_lock(&v->rev_lock);
	if (!v->rev_stop) {
		pthread_mutex_unlock(&v->rev_lock);
		return -EALREADY;
	}
	pthread_mutex_unlock(&v->rev_lock);
	if (v->evicted && (rc = unevict(v, bytes)))
		return rc;
	pthread_mutex_lock(&v->rev_lock);
	v->rev_stop = false;
	pthread_cond_broadcast(&v->rev_cond);
	while (v->parked && !v->guest_gone)
		pthread_cond_wait(&v->rev_cond, &v->rev_lock);
	pthread_mutex_unlock(&v->rev_lock);
	return 0;
}

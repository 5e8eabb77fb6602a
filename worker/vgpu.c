/* SPDX-License-Identifier: MIT */
/*
 * vGPU life cycle: set-up over the shared region, the consumer loop, the
 * completion thread that signals staging chunks, the pinned heap, and
 * host functions that run in the guest.
 */
#include <cuda.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/futex.h"
#include "../core/log.h"
#include "../core/util.h"
#include "vgpu.h"
#include "vgpu_int.h"

#define CB_WAIT_SLICE_NS 100000000ull
#define FLUSH_SPIN_NS 20000ull

/* ---- completion thread -------------------------------------------------- */

void cv_vgpu_chunk_set(struct cv_vgpu *v, uint32_t i, uint32_t state)
{
	if (i >= CV_STAGING_CHUNKS)
		return;
	/* Release: the chunk's bytes (D2H) are visible before DONE. */
	__atomic_store_n(&v->chunk_state[i], state, __ATOMIC_RELEASE);
	cv_futex_wake(&v->chunk_state[i], INT32_MAX);
}

static void *compl_main(void *arg)
{
	struct cv_vgpu *v = arg;
	struct cv_compl c;
	int rc;

	pthread_mutex_lock(&v->compl_lock);
	for (;;) {
		while (v->compl_head == v->compl_tail && !v->compl_stop)
			pthread_cond_wait(&v->compl_cond, &v->compl_lock);
		if (v->compl_head == v->compl_tail)
			break;
		c = v->compl[v->compl_head % CV_COMPL_MAX];
		pthread_mutex_unlock(&v->compl_lock);

		rc = v->ops->marker_wait(v->b, c.marker);
		cv_vgpu_chunk_set(v, c.chunk,
				  rc ? CV_CHUNK_FAILED : CV_CHUNK_DONE);

		pthread_mutex_lock(&v->compl_lock);
		v->markers[v->nmarkers++] = c.marker;
		v->compl_head++;
		pthread_cond_signal(&v->compl_space);
	}
	pthread_mutex_unlock(&v->compl_lock);
	return NULL;
}

int cv_vgpu_signal_after(struct cv_vgpu *v, cv_bobj s, uint32_t i)
{
	cv_bobj m = NULL;
	int rc;

	pthread_mutex_lock(&v->compl_lock);
	while (v->compl_tail - v->compl_head >= CV_COMPL_MAX)
		pthread_cond_wait(&v->compl_space, &v->compl_lock);
	if (v->nmarkers)
		m = v->markers[--v->nmarkers];
	pthread_mutex_unlock(&v->compl_lock);

	rc = m ? 0 : v->ops->marker_create(v->b, &m);
	if (!rc)
		rc = v->ops->marker_record(v->b, m, s);
	if (rc) {
		if (m)
			v->ops->marker_destroy(v->b, m);
		cv_vgpu_chunk_set(v, i, CV_CHUNK_FAILED);
		return rc;
	}
	pthread_mutex_lock(&v->compl_lock);
	v->compl[v->compl_tail % CV_COMPL_MAX] =
		(struct cv_compl){ .marker = m, .chunk = i };
	v->compl_tail++;
	pthread_cond_signal(&v->compl_cond);
	pthread_mutex_unlock(&v->compl_lock);
	return CUDA_SUCCESS;
}

/* ---- pinned heap ----------------------------------------------------------- */

static int unmap_to_reserve(void *p, size_t len)
{
	void *r = mmap(p, len, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
		       -1, 0);

	return r == MAP_FAILED ? -errno : 0;
}

static int grow_memfd(int fd, uint64_t size)
{
	struct stat st;

	if (fstat(fd, &st))
		return -errno;
	if ((uint64_t)st.st_size >= size)
		return 0;
	return ftruncate(fd, (off_t)size) ? -errno : 0;
}

int cv_vgpu_heap_map(struct cv_vgpu *v, uint64_t off, uint64_t len)
{
	uint64_t addr = CV_REGION_ADDR + CV_HEAP_OFF + off;
	void *p;
	int rc;

	if (!len || (off % CV_PAGE) || (len % CV_PAGE) ||
	    !cv_range_ok(off, len, CV_HEAP_MAX) ||
	    cv_rangeset_overlaps(&v->heap, addr, len))
		return CUDA_ERROR_INVALID_VALUE;
	if (len > v->heap_limit - v->heap_mapped)
		return CUDA_ERROR_OUT_OF_MEMORY;
	if (grow_memfd(v->memfd, CV_HEAP_OFF + off + len)) {
		cv_warn("tenant %llu: cannot grow the region to %llu bytes",
			(unsigned long long)v->hdr->tenant_id,
			(unsigned long long)(CV_HEAP_OFF + off + len));
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	p = mmap((void *)addr, len, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED, v->memfd, (off_t)(CV_HEAP_OFF + off));
	if (p == MAP_FAILED)
		return CUDA_ERROR_OUT_OF_MEMORY;
	rc = v->ops->host_register(v->b, p, len);
	if (!rc) {
		cv_vgpu_layout_lock(v);
		if (cv_rangeset_add(&v->heap, addr, len, NULL))
			rc = CUDA_ERROR_OUT_OF_MEMORY;
		pthread_rwlock_unlock(&v->mem_lock);
		if (rc)
			v->ops->host_unregister(v->b, p);
	}
	if (rc) {
		unmap_to_reserve(p, len);
		return rc;
	}
	v->heap_mapped += len;
	return CUDA_SUCCESS;
}

int cv_vgpu_heap_unmap(struct cv_vgpu *v, uint64_t off, uint64_t len)
{
	uint64_t addr = CV_REGION_ADDR + CV_HEAP_OFF + off;

	int rc;

	if (!cv_range_ok(off, len, CV_HEAP_MAX))
		return CUDA_ERROR_INVALID_VALUE;
	cv_vgpu_layout_lock(v);
	rc = cv_rangeset_del(&v->heap, addr, len, NULL);
	pthread_rwlock_unlock(&v->mem_lock);
	if (rc)
		return CUDA_ERROR_INVALID_VALUE;
	/* DMA in flight may still use the pages. */
	v->ops->ctx_sync(v->b);
	v->ops->host_unregister(v->b, (void *)addr);
	unmap_to_reserve((void *)addr, len);
	/* Give the pages back to the system. */
	fallocate(v->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		  (off_t)(CV_HEAP_OFF + off), (off_t)len);
	v->heap_mapped -= len;
	return CUDA_SUCCESS;
}

int cv_vgpu_vmm_add(struct cv_vgpu *v, uint32_t id, uint64_t size,
		    bool released, cv_bobj mem, char *err, size_t errlen)
{
	struct cv_wvmm *h = calloc(1, sizeof(*h));

	if (!h || cv_htab_put(&v->vmms, id, h)) {
		free(h);
		return -ENOMEM;
	}
	h->size = size;
	h->released = released;
	h->mem = mem;
	if (!mem && v->ops->mem_create(v->b, size, &h->mem)) {
		free(cv_htab_del(&v->vmms, id));
		if (err && errlen)
			snprintf(err, errlen, "out of GPU memory: cannot "
				 "allocate %llu bytes", (unsigned long long)size);
		return -ENOMEM;
	}
	v->used += size;
	return 0;
}

void cv_vgpu_vmm_drop(struct cv_vgpu *v, uint32_t id)
{
	struct cv_wvmm *h = cv_htab_del(&v->vmms, id);

	v->ops->mem_release(v->b, h->mem);
	v->used -= h->size;
	free(h);
}

int cv_vgpu_map_add(struct cv_vgpu *v, uint64_t va, uint64_t size,
		    uint32_t vmm, uint64_t offset, cv_bobj mem, char *err,
		    size_t errlen)
{
	struct cv_wvmm *h = vmm ? cv_htab_get(&v->vmms, vmm) : NULL;
	struct cv_wmap *m = calloc(1, sizeof(*m));
	int rc;

	if (!m)
		return -ENOMEM;
	*m = (struct cv_wmap){ .vmm = vmm, .size = size, .offset = offset };
	if (h) {
		m->mem = h->mem;
	} else if (mem) {
		m->mem = mem;
	} else if (v->ops->mem_create(v->b, size, &m->mem)) {
		free(m);
		if (err && errlen)
			snprintf(err, errlen, "out of GPU memory: cannot "
				 "allocate %llu bytes", (unsigned long long)size);
		return -ENOMEM;
	}
	rc = v->ops->mem_map(v->b, va, size, m->mem, offset);
	if (rc || cv_rangeset_add(&v->dev, va, size, m)) {
		if (!rc)
			v->ops->mem_unmap(v->b, va, size);
		if (!h && !mem)
			v->ops->mem_release(v->b, m->mem);
		free(m);
		if (err && errlen)
			snprintf(err, errlen, "cannot map device memory at "
				 "0x%llx", (unsigned long long)va);
		return -EIO;
	}
	if (h)
		h->maps++;
	else
		v->used += size;
	return 0;
}

/* ---- host functions ---------------------------------------------------------- */

struct cv_hostcall {
	struct cv_vgpu *v;
	struct cv_host_func a;
};

/* Waits until the guest's done counter passes idx, or the guest is gone. */
static void cb_wait_done(struct cv_vgpu *v, uint32_t idx)
{
	struct cv_cb_queue *q = v->cbq;
	uint32_t bell, done;

	for (;;) {
		bell = __atomic_load_n(&q->done_bell, __ATOMIC_ACQUIRE);
		done = __atomic_load_n(&q->done, __ATOMIC_ACQUIRE);
		if ((int32_t)(done - idx) > 0 || v->guest_gone)
			return;
		cv_futex_wait(&q->done_bell, bell, CB_WAIT_SLICE_NS);
	}
}

/* Runs on a driver callback thread (cuda) or the consumer (host). */
static void hostcall_tramp(void *arg)
{
	struct cv_hostcall *hc = arg;
	struct cv_vgpu *v = hc->v;
	struct cv_cb_queue *q = v->cbq;
	struct cv_cb_entry *e;
	uint32_t idx;

	pthread_mutex_lock(&v->cb_lock);
	idx = v->cb_produced;
	/* Never more than CV_CB_SLOTS outstanding: wait for the guest. */
	if (idx >= CV_CB_SLOTS)
		cb_wait_done(v, idx - CV_CB_SLOTS);
	e = &q->e[idx % CV_CB_SLOTS];
	e->fn = hc->a.fn;
	e->userdata = hc->a.userdata;
	e->status = CUDA_SUCCESS;
	e->kind = hc->a.kind;
	e->stream = hc->a.guest_stream;
	v->cb_produced = idx + 1;
	/* Release: the entry is complete before produced says so. */
	__atomic_store_n(&q->produced, idx + 1, __ATOMIC_RELEASE);
	__atomic_fetch_add(&q->produced_bell, 1, __ATOMIC_RELEASE);
	cv_futex_wake(&q->produced_bell, INT32_MAX);
	pthread_mutex_unlock(&v->cb_lock);

	/* The stream must not go on before the guest function returned. */
	__atomic_fetch_add(&v->cb_pending, 1, __ATOMIC_SEQ_CST);
	cb_wait_done(v, idx);
	__atomic_fetch_sub(&v->cb_pending, 1, __ATOMIC_SEQ_CST);
	free(hc);
}

int cv_vgpu_host_func(struct cv_vgpu *v, cv_bobj s,
		      const struct cv_host_func *a)
{
	struct cv_hostcall *hc = malloc(sizeof(*hc));
	int rc;

	if (!hc)
		return CUDA_ERROR_OUT_OF_MEMORY;
	hc->v = v;
	hc->a = *a;
	rc = v->ops->host_func(v->b, s, hostcall_tramp, hc);
	if (rc)
		free(hc);
	return rc;
}

/* ---- set-up and the consumer loop ---------------------------------------- */

/*
 * Creates the region memfd, sealed against shrinking so that a guest can
 * never make our mappings fault, and maps its fixed part at
 * CV_REGION_ADDR inside a reservation of the whole span. Must run before
 * the driver is loaded, so the driver leaves these addresses alone.
 */
int cv_region_create(int *fdp, uint8_t **regionp)
{
	void *res, *p;
	int fd;

	fd = memfd_create("cuvisor-region", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)CV_HEAP_OFF) ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL))
		goto err;
	res = mmap((void *)CV_REGION_ADDR, CV_REGION_SPAN, PROT_NONE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
			   MAP_FIXED_NOREPLACE, -1, 0);
	if (res == MAP_FAILED)
		goto err;
	if (res != (void *)CV_REGION_ADDR) {
		munmap(res, CV_REGION_SPAN);
		errno = EEXIST;
		goto err;
	}
	p = mmap(res, CV_HEAP_OFF, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED, fd, 0);
	if (p == MAP_FAILED)
		goto err;
	*fdp = fd;
	*regionp = p;
	return 0;
err:
	{
		int e = -errno;

		close(fd);
		return e;
	}
}


static uint64_t default_heap_limit(void)
{
	long pages = sysconf(_SC_PHYS_PAGES);
	uint64_t half = pages > 0 ? (uint64_t)pages * CV_PAGE / 2 : (8ull << 30);

	return CV_MIN(half, CV_HEAP_MAX);
}

int cv_vgpu_init(struct cv_vgpu *v, const struct cv_backend_ops *ops,
		 struct cv_backend *b, uint8_t *region, int memfd,
		 uint64_t quota, uint64_t tenant, const struct cv_devinfo *dev,
		 bool adopt)
{
	int rc;

	memset(v, 0, sizeof(*v));
	v->ops = ops;
	v->b = b;
	v->region = region;
	v->memfd = memfd;
	v->hdr = (struct cv_region_hdr *)region;
	v->ctl = (struct cv_ring_ctl *)(region + CV_RING_CTL_OFF);
	v->cbq = (struct cv_cb_queue *)(region + CV_CB_OFF);
	v->chunk_state = (uint32_t *)(region + CV_CHUNK_STATE_OFF);
	v->replies = (struct cv_reply *)(region + CV_REPLY_OFF);
	v->quota = quota;
	v->heap_limit = default_heap_limit();
	cv_htab_init(&v->streams);
	cv_htab_init(&v->events);
	cv_htab_init(&v->modules);
	cv_htab_init(&v->funcs);
	cv_htab_init(&v->vmms);
	cv_rangeset_init(&v->dev);
	cv_rangeset_init(&v->heap);
	pthread_mutex_init(&v->compl_lock, NULL);
	pthread_cond_init(&v->compl_cond, NULL);
	pthread_cond_init(&v->compl_space, NULL);
	pthread_mutex_init(&v->cb_lock, NULL);
	pthread_mutex_init(&v->rev_lock, NULL);
	pthread_cond_init(&v->rev_cond, NULL);
	{
		/* A migration's readers must not starve the consumer. */
		pthread_rwlockattr_t ra;

		pthread_rwlockattr_init(&ra);
		pthread_rwlockattr_setkind_np(
			&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		pthread_rwlock_init(&v->mem_lock, &ra);
		pthread_rwlockattr_destroy(&ra);
	}

	rc = cv_ring_init(&v->ring, v->ctl, region + CV_RING_OFF, CV_RING_SIZE);
	if (rc)
		return rc;
	rc = ops->va_reserve(b, CV_WINDOW_ADDR, CV_WINDOW_SIZE);
	if (rc) {
		cv_err("tenant %llu: cannot reserve the device window at 0x%llx: CUresult %d",
		       (unsigned long long)tenant,
		       (unsigned long long)CV_WINDOW_ADDR, rc);
		return -ENOMEM;
	}
	rc = ops->host_register(b, region + CV_STAGING_OFF,
				CV_STAGING_CHUNKS * CV_STAGING_CHUNK);
	if (rc) {
		cv_err("tenant %llu: cannot register the staging area: CUresult %d",
		       (unsigned long long)tenant, rc);
		return -ENOMEM;
	}
	if (pthread_create(&v->compl_thread, NULL, compl_main, v))
		return -EAGAIN;
	v->compl_started = true;
	v->tenant = tenant;
	v->devinfo = *dev;
	v->devinfo.total_mem = quota;
	/* A restore writes the guest's region only once it succeeded. */
	if (!adopt)
		cv_vgpu_publish(v);
	return 0;
}

void cv_vgpu_publish(struct cv_vgpu *v)
{
	v->hdr->magic = CV_PROTO_MAGIC;
	v->hdr->version = CV_PROTO_VERSION;
	v->hdr->tenant_id = v->tenant;
	v->hdr->region_addr = CV_REGION_ADDR;
	v->hdr->window_addr = CV_WINDOW_ADDR;
	v->hdr->window_size = CV_WINDOW_SIZE;
	v->hdr->quota = v->quota;
	v->hdr->worker_pid = (uint32_t)getpid();
	v->hdr->dev = v->devinfo;
	__atomic_store_n(&v->ctl->state, CV_STATE_RUNNING, __ATOMIC_RELEASE);
}

static void free_values(struct cv_htab *t, void (*fn)(void *))
{
	uint32_t i;

	for (i = 1; i < t->cap; i++)
		if (t->v[i])
			fn(cv_htab_del(t, i));
}

void cv_vgpu_module_free(struct cv_wmodule *m)
{
	uint32_t i;

	for (i = 0; i < m->ngl; i++)
		free(m->gl[i].name);
	free(m->gl);
	cv_rangeset_exit(&m->globals);
	free(m);
}

void cv_vgpu_func_free(struct cv_wfunc *f)
{
	free(f->name);
	free(f->fp.p);
	free(f);
}

int cv_vgpu_global_note(struct cv_wmodule *m, const char *name, uint64_t dptr,
			uint64_t real, uint64_t size)
{
	struct cv_wglobal *gl;
	char *n = strdup(name);

	gl = n ? realloc(m->gl, (m->ngl + 1) * sizeof(*gl)) : NULL;
	if (!gl) {
		free(n);
		return -ENOMEM;
	}
	m->gl = gl;
	gl[m->ngl++] = (struct cv_wglobal){ n, dptr, real, size };
	return 0;
}

static void free_module(void *p)
{
	cv_vgpu_module_free(p);
}

static void free_func(void *p)
{
	cv_vgpu_func_free(p);
}

/*
 * Forgets every object of the decoder. Backend objects are not released
 * one by one: the backend's close (or the process's exit) does that.
 */
void cv_vgpu_exit(struct cv_vgpu *v)
{
	uint32_t i;

	if (v->compl_started) {
		pthread_mutex_lock(&v->compl_lock);
		v->compl_stop = true;
		pthread_cond_signal(&v->compl_cond);
		pthread_mutex_unlock(&v->compl_lock);
		pthread_join(v->compl_thread, NULL);
		v->compl_started = false;
	}
	free(v->blob);
	v->blob = NULL;
	while (v->images) {
		struct cv_wimage *img = v->images;

		v->images = img->next;
		free(img->data);
		free(img);
	}
	free_values(&v->modules, free_module);
	free_values(&v->funcs, free_func);
	free_values(&v->vmms, free);
	free_values(&v->streams, free);
	free_values(&v->events, free);
	for (i = 0; i < v->dev.n; i++)
		free(v->dev.r[i].owner);
	cv_htab_exit(&v->streams);
	cv_htab_exit(&v->events);
	cv_htab_exit(&v->modules);
	cv_htab_exit(&v->funcs);
	cv_htab_exit(&v->vmms);
	cv_rangeset_exit(&v->dev);
	cv_rangeset_exit(&v->heap);
	free(v->reloc);
	v->reloc = NULL;
	v->nreloc = 0;
}

/*
 * Idle means: the consumer waits for commands, no staging signal is in
 * flight and no host function runs. head is read before and after idle;
 * if it moved, a batch ran in between and the answer is "busy".
 */
void cv_vgpu_link_status(struct cv_vgpu *v, struct cv_link_status *st)
{
	uint64_t h1, h2;
	int idle;

	h1 = __atomic_load_n(&v->done_head, __ATOMIC_SEQ_CST);
	idle = __atomic_load_n(&v->cons_idle, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&v->compl_lock);
	idle = idle && v->compl_head == v->compl_tail;
	pthread_mutex_unlock(&v->compl_lock);
	idle = idle && !__atomic_load_n(&v->cb_pending, __ATOMIC_SEQ_CST);
	h2 = __atomic_load_n(&v->done_head, __ATOMIC_SEQ_CST);
	st->head = h2;
	st->idle = idle && h1 == h2;
	st->pad = 0;
}

static uint64_t spin_ns(void)
{
	const char *s = getenv("CUVISOR_SPIN_US");
	long us = s ? strtol(s, NULL, 10) : 500;

	return us > 0 && us < 1000000 ? (uint64_t)us * 1000 : 500000;
}

int cv_vgpu_run(struct cv_vgpu *v)
{
	static uint8_t payload[CV_CMD_MAX_PAYLOAD];
	uint64_t spin = spin_ns();
	struct cv_cmd_hdr hdr;
	int n;

	while (!v->guest_gone) {
		if (__atomic_load_n(&v->rev_stop, __ATOMIC_ACQUIRE))
			cv_vgpu_park(v);
		__atomic_store_n(&v->cons_idle, 1, __ATOMIC_SEQ_CST);
		/* A batching backend: a little more may come before it must
		 * send (a launch loop refills the ring in microseconds). */
		if (v->ops->flush && v->ops->flush(v->b, false) &&
		    !cv_ring_wait(&v->ring, FLUSH_SPIN_NS, 1)) {
			v->ops->flush(v->b, true);
			continue;
		}
		if (!cv_ring_wait(&v->ring, spin, 100000000ull))
			continue;
		/* Busy before the first pop: see cv_vgpu_link_status. */
		__atomic_store_n(&v->cons_idle, 0, __ATOMIC_SEQ_CST);
		while ((n = cv_ring_pop(&v->ring, &hdr, payload,
					sizeof(payload))) > 0) {
			if (cv_vgpu_exec(v, &hdr, payload) < 0) {
				n = -EPROTO;
				break;
			}
			__atomic_store_n(&v->done_head, v->ring.head,
					 __ATOMIC_SEQ_CST);
			/* Stop between two commands when asked. */
			if (__atomic_load_n(&v->rev_stop, __ATOMIC_ACQUIRE))
				break;
		}
		if (n < 0) {
			cv_err("tenant %llu: the guest broke its command ring (head %llu); giving up",
			       (unsigned long long)v->hdr->tenant_id,
			       (unsigned long long)v->ring.head);
			__atomic_store_n(&v->ctl->lost, 1, __ATOMIC_RELEASE);
			__atomic_store_n(&v->ctl->state, CV_STATE_LOST,
					 __ATOMIC_RELEASE);
			return -EPROTO;
		}
	}
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * The command decoder: one handler per opcode, dispatched from a table
 * that fixes each opcode's payload length and whether it takes a reply.
 * Handlers receive a private copy of the payload and return a CUresult.
 */
#include <cuda.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../core/futex.h"
#include "../core/hash.h"
#include "../core/log.h"
#include "../core/util.h"
#include "vgpu.h"
#include "vgpu_int.h"

struct cv_out {
	uint8_t *data;   /* CV_REPLY_DATA bytes */
	uint32_t len;
	bool sync;       /* the guest waits: complete stream work first */
};

typedef int (*cv_handler)(struct cv_vgpu *v, const void *p, uint32_t len,
			  struct cv_out *out);

enum { R_ASYNC = 1, R_REPLY = 2, R_EITHER = 3 };

struct cv_op_desc {
	uint32_t len;     /* exact payload length, or minimum when var */
	uint8_t var;      /* a variable-length tail is allowed */
	uint8_t reply;    /* R_* */
	cv_handler fn;
};

/* ---- validation helpers ------------------------------------------------ */

/* A device range the tenant may touch: its mappings or a module global. */
static bool dev_ok(struct cv_vgpu *v, uint64_t a, uint64_t len)
{
	struct cv_wmodule *m;
	uint32_t i;

	if (cv_rangeset_covers(&v->dev, a, len))
		return true;
	for (i = 1; i < v->modules.cap; i++) {
		m = v->modules.v[i];
		if (m && cv_rangeset_covers(&m->globals, a, len))
			return true;
	}
	return false;
}

/* A host range in the region the worker may DMA to or from. */
static bool host_ok(struct cv_vgpu *v, uint64_t a, uint64_t len)
{
	uint64_t stg = CV_REGION_ADDR + CV_STAGING_OFF;

	if (cv_range_in(a, len, stg, CV_STAGING_CHUNKS * CV_STAGING_CHUNK))
		return true;
	return cv_rangeset_covers(&v->heap, a, len);
}

/* Checks one side of a copy; a device address inside a global that a
 * restore moved is rebased first (cv_vgpu_xlate). */
static bool side_ok(struct cv_vgpu *v, bool dev, uint64_t *a, uint64_t len)
{
	if (!dev)
		return host_ok(v, *a, len);
	cv_vgpu_xlate(v, a, len);
	return dev_ok(v, *a, len);
}

/* True when id may name a new object of table t. */
static bool id_free(const struct cv_htab *t, uint32_t id)
{
	return id && id < CV_HTAB_MAX && !cv_htab_get(t, id);
}

/* Looks up a stream id; 0 is the legacy stream (NULL object). */
static bool stream_get(struct cv_vgpu *v, uint32_t id, cv_bobj *out)
{
	if (!id) {
		*out = NULL;
		return true;
	}
	return (*out = cv_vgpu_obj(&v->streams, id)) != NULL;
}

/* A new stream or event: its backend object and what made it. */
static int obj_put(struct cv_htab *t, uint32_t id, cv_bobj o, uint32_t flags,
		   int32_t prio)
{
	struct cv_wobj *w = malloc(sizeof(*w));

	if (!w)
		return -ENOMEM;
	*w = (struct cv_wobj){ o, flags, prio };
	if (cv_htab_put(t, id, w)) {
		free(w);
		return -ENOMEM;
	}
	return 0;
}

/* Unbinds id; its backend object, or NULL. */
static cv_bobj obj_del(struct cv_htab *t, uint32_t id)
{
	struct cv_wobj *w = cv_htab_del(t, id);
	cv_bobj o = w ? w->obj : NULL;

	free(w);
	return o;
}

/* ---- memory ------------------------------------------------------------ */

static int h_nop(struct cv_vgpu *v, const void *p, uint32_t len,
		 struct cv_out *out)
{
	return CUDA_SUCCESS;
}

static int h_mem_get_info(struct cv_vgpu *v, const void *p, uint32_t len,
			  struct cv_out *out)
{
	struct cv_mem_info_r r = { .total = v->quota, .used = v->used };
	uint64_t gfree = 0, gtotal = 0;
	int rc;

	rc = v->ops->mem_info(v->b, &gfree, &gtotal);
	if (rc)
		return rc;
	r.free = CV_MIN(v->quota - v->used, gfree);
	memcpy(out->data, &r, sizeof(r));
	out->len = sizeof(r);
	return CUDA_SUCCESS;
}

static bool window_range_ok(uint64_t va, uint64_t size)
{
	return size && !(va % CV_GRANULE) && !(size % CV_GRANULE) &&
	       cv_range_in(va, size, CV_WINDOW_ADDR, CV_WINDOW_SIZE);
}

static int h_mem_map(struct cv_vgpu *v, const void *p, uint32_t len,
		     struct cv_out *out)
{
	struct cv_mem_range a;
	struct cv_wmap *m;
	int rc;

	memcpy(&a, p, sizeof(a));
	if (!window_range_ok(a.va, a.size) ||
	    cv_rangeset_overlaps(&v->dev, a.va, a.size))
		return CUDA_ERROR_INVALID_VALUE;
	if (a.size > v->quota - v->used)
		return CUDA_ERROR_OUT_OF_MEMORY;
	m = calloc(1, sizeof(*m));
	if (!m)
		return CUDA_ERROR_OUT_OF_MEMORY;
	m->size = a.size;
	rc = v->ops->mem_create(v->b, a.size, &m->mem);
	if (rc)
		goto err_free;
	rc = v->ops->mem_map(v->b, a.va, a.size, m->mem, 0);
	if (rc)
		goto err_release;
	cv_vgpu_layout_lock(v);
	rc = cv_rangeset_add(&v->dev, a.va, a.size, m);
	pthread_rwlock_unlock(&v->mem_lock);
	if (rc) {
		rc = CUDA_ERROR_OUT_OF_MEMORY;
		goto err_unmap;
	}
	v->used += a.size;
	return CUDA_SUCCESS;

err_unmap:
	v->ops->mem_unmap(v->b, a.va, a.size);
err_release:
	v->ops->mem_release(v->b, m->mem);
err_free:
	free(m);
	return rc;
}

static int unmap_range(struct cv_vgpu *v, uint64_t va, uint64_t size,
		       bool vmm)
{
	const struct cv_range *r = cv_rangeset_find(&v->dev, va);
	struct cv_wmap *m;
	struct cv_wvmm *h;
	int rc;

	if (!r || r->base != va || r->size != size)
		return CUDA_ERROR_INVALID_VALUE;
	m = r->owner;
	if ((m->vmm != 0) != vmm)
		return CUDA_ERROR_INVALID_VALUE;
	/* Work still running may use the memory: drain first, as cuMemFree
	 * and cuMemUnmap do. */
	v->ops->ctx_sync(v->b);
	cv_vgpu_layout_lock(v);
	rc = v->ops->mem_unmap(v->b, va, size);
	if (rc) {
		pthread_rwlock_unlock(&v->mem_lock);
		return rc;
	}
	cv_rangeset_del(&v->dev, va, size, NULL);
	if (vmm) {
		h = cv_htab_get(&v->vmms, m->vmm);
		if (h && !--h->maps && h->released)
			cv_vgpu_vmm_drop(v, m->vmm);
	} else {
		v->ops->mem_release(v->b, m->mem);
		v->used -= m->size;
	}
	pthread_rwlock_unlock(&v->mem_lock);
	free(m);
	return CUDA_SUCCESS;
}

static int h_mem_unmap(struct cv_vgpu *v, const void *p, uint32_t len,
		       struct cv_out *out)
{
	struct cv_mem_range a;

	memcpy(&a, p, sizeof(a));
	return unmap_range(v, a.va, a.size, false);
}

/* ---- copies and memsets ------------------------------------------------ */

static bool kind_sides(uint32_t kind, bool *dst_dev, bool *src_dev)
{
	switch (kind) {
	case CV_COPY_HTOD: *dst_dev = true; *src_dev = false; return true;
	case CV_COPY_DTOH: *dst_dev = false; *src_dev = true; return true;
	case CV_COPY_DTOD: *dst_dev = true; *src_dev = true; return true;
	}
	return false;
}

static bool signal_ok(uint32_t signal)
{
	return signal <= CV_STAGING_CHUNKS;
}

/*
 * Common tail of stream-ordered commands: with a staging signal, queue it
 * for the completion thread; if the command failed, fail the chunk now.
 */
static int finish_signal(struct cv_vgpu *v, uint32_t signal, cv_bobj s,
			 int rc)
{
	if (!signal)
		return rc;
	if (rc) {
		cv_vgpu_chunk_set(v, signal - 1, CV_CHUNK_FAILED);
		return rc;
	}
	return cv_vgpu_signal_after(v, s, signal - 1);
}

static int h_memcpy(struct cv_vgpu *v, const void *p, uint32_t len,
		    struct cv_out *out)
{
	struct cv_memcpy c;
	bool dd, sd;
	cv_bobj s = NULL;
	int rc;

	memcpy(&c, p, sizeof(c));
	if (!signal_ok(c.signal))
		return CUDA_ERROR_INVALID_VALUE;
	if (!kind_sides(c.kind, &dd, &sd) || !stream_get(v, c.stream, &s))
		rc = CUDA_ERROR_INVALID_VALUE;
	else if (!side_ok(v, dd, &c.dst, c.len) ||
		 !side_ok(v, sd, &c.src, c.len))
		rc = CUDA_ERROR_INVALID_VALUE;
	else if (!c.len)
		rc = CUDA_SUCCESS;
	else
		rc = v->ops->memcpy(v->b, c.kind, c.dst, c.src, c.len, s);
	if (!rc && out->sync)
		rc = v->ops->stream_sync(v->b, s);
	return finish_signal(v, c.signal, s, rc);
}

/* Every byte a 2D copy touches on one side: rows of width at pitch. */
static bool side2d_ok(struct cv_vgpu *v, bool dev, uint64_t *a,
		      uint64_t pitch, uint64_t width, uint64_t height)
{
	uint64_t span;

	if (!height || !width)
		return true;
	if (height > 1 && pitch < width)
		return false;
	if (__builtin_mul_overflow(pitch, height - 1, &span) ||
	    __builtin_add_overflow(span, width, &span))
		return false;
	return side_ok(v, dev, a, span);
}

static int h_memcpy2d(struct cv_vgpu *v, const void *p, uint32_t len,
		      struct cv_out *out)
{
	struct cv_memcpy2d c;
	struct cv_copy2d k;
	bool dd, sd;
	cv_bobj s = NULL;
	int rc;

	memcpy(&c, p, sizeof(c));
	if (!signal_ok(c.signal))
		return CUDA_ERROR_INVALID_VALUE;
	if (!kind_sides(c.kind, &dd, &sd) || !stream_get(v, c.stream, &s) ||
	    !side2d_ok(v, dd, &c.dst, c.dst_pitch, c.width, c.height) ||
	    !side2d_ok(v, sd, &c.src, c.src_pitch, c.width, c.height)) {
		rc = CUDA_ERROR_INVALID_VALUE;
	} else if (!c.width || !c.height) {
		rc = CUDA_SUCCESS;
	} else {
		k = (struct cv_copy2d){ c.dst, c.dst_pitch, c.src, c.src_pitch,
					c.width, c.height, c.kind };
		rc = v->ops->memcpy2d(v->b, &k, s);
	}
	if (!rc && out->sync)
		rc = v->ops->stream_sync(v->b, s);
	return finish_signal(v, c.signal, s, rc);
}

static int h_memset(struct cv_vgpu *v, const void *p, uint32_t len,
		    struct cv_out *out)
{
	struct cv_memset m;
	uint64_t wbytes;
	cv_bobj s;
	int rc;

	memcpy(&m, p, sizeof(m));
	if ((m.elem != 1 && m.elem != 2 && m.elem != 4) ||
	    !stream_get(v, m.stream, &s) || (m.dst % m.elem) ||
	    (m.height > 1 && (m.pitch % m.elem)))
		return CUDA_ERROR_INVALID_VALUE;
	if (__builtin_mul_overflow(m.width, (uint64_t)m.elem, &wbytes) ||
	    !side2d_ok(v, true, &m.dst, m.pitch, wbytes, m.height))
		return CUDA_ERROR_INVALID_VALUE;
	if (!m.width || !m.height)
		return CUDA_SUCCESS;
	rc = v->ops->memset(v->b, m.dst, m.pitch, m.value, m.elem, m.width,
			    m.height, s);
	if (!rc && out->sync)
		rc = v->ops->stream_sync(v->b, s);
	return rc;
}

/* ---- pinned heap --------------------------------------------------------- */

static int h_heap_map(struct cv_vgpu *v, const void *p, uint32_t len,
		      struct cv_out *out)
{
	struct cv_heap_range h;

	memcpy(&h, p, sizeof(h));
	return cv_vgpu_heap_map(v, h.off, h.len);
}

static int h_heap_unmap(struct cv_vgpu *v, const void *p, uint32_t len,
			struct cv_out *out)
{
	struct cv_heap_range h;

	memcpy(&h, p, sizeof(h));
	return cv_vgpu_heap_unmap(v, h.off, h.len);
}

/* ---- modules ------------------------------------------------------------- */

static int h_blob_put(struct cv_vgpu *v, const void *p, uint32_t len,
		      struct cv_out *out)
{
	struct cv_blob_put b;
	int rc = CUDA_SUCCESS;

	memcpy(&b, p, sizeof(b));
	if (b.chunk >= CV_STAGING_CHUNKS)
		return CUDA_ERROR_INVALID_VALUE;
	if (b.off == 0) {
		free(v->blob);
		v->blob = NULL;
		v->blob_len = v->blob_total = 0;
		if (!b.total || b.total > CV_BLOB_MAX) {
			rc = CUDA_ERROR_INVALID_VALUE;
			goto out;
		}
		v->blob = malloc(b.total);
		if (!v->blob) {
			rc = CUDA_ERROR_OUT_OF_MEMORY;
			goto out;
		}
		v->blob_total = b.total;
	}
	if (!v->blob || b.off != v->blob_len || b.total != v->blob_total ||
	    b.len > CV_STAGING_CHUNK ||
	    !cv_range_ok(b.off, b.len, v->blob_total)) {
		rc = CUDA_ERROR_INVALID_VALUE;
		goto out;
	}
	memcpy(v->blob + b.off,
	       v->region + CV_STAGING_OFF + b.chunk * CV_STAGING_CHUNK, b.len);
	v->blob_len += b.len;
out:
	cv_vgpu_chunk_set(v, b.chunk, rc ? CV_CHUNK_FAILED : CV_CHUNK_DONE);
	return rc;
}

static void module_free(struct cv_vgpu *v, struct cv_wmodule *m)
{
	if (m)
		cv_vgpu_module_free(m);
}

static struct cv_wimage *image_find(struct cv_vgpu *v, const uint8_t *hash)
{
	struct cv_wimage *i;

	for (i = v->images; i; i = i->next)
		if (!memcmp(i->hash, hash, sizeof(i->hash)))
			return i;
	return NULL;
}

/* Drops a reference to an image; frees it with the last. */
static void image_put(struct cv_vgpu *v, struct cv_wimage *img)
{
	struct cv_wimage **pp;

	if (--img->refs)
		return;
	for (pp = &v->images; *pp != img; pp = &(*pp)->next)
		;
	*pp = img->next;
	free(img->data);
	free(img);
}

/* Loads img as module id (taking a reference to img); CUresult. */
int cv_vgpu_module_bind(struct cv_vgpu *v, uint32_t id, struct cv_wimage *img)
{
	struct cv_wmodule *m = calloc(1, sizeof(*m));
	int rc;

	if (!m)
		return CUDA_ERROR_OUT_OF_MEMORY;
	cv_rangeset_init(&m->globals);
	m->img = img;
	m->seq = ++v->module_seq;
	rc = v->ops->module_load(v->b, img->data, img->len, &m->obj);
	if (!rc && cv_htab_put(&v->modules, id, m)) {
		v->ops->module_unload(v->b, m->obj);
		rc = CUDA_ERROR_OUT_OF_MEMORY;
	}
	if (rc) {
		module_free(v, m);
		return rc;
	}
	img->refs++;
	return CUDA_SUCCESS;
}


static int h_module_load(struct cv_vgpu *v, const void *p, uint32_t len,
			 struct cv_out *out)
{
	struct cv_module_load a;
	struct cv_wimage *img;
	uint8_t hash[16];
	int rc;

	memcpy(&a, p, sizeof(a));
	if (!id_free(&v->modules, a.id))
		return CUDA_ERROR_INVALID_VALUE;
	if (!v->blob || v->blob_len != v->blob_total || a.size != v->blob_len)
		return CUDA_ERROR_INVALID_VALUE;
	cv_hash128(v->blob, v->blob_len, hash);
	img = image_find(v, hash);
	if (!img) {
		img = calloc(1, sizeof(*img));
		if (!img)
			return CUDA_ERROR_OUT_OF_MEMORY;
		memcpy(img->hash, hash, sizeof(hash));
		img->data = v->blob;
		img->len = v->blob_len;
		img->next = v->images;
		v->images = img;
		v->blob = NULL;
		img->refs = 1; /* held until bound */
		rc = cv_vgpu_module_bind(v, a.id, img);
		image_put(v, img);
	} else {
		rc = cv_vgpu_module_bind(v, a.id, img);
	}
	free(v->blob);
	v->blob = NULL;
	v->blob_len = v->blob_total = 0;
	return rc;
}

static int h_module_load_cached(struct cv_vgpu *v, const void *p, uint32_t len,
				struct cv_out *out)
{
	struct cv_module_cached a;
	struct cv_wimage *img;

	memcpy(&a, p, sizeof(a));
	if (!id_free(&v->modules, a.id))
		return CUDA_ERROR_INVALID_VALUE;
	img = image_find(v, a.hash);
	if (!img)
		return CUDA_ERROR_NOT_FOUND;
	return cv_vgpu_module_bind(v, a.id, img);
}

static void func_free(struct cv_wfunc *f)
{
	if (f)
		cv_vgpu_func_free(f);
}

static int h_module_unload(struct cv_vgpu *v, const void *p, uint32_t len,
			   struct cv_out *out)
{
	struct cv_wmodule *m;
	struct cv_wfunc *f;
	struct cv_id a;
	uint32_t i;

	memcpy(&a, p, sizeof(a));
	m = cv_htab_get(&v->modules, a.id);
	if (!m)
		return CUDA_ERROR_INVALID_HANDLE;
	/* Functions of the module die with it. */
	for (i = 1; i < v->funcs.cap; i++) {
		f = v->funcs.v[i];
		if (f && f->module == a.id)
			func_free(cv_htab_del(&v->funcs, i));
	}
	cv_htab_del(&v->modules, a.id);
	/* Work still queued may use its functions. */
	v->ops->ctx_sync(v->b);
	v->ops->module_unload(v->b, m->obj);
	image_put(v, m->img);
	module_free(v, m);
	return CUDA_SUCCESS;
}

/* Copies a name of n bytes that follows a fixed part into a C string. */
static int take_name(const void *p, uint32_t len, uint32_t fixed,
		     uint32_t n, char *name)
{
	if (n == 0 || n > CV_NAME_MAX || len != fixed + n)
		return -EINVAL;
	memcpy(name, (const uint8_t *)p + fixed, n);
	name[n] = 0;
	if (strlen(name) != n)
		return -EINVAL;
	return 0;
}

/* Checks a parameter layout from the backend before trusting it. */
static bool params_sane(const struct cv_fparams *fp)
{
	uint32_t i;

	if (fp->size > CV_LAUNCH_MAX_PARAMS || fp->n > CV_LAUNCH_MAX_PARAMS)
		return false;
	for (i = 0; i < fp->n; i++)
		if (!cv_range_ok(fp->p[i].offset, fp->p[i].size, fp->size))
			return false;
	return true;
}

static void list_params(const struct cv_fparams *fp, uint32_t first,
			struct cv_out *out)
{
	struct cv_function_r r = { .nparams = fp->n, .param_size = fp->size };
	uint32_t n = 0;

	if (first < fp->n)
		n = CV_MIN(fp->n - first, (uint32_t)CV_FUNC_PARAMS_PER_REPLY);
	r.count = n;
	memcpy(out->data, &r, sizeof(r));
	if (n)
		memcpy(out->data + sizeof(r), &fp->p[first],
		       n * sizeof(struct cv_param));
	out->len = (uint32_t)(sizeof(r) + n * sizeof(struct cv_param));
}

static int h_get_function(struct cv_vgpu *v, const void *p, uint32_t len,
			  struct cv_out *out)
{
	char name[CV_NAME_MAX + 1];
	struct cv_get_function a;
	struct cv_wmodule *m;
	struct cv_wfunc *f;
	int rc;

	memcpy(&a, p, sizeof(a));
	if (!a.func_id) {
		/* continue listing the parameters of a bound function */
		f = cv_htab_get(&v->funcs, a.func);
		if (!f || len != sizeof(a))
			return CUDA_ERROR_INVALID_HANDLE;
		list_params(&f->fp, a.first, out);
		return CUDA_SUCCESS;
	}
	if (take_name(p, len, sizeof(a), a.name_len, name))
		return CUDA_ERROR_INVALID_VALUE;
	m = cv_htab_get(&v->modules, a.module);
	if (!m)
		return CUDA_ERROR_INVALID_HANDLE;
	if (!id_free(&v->funcs, a.func_id))
		return CUDA_ERROR_INVALID_VALUE;
	f = calloc(1, sizeof(*f));
	if (!f)
		return CUDA_ERROR_OUT_OF_MEMORY;
	f->module = a.module;
	f->cache = -1;
	f->name = strdup(name);
	rc = f->name ? v->ops->get_function(v->b, m->obj, name, &f->obj,
					    &f->fp) :
		       CUDA_ERROR_OUT_OF_MEMORY;
	if (!rc && !params_sane(&f->fp))
		rc = CUDA_ERROR_NOT_SUPPORTED;
	if (!rc && cv_htab_put(&v->funcs, a.func_id, f))
		rc = CUDA_ERROR_OUT_OF_MEMORY;
	if (rc) {
		func_free(f);
		return rc;
	}
	list_params(&f->fp, a.first, out);
	return CUDA_SUCCESS;
}

static int h_get_global(struct cv_vgpu *v, const void *p, uint32_t len,
			struct cv_out *out)
{
	char name[CV_NAME_MAX + 1];
	struct cv_get_global a;
	struct cv_global_r r;
	struct cv_wmodule *m;
	int rc, e;

	memcpy(&a, p, sizeof(a));
	if (take_name(p, len, sizeof(a), a.name_len, name))
		return CUDA_ERROR_INVALID_VALUE;
	m = cv_htab_get(&v->modules, a.module);
	if (!m)
		return CUDA_ERROR_INVALID_HANDLE;
	rc = v->ops->get_global(v->b, m->obj, name, &r.dptr, &r.size);
	if (rc)
		return rc;
	/* Remember the global so copies to it pass the range checks. */
	e = r.size ? cv_rangeset_add(&m->globals, r.dptr, r.size, NULL) : 0;
	if (!e && r.size)
		e = cv_vgpu_global_note(m, name, r.dptr, r.dptr, r.size);
	if (e && e != -EEXIST)
		return CUDA_ERROR_OUT_OF_MEMORY;
	/* After a restore the guest keeps the address it knew. */
	for (e = 0; e < (int)m->ngl; e++)
		if (m->gl[e].real == r.dptr)
			r.dptr = m->gl[e].dptr;
	memcpy(out->data, &r, sizeof(r));
	out->len = sizeof(r);
	return CUDA_SUCCESS;
}

static int h_module_func_name(struct cv_vgpu *v, const void *p, uint32_t len,
			      struct cv_out *out)
{
	struct cv_module_func_r *r = (struct cv_module_func_r *)out->data;
	char name[CV_NAME_MAX + 1];
	struct cv_module_func a;
	struct cv_wmodule *m;
	uint32_t count = 0;
	size_t n;
	int rc;

	memcpy(&a, p, sizeof(a));
	m = cv_htab_get(&v->modules, a.module);
	if (!m)
		return CUDA_ERROR_INVALID_HANDLE;
	name[0] = 0;
	rc = v->ops->module_function_name(v->b, m->obj, a.index, name,
					  sizeof(name), &count);
	if (rc)
		return rc;
	n = a.index < count ? strnlen(name, CV_NAME_MAX) : 0;
	r->count = count;
	r->len = (uint32_t)n;
	memcpy(r->name, name, n);
	out->len = (uint32_t)(sizeof(*r) + n);
	return CUDA_SUCCESS;
}

static int h_func_get_attr(struct cv_vgpu *v, const void *p, uint32_t len,
			   struct cv_out *out)
{
	struct cv_func_attr a;
	struct cv_wfunc *f;
	struct cv_i64_r r;
	int val = 0, rc;

	memcpy(&a, p, sizeof(a));
	f = cv_htab_get(&v->funcs, a.func);
	if (!f)
		return CUDA_ERROR_INVALID_HANDLE;
	rc = v->ops->func_get_attr(v->b, f->obj, a.attrib, &val);
	r.value = val;
	memcpy(out->data, &r, sizeof(r));
	out->len = sizeof(r);
	return rc;
}

static int h_func_set_attr(struct cv_vgpu *v, const void *p, uint32_t len,
			   struct cv_out *out)
{
	struct cv_func_attr a;
	struct cv_wfunc *f;
	int rc;

	memcpy(&a, p, sizeof(a));
	f = cv_htab_get(&v->funcs, a.func);
	if (!f)
		return CUDA_ERROR_INVALID_HANDLE;
	if (a.value < INT32_MIN || a.value > INT32_MAX)
		return CUDA_ERROR_INVALID_VALUE;
	rc = v->ops->func_set_attr(v->b, f->obj, a.attrib, (int)a.value);
	/* Remembered for a restore, which sets them again. */
	if (!rc && a.attrib >= 0 && (uint32_t)a.attrib < CV_FATTR_MAX) {
		f->attr_set |= 1u << a.attrib;
		f->attr_val[a.attrib] = (int32_t)a.value;
	}
	return rc;
}

static int h_func_set_cache(struct cv_vgpu *v, const void *p, uint32_t len,
			    struct cv_out *out)
{
	struct cv_func_attr a;
	struct cv_wfunc *f;
	int rc;

	memcpy(&a, p, sizeof(a));
	f = cv_htab_get(&v->funcs, a.func);
	if (!f)
		return CUDA_ERROR_INVALID_HANDLE;
	if (a.value < 0 || a.value > 3)
		return CUDA_ERROR_INVALID_VALUE;
	rc = v->ops->func_set_cache(v->b, f->obj, (int)a.value);
	if (!rc)
		f->cache = (int32_t)a.value;
	return rc;
}

/* ---- launch -------------------------------------------------------------- */

/*
 * Launch attributes that carry only numbers. Those that name driver
 * objects (PROGRAMMATIC_EVENT, LAUNCH_COMPLETION_EVENT) would need their
 * guest ids translated and are refused, as are graph-only ones.
 */
static bool attr_ok(uint32_t id)
{
	switch (id) {
	case CU_LAUNCH_ATTRIBUTE_IGNORE:
	case CU_LAUNCH_ATTRIBUTE_ACCESS_POLICY_WINDOW:
	case CU_LAUNCH_ATTRIBUTE_COOPERATIVE:
	case CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION:
	case CU_LAUNCH_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE:
	case CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION:
	case CU_LAUNCH_ATTRIBUTE_PRIORITY:
	case CU_LAUNCH_ATTRIBUTE_MEM_SYNC_DOMAIN_MAP:
	case CU_LAUNCH_ATTRIBUTE_MEM_SYNC_DOMAIN:
	case CU_LAUNCH_ATTRIBUTE_PREFERRED_CLUSTER_DIMENSION:
	case CU_LAUNCH_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT:
		return true;
	}
	return false;
}

static int h_launch(struct cv_vgpu *v, const void *p, uint32_t len,
		    struct cv_out *out)
{
	void *params[CV_LAUNCH_MAX_PARAMS / 4 + 1];
	static uint8_t moved[CV_LAUNCH_MAX_PARAMS];
	const uint8_t *pb = p;
	uint64_t a;
	struct cv_launch_attr attrs[CV_LAUNCH_MAX_ATTRS];
	const uint8_t *pbuf;
	struct cv_launch l;
	struct cv_wfunc *f;
	uint64_t want;
	cv_bobj s;
	uint32_t i;

	memcpy(&l, p, sizeof(l));
	if (l.nattrs > CV_LAUNCH_MAX_ATTRS ||
	    l.param_size > CV_LAUNCH_MAX_PARAMS)
		return CUDA_ERROR_INVALID_VALUE;
	want = sizeof(l) + (uint64_t)l.nattrs * sizeof(attrs[0]) + l.param_size;
	if (want != len)
		return CUDA_ERROR_INVALID_VALUE;
	f = cv_htab_get(&v->funcs, l.func);
	if (!f)
		return CUDA_ERROR_INVALID_HANDLE;
	if (!stream_get(v, l.stream, &s))
		return CUDA_ERROR_INVALID_HANDLE;
	/* Wrong argument sizes never reach the driver. */
	if (l.param_size != f->fp.size ||
	    f->fp.n > CV_ARRAY_SIZE(params))
		return CUDA_ERROR_INVALID_VALUE;
	if (l.nattrs)
		memcpy(attrs, pb + sizeof(l), l.nattrs * sizeof(attrs[0]));
	for (i = 0; i < l.nattrs; i++)
		if (!attr_ok(attrs[i].id))
			return CUDA_ERROR_NOT_SUPPORTED;
	pbuf = pb + sizeof(l) + l.nattrs * sizeof(attrs[0]);
	if (v->nreloc) {
		/* A pointer argument to a moved global follows it. */
		memcpy(moved, pbuf, l.param_size);
		for (i = 0; i < f->fp.n; i++) {
			if (f->fp.p[i].size != 8)
				continue;
			memcpy(&a, moved + f->fp.p[i].offset, 8);
			cv_vgpu_xlate(v, &a, 1);
			memcpy(moved + f->fp.p[i].offset, &a, 8);
		}
		pbuf = moved;
	}
	for (i = 0; i < f->fp.n; i++)
		params[i] = (void *)(pbuf + f->fp.p[i].offset);
	return v->ops->launch(v->b, f->obj, l.grid, l.block, l.shmem, s,
			      f->fp.n ? params : NULL, attrs, l.nattrs);
}

/* ---- streams and events ------------------------------------------------ */

static int h_stream_create(struct cv_vgpu *v, const void *p, uint32_t len,
			   struct cv_out *out)
{
	struct cv_stream_create a;
	cv_bobj s;
	int rc;

	memcpy(&a, p, sizeof(a));
	if (!id_free(&v->streams, a.id) || (a.flags & ~1u))
		return CUDA_ERROR_INVALID_VALUE;
	rc = v->ops->stream_create(v->b, a.flags, a.priority, &s);
	if (rc)
		return rc;
	if (obj_put(&v->streams, a.id, s, a.flags, a.priority)) {
		v->ops->stream_destroy(v->b, s);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	return CUDA_SUCCESS;
}

static int h_stream_destroy(struct cv_vgpu *v, const void *p, uint32_t len,
			    struct cv_out *out)
{
	struct cv_id a;
	cv_bobj s;

	memcpy(&a, p, sizeof(a));
	s = obj_del(&v->streams, a.id);
	if (!s)
		return CUDA_ERROR_INVALID_HANDLE;
	return v->ops->stream_destroy(v->b, s);
}

static int h_stream_sync(struct cv_vgpu *v, const void *p, uint32_t len,
			 struct cv_out *out)
{
	struct cv_id a;
	cv_bobj s;

	memcpy(&a, p, sizeof(a));
	if (!stream_get(v, a.id, &s))
		return CUDA_ERROR_INVALID_HANDLE;
	return v->ops->stream_sync(v->b, s);
}

static int h_stream_query(struct cv_vgpu *v, const void *p, uint32_t len,
			  struct cv_out *out)
{
	struct cv_id a;
	cv_bobj s;

	memcpy(&a, p, sizeof(a));
	if (!stream_get(v, a.id, &s))
		return CUDA_ERROR_INVALID_HANDLE;
	return v->ops->stream_query(v->b, s);
}

static int h_stream_wait_event(struct cv_vgpu *v, const void *p, uint32_t len,
			       struct cv_out *out)
{
	struct cv_stream_event a;
	cv_bobj s, e;

	memcpy(&a, p, sizeof(a));
	e = cv_vgpu_obj(&v->events, a.event);
	if (!stream_get(v, a.stream, &s) || !e)
		return CUDA_ERROR_INVALID_HANDLE;
	return v->ops->stream_wait_event(v->b, s, e, a.flags);
}

static int h_event_create(struct cv_vgpu *v, const void *p, uint32_t len,
			  struct cv_out *out)
{
	struct cv_event_create a;
	cv_bobj e;
	int rc;

	memcpy(&a, p, sizeof(a));
	if (!id_free(&v->events, a.id) || (a.flags & ~0xfu))
		return CUDA_ERROR_INVALID_VALUE;
	rc = v->ops->event_create(v->b, a.flags, &e);
	if (rc)
		return rc;
	if (obj_put(&v->events, a.id, e, a.flags, 0)) {
		v->ops->event_destroy(v->b, e);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	return CUDA_SUCCESS;
}

static int h_event_destroy(struct cv_vgpu *v, const void *p, uint32_t len,
			   struct cv_out *out)
{
	struct cv_id a;
	cv_bobj e;

	memcpy(&a, p, sizeof(a));
	e = obj_del(&v->events, a.id);
	if (!e)
		return CUDA_ERROR_INVALID_HANDLE;
	return v->ops->event_destroy(v->b, e);
}

static int h_event_record(struct cv_vgpu *v, const void *p, uint32_t len,
			  struct cv_out *out)
{
	struct cv_stream_event a;
	cv_bobj s, e;

	memcpy(&a, p, sizeof(a));
	e = cv_vgpu_obj(&v->events, a.event);
	if (!stream_get(v, a.stream, &s) || !e)
		return CUDA_ERROR_INVALID_HANDLE;
	return v->ops->event_record(v->b, e, s, a.flags);
}

static int event_op(struct cv_vgpu *v, const void *p, bool sync)
{
	struct cv_id a;
	cv_bobj e;

	memcpy(&a, p, sizeof(a));
	e = cv_vgpu_obj(&v->events, a.id);
	if (!e)
		return CUDA_ERROR_INVALID_HANDLE;
	return sync ? v->ops->event_sync(v->b, e) : v->ops->event_query(v->b, e);
}

static int h_event_sync(struct cv_vgpu *v, const void *p, uint32_t len,
			struct cv_out *out)
{
	return event_op(v, p, true);
}

static int h_event_query(struct cv_vgpu *v, const void *p, uint32_t len,
			 struct cv_out *out)
{
	return event_op(v, p, false);
}

static int h_event_elapsed(struct cv_vgpu *v, const void *p, uint32_t len,
			   struct cv_out *out)
{
	struct cv_event_pair a;
	struct cv_f32_r r = { 0 };
	cv_bobj s, e;
	int rc;

	memcpy(&a, p, sizeof(a));
	s = cv_vgpu_obj(&v->events, a.start);
	e = cv_vgpu_obj(&v->events, a.end);
	if (!s || !e)
		return CUDA_ERROR_INVALID_HANDLE;
	rc = v->ops->event_elapsed(v->b, s, e, &r.value);
	memcpy(out->data, &r, sizeof(r));
	out->len = sizeof(r);
	return rc;
}

/* ---- context ------------------------------------------------------------- */

/*
 * The guest's work is on the legacy stream and on its own streams. While
 * a migration copies on streams of its own, a context-wide wait would
 * also wait for those copies (and a launch-bound tenant would run at a
 * fraction of its rate), so then the guest's streams are waited for one
 * by one.
 */
static int h_ctx_sync(struct cv_vgpu *v, const void *p, uint32_t len,
		      struct cv_out *out)
{
	struct cv_wobj *w;
	uint32_t i;
	int rc;

	if (!__atomic_load_n(&v->mig_busy, __ATOMIC_ACQUIRE))
		return v->ops->ctx_sync(v->b);
	rc = v->ops->stream_sync(v->b, NULL);
	for (i = 1; i < v->streams.cap && !rc; i++)
		if ((w = v->streams.v[i]))
			rc = v->ops->stream_sync(v->b, w->obj);
	return rc;
}

static int h_ctx_set_limit(struct cv_vgpu *v, const void *p, uint32_t len,
			   struct cv_out *out)
{
	struct cv_limit a;
	int rc;

	memcpy(&a, p, sizeof(a));
	if (a.limit > 0x100)
		return CUDA_ERROR_INVALID_VALUE;
	rc = v->ops->ctx_set_limit(v->b, (int)a.limit, a.value);
	if (!rc && a.limit < CV_LIMIT_MAX) {
		v->limit_set |= 1u << a.limit;
		v->limit_val[a.limit] = a.value;
	}
	return rc;
}

static int h_ctx_get_limit(struct cv_vgpu *v, const void *p, uint32_t len,
			   struct cv_out *out)
{
	struct cv_limit a;
	struct cv_i64_r r = { 0 };
	uint64_t val = 0;
	int rc;

	memcpy(&a, p, sizeof(a));
	if (a.limit > 0x100)
		return CUDA_ERROR_INVALID_VALUE;
	rc = v->ops->ctx_get_limit(v->b, (int)a.limit, &val);
	r.value = (int64_t)val;
	memcpy(out->data, &r, sizeof(r));
	out->len = sizeof(r);
	return rc;
}

static int h_host_func(struct cv_vgpu *v, const void *p, uint32_t len,
		       struct cv_out *out)
{
	struct cv_host_func a;
	cv_bobj s;

	memcpy(&a, p, sizeof(a));
	if (!stream_get(v, a.stream, &s) || a.kind > 1)
		return CUDA_ERROR_INVALID_HANDLE;
	return cv_vgpu_host_func(v, s, &a);
}

static int h_occupancy(struct cv_vgpu *v, const void *p, uint32_t len,
		       struct cv_out *out)
{
	struct cv_occupancy a;
	struct cv_occupancy_r r = { 0 };
	struct cv_wfunc *f;
	int rc;

	memcpy(&a, p, sizeof(a));
	f = cv_htab_get(&v->funcs, a.func);
	if (!f)
		return CUDA_ERROR_INVALID_HANDLE;
	if (a.kind < CV_OCC_ACTIVE_BLOCKS || a.kind > CV_OCC_POTENTIAL)
		return CUDA_ERROR_INVALID_VALUE;
	rc = v->ops->occupancy(v->b, f->obj, &a, &r);
	memcpy(out->data, &r, sizeof(r));
	out->len = sizeof(r);
	return rc;
}

static int h_occ_cluster(struct cv_vgpu *v, const void *p, uint32_t len,
			 struct cv_out *out)
{
	struct cv_launch_attr attrs[CV_LAUNCH_MAX_ATTRS];
	struct cv_i64_r r = { 0 };
	struct cv_occ_cluster a;
	struct cv_wfunc *f;
	uint32_t i;
	int val = 0, rc;

	memcpy(&a, p, sizeof(a));
	if (a.nattrs > CV_LAUNCH_MAX_ATTRS ||
	    len != sizeof(a) + a.nattrs * sizeof(attrs[0]))
		return CUDA_ERROR_INVALID_VALUE;
	f = cv_htab_get(&v->funcs, a.func);
	if (!f)
		return CUDA_ERROR_INVALID_HANDLE;
	if (a.nattrs)
		memcpy(attrs, (const uint8_t *)p + sizeof(a),
		       a.nattrs * sizeof(attrs[0]));
	for (i = 0; i < a.nattrs; i++)
		if (!attr_ok(attrs[i].id))
			return CUDA_ERROR_NOT_SUPPORTED;
	rc = v->ops->occupancy_cluster(v->b, f->obj, a.kind, a.grid, a.block,
				       a.shmem, attrs, a.nattrs, &val);
	r.value = val;
	memcpy(out->data, &r, sizeof(r));
	out->len = sizeof(r);
	return rc;
}

/* ---- virtual memory management ----------------------------------------- */

static int h_vmm_create(struct cv_vgpu *v, const void *p, uint32_t len,
			struct cv_out *out)
{
	struct cv_vmm_create a;
	struct cv_wvmm *h;
	int rc;

	memcpy(&a, p, sizeof(a));
	if (!id_free(&v->vmms, a.id) || !a.size || (a.size % CV_GRANULE))
		return CUDA_ERROR_INVALID_VALUE;
	if (a.size > v->quota - v->used)
		return CUDA_ERROR_OUT_OF_MEMORY;
	h = calloc(1, sizeof(*h));
	if (!h)
		return CUDA_ERROR_OUT_OF_MEMORY;
	h->size = a.size;
	rc = v->ops->mem_create(v->b, a.size, &h->mem);
	cv_vgpu_layout_lock(v);
	if (!rc && cv_htab_put(&v->vmms, a.id, h)) {
		v->ops->mem_release(v->b, h->mem);
		rc = CUDA_ERROR_OUT_OF_MEMORY;
	}
	pthread_rwlock_unlock(&v->mem_lock);
	if (rc) {
		free(h);
		return rc;
	}
	v->used += a.size;
	return CUDA_SUCCESS;
}

static int h_vmm_release(struct cv_vgpu *v, const void *p, uint32_t len,
			 struct cv_out *out)
{
	struct cv_wvmm *h;
	struct cv_id a;

	memcpy(&a, p, sizeof(a));
	h = cv_htab_get(&v->vmms, a.id);
	if (!h || h->released)
		return CUDA_ERROR_INVALID_HANDLE;
	cv_vgpu_layout_lock(v);
	h->released = true;
	if (!h->maps)
		cv_vgpu_vmm_drop(v, a.id);
	pthread_rwlock_unlock(&v->mem_lock);
	return CUDA_SUCCESS;
}

static int h_vmm_map(struct cv_vgpu *v, const void *p, uint32_t len,
		     struct cv_out *out)
{
	struct cv_vmm_map a;
	struct cv_wvmm *h;
	struct cv_wmap *m;
	int rc;

	memcpy(&a, p, sizeof(a));
	h = cv_htab_get(&v->vmms, a.handle);
	if (!h || h->released)
		return CUDA_ERROR_INVALID_HANDLE;
	if (!window_range_ok(a.va, a.size) || (a.offset % CV_GRANULE) ||
	    !cv_range_ok(a.offset, a.size, h->size) ||
	    cv_rangeset_overlaps(&v->dev, a.va, a.size))
		return CUDA_ERROR_INVALID_VALUE;
	m = calloc(1, sizeof(*m));
	if (!m)
		return CUDA_ERROR_OUT_OF_MEMORY;
	*m = (struct cv_wmap){ .mem = h->mem, .vmm = a.handle, .size = a.size,
			       .offset = a.offset };
	rc = v->ops->mem_map(v->b, a.va, a.size, h->mem, a.offset);
	cv_vgpu_layout_lock(v);
	if (!rc && cv_rangeset_add(&v->dev, a.va, a.size, m)) {
		v->ops->mem_unmap(v->b, a.va, a.size);
		rc = CUDA_ERROR_OUT_OF_MEMORY;
	}
	if (!rc)
		h->maps++;
	pthread_rwlock_unlock(&v->mem_lock);
	if (rc) {
		free(m);
		return rc;
	}
	return CUDA_SUCCESS;
}

static int h_vmm_unmap(struct cv_vgpu *v, const void *p, uint32_t len,
		       struct cv_out *out)
{
	struct cv_mem_range a;

	memcpy(&a, p, sizeof(a));
	return unmap_range(v, a.va, a.size, true);
}

/* ---- dispatch ------------------------------------------------------------ */

#define OP(op, l, vv, r, f) [op] = { (uint32_t)(l), vv, r, f }

static const struct cv_op_desc op_table[CV_OP_COUNT] = {
	OP(CV_OP_NOP, 0, 0, R_REPLY, h_nop),
	OP(CV_OP_MEM_GET_INFO, 0, 0, R_REPLY, h_mem_get_info),
	OP(CV_OP_MEM_MAP, sizeof(struct cv_mem_range), 0, R_REPLY, h_mem_map),
	OP(CV_OP_MEM_UNMAP, sizeof(struct cv_mem_range), 0, R_EITHER,
	   h_mem_unmap),
	OP(CV_OP_MEMCPY, sizeof(struct cv_memcpy), 0, R_EITHER, h_memcpy),
	OP(CV_OP_MEMCPY_2D, sizeof(struct cv_memcpy2d), 0, R_EITHER,
	   h_memcpy2d),
	OP(CV_OP_MEMSET, sizeof(struct cv_memset), 0, R_EITHER, h_memset),
	OP(CV_OP_HEAP_MAP, sizeof(struct cv_heap_range), 0, R_REPLY,
	   h_heap_map),
	OP(CV_OP_HEAP_UNMAP, sizeof(struct cv_heap_range), 0, R_REPLY,
	   h_heap_unmap),
	OP(CV_OP_BLOB_PUT, sizeof(struct cv_blob_put), 0, R_ASYNC, h_blob_put),
	OP(CV_OP_MODULE_LOAD, sizeof(struct cv_module_load), 0, R_REPLY,
	   h_module_load),
	OP(CV_OP_MODULE_UNLOAD, sizeof(struct cv_id), 0, R_EITHER,
	   h_module_unload),
	OP(CV_OP_MODULE_GET_FUNCTION, sizeof(struct cv_get_function), 1,
	   R_REPLY, h_get_function),
	OP(CV_OP_MODULE_GET_GLOBAL, sizeof(struct cv_get_global), 1, R_REPLY,
	   h_get_global),
	OP(CV_OP_FUNC_GET_ATTR, sizeof(struct cv_func_attr), 0, R_REPLY,
	   h_func_get_attr),
	OP(CV_OP_FUNC_SET_ATTR, sizeof(struct cv_func_attr), 0, R_EITHER,
	   h_func_set_attr),
	OP(CV_OP_FUNC_SET_CACHE, sizeof(struct cv_func_attr), 0, R_EITHER,
	   h_func_set_cache),
	OP(CV_OP_LAUNCH, sizeof(struct cv_launch), 1, R_EITHER, h_launch),
	OP(CV_OP_STREAM_CREATE, sizeof(struct cv_stream_create), 0, R_REPLY,
	   h_stream_create),
	OP(CV_OP_STREAM_DESTROY, sizeof(struct cv_id), 0, R_EITHER,
	   h_stream_destroy),
	OP(CV_OP_STREAM_SYNC, sizeof(struct cv_id), 0, R_REPLY, h_stream_sync),
	OP(CV_OP_STREAM_QUERY, sizeof(struct cv_id), 0, R_REPLY,
	   h_stream_query),
	OP(CV_OP_STREAM_WAIT_EVENT, sizeof(struct cv_stream_event), 0,
	   R_EITHER, h_stream_wait_event),
	OP(CV_OP_EVENT_CREATE, sizeof(struct cv_event_create), 0, R_REPLY,
	   h_event_create),
	OP(CV_OP_EVENT_DESTROY, sizeof(struct cv_id), 0, R_EITHER,
	   h_event_destroy),
	OP(CV_OP_EVENT_RECORD, sizeof(struct cv_stream_event), 0, R_EITHER,
	   h_event_record),
	OP(CV_OP_EVENT_SYNC, sizeof(struct cv_id), 0, R_REPLY, h_event_sync),
	OP(CV_OP_EVENT_QUERY, sizeof(struct cv_id), 0, R_REPLY, h_event_query),
	OP(CV_OP_EVENT_ELAPSED, sizeof(struct cv_event_pair), 0, R_REPLY,
	   h_event_elapsed),
	OP(CV_OP_CTX_SYNC, 0, 0, R_REPLY, h_ctx_sync),
	OP(CV_OP_CTX_SET_LIMIT, sizeof(struct cv_limit), 0, R_REPLY,
	   h_ctx_set_limit),
	OP(CV_OP_CTX_GET_LIMIT, sizeof(struct cv_limit), 0, R_REPLY,
	   h_ctx_get_limit),
	OP(CV_OP_HOST_FUNC, sizeof(struct cv_host_func), 0, R_ASYNC,
	   h_host_func),
	OP(CV_OP_OCCUPANCY, sizeof(struct cv_occupancy), 0, R_REPLY,
	   h_occupancy),
	OP(CV_OP_VMM_CREATE, sizeof(struct cv_vmm_create), 0, R_REPLY,
	   h_vmm_create),
	OP(CV_OP_VMM_RELEASE, sizeof(struct cv_id), 0, R_EITHER,
	   h_vmm_release),
	OP(CV_OP_VMM_MAP, sizeof(struct cv_vmm_map), 0, R_REPLY, h_vmm_map),
	OP(CV_OP_VMM_UNMAP, sizeof(struct cv_mem_range), 0, R_REPLY,
	   h_vmm_unmap),
	OP(CV_OP_MODULE_LOAD_CACHED, sizeof(struct cv_module_cached), 0,
	   R_REPLY, h_module_load_cached),
	OP(CV_OP_OCC_CLUSTER, sizeof(struct cv_occ_cluster), 1, R_REPLY,
	   h_occ_cluster),
	OP(CV_OP_MODULE_FUNC_NAME, sizeof(struct cv_module_func), 0, R_REPLY,
	   h_module_func_name),
};

/*
 * Writes a reply into the guest's slot and wakes it. The slot index was
 * range-checked by the caller.
 */
static void put_reply(struct cv_vgpu *v, const struct cv_cmd_hdr *hdr,
		      int status, const struct cv_out *out)
{
	struct cv_reply *r = &v->replies[hdr->reply];

	if (out->len)
		memcpy(r->data, out->data, out->len);
	r->len = out->len;
	r->status = status;
	r->async_err = 0;
	if (hdr->flags & CV_CMDF_COLLECT) {
		r->async_err = v->async_err;
		v->async_err = 0;
	}
	/* Release: data, status and len are visible before DONE. */
	__atomic_store_n(&r->state, CV_REPLY_DONE, __ATOMIC_RELEASE);
	/* Full fence: the DONE store before reading sleeping, against the
	 * guest's sleeping store before it re-reads state. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&r->sleeping, __ATOMIC_RELAXED))
		cv_futex_wake(&r->state, INT32_MAX);
}

static void defer_error(struct cv_vgpu *v, int rc)
{
	if (rc && !v->async_err)
		v->async_err = rc;
}

int cv_vgpu_exec(struct cv_vgpu *v, const struct cv_cmd_hdr *hdr,
		 const void *payload)
{
	static uint8_t scratch[CV_REPLY_DATA];
	const struct cv_op_desc *d = NULL;
	struct cv_out out = { scratch, 0, hdr->reply != CV_NO_REPLY };
	bool has_reply = hdr->reply != CV_NO_REPLY;
	int rc;

	v->ncmds++;
	if (has_reply && hdr->reply >= CV_NREPLY)
		return -EPROTO; /* nowhere to tell the guest */
	if (hdr->op < CV_OP_COUNT)
		d = &op_table[hdr->op];
	if (!d || !d->fn) {
		rc = CUDA_ERROR_INVALID_VALUE;
	} else if (hdr->len < d->len || (!d->var && hdr->len != d->len)) {
		rc = CUDA_ERROR_INVALID_VALUE;
	} else if ((has_reply && !(d->reply & R_REPLY)) ||
		   (!has_reply && !(d->reply & R_ASYNC))) {
		rc = CUDA_ERROR_INVALID_VALUE;
	} else {
		rc = d->fn(v, payload, hdr->len, &out);
	}
	if (rc)
		cv_dbg("tenant op %u len %u: error %d", hdr->op, hdr->len, rc);
	if (has_reply)
		put_reply(v, hdr, rc, &out);
	else
		defer_error(v, rc);
	return 0;
}

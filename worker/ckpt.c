/* SPDX-License-Identifier: MIT */
/*
 * Checkpoint and restore of a vGPU (DESIGN.md decision 9). The container
 * (header, index, checksummed and optionally compressed sections) is
 * core/image.c; this file decides what goes into it and rebuilds a vGPU
 * from it. docs/image-format.md describes both.
 *
 * A checkpoint runs with the consumer parked, so nothing changes under
 * it. Device memory goes out through the transfer lanes (xfer.c): each
 * lane copies 8 MiB into its pinned buffer and adds it to the image as one
 * section, so hashing, compressing and writing run on all lanes at once.
 *
 * A restore runs in a new worker, set up over the guest's region, before
 * it takes a command. Everything is read and checked first (identity,
 * every small section, the coverage of the device memory), then the
 * device state is rebuilt; device memory is checked section by section
 * as it streams in. If anything fails the worker exits, which frees all it
 * made: the tenant stays stopped, held by its old worker, untouched.
 */
#include <cuda.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/buf.h"
#include "../core/hash.h"
#include "../core/image.h"
#include "../core/log.h"
#include "../core/util.h"
#include "vgpu.h"
#include "vgpu_int.h"
#include "xfer.h"

#define META_VERSION 2u /* 2: VMM handles and where they are mapped */
#define OBJ_VERSION 1u
/* Bounds on what a restore accepts, before it allocates anything. */
#define MAX_RANGES (1u << 20)
#define MAX_OBJECTS (1u << 20)

/* ---- checkpoint ------------------------------------------------------ */

static int mem_out(void *arg, uint64_t dev, void *buf, uint64_t n)
{
	return cv_img_w_add(arg, CV_SEC_MEM, dev, buf, n);
}

struct glob_ctx {
	struct cv_vgpu *v;
	struct cv_img_w *w;
};

/* A global's bytes, named by the address the guest knows it at. */
static int glob_out(void *arg, uint64_t dev, void *buf, uint64_t n)
{
	struct glob_ctx *g = arg;
	const struct cv_wmodule *m;
	const struct cv_wglobal *gl;
	uint32_t i, k;

	for (i = 1; i < g->v->modules.cap; i++) {
		if (!(m = g->v->modules.v[i]))
			continue;
		for (k = 0; k < m->ngl; k++) {
			gl = &m->gl[k];
			if (dev >= gl->real && dev - gl->real < gl->size)
				return cv_img_w_add(g->w, CV_SEC_GLOBAL,
						    dev - gl->real + gl->dptr,
						    buf, n);
		}
	}
	return -EINVAL;
}

static void put_meta(struct cv_vgpu *v, struct cv_wbuf *b)
{
	const struct cv_wmap *m;
	const struct cv_wvmm *h;
	uint32_t i;

	cv_wbuf_u32(b, META_VERSION);
	cv_wbuf_u64(b, v->quota);
	cv_wbuf_u32(b, (uint32_t)v->async_err);
	cv_wbuf_u32(b, v->limit_set);
	for (i = 0; i < CV_LIMIT_MAX; i++)
		cv_wbuf_u64(b, v->limit_val[i]);
	cv_wbuf_u32(b, v->heap.n);
	for (i = 0; i < v->heap.n; i++) {
		cv_wbuf_u64(b, v->heap.r[i].base - CV_REGION_ADDR - CV_HEAP_OFF);
		cv_wbuf_u64(b, v->heap.r[i].size);
	}
	cv_wbuf_u32(b, v->dev.n);
	for (i = 0; i < v->dev.n; i++) {
		m = v->dev.r[i].owner;
		cv_wbuf_u64(b, v->dev.r[i].base);
		cv_wbuf_u64(b, v->dev.r[i].size);
		cv_wbuf_u32(b, m->vmm);
		cv_wbuf_u64(b, m->offset);
	}
	cv_wbuf_u64(b, v->module_seq);
	cv_wbuf_u32(b, v->vmms.count);
	for (i = 1; i < v->vmms.cap; i++) {
		if (!(h = v->vmms.v[i]))
			continue;
		cv_wbuf_u32(b, i);
		cv_wbuf_u64(b, h->size);
		cv_wbuf_u32(b, h->released);
	}
}

/* Images get indices in list order; modules name theirs by index. */
static uint32_t image_index(const struct cv_vgpu *v,
			    const struct cv_wimage *img)
{
	const struct cv_wimage *i;
	uint32_t n = 0;

	for (i = v->images; i && i != img; i = i->next)
		n++;
	return n;
}

static void put_objects(struct cv_vgpu *v, struct cv_wbuf *b)
{
	const struct cv_wimage *img;
	const struct cv_wmodule *m;
	const struct cv_wfunc *f;
	const struct cv_wobj *o;
	uint32_t i, k, n = 0;

	cv_wbuf_u32(b, OBJ_VERSION);
	for (img = v->images; img; img = img->next)
		n++;
	cv_wbuf_u32(b, n);
	for (img = v->images; img; img = img->next) {
		cv_wbuf_put(b, img->hash, sizeof(img->hash));
		cv_wbuf_u64(b, img->len);
	}
	cv_wbuf_u32(b, v->modules.count);
	for (i = 1; i < v->modules.cap; i++) {
		if (!(m = v->modules.v[i]))
			continue;
		cv_wbuf_u32(b, i);
		cv_wbuf_u64(b, m->seq);
		cv_wbuf_u32(b, image_index(v, m->img));
		cv_wbuf_u32(b, m->ngl);
		for (k = 0; k < m->ngl; k++) {
			cv_wbuf_str(b, m->gl[k].name);
			cv_wbuf_u64(b, m->gl[k].dptr);
			cv_wbuf_u64(b, m->gl[k].size);
		}
	}
	cv_wbuf_u32(b, v->funcs.count);
	for (i = 1; i < v->funcs.cap; i++) {
		if (!(f = v->funcs.v[i]))
			continue;
		cv_wbuf_u32(b, i);
		cv_wbuf_u32(b, f->module);
		cv_wbuf_str(b, f->name);
		cv_wbuf_u32(b, f->attr_set);
		for (k = 0; k < CV_FATTR_MAX; k++)
			cv_wbuf_u32(b, (uint32_t)f->attr_val[k]);
		cv_wbuf_u32(b, (uint32_t)f->cache);
	}
	cv_wbuf_u32(b, v->streams.count);
	for (i = 1; i < v->streams.cap; i++) {
		if (!(o = v->streams.v[i]))
			continue;
		cv_wbuf_u32(b, i);
		cv_wbuf_u32(b, o->flags);
		cv_wbuf_u32(b, (uint32_t)o->prio);
	}
	cv_wbuf_u32(b, v->events.count);
	for (i = 1; i < v->events.cap; i++) {
		if (!(o = v->events.v[i]))
			continue;
		cv_wbuf_u32(b, i);
		cv_wbuf_u32(b, o->flags);
	}
}

static int add_buf(struct cv_img_w *w, uint32_t type, struct cv_wbuf *b)
{
	int rc = b->err ? b->err : 0;

	if (!rc && b->len > CV_IMG_SEC_MAX)
		rc = -E2BIG;
	if (!rc)
		rc = cv_img_w_add(w, type, 0, b->p, b->len);
	cv_wbuf_free(b);
	return rc;
}

/* Each image, split in sections of at most CV_IMG_SEC_MAX bytes. */
static int add_images(struct cv_vgpu *v, struct cv_img_w *w)
{
	const struct cv_wimage *img;
	uint64_t off, n;
	uint32_t idx = 0;
	int rc = 0;

	for (img = v->images; img && !rc; img = img->next, idx++)
		for (off = 0; !rc && (off < img->len || !off); off += n) {
			n = CV_MIN(img->len - off, CV_IMG_SEC_MAX);
			rc = cv_img_w_add(w, CV_SEC_MODIMG, idx,
					  img->data + off, n);
			if (!n)
				break;
		}
	return rc;
}

/* The globals the guest knows of, as transfer segments. */
static int global_segs(struct cv_vgpu *v, struct cv_xfer_seg **out,
		       uint32_t *nout)
{
	struct cv_xfer_seg *s = NULL, *t;
	const struct cv_wmodule *m;
	uint32_t i, k, n = 0;

	for (i = 1; i < v->modules.cap; i++) {
		if (!(m = v->modules.v[i]))
			continue;
		for (k = 0; k < m->ngl; k++) {
			t = realloc(s, (n + 1) * sizeof(*s));
			if (!t) {
				free(s);
				return -ENOMEM;
			}
			s = t;
			s[n++] = (struct cv_xfer_seg){ m->gl[k].real, NULL,
						       m->gl[k].size };
		}
	}
	*out = s;
	*nout = n;
	return 0;
}

/* Device memory of an evicted vGPU lives in host buffers already. */
static int add_saved(struct cv_vgpu *v, struct cv_img_w *w)
{
	uint64_t off, n;
	uint32_t i;
	int rc = 0;

	for (i = 0; i < v->nsaved && !rc; i++)
		if (!v->saved[i].buf)
			return -EAGAIN; /* half restored by a failed resume */
	for (i = 0; i < v->nsaved && !rc; i++)
		for (off = 0; off < v->saved[i].size && !rc; off += n) {
			n = CV_MIN(v->saved[i].size - off, CV_XFER_CHUNK);
			rc = cv_img_w_add(w, CV_SEC_MEM, v->saved[i].va + off,
					  (uint8_t *)v->saved[i].buf + off, n);
			__atomic_fetch_add(&v->op_done, n, __ATOMIC_RELAXED);
		}
	return rc;
}

static void fill_ident(struct cv_vgpu *v, struct cv_ckpt_ident *id,
		       uint64_t mem)
{
	memset(id, 0, sizeof(*id));
	id->kind = CV_CKPT_KIND;
	id->proto = CV_PROTO_VERSION;
	id->tenant_id = v->hdr->tenant_id;
	memcpy(id->token, v->token, sizeof(id->token));
	id->ring_head = v->ring.head;
	id->mem_bytes = mem;
	id->backend = v->hdr->dev.backend;
	id->cc_major = (uint16_t)v->hdr->dev.cc_major;
	id->cc_minor = (uint16_t)v->hdr->dev.cc_minor;
}

int cv_vgpu_checkpoint(struct cv_vgpu *v, int fd, int level, unsigned flags,
		       uint64_t *bytes)
{
	struct cv_xfer_seg *seg = NULL, *gseg = NULL;
	struct cv_ckpt_ident id;
	struct cv_img_w *w;
	struct cv_wbuf b;
	uint32_t i, ngseg = 0;
	uint64_t mem = 0;
	int rc;

	*bytes = 0;
	rc = cv_vgpu_vmm_covered(v, "checkpointed");
	if (rc)
		return rc;
	for (i = 0; i < v->dev.n; i++)
		mem += v->dev.r[i].size;
	v->op_total = mem;
	__atomic_store_n(&v->op_done, 0, __ATOMIC_RELAXED);
	rc = cv_img_w_open(&w, fd, level);
	if (rc)
		return rc;
	cv_wbuf_init(&b);
	put_meta(v, &b);
	rc = add_buf(w, CV_SEC_META, &b);
	if (!rc) {
		cv_wbuf_init(&b);
		put_objects(v, &b);
		rc = add_buf(w, CV_SEC_OBJECTS, &b);
	}
	if (!rc)
		rc = add_images(v, w);
	/* Globals: small, and never evicted (the module owns them). */
	if (!rc)
		rc = global_segs(v, &gseg, &ngseg);
	if (!rc)
		rc = cv_xfer_run(v, false, gseg, ngseg, glob_out,
				 &(struct glob_ctx){ v, w });
	/* A migration's state (NO_MEM) has no memory: it went ahead. */
	if (!rc && !(flags & CV_VGPU_NO_MEM))
		rc = cv_img_w_expect(w, mem);
	if (rc || (flags & CV_VGPU_NO_MEM)) {
		/* nothing more */
	} else if (v->evicted) {
		rc = add_saved(v, w);
	} else if (v->dev.n) {
		seg = calloc(v->dev.n, sizeof(*seg));
		rc = seg ? 0 : -ENOMEM;
		for (i = 0; !rc && i < v->dev.n; i++)
			seg[i] = (struct cv_xfer_seg){ v->dev.r[i].base, NULL,
						       v->dev.r[i].size };
		if (!rc)
			rc = cv_xfer_run(v, false, seg, v->dev.n, mem_out, w);
	}
	if (rc > 0)
		rc = -EIO; /* a CUresult from a copy */
	fill_ident(v, &id, mem);
	if (!rc)
		rc = cv_img_w_finish(w, (const uint8_t *)&id);
	if (!rc)
		*bytes = cv_img_w_bytes(w);
	cv_img_w_free(w);
	free(seg);
	free(gseg);
	return rc;
}

/* ---- restore --------------------------------------------------------- */

struct rs_global {
	char name[CV_NAME_MAX + 1];
	uint64_t dptr, size;
};

struct rs_module {
	uint32_t id, img, ngl;
	uint64_t seq;
	struct rs_global *gl;
};

struct rs_func {
	uint32_t id, module, attr_set;
	char name[CV_NAME_MAX + 1];
	int32_t attr_val[CV_FATTR_MAX];
	int32_t cache;
};

struct rs_vmm {
	uint32_t id, released, maps;
	uint64_t size;
};

struct rs_obj {
	uint32_t id, flags;
	int32_t prio;
};

struct rs_image {
	uint8_t hash[16];
	uint64_t len;
	struct cv_wimage *w;   /* once read */
};

/* Everything read from an image before the device is touched. */
struct rs {
	struct cv_img_r *r;
	char *err;
	size_t errlen;
	/* META */
	uint64_t quota;
	int32_t async_err;
	uint32_t limit_set;
	uint64_t limit_val[CV_LIMIT_MAX];
	uint32_t nheap, ndev;
	uint64_t *heap;        /* off, len pairs */
	uint64_t *dev;         /* va, size pairs */
	uint32_t *devvmm;      /* per range: its VMM handle, 0 for none */
	uint64_t *devoff;      /* per range: its offset in that handle */
	uint32_t nvmm;
	struct rs_vmm *vmm;
	uint64_t module_seq;
	/* OBJECTS */
	uint32_t nimg, nmod, nfunc, nstream, nevent;
	struct rs_image *img;
	struct rs_module *mod;
	struct rs_func *func;
	struct rs_obj *stream, *event;
	/* device memory and globals: section indices sorted by address */
	uint32_t *memsec, nmem;
	uint32_t *globsec, nglob;
	/* the first failure of the lanes streaming memory in */
	pthread_mutex_t lane_lock;
	bool lane_failed;
	bool images_moved;     /* the worker's list owns them */
	bool in_place;         /* device memory is there already */
};

static int fail(struct rs *s, int rc, const char *fmt, ...)
{
	va_list ap;

	if (s->err && s->errlen) {
		va_start(ap, fmt);
		vsnprintf(s->err, s->errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* The one section of a type, read whole into a new buffer. */
static int read_single(struct rs *s, uint32_t type, const char *what,
		       uint8_t **out, uint64_t *len)
{
	uint32_t i, n = cv_img_r_count(s->r), found = UINT32_MAX;
	const struct cv_img_sec *sec;
	int rc;

	for (i = 0; i < n; i++) {
		if (cv_img_r_sec(s->r, i)->type != type)
			continue;
		if (found != UINT32_MAX)
			return fail(s, -EINVAL, "mismatched image: two %s "
				    "sections", what);
		found = i;
	}
	if (found == UINT32_MAX)
		return fail(s, -EINVAL, "mismatched image: no %s section", what);
	sec = cv_img_r_sec(s->r, found);
	*out = malloc(sec->raw ? sec->raw : 1);
	if (!*out)
		return -ENOMEM;
	rc = cv_img_r_read(s->r, found, *out, sec->raw, s->err, s->errlen);
	if (rc) {
		free(*out);
		*out = NULL;
		return rc;
	}
	*len = sec->raw;
	return 0;
}

/* A count read from b, refused when the rest of b cannot hold that many
 * elements of at least min bytes (so no allocation is bigger than b). */
static bool count_ok(struct cv_rbuf *b, uint32_t n, size_t min, uint32_t max)
{
	return !b->bad && n <= max && (uint64_t)n * min <= cv_rbuf_left(b);
}

static int parse_meta(struct rs *s, const uint8_t *p, uint64_t len)
{
	struct cv_rbuf b;
	uint32_t i, ver;

	cv_rbuf_init(&b, p, len);
	ver = cv_rbuf_u32(&b);
	if (ver != 1 && ver != META_VERSION)
		return fail(s, -EINVAL, "mismatched image: unknown META "
			    "version %u", ver);
	s->quota = cv_rbuf_u64(&b);
	s->async_err = (int32_t)cv_rbuf_u32(&b);
	s->limit_set = cv_rbuf_u32(&b);
	for (i = 0; i < CV_LIMIT_MAX; i++)
		s->limit_val[i] = cv_rbuf_u64(&b);
	s->nheap = cv_rbuf_u32(&b);
	if (!count_ok(&b, s->nheap, 16, MAX_RANGES))
		return fail(s, -EINVAL, "corrupted image: bad heap ranges");
	s->heap = calloc(s->nheap * 2u + 1, sizeof(uint64_t));
	if (!s->heap)
		return -ENOMEM;
	for (i = 0; i < s->nheap * 2u; i++)
		s->heap[i] = cv_rbuf_u64(&b);
	s->ndev = cv_rbuf_u32(&b);
	if (!count_ok(&b, s->ndev, ver == 1 ? 16 : 28, MAX_RANGES))
		return fail(s, -EINVAL, "corrupted image: bad device ranges");
	s->dev = calloc(s->ndev * 2u + 1, sizeof(uint64_t));
	s->devvmm = calloc(s->ndev + 1u, sizeof(uint32_t));
	s->devoff = calloc(s->ndev + 1u, sizeof(uint64_t));
	if (!s->dev || !s->devvmm || !s->devoff)
		return -ENOMEM;
	for (i = 0; i < s->ndev; i++) {
		s->dev[2 * i] = cv_rbuf_u64(&b);
		s->dev[2 * i + 1] = cv_rbuf_u64(&b);
		if (ver == 1)
			continue;
		s->devvmm[i] = cv_rbuf_u32(&b);
		s->devoff[i] = cv_rbuf_u64(&b);
	}
	s->module_seq = cv_rbuf_u64(&b);
	if (ver > 1) {
		s->nvmm = cv_rbuf_u32(&b);
		if (!count_ok(&b, s->nvmm, 16, MAX_OBJECTS))
			return fail(s, -EINVAL, "corrupted image: bad VMM "
				    "allocations");
		s->vmm = calloc(s->nvmm + 1u, sizeof(*s->vmm));
		if (!s->vmm)
			return -ENOMEM;
		for (i = 0; i < s->nvmm; i++) {
			s->vmm[i].id = cv_rbuf_u32(&b);
			s->vmm[i].size = cv_rbuf_u64(&b);
			s->vmm[i].released = cv_rbuf_u32(&b);
		}
	}
	if (b.bad || cv_rbuf_left(&b))
		return fail(s, -EINVAL, "corrupted image: META section has "
			    "the wrong size");
	return 0;
}

static int parse_globals(struct rs *s, struct cv_rbuf *b, struct rs_module *m)
{
	uint32_t k;

	m->ngl = cv_rbuf_u32(b);
	if (!count_ok(b, m->ngl, 20, MAX_OBJECTS))
		return -EINVAL;
	m->gl = calloc(m->ngl + 1u, sizeof(*m->gl));
	if (!m->gl)
		return -ENOMEM;
	for (k = 0; k < m->ngl; k++) {
		cv_rbuf_str(b, m->gl[k].name, CV_NAME_MAX);
		m->gl[k].dptr = cv_rbuf_u64(b);
		m->gl[k].size = cv_rbuf_u64(b);
		if (!m->gl[k].name[0] || !m->gl[k].size ||
		    m->gl[k].size > CV_IMG_SEC_MAX * 1024)
			return -EINVAL;
	}
	return b->bad ? -EINVAL : 0;
}

static bool id_ok(uint32_t id)
{
	return id && id < CV_HTAB_MAX;
}

static int parse_objects(struct rs *s, const uint8_t *p, uint64_t len)
{
	struct cv_rbuf b;
	const void *h;
	uint32_t i, k;
	int rc;

	cv_rbuf_init(&b, p, len);
	if (cv_rbuf_u32(&b) != OBJ_VERSION)
		return fail(s, -EINVAL, "mismatched image: unknown OBJECTS "
			    "version");
	s->nimg = cv_rbuf_u32(&b);
	if (!count_ok(&b, s->nimg, 24, MAX_OBJECTS))
		goto bad;
	s->img = calloc(s->nimg + 1u, sizeof(*s->img));
	if (!s->img)
		return -ENOMEM;
	for (i = 0; i < s->nimg; i++) {
		h = cv_rbuf_get(&b, 16);
		if (h)
			memcpy(s->img[i].hash, h, 16);
		s->img[i].len = cv_rbuf_u64(&b);
	}
	s->nmod = cv_rbuf_u32(&b);
	if (!count_ok(&b, s->nmod, 20, MAX_OBJECTS))
		goto bad;
	s->mod = calloc(s->nmod + 1u, sizeof(*s->mod));
	if (!s->mod)
		return -ENOMEM;
	for (i = 0; i < s->nmod; i++) {
		s->mod[i].id = cv_rbuf_u32(&b);
		s->mod[i].seq = cv_rbuf_u64(&b);
		s->mod[i].img = cv_rbuf_u32(&b);
		rc = parse_globals(s, &b, &s->mod[i]);
		if (rc == -ENOMEM)
			return rc;
		if (rc || !id_ok(s->mod[i].id) || s->mod[i].img >= s->nimg)
			goto bad;
	}
	s->nfunc = cv_rbuf_u32(&b);
	if (!count_ok(&b, s->nfunc, 16 + 4 * CV_FATTR_MAX, MAX_OBJECTS))
		goto bad;
	s->func = calloc(s->nfunc + 1u, sizeof(*s->func));
	if (!s->func)
		return -ENOMEM;
	for (i = 0; i < s->nfunc; i++) {
		struct rs_func *f = &s->func[i];

		f->id = cv_rbuf_u32(&b);
		f->module = cv_rbuf_u32(&b);
		cv_rbuf_str(&b, f->name, CV_NAME_MAX);
		f->attr_set = cv_rbuf_u32(&b);
		for (k = 0; k < CV_FATTR_MAX; k++)
			f->attr_val[k] = (int32_t)cv_rbuf_u32(&b);
		f->cache = (int32_t)cv_rbuf_u32(&b);
		if (b.bad || !id_ok(f->id) || !f->name[0] ||
		    f->cache < -1 || f->cache > 3)
			goto bad;
	}
	s->nstream = cv_rbuf_u32(&b);
	if (!count_ok(&b, s->nstream, 12, MAX_OBJECTS))
		goto bad;
	s->stream = calloc(s->nstream + 1u, sizeof(*s->stream));
	if (!s->stream)
		return -ENOMEM;
	for (i = 0; i < s->nstream; i++) {
		s->stream[i].id = cv_rbuf_u32(&b);
		s->stream[i].flags = cv_rbuf_u32(&b);
		s->stream[i].prio = (int32_t)cv_rbuf_u32(&b);
		if (!id_ok(s->stream[i].id) || (s->stream[i].flags & ~1u))
			goto bad;
	}
	s->nevent = cv_rbuf_u32(&b);
	if (!count_ok(&b, s->nevent, 8, MAX_OBJECTS))
		goto bad;
	s->event = calloc(s->nevent + 1u, sizeof(*s->event));
	if (!s->event)
		return -ENOMEM;
	for (i = 0; i < s->nevent; i++) {
		s->event[i].id = cv_rbuf_u32(&b);
		s->event[i].flags = cv_rbuf_u32(&b);
		if (!id_ok(s->event[i].id) || (s->event[i].flags & ~0xfu))
			goto bad;
	}
	if (!b.bad && !cv_rbuf_left(&b))
		return 0;
bad:
	return fail(s, -EINVAL, "corrupted image: OBJECTS section is "
		    "malformed");
}

static int by_vmm_id(const void *a, const void *b)
{
	const struct rs_vmm *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/* s->vmm is sorted by id (check_ranges). */
static struct rs_vmm *find_vmm(struct rs *s, uint32_t id)
{
	struct rs_vmm key = { .id = id };

	return s->nvmm ? bsearch(&key, s->vmm, s->nvmm, sizeof(key),
				 by_vmm_id) : NULL;
}

/* A VMM handle: a valid id, once; a size in granules (the quota is
 * checked with the rest). */
static int check_vmm(struct rs *s, uint32_t i)
{
	const struct rs_vmm *h = &s->vmm[i];

	if (!id_ok(h->id) || (i && h[-1].id == h->id) || !h->size ||
	    h->size % CV_GRANULE || h->size > CV_WINDOW_SIZE ||
	    h->released > 1)
		return fail(s, -EINVAL, "corrupted image: bad VMM "
			    "allocation %u", h->id);
	return 0;
}

/* A range mapped from a VMM handle: the handle exists, and the range
 * lies inside it at a granule-aligned offset. */
static int check_vmm_range(struct rs *s, uint32_t i)
{
	struct rs_vmm *h = find_vmm(s, s->devvmm[i]);
	uint64_t off = s->devoff[i], size = s->dev[2 * i + 1];

	if (!h || off % CV_GRANULE || !cv_range_ok(off, size, h->size))
		return fail(s, -EINVAL, "corrupted image: device range "
			    "0x%llx maps VMM allocation %u wrongly",
			    (unsigned long long)s->dev[2 * i], s->devvmm[i]);
	h->maps++;
	return 0;
}

/* The device ranges: granule-aligned, in the window, disjoint, sorted
 * (the checkpoint wrote them from a sorted set), within the quota. */
static int check_ranges(struct rs *s, uint64_t quota)
{
	uint64_t sum = 0, end = 0, va, size;
	uint32_t i;
	int rc;

	if (s->nvmm)
		qsort(s->vmm, s->nvmm, sizeof(*s->vmm), by_vmm_id);
	for (i = 0; i < s->nvmm; i++) {
		rc = check_vmm(s, i);
		if (rc)
			return rc;
	}

	for (i = 0; i < s->ndev; i++) {
		va = s->dev[2 * i];
		size = s->dev[2 * i + 1];
		if (!size || va % CV_GRANULE || size % CV_GRANULE ||
		    !cv_range_in(va, size, CV_WINDOW_ADDR, CV_WINDOW_SIZE) ||
		    va < end)
			return fail(s, -EINVAL, "corrupted image: bad device "
				    "range 0x%llx (+%llu)",
				    (unsigned long long)va,
				    (unsigned long long)size);
		end = va + size;
		if (s->devvmm[i]) {
			rc = check_vmm_range(s, i);
			if (rc)
				return rc;
		} else {
			sum += size;
		}
	}
	for (i = 0; i < s->nvmm; i++) {
		if (s->vmm[i].released && !s->vmm[i].maps)
			return fail(s, -EINVAL, "corrupted image: released "
				    "VMM allocation %u is mapped nowhere",
				    s->vmm[i].id);
		sum += s->vmm[i].size;
	}
	if (sum > quota)
		return fail(s, -ENOSPC, "the image holds %llu bytes of device "
			    "memory, more than the tenant's quota (%llu)",
			    (unsigned long long)sum,
			    (unsigned long long)quota);
	for (i = 0; i < s->nheap; i++)
		if (!s->heap[2 * i + 1] || s->heap[2 * i] % CV_PAGE ||
		    s->heap[2 * i + 1] % CV_PAGE ||
		    !cv_range_ok(s->heap[2 * i], s->heap[2 * i + 1],
				 CV_HEAP_MAX))
			return fail(s, -EINVAL, "corrupted image: bad pinned "
				    "memory range");
	return 0;
}

static struct rs *g_sort_rs;

static int by_aux(const void *a, const void *b)
{
	uint64_t x = cv_img_r_sec(g_sort_rs->r, *(const uint32_t *)a)->aux;
	uint64_t y = cv_img_r_sec(g_sort_rs->r, *(const uint32_t *)b)->aux;

	return x < y ? -1 : x > y;
}

/* Indices of the sections of a type, sorted by address. */
static int sections_of(struct rs *s, uint32_t type, uint32_t **out,
		       uint32_t *nout)
{
	uint32_t i, n = cv_img_r_count(s->r), k = 0;

	*out = malloc((n + 1) * sizeof(**out));
	if (!*out)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		if (cv_img_r_sec(s->r, i)->type == type)
			(*out)[k++] = i;
	g_sort_rs = s;
	qsort(*out, k, sizeof(**out), by_aux);
	*nout = k;
	return 0;
}

/*
 * Device memory must be covered exactly: every range cut into the
 * sections a checkpoint makes (CV_XFER_CHUNK each from the range's start,
 * the last one shorter), nothing else.
 */
static int check_mem(struct rs *s)
{
	const struct cv_img_sec *sec;
	uint64_t va, size, off;
	uint32_t i, k = 0;
	int rc;

	rc = sections_of(s, CV_SEC_MEM, &s->memsec, &s->nmem);
	if (rc)
		return rc;
	for (i = 0; i < s->ndev; i++) {
		va = s->dev[2 * i];
		size = s->dev[2 * i + 1];
		for (off = 0; off < size; off += CV_XFER_CHUNK, k++) {
			sec = k < s->nmem ? cv_img_r_sec(s->r, s->memsec[k]) :
					    NULL;
			if (!sec || sec->aux != va + off ||
			    sec->raw != CV_MIN(CV_XFER_CHUNK, size - off))
				return fail(s, -EINVAL, "corrupted image: "
					    "device memory at 0x%llx is "
					    "missing or misplaced",
					    (unsigned long long)(va + off));
		}
	}
	if (k != s->nmem)
		return fail(s, -EINVAL, "corrupted image: %u device memory "
			    "sections outside every range", s->nmem - k);
	return 0;
}

/* Reads image i (its parts, in order), checks length and hash. */
static int read_image(struct rs *s, uint32_t idx)
{
	struct rs_image *ri = &s->img[idx];
	const struct cv_img_sec *sec;
	uint32_t i, n = cv_img_r_count(s->r);
	uint64_t got = 0;
	uint8_t hash[16];
	uint8_t *data;
	int rc;

	if (ri->len > (1ull << 32))
		return fail(s, -EINVAL, "corrupted image: module image %u is "
			    "too large", idx);
	data = malloc(ri->len ? ri->len : 1);
	if (!data)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		sec = cv_img_r_sec(s->r, i);
		if (sec->type != CV_SEC_MODIMG || sec->aux != idx)
			continue;
		if (sec->raw > ri->len - got) {
			rc = fail(s, -EINVAL, "corrupted image: module image "
				  "%u is longer than recorded", idx);
			goto out;
		}
		rc = cv_img_r_read(s->r, i, data + got, sec->raw, s->err,
				   s->errlen);
		if (rc)
			goto out;
		got += sec->raw;
	}
	cv_hash128(data, ri->len, hash);
	if (got != ri->len || memcmp(hash, ri->hash, 16)) {
		rc = fail(s, -EINVAL, "corrupted image: module image %u does "
			  "not match its hash", idx);
		goto out;
	}
	ri->w = calloc(1, sizeof(*ri->w));
	if (!ri->w) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(ri->w->hash, hash, 16);
	ri->w->data = data;
	ri->w->len = ri->len;
	return 0;
out:
	free(data);
	return rc;
}

static int check_ident(struct rs *s, struct cv_vgpu *v, uint64_t head)
{
	struct cv_ckpt_ident id;

	memcpy(&id, cv_img_r_info(s->r)->ident, sizeof(id));
	if (id.kind != CV_CKPT_KIND)
		return fail(s, -EINVAL, "mismatched image: not a vGPU image");
	if (id.proto != CV_PROTO_VERSION)
		return fail(s, -EPROTO, "mismatched image: written by a worker "
			    "of protocol version %u, this one speaks %u",
			    id.proto, CV_PROTO_VERSION);
	if (memcmp(id.token, v->token, sizeof(id.token)))
		return fail(s, -EINVAL, "mismatched image: it belongs to "
			    "another tenant (tenant %llu)",
			    (unsigned long long)id.tenant_id);
	if (id.backend != v->hdr->dev.backend)
		return fail(s, -EINVAL, "mismatched image: taken on the %s "
			    "backend, this worker runs the %s backend",
			    id.backend == CV_BACKEND_HOST ? "host" : "cuda",
			    v->hdr->dev.backend == CV_BACKEND_HOST ? "host" :
								   "cuda");
	if (id.cc_major != v->hdr->dev.cc_major ||
	    id.cc_minor != v->hdr->dev.cc_minor)
		return fail(s, -EINVAL, "mismatched image: taken on a GPU of "
			    "compute capability %u.%u, this GPU is %d.%d",
			    id.cc_major, id.cc_minor, v->hdr->dev.cc_major,
			    v->hdr->dev.cc_minor);
	if (id.ring_head != head)
		return fail(s, -ESTALE, "mismatched image: taken after %llu "
			    "bytes of commands, but the tenant has sent %llu "
			    "since its last checkpoint; this is not its "
			    "latest image", (unsigned long long)id.ring_head,
			    (unsigned long long)head);
	return 0;
}

/* Everything read and checked; the device not touched yet. */
static int load(struct rs *s, struct cv_vgpu *v, uint64_t head)
{
	uint8_t *p = NULL;
	uint64_t len;
	uint32_t i;
	int rc;

	rc = check_ident(s, v, head);
	if (!rc)
		rc = read_single(s, CV_SEC_META, "META", &p, &len);
	if (!rc)
		rc = parse_meta(s, p, len);
	free(p);
	p = NULL;
	if (!rc)
		rc = read_single(s, CV_SEC_OBJECTS, "OBJECTS", &p, &len);
	if (!rc)
		rc = parse_objects(s, p, len);
	free(p);
	if (!rc)
		rc = check_ranges(s, v->quota);
	if (!rc && !s->in_place)
		rc = check_mem(s);
	if (!rc)
		rc = sections_of(s, CV_SEC_GLOBAL, &s->globsec, &s->nglob);
	for (i = 0; !rc && i < s->nimg; i++)
		rc = read_image(s, i);
	return rc;
}

/* Reads one memory section on a lane; the first failure's message is
 * kept for the operator. */
static int mem_read(struct rs *s, uint32_t i, void *buf, uint64_t n)
{
	char err[200];
	int rc;

	rc = cv_img_r_read(s->r, i, buf, n, err, sizeof(err));
	if (!rc)
		return 0;
	pthread_mutex_lock(&s->lane_lock);
	if (!s->lane_failed) {
		s->lane_failed = true;
		fail(s, rc, "%s", err);
	}
	pthread_mutex_unlock(&s->lane_lock);
	return rc;
}

/* A lane asks for the bytes of device address dev: its section. */
static int mem_in(void *arg, uint64_t dev, void *buf, uint64_t n)
{
	struct rs *s = arg;
	uint32_t lo = 0, hi = s->nmem, mid;
	const struct cv_img_sec *sec;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		sec = cv_img_r_sec(s->r, s->memsec[mid]);
		if (sec->aux == dev)
			return mem_read(s, s->memsec[mid], buf, n);
		if (sec->aux < dev)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -EINVAL;
}

/*
 * A migration's destination holds the device memory already, mapped by
 * the plans it followed: it must be exactly what the state describes,
 * and the pinned heap too.
 */
static int check_in_place(struct rs *s, struct cv_vgpu *v)
{
	const struct cv_wmap *m;
	const struct cv_wvmm *h;
	uint32_t i;

	if (s->ndev != v->dev.n || s->nvmm != v->vmms.count ||
	    s->nheap != v->heap.n)
		return fail(s, -EINVAL, "the state does not match the memory "
			    "sent: %u ranges, %u VMM handles, %u pinned ranges "
			    "in the state, %u, %u, %u here", s->ndev, s->nvmm,
			    s->nheap, v->dev.n, v->vmms.count, v->heap.n);
	for (i = 0; i < s->ndev; i++) {
		m = v->dev.r[i].owner;
		if (v->dev.r[i].base != s->dev[2 * i] ||
		    v->dev.r[i].size != s->dev[2 * i + 1] ||
		    m->vmm != s->devvmm[i] || m->offset != s->devoff[i])
			return fail(s, -EINVAL, "the state does not match the "
				    "memory sent at 0x%llx",
				    (unsigned long long)s->dev[2 * i]);
	}
	for (i = 0; i < s->nvmm; i++) {
		h = cv_htab_get(&v->vmms, s->vmm[i].id);
		if (!h || h->size != s->vmm[i].size ||
		    h->released != (bool)s->vmm[i].released)
			return fail(s, -EINVAL, "the state does not match the "
				    "memory sent: VMM allocation %u",
				    s->vmm[i].id);
	}
	for (i = 0; i < s->nheap; i++)
		if (v->heap.r[i].base != CV_REGION_ADDR + CV_HEAP_OFF +
						 s->heap[2 * i] ||
		    v->heap.r[i].size != s->heap[2 * i + 1])
			return fail(s, -EINVAL, "the state does not match the "
				    "pinned memory mapped");
	return 0;
}

static int by_seq(const void *a, const void *b)
{
	const struct rs_module *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Device memory: mapped at the same addresses and streamed in. */
static int rebuild_memory(struct rs *s, struct cv_vgpu *v)
{
	struct cv_xfer_seg *seg;
	uint32_t i;
	int rc = 0;

	for (i = 0; i < s->nheap && !rc; i++)
		if (cv_vgpu_heap_map(v, s->heap[2 * i], s->heap[2 * i + 1]))
			rc = fail(s, -ENOMEM, "cannot map %llu bytes of pinned "
				  "memory",
				  (unsigned long long)s->heap[2 * i + 1]);
	/* VMM handles first, under the guest's ids; their ranges below. */
	for (i = 0; i < s->nvmm && !rc; i++)
		rc = cv_vgpu_vmm_add(v, s->vmm[i].id, s->vmm[i].size,
				     s->vmm[i].released, NULL, s->err,
				     s->errlen);
	seg = calloc(s->ndev + 1u, sizeof(*seg));
	if (!rc && !seg)
		rc = -ENOMEM;
	for (i = 0; i < s->ndev && !rc; i++) {
		seg[i] = (struct cv_xfer_seg){ s->dev[2 * i], NULL,
					       s->dev[2 * i + 1] };
		rc = cv_vgpu_map_add(v, seg[i].dev, seg[i].len, s->devvmm[i],
				     s->devoff[i], NULL, s->err, s->errlen);
	}
	if (!rc) {
		rc = cv_xfer_run(v, true, seg, s->ndev, mem_in, s);
		if (rc && !s->lane_failed)
			rc = fail(s, rc < 0 ? rc : -EIO, "device memory: %s",
				  rc > 0 ? "a copy to the GPU failed" :
					   strerror(-rc));
		else if (rc > 0)
			rc = -EIO;
	}
	free(seg);
	return rc;
}

/* Where the guest will find a global the driver placed elsewhere. */
static int add_reloc(struct cv_vgpu *v, uint64_t guest, uint64_t real,
		     uint64_t size)
{
	struct cv_wreloc *r;

	r = realloc(v->reloc, (v->nreloc + 1) * sizeof(*r));
	if (!r)
		return -ENOMEM;
	v->reloc = r;
	r[v->nreloc++] = (struct cv_wreloc){ guest, real, size };
	return 0;
}

/*
 * Puts a global's saved bytes back. The driver places module memory anew
 * in every process, so the global may have moved: the guest keeps the
 * address it knows, and the decoder rebases it (cv_vgpu_xlate).
 */
static int rebuild_global(struct rs *s, struct cv_vgpu *v,
			  struct cv_wmodule *m, const struct rs_global *g)
{
	const struct cv_img_sec *sec;
	uint64_t dptr = 0, size = 0, off;
	uint32_t i;
	uint8_t *buf;
	int rc;

	rc = v->ops->get_global(v->b, m->obj, g->name, &dptr, &size);
	if (rc || size != g->size)
		return fail(s, -EINVAL, "mismatched image: module global %s "
			    "has %llu bytes, the image %llu", g->name,
			    (unsigned long long)size,
			    (unsigned long long)g->size);
	if (cv_rangeset_add(&m->globals, dptr, size, NULL) ||
	    cv_vgpu_global_note(m, g->name, g->dptr, dptr, size))
		return -ENOMEM;
	if (dptr != g->dptr) {
		if (cv_rangeset_overlaps(&v->dev, g->dptr, size) ||
		    add_reloc(v, g->dptr, dptr, size))
			return fail(s, -EADDRNOTAVAIL, "module global %s moved "
				    "from 0x%llx to 0x%llx and cannot be "
				    "redirected", g->name,
				    (unsigned long long)g->dptr,
				    (unsigned long long)dptr);
		cv_info("tenant %llu: module global %s moved from 0x%llx to "
			"0x%llx; redirected", (unsigned long long)v->tenant,
			g->name, (unsigned long long)g->dptr,
			(unsigned long long)dptr);
	}
	for (i = 0; i < s->nglob; i++) {
		sec = cv_img_r_sec(s->r, s->globsec[i]);
		if (sec->aux < g->dptr || sec->aux - g->dptr >= size)
			continue;
		off = sec->aux - g->dptr;
		if (sec->raw > size - off)
			return fail(s, -EINVAL, "corrupted image: global %s",
				    g->name);
		buf = malloc(sec->raw ? sec->raw : 1);
		if (!buf)
			return -ENOMEM;
		rc = cv_img_r_read(s->r, s->globsec[i], buf, sec->raw, s->err,
				   s->errlen);
		if (!rc)
			rc = cv_xfer_h2d(v, dptr + off, buf, sec->raw);
		free(buf);
		if (rc)
			return rc < 0 ? rc : -EIO;
	}
	return 0;
}

/* Drops images no module uses (a damaged image may list such). */
static void prune_images(struct cv_vgpu *v)
{
	struct cv_wimage **pp = &v->images, *img;

	while ((img = *pp)) {
		if (img->refs) {
			pp = &img->next;
			continue;
		}
		*pp = img->next;
		free(img->data);
		free(img);
	}
}

static int rebuild_modules(struct rs *s, struct cv_vgpu *v)
{
	struct rs_module *rm;
	struct cv_wimage *img;
	struct cv_wmodule *m;
	uint32_t i, k;
	int rc;

	/* Images go to the worker's list (the list owns them from now on,
	 * rs_free no longer); modules hold references. */
	for (i = 0; i < s->nimg; i++) {
		img = s->img[i].w;
		img->refs = 0;
		img->next = v->images;
		v->images = img;
	}
	s->images_moved = true;
	/* Load order as in the first worker: the driver then places the
	 * modules' globals where they were. */
	qsort(s->mod, s->nmod, sizeof(*s->mod), by_seq);
	for (i = 0; i < s->nmod; i++) {
		rm = &s->mod[i];
		if (cv_htab_get(&v->modules, rm->id))
			return fail(s, -EINVAL, "corrupted image: module %u "
				    "twice", rm->id);
		rc = cv_vgpu_module_bind(v, rm->id, s->img[rm->img].w);
		if (rc) {
			prune_images(v);
			return fail(s, -EIO, "cannot load module %u: CUresult "
				    "%d", rm->id, rc);
		}
		m = cv_htab_get(&v->modules, rm->id);
		m->seq = rm->seq;
		for (k = 0; k < rm->ngl && !rc; k++)
			rc = rebuild_global(s, v, m, &rm->gl[k]);
		if (rc) {
			prune_images(v);
			return rc;
		}
	}
	v->module_seq = s->module_seq;
	prune_images(v);
	return 0;
}

static int rebuild_funcs(struct rs *s, struct cv_vgpu *v)
{
	const struct rs_func *rf;
	struct cv_wmodule *m;
	struct cv_wfunc *f;
	uint32_t i, k;
	int rc;

	for (i = 0; i < s->nfunc; i++) {
		rf = &s->func[i];
		m = cv_htab_get(&v->modules, rf->module);
		if (!m || cv_htab_get(&v->funcs, rf->id))
			return fail(s, -EINVAL, "corrupted image: function %u",
				    rf->id);
		f = calloc(1, sizeof(*f));
		if (!f || !(f->name = strdup(rf->name))) {
			free(f);
			return -ENOMEM;
		}
		f->module = rf->module;
		f->cache = -1;
		rc = v->ops->get_function(v->b, m->obj, rf->name, &f->obj,
					  &f->fp);
		if (!rc && cv_htab_put(&v->funcs, rf->id, f))
			rc = CUDA_ERROR_OUT_OF_MEMORY;
		if (rc) {
			cv_vgpu_func_free(f);
			return fail(s, -EIO, "cannot find function %s: CUresult "
				    "%d", rf->name, rc);
		}
		for (k = 0; k < CV_FATTR_MAX; k++) {
			if (!(rf->attr_set & (1u << k)))
				continue;
			rc = v->ops->func_set_attr(v->b, f->obj, (int)k,
						   rf->attr_val[k]);
			if (rc)
				return fail(s, -EIO, "function %s: attribute "
					    "%u: CUresult %d", rf->name, k, rc);
			f->attr_set |= 1u << k;
			f->attr_val[k] = rf->attr_val[k];
		}
		if (rf->cache >= 0 &&
		    !v->ops->func_set_cache(v->b, f->obj, rf->cache))
			f->cache = rf->cache;
	}
	return 0;
}

static int rebuild_objs(struct rs *s, struct cv_vgpu *v, bool streams)
{
	struct cv_htab *t = streams ? &v->streams : &v->events;
	const struct rs_obj *o = streams ? s->stream : s->event;
	uint32_t i, n = streams ? s->nstream : s->nevent;
	struct cv_wobj *w;
	int rc;

	for (i = 0; i < n; i++) {
		if (cv_htab_get(t, o[i].id))
			return fail(s, -EINVAL, "corrupted image: %s %u twice",
				    streams ? "stream" : "event", o[i].id);
		w = calloc(1, sizeof(*w));
		if (!w)
			return -ENOMEM;
		*w = (struct cv_wobj){ NULL, o[i].flags, o[i].prio };
		rc = streams ? v->ops->stream_create(v->b, o[i].flags,
						     o[i].prio, &w->obj) :
			       v->ops->event_create(v->b, o[i].flags, &w->obj);
		if (!rc && cv_htab_put(t, o[i].id, w))
			rc = CUDA_ERROR_OUT_OF_MEMORY;
		if (rc) {
			free(w);
			return fail(s, -EIO, "cannot create %s %u: CUresult %d",
				    streams ? "stream" : "event", o[i].id, rc);
		}
	}
	return 0;
}

static void rs_free(struct rs *s)
{
	uint32_t i;

	for (i = 0; s->mod && i < s->nmod; i++)
		free(s->mod[i].gl);
	for (i = 0; s->img && !s->images_moved && i < s->nimg; i++)
		if (s->img[i].w) {
			free(s->img[i].w->data);
			free(s->img[i].w);
		}
	free(s->heap);
	free(s->dev);
	free(s->devvmm);
	free(s->devoff);
	free(s->vmm);
	free(s->img);
	free(s->mod);
	free(s->func);
	free(s->stream);
	free(s->event);
	free(s->memsec);
	free(s->globsec);
	if (s->r)
		cv_img_r_close(s->r);
}

int cv_vgpu_restore(struct cv_vgpu *v, int fd, unsigned flags, uint64_t *bytes,
		    char *err, size_t errlen)
{
	struct rs s = { .err = err, .errlen = errlen,
			.lane_lock = PTHREAD_MUTEX_INITIALIZER,
			.in_place = flags & CV_VGPU_MEM_IN_PLACE };
	uint64_t head = __atomic_load_n(&v->ctl->head, __ATOMIC_ACQUIRE);
	uint32_t i;
	int rc;

	*bytes = 0;
	err[0] = 0;
	rc = cv_img_r_open(&s.r, fd, err, errlen);
	if (!rc)
		rc = load(&s, v, head);
	if (!rc) {
		v->op_total = 0;
		for (i = 0; i < s.ndev; i++)
			v->op_total += s.dev[2 * i + 1];
		rc = s.in_place ? check_in_place(&s, v) :
				  rebuild_memory(&s, v);
	}
	if (!rc)
		rc = rebuild_modules(&s, v);
	if (!rc)
		rc = rebuild_funcs(&s, v);
	if (!rc)
		rc = rebuild_objs(&s, v, true);
	if (!rc)
		rc = rebuild_objs(&s, v, false);
	for (i = 0; !rc && i < CV_LIMIT_MAX; i++) {
		if (!(s.limit_set & (1u << i)))
			continue;
		if (v->ops->ctx_set_limit(v->b, (int)i, s.limit_val[i]))
			rc = fail(&s, -EIO, "cannot set context limit %u", i);
		v->limit_set |= 1u << i;
		v->limit_val[i] = s.limit_val[i];
	}
	if (!rc) {
		v->async_err = s.async_err;
		v->cb_produced = __atomic_load_n(&v->cbq->produced,
						 __ATOMIC_ACQUIRE);
		*bytes = v->op_total;
	}
	if (rc && !err[0])
		snprintf(err, errlen, "%s", strerror(rc < 0 ? -rc : EIO));
	rs_free(&s);
	return rc;
}

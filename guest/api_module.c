/* SPDX-License-Identifier: MIT */
/*
 * Modules, functions, launches and occupancy. Module images are shipped
 * to the worker through staging chunks (BLOB_PUT) and loaded there;
 * a function's parameter layout comes back with its lookup and is cached
 * here, so launches pack kernelParams into the ring without a round trip
 * (DESIGN.md decision 6).
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/hash.h"
#include "../core/log.h"
#include "../core/util.h"
#include "guest.h"

#define FATBIN_MAGIC 0xba55ed50u
#define FATBIN_WRAPPER_MAGIC 0x466243b1u

/* ---- images ------------------------------------------------------------- */

static bool elf_size(const uint8_t *p, uint64_t *len)
{
	const Elf64_Ehdr *e = (const Elf64_Ehdr *)p;
	const Elf64_Shdr *sh;
	uint64_t end, i;

	if (e->e_ident[EI_CLASS] != ELFCLASS64 ||
	    e->e_shentsize != sizeof(Elf64_Shdr))
		return false;
	end = CV_MAX((uint64_t)e->e_ehsize,
		     e->e_shoff + (uint64_t)e->e_shnum * e->e_shentsize);
	end = CV_MAX(end, e->e_phoff + (uint64_t)e->e_phnum * e->e_phentsize);
	sh = (const Elf64_Shdr *)(p + e->e_shoff);
	for (i = 0; i < e->e_shnum; i++)
		if (sh[i].sh_type != SHT_NOBITS)
			end = CV_MAX(end, sh[i].sh_offset + sh[i].sh_size);
	*len = end;
	return end <= CV_BLOB_MAX;
}

/*
 * The size of a module image in memory: an ELF cubin, a fat binary (or
 * the wrapper nvcc emits around one), or NUL-terminated PTX. Returns the
 * start of the image to ship (the wrapper's payload) or NULL.
 */
static const void *image_span(const void *img, uint64_t *len)
{
	const uint8_t *p = img;
	uint32_t magic;
	uint16_t hsize;
	uint64_t fsize;

	memcpy(&magic, p, 4);
	if (magic == FATBIN_WRAPPER_MAGIC) {
		memcpy(&p, p + 8, sizeof(p));
		if (!p)
			return NULL;
		memcpy(&magic, p, 4);
	}
	if (magic == FATBIN_MAGIC) {
		memcpy(&hsize, p + 6, 2);
		memcpy(&fsize, p + 8, 8);
		*len = (uint64_t)hsize + fsize;
		return fsize <= CV_BLOB_MAX ? p : NULL;
	}
	if (!memcmp(p, ELFMAG, SELFMAG))
		return elf_size(p, len) ? p : NULL;
	/* PTX: text up to its NUL */
	*len = strnlen((const char *)p, CV_BLOB_MAX) + 1;
	return *len <= CV_BLOB_MAX && *len > 1 ? p : NULL;
}

/* Ships len bytes as the worker's blob, chunk by chunk. */
static int blob_send(const uint8_t *p, uint64_t len)
{
	struct cv_blob_put b = { .total = len };
	uint64_t off, n;
	uint32_t c;
	int rc;

	for (off = 0; off < len; off += n) {
		n = CV_MIN(len - off, CV_STAGING_CHUNK);
		rc = cv_g_chunk_get(&c);
		if (rc)
			return rc;
		memcpy(cv_g_chunk_ptr(c), p + off, n);
		b.off = off;
		b.len = n;
		b.chunk = c;
		rc = cv_g_submit(CV_OP_BLOB_PUT, &b, sizeof(b));
		cv_g_chunk_put(c);
		if (rc)
			return rc;
	}
	return CUDA_SUCCESS;
}

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * Ships m's image unless the worker already holds one of the same content
 * (loaded by this tenant before: identical images travel once), then has
 * it loaded as module m. Called under load_lock.
 */
static int module_ship(struct cv_module *m)
{
	struct cv_module_cached c = { .id = m->h.id };
	struct cv_module_load a = { .id = m->h.id, .size = m->len };
	int rc;

	cv_hash128(m->image, m->len, c.hash);
	rc = cv_g_call(CV_OP_MODULE_LOAD_CACHED, false, &c, sizeof(c), NULL, 0,
		       NULL);
	if (rc != CUDA_ERROR_NOT_FOUND)
		return rc;
	rc = blob_send(m->image, m->len);
	if (!rc)
		rc = cv_g_call(CV_OP_MODULE_LOAD, false, &a, sizeof(a), NULL, 0,
			       NULL);
	return rc;
}

CUresult cv_module_ensure(struct cv_module *m)
{
	int rc = CUDA_SUCCESS;

	pthread_mutex_lock(&load_lock);
	if (!m->loaded) {
		rc = m->image ? module_ship(m) : CUDA_ERROR_INVALID_HANDLE;
		m->loaded = rc == CUDA_SUCCESS;
		m->gen += m->loaded;
	}
	pthread_mutex_unlock(&load_lock);
	return rc;
}

static void globals_drop(struct cv_module *m);

static void reset_library(void *obj, void *arg)
{
	struct cv_module *m = obj;
	struct cv_id a = { m->h.id, 0 };

	if (m->h.ctx || !(m->flags & CV_MOD_LAZY))
		return;
	pthread_mutex_lock(&load_lock);
	if (m->loaded)
		cv_g_submit(CV_OP_MODULE_UNLOAD, &a, sizeof(a));
	m->loaded = false;
	pthread_mutex_unlock(&load_lock);
	globals_drop(m);
}

/*
 * A library outlives contexts, but its loaded copy (and its globals' values)
 * belongs to the context: after a reset its kernels and globals come back
 * as loaded anew. The program's CUkernel handles stay valid; each is bound
 * again at its next use (see func_bind).
 */
void cv_module_reset_libraries(void)
{
	cv_handle_each(CV_H_MODULE, reset_library, NULL);
}

static void module_drop_image(struct cv_module *m)
{
	if (m->flags & CV_MOD_OWNED)
		free((void *)m->image);
	m->image = NULL;
}

CUresult cv_module_open(CUmodule *out, const void *img, unsigned int flags)
{
	struct cv_module *m;
	const void *p;
	uint64_t len = 0, h;
	uint32_t id;
	/* Libraries need no context. */
	int rc = (flags & CV_MOD_LAZY) ? cv_g_ready() : cv_ctx_check();

	if (rc)
		return rc;
	if (!out || !img)
		return CUDA_ERROR_INVALID_VALUE;
	p = image_span(img, &len);
	if (!p)
		return CUDA_ERROR_INVALID_IMAGE;
	m = calloc(1, sizeof(*m));
	if (!m)
		return CUDA_ERROR_OUT_OF_MEMORY;
	if ((flags & CV_MOD_COPY) && (flags & CV_MOD_LAZY)) {
		if (!(img = malloc(len))) {
			free(m);
			return CUDA_ERROR_OUT_OF_MEMORY;
		}
		memcpy((void *)img, p, len);
		p = img;
		flags |= CV_MOD_OWNED;
	}
	/* A library belongs to no context; a module to the current one. */
	m->h.ctx = (flags & CV_MOD_LAZY) ? NULL : cv_ctx_current();
	m->image = p;
	m->len = len;
	m->flags = flags;
	h = cv_handle_new(m, CV_H_MODULE, &id);
	rc = !h ? CUDA_ERROR_OUT_OF_MEMORY :
	     (flags & CV_MOD_LAZY) ? CUDA_SUCCESS : cv_module_ensure(m);
	if (rc) {
		if (h)
			cv_handle_del(h);
		if (flags & CV_MOD_COPY)
			free((void *)p);
		free(m);
		return rc;
	}
	/* An eager module no longer needs its image. */
	if (!(flags & CV_MOD_LAZY) && (flags & CV_MOD_OWNED)) {
		free((void *)img);
		m->image = NULL;
	}
	*out = (CUmodule)(uintptr_t)h;
	return CUDA_SUCCESS;
}

CV_API CUresult cuModuleLoadData(CUmodule *m, const void *image)
{
	return cv_module_open(m, image, 0);
}

/* JIT options only tune or report on compilation; the worker compiles
 * with its defaults. */
CV_API CUresult cuModuleLoadDataEx(CUmodule *m, const void *image,
				   unsigned int n, CUjit_option *opts,
				   void **vals)
{
	return cv_module_open(m, image, 0);
}

CV_API CUresult cuModuleLoadFatBinary(CUmodule *m, const void *fat)
{
	return cv_module_open(m, fat, 0);
}

CV_API CUresult cuModuleLoad(CUmodule *m, const char *fname)
{
	return cv_module_open_file(m, fname, 0);
}

CUresult cv_module_open_file(CUmodule *m, const char *fname,
			     unsigned int flags)
{
	struct stat st;
	uint8_t *buf;
	ssize_t n;
	size_t got = 0;
	int fd, rc = (flags & CV_MOD_LAZY) ? cv_g_ready() : cv_ctx_check();

	if (rc)
		return rc;
	if (!m || !fname)
		return CUDA_ERROR_INVALID_VALUE;
	fd = open(fname, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return CUDA_ERROR_FILE_NOT_FOUND;
	if (fstat(fd, &st) || st.st_size <= 0 ||
	    (uint64_t)st.st_size > CV_BLOB_MAX) {
		close(fd);
		return CUDA_ERROR_INVALID_IMAGE;
	}
	buf = calloc(1, (size_t)st.st_size + 1); /* NUL for PTX */
	if (!buf) {
		close(fd);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	while (got < (size_t)st.st_size &&
	       (n = read(fd, buf + got, (size_t)st.st_size - got)) > 0)
		got += (size_t)n;
	close(fd);
	if (got != (size_t)st.st_size) {
		free(buf);
		return CUDA_ERROR_FILE_NOT_FOUND;
	}
	/* The module owns buf once opened; on failure it is still ours. */
	rc = cv_module_open(m, buf, flags | CV_MOD_OWNED);
	if (rc)
		free(buf);
	return rc;
}

static struct cv_module *module_obj(CUmodule h)
{
	return cv_handle_get((uint64_t)(uintptr_t)h, CV_H_MODULE);
}

static void func_free(struct cv_func *f)
{
	cv_handle_del(cv_handle_of(&f->h));
	free(f->name);
	free(f->params);
	free(f);
}


static CUresult module_unload(CUmodule h)
{
	struct cv_module *m;
	struct cv_func *f, *n;
	struct cv_id a;
	int rc = cv_g_ready();

	if (rc)
		return rc;
	m = module_obj(h);
	if (!m)
		return CUDA_ERROR_INVALID_HANDLE;
	a = (struct cv_id){ m->h.id, 0 };
	pthread_mutex_lock(&load_lock);
	rc = m->loaded ? cv_g_submit(CV_OP_MODULE_UNLOAD, &a, sizeof(a)) :
			 CUDA_SUCCESS;
	m->loaded = false;
	pthread_mutex_unlock(&load_lock);
	module_drop_image(m);
	for (f = m->funcs; f; f = n) {
		n = f->next;
		func_free(f);
	}
	globals_drop(m);
	cv_handle_del((uint64_t)(uintptr_t)h);
	free(m);
	return rc;
}

CV_API CUresult cuModuleUnload(CUmodule h)
{
	return module_unload(h);
}

static void drop_module(void *obj, void *arg)
{
	struct cv_module *m = obj;

	if (m->h.ctx == arg)
		module_unload((CUmodule)(uintptr_t)cv_handle_of(&m->h));
}

void cv_module_release_ctx(struct cv_ctx *c);
void cv_module_release_ctx(struct cv_ctx *c)
{
	cv_handle_each(CV_H_MODULE, drop_module, c);
}

/* ---- functions and globals ------------------------------------------- */

/* Fetches the rest of f's parameter list after the first reply. */
static int params_fetch(struct cv_func *f, const struct cv_function_r *r0)
{
	uint8_t buf[CV_REPLY_DATA];
	struct cv_get_function a = { .func = f->h.id };
	const struct cv_function_r *r = r0;
	uint32_t have = 0;
	int rc;

	f->nparams = r0->nparams;
	f->param_size = r0->param_size;
	if (f->nparams > CV_LAUNCH_MAX_PARAMS)
		return CUDA_ERROR_NOT_SUPPORTED;
	f->params = calloc(f->nparams ? f->nparams : 1, sizeof(*f->params));
	if (!f->params)
		return CUDA_ERROR_OUT_OF_MEMORY;
	for (;;) {
		if (r->count > f->nparams - have)
			return CUDA_ERROR_UNKNOWN;
		memcpy(&f->params[have], r->p, r->count * sizeof(*r->p));
		have += r->count;
		if (have == f->nparams)
			return CUDA_SUCCESS;
		if (!r->count)
			return CUDA_ERROR_UNKNOWN;
		a.first = have;
		rc = cv_g_call(CV_OP_MODULE_GET_FUNCTION, false, &a, sizeof(a),
			       buf, sizeof(buf), NULL);
		if (rc)
			return rc;
		r = (const struct cv_function_r *)buf;
	}
}

static struct cv_func *func_find(struct cv_module *m, const char *name)
{
	struct cv_func *f;

	for (f = m->funcs; f; f = f->next)
		if (!strcmp(f->name, name))
			return f;
	return NULL;
}

/*
 * The loaded module for a lookup of `name` in hm: checks the name's length
 * and ships a lazy module's image first. CUresult.
 */
static int module_for_name(CUmodule hm, const char *name,
			   struct cv_module **m, size_t *nl)
{
	if (!name)
		return CUDA_ERROR_INVALID_VALUE;
	*m = module_obj(hm);
	if (!*m)
		return CUDA_ERROR_INVALID_HANDLE;
	*nl = strlen(name);
	if (!*nl || *nl > CV_NAME_MAX)
		return CUDA_ERROR_INVALID_VALUE;
	return cv_module_ensure(*m);
}

CV_API CUresult cuModuleGetFunction(CUfunction *out, CUmodule hm,
				    const char *name)
{
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	return cv_func_lookup(out, hm, name);
}

CUresult cv_func_lookup(CUfunction *out, CUmodule hm, const char *name)
{
	uint8_t buf[CV_REPLY_DATA];
	struct cv_get_function a = { 0 };
	struct cv_module *m;
	struct cv_func *f;
	size_t nl;
	uint64_t h;
	int rc;

	if (!out)
		return CUDA_ERROR_INVALID_VALUE;
	if ((rc = module_for_name(hm, name, &m, &nl)))
		return rc;
	pthread_mutex_lock(&g.lock);
	f = func_find(m, name);
	pthread_mutex_unlock(&g.lock);
	if (f) {
		*out = (CUfunction)(uintptr_t)cv_handle_of(&f->h);
		return CUDA_SUCCESS;
	}
	f = calloc(1, sizeof(*f));
	if (!f || !(f->name = strdup(name))) {
		free(f);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	f->mod = m;
	f->h.ctx = m->h.ctx;
	h = cv_handle_new(f, CV_H_FUNC, &a.func_id);
	if (!h) {
		free(f->name);
		free(f);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	a.module = m->h.id;
	a.name_len = (uint32_t)nl;
	rc = cv_g_call2(CV_OP_MODULE_GET_FUNCTION, &a, sizeof(a), name,
			(uint32_t)nl, buf, sizeof(buf));
	if (!rc)
		rc = params_fetch(f, (const struct cv_function_r *)buf);
	if (rc) {
		func_free(f);
		return rc;
	}
	f->gen = m->gen;
	pthread_mutex_lock(&g.lock);
	f->next = m->funcs;
	m->funcs = f;
	pthread_mutex_unlock(&g.lock);
	*out = (CUfunction)(uintptr_t)h;
	return CUDA_SUCCESS;
}

struct gfind {
	struct cv_module *mod;
	struct cv_global *found;
};

static void gfind_cb(struct cv_rnode *n, void *arg)
{
	struct gfind *f = arg;

	if (!f->found && ((struct cv_global *)n)->mod == f->mod)
		f->found = (struct cv_global *)n;
}

/* Forgets the module's globals (they are few: one walk per global). */
static void globals_drop(struct cv_module *m)
{
	struct gfind f;

	do {
		f = (struct gfind){ m, NULL };
		pthread_mutex_lock(&g.lock);
		cv_rtree_walk(&g.globals, gfind_cb, &f);
		if (f.found)
			cv_rtree_remove(&g.globals, &f.found->r);
		pthread_mutex_unlock(&g.lock);
		free(f.found);
	} while (f.found);
}

CV_API CUresult cuModuleGetGlobal_v2(CUdeviceptr *dptr, size_t *bytes,
				     CUmodule hm, const char *name)
{
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	return cv_global_lookup(dptr, bytes, hm, name);
}

CUresult cv_global_lookup(CUdeviceptr *dptr, size_t *bytes, CUmodule hm,
			  const char *name)
{
	struct cv_get_global a = { 0 };
	struct cv_global_r r;
	struct cv_global *gl;
	struct cv_module *m;
	size_t nl;
	int rc;

	if ((rc = module_for_name(hm, name, &m, &nl)))
		return rc;
	a.module = m->h.id;
	a.name_len = (uint32_t)nl;
	rc = cv_g_call2(CV_OP_MODULE_GET_GLOBAL, &a, sizeof(a), name,
			(uint32_t)nl, &r, sizeof(r));
	if (rc)
		return rc;
	gl = calloc(1, sizeof(*gl));
	if (gl) {
		gl->r = (struct cv_rnode){ r.dptr, r.size };
		gl->mod = m;
		pthread_mutex_lock(&g.lock);
		if (cv_rtree_insert(&g.globals, &gl->r)) {
			free(gl); /* already known */
		}
		pthread_mutex_unlock(&g.lock);
	}
	if (dptr)
		*dptr = r.dptr;
	if (bytes)
		*bytes = r.size;
	return CUDA_SUCCESS;
}

/* Count, and with index < count the name, of a module's functions. */
static int module_func_name(struct cv_module *m, uint32_t index,
			    uint32_t *count, char *name)
{
	uint8_t buf[CV_REPLY_DATA];
	struct cv_module_func a = { m->h.id, index };
	const struct cv_module_func_r *r = (const void *)buf;
	uint32_t got = 0;
	int rc;

	rc = cv_module_ensure(m);
	if (rc)
		return rc;
	rc = cv_g_call(CV_OP_MODULE_FUNC_NAME, false, &a, sizeof(a), buf,
		       sizeof(buf), &got);
	if (rc)
		return rc;
	if (got < sizeof(*r) || r->len > CV_NAME_MAX ||
	    got < sizeof(*r) + r->len)
		return CUDA_ERROR_UNKNOWN;
	*count = r->count;
	if (name) {
		memcpy(name, r->name, r->len);
		name[r->len] = 0;
	}
	return CUDA_SUCCESS;
}

CV_API CUresult cuModuleGetFunctionCount(unsigned int *count, CUmodule hm)
{
	struct cv_module *m;
	uint32_t n = 0;
	int rc = cv_g_ready();

	if (rc)
		return rc;
	if (!count)
		return CUDA_ERROR_INVALID_VALUE;
	m = module_obj(hm);
	if (!m)
		return CUDA_ERROR_INVALID_HANDLE;
	rc = module_func_name(m, UINT32_MAX, &n, NULL);
	if (!rc)
		*count = n;
	return rc;
}

CV_API CUresult cuModuleEnumerateFunctions(CUfunction *fns, unsigned int num,
					   CUmodule hm)
{
	char name[CV_NAME_MAX + 1];
	struct cv_module *m;
	uint32_t n = 0, i;
	int rc = cv_g_ready();

	if (rc)
		return rc;
	m = module_obj(hm);
	if (!m)
		return CUDA_ERROR_INVALID_HANDLE;
	if (!fns)
		return CUDA_ERROR_INVALID_VALUE;
	rc = module_func_name(m, UINT32_MAX, &n, NULL);
	if (!rc && num < n)
		rc = CUDA_ERROR_INVALID_VALUE;
	for (i = 0; !rc && i < n; i++) {
		rc = module_func_name(m, i, &n, name);
		if (!rc)
			rc = cv_func_lookup(&fns[i], hm, name);
	}
	return rc;
}

static struct cv_func *func_obj_any(CUfunction h)
{
	return cv_handle_get((uint64_t)(uintptr_t)h, CV_H_FUNC);
}

/*
 * Binds f in the worker again if its library was reloaded since (after a
 * primary context reset); CUresult. The common case is two loads and a
 * compare.
 */
static int func_bind(struct cv_func *f)
{
	static pthread_mutex_t bind_lock = PTHREAD_MUTEX_INITIALIZER;
	struct cv_get_function a = { 0 };
	uint8_t buf[CV_REPLY_DATA];
	int rc;

	if (__atomic_load_n(&f->mod->loaded, __ATOMIC_ACQUIRE) &&
	    f->gen == __atomic_load_n(&f->mod->gen, __ATOMIC_ACQUIRE))
		return CUDA_SUCCESS;
	rc = cv_module_ensure(f->mod);
	if (rc)
		return rc;
	pthread_mutex_lock(&bind_lock);
	if (f->gen != f->mod->gen) {
		a.module = f->mod->h.id;
		a.func_id = f->h.id;
		a.name_len = (uint32_t)strlen(f->name);
		rc = cv_g_call2(CV_OP_MODULE_GET_FUNCTION, &a, sizeof(a),
				f->name, a.name_len, buf, sizeof(buf));
		if (!rc)
			f->gen = f->mod->gen;
	}
	pthread_mutex_unlock(&bind_lock);
	return rc;
}

/* The function of a handle, bound in the worker; NULL with *rc set. */
static struct cv_func *func_use(CUfunction h, int *rc)
{
	struct cv_func *f = func_obj_any(h);

	*rc = f ? func_bind(f) : CUDA_ERROR_INVALID_HANDLE;
	return *rc ? NULL : f;
}

static struct cv_func *func_obj(CUfunction h)
{
	return func_obj_any(h);
}

CV_API CUresult cuFuncGetAttribute(int *v, CUfunction_attribute attr,
				   CUfunction hf)
{
	struct cv_func_attr a = { .attrib = attr };
	struct cv_func *f;
	int64_t val = 0;
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	if (!v)
		return CUDA_ERROR_INVALID_VALUE;
	f = func_use(hf, &rc);
	if (!f)
		return rc;
	a.func = f->h.id;
	rc = cv_g_call(CV_OP_FUNC_GET_ATTR, false, &a, sizeof(a), &val,
		       sizeof(val), NULL);
	if (!rc)
		*v = (int)val;
	return rc;
}

CV_API CUresult cuFuncSetAttribute(CUfunction hf, CUfunction_attribute attr,
				   int value)
{
	struct cv_func_attr a = { .attrib = attr, .value = value };
	struct cv_func *f;
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	f = func_use(hf, &rc);
	if (!f)
		return rc;
	a.func = f->h.id;
	return cv_g_call(CV_OP_FUNC_SET_ATTR, false, &a, sizeof(a), NULL, 0,
			 NULL);
}

CV_API CUresult cuFuncSetCacheConfig(CUfunction hf, CUfunc_cache config)
{
	struct cv_func_attr a = { .value = config };
	struct cv_func *f;
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	if ((unsigned)config > 3)
		return CUDA_ERROR_INVALID_VALUE;
	f = func_use(hf, &rc);
	if (!f)
		return rc;
	a.func = f->h.id;
	return cv_g_submit(CV_OP_FUNC_SET_CACHE, &a, sizeof(a));
}

CV_API CUresult cuFuncSetSharedMemConfig(CUfunction hf, CUsharedconfig c)
{
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	return func_obj(hf) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

CV_API CUresult cuFuncGetParamInfo(CUfunction hf, size_t idx, size_t *off,
				   size_t *size)
{
	struct cv_func *f = func_obj(hf);

	if (!f)
		return CUDA_ERROR_INVALID_HANDLE;
	if (idx >= f->nparams)
		return CUDA_ERROR_INVALID_VALUE;
	if (off)
		*off = f->params[idx].offset;
	if (size)
		*size = f->params[idx].size;
	return CUDA_SUCCESS;
}

CV_API CUresult cuFuncGetName(const char **name, CUfunction hf)
{
	struct cv_func *f = func_obj(hf);

	if (!name)
		return CUDA_ERROR_INVALID_VALUE;
	if (!f)
		return CUDA_ERROR_INVALID_HANDLE;
	*name = f->name;
	return CUDA_SUCCESS;
}

CV_API CUresult cuFuncGetModule(CUmodule *mod, CUfunction hf)
{
	struct cv_func *f = func_obj(hf);

	if (!mod)
		return CUDA_ERROR_INVALID_VALUE;
	if (!f)
		return CUDA_ERROR_INVALID_HANDLE;
	*mod = (CUmodule)(uintptr_t)cv_handle_of(&f->mod->h);
	return CUDA_SUCCESS;
}

/* ---- launch ------------------------------------------------------------- */

struct launch {
	struct cv_func *f;
	uint32_t grid[3], block[3], shmem;
	CUstream stream;
	void **params;
	void **extra;
	const CUlaunchAttribute *attrs;
	uint32_t nattrs;
	bool ptds;
};

static int check_dims(const struct launch *l)
{
	const int32_t *a = g.dev.attr;
	uint64_t threads;

	if (!l->grid[0] || !l->grid[1] || !l->grid[2] || !l->block[0] ||
	    !l->block[1] || !l->block[2])
		return CUDA_ERROR_INVALID_VALUE;
	threads = (uint64_t)l->block[0] * l->block[1] * l->block[2];
	if (threads > (uint64_t)a[CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK] ||
	    l->block[0] > (uint32_t)a[CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X] ||
	    l->block[1] > (uint32_t)a[CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y] ||
	    l->block[2] > (uint32_t)a[CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z] ||
	    l->grid[0] > (uint32_t)a[CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X] ||
	    l->grid[1] > (uint32_t)a[CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y] ||
	    l->grid[2] > (uint32_t)a[CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z] ||
	    l->shmem > (uint32_t)
		    a[CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN])
		return CUDA_ERROR_INVALID_VALUE;
	return CUDA_SUCCESS;
}

/* The packed-buffer form of kernel arguments ("extra"). */
static int extra_buffer(void **extra, const void **buf, size_t *size)
{
	unsigned i;

	*buf = NULL;
	*size = 0;
	for (i = 0; i < 64 && extra[i] != CU_LAUNCH_PARAM_END; i += 2) {
		if (extra[i] == CU_LAUNCH_PARAM_BUFFER_POINTER)
			*buf = extra[i + 1];
		else if (extra[i] == CU_LAUNCH_PARAM_BUFFER_SIZE)
			*size = extra[i + 1] ? *(size_t *)extra[i + 1] : 0;
		else
			return CUDA_ERROR_INVALID_VALUE;
	}
	return *buf ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

static void pack_params(const struct cv_func *f, void **params, uint8_t *out)
{
	uint32_t i;

	for (i = 0; i < f->nparams; i++)
		memcpy(out + f->params[i].offset, params[i],
		       f->params[i].size);
}

static int launch(const struct launch *l)
{
	struct cv_launch *w;
	struct cv_launch_attr *wa;
	const void *xbuf = NULL;
	size_t xsize = 0;
	uint32_t sid, len, i;
	uint8_t *p;
	int rc;

	if (l->params && l->extra)
		return CUDA_ERROR_INVALID_VALUE;
	if (l->f->nparams && !l->params && !l->extra)
		return CUDA_ERROR_INVALID_VALUE;
	if (l->extra && (rc = extra_buffer(l->extra, &xbuf, &xsize)))
		return rc;
	if (l->extra && xsize < l->f->param_size)
		return CUDA_ERROR_INVALID_VALUE;
	if (l->nattrs > CV_LAUNCH_MAX_ATTRS)
		return CUDA_ERROR_INVALID_VALUE;
	if ((rc = check_dims(l)) ||
	    (rc = cv_stream_wire(l->stream, l->ptds, &sid)))
		return rc;
	len = (uint32_t)(sizeof(*w) + l->nattrs * sizeof(*wa) +
			 l->f->param_size);
	p = cv_g_reserve(CV_OP_LAUNCH, len, &rc);
	if (!p)
		return rc;
	w = (struct cv_launch *)p;
	*w = (struct cv_launch){ .func = l->f->h.id, .stream = sid,
				 .grid = { l->grid[0], l->grid[1], l->grid[2] },
				 .block = { l->block[0], l->block[1],
					    l->block[2] },
				 .shmem = l->shmem, .nattrs = l->nattrs,
				 .param_size = l->f->param_size };
	wa = (struct cv_launch_attr *)(p + sizeof(*w));
	for (i = 0; i < l->nattrs; i++) {
		wa[i].id = l->attrs[i].id;
		wa[i].pad = 0;
		memcpy(wa[i].value, &l->attrs[i].value, sizeof(wa[i].value));
	}
	p += sizeof(*w) + l->nattrs * sizeof(*wa);
	if (l->extra)
		memcpy(p, xbuf, l->f->param_size);
	else
		pack_params(l->f, l->params, p);
	cv_g_commit();
	return CUDA_SUCCESS;
}

static CUresult launch_kernel(CUfunction hf, unsigned gx, unsigned gy,
			      unsigned gz, unsigned bx, unsigned by,
			      unsigned bz, unsigned shmem, CUstream s,
			      void **params, void **extra, bool ptds)
{
	struct launch l = { .grid = { gx, gy, gz }, .block = { bx, by, bz },
			    .shmem = shmem, .stream = s, .params = params,
			    .extra = extra, .ptds = ptds };
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	l.f = func_use(hf, &rc);
	if (!l.f)
		return rc;
	return launch(&l);
}

CV_API CUresult cuLaunchKernel(CUfunction f, unsigned int gx, unsigned int gy,
			       unsigned int gz, unsigned int bx,
			       unsigned int by, unsigned int bz,
			       unsigned int shmem, CUstream s, void **params,
			       void **extra)
{
	return launch_kernel(f, gx, gy, gz, bx, by, bz, shmem, s, params,
			     extra, false);
}

CV_API CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned int gx,
				    unsigned int gy, unsigned int gz,
				    unsigned int bx, unsigned int by,
				    unsigned int bz, unsigned int shmem,
				    CUstream s, void **params, void **extra)
{
	return launch_kernel(f, gx, gy, gz, bx, by, bz, shmem, s, params,
			     extra, true);
}

static CUresult launch_ex(const CUlaunchConfig *c, CUfunction hf,
			  void **params, void **extra, bool ptds)
{
	struct launch l;
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	if (!c || (c->numAttrs && !c->attrs))
		return CUDA_ERROR_INVALID_VALUE;
	l = (struct launch){ .grid = { c->gridDimX, c->gridDimY, c->gridDimZ },
			     .block = { c->blockDimX, c->blockDimY,
					c->blockDimZ },
			     .shmem = c->sharedMemBytes, .stream = c->hStream,
			     .params = params, .extra = extra,
			     .attrs = c->attrs, .nattrs = c->numAttrs,
			     .ptds = ptds };
	l.f = func_use(hf, &rc);
	if (!l.f)
		return rc;
	return launch(&l);
}

CV_API CUresult cuLaunchKernelEx(const CUlaunchConfig *c, CUfunction f,
				 void **params, void **extra)
{
	return launch_ex(c, f, params, extra, false);
}

CV_API CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *c, CUfunction f,
				      void **params, void **extra)
{
	return launch_ex(c, f, params, extra, true);
}

static CUresult launch_coop(CUfunction f, unsigned gx, unsigned gy,
			    unsigned gz, unsigned bx, unsigned by, unsigned bz,
			    unsigned shmem, CUstream s, void **params,
			    bool ptds)
{
	CUlaunchAttribute at;
	CUlaunchConfig c = { gx, gy, gz, bx, by, bz, shmem, s, &at, 1 };

	memset(&at, 0, sizeof(at));
	at.id = CU_LAUNCH_ATTRIBUTE_COOPERATIVE;
	at.value.cooperative = 1;
	return launch_ex(&c, f, params, NULL, ptds);
}

CV_API CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned int gx,
					  unsigned int gy, unsigned int gz,
					  unsigned int bx, unsigned int by,
					  unsigned int bz, unsigned int shmem,
					  CUstream s, void **params)
{
	return launch_coop(f, gx, gy, gz, bx, by, bz, shmem, s, params, false);
}

CV_API CUresult cuLaunchCooperativeKernel_ptsz(CUfunction f, unsigned int gx,
					       unsigned int gy, unsigned int gz,
					       unsigned int bx, unsigned int by,
					       unsigned int bz,
					       unsigned int shmem, CUstream s,
					       void **params)
{
	return launch_coop(f, gx, gy, gz, bx, by, bz, shmem, s, params, true);
}

/* ---- occupancy ------------------------------------------------------------ */

static int occupancy(CUfunction hf, struct cv_occupancy *a,
		     struct cv_occupancy_r *r)
{
	struct cv_func *f;
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	f = func_use(hf, &rc);
	if (!f)
		return rc;
	a->func = f->h.id;
	return cv_g_call(CV_OP_OCCUPANCY, false, a, sizeof(*a), r, sizeof(*r),
			 NULL);
}

CV_API CUresult cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(
	int *n, CUfunction f, int block, size_t smem, unsigned int flags)
{
	struct cv_occupancy a = { .kind = CV_OCC_ACTIVE_BLOCKS, .block = block,
				  .smem = smem, .flags = flags };
	struct cv_occupancy_r r;
	int rc;

	if (!n)
		return CUDA_ERROR_INVALID_VALUE;
	rc = occupancy(f, &a, &r);
	if (!rc)
		*n = (int)r.value;
	return rc;
}

CV_API CUresult cuOccupancyMaxActiveBlocksPerMultiprocessor(int *n,
							    CUfunction f,
							    int block,
							    size_t smem)
{
	return cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(n, f, block,
								    smem, 0);
}

CV_API CUresult cuOccupancyAvailableDynamicSMemPerBlock(size_t *size,
							CUfunction f,
							int nblocks, int block)
{
	struct cv_occupancy a = { .kind = CV_OCC_AVAIL_SMEM, .block = block,
				  .nblocks = nblocks };
	struct cv_occupancy_r r;
	int rc;

	if (!size)
		return CUDA_ERROR_INVALID_VALUE;
	rc = occupancy(f, &a, &r);
	if (!rc)
		*size = (size_t)r.value;
	return rc;
}

/*
 * With a shared-memory callback the search runs here (the callback is the
 * program's code): try every block size in warp steps and keep the one
 * with the most resident threads.
 */
static int potential_cb(CUfunction f, int *grid, int *block,
			CUoccupancyB2DSize cb, int limit, unsigned int flags)
{
	int maxb = g.dev.attr[CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK];
	int warp = g.dev.attr[CU_DEVICE_ATTRIBUTE_WARP_SIZE];
	int best = 0, best_b = 0, bs, n = 0, rc;

	if (warp <= 0)
		warp = 32;
	if (limit > 0 && limit < maxb)
		maxb = limit;
	for (bs = maxb - maxb % warp; bs > 0; bs -= warp) {
		rc = cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(
			&n, f, bs, cb(bs), flags);
		if (rc)
			return rc;
		if (n * bs > best) {
			best = n * bs;
			best_b = bs;
		}
	}
	*block = best_b;
	*grid = best_b ? best / best_b *
			 g.dev.attr[CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT] : 0;
	return CUDA_SUCCESS;
}

CV_API CUresult cuOccupancyMaxPotentialBlockSizeWithFlags(
	int *grid, int *block, CUfunction f, CUoccupancyB2DSize cb, size_t smem,
	int limit, unsigned int flags)
{
	struct cv_occupancy a = { .kind = CV_OCC_POTENTIAL, .smem = smem,
				  .limit = limit, .flags = flags };
	struct cv_occupancy_r r;
	int rc;

	if (!grid || !block)
		return CUDA_ERROR_INVALID_VALUE;
	if (cb)
		return potential_cb(f, grid, block, cb, limit, flags);
	rc = occupancy(f, &a, &r);
	if (!rc) {
		*grid = r.grid;
		*block = r.block;
	}
	return rc;
}

static CUresult occ_cluster(int *out, CUfunction hf, const CUlaunchConfig *c,
			    uint32_t kind)
{
	uint8_t buf[sizeof(struct cv_occ_cluster) +
		    CV_LAUNCH_MAX_ATTRS * sizeof(struct cv_launch_attr)];
	struct cv_occ_cluster *a = (struct cv_occ_cluster *)buf;
	struct cv_launch_attr *wa = (struct cv_launch_attr *)(a + 1);
	struct cv_func *f;
	int64_t v = 0;
	uint32_t i;
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	if (!out || !c || c->numAttrs > CV_LAUNCH_MAX_ATTRS ||
	    (c->numAttrs && !c->attrs))
		return CUDA_ERROR_INVALID_VALUE;
	f = func_use(hf, &rc);
	if (!f)
		return rc;
	*a = (struct cv_occ_cluster){ .func = f->h.id, .kind = kind,
		.grid = { c->gridDimX, c->gridDimY, c->gridDimZ },
		.block = { c->blockDimX, c->blockDimY, c->blockDimZ },
		.shmem = c->sharedMemBytes, .nattrs = c->numAttrs };
	for (i = 0; i < c->numAttrs; i++) {
		wa[i].id = c->attrs[i].id;
		wa[i].pad = 0;
		memcpy(wa[i].value, &c->attrs[i].value, sizeof(wa[i].value));
	}
	rc = cv_g_call(CV_OP_OCC_CLUSTER, false, buf,
		       (uint32_t)(sizeof(*a) + c->numAttrs * sizeof(*wa)), &v,
		       sizeof(v), NULL);
	if (!rc)
		*out = (int)v;
	return rc;
}

CV_API CUresult cuOccupancyMaxActiveClusters(int *n, CUfunction f,
					     const CUlaunchConfig *c)
{
	return occ_cluster(n, f, c, CV_OCC_ACTIVE_CLUSTERS);
}

CV_API CUresult cuOccupancyMaxPotentialClusterSize(int *n, CUfunction f,
						   const CUlaunchConfig *c)
{
	return occ_cluster(n, f, c, CV_OCC_CLUSTER_SIZE);
}

CV_API CUresult cuOccupancyMaxPotentialBlockSize(int *grid, int *block,
						 CUfunction f,
						 CUoccupancyB2DSize cb,
						 size_t smem, int limit)
{
	return cuOccupancyMaxPotentialBlockSizeWithFlags(grid, block, f, cb,
							 smem, limit, 0);
}

/* Modules are loaded when the program asks (the image is shipped and
 * loaded by cuModuleLoad*); the worker's driver may still load kernels
 * lazily behind that. */
CV_API CUresult cuModuleGetLoadingMode(CUmoduleLoadingMode *mode)
{
	if (!mode)
		return CUDA_ERROR_INVALID_VALUE;
	*mode = CU_MODULE_EAGER_LOADING;
	return CUDA_SUCCESS;
}

/* SPDX-License-Identifier: MIT */
/*
 * The guest driver's internal state and helpers. The guest library is
 * libcuda.so.1 inside a tenant process: it answers locally what it can and
 * turns everything else into ring commands for its worker.
 *
 * Locking: g.lock guards the handle tables, allocators and contexts;
 * g.ring_lock serialises ring producers (held only from reserve to
 * commit); the reply-slot and chunk pools have their own locks. Never
 * wait for the worker while holding g.lock.
 */
#ifndef CV_GUEST_H
#define CV_GUEST_H

/* Every ABI under its own exported name (no cuX -> cuX_vN macros). */
#define __CUDA_API_VERSION_INTERNAL 1
#include <cuda.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "../core/proto.h"
#include "../core/ring.h"
#include "alloc.h"

#define CV_API __attribute__((visibility("default")))

/* ---- handles ------------------------------------------------------------ */

enum cv_htype {
	CV_H_CTX = 1,
	CV_H_STREAM,
	CV_H_EVENT,
	CV_H_MODULE,
	CV_H_FUNC,
	CV_H_MEMHANDLE,
	CV_H_NTYPES
};

/* Every handle object starts with this. */
struct cv_hobj {
	uint32_t type;
	uint32_t id;     /* wire id, also the table index */
	struct cv_ctx *ctx;
};

struct cv_ctx {
	struct cv_hobj h;
	uint64_t uid;        /* never reused (cuCtxGetId) */
	unsigned int flags;
	bool primary;
	bool destroyed;
};

struct cv_stream {
	struct cv_hobj h;
	unsigned int flags;
	int priority;
};

struct cv_event {
	struct cv_hobj h;
	unsigned int flags;
};

struct cv_func;
struct cv_module {
	struct cv_hobj h;
	struct cv_func *funcs; /* list, for lookups by name */
	const void *image;     /* until shipped (or kept for a library) */
	uint64_t len;
	unsigned int flags;    /* CV_MOD_* */
	bool loaded;           /* the worker has it (under the load lock) */
	uint32_t gen;          /* bumped at every load (under the load lock) */
};

#define CV_MOD_LAZY 1u   /* ship the image at first use */
#define CV_MOD_OWNED 2u  /* image is our copy: free it with the module */
#define CV_MOD_COPY 4u   /* keep a copy: the caller may free the image */

struct cv_func {
	struct cv_hobj h;
	struct cv_module *mod;
	struct cv_func *next;
	char *name;
	uint32_t nparams;
	uint32_t param_size;
	struct cv_param *params;
	int max_dyn_smem;
	uint32_t gen;          /* mod->gen when bound in the worker */
};

struct cv_memhandle {
	struct cv_hobj h;
	uint64_t size;
	CUmemAllocationProp prop;
	uint32_t maps;
	bool released;   /* cuMemRelease'd; freed with the last unmap */
};

/* A module global: device memory outside the window, owned by a module. */
struct cv_global {
	struct cv_rnode r;
	struct cv_module *mod;
};

/* cuMemAddressReserve ranges and cuMemMap mappings (g.vreserves/vmaps). */
struct cv_vreserve { struct cv_rnode r; };
struct cv_vmap {
	struct cv_rnode r;
	struct cv_memhandle *mh;
};

/* Handle values look like (tag << 48) | (gen << 24) | index. */
uint64_t cv_handle_new(void *obj, enum cv_htype t, uint32_t *id);
void *cv_handle_get(uint64_t h, enum cv_htype t);
void cv_handle_del(uint64_t h);
uint64_t cv_handle_of(const struct cv_hobj *o);
/* Calls fn on every live object of type t (under g.lock). */
void cv_handle_each(enum cv_htype t, void (*fn)(void *obj, void *arg),
		    void *arg);

/* ---- the vGPU connection ---------------------------------------------- */

struct cv_guest {
	pthread_mutex_t lock;        /* tables, allocators, contexts */
	pthread_mutex_t ring_lock;   /* producers */
	int init_result;             /* CUresult of cuInit, -1 before */
	uint8_t *region;
	int memfd;
	int link_fd;
	uint64_t tenant;
	struct cv_region_hdr *hdr;
	struct cv_ring_ctl *ctl;
	struct cv_reply *replies;
	uint32_t *chunk_state;
	struct cv_cb_queue *cbq;
	struct cv_ring ring;
	uint64_t committed;          /* ring tail published so far (atomic) */
	struct cv_devinfo dev;       /* private copy */
	volatile int lost;

	/* reply slots */
	pthread_mutex_t slot_lock;
	pthread_cond_t slot_cond;
	uint64_t slot_used[CV_NREPLY / 64];

	/* staging chunks */
	pthread_mutex_t chunk_lock;
	pthread_cond_t chunk_cond;
	bool chunk_owned[CV_STAGING_CHUNKS];
	uint32_t chunk_next;

	/* allocators */
	struct cv_vaspace dva;       /* device window */
	struct cv_vaspace hva;       /* pinned heap offsets */
	struct cv_rtree allocs;      /* device allocations (cuMemAlloc) */
	struct cv_rtree hallocs;     /* pinned host allocations */
	struct cv_rtree vreserves;   /* cuMemAddressReserve ranges */
	struct cv_rtree vmaps;       /* cuMemMap mappings */
	struct cv_rtree globals;     /* module globals (struct cv_global) */
	struct cv_slab *slabs;       /* small device allocations */
	struct cv_hslab *hslabs;     /* small pinned allocations */
	uint64_t mapped;             /* device bytes mapped or created */

	/* host functions */
	pthread_t cb_thread;
	bool cb_started;
	uint32_t cb_done;

	/* primary context */
	struct cv_ctx *pctx;
	uint32_t pctx_refs;
	unsigned int pctx_flags;

	/* registered host ranges (cuMemHostRegister) */
	struct cv_rtree registered;
};

extern struct cv_guest g;

/* ---- calls to the worker ------------------------------------------------ */

/* True once cuInit has attached; CUresult to return otherwise. */
int cv_g_ready(void);
/* Returns 0 while the vGPU is alive, -ENODEV once it is lost. */
int cv_g_alive(void *unused);
/* Submits an async command (copying len bytes of payload). CUresult. */
int cv_g_submit(uint16_t op, const void *payload, uint32_t len);
/*
 * Submits a command that takes a reply and waits for it. out/outlen may be
 * NULL/0; at most outlen bytes are copied, *got is set to the reply's len
 * when got != NULL. With collect, a deferred error takes precedence over
 * a successful status. Returns the CUresult.
 */
int cv_g_call(uint16_t op, bool collect, const void *payload, uint32_t len,
	      void *out, uint32_t outlen, uint32_t *got);
/* Two-part payload (fixed part + tail such as a name). */
int cv_g_call2(uint16_t op, const void *p1, uint32_t l1, const void *p2,
	       uint32_t l2, void *out, uint32_t outlen);

/* Reserve / commit for commands packed in place (launches). */
void *cv_g_reserve(uint16_t op, uint32_t len, int *err);
void cv_g_commit(void);

/* Staging chunks: acquire one (waiting until it is neither owned nor
 * busy), mark BUSY before naming it in a command. */
int cv_g_chunk_get(uint32_t *idx);
void cv_g_chunk_put(uint32_t idx);
/* Waits until chunk idx is no longer BUSY; 0 DONE, CUresult on failure. */
int cv_g_chunk_wait(uint32_t idx);
static inline uint8_t *cv_g_chunk_ptr(uint32_t idx)
{
	return g.region + CV_STAGING_OFF + (uint64_t)idx * CV_STAGING_CHUNK;
}

/* ---- contexts and streams ---------------------------------------------- */

/* The calling thread's current context, or NULL. */
struct cv_ctx *cv_ctx_current(void);
/* CUresult: ready and a current context exists. */
int cv_ctx_check(void);
/* Resolves a stream handle to a wire id; ptds selects what NULL means. */
int cv_stream_wire(CUstream s, bool ptds, uint32_t *id);

/* Frees a context's resources (streams, events, modules, memory). */
void cv_ctx_release_objects(struct cv_ctx *c);

/* ---- modules ------------------------------------------------------------ */

/*
 * Opens a module from an image (cubin, fatbin or its wrapper, PTX) or a
 * file of one. Without CV_MOD_LAZY the image is shipped and loaded now;
 * with it, at the first lookup of a function or global (libraries). With
 * CV_MOD_OWNED the module takes ownership of img (malloc'ed); a lazy
 * module whose image is not owned relies on the caller keeping it
 * (CU_LIBRARY_BINARY_IS_PRESERVED), else it is copied.
 */
CUresult cv_module_open(CUmodule *out, const void *img, unsigned int flags);
CUresult cv_module_open_file(CUmodule *out, const char *fname,
			     unsigned int flags);
/* Ships and loads a lazy module if it is not yet; CUresult. */
CUresult cv_module_ensure(struct cv_module *m);
/* Unloads the libraries from the worker (primary context reset): they
 * load again, with fresh globals, at their next use. */
void cv_module_reset_libraries(void);
/* cuModuleGetFunction / cuModuleGetGlobal without the context check
 * (the library API needs no current context). */
CUresult cv_func_lookup(CUfunction *out, CUmodule m, const char *name);
CUresult cv_global_lookup(CUdeviceptr *dptr, size_t *bytes, CUmodule m,
			  const char *name);

/* ---- memory helpers used by copies ---------------------------------- */

enum cv_mkind { CV_M_HOST = 0, CV_M_PINNED = 1, CV_M_DEVICE = 2 };
/* Classifies [p, p + len): device allocation, pinned heap or other host
 * memory. Returns CUDA_ERROR_INVALID_VALUE for a device pointer that
 * overruns its allocation. */
int cv_mem_classify(uint64_t p, uint64_t len, enum cv_mkind *kind);
/* Frees all device allocations of a context. */
void cv_mem_release_ctx(struct cv_ctx *c);

/* Error code for a negative errno from the internals. */
int cv_err_to_cu(int err);

/* Logs once per name, returns CUDA_ERROR_NOT_SUPPORTED. */
int cv_guest_unsupported(const char *name);

#endif

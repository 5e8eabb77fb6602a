/* SPDX-License-Identifier: MIT */
/*
 * The state of one tenant's vGPU inside its worker, and the decoder that
 * executes ring commands against a backend.
 *
 * Threads: the consumer thread owns everything here except what is
 * marked otherwise; the completion thread touches only the completion
 * queue; the control thread reads counters.
 */
#ifndef CV_VGPU_H
#define CV_VGPU_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "../core/proto.h"
#include "../core/ring.h"
#include "backend.h"
#include "tables.h"

/*
 * A module image received from the guest, kept while a module loaded from
 * it lives, so that the guest ships identical images once. Each module is
 * loaded on its own (it has its own globals, as CUDA requires).
 */
struct cv_wimage {
	struct cv_wimage *next;
	uint8_t hash[16];
	uint8_t *data;
	uint64_t len;
	uint32_t refs;
};

/* Device memory saved by an eviction: one buffer per MEM_MAP range. */
struct cv_saved {
	uint64_t va;
	uint64_t size;
	void *buf;          /* NULL once restored */
	struct cv_wmap *map;
};

/*
 * A global the guest asked for: restored by name. dptr is the address the
 * guest knows; real is where it is in this worker's context (they differ
 * after a restore: the driver places module memory anew in each process).
 */
struct cv_wglobal {
	char *name;
	uint64_t dptr;
	uint64_t real;
	uint64_t size;
};

/* A restored global the guest knows at guest, now at real (size bytes):
 * the decoder rebases device addresses of copies, memsets and kernel
 * arguments that fall inside it. */
struct cv_wreloc {
	uint64_t guest, real, size;
};

struct cv_wmodule {
	cv_bobj obj;
	struct cv_wimage *img;
	uint64_t seq;               /* load order, kept by a restore */
	struct cv_rangeset globals; /* this module's globals */
	struct cv_wglobal *gl;      /* the same, with their names */
	uint32_t ngl;
};

/* Function attributes below this are remembered when set (the CUDA ones
 * that can be set are all below 16). */
#define CV_FATTR_MAX 16u

struct cv_wfunc {
	cv_bobj obj;
	uint32_t module;
	char *name;
	struct cv_fparams fp;
	uint32_t attr_set;          /* bit i: attr_val[i] was set */
	int32_t attr_val[CV_FATTR_MAX];
	int32_t cache;              /* cuFuncSetCacheConfig, -1 unset */
};

/* A stream or an event and how it was made. */
struct cv_wobj {
	cv_bobj obj;
	uint32_t flags;
	int32_t prio;
};

/* Context limits below this are remembered when set. */
#define CV_LIMIT_MAX 16u

struct cv_wvmm {
	cv_bobj mem;
	uint64_t size;
	uint32_t maps;     /* live mappings of it */
	bool released;     /* the guest released its handle */
};

/* A device mapping (owner of a range in dev). */
struct cv_wmap {
	cv_bobj mem;       /* MEM_MAP: owned; VMM_MAP: borrowed */
	uint32_t vmm;      /* 0 for MEM_MAP */
	uint64_t size;
	uint64_t offset;   /* VMM_MAP: where in the handle the range starts */
};

/* Completion queue entry: when marker completes, set chunk's state. */
struct cv_compl {
	cv_bobj marker;
	uint32_t chunk;
	int status;
};

#define CV_COMPL_MAX 64u

struct cv_vgpu {
	const struct cv_backend_ops *ops;
	struct cv_backend *b;
	uint8_t *region;            /* CV_REGION_ADDR */
	int memfd;                  /* the region's memfd */
	struct cv_region_hdr *hdr;
	struct cv_ring_ctl *ctl;
	uint64_t tenant;
	struct cv_devinfo devinfo;  /* what the guest is told */
	struct cv_reply *replies;
	uint32_t *chunk_state;
	struct cv_cb_queue *cbq;
	struct cv_ring ring;

	uint64_t quota;
	uint64_t used;              /* device bytes created (alloc + vmm) */
	uint64_t heap_mapped;       /* heap bytes mapped */
	uint64_t heap_limit;        /* max heap bytes */
	int32_t async_err;          /* first deferred error */

	struct cv_htab streams, events, modules, funcs, vmms;
	struct cv_rangeset dev;     /* mapped device memory */
	struct cv_rangeset heap;    /* mapped heap, as region addresses */
	/* A live migration reads dev, vmms and heap, and device memory,
	 * from its own threads while the consumer runs: the consumer
	 * changes them (and unmaps memory) only under the write lock. */
	pthread_rwlock_t mem_lock;
	uint64_t layout_gen;        /* + 1 at each change (layout_lock) */
	/* A live migration has streams of its own busy (atomic): the
	 * guest's cuCtxSynchronize then waits for the guest's streams
	 * only, not for the migration's copies. */
	int mig_busy;

	struct cv_wimage *images;   /* loaded images, by content */
	uint64_t module_seq;        /* modules loaded so far */
	uint32_t limit_set;         /* bit i: limit_val[i] was set */
	uint64_t limit_val[CV_LIMIT_MAX];
	uint8_t token[16];          /* names this tenant's images */
	struct cv_wreloc *reloc;    /* moved globals, after a restore */
	uint32_t nreloc;
	uint8_t *blob;              /* module image being received */
	uint64_t blob_total, blob_len;

	/* completion thread */
	pthread_t compl_thread;
	pthread_mutex_t compl_lock;
	pthread_cond_t compl_cond;   /* work queued or stop */
	pthread_cond_t compl_space;  /* a slot freed */
	struct cv_compl compl[CV_COMPL_MAX];
	uint32_t compl_head, compl_tail;
	bool compl_stop;
	bool compl_started;
	cv_bobj markers[CV_COMPL_MAX * 2]; /* idle markers */
	uint32_t nmarkers;          /* guarded by compl_lock */

	/* host-function queue (driver callback threads) */
	pthread_mutex_t cb_lock;
	uint32_t cb_produced;       /* entries posted, under cb_lock */
	volatile int guest_gone;    /* set by the control thread */

	/* revocation (worker/revoke.c): the control side sets rev_stop,
	 * the consumer parks between commands; all under rev_lock */
	pthread_mutex_t rev_lock;
	pthread_cond_t rev_cond;
	bool rev_stop;              /* a suspend is wanted */
	bool parked;                /* the consumer is parked */
	bool evicted;               /* device memory lives in saved[] */
	struct cv_saved *saved;
	uint32_t nsaved;

	/* progress of a long operation (checkpoint, restore, evict),
	 * read by the control thread */
	uint64_t op_done;           /* atomic */
	uint64_t op_total;

	/* statistics, read by the control thread */
	volatile uint64_t ncmds;
	uint64_t done_head;         /* ring bytes executed (atomic) */
	int cons_idle;              /* consumer waits for work (atomic) */
	uint32_t cb_pending;        /* host functions in the guest (atomic) */
};

/* Takes mem_lock to change dev, vmms or heap, and counts the change (a
 * migration that shares memory redoes the layout if it changed). */
static inline void cv_vgpu_layout_lock(struct cv_vgpu *v)
{
	pthread_rwlock_wrlock(&v->mem_lock);
	v->layout_gen++;
}

/*
 * Creates the shared region: a memfd sealed against shrinking (so a guest
 * can never make our mappings fault), its fixed part mapped at
 * CV_REGION_ADDR inside a reservation of the whole span. Must run before
 * the driver is loaded, so the driver leaves these addresses alone.
 * 0 or -errno.
 */
int cv_region_create(int *fd, uint8_t **region);

/*
 * Sets up the vGPU over an already mapped region (hdr..staging mapped at
 * region) and an opened backend: reserves the device window, registers
 * the staging area, fills the header. 0 or -errno (the message is logged).
 */
int cv_vgpu_init(struct cv_vgpu *v, const struct cv_backend_ops *ops,
		 struct cv_backend *b, uint8_t *region, int memfd,
		 uint64_t quota, uint64_t tenant, const struct cv_devinfo *dev,
		 bool adopt);
/* Writes the region's header (device, addresses) and marks the vGPU
 * running; init does it unless adopt (a restore, after it succeeded). */
void cv_vgpu_publish(struct cv_vgpu *v);
void cv_vgpu_exit(struct cv_vgpu *v);

/*
 * Executes one command whose header and payload have been copied out of
 * the ring. Never trusts either. Returns 0, or -EPROTO when the guest
 * broke the protocol so badly that the vGPU cannot go on.
 */
int cv_vgpu_exec(struct cv_vgpu *v, const struct cv_cmd_hdr *hdr,
		 const void *payload);

/*
 * Revocation, called from a control-side thread (never the consumer).
 * suspend returns once the consumer is parked and the GPU drained;
 * evict (of a suspended vGPU) moves device memory to host memory and
 * releases it; resume restores evicted memory and lets the consumer go.
 * 0 or -errno; *bytes is the device memory moved.
 */
int cv_vgpu_suspend(struct cv_vgpu *v);
int cv_vgpu_evict(struct cv_vgpu *v, uint64_t *bytes);
/*
 * Memory made with the VMM API (cuMemCreate) is saved through its
 * mappings, so every byte of every handle must be mapped somewhere: 0, or
 * -EOPNOTSUPP after logging each handle that is not ("not <op>").
 */
int cv_vgpu_vmm_covered(struct cv_vgpu *v, const char *op);
int cv_vgpu_resume(struct cv_vgpu *v, uint64_t *bytes);
/* Consumer side: parks until resumed. */
void cv_vgpu_park(struct cv_vgpu *v);

/* The backend object of stream or event id (tables of struct cv_wobj). */
static inline cv_bobj cv_vgpu_obj(const struct cv_htab *t, uint32_t id)
{
	const struct cv_wobj *w = cv_htab_get(t, id);

	return w ? w->obj : NULL;
}

/*
 * Checkpoint and restore (worker/ckpt.c). checkpoint writes the image of a
 * suspended vGPU to fd (zstd level, 0 for none); with release, its device
 * memory is also given back (the caller then ends the worker). restore
 * rebuilds a vGPU just set up over the guest's region from an image,
 * before it takes commands; on failure nothing of the tenant was touched
 * and err says why. 0 or -errno.
 */
#define CV_VGPU_NO_MEM 0x1u       /* checkpoint: no device memory */
#define CV_VGPU_MEM_IN_PLACE 0x2u /* restore: device memory is mapped and
				     filled already (a migration's) */
int cv_vgpu_checkpoint(struct cv_vgpu *v, int fd, int level, unsigned flags,
		       uint64_t *bytes);
int cv_vgpu_restore(struct cv_vgpu *v, int fd, unsigned flags, uint64_t *bytes,
		    char *err, size_t errlen);

/* What the worker tells the guest over the link (control thread). */
void cv_vgpu_link_status(struct cv_vgpu *v, struct cv_link_status *st);

/* Consumes the ring until the guest is gone or the ring is broken. */
int cv_vgpu_run(struct cv_vgpu *v);

#endif

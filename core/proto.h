/* SPDX-License-Identifier: MIT */
/*
 * The guest <-> worker wire format: the layout of the shared region and the
 * commands of the ring. Every field is fixed-width little-endian; sizes and
 * offsets are pinned with _Static_assert.
 *
 * Trust: the worker treats everything in the region as hostile. It reads an
 * index once, copies a command out before it looks at it, checks the
 * command's length exactly against its opcode, and range-checks every
 * device pointer, host pointer, handle id and size (see worker/decode.c).
 * The guest trusts the worker.
 *
 * Region layout (offsets from the region base, which is CV_REGION_ADDR in
 * every worker and, when that address is free, in the guest too):
 *
 *   0                      struct cv_region_hdr (read-only for the guest)
 *   CV_RING_CTL_OFF        struct cv_ring_ctl   (indices and futex words)
 *   CV_CB_OFF              struct cv_cb_queue   (host-function callbacks)
 *   CV_CHUNK_STATE_OFF     u32 chunk_state[CV_STAGING_CHUNKS]
 *   CV_REPLY_OFF           struct cv_reply[CV_NREPLY]
 *   CV_RING_OFF            command ring, CV_RING_SIZE bytes
 *   CV_STAGING_OFF         staging, CV_STAGING_CHUNKS x CV_STAGING_CHUNK
 *   CV_HEAP_OFF            pinned host heap, grown on demand up to
 *                          CV_HEAP_MAX (HEAP_MAP / HEAP_UNMAP)
 *
 * Everything below CV_HEAP_OFF exists from attach on. The staging area and
 * the heap are registered with the driver by the worker, so copies from or
 * to them are DMA without a bounce.
 */
#ifndef CV_PROTO_H
#define CV_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define CV_PROTO_MAGIC 0x31564355u /* "UCV1" */
#define CV_PROTO_VERSION 1u

/* Fixed addresses, identical in every worker (DESIGN.md decisions 3, 5). */
#define CV_REGION_ADDR 0x3f0000000000ull
#define CV_WINDOW_ADDR 0x400000000000ull
#define CV_WINDOW_SIZE 0x010000000000ull /* 1 TiB of device VA per tenant */
#define CV_GRANULE (2ull << 20)          /* 2 MiB */

#define CV_PAGE 4096ull
#define CV_RING_CTL_OFF 0x1000ull
#define CV_CB_OFF 0x2000ull
#define CV_CHUNK_STATE_OFF 0x3000ull
#define CV_REPLY_OFF 0x4000ull
#define CV_NREPLY 128u
#define CV_REPLY_SIZE 4096u
#define CV_REPLY_DATA (CV_REPLY_SIZE - 64u)
#define CV_RING_OFF (CV_REPLY_OFF + (uint64_t)CV_NREPLY * CV_REPLY_SIZE)
#define CV_RING_SIZE (4ull << 20)
#define CV_STAGING_OFF (CV_RING_OFF + CV_RING_SIZE)
#define CV_STAGING_CHUNKS 8u
#define CV_STAGING_CHUNK (4ull << 20)
#define CV_HEAP_OFF (CV_STAGING_OFF + CV_STAGING_CHUNKS * CV_STAGING_CHUNK)
#define CV_HEAP_MAX (256ull << 30) /* VA reserved for the pinned heap */
#define CV_REGION_SPAN (CV_HEAP_OFF + CV_HEAP_MAX)

/* Largest command payload (kernel parameters may be 32764 bytes). */
#define CV_CMD_MAX_PAYLOAD (64u << 10)
#define CV_NO_REPLY 0xffffffffu

#define CV_DEV_NAME_LEN 256
#define CV_DEV_NATTR 256 /* > CU_DEVICE_ATTRIBUTE_MAX (148 in CUDA 13.0) */

/* What the guest's virtual device looks like; filled by the worker. */
struct cv_devinfo {
	char name[CV_DEV_NAME_LEN];
	uint8_t uuid[16];
	uint64_t total_mem; /* the tenant's quota */
	int32_t attr[CV_DEV_NATTR]; /* indexed by CUdevice_attribute */
	int32_t pci_domain, pci_bus, pci_device;
	int32_t cc_major, cc_minor;
	uint32_t backend; /* enum cv_backend_kind */
	uint32_t driver_version; /* what cuDriverGetVersion answers */
	uint8_t luid[8];
	int32_t prio_least;    /* cuCtxGetStreamPriorityRange */
	int32_t prio_greatest;
};
_Static_assert(sizeof(struct cv_devinfo) == 1352, "devinfo size");

enum cv_backend_kind { CV_BACKEND_CUDA = 1, CV_BACKEND_HOST = 2 };

struct cv_region_hdr {
	uint32_t magic;   /* CV_PROTO_MAGIC */
	uint32_t version; /* CV_PROTO_VERSION */
	uint64_t tenant_id;
	uint64_t region_addr;  /* CV_REGION_ADDR */
	uint64_t window_addr;  /* device VA window of this tenant */
	uint64_t window_size;
	uint64_t quota;        /* bytes of device memory the tenant may map */
	uint32_t worker_pid;
	uint32_t pad0;
	uint64_t reserved[8];
	struct cv_devinfo dev;
};
_Static_assert(sizeof(struct cv_region_hdr) <= CV_RING_CTL_OFF, "hdr fits");

/*
 * Ring control. Producer-written and consumer-written words sit on separate
 * cache lines.
 *
 * Sleep protocol (both directions use the same Dekker pattern):
 *   sleeper:  seq = doorbell; sleeping = 1; full fence;
 *             re-check the condition; futex_wait(&doorbell, seq); sleeping = 0
 *   waker:    publish the change (store-release); full fence;
 *             if (sleeping) { doorbell++; futex_wake(&doorbell) }
 */
struct cv_ring_ctl {
	/* written by the guest (producer) */
	uint64_t tail; /* bytes produced, monotonic; ring offset = tail % size */
	uint32_t space_sleeping; /* a producer sleeps on space_doorbell */
	uint32_t pad0;
	uint8_t pad1[48];
	/* written by the worker (consumer) */
	uint64_t head; /* bytes consumed, monotonic */
	uint32_t cons_sleeping; /* the worker sleeps on cons_doorbell */
	uint32_t pad2;
	uint8_t pad3[48];
	/* futex words */
	uint32_t cons_doorbell; /* producer bumps to wake the worker */
	uint32_t pad4[15];
	uint32_t space_doorbell; /* worker bumps to wake a producer on space */
	uint32_t pad5[15];
	/* the worker's state as the guest should see it (enum cv_vgpu_state) */
	uint32_t state;
	uint32_t lost; /* nonzero once the worker has given up on the guest */
	uint32_t pad6[14];
};
_Static_assert(offsetof(struct cv_ring_ctl, head) == 64, "ctl head line");
_Static_assert(offsetof(struct cv_ring_ctl, cons_doorbell) == 128, "bell");
_Static_assert(offsetof(struct cv_ring_ctl, space_doorbell) == 192, "bell");
_Static_assert(sizeof(struct cv_ring_ctl) == 320, "ctl size");

/* Reply slot states (the futex word). */
enum { CV_REPLY_FREE = 0, CV_REPLY_PENDING = 1, CV_REPLY_DONE = 2 };

/*
 * A reply slot. The guest owns the slot from the moment it sets state to
 * PENDING and pushes a command naming it, until it reads the reply. The
 * worker writes status, async_err, len and data, then store-releases
 * state = DONE, then (full fence) wakes the guest if sleeping is set.
 */
struct cv_reply {
	uint32_t state;
	uint32_t sleeping;
	int32_t status;    /* CUresult of the call */
	int32_t async_err; /* first deferred error, when the command asked */
	uint32_t len;      /* bytes valid in data */
	uint32_t pad[11];
	uint8_t data[CV_REPLY_DATA];
};
_Static_assert(sizeof(struct cv_reply) == CV_REPLY_SIZE, "reply size");

/*
 * Staging chunk states (u32 futex words at CV_CHUNK_STATE_OFF). The guest
 * sets BUSY before naming a chunk in a command; the worker sets DONE once
 * the bytes have left (H2D) or arrived in (D2H) the chunk, or FAILED, then
 * wakes with FUTEX_WAKE (the guest always wakes-all: it is a broadcast).
 */
enum { CV_CHUNK_IDLE = 0, CV_CHUNK_BUSY = 1, CV_CHUNK_DONE = 2,
       CV_CHUNK_FAILED = 3 };

/*
 * Host-function callbacks (cuLaunchHostFunc, cuStreamAddCallback) must run
 * in the guest. When a stream reaches one, the worker writes the entry at
 * index produced % CV_CB_SLOTS, store-releases produced, wakes the guest's
 * callback thread (futex on produced_bell), and holds the stream until the
 * guest has advanced done past the entry (futex on done_bell, with a
 * timeout and a liveness check).
 */
#define CV_CB_SLOTS 64u
struct cv_cb_entry {
	uint64_t fn;       /* guest function pointer (opaque to the worker) */
	uint64_t userdata;
	int32_t status;    /* CUresult passed to cuStreamAddCallback callbacks */
	uint32_t kind;     /* 0 host func, 1 stream callback */
	uint64_t stream;   /* guest stream handle for stream callbacks */
};
struct cv_cb_queue {
	uint32_t produced;      /* written by the worker */
	uint32_t produced_bell; /* futex word, bumped by the worker */
	uint32_t pad0[14];
	uint32_t done;          /* written by the guest */
	uint32_t done_bell;     /* futex word, bumped by the guest */
	uint32_t pad1[14];
	struct cv_cb_entry e[CV_CB_SLOTS];
};
_Static_assert(sizeof(struct cv_cb_queue) <= CV_PAGE, "cb page");

/*
 * Command record in the ring: a header and a payload, the record padded to
 * a multiple of 16 bytes. A record never wraps: a producer that lacks room
 * before the ring's end writes a CV_OP_PAD record covering the rest.
 */
struct cv_cmd_hdr {
	uint16_t op;
	uint16_t flags;   /* CV_CMDF_* */
	uint32_t len;     /* payload bytes, <= CV_CMD_MAX_PAYLOAD */
	uint32_t reply;   /* reply slot index or CV_NO_REPLY */
	uint32_t pad;
};
_Static_assert(sizeof(struct cv_cmd_hdr) == 16, "cmd hdr");
#define CV_CMD_ALIGN 16u

/* Move the first deferred error into the reply's async_err and clear it. */
#define CV_CMDF_COLLECT 0x1u

/*
 * Opcodes. "reply" means the command must name a reply slot, "async" that
 * it must not (the worker refuses a wrong combination). Errors of async
 * commands are deferred: the worker remembers the first one and hands it
 * over in async_err of the next command flagged CV_CMDF_COLLECT.
 *
 * Streams are u32 ids chosen by the guest; 0 is the legacy default stream.
 * Events, modules, functions and VMM handles likewise (0 is never valid).
 * Device pointers must lie in memory mapped by MEM_MAP or VMM_MAP; host
 * pointers must lie in the staging area or the mapped part of the heap.
 */
enum cv_op {
	CV_OP_PAD = 0,          /* filler to the ring's end; no payload used */
	CV_OP_NOP,              /* reply; answers SUCCESS */
	CV_OP_MEM_GET_INFO,     /* reply -> cv_mem_info_r */
	CV_OP_MEM_MAP,          /* reply; cv_mem_range: back with new memory */
	CV_OP_MEM_UNMAP,        /* async; cv_mem_range: release (syncs first) */
	CV_OP_MEMCPY,           /* async or reply; cv_memcpy */
	CV_OP_MEMCPY_2D,        /* async or reply; cv_memcpy2d */
	CV_OP_MEMSET,           /* async or reply; cv_memset */
	CV_OP_HEAP_MAP,         /* reply; cv_heap_range: map+register heap */
	CV_OP_HEAP_UNMAP,       /* reply; cv_heap_range */
	CV_OP_BLOB_PUT,         /* async; cv_blob_put: append to the blob */
	CV_OP_MODULE_LOAD,      /* reply; cv_module_load (image = the blob) */
	CV_OP_MODULE_UNLOAD,    /* async; cv_id */
	CV_OP_MODULE_GET_FUNCTION, /* reply; cv_get_function -> cv_function_r */
	CV_OP_MODULE_GET_GLOBAL,   /* reply; cv_get_global -> cv_global_r */
	CV_OP_FUNC_GET_ATTR,    /* reply; cv_func_attr -> cv_i64_r */
	CV_OP_FUNC_SET_ATTR,    /* reply; cv_func_attr */
	CV_OP_FUNC_SET_CACHE,   /* async; cv_func_attr (attrib unused) */
	CV_OP_LAUNCH,           /* async; cv_launch + attrs + params */
	CV_OP_STREAM_CREATE,    /* reply; cv_stream_create */
	CV_OP_STREAM_DESTROY,   /* async; cv_id */
	CV_OP_STREAM_SYNC,      /* reply; cv_id */
	CV_OP_STREAM_QUERY,     /* reply; cv_id; status NOT_READY or SUCCESS */
	CV_OP_STREAM_WAIT_EVENT,/* async; cv_stream_event */
	CV_OP_EVENT_CREATE,     /* reply; cv_event_create */
	CV_OP_EVENT_DESTROY,    /* async; cv_id */
	CV_OP_EVENT_RECORD,     /* async; cv_stream_event */
	CV_OP_EVENT_SYNC,       /* reply; cv_id */
	CV_OP_EVENT_QUERY,      /* reply; cv_id */
	CV_OP_EVENT_ELAPSED,    /* reply; cv_event_pair -> cv_f32_r */
	CV_OP_CTX_SYNC,         /* reply; no payload */
	CV_OP_CTX_SET_LIMIT,    /* reply; cv_limit */
	CV_OP_CTX_GET_LIMIT,    /* reply; cv_limit -> cv_i64_r */
	CV_OP_HOST_FUNC,        /* async; cv_host_func */
	CV_OP_OCCUPANCY,        /* reply; cv_occupancy -> cv_occupancy_r */
	CV_OP_VMM_CREATE,       /* reply; cv_vmm_create */
	CV_OP_VMM_RELEASE,      /* async; cv_id */
	CV_OP_VMM_MAP,          /* reply; cv_vmm_map */
	CV_OP_VMM_UNMAP,        /* reply; cv_mem_range */
	CV_OP_MODULE_LOAD_CACHED, /* reply; cv_module_cached: bind id to an
				   * already loaded image of that content
				   * hash, or CUDA_ERROR_NOT_FOUND */
	CV_OP_OCC_CLUSTER,      /* reply; cv_occ_cluster + attrs -> cv_i64_r */
	CV_OP_MODULE_FUNC_NAME, /* reply; cv_module_func -> cv_module_func_r */
	CV_OP_COUNT
};

struct cv_id { uint32_t id; uint32_t pad; };
_Static_assert(sizeof(struct cv_id) == 8, "");

struct cv_mem_range { uint64_t va; uint64_t size; };
_Static_assert(sizeof(struct cv_mem_range) == 16, "");

struct cv_mem_info_r { uint64_t free; uint64_t total; uint64_t used; };

/* kind of a copy, from the point of view of where each side lives */
enum cv_copy_kind {
	CV_COPY_HTOD = 1, /* src in the region, dst on the device */
	CV_COPY_DTOH = 2, /* src on the device, dst in the region */
	CV_COPY_DTOD = 3,
};

/*
 * One copy on a stream. signal is 0 or 1 + a staging chunk index: once the
 * copy has completed the worker sets that chunk's state to DONE (FAILED if
 * the copy could not be issued or failed).
 */
struct cv_memcpy {
	uint64_t dst;
	uint64_t src;
	uint64_t len;
	uint32_t kind;   /* enum cv_copy_kind */
	uint32_t stream;
	uint32_t signal;
	uint32_t pad;
};
_Static_assert(sizeof(struct cv_memcpy) == 40, "");

/* A 2D copy; host sides are region addresses, as in cv_memcpy. */
struct cv_memcpy2d {
	uint64_t dst, dst_pitch;
	uint64_t src, src_pitch;
	uint64_t width;  /* bytes per row */
	uint64_t height; /* rows */
	uint32_t kind;
	uint32_t stream;
	uint32_t signal;
	uint32_t pad;
};
_Static_assert(sizeof(struct cv_memcpy2d) == 64, "");

/* cuMemsetD{8,16,32} and the 2D forms (height 1, pitch 0 for 1D). */
struct cv_memset {
	uint64_t dst;
	uint64_t pitch;  /* bytes between rows (2D); ignored when height == 1 */
	uint64_t width;  /* elements per row */
	uint64_t height;
	uint32_t value;
	uint32_t elem;   /* 1, 2 or 4 */
	uint32_t stream;
	uint32_t pad;
};
_Static_assert(sizeof(struct cv_memset) == 48, "");

/* [off, off + len) of the heap, relative to CV_HEAP_OFF, page aligned. */
struct cv_heap_range { uint64_t off; uint64_t len; };

/*
 * Append len bytes at chunk + 0 of staging chunk `chunk` to the worker's
 * blob at offset `off`. off == 0 starts a new blob of `total` bytes
 * (total <= CV_BLOB_MAX). The worker signals the chunk DONE once copied.
 */
#define CV_BLOB_MAX (1ull << 30)
struct cv_blob_put {
	uint64_t off;
	uint64_t len;
	uint64_t total;
	uint32_t chunk;
	uint32_t pad;
};
_Static_assert(sizeof(struct cv_blob_put) == 32, "");

/*
 * Load the complete blob as module `id`. The worker hashes the image
 * itself (core/hash.h) and loads each distinct image once: a second
 * module with the same content shares the loaded one.
 */
struct cv_module_load { uint32_t id; uint32_t flags; uint64_t size; };
_Static_assert(sizeof(struct cv_module_load) == 16, "");

/* Bind module `id` to the image of content hash `hash` if the worker has
 * one loaded (so the guest need not ship it again). */
struct cv_module_cached { uint32_t id; uint32_t pad; uint8_t hash[16]; };
_Static_assert(sizeof(struct cv_module_cached) == 24, "");

/*
 * Look up a function by name (name_len bytes follow, no NUL, <= 1024)
 * and bind it to func_id. The reply lists its parameters from index
 * `first` on, as many as fit; the guest asks again for the rest.
 */
#define CV_NAME_MAX 1024u
struct cv_get_function {
	uint32_t module;
	uint32_t func_id;  /* 0: do not bind, only list parameters of func */
	uint32_t func;     /* with func_id == 0: an already bound function */
	uint32_t first;
	uint32_t name_len;
	uint32_t pad;
};
_Static_assert(sizeof(struct cv_get_function) == 24, "");
struct cv_param { uint32_t offset; uint32_t size; };
struct cv_function_r {
	uint32_t nparams;   /* total */
	uint32_t count;     /* entries in this reply */
	uint32_t param_size;/* bytes of the packed parameter buffer */
	uint32_t pad;
	struct cv_param p[]; /* p[0] is parameter `first` */
};
#define CV_FUNC_PARAMS_PER_REPLY \
	((CV_REPLY_DATA - sizeof(struct cv_function_r)) / sizeof(struct cv_param))

struct cv_get_global {
	uint32_t module;
	uint32_t name_len;  /* name follows */
};
struct cv_global_r { uint64_t dptr; uint64_t size; };

/* The number of functions of a module, and the name of function `index`
 * (none when index >= count). */
struct cv_module_func { uint32_t module; uint32_t index; };
struct cv_module_func_r {
	uint32_t count;
	uint32_t len;   /* name bytes that follow, no NUL, <= CV_NAME_MAX */
	char name[];
};

struct cv_func_attr { uint32_t func; int32_t attrib; int64_t value; };
_Static_assert(sizeof(struct cv_func_attr) == 16, "");
struct cv_i64_r { int64_t value; };
struct cv_f32_r { float value; uint32_t pad; };

/*
 * A launch. After the fixed part come nattrs cv_launch_attr, then
 * param_size bytes of packed parameters (laid out as the function's
 * parameter list says). The payload length must be exactly
 * sizeof(cv_launch) + nattrs * sizeof(cv_launch_attr) + param_size.
 */
#define CV_LAUNCH_MAX_ATTRS 16u
#define CV_LAUNCH_MAX_PARAMS 32764u
struct cv_launch {
	uint32_t func;
	uint32_t stream;
	uint32_t grid[3];
	uint32_t block[3];
	uint32_t shmem;
	uint32_t nattrs;
	uint32_t param_size;
	uint32_t pad;
};
_Static_assert(sizeof(struct cv_launch) == 48, "");
struct cv_launch_attr {
	uint32_t id;      /* CUlaunchAttributeID */
	uint32_t pad;
	uint8_t value[64];/* CUlaunchAttributeValue, as the guest got it */
};
_Static_assert(sizeof(struct cv_launch_attr) == 72, "");

struct cv_stream_create { uint32_t id; uint32_t flags; int32_t priority;
			  uint32_t pad; };
struct cv_stream_event { uint32_t stream; uint32_t event; uint32_t flags;
			 uint32_t pad; };
struct cv_event_create { uint32_t id; uint32_t flags; };
struct cv_event_pair { uint32_t start; uint32_t end; };
struct cv_limit { uint32_t limit; uint32_t pad; uint64_t value; };

struct cv_host_func {
	uint64_t fn;
	uint64_t userdata;
	uint64_t guest_stream; /* handed back to stream callbacks */
	uint32_t stream;
	uint32_t kind;         /* 0 host func, 1 stream callback */
};
_Static_assert(sizeof(struct cv_host_func) == 32, "");

enum cv_occ_kind {
	CV_OCC_ACTIVE_BLOCKS = 1, /* in: block, smem, flags; out: value */
	CV_OCC_AVAIL_SMEM = 2,    /* in: nblocks (in value), block; out: value */
	CV_OCC_POTENTIAL = 3,     /* in: smem, limit, flags; out: grid, block */
};
struct cv_occupancy {
	uint32_t func;
	uint32_t kind;
	int32_t block;
	int32_t limit;
	uint64_t smem;
	uint32_t flags;
	int32_t nblocks;
};
_Static_assert(sizeof(struct cv_occupancy) == 32, "");
struct cv_occupancy_r { int64_t value; int32_t grid; int32_t block; };

/* Cluster occupancy of a launch configuration: nattrs cv_launch_attr
 * follow (as in cv_launch). */
enum cv_occ_cluster_kind {
	CV_OCC_ACTIVE_CLUSTERS = 1,   /* cuOccupancyMaxActiveClusters */
	CV_OCC_CLUSTER_SIZE = 2,      /* cuOccupancyMaxPotentialClusterSize */
};
struct cv_occ_cluster {
	uint32_t func;
	uint32_t kind;
	uint32_t grid[3];
	uint32_t block[3];
	uint32_t shmem;
	uint32_t nattrs;
};
_Static_assert(sizeof(struct cv_occ_cluster) == 40, "");

struct cv_vmm_create { uint32_t id; uint32_t pad; uint64_t size; };
struct cv_vmm_map {
	uint64_t va; uint64_t size; uint64_t offset; uint32_t handle;
	uint32_t pad;
};
_Static_assert(sizeof(struct cv_vmm_map) == 32, "");

/*
 * The link socket (AF_UNIX SOCK_SEQPACKET between guest and worker) is the
 * trusted side channel: the guest's death closes it, and the guest can ask
 * over it whether the worker still has anything to do. A guest that waits
 * long for the worker sends one byte; the worker answers with this. If
 * the worker is idle and has consumed everything the guest committed,
 * what the guest waits for will never come: its view of the region was
 * corrupted (by itself), and the vGPU is unusable.
 */
struct cv_link_status {
	uint64_t head;   /* ring bytes consumed and executed */
	uint32_t idle;   /* nothing queued, executing or in flight */
	uint32_t pad;
};
_Static_assert(sizeof(struct cv_link_status) == 16, "link status");

/* vGPU states as shown to the guest and to `cuvisor ps` */
enum cv_vgpu_state {
	CV_STATE_STARTING = 0,
	CV_STATE_RUNNING = 1,
	CV_STATE_SUSPENDED = 2,
	CV_STATE_EVICTED = 3,
	CV_STATE_LOST = 4,
	/* checkpointed with --stop: device state only in the image, the
	 * worker a holder of the guest's region and link until a restore */
	CV_STATE_STOPPED = 5,
	CV_STATE_MAX = CV_STATE_STOPPED,
};

/*
 * Checkpoint images (docs/image-format.md): the identity block of the
 * image header, which the daemon reads to find the tenant an image is
 * for, and the section types of a vGPU image.
 */
#define CV_CKPT_KIND 0x55504756u /* "VGPU" */

struct cv_ckpt_ident {
	uint32_t kind;        /* CV_CKPT_KIND */
	uint32_t proto;       /* CV_PROTO_VERSION of the worker */
	uint64_t tenant_id;
	uint8_t token[16];    /* the tenant's, from the daemon */
	uint64_t ring_head;   /* commands executed before the image */
	uint64_t mem_bytes;   /* device memory in the image */
	uint32_t backend;     /* enum cv_backend_kind */
	uint16_t cc_major, cc_minor;
	uint64_t reserved;    /* 0 */
};
_Static_assert(sizeof(struct cv_ckpt_ident) == 64, "ident fits the header");

enum cv_ckpt_section {
	CV_SEC_META = 1,      /* quota, heap and device ranges, limits */
	CV_SEC_OBJECTS = 2,   /* modules, functions, globals, streams, events */
	CV_SEC_MODIMG = 3,    /* a module image (aux: its index), in parts */
	CV_SEC_MEM = 4,       /* device memory (aux: its address) */
	CV_SEC_GLOBAL = 5,    /* a module global's bytes (aux: its address) */
};

#endif

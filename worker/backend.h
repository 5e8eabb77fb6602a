/* SPDX-License-Identifier: MIT */
/*
 * The worker's device backends. The decoder (decode.c) validates every
 * command before it calls a backend, so backends may assume: handles are
 * live objects they created, device ranges lie in memory they mapped, host
 * ranges lie in memory registered with host_register, sizes are sane.
 *
 * Every operation returns a CUresult value (0 = CUDA_SUCCESS): this is
 * the CUDA boundary, and the value goes to the guest unchanged.
 *
 * Two backends:
 *  - cuda: the real GPU through the real driver, dlopen'ed by absolute
 *    path (never through the search path that finds the guest library).
 *  - host: a CPU "device" for tests without a GPU. Device memory is host
 *    memory mapped at the window's addresses; streams execute each
 *    operation at once, in order; kernels are host functions looked up by
 *    name in a kernel library (CUVISOR_HOST_KERNELS, see
 *    worker/host_kernels.h).
 *
 * All calls come from the worker's consumer thread, except marker_wait,
 * marker_query and stream_query, which the completion thread may call
 * concurrently with anything else, and digest, which any thread may call
 * at any time (see there).
 */
#ifndef CV_BACKEND_H
#define CV_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/proto.h"

struct cv_backend; /* opaque, one per worker */
typedef void *cv_bobj;  /* a backend object (stream, event, module, ...) */

struct cv_backend_cfg {
	int gpu;               /* physical device ordinal */
	const char *driver;    /* cuda: absolute path of the real libcuda */
	uint64_t quota;        /* bytes; copied into devinfo.total_mem */
	/* remote: the serving host's daemon, the peer key file, the tenant
	 * (for the serving host's log and ps) and how long a silent peer
	 * is waited for. */
	const char *remote;
	const char *key;
	uint64_t tenant;
	int timeout_ms;
	bool compress;         /* remote: zstd on the copy lanes */
};

/* A function's parameter layout, filled by get_function. */
struct cv_fparams {
	uint32_t n;
	uint32_t size;          /* bytes of the packed buffer */
	struct cv_param *p;     /* n entries, malloc'ed; freed by the caller */
};

/* 2D copy as the decoder passes it (addresses already checked). */
struct cv_copy2d {
	uint64_t dst, dst_pitch, src, src_pitch, width, height;
	uint32_t kind;
};

/* Callback used for host functions: runs on a driver thread (cuda) or
 * inline (host), in stream order. */
typedef void (*cv_bhostfn)(void *arg);

struct cv_backend_ops {
	const char *name;
	/* Opens the device, creates the tenant's context and fills *info
	 * (everything but total_mem, which the caller sets). */
	int (*open)(const struct cv_backend_cfg *cfg, struct cv_devinfo *info,
		    struct cv_backend **out);
	/* Releases everything; the process is about to exit. */
	void (*close)(struct cv_backend *b);

	/* Page-locks [p, p + len) of the region for DMA (the device address
	 * of mapped host memory must equal p, or return 801). */
	int (*host_register)(struct cv_backend *b, void *p, size_t len);
	int (*host_unregister)(struct cv_backend *b, void *p);

	/* Reserves [addr, addr + size) of device VA at exactly addr. */
	int (*va_reserve)(struct cv_backend *b, uint64_t addr, uint64_t size);
	/* Physical memory of `size` bytes (a multiple of CV_GRANULE). */
	int (*mem_create)(struct cv_backend *b, uint64_t size, cv_bobj *out);
	int (*mem_release)(struct cv_backend *b, cv_bobj mem);
	/* Maps [offset, offset + size) of mem at va, readable and writable. */
	int (*mem_map)(struct cv_backend *b, uint64_t va, uint64_t size,
		       cv_bobj mem, uint64_t offset);
	int (*mem_unmap)(struct cv_backend *b, uint64_t va, uint64_t size);
	/* A file descriptor another worker on the same device imports to
	 * map the same physical memory (the caller closes it);
	 * CUDA_ERROR_NOT_SUPPORTED when mem was not made exportable. */
	int (*mem_export)(struct cv_backend *b, cv_bobj mem, int *fd);
	/* Memory from another worker's mem_export fd (not taken: the
	 * caller closes it) of `size` bytes, released as any other. */
	int (*mem_import)(struct cv_backend *b, int fd, uint64_t size,
			  cv_bobj *out);
	int (*mem_info)(struct cv_backend *b, uint64_t *free, uint64_t *total);

	/* stream == NULL is the legacy default stream. */
	int (*stream_create)(struct cv_backend *b, uint32_t flags, int prio,
			     cv_bobj *out);
	int (*stream_destroy)(struct cv_backend *b, cv_bobj s);
	int (*stream_sync)(struct cv_backend *b, cv_bobj s);
	int (*stream_query)(struct cv_backend *b, cv_bobj s);
	int (*stream_wait_event)(struct cv_backend *b, cv_bobj s, cv_bobj ev,
				 uint32_t flags);

	int (*event_create)(struct cv_backend *b, uint32_t flags, cv_bobj *out);
	int (*event_destroy)(struct cv_backend *b, cv_bobj ev);
	int (*event_record)(struct cv_backend *b, cv_bobj ev, cv_bobj s,
			    uint32_t flags);
	int (*event_sync)(struct cv_backend *b, cv_bobj ev);
	int (*event_query)(struct cv_backend *b, cv_bobj ev);
	int (*event_elapsed)(struct cv_backend *b, cv_bobj start, cv_bobj end,
			     float *ms);

	/* kind is enum cv_copy_kind; host addresses are region addresses. */
	int (*memcpy)(struct cv_backend *b, uint32_t kind, uint64_t dst,
		      uint64_t src, uint64_t len, cv_bobj s);
	int (*memcpy2d)(struct cv_backend *b, const struct cv_copy2d *c,
			cv_bobj s);
	/* elem is 1, 2 or 4; height 1 for 1D. */
	int (*memset)(struct cv_backend *b, uint64_t dst, uint64_t pitch,
		      uint32_t value, uint32_t elem, uint64_t width,
		      uint64_t height, cv_bobj s);

	/* image: cubin, fatbin or PTX (NUL-terminated within len). */
	int (*module_load)(struct cv_backend *b, const void *image, size_t len,
			   cv_bobj *out);
	int (*module_unload)(struct cv_backend *b, cv_bobj mod);
	/* name is NUL-terminated; fills *params. */
	int (*get_function)(struct cv_backend *b, cv_bobj mod, const char *name,
			    cv_bobj *out, struct cv_fparams *params);
	int (*get_global)(struct cv_backend *b, cv_bobj mod, const char *name,
			  uint64_t *dptr, uint64_t *size);
	/* Sets *count to the module's number of functions and, when
	 * index < *count, writes function index's name (NUL-terminated,
	 * truncated to size). */
	int (*module_function_name)(struct cv_backend *b, cv_bobj mod,
				    uint32_t index, char *name, size_t size,
				    uint32_t *count);
	int (*func_get_attr)(struct cv_backend *b, cv_bobj f, int attrib,
			     int *value);
	int (*func_set_attr)(struct cv_backend *b, cv_bobj f, int attrib,
			     int value);
	int (*func_set_cache)(struct cv_backend *b, cv_bobj f, int config);

	/* params[i] points at parameter i inside the packed buffer.
	 * attrs are CUlaunchAttribute-compatible (id, pad, 64-byte value). */
	int (*launch)(struct cv_backend *b, cv_bobj f, const uint32_t grid[3],
		      const uint32_t block[3], uint32_t shmem, cv_bobj s,
		      void **params, const struct cv_launch_attr *attrs,
		      uint32_t nattrs);
	int (*host_func)(struct cv_backend *b, cv_bobj s, cv_bhostfn fn,
			 void *arg);

	int (*ctx_sync)(struct cv_backend *b);
	int (*ctx_set_limit)(struct cv_backend *b, int limit, uint64_t value);
	int (*ctx_get_limit)(struct cv_backend *b, int limit, uint64_t *value);
	/* kind is enum cv_occ_kind; see struct cv_occupancy. */
	int (*occupancy)(struct cv_backend *b, cv_bobj f,
			 const struct cv_occupancy *in,
			 struct cv_occupancy_r *out);

	/* kind is enum cv_occ_cluster_kind; the answer goes to *value. */
	int (*occupancy_cluster)(struct cv_backend *b, cv_bobj f, uint32_t kind,
				 const uint32_t grid[3], const uint32_t block[3],
				 uint32_t shmem, const struct cv_launch_attr *attrs,
				 uint32_t nattrs, int *value);

	/* Markers: a cheap event without timing, for completion tracking.
	 * marker_query: 0 done, 600 (CUDA_ERROR_NOT_READY) pending, else an
	 * error; marker_wait blocks until done. */
	int (*marker_create)(struct cv_backend *b, cv_bobj *out);
	int (*marker_destroy)(struct cv_backend *b, cv_bobj m);
	int (*marker_record)(struct cv_backend *b, cv_bobj m, cv_bobj s);
	int (*marker_query)(struct cv_backend *b, cv_bobj m);
	int (*marker_wait)(struct cv_backend *b, cv_bobj m);

	/*
	 * Live migration: the cv_digest (core/digest.h, docs/digest.md) of
	 * each granule of [dev, dev + len) under seed, 16 bytes per granule
	 * in order into the host buffer out (len / granule * 16 bytes).
	 * Synchronous: out is filled when it returns. dev must be 8-byte
	 * aligned, granule a valid size (cv_digest_size_ok) and len a
	 * multiple of it (0 does nothing), else CUDA_ERROR_INVALID_VALUE;
	 * the range must be mapped and stay mapped during the call (the
	 * caller orders it against mem_unmap). s is the stream to run on
	 * (after the work queued on it; not one being captured), or NULL
	 * for a private non-blocking stream of the backend.
	 * Any thread may call it while the consumer keeps running the
	 * tenant's work, whose writes race with the reads: the digest of
	 * memory the tenant writes meanwhile is of some mix of old and new
	 * bytes. Calls from several threads at once are allowed (cuda runs
	 * them one after the other). cuda: CUDA_ERROR_NOT_SUPPORTED when
	 * the worker was built without nvcc (no kernel image).
	 * flags: CV_DIGEST_GENTLE while the tenant runs: cuda then runs at
	 * most one block per multiprocessor (measured on the H100: a
	 * launch-bound tenant keeps 0.90 of its rate while the digest
	 * reads 1.65 TB/s, against 0.16 at 2.7 TB/s with a block per
	 * granule); 0 when the GPU is the digest's alone.
	 */
	int (*digest)(struct cv_backend *b, uint64_t dev, uint64_t len,
		      uint32_t granule, uint64_t seed, uint8_t *out,
		      cv_bobj stream, uint32_t flags);

	/* Optional: the consumer found the ring empty; a backend that
	 * batches calls sends what it holds when force is set or when the
	 * batch is big or old enough, and says whether some stays held
	 * (the consumer then spins a little for more and forces it). */
	bool (*flush)(struct cv_backend *b, bool force);
	/* Optional, for a backend whose host-to-device copies read their
	 * source before they run (remote: the bytes are sent): copy_mark
	 * names the copies issued so far, copy_sent(b, mark) waits until
	 * their source bytes are read. The host memory is the caller's
	 * again then, though the copies may not have run: their end and
	 * their errors are still their stream's. 0 or a CUresult. */
	/* Optional: turns compression of the bytes on their way on or off
	 * (remote: zstd on the copy lanes, both ways, where it pays, when
	 * the server can); returns whether it was on. */
	bool (*compress)(struct cv_backend *b, bool on);
	uint64_t (*copy_mark)(struct cv_backend *b);
	int (*copy_sent)(struct cv_backend *b, uint64_t mark);
	/* Optional: where the device is, for the daemon ("HOST gpu N"). */
	const char *(*where)(struct cv_backend *b);
};

#define CV_DIGEST_GENTLE 1u

extern const struct cv_backend_ops cv_backend_cuda;
extern const struct cv_backend_ops cv_backend_host;
/* The device of a worker on another host (backend_remote.c). */
extern const struct cv_backend_ops cv_backend_remote;

/*
 * Device probes for the worker's --probe: print one line per device,
 * "gpu <index> <total_bytes> <name>", to out. Return the number of
 * devices or a negative errno (cuda: -EINVAL for a relative driver path,
 * -ENOENT when the driver cannot be loaded or lacks an entry point, -EIO
 * when the driver fails).
 */
#include <stdio.h>
int cv_backend_cuda_probe(const char *driver, FILE *out);
int cv_backend_host_probe(FILE *out);

#endif

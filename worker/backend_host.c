/* SPDX-License-Identifier: MIT */
/*
 * The host backend: a CPU "device", so that the ring, the worker, suspend,
 * resume and migration can be tested on machines without a GPU.
 *
 *  - Device memory is host memory at the device addresses: va_reserve maps
 *    PROT_NONE address space at exactly the window's address, mem_create
 *    makes a memfd, mem_map maps it shared over part of a reservation.
 *  - Every stream operation runs at once in the caller's thread, in order;
 *    synchronisation therefore never waits.
 *  - Kernels are host functions from the kernel libraries named in
 *    CUVISOR_HOST_KERNELS (worker/host_kernels.h), looked up by name once a
 *    module image of a recognised format is loaded. Each module gets its
 *    own copy of every library global; a library that exports
 *    cv_hk_bind_global() is told before each launch where the launching
 *    module keeps them.
 *
 * Threads: everything runs on the consumer thread except marker_query,
 * marker_wait and stream_query, which only read immutable state (the host
 * device has always finished by the time an op returns).
 *
 * Objects (streams, events, markers, memory, modules) sit on one list so
 * that close() can free whatever the worker did not.
 */
#include <cuda.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/digest.h"
#include "../core/log.h"
#include "backend.h"
#include "backend_image.h"
#include "host_kernels.h"

#define CV_HOST_NAME "cuvisor host vGPU"
#define CV_HOST_ENV "CUVISOR_HOST_KERNELS"
#define CV_HOST_DRIVER 13000
#define CV_HOST_MAX_THREADS 1024
#define CV_HOST_SMEM_BLOCK 49152        /* default dynamic shared limit */
#define CV_HOST_SMEM_OPTIN 232448
#define CV_HOST_GLOBAL_MAX (1ull << 30) /* largest library global */

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

enum cv_hobj_type { CV_HOBJ_STREAM = 1, CV_HOBJ_EVENT, CV_HOBJ_MEM,
		    CV_HOBJ_MODULE };

/* Header of every object; on the backend's list while alive. */
struct cv_hobj {
	struct cv_hobj *prev, *next;
	enum cv_hobj_type type;
};

struct cv_hstream {
	struct cv_hobj o;
	uint32_t flags;
	int prio;
};

/* Events and markers. */
struct cv_hevent {
	struct cv_hobj o;
	uint32_t flags;
	bool recorded;
	uint64_t t_ns;          /* CLOCK_MONOTONIC at the last record */
};

struct cv_hmem {
	struct cv_hobj o;
	int fd;                 /* memfd of `size` bytes */
	uint64_t size;
};

/* A function: one per (module, kernel), as cuModuleGetFunction gives. */
struct cv_hfunc {
	struct cv_hfunc *next;
	struct cv_hmod *mod;
	const struct cv_hk_kernel *k;
	uint32_t lib;           /* index of k's library */
	int attr[CU_FUNC_ATTRIBUTE_MAX];
	int cache;
};

/* A module: its own copy of every library global, placed at load. */
struct cv_hmod {
	struct cv_hobj o;
	struct cv_hfunc *funcs;
	void **glob;            /* [global index over all libraries] */
	uint64_t *glob_len;     /* bytes mapped at glob[i] */
};

/*
 * Optional export of a kernel library (see tests/kernels/host_kernels.c):
 * tells the library where the module about to run a kernel keeps global
 * `name` (NULL: nowhere any more). Returns 0, or -1 for an unknown name.
 */
typedef int (*cv_hk_bind_fn)(const char *name, void *addr);
#define CV_HK_BIND "cv_hk_bind_global"

struct cv_hlib {
	void *dl;
	const struct cv_hk_lib *lib;
	cv_hk_bind_fn bind;     /* or NULL */
	uint32_t gbase;         /* index of its first global over all libs */
	const struct cv_hmod *bound; /* whose globals bind last named */
};

/* [addr, addr + size) */
struct cv_hrange {
	uint64_t addr, size;
};

struct cv_hranges {
	struct cv_hrange *r;
	size_t n, cap;
};

struct cv_host {
	struct cv_hobj objs;    /* list head */
	struct cv_hranges resv; /* reserved VA */
	struct cv_hranges maps; /* mapped memory, disjoint */
	uint64_t mapped, total;
	struct cv_hlib *libs;
	uint32_t nlibs;
	uint32_t nglobals;      /* over all libraries */
	uint64_t limit[CU_LIMIT_MAX];
	int nsm;
};

static inline struct cv_host *to_host(struct cv_backend *b)
{
	return (struct cv_host *)b;
}

/* ---- object list ----------------------------------------------------- */

/* A live migration's threads make streams while the consumer runs. */
static pthread_mutex_t cv_hobj_lock = PTHREAD_MUTEX_INITIALIZER;

static void cv_hobj_add(struct cv_host *h, struct cv_hobj *o,
			enum cv_hobj_type type)
{
	pthread_mutex_lock(&cv_hobj_lock);
	o->type = type;
	o->next = h->objs.next;
	o->prev = &h->objs;
	h->objs.next->prev = o;
	h->objs.next = o;
	pthread_mutex_unlock(&cv_hobj_lock);
}

static void cv_hobj_del(struct cv_hobj *o)
{
	pthread_mutex_lock(&cv_hobj_lock);
	o->prev->next = o->next;
	o->next->prev = o->prev;
	o->prev = o->next = o;
	pthread_mutex_unlock(&cv_hobj_lock);
}

/* ---- address ranges -------------------------------------------------- */

static int cv_hranges_add(struct cv_hranges *rs, uint64_t addr, uint64_t size)
{
	struct cv_hrange *nr;
	size_t ncap;

	if (rs->n == rs->cap) {
		ncap = rs->cap ? rs->cap * 2 : 16;
		nr = realloc(rs->r, ncap * sizeof(*nr));
		if (!nr)
			return -ENOMEM;
		rs->r = nr;
		rs->cap = ncap;
	}
	rs->r[rs->n].addr = addr;
	rs->r[rs->n].size = size;
	rs->n++;
	return 0;
}

static void cv_hranges_del(struct cv_hranges *rs, size_t i)
{
	rs->r[i] = rs->r[--rs->n];
}

/* True when [a, a + n) overlaps [r->addr, r->addr + r->size). */
static bool cv_hrange_overlaps(const struct cv_hrange *r, uint64_t a,
			       uint64_t n)
{
	return a < r->addr + r->size && r->addr < a + n;
}

/* Index of the range holding all of [a, a + n), or -1. */
static ssize_t cv_hranges_find(const struct cv_hranges *rs, uint64_t a,
			       uint64_t n)
{
	size_t i;

	for (i = 0; i < rs->n; i++)
		if (cv_range_in(a, n, rs->r[i].addr, rs->r[i].size))
			return (ssize_t)i;
	return -1;
}

static bool cv_hranges_overlap(const struct cv_hranges *rs, uint64_t a,
			       uint64_t n)
{
	size_t i;

	for (i = 0; i < rs->n; i++)
		if (cv_hrange_overlaps(&rs->r[i], a, n))
			return true;
	return false;
}

/* ---- device description ---------------------------------------------- */

static uint64_t cv_host_total(void)
{
	long pages = sysconf(_SC_PHYS_PAGES);
	long psize = sysconf(_SC_PAGESIZE);

	if (pages <= 0 || psize <= 0)
		return 1ull << 30;
	return (uint64_t)pages * (uint64_t)psize / 2;
}

static int cv_host_nsm(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 && n < 65536 ? (int)n : 1;
}

static uint64_t cv_fnv1a(uint64_t h, const void *p, size_t n)
{
	const uint8_t *s = p;

	while (n--) {
		h ^= *s++;
		h *= 0x100000001b3ull;
	}
	return h;
}

/* A stable made-up uuid: a hash of the machine-id (or the host name) and
 * the device ordinal, shaped as an RFC 4122 version 8 uuid. */
static void cv_host_uuid(int gpu, uint8_t uuid[16])
{
	char id[256] = "";
	uint64_t a, b;
	ssize_t n = -1;
	int fd;

	fd = open("/etc/machine-id", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, id, sizeof(id) - 1);
		close(fd);
	}
	if (n <= 0 && gethostname(id, sizeof(id) - 1))
		strcpy(id, "cuvisor");
	id[sizeof(id) - 1] = 0;
	a = cv_fnv1a(0xcbf29ce484222325ull, CV_HOST_NAME, strlen(CV_HOST_NAME));
	a = cv_fnv1a(a, id, strlen(id));
	a = cv_fnv1a(a, &gpu, sizeof(gpu));
	b = cv_fnv1a(a ^ 0x9e3779b97f4a7c15ull, id, strlen(id));
	memcpy(uuid, &a, 8);
	memcpy(uuid + 8, &b, 8);
	uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x80);
	uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80);
}

static const struct {
	CUdevice_attribute a;
	int v;
} cv_host_attr_tab[] = {
	{ CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, CV_HOST_MAX_THREADS },
	{ CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X, 1024 },
	{ CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y, 1024 },
	{ CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z, 64 },
	{ CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X, 2147483647 },
	{ CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y, 65535 },
	{ CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z, 65535 },
	{ CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK, CV_HOST_SMEM_BLOCK },
	{ CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY, 65536 },
	{ CU_DEVICE_ATTRIBUTE_WARP_SIZE, 32 },
	{ CU_DEVICE_ATTRIBUTE_MAX_PITCH, 2147483647 },
	{ CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK, 65536 },
	{ CU_DEVICE_ATTRIBUTE_CLOCK_RATE, 1000000 },
	{ CU_DEVICE_ATTRIBUTE_TEXTURE_ALIGNMENT, 512 },
	{ CU_DEVICE_ATTRIBUTE_GPU_OVERLAP, 1 },
	{ CU_DEVICE_ATTRIBUTE_KERNEL_EXEC_TIMEOUT, 0 },
	{ CU_DEVICE_ATTRIBUTE_INTEGRATED, 0 },
	{ CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY, 1 },
	{ CU_DEVICE_ATTRIBUTE_COMPUTE_MODE, CU_COMPUTEMODE_DEFAULT },
	{ CU_DEVICE_ATTRIBUTE_SURFACE_ALIGNMENT, 512 },
	{ CU_DEVICE_ATTRIBUTE_CONCURRENT_KERNELS, 1 },
	{ CU_DEVICE_ATTRIBUTE_ECC_ENABLED, 0 },
	{ CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE, 1000000 },
	{ CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH, 64 },
	{ CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, 4 << 20 },
	{ CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR, 2048 },
	{ CU_DEVICE_ATTRIBUTE_ASYNC_ENGINE_COUNT, 2 },
	{ CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING, 1 },
	{ CU_DEVICE_ATTRIBUTE_TEXTURE_PITCH_ALIGNMENT, 32 },
	{ CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, 9 },
	{ CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, 0 },
	{ CU_DEVICE_ATTRIBUTE_STREAM_PRIORITIES_SUPPORTED, 1 },
	{ CU_DEVICE_ATTRIBUTE_GLOBAL_L1_CACHE_SUPPORTED, 1 },
	{ CU_DEVICE_ATTRIBUTE_LOCAL_L1_CACHE_SUPPORTED, 1 },
	{ CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR, 233472 },
	{ CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR, 65536 },
	{ CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY, 0 },
	{ CU_DEVICE_ATTRIBUTE_SINGLE_TO_DOUBLE_PRECISION_PERF_RATIO, 2 },
	{ CU_DEVICE_ATTRIBUTE_COMPUTE_PREEMPTION_SUPPORTED, 1 },
	{ CU_DEVICE_ATTRIBUTE_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM, 1 },
	{ CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
	  CV_HOST_SMEM_OPTIN },
	{ CU_DEVICE_ATTRIBUTE_HOST_REGISTER_SUPPORTED, 1 },
	{ CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, 1 },
	{ CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED, 1 },
	{ CU_DEVICE_ATTRIBUTE_MAX_BLOCKS_PER_MULTIPROCESSOR, 32 },
	{ CU_DEVICE_ATTRIBUTE_RESERVED_SHARED_MEMORY_PER_BLOCK, 1024 },
	{ CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED, 0 },
	{ CU_DEVICE_ATTRIBUTE_MEM_SYNC_DOMAIN_COUNT, 1 },
	{ CU_DEVICE_ATTRIBUTE_NUMA_ID, -1 },
};

static void cv_host_devinfo(const struct cv_host *h, int gpu,
			    struct cv_devinfo *info)
{
	size_t i;

	memset(info, 0, sizeof(*info));
	snprintf(info->name, sizeof(info->name), "%s", CV_HOST_NAME);
	cv_host_uuid(gpu, info->uuid);
	for (i = 0; i < CV_ARRAY_SIZE(cv_host_attr_tab); i++)
		info->attr[cv_host_attr_tab[i].a] = cv_host_attr_tab[i].v;
	info->attr[CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT] = h->nsm;
	info->cc_major = 9;
	info->cc_minor = 0;
	info->backend = CV_BACKEND_HOST;
	info->driver_version = CV_HOST_DRIVER;
}

/* Prints the host device's probe line; returns 1 (one device). */
/* CUVISOR_HOST_GPUS=N (1..8, default 1) lists N identical host "GPUs",
 * so that moves between GPUs can be tested without one. */
int cv_backend_host_probe(FILE *out)
{
	const char *e = getenv("CUVISOR_HOST_GPUS");
	int i, n = e ? atoi(e) : 1;

	if (n < 1 || n > 8)
		n = 1;
	for (i = 0; i < n; i++)
		fprintf(out, "gpu %d %llu %s\n", i,
			(unsigned long long)cv_host_total(), CV_HOST_NAME);
	return n;
}

/* ---- kernel libraries ------------------------------------------------ */

/* Byte size of k's packed parameters (CUDA layout), or -1 if invalid. */
static int64_t cv_hk_param_size(const struct cv_hk_kernel *k)
{
	uint64_t off = 0;
	uint32_t i;

	if (k->nparams && (!k->size || !k->align))
		return -1;
	for (i = 0; i < k->nparams; i++) {
		if (!cv_is_pow2(k->align[i]) || k->align[i] > 16)
			return -1;
		off = cv_align_up(off, k->align[i]) + k->size[i];
		if (off > CV_LAUNCH_MAX_PARAMS)
			return -1;
	}
	return (int64_t)off;
}

/* Checks what a library's entry returned; logs what is wrong. */
static bool cv_hk_lib_ok(const struct cv_hk_lib *l, const char *path)
{
	uint32_t i;

	if (!l || l->abi != CV_HK_ABI) {
		cv_err("host: %s: ABI %u, want %u", path, l ? l->abi : 0,
		       CV_HK_ABI);
		return false;
	}
	if ((l->nkernels && !l->kernels) || (l->nglobals && !l->globals)) {
		cv_err("host: %s: NULL kernel or global table", path);
		return false;
	}
	for (i = 0; i < l->nkernels; i++) {
		const struct cv_hk_kernel *k = &l->kernels[i];

		if (!k->name || !k->fn || k->nparams > CV_LAUNCH_MAX_PARAMS ||
		    cv_hk_param_size(k) < 0) {
			cv_err("host: %s: kernel %u (%s) is malformed", path, i,
			       k->name ? k->name : "no name");
			return false;
		}
	}
	for (i = 0; i < l->nglobals; i++) {
		if (!l->globals[i].name ||
		    l->globals[i].size > CV_HOST_GLOBAL_MAX) {
			cv_err("host: %s: global %u is malformed", path, i);
			return false;
		}
	}
	return true;
}

/* dlopens one kernel library (absolute path) and checks its table. */
static int cv_hk_open(struct cv_host *h, const char *path)
{
	cv_hk_entry_fn entry;
	const struct cv_hk_lib *l;
	void *dl;

	if (path[0] != '/') {
		cv_err("host: %s: kernel library path '%s' is not absolute",
		       CV_HOST_ENV, path);
		return CUDA_ERROR_INVALID_VALUE;
	}
	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		cv_err("host: dlopen %s: %s", path, dlerror());
		return CUDA_ERROR_SHARED_OBJECT_INIT_FAILED;
	}
	*(void **)&entry = dlsym(dl, CV_HK_ENTRY);
	l = entry ? entry() : NULL;
	if (!entry)
		cv_err("host: %s has no %s()", path, CV_HK_ENTRY);
	if (entry && l && h->nglobals + (uint64_t)l->nglobals > UINT32_MAX) {
		cv_err("host: %s: too many globals", path);
		l = NULL;
	}
	if (!entry || !cv_hk_lib_ok(l, path)) {
		dlclose(dl);
		return CUDA_ERROR_SHARED_OBJECT_INIT_FAILED;
	}
	h->libs[h->nlibs].dl = dl;
	h->libs[h->nlibs].lib = l;
	*(void **)&h->libs[h->nlibs].bind = dlsym(dl, CV_HK_BIND);
	h->libs[h->nlibs].gbase = h->nglobals;
	h->nlibs++;
	h->nglobals += l->nglobals;
	cv_info("host: kernel library %s: %u kernels, %u globals", path,
		l->nkernels, l->nglobals);
	return 0;
}

/* Opens every library named in CUVISOR_HOST_KERNELS (colon-separated). */
static int cv_hk_open_all(struct cv_host *h)
{
	const char *env = getenv(CV_HOST_ENV), *q;
	char *list, *save = NULL, *p;
	size_t n = 1;
	int r = 0;

	if (!env || !*env)
		return 0;
	for (q = env; *q; q++)
		n += *q == ':';
	list = strdup(env);
	h->libs = calloc(n, sizeof(*h->libs));
	if (!list || !h->libs) {
		free(list);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	for (p = strtok_r(list, ":", &save); p && !r;
	     p = strtok_r(NULL, ":", &save))
		r = cv_hk_open(h, p);
	free(list);
	return r;
}

static void cv_hk_close_all(struct cv_host *h)
{
	uint32_t i;

	for (i = 0; i < h->nlibs; i++)
		dlclose(h->libs[i].dl);
	free(h->libs);
	h->libs = NULL;
	h->nlibs = 0;
}

/* The kernel called name and its library's index, or NULL. */
static const struct cv_hk_kernel *cv_hk_kernel(const struct cv_host *h,
					       const char *name, uint32_t *lib)
{
	uint32_t i, j;

	for (i = 0; i < h->nlibs; i++) {
		for (j = 0; j < h->libs[i].lib->nkernels; j++) {
			if (!strcmp(h->libs[i].lib->kernels[j].name, name)) {
				*lib = i;
				return &h->libs[i].lib->kernels[j];
			}
		}
	}
	return NULL;
}

/*
 * Points library `lib`'s kernels at module m's globals (m == NULL: at
 * none), unless they already are.
 */
static void cv_hk_bind(struct cv_host *h, uint32_t lib,
		       const struct cv_hmod *m)
{
	struct cv_hlib *hl = &h->libs[lib];
	uint32_t j;

	if (!hl->bind || hl->bound == m)
		return;
	for (j = 0; j < hl->lib->nglobals; j++)
		hl->bind(hl->lib->globals[j].name,
			 m ? m->glob[hl->gbase + j] : NULL);
	hl->bound = m;
}

/* The global with index idx over all libraries. */
static const struct cv_hk_global *cv_hk_global_at(const struct cv_host *h,
						  uint32_t idx)
{
	uint32_t i;

	for (i = 0; idx >= h->libs[i].lib->nglobals; i++)
		idx -= h->libs[i].lib->nglobals;
	return &h->libs[i].lib->globals[idx];
}

/* The index over all libraries of the global called name, or -1. */
static int64_t cv_hk_global_find(const struct cv_host *h, const char *name)
{
	uint32_t i, j;

	for (i = 0; i < h->nlibs; i++) {
		const struct cv_hk_lib *l = h->libs[i].lib;

		for (j = 0; j < l->nglobals; j++)
			if (!strcmp(l->globals[j].name, name))
				return (int64_t)h->libs[i].gbase + j;
	}
	return -1;
}

/* ---- open / close ---------------------------------------------------- */

static void cv_host_limits_init(struct cv_host *h)
{
	h->limit[CU_LIMIT_STACK_SIZE] = 1024;
	h->limit[CU_LIMIT_PRINTF_FIFO_SIZE] = 1ull << 20;
	h->limit[CU_LIMIT_MALLOC_HEAP_SIZE] = 8ull << 20;
	h->limit[CU_LIMIT_DEV_RUNTIME_SYNC_DEPTH] = 2;
	h->limit[CU_LIMIT_DEV_RUNTIME_PENDING_LAUNCH_COUNT] = 2048;
	h->limit[CU_LIMIT_MAX_L2_FETCH_GRANULARITY] = 64;
}

static void cv_host_free_obj(struct cv_host *h, struct cv_hobj *o);

static void cv_host_close(struct cv_backend *b)
{
	struct cv_host *h = to_host(b);
	size_t i;

	if (!h)
		return;
	while (h->objs.next != &h->objs)
		cv_host_free_obj(h, h->objs.next);
	for (i = 0; i < h->resv.n; i++)
		munmap((void *)h->resv.r[i].addr, h->resv.r[i].size);
	free(h->resv.r);
	free(h->maps.r);
	cv_hk_close_all(h);
	free(h);
}

static int cv_host_open(const struct cv_backend_cfg *cfg,
			struct cv_devinfo *info, struct cv_backend **out)
{
	struct cv_host *h;
	int r;

	h = calloc(1, sizeof(*h));
	if (!h)
		return CUDA_ERROR_OUT_OF_MEMORY;
	h->objs.next = h->objs.prev = &h->objs;
	h->total = cv_host_total();
	h->nsm = cv_host_nsm();
	cv_host_limits_init(h);
	r = cv_hk_open_all(h);
	if (r) {
		cv_host_close((struct cv_backend *)h);
		return r;
	}
	cv_host_devinfo(h, cfg->gpu, info);
	*out = (struct cv_backend *)h;
	return 0;
}

/* ---- host memory and device VA --------------------------------------- */

/* Region memory is ordinary memory the "device" reaches at p already. */
static int cv_host_host_register(struct cv_backend *b, void *p, size_t len)
{
	return 0;
}

static int cv_host_host_unregister(struct cv_backend *b, void *p)
{
	return 0;
}

/* Reserves [addr, addr + size) as PROT_NONE address space, exactly there. */
static int cv_host_va_reserve(struct cv_backend *b, uint64_t addr,
			      uint64_t size)
{
	struct cv_host *h = to_host(b);
	void *p;

	if (!size || addr % CV_PAGE || size % CV_PAGE ||
	    addr + size < addr)
		return CUDA_ERROR_INVALID_VALUE;
	p = mmap((void *)addr, size, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
			 MAP_FIXED_NOREPLACE, -1, 0);
	if (p == MAP_FAILED) {
		cv_err("host: reserve 0x%llx+0x%llx: %s",
		       (unsigned long long)addr, (unsigned long long)size,
		       strerror(errno));
		return errno == ENOMEM ? CUDA_ERROR_OUT_OF_MEMORY :
					 CUDA_ERROR_INVALID_VALUE;
	}
	if ((uint64_t)p != addr) {
		cv_err("host: reserve 0x%llx+0x%llx got %p instead",
		       (unsigned long long)addr, (unsigned long long)size, p);
		munmap(p, size);
		return CUDA_ERROR_INVALID_VALUE;
	}
	if (cv_hranges_add(&h->resv, addr, size)) {
		munmap(p, size);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	return 0;
}

/* ---- physical memory ------------------------------------------------- */

static int cv_host_mem_create(struct cv_backend *b, uint64_t size,
			      cv_bobj *out)
{
	struct cv_host *h = to_host(b);
	struct cv_hmem *m;

	if (!size || size % CV_PAGE || size > (uint64_t)INT64_MAX)
		return CUDA_ERROR_INVALID_VALUE;
	m = calloc(1, sizeof(*m));
	if (!m)
		return CUDA_ERROR_OUT_OF_MEMORY;
	/* Sealed: a worker that imports it (mem_import) must never see
	 * it shrink under its mappings. */
	m->fd = memfd_create("cuvisor-vram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (m->fd < 0 || ftruncate(m->fd, (off_t)size) ||
	    fcntl(m->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW |
					  F_SEAL_SEAL)) {
		cv_err("host: memfd of %llu bytes: %s",
		       (unsigned long long)size, strerror(errno));
		if (m->fd >= 0)
			close(m->fd);
		free(m);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	m->size = size;
	cv_hobj_add(h, &m->o, CV_HOBJ_MEM);
	*out = m;
	return 0;
}

static int cv_host_mem_export(struct cv_backend *b, cv_bobj mem, int *fd)
{
	struct cv_hmem *m = mem;

	*fd = fcntl(m->fd, F_DUPFD_CLOEXEC, 0);
	return *fd < 0 ? CUDA_ERROR_OUT_OF_MEMORY : 0;
}

/* The memfd must be exactly size bytes: a shorter one would fault. */
static int cv_host_mem_import(struct cv_backend *b, int fd, uint64_t size,
			      cv_bobj *out)
{
	struct cv_host *h = to_host(b);
	struct cv_hmem *m;
	struct stat st;

	if (!size || size % CV_PAGE || fstat(fd, &st) || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size != size ||
	    !(fcntl(fd, F_GET_SEALS) & F_SEAL_SHRINK))
		return CUDA_ERROR_INVALID_VALUE;
	m = calloc(1, sizeof(*m));
	if (!m)
		return CUDA_ERROR_OUT_OF_MEMORY;
	m->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (m->fd < 0) {
		free(m);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	m->size = size;
	cv_hobj_add(h, &m->o, CV_HOBJ_MEM);
	*out = m;
	return 0;
}

/* Mappings of a released memfd stay valid (the kernel keeps the file). */
static int cv_host_mem_release(struct cv_backend *b, cv_bobj mem)
{
	cv_host_free_obj(to_host(b), mem);
	return 0;
}

/* Maps [offset, offset + size) of mem at va, inside a reservation and
 * over no other mapping. */
static int cv_host_mem_map(struct cv_backend *b, uint64_t va, uint64_t size,
			   cv_bobj mem, uint64_t offset)
{
	struct cv_host *h = to_host(b);
	struct cv_hmem *m = mem;
	void *p;

	if (!size || va % CV_PAGE || size % CV_PAGE || offset % CV_PAGE ||
	    !cv_range_ok(offset, size, m->size) ||
	    cv_hranges_find(&h->resv, va, size) < 0 ||
	    cv_hranges_overlap(&h->maps, va, size))
		return CUDA_ERROR_INVALID_VALUE;
	if (cv_hranges_add(&h->maps, va, size))
		return CUDA_ERROR_OUT_OF_MEMORY;
	p = mmap((void *)va, size, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED, m->fd, (off_t)offset);
	if (p == MAP_FAILED) {
		cv_err("host: map 0x%llx+0x%llx: %s", (unsigned long long)va,
		       (unsigned long long)size, strerror(errno));
		h->maps.n--;
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	h->mapped += size;
	return 0;
}

/*
 * Unmaps [va, va + size), which must cover whole mappings (as with
 * cuMemUnmap); the address space stays reserved (PROT_NONE).
 */
static int cv_host_mem_unmap(struct cv_backend *b, uint64_t va, uint64_t size)
{
	struct cv_host *h = to_host(b);
	uint64_t freed = 0;
	size_t i;
	void *p;

	if (!size || va + size < va)
		return CUDA_ERROR_INVALID_VALUE;
	for (i = 0; i < h->maps.n; i++) {
		if (cv_hrange_overlaps(&h->maps.r[i], va, size) &&
		    !cv_range_in(h->maps.r[i].addr, h->maps.r[i].size, va,
				 size))
			return CUDA_ERROR_INVALID_VALUE;
		if (cv_hrange_overlaps(&h->maps.r[i], va, size))
			freed += h->maps.r[i].size;
	}
	if (!freed)
		return CUDA_ERROR_INVALID_VALUE;
	p = mmap((void *)va, size, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1,
		 0);
	if (p == MAP_FAILED) {
		cv_err("host: unmap 0x%llx+0x%llx: %s", (unsigned long long)va,
		       (unsigned long long)size, strerror(errno));
		return CUDA_ERROR_UNKNOWN;
	}
	for (i = h->maps.n; i-- > 0;)
		if (cv_hrange_overlaps(&h->maps.r[i], va, size))
			cv_hranges_del(&h->maps, i);
	h->mapped -= freed;
	return 0;
}

static int cv_host_mem_info(struct cv_backend *b, uint64_t *free_,
			    uint64_t *total)
{
	struct cv_host *h = to_host(b);

	*total = h->total;
	*free_ = h->mapped < h->total ? h->total - h->mapped : 0;
	return 0;
}

/* ---- streams and events ---------------------------------------------- */

static int cv_host_stream_create(struct cv_backend *b, uint32_t flags,
				 int prio, cv_bobj *out)
{
	struct cv_hstream *s;

	if (flags & ~(uint32_t)CU_STREAM_NON_BLOCKING)
		return CUDA_ERROR_INVALID_VALUE;
	s = calloc(1, sizeof(*s));
	if (!s)
		return CUDA_ERROR_OUT_OF_MEMORY;
	s->flags = flags;
	s->prio = prio;
	cv_hobj_add(to_host(b), &s->o, CV_HOBJ_STREAM);
	*out = s;
	return 0;
}

static int cv_host_obj_destroy(struct cv_backend *b, cv_bobj o)
{
	cv_host_free_obj(to_host(b), o);
	return 0;
}

/* Work never waits on the host device: every op has completed. */
static int cv_host_done(struct cv_backend *b, cv_bobj o)
{
	return 0;
}

static int cv_host_stream_wait_event(struct cv_backend *b, cv_bobj s,
				     cv_bobj ev, uint32_t flags)
{
	return 0;
}

static int cv_host_event_create(struct cv_backend *b, uint32_t flags,
				cv_bobj *out)
{
	struct cv_hevent *e;

	if (flags & ~(uint32_t)(CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING |
				CU_EVENT_INTERPROCESS))
		return CUDA_ERROR_INVALID_VALUE;
	e = calloc(1, sizeof(*e));
	if (!e)
		return CUDA_ERROR_OUT_OF_MEMORY;
	e->flags = flags;
	cv_hobj_add(to_host(b), &e->o, CV_HOBJ_EVENT);
	*out = e;
	return 0;
}

static int cv_host_event_record(struct cv_backend *b, cv_bobj ev, cv_bobj s,
				uint32_t flags)
{
	struct cv_hevent *e = ev;

	e->t_ns = cv_now_ns();
	e->recorded = true;
	return 0;
}

/*
 * As cuEventElapsedTime documents: CUDA_ERROR_INVALID_HANDLE when either
 * event disables timing or was never recorded (recorded events are always
 * complete here, so CUDA_ERROR_NOT_READY cannot happen).
 */
static int cv_host_event_elapsed(struct cv_backend *b, cv_bobj start,
				 cv_bobj end, float *ms)
{
	const struct cv_hevent *s = start, *e = end;

	if ((s->flags | e->flags) & CU_EVENT_DISABLE_TIMING)
		return CUDA_ERROR_INVALID_HANDLE;
	if (!s->recorded || !e->recorded)
		return CUDA_ERROR_INVALID_HANDLE;
	*ms = (float)(((double)e->t_ns - (double)s->t_ns) / 1e6);
	return 0;
}

static int cv_host_marker_create(struct cv_backend *b, cv_bobj *out)
{
	return cv_host_event_create(b, CU_EVENT_DISABLE_TIMING, out);
}

static int cv_host_marker_record(struct cv_backend *b, cv_bobj m, cv_bobj s)
{
	return cv_host_event_record(b, m, s, 0);
}

/* ---- copies and memsets (addresses checked by the decoder) ----------- */

static int cv_host_memcpy(struct cv_backend *b, uint32_t kind, uint64_t dst,
			  uint64_t src, uint64_t len, cv_bobj s)
{
	if (kind < CV_COPY_HTOD || kind > CV_COPY_DTOD)
		return CUDA_ERROR_INVALID_VALUE;
	if (len)
		memmove((void *)dst, (const void *)src, len);
	return 0;
}

static int cv_host_memcpy2d(struct cv_backend *b, const struct cv_copy2d *c,
			    cv_bobj s)
{
	uint64_t y;

	if (c->kind < CV_COPY_HTOD || c->kind > CV_COPY_DTOD)
		return CUDA_ERROR_INVALID_VALUE;
	if (c->height > 1 &&
	    (c->width > c->dst_pitch || c->width > c->src_pitch))
		return CUDA_ERROR_INVALID_VALUE;
	for (y = 0; y < c->height && c->width; y++)
		memmove((void *)(c->dst + y * c->dst_pitch),
			(const void *)(c->src + y * c->src_pitch), c->width);
	return 0;
}

/* Fills n elements of elem bytes at p with value. */
static void cv_host_fill(uint8_t *p, uint32_t value, uint32_t elem,
			 uint64_t n)
{
	uint16_t v16 = (uint16_t)value;
	uint64_t i;

	if (elem == 1) {
		memset(p, (int)(value & 0xff), n);
		return;
	}
	for (i = 0; i < n; i++, p += elem) {
		if (elem == 2)
			memcpy(p, &v16, 2);
		else
			memcpy(p, &value, 4);
	}
}

static int cv_host_memset(struct cv_backend *b, uint64_t dst, uint64_t pitch,
			  uint32_t value, uint32_t elem, uint64_t width,
			  uint64_t height, cv_bobj s)
{
	uint64_t y;

	if (elem != 1 && elem != 2 && elem != 4)
		return CUDA_ERROR_INVALID_VALUE;
	if (height <= 1) {
		cv_host_fill((uint8_t *)dst, value, elem, width);
		return 0;
	}
	if (width > pitch / elem)
		return CUDA_ERROR_INVALID_VALUE;
	for (y = 0; y < height; y++)
		cv_host_fill((uint8_t *)(dst + y * pitch), value, elem, width);
	return 0;
}

/* ---- modules --------------------------------------------------------- */

/* Unbinds m's globals from every library, then frees m. */
static void cv_hmod_free(struct cv_host *h, struct cv_hmod *m)
{
	struct cv_hfunc *f;
	uint32_t i;

	for (i = 0; i < h->nlibs; i++)
		if (h->libs[i].bound == m)
			cv_hk_bind(h, i, NULL);
	while ((f = m->funcs)) {
		m->funcs = f->next;
		free(f);
	}
	for (i = 0; m->glob && i < h->nglobals; i++)
		if (m->glob[i])
			munmap(m->glob[i], m->glob_len[i]);
	free(m->glob);
	free(m->glob_len);
	free(m);
}

/* Places m's copy of every library global, initialised from init. */
static int cv_hmod_place(struct cv_host *h, struct cv_hmod *m)
{
	const struct cv_hk_global *g;
	uint64_t len;
	uint32_t i;
	void *p;

	m->glob = calloc(h->nglobals, sizeof(*m->glob));
	m->glob_len = calloc(h->nglobals, sizeof(*m->glob_len));
	if (!m->glob || !m->glob_len)
		return CUDA_ERROR_OUT_OF_MEMORY;
	for (i = 0; i < h->nglobals; i++) {
		g = cv_hk_global_at(h, i);
		len = cv_align_up(g->size ? g->size : 1, CV_PAGE);
		p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return CUDA_ERROR_OUT_OF_MEMORY;
		if (g->init)
			memcpy(p, g->init, g->size);
		m->glob[i] = p;
		m->glob_len[i] = len;
	}
	return 0;
}

/* Accepts an image of a recognised format; its code is never run. */
static int cv_host_module_load(struct cv_backend *b, const void *image,
			       size_t len, cv_bobj *out)
{
	struct cv_host *h = to_host(b);
	struct cv_hmod *m;
	int r;

	if (cv_image_kind(image, len) == CV_IMAGE_BAD)
		return CUDA_ERROR_INVALID_IMAGE;
	m = calloc(1, sizeof(*m));
	if (!m)
		return CUDA_ERROR_OUT_OF_MEMORY;
	r = h->nglobals ? cv_hmod_place(h, m) : 0;
	if (r) {
		cv_hmod_free(h, m);
		return r;
	}
	cv_hobj_add(h, &m->o, CV_HOBJ_MODULE);
	*out = m;
	return 0;
}

static struct cv_hfunc *cv_hfunc_new(struct cv_hmod *m,
				     const struct cv_hk_kernel *k, uint32_t lib)
{
	struct cv_hfunc *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->mod = m;
	f->k = k;
	f->lib = lib;
	f->attr[CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK] = CV_HOST_MAX_THREADS;
	f->attr[CU_FUNC_ATTRIBUTE_NUM_REGS] = 32;
	f->attr[CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES] =
		CV_HOST_SMEM_BLOCK;
	return f;
}

/* Fills *p with k's layout: each parameter at the next offset aligned to
 * its alignment; size = last offset + last size. */
static int cv_hfunc_params(const struct cv_hk_kernel *k, struct cv_fparams *p)
{
	uint64_t off = 0;
	uint32_t i;

	memset(p, 0, sizeof(*p));
	if (!k->nparams)
		return 0;
	p->p = calloc(k->nparams, sizeof(*p->p));
	if (!p->p)
		return CUDA_ERROR_OUT_OF_MEMORY;
	for (i = 0; i < k->nparams; i++) {
		off = cv_align_up(off, k->align[i]);
		p->p[i].offset = (uint32_t)off;
		p->p[i].size = k->size[i];
		off += k->size[i];
	}
	p->n = k->nparams;
	p->size = (uint32_t)off;
	return 0;
}

static int cv_host_get_function(struct cv_backend *b, cv_bobj mod,
				const char *name, cv_bobj *out,
				struct cv_fparams *params)
{
	struct cv_hmod *m = mod;
	const struct cv_hk_kernel *k;
	struct cv_hfunc *f;
	uint32_t lib = 0;
	int r;

	k = cv_hk_kernel(to_host(b), name, &lib);
	if (!k)
		return CUDA_ERROR_NOT_FOUND;
	r = cv_hfunc_params(k, params);
	if (r)
		return r;
	for (f = m->funcs; f && f->k != k; f = f->next)
		;
	if (!f) {
		f = cv_hfunc_new(m, k, lib);
		if (!f) {
			free(params->p);
			params->p = NULL;
			return CUDA_ERROR_OUT_OF_MEMORY;
		}
		f->next = m->funcs;
		m->funcs = f;
	}
	*out = f;
	return 0;
}

/* This module's copy of the library global `name`. */
static int cv_host_get_global(struct cv_backend *b, cv_bobj mod,
			      const char *name, uint64_t *dptr, uint64_t *size)
{
	struct cv_host *h = to_host(b);
	const struct cv_hmod *m = mod;
	int64_t i = cv_hk_global_find(h, name);

	if (i < 0)
		return CUDA_ERROR_NOT_FOUND;
	*dptr = (uint64_t)m->glob[i];
	*size = cv_hk_global_at(h, (uint32_t)i)->size;
	return 0;
}

/* ---- functions ------------------------------------------------------- */

static int cv_host_func_get_attr(struct cv_backend *b, cv_bobj fn, int attrib,
				 int *value)
{
	const struct cv_hfunc *f = fn;

	if (attrib < 0 || attrib >= CU_FUNC_ATTRIBUTE_MAX)
		return CUDA_ERROR_INVALID_VALUE;
	*value = f->attr[attrib];
	return 0;
}

/* Only the attributes CUDA lets a program set. */
static int cv_host_func_set_attr(struct cv_backend *b, cv_bobj fn, int attrib,
				 int value)
{
	struct cv_hfunc *f = fn;

	switch (attrib) {
	case CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES:
		if (value < 0 || value > CV_HOST_SMEM_OPTIN)
			return CUDA_ERROR_INVALID_VALUE;
		break;
	case CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT:
		if (value < -1 || value > 100)
			return CUDA_ERROR_INVALID_VALUE;
		break;
	case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH:
	case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_HEIGHT:
	case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_DEPTH:
	case CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED:
	case CU_FUNC_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE:
		if (value < 0)
			return CUDA_ERROR_INVALID_VALUE;
		break;
	default:
		return CUDA_ERROR_INVALID_VALUE;
	}
	f->attr[attrib] = value;
	return 0;
}

static int cv_host_func_set_cache(struct cv_backend *b, cv_bobj fn,
				  int config)
{
	struct cv_hfunc *f = fn;

	if (config < CU_FUNC_CACHE_PREFER_NONE ||
	    config > CU_FUNC_CACHE_PREFER_EQUAL)
		return CUDA_ERROR_INVALID_VALUE;
	f->cache = config;
	return 0;
}

/* ---- launches -------------------------------------------------------- */

/* The launch limits of CUDA on this device. */
static bool cv_host_dims_ok(const uint32_t grid[3], const uint32_t block[3])
{
	uint64_t threads = (uint64_t)block[0] * block[1] * block[2];

	if (!grid[0] || !grid[1] || !grid[2] || !threads)
		return false;
	return grid[0] <= 2147483647u && grid[1] <= 65535 &&
	       grid[2] <= 65535 && block[0] <= 1024 && block[1] <= 1024 &&
	       block[2] <= 64 && threads <= CV_HOST_MAX_THREADS;
}

/*
 * Runs the kernel at once, after pointing its library at this module's
 * globals; launch attributes are accepted and ignored.
 */
/*
 * A host "kernel" runs in the worker, and a kernel given a wild pointer
 * (by a buggy or hostile guest) must not take the worker down: a fault
 * inside a kernel becomes CUDA_ERROR_ILLEGAL_ADDRESS, as on a GPU. Faults
 * anywhere else go to whatever handler was there before (the default, or
 * a sanitizer's).
 */
static __thread sigjmp_buf *kernel_jmp;
static struct sigaction old_segv, old_bus;

static void kernel_fault(int sig, siginfo_t *si, void *uc)
{
	if (kernel_jmp)
		siglongjmp(*kernel_jmp, 1);
	/* Not ours: put the old handler back; the faulting instruction runs
	 * again and meets it. */
	sigaction(sig, sig == SIGSEGV ? &old_segv : &old_bus, NULL);
}

static void kernel_fault_init(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = kernel_fault;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old_segv);
	sigaction(SIGBUS, &sa, &old_bus);
}

static int run_kernel(const struct cv_hk_kernel *k, const struct cv_hk_dims *d,
		      void **params)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	sigjmp_buf env;

	pthread_once(&once, kernel_fault_init);
	if (sigsetjmp(env, 1)) {
		kernel_jmp = NULL;
		return CUDA_ERROR_ILLEGAL_ADDRESS;
	}
	kernel_jmp = &env;
	k->fn(d, params);
	kernel_jmp = NULL;
	return 0;
}

static int cv_host_launch(struct cv_backend *b, cv_bobj fn,
			  const uint32_t grid[3], const uint32_t block[3],
			  uint32_t shmem, cv_bobj s, void **params,
			  const struct cv_launch_attr *attrs, uint32_t nattrs)
{
	const struct cv_hfunc *f = fn;
	struct cv_hk_dims d;

	if (!cv_host_dims_ok(grid, block) ||
	    shmem > (uint32_t)f->attr[CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES] ||
	    (f->k->nparams && !params))
		return CUDA_ERROR_INVALID_VALUE;
	memset(&d, 0, sizeof(d));
	memcpy(d.grid, grid, sizeof(d.grid));
	memcpy(d.block, block, sizeof(d.block));
	d.shmem = shmem;
	cv_hk_bind(to_host(b), f->lib, f->mod);
	return run_kernel(f->k, &d, params);
}

static int cv_host_host_func(struct cv_backend *b, cv_bobj s, cv_bhostfn fn,
			     void *arg)
{
	fn(arg);
	return 0;
}

/* ---- context-wide ---------------------------------------------------- */

static int cv_host_ctx_sync(struct cv_backend *b)
{
	return 0;
}

static int cv_host_ctx_set_limit(struct cv_backend *b, int limit,
				 uint64_t value)
{
	if (limit < 0 || limit >= CU_LIMIT_MAX)
		return CUDA_ERROR_UNSUPPORTED_LIMIT;
	to_host(b)->limit[limit] = value;
	return 0;
}

static int cv_host_ctx_get_limit(struct cv_backend *b, int limit,
				 uint64_t *value)
{
	if (limit < 0 || limit >= CU_LIMIT_MAX)
		return CUDA_ERROR_UNSUPPORTED_LIMIT;
	*value = to_host(b)->limit[limit];
	return 0;
}

/* Blocks of `block` threads and `smem` dynamic bytes per SM. */
static int64_t cv_host_active_blocks(int32_t block, uint64_t smem)
{
	int64_t n;

	if (block > CV_HOST_MAX_THREADS || smem > CV_HOST_SMEM_OPTIN)
		return 0;
	n = CV_MAX(2048 / block, 1);
	if (smem)
		n = CV_MIN(n, (int64_t)(233472 / smem));
	return n;
}

static int cv_host_occupancy(struct cv_backend *b, cv_bobj fn,
			     const struct cv_occupancy *in,
			     struct cv_occupancy_r *out)
{
	struct cv_host *h = to_host(b);

	memset(out, 0, sizeof(*out));
	switch (in->kind) {
	case CV_OCC_ACTIVE_BLOCKS:
		if (in->block <= 0)
			return CUDA_ERROR_INVALID_VALUE;
		out->value = cv_host_active_blocks(in->block, in->smem);
		return 0;
	case CV_OCC_AVAIL_SMEM:
		if (in->block <= 0 || in->block > CV_HOST_MAX_THREADS)
			return CUDA_ERROR_INVALID_VALUE;
		out->value = CV_HOST_SMEM_BLOCK;
		return 0;
	case CV_OCC_POTENTIAL:
		if (in->limit < 0)
			return CUDA_ERROR_INVALID_VALUE;
		out->grid = h->nsm * 2;
		out->block = in->limit > 0 && in->limit < CV_HOST_MAX_THREADS ?
				     in->limit : CV_HOST_MAX_THREADS;
		return 0;
	}
	return CUDA_ERROR_INVALID_VALUE;
}

/* ---- object teardown ------------------------------------------------- */

/* Unlinks and frees any object; NULL is a no-op. */
static void cv_host_free_obj(struct cv_host *h, struct cv_hobj *o)
{
	if (!o)
		return;
	cv_hobj_del(o);
	switch (o->type) {
	case CV_HOBJ_MEM:
		close(((struct cv_hmem *)o)->fd);
		free(o);
		break;
	case CV_HOBJ_MODULE:
		cv_hmod_free(h, (struct cv_hmod *)o);
		break;
	case CV_HOBJ_STREAM:
	case CV_HOBJ_EVENT:
		free(o);
		break;
	}
}

static int cv_host_module_unload(struct cv_backend *b, cv_bobj mod)
{
	cv_host_free_obj(to_host(b), mod);
	return 0;
}

/*
 * A host module has no functions of its own: its kernels are looked up by
 * name in the kernel libraries, so enumeration finds none.
 */
static int cv_host_module_function_name(struct cv_backend *b, cv_bobj mod,
					uint32_t index, char *name, size_t size,
					uint32_t *count)
{
	*count = 0;
	return CUDA_SUCCESS;
}

/* One cluster of one block: the host "device" has no clusters. */
static int cv_host_occupancy_cluster(struct cv_backend *b, cv_bobj f,
				     uint32_t kind, const uint32_t grid[3],
				     const uint32_t block[3], uint32_t shmem,
				     const struct cv_launch_attr *attrs,
				     uint32_t nattrs, int *value)
{
	if (kind != CV_OCC_ACTIVE_CLUSTERS && kind != CV_OCC_CLUSTER_SIZE)
		return CUDA_ERROR_INVALID_VALUE;
	*value = 1;
	return CUDA_SUCCESS;
}

/* ==== begin: digest (live migration; core/digest.h) ==== */

/*
 * Device addresses are host addresses here: the calling thread reads the
 * mapping itself, and s does not matter (every stream has finished).
 * Touches no backend state, so any thread may call it at any time.
 */
static int cv_host_digest(struct cv_backend *b, uint64_t dev, uint64_t len,
			  uint32_t granule, uint64_t seed, uint8_t *out,
			  cv_bobj s, uint32_t flags)
{
	if (!cv_digest_range_ok(dev, len, granule))
		return CUDA_ERROR_INVALID_VALUE;
	cv_digest_many((const void *)(uintptr_t)dev, len, granule, seed, out);
	return 0;
}

/* ==== end: digest ==== */

const struct cv_backend_ops cv_backend_host = {
	.name = "host",
	.open = cv_host_open,
	.close = cv_host_close,
	.host_register = cv_host_host_register,
	.host_unregister = cv_host_host_unregister,
	.va_reserve = cv_host_va_reserve,
	.mem_create = cv_host_mem_create,
	.mem_release = cv_host_mem_release,
	.mem_map = cv_host_mem_map,
	.mem_unmap = cv_host_mem_unmap,
	.mem_export = cv_host_mem_export,
	.mem_import = cv_host_mem_import,
	.mem_info = cv_host_mem_info,
	.stream_create = cv_host_stream_create,
	.stream_destroy = cv_host_obj_destroy,
	.stream_sync = cv_host_done,
	.stream_query = cv_host_done,
	.stream_wait_event = cv_host_stream_wait_event,
	.event_create = cv_host_event_create,
	.event_destroy = cv_host_obj_destroy,
	.event_record = cv_host_event_record,
	.event_sync = cv_host_done,
	.event_query = cv_host_done,
	.event_elapsed = cv_host_event_elapsed,
	.memcpy = cv_host_memcpy,
	.memcpy2d = cv_host_memcpy2d,
	.memset = cv_host_memset,
	.module_load = cv_host_module_load,
	.module_unload = cv_host_module_unload,
	.get_function = cv_host_get_function,
	.get_global = cv_host_get_global,
	.func_get_attr = cv_host_func_get_attr,
	.func_set_attr = cv_host_func_set_attr,
	.func_set_cache = cv_host_func_set_cache,
	.launch = cv_host_launch,
	.host_func = cv_host_host_func,
	.ctx_sync = cv_host_ctx_sync,
	.ctx_set_limit = cv_host_ctx_set_limit,
	.ctx_get_limit = cv_host_ctx_get_limit,
	.occupancy = cv_host_occupancy,
	.occupancy_cluster = cv_host_occupancy_cluster,
	.module_function_name = cv_host_module_function_name,
	.marker_create = cv_host_marker_create,
	.marker_destroy = cv_host_obj_destroy,
	.marker_record = cv_host_marker_record,
	.marker_query = cv_host_done,
	.marker_wait = cv_host_done,
	.digest = cv_host_digest,
};

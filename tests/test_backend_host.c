/* SPDX-License-Identifier: MIT */
/*
 * The host backend through its ops table (cv_backend_host): device VA,
 * memory, copies, memsets, streams, events, markers, module formats, a
 * kernel library (tests/hk_test_lib.c, built as hk_test_lib.so), launches,
 * globals, limits and occupancy.
 *
 * Usage: test_backend_host [ABSOLUTE_PATH_OF_hk_test_lib.so]
 * (default: hk_test_lib.so next to this program).
 */
#include <cuda.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "../core/log.h"
#include "../worker/backend.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

static int g_pass, g_fail;

#define CHECK(cond)                                                        \
	do {                                                               \
		if (cond) {                                                \
			g_pass++;                                          \
		} else {                                                   \
			g_fail++;                                          \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__,      \
				__LINE__, #cond);                          \
		}                                                          \
	} while (0)

#define CHECK_EQ(a, b)                                                     \
	do {                                                               \
		long long a_ = (long long)(a), b_ = (long long)(b);        \
		if (a_ == b_) {                                            \
			g_pass++;                                          \
		} else {                                                   \
			g_fail++;                                          \
			fprintf(stderr, "FAIL %s:%d: %s == %lld, want %s "  \
				"== %lld\n", __FILE__, __LINE__, #a, a_,   \
				#b, b_);                                   \
		}                                                          \
	} while (0)

static const struct cv_backend_ops *ops = &cv_backend_host;
static struct cv_backend *be;

#define WIN CV_WINDOW_ADDR
#define MB (1ull << 20)

/* ---- device and probe ------------------------------------------------ */

static void test_open(struct cv_devinfo *info)
{
	struct cv_backend_cfg cfg = { .gpu = 0, .driver = NULL,
				      .quota = 1ull << 30 };
	struct cv_devinfo again;
	struct cv_backend *b2 = NULL;
	static const uint8_t zero[16];

	CHECK_EQ(ops->open(&cfg, info, &be), 0);
	CHECK(!strcmp(info->name, "cuvisor host vGPU"));
	CHECK_EQ(info->backend, CV_BACKEND_HOST);
	CHECK_EQ(info->driver_version, 13000);
	CHECK_EQ(info->cc_major, 9);
	CHECK_EQ(info->cc_minor, 0);
	CHECK_EQ(info->attr[CU_DEVICE_ATTRIBUTE_WARP_SIZE], 32);
	CHECK_EQ(info->attr[CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK], 1024);
	CHECK_EQ(info->attr[CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z], 64);
	CHECK_EQ(info->attr[CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X], 2147483647);
	CHECK_EQ(info->attr[CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT],
		 sysconf(_SC_NPROCESSORS_ONLN));
	CHECK_EQ(info->attr[CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING], 1);
	CHECK_EQ(info->attr
		 [CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED], 1);
	CHECK_EQ(info->attr
		 [CU_DEVICE_ATTRIBUTE_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM],
		 1);
	CHECK_EQ(info->attr[CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED], 0);
	CHECK(memcmp(info->uuid, zero, 16) != 0);

	/* a second instance describes the same device */
	CHECK_EQ(ops->open(&cfg, &again, &b2), 0);
	CHECK(!memcmp(info->uuid, again.uuid, 16));
	ops->close(b2);
}

static void test_probe(void)
{
	char *buf = NULL, name[64];
	unsigned long long total = 0;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int idx = -1;

	CHECK(f != NULL);
	if (!f)
		return;
	CHECK_EQ(cv_backend_host_probe(f), 1);
	fclose(f);
	CHECK_EQ(sscanf(buf, "gpu %d %llu %63[^\n]", &idx, &total, name), 3);
	CHECK_EQ(idx, 0);
	CHECK(total > 0);
	CHECK(!strcmp(name, "cuvisor host vGPU"));
	free(buf);
}

/* ---- memory ---------------------------------------------------------- */

/* True when [a, a + len) is still reserved (some mapping is there). */
static int addr_taken(uint64_t a, size_t len)
{
	void *p = mmap((void *)a, len, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1,
		       0);

	if (p == MAP_FAILED)
		return errno == EEXIST;
	munmap(p, len);
	return (uint64_t)p != a; /* old kernels: hint not honoured */
}

static void test_memory(cv_bobj *mem_out)
{
	uint64_t free0, total, free1, t1;
	cv_bobj mem = NULL, mem2 = NULL;

	CHECK_EQ(ops->va_reserve(be, WIN, CV_WINDOW_SIZE), 0);
	cv_log_init("test", CV_LOG_OFF, NULL);
	CHECK_EQ(ops->va_reserve(be, WIN, CV_GRANULE), CUDA_ERROR_INVALID_VALUE);
	cv_log_init("test", CV_LOG_WARN, NULL);
	CHECK_EQ(ops->mem_info(be, &free0, &total), 0);
	CHECK(total > 0);
	CHECK_EQ(free0, total);

	CHECK_EQ(ops->mem_create(be, 2 * CV_GRANULE, &mem), 0);
	CHECK_EQ(ops->mem_create(be, CV_GRANULE, &mem2), 0);
	CHECK_EQ(ops->mem_map(be, WIN, 2 * CV_GRANULE, mem, 0), 0);
	CHECK_EQ(ops->mem_info(be, &free1, &t1), 0);
	CHECK_EQ(free1, total - 2 * CV_GRANULE);

	/* refused: overlap, outside the reservation, beyond the memory */
	CHECK_EQ(ops->mem_map(be, WIN + CV_GRANULE, CV_GRANULE, mem2, 0),
		 CUDA_ERROR_INVALID_VALUE);
	CHECK_EQ(ops->mem_map(be, WIN - CV_GRANULE, CV_GRANULE, mem2, 0),
		 CUDA_ERROR_INVALID_VALUE);
	CHECK_EQ(ops->mem_map(be, WIN + 8 * CV_GRANULE, CV_GRANULE, mem2,
			      CV_GRANULE), CUDA_ERROR_INVALID_VALUE);

	/* the same memory at two addresses is the same bytes */
	CHECK_EQ(ops->mem_map(be, WIN + 8 * CV_GRANULE, CV_GRANULE, mem,
			      CV_GRANULE), 0);
	memset((void *)(WIN + CV_GRANULE), 0x5a, 64);
	CHECK_EQ(((uint8_t *)(WIN + 8 * CV_GRANULE))[63], 0x5a);

	/* unmap must cover whole mappings; the range stays reserved */
	CHECK_EQ(ops->mem_unmap(be, WIN + 8 * CV_GRANULE, CV_PAGE),
		 CUDA_ERROR_INVALID_VALUE);
	CHECK_EQ(ops->mem_unmap(be, WIN + 8 * CV_GRANULE, CV_GRANULE), 0);
	CHECK_EQ(ops->mem_unmap(be, WIN + 8 * CV_GRANULE, CV_GRANULE),
		 CUDA_ERROR_INVALID_VALUE);
	CHECK(addr_taken(WIN + 8 * CV_GRANULE, CV_GRANULE));
	CHECK_EQ(ops->mem_info(be, &free1, &t1), 0);
	CHECK_EQ(free1, total - 2 * CV_GRANULE);

	/* mapping memory that was released keeps working */
	CHECK_EQ(ops->mem_map(be, WIN + 4 * CV_GRANULE, CV_GRANULE, mem2, 0),
		 0);
	CHECK_EQ(ops->mem_release(be, mem2), 0);
	((volatile uint8_t *)(WIN + 4 * CV_GRANULE))[0] = 1;
	CHECK_EQ(ops->mem_unmap(be, WIN + 4 * CV_GRANULE, CV_GRANULE), 0);

	CHECK_EQ(ops->host_register(be, (void *)WIN, CV_PAGE), 0);
	CHECK_EQ(ops->host_unregister(be, (void *)WIN), 0);
	*mem_out = mem;
}

/* ---- copies and memsets ---------------------------------------------- */

static void test_copies(void)
{
	static uint8_t host[4096], back[4096];
	struct cv_copy2d c;
	uint64_t d0 = WIN, d1 = WIN + MB;
	int i, ok = 1;

	for (i = 0; i < 4096; i++)
		host[i] = (uint8_t)(i * 7 + 3);
	CHECK_EQ(ops->memcpy(be, CV_COPY_HTOD, d0, (uint64_t)host, 4096, NULL),
		 0);
	CHECK_EQ(ops->memcpy(be, CV_COPY_DTOD, d1, d0, 4096, NULL), 0);
	CHECK_EQ(ops->memcpy(be, CV_COPY_DTOH, (uint64_t)back, d1, 4096, NULL),
		 0);
	CHECK(!memcmp(host, back, 4096));
	CHECK_EQ(ops->memcpy(be, 9, d0, d1, 1, NULL), CUDA_ERROR_INVALID_VALUE);

	/* 2D: 16 rows of 100 bytes, host pitch 128, device pitch 256 */
	memset((void *)d0, 0, 8192);
	c = (struct cv_copy2d){ .dst = d0, .dst_pitch = 256,
				.src = (uint64_t)host, .src_pitch = 128,
				.width = 100, .height = 16,
				.kind = CV_COPY_HTOD };
	CHECK_EQ(ops->memcpy2d(be, &c, NULL), 0);
	for (i = 0; i < 16; i++) {
		ok &= !memcmp((void *)(d0 + 256 * i), host + 128 * i, 100);
		ok &= ((uint8_t *)d0)[256 * i + 100] == 0;
	}
	CHECK(ok);
	c = (struct cv_copy2d){ .dst = d1, .dst_pitch = 100, .src = d0,
				.src_pitch = 256, .width = 100, .height = 16,
				.kind = CV_COPY_DTOD };
	CHECK_EQ(ops->memcpy2d(be, &c, NULL), 0);
	memset(back, 0, sizeof(back));
	c = (struct cv_copy2d){ .dst = (uint64_t)back, .dst_pitch = 128,
				.src = d1, .src_pitch = 100, .width = 100,
				.height = 16, .kind = CV_COPY_DTOH };
	CHECK_EQ(ops->memcpy2d(be, &c, NULL), 0);
	for (ok = 1, i = 0; i < 16; i++)
		ok &= !memcmp(back + 128 * i, host + 128 * i, 100);
	CHECK(ok);
	c.width = 200; /* wider than the pitch */
	CHECK_EQ(ops->memcpy2d(be, &c, NULL), CUDA_ERROR_INVALID_VALUE);
}

static int all_u8(uint64_t a, size_t n, uint8_t v)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (((uint8_t *)a)[i] != v)
			return 0;
	return 1;
}

static void test_memsets(void)
{
	uint64_t d = WIN + 2 * MB, y;
	uint16_t *p16 = (uint16_t *)d;
	uint32_t *p32 = (uint32_t *)d;
	int ok = 1, i;

	memset((void *)d, 0, 4096);
	CHECK_EQ(ops->memset(be, d, 0, 0x1ab, 1, 100, 1, NULL), 0);
	CHECK(all_u8(d, 100, 0xab) && all_u8(d + 100, 100, 0));

	memset((void *)d, 0, 4096);
	CHECK_EQ(ops->memset(be, d, 0, 0xbeef, 2, 50, 1, NULL), 0);
	for (i = 0; i < 50; i++)
		ok &= p16[i] == 0xbeef;
	CHECK(ok && p16[50] == 0);

	memset((void *)d, 0, 4096);
	CHECK_EQ(ops->memset(be, d, 0, 0xdeadbeef, 4, 25, 1, NULL), 0);
	for (ok = 1, i = 0; i < 25; i++)
		ok &= p32[i] == 0xdeadbeef;
	CHECK(ok && p32[25] == 0);

	/* 2D, each width: 8 rows of 10 elements, pitch 64 bytes */
	memset((void *)d, 0, 4096);
	CHECK_EQ(ops->memset(be, d, 64, 0x11, 1, 10, 8, NULL), 0);
	for (ok = 1, y = 0; y < 8; y++)
		ok &= all_u8(d + 64 * y, 10, 0x11) &&
		      all_u8(d + 64 * y + 10, 54, 0);
	CHECK(ok);
	memset((void *)d, 0, 4096);
	CHECK_EQ(ops->memset(be, d, 64, 0x2233, 2, 10, 8, NULL), 0);
	for (ok = 1, y = 0; y < 8; y++)
		ok &= p16[32 * y] == 0x2233 && p16[32 * y + 9] == 0x2233 &&
		      p16[32 * y + 10] == 0;
	CHECK(ok);
	memset((void *)d, 0, 4096);
	CHECK_EQ(ops->memset(be, d, 64, 0x44556677, 4, 10, 8, NULL), 0);
	for (ok = 1, y = 0; y < 8; y++)
		ok &= p32[16 * y] == 0x44556677 &&
		      p32[16 * y + 9] == 0x44556677 && p32[16 * y + 10] == 0;
	CHECK(ok);

	CHECK_EQ(ops->memset(be, d, 0, 0, 3, 1, 1, NULL),
		 CUDA_ERROR_INVALID_VALUE);
	CHECK_EQ(ops->memset(be, d, 16, 0, 4, 10, 2, NULL),
		 CUDA_ERROR_INVALID_VALUE);
}

/* ---- streams, events, markers ---------------------------------------- */

static void test_streams_events(void)
{
	cv_bobj s = NULL, e1 = NULL, e2 = NULL, en = NULL, e3 = NULL, m = NULL;
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	float ms = -1;

	CHECK_EQ(ops->stream_create(be, CU_STREAM_NON_BLOCKING, -1, &s), 0);
	CHECK_EQ(ops->stream_create(be, 0x80, 0, &e3),
		 CUDA_ERROR_INVALID_VALUE);
	CHECK_EQ(ops->stream_sync(be, s), 0);
	CHECK_EQ(ops->stream_query(be, s), 0);
	CHECK_EQ(ops->stream_sync(be, NULL), 0);

	CHECK_EQ(ops->event_create(be, CU_EVENT_DEFAULT, &e1), 0);
	CHECK_EQ(ops->event_create(be, CU_EVENT_BLOCKING_SYNC, &e2), 0);
	CHECK_EQ(ops->event_create(be, CU_EVENT_DISABLE_TIMING, &en), 0);
	CHECK_EQ(ops->event_create(be, CU_EVENT_DEFAULT, &e3), 0);
	CHECK_EQ(ops->event_elapsed(be, e1, e2, &ms),
		 CUDA_ERROR_INVALID_HANDLE); /* never recorded */
	CHECK_EQ(ops->event_record(be, e1, s, 0), 0);
	nanosleep(&ts, NULL);
	CHECK_EQ(ops->event_record(be, e2, NULL, 0), 0);
	CHECK_EQ(ops->event_record(be, en, s, 0), 0);
	CHECK_EQ(ops->event_query(be, e2), 0);
	CHECK_EQ(ops->event_sync(be, e2), 0);
	CHECK_EQ(ops->event_elapsed(be, e1, e2, &ms), 0);
	CHECK(ms >= 19.0f && ms < 2000.0f);
	CHECK_EQ(ops->event_elapsed(be, e2, e1, &ms), 0);
	CHECK(ms < 0);
	CHECK_EQ(ops->event_elapsed(be, e1, en, &ms),
		 CUDA_ERROR_INVALID_HANDLE);
	CHECK_EQ(ops->event_elapsed(be, e1, e3, &ms),
		 CUDA_ERROR_INVALID_HANDLE);
	CHECK_EQ(ops->stream_wait_event(be, s, e1, 0), 0);

	CHECK_EQ(ops->marker_create(be, &m), 0);
	CHECK_EQ(ops->marker_query(be, m), 0);
	CHECK_EQ(ops->marker_record(be, m, s), 0);
	CHECK_EQ(ops->marker_query(be, m), 0);
	CHECK_EQ(ops->marker_wait(be, m), 0);
	CHECK_EQ(ops->marker_destroy(be, m), 0);

	CHECK_EQ(ops->event_destroy(be, e1), 0);
	CHECK_EQ(ops->event_destroy(be, e2), 0);
	CHECK_EQ(ops->event_destroy(be, en), 0);
	CHECK_EQ(ops->event_destroy(be, e3), 0);
	CHECK_EQ(ops->stream_destroy(be, s), 0);
	CHECK_EQ(ops->ctx_sync(be), 0);
}

/* ---- module formats -------------------------------------------------- */

static int load(const void *img, size_t len)
{
	cv_bobj m = NULL;
	int r = ops->module_load(be, img, len, &m);

	if (!r)
		ops->module_unload(be, m);
	return r;
}

static void test_formats(void)
{
	uint8_t img[256];
	Elf64_Ehdr eh;
	uint32_t magic = 0xBA55ED50u;
	uint16_t ver = 1, hsz = 16;
	uint64_t fsz = 16;
	static const char ptx[] = "//\n// Generated by NVIDIA NVVM Compiler\n"
				  "//\n\n.version 9.0\n.target sm_90\n"
				  ".address_size 64\n";
	static const char txt[] = "just some text, no directives\n";
	static const char bin[] = "\x01\x02.version\n";

	memset(&eh, 0, sizeof(eh));
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_machine = 190; /* EM_CUDA */
	eh.e_ehsize = sizeof(eh);
	memset(img, 0, sizeof(img));
	memcpy(img, &eh, sizeof(eh));
	CHECK_EQ(load(img, sizeof(img)), 0);
	CHECK_EQ(load(img, 32), CUDA_ERROR_INVALID_IMAGE); /* truncated */
	eh.e_shoff = 64;
	eh.e_shnum = 4;
	eh.e_shentsize = 64; /* 256 bytes of headers from 64: past the end */
	memcpy(img, &eh, sizeof(eh));
	CHECK_EQ(load(img, sizeof(img)), CUDA_ERROR_INVALID_IMAGE);
	eh.e_shnum = 3;
	memcpy(img, &eh, sizeof(eh));
	CHECK_EQ(load(img, sizeof(img)), 0);

	memset(img, 0, sizeof(img));
	memcpy(img, &magic, 4);
	memcpy(img + 4, &ver, 2);
	memcpy(img + 6, &hsz, 2);
	memcpy(img + 8, &fsz, 8);
	CHECK_EQ(load(img, 32), 0);
	CHECK_EQ(load(img, 31), CUDA_ERROR_INVALID_IMAGE);

	CHECK_EQ(load(ptx, sizeof(ptx)), 0);
	CHECK_EQ(load(ptx, sizeof(ptx) - 1), CUDA_ERROR_INVALID_IMAGE);
	CHECK_EQ(load(txt, sizeof(txt)), CUDA_ERROR_INVALID_IMAGE);
	CHECK_EQ(load(bin, sizeof(bin)), CUDA_ERROR_INVALID_IMAGE);
	memset(img, 0xa5, sizeof(img));
	CHECK_EQ(load(img, sizeof(img)), CUDA_ERROR_INVALID_IMAGE);
	CHECK_EQ(load(img, 0), CUDA_ERROR_INVALID_IMAGE);
}

/* ---- kernels --------------------------------------------------------- */

static const char ptx_img[] = ".version 9.0\n.target sm_90\n";

static int nhost;
static void host_fn(void *arg)
{
	nhost += *(int *)arg;
}

/* Points params[i] at each parameter inside buf, per the layout. */
static void pack(const struct cv_fparams *fp, uint8_t *buf, void **params,
		 const void *const *vals)
{
	uint32_t i;

	for (i = 0; i < fp->n; i++) {
		memcpy(buf + fp->p[i].offset, vals[i], fp->p[i].size);
		params[i] = buf + fp->p[i].offset;
	}
}

static void test_vec_add(cv_bobj mod)
{
	const uint32_t grid[3] = { 4, 1, 1 }, block[3] = { 256, 1, 1 };
	uint64_t a = WIN + 3 * MB, b = a + 8192, c = b + 8192;
	struct cv_fparams fp = { 0 };
	cv_bobj f = NULL, f2 = NULL;
	int n = 1000, i, ok = 1;
	const void *vals[4] = { &a, &b, &c, &n };
	uint8_t buf[64];
	void *params[4];
	float *fa = (float *)a, *fb = (float *)b, *fc = (float *)c;

	CHECK_EQ(ops->get_function(be, mod, "_Z7vec_addPKfS0_Pfi", &f, &fp), 0);
	CHECK_EQ(fp.n, 4);
	CHECK_EQ(fp.size, 28);
	if (fp.n != 4) {
		free(fp.p);
		return;
	}
	CHECK(fp.p[1].offset == 8 && fp.p[3].offset == 24 &&
	      fp.p[3].size == 4);
	for (i = 0; i < 1024; i++) {
		fa[i] = (float)i;
		fb[i] = (float)(2 * i);
		fc[i] = -1;
	}
	pack(&fp, buf, params, vals);
	CHECK_EQ(ops->launch(be, f, grid, block, 0, NULL, params, NULL, 0), 0);
	for (i = 0; i < n; i++)
		ok &= fc[i] == (float)(3 * i);
	CHECK(ok && fc[n] == -1);
	free(fp.p);

	CHECK_EQ(ops->get_function(be, mod, "_Z7vec_addPKfS0_Pfi", &f2, &fp),
		 0);
	CHECK(f2 == f); /* one function per name, as the driver */
	free(fp.p);
}

static void test_launch_rules(cv_bobj mod)
{
	uint32_t grid[3] = { 2, 3, 4 }, block[3] = { 8, 4, 2 };
	uint64_t out = WIN + 3 * MB;
	unsigned *o = (unsigned *)out;
	struct cv_launch_attr attr;
	struct cv_fparams fp = { 0 };
	void *params[1] = { &out };
	cv_bobj f = NULL;
	int v = 0;

	CHECK_EQ(ops->get_function(be, mod, "_Z4dimsPj", &f, &fp), 0);
	CHECK(fp.n == 1 && fp.size == 8);
	free(fp.p);
	memset(o, 0, 64);
	CHECK_EQ(ops->launch(be, f, grid, block, 512, NULL, params, NULL, 0),
		 0);
	CHECK(o[0] == 2 && o[1] == 3 && o[2] == 4 && o[3] == 8 && o[4] == 4 &&
	      o[5] == 2 && o[6] == 512);

	memset(&attr, 0, sizeof(attr));
	attr.id = CU_LAUNCH_ATTRIBUTE_PRIORITY;
	CHECK_EQ(ops->launch(be, f, grid, block, 0, NULL, params, &attr, 1), 0);

	grid[1] = 0;
	CHECK_EQ(ops->launch(be, f, grid, block, 0, NULL, params, NULL, 0),
		 CUDA_ERROR_INVALID_VALUE);
	grid[1] = 1;
	block[0] = 1025;
	block[2] = 1;
	CHECK_EQ(ops->launch(be, f, grid, block, 0, NULL, params, NULL, 0),
		 CUDA_ERROR_INVALID_VALUE);
	block[0] = 32;
	block[1] = 32;
	block[2] = 2; /* 2048 threads */
	CHECK_EQ(ops->launch(be, f, grid, block, 0, NULL, params, NULL, 0),
		 CUDA_ERROR_INVALID_VALUE);
	block[0] = block[1] = 1;
	block[2] = 65;
	CHECK_EQ(ops->launch(be, f, grid, block, 0, NULL, params, NULL, 0),
		 CUDA_ERROR_INVALID_VALUE);
	block[2] = 1;

	/* dynamic shared memory above 48 KiB needs the attribute */
	CHECK_EQ(ops->launch(be, f, grid, block, 60000, NULL, params, NULL, 0),
		 CUDA_ERROR_INVALID_VALUE);
	CHECK_EQ(ops->func_set_attr(be, f,
				    CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
				    100000), 0);
	CHECK_EQ(ops->func_get_attr(be, f,
				    CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
				    &v), 0);
	CHECK_EQ(v, 100000);
	CHECK_EQ(ops->launch(be, f, grid, block, 60000, NULL, params, NULL, 0),
		 0);
	CHECK_EQ(ops->func_set_attr(be, f,
				    CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
				    300000), CUDA_ERROR_INVALID_VALUE);
	CHECK_EQ(ops->func_set_attr(be, f, CU_FUNC_ATTRIBUTE_NUM_REGS, 8),
		 CUDA_ERROR_INVALID_VALUE);
	CHECK_EQ(ops->func_get_attr(be, f, CU_FUNC_ATTRIBUTE_NUM_REGS, &v), 0);
	CHECK_EQ(v, 32);
	CHECK_EQ(ops->func_get_attr(be, f,
				    CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK,
				    &v), 0);
	CHECK_EQ(v, 1024);
	CHECK_EQ(ops->func_get_attr(be, f, CU_FUNC_ATTRIBUTE_MAX, &v),
		 CUDA_ERROR_INVALID_VALUE);
	CHECK_EQ(ops->func_set_cache(be, f, CU_FUNC_CACHE_PREFER_L1), 0);
	CHECK_EQ(ops->func_set_cache(be, f, 7), CUDA_ERROR_INVALID_VALUE);
}

static void test_layout(cv_bobj mod)
{
	const uint32_t one[3] = { 1, 1, 1 };
	uint64_t out = WIN + 3 * MB;
	unsigned *o = (unsigned *)out;
	struct cv_fparams fp = { 0 };
	char ch = 'x';
	double dv = 42.0;
	int iv = -7;
	const void *vals[4] = { &ch, &dv, &iv, &out };
	uint8_t buf[64];
	void *params[4];
	cv_bobj f = NULL;

	CHECK_EQ(ops->get_function(be, mod, "_Z6layoutcdiPj", &f, &fp), 0);
	CHECK(fp.n == 4 && fp.size == 32);
	if (fp.n != 4) {
		free(fp.p);
		return;
	}
	CHECK(fp.p[0].offset == 0 && fp.p[1].offset == 8 &&
	      fp.p[2].offset == 16 && fp.p[3].offset == 24);
	pack(&fp, buf, params, vals);
	CHECK_EQ(ops->launch(be, f, one, one, 0, NULL, params, NULL, 0), 0);
	CHECK(o[0] == 'x' && o[1] == 42 && o[2] == (unsigned)-7);
	free(fp.p);
	CHECK_EQ(ops->get_function(be, mod, "no_such_kernel", &f, &fp),
		 CUDA_ERROR_NOT_FOUND);
}

/* Launches read_table of module mod into out (4 words). */
static int read_table(cv_bobj mod, uint64_t out)
{
	const uint32_t one[3] = { 1, 1, 1 };
	struct cv_fparams fp = { 0 };
	void *params[1] = { &out };
	cv_bobj f = NULL;
	int r;

	r = ops->get_function(be, mod, "_Z10read_tablePj", &f, &fp);
	free(fp.p);
	if (!r)
		r = ops->launch(be, f, one, one, 0, NULL, params, NULL, 0);
	return r;
}

/* Times the backend told the kernel library a global went away. */
static int nbind_null(const char *lib)
{
	void *dl = dlopen(lib, RTLD_NOW | RTLD_NOLOAD);
	int (*fn)(void);
	int n = -1;

	if (!dl)
		return -1;
	*(void **)&fn = dlsym(dl, "hk_test_nbind_null");
	if (fn)
		n = fn();
	dlclose(dl);
	return n;
}

static void test_globals(cv_bobj mod, const char *lib)
{
	uint64_t d = 0, n = 0, d2 = 0, dz = 0, out = WIN + 3 * MB;
	uint32_t *o = (uint32_t *)out;
	cv_bobj mod2 = NULL;
	uint32_t *t;
	int nulls;

	CHECK_EQ(ops->get_global(be, mod, "g_table", &d, &n), 0);
	CHECK_EQ(n, 16);
	t = (uint32_t *)d;
	CHECK(t && t[0] == 1 && t[3] == 4);
	t[0] = 99;
	CHECK_EQ(ops->get_global(be, mod, "g_table", &d2, &n), 0);
	CHECK(d2 == d && ((uint32_t *)d2)[0] == 99);
	CHECK_EQ(ops->get_global(be, mod, "g_zero", &dz, &n), 0);
	CHECK(n == 100 && all_u8(dz, 100, 0));
	CHECK_EQ(ops->get_global(be, mod, "g_nope", &d2, &n),
		 CUDA_ERROR_NOT_FOUND);

	/* another module has its own, fresh copy */
	CHECK_EQ(ops->module_load(be, ptx_img, sizeof(ptx_img), &mod2), 0);
	CHECK_EQ(ops->get_global(be, mod2, "g_table", &d2, &n), 0);
	CHECK(d2 != d && ((uint32_t *)d2)[0] == 1);

	/* and each module's kernels see that module's copy */
	memset(o, 0, 16);
	CHECK_EQ(read_table(mod, out), 0);
	CHECK(o[0] == 99 && o[3] == 4 && t[0] == 100);
	CHECK_EQ(read_table(mod2, out), 0);
	CHECK(o[0] == 1 && ((uint32_t *)d2)[0] == 2);
	CHECK_EQ(read_table(mod, out), 0);
	CHECK(o[0] == 100);
	CHECK_EQ(read_table(mod2, out), 0);
	CHECK(o[0] == 2);

	/* unloading the bound module unbinds its two globals */
	nulls = nbind_null(lib);
	CHECK_EQ(ops->module_unload(be, mod2), 0);
	CHECK_EQ(nbind_null(lib), nulls + 2);
}

static void test_kernels(const char *lib)
{
	cv_bobj mod = NULL;
	int inc = 5;

	CHECK_EQ(ops->module_load(be, ptx_img, sizeof(ptx_img), &mod), 0);
	if (!mod)
		return;
	test_vec_add(mod);
	test_launch_rules(mod);
	test_layout(mod);
	test_globals(mod, lib);
	CHECK_EQ(ops->host_func(be, NULL, host_fn, &inc), 0);
	CHECK_EQ(nhost, 5);
	CHECK_EQ(ops->module_unload(be, mod), 0);
}

/* ---- context --------------------------------------------------------- */

static void test_ctx(const struct cv_devinfo *info)
{
	struct cv_occupancy in;
	struct cv_occupancy_r out;
	uint64_t v = 0;

	CHECK_EQ(ops->ctx_get_limit(be, CU_LIMIT_STACK_SIZE, &v), 0);
	CHECK_EQ(v, 1024);
	CHECK_EQ(ops->ctx_get_limit(be, CU_LIMIT_PRINTF_FIFO_SIZE, &v), 0);
	CHECK_EQ(v, 1 << 20);
	CHECK_EQ(ops->ctx_get_limit(be, CU_LIMIT_MALLOC_HEAP_SIZE, &v), 0);
	CHECK_EQ(v, 8 << 20);
	CHECK_EQ(ops->ctx_set_limit(be, CU_LIMIT_STACK_SIZE, 4096), 0);
	CHECK_EQ(ops->ctx_get_limit(be, CU_LIMIT_STACK_SIZE, &v), 0);
	CHECK_EQ(v, 4096);
	CHECK_EQ(ops->ctx_get_limit(be, 1000, &v), CUDA_ERROR_UNSUPPORTED_LIMIT);

	memset(&in, 0, sizeof(in));
	in.kind = CV_OCC_ACTIVE_BLOCKS;
	in.block = 256;
	CHECK_EQ(ops->occupancy(be, NULL, &in, &out), 0);
	CHECK_EQ(out.value, 8);
	in.block = 2048;
	CHECK_EQ(ops->occupancy(be, NULL, &in, &out), 0);
	CHECK_EQ(out.value, 0);
	in.kind = CV_OCC_AVAIL_SMEM;
	in.block = 128;
	in.nblocks = 2;
	CHECK_EQ(ops->occupancy(be, NULL, &in, &out), 0);
	CHECK_EQ(out.value, 49152);
	in.kind = CV_OCC_POTENTIAL;
	in.limit = 0;
	CHECK_EQ(ops->occupancy(be, NULL, &in, &out), 0);
	CHECK_EQ(out.block, 1024);
	CHECK_EQ(out.grid,
		 2 * info->attr[CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT]);
	in.limit = 128;
	CHECK_EQ(ops->occupancy(be, NULL, &in, &out), 0);
	CHECK_EQ(out.block, 128);
	in.kind = 77;
	CHECK_EQ(ops->occupancy(be, NULL, &in, &out), CUDA_ERROR_INVALID_VALUE);
}

/* ---- kernel library configuration ------------------------------------ */

static void test_bad_libs(const char *lib)
{
	struct cv_backend_cfg cfg = { 0 };
	struct cv_devinfo info;
	struct cv_backend *b = NULL;

	cv_log_init("test", CV_LOG_OFF, NULL);
	setenv("CUVISOR_HOST_KERNELS", "relative/lib.so", 1);
	CHECK(ops->open(&cfg, &info, &b) != 0);
	setenv("CUVISOR_HOST_KERNELS", "/nonexistent/lib.so", 1);
	CHECK(ops->open(&cfg, &info, &b) != 0);
	setenv("CUVISOR_HOST_KERNELS", "/usr/lib/x86_64-linux-gnu/libm.so.6",
	       1);
	if (!access("/usr/lib/x86_64-linux-gnu/libm.so.6", R_OK))
		CHECK(ops->open(&cfg, &info, &b) != 0); /* no entry point */
	cv_log_init("test", CV_LOG_WARN, NULL);
	setenv("CUVISOR_HOST_KERNELS", "", 1);
	CHECK_EQ(ops->open(&cfg, &info, &b), 0);
	ops->close(b);
	setenv("CUVISOR_HOST_KERNELS", lib, 1);
}

/* The kernel library: argv[1], or hk_test_lib.so next to this program. */
static int lib_path(int argc, char **argv, char *out, size_t n)
{
	char exe[PATH_MAX];
	ssize_t len;

	if (argc > 1) {
		snprintf(out, n, "%s", argv[1]);
		return out[0] == '/' ? 0 : -1;
	}
	len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (len <= 0)
		return -1;
	exe[len] = 0;
	snprintf(out, n, "%s/hk_test_lib.so", dirname(exe));
	return 0;
}

int main(int argc, char **argv)
{
	struct cv_devinfo info;
	char lib[PATH_MAX];
	cv_bobj mem = NULL;

	cv_log_init("test", CV_LOG_WARN, NULL);
	if (lib_path(argc, argv, lib, sizeof(lib))) {
		fprintf(stderr, "usage: %s [ABSOLUTE_PATH_OF_hk_test_lib.so]\n",
			argv[0]);
		return 2;
	}
	setenv("CUVISOR_HOST_KERNELS", lib, 1);
	test_bad_libs(lib);
	test_open(&info);
	if (!be) {
		printf("%d passed, %d failed\n", g_pass, g_fail);
		return 1;
	}
	test_probe();
	test_memory(&mem);
	test_copies();
	test_memsets();
	test_streams_events();
	test_formats();
	test_kernels(lib);
	test_ctx(&info);
	CHECK_EQ(ops->mem_unmap(be, WIN, 2 * CV_GRANULE), 0);
	CHECK_EQ(ops->mem_release(be, mem), 0);
	ops->close(be);
	CHECK(!addr_taken(WIN, CV_GRANULE)); /* close freed the window */
	printf("%d passed, %d failed\n", g_pass, g_fail);
	return g_fail ? 1 : 0;
}

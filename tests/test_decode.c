/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the worker's command decoder on the host backend: every
 * validation a hostile guest could hit returns a CUDA error (or -EPROTO
 * for an unusable ring) and leaves the vGPU working.
 */
#include <cuda.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../core/hash.h"
#include "../core/log.h"
#include "../core/proto.h"
#include "../core/ring.h"
#include "../worker/backend.h"
#include "../worker/vgpu.h"
#include "unit.h"

#define QUOTA (64ull << 20)
#define STAGING (CV_REGION_ADDR + CV_STAGING_OFF)
#define WIN CV_WINDOW_ADDR

static struct cv_vgpu v;
static uint8_t *region;

/* Runs one command that takes reply slot 0; returns the reply status. */
static int call(uint16_t op, uint16_t flags, const void *p, uint32_t len)
{
	struct cv_cmd_hdr h = { .op = op, .flags = flags, .len = len,
				.reply = 0 };
	static uint8_t buf[CV_CMD_MAX_PAYLOAD];

	if (len)
		memcpy(buf, p, len);
	v.replies[0].state = CV_REPLY_PENDING;
	if (cv_vgpu_exec(&v, &h, buf) < 0)
		return -1000;
	if (v.replies[0].state != CV_REPLY_DONE)
		return -1001;
	return v.replies[0].status;
}

/* Runs an async command; returns 0 or -EPROTO. */
static int post(uint16_t op, const void *p, uint32_t len)
{
	struct cv_cmd_hdr h = { .op = op, .len = len, .reply = CV_NO_REPLY };
	static uint8_t buf[CV_CMD_MAX_PAYLOAD];

	if (len)
		memcpy(buf, p, len);
	return cv_vgpu_exec(&v, &h, buf);
}

/* The deferred error, collected (and cleared) by a NOP. */
static int deferred(void)
{
	call(CV_OP_NOP, CV_CMDF_COLLECT, NULL, 0);
	return v.replies[0].async_err;
}

static int map(uint64_t va, uint64_t size)
{
	struct cv_mem_range a = { va, size };

	return call(CV_OP_MEM_MAP, 0, &a, sizeof(a));
}

static int copy(uint64_t dst, uint64_t src, uint64_t len, uint32_t kind)
{
	struct cv_memcpy c = { dst, src, len, kind, 0, 0, 0 };

	return call(CV_OP_MEMCPY, 0, &c, sizeof(c));
}

static void test_memory(void)
{
	struct cv_mem_range r;

	CHECK(map(WIN, CV_GRANULE) == CUDA_SUCCESS, "map one granule");
	CHECK(map(WIN, CV_GRANULE) == CUDA_ERROR_INVALID_VALUE,
	      "mapping it twice is refused");
	CHECK(map(WIN + 4096, CV_GRANULE) == CUDA_ERROR_INVALID_VALUE,
	      "an unaligned address is refused");
	CHECK(map(WIN - CV_GRANULE, CV_GRANULE) == CUDA_ERROR_INVALID_VALUE,
	      "below the window is refused");
	CHECK(map(WIN + CV_WINDOW_SIZE, CV_GRANULE) == CUDA_ERROR_INVALID_VALUE,
	      "above the window is refused");
	CHECK(map(WIN + CV_WINDOW_SIZE - CV_GRANULE, ~0ull - CV_GRANULE + 1) ==
	      CUDA_ERROR_INVALID_VALUE, "a size that wraps is refused");
	CHECK(map(WIN + CV_GRANULE, QUOTA) == CUDA_ERROR_OUT_OF_MEMORY,
	      "past the quota is CUDA_ERROR_OUT_OF_MEMORY");
	CHECK(map(WIN + CV_GRANULE, QUOTA - CV_GRANULE) == CUDA_SUCCESS,
	      "up to the quota is fine");
	CHECK(v.used == QUOTA, "usage is the quota");
	r = (struct cv_mem_range){ WIN + CV_GRANULE, QUOTA - CV_GRANULE };
	CHECK(post(CV_OP_MEM_UNMAP, &r, sizeof(r)) == 0 && deferred() == 0 &&
	      v.used == CV_GRANULE, "unmap gives the quota back");
	r.size = CV_GRANULE;
	CHECK(post(CV_OP_MEM_UNMAP, &r, sizeof(r)) == 0 &&
	      deferred() == CUDA_ERROR_INVALID_VALUE,
	      "unmapping what is not mapped is a deferred error");
}

static void test_copies(void)
{
	uint8_t *stg = region + CV_STAGING_OFF;
	int i, ok = 1;

	for (i = 0; i < 4096; i++)
		stg[i] = (uint8_t)(i * 7);
	CHECK(copy(WIN + 100, STAGING, 4096, CV_COPY_HTOD) == 0,
	      "staging to device");
	memset(stg, 0, 4096);
	CHECK(copy(STAGING, WIN + 100, 4096, CV_COPY_DTOH) == 0,
	      "device to staging");
	for (i = 0; i < 4096; i++)
		ok &= stg[i] == (uint8_t)(i * 7);
	CHECK(ok, "the bytes came back");
	CHECK(copy(WIN + CV_GRANULE - 10, STAGING, 20, CV_COPY_HTOD) ==
	      CUDA_ERROR_INVALID_VALUE, "a copy past the mapping's end");
	CHECK(copy(WIN, 0x10000, 16, CV_COPY_HTOD) == CUDA_ERROR_INVALID_VALUE,
	      "a host address outside the region");
	CHECK(copy(WIN, STAGING + CV_STAGING_CHUNKS * CV_STAGING_CHUNK - 8, 16,
		   CV_COPY_HTOD) == CUDA_ERROR_INVALID_VALUE,
	      "a host range past the staging area");
	CHECK(copy(WIN, (uint64_t)&ok, 4, CV_COPY_HTOD) ==
	      CUDA_ERROR_INVALID_VALUE, "the worker's own memory is refused");
	CHECK(copy(WIN, STAGING, ~0ull, CV_COPY_HTOD) ==
	      CUDA_ERROR_INVALID_VALUE, "a huge length");
	CHECK(copy(WIN, STAGING, 16, 9) == CUDA_ERROR_INVALID_VALUE,
	      "an unknown copy kind");
	CHECK(copy(WIN, WIN + 64, 64, CV_COPY_DTOD) == 0, "device to device");
}

static void test_memset_and_2d(void)
{
	struct cv_memset m = { .dst = WIN, .pitch = 256, .width = 64,
			       .height = 4, .value = 0xabcdef01, .elem = 4 };
	struct cv_memcpy2d c = { .dst = STAGING, .dst_pitch = 256,
				 .src = WIN, .src_pitch = 256, .width = 256,
				 .height = 4, .kind = CV_COPY_DTOH };
	uint32_t *p = (uint32_t *)(region + CV_STAGING_OFF);

	CHECK(call(CV_OP_MEMSET, 0, &m, sizeof(m)) == 0, "2D memset");
	CHECK(call(CV_OP_MEMCPY_2D, 0, &c, sizeof(c)) == 0 &&
	      p[0] == 0xabcdef01 && p[255] == 0xabcdef01, "2D copy back");
	m.elem = 3;
	CHECK(call(CV_OP_MEMSET, 0, &m, sizeof(m)) == CUDA_ERROR_INVALID_VALUE,
	      "element size 3 refused");
	m.elem = 4;
	m.pitch = 8; /* rows overlap: pitch < width */
	CHECK(call(CV_OP_MEMSET, 0, &m, sizeof(m)) == CUDA_ERROR_INVALID_VALUE,
	      "pitch below the row width refused");
	m.pitch = 1ull << 62;
	CHECK(call(CV_OP_MEMSET, 0, &m, sizeof(m)) == CUDA_ERROR_INVALID_VALUE,
	      "a pitch that overflows refused");
	c.height = 100000;
	CHECK(call(CV_OP_MEMCPY_2D, 0, &c, sizeof(c)) ==
	      CUDA_ERROR_INVALID_VALUE, "a 2D copy past the staging area");
}

static void test_protocol(void)
{
	struct cv_cmd_hdr h = { .op = CV_OP_NOP, .reply = CV_NREPLY };
	struct cv_mem_range r = { WIN, CV_GRANULE };
	struct cv_id id = { 77, 0 };

	CHECK(cv_vgpu_exec(&v, &h, NULL) == -EPROTO,
	      "a reply slot out of range is a protocol error");
	CHECK(call(CV_OP_COUNT + 5, 0, NULL, 0) == CUDA_ERROR_INVALID_VALUE,
	      "an unknown opcode is refused");
	CHECK(call(CV_OP_MEM_MAP, 0, &r, sizeof(r) - 1) ==
	      CUDA_ERROR_INVALID_VALUE, "a short payload is refused");
	CHECK(call(CV_OP_MEM_GET_INFO, 0, &r, 4) == CUDA_ERROR_INVALID_VALUE,
	      "a payload where none belongs is refused");
	CHECK(post(CV_OP_MEM_MAP, &r, sizeof(r)) == 0 &&
	      deferred() == CUDA_ERROR_INVALID_VALUE,
	      "a command that needs a reply sent without one is refused");
	CHECK(call(CV_OP_BLOB_PUT, 0, &r, 0) == CUDA_ERROR_INVALID_VALUE,
	      "a command that takes no reply sent with one is refused");
	CHECK(call(CV_OP_STREAM_SYNC, 0, &id, sizeof(id)) ==
	      CUDA_ERROR_INVALID_HANDLE, "an unknown stream id");
	id.id = 0xffffffffu;
	CHECK(call(CV_OP_EVENT_SYNC, 0, &id, sizeof(id)) ==
	      CUDA_ERROR_INVALID_HANDLE, "an id past every table");
	CHECK(call(CV_OP_NOP, 0, NULL, 0) == 0, "the vGPU still answers");
}

/* A fatbin image with an empty payload: the host backend accepts the
 * format and resolves kernels in CUVISOR_HOST_KERNELS. */
static int load_module(uint32_t id)
{
	uint8_t img[48] = { 0 };
	uint32_t magic = 0xba55ed50u;
	uint16_t ver = 1, hs = 16;
	uint64_t fs = 32;
	struct cv_blob_put b = { 0, sizeof(img), sizeof(img), 0, 0 };
	struct cv_module_load l = { id, 0, sizeof(img) };

	memcpy(img, &magic, 4);
	memcpy(img + 4, &ver, 2);
	memcpy(img + 6, &hs, 2);
	memcpy(img + 8, &fs, 8);
	memcpy(region + CV_STAGING_OFF, img, sizeof(img));
	post(CV_OP_BLOB_PUT, &b, sizeof(b));
	return call(CV_OP_MODULE_LOAD, 0, &l, sizeof(l));
}

/*
 * A host kernel handed a wild pointer faults in the worker: that must be
 * CUDA_ERROR_ILLEGAL_ADDRESS for the launch, as on a GPU, and the worker
 * goes on.
 */
static void test_wild_kernel(void)
{
	uint8_t buf[256];
	struct cv_get_function *gf = (struct cv_get_function *)buf;
	struct cv_launch *l = (struct cv_launch *)buf;
	const struct cv_function_r *fr;
	uint64_t wild = 0x10, idx = 0;
	uint32_t val = 1, psize;

	memset(buf, 0, sizeof(buf));
	*gf = (struct cv_get_function){ .module = 3, .func_id = 6,
					.name_len = 8 };
	memcpy(buf + sizeof(*gf), "write_at", 8);
	if (call(CV_OP_MODULE_GET_FUNCTION, 0, buf, sizeof(*gf) + 8)) {
		CHECK(0, "look up write_at");
		return;
	}
	fr = (const struct cv_function_r *)v.replies[0].data;
	psize = fr->param_size;
	memset(buf, 0, sizeof(buf));
	*l = (struct cv_launch){ .func = 6, .grid = { 1, 1, 1 },
				 .block = { 1, 1, 1 }, .param_size = psize };
	memcpy(buf + sizeof(*l), &wild, 8);
	memcpy(buf + sizeof(*l) + 8, &idx, 8);
	memcpy(buf + sizeof(*l) + 16, &val, 4);
	CHECK(psize == 20 && post(CV_OP_LAUNCH, buf, sizeof(*l) + psize) == 0 &&
	      deferred() == CUDA_ERROR_ILLEGAL_ADDRESS,
	      "a kernel's wild pointer is CUDA_ERROR_ILLEGAL_ADDRESS, not a crash");
	CHECK(call(CV_OP_NOP, 0, NULL, 0) == 0, "the worker goes on");
}

/* Module 3 is loaded from the 48-byte image of load_module(). */
static void test_module_cache(void)
{
	struct cv_module_cached c = { .id = 5 };
	uint8_t img[48];

	memcpy(img, region + CV_STAGING_OFF, sizeof(img));
	cv_hash128(img, sizeof(img), c.hash);
	CHECK(call(CV_OP_MODULE_LOAD_CACHED, 0, &c, sizeof(c)) == 0,
	      "an image already received is bound by its hash");
	CHECK(call(CV_OP_MODULE_LOAD_CACHED, 0, &c, sizeof(c)) ==
	      CUDA_ERROR_INVALID_VALUE, "an id in use is refused");
	c.id = 6;
	c.hash[0] ^= 1;
	CHECK(call(CV_OP_MODULE_LOAD_CACHED, 0, &c, sizeof(c)) ==
	      CUDA_ERROR_NOT_FOUND, "an unknown hash is NOT_FOUND");
	CHECK(v.images && v.images->refs == 2 && !v.images->next,
	      "two modules share one image");
	CHECK(post(CV_OP_MODULE_UNLOAD, &(struct cv_id){ 5, 0 },
		   sizeof(struct cv_id)) == 0 && deferred() == 0 &&
	      v.images && v.images->refs == 1, "unload drops one reference");
}

static void test_modules_and_launch(void)
{
	uint8_t buf[512];
	struct cv_get_function *gf = (struct cv_get_function *)buf;
	struct cv_launch *l = (struct cv_launch *)buf;
	const struct cv_function_r *fr;
	struct cv_launch_attr *at;
	uint32_t psize, len;
	int rc;

	CHECK(call(CV_OP_MODULE_LOAD, 0, &(struct cv_module_load){ 3, 0, 48 },
		   sizeof(struct cv_module_load)) == CUDA_ERROR_INVALID_VALUE,
	      "loading without a complete blob is refused");
	CHECK(load_module(3) == 0, "module load from the blob");
	CHECK(load_module(3) == CUDA_ERROR_INVALID_VALUE,
	      "a module id in use is refused");
	memset(buf, 0, sizeof(buf));
	*gf = (struct cv_get_function){ .module = 3, .func_id = 4,
					.name_len = 7 };
	memcpy(buf + sizeof(*gf), "nothere", 7);
	CHECK(call(CV_OP_MODULE_GET_FUNCTION, 0, buf, sizeof(*gf) + 7) ==
	      CUDA_ERROR_NOT_FOUND, "an unknown kernel");
	gf->name_len = 12;
	memcpy(buf + sizeof(*gf), "fill_pattern", 12);
	CHECK(call(CV_OP_MODULE_GET_FUNCTION, 0, buf, sizeof(*gf) + 11) ==
	      CUDA_ERROR_INVALID_VALUE, "a name length that disagrees");
	rc = call(CV_OP_MODULE_GET_FUNCTION, 0, buf, sizeof(*gf) + 12);
	fr = (const struct cv_function_r *)v.replies[0].data;
	CHECK(rc == 0 && fr->nparams > 0, "look up fill_pattern (%d params)",
	      rc ? 0 : fr->nparams);
	if (rc)
		return;
	psize = fr->param_size;
	memset(buf, 0, sizeof(buf));
	*l = (struct cv_launch){ .func = 4, .grid = { 1, 1, 1 },
				 .block = { 32, 1, 1 }, .param_size = psize };
	len = sizeof(*l) + psize;
	CHECK(post(CV_OP_LAUNCH, buf, len) == 0 && deferred() == 0,
	      "a launch with the right parameter size");
	l->param_size = psize - 4;
	CHECK(post(CV_OP_LAUNCH, buf, len - 4) == 0 &&
	      deferred() == CUDA_ERROR_INVALID_VALUE,
	      "wrong argument sizes never reach the backend");
	l->param_size = psize;
	CHECK(post(CV_OP_LAUNCH, buf, len + 4) == 0 &&
	      deferred() == CUDA_ERROR_INVALID_VALUE,
	      "a payload that disagrees with its parts");
	l->func = 99;
	CHECK(post(CV_OP_LAUNCH, buf, len) == 0 &&
	      deferred() == CUDA_ERROR_INVALID_HANDLE, "an unknown function");
	l->func = 4;
	l->nattrs = 1;
	at = (struct cv_launch_attr *)(buf + sizeof(*l));
	memset(at, 0, sizeof(*at));
	at->id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_EVENT;
	CHECK(post(CV_OP_LAUNCH, buf, len + sizeof(*at)) == 0 &&
	      deferred() == CUDA_ERROR_NOT_SUPPORTED,
	      "attributes naming driver objects are refused");
	test_wild_kernel();
	test_module_cache();
	CHECK(post(CV_OP_MODULE_UNLOAD, &(struct cv_id){ 3, 0 },
		   sizeof(struct cv_id)) == 0 && deferred() == 0 &&
	      !v.funcs.count, "unloading drops the module's functions");
	CHECK(!v.images, "the last module gone, its image is freed");
}

static void test_ring_garbage(void)
{
	static uint8_t payload[CV_CMD_MAX_PAYLOAD];
	struct cv_cmd_hdr h;

	memset(region + CV_RING_OFF, 0x5a, 4096);
	v.ctl->tail = v.ring.head + 64;
	CHECK(cv_ring_pop(&v.ring, &h, payload, sizeof(payload)) == -EPROTO,
	      "garbage records are a protocol error");
	v.ctl->tail = v.ring.head - 16;
	CHECK(cv_ring_pop(&v.ring, &h, payload, sizeof(payload)) == -EPROTO,
	      "a tail behind the head is a protocol error");
	v.ctl->tail = v.ring.head + CV_RING_SIZE + 16;
	CHECK(cv_ring_pop(&v.ring, &h, payload, sizeof(payload)) == -EPROTO,
	      "a tail beyond the ring is a protocol error");
}

int main(void)
{
	struct cv_backend_cfg cfg = { .gpu = 0, .quota = QUOTA };
	struct cv_backend *b;
	int fd;

	cv_log_init("test_decode", CV_LOG_OFF, NULL);
	if (cv_region_create(&fd, &region) ||
	    cv_backend_host.open(&cfg, &((struct cv_region_hdr *)region)->dev,
				 &b) ||
	    cv_vgpu_init(&v, &cv_backend_host, b, region, fd, QUOTA, 1,
			 &((struct cv_region_hdr *)region)->dev, false)) {
		printf("Bail out! cannot set up a host vGPU\n");
		return 1;
	}
	test_memory();
	test_copies();
	test_memset_and_2d();
	test_protocol();
	if (getenv("CUVISOR_HOST_KERNELS"))
		test_modules_and_launch();
	else
		printf("# skipped module tests: CUVISOR_HOST_KERNELS not set\n");
	test_ring_garbage();
	cv_vgpu_exit(&v);
	cv_backend_host.close(b);
	return unit_done();
}

/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the worker's restore (worker/ckpt.c) on the host
 * backend: what an image's sections say once their checksums are right.
 * (fuzz_image covers the container itself: header, index, checksums.)
 *
 * An input is a list of records, each
 *	u8 type, u8 flags, u64 aux, u32 len, then len payload bytes
 * (bit 0 of flags: no payload, len bytes of a filler instead, so that a
 * small input can describe the 2 MiB of a device range). Every record
 * becomes one section of an image written with the image library, whose
 * identity is right for a fresh vGPU; cv_vgpu_restore then reads it into
 * that vGPU. It must never crash, hang or leak, whatever the sections
 * say; a restore that succeeds is torn down like a worker's exit.
 * fuzz/restore_seeds.py writes seeds with well-formed META and OBJECTS.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../core/image.h"
#include "../core/log.h"
#include "../core/proto.h"
#include "../worker/backend.h"
#include "../worker/vgpu.h"

#define FUZZ_QUOTA (64ull << 20)
#define FILL_MAX (8ull << 20)
#define FILL_TOTAL (32ull << 20)

static uint8_t *region;
static int memfd = -1;

/* Writes the records as an image to a new memfd; its fd or -1. */
static int make_image(const struct cv_vgpu *v, const uint8_t *d, size_t n)
{
	static uint8_t fill[FILL_MAX];
	struct cv_ckpt_ident id = { 0 };
	uint64_t aux, filled = 0;
	struct cv_img_w *w;
	uint32_t len;
	uint8_t type, flags;
	int fd;

	fd = memfd_create("fuzz-image", MFD_CLOEXEC);
	if (fd < 0 || cv_img_w_open(&w, fd, 0)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	memset(fill, 0xab, sizeof(fill));
	while (n >= 14) {
		type = d[0];
		flags = d[1];
		memcpy(&aux, d + 2, 8);
		memcpy(&len, d + 10, 4);
		d += 14;
		n -= 14;
		if (flags & 1) {
			if (len > FILL_MAX || filled + len > FILL_TOTAL)
				break;
			filled += len;
			cv_img_w_add(w, type, aux, fill, len);
			continue;
		}
		if (len > n)
			len = (uint32_t)n;
		cv_img_w_add(w, type, aux, d, len);
		d += len;
		n -= len;
	}
	id.kind = CV_CKPT_KIND;
	id.proto = CV_PROTO_VERSION;
	id.tenant_id = 1;
	id.backend = v->devinfo.backend;
	id.cc_major = (uint16_t)v->devinfo.cc_major;
	id.cc_minor = (uint16_t)v->devinfo.cc_minor;
	if (cv_img_w_finish(w, (const uint8_t *)&id)) {
		cv_img_w_free(w);
		close(fd);
		return -1;
	}
	cv_img_w_free(w);
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static struct cv_vgpu v;
	struct cv_backend_cfg cfg = { .gpu = 0, .quota = FUZZ_QUOTA };
	struct cv_devinfo dev = { 0 };
	struct cv_backend *b = NULL;
	char err[256];
	uint64_t bytes;
	int fd;

	if (!region) {
		cv_log_init("fuzz", CV_LOG_OFF, NULL);
		if (cv_region_create(&memfd, &region))
			abort();
	}
	memset(region, 0, CV_HEAP_OFF);
	if (cv_backend_host.open(&cfg, &dev, &b))
		abort();
	/* As a restoring worker: the guest's region is not written. */
	if (cv_vgpu_init(&v, &cv_backend_host, b, region, memfd, FUZZ_QUOTA,
			 1, &dev, true))
		abort();
	v.guest_gone = 1;
	v.heap_limit = 64ull << 20;
	fd = make_image(&v, d, n);
	if (fd >= 0) {
		cv_vgpu_restore(&v, fd, 0, &bytes, err, sizeof(err));
		close(fd);
	}
	cv_vgpu_exit(&v);
	cv_backend_host.close(b);
	return 0;
}

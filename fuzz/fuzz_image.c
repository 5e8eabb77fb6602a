/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the checkpoint image reader (core/image.c,
 * core/image_hdr.c) and the byte buffer reader (core/buf.c). An image may
 * come from anyone: whatever the bytes, peek, open and reading every
 * section must not crash, hang, read out of bounds or allocate more than
 * the limits allow, and every refusal must come with a message.
 *
 * The first input byte picks the mode, the rest is the file:
 *   bit 0 clear  the bytes as they are: exercises the header checks (the
 *                checksums stop almost every mutation there);
 *   bit 0 set    the harness first fixes up every checksum the bytes
 *                let it find (each section's that lies inside the file,
 *                the index's, the header's), so that the fuzzer reaches
 *                the index checks and zstd;
 *   bit 1 set    the bytes also go through cv_rbuf as a record stream.
 *
 *   make fuzz-image-run FUZZ_TIME=60   (seeds from test_image --seeds)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../core/buf.h"
#include "../core/hash.h"
#include "../core/image.h"
#include "../core/util.h"

#define ERRLEN 256

static int memfd = -1;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Recomputes the checksums in b (n bytes, a little-endian host). */
static void fixup(uint8_t *b, size_t n)
{
	struct cv_img_hdr h;
	struct cv_img_ent e;
	uint64_t i, cnt;
	uint8_t *p;

	if (n < sizeof(h))
		return;
	memcpy(&h, b, sizeof(h));
	if (cv_range_ok(h.index_off, h.index_len, n)) {
		cnt = h.index_len / sizeof(e);
		p = b + h.index_off;
		for (i = 0; i < cnt; i++, p += sizeof(e)) {
			memcpy(&e, p, sizeof(e));
			if (!cv_range_ok(e.off, e.stored, n))
				continue;
			cv_hash128(b + e.off, e.stored, e.hash);
			memcpy(p, &e, sizeof(e));
		}
		cv_hash128(b + h.index_off, h.index_len, h.index_hash);
	}
	cv_hash128(&h, offsetof(struct cv_img_hdr, hdr_hash), h.hdr_hash);
	memcpy(b, &h, sizeof(h));
}

static void check_msg(int ret, const char *err)
{
	/* a refusal says why, NUL-terminated within ERRLEN */
	if (ret && (!memchr(err, '\0', ERRLEN) || !err[0]))
		abort();
}

static void read_all(int fd, uint64_t size)
{
	char err[ERRLEN] = "";
	const struct cv_img_sec *s;
	struct cv_img_info info;
	struct cv_img_r *r;
	uint32_t i;
	uint8_t *buf;
	int ret, ret2;

	ret = cv_img_peek(fd, &info, err, sizeof(err));
	check_msg(ret, err);
	err[0] = '\0';
	ret2 = cv_img_r_open(&r, fd, err, sizeof(err));
	check_msg(ret2, err);
	/* open refuses whatever peek refuses */
	if (ret && !ret2)
		abort();
	if (ret2)
		return;
	if (info.file_size != size || cv_img_r_count(r) != info.nsec)
		abort();
	for (i = 0; i < cv_img_r_count(r); i++) {
		s = cv_img_r_sec(r, i);
		if (s->raw > CV_IMG_SEC_MAX ||
		    !cv_range_in(s->off, s->stored, CV_IMG_HDR_SIZE,
				 size - CV_IMG_HDR_SIZE))
			abort();
		buf = malloc(s->raw ? s->raw : 1);
		if (!buf)
			abort();
		err[0] = '\0';
		ret = cv_img_r_read(r, i, buf, s->raw, err, sizeof(err));
		check_msg(ret, err);
		free(buf);
	}
	if (cv_img_r_sec(r, i))
		abort();
	cv_img_r_close(r);
}

/* Records of u32 tag, u64, string (max 15), bytes (u32 length). */
static void read_records(const uint8_t *d, size_t n)
{
	struct cv_rbuf r;
	char s[16];
	uint32_t len;

	cv_rbuf_init(&r, d, n);
	while (!r.bad && cv_rbuf_left(&r)) {
		(void)cv_rbuf_u32(&r);
		(void)cv_rbuf_u64(&r);
		if (cv_rbuf_str(&r, s, sizeof(s) - 1) && strlen(s) >= sizeof(s))
			abort();
		len = cv_rbuf_u32(&r);
		if (cv_rbuf_get(&r, len) && r.pos > r.len)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t mode, *b;

	if (size < 1)
		return 0;
	mode = data[0];
	data++;
	size--;
	if (memfd < 0)
		memfd = memfd_create("fuzz_image", MFD_CLOEXEC);
	if (memfd < 0 || ftruncate(memfd, 0))
		abort();
	b = malloc(size ? size : 1);
	if (!b)
		abort();
	memcpy(b, data, size);
	if (mode & 1)
		fixup(b, size);
	if (pwrite(memfd, b, size, 0) != (ssize_t)size)
		abort();
	read_all(memfd, size);
	if (mode & 2)
		read_records(b, size);
	free(b);
	return 0;
}

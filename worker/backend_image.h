/* SPDX-License-Identifier: MIT */
/*
 * Module image formats, shared by the backends (internal to the worker).
 *
 * A module image comes from the guest and is hostile: before a backend
 * hands one to a driver that reads it without a length (cuModuleLoadData
 * has none), it checks that every header the driver will follow lies
 * inside the len bytes the guest sent.
 *
 * Recognised formats:
 *  - ELF (cubin): 0x7f 'E' 'L' 'F', either class, any machine; the
 *    program and section header tables must lie inside the image.
 *  - fatbin: magic 0xBA55ED50 at offset 0, then u16 version, u16 header
 *    size, u64 payload size; header size + payload size must fit.
 *  - PTX: text, NUL-terminated within len.
 */
#ifndef CV_BACKEND_IMAGE_H
#define CV_BACKEND_IMAGE_H

#include <elf.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../core/util.h"

#define CV_FATBIN_MAGIC 0xBA55ED50u
#define CV_PTX_SCAN 4096u /* bytes of PTX looked at by cv_image_is_ptx */

enum cv_image_kind { CV_IMAGE_BAD = 0, CV_IMAGE_ELF, CV_IMAGE_FATBIN,
		     CV_IMAGE_PTX };

/* True when [off, off + n * ent) lies inside len (no wrap). */
static inline bool cv_image_table_ok(uint64_t off, uint64_t n, uint64_t ent,
				     size_t len)
{
	uint64_t bytes;

	if (__builtin_mul_overflow(n, ent, &bytes))
		return false;
	return cv_range_ok(off, bytes, len);
}

/* ELF of either class whose header tables lie inside the image. */
static inline bool cv_image_is_elf(const uint8_t *p, size_t len)
{
	Elf64_Ehdr h64;
	Elf32_Ehdr h32;

	if (len < EI_NIDENT || memcmp(p, ELFMAG, SELFMAG))
		return false;
	if (p[EI_CLASS] == ELFCLASS64) {
		if (len < sizeof(h64))
			return false;
		memcpy(&h64, p, sizeof(h64));
		return cv_image_table_ok(h64.e_phoff, h64.e_phnum,
					 h64.e_phentsize, len) &&
		       cv_image_table_ok(h64.e_shoff, h64.e_shnum,
					 h64.e_shentsize, len);
	}
	if (p[EI_CLASS] == ELFCLASS32) {
		if (len < sizeof(h32))
			return false;
		memcpy(&h32, p, sizeof(h32));
		return cv_image_table_ok(h32.e_phoff, h32.e_phnum,
					 h32.e_phentsize, len) &&
		       cv_image_table_ok(h32.e_shoff, h32.e_shnum,
					 h32.e_shentsize, len);
	}
	return false;
}

/* Fatbin whose declared size fits in the image. */
static inline bool cv_image_is_fatbin(const uint8_t *p, size_t len)
{
	uint32_t magic;
	uint16_t hdr;
	uint64_t size;

	if (len < 16)
		return false;
	memcpy(&magic, p, 4);
	memcpy(&hdr, p + 6, 2);
	memcpy(&size, p + 8, 8);
	return magic == CV_FATBIN_MAGIC && hdr >= 16 &&
	       cv_range_ok(hdr, size, len);
}

/* NUL-terminated within len. */
static inline bool cv_image_has_nul(const uint8_t *p, size_t len)
{
	return len && memchr(p, 0, len) != NULL;
}

/*
 * PTX text: NUL-terminated within len, its first CV_PTX_SCAN bytes (or
 * fewer, up to the NUL) printable (bytes >= 0x80 allowed, for comments)
 * and containing ".version" or ".target".
 */
static inline bool cv_image_is_ptx(const uint8_t *p, size_t len)
{
	const uint8_t *nul = len ? memchr(p, 0, len) : NULL;
	size_t n, i;

	if (!nul)
		return false;
	n = CV_MIN((size_t)(nul - p), (size_t)CV_PTX_SCAN);
	for (i = 0; i < n; i++) {
		if (p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' &&
		    p[i] != '\r' && p[i] != '\f' && p[i] != '\v')
			return false;
		if (p[i] == 0x7f)
			return false;
	}
	return memmem(p, n, ".version", 8) || memmem(p, n, ".target", 7);
}

/* The image's format, or CV_IMAGE_BAD. */
static inline enum cv_image_kind cv_image_kind(const void *image, size_t len)
{
	const uint8_t *p = image;

	if (cv_image_is_elf(p, len))
		return CV_IMAGE_ELF;
	if (cv_image_is_fatbin(p, len))
		return CV_IMAGE_FATBIN;
	if (cv_image_is_ptx(p, len))
		return CV_IMAGE_PTX;
	return CV_IMAGE_BAD;
}

#endif

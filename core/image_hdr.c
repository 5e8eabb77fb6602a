/* SPDX-License-Identifier: MIT */
/*
 * The header of a checkpoint image: reading and checking it (cv_img_peek).
 * Kept apart from core/image.c so that the daemon and the CLI can look at
 * an image without linking libzstd.
 *
 * The order of the checks is part of the format (docs/image-format.md):
 * magic and version come before the checksum, because a header of another
 * version may have another size and its checksum another place; the size
 * of the file is compared only after the checksum, so that "truncated"
 * is said only of a header that is known to be intact.
 */
#include "image.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hash.h"
#include "util.h"

#define HDR_HASHED __builtin_offsetof(struct cv_img_hdr, hdr_hash)

int cv_img_fail(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}

int cv_img_pread(int fd, void *p, size_t n, uint64_t off)
{
	uint8_t *q = p;
	ssize_t k;

	while (n) {
		if (off > INT64_MAX)
			return -EINVAL;
		k = pread(fd, q, n, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -EIO;
		q += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

/*
 * Is this an image, of our version, with a whole header? b holds the
 * first n (>= 1) bytes of a file of size bytes.
 */
static int hdr_identify(const uint8_t *b, size_t n, uint64_t size, char *err,
			size_t errlen)
{
	uint32_t v;

	if (all_zero(b, n))
		return cv_img_fail(err, errlen, -EINVAL,
				   "not a cuvisor image (header is all zeros: a writer that did not finish?)");
	if (n < CV_IMG_MAGIC_LEN && !memcmp(b, CV_IMG_MAGIC, n))
		return cv_img_fail(err, errlen, -EINVAL,
				   "truncated: file has %" PRIu64 " bytes, less than the %u-byte header",
				   size, CV_IMG_HDR_SIZE);
	if (n < CV_IMG_MAGIC_LEN || memcmp(b, CV_IMG_MAGIC, CV_IMG_MAGIC_LEN)) {
		if (n >= 4 && !memcmp(b + 1, "CVI", 3))
			return cv_img_fail(err, errlen, -EINVAL,
					   "not a cuvisor image (bad magic: line endings or the top bit changed; copied as text?)");
		return cv_img_fail(err, errlen, -EINVAL,
				   "not a cuvisor image (bad magic)");
	}
	if (n >= __builtin_offsetof(struct cv_img_hdr, hdr_size)) {
		v = get32(b + __builtin_offsetof(struct cv_img_hdr, version));
		if (v != CV_IMG_VERSION)
			return cv_img_fail(err, errlen, -EINVAL,
					   "image format version %" PRIu32 "; this cuvisor reads version %d",
					   v, CV_IMG_VERSION);
	}
	if (n < CV_IMG_HDR_SIZE)
		return cv_img_fail(err, errlen, -EINVAL,
				   "truncated: file has %" PRIu64 " bytes, less than the %u-byte header",
				   size, CV_IMG_HDR_SIZE);
	v = get32(b + __builtin_offsetof(struct cv_img_hdr, hdr_size));
	if (v != CV_IMG_HDR_SIZE)
		return cv_img_fail(err, errlen, -EINVAL,
				   "header size %" PRIu32 "; version %d headers are %u bytes",
				   v, CV_IMG_VERSION, CV_IMG_HDR_SIZE);
	return 0;
}

static void hdr_to_host(struct cv_img_hdr *h)
{
	h->version = le32toh(h->version);
	h->hdr_size = le32toh(h->hdr_size);
	h->flags = le32toh(h->flags);
	h->nsec = le32toh(h->nsec);
	h->index_off = le64toh(h->index_off);
	h->index_len = le64toh(h->index_len);
	h->file_size = le64toh(h->file_size);
	h->created_ns = le64toh(h->created_ns);
}

/* The checksum, then the fields that have no meaning yet. */
static int hdr_verify(const uint8_t *b, const struct cv_img_hdr *h,
		      char *err, size_t errlen)
{
	uint8_t sum[CV_HASH_LEN];
	size_t i, rsv = __builtin_offsetof(struct cv_img_hdr, reserved);

	cv_hash128(b, HDR_HASHED, sum);
	if (memcmp(sum, h->hdr_hash, CV_HASH_LEN))
		return cv_img_fail(err, errlen, -EBADMSG,
				   "header checksum mismatch (corrupted)");
	if (h->flags)
		return cv_img_fail(err, errlen, -EINVAL,
				   "unknown header flags 0x%" PRIx32 " (written by a newer cuvisor?)",
				   h->flags);
	for (i = 0; i < sizeof(h->reserved); i++)
		if (h->reserved[i])
			return cv_img_fail(err, errlen, -EINVAL,
					   "reserved header byte at offset %zu is not zero",
					   rsv + i);
	return 0;
}

/* The file's size, the section count, the index's place. */
static int hdr_geometry(const struct cv_img_hdr *h, uint64_t size,
			char *err, size_t errlen)
{
	if (h->file_size > size)
		return cv_img_fail(err, errlen, -EINVAL,
				   "truncated: header says %" PRIu64 " bytes, file has %" PRIu64,
				   h->file_size, size);
	if (h->file_size < size)
		return cv_img_fail(err, errlen, -EINVAL,
				   "file has %" PRIu64 " bytes, header says %" PRIu64 " (data after the end of the image)",
				   size, h->file_size);
	if (h->nsec > CV_IMG_NSEC_MAX)
		return cv_img_fail(err, errlen, -EINVAL,
				   "%" PRIu32 " sections, more than the limit of %u",
				   h->nsec, CV_IMG_NSEC_MAX);
	if (h->index_len != (uint64_t)h->nsec * CV_IMG_ENT_SIZE)
		return cv_img_fail(err, errlen, -EINVAL,
				   "index is %" PRIu64 " bytes for %" PRIu32 " sections; expected %" PRIu64,
				   h->index_len, h->nsec,
				   (uint64_t)h->nsec * CV_IMG_ENT_SIZE);
	if (h->index_off < CV_IMG_HDR_SIZE ||
	    !cv_range_ok(h->index_off, h->index_len, size) ||
	    h->index_off + h->index_len != size)
		return cv_img_fail(err, errlen, -EINVAL,
				   "index (%" PRIu64 " bytes at offset %" PRIu64 ") does not lie between the header and the end of the file (%" PRIu64 " bytes)",
				   h->index_len, h->index_off, size);
	return 0;
}

int cv_img_hdr_load(int fd, struct cv_img_hdr *h, struct cv_img_info *info,
		    char *err, size_t errlen)
{
	uint8_t b[CV_IMG_HDR_SIZE];
	struct stat st;
	uint64_t size;
	size_t n;
	int ret;

	if (fstat(fd, &st) < 0) {
		ret = -errno;
		return cv_img_fail(err, errlen, ret, "cannot stat the image: %s",
				   strerror(-ret));
	}
	if (!S_ISREG(st.st_mode))
		return cv_img_fail(err, errlen, -EINVAL,
				   "not a regular file: not a cuvisor image");
	size = (uint64_t)st.st_size;
	if (!size)
		return cv_img_fail(err, errlen, -EINVAL,
				   "empty file (0 bytes): not a cuvisor image");
	n = (size_t)CV_MIN(size, (uint64_t)CV_IMG_HDR_SIZE);
	ret = cv_img_pread(fd, b, n, 0);
	if (ret)
		return cv_img_fail(err, errlen, ret,
				   "cannot read the header: %s", strerror(-ret));
	ret = hdr_identify(b, n, size, err, errlen);
	if (ret)
		return ret;
	memcpy(h, b, sizeof(*h));
	hdr_to_host(h);
	ret = hdr_verify(b, h, err, errlen);
	if (!ret)
		ret = hdr_geometry(h, size, err, errlen);
	if (ret)
		return ret;
	memset(info, 0, sizeof(*info));
	info->version = h->version;
	info->nsec = h->nsec;
	info->file_size = h->file_size;
	info->created_ns = h->created_ns;
	memcpy(info->ident, h->ident, CV_IMG_IDENT_LEN);
	return 0;
}

int cv_img_peek(int fd, struct cv_img_info *info, char *err, size_t errlen)
{
	struct cv_img_hdr h;

	return cv_img_hdr_load(fd, &h, info, err, errlen);
}

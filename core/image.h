/* SPDX-License-Identifier: MIT */
/*
 * Checkpoint image files: a header, section payloads, an index. The
 * library stores typed, checksummed, optionally zstd-compressed sections
 * and an opaque 64-byte identity; it interprets neither the section types
 * nor the identity. docs/image-format.md is the format's reference.
 *
 *   0                 struct cv_img_hdr (CV_IMG_HDR_SIZE bytes), written
 *                     last, so a file whose writer did not finish never
 *                     passes as complete
 *   CV_IMG_HDR_SIZE   section payloads, in index order, no gaps required
 *   index_off         struct cv_img_ent[nsec], up to the end of the file
 *
 * Trust: a reader treats the file as hostile. cv_img_peek and
 * cv_img_r_open check every length and offset against the file's size
 * and the limits below before using it, and allocate at most what the
 * file's own size (and the limits) allow; cv_img_r_read checks each
 * section's checksum before decompressing it and its size after.
 *
 * Return values: 0 or -errno. Readers answer
 *   -EINVAL   the file is not an image, or one this cuvisor does not read
 *             (bad magic, foreign version, truncated, out of bounds, a
 *             limit exceeded), or a bad argument;
 *   -EBADMSG  a checksum does not match, or a section does not decompress
 *             to its recorded size (the bytes are corrupted);
 *   -ENOBUFS  cv_img_r_read's buffer is smaller than the section;
 *   -ENOMEM, or the errno of fstat/pread (-EIO on an unexpected end).
 * and put a message naming the problem in err (NUL-terminated, cut to
 * errlen; err may be NULL).
 *
 * Linking: cv_img_peek (core/image_hdr.c) needs no libzstd; everything
 * else (core/image.c) needs -lzstd.
 */
#ifndef CV_IMAGE_H
#define CV_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#define CV_IMG_VERSION 1
#define CV_IMG_IDENT_LEN 64
#define CV_IMG_SEC_MAX (64ull << 20)  /* raw bytes of one section */
#define CV_IMG_NSEC_MAX (1u << 22)    /* sections in one image */

/* ---- writer ---- */

struct cv_img_w;
/*
 * Starts writing an image to fd (a regular file, positioned anywhere; the
 * library uses pwrite only, from offset 0 on). A regular file is
 * truncated to 0 bytes first, so that no older image's header survives
 * at offset 0 until finish writes the new one. fd must not be O_APPEND
 * (-EINVAL). level 0 = no compression, 1..19 = zstd level. The caller
 * keeps fd open until cv_img_w_free and closes it itself.
 * 0 or -errno.
 */
int cv_img_w_open(struct cv_img_w **w, int fd, int level);
/*
 * Appends a section of len bytes (len <= CV_IMG_SEC_MAX, else -EINVAL).
 * Thread-safe: several threads may add sections at once (compression and
 * hashing run outside the lock; only the file offset is reserved under
 * it; pwrite outside). If compression doesn't shrink the data, it is
 * stored raw. Sections are numbered in the order in which their offsets
 * were reserved. 0 or -errno: -EINVAL (too long, NULL data, after
 * finish), -E2BIG (more than CV_IMG_NSEC_MAX sections), -ENOMEM, or a
 * write error; the first write error is sticky (ENOSPC, EIO, EFBIG...):
 * every later add and finish returns it.
 */
int cv_img_w_add(struct cv_img_w *w, uint32_t type, uint64_t aux,
		 const void *data, uint64_t len);
/*
 * Announces that about len bytes of sections follow (a checkpoint's
 * device memory); call it when no other thread is adding. For an
 * uncompressed image in a regular file of at least CV_IMG_MAP_MIN bytes
 * to come, the writer reserves the space at once (fallocate: a full disk
 * fails here, before anything is copied) and maps it, so that threads
 * adding sections copy into the file side by side; buffered pwrites to
 * one file take turns under its inode lock (2 GB/s into tmpfs on the
 * lent H100 host). Sections that do not fit the window are written with
 * pwrite. Where fallocate or mmap is not supported, nothing changes.
 * 0 or -errno (the sticky error: ENOSPC, EFBIG...).
 */
#define CV_IMG_MAP_MIN (64ull << 20)
int cv_img_w_expect(struct cv_img_w *w, uint64_t len);
/*
 * Writes the index, fdatasync, then the header with ident, then
 * fdatasync again: the header reaches the disk only after everything it
 * describes. Every add must have returned before finish is called; only
 * once per writer. 0 or -errno (the sticky error if any; then nothing is
 * written and the file stays without a header).
 */
int cv_img_w_finish(struct cv_img_w *w, const uint8_t ident[CV_IMG_IDENT_LEN]);
/* Total bytes written so far (stored), thread-safe; for progress. */
uint64_t cv_img_w_bytes(const struct cv_img_w *w);
/* Frees the writer (NULL is a no-op); does not close fd. */
void cv_img_w_free(struct cv_img_w *w);

/* ---- reader ---- */

#define CV_IMG_SEC_ZSTD 0x1u /* cv_img_sec.flags: stored zstd-compressed */

struct cv_img_sec {
	uint32_t type, flags;
	uint64_t aux, off, stored, raw;
	uint8_t hash[16]; /* XXH3-128 of the stored bytes */
};

struct cv_img_info {
	uint32_t version, nsec;
	uint64_t file_size, created_ns; /* created: CLOCK_REALTIME ns */
	uint8_t ident[CV_IMG_IDENT_LEN];
};

/*
 * In core/image_hdr.c (no zstd): reads and checks the header only (magic,
 * version, header checksum, reserved bytes, file size against fstat, the
 * index's place and size). 0 or -EINVAL/-EIO etc. with a message naming
 * the problem in err.
 */
int cv_img_peek(int fd, struct cv_img_info *info, char *err, size_t errlen);

struct cv_img_r;
/*
 * Opens an image: peek + reads the index, checks its checksum and every
 * entry's bounds/limits/overlaps. Does NOT read section payloads. fd is
 * borrowed: the caller keeps it open until cv_img_r_close and closes it.
 */
int cv_img_r_open(struct cv_img_r **r, int fd, char *err, size_t errlen);
const struct cv_img_info *cv_img_r_info(const struct cv_img_r *r);
uint32_t cv_img_r_count(const struct cv_img_r *r);
/* Section i (< count), or NULL. */
const struct cv_img_sec *cv_img_r_sec(const struct cv_img_r *r, uint32_t i);
/*
 * Reads section i into buf (cap >= sec->raw bytes): pread, verify the
 * checksum, decompress if needed (checking the size). Thread-safe.
 * 0 or -errno with a message in err (err may be NULL). On error, buf's
 * first cap bytes may have been written.
 */
int cv_img_r_read(struct cv_img_r *r, uint32_t i, void *buf, uint64_t cap,
		  char *err, size_t errlen);
/* NULL is a no-op; does not close fd. */
void cv_img_r_close(struct cv_img_r *r);

/* ---- on-disk layout (little-endian; see docs/image-format.md) ---- */

#define CV_IMG_MAGIC "\x89" "CVI\r\n\x1a\n"
#define CV_IMG_MAGIC_LEN 8
#define CV_IMG_HDR_SIZE 192u
#define CV_IMG_ENT_SIZE 64u

struct cv_img_hdr {
	uint8_t magic[CV_IMG_MAGIC_LEN];
	uint32_t version;    /* CV_IMG_VERSION */
	uint32_t hdr_size;   /* CV_IMG_HDR_SIZE */
	uint32_t flags;      /* none defined: 0 */
	uint32_t nsec;
	uint64_t index_off;  /* == file_size - index_len */
	uint64_t index_len;  /* nsec * CV_IMG_ENT_SIZE */
	uint8_t index_hash[16];
	uint64_t file_size;
	uint64_t created_ns;
	uint8_t ident[CV_IMG_IDENT_LEN];
	uint8_t reserved[40]; /* zero */
	uint8_t hdr_hash[16]; /* XXH3-128 of the 176 bytes before it */
};
_Static_assert(sizeof(struct cv_img_hdr) == CV_IMG_HDR_SIZE, "img hdr");
_Static_assert(__builtin_offsetof(struct cv_img_hdr, version) == 8, "ver");
_Static_assert(__builtin_offsetof(struct cv_img_hdr, index_off) == 24, "io");
_Static_assert(__builtin_offsetof(struct cv_img_hdr, index_hash) == 40, "ih");
_Static_assert(__builtin_offsetof(struct cv_img_hdr, file_size) == 56, "fs");
_Static_assert(__builtin_offsetof(struct cv_img_hdr, ident) == 72, "id");
_Static_assert(__builtin_offsetof(struct cv_img_hdr, reserved) == 136, "rs");
_Static_assert(__builtin_offsetof(struct cv_img_hdr, hdr_hash) == 176, "hh");

struct cv_img_ent {
	uint32_t type;
	uint32_t flags;    /* CV_IMG_SEC_ZSTD; other bits 0 */
	uint64_t aux;
	uint64_t off;
	uint64_t stored;
	uint64_t raw;
	uint8_t hash[16];  /* XXH3-128 of the stored bytes */
	uint64_t reserved; /* 0 */
};
_Static_assert(sizeof(struct cv_img_ent) == CV_IMG_ENT_SIZE, "img ent");
_Static_assert(__builtin_offsetof(struct cv_img_ent, off) == 16, "off");
_Static_assert(__builtin_offsetof(struct cv_img_ent, hash) == 40, "hash");

/*
 * Internal (core/image_hdr.c, for core/image.c): cv_img_peek that also
 * returns the decoded header, fields in host order. Every field it
 * returns has been checked as cv_img_peek documents.
 */
int cv_img_hdr_load(int fd, struct cv_img_hdr *h, struct cv_img_info *info,
		    char *err, size_t errlen);
/* Internal: pread of exactly n bytes at off; 0, -errno, or -EIO at end
 * of file. */
int cv_img_pread(int fd, void *p, size_t n, uint64_t off);
/* Internal: the message formatter both files use; returns ret. */
int cv_img_fail(char *err, size_t errlen, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif

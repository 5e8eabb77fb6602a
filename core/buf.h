/* SPDX-License-Identifier: MIT */
/*
 * Byte buffers for building and parsing section payloads (checkpoint image
 * sections, migration sections): a growable writer and a bounds-checked
 * cursor reader. Numbers are little-endian on both sides.
 *
 * Both keep their first error, like a stream: a writer that ran out of
 * memory ignores every later put and says -ENOMEM in err; a reader that
 * was asked for more bytes than are left returns zeros (or NULL, or
 * false) from then on and says bad. So a decoder may read a whole record
 * and check bad once at the end, as long as it does not act on a value
 * (allocate, index, loop) before checking it.
 */
#ifndef CV_BUF_H
#define CV_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cv_wbuf {
	uint8_t *p;
	size_t len, cap;
	int err; /* 0 or -ENOMEM / -EOVERFLOW; sticky */
};

void cv_wbuf_init(struct cv_wbuf *b);
/* Frees the bytes; b may be reused after cv_wbuf_init. */
void cv_wbuf_free(struct cv_wbuf *b);
void cv_wbuf_put(struct cv_wbuf *b, const void *p, size_t n);
void cv_wbuf_u32(struct cv_wbuf *b, uint32_t v);
void cv_wbuf_u64(struct cv_wbuf *b, uint64_t v);
/* u32 length, then the bytes, no NUL. A string longer than 4 GiB - 1 sets
 * err to -EOVERFLOW. */
void cv_wbuf_str(struct cv_wbuf *b, const char *s);

struct cv_rbuf {
	const uint8_t *p;
	size_t len, pos;
	bool bad; /* sticky: set by the first overrun or malformed string */
};

/* p is borrowed: it must outlive r. */
void cv_rbuf_init(struct cv_rbuf *r, const void *p, size_t len);
/* 0 and bad = true on overrun. */
uint32_t cv_rbuf_u32(struct cv_rbuf *r);
uint64_t cv_rbuf_u64(struct cv_rbuf *r);
/* A pointer to the next n bytes (inside the buffer, not copied), or NULL
 * and bad = true on overrun. Never NULL on success, even for n == 0. */
const void *cv_rbuf_get(struct cv_rbuf *r, size_t n);
/*
 * A string as cv_wbuf_str wrote it, copied into out (max + 1 bytes) and
 * NUL-terminated. False, out = "" and bad = true when it is longer than
 * max, runs past the end or holds a NUL.
 */
bool cv_rbuf_str(struct cv_rbuf *r, char *out, size_t max);
/* Bytes not read yet (0 once bad). */
static inline size_t cv_rbuf_left(const struct cv_rbuf *r)
{
	return r->bad ? 0 : r->len - r->pos;
}

#endif

/* SPDX-License-Identifier: MIT */
#include "buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void cv_wbuf_init(struct cv_wbuf *b)
{
	memset(b, 0, sizeof(*b));
}

void cv_wbuf_free(struct cv_wbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* Makes room for n more bytes: doubles, at least 256. 0 or -ENOMEM. */
static int wbuf_grow(struct cv_wbuf *b, size_t n)
{
	size_t need, cap;
	uint8_t *p;

	if (__builtin_add_overflow(b->len, n, &need))
		return -ENOMEM;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need) {
		if (__builtin_mul_overflow(cap, 2, &cap))
			return -ENOMEM;
	}
	p = realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

void cv_wbuf_put(struct cv_wbuf *b, const void *p, size_t n)
{
	int err;

	if (b->err || !n)
		return;
	err = wbuf_grow(b, n);
	if (err) {
		b->err = err;
		return;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

void cv_wbuf_u32(struct cv_wbuf *b, uint32_t v)
{
	uint8_t le[4];
	int i;

	for (i = 0; i < 4; i++)
		le[i] = (uint8_t)(v >> (8 * i));
	cv_wbuf_put(b, le, sizeof(le));
}

void cv_wbuf_u64(struct cv_wbuf *b, uint64_t v)
{
	uint8_t le[8];
	int i;

	for (i = 0; i < 8; i++)
		le[i] = (uint8_t)(v >> (8 * i));
	cv_wbuf_put(b, le, sizeof(le));
}

void cv_wbuf_str(struct cv_wbuf *b, const char *s)
{
	size_t n = strlen(s);

	if (n > UINT32_MAX) {
		if (!b->err)
			b->err = -EOVERFLOW;
		return;
	}
	cv_wbuf_u32(b, (uint32_t)n);
	cv_wbuf_put(b, s, n);
}

void cv_rbuf_init(struct cv_rbuf *r, const void *p, size_t len)
{
	r->p = p;
	r->len = p ? len : 0;
	r->pos = 0;
	r->bad = false;
}

const void *cv_rbuf_get(struct cv_rbuf *r, size_t n)
{
	static const uint8_t none;
	const uint8_t *q;

	if (r->bad || n > r->len - r->pos) {
		r->bad = true;
		return NULL;
	}
	q = r->p ? r->p + r->pos : &none;
	r->pos += n;
	return q;
}

uint32_t cv_rbuf_u32(struct cv_rbuf *r)
{
	const uint8_t *q = cv_rbuf_get(r, 4);
	uint32_t v = 0;
	int i;

	for (i = 0; q && i < 4; i++)
		v |= (uint32_t)q[i] << (8 * i);
	return v;
}

uint64_t cv_rbuf_u64(struct cv_rbuf *r)
{
	const uint8_t *q = cv_rbuf_get(r, 8);
	uint64_t v = 0;
	int i;

	for (i = 0; q && i < 8; i++)
		v |= (uint64_t)q[i] << (8 * i);
	return v;
}

bool cv_rbuf_str(struct cv_rbuf *r, char *out, size_t max)
{
	uint32_t n = cv_rbuf_u32(r);
	const void *q;

	out[0] = '\0';
	if (r->bad || n > max) {
		r->bad = true;
		return false;
	}
	q = cv_rbuf_get(r, n);
	if (!q || memchr(q, '\0', n)) {
		r->bad = true;
		return false;
	}
	memcpy(out, q, n);
	out[n] = '\0';
	return true;
}

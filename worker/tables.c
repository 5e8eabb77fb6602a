/* SPDX-License-Identifier: MIT */
#include "tables.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void cv_htab_init(struct cv_htab *t)
{
	memset(t, 0, sizeof(*t));
}

void cv_htab_exit(struct cv_htab *t)
{
	free(t->v);
	memset(t, 0, sizeof(*t));
}

void *cv_htab_get(const struct cv_htab *t, uint32_t id)
{
	return id < t->cap ? t->v[id] : NULL;
}

int cv_htab_put(struct cv_htab *t, uint32_t id, void *v)
{
	uint32_t ncap;
	void **nv;

	if (!id || id >= CV_HTAB_MAX || !v)
		return -EINVAL;
	if (id >= t->cap) {
		ncap = t->cap ? t->cap : 64;
		while (ncap <= id)
			ncap *= 2;
		if (ncap > CV_HTAB_MAX)
			ncap = CV_HTAB_MAX;
		nv = realloc(t->v, (size_t)ncap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		memset(nv + t->cap, 0, (size_t)(ncap - t->cap) * sizeof(*nv));
		t->v = nv;
		t->cap = ncap;
	}
	if (t->v[id])
		return -EEXIST;
	t->v[id] = v;
	t->count++;
	return 0;
}

void *cv_htab_del(struct cv_htab *t, uint32_t id)
{
	void *v;

	if (id >= t->cap || !t->v[id])
		return NULL;
	v = t->v[id];
	t->v[id] = NULL;
	t->count--;
	return v;
}

void cv_rangeset_init(struct cv_rangeset *s)
{
	memset(s, 0, sizeof(*s));
}

void cv_rangeset_exit(struct cv_rangeset *s)
{
	free(s->r);
	memset(s, 0, sizeof(*s));
}

/* Index of the first range whose base is > addr. */
static uint32_t upper_bound(const struct cv_rangeset *s, uint64_t addr)
{
	uint32_t lo = 0, hi = s->n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (s->r[mid].base <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct cv_range *cv_rangeset_find(const struct cv_rangeset *s,
					uint64_t addr)
{
	uint32_t i = upper_bound(s, addr);
	const struct cv_range *r;

	if (!i)
		return NULL;
	r = &s->r[i - 1];
	return addr - r->base < r->size ? r : NULL;
}

bool cv_rangeset_overlaps(const struct cv_rangeset *s, uint64_t addr,
			  uint64_t len)
{
	uint32_t i;

	if (!len)
		return false;
	i = upper_bound(s, addr);
	/* the range before addr may reach into it */
	if (i && addr - s->r[i - 1].base < s->r[i - 1].size)
		return true;
	/* the next range may start inside [addr, addr + len) */
	return i < s->n && s->r[i].base - addr < len;
}

int cv_rangeset_add(struct cv_rangeset *s, uint64_t base, uint64_t size,
		    void *owner)
{
	struct cv_range *nr;
	uint32_t i, ncap;

	if (!size || base + size < base)
		return -EINVAL;
	if (cv_rangeset_overlaps(s, base, size))
		return -EEXIST;
	if (s->n == s->cap) {
		ncap = s->cap ? s->cap * 2 : 16;
		nr = realloc(s->r, (size_t)ncap * sizeof(*nr));
		if (!nr)
			return -ENOMEM;
		s->r = nr;
		s->cap = ncap;
	}
	i = upper_bound(s, base);
	memmove(&s->r[i + 1], &s->r[i], (size_t)(s->n - i) * sizeof(*s->r));
	s->r[i] = (struct cv_range){ base, size, owner };
	s->n++;
	return 0;
}

int cv_rangeset_del(struct cv_rangeset *s, uint64_t base, uint64_t size,
		    void **owner)
{
	uint32_t i = upper_bound(s, base);

	if (!i || s->r[i - 1].base != base || s->r[i - 1].size != size)
		return -ENOENT;
	i--;
	if (owner)
		*owner = s->r[i].owner;
	memmove(&s->r[i], &s->r[i + 1], (size_t)(s->n - i - 1) * sizeof(*s->r));
	s->n--;
	return 0;
}

bool cv_rangeset_covers(const struct cv_rangeset *s, uint64_t addr,
			uint64_t len)
{
	uint32_t i = upper_bound(s, addr);
	const struct cv_range *r;
	uint64_t end;

	if (!i)
		return false;
	r = &s->r[i - 1];
	if (addr - r->base > r->size)
		return false;
	if (len <= r->size - (addr - r->base))
		return true;
	/* continue through adjacent ranges */
	end = r->base + r->size;
	len -= end - addr;
	for (; i < s->n; i++) {
		r = &s->r[i];
		if (r->base != end)
			return false;
		if (len <= r->size)
			return true;
		len -= r->size;
		end += r->size;
	}
	return false;
}

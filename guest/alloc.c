/* SPDX-License-Identifier: MIT */
#include "alloc.h"

#include <errno.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"

int cv_vaspace_init(struct cv_vaspace *s, uint64_t base, uint64_t size)
{
	memset(s, 0, sizeof(*s));
	s->base = base;
	s->size = size;
	s->cap = 16;
	s->f = malloc(s->cap * sizeof(*s->f));
	if (!s->f)
		return -ENOMEM;
	s->f[0] = (struct cv_vfree){ base, size };
	s->n = 1;
	return 0;
}

void cv_vaspace_exit(struct cv_vaspace *s)
{
	free(s->f);
	memset(s, 0, sizeof(*s));
}

static void vfree_remove(struct cv_vaspace *s, uint32_t i)
{
	memmove(&s->f[i], &s->f[i + 1], (s->n - i - 1) * sizeof(*s->f));
	s->n--;
}

static int vfree_insert(struct cv_vaspace *s, uint32_t i, uint64_t base,
			uint64_t size)
{
	struct cv_vfree *nf;

	if (s->n == s->cap) {
		nf = realloc(s->f, (size_t)s->cap * 2 * sizeof(*nf));
		if (!nf)
			return -ENOMEM;
		s->f = nf;
		s->cap *= 2;
	}
	memmove(&s->f[i + 1], &s->f[i], (s->n - i) * sizeof(*s->f));
	s->f[i] = (struct cv_vfree){ base, size };
	s->n++;
	return 0;
}

/* Takes [a, a + size) out of free range i, which contains it. */
static int vfree_carve(struct cv_vaspace *s, uint32_t i, uint64_t a,
		       uint64_t size)
{
	struct cv_vfree r = s->f[i];
	uint64_t head = a - r.base, tail = r.base + r.size - (a + size);

	if (head && tail) {
		s->f[i].size = head;
		return vfree_insert(s, i + 1, a + size, tail);
	}
	if (head)
		s->f[i].size = head;
	else if (tail)
		s->f[i] = (struct cv_vfree){ a + size, tail };
	else
		vfree_remove(s, i);
	return 0;
}

int cv_vaspace_alloc(struct cv_vaspace *s, uint64_t size, uint64_t align,
		     uint64_t *out)
{
	uint64_t a;
	uint32_t i;

	if (!size || !cv_is_pow2(align))
		return -EINVAL;
	for (i = 0; i < s->n; i++) {
		a = cv_align_up(s->f[i].base, align);
		if ((!a && s->f[i].base) || a - s->f[i].base >= s->f[i].size)
			continue;
		if (s->f[i].size - (a - s->f[i].base) < size)
			continue;
		if (vfree_carve(s, i, a, size))
			return -ENOMEM;
		*out = a;
		return 0;
	}
	return -ENOMEM;
}

int cv_vaspace_claim(struct cv_vaspace *s, uint64_t addr, uint64_t size)
{
	uint32_t i;

	if (!size)
		return -EINVAL;
	for (i = 0; i < s->n; i++) {
		if (cv_range_in(addr, size, s->f[i].base, s->f[i].size))
			return vfree_carve(s, i, addr, size) ? -ENOMEM : 0;
	}
	return -EEXIST;
}

int cv_vaspace_free(struct cv_vaspace *s, uint64_t base, uint64_t size)
{
	uint32_t lo = 0, hi = s->n, mid;
	struct cv_vfree *p, *n;

	if (!size || !cv_range_in(base, size, s->base, s->size))
		return -EINVAL;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (s->f[mid].base < base)
			lo = mid + 1;
		else
			hi = mid;
	}
	p = lo ? &s->f[lo - 1] : NULL;
	n = lo < s->n ? &s->f[lo] : NULL;
	if ((p && p->base + p->size > base) || (n && base + size > n->base))
		return -EINVAL; /* double free or overlap */
	if (p && p->base + p->size == base) {
		p->size += size;
		if (n && base + size == n->base) {
			p->size += n->size;
			vfree_remove(s, lo);
		}
		return 0;
	}
	if (n && base + size == n->base) {
		n->base = base;
		n->size += size;
		return 0;
	}
	return vfree_insert(s, lo, base, size);
}

uint64_t cv_vaspace_avail(const struct cv_vaspace *s)
{
	uint64_t t = 0;
	uint32_t i;

	for (i = 0; i < s->n; i++)
		t += s->f[i].size;
	return t;
}

/* Orders disjoint ranges; a zero-size key matches the range holding it. */
static int rcmp(const void *a, const void *b)
{
	const struct cv_rnode *x = a, *y = b;

	if (x->base + (x->size ? x->size : 1) <= y->base)
		return -1;
	if (y->base + (y->size ? y->size : 1) <= x->base)
		return 1;
	return 0;
}

int cv_rtree_insert(struct cv_rtree *t, struct cv_rnode *n)
{
	void *r;

	if (!n->size)
		return -EINVAL;
	r = tsearch(n, &t->root, rcmp);
	if (!r)
		return -ENOMEM;
	if (*(struct cv_rnode **)r != n)
		return -EEXIST;
	t->n++;
	return 0;
}

struct cv_rnode *cv_rtree_find(const struct cv_rtree *t, uint64_t addr)
{
	struct cv_rnode key = { addr, 0 };
	void *r = tfind(&key, &t->root, rcmp);

	return r ? *(struct cv_rnode **)r : NULL;
}

void cv_rtree_remove(struct cv_rtree *t, struct cv_rnode *n)
{
	if (tdelete(n, &t->root, rcmp))
		t->n--;
}

struct cv_rnode *cv_rtree_take(struct cv_rtree *t, uint64_t base)
{
	struct cv_rnode *n = cv_rtree_find(t, base);

	if (!n || n->base != base)
		return NULL;
	cv_rtree_remove(t, n);
	return n;
}

static __thread void (*walk_fn)(struct cv_rnode *, void *);
static __thread void *walk_arg;

static void walk_cb(const void *nodep, VISIT which, int depth)
{
	if (which == postorder || which == leaf)
		walk_fn(*(struct cv_rnode *const *)nodep, walk_arg);
}

void cv_rtree_walk(const struct cv_rtree *t,
		   void (*fn)(struct cv_rnode *n, void *arg), void *arg)
{
	walk_fn = fn;
	walk_arg = arg;
	twalk(t->root, walk_cb);
}

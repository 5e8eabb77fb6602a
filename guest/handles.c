/* SPDX-License-Identifier: MIT */
/*
 * Virtual handles (DESIGN.md decision 4). A handle the program sees is
 * (tag << 48) | (type << 44) | (generation << 20) | index: never a
 * pointer, so a stale or made-up handle is refused by a table lookup
 * instead of being dereferenced. The index is also the object's wire id.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "guest.h"

#define H_TAG 0xc5ull
#define H_INDEX_BITS 20
#define H_MAX (1u << H_INDEX_BITS)
#define H_GEN_MASK 0xffffffu

struct hslot {
	void *obj;
	uint32_t gen;
	uint32_t next_free;
};

struct htable {
	struct hslot *s;
	uint32_t cap;
	uint32_t free_head; /* 0: none (index 0 is never used) */
};

static struct htable tabs[CV_H_NTYPES];
static pthread_mutex_t hlock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t encode(enum cv_htype t, uint32_t gen, uint32_t idx)
{
	return (H_TAG << 48) | ((uint64_t)t << 44) |
	       ((uint64_t)(gen & H_GEN_MASK) << 20) | idx;
}

static int grow(struct htable *h)
{
	uint32_t ncap = h->cap ? h->cap * 2 : 64;
	struct hslot *ns;

	if (h->cap >= H_MAX)
		return -ENOMEM;
	if (ncap > H_MAX)
		ncap = H_MAX;
	ns = realloc(h->s, (size_t)ncap * sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	memset(ns + h->cap, 0, (size_t)(ncap - h->cap) * sizeof(*ns));
	h->s = ns;
	h->cap = ncap;
	return 0;
}

static uint32_t take_index(struct htable *h)
{
	uint32_t i, old;

	if (h->free_head) {
		i = h->free_head;
		h->free_head = h->s[i].next_free;
		return i;
	}
	old = h->cap;
	if (grow(h))
		return 0;
	/* thread the new slots (except index 0) onto the free list */
	for (i = h->cap - 1; i > (old ? old : 1); i--) {
		h->s[i].next_free = h->free_head;
		h->free_head = i;
	}
	return old ? old : 1;
}

uint64_t cv_handle_new(void *obj, enum cv_htype t, uint32_t *id)
{
	struct htable *h = &tabs[t];
	struct cv_hobj *o = obj;
	uint32_t i;
	uint64_t v = 0;

	pthread_mutex_lock(&hlock);
	i = take_index(h);
	if (i) {
		h->s[i].obj = obj;
		h->s[i].gen = (h->s[i].gen + 1) & H_GEN_MASK;
		o->type = t;
		o->id = i;
		*id = i;
		v = encode(t, h->s[i].gen, i);
	}
	pthread_mutex_unlock(&hlock);
	return v;
}

static struct hslot *lookup(uint64_t v, enum cv_htype t)
{
	uint32_t i = v & (H_MAX - 1);
	struct htable *h = &tabs[t];

	if ((v >> 48) != H_TAG || ((v >> 44) & 0xf) != (uint64_t)t)
		return NULL;
	if (i == 0 || i >= h->cap || !h->s[i].obj)
		return NULL;
	if (((v >> 20) & H_GEN_MASK) != h->s[i].gen)
		return NULL;
	return &h->s[i];
}

void *cv_handle_get(uint64_t v, enum cv_htype t)
{
	struct hslot *s;
	void *o = NULL;

	if ((unsigned)t >= CV_H_NTYPES)
		return NULL;
	pthread_mutex_lock(&hlock);
	s = lookup(v, t);
	if (s)
		o = s->obj;
	pthread_mutex_unlock(&hlock);
	return o;
}

void cv_handle_del(uint64_t v)
{
	enum cv_htype t = (enum cv_htype)((v >> 44) & 0xf);
	struct hslot *s;

	if ((unsigned)t >= CV_H_NTYPES)
		return;
	pthread_mutex_lock(&hlock);
	s = lookup(v, t);
	if (s) {
		s->obj = NULL;
		s->next_free = tabs[t].free_head;
		tabs[t].free_head = (uint32_t)(s - tabs[t].s);
	}
	pthread_mutex_unlock(&hlock);
}

uint64_t cv_handle_of(const struct cv_hobj *o)
{
	uint64_t v = 0;

	pthread_mutex_lock(&hlock);
	if (o->id < tabs[o->type].cap && tabs[o->type].s[o->id].obj == o)
		v = encode((enum cv_htype)o->type, tabs[o->type].s[o->id].gen,
			   o->id);
	pthread_mutex_unlock(&hlock);
	return v;
}

void cv_handle_each(enum cv_htype t, void (*fn)(void *obj, void *arg),
		    void *arg)
{
	struct htable *h = &tabs[t];
	uint32_t i;
	void *o;

	for (i = 1; i < h->cap; i++) {
		pthread_mutex_lock(&hlock);
		o = i < h->cap ? h->s[i].obj : NULL;
		pthread_mutex_unlock(&hlock);
		if (o)
			fn(o, arg);
	}
}

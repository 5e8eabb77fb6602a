/* SPDX-License-Identifier: MIT */
/*
 * Handle tables and range sets of the worker. Single-threaded: only the
 * consumer thread touches them.
 */
#ifndef CV_TABLES_H
#define CV_TABLES_H

#include <stdbool.h>
#include <stdint.h>

/* Guest-chosen ids map to pointers; ids are < CV_HTAB_MAX, 0 is invalid. */
#define CV_HTAB_MAX (1u << 20)

struct cv_htab {
	void **v;
	uint32_t cap;
	uint32_t count;
};

void cv_htab_init(struct cv_htab *t);
void cv_htab_exit(struct cv_htab *t); /* frees the array, not the values */
/* The value bound to id, or NULL. */
void *cv_htab_get(const struct cv_htab *t, uint32_t id);
/* Binds id (1..CV_HTAB_MAX-1) to v; -EINVAL bad id, -EEXIST taken, -ENOMEM. */
int cv_htab_put(struct cv_htab *t, uint32_t id, void *v);
/* Unbinds id and returns what was bound (NULL if nothing). */
void *cv_htab_del(struct cv_htab *t, uint32_t id);

/*
 * A set of disjoint address ranges, kept sorted, each with an owner
 * pointer.
 */
struct cv_range {
	uint64_t base;
	uint64_t size;
	void *owner;
};

struct cv_rangeset {
	struct cv_range *r;
	uint32_t n;
	uint32_t cap;
};

void cv_rangeset_init(struct cv_rangeset *s);
void cv_rangeset_exit(struct cv_rangeset *s);
/* Adds [base, base + size); -EEXIST if it overlaps, -EINVAL if size is 0
 * or the range wraps, -ENOMEM. */
int cv_rangeset_add(struct cv_rangeset *s, uint64_t base, uint64_t size,
		    void *owner);
/* Removes the range that starts at base with exactly size; its owner is
 * returned in *owner. -ENOENT if there is no such range. */
int cv_rangeset_del(struct cv_rangeset *s, uint64_t base, uint64_t size,
		    void **owner);
/* The range containing addr, or NULL. */
const struct cv_range *cv_rangeset_find(const struct cv_rangeset *s,
					uint64_t addr);
/*
 * True when every byte of [addr, addr + len) lies in the set (possibly
 * across adjacent ranges). len 0 is true only if addr is in the set or
 * one past a range's end.
 */
bool cv_rangeset_covers(const struct cv_rangeset *s, uint64_t addr,
			uint64_t len);
/* True when [addr, addr + len) overlaps any range. */
bool cv_rangeset_overlaps(const struct cv_rangeset *s, uint64_t addr,
			  uint64_t len);

#endif

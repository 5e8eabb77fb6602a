/* SPDX-License-Identifier: MIT */
/*
 * Address-space allocators of the guest: a first-fit free list over a
 * range (the device window, the pinned heap), and a tree of disjoint
 * ranges for looking up which allocation an address belongs to.
 * Not thread-safe: callers hold g.lock.
 */
#ifndef CV_ALLOC_H
#define CV_ALLOC_H

#include <stdbool.h>
#include <stdint.h>

struct cv_vfree { uint64_t base, size; };

struct cv_vaspace {
	struct cv_vfree *f; /* sorted by base, coalesced */
	uint32_t n, cap;
	uint64_t base, size;
};

int cv_vaspace_init(struct cv_vaspace *s, uint64_t base, uint64_t size);
void cv_vaspace_exit(struct cv_vaspace *s);
/* Allocates size bytes aligned to align (a power of two); 0 or -ENOMEM. */
int cv_vaspace_alloc(struct cv_vaspace *s, uint64_t size, uint64_t align,
		     uint64_t *out);
/* Allocates exactly [addr, addr + size) if free; 0 or -EEXIST. */
int cv_vaspace_claim(struct cv_vaspace *s, uint64_t addr, uint64_t size);
/* Returns [base, base + size) to the space; -EINVAL if not inside it or
 * overlapping free space. */
int cv_vaspace_free(struct cv_vaspace *s, uint64_t base, uint64_t size);
/* Total free bytes. */
uint64_t cv_vaspace_avail(const struct cv_vaspace *s);

/*
 * A set of disjoint ranges keyed by address (a balanced tree). Each node
 * is a caller-owned struct that starts with struct cv_rnode.
 */
struct cv_rnode { uint64_t base, size; };
struct cv_rtree { void *root; uint64_t n; };

int cv_rtree_insert(struct cv_rtree *t, struct cv_rnode *n);
/* The node containing addr, or NULL. */
struct cv_rnode *cv_rtree_find(const struct cv_rtree *t, uint64_t addr);
void cv_rtree_remove(struct cv_rtree *t, struct cv_rnode *n);
/* Removes and returns the node that starts exactly at base, or NULL. */
struct cv_rnode *cv_rtree_take(struct cv_rtree *t, uint64_t base);
/* Visits every node in address order; fn may not modify the tree. */
void cv_rtree_walk(const struct cv_rtree *t,
		   void (*fn)(struct cv_rnode *n, void *arg), void *arg);

#endif

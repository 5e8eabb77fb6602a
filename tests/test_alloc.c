/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the guest's allocators (guest/alloc.c), its virtual
 * handles (guest/handles.c) and the worker's tables (worker/tables.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../guest/alloc.h"
#include "../guest/guest.h"
#include "../worker/tables.h"
#include "unit.h"

/* handles.c is linked alone: it needs nothing else from the guest. */

static void test_vaspace(void)
{
	struct cv_vaspace s;
	uint64_t a, b, c, d;

	CHECK(!cv_vaspace_init(&s, 0, 1 << 20), "init at base 0");
	CHECK(!cv_vaspace_alloc(&s, 4096, 4096, &a) && a == 0,
	      "first allocation at the base, even base 0 (got 0x%llx)",
	      (unsigned long long)a);
	CHECK(!cv_vaspace_alloc(&s, 100, 256, &b) && b == 4096,
	      "next one follows, aligned");
	CHECK(!cv_vaspace_alloc(&s, 4096, 65536, &c) && c == 65536,
	      "alignment skips ahead");
	CHECK(cv_vaspace_avail(&s) == (1 << 20) - 4096 - 100 - 4096,
	      "free bytes add up");
	CHECK(cv_vaspace_alloc(&s, 2 << 20, 1, &d) == -ENOMEM,
	      "too large fails");
	CHECK(cv_vaspace_free(&s, b, 100) == 0, "free the middle one");
	CHECK(cv_vaspace_free(&s, b, 100) == -EINVAL, "double free refused");
	CHECK(cv_vaspace_free(&s, 1 << 20, 10) == -EINVAL,
	      "free outside the space refused");
	CHECK(cv_vaspace_free(&s, a, 8192) == -EINVAL,
	      "free overlapping free space refused");
	CHECK(!cv_vaspace_free(&s, a, 4096) && !cv_vaspace_free(&s, c, 4096),
	      "free the rest");
	CHECK(s.n == 1 && s.f[0].base == 0 && s.f[0].size == 1 << 20,
	      "everything coalesced back into one range");
	CHECK(!cv_vaspace_claim(&s, 8192, 4096) &&
	      cv_vaspace_claim(&s, 8192, 4096) == -EEXIST,
	      "claim a fixed range once");
	CHECK(cv_vaspace_alloc(&s, 0, 1, &d) == -EINVAL &&
	      cv_vaspace_alloc(&s, 1, 3, &d) == -EINVAL,
	      "size 0 and non-power-of-two alignment refused");
	cv_vaspace_exit(&s);
}

/* Many random allocations and frees keep the free list consistent. */
static void test_vaspace_random(void)
{
	enum { N = 2000 };
	static uint64_t base[N], size[N];
	struct cv_vaspace s;
	uint64_t total = 64ull << 20, used = 0;
	int i, k, bad = 0;

	srand(7);
	cv_vaspace_init(&s, 0x400000000000ull, total);
	memset(size, 0, sizeof(size));
	for (k = 0; k < 20000; k++) {
		i = rand() % N;
		if (size[i]) {
			bad |= cv_vaspace_free(&s, base[i], size[i]) != 0;
			used -= size[i];
			size[i] = 0;
		} else {
			size[i] = 256 * (1 + rand() % 64);
			if (cv_vaspace_alloc(&s, size[i], 256, &base[i]))
				size[i] = 0;
			else
				used += size[i];
		}
		if (cv_vaspace_avail(&s) != total - used)
			bad |= 2;
	}
	CHECK(!bad, "20000 random alloc/free keep the accounting exact (%d)",
	      bad);
	for (i = 0; i < N; i++)
		if (size[i])
			cv_vaspace_free(&s, base[i], size[i]);
	CHECK(s.n == 1 && cv_vaspace_avail(&s) == total,
	      "all freed: one range again");
	cv_vaspace_exit(&s);
}

static void test_rtree(void)
{
	struct cv_rnode n[3] = { { 100, 10 }, { 200, 50 }, { 110, 5 } };
	struct cv_rnode dup = { 105, 10 }, zero = { 300, 0 };
	struct cv_rtree t = { 0 };

	CHECK(!cv_rtree_insert(&t, &n[0]) && !cv_rtree_insert(&t, &n[1]) &&
	      !cv_rtree_insert(&t, &n[2]), "insert three disjoint ranges");
	CHECK(cv_rtree_insert(&t, &dup) == -EEXIST, "overlap refused");
	CHECK(cv_rtree_insert(&t, &zero) == -EINVAL, "empty range refused");
	CHECK(cv_rtree_find(&t, 100) == &n[0] && cv_rtree_find(&t, 109) == &n[0],
	      "find at both ends");
	CHECK(cv_rtree_find(&t, 110) == &n[2] && !cv_rtree_find(&t, 115) &&
	      !cv_rtree_find(&t, 99), "adjacent and outside");
	CHECK(!cv_rtree_take(&t, 105) && cv_rtree_find(&t, 105) == &n[0],
	      "take needs a range's exact start and leaves others alone");
	CHECK(cv_rtree_take(&t, 100) == &n[0], "take by its start");
	CHECK(!cv_rtree_find(&t, 105) && t.n == 2, "removed");
	cv_rtree_remove(&t, &n[1]);
	cv_rtree_remove(&t, &n[2]);
	CHECK(t.n == 0 && !t.root, "empty again");
}

static void test_handles(void)
{
	struct cv_stream s1, s2;
	struct cv_event e;
	uint32_t id1, id2, id3;
	uint64_t h1, h2, h3;

	memset(&s1, 0, sizeof(s1));
	memset(&s2, 0, sizeof(s2));
	memset(&e, 0, sizeof(e));
	h1 = cv_handle_new(&s1, CV_H_STREAM, &id1);
	h2 = cv_handle_new(&s2, CV_H_STREAM, &id2);
	CHECK(h1 && h2 && h1 != h2 && id1 != id2 && id1 && id2,
	      "two streams get distinct handles and nonzero ids");
	CHECK(h1 > 2 && h2 > 2, "handles never look like CU_STREAM_LEGACY/PER_THREAD");
	CHECK(cv_handle_get(h1, CV_H_STREAM) == &s1, "lookup");
	CHECK(!cv_handle_get(h1, CV_H_EVENT), "a stream handle is not an event");
	CHECK(!cv_handle_get(0x7fffdeadbeefull, CV_H_STREAM) &&
	      !cv_handle_get(0, CV_H_STREAM) && !cv_handle_get(h1 + 1000, CV_H_STREAM),
	      "made-up values are refused without dereferencing them");
	CHECK(cv_handle_of(&s2.h) == h2, "handle of an object");
	cv_handle_del(h1);
	CHECK(!cv_handle_get(h1, CV_H_STREAM), "a destroyed handle is refused");
	h3 = cv_handle_new(&e, CV_H_EVENT, &id3);
	CHECK(h3 && cv_handle_get(h3, CV_H_EVENT) == &e, "other type's table");
	h1 = cv_handle_new(&s1, CV_H_STREAM, &id3);
	CHECK(id3 == id1 && !cv_handle_get(h1 ^ (1ull << 20), CV_H_STREAM),
	      "an id is reused, and a stale generation is refused");
}

static void test_htab(void)
{
	struct cv_htab t;
	int a, b;

	cv_htab_init(&t);
	CHECK(cv_htab_put(&t, 0, &a) == -EINVAL &&
	      cv_htab_put(&t, CV_HTAB_MAX, &a) == -EINVAL,
	      "id 0 and ids past the maximum refused");
	CHECK(!cv_htab_put(&t, 5, &a) && cv_htab_put(&t, 5, &b) == -EEXIST,
	      "bind once");
	CHECK(!cv_htab_put(&t, 100000, &b) && cv_htab_get(&t, 100000) == &b,
	      "the table grows to a large id");
	CHECK(cv_htab_get(&t, 5) == &a && !cv_htab_get(&t, 6) &&
	      !cv_htab_get(&t, 0xffffffffu), "lookups, including far out of range");
	CHECK(cv_htab_del(&t, 5) == &a && !cv_htab_get(&t, 5) &&
	      !cv_htab_del(&t, 5), "unbind");
	cv_htab_exit(&t);
}

static void test_rangeset(void)
{
	struct cv_rangeset s;
	void *o;

	cv_rangeset_init(&s);
	CHECK(!cv_rangeset_add(&s, 0x1000, 0x1000, NULL) &&
	      !cv_rangeset_add(&s, 0x2000, 0x1000, NULL) &&
	      !cv_rangeset_add(&s, 0x8000, 0x1000, &s), "add three ranges");
	CHECK(cv_rangeset_add(&s, 0x1800, 0x100, NULL) == -EEXIST &&
	      cv_rangeset_add(&s, 0x0, 0x1001, NULL) == -EEXIST,
	      "overlaps refused");
	CHECK(cv_rangeset_add(&s, ~0ull - 10, 100, NULL) == -EINVAL,
	      "a wrapping range is refused");
	CHECK(cv_rangeset_covers(&s, 0x1800, 0x1000),
	      "a span across two adjacent ranges is covered");
	CHECK(!cv_rangeset_covers(&s, 0x2800, 0x1000) &&
	      !cv_rangeset_covers(&s, 0x7fff, 2) &&
	      !cv_rangeset_covers(&s, 0x8000, 0x1001),
	      "spans past an end or into a hole are not");
	CHECK(!cv_rangeset_covers(&s, 0x8000, ~0ull),
	      "a huge length does not wrap into success");
	CHECK(cv_rangeset_overlaps(&s, 0x7000, 0x1001) &&
	      !cv_rangeset_overlaps(&s, 0x3000, 0x5000), "overlap queries");
	CHECK(cv_rangeset_del(&s, 0x8000, 0x800, &o) == -ENOENT &&
	      !cv_rangeset_del(&s, 0x8000, 0x1000, &o) && o == &s,
	      "delete needs the exact range and returns its owner");
	CHECK(!cv_rangeset_find(&s, 0x8000) && cv_rangeset_find(&s, 0x2fff),
	      "find after delete");
	cv_rangeset_exit(&s);
}

int main(void)
{
	test_vaspace();
	test_vaspace_random();
	test_rtree();
	test_handles();
	test_htab();
	test_rangeset();
	return unit_done();
}

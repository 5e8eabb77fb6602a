/* SPDX-License-Identifier: MIT */
#include "ring.h"

#include <errno.h>
#include <string.h>

#include "futex.h"
#include "util.h"

#define RING_PROD_SPIN_NS 20000ull
/* A producer waiting for space sleeps in slices (calling its check after
 * each): RING_SLEEP_SLICE_NS for the first RING_SLEEP_LONG_NS of the wait,
 * RING_SLEEP_SLICE_LONG_NS after (a stopped vGPU's ring stays full). */
#define RING_SLEEP_SLICE_NS 50000000ull
#define RING_SLEEP_SLICE_LONG_NS 500000000ull
#define RING_SLEEP_LONG_NS 1000000000ull

static inline uint64_t rec_size(uint32_t len)
{
	return cv_align_up(sizeof(struct cv_cmd_hdr) + (uint64_t)len,
			   CV_CMD_ALIGN);
}

int cv_ring_init(struct cv_ring *r, struct cv_ring_ctl *ctl, void *buf,
		 uint64_t size)
{
	if (!cv_is_pow2(size) || size < 4 * (CV_CMD_MAX_PAYLOAD + 64))
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	r->ctl = ctl;
	r->buf = buf;
	r->size = size;
	r->tail = __atomic_load_n(&ctl->tail, __ATOMIC_ACQUIRE);
	r->head_cache = __atomic_load_n(&ctl->head, __ATOMIC_ACQUIRE);
	r->head = r->head_cache;
	r->tail_cache = r->head;
	r->released = r->head;
	return 0;
}

/* Refreshes head_cache; true when `need` bytes are free after tail. */
static bool prod_has_space(struct cv_ring *r, uint64_t need)
{
	if (r->tail + need - r->head_cache <= r->size)
		return true;
	/* Acquire: pairs with the consumer's release of head, so the bytes it
	 * copied out are no longer read when we overwrite them. */
	r->head_cache = __atomic_load_n(&r->ctl->head, __ATOMIC_ACQUIRE);
	return r->tail + need - r->head_cache <= r->size;
}

static int prod_wait_space(struct cv_ring *r, uint64_t need,
			   cv_ring_check_fn check, void *arg)
{
	struct cv_ring_ctl *c = r->ctl;
	uint64_t t0 = cv_now_ns();
	uint32_t seq;
	int err;

	while (!prod_has_space(r, need)) {
		if (cv_now_ns() - t0 < RING_PROD_SPIN_NS) {
			cv_cpu_relax();
			continue;
		}
		seq = __atomic_load_n(&c->space_doorbell, __ATOMIC_ACQUIRE);
		__atomic_store_n(&c->space_sleeping, 1, __ATOMIC_RELAXED);
		/* Full fence: orders our sleeping flag before re-reading head,
		 * against the consumer's head store before reading the flag. */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (!prod_has_space(r, need))
			cv_futex_wait(&c->space_doorbell, seq,
				      cv_now_ns() - t0 < RING_SLEEP_LONG_NS ?
					      RING_SLEEP_SLICE_NS :
					      RING_SLEEP_SLICE_LONG_NS);
		__atomic_store_n(&c->space_sleeping, 0, __ATOMIC_RELAXED);
		if (check && (err = check(arg)) < 0)
			return err;
	}
	return 0;
}

static void prod_write_hdr(struct cv_ring *r, uint16_t op, uint16_t flags,
			   uint32_t len, uint32_t reply)
{
	struct cv_cmd_hdr h = { .op = op, .flags = flags, .len = len,
				.reply = reply };

	memcpy(r->buf + (r->tail & (r->size - 1)), &h, sizeof(h));
}

void *cv_ring_reserve(struct cv_ring *r, uint16_t op, uint16_t flags,
		      uint32_t len, uint32_t reply, cv_ring_check_fn check,
		      void *arg, int *err)
{
	uint64_t need = rec_size(len), off, room;
	int e;

	if (len > CV_CMD_MAX_PAYLOAD) {
		*err = -EINVAL;
		return NULL;
	}
	off = r->tail & (r->size - 1);
	room = r->size - off;
	if (room < need) {
		/* The record would wrap: pad to the end first. */
		if ((e = prod_wait_space(r, room, check, arg)) < 0) {
			*err = e;
			return NULL;
		}
		prod_write_hdr(r, CV_OP_PAD, 0,
			       (uint32_t)(room - sizeof(struct cv_cmd_hdr)),
			       CV_NO_REPLY);
		r->tail += room;
	}
	if ((e = prod_wait_space(r, need, check, arg)) < 0) {
		*err = e;
		return NULL;
	}
	prod_write_hdr(r, op, flags, len, reply);
	r->pending = need;
	return r->buf + (r->tail & (r->size - 1)) + sizeof(struct cv_cmd_hdr);
}

void cv_ring_commit(struct cv_ring *r)
{
	struct cv_ring_ctl *c = r->ctl;

	r->tail += r->pending;
	r->pending = 0;
	/* Release: the record's bytes (and a PAD before it) become visible
	 * to the consumer no later than the new tail. */
	__atomic_store_n(&c->tail, r->tail, __ATOMIC_RELEASE);
	/* Full fence: orders the tail store before reading cons_sleeping,
	 * against the consumer's flag store before it re-reads tail. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&c->cons_sleeping, __ATOMIC_RELAXED)) {
		__atomic_fetch_add(&c->cons_doorbell, 1, __ATOMIC_RELEASE);
		cv_futex_wake(&c->cons_doorbell, 1);
	}
}

bool cv_ring_pending(struct cv_ring *r)
{
	/* Acquire: pairs with the producer's release of tail. */
	return __atomic_load_n(&r->ctl->tail, __ATOMIC_ACQUIRE) != r->head;
}

static void cons_release(struct cv_ring *r)
{
	struct cv_ring_ctl *c = r->ctl;

	r->released = r->head;
	/* Release: our copies out of the ring complete before the producer
	 * may reuse the space. */
	__atomic_store_n(&c->head, r->head, __ATOMIC_RELEASE);
	/* Full fence: head store before reading space_sleeping (see
	 * prod_wait_space). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&c->space_sleeping, __ATOMIC_RELAXED)) {
		__atomic_fetch_add(&c->space_doorbell, 1, __ATOMIC_RELEASE);
		cv_futex_wake(&c->space_doorbell, INT32_MAX);
	}
}

/*
 * Reloads the producer's tail once everything up to the cached one is
 * consumed. Returns 1 with more to read, 0 when empty, -EPROTO when the
 * tail is impossible. The tail is read once and checked before use.
 */
static int cons_refill(struct cv_ring *r)
{
	uint64_t tail, avail;

	if (r->head != r->tail_cache)
		return 1;
	tail = __atomic_load_n(&r->ctl->tail, __ATOMIC_ACQUIRE);
	avail = tail - r->head;
	if (!avail) {
		if (r->released != r->head)
			cons_release(r);
		return 0;
	}
	if (avail > r->size || (avail % CV_CMD_ALIGN))
		return -EPROTO;
	r->tail_cache = tail;
	return 1;
}

int cv_ring_pop(struct cv_ring *r, struct cv_cmd_hdr *hdr, void *buf,
		uint32_t bufsize)
{
	uint64_t avail, off, need;
	int n;

	for (;;) {
		n = cons_refill(r);
		if (n <= 0)
			return n;
		avail = r->tail_cache - r->head;
		off = r->head & (r->size - 1);
		memcpy(hdr, r->buf + off, sizeof(*hdr));
		if (hdr->len > CV_CMD_MAX_PAYLOAD)
			return -EPROTO;
		need = rec_size(hdr->len);
		if (need > avail || need > r->size - off)
			return -EPROTO;
		if (hdr->op != CV_OP_PAD) {
			if (hdr->len > bufsize)
				return -EPROTO;
			memcpy(buf, r->buf + off + sizeof(*hdr), hdr->len);
		}
		r->head += need;
		if (r->head - r->released >= CV_RING_RELEASE)
			cons_release(r);
		if (hdr->op != CV_OP_PAD)
			return 1;
	}
}

bool cv_ring_wait(struct cv_ring *r, uint64_t spin_ns, uint64_t timeout_ns)
{
	struct cv_ring_ctl *c = r->ctl;
	uint64_t t0 = cv_now_ns();
	uint32_t seq;
	bool got;

	while (!cv_ring_pending(r)) {
		if (cv_now_ns() - t0 < spin_ns) {
			cv_cpu_relax();
			continue;
		}
		seq = __atomic_load_n(&c->cons_doorbell, __ATOMIC_ACQUIRE);
		__atomic_store_n(&c->cons_sleeping, 1, __ATOMIC_RELAXED);
		/* Full fence: flag store before re-reading tail (see commit). */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (!cv_ring_pending(r))
			cv_futex_wait(&c->cons_doorbell, seq, timeout_ns);
		__atomic_store_n(&c->cons_sleeping, 0, __ATOMIC_RELAXED);
		got = cv_ring_pending(r);
		return got;
	}
	return true;
}

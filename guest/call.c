/* SPDX-License-Identifier: MIT */
/*
 * Talking to the worker: async submissions, calls that wait for a reply,
 * staging chunks, and the liveness check that keeps every wait bounded.
 */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <string.h>

#include "../core/futex.h"
#include "../core/log.h"
#include "../core/util.h"
#include "guest.h"

#define REPLY_SPIN_NS 200000ull
/* A long wait sleeps in slices, checking that the worker lives after
 * each: WAIT_SLICE_NS for its first WAIT_LONG_NS, WAIT_SLICE_LONG_NS
 * after (a stopped vGPU can keep a program waiting for hours, and its
 * threads should not wake 20 times a second for it). Every CHECK_NS at
 * first, then at intervals doubling up to CHECK_MAX_NS while the worker
 * says it is busy, it is also asked over the link (check_stalled). */
#define WAIT_SLICE_NS 50000000ull
#define WAIT_SLICE_LONG_NS 500000000ull
#define WAIT_LONG_NS 1000000000ull
#define CHECK_NS 1000000000ull
#define CHECK_MAX_NS 8000000000ull

/* ---- liveness ----------------------------------------------------------- */

static void mark_lost(void)
{
	if (!g.lost) {
		g.lost = 1;
		cv_err("vGPU of tenant %llu lost: its worker is gone",
		       (unsigned long long)g.tenant);
	}
}

int cv_g_alive(void *unused)
{
	struct pollfd p = { g.link_fd, POLLRDHUP, 0 };

	if (g.lost)
		return -ENODEV;
	if (__atomic_load_n(&g.ctl->lost, __ATOMIC_ACQUIRE)) {
		mark_lost();
		return -ENODEV;
	}
	/* The worker's end of the link closes when it exits. */
	if (poll(&p, 1, 0) > 0 &&
	    (p.revents & (POLLHUP | POLLERR | POLLRDHUP | POLLNVAL))) {
		mark_lost();
		return -ENODEV;
	}
	return 0;
}

/*
 * What a long wait waits for. upto is the ring position (bytes committed)
 * up to which the worker must have executed for the wait to end; done()
 * re-reads, from the region, whether it has ended.
 */
struct waiter {
	uint64_t upto;
	bool (*done)(const struct waiter *w);
	const void *obj;  /* what done() reads: a reply slot, a chunk index */
	uint64_t t0;      /* when the wait began (ns) */
	uint64_t check_at;    /* next check_stalled (ns) */
	uint64_t check_every; /* the interval after it */
};

static struct waiter waiter_new(uint64_t upto,
				bool (*done)(const struct waiter *w),
				const void *obj)
{
	uint64_t now = cv_now_ns();

	return (struct waiter){ .upto = upto, .done = done, .obj = obj,
				.t0 = now, .check_at = now + CHECK_NS,
				.check_every = CHECK_NS };
}

/* How long a waiter's next futex sleep may be. */
static uint64_t wait_slice(const struct waiter *w)
{
	return cv_now_ns() - w->t0 < WAIT_LONG_NS ? WAIT_SLICE_NS
						  : WAIT_SLICE_LONG_NS;
}

/*
 * Asks the worker over the link whether it has executed everything up to
 * w->upto and has nothing left in flight. An honest worker publishes what
 * w waits for (a reply, a chunk's state, ring space) before it becomes
 * idle past w->upto, so once it says so, w->done() is read again: true
 * means the worker simply finished while we asked. Only when it is still
 * false will what we wait for never arrive: the region was corrupted (only
 * the guest itself can do that), and the vGPU is marked lost rather than
 * waited on forever. Returns -ENODEV in that case, else 0 (also when the
 * worker does not answer in time).
 */
static int check_stalled(const struct waiter *w)
{
	static pthread_mutex_t ping_lock = PTHREAD_MUTEX_INITIALIZER;
	struct pollfd p = { g.link_fd, POLLIN, 0 };
	struct cv_link_status st;
	char junk[64];
	ssize_t n = -1;

	pthread_mutex_lock(&ping_lock);
	/* Drop answers that came after an earlier caller gave up. */
	while (recv(g.link_fd, junk, sizeof(junk), MSG_DONTWAIT) > 0)
		;
	if (send(g.link_fd, "?", 1, MSG_NOSIGNAL) == 1 &&
	    poll(&p, 1, 1000) > 0 && (p.revents & POLLIN))
		n = recv(g.link_fd, &st, sizeof(st), MSG_DONTWAIT);
	pthread_mutex_unlock(&ping_lock);
	if (n != (ssize_t)sizeof(st) || !st.idle || st.head < w->upto)
		return cv_g_alive(NULL);
	/* Full fence: the region is read again only after the answer, which
	 * the worker sent after publishing everything up to st.head. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (w->done(w))
		return 0;
	if (!g.lost) {
		g.lost = 1;
		cv_err("vGPU of tenant %llu unusable: the shared region was overwritten (worker idle at ring position %llu)",
		       (unsigned long long)g.tenant,
		       (unsigned long long)st.head);
	}
	return -ENODEV;
}

/* Liveness for long waits; now and then (waiter) a stall check too. */
static int wait_check(struct waiter *w)
{
	uint64_t now = cv_now_ns();
	int r;

	if (now < w->check_at)
		return cv_g_alive(NULL);
	r = check_stalled(w);
	w->check_every = CV_MIN(w->check_every * 2, CHECK_MAX_NS);
	w->check_at = cv_now_ns() + w->check_every;
	return r;
}

/* A producer waiting for space: an honest worker idle past upto has
 * consumed the whole ring (no other producer commits while we hold
 * ring_lock, so head cannot pass upto), and then there is space. */
static bool ring_drained(const struct waiter *w)
{
	return __atomic_load_n(&g.ring.ctl->head, __ATOMIC_ACQUIRE) == w->upto;
}

static bool reply_done(const struct waiter *w)
{
	const struct cv_reply *r = w->obj;

	return __atomic_load_n(&r->state, __ATOMIC_ACQUIRE) == CV_REPLY_DONE;
}

static bool chunk_done(const struct waiter *w)
{
	const uint32_t *st = w->obj;

	return __atomic_load_n(st, __ATOMIC_ACQUIRE) != CV_CHUNK_BUSY;
}

static int ring_space_check(void *arg)
{
	return wait_check(arg);
}

static uint64_t committed(void)
{
	return __atomic_load_n(&g.committed, __ATOMIC_ACQUIRE);
}

int cv_err_to_cu(int err)
{
	switch (err) {
	case 0: return CUDA_SUCCESS;
	case -ENODEV: return CUDA_ERROR_DEVICE_UNAVAILABLE;
	case -ENOMEM: return CUDA_ERROR_OUT_OF_MEMORY;
	case -EINVAL: return CUDA_ERROR_INVALID_VALUE;
	case -ENOENT: return CUDA_ERROR_NOT_FOUND;
	default: return CUDA_ERROR_UNKNOWN;
	}
}

/* ---- submission --------------------------------------------------------- */

void *cv_g_reserve(uint16_t op, uint32_t len, int *err)
{
	struct waiter w;
	void *p;

	if (g.lost) {
		*err = CUDA_ERROR_DEVICE_UNAVAILABLE;
		return NULL;
	}
	pthread_mutex_lock(&g.ring_lock);
	w = waiter_new(g.ring.tail, ring_drained, NULL);
	p = cv_ring_reserve(&g.ring, op, 0, len, CV_NO_REPLY, ring_space_check,
			    &w, err);
	if (!p) {
		pthread_mutex_unlock(&g.ring_lock);
		*err = cv_err_to_cu(*err);
	}
	return p;
}

void cv_g_commit(void)
{
	cv_ring_commit(&g.ring);
	__atomic_store_n(&g.committed, g.ring.tail, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&g.ring_lock);
}

int cv_g_submit(uint16_t op, const void *payload, uint32_t len)
{
	int err = 0;
	void *p = cv_g_reserve(op, len, &err);

	if (!p)
		return err;
	if (len)
		memcpy(p, payload, len);
	cv_g_commit();
	return CUDA_SUCCESS;
}

/* ---- replies ------------------------------------------------------------ */

static uint32_t slot_get(void)
{
	uint32_t i, w;
	int b;

	pthread_mutex_lock(&g.slot_lock);
	for (;;) {
		for (w = 0; w < CV_NREPLY / 64; w++) {
			if (~g.slot_used[w]) {
				b = __builtin_ctzll(~g.slot_used[w]);
				g.slot_used[w] |= 1ull << b;
				i = w * 64 + (uint32_t)b;
				pthread_mutex_unlock(&g.slot_lock);
				return i;
			}
		}
		pthread_cond_wait(&g.slot_cond, &g.slot_lock);
	}
}

static void slot_put(uint32_t i)
{
	pthread_mutex_lock(&g.slot_lock);
	g.slot_used[i / 64] &= ~(1ull << (i % 64));
	pthread_cond_signal(&g.slot_cond);
	pthread_mutex_unlock(&g.slot_lock);
}

/* Waits for reply slot r to be DONE; 0 or -ENODEV. */
static int reply_wait(struct cv_reply *r, uint64_t upto)
{
	struct waiter w = waiter_new(upto, reply_done, r);
	uint64_t t0 = w.t0;

	/* Acquire: pairs with the worker's release of DONE, so the data
	 * and status read after this are the worker's. */
	while (__atomic_load_n(&r->state, __ATOMIC_ACQUIRE) != CV_REPLY_DONE) {
		if (cv_now_ns() - t0 < REPLY_SPIN_NS) {
			cv_cpu_relax();
			continue;
		}
		__atomic_store_n(&r->sleeping, 1, __ATOMIC_RELAXED);
		/* Full fence: our flag before re-reading state, against the
		 * worker's DONE store before it reads the flag. */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (__atomic_load_n(&r->state, __ATOMIC_ACQUIRE) ==
		    CV_REPLY_DONE)
			break;
		cv_futex_wait(&r->state, CV_REPLY_PENDING, wait_slice(&w));
		__atomic_store_n(&r->sleeping, 0, __ATOMIC_RELAXED);
		if (__atomic_load_n(&r->state, __ATOMIC_ACQUIRE) !=
		    CV_REPLY_DONE && wait_check(&w))
			return -ENODEV;
	}
	return 0;
}

static int call_parts(uint16_t op, bool collect, const void *p1, uint32_t l1,
		      const void *p2, uint32_t l2, void *out, uint32_t outlen,
		      uint32_t *got)
{
	uint32_t slot = slot_get();
	struct cv_reply *r = &g.replies[slot];
	struct waiter w;
	int err = 0, status;
	uint64_t upto;
	uint8_t *p;

	__atomic_store_n(&r->sleeping, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&r->state, CV_REPLY_PENDING, __ATOMIC_RELAXED);
	pthread_mutex_lock(&g.ring_lock);
	w = waiter_new(g.ring.tail, ring_drained, NULL);
	p = cv_ring_reserve(&g.ring, op, collect ? CV_CMDF_COLLECT : 0,
			    l1 + l2, slot, ring_space_check, &w, &err);
	if (!p) {
		pthread_mutex_unlock(&g.ring_lock);
		slot_put(slot);
		return cv_err_to_cu(err);
	}
	if (l1)
		memcpy(p, p1, l1);
	if (l2)
		memcpy(p + l1, p2, l2);
	cv_ring_commit(&g.ring);
	upto = g.ring.tail;
	__atomic_store_n(&g.committed, upto, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&g.ring_lock);

	if (reply_wait(r, upto)) {
		/* The slot may still be written by a dying worker: leak it. */
		return CUDA_ERROR_DEVICE_UNAVAILABLE;
	}
	status = r->status;
	/* A deferred error wins over the call's own answer (NOT_READY of a
	 * query, say): once collected it would be lost otherwise. */
	if (collect && r->async_err)
		status = r->async_err;
	if (got)
		*got = CV_MIN(r->len, (uint32_t)CV_REPLY_DATA);
	if (out && outlen)
		memcpy(out, r->data, CV_MIN(outlen, CV_MIN(r->len,
			(uint32_t)CV_REPLY_DATA)));
	__atomic_store_n(&r->state, CV_REPLY_FREE, __ATOMIC_RELAXED);
	slot_put(slot);
	if (status && status != CUDA_ERROR_NOT_READY)
		cv_dbg("worker answered op %u with error %d", op, status);
	return status;
}

int cv_g_call(uint16_t op, bool collect, const void *payload, uint32_t len,
	      void *out, uint32_t outlen, uint32_t *got)
{
	if (g.lost)
		return CUDA_ERROR_DEVICE_UNAVAILABLE;
	return call_parts(op, collect, payload, len, NULL, 0, out, outlen, got);
}

int cv_g_call2(uint16_t op, const void *p1, uint32_t l1, const void *p2,
	       uint32_t l2, void *out, uint32_t outlen)
{
	if (g.lost)
		return CUDA_ERROR_DEVICE_UNAVAILABLE;
	return call_parts(op, false, p1, l1, p2, l2, out, outlen, NULL);
}

/* ---- staging chunks ----------------------------------------------------- */

static uint32_t chunk_state(uint32_t i)
{
	return __atomic_load_n(&g.chunk_state[i], __ATOMIC_ACQUIRE);
}

int cv_g_chunk_wait(uint32_t i)
{
	struct waiter w = waiter_new(committed(), chunk_done,
				     &g.chunk_state[i]);
	uint32_t st;

	for (;;) {
		st = chunk_state(i);
		if (st != CV_CHUNK_BUSY)
			return st == CV_CHUNK_FAILED ? CUDA_ERROR_UNKNOWN : 0;
		/* A lost vGPU's chunks stay busy: no slice to wait out. */
		if (g.lost)
			return CUDA_ERROR_DEVICE_UNAVAILABLE;
		/* The worker always wakes after changing a chunk's state. */
		cv_futex_wait(&g.chunk_state[i], CV_CHUNK_BUSY,
			      wait_slice(&w));
		if (chunk_state(i) == CV_CHUNK_BUSY && wait_check(&w))
			return CUDA_ERROR_DEVICE_UNAVAILABLE;
	}
}

int cv_g_chunk_get(uint32_t *idx)
{
	uint32_t i, k, pick = CV_STAGING_CHUNKS;
	int rc;

	pthread_mutex_lock(&g.chunk_lock);
	for (;;) {
		/* Prefer a free chunk whose last copy has completed. */
		for (k = 0; k < CV_STAGING_CHUNKS; k++) {
			i = (g.chunk_next + k) % CV_STAGING_CHUNKS;
			if (g.chunk_owned[i])
				continue;
			if (pick == CV_STAGING_CHUNKS)
				pick = i;
			if (chunk_state(i) != CV_CHUNK_BUSY) {
				pick = i;
				break;
			}
		}
		if (pick < CV_STAGING_CHUNKS)
			break;
		pthread_cond_wait(&g.chunk_cond, &g.chunk_lock);
	}
	g.chunk_owned[pick] = true;
	g.chunk_next = (pick + 1) % CV_STAGING_CHUNKS;
	pthread_mutex_unlock(&g.chunk_lock);

	rc = cv_g_chunk_wait(pick);
	if (rc == CUDA_ERROR_DEVICE_UNAVAILABLE) {
		cv_g_chunk_put(pick);
		return rc;
	}
	__atomic_store_n(&g.chunk_state[pick], CV_CHUNK_BUSY, __ATOMIC_RELAXED);
	*idx = pick;
	return 0;
}

void cv_g_chunk_put(uint32_t i)
{
	pthread_mutex_lock(&g.chunk_lock);
	g.chunk_owned[i] = false;
	pthread_cond_signal(&g.chunk_cond);
	pthread_mutex_unlock(&g.chunk_lock);
}

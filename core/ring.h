/* SPDX-License-Identifier: MIT */
/*
 * The command ring: one per attached guest process, many producer threads
 * (serialised by the caller's lock), one consumer (the worker).
 *
 * Producer (guest):
 *	p = cv_ring_reserve(r, op, flags, len, reply, check, arg, &err);
 *	... write len bytes of payload at p ...
 *	cv_ring_commit(r);
 * reserve..commit must be done under the caller's producer lock.
 *
 * Consumer (worker):
 *	n = cv_ring_pop(r, &hdr, buf, bufsize);   1 got a record, 0 empty,
 *	                                           -EPROTO the guest broke it
 * pop copies the record out of shared memory before anyone looks at it. It
 * reads the producer's tail only when it has consumed up to the last tail
 * it saw, and publishes its head every CV_RING_RELEASE bytes and whenever
 * the ring runs empty: in a stream of small commands the two sides then
 * touch each other's cache lines rarely, not once per command.
 */
#ifndef CV_RING_H
#define CV_RING_H

#include <stdbool.h>
#include <stdint.h>

#include "proto.h"

#define CV_RING_RELEASE (64u << 10)

struct cv_ring {
	struct cv_ring_ctl *ctl;
	uint8_t *buf;
	uint64_t size;      /* power of two */
	/* producer side, under the producer lock */
	uint64_t tail;
	uint64_t head_cache;
	uint64_t pending;   /* size of the reserved, uncommitted record */
	/* consumer side */
	uint64_t head;
	uint64_t tail_cache;  /* last validated tail */
	uint64_t released;    /* head as last published to the producer */
};

/*
 * Binds r to a ring of `size` bytes at buf with control words at ctl.
 * As producer, tail starts from ctl->tail; as consumer, head from
 * ctl->head (both 0 on a fresh region).
 */
int cv_ring_init(struct cv_ring *r, struct cv_ring_ctl *ctl, void *buf,
		 uint64_t size);

/*
 * Liveness check called while a producer waits for space: return 0 to keep
 * waiting, -errno to give up (the error is returned by reserve).
 */
typedef int (*cv_ring_check_fn)(void *arg);

/*
 * Reserves a record with a payload of len bytes; returns where to write the
 * payload, or NULL with *err set (-EINVAL len too large, or what check
 * returned). Waits for space: spins briefly, then sleeps on the space
 * doorbell in slices of 50 ms, calling check between slices.
 */
void *cv_ring_reserve(struct cv_ring *r, uint16_t op, uint16_t flags,
		      uint32_t len, uint32_t reply, cv_ring_check_fn check,
		      void *arg, int *err);

/* Publishes the reserved record and wakes the consumer if it sleeps. */
void cv_ring_commit(struct cv_ring *r);

/*
 * Copies the next record out: its header into *hdr and its payload into
 * buf (at most bufsize bytes; a longer payload is -EPROTO). Returns 1, 0
 * when the ring is empty, or -EPROTO when the indices or the record are
 * malformed (the ring is then unusable). PAD records are skipped.
 */
int cv_ring_pop(struct cv_ring *r, struct cv_cmd_hdr *hdr, void *buf,
		uint32_t bufsize);

/* True when the producer has published records not yet popped. */
bool cv_ring_pending(struct cv_ring *r);

/*
 * Consumer wait: spins up to spin_ns for work, then sleeps on the consumer
 * doorbell up to timeout_ns. Returns true when there is work.
 */
bool cv_ring_wait(struct cv_ring *r, uint64_t spin_ns, uint64_t timeout_ns);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * Unit test of revocation (worker/revoke.c) on the host backend, with a
 * real consumer thread: suspend parks it between commands, evict moves
 * device memory out and releases it, resume brings the same bytes back at
 * the same addresses and lets commands flow again.
 */
#include <cuda.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/util.h"

#include "../core/futex.h"
#include "../core/log.h"
#include "../core/proto.h"
#include "../core/ring.h"
#include "../worker/backend.h"
#include "../worker/vgpu.h"
#include "unit.h"

#define QUOTA (128ull << 20)
#define WIN CV_WINDOW_ADDR
#define SIZE (36 * CV_GRANULE) /* three staging chunks and a bit */

static struct cv_vgpu v;
static struct cv_ring prod; /* the "guest" side of the ring */
static uint8_t *region;

/* Pushes a command that takes reply slot 0 and waits for it (5 s). */
static int call(uint16_t op, const void *p, uint32_t len)
{
	struct cv_reply *r = &v.replies[0];
	uint64_t t0 = cv_now_ns();
	int err = 0;
	void *dst;

	r->state = CV_REPLY_PENDING;
	dst = cv_ring_reserve(&prod, op, 0, len, 0, NULL, NULL, &err);
	if (!dst)
		return -1;
	if (len)
		memcpy(dst, p, len);
	cv_ring_commit(&prod);
	while (__atomic_load_n(&r->state, __ATOMIC_ACQUIRE) != CV_REPLY_DONE) {
		if (cv_now_ns() - t0 > 30000000000ull) /* a hang */
			return -2;
		usleep(100);
	}
	return r->status;
}

/* Pushes a command without waiting; true when its reply arrives within
 * wait_ms. */
static bool answered_within(uint16_t op, const void *p, uint32_t len,
			    int wait_ms)
{
	struct cv_reply *r = &v.replies[1];
	int err = 0, i;
	void *dst;

	r->state = CV_REPLY_PENDING;
	dst = cv_ring_reserve(&prod, op, 0, len, 1, NULL, NULL, &err);
	if (!dst)
		return false;
	if (len)
		memcpy(dst, p, len);
	cv_ring_commit(&prod);
	for (i = 0; i < wait_ms; i++) {
		if (__atomic_load_n(&r->state, __ATOMIC_ACQUIRE) ==
		    CV_REPLY_DONE)
			return true;
		usleep(1000);
	}
	return false;
}

static void *consumer(void *arg)
{
	cv_vgpu_run(&v);
	return NULL;
}

static bool pattern_ok(uint32_t seed)
{
	const uint32_t *p = (const uint32_t *)WIN;
	uint64_t i;

	for (i = 0; i < SIZE / 4; i++)
		if (p[i] != (uint32_t)(i * 2654435761u + seed))
			return false;
	return true;
}

int main(void)
{
	struct cv_backend_cfg cfg = { .gpu = 0, .quota = QUOTA };
	struct cv_mem_range m = { WIN, SIZE };
	struct cv_backend *b;
	uint64_t bytes = 0, i, t0;
	uint32_t *p = (uint32_t *)WIN;
	pthread_t th;
	int fd;

	cv_log_init("test_revoke", CV_LOG_OFF, NULL);
	if (cv_region_create(&fd, &region) ||
	    cv_backend_host.open(&cfg, &((struct cv_region_hdr *)region)->dev,
				 &b) ||
	    cv_vgpu_init(&v, &cv_backend_host, b, region, fd, QUOTA, 1,
			 &((struct cv_region_hdr *)region)->dev, false) ||
	    cv_ring_init(&prod, v.ctl, region + CV_RING_OFF, CV_RING_SIZE) ||
	    pthread_create(&th, NULL, consumer, NULL)) {
		printf("Bail out! cannot set up a host vGPU\n");
		return 1;
	}
	CHECK(call(CV_OP_MEM_MAP, &m, sizeof(m)) == 0, "map 72 MiB");
	/* the host backend's device memory is ours to write directly */
	for (i = 0; i < SIZE / 4; i++)
		p[i] = (uint32_t)(i * 2654435761u + 7);

	t0 = cv_now_ns();
	CHECK(cv_vgpu_suspend(&v) == 0 && v.parked &&
	      v.ctl->state == CV_STATE_SUSPENDED,
	      "suspend parks the consumer (%.3f ms)",
	      (cv_now_ns() - t0) / 1e6);
	CHECK(!answered_within(CV_OP_NOP, NULL, 0, 200),
	      "a suspended vGPU takes no command");
	CHECK(cv_vgpu_evict(&v, &bytes) == 0 && bytes == SIZE &&
	      v.ctl->state == CV_STATE_EVICTED,
	      "evict moves all %llu bytes out", (unsigned long long)bytes);
	CHECK(cv_vgpu_evict(&v, &bytes) == -EALREADY,
	      "evicting twice is refused");
	CHECK(cv_vgpu_resume(&v, &bytes) == 0 && bytes == SIZE &&
	      v.ctl->state == CV_STATE_RUNNING && !v.parked,
	      "resume restores the bytes and runs again");
	CHECK(pattern_ok(7), "every byte is back at the same address");
	CHECK(v.replies[1].state == CV_REPLY_DONE || answered_within(
		      CV_OP_NOP, NULL, 0, 30000),
	      "the command queued while suspended ran after resume");
	CHECK(cv_vgpu_resume(&v, &bytes) == -EALREADY,
	      "resuming a running vGPU is refused");
	for (i = 0; i < 3; i++) {
		CHECK(cv_vgpu_suspend(&v) == 0 && cv_vgpu_evict(&v, &bytes) == 0 &&
		      cv_vgpu_resume(&v, &bytes) == 0 && pattern_ok(7),
		      "evict and resume again (%llu)", (unsigned long long)i);
	}
	CHECK(call(CV_OP_NOP, NULL, 0) == 0, "commands flow afterwards");

	v.guest_gone = 1;
	__atomic_fetch_add(&v.ctl->cons_doorbell, 1, __ATOMIC_RELEASE);
	cv_futex_wake(&v.ctl->cons_doorbell, INT32_MAX);
	pthread_join(th, NULL);
	cv_vgpu_exit(&v);
	cv_backend_host.close(b);
	return unit_done();
}

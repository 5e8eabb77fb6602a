/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the worker's command decoder (worker/decode.c)
 * and the ring consumer (core/ring.c), on the host backend.
 *
 * Each input is split in two: the first byte selects the mode.
 *  - mode 0: a sequence of records, each a struct cv_cmd_hdr followed by
 *    up to hdr.len payload bytes, handed to cv_vgpu_exec directly;
 *  - mode 1: raw bytes written into the shared ring with an arbitrary
 *    tail, then consumed with cv_ring_pop as the worker does.
 * A fresh vGPU is set up for every input, so inputs are independent.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/proto.h"
#include "../core/ring.h"
#include "../worker/backend.h"
#include "../worker/vgpu.h"

#define FUZZ_QUOTA (256ull << 20)

static uint8_t *region;
static int memfd = -1;

static void run_records(struct cv_vgpu *v, const uint8_t *d, size_t n)
{
	static uint8_t payload[CV_CMD_MAX_PAYLOAD];
	struct cv_cmd_hdr h;
	size_t take;

	while (n >= sizeof(h)) {
		memcpy(&h, d, sizeof(h));
		d += sizeof(h);
		n -= sizeof(h);
		take = h.len < n ? h.len : n;
		if (take > sizeof(payload))
			take = sizeof(payload);
		memcpy(payload, d, take);
		/* the declared length stays as sent: the decoder must cope */
		if (h.len > sizeof(payload))
			h.len = (uint32_t)take;
		d += take;
		n -= take;
		if (cv_vgpu_exec(v, &h, payload) < 0)
			return;
	}
}

static void run_ring(struct cv_vgpu *v, const uint8_t *d, size_t n)
{
	static uint8_t payload[CV_CMD_MAX_PAYLOAD];
	struct cv_cmd_hdr h;
	uint64_t tail = 0;
	int i, r;

	if (n >= 8) {
		memcpy(&tail, d, 8);
		d += 8;
		n -= 8;
	}
	if (n > CV_RING_SIZE)
		n = CV_RING_SIZE;
	memcpy(region + CV_RING_OFF, d, n);
	v->ctl->tail = tail;
	for (i = 0; i < 4096; i++) {
		r = cv_ring_pop(&v->ring, &h, payload, sizeof(payload));
		if (r <= 0)
			return;
		if (cv_vgpu_exec(v, &h, payload) < 0)
			return;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static struct cv_vgpu v;
	struct cv_backend_cfg cfg = { .gpu = 0, .quota = FUZZ_QUOTA };
	struct cv_backend *b = NULL;

	if (!region) {
		cv_log_init("fuzz", CV_LOG_OFF, NULL);
		if (cv_region_create(&memfd, &region))
			abort();
	}
	memset(region, 0, CV_HEAP_OFF);
	if (cv_backend_host.open(&cfg, &((struct cv_region_hdr *)region)->dev,
				 &b))
		abort();
	if (cv_vgpu_init(&v, &cv_backend_host, b, region, memfd, FUZZ_QUOTA,
			 1, &((struct cv_region_hdr *)region)->dev, false))
		abort();
	/* No guest runs host functions here: never wait for one. */
	v.guest_gone = 1;
	v.heap_limit = 64ull << 20;
	if (n && (d[0] & 1))
		run_ring(&v, d + 1, n - 1);
	else if (n)
		run_records(&v, d + 1, n - 1);
	cv_vgpu_exit(&v);
	cv_backend_host.close(b);
	return 0;
}

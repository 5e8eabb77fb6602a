/* SPDX-License-Identifier: MIT */
/*
 * The remote vGPU protocol (core/remote.h): its decoders, the session
 * key, and the serving worker (worker/remote_serve.c) on the host backend
 * over a socketpair, driven by hand as a peer would, good and bad: every
 * id, range, length and quota refused as it must be, an asynchronous
 * error told at the next synchronising op, and a peer that breaks the
 * protocol closed on; and the copy lanes' compressor (worker/lane_zstd.c)
 * with frames a peer could send.
 */
#include <cuda.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zstd.h>

#include "../core/peer.h"
#include "../core/remote.h"
#include "../core/util.h"
#include "../worker/backend.h"
#include "../worker/remote.h"
#include "unit.h"

#define QUOTA (64ull << 20)
#define W CV_WINDOW_ADDR
#define MIB (1ull << 20)

static void decoders(void)
{
	struct cv_rm_hdr h = { .op = CV_RM_LAUNCH,
			       .len = sizeof(struct cv_rm_args) };
	struct cv_rm_ready rd, out;
	struct cv_peer_vgpu vg = { .version = CV_RM_VERSION, .gpu = 0,
				   .quota = 1, .timeout_ms = 10000 }, vo;
	struct cv_peer_hello a, b, c;
	uint8_t key[CV_PEER_KEY_LEN] = { 7 }, s1[32], s2[32], s3[32];
	const char *why;

	CHECK(!cv_rm_hdr_check(&h, CV_RM_TO_SERVER, &why), "a launch to the server");
	CHECK(cv_rm_hdr_check(&h, CV_RM_TO_CLIENT, &why) == -EBADMSG,
	      "a launch to the client is refused");
	h.len = sizeof(struct cv_rm_args) - 1;
	CHECK(cv_rm_hdr_check(&h, CV_RM_TO_SERVER, &why) == -EBADMSG,
	      "shorter than its arguments: refused");
	h.len = CV_RM_MAX_PAYLOAD + 1;
	CHECK(cv_rm_hdr_check(&h, CV_RM_TO_SERVER, &why) == -EBADMSG,
	      "over the cap: refused (%s)", why);
	h = (struct cv_rm_hdr){ .op = CV_RM_OP_END, .len = 0 };
	CHECK(cv_rm_hdr_check(&h, CV_RM_TO_SERVER, &why) == -EBADMSG,
	      "an unknown op: refused");
	h = (struct cv_rm_hdr){ .op = CV_RM_PING, .len = 1 };
	CHECK(cv_rm_hdr_check(&h, CV_RM_TO_SERVER, &why) == -EBADMSG,
	      "a ping with a payload: refused");
	h = (struct cv_rm_hdr){ .op = CV_RM_DATA,
				.len = sizeof(struct cv_rm_data) };
	CHECK(!cv_rm_hdr_check(&h, CV_RM_TO_CLIENT, &why) &&
	      cv_rm_hdr_check(&h, CV_RM_TO_SERVER, &why),
	      "DATA only to the client");
	h = (struct cv_rm_hdr){ .op = CV_RM_HOSTFN, .len = 9 };
	CHECK(cv_rm_hdr_check(&h, CV_RM_TO_CLIENT, &why) == -EBADMSG,
	      "a HOSTFN of the wrong size: refused");

	memset(&rd, 0, sizeof(rd));
	rd.version = CV_RM_VERSION;
	strcpy(rd.host, "b");
	strcpy(rd.dev.name, "gpu");
	CHECK(!cv_rm_ready_check(&rd, sizeof(rd), &out, &why), "a good READY");
	CHECK(cv_rm_ready_check(&rd, sizeof(rd) - 1, &out, &why),
	      "a short READY: refused");
	rd.version++;
	CHECK(cv_rm_ready_check(&rd, sizeof(rd), &out, &why),
	      "another version: refused");
	rd.version--;
	memset(rd.host, 'x', sizeof(rd.host));
	CHECK(cv_rm_ready_check(&rd, sizeof(rd), &out, &why),
	      "an unterminated host name: refused");
	strcpy(rd.host, "b");
	rd.dev.name[0] = '\n';
	CHECK(cv_rm_ready_check(&rd, sizeof(rd), &out, &why),
	      "an unprintable device name: refused");

	CHECK(!cv_rm_launch_split(2 * sizeof(struct cv_launch_attr) + 24, 2, 24),
	      "a launch's attributes and parameters add up");
	CHECK(cv_rm_launch_split(24, 1, 24) && cv_rm_launch_split(25, 0, 24),
	      "bytes that do not add up: refused");
	CHECK(cv_rm_launch_split((CV_RM_MAX_ATTRS + 1) *
				 sizeof(struct cv_launch_attr), CV_RM_MAX_ATTRS + 1, 0),
	      "too many attributes: refused");

	CHECK(!cv_peer_vgpu_check(&vg, sizeof(vg), &vo, &why), "a VGPU request");
	vg.timeout_ms = 10;
	CHECK(cv_peer_vgpu_check(&vg, sizeof(vg), &vo, &why),
	      "a 10 ms timeout: refused");
	vg.timeout_ms = 10000;
	vg.quota = 0;
	CHECK(cv_peer_vgpu_check(&vg, sizeof(vg), &vo, &why), "no quota: refused");
	vg.quota = 1;
	vg.version = 99;
	CHECK(cv_peer_vgpu_check(&vg, sizeof(vg), &vo, &why),
	      "another version: refused");
	CHECK(cv_peer_vgpu_check(&vg, sizeof(vg) + 1, &vo, &why),
	      "a long request: refused");

	cv_peer_hello_make(&a, CV_PEER_CLIENT, "a");
	cv_peer_hello_make(&b, CV_PEER_SERVER, "b");
	cv_peer_hello_make(&c, CV_PEER_SERVER, "b");
	cv_peer_session_key(key, &a, &b, s1);
	cv_peer_session_key(key, &b, &a, s2);
	CHECK(!memcmp(s1, s2, 32), "both ends compute one session key");
	cv_peer_session_key(key, &a, &c, s3);
	CHECK(memcmp(s1, s3, 32), "other nonces, another session key");
	key[0]++;
	cv_peer_session_key(key, &a, &b, s3);
	CHECK(memcmp(s1, s3, 32), "another peer key, another session key");
}

/* ---- the serving worker, driven by hand ---------------------------------- */

static int fd;
static uint64_t seq;

struct serve_arg {
	int fd, rc;
	struct cv_backend *b;
	struct cv_devinfo dev;
};

static void *serve_main(void *arg)
{
	struct serve_arg *s = arg;

	s->rc = cv_remote_serve(s->fd, &cv_backend_host, s->b, &s->dev, 0,
				QUOTA, 5000, "test", "here", NULL);
	return NULL;
}

/* Sends op with args and bytes; its seq. */
static uint64_t req(uint32_t op, struct cv_rm_args a, const void *p, size_t n)
{
	struct cv_rm_hdr h = { op, (uint32_t)(sizeof(a) + n), ++seq };
	uint64_t dl = cv_now_ns() + 30000000000ull; /* a hang */

	if (cv_peer_write(fd, &h, sizeof(h), dl) ||
	    cv_peer_write(fd, &a, sizeof(a), dl) ||
	    (n && cv_peer_write(fd, p, n, dl)))
		return 0;
	return h.seq;
}

/* The next message that is not a PING: its header, payload in buf. */
static int next(struct cv_rm_hdr *h, void *buf, size_t size)
{
	uint64_t dl = cv_now_ns() + 30000000000ull; /* a hang */

	do {
		if (cv_peer_read(fd, h, sizeof(*h), dl) || h->len > size ||
		    cv_peer_read(fd, buf, h->len, dl))
			return -1;
	} while (h->op == CV_RM_PING);
	return 0;
}

/* A synchronising op's answer: its rc, or -1 when none came. */
static int answer(uint64_t s, struct cv_rm_rep *rep)
{
	static uint8_t buf[CV_RM_MAX_PAYLOAD];
	struct cv_rm_hdr h;

	if (next(&h, buf, sizeof(buf)) || h.op != CV_RM_REPLY || h.seq != s ||
	    h.len < sizeof(*rep))
		return -1;
	memcpy(rep, buf, sizeof(*rep));
	return rep->rc;
}

static int call(uint32_t op, struct cv_rm_args a, const void *p, size_t n)
{
	struct cv_rm_rep rep;

	return answer(req(op, a, p, n), &rep);
}

#define A(...) ((struct cv_rm_args){ { __VA_ARGS__ } })

static void server(void)
{
	static uint8_t buf[CV_RM_MAX_PAYLOAD], pat[1000];
	struct cv_backend_cfg cfg = { .gpu = 0, .quota = QUOTA };
	struct serve_arg sa = { .rc = -1 };
	struct cv_rm_ready rd;
	struct cv_rm_data dm;
	struct cv_rm_hdr h;
	pthread_t th;
	int sv[2], i, rc;
	const char *why;

	if (cv_backend_host.open(&cfg, &sa.dev, &sa.b)) {
		CHECK(0, "the host backend opens");
		return;
	}
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	fd = sv[0];
	sa.fd = sv[1];
	pthread_create(&th, NULL, serve_main, &sa);

	rc = next(&h, buf, sizeof(buf));
	CHECK(!rc && h.op == CV_RM_READY &&
	      !cv_rm_ready_check(buf, h.len, &rd, &why) && !rd.rc &&
	      !rd.nlanes && !rd.dev.attr[CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY],
	      "READY: the GPU is open, no lanes without a session key, no "
	      "mapped host memory");

	CHECK(call(CV_RM_VA_RESERVE, A(W + MIB, CV_WINDOW_SIZE), NULL, 0) ==
	      CUDA_ERROR_INVALID_VALUE, "a window elsewhere: refused");
	CHECK(call(CV_RM_VA_RESERVE, A(W, CV_WINDOW_SIZE), NULL, 0) == 0,
	      "the window is reserved");
	CHECK(call(CV_RM_VA_RESERVE, A(W, CV_WINDOW_SIZE), NULL, 0) ==
	      CUDA_ERROR_INVALID_VALUE, "reserved twice: refused");
	CHECK(call(CV_RM_MEM_CREATE, A(1, 2 * MIB), NULL, 0) == 0,
	      "2 MiB of memory, id 1");
	CHECK(call(CV_RM_MEM_CREATE, A(1, 2 * MIB), NULL, 0) ==
	      CUDA_ERROR_INVALID_HANDLE, "id 1 again: refused");
	CHECK(call(CV_RM_MEM_CREATE, A(0, 2 * MIB), NULL, 0) ==
	      CUDA_ERROR_INVALID_HANDLE &&
	      call(CV_RM_MEM_CREATE, A(CV_RM_MAX_OBJS, 2 * MIB), NULL, 0) ==
	      CUDA_ERROR_INVALID_HANDLE, "ids 0 and past the cap: refused");
	CHECK(call(CV_RM_MEM_CREATE, A(2, QUOTA), NULL, 0) ==
	      CUDA_ERROR_OUT_OF_MEMORY, "past the quota: out of memory");
	CHECK(call(CV_RM_MEM_CREATE, A(2, MIB + 1), NULL, 0) ==
	      CUDA_ERROR_INVALID_VALUE, "not whole granules: refused");
	CHECK(call(CV_RM_MEM_MAP, A(W - 2 * MIB, 2 * MIB, 1, 0), NULL, 0) ==
	      CUDA_ERROR_INVALID_VALUE, "mapped below the window: refused");
	CHECK(call(CV_RM_MEM_MAP, A(W, 4 * MIB, 1, 0), NULL, 0) ==
	      CUDA_ERROR_INVALID_VALUE, "more than the memory: refused");
	CHECK(call(CV_RM_MEM_MAP, A(W, 2 * MIB, 1, 0), NULL, 0) == 0,
	      "mapped at the window's start");
	CHECK(call(CV_RM_MEM_MAP, A(W, 2 * MIB, 1, 0), NULL, 0) ==
	      CUDA_ERROR_INVALID_VALUE, "mapped over itself: refused");

	for (i = 0; i < (int)sizeof(pat); i++)
		pat[i] = (uint8_t)(i * 7 + 3);
	req(CV_RM_HTOD, A(W + 100, 0), pat, sizeof(pat));
	req(CV_RM_DTOH, A(0, W + 100, sizeof(pat), 0), NULL, 0);
	rc = next(&h, buf, sizeof(buf));
	memcpy(&dm, buf, sizeof(dm));
	CHECK(!rc && h.op == CV_RM_DATA && h.seq == seq && !dm.rc && !dm.off &&
	      h.len == sizeof(dm) + sizeof(pat) &&
	      !memcmp(buf + sizeof(dm), pat, sizeof(pat)),
	      "HTOD then DTOH: the bytes come back");
	req(CV_RM_DTOH, A(0, W + 2 * MIB - 10, 20, 0), NULL, 0);
	rc = next(&h, buf, sizeof(buf));
	memcpy(&dm, buf, sizeof(dm));
	CHECK(!rc && h.op == CV_RM_DATA && dm.rc == CUDA_ERROR_INVALID_VALUE &&
	      h.len == sizeof(dm), "a DTOH past the mapping: DATA with an "
	      "error, no bytes");

	req(CV_RM_HTOD, A(W + 2 * MIB, 0), pat, sizeof(pat));
	CHECK(call(CV_RM_CTX_SYNC, A(0), NULL, 0) == CUDA_ERROR_INVALID_VALUE,
	      "an HTOD past the mapping: told at the next sync");
	CHECK(call(CV_RM_CTX_SYNC, A(0), NULL, 0) == 0, "told once");
	req(CV_RM_MEMSET, A(W, 0, 1, 3, 16, 1, 0), NULL, 0);
	CHECK(call(CV_RM_CTX_SYNC, A(0), NULL, 0) == CUDA_ERROR_INVALID_VALUE,
	      "a memset of 3-byte elements: refused");
	req(CV_RM_MEMSET, A(W, UINT64_MAX / 2, 1, 4, 16, 3, 0), NULL, 0);
	CHECK(call(CV_RM_CTX_SYNC, A(0), NULL, 0) == CUDA_ERROR_INVALID_VALUE,
	      "a memset whose pitch overflows: refused");
	req(CV_RM_LAUNCH, A(99, 1, 1, 1, 1, 1, 1, 0, 0, 0), NULL, 0);
	CHECK(call(CV_RM_CTX_SYNC, A(0), NULL, 0) == CUDA_ERROR_INVALID_HANDLE,
	      "a launch of no function: refused");
	req(CV_RM_DTOD, A(W, W + MIB, MIB, 77), NULL, 0);
	CHECK(call(CV_RM_CTX_SYNC, A(0), NULL, 0) == CUDA_ERROR_INVALID_HANDLE,
	      "a copy on no stream: refused");
	CHECK(call(CV_RM_STREAM_CREATE, A(1, 0, 0), NULL, 0) ==
	      CUDA_ERROR_INVALID_HANDLE, "a stream with memory's id: refused");
	CHECK(call(CV_RM_STREAM_CREATE, A(5, 0, 0), NULL, 0) == 0 &&
	      call(CV_RM_STREAM_SYNC, A(5), NULL, 0) == 0,
	      "a stream, synchronised");
	CHECK(call(CV_RM_MEM_UNMAP, A(W, MIB), NULL, 0) ==
	      CUDA_ERROR_INVALID_VALUE, "unmapping half a mapping: refused");
	CHECK(call(CV_RM_MEM_UNMAP, A(W, 2 * MIB), NULL, 0) == 0, "unmapped");
	req(CV_RM_DTOH, A(0, W + 100, 10, 0), NULL, 0);
	rc = next(&h, buf, sizeof(buf));
	memcpy(&dm, buf, sizeof(dm));
	CHECK(!rc && h.op == CV_RM_DATA && dm.rc, "no copy from unmapped memory");

	/* A peer that numbers a request as an old one is done with. */
	seq -= 2;
	req(CV_RM_CTX_SYNC, A(0), NULL, 0);
	pthread_join(th, NULL);
	CHECK(sa.rc == 0, "a reused seq ends the service (returned %d)", sa.rc);
	close(fd);
}

/* zlen bytes of z through a socketpair into dst (n bytes expected). */
static int unz(struct cv_lane_unz *u, const void *z, uint32_t zlen,
	       uint8_t *dst, size_t n)
{
	int sv[2], rc;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		return -errno;
	/* small frames only: they fit in the socket's buffer */
	rc = zlen && zlen <= (64u << 10) ?
		     cv_peer_write(sv[0], z, zlen, cv_now_ns() + 1000000000ull) : 0;
	if (!rc)
		rc = cv_lane_unzstd(u, sv[1], dst, n, zlen,
				    cv_now_ns() + 1000000000ull);
	close(sv[0]);
	close(sv[1]);
	return rc;
}

static void lane_zstd(void)
{
	const uint32_t n = CV_RM_CHUNK;
	uint8_t *p = malloc(n), *q = malloc(n + 64), frame[256];
	struct cv_lane_z z = { 0 };
	struct cv_lane_unz u = { 0 };
	uint32_t zl, i, x = 1;
	size_t fl;

	if (!p || !q)
		abort();
	for (i = 0; i < n; i++) /* words of a counter: compresses */
		p[i] = (uint8_t)(i % 4 ? 0 : i >> 12);
	zl = cv_lane_zstd(&z, p, n);
	CHECK(zl && zl < n / 10, "a piece that compresses: %u bytes", zl);
	memset(q, 0xee, n + 64);
	/* (checked with zstd itself: the frame need not fit a socket) */
	CHECK(ZSTD_decompress(q, n, z.buf, zl) == n && !memcmp(p, q, n) &&
	      q[n] == 0xee, "it decompresses to the piece");
	for (i = 0; i < n; i++) { /* xorshift: does not compress */
		x ^= x << 13; x ^= x >> 17; x ^= x << 5;
		q[i] = (uint8_t)x;
	}
	CHECK(cv_lane_zstd(&z, q, n) == 0, "a piece that does not: sent as it is");
	CHECK(cv_lane_zstd(&z, p, n) == 0, "the next piece is not tried");
	CHECK(cv_lane_zstd(&z, p, n) != 0, "the one after it is");
	CHECK(cv_lane_zstd(&z, q, n) == 0 && cv_lane_zstd(&z, p, n) == 0 &&
	      cv_lane_zstd(&z, q, n) == 0 && cv_lane_zstd(&z, p, n) == 0 &&
	      cv_lane_zstd(&z, p, n) == 0 && cv_lane_zstd(&z, p, n) == 0 &&
	      cv_lane_zstd(&z, p, n) != 0,
	      "a second miss in a row: three skipped, then tried again");

	/* Frames as a peer could send them. */
	memset(p, 0, 8192);
	fl = ZSTD_compress(frame, sizeof(frame), p, 8192, 1);
	CHECK(!ZSTD_isError(fl), "an 8 KiB frame");
	memset(q, 0xee, 8192);
	CHECK(unz(&u, frame, (uint32_t)fl, q, 8192) == 0 && q[0] == 0 &&
	      q[8191] == 0, "a frame of its size lands");
	memset(q, 0xee, 8192);
	CHECK(unz(&u, frame, (uint32_t)fl, q, 4096) == -EBADMSG &&
	      q[4096] == 0xee, "a frame larger than the piece: refused, "
	      "nothing written past it");
	CHECK(unz(&u, frame, (uint32_t)fl, q, 8192 + 1) == -EBADMSG,
	      "a frame smaller than the piece: refused");
	memset(frame, 0x5a, sizeof(frame));
	CHECK(unz(&u, frame, sizeof(frame), q, 8192) == -EBADMSG,
	      "bytes that are no frame: refused");
	CHECK(unz(&u, frame, 0, q, 8192) == -EBADMSG &&
	      unz(&u, frame, (uint32_t)ZSTD_compressBound(CV_RM_CHUNK) + 1, q,
		  8192) == -EBADMSG &&
	      unz(&u, frame, 16, q, CV_RM_CHUNK + 1) == -EBADMSG,
	      "a zlen of 0 or past the bound, a piece past the chunk: refused");
	cv_lane_z_exit(&z);
	cv_lane_unz_exit(&u);
	free(p);
	free(q);
}

int main(void)
{
	decoders();
	lane_zstd();
	server();
	return unit_done();
}

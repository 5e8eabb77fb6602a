/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness of the remote vGPU protocol's decoders (core/remote.h)
 * and the VGPU request (core/peer.h): the first byte picks one, the rest
 * is what a peer sent. A stream is cut into messages as the two ends'
 * readers do (header, check, payload); anything a check passes must hold
 * what the readers then rely on. A copy lane's compressed piece
 * (worker/lane_zstd.c) is read from a socket and decompressed into a piece
 * of the size the fuzzer asks, with a guard after it: it must land whole
 * or be refused, and never write past the piece.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/peer.h"
#include "../core/remote.h"
#include "../core/util.h"
#include "../worker/remote.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Messages of a stream until one is refused or the bytes end. */
static void stream(const uint8_t *p, size_t n, uint32_t to)
{
	struct cv_rm_hdr h;
	const char *why;

	while (n >= sizeof(h)) {
		memcpy(&h, p, sizeof(h));
		p += sizeof(h);
		n -= sizeof(h);
		why = NULL;
		if (cv_rm_hdr_check(&h, to, &why)) {
			if (!why)
				abort();
			return;
		}
		if (!(cv_rm_op_class(h.op) & to) || h.len > CV_RM_MAX_PAYLOAD ||
		    h.len < cv_rm_fixed_len(h.op))
			abort();
		if (h.op == CV_RM_LAUNCH && h.len <= n) {
			struct cv_rm_args a;

			memcpy(&a, p, sizeof(a));
			if (!cv_rm_launch_split(h.len - sizeof(a), a.a[9], a.a[8]) &&
			    (a.a[9] > CV_RM_MAX_ATTRS ||
			     h.len - sizeof(a) != a.a[9] * sizeof(struct cv_launch_attr) +
						  a.a[8]))
				abort();
		}
		if (h.len > n)
			return;
		p += h.len;
		n -= h.len;
	}
}

/* p's n bytes: the piece's size (2 bytes, up to 64 KiB), then a frame. */
static void lane_piece(const uint8_t *p, size_t n)
{
	static struct cv_lane_unz u;
	static uint8_t dst[(64u << 10) + 64];
	uint32_t want;
	int fd[2], rc;
	size_t i;

	if (n < 2 || n - 2 > (60u << 10) ||
	    socketpair(AF_UNIX, SOCK_STREAM, 0, fd))
		return;
	want = ((uint32_t)p[0] | (uint32_t)p[1] << 8) + 1;
	memset(dst, 0xa5, sizeof(dst));
	/* the frame fits the socket's buffer: written before it is read */
	if (n > 2 && write(fd[1], p + 2, n - 2) != (ssize_t)(n - 2))
		abort();
	close(fd[1]);
	rc = cv_lane_unzstd(&u, fd[0], dst, want, (uint32_t)(n - 2),
			    cv_now_ns() + 1000000000ull);
	close(fd[0]);
	if (rc && rc != -EBADMSG && rc != -ECONNRESET)
		abort();
	for (i = want; i < sizeof(dst); i++)
		if (dst[i] != 0xa5)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cv_rm_ready rd;
	struct cv_peer_vgpu vg;
	const char *why = NULL;
	size_t i;

	if (!size)
		return 0;
	switch (data[0] % 5) {
	case 0:
		stream(data + 1, size - 1, CV_RM_TO_SERVER);
		break;
	case 1:
		stream(data + 1, size - 1, CV_RM_TO_CLIENT);
		break;
	case 2:
		if (!cv_rm_ready_check(data + 1, size - 1, &rd, &why)) {
			if (rd.version != CV_RM_VERSION ||
			    !memchr(rd.host, 0, sizeof(rd.host)) ||
			    !memchr(rd.dev.name, 0, sizeof(rd.dev.name)))
				abort();
			for (i = 0; rd.host[i]; i++)
				if (rd.host[i] < 0x20 || rd.host[i] > 0x7e)
					abort();
		} else if (!why) {
			abort();
		}
		break;
	case 4:
		lane_piece(data + 1, size - 1);
		break;
	default:
		if (!cv_peer_vgpu_check(data + 1, size - 1, &vg, &why)) {
			if (vg.version != CV_RM_VERSION || !vg.quota ||
			    vg.timeout_ms < 1000 || vg.timeout_ms > 3600000)
				abort();
		} else if (!why) {
			abort();
		}
	}
	return 0;
}

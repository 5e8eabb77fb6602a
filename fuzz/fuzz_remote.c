/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness of the remote vGPU protocol's decoders (core/remote.h)
 * and the VGPU request (core/peer.h): the first byte picks one, the rest
 * is what a peer sent. A stream is cut into messages as the two ends'
 * readers do (header, check, payload); anything a check passes must hold
 * what the readers then rely on.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../core/peer.h"
#include "../core/remote.h"

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cv_rm_ready rd;
	struct cv_peer_vgpu vg;
	const char *why = NULL;
	size_t i;

	if (!size)
		return 0;
	switch (data[0] % 4) {
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

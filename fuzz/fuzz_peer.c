/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness of the peer link's decoders (core/peer.h): the first
 * byte picks one, the rest is what a peer sent. HELLO is checked for both
 * roles; a HELLO that passes is used for an AUTH check against the rest
 * (which must fail: the harness holds a key the input cannot know), and
 * an INFO that passes must hold terminated names and at most
 * CV_PEER_MAX_GPUS GPUs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../core/peer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t key[CV_PEER_KEY_LEN] = { 1, 2, 3, 4, 5, 6, 7 };
	struct cv_peer_hello them, me;
	struct cv_peer_auth auth;
	struct cv_peer_info in;
	const char *why = NULL;
	uint32_t i;

	if (!size)
		return 0;
	switch (data[0] % 3) {
	case 0:
	case 1:
		if (cv_peer_hello_check(data + 1, size - 1,
					data[0] % 3 ? CV_PEER_SERVER :
						      CV_PEER_CLIENT,
					&them, &why) == 0) {
			if (!memchr(them.host, 0, sizeof(them.host)))
				abort();
			if (cv_peer_hello_make(&me, data[0] % 3 ?
					       CV_PEER_SERVER : CV_PEER_CLIENT,
					       "fuzz"))
				return 0;
			memset(&auth, 0, sizeof(auth));
			memcpy(&auth, data + 1,
			       size - 1 < sizeof(auth) ? size - 1 :
							  sizeof(auth));
			/* a fresh nonce of ours: no input can carry its MAC */
			if (cv_peer_auth_ok(key, &me, &them, &auth))
				abort();
		} else if (!why) {
			abort();
		}
		break;
	default:
		if (cv_peer_info_check(data + 1, size - 1, &in, &why) == 0) {
			if (in.ngpus > CV_PEER_MAX_GPUS ||
			    !memchr(in.host, 0, sizeof(in.host)))
				abort();
			for (i = 0; i < in.ngpus; i++)
				if (!memchr(in.gpu[i].name, 0,
					    sizeof(in.gpu[i].name)))
					abort();
		} else if (!why) {
			abort();
		}
		break;
	}
	return 0;
}

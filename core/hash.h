/* SPDX-License-Identifier: MIT */
/*
 * Content hashes of module images (XXH3-128, from Debian's libxxhash,
 * inlined: no run-time dependency). Not cryptographic: a hash names
 * content within one tenant, whose worker computes it itself.
 */
#ifndef CV_HASH_H
#define CV_HASH_H

#include <stddef.h>
#include <stdint.h>

#define CV_HASH_LEN 16

void cv_hash128(const void *p, size_t n, uint8_t out[CV_HASH_LEN]);

/*
 * The same hash over bytes that come in pieces: init, update with each
 * piece in order, final. Hashing a piece just read or about to be
 * copied, while it is in the cache, saves a pass over memory.
 */
struct cv_hash_st {
	_Alignas(64) unsigned char opaque[1024];
};
void cv_hash_init(struct cv_hash_st *s);
void cv_hash_update(struct cv_hash_st *s, const void *p, size_t n);
void cv_hash_final(struct cv_hash_st *s, uint8_t out[CV_HASH_LEN]);

#endif

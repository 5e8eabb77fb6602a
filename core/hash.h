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

#endif

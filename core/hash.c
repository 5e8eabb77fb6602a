/* SPDX-License-Identifier: MIT */
#include "hash.h"

#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

void cv_hash128(const void *p, size_t n, uint8_t out[CV_HASH_LEN])
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, XXH3_128bits(p, n));
	memcpy(out, c.digest, CV_HASH_LEN);
}

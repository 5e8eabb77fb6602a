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

_Static_assert(sizeof(XXH3_state_t) <= sizeof(struct cv_hash_st), "state");
_Static_assert(_Alignof(XXH3_state_t) <= 64, "state alignment");

void cv_hash_init(struct cv_hash_st *s)
{
	XXH3_INITSTATE((XXH3_state_t *)s->opaque);
	XXH3_128bits_reset((XXH3_state_t *)s->opaque);
}

void cv_hash_update(struct cv_hash_st *s, const void *p, size_t n)
{
	XXH3_128bits_update((XXH3_state_t *)s->opaque, p, n);
}

void cv_hash_final(struct cv_hash_st *s, uint8_t out[CV_HASH_LEN])
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c,
		XXH3_128bits_digest((XXH3_state_t *)s->opaque));
	memcpy(out, c.digest, CV_HASH_LEN);
}

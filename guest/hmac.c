/* SPDX-License-Identifier: MIT */
/*
 * HMAC as RFC 2104 section 2 defines it:
 *	H(K ^ opad, H(K ^ ipad, text))
 * with K zero-padded to B bytes (or replaced by H(K) first when longer
 * than B), ipad = 0x36 and opad = 0x5c repeated B times.
 */
#include "hmac.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define IPAD 0x36
#define OPAD 0x5c

static bool hash_fits(const struct cv_hash *hash)
{
	return hash && hash->init && hash->update && hash->final &&
	       hash->block_size && hash->block_size <= CV_HMAC_MAX_BLOCK &&
	       hash->digest_size && hash->digest_size <= CV_HMAC_MAX_DIGEST &&
	       hash->digest_size <= hash->block_size &&
	       hash->ctx_size <= CV_HMAC_MAX_CTX;
}

int cv_hmac_init(struct cv_hmac *h, const struct cv_hash *hash,
		 const void *key, size_t klen)
{
	uint8_t k0[CV_HMAC_MAX_BLOCK] = { 0 }, ikey[CV_HMAC_MAX_BLOCK];
	size_t i, b;

	if (!hash_fits(hash) || (!key && klen))
		return -EINVAL;
	b = hash->block_size;
	h->hash = hash;
	/* Step 1: K0 is K, or H(K) when K is longer than a block. */
	if (klen > b) {
		hash->init(h->ctx.b);
		hash->update(h->ctx.b, key, klen);
		hash->final(h->ctx.b, k0);
	} else if (klen) {
		memcpy(k0, key, klen);
	}
	for (i = 0; i < b; i++) {
		ikey[i] = k0[i] ^ IPAD;
		h->okey[i] = k0[i] ^ OPAD;
	}
	/* Steps 2-4: the inner hash starts with K0 ^ ipad. */
	hash->init(h->ctx.b);
	hash->update(h->ctx.b, ikey, b);
	memset(k0, 0, sizeof(k0));
	memset(ikey, 0, sizeof(ikey));
	return 0;
}

void cv_hmac_update(struct cv_hmac *h, const void *p, size_t n)
{
	h->hash->update(h->ctx.b, p, n);
}

void cv_hmac_final(struct cv_hmac *h, uint8_t *mac)
{
	const struct cv_hash *hash = h->hash;
	uint8_t inner[CV_HMAC_MAX_DIGEST];

	/* Steps 5-7: H(K0 ^ opad || H(K0 ^ ipad || text)). */
	hash->final(h->ctx.b, inner);
	hash->init(h->ctx.b);
	hash->update(h->ctx.b, h->okey, hash->block_size);
	hash->update(h->ctx.b, inner, hash->digest_size);
	hash->final(h->ctx.b, mac);
	memset(inner, 0, sizeof(inner));
	memset(h, 0, sizeof(*h));
}

int cv_hmac(const struct cv_hash *hash, const void *key, size_t klen,
	    const void *msg, size_t n, uint8_t *mac)
{
	struct cv_hmac h;
	int rc = cv_hmac_init(&h, hash, key, klen);

	if (rc)
		return rc;
	cv_hmac_update(&h, msg, n);
	cv_hmac_final(&h, mac);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * HMAC (RFC 2104) over any iterated hash described by a struct cv_hash.
 * No allocation: the hash's context lives inside struct cv_hmac, so a
 * hash qualifies when its sizes fit the CV_HMAC_MAX_* bounds.
 */
#ifndef CV_HMAC_H
#define CV_HMAC_H

#include <stddef.h>
#include <stdint.h>

#define CV_HMAC_MAX_BLOCK 128  /* B: SHA-512's is the largest in use */
#define CV_HMAC_MAX_DIGEST 64  /* L */
#define CV_HMAC_MAX_CTX 256    /* bytes of the hash's own context */

/* A hash function, as HMAC needs it. */
struct cv_hash {
	const char *name;
	size_t block_size;  /* B: bytes the compression function eats */
	size_t digest_size; /* L: bytes of output, at most B */
	size_t ctx_size;    /* bytes of the context init/update/final use */
	void (*init)(void *ctx);
	void (*update)(void *ctx, const void *p, size_t n);
	/* Writes digest_size bytes; the context is spent after. */
	void (*final)(void *ctx, uint8_t *digest);
};

struct cv_hmac {
	const struct cv_hash *hash;
	union {
		uint8_t b[CV_HMAC_MAX_CTX];
		max_align_t align;
	} ctx;                          /* the inner hash, then the outer */
	uint8_t okey[CV_HMAC_MAX_BLOCK]; /* K ^ opad, for cv_hmac_final */
};

/*
 * Starts HMAC with key[0..klen) (hashed first when longer than B, as the
 * RFC says). Returns 0, or -EINVAL when hash is NULL, its sizes exceed
 * the bounds above or L > B, or key is NULL with klen > 0.
 */
int cv_hmac_init(struct cv_hmac *h, const struct cv_hash *hash,
		 const void *key, size_t klen);
void cv_hmac_update(struct cv_hmac *h, const void *p, size_t n);
/* Writes the hash's digest_size bytes of MAC and wipes h. */
void cv_hmac_final(struct cv_hmac *h, uint8_t *mac);
/* One shot; 0 or -EINVAL as cv_hmac_init. */
int cv_hmac(const struct cv_hash *hash, const void *key, size_t klen,
	    const void *msg, size_t n, uint8_t *mac);

#endif

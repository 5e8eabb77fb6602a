/* SPDX-License-Identifier: MIT */
/*
 * MD2 (RFC 1319). Only for the runtime's integrity check (guest/exports.c),
 * which is HMAC-MD2: MD2 is broken as a cryptographic hash and must not be
 * used for anything else.
 */
#ifndef CV_MD2_H
#define CV_MD2_H

#include <stddef.h>
#include <stdint.h>

#define CV_MD2_BLOCK 16
#define CV_MD2_DIGEST 16

struct cv_md2 {
	uint8_t state[16];    /* X[0..15] of the RFC */
	uint8_t checksum[16]; /* C */
	uint8_t buf[16];      /* a partial block */
	unsigned int count;   /* bytes in buf, 0..15 */
};

void cv_md2_init(struct cv_md2 *c);
void cv_md2_update(struct cv_md2 *c, const void *p, size_t n);
/* Pads, appends the checksum and writes the digest; c is spent after. */
void cv_md2_final(struct cv_md2 *c, uint8_t digest[CV_MD2_DIGEST]);
/* One-shot digest of n bytes at p. */
void cv_md2(const void *p, size_t n, uint8_t digest[CV_MD2_DIGEST]);

/* MD2 as a hash for cv_hmac (guest/hmac.h): block and digest 16 bytes. */
struct cv_hash;
extern const struct cv_hash cv_md2_hash;

#endif

/* SPDX-License-Identifier: MIT */
/*
 * MD2 as RFC 1319 specifies it. Step 2 follows the RFC's reference code
 * (appendix A.3): each checksum byte is XORed with S[M ^ L]; the prose of
 * section 3.2 says "set", a reported erratum. The tests run the RFC's
 * suite (appendix A.5).
 */
#include "md2.h"

#include <string.h>

#include "hmac.h"

/* The RFC's permutation S of 0..255, built from the digits of pi. */
static const uint8_t S[256] = {
	 41,  46,  67, 201, 162, 216, 124,   1,  61,  54,  84, 161,
	236, 240,   6,  19,  98, 167,   5, 243, 192, 199, 115, 140,
	152, 147,  43, 217, 188,  76, 130, 202,  30, 155,  87,  60,
	253, 212, 224,  22, 103,  66, 111,  24, 138,  23, 229,  18,
	190,  78, 196, 214, 218, 158, 222,  73, 160, 251, 245, 142,
	187,  47, 238, 122, 169, 104, 121, 145,  21, 178,   7,  63,
	148, 194,  16, 137,  11,  34,  95,  33, 128, 127,  93, 154,
	 90, 144,  50,  39,  53,  62, 204, 231, 191, 247, 151,   3,
	255,  25,  48, 179,  72, 165, 181, 209, 215,  94, 146,  42,
	172,  86, 170, 198,  79, 184,  56, 210, 150, 164, 125, 182,
	118, 252, 107, 226, 156, 116,   4, 241,  69, 157, 112,  89,
	100, 113, 135,  32, 134,  91, 207, 101, 230,  45, 168,   2,
	 27,  96,  37, 173, 174, 176, 185, 246,  28,  70,  97, 105,
	 52,  64, 126,  15,  85,  71, 163,  35, 221,  81, 175,  58,
	195,  92, 249, 206, 186, 197, 234,  38,  44,  83,  13, 110,
	133,  40, 132,   9, 211, 223, 205, 244,  65, 129,  77,  82,
	106, 220,  55, 200, 108, 193, 171, 250,  36, 225, 123,   8,
	 12, 189, 177,  74, 120, 136, 149, 139, 227,  99, 232, 109,
	233, 203, 213, 254,  59,   0,  29,  57, 242, 239, 183,  14,
	102,  88, 208, 228, 166, 119, 114, 248, 235, 117,  75,  10,
	 49,  68,  80, 180, 143, 237,  31,  26, 219, 153, 141,  51,
	159,  17, 131,  20,
};

/* Steps 2 and 4 of the RFC for one 16-byte block m. */
static void md2_block(struct cv_md2 *c, const uint8_t *m)
{
	uint8_t x[48], t = 0, l;
	unsigned int j, k;

	for (j = 0; j < 16; j++) {
		x[j] = c->state[j];
		x[16 + j] = m[j];
		x[32 + j] = c->state[j] ^ m[j];
	}
	for (j = 0; j < 18; j++) {
		for (k = 0; k < 48; k++)
			t = x[k] ^= S[t];
		t = (uint8_t)(t + j);
	}
	memcpy(c->state, x, 16);

	l = c->checksum[15];
	for (j = 0; j < 16; j++)
		l = c->checksum[j] ^= S[m[j] ^ l];
}

void cv_md2_init(struct cv_md2 *c)
{
	memset(c, 0, sizeof(*c));
}

void cv_md2_update(struct cv_md2 *c, const void *p, size_t n)
{
	const uint8_t *b = p;
	size_t take;

	if (c->count) {
		take = 16 - (size_t)c->count;
		if (take > n)
			take = n;
		memcpy(c->buf + c->count, b, take);
		c->count += (unsigned int)take;
		b += take;
		n -= take;
		if (c->count < 16)
			return;
		md2_block(c, c->buf);
		c->count = 0;
	}
	for (; n >= 16; b += 16, n -= 16)
		md2_block(c, b);
	memcpy(c->buf, b, n);
	c->count = (unsigned int)n;
}

void cv_md2_final(struct cv_md2 *c, uint8_t digest[CV_MD2_DIGEST])
{
	uint8_t pad[16], sum[16];
	unsigned int i = 16 - c->count; /* 1..16 bytes, each of value i */

	memset(pad, (int)i, i);
	cv_md2_update(c, pad, i);
	/* The checksum changes while it is being hashed: hash a copy. */
	memcpy(sum, c->checksum, 16);
	cv_md2_update(c, sum, 16);
	memcpy(digest, c->state, CV_MD2_DIGEST);
	memset(c, 0, sizeof(*c));
}

void cv_md2(const void *p, size_t n, uint8_t digest[CV_MD2_DIGEST])
{
	struct cv_md2 c;

	cv_md2_init(&c);
	cv_md2_update(&c, p, n);
	cv_md2_final(&c, digest);
}

/* ---- as a cv_hash --------------------------------------------------- */

static void md2_h_init(void *ctx)
{
	cv_md2_init(ctx);
}

static void md2_h_update(void *ctx, const void *p, size_t n)
{
	cv_md2_update(ctx, p, n);
}

static void md2_h_final(void *ctx, uint8_t *digest)
{
	cv_md2_final(ctx, digest);
}

const struct cv_hash cv_md2_hash = {
	.name = "MD2",
	.block_size = CV_MD2_BLOCK,
	.digest_size = CV_MD2_DIGEST,
	.ctx_size = sizeof(struct cv_md2),
	.init = md2_h_init,
	.update = md2_h_update,
	.final = md2_h_final,
};

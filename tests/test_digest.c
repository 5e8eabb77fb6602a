/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the granule digest (core/digest.c, docs/digest.md): the
 * fixed test vectors of tests/digest_vectors.h (also checked on the GPU
 * by bench/digest_gpu), cv_digest_many against cv_digest granule by
 * granule, one-bit flips at the first and last word and in every lane
 * (always detected: see docs/digest.md), swapped words, other seeds and
 * lengths, the spread of one flip over the 128 output bits, and the host
 * backend's digest op (worker/backend_host.c) against cv_digest_many, from
 * the calling thread and another one.
 *
 * Runs in CI as is and under ASan+UBSan (build-asan/).
 */
#include <cuda.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/digest.h"
#include "../core/log.h"
#include "../core/proto.h"
#include "../core/util.h"
#include "../worker/backend.h"
#include "digest_vectors.h"
#include "unit.h"

#define KB 1024u
#define MB (1024u * 1024u)
#define DL CV_DIGEST_LEN

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p) {
		printf("Bail out! malloc %zu\n", n);
		exit(1);
	}
	return p;
}

static void hex(char *s, const uint8_t *d)
{
	int i;

	for (i = 0; i < DL; i++)
		sprintf(s + 2 * i, "%02x", d[i]);
}

/* A cheap generator for positions and bits (not the vectors' one). */
static uint64_t rnd_state = 0x2545F4914F6CDD1Dull;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

/* ---- test vectors ---------------------------------------------------- */

static void test_vectors(void)
{
	uint8_t *buf = xmalloc(CV_TV_MAX_LEN), d[DL];
	char got[2 * DL + 1], want[2 * DL + 1];
	size_t i;

	for (i = 0; i < CV_ARRAY_SIZE(cv_tvs); i++) {
		const struct cv_tv *v = &cv_tvs[i];

		cv_tv_fill(buf, v->len, v->data_seed);
		cv_digest(buf, v->len, v->seed, d);
		hex(got, d);
		hex(want, v->digest);
		CHECK(!memcmp(d, v->digest, DL),
		      "vector %zu (data %#llx, %llu bytes, seed %#llx): %s%s%s",
		      i, (unsigned long long)v->data_seed,
		      (unsigned long long)v->len, (unsigned long long)v->seed,
		      got, memcmp(d, v->digest, DL) ? ", want " : "",
		      memcmp(d, v->digest, DL) ? want : "");
	}
	/* p needs no alignment */
	cv_tv_fill(buf + 3, cv_tvs[8].len, cv_tvs[8].data_seed);
	cv_digest(buf + 3, cv_tvs[8].len, cv_tvs[8].seed, d);
	CHECK(!memcmp(d, cv_tvs[8].digest, DL), "vector 8 at an odd address");
	free(buf);
}

/* ---- cv_digest_many ------------------------------------------------- */

static void test_many(void)
{
	static const uint32_t granules[] = { 4 * KB, 8 * KB, 12 * KB,
					     64 * KB, 1 * MB, 16 * MB };
	uint64_t len = 48 * MB; /* a multiple of every granule above */
	uint8_t *buf = xmalloc(len), *out = xmalloc(len / 4096 * DL + 1);
	uint8_t d[DL];
	uint64_t n, g, bad;
	size_t i;

	cv_tv_fill(buf, len, 0x3a3a);
	for (i = 0; i < CV_ARRAY_SIZE(granules); i++) {
		n = len / granules[i];
		out[n * DL] = 0xa5;
		cv_digest_many(buf, len, granules[i], 77, out);
		for (g = 0, bad = 0; g < n; g++) {
			cv_digest(buf + g * granules[i], granules[i], 77, d);
			bad += memcmp(d, out + g * DL, DL) != 0;
		}
		CHECK(!bad && out[n * DL] == 0xa5,
		      "cv_digest_many, granule %u: %llu digests as cv_digest "
		      "gives them (%llu differ), nothing written past them",
		      granules[i], (unsigned long long)n,
		      (unsigned long long)bad);
	}
	out[0] = 0x5a;
	cv_digest_many(buf, 0, 4096, 77, out);
	CHECK(out[0] == 0x5a, "cv_digest_many of 0 bytes writes nothing");
	/* the same content in two granules: the same digest */
	memcpy(buf + 64 * KB, buf, 64 * KB);
	cv_digest_many(buf, 128 * KB, 64 * KB, 5, out);
	CHECK(!memcmp(out, out + DL, DL), "equal granules, equal digests");
	free(buf);
	free(out);
}

/* ---- sensitivity ----------------------------------------------------- */

/* Flips bit `bit` of word `word` of the granule g (len bytes), digests
 * it, flips it back; true when the digest changed. */
static bool flip_changes(uint8_t *g, uint64_t len, uint64_t seed,
			 uint64_t word, unsigned int bit, const uint8_t *ref)
{
	uint8_t d[DL];

	g[8 * word + bit / 8] ^= (uint8_t)(1u << (bit % 8));
	cv_digest(g, len, seed, d);
	g[8 * word + bit / 8] ^= (uint8_t)(1u << (bit % 8));
	return memcmp(d, ref, DL) != 0;
}

/* Single-bit flips of a len-byte granule (data_seed 0: all zero): the
 * first and last bit of the first and last word, one random bit of a
 * random word of every lane, and nrand random bits anywhere. */
static void test_flips(uint64_t len, uint64_t data_seed, int nrand)
{
	uint64_t words = len / 8, rows = len / CV_DIGEST_ROW, seed = rnd();
	uint8_t *g = xmalloc(len), ref[DL];
	static const unsigned int ends[] = { 0, 63 };
	int same = 0, tried = 0, i, t;
	uint64_t w;

	cv_tv_fill(g, len, data_seed);
	cv_digest(g, len, seed, ref);
	for (i = 0; i < 4; i++, tried++) {
		w = i < 2 ? 0 : words - 1;
		same += !flip_changes(g, len, seed, w, ends[i % 2], ref);
	}
	for (t = 0; t < CV_DIGEST_LANES; t++, tried++) {
		w = t + CV_DIGEST_LANES * (rnd() % rows);
		same += !flip_changes(g, len, seed, w, rnd() % 64, ref);
	}
	for (i = 0; i < nrand; i++, tried++)
		same += !flip_changes(g, len, seed, rnd() % words, rnd() % 64,
				      ref);
	CHECK(!same, "%llu bytes (%s): %d of %d one-bit flips change the "
	      "digest", (unsigned long long)len, data_seed ? "random" : "zero",
	      tried - same, tried);
	free(g);
}

/*
 * Over 2000 one-bit flips, each output bit changes about half the time,
 * 64 of 128 on average. The bounds are about 4 (mean) and 9 (each bit)
 * standard deviations wide: the point is to catch a digest that mixes
 * badly, not to measure it (and the flips are the same every run).
 */
static void test_spread(void)
{
	uint64_t len = 16 * KB, words = len / 8, total = 0, seed = 99;
	uint8_t *g = xmalloc(len), ref[DL], d[DL];
	unsigned int bitmin = 128, bitmax = 0, nb, b, byte;
	unsigned int perbit[128] = { 0 };
	unsigned int i, n = 2000;
	uint64_t w;

	cv_tv_fill(g, len, 0x5b5b);
	cv_digest(g, len, seed, ref);
	for (i = 0; i < n; i++) {
		w = rnd() % words;
		b = rnd() % 64;
		g[8 * w + b / 8] ^= (uint8_t)(1u << (b % 8));
		cv_digest(g, len, seed, d);
		g[8 * w + b / 8] ^= (uint8_t)(1u << (b % 8));
		for (nb = 0, byte = 0; byte < DL; byte++)
			for (b = 0; b < 8; b++)
				if ((d[byte] ^ ref[byte]) >> b & 1) {
					nb++;
					perbit[byte * 8 + b]++;
				}
		total += nb;
		bitmin = CV_MIN(bitmin, nb);
		bitmax = CV_MAX(bitmax, nb);
	}
	CHECK(total > 64ull * n - 1000 && total < 64ull * n + 1000,
	      "one-bit flips change %.2f of 128 digest bits on average "
	      "(%u to %u)", (double)total / n, bitmin, bitmax);
	for (b = 0, nb = 0; b < 128; b++)
		nb += perbit[b] < n / 2 - 200 || perbit[b] > n / 2 + 200;
	CHECK(!nb, "every digest bit changes with 40%%-60%% of the flips "
	      "(%u bits outside)", nb);
	free(g);
}

/* Swaps words a and b of g (len bytes); true when the digest changed. */
static bool swap_changes(uint8_t *g, uint64_t len, uint64_t a, uint64_t b)
{
	uint8_t d0[DL], d1[DL], tmp[8];

	cv_digest(g, len, 1234, d0);
	memcpy(tmp, g + 8 * a, 8);
	memcpy(g + 8 * a, g + 8 * b, 8);
	memcpy(g + 8 * b, tmp, 8);
	cv_digest(g, len, 1234, d1);
	return memcmp(d0, d1, DL) != 0;
}

static void test_swaps(void)
{
	uint64_t len = 64 * KB, words = len / 8, rows = len / CV_DIGEST_ROW;
	uint8_t *g = xmalloc(len);
	uint8_t d0[DL], d1[DL], tmp[8];
	int i, ok = 0, n = 3;
	uint64_t a, b, t, k;

	cv_tv_fill(g, len, 0x5a5a);
	/* two lanes of one row; the last lane and the next row's first;
	 * the first word and the last */
	ok += swap_changes(g, len, 0, 1);
	ok += swap_changes(g, len, 255, 256);
	ok += swap_changes(g, len, 0, words - 1);
	for (i = 0; i < 200; i++, n++) {
		t = rnd() % CV_DIGEST_LANES;
		a = t + CV_DIGEST_LANES * (rnd() % rows);
		switch (i % 3) {
		case 0: /* within one lane */
			b = t + CV_DIGEST_LANES * ((a / CV_DIGEST_LANES + 1 +
						    rnd() % (rows - 1)) % rows);
			break;
		case 1: /* within one row */
			b = a - t + (t + 1 + rnd() % 255) % CV_DIGEST_LANES;
			break;
		default:
			b = (a + 1 + rnd() % (words - 1)) % words;
			break;
		}
		ok += swap_changes(g, len, a, b);
	}
	CHECK(ok == n, "%d of %d swaps of two words change the digest", ok, n);
	/* whole lanes 6 and 7 (the merge is not commutative), rows 3, 4 */
	cv_digest(g, len, 1234, d0);
	for (k = 0; k < rows; k++) {
		memcpy(tmp, g + 8 * (k * CV_DIGEST_LANES + 6), 8);
		memmove(g + 8 * (k * CV_DIGEST_LANES + 6),
			g + 8 * (k * CV_DIGEST_LANES + 7), 8);
		memcpy(g + 8 * (k * CV_DIGEST_LANES + 7), tmp, 8);
	}
	cv_digest(g, len, 1234, d1);
	CHECK(memcmp(d0, d1, DL) != 0, "swapping two whole lanes changes it");
	memcpy(d0, d1, DL);
	for (k = 0; k < CV_DIGEST_ROW; k += 8) {
		memcpy(tmp, g + 3 * CV_DIGEST_ROW + k, 8);
		memmove(g + 3 * CV_DIGEST_ROW + k, g + 4 * CV_DIGEST_ROW + k, 8);
		memcpy(g + 4 * CV_DIGEST_ROW + k, tmp, 8);
	}
	cv_digest(g, len, 1234, d1);
	CHECK(memcmp(d0, d1, DL) != 0, "swapping two whole rows changes it");
	free(g);
}

static void test_seeds_and_lengths(void)
{
	static const uint64_t seeds[] = { 0, 1, 2, 1ull << 63,
					  0x9E3779B185EBCA87ull,
					  0x9E3779B185EBCA87ull * 2,
					  ~0ull };
	uint8_t *g = xmalloc(64 * KB), d[CV_ARRAY_SIZE(seeds)][DL];
	uint8_t z4[DL], z8[DL], z64[DL];
	size_t i, j, same;
	int k;

	for (k = 0; k < 2; k++) {
		cv_tv_fill(g, 64 * KB, k ? 0x77 : 0);
		same = 0;
		for (i = 0; i < CV_ARRAY_SIZE(seeds); i++)
			cv_digest(g, 64 * KB, seeds[i], d[i]);
		for (i = 0; i < CV_ARRAY_SIZE(seeds); i++)
			for (j = i + 1; j < CV_ARRAY_SIZE(seeds); j++)
				same += !memcmp(d[i], d[j], DL);
		CHECK(!same, "%s granule: no two of %zu seeds give one "
		      "digest (%zu equal pairs)",
		      k ? "a random" : "an all-zero", CV_ARRAY_SIZE(seeds),
		      same);
	}
	/* zeros of different lengths (the final mixes len in) */
	memset(g, 0, 64 * KB);
	cv_digest(g, 4 * KB, 3, z4);
	cv_digest(g, 8 * KB, 3, z8);
	cv_digest(g, 64 * KB, 3, z64);
	CHECK(memcmp(z4, z8, DL) && memcmp(z8, z64, DL) &&
	      memcmp(z4, z64, DL), "zeros of 4, 8 and 64 KiB differ");
	CHECK(cv_digest_size_ok(4096) && cv_digest_size_ok(16u << 20) &&
	      cv_digest_size_ok(12288) && !cv_digest_size_ok(0) &&
	      !cv_digest_size_ok(2048) && !cv_digest_size_ok(6144) &&
	      !cv_digest_size_ok((16u << 20) + 4096),
	      "cv_digest_size_ok: 4 KiB multiples from 4 KiB to 16 MiB");
	free(g);
}

/* ---- the host backend's op ------------------------------------------ */

#define WIN CV_WINDOW_ADDR
#define HB_LEN (2 * CV_GRANULE)

static const struct cv_backend_ops *ops = &cv_backend_host;

struct hb_call {
	struct cv_backend *be;
	uint64_t dev, len;
	uint32_t granule;
	uint8_t *out;
	int r;
	uint32_t flags;
};

static void *hb_thread(void *arg)
{
	struct hb_call *c = arg;

	c->r = ops->digest(c->be, c->dev, c->len, c->granule, 42, c->out,
			   NULL, c->flags);
	return NULL;
}

/* ops->digest of [dev, dev + len) equals cv_digest_many of the bytes. */
static bool hb_same(struct cv_backend *be, uint64_t dev, uint64_t len,
		    uint32_t granule, bool other_thread)
{
	uint64_t n = len / granule;
	uint8_t *a = xmalloc(n * DL), *b = xmalloc(n * DL);
	/* gentle from the other thread: the flag changes no result */
	struct hb_call c = { be, dev, len, granule, a, -1,
			     other_thread ? CV_DIGEST_GENTLE : 0 };
	pthread_t th;
	bool ok;

	if (other_thread) {
		if (pthread_create(&th, NULL, hb_thread, &c))
			c.r = -2;
		else
			pthread_join(th, NULL);
	} else {
		hb_thread(&c);
	}
	cv_digest_many((const void *)(uintptr_t)dev, len, granule, 42, b);
	ok = c.r == 0 && !memcmp(a, b, n * DL);
	free(a);
	free(b);
	return ok;
}

static void test_host_backend(void)
{
	struct cv_backend_cfg cfg = { .gpu = 0, .driver = NULL,
				      .quota = 1ull << 30 };
	struct cv_backend *be = NULL;
	struct cv_devinfo info;
	cv_bobj mem = NULL, st = NULL;
	uint8_t out[DL] = { 0x11 };
	int r;

	unsetenv("CUVISOR_HOST_KERNELS");
	CHECK(ops->digest != NULL, "the host backend has a digest op");
	r = ops->open(&cfg, &info, &be);
	CHECK(!r, "host backend opens (%d)", r);
	if (r)
		return;
	r = ops->va_reserve(be, WIN, CV_WINDOW_SIZE);
	if (!r)
		r = ops->mem_create(be, HB_LEN, &mem);
	if (!r)
		r = ops->mem_map(be, WIN, HB_LEN, mem, 0);
	if (!r)
		r = ops->stream_create(be, 0, 0, &st);
	CHECK(!r, "window, %u MiB mapped, a stream (%d)",
	      (unsigned int)(HB_LEN / MB), r);
	if (r)
		goto out;
	cv_tv_fill((void *)(uintptr_t)WIN, HB_LEN, 0xbeef);
	CHECK(hb_same(be, WIN, HB_LEN, 64 * KB, false),
	      "digest of %u MiB in 64 KiB granules = cv_digest_many",
	      (unsigned int)(HB_LEN / MB));
	CHECK(hb_same(be, WIN, HB_LEN, 2 * MB, true),
	      "digest in 2 MiB granules, from another thread");
	CHECK(hb_same(be, WIN + 4096, 1 * MB, 4 * KB, false),
	      "digest of an inner range in 4 KiB granules");
	r = ops->digest(be, WIN, 64 * KB, 64 * KB, 42, out, st, 0);
	CHECK(!r && hb_same(be, WIN, 64 * KB, 64 * KB, false),
	      "digest on a stream (%d)", r);
	out[0] = 0x11;
	r = ops->digest(be, WIN, 0, 4096, 42, out, NULL, 0);
	CHECK(!r && out[0] == 0x11, "0 bytes: nothing written (%d)", r);
	CHECK(ops->digest(be, WIN + 4, 4096, 4096, 1, out, NULL, 0) ==
		      CUDA_ERROR_INVALID_VALUE &&
	      ops->digest(be, WIN, 4096, 2048, 1, out, NULL, 0) ==
		      CUDA_ERROR_INVALID_VALUE &&
	      ops->digest(be, WIN, 4096, 6144, 1, out, NULL, 0) ==
		      CUDA_ERROR_INVALID_VALUE &&
	      ops->digest(be, WIN, 12288, 8192, 1, out, NULL, 0) ==
		      CUDA_ERROR_INVALID_VALUE &&
	      ops->digest(be, WIN, 32u << 20, 32u << 20, 1, out, NULL, 0) ==
		      CUDA_ERROR_INVALID_VALUE &&
	      ops->digest(be, ~0ull - 4095, 8192, 4096, 1, out, NULL, 0) ==
		      CUDA_ERROR_INVALID_VALUE &&
	      out[0] == 0x11,
	      "unaligned address, bad granule, len not a multiple, wrap: "
	      "CUDA_ERROR_INVALID_VALUE, nothing written");
out:
	if (st)
		ops->stream_destroy(be, st);
	if (mem) {
		ops->mem_unmap(be, WIN, HB_LEN);
		ops->mem_release(be, mem);
	}
	ops->close(be);
}

int main(void)
{
	cv_log_init("test_digest", CV_LOG_WARN, NULL);
	test_vectors();
	test_many();
	test_flips(4 * KB, 0, 200);
	test_flips(4 * KB, 0x4444, 200);
	test_flips(12 * KB, 0x1212, 200);
	test_flips(64 * KB, 0, 500);
	test_flips(64 * KB, 0x6464, 500);
	test_flips(1 * MB, 0x1010, 50);
	test_spread();
	test_swaps();
	test_seeds_and_lengths();
	test_host_backend();
	return unit_done();
}

/* SPDX-License-Identifier: MIT */
/*
 * The driver's private tables (guest/exports.c) with MD2 (guest/md2.c)
 * and HMAC (guest/hmac.c), linked alone: the rest of the guest (contexts,
 * handles, device queries, the primary context) is replaced by the
 * stand-ins below, so no daemon or worker is needed. HMAC is checked
 * against RFC 2202's HMAC-MD5 vectors with OpenSSL's MD5 (test only).
 *
 *   make build/tests/test_exports && build/tests/test_exports
 */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/log.h"
#include "../guest/exports.h"
#include "../guest/hmac.h"
#include "../guest/md2.h"
#include "unit.h"

/* ---- stand-ins for the rest of the guest ------------------------------ */

#define NCTX 3
#define H0 0x5100u /* handle of ctxs[0] (the primary); ctxs[i]: H0 + i */
#define HANDLE(i) ((CUcontext)(uintptr_t)(H0 + (i)))

struct cv_guest g = { .lock = PTHREAD_MUTEX_INITIALIZER };
static struct cv_ctx ctxs[NCTX];
static struct cv_ctx *cur; /* every thread's current context */
static int nretain;

static const uint8_t dev_uuid[16] = {
	0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
	0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
};
#define DRV_VERSION 13010
#define DEV_DOM 1
#define DEV_BUS 0x41
#define DEV_DEV 3

struct cv_ctx *cv_ctx_current(void)
{
	return cur;
}

void *cv_handle_get(uint64_t h, enum cv_htype t)
{
	if (t != CV_H_CTX || h < H0 || h >= H0 + NCTX)
		return NULL;
	return &ctxs[h - H0];
}

uint64_t cv_handle_of(const struct cv_hobj *o)
{
	for (unsigned int i = 0; i < NCTX; i++)
		if (o == &ctxs[i].h)
			return H0 + i;
	return 0;
}

int cv_g_ready(void)
{
	return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
	pthread_mutex_lock(&g.lock);
	nretain++;
	if (!g.pctx)
		g.pctx = &ctxs[0];
	g.pctx_refs++;
	pthread_mutex_unlock(&g.lock);
	*pctx = HANDLE(0);
	return CUDA_SUCCESS;
}

CUresult cuDriverGetVersion(int *v)
{
	*v = DRV_VERSION;
	return CUDA_SUCCESS;
}

CUresult cuDeviceGetUuid_v2(CUuuid *uuid, CUdevice dev)
{
	memcpy(uuid->bytes, dev_uuid, 16);
	return dev ? CUDA_ERROR_INVALID_DEVICE : CUDA_SUCCESS;
}

CUresult cuDeviceGetAttribute(int *pi, CUdevice_attribute a, CUdevice dev)
{
	switch (a) {
	case CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID: *pi = DEV_DOM; break;
	case CU_DEVICE_ATTRIBUTE_PCI_BUS_ID: *pi = DEV_BUS; break;
	case CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID: *pi = DEV_DEV; break;
	default: return CUDA_ERROR_INVALID_VALUE;
	}
	return dev ? CUDA_ERROR_INVALID_DEVICE : CUDA_SUCCESS;
}

/* The context of h, or the current one for NULL, as the guest finds it. */
static struct cv_ctx *ctx_of(CUcontext h)
{
	return h ? cv_handle_get((uint64_t)(uintptr_t)h, CV_H_CTX) : cur;
}

#define CTX_ID(i) (700u + (i)) /* what cuCtxGetId answers for ctxs[i] */
static int nsync;

CUresult cuCtxGetId(CUcontext h, unsigned long long *id)
{
	struct cv_ctx *c = ctx_of(h);

	if (!c)
		return CUDA_ERROR_INVALID_CONTEXT;
	*id = CTX_ID(c - ctxs);
	return CUDA_SUCCESS;
}

CUresult cuCtxGetDevice_v2(CUdevice *dev, CUcontext h)
{
	if (!ctx_of(h))
		return CUDA_ERROR_INVALID_CONTEXT;
	*dev = 0;
	return CUDA_SUCCESS;
}

CUresult cuCtxSynchronize_v2(CUcontext h)
{
	if (!ctx_of(h))
		return CUDA_ERROR_INVALID_CONTEXT;
	nsync++;
	return CUDA_SUCCESS;
}

CUresult cuCtxGetApiVersion(CUcontext h, unsigned int *v)
{
	if (!ctx_of(h))
		return CUDA_ERROR_INVALID_CONTEXT;
	*v = 3020;
	return CUDA_SUCCESS;
}

/* Modules 1 and 2 have one and two functions (handles 0xf0 + i). */
CUresult cuModuleGetFunctionCount(unsigned int *n, CUmodule m)
{
	uintptr_t i = (uintptr_t)m;

	if (i != 1 && i != 2)
		return CUDA_ERROR_INVALID_HANDLE;
	*n = (unsigned int)i;
	return CUDA_SUCCESS;
}

CUresult cuModuleEnumerateFunctions(CUfunction *fs, unsigned int n, CUmodule m)
{
	uintptr_t i = (uintptr_t)m;

	if ((i != 1 && i != 2) || n != i)
		return CUDA_ERROR_INVALID_VALUE;
	for (unsigned int k = 0; k < n; k++)
		fs[k] = (CUfunction)(uintptr_t)(0xf0 + k);
	return CUDA_SUCCESS;
}

/* ---- helpers -------------------------------------------------------------- */

static void unhex(const char *s, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned int b = 0;

		sscanf(s + 2 * i, "%2x", &b);
		out[i] = (uint8_t)b;
	}
}

static bool eq_hex(const uint8_t *got, const char *want, size_t n)
{
	uint8_t w[64];

	unhex(want, w, n);
	return !memcmp(got, w, n);
}

/* A table slot as a function of the given type. */
#define SLOT(tab, i, type) ((type)(uintptr_t)((const void *const *)(tab))[i])

static const void *table(const uint8_t uuid[16])
{
	const void *t = NULL;
	CUuuid id;

	memcpy(id.bytes, uuid, 16);
	return cuGetExportTable(&t, &id) == CUDA_SUCCESS ? t : NULL;
}

static const uint8_t U_SINK[16] = { 0xf8, 0xcf, 0xf9, 0x51, 0x21, 0x46, 0x8b,
	0x4e, 0xb9, 0xe2, 0xfb, 0x46, 0x9e, 0x7c, 0x0d, 0xd9 };
static const uint8_t U_RT[16] = { 0x6b, 0xd5, 0xfb, 0x6c, 0x5b, 0xf4, 0xe7,
	0x4a, 0x89, 0x87, 0xd9, 0x39, 0x12, 0xfd, 0x9d, 0xf9 };
static const uint8_t U_HOOKS[16] = { 0xa0, 0x94, 0x79, 0x8c, 0x2e, 0x74, 0x2e,
	0x74, 0x93, 0xf2, 0x08, 0x00, 0x20, 0x0c, 0x0a, 0x66 };
static const uint8_t U_TLS[16] = { 0x42, 0xd8, 0x5a, 0x81, 0x23, 0xf6, 0xcb,
	0x47, 0x82, 0x98, 0xf6, 0xe7, 0x8a, 0x3a, 0xec, 0xdc };
static const uint8_t U_CLS[16] = { 0xc6, 0x93, 0x33, 0x6e, 0x11, 0x21, 0xdf,
	0x11, 0xa8, 0xc3, 0x68, 0xf3, 0x55, 0xd8, 0x95, 0x93 };
static const uint8_t U_CHECKS[16] = { 0x26, 0x3e, 0x88, 0x60, 0x7c, 0xd2, 0x61,
	0x43, 0x92, 0xf6, 0xbb, 0xd5, 0x00, 0x6d, 0xfa, 0x7e };
static const uint8_t U_INTEGRITY[16] = { 0xd4, 0x08, 0x20, 0x55, 0xbd, 0xe6,
	0x70, 0x4b, 0x8d, 0x34, 0xba, 0x12, 0x3c, 0x66, 0xe1, 0xf2 };

static const uint8_t U_TCTX[16] = { 0x21, 0x31, 0x8c, 0x60, 0x97, 0x14,
	0x32, 0x48, 0x8c, 0xa6, 0x41, 0xff, 0x73, 0x24, 0xc8, 0xf2 };
static const uint8_t U_TMOD[16] = { 0x6e, 0x16, 0x3f, 0xbe, 0xb9, 0x58,
	0x44, 0x4d, 0x83, 0x5c, 0xe1, 0x82, 0xaf, 0xf1, 0x99, 0x1e };

static const uint8_t KEY[16] = { 0x14, 0x6a, 0xdd, 0xae, 0x53, 0xa9, 0xa7,
	0x52, 0xaa, 0x08, 0x41, 0x36, 0x0b, 0xf5, 0x5a, 0x9f };

/* ---- MD2 (RFC 1319, appendix A.5) ------------------------------------- */

static void test_md2(void)
{
	static const struct { const char *msg, *digest; } v[] = {
		{ "", "8350e5a3e24c153df2275c9f80692773" },
		{ "a", "32ec01ec4a6dac72c0ab96fb34c0b5d1" },
		{ "abc", "da853b0d3f88d99b30283a69e6ded6bb" },
		{ "message digest", "ab4f496bfb2a530b219ff33031fe06b0" },
		{ "abcdefghijklmnopqrstuvwxyz",
		  "4e8ddff3650292ab5a4108c3aa47940b" },
		{ "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		  "0123456789", "da33def2a42df13975352846c30338cd" },
		{ "1234567890123456789012345678901234567890"
		  "1234567890123456789012345678901234567890",
		  "d5976f79d83d3a0dc9806c3c66f3efd8" },
	};
	uint8_t d[16];
	struct cv_md2 c;

	for (unsigned int i = 0; i < CV_ARRAY_SIZE(v); i++) {
		cv_md2(v[i].msg, strlen(v[i].msg), d);
		CHECK(eq_hex(d, v[i].digest, 16), "MD2(\"%s\")", v[i].msg);
	}
	/* The same, fed in uneven pieces across block boundaries. */
	for (size_t step = 1; step <= 17; step += 8) {
		const char *m = v[6].msg;
		size_t n = strlen(m);

		cv_md2_init(&c);
		for (size_t off = 0; off < n; off += step)
			cv_md2_update(&c, m + off, CV_MIN(step, n - off));
		cv_md2_final(&c, d);
		CHECK(eq_hex(d, v[6].digest, 16),
		      "MD2 of the 80 digits fed %zu bytes at a time", step);
	}
}

/* ---- HMAC ------------------------------------------------------------- */

/* OpenSSL's MD5 as a cv_hash (the context holds the EVP context). */
struct md5_ctx {
	EVP_MD_CTX *c;
};

static void md5_init(void *ctx)
{
	struct md5_ctx *m = ctx;

	m->c = EVP_MD_CTX_new();
	if (m->c && !EVP_DigestInit_ex(m->c, EVP_md5(), NULL)) {
		EVP_MD_CTX_free(m->c);
		m->c = NULL;
	}
}

static void md5_update(void *ctx, const void *p, size_t n)
{
	struct md5_ctx *m = ctx;

	if (m->c)
		EVP_DigestUpdate(m->c, p, n);
}

static void md5_final(void *ctx, uint8_t *digest)
{
	struct md5_ctx *m = ctx;
	unsigned int len = 0;

	memset(digest, 0, 16);
	if (m->c) {
		EVP_DigestFinal_ex(m->c, digest, &len);
		EVP_MD_CTX_free(m->c);
		m->c = NULL;
	}
}

static const struct cv_hash md5_hash = {
	.name = "MD5", .block_size = 64, .digest_size = 16,
	.ctx_size = sizeof(struct md5_ctx), .init = md5_init,
	.update = md5_update, .final = md5_final,
};

/* RFC 2202 section 2 (test cases 1-3 are RFC 2104's appendix). */
static void test_hmac_md5(void)
{
	static const struct {
		uint8_t kbyte;
		size_t klen;
		const char *data; /* NULL: 50 bytes of dbyte */
		uint8_t dbyte;
		const char *mac;
	} v[] = {
		{ 0x0b, 16, "Hi There", 0, "9294727a3638bb1c13f48ef8158bfc9d" },
		{ 0, 4, "what do ya want for nothing?", 0,
		  "750c783e6ab0b503eaa86e310a5db738" },
		{ 0xaa, 16, NULL, 0xdd, "56be34521d144c88dbb8c733f0e8b3f6" },
		{ 1, 25, NULL, 0xcd, "697eaf0aca3a3aea3a75164746ffaa79" },
		{ 0x0c, 16, "Test With Truncation", 0,
		  "56461ef2342edc00f9bab995690efd4c" },
		{ 0xaa, 80, "Test Using Larger Than Block-Size Key - Hash Key "
		  "First", 0, "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd" },
		{ 0xaa, 80, "Test Using Larger Than Block-Size Key and Larger "
		  "Than One Block-Size Data", 0,
		  "6f630fad67cda0ee1fb1f562db3aa53e" },
	};
	uint8_t key[80], data[64], mac[16];
	struct cv_hmac h;

	for (unsigned int i = 0; i < CV_ARRAY_SIZE(v); i++) {
		const void *msg = v[i].data ? (const void *)v[i].data : data;
		size_t n = v[i].data ? strlen(v[i].data) : 50;

		if (i == 1)
			memcpy(key, "Jefe", 4);
		else if (i == 3)
			for (size_t j = 0; j < 25; j++)
				key[j] = (uint8_t)(j + 1);
		else
			memset(key, v[i].kbyte, v[i].klen);
		memset(data, v[i].dbyte, sizeof(data));
		CHECK(cv_hmac(&md5_hash, key, v[i].klen, msg, n, mac) == 0 &&
		      eq_hex(mac, v[i].mac, 16),
		      "HMAC-MD5 RFC 2202 test case %u", i + 1);
		/* Incrementally, one byte at a time. */
		cv_hmac_init(&h, &md5_hash, key, v[i].klen);
		for (size_t j = 0; j < n; j++)
			cv_hmac_update(&h, (const uint8_t *)msg + j, 1);
		cv_hmac_final(&h, mac);
		CHECK(eq_hex(mac, v[i].mac, 16),
		      "HMAC-MD5 test case %u fed byte by byte", i + 1);
	}
}

static void test_hmac_md2(void)
{
	uint8_t key[40], hk[16], pad[16], inner[16], mac[16], want[16];
	const char *msg = "The integrity record, or anything else";
	struct cv_md2 c;

	for (unsigned int i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(0xa0 + i);
	/* A key longer than the block (16) is replaced by its digest. */
	CHECK(cv_hmac(&cv_md2_hash, key, sizeof(key), msg, strlen(msg),
		      mac) == 0, "HMAC-MD2 with a 40-byte key");
	cv_md2(key, sizeof(key), hk);
	CHECK(cv_hmac(&cv_md2_hash, hk, 16, msg, strlen(msg), want) == 0 &&
	      !memcmp(mac, want, 16), "HMAC-MD2(K) == HMAC-MD2(MD2(K)) for |K| > 16");
	cv_hmac(&cv_md2_hash, key, 17, msg, strlen(msg), mac);
	cv_md2(key, 17, hk);
	cv_hmac(&cv_md2_hash, hk, 16, msg, strlen(msg), want);
	CHECK(!memcmp(mac, want, 16), "a 17-byte key is hashed too");

	/* RFC 2104's definition spelled out with MD2, for a 16-byte key. */
	for (unsigned int i = 0; i < 16; i++)
		pad[i] = key[i] ^ 0x36;
	cv_md2_init(&c);
	cv_md2_update(&c, pad, 16);
	cv_md2_update(&c, msg, strlen(msg));
	cv_md2_final(&c, inner);
	for (unsigned int i = 0; i < 16; i++)
		pad[i] = key[i] ^ 0x5c;
	cv_md2_init(&c);
	cv_md2_update(&c, pad, 16);
	cv_md2_update(&c, inner, 16);
	cv_md2_final(&c, want);
	cv_hmac(&cv_md2_hash, key, 16, msg, strlen(msg), mac);
	CHECK(!memcmp(mac, want, 16), "HMAC-MD2 is H(K^opad || H(K^ipad || m))");
	/* A short key is zero-padded: K and K || 0 give the same MAC. */
	memset(key + 5, 0, 11);
	cv_hmac(&cv_md2_hash, key, 5, msg, strlen(msg), mac);
	cv_hmac(&cv_md2_hash, key, 16, msg, strlen(msg), want);
	CHECK(!memcmp(mac, want, 16), "a short key is zero-padded");
}

static void test_hmac_errors(void)
{
	struct cv_hash big = md5_hash, wide = cv_md2_hash, fat = cv_md2_hash;
	struct cv_hmac h;

	big.block_size = CV_HMAC_MAX_BLOCK + 1;
	wide.digest_size = 32; /* > its block */
	fat.ctx_size = CV_HMAC_MAX_CTX + 1;
	CHECK(cv_hmac_init(&h, NULL, "k", 1) == -EINVAL, "no hash: -EINVAL");
	CHECK(cv_hmac_init(&h, &big, "k", 1) == -EINVAL,
	      "block over the bound: -EINVAL");
	CHECK(cv_hmac_init(&h, &wide, "k", 1) == -EINVAL,
	      "digest longer than the block: -EINVAL");
	CHECK(cv_hmac_init(&h, &fat, "k", 1) == -EINVAL,
	      "context over the bound: -EINVAL");
	CHECK(cv_hmac_init(&h, &cv_md2_hash, NULL, 3) == -EINVAL,
	      "NULL key with a length: -EINVAL");
	CHECK(cv_hmac_init(&h, &cv_md2_hash, NULL, 0) == 0,
	      "an empty key is fine");
}

/* ---- the integrity answer ----------------------------------------------- */

/* The message as docs/cudart-binding.md describes it, assembled apart
 * from exports.c (a packed struct on this little-endian host). */
struct __attribute__((packed)) int_msg {
	uint32_t drv, version, pid, tid;
	uint64_t rt_tab, int_tab, slot1, secs;
	uint8_t uuid[16];
	int32_t dom, bus, dev;
};
_Static_assert(sizeof(struct int_msg) == 48 + 28, "record sizes");

static void expect_hmac(const struct int_msg *m, uint64_t out[2])
{
	uint8_t mac[16];

	cv_hmac(&cv_md2_hash, KEY, 16, m, sizeof(*m), mac);
	memcpy(out, mac, 16);
}

static void compute(const struct int_msg *m, uint64_t out[2])
{
	cv_integrity_compute(m->drv, m->version, m->pid, m->tid,
			     (const void *)(uintptr_t)m->rt_tab,
			     (const void *)(uintptr_t)m->int_tab,
			     (const void *)(uintptr_t)m->slot1, m->secs, m->uuid,
			     m->dom, m->bus, m->dev, out);
}

static void test_integrity_compute(void)
{
	struct int_msg m = {
		13010, 13002, 0x1234, 0xdeadbeef, 0x7f0000001000ull,
		0x7f0000002000ull, 0x7f0000003000ull, 1700000000,
		{ 0 }, DEV_DOM, DEV_BUS, DEV_DEV,
	}, m2;
	uint64_t out[2], want[2];
	uint8_t mac[16];

	memcpy(m.uuid, dev_uuid, 16);
	m.version = 13000;
	compute(&m, out);
	CHECK(out[0] == 0x3341181C03CB675Cull && out[1] == 0x8ED383AA1F4CD1E8ull,
	      "version 13000: the constant answer");
	m.version = 12990;
	compute(&m, out);
	CHECK(out[0] == 0x3341181C03CB675Cull, "any version %% 10 == 0 too");
	m.version = 13001;
	compute(&m, out);
	CHECK(out[0] == 0x1841181C03CB675Cull && out[1] == 0x8ED383AA1F4CD1E8ull,
	      "version 13001: the constant answer");

	m.version = 13002;
	compute(&m, out);
	expect_hmac(&m, want);
	CHECK(out[0] == want[0] && out[1] == want[1],
	      "version 13002: HMAC-MD2 over the 48 + 28 byte records");
	/* Known answer, cross-checked outside the tree against an
	 * independent MD2 with Python's hmac module and against ZLUDA's
	 * byte-level routine (dark_api/src/lib.rs) on the same inputs. */
	memcpy(mac, out, 16);
	CHECK(eq_hex(mac, "66382f7f3f6b065b2f109c2fd529a2cf", 16),
	      "version 13002: known answer");
	m2 = (struct int_msg){ 13000, 12082, 0x002fa423, 0xf79c1000,
			       0x00007ffff6958240ull, 0x00007ffff6958220ull,
			       0x00007ffff2aaf4a0ull, 0x682b9cee, { 0 }, 0, 2,
			       0 };
	memcpy(m2.uuid, dev_uuid, 16);
	compute(&m2, out);
	memcpy(mac, out, 16);
	CHECK(eq_hex(mac, "15c7659b6e867a59a09e16651eaab17c", 16),
	      "version 12082: known answer");

	/* Every field is part of the message. */
	for (unsigned int f = 0; f < 11; f++) {
		m2 = m;
		switch (f) {
		case 0: m2.drv++; break;
		case 1: m2.version += 10; break;
		case 2: m2.pid++; break;
		case 3: m2.tid++; break;
		case 4: m2.rt_tab += 8; break;
		case 5: m2.int_tab += 8; break;
		case 6: m2.slot1 += 8; break;
		case 7: m2.secs++; break;
		case 8: m2.uuid[15] ^= 1; break;
		case 9: m2.dom++; break;
		case 10: m2.dev++; break;
		}
		compute(&m2, want);
		compute(&m, out);
		CHECK(out[0] != want[0] || out[1] != want[1],
		      "field %u changes the answer", f);
	}
}

/* ---- cuGetExportTable ----------------------------------------------------- */

static uint64_t table_size(const void *t)
{
	return (uint64_t)(uintptr_t)((const void *const *)t)[0];
}

static size_t count_in(const char *path, const char *needle)
{
	size_t n = 0, len;
	char *buf = NULL, *p;
	FILE *f = fopen(path, "r");

	if (!f)
		return 0;
	buf = calloc(1, 1 << 16);
	len = buf ? fread(buf, 1, (1 << 16) - 1, f) : 0;
	fclose(f);
	for (p = buf; p && len && (p = strstr(p, needle)); p++)
		n++;
	free(buf);
	return n;
}

static void test_lookup(const char *logpath)
{
	static const uint8_t unknown[16] = { 0xde, 0xad, 0xbe, 0xef };
	const void *t;
	CUuuid id;

	CHECK(table_size(table(U_RT)) == 13 * 8, "runtime interface: 13 slots");
	CHECK(table_size(table(U_HOOKS)) == 7 * 8, "tools hooks: 7 slots");
	CHECK(table_size(table(U_TLS)) == 3 * 8, "tools TLS: 3 slots");
	CHECK(table_size(table(U_CHECKS)) == 4 * 8, "context checks: 4 slots");
	CHECK(table_size(table(U_INTEGRITY)) == 3 * 8, "integrity: 3 slots");
	CHECK(table_size(table(U_TCTX)) == 61 * 8, "tools context: 61 slots");
	CHECK(table_size(table(U_TMOD)) == 8 * 8,
	      "tools module: 8 slots (cuFFT wants more than 7)");
	t = table(U_CLS);
	CHECK(t && ((const void *const *)t)[0] && ((const void *const *)t)[1] &&
	      ((const void *const *)t)[2] && !((const void *const *)t)[3],
	      "CLS: three functions, then NULL");

	memcpy(id.bytes, unknown, 16);
	t = (const void *)1; /* must be cleared */
	CHECK(cuGetExportTable(&t, &id) == CUDA_ERROR_INVALID_VALUE && !t,
	      "unknown UUID: CUDA_ERROR_INVALID_VALUE, NULL table");
	CHECK(cuGetExportTable(&t, &id) == CUDA_ERROR_INVALID_VALUE,
	      "unknown UUID again");
	CHECK(count_in(logpath, "unknown table de ad be ef 00") == 1,
	      "an unknown UUID is logged once, in hex");
	memcpy(id.bytes, U_SINK, 16);
	CHECK(cuGetExportTable(&t, &id) == CUDA_ERROR_INVALID_VALUE,
	      "the error-message sink is refused");
	CHECK(cuGetExportTable(NULL, &id) == CUDA_ERROR_INVALID_VALUE,
	      "NULL table pointer: CUDA_ERROR_INVALID_VALUE");
	CHECK(cuGetExportTable(&t, NULL) == CUDA_ERROR_INVALID_VALUE,
	      "NULL UUID: CUDA_ERROR_INVALID_VALUE");
}

typedef CUresult (*primary_fn)(CUcontext *, CUdevice);
typedef void (*buf_fn)(void **, size_t *);
typedef CUresult (*check_fn)(CUcontext, uint32_t *, void **);
typedef uint32_t (*check3_fn)(void);
typedef CUresult (*integrity_fn)(uint32_t, uint64_t, uint64_t *);
typedef CUresult (*any_fn)(void);

static void test_runtime_interface(const char *logpath)
{
	const void *rt = table(U_RT);
	primary_fn primary = SLOT(rt, 2, primary_fn);
	CUcontext c = NULL;

	/* Before the primary context exists: made, but not kept retained. */
	CHECK(primary(&c, 0) == CUDA_SUCCESS && c == HANDLE(0),
	      "[2] gives the primary context's handle");
	CHECK(nretain == 1 && g.pctx_refs == 0,
	      "[2] leaves no reference behind when it had to create it");
	g.pctx_refs = 2;
	c = NULL;
	CHECK(primary(&c, 0) == CUDA_SUCCESS && c == HANDLE(0) &&
	      nretain == 1 && g.pctx_refs == 2,
	      "[2] once it exists: same handle, no retain, count unchanged");
	g.pctx_refs = 0;
	CHECK(primary(&c, 1) == CUDA_ERROR_INVALID_DEVICE,
	      "[2] device 1: CUDA_ERROR_INVALID_DEVICE");
	CHECK(primary(NULL, 0) == CUDA_ERROR_INVALID_VALUE,
	      "[2] NULL: CUDA_ERROR_INVALID_VALUE");

	CHECK(SLOT(rt, 1, any_fn)() == CUDA_ERROR_NOT_SUPPORTED &&
	      SLOT(rt, 1, any_fn)() == CUDA_ERROR_NOT_SUPPORTED &&
	      SLOT(rt, 12, any_fn)() == CUDA_ERROR_NOT_SUPPORTED,
	      "other slots: CUDA_ERROR_NOT_SUPPORTED");
	CHECK(count_in(logpath, "slot [1] of the driver's runtime-interface") == 1,
	      "an unimplemented slot is logged once");
}

static bool all_zero(const uint32_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static void test_hooks_and_checks(void)
{
	const void *hooks = table(U_HOOKS), *checks = table(U_CHECKS);
	const void *tls = table(U_TLS);
	void *buf = NULL, *p2 = (void *)1;
	size_t n = 0;
	uint32_t out = 7;

	SLOT(hooks, 2, buf_fn)(&buf, &n);
	CHECK(buf && n == 1024 && all_zero(buf, n),
	      "hooks [2]: 1024 zero entries");
	SLOT(hooks, 6, buf_fn)(&buf, &n);
	CHECK(buf && n == 14 && all_zero(buf, n), "hooks [6]: 14 zero entries");
	for (unsigned int i = 1; i < 7; i++)
		CHECK(((const void *const *)hooks)[i], "hooks [%u] is set", i);
	for (unsigned int i = 1; i < 3; i++)
		CHECK(((const void *const *)tls)[i], "tools TLS [%u] is set", i);
	CHECK(SLOT(checks, 2, check_fn)(HANDLE(0), &out, &p2) == CUDA_SUCCESS &&
	      out == 0, "context checks [2]: *out = 0, success");
	CHECK(SLOT(checks, 3, check3_fn)() == 0, "context checks [3]: 0");
}

static void test_integrity_slot(void)
{
	const void *rt = table(U_RT), *it = table(U_INTEGRITY);
	integrity_fn fn = SLOT(it, 1, integrity_fn);
	uint64_t out[2] = { 0 }, again[2] = { 1 }, want[2];
	uint64_t secs = 1750000000;

	CHECK(fn(13000, secs, out) == CUDA_SUCCESS &&
	      out[0] == 0x3341181C03CB675Cull && out[1] == 0x8ED383AA1F4CD1E8ull,
	      "integrity [1](13000): the constant");
	CHECK(fn(13001, secs, out) == CUDA_SUCCESS &&
	      out[0] == 0x1841181C03CB675Cull && out[1] == 0x8ED383AA1F4CD1E8ull,
	      "integrity [1](13001): the constant");
	CHECK(fn(13002, secs, out) == CUDA_SUCCESS &&
	      fn(13002, secs, again) == CUDA_SUCCESS &&
	      out[0] == again[0] && out[1] == again[1],
	      "integrity [1](13002): stable within a thread and second");
	cv_integrity_compute(DRV_VERSION, 13002, (uint32_t)getpid(),
			     (uint32_t)(uintptr_t)pthread_self(), rt, it,
			     ((const void *const *)it)[1], secs, dev_uuid,
			     DEV_DOM, DEV_BUS, DEV_DEV, want);
	CHECK(out[0] == want[0] && out[1] == want[1],
	      "integrity [1](13002) hashes this process, thread, tables, device");
	CHECK(fn(13002, secs, NULL) == CUDA_ERROR_INVALID_VALUE,
	      "integrity [1] with NULL out: CUDA_ERROR_INVALID_VALUE");
}

/* ---- tools context and tools module (cuFFT) ---------------------------- */

typedef CUresult (*dev_fn)(CUcontext, uint32_t *);
typedef CUresult (*id_fn)(CUcontext, uint64_t *);
typedef CUresult (*sync_fn)(CUcontext);
typedef void (*api_fn)(CUcontext, int *);
typedef CUresult (*u32_fn)(CUcontext, uint32_t *);
typedef CUresult (*prio_fn)(CUcontext, int32_t *, int32_t *);
typedef CUresult (*parent_fn)(CUcontext, CUcontext *);
typedef void (*fn_cb)(void *, CUfunction, void *);
typedef uint64_t (*enum_fn)(CUcontext, CUmodule, fn_cb, void *);

static int ncb;

/* Keeps the last function, as cuFFT's callback does. */
static void keep_cb(void *arg, CUfunction f, void *unknown)
{
	*(CUfunction *)arg = f;
	ncb++;
}

static void test_tools_context(const char *logpath)
{
	const void *t = table(U_TCTX), *m = table(U_TMOD);
	const void *const *slot = t;
	CUcontext bad = (CUcontext)(uintptr_t)0x1234, parent = HANDLE(1);
	uint64_t id = 0;
	uint32_t u = 99;
	int32_t least = 5, greatest = 5;
	int api = 7;
	bool all = true;
	CUfunction f = NULL;

	if (!t || !m) {
		CHECK(false, "tools context and tools module tables exist");
		return;
	}
	for (unsigned int i = 1; i < 128; i++)
		all = all && slot[i];
	CHECK(all, "tools context: every slot, and the room after, is set");
	cur = &ctxs[1];
	CHECK(SLOT(t, 4, id_fn)(HANDLE(2), &id) == CUDA_SUCCESS &&
	      id == CTX_ID(2), "[4] by handle: cuCtxGetId's id");
	CHECK(SLOT(t, 4, id_fn)(NULL, &id) == CUDA_SUCCESS && id == CTX_ID(1),
	      "[4] NULL: the current context's id");
	CHECK(SLOT(t, 4, id_fn)(bad, &id) == CUDA_ERROR_INVALID_CONTEXT,
	      "[4] bad handle: CUDA_ERROR_INVALID_CONTEXT");
	CHECK(SLOT(t, 4, id_fn)(HANDLE(0), NULL) == CUDA_ERROR_INVALID_VALUE,
	      "[4] NULL out: CUDA_ERROR_INVALID_VALUE");
	CHECK(SLOT(t, 3, dev_fn)(HANDLE(2), &u) == CUDA_SUCCESS && u == 0,
	      "[3] the context's device: 0");
	CHECK(SLOT(t, 3, dev_fn)(bad, &u) == CUDA_ERROR_INVALID_CONTEXT,
	      "[3] bad handle: CUDA_ERROR_INVALID_CONTEXT");
	CHECK(SLOT(t, 6, sync_fn)(HANDLE(0)) == CUDA_SUCCESS && nsync == 1,
	      "[6] synchronizes the context");
	SLOT(t, 8, api_fn)(HANDLE(0), &api);
	CHECK(api == 1, "[8] a CUDA context");
	SLOT(t, 8, api_fn)(bad, &api);
	CHECK(api == 0, "[8] bad handle: invalid");
	CHECK(SLOT(t, 13, u32_fn)(HANDLE(0), &u) == CUDA_SUCCESS && u == 3020,
	      "[13] API version, as cuCtxGetApiVersion");
	g.dev.prio_least = 0;
	g.dev.prio_greatest = -5;
	CHECK(SLOT(t, 36, prio_fn)(NULL, &least, &greatest) == CUDA_SUCCESS &&
	      least == 0 && greatest == -5 &&
	      SLOT(t, 36, prio_fn)(NULL, NULL, NULL) == CUDA_SUCCESS,
	      "[36] stream priority range, outputs optional");
	CHECK(SLOT(t, 40, parent_fn)(HANDLE(2), &parent) == CUDA_SUCCESS &&
	      parent == NULL, "[40] no parent context");
	CHECK(SLOT(t, 40, parent_fn)(bad, &parent) ==
	      CUDA_ERROR_INVALID_CONTEXT, "[40] bad handle");
	cur = NULL;
	CHECK(SLOT(t, 4, id_fn)(NULL, &id) == CUDA_ERROR_INVALID_CONTEXT,
	      "[4] NULL without a current context: CUDA_ERROR_INVALID_CONTEXT");
	{
		typedef CUresult (*tsh_fn)(CUcontext, CUstream, void **,
					   uint8_t);
		typedef CUresult (*tsid_fn)(CUcontext, void *, uint64_t *);
		void *ts = NULL;
		uint64_t sid = 0;

		CHECK(SLOT(t, 51, tsh_fn)(HANDLE(2), NULL, &ts, 0) ==
		      CUDA_SUCCESS && ts == (void *)CU_STREAM_LEGACY &&
		      SLOT(t, 51, tsh_fn)(HANDLE(2), NULL, &ts, 1) ==
		      CUDA_SUCCESS && ts == (void *)CU_STREAM_PER_THREAD,
		      "[51] the NULL stream's tools handle, both flavours");
		CHECK(SLOT(t, 39, tsid_fn)(HANDLE(2), ts, &sid) ==
		      CUDA_SUCCESS && sid == (uint64_t)(uintptr_t)ts &&
		      SLOT(t, 39, tsid_fn)(HANDLE(2), (void *)0x1234, &sid) ==
		      CUDA_ERROR_INVALID_HANDLE,
		      "[39] a tools stream's id; a made-up stream refused");
	}
	CHECK(SLOT(t, 52, any_fn)() == CUDA_ERROR_NOT_SUPPORTED &&
	      SLOT(t, 52, any_fn)() == CUDA_ERROR_NOT_SUPPORTED &&
	      SLOT(t, 1, any_fn)() == CUDA_ERROR_NOT_SUPPORTED,
	      "tools context stubs: CUDA_ERROR_NOT_SUPPORTED");
	CHECK(count_in(logpath, "slot [52] of the driver's tools-context") == 1,
	      "a tools-context stub is logged once, with its slot");
	CHECK(SLOT(t, 61, any_fn)() == CUDA_ERROR_NOT_SUPPORTED &&
	      SLOT(t, 127, any_fn)() == CUDA_ERROR_NOT_SUPPORTED &&
	      count_in(logpath, "past the end (61 slots) of the driver's tools-context") == 1,
	      "tools context past its size: a stub, logged once");

	ncb = 0;
	CHECK(SLOT(m, 7, enum_fn)(HANDLE(0), (CUmodule)(uintptr_t)1, keep_cb,
				  &f) == 1 && ncb == 1 && f == (CUfunction)0xf0,
	      "tools module [7]: a one-kernel module gives 1, its function");
	ncb = 0;
	CHECK(SLOT(m, 7, enum_fn)(NULL, (CUmodule)(uintptr_t)2, keep_cb,
				  &f) == 2 && ncb == 2 && f == (CUfunction)0xf1,
	      "tools module [7]: every function, once each");
	ncb = 0;
	CHECK(SLOT(m, 7, enum_fn)(NULL, (CUmodule)(uintptr_t)9, keep_cb,
				  &f) == 0 && ncb == 0 &&
	      SLOT(m, 7, enum_fn)(NULL, (CUmodule)(uintptr_t)9, keep_cb,
				  &f) == 0,
	      "tools module [7]: a module it cannot enumerate gives 0");
	CHECK(count_in(logpath, "slot [7] of the driver's tools-module table (enumerate a module's functions) failed: CUresult 400") == 1,
	      "tools module [7]: a failure is logged once");
	CHECK(SLOT(m, 1, any_fn)() == CUDA_ERROR_NOT_SUPPORTED &&
	      SLOT(m, 8, any_fn)() == CUDA_ERROR_NOT_SUPPORTED,
	      "tools module: other slots and the room after are stubs");
}

/* ---- context-local storage ----------------------------------------------- */

typedef void (*dtor_fn)(CUcontext, void *, void *);
typedef CUresult (*put_fn)(CUcontext, void *, void *, dtor_fn);
typedef CUresult (*del_fn)(CUcontext, void *);
typedef CUresult (*get_fn)(void **, CUcontext, void *);

static put_fn cls_put;
static del_fn cls_del;
static get_fn cls_get;

#define MAX_CALLS 16
static struct { CUcontext ctx; void *key, *value; } calls[MAX_CALLS];
static int ncalls;

static void dtor(CUcontext ctx, void *key, void *value)
{
	if (ncalls < MAX_CALLS)
		calls[ncalls] = (typeof(calls[0])){ ctx, key, value };
	ncalls++;
}

/* A destructor that uses CLS itself: must not deadlock. */
static void dtor_reenter(CUcontext ctx, void *key, void *value)
{
	void *v = NULL;

	dtor(ctx, key, value);
	cls_get(&v, ctx, key);
	cls_del(ctx, key);
	cls_put(ctx, (char *)key + 1, value, NULL);
}

static void *getv(CUcontext c, void *key, CUresult *rc)
{
	void *v = NULL;

	*rc = cls_get(&v, c, key);
	return v;
}

static char k1, k2, k3, k4, va, vb, vc;

static void test_cls_basic(void)
{
	CUresult rc;
	void *v;

	cur = &ctxs[0];
	v = getv(NULL, &k1, &rc);
	CHECK(rc == CUDA_ERROR_INVALID_HANDLE, "get of a missing key: CUDA_ERROR_INVALID_HANDLE");
	CHECK(cls_put(NULL, &k1, &va, dtor) == CUDA_SUCCESS, "put k1 (current context)");
	v = getv(NULL, &k1, &rc);
	CHECK(rc == CUDA_SUCCESS && v == &va, "get k1 (current context)");
	v = getv(HANDLE(0), &k1, &rc);
	CHECK(rc == CUDA_SUCCESS && v == &va, "get k1 by handle");
	CHECK(cls_put(HANDLE(0), &k2, &vb, dtor) == CUDA_SUCCESS, "put k2 by handle");
	v = getv(NULL, &k2, &rc);
	CHECK(rc == CUDA_SUCCESS && v == &vb, "two keys side by side");
	CHECK(cls_put(NULL, &k1, &vc, dtor) == CUDA_SUCCESS &&
	      getv(NULL, &k1, &rc) == &vc && ncalls == 0,
	      "put again replaces the value, runs no destructor");
	CHECK(cls_del(NULL, &k2) == CUDA_SUCCESS, "delete k2");
	getv(NULL, &k2, &rc);
	CHECK(rc == CUDA_ERROR_INVALID_HANDLE && ncalls == 0,
	      "k2 gone, its destructor not run");
	CHECK(cls_del(NULL, &k2) == CUDA_SUCCESS, "deleting a missing key succeeds");
	CHECK(cls_put(HANDLE(1), &k1, &vb, dtor) == CUDA_SUCCESS &&
	      getv(HANDLE(1), &k1, &rc) == &vb && getv(NULL, &k1, &rc) == &vc,
	      "the same key in two contexts");
	CHECK(cls_get(NULL, NULL, &k1) == CUDA_ERROR_INVALID_VALUE,
	      "get with no value pointer: CUDA_ERROR_INVALID_VALUE");
	CHECK(cls_put(HANDLE(7), &k1, &va, dtor) == CUDA_ERROR_INVALID_CONTEXT &&
	      cls_get((void **)&v, HANDLE(7), &k1) == CUDA_ERROR_INVALID_CONTEXT &&
	      cls_del(HANDLE(7), &k1) == CUDA_ERROR_INVALID_CONTEXT,
	      "an unknown context handle: CUDA_ERROR_INVALID_CONTEXT");
	cur = NULL;
	CHECK(cls_put(NULL, &k1, &va, dtor) == CUDA_ERROR_INVALID_CONTEXT,
	      "no current context: CUDA_ERROR_INVALID_CONTEXT");
	ctxs[2].destroyed = true;
	CHECK(cls_put(HANDLE(2), &k1, &va, dtor) == CUDA_ERROR_INVALID_CONTEXT,
	      "a destroyed context: CUDA_ERROR_INVALID_CONTEXT");
	ctxs[2].destroyed = false;
	cur = &ctxs[0];
}

static void test_cls_release(void)
{
	CUresult rc;

	/* ctxs[1] holds k1 = vb (test_cls_basic). */
	cv_cls_ctx_release(&ctxs[1]);
	CHECK(ncalls == 1 && calls[0].ctx == HANDLE(1) && calls[0].key == &k1 &&
	      calls[0].value == &vb,
	      "release runs the destructor once as (ctx, key, value)");
	getv(HANDLE(1), &k1, &rc);
	CHECK(rc == CUDA_ERROR_INVALID_HANDLE, "and forgets the entry");
	CHECK(getv(NULL, &k1, &rc) == &vc, "other contexts keep theirs");
	cv_cls_ctx_release(&ctxs[1]);
	CHECK(ncalls == 1, "a second release runs nothing");

	/* ctxs[0]: k1 = vc, then k3, k4 (no destructor), newest first. */
	cls_put(NULL, &k3, &va, dtor);
	cls_put(NULL, &k4, &vb, NULL);
	ncalls = 0;
	cv_cls_ctx_release(&ctxs[0]);
	CHECK(ncalls == 2 && calls[0].key == &k3 && calls[1].key == &k1 &&
	      calls[1].value == &vc && calls[0].ctx == HANDLE(0),
	      "every destructor of the context, newest first");
	getv(NULL, &k4, &rc);
	CHECK(rc == CUDA_ERROR_INVALID_HANDLE, "entries without one are forgotten too");

	/* A destructor may call CLS (here: get, delete, put). */
	ncalls = 0;
	cls_put(NULL, &k1, &va, dtor_reenter);
	cv_cls_ctx_release(&ctxs[0]);
	CHECK(ncalls == 1 && getv(NULL, &k1 + 1, &rc) == &va,
	      "a destructor can use CLS during release");
	cv_cls_ctx_release(&ctxs[0]);
}

#define NTHREADS 8
#define ROUNDS 2000

static void *cls_worker(void *arg)
{
	char *keys = arg; /* 4 keys of this thread */
	CUresult rc;
	long bad = 0;

	for (int r = 0; r < ROUNDS; r++) {
		char *k = keys + r % 4;

		if (cls_put(NULL, k, k + 1, NULL) != CUDA_SUCCESS ||
		    getv(NULL, k, &rc) != k + 1 || rc != CUDA_SUCCESS)
			bad++;
		if (r % 3)
			continue;
		if (cls_del(NULL, k) != CUDA_SUCCESS)
			bad++;
		getv(NULL, k, &rc);
		if (rc != CUDA_ERROR_INVALID_HANDLE)
			bad++;
	}
	return (void *)bad;
}

static void test_cls_threads(void)
{
	static char keys[NTHREADS][4];
	pthread_t t[NTHREADS];
	long bad = 0;
	void *r;

	cur = &ctxs[0];
	for (int i = 0; i < NTHREADS; i++)
		pthread_create(&t[i], NULL, cls_worker, keys[i]);
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(t[i], &r);
		bad += (long)r;
	}
	CHECK(bad == 0, "%d threads put/get/delete their keys concurrently",
	      NTHREADS);
	cv_cls_ctx_release(&ctxs[0]);
}

int main(void)
{
	char logpath[] = "/tmp/cuvisor-test-exports.XXXXXX";
	const void *cls;
	int fd = mkstemp(logpath);

	if (fd < 0) {
		perror("mkstemp");
		return 1;
	}
	close(fd);
	cv_log_init("test", CV_LOG_WARN, logpath);

	test_md2();
	test_hmac_md5();
	test_hmac_md2();
	test_hmac_errors();
	test_integrity_compute();
	test_lookup(logpath);
	test_runtime_interface(logpath);
	test_hooks_and_checks();
	test_integrity_slot();
	test_tools_context(logpath);

	cls = table(U_CLS);
	cls_put = SLOT(cls, 0, put_fn);
	cls_del = SLOT(cls, 1, del_fn);
	cls_get = SLOT(cls, 2, get_fn);
	test_cls_basic();
	test_cls_release();
	test_cls_threads();

	unlink(logpath);
	return unit_done();
}

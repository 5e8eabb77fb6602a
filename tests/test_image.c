/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of checkpoint image files (core/image.c, core/image_hdr.c)
 * and of the byte buffers (core/buf.c): round trips with and without
 * zstd (empty and CV_IMG_SEC_MAX-sized sections, 4 writer threads, 4
 * reader threads), the identity, peek; every refusal with its message,
 * on files cut short, with a flipped byte, or with a header or index
 * crafted (and its checksums fixed up) to be wrong in exactly one way; a
 * full disk (/dev/full).
 *
 *   build/tests/test_image              runs the tests (TAP-like output)
 *   build/tests/test_image --seeds DIR  writes a few small images into
 *                                       DIR, the seed corpus of
 *                                       fuzz/fuzz_image.c
 *
 * Images are written to memfds, so nothing touches the disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../core/buf.h"
#include "../core/hash.h"
#include "../core/image.h"
#include "../core/util.h"
#include "unit.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the crafted headers and indexes below assume a little-endian host"
#endif

#define ERRLEN 256

static void bail(const char *what)
{
	printf("Bail out! %s: %s\n", what, strerror(errno));
	exit(1);
}

static int mkfile(void)
{
	int fd = memfd_create("test_image", MFD_CLOEXEC);

	if (fd < 0)
		bail("memfd_create");
	return fd;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		bail("malloc");
	return p;
}

static uint64_t fsize(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		bail("fstat");
	return (uint64_t)st.st_size;
}

static uint64_t now_real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Content that zstd cannot shrink (compressible = false) or can. */
static void fill(uint8_t *p, size_t n, uint64_t seed, bool compressible)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
	size_t i;

	for (i = 0; i < n; i++) {
		if (compressible) {
			p[i] = (uint8_t)((i / 64 + seed) % 7 + 'a');
			continue;
		}
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
}

static void put_at(int fd, const void *p, size_t n, uint64_t off)
{
	if (pwrite(fd, p, n, (off_t)off) != (ssize_t)n)
		bail("pwrite");
}

static void get_at(int fd, void *p, size_t n, uint64_t off)
{
	if (pread(fd, p, n, (off_t)off) != (ssize_t)n)
		bail("pread");
}

/* ---- a standard image: 4 sections, one of each kind ---- */

#define STD_N 4
static const struct {
	uint32_t type;
	uint64_t len;
	bool compressible;
} std_secs[STD_N] = {
	{ 10, 1000, false },
	{ 11, 0, false },
	{ 12, 20000, true },
	{ 13, 3000, true },
};

static uint8_t std_ident[CV_IMG_IDENT_LEN];

static int write_std(int fd, int level)
{
	struct cv_img_w *w;
	uint8_t *p;
	int i, ret;

	for (i = 0; i < CV_IMG_IDENT_LEN; i++)
		std_ident[i] = (uint8_t)(i * 3 + 1);
	ret = cv_img_w_open(&w, fd, level);
	if (ret)
		return ret;
	for (i = 0; i < STD_N && !ret; i++) {
		p = xmalloc(std_secs[i].len);
		fill(p, std_secs[i].len, (uint64_t)i, std_secs[i].compressible);
		ret = cv_img_w_add(w, std_secs[i].type, 100u + (uint64_t)i, p,
				   std_secs[i].len);
		free(p);
	}
	if (!ret)
		ret = cv_img_w_finish(w, std_ident);
	cv_img_w_free(w);
	return ret;
}

/* Reads every section of r and compares it with what write_std wrote. */
static bool check_std_content(struct cv_img_r *r, char *err)
{
	uint8_t *got, *want;
	bool ok = true;
	uint32_t i;

	for (i = 0; i < STD_N && ok; i++) {
		want = xmalloc(std_secs[i].len);
		got = xmalloc(std_secs[i].len);
		fill(want, std_secs[i].len, i, std_secs[i].compressible);
		ok = !cv_img_r_read(r, i, got, std_secs[i].len, err, ERRLEN) &&
		     !memcmp(got, want, std_secs[i].len);
		free(want);
		free(got);
	}
	return ok;
}

/* ---- round trips ---- */

static void test_roundtrip_std(int level)
{
	char err[ERRLEN] = "";
	const struct cv_img_sec *s;
	struct cv_img_info info;
	struct cv_img_r *r;
	uint64_t t0 = now_real_ns(), sum = 0;
	uint8_t small[8];
	uint32_t i;
	int fd = mkfile(), ret;

	CHECK(write_std(fd, level) == 0, "level %d: write 4 sections", level);
	ret = cv_img_peek(fd, &info, err, sizeof(err));
	CHECK(ret == 0 && info.version == CV_IMG_VERSION &&
	      info.nsec == STD_N && info.file_size == fsize(fd),
	      "level %d: peek: %d %s", level, ret, err);
	CHECK(info.created_ns >= t0 && info.created_ns <= now_real_ns(),
	      "level %d: creation time %" PRIu64, level, info.created_ns);
	CHECK(!memcmp(info.ident, std_ident, CV_IMG_IDENT_LEN),
	      "level %d: ident round trip", level);
	ret = cv_img_r_open(&r, fd, err, sizeof(err));
	CHECK(ret == 0, "level %d: open: %s", level, err);
	if (ret) {
		close(fd);
		return;
	}
	CHECK(cv_img_r_count(r) == STD_N &&
	      !memcmp(cv_img_r_info(r), &info, sizeof(info)),
	      "level %d: count and info", level);
	for (i = 0; i < STD_N; i++) {
		s = cv_img_r_sec(r, i);
		sum += s->stored;
		CHECK(s->type == std_secs[i].type && s->aux == 100 + i &&
		      s->raw == std_secs[i].len,
		      "level %d: section %u type %u aux %" PRIu64 " raw %" PRIu64,
		      level, i, s->type, s->aux, s->raw);
		/* compressed exactly when asked to and when it shrinks */
		CHECK(!!(s->flags & CV_IMG_SEC_ZSTD) ==
			      (level && std_secs[i].compressible) &&
		      (s->flags & CV_IMG_SEC_ZSTD ? s->stored < s->raw
						  : s->stored == s->raw),
		      "level %d: section %u flags %u stored %" PRIu64, level, i,
		      s->flags, s->stored);
	}
	CHECK(info.file_size == CV_IMG_HDR_SIZE + sum + STD_N * CV_IMG_ENT_SIZE,
	      "level %d: file size is header + stored + index", level);
	CHECK(check_std_content(r, err), "level %d: content: %s", level, err);
	CHECK(cv_img_r_sec(r, STD_N) == NULL, "no section past the count");
	ret = cv_img_r_read(r, STD_N, small, sizeof(small), err, sizeof(err));
	CHECK(ret == -EINVAL && strstr(err, "no section 4"), "read past: %s",
	      err);
	ret = cv_img_r_read(r, 0, small, sizeof(small), err, sizeof(err));
	CHECK(ret == -ENOBUFS && strstr(err, "holds 1000 bytes"),
	      "small buffer: %s", err);
	ret = cv_img_r_read(r, 1, NULL, 0, NULL, 0);
	CHECK(ret == 0, "empty section into no buffer, err NULL: %d", ret);
	cv_img_r_close(r);
	close(fd);
}

static void test_sec_max(int level)
{
	char err[ERRLEN] = "";
	struct cv_img_w *w;
	struct cv_img_r *r = NULL;
	const struct cv_img_sec *s;
	uint8_t *p = xmalloc(CV_IMG_SEC_MAX + 1);
	uint8_t *q = xmalloc(CV_IMG_SEC_MAX);
	int fd = mkfile(), ret;

	/* random at level 0 (stored raw), compressible with zstd */
	fill(p, CV_IMG_SEC_MAX + 1, 77, level > 0);
	ret = cv_img_w_open(&w, fd, level);
	CHECK(ret == 0, "level %d: open", level);
	CHECK(cv_img_w_add(w, 1, 0, p, CV_IMG_SEC_MAX + 1) == -EINVAL,
	      "level %d: CV_IMG_SEC_MAX + 1 bytes refused", level);
	CHECK(cv_img_w_add(w, 1, 0, p, CV_IMG_SEC_MAX) == 0,
	      "level %d: CV_IMG_SEC_MAX bytes added", level);
	CHECK(cv_img_w_bytes(w) == fsize(fd) - CV_IMG_HDR_SIZE,
	      "level %d: %" PRIu64 " bytes written", level, cv_img_w_bytes(w));
	CHECK(cv_img_w_finish(w, NULL) == 0, "level %d: finish", level);
	CHECK(cv_img_w_finish(w, NULL) == -EINVAL, "a second finish refused");
	CHECK(cv_img_w_add(w, 1, 0, p, 1) == -EINVAL, "add after finish");
	cv_img_w_free(w);
	ret = cv_img_r_open(&r, fd, err, sizeof(err));
	CHECK(ret == 0, "level %d: reopen: %s", level, err);
	if (!ret) {
		s = cv_img_r_sec(r, 0);
		CHECK(s->raw == CV_IMG_SEC_MAX &&
		      (level ? s->stored < s->raw / 10 : s->stored == s->raw),
		      "level %d: stored %" PRIu64, level, s->stored);
		ret = cv_img_r_read(r, 0, q, CV_IMG_SEC_MAX, err, sizeof(err));
		CHECK(ret == 0 && !memcmp(p, q, CV_IMG_SEC_MAX),
		      "level %d: 64 MiB back: %s", level, ret ? err : "same");
	}
	cv_img_r_close(r);
	close(fd);
	free(p);
	free(q);
}

/* ---- 4 writer threads, then 4 reader threads ---- */

#define TH_N 4
#define TH_SECS 150

struct th {
	pthread_t t;
	int id;
	struct cv_img_w *w;
	struct cv_img_r *r;
	int bad; /* failures seen by the thread */
	char err[ERRLEN];
};

static size_t th_len(int t, int k)
{
	return (size_t)((t * 7919 + k * 104729) % 20000) * (k % 5 != 0);
}

static void *th_writer(void *arg)
{
	struct th *a = arg;
	uint8_t *p = xmalloc(20000);
	uint64_t aux;
	size_t n;
	int k;

	for (k = 0; k < TH_SECS; k++) {
		n = th_len(a->id, k);
		aux = (uint64_t)a->id << 32 | (uint64_t)k;
		fill(p, n, aux, k % 2);
		if (cv_img_w_add(a->w, (uint32_t)a->id, aux, p, n))
			a->bad++;
	}
	free(p);
	return NULL;
}

/* Reader thread a->id checks every section i with i % TH_N == id. */
static void *th_reader(void *arg)
{
	struct th *a = arg;
	uint8_t *p = xmalloc(20000), *q = xmalloc(20000);
	const struct cv_img_sec *s;
	uint32_t i, t, k;

	for (i = (uint32_t)a->id; i < cv_img_r_count(a->r); i += TH_N) {
		s = cv_img_r_sec(a->r, i);
		t = (uint32_t)(s->aux >> 32);
		k = (uint32_t)s->aux;
		if (t != s->type || t >= TH_N || k >= TH_SECS ||
		    s->raw != th_len((int)t, (int)k) ||
		    cv_img_r_read(a->r, i, q, 20000, a->err, ERRLEN)) {
			a->bad++;
			continue;
		}
		fill(p, s->raw, s->aux, k % 2);
		a->bad += !!memcmp(p, q, s->raw);
	}
	free(p);
	free(q);
	return NULL;
}

static void test_threads(void)
{
	static uint8_t seen[TH_N][TH_SECS];
	char err[ERRLEN] = "";
	struct th th[TH_N];
	struct cv_img_w *w;
	struct cv_img_r *r;
	uint64_t stored = 0;
	uint32_t i;
	int fd = mkfile(), t, bad = 0, dup = 0, zstd = 0;

	if (cv_img_w_open(&w, fd, 3))
		bail("cv_img_w_open");
	for (t = 0; t < TH_N; t++) {
		th[t] = (struct th){ .id = t, .w = w };
		if (pthread_create(&th[t].t, NULL, th_writer, &th[t]))
			bail("pthread_create");
	}
	for (t = 0; t < TH_N; t++) {
		pthread_join(th[t].t, NULL);
		bad += th[t].bad;
	}
	CHECK(bad == 0, "4 threads added %d sections each", TH_SECS);
	CHECK(cv_img_w_finish(w, std_ident) == 0, "finish after threads");
	cv_img_w_free(w);
	CHECK(cv_img_r_open(&r, fd, err, sizeof(err)) == 0, "open: %s", err);
	CHECK(cv_img_r_count(r) == TH_N * TH_SECS, "%u sections",
	      cv_img_r_count(r));
	for (i = 0; i < cv_img_r_count(r); i++) {
		const struct cv_img_sec *s = cv_img_r_sec(r, i);
		uint32_t st = s->type, k = (uint32_t)s->aux;

		if (st < TH_N && k < TH_SECS)
			dup += seen[st][k]++ != 0;
		stored += s->stored;
		zstd += !!(s->flags & CV_IMG_SEC_ZSTD);
	}
	CHECK(dup == 0, "every section once, in reservation order");
	CHECK(zstd > TH_N * TH_SECS / 4 && zstd < TH_N * TH_SECS,
	      "%d of the sections compressed", zstd);
	CHECK(fsize(fd) == CV_IMG_HDR_SIZE + stored +
				   (uint64_t)TH_N * TH_SECS * CV_IMG_ENT_SIZE,
	      "no gaps between sections");
	for (t = 0; t < TH_N; t++) {
		th[t] = (struct th){ .id = t, .r = r };
		if (pthread_create(&th[t].t, NULL, th_reader, &th[t]))
			bail("pthread_create");
	}
	for (bad = 0, t = 0; t < TH_N; t++) {
		pthread_join(th[t].t, NULL);
		bad += th[t].bad;
		if (th[t].bad)
			printf("# reader %d: %s\n", t, th[t].err);
	}
	CHECK(bad == 0, "4 reader threads: every section's content right");
	cv_img_r_close(r);
	close(fd);
}

/* ---- the mapped window (cv_img_w_expect) ---- */

#define MAP_SEC (8u << 20)
#define MAP_NSEC 10u

struct mth {
	pthread_t t;
	struct cv_img_w *w;
	uint32_t first, bad;
};

static void *map_writer(void *arg)
{
	struct mth *a = arg;
	uint8_t *p = xmalloc(MAP_SEC);
	uint32_t k;

	for (k = a->first; k < MAP_NSEC; k += 2) {
		fill(p, MAP_SEC, k, 0);
		a->bad += !!cv_img_w_add(a->w, 4, k, p, MAP_SEC);
	}
	free(p);
	return NULL;
}

/* Sections of MAP_NSEC x 8 MiB from 2 threads, after announcing `expect`
 * bytes: more than they take (the file is cut to size), or fewer (the
 * rest go through pwrite). */
static void test_mapped(uint64_t expect)
{
	char err[ERRLEN] = "";
	struct mth th[2];
	struct cv_img_w *w;
	struct cv_img_r *r;
	uint8_t *p = xmalloc(MAP_SEC), *q = xmalloc(MAP_SEC);
	uint32_t i, bad = 0;
	uint64_t stored = 0;
	int fd = mkfile(), t;

	if (cv_img_w_open(&w, fd, 0))
		bail("cv_img_w_open");
	CHECK(cv_img_w_add(w, 1, 0, "meta", 4) == 0, "small section first");
	CHECK(cv_img_w_expect(w, expect) == 0, "expect %llu MiB",
	      (unsigned long long)(expect >> 20));
	for (t = 0; t < 2; t++) {
		th[t] = (struct mth){ .w = w, .first = (uint32_t)t };
		if (pthread_create(&th[t].t, NULL, map_writer, &th[t]))
			bail("pthread_create");
	}
	for (t = 0; t < 2; t++) {
		pthread_join(th[t].t, NULL);
		bad += th[t].bad;
	}
	CHECK(bad == 0, "2 threads added %u sections of 8 MiB", MAP_NSEC);
	CHECK(cv_img_w_finish(w, std_ident) == 0, "finish");
	cv_img_w_free(w);
	CHECK(cv_img_r_open(&r, fd, err, sizeof(err)) == 0, "open: %s", err);
	CHECK(cv_img_r_count(r) == MAP_NSEC + 1, "%u sections",
	      cv_img_r_count(r));
	for (i = 0; i < cv_img_r_count(r); i++)
		stored += cv_img_r_sec(r, i)->stored;
	CHECK(fsize(fd) == CV_IMG_HDR_SIZE + stored +
				   (MAP_NSEC + 1) * CV_IMG_ENT_SIZE,
	      "file cut to its content (%llu bytes)",
	      (unsigned long long)fsize(fd));
	for (bad = 0, i = 1; i < cv_img_r_count(r); i++) {
		const struct cv_img_sec *s = cv_img_r_sec(r, i);

		fill(p, MAP_SEC, s->aux, 0);
		bad += s->raw != MAP_SEC ||
		       cv_img_r_read(r, i, q, MAP_SEC, err, ERRLEN) ||
		       memcmp(p, q, MAP_SEC);
	}
	CHECK(bad == 0, "every section read back right");
	cv_img_r_close(r);
	close(fd);

	/* No room to reserve: the error is sticky, nothing is written. */
	fd = memfd_create("test_image", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || cv_img_w_open(&w, fd, 0))
		bail("cv_img_w_open");
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_GROW) < 0)
		bail("F_ADD_SEALS");
	CHECK(cv_img_w_expect(w, expect) == -EPERM, "a file that cannot "
	      "grow fails at expect");
	CHECK(cv_img_w_add(w, 4, 0, p, MAP_SEC) == -EPERM, "then add fails");
	CHECK(cv_img_w_finish(w, std_ident) == -EPERM, "and finish");
	cv_img_w_free(w);
	close(fd);
	free(p);
	free(q);
}

/* ---- refusals ---- */

/* r_open must fail with want and a message that holds sub. */
static void refused(int fd, int want, const char *sub, const char *what)
{
	char err[ERRLEN] = "";
	struct cv_img_r *r = (void *)1;
	int ret = cv_img_r_open(&r, fd, err, sizeof(err));

	CHECK(ret == want && strstr(err, sub) && r == NULL,
	      "%s: %d \"%s\"", what, ret, err);
}

/* A standard image, uncompressed (level 0) or not. */
static int std_file(int level)
{
	int fd = mkfile();

	if (write_std(fd, level))
		bail("write_std");
	return fd;
}

static void test_empty_and_short(void)
{
	char want[ERRLEN];
	uint64_t size;
	int fd = mkfile(), p[2];
	struct cv_img_info info;
	struct cv_img_w *w;

	refused(fd, -EINVAL, "empty file (0 bytes)", "empty file");
	close(fd);

	fd = std_file(1);
	size = fsize(fd);
	if (ftruncate(fd, 100))
		bail("ftruncate");
	refused(fd, -EINVAL,
		"truncated: file has 100 bytes, less than the 192-byte header",
		"cut inside the header");
	close(fd);

	fd = std_file(1);
	if (ftruncate(fd, 5))
		bail("ftruncate");
	refused(fd, -EINVAL,
		"truncated: file has 5 bytes, less than the 192-byte header",
		"cut inside the magic");
	close(fd);

	fd = std_file(1);
	if (ftruncate(fd, 1000))
		bail("ftruncate");
	snprintf(want, sizeof(want),
		 "truncated: header says %" PRIu64 " bytes, file has 1000", size);
	refused(fd, -EINVAL, want, "cut inside the payloads");
	close(fd);

	fd = std_file(1);
	if (ftruncate(fd, (off_t)size - 10))
		bail("ftruncate");
	snprintf(want, sizeof(want),
		 "truncated: header says %" PRIu64 " bytes, file has %" PRIu64,
		 size, size - 10);
	refused(fd, -EINVAL, want, "cut inside the index");
	close(fd);

	fd = std_file(1);
	if (ftruncate(fd, (off_t)size + 1))
		bail("ftruncate");
	refused(fd, -EINVAL, "data after the end of the image",
		"one byte too many");
	close(fd);

	/* A writer that never finished: the header is a hole of zeros. */
	fd = mkfile();
	if (cv_img_w_open(&w, fd, 0) || cv_img_w_add(w, 1, 2, "abc", 3))
		bail("writer");
	cv_img_w_free(w);
	refused(fd, -EINVAL, "header is all zeros", "writer did not finish");
	close(fd);

	/* Starting to write over an image takes the old header away. */
	fd = std_file(0);
	if (cv_img_w_open(&w, fd, 0))
		bail("writer");
	CHECK(cv_img_peek(fd, &info, want, sizeof(want)) == -EINVAL &&
	      strstr(want, "empty file"), "rewrite: old image gone: %s", want);
	cv_img_w_free(w);
	close(fd);

	if (pipe(p))
		bail("pipe");
	CHECK(cv_img_peek(p[0], &info, want, sizeof(want)) == -EINVAL &&
	      strstr(want, "not a regular file"), "pipe: %s", want);
	close(p[0]);
	close(p[1]);
}

static void test_magic(void)
{
	static uint8_t b[32768];
	size_t n;
	int fd = std_file(0), fd2;

	put_at(fd, "X", 1, 1);
	refused(fd, -EINVAL, "not a cuvisor image (bad magic)", "bad magic");
	close(fd);

	fd = mkfile();
	put_at(fd, "#!/bin/sh\necho hello\n", 21, 0);
	refused(fd, -EINVAL, "not a cuvisor image (bad magic)", "a script");
	close(fd);

	/* As a CRLF -> LF conversion leaves it: "\r\n" became "\n". */
	fd = std_file(0);
	n = (size_t)fsize(fd);
	if (n > sizeof(b))
		bail("std image too large");
	get_at(fd, b, n, 0);
	memmove(b + 4, b + 5, n - 5);
	fd2 = mkfile();
	put_at(fd2, b, n - 1, 0);
	refused(fd2, -EINVAL, "copied as text", "text-mode mangling");
	close(fd);
	close(fd2);
}

/* The header and index as they are on disk (little-endian host). */
struct raw_img {
	struct cv_img_hdr h;
	struct cv_img_ent e[STD_N];
};

static void raw_load(int fd, struct raw_img *m)
{
	get_at(fd, &m->h, sizeof(m->h), 0);
	if (m->h.nsec != STD_N)
		bail("not a standard image");
	get_at(fd, m->e, sizeof(m->e), m->h.index_off);
}

/* Writes m back with both checksums fixed, so that only what the test
 * changed is wrong. */
static void raw_store(int fd, struct raw_img *m)
{
	cv_hash128(m->e, sizeof(m->e), m->h.index_hash);
	cv_hash128(&m->h, offsetof(struct cv_img_hdr, hdr_hash),
		   m->h.hdr_hash);
	put_at(fd, m->e, sizeof(m->e), m->h.index_off);
	put_at(fd, &m->h, sizeof(m->h), 0);
}

static void flip(int fd, uint64_t off)
{
	uint8_t c;

	get_at(fd, &c, 1, off);
	c ^= 0x20;
	put_at(fd, &c, 1, off);
}

static void test_flips(void)
{
	char err[ERRLEN] = "";
	struct cv_img_r *r;
	struct raw_img m;
	uint8_t buf[1000];
	int fd = std_file(1), ret;

	flip(fd, offsetof(struct cv_img_hdr, ident) + 5);
	refused(fd, -EBADMSG, "header checksum mismatch (corrupted)",
		"flipped ident byte");
	close(fd);

	fd = std_file(1);
	flip(fd, offsetof(struct cv_img_hdr, index_off));
	refused(fd, -EBADMSG, "header checksum mismatch (corrupted)",
		"flipped index offset");
	close(fd);

	fd = std_file(1);
	raw_load(fd, &m);
	flip(fd, m.h.index_off + CV_IMG_ENT_SIZE + 20);
	refused(fd, -EBADMSG, "index checksum mismatch (corrupted)",
		"flipped index byte");
	close(fd);

	/* A payload byte: open succeeds, only that section fails. */
	fd = std_file(1);
	raw_load(fd, &m);
	flip(fd, m.e[3].off + m.e[3].stored / 2);
	ret = cv_img_r_open(&r, fd, err, sizeof(err));
	CHECK(ret == 0, "open with a flipped payload byte: %s", err);
	if (ret)
		return;
	{
		uint8_t *big = xmalloc(std_secs[3].len);

		ret = cv_img_r_read(r, 3, big, std_secs[3].len, err,
				    sizeof(err));
		free(big);
	}
	CHECK(ret == -EBADMSG &&
	      strstr(err, "section 3 (type 13) checksum mismatch (corrupted)"),
	      "flipped payload byte: %d %s", ret, err);
	ret = cv_img_r_read(r, 0, buf, sizeof(buf), err, sizeof(err));
	CHECK(ret == 0, "the other sections still read: %s", err);
	/* The file shrinks after open. */
	if (ftruncate(fd, (off_t)m.e[0].off + 10))
		bail("ftruncate");
	ret = cv_img_r_read(r, 0, buf, sizeof(buf), err, sizeof(err));
	CHECK(ret == -EIO && strstr(err, "section 0 (type 10): unexpected end"),
	      "truncated after open: %s", err);
	cv_img_r_close(r);
	close(fd);
}

static void test_header_fields(void)
{
	struct raw_img m;
	int fd = std_file(1);

	raw_load(fd, &m);
	m.h.version = 2;
	raw_store(fd, &m);
	refused(fd, -EINVAL,
		"image format version 2; this cuvisor reads version 1",
		"foreign version");
	close(fd);

	fd = std_file(1);
	raw_load(fd, &m);
	m.h.hdr_size = 256;
	raw_store(fd, &m);
	refused(fd, -EINVAL, "header size 256; version 1 headers are 192 bytes",
		"header size");
	close(fd);

	fd = std_file(1);
	raw_load(fd, &m);
	m.h.flags = 4;
	raw_store(fd, &m);
	refused(fd, -EINVAL, "unknown header flags 0x4", "header flags");
	close(fd);

	fd = std_file(1);
	raw_load(fd, &m);
	m.h.reserved[3] = 1;
	raw_store(fd, &m);
	refused(fd, -EINVAL, "reserved header byte at offset 139 is not zero",
		"reserved header byte");
	close(fd);

	fd = std_file(1);
	raw_load(fd, &m);
	m.h.nsec = CV_IMG_NSEC_MAX + 1;
	raw_store(fd, &m);
	refused(fd, -EINVAL, "4194305 sections, more than the limit of 4194304",
		"section count");
	close(fd);

	fd = std_file(1);
	raw_load(fd, &m);
	m.h.nsec = STD_N - 1;
	raw_store(fd, &m);
	refused(fd, -EINVAL, "index is 256 bytes for 3 sections; expected 192",
		"index length for the count");
	close(fd);

	fd = std_file(1);
	raw_load(fd, &m);
	m.h.index_off -= 1;
	raw_store(fd, &m);
	refused(fd, -EINVAL, "does not lie between the header and the end",
		"index not at the end");
	close(fd);
}

/* Standard images with one index entry made wrong and both checksums
 * fixed up: open (or, for sizes only zstd can tell, read) must refuse
 * them, naming the section and what is wrong with it. */
static void test_index_entries(void)
{
	char err[ERRLEN] = "";
	struct raw_img m;
	struct cv_img_r *r;
	uint8_t *buf = xmalloc(40000);
	int fd, ret;

	fd = std_file(0);
	raw_load(fd, &m);
	m.e[1].off = m.h.index_off;
	m.e[1].stored = m.e[1].raw = 1;
	raw_store(fd, &m);
	refused(fd, -EINVAL, "section 1 (type 11) lies outside the file",
		"section reaching into the index");
	close(fd);

	fd = std_file(0);
	raw_load(fd, &m);
	m.e[0].off = 100;
	raw_store(fd, &m);
	refused(fd, -EINVAL, "section 0 (type 10) lies outside the file",
		"section inside the header");
	close(fd);

	fd = std_file(0);
	raw_load(fd, &m);
	m.e[2].off = UINT64_MAX - 10;
	raw_store(fd, &m);
	refused(fd, -EINVAL, "section 2 (type 12) lies outside the file",
		"section offset that wraps");
	close(fd);

	fd = std_file(0);
	raw_load(fd, &m);
	m.e[3].off = m.e[2].off + 5;
	raw_store(fd, &m);
	refused(fd, -EINVAL, "section 3 (type 13, offset", "overlap");
	refused(fd, -EINVAL, "overlaps section 2", "overlap names both");
	close(fd);

	fd = std_file(0);
	raw_load(fd, &m);
	m.e[0].raw = m.e[0].stored = CV_IMG_SEC_MAX + 1;
	raw_store(fd, &m);
	refused(fd, -EINVAL, "section 0 (type 10) holds 67108865 bytes, more than the limit",
		"oversized raw length");
	close(fd);

	fd = std_file(0);
	raw_load(fd, &m);
	m.e[0].raw = 999;
	raw_store(fd, &m);
	refused(fd, -EINVAL, "stored uncompressed in 1000 bytes but holds 999",
		"uncompressed stored != raw");
	close(fd);

	fd = std_file(0);
	raw_load(fd, &m);
	m.e[1].flags = CV_IMG_SEC_ZSTD;
	m.e[1].stored = 100; /* raw 0: zstd never needs 100 bytes */
	m.e[2].off += 100;
	m.e[2].stored -= 100;
	m.e[2].raw -= 100;
	raw_store(fd, &m);
	refused(fd, -EINVAL, "section 1 (type 11): 100 compressed bytes for 0",
		"compressed larger than zstd's bound");
	close(fd);

	fd = std_file(0);
	raw_load(fd, &m);
	m.e[2].flags = 0x10;
	raw_store(fd, &m);
	refused(fd, -EINVAL, "section 2 (type 12) has unknown flags 0x10",
		"unknown section flags");
	close(fd);

	fd = std_file(0);
	raw_load(fd, &m);
	m.e[2].reserved = 1;
	raw_store(fd, &m);
	refused(fd, -EINVAL, "section 2 (type 12): reserved bytes are not zero",
		"reserved entry bytes");
	close(fd);

	/* Compressed section 2, with raw lengths that lie. */
	fd = std_file(1);
	raw_load(fd, &m);
	m.e[2].raw += 20;
	raw_store(fd, &m);
	ret = cv_img_r_open(&r, fd, err, sizeof(err));
	CHECK(ret == 0, "raw + 20: open: %s", err);
	if (!ret) {
		ret = cv_img_r_read(r, 2, buf, 40000, err, sizeof(err));
		CHECK(ret == -EBADMSG &&
		      strstr(err, "section 2 (type 12) decompresses to 20000 bytes, expected 20020"),
		      "decompresses short: %s", err);
		cv_img_r_close(r);
	}
	close(fd);

	fd = std_file(1);
	raw_load(fd, &m);
	m.e[2].raw -= 20;
	raw_store(fd, &m);
	ret = cv_img_r_open(&r, fd, err, sizeof(err));
	CHECK(ret == 0, "raw - 20: open: %s", err);
	if (!ret) {
		ret = cv_img_r_read(r, 2, buf, 40000, err, sizeof(err));
		CHECK(ret == -EBADMSG &&
		      strstr(err, "section 2 (type 12) decompresses to more than 19980 bytes"),
		      "decompresses long: %s", err);
		cv_img_r_close(r);
	}
	close(fd);

	/* Raw bytes that say they are zstd. */
	fd = std_file(0);
	raw_load(fd, &m);
	m.e[0].flags = CV_IMG_SEC_ZSTD;
	raw_store(fd, &m);
	ret = cv_img_r_open(&r, fd, err, sizeof(err));
	CHECK(ret == 0, "not zstd: open: %s", err);
	if (!ret) {
		ret = cv_img_r_read(r, 0, buf, 40000, err, sizeof(err));
		CHECK(ret == -EBADMSG &&
		      strstr(err, "section 0 (type 10) does not decompress (zstd: "),
		      "not zstd: %s", err);
		cv_img_r_close(r);
	}
	close(fd);
	free(buf);
}

static void test_writer_errors(void)
{
	struct cv_img_w *w;
	uint8_t data[4096];
	int fd, ret;

	fill(data, sizeof(data), 5, false);
	fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		printf("# no /dev/full: skipping the full-disk checks\n");
	} else {
		ret = cv_img_w_open(&w, fd, 0);
		CHECK(ret == 0, "open on /dev/full: %d", ret);
		ret = cv_img_w_add(w, 1, 0, data, sizeof(data));
		CHECK(ret == -ENOSPC, "add to a full disk: %d", ret);
		ret = cv_img_w_add(w, 1, 0, data, 10);
		CHECK(ret == -ENOSPC, "the error is sticky: %d", ret);
		ret = cv_img_w_finish(w, NULL);
		CHECK(ret == -ENOSPC, "finish returns it: %d", ret);
		CHECK(cv_img_w_bytes(w) == 0, "no bytes counted");
		cv_img_w_free(w);

		ret = cv_img_w_open(&w, fd, 5);
		CHECK(ret == 0, "open on /dev/full again");
		ret = cv_img_w_finish(w, NULL);
		CHECK(ret == -ENOSPC, "finish alone (index, header): %d", ret);
		cv_img_w_free(w);
		close(fd);
	}

	fd = mkfile();
	CHECK(cv_img_w_open(&w, fd, 20) == -EINVAL && !w, "level 20 refused");
	CHECK(cv_img_w_open(&w, fd, -1) == -EINVAL, "level -1 refused");
	CHECK(cv_img_w_open(&w, fd, 0) == 0, "level 0");
	CHECK(cv_img_w_add(w, 1, 0, NULL, 1) == -EINVAL, "NULL data refused");
	CHECK(cv_img_w_add(w, 1, 0, NULL, 0) == 0, "NULL data of 0 bytes");
	cv_img_w_free(w);
	cv_img_w_free(NULL);
	cv_img_r_close(NULL);
	close(fd);

	fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		CHECK(cv_img_w_open(&w, fd, 0) == -EINVAL,
		      "a read-only fd refused");
		close(fd);
	}
	fd = memfd_create("append", MFD_CLOEXEC);
	if (fd < 0 || fcntl(fd, F_SETFL, O_APPEND) < 0)
		bail("O_APPEND memfd");
	CHECK(cv_img_w_open(&w, fd, 0) == -EINVAL, "an O_APPEND fd refused");
	close(fd);
}

/* An image of no section, and messages cut to a small err. */
static void test_small_things(void)
{
	char err[16];
	struct cv_img_w *w;
	struct cv_img_r *r;
	int fd = mkfile(), ret;

	CHECK(cv_img_w_open(&w, fd, 1) == 0 && cv_img_w_finish(w, NULL) == 0,
	      "an image without sections");
	cv_img_w_free(w);
	ret = cv_img_r_open(&r, fd, err, sizeof(err));
	CHECK(ret == 0 && cv_img_r_count(r) == 0 &&
	      fsize(fd) == CV_IMG_HDR_SIZE, "opens, 0 sections, 192 bytes");
	cv_img_r_close(r);
	if (ftruncate(fd, 0))
		bail("ftruncate");
	ret = cv_img_r_open(&r, fd, err, sizeof(err));
	CHECK(ret == -EINVAL && strlen(err) == sizeof(err) - 1,
	      "message cut to errlen: \"%s\"", err);
	ret = cv_img_r_open(&r, fd, NULL, 0);
	CHECK(ret == -EINVAL, "err may be NULL");
	close(fd);
}

/* ---- byte buffers ---- */

static void test_buf(void)
{
	static const uint8_t le[] = { 0x78, 0x56, 0x34, 0x12, 0xef, 0xcd, 0xab,
				      0x89, 0x67, 0x45, 0x23, 0x01 };
	char s[8];
	struct cv_wbuf w;
	struct cv_rbuf r;
	uint8_t nul[] = { 3, 0, 0, 0, 'a', 0, 'b' };
	uint8_t huge[] = { 0xff, 0xff, 0xff, 0xff, 'a' };
	int i;

	cv_wbuf_init(&w);
	cv_wbuf_u32(&w, 0x12345678);
	cv_wbuf_u64(&w, 0x0123456789abcdefull);
	CHECK(w.len == 12 && !memcmp(w.p, le, 12), "wbuf: little-endian");
	cv_wbuf_str(&w, "hello");
	cv_wbuf_str(&w, "");
	for (i = 0; i < 1000; i++)
		cv_wbuf_u64(&w, (uint64_t)i);
	CHECK(w.err == 0 && w.len == 12 + 9 + 4 + 8000 && w.cap >= w.len,
	      "wbuf: grows (%zu bytes)", w.len);

	cv_rbuf_init(&r, w.p, w.len);
	CHECK(cv_rbuf_u32(&r) == 0x12345678 &&
	      cv_rbuf_u64(&r) == 0x0123456789abcdefull, "rbuf: numbers");
	CHECK(cv_rbuf_str(&r, s, 5) && !strcmp(s, "hello"), "rbuf: string");
	CHECK(cv_rbuf_str(&r, s, 5) && !strcmp(s, ""), "rbuf: empty string");
	for (i = 0; i < 1000 && cv_rbuf_u64(&r) == (uint64_t)i; i++)
		;
	CHECK(i == 1000 && !r.bad && cv_rbuf_left(&r) == 0, "rbuf: to the end");
	CHECK(cv_rbuf_get(&r, 0) != NULL && !r.bad, "rbuf: 0 bytes at the end");
	CHECK(cv_rbuf_u32(&r) == 0 && r.bad, "rbuf: overrun gives 0, bad");
	CHECK(cv_rbuf_get(&r, 0) == NULL, "rbuf: bad is sticky");

	cv_rbuf_init(&r, le, 3);
	CHECK(cv_rbuf_u32(&r) == 0 && r.bad, "rbuf: u32 from 3 bytes");
	cv_rbuf_init(&r, le, 12);
	CHECK(cv_rbuf_u64(&r) && cv_rbuf_u64(&r) == 0 && r.bad,
	      "rbuf: u64 past the end");
	cv_rbuf_init(&r, le, 12);
	CHECK(cv_rbuf_get(&r, 13) == NULL && r.bad && cv_rbuf_u32(&r) == 0,
	      "rbuf: get past the end; later reads fail too");
	cv_rbuf_init(&r, le, 12);
	CHECK(cv_rbuf_get(&r, SIZE_MAX) == NULL && r.bad, "rbuf: get(SIZE_MAX)");
	cv_rbuf_init(&r, NULL, 0);
	CHECK(cv_rbuf_get(&r, 0) != NULL && cv_rbuf_get(&r, 1) == NULL,
	      "rbuf: empty buffer");

	/* strings: too long for max, embedded NUL, length past the end */
	cv_rbuf_init(&r, w.p + 12, 9);
	strcpy(s, "x");
	CHECK(!cv_rbuf_str(&r, s, 4) && r.bad && s[0] == 0,
	      "rbuf: string longer than max");
	cv_rbuf_init(&r, nul, sizeof(nul));
	CHECK(!cv_rbuf_str(&r, s, 7) && r.bad, "rbuf: string with a NUL");
	cv_rbuf_init(&r, huge, sizeof(huge));
	CHECK(!cv_rbuf_str(&r, s, SIZE_MAX - 1) && r.bad,
	      "rbuf: length past the end");
	cv_wbuf_free(&w);
	CHECK(w.p == NULL && w.len == 0, "wbuf: freed");
}

/* ---- seeds for fuzz/fuzz_image.c ---- */

/* A small image for the fuzzer: nsec sections of a few hundred bytes at
 * most, every other one compressible. */
static void seed_image(int fd, int level, int nsec)
{
	struct cv_img_w *w;
	uint8_t p[600];
	size_t n;
	int i;

	if (cv_img_w_open(&w, fd, level))
		bail("cv_img_w_open");
	for (i = 0; i < nsec; i++) {
		n = (size_t)(i * 137 % 600) * (i % 4 != 1);
		fill(p, n, (uint64_t)i, i % 2 == 0);
		if (cv_img_w_add(w, (uint32_t)i % 3, (uint64_t)i << 20, p, n))
			bail("cv_img_w_add");
	}
	if (cv_img_w_finish(w, std_ident))
		bail("cv_img_w_finish");
	cv_img_w_free(w);
}

/* Writes "mode byte + image" files into dir: mode 1 asks the harness to
 * fix the checksums up, so that mutations reach the index and zstd. */
static int write_seeds(const char *dir)
{
	/* zstd level, number of sections */
	static const int shapes[][2] = {
		{ 0, 4 }, { 3, 4 }, { 3, 20 }, { 1, 0 },
	};
	char path[4096];
	uint8_t *b;
	size_t n, k;
	FILE *f;
	int fd;

	for (k = 0; k < 2 * CV_ARRAY_SIZE(shapes); k++) {
		fd = mkfile();
		seed_image(fd, shapes[k / 2][0], shapes[k / 2][1]);
		n = (size_t)fsize(fd);
		b = xmalloc(n + 1);
		b[0] = (uint8_t)(k % 2);
		get_at(fd, b + 1, n, 0);
		snprintf(path, sizeof(path), "%s/image-%zu", dir, k);
		f = fopen(path, "wb");
		if (!f || fwrite(b, 1, n + 1, f) != n + 1 || fclose(f))
			bail(path);
		free(b);
		close(fd);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--seeds"))
		return write_seeds(argv[2]);
	test_buf();
	test_roundtrip_std(0);
	test_roundtrip_std(1);
	test_roundtrip_std(19);
	test_sec_max(0);
	test_sec_max(1);
	test_threads();
	test_mapped(96ull << 20);
	test_mapped(72ull << 20);
	test_empty_and_short();
	test_magic();
	test_flips();
	test_header_fields();
	test_index_entries();
	test_writer_errors();
	test_small_things();
	return unit_done();
}

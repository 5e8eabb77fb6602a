/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the live-migration stream (core/mig.c). The
 * peer's bytes are hostile: whatever they are, the payload decoders and
 * the record reader must not crash, read or write out of bounds, leak
 * memory or fds, or hang, and an error must stay.
 *
 * The first input byte picks the mode, the rest is the input:
 *   bit 0  fix up footers: the harness walks the input as records and
 *          writes the right footer into every whole one, so that the
 *          fuzzer gets past the hash to types, lengths and payloads;
 *   bit 1  an fd rides on the stream's first byte (SCM_RIGHTS);
 *   bit 2  the reader takes fds (room for one), else passes NULL;
 *   bit 3  the reader's cap is 64 bytes, else 64 KiB;
 *   bit 4  the quota for PLAN decoding is 64 MiB, else unlimited.
 * The input goes, as it is, to cv_mig_plan_decode, cv_mig_abort_decode
 * and cv_mig_hello_check; then as a byte stream through a socket pair
 * into cv_mig_recv until it fails, each record's payload to its decoder.
 *
 *   make fuzz-mig-run FUZZ_TIME=60   (seeds: fuzz/seeds.py --mig)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/buf.h"
#include "../core/hash.h"
#include "../core/mig.h"
#include "../core/proto.h"
#include "../core/util.h"

#define WHYLEN 128
#define STREAM_MAX (64u << 10) /* fits a socket's buffer: no writer thread */
#define BIG_CAP (64u << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Writes the right footer into every whole record of b[0..n). */
static void fixup(uint8_t *b, size_t n)
{
	size_t at = 0;
	uint32_t len;

	while (n - at >= CV_MIG_HDR) {
		memcpy(&len, b + at + 4, 4);
		if (len > n - at - CV_MIG_HDR ||
		    CV_MIG_FOOTER > n - at - CV_MIG_HDR - len)
			return;
		cv_hash128(b + at, CV_MIG_HDR + (size_t)len,
			   b + at + CV_MIG_HDR + len);
		at += CV_MIG_HDR + (size_t)len + CV_MIG_FOOTER;
	}
}

static void check_why(int ret, const char *why)
{
	if (ret && (!memchr(why, '\0', WHYLEN) || !why[0]))
		abort();
}

/* A decoded plan keeps every promise of cv_mig_plan_decode. */
static void check_plan(const struct cv_mig_plan *p, uint64_t quota)
{
	uint64_t sum = 0;
	uint32_t i;

	for (i = 0; i < p->nranges; i++) {
		const struct cv_mig_range *g = &p->ranges[i];

		if (!g->size || g->va % CV_GRANULE || g->size % CV_GRANULE ||
		    g->va < CV_WINDOW_ADDR ||
		    g->va + g->size > CV_WINDOW_ADDR + CV_WINDOW_SIZE ||
		    (i && g->va < g[-1].va + g[-1].size) ||
		    !cv_mig_plan_covers(p, g->va, g->size) ||
		    cv_mig_plan_covers(p, g->va, g->size + 1))
			abort();
		if (!g->vmm)
			sum += g->size;
	}
	for (i = 0; i < p->nvmm; i++) {
		if (!p->vmm[i].id || (i && p->vmm[i].id <= p->vmm[i - 1].id))
			abort();
		sum += p->vmm[i].size;
	}
	for (i = 0; i < p->nheap; i++)
		if (p->heap[i].off % CV_PAGE || p->heap[i].len % CV_PAGE ||
		    (i && p->heap[i].off < p->heap[i - 1].off +
		     p->heap[i - 1].len))
			abort();
	if (sum > quota)
		abort();
}

static void decode_plan(const uint8_t *d, size_t n, uint64_t quota)
{
	struct cv_mig_plan p, q;
	char why[WHYLEN] = "";
	struct cv_wbuf b;
	int ret;

	ret = cv_mig_plan_decode(d, n, quota, CV_HEAP_MAX, &p, why,
				 sizeof(why));
	check_why(ret, why);
	if (ret) {
		if (p.ranges || p.vmm || p.heap)
			abort();
		return;
	}
	check_plan(&p, quota);
	/* what was accepted encodes to a plan that is accepted again */
	cv_wbuf_init(&b);
	cv_mig_plan_encode(&p, &b);
	if (b.err || b.len != n ||
	    cv_mig_plan_decode(b.p, b.len, quota, CV_HEAP_MAX, &q, why,
			       sizeof(why)))
		abort();
	cv_mig_plan_free(&q);
	cv_wbuf_free(&b);
	cv_mig_plan_free(&p);
}

static void decode_abort(const uint8_t *d, size_t n)
{
	struct cv_mig_abort a;
	size_t i, len;

	cv_mig_abort_decode(d, n, &a);
	len = strnlen(a.msg, sizeof(a.msg));
	if (len >= sizeof(a.msg) || a.code >= 0 || a.code <= -4096)
		abort();
	for (i = 0; i < len; i++)
		if (a.msg[i] < 0x20 || a.msg[i] > 0x7e)
			abort();
}

static void check_hello(const uint8_t *d, size_t n)
{
	struct cv_mig_hello h;
	char why[WHYLEN] = "";
	int ret;

	if (n < sizeof(h))
		return;
	memcpy(&h, d, sizeof(h));
	ret = cv_mig_hello_check(&h, why, sizeof(why));
	check_why(ret, why);
	if (!ret && (h.magic != CV_MIG_MAGIC || h.nslots > CV_MIG_MAX_SLOTS ||
		     !h.granule || CV_GRANULE % h.granule))
		abort();
}

static void check_share(const uint8_t *d, size_t n, uint64_t quota)
{
	struct cv_mig_share s;
	char why[WHYLEN] = "";
	int ret;

	if (n < sizeof(s))
		return;
	memcpy(&s, d, sizeof(s));
	ret = cv_mig_share_check(&s, quota, why, sizeof(why));
	check_why(ret, why);
	if (!ret && s.kind != CV_MIG_SHARE_RESET &&
	    (!s.size || s.size % CV_GRANULE || s.size > quota ||
	     (s.kind == CV_MIG_SHARE_MEM &&
	      !cv_range_in(s.va, s.size, CV_WINDOW_ADDR, CV_WINDOW_SIZE))))
		abort();
}

/* One received record's payload to whatever decodes its type. */
static void decode_record(uint32_t type, const uint8_t *p, uint32_t len,
			  uint64_t quota)
{
	size_t fixed = cv_mig_fixed_len(type);

	if (type == CV_MIG_PLAN)
		decode_plan(p, len, quota);
	else if (type == CV_MIG_ABORT)
		decode_abort(p, len);
	else if (type == CV_MIG_HELLO && len == fixed)
		check_hello(p, len);
	else if (type == CV_MIG_SHARE && len == fixed)
		check_share(p, len, quota);
}

/* Sends what fits of b[0..n) without blocking (all of it, in a socket's
 * default buffer), an fd on the first byte when asked; closes the end. */
static void feed(int fd, const uint8_t *b, size_t n, int pass)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} cbuf;
	struct iovec iov = { .iov_base = (void *)b, .iov_len = n };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;
	ssize_t k;

	if (pass >= 0 && n) {
		memset(&cbuf, 0, sizeof(cbuf));
		msg.msg_control = cbuf.buf;
		msg.msg_controllen = sizeof(cbuf.buf);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &pass, sizeof(int));
	}
	if (n && fcntl(fd, F_SETFL, O_NONBLOCK) == 0) {
		do
			k = sendmsg(fd, &msg, MSG_NOSIGNAL);
		while (k < 0 && errno == EINTR);
	}
	close(fd);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		abort();
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Receives records from io until an error, each to its decoder; the
 * error, which must be one of the stream's and must stay. */
static void read_all(struct cv_mig_io *io, uint8_t mode, uint64_t quota)
{
	size_t cap = (mode & 8) ? 64 : BIG_CAP;
	int fds[1], nfds, ret;
	uint32_t type, len;
	uint8_t *buf = malloc(cap);

	if (!buf)
		abort();
	for (;;) {
		nfds = 1;
		ret = cv_mig_recv(io, &type, buf, cap, &len,
				  (mode & 4) ? fds : NULL,
				  (mode & 4) ? &nfds : NULL, 1000);
		if (ret)
			break;
		if (!type || type > CV_MIG_TYPE_MAX || len > cap)
			abort();
		if ((mode & 4) && nfds)
			close(fds[0]);
		decode_record(type, buf, len, quota);
	}
	if (ret != -ECONNRESET && ret != -EPIPE && ret != -EBADMSG &&
	    ret != -EPROTO && ret != -EMSGSIZE)
		abort();
	nfds = 1;
	if (cv_mig_recv(io, &type, buf, cap, &len, fds, &nfds, 0) != ret ||
	    nfds)
		abort();
	free(buf);
}

/* b[0..n) through a socket pair into cv_mig_recv; no fd may leak. */
static void stream(const uint8_t *b, size_t n, uint8_t mode, uint64_t quota)
{
	int sv[2], pass = -1, base = count_fds();
	struct cv_mig_io io;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	if (mode & 2)
		pass = open("/dev/null", O_RDONLY | O_CLOEXEC);
	feed(sv[0], b, n, pass);
	if (pass >= 0)
		close(pass);
	cv_mig_io_init(&io, sv[1]);
	read_all(&io, mode, quota);
	close(sv[1]);
	pthread_mutex_destroy(&io.send_lock);
	if (count_fds() != base)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t quota;
	uint8_t mode, *b;

	if (size < 1)
		return 0;
	mode = data[0];
	data++;
	size--;
	quota = (mode & 16) ? 64ull << 20 : UINT64_MAX;
	decode_plan(data, size, quota);
	decode_abort(data, size);
	check_hello(data, size);
	check_share(data, size, quota);
	if (size > STREAM_MAX)
		size = STREAM_MAX;
	b = malloc(size ? size : 1);
	if (!b)
		abort();
	memcpy(b, data, size);
	if (mode & 1)
		fixup(b, size);
	stream(b, size, mode, quota);
	free(b);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * The live-migration stream (see mig.h and docs/migration.md): record
 * framing over a stream socket, with fds and an XXH3-128 footer, and the
 * codecs of the payloads that are not fixed structs.
 *
 * Locking: io->send_lock makes a record's bytes one run on the socket;
 * the footer is computed before taking it, so that threads sending large
 * records hash at once. One thread receives. io->err is shared by both
 * sides and only ever goes from 0 to the first error (a compare and swap);
 * io->fault is taken with an exchange; the byte counters are atomic adds.
 */
#include "mig.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "buf.h"
#include "digest.h"
#include "hash.h"
#include "proto.h"
#include "util.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the migration stream is little-endian; add byte swapping"
#endif

_Static_assert(CV_MIG_FOOTER == CV_HASH_LEN, "footer is an XXH3-128");
_Static_assert(sizeof(struct cv_mig_hello) == 80, "hello size");
_Static_assert(offsetof(struct cv_mig_hello, token) == 16, "hello token");
_Static_assert(offsetof(struct cv_mig_hello, granule) == 56, "hello granule");
_Static_assert(offsetof(struct cv_mig_hello, backend) == 72, "hello backend");
_Static_assert(sizeof(struct cv_mig_welcome) == 8, "welcome size");
_Static_assert(sizeof(struct cv_mig_round) == 16, "round size");
_Static_assert(sizeof(struct cv_mig_granules) == 16, "granules size");
_Static_assert(sizeof(struct cv_mig_slot) == 8, "slot size");
_Static_assert(sizeof(struct cv_mig_state) == 16, "state size");
_Static_assert(sizeof(struct cv_mig_running) == 8, "running size");
_Static_assert(sizeof(struct cv_mig_abort) == 208, "abort size");
_Static_assert(sizeof(struct cv_mig_share) == 24, "share size");
_Static_assert(offsetof(struct cv_mig_abort, msg) == 8, "abort msg");

#define MIG_SEND_FDS 4   /* fds one record may carry */
#define MIG_RECV_FDS 16  /* fds a reader takes from one recvmsg */
#define ERRNO_MAX 4095

/* PLAN wire sizes: the counts, then one entry of each array. */
#define PLAN_HEAD 16u
#define PLAN_RANGE 32u
#define PLAN_VMM 16u
#define PLAN_HEAP 16u

/* ---- sticky error ------------------------------------------------------ */

static int io_err(struct cv_mig_io *io)
{
	return __atomic_load_n(&io->err, __ATOMIC_ACQUIRE);
}

/* Keeps the first error; returns the one that is kept. */
static int io_fail(struct cv_mig_io *io, int err)
{
	int old = 0;

	if (__atomic_compare_exchange_n(&io->err, &old, err, false,
					__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return err;
	return old;
}

void cv_mig_io_init(struct cv_mig_io *io, int fd)
{
	memset(io, 0, sizeof(*io));
	io->fd = fd;
	io->err = fd < 0 ? -EBADF : 0;
	pthread_mutex_init(&io->send_lock, NULL);
}

/* ---- sending ----------------------------------------------------------- */

/* Waits until fd takes more bytes (a non-blocking socket). 0 or -errno. */
static int wait_writable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };

	while (poll(&p, 1, -1) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

/* Drops n sent bytes from the front of msg's iovecs. */
static void iov_advance(struct msghdr *msg, size_t n)
{
	struct iovec *v;

	while (n && msg->msg_iovlen) {
		v = msg->msg_iov;
		if (n < v->iov_len) {
			v->iov_base = (uint8_t *)v->iov_base + n;
			v->iov_len -= n;
			return;
		}
		n -= v->iov_len;
		msg->msg_iov++;
		msg->msg_iovlen--;
	}
}

/* Control buffer for SCM_RIGHTS of up to n fds. */
#define FDBUF(n)                                                         \
	union {                                                          \
		struct cmsghdr align;                                    \
		char buf[CMSG_SPACE(sizeof(int) * (n))];                 \
	}

/* Puts nfds (> 0) fds on msg as SCM_RIGHTS, in buf (room for them). */
static void put_fds(struct msghdr *msg, char *buf, const int *fds, int nfds)
{
	size_t n = sizeof(int) * (size_t)nfds;
	struct cmsghdr *cm;

	memset(buf, 0, CMSG_SPACE(n));
	msg->msg_control = buf;
	msg->msg_controllen = CMSG_SPACE(n);
	cm = CMSG_FIRSTHDR(msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(n);
	memcpy(CMSG_DATA(cm), fds, n);
}

/*
 * Writes every byte of iov[0..niov) (no empty entry), the fds on the
 * first byte. Partial writes and signals resume where they stopped.
 * 0 or -errno.
 */
static int send_all(int fd, struct iovec *iov, size_t niov, const int *fds,
		    int nfds)
{
	FDBUF(MIG_SEND_FDS) cbuf;
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = niov };
	ssize_t n;
	int ret;

	if (nfds)
		put_fds(&msg, cbuf.buf, fds, nfds);
	while (msg.msg_iovlen) {
		n = sendmsg(fd, &msg, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ret = wait_writable(fd);
			if (ret)
				return ret;
			continue;
		}
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		/* The fds went with the first byte. */
		msg.msg_control = NULL;
		msg.msg_controllen = 0;
		iov_advance(&msg, (size_t)n);
	}
	return 0;
}

/* Appends [p, p + n) to iov unless it is empty. */
static void iov_put(struct iovec *iov, size_t *niov, const void *p, size_t n)
{
	if (!n)
		return;
	iov[*niov].iov_base = (void *)p;
	iov[*niov].iov_len = n;
	(*niov)++;
}

/*
 * Lays a record out in iov (5 entries): header, payload, footer. With
 * corrupt set, the first payload byte is sent as *flip with its low bit
 * flipped, or (no payload) the footer's first byte is flipped.
 */
static size_t record_iov(struct iovec *iov, const uint8_t *hdr,
			 const uint8_t *head, size_t hlen, const uint8_t *data,
			 size_t dlen, uint8_t *footer, bool corrupt,
			 uint8_t *flip)
{
	size_t niov = 0;

	iov_put(iov, &niov, hdr, CV_MIG_HDR);
	if (corrupt && hlen) {
		*flip = head[0] ^ 1;
		iov_put(iov, &niov, flip, 1);
		head++;
		hlen--;
	} else if (corrupt && dlen) {
		*flip = data[0] ^ 1;
		iov_put(iov, &niov, flip, 1);
		data++;
		dlen--;
	} else if (corrupt) {
		footer[0] ^= 1;
	}
	iov_put(iov, &niov, head, hlen);
	iov_put(iov, &niov, data, dlen);
	iov_put(iov, &niov, footer, CV_MIG_FOOTER);
	return niov;
}

/* A record's header and footer (len <= CV_MIG_MAX_PAYLOAD). */
static void record_seal(uint8_t *hdr, uint8_t *footer, uint32_t type,
			const void *head, size_t hlen, const void *data,
			size_t dlen)
{
	uint32_t len = (uint32_t)(hlen + dlen);
	struct cv_hash_st h;

	memcpy(hdr, &type, 4);
	memcpy(hdr + 4, &len, 4);
	cv_hash_init(&h);
	cv_hash_update(&h, hdr, CV_MIG_HDR);
	if (hlen)
		cv_hash_update(&h, head, hlen);
	if (dlen)
		cv_hash_update(&h, data, dlen);
	cv_hash_final(&h, footer);
}

int cv_mig_send(struct cv_mig_io *io, uint32_t type, const void *head,
		size_t hlen, const void *data, size_t dlen, const int *fds,
		int nfds)
{
	uint8_t hdr[CV_MIG_HDR], footer[CV_MIG_FOOTER], flip = 0;
	struct iovec iov[5];
	size_t niov;
	bool corrupt;
	int ret;

	ret = io_err(io);
	if (ret)
		return ret;
	if (!type || type > CV_MIG_TYPE_MAX || (hlen && !head) ||
	    (dlen && !data) || nfds < 0 || nfds > MIG_SEND_FDS ||
	    (nfds && !fds))
		return -EINVAL;
	if (hlen > CV_MIG_MAX_PAYLOAD || dlen > CV_MIG_MAX_PAYLOAD - hlen)
		return -EMSGSIZE;
	/* Hashed before the lock: senders of large records hash at once. */
	record_seal(hdr, footer, type, head, hlen, data, dlen);

	pthread_mutex_lock(&io->send_lock);
	ret = io_err(io);
	if (!ret) {
		corrupt = __atomic_exchange_n(&io->fault, CV_MIG_FAULT_NONE,
					      __ATOMIC_ACQ_REL) ==
			  CV_MIG_FAULT_CORRUPT;
		niov = record_iov(iov, hdr, head, hlen, data, dlen, footer,
				  corrupt, &flip);
		ret = send_all(io->fd, iov, niov, fds, nfds);
		if (ret)
			ret = io_fail(io, ret);
		else
			__atomic_fetch_add(&io->sent, CV_MIG_HDR + hlen + dlen +
					   CV_MIG_FOOTER, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&io->send_lock);
	return ret;
}

/* ---- receiving --------------------------------------------------------- */

/*
 * One record being read: the fds that came with it so far, the wait.
 * timeout_ms bounds each of the record's three parts (header, payload,
 * footer) on its own, from the moment the part is begun.
 */
struct rx {
	int fd;
	int timeout_ms;
	int cap;                /* fds the caller takes */
	int n;                  /* fds kept in fds[] */
	int fds[MIG_RECV_FDS];
};

static void close_fds(const int *fds, int n)
{
	int i;

	for (i = 0; i < n; i++)
		close(fds[i]);
}

/* Keeps up to x->cap of the SCM_RIGHTS fds in msg, closes the rest. */
static void rx_take_fds(struct rx *x, struct msghdr *msg)
{
	struct cmsghdr *cm;
	size_t k, n;
	int fd;

	for (cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET ||
		    cm->cmsg_type != SCM_RIGHTS ||
		    cm->cmsg_len < CMSG_LEN(0))
			continue;
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (k = 0; k < n; k++) {
			memcpy(&fd, CMSG_DATA(cm) + k * sizeof(int),
			       sizeof(int));
			if (x->n < x->cap)
				x->fds[x->n++] = fd;
			else
				close(fd);
		}
	}
}

/*
 * Waits until fd is readable or deadline_ns (0: forever) has passed.
 * 0 (readable, or HUP/ERR: recvmsg tells), -ETIMEDOUT or -errno.
 */
static int rx_wait(int fd, uint64_t deadline_ns)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t now;
	int ms, r;

	for (;;) {
		ms = -1;
		if (deadline_ns) {
			now = cv_now_ns();
			ms = now >= deadline_ns ? 0 :
			     (int)CV_MIN((deadline_ns - now + 999999) / 1000000,
					 (uint64_t)INT32_MAX);
		}
		r = poll(&p, 1, ms);
		if (r > 0)
			return 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

/*
 * One recvmsg of at most n bytes into p, after the wait; the fds that
 * come are x's. Bytes read (0: end of file), or -errno; -EINTR and
 * -EAGAIN mean "again".
 */
static ssize_t rx_recv(struct rx *x, void *p, size_t n, uint64_t deadline)
{
	FDBUF(MIG_RECV_FDS) cbuf;
	struct iovec iov = { .iov_base = p, .iov_len = n };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf.buf, .msg_controllen = sizeof(cbuf.buf),
	};
	ssize_t k;
	int ret;

	if (deadline) {
		ret = rx_wait(x->fd, deadline);
		if (ret)
			return ret;
	}
	k = recvmsg(x->fd, &msg, MSG_CMSG_CLOEXEC);
	if (k < 0 && errno == EWOULDBLOCK)
		return -EAGAIN;
	if (k < 0)
		return -errno;
	rx_take_fds(x, &msg);
	return k;
}

/*
 * Reads exactly n bytes into p (hashing them into h), never more; one
 * part of a record. first: the part starts a record (end of file before
 * its first byte is -ECONNRESET, anywhere else -EPIPE). 0 or -errno.
 */
static int rx_part(struct rx *x, void *p, size_t n, bool first,
		   struct cv_hash_st *h)
{
	uint64_t deadline = 0;
	size_t got = 0;
	ssize_t k;
	int ret;

	if (x->timeout_ms >= 0)
		deadline = cv_now_ns() + (uint64_t)x->timeout_ms * 1000000ull;
	while (got < n) {
		k = rx_recv(x, (uint8_t *)p + got, n - got, deadline);
		if (k == -EINTR)
			continue;
		if (k == -EAGAIN) {
			/* a non-blocking socket: wait (rx_recv waits when
			 * there is a deadline) */
			ret = deadline ? 0 : rx_wait(x->fd, 0);
			if (ret)
				return ret;
			continue;
		}
		if (k < 0)
			return (int)k;
		if (k == 0)
			return first && !got ? -ECONNRESET : -EPIPE;
		if (h)
			cv_hash_update(h, (uint8_t *)p + got, (size_t)k);
		got += (size_t)k;
	}
	return 0;
}

/*
 * Reads one whole record, payload into buf (cap bytes): header, its
 * checks, payload, footer. 0 or -errno.
 */
static int rx_record(struct rx *x, uint32_t *type, void *buf, size_t cap,
		     uint32_t *len)
{
	uint8_t hdr[CV_MIG_HDR], footer[CV_MIG_FOOTER], want[CV_MIG_FOOTER];
	struct cv_hash_st h;
	int ret;

	cv_hash_init(&h);
	ret = rx_part(x, hdr, sizeof(hdr), true, &h);
	if (ret)
		return ret;
	memcpy(type, hdr, 4);
	memcpy(len, hdr + 4, 4);
	if (!*type || *type > CV_MIG_TYPE_MAX)
		return -EPROTO;
	/* The payload stays unread: nothing after it can be trusted. */
	if (*len > cap || *len > CV_MIG_MAX_PAYLOAD)
		return -EMSGSIZE;
	ret = rx_part(x, buf, *len, false, &h);
	if (!ret)
		ret = rx_part(x, footer, sizeof(footer), false, NULL);
	if (ret)
		return ret;
	cv_hash_final(&h, want);
	return memcmp(footer, want, sizeof(want)) ? -EBADMSG : 0;
}

int cv_mig_recv(struct cv_mig_io *io, uint32_t *type, void *buf, size_t cap,
		uint32_t *len, int *fds, int *nfds, int timeout_ms)
{
	struct rx x = { .fd = io->fd, .timeout_ms = timeout_ms };
	uint32_t t, n;
	int ret;

	if (fds && nfds && *nfds > 0)
		x.cap = CV_MIN(*nfds, MIG_RECV_FDS);
	if (nfds)
		*nfds = 0;
	ret = io_err(io);
	if (ret)
		return ret;
	if (cap && !buf)
		return -EINVAL;
	ret = rx_record(&x, &t, buf, cap, &n);
	if (ret) {
		close_fds(x.fds, x.n);
		return io_fail(io, ret);
	}
	*type = t;
	*len = n;
	if (x.n)
		memcpy(fds, x.fds, sizeof(int) * (size_t)x.n);
	if (nfds)
		*nfds = x.n;
	__atomic_fetch_add(&io->received, CV_MIG_HDR + (uint64_t)n +
			   CV_MIG_FOOTER, __ATOMIC_RELAXED);
	return 0;
}

/* ---- PLAN -------------------------------------------------------------- */

void cv_mig_plan_encode(const struct cv_mig_plan *p, struct cv_wbuf *b)
{
	uint32_t i;

	cv_wbuf_u32(b, p->round);
	cv_wbuf_u32(b, p->nranges);
	cv_wbuf_u32(b, p->nvmm);
	cv_wbuf_u32(b, p->nheap);
	for (i = 0; i < p->nranges; i++) {
		cv_wbuf_u64(b, p->ranges[i].va);
		cv_wbuf_u64(b, p->ranges[i].size);
		cv_wbuf_u32(b, p->ranges[i].vmm);
		cv_wbuf_u32(b, 0);
		cv_wbuf_u64(b, p->ranges[i].offset);
	}
	for (i = 0; i < p->nvmm; i++) {
		cv_wbuf_u32(b, p->vmm[i].id);
		cv_wbuf_u32(b, p->vmm[i].released ? 1 : 0);
		cv_wbuf_u64(b, p->vmm[i].size);
	}
	for (i = 0; i < p->nheap; i++) {
		cv_wbuf_u64(b, p->heap[i].off);
		cv_wbuf_u64(b, p->heap[i].len);
	}
}

void cv_mig_plan_free(struct cv_mig_plan *p)
{
	if (!p)
		return;
	free(p->ranges);
	free(p->vmm);
	free(p->heap);
	memset(p, 0, sizeof(*p));
}

/* Fills why (when given) and returns -EINVAL. */
CV_PRINTF(3, 4)
static int bad(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* A decode in progress: the reader, where to say why, the result. */
struct pd {
	struct cv_rbuf r;
	char *why;
	size_t whylen;
	struct cv_mig_plan *p;
	uint8_t *mapped; /* per handle (by sorted index): a range maps it */
};

#define U64(x) ((unsigned long long)(x))

/* The counts, against the length; allocates the arrays. */
static int pd_counts(struct pd *d, size_t len)
{
	struct cv_mig_plan *p = d->p;
	uint64_t need;

	p->round = cv_rbuf_u32(&d->r);
	p->nranges = cv_rbuf_u32(&d->r);
	p->nvmm = cv_rbuf_u32(&d->r);
	p->nheap = cv_rbuf_u32(&d->r);
	if (d->r.bad)
		return bad(d->why, d->whylen, "PLAN of %zu bytes is short",
			   len);
	if (p->nranges > CV_MIG_MAX_RANGES || p->nvmm > CV_MIG_MAX_RANGES ||
	    p->nheap > CV_MIG_MAX_RANGES)
		return bad(d->why, d->whylen, "PLAN counts %u ranges, %u "
			   "handles, %u heap ranges: over the limit %u",
			   p->nranges, p->nvmm, p->nheap, CV_MIG_MAX_RANGES);
	/* Each count <= 2^20: no overflow. */
	need = PLAN_HEAD + (uint64_t)p->nranges * PLAN_RANGE +
	       (uint64_t)p->nvmm * PLAN_VMM + (uint64_t)p->nheap * PLAN_HEAP;
	if (need != len)
		return bad(d->why, d->whylen, "PLAN of %zu bytes is %s: its "
			   "counts need %llu", len,
			   len < need ? "short" : "followed by trailing bytes",
			   U64(need));
	p->ranges = calloc(p->nranges + 1u, sizeof(*p->ranges));
	p->vmm = calloc(p->nvmm + 1u, sizeof(*p->vmm));
	p->heap = calloc(p->nheap + 1u, sizeof(*p->heap));
	d->mapped = calloc(p->nvmm + 1u, 1);
	if (!p->ranges || !p->vmm || !p->heap || !d->mapped)
		return -ENOMEM;
	return 0;
}

/* Range i on its own and against range i - 1: whole granules in the
 * window, sorted and disjoint; plain memory at offset 0. */
static int pd_range(struct pd *d, uint32_t i)
{
	struct cv_mig_range *g = &d->p->ranges[i];
	uint32_t pad;

	g->va = cv_rbuf_u64(&d->r);
	g->size = cv_rbuf_u64(&d->r);
	g->vmm = cv_rbuf_u32(&d->r);
	pad = cv_rbuf_u32(&d->r);
	g->offset = cv_rbuf_u64(&d->r);
	if (pad)
		return bad(d->why, d->whylen, "PLAN range %u: padding %u is "
			   "not 0", i, pad);
	if (!g->size || g->va % CV_GRANULE || g->size % CV_GRANULE)
		return bad(d->why, d->whylen, "PLAN range %u (0x%llx, %llu "
			   "bytes) is not whole granules", i, U64(g->va),
			   U64(g->size));
	if (!cv_range_in(g->va, g->size, CV_WINDOW_ADDR, CV_WINDOW_SIZE))
		return bad(d->why, d->whylen, "PLAN range %u (0x%llx, %llu "
			   "bytes) is outside the device window", i,
			   U64(g->va), U64(g->size));
	if (i && g->va < g[-1].va)
		return bad(d->why, d->whylen, "PLAN ranges are not sorted: "
			   "0x%llx after 0x%llx", U64(g->va), U64(g[-1].va));
	if (i && g->va < g[-1].va + g[-1].size)
		return bad(d->why, d->whylen, "PLAN range 0x%llx overlaps "
			   "0x%llx (%llu bytes)", U64(g->va), U64(g[-1].va),
			   U64(g[-1].size));
	if (!g->vmm && g->offset)
		return bad(d->why, d->whylen, "PLAN range 0x%llx of plain "
			   "memory has offset %llu", U64(g->va),
			   U64(g->offset));
	return 0;
}

static int by_id(const void *a, const void *b)
{
	const struct cv_mig_vmm *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/* The handles: read, sorted by id, each checked. */
static int pd_vmms(struct pd *d)
{
	struct cv_mig_vmm *v = d->p->vmm;
	uint32_t i, released, n = d->p->nvmm;

	for (i = 0; i < n; i++) {
		v[i].id = cv_rbuf_u32(&d->r);
		released = cv_rbuf_u32(&d->r);
		v[i].size = cv_rbuf_u64(&d->r);
		if (released > 1)
			return bad(d->why, d->whylen, "PLAN handle %u: "
				   "released is %u, not 0 or 1", v[i].id,
				   released);
		v[i].released = released;
		if (!v[i].id || !v[i].size || v[i].size % CV_GRANULE ||
		    v[i].size > CV_WINDOW_SIZE)
			return bad(d->why, d->whylen, "PLAN handle %u of %llu "
				   "bytes is not valid", v[i].id,
				   U64(v[i].size));
	}
	if (n)
		qsort(v, n, sizeof(*v), by_id);
	for (i = 1; i < n; i++)
		if (v[i].id == v[i - 1].id)
			return bad(d->why, d->whylen, "PLAN lists handle %u "
				   "twice", v[i].id);
	return 0;
}

/* A VMM range: its handle listed, [offset, offset + size) inside it. */
static int pd_range_vmm(struct pd *d, uint32_t i)
{
	const struct cv_mig_range *g = &d->p->ranges[i];
	struct cv_mig_vmm key = { .id = g->vmm }, *h;

	h = d->p->nvmm ? bsearch(&key, d->p->vmm, d->p->nvmm, sizeof(key),
				 by_id) : NULL;
	if (!h)
		return bad(d->why, d->whylen, "PLAN range 0x%llx maps handle "
			   "%u, which is not listed", U64(g->va), g->vmm);
	if (g->offset % CV_GRANULE || !cv_range_ok(g->offset, g->size, h->size))
		return bad(d->why, d->whylen, "PLAN range 0x%llx maps bytes "
			   "%llu (+%llu) of handle %u, past its %llu bytes or "
			   "unaligned", U64(g->va), U64(g->offset),
			   U64(g->size), g->vmm, U64(h->size));
	d->mapped[h - d->p->vmm] = 1;
	return 0;
}

/* Every handle is live or still mapped; the device bytes the destination
 * creates (plain ranges, handles) fit the quota. */
static int pd_totals(struct pd *d, uint64_t quota)
{
	const struct cv_mig_plan *p = d->p;
	uint64_t sum = 0;
	bool over = false;
	uint32_t i;

	for (i = 0; i < p->nranges; i++)
		if (!p->ranges[i].vmm)
			over |= __builtin_add_overflow(sum, p->ranges[i].size,
						       &sum);
	for (i = 0; i < p->nvmm; i++) {
		if (p->vmm[i].released && !d->mapped[i])
			return bad(d->why, d->whylen, "PLAN handle %u is "
				   "released and mapped nowhere",
				   p->vmm[i].id);
		over |= __builtin_add_overflow(sum, p->vmm[i].size, &sum);
	}
	if (over || sum > quota)
		return bad(d->why, d->whylen, "PLAN holds %llu%s bytes of "
			   "device memory, over the quota of %llu", U64(sum),
			   over ? "+" : "", U64(quota));
	return 0;
}

/* The heap ranges: whole pages inside [0, heap_max), sorted, disjoint. */
static int pd_heap(struct pd *d, uint64_t heap_max)
{
	struct cv_mig_heap *e = d->p->heap;
	uint32_t i;

	for (i = 0; i < d->p->nheap; i++) {
		e[i].off = cv_rbuf_u64(&d->r);
		e[i].len = cv_rbuf_u64(&d->r);
		if (!e[i].len || e[i].off % CV_PAGE || e[i].len % CV_PAGE ||
		    !cv_range_ok(e[i].off, e[i].len, heap_max))
			return bad(d->why, d->whylen, "PLAN heap range %llu "
				   "(+%llu) is not whole pages inside the "
				   "heap's %llu bytes", U64(e[i].off),
				   U64(e[i].len), U64(heap_max));
		if (i && e[i].off < e[i - 1].off)
			return bad(d->why, d->whylen, "PLAN heap ranges are "
				   "not sorted: %llu after %llu",
				   U64(e[i].off), U64(e[i - 1].off));
		if (i && e[i].off < e[i - 1].off + e[i - 1].len)
			return bad(d->why, d->whylen, "PLAN heap range %llu "
				   "overlaps %llu (+%llu)", U64(e[i].off),
				   U64(e[i - 1].off), U64(e[i - 1].len));
	}
	return 0;
}

/* Every check of cv_mig_plan_decode, in wire order where it can be. */
static int pd_all(struct pd *d, size_t len, uint64_t quota,
		  uint64_t heap_max)
{
	uint32_t i;
	int ret;

	ret = pd_counts(d, len);
	for (i = 0; !ret && i < d->p->nranges; i++)
		ret = pd_range(d, i);
	if (!ret)
		ret = pd_vmms(d);
	for (i = 0; !ret && i < d->p->nranges; i++)
		if (d->p->ranges[i].vmm)
			ret = pd_range_vmm(d, i);
	if (!ret)
		ret = pd_heap(d, heap_max);
	if (!ret)
		ret = pd_totals(d, quota);
	/* Lengths were checked up front: an overrun is a bug here. */
	if (!ret && (d->r.bad || cv_rbuf_left(&d->r)))
		ret = bad(d->why, d->whylen, "PLAN is malformed");
	return ret;
}

int cv_mig_plan_decode(const void *p, size_t len, uint64_t quota,
		       uint64_t heap_max, struct cv_mig_plan *out, char *why,
		       size_t whylen)
{
	struct pd d = { .why = why, .whylen = whylen, .p = out };
	int ret;

	memset(out, 0, sizeof(*out));
	if (why && whylen)
		why[0] = '\0';
	cv_rbuf_init(&d.r, p, len);
	ret = pd_all(&d, len, quota, heap_max);
	free(d.mapped);
	if (ret)
		cv_mig_plan_free(out);
	return ret;
}

uint64_t cv_mig_plan_granules(const struct cv_mig_plan *p, uint32_t granule)
{
	uint64_t n = 0;
	uint32_t i;

	if (!granule)
		return 0;
	for (i = 0; i < p->nranges; i++)
		n += p->ranges[i].size / granule;
	return n;
}

int64_t cv_mig_plan_index(const struct cv_mig_plan *p, uint64_t va)
{
	uint32_t lo = 0, hi = p->nranges, mid;

	/* lo: the first range that starts above va. */
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (p->ranges[mid].va <= va)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo || va - p->ranges[lo - 1].va >= p->ranges[lo - 1].size)
		return -1;
	return lo - 1;
}

bool cv_mig_plan_covers(const struct cv_mig_plan *p, uint64_t va,
			uint64_t len)
{
	int64_t i;

	if (!len || len > UINT64_MAX - va)
		return false;
	i = cv_mig_plan_index(p, va);
	return i >= 0 && cv_range_in(va, len, p->ranges[i].va,
				     p->ranges[i].size);
}

/* ---- HELLO, ABORT, sizes ----------------------------------------------- */

int cv_mig_hello_check(const struct cv_mig_hello *h, char *why,
		       size_t whylen)
{
	if (why && whylen)
		why[0] = '\0';
	if (h->magic != CV_MIG_MAGIC)
		return bad(why, whylen, "not a migration stream (magic "
			   "0x%016llx)", U64(h->magic));
	if (h->version != CV_MIG_VERSION) {
		bad(why, whylen, "migration stream version %u, this worker "
		    "speaks %u", h->version, CV_MIG_VERSION);
		return -EPROTO;
	}
	if (h->flags & ~(CV_MIG_HELLO_SHARE | CV_MIG_HELLO_INLINE) ||
	    (h->flags & CV_MIG_HELLO_SHARE && h->flags & CV_MIG_HELLO_INLINE))
		return bad(why, whylen, "HELLO flags 0x%x are not known",
			   h->flags);
	if (h->flags && h->nslots)
		return bad(why, whylen, "a HELLO that shares memory or sends "
			   "it inline has no slots, this one %u", h->nslots);
	if (!cv_digest_size_ok(h->granule) || CV_GRANULE % h->granule)
		return bad(why, whylen, "digest granule of %u bytes is not "
			   "valid", h->granule);
	if (h->nslots > CV_MIG_MAX_SLOTS)
		return bad(why, whylen, "%u slots, more than %u", h->nslots,
			   CV_MIG_MAX_SLOTS);
	if (h->nslots && (!h->slot_size || h->slot_size % CV_PAGE ||
			  h->slot_size > CV_MIG_MAX_PAYLOAD))
		return bad(why, whylen, "slots of %llu bytes are not valid",
			   U64(h->slot_size));
	return 0;
}

int cv_mig_share_check(const struct cv_mig_share *s, uint64_t quota,
		       char *why, size_t whylen)
{
	if (why && whylen)
		why[0] = '\0';
	switch (s->kind) {
	case CV_MIG_SHARE_MEM:
		if (s->id || !s->size || s->size % CV_GRANULE ||
		    s->va % CV_GRANULE || s->size > quota ||
		    !cv_range_in(s->va, s->size, CV_WINDOW_ADDR,
				 CV_WINDOW_SIZE))
			return bad(why, whylen, "SHARE of %llu bytes at "
				   "0x%llx is not valid", U64(s->size),
				   U64(s->va));
		return 0;
	case CV_MIG_SHARE_VMM:
		if (!s->id || s->va || !s->size || s->size % CV_GRANULE ||
		    s->size > quota)
			return bad(why, whylen, "SHARE of VMM handle %u (%llu "
				   "bytes) is not valid", s->id, U64(s->size));
		return 0;
	case CV_MIG_SHARE_RESET:
		if (s->id || s->va || s->size)
			return bad(why, whylen, "SHARE reset with arguments");
		return 0;
	default:
		return bad(why, whylen, "SHARE of unknown kind %u", s->kind);
	}
}

void cv_mig_abort_make(struct cv_mig_abort *a, int code, const char *msg)
{
	size_t n = msg ? strnlen(msg, CV_MIG_MSG_LEN - 1) : 0;

	memset(a, 0, sizeof(*a));
	a->code = code;
	if (n)
		memcpy(a->msg, msg, n);
}

void cv_mig_abort_decode(const void *p, size_t len, struct cv_mig_abort *a)
{
	const size_t at = offsetof(struct cv_mig_abort, msg);
	const uint8_t *m;
	size_t i, n;

	memset(a, 0, sizeof(*a));
	a->code = -EPROTO;
	if (len >= sizeof(a->code)) {
		memcpy(&a->code, p, sizeof(a->code));
		if (a->code >= 0 || a->code <= -ERRNO_MAX - 1)
			a->code = -EPROTO;
	}
	if (len <= at)
		return;
	/* One byte is kept for the NUL. */
	m = (const uint8_t *)p + at;
	n = CV_MIN(len - at, (size_t)CV_MIG_MSG_LEN - 1);
	for (i = 0; i < n && m[i]; i++)
		a->msg[i] = m[i] >= 0x20 && m[i] < 0x7f ? (char)m[i] : '?';
}

size_t cv_mig_fixed_len(uint32_t type)
{
	switch (type) {
	case CV_MIG_HELLO:
		return sizeof(struct cv_mig_hello);
	case CV_MIG_WELCOME:
		return sizeof(struct cv_mig_welcome);
	case CV_MIG_DIGEST_REQ:
	case CV_MIG_DIGESTS:
	case CV_MIG_ROUND_END:
	case CV_MIG_ROUND_DONE:
		return sizeof(struct cv_mig_round);
	case CV_MIG_GRANULES:
		return sizeof(struct cv_mig_granules);
	case CV_MIG_SLOT_FREE:
		return sizeof(struct cv_mig_slot);
	case CV_MIG_STATE:
		return sizeof(struct cv_mig_state);
	case CV_MIG_RUNNING:
		return sizeof(struct cv_mig_running);
	case CV_MIG_SHARE:
		return sizeof(struct cv_mig_share);
	case CV_MIG_READY:
	case CV_MIG_COMMIT:
		return 0;
	default:
		return SIZE_MAX; /* PLAN, ABORT, and no type at all */
	}
}

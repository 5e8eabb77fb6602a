/* SPDX-License-Identifier: MIT */
/*
 * The remote backend: the device is a worker on another host
 * (core/remote.h, docs/remote.md). Every op becomes a message on an
 * authenticated TCP connection to it. Asynchronous ops are batched in a
 * send buffer and sent when it fills, when an op must wait for its
 * answer, or when the consumer finds the ring empty (flush); ops that
 * answer wait for their REPLY; copies carry their bytes in chunks.
 *
 * Objects are ids we choose (and reuse), so creating one needs no round
 * trip where CUDA lets the error wait. A device-to-host copy's bytes
 * come back as DATA on the receiving thread, which writes them where the
 * copy asked (never where the peer says); a marker counts as done only
 * once every such copy sent before it arrived. The peer is untrusted:
 * an unexpected message, a reply nobody waits for or bytes that do not
 * fit end the connection, and so does silence longer than the timeout;
 * then every op fails with CUDA_ERROR_DEVICE_UNAVAILABLE.
 */
#include <cuda.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/peer.h"
#include "../core/remote.h"
#include "../core/util.h"
#include "backend.h"
#include "remote.h"

#define TXBUF (256u << 10)
#define LANE_Q 8        /* pieces queued per copy lane */
#define LOST CUDA_ERROR_DEVICE_UNAVAILABLE
/* A caller waiting for an answer, and the receiving thread while one
 * waits, spin this long before they sleep (loopback: a round trip is
 * tens of microseconds, about the cost of two wake-ups). */
#define REPLY_SPIN_NS 100000ull

struct waiter {
	struct waiter *next;
	uint64_t seq;
	bool done;
	struct cv_rm_rep rep;
	uint8_t *bytes;         /* malloc'ed by the receiver */
	size_t blen;
};

/* A device-to-host copy whose bytes are on their way. */
struct d2h {
	struct d2h *next;
	uint64_t seq;
	uint8_t *dst;
	uint64_t pitch, width, height, total, got;
	uint8_t *seen;          /* pieces (CV_RM_CHUNK each) taken, a bit
				 * each: lanes deliver them in any order */
	bool z;                 /* asked for compressed pieces */
	bool done;
};

static void d2h_free(struct d2h *d)
{
	free(d->seen);
	free(d);
}

struct hostfn {
	struct hostfn *next;
	uint64_t id;
	cv_bhostfn fn;
	void *arg;
	bool fired;
};

struct aobj {
	struct cv_fparams fp;   /* functions */
	uint64_t need;          /* markers: the last D2H sent before */
};

struct cv_backend {
	int fd;
	uint64_t timeout_ns;
	char where[CV_PEER_HOST_LEN + 32];

	pthread_mutex_t tx;
	uint8_t *buf;
	size_t blen;
	uint64_t first_ns;      /* when the oldest batched op came */
	uint64_t seq;           /* last sent */
	uint64_t ordered;       /* last ordered op sent */

	pthread_mutex_t rx;
	pthread_cond_t rxc;
	struct waiter *waiters;
	uint32_t nwait;         /* waiters listed (atomic: rx_main spins on it) */
	struct d2h *d2h_head, *d2h_tail;
	uint64_t d2h_sent;       /* the last DTOH sent */
	struct hostfn *hostfns;
	uint64_t hostfn_id;
	int32_t async_err;
	bool lost, closing;

	pthread_mutex_t idl;
	uint64_t *free_ids;
	uint32_t nfree, cfree;
	uint64_t next_id;
	struct aobj *o;

	pthread_t rx_thread, ping_thread, fn_thread;

	/* Copy lanes (core/remote.h): more TCP streams for copies' bytes,
	 * each with a thread that sends what is queued for it. */
	int lane[CV_RM_LANES];
	pthread_mutex_t lane_tx[CV_RM_LANES];  /* its queue, in seq order */
	pthread_cond_t lane_cv[CV_RM_LANES];
	struct lane_job {
		uint64_t seq, src, n;
	} lane_q[CV_RM_LANES][LANE_Q];
	uint32_t lane_head[CV_RM_LANES], lane_tail[CV_RM_LANES];
	uint32_t nlanes, lane_next;
	bool zstd;              /* compress HTOD pieces where it pays and ask
				 * for DTOH ones so (atomic: lanes read it) */
	bool zstd_ok;           /* the server can (CV_RM_READY_ZSTD) */
};

#define ID(h) ((uint64_t)(uintptr_t)(h))
#define H(id) ((cv_bobj)(uintptr_t)(id))

/* ---- ids ----------------------------------------------------------------- */

static uint64_t id_new(struct cv_backend *b)
{
	uint64_t id = 0;

	pthread_mutex_lock(&b->idl);
	if (b->nfree)
		id = b->free_ids[--b->nfree];
	else if (b->next_id < CV_RM_MAX_OBJS)
		id = b->next_id++;
	pthread_mutex_unlock(&b->idl);
	return id;
}

static void id_free(struct cv_backend *b, uint64_t id)
{
	uint64_t *n;

	if (!id || id >= CV_RM_MAX_OBJS)
		return;
	pthread_mutex_lock(&b->idl);
	free(b->o[id].fp.p);
	memset(&b->o[id], 0, sizeof(b->o[id]));
	if (b->nfree == b->cfree) {
		n = realloc(b->free_ids, (b->cfree ? b->cfree * 2 : 64) *
						 sizeof(*n));
		if (n) {
			b->free_ids = n;
			b->cfree = b->cfree ? b->cfree * 2 : 64;
		}
	}
	if (b->nfree < b->cfree)
		b->free_ids[b->nfree++] = id;
	pthread_mutex_unlock(&b->idl);
}

/* ---- losing the peer --------------------------------------------------------- */

static void lose(struct cv_backend *b, const char *why)
{
	pthread_mutex_lock(&b->rx);
	if (!b->lost && !b->closing)
		cv_err("remote vGPU on %s lost: %s", b->where, why);
	b->lost = true;
	pthread_cond_broadcast(&b->rxc);
	pthread_mutex_unlock(&b->rx);
	shutdown(b->fd, SHUT_RDWR);
	for (uint32_t k = 0; k < b->nlanes; k++) {
		shutdown(b->lane[k], SHUT_RDWR);
		pthread_mutex_lock(&b->lane_tx[k]);
		pthread_cond_broadcast(&b->lane_cv[k]);
		pthread_mutex_unlock(&b->lane_tx[k]);
	}
}

static bool is_lost(struct cv_backend *b)
{
	return __atomic_load_n(&b->lost, __ATOMIC_ACQUIRE);
}

/* ---- sending ------------------------------------------------------------- */

struct seg {
	const void *p;
	size_t n;
};

static int tx_flush(struct cv_backend *b)
{
	int rc = 0;

	if (b->blen) {
		rc = cv_peer_write(b->fd, b->buf, b->blen,
				   cv_now_ns() + b->timeout_ns);
		b->blen = 0;
	}
	return rc;
}

/*
 * Sends op with its segments. w (registered before the bytes go, so the
 * answer cannot beat it) waits for a REPLY; d (likewise) for DATA.
 * flush: send now rather than batch. Returns 0 or LOST.
 */
static int tx_seq(struct cv_backend *b, uint32_t op, const struct seg *sg,
		  int nseg, struct waiter *w, struct d2h *d, bool flush,
		  uint64_t *seqp)
{
	struct cv_rm_hdr h = { .op = op };
	size_t len = 0;
	int i, rc = 0;

	for (i = 0; i < nseg; i++)
		len += sg[i].n;
	h.len = (uint32_t)len;
	pthread_mutex_lock(&b->tx);
	if (is_lost(b)) {
		pthread_mutex_unlock(&b->tx);
		return LOST;
	}
	h.seq = ++b->seq;
	if (seqp)
		*seqp = h.seq;
	if (cv_rm_op_class(op) & CV_RM_ORDERED)
		b->ordered = h.seq;
	if (w || d) {
		pthread_mutex_lock(&b->rx);
		if (w) {
			w->seq = h.seq;
			w->next = b->waiters;
			b->waiters = w;
			__atomic_add_fetch(&b->nwait, 1, __ATOMIC_RELAXED);
		}
		if (d) {
			d->seq = h.seq;
			d->next = NULL;
			if (b->d2h_tail)
				b->d2h_tail->next = d;
			else
				b->d2h_head = d;
			b->d2h_tail = d;
			b->d2h_sent = h.seq;
		}
		pthread_mutex_unlock(&b->rx);
	}
	if (sizeof(h) + len <= TXBUF - b->blen) {
		if (!b->blen)
			b->first_ns = cv_now_ns();
		memcpy(b->buf + b->blen, &h, sizeof(h));
		b->blen += sizeof(h);
		for (i = 0; i < nseg; i++) {
			if (sg[i].n)
				memcpy(b->buf + b->blen, sg[i].p, sg[i].n);
			b->blen += sg[i].n;
		}
		if (flush)
			rc = tx_flush(b);
	} else {
		/* Large: what is batched, then this one from where it is. */
		rc = tx_flush(b);
		uint64_t dl = cv_now_ns() + b->timeout_ns;

		if (!rc)
			rc = cv_peer_write(b->fd, &h, sizeof(h), dl);
		for (i = 0; !rc && i < nseg; i++)
			if (sg[i].n)
				rc = cv_peer_write(b->fd, sg[i].p, sg[i].n, dl);
	}
	pthread_mutex_unlock(&b->tx);
	if (rc) {
		lose(b, rc == -ETIMEDOUT ? "the peer stopped taking data" :
					   "the connection broke");
		return LOST;
	}
	return 0;
}

static int tx(struct cv_backend *b, uint32_t op, const struct seg *sg,
	      int nseg, struct waiter *w, struct d2h *d, bool flush)
{
	return tx_seq(b, op, sg, nseg, w, d, flush, NULL);
}

/* An asynchronous op: args only, or args and one segment. */
static int tx_async(struct cv_backend *b, uint32_t op,
		    const struct cv_rm_args *a, const void *p, size_t n)
{
	struct seg sg[2] = { { a, sizeof(*a) }, { p, n } };

	return tx(b, op, sg, 2, NULL, NULL, false);
}

static void unlink_waiter(struct cv_backend *b, struct waiter *w)
{
	struct waiter **pp;

	for (pp = &b->waiters; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			__atomic_sub_fetch(&b->nwait, 1, __ATOMIC_RELAXED);
			break;
		}
}

/* Waits for w's REPLY: its CUresult (or an earlier asynchronous error).
 * Spins a little first: a short op's answer comes sooner than a thread
 * asleep on the condition variable wakes. */
static int wait_reply(struct cv_backend *b, struct waiter *w)
{
	uint64_t t0 = cv_now_ns();
	int rc;

	while (!__atomic_load_n(&w->done, __ATOMIC_ACQUIRE) && !is_lost(b) &&
	       cv_now_ns() - t0 < REPLY_SPIN_NS)
		cv_cpu_relax();
	pthread_mutex_lock(&b->rx);
	while (!w->done && !b->lost)
		pthread_cond_wait(&b->rxc, &b->rx);
	if (!w->done) {
		unlink_waiter(b, w);
		rc = LOST;
	} else {
		rc = w->rep.rc;
		if (!rc && b->async_err) {
			rc = b->async_err;
			b->async_err = 0;
		}
	}
	pthread_mutex_unlock(&b->rx);
	return rc;
}

static int d2h_landed(struct cv_backend *b, uint64_t need, bool wait);

/* A synchronising op: sends, waits, and gives the answer in w. */
static int call(struct cv_backend *b, uint32_t op, struct cv_rm_args *a,
		const void *p, size_t n, struct waiter *w)
{
	struct seg sg[2] = { { a, sizeof(*a) }, { p, n } };
	int rc;

	memset(w, 0, sizeof(*w));
	if (cv_rm_op_class(op) & CV_RM_SIDE)
		a->a[9] = __atomic_load_n(&b->ordered, __ATOMIC_RELAXED);
	rc = tx(b, op, sg, 2, w, NULL, true);
	if (rc)
		return rc;
	rc = wait_reply(b, w);
	/* Copies' bytes may come over lanes after the answer did. */
	if (!rc && (cv_rm_op_class(op) & CV_RM_ORDERED))
		rc = d2h_landed(b, w->seq, true);
	return rc;
}

/* call() for ops that answer with no bytes. */
static int call0(struct cv_backend *b, uint32_t op, struct cv_rm_args *a,
		 const void *p, size_t n, uint64_t *v)
{
	struct waiter w;
	int rc = call(b, op, a, p, n, &w);

	if (v)
		memcpy(v, w.rep.v, sizeof(w.rep.v));
	free(w.bytes);
	return rc;
}

#define ARGS(...) (&(struct cv_rm_args){ { __VA_ARGS__ } })

/* ---- receiving -------------------------------------------------------------- */

static int rd(struct cv_backend *b, void *p, size_t n)
{
	return cv_peer_read(b->fd, p, n, cv_now_ns() + b->timeout_ns);
}

/*
 * n bytes of DTOH seq at off (or its failure rc) from fd, put in place:
 * the copy is found by its seq among those waiting; the bytes must be
 * one whole piece (CV_RM_CHUNK-aligned, full but for the last) not seen
 * before (marked first, so that two lanes cannot both fill it). Copies end in any order; the queue drops its
 * head while the head is done, so "every copy up to seq N landed" is
 * "the head is after N".
 */
static int d2h_put(struct cv_backend *b, int fd, uint64_t seq, uint64_t off,
		   int32_t rc, size_t n, struct cv_lane_unz *u, uint32_t zlen,
		   const char **why)
{
	struct d2h *d;
	uint64_t row, col, k, m, piece = off / CV_RM_CHUNK;
	uint8_t *tmp;
	int r = 0;

	pthread_mutex_lock(&b->rx);
	for (d = b->d2h_head; d && (d->seq != seq || d->done); d = d->next)
		;
	if (d && !d->seen)
		d->seen = calloc(d->total / CV_RM_CHUNK / 8 + 1, 1);
	if (!d || !d->seen || (rc && n) || off % CV_RM_CHUNK ||
	    (!rc && (off >= d->total ||
		     n != CV_MIN(d->total - off, (uint64_t)CV_RM_CHUNK))) ||
	    (!rc && (d->seen[piece / 8] & (1u << (piece % 8)))) ||
	    (zlen && (!u || !d->z || d->height != 1 || rc || !n))) {
		pthread_mutex_unlock(&b->rx);
		*why = "bytes nobody asked for";
		return -EBADMSG;
	}
	if (!rc)
		d->seen[piece / 8] |= (uint8_t)(1u << (piece % 8));
	pthread_mutex_unlock(&b->rx);
	if (zlen) {
		/* capped at the piece: no frame writes past it */
		r = cv_lane_unzstd(u, fd, d->dst + off, n, zlen,
				   cv_now_ns() + b->timeout_ns);
		if (r == -EBADMSG)
			*why = "a compressed piece that is not one of its size";
	} else if (d->height == 1) {
		r = cv_peer_read(fd, d->dst + off, n, cv_now_ns() + b->timeout_ns);
	} else if (n) {
		/* Rows of a 2D copy: bytes in order, width of each row. */
		tmp = malloc(n);
		if (!tmp)
			return -ENOMEM;
		r = cv_peer_read(fd, tmp, n, cv_now_ns() + b->timeout_ns);
		for (k = 0; !r && k < n; k += m) {
			row = (off + k) / d->width;
			col = (off + k) % d->width;
			m = CV_MIN(d->width - col, n - k);
			memcpy(d->dst + row * d->pitch + col, tmp + k, m);
		}
		free(tmp);
	}
	if (r)
		return r;
	pthread_mutex_lock(&b->rx);
	d->got += n;
	if (rc && !b->async_err)
		b->async_err = rc;
	if (rc || d->got == d->total)
		d->done = true;
	while ((d = b->d2h_head) && d->done) {
		b->d2h_head = d->next;
		if (!b->d2h_head)
			b->d2h_tail = NULL;
		d2h_free(d);
	}
	pthread_cond_broadcast(&b->rxc);
	pthread_mutex_unlock(&b->rx);
	return 0;
}

/* DATA on the connection. */
static int on_data(struct cv_backend *b, const struct cv_rm_hdr *h,
		   const char **why)
{
	struct cv_rm_data dm;
	int rc;

	if ((rc = rd(b, &dm, sizeof(dm))))
		return rc;
	return d2h_put(b, b->fd, h->seq, dm.off, dm.rc, h->len - sizeof(dm),
		       NULL, 0, why);
}

/* DATA on copy lane k, until it closes. */
struct lane_arg {
	struct cv_backend *b;
	uint32_t k;
};

static void *lane_rx_main(void *arg)
{
	struct lane_arg la = *(struct lane_arg *)arg;
	struct cv_backend *b = la.b;
	struct cv_rm_lane_data ld;
	const char *why = "a broken copy lane";
	struct cv_lane_unz u = { NULL, NULL };
	int rc;

	free(arg);
	for (;;) {
		rc = cv_peer_read(b->lane[la.k], &ld, sizeof(ld), UINT64_MAX);
		if (!rc && (ld.len > CV_RM_CHUNK || ld.pad))
			rc = -EBADMSG;
		if (!rc)
			rc = d2h_put(b, b->lane[la.k], ld.seq, ld.off, ld.rc,
				     ld.len, &u, ld.zlen, &why);
		/* A piece's bytes are read by a deadline: a cut that catches
		 * one on its way is silence, as on the connection. */
		if (rc) {
			if (!is_lost(b))
				lose(b, rc == -EBADMSG ? why :
					rc == -ETIMEDOUT ? "the peer went silent" :
							   "a copy lane broke");
			break;
		}
	}
	cv_lane_unz_exit(&u);
	return NULL;
}

static int on_reply(struct cv_backend *b, const struct cv_rm_hdr *h,
		    const char **why)
{
	struct cv_rm_rep rep;
	struct waiter *w;
	size_t n = h->len - sizeof(rep);
	uint8_t *bytes = NULL;
	int rc;

	if ((rc = rd(b, &rep, sizeof(rep))))
		return rc;
	if (n) {
		bytes = malloc(n);
		if (!bytes)
			return -ENOMEM;
		if ((rc = rd(b, bytes, n))) {
			free(bytes);
			return rc;
		}
	}
	pthread_mutex_lock(&b->rx);
	for (w = b->waiters; w && w->seq != h->seq; w = w->next)
		;
	if (w) {
		unlink_waiter(b, w);
		w->rep = rep;
		w->bytes = bytes;
		w->blen = n;
		/* after the answer: wait_reply spins on it */
		__atomic_store_n(&w->done, true, __ATOMIC_RELEASE);
		pthread_cond_broadcast(&b->rxc);
	}
	pthread_mutex_unlock(&b->rx);
	if (!w) {
		free(bytes);
		*why = "an answer nobody asked for";
		return -EBADMSG;
	}
	return 0;
}

static int on_hostfn(struct cv_backend *b, const char **why)
{
	struct hostfn *f;
	uint64_t id;
	int rc;

	if ((rc = rd(b, &id, sizeof(id))))
		return rc;
	pthread_mutex_lock(&b->rx);
	for (f = b->hostfns; f && (f->id != id || f->fired); f = f->next)
		;
	if (f) {
		f->fired = true;
		pthread_cond_broadcast(&b->rxc);
	}
	pthread_mutex_unlock(&b->rx);
	if (!f) {
		*why = "a host function nobody queued";
		return -EBADMSG;
	}
	return 0;
}

static void *rx_main(void *arg)
{
	struct cv_backend *b = arg;
	struct cv_rm_hdr h;
	const char *why = NULL;
	char msg[160];
	int rc;

	for (;;) {
		rc = cv_peer_read_spin(b->fd, &h, sizeof(h),
				       cv_now_ns() + b->timeout_ns,
				       __atomic_load_n(&b->nwait,
						       __ATOMIC_RELAXED) ?
				       REPLY_SPIN_NS : 0);
		if (!rc && cv_rm_hdr_check(&h, CV_RM_TO_CLIENT, &why))
			rc = -EBADMSG;
		if (!rc) {
			switch (h.op) {
			case CV_RM_PING: break;
			case CV_RM_REPLY: rc = on_reply(b, &h, &why); break;
			case CV_RM_DATA: rc = on_data(b, &h, &why); break;
			case CV_RM_HOSTFN: rc = on_hostfn(b, &why); break;
			default: why = "a second READY"; rc = -EBADMSG;
			}
		}
		if (rc) {
			if (rc == -EBADMSG)
				snprintf(msg, sizeof(msg), "the peer sent %s", why);
			else
				snprintf(msg, sizeof(msg), "%s",
					 rc == -ETIMEDOUT ? "the peer went silent" :
					 rc == -ECONNRESET ? "the peer closed the connection" :
							     strerror(-rc));
			lose(b, msg);
			return NULL;
		}
	}
}

static void *ping_main(void *arg)
{
	struct cv_backend *b = arg;
	int rc;

	while (!is_lost(b)) {
		usleep(CV_RM_PING_MS * 1000);
		pthread_mutex_lock(&b->tx);
		/* Anything batched goes too, in case no flush came. */
		rc = tx_flush(b);
		if (!rc && !b->blen) {
			struct cv_rm_hdr h = { .op = CV_RM_PING };

			rc = cv_peer_write(b->fd, &h, sizeof(h),
					   cv_now_ns() + b->timeout_ns);
		}
		pthread_mutex_unlock(&b->tx);
		if (rc)
			lose(b, "the connection broke");
	}
	return NULL;
}

/* Runs the host functions the peer's streams reached, in that order. */
static void *fn_main(void *arg)
{
	struct cv_backend *b = arg;
	struct hostfn *f, **pp;
	struct cv_rm_args a = { { 0 } };

	for (;;) {
		pthread_mutex_lock(&b->rx);
		for (;;) {
			for (pp = &b->hostfns; *pp && !(*pp)->fired;
			     pp = &(*pp)->next)
				;
			if (*pp || b->lost)
				break;
			pthread_cond_wait(&b->rxc, &b->rx);
		}
		f = *pp;
		if (f)
			*pp = f->next;
		pthread_mutex_unlock(&b->rx);
		if (!f)
			return NULL;
		f->fn(f->arg);
		a.a[0] = f->id;
		tx(b, CV_RM_HOSTFN_DONE, &(struct seg){ &a, 8 }, 1, NULL, NULL,
		   true);
		free(f);
	}
}

/* ---- opening -------------------------------------------------------------- */

static int dial(const char *spec, int timeout_ms, char *why, size_t wl)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *a;
	char host[300], port[300];
	int fd = -1, r, one = 1;

	if (cv_peer_addr_split(spec, false, host, sizeof(host), port,
			       sizeof(port)) || !host[0]) {
		snprintf(why, wl, "%s is not HOST[:PORT]", spec);
		return -EINVAL;
	}
	if (!port[0])
		snprintf(port, sizeof(port), "%d", CV_PEER_DEFAULT_PORT);
	r = getaddrinfo(host, port, &hints, &res);
	if (r) {
		snprintf(why, wl, "%s: %s", spec, gai_strerror(r));
		return -EHOSTUNREACH;
	}
	for (a = res; a; a = a->ai_next) {
		struct pollfd p;
		socklen_t sl = sizeof(r);

		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC |
				SOCK_NONBLOCK, a->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, a->ai_addr, a->ai_addrlen) && errno != EINPROGRESS) {
			r = errno;
			goto next;
		}
		p = (struct pollfd){ .fd = fd, .events = POLLOUT };
		if (poll(&p, 1, timeout_ms) != 1) {
			r = ETIMEDOUT;
			goto next;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &r, &sl) || r)
			goto next;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		break;
next:
		close(fd);
		fd = -1;
		errno = r;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(why, wl, "cannot reach %s: %s", spec, strerror(errno));
		return -EHOSTUNREACH;
	}
	return fd;
}

/*
 * The copy lanes the server offers: each a connection to its lane port,
 * authenticated under the session key, then its index. The lanes in use
 * are those that came up, in order (copies still work without any).
 */
static void lanes_dial(struct cv_backend *b, const struct cv_backend_cfg *cfg,
		       const struct cv_rm_ready *rd_out, const uint8_t *session,
		       const char *me)
{
	struct cv_peer_hello them;
	char host[300], port[300], spec[340], why[160];
	uint32_t k, n = CV_MIN(rd_out->nlanes, (uint32_t)CV_RM_LANES);
	int fd;

	if (cv_peer_addr_split(cfg->remote, false, host, sizeof(host), port,
			       sizeof(port)))
		return;
	snprintf(spec, sizeof(spec), strchr(host, ':') ? "[%s]:%u" : "%s:%u",
		 host, (unsigned)rd_out->lane_port);
	for (k = 0; k < n; k++) {
		fd = dial(spec, cfg->timeout_ms, why, sizeof(why));
		if (fd >= 0 &&
		    (cv_peer_handshake_s(fd, session, CV_PEER_CLIENT, me,
					 cfg->timeout_ms, &them, why,
					 sizeof(why), NULL) ||
		     cv_peer_write(fd, &k, sizeof(k), cv_now_ns() +
				   (uint64_t)cfg->timeout_ms * 1000000ull))) {
			close(fd);
			fd = -1;
		}
		if (fd < 0) {
			cv_warn("remote vGPU: copy lane %u to %s: %s; %u lane(s)",
				k, spec, why, k);
			break;
		}
		b->lane[k] = fd;
		b->nlanes = k + 1;
	}
}

/* Authenticates to the host's daemon and asks it for a vGPU. */
static int attach(struct cv_backend *b, const struct cv_backend_cfg *cfg,
		  struct cv_rm_ready *rd_out, char *why, size_t wl)
{
	uint8_t key[CV_PEER_KEY_LEN], session[CV_PEER_KEY_LEN];
	struct cv_peer_hello them;
	struct cv_peer_req rq = { .type = CV_PEER_VGPU,
				  .len = sizeof(struct cv_peer_vgpu) };
	struct cv_peer_vgpu vg = { .version = CV_RM_VERSION,
				   .gpu = (uint32_t)cfg->gpu,
				   .quota = cfg->quota,
				   .tenant = cfg->tenant,
				   .timeout_ms = (uint32_t)cfg->timeout_ms };
	struct cv_peer_rsp rs;
	struct cv_rm_hdr h;
	const char *bad;
	char me[CV_PEER_HOST_LEN] = "?", w2[160];
	uint64_t dl;
	int rc;

	rc = cv_peer_key_load(cfg->key, key, w2, sizeof(w2));
	if (rc) {
		snprintf(why, wl, "peer key %s", w2);
		return rc;
	}
	rc = dial(cfg->remote, cfg->timeout_ms, why, wl);
	if (rc < 0)
		return rc;
	b->fd = rc;
	gethostname(me, sizeof(me) - 1);
	rc = cv_peer_handshake_s(b->fd, key, CV_PEER_CLIENT, me, cfg->timeout_ms,
				 &them, w2, sizeof(w2), session);
	memset(key, 0, sizeof(key));
	if (rc) {
		snprintf(why, wl, "%s: %s", cfg->remote, w2);
		return rc;
	}
	dl = cv_now_ns() + (uint64_t)cfg->timeout_ms * 1000000ull;
	rc = cv_peer_write(b->fd, &rq, sizeof(rq), dl);
	if (!rc)
		rc = cv_peer_write(b->fd, &vg, sizeof(vg), dl);
	if (!rc)
		rc = cv_peer_read(b->fd, &rs, sizeof(rs), dl);
	if (!rc && rs.status) {
		snprintf(why, wl, "%s (\"%s\") gives no vGPU: %s", cfg->remote,
			 them.host, strerror(rs.status < 0 && rs.status > -4096 ?
						     -rs.status : EIO));
		return rs.status;
	}
	/* The serving worker opens the GPU, then says READY. */
	dl = cv_now_ns() + 60000000000ull;
	if (!rc)
		rc = cv_peer_read(b->fd, &h, sizeof(h), dl);
	if (!rc && (h.op != CV_RM_READY || h.len != sizeof(*rd_out)))
		rc = -EBADMSG;
	if (!rc)
		rc = cv_peer_read(b->fd, rd_out, sizeof(*rd_out), dl);
	if (!rc && cv_rm_ready_check(rd_out, sizeof(*rd_out), rd_out, &bad)) {
		snprintf(why, wl, "%s: %s", cfg->remote, bad);
		return -EBADMSG;
	}
	if (rc) {
		snprintf(why, wl, "%s (\"%s\"): no vGPU came: %s", cfg->remote,
			 them.host, rc == -EBADMSG ? "not a READY" : strerror(-rc));
		return rc;
	}
	snprintf(b->where, sizeof(b->where), "%s gpu %d", rd_out->host,
		 cfg->gpu);
	if (rd_out->lane_port && rd_out->nlanes)
		lanes_dial(b, cfg, rd_out, session, me);
	memset(session, 0, sizeof(session));
	return 0;
}

static void *lane_tx_main(void *arg);

/* A detached thread fn for lane k; 0 or a CUresult. */
static int lane_thread(struct cv_backend *b, uint32_t k, void *(*fn)(void *))
{
	struct lane_arg *la = malloc(sizeof(*la));
	pthread_t th;

	if (!la)
		return CUDA_ERROR_OUT_OF_MEMORY;
	*la = (struct lane_arg){ b, k };
	if (pthread_create(&th, NULL, fn, la)) {
		free(la);
		return CUDA_ERROR_OPERATING_SYSTEM;
	}
	pthread_detach(th);
	return 0;
}

static int r_open(const struct cv_backend_cfg *cfg, struct cv_devinfo *info,
		  struct cv_backend **out)
{
	struct cv_backend *b = calloc(1, sizeof(*b));
	struct cv_rm_ready ready;
	char why[256];
	uint32_t k;
	int rc;

	if (!b)
		return CUDA_ERROR_OUT_OF_MEMORY;
	b->fd = -1;
	for (k = 0; k < CV_RM_LANES; k++) {
		b->lane[k] = -1;
		pthread_mutex_init(&b->lane_tx[k], NULL);
		pthread_cond_init(&b->lane_cv[k], NULL);
	}
	b->next_id = 1;
	b->timeout_ns = (uint64_t)(cfg->timeout_ms > 0 ? cfg->timeout_ms :
				   CV_RM_TIMEOUT_MS) * 1000000ull;
	pthread_mutex_init(&b->tx, NULL);
	pthread_mutex_init(&b->rx, NULL);
	pthread_cond_init(&b->rxc, NULL);
	pthread_mutex_init(&b->idl, NULL);
	b->buf = malloc(TXBUF);
	b->o = mmap(NULL, (size_t)CV_RM_MAX_OBJS * sizeof(*b->o),
		    PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (!b->buf || b->o == MAP_FAILED) {
		rc = CUDA_ERROR_OUT_OF_MEMORY;
		goto fail;
	}
	if (!cfg->remote || !cfg->key) {
		cv_err("the remote backend needs --remote HOST[:PORT] and --peer-key FILE");
		rc = CUDA_ERROR_INVALID_VALUE;
		goto fail;
	}
	rc = attach(b, cfg, &ready, why, sizeof(why));
	if (rc) {
		cv_err("remote vGPU: %s", why);
		rc = CUDA_ERROR_DEVICE_UNAVAILABLE;
		goto fail;
	}
	if (ready.rc) {
		cv_err("remote vGPU: %s cannot open its GPU %d: CUresult %d",
		       ready.host, cfg->gpu, ready.rc);
		rc = ready.rc;
		goto fail;
	}
	*info = ready.dev;
	if (pthread_create(&b->rx_thread, NULL, rx_main, b) ||
	    pthread_create(&b->ping_thread, NULL, ping_main, b) ||
	    pthread_create(&b->fn_thread, NULL, fn_main, b)) {
		rc = CUDA_ERROR_OPERATING_SYSTEM;
		goto fail; /* the process exits on a failed open */
	}
	for (k = 0; k < b->nlanes; k++) {
		rc = lane_thread(b, k, lane_rx_main);
		if (!rc)
			rc = lane_thread(b, k, lane_tx_main);
		if (rc)
			goto fail; /* the process exits on a failed open */
	}
	b->zstd_ok = b->nlanes && (ready.flags & CV_RM_READY_ZSTD);
	b->zstd = cfg->compress && b->zstd_ok;
	cv_info("remote vGPU: on %s (%s), %.1f GiB, %u copy lane(s)%s", b->where,
		info->name, info->total_mem / 1073741824.0, b->nlanes,
		b->zstd ? ", zstd" : "");
	*out = b;
	return 0;
fail:
	if (b->fd >= 0)
		close(b->fd);
	free(b->buf);
	free(b);
	return rc;
}

static void r_close(struct cv_backend *b)
{
	struct cv_rm_hdr h = { .op = CV_RM_CLOSE };

	pthread_mutex_lock(&b->rx);
	b->closing = true;
	pthread_mutex_unlock(&b->rx);
	pthread_mutex_lock(&b->tx);
	if (!tx_flush(b))
		cv_peer_write(b->fd, &h, sizeof(h), cv_now_ns() + 1000000000ull);
	pthread_mutex_unlock(&b->tx);
	lose(b, "closed");
}

/* A batch goes once it is this big or this old, or when forced. */
#define FLUSH_BYTES (64u << 10)
#define FLUSH_AGE_NS 200000ull

static bool r_flush(struct cv_backend *b, bool force)
{
	bool held = false;
	int rc = 0;

	pthread_mutex_lock(&b->tx);
	if (b->blen && !force && b->blen < FLUSH_BYTES &&
	    cv_now_ns() - b->first_ns < FLUSH_AGE_NS)
		held = true;
	else
		rc = tx_flush(b);
	pthread_mutex_unlock(&b->tx);
	if (rc)
		lose(b, "the connection broke");
	return held;
}

static const char *r_where(struct cv_backend *b)
{
	return b->where;
}

/* ---- memory ----------------------------------------------------------------- */

static int r_host_register(struct cv_backend *b, void *p, size_t len)
{
	(void)b; (void)p; (void)len;
	return 0; /* bytes travel with each copy */
}

static int r_host_unregister(struct cv_backend *b, void *p)
{
	(void)b; (void)p;
	return 0;
}

static int r_va_reserve(struct cv_backend *b, uint64_t addr, uint64_t size)
{
	return call0(b, CV_RM_VA_RESERVE, ARGS(addr, size), NULL, 0, NULL);
}

static int r_mem_create(struct cv_backend *b, uint64_t size, cv_bobj *out)
{
	uint64_t id = id_new(b);
	int rc;

	if (!id)
		return CUDA_ERROR_OUT_OF_MEMORY;
	rc = call0(b, CV_RM_MEM_CREATE, ARGS(id, size), NULL, 0, NULL);
	if (rc)
		id_free(b, id);
	else
		*out = H(id);
	return rc;
}

static int r_mem_release(struct cv_backend *b, cv_bobj mem)
{
	int rc = tx_async(b, CV_RM_MEM_RELEASE, ARGS(ID(mem)), NULL, 0);

	id_free(b, ID(mem));
	return rc;
}

static int r_mem_map(struct cv_backend *b, uint64_t va, uint64_t size,
		     cv_bobj mem, uint64_t offset)
{
	return call0(b, CV_RM_MEM_MAP, ARGS(va, size, ID(mem), offset), NULL, 0,
		     NULL);
}

static int r_mem_unmap(struct cv_backend *b, uint64_t va, uint64_t size)
{
	return call0(b, CV_RM_MEM_UNMAP, ARGS(va, size), NULL, 0, NULL);
}

static int r_mem_export(struct cv_backend *b, cv_bobj mem, int *fd)
{
	(void)b; (void)mem; (void)fd;
	return CUDA_ERROR_NOT_SUPPORTED;
}

static int r_mem_import(struct cv_backend *b, int fd, uint64_t size,
			cv_bobj *out)
{
	(void)b; (void)fd; (void)size; (void)out;
	return CUDA_ERROR_NOT_SUPPORTED;
}

static int r_mem_info(struct cv_backend *b, uint64_t *fr, uint64_t *total)
{
	uint64_t v[4];
	int rc = call0(b, CV_RM_MEM_INFO, ARGS(0), NULL, 0, v);

	*fr = v[0];
	*total = v[1];
	return rc;
}

/* ---- streams, events, markers ------------------------------------------------ */

/* Creates object id by a synchronising op (its error matters now). */
static int create_sync(struct cv_backend *b, uint32_t op, uint64_t x,
		       uint64_t y, cv_bobj *out)
{
	uint64_t id = id_new(b);
	int rc;

	if (!id)
		return CUDA_ERROR_OUT_OF_MEMORY;
	rc = call0(b, op, ARGS(id, x, y), NULL, 0, NULL);
	if (rc)
		id_free(b, id);
	else
		*out = H(id);
	return rc;
}

static int destroy_async(struct cv_backend *b, uint32_t op, cv_bobj h)
{
	int rc = tx_async(b, op, ARGS(ID(h)), NULL, 0);

	id_free(b, ID(h));
	return rc;
}

static int r_stream_create(struct cv_backend *b, uint32_t flags, int prio,
			   cv_bobj *out)
{
	return create_sync(b, CV_RM_STREAM_CREATE, flags, (uint64_t)(int64_t)prio,
			   out);
}

static int r_stream_destroy(struct cv_backend *b, cv_bobj s)
{
	return destroy_async(b, CV_RM_STREAM_DESTROY, s);
}

static int r_stream_sync(struct cv_backend *b, cv_bobj s)
{
	return call0(b, CV_RM_STREAM_SYNC, ARGS(ID(s)), NULL, 0, NULL);
}

/* Whether every D2H copy sent before `need` has landed (waits if asked). */
static int d2h_landed(struct cv_backend *b, uint64_t need, bool wait)
{
	int rc = 0;

	pthread_mutex_lock(&b->rx);
	while (b->d2h_head && b->d2h_head->seq <= need && !b->lost) {
		if (!wait) {
			rc = CUDA_ERROR_NOT_READY;
			break;
		}
		pthread_cond_wait(&b->rxc, &b->rx);
	}
	if (!rc && b->lost && b->d2h_head && b->d2h_head->seq <= need)
		rc = LOST;
	pthread_mutex_unlock(&b->rx);
	return rc;
}

static int r_stream_query(struct cv_backend *b, cv_bobj s)
{
	uint64_t need = __atomic_load_n(&b->seq, __ATOMIC_RELAXED);
	int rc = call0(b, CV_RM_STREAM_QUERY, ARGS(ID(s)), NULL, 0, NULL);

	return rc ? rc : d2h_landed(b, need, false);
}

static int r_stream_wait_event(struct cv_backend *b, cv_bobj s, cv_bobj ev,
			       uint32_t flags)
{
	return tx_async(b, CV_RM_STREAM_WAIT_EVENT, ARGS(ID(s), ID(ev), flags),
			NULL, 0);
}

static int r_event_create(struct cv_backend *b, uint32_t flags, cv_bobj *out)
{
	return create_sync(b, CV_RM_EVENT_CREATE, flags, 0, out);
}

static int r_event_destroy(struct cv_backend *b, cv_bobj ev)
{
	return destroy_async(b, CV_RM_EVENT_DESTROY, ev);
}

static int r_event_record(struct cv_backend *b, cv_bobj ev, cv_bobj s,
			  uint32_t flags)
{
	return tx_async(b, CV_RM_EVENT_RECORD, ARGS(ID(ev), ID(s), flags), NULL,
			0);
}

static int r_event_sync(struct cv_backend *b, cv_bobj ev)
{
	return call0(b, CV_RM_EVENT_SYNC, ARGS(ID(ev)), NULL, 0, NULL);
}

static int r_event_query(struct cv_backend *b, cv_bobj ev)
{
	return call0(b, CV_RM_EVENT_QUERY, ARGS(ID(ev)), NULL, 0, NULL);
}

static int r_event_elapsed(struct cv_backend *b, cv_bobj start, cv_bobj end,
			   float *ms)
{
	uint64_t v[4];
	int rc = call0(b, CV_RM_EVENT_ELAPSED, ARGS(ID(start), ID(end)), NULL,
		       0, v);

	memcpy(ms, &v[0], sizeof(*ms));
	return rc;
}

static int r_marker_create(struct cv_backend *b, cv_bobj *out)
{
	uint64_t id = id_new(b);
	int rc;

	if (!id)
		return CUDA_ERROR_OUT_OF_MEMORY;
	rc = tx_async(b, CV_RM_MARKER_CREATE, ARGS(id), NULL, 0);
	if (rc)
		id_free(b, id);
	else
		*out = H(id);
	return rc;
}

static int r_marker_destroy(struct cv_backend *b, cv_bobj m)
{
	return destroy_async(b, CV_RM_MARKER_DESTROY, m);
}

static int r_marker_record(struct cv_backend *b, cv_bobj m, cv_bobj s)
{
	pthread_mutex_lock(&b->rx);
	b->o[ID(m)].need = b->d2h_sent;
	pthread_mutex_unlock(&b->rx);
	return tx_async(b, CV_RM_MARKER_RECORD, ARGS(ID(m), ID(s)), NULL, 0);
}

static int r_marker_query(struct cv_backend *b, cv_bobj m)
{
	int rc = call0(b, CV_RM_MARKER_QUERY, ARGS(ID(m)), NULL, 0, NULL);

	return rc ? rc : d2h_landed(b, b->o[ID(m)].need, false);
}

static int r_marker_wait(struct cv_backend *b, cv_bobj m)
{
	int rc = call0(b, CV_RM_MARKER_WAIT, ARGS(ID(m)), NULL, 0, NULL);

	return rc ? rc : d2h_landed(b, b->o[ID(m)].need, true);
}

/* ---- copies ------------------------------------------------------------------ */

static int dtoh(struct cv_backend *b, uint64_t dst, uint64_t src, uint64_t len,
		cv_bobj s)
{
	struct d2h *d = calloc(1, sizeof(*d));
	bool z = __atomic_load_n(&b->zstd, __ATOMIC_RELAXED);
	struct cv_rm_args *a = ARGS(dst, src, len, ID(s),
				    z ? CV_RM_DTOH_ZSTD : 0);
	struct seg sg = { a, sizeof(*a) };

	if (!d)
		return CUDA_ERROR_OUT_OF_MEMORY;
	d->z = z;
	d->dst = (uint8_t *)(uintptr_t)dst;
	d->pitch = d->width = d->total = len;
	d->height = 1;
	return tx(b, CV_RM_DTOH, &sg, 1, NULL, d, false);
}

/*
 * A piece of a host-to-device copy with its bytes on the next copy lane:
 * the op goes now, the bytes are queued for the lane's thread. The
 * lane's lock is held from the op's number to the queueing, so that a
 * lane carries its copies in their order. The bytes are read when the
 * thread sends them: before the op can run on the other side, so before
 * anything can report it done (the caller's buffer is the caller's
 * until then, as for any asynchronous copy).
 */
static int htod_lane(struct cv_backend *b, uint64_t dst, uint64_t src,
		     uint64_t n, cv_bobj s)
{
	uint32_t k = __atomic_fetch_add(&b->lane_next, 1, __ATOMIC_RELAXED) %
		     b->nlanes;
	struct cv_rm_args *a = ARGS(dst, ID(s), k + 1, n);
	uint64_t seq = 0;
	int rc;

	pthread_mutex_lock(&b->lane_tx[k]);
	while (b->lane_tail[k] - b->lane_head[k] >= LANE_Q && !is_lost(b))
		pthread_cond_wait(&b->lane_cv[k], &b->lane_tx[k]);
	rc = is_lost(b) ? LOST :
	     tx_seq(b, CV_RM_HTOD, &(struct seg){ a, sizeof(*a) }, 1, NULL,
		    NULL, true, &seq);
	if (!rc) {
		b->lane_q[k][b->lane_tail[k] % LANE_Q] =
			(struct lane_job){ seq, src, n };
		b->lane_tail[k]++;
		pthread_cond_broadcast(&b->lane_cv[k]);
	}
	pthread_mutex_unlock(&b->lane_tx[k]);
	return rc;
}

/* Lane k's sender: the queued pieces' bytes, in order. */
static void *lane_tx_main(void *arg)
{
	struct lane_arg la = *(struct lane_arg *)arg;
	struct cv_backend *b = la.b;
	struct cv_rm_lane_hdr lh = { 0 };
	struct cv_lane_z z = { 0 };
	struct lane_job j;
	uint32_t k = la.k;
	uint64_t dl;
	int rc;

	free(arg);
	for (;;) {
		pthread_mutex_lock(&b->lane_tx[k]);
		while (b->lane_head[k] == b->lane_tail[k] && !is_lost(b))
			pthread_cond_wait(&b->lane_cv[k], &b->lane_tx[k]);
		if (is_lost(b)) {
			pthread_mutex_unlock(&b->lane_tx[k]);
			break;
		}
		j = b->lane_q[k][b->lane_head[k] % LANE_Q];
		pthread_mutex_unlock(&b->lane_tx[k]);
		lh.seq = j.seq;
		lh.len = (uint32_t)j.n;
		lh.zlen = __atomic_load_n(&b->zstd, __ATOMIC_RELAXED) ?
			  cv_lane_zstd(&z, (const void *)(uintptr_t)j.src,
				       lh.len) : 0;
		dl = cv_now_ns() + b->timeout_ns;
		rc = cv_peer_write(b->lane[k], &lh, sizeof(lh), dl);
		if (!rc)
			rc = cv_peer_write(b->lane[k], lh.zlen ?
					   (const void *)z.buf :
					   (const void *)(uintptr_t)j.src,
					   lh.zlen ? lh.zlen : j.n, dl);
		if (rc) {
			lose(b, rc == -ETIMEDOUT ? "the peer stopped taking data" :
						   "a copy lane broke");
			break;
		}
		pthread_mutex_lock(&b->lane_tx[k]);
		b->lane_head[k]++;
		pthread_cond_broadcast(&b->lane_cv[k]);
		pthread_mutex_unlock(&b->lane_tx[k]);
	}
	cv_lane_z_exit(&z);
	return NULL;
}

static bool r_compress(struct cv_backend *b, bool on)
{
	return __atomic_exchange_n(&b->zstd, on && b->zstd_ok,
				   __ATOMIC_RELAXED);
}

/* The copies issued so far: every HTOD piece has a seq at most this. */
static uint64_t r_copy_mark(struct cv_backend *b)
{
	return __atomic_load_n(&b->seq, __ATOMIC_ACQUIRE);
}

/* Waits until no lane holds a piece numbered mark or less (a piece
 * leaves its queue once its bytes are written; without lanes they were
 * written or batched before r_memcpy returned). */
static int r_copy_sent(struct cv_backend *b, uint64_t mark)
{
	uint32_t k;

	for (k = 0; k < b->nlanes; k++) {
		pthread_mutex_lock(&b->lane_tx[k]);
		while (b->lane_head[k] != b->lane_tail[k] &&
		       b->lane_q[k][b->lane_head[k] % LANE_Q].seq <= mark &&
		       !is_lost(b))
			pthread_cond_wait(&b->lane_cv[k], &b->lane_tx[k]);
		pthread_mutex_unlock(&b->lane_tx[k]);
	}
	return is_lost(b) ? LOST : 0;
}

static int r_memcpy(struct cv_backend *b, uint32_t kind, uint64_t dst,
		    uint64_t src, uint64_t len, cv_bobj s)
{
	uint64_t off, n;
	int rc = 0;

	if (!len)
		return 0;
	switch (kind) {
	case CV_COPY_HTOD:
		for (off = 0; !rc && off < len; off += n) {
			n = CV_MIN(len - off, (uint64_t)CV_RM_CHUNK);
			if (b->nlanes)
				rc = htod_lane(b, dst + off, src + off, n, s);
			else
				rc = tx_async(b, CV_RM_HTOD, ARGS(dst + off, ID(s)),
					      (const void *)(uintptr_t)(src + off),
					      n);
		}
		return rc;
	case CV_COPY_DTOH:
		return dtoh(b, dst, src, len, s);
	case CV_COPY_DTOD:
		return tx_async(b, CV_RM_DTOD, ARGS(dst, src, len, ID(s)), NULL, 0);
	}
	return CUDA_ERROR_INVALID_VALUE;
}

static int r_memcpy2d(struct cv_backend *b, const struct cv_copy2d *c,
		      cv_bobj s)
{
	uint64_t rows, r, k, n;
	struct d2h *d;
	uint8_t *tmp;
	int rc = 0;

	if (!c->width || !c->height)
		return 0;
	if (c->kind == CV_COPY_DTOD)
		return tx_async(b, CV_RM_MEMCPY2D,
				ARGS(c->dst, c->dst_pitch, c->src, c->src_pitch,
				     c->width, c->height, c->kind, ID(s)),
				NULL, 0);
	if (c->width > CV_RM_CHUNK) {
		/* Rows wider than a chunk: one 1D copy per row. */
		for (r = 0; !rc && r < c->height; r++)
			rc = r_memcpy(b, c->kind, c->dst + r * c->dst_pitch,
				      c->src + r * c->src_pitch, c->width, s);
		return rc;
	}
	rows = CV_RM_CHUNK / c->width;
	for (r = 0; !rc && r < c->height; r += n) {
		struct cv_rm_args *a;

		n = CV_MIN(rows, c->height - r);
		a = ARGS(c->dst + r * c->dst_pitch, c->dst_pitch,
			 c->src + r * c->src_pitch, c->src_pitch, c->width, n,
			 c->kind, ID(s));
		if (c->kind == CV_COPY_HTOD) {
			tmp = malloc(n * c->width);
			if (!tmp)
				return CUDA_ERROR_OUT_OF_MEMORY;
			for (k = 0; k < n; k++)
				memcpy(tmp + k * c->width,
				       (const void *)(uintptr_t)(a->a[2] +
								 k * c->src_pitch),
				       c->width);
			rc = tx_async(b, CV_RM_MEMCPY2D, a, tmp, n * c->width);
			free(tmp);
		} else {
			d = calloc(1, sizeof(*d));
			if (!d)
				return CUDA_ERROR_OUT_OF_MEMORY;
			d->dst = (uint8_t *)(uintptr_t)a->a[0];
			d->pitch = c->dst_pitch;
			d->width = c->width;
			d->height = n;
			d->total = n * c->width;
			rc = tx(b, CV_RM_MEMCPY2D, &(struct seg){ a, sizeof(*a) },
				1, NULL, d, false);
		}
	}
	return rc;
}

static int r_memset(struct cv_backend *b, uint64_t dst, uint64_t pitch,
		    uint32_t value, uint32_t elem, uint64_t width,
		    uint64_t height, cv_bobj s)
{
	return tx_async(b, CV_RM_MEMSET,
			ARGS(dst, pitch, value, elem, width, height, ID(s)),
			NULL, 0);
}

/* ---- modules and launches ------------------------------------------------------ */

static int r_module_load(struct cv_backend *b, const void *image, size_t len,
			 cv_bobj *out)
{
	uint64_t id;
	int rc;

	if (len > CV_RM_MAX_IMAGE)
		return CUDA_ERROR_NOT_SUPPORTED;
	if (!(id = id_new(b)))
		return CUDA_ERROR_OUT_OF_MEMORY;
	rc = call0(b, CV_RM_MODULE_LOAD, ARGS(id), image, len, NULL);
	if (rc)
		id_free(b, id);
	else
		*out = H(id);
	return rc;
}

static int r_module_unload(struct cv_backend *b, cv_bobj mod)
{
	return destroy_async(b, CV_RM_MODULE_UNLOAD, mod);
}

/* A peer's parameter layout must fit what we pack. */
static bool layout_ok(const struct cv_param *p, uint64_t n, uint64_t size)
{
	uint64_t i;

	if (size > 65536)
		return false;
	for (i = 0; i < n; i++)
		if (p[i].offset > size || p[i].size > size - p[i].offset)
			return false;
	return true;
}

static int r_get_function(struct cv_backend *b, cv_bobj mod, const char *name,
			  cv_bobj *out, struct cv_fparams *params)
{
	struct waiter w;
	uint64_t id = id_new(b);
	int rc;

	if (!id)
		return CUDA_ERROR_OUT_OF_MEMORY;
	rc = call(b, CV_RM_GET_FUNCTION, ARGS(ID(mod), id), name,
		  strlen(name), &w);
	if (!rc && (w.rep.v[0] > 65536 ||
		    w.blen != w.rep.v[0] * sizeof(struct cv_param) ||
		    !layout_ok((const struct cv_param *)w.bytes, w.rep.v[0],
			       w.rep.v[1])))
		rc = CUDA_ERROR_INVALID_VALUE;
	if (!rc) {
		params->n = (uint32_t)w.rep.v[0];
		params->size = (uint32_t)w.rep.v[1];
		params->p = malloc(w.blen + 1);
		b->o[id].fp = *params;
		b->o[id].fp.p = malloc(w.blen + 1);
		if (!params->p || !b->o[id].fp.p) {
			free(params->p);
			params->p = NULL;
			rc = CUDA_ERROR_OUT_OF_MEMORY;
		} else {
			memcpy(params->p, w.bytes, w.blen);
			memcpy(b->o[id].fp.p, w.bytes, w.blen);
		}
	}
	free(w.bytes);
	if (rc)
		id_free(b, id);
	else
		*out = H(id);
	return rc;
}

static int r_get_global(struct cv_backend *b, cv_bobj mod, const char *name,
			uint64_t *dptr, uint64_t *size)
{
	uint64_t v[4];
	int rc = call0(b, CV_RM_GET_GLOBAL, ARGS(ID(mod)), name, strlen(name), v);

	*dptr = v[0];
	*size = v[1];
	return rc;
}

static int r_module_function_name(struct cv_backend *b, cv_bobj mod,
				  uint32_t index, char *name, size_t size,
				  uint32_t *count)
{
	struct waiter w;
	int rc;

	size = CV_MIN(size, (size_t)CV_RM_MAX_NAME);
	rc = call(b, CV_RM_FUNCTION_NAME, ARGS(ID(mod), index, size), NULL, 0,
		  &w);
	if (!rc) {
		*count = w.rep.v[0] > UINT32_MAX ? 0 : (uint32_t)w.rep.v[0];
		if (size && w.blen) {
			size_t n = CV_MIN(w.blen, size);

			memcpy(name, w.bytes, n);
			name[n - 1] = 0;
		} else if (size) {
			name[0] = 0;
		}
	}
	free(w.bytes);
	return rc;
}

static int r_func_get_attr(struct cv_backend *b, cv_bobj f, int attrib,
			   int *value)
{
	uint64_t v[4];
	int rc = call0(b, CV_RM_FUNC_GET_ATTR, ARGS(ID(f), (uint64_t)attrib),
		       NULL, 0, v);

	*value = (int)(int64_t)v[0];
	return rc;
}

static int r_func_set_attr(struct cv_backend *b, cv_bobj f, int attrib,
			   int value)
{
	return call0(b, CV_RM_FUNC_SET_ATTR,
		     ARGS(ID(f), (uint64_t)attrib, (uint64_t)(int64_t)value),
		     NULL, 0, NULL);
}

static int r_func_set_cache(struct cv_backend *b, cv_bobj f, int config)
{
	return call0(b, CV_RM_FUNC_SET_CACHE, ARGS(ID(f), (uint64_t)config),
		     NULL, 0, NULL);
}

static int r_launch(struct cv_backend *b, cv_bobj f, const uint32_t grid[3],
		    const uint32_t block[3], uint32_t shmem, cv_bobj s,
		    void **params, const struct cv_launch_attr *attrs,
		    uint32_t nattrs)
{
	const struct cv_fparams *fp = &b->o[ID(f)].fp;
	uint8_t stack[4096], *pb = stack;
	struct cv_rm_args a = { { ID(f), grid[0], grid[1], grid[2], block[0],
				  block[1], block[2], shmem, ID(s), nattrs } };
	struct seg sg[3];
	uint32_t k;
	int rc;

	if (nattrs > CV_RM_MAX_ATTRS)
		return CUDA_ERROR_NOT_SUPPORTED;
	if (fp->size > sizeof(stack) && !(pb = malloc(fp->size)))
		return CUDA_ERROR_OUT_OF_MEMORY;
	memset(pb, 0, fp->size);
	for (k = 0; k < fp->n; k++)
		memcpy(pb + fp->p[k].offset, params[k], fp->p[k].size);
	sg[0] = (struct seg){ &a, sizeof(a) };
	sg[1] = (struct seg){ attrs, (size_t)nattrs * sizeof(*attrs) };
	sg[2] = (struct seg){ pb, fp->size };
	rc = tx(b, CV_RM_LAUNCH, sg, 3, NULL, NULL, false);
	if (pb != stack)
		free(pb);
	return rc;
}

static int r_host_func(struct cv_backend *b, cv_bobj s, cv_bhostfn fn,
		       void *arg)
{
	struct hostfn *f = calloc(1, sizeof(*f));
	int rc;

	if (!f)
		return CUDA_ERROR_OUT_OF_MEMORY;
	f->fn = fn;
	f->arg = arg;
	pthread_mutex_lock(&b->rx);
	f->id = ++b->hostfn_id;
	f->next = b->hostfns;
	b->hostfns = f;
	pthread_mutex_unlock(&b->rx);
	rc = tx_async(b, CV_RM_HOST_FUNC, ARGS(ID(s), f->id), NULL, 0);
	if (rc) {
		struct hostfn **pp;

		pthread_mutex_lock(&b->rx);
		for (pp = &b->hostfns; *pp; pp = &(*pp)->next)
			if (*pp == f) {
				*pp = f->next;
				break;
			}
		pthread_mutex_unlock(&b->rx);
		free(f);
	}
	return rc;
}

/* ---- context ------------------------------------------------------------------ */

static int r_ctx_sync(struct cv_backend *b)
{
	return call0(b, CV_RM_CTX_SYNC, ARGS(0), NULL, 0, NULL);
}

static int r_ctx_set_limit(struct cv_backend *b, int limit, uint64_t value)
{
	return call0(b, CV_RM_CTX_SET_LIMIT, ARGS((uint64_t)limit, value), NULL,
		     0, NULL);
}

static int r_ctx_get_limit(struct cv_backend *b, int limit, uint64_t *value)
{
	uint64_t v[4];
	int rc = call0(b, CV_RM_CTX_GET_LIMIT, ARGS((uint64_t)limit), NULL, 0, v);

	*value = v[0];
	return rc;
}

static int r_occupancy(struct cv_backend *b, cv_bobj f,
		       const struct cv_occupancy *in, struct cv_occupancy_r *out)
{
	uint64_t v[4];
	int rc = call0(b, CV_RM_OCCUPANCY, ARGS(ID(f)), in, sizeof(*in), v);

	out->value = (int64_t)v[0];
	out->grid = (int32_t)v[1];
	out->block = (int32_t)v[2];
	return rc;
}

static int r_occupancy_cluster(struct cv_backend *b, cv_bobj f, uint32_t kind,
			       const uint32_t grid[3], const uint32_t block[3],
			       uint32_t shmem, const struct cv_launch_attr *attrs,
			       uint32_t nattrs, int *value)
{
	uint64_t v[4];
	int rc;

	if (nattrs > CV_RM_MAX_ATTRS)
		return CUDA_ERROR_NOT_SUPPORTED;
	rc = call0(b, CV_RM_OCCUPANCY_CLUSTER,
		   ARGS(ID(f), kind, grid[0], grid[1], grid[2], block[0],
			block[1], block[2], shmem, nattrs),
		   attrs, (size_t)nattrs * sizeof(*attrs), v);
	*value = (int)(int64_t)v[0];
	return rc;
}

static int r_digest(struct cv_backend *b, uint64_t dev, uint64_t len,
		    uint32_t granule, uint64_t seed, uint8_t *out,
		    cv_bobj stream, uint32_t flags)
{
	uint64_t per, off, n;
	struct waiter w;
	int rc = 0;

	if (!granule || len % granule)
		return CUDA_ERROR_INVALID_VALUE;
	per = (uint64_t)(CV_RM_CHUNK / 16) * granule;
	for (off = 0; !rc && off < len; off += n) {
		n = CV_MIN(len - off, per);
		rc = call(b, CV_RM_DIGEST,
			  ARGS(dev + off, n, granule, seed, ID(stream), flags),
			  NULL, 0, &w);
		if (!rc && w.blen != n / granule * 16)
			rc = CUDA_ERROR_INVALID_VALUE;
		if (!rc)
			memcpy(out + off / granule * 16, w.bytes, w.blen);
		free(w.bytes);
	}
	return rc;
}

const struct cv_backend_ops cv_backend_remote = {
	.name = "remote",
	.open = r_open,
	.close = r_close,
	.host_register = r_host_register,
	.host_unregister = r_host_unregister,
	.va_reserve = r_va_reserve,
	.mem_create = r_mem_create,
	.mem_release = r_mem_release,
	.mem_map = r_mem_map,
	.mem_unmap = r_mem_unmap,
	.mem_export = r_mem_export,
	.mem_import = r_mem_import,
	.mem_info = r_mem_info,
	.stream_create = r_stream_create,
	.stream_destroy = r_stream_destroy,
	.stream_sync = r_stream_sync,
	.stream_query = r_stream_query,
	.stream_wait_event = r_stream_wait_event,
	.event_create = r_event_create,
	.event_destroy = r_event_destroy,
	.event_record = r_event_record,
	.event_sync = r_event_sync,
	.event_query = r_event_query,
	.event_elapsed = r_event_elapsed,
	.memcpy = r_memcpy,
	.memcpy2d = r_memcpy2d,
	.memset = r_memset,
	.module_load = r_module_load,
	.module_unload = r_module_unload,
	.get_function = r_get_function,
	.get_global = r_get_global,
	.module_function_name = r_module_function_name,
	.func_get_attr = r_func_get_attr,
	.func_set_attr = r_func_set_attr,
	.func_set_cache = r_func_set_cache,
	.launch = r_launch,
	.host_func = r_host_func,
	.ctx_sync = r_ctx_sync,
	.ctx_set_limit = r_ctx_set_limit,
	.ctx_get_limit = r_ctx_get_limit,
	.occupancy = r_occupancy,
	.occupancy_cluster = r_occupancy_cluster,
	.marker_create = r_marker_create,
	.marker_destroy = r_marker_destroy,
	.marker_record = r_marker_record,
	.marker_query = r_marker_query,
	.marker_wait = r_marker_wait,
	.digest = r_digest,
	.flush = r_flush,
	.compress = r_compress,
	.copy_mark = r_copy_mark,
	.copy_sent = r_copy_sent,
	.where = r_where,
};

/* SPDX-License-Identifier: MIT */
/*
 * The serving end of a remote vGPU (core/remote.h, docs/remote.md): a
 * worker started by its host's daemon for a peer's worker, with the
 * authenticated connection, that runs the peer's backend calls on the
 * real backend.
 *
 * Threads: the reader takes messages off the connection and queues them;
 * the executor runs the ordered ones in order; the side thread runs side
 * ops (queries, marker waits, digests) once the ordered op they follow
 * ran; the pinger says we are alive. The peer is untrusted: every id is
 * looked up with its type, every device range must lie in memory mapped
 * through this connection, every length is capped, and the window and
 * the quota are ours to enforce.
 */
#include <cuda.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/peer.h"
#include "../core/remote.h"
#include "../core/util.h"
#include "remote.h"
#include "tables.h"

#define NBOUNCE 8
/* Messages of up to SMALL_MSG payload bytes (launches, most ops) come
 * from a pool the executor gives back a batch at a time: no malloc and
 * no cross-thread free per launch. */
#define SMALL_MSG 512u
#define ANSWER (-1)   /* exec_op: the answer is filled in */
#define EXEC_SPIN_NS 50000ull
#define READ_SPIN_NS 50000ull
#define QUEUE_MAX (256ull << 20)

enum { O_NONE, O_MEM, O_STREAM, O_EVENT, O_MODULE, O_FUNC, O_MARKER };

struct obj {
	uint8_t type;
	int busy;               /* side ops using it */
	cv_bobj h;
	uint64_t size;          /* O_MEM */
	struct cv_fparams fp;   /* O_FUNC */
};

struct msg {
	struct msg *next;
	bool small;             /* from the pool: SMALL_MSG bytes of p */
	struct cv_rm_hdr h;
	int rx;                 /* HTOD: the rx chunk its bytes are in, -1 */
	_Alignas(8) uint8_t p[]; /* read as uint64_t arguments */
};

/* An HTOD's bytes go from the socket straight into a registered chunk
 * (no copy on the way): FREE -> FILLED (reader) -> SENT (the executor
 * queued the DMA and recorded the chunk's marker) -> FREE once the
 * reader, wanting it again, waited for the marker. A lane's chunk is
 * FILLING while its bytes come in. */
enum { RX_FREE, RX_FILLED, RX_SENT, RX_FILLING };
#define NRX_MAIN 8
/* Then two chunks per copy lane: lane k fills NRX_MAIN + 2k + {0,1}. */
#define NRX (NRX_MAIN + 2 * CV_RM_LANES)

struct queue {
	struct msg *head, *tail;
};

struct hostfn {
	struct hostfn *next;
	uint64_t id;
	bool done;
};

static struct {
	const struct cv_backend_ops *ops;
	struct cv_backend *b;
	int fd;
	uint64_t timeout_ns;
	uint64_t quota, used;
	bool reserved;
	char peer[CV_PEER_HOST_LEN];

	pthread_mutex_t tx_lock;

	pthread_mutex_t lock;   /* queues, objects, done_seq, hostfns */
	pthread_cond_t cond;    /* objects, host functions */
	pthread_cond_t exec_cond, side_cond, space_cond;
	int exec_waiting, side_waiting, reader_waiting;
	int seq_waiting;        /* the side thread waits for done_seq */
	struct queue exec, side;
	struct msg *pool;       /* small messages the executor is done with */
	uint64_t queued;        /* bytes in exec */
	uint64_t done_seq;      /* last ordered op that ran */
	bool stop;
	struct obj *o;
	uint32_t no;
	struct hostfn *hostfns;

	pthread_rwlock_t map_lock;
	struct cv_rangeset mapped;
	struct cv_rangeset globals;   /* modules' globals, found by name */

	int32_t pending;        /* first asynchronous error not yet told */
	uint64_t nops, idle_ns, t_start; /* the executor's, for the log */
	uint64_t zin, zout;     /* compressed pieces: bytes in, bytes out */
	uint64_t zsent, zraw;   /* DTOH pieces sent compressed: bytes, of */
	uint8_t *rx;            /* NRX chunks, registered */
	cv_bobj rxmark[NRX];
	int rxstate[NRX];       /* under lock */
	uint64_t rxseq[NRX];    /* lanes' chunks: the HTOD they are for */
	uint32_t rxlen[NRX];

	/* Copy lanes (core/remote.h). */
	uint8_t session[CV_PEER_KEY_LEN];
	bool have_session;
	int lfd;                /* their listening socket, -1 */
	int lane[CV_RM_LANES];  /* -1 until connected */
	pthread_mutex_t lane_tx[CV_RM_LANES];
	/* DTOH pieces each lane's sender thread has to send (under lock) */
	struct ljob {
		struct cv_rm_lane_data ld;
		int chunk;       /* bounce chunk of the bytes, -1: none */
		bool z;          /* compress them where it pays */
	} lq[CV_RM_LANES][NBOUNCE + 1];
	uint32_t lq_head[CV_RM_LANES], lq_tail[CV_RM_LANES];
	uint32_t lane_rnext[CV_RM_LANES], lane_cnext[CV_RM_LANES];
	uint32_t nlanes;        /* connected (atomic) */
	uint32_t dlane;         /* the next DTOH piece's lane */
	pthread_cond_t lane_cond;
	char host[64];
	uint32_t rxnext;
	uint8_t *bounce;
	cv_bobj bmark[NBOUNCE];
	bool bused[NBOUNCE];
	bool bsend[NBOUNCE];     /* a lane sends from it (under lock) */
	uint32_t bnext;
} R;

/* ---- sending ------------------------------------------------------------ */

static int send_msg(uint32_t op, uint64_t seq, const void *fixed,
		    size_t flen, const void *bytes, size_t blen)
{
	struct cv_rm_hdr h = { .op = op, .len = (uint32_t)(flen + blen),
			       .seq = seq };
	uint64_t dl = cv_now_ns() + R.timeout_ns;
	int rc;

	pthread_mutex_lock(&R.tx_lock);
	rc = cv_peer_write(R.fd, &h, sizeof(h), dl);
	if (!rc && flen)
		rc = cv_peer_write(R.fd, fixed, flen, dl);
	if (!rc && blen)
		rc = cv_peer_write(R.fd, bytes, blen, dl);
	pthread_mutex_unlock(&R.tx_lock);
	if (rc) {
		/* The reader sees the connection go and ends everything. */
		shutdown(R.fd, SHUT_RDWR);
	}
	return rc;
}

static void reply(uint64_t seq, int rc, const uint64_t *v, int nv,
		  const void *bytes, size_t blen)
{
	struct cv_rm_rep r = { .rc = rc };
	int i;

	for (i = 0; i < nv && i < 4; i++)
		r.v[i] = v[i];
	send_msg(CV_RM_REPLY, seq, &r, sizeof(r), bytes, blen);
}

/* ---- objects ------------------------------------------------------------- */

static struct obj *obj_get(uint64_t id, int type)
{
	if (!id || id >= R.no || R.o[id].type != type)
		return NULL;
	return &R.o[id];
}

/* A new object's slot: an id below the cap that is free. The table is
 * allocated whole at the start (pages come as ids are used), so a side
 * op's pointer into it stays valid. */
static struct obj *obj_new(uint64_t id)
{
	if (!id || id >= R.no)
		return NULL;
	return R.o[id].type == O_NONE ? &R.o[id] : NULL;
}

/* A stream argument: 0 is the legacy default stream. */
static int stream_arg(uint64_t id, cv_bobj *s)
{
	struct obj *o;

	if (!id) {
		*s = NULL;
		return 0;
	}
	o = obj_get(id, O_STREAM);
	if (!o)
		return CUDA_ERROR_INVALID_HANDLE;
	*s = o->h;
	return 0;
}

/* Frees an object's slot once no side op uses it. */
static void obj_drop(struct obj *o)
{
	pthread_mutex_lock(&R.lock);
	while (o->busy)
		pthread_cond_wait(&R.cond, &R.lock);
	if (o->type == O_FUNC)
		free(o->fp.p);
	memset(o, 0, sizeof(*o));
	pthread_mutex_unlock(&R.lock);
}

static void obj_set(struct obj *o, int type, cv_bobj h)
{
	pthread_mutex_lock(&R.lock);
	o->type = (uint8_t)type;
	o->h = h;
	pthread_mutex_unlock(&R.lock);
}

/* ---- device ranges ---------------------------------------------------------- */

static bool extent(uint64_t base, uint64_t pitch, uint64_t width,
		   uint64_t height, uint64_t *len)
{
	uint64_t span;

	if (!width || !height || (height > 1 && pitch < width))
		return false;
	if (__builtin_mul_overflow(pitch, height - 1, &span) ||
	    __builtin_add_overflow(span, width, len) ||
	    base + *len < base)
		return false;
	return true;
}

static bool dev_ok(uint64_t addr, uint64_t len)
{
	bool ok;

	pthread_rwlock_rdlock(&R.map_lock);
	ok = len && addr + len > addr &&
	     (cv_rangeset_covers(&R.mapped, addr, len) ||
	      cv_rangeset_covers(&R.globals, addr, len));
	pthread_rwlock_unlock(&R.map_lock);
	return ok;
}

/* Forgets the globals of a module that goes. */
static void drop_globals(cv_bobj mod)
{
	uint32_t i;

	pthread_rwlock_wrlock(&R.map_lock);
	for (i = R.globals.n; i-- > 0;)
		if (R.globals.r[i].owner == mod)
			cv_rangeset_del(&R.globals, R.globals.r[i].base,
					R.globals.r[i].size, NULL);
	pthread_rwlock_unlock(&R.map_lock);
}

/* ---- bounce buffers ------------------------------------------------------ */

static int bounce_take(uint32_t *i)
{
	int rc = 0;

	*i = R.bnext;
	R.bnext = (R.bnext + 1) % NBOUNCE;
	if (R.bused[*i])
		rc = R.ops->marker_wait(R.b, R.bmark[*i]);
	R.bused[*i] = false;
	/* A lane may still be sending it (send_data). */
	pthread_mutex_lock(&R.lock);
	while (R.bsend[*i] && !R.stop)
		pthread_cond_wait(&R.lane_cond, &R.lock);
	pthread_mutex_unlock(&R.lock);
	return R.stop ? CUDA_ERROR_DEVICE_UNAVAILABLE : rc;
}

static uint8_t *bounce_at(uint32_t i)
{
	return R.bounce + (size_t)i * CV_RM_CHUNK;
}

/* After the work queued on s, chunk i is free again. */
static int bounce_after(uint32_t i, cv_bobj s)
{
	int rc = R.ops->marker_record(R.b, R.bmark[i], s);

	R.bused[i] = !rc;
	return rc;
}

static int bounce_sync(uint32_t i, cv_bobj s)
{
	int rc = R.ops->marker_record(R.b, R.bmark[i], s);

	return rc ? rc : R.ops->marker_wait(R.b, R.bmark[i]);
}

/* ---- ordered ops -------------------------------------------------------------- */

/* A DTOH's DATA: queued for the next copy lane's sender when there are
 * lanes (they take turns; the bounce chunk stays taken until it went;
 * z: the sender compresses it where that pays), else sent over the
 * connection now. */
static int send_data(uint64_t seq, const struct cv_rm_data *d, int chunk,
		     size_t n, bool z)
{
	uint32_t nl = __atomic_load_n(&R.nlanes, __ATOMIC_ACQUIRE), k;
	struct ljob j = { { .seq = seq, .off = d->off, .rc = d->rc,
			    .len = (uint32_t)n }, chunk, z };

	if (!nl)
		return send_msg(CV_RM_DATA, seq, d, sizeof(*d),
				chunk >= 0 ? bounce_at((uint32_t)chunk) : NULL,
				n);
	k = R.dlane++ % nl;
	pthread_mutex_lock(&R.lock);
	while (R.lq_tail[k] - R.lq_head[k] > NBOUNCE && !R.stop)
		pthread_cond_wait(&R.lane_cond, &R.lock);
	if (chunk >= 0)
		R.bsend[chunk] = true;
	R.lq[k][R.lq_tail[k]++ % (NBOUNCE + 1)] = j;
	pthread_cond_broadcast(&R.lane_cond);
	pthread_mutex_unlock(&R.lock);
	return R.stop ? -ECONNRESET : 0;
}

/* Lane k's sender of DTOH pieces. */
static void *lane_send_main(void *arg)
{
	uint32_t k = (uint32_t)(uintptr_t)arg;
	struct cv_lane_z z = { 0 };
	const uint8_t *p;
	struct ljob j;
	int rc;

	for (;;) {
		pthread_mutex_lock(&R.lock);
		while (R.lq_head[k] == R.lq_tail[k] && !R.stop)
			pthread_cond_wait(&R.lane_cond, &R.lock);
		if (R.stop) {
			pthread_mutex_unlock(&R.lock);
			break;
		}
		j = R.lq[k][R.lq_head[k] % (NBOUNCE + 1)];
		pthread_mutex_unlock(&R.lock);
		p = j.ld.len ? bounce_at((uint32_t)j.chunk) : NULL;
		j.ld.zlen = j.z && p ? cv_lane_zstd(&z, p, j.ld.len) : 0;
		if (j.ld.zlen) {
			__atomic_add_fetch(&R.zsent, j.ld.zlen, __ATOMIC_RELAXED);
			__atomic_add_fetch(&R.zraw, j.ld.len, __ATOMIC_RELAXED);
			p = z.buf;
		}
		rc = cv_peer_write(R.lane[k], &j.ld, sizeof(j.ld),
				   cv_now_ns() + R.timeout_ns);
		if (!rc && p)
			rc = cv_peer_write(R.lane[k], p,
					   j.ld.zlen ? j.ld.zlen : j.ld.len,
					   cv_now_ns() + R.timeout_ns);
		pthread_mutex_lock(&R.lock);
		R.lq_head[k]++;
		if (j.chunk >= 0)
			R.bsend[j.chunk] = false;
		pthread_cond_broadcast(&R.lane_cond);
		pthread_mutex_unlock(&R.lock);
		if (rc) {
			shutdown(R.fd, SHUT_RDWR);
			break;
		}
	}
	cv_lane_z_exit(&z);
	return NULL;
}

/* Starts the device-to-host copy of piece [off, off + n) into a chunk. */
static int dtoh_start(uint64_t src, uint64_t off, uint64_t n, cv_bobj s,
		      uint32_t *i)
{
	int rc = bounce_take(i);

	if (!rc)
		rc = R.ops->memcpy(R.b, CV_COPY_DTOH, (uint64_t)bounce_at(*i),
				   src + off, n, s);
	if (!rc)
		rc = R.ops->marker_record(R.b, R.bmark[*i], s);
	return rc;
}

/* A device-to-host copy: DATA of CV_RM_CHUNK bytes each, the next piece
 * copied from the GPU while this one goes out. */
static int do_dtoh(const struct msg *m, const uint64_t *a)
{
	uint64_t src = a[1], len = a[2], off = 0, n, next;
	struct cv_rm_data d = { 0 };
	uint32_t i = 0, j = 0;
	cv_bobj s;
	int rc;

	rc = stream_arg(a[3], &s);
	if (!rc && (!dev_ok(src, len) || (a[4] & ~(uint64_t)CV_RM_DTOH_ZSTD)))
		rc = CUDA_ERROR_INVALID_VALUE;
	n = CV_MIN(len, (uint64_t)CV_RM_CHUNK);
	if (!rc)
		rc = dtoh_start(src, 0, n, s, &i);
	while (!rc && off < len) {
		rc = R.ops->marker_wait(R.b, R.bmark[i]);
		if (rc)
			break;
		next = off + n;
		if (next < len) {
			rc = dtoh_start(src, next, CV_MIN(len - next,
							  (uint64_t)CV_RM_CHUNK),
					s, &j);
			if (rc)
				break;
		}
		d.off = off;
		if (send_data(m->h.seq, &d, (int)i, n,
			      a[4] & CV_RM_DTOH_ZSTD))
			return 0;
		off = next;
		n = CV_MIN(len - off, (uint64_t)CV_RM_CHUNK);
		i = j;
	}
	if (rc) {
		d.off = off;
		d.rc = rc;
		send_data(m->h.seq, &d, -1, 0, false);
	}
	return 0; /* told through DATA */
}

static int do_memcpy2d(const struct msg *m, const uint64_t *a,
		       const uint8_t *bytes, size_t blen)
{
	struct cv_copy2d c = { .dst = a[0], .dst_pitch = a[1], .src = a[2],
			       .src_pitch = a[3], .width = a[4], .height = a[5],
			       .kind = (uint32_t)a[6] };
	struct cv_rm_data d = { 0 };
	uint64_t len, host;
	cv_bobj s;
	uint32_t i;
	int rc;

	rc = stream_arg(a[7], &s);
	if (rc)
		goto out;
	if (__builtin_mul_overflow(c.width, c.height, &host))
		host = UINT64_MAX;
	rc = CUDA_ERROR_INVALID_VALUE;
	switch (c.kind) {
	case CV_COPY_HTOD:
		if (host != blen || !extent(c.dst, c.dst_pitch, c.width,
					    c.height, &len) ||
		    !dev_ok(c.dst, len))
			goto out;
		if ((rc = bounce_take(&i)))
			goto out;
		memcpy(bounce_at(i), bytes, blen);
		c.src = (uint64_t)bounce_at(i);
		c.src_pitch = c.width;
		rc = R.ops->memcpy2d(R.b, &c, s);
		if (!rc)
			rc = bounce_after(i, s);
		break;
	case CV_COPY_DTOH:
		if (blen || host > CV_RM_CHUNK ||
		    !extent(c.src, c.src_pitch, c.width, c.height, &len) ||
		    !dev_ok(c.src, len))
			goto out;
		if ((rc = bounce_take(&i)))
			goto out;
		c.dst = (uint64_t)bounce_at(i);
		c.dst_pitch = c.width;
		rc = R.ops->memcpy2d(R.b, &c, s);
		if (!rc)
			rc = bounce_sync(i, s);
		if (!rc) {
			send_msg(CV_RM_DATA, m->h.seq, &d, sizeof(d),
				 bounce_at(i), host);
			return 0;
		}
		break;
	case CV_COPY_DTOD:
		if (blen || !extent(c.src, c.src_pitch, c.width, c.height, &len) ||
		    !dev_ok(c.src, len) ||
		    !extent(c.dst, c.dst_pitch, c.width, c.height, &len) ||
		    !dev_ok(c.dst, len))
			goto out;
		rc = R.ops->memcpy2d(R.b, &c, s);
		break;
	}
out:
	if (c.kind == CV_COPY_DTOH) {
		d.rc = rc ? rc : CUDA_ERROR_INVALID_VALUE;
		send_msg(CV_RM_DATA, m->h.seq, &d, sizeof(d), NULL, 0);
		return 0;
	}
	return rc;
}

static void hostfn_tramp(void *arg)
{
	struct hostfn *h = arg, **pp;

	pthread_mutex_lock(&R.lock);
	h->next = R.hostfns;
	R.hostfns = h;
	pthread_mutex_unlock(&R.lock);
	send_msg(CV_RM_HOSTFN, 0, &h->id, sizeof(h->id), NULL, 0);
	pthread_mutex_lock(&R.lock);
	while (!h->done && !R.stop)
		pthread_cond_wait(&R.cond, &R.lock);
	for (pp = &R.hostfns; *pp; pp = &(*pp)->next)
		if (*pp == h) {
			*pp = h->next;
			break;
		}
	pthread_mutex_unlock(&R.lock);
	free(h);
}

/* A launch's parameters, checked against the function's layout. */
static int do_launch(const uint64_t *a, const uint8_t *bytes, size_t blen)
{
	struct cv_launch_attr sattrs[CV_RM_MAX_ATTRS];
	uint64_t spbuf[512];
	void *sparams[256];
	const struct cv_launch_attr *attrs;
	uint32_t grid[3], block[3], k;
	struct obj *f = obj_get(a[0], O_FUNC);
	void **params;
	uint8_t *pbuf;
	cv_bobj s;
	int rc;

	if (!f)
		return CUDA_ERROR_INVALID_HANDLE;
	for (k = 0; k < 3; k++) {
		if (a[1 + k] > UINT32_MAX || a[4 + k] > UINT32_MAX)
			return CUDA_ERROR_INVALID_VALUE;
		grid[k] = (uint32_t)a[1 + k];
		block[k] = (uint32_t)a[4 + k];
	}
	if (a[7] > UINT32_MAX || cv_rm_launch_split(blen, a[9], f->fp.size))
		return CUDA_ERROR_INVALID_VALUE;
	if ((rc = stream_arg(a[8], &s)))
		return rc;
	/* Aligned copies (the packed bytes follow the attributes), on the
	 * stack for the usual sizes: this is the launch path. */
	attrs = a[9] ? sattrs : NULL;
	pbuf = f->fp.size <= sizeof(spbuf) ? (uint8_t *)spbuf :
						  malloc(f->fp.size);
	params = f->fp.n <= CV_ARRAY_SIZE(sparams) ? sparams :
		 calloc(f->fp.n, sizeof(*params));
	if (!pbuf || !params) {
		rc = CUDA_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	if (a[9])
		memcpy(sattrs, bytes, a[9] * sizeof(*attrs));
	memcpy(pbuf, bytes + a[9] * sizeof(*attrs), f->fp.size);
	for (k = 0; k < f->fp.n; k++)
		params[k] = pbuf + f->fp.p[k].offset;
	rc = R.ops->launch(R.b, f->h, grid, block, (uint32_t)a[7], s, params,
			   attrs, (uint32_t)a[9]);
out:
	if (pbuf != (uint8_t *)spbuf)
		free(pbuf);
	if (params != sparams)
		free(params);
	return rc;
}

/* A terminated copy of a name of blen bytes, or NULL. */
static char *name_of(const uint8_t *bytes, size_t blen)
{
	char *n;

	if (!blen || blen > CV_RM_MAX_NAME)
		return NULL;
	n = malloc(blen + 1);
	if (n) {
		memcpy(n, bytes, blen);
		n[blen] = 0;
	}
	return n;
}

/*
 * An HTOD whose bytes come over copy lane a[2] - 1: waits for its chunk
 * there and points m->rx at it. A lane that sends another copy's bytes
 * than the next one for it breaks the protocol: -EBADMSG, and we stop.
 */
static int lane_chunk(struct msg *m, const uint64_t *a, size_t *blen)
{
	uint32_t k = (uint32_t)(a[2] - 1), c;
	int rc = 0;

	if (a[2] > CV_RM_LANES || !a[3] || a[3] > CV_RM_CHUNK)
		rc = -EBADMSG;
	pthread_mutex_lock(&R.lock);
	c = NRX_MAIN + 2 * k + R.lane_cnext[k];
	while (!rc && !R.stop && R.rxstate[c] != RX_FILLED)
		pthread_cond_wait(&R.lane_cond, &R.lock);
	if (!rc && (R.stop || R.rxseq[c] != m->h.seq || R.rxlen[c] != a[3]))
		rc = -EBADMSG;
	if (!rc) {
		R.lane_cnext[k] ^= 1;
		m->rx = (int)c;
		*blen = a[3];
	}
	pthread_mutex_unlock(&R.lock);
	if (rc && !R.stop) {
		cv_warn("remote: the peer \"%s\" sent a copy's bytes out of "
			"order on a lane; closing", R.peer);
		shutdown(R.fd, SHUT_RDWR);
	}
	return rc;
}

/*
 * Runs one ordered op; for a SYNC one, fills the answer (rc, v, bytes)
 * and returns ANSWER, else returns the op's CUresult.
 */
static int exec_op(struct msg *m, int *rrc, uint64_t *v,
		   uint8_t **out, size_t *olen)
{
	const uint64_t *a = (const uint64_t *)m->p;
	const uint8_t *bytes = m->p + sizeof(struct cv_rm_args);
	size_t blen = m->h.len - sizeof(struct cv_rm_args);
	const struct cv_backend_ops *ops = R.ops;
	struct obj *o, *o2;
	cv_bobj s, h;
	char *name;
	int rc = 0;

#define SYNC(x) do { *rrc = (x); return ANSWER; } while (0)
	switch (m->h.op) {
	case CV_RM_VA_RESERVE:
		if (R.reserved || a[0] != CV_WINDOW_ADDR || a[1] != CV_WINDOW_SIZE)
			SYNC(CUDA_ERROR_INVALID_VALUE);
		rc = ops->va_reserve(R.b, a[0], a[1]);
		R.reserved = !rc;
		SYNC(rc);
	case CV_RM_MEM_CREATE:
		if (!a[1] || a[1] % CV_GRANULE || a[1] > R.quota - R.used)
			SYNC(a[1] && !(a[1] % CV_GRANULE) ?
				     CUDA_ERROR_OUT_OF_MEMORY : CUDA_ERROR_INVALID_VALUE);
		if (!(o = obj_new(a[0])))
			SYNC(CUDA_ERROR_INVALID_HANDLE);
		rc = ops->mem_create(R.b, a[1], &h);
		if (!rc) {
			o->size = a[1];
			R.used += a[1];
			obj_set(o, O_MEM, h);
		}
		SYNC(rc);
	case CV_RM_MEM_RELEASE:
		if (!(o = obj_get(a[0], O_MEM)))
			return CUDA_ERROR_INVALID_HANDLE;
		rc = ops->mem_release(R.b, o->h);
		R.used -= o->size;
		obj_drop(o);
		return rc;
	case CV_RM_MEM_MAP:
		o = obj_get(a[2], O_MEM);
		if (!o)
			SYNC(CUDA_ERROR_INVALID_HANDLE);
		if (!R.reserved || !a[1] || a[0] % CV_GRANULE || a[1] % CV_GRANULE ||
		    a[3] % CV_GRANULE || a[0] < CV_WINDOW_ADDR ||
		    a[1] > CV_WINDOW_SIZE ||
		    a[0] - CV_WINDOW_ADDR > CV_WINDOW_SIZE - a[1] ||
		    a[3] > o->size || a[1] > o->size - a[3])
			SYNC(CUDA_ERROR_INVALID_VALUE);
		pthread_rwlock_wrlock(&R.map_lock);
		rc = cv_rangeset_overlaps(&R.mapped, a[0], a[1]) ?
			     CUDA_ERROR_INVALID_VALUE :
			     ops->mem_map(R.b, a[0], a[1], o->h, a[3]);
		if (!rc && cv_rangeset_add(&R.mapped, a[0], a[1], NULL)) {
			ops->mem_unmap(R.b, a[0], a[1]);
			rc = CUDA_ERROR_OUT_OF_MEMORY;
		}
		pthread_rwlock_unlock(&R.map_lock);
		SYNC(rc);
	case CV_RM_MEM_UNMAP:
		pthread_rwlock_wrlock(&R.map_lock);
		rc = cv_rangeset_del(&R.mapped, a[0], a[1], NULL) ?
			     CUDA_ERROR_INVALID_VALUE :
			     ops->mem_unmap(R.b, a[0], a[1]);
		pthread_rwlock_unlock(&R.map_lock);
		SYNC(rc);
	case CV_RM_MEM_INFO:
		rc = ops->mem_info(R.b, &v[0], &v[1]);
		SYNC(rc);
	case CV_RM_STREAM_CREATE:
		if (!(o = obj_new(a[0])))
			SYNC(CUDA_ERROR_INVALID_HANDLE);
		rc = ops->stream_create(R.b, (uint32_t)a[1], (int)a[2], &h);
		if (!rc)
			obj_set(o, O_STREAM, h);
		SYNC(rc);
	case CV_RM_STREAM_DESTROY:
		if (!(o = obj_get(a[0], O_STREAM)))
			return CUDA_ERROR_INVALID_HANDLE;
		rc = ops->stream_destroy(R.b, o->h);
		obj_drop(o);
		return rc;
	case CV_RM_STREAM_SYNC:
		if (!(rc = stream_arg(a[0], &s)))
			rc = ops->stream_sync(R.b, s);
		SYNC(rc);
	case CV_RM_STREAM_WAIT_EVENT:
		if ((rc = stream_arg(a[0], &s)))
			return rc;
		if (!(o = obj_get(a[1], O_EVENT)))
			return CUDA_ERROR_INVALID_HANDLE;
		return ops->stream_wait_event(R.b, s, o->h, (uint32_t)a[2]);
	case CV_RM_EVENT_CREATE:
		if (!(o = obj_new(a[0])))
			SYNC(CUDA_ERROR_INVALID_HANDLE);
		rc = ops->event_create(R.b, (uint32_t)a[1], &h);
		if (!rc)
			obj_set(o, O_EVENT, h);
		SYNC(rc);
	case CV_RM_EVENT_DESTROY:
		if (!(o = obj_get(a[0], O_EVENT)))
			return CUDA_ERROR_INVALID_HANDLE;
		rc = ops->event_destroy(R.b, o->h);
		obj_drop(o);
		return rc;
	case CV_RM_EVENT_RECORD:
		if ((rc = stream_arg(a[1], &s)))
			return rc;
		if (!(o = obj_get(a[0], O_EVENT)))
			return CUDA_ERROR_INVALID_HANDLE;
		return ops->event_record(R.b, o->h, s, (uint32_t)a[2]);
	case CV_RM_EVENT_SYNC:
	case CV_RM_EVENT_QUERY:
		if (!(o = obj_get(a[0], O_EVENT)))
			SYNC(CUDA_ERROR_INVALID_HANDLE);
		SYNC(m->h.op == CV_RM_EVENT_SYNC ? ops->event_sync(R.b, o->h) :
						  ops->event_query(R.b, o->h));
	case CV_RM_EVENT_ELAPSED: {
		float ms = 0;

		o = obj_get(a[0], O_EVENT);
		o2 = obj_get(a[1], O_EVENT);
		if (!o || !o2)
			SYNC(CUDA_ERROR_INVALID_HANDLE);
		rc = ops->event_elapsed(R.b, o->h, o2->h, &ms);
		memcpy(&v[0], &ms, sizeof(ms));
		SYNC(rc);
	}
	case CV_RM_HTOD:
		if (a[2] && lane_chunk(m, a, &blen))
			return CUDA_ERROR_INVALID_VALUE; /* and we stop */
		rc = stream_arg(a[1], &s);
		if (!rc && (!blen || blen > CV_RM_CHUNK || !dev_ok(a[0], blen)))
			rc = CUDA_ERROR_INVALID_VALUE;
		if (!rc)
			rc = ops->memcpy(R.b, CV_COPY_HTOD, a[0],
					 (uint64_t)(R.rx + (size_t)m->rx * CV_RM_CHUNK),
					 blen, s);
		if (!rc)
			rc = ops->marker_record(R.b, R.rxmark[m->rx], s);
		pthread_mutex_lock(&R.lock);
		R.rxstate[m->rx] = rc ? RX_FREE : RX_SENT;
		if (R.reader_waiting)
			pthread_cond_signal(&R.space_cond);
		if (m->rx >= NRX_MAIN)
			pthread_cond_broadcast(&R.lane_cond);
		pthread_mutex_unlock(&R.lock);
		return rc;
	case CV_RM_DTOH:
		return do_dtoh(m, a);
	case CV_RM_DTOD:
		if ((rc = stream_arg(a[3], &s)))
			return rc;
		if (!dev_ok(a[0], a[2]) || !dev_ok(a[1], a[2]))
			return CUDA_ERROR_INVALID_VALUE;
		return ops->memcpy(R.b, CV_COPY_DTOD, a[0], a[1], a[2], s);
	case CV_RM_MEMCPY2D:
		return do_memcpy2d(m, a, bytes, blen);
	case CV_RM_MEMSET: {
		uint64_t len, w;

		if ((rc = stream_arg(a[6], &s)))
			return rc;
		if ((a[3] != 1 && a[3] != 2 && a[3] != 4) || a[2] > UINT32_MAX ||
		    __builtin_mul_overflow(a[4], a[3], &w) ||
		    !extent(a[0], a[1], w, a[5], &len) || !dev_ok(a[0], len))
			return CUDA_ERROR_INVALID_VALUE;
		return ops->memset(R.b, a[0], a[1], (uint32_t)a[2], (uint32_t)a[3],
				   a[4], a[5], s);
	}
	case CV_RM_MODULE_LOAD: {
		uint8_t *img;

		if (!blen || !(o = obj_new(a[0])))
			SYNC(CUDA_ERROR_INVALID_VALUE);
		img = malloc(blen + 1);
		if (!img)
			SYNC(CUDA_ERROR_OUT_OF_MEMORY);
		memcpy(img, bytes, blen);
		img[blen] = 0;
		rc = ops->module_load(R.b, img, blen, &h);
		free(img);
		if (!rc)
			obj_set(o, O_MODULE, h);
		SYNC(rc);
	}
	case CV_RM_MODULE_UNLOAD:
		if (!(o = obj_get(a[0], O_MODULE)))
			return CUDA_ERROR_INVALID_HANDLE;
		drop_globals(o->h);
		rc = ops->module_unload(R.b, o->h);
		obj_drop(o);
		return rc;
	case CV_RM_GET_FUNCTION: {
		struct cv_fparams fp = { 0 };

		o = obj_get(a[0], O_MODULE);
		name = name_of(bytes, blen);
		o2 = name ? obj_new(a[1]) : NULL;
		if (!o || !o2) {
			free(name);
			SYNC(o ? CUDA_ERROR_INVALID_VALUE : CUDA_ERROR_INVALID_HANDLE);
		}
		rc = ops->get_function(R.b, o->h, name, &h, &fp);
		free(name);
		if (!rc && (size_t)fp.n * sizeof(struct cv_param) >
				   CV_RM_MAX_PAYLOAD - sizeof(struct cv_rm_rep)) {
			free(fp.p);
			SYNC(CUDA_ERROR_NOT_SUPPORTED);
		}
		if (!rc) {
			o2->fp = fp;
			obj_set(o2, O_FUNC, h);
			v[0] = fp.n;
			v[1] = fp.size;
			*out = malloc((size_t)fp.n * sizeof(struct cv_param) + 1);
			if (*out) {
				memcpy(*out, fp.p, (size_t)fp.n * sizeof(struct cv_param));
				*olen = (size_t)fp.n * sizeof(struct cv_param);
			} else {
				rc = CUDA_ERROR_OUT_OF_MEMORY;
			}
		}
		SYNC(rc);
	}
	case CV_RM_GET_GLOBAL:
		o = obj_get(a[0], O_MODULE);
		name = name_of(bytes, blen);
		if (!o || !name) {
			free(name);
			SYNC(o ? CUDA_ERROR_INVALID_VALUE : CUDA_ERROR_INVALID_HANDLE);
		}
		rc = ops->get_global(R.b, o->h, name, &v[0], &v[1]);
		free(name);
		/* A global may be copied to and from from now on; the
		 * module's memory stays until it is unloaded, and the same
		 * global found twice is one range. */
		if (!rc && v[1]) {
			pthread_rwlock_wrlock(&R.map_lock);
			if (!cv_rangeset_covers(&R.globals, v[0], v[1]) &&
			    cv_rangeset_add(&R.globals, v[0], v[1], o->h))
				rc = CUDA_ERROR_OUT_OF_MEMORY;
			pthread_rwlock_unlock(&R.map_lock);
		}
		SYNC(rc);
	case CV_RM_FUNCTION_NAME: {
		uint32_t count = 0;

		o = obj_get(a[0], O_MODULE);
		if (!o)
			SYNC(CUDA_ERROR_INVALID_HANDLE);
		if (!a[2] || a[2] > CV_RM_MAX_NAME || a[1] > UINT32_MAX)
			SYNC(CUDA_ERROR_INVALID_VALUE);
		*out = calloc(1, a[2]);
		if (!*out)
			SYNC(CUDA_ERROR_OUT_OF_MEMORY);
		rc = ops->module_function_name(R.b, o->h, (uint32_t)a[1],
					       (char *)*out, a[2], &count);
		(*out)[a[2] - 1] = 0;
		*olen = a[1] < count ? strlen((char *)*out) + 1 : 0;
		v[0] = count;
		SYNC(rc);
	}
	case CV_RM_FUNC_GET_ATTR: {
		int val = 0;

		if (!(o = obj_get(a[0], O_FUNC)))
			SYNC(CUDA_ERROR_INVALID_HANDLE);
		rc = ops->func_get_attr(R.b, o->h, (int)a[1], &val);
		v[0] = (uint64_t)(int64_t)val;
		SYNC(rc);
	}
	case CV_RM_FUNC_SET_ATTR:
		if (!(o = obj_get(a[0], O_FUNC)))
			SYNC(CUDA_ERROR_INVALID_HANDLE);
		SYNC(ops->func_set_attr(R.b, o->h, (int)a[1], (int)a[2]));
	case CV_RM_FUNC_SET_CACHE:
		if (!(o = obj_get(a[0], O_FUNC)))
			SYNC(CUDA_ERROR_INVALID_HANDLE);
		SYNC(ops->func_set_cache(R.b, o->h, (int)a[1]));
	case CV_RM_LAUNCH:
		return do_launch(a, bytes, blen);
	case CV_RM_HOST_FUNC: {
		struct hostfn *hf;

		if ((rc = stream_arg(a[0], &s)))
			return rc;
		hf = calloc(1, sizeof(*hf));
		if (!hf)
			return CUDA_ERROR_OUT_OF_MEMORY;
		hf->id = a[1];
		rc = ops->host_func(R.b, s, hostfn_tramp, hf);
		if (rc)
			free(hf);
		return rc;
	}
	case CV_RM_CTX_SYNC:
		SYNC(ops->ctx_sync(R.b));
	case CV_RM_CTX_SET_LIMIT:
		SYNC(ops->ctx_set_limit(R.b, (int)a[0], a[1]));
	case CV_RM_CTX_GET_LIMIT:
		SYNC(ops->ctx_get_limit(R.b, (int)a[0], &v[0]));
	case CV_RM_OCCUPANCY: {
		struct cv_occupancy in;
		struct cv_occupancy_r r = { 0 };

		if (!(o = obj_get(a[0], O_FUNC)))
			SYNC(CUDA_ERROR_INVALID_HANDLE);
		if (blen != sizeof(in))
			SYNC(CUDA_ERROR_INVALID_VALUE);
		memcpy(&in, bytes, sizeof(in));
		rc = ops->occupancy(R.b, o->h, &in, &r);
		v[0] = (uint64_t)r.value;
		v[1] = (uint64_t)(int64_t)r.grid;
		v[2] = (uint64_t)(int64_t)r.block;
		SYNC(rc);
	}
	case CV_RM_OCCUPANCY_CLUSTER: {
		struct cv_launch_attr *attrs = NULL;
		uint32_t grid[3], block[3], k;
		int val = 0;

		if (!(o = obj_get(a[0], O_FUNC)))
			SYNC(CUDA_ERROR_INVALID_HANDLE);
		if (cv_rm_launch_split(blen, a[9], 0) || a[8] > UINT32_MAX ||
		    a[1] > UINT32_MAX)
			SYNC(CUDA_ERROR_INVALID_VALUE);
		for (k = 0; k < 3; k++) {
			if (a[2 + k] > UINT32_MAX || a[5 + k] > UINT32_MAX)
				SYNC(CUDA_ERROR_INVALID_VALUE);
			grid[k] = (uint32_t)a[2 + k];
			block[k] = (uint32_t)a[5 + k];
		}
		if (a[9] && !(attrs = malloc(blen)))
			SYNC(CUDA_ERROR_OUT_OF_MEMORY);
		if (a[9])
			memcpy(attrs, bytes, blen);
		rc = ops->occupancy_cluster(R.b, o->h, (uint32_t)a[1], grid,
					    block, (uint32_t)a[8], attrs,
					    (uint32_t)a[9], &val);
		free(attrs);
		v[0] = (uint64_t)(int64_t)val;
		SYNC(rc);
	}
	case CV_RM_MARKER_CREATE:
		if (!(o = obj_new(a[0])))
			return CUDA_ERROR_INVALID_HANDLE;
		rc = ops->marker_create(R.b, &h);
		if (!rc)
			obj_set(o, O_MARKER, h);
		return rc;
	case CV_RM_MARKER_DESTROY:
		if (!(o = obj_get(a[0], O_MARKER)))
			return CUDA_ERROR_INVALID_HANDLE;
		rc = ops->marker_destroy(R.b, o->h);
		obj_drop(o);
		return rc;
	case CV_RM_MARKER_RECORD:
		if ((rc = stream_arg(a[1], &s)))
			return rc;
		if (!(o = obj_get(a[0], O_MARKER)))
			return CUDA_ERROR_INVALID_HANDLE;
		return ops->marker_record(R.b, o->h, s);
	}
#undef SYNC
	return CUDA_ERROR_INVALID_VALUE;
}

/* The next message of q, waiting on c (counted in *waiting) for one. */
static struct msg *pop(struct queue *q, pthread_cond_t *c, int *waiting)
{
	struct msg *m;

	while (!q->head && !R.stop) {
		__atomic_add_fetch(waiting, 1, __ATOMIC_SEQ_CST);
		pthread_cond_wait(c, &R.lock);
		__atomic_sub_fetch(waiting, 1, __ATOMIC_SEQ_CST);
	}
	m = q->head;
	if (m) {
		q->head = m->next;
		if (!q->head)
			q->tail = NULL;
	}
	return m;
}

static void *exec_main(void *arg)
{
	struct msg *m, *batch = NULL, *done = NULL, *dtail = NULL;
	uint64_t v[4];
	uint8_t *out;
	size_t olen;
	int rc, rrc;

	(void)arg;
	for (;;) {
		/* Everything queued at once: one lock per batch. */
		if (!batch) {
			uint64_t t0 = cv_now_ns();

			/* A launch loop's next batch is microseconds away:
			 * spin for it before sleeping. */
			while (!__atomic_load_n(&R.exec.head, __ATOMIC_ACQUIRE) &&
			       cv_now_ns() - t0 < EXEC_SPIN_NS)
				cv_cpu_relax();
			pthread_mutex_lock(&R.lock);
			if (done) {
				dtail->next = R.pool;
				R.pool = done;
				done = dtail = NULL;
			}
			m = pop(&R.exec, &R.exec_cond, &R.exec_waiting);
			if (m) {
				m->next = R.exec.head;
				R.exec.head = R.exec.tail = NULL;
				R.queued = 0;
				if (R.reader_waiting)
					pthread_cond_signal(&R.space_cond);
			}
			pthread_mutex_unlock(&R.lock);
			batch = m;
			R.idle_ns += cv_now_ns() - t0;
		}
		R.nops++;
		m = batch;
		if (!m)
			break;
		batch = m->next;
		memset(v, 0, sizeof(v));
		out = NULL;
		olen = 0;
		rrc = 0;
		rc = exec_op(m, &rrc, v, &out, &olen);
		if (rc == ANSWER) {
			if (!rrc && R.pending) {
				rrc = R.pending;
				R.pending = 0;
			}
			reply(m->h.seq, rrc, v, 4, out, olen);
		} else if (rc && !R.pending) {
			cv_dbg("remote: %s (seq %llu) failed: CUresult %d",
			       cv_rm_op_name(m->h.op),
			       (unsigned long long)m->h.seq, rc);
			R.pending = rc;
		}
		free(out);
		/* Side ops wait for it (they set seq_waiting under the lock
		 * before they look at done_seq): the store and the load are
		 * both sequentially consistent, so one of the two sees the
		 * other's write and no wake-up is lost. */
		__atomic_store_n(&R.done_seq, m->h.seq, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&R.seq_waiting, __ATOMIC_SEQ_CST)) {
			pthread_mutex_lock(&R.lock);
			pthread_cond_signal(&R.side_cond);
			pthread_mutex_unlock(&R.lock);
		}
		if (m->small) {
			m->next = done;
			done = m;
			if (!dtail)
				dtail = m;
		} else {
			free(m);
		}
	}
	/* We stop: what we hold goes back to the pool (the reader's). */
	if (done) {
		pthread_mutex_lock(&R.lock);
		dtail->next = R.pool;
		R.pool = done;
		pthread_mutex_unlock(&R.lock);
	}
	return NULL;
}

/* ---- side ops ------------------------------------------------------------ */

/* The object of a side op, held against destruction until side_put. */
static struct obj *side_get(uint64_t id, int type)
{
	struct obj *o;

	pthread_mutex_lock(&R.lock);
	o = obj_get(id, type);
	if (o)
		o->busy++;
	pthread_mutex_unlock(&R.lock);
	return o;
}

static void side_put(struct obj *o)
{
	if (!o)
		return;
	pthread_mutex_lock(&R.lock);
	o->busy--;
	pthread_cond_broadcast(&R.cond);
	pthread_mutex_unlock(&R.lock);
}

static void side_op(const struct msg *m)
{
	const uint64_t *a = (const uint64_t *)m->p;
	struct obj *o = NULL;
	uint8_t *out = NULL;
	size_t olen = 0;
	int rc;

	switch (m->h.op) {
	case CV_RM_STREAM_QUERY:
		if (!a[0]) {
			rc = R.ops->stream_query(R.b, NULL);
			break;
		}
		o = side_get(a[0], O_STREAM);
		rc = o ? R.ops->stream_query(R.b, o->h) : CUDA_ERROR_INVALID_HANDLE;
		break;
	case CV_RM_MARKER_QUERY:
	case CV_RM_MARKER_WAIT:
		o = side_get(a[0], O_MARKER);
		if (!o)
			rc = CUDA_ERROR_INVALID_HANDLE;
		else if (m->h.op == CV_RM_MARKER_QUERY)
			rc = R.ops->marker_query(R.b, o->h);
		else
			rc = R.ops->marker_wait(R.b, o->h);
		break;
	case CV_RM_DIGEST: {
		uint64_t n = a[2] ? a[1] / a[2] : 0;

		if (a[4])
			o = side_get(a[4], O_STREAM);
		rc = CUDA_ERROR_INVALID_VALUE;
		if (a[4] && !o)
			rc = CUDA_ERROR_INVALID_HANDLE;
		else if (a[2] && a[2] <= UINT32_MAX && !(a[1] % a[2]) &&
			 n <= CV_RM_CHUNK / 16 && (out = malloc(n * 16 + 1))) {
			pthread_rwlock_rdlock(&R.map_lock);
			if (!a[1] || cv_rangeset_covers(&R.mapped, a[0], a[1]))
				rc = R.ops->digest(R.b, a[0], a[1], (uint32_t)a[2],
						   a[3], out, o ? o->h : NULL,
						   (uint32_t)a[5]);
			pthread_rwlock_unlock(&R.map_lock);
			olen = rc ? 0 : n * 16;
		}
		break;
	}
	default:
		rc = CUDA_ERROR_INVALID_VALUE;
	}
	side_put(o);
	reply(m->h.seq, rc, NULL, 0, out, olen);
	free(out);
}

static void *side_main(void *arg)
{
	const struct msg *m;

	(void)arg;
	for (;;) {
		pthread_mutex_lock(&R.lock);
		m = pop(&R.side, &R.side_cond, &R.side_waiting);
		/* After the ordered op it follows (a[9]). */
		while (m && !R.stop &&
		       ((const uint64_t *)m->p)[9] < m->h.seq) {
			__atomic_add_fetch(&R.seq_waiting, 1, __ATOMIC_SEQ_CST);
			if (__atomic_load_n(&R.done_seq, __ATOMIC_SEQ_CST) >=
			    ((const uint64_t *)m->p)[9]) {
				__atomic_sub_fetch(&R.seq_waiting, 1,
						   __ATOMIC_SEQ_CST);
				break;
			}
			pthread_cond_wait(&R.side_cond, &R.lock);
			__atomic_sub_fetch(&R.seq_waiting, 1, __ATOMIC_SEQ_CST);
		}
		pthread_mutex_unlock(&R.lock);
		if (!m)
			return NULL;
		side_op(m);
		free((void *)m);
	}
}

/* ---- reader and pinger --------------------------------------------------- */

static void *ping_main(void *arg)
{
	(void)arg;
	for (;;) {
		usleep(CV_RM_PING_MS * 1000);
		pthread_mutex_lock(&R.lock);
		if (R.stop) {
			pthread_mutex_unlock(&R.lock);
			return NULL;
		}
		pthread_mutex_unlock(&R.lock);
		send_msg(CV_RM_PING, 0, NULL, 0, NULL, 0);
	}
}

static void push(struct queue *q, struct msg *m)
{
	m->next = NULL;
	if (q->tail)
		q->tail->next = m;
	else
		q->head = m;
	q->tail = m;
}

/* The connection's bytes, read in large pieces. */
static struct {
	uint8_t *p;
	size_t at, end;
} in;

#define INBUF (1u << 20)

/* n bytes to p: what is buffered, then (large) straight from the socket
 * or (small) through the buffer. */
static int in_read(void *p, size_t n)
{
	uint8_t *d = p;
	size_t k;
	ssize_t got;
	int rc;

	while (n) {
		if (in.at < in.end) {
			k = CV_MIN(n, in.end - in.at);
			memcpy(d, in.p + in.at, k);
			in.at += k;
			d += k;
			n -= k;
			continue;
		}
		if (n >= INBUF / 2)
			return cv_peer_read(R.fd, d, n, cv_now_ns() + R.timeout_ns);
		in.at = in.end = 0;
		got = recv(R.fd, in.p, INBUF, MSG_DONTWAIT);
		if (got > 0) {
			in.end = (size_t)got;
			continue;
		}
		if (got == 0)
			return -ECONNRESET;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		/* Nothing buffered: wait (the peer pings every second),
		 * spinning first: a program that synchronises often sends
		 * its next call within microseconds of our answer. */
		rc = cv_peer_read_spin(R.fd, in.p, 1,
				       cv_now_ns() + R.timeout_ns, READ_SPIN_NS);
		if (rc)
			return rc;
		in.end = 1;
	}
	return 0;
}

/* The next rx chunk, once it is free: -1 when we stop. */
static int rx_take(void)
{
	uint32_t k = R.rxnext;
	int st;

	R.rxnext = (k + 1) % NRX_MAIN;
	pthread_mutex_lock(&R.lock);
	while ((st = R.rxstate[k]) == RX_FILLED && !R.stop) {
		R.reader_waiting++;
		pthread_cond_wait(&R.space_cond, &R.lock);
		R.reader_waiting--;
	}
	R.rxstate[k] = RX_FILLED;
	pthread_mutex_unlock(&R.lock);
	if (R.stop)
		return -1;
	/* Its last DMA must be over before the socket overwrites it. */
	if (st == RX_SENT)
		R.ops->marker_wait(R.b, R.rxmark[k]);
	return (int)k;
}

/* A message of n payload bytes: a small one from the reader's cache
 * (refilled from the executor's pool), else from the heap. */
static struct msg *msg_new(size_t n, struct msg **cache)
{
	struct msg *m;

	if (n > SMALL_MSG) {
		m = malloc(sizeof(*m) + n + 8);
		if (m)
			m->small = false;
		return m;
	}
	if (!*cache) {
		pthread_mutex_lock(&R.lock);
		*cache = R.pool;
		R.pool = NULL;
		pthread_mutex_unlock(&R.lock);
	}
	m = *cache;
	if (m)
		*cache = m->next;
	else if ((m = malloc(sizeof(*m) + SMALL_MSG + 8)))
		m->small = true;
	return m;
}

/* Reads and queues until the peer closes, goes silent or errs. */
static void read_msgs(struct msg **cache)
{
	struct cv_rm_hdr h;
	struct hostfn *hf;
	const char *why;
	struct msg *m;
	uint64_t id, last = 0;
	int rc, rx;

	in.p = malloc(INBUF);
	if (!in.p)
		return;
	for (;;) {
		rc = in_read(&h, sizeof(h));
		if (rc) {
			cv_warn("remote: the peer \"%s\" %s", R.peer,
				rc == -ETIMEDOUT ? "went silent" :
				rc == -ECONNRESET ? "closed the connection" :
						    "is unreachable");
			return;
		}
		if (cv_rm_hdr_check(&h, CV_RM_TO_SERVER, &why)) {
			cv_warn("remote: the peer \"%s\" sent %s (op %u, %u bytes); closing",
				R.peer, why, h.op, h.len);
			return;
		}
		if (h.op == CV_RM_PING)
			continue;
		if (h.op == CV_RM_CLOSE) {
			cv_info("remote: the peer \"%s\" closed the vGPU", R.peer);
			return;
		}
		/* An HTOD's bytes into a chunk; those of a lane come there. */
		rx = h.op == CV_RM_HTOD && h.len > sizeof(struct cv_rm_args) ?
			     (int)sizeof(struct cv_rm_args) : -1;
		m = msg_new(rx >= 0 ? (size_t)rx : h.len, cache);
		if (!m) {
			cv_err("remote: out of memory for a %u-byte message", h.len);
			return;
		}
		m->h = h;
		m->rx = -1;
		if (rx >= 0) {
			rc = in_read(m->p, sizeof(struct cv_rm_args));
			if (!rc && h.len - sizeof(struct cv_rm_args) > CV_RM_CHUNK)
				rc = -EBADMSG;
			if (!rc && (m->rx = rx_take()) < 0)
				rc = -ESHUTDOWN;
			if (!rc)
				rc = in_read(R.rx + (size_t)m->rx * CV_RM_CHUNK,
					     h.len - sizeof(struct cv_rm_args));
			if (rc && m->rx >= 0)
				R.rxstate[m->rx] = RX_FREE;
		} else {
			rc = in_read(m->p, h.len);
		}
		if (rc) {
			free(m);
			cv_warn("remote: the peer \"%s\" stopped mid-message", R.peer);
			return;
		}
		if (h.op == CV_RM_HOSTFN_DONE) {
			memcpy(&id, m->p, sizeof(id));
			free(m);
			pthread_mutex_lock(&R.lock);
			for (hf = R.hostfns; hf; hf = hf->next)
				if (hf->id == id)
					hf->done = true;
			pthread_cond_broadcast(&R.cond);
			pthread_mutex_unlock(&R.lock);
			continue;
		}
		if (h.seq <= last) {
			free(m);
			cv_warn("remote: the peer \"%s\" reused seq %llu; closing",
				R.peer, (unsigned long long)h.seq);
			return;
		}
		last = h.seq;
		pthread_mutex_lock(&R.lock);
		if (cv_rm_op_class(h.op) & CV_RM_SIDE) {
			push(&R.side, m);
			if (R.side_waiting)
				pthread_cond_signal(&R.side_cond);
		} else {
			bool was_empty;

			while (R.queued > QUEUE_MAX && !R.stop) {
				R.reader_waiting++;
				pthread_cond_wait(&R.space_cond, &R.lock);
				R.reader_waiting--;
			}
			was_empty = !R.exec.head;
			push(&R.exec, m);
			R.queued += h.len;
			/* One wake-up per batch, not one per message. */
			if (was_empty && R.exec_waiting)
				pthread_cond_signal(&R.exec_cond);
		}
		pthread_mutex_unlock(&R.lock);
	}
}

static void read_loop(void)
{
	struct msg *cache = NULL, *m;

	read_msgs(&cache);
	while ((m = cache)) {
		cache = m->next;
		free(m);
	}
	free(in.p);
	in.p = NULL;
}

/* ---- copy lanes ------------------------------------------------------------ */

/* Lane k's bytes, into its two chunks in turn, until it closes. */
static void *lane_main(void *arg)
{
	uint32_t k = (uint32_t)(uintptr_t)arg, c;
	struct cv_lane_unz u = { 0 };
	struct cv_rm_lane_hdr lh;
	int st, rc;

	for (;;) {
		rc = cv_peer_read(R.lane[k], &lh, sizeof(lh), UINT64_MAX);
		if (rc || !lh.len || lh.len > CV_RM_CHUNK)
			break;
		pthread_mutex_lock(&R.lock);
		c = NRX_MAIN + 2 * k + R.lane_rnext[k];
		while ((st = R.rxstate[c]) == RX_FILLED && !R.stop)
			pthread_cond_wait(&R.lane_cond, &R.lock);
		R.rxstate[c] = RX_FILLING;
		pthread_mutex_unlock(&R.lock);
		if (R.stop)
			break;
		if (st == RX_SENT)
			R.ops->marker_wait(R.b, R.rxmark[c]);
		if (lh.zlen) {
			/* capped at the piece: no frame writes past it */
			rc = cv_lane_unzstd(&u, R.lane[k],
					    R.rx + (size_t)c * CV_RM_CHUNK,
					    lh.len, lh.zlen,
					    cv_now_ns() + R.timeout_ns);
			if (!rc) {
				__atomic_add_fetch(&R.zin, lh.zlen,
						   __ATOMIC_RELAXED);
				__atomic_add_fetch(&R.zout, lh.len,
						   __ATOMIC_RELAXED);
			}
		} else
			rc = cv_peer_read(R.lane[k], R.rx + (size_t)c * CV_RM_CHUNK,
					  lh.len, cv_now_ns() + R.timeout_ns);
		pthread_mutex_lock(&R.lock);
		if (rc) {
			R.rxstate[c] = RX_FREE;
		} else {
			R.rxseq[c] = lh.seq;
			R.rxlen[c] = lh.len;
			R.rxstate[c] = RX_FILLED;
			R.lane_rnext[k] ^= 1;
		}
		pthread_cond_broadcast(&R.lane_cond);
		pthread_mutex_unlock(&R.lock);
		if (rc)
			break;
	}
	/* A lane that breaks ends the vGPU: copies would wait for it. */
	if (!R.stop && rc != -ECONNRESET)
		cv_warn("remote: copy lane %u of \"%s\" broke; closing", k, R.peer);
	shutdown(R.fd, SHUT_RDWR);
	cv_lane_unz_exit(&u);
	return NULL;
}

/* Anyone who reaches the lanes' port can fail their handshake. */
CV_RATELIMIT_STD(rl_lane, "copy lanes refused");

/* Takes the lanes as they come: handshake under the session key, then
 * the lane's index. */
static void *lanes_accept_main(void *arg)
{
	struct cv_peer_hello them;
	pthread_t th;
	uint32_t idx;
	char why[160];
	int fd, n = 0;

	(void)arg;
	while (n < CV_RM_LANES) {
		fd = accept4(R.lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			break;
		}
		/* A piece's header and its bytes are separate writes: without
		 * this, the tail of a piece can wait for a delayed ACK (40 ms
		 * pauses were seen in migrations back from this host). */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
		if (cv_peer_handshake_s(fd, R.session, CV_PEER_SERVER, R.host,
					CV_PEER_TIMEOUT_MS, &them, why,
					sizeof(why), NULL) ||
		    cv_peer_read(fd, &idx, sizeof(idx),
				 cv_now_ns() + CV_PEER_TIMEOUT_MS * 1000000ull) ||
		    idx >= CV_RM_LANES || R.lane[idx] >= 0) {
			cv_warn_rl(&rl_lane, "remote: a copy lane of \"%s\" "
				   "refused", R.peer);
			close(fd);
			continue;
		}
		R.lane[idx] = fd;
		if (pthread_create(&th, NULL, lane_main, (void *)(uintptr_t)idx)) {
			close(fd);
			R.lane[idx] = -1;
			continue;
		}
		pthread_detach(th);
		if (pthread_create(&th, NULL, lane_send_main,
				   (void *)(uintptr_t)idx)) {
			shutdown(fd, SHUT_RDWR); /* its reader ends us */
			continue;
		}
		pthread_detach(th);
		n++;
		/* DTOH uses lanes 0..nlanes-1: count only a prefix. */
		while (R.nlanes < CV_RM_LANES && R.lane[R.nlanes] >= 0)
			__atomic_add_fetch(&R.nlanes, 1, __ATOMIC_RELEASE);
	}
	close(R.lfd);
	R.lfd = -1;
	return NULL;
}

/* A listening socket for the lanes on the address the peer reached us
 * at; its port, or 0 (no lanes). */
static uint16_t lanes_listen(void)
{
	struct sockaddr_storage sa;
	socklen_t sl = sizeof(sa);
	pthread_t th;

	if (!R.have_session || getsockname(R.fd, (struct sockaddr *)&sa, &sl))
		return 0;
	if (sa.ss_family == AF_INET)
		((struct sockaddr_in *)&sa)->sin_port = 0;
	else if (sa.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&sa)->sin6_port = 0;
	else
		return 0;
	R.lfd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (R.lfd < 0)
		return 0;
	if (bind(R.lfd, (struct sockaddr *)&sa, sl) || listen(R.lfd, CV_RM_LANES) ||
	    getsockname(R.lfd, (struct sockaddr *)&sa, &sl) ||
	    pthread_create(&th, NULL, lanes_accept_main, NULL)) {
		close(R.lfd);
		R.lfd = -1;
		return 0;
	}
	pthread_detach(th);
	return ntohs(sa.ss_family == AF_INET ?
		     ((struct sockaddr_in *)&sa)->sin_port :
		     ((struct sockaddr_in6 *)&sa)->sin6_port);
}

int cv_remote_serve(int fd, const struct cv_backend_ops *ops,
		    struct cv_backend *b, const struct cv_devinfo *dev,
		    int open_rc, uint64_t quota, int timeout_ms,
		    const char *peer, const char *host,
		    const uint8_t *session)
{
	struct cv_rm_ready rd = { .version = CV_RM_VERSION, .rc = open_rc };
	pthread_t ex, si, pi;
	uint32_t i;
	int rc;

	R.ops = ops;
	R.b = b;
	R.fd = fd;
	R.lfd = -1;
	for (i = 0; i < CV_RM_LANES; i++) {
		R.lane[i] = -1;
		pthread_mutex_init(&R.lane_tx[i], NULL);
	}
	pthread_cond_init(&R.lane_cond, NULL);
	if (session) {
		memcpy(R.session, session, sizeof(R.session));
		R.have_session = true;
	}
	snprintf(R.host, sizeof(R.host), "%s", host);
	R.quota = quota;
	R.timeout_ns = (uint64_t)timeout_ms * 1000000ull;
	snprintf(R.peer, sizeof(R.peer), "%s", peer);
	pthread_mutex_init(&R.tx_lock, NULL);
	pthread_mutex_init(&R.lock, NULL);
	pthread_cond_init(&R.cond, NULL);
	pthread_cond_init(&R.exec_cond, NULL);
	pthread_cond_init(&R.side_cond, NULL);
	pthread_cond_init(&R.space_cond, NULL);
	/* Copies come in 4 MiB messages: from the heap, not a fresh
	 * mapping (and its page faults) each. */
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	pthread_rwlock_init(&R.map_lock, NULL);
	cv_rangeset_init(&R.mapped);
	cv_rangeset_init(&R.globals);
	R.o = mmap(NULL, (size_t)CV_RM_MAX_OBJS * sizeof(*R.o),
		   PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS |
		   MAP_NORESERVE, -1, 0);
	if (R.o == MAP_FAILED)
		return -ENOMEM;
	R.no = CV_RM_MAX_OBJS;
	if (dev)
		rd.dev = *dev;
	/* Our GPU cannot reach the peer's host memory: no mapped memory. */
	rd.dev.attr[CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY] = 0;
	rd.dev.name[sizeof(rd.dev.name) - 1] = 0;
	snprintf(rd.host, sizeof(rd.host), "%s", host);

	if (!open_rc) {
		R.bounce = mmap(NULL, (size_t)NBOUNCE * CV_RM_CHUNK,
				PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (R.bounce == MAP_FAILED) {
			R.bounce = NULL;
			rd.rc = CUDA_ERROR_OUT_OF_MEMORY;
		} else if ((rc = ops->host_register(b, R.bounce,
						     (size_t)NBOUNCE * CV_RM_CHUNK))) {
			rd.rc = rc;
		}
		for (i = 0; !rd.rc && i < NBOUNCE; i++)
			rd.rc = ops->marker_create(b, &R.bmark[i]);
		R.rx = mmap(NULL, (size_t)NRX * CV_RM_CHUNK,
			    PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			    -1, 0);
		if (R.rx == MAP_FAILED) {
			R.rx = NULL;
			rd.rc = rd.rc ? rd.rc : CUDA_ERROR_OUT_OF_MEMORY;
		} else if (!rd.rc) {
			rd.rc = ops->host_register(b, R.rx, (size_t)NRX * CV_RM_CHUNK);
		}
		for (i = 0; !rd.rc && i < NRX; i++)
			rd.rc = ops->marker_create(b, &R.rxmark[i]);
	}
	if (!rd.rc && (rd.lane_port = lanes_listen())) {
		rd.nlanes = CV_RM_LANES;
		rd.flags = CV_RM_READY_ZSTD;
	}
	if (send_msg(CV_RM_READY, 0, &rd, sizeof(rd), NULL, 0) || rd.rc)
		return rd.rc ? -EIO : -ECONNRESET;
	if (pthread_create(&ex, NULL, exec_main, NULL) ||
	    pthread_create(&si, NULL, side_main, NULL) ||
	    pthread_create(&pi, NULL, ping_main, NULL))
		return -EAGAIN;
	cv_info("remote: serving a vGPU to \"%s\" (quota %llu bytes)", peer,
		(unsigned long long)quota);
	R.t_start = cv_now_ns();
	read_loop();
	cv_info("remote: %llu ordered ops in %.1f s, the executor idle %.0f%% "
		"of it", (unsigned long long)R.nops,
		(cv_now_ns() - R.t_start) / 1e9,
		100.0 * R.idle_ns / (double)(cv_now_ns() - R.t_start + 1));
	if (R.zin)
		cv_info("remote: %llu bytes came compressed as %llu (zstd)",
			(unsigned long long)R.zout, (unsigned long long)R.zin);
	if (R.zsent)
		cv_info("remote: %llu bytes went compressed as %llu (zstd)",
			(unsigned long long)R.zraw, (unsigned long long)R.zsent);
	pthread_mutex_lock(&R.lock);
	R.stop = true;
	pthread_cond_broadcast(&R.cond);
	pthread_cond_broadcast(&R.exec_cond);
	pthread_cond_broadcast(&R.side_cond);
	pthread_cond_broadcast(&R.space_cond);
	pthread_cond_broadcast(&R.lane_cond);
	pthread_mutex_unlock(&R.lock);
	shutdown(fd, SHUT_RDWR);
	if (R.lfd >= 0)
		shutdown(R.lfd, SHUT_RDWR);
	for (i = 0; i < CV_RM_LANES; i++)
		if (R.lane[i] >= 0)
			shutdown(R.lane[i], SHUT_RDWR);
	/* The executor may be in a long GPU call: the process's exit frees
	 * everything, as for any worker. */
	return 0;
}

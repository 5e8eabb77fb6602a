/* SPDX-License-Identifier: MIT */
/*
 * Live migration of a vGPU (DESIGN.md decision 10, docs/migration.md).
 *
 * The source runs on an operation thread while its consumer keeps serving
 * the guest. Round 0 sends every granule; each later round both sides
 * digest their memory (core/digest.h, on the GPU with the cuda backend),
 * the destination sends its digests, and the source sends the granules
 * whose digests differ. When the estimated pause is small enough (or the
 * set stops shrinking, or the rounds run out) the source suspends the
 * tenant and does a last round on frozen memory. The destination then
 * digests everything once more and the source compares it with its own
 * frozen digests: the final check is of content, never of tracked
 * writes. Then the object state (a checkpoint image without memory), the
 * destination's rebuild (READY), COMMIT with the guest's link, and the
 * destination runs the tenant.
 *
 * Granules go through a slot area (a memfd both workers map and register
 * with their driver): a source lane copies device memory into a free slot
 * and sends GRANULES naming it; the destination copies the slot to its
 * device memory and frees the slot (SLOT_FREE). So the bytes cross the
 * host once in each direction, at DMA speed, and the stream carries only
 * records.
 *
 * Until COMMIT is sent, every failure (the destination dies, the stream
 * is cut or corrupt, a refusal) leaves the tenant running on the source,
 * resumed if the source had suspended it. After COMMIT the source never
 * runs it again: the destination owns it.
 *
 * Threads of the source: the operation thread (rounds, sends), a receiver
 * (records from the destination) and the lanes of a round. Device memory
 * and the tables that describe it are read under v->mem_lock, which the
 * consumer takes to change them.
 */
#include <cuda.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../core/buf.h"
#include "../core/digest.h"
#include "../core/log.h"
#include "../core/util.h"
#include "migrate.h"
#include "vgpu_int.h"
#include "xfer.h"

#define MIG_GRANULE (256u << 10)   /* digest granule */
#define MIG_SLOTS 16u
#define MIG_SLOT_SIZE (8u << 20)
#define MIG_LANES 8u
#define MIG_DST_STREAMS 4u         /* copies the destination has in flight */
/* A destination whose GPU is on another host (the remote backend) keeps
 * 8, and gives a slot back once the backend has sent its bytes, with no
 * round trip (retire). Measured on the H100 over loopback (16 GiB, 256
 * MiB hot set, 8 copy lanes): pauses of 29-31 ms; 49-68 ms when each
 * slot waited for its copy to end on the other host. */
#define MIG_DST_STREAMS_REMOTE 8u
#define MIG_DST_STREAMS_MAX MIG_DST_STREAMS_REMOTE
#define MIG_WAIT_MS 120000         /* longest wait for the peer */
#define MIG_HELLO_MS 10000
#define MIG_RUNNING_MS 10000
#define MIG_DIGEST_STEP (1ull << 30) /* digested per hold of mem_lock */
#define MIG_STATE_PIECE (8u << 20)
#define MIG_STATE_MAX (4ull << 30)
/* What the pause costs besides moving bytes: state, rebuild, handover. */
#define MIG_FIXED_NS 3000000ull
#define MIG_MAX_DIGESTS(quota) ((quota) / MIG_GRANULE + 1)

/* ---- source ---------------------------------------------------------- */

struct chunk {
	uint64_t va;
	uint32_t len;
};

struct round_stat {
	uint32_t round;
	bool stop;
	uint64_t granules, bytes, digests;
	uint64_t objects;          /* shared (same device) */
	double dirty_rate;         /* bytes per second found changed */
	uint64_t ns;
};

struct src {
	struct cv_vgpu *v;
	const struct cv_ctl_migrate *req;
	struct cv_mig_io io;
	uint64_t seed;
	uint64_t max_digests;
	/* the slot area */
	int slot_fd;
	uint8_t *slots;
	/* lanes of a round */
	cv_bobj stream[MIG_LANES];
	uint32_t nlanes;
	struct chunk *chunks;
	uint64_t nchunks, next;    /* next: atomic */
	uint64_t sent;             /* bytes of the round (atomic) */
	/* shared with the receiver, under lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t slot_free;        /* bit i: slot i is free */
	uint8_t *peer_dg;          /* the destination's digests */
	uint64_t peer_expect;
	bool peer_ready;
	uint32_t peer_round;
	uint32_t rounds_done;      /* ROUND_DONE seen for rounds < this */
	bool welcomed, ready, running;
	uint32_t dest_pid;
	uint64_t running_ns;
	int err;
	char why[CV_MIG_MSG_LEN + 64];
	pthread_t rx;
	bool rx_started;
	/* the plan and the digests of this round */
	struct cv_mig_plan plan;
	uint8_t *dg;
	uint64_t ndg;
	/* report */
	struct round_stat *st;
	uint32_t nst;
	const char *stop_reason;
	double link_rate;          /* bytes per second, measured */
	uint64_t dg_ns;            /* last digest pass, source side */
	bool pacing;               /* --max-rate applies to this round */
	bool inl;                  /* bytes inline in GRANULES, no slot area
				    * shared (the slots are our staging) */
	uint64_t pace_at;          /* the next chunk may start then (lock) */
	bool share;                /* same device: memory shared, not copied */
	uint64_t shared;           /* bytes shared */
};

static int set_err(struct src *s, int rc, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&s->lock);
	if (!s->err) {
		s->err = rc;
		va_start(ap, fmt);
		vsnprintf(s->why, sizeof(s->why), fmt, ap);
		va_end(ap);
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static const char *stream_why(int rc)
{
	switch (rc) {
	case -ECONNRESET: case -EPIPE:
		return "the destination worker went away";
	case -EBADMSG:
		return "a record failed its checksum";
	case -ETIMEDOUT:
		return "the destination did not answer in time";
	default:
		return strerror(-rc);
	}
}

static void deadline(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

/* Waits under s->lock until *flag (a bool or a counter reaching want). */
static int wait_for(struct src *s, const bool *flag, const uint32_t *count,
		    uint32_t want, int ms, const char *what)
{
	struct timespec ts;
	int rc = 0;

	deadline(&ts, ms);
	pthread_mutex_lock(&s->lock);
	while (!s->err && !(flag ? *flag : *count >= want)) {
		if (pthread_cond_timedwait(&s->cond, &s->lock, &ts) ==
		    ETIMEDOUT) {
			pthread_mutex_unlock(&s->lock);
			return set_err(s, -ETIMEDOUT, "the destination did not "
				       "answer in %d s (%s)", ms / 1000, what);
		}
	}
	rc = s->err;
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static void rx_record(struct src *s, uint32_t type, const uint8_t *p,
		      uint32_t len)
{
	struct cv_mig_abort ab;
	struct cv_mig_round rd;
	struct cv_mig_slot sl;
	uint64_t n;

	if (type != CV_MIG_DIGESTS && type != CV_MIG_ABORT &&
	    len != cv_mig_fixed_len(type)) {
		set_err(s, -EPROTO, "the destination sent a malformed record "
			"(type %u, %u bytes)", type, len);
		return;
	}
	pthread_mutex_lock(&s->lock);
	switch (type) {
	case CV_MIG_WELCOME:
		memcpy(&s->dest_pid, p, sizeof(s->dest_pid));
		s->welcomed = true;
		break;
	case CV_MIG_SLOT_FREE:
		memcpy(&sl, p, sizeof(sl));
		/* inline, the slots are our own staging, never lent */
		if (s->inl || sl.slot >= MIG_SLOTS ||
		    (s->slot_free >> sl.slot) & 1) {
			pthread_mutex_unlock(&s->lock);
			set_err(s, -EPROTO, "the destination freed slot %u, "
				"which it did not hold", sl.slot);
			return;
		}
		s->slot_free |= 1ull << sl.slot;
		break;
	case CV_MIG_DIGESTS:
		if (len < sizeof(rd)) {
			pthread_mutex_unlock(&s->lock);
			set_err(s, -EPROTO, "short DIGESTS record");
			return;
		}
		memcpy(&rd, p, sizeof(rd));
		n = (len - sizeof(rd)) / CV_DIGEST_LEN;
		if (s->peer_ready || rd.round != s->peer_round ||
		    rd.n != n || n != s->peer_expect ||
		    (len - sizeof(rd)) % CV_DIGEST_LEN) {
			pthread_mutex_unlock(&s->lock);
			set_err(s, -EPROTO, "the destination sent %u digests "
				"for round %u, %llu were asked for round %u",
				rd.n, rd.round,
				(unsigned long long)s->peer_expect,
				s->peer_round);
			return;
		}
		memcpy(s->peer_dg, p + sizeof(rd), n * CV_DIGEST_LEN);
		s->peer_ready = true;
		break;
	case CV_MIG_ROUND_DONE:
		memcpy(&rd, p, sizeof(rd));
		if (rd.round != s->rounds_done) {
			pthread_mutex_unlock(&s->lock);
			set_err(s, -EPROTO, "ROUND_DONE out of turn");
			return;
		}
		s->rounds_done++;
		break;
	case CV_MIG_READY:
		s->ready = true;
		break;
	case CV_MIG_RUNNING:
		memcpy(&s->running_ns, p, sizeof(s->running_ns));
		s->running = true;
		break;
	case CV_MIG_ABORT:
		pthread_mutex_unlock(&s->lock);
		cv_mig_abort_decode(p, len, &ab);
		set_err(s, ab.code, "the destination gave up: %s", ab.msg);
		return;
	default:
		pthread_mutex_unlock(&s->lock);
		set_err(s, -EPROTO, "the destination sent a record of type "
			"%u", type);
		return;
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void *rx_main(void *arg)
{
	struct src *s = arg;
	size_t cap = sizeof(struct cv_mig_round) +
		     s->max_digests * CV_DIGEST_LEN + sizeof(struct cv_mig_abort);
	uint8_t *buf = malloc(cap);
	uint32_t type, len;
	int rc;

	if (!buf) {
		set_err(s, -ENOMEM, "out of memory");
		return NULL;
	}
	for (;;) {
		rc = cv_mig_recv(&s->io, &type, buf, cap, &len, NULL, NULL,
				 -1);
		if (rc) {
			set_err(s, rc, "%s", stream_why(rc));
			break;
		}
		rx_record(s, type, buf, len);
		pthread_mutex_lock(&s->lock);
		rc = s->err;
		pthread_mutex_unlock(&s->lock);
		if (rc)
			break;
	}
	free(buf);
	return NULL;
}

/* The layout now; mem_lock held for reading. */
static int snapshot_locked(struct src *s, uint32_t round)
{
	struct cv_vgpu *v = s->v;
	struct cv_mig_plan *p = &s->plan;
	const struct cv_wvmm *h;
	const struct cv_wmap *m;
	uint32_t i, k;
	int rc = 0;

	cv_mig_plan_free(p);
	memset(p, 0, sizeof(*p));
	p->round = round;
	p->ranges = calloc(v->dev.n + 1, sizeof(*p->ranges));
	p->vmm = calloc(v->vmms.count + 1, sizeof(*p->vmm));
	p->heap = calloc(v->heap.n + 1, sizeof(*p->heap));
	if (!p->ranges || !p->vmm || !p->heap) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < v->dev.n; i++) {
		m = v->dev.r[i].owner;
		p->ranges[i] = (struct cv_mig_range){ v->dev.r[i].base,
						      v->dev.r[i].size, m->vmm,
						      m->offset };
	}
	p->nranges = v->dev.n;
	for (i = 1, k = 0; i < v->vmms.cap; i++) {
		if (!(h = v->vmms.v[i]))
			continue;
		p->vmm[k++] = (struct cv_mig_vmm){ i, h->released, h->size };
	}
	p->nvmm = k;
	for (i = 0; i < v->heap.n; i++)
		p->heap[i] = (struct cv_mig_heap){
			v->heap.r[i].base - CV_REGION_ADDR - CV_HEAP_OFF,
			v->heap.r[i].size };
	p->nheap = v->heap.n;
out:
	return rc;
}

static int snapshot(struct src *s, uint32_t round)
{
	int rc;

	pthread_rwlock_rdlock(&s->v->mem_lock);
	rc = snapshot_locked(s, round);
	pthread_rwlock_unlock(&s->v->mem_lock);
	return rc;
}

/* True when [va, va + len) lies in one mapped range (under mem_lock). */
static bool still_mapped(struct cv_vgpu *v, uint64_t va, uint64_t len)
{
	const struct cv_range *r = cv_rangeset_find(&v->dev, va);

	return r && len <= r->size - (va - r->base);
}

/* Digests of every granule of the plan, in order, into s->dg. */
/* Our digests of the plan into s->dg; gentle (CV_DIGEST_GENTLE) while
 * the tenant runs. */
static int digest_all(struct src *s, bool stop)
{
	struct cv_vgpu *v = s->v;
	const struct cv_mig_range *r;
	uint64_t off, n, idx = 0, t0 = cv_now_ns();
	uint32_t i;
	int rc = 0;

	for (i = 0; i < s->plan.nranges && !rc; i++) {
		r = &s->plan.ranges[i];
		for (off = 0; off < r->size && !rc; off += n) {
			n = CV_MIN(r->size - off, MIG_DIGEST_STEP);
			pthread_rwlock_rdlock(&v->mem_lock);
			if (still_mapped(v, r->va + off, n))
				rc = v->ops->digest(v->b, r->va + off, n,
						    MIG_GRANULE, s->seed,
						    s->dg + idx * CV_DIGEST_LEN,
						    NULL,
						    stop ? 0 : CV_DIGEST_GENTLE);
			else /* gone meanwhile: it will not be sent */
				memset(s->dg + idx * CV_DIGEST_LEN, 0,
				       n / MIG_GRANULE * CV_DIGEST_LEN);
			pthread_rwlock_unlock(&v->mem_lock);
			idx += n / MIG_GRANULE;
		}
	}
	s->dg_ns = cv_now_ns() - t0;
	if (rc)
		return set_err(s, -EIO, "digesting device memory failed: "
			       "CUresult %d", rc);
	return 0;
}

static int add_chunk(struct src *s, uint64_t *cap, uint64_t va, uint64_t len)
{
	struct chunk *c;
	uint64_t n;

	for (; len; va += n, len -= n) {
		n = CV_MIN(len, MIG_SLOT_SIZE);
		if (s->nchunks == *cap) {
			*cap = *cap ? 2 * *cap : 1024;
			c = realloc(s->chunks, *cap * sizeof(*c));
			if (!c)
				return -ENOMEM;
			s->chunks = c;
		}
		s->chunks[s->nchunks++] = (struct chunk){ va, (uint32_t)n };
	}
	return 0;
}

/* The chunks to send: everything (peer NULL), or the granules whose
 * digests differ, runs of them merged. *granules: how many. */
static int plan_chunks(struct src *s, const uint8_t *peer, uint64_t *granules)
{
	const struct cv_mig_range *r;
	uint64_t cap = 0, idx = 0, g, run = 0, start = 0;
	uint32_t i;
	int rc = 0;

	s->nchunks = 0;
	*granules = 0;
	for (i = 0; i < s->plan.nranges && !rc; i++) {
		r = &s->plan.ranges[i];
		if (!peer) {
			*granules += r->size / MIG_GRANULE;
			rc = add_chunk(s, &cap, r->va, r->size);
			idx += r->size / MIG_GRANULE;
			continue;
		}
		run = 0;
		for (g = 0; g < r->size / MIG_GRANULE && !rc; g++, idx++) {
			if (!memcmp(s->dg + idx * CV_DIGEST_LEN,
				    peer + idx * CV_DIGEST_LEN,
				    CV_DIGEST_LEN)) {
				if (run)
					rc = add_chunk(s, &cap, start, run);
				run = 0;
				continue;
			}
			if (!run)
				start = r->va + g * MIG_GRANULE;
			run += MIG_GRANULE;
			++*granules;
		}
		if (run && !rc)
			rc = add_chunk(s, &cap, start, run);
	}
	return rc ? set_err(s, rc, "out of memory") : 0;
}

/* With --max-rate, waits for this chunk's turn: while the tenant runs the
 * lanes start at most max_rate_mbs MB of copies a second, together. */
static void pace(struct src *s, uint64_t len)
{
	uint64_t now, at;

	if (!s->pacing)
		return;
	pthread_mutex_lock(&s->lock);
	now = cv_now_ns();
	at = CV_MAX(s->pace_at, now);
	s->pace_at = at + len * 1000 / s->req->max_rate_mbs;
	pthread_mutex_unlock(&s->lock);
	if (at > now)
		nanosleep(&(struct timespec){ (time_t)((at - now) / 1000000000u),
					      (long)((at - now) % 1000000000u) },
			  NULL);
}

static int take_slot(struct src *s, uint32_t *slot)
{
	struct timespec ts;

	deadline(&ts, MIG_WAIT_MS);
	pthread_mutex_lock(&s->lock);
	while (!s->err && !s->slot_free)
		if (pthread_cond_timedwait(&s->cond, &s->lock, &ts) ==
		    ETIMEDOUT) {
			pthread_mutex_unlock(&s->lock);
			return set_err(s, -ETIMEDOUT, "the destination did not "
				       "free a slot in %d s", MIG_WAIT_MS / 1000);
		}
	if (s->err) {
		pthread_mutex_unlock(&s->lock);
		return s->err;
	}
	*slot = (uint32_t)__builtin_ctzll(s->slot_free);
	s->slot_free &= ~(1ull << *slot);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static void give_slot(struct src *s, uint32_t slot)
{
	pthread_mutex_lock(&s->lock);
	s->slot_free |= 1ull << slot;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

struct lane_arg {
	struct src *s;
	uint32_t lane;
};

static void *lane_main(void *arg)
{
	struct lane_arg *a = arg;
	struct src *s = a->s;
	struct cv_vgpu *v = s->v;
	struct cv_mig_granules g;
	uint64_t i;
	uint8_t *buf;
	uint32_t slot = 0;
	bool mapped;
	int rc;

	while ((i = __atomic_fetch_add(&s->next, 1, __ATOMIC_RELAXED)) <
	       s->nchunks) {
		pace(s, s->chunks[i].len);
		if (take_slot(s, &slot))
			break;
		buf = s->slots + (uint64_t)slot * MIG_SLOT_SIZE;
		g = (struct cv_mig_granules){ s->chunks[i].va,
					      s->chunks[i].len,
					      s->inl ? CV_MIG_INLINE : slot };
		pthread_rwlock_rdlock(&v->mem_lock);
		mapped = still_mapped(v, g.va, g.len);
		rc = 0;
		if (mapped) {
			rc = v->ops->memcpy(v->b, CV_COPY_DTOH, (uint64_t)buf,
					    g.va, g.len, s->stream[a->lane]);
			if (!rc)
				rc = v->ops->stream_sync(v->b,
							 s->stream[a->lane]);
		}
		pthread_rwlock_unlock(&v->mem_lock);
		if (rc) {
			give_slot(s, slot);
			set_err(s, -EIO, "copying device memory at 0x%llx "
				"failed: CUresult %d",
				(unsigned long long)g.va, rc);
			break;
		}
		if (!mapped) { /* freed meanwhile: the next plan says so */
			give_slot(s, slot);
			continue;
		}
		/* inline: the bytes are in the socket when it returns */
		rc = cv_mig_send(&s->io, CV_MIG_GRANULES, &g, sizeof(g),
				 s->inl ? buf : NULL, s->inl ? g.len : 0, NULL,
				 0);
		if (s->inl)
			give_slot(s, slot);
		if (rc) {
			set_err(s, rc, "%s", stream_why(rc));
			break;
		}
		__atomic_fetch_add(&s->sent, g.len, __ATOMIC_RELAXED);
		__atomic_fetch_add(&v->op_done, g.len, __ATOMIC_RELAXED);
	}
	return NULL;
}

static int send_chunks(struct src *s)
{
	struct lane_arg args[MIG_LANES];
	pthread_t th[MIG_LANES];
	uint32_t i, n = 0;
	int rc;

	s->next = 0;
	for (i = 0; i < s->nlanes && i < s->nchunks; i++) {
		args[i] = (struct lane_arg){ s, i };
		if (pthread_create(&th[i], NULL, lane_main, &args[i]))
			break;
		n++;
	}
	if (!n && s->nchunks)
		return set_err(s, -EAGAIN, "cannot start a lane");
	for (i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_lock(&s->lock);
	rc = s->err;
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static int send_plan(struct src *s)
{
	struct cv_wbuf b;
	int rc;

	cv_wbuf_init(&b);
	cv_mig_plan_encode(&s->plan, &b);
	rc = b.err ? b.err : cv_mig_send(&s->io, CV_MIG_PLAN, b.p, b.len,
					 NULL, 0, NULL, 0);
	cv_wbuf_free(&b);
	return rc ? set_err(s, rc, "%s", stream_why(rc)) : 0;
}

static int send_round(struct src *s, uint32_t type, uint32_t round,
		      uint64_t bytes)
{
	struct cv_mig_round r = { round, 0, bytes };
	int rc = cv_mig_send(&s->io, type, &r, sizeof(r), NULL, 0, NULL, 0);

	return rc ? set_err(s, rc, "%s", stream_why(rc)) : 0;
}

/* Asks the destination for its digests of the plan (as round) and waits
 * for them in s->peer_dg. */
static int peer_digests(struct src *s, uint32_t round)
{
	pthread_mutex_lock(&s->lock);
	s->peer_expect = s->ndg;
	s->peer_round = round;
	s->peer_ready = false;
	pthread_mutex_unlock(&s->lock);
	return send_round(s, CV_MIG_DIGEST_REQ, round, 0);
}

static void inject(struct src *s, uint32_t round, bool stop)
{
	const struct cv_ctl_migrate *q = s->req;

	if (!q->fault || (q->fault_round != round &&
			  !(stop && q->fault_round == CV_MIGRATE_AT_STOP)))
		return;
	cv_warn("tenant %llu: migration: injecting fault %u in round %u%s",
		(unsigned long long)s->v->hdr->tenant_id, q->fault, round,
		stop ? " (stop and copy)" : "");
	switch (q->fault) {
	case CV_MIGRATE_FAULT_KILL_DEST:
		if (s->dest_pid > 1)
			kill((pid_t)s->dest_pid, SIGKILL);
		break;
	case CV_MIGRATE_FAULT_CUT:
		shutdown(s->io.fd, SHUT_RDWR);
		break;
	case CV_MIGRATE_FAULT_CORRUPT:
		pthread_mutex_lock(&s->io.send_lock);
		s->io.fault = CV_MIG_FAULT_CORRUPT;
		pthread_mutex_unlock(&s->io.send_lock);
		break;
	}
}

/* Appends a round to the report. */
static int add_stat(struct src *s, const struct round_stat *st)
{
	struct round_stat *grown;

	grown = realloc(s->st, (s->nst + 1) * sizeof(*s->st));
	if (!grown)
		return set_err(s, -ENOMEM, "out of memory");
	s->st = grown;
	s->st[s->nst++] = *st;
	return 0;
}

/* ---- the same device: sharing instead of copying -------------------- */

struct share_fd {
	struct cv_mig_share sh;
	int fd;
};

/* The physical memory of the layout as fds, with the plan that maps it,
 * taken at one time (under mem_lock): *gen is that layout's generation. */
static int share_collect(struct src *s, uint32_t round, struct share_fd **out,
			 uint32_t *n, uint64_t *gen, uint64_t *bytes)
{
	struct cv_vgpu *v = s->v;
	const struct cv_wvmm *h;
	const struct cv_wmap *m;
	struct share_fd *a;
	uint32_t i, k = 0;
	int rc;

	pthread_rwlock_rdlock(&v->mem_lock);
	*gen = v->layout_gen;
	rc = snapshot_locked(s, round);
	a = calloc((size_t)v->vmms.count + v->dev.n + 1, sizeof(*a));
	if (rc || !a) {
		pthread_rwlock_unlock(&v->mem_lock);
		free(a);
		return set_err(s, -ENOMEM, "out of memory");
	}
	*bytes = 0;
	for (i = 1; i < v->vmms.cap && !rc; i++) {
		if (!(h = v->vmms.v[i]))
			continue;
		a[k].sh = (struct cv_mig_share){ CV_MIG_SHARE_VMM, i, 0,
						 h->size };
		rc = v->ops->mem_export(v->b, h->mem, &a[k].fd);
		if (!rc)
			*bytes += a[k++].sh.size;
	}
	for (i = 0; i < v->dev.n && !rc; i++) {
		m = v->dev.r[i].owner;
		if (m->vmm)
			continue;
		a[k].sh = (struct cv_mig_share){ CV_MIG_SHARE_MEM, 0,
						 v->dev.r[i].base,
						 v->dev.r[i].size };
		rc = v->ops->mem_export(v->b, m->mem, &a[k].fd);
		if (!rc)
			*bytes += a[k++].sh.size;
	}
	pthread_rwlock_unlock(&v->mem_lock);
	*out = a;
	*n = k;
	if (rc)
		return set_err(s, rc == CUDA_ERROR_NOT_SUPPORTED ? -EOPNOTSUPP :
			       -EIO, "device memory cannot be shared with "
			       "another worker (CUresult %d)", rc);
	return 0;
}

static void share_close(struct share_fd *a, uint32_t n)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		close(a[i].fd);
	free(a);
}

/*
 * Hands the destination the tenant's memory as it is now: SHARE records
 * (after a RESET when it holds an older layout), the PLAN that maps them,
 * and a round end it answers once everything is mapped.
 */
static int share_round(struct src *s, uint32_t round, bool stop, bool reset,
		       uint64_t *gen)
{
	struct round_stat st = { .round = round, .stop = stop };
	struct cv_mig_share rs = { CV_MIG_SHARE_RESET, 0, 0, 0 };
	uint64_t t0 = cv_now_ns(), bytes = 0;
	struct share_fd *a = NULL;
	uint32_t n = 0, i;
	int rc;

	inject(s, round, stop);
	rc = share_collect(s, round, &a, &n, gen, &bytes);
	if (!rc && reset &&
	    (rc = cv_mig_send(&s->io, CV_MIG_SHARE, &rs, sizeof(rs), NULL, 0,
			      NULL, 0)))
		set_err(s, rc, "%s", stream_why(rc));
	for (i = 0; i < n && !rc; i++)
		if ((rc = cv_mig_send(&s->io, CV_MIG_SHARE, &a[i].sh,
				      sizeof(a[i].sh), NULL, 0, &a[i].fd, 1)))
			set_err(s, rc, "%s", stream_why(rc));
	if (a)
		share_close(a, n);
	if (!rc)
		rc = send_plan(s);
	if (!rc)
		rc = send_round(s, CV_MIG_ROUND_END, round, 0);
	if (!rc)
		rc = wait_for(s, NULL, &s->rounds_done, round + 1, MIG_WAIT_MS,
			      "memory mapped");
	if (rc)
		return rc;
	s->shared = bytes;
	st.objects = n;
	st.ns = cv_now_ns() - t0;
	return add_stat(s, &st);
}

/* One round: plan, digests (after round 0), the differing granules. */
static int do_round(struct src *s, uint32_t round, bool stop)
{
	struct round_stat st = { .round = round, .stop = stop };
	uint64_t t0 = cv_now_ns(), tsend, granules, ndg, i;
	int rc;

	inject(s, round, stop);
	rc = snapshot(s, round);
	if (rc)
		return set_err(s, rc, "out of memory");
	ndg = cv_mig_plan_granules(&s->plan, MIG_GRANULE);
	if (ndg > s->max_digests)
		return set_err(s, -EINVAL, "the plan has more granules than "
			       "the quota allows");
	s->ndg = ndg;
	rc = send_plan(s);
	if (!rc && round > 0) {
		rc = peer_digests(s, round);
		if (!rc)
			rc = digest_all(s, stop);
		if (!rc)
			rc = wait_for(s, &s->peer_ready, NULL, 0, MIG_WAIT_MS,
				      "digests");
		st.digests = 2 * ndg;
	} else if (!rc && stop) {
		/* Stopped in round 0 (nothing worth a pre-copy): the
		 * verification needs our digests of the frozen memory. */
		rc = digest_all(s, stop);
		st.digests = ndg;
	}
	if (!rc)
		rc = plan_chunks(s, round > 0 ? s->peer_dg : NULL, &granules);
	if (rc)
		return rc;
	s->v->op_total = 0;
	for (i = 0; i < s->nchunks; i++)
		s->v->op_total += s->chunks[i].len;
	__atomic_store_n(&s->v->op_done, 0, __ATOMIC_RELAXED);
	s->sent = 0;
	tsend = cv_now_ns();
	s->pacing = !stop && s->req->max_rate_mbs;
	s->pace_at = tsend;
	rc = send_chunks(s);
	if (!rc)
		rc = send_round(s, CV_MIG_ROUND_END, round, s->sent);
	if (!rc)
		rc = wait_for(s, NULL, &s->rounds_done, round + 1, MIG_WAIT_MS,
			      "end of round");
	if (rc)
		return rc;
	st.granules = granules;
	st.bytes = s->sent;
	st.ns = cv_now_ns() - t0;
	/* A capped round says nothing of the link (the stop is not capped) */
	if (s->sent >= (64ull << 20) && !s->pacing)
		s->link_rate = s->sent * 1e9 / (double)(cv_now_ns() - tsend);
	/* What changed since the last round's digests, per second. */
	if (round > 0 && s->nst)
		st.dirty_rate = s->sent * 1e9 / (double)s->st[s->nst - 1].ns;
	return add_stat(s, &st);
}

/* Whether to stop and copy after this round (and why). */
static bool should_stop(struct src *s, uint32_t round)
{
	const struct round_stat *cur = &s->st[s->nst - 1];
	double rate = s->link_rate > 0 ? s->link_rate : 10e9;
	uint32_t max_rounds = s->req->max_rounds ? s->req->max_rounds :
						   CV_MIGRATE_DEFAULT_ROUNDS;
	uint64_t max_ns = (uint64_t)(s->req->max_pause_ms ?
				     s->req->max_pause_ms :
				     CV_MIGRATE_DEFAULT_PAUSE_MS) * 1000000ull;
	double est;

	if (round + 2 >= max_rounds) {
		s->stop_reason = "max-rounds";
		return true;
	}
	if (round == 0)
		return false;
	/* Moving what differs now, digesting twice more (the last round,
	 * the check), and the fixed part. */
	est = cur->bytes / rate * 1e9 + 2.0 * (double)s->dg_ns + MIG_FIXED_NS;
	if (est <= (double)max_ns) {
		s->stop_reason = "converged";
		return true;
	}
	if (round >= 2 && cur->bytes * 20 >= s->st[s->nst - 2].bytes * 19) {
		s->stop_reason = "no-shrink";
		return true;
	}
	return false;
}

/* The destination digests what it holds now; it must equal our digests
 * of the frozen memory. */
static int verify(struct src *s, uint32_t round)
{
	uint64_t i;
	int rc = peer_digests(s, round);

	if (!rc)
		rc = wait_for(s, &s->peer_ready, NULL, 0, MIG_WAIT_MS,
			      "verification digests");
	if (rc)
		return rc;
	for (i = 0; i < s->ndg; i++)
		if (memcmp(s->dg + i * CV_DIGEST_LEN,
			   s->peer_dg + i * CV_DIGEST_LEN, CV_DIGEST_LEN))
			return set_err(s, -EIO, "verification failed: granule "
				       "%llu differs on the destination",
				       (unsigned long long)i);
	return 0;
}

/* The object state: a checkpoint image without memory, in pieces. */
static int send_state(struct src *s, uint64_t *total)
{
	struct cv_mig_state h;
	uint64_t bytes = 0, off, n;
	uint8_t *p = MAP_FAILED;
	struct stat st;
	int fd, rc;

	fd = memfd_create("cuvisor-mig-state", MFD_CLOEXEC);
	if (fd < 0)
		return set_err(s, -errno, "memfd_create: %s", strerror(errno));
	rc = cv_vgpu_checkpoint(s->v, fd, 0, CV_VGPU_NO_MEM, &bytes);
	if (rc) {
		set_err(s, rc, "saving the object state failed: %s",
			strerror(-rc));
		goto out;
	}
	if (fstat(fd, &st)) {
		rc = set_err(s, -errno, "fstat: %s", strerror(errno));
		goto out;
	}
	bytes = (uint64_t)st.st_size;
	if (bytes > MIG_STATE_MAX) {
		rc = set_err(s, -EFBIG, "the object state is too large "
			     "(%llu bytes)", (unsigned long long)bytes);
		goto out;
	}
	p = mmap(NULL, bytes ? bytes : 1, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		rc = set_err(s, -errno, "mmap: %s", strerror(errno));
		goto out;
	}
	for (off = 0; !rc && (off < bytes || !off); off += n) {
		n = CV_MIN(bytes - off, MIG_STATE_PIECE);
		h = (struct cv_mig_state){ off, bytes };
		rc = cv_mig_send(&s->io, CV_MIG_STATE, &h, sizeof(h), p + off,
				 n, NULL, 0);
		if (rc)
			set_err(s, rc, "%s", stream_why(rc));
		if (!n)
			break;
	}
	*total = bytes;
out:
	if (p != MAP_FAILED)
		munmap(p, bytes ? bytes : 1);
	close(fd);
	return rc;
}

/* The slot area is the worker's transfer lanes' area (worker/xfer.c),
 * registered once for the worker's life: nothing to register now. */
static int slots_setup(struct src *s)
{
	struct cv_vgpu *v = s->v;
	uint64_t size = 0;
	uint32_t i;
	int fd = -1, rc;

	rc = cv_xfer_area(v, &fd, &s->slots, &size);
	if (rc)
		return set_err(s, rc, "cannot set up the slot area: %s",
			       strerror(-rc));
	if (size != (uint64_t)MIG_SLOTS * MIG_SLOT_SIZE)
		return set_err(s, -EINVAL, "the slot area has %llu bytes",
			       (unsigned long long)size);
	/* inline, the area stays ours: nothing to hand over */
	s->slot_fd = s->inl ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (!s->inl && s->slot_fd < 0)
		return set_err(s, -errno, "dup: %s", strerror(errno));
	s->nlanes = CV_MIN(MIG_LANES, MIG_SLOTS);
	for (i = 0; i < s->nlanes; i++)
		if (v->ops->stream_create(v->b, CU_STREAM_NON_BLOCKING, 0,
					  &s->stream[i]))
			return set_err(s, -EIO, "cannot create a stream");
	s->slot_free = (1ull << MIG_SLOTS) - 1;
	return 0;
}

static void src_free(struct src *s)
{
	struct cv_vgpu *v = s->v;
	uint32_t i;

	shutdown(s->io.fd, SHUT_RDWR);
	if (s->rx_started)
		pthread_join(s->rx, NULL);
	for (i = 0; i < MIG_LANES; i++)
		if (s->stream[i])
			v->ops->stream_destroy(v->b, s->stream[i]);
	if (s->slot_fd >= 0)
		close(s->slot_fd);
	close(s->io.fd);
	cv_mig_plan_free(&s->plan);
	free(s->chunks);
	free(s->dg);
	free(s->peer_dg);
	free(s->st);
}

/* ---- the report ------------------------------------------------------ */

struct jbuf {
	char *p;
	size_t cap, len;
	bool full;
};

static void jput(struct jbuf *j, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (j->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(j->p + j->len, j->cap - j->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= j->cap - j->len) {
		j->full = true;
		j->p[j->len] = 0;
		return;
	}
	j->len += (size_t)n;
}

/* A JSON string: the message is ours, but keep it valid whatever. */
static void jstr(struct jbuf *j, const char *s)
{
	jput(j, "\"");
	for (; *s; s++)
		if (*s == '"' || *s == '\\')
			jput(j, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			jput(j, " ");
		else
			jput(j, "%c", *s);
	jput(j, "\"");
}

static size_t report(struct src *s, const struct cv_ctl_migrate_r *r,
		     int from_gpu, char *out, size_t cap, int rc)
{
	struct jbuf j = { out, cap, 0, false };
	uint64_t mem = 0;
	uint32_t i;

	if (!cap)
		return 0;
	out[0] = 0;
	for (i = 0; i < s->plan.nranges; i++)
		mem += s->plan.ranges[i].size;
	jput(&j, "{\"tenant\":%llu,\"from_gpu\":%d,\"to_gpu\":%d,"
	     "\"path\":\"%s\",\"result\":\"%s\",\"error\":",
	     (unsigned long long)s->v->hdr->tenant_id, from_gpu,
	     (int)s->req->gpu, s->share ? "share" : "copy",
	     rc ? "failed" : "ok");
	jstr(&j, rc ? r->msg : "");
	jput(&j, ",\"granule\":%u,\"memory_bytes\":%llu,\"max_pause_ms\":%u,"
	     "\"max_rate_mbs\":%u,"
	     "\"max_rounds\":%u,\"stop_reason\":\"%s\",\"rounds\":[",
	     MIG_GRANULE, (unsigned long long)mem,
	     s->req->max_pause_ms ? s->req->max_pause_ms :
				    CV_MIGRATE_DEFAULT_PAUSE_MS,
	     s->req->max_rate_mbs,
	     s->req->max_rounds ? s->req->max_rounds :
				  CV_MIGRATE_DEFAULT_ROUNDS,
	     rc ? "failed" : s->stop_reason ? s->stop_reason : "converged");
	/* Room for the tail whatever happens to the rounds. */
	j.cap = cap > 256 ? cap - 256 : cap;
	for (i = 0; i < s->nst; i++)
		jput(&j, "%s{\"round\":%u,\"phase\":\"%s\",\"objects\":%llu,"
		     "\"granules\":%llu,\"bytes\":%llu,\"digests\":%llu,"
		     "\"dirty_bytes_per_s\":%.0f,\"ms\":%.3f}",
		     i ? "," : "", s->st[i].round,
		     s->share ? (s->st[i].stop ? "remap" : "map") :
		     s->st[i].stop ? "stop" : "pre-copy",
		     (unsigned long long)s->st[i].objects,
		     (unsigned long long)s->st[i].granules,
		     (unsigned long long)s->st[i].bytes,
		     (unsigned long long)s->st[i].digests, s->st[i].dirty_rate,
		     s->st[i].ns / 1e6);
	j.cap = cap;
	j.full = false;
	jput(&j, "],\"rounds_listed\":%u,\"pause_ms\":%.3f,\"total_ms\":%.3f,"
	     "\"link_gbps\":%.2f,\"shared_bytes\":%llu}\n", (unsigned)s->nst,
	     r->pause_ns / 1e6, r->total_ns / 1e6, s->link_rate / 1e9,
	     (unsigned long long)s->shared);
	return j.len;
}

int cv_migrate_source(struct cv_vgpu *v, int sock, int from_gpu,
		      const struct cv_ctl_migrate *req, int link_fd,
		      struct cv_ctl_migrate_r *r, char *out, size_t cap,
		      size_t *outlen)
{
	struct src s = { .v = v, .req = req, .slot_fd = -1 };
	struct cv_mig_hello h = { .magic = CV_MIG_MAGIC,
				  .version = CV_MIG_VERSION };
	int fds[2] = { v->memfd, -1 };
	uint64_t t0 = cv_now_ns(), tpause = 0, bytes = 0, state = 0;
	uint64_t tv = 0, ts = 0, tr = 0, tc = 0; /* the pause's phases */
	uint64_t tsl = 0, tx = 0, tw = 0; /* slot area, lanes, welcome */
	bool suspended = false, committed = false, stop = false;
	bool zset = false, zwas = false;
	uint64_t gen = 0;
	uint32_t round = 0;
	int rc;

	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&s.lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&s.cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	cv_mig_io_init(&s.io, sock);
	__atomic_store_n(&v->mig_busy, 1, __ATOMIC_RELEASE);
	s.max_digests = MIG_MAX_DIGESTS(v->quota);
	if (getrandom(&s.seed, sizeof(s.seed), 0) != sizeof(s.seed))
		s.seed = cv_now_ns();
	s.dg = malloc(s.max_digests * CV_DIGEST_LEN);
	s.peer_dg = malloc(s.max_digests * CV_DIGEST_LEN);
	rc = s.dg && s.peer_dg ? 0 : set_err(&s, -ENOMEM, "out of memory");
	if (!rc && (rc = cv_vgpu_vmm_covered(v, "migrated")))
		set_err(&s, rc, "a VMM allocation has bytes mapped nowhere");
	s.share = req->gpu == from_gpu && !(req->flags & CV_MIGRATE_COPY) &&
		  v->ops->mem_export;
	s.inl = !s.share && (req->flags & CV_MIGRATE_INLINE);
	/* From a GPU on another host: its bytes come compressed if asked
	 * (as they were, should the migration fail). */
	if ((req->flags & CV_MIGRATE_ZSTD) && v->ops->compress) {
		zwas = v->ops->compress(v->b, true);
		zset = true;
	}
	if (!rc && !s.share)
		rc = slots_setup(&s);
	tsl = cv_now_ns();
	/* The state's globals go through the lanes: not in the pause. */
	if (!rc && cv_xfer_prepare(v))
		rc = set_err(&s, -ENOMEM, "cannot set up the transfer lanes");
	tx = cv_now_ns();
	if (!rc) {
		memcpy(h.token, v->token, sizeof(h.token));
		h.tenant = v->hdr->tenant_id;
		h.quota = v->quota;
		h.seed = s.seed;
		h.granule = MIG_GRANULE;
		h.nslots = s.share || s.inl ? 0 : MIG_SLOTS;
		h.slot_size = s.share || s.inl ? 0 : MIG_SLOT_SIZE;
		h.flags = s.share ? CV_MIG_HELLO_SHARE :
			  s.inl ? CV_MIG_HELLO_INLINE : 0;
		h.backend = v->hdr->dev.backend;
		h.cc_major = (uint16_t)v->hdr->dev.cc_major;
		h.cc_minor = (uint16_t)v->hdr->dev.cc_minor;
		fds[1] = s.slot_fd;
		rc = cv_mig_send(&s.io, CV_MIG_HELLO, &h, sizeof(h), NULL, 0,
				 fds, s.share || s.inl ? 1 : 2);
		if (rc)
			set_err(&s, rc, "%s", stream_why(rc));
	}
	if (!rc) {
		s.rx_started = !pthread_create(&s.rx, NULL, rx_main, &s);
		rc = s.rx_started ? 0 : set_err(&s, -EAGAIN, "no thread");
	}
	if (!rc)
		rc = wait_for(&s, &s.welcomed, NULL, 0, MIG_WAIT_MS,
			      "welcome");
	tw = cv_now_ns();
	if (!rc && s.share) {
		/* Map everything on the destination while the tenant runs;
		 * in the pause only a layout changed meanwhile is redone. */
		rc = share_round(&s, 0, false, false, &gen);
		if (!rc) {
			tpause = cv_now_ns();
			rc = cv_vgpu_suspend(v);
			if (rc)
				set_err(&s, rc, "the tenant cannot be "
					"suspended: %s", strerror(-rc));
			else
				suspended = true;
		}
		if (!rc && (rc = cv_vgpu_vmm_covered(v, "migrated")))
			set_err(&s, rc, "a VMM allocation has bytes mapped "
				"nowhere");
		if (!rc && v->layout_gen != gen)
			rc = share_round(&s, 1, true, true, &gen);
		tv = ts = cv_now_ns();
		round = 1;
		stop = true;
		s.stop_reason = "shared";
	}
	for (; !rc && !s.share; round++) {
		if (stop) {
			tpause = cv_now_ns();
			rc = cv_vgpu_suspend(v);
			if (rc) {
				set_err(&s, rc, "the tenant cannot be "
					"suspended: %s", strerror(-rc));
				break;
			}
			suspended = true;
			/* Its layout cannot change any more. */
			rc = cv_vgpu_vmm_covered(v, "migrated");
			if (rc) {
				set_err(&s, rc, "a VMM allocation has bytes "
					"mapped nowhere");
				break;
			}
		}
		rc = do_round(&s, round, stop);
		if (!rc)
			bytes += s.st[s.nst - 1].bytes;
		if (rc || stop)
			break;
		stop = should_stop(&s, round);
	}
	if (!rc && !s.share) {
		tv = cv_now_ns();
		inject(&s, round + 1, true);
		rc = verify(&s, round + 1);
		ts = cv_now_ns();
	} else if (!rc) {
		inject(&s, round, true);
	}
	if (!rc)
		rc = send_state(&s, &state);
	if (!rc) {
		tr = cv_now_ns();
		rc = wait_for(&s, &s.ready, NULL, 0, MIG_WAIT_MS, "ready");
	}
	tc = cv_now_ns();
	if (!rc) {
		/* From here on the tenant is the destination's. */
		rc = cv_mig_send(&s.io, CV_MIG_COMMIT, NULL, 0, NULL, 0,
				 &link_fd, 1);
		if (rc)
			set_err(&s, rc, "%s", stream_why(rc));
		else
			committed = true;
	}
	if (committed) {
		if (wait_for(&s, &s.running, NULL, 0, MIG_RUNNING_MS,
			     "running"))
			cv_warn("tenant %llu: migration committed, but the "
				"destination did not say it runs: %s",
				(unsigned long long)v->hdr->tenant_id, s.why);
		rc = 0;
	}
	r->tenant = v->hdr->tenant_id;
	r->gpu = committed ? req->gpu : from_gpu;
	r->rounds = s.nst;
	r->bytes = bytes;
	r->flags = s.share ? CV_MIGRATE_R_SHARED : 0;
	r->pause_ns = tpause ? cv_now_ns() - tpause : 0;
	r->total_ns = cv_now_ns() - t0;
	if (!committed) {
		pthread_mutex_lock(&s.lock);
		rc = s.err ? s.err : -EIO;
		snprintf(r->msg, sizeof(r->msg), "%.*s", (int)sizeof(r->msg) - 1,
			 s.why);
		pthread_mutex_unlock(&s.lock);
		/* Stop the lanes' peer, then run on as before. */
		shutdown(s.io.fd, SHUT_RDWR);
		if (zset)
			v->ops->compress(v->b, zwas);
		if (suspended) {
			uint64_t dummy;

			cv_vgpu_resume(v, &dummy);
		}
		cv_warn("tenant %llu: migration failed: %s; the tenant runs "
			"on here", (unsigned long long)v->hdr->tenant_id,
			r->msg);
	} else {
		cv_info("tenant %llu: migrated in %u rounds, %llu bytes, "
			"state %llu bytes, pause %.2f ms (last round %.2f, "
			"check %.2f, state %.2f, rebuild %.2f, commit to "
			"running %.2f), total %.1f ms (set-up %.1f: slot area "
			"%.1f, lanes %.1f, destination's welcome %.1f)",
			(unsigned long long)v->hdr->tenant_id, s.nst,
			(unsigned long long)bytes, (unsigned long long)state,
			r->pause_ns / 1e6, (tv - tpause) / 1e6, (ts - tv) / 1e6,
			(tr - ts) / 1e6, (tc - tr) / 1e6,
			(cv_now_ns() - tc) / 1e6, r->total_ns / 1e6,
			(tw - t0) / 1e6, (tsl - t0) / 1e6, (tx - tsl) / 1e6,
			(tw - tx) / 1e6);
	}
	*outlen = report(&s, r, from_gpu, out, cap, committed ? 0 : rc);
	r->report_len = (uint32_t)*outlen;
	src_free(&s);
	__atomic_store_n(&v->mig_busy, 0, __ATOMIC_RELEASE);
	return committed ? 0 : rc;
}

/* ---- destination ----------------------------------------------------- */

/* What the destination frees once the tenant runs. */
struct later {
	cv_bobj stream[MIG_DST_STREAMS_MAX];
	uint8_t *slots;
	uint64_t size;
	int fd;
	bool set;
};
static struct later g_later;

/* Memory the source shared (same device), not mapped yet. */
struct offer {
	struct cv_mig_share sh;
	cv_bobj mem;
};

struct dst {
	struct cv_vgpu *v;
	struct cv_mig_io *io;
	const struct cv_mig_hello *h;
	bool share;
	bool inl;               /* GRANULES carry their bytes */
	uint8_t *stage;         /* inline: our transfer lanes' area, borrowed:
				 * MIG_DST_STREAMS pieces of MIG_SLOT_SIZE */
	uint8_t *slots;
	uint64_t slots_size;
	bool registered;
	/* GRANULES are copied on these in turn; pend[i]: the slot stream
	 * i copies from, freed once it is done (or, with a backend that
	 * sends the bytes, once they are sent: mark[i]), or -1 */
	cv_bobj stream[MIG_DST_STREAMS_MAX];
	int64_t pend[MIG_DST_STREAMS_MAX];
	uint64_t mark[MIG_DST_STREAMS_MAX];
	uint32_t unsynced;      /* bit i: stream i has copies not waited for */
	uint32_t nstreams;      /* in use */
	uint32_t turn;
	struct cv_mig_plan plan;
	bool have_plan;
	/* Digests of what this worker holds, per granule of the plan, kept
	 * current: a granule written (GRANULES) or mapped anew is digested
	 * again at the next DIGEST_REQ, and only then. */
	uint8_t *dg;
	uint8_t *dg_ok;
	uint64_t *first;           /* first granule of each plan range */
	struct offer *offers;
	uint32_t noffers;
	uint64_t offered;          /* bytes */
	int state_fd;
	uint64_t state_got, state_total;
	char *err;
	size_t errlen;
};

static int dfail(struct dst *d, int rc, const char *fmt, ...)
{
	va_list ap;

	if (!d->err[0]) {
		va_start(ap, fmt);
		vsnprintf(d->err, d->errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

int cv_migrate_accept(struct cv_mig_io *io, const uint8_t token[16],
		      uint64_t quota, struct cv_mig_hello *h, int *region_fd,
		      int *slot_fd, char *err, size_t errlen)
{
	int fds[2] = { -1, -1 }, nfds = 2, rc;
	uint32_t type, len;
	char why[160];

	*region_fd = *slot_fd = -1;
	rc = cv_mig_recv(io, &type, h, sizeof(*h), &len, fds, &nfds,
			 MIG_HELLO_MS);
	if (rc) {
		snprintf(err, errlen, "no HELLO from the source: %s",
			 stream_why(rc));
		return rc;
	}
	/* Sharing: the region only; copying: the region and the slots. */
	if (type != CV_MIG_HELLO || len != sizeof(*h) ||
	    nfds != (h->flags & (CV_MIG_HELLO_SHARE | CV_MIG_HELLO_INLINE) ?
			     1 : 2)) {
		rc = -EPROTO;
		snprintf(err, errlen, "the source's first record is not a "
			 "HELLO with its fds");
	} else if ((rc = cv_mig_hello_check(h, why, sizeof(why)))) {
		snprintf(err, errlen, "bad HELLO: %s", why);
	} else if (memcmp(h->token, token, 16) || h->quota != quota ||
		   (h->nslots == 0) != !!h->flags) {
		rc = -EINVAL;
		snprintf(err, errlen, "the source migrates another tenant, or "
			 "with another quota, than this worker was started for");
	}
	if (rc) {
		for (len = 0; len < (uint32_t)nfds; len++)
			close(fds[len]);
		return rc;
	}
	*region_fd = fds[0];
	*slot_fd = fds[1];
	return 0;
}

static void dst_abort(struct dst *d, int rc)
{
	struct cv_mig_abort a;
	int sticky = d->io->err;

	/* Tell the source why, even after our reading side failed (a bad
	 * record): its writing side may still work. */
	cv_mig_abort_make(&a, rc, d->err);
	d->io->err = 0;
	cv_mig_send(d->io, CV_MIG_ABORT, &a, sizeof(a), NULL, 0, NULL, 0);
	d->io->err = sticky;
}

static bool same_range(const struct cv_range *r, const struct cv_mig_range *m)
{
	const struct cv_wmap *w = r->owner;

	return r->base == m->va && r->size == m->size && w->vmm == m->vmm &&
	       w->offset == m->offset;
}

/* The range of the plan that starts at va, or NULL. */
static const struct cv_mig_range *plan_find(const struct cv_mig_plan *p,
					    uint64_t va)
{
	int64_t i = cv_mig_plan_index(p, va);

	return i >= 0 && p->ranges[i].va == va ? &p->ranges[i] : NULL;
}

static const struct cv_mig_vmm *plan_vmm(const struct cv_mig_plan *p,
					 uint32_t id)
{
	uint32_t lo = 0, hi = p->nvmm, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (p->vmm[mid].id == id)
			return &p->vmm[mid];
		if (p->vmm[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Takes the offer of kind for (id, va, size): its memory, or NULL. */
static cv_bobj take_offer(struct dst *d, uint32_t kind, uint32_t id,
			  uint64_t va, uint64_t size)
{
	struct offer *o;
	cv_bobj mem;
	uint32_t i;

	for (i = 0; i < d->noffers; i++) {
		o = &d->offers[i];
		if (o->sh.kind != kind || o->sh.id != id || o->sh.va != va ||
		    o->sh.size != size)
			continue;
		mem = o->mem;
		d->offered -= o->sh.size;
		d->offers[i] = d->offers[--d->noffers];
		return mem;
	}
	return NULL;
}

static void drop_offers(struct dst *d)
{
	uint32_t i;

	for (i = 0; i < d->noffers; i++)
		d->v->ops->mem_release(d->v->b, d->offers[i].mem);
	d->noffers = 0;
	d->offered = 0;
}

static void drop_range(struct cv_vgpu *v, uint32_t i)
{
	struct cv_range r = v->dev.r[i];
	struct cv_wmap *m = r.owner;
	struct cv_wvmm *h;

	v->ops->mem_unmap(v->b, r.base, r.size);
	cv_rangeset_del(&v->dev, r.base, r.size, NULL);
	if (m->vmm) {
		h = cv_htab_get(&v->vmms, m->vmm);
		if (h)
			h->maps--;
	} else {
		v->ops->mem_release(v->b, m->mem);
		v->used -= m->size;
	}
	free(m);
}

/*
 * Makes this worker's memory what the plan says: drops what changed,
 * creates what is new. Bytes of ranges that stay are kept (they are what
 * the digests compare).
 */
static int reconcile(struct dst *d, const struct cv_mig_plan *p,
		     uint8_t *dropped)
{
	struct cv_vgpu *v = d->v;
	const struct cv_mig_range *pr;
	const struct cv_mig_vmm *pv;
	struct cv_wvmm *h;
	struct cv_wmap *m;
	cv_bobj mem;
	int64_t old;
	uint64_t base;
	uint32_t i;
	int rc;

	v->ops->ctx_sync(v->b);
	for (i = v->dev.n; i-- > 0;) {
		pr = plan_find(p, v->dev.r[i].base);
		m = v->dev.r[i].owner;
		pv = m->vmm ? plan_vmm(p, m->vmm) : NULL;
		h = m->vmm ? cv_htab_get(&v->vmms, m->vmm) : NULL;
		if (pr && same_range(&v->dev.r[i], pr) &&
		    (!m->vmm || (pv && h && pv->size == h->size)))
			continue;
		/* Its digests are of bytes that go away. */
		if (d->have_plan &&
		    (old = cv_mig_plan_index(&d->plan, v->dev.r[i].base)) >= 0)
			dropped[old] = 1;
		drop_range(v, i);
	}
	for (i = 1; i < v->vmms.cap; i++) {
		if (!(h = v->vmms.v[i]))
			continue;
		pv = plan_vmm(p, i);
		if (pv && pv->size == h->size) {
			h->released = pv->released;
			continue;
		}
		if (h->maps)
			return dfail(d, -EPROTO, "VMM handle %u is still "
				     "mapped", i);
		cv_vgpu_vmm_drop(v, i);
	}
	for (i = 0; i < p->nvmm; i++) {
		if (cv_htab_get(&v->vmms, p->vmm[i].id))
			continue;
		mem = d->share ? take_offer(d, CV_MIG_SHARE_VMM, p->vmm[i].id,
					    0, p->vmm[i].size) : NULL;
		if (d->share && !mem)
			return dfail(d, -EPROTO, "the source did not share VMM "
				     "handle %u", p->vmm[i].id);
		rc = cv_vgpu_vmm_add(v, p->vmm[i].id, p->vmm[i].size,
				     p->vmm[i].released, mem, d->err,
				     d->errlen);
		if (rc) {
			if (mem)
				v->ops->mem_release(v->b, mem);
			return dfail(d, rc, "out of memory");
		}
	}
	for (i = 0; i < p->nranges; i++) {
		pr = &p->ranges[i];
		if (cv_rangeset_find(&v->dev, pr->va))
			continue; /* kept above, so the same */
		mem = d->share && !pr->vmm ?
			      take_offer(d, CV_MIG_SHARE_MEM, 0, pr->va,
					 pr->size) : NULL;
		if (d->share && !pr->vmm && (!mem || pr->offset))
			return dfail(d, -EPROTO, "the source did not share the "
				     "memory at 0x%llx",
				     (unsigned long long)pr->va);
		rc = cv_vgpu_map_add(v, pr->va, pr->size, pr->vmm, pr->offset,
				     mem, d->err, d->errlen);
		if (rc) {
			if (mem)
				v->ops->mem_release(v->b, mem);
			return dfail(d, rc, "out of memory");
		}
	}
	/* The pinned heap: the region is shared, only the mappings and
	 * their registration differ. */
	for (i = v->heap.n; i-- > 0;) {
		base = v->heap.r[i].base - CV_REGION_ADDR - CV_HEAP_OFF;
		uint32_t k;

		for (k = 0; k < p->nheap; k++)
			if (p->heap[k].off == base &&
			    p->heap[k].len == v->heap.r[i].size)
				break;
		if (k == p->nheap)
			cv_vgpu_heap_unmap(v, base, v->heap.r[i].size);
	}
	for (i = 0; i < p->nheap; i++) {
		base = CV_REGION_ADDR + CV_HEAP_OFF + p->heap[i].off;
		if (cv_rangeset_find(&v->heap, base))
			continue;
		if (cv_vgpu_heap_map(v, p->heap[i].off, p->heap[i].len))
			return dfail(d, -ENOMEM, "cannot map %llu bytes of "
				     "pinned memory",
				     (unsigned long long)p->heap[i].len);
	}
	return 0;
}

/*
 * The digest table of a new plan: a range kept as it was (same place,
 * same backing, not dropped by reconcile) keeps its digests; the rest
 * are to be computed.
 */
static int dg_rebase(struct dst *d, const struct cv_mig_plan *np,
		     const uint8_t *dropped)
{
	uint64_t n = cv_mig_plan_granules(np, d->h->granule), k, g;
	const struct cv_mig_range *r;
	uint8_t *dg, *ok;
	uint64_t *first;
	int64_t o;
	uint32_t i;

	dg = malloc(n * CV_DIGEST_LEN + 1);
	ok = calloc(n + 1, 1);
	first = calloc(np->nranges + 1u, sizeof(*first));
	if (!dg || !ok || !first) {
		free(dg);
		free(ok);
		free(first);
		return dfail(d, -ENOMEM, "out of memory");
	}
	for (i = 0, k = 0; i < np->nranges; i++) {
		r = &np->ranges[i];
		first[i] = k;
		g = r->size / d->h->granule;
		o = d->have_plan ? cv_mig_plan_index(&d->plan, r->va) : -1;
		if (o >= 0 && !dropped[o] && d->plan.ranges[o].va == r->va &&
		    d->plan.ranges[o].size == r->size &&
		    d->plan.ranges[o].vmm == r->vmm &&
		    d->plan.ranges[o].offset == r->offset) {
			memcpy(dg + k * CV_DIGEST_LEN,
			       d->dg + d->first[o] * CV_DIGEST_LEN,
			       g * CV_DIGEST_LEN);
			memcpy(ok + k, d->dg_ok + d->first[o], g);
		}
		k += g;
	}
	first[np->nranges] = k;
	free(d->dg);
	free(d->dg_ok);
	free(d->first);
	d->dg = dg;
	d->dg_ok = ok;
	d->first = first;
	return 0;
}

static int on_plan(struct dst *d, const uint8_t *p, uint32_t len)
{
	struct cv_mig_plan plan;
	uint8_t *dropped;
	uint64_t t0;
	char why[160];
	int rc;

	rc = cv_mig_plan_decode(p, len, d->v->quota, CV_HEAP_MAX, &plan, why,
				sizeof(why));
	if (rc)
		return dfail(d, rc, "bad PLAN: %s", why);
	if (cv_mig_plan_granules(&plan, d->h->granule) >
	    d->v->quota / d->h->granule + 1) {
		cv_mig_plan_free(&plan);
		return dfail(d, -EINVAL, "bad PLAN: too many granules");
	}
	dropped = calloc(d->plan.nranges + 1u, 1);
	t0 = cv_now_ns();
	rc = dropped ? reconcile(d, &plan, dropped) :
		       dfail(d, -ENOMEM, "out of memory");
	if (!rc && !d->have_plan)
		cv_info("tenant %llu: migrating in: the first plan mapped in "
			"%.1f ms", (unsigned long long)d->v->hdr->tenant_id,
			(cv_now_ns() - t0) / 1e6);
	/* What was shared and is not in the plan is not ours to keep. */
	drop_offers(d);
	if (!rc)
		rc = dg_rebase(d, &plan, dropped);
	free(dropped);
	if (rc) {
		cv_mig_plan_free(&plan);
		return rc;
	}
	cv_mig_plan_free(&d->plan);
	d->plan = plan;
	d->have_plan = true;
	return 0;
}

/* Digests what changed since the last request, then sends them all. */
static int on_digest_req(struct dst *d, const uint8_t *p)
{
	struct cv_vgpu *v = d->v;
	const uint32_t gs = d->h->granule;
	const struct cv_mig_range *pr;
	struct cv_mig_round r;
	uint64_t n, g, e, k;
	uint32_t i;
	int rc = 0;

	memcpy(&r, p, sizeof(r));
	if (!d->have_plan || d->share)
		return dfail(d, -EPROTO, "DIGEST_REQ before any PLAN, or "
			     "while sharing memory");
	n = d->first[d->plan.nranges];
	for (i = 0; i < d->plan.nranges && !rc; i++) {
		pr = &d->plan.ranges[i];
		k = d->first[i];
		for (g = 0; g < pr->size / gs && !rc; g = e) {
			if (d->dg_ok[k + g]) {
				e = g + 1;
				continue;
			}
			for (e = g; e < pr->size / gs && !d->dg_ok[k + e]; e++)
				d->dg_ok[k + e] = 1;
			rc = v->ops->digest(v->b, pr->va + g * gs, (e - g) * gs,
					    gs, d->h->seed,
					    d->dg + (k + g) * CV_DIGEST_LEN,
					    NULL, 0);
		}
	}
	if (rc) {
		memset(d->dg_ok, 0, n);
		return dfail(d, -EIO, "digesting device memory failed: "
			     "CUresult %d", rc);
	}
	r.n = (uint32_t)n;
	r.bytes = 0;
	rc = cv_mig_send(d->io, CV_MIG_DIGESTS, &r, sizeof(r), d->dg,
			 n * CV_DIGEST_LEN, NULL, 0);
	return rc ? dfail(d, rc, "%s", strerror(-rc)) : 0;
}

/* Forgets every mapping and handle (the source shares a new layout). */
static void reset_all(struct dst *d)
{
	struct cv_vgpu *v = d->v;
	uint32_t i;

	v->ops->ctx_sync(v->b);
	for (i = v->dev.n; i-- > 0;)
		drop_range(v, i);
	for (i = 1; i < v->vmms.cap; i++)
		if (v->vmms.v[i])
			cv_vgpu_vmm_drop(v, i);
	drop_offers(d);
	cv_mig_plan_free(&d->plan);
	memset(&d->plan, 0, sizeof(d->plan));
	d->have_plan = false;
}

/* The source shares memory: import it, to be mapped by the next PLAN. */
static int on_share(struct dst *d, const uint8_t *p, int fd)
{
	struct cv_vgpu *v = d->v;
	struct cv_mig_share sh;
	struct offer *o;
	char why[160];
	int rc;

	memcpy(&sh, p, sizeof(sh));
	if (!d->share)
		return dfail(d, -EPROTO, "SHARE in a migration that copies");
	if ((rc = cv_mig_share_check(&sh, v->quota, why, sizeof(why))))
		return dfail(d, rc, "bad SHARE: %s", why);
	if ((sh.kind == CV_MIG_SHARE_RESET) != (fd < 0))
		return dfail(d, -EPROTO, "SHARE %s an fd",
			     fd < 0 ? "without" : "with");
	if (sh.kind == CV_MIG_SHARE_RESET) {
		reset_all(d);
		return 0;
	}
	if (d->noffers >= CV_MIG_MAX_RANGES ||
	    sh.size > v->quota - d->offered)
		return dfail(d, -EINVAL, "the source shares more than the "
			     "quota");
	if (!(d->noffers & (d->noffers - 1))) {
		o = realloc(d->offers, (d->noffers ? 2 * d->noffers : 16) *
					       sizeof(*o));
		if (!o)
			return dfail(d, -ENOMEM, "out of memory");
		d->offers = o;
	}
	o = &d->offers[d->noffers];
	o->sh = sh;
	rc = v->ops->mem_import(v->b, fd, sh.size, &o->mem);
	if (rc)
		return dfail(d, -EIO, "cannot import %llu bytes of shared "
			     "memory: CUresult %d",
			     (unsigned long long)sh.size, rc);
	d->noffers++;
	d->offered += sh.size;
	return 0;
}

/*
 * Gives stream t's slot back once its copy no longer reads it: once the
 * copy is over or, where the backend reads a copy's source before it
 * runs (remote: the bytes are sent), once it is read, without a round
 * trip; the stream is then waited for by retire_all.
 */
static int retire(struct dst *d, uint32_t t)
{
	struct cv_vgpu *v = d->v;
	struct cv_mig_slot sl;
	int rc;

	if (d->pend[t] < 0)
		return 0;
	sl = (struct cv_mig_slot){ (uint32_t)d->pend[t], 0 };
	d->pend[t] = -1;
	if (v->ops->copy_sent) {
		rc = v->ops->copy_sent(v->b, d->mark[t]);
		d->unsynced |= 1u << t;
	} else {
		rc = v->ops->stream_sync(v->b, d->stream[t]);
	}
	if (rc)
		return dfail(d, -EIO, "copying to device memory failed: "
			     "CUresult %d", rc);
	if (d->inl) /* our staging is free again; nothing to tell */
		return 0;
	rc = cv_mig_send(d->io, CV_MIG_SLOT_FREE, &sl, sizeof(sl), NULL, 0,
			 NULL, 0);
	return rc ? dfail(d, rc, "%s", strerror(-rc)) : 0;
}

/* Every copy done and every slot given back. */
static int retire_all(struct dst *d)
{
	struct cv_vgpu *v = d->v;
	uint32_t t;
	int rc = 0;

	for (t = 0; t < d->nstreams && !rc; t++)
		rc = retire(d, t);
	for (t = 0; t < d->nstreams && !rc; t++) {
		if (!(d->unsynced & (1u << t)))
			continue;
		d->unsynced &= ~(1u << t);
		rc = v->ops->stream_sync(v->b, d->stream[t]);
		if (rc)
			rc = dfail(d, -EIO, "copying to device memory failed: "
				   "CUresult %d", rc);
	}
	return rc;
}

/* Starts copying a slot to device memory; the slot is given back when a
 * later record needs its stream, or before any other record. */
/* A GRANULES record of len bytes: its bytes go to device memory on the
 * next of the streams, from the slot it names or (inline) from our
 * staging piece of that stream, which the copy keeps until retired. */
static int on_granules(struct dst *d, const uint8_t *p, uint32_t len)
{
	struct cv_vgpu *v = d->v;
	const struct cv_mig_range *r;
	struct cv_mig_granules g;
	uint8_t *src;
	uint64_t k;
	uint32_t t;
	int64_t i;
	int rc;

	memcpy(&g, p, sizeof(g));
	i = d->have_plan ? cv_mig_plan_index(&d->plan, g.va) : -1;
	r = i >= 0 ? &d->plan.ranges[i] : NULL;
	if (d->inl ? g.slot != CV_MIG_INLINE || g.len > MIG_SLOT_SIZE ||
		     len != sizeof(g) + g.len :
		     g.slot >= d->h->nslots || g.len > d->h->slot_size ||
		     len != sizeof(g))
		return dfail(d, -EINVAL, "bad GRANULES: %u bytes at 0x%llx "
			     "through slot %u in a record of %u bytes", g.len,
			     (unsigned long long)g.va, g.slot, len);
	if (!g.len || !r || !cv_range_in(g.va, g.len, r->va, r->size))
		return dfail(d, -EINVAL, "bad GRANULES: %u bytes at 0x%llx "
			     "through slot %u", g.len,
			     (unsigned long long)g.va, g.slot);
	/* Those granules change: digest them again when asked. */
	k = d->first[i] + (g.va - r->va) / d->h->granule;
	memset(d->dg_ok + k, 0, (g.va - r->va + g.len + d->h->granule - 1) /
					d->h->granule -
				(g.va - r->va) / d->h->granule);
	t = d->turn++ % d->nstreams;
	rc = retire(d, t);
	if (rc)
		return rc;
	src = d->inl ? d->stage + (uint64_t)t * MIG_SLOT_SIZE :
		       d->slots + (uint64_t)g.slot * d->h->slot_size;
	if (d->inl)
		memcpy(src, p + sizeof(g), g.len);
	rc = v->ops->memcpy(v->b, CV_COPY_HTOD, g.va, (uint64_t)src, g.len,
			    d->stream[t]);
	if (rc)
		return dfail(d, -EIO, "copying to device memory at 0x%llx "
			     "failed: CUresult %d", (unsigned long long)g.va,
			     rc);
	d->pend[t] = g.slot;
	if (v->ops->copy_mark)
		d->mark[t] = v->ops->copy_mark(v->b);
	return 0;
}

static int on_state(struct dst *d, const uint8_t *p, uint32_t len)
{
	struct cv_mig_state h;
	uint64_t n = len - sizeof(h), bytes;
	int rc;

	memcpy(&h, p, sizeof(h));
	if (h.total > MIG_STATE_MAX || h.offset != d->state_got ||
	    (d->state_got && h.total != d->state_total) ||
	    n > h.total - h.offset)
		return dfail(d, -EINVAL, "bad STATE record");
	if (d->state_fd < 0) {
		d->state_fd = memfd_create("cuvisor-mig-state", MFD_CLOEXEC);
		if (d->state_fd < 0)
			return dfail(d, -errno, "memfd_create: %s",
				     strerror(errno));
		d->state_total = h.total;
	}
	if (n && pwrite(d->state_fd, p + sizeof(h), n, (off_t)h.offset) !=
			 (ssize_t)n)
		return dfail(d, -EIO, "cannot keep the state");
	d->state_got += n;
	if (d->state_got < d->state_total)
		return 0;
	/* All of it: rebuild the objects over the memory in place. */
	lseek(d->state_fd, 0, SEEK_SET);
	rc = cv_vgpu_restore(d->v, d->state_fd, CV_VGPU_MEM_IN_PLACE, &bytes,
			     d->err, d->errlen);
	if (rc)
		return rc;
	rc = cv_mig_send(d->io, CV_MIG_READY, NULL, 0, NULL, 0, NULL, 0);
	return rc ? dfail(d, rc, "%s", strerror(-rc)) : 0;
}

int cv_migrate_dest(struct cv_vgpu *v, struct cv_mig_io *io,
		    const struct cv_mig_hello *h, int slot_fd, int *link_fd,
		    uint64_t *commit_ns, char *err, size_t errlen)
{
	struct dst d = { .v = v, .io = io, .h = h, .state_fd = -1,
			 .err = err, .errlen = errlen,
			 .nstreams = MIG_DST_STREAMS };
	struct cv_mig_welcome w = { (uint32_t)getpid(), 0 };
	struct cv_mig_abort ab;
	struct stat st;
	uint32_t type, len;
	int fds[1], nfds, rc = 0;
	uint8_t *buf = NULL;
	uint64_t t0 = 0, t1;
	size_t fixed;
	uint32_t t;

	for (t = 0; t < MIG_DST_STREAMS_MAX; t++)
		d.pend[t] = -1;
	if (v->ops == &cv_backend_remote && !(h->flags & CV_MIG_HELLO_INLINE) &&
	    h->nslots > MIG_DST_STREAMS_REMOTE)
		d.nstreams = MIG_DST_STREAMS_REMOTE;
	err[0] = 0;
	*link_fd = -1;
	d.slots_size = (uint64_t)h->nslots * h->slot_size;
	d.share = h->flags & CV_MIG_HELLO_SHARE;
	d.inl = h->flags & CV_MIG_HELLO_INLINE;
	if (h->backend != v->hdr->dev.backend ||
	    h->cc_major != v->hdr->dev.cc_major ||
	    h->cc_minor != v->hdr->dev.cc_minor)
		rc = dfail(&d, -EINVAL, "the source runs on another kind of "
			   "device (backend %u, compute capability %u.%u)",
			   h->backend, h->cc_major, h->cc_minor);
	if (!rc && d.share && (slot_fd >= 0 || !v->ops->mem_import))
		rc = dfail(&d, -EINVAL, "memory cannot be shared here");
	else if (d.share)
		goto ready;
	if (!rc && d.inl) {
		uint64_t size = 0;
		int afd;

		if (slot_fd >= 0 ||
		    cv_xfer_area(v, &afd, &d.stage, &size) ||
		    size < (uint64_t)MIG_DST_STREAMS * MIG_SLOT_SIZE)
			rc = dfail(&d, -ENOMEM, "no staging for inline bytes");
		goto streams;
	}
	if (!rc && (fstat(slot_fd, &st) || (uint64_t)st.st_size != d.slots_size ||
		    !(fcntl(slot_fd, F_GET_SEALS) & F_SEAL_SHRINK)))
		rc = dfail(&d, -EINVAL, "the slot area is not a sealed memfd "
			   "of %llu bytes", (unsigned long long)d.slots_size);
	if (!rc) {
		/* Writable: the driver registers only such mappings. */
		d.slots = mmap(NULL, d.slots_size, PROT_READ | PROT_WRITE,
			       MAP_SHARED, slot_fd, 0);
		if (d.slots == MAP_FAILED) {
			d.slots = NULL;
			rc = dfail(&d, -errno, "mmap: %s", strerror(errno));
		}
	}
	t0 = cv_now_ns();
	if (!rc && v->ops->host_register(v->b, d.slots, d.slots_size))
		rc = dfail(&d, -ENOMEM, "cannot register the slot area");
	else if (!rc)
		d.registered = true;
streams:
	for (t = 0; t < d.nstreams && !rc; t++)
		if (v->ops->stream_create(v->b, CU_STREAM_NON_BLOCKING, 0,
					  &d.stream[t]))
			rc = dfail(&d, -EIO, "cannot create a stream");
ready:
	if (!rc && !(buf = malloc(CV_MIG_MAX_PAYLOAD)))
		rc = dfail(&d, -ENOMEM, "out of memory");
	t1 = cv_now_ns();
	/* The restore's globals go through the lanes: not in the pause. */
	if (!rc && cv_xfer_prepare(v))
		rc = dfail(&d, -ENOMEM, "cannot set up the transfer lanes");
	if (!rc) {
		cv_info("tenant %llu: migrating in: slot area registered in "
			"%.1f ms, lanes in %.1f ms",
			(unsigned long long)v->hdr->tenant_id,
			t0 ? (t1 - t0) / 1e6 : 0.0, (cv_now_ns() - t1) / 1e6);
		rc = cv_mig_send(io, CV_MIG_WELCOME, &w, sizeof(w), NULL, 0,
				 NULL, 0);
		if (rc)
			dfail(&d, rc, "%s", strerror(-rc));
	}
	while (!rc) {
		nfds = 1;
		rc = cv_mig_recv(io, &type, buf, CV_MIG_MAX_PAYLOAD, &len, fds,
				 &nfds, MIG_WAIT_MS);
		if (rc) {
			dfail(&d, rc, "the stream from the source failed: %s",
			      stream_why(rc));
			break;
		}
		if (nfds && type != CV_MIG_COMMIT && type != CV_MIG_SHARE) {
			close(fds[0]);
			rc = dfail(&d, -EPROTO, "an fd on a record of type %u",
				   type);
			break;
		}
		fixed = cv_mig_fixed_len(type);
		if (fixed != SIZE_MAX && type != CV_MIG_GRANULES &&
		    type != CV_MIG_STATE && len != fixed) {
			rc = dfail(&d, -EPROTO, "record of type %u has %u bytes",
				   type, len);
			break;
		}
		/* GRANULES: on_granules checks the exact length */
		if ((type == CV_MIG_GRANULES || type == CV_MIG_STATE) &&
		    len < fixed) {
			rc = dfail(&d, -EPROTO, "record of type %u has %u bytes",
				   type, len);
			break;
		}
		/* Only copies overlap the next record. */
		if (type != CV_MIG_GRANULES && (rc = retire_all(&d))) {
			if (nfds)
				close(fds[0]);
			break;
		}
		switch (type) {
		case CV_MIG_PLAN:
			rc = on_plan(&d, buf, len);
			break;
		case CV_MIG_DIGEST_REQ:
			rc = on_digest_req(&d, buf);
			break;
		case CV_MIG_GRANULES:
			rc = on_granules(&d, buf, len);
			break;
		case CV_MIG_SHARE:
			rc = on_share(&d, buf, nfds ? fds[0] : -1);
			if (nfds)
				close(fds[0]);
			break;
		case CV_MIG_ROUND_END:
			rc = cv_mig_send(io, CV_MIG_ROUND_DONE, buf, len, NULL,
					 0, NULL, 0);
			break;
		case CV_MIG_STATE:
			rc = on_state(&d, buf, len);
			break;
		case CV_MIG_COMMIT:
			if (nfds != 1 || d.state_total == 0 ||
			    d.state_got != d.state_total) {
				if (nfds)
					close(fds[0]);
				rc = dfail(&d, -EPROTO, "COMMIT before the "
					   "state, or without the link");
				break;
			}
			*commit_ns = cv_now_ns();
			*link_fd = fds[0];
			/* Unregistering the slots takes milliseconds: after
			 * the tenant runs (cv_migrate_running). */
			if (!d.share && !d.inl) {
				g_later = (struct later){ .slots = d.slots,
							  .size = d.slots_size,
							  .fd = slot_fd,
							  .set = true };
				memcpy(g_later.stream, d.stream,
				       sizeof(d.stream));
			}
			memset(d.stream, 0, sizeof(d.stream));
			d.registered = false;
			d.slots = NULL;
			slot_fd = -1;
			goto out;
		case CV_MIG_ABORT:
			cv_mig_abort_decode(buf, len, &ab);
			rc = dfail(&d, ab.code, "the source gave up: %s",
				   ab.msg);
			goto out;
		default:
			rc = dfail(&d, -EPROTO, "unexpected record of type %u",
				   type);
		}
	}
	if (rc)
		dst_abort(&d, rc);
out:
	free(buf);
	drop_offers(&d);
	free(d.offers);
	free(d.dg);
	free(d.dg_ok);
	free(d.first);
	cv_mig_plan_free(&d.plan);
	if (d.state_fd >= 0)
		close(d.state_fd);
	if (rc)
		retire_all(&d); /* no copy may outlive the slots */
	for (t = 0; t < d.nstreams; t++)
		if (d.stream[t])
			v->ops->stream_destroy(v->b, d.stream[t]);
	if (d.registered)
		v->ops->host_unregister(v->b, d.slots);
	if (d.slots)
		munmap(d.slots, d.slots_size);
	if (slot_fd >= 0)
		close(slot_fd);
	return rc;
}

void cv_migrate_running(struct cv_vgpu *v, struct cv_mig_io *io, uint64_t ns)
{
	struct cv_mig_running r = { ns };

	cv_mig_send(io, CV_MIG_RUNNING, &r, sizeof(r), NULL, 0, NULL, 0);
	if (!g_later.set)
		return;
	for (uint32_t t = 0; t < MIG_DST_STREAMS_MAX; t++)
		if (g_later.stream[t])
			v->ops->stream_destroy(v->b, g_later.stream[t]);
	v->ops->host_unregister(v->b, g_later.slots);
	munmap(g_later.slots, g_later.size);
	close(g_later.fd);
	g_later.set = false;
}

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
	bool registered;
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
		return "a record from the destination failed its checksum";
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
		if (sl.slot >= MIG_SLOTS || (s->slot_free >> sl.slot) & 1) {
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

/* The layout now, read under mem_lock. */
static int snapshot(struct src *s, uint32_t round)
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
	pthread_rwlock_rdlock(&v->mem_lock);
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
	pthread_rwlock_unlock(&v->mem_lock);
	return rc;
}

/* True when [va, va + len) lies in one mapped range (under mem_lock). */
static bool still_mapped(struct cv_vgpu *v, uint64_t va, uint64_t len)
{
	const struct cv_range *r = cv_rangeset_find(&v->dev, va);

	return r && len <= r->size - (va - r->base);
}

/* Digests of every granule of the plan, in order, into s->dg. */
static int digest_all(struct src *s)
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
						    NULL);
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
		if (take_slot(s, &slot))
			break;
		buf = s->slots + (uint64_t)slot * MIG_SLOT_SIZE;
		g = (struct cv_mig_granules){ s->chunks[i].va,
					      s->chunks[i].len, slot };
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
		rc = cv_mig_send(&s->io, CV_MIG_GRANULES, &g, sizeof(g), NULL,
				 0, NULL, 0);
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

/* One round: plan, digests (after round 0), the differing granules. */
static int do_round(struct src *s, uint32_t round, bool stop)
{
	struct round_stat st = { .round = round, .stop = stop };
	uint64_t t0 = cv_now_ns(), tsend, granules, ndg, i;
	struct round_stat *grown;
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
			rc = digest_all(s);
		if (!rc)
			rc = wait_for(s, &s->peer_ready, NULL, 0, MIG_WAIT_MS,
				      "digests");
		st.digests = 2 * ndg;
	} else if (!rc && stop) {
		/* Stopped in round 0 (nothing worth a pre-copy): the
		 * verification needs our digests of the frozen memory. */
		rc = digest_all(s);
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
	if (s->sent >= (64ull << 20))
		s->link_rate = s->sent * 1e9 / (double)(cv_now_ns() - tsend);
	/* What changed since the last round's digests, per second. */
	if (round > 0 && s->nst)
		st.dirty_rate = s->sent * 1e9 / (double)s->st[s->nst - 1].ns;
	grown = realloc(s->st, (s->nst + 1) * sizeof(*s->st));
	if (!grown)
		return set_err(s, -ENOMEM, "out of memory");
	s->st = grown;
	s->st[s->nst++] = st;
	return 0;
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

static int slots_setup(struct src *s)
{
	struct cv_vgpu *v = s->v;
	uint64_t size = (uint64_t)MIG_SLOTS * MIG_SLOT_SIZE;
	uint32_t i;

	s->slot_fd = memfd_create("cuvisor-mig-slots",
				  MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (s->slot_fd < 0 || ftruncate(s->slot_fd, (off_t)size) ||
	    fcntl(s->slot_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW |
						   F_SEAL_SEAL))
		return set_err(s, -errno, "cannot make the slot area: %s",
			       strerror(errno));
	s->slots = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
			s->slot_fd, 0);
	if (s->slots == MAP_FAILED) {
		s->slots = NULL;
		return set_err(s, -errno, "mmap: %s", strerror(errno));
	}
	if (v->ops->host_register(v->b, s->slots, size))
		return set_err(s, -ENOMEM, "cannot register the slot area");
	s->registered = true;
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
	if (s->registered)
		v->ops->host_unregister(v->b, s->slots);
	if (s->slots)
		munmap(s->slots, (uint64_t)MIG_SLOTS * MIG_SLOT_SIZE);
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
	     "\"path\":\"copy\",\"result\":\"%s\",\"error\":",
	     (unsigned long long)s->v->hdr->tenant_id, from_gpu,
	     (int)s->req->gpu, rc ? "failed" : "ok");
	jstr(&j, rc ? r->msg : "");
	jput(&j, ",\"granule\":%u,\"memory_bytes\":%llu,\"max_pause_ms\":%u,"
	     "\"max_rounds\":%u,\"stop_reason\":\"%s\",\"rounds\":[",
	     MIG_GRANULE, (unsigned long long)mem,
	     s->req->max_pause_ms ? s->req->max_pause_ms :
				    CV_MIGRATE_DEFAULT_PAUSE_MS,
	     s->req->max_rounds ? s->req->max_rounds :
				  CV_MIGRATE_DEFAULT_ROUNDS,
	     rc ? "failed" : s->stop_reason ? s->stop_reason : "converged");
	/* Room for the tail whatever happens to the rounds. */
	j.cap = cap > 256 ? cap - 256 : cap;
	for (i = 0; i < s->nst; i++)
		jput(&j, "%s{\"round\":%u,\"phase\":\"%s\",\"granules\":%llu,"
		     "\"bytes\":%llu,\"digests\":%llu,"
		     "\"dirty_bytes_per_s\":%.0f,\"ms\":%.3f}",
		     i ? "," : "", s->st[i].round,
		     s->st[i].stop ? "stop" : "pre-copy",
		     (unsigned long long)s->st[i].granules,
		     (unsigned long long)s->st[i].bytes,
		     (unsigned long long)s->st[i].digests, s->st[i].dirty_rate,
		     s->st[i].ns / 1e6);
	j.cap = cap;
	j.full = false;
	jput(&j, "],\"rounds_listed\":%u,\"pause_ms\":%.3f,\"total_ms\":%.3f,"
	     "\"link_gbps\":%.2f}\n", (unsigned)s->nst, r->pause_ns / 1e6,
	     r->total_ns / 1e6, s->link_rate / 1e9);
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
	bool suspended = false, committed = false, stop = false;
	uint32_t round;
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
	s.max_digests = MIG_MAX_DIGESTS(v->quota);
	if (getrandom(&s.seed, sizeof(s.seed), 0) != sizeof(s.seed))
		s.seed = cv_now_ns();
	s.dg = malloc(s.max_digests * CV_DIGEST_LEN);
	s.peer_dg = malloc(s.max_digests * CV_DIGEST_LEN);
	rc = s.dg && s.peer_dg ? 0 : set_err(&s, -ENOMEM, "out of memory");
	if (!rc && (rc = cv_vgpu_vmm_covered(v, "migrated")))
		set_err(&s, rc, "a VMM allocation has bytes mapped nowhere");
	if (!rc)
		rc = slots_setup(&s);
	/* The state's globals go through the lanes: not in the pause. */
	if (!rc && cv_xfer_prepare(v))
		rc = set_err(&s, -ENOMEM, "cannot set up the transfer lanes");
	if (!rc) {
		memcpy(h.token, v->token, sizeof(h.token));
		h.tenant = v->hdr->tenant_id;
		h.quota = v->quota;
		h.seed = s.seed;
		h.granule = MIG_GRANULE;
		h.nslots = MIG_SLOTS;
		h.slot_size = MIG_SLOT_SIZE;
		h.backend = v->hdr->dev.backend;
		h.cc_major = (uint16_t)v->hdr->dev.cc_major;
		h.cc_minor = (uint16_t)v->hdr->dev.cc_minor;
		fds[1] = s.slot_fd;
		rc = cv_mig_send(&s.io, CV_MIG_HELLO, &h, sizeof(h), NULL, 0,
				 fds, 2);
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
	for (round = 0; !rc; round++) {
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
	if (!rc) {
		tv = cv_now_ns();
		inject(&s, round + 1, true);
		rc = verify(&s, round + 1);
	}
	if (!rc) {
		ts = cv_now_ns();
		rc = send_state(&s, &state);
	}
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
			"running %.2f), total %.1f ms",
			(unsigned long long)v->hdr->tenant_id, s.nst,
			(unsigned long long)bytes, (unsigned long long)state,
			r->pause_ns / 1e6, (tv - tpause) / 1e6, (ts - tv) / 1e6,
			(tr - ts) / 1e6, (tc - tr) / 1e6,
			(cv_now_ns() - tc) / 1e6, r->total_ns / 1e6);
	}
	*outlen = report(&s, r, from_gpu, out, cap, committed ? 0 : rc);
	r->report_len = (uint32_t)*outlen;
	src_free(&s);
	return committed ? 0 : rc;
}

/* ---- destination ----------------------------------------------------- */

/* What the destination frees once the tenant runs. */
struct later {
	cv_bobj stream;
	uint8_t *slots;
	uint64_t size;
	int fd;
	bool set;
};
static struct later g_later;

struct dst {
	struct cv_vgpu *v;
	struct cv_mig_io *io;
	const struct cv_mig_hello *h;
	uint8_t *slots;
	uint64_t slots_size;
	bool registered;
	cv_bobj stream;
	struct cv_mig_plan plan;
	bool have_plan;
	uint8_t *dg;
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
	if (type != CV_MIG_HELLO || len != sizeof(*h) || nfds != 2) {
		rc = -EPROTO;
		snprintf(err, errlen, "the source's first record is not a "
			 "HELLO with two fds");
	} else if ((rc = cv_mig_hello_check(h, why, sizeof(why)))) {
		snprintf(err, errlen, "bad HELLO: %s", why);
	} else if (memcmp(h->token, token, 16) || h->quota != quota ||
		   h->nslots == 0) {
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

/* Finds va in the (sorted) plan: the range, or NULL. */
static const struct cv_mig_range *plan_find(const struct cv_mig_plan *p,
					    uint64_t va)
{
	uint32_t lo = 0, hi = p->nranges, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (p->ranges[mid].va == va)
			return &p->ranges[mid];
		if (p->ranges[mid].va < va)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
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
static int reconcile(struct dst *d, const struct cv_mig_plan *p)
{
	struct cv_vgpu *v = d->v;
	const struct cv_mig_range *pr;
	const struct cv_mig_vmm *pv;
	struct cv_wvmm *h;
	struct cv_wmap *m;
	uint64_t base;
	uint32_t i;
	int rc;

	v->ops->ctx_sync(v->b);
	for (i = v->dev.n; i-- > 0;) {
		pr = plan_find(p, v->dev.r[i].base);
		m = v->dev.r[i].owner;
		pv = m->vmm ? plan_vmm(p, m->vmm) : NULL;
		h = m->vmm ? cv_htab_get(&v->vmms, m->vmm) : NULL;
		if (!pr || !same_range(&v->dev.r[i], pr) ||
		    (m->vmm && (!pv || !h || pv->size != h->size)))
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
		v->ops->mem_release(v->b, h->mem);
		v->used -= h->size;
		free(cv_htab_del(&v->vmms, i));
	}
	for (i = 0; i < p->nvmm; i++) {
		if (cv_htab_get(&v->vmms, p->vmm[i].id))
			continue;
		rc = cv_vgpu_vmm_add(v, p->vmm[i].id, p->vmm[i].size,
				     p->vmm[i].released, d->err, d->errlen);
		if (rc)
			return dfail(d, rc, "out of memory");
	}
	for (i = 0; i < p->nranges; i++) {
		pr = &p->ranges[i];
		if (cv_rangeset_find(&v->dev, pr->va))
			continue; /* kept above, so the same */
		rc = cv_vgpu_map_add(v, pr->va, pr->size, pr->vmm, pr->offset,
				     d->err, d->errlen);
		if (rc)
			return dfail(d, rc, "out of memory");
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

static int on_plan(struct dst *d, const uint8_t *p, uint32_t len)
{
	struct cv_mig_plan plan;
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
	rc = reconcile(d, &plan);
	if (rc) {
		cv_mig_plan_free(&plan);
		return rc;
	}
	cv_mig_plan_free(&d->plan);
	d->plan = plan;
	d->have_plan = true;
	return 0;
}

static int on_digest_req(struct dst *d, const uint8_t *p)
{
	struct cv_vgpu *v = d->v;
	struct cv_mig_round r;
	const struct cv_mig_range *pr;
	uint64_t n = cv_mig_plan_granules(&d->plan, d->h->granule), idx = 0;
	uint8_t *dg;
	uint32_t i;
	int rc = 0;

	memcpy(&r, p, sizeof(r));
	if (!d->have_plan)
		return dfail(d, -EPROTO, "DIGEST_REQ before any PLAN");
	dg = realloc(d->dg, n * CV_DIGEST_LEN + 1);
	if (!dg)
		return dfail(d, -ENOMEM, "out of memory");
	d->dg = dg;
	for (i = 0; i < d->plan.nranges && !rc; i++) {
		pr = &d->plan.ranges[i];
		rc = v->ops->digest(v->b, pr->va, pr->size, d->h->granule,
				    d->h->seed, dg + idx * CV_DIGEST_LEN, NULL);
		idx += pr->size / d->h->granule;
	}
	if (rc)
		return dfail(d, -EIO, "digesting device memory failed: "
			     "CUresult %d", rc);
	r.n = (uint32_t)n;
	r.bytes = 0;
	rc = cv_mig_send(d->io, CV_MIG_DIGESTS, &r, sizeof(r), dg,
			 n * CV_DIGEST_LEN, NULL, 0);
	return rc ? dfail(d, rc, "%s", strerror(-rc)) : 0;
}

static int on_granules(struct dst *d, const uint8_t *p)
{
	struct cv_vgpu *v = d->v;
	struct cv_mig_granules g;
	struct cv_mig_slot sl;
	int rc;

	memcpy(&g, p, sizeof(g));
	if (g.slot >= d->h->nslots || !g.len || g.len > d->h->slot_size ||
	    !d->have_plan || !cv_mig_plan_covers(&d->plan, g.va, g.len))
		return dfail(d, -EINVAL, "bad GRANULES: %u bytes at 0x%llx "
			     "through slot %u", g.len,
			     (unsigned long long)g.va, g.slot);
	rc = v->ops->memcpy(v->b, CV_COPY_HTOD, g.va,
			    (uint64_t)(d->slots + g.slot * d->h->slot_size),
			    g.len, d->stream);
	if (!rc)
		rc = v->ops->stream_sync(v->b, d->stream);
	if (rc)
		return dfail(d, -EIO, "copying to device memory at 0x%llx "
			     "failed: CUresult %d", (unsigned long long)g.va,
			     rc);
	sl = (struct cv_mig_slot){ g.slot, 0 };
	rc = cv_mig_send(d->io, CV_MIG_SLOT_FREE, &sl, sizeof(sl), NULL, 0,
			 NULL, 0);
	return rc ? dfail(d, rc, "%s", strerror(-rc)) : 0;
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
			 .err = err, .errlen = errlen };
	struct cv_mig_welcome w = { (uint32_t)getpid(), 0 };
	struct cv_mig_abort ab;
	struct stat st;
	uint32_t type, len;
	int fds[1], nfds, rc = 0;
	uint8_t *buf = NULL;
	size_t fixed;

	err[0] = 0;
	*link_fd = -1;
	d.slots_size = (uint64_t)h->nslots * h->slot_size;
	if (h->backend != v->hdr->dev.backend ||
	    h->cc_major != v->hdr->dev.cc_major ||
	    h->cc_minor != v->hdr->dev.cc_minor)
		rc = dfail(&d, -EINVAL, "the source runs on another kind of "
			   "device (backend %u, compute capability %u.%u)",
			   h->backend, h->cc_major, h->cc_minor);
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
	if (!rc && v->ops->host_register(v->b, d.slots, d.slots_size))
		rc = dfail(&d, -ENOMEM, "cannot register the slot area");
	else if (!rc)
		d.registered = true;
	if (!rc && v->ops->stream_create(v->b, CU_STREAM_NON_BLOCKING, 0,
					 &d.stream))
		rc = dfail(&d, -EIO, "cannot create a stream");
	if (!rc && !(buf = malloc(CV_MIG_MAX_PAYLOAD)))
		rc = dfail(&d, -ENOMEM, "out of memory");
	/* The restore's globals go through the lanes: not in the pause. */
	if (!rc && cv_xfer_prepare(v))
		rc = dfail(&d, -ENOMEM, "cannot set up the transfer lanes");
	if (!rc) {
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
		if (nfds && type != CV_MIG_COMMIT) {
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
		if ((type == CV_MIG_GRANULES && len != fixed) ||
		    (type == CV_MIG_STATE && len < fixed)) {
			rc = dfail(&d, -EPROTO, "record of type %u has %u bytes",
				   type, len);
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
			rc = on_granules(&d, buf);
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
			g_later = (struct later){ d.stream, d.slots,
						  d.slots_size, slot_fd, true };
			d.stream = NULL;
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
	free(d.dg);
	cv_mig_plan_free(&d.plan);
	if (d.state_fd >= 0)
		close(d.state_fd);
	if (d.stream)
		v->ops->stream_destroy(v->b, d.stream);
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
	v->ops->stream_destroy(v->b, g_later.stream);
	v->ops->host_unregister(v->b, g_later.slots);
	munmap(g_later.slots, g_later.size);
	close(g_later.fd);
	g_later.set = false;
}

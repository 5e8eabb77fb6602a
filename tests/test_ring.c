/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the command ring (core/ring.c). Runs in CI as is, under
 * ASan+UBSan (build-asan/) and under TSan (build-tsan/).
 *
 * The ring memory is malloc'ed at exactly its size, and pop's output
 * buffer at exactly bufsize, so that any read or write outside them is an
 * ASan error: the hostile-producer test relies on that to show that no
 * index or length from shared memory makes the consumer leave the ring.
 *
 * Prints one "ok"/"not ok" line per test and exits 0 only if all passed.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/proto.h"
#include "../core/ring.h"
#include "../core/util.h"

#define RING_MIN (512u << 10) /* smallest size cv_ring_init accepts */
#define HDR ((uint32_t)sizeof(struct cv_cmd_hdr))

static int nfail_total;
static int nfail; /* failures in the current test */

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			nfail++;                                           \
			if (nfail <= 20) {                                 \
				printf("#   %s:%d: check failed: %s: ",    \
				       __FILE__, __LINE__, #cond);         \
				printf(__VA_ARGS__);                       \
				printf("\n");                              \
			}                                                  \
		}                                                          \
	} while (0)

/* A ring as two processes see it: shared memory, a producer and a
 * consumer view. */
struct tring {
	struct cv_ring_ctl *ctl;
	uint8_t *buf;
	uint64_t size;
	struct cv_ring prod;
	struct cv_ring cons;
};

static void tring_init(struct tring *t, uint64_t size)
{
	int e1, e2;

	t->size = size;
	t->ctl = aligned_alloc(64, sizeof(*t->ctl));
	t->buf = malloc(size);
	if (!t->ctl || !t->buf) {
		printf("Bail out! out of memory\n");
		exit(1);
	}
	memset(t->ctl, 0, sizeof(*t->ctl));
	memset(t->buf, 0xee, size);
	e1 = cv_ring_init(&t->prod, t->ctl, t->buf, size);
	e2 = cv_ring_init(&t->cons, t->ctl, t->buf, size);
	if (e1 || e2) {
		printf("Bail out! cv_ring_init(%" PRIu64 ") = %d, %d\n", size,
		       e1, e2);
		exit(1);
	}
}

static void tring_exit(struct tring *t)
{
	free(t->ctl);
	free(t->buf);
}

static uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static uint8_t pay_byte(uint64_t seed, uint32_t i)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + i * 0xbf58476d1ce4e5b9ull;

	return (uint8_t)(x >> 56 ^ x >> 29 ^ x);
}

static uint64_t rec_bytes(uint32_t len)
{
	return (HDR + (uint64_t)len + CV_CMD_ALIGN - 1) & ~(uint64_t)(CV_CMD_ALIGN - 1);
}

/* Reserves, fills with pay_byte(seed, i) and commits; false on failure. */
static bool push(struct tring *t, uint16_t op, uint16_t flags, uint32_t len,
		 uint32_t reply, uint64_t seed)
{
	int err = 0;
	uint8_t *p = cv_ring_reserve(&t->prod, op, flags, len, reply, NULL,
				     NULL, &err);

	if (!p)
		return false;
	for (uint32_t i = 0; i < len; i++)
		p[i] = pay_byte(seed, i);
	cv_ring_commit(&t->prod);
	return true;
}

/* Pops one record and checks every field; false on any mismatch. */
static bool pop_expect(struct tring *t, uint16_t op, uint16_t flags,
		       uint32_t len, uint32_t reply, uint64_t seed)
{
	struct cv_cmd_hdr h;
	uint8_t *buf = malloc(CV_CMD_MAX_PAYLOAD);
	int n;
	bool ok = true;

	n = cv_ring_pop(&t->cons, &h, buf, CV_CMD_MAX_PAYLOAD);
	if (n != 1) {
		CHECK(n == 1, "pop returned %d", n);
		free(buf);
		return false;
	}
	ok = h.op == op && h.flags == flags && h.len == len && h.reply == reply;
	CHECK(ok, "hdr op %u/%u flags %u/%u len %u/%u reply %u/%u", h.op, op,
	      h.flags, flags, h.len, len, h.reply, reply);
	for (uint32_t i = 0; ok && i < len; i++)
		if (buf[i] != pay_byte(seed, i)) {
			CHECK(buf[i] == pay_byte(seed, i),
			      "payload byte %u of %u", i, len);
			ok = false;
		}
	free(buf);
	return ok;
}

static int pop_raw(struct tring *t, struct cv_cmd_hdr *h)
{
	uint8_t *buf = malloc(CV_CMD_MAX_PAYLOAD);
	int n = cv_ring_pop(&t->cons, h, buf, CV_CMD_MAX_PAYLOAD);

	free(buf);
	return n;
}

/* Advances both sides so that the next record starts at ring offset off
 * (a multiple of 16), using NOP records that are popped at once. */
static void move_to(struct tring *t, uint64_t off)
{
	struct cv_cmd_hdr h;

	while ((t->prod.tail & (t->size - 1)) != off) {
		uint64_t cur = t->prod.tail & (t->size - 1);
		uint64_t dist = cur < off ? off - cur : t->size - cur + off;
		uint64_t step = CV_MIN(dist, (uint64_t)CV_CMD_MAX_PAYLOAD);

		/* A record of exactly `step` bytes (>= 16) ends where we
		 * want; never let one wrap. */
		if (step > t->size - cur)
			step = t->size - cur;
		if (!push(t, CV_OP_NOP, 0, (uint32_t)(step - HDR), 0, 1) ||
		    pop_raw(t, &h) != 1) {
			CHECK(0, "move_to %" PRIu64 " failed", off);
			return;
		}
	}
}

/* ------------------------------------------------------------------ */

static void test_init(void)
{
	struct cv_ring_ctl *ctl = aligned_alloc(64, sizeof(*ctl));
	uint8_t *buf = malloc(2 * RING_MIN);
	struct cv_ring r;

	memset(ctl, 0, sizeof(*ctl));
	CHECK(cv_ring_init(&r, ctl, buf, RING_MIN + 4096) == -EINVAL,
	      "size not a power of two is refused");
	CHECK(cv_ring_init(&r, ctl, buf, RING_MIN / 2) == -EINVAL,
	      "a ring that cannot hold 4 max records is refused");
	CHECK(cv_ring_init(&r, ctl, buf, 0) == -EINVAL, "size 0 is refused");
	CHECK(cv_ring_init(&r, ctl, buf, RING_MIN) == 0, "512 KiB accepted");
	CHECK(cv_ring_init(&r, ctl, buf, 2 * RING_MIN) == 0, "1 MiB accepted");
	/* Attaching to a ring in use resumes from the shared indices. */
	ctl->tail = 4096 + 5 * (uint64_t)RING_MIN;
	ctl->head = 2048 + 5 * (uint64_t)RING_MIN;
	CHECK(cv_ring_init(&r, ctl, buf, RING_MIN) == 0, "re-init");
	CHECK(r.tail == ctl->tail && r.head == ctl->head &&
	      r.head_cache == ctl->head, "indices taken from ctl: %" PRIu64
	      " %" PRIu64, r.tail, r.head);
	free(buf);
	free(ctl);
}

static void test_spsc(void)
{
	struct tring t;
	struct cv_cmd_hdr h;
	uint64_t s = 12345;

	tring_init(&t, RING_MIN);
	CHECK(pop_raw(&t, &h) == 0, "empty ring pops nothing");
	CHECK(!cv_ring_pending(&t.cons), "empty ring has nothing pending");
	/* Lock-step: 3000 records of assorted sizes (several laps). */
	for (uint32_t i = 0; i < 3000 && !nfail; i++) {
		uint32_t len = (uint32_t)(rnd(&s) % 3000);
		uint16_t op = (uint16_t)(1 + i % (CV_OP_COUNT - 1));

		CHECK(push(&t, op, (uint16_t)(i & 1), len, i, i), "push %u", i);
		CHECK(cv_ring_pending(&t.cons), "pending after push %u", i);
		pop_expect(&t, op, (uint16_t)(i & 1), len, i, i);
	}
	/* Batches: fill up to ~half, then drain, in order. */
	for (uint32_t b = 0; b < 20 && !nfail; b++) {
		uint32_t n = 1 + (uint32_t)(rnd(&s) % 60);

		for (uint32_t i = 0; i < n; i++)
			CHECK(push(&t, CV_OP_LAUNCH, 0, i * 61, CV_NO_REPLY,
				   b * 1000 + i), "batch push");
		for (uint32_t i = 0; i < n; i++)
			pop_expect(&t, CV_OP_LAUNCH, 0, i * 61, CV_NO_REPLY,
				   b * 1000 + i);
	}
	CHECK(pop_raw(&t, &h) == 0, "drained ring pops nothing");
	CHECK(t.ctl->head == t.ctl->tail, "head %" PRIu64 " == tail %" PRIu64,
	      t.ctl->head, t.ctl->tail);
	CHECK(t.ctl->tail > 4 * t.size, "several laps were made");
	tring_exit(&t);
}

/* The record at `off` must be a PAD covering exactly the rest. */
static void check_pad_at(struct tring *t, uint64_t off)
{
	struct cv_cmd_hdr h;

	memcpy(&h, t->buf + off, sizeof(h));
	CHECK(h.op == CV_OP_PAD && h.len == t->size - off - HDR &&
	      h.reply == CV_NO_REPLY, "PAD at %" PRIu64 ": op %u len %u",
	      off, h.op, h.len);
}

static void test_wrap(void)
{
	struct tring t;
	uint64_t head0, size;

	tring_init(&t, RING_MIN);
	size = t.size;
	/* Room of 16 bytes left: a PAD with an empty payload. */
	move_to(&t, size - 16);
	head0 = t.cons.head;
	CHECK(push(&t, CV_OP_MEMCPY, 0, 40, 7, 77), "push across the end");
	check_pad_at(&t, size - 16);
	CHECK((t.prod.tail & (size - 1)) == rec_bytes(40),
	      "record placed at offset 0");
	pop_expect(&t, CV_OP_MEMCPY, 0, 40, 7, 77);
	CHECK(t.cons.head == head0 + 16 + rec_bytes(40),
	      "consumer skipped the PAD");

	/* Exactly enough room (16 + 1008 = 1024 bytes): no PAD. */
	move_to(&t, size - rec_bytes(1008));
	CHECK(push(&t, CV_OP_LAUNCH, 0, 1008, 1, 5), "exact fit");
	CHECK((t.prod.tail & (size - 1)) == 0, "exact fit ends at the end");
	pop_expect(&t, CV_OP_LAUNCH, 0, 1008, 1, 5);

	/* One byte more needs 16 more bytes: PAD, then the record at 0. */
	move_to(&t, size - rec_bytes(1008));
	CHECK(push(&t, CV_OP_LAUNCH, 0, 1009, 2, 6), "one byte over");
	check_pad_at(&t, size - rec_bytes(1008));
	CHECK((t.prod.tail & (size - 1)) == rec_bytes(1009),
	      "record placed at offset 0");
	pop_expect(&t, CV_OP_LAUNCH, 0, 1009, 2, 6);

	/* A max-size record across the end, with the consumer behind. */
	move_to(&t, size - 4096);
	CHECK(push(&t, CV_OP_NOP, 0, 100, 3, 8), "small before the end");
	CHECK(push(&t, CV_OP_LAUNCH, 0, CV_CMD_MAX_PAYLOAD, 4, 9),
	      "max record wraps");
	check_pad_at(&t, size - 4096 + rec_bytes(100));
	pop_expect(&t, CV_OP_NOP, 0, 100, 3, 8);
	pop_expect(&t, CV_OP_LAUNCH, 0, CV_CMD_MAX_PAYLOAD, 4, 9);
	CHECK(t.ctl->head == t.ctl->tail, "drained after wraps");

	/* Many laps with random sizes and a lagging consumer. */
	{
		uint64_t s = 99, pushed = 0, popped = 0;

		for (uint32_t i = 0; i < 20000 && !nfail; i++) {
			uint32_t len = (uint32_t)(rnd(&s) % (CV_CMD_MAX_PAYLOAD + 1));

			if (rnd(&s) & 3)
				len %= 512;
			CHECK(push(&t, (uint16_t)(1 + len % 30), 0, len,
				   (uint32_t)pushed, pushed), "lap push");
			pushed++;
			/* Keep at most ~3 records in flight (each can be
			 * 64 KiB; the ring holds 4 + PAD). */
			while (pushed - popped > 3 || (rnd(&s) & 1)) {
				if (popped == pushed)
					break;
				/* Lengths are recomputed from the reply
				 * field, which carries the sequence number. */
				struct cv_cmd_hdr h;
				uint8_t *b = malloc(CV_CMD_MAX_PAYLOAD);
				int n = cv_ring_pop(&t.cons, &h, b,
						    CV_CMD_MAX_PAYLOAD);

				CHECK(n == 1 && h.reply == popped &&
				      h.op == 1 + h.len % 30, "lap pop %d", n);
				for (uint32_t k = 0; n == 1 && k < h.len; k++)
					if (b[k] != pay_byte(popped, k)) {
						CHECK(0, "lap payload %" PRIu64,
						      popped);
						break;
					}
				free(b);
				popped++;
			}
		}
	}
	tring_exit(&t);
}

static void test_max_payload(void)
{
	struct tring t;
	struct cv_cmd_hdr h;
	uint64_t tail0;
	uint8_t *small;
	int err = 0;

	tring_init(&t, RING_MIN);
	CHECK(push(&t, CV_OP_LAUNCH, 3, CV_CMD_MAX_PAYLOAD, 9, 4242),
	      "max payload is accepted");
	pop_expect(&t, CV_OP_LAUNCH, 3, CV_CMD_MAX_PAYLOAD, 9, 4242);

	tail0 = t.prod.tail;
	CHECK(!cv_ring_reserve(&t.prod, CV_OP_LAUNCH, 0, CV_CMD_MAX_PAYLOAD + 1,
			       CV_NO_REPLY, NULL, NULL, &err) && err == -EINVAL,
	      "max + 1 refused with -EINVAL (err %d)", err);
	err = 0;
	CHECK(!cv_ring_reserve(&t.prod, CV_OP_LAUNCH, 0, UINT32_MAX,
			       CV_NO_REPLY, NULL, NULL, &err) && err == -EINVAL,
	      "UINT32_MAX refused with -EINVAL (err %d)", err);
	CHECK(t.prod.tail == tail0 && t.ctl->tail == tail0,
	      "a refused reserve changes nothing");

	/* A payload longer than the consumer's buffer is a protocol error,
	 * and nothing is written past the buffer (ASan watches `small`). */
	CHECK(push(&t, CV_OP_NOP, 0, 100, 0, 1), "push 100");
	small = malloc(99);
	CHECK(cv_ring_pop(&t.cons, &h, small, 99) == -EPROTO,
	      "payload larger than bufsize is -EPROTO");
	free(small);
	/* Zero-length payload, zero-size buffer. */
	tring_exit(&t);
	tring_init(&t, RING_MIN);
	CHECK(push(&t, CV_OP_CTX_SYNC, 0, 0, 5, 0), "empty payload");
	CHECK(cv_ring_pop(&t.cons, &h, &(uint8_t){ 0 }, 0) == 1 && h.len == 0 &&
	      h.op == CV_OP_CTX_SYNC && h.reply == 5, "empty payload pops");
	tring_exit(&t);
}

/* ------------------------------------------------------------------ */
/* A full ring: producers wait, call check, give up or proceed. */

struct check_arg {
	int calls;
	int fail_after; /* return -ETIMEDOUT once calls reaches this */
};

static int check_cb(void *p)
{
	struct check_arg *a = p;

	return ++a->calls >= a->fail_after ? -ETIMEDOUT : 0;
}

struct drain_arg {
	struct tring *t;
	unsigned delay_ms;
	int popped;
};

static void *drain_later(void *p)
{
	struct drain_arg *a = p;
	struct cv_cmd_hdr h;
	uint8_t *b = malloc(CV_CMD_MAX_PAYLOAD);
	struct timespec ts = { 0, (long)a->delay_ms * 1000000L };

	nanosleep(&ts, NULL);
	while (cv_ring_pop(&a->t->cons, &h, b, CV_CMD_MAX_PAYLOAD) == 1)
		a->popped++;
	free(b);
	return NULL;
}

static void test_full(void)
{
	struct tring t;
	struct check_arg ca = { 0, 1 };
	struct drain_arg da;
	pthread_t th;
	uint64_t t0, dt, tail0;
	int n = 0, err = 0;
	void *p;

	tring_init(&t, RING_MIN);
	/* 32 records of 16 KiB fill 512 KiB exactly. */
	while (n < 100 && push(&t, CV_OP_NOP, 0, 16384 - HDR, 0, (uint64_t)n))
		if (++n == 32)
			break;
	CHECK(n == 32, "32 records fill the ring (%d)", n);
	tail0 = t.prod.tail;
	t0 = cv_now_ns();
	p = cv_ring_reserve(&t.prod, CV_OP_NOP, 0, 16, 0, check_cb, &ca, &err);
	dt = cv_now_ns() - t0;
	CHECK(!p && err == -ETIMEDOUT, "full ring: check's error is returned"
	      " (%d)", err);
	CHECK(ca.calls == 1, "check called once (%d)", ca.calls);
	CHECK(dt < 2000000000ull, "gave up promptly (%" PRIu64 " ns)", dt);
	CHECK(t.prod.tail == tail0 && t.ctl->tail == tail0,
	      "failed reserve publishes nothing");

	/* A consumer that frees the ring 100 ms later releases the
	 * producer, which sleeps meanwhile (check is called per slice). */
	da = (struct drain_arg){ &t, 100, 0 };
	ca = (struct check_arg){ 0, 1000 };
	if (pthread_create(&th, NULL, drain_later, &da)) {
		CHECK(0, "pthread_create");
		tring_exit(&t);
		return;
	}
	t0 = cv_now_ns();
	p = cv_ring_reserve(&t.prod, CV_OP_NOP, 0, 16, 0, check_cb, &ca, &err);
	dt = cv_now_ns() - t0;
	CHECK(p != NULL, "reserve proceeds once the consumer drained");
	if (p) {
		memset(p, 0x5a, 16);
		cv_ring_commit(&t.prod);
	}
	pthread_join(th, NULL);
	CHECK(dt >= 50000000ull, "producer waited for the consumer (%" PRIu64
	      " ns)", dt);
	CHECK(da.popped >= 1, "consumer popped (%d)", da.popped);
	CHECK(ca.calls >= 1, "check called while sleeping (%d)", ca.calls);
	tring_exit(&t);
}

/* ------------------------------------------------------------------ */
/* Many producers (serialised by a mutex, as in the guest), one consumer
 * thread verifying per-producer order and checksums. */

#define MP_PRODUCERS 4
#define MP_RECORDS 20000

struct mp_rec {
	uint32_t producer;
	uint32_t seq;
	uint64_t sum; /* FNV-1a of the bytes after this header */
};

struct mp {
	struct tring t;
	pthread_mutex_t lock;
	int failures; /* written by the consumer, read after join */
	uint64_t received;
	uint64_t wakeups;
};

struct mp_prod_arg {
	struct mp *m;
	uint32_t id;
};

static uint64_t fnv(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

static void *mp_producer(void *p)
{
	struct mp_prod_arg *a = p;
	struct mp *m = a->m;
	uint64_t s = 0x1234567ull * (a->id + 1);

	for (uint32_t seq = 0; seq < MP_RECORDS; seq++) {
		uint32_t len = sizeof(struct mp_rec) + (uint32_t)(rnd(&s) % 2048);
		struct mp_rec rec = { a->id, seq, 0 };
		uint8_t *w;
		int err = 0;

		if (seq % 997 == 0) /* now and then a max-size record */
			len = CV_CMD_MAX_PAYLOAD;
		pthread_mutex_lock(&m->lock);
		w = cv_ring_reserve(&m->t.prod, CV_OP_LAUNCH, (uint16_t)a->id,
				    len, seq, NULL, NULL, &err);
		if (w) {
			for (uint32_t i = sizeof(rec); i < len; i++)
				w[i] = (uint8_t)rnd(&s);
			rec.sum = fnv(w + sizeof(rec), len - sizeof(rec));
			memcpy(w, &rec, sizeof(rec));
			cv_ring_commit(&m->t.prod);
		}
		pthread_mutex_unlock(&m->lock);
		if (!w)
			return (void *)1;
	}
	return NULL;
}

static void *mp_consumer(void *p)
{
	struct mp *m = p;
	uint32_t next[MP_PRODUCERS] = { 0 };
	uint8_t *buf = malloc(CV_CMD_MAX_PAYLOAD);
	uint64_t total = (uint64_t)MP_PRODUCERS * MP_RECORDS;
	uint64_t deadline = cv_now_ns() + 120ull * 1000000000ull;
	struct cv_cmd_hdr h;
	struct mp_rec rec;
	int n;

	while (m->received < total && cv_now_ns() < deadline) {
		if (!cv_ring_wait(&m->t.cons, 2000, 20000000ull))
			continue;
		m->wakeups++;
		while ((n = cv_ring_pop(&m->t.cons, &h, buf,
					CV_CMD_MAX_PAYLOAD)) == 1) {
			bool ok = h.len >= sizeof(rec);

			if (ok) {
				memcpy(&rec, buf, sizeof(rec));
				ok = rec.producer < MP_PRODUCERS &&
				     h.flags == rec.producer &&
				     rec.seq == next[rec.producer] &&
				     h.reply == rec.seq &&
				     rec.sum == fnv(buf + sizeof(rec),
						    h.len - sizeof(rec));
			}
			if (!ok) {
				if (m->failures++ < 5)
					printf("#   bad record: producer %u seq"
					       " %u (want %u) len %u\n",
					       rec.producer, rec.seq,
					       rec.producer < MP_PRODUCERS ?
					       next[rec.producer] : 0, h.len);
			} else {
				next[rec.producer]++;
			}
			m->received++;
		}
		if (n < 0) {
			m->failures++;
			printf("#   pop returned %d\n", n);
			break;
		}
	}
	free(buf);
	return NULL;
}

static void test_mpsc(void)
{
	struct mp m;
	struct mp_prod_arg pa[MP_PRODUCERS];
	pthread_t prod[MP_PRODUCERS], cons;
	void *ret;
	int bad = 0;

	memset(&m, 0, sizeof(m));
	tring_init(&m.t, RING_MIN);
	pthread_mutex_init(&m.lock, NULL);
	if (pthread_create(&cons, NULL, mp_consumer, &m)) {
		CHECK(0, "pthread_create consumer");
		return;
	}
	for (uint32_t i = 0; i < MP_PRODUCERS; i++) {
		pa[i] = (struct mp_prod_arg){ &m, i };
		if (pthread_create(&prod[i], NULL, mp_producer, &pa[i]))
			CHECK(0, "pthread_create producer %u", i);
	}
	for (uint32_t i = 0; i < MP_PRODUCERS; i++) {
		pthread_join(prod[i], &ret);
		bad += ret != NULL;
	}
	pthread_join(cons, NULL);
	CHECK(!bad, "%d producers failed to reserve", bad);
	CHECK(m.failures == 0, "%d bad records", m.failures);
	CHECK(m.received == (uint64_t)MP_PRODUCERS * MP_RECORDS,
	      "received %" PRIu64 " of %u", m.received,
	      MP_PRODUCERS * MP_RECORDS);
	CHECK(m.t.ctl->head == m.t.ctl->tail, "drained");
	printf("#   mpsc: %" PRIu64 " records, %" PRIu64 " consumer wakeups\n",
	       m.received, m.wakeups);
	pthread_mutex_destroy(&m.lock);
	tring_exit(&m.t);
}

/* ------------------------------------------------------------------ */
/* A hostile producer: whatever it writes, pop returns a valid record, 0,
 * or -EPROTO, and never reads or writes outside the ring and buf. */

static void put_hdr(struct tring *t, uint64_t off, uint16_t op, uint32_t len)
{
	struct cv_cmd_hdr h = { .op = op, .len = len, .reply = CV_NO_REPLY };

	memcpy(t->buf + off, &h, sizeof(h));
}

/* Re-attaches the consumer at head (shared and private) and sets tail. */
static void hostile_reset(struct tring *t, uint64_t head, uint64_t tail)
{
	t->ctl->head = head;
	t->ctl->tail = tail;
	cv_ring_init(&t->cons, t->ctl, t->buf, t->size);
}

static int pop_small(struct tring *t, uint32_t bufsize, struct cv_cmd_hdr *h)
{
	uint8_t *b = malloc(bufsize ? bufsize : 1);
	int n = cv_ring_pop(&t->cons, h, b, bufsize);

	free(b);
	return n;
}

static void test_hostile_crafted(void)
{
	struct tring t;
	struct cv_cmd_hdr h;
	uint64_t size, base = 7 * (uint64_t)RING_MIN; /* some laps done */

	tring_init(&t, RING_MIN);
	size = t.size;

	/* A valid empty record at the head: only the indices are wrong. */
	put_hdr(&t, 0, CV_OP_NOP, 0);
	hostile_reset(&t, base, base + 8);
	CHECK(pop_small(&t, 4096, &h) == -EPROTO, "tail not 16-aligned");
	hostile_reset(&t, base, base + 24);
	CHECK(pop_small(&t, 4096, &h) == -EPROTO,
	      "tail not 16-aligned after a valid record");
	hostile_reset(&t, base, base - 16);
	CHECK(pop_small(&t, 4096, &h) == -EPROTO, "tail behind head");
	hostile_reset(&t, base, base + size + 16);
	CHECK(pop_small(&t, 4096, &h) == -EPROTO, "tail more than a ring ahead");
	hostile_reset(&t, base, UINT64_MAX - 15);
	CHECK(pop_small(&t, 4096, &h) == -EPROTO, "tail near 2^64");

	put_hdr(&t, 0, CV_OP_NOP, CV_CMD_MAX_PAYLOAD + 1);
	hostile_reset(&t, base, base + size);
	CHECK(pop_small(&t, CV_CMD_MAX_PAYLOAD, &h) == -EPROTO,
	      "len over the maximum");
	put_hdr(&t, 0, CV_OP_NOP, UINT32_MAX);
	CHECK(pop_small(&t, CV_CMD_MAX_PAYLOAD, &h) == -EPROTO, "len 2^32-1");

	put_hdr(&t, 0, CV_OP_NOP, 100);
	hostile_reset(&t, base, base + 16);
	CHECK(pop_small(&t, 4096, &h) == -EPROTO, "record longer than published");

	/* A record that would run past the ring's end. */
	put_hdr(&t, size - 32, CV_OP_NOP, 64);
	hostile_reset(&t, base + size - 32, base + size - 32 + 256);
	CHECK(pop_small(&t, 4096, &h) == -EPROTO, "record across the end");
	/* A PAD that claims more than the rest of the ring. */
	put_hdr(&t, size - 32, CV_OP_PAD, 1000);
	hostile_reset(&t, base + size - 32, base + size - 32 + 2048);
	CHECK(pop_small(&t, 4096, &h) == -EPROTO, "PAD across the end");
	/* A PAD longer than what was published. */
	put_hdr(&t, 0, CV_OP_PAD, 4096);
	hostile_reset(&t, base, base + 1024);
	CHECK(pop_small(&t, 4096, &h) == -EPROTO, "PAD beyond tail");
	/* A payload larger than the consumer's buffer. */
	put_hdr(&t, 0, CV_OP_LAUNCH, 4000);
	hostile_reset(&t, base, base + 4096);
	CHECK(pop_small(&t, 3999, &h) == -EPROTO, "payload over bufsize");
	/* The same record with a big enough buffer is fine. */
	hostile_reset(&t, base, base + 4096);
	CHECK(pop_small(&t, 4000, &h) == 1 && h.len == 4000, "exact bufsize");
	/* A run of PADs ending exactly at tail: empty, not an error. */
	put_hdr(&t, 0, CV_OP_PAD, 0);
	put_hdr(&t, 16, CV_OP_PAD, 16);
	hostile_reset(&t, base, base + 48);
	CHECK(pop_small(&t, 16, &h) == 0, "only PADs: empty");
	CHECK(t.cons.head == base + 48 && t.ctl->head == base + 48,
	      "PADs consumed");
	tring_exit(&t);
}

/* Random rings, random indices: pop must stay in bounds and only return
 * records that are really there. */
static void test_hostile_random(void)
{
	struct tring t;
	uint64_t s = 0xfeedface12345ull, size;
	unsigned got[3] = { 0 }; /* -EPROTO, 0, records */
	uint32_t bufsize = 8192;
	uint8_t *buf = malloc(bufsize);

	tring_init(&t, RING_MIN);
	size = t.size;
	for (int it = 0; it < 3000 && !nfail; it++) {
		uint64_t head = (rnd(&s) % (64 * size)) & ~15ull, tail;
		unsigned mode = (unsigned)(rnd(&s) % 5);
		unsigned nvalid = 0;

		/* Scribble: random bytes, plus plausible headers so that
		 * some records are valid and some nearly so. */
		for (int k = 0; k < 64; k++) {
			uint64_t off = (rnd(&s) % size) & ~15ull;

			if (rnd(&s) & 1)
				put_hdr(&t, off, (uint16_t)(rnd(&s) % 4),
					(uint32_t)(rnd(&s) % 9000));
			else
				memcpy(t.buf + off, &(uint64_t){ rnd(&s) }, 8);
		}
		if (mode == 4) {
			/* A well-formed run of records and PADs: all of it
			 * must come out, then the ring is empty. */
			tail = head;
			for (int k = 0; k < 40; k++) {
				uint64_t off = tail & (size - 1);
				uint32_t len = (uint32_t)(rnd(&s) % 3000);

				if (rec_bytes(len) > size - off) {
					put_hdr(&t, off, CV_OP_PAD,
						(uint32_t)(size - off - HDR));
					tail += size - off;
					continue;
				}
				put_hdr(&t, off, (uint16_t)(1 + rnd(&s) % 30),
					len);
				tail += rec_bytes(len);
				nvalid++;
			}
		} else if (mode == 0)
			tail = rnd(&s);
		else if (mode == 1)
			tail = head + (rnd(&s) % (size + 64));
		else
			tail = head + ((rnd(&s) % (size + 64)) & ~15ull);
		hostile_reset(&t, head, tail);
		for (int k = 0; k < 10000; k++) {
			struct cv_cmd_hdr h, at;
			uint64_t before = t.cons.head, rec_off;
			int n = cv_ring_pop(&t.cons, &h, buf, bufsize);

			if (n < 0) {
				CHECK(n == -EPROTO, "error %d", n);
				CHECK(mode != 4, "well-formed ring refused");
				got[0]++;
				break;
			}
			CHECK(t.cons.head - before <= tail - before,
			      "consumer passed tail");
			/* The head is published in batches, and always once
			 * the ring runs empty. */
			CHECK(t.ctl->head <= t.cons.head &&
			      t.cons.head - t.ctl->head < CV_RING_RELEASE +
			      rec_bytes(CV_CMD_MAX_PAYLOAD), "shared head");
			if (n == 0) {
				CHECK(t.ctl->head == t.cons.head,
				      "shared head published when empty");
				CHECK(t.cons.head == tail, "empty but behind");
				CHECK(mode != 4 || !nvalid,
				      "%u well-formed records missed", nvalid);
				got[1]++;
				break;
			}
			got[2]++;
			nvalid -= mode == 4;
			/* The record just popped ends at the new head. */
			rec_off = (t.cons.head - rec_bytes(h.len)) & (size - 1);
			memcpy(&at, t.buf + rec_off, sizeof(at));
			CHECK(h.len <= bufsize && h.op != CV_OP_PAD &&
			      !memcmp(&at, &h, sizeof(h)) &&
			      rec_off + rec_bytes(h.len) <= size &&
			      !memcmp(buf, t.buf + rec_off + HDR, h.len),
			      "popped record matches the ring at %" PRIu64,
			      rec_off);
		}
	}
	printf("#   hostile: %u -EPROTO, %u empty, %u records\n", got[0],
	       got[1], got[2]);
	CHECK(got[0] > 0 && got[2] > 0, "both outcomes were exercised");
	free(buf);
	tring_exit(&t);
}

/* ------------------------------------------------------------------ */

static void run(const char *name, void (*fn)(void))
{
	nfail = 0;
	fn();
	printf("%s - %s\n", nfail ? "not ok" : "ok", name);
	fflush(stdout);
	nfail_total += nfail;
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	run("init", test_init);
	run("single producer/consumer", test_spsc);
	run("wrap-around with PAD records", test_wrap);
	run("max payload", test_max_payload);
	run("full ring blocks, check gives up, consumer releases", test_full);
	run("multi-producer order and checksums", test_mpsc);
	run("hostile producer: crafted indices and headers",
	    test_hostile_crafted);
	run("hostile producer: random rings", test_hostile_random);
	printf("# %s\n", nfail_total ? "FAILED" : "all passed");
	return nfail_total ? 1 : 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * The live-migration stream between a source and a destination worker
 * (docs/migration.md). A stream socket carries, after nothing else:
 *
 *   record := type u32, len u32, payload[len], footer[16]
 *
 * little-endian, the footer the XXH3-128 (core/hash.h) of the 8 header
 * bytes and the payload. File descriptors (the guest's region, the slot
 * area, the guest's link) ride on a record's first byte as SCM_RIGHTS.
 *
 * Everything received is untrusted: a length over the reader's cap, a
 * footer that does not match, a short read, a closed socket or a timeout
 * sets the reader's sticky error, and every later call returns it. The
 * payload decoders below check every count and range before they
 * allocate or index, and name what was wrong.
 */
#ifndef CV_MIG_H
#define CV_MIG_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CV_MIG_MAGIC 0x313047494d564355ull /* "CUVMIG01" */
#define CV_MIG_VERSION 1u
#define CV_MIG_FOOTER 16u
#define CV_MIG_HDR 8u
/* No record is longer; a reader's cap may be smaller. */
#define CV_MIG_MAX_PAYLOAD (64u << 20)
/* GRANULES: the bytes follow in the record, not in a slot. */
#define CV_MIG_INLINE UINT32_MAX
#define CV_MIG_MSG_LEN 200u
/* Bounds a decoder accepts. */
#define CV_MIG_MAX_RANGES (1u << 20)
#define CV_MIG_MAX_SLOTS 256u

enum cv_mig_type {
	CV_MIG_HELLO = 1,      /* S>D struct cv_mig_hello; fds: region, slots */
	CV_MIG_WELCOME = 2,    /* D>S struct cv_mig_welcome */
	CV_MIG_PLAN = 3,       /* S>D the layout for a round (plan codec) */
	CV_MIG_DIGEST_REQ = 4, /* S>D struct cv_mig_round */
	CV_MIG_DIGESTS = 5,    /* D>S struct cv_mig_round, then n x 16 bytes */
	CV_MIG_GRANULES = 6,   /* S>D struct cv_mig_granules [+ len bytes] */
	CV_MIG_SLOT_FREE = 7,  /* D>S struct cv_mig_slot */
	CV_MIG_ROUND_END = 8,  /* S>D struct cv_mig_round */
	CV_MIG_ROUND_DONE = 9, /* D>S struct cv_mig_round */
	CV_MIG_STATE = 10,     /* S>D struct cv_mig_state, then the bytes */
	CV_MIG_READY = 11,     /* D>S empty: rebuilt, waiting for COMMIT */
	CV_MIG_COMMIT = 12,    /* S>D empty; fd: the guest's link */
	CV_MIG_RUNNING = 13,   /* D>S struct cv_mig_running */
	CV_MIG_ABORT = 14,     /* either: struct cv_mig_abort */
	CV_MIG_SHARE = 15,     /* S>D struct cv_mig_share; fd: the memory */
	CV_MIG_TYPE_MAX = CV_MIG_SHARE
};

/* Payloads with a fixed layout (all little-endian on the wire, packed as
 * declared; the static asserts in mig.c hold the sizes). */
struct cv_mig_hello {
	uint64_t magic;
	uint32_t version;
	uint32_t flags;        /* CV_MIG_HELLO_* */
	uint8_t token[16];     /* the tenant's */
	uint64_t tenant;
	uint64_t quota;        /* device bytes the tenant may hold */
	uint64_t seed;         /* digest seed of this migration */
	uint32_t granule;      /* digest granule, cv_digest_size_ok */
	uint32_t nslots;       /* 0: no slot area, bytes inline */
	uint64_t slot_size;    /* bytes of one slot, <= CV_MIG_MAX_PAYLOAD */
	uint32_t backend;      /* enum cv_backend_kind of the source */
	uint16_t cc_major, cc_minor;
};

/* HELLO flags. SHARE: both workers are on one device; the memory is
 * not copied but shared (SHARE records), there is no slot area (nslots
 * 0) and the HELLO carries the region only. */
#define CV_MIG_HELLO_SHARE 1u
/* INLINE: the bytes travel in GRANULES (slot CV_MIG_INLINE), there is no
 * slot area (nslots 0) and the HELLO carries the region only: what a
 * stream between hosts does (docs/remote.md). */
#define CV_MIG_HELLO_INLINE 2u

/* SHARE kinds. */
enum cv_mig_share_kind {
	CV_MIG_SHARE_MEM = 1,  /* plain memory mapped at va, size bytes */
	CV_MIG_SHARE_VMM = 2,  /* VMM handle id of size bytes */
	CV_MIG_SHARE_RESET = 3,/* no fd: forget every mapping and handle */
};

struct cv_mig_share {
	uint32_t kind;         /* enum cv_mig_share_kind */
	uint32_t id;           /* VMM: the handle id; else 0 */
	uint64_t va;           /* MEM: where it is mapped; else 0 */
	uint64_t size;         /* MEM, VMM: bytes, whole CV_GRANULEs */
};

struct cv_mig_welcome {
	uint32_t pid;          /* the destination worker */
	uint32_t pad;
};

struct cv_mig_round {
	uint32_t round;
	uint32_t n;            /* DIGESTS: digests that follow; else 0 */
	uint64_t bytes;        /* ROUND_END: bytes sent in the round */
};

struct cv_mig_granules {
	uint64_t va;           /* device address */
	uint32_t len;          /* bytes, <= slot_size (or the cap, inline) */
	uint32_t slot;         /* slot index, or CV_MIG_INLINE */
};

struct cv_mig_slot {
	uint32_t slot;
	uint32_t pad;
};

struct cv_mig_state {
	uint64_t offset;       /* of these bytes in the state image */
	uint64_t total;        /* bytes of the whole image */
};

struct cv_mig_running {
	uint64_t ns;           /* from COMMIT received to running */
};

struct cv_mig_abort {
	int32_t code;          /* -errno */
	uint32_t pad;
	char msg[CV_MIG_MSG_LEN]; /* NUL-terminated after decode */
};

/* ---- framing -------------------------------------------------------- */

/* Faults a sender can inject (tests, `cuvisor migrate --fault`). */
enum cv_mig_fault {
	CV_MIG_FAULT_NONE = 0,
	CV_MIG_FAULT_CORRUPT = 1, /* flip a payload bit of the next record */
};

struct cv_mig_io {
	int fd;
	int err;               /* sticky: 0 or -errno */
	pthread_mutex_t send_lock; /* records from several threads */
	int fault;             /* enum cv_mig_fault, consumed by one send */
	uint64_t sent, received; /* bytes, records included */
};

void cv_mig_io_init(struct cv_mig_io *io, int fd);
/*
 * Sends one record whose payload is head[0..hlen) then data[0..dlen),
 * with nfds (<= 4) fds on it. Thread-safe (records never interleave).
 * 0 or -errno; an error is sticky (the stream is unusable after it).
 */
int cv_mig_send(struct cv_mig_io *io, uint32_t type, const void *head,
		size_t hlen, const void *data, size_t dlen, const int *fds,
		int nfds);
/*
 * Receives one record into buf (cap bytes): *type, *len. fds (up to
 * *nfds, may be NULL) receives the fds that came with it, *nfds their
 * count; fds that came where none were expected are closed. timeout_ms
 * < 0 waits forever, else bounds the wait for each part. Records of an
 * unknown type, longer than cap, with a bad footer, a short read, end of
 * file: -EPROTO, -EMSGSIZE, -EBADMSG, -EPIPE, -ECONNRESET; -ETIMEDOUT.
 * One thread at a time. 0 or the sticky -errno.
 */
int cv_mig_recv(struct cv_mig_io *io, uint32_t *type, void *buf, size_t cap,
		uint32_t *len, int *fds, int *nfds, int timeout_ms);

/* ---- payloads ------------------------------------------------------- */

/* A device range of the plan: plain memory (vmm 0) or a VMM handle's
 * bytes [offset, offset + size). */
struct cv_mig_range {
	uint64_t va, size;
	uint32_t vmm;
	uint64_t offset;
};

struct cv_mig_vmm {
	uint32_t id;
	bool released;
	uint64_t size;
};

struct cv_mig_heap {
	uint64_t off, len;     /* pinned heap, offsets in the region */
};

/*
 * The layout of a round: where device memory is, which VMM handles back
 * it, which parts of the pinned heap are mapped. Ranges sorted by va.
 */
struct cv_mig_plan {
	uint32_t round;
	uint32_t nranges, nvmm, nheap;
	struct cv_mig_range *ranges;
	struct cv_mig_vmm *vmm;     /* sorted by id */
	struct cv_mig_heap *heap;   /* sorted by off */
};

struct cv_wbuf;

/* Appends the PLAN payload of p (which must be valid) to b. */
void cv_mig_plan_encode(const struct cv_mig_plan *p, struct cv_wbuf *b);
/*
 * Decodes and checks a PLAN payload: counts match the length exactly;
 * ranges sorted, disjoint, of whole CV_GRANULEs inside the device window
 * (CV_WINDOW_ADDR, CV_WINDOW_SIZE); VMM ids nonzero and unique (sorted
 * on return), each range's handle listed with offset + size inside it
 * (no overflow), offsets granule-aligned; heap ranges page-aligned,
 * sorted, disjoint, inside [0, heap_max); device bytes to create (plain
 * ranges plus handle sizes) <= quota. 0, or -EINVAL with why filled;
 * -ENOMEM. On success *out owns its arrays (cv_mig_plan_free).
 */
int cv_mig_plan_decode(const void *p, size_t len, uint64_t quota,
		       uint64_t heap_max, struct cv_mig_plan *out, char *why,
		       size_t whylen);
void cv_mig_plan_free(struct cv_mig_plan *p);
/* Digest granules of the plan for a granule size: the sum over ranges of
 * size / granule (every range size is a multiple of any valid granule
 * that divides CV_GRANULE). */
uint64_t cv_mig_plan_granules(const struct cv_mig_plan *p, uint32_t granule);
/* The index of the range of the plan that holds va, or -1; binary
 * search. */
int64_t cv_mig_plan_index(const struct cv_mig_plan *p, uint64_t va);
/* True when [va, va + len) lies inside one range of the plan (len > 0,
 * no overflow); binary search. */
bool cv_mig_plan_covers(const struct cv_mig_plan *p, uint64_t va,
			uint64_t len);

/*
 * Checks a HELLO: magic, version, flags 0, granule valid and dividing
 * CV_GRANULE, nslots <= CV_MIG_MAX_SLOTS, slot_size a nonzero multiple
 * of 4096 <= CV_MIG_MAX_PAYLOAD when nslots > 0. 0 or -EINVAL / -EPROTO
 * (another version) with why filled.
 */
int cv_mig_hello_check(const struct cv_mig_hello *h, char *why,
		       size_t whylen);

/*
 * Checks a SHARE payload: a known kind; MEM: va and size whole
 * CV_GRANULEs inside the device window, id 0; VMM: id nonzero, size a
 * nonzero multiple of CV_GRANULE <= quota, va 0; RESET: all else 0.
 * 0 or -EINVAL with why filled.
 */
int cv_mig_share_check(const struct cv_mig_share *s, uint64_t quota,
		       char *why, size_t whylen);

/* Fills an ABORT payload (msg truncated and NUL-terminated). */
void cv_mig_abort_make(struct cv_mig_abort *a, int code, const char *msg);
/* Decodes an ABORT payload of len bytes: the message is cut at the
 * first NUL or the end, non-printable bytes become '?', and a code that
 * is not a -errno in (-4096, 0) becomes -EPROTO. */
void cv_mig_abort_decode(const void *p, size_t len, struct cv_mig_abort *a);

/* The fixed-size payload of a record of type t (HELLO, WELCOME, ROUND
 * kinds, GRANULES' head, SLOT_FREE, STATE's head, RUNNING), 0 for READY
 * and COMMIT, SIZE_MAX for those with no fixed size (PLAN, ABORT). */
size_t cv_mig_fixed_len(uint32_t type);

#endif

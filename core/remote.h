/* SPDX-License-Identifier: MIT */
/*
 * The remote vGPU protocol (docs/remote.md): how a worker whose backend
 * is on another host (worker/backend_remote.c, the client) calls the
 * worker that serves the real backend there (worker/remote_serve.c, the
 * server), over an authenticated peer connection (core/peer.h).
 *
 * Every message, both ways, is a cv_rm_hdr and len bytes of payload.
 * A request's payload is cv_rm_args (ten 64-bit arguments, their meaning
 * by op) and then the op's bytes (a copy's data, a module's image, a
 * name, a launch's attributes and parameters). The client numbers its
 * requests (seq, increasing); the server runs the ordered ones in that
 * order on one thread and answers those that wait (CV_RM_SYNC) with a
 * REPLY of the same seq: cv_rm_rep and its bytes. A device-to-host copy
 * is answered by DATA messages of its seq, in order, each at most
 * CV_RM_CHUNK bytes, until all of it came. Side ops (CV_RM_SIDE: queries,
 * marker waits, digests) may come from other threads of the client and
 * run on another thread of the server, after the ordered op whose seq
 * their args[9] names.
 *
 * An asynchronous op's error is kept by the server and given with the
 * next REPLY of an ordered op that itself succeeded, as CUDA reports an
 * earlier asynchronous error at the next synchronising call.
 *
 * Both ends send PING at least every CV_RM_PING_MS; an end that heard
 * nothing for its timeout takes the other for gone.
 *
 * Everything is untrusted in both directions: lengths are capped, the
 * decoders here are pure (tests/test_remote.c, fuzz/fuzz_remote.c), and
 * each end checks the arguments against its own state.
 */
#ifndef CV_REMOTE_H
#define CV_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define CV_RM_VERSION 2u
#define CV_RM_CHUNK (4u << 20)       /* bytes of one copy message */
#define CV_RM_NARGS 10
#define CV_RM_MAX_PAYLOAD (CV_RM_CHUNK + 4096u)
#define CV_RM_PING_MS 1000
#define CV_RM_TIMEOUT_MS 10000       /* default; --remote-timeout */
#define CV_RM_MAX_IMAGE (CV_RM_MAX_PAYLOAD - sizeof(struct cv_rm_args))
#define CV_RM_MAX_NAME 1024
#define CV_RM_MAX_ATTRS 16
#define CV_RM_MAX_OBJS (1u << 20)

enum cv_rm_op {
	/* client -> server, ordered */
	CV_RM_VA_RESERVE = 1, CV_RM_MEM_CREATE, CV_RM_MEM_RELEASE,
	CV_RM_MEM_MAP, CV_RM_MEM_UNMAP, CV_RM_MEM_INFO,
	CV_RM_STREAM_CREATE, CV_RM_STREAM_DESTROY, CV_RM_STREAM_SYNC,
	CV_RM_STREAM_WAIT_EVENT,
	CV_RM_EVENT_CREATE, CV_RM_EVENT_DESTROY, CV_RM_EVENT_RECORD,
	CV_RM_EVENT_SYNC, CV_RM_EVENT_QUERY, CV_RM_EVENT_ELAPSED,
	CV_RM_HTOD, CV_RM_DTOH, CV_RM_DTOD, CV_RM_MEMCPY2D, CV_RM_MEMSET,
	CV_RM_MODULE_LOAD, CV_RM_MODULE_UNLOAD, CV_RM_GET_FUNCTION,
	CV_RM_GET_GLOBAL, CV_RM_FUNCTION_NAME, CV_RM_FUNC_GET_ATTR,
	CV_RM_FUNC_SET_ATTR, CV_RM_FUNC_SET_CACHE,
	CV_RM_LAUNCH, CV_RM_HOST_FUNC,
	CV_RM_CTX_SYNC, CV_RM_CTX_SET_LIMIT, CV_RM_CTX_GET_LIMIT,
	CV_RM_OCCUPANCY, CV_RM_OCCUPANCY_CLUSTER,
	CV_RM_MARKER_CREATE, CV_RM_MARKER_DESTROY, CV_RM_MARKER_RECORD,
	/* client -> server, side */
	CV_RM_STREAM_QUERY, CV_RM_MARKER_QUERY, CV_RM_MARKER_WAIT,
	CV_RM_DIGEST,
	/* client -> server, neither */
	CV_RM_HOSTFN_DONE, CV_RM_CLOSE,
	/* server -> client */
	CV_RM_REPLY, CV_RM_DATA, CV_RM_HOSTFN, CV_RM_READY,
	/* both */
	CV_RM_PING,
	CV_RM_OP_END
};

/* What an op is: answered (SYNC), on the side thread (SIDE). */
#define CV_RM_SYNC 1u
#define CV_RM_SIDE 2u
#define CV_RM_ORDERED 4u
#define CV_RM_TO_SERVER 8u
#define CV_RM_TO_CLIENT 16u

struct cv_rm_hdr {
	uint32_t op;
	uint32_t len;    /* payload bytes, <= CV_RM_MAX_PAYLOAD */
	uint64_t seq;
};
_Static_assert(sizeof(struct cv_rm_hdr) == 16, "rm hdr");

struct cv_rm_args {
	uint64_t a[CV_RM_NARGS];
};

struct cv_rm_rep {
	int32_t rc;      /* CUresult */
	uint32_t pad;
	uint64_t v[4];
};

/* DATA's fixed part: where its bytes go in the copy, and an error that
 * ends the copy early (then no bytes follow and no more DATA come). */
struct cv_rm_data {
	uint64_t off;
	int32_t rc;
	uint32_t pad;
};

/* The server's first message (op READY, seq 0): it opened the GPU. */
struct cv_rm_ready {
	uint32_t version;
	int32_t rc;      /* CUresult of the open */
	struct cv_devinfo dev;
	char host[64];   /* the serving host's name, terminated */
	uint16_t lane_port;  /* copy lanes: TCP port, 0 when none */
	uint16_t nlanes;     /* <= CV_RM_LANES */
	uint32_t flags;      /* CV_RM_READY_* */
};

/* The server takes zstd-compressed HTOD bytes on its lanes, and sends
 * DTOH bytes so when a DTOH asks (CV_RM_DTOH_ZSTD). */
#define CV_RM_READY_ZSTD 1u

/* DTOH args[4]: its pieces that go over a lane may come as zstd frames
 * (cv_rm_lane_data.zlen), each where that saves a tenth at least. */
#define CV_RM_DTOH_ZSTD 1u

/*
 * Copy lanes: up to CV_RM_LANES more TCP connections to lane_port of
 * the serving host, each authenticated by the peer handshake under the
 * session key (cv_peer_session_key), then its index (uint32_t). A copy's
 * bytes go over a lane, the copy itself (HTOD with args[2] = lane + 1,
 * args[3] = bytes) over the connection: lanes are what makes one host's
 * copies use more than one TCP stream.
 *   client -> server: cv_rm_lane_hdr (the HTOD's seq, bytes), the bytes
 *   server -> client: cv_rm_lane_data (DATA of a DTOH), the bytes
 */
#define CV_RM_LANES 8

struct cv_rm_lane_hdr {
	uint64_t seq;
	uint32_t len;    /* <= CV_RM_CHUNK */
	uint32_t zlen;   /* 0: len bytes follow; else zlen bytes of one zstd
			  * frame that decompresses to exactly len bytes
			  * (only to a server that said CV_RM_READY_ZSTD) */
};

struct cv_rm_lane_data {
	uint64_t seq;
	uint64_t off;
	int32_t rc;      /* nonzero: the copy failed; no bytes */
	uint32_t len;    /* <= CV_RM_CHUNK */
	uint32_t zlen;   /* 0: len bytes follow; else zlen bytes of one zstd
			  * frame of exactly len bytes (only for a DTOH that
			  * asked, CV_RM_DTOH_ZSTD) */
	uint32_t pad;
};
_Static_assert(sizeof(struct cv_rm_lane_hdr) == 16, "rm lane hdr");
_Static_assert(sizeof(struct cv_rm_lane_data) == 32, "rm lane data");

/* CV_RM_* bits of op, or 0 when op is unknown. */
uint32_t cv_rm_op_class(uint32_t op);
const char *cv_rm_op_name(uint32_t op);

/*
 * Checks a header that arrived at `to` (CV_RM_TO_SERVER or
 * CV_RM_TO_CLIENT): a known op for that direction and a length within
 * the cap and at least the op's fixed part. 0 or -EBADMSG with why.
 */
int cv_rm_hdr_check(const struct cv_rm_hdr *h, uint32_t to, const char **why);

/* The fixed part of a payload of op: cv_rm_args for requests,
 * cv_rm_rep for REPLY, cv_rm_data for DATA, 8 (the id) for HOSTFN,
 * cv_rm_ready for READY, 0 for PING and CLOSE. */
size_t cv_rm_fixed_len(uint32_t op);

/* Checks a READY's payload: version, a terminated name, a terminated
 * printable device name. */
int cv_rm_ready_check(const void *p, size_t len, struct cv_rm_ready *out,
		      const char **why);

/*
 * A launch's bytes: nattrs cv_launch_attr then the parameter buffer of
 * psize bytes. Checks that len is exactly that and nattrs is within the
 * cap; 0 or -EBADMSG.
 */
int cv_rm_launch_split(size_t len, uint64_t nattrs, uint64_t psize);

#endif

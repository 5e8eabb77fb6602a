/* SPDX-License-Identifier: MIT */
/*
 * The link between two hosts' daemons (docs/remote.md): a TCP connection
 * whose two ends prove to each other that they hold the same 32-byte key,
 * without sending it, before anything else is accepted.
 *
 * Handshake, each side at once (both send first, then read):
 *   HELLO  cv_peer_hello: magic, version, role (the connecting side is
 *          CV_PEER_CLIENT, the accepting side CV_PEER_SERVER), a fresh
 *          random nonce, the host's name;
 *   AUTH   cv_peer_auth: HMAC-SHA256 under the key of
 *          "cuvisor peer v1", role, own nonce, the other's nonce and own
 *          host name.
 * Each checks the other's HELLO (magic, version, the other role, a
 * terminated printable name) and AUTH (constant-time). The roles in the
 * MAC keep a side from answering a challenge with the other's own proof;
 * the fresh nonces keep a recorded handshake from being replayed. Then
 * requests: cv_peer_req, answered by cv_peer_rsp and its payload.
 *
 * Everything a peer sends is untrusted: exact sizes, capped lengths, and
 * the decoders are pure functions that tests/test_peer.c and
 * fuzz/fuzz_peer.c drive with arbitrary bytes.
 */
#ifndef CV_PEER_H
#define CV_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CV_PEER_MAGIC 0x3152454550565543ull /* "CUVPEER1" */
#define CV_PEER_VERSION 1u
#define CV_PEER_KEY_LEN 32
#define CV_PEER_NONCE_LEN 32
#define CV_PEER_MAC_LEN 32
#define CV_PEER_HOST_LEN 64
#define CV_PEER_DEFAULT_PORT 7430
#define CV_PEER_MAX_PAYLOAD 65536u
#define CV_PEER_TIMEOUT_MS 5000

enum cv_peer_role {
	CV_PEER_CLIENT = 1,
	CV_PEER_SERVER = 2,
};

struct cv_peer_hello {
	uint64_t magic;
	uint32_t version;
	uint32_t role;
	uint8_t nonce[CV_PEER_NONCE_LEN];
	char host[CV_PEER_HOST_LEN];          /* NUL-terminated, printable */
};
_Static_assert(sizeof(struct cv_peer_hello) == 112, "peer hello");

struct cv_peer_auth {
	uint8_t mac[CV_PEER_MAC_LEN];
};

enum cv_peer_req_type {
	CV_PEER_INFO = 1,     /* no payload; answer: cv_peer_info */
	CV_PEER_VGPU = 2,     /* cv_peer_vgpu; answer: status only, then
			       * the connection is a remote vGPU's
			       * (core/remote.h) */
};

/* A vGPU for a worker on the asking host. */
struct cv_peer_vgpu {
	uint32_t version;     /* CV_RM_VERSION */
	uint32_t gpu;         /* the serving host's GPU index */
	uint64_t quota;       /* bytes */
	uint64_t tenant;      /* the asking host's tenant id (for logs, ps) */
	uint32_t timeout_ms;  /* silence after which each end gives up */
	uint32_t pad;
};
_Static_assert(sizeof(struct cv_peer_vgpu) == 32, "peer vgpu");

struct cv_peer_req {
	uint32_t type;
	uint32_t len;         /* payload bytes that follow */
};

struct cv_peer_rsp {
	int32_t status;       /* 0 or -errno */
	uint32_t len;         /* payload bytes that follow, <= MAX_PAYLOAD */
};

#define CV_PEER_MAX_GPUS 16

struct cv_peer_gpu {
	uint64_t total;       /* bytes */
	char name[64];        /* NUL-terminated, printable */
};

struct cv_peer_info {
	uint32_t version;
	uint32_t backend;     /* CV_BACKEND_* */
	uint32_t ngpus;       /* <= CV_PEER_MAX_GPUS */
	uint32_t ntenants;
	char host[CV_PEER_HOST_LEN];
	struct cv_peer_gpu gpu[CV_PEER_MAX_GPUS];
};
_Static_assert(sizeof(struct cv_peer_info) == 16 + 64 + 16 * 72, "info");

/* The key from path: 64 hex digits (then an optional newline), in a
 * file that is ours and that neither group nor others may read or
 * write. 0, or -errno with why filled in. */
int cv_peer_key_load(const char *path, uint8_t key[CV_PEER_KEY_LEN],
		     char *why, size_t whylen);

/*
 * Splits HOST:PORT, [V6]:PORT, [V6], a bare IPv6 address, and HOST (or,
 * with bare_is_port, PORT) into host and port; either may come out "".
 * 0, or -EINVAL when a part does not fit or the brackets do not close.
 */
int cv_peer_addr_split(const char *s, bool bare_is_port, char *host,
		       size_t hsize, char *port, size_t psize);

/* A HELLO for role with a fresh nonce (0, or -EIO when the system has
 * no randomness to give). */
int cv_peer_hello_make(struct cv_peer_hello *h, uint32_t role,
		       const char *host);

/* Checks a peer's HELLO of len bytes, which must come from the other role
 * than ours; 0 and *out, or -EBADMSG with why. */
int cv_peer_hello_check(const void *p, size_t len, uint32_t our_role,
			struct cv_peer_hello *out, const char **why);

/* The AUTH of the side that sent `self` to the side that sent `other`. */
void cv_peer_mac(const uint8_t key[CV_PEER_KEY_LEN],
		 const struct cv_peer_hello *self,
		 const struct cv_peer_hello *other,
		 uint8_t mac[CV_PEER_MAC_LEN]);

/* Whether auth proves that the sender of `other` holds the key (constant
 * time). */
int cv_peer_auth_ok(const uint8_t key[CV_PEER_KEY_LEN],
		    const struct cv_peer_hello *self,
		    const struct cv_peer_hello *other,
		    const struct cv_peer_auth *auth);

/* Checks a peer's INFO answer of len bytes; 0, or -EBADMSG with why. */
int cv_peer_info_check(const void *p, size_t len, struct cv_peer_info *out,
		       const char **why);

/* Checks a VGPU request of len bytes (sizes, version, a timeout of
 * 1..3600 s, a quota); 0, or -EBADMSG with why. */
int cv_peer_vgpu_check(const void *p, size_t len, struct cv_peer_vgpu *out,
		       const char **why);

/*
 * The whole handshake on a connected blocking-or-not socket fd, at most
 * timeout_ms: sends our HELLO and AUTH, checks the peer's. 0 and the
 * peer's hello in *peer; -EACCES (the peer does not hold the key),
 * -EBADMSG (not a cuvisor peer of this version), -ETIMEDOUT, or another
 * -errno; why says which.
 */
int cv_peer_handshake(int fd, const uint8_t key[CV_PEER_KEY_LEN],
		      uint32_t role, const char *host, int timeout_ms,
		      struct cv_peer_hello *peer, char *why, size_t whylen);

/* As cv_peer_handshake; then, when session is not NULL, both ends'
 * session key: cv_peer_session_key of the two HELLOs. */
int cv_peer_handshake_s(int fd, const uint8_t key[CV_PEER_KEY_LEN],
			uint32_t role, const char *host, int timeout_ms,
			struct cv_peer_hello *peer, char *why, size_t whylen,
			uint8_t session[CV_PEER_KEY_LEN]);

/*
 * A key for one connection's session: HMAC-SHA256 under the peer key of
 * a label and the client's and the server's nonces (a and b in either
 * order). Both ends compute it; it never crosses the wire. The serving
 * worker of a remote vGPU gets it from its daemon and authenticates the
 * copy lanes with it (core/remote.h).
 */
void cv_peer_session_key(const uint8_t key[CV_PEER_KEY_LEN],
			 const struct cv_peer_hello *a,
			 const struct cv_peer_hello *b,
			 uint8_t out[CV_PEER_KEY_LEN]);

/*
 * The connections a listener holds before they proved that they hold the
 * key (daemon/peer.c): a table of slots, and who is dropped to make room,
 * so that idle connections from one address, or from many, never keep a
 * real peer out. No I/O: tests/test_peer.c drives it.
 */
struct cv_peer_pending {
	uint8_t addr[16];     /* cv_peer_addr_key */
	uint64_t since;       /* accepted at (CLOCK_MONOTONIC ns) */
	bool used;
};

/* What a source address counts as: an IPv4 address (also IPv4-mapped)
 * as ::ffff:A.B.C.D, an IPv6 address by its /64 (one host usually holds
 * a whole /64). 0, or -EAFNOSUPPORT. */
int cv_peer_addr_key(const struct sockaddr *sa, socklen_t len,
		     uint8_t key[16]);

/*
 * The slot of tab[0..n) that a new connection from key takes; *evict is
 * that slot when its connection must be dropped first, else -1. The
 * oldest connection from key goes when key holds per_addr slots already;
 * else a free slot is taken; else the oldest of all goes.
 */
int cv_peer_pending_admit(const struct cv_peer_pending *tab, int n,
			  int per_addr, const uint8_t key[16], int *evict);

/* Exactly n bytes to or from fd within the deadline (CLOCK_MONOTONIC ns);
 * 0, -ETIMEDOUT, -ECONNRESET (end of stream) or -errno. */
int cv_peer_write(int fd, const void *p, size_t n, uint64_t deadline);
int cv_peer_read(int fd, void *p, size_t n, uint64_t deadline);
/* The longest single poll of those waits, in ms (60000; a test lowers
 * it to see that only the deadline ends a wait). */
extern int cv_peer_poll_ms;
/* The same, but when nothing has come, trying again for up to spin_ns
 * before sleeping in poll: on a link where the answer is microseconds
 * away, a wake-up from poll costs more than the answer. */
int cv_peer_read_spin(int fd, void *p, size_t n, uint64_t deadline,
		      uint64_t spin_ns);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * Control protocol: guest <-> cuvisord, cuvisor CLI <-> cuvisord, and
 * cuvisord <-> cuvisor-vgpu. Messages travel over AF_UNIX SOCK_SEQPACKET
 * sockets (one message per datagram, file descriptors as SCM_RIGHTS), each
 * a struct cv_ctl_hdr followed by exactly hdr.len payload bytes. Fields
 * are fixed-width little-endian. A reply has the request's type with
 * CV_CTL_REPLY set and status 0 or -errno.
 *
 * Every message is untrusted: the receiver checks magic, the exact payload
 * length for the type, NUL termination of strings, and ranges of numbers.
 */
#ifndef CV_CTL_H
#define CV_CTL_H

#include <stdint.h>
#include <sys/types.h>

#define CV_CTL_MAGIC 0x4c544356u /* "VCTL" */
#define CV_CTL_MAX 65536u        /* largest message, header included */
#define CV_CTL_REPLY 0x8000u

struct cv_ctl_hdr {
	uint32_t magic;
	uint16_t type;
	uint16_t flags;
	uint32_t len;    /* payload bytes after the header */
	int32_t status;  /* replies: 0 or -errno */
};
_Static_assert(sizeof(struct cv_ctl_hdr) == 16, "ctl hdr");

enum cv_ctl_type {
	/* guest -> daemon. Payload cv_ctl_attach. Reply cv_ctl_attach_r with
	 * two fds: [0] the region memfd, [1] the guest's end of the link
	 * socket to its worker (the worker sees HUP when the guest dies). */
	CV_CTL_ATTACH = 1,
	/* cli -> daemon. No payload. Reply: cv_ctl_ps_r, then n entries. */
	CV_CTL_PS = 2,
	/* cli -> daemon. No payload. The daemon stops (tenants' workers are
	 * told to stop too). Reply status 0. */
	CV_CTL_SHUTDOWN = 3,
	/* cli -> daemon. No payload. Reply cv_ctl_info_r. */
	CV_CTL_INFO = 4,

	/* worker -> daemon, once, when the vGPU is ready or failed to start.
	 * Payload cv_ctl_ready; on success one fd: the region memfd. */
	CV_CTL_W_READY = 32,
	/* daemon -> worker. No payload. Reply cv_ctl_w_stats_r. */
	CV_CTL_W_STATS = 33,
	/* daemon -> worker. No payload. The worker exits (reply first). */
	CV_CTL_W_STOP = 34,
};

#define CV_CTL_NAME_LEN 64

struct cv_ctl_attach {
	uint32_t pid;       /* informational; the daemon uses SO_PEERCRED */
	int32_t gpu;        /* -1: the daemon chooses */
	uint64_t mem;       /* quota in bytes; 0: the daemon's default */
	uint32_t flags;
	uint32_t proto;     /* CV_PROTO_VERSION of the guest */
	char name[CV_CTL_NAME_LEN]; /* program name, NUL-terminated */
};
_Static_assert(sizeof(struct cv_ctl_attach) == 88, "attach");

struct cv_ctl_attach_r {
	uint64_t tenant_id;
	int32_t gpu;
	uint32_t worker_pid;
	uint64_t quota;
};
_Static_assert(sizeof(struct cv_ctl_attach_r) == 24, "attach_r");

struct cv_ctl_ready {
	int32_t status;     /* 0 or -errno; on failure msg says why */
	uint32_t pad;
	char msg[256];
};

struct cv_ctl_w_stats_r {
	uint64_t mem_used;  /* device bytes mapped */
	uint64_t quota;
	uint64_t host_pinned; /* heap bytes mapped */
	uint64_t commands;  /* commands executed */
	uint32_t state;     /* enum cv_vgpu_state */
	uint32_t pad;
};

struct cv_ctl_tenant {
	uint64_t id;
	uint32_t pid;        /* guest process */
	uint32_t worker_pid;
	int32_t gpu;
	uint32_t state;      /* enum cv_vgpu_state */
	uint64_t mem_used;
	uint64_t quota;
	char name[CV_CTL_NAME_LEN];
};
_Static_assert(sizeof(struct cv_ctl_tenant) == 104, "tenant");

struct cv_ctl_ps_r { uint32_t n; uint32_t pad; };

struct cv_ctl_info_r {
	uint32_t pid;
	uint32_t ngpus;
	uint32_t backend;    /* enum cv_backend_kind */
	uint32_t ntenants;
	uint64_t default_quota;
};

/*
 * Sends one message with optional fds; 0 or -errno.
 */
int cv_ctl_send(int sock, uint16_t type, int32_t status, const void *payload,
		uint32_t len, const int *fds, int nfds);

/*
 * Receives one message into buf (bufsize >= sizeof(hdr)); at most *nfds
 * fds are kept (the rest closed), *nfds is set to the number received.
 * Validates magic and that hdr.len matches the datagram. Returns the
 * payload length or -errno (-ECONNRESET on orderly shutdown). timeout_ms
 * < 0 waits forever.
 */
int cv_ctl_recv(int sock, struct cv_ctl_hdr *hdr, void *buf, uint32_t bufsize,
		int *fds, int *nfds, int timeout_ms);

/*
 * The default control socket path: $CUVISOR_SOCKET if set, else
 * /run/cuvisor/cuvisord.sock for root, else $XDG_RUNTIME_DIR/cuvisor/...,
 * else /tmp/cuvisor-UID/cuvisord.sock. Returns 0 or -ENAMETOOLONG.
 */
int cv_ctl_default_path(char *buf, size_t size);

/* Connects a SOCK_SEQPACKET socket to path; fd or -errno. */
int cv_ctl_connect(const char *path);

#endif

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

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define CV_CTL_MAGIC 0x4c544356u /* "VCTL" */
#define CV_CTL_MAX 65536u        /* largest message, header included */
#define CV_CTL_REPLY 0x8000u
#define CV_CTL_MAX_FDS 4         /* most fds one message may carry */

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
	 * socket to its worker (the worker sees HUP when the guest dies).
	 * A refusal (status < 0) carries why, for people: a cv_ctl_refused
	 * ("quota 8.0 GiB asked, 2.0 GiB of gpu 0's 80.0 GiB left"); older
	 * daemons send none. */
	CV_CTL_ATTACH = 1,
	/* cli -> daemon. No payload. Reply: cv_ctl_ps_r, then n entries. */
	CV_CTL_PS = 2,
	/* cli -> daemon. No payload. The daemon stops (tenants' workers are
	 * told to stop too). Reply status 0. */
	CV_CTL_SHUTDOWN = 3,
	/* cli -> daemon. No payload. Reply cv_ctl_info_r, then ngpus
	 * cv_ctl_gpu entries. */
	CV_CTL_INFO = 4,
	/* cli -> daemon: revoke and restore a tenant's vGPU. Payload
	 * cv_ctl_tenant_op. Reply cv_ctl_op_r once the worker has done it
	 * (status -ENOENT: no such tenant; -EBUSY: wrong state for it).
	 *   SUSPEND  stop taking commands, let in-flight GPU work finish
	 *   RESUME   take commands again (after SUSPEND or EVICT); gpu must
	 *            be -1 or the tenant's GPU today
	 *   EVICT    suspend, copy device memory to host memory, release it */
	CV_CTL_SUSPEND = 5,
	CV_CTL_RESUME = 6,
	CV_CTL_EVICT = 7,
	/* cli -> daemon. Payload cv_ctl_ckpt and one fd: the image file,
	 * open for writing. Reply cv_ctl_op_r (bytes: the image's size). With
	 * CV_CKPT_STOP the tenant ends STOPPED, its GPU memory released. */
	CV_CTL_CHECKPOINT = 8,
	/* cli -> daemon. Payload cv_ctl_restore and one fd: the image, open
	 * for reading. The daemon finds the STOPPED tenant the image is for
	 * and starts a new worker from it. Reply cv_ctl_restore_r (also on
	 * failure: msg says what is wrong with the image). */
	CV_CTL_RESTORE = 9,
	/* cli -> daemon. Payload cv_ctl_migrate. The daemon starts a
	 * destination worker on the GPU asked for and has the tenant's
	 * worker migrate it there live (docs/migration.md). Reply
	 * cv_ctl_migrate_r, then report_len bytes of the JSON report (also
	 * on failure, when the source worker got that far). */
	CV_CTL_MIGRATE = 10,
	/* cli -> daemon. No payload. Reply cv_ctl_remotes_r, then n
	 * cv_ctl_remote entries: our tenants whose vGPU is on another
	 * host's GPU, and the vGPUs we serve to other hosts' tenants
	 * (docs/remote.md). */
	CV_CTL_REMOTES = 11,
	/* daemon -> client, with CV_CTL_REPLY set, instead of any reply:
	 * the daemon refuses the connection itself (a uid not allowed, a
	 * cap, a connection idle too long) and closes it right after.
	 * Payload cv_ctl_refused, status -errno. It may come before the
	 * client's first request is sent or read: cv_ctl_refusal_after. */
	CV_CTL_REFUSED = 12,
	/* cli -> daemon. Payload cv_ctl_attach, as a guest would send it:
	 * would that ATTACH be admitted now? Reply cv_ctl_attach_r with
	 * tenant_id and worker_pid 0 and the gpu and quota it would get, or
	 * ATTACH's refusal with its reason. Nothing is started or reserved:
	 * `cuvisor run` asks before it starts the program, to say why. */
	CV_CTL_ADMIT = 13,

	/* worker -> daemon, once, when the vGPU is ready or failed to start.
	 * Payload cv_ctl_ready; on success one fd: the region memfd. */
	CV_CTL_W_READY = 32,
	/* daemon -> worker. No payload. Reply cv_ctl_w_stats_r. */
	CV_CTL_W_STATS = 33,
	/* daemon -> worker. No payload. The worker exits (reply first). */
	CV_CTL_W_STOP = 34,
	/* daemon -> worker. Payload cv_ctl_tenant_op (tenant ignored). Reply
	 * cv_ctl_op_r when done, status 0 or -errno. */
	CV_CTL_W_SUSPEND = 35,
	CV_CTL_W_RESUME = 36,
	CV_CTL_W_EVICT = 37,
	/* daemon -> worker. Payload cv_ctl_ckpt, one fd (the image), and
	 * with CV_CKPT_NAME a second one (the directory to name it in).
	 * Reply cv_ctl_op_r. With CV_CKPT_STOP the worker then becomes a
	 * holder (state STOPPED): no GPU, only the guest's region and link;
	 * a named image has its name before anything is released. */
	CV_CTL_W_CHECKPOINT = 38,
	/* daemon -> holder. No payload. Reply with two fds, [0] the region
	 * memfd and [1] the worker's end of the link, for a restoring worker;
	 * the holder keeps its copies until W_STOP. */
	CV_CTL_W_HANDOVER = 39,
	/* worker -> daemon, first message on a connection it made to the
	 * daemon's socket after its daemon went away. Payload cv_ctl_hello;
	 * a holder of a move (CV_CKPT_KEEP) adds the image's fd. Reply
	 * cv_ctl_hello_r: the tenant id it goes by from now on. */
	CV_CTL_W_HELLO = 40,
	/* daemon -> worker. Payload cv_ctl_migrate (tenant ignored, gpu the
	 * destination's device ordinal) and one fd: the source's end of the
	 * migration stream. Reply cv_ctl_migrate_r and the report when the
	 * migration ended: status 0 means committed (the worker exits right
	 * after the reply), else the tenant runs on here. */
	CV_CTL_W_MIGRATE = 41,
	/* spare worker -> daemon, once: payload cv_ctl_ready, no fd. A
	 * spare (cuvisor-vgpu --spare) opened its GPU and waits for a
	 * tenant; a failure says why and the spare exits. */
	CV_CTL_W_SPARE = 42,
	/* daemon -> spare. Payload cv_ctl_w_assign and one fd: the
	 * destination's end of a migration stream. No reply: from then on
	 * the spare is that tenant's worker, as if started with
	 * --migrate-fd (W_READY when the migration is in). */
	CV_CTL_W_ASSIGN = 43,
};

#define CV_CKPT_STOP 0x1u    /* cv_ctl_ckpt.flags */
/* The image fd is an unnamed file (or one with a temporary name); once the
 * image is complete and synced, the worker links it as cv_ctl_ckpt.name in
 * the directory of the message's second fd, replacing what had that name.
 * So the image gets its name whoever of the CLI and the daemon dies. */
#define CV_CKPT_NAME 0x2u
/* With CV_CKPT_STOP, a move's image in memory: the holder keeps the fd
 * and hands it to a daemon that adopts it (with W_HELLO), so that a move
 * whose daemon died can still be finished or undone by a RESUME. */
#define CV_CKPT_KEEP 0x4u
#define CV_CTL_FILE_LEN 256  /* a file name (one path component), NUL */
#define CV_CKPT_LEVEL_MAX 19 /* zstd levels; 0: not compressed */

#define CV_CTL_NAME_LEN 64
#define CV_CTL_REASON_LEN 200 /* a refusal's reason, its NUL included */
#define CV_CTL_HOST_LEN 256

/* cv_ctl_migrate.flags */
#define CV_MIGRATE_COPY 0x1u    /* copy even on the same GPU */
#define CV_MIGRATE_INLINE 0x2u  /* bytes in the stream, no slot area */
/* Between hosts: the copy lanes carry zstd-compressed bytes where that
 * makes them smaller (docs/remote.md), both ways, to the end of the
 * remote vGPU (with --to) or of the migration (from a remote one). */
#define CV_MIGRATE_ZSTD 0x4u
/* cv_ctl_migrate.fault: injected by the source worker, for tests */
enum cv_migrate_fault {
	CV_MIGRATE_FAULT_NONE = 0,
	CV_MIGRATE_FAULT_KILL_DEST = 1, /* SIGKILL the destination worker */
	CV_MIGRATE_FAULT_CUT = 2,       /* shut the stream down */
	CV_MIGRATE_FAULT_CORRUPT = 3,   /* flip a bit of the next record */
	CV_MIGRATE_FAULT_MAX = CV_MIGRATE_FAULT_CORRUPT
};
/* cv_ctl_migrate.fault_round: at the stop-and-copy, whatever the round */
#define CV_MIGRATE_AT_STOP UINT32_MAX
#define CV_MIGRATE_DEFAULT_PAUSE_MS 30u
#define CV_MIGRATE_DEFAULT_ROUNDS 30u
#define CV_MIGRATE_MAX_ROUNDS 1000u
#define CV_MIGRATE_REPORT_MAX 32768u /* bytes of JSON in the reply */
#define CV_MIGRATE_MAX_RATE 1000000u /* MB/s */

struct cv_ctl_attach {
	uint32_t pid;       /* informational; the daemon uses SO_PEERCRED */
	int32_t gpu;        /* -1: the daemon chooses */
	uint64_t mem;       /* quota in bytes; 0: the daemon's default */
	uint32_t flags;
	uint32_t proto;     /* CV_PROTO_VERSION of the guest */
	char name[CV_CTL_NAME_LEN]; /* program name, NUL-terminated */
	/* HOST[:PORT] of a peer daemon whose GPU the vGPU is on
	 * (docs/remote.md), NUL-terminated; "" for a local GPU. */
	char host[CV_CTL_HOST_LEN];
};
_Static_assert(sizeof(struct cv_ctl_attach) == 88 + CV_CTL_HOST_LEN, "attach");

struct cv_ctl_migrate {
	uint64_t tenant;
	int32_t gpu;           /* -1: the tenant's own GPU */
	uint32_t flags;        /* CV_MIGRATE_COPY */
	uint32_t max_pause_ms; /* 0: CV_MIGRATE_DEFAULT_PAUSE_MS */
	uint32_t max_rounds;   /* 0: CV_MIGRATE_DEFAULT_ROUNDS */
	uint32_t fault;        /* enum cv_migrate_fault */
	uint32_t fault_round;  /* round it strikes in, or _AT_STOP */
	uint32_t max_rate_mbs; /* pre-copy cap, 10^6 bytes/s; 0: none */
	uint32_t pad;
	/* HOST[:PORT]: onto a GPU of that peer daemon (gpu is its index),
	 * the program staying here (docs/remote.md); "": a GPU of ours.
	 * NUL-terminated. */
	char host[CV_CTL_HOST_LEN];
};
_Static_assert(sizeof(struct cv_ctl_migrate) == 40 + CV_CTL_HOST_LEN,
	       "migrate");

struct cv_ctl_migrate_r {
	uint64_t tenant;
	int32_t gpu;           /* where it runs now */
	uint32_t rounds;       /* pre-copy rounds, the final one included */
	uint64_t bytes;        /* device bytes sent */
	uint64_t pause_ns;     /* source's suspend to destination running */
	uint64_t total_ns;
	uint32_t report_len;   /* bytes of JSON after this struct */
	uint32_t flags;        /* CV_MIGRATE_R_SHARED */
	char msg[200];         /* why it failed, NUL-terminated */
};
_Static_assert(sizeof(struct cv_ctl_migrate_r) == 248, "migrate_r");
/* The new worker maps the same memory: nothing was copied. */
#define CV_MIGRATE_R_SHARED 1u

struct cv_ctl_refused {
	char msg[CV_CTL_REASON_LEN]; /* why, NUL-terminated */
};
_Static_assert(sizeof(struct cv_ctl_refused) == 200, "refused");

struct cv_ctl_attach_r {
	uint64_t tenant_id;
	int32_t gpu;
	uint32_t worker_pid;
	uint64_t quota;
};
_Static_assert(sizeof(struct cv_ctl_attach_r) == 24, "attach_r");

struct cv_ctl_w_assign {
	uint64_t tenant;
	uint64_t mem;       /* quota, bytes, > 0 */
	uint8_t token[16];
	uint32_t guest_pid;
	uint32_t pad;
	char name[CV_CTL_NAME_LEN]; /* NUL-terminated */
};
_Static_assert(sizeof(struct cv_ctl_w_assign) == 104, "w_assign");

struct cv_ctl_ready {
	int32_t status;     /* 0 or -errno; on failure msg says why */
	uint32_t pad;
	char msg[256];
};
_Static_assert(sizeof(struct cv_ctl_ready) == 264, "ready");

struct cv_ctl_w_stats_r {
	uint64_t mem_used;  /* device bytes mapped */
	uint64_t quota;
	uint64_t host_pinned; /* heap bytes mapped */
	uint64_t commands;  /* commands executed */
	uint32_t state;     /* enum cv_vgpu_state */
	uint32_t pad;
	uint64_t op_done;   /* progress of a long operation, in bytes */
	uint64_t op_total;  /* 0: none running */
};
_Static_assert(sizeof(struct cv_ctl_w_stats_r) == 56, "w_stats_r");

struct cv_ctl_ckpt {
	uint64_t tenant;
	uint32_t flags;     /* CV_CKPT_STOP, CV_CKPT_NAME, CV_CKPT_KEEP */
	int32_t level;      /* 0..CV_CKPT_LEVEL_MAX */
	char name[CV_CTL_FILE_LEN]; /* CV_CKPT_NAME: the image's name, else
				       all zero */
};
_Static_assert(sizeof(struct cv_ctl_ckpt) == 272, "ckpt");

struct cv_ctl_restore {
	int32_t gpu;        /* -1: the GPU it was on */
	uint32_t flags;     /* 0 */
};
_Static_assert(sizeof(struct cv_ctl_restore) == 8, "restore");

struct cv_ctl_restore_r {
	uint64_t tenant;
	uint64_t bytes;     /* device memory restored */
	uint64_t ns;
	int32_t gpu;
	uint32_t pad;
	char msg[256];      /* why it failed, NUL-terminated */
};
_Static_assert(sizeof(struct cv_ctl_restore_r) == 288, "restore_r");

struct cv_ctl_hello {
	uint64_t tenant;
	uint32_t worker_pid;
	uint32_t guest_pid;
	int32_t gpu;         /* device ordinal */
	uint32_t state;      /* enum cv_vgpu_state */
	uint64_t quota;
	uint8_t token[16];
	char name[CV_CTL_NAME_LEN];
};
_Static_assert(sizeof(struct cv_ctl_hello) == 112, "hello");

struct cv_ctl_hello_r { uint64_t tenant; };

struct cv_ctl_tenant_op {
	uint64_t tenant;
	int32_t gpu;        /* RESUME: -1, or the GPU to resume on */
	uint32_t flags;     /* 0 */
};
_Static_assert(sizeof(struct cv_ctl_tenant_op) == 16, "tenant_op");

/* What an operation did: its state afterwards, bytes moved, time taken. */
struct cv_ctl_op_r {
	uint32_t state;     /* enum cv_vgpu_state */
	uint32_t pad;
	uint64_t bytes;     /* device bytes copied (evict, resume) */
	uint64_t ns;        /* time the worker spent */
};
_Static_assert(sizeof(struct cv_ctl_op_r) == 24, "op_r");

struct cv_ctl_tenant {
	uint64_t id;
	uint32_t pid;        /* guest process */
	uint32_t worker_pid;
	int32_t gpu;
	uint32_t state;      /* enum cv_vgpu_state */
	uint64_t mem_used;
	uint64_t quota;
	char name[CV_CTL_NAME_LEN];
	uint64_t op_done;    /* progress of a long operation, bytes */
	uint64_t op_total;   /* 0: none */
};
_Static_assert(sizeof(struct cv_ctl_tenant) == 120, "tenant");

struct cv_ctl_ps_r { uint32_t n; uint32_t pad; };

enum cv_ctl_remote_kind {
	CV_REMOTE_VGPU = 1,    /* our tenant; its vGPU is on peer's GPU */
	CV_REMOTE_SERVED = 2,  /* peer's tenant id; its vGPU on our gpu */
};

struct cv_ctl_remote {
	uint64_t id;
	uint32_t kind;         /* enum cv_ctl_remote_kind */
	int32_t gpu;           /* the GPU's index on the host that has it */
	uint32_t worker_pid;   /* ours */
	uint32_t pad;
	uint64_t quota;
	char peer[CV_CTL_HOST_LEN]; /* VGPU: HOST[:PORT] we reach; SERVED:
				     * the peer's name and address */
};
_Static_assert(sizeof(struct cv_ctl_remote) == 32 + CV_CTL_HOST_LEN, "remote");
#define CV_CTL_MAX_REMOTES 128

struct cv_ctl_remotes_r { uint32_t n; uint32_t pad; };
_Static_assert(sizeof(struct cv_ctl_ps_r) == 8, "ps_r");

struct cv_ctl_info_r {
	uint32_t pid;
	uint32_t ngpus;
	uint32_t backend;    /* enum cv_backend_kind */
	uint32_t ntenants;
	uint64_t default_quota; /* 0: each GPU's total memory */
};
_Static_assert(sizeof(struct cv_ctl_info_r) == 24, "info_r");

/* One GPU of the daemon's inventory, after cv_ctl_info_r. */
struct cv_ctl_gpu {
	int32_t index;       /* device ordinal the worker opens */
	uint32_t ntenants;
	uint64_t total_mem;
	uint64_t quota_sum;  /* sum of its tenants' quotas */
	char name[CV_CTL_NAME_LEN];
};
_Static_assert(sizeof(struct cv_ctl_gpu) == 88, "gpu");

/*
 * Sends one message with 0..CV_CTL_MAX_FDS fds (the caller keeps its
 * copies); 0 or -errno (-EMSGSIZE when the message exceeds CV_CTL_MAX,
 * -EAGAIN on a full non-blocking socket, -EPIPE when the peer is gone).
 * Never raises SIGPIPE.
 */
int cv_ctl_send(int sock, uint16_t type, int32_t status, const void *payload,
		uint32_t len, const int *fds, int nfds);

/*
 * Receives one message: the header into *hdr, the payload into buf (at
 * most bufsize bytes). fds/nfds may be NULL when no fds are expected;
 * otherwise *nfds is the capacity of fds on entry and the number of fds
 * received (all owned by the caller, O_CLOEXEC) on return. A message that
 * carries more fds than that, or a payload longer than bufsize, is
 * refused (-EBADMSG / -EMSGSIZE) and any fds it carried are closed.
 * Validates the header with cv_ctl_hdr_check. Returns the payload length
 * or -errno: -ECONNRESET on orderly shutdown, -ETIMEDOUT when nothing came
 * within timeout_ms (< 0 waits forever, 0 does not wait).
 */
int cv_ctl_recv(int sock, struct cv_ctl_hdr *hdr, void *buf, uint32_t bufsize,
		int *fds, int *nfds, int timeout_ms);

/*
 * Checks the header of a datagram of dgram_len bytes (header included):
 * magic, flags 0, status 0 or -errno, hdr.len matching the datagram, and
 * the size limit. Returns the payload length or -EBADMSG / -EMSGSIZE.
 * No I/O: the decoders and their fuzzers call it directly.
 */
int cv_ctl_hdr_check(const struct cv_ctl_hdr *hdr, size_t dgram_len);

/*
 * Checks a CHECKPOINT / W_CHECKPOINT payload that came with nfds fds:
 * known flags (CV_CKPT_KEEP only with STOP and without NAME, and only
 * from the daemon: keep_ok), a level in range, and with CV_CKPT_NAME two
 * fds and a name
 * that is one path component ("." and ".." refused, NUL-ended, nothing
 * after the NUL), else one fd and an all-zero name. 0 or -EINVAL with *why
 * set (a static string). No I/O.
 */
int cv_ctl_ckpt_check(const struct cv_ctl_ckpt *ck, int nfds, bool keep_ok,
		      const char **why);

/*
 * The default control socket path: $CUVISOR_SOCKET if set, else
 * /run/cuvisor/cuvisord.sock for root, else $XDG_RUNTIME_DIR/cuvisor/...,
 * else /tmp/cuvisor-UID/cuvisord.sock. Returns 0 or -ENAMETOOLONG.
 */
int cv_ctl_default_path(char *buf, size_t size);

/*
 * Whether a received message (header h, n payload bytes at p) is a
 * refusal with a reason: CV_CTL_REFUSED, or a reply of type `type` with
 * an error status and a cv_ctl_refused. Then its status (< 0), and why
 * gets the reason, printable and terminated; else 0 (why untouched).
 */
int cv_ctl_refusal(const struct cv_ctl_hdr *h, const void *p, int n,
		   uint16_t type, char *why, size_t size);

/*
 * After a request on a connection to the daemon failed with rc (what the
 * send or the receive returned): a daemon that refused the connection
 * sent CV_CTL_REFUSED and closed it, and the request may have met the
 * closed end (-EPIPE, -ECONNRESET) before the refusal was read. Reads
 * what is left (not waiting): the refusal's status with why filled in,
 * or rc.
 */
int cv_ctl_refusal_after(int fd, int rc, char *why, size_t size);

/* Connects a SOCK_SEQPACKET socket to path; fd (O_CLOEXEC) or -errno. */
int cv_ctl_connect(const char *path);

/*
 * Whom a client takes for its daemon: the one place where the guest
 * library, the CLI and a worker reconnecting to its daemon decide it.
 *
 * A daemon is trusted when it runs as our effective uid or as root, and
 * so is the directory that holds its socket (owned by one of them and
 * writable by no one else, since whoever can write it can put another
 * socket there; a symlinked directory must be ours or root's too). The
 * directory is looked at before connecting, the listening peer's
 * SO_PEERCRED after, which a socket planted by someone else cannot fake.
 *
 * One more uid is trusted only when the operator names both the socket
 * and the uid: `named` (the path came from --socket or CUVISOR_SOCKET,
 * not a default) and CUVISOR_DAEMON_UID=UID in the environment (a daemon
 * run by a service account, say). A default path never trusts another
 * user: under /tmp/cuvisor-UID/ anyone could have created it first.
 */
#define CV_CTL_UID_NONE 0xffffffffu
struct cv_ctl_trust {
	bool named;          /* in: the path was given explicitly */
	uint32_t owner;      /* out, on -EPERM: the uid we refused, or
				CV_CTL_UID_NONE */
	char why[320];       /* out, on any error: what happened, for a person */
};

/*
 * Connects to the daemon at path if it is trusted (see above). fd
 * (O_CLOEXEC) or -errno: -EPERM when refused (t->why says why; t->owner
 * is the untrusted uid, or CV_CTL_UID_NONE when the directory's mode is
 * the reason), -EINVAL for a malformed CUVISOR_DAEMON_UID, else
 * connect()'s error (-ENOENT, -ECONNREFUSED: no daemon there; also
 * -ENOENT when nothing is at path in an untrusted directory: nothing to
 * refuse). Prints nothing.
 */
int cv_ctl_connect_daemon(const char *path, struct cv_ctl_trust *t);

/*
 * The checks alone, for tests and for a caller that already holds the
 * fd: the socket's directory (by path) and the connected peer. extra is
 * the additional trusted uid or CV_CTL_UID_NONE. 0 or -EPERM (t->why);
 * cv_ctl_trust_dir also -errno of lstat/stat (-ENOENT: no directory).
 */
int cv_ctl_trust_dir(const char *path, uint32_t extra,
		     struct cv_ctl_trust *t);
int cv_ctl_trust_peer(int fd, const char *path, uint32_t extra,
		      struct cv_ctl_trust *t);

/*
 * SIZE arguments of the control tools: plain bytes or a K/M/G/T suffix
 * (powers of 1024, either case, optionally followed by "B" or "iB"), with
 * an optional decimal fraction ("1.5G"). 0 or -EINVAL / -ERANGE.
 */
int cv_ctl_parse_size(const char *s, uint64_t *out);

/* Formats bytes for humans ("0B", "512B", "1.5G"); returns buf. */
char *cv_ctl_fmt_size(uint64_t bytes, char *buf, size_t size);

#endif

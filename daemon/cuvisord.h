/* SPDX-License-Identifier: MIT */
/*
 * cuvisord internals. One thread, one poll() loop (main.c); clients
 * (client.c) and tenants (tenant.c) are plain objects owned by struct cv_d.
 * Objects are never freed while a loop iteration runs: they are marked
 * dead and swept at its end, so a pollfd entry never names a freed object.
 *
 * msg.c holds everything that reads peer input without doing I/O (message
 * decoding, admission, the probe output parser); the unit tests and the
 * fuzzer call it directly.
 */
#ifndef CV_CUVISORD_H
#define CV_CUVISORD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../core/ctl.h"
#include "../core/proto.h"

#define CV_D_MAX_CLIENTS 1024
#define CV_D_MAX_GPUS 64
#define CV_D_MAX_ALLOW 64
/* So that a PS reply (all tenants) fits in one message. */
#define CV_D_MAX_TENANTS 512
_Static_assert(sizeof(struct cv_ctl_hdr) + sizeof(struct cv_ctl_ps_r) +
		       CV_D_MAX_TENANTS * sizeof(struct cv_ctl_tenant) <=
		       CV_CTL_MAX, "ps reply fits");
_Static_assert(sizeof(struct cv_ctl_hdr) + sizeof(struct cv_ctl_info_r) +
		       CV_D_MAX_GPUS * sizeof(struct cv_ctl_gpu) <=
		       CV_CTL_MAX, "info reply fits");

/*
 * Limits of the control socket (cuvisord --help): per user (not root,
 * not our own uid) at most max_conns_user connections and
 * max_tenants_user tenants; the last CV_D_PRIV_CLIENTS connections and
 * CV_D_PRIV_TENANTS tenants are kept for root and our uid. A connection
 * with no request in progress that sends nothing for idle_timeout_s is
 * closed.
 */
#define CV_D_CONNS_PER_USER 64
#define CV_D_TENANTS_PER_USER 32
#define CV_D_IDLE_TIMEOUT_S 10
#define CV_D_PRIV_CLIENTS 64
#define CV_D_PRIV_TENANTS 16
_Static_assert(CV_D_CONNS_PER_USER <= CV_D_MAX_CLIENTS - CV_D_PRIV_CLIENTS,
	       "conns cap");
_Static_assert(CV_D_TENANTS_PER_USER <= CV_D_MAX_TENANTS - CV_D_PRIV_TENANTS,
	       "tenants cap");
/* Unauthenticated peer connections (daemon/peer.c): the handshake's
 * deadline, how many may be in their handshake at once (over that, the
 * oldest is dropped), and per source address (IPv6: per /64) by
 * default (--peer-per-addr). */
#define CV_D_PEER_HANDSHAKE_MS 2000
#define CV_D_PEER_PENDING 64
#define CV_D_PEER_PER_ADDR 16

#define CV_D_PS_TIMEOUT_MS 200
/* How long a worker may take to suspend or resume a tenant (--op-timeout);
 * eviction copies all of its device memory and gets 10 times that. */
#define CV_D_OP_TIMEOUT_S 60
#define CV_D_EVICT_FACTOR 10
#define CV_D_STOP_TIMEOUT_MS 2000
#define CV_D_START_TIMEOUT_S 60
#define CV_D_PROBE_TIMEOUT_S 60
/* Bytes of probe output we read at most. */
#define CV_D_PROBE_MAX 65536

/* ---- msg.c: decoding without I/O ---------------------------------- */

enum cv_d_peer { CV_D_PEER_CLIENT, CV_D_PEER_WORKER };

/* A started worker kept ready for a migration to this GPU (spare.c). */
struct cv_d_spare {
	pid_t pid;            /* 0: none */
	int ctl_fd;           /* -1: none */
	bool ready;           /* W_SPARE 0 seen */
	unsigned fails;       /* in a row: the retry delay doubles */
	uint64_t due;         /* start the next one at (ns), 0: now */
};

struct cv_d_gpu {
	struct cv_d_spare spare;
	int index;            /* device ordinal the worker opens */
	uint64_t total;       /* bytes */
	char name[CV_CTL_NAME_LEN];
	unsigned ntenants;    /* live tenants placed on it */
	uint64_t quota_sum;
};

/*
 * A validated message. type is the header's type (CV_CTL_REPLY kept), len
 * its payload length (an operation's error reply may carry no op_r).
 */
struct cv_d_msg {
	uint16_t type;
	int32_t status;
	uint32_t len;
	union {
		struct cv_ctl_attach attach;   /* name sanitised, NUL-ended */
		struct cv_ctl_ready ready;     /* msg sanitised, NUL-ended */
		struct cv_ctl_w_stats_r stats;
		struct cv_ctl_tenant_op op;    /* SUSPEND, RESUME, EVICT */
		struct cv_ctl_op_r op_r;       /* reply to W_SUSPEND... */
		struct cv_ctl_ckpt ckpt;       /* CHECKPOINT */
		struct cv_ctl_restore restore; /* RESTORE */
		struct cv_ctl_hello hello;     /* name sanitised, NUL-ended */
		struct cv_ctl_migrate migrate; /* MIGRATE */
		struct cv_ctl_migrate_r mig_r; /* W_MIGRATE reply, msg
						  sanitised, NUL-ended */
	} u;
	/* W_MIGRATE reply: the JSON report (inside the received payload,
	 * report_len bytes, checked) */
	const char *report;
};

/*
 * Validates one message from a peer of kind `from`: the header (as
 * cv_ctl_hdr_check does for a datagram of sizeof(*hdr) + len bytes), the
 * type allowed for that peer, the exact payload length, the number of fds
 * that came with it, strings and ranges. Fills *m. Returns 0 or -EBADMSG
 * with *why saying what was wrong (a static string).
 */
int cv_d_msg_decode(enum cv_d_peer from, const struct cv_ctl_hdr *hdr,
		    const void *payload, uint32_t len, int nfds,
		    struct cv_d_msg *m, const char **why);

/*
 * Admission of a decoded ATTACH (or ADMIT): the protocol version, flags,
 * the GPU (-1: of those the quota fits, the one with the fewest tenants)
 * and the quota (0: default_mem, or the GPU's total when default_mem is
 * 0). Unless overcommit, the GPU's quota_sum plus the quota must not pass
 * its total. 0 with *gpu (an index into gpus[]) and *quota set, or
 * -EPROTO, -EINVAL, -ENODEV, -ENOMEM (more than the GPU has), -ENOSPC
 * (more than its quotas leave) with why (size bytes, NUL-terminated)
 * saying so for people, with the sizes and what is left.
 */
int cv_d_admit(const struct cv_d_gpu *gpus, int ngpus,
	       const struct cv_ctl_attach *a, uint64_t default_mem,
	       bool overcommit, int *gpu, uint64_t *quota, char *why,
	       size_t size);

/*
 * Parses the worker's --probe output: lines "gpu <index> <total_bytes>
 * <name...>"; other lines are ignored. Indices must be distinct and in
 * [0, 65536), totals nonzero; at most max GPUs. Fills gpus[] sorted by
 * index and returns their number, or -EBADMSG with *why set.
 */
int cv_d_probe_parse(const char *out, size_t n, struct cv_d_gpu *gpus, int max,
		     const char **why);

/*
 * The control socket's caps (see CV_D_CONNS_PER_USER): may a new
 * connection of uid (privileged: root or ours) be accepted while nclients
 * connections are open, user_conns of them the uid's? 0, or -EDQUOT (the
 * user's cap) or -EAGAIN (full) with why filled in. No I/O.
 */
int cv_d_conn_admit(unsigned max_user, uid_t uid, bool privileged,
		    int nclients, int user_conns, char *why, size_t size);
/* The same for a new tenant of uid: ntenants records in all, user_tenants
 * of them the uid's live, visible tenants. */
int cv_d_tenant_admit(unsigned max_user, uid_t uid, bool privileged,
		      int ntenants, int user_tenants, char *why, size_t size);

/* Replaces bytes that are not printable ASCII with '?' (log hygiene). */
void cv_d_sanitize(char *s, size_t size);

/*
 * The fields of a decoded SUSPEND/RESUME/EVICT that do not depend on the
 * tenant: flags 0; gpu -1 for SUSPEND and EVICT, -1 or a GPU index in
 * [0, 65536) for RESUME. 0 or -EINVAL with *why set.
 */
int cv_d_op_check(uint16_t type, const struct cv_ctl_tenant_op *op,
		  const char **why);

/* The worker's message for a client's operation (CV_CTL_SUSPEND ->
 * CV_CTL_W_SUSPEND...) and back; 0 for any other type. */
uint16_t cv_d_op_to_worker(uint16_t type);
uint16_t cv_d_op_from_worker(uint16_t wtype);
/* "suspend", "resume", "evict" for either kind of type; "?" otherwise. */
const char *cv_d_op_name(uint16_t type);

/*
 * What an operation did, for the log: "suspended in 0.4 ms", "evicted,
 * 512.0 MiB in 23.1 ms (23.2 GB/s)", "resumed, 512.0 MiB restored in
 * 20.0 ms (26.8 GB/s)". wtype is the worker's message type. Returns buf.
 */
char *cv_d_op_describe(char *buf, size_t size, uint16_t wtype,
		       const struct cv_ctl_op_r *r);
/* Bytes for humans with one decimal and a binary unit: "512.0 MiB". */
char *cv_d_fmt_bytes(uint64_t bytes, char *buf, size_t size);
/* Nanoseconds as milliseconds: "23.1 ms", below 0.1 ms "0.034 ms". */
char *cv_d_fmt_ms(uint64_t ns, char *buf, size_t size);

/* ---- daemon state ------------------------------------------------- */

struct cv_d_tenant;

struct cv_d_client {
	int fd;
	uid_t uid;
	pid_t pid;
	bool dead;
	/* A request in progress; the client is not read until it is done. */
	struct cv_d_tenant *attaching; /* ATTACH waiting for READY */
	bool ps_pending;
	uint64_t ps_deadline;          /* cv_now_ns() */
	struct cv_d_tenant *op_tenant; /* SUSPEND/RESUME/EVICT waiting on it */
	struct cv_d_tenant *restoring; /* RESTORE waiting on it */
	bool restore_is_resume;        /* ...asked as RESUME --gpu */
	struct cv_d_tenant *migrating; /* MIGRATE waiting on it */
	bool shutdown_pending;         /* answered when the daemon exits */
	uint64_t idle_deadline;        /* closed then unless busy (ns) */
};

struct cv_d_tenant {
	uint64_t id;
	pid_t worker_pid;
	pid_t guest_pid;
	uid_t uid;
	int gpu;                 /* index into d->gpus */
	uint64_t quota;
	/* A remote vGPU (docs/remote.md): the peer daemon's HOST[:PORT] and
	 * its GPU index; "" for a local GPU, which gpu then indexes. */
	char remote[CV_CTL_HOST_LEN];
	int remote_gpu;
	bool remote_zstd;        /* its copy lanes compress (migrate --compress) */
	char name[CV_CTL_NAME_LEN];
	uint32_t state;          /* enum cv_vgpu_state */
	bool ready;              /* W_READY seen */
	bool dead;               /* worker reaped */
	int ctl_fd;              /* -1 once closed */
	int link_guest_fd;       /* held until handed to the guest */
	struct cv_d_client *client; /* whose ATTACH waits on us, or NULL */
	uint64_t start_deadline; /* cv_now_ns() */
	bool stats_inflight;
	struct cv_ctl_w_stats_r stats; /* last known */
	/* The operation sent to the worker and not answered yet (ops.c):
	 * CV_CTL_W_SUSPEND/RESUME/EVICT, 0 when none. It stays pending
	 * after its client's timeout, until the worker answers or goes. */
	uint16_t op;
	struct cv_d_client *op_client; /* who waits for it, or NULL */
	uint64_t op_start;             /* cv_now_ns() */
	uint64_t op_deadline;          /* 0 once the client had its timeout */
	uint8_t token[16];       /* names its checkpoint images */
	bool adopted;            /* not our child: ends with its ctl socket */
	/* Restore (adopt.c). On the STOPPED tenant: the request in
	 * progress. On the new worker's record: the tenant it replaces
	 * (hidden until it is ready). */
	struct cv_d_client *restore_client;
	int restore_fd;          /* the image, until handed to the worker */
	int restore_gpu;         /* index into d->gpus */
	uint64_t restore_start;
	struct cv_d_tenant *replaces;
	struct cv_d_tenant *replaced_by;
	bool hidden;             /* restoring, or replaced: not in ps */
	/* A move to another GPU (RESUME --gpu): checkpoint --stop into a
	 * memfd we keep (move_fd) until a restore from it succeeded. */
	int move_fd;
	bool moving;             /* its checkpoint is in flight */
	int move_gpu;            /* index into d->gpus */
	/* A live migration (migrate.c), on the source's record: who asked,
	 * the destination's record, and the source's answer once it came
	 * (the client hears when both the answer and the destination's
	 * W_READY are in, or on the first failure). */
	struct cv_d_client *mig_client;
	struct cv_d_tenant *mig_dest;  /* NULL once its record went */
	bool mig_pending;
	bool mig_answered;
	bool mig_dest_ok;        /* the destination said W_READY */
	bool mig_dest_failed;
	int mig_status;
	uint8_t *mig_reply;      /* cv_ctl_migrate_r + report */
	uint32_t mig_reply_len;
	uint64_t mig_start;
	/* on the destination's record */
	struct cv_d_tenant *mig_source;
};

struct cv_d_cfg {
	char socket[108];
	int backend;             /* CV_BACKEND_*, 0: auto */
	char driver[4096];       /* "" when none */
	char worker[4096];
	uint64_t default_mem;    /* 0: each GPU's total */
	bool private_mode;
	bool overcommit;         /* quotas may add up past a GPU's memory
				  * (always with private_mode) */
	uid_t allow[CV_D_MAX_ALLOW];
	int nallow;
	char log_level[16];      /* level name, passed to workers */
	char pidfile[4096];
	unsigned start_timeout_s;
	unsigned op_timeout_s;   /* suspend, resume; evict: 10 times it */
	int spares;              /* spare workers per GPU (0 or 1), -1: the
				  * default (1, 0 with --private) */
	char peer_listen[300];   /* [ADDR:]PORT, "" when none */
	char peer_key[4096];     /* the peer key's file, "" when none */
	unsigned remote_timeout_s; /* a silent peer of a remote vGPU */
	unsigned max_conns_user;   /* control connections per user */
	unsigned max_tenants_user; /* tenants per user */
	unsigned idle_timeout_s;   /* a connection that sends nothing */
	unsigned peer_per_addr;    /* peer handshakes per source address */
};

struct cv_d {
	struct cv_d_cfg cfg;
	int backend;             /* the one in use */
	struct cv_d_gpu gpus[CV_D_MAX_GPUS];
	int ngpus;
	int listen_fd;
	uint64_t accept_resume;  /* accept paused until (EMFILE) */
	int sig_fd;
	dev_t sock_dev;          /* our socket file, to remove only ours */
	ino_t sock_ino;
	dev_t pid_dev;           /* our pidfile, likewise */
	ino_t pid_ino;
	struct cv_d_client *clients[CV_D_MAX_CLIENTS];
	int nclients;
	struct cv_d_tenant *tenants[CV_D_MAX_TENANTS];
	int ntenants;
	uint64_t next_id;
	bool had_tenant;
	bool stopping;
	uint64_t stop_deadline;
};

/* main.c */
void cv_d_stop(struct cv_d *d, const char *why);
void cv_d_stop_listening(struct cv_d *d);
/* In a forked child before exec: default signal mask and dispositions. */
void cv_d_child_reset(void);

/* spare.c: a started worker kept ready per GPU for migrations */
void cv_d_spare_init(struct cv_d *d);
/* Starts the spares that are due (none while a migration is in flight). */
void cv_d_spare_tick(struct cv_d *d, uint64_t now);
/* When the next spare is due (ns), 0: none. */
uint64_t cv_d_spare_next(const struct cv_d *d);
/* Input or hang-up on the control socket of GPU slot g's spare. */
void cv_d_spare_input(struct cv_d *d, int g);
/* A reaped child: true when it was a spare (forgotten then). */
bool cv_d_spare_reaped(struct cv_d *d, pid_t pid, int st);
/* Makes slot g's ready spare nt's worker, the destination of the
 * migration stream migrate_fd (still the caller's to close): sets
 * nt->worker_pid and ctl_fd. -EAGAIN when there is none ready (the caller
 * starts a worker instead). */
int cv_d_spare_take(struct cv_d *d, int g, struct cv_d_tenant *nt,
		    int migrate_fd);
/* The daemon stops: spares are told to go. */
void cv_d_spare_stop(struct cv_d *d);

/* peer.c: the TCP link to other hosts' daemons (--peer-listen). 0 when
 * it listens or was not asked to, else -errno (said why). */
/* The vGPUs we serve to peers, at most max into out; their count. */
int cv_d_peer_served(struct cv_ctl_remote *out, int max);
/* A reaped child: true when it was a serving worker (forgotten then). */
bool cv_d_peer_reaped(pid_t pid, int st);
int cv_d_peer_start(struct cv_d *d);

/* sock.c */
int cv_d_listen(struct cv_d *d);
void cv_d_unlink_socket(struct cv_d *d);
int cv_d_write_pidfile(struct cv_d *d);
/* Removes the pidfile if it is still the one we wrote. */
void cv_d_unlink_pidfile(struct cv_d *d);

/* probe.c: fills d->gpus and d->backend from the worker's --probe. */
int cv_d_probe(struct cv_d *d);
const char *cv_d_backend_name(int backend);

/* client.c */
void cv_d_accept(struct cv_d *d);
void cv_d_client_input(struct cv_d *d, struct cv_d_client *c);
void cv_d_client_kill(struct cv_d *d, struct cv_d_client *c);
/* A refusal of type (ATTACH, ADMIT) with why (strerror when NULL or
 * empty) as its payload; nothing when c is NULL. */
void cv_d_attach_refuse(struct cv_d *d, struct cv_d_client *c,
			uint16_t type, int status, const char *why);
/* Replies to an ATTACH (status < 0: cv_d_attach_refuse's strerror). */
void cv_d_attach_reply(struct cv_d *d, struct cv_d_client *c, int status,
		       const struct cv_d_tenant *t, const int *fds, int nfds);
/* Answers PS requests whose stats are in or whose time is up. */
void cv_d_ps_poll(struct cv_d *d, uint64_t now);
/* Closes idle connections (idle_deadline past, nothing in progress). */
void cv_d_client_timeouts(struct cv_d *d, uint64_t now);
/* The earliest idle deadline, 0 if none. */
uint64_t cv_d_client_next_deadline(const struct cv_d *d);
/* A request of c's is in progress: it is not read, and not idle. */
bool cv_d_client_busy(const struct cv_d_client *c);
/* Sends a reply to c; on failure logs and drops the client. */
void cv_d_reply(struct cv_d *d, struct cv_d_client *c, uint16_t type,
		int status, const void *p, uint32_t len);
/* Our own uid and root: may see every tenant, stop the daemon and
 * suspend, resume or evict tenants. */
bool cv_d_privileged(uid_t uid);

/* ops.c: suspend, resume and evict */
/* A client's decoded SUSPEND/RESUME/EVICT: forwarded or refused. */
void cv_d_op_request(struct cv_d *d, struct cv_d_client *c, uint16_t type,
		     const struct cv_ctl_tenant_op *op);
/* A client's CHECKPOINT: forwarded with its fds (the image, and with
 * CV_CKPT_NAME its directory; still the caller's to close) or refused. */
void cv_d_checkpoint_request(struct cv_d *d, struct cv_d_client *c,
			     const struct cv_ctl_ckpt *ck, const int *fds,
			     int nfds);
/* The worker's reply to the pending operation; -EPROTO if there is none
 * of that type (the caller treats the worker as broken). */
int cv_d_op_reply(struct cv_d *d, struct cv_d_tenant *t,
		  const struct cv_d_msg *m);
/* Answers the pending operation's client with status (the worker went
 * away or cannot be told); the operation is over. */
void cv_d_op_abort(struct cv_d *d, struct cv_d_tenant *t, int status);
/* Answers -ETIMEDOUT to clients whose worker took too long. */
void cv_d_op_timeouts(struct cv_d *d, uint64_t now);
/* The earliest operation deadline, 0 if none. */
uint64_t cv_d_op_next_deadline(const struct cv_d *d);

/* adopt.c: workers that outlived their daemon, and restores */
/* A W_HELLO on a client connection: the client becomes the tenant's
 * control connection, or is refused and dropped. image_fd: a move's image
 * that a holder kept (ours from now on), or -1. */
void cv_d_adopt(struct cv_d *d, struct cv_d_client *c,
		const struct cv_ctl_hello *h, int image_fd);
/* A client's RESTORE with the image's fd (ours from now on). */
void cv_d_restore_request(struct cv_d *d, struct cv_d_client *c,
			  const struct cv_ctl_restore *r, int fd);
/* The holder's reply to W_HANDOVER (fds: region memfd, link). */
void cv_d_restore_handover(struct cv_d *d, struct cv_d_tenant *t, int status,
			   const int *fds, int nfds);
/* A restoring worker's W_READY, or its end before it (status < 0). */
void cv_d_restore_done(struct cv_d *d, struct cv_d_tenant *nt, int status,
		       const char *msg);
/* RESUME of t onto d->gpus[slot] through an image in memory (or from the
 * one a failed move left): 0 when under way, or -errno with why. */
int cv_d_move(struct cv_d *d, struct cv_d_tenant *t, struct cv_d_client *c,
	      int slot, char *why, size_t size);
/* The worker's answer to a move's checkpoint. */
void cv_d_move_checkpointed(struct cv_d *d, struct cv_d_tenant *t,
			    struct cv_d_client *c, int status);
/* Drops a pending restore of t (its holder went away, the daemon stops). */
void cv_d_restore_abort(struct cv_d *d, struct cv_d_tenant *t, int status,
			const char *msg);

void cv_d_migrate_request(struct cv_d *d, struct cv_d_client *c,
			  const struct cv_ctl_migrate *req);
/* The source answered W_MIGRATE (m: the decoded reply). */
void cv_d_migrate_answer(struct cv_d *d, struct cv_d_tenant *t,
			 const struct cv_d_msg *m);
/* The destination said W_READY (status 0) or failed or died. */
void cv_d_migrate_dest_done(struct cv_d *d, struct cv_d_tenant *nt,
			    int status, const char *msg);
/* The source's worker is gone or its connection broke. */
void cv_d_migrate_source_gone(struct cv_d *d, struct cv_d_tenant *t);
/* A record is freed: its peer forgets it, and a client still waiting
 * for its migration is answered (nobody else would). */
void cv_d_migrate_forget(struct cv_d *d, struct cv_d_tenant *t);
/* A client went away: forget it. */
void cv_d_migrate_forget_client(struct cv_d *d, struct cv_d_client *c);

/* tenant.c */
/* Extra fds and arguments of a worker: a restore's region and image. */
struct cv_d_spawn {
	int region_fd;           /* -1: a fresh vGPU */
	int link_fd;             /* with region_fd: the guest's link */
	int image_fd;
	int migrate_fd;          /* >= 0: a migration's destination */
};
/* In a forked child: fds[i] becomes fd 3 + i (n <= 8), then exec. Never
 * returns. */
void cv_d_worker_exec(const char *path, const char *const *argv,
		      const int *fds, int n);
int cv_d_tenant_spawn(struct cv_d *d, struct cv_d_tenant *t,
		      const struct cv_d_spawn *x);
/* Adds t to the daemon's table and its GPU's accounting. */
void cv_d_tenant_add(struct cv_d *d, struct cv_d_tenant *t);
/* A tenant record with no worker yet: fds -1, token random. */
struct cv_d_tenant *cv_d_tenant_new(void);
/* The live, visible tenant with this id, or NULL. */
struct cv_d_tenant *cv_d_tenant_by_id(struct cv_d *d, uint64_t id);
/* The d->gpus index of device ordinal index, or -1. */
int cv_d_gpu_slot(const struct cv_d *d, int index);
int cv_d_tenant_start(struct cv_d *d, struct cv_d_client *c, int gpu,
		      uint64_t quota, const struct cv_ctl_attach *a,
		      struct cv_d_tenant **out);
void cv_d_tenant_input(struct cv_d *d, struct cv_d_tenant *t);
/* The worker's control connection hung up or failed. */
void cv_d_tenant_hup(struct cv_d *d, struct cv_d_tenant *t);
void cv_d_tenant_timeouts(struct cv_d *d, uint64_t now);
void cv_d_tenant_ask_stats(struct cv_d *d, struct cv_d_tenant *t);
void cv_d_tenant_stop(struct cv_d *d, struct cv_d_tenant *t);
/* Closes the worker's control connection; a pending operation's client
 * gets -EIO (-ESHUTDOWN while the daemon stops). */
void cv_d_tenant_close_ctl(struct cv_d *d, struct cv_d_tenant *t);
void cv_d_reap(struct cv_d *d);
void cv_d_tenant_free(struct cv_d *d, struct cv_d_tenant *t);

#endif

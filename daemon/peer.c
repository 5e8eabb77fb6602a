/* SPDX-License-Identifier: MIT */
/*
 * The daemon's end of the peer link (--peer-listen, --peer-key;
 * core/peer.h, docs/remote.md): a thread accepts TCP connections and
 * gives each one to a thread of its own that runs the handshake and then
 * answers requests until the peer closes, stays idle for PEER_IDLE_MS or
 * sends anything wrong. Nothing from a peer is acted on before it proved
 * that it holds the key.
 *
 * Connections in their handshake are unauthenticated: anyone can open
 * them. They get CV_D_PEER_HANDSHAKE_MS to finish, and a slot each in a
 * table of CV_D_PEER_PENDING (the pending table); a new one from an
 * address that holds --peer-per-addr slots drops that
 * address's oldest, and when the table is full the oldest of all is
 * dropped (shut down; its thread ends). So idle connections cost a peer
 * at most a retry when they come faster than it completes a handshake,
 * never a refusal. Authenticated ones hold the key: at most PEER_AUTHED.
 *
 * The threads read only what does not change after start-up (the GPUs,
 * the backend, the configuration) and the tenant count (atomically); they
 * never touch the main loop's objects.
 */
#include "cuvisord.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/peer.h"
#include "../core/util.h"

#define PEER_AUTHED 32
#define PEER_IDLE_MS 30000

struct conn;

static struct {
	struct cv_d *d;
	int fd;
	uint8_t key[CV_PEER_KEY_LEN];
	char host[CV_PEER_HOST_LEN];
	int authed; /* atomic */
	/* The pending table; under lock, as is each conn's slot. */
	pthread_mutex_t lock;
	struct cv_peer_pending pend[CV_D_PEER_PENDING];
	struct conn *pend_conn[CV_D_PEER_PENDING];
} P = { .fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER };

/* What anyone who can reach the port can make us log as often as they
 * like: 5 lines per 10 s each (core/log.h). */
CV_RATELIMIT_STD(rl_handshake, "failed peer handshakes");
CV_RATELIMIT_STD(rl_dropped, "unauthenticated peer connections dropped");
CV_RATELIMIT_STD(rl_peer_bad, "bad requests from peers");

/* The vGPUs we serve (a worker each), for ps. */
#define SERVED_MAX CV_CTL_MAX_REMOTES
static struct {
	pthread_mutex_t lock;
	struct cv_ctl_remote e[SERVED_MAX];
	int n;
} S = { .lock = PTHREAD_MUTEX_INITIALIZER };

struct conn {
	int fd;
	int slot;                          /* in the pending table, -1: none */
	uint8_t session[CV_PEER_KEY_LEN]; /* cv_peer_session_key */
	char addr[INET6_ADDRSTRLEN + 8];   /* host:port */
};

static void fill_info(struct cv_peer_info *in)
{
	const struct cv_d *d = P.d;
	int i;

	memset(in, 0, sizeof(*in));
	in->version = CV_PEER_VERSION;
	in->backend = (uint32_t)d->backend;
	in->ngpus = (uint32_t)CV_MIN(d->ngpus, CV_PEER_MAX_GPUS);
	in->ntenants = (uint32_t)__atomic_load_n(&d->ntenants,
						 __ATOMIC_RELAXED);
	memcpy(in->host, P.host, sizeof(in->host));
	for (i = 0; i < (int)in->ngpus; i++) {
		in->gpu[i].total = d->gpus[i].total;
		snprintf(in->gpu[i].name, sizeof(in->gpu[i].name), "%s",
			 d->gpus[i].name);
	}
}

/*
 * A vGPU for the peer: a worker that serves it on this connection
 * (worker/remote_serve.c). The answer goes before the worker starts, so
 * the worker's READY comes after it. 1: the connection is the worker's
 * now; 0: answered no; -errno: the connection is broken.
 */
static int give_vgpu(struct conn *c, const struct cv_peer_hello *them,
		     uint32_t len)
{
	const struct cv_d *d = P.d;
	struct cv_peer_vgpu vg;
	struct cv_peer_rsp rs = { 0, 0 };
	uint8_t raw[sizeof(vg)];
	const char *why, *argv[32];
	char gpu[16], mem[24], tmo[16], tenant[24], peer[CV_PEER_HOST_LEN + 80];
	uint64_t dl = cv_now_ns() + CV_PEER_TIMEOUT_MS * 1000000ull;
	int slot, n = 0, rc, kp[2], fds[2];
	pid_t pid;

	if (len != sizeof(raw))
		return -EBADMSG;
	rc = cv_peer_read(c->fd, raw, sizeof(raw), dl);
	if (rc)
		return rc;
	if (cv_peer_vgpu_check(raw, sizeof(raw), &vg, &why)) {
		cv_warn_rl(&rl_peer_bad, "peer %s (\"%s\"): %s", c->addr,
			   them->host, why);
		return -EBADMSG;
	}
	slot = cv_d_gpu_slot(d, (int)vg.gpu);
	if (slot < 0)
		rs.status = -ENODEV;
	else if (vg.quota > d->gpus[slot].total)
		vg.quota = d->gpus[slot].total; /* "the GPU's" */
	if (rs.status) {
		cv_warn("peer %s (\"%s\") asked for a vGPU on gpu %u: %s",
			c->addr, them->host, vg.gpu, strerror(-rs.status));
		rc = cv_peer_write(c->fd, &rs, sizeof(rs), dl);
		return rc ? rc : 0;
	}
	rc = cv_peer_write(c->fd, &rs, sizeof(rs), dl);
	if (rc)
		return rc;
	snprintf(gpu, sizeof(gpu), "%u", vg.gpu);
	snprintf(mem, sizeof(mem), "%llu", (unsigned long long)vg.quota);
	snprintf(tmo, sizeof(tmo), "%u", vg.timeout_ms);
	snprintf(tenant, sizeof(tenant), "%llu", (unsigned long long)vg.tenant);
	snprintf(peer, sizeof(peer), "%s (%s)", them->host, c->addr);
	argv[n++] = d->cfg.worker;
	argv[n++] = "--serve-fd"; argv[n++] = "3";
	argv[n++] = "--session-fd"; argv[n++] = "4";
	argv[n++] = "--tenant"; argv[n++] = tenant;
	argv[n++] = "--gpu"; argv[n++] = gpu;
	argv[n++] = "--mem"; argv[n++] = mem;
	argv[n++] = "--backend"; argv[n++] = cv_d_backend_name(d->backend);
	if (d->cfg.driver[0]) {
		argv[n++] = "--driver";
		argv[n++] = d->cfg.driver;
	}
	argv[n++] = "--remote-timeout"; argv[n++] = tmo;
	argv[n++] = "--name"; argv[n++] = peer;
	argv[n++] = "--log"; argv[n++] = d->cfg.log_level;
	argv[n] = NULL;
	/* The session key reaches the worker through a pipe, never its
	 * command line; the pipe holds it until the worker reads it. */
	if (pipe2(kp, O_CLOEXEC))
		return -errno;
	if (write(kp[1], c->session, sizeof(c->session)) !=
	    (ssize_t)sizeof(c->session)) {
		close(kp[0]);
		close(kp[1]);
		return -EIO;
	}
	close(kp[1]);
	fds[0] = c->fd;
	fds[1] = kp[0];
	pid = fork();
	if (pid == 0)
		cv_d_worker_exec(d->cfg.worker, argv, fds, 2);
	close(kp[0]);
	if (pid < 0) {
		cv_err("peer %s: cannot start a worker: %s", c->addr,
		       strerror(errno));
		return -errno;
	}
	cv_info("peer %s (\"%s\"): serving its tenant %llu a vGPU on gpu %u "
		"(worker pid %d, quota %llu bytes)", c->addr, them->host,
		(unsigned long long)vg.tenant, vg.gpu, (int)pid,
		(unsigned long long)vg.quota);
	pthread_mutex_lock(&S.lock);
	if (S.n < SERVED_MAX) {
		struct cv_ctl_remote *e = &S.e[S.n++];

		memset(e, 0, sizeof(*e));
		e->id = vg.tenant;
		e->kind = CV_REMOTE_SERVED;
		e->gpu = (int32_t)vg.gpu;
		e->worker_pid = (uint32_t)pid;
		e->quota = vg.quota;
		snprintf(e->peer, sizeof(e->peer), "%s", peer);
	}
	pthread_mutex_unlock(&S.lock);
	return 1;
}

/* Answers requests until the peer goes, idles or errs. */
static void serve(struct conn *c, const struct cv_peer_hello *them)
{
	struct cv_peer_req rq;
	struct cv_peer_rsp rs;
	struct cv_peer_info in;
	int rc;

	for (;;) {
		rc = cv_peer_read(c->fd, &rq, sizeof(rq),
				  cv_now_ns() + PEER_IDLE_MS * 1000000ull);
		if (rc)
			return; /* gone, idle: nothing to say */
		if (rq.type == CV_PEER_VGPU) {
			rc = give_vgpu(c, them, rq.len);
			if (rc)
				return; /* the worker's, or broken */
			continue;
		}
		if (rq.type != CV_PEER_INFO || rq.len) {
			cv_warn_rl(&rl_peer_bad, "peer %s (\"%s\"): unknown "
				   "request %u (%u bytes); closing", c->addr,
				   them->host, rq.type, rq.len);
			rs = (struct cv_peer_rsp){ -EBADMSG, 0 };
			cv_peer_write(c->fd, &rs, sizeof(rs),
				      cv_now_ns() + 1000000000ull);
			return;
		}
		fill_info(&in);
		rs = (struct cv_peer_rsp){ 0, sizeof(in) };
		rc = cv_peer_write(c->fd, &rs, sizeof(rs),
				   cv_now_ns() + CV_PEER_TIMEOUT_MS * 1000000ull);
		if (!rc)
			rc = cv_peer_write(c->fd, &in, sizeof(in),
					   cv_now_ns() +
						   CV_PEER_TIMEOUT_MS * 1000000ull);
		if (rc)
			return;
	}
}

/* c leaves the pending table (authenticated, or its thread ends); false
 * when it was dropped from it meanwhile. */
static bool pending_leave(struct conn *c)
{
	bool was;

	pthread_mutex_lock(&P.lock);
	was = c->slot >= 0;
	if (was) {
		P.pend[c->slot].used = false;
		P.pend_conn[c->slot] = NULL;
		c->slot = -1;
	}
	pthread_mutex_unlock(&P.lock);
	return was;
}

/* The handshake, within CV_D_PEER_HANDSHAKE_MS; 0 once authenticated and
 * counted, else -errno (logged). */
static int authenticate(struct conn *c, struct cv_peer_hello *them)
{
	char why[160];
	int rc;

	rc = cv_peer_handshake_s(c->fd, P.key, CV_PEER_SERVER, P.host,
				 CV_D_PEER_HANDSHAKE_MS, them, why, sizeof(why),
				 c->session);
	if (!pending_leave(c) && !rc) {
		rc = -ECONNABORTED;
		snprintf(why, sizeof(why), "dropped from the pending table");
	}
	if (!rc && __atomic_add_fetch(&P.authed, 1, __ATOMIC_RELAXED) >
			   PEER_AUTHED) {
		__atomic_fetch_sub(&P.authed, 1, __ATOMIC_RELAXED);
		rc = -EAGAIN;
		snprintf(why, sizeof(why), "%d authenticated peers already",
			 PEER_AUTHED);
	}
	if (rc)
		cv_warn_rl(&rl_handshake, "peer %s refused: %s", c->addr, why);
	return rc;
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct cv_peer_hello them;

	if (authenticate(c, &them) == 0) {
		cv_info("peer %s (\"%s\") authenticated", c->addr, them.host);
		serve(c, &them);
		__atomic_fetch_sub(&P.authed, 1, __ATOMIC_RELAXED);
	}
	pending_leave(c);
	close(c->fd);
	memset(c->session, 0, sizeof(c->session));
	free(c);
	return NULL;
}

/*
 * Gives c (from sa) a slot in the pending table, dropping the connection
 * whose slot it takes, if any: shut down (its thread sees the end and
 * closes it), never closed here, so that its fd stays its own.
 */
static void pending_enter(struct conn *c, const struct sockaddr *sa,
			  socklen_t sl)
{
	uint8_t key[16];
	struct conn *old;
	int slot, evict;

	if (cv_peer_addr_key(sa, sl, key))
		memset(key, 0, sizeof(key));
	pthread_mutex_lock(&P.lock);
	slot = cv_peer_pending_admit(P.pend, CV_D_PEER_PENDING,
				     (int)P.d->cfg.peer_per_addr, key, &evict);
	if (evict >= 0) {
		old = P.pend_conn[evict];
		cv_info_rl(&rl_dropped, "peer %s: dropped, still in its "
			   "handshake after %.1f s, to make room for %s",
			   old->addr, (double)(cv_now_ns() -
					       P.pend[evict].since) / 1e9,
			   c->addr);
		shutdown(old->fd, SHUT_RDWR);
		old->slot = -1;
	}
	memcpy(P.pend[slot].addr, key, sizeof(key));
	P.pend[slot].since = cv_now_ns();
	P.pend[slot].used = true;
	P.pend_conn[slot] = c;
	c->slot = slot;
	pthread_mutex_unlock(&P.lock);
}

/* A new connection: its own thread, or closed. */
static void take_conn(int fd, const struct sockaddr *sa, socklen_t sl)
{
	char port[NI_MAXSERV], host[INET6_ADDRSTRLEN];
	struct conn *c;
	pthread_t th;
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->fd = fd;
	c->slot = -1;
	if (getnameinfo(sa, sl, host, sizeof(host), port, sizeof(port),
			NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		snprintf(c->addr, sizeof(c->addr), "%.*s:%.6s",
			 (int)INET6_ADDRSTRLEN, host, port);
	pending_enter(c, sa, sl);
	if (pthread_create(&th, NULL, conn_main, c)) {
		pending_leave(c);
		close(fd);
		free(c);
		return;
	}
	pthread_detach(th);
}

/* Accepts; between connections, logs the rate-limited counts due. */
static void *accept_main(void *arg)
{
	struct pollfd pf = { .fd = P.fd, .events = POLLIN };
	struct sockaddr_storage sa;
	uint64_t due, now;
	socklen_t sl;
	int fd;

	for (;;) {
		now = cv_now_ns();
		due = cv_log_rl_tick(now);
		if (poll(&pf, 1, due ? (int)CV_MIN((due - now) / 1000000 + 1,
						   60000ull) : -1) <= 0)
			continue;
		sl = sizeof(sa);
		fd = accept4(P.fd, (struct sockaddr *)&sa, &sl, SOCK_CLOEXEC);
		if (fd >= 0) {
			take_conn(fd, (struct sockaddr *)&sa, sl);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
			continue;
		if (errno == EMFILE || errno == ENFILE ||
		    errno == ENOBUFS || errno == ENOMEM) {
			usleep(100000);
			continue;
		}
		cv_err("peer listener: accept: %s", strerror(errno));
		return NULL;
	}
	return NULL;
}

/* [ADDR:]PORT (ADDR may be [V6]) into a bound, listening socket. */
static int listen_on(const char *spec)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE }, *res, *a;
	char host[300], port[300];
	int fd = -1, one = 1, r;

	if (cv_peer_addr_split(spec, true, host, sizeof(host), port,
			       sizeof(port)) || !port[0]) {
		cv_err("--peer-listen %s: not [ADDR:]PORT", spec);
		return -EINVAL;
	}
	r = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (r) {
		cv_err("--peer-listen %s: %s", spec, gai_strerror(r));
		return -EINVAL;
	}
	for (a = res; a && fd < 0; a = a->ai_next) {
		/* Non-blocking: poll said readable, but the connection
		 * may be gone by the accept. */
		fd = socket(a->ai_family,
			    a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			    a->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, a->ai_addr, a->ai_addrlen) ||
		    listen(fd, SOMAXCONN)) {
			r = errno;
			close(fd);
			fd = -1;
			errno = r;
		}
	}
	freeaddrinfo(res);
	if (fd < 0) {
		cv_err("--peer-listen %s: %s", spec, strerror(errno));
		return -errno;
	}
	return fd;
}

int cv_d_peer_served(struct cv_ctl_remote *out, int max)
{
	int n;

	pthread_mutex_lock(&S.lock);
	n = CV_MIN(S.n, max);
	memcpy(out, S.e, (size_t)n * sizeof(*out));
	pthread_mutex_unlock(&S.lock);
	return n;
}

bool cv_d_peer_reaped(pid_t pid, int st)
{
	bool found;
	int i;

	pthread_mutex_lock(&S.lock);
	for (i = 0; i < S.n && S.e[i].worker_pid != (uint32_t)pid; i++)
		;
	found = i < S.n;
	if (found) {
		cv_info("the vGPU served to %s (its tenant %llu) ended: worker "
			"pid %d %s %d", S.e[i].peer,
			(unsigned long long)S.e[i].id, (int)pid,
			WIFSIGNALED(st) ? "killed by signal" : "exited with",
			WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
		S.e[i] = S.e[--S.n];
	}
	pthread_mutex_unlock(&S.lock);
	return found;
}

int cv_d_peer_start(struct cv_d *d)
{
	struct sockaddr_storage sa;
	socklen_t sl;
	pthread_t th;
	char why[256], addr[INET6_ADDRSTRLEN] = "", port[NI_MAXSERV];
	int rc;

	if (!d->cfg.peer_listen[0])
		return 0;
	if (!d->cfg.peer_key[0]) {
		cv_err("--peer-listen needs --peer-key FILE");
		return -EINVAL;
	}
	rc = cv_peer_key_load(d->cfg.peer_key, P.key, why, sizeof(why));
	if (rc) {
		cv_err("--peer-key %s", why);
		return rc;
	}
	P.d = d;
	if (gethostname(P.host, sizeof(P.host) - 1))
		snprintf(P.host, sizeof(P.host), "?");
	P.fd = listen_on(d->cfg.peer_listen);
	if (P.fd < 0)
		return P.fd;
	if (pthread_create(&th, NULL, accept_main, NULL)) {
		close(P.fd);
		P.fd = -1;
		return -EAGAIN;
	}
	pthread_detach(th);
	sl = sizeof(sa);
	if (getsockname(P.fd, (struct sockaddr *)&sa, &sl) ||
	    getnameinfo((struct sockaddr *)&sa, sl, addr, sizeof(addr), port,
			sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV))
		snprintf(port, sizeof(port), "?");
	cv_info("peer link: listening on %s (port %s) as \"%s\"",
		d->cfg.peer_listen, port, P.host);
	return 0;
}

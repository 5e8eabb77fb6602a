/* SPDX-License-Identifier: MIT */
/*
 * `cuvisor peer HOST[:PORT] --key FILE`: connects to another host's
 * daemon (its --peer-listen port), proves that both hold the key
 * (core/peer.h: challenge and response, no secret on the wire) and
 * prints what the peer says of itself. Every byte from the peer is
 * checked before it is printed.
 */
#include "cli.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/peer.h"
#include "../core/util.h"

struct peer_ctx {
	const char *key;
	int timeout_ms;
};

static int set_key(void *ctx, const char *v)
{
	((struct peer_ctx *)ctx)->key = v;
	return 0;
}

static int set_timeout(void *ctx, const char *v)
{
	char *end;
	long ms = strtol(v, &end, 10);

	if (*v && !*end && ms >= 1 && ms <= 600000) {
		((struct peer_ctx *)ctx)->timeout_ms = (int)ms;
		return 0;
	}
	fprintf(stderr, "cuvisor peer: --timeout: '%s' is not 1..600000 ms\n",
		v);
	return -EINVAL;
}

static const struct cv_cli_opt peer_opts[] = {
	{ "--key", "FILE", set_key,
	  "the shared key: 64 hex digits in a file only we may read (the "
	  "same file the peer's cuvisord was given with --peer-key)" },
	{ "--timeout", "MS", set_timeout,
	  "give up after MS milliseconds (default 5000)" },
};

/* HOST[:PORT] or [V6]:PORT into host and port (the default port when
 * none); 0 or -EINVAL. */
static int split(const char *arg, char *host, size_t hsize, char *port,
		 size_t psize)
{
	if (cv_peer_addr_split(arg, false, host, hsize, port, psize) ||
	    !host[0])
		return -EINVAL;
	if (!port[0])
		snprintf(port, psize, "%d", CV_PEER_DEFAULT_PORT);
	return 0;
}

/* A connected TCP socket to host:port, or -1 (printed). */
static int dial(const char *host, const char *port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *a;
	int fd = -1, r;

	r = getaddrinfo(host, port, &hints, &res);
	if (r) {
		fprintf(stderr, "cuvisor peer: %s:%s: %s\n", host, port,
			gai_strerror(r));
		return -1;
	}
	for (a = res; a && fd < 0; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC,
			    a->ai_protocol);
		if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen)) {
			r = errno;
			close(fd);
			fd = -1;
			errno = r;
		}
	}
	if (fd < 0)
		fprintf(stderr, "cuvisor peer: %s:%s: %s\n", host, port,
			strerror(errno));
	else /* the handshake is small messages both ways */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 },
			   sizeof(int));
	freeaddrinfo(res);
	return fd;
}

static void print_info(const char *arg, const struct cv_peer_info *in,
		       double ms)
{
	char size[32];
	uint32_t i;

	printf("peer %s (\"%s\"): authenticated in %.1f ms; backend %s, %u "
	       "GPU(s), %u tenant(s)\n", arg, in->host, ms,
	       in->backend == 1 ? "cuda" : in->backend == 2 ? "host" : "?",
	       in->ngpus, in->ntenants);
	for (i = 0; i < in->ngpus; i++)
		printf("  gpu %u: %s, %s\n", i, in->gpu[i].name,
		       cv_ctl_fmt_size(in->gpu[i].total, size, sizeof(size)));
}

static int run_peer(void *ctx, int argc, char **argv)
{
	struct peer_ctx *o = ctx;
	struct cv_peer_req rq = { CV_PEER_INFO, 0 };
	struct cv_peer_hello them;
	struct cv_peer_rsp rs;
	struct cv_peer_info in;
	uint8_t key[CV_PEER_KEY_LEN], buf[sizeof(in)];
	char host[256], port[32], why[256], me[CV_PEER_HOST_LEN] = "";
	const char *bad = "";
	uint64_t t0, deadline;
	int fd, rc;

	if (argc < 2 || argv[1][0] == '-') {
		fprintf(stderr, "cuvisor peer: which host? (HOST[:PORT])\n");
		return CV_CLI_EXIT_USAGE;
	}
	/* Options may follow the host. */
	rc = cv_cli_parse(&cv_cli_cmd_peer, ctx, argc - 1, argv + 1, false);
	if (rc <= 0)
		return rc == 0 ? CV_CLI_EXIT_OK : CV_CLI_EXIT_USAGE;
	if (rc != argc - 1 || !o->key) {
		fprintf(stderr, "cuvisor peer: usage: cuvisor peer HOST[:PORT] "
			"--key FILE\n");
		return CV_CLI_EXIT_USAGE;
	}
	if (!o->timeout_ms)
		o->timeout_ms = CV_PEER_TIMEOUT_MS;
	if (split(argv[1], host, sizeof(host), port, sizeof(port))) {
		fprintf(stderr, "cuvisor peer: '%s' is not HOST[:PORT]\n",
			argv[1]);
		return CV_CLI_EXIT_USAGE;
	}
	if (cv_peer_key_load(o->key, key, why, sizeof(why))) {
		fprintf(stderr, "cuvisor peer: --key %s\n", why);
		return CV_CLI_EXIT_ERR;
	}
	fd = dial(host, port);
	if (fd < 0)
		return CV_CLI_EXIT_ERR;
	gethostname(me, sizeof(me) - 1);
	t0 = cv_now_ns();
	deadline = t0 + (uint64_t)o->timeout_ms * 1000000ull;
	rc = cv_peer_handshake(fd, key, CV_PEER_CLIENT, me, o->timeout_ms,
			       &them, why, sizeof(why));
	memset(key, 0, sizeof(key));
	if (!rc) {
		rc = cv_peer_write(fd, &rq, sizeof(rq), deadline);
		if (!rc)
			rc = cv_peer_read(fd, &rs, sizeof(rs), deadline);
		if (!rc && (rs.status || rs.len != sizeof(in)))
			rc = rs.status ? rs.status : -EBADMSG;
		if (!rc)
			rc = cv_peer_read(fd, buf, sizeof(buf), deadline);
		if (!rc)
			rc = cv_peer_info_check(buf, sizeof(buf), &in, &bad);
		snprintf(why, sizeof(why), "its INFO: %s",
			 rc == -EBADMSG && *bad ? bad : strerror(-rc));
	}
	close(fd);
	if (rc) {
		fprintf(stderr, "cuvisor peer: %s: %s\n", argv[1], why);
		return CV_CLI_EXIT_ERR;
	}
	print_info(argv[1], &in, (cv_now_ns() - t0) / 1e6);
	return CV_CLI_EXIT_OK;
}

const struct cv_cli_cmd cv_cli_cmd_peer = {
	.name = "peer",
	.args = "HOST[:PORT]",
	.summary = "check the link to another host's daemon",
	.details = "Connects to the daemon of HOST (started with --peer-listen; "
		   "port 7430 by default), proves that both hold the key and "
		   "prints the peer's GPUs and tenants. Exit status 1 when the "
		   "peer cannot be reached or does not hold the key.",
	.opts = peer_opts, .nopts = 2, .run = run_peer,
	.ctx_size = sizeof(struct peer_ctx),
	.stop_at_arg = true,
};

/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the daemon's input decoding: everything cuvisord
 * reads from a peer goes through one of these, so none of them may crash,
 * hang or read out of bounds, whatever the bytes.
 *
 * The first input byte picks the target (its low two bits):
 *   0  a datagram from a client: cv_ctl_hdr_check + cv_d_msg_decode
 *      (+ cv_d_admit for a valid ATTACH or ADMIT); bits 2-4 are the fd
 *      count
 *   1  the same from a worker
 *      (0 or 1 with bit 7 set: the datagram goes through a real socket
 *      into cv_ctl_recv instead)
 *   2  the worker's --probe output: cv_d_probe_parse
 *   3  a SIZE argument: cv_ctl_parse_size, cv_ctl_fmt_size
 *
 *   make fuzz && build/fuzz/fuzz_ctl -max_total_time=60
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/ctl.h"
#include "../daemon/cuvisord.h"

static void fuzz_msg(enum cv_d_peer from, unsigned nfds, const uint8_t *p,
		     size_t n)
{
	static const struct cv_d_gpu gpus[2] = {
		{ .index = 0, .total = 16ull << 30, .ntenants = 1,
		  .quota_sum = 10ull << 30 },
		{ .index = 3, .total = 80ull << 30 },
	};
	char why_buf[CV_CTL_REASON_LEN];
	struct cv_ctl_hdr h;
	struct cv_d_msg m;
	const char *why = NULL;
	uint64_t quota;
	int r, gpu;

	if (n < sizeof(h) || n > CV_CTL_MAX)
		return;
	memcpy(&h, p, sizeof(h));
	r = cv_ctl_hdr_check(&h, n);
	if (r >= 0 && (size_t)r != n - sizeof(h))
		abort();
	/* The decoder must re-check the header on its own. */
	r = cv_d_msg_decode(from, &h, n > sizeof(h) ? p + sizeof(h) : NULL,
			    (uint32_t)(n - sizeof(h)), (int)nfds, &m, &why);
	if (r < 0 && (r != -EBADMSG || !why))
		abort();
	if (r == 0 && (m.type == CV_CTL_ATTACH || m.type == CV_CTL_ADMIT)) {
		if (!memchr(m.u.attach.name, 0, sizeof(m.u.attach.name)))
			abort();
		why_buf[0] = 1;
		r = cv_d_admit(gpus, 2, &m.u.attach, (uint64_t)p[0] << 30,
			       p[1] & 1, &gpu, &quota, why_buf,
			       sizeof(why_buf));
		if (r == 0 && (gpu < 0 || gpu > 1 || quota > gpus[gpu].total))
			abort();
		if (r < 0 && !memchr(why_buf, 0, sizeof(why_buf)))
			abort();
	}
}

static void fuzz_probe(const uint8_t *p, size_t n)
{
	struct cv_d_gpu g[CV_D_MAX_GPUS];
	const char *why = NULL;
	int r, i;

	r = cv_d_probe_parse((const char *)p, n, g, CV_D_MAX_GPUS, &why);
	if (r < 0 && !why)
		abort();
	for (i = 0; i < r; i++)
		if (!memchr(g[i].name, 0, sizeof(g[i].name)) || !g[i].total ||
		    (i && g[i].index <= g[i - 1].index))
			abort();
}

static void fuzz_size(const uint8_t *p, size_t n)
{
	char s[64], out[32];
	uint64_t v;

	n = n < sizeof(s) - 1 ? n : sizeof(s) - 1;
	memcpy(s, p, n);
	s[n] = 0;
	if (cv_ctl_parse_size(s, &v) == 0)
		cv_ctl_fmt_size(v, out, sizeof(out));
}

static void fuzz_recv(const uint8_t *p, size_t n)
{
	static int sv[2] = { -1, -1 };
	static uint8_t buf[CV_CTL_MAX];
	struct cv_ctl_hdr h;
	int fds[CV_CTL_MAX_FDS], nfds = CV_CTL_MAX_FDS, r, i;

	if (sv[0] < 0 &&
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	if (n == 0 || n > 2 * CV_CTL_MAX)
		return;
	if (send(sv[0], p, n, MSG_DONTWAIT) != (ssize_t)n)
		return;
	r = cv_ctl_recv(sv[1], &h, buf, sizeof(buf), fds, &nfds, 0);
	if (r >= 0 && (h.magic != CV_CTL_MAGIC || h.len != (uint32_t)r ||
		       (size_t)r + sizeof(h) != n))
		abort();
	for (i = 0; r >= 0 && i < nfds; i++)
		close(fds[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t sel;

	if (size < 1)
		return 0;
	sel = data[0];
	data++;
	size--;
	switch (sel & 3) {
	case 0:
	case 1:
		if (sel & 0x80)
			fuzz_recv(data, size);
		else
			fuzz_msg(sel & 1 ? CV_D_PEER_WORKER : CV_D_PEER_CLIENT,
				 (sel >> 2) & 7, data, size);
		break;
	case 2:
		fuzz_probe(data, size);
		break;
	case 3:
		fuzz_size(data, size);
		break;
	}
	return 0;
}

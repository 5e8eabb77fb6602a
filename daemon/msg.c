/* SPDX-License-Identifier: MIT */
/*
 * Everything in the daemon that reads peer input without doing I/O:
 * control message validation, ATTACH admission and the probe output
 * parser. Pure functions, so that tests/test_ctl.c and fuzz/fuzz_ctl.c can
 * drive them with arbitrary bytes.
 */
#include "cuvisord.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"

#define BAD(s)                                                         \
	do {                                                           \
		*why = (s);                                            \
		return -EBADMSG;                                       \
	} while (0)

void cv_d_sanitize(char *s, size_t size)
{
	size_t i;

	for (i = 0; i < size && s[i]; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			s[i] = '?';
}

/* Copies a fixed string field that must be NUL-terminated inside it. */
static int take_string(char *dst, const char *src, size_t size)
{
	if (!memchr(src, 0, size))
		return -EBADMSG;
	memcpy(dst, src, size);
	cv_d_sanitize(dst, size);
	return 0;
}

static int decode_client(const struct cv_ctl_hdr *hdr, const void *payload,
			 uint32_t len, int nfds, struct cv_d_msg *m,
			 const char **why)
{
	struct cv_ctl_attach a;

	if (nfds)
		BAD("a request carries file descriptors");
	if (hdr->status)
		BAD("a request has a nonzero status");
	switch (hdr->type) {
	case CV_CTL_ATTACH:
		if (len != sizeof(a))
			BAD("ATTACH payload has the wrong length");
		memcpy(&a, payload, sizeof(a));
		if (take_string(m->u.attach.name, a.name, sizeof(a.name)))
			BAD("ATTACH name is not NUL-terminated");
		m->u.attach.pid = a.pid;
		m->u.attach.gpu = a.gpu;
		m->u.attach.mem = a.mem;
		m->u.attach.flags = a.flags;
		m->u.attach.proto = a.proto;
		return 0;
	case CV_CTL_PS:
	case CV_CTL_SHUTDOWN:
	case CV_CTL_INFO:
		if (len)
			BAD("request takes no payload");
		return 0;
	default:
		BAD("unknown request type");
	}
}

static int decode_ready(const void *payload, uint32_t len, int nfds,
			struct cv_d_msg *m, const char **why)
{
	struct cv_ctl_ready r;

	if (len != sizeof(r))
		BAD("W_READY payload has the wrong length");
	memcpy(&r, payload, sizeof(r));
	if (take_string(m->u.ready.msg, r.msg, sizeof(r.msg)))
		BAD("W_READY msg is not NUL-terminated");
	if (r.status > 0 || r.status < -4095)
		BAD("W_READY status is not 0 or -errno");
	if (r.status == 0 && nfds != 1)
		BAD("W_READY success must carry exactly one fd");
	if (r.status < 0 && nfds != 0)
		BAD("W_READY failure must carry no fd");
	m->u.ready.status = r.status;
	return 0;
}

static int decode_worker(const struct cv_ctl_hdr *hdr, const void *payload,
			 uint32_t len, int nfds, struct cv_d_msg *m,
			 const char **why)
{
	switch (hdr->type) {
	case CV_CTL_W_READY:
		if (hdr->status)
			BAD("W_READY has a nonzero header status");
		return decode_ready(payload, len, nfds, m, why);
	case CV_CTL_W_STATS | CV_CTL_REPLY:
		if (nfds)
			BAD("W_STATS reply carries file descriptors");
		if (hdr->status < 0 && len == 0)
			return 0;
		if (hdr->status < 0 || len != sizeof(m->u.stats))
			BAD("W_STATS reply has the wrong length");
		memcpy(&m->u.stats, payload, sizeof(m->u.stats));
		if (m->u.stats.state > CV_STATE_LOST)
			BAD("W_STATS reply has an unknown state");
		return 0;
	case CV_CTL_W_STOP | CV_CTL_REPLY:
		if (nfds || len)
			BAD("W_STOP reply takes no payload");
		return 0;
	default:
		BAD("unexpected message type from a worker");
	}
}

int cv_d_msg_decode(enum cv_d_peer from, const struct cv_ctl_hdr *hdr,
		    const void *payload, uint32_t len, int nfds,
		    struct cv_d_msg *m, const char **why)
{
	memset(m, 0, sizeof(*m));
	if (len > CV_CTL_MAX - sizeof(*hdr) ||
	    cv_ctl_hdr_check(hdr, sizeof(*hdr) + len) < 0)
		BAD("bad header");
	if (len && !payload)
		BAD("missing payload");
	if (nfds < 0 || nfds > CV_CTL_MAX_FDS)
		BAD("too many file descriptors");
	m->type = hdr->type;
	m->status = hdr->status;
	if (from == CV_D_PEER_CLIENT)
		return decode_client(hdr, payload, len, nfds, m, why);
	return decode_worker(hdr, payload, len, nfds, m, why);
}

int cv_d_admit(const struct cv_d_gpu *gpus, int ngpus,
	       const struct cv_ctl_attach *a, uint64_t default_mem, int *gpu,
	       uint64_t *quota)
{
	uint64_t q;
	int g, i;

	if (a->proto != CV_PROTO_VERSION)
		return -EPROTO;
	if (a->flags)
		return -EINVAL;
	if (ngpus <= 0)
		return -ENODEV;
	if (a->gpu == -1) {
		g = 0;
		for (i = 1; i < ngpus; i++)
			if (gpus[i].ntenants < gpus[g].ntenants)
				g = i;
	} else {
		for (g = 0; g < ngpus; g++)
			if (gpus[g].index == a->gpu)
				break;
		if (g == ngpus)
			return -ENODEV;
	}
	q = a->mem ? a->mem : default_mem ? default_mem : gpus[g].total;
	if (q > gpus[g].total)
		return -ENOMEM;
	*gpu = g;
	*quota = q;
	return 0;
}

/* Parses an unsigned decimal number ending at a space; -1 if none. */
static int parse_u64(const char **p, const char *end, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;

	if (s == end || *s < '0' || *s > '9')
		return -1;
	for (; s < end && *s >= '0' && *s <= '9'; s++)
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(*s - '0'), &v))
			return -1;
	if (s == end || *s != ' ')
		return -1;
	*out = v;
	*p = s + 1;
	return 0;
}

static int parse_gpu_line(const char *s, const char *end, struct cv_d_gpu *g,
			  const char **why)
{
	uint64_t index, total;
	size_t n;

	if (parse_u64(&s, end, &index) || index >= 65536)
		BAD("probe: bad GPU index");
	if (parse_u64(&s, end, &total) || total == 0)
		BAD("probe: bad GPU memory size");
	n = (size_t)(end - s);
	if (n == 0)
		BAD("probe: GPU without a name");
	memset(g, 0, sizeof(*g));
	g->index = (int)index;
	g->total = total;
	n = CV_MIN(n, sizeof(g->name) - 1);
	memcpy(g->name, s, n);
	g->name[n] = 0;
	cv_d_sanitize(g->name, sizeof(g->name));
	return 0;
}

static int gpu_cmp(const void *a, const void *b)
{
	const struct cv_d_gpu *x = a, *y = b;

	return (x->index > y->index) - (x->index < y->index);
}

int cv_d_probe_parse(const char *out, size_t n, struct cv_d_gpu *gpus, int max,
		     const char **why)
{
	const char *p = out, *end = out + n, *eol;
	int count = 0, i, r;

	while (p < end) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		if (eol - p >= 4 && !memcmp(p, "gpu ", 4)) {
			if (count == max)
				BAD("probe: too many GPUs");
			r = parse_gpu_line(p + 4, eol, &gpus[count], why);
			if (r < 0)
				return r;
			for (i = 0; i < count; i++)
				if (gpus[i].index == gpus[count].index)
					BAD("probe: duplicate GPU index");
			count++;
		}
		if (eol == end)
			break;
		p = eol + 1;
	}
	qsort(gpus, (size_t)count, sizeof(*gpus), gpu_cmp);
	return count;
}

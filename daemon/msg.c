/* SPDX-License-Identifier: MIT */
/*
 * Everything in the daemon that reads peer input without doing I/O:
 * control message validation, ATTACH admission, the fields of SUSPEND,
 * RESUME and EVICT (and how their results are worded in the log) and the
 * probe output parser. Pure functions, so that tests/test_ctl.c and
 * fuzz/fuzz_ctl.c can drive them with arbitrary bytes.
 */
#include "cuvisord.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"

#define BAD(s)                                                         \
	do {                                                           \
		*why = (s);                                            \
		return -EBADMSG;                                       \
	} while (0)

int cv_d_conn_admit(unsigned max_user, uid_t uid, bool privileged,
		    int nclients, int user_conns, char *why, size_t size)
{
	if (nclients >= CV_D_MAX_CLIENTS) {
		snprintf(why, size, "the daemon has %d connections, the most "
			 "it takes", nclients);
		return -EAGAIN;
	}
	if (privileged)
		return 0;
	if (user_conns >= (int)max_user) {
		snprintf(why, size, "uid %u has %d connections to the daemon "
			 "already (--max-conns-per-user %u)", (unsigned)uid,
			 user_conns, max_user);
		return -EDQUOT;
	}
	if (nclients >= CV_D_MAX_CLIENTS - CV_D_PRIV_CLIENTS) {
		snprintf(why, size, "the daemon has %d connections; the "
			 "last %d are kept for root and its own user",
			 nclients, CV_D_PRIV_CLIENTS);
		return -EAGAIN;
	}
	return 0;
}

int cv_d_tenant_admit(unsigned max_user, uid_t uid, bool privileged,
		      int ntenants, int user_tenants, char *why, size_t size)
{
	if (ntenants >= CV_D_MAX_TENANTS) {
		snprintf(why, size, "the daemon has %d tenants, the most it "
			 "takes", ntenants);
		return -EAGAIN;
	}
	if (privileged)
		return 0;
	if (user_tenants >= (int)max_user) {
		snprintf(why, size, "uid %u has %d tenants already "
			 "(--max-tenants-per-user %u)", (unsigned)uid,
			 user_tenants, max_user);
		return -EDQUOT;
	}
	if (ntenants >= CV_D_MAX_TENANTS - CV_D_PRIV_TENANTS) {
		snprintf(why, size, "the daemon has %d tenants; the last %d "
			 "are kept for root and its own user", ntenants,
			 CV_D_PRIV_TENANTS);
		return -EAGAIN;
	}
	return 0;
}

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

	/* CHECKPOINT's fds are checked with its payload. */
	if (hdr->type == CV_CTL_RESTORE && nfds != 1)
		BAD("RESTORE carries exactly one fd");
	if (hdr->type == CV_CTL_W_HELLO && nfds > 1)
		BAD("W_HELLO carries at most a move's image");
	if (hdr->type != CV_CTL_RESTORE && hdr->type != CV_CTL_CHECKPOINT &&
	    hdr->type != CV_CTL_W_HELLO && nfds)
		BAD("a request carries file descriptors");
	if (hdr->status)
		BAD("a request has a nonzero status");
	switch (hdr->type) {
	case CV_CTL_ATTACH:
	case CV_CTL_ADMIT:
		if (len != sizeof(a))
			BAD("ATTACH payload has the wrong length");
		memcpy(&a, payload, sizeof(a));
		if (take_string(m->u.attach.name, a.name, sizeof(a.name)))
			BAD("ATTACH name is not NUL-terminated");
		if (take_string(m->u.attach.host, a.host, sizeof(a.host)))
			BAD("ATTACH host is not NUL-terminated");
		m->u.attach.pid = a.pid;
		m->u.attach.gpu = a.gpu;
		m->u.attach.mem = a.mem;
		m->u.attach.flags = a.flags;
		m->u.attach.proto = a.proto;
		return 0;
	case CV_CTL_PS:
	case CV_CTL_SHUTDOWN:
	case CV_CTL_INFO:
	case CV_CTL_REMOTES:
		if (len)
			BAD("request takes no payload");
		return 0;
	case CV_CTL_SUSPEND:
	case CV_CTL_RESUME:
	case CV_CTL_EVICT:
		if (len != sizeof(m->u.op))
			BAD("operation request has the wrong length");
		memcpy(&m->u.op, payload, sizeof(m->u.op));
		return 0;
	case CV_CTL_CHECKPOINT:
		if (len != sizeof(m->u.ckpt))
			BAD("CHECKPOINT payload has the wrong length");
		memcpy(&m->u.ckpt, payload, sizeof(m->u.ckpt));
		return cv_ctl_ckpt_check(&m->u.ckpt, nfds, false, why) ?
		       -EBADMSG : 0;
	case CV_CTL_RESTORE:
		if (len != sizeof(m->u.restore))
			BAD("RESTORE payload has the wrong length");
		memcpy(&m->u.restore, payload, sizeof(m->u.restore));
		if (m->u.restore.flags || m->u.restore.gpu < -1 ||
		    m->u.restore.gpu >= 65536)
			BAD("RESTORE has flags or a bad gpu");
		return 0;
	case CV_CTL_MIGRATE:
		if (len != sizeof(m->u.migrate))
			BAD("MIGRATE payload has the wrong length");
		memcpy(&m->u.migrate, payload, sizeof(m->u.migrate));
		if ((m->u.migrate.flags & ~(CV_MIGRATE_COPY |
					    CV_MIGRATE_INLINE |
					    CV_MIGRATE_ZSTD)) ||
		    m->u.migrate.gpu < -1 || m->u.migrate.gpu >= 65536 ||
		    m->u.migrate.fault > CV_MIGRATE_FAULT_MAX ||
		    m->u.migrate.max_rounds > CV_MIGRATE_MAX_ROUNDS ||
		    m->u.migrate.max_pause_ms > 60000 ||
		    m->u.migrate.max_rate_mbs > CV_MIGRATE_MAX_RATE ||
		    m->u.migrate.pad)
			BAD("MIGRATE has unknown flags or a bad value");
		if (!memchr(m->u.migrate.host, 0, sizeof(m->u.migrate.host)))
			BAD("MIGRATE host is not NUL-terminated");
		return 0;
	case CV_CTL_W_HELLO:
		if (len != sizeof(m->u.hello))
			BAD("W_HELLO payload has the wrong length");
		memcpy(&m->u.hello, payload, sizeof(m->u.hello));
		if (take_string(m->u.hello.name, ((const struct cv_ctl_hello *)
						  payload)->name,
				sizeof(m->u.hello.name)))
			BAD("W_HELLO name is not NUL-terminated");
		if (m->u.hello.state < CV_STATE_RUNNING ||
		    m->u.hello.state > CV_STATE_MAX ||
		    m->u.hello.state == CV_STATE_LOST)
			BAD("W_HELLO has a bad state");
		if (m->u.hello.gpu < 0 || m->u.hello.gpu >= 65536 ||
		    !m->u.hello.quota || !m->u.hello.tenant)
			BAD("W_HELLO has a bad gpu, quota or tenant");
		if (nfds && m->u.hello.state != CV_STATE_STOPPED)
			BAD("W_HELLO with an image from a worker not stopped");
		return 0;
	default:
		BAD("unknown request type");
	}
}

/* W_READY (success carries one fd, the region) and W_SPARE (no fd):
 * payload cv_ctl_ready, a failure never carries an fd. */
static int decode_ready(const void *payload, uint32_t len, int nfds,
			int success_fds, struct cv_d_msg *m, const char **why)
{
	struct cv_ctl_ready r;

	if (len != sizeof(r))
		BAD("W_READY/W_SPARE payload has the wrong length");
	memcpy(&r, payload, sizeof(r));
	if (take_string(m->u.ready.msg, r.msg, sizeof(r.msg)))
		BAD("W_READY/W_SPARE msg is not NUL-terminated");
	if (r.status > 0 || r.status < -4095)
		BAD("W_READY/W_SPARE status is not 0 or -errno");
	if (r.status == 0 && nfds != success_fds)
		BAD("W_READY/W_SPARE success carries the wrong number of fds");
	if (r.status < 0 && nfds != 0)
		BAD("W_READY/W_SPARE failure must carry no fd");
	m->u.ready.status = r.status;
	return 0;
}

/* An operation's reply: op_r, which an error reply may leave out. */
static int decode_op_r(const struct cv_ctl_hdr *hdr, const void *payload,
		       uint32_t len, int nfds, struct cv_d_msg *m,
		       const char **why)
{
	/* A holder's answer to a move's checkpoint carries the image it
	 * keeps (CV_CKPT_KEEP). */
	if (nfds > (hdr->type == (CV_CTL_W_CHECKPOINT | CV_CTL_REPLY)))
		BAD("operation reply carries file descriptors");
	if (hdr->status < 0 && len == 0 && !nfds)
		return 0;
	if (len != sizeof(m->u.op_r))
		BAD("operation reply has the wrong length");
	memcpy(&m->u.op_r, payload, sizeof(m->u.op_r));
	if (nfds && (hdr->status || m->u.op_r.state != CV_STATE_STOPPED))
		BAD("an image with an answer that is no stop");
	/* A worker that answers has started: never STARTING. */
	if (m->u.op_r.state < CV_STATE_RUNNING ||
	    m->u.op_r.state > CV_STATE_MAX)
		BAD("operation reply has an unknown state");
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
		return decode_ready(payload, len, nfds, 1, m, why);
	case CV_CTL_W_SPARE:
		if (hdr->status)
			BAD("W_SPARE has a nonzero header status");
		return decode_ready(payload, len, nfds, 0, m, why);
	case CV_CTL_W_STATS | CV_CTL_REPLY:
		if (nfds)
			BAD("W_STATS reply carries file descriptors");
		if (hdr->status < 0 && len == 0)
			return 0;
		if (hdr->status < 0 || len != sizeof(m->u.stats))
			BAD("W_STATS reply has the wrong length");
		memcpy(&m->u.stats, payload, sizeof(m->u.stats));
		if (m->u.stats.state > CV_STATE_MAX)
			BAD("W_STATS reply has an unknown state");
		return 0;
	case CV_CTL_W_STOP | CV_CTL_REPLY:
		if (nfds || len)
			BAD("W_STOP reply takes no payload");
		return 0;
	case CV_CTL_W_SUSPEND | CV_CTL_REPLY:
	case CV_CTL_W_RESUME | CV_CTL_REPLY:
	case CV_CTL_W_EVICT | CV_CTL_REPLY:
	case CV_CTL_W_CHECKPOINT | CV_CTL_REPLY:
		return decode_op_r(hdr, payload, len, nfds, m, why);
	case CV_CTL_W_MIGRATE | CV_CTL_REPLY:
		if (nfds)
			BAD("W_MIGRATE reply carries file descriptors");
		if (hdr->status > 0 || hdr->status < -4095)
			BAD("W_MIGRATE status is not 0 or -errno");
		if (hdr->status < 0 && len == 0)
			return 0;
		if (len < sizeof(m->u.mig_r))
			BAD("W_MIGRATE reply is too short");
		memcpy(&m->u.mig_r, payload, sizeof(m->u.mig_r));
		if (m->u.mig_r.report_len > CV_MIGRATE_REPORT_MAX ||
		    m->u.mig_r.report_len != len - sizeof(m->u.mig_r))
			BAD("W_MIGRATE report has the wrong length");
		m->u.mig_r.msg[sizeof(m->u.mig_r.msg) - 1] = 0;
		cv_d_sanitize(m->u.mig_r.msg, sizeof(m->u.mig_r.msg));
		m->report = (const char *)payload + sizeof(m->u.mig_r);
		return 0;
	case CV_CTL_W_HANDOVER | CV_CTL_REPLY:
		if (len)
			BAD("W_HANDOVER reply takes no payload");
		if (hdr->status == 0 && nfds != 2)
			BAD("W_HANDOVER success must carry two fds");
		if (hdr->status < 0 && nfds)
			BAD("W_HANDOVER failure must carry no fd");
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
	m->len = len;
	if (from == CV_D_PEER_CLIENT)
		return decode_client(hdr, payload, len, nfds, m, why);
	return decode_worker(hdr, payload, len, nfds, m, why);
}

int cv_d_op_check(uint16_t type, const struct cv_ctl_tenant_op *op,
		  const char **why)
{
	*why = NULL;
	if (op->flags) {
		*why = "flags must be 0";
		return -EINVAL;
	}
	if (type == CV_CTL_RESUME) {
		if (op->gpu < -1 || op->gpu >= 65536) {
			*why = "gpu must be -1 or a GPU index";
			return -EINVAL;
		}
		return 0;
	}
	if (op->gpu != -1) {
		*why = "gpu must be -1 (only RESUME takes a GPU)";
		return -EINVAL;
	}
	return 0;
}

uint16_t cv_d_op_to_worker(uint16_t type)
{
	switch (type) {
	case CV_CTL_SUSPEND: return CV_CTL_W_SUSPEND;
	case CV_CTL_RESUME: return CV_CTL_W_RESUME;
	case CV_CTL_EVICT: return CV_CTL_W_EVICT;
	case CV_CTL_CHECKPOINT: return CV_CTL_W_CHECKPOINT;
	default: return 0;
	}
}

uint16_t cv_d_op_from_worker(uint16_t wtype)
{
	switch (wtype & ~CV_CTL_REPLY) {
	case CV_CTL_W_SUSPEND: return CV_CTL_SUSPEND;
	case CV_CTL_W_RESUME: return CV_CTL_RESUME;
	case CV_CTL_W_EVICT: return CV_CTL_EVICT;
	case CV_CTL_W_CHECKPOINT: return CV_CTL_CHECKPOINT;
	default: return 0;
	}
}

const char *cv_d_op_name(uint16_t type)
{
	uint16_t t = type & ~CV_CTL_REPLY;

	if (cv_d_op_from_worker(t))
		t = cv_d_op_from_worker(t);
	switch (t) {
	case CV_CTL_SUSPEND: return "suspend";
	case CV_CTL_RESUME: return "resume";
	case CV_CTL_EVICT: return "evict";
	case CV_CTL_CHECKPOINT: return "checkpoint";
	default: return "?";
	}
}

char *cv_d_fmt_bytes(uint64_t bytes, char *buf, size_t size)
{
	static const char *const unit[] = { "KiB", "MiB", "GiB", "TiB",
					    "PiB", "EiB" };
	double v = (double)bytes;
	int u = -1;

	if (bytes < 1024) {
		snprintf(buf, size, "%llu B", (unsigned long long)bytes);
		return buf;
	}
	while (v >= 1024 && u + 1 < (int)CV_ARRAY_SIZE(unit)) {
		v /= 1024;
		u++;
	}
	snprintf(buf, size, "%.1f %s", v, unit[u]);
	return buf;
}

char *cv_d_fmt_ms(uint64_t ns, char *buf, size_t size)
{
	double ms = (double)ns / 1e6;

	snprintf(buf, size, ms < 0.1 ? "%.3f ms" : "%.1f ms", ms);
	return buf;
}

char *cv_d_op_describe(char *buf, size_t size, uint16_t wtype,
		       const struct cv_ctl_op_r *r)
{
	char sz[32], rate[32] = "", ms[32];

	/* bytes per ns are GB/s */
	if (r->bytes && r->ns)
		snprintf(rate, sizeof(rate), " (%.1f GB/s)",
			 (double)r->bytes / (double)r->ns);
	cv_d_fmt_bytes(r->bytes, sz, sizeof(sz));
	cv_d_fmt_ms(r->ns, ms, sizeof(ms));
	switch (wtype & ~CV_CTL_REPLY) {
	case CV_CTL_W_EVICT:
		snprintf(buf, size, "evicted, %s in %s%s", sz, ms, rate);
		break;
	case CV_CTL_W_CHECKPOINT:
		snprintf(buf, size, "checkpointed, %s image in %s%s%s", sz, ms,
			 rate, r->state == CV_STATE_STOPPED ? ", stopped" : "");
		break;
	case CV_CTL_W_RESUME:
		if (r->bytes)
			snprintf(buf, size, "resumed, %s restored in %s%s", sz,
				 ms, rate);
		else
			snprintf(buf, size, "resumed in %s", ms);
		break;
	default:
		snprintf(buf, size, "suspended in %s", ms);
		break;
	}
	return buf;
}

/* The quota an ATTACH gets on gpu: what it asked, else the default,
 * else the GPU's whole memory. */
static uint64_t quota_on(const struct cv_d_gpu *gpu,
			 const struct cv_ctl_attach *a, uint64_t default_mem)
{
	return a->mem ? a->mem : default_mem ? default_mem : gpu->total;
}

/* Bytes of gpu's memory no tenant's quota holds. */
static uint64_t room(const struct cv_d_gpu *gpu)
{
	return gpu->quota_sum < gpu->total ? gpu->total - gpu->quota_sum : 0;
}

static bool fits(const struct cv_d_gpu *gpu, uint64_t q, bool overcommit)
{
	return q <= gpu->total && (overcommit || q <= room(gpu));
}

/*
 * The GPU for a->gpu == -1: of those the quota fits, the one with the
 * fewest tenants; when it fits none, the one with the most room left
 * (for the refusal to name). An index into gpus[].
 */
static int pick_gpu(const struct cv_d_gpu *gpus, int ngpus,
		    const struct cv_ctl_attach *a, uint64_t default_mem,
		    bool overcommit)
{
	int g = -1, i;

	for (i = 0; i < ngpus; i++)
		if (fits(&gpus[i], quota_on(&gpus[i], a, default_mem),
			 overcommit) &&
		    (g < 0 || gpus[i].ntenants < gpus[g].ntenants))
			g = i;
	if (g >= 0)
		return g;
	for (g = 0, i = 1; i < ngpus; i++)
		if (room(&gpus[i]) > room(&gpus[g]))
			g = i;
	return g;
}

/* Words a refusal for a quota q on gpus[g]; returns err. */
static int quota_refusal(const struct cv_d_gpu *gpu, uint64_t q, int err,
			 char *why, size_t size)
{
	char qs[32], left[32], total[32];

	cv_d_fmt_bytes(q, qs, sizeof(qs));
	cv_d_fmt_bytes(room(gpu), left, sizeof(left));
	cv_d_fmt_bytes(gpu->total, total, sizeof(total));
	if (err == -ENOMEM)
		snprintf(why, size, "quota %s asked, more than gpu %d's %s",
			 qs, gpu->index, total);
	else
		snprintf(why, size, "quota %s asked, %s of gpu %d's %s left "
			 "(the quotas of its %u tenant(s) hold the rest; "
			 "cuvisord --overcommit allows more)", qs, left,
			 gpu->index, total, gpu->ntenants);
	return err;
}

int cv_d_admit(const struct cv_d_gpu *gpus, int ngpus,
	       const struct cv_ctl_attach *a, uint64_t default_mem,
	       bool overcommit, int *gpu, uint64_t *quota, char *why,
	       size_t size)
{
	uint64_t q;
	int g;

	if (a->proto != CV_PROTO_VERSION) {
		snprintf(why, size, "the guest library speaks protocol %u, "
			 "this daemon %u: install them together", a->proto,
			 CV_PROTO_VERSION);
		return -EPROTO;
	}
	if (a->flags) {
		snprintf(why, size, "unknown attach flags 0x%x", a->flags);
		return -EINVAL;
	}
	if (ngpus <= 0) {
		snprintf(why, size, "this daemon has no GPU");
		return -ENODEV;
	}
	if (a->gpu == -1) {
		g = pick_gpu(gpus, ngpus, a, default_mem, overcommit);
	} else {
		for (g = 0; g < ngpus; g++)
			if (gpus[g].index == a->gpu)
				break;
		if (g == ngpus) {
			snprintf(why, size, "no gpu %d here (gpus %d to %d)",
				 (int)a->gpu, gpus[0].index,
				 gpus[ngpus - 1].index);
			return -ENODEV;
		}
	}
	q = quota_on(&gpus[g], a, default_mem);
	if (q > gpus[g].total)
		return quota_refusal(&gpus[g], q, -ENOMEM, why, size);
	if (!fits(&gpus[g], q, overcommit))
		return quota_refusal(&gpus[g], q, -ENOSPC, why, size);
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

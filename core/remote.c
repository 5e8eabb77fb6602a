/* SPDX-License-Identifier: MIT */
/* The remote vGPU protocol's decoders (core/remote.h). */
#include "remote.h"

#include <errno.h>
#include <string.h>

#define S (CV_RM_TO_SERVER | CV_RM_ORDERED)
#define SS (S | CV_RM_SYNC)
#define SIDE (CV_RM_TO_SERVER | CV_RM_SIDE | CV_RM_SYNC)

static const struct {
	const char *name;
	uint32_t cls;
} ops[CV_RM_OP_END] = {
	[CV_RM_VA_RESERVE] = { "va-reserve", SS },
	[CV_RM_MEM_CREATE] = { "mem-create", SS },
	[CV_RM_MEM_RELEASE] = { "mem-release", S },
	[CV_RM_MEM_MAP] = { "mem-map", SS },
	[CV_RM_MEM_UNMAP] = { "mem-unmap", SS },
	[CV_RM_MEM_INFO] = { "mem-info", SS },
	[CV_RM_STREAM_CREATE] = { "stream-create", SS },
	[CV_RM_STREAM_DESTROY] = { "stream-destroy", S },
	[CV_RM_STREAM_SYNC] = { "stream-sync", SS },
	[CV_RM_STREAM_WAIT_EVENT] = { "stream-wait-event", S },
	[CV_RM_EVENT_CREATE] = { "event-create", SS },
	[CV_RM_EVENT_DESTROY] = { "event-destroy", S },
	[CV_RM_EVENT_RECORD] = { "event-record", S },
	[CV_RM_EVENT_SYNC] = { "event-sync", SS },
	[CV_RM_EVENT_QUERY] = { "event-query", SS },
	[CV_RM_EVENT_ELAPSED] = { "event-elapsed", SS },
	[CV_RM_HTOD] = { "htod", S },
	[CV_RM_DTOH] = { "dtoh", S },
	[CV_RM_DTOD] = { "dtod", S },
	[CV_RM_MEMCPY2D] = { "memcpy2d", S },
	[CV_RM_MEMSET] = { "memset", S },
	[CV_RM_MODULE_LOAD] = { "module-load", SS },
	[CV_RM_MODULE_UNLOAD] = { "module-unload", S },
	[CV_RM_GET_FUNCTION] = { "get-function", SS },
	[CV_RM_GET_GLOBAL] = { "get-global", SS },
	[CV_RM_FUNCTION_NAME] = { "function-name", SS },
	[CV_RM_FUNC_GET_ATTR] = { "func-get-attr", SS },
	[CV_RM_FUNC_SET_ATTR] = { "func-set-attr", SS },
	[CV_RM_FUNC_SET_CACHE] = { "func-set-cache", SS },
	[CV_RM_LAUNCH] = { "launch", S },
	[CV_RM_HOST_FUNC] = { "host-func", S },
	[CV_RM_CTX_SYNC] = { "ctx-sync", SS },
	[CV_RM_CTX_SET_LIMIT] = { "ctx-set-limit", SS },
	[CV_RM_CTX_GET_LIMIT] = { "ctx-get-limit", SS },
	[CV_RM_OCCUPANCY] = { "occupancy", SS },
	[CV_RM_OCCUPANCY_CLUSTER] = { "occupancy-cluster", SS },
	[CV_RM_MARKER_CREATE] = { "marker-create", S },
	[CV_RM_MARKER_DESTROY] = { "marker-destroy", S },
	[CV_RM_MARKER_RECORD] = { "marker-record", S },
	[CV_RM_STREAM_QUERY] = { "stream-query", SIDE },
	[CV_RM_MARKER_QUERY] = { "marker-query", SIDE },
	[CV_RM_MARKER_WAIT] = { "marker-wait", SIDE },
	[CV_RM_DIGEST] = { "digest", SIDE },
	[CV_RM_HOSTFN_DONE] = { "hostfn-done", CV_RM_TO_SERVER },
	[CV_RM_CLOSE] = { "close", CV_RM_TO_SERVER },
	[CV_RM_REPLY] = { "reply", CV_RM_TO_CLIENT },
	[CV_RM_DATA] = { "data", CV_RM_TO_CLIENT },
	[CV_RM_HOSTFN] = { "hostfn", CV_RM_TO_CLIENT },
	[CV_RM_READY] = { "ready", CV_RM_TO_CLIENT },
	[CV_RM_PING] = { "ping", CV_RM_TO_SERVER | CV_RM_TO_CLIENT },
};

uint32_t cv_rm_op_class(uint32_t op)
{
	return op < CV_RM_OP_END ? ops[op].cls : 0;
}

const char *cv_rm_op_name(uint32_t op)
{
	return op < CV_RM_OP_END && ops[op].name ? ops[op].name : "?";
}

size_t cv_rm_fixed_len(uint32_t op)
{
	switch (op) {
	case CV_RM_REPLY: return sizeof(struct cv_rm_rep);
	case CV_RM_DATA: return sizeof(struct cv_rm_data);
	case CV_RM_HOSTFN: case CV_RM_HOSTFN_DONE:
		return 8;
	case CV_RM_READY: return sizeof(struct cv_rm_ready);
	case CV_RM_PING: case CV_RM_CLOSE: return 0;
	default: return sizeof(struct cv_rm_args);
	}
}

int cv_rm_hdr_check(const struct cv_rm_hdr *h, uint32_t to, const char **why)
{
	uint32_t c = cv_rm_op_class(h->op);

	if (!(c & to)) {
		*why = "an unknown message";
		return -EBADMSG;
	}
	if (h->len > CV_RM_MAX_PAYLOAD) {
		*why = "a message over the length cap";
		return -EBADMSG;
	}
	if (h->len < cv_rm_fixed_len(h->op)) {
		*why = "a message shorter than its fixed part";
		return -EBADMSG;
	}
	if ((h->op == CV_RM_PING || h->op == CV_RM_CLOSE) && h->len) {
		*why = "a ping with a payload";
		return -EBADMSG;
	}
	if ((h->op == CV_RM_HOSTFN || h->op == CV_RM_HOSTFN_DONE ||
	     h->op == CV_RM_READY) && h->len != cv_rm_fixed_len(h->op)) {
		*why = "a message of the wrong size";
		return -EBADMSG;
	}
	return 0;
}

static int terminated(const char *s, size_t n, int printable)
{
	size_t i;

	for (i = 0; i < n && s[i]; i++)
		if (printable && ((unsigned char)s[i] < 0x20 ||
				  (unsigned char)s[i] > 0x7e))
			return 0;
	return i < n;
}

int cv_rm_ready_check(const void *p, size_t len, struct cv_rm_ready *out,
		      const char **why)
{
	if (len != sizeof(*out)) {
		*why = "a READY of the wrong size";
		return -EBADMSG;
	}
	memcpy(out, p, sizeof(*out));
	if (out->version != CV_RM_VERSION) {
		*why = "another version of the remote protocol";
		return -EBADMSG;
	}
	if (!terminated(out->host, sizeof(out->host), 1) ||
	    !terminated(out->dev.name, sizeof(out->dev.name), 1)) {
		*why = "a READY with a bad name";
		return -EBADMSG;
	}
	return 0;
}

int cv_rm_launch_split(size_t len, uint64_t nattrs, uint64_t psize)
{
	if (nattrs > CV_RM_MAX_ATTRS || psize > CV_RM_MAX_PAYLOAD)
		return -EBADMSG;
	return len == nattrs * sizeof(struct cv_launch_attr) + psize ?
		       0 : -EBADMSG;
}

/* SPDX-License-Identifier: MIT */
/*
 * Streams, events and host functions. Stream handles resolve to wire ids:
 * 0 is the legacy default stream; each thread that uses the per-thread
 * default stream gets an ordinary blocking stream of its own, created on
 * first use and destroyed when the thread exits.
 *
 * Functions that come in a per-thread flavour (_ptsz) are thin wrappers
 * that differ only in what the NULL stream means.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../core/futex.h"
#include "../core/log.h"
#include "exports.h"
#include "guest.h"

static __thread uint64_t ptds_handle;
static pthread_key_t ptds_key;
static pthread_once_t ptds_once = PTHREAD_ONCE_INIT;

/* ---- wire ids ------------------------------------------------------------ */

/*
 * Tells the worker to destroy object o (op names its kind), then frees
 * its handle h and the object. The order matters: the id may be reused
 * once the handle is freed, and the ring keeps the destroy first.
 */
static int obj_destroy(uint16_t op, struct cv_hobj *o, uint64_t h)
{
	struct cv_id a = { o->id, 0 };
	int rc = cv_g_submit(op, &a, sizeof(a));

	cv_handle_del(h);
	free(o);
	return rc;
}

static void ptds_destroy(void *arg)
{
	uint64_t h = (uint64_t)(uintptr_t)arg;
	struct cv_stream *s = cv_handle_get(h, CV_H_STREAM);

	if (s && !g.lost)
		obj_destroy(CV_OP_STREAM_DESTROY, &s->h, h);
}

static void ptds_key_init(void)
{
	pthread_key_create(&ptds_key, ptds_destroy);
}

static int stream_new(struct cv_ctx *c, unsigned int flags, int prio,
		      struct cv_stream **out, uint64_t *handle)
{
	struct cv_stream_create a = { .flags = flags, .priority = prio };
	struct cv_stream *s = calloc(1, sizeof(*s));
	uint64_t h;
	int rc;

	if (!s)
		return CUDA_ERROR_OUT_OF_MEMORY;
	s->flags = flags;
	s->priority = prio;
	s->h.ctx = c;
	h = cv_handle_new(s, CV_H_STREAM, &a.id);
	if (!h) {
		free(s);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	rc = cv_g_call(CV_OP_STREAM_CREATE, false, &a, sizeof(a), NULL, 0,
		       NULL);
	if (rc) {
		cv_handle_del(h);
		free(s);
		return rc;
	}
	*out = s;
	*handle = h;
	return CUDA_SUCCESS;
}

static int ptds_id(uint32_t *id)
{
	struct cv_stream *s = cv_handle_get(ptds_handle, CV_H_STREAM);
	int rc;

	if (s) {
		*id = s->h.id;
		return CUDA_SUCCESS;
	}
	pthread_once(&ptds_once, ptds_key_init);
	rc = stream_new(NULL, 0, 0, &s, &ptds_handle);
	if (rc)
		return rc;
	pthread_setspecific(ptds_key, (void *)(uintptr_t)ptds_handle);
	*id = s->h.id;
	return CUDA_SUCCESS;
}

int cv_stream_wire(CUstream h, bool ptds, uint32_t *id)
{
	struct cv_stream *s;

	if (h == CU_STREAM_LEGACY || (!h && !ptds)) {
		*id = 0;
		return CUDA_SUCCESS;
	}
	if (!h || h == CU_STREAM_PER_THREAD)
		return ptds_id(id);
	s = cv_handle_get((uint64_t)(uintptr_t)h, CV_H_STREAM);
	if (!s)
		return CUDA_ERROR_INVALID_HANDLE;
	*id = s->h.id;
	return CUDA_SUCCESS;
}

static struct cv_stream *stream_obj(CUstream h)
{
	if (h == NULL || h == CU_STREAM_LEGACY || h == CU_STREAM_PER_THREAD)
		return NULL;
	return cv_handle_get((uint64_t)(uintptr_t)h, CV_H_STREAM);
}

static bool stream_special(CUstream h)
{
	return h == NULL || h == CU_STREAM_LEGACY || h == CU_STREAM_PER_THREAD;
}

/* ---- streams -------------------------------------------------------------- */

CV_API CUresult cuStreamCreate(CUstream *out, unsigned int flags)
{
	struct cv_stream *s;
	uint64_t h;
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	if (!out || (flags & ~(unsigned)CU_STREAM_NON_BLOCKING))
		return CUDA_ERROR_INVALID_VALUE;
	rc = stream_new(cv_ctx_current(), flags, 0, &s, &h);
	if (!rc)
		*out = (CUstream)(uintptr_t)h;
	return rc;
}

CV_API CUresult cuStreamCreateWithPriority(CUstream *out, unsigned int flags,
					   int prio)
{
	struct cv_stream *s;
	uint64_t h;
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	if (!out || (flags & ~(unsigned)CU_STREAM_NON_BLOCKING))
		return CUDA_ERROR_INVALID_VALUE;
	/* Out-of-range priorities are clamped, as the driver does. */
	if (prio > g.dev.prio_least)
		prio = g.dev.prio_least;
	if (prio < g.dev.prio_greatest)
		prio = g.dev.prio_greatest;
	rc = stream_new(cv_ctx_current(), flags, prio, &s, &h);
	if (!rc)
		*out = (CUstream)(uintptr_t)h;
	return rc;
}

static CUresult stream_destroy(CUstream h)
{
	struct cv_stream *s;
	int rc = cv_g_ready();

	if (rc)
		return rc;
	s = stream_obj(h);
	if (!s)
		return CUDA_ERROR_INVALID_HANDLE;
	return obj_destroy(CV_OP_STREAM_DESTROY, &s->h, (uint64_t)(uintptr_t)h);
}

CV_API CUresult cuStreamDestroy(CUstream s)
{
	return stream_destroy(s);
}

CV_API CUresult cuStreamDestroy_v2(CUstream s)
{
	return stream_destroy(s);
}

static CUresult stream_wait(CUstream h, bool ptds, uint16_t op)
{
	struct cv_id a = { 0, 0 };
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	rc = cv_stream_wire(h, ptds, &a.id);
	if (rc)
		return rc;
	return cv_g_call(op, true, &a, sizeof(a), NULL, 0, NULL);
}

CV_API CUresult cuStreamSynchronize(CUstream s)
{
	return stream_wait(s, false, CV_OP_STREAM_SYNC);
}

CV_API CUresult cuStreamSynchronize_ptsz(CUstream s)
{
	return stream_wait(s, true, CV_OP_STREAM_SYNC);
}

CV_API CUresult cuStreamQuery(CUstream s)
{
	return stream_wait(s, false, CV_OP_STREAM_QUERY);
}

CV_API CUresult cuStreamQuery_ptsz(CUstream s)
{
	return stream_wait(s, true, CV_OP_STREAM_QUERY);
}

static CUresult stream_wait_event(CUstream h, CUevent ev, unsigned int flags,
				  bool ptds)
{
	struct cv_stream_event a = { .flags = flags };
	struct cv_event *e;
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	if (flags & ~(unsigned)CU_EVENT_WAIT_EXTERNAL)
		return CUDA_ERROR_INVALID_VALUE;
	e = cv_handle_get((uint64_t)(uintptr_t)ev, CV_H_EVENT);
	if (!e)
		return CUDA_ERROR_INVALID_HANDLE;
	rc = cv_stream_wire(h, ptds, &a.stream);
	if (rc)
		return rc;
	a.event = e->h.id;
	return cv_g_submit(CV_OP_STREAM_WAIT_EVENT, &a, sizeof(a));
}

CV_API CUresult cuStreamWaitEvent(CUstream s, CUevent e, unsigned int flags)
{
	return stream_wait_event(s, e, flags, false);
}

CV_API CUresult cuStreamWaitEvent_ptsz(CUstream s, CUevent e,
				       unsigned int flags)
{
	return stream_wait_event(s, e, flags, true);
}

static CUresult stream_get(CUstream h, int *prio, unsigned int *flags)
{
	struct cv_stream *s;
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	if (stream_special(h)) {
		if (prio)
			*prio = 0;
		if (flags)
			*flags = 0;
		return CUDA_SUCCESS;
	}
	s = stream_obj(h);
	if (!s)
		return CUDA_ERROR_INVALID_HANDLE;
	if (prio)
		*prio = s->priority;
	if (flags)
		*flags = s->flags;
	return CUDA_SUCCESS;
}

CV_API CUresult cuStreamGetPriority(CUstream s, int *prio)
{
	return prio ? stream_get(s, prio, NULL) : CUDA_ERROR_INVALID_VALUE;
}

CV_API CUresult cuStreamGetPriority_ptsz(CUstream s, int *prio)
{
	return cuStreamGetPriority(s, prio);
}

CV_API CUresult cuStreamGetFlags(CUstream s, unsigned int *flags)
{
	return flags ? stream_get(s, NULL, flags) : CUDA_ERROR_INVALID_VALUE;
}

CV_API CUresult cuStreamGetFlags_ptsz(CUstream s, unsigned int *flags)
{
	return cuStreamGetFlags(s, flags);
}

CV_API CUresult cuStreamGetCtx(CUstream h, CUcontext *out)
{
	struct cv_stream *s;
	struct cv_ctx *c;
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	if (!out)
		return CUDA_ERROR_INVALID_VALUE;
	s = stream_obj(h);
	if (!s && !stream_special(h))
		return CUDA_ERROR_INVALID_HANDLE;
	c = s && s->h.ctx ? s->h.ctx : cv_ctx_current();
	*out = (CUcontext)(uintptr_t)cv_handle_of(&c->h);
	return CUDA_SUCCESS;
}

CV_API CUresult cuStreamGetCtx_ptsz(CUstream h, CUcontext *out)
{
	return cuStreamGetCtx(h, out);
}

CV_API CUresult cuStreamGetDevice(CUstream h, CUdevice *dev)
{
	int rc = stream_get(h, NULL, NULL);

	if (!rc && dev)
		*dev = 0;
	return dev ? rc : CUDA_ERROR_INVALID_VALUE;
}

CV_API CUresult cuStreamGetDevice_ptsz(CUstream h, CUdevice *dev)
{
	return cuStreamGetDevice(h, dev);
}

/* ---- host functions ------------------------------------------------------ */

/* Runs the guest's host functions in stream order, as the worker posts
 * them, and tells the worker when each has returned. */
static void *cb_main(void *arg)
{
	struct cv_cb_queue *q = g.cbq;
	struct cv_cb_entry e;
	uint32_t bell, prod;

	for (;;) {
		bell = __atomic_load_n(&q->produced_bell, __ATOMIC_ACQUIRE);
		/* Acquire: pairs with the worker's release of produced. */
		prod = __atomic_load_n(&q->produced, __ATOMIC_ACQUIRE);
		while (g.cb_done != prod) {
			e = q->e[g.cb_done % CV_CB_SLOTS];
			if (e.kind == 0)
				((CUhostFn)(uintptr_t)e.fn)(
					(void *)(uintptr_t)e.userdata);
			else
				((CUstreamCallback)(uintptr_t)e.fn)(
					(CUstream)(uintptr_t)e.stream,
					(CUresult)e.status,
					(void *)(uintptr_t)e.userdata);
			g.cb_done++;
			/* Release: the function's effects happen before the
			 * worker lets the stream go on. */
			__atomic_store_n(&q->done, g.cb_done, __ATOMIC_RELEASE);
			__atomic_fetch_add(&q->done_bell, 1, __ATOMIC_RELEASE);
			cv_futex_wake(&q->done_bell, INT32_MAX);
		}
		if (g.lost)
			return NULL;
		cv_futex_wait(&q->produced_bell, bell, 100000000ull);
		cv_g_alive(NULL);
	}
	return NULL;
}

static int cb_start(void)
{
	pthread_attr_t at;
	int rc = 0;

	pthread_mutex_lock(&g.lock);
	if (!g.cb_started) {
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		rc = pthread_create(&g.cb_thread, &at, cb_main, NULL);
		pthread_attr_destroy(&at);
		g.cb_started = rc == 0;
	}
	pthread_mutex_unlock(&g.lock);
	return rc ? CUDA_ERROR_OUT_OF_MEMORY : CUDA_SUCCESS;
}

static CUresult host_func(CUstream h, void *fn, void *ud, uint32_t kind,
			  bool ptds)
{
	struct cv_host_func a = { .fn = (uintptr_t)fn, .userdata = (uintptr_t)ud,
				  .guest_stream = (uintptr_t)h, .kind = kind };
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	if (!fn)
		return CUDA_ERROR_INVALID_VALUE;
	rc = cv_stream_wire(h, ptds, &a.stream);
	if (!rc)
		rc = cb_start();
	if (rc)
		return rc;
	return cv_g_submit(CV_OP_HOST_FUNC, &a, sizeof(a));
}

CV_API CUresult cuLaunchHostFunc(CUstream s, CUhostFn fn, void *ud)
{
	return host_func(s, (void *)fn, ud, 0, false);
}

CV_API CUresult cuLaunchHostFunc_ptsz(CUstream s, CUhostFn fn, void *ud)
{
	return host_func(s, (void *)fn, ud, 0, true);
}

CV_API CUresult cuStreamAddCallback(CUstream s, CUstreamCallback cb, void *ud,
				    unsigned int flags)
{
	if (flags)
		return CUDA_ERROR_INVALID_VALUE;
	return host_func(s, (void *)cb, ud, 1, false);
}

CV_API CUresult cuStreamAddCallback_ptsz(CUstream s, CUstreamCallback cb,
					 void *ud, unsigned int flags)
{
	if (flags)
		return CUDA_ERROR_INVALID_VALUE;
	return host_func(s, (void *)cb, ud, 1, true);
}

/* ---- events ------------------------------------------------------------------ */

CV_API CUresult cuEventCreate(CUevent *out, unsigned int flags)
{
	struct cv_event_create a = { .flags = flags };
	struct cv_event *e;
	uint64_t h;
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	if (!out || (flags & ~(unsigned)(CU_EVENT_BLOCKING_SYNC |
					CU_EVENT_DISABLE_TIMING |
					CU_EVENT_INTERPROCESS)))
		return CUDA_ERROR_INVALID_VALUE;
	if (flags & CU_EVENT_INTERPROCESS)
		return CUDA_ERROR_NOT_SUPPORTED;
	e = calloc(1, sizeof(*e));
	if (!e)
		return CUDA_ERROR_OUT_OF_MEMORY;
	e->flags = flags;
	e->h.ctx = cv_ctx_current();
	h = cv_handle_new(e, CV_H_EVENT, &a.id);
	if (!h) {
		free(e);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	rc = cv_g_call(CV_OP_EVENT_CREATE, false, &a, sizeof(a), NULL, 0, NULL);
	if (rc) {
		cv_handle_del(h);
		free(e);
		return rc;
	}
	*out = (CUevent)(uintptr_t)h;
	return CUDA_SUCCESS;
}

static struct cv_event *event_obj(CUevent h)
{
	return cv_handle_get((uint64_t)(uintptr_t)h, CV_H_EVENT);
}

static CUresult event_record(CUevent ev, CUstream s, unsigned int flags,
			     bool ptds)
{
	struct cv_stream_event a = { .flags = flags };
	struct cv_event *e;
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	e = event_obj(ev);
	if (!e)
		return CUDA_ERROR_INVALID_HANDLE;
	if (flags & ~(unsigned)CU_EVENT_RECORD_EXTERNAL)
		return CUDA_ERROR_INVALID_VALUE;
	rc = cv_stream_wire(s, ptds, &a.stream);
	if (rc)
		return rc;
	a.event = e->h.id;
	return cv_g_submit(CV_OP_EVENT_RECORD, &a, sizeof(a));
}

CV_API CUresult cuEventRecord(CUevent e, CUstream s)
{
	return event_record(e, s, 0, false);
}

CV_API CUresult cuEventRecord_ptsz(CUevent e, CUstream s)
{
	return event_record(e, s, 0, true);
}

CV_API CUresult cuEventRecordWithFlags(CUevent e, CUstream s,
				       unsigned int flags)
{
	return event_record(e, s, flags, false);
}

CV_API CUresult cuEventRecordWithFlags_ptsz(CUevent e, CUstream s,
					    unsigned int flags)
{
	return event_record(e, s, flags, true);
}

static CUresult event_wait(CUevent ev, uint16_t op)
{
	struct cv_event *e;
	struct cv_id a;
	int rc = cv_g_ready();

	if (rc)
		return rc;
	e = event_obj(ev);
	if (!e)
		return CUDA_ERROR_INVALID_HANDLE;
	a = (struct cv_id){ e->h.id, 0 };
	return cv_g_call(op, true, &a, sizeof(a), NULL, 0, NULL);
}

CV_API CUresult cuEventQuery(CUevent e)
{
	return event_wait(e, CV_OP_EVENT_QUERY);
}

CV_API CUresult cuEventSynchronize(CUevent e)
{
	return event_wait(e, CV_OP_EVENT_SYNC);
}

static CUresult event_elapsed(float *ms, CUevent start, CUevent end)
{
	struct cv_event *s, *e;
	struct cv_event_pair a;
	struct cv_f32_r r = { 0 };
	int rc = cv_g_ready();

	if (rc)
		return rc;
	if (!ms)
		return CUDA_ERROR_INVALID_VALUE;
	s = event_obj(start);
	e = event_obj(end);
	if (!s || !e)
		return CUDA_ERROR_INVALID_HANDLE;
	a = (struct cv_event_pair){ s->h.id, e->h.id };
	rc = cv_g_call(CV_OP_EVENT_ELAPSED, false, &a, sizeof(a), &r,
		       sizeof(r), NULL);
	if (!rc)
		*ms = r.value;
	return rc;
}

CV_API CUresult cuEventElapsedTime(float *ms, CUevent start, CUevent end)
{
	return event_elapsed(ms, start, end);
}

CV_API CUresult cuEventElapsedTime_v2(float *ms, CUevent start, CUevent end)
{
	return event_elapsed(ms, start, end);
}

static CUresult event_destroy(CUevent ev)
{
	struct cv_event *e;
	int rc = cv_g_ready();

	if (rc)
		return rc;
	e = event_obj(ev);
	if (!e)
		return CUDA_ERROR_INVALID_HANDLE;
	return obj_destroy(CV_OP_EVENT_DESTROY, &e->h, (uint64_t)(uintptr_t)ev);
}

CV_API CUresult cuEventDestroy(CUevent e)
{
	return event_destroy(e);
}

CV_API CUresult cuEventDestroy_v2(CUevent e)
{
	return event_destroy(e);
}

/* ---- context teardown ------------------------------------------------------ */

static void drop_stream(void *obj, void *arg)
{
	struct cv_stream *s = obj;

	if (s->h.ctx == arg)
		stream_destroy((CUstream)(uintptr_t)cv_handle_of(&s->h));
}

static void drop_event(void *obj, void *arg)
{
	struct cv_event *e = obj;

	if (e->h.ctx == arg)
		event_destroy((CUevent)(uintptr_t)cv_handle_of(&e->h));
}

void cv_module_release_ctx(struct cv_ctx *c);

void cv_ctx_release_objects(struct cv_ctx *c)
{
	/* The runtime's destructors first: they may free their own objects. */
	cv_cls_ctx_release(c);
	cv_g_call(CV_OP_CTX_SYNC, false, NULL, 0, NULL, 0, NULL);
	cv_handle_each(CV_H_STREAM, drop_stream, c);
	cv_handle_each(CV_H_EVENT, drop_event, c);
	cv_module_release_ctx(c);
	if (c->primary)
		cv_module_reset_libraries();
	cv_mem_release_ctx(c);
}

/* SPDX-License-Identifier: MIT */
/*
 * Contexts. All of a tenant's contexts share the worker's one CUDA
 * context; a guest context is a scope for the objects made in it, which
 * die with it (cuCtxDestroy, primary context reset or final release).
 * Each thread has its own context stack.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../core/log.h"
#include "guest.h"

#define CTX_STACK_MAX 64

static __thread struct cv_ctx *stack[CTX_STACK_MAX];
static __thread int depth;

struct cv_ctx *cv_ctx_current(void)
{
	struct cv_ctx *c = depth ? stack[depth - 1] : NULL;

	return c && !c->destroyed ? c : NULL;
}

int cv_ctx_check(void)
{
	int rc = cv_g_ready();

	if (rc)
		return rc;
	return cv_ctx_current() ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT;
}

static struct cv_ctx *ctx_get(CUcontext h)
{
	struct cv_ctx *c = cv_handle_get((uint64_t)(uintptr_t)h, CV_H_CTX);

	return c && !c->destroyed ? c : NULL;
}

static CUcontext ctx_handle(struct cv_ctx *c)
{
	return c ? (CUcontext)(uintptr_t)cv_handle_of(&c->h) : NULL;
}

static struct cv_ctx *ctx_new(unsigned int flags, bool primary)
{
	struct cv_ctx *c = calloc(1, sizeof(*c));
	uint32_t id;

	if (!c)
		return NULL;
	static uint64_t next_uid = 1;

	c->flags = flags;
	c->primary = primary;
	c->uid = __atomic_fetch_add(&next_uid, 1, __ATOMIC_RELAXED);
	if (!cv_handle_new(c, CV_H_CTX, &id)) {
		free(c);
		return NULL;
	}
	c->h.ctx = c;
	return c;
}

/* Drops every mention of c from this thread's stack. */
static void stack_forget(struct cv_ctx *c)
{
	int i, j = 0;

	for (i = 0; i < depth; i++)
		if (stack[i] != c)
			stack[j++] = stack[i];
	depth = j;
}

/* ---- primary context ------------------------------------------------- */

/* Creates the primary context's object once (under g.lock). */
static struct cv_ctx *pctx_locked(void)
{
	if (!g.pctx)
		g.pctx = ctx_new(g.pctx_flags, true);
	return g.pctx;
}

CV_API CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
	struct cv_ctx *c;
	int rc = cv_g_ready();

	if (rc)
		return rc;
	if (!pctx)
		return CUDA_ERROR_INVALID_VALUE;
	if (dev != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	pthread_mutex_lock(&g.lock);
	c = pctx_locked();
	if (c) {
		c->destroyed = false;
		g.pctx_refs++;
	}
	pthread_mutex_unlock(&g.lock);
	if (!c)
		return CUDA_ERROR_OUT_OF_MEMORY;
	*pctx = ctx_handle(c);
	return CUDA_SUCCESS;
}

/* Releases the primary context's objects; it stays the same handle. */
static void pctx_reset(void)
{
	struct cv_ctx *c = g.pctx;

	if (!c)
		return;
	cv_ctx_release_objects(c);
	pthread_mutex_lock(&g.lock);
	g.pctx_refs = 0;
	g.pctx_flags = 0;
	c->flags = 0;
	pthread_mutex_unlock(&g.lock);
}

static CUresult pctx_release(CUdevice dev)
{
	bool last = false;
	int rc = cv_g_ready();

	if (rc)
		return rc;
	if (dev != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	pthread_mutex_lock(&g.lock);
	if (!g.pctx_refs) {
		pthread_mutex_unlock(&g.lock);
		return CUDA_ERROR_INVALID_CONTEXT;
	}
	last = --g.pctx_refs == 0;
	pthread_mutex_unlock(&g.lock);
	if (last)
		pctx_reset();
	return CUDA_SUCCESS;
}

CV_API CUresult cuDevicePrimaryCtxRelease(CUdevice dev)
{
	return pctx_release(dev);
}

CV_API CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev)
{
	return pctx_release(dev);
}

static CUresult pctx_reset_api(CUdevice dev)
{
	int rc = cv_g_ready();

	if (rc)
		return rc;
	if (dev != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	pctx_reset();
	return CUDA_SUCCESS;
}

CV_API CUresult cuDevicePrimaryCtxReset(CUdevice dev)
{
	return pctx_reset_api(dev);
}

CV_API CUresult cuDevicePrimaryCtxReset_v2(CUdevice dev)
{
	return pctx_reset_api(dev);
}

static CUresult pctx_set_flags(CUdevice dev, unsigned int flags)
{
	int rc = cv_g_ready();

	if (rc)
		return rc;
	if (dev != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	if (flags & ~(unsigned)(CU_CTX_SCHED_MASK | CU_CTX_LMEM_RESIZE_TO_MAX |
				CU_CTX_MAP_HOST | CU_CTX_SYNC_MEMOPS))
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&g.lock);
	g.pctx_flags = flags;
	if (g.pctx)
		g.pctx->flags = flags;
	pthread_mutex_unlock(&g.lock);
	return CUDA_SUCCESS;
}

CV_API CUresult cuDevicePrimaryCtxSetFlags(CUdevice dev, unsigned int flags)
{
	return pctx_set_flags(dev, flags);
}

CV_API CUresult cuDevicePrimaryCtxSetFlags_v2(CUdevice dev, unsigned int flags)
{
	return pctx_set_flags(dev, flags);
}

CV_API CUresult cuDevicePrimaryCtxGetState(CUdevice dev, unsigned int *flags,
					   int *active)
{
	int rc = cv_g_ready();

	if (rc)
		return rc;
	if (!flags || !active)
		return CUDA_ERROR_INVALID_VALUE;
	if (dev != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	pthread_mutex_lock(&g.lock);
	*flags = g.pctx_flags;
	*active = g.pctx_refs > 0;
	pthread_mutex_unlock(&g.lock);
	return CUDA_SUCCESS;
}

/* ---- created contexts ------------------------------------------------ */

static CUresult ctx_create(CUcontext *out, unsigned int flags, CUdevice dev)
{
	struct cv_ctx *c;
	int rc = cv_g_ready();

	if (rc)
		return rc;
	if (!out)
		return CUDA_ERROR_INVALID_VALUE;
	if (dev != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	if (depth >= CTX_STACK_MAX)
		return CUDA_ERROR_INVALID_VALUE;
	c = ctx_new(flags, false);
	if (!c)
		return CUDA_ERROR_OUT_OF_MEMORY;
	stack[depth++] = c;
	*out = ctx_handle(c);
	return CUDA_SUCCESS;
}

CV_API CUresult cuCtxCreate_v4(CUcontext *pctx, CUctxCreateParams *params,
			       unsigned int flags, CUdevice dev)
{
	/* Execution affinity and CIG parameters are not virtualised. */
	if (params && (params->execAffinityParams || params->cigParams))
		return CUDA_ERROR_NOT_SUPPORTED;
	return ctx_create(pctx, flags, dev);
}

CV_API CUresult cuCtxCreate_v2(CUcontext *pctx, unsigned int flags,
			       CUdevice dev)
{
	return ctx_create(pctx, flags, dev);
}

CV_API CUresult cuCtxCreate(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
	return ctx_create(pctx, flags, dev);
}

CV_API CUresult cuCtxCreate_v3(CUcontext *pctx, CUexecAffinityParam *params,
			       int n, unsigned int flags, CUdevice dev)
{
	if (params && n > 0)
		return CUDA_ERROR_NOT_SUPPORTED;
	return ctx_create(pctx, flags, dev);
}

static CUresult ctx_destroy(CUcontext h)
{
	struct cv_ctx *c;
	int rc = cv_g_ready();

	if (rc)
		return rc;
	c = ctx_get(h);
	if (!c)
		return CUDA_ERROR_INVALID_CONTEXT;
	if (c->primary)
		return CUDA_ERROR_INVALID_CONTEXT;
	cv_ctx_release_objects(c);
	c->destroyed = true;
	stack_forget(c);
	cv_handle_del((uint64_t)(uintptr_t)h);
	/* Other threads may still hold c on their stacks: it is never freed,
	 * only marked destroyed (a context is a few bytes). */
	return CUDA_SUCCESS;
}

CV_API CUresult cuCtxDestroy(CUcontext ctx)
{
	return ctx_destroy(ctx);
}

CV_API CUresult cuCtxDestroy_v2(CUcontext ctx)
{
	return ctx_destroy(ctx);
}

/* ---- the current context ---------------------------------------------- */

static CUresult ctx_push(CUcontext h)
{
	struct cv_ctx *c;
	int rc = cv_g_ready();

	if (rc)
		return rc;
	c = ctx_get(h);
	if (!c)
		return CUDA_ERROR_INVALID_CONTEXT;
	if (depth >= CTX_STACK_MAX)
		return CUDA_ERROR_INVALID_VALUE;
	stack[depth++] = c;
	return CUDA_SUCCESS;
}

CV_API CUresult cuCtxPushCurrent(CUcontext ctx)
{
	return ctx_push(ctx);
}

CV_API CUresult cuCtxPushCurrent_v2(CUcontext ctx)
{
	return ctx_push(ctx);
}

static CUresult ctx_pop(CUcontext *out)
{
	int rc = cv_g_ready();

	if (rc)
		return rc;
	if (!depth)
		return CUDA_ERROR_INVALID_CONTEXT;
	depth--;
	if (out)
		*out = ctx_handle(stack[depth]);
	return CUDA_SUCCESS;
}

CV_API CUresult cuCtxPopCurrent(CUcontext *pctx)
{
	return ctx_pop(pctx);
}

CV_API CUresult cuCtxPopCurrent_v2(CUcontext *pctx)
{
	return ctx_pop(pctx);
}

CV_API CUresult cuCtxSetCurrent(CUcontext h)
{
	struct cv_ctx *c = NULL;
	int rc = cv_g_ready();

	if (rc)
		return rc;
	if (h) {
		c = ctx_get(h);
		if (!c)
			return CUDA_ERROR_INVALID_CONTEXT;
	}
	if (!c) {
		if (depth)
			depth--;
		return CUDA_SUCCESS;
	}
	if (depth)
		stack[depth - 1] = c;
	else
		stack[depth++] = c;
	return CUDA_SUCCESS;
}

CV_API CUresult cuCtxGetCurrent(CUcontext *out)
{
	int rc = cv_g_ready();

	if (rc)
		return rc;
	if (!out)
		return CUDA_ERROR_INVALID_VALUE;
	*out = ctx_handle(cv_ctx_current());
	return CUDA_SUCCESS;
}

CV_API CUresult cuCtxGetDevice(CUdevice *dev)
{
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	if (!dev)
		return CUDA_ERROR_INVALID_VALUE;
	*dev = 0;
	return CUDA_SUCCESS;
}

/* CUDA 13: the device of ctx, or of the current context when NULL. */
CV_API CUresult cuCtxGetDevice_v2(CUdevice *dev, CUcontext ctx)
{
	int rc = cv_g_ready();

	if (rc)
		return rc;
	if (!dev)
		return CUDA_ERROR_INVALID_VALUE;
	if (ctx ? !ctx_get(ctx) : !cv_ctx_current())
		return CUDA_ERROR_INVALID_CONTEXT;
	*dev = 0;
	return CUDA_SUCCESS;
}

CV_API CUresult cuCtxSynchronize(void)
{
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	return cv_g_call(CV_OP_CTX_SYNC, true, NULL, 0, NULL, 0, NULL);
}

CV_API CUresult cuCtxSynchronize_v2(CUcontext ctx)
{
	int rc = cv_g_ready();

	if (rc)
		return rc;
	if (ctx ? !ctx_get(ctx) : !cv_ctx_current())
		return CUDA_ERROR_INVALID_CONTEXT;
	return cv_g_call(CV_OP_CTX_SYNC, true, NULL, 0, NULL, 0, NULL);
}

CV_API CUresult cuCtxGetApiVersion(CUcontext h, unsigned int *version)
{
	int rc = cv_g_ready();

	if (rc)
		return rc;
	if (!version)
		return CUDA_ERROR_INVALID_VALUE;
	if (h ? !ctx_get(h) : !cv_ctx_current())
		return CUDA_ERROR_INVALID_CONTEXT;
	*version = 3020; /* contexts are of the cuCtxCreate_v2 generation */
	return CUDA_SUCCESS;
}

CV_API CUresult cuCtxGetFlags(unsigned int *flags)
{
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	if (!flags)
		return CUDA_ERROR_INVALID_VALUE;
	*flags = cv_ctx_current()->flags;
	return CUDA_SUCCESS;
}

CV_API CUresult cuCtxSetFlags(unsigned int flags)
{
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	cv_ctx_current()->flags = flags;
	return CUDA_SUCCESS;
}

CV_API CUresult cuCtxGetLimit(size_t *value, CUlimit limit)
{
	struct cv_limit a = { .limit = (uint32_t)limit };
	int64_t v = 0;
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	if (!value)
		return CUDA_ERROR_INVALID_VALUE;
	rc = cv_g_call(CV_OP_CTX_GET_LIMIT, false, &a, sizeof(a), &v,
		       sizeof(v), NULL);
	if (!rc)
		*value = (size_t)v;
	return rc;
}

CV_API CUresult cuCtxSetLimit(CUlimit limit, size_t value)
{
	struct cv_limit a = { .limit = (uint32_t)limit, .value = value };
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	return cv_g_call(CV_OP_CTX_SET_LIMIT, false, &a, sizeof(a), NULL, 0,
			 NULL);
}

CV_API CUresult cuCtxGetStreamPriorityRange(int *least, int *greatest)
{
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	if (least)
		*least = g.dev.prio_least;
	if (greatest)
		*greatest = g.dev.prio_greatest;
	return CUDA_SUCCESS;
}

CV_API CUresult cuCtxGetCacheConfig(CUfunc_cache *config)
{
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	if (!config)
		return CUDA_ERROR_INVALID_VALUE;
	*config = CU_FUNC_CACHE_PREFER_NONE;
	return CUDA_SUCCESS;
}

CV_API CUresult cuCtxSetCacheConfig(CUfunc_cache config)
{
	return cv_ctx_check();
}

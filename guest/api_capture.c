/* SPDX-License-Identifier: MIT */
/*
 * Stream capture is not supported (graphs come later), but the runtime and
 * the libraries ask, before many calls, whether a stream is capturing.
 * Here no stream ever is: the queries answer "none" for any valid stream,
 * and beginning a capture fails with CUDA_ERROR_NOT_SUPPORTED (a stub).
 * Also the stream and context ids the runtime reads.
 */
#include "guest.h"

static CUresult capture_status(CUstream s, CUstreamCaptureStatus *st,
			       cuuint64_t *id, bool ptds)
{
	uint32_t wid;
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	if (!st)
		return CUDA_ERROR_INVALID_VALUE;
	rc = cv_stream_wire(s, ptds, &wid);
	if (rc)
		return rc;
	*st = CU_STREAM_CAPTURE_STATUS_NONE;
	if (id)
		*id = 0;
	return CUDA_SUCCESS;
}

CV_API CUresult cuStreamIsCapturing(CUstream s, CUstreamCaptureStatus *st)
{
	return capture_status(s, st, NULL, false);
}

CV_API CUresult cuStreamIsCapturing_ptsz(CUstream s, CUstreamCaptureStatus *st)
{
	return capture_status(s, st, NULL, true);
}

CV_API CUresult cuStreamGetCaptureInfo(CUstream s, CUstreamCaptureStatus *st,
				       cuuint64_t *id)
{
	return capture_status(s, st, id, false);
}

CV_API CUresult cuStreamGetCaptureInfo_ptsz(CUstream s,
					    CUstreamCaptureStatus *st,
					    cuuint64_t *id)
{
	return capture_status(s, st, id, true);
}

static CUresult capture_info(CUstream s, CUstreamCaptureStatus *st,
			     cuuint64_t *id, CUgraph *graph,
			     const CUgraphNode **deps,
			     const CUgraphEdgeData **edges, size_t *ndeps,
			     bool ptds)
{
	CUresult rc = capture_status(s, st, id, ptds);

	if (rc)
		return rc;
	if (graph)
		*graph = NULL;
	if (deps)
		*deps = NULL;
	if (edges)
		*edges = NULL;
	if (ndeps)
		*ndeps = 0;
	return CUDA_SUCCESS;
}

CV_API CUresult cuStreamGetCaptureInfo_v2(CUstream s, CUstreamCaptureStatus *st,
					  cuuint64_t *id, CUgraph *graph,
					  const CUgraphNode **deps,
					  size_t *ndeps)
{
	return capture_info(s, st, id, graph, deps, NULL, ndeps, false);
}

CV_API CUresult cuStreamGetCaptureInfo_v2_ptsz(CUstream s,
					       CUstreamCaptureStatus *st,
					       cuuint64_t *id, CUgraph *graph,
					       const CUgraphNode **deps,
					       size_t *ndeps)
{
	return capture_info(s, st, id, graph, deps, NULL, ndeps, true);
}

CV_API CUresult cuStreamGetCaptureInfo_v3(CUstream s, CUstreamCaptureStatus *st,
					  cuuint64_t *id, CUgraph *graph,
					  const CUgraphNode **deps,
					  const CUgraphEdgeData **edges,
					  size_t *ndeps)
{
	return capture_info(s, st, id, graph, deps, edges, ndeps, false);
}

CV_API CUresult cuStreamGetCaptureInfo_v3_ptsz(CUstream s,
					       CUstreamCaptureStatus *st,
					       cuuint64_t *id, CUgraph *graph,
					       const CUgraphNode **deps,
					       const CUgraphEdgeData **edges,
					       size_t *ndeps)
{
	return capture_info(s, st, id, graph, deps, edges, ndeps, true);
}

/* The mode only matters while some stream captures, which none does. */
CV_API CUresult cuThreadExchangeStreamCaptureMode(CUstreamCaptureMode *mode)
{
	static __thread CUstreamCaptureMode cur = CU_STREAM_CAPTURE_MODE_GLOBAL;
	CUstreamCaptureMode old;

	if (!mode)
		return CUDA_ERROR_INVALID_VALUE;
	old = cur;
	cur = *mode;
	*mode = old;
	return CUDA_SUCCESS;
}

static CUresult stream_id(CUstream s, unsigned long long *out, bool ptds)
{
	uint32_t wid;
	int rc = cv_ctx_check();

	if (rc)
		return rc;
	if (!out)
		return CUDA_ERROR_INVALID_VALUE;
	rc = cv_stream_wire(s, ptds, &wid);
	if (!rc)
		*out = wid; /* unique among live streams; 0 the legacy one */
	return rc;
}

CV_API CUresult cuStreamGetId(CUstream s, unsigned long long *out)
{
	return stream_id(s, out, false);
}

CV_API CUresult cuStreamGetId_ptsz(CUstream s, unsigned long long *out)
{
	return stream_id(s, out, true);
}

CV_API CUresult cuCtxGetId(CUcontext h, unsigned long long *out)
{
	struct cv_ctx *c;
	int rc = cv_g_ready();

	if (rc)
		return rc;
	if (!out)
		return CUDA_ERROR_INVALID_VALUE;
	c = h ? cv_handle_get((uint64_t)(uintptr_t)h, CV_H_CTX) :
		cv_ctx_current();
	if (!c || c->destroyed)
		return CUDA_ERROR_INVALID_CONTEXT;
	*out = c->uid;
	return CUDA_SUCCESS;
}

/* SPDX-License-Identifier: MIT */
/*
 * Contexts: the primary context's reference counting and state, flags,
 * created contexts and the context stack, limits, stream priorities, API
 * version, and that memory works in each context.
 */
#include "cvtest.h"

/* Allocates, fills and reads back 1 MiB in the current context. */
static void check_ctx_memory(const char *what)
{
	CUdeviceptr d = 0;
	size_t n = 1 << 20;
	uint8_t *h = malloc(n), *back = malloc(n);

	cvt_fill_bytes(h, n, 7);
	memset(back, 0, n);
	if (CVT_CU(cuMemAlloc(&d, n), "cuMemAlloc in %s", what)) {
		CVT_CU(cuMemcpyHtoD(d, h, n), "HtoD in %s", what);
		CVT_CU(cuMemcpyDtoH(back, d, n), "DtoH in %s", what);
		cvt_check_mem(back, h, n, "data round trip in %s", what);
		CVT_CU(cuMemFree(d), "cuMemFree in %s", what);
	}
	free(h);
	free(back);
}

static void check_primary(CUdevice dev)
{
	unsigned flags = 99;
	int active = -1;
	CUcontext p1 = NULL, p2 = NULL, cur = NULL;

	CVT_CU(cuDevicePrimaryCtxGetState(dev, &flags, &active),
	       "cuDevicePrimaryCtxGetState");
	cvt_check(active == 0, "primary context inactive before retain");
	CVT_CU(cuDevicePrimaryCtxSetFlags(dev, CU_CTX_SCHED_BLOCKING_SYNC),
	       "cuDevicePrimaryCtxSetFlags(BLOCKING_SYNC)");
	CVT_CU(cuDevicePrimaryCtxGetState(dev, &flags, &active),
	       "cuDevicePrimaryCtxGetState after set flags");
	cvt_check((flags & CU_CTX_SCHED_MASK) == CU_CTX_SCHED_BLOCKING_SYNC,
		  "scheduling flags were set");
	CVT_CU(cuDevicePrimaryCtxRetain(&p1, dev), "cuDevicePrimaryCtxRetain");
	cvt_check(p1 != NULL, "primary context handle is not NULL");
	CVT_CU(cuDevicePrimaryCtxRetain(&p2, dev), "retain again");
	cvt_check(p1 == p2, "both retains return the same context");
	CVT_CU(cuDevicePrimaryCtxGetState(dev, &flags, &active), "get state");
	cvt_check(active == 1, "primary context active after retain");
	CVT_CU(cuCtxSetCurrent(p1), "cuCtxSetCurrent(primary)");
	CVT_CU(cuCtxGetCurrent(&cur), "cuCtxGetCurrent");
	cvt_check(cur == p1, "current context is the primary context");
	check_ctx_memory("the primary context");
	CVT_CU(cuDevicePrimaryCtxRelease(dev), "release once");
	CVT_CU(cuDevicePrimaryCtxGetState(dev, &flags, &active), "get state");
	cvt_check(active == 1, "still active with one reference left");
	CVT_CU(cuDevicePrimaryCtxRelease(dev), "release twice");
	CVT_CU(cuDevicePrimaryCtxGetState(dev, &flags, &active), "get state");
	cvt_check(active == 0, "inactive after the last release");
	CVT_CU(cuCtxSetCurrent(NULL), "cuCtxSetCurrent(NULL)");
}

static void check_created(CUdevice dev, CUcontext primary)
{
	CUcontext c = NULL, cur = NULL, popped = NULL;
	CUdevice d = -1;
	unsigned flags = 0, api = 0;

	CVT_CU(cuCtxCreate(&c, NULL, CU_CTX_SCHED_AUTO, dev), "cuCtxCreate");
	if (!c)
		return;
	CVT_CU(cuCtxGetCurrent(&cur), "cuCtxGetCurrent after create");
	cvt_check(cur == c, "cuCtxCreate makes the new context current");
	cvt_check(c != primary, "a created context is not the primary");
	CVT_CU(cuCtxGetDevice(&d), "cuCtxGetDevice");
	cvt_check(d == dev, "created context is on the device");
	CVT_CU(cuCtxGetFlags(&flags), "cuCtxGetFlags");
	CVT_CU(cuCtxGetApiVersion(c, &api), "cuCtxGetApiVersion");
	cvt_note("api version %u", api);
	cvt_check(api >= 3020, "api version >= 3020");
	check_ctx_memory("a created context");
	CVT_CU(cuCtxSynchronize(), "cuCtxSynchronize in the created context");

	/* The stack: pop c, push primary, push c, pop twice. */
	CVT_CU(cuCtxPopCurrent(&popped), "cuCtxPopCurrent");
	cvt_check(popped == c, "pop returns the created context");
	CVT_CU(cuCtxPushCurrent(primary), "push primary");
	CVT_CU(cuCtxPushCurrent(c), "push created");
	CVT_CU(cuCtxGetCurrent(&cur), "get current");
	cvt_check(cur == c, "top of the stack is current");
	CVT_CU(cuCtxPopCurrent(&popped), "pop created");
	cvt_check(popped == c, "popped the created context");
	CVT_CU(cuCtxGetCurrent(&cur), "get current");
	cvt_check(cur == primary, "primary is current again");
	check_ctx_memory("the primary context under the stack");
	CVT_CU(cuCtxPopCurrent(&popped), "pop primary");
	cvt_check(popped == primary, "popped the primary context");
	CVT_CU(cuCtxDestroy(c), "cuCtxDestroy");
	CVT_CU(cuCtxSetCurrent(primary), "primary current again");
}

static void check_limits(void)
{
	size_t v = 0;

	CVT_CU(cuCtxSetLimit(CU_LIMIT_STACK_SIZE, 4096),
	       "cuCtxSetLimit(STACK_SIZE, 4096)");
	CVT_CU(cuCtxGetLimit(&v, CU_LIMIT_STACK_SIZE), "cuCtxGetLimit(STACK)");
	cvt_check(v >= 4096, "stack size limit >= what was set");
	CVT_CU(cuCtxSetLimit(CU_LIMIT_PRINTF_FIFO_SIZE, 2 << 20),
	       "cuCtxSetLimit(PRINTF_FIFO_SIZE, 2 MiB)");
	v = 0;
	CVT_CU(cuCtxGetLimit(&v, CU_LIMIT_PRINTF_FIFO_SIZE), "get printf fifo");
	cvt_check(v >= (2u << 20), "printf fifo limit >= what was set");
	v = 0;
	CVT_CU(cuCtxGetLimit(&v, CU_LIMIT_MALLOC_HEAP_SIZE), "get malloc heap");
	cvt_check(v > 0, "malloc heap limit > 0");
	cvt_check(cuCtxGetLimit(&v, (CUlimit)0x7777) != CUDA_SUCCESS,
		  "unknown limit is refused");
}

static void check_priorities(void)
{
	int least = 99, greatest = 99, p = 99;
	CUstream s;

	CVT_CU(cuCtxGetStreamPriorityRange(&least, &greatest),
	       "cuCtxGetStreamPriorityRange");
	cvt_note("priorities: least %d, greatest %d", least, greatest);
	cvt_check(greatest <= least, "greatest priority <= least priority");
	if (CVT_CU(cuStreamCreateWithPriority(&s, CU_STREAM_NON_BLOCKING,
					      greatest),
		   "create a stream with the greatest priority")) {
		CVT_CU(cuStreamGetPriority(s, &p), "cuStreamGetPriority");
		cvt_check(p == greatest, "stream has the greatest priority");
		CVT_CU(cuStreamDestroy(s), "destroy it");
	}
	if (CVT_CU(cuStreamCreateWithPriority(&s, 0, greatest - 1000),
		   "create a stream with priority out of range")) {
		CVT_CU(cuStreamGetPriority(s, &p), "cuStreamGetPriority");
		cvt_check(p == greatest, "out-of-range priority is clamped");
		CVT_CU(cuStreamDestroy(s), "destroy it");
	}
}

int main(int argc, char **argv)
{
	CUdevice dev;
	CUcontext primary = NULL, cur = (CUcontext)1;
	unsigned flags;
	int active;

	CVT_CU(cuInit(0), "cuInit");
	if (cuDeviceGet(&dev, 0) != CUDA_SUCCESS)
		cvt_bail("no device");
	CVT_CU(cuCtxGetCurrent(&cur), "cuCtxGetCurrent with no context");
	cvt_check(cur == NULL, "no context is current at start");
	check_primary(dev);

	CVT_CU(cuDevicePrimaryCtxRetain(&primary, dev), "retain the primary");
	CVT_CU(cuCtxSetCurrent(primary), "make it current");
	check_created(dev, primary);
	check_limits();
	check_priorities();

	/* Reset: the primary context is torn down and can be used again. */
	CVT_CU(cuDevicePrimaryCtxReset(dev), "cuDevicePrimaryCtxReset");
	CVT_CU(cuDevicePrimaryCtxGetState(dev, &flags, &active), "get state");
	cvt_check(active == 0, "inactive after reset");
	CVT_CU(cuDevicePrimaryCtxRetain(&primary, dev), "retain after reset");
	CVT_CU(cuCtxSetCurrent(primary), "make it current");
	check_ctx_memory("the primary context after reset");
	CVT_CU(cuDevicePrimaryCtxRelease(dev), "release");
	(void)argc;
	(void)argv;
	return cvt_done();
}

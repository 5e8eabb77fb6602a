/* SPDX-License-Identifier: MIT */
/*
 * Module globals through the runtime: __device__ and __constant__
 * variables with cudaMemcpyToSymbol/FromSymbol (also their Async forms),
 * cudaGetSymbolAddress and cudaGetSymbolSize, a kernel that uses them;
 * then cudaDeviceReset and everything again: the runtime re-initialises,
 * the module is loaded anew (initialised globals have their initial
 * values again), allocations work.
 *
 * Globals live in device code, which the host backend does not load as
 * such: there the symbol checks are skipped and only allocations and
 * copies run before and after the reset.
 */
#include "rtcheck.h"

#define NC 16
#define NA 256

__constant__ float coeffs[NC];
__device__ float dev_out[NA];
__device__ int dev_init = 42;
__device__ unsigned int dev_calls;

/* dev_out[i] = sum_j coeffs[j] * (i + j); counts its blocks. */
__global__ void apply_coeffs(void)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	float s = 0.0f;

	if (i >= NA)
		return;
	for (int j = 0; j < NC; j++)
		s += coeffs[j] * (float)(i + j);
	dev_out[i] = s + (float)dev_init;
	if (threadIdx.x == 0)
		atomicAdd(&dev_calls, 1u);
}

static float want_out(const float *c, int i, int init)
{
	float s = 0.0f;

	for (int j = 0; j < NC; j++)
		s += c[j] * (float)(i + j);
	return s + (float)init;
}

/* Allocation and copies: what runs on every backend, in each round. */
static void check_plain(int round)
{
	char buf[4096], back[4096];
	void *d = NULL;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i * 7 + round);
	RT_CUDA(cudaMalloc(&d, sizeof(buf)), "round %d: cudaMalloc", round);
	RT_CUDA(cudaMemcpy(d, buf, sizeof(buf), cudaMemcpyHostToDevice),
		"round %d: copy up", round);
	RT_CUDA(cudaMemcpy(back, d, sizeof(buf), cudaMemcpyDeviceToHost),
		"round %d: copy down", round);
	rt_check(!memcmp(buf, back, sizeof(buf)), "round %d: data survives",
		 round);
	RT_CUDA(cudaFree(d), "round %d: cudaFree", round);
}

static void check_symbols(int round)
{
	float c[NC], out[NA], ones[NA];
	float *out_addr = NULL;
	size_t sz = 0;
	unsigned calls = 0;
	int init = 0, bad = 0;
	cudaStream_t s;

	if (!rt_need_gpu("round %d: symbols and the kernel using them", round))
		return;
	RT_CUDA(cudaMemcpyFromSymbol(&init, dev_init, sizeof(init)),
		"round %d: cudaMemcpyFromSymbol of an initialised global", round);
	rt_check(init == 42, "round %d: initial value is 42", round);
	for (int j = 0; j < NC; j++)
		c[j] = (float)(j + 1 + round) * 0.25f;
	RT_CUDA(cudaMemcpyToSymbol(coeffs, c, sizeof(c)),
		"round %d: cudaMemcpyToSymbol __constant__", round);
	RT_CUDA(cudaMemcpyToSymbol(dev_calls, &calls, sizeof(calls)),
		"round %d: cudaMemcpyToSymbol __device__", round);
	RT_CUDA(cudaGetSymbolSize(&sz, dev_out), "round %d: cudaGetSymbolSize",
		round);
	rt_check(sz == sizeof(float) * NA, "round %d: symbol size", round);
	RT_CUDA(cudaGetSymbolAddress((void **)&out_addr, dev_out),
		"round %d: cudaGetSymbolAddress", round);
	for (int i = 0; i < NA; i++)
		ones[i] = 1.0f;
	/* Through the address, as an ordinary device pointer. */
	RT_CUDA(cudaMemcpy(out_addr, ones, sizeof(ones), cudaMemcpyHostToDevice),
		"round %d: cudaMemcpy to a symbol's address", round);
	RT_CUDA(cudaMemcpyFromSymbol(out, dev_out, sizeof(out)),
		"round %d: read it back by symbol", round);
	rt_check(!memcmp(out, ones, sizeof(out)),
		 "round %d: address and symbol agree", round);

	apply_coeffs<<<NA / 64, 64>>>();
	RT_CUDA(cudaGetLastError(), "round %d: apply_coeffs launch", round);
	RT_CUDA(cudaDeviceSynchronize(), "round %d: sync", round);
	RT_CUDA(cudaMemcpyFromSymbol(out, dev_out, sizeof(out)),
		"round %d: cudaMemcpyFromSymbol results", round);
	for (int i = 0; i < NA; i++)
		bad += out[i] != want_out(c, i, 42);
	rt_check(bad == 0, "round %d: kernel used the constants", round);
	rt_digest(round ? "apply_coeffs_after_reset" : "apply_coeffs",
		  rt_digest_f32(out, NA, 1000.0));
	RT_CUDA(cudaMemcpyFromSymbol(&calls, dev_calls, sizeof(calls)),
		"round %d: read the block counter", round);
	rt_check(calls == NA / 64, "round %d: every block counted", round);

	/* Async forms, with an offset. */
	RT_CUDA(cudaStreamCreate(&s), "round %d: stream", round);
	init = 7;
	RT_CUDA(cudaMemcpyToSymbolAsync(dev_init, &init, sizeof(init), 0,
					cudaMemcpyHostToDevice, s),
		"round %d: cudaMemcpyToSymbolAsync", round);
	RT_CUDA(cudaMemcpyFromSymbolAsync(out, dev_out, 4 * sizeof(float),
					  8 * sizeof(float),
					  cudaMemcpyDeviceToHost, s),
		"round %d: cudaMemcpyFromSymbolAsync with offset", round);
	RT_CUDA(cudaStreamSynchronize(s), "round %d: stream sync", round);
	rt_check(out[0] == want_out(c, 8, 42) && out[3] == want_out(c, 11, 42),
		 "round %d: offset read is right", round);
	init = 0;
	RT_CUDA(cudaMemcpyFromSymbol(&init, dev_init, sizeof(init)),
		"round %d: read back the changed global", round);
	rt_check(init == 7, "round %d: global changed", round);
	cudaStreamDestroy(s);
}

int main(void)
{
	int v = -1;

	rt_start("rt_symbols", NULL);
	check_plain(0);
	check_symbols(0);

	/* Reset: the primary context goes away with all its allocations. */
	RT_CUDA(cudaDeviceReset(), "cudaDeviceReset");
	RT_CUDA(cudaGetDevice(&v), "cudaGetDevice after reset");
	RT_CUDA(cudaSetDevice(0), "cudaSetDevice after reset");
	RT_CUDA(cudaFree(0), "cudaFree(0) re-initialises the context");
	check_plain(1);
	check_symbols(1);

	RT_CUDA(cudaDeviceReset(), "second cudaDeviceReset");
	check_plain(2);
	rt_host_probe("apply_coeffs", [] { apply_coeffs<<<1, 64>>>(); });
	if (rt_host) {
		int x = 0;
		cudaError_t e = cudaMemcpyFromSymbol(&x, dev_init, sizeof(x));

		rt_note("host backend: cudaMemcpyFromSymbol: %s", rt_ename(e));
	}
	return rt_done();
}

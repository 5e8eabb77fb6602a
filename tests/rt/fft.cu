/* SPDX-License-Identifier: MIT */
/*
 * cuFFT: a batched 1D complex-to-complex plan on a stream, forward then
 * inverse; the round trip (divided by N) gives the input back, the
 * spectrum of a known signal has its peaks where they belong, and its
 * digest must match between a native run and a run under cuvisor.
 *
 * On the host backend the version, handle, estimate and stream calls run;
 * a plan may need device code, so its failure there is a skip, and the
 * transforms are skipped.
 */
#include <cufft.h>

#include "rtcheck.h"

#define NX 256
#define BATCH 4

RT_PRINTF(2, 3) static bool fft_ok(cufftResult r, const char *fmt, ...)
{
	va_list ap;
	bool ok;

	va_start(ap, fmt);
	ok = rt_vcheck(r == CUFFT_SUCCESS, fmt, ap);
	va_end(ap);
	if (!ok)
		rt_note("got cufftResult %d; last runtime error %s", (int)r,
			rt_ename(cudaGetLastError()));
	return ok;
}

/* Batch b: a constant plus cosines at bins b + 1 and 3 * (b + 1). */
static void make_signal(cufftComplex *x)
{
	const double tau = 6.283185307179586;

	for (int b = 0; b < BATCH; b++)
		for (int i = 0; i < NX; i++) {
			double t = (double)i / NX;

			x[b * NX + i].x = (float)(0.5 + cos(tau * (b + 1) * t) +
						  0.25 * cos(tau * 3 * (b + 1) * t));
			x[b * NX + i].y = (float)(0.125 * sin(tau * (b + 2) * t));
		}
}

static void check_transforms(cufftHandle plan, cudaStream_t s)
{
	static cufftComplex x[NX * BATCH], y[NX * BATCH], z[NX * BATCH];
	cufftComplex *d = NULL;
	double err = 0, mag[NX * BATCH];
	bool peaks = true;

	make_signal(x);
	RT_CUDA(cudaMalloc(&d, sizeof(x)), "cudaMalloc signal");
	RT_CUDA(cudaMemcpyAsync(d, x, sizeof(x), cudaMemcpyHostToDevice, s),
		"copy signal");
	fft_ok(cufftExecC2C(plan, d, d, CUFFT_FORWARD), "forward C2C in place");
	RT_CUDA(cudaMemcpyAsync(y, d, sizeof(y), cudaMemcpyDeviceToHost, s),
		"copy spectrum");
	fft_ok(cufftExecC2C(plan, d, d, CUFFT_INVERSE), "inverse C2C in place");
	RT_CUDA(cudaMemcpyAsync(z, d, sizeof(z), cudaMemcpyDeviceToHost, s),
		"copy round trip");
	RT_CUDA(cudaStreamSynchronize(s), "sync");
	for (int i = 0; i < NX * BATCH; i++) {
		err = fmax(err, fabs(z[i].x / NX - x[i].x));
		err = fmax(err, fabs(z[i].y / NX - x[i].y));
		mag[i] = hypot(y[i].x, y[i].y);
	}
	rt_check(err < 1e-4, "inverse(forward(x)) / N == x");
	rt_note("round trip max abs error %g", err);
	for (int b = 0; b < BATCH; b++) {
		const double *m = mag + b * NX;

		peaks &= fabs(m[0] - 0.5 * NX) < 1e-2 &&
			 fabs(m[b + 1] - 0.5 * NX) < 1e-2 &&
			 fabs(m[3 * (b + 1)] - 0.125 * NX) < 1e-2 &&
			 m[2 * (b + 1) + 7] < 1e-2; /* an empty bin */
	}
	rt_check(peaks, "spectrum has the expected peaks");
	rt_digest("c2c_forward_magnitude", rt_digest_f64(mag, NX * BATCH, 1e2));
	cudaFree(d);
}

int main(void)
{
	cufftHandle plan = 0, h = 0;
	cudaStream_t s;
	size_t est = 0;
	int v = 0;
	cufftResult r;

	rt_start("fft", NULL);
	fft_ok(cufftGetVersion(&v), "cufftGetVersion");
	rt_note("cuFFT %d, built with %d", v, CUFFT_VERSION);
	RT_CUDA(cudaStreamCreate(&s), "cudaStreamCreate");
	fft_ok(cufftEstimate1d(NX, CUFFT_C2C, BATCH, &est), "cufftEstimate1d");
	fft_ok(cufftCreate(&h), "cufftCreate");
	fft_ok(cufftSetStream(h, s), "cufftSetStream on an empty handle");
	fft_ok(cufftDestroy(h), "cufftDestroy of an empty handle");

	r = cufftPlan1d(&plan, NX, CUFFT_C2C, BATCH);
	if (rt_host && r != CUFFT_SUCCESS) {
		rt_skip(RT_HOST_WHY, "cufftPlan1d");
		rt_note("host backend: cufftPlan1d gave cufftResult %d, "
			"runtime %s", (int)r, rt_ename(cudaGetLastError()));
	} else if (fft_ok(r, "cufftPlan1d C2C of %d, batch %d", NX, BATCH)) {
		fft_ok(cufftSetStream(plan, s), "cufftSetStream");
		if (rt_need_gpu("forward and inverse transforms"))
			check_transforms(plan, s);
		fft_ok(cufftDestroy(plan), "cufftDestroy");
	}
	RT_CUDA(cudaStreamDestroy(s), "cudaStreamDestroy");
	RT_CUDA(cudaDeviceSynchronize(), "final cudaDeviceSynchronize");
	return rt_done();
}

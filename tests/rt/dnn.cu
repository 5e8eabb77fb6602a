/* SPDX-License-Identifier: MIT */
/*
 * cuDNN: a handle on a stream, NCHW tensor descriptors, a ReLU activation
 * forward and a 3x3 convolution forward (implicit GEMM, padding 1) of a
 * small batch, checked against a CPU reference. Inputs are multiples of
 * 1/8, so the results are exact and their digests must match between a
 * native run and a run under cuvisor.
 *
 * On the host backend the handle, descriptor and workspace-size calls
 * run; the forward passes (kernels) are skipped.
 */
#include <cudnn.h>

#include "rtcheck.h"

#define BN 2  /* images */
#define CI 3  /* input channels */
#define CO 4  /* output channels */
#define HH 8
#define WW 8
#define KS 3

RT_PRINTF(2, 3) static bool dnn_ok(cudnnStatus_t r, const char *fmt, ...)
{
	va_list ap;
	bool ok;

	va_start(ap, fmt);
	ok = rt_vcheck(r == CUDNN_STATUS_SUCCESS, fmt, ap);
	va_end(ap);
	if (!ok) {
		char msg[512];

		cudnnGetLastErrorString(msg, sizeof(msg));
		rt_note("got %s (%d): %s; last runtime error %s",
			cudnnGetErrorString(r), (int)r, msg,
			rt_ename(cudaGetLastError()));
	}
	return ok;
}

static float val(int a, int b, int c, int d, int seed)
{
	return (float)(((a * 13 + b * 7 + c * 5 + d * 3 + seed) % 15) - 7) *
	       0.125f;
}

#define IX(n, c, h, w, C) ((((n) * (C) + (c)) * HH + (h)) * WW + (w))

/* Output (n, k, h, w) of the cross-correlation (cuDNN's default mode). */
static float conv_at(const float *x, const float *f, int n, int k, int h,
		     int w)
{
	double s = 0;

	for (int c = 0; c < CI; c++)
		for (int r = 0; r < KS; r++)
			for (int q = 0; q < KS; q++) {
				int ih = h + r - 1, iw = w + q - 1;

				if (ih < 0 || ih >= HH || iw < 0 || iw >= WW)
					continue;
				s += (double)x[IX(n, c, ih, iw, CI)] *
				     f[((k * CI + c) * KS + r) * KS + q];
			}
	return (float)s;
}

static void ref_conv(const float *x, const float *f, float *y)
{
	for (int n = 0; n < BN; n++)
		for (int k = 0; k < CO; k++)
			for (int h = 0; h < HH; h++)
				for (int w = 0; w < WW; w++)
					y[IX(n, k, h, w, CO)] =
						conv_at(x, f, n, k, h, w);
}

int main(void)
{
	static float x[BN * CI * HH * WW], f[CO * CI * KS * KS],
		y[BN * CO * HH * WW], want[BN * CO * HH * WW],
		act[BN * CI * HH * WW];
	cudnnHandle_t h = NULL;
	cudnnTensorDescriptor_t xd = NULL, yd = NULL;
	cudnnFilterDescriptor_t fd = NULL;
	cudnnConvolutionDescriptor_t cd = NULL;
	cudnnActivationDescriptor_t ad = NULL;
	cudnnConvolutionFwdAlgo_t algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
	float *dx = NULL, *df = NULL, *dy = NULL, *da = NULL, one = 1, zero = 0;
	void *ws = NULL;
	size_t wsz = 0;
	int on, oc, oh, ow, bad = 0;
	cudaStream_t s;

	rt_start("dnn", NULL);
	rt_note("cuDNN %zu (cudart %zu), built with %d", cudnnGetVersion(),
		cudnnGetCudartVersion(), CUDNN_VERSION);
	for (int n = 0; n < BN; n++)
		for (int c = 0; c < CI; c++)
			for (int i = 0; i < HH; i++)
				for (int j = 0; j < WW; j++)
					x[IX(n, c, i, j, CI)] = val(n, c, i, j, 1);
	for (int k = 0; k < CO; k++)
		for (int c = 0; c < CI; c++)
			for (int i = 0; i < KS; i++)
				for (int j = 0; j < KS; j++)
					f[((k * CI + c) * KS + i) * KS + j] =
						val(k, c, i, j, 2);
	ref_conv(x, f, want);

	if (!dnn_ok(cudnnCreate(&h), "cudnnCreate"))
		rt_bail("no cuDNN handle");
	RT_CUDA(cudaStreamCreate(&s), "cudaStreamCreate");
	dnn_ok(cudnnSetStream(h, s), "cudnnSetStream");
	dnn_ok(cudnnCreateTensorDescriptor(&xd), "create x descriptor");
	dnn_ok(cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
					  BN, CI, HH, WW), "set x descriptor");
	dnn_ok(cudnnCreateFilterDescriptor(&fd), "create filter descriptor");
	dnn_ok(cudnnSetFilter4dDescriptor(fd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW,
					  CO, CI, KS, KS), "set filter descriptor");
	dnn_ok(cudnnCreateConvolutionDescriptor(&cd),
	       "create convolution descriptor");
	dnn_ok(cudnnSetConvolution2dDescriptor(cd, 1, 1, 1, 1, 1, 1,
					       CUDNN_CROSS_CORRELATION,
					       CUDNN_DATA_FLOAT),
	       "set convolution descriptor");
	dnn_ok(cudnnGetConvolution2dForwardOutputDim(cd, xd, fd, &on, &oc, &oh,
						     &ow), "output dimensions");
	rt_check(on == BN && oc == CO && oh == HH && ow == WW,
		 "output is %dx%dx%dx%d", BN, CO, HH, WW);
	dnn_ok(cudnnCreateTensorDescriptor(&yd), "create y descriptor");
	dnn_ok(cudnnSetTensor4dDescriptor(yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
					  BN, CO, HH, WW), "set y descriptor");
	dnn_ok(cudnnGetConvolutionForwardWorkspaceSize(h, xd, fd, cd, yd, algo,
						       &wsz),
	       "cudnnGetConvolutionForwardWorkspaceSize");
	dnn_ok(cudnnCreateActivationDescriptor(&ad),
	       "create activation descriptor");
	dnn_ok(cudnnSetActivationDescriptor(ad, CUDNN_ACTIVATION_RELU,
					    CUDNN_NOT_PROPAGATE_NAN, 0.0),
	       "set ReLU");
	RT_CUDA(cudaMalloc(&dx, sizeof(x)), "cudaMalloc x");
	RT_CUDA(cudaMalloc(&df, sizeof(f)), "cudaMalloc filter");
	RT_CUDA(cudaMalloc(&dy, sizeof(y)), "cudaMalloc y");
	RT_CUDA(cudaMalloc(&da, sizeof(act)), "cudaMalloc activation");
	if (wsz)
		RT_CUDA(cudaMalloc(&ws, wsz), "cudaMalloc workspace");
	RT_CUDA(cudaMemcpyAsync(dx, x, sizeof(x), cudaMemcpyHostToDevice, s),
		"copy x");
	RT_CUDA(cudaMemcpyAsync(df, f, sizeof(f), cudaMemcpyHostToDevice, s),
		"copy filter");

	if (rt_need_gpu("ReLU activation forward")) {
		dnn_ok(cudnnActivationForward(h, ad, &one, xd, dx, &zero, xd, da),
		       "cudnnActivationForward");
		RT_CUDA(cudaMemcpyAsync(act, da, sizeof(act),
					cudaMemcpyDeviceToHost, s), "copy ReLU");
		RT_CUDA(cudaStreamSynchronize(s), "sync ReLU");
		for (size_t i = 0; i < RT_ARRAY_SIZE(x); i++)
			bad += act[i] != (x[i] > 0 ? x[i] : 0.0f);
		rt_check(bad == 0, "ReLU is right");
		rt_digest("relu", rt_digest_f32(act, RT_ARRAY_SIZE(act), 1e3));
	}
	if (rt_need_gpu("convolution forward")) {
		dnn_ok(cudnnConvolutionForward(h, &one, xd, dx, fd, df, cd, algo,
					       ws, wsz, &zero, yd, dy),
		       "cudnnConvolutionForward");
		RT_CUDA(cudaMemcpyAsync(y, dy, sizeof(y),
					cudaMemcpyDeviceToHost, s), "copy y");
		RT_CUDA(cudaStreamSynchronize(s), "sync convolution");
		bad = 0;
		for (size_t i = 0; i < RT_ARRAY_SIZE(y); i++)
			bad += fabsf(y[i] - want[i]) > 1e-4f;
		rt_check(bad == 0, "convolution matches the CPU reference");
		rt_digest("conv_fwd", rt_digest_f32(y, RT_ARRAY_SIZE(y), 1e3));
	}
	dnn_ok(cudnnDestroyActivationDescriptor(ad), "destroy activation");
	dnn_ok(cudnnDestroyConvolutionDescriptor(cd), "destroy convolution");
	dnn_ok(cudnnDestroyFilterDescriptor(fd), "destroy filter");
	dnn_ok(cudnnDestroyTensorDescriptor(xd), "destroy x descriptor");
	dnn_ok(cudnnDestroyTensorDescriptor(yd), "destroy y descriptor");
	dnn_ok(cudnnDestroy(h), "cudnnDestroy");
	cudaFree(dx);
	cudaFree(df);
	cudaFree(dy);
	cudaFree(da);
	cudaFree(ws);
	RT_CUDA(cudaStreamDestroy(s), "cudaStreamDestroy");
	return rt_done();
}

/* SPDX-License-Identifier: MIT */
/*
 * Device queries, answered locally from the device description the worker
 * put in the region at attach. The vGPU is device 0.
 */
#include <stdio.h>
#include <string.h>

#include "errors.h"
#include "guest.h"

static int dev_check(CUdevice d)
{
	int rc = cv_g_ready();

	if (rc)
		return rc;
	return d == 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_DEVICE;
}

CV_API CUresult cuDeviceGetCount(int *count)
{
	int rc;

	if (!count)
		return CUDA_ERROR_INVALID_VALUE;
	rc = cv_g_ready();
	if (rc)
		return rc;
	*count = 1;
	return CUDA_SUCCESS;
}

CV_API CUresult cuDeviceGet(CUdevice *dev, int ordinal)
{
	int rc;

	if (!dev)
		return CUDA_ERROR_INVALID_VALUE;
	rc = cv_g_ready();
	if (rc)
		return rc;
	if (ordinal != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	*dev = 0;
	return CUDA_SUCCESS;
}

CV_API CUresult cuDeviceGetName(char *name, int len, CUdevice dev)
{
	int rc;

	if (!name || len <= 0)
		return CUDA_ERROR_INVALID_VALUE;
	rc = dev_check(dev);
	if (rc)
		return rc;
	snprintf(name, (size_t)len, "%s", g.dev.name);
	return CUDA_SUCCESS;
}

static CUresult get_uuid(CUuuid *uuid, CUdevice dev)
{
	int rc;

	if (!uuid)
		return CUDA_ERROR_INVALID_VALUE;
	rc = dev_check(dev);
	if (rc)
		return rc;
	memcpy(uuid->bytes, g.dev.uuid, sizeof(uuid->bytes));
	return CUDA_SUCCESS;
}

/* Both ABIs return the same UUID (the old one was meant for MIG). */
CV_API CUresult cuDeviceGetUuid(CUuuid *uuid, CUdevice dev)
{
	return get_uuid(uuid, dev);
}

CV_API CUresult cuDeviceGetUuid_v2(CUuuid *uuid, CUdevice dev)
{
	return get_uuid(uuid, dev);
}

CV_API CUresult cuDeviceGetLuid(char *luid, unsigned int *mask, CUdevice dev)
{
	return CUDA_ERROR_NOT_SUPPORTED; /* Windows only */
}

CV_API CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev)
{
	int rc;

	if (!bytes)
		return CUDA_ERROR_INVALID_VALUE;
	rc = dev_check(dev);
	if (rc)
		return rc;
	*bytes = g.dev.total_mem;
	return CUDA_SUCCESS;
}

/* The CUDA 2.x ABI with a 32-bit size. */
CV_API CUresult cuDeviceTotalMem(unsigned int *bytes, CUdevice dev)
{
	size_t b = 0;
	CUresult rc;

	if (!bytes)
		return CUDA_ERROR_INVALID_VALUE;
	rc = cuDeviceTotalMem_v2(&b, dev);
	if (!rc)
		*bytes = b > UINT32_MAX ? UINT32_MAX : (unsigned int)b;
	return rc;
}

CV_API CUresult cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib,
				     CUdevice dev)
{
	int rc;

	if (!pi)
		return CUDA_ERROR_INVALID_VALUE;
	rc = dev_check(dev);
	if (rc)
		return rc;
	if ((int)attrib <= 0 || attrib >= CU_DEVICE_ATTRIBUTE_MAX ||
	    (int)attrib >= CV_DEV_NATTR)
		return CUDA_ERROR_INVALID_VALUE;
	*pi = g.dev.attr[attrib];
	return CUDA_SUCCESS;
}

CV_API CUresult cuDeviceComputeCapability(int *major, int *minor,
					  CUdevice dev)
{
	int rc;

	if (!major || !minor)
		return CUDA_ERROR_INVALID_VALUE;
	rc = dev_check(dev);
	if (rc)
		return rc;
	*major = g.dev.cc_major;
	*minor = g.dev.cc_minor;
	return CUDA_SUCCESS;
}

CV_API CUresult cuDeviceGetProperties(CUdevprop *p, CUdevice dev)
{
	const int32_t *a = g.dev.attr;
	int rc;

	if (!p)
		return CUDA_ERROR_INVALID_VALUE;
	rc = dev_check(dev);
	if (rc)
		return rc;
	p->maxThreadsPerBlock = a[CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK];
	p->maxThreadsDim[0] = a[CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X];
	p->maxThreadsDim[1] = a[CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y];
	p->maxThreadsDim[2] = a[CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z];
	p->maxGridSize[0] = a[CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X];
	p->maxGridSize[1] = a[CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y];
	p->maxGridSize[2] = a[CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z];
	p->sharedMemPerBlock = a[CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK];
	p->totalConstantMemory = a[CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY];
	p->SIMDWidth = a[CU_DEVICE_ATTRIBUTE_WARP_SIZE];
	p->memPitch = a[CU_DEVICE_ATTRIBUTE_MAX_PITCH];
	p->regsPerBlock = a[CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK];
	p->clockRate = a[CU_DEVICE_ATTRIBUTE_CLOCK_RATE];
	p->textureAlign = a[CU_DEVICE_ATTRIBUTE_TEXTURE_ALIGNMENT];
	return CUDA_SUCCESS;
}

CV_API CUresult cuDeviceGetPCIBusId(char *bus, int len, CUdevice dev)
{
	int rc;

	if (!bus || len <= 0)
		return CUDA_ERROR_INVALID_VALUE;
	rc = dev_check(dev);
	if (rc)
		return rc;
	snprintf(bus, (size_t)len, "%08x:%02x:%02x.0",
		 (unsigned)g.dev.pci_domain, (unsigned)g.dev.pci_bus,
		 (unsigned)g.dev.pci_device);
	return CUDA_SUCCESS;
}

CV_API CUresult cuDeviceGetByPCIBusId(CUdevice *dev, const char *bus)
{
	unsigned dom = 0, b = 0, d = 0, fn = 0;
	int rc;

	if (!dev || !bus)
		return CUDA_ERROR_INVALID_VALUE;
	rc = cv_g_ready();
	if (rc)
		return rc;
	/* domain:bus:device.function or bus:device.function */
	if (sscanf(bus, "%x:%x:%x.%x", &dom, &b, &d, &fn) != 4) {
		dom = 0;
		if (sscanf(bus, "%x:%x.%x", &b, &d, &fn) != 3)
			return CUDA_ERROR_INVALID_VALUE;
	}
	if (dom != (unsigned)g.dev.pci_domain || b != (unsigned)g.dev.pci_bus ||
	    d != (unsigned)g.dev.pci_device)
		return CUDA_ERROR_INVALID_DEVICE;
	*dev = 0;
	return CUDA_SUCCESS;
}

static const struct cv_errname *errname(CUresult e)
{
	unsigned lo = 0, hi = cv_nerrnames, mid;

	while (lo < hi) {
		mid = (lo + hi) / 2;
		if (cv_errnames[mid].value == (int)e)
			return &cv_errnames[mid];
		if (cv_errnames[mid].value < (int)e)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

CV_API CUresult cuGetErrorName(CUresult e, const char **s)
{
	const struct cv_errname *n = errname(e);

	if (!s)
		return CUDA_ERROR_INVALID_VALUE;
	*s = n ? n->name : NULL;
	return n ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

CV_API CUresult cuGetErrorString(CUresult e, const char **s)
{
	const struct cv_errname *n = errname(e);

	if (!s)
		return CUDA_ERROR_INVALID_VALUE;
	*s = n ? n->desc : NULL;
	return n ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

/* SPDX-License-Identifier: MIT */
/*
 * Device queries: what the runtime reads at start-up (cudart builds
 * cudaDeviceProp from these) must be present, consistent and stable.
 *
 * CVT_EXPECT_MEM=BYTES (set by tests/run.sh together with `cuvisor run
 * --mem`) makes cuDeviceTotalMem be compared with the quota.
 */
#include "cvtest.h"

static int attr(CUdevice dev, CUdevice_attribute a, const char *name)
{
	int v = -1;
	CUresult r = cuDeviceGetAttribute(&v, a, dev);

	cvt_cu(r, CUDA_SUCCESS, "cuDeviceGetAttribute(%s)", name);
	cvt_note("%s = %d", name, v);
	return v;
}
#define ATTR(dev, a) attr(dev, a, #a)

static void check_attributes(CUdevice dev)
{
	int v, tpb, bx, major, minor;

	major = ATTR(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
	minor = ATTR(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
	cvt_check(major >= 1 && minor >= 0, "compute capability is plausible");
	tpb = ATTR(dev, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK);
	cvt_check(tpb >= 64 && tpb <= 4096, "max threads per block is plausible");
	bx = ATTR(dev, CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X);
	cvt_check(bx >= tpb, "max block dim x >= max threads per block");
	v = ATTR(dev, CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X);
	cvt_check(v >= 65535, "max grid dim x >= 65535");
	v = ATTR(dev, CU_DEVICE_ATTRIBUTE_WARP_SIZE);
	cvt_check(v == 32, "warp size is 32");
	v = ATTR(dev, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
	cvt_check(v >= 1, "at least one multiprocessor");
	v = ATTR(dev, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK);
	cvt_check(v >= 16384, "shared memory per block >= 16 KiB");
	v = ATTR(dev, CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING);
	cvt_check(v == 1, "unified addressing");
	v = ATTR(dev, CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY);
	cvt_check(v == 1, "can map host memory");
	v = ATTR(dev, CU_DEVICE_ATTRIBUTE_CLOCK_RATE);
	cvt_check(v > 0, "clock rate > 0");
	v = ATTR(dev, CU_DEVICE_ATTRIBUTE_PCI_BUS_ID);
	cvt_check(v >= 0 && v <= 255, "PCI bus id in 0..255");
	v = ATTR(dev, CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID);
	cvt_check(v >= 0 && v <= 31, "PCI device id in 0..31");
	v = -1;
	cvt_check(cuDeviceGetAttribute(&v, (CUdevice_attribute)100000, dev) ==
		  CUDA_ERROR_INVALID_VALUE,
		  "unknown attribute is CUDA_ERROR_INVALID_VALUE");
}

static void check_pci(CUdevice dev)
{
	char bus[64] = { 0 };
	unsigned dom, b, d, fn;
	int adom = -1, abus = -1, adev = -1;
	CUdevice back = -1;

	if (!CVT_CU(cuDeviceGetPCIBusId(bus, sizeof(bus), dev),
		    "cuDeviceGetPCIBusId"))
		return;
	cvt_note("PCI bus id %s", bus);
	cvt_check(sscanf(bus, "%x:%x:%x.%x", &dom, &b, &d, &fn) == 4,
		  "PCI bus id has the form dddd:bb:dd.f");
	cuDeviceGetAttribute(&adom, CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID, dev);
	cuDeviceGetAttribute(&abus, CU_DEVICE_ATTRIBUTE_PCI_BUS_ID, dev);
	cuDeviceGetAttribute(&adev, CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID, dev);
	cvt_check((int)dom == adom && (int)b == abus && (int)d == adev,
		  "PCI bus id agrees with the PCI attributes");
	CVT_CU(cuDeviceGetByPCIBusId(&back, bus), "cuDeviceGetByPCIBusId");
	cvt_check(back == dev, "PCI bus id round trip gives the same device");
	back = -1;
	cvt_check(cuDeviceGetByPCIBusId(&back, "7fff:fe:1f.7") != CUDA_SUCCESS,
		  "an absent PCI bus id is refused");
}

static void check_mem(CUdevice dev)
{
	size_t total = 0;
	const char *want = getenv("CVT_EXPECT_MEM");

	CVT_CU(cuDeviceTotalMem(&total, dev), "cuDeviceTotalMem");
	cvt_note("total memory %zu bytes", total);
	if (want && *want) {
		unsigned long long w = strtoull(want, NULL, 0);

		cvt_check(total == w, "total memory equals the expected quota");
		if (total != w)
			cvt_note("want %llu", w);
	} else {
		cvt_check(total >= (64ull << 20),
			  "total memory equals the expected quota");
	}
}

int main(int argc, char **argv)
{
	CUdevice dev = -1, bad;
	int count = 0, ver = 0;
	char name[256];
	CUuuid u1, u2, zero;

	cvt_cu(cuDeviceGetCount(&count), CUDA_ERROR_NOT_INITIALIZED,
	       "cuDeviceGetCount before cuInit is NOT_INITIALIZED");
	CVT_CU(cuInit(0), "cuInit");
	CVT_CU(cuInit(0), "cuInit again");
	CVT_CU(cuDriverGetVersion(&ver), "cuDriverGetVersion");
	cvt_note("driver version %d", ver);
	cvt_check(ver >= CUDA_VERSION, "driver version >= the header's %d",
		  CUDA_VERSION);
	CVT_CU(cuDeviceGetCount(&count), "cuDeviceGetCount");
	cvt_note("%d devices", count);
	if (!cvt_check(count >= 1, "at least one device"))
		cvt_bail("no device");
	CVT_CU(cuDeviceGet(&dev, 0), "cuDeviceGet(0)");
	cvt_cu(cuDeviceGet(&bad, count), CUDA_ERROR_INVALID_DEVICE,
	       "cuDeviceGet(count) is INVALID_DEVICE");

	memset(name, 0x7f, sizeof(name));
	CVT_CU(cuDeviceGetName(name, sizeof(name), dev), "cuDeviceGetName");
	cvt_check(memchr(name, 0, sizeof(name)) && name[0],
		  "device name is non-empty and NUL-terminated");
	cvt_note("name \"%.*s\"", (int)sizeof(name), name);

	memset(&u1, 0, sizeof(u1));
	memset(&u2, 0xff, sizeof(u2));
	memset(&zero, 0, sizeof(zero));
	CVT_CU(cuDeviceGetUuid(&u1, dev), "cuDeviceGetUuid");
	CVT_CU(cuDeviceGetUuid(&u2, dev), "cuDeviceGetUuid again");
	cvt_check(memcmp(&u1, &zero, sizeof(u1)) != 0, "uuid is not all zeros");
	cvt_check(memcmp(&u1, &u2, sizeof(u1)) == 0, "uuid is stable");

	check_mem(dev);
	check_attributes(dev);
	check_pci(dev);
	(void)argc;
	(void)argv;
	return cvt_done();
}

/* SPDX-License-Identifier: MIT */
/*
 * cuGetProcAddress and the generated table, linked alone: guest/procaddr.c,
 * $(O)/gen/procaddr_table.c and the weak stubs of $(O)/gen/stubs.c (so
 * every symbol the table names exists), plus core/log.c. No GPU needed.
 *
 *   make build/tests/test_procaddr && build/tests/test_procaddr
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cuda.h>

#include "../core/log.h"
#include "../guest/procaddr.h"

/* The 4-argument ABI, which cuda.h only declares for the driver's build. */
#undef cuGetProcAddress
CUresult CUDAAPI cuGetProcAddress(const char *symbol, void **pfn,
				  int cudaVersion, cuuint64_t flags);
CUresult CUDAAPI cuGetProcAddress_v2_ptsz(const char *symbol, void **pfn,
					  int cudaVersion, cuuint64_t flags,
					  CUdriverProcAddressQueryResult *status);

static int passed, failed;

#define CHECK(cond, ...)                                               \
	do {                                                           \
		if (cond) {                                            \
			passed++;                                      \
		} else {                                               \
			failed++;                                      \
			printf("FAIL %s:%d: ", __FILE__, __LINE__);    \
			printf(__VA_ARGS__);                           \
			printf("\n");                                  \
		}                                                      \
	} while (0)

/* The exported symbol name of a table address, or "(null)"/"?". */
static const char *sym_of(void *fn)
{
	unsigned int i;

	if (!fn)
		return "(null)";
	for (i = 0; i < cv_procaddr_count; i++)
		if ((void *)cv_procaddr_table[i].fn == fn)
			return cv_procaddr_table[i].sym;
	return "?";
}

/* Looks name@version up through the public entry point; the symbol. */
static const char *resolve(const char *name, int version, int per_thread)
{
	CUdriverProcAddressQueryResult st = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
	void *fn = NULL;
	CUresult r;

	r = cuGetProcAddress_v2(name, &fn, version,
				per_thread ? CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM
					   : CU_GET_PROC_ADDRESS_DEFAULT, &st);
	if (r != CUDA_SUCCESS || st != CU_GET_PROC_ADDRESS_SUCCESS)
		return "(error)";
	return sym_of(fn);
}

static void expect(const char *name, int version, int per_thread,
		   const char *sym)
{
	const char *got = resolve(name, version, per_thread);

	CHECK(!strcmp(got, sym), "%s@%d%s -> %s, want %s", name, version,
	      per_thread ? " per-thread" : "", got, sym);
}

static void test_known_facts(void)
{
	expect("cuCtxCreate", 2000, 0, "cuCtxCreate");
	expect("cuCtxCreate", 3020, 0, "cuCtxCreate_v2");
	expect("cuCtxCreate", 11030, 0, "cuCtxCreate_v2");
	expect("cuCtxCreate", 11040, 0, "cuCtxCreate_v3");
	expect("cuCtxCreate", 12050, 0, "cuCtxCreate_v4");
	expect("cuCtxCreate", 13000, 1, "cuCtxCreate_v4");
	expect("cuCtxSynchronize", 2000, 0, "cuCtxSynchronize");
	expect("cuCtxSynchronize", 12090, 0, "cuCtxSynchronize");
	expect("cuCtxSynchronize", 13000, 0, "cuCtxSynchronize_v2");
	CHECK(strcmp(resolve("cuCtxSynchronize", 2000, 0),
		     resolve("cuCtxSynchronize", 13000, 0)),
	      "cuCtxSynchronize@2000 and @13000 are one symbol");
	expect("cuMemAlloc", 2000, 0, "cuMemAlloc");
	expect("cuMemAlloc", 3020, 0, "cuMemAlloc_v2");
	expect("cuMemAlloc", 13000, 0, "cuMemAlloc_v2");
	expect("cuMemcpyAsync", 13000, 0, "cuMemcpyAsync");
	expect("cuMemcpyAsync", 13000, 1, "cuMemcpyAsync_ptsz");
	expect("cuLaunchKernel", 13000, 0, "cuLaunchKernel");
	expect("cuLaunchKernel", 13000, 1, "cuLaunchKernel_ptsz");
	expect("cuMemcpyHtoD", 13000, 1, "cuMemcpyHtoD_v2_ptds");
	/* No per-thread ABI before 7.0: the legacy one, not an older ABI. */
	expect("cuMemcpyHtoD", 3020, 1, "cuMemcpyHtoD_v2");
	expect("cuStreamBeginCapture", 10000, 1, "cuStreamBeginCapture_ptsz");
	expect("cuStreamBeginCapture", 13000, 1, "cuStreamBeginCapture_v2_ptsz");
	expect("cuGetProcAddress", 11030, 0, "cuGetProcAddress");
	expect("cuGetProcAddress", 11090, 0, "cuGetProcAddress");
	expect("cuGetProcAddress", 12000, 0, "cuGetProcAddress_v2");
}

/* The runtime's bootstrap: the real addresses of the two ABIs. */
static void test_get_proc_address_abi(void)
{
	void *fn = NULL;

	CHECK(cuGetProcAddress_v2("cuGetProcAddress", &fn, 11030, 0, NULL) ==
	      CUDA_SUCCESS && fn == (void *)cuGetProcAddress,
	      "@11030 is not the 4-argument cuGetProcAddress");
	CHECK(cuGetProcAddress("cuGetProcAddress", &fn, 12000, 0) ==
	      CUDA_SUCCESS && fn == (void *)cuGetProcAddress_v2,
	      "@12000 is not cuGetProcAddress_v2");
	CHECK(cuGetProcAddress("cuMemcpyAsync", &fn, 13000,
			       CU_GET_PROC_ADDRESS_LEGACY_STREAM) ==
	      CUDA_SUCCESS && !strcmp(sym_of(fn), "cuMemcpyAsync"),
	      "LEGACY_STREAM flag gives %s", sym_of(fn));
	CHECK(cuGetProcAddress_v2_ptsz("cuMemcpyAsync", &fn, 13000, 0, NULL) ==
	      CUDA_SUCCESS && !strcmp(sym_of(fn), "cuMemcpyAsync_ptsz"),
	      "_v2_ptsz with flags 0 gives %s", sym_of(fn));
	CHECK(cuGetProcAddress_v2_ptsz("cuMemcpyAsync", &fn, 13000,
				       CU_GET_PROC_ADDRESS_LEGACY_STREAM,
				       NULL) == CUDA_SUCCESS &&
	      !strcmp(sym_of(fn), "cuMemcpyAsync"),
	      "_v2_ptsz with LEGACY_STREAM gives %s", sym_of(fn));
}

/* The table is sorted and every row answers its own question. */
static void test_every_row(void)
{
	const struct cv_procaddr_entry *e, *p;
	unsigned int i, bad_order = 0, bad_row = 0, bad_sym = 0;
	void *fn;
	int st, c;

	CHECK(cv_procaddr_count > 600, "only %u rows", cv_procaddr_count);
	for (i = 0; i < cv_procaddr_count; i++) {
		e = &cv_procaddr_table[i];
		if (i) {
			p = e - 1;
			c = strcmp(p->name, e->name);
			if (c > 0 || (!c && (p->per_thread > e->per_thread ||
					     (p->per_thread == e->per_thread &&
					      p->version >= e->version))))
				bad_order++;
		}
		if (strncmp(e->sym, e->name, strlen(e->name)) || !e->fn)
			bad_sym++;
		fn = NULL;
		st = -1;
		if (cv_procaddr_lookup(e->name, e->version, e->per_thread,
				       &fn, &st) || st != CU_GET_PROC_ADDRESS_SUCCESS ||
		    fn != (void *)e->fn) {
			bad_row++;
			printf("row %s@%d%s (%s) resolves to %s\n", e->name,
			       e->version, e->per_thread ? " per-thread" : "",
			       e->sym, sym_of(fn));
		}
	}
	CHECK(!bad_order, "%u rows out of order", bad_order);
	CHECK(!bad_sym, "%u rows with a foreign symbol", bad_sym);
	CHECK(!bad_row, "%u of %u rows do not resolve to themselves", bad_row,
	      cv_procaddr_count);
}

static int has_per_thread(const char *name)
{
	unsigned int i;

	for (i = 0; i < cv_procaddr_count; i++)
		if (cv_procaddr_table[i].per_thread &&
		    !strcmp(cv_procaddr_table[i].name, name))
			return 1;
	return 0;
}

/* Non-stream calls: per-thread asks answer exactly as legacy asks. */
static void test_per_thread_fallback(void)
{
	const struct cv_procaddr_entry *e;
	unsigned int i, n = 0, bad = 0;
	void *a, *b;
	int sa, sb;

	for (i = 0; i < cv_procaddr_count; i++) {
		e = &cv_procaddr_table[i];
		if (has_per_thread(e->name))
			continue;
		n++;
		cv_procaddr_lookup(e->name, e->version, 0, &a, &sa);
		cv_procaddr_lookup(e->name, e->version, 1, &b, &sb);
		if (a != b || sa != sb || a != (void *)e->fn)
			bad++;
		cv_procaddr_lookup(e->name, 13000, 0, &a, &sa);
		cv_procaddr_lookup(e->name, 13000, 1, &b, &sb);
		if (a != b || sa != sb)
			bad++;
	}
	CHECK(n > 300 && !bad, "%u of %u non-stream rows differ per-thread",
	      bad, n);
	expect("cuInit", 13000, 1, "cuInit");
}

static void test_not_found(void)
{
	CUdriverProcAddressQueryResult st = CU_GET_PROC_ADDRESS_SUCCESS;
	void *fn = &st;
	int ist = -1;

	CHECK(cv_procaddr_lookup("cuNoSuchCall", 13000, 0, &fn, &ist) ==
	      -ENOENT && !fn && ist == CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND,
	      "unknown name: status %d", ist);
	/* An exported symbol is not an API name. */
	CHECK(cv_procaddr_lookup("cuMemAlloc_v2", 13000, 0, &fn, &ist) ==
	      -ENOENT && ist == CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND,
	      "cuMemAlloc_v2 is found");
	CHECK(cv_procaddr_lookup(NULL, 13000, 0, &fn, &ist) == -EINVAL,
	      "NULL name");
	/* The runtime's probe: an empty name, anything but STUB_LIBRARY. */
	fn = &st;
	CHECK(cuGetProcAddress_v2("", &fn, 13000, 0, &st) == CUDA_SUCCESS &&
	      !fn && st == CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND,
	      "empty name: SUCCESS, NULL, SYMBOL_NOT_FOUND (as the driver)");
	fn = &st;
	CHECK(cuGetProcAddress_v2("", &fn, 13000, 0, NULL) ==
	      CUDA_ERROR_NOT_FOUND && !fn, "empty name without a status");
	fn = &st;
	CHECK(cuGetProcAddress("cuNoSuchCall", &fn, 13000, 0) ==
	      CUDA_ERROR_NOT_FOUND && !fn, "unknown name, 4-argument ABI");
}

static void test_version_not_sufficient(void)
{
	CUdriverProcAddressQueryResult st = CU_GET_PROC_ADDRESS_SUCCESS;
	void *fn = &st;
	int ist = -1;

	CHECK(cv_procaddr_lookup("cuCtxCreate", 1000, 0, &fn, &ist) ==
	      -ENOENT && !fn &&
	      ist == CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT,
	      "cuCtxCreate@1000: status %d", ist);
	fn = &st;
	CHECK(cuGetProcAddress_v2("cuLibraryLoadData", &fn, 11080, 0, &st) ==
	      CUDA_SUCCESS && !fn &&
	      st == CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT,
	      "cuLibraryLoadData@11080: status %d", (int)st);
	expect("cuLibraryLoadData", 12000, 0, "cuLibraryLoadData");
}

static void test_invalid(void)
{
	void *fn = NULL;

	CHECK(cuGetProcAddress_v2("cuInit", NULL, 13000, 0, NULL) ==
	      CUDA_ERROR_INVALID_VALUE, "NULL pfn");
	CHECK(cuGetProcAddress_v2(NULL, &fn, 13000, 0, NULL) ==
	      CUDA_ERROR_INVALID_VALUE, "NULL name");
	CHECK(cuGetProcAddress_v2("cuInit", &fn, 13000, 4, NULL) ==
	      CUDA_ERROR_INVALID_VALUE && !fn, "unknown flag");
}

/* ------------------------------------------------ unsupported stubs --- */

static char log_path[] = "/tmp/cv-test-procaddr-XXXXXX";

static unsigned int log_count(const char *needle)
{
	char line[1200];
	unsigned int n = 0;
	FILE *f = fopen(log_path, "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, needle))
			n++;
	fclose(f);
	return n;
}

#define NTHREADS 8
#define NNAMES 64
static char thread_names[NNAMES][24];

static void *hammer(void *arg)
{
	unsigned int i, k;

	for (k = 0; k < 50; k++)
		for (i = 0; i < NNAMES; i++)
			cv_guest_unsupported(
				thread_names[(i + (uintptr_t)arg) % NNAMES]);
	return NULL;
}

static void test_unsupported(void)
{
	pthread_t th[NTHREADS];
	unsigned int i, bad = 0;
	int (*stub)(void);
	void *fn = NULL;
	char *copy;
	int fd;

	fd = mkstemp(log_path);
	CHECK(fd >= 0, "mkstemp: %s", strerror(errno));
	if (fd < 0)
		return;
	close(fd);
	cv_log_init("test_procaddr", CV_LOG_WARN, log_path);

	/* An unimplemented entry point, reached through the table. */
	CHECK(cuGetProcAddress_v2("cuDeviceGetLuid", &fn, 13000, 0, NULL) ==
	      CUDA_SUCCESS && fn, "cuDeviceGetLuid not found");
	if (fn) {
		stub = (int (*)(void))fn;
		CHECK(stub() == CUDA_ERROR_NOT_SUPPORTED, "stub result");
		CHECK(stub() == CUDA_ERROR_NOT_SUPPORTED, "stub result");
	}
	copy = strdup("cuDeviceGetLuid"); /* same name, other pointer */
	CHECK(cv_guest_unsupported(copy) == CUDA_ERROR_NOT_SUPPORTED,
	      "direct result");
	CHECK(log_count("cuDeviceGetLuid:") == 1, "logged %u times, want 1",
	      log_count("cuDeviceGetLuid:"));

	for (i = 0; i < NNAMES; i++)
		snprintf(thread_names[i], sizeof(thread_names[i]),
			 "cuRaceName%02u", i);
	for (i = 0; i < NTHREADS; i++)
		pthread_create(&th[i], NULL, hammer, (void *)(uintptr_t)i);
	for (i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < NNAMES; i++) {
		char needle[32];

		snprintf(needle, sizeof(needle), "cuRaceName%02u:", i);
		if (log_count(needle) != 1)
			bad++;
	}
	CHECK(!bad, "%u of %u names not logged exactly once from %u threads",
	      bad, NNAMES, NTHREADS);

	/* Logging off (the guest's default): silent, same answer. */
	cv_log_init("test_procaddr", CV_LOG_OFF, NULL);
	CHECK(cv_guest_unsupported("cuQuietName") == CUDA_ERROR_NOT_SUPPORTED &&
	      log_count("cuQuietName") == 0, "logged while off");
	free(copy);
	unlink(log_path);
}

int main(void)
{
	cv_log_init("test_procaddr", CV_LOG_OFF, NULL);
	test_known_facts();
	test_get_proc_address_abi();
	test_every_row();
	test_per_thread_fallback();
	test_not_found();
	test_version_not_sufficient();
	test_invalid();
	test_unsupported();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

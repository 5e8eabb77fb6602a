/* SPDX-License-Identifier: MIT */
/*
 * The comparison for evict + resume: NVIDIA's own stop-the-world process
 * checkpoint (cuCheckpointProcessLock/Checkpoint/Restore/Unlock), called on
 * a native child process holding MIB of device memory that it filled with
 * a pattern, and then verifies after the restore.
 *
 *	ckpt_native MIB
 *
 * Prints "metric ckpt_checkpoint_ms V ms", "metric ckpt_restore_ms V ms"
 * (lock + checkpoint, restore + unlock) and "metric ckpt_ok 1|0 count".
 * Runs on the real driver only (not under cuvisor).
 */
#include <cuda.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

#define CK(x)                                                              \
	do {                                                               \
		CUresult r_ = (x);                                         \
		if (r_) {                                                  \
			const char *s_ = "?";                              \
			cuGetErrorName(r_, &s_);                           \
			fprintf(stderr, "%s: %s\n", #x, s_);               \
			exit(1);                                           \
		}                                                          \
	} while (0)

/* The child: allocate, fill, say ready, wait, verify. */
static int child(uint64_t bytes, int ready_fd, int go_fd)
{
	CUdevice d;
	CUcontext c;
	CUdeviceptr p;
	uint32_t *h;
	uint64_t i, n = bytes / 4, bad = 0;
	char b = 1;

	CK(cuInit(0));
	CK(cuDeviceGet(&d, 0));
	CK(cuDevicePrimaryCtxRetain(&c, d));
	CK(cuCtxSetCurrent(c));
	CK(cuMemAlloc(&p, bytes));
	CK(cuMemsetD32(p, 0x5a5a5a5a, n));
	CK(cuCtxSynchronize());
	if (write(ready_fd, &b, 1) != 1 || read(go_fd, &b, 1) != 1)
		return 2;
	/* after the checkpoint and restore: the memory must be intact */
	h = malloc(64 << 20);
	for (i = 0; h && i < bytes; i += 64 << 20) {
		uint64_t len = bytes - i < (64 << 20) ? bytes - i : 64 << 20;
		CK(cuMemcpyDtoH(h, p + i, len));
		for (uint64_t k = 0; k < len / 4; k++)
			bad += h[k] != 0x5a5a5a5au;
	}
	free(h);
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	uint64_t bytes = (argc > 1 ? strtoull(argv[1], NULL, 0) : 1024) << 20;
	CUcheckpointLockArgs la;
	CUcheckpointCheckpointArgs ca;
	CUcheckpointRestoreArgs ra;
	CUcheckpointUnlockArgs ua;
	int up[2], down[2], st = 0;
	double t0, t1, t2;
	pid_t pid;
	char b;

	if (pipe(up) || pipe(down))
		return 2;
	pid = fork();
	if (pid == 0)
		_exit(child(bytes, up[1], down[0]));
	if (read(up[0], &b, 1) != 1) {
		fprintf(stderr, "ckpt_native: the child did not start\n");
		return 1;
	}
	CK(cuInit(0));
	memset(&la, 0, sizeof(la));
	memset(&ca, 0, sizeof(ca));
	memset(&ra, 0, sizeof(ra));
	memset(&ua, 0, sizeof(ua));
	t0 = now_ms();
	CK(cuCheckpointProcessLock(pid, &la));
	CK(cuCheckpointProcessCheckpoint(pid, &ca));
	t1 = now_ms();
	CK(cuCheckpointProcessRestore(pid, &ra));
	CK(cuCheckpointProcessUnlock(pid, &ua));
	t2 = now_ms();
	b = 1;
	if (write(down[1], &b, 1) != 1)
		return 2;
	waitpid(pid, &st, 0);
	printf("metric ckpt_checkpoint_ms %.1f ms\n", t1 - t0);
	printf("metric ckpt_restore_ms %.1f ms\n", t2 - t1);
	printf("metric ckpt_ok %d count\n",
	       WIFEXITED(st) && WEXITSTATUS(st) == 0);
	return 0;
}

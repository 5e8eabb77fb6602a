/* SPDX-License-Identifier: MIT */
/*
 * Small helpers shared by every cuvisor component: overflow-checked size
 * arithmetic, alignment, compiler barriers and CPU relax.
 */
#ifndef CV_UTIL_H
#define CV_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CV_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define CV_MIN(a, b) ((a) < (b) ? (a) : (b))
#define CV_MAX(a, b) ((a) > (b) ? (a) : (b))
#define CV_UNUSED __attribute__((unused))
#define CV_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define CV_LIKELY(x) __builtin_expect(!!(x), 1)
#define CV_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Round x up to a multiple of the power of two a; 0 on overflow. */
static inline uint64_t cv_align_up(uint64_t x, uint64_t a)
{
	uint64_t r;

	if (__builtin_add_overflow(x, a - 1, &r))
		return 0;
	return r & ~(a - 1);
}

static inline bool cv_is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

/*
 * True when [off, off + len) lies inside [0, size). Written so that no
 * intermediate sum can wrap: every length and offset from a peer goes
 * through this or cv_range_in.
 */
static inline bool cv_range_ok(uint64_t off, uint64_t len, uint64_t size)
{
	return off <= size && len <= size - off;
}

/* True when [a, a + len) lies inside [base, base + size). */
static inline bool cv_range_in(uint64_t a, uint64_t len, uint64_t base,
			       uint64_t size)
{
	return a >= base && cv_range_ok(a - base, len, size);
}

static inline void cv_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/* Monotonic nanoseconds. */
uint64_t cv_now_ns(void);

/* Writes n bytes as 2n lowercase hex digits and a NUL into out. */
void cv_hex(const uint8_t *p, size_t n, char *out);
/* Reads the 2n hex digits (either case) at s into n bytes: 0, or -EINVAL
 * when one of them is not a hex digit (out is then partly written). */
int cv_unhex(const char *s, size_t n, uint8_t *out);

/*
 * A secret for a process we are about to exec (a tenant's token for its
 * worker): a pipe that holds the n bytes, its write end already closed;
 * the child gets the read end as an fd number on its command line, reads
 * the bytes once and closes it. Why not the command line: it is
 * world-readable (/proc/PID/cmdline, ps). Why not the environment:
 * /proc/PID/environ needs ptrace rights over the process, but the
 * environment is inherited by whatever the process or its driver starts,
 * stays there for its whole life and lands in crash reports; the pipe
 * leaves the secret only in the reader's memory. n must fit the pipe's
 * buffer (PIPE_BUF or less), so the write never blocks. Returns the read
 * end (O_CLOEXEC; the caller clears that for the child) or -errno.
 */
int cv_secret_pipe(const void *p, size_t n);

#endif

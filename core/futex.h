/* SPDX-License-Identifier: MIT */
/*
 * Futex waits and wakes on words in memory shared between processes (so
 * never FUTEX_PRIVATE_FLAG). A wait returns on a wake, a changed word, a
 * signal or the timeout; callers always re-check their condition.
 */
#ifndef CV_FUTEX_H
#define CV_FUTEX_H

#include <stdint.h>

/* Waits while *word == val, at most timeout_ns (0: no limit). -errno. */
int cv_futex_wait(uint32_t *word, uint32_t val, uint64_t timeout_ns);
/* Wakes up to n waiters (INT32_MAX: all). */
void cv_futex_wake(uint32_t *word, int n);

#endif

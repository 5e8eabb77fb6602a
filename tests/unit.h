/* SPDX-License-Identifier: MIT */
/*
 * A few lines of TAP for the unit tests: CHECK prints "ok N - what" or
 * "not ok N - what"; unit_done() prints the summary line and returns the
 * exit status.
 */
#ifndef CV_TEST_UNIT_H
#define CV_TEST_UNIT_H

#include <stdio.h>

static int unit_n, unit_fail;

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		unit_n++;                                                  \
		if (cond) {                                                \
			printf("ok %d - ", unit_n);                        \
		} else {                                                   \
			unit_fail++;                                       \
			printf("not ok %d - (%s:%d) ", unit_n, __FILE__,   \
			       __LINE__);                                  \
		}                                                          \
		printf(__VA_ARGS__);                                       \
		printf("\n");                                              \
	} while (0)

static inline int unit_done(void)
{
	printf("# %d passed, %d failed\n", unit_n - unit_fail, unit_fail);
	return unit_fail ? 1 : 0;
}

#endif

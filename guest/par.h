/* SPDX-License-Identifier: MIT */
/*
 * A small pool of copy threads for large staged copies: one CPU thread
 * copies into or out of the shared region at about 10 GB/s, less than
 * the driver's pageable copies reach, so large copies spread their
 * pieces over several threads. The threads start on first use.
 */
#ifndef CV_PAR_H
#define CV_PAR_H

#include <stdint.h>

/*
 * Runs fn(arg, i) for every i in [0, n), on the calling thread and on as
 * many pool threads as are free (CUVISOR_COPY_THREADS in all, default 4;
 * 1 turns the pool off). Returns the first nonzero result of fn (the
 * remaining items still run, so that no piece is left half done).
 */
int cv_par_for(uint32_t n, int (*fn)(void *arg, uint32_t i), void *arg);

#endif

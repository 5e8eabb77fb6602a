/* SPDX-License-Identifier: MIT */
#include "par.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#define PAR_MAX_THREADS 16

struct job {
	int (*fn)(void *arg, uint32_t i);
	void *arg;
	uint32_t n;
	uint32_t next;    /* next item to take (atomic) */
	int err;          /* first error (under lock) */
	bool failed;      /* an item failed: take no more (atomic) */
	bool open;        /* helpers may still join */
	uint32_t running; /* helpers inside the job (under lock) */
	uint64_t gen;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t work;   /* a job was posted */
	pthread_cond_t idle;   /* the last helper left the job */
	pthread_mutex_t busy;  /* one job at a time */
	pthread_once_t once;
	int nthreads;          /* pool threads (callers excluded) */
	struct job job;
} pool = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.work = PTHREAD_COND_INITIALIZER,
	.idle = PTHREAD_COND_INITIALIZER,
	.busy = PTHREAD_MUTEX_INITIALIZER,
	.once = PTHREAD_ONCE_INIT,
};

/* Takes items of the job until none is left or one failed; records the
 * first error. The items after a failure are not run: a copy that failed
 * in one piece has failed (and when the vGPU is lost, each piece would
 * first wait for a chunk that never completes). */
static void drain(struct job *j)
{
	uint32_t i;
	int r;

	while (!__atomic_load_n(&j->failed, __ATOMIC_RELAXED) &&
	       (i = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED)) < j->n) {
		r = j->fn(j->arg, i);
		if (r) {
			pthread_mutex_lock(&pool.lock);
			if (!j->err)
				j->err = r;
			pthread_mutex_unlock(&pool.lock);
			__atomic_store_n(&j->failed, true, __ATOMIC_RELAXED);
		}
	}
}

static void *helper(void *unused)
{
	uint64_t seen = 0;

	pthread_mutex_lock(&pool.lock);
	for (;;) {
		while (!pool.job.open || pool.job.gen == seen)
			pthread_cond_wait(&pool.work, &pool.lock);
		seen = pool.job.gen;
		pool.job.running++;
		pthread_mutex_unlock(&pool.lock);
		drain(&pool.job);
		pthread_mutex_lock(&pool.lock);
		if (!--pool.job.running)
			pthread_cond_signal(&pool.idle);
	}
	return NULL;
}

static void pool_start(void)
{
	const char *s = getenv("CUVISOR_COPY_THREADS");
	long n = s ? strtol(s, NULL, 10) : 4;
	pthread_attr_t at;
	pthread_t t;
	int i;

	if (n < 1)
		n = 1;
	if (n > PAR_MAX_THREADS)
		n = PAR_MAX_THREADS;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	for (i = 0; i < n - 1; i++)
		if (!pthread_create(&t, &at, helper, NULL))
			pool.nthreads++;
	pthread_attr_destroy(&at);
}

static int run_inline(uint32_t n, int (*fn)(void *, uint32_t), void *arg)
{
	uint32_t i;
	int r, err = 0;

	for (i = 0; i < n && !err; i++)
		if ((r = fn(arg, i)))
			err = r;
	return err;
}

int cv_par_for(uint32_t n, int (*fn)(void *arg, uint32_t i), void *arg)
{
	int err;

	pthread_once(&pool.once, pool_start);
	/* Another thread's copy has the pool: this one runs alone. */
	if (n < 2 || !pool.nthreads || pthread_mutex_trylock(&pool.busy))
		return run_inline(n, fn, arg);
	pthread_mutex_lock(&pool.lock);
	pool.job = (struct job){ .fn = fn, .arg = arg, .n = n, .open = true,
				 .gen = pool.job.gen + 1 };
	pthread_cond_broadcast(&pool.work);
	pthread_mutex_unlock(&pool.lock);

	drain(&pool.job);

	pthread_mutex_lock(&pool.lock);
	pool.job.open = false;
	while (pool.job.running)
		pthread_cond_wait(&pool.idle, &pool.lock);
	err = pool.job.err;
	pthread_mutex_unlock(&pool.lock);
	pthread_mutex_unlock(&pool.busy);
	return err;
}

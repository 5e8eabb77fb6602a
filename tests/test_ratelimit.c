/* SPDX-License-Identifier: MIT */
/*
 * The rate-limited logger (core/log.h): the decision on a clock of our
 * own (burst, interval, the count of what was not logged, the flush),
 * then the logger itself into a file of ours: a flood of 200,000 events
 * from 4 threads writes a handful of lines, none lost from the counts,
 * and cv_log_rl_tick writes the count that is due once the interval is
 * over, and cv_log_rl_end writes what is left.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/util.h"
#include "unit.h"

#define MS 1000000ull

static void test_decision(void)
{
	struct cv_ratelimit rl = { .what = "things", .interval_ns = 1000 * MS,
				   .burst = 3 };
	uint64_t t = 5000 * MS, missed = 99;
	int i, taken = 0;

	for (i = 0; i < 3; i++)
		taken += cv_ratelimit_take(&rl, t + (uint64_t)i * MS, &missed);
	CHECK(taken == 3 && missed == 0, "the burst is logged (%d)", taken);
	CHECK(cv_ratelimit_due(&rl) == 0, "nothing is due yet");
	for (i = 0; i < 1000; i++)
		taken += cv_ratelimit_take(&rl, t + 10 * MS + i * MS / 2,
					   &missed);
	CHECK(taken == 3, "the rest of the interval is counted, not logged");
	CHECK(rl.missed == 1000 && cv_ratelimit_due(&rl) == t + 1000 * MS,
	      "1000 missed, due at the interval's end");
	CHECK(cv_ratelimit_flush(&rl, t + 999 * MS) == 0 && rl.missed == 1000,
	      "no flush before it is due");
	/* The next event after the interval is logged and tells the count. */
	CHECK(cv_ratelimit_take(&rl, t + 1500 * MS, &missed) && missed == 1000,
	      "the next line carries the count (%llu)",
	      (unsigned long long)missed);
	CHECK(rl.missed == 0 && cv_ratelimit_due(&rl) == 0, "count restarted");
	/* Or the flush says it when no event comes. */
	for (i = 0; i < 10; i++)
		cv_ratelimit_take(&rl, t + 1600 * MS, &missed);
	CHECK(rl.missed == 8, "8 past the burst of the new interval");
	CHECK(cv_ratelimit_flush(&rl, t + 2600 * MS) == 8 && rl.missed == 0,
	      "the flush takes the count once due");
	CHECK(cv_ratelimit_flush(&rl, t + 9000 * MS) == 0, "and only once");
	CHECK(cv_ratelimit_take(&rl, t + 2601 * MS, &missed) && missed == 0,
	      "after a flush a line is logged again");
	/* A burst of 0 logs nothing and counts everything. */
	rl = (struct cv_ratelimit){ .interval_ns = 10 * MS, .burst = 0 };
	CHECK(!cv_ratelimit_take(&rl, 1, &missed) &&
	      !cv_ratelimit_take(&rl, 2, &missed) && rl.missed == 2,
	      "burst 0: counted only");
	/* A clock starting at 0 is no special case. */
	rl = (struct cv_ratelimit){ .interval_ns = 10 * MS, .burst = 1 };
	CHECK(cv_ratelimit_take(&rl, 0, &missed) &&
	      !cv_ratelimit_take(&rl, 1 * MS, &missed) &&
	      cv_ratelimit_take(&rl, 11 * MS, &missed) && missed == 1,
	      "time 0");
}

static char g_log[64];

static long file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) ? -1 : (long)st.st_size;
}

/* Lines of the log that contain needle; the sum of the numbers that
 * follow "[" or start a line's message, for the counts, in *sum. */
static int grep_count(const char *needle, unsigned long long *sum)
{
	char line[2048], *p;
	FILE *f = fopen(g_log, "r");
	int n = 0;

	if (sum)
		*sum = 0;
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strstr(line, needle))
			continue;
		n++;
		if (!sum)
			continue;
		p = strstr(line, "[");
		if (p && strstr(p, "more like it"))
			*sum += strtoull(p + 1, NULL, 10);
		p = strstr(line, "warn: ");
		if (p && strstr(line, "more flood events"))
			*sum += strtoull(p + 6, NULL, 10);
	}
	fclose(f);
	return n;
}

CV_RATELIMIT(rl_flood, "flood events", 60000, 5);
CV_RATELIMIT(rl_end, "end events", 60000, 1);

#define THREADS 4
#define EVENTS 50000

static void *flood_main(void *arg)
{
	int i;

	for (i = 0; i < EVENTS; i++)
		cv_warn_rl(&rl_flood, "flood event %d of thread %d", i,
			   (int)(intptr_t)arg);
	return NULL;
}

static void test_logger(void)
{
	pthread_t th[THREADS];
	unsigned long long counted;
	uint64_t due;
	long size;
	int i, lines;

	snprintf(g_log, sizeof(g_log), "/tmp/cv-test-rl-%d.log", (int)getpid());
	unlink(g_log);
	cv_log_init("test", CV_LOG_INFO, g_log);
	for (i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, flood_main, (void *)(intptr_t)i);
	for (i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	size = file_size(g_log);
	lines = grep_count("flood event ", NULL);
	CHECK(lines == 5, "%d events from %d threads: %d lines", THREADS * EVENTS,
	      THREADS, lines);
	CHECK(size > 0 && size < 1024, "the log grew by %ld bytes", size);
	CHECK(rl_flood.missed == THREADS * EVENTS - 5,
	      "every other event counted (%llu)",
	      (unsigned long long)rl_flood.missed);
	due = cv_log_rl_tick(cv_now_ns());
	CHECK(due == rl_flood.start + rl_flood.interval_ns,
	      "tick: the count is due at the interval's end");
	/* Its end, as the daemon's loop would see it a minute later. */
	CHECK(cv_log_rl_tick(due) == 0, "tick at the due time: nothing left");
	CHECK(grep_count("more flood events in the last", &counted) == 1 &&
	      counted == THREADS * EVENTS - 5,
	      "the tick logged the count: %llu", counted);
	/* A site with its interval over logs again, with the count. */
	cv_warn_rl(&rl_flood, "flood event after");
	CHECK(grep_count("flood event after", NULL) == 1,
	      "a line after the count");
	/* The daemon exits: what is counted is logged, due or not. */
	for (i = 0; i < 3; i++)
		cv_warn_rl(&rl_end, "end event %d", i);
	cv_log_rl_end();
	CHECK(grep_count("end event 0", NULL) == 1 &&
	      grep_count("2 more end events in the last", NULL) == 1,
	      "cv_log_rl_end logs the count not yet due");
	cv_log_init("test", CV_LOG_INFO, NULL);
	unlink(g_log);
}

static void test_levels(void)
{
	CV_RATELIMIT(rl_dbg, "debug things", 1000, 1);

	snprintf(g_log, sizeof(g_log), "/tmp/cv-test-rl-%d.log", (int)getpid());
	unlink(g_log);
	cv_log_init("test", CV_LOG_WARN, g_log);
	cv_info_rl(&rl_dbg, "not at this level");
	CHECK(rl_dbg.missed == 0 && !rl_dbg.listed && file_size(g_log) == 0,
	      "below the level: neither logged nor counted");
	cv_log_init("test", CV_LOG_INFO, NULL);
	unlink(g_log);
}

int main(void)
{
	test_decision();
	test_logger();
	test_levels();
	return unit_done();
}

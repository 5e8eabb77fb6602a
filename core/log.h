/* SPDX-License-Identifier: MIT */
/*
 * One printf-checked logger for the daemon, the worker and the CLI.
 * The guest library uses it too, but only once CUVISOR_LOG asks for it:
 * CUVISOR_LOG=LEVEL[:PATH] with LEVEL one of error, warn, info, debug;
 * PATH defaults to stderr. The guest never writes to stdout.
 */
#ifndef CV_LOG_H
#define CV_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "util.h"

enum cv_log_level { CV_LOG_OFF = 0, CV_LOG_ERROR, CV_LOG_WARN, CV_LOG_INFO,
		    CV_LOG_DEBUG };

/* Sets the component tag, the level and the destination (NULL: stderr). */
void cv_log_init(const char *tag, enum cv_log_level level, const char *path);
/* Parses "LEVEL[:PATH]" (e.g. from CUVISOR_LOG); -EINVAL if malformed. */
int cv_log_init_spec(const char *tag, const char *spec);
enum cv_log_level cv_log_level(void);
void cv_log(enum cv_log_level lvl, const char *fmt, ...) CV_PRINTF(2, 3);

#define cv_err(...) cv_log(CV_LOG_ERROR, __VA_ARGS__)
#define cv_warn(...) cv_log(CV_LOG_WARN, __VA_ARGS__)
#define cv_info(...) cv_log(CV_LOG_INFO, __VA_ARGS__)
#define cv_dbg(...)                                                    \
	do {                                                           \
		if (cv_log_level() >= CV_LOG_DEBUG)                    \
			cv_log(CV_LOG_DEBUG, __VA_ARGS__);             \
	} while (0)

/*
 * Rate-limited logging, for messages that a local user or a peer can
 * make us write as often as they like (refusals, bad messages, caps):
 * at most `burst` lines per `interval` from one call site; the events
 * past that are counted, and the count is logged once the interval is
 * over, either with the site's next line ("[N more like it in the last
 * 10.0 s]") or by cv_log_rl_tick as "N more WHAT in the last 10.0 s".
 *
 *   CV_RATELIMIT(rl_refused, "refused connections", 10000, 5);
 *   cv_log_rl(&rl_refused, CV_LOG_WARN, "refused uid %u: ...", uid);
 *
 * A limiter is a static object of its call site; the first cv_log_rl on
 * it lists it for cv_log_rl_tick. Thread safe (one lock for all).
 */
struct cv_ratelimit {
	const char *what;      /* what it counts, for the summary line */
	uint64_t interval_ns;
	unsigned burst;        /* lines per interval */
	uint64_t start;        /* the interval's start (CLOCK_MONOTONIC ns),
				* 0: none yet */
	unsigned logged;       /* lines logged in it */
	uint64_t missed;       /* events not logged since the last line */
	uint64_t missed_since; /* when the first of them came */
	enum cv_log_level level;   /* of the site's last line */
	struct cv_ratelimit *next; /* listed: cv_log_rl_tick */
	bool listed;
};

#define CV_RATELIMIT(name, what_, interval_ms, burst_)                     \
	static struct cv_ratelimit name = {                                \
		.what = (what_),                                           \
		.interval_ns = (uint64_t)(interval_ms) * 1000000ull,       \
		.burst = (burst_),                                         \
	}
/* What the daemon's refusal sites use: 5 lines per 10 s. */
#define CV_RATELIMIT_STD(name, what_) CV_RATELIMIT(name, what_, 10000, 5)

/*
 * The decision alone (no lock, no I/O; the unit test drives it with its
 * own clock): whether the event at `now` is logged. When it is, *missed
 * is the number of events not logged before it (to say so), and the count
 * starts again; when not, the event is counted.
 */
bool cv_ratelimit_take(struct cv_ratelimit *rl, uint64_t now,
		       uint64_t *missed);
/* When the count of events not logged is due (ns), 0: none. */
uint64_t cv_ratelimit_due(const struct cv_ratelimit *rl);
/* The count of events not logged, when due at `now` (then it starts
 * again, and so does the interval); else 0. */
uint64_t cv_ratelimit_flush(struct cv_ratelimit *rl, uint64_t now);

/* cv_log, through rl. */
void cv_log_rl(struct cv_ratelimit *rl, enum cv_log_level lvl,
	       const char *fmt, ...) CV_PRINTF(3, 4);
/* Logs the counts that are due, of every limiter used so far; returns
 * when the next one is due (ns), 0: none. The daemon's loop calls it. */
uint64_t cv_log_rl_tick(uint64_t now);
/* Logs every count not logged yet, due or not (the daemon exits). */
void cv_log_rl_end(void);

#define cv_warn_rl(rl, ...) cv_log_rl(rl, CV_LOG_WARN, __VA_ARGS__)
#define cv_info_rl(rl, ...) cv_log_rl(rl, CV_LOG_INFO, __VA_ARGS__)

#endif

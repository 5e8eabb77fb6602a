/* SPDX-License-Identifier: MIT */
/*
 * One printf-checked logger for the daemon, the worker and the CLI.
 * The guest library uses it too, but only once CUVISOR_LOG asks for it:
 * CUVISOR_LOG=LEVEL[:PATH] with LEVEL one of error, warn, info, debug;
 * PATH defaults to stderr. The guest never writes to stdout.
 */
#ifndef CV_LOG_H
#define CV_LOG_H

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

#endif

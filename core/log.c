/* SPDX-License-Identifier: MIT */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static struct {
	char tag[32];
	enum cv_log_level level;
	int fd;
} g_log = { "cuvisor", CV_LOG_WARN, 2 };

static const char *const level_name[] = { "off", "error", "warn", "info",
					   "debug" };

void cv_log_init(const char *tag, enum cv_log_level level, const char *path)
{
	int fd;

	snprintf(g_log.tag, sizeof(g_log.tag), "%s", tag);
	g_log.level = level;
	if (path && *path) {
		fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
			  0600);
		if (fd >= 0)
			g_log.fd = fd;
	}
}

int cv_log_init_spec(const char *tag, const char *spec)
{
	const char *colon = strchr(spec, ':');
	size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
	unsigned i;

	for (i = 0; i < CV_ARRAY_SIZE(level_name); i++) {
		if (strlen(level_name[i]) == n &&
		    !strncmp(spec, level_name[i], n)) {
			cv_log_init(tag, (enum cv_log_level)i,
				    colon ? colon + 1 : NULL);
			return 0;
		}
	}
	return -EINVAL;
}

enum cv_log_level cv_log_level(void)
{
	return g_log.level;
}

void cv_log(enum cv_log_level lvl, const char *fmt, ...)
{
	char buf[1024];
	struct timeval tv;
	struct tm tm;
	va_list ap;
	int n, m;

	if (lvl > g_log.level || lvl == CV_LOG_OFF)
		return;
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	n = snprintf(buf, sizeof(buf), "%02d:%02d:%02d.%03ld %s[%d] %s: ",
		     tm.tm_hour, tm.tm_min, tm.tm_sec, (long)tv.tv_usec / 1000,
		     g_log.tag, (int)getpid(), level_name[lvl]);
	va_start(ap, fmt);
	m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += CV_MIN(m, (int)sizeof(buf) - n - 2);
	buf[n++] = '\n';
	/* One write per line, so lines from several threads stay whole. */
	if (write(g_log.fd, buf, (size_t)n) < 0)
		errno = 0;
}

/* ---- rate-limited logging ------------------------------------------ */

/* Guards every limiter's fields and the list of those used. */
static pthread_mutex_t rl_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cv_ratelimit *rl_list;

bool cv_ratelimit_take(struct cv_ratelimit *rl, uint64_t now,
		       uint64_t *missed)
{
	if (!rl->start || now - rl->start >= rl->interval_ns) {
		rl->start = now ? now : 1;
		rl->logged = 0;
	}
	if (rl->logged < rl->burst) {
		rl->logged++;
		*missed = rl->missed;
		rl->missed = 0;
		return true;
	}
	if (!rl->missed)
		rl->missed_since = now;
	rl->missed++;
	return false;
}

uint64_t cv_ratelimit_due(const struct cv_ratelimit *rl)
{
	return rl->missed ? rl->start + rl->interval_ns : 0;
}

uint64_t cv_ratelimit_flush(struct cv_ratelimit *rl, uint64_t now)
{
	uint64_t n = rl->missed;

	if (!n || now < cv_ratelimit_due(rl))
		return 0;
	rl->missed = 0;
	rl->start = now ? now : 1;
	rl->logged = 0;
	return n;
}

static double secs_since(uint64_t then, uint64_t now)
{
	return now > then ? (double)(now - then) / 1e9 : 0.0;
}

void cv_log_rl(struct cv_ratelimit *rl, enum cv_log_level lvl,
	       const char *fmt, ...)
{
	char msg[900];
	uint64_t now = cv_now_ns(), missed = 0, since;
	va_list ap;
	bool take;

	if (lvl > g_log.level || lvl == CV_LOG_OFF)
		return;
	pthread_mutex_lock(&rl_lock);
	if (!rl->listed) {
		rl->listed = true;
		rl->next = rl_list;
		rl_list = rl;
	}
	rl->level = lvl;
	since = rl->missed_since;
	take = cv_ratelimit_take(rl, now, &missed);
	pthread_mutex_unlock(&rl_lock);
	if (!take)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (missed)
		cv_log(lvl, "%s [%llu more like it in the last %.1f s]", msg,
		       (unsigned long long)missed, secs_since(since, now));
	else
		cv_log(lvl, "%s", msg);
}

/* The counts due at now (all of them: those not due yet too); when the
 * next is due. */
static uint64_t rl_flush_all(uint64_t now, bool all)
{
	struct cv_ratelimit *rl;
	uint64_t next = 0, n, due, since;

	pthread_mutex_lock(&rl_lock);
	for (rl = rl_list; rl; rl = rl->next) {
		since = rl->missed_since;
		n = cv_ratelimit_flush(rl, all && rl->missed ?
					   CV_MAX(now, cv_ratelimit_due(rl)) :
					   now);
		if (n)
			cv_log(rl->level, "%llu more %s in the last %.1f s (not "
			       "logged one by one)", (unsigned long long)n,
			       rl->what, secs_since(since, now));
		due = cv_ratelimit_due(rl);
		if (due && (!next || due < next))
			next = due;
	}
	pthread_mutex_unlock(&rl_lock);
	return next;
}

uint64_t cv_log_rl_tick(uint64_t now)
{
	return rl_flush_all(now, false);
}

void cv_log_rl_end(void)
{
	rl_flush_all(cv_now_ns(), true);
}

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

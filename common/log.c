/*
 * Logging: "ts=... level=... pid=... <fields>" on one line, written with a
 * single write(2) so lines from several workers never interleave.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <sys/time.h>

#include "common/log.h"

static int	 log_lvl = LOG_LVL_INFO;
static bool	 log_syslog;
static const char *log_names[] = { "error", "warn", "info", "debug" };

int
log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, log_names[i]) == 0)
			return i;
	return -1;
}

const char *
log_level_name(int lvl)
{
	return lvl >= 0 && lvl < 4 ? log_names[lvl] : "?";
}

void
log_init(const char *ident, int level, bool use_syslog)
{
	log_lvl = level;
	log_syslog = use_syslog;
	if (use_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_set_level(int level)
{
	log_lvl = level;
}

bool
log_enabled(int level)
{
	return level <= log_lvl;
}

static void
log_vmsg(int level, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char		 line[2048], ts[32];
	struct timeval	 tv;
	struct tm	 tm;
	int		 n, m;

	if (log_syslog) {
		n = snprintf(line, sizeof(line), "level=%s ",
		    log_level_name(level));
		vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		syslog(prio[level], "%s", line);
		return;
	}
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line, sizeof(line), "ts=%s.%03dZ level=%s pid=%d ", ts,
	    (int)(tv.tv_usec / 1000), log_level_name(level), (int)getpid());
	m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;	/* truncated: keep one line */
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, n);
}

void
log_msg(int level, const char *fmt, ...)
{
	va_list ap;

	if (level > log_lvl)
		return;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}

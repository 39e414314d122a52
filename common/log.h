/*
 * One event per line, key=value, to stderr or syslog. Callers pass the
 * fields after the level ("event=login result=ok account=..."); log_msg adds
 * the timestamp, level and pid. Peer-supplied text must go through
 * str_sanitize(); secrets never reach these functions.
 */
#ifndef COMMON_LOG_H
#define COMMON_LOG_H

#include <stdbool.h>

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

/* Returns the level for "error|warn|info|debug", or -1. */
int	 log_level_parse(const char *);
const char *log_level_name(int);
void	 log_init(const char *ident, int level, bool use_syslog);
void	 log_set_level(int);
bool	 log_enabled(int);
void	 log_msg(int level, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	 fatalx(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

#define log_error(...)	log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)	log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)	log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)	do { if (log_enabled(LOG_LVL_DEBUG)) \
	log_msg(LOG_LVL_DEBUG, __VA_ARGS__); } while (0)

#endif

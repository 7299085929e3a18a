/*
 * log.h -- the daemon's one logging API (after OpenBSD's log.c).
 *
 * log_warn() appends strerror(errno) and keeps errno; log_warnx() does not.
 * fatal()/fatalx() log and exit(1). Under systemd (JOURNAL_STREAM set) each
 * line starts with a <N> syslog priority that journald reads; run by hand,
 * lines carry a timestamp instead.
 */
#ifndef STASHD_LOG_H
#define STASHD_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

void	       log_init(enum log_level level);
void	       log_set_level(enum log_level level);
enum log_level log_get_level(void);
int	       log_parse_level(const char *name, enum log_level *level);
const char    *log_level_name(enum log_level level);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * Name the calling thread (at most 15 bytes), as ps -L, top -H, perf and
 * debuggers show it; a name refused is logged at debug, nothing more.
 */
void log_thread_name(const char *name);

void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

#endif /* STASHD_LOG_H */

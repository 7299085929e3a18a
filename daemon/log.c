/*
 * log.c -- logging to stderr.
 *
 * The level is the only state. It is process-wide by nature (a log is one
 * stream), set once at start and by SIGHUP, and read by every thread; it is
 * an int read without a lock, which is harmless for a log threshold.
 * Each message is formatted into one buffer and written with one write(2)
 * so that lines from different threads never interleave.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static volatile int log_level = LOG_LEVEL_INFO;
static int	    log_journal; /* stderr goes to journald */

static const char *const log_names[] = {"error", "warning", "info", "debug"};
/* syslog priorities: err, warning, info, debug */
static const int log_prio[] = {3, 4, 6, 7};

/* Choose the level and the line format. */
void
log_init(enum log_level level)
{
	log_level = level;
	log_journal = getenv("JOURNAL_STREAM") != NULL;
}

void
log_set_level(enum log_level level)
{
	log_level = level;
}

enum log_level
log_get_level(void)
{
	return log_level;
}

/* Parse a level name; -1 when unknown. */
int
log_parse_level(const char *name, enum log_level *level)
{
	size_t i;

	for (i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++) {
		if (strcmp(name, log_names[i]) == 0) {
			*level = (enum log_level)i;
			return 0;
		}
	}
	if (strcmp(name, "warn") == 0) {
		*level = LOG_LEVEL_WARN;
		return 0;
	}
	return -1;
}

const char *
log_level_name(enum log_level level)
{
	return log_names[level];
}

/* Format and write one line; errnum >= 0 appends its strerror. */
static void
log_vemit(enum log_level level, int errnum, const char *fmt, va_list ap)
{
	char   buf[2048];
	size_t len = 0, room = sizeof(buf) - 1;
	int    n;

	if ((int)level > log_level)
		return;
	if (log_journal)
		n = snprintf(buf, room, "<%d>", log_prio[level]);
	else {
		struct timespec ts;
		struct tm	tm;

		if (clock_gettime(CLOCK_REALTIME, &ts) == -1 ||
		    gmtime_r(&ts.tv_sec, &tm) == NULL)
			n = snprintf(buf, room, "stashd: ");
		else
			n = snprintf(buf, room,
			    "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s: ",
			    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			    tm.tm_hour, tm.tm_min, tm.tm_sec,
			    ts.tv_nsec / 1000000, log_names[level]);
	}
	if (n > 0)
		len = (size_t)n < room ? (size_t)n : room;
	n = vsnprintf(buf + len, room - len, fmt, ap);
	if (n > 0)
		len += (size_t)n < room - len ? (size_t)n : room - len - 1;
	if (errnum >= 0 && len < room) {
		n = snprintf(buf + len, room - len, ": %s", strerror(errnum));
		if (n > 0)
			len +=
			    (size_t)n < room - len ? (size_t)n : room - len - 1;
	}
	buf[len++] = '\n';
	/* Nothing sensible can be done if stderr is gone. */
	if (write(STDERR_FILENO, buf, len) == -1)
		return;
}

void
log_warn(const char *fmt, ...)
{
	int	saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_LEVEL_WARN, saved, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_LEVEL_WARN, -1, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_LEVEL_INFO, -1, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_LEVEL_DEBUG, -1, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	int	saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_LEVEL_ERROR, saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_LEVEL_ERROR, -1, fmt, ap);
	va_end(ap);
	exit(1);
}

void
log_thread_name(const char *name)
{
	int rc;

	if ((rc = pthread_setname_np(pthread_self(), name)) != 0)
		log_debug("cannot name a thread %s: %s", name, strerror(rc));
}

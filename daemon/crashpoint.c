/*
 * crashpoint.c -- the test build's self-kill at named points; see
 * crashpoint.h. Nothing here is compiled into a production stashd.
 *
 * The armed point and its count are set once by crashpoint_init, before any
 * thread starts; the journal and apply threads then only compare names and
 * bump the count atomically, so exactly one of them reaches the N-th hit.
 */
#include "config.h"

#ifdef STASHD_CRASH_POINTS

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "crashpoint.h"
#include "xmalloc.h"

static char	     crash_name[64];
static unsigned long crash_at;
static unsigned long crash_hits;

int
crashpoint_init(char **cause)
{
	const char   *env = getenv("STASHD_CRASH");
	const char   *colon;
	char	     *end;
	size_t	      len;
	unsigned long n;

	if (env == NULL || *env == '\0')
		return 0;
	colon = strrchr(env, ':');
	len = colon != NULL ? (size_t)(colon - env) : 0;
	if (colon == NULL || len == 0 || len >= sizeof(crash_name)) {
		xasprintf(cause,
		    "STASHD_CRASH=%s: expected NAME:N (e.g. after-sync:3)",
		    env);
		return -1;
	}
	errno = 0;
	n = strtoul(colon + 1, &end, 10);
	if (errno != 0 || end == colon + 1 || *end != '\0' || n == 0) {
		xasprintf(cause,
		    "STASHD_CRASH=%s: N must be a whole number above 0", env);
		return -1;
	}
	memcpy(crash_name, env, len);
	crash_name[len] = '\0';
	crash_at = n;
	fprintf(stderr, "stashd: crash point armed: %s, hit %lu\n", crash_name,
	    crash_at);
	return 0;
}

void
crashpoint_hit(const char *name)
{
	char	      line[128];
	unsigned long n;
	int	      len;

	if (crash_at == 0 || strcmp(name, crash_name) != 0)
		return;
	n = __atomic_add_fetch(&crash_hits, 1, __ATOMIC_SEQ_CST);
	if (n != crash_at)
		return;
	/* One write, no stdio: the line must be out before the kill. */
	len = snprintf(line, sizeof(line),
	    "stashd: crash point %s reached (hit %lu): SIGKILL\n", name, n);
	if (len > 0) {
		ssize_t w = write(STDERR_FILENO, line, (size_t)len);

		(void)w; /* we die next either way */
	}
	kill(getpid(), SIGKILL);
	/* SIGKILL cannot be caught; should the kill fail, still stop here. */
	_exit(137);
}

#endif /* STASHD_CRASH_POINTS */

/*
 * crashpoint.c -- the test build's self-kill and faults at named points;
 * see crashpoint.h. Nothing here is compiled into a production stashd.
 *
 * The armed points and their counts are set once by crashpoint_init,
 * before any thread starts; the threads then only compare names and bump
 * the counts atomically, so exactly one of them reaches the N-th hit.
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
#include "log.h"
#include "xmalloc.h"

/* An armed point: its name, the hit it acts at, and the hits so far. */
struct point {
	char	      name[64];
	unsigned long at; /* 0: not armed */
	unsigned long hits;
};

static struct point crash_point;
static struct point fault_point;

/*
 * Arm p from the environment variable var, NAME:N; example is one for the
 * message. -1 with *cause when it is malformed.
 */
static int
point_arm(struct point *p, const char *var, const char *example, char **cause)
{
	const char   *env = getenv(var);
	const char   *colon;
	char	     *end;
	size_t	      len;
	unsigned long n;

	if (env == NULL || *env == '\0')
		return 0;
	colon = strrchr(env, ':');
	len = colon != NULL ? (size_t)(colon - env) : 0;
	if (colon == NULL || len == 0 || len >= sizeof(p->name)) {
		xasprintf(cause, "%s=%s: expected NAME:N (e.g. %s)", var, env,
		    example);
		return -1;
	}
	errno = 0;
	n = strtoul(colon + 1, &end, 10);
	if (errno != 0 || end == colon + 1 || *end != '\0' || n == 0 ||
	    !(colon[1] >= '0' && colon[1] <= '9')) {
		xasprintf(
		    cause, "%s=%s: N must be a whole number above 0", var, env);
		return -1;
	}
	memcpy(p->name, env, len);
	p->name[len] = '\0';
	p->at = n;
	return 0;
}

int
crashpoint_init(char **cause)
{
	if (point_arm(&crash_point, "STASHD_CRASH", "after-sync:3", cause) ==
		-1 ||
	    point_arm(&fault_point, "STASHD_FAULT", "cache-pin:1", cause) == -1)
		return -1;
	if (crash_point.at != 0)
		fprintf(stderr, "stashd: crash point armed: %s, hit %lu\n",
		    crash_point.name, crash_point.at);
	if (fault_point.at != 0)
		fprintf(stderr, "stashd: fault point armed: %s, hit %lu\n",
		    fault_point.name, fault_point.at);
	return 0;
}

/* Is this hit of point name the one p acts at? */
static int
point_reached(struct point *p, const char *name, unsigned long *n)
{
	if (p->at == 0 || strcmp(name, p->name) != 0)
		return 0;
	*n = __atomic_add_fetch(&p->hits, 1, __ATOMIC_SEQ_CST);
	return *n == p->at;
}

int
faultpoint_hit(const char *name)
{
	unsigned long n;

	if (!point_reached(&fault_point, name, &n))
		return 0;
	log_warnx("fault point %s reached (hit %lu): failing", name, n);
	return 1;
}

void
crashpoint_hit(const char *name)
{
	char	      line[128];
	unsigned long n;
	int	      len;

	if (!point_reached(&crash_point, name, &n))
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

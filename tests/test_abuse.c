/*
 * test_abuse.c -- hostile clients against a private stashd, one abuse per
 * test, while a second client (the prober) keeps doing set/get round
 * trips: each test asserts the abuse got a clear answer, the limits held,
 * the daemon's resident memory (VmRSS in /proc/PID/status) stayed under a
 * bound (in a build without sanitizers), and every round trip of the prober
 * succeeded, the slowest under ABUSE_MAX_LATENCY_MS (1000 unless set,
 * 3000 under ASan).
 *
 * The simpler cases of the same limits live in test_server.c.
 */
#include "config.h"

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "answers.h"
#include "harness.h"

#define MB (1024LL * 1024)

static long long
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The daemon's resident memory in bytes, from /proc/PID/status. */
static long long
rss_of(pid_t pid)
{
	char	  path[64], line[256];
	long long kb = -1;
	FILE	 *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %lld kB", &kb) == 1)
			break;
	fclose(f);
	assert_true(kb > 0);
	return kb * 1024;
}

/*
 * The RSS may not grow past before + bound. Not checked under ASan (its
 * quarantine keeps freed memory, its leak check runs at the daemon's
 * exit instead) nor under valgrind (STASHD_WRAPPER).
 */
static void
assert_rss_bounded(pid_t pid, long long before, long long bound)
{
	long long after = rss_of(pid);

#ifdef __SANITIZE_ADDRESS__
	return;
#endif
	if (getenv("STASHD_WRAPPER") != NULL)
		return;
	fprintf(stderr, "# daemon RSS %lld KB, %+lld KB (bound +%lld KB)\n",
	    after / 1024, (after - before) / 1024, bound / 1024);

	if (after - before > bound)
		fail_msg("daemon RSS grew by %lld KB (from %lld KB), bound "
			 "%lld KB",
		    (after - before) / 1024, before / 1024, bound / 1024);
}

/* ------------------------------------------------------------ prober */

static int probing; /* a prober thread runs */

/*
 * The well-behaved client: set then get of its own key, over and over on
 * one connection, each answer checked, each round trip timed. It runs in
 * a thread of its own and only records; the test asserts afterwards.
 */
struct prober {
	const char     *sock;
	pthread_t	thread;
	pthread_mutex_t lock;
	int		stop;
	long		rounds;
	long		errors;
	long long	max_us;
	char		what[256]; /* the first error */
};

static void
prober_error(struct prober *p, const char *what, const char *line)
{
	pthread_mutex_lock(&p->lock);
	if (p->errors++ == 0)
		snprintf(p->what, sizeof(p->what), "%s: %.160s", what,
		    line != NULL ? line : "(no answer)");
	pthread_mutex_unlock(&p->lock);
}

static void
prober_time(struct prober *p, long long t0)
{
	long long us = now_us() - t0;

	pthread_mutex_lock(&p->lock);
	if (us > p->max_us)
		p->max_us = us;
	pthread_mutex_unlock(&p->lock);
}

static void *
prober_run(void *arg)
{
	struct prober *p = arg;
	char	       req[256], want[64], *line;
	long long      t0;
	long	       i;
	int	       fd, stop;

	if ((fd = raw_connect(p->sock)) == -1) {
		prober_error(p, "connect", NULL);
		return NULL;
	}
	for (i = 0;; i++) {
		pthread_mutex_lock(&p->lock);
		stop = p->stop;
		pthread_mutex_unlock(&p->lock);
		if (stop)
			break;
		snprintf(req, sizeof(req),
		    "{\"op\":\"set\",\"key\":\"probe\",\"value\":%ld,"
		    "\"durability\":\"async\"}",
		    i);
		t0 = now_us();
		line = raw_roundtrip(fd, req);
		prober_time(p, t0);
		if (line == NULL || strstr(line, "\"ok\":true") == NULL) {
			prober_error(p, "set", line);
			free(line);
			break;
		}
		free(line);
		t0 = now_us();
		line = raw_roundtrip(fd, "{\"op\":\"get\",\"key\":\"probe\"}");
		prober_time(p, t0);
		snprintf(want, sizeof(want), "\"value\":%ld,", i);
		if (line == NULL || strstr(line, want) == NULL) {
			prober_error(p, "get", line);
			free(line);
			break;
		}
		free(line);
		pthread_mutex_lock(&p->lock);
		p->rounds++;
		pthread_mutex_unlock(&p->lock);
		usleep(2000);
	}
	close(fd);
	return NULL;
}

static void
prober_start(struct prober *p, const char *sock)
{
	int i, done;

	memset(p, 0, sizeof(*p));
	p->sock = sock;
	assert_int_equal(pthread_mutex_init(&p->lock, NULL), 0);
	assert_int_equal(pthread_create(&p->thread, NULL, prober_run, p), 0);
	probing = 1;
	/* Served once before the abuse starts. */
	for (i = 0; i < 500; i++) {
		pthread_mutex_lock(&p->lock);
		done = p->rounds > 0 || p->errors > 0;
		pthread_mutex_unlock(&p->lock);
		if (done)
			break;
		usleep(10 * 1000);
	}
}

/*
 * Time bounds stretch under valgrind (STASHD_WRAPPER), which runs the
 * daemon some 20 times slower: there it looks for memory errors, and the
 * bounds themselves are held by the plain and sanitizer runs.
 */
static long long
slowness(void)
{
	return getenv("STASHD_WRAPPER") != NULL ? 20 : 1;
}

static long long
max_latency_us(void)
{
	const char *s = getenv("ABUSE_MAX_LATENCY_MS");

#ifdef __SANITIZE_ADDRESS__
	/* Everything runs 2-3 times slower under ASan. */
	return (s != NULL && atoll(s) > 0 ? atoll(s) : 3000) * 1000;
#else
	return (s != NULL && atoll(s) > 0 ? atoll(s) : 1000) * 1000 *
	       slowness();
#endif
}

/*
 * Stop the prober and assert it was served all along: no error, at least
 * min_rounds round trips, none slower than the bound.
 */
static void
prober_finish(struct prober *p, long min_rounds)
{
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_mutex_unlock(&p->lock);
	assert_int_equal(pthread_join(p->thread, NULL), 0);
	pthread_mutex_destroy(&p->lock);
	probing = 0;
	fprintf(stderr, "# other client: %ld round trips, slowest %.1f ms\n",
	    p->rounds, (double)p->max_us / 1000);
	if (p->errors > 0)
		fail_msg("the other client failed: %s", p->what);
	if (min_rounds / slowness() > 0)
		min_rounds /= slowness();
	else if (min_rounds > 0)
		min_rounds = 1;
	if (p->rounds < min_rounds)
		fail_msg("the other client made %ld round trips, fewer than "
			 "%ld",
		    p->rounds, min_rounds);
	if (p->max_us > max_latency_us())
		fail_msg("the other client waited %lld ms for an answer",
		    p->max_us / 1000);
}

/* ------------------------------------------------------------ fixture */

/*
 * Each test's daemon and prober; the teardown stops and removes them
 * even when the test failed half-way.
 */
static struct daemon_proc dmn;
static struct prober	  prb;

static int
teardown(void **state)
{
	if (probing) {
		pthread_mutex_lock(&prb.lock);
		prb.stop = 1;
		pthread_mutex_unlock(&prb.lock);
		pthread_join(prb.thread, NULL);
		pthread_mutex_destroy(&prb.lock);
		probing = 0;
	}
	daemon_cleanup(&dmn);
	return 0;
}

/* A copy of tpl with its "%s" replaced by s. */
static char *
fill(const char *tpl, const char *s)
{
	const char *at = strstr(tpl, "%s");
	size_t	    n = strlen(tpl) + strlen(s);
	char	   *out = malloc(n);

	assert_non_null(at);
	assert_non_null(out);
	memcpy(out, tpl, (size_t)(at - tpl));
	strcpy(out + (at - tpl), s);
	strcat(out, at + 2);
	return out;
}

/* ---------------------------------------------------------- utilities */

/* ask(), with a timeout for big requests. */
static json_t *
ask_big(int fd, const char *request)
{
	char   *line;
	json_t *j;

	(void)raw_sends(fd, request);
	(void)raw_sends(fd, "\n");
	line = raw_readline(fd, (int)(10000 * slowness()));
	if (line == NULL)
		fail_msg(
		    "no answer to a request of %zu bytes", strlen(request));
	j = parse_answer(line);
	free(line);
	return j;
}

static void
start(struct daemon_proc *d, const char *const *args)
{
	assert_int_equal(daemon_start(d, args), 0);
	/* The start probe's connection may still be counted: settle. */
	usleep(50 * 1000);
}

/* Stop the daemon: it must exit 0 (and, under ASan, without a leak). */
static void
stop(struct daemon_proc *d)
{
	assert_int_equal(daemon_stop(d), 0);
	daemon_cleanup(d);
}

static int
conn(const struct daemon_proc *d)
{
	int fd = raw_connect(d->sock);

	assert_true(fd >= 0);
	return fd;
}

static json_t *
stats(const struct daemon_proc *d)
{
	int	fd = conn(d);
	json_t *j = ask(fd, "{\"op\":\"stats\"}");

	close(fd);
	assert_ok(j);
	return j;
}

/* One counter of the stats: section.name. */
static long long
stat_of(const struct daemon_proc *d, const char *section, const char *name)
{
	json_t	 *j = stats(d);
	long long v;

	v = json_integer_value(json_object_get(
	    json_object_get(json_object_get(j, "stats"), section), name));
	json_decref(j);
	return v;
}

/* Wait up to ms for a stats counter to reach want (or to drop to it). */
static int
stat_reaches(const struct daemon_proc *d, const char *section, const char *name,
    long long want, int below, int ms)
{
	long long deadline = now_us() + (long long)ms * 1000, v;

	for (;;) {
		v = stat_of(d, section, name);
		if (below ? v <= want : v >= want)
			return 1;
		if (now_us() > deadline)
			return 0;
		usleep(20 * 1000);
	}
}

static void
ping_ok(int fd)
{
	json_t *j = ask(fd, "{\"op\":\"ping\"}");

	assert_ok(j);
	json_decref(j);
}

/* The answer to one request, as text; fails the test without one. */
static char *
answer_line(int fd, int timeout_ms)
{
	char *line = raw_readline(fd, timeout_ms);

	if (line == NULL)
		fail_msg("no answer within %d ms", timeout_ms);
	return line;
}

static void
expect_error_line(int fd, const char *code, int timeout_ms)
{
	char   *line = answer_line(fd, timeout_ms);
	json_t *j = parse_answer(line);

	free(line);
	assert_error(j, code);
	json_decref(j);
}

/* Raise our descriptor limit; skip the test if the system will not. */
static void
raise_nofile(rlim_t want)
{
	struct rlimit rl;

	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur >= want)
		return;
	rl.rlim_cur = want;
	if (rl.rlim_max < want)
		rl.rlim_max = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
		fprintf(stderr, "cannot raise RLIMIT_NOFILE to %llu: %s\n",
		    (unsigned long long)want, strerror(errno));
		skip();
	}
}

/* ------------------------------------------------------------- tests */

/*
 * Endless lines: four clients each send up to 64 MB with no newline,
 * after one good request. Each gets its ping answered, then too_large,
 * then is closed long before its 64 MB are in.
 */
static void
test_endless_line(void **state)
{
	static const char *args[] = {"--max-line", "1MB", NULL};
	struct timeval	   tv = {5, 0};
	size_t		   chunk = 256 * 1024;
	long long	   rss0, sent, t0, began;
	char		  *junk = malloc(chunk), *line;
	int		   fds[4], i, rounds = 0, too_large0;

	assert_non_null(junk);
	memset(junk, 'x', chunk);
	start(&dmn, args);
	prober_start(&prb, dmn.sock);
	rss0 = rss_of(dmn.pid);
	too_large0 = (int)stat_of(&dmn, "connections", "closed_too_large");
	began = now_us();
	do {
		for (i = 0; i < 4; i++) {
			fds[i] = conn(&dmn);
			assert_int_equal(setsockopt(fds[i], SOL_SOCKET,
					     SO_SNDTIMEO, &tv, sizeof(tv)),
			    0);
			assert_int_equal(
			    raw_sends(fds[i], "{\"op\":\"ping\",\"id\":7}\n"),
			    0);
		}
		for (i = 0; i < 4; i++) {
			t0 = now_us();
			for (sent = 0; sent < 64 * MB; sent += (long long)chunk)
				if (raw_send(fds[i], junk, chunk) == -1)
					break;
			/* Refused (EPIPE, ECONNRESET), not timed out, early */
			assert_true(sent < 8 * MB);
			assert_true(now_us() - t0 < 5000000);
			line = answer_line(fds[i], 5000);
			assert_non_null(strstr(line, "\"id\":7"));
			free(line);
			expect_error_line(fds[i], "too_large", 5000);
			assert_true(raw_closed(fds[i], 5000));
			close(fds[i]);
		}
		rounds++;
	} while (now_us() - began < 2000000);
	fprintf(stderr, "# %d endless lines refused in %lld ms\n", rounds * 4,
	    (now_us() - began) / 1000);
	assert_int_equal(stat_of(&dmn, "connections", "closed_too_large"),
	    too_large0 + rounds * 4);
	assert_rss_bounded(dmn.pid, rss0, 16 * MB);
	prober_finish(&prb, 10);
	stop(&dmn);
	free(junk);
}

/*
 * 10,000 connections at once besides the prober (--max-connections
 * 10001): every one is served a ping, the next one is refused busy and
 * closed, and each costs the daemon less than 10 KB.
 */
static void
test_10000_connections(void **state)
{
	static const char *args[] = {"--max-connections", "10001", NULL};
	enum { N = 10000 };
	long long rss0, t0;
	char	 *line;
	int	 *fds = calloc(N, sizeof(int)), fd, i;

	assert_non_null(fds);
	raise_nofile(N + 256);
	start(&dmn, args);
	prober_start(&prb, dmn.sock);
	rss0 = rss_of(dmn.pid);
	t0 = now_us();
	for (i = 0; i < N; i++) {
		fds[i] = raw_connect(dmn.sock);
		if (fds[i] < 0)
			fail_msg("connection %d: %s", i, strerror(errno));
		if (raw_sends(fds[i], "{\"op\":\"ping\",\"id\":1}\n") != 0)
			fail_msg("send on connection %d", i);
	}
	for (i = 0; i < N; i++) {
		line = raw_readline(fds[i], 10000);
		if (line == NULL || strstr(line, "\"ok\":true") == NULL)
			fail_msg("connection %d: %s", i,
			    line != NULL ? line : "no answer");
		free(line);
	}
	fprintf(stderr, "# %d connections served in %lld ms, RSS +%lld KB\n", N,
	    (now_us() - t0) / 1000, (rss_of(dmn.pid) - rss0) / 1024);
	assert_rss_bounded(dmn.pid, rss0, N * 10LL * 1024);

	/* One more is one too many: busy, then closed. */
	fd = conn(&dmn);
	expect_error_line(fd, "busy", 5000);
	assert_true(raw_closed(fd, 5000));
	close(fd);

	for (i = 0; i < N; i++)
		close(fds[i]);
	/* All gone but the prober and the stats connection. */
	assert_true(stat_reaches(&dmn, "connections", "current", 2, 1, 5000));
	assert_int_equal(stat_of(&dmn, "connections", "rejected"), 1);
	prober_finish(&prb, 10);
	stop(&dmn);
	free(fds);
}

/*
 * Eight clients pipeline requests for 1 MB answers and never read: each
 * is paused at --max-output (the counter of pauses counts them), the
 * memory stays bounded, and when they go away their connections go.
 */
static void
test_writes_never_reads(void **state)
{
	static const char *args[] = {"--max-output", "256KB", NULL};
	enum { HOGS = 8 };
	static const char mget[] = "{\"op\":\"mget\",\"keys\":[\"b0\",\"b1\","
				   "\"b2\",\"b3\"]}\n";
	size_t		  vlen = 256 * 1024;
	char		 *req = malloc(vlen + 128);
	long long	  rss0, t0;
	int		  hogs[HOGS], fd, i, k;
	json_t		 *j;

	assert_non_null(req);
	start(&dmn, args);
	fd = conn(&dmn);
	for (k = 0; k < 4; k++) {
		int n = snprintf(req, vlen + 128,
		    "{\"op\":\"set\",\"key\":\"b%d\",\"value\":\"", k);

		memset(req + n, 'a' + k, vlen);
		strcpy(req + n + vlen, "\"}");
		j = ask(fd, req);
		assert_ok(j);
		json_decref(j);
	}
	prober_start(&prb, dmn.sock);
	rss0 = rss_of(dmn.pid);
	for (i = 0; i < HOGS; i++) {
		hogs[i] = conn(&dmn);
		assert_int_equal(fcntl(hogs[i], F_SETFL, O_NONBLOCK), 0);
		for (k = 0; k < 1000000; k++)
			if (send(hogs[i], mget, sizeof(mget) - 1,
				MSG_NOSIGNAL) == -1) {
				assert_true(errno == EAGAIN);
				break;
			}
		/* The daemon stopped reading it: its socket filled up. */
		assert_true(k < 1000000);
	}
	assert_true(stat_reaches(&dmn, "connections", "paused", HOGS, 0, 5000));
	/* Served meanwhile, for a second, on an old connection. */
	t0 = now_us();
	while (now_us() - t0 < 1000000) {
		ping_ok(fd);
		usleep(10 * 1000);
	}
	assert_rss_bounded(dmn.pid, rss0, HOGS * 4 * MB);
	for (i = 0; i < HOGS; i++)
		close(hogs[i]);
	/* Their connections and answers are freed. */
	assert_true(stat_reaches(&dmn, "connections", "current", 3, 1, 5000));
	ping_ok(fd);
	close(fd);
	prober_finish(&prb, 10);
	stop(&dmn);
	free(req);
}

/*
 * Slowloris: 20 clients send their request one byte a second for four
 * seconds, past the 1.5 s idle timeout (each byte restarts it), while the
 * prober is served; they finish and are answered. Then they stall in the
 * middle of a line and the idle timeout closes them, not sooner.
 */
static void
test_slowloris(void **state)
{
	static const char *args[] = {"--idle-timeout", "1500ms", NULL};
	enum { N = 20 };
	static const char req[] = "{\"op\":\"ping\",\"id\":3}\n";
	long long	  rss0, t0;
	char		 *line;
	int		  fds[N], i, s;

	start(&dmn, args);
	prober_start(&prb, dmn.sock);
	rss0 = rss_of(dmn.pid);
	for (i = 0; i < N; i++)
		fds[i] = conn(&dmn);
	for (s = 0; s < 4; s++) {
		for (i = 0; i < N; i++)
			assert_int_equal(raw_send(fds[i], req + s, 1), 0);
		sleep(1);
	}
	for (i = 0; i < N; i++) {
		assert_int_equal(raw_sends(fds[i], req + 4), 0);
		line = answer_line(fds[i], 5000);
		assert_non_null(strstr(line, "\"ok\":true,\"id\":3"));
		free(line);
	}
	assert_int_equal(stat_of(&dmn, "connections", "closed_idle"), 0);

	/* Stalled in the middle of a line: closed by the idle timeout. */
	t0 = now_us();
	for (i = 0; i < N; i++)
		assert_int_equal(raw_sends(fds[i], "{\"op\":\"pi"), 0);
	for (i = 0; i < N; i++) {
		assert_true(raw_closed(fds[i], 5000));
		close(fds[i]);
	}
	assert_true(now_us() - t0 >= 1400000);
	assert_true(now_us() - t0 < 4000000);
	assert_int_equal(stat_of(&dmn, "connections", "closed_idle"), N);
	assert_rss_bounded(dmn.pid, rss0, 8 * MB);
	prober_finish(&prb, 50);
	stop(&dmn);
}

/* "[[[...]]]" or {"a":{"a":...}} nested n deep, into a malloc'd string. */
static char *
nested(size_t n, int objects)
{
	char  *s = malloc(n * 6 + 16), *q;
	size_t i;

	assert_non_null(s);
	q = s;
	for (i = 0; i < n; i++)
		q += objects ? sprintf(q, "{\"a\":") : sprintf(q, "[");
	*q++ = '1';
	for (i = 0; i < n; i++)
		*q++ = objects ? '}' : ']';
	*q = '\0';
	return s;
}

/*
 * Deep nesting in every place a request takes JSON: a value, exec
 * parameters, the id, mget's keys, and the request itself; 1,000 and
 * 500,000 levels, arrays and objects. Each is a bad_request that leaves
 * the connection usable and stores nothing; nesting within the limit
 * is stored and read back intact.
 */
static void
test_deep_nesting(void **state)
{
	static const char *args[] = {"--max-line", "4MB", NULL};
	static const char *fmt[] = {
	    "{\"op\":\"set\",\"key\":\"deep\",\"value\":%s}",
	    "{\"op\":\"exec\",\"sql\":\"INSERT INTO t VALUES (?)\","
	    "\"params\":[%s]}",
	    "{\"op\":\"query\",\"sql\":\"SELECT ?\",\"params\":%s}",
	    "{\"op\":\"ping\",\"id\":%s}",
	    "{\"op\":\"mget\",\"keys\":[\"a\",%s]}",
	    "{\"op\":\"get\",\"key\":\"deep\",\"x\":%s}",
	};
	static const size_t depth[] = {1000, 500000};
	long long	    rss0;
	size_t		    f, k, o;
	char		   *inner, *req;
	int		    fd;
	json_t		   *j;

	start(&dmn, args);
	fd = conn(&dmn);
	j = ask(fd, "{\"op\":\"exec\",\"sql\":\"CREATE TABLE t(v)\"}");
	assert_ok(j);
	json_decref(j);
	prober_start(&prb, dmn.sock);
	rss0 = rss_of(dmn.pid);
	for (k = 0; k < 2; k++)
		for (o = 0; o < 2; o++) {
			inner = nested(depth[k], (int)o);
			for (f = 0; f < sizeof(fmt) / sizeof(fmt[0]); f++) {
				req = fill(fmt[f], inner);
				ask_error(fd, req, "bad_request");
				free(req);
				ping_ok(fd);
			}
			free(inner);
		}
	ask_error(fd, "{\"op\":\"get\",\"key\":\"deep\"}", "not_found");
	j = ask(fd, "{\"op\":\"query\",\"sql\":\"SELECT count(*) FROM t\"}");
	assert_ok(j);
	assert_int_equal(json_integer_value(json_array_get(
			     json_array_get(json_object_get(j, "rows"), 0), 0)),
	    0);
	json_decref(j);

	/* 50 levels inside the request: within the default 64. */
	inner = nested(50, 1);
	req = malloc(strlen(inner) + 100);
	assert_non_null(req);
	sprintf(req, "{\"op\":\"set\",\"key\":\"deep\",\"value\":%s}", inner);
	j = ask(fd, req);
	assert_ok(j);
	json_decref(j);
	j = ask(fd, "{\"op\":\"get\",\"key\":\"deep\"}");
	assert_ok(j);
	{
		char *got = json_dumps(json_object_get(j, "value"),
		    JSON_COMPACT | JSON_ENCODE_ANY);

		assert_non_null(got);
		assert_string_equal(got, inner);
		free(got);
	}
	json_decref(j);
	free(req);
	free(inner);
	close(fd);
	assert_rss_bounded(dmn.pid, rss0, 16 * MB);
	prober_finish(&prb, 10);
	stop(&dmn);
}

/*
 * Invalid UTF-8, raw bytes and escaped lone surrogates, in every string a
 * request carries: keys of get, set, del and mget, values and the keys
 * of objects inside them, the id, the SQL of exec and query, and their
 * parameters. Each is a bad_request; nothing is written.
 */
static void
test_invalid_utf8(void **state)
{
	static const char *bad[] = {
	    "\xff",		    /* never valid */
	    "\x80",		    /* a lone continuation byte */
	    "\xc3(",		    /* a truncated sequence */
	    "\xc0\x80",		    /* overlong NUL */
	    "\xe0\x80\xaf",	    /* overlong '/' */
	    "\xed\xa0\x80",	    /* a surrogate, encoded */
	    "\xf4\x90\x80\x80",	    /* past U+10FFFF */
	    "\xf8\x88\x80\x80\x80", /* five bytes */
	    "\\ud800",		    /* lone high surrogate, escaped */
	    "\\udc00x",		    /* lone low surrogate, escaped */
	};
	static const char *fmt[] = {
	    "{\"op\":\"get\",\"key\":\"k%s\"}",
	    "{\"op\":\"set\",\"key\":\"k%s\",\"value\":1}",
	    "{\"op\":\"set\",\"key\":\"k\",\"value\":\"v%s\"}",
	    "{\"op\":\"set\",\"key\":\"k\",\"value\":{\"o%s\":1}}",
	    "{\"op\":\"set\",\"key\":\"k\",\"value\":[1,[\"%s\"]]}",
	    "{\"op\":\"del\",\"key\":\"k%s\"}",
	    "{\"op\":\"mget\",\"keys\":[\"a\",\"k%s\"]}",
	    "{\"op\":\"ping\",\"id\":\"i%s\"}",
	    "{\"op\":\"exec\",\"sql\":\"INSERT INTO t VALUES ('%s')\"}",
	    "{\"op\":\"exec\",\"sql\":\"INSERT INTO t VALUES (?)\","
	    "\"params\":[\"%s\"]}",
	    "{\"op\":\"exec\",\"sql\":\"INSERT INTO t VALUES (:v)\","
	    "\"params\":{\"v%s\":1}}",
	    "{\"op\":\"exec\",\"tx\":[{\"sql\":\"INSERT INTO t VALUES (1)\"},"
	    "{\"sql\":\"INSERT INTO t VALUES ('%s')\"}]}",
	    "{\"op\":\"query\",\"sql\":\"SELECT '%s'\"}",
	    "{\"op\":\"query\",\"sql\":\"SELECT ?\",\"params\":[\"%s\"]}",
	    "{\"op%s\":\"ping\"}",
	};
	size_t	  b, f;
	long long rss0, began;
	int	  fd, cases = 0;
	json_t	 *j;

	start(&dmn, NULL);
	fd = conn(&dmn);
	j = ask(fd, "{\"op\":\"exec\",\"sql\":\"CREATE TABLE t(v)\"}");
	assert_ok(j);
	json_decref(j);
	j = ask(fd, "{\"op\":\"set\",\"key\":\"k\",\"value\":\"kept\"}");
	assert_ok(j);
	json_decref(j);
	prober_start(&prb, dmn.sock);
	rss0 = rss_of(dmn.pid);
	began = now_us();
	do
		for (b = 0; b < sizeof(bad) / sizeof(bad[0]); b++)
			for (f = 0; f < sizeof(fmt) / sizeof(fmt[0]); f++) {
				char *req = fill(fmt[f], bad[b]);

				ask_error(fd, req, "bad_request");
				free(req);
				cases++;
			}
	while (now_us() - began < 1000000);
	ping_ok(fd);
	/* Nothing was written. */
	j = ask(fd, "{\"op\":\"get\",\"key\":\"k\"}");
	assert_ok(j);
	assert_string_equal(
	    json_string_value(json_object_get(j, "value")), "kept");
	json_decref(j);
	j = ask(fd, "{\"op\":\"query\",\"sql\":\"SELECT count(*) FROM t\"}");
	assert_ok(j);
	assert_int_equal(json_integer_value(json_array_get(
			     json_array_get(json_object_get(j, "rows"), 0), 0)),
	    0);
	json_decref(j);
	close(fd);
	fprintf(stderr, "# %d invalid requests refused\n", cases);
	assert_rss_bounded(dmn.pid, rss0, 8 * MB);
	prober_finish(&prb, 10);
	stop(&dmn);
}

/* {"op":"mget","keys":["<prefix>0","<prefix>1",...]} of n keys. */
static char *
mget_of(size_t n, const char *prefix, size_t pad)
{
	size_t len = n * (strlen(prefix) + pad + 16) + 64, i;
	char  *s = malloc(len), *q;

	assert_non_null(s);
	q = s + sprintf(s, "{\"op\":\"mget\",\"keys\":[");
	for (i = 0; i < n; i++) {
		q += sprintf(q, "%s\"%s%zu", i > 0 ? "," : "", prefix, i);
		memset(q, 'p', pad);
		q += pad;
		*q++ = '"';
	}
	strcpy(q, "]}");
	return s;
}

/*
 * Huge mget: 10,000 keys (the default --mget-max), of which 1,000 exist
 * and 9,000 are misses looked up in SQLite, each answered in its place;
 * 10,000 keys of 1,000 bytes (10 MB of request); then 10,001 keys and a
 * million keys, too_large at once with the connection kept.
 */
static void
test_huge_mget(void **state)
{
	static const char *args[] = {"--max-line", "16MB", NULL};
	char		   req[1200], pad[901], *m, *line;
	long long	   rss0, t0;
	size_t		   i;
	int		   fd;
	json_t		  *j, *values;

	memset(pad, '0', 900);
	pad[900] = '\0';
	start(&dmn, args);
	fd = conn(&dmn);
	for (i = 0; i < 1000; i++) {
		snprintf(req, sizeof(req),
		    "{\"op\":\"set\",\"key\":\"m%zu\",\"value\":[%zu,\"%"
		    "0900d\"],"
		    "\"durability\":\"async\"}\n",
		    i, i, 0);
		assert_int_equal(raw_sends(fd, req), 0);
	}
	for (i = 0; i < 1000; i++) {
		line = answer_line(fd, 10000);
		assert_non_null(strstr(line, "\"ok\":true"));
		free(line);
	}
	j = ask(fd, "{\"op\":\"sync\"}");
	assert_ok(j);
	json_decref(j);
	prober_start(&prb, dmn.sock);
	rss0 = rss_of(dmn.pid);

	m = mget_of(10000, "m", 0);
	j = ask_big(fd, m);
	free(m);
	assert_ok(j);
	values = json_object_get(j, "values");
	assert_int_equal(json_array_size(values), 10000);
	for (i = 0; i < 10000; i++) {
		json_t *v = json_array_get(values, i);

		if (i < 1000)
			assert_int_equal(
			    json_integer_value(json_array_get(v, 0)), i);
		else
			assert_true(json_is_null(v));
	}
	json_decref(j);

	m = mget_of(10000, "long", 1000);
	assert_true(strlen(m) > 10 * 1000 * 1000);
	j = ask_big(fd, m);
	free(m);
	assert_ok(j);
	assert_int_equal(json_array_size(json_object_get(j, "values")), 10000);
	json_decref(j);

	m = mget_of(10001, "m", 0);
	j = ask_big(fd, m);
	assert_error(j, "too_large");
	json_decref(j);
	free(m);
	m = mget_of(1000000, "m", 0);
	t0 = now_us();
	j = ask_big(fd, m);
	assert_error(j, "too_large");
	json_decref(j);
	assert_true(now_us() - t0 < 2000000 * slowness());
	free(m);
	ping_ok(fd);
	close(fd);
	assert_rss_bounded(dmn.pid, rss0, 96 * MB);
	prober_finish(&prb, 10);
	stop(&dmn);
}

/* Ask a query; too_large within the time bound (µs). */
static void
query_too_large(int fd, const char *sql, long long bound_us)
{
	char	 *req;
	long long t0 = now_us();
	json_t	 *j, *a, *s = json_string(sql);

	assert_non_null(s);
	j = json_pack("{s:s,s:O}", "op", "query", "sql", s);
	json_decref(s);
	req = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	assert_non_null(req);
	a = ask_big(fd, req);
	assert_error(a, "too_large");
	json_decref(a);
	free(req);
	if (now_us() - t0 > bound_us * slowness())
		fail_msg(
		    "too_large after %lld ms: %s", (now_us() - t0) / 1000, sql);
}

/*
 * Queries that would return a billion rows, or rows of a megabyte: too
 * large, answered within two seconds, the answer never built past its
 * limit (the daemon's memory stays under it).
 */
static void
test_billion_rows(void **state)
{
	static const char *args[] = {"--query-bytes-max", "4MB", NULL};
	long long	   rss0;
	int		   fd;
	json_t		  *j;

	start(&dmn, args);
	fd = conn(&dmn);
	prober_start(&prb, dmn.sock);
	rss0 = rss_of(dmn.pid);
	/* Past --query-rows-max (100,000) */
	query_too_large(fd,
	    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
	    "WHERE x < 1000000000) SELECT x FROM c",
	    2000000);
	query_too_large(fd,
	    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
	    "SELECT x, -x FROM c",
	    2000000);
	/* Past --query-bytes-max in few rows */
	query_too_large(fd,
	    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
	    "WHERE x < 1000000000) SELECT x, printf('%.10000c', 'y') FROM c",
	    2000000);
	query_too_large(fd,
	    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
	    "WHERE x < 1000) SELECT x, zeroblob(1000000) FROM c",
	    2000000);
	assert_rss_bounded(dmn.pid, rss0, 64 * MB);
	/* The same query within the limits is answered. */
	j = ask(fd, "{\"op\":\"query\",\"sql\":\"WITH RECURSIVE c(x) AS "
		    "(SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) "
		    "SELECT sum(x) FROM c\"}");
	assert_ok(j);
	assert_int_equal(json_integer_value(json_array_get(
			     json_array_get(json_object_get(j, "rows"), 0), 0)),
	    500500);
	json_decref(j);
	close(fd);
	prober_finish(&prb, 10);
	stop(&dmn);
}

/*
 * Queries that never end (an endless recursive CTE counted): each holds a
 * reader thread, others are served meanwhile from the cache and the other
 * reader, and SIGTERM still stops the daemon, with status 0, within its
 * shutdown timeout and a little.
 */
static void
test_endless_query(void **state)
{
	static const char *args[] = {
	    "--readers", "3", "--shutdown-timeout", "1s", NULL};
	long long t0;
	int	  fd, i, status = 0;
	pid_t	  pid;
	json_t	 *j;

	start(&dmn, args);
	prober_start(&prb, dmn.sock);
	fd = conn(&dmn);
	for (i = 0; i < 2; i++)
		assert_int_equal(
		    raw_sends(fd, "{\"op\":\"query\",\"sql\":\"WITH RECURSIVE "
				  "c(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
				  "FROM c) SELECT count(*) FROM c\"}\n"),
		    0);
	/* A cache miss and a query go to the third reader meanwhile. */
	sleep(1);
	{
		int fd2 = conn(&dmn);

		ask_error(
		    fd2, "{\"op\":\"get\",\"key\":\"nowhere\"}", "not_found");
		j = ask(fd2, "{\"op\":\"query\",\"sql\":\"SELECT 1\"}");
		assert_ok(j);
		json_decref(j);
		close(fd2);
	}
	prober_finish(&prb, 10);

	t0 = now_us();
	pid = dmn.pid;
	assert_int_equal(kill(pid, SIGTERM), 0);
	while (waitpid(pid, &status, WNOHANG) == 0 && now_us() - t0 < 10000000)
		usleep(20 * 1000);
	if (now_us() - t0 >= 10000000)
		fail_msg("stashd still runs 10 s after SIGTERM");
	dmn.pid = 0;
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	close(fd);
	daemon_cleanup(&dmn);
}

/* Send one request, built with jansson, and check the error code. */
static void
sql_refused(int fd, const char *op, const char *sql, const char *code)
{
	json_t *j = json_pack("{s:s,s:s}", "op", op, "sql", sql), *a;
	char   *req;

	assert_non_null(j);
	req = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	assert_non_null(req);
	a = ask(fd, req);
	if (!json_is_false(json_object_get(a, "ok")) ||
	    strcmp(json_string_value(
		       json_object_get(json_object_get(a, "error"), "code")),
		code) != 0) {
		char *s = json_dumps(a, JSON_COMPACT);

		fail_msg("%s %s: expected %s, got %s", op, sql, code, s);
	}
	json_decref(a);
	free(req);
}

/*
 * SQL that reaches outside the database or into stashd's own state:
 * ATTACH, DETACH, VACUUM INTO (an error), load_extension, writable PRAGMAs,
 * transaction control, and any write to stash_ tables, directly, in a
 * transaction list, or through a trigger. Each is forbidden, through exec
 * and query; afterwards stashd's own tables and settings are unchanged.
 */
static void
test_forbidden_sql(void **state)
{
	static const char *forbidden[] = {
	    "ATTACH DATABASE '/tmp/stash-abuse.db' AS x",
	    "ATTACH ':memory:' AS x",
	    "DETACH DATABASE main",
	    "SELECT load_extension('/lib/x86_64-linux-gnu/libm.so.6')",
	    "PRAGMA journal_mode = DELETE",
	    "PRAGMA synchronous = OFF",
	    "PRAGMA writable_schema = ON",
	    "PRAGMA user_version = 7",
	    "PRAGMA query_only = OFF",
	    "PRAGMA foreign_keys = OFF",
	    "PRAGMA wal_checkpoint(TRUNCATE)",
	    "BEGIN",
	    "COMMIT",
	    "SAVEPOINT s",
	    "INSERT INTO stash_kv(key, value, version) VALUES ('x', '1', 1)",
	    "UPDATE stash_kv SET value = '2'",
	    "DELETE FROM stash_kv",
	    "DELETE FROM stash_meta",
	    "UPDATE stash_meta SET value = 0",
	    "DROP TABLE stash_kv",
	    "ALTER TABLE stash_kv ADD COLUMN y",
	    "CREATE INDEX stash_kv_v ON stash_kv(value)",
	    "CREATE TRIGGER tk AFTER INSERT ON stash_kv BEGIN "
	    "SELECT RAISE(ABORT, 'no'); END",
	    "CREATE TEMP TRIGGER tk AFTER UPDATE ON main.stash_kv BEGIN "
	    "SELECT RAISE(ABORT, 'no'); END",
	    /* fires the trigger of t below, which writes stash_kv */
	    "INSERT INTO t VALUES (1)",
	    "CREATE TABLE stash_mine(x)",
	};
	static const char *ops[] = {"exec", "query"};
	size_t		   i, o;
	long long	   rss0;
	char		  *before;
	long long	   began;
	int		   fd, cases = 0;
	json_t		  *j;

	start(&dmn, NULL);
	fd = conn(&dmn);
	j = ask(fd, "{\"op\":\"exec\",\"sql\":\"CREATE TABLE t(v)\"}");
	assert_ok(j);
	json_decref(j);
	j = ask(fd, "{\"op\":\"set\",\"key\":\"own\",\"value\":\"kept\"}");
	assert_ok(j);
	json_decref(j);
	/* A trigger may be created; its write of stash_kv never runs. */
	j = ask(fd, "{\"op\":\"exec\",\"sql\":\"CREATE TRIGGER tr AFTER "
		    "INSERT ON t BEGIN DELETE FROM stash_kv; END\"}");
	assert_ok(j);
	json_decref(j);
	j = ask(fd, "{\"op\":\"sync\"}");
	assert_ok(j);
	json_decref(j);
	j = ask(fd,
	    "{\"op\":\"query\",\"sql\":\"SELECT (SELECT group_concat("
	    "key || value || version) FROM stash_kv WHERE key <> 'probe') || "
	    "(SELECT "
	    "group_concat(sql) FROM sqlite_schema)\"}");
	assert_ok(j);
	before = json_dumps(json_object_get(j, "rows"), JSON_COMPACT);
	json_decref(j);
	assert_non_null(before);

	prober_start(&prb, dmn.sock);
	rss0 = rss_of(dmn.pid);
	began = now_us();
	do
		for (i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++)
			for (o = 0; o < 2; o++) {
				/* query refuses writes before the authorizer
				 * does */
				if (o == 1 &&
				    strncmp(forbidden[i], "SELECT", 6) != 0 &&
				    strncmp(forbidden[i], "ATTACH", 6) != 0 &&
				    strncmp(forbidden[i], "PRAGMA", 6) != 0)
					continue;
				sql_refused(
				    fd, ops[o], forbidden[i], "forbidden");
				cases++;
			}
	while (now_us() - began < 1000000);
	/* VACUUM INTO would write a file: an error, and no file. */
	{
		char	    path[400], *sql;
		struct stat sb;

		snprintf(path, sizeof(path), "%s/copy.db", dmn.dir);
		sql = fill("VACUUM INTO '%s'", path);
		j = json_pack("{s:s,s:s}", "op", "exec", "sql", sql);
		free(sql);
		sql = json_dumps(j, JSON_COMPACT);
		json_decref(j);
		j = ask(fd, sql);
		free(sql);
		assert_true(json_is_false(json_object_get(j, "ok")));
		json_decref(j);
		assert_int_equal(stat(path, &sb), -1);
	}
	/* Inside a transaction list: the whole list fails, nothing done. */
	j = ask(fd, "{\"op\":\"exec\",\"tx\":[{\"sql\":\"INSERT INTO t "
		    "VALUES (1)\"},{\"sql\":\"DELETE FROM stash_kv\"}]}");
	assert_false(json_is_true(json_object_get(j, "ok")));
	json_decref(j);
	cases++;
	j = ask(fd, "{\"op\":\"sync\"}");
	assert_ok(j);
	json_decref(j);

	j = ask(fd,
	    "{\"op\":\"query\",\"sql\":\"SELECT (SELECT group_concat("
	    "key || value || version) FROM stash_kv WHERE key <> 'probe') || "
	    "(SELECT "
	    "group_concat(sql) FROM sqlite_schema)\"}");
	assert_ok(j);
	{
		char *after =
		    json_dumps(json_object_get(j, "rows"), JSON_COMPACT);

		assert_non_null(after);
		assert_string_equal(after, before);
		free(after);
	}
	json_decref(j);
	j = ask(fd, "{\"op\":\"query\",\"sql\":\"SELECT count(*) FROM t\"}");
	assert_ok(j);
	assert_int_equal(json_integer_value(json_array_get(
			     json_array_get(json_object_get(j, "rows"), 0), 0)),
	    0);
	json_decref(j);
	j = ask(fd, "{\"op\":\"get\",\"key\":\"own\"}");
	assert_ok(j);
	assert_string_equal(
	    json_string_value(json_object_get(j, "value")), "kept");
	json_decref(j);
	free(before);
	close(fd);
	fprintf(stderr, "# %d statements refused\n", cases);
	assert_rss_bounded(dmn.pid, rss0, 8 * MB);
	prober_finish(&prb, 10);
	stop(&dmn);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_endless_line, teardown),
	    cmocka_unit_test_teardown(test_10000_connections, teardown),
	    cmocka_unit_test_teardown(test_writes_never_reads, teardown),
	    cmocka_unit_test_teardown(test_slowloris, teardown),
	    cmocka_unit_test_teardown(test_deep_nesting, teardown),
	    cmocka_unit_test_teardown(test_invalid_utf8, teardown),
	    cmocka_unit_test_teardown(test_huge_mget, teardown),
	    cmocka_unit_test_teardown(test_billion_rows, teardown),
	    cmocka_unit_test_teardown(test_forbidden_sql, teardown),
	    cmocka_unit_test_teardown(test_endless_query, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	/* ABUSE_ONLY=test_slowloris runs one test */
	if (getenv("ABUSE_ONLY") != NULL)
		cmocka_set_test_filter(getenv("ABUSE_ONLY"));
	return cmocka_run_group_tests_name("abuse", tests, NULL, NULL);
}

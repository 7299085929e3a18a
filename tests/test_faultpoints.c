/*
 * test_faultpoints.c -- error paths that no outside fault reaches exactly,
 * taken with the fault points of the test build (daemon/crashpoint.h,
 * STASHD_FAULT=name:N):
 *
 *   cache-pin      an acknowledged write that the cache cannot pin: the
 *                  write still counts for the commands that read before
 *                  they write, reads get it from SQLite at once (not after
 *                  the apply delay), and it survives a restart;
 *   reader-lookup  a lookup in SQLite that fails, for a RESP GET, a RESP
 *                  transaction and a JSON get: the client gets an error,
 *                  the connection and the daemon go on, the next lookup
 *                  works;
 *   exec-evict     a transaction's key evicted while the lookup of its
 *                  other keys was away: EXEC looks every key up again;
 *   exec-drop      a transaction's keys gone from the cache between two
 *                  of its commands: what ran is dropped, the keys looked
 *                  up, and the transaction runs again, its writes once.
 *   read-reserve,  a read of a client's socket with no room for it in the
 *   read-error     input buffer, or one that fails: that connection is
 *                  closed and freed, the others go on.
 *
 * Runs tests/stashd-crashpoints ($STASHD_CRASHPOINTS); exit 77 (skip)
 * without it.
 */
#include "config.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

/* Under valgrind or a sanitizer everything is slower: bounds, not goals. */
#define WAIT_MS 5000

/* Does the daemon's log hold s? */
static int
log_has(const struct daemon_proc *d, const char *s)
{
	char   buf[65536];
	FILE  *f = fopen(d->log, "r");
	size_t n;

	if (f == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, s) != NULL;
}

/* Start the test build with STASHD_FAULT=fault (NULL: none). */
static void
start(struct daemon_proc *d, const char *fault, const char *db)
{
	const char *args[] = {"--apply-delay", "10s", "-d", db, NULL};

	if (fault != NULL)
		assert_int_equal(setenv("STASHD_FAULT", fault, 1), 0);
	else
		assert_int_equal(unsetenv("STASHD_FAULT"), 0);
	assert_int_equal(setenv("STASHD", getenv("STASHD_CRASHPOINTS"), 1), 0);
	/* -d NULL: the daemon's own folder (a later -d wins). */
	if (db == NULL)
		args[2] = NULL;
	assert_int_equal(daemon_start(d, args), 0);
	assert_int_equal(unsetenv("STASHD_FAULT"), 0);
}

/* A line of answer, without its CR. */
static char *
chomp(char *ans)
{
	size_t n;

	assert_non_null(ans);
	n = strlen(ans);
	if (n > 0 && ans[n - 1] == '\r')
		ans[n - 1] = '\0';
	return ans;
}

/* One command (RESP inline, or JSON) and its first line of answer. */
static char *
cmd(int fd, const char *line)
{
	return chomp(raw_roundtrip(fd, line));
}

static char *
next_line(int fd)
{
	return chomp(raw_readline(fd, WAIT_MS));
}

/* The next line of an answer already asked for. */
static void
expect_next(int fd, const char *want)
{
	char *ans = next_line(fd);

	assert_string_equal(ans, want);
	free(ans);
}

/* A bulk answer: its header line, then the value line. */
static void
expect_bulk(int fd, const char *line, const char *value)
{
	char  want[64];
	char *ans = cmd(fd, line);

	snprintf(want, sizeof(want), "$%zu", strlen(value));
	assert_string_equal(ans, want);
	free(ans);
	expect_next(fd, value);
}

static void
expect_line(int fd, const char *line, const char *want)
{
	char *ans = cmd(fd, line);

	assert_string_equal(ans, want);
	free(ans);
}

/*
 * An acknowledged write the cache fails to pin. The key's state stays
 * with the daemon until the write is applied (an INCR adds to it), and
 * the apply is not left to the 10 s delay: a GET sees the value long
 * before. The write is in SQLite after a restart.
 */
static void
test_pin_fails(void **state)
{
	struct daemon_proc d, d2;
	long long	   t0;
	char		   db[320], *ans;
	int		   fd, seen = 0;

	(void)state;
	start(&d, "cache-pin:1", NULL);
	fd = raw_connect(d.sock);
	assert_true(fd >= 0);
	expect_line(fd, "SET k 5", "+OK");
	assert_true(log_has(&d, "fault point cache-pin reached (hit 1)"));
	assert_true(log_has(&d, "cannot pin a write"));
	/* The read before the write sees it, applied or not. */
	expect_line(fd, "INCR k", ":6");
	/* The INCR was pinned (the fault was once): the cache has 6. */
	expect_bulk(fd, "GET k", "6");

	/* A second key: a GET must not wait for the apply delay. */
	assert_int_equal(daemon_stop(&d), 0);
	snprintf(db, sizeof(db), "%s", d.db);
	start(&d2, "cache-pin:1", db);
	close(fd);
	fd = raw_connect(d2.sock);
	assert_true(fd >= 0);
	expect_line(fd, "SET j 41", "+OK");
	t0 = harness_now_ms();
	while (harness_now_ms() - t0 < WAIT_MS) {
		ans = cmd(fd, "GET j");
		if (strcmp(ans, "$2") == 0) {
			free(ans);
			ans = next_line(fd);
			assert_string_equal(ans, "41");
			free(ans);
			seen = 1;
			break;
		}
		/* Not applied yet: SQLite does not have it. */
		assert_string_equal(ans, "$-1");
		free(ans);
		usleep(10000);
	}
	assert_true(seen);
	expect_line(fd, "INCR j", ":42");
	expect_bulk(fd, "GET k", "6");
	close(fd);
	assert_int_equal(daemon_stop(&d2), 0);
	daemon_cleanup(&d2);
	daemon_cleanup(&d);
}

/*
 * A read that fails on one connection, at the third read the daemon
 * makes (the start's probe may have made one): the connection whose read
 * it is gets no answer and is closed; a new one is served.
 */
static void
test_read_fails(void **state)
{
	static const char *faults[] = {"read-reserve:3", "read-error:3"};
	static const char *hits[] = {"fault point read-reserve reached (hit 3)",
	    "fault point read-error reached (hit 3)"};
	struct daemon_proc d;
	char		  *ans;
	int		   fd, i, k, closed;

	(void)state;
	for (k = 0; k < 2; k++) {
		start(&d, faults[k], NULL);
		fd = raw_connect(d.sock);
		assert_true(fd >= 0);
		closed = 0;
		for (i = 0; i < 5 && !closed; i++) {
			assert_int_equal(raw_sends(fd, "PING\r\n"), 0);
			if ((ans = raw_readline(fd, WAIT_MS)) == NULL) {
				assert_true(raw_closed(fd, WAIT_MS));
				closed = 1;
				break;
			}
			assert_string_equal(chomp(ans), "+PONG");
			free(ans);
		}
		assert_true(closed);
		/* The third read: this client's first or second. */
		assert_true(i == 1 || i == 2);
		assert_true(log_has(&d, hits[k]));
		if (k == 0)
			assert_true(log_has(&d, "no memory for"));
		close(fd);
		fd = raw_connect(d.sock);
		assert_true(fd >= 0);
		expect_line(fd, "PING", "+PONG");
		expect_line(fd, "SET r 1", "+OK");
		expect_bulk(fd, "GET r", "1");
		close(fd);
		assert_int_equal(daemon_stop(&d), 0);
		daemon_cleanup(&d);
	}
}

/*
 * The lookup tests' daemon: k = v written by a first daemon, stopped; then
 * a second one on the same database with the lookup fault armed, so that
 * its cache is empty and k is only in SQLite.
 */
struct lookup_fx {
	struct daemon_proc first, d;
	int		   fd;
};

static int
lookup_setup(void **state)
{
	struct lookup_fx *f = calloc(1, sizeof(*f));
	int		  fd;

	assert_non_null(f);
	start(&f->first, NULL, NULL);
	fd = raw_connect(f->first.sock);
	assert_true(fd >= 0);
	expect_line(fd, "SET k v", "+OK");
	close(fd);
	assert_int_equal(daemon_stop(&f->first), 0);
	start(&f->d, "reader-lookup:1", f->first.db);
	f->fd = raw_connect(f->d.sock);
	assert_true(f->fd >= 0);
	*state = f;
	return 0;
}

static int
lookup_teardown(void **state)
{
	struct lookup_fx *f = *state;

	close(f->fd);
	assert_int_equal(daemon_stop(&f->d), 0);
	daemon_cleanup(&f->d);
	daemon_cleanup(&f->first);
	free(f);
	return 0;
}

/* A failed lookup for a RESP GET; the same key again works. */
static void
test_lookup_fails_get(void **state)
{
	struct lookup_fx *f = *state;
	char		 *ans;

	ans = cmd(f->fd, "GET k");
	assert_true(ans[0] == '-');
	assert_non_null(strstr(ans, "fault point reader-lookup"));
	free(ans);
	assert_true(log_has(&f->d, "reader: fault point reader-lookup"));
	expect_bulk(f->fd, "GET k", "v");
	expect_line(f->fd, "PING", "+PONG");
}

/* The same in EXEC: the transaction answers the error, nothing ran. */
static void
test_lookup_fails_exec(void **state)
{
	struct lookup_fx *f = *state;
	char		 *ans;

	expect_line(f->fd, "MULTI", "+OK");
	expect_line(f->fd, "APPEND k w", "+QUEUED");
	expect_line(f->fd, "GET k", "+QUEUED");
	ans = cmd(f->fd, "EXEC");
	assert_true(ans[0] == '-');
	assert_non_null(strstr(ans, "fault point reader-lookup"));
	free(ans);
	/* No transaction is left open, and the APPEND did not run. */
	expect_line(f->fd, "EXEC", "-ERR EXEC without MULTI");
	expect_bulk(f->fd, "GET k", "v");
	expect_line(f->fd, "MULTI", "+OK");
	expect_line(f->fd, "APPEND k w", "+QUEUED");
	expect_line(f->fd, "EXEC", "*1");
	expect_next(f->fd, ":2");
}

/* The same for a JSON get. */
static void
test_lookup_fails_json(void **state)
{
	struct lookup_fx *f = *state;
	char		 *ans;

	ans = cmd(f->fd, "{\"op\":\"get\",\"key\":\"k\",\"id\":1}");
	assert_non_null(strstr(ans, "\"ok\":false"));
	assert_non_null(strstr(ans, "fault point reader-lookup"));
	free(ans);
	ans = cmd(f->fd, "{\"op\":\"get\",\"key\":\"k\",\"id\":2}");
	assert_non_null(strstr(ans, "\"ok\":true"));
	assert_non_null(strstr(ans, "\"value\":\"v\""));
	free(ans);
}

/*
 * a = va and b = vb in SQLite only (set, then a restart), and the daemon
 * restarted with fault armed: a connection to it.
 */
static int
start_ab(struct daemon_proc *first, struct daemon_proc *d, const char *fault)
{
	int fd;

	start(first, NULL, NULL);
	fd = raw_connect(first->sock);
	assert_true(fd >= 0);
	expect_line(fd, "SET a va", "+OK");
	expect_line(fd, "SET b vb", "+OK");
	close(fd);
	assert_int_equal(daemon_stop(first), 0);
	start(d, fault, first->db);
	fd = raw_connect(d->sock);
	assert_true(fd >= 0);
	return fd;
}

/* Close fd, stop d, remove both daemons' folders. */
static void
stop_ab(int fd, struct daemon_proc *first, struct daemon_proc *d)
{
	close(fd);
	assert_int_equal(daemon_stop(d), 0);
	daemon_cleanup(d);
	daemon_cleanup(first);
}

/*
 * A transaction's key evicted while the lookup of its other keys was
 * away: EXEC looks every key up again, and answers what SQLite holds.
 */
static void
test_exec_second_lookup(void **state)
{
	struct daemon_proc first, d;
	int		   fd = start_ab(&first, &d, "exec-evict:1");

	/* a is cached; b is not, so EXEC looks b up, and only b. */
	expect_bulk(fd, "GET a", "va");
	expect_line(fd, "MULTI", "+OK");
	expect_line(fd, "GET a", "+QUEUED");
	expect_line(fd, "GET b", "+QUEUED");
	expect_line(fd, "APPEND a +", "+QUEUED");
	expect_line(fd, "EXEC", "*3");
	expect_next(fd, "$2");
	expect_next(fd, "va");
	expect_next(fd, "$2");
	expect_next(fd, "vb");
	expect_next(fd, ":3");
	assert_true(log_has(&d, "fault point exec-evict"));
	expect_bulk(fd, "GET a", "va+");
	stop_ab(fd, &first, &d);
}

/*
 * A transaction's keys leave the cache between two of its commands (as a
 * key's expiry does when the second turns): what ran is dropped, its
 * write included, the keys are looked up, and the transaction runs again
 * from the start, its APPEND once.
 */
static void
test_exec_drop_and_look_up(void **state)
{
	struct daemon_proc first, d;
	int		   fd = start_ab(&first, &d, "exec-drop:1");

	/* Both cached: EXEC runs at once, without a lookup. */
	expect_bulk(fd, "GET a", "va");
	expect_bulk(fd, "GET b", "vb");
	expect_line(fd, "MULTI", "+OK");
	expect_line(fd, "APPEND a X", "+QUEUED");
	expect_line(fd, "GET b", "+QUEUED");
	expect_line(fd, "EXEC", "*2");
	expect_next(fd, ":3");
	expect_next(fd, "$2");
	expect_next(fd, "vb");
	assert_true(log_has(&d, "fault point exec-drop"));
	expect_bulk(fd, "GET a", "vaX");
	stop_ab(fd, &first, &d);
}

/*
 * A malformed STASHD_FAULT or STASHD_CRASH stops the test build at start,
 * exit 1, naming the variable; nothing is armed by half.
 */
static void
test_point_spec_malformed(void **state)
{
	static const char *bad[] = {"cache-pin", "cache-pin:", "cache-pin:0",
	    "cache-pin:x", "cache-pin:-1", "cache-pin:1x", ":1",
	    "cache-pin:+1"};
	static const char *vars[] = {"STASHD_FAULT", "STASHD_CRASH"};
	char		   cmdline[1024], out[256], line[512];
	const char	  *tmp = getenv("TESTS_TMPDIR");
	size_t		   i, v;
	FILE		  *f;
	int		   rc, named;

	(void)state;
	snprintf(out, sizeof(out), "%s/faultpoints.%d.err",
	    tmp != NULL ? tmp : "/tmp", (int)getpid());
	for (v = 0; v < 2; v++)
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			snprintf(cmdline, sizeof(cmdline),
			    "%s='%s' '%s' -s /nonexistent/s.sock -d "
			    "/nonexistent/db -c /dev/null >/dev/null 2>'%s'",
			    vars[v], bad[i], getenv("STASHD_CRASHPOINTS"), out);
			rc = system(cmdline);
			assert_true(WIFEXITED(rc));
			if (WEXITSTATUS(rc) != 1)
				fail_msg("%s=%s: exit %d, not 1", vars[v],
				    bad[i], WEXITSTATUS(rc));
			assert_non_null(f = fopen(out, "r"));
			named = 0;
			while (fgets(line, sizeof(line), f) != NULL)
				if (strstr(line, vars[v]) != NULL &&
				    strstr(line, bad[i]) != NULL)
					named = 1;
			fclose(f);
			if (!named)
				fail_msg("%s=%s: not named on stderr", vars[v],
				    bad[i]);
		}
	unlink(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_point_spec_malformed),
	    cmocka_unit_test(test_pin_fails),
	    cmocka_unit_test(test_exec_second_lookup),
	    cmocka_unit_test(test_exec_drop_and_look_up),
	    cmocka_unit_test(test_read_fails),
	    cmocka_unit_test_setup_teardown(
		test_lookup_fails_get, lookup_setup, lookup_teardown),
	    cmocka_unit_test_setup_teardown(
		test_lookup_fails_exec, lookup_setup, lookup_teardown),
	    cmocka_unit_test_setup_teardown(
		test_lookup_fails_json, lookup_setup, lookup_teardown),
	};
	const char *bin = getenv("STASHD_CRASHPOINTS");

	if (bin == NULL || access(bin, X_OK) == -1) {
		printf("SKIP: STASHD_CRASHPOINTS does not name "
		       "tests/stashd-crashpoints\n");
		return 77;
	}
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

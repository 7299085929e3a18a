/*
 * test_durable.c -- integration tests of the durable write path: exec and
 * its parameters, tx, query, the authorizer, durability modes, persistence
 * across restarts (SIGTERM and SIGKILL), read-your-writes, sync, group
 * commit, SQLITE_BUSY from another process, write-queue backpressure and
 * cache misses that go to SQLite.
 *
 * Each test drives a private stashd over raw sockets, as a client would.
 * Tests that need no special option share one daemon; the others start
 * their own. A restart test starts a second daemon on the first one's
 * database (-d given twice: the last one wins) and keeps the first one's
 * folder until the end.
 */
#include "config.h"

#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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
#include <sqlite3.h>

#include "answers.h"
#include "harness.h"

/* The shared daemon of the tests that need no special options. */
static struct daemon_proc shared;

/* A growing string of requests. */
struct sbuf {
	char  *p;
	size_t len;
	size_t cap;
};

static void sb_printf(struct sbuf *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static void
sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int	n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		assert_true(n >= 0);
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		b->cap = b->cap * 2 + (size_t)n + 4096;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
}

static void
sb_free(struct sbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static json_t *askf(int, const char *, ...)
    __attribute__((format(printf, 2, 3)));

/* ask() with a formatted request. */
static json_t *
askf(int fd, const char *fmt, ...)
{
	char   *req = NULL;
	va_list ap;
	json_t *j;
	int	n;

	va_start(ap, fmt);
	n = vasprintf(&req, fmt, ap);
	va_end(ap);
	assert_true(n >= 0);
	j = ask(fd, req);
	free(req);
	return j;
}

/* The error message of an error answer. */
static const char *
error_message(json_t *j)
{
	const char *m = json_string_value(
	    json_object_get(json_object_get(j, "error"), "message"));

	assert_non_null(m);
	return m;
}

/* Ask and check the answer is ok in one step. */
static void
ask_ok(int fd, const char *request)
{
	json_t *j = ask(fd, request);

	assert_ok(j);
	json_decref(j);
}

static json_int_t
int_of(json_t *j, const char *name)
{
	json_t *v = json_object_get(j, name);

	if (!json_is_integer(v)) {
		char *s = json_dumps(j, 0);

		fail_msg("\"%s\" is not an integer in %s", name, s);
	}
	return json_integer_value(v);
}

static int
connect_to(const struct daemon_proc *d)
{
	int fd = raw_connect(d->sock);

	assert_true(fd >= 0);
	return fd;
}

static int
connect_shared(void)
{
	return connect_to(&shared);
}

/* Read the daemon's stats over a new connection. */
static json_t *
stats_of(const char *sock)
{
	int	fd = raw_connect(sock);
	json_t *j;

	assert_true(fd >= 0);
	j = ask(fd, "{\"op\":\"stats\"}");
	close(fd);
	assert_ok(j);
	return j;
}

/* A numeric stats field of a stats answer; fails when absent. */
static double
stat_num(json_t *ans, const char *section, const char *field)
{
	json_t *v = json_object_get(
	    json_object_get(json_object_get(ans, "stats"), section), field);

	if (!json_is_number(v))
		fail_msg("stats %s.%s is not a number", section, field);
	return json_number_value(v);
}

static long long
stat_int(json_t *ans, const char *section, const char *field)
{
	return (long long)stat_num(ans, section, field);
}

/* The first column of the first row of a query (an integer). */
static long long
query_int(int fd, const char *sql)
{
	json_t	 *j, *row;
	long long v;

	j = askf(fd, "{\"op\":\"query\",\"sql\":\"%s\"}", sql);
	assert_ok(j);
	row = json_array_get(json_object_get(j, "rows"), 0);
	if (!json_is_integer(json_array_get(row, 0)))
		fail_msg("query %s: no integer in the first row", sql);
	v = json_integer_value(json_array_get(row, 0));
	json_decref(j);
	return v;
}

/* The rows of a query; the caller decrefs the answer. */
static json_t *
query_rows(int fd, const char *sql, json_t **answer)
{
	json_t *j = askf(fd, "{\"op\":\"query\",\"sql\":\"%s\"}", sql);
	json_t *rows;

	assert_ok(j);
	rows = json_object_get(j, "rows");
	assert_true(json_is_array(rows));
	*answer = j;
	return rows;
}

/* Wait until applied: a sync answered ok. */
static long long
sync_on(int fd)
{
	json_t	 *j = ask(fd, "{\"op\":\"sync\"}");
	long long s;

	assert_ok(j);
	s = int_of(j, "applied_seq");
	json_decref(j);
	return s;
}

typedef void (*tick_fn)(void *);

/*
 * Send len bytes of requests and read n answers, sending and receiving
 * together so that neither side blocks on a full socket; tick (if any)
 * runs every 20 ms meanwhile. Returns n parsed answers (answers_free).
 */
static json_t **
pipeline(int fd, const char *buf, size_t len, size_t n, tick_fn tick, void *arg)
{
	json_t	**ans = calloc(n > 0 ? n : 1, sizeof(*ans));
	char	 *in = NULL, *nl;
	size_t	  inlen = 0, incap = 0, sent = 0, got = 0, start;
	long long deadline = harness_now_ms() + 60000,
		  last_tick = harness_now_ms();
	struct pollfd pfd;
	ssize_t	      r;
	int	      flags = fcntl(fd, F_GETFL);

	assert_non_null(ans);
	assert_true(flags != -1);
	assert_int_equal(fcntl(fd, F_SETFL, flags | O_NONBLOCK), 0);
	while (got < n) {
		if (harness_now_ms() > deadline)
			fail_msg("pipeline: %zu of %zu answers after 60 s "
				 "(%zu of %zu bytes sent)",
			    got, n, sent, len);
		pfd.fd = fd;
		pfd.events = POLLIN | (sent < len ? POLLOUT : 0);
		pfd.revents = 0;
		if (poll(&pfd, 1, 20) == -1 && errno != EINTR)
			fail_msg("poll: %s", strerror(errno));
		if (pfd.revents & POLLOUT) {
			r = send(fd, buf + sent, len - sent, MSG_NOSIGNAL);
			if (r > 0)
				sent += (size_t)r;
			else if (r == -1 && errno != EAGAIN &&
				 errno != EWOULDBLOCK && errno != EINTR)
				fail_msg("send: %s", strerror(errno));
		}
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
			if (incap - inlen < 65536) {
				incap = incap * 2 + 65536;
				in = realloc(in, incap);
				assert_non_null(in);
			}
			r = recv(fd, in + inlen, incap - inlen - 1, 0);
			if (r == 0)
				fail_msg("pipeline: closed after %zu of %zu "
					 "answers",
				    got, n);
			if (r == -1 && errno != EAGAIN &&
			    errno != EWOULDBLOCK && errno != EINTR)
				fail_msg("recv: %s", strerror(errno));
			if (r > 0) {
				inlen += (size_t)r;
				start = 0;
				while (start < inlen &&
				       (nl = memchr(in + start, '\n',
					    inlen - start)) != NULL) {
					*nl = '\0';
					if (got >= n)
						fail_msg("pipeline: too many "
							 "answers");
					ans[got++] = parse_answer(in + start);
					start = (size_t)(nl - in) + 1;
				}
				memmove(in, in + start, inlen - start);
				inlen -= start;
			}
		}
		if (tick != NULL && harness_now_ms() - last_tick >= 20) {
			tick(arg);
			last_tick = harness_now_ms();
		}
	}
	assert_int_equal(inlen, 0);
	assert_int_equal(fcntl(fd, F_SETFL, flags), 0);
	free(in);
	return ans;
}

static void
answers_free(json_t **ans, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		json_decref(ans[i]);
	free(ans);
}

/* A 1 KB JSON string value that names its index. */
static void
big_value(char *buf, size_t size, const char *tag, int i)
{
	int n = snprintf(buf, size, "%s-%06d-", tag, i);

	assert_true(n > 0 && (size_t)n < size);
	memset(buf + n, 'a' + i % 26, 1000 - (size_t)n);
	buf[1000] = '\0';
}

/* Start a daemon on the database of another (a restart). */
static void
restart_on(struct daemon_proc *d2, const struct daemon_proc *d1)
{
	const char *args[] = {"-d", d1->db, NULL};

	assert_int_equal(daemon_start(d2, args), 0);
}

static int
group_setup(void **state)
{
	(void)state;
	return daemon_start(&shared, NULL);
}

static int
group_teardown(void **state)
{
	int rc;

	(void)state;
	rc = daemon_stop(&shared);
	daemon_cleanup(&shared);
	return rc == 0 ? 0 : -1;
}

/*
 * exec parameters of every JSON type bind as the SQLite type the design
 * names; checked with typeof() through query.
 */
static void
test_exec_param_types(void **state)
{
	static const struct {
		const char *param;
		const char *type;
		const char *expect; /* NULL: JSON text of param */
	} cases[] = {
	    {"\"s\"", "text", "\"s\""},
	    {"42", "integer", "42"},
	    {"1.5", "real", "1.5"},
	    {"null", "null", "null"},
	    {"true", "integer", "1"},
	    {"false", "integer", "0"},
	    {"9007199254740993", "integer", "9007199254740993"},
	    {"-7", "integer", "-7"},
	    {"\"h\\u00e9 \\\"q\\\"\"", "text", "\"h\\u00e9 \\\"q\\\"\""},
	    {"{\"a\": [1, 2], \"b\": {\"c\": null}}", "text", NULL},
	    {"[1, \"x\", []]", "text", NULL},
	};
	int	     fd = connect_shared();
	json_t	    *j, *rows, *row, *want, *text;
	json_error_t err;
	size_t	     i;

	(void)state;
	ask_ok(fd, "{\"op\":\"exec\",\"sql\":\"CREATE TABLE pt(id INTEGER "
		   "PRIMARY KEY, v)\"}");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		j = askf(fd,
		    "{\"op\":\"exec\",\"sql\":\"INSERT INTO pt(id, v) "
		    "VALUES (?, ?)\",\"params\":[%zu,%s]}",
		    i + 1, cases[i].param);
		assert_ok(j);
		assert_int_equal(int_of(j, "changes"), 1);
		assert_int_equal(int_of(j, "last_insert_rowid"), i + 1);
		json_decref(j);
	}
	rows =
	    query_rows(fd, "SELECT id, typeof(v), v FROM pt ORDER BY id", &j);
	assert_int_equal(
	    json_array_size(rows), sizeof(cases) / sizeof(cases[0]));
	for (i = 0; i < json_array_size(rows); i++) {
		row = json_array_get(rows, i);
		assert_int_equal(
		    json_integer_value(json_array_get(row, 0)), i + 1);
		if (strcmp(json_string_value(json_array_get(row, 1)),
			cases[i].type) != 0)
			fail_msg("param %s bound as %s, not %s", cases[i].param,
			    json_string_value(json_array_get(row, 1)),
			    cases[i].type);
		if (cases[i].expect != NULL) {
			want =
			    json_loads(cases[i].expect, JSON_DECODE_ANY, &err);
			assert_non_null(want);
			if (!json_equal(want, json_array_get(row, 2)))
				fail_msg(
				    "param %s came back wrong", cases[i].param);
			json_decref(want);
			continue;
		}
		/* An object or array is stored as its JSON text. */
		assert_true(json_is_string(json_array_get(row, 2)));
		text = json_loads(
		    json_string_value(json_array_get(row, 2)), 0, &err);
		want = json_loads(cases[i].param, 0, &err);
		assert_non_null(text);
		assert_non_null(want);
		assert_true(json_equal(text, want));
		json_decref(text);
		json_decref(want);
	}
	json_decref(j);

	/* ?NNN: numbered positions, in any order, used twice. */
	ask_ok(fd, "{\"op\":\"exec\",\"sql\":\"INSERT INTO pt(id, v) VALUES "
		   "(?2, ?1)\",\"params\":[\"nnn\",100]}");
	rows = query_rows(fd, "SELECT v FROM pt WHERE id = 100", &j);
	assert_string_equal(
	    json_string_value(json_array_get(json_array_get(rows, 0), 0)),
	    "nnn");
	json_decref(j);
	j = ask(fd, "{\"op\":\"query\",\"sql\":\"SELECT ?1 || ?1, ?2\","
		    "\"params\":[\"ab\",7]}");
	assert_ok(j);
	row = json_array_get(json_object_get(j, "rows"), 0);
	assert_string_equal(json_string_value(json_array_get(row, 0)), "abab");
	assert_int_equal(json_integer_value(json_array_get(row, 1)), 7);
	json_decref(j);

	/* Named parameters with every prefix, from an object. */
	ask_ok(fd, "{\"op\":\"exec\",\"sql\":\"INSERT INTO pt(id, v) VALUES "
		   "(:id, :v)\",\"params\":{\"v\":\"colon\",\"id\":201}}");
	ask_ok(fd, "{\"op\":\"exec\",\"sql\":\"INSERT INTO pt(id, v) VALUES "
		   "(@id, @v)\",\"params\":{\"id\":202,\"v\":\"at\"}}");
	ask_ok(fd, "{\"op\":\"exec\",\"sql\":\"INSERT INTO pt(id, v) VALUES "
		   "($id, $v)\",\"params\":{\"id\":203,\"v\":\"dollar\"}}");
	j = ask(fd,
	    "{\"op\":\"query\",\"sql\":\"SELECT id, v FROM pt WHERE "
	    "id BETWEEN :lo AND :hi ORDER BY id\",\"params\":{\"lo\":201,"
	    "\"hi\":203}}");
	assert_ok(j);
	want = json_loads(
	    "[[201,\"colon\"],[202,\"at\"],[203,\"dollar\"]]", 0, &err);
	assert_non_null(want);
	assert_true(json_equal(want, json_object_get(j, "rows")));
	json_decref(want);
	json_decref(j);
	close(fd);
}

/* Parameters that do not match the statement are a bad_request. */
static void
test_exec_param_errors(void **state)
{
	static const char *bad[] = {
	    /* :v is left unbound. */
	    "\"sql\":\"INSERT INTO pe(id, v) VALUES (:id, :v)\","
	    "\"params\":{\"id\":1}",
	    /* Too few positional, and none at all. */
	    "\"sql\":\"INSERT INTO pe(id, v) VALUES (?, ?)\","
	    "\"params\":[2]",
	    "\"sql\":\"INSERT INTO pe(id, v) VALUES (?, ?)\"",
	    /* Too many positional. */
	    "\"sql\":\"INSERT INTO pe(id, v) VALUES (?, ?)\","
	    "\"params\":[3,1,2]",
	    "\"sql\":\"INSERT INTO pe(id, v) VALUES (4, 4)\","
	    "\"params\":[1]",
	    /* Positional parameters with an object. */
	    "\"sql\":\"INSERT INTO pe(id, v) VALUES (?, ?)\","
	    "\"params\":{\"1\":5,\"2\":5}",
	    /* An extra name the statement does not have. */
	    "\"sql\":\"INSERT INTO pe(id, v) VALUES (:id, :v)\","
	    "\"params\":{\"id\":6,\"v\":1,\"zz\":2}",
	    /* Named parameters with an array. */
	    "\"sql\":\"INSERT INTO pe(id, v) VALUES (:id, :v)\","
	    "\"params\":[7,\"arr\"]",
	};
	int	fd = connect_shared();
	json_t *j;
	size_t	i;

	(void)state;
	ask_ok(fd, "{\"op\":\"exec\",\"sql\":\"CREATE TABLE pe(id INTEGER "
		   "PRIMARY KEY, v)\"}");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		j = askf(fd, "{\"op\":\"exec\",%s}", bad[i]);
		if (!json_is_false(json_object_get(j, "ok"))) {
			json_decref(j);
			close(fd);
			fail_msg("exec {%s} was accepted", bad[i]);
		}
		assert_error(j, "bad_request");
		json_decref(j);
		/* The same through query. */
		j = askf(fd, "{\"op\":\"query\",%s}", bad[i]);
		assert_error(j, "bad_request");
		json_decref(j);
	}
	/* Nothing of the refused statements was written. */
	assert_int_equal(query_int(fd, "SELECT count(*) FROM pe"), 0);
	close(fd);
}

/* What exec answers in each durability, and its errors. */
static void
test_exec_results(void **state)
{
	int	   fd = connect_shared();
	json_int_t s1, s2, s3;
	long long  errors0, errors1;
	json_t	  *j;

	(void)state;
	/* No UNIQUE here: see test_constraint_tables. */
	ask_ok(fd, "{\"op\":\"exec\",\"sql\":\"CREATE TABLE er(id INTEGER "
		   "PRIMARY KEY, u TEXT NOT NULL)\"}");
	j = ask(fd, "{\"op\":\"exec\",\"sql\":\"INSERT INTO er(u) VALUES "
		    "('a')\"}");
	assert_ok(j);
	assert_int_equal(int_of(j, "changes"), 1);
	assert_int_equal(int_of(j, "last_insert_rowid"), 1);
	s1 = int_of(j, "seq");
	assert_true(s1 > 0);
	json_decref(j);
	j = ask(fd, "{\"op\":\"exec\",\"sql\":\"INSERT INTO er(id, u) VALUES "
		    "(57, 'b')\",\"durability\":\"commit\",\"id\":\"x\"}");
	assert_ok(j);
	assert_string_equal(json_string_value(json_object_get(j, "id")), "x");
	assert_int_equal(int_of(j, "changes"), 1);
	assert_int_equal(int_of(j, "last_insert_rowid"), 57);
	s2 = int_of(j, "seq");
	assert_true(s2 > s1);
	json_decref(j);
	j = ask(fd, "{\"op\":\"exec\",\"sql\":\"UPDATE er SET u = u || 'x'\"}");
	assert_ok(j);
	assert_int_equal(int_of(j, "changes"), 2);
	json_decref(j);
	j = ask(fd, "{\"op\":\"exec\",\"sql\":\"DELETE FROM er WHERE id = 999"
		    "\"}");
	assert_ok(j);
	assert_int_equal(int_of(j, "changes"), 0);
	json_decref(j);

	/* journal and async: only the sequence number. */
	j = ask(fd, "{\"op\":\"exec\",\"sql\":\"INSERT INTO er(u) VALUES "
		    "('j')\",\"durability\":\"journal\"}");
	assert_ok(j);
	s3 = int_of(j, "seq");
	assert_true(s3 > s2);
	assert_null(json_object_get(j, "changes"));
	assert_null(json_object_get(j, "last_insert_rowid"));
	json_decref(j);
	j = ask(fd, "{\"op\":\"exec\",\"sql\":\"INSERT INTO er(u) VALUES "
		    "('as')\",\"durability\":\"async\"}");
	assert_ok(j);
	assert_true(int_of(j, "seq") > s3);
	assert_null(json_object_get(j, "changes"));
	assert_null(json_object_get(j, "last_insert_rowid"));
	json_decref(j);
	sync_on(fd);
	assert_int_equal(query_int(fd, "SELECT count(*) FROM er WHERE u IN "
				       "('j', 'as')"),
	    2);

	/* commit: SQLite's error in the answer. */
	j = ask(fd, "{\"op\":\"exec\",\"sql\":\"INSERT INTO er(id, u) VALUES "
		    "(57, 'dup')\"}");
	assert_error(j, "sql_error");
	assert_non_null(strstr(error_message(j), "UNIQUE constraint failed"));
	json_decref(j);
	j = ask(fd, "{\"op\":\"exec\",\"sql\":\"INSERT INTO no_such_table "
		    "VALUES (1)\"}");
	assert_error(j, "sql_error");
	assert_non_null(strstr(error_message(j), "no such table"));
	json_decref(j);
	j = ask(fd, "{\"op\":\"exec\",\"sql\":\"INSERT INTO er(id) VALUES "
		    "(58)\"}");
	assert_error(j, "sql_error");
	assert_non_null(strstr(error_message(j), "NOT NULL constraint failed"));
	json_decref(j);
	j = ask(fd, "{\"op\":\"exec\",\"sql\":\"INSRT INTO er VALUES (1)\"}");
	assert_error(j, "sql_error");
	assert_non_null(strstr(error_message(j), "syntax error"));
	json_decref(j);

	/* journal: acknowledged, then counted as an apply error. */
	j = stats_of(shared.sock);
	errors0 = stat_int(j, "write_queue", "apply_errors");
	json_decref(j);
	j = ask(fd, "{\"op\":\"exec\",\"sql\":\"INSERT INTO er(id, u) VALUES "
		    "(57, 'dup2')\",\"durability\":\"journal\"}");
	assert_ok(j);
	assert_true(int_of(j, "seq") > 0);
	json_decref(j);
	sync_on(fd);
	j = stats_of(shared.sock);
	errors1 = stat_int(j, "write_queue", "apply_errors");
	json_decref(j);
	assert_true(errors1 >= errors0 + 1);
	assert_int_equal(query_int(fd, "SELECT count(*) FROM er WHERE u LIKE "
				       "'dup%'"),
	    0);
	close(fd);
}

/*
 * Tables with constraints that SQLite backs with an automatic index
 * (UNIQUE, a PRIMARY KEY that is not INTEGER, WITHOUT ROWID): the
 * authorizer sees an index named sqlite_autoindex_* being created, which
 * is the application's own schema, not SQLite's or stashd's.
 */
static void
test_constraint_tables(void **state)
{
	static const char *creates[] = {
	    "CREATE TABLE ct1(a INTEGER PRIMARY KEY, u TEXT UNIQUE)",
	    "CREATE TABLE ct2(name TEXT PRIMARY KEY, v)",
	    "CREATE TABLE ct3(a, b, UNIQUE (a, b))",
	    "CREATE TABLE ct4(k TEXT PRIMARY KEY, v) WITHOUT ROWID",
	    "CREATE UNIQUE INDEX ct1_u2 ON ct1(u, a)",
	};
	int	fd = connect_shared(), ok;
	char	why[512];
	json_t *j;
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(creates) / sizeof(creates[0]); i++) {
		j = askf(fd, "{\"op\":\"exec\",\"sql\":\"%s\"}", creates[i]);
		ok = json_is_true(json_object_get(j, "ok"));
		if (!ok)
			snprintf(why, sizeof(why), "%s", error_message(j));
		json_decref(j);
		if (!ok) {
			close(fd);
			fail_msg("%s refused: %s", creates[i], why);
		}
	}
	ask_ok(fd, "{\"op\":\"exec\",\"sql\":\"INSERT INTO ct2 VALUES "
		   "('a', 1)\"}");
	j = ask(fd, "{\"op\":\"exec\",\"sql\":\"INSERT INTO ct2 VALUES "
		    "('a', 2)\"}");
	assert_error(j, "sql_error");
	assert_non_null(strstr(error_message(j), "UNIQUE constraint failed"));
	json_decref(j);
	assert_int_equal(
	    query_int(fd, "SELECT v FROM ct2 WHERE name = 'a'"), 1);
	close(fd);
}

/* A tx applies all of its statements or none. */
static void
test_tx(void **state)
{
	static const char *malformed[] = {
	    "[]",
	    "[1]",
	    "[\"INSERT INTO tx1 VALUES (90, 'x')\"]",
	    "[{\"params\":[1]}]",
	    "[{\"sql\":\"\"}]",
	    "[{\"sql\":5}]",
	    "[{\"sql\":\"INSERT INTO tx1 VALUES (91, 'x')\",\"extra\":1}]",
	    "[{\"sql\":\"INSERT INTO tx1 VALUES (92, ?)\",\"params\":3}]",
	    "{\"sql\":\"INSERT INTO tx1 VALUES (93, 'x')\"}",
	    "\"INSERT INTO tx1 VALUES (94, 'x')\"",
	};
	int	fd = connect_shared();
	json_t *j, *res;
	size_t	i;

	(void)state;
	j = ask(fd,
	    "{\"op\":\"exec\",\"tx\":["
	    "{\"sql\":\"CREATE TABLE tx1(a INTEGER PRIMARY KEY, b)\"},"
	    "{\"sql\":\"INSERT INTO tx1 VALUES (?, ?)\",\"params\":[1,\"a\"]},"
	    "{\"sql\":\"INSERT INTO tx1(b) VALUES (:b)\",\"params\":{\"b\":"
	    "\"x\"}},"
	    "{\"sql\":\"UPDATE tx1 SET b = b || '!'\"}]}");
	assert_ok(j);
	assert_true(int_of(j, "seq") > 0);
	res = json_object_get(j, "results");
	assert_true(json_is_array(res));
	assert_int_equal(json_array_size(res), 4);
	assert_int_equal(int_of(json_array_get(res, 1), "changes"), 1);
	assert_int_equal(
	    int_of(json_array_get(res, 1), "last_insert_rowid"), 1);
	assert_int_equal(int_of(json_array_get(res, 2), "changes"), 1);
	assert_int_equal(
	    int_of(json_array_get(res, 2), "last_insert_rowid"), 2);
	assert_int_equal(int_of(json_array_get(res, 3), "changes"), 2);
	json_decref(j);
	assert_int_equal(query_int(fd, "SELECT count(*) FROM tx1 WHERE b IN "
				       "('a!', 'x!')"),
	    2);

	/* The third statement fails: the first two are rolled back. */
	j = ask(fd, "{\"op\":\"exec\",\"tx\":["
		    "{\"sql\":\"INSERT INTO tx1 VALUES (10, 'p')\"},"
		    "{\"sql\":\"INSERT INTO tx1 VALUES (11, 'q')\"},"
		    "{\"sql\":\"INSERT INTO tx1 VALUES (10, 'dup')\"},"
		    "{\"sql\":\"INSERT INTO tx1 VALUES (12, 'r')\"}]}");
	assert_error(j, "sql_error");
	assert_non_null(strstr(error_message(j), "statement 2"));
	json_decref(j);
	assert_int_equal(query_int(fd, "SELECT count(*) FROM tx1 WHERE a >= "
				       "10"),
	    0);

	/* Also when the failure is a parameter or the authorizer. */
	j = ask(fd, "{\"op\":\"exec\",\"tx\":["
		    "{\"sql\":\"INSERT INTO tx1 VALUES (20, 'p')\"},"
		    "{\"sql\":\"INSERT INTO tx1 VALUES (:a, :b)\",\"params\":"
		    "{\"a\":21}}]}");
	assert_error(j, "bad_request");
	assert_non_null(strstr(error_message(j), "statement 1"));
	json_decref(j);
	j = ask(fd, "{\"op\":\"exec\",\"tx\":["
		    "{\"sql\":\"INSERT INTO tx1 VALUES (30, 'p')\"},"
		    "{\"sql\":\"DELETE FROM stash_kv\"}]}");
	assert_error(j, "forbidden");
	json_decref(j);
	assert_int_equal(query_int(fd, "SELECT count(*) FROM tx1 WHERE a >= "
				       "10"),
	    0);

	/* journal durability: only the sequence number. */
	j = ask(fd, "{\"op\":\"exec\",\"durability\":\"journal\",\"tx\":["
		    "{\"sql\":\"INSERT INTO tx1 VALUES (40, 'j')\"},"
		    "{\"sql\":\"INSERT INTO tx1 VALUES (41, 'j')\"}]}");
	assert_ok(j);
	assert_true(int_of(j, "seq") > 0);
	assert_null(json_object_get(j, "results"));
	json_decref(j);
	sync_on(fd);
	assert_int_equal(query_int(fd, "SELECT count(*) FROM tx1 WHERE b = "
				       "'j'"),
	    2);

	for (i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
		j = askf(fd, "{\"op\":\"exec\",\"tx\":%s}", malformed[i]);
		if (!json_is_false(json_object_get(j, "ok")))
			fail_msg("tx %s was accepted", malformed[i]);
		assert_error(j, "bad_request");
		json_decref(j);
	}
	/* sql and tx together, or params beside tx. */
	ask_error(fd,
	    "{\"op\":\"exec\",\"sql\":\"SELECT 1\",\"tx\":[{\"sql\":"
	    "\"SELECT 1\"}]}",
	    "bad_request");
	ask_error(fd,
	    "{\"op\":\"exec\",\"params\":[1],\"tx\":[{\"sql\":"
	    "\"SELECT ?\"}]}",
	    "bad_request");
	assert_int_equal(query_int(fd, "SELECT count(*) FROM tx1 WHERE a >= "
				       "90"),
	    0);
	close(fd);
}

/*
 * Guarantee 5: 200 pipelined commit inserts with one bad one in the
 * middle; only that one fails.
 */
static void
test_bad_statement_alone(void **state)
{
	struct sbuf b = {NULL, 0, 0};
	long long   groups0, groups1;
	json_t	  **ans, *j, *rows;
	int	    fd = connect_shared(), i;

	(void)state;
	ask_ok(fd, "{\"op\":\"exec\",\"sql\":\"CREATE TABLE b5(id INTEGER "
		   "PRIMARY KEY, v TEXT)\"}");
	j = stats_of(shared.sock);
	groups0 = stat_int(j, "groups", "count");
	json_decref(j);
	for (i = 0; i < 200; i++)
		sb_printf(&b,
		    "{\"op\":\"exec\",\"id\":%d,\"durability\":"
		    "\"commit\",\"sql\":\"INSERT INTO b5(id, v) VALUES "
		    "(?, ?)\",\"params\":[%d,\"%s\"]}\n",
		    i, i == 100 ? 50 : i, i == 100 ? "dup" : "v");
	ans = pipeline(fd, b.p, b.len, 200, NULL, NULL);
	for (i = 0; i < 200; i++) {
		assert_int_equal(int_of(ans[i], "id"), i);
		if (i == 100) {
			assert_error(ans[i], "sql_error");
			assert_non_null(
			    strstr(error_message(ans[i]), "UNIQUE"));
			continue;
		}
		assert_ok(ans[i]);
		assert_int_equal(int_of(ans[i], "changes"), 1);
		assert_int_equal(int_of(ans[i], "last_insert_rowid"), i);
	}
	answers_free(ans, 200);
	sb_free(&b);
	assert_int_equal(query_int(fd, "SELECT count(*) FROM b5"), 199);
	rows = query_rows(fd,
	    "SELECT v FROM b5 WHERE id IN (50, 99, 101) "
	    "ORDER BY id",
	    &j);
	assert_int_equal(json_array_size(rows), 3);
	assert_string_equal(
	    json_string_value(json_array_get(json_array_get(rows, 0), 0)), "v");
	json_decref(j);
	/* They were batched: fewer groups than writes. */
	j = stats_of(shared.sock);
	groups1 = stat_int(j, "groups", "count");
	json_decref(j);
	assert_true(groups1 - groups0 < 200);
	close(fd);
}

/* query: columns, the mapping of SQLite types, params, refusals. */
static void
test_query(void **state)
{
	int	     fd = connect_shared();
	json_t	    *j, *want;
	json_error_t err;

	(void)state;
	ask_ok(fd, "{\"op\":\"exec\",\"sql\":\"CREATE TABLE q5(i INTEGER, "
		   "r REAL, t TEXT, n, b BLOB)\"}");
	ask_ok(fd, "{\"op\":\"exec\",\"sql\":\"INSERT INTO q5 VALUES (1, 2.5, "
		   "'h\\u00e9', NULL, x'0102')\"}");
	ask_ok(fd, "{\"op\":\"exec\",\"sql\":\"INSERT INTO q5 VALUES (-3, "
		   "-0.25, '', NULL, x'')\"}");

	j = ask(fd, "{\"op\":\"query\",\"sql\":\"SELECT i, r, t, n, b FROM q5 "
		    "ORDER BY i DESC\"}");
	assert_ok(j);
	want = json_loads("[\"i\",\"r\",\"t\",\"n\",\"b\"]", 0, &err);
	assert_true(json_equal(want, json_object_get(j, "columns")));
	json_decref(want);
	want = json_loads("[[1,2.5,\"h\\u00e9\",null,{\"base64\":\"AQI=\"}],"
			  "[-3,-0.25,\"\",null,{\"base64\":\"\"}]]",
	    0, &err);
	assert_non_null(want);
	if (!json_equal(want, json_object_get(j, "rows"))) {
		char *s = json_dumps(j, 0);

		fail_msg("query answer %s", s);
	}
	json_decref(want);
	json_decref(j);

	/* base64 padding of each length; aliases name the columns. */
	j = ask(fd, "{\"op\":\"query\",\"sql\":\"SELECT x'01' AS one, "
		    "x'010203' AS three, x'01020304' AS four\"}");
	assert_ok(j);
	want = json_loads(
	    "{\"columns\":[\"one\",\"three\",\"four\"],\"rows\":"
	    "[[{\"base64\":\"AQ==\"},{\"base64\":\"AQID\"},{\"base64\":"
	    "\"AQIDBA==\"}]]}",
	    0, &err);
	assert_true(json_equal(
	    json_object_get(want, "columns"), json_object_get(j, "columns")));
	assert_true(json_equal(
	    json_object_get(want, "rows"), json_object_get(j, "rows")));
	json_decref(want);
	json_decref(j);

	/* Params, and an empty answer. */
	j = ask(fd, "{\"op\":\"query\",\"sql\":\"SELECT t FROM q5 WHERE i = "
		    "?\",\"params\":[1]}");
	assert_ok(j);
	assert_string_equal(
	    json_string_value(json_array_get(
		json_array_get(json_object_get(j, "rows"), 0), 0)),
	    "h\xc3\xa9");
	json_decref(j);
	j = ask(fd, "{\"op\":\"query\",\"sql\":\"SELECT t FROM q5 WHERE i = "
		    ":i\",\"params\":{\"i\":12345}}");
	assert_ok(j);
	assert_int_equal(json_array_size(json_object_get(j, "rows")), 0);
	assert_int_equal(json_array_size(json_object_get(j, "columns")), 1);
	json_decref(j);

	/* Writes go through exec. */
	ask_error(fd,
	    "{\"op\":\"query\",\"sql\":\"INSERT INTO q5(i) VALUES "
	    "(5)\"}",
	    "bad_request");
	ask_error(
	    fd, "{\"op\":\"query\",\"sql\":\"DELETE FROM q5\"}", "bad_request");
	ask_error(fd, "{\"op\":\"query\",\"sql\":\"CREATE TABLE q5b(a)\"}",
	    "bad_request");
	ask_error(fd,
	    "{\"op\":\"query\",\"sql\":\"UPDATE q5 SET i = 0 "
	    "RETURNING i\"}",
	    "bad_request");
	/* One statement per sql. */
	ask_error(fd, "{\"op\":\"query\",\"sql\":\"SELECT 1; SELECT 2\"}",
	    "bad_request");
	ask_error(fd,
	    "{\"op\":\"exec\",\"sql\":\"INSERT INTO q5(i) VALUES "
	    "(6); DELETE FROM q5\"}",
	    "bad_request");
	/* A trailing semicolon or comment is fine. */
	assert_int_equal(query_int(fd, "SELECT 1; -- done"), 1);
	/* SQLite's errors. */
	ask_error(fd, "{\"op\":\"query\",\"sql\":\"SELECT * FROM q5_nope\"}",
	    "sql_error");
	ask_error(fd, "{\"op\":\"query\",\"sql\":\"\"}", "bad_request");
	/* Nothing was written. */
	assert_int_equal(query_int(fd, "SELECT count(*) FROM q5"), 2);
	close(fd);
}

/*
 * --query-timeout: a query that would run for ever is stopped and
 * answered too_large; the reader thread serves the next query.
 */
static void
test_query_timeout(void **state)
{
	static const char *args[] = {
	    "--query-timeout", "300ms", "--readers", "1", NULL};
	struct daemon_proc d;
	long long	   t0;
	json_t		  *j;
	int		   fd;

	(void)state;
	assert_int_equal(daemon_start(&d, args), 0);
	fd = connect_to(&d);
	t0 = harness_now_ms();
	j = ask(fd, "{\"op\":\"query\",\"sql\":\"WITH RECURSIVE c(x) AS "
		    "(SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) "
		    "FROM c\"}");
	assert_error(j, "too_large");
	assert_non_null(strstr(json_string_value(json_object_get(
				   json_object_get(j, "error"), "message")),
	    "longer than 300 ms"));
	json_decref(j);
	assert_true(harness_now_ms() - t0 < 5000);
	/* The one reader is free again. */
	assert_int_equal(query_int(fd, "SELECT 41 + 1"), 42);
	close(fd);
	assert_int_equal(daemon_stop(&d), 0);
	daemon_cleanup(&d);
}

/* --query-rows-max and --query-bytes-max: too_large, and the line lives. */
static void
test_query_limits(void **state)
{
	static const char *args[] = {
	    "--query-rows-max", "10", "--query-bytes-max", "1KB", NULL};
	struct daemon_proc d;
	json_t		  *j;
	int		   fd;

	(void)state;
	assert_int_equal(daemon_start(&d, args), 0);
	fd = connect_to(&d);
	j = ask(fd,
	    "{\"op\":\"query\",\"sql\":\"WITH RECURSIVE c(x) AS "
	    "(SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10) SELECT x "
	    "FROM c\"}");
	assert_ok(j);
	assert_int_equal(json_array_size(json_object_get(j, "rows")), 10);
	json_decref(j);
	ask_error(fd,
	    "{\"op\":\"query\",\"sql\":\"WITH RECURSIVE c(x) AS "
	    "(SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 11) SELECT x "
	    "FROM c\"}",
	    "too_large");
	ask_ok(fd, "{\"op\":\"ping\"}");
	/* Bytes: one big row, and a few medium ones. */
	ask_error(fd,
	    "{\"op\":\"query\",\"sql\":\"SELECT hex(zeroblob(1000))"
	    "\"}",
	    "too_large");
	ask_error(fd,
	    "{\"op\":\"query\",\"sql\":\"WITH RECURSIVE c(x) AS "
	    "(SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 8) SELECT x, "
	    "hex(zeroblob(200)) FROM c\"}",
	    "too_large");
	j = ask(fd, "{\"op\":\"query\",\"sql\":\"SELECT hex(zeroblob(100))\"}");
	assert_ok(j);
	assert_int_equal(
	    strlen(json_string_value(json_array_get(
		json_array_get(json_object_get(j, "rows"), 0), 0))),
	    200);
	json_decref(j);
	close(fd);
	assert_int_equal(daemon_stop(&d), 0);
	daemon_cleanup(&d);
}

/* The authorizer: what client SQL may not do. */
static void
test_authorizer(void **state)
{
	static const char *refused[] = {
	    "ATTACH DATABASE ':memory:' AS other",
	    "DETACH DATABASE other",
	    "SELECT load_extension('x')",
	    "INSERT INTO stash_kv(key, value, version) VALUES ('auth:x', "
	    "'1', 1)",
	    "INSERT INTO main.stash_kv(key, value, version) VALUES "
	    "('auth:x', '1', 1)",
	    "REPLACE INTO STASH_KV(key, value, version) VALUES ('auth:x', "
	    "'1', 1)",
	    "UPDATE stash_kv SET value = '0'",
	    "DELETE FROM stash_kv",
	    "INSERT INTO stash_meta VALUES ('x', 1)",
	    "UPDATE stash_meta SET value = 0",
	    "DELETE FROM stash_meta",
	    "DROP TABLE stash_kv",
	    "DROP TABLE stash_meta",
	    "ALTER TABLE stash_kv ADD COLUMN z",
	    "ALTER TABLE stash_kv RENAME TO hacked",
	    "CREATE INDEX auth_i ON stash_kv(value)",
	    "CREATE TRIGGER auth_t AFTER INSERT ON stash_kv BEGIN "
	    "SELECT 1; END",
	    "PRAGMA journal_mode=DELETE",
	    "PRAGMA user_version=5",
	    "PRAGMA main.user_version=5",
	    "PRAGMA synchronous=OFF",
	    "PRAGMA writable_schema=ON",
	    "PRAGMA foreign_keys=OFF",
	    "BEGIN",
	    "BEGIN IMMEDIATE",
	    "COMMIT",
	    "ROLLBACK",
	    "SAVEPOINT x",
	    "RELEASE x",
	};
	static const char *refused_query[] = {
	    "ATTACH DATABASE ':memory:' AS other",
	    "SELECT load_extension('x')",
	    "PRAGMA journal_mode",
	    "PRAGMA user_version=5",
	};
	int	      fd = connect_shared();
	json_t	     *j, *rows, *want;
	json_error_t  err;
	long long     kv_rows, kv_sum;
	sqlite3	     *db;
	sqlite3_stmt *st;
	size_t	      i;

	(void)state;
	ask_ok(fd, "{\"op\":\"set\",\"key\":\"auth:victim\",\"value\":"
		   "\"safe\",\"durability\":\"commit\"}");
	sync_on(fd);
	kv_rows = query_int(fd, "SELECT count(*) FROM stash_kv");
	kv_sum = query_int(fd, "SELECT sum(version) FROM stash_kv");

	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		j = askf(fd, "{\"op\":\"exec\",\"sql\":\"%s\"}", refused[i]);
		if (!json_is_false(json_object_get(j, "ok")))
			fail_msg("exec %s was accepted", refused[i]);
		assert_error(j, "forbidden");
		json_decref(j);
	}
	for (i = 0; i < sizeof(refused_query) / sizeof(refused_query[0]); i++) {
		j = askf(
		    fd, "{\"op\":\"query\",\"sql\":\"%s\"}", refused_query[i]);
		if (!json_is_false(json_object_get(j, "ok")))
			fail_msg("query %s was accepted", refused_query[i]);
		assert_error(j, "forbidden");
		json_decref(j);
	}

	/*
	 * A trigger on a user table whose body writes stash_ tables: it may
	 * be created, but firing it is refused.
	 */
	ask_ok(fd, "{\"op\":\"exec\",\"sql\":\"CREATE TABLE auth_src(a)\"}");
	j = ask(fd,
	    "{\"op\":\"exec\",\"sql\":\"CREATE TRIGGER auth_evil AFTER "
	    "INSERT ON auth_src BEGIN UPDATE stash_kv SET value = '1' WHERE "
	    "key = 'auth:victim'; INSERT INTO stash_kv(key, value, version) "
	    "VALUES ('auth:planted', '1', 1); END\"}");
	if (json_is_true(json_object_get(j, "ok")))
		ask_error(fd,
		    "{\"op\":\"exec\",\"sql\":\"INSERT INTO auth_src "
		    "VALUES (1)\"}",
		    "forbidden");
	else
		assert_error(j, "forbidden");
	json_decref(j);
	j = ask(fd,
	    "{\"op\":\"exec\",\"sql\":\"CREATE TRIGGER auth_evil2 "
	    "AFTER DELETE ON auth_src BEGIN DELETE FROM stash_meta; END\"}");
	if (json_is_true(json_object_get(j, "ok")))
		ask_error(fd,
		    "{\"op\":\"exec\",\"sql\":\"DELETE FROM auth_src"
		    "\"}",
		    "forbidden");
	else
		assert_error(j, "forbidden");
	json_decref(j);
	/* The same through a tx. */
	ask_error(fd,
	    "{\"op\":\"exec\",\"tx\":[{\"sql\":\"INSERT INTO "
	    "auth_src VALUES (2)\"}]}",
	    "forbidden");
	assert_int_equal(query_int(fd, "SELECT count(*) FROM auth_src"), 0);
	sync_on(fd);
	assert_int_equal(
	    query_int(fd, "SELECT count(*) FROM stash_kv"), kv_rows);
	assert_int_equal(
	    query_int(fd, "SELECT sum(version) FROM stash_kv"), kv_sum);
	assert_int_equal(query_int(fd, "SELECT count(*) FROM stash_kv WHERE "
				       "key = 'auth:planted'"),
	    0);
	assert_int_equal(query_int(fd, "SELECT count(*) FROM stash_meta WHERE "
				       "name = 'applied_seq'"),
	    1);
	rows = query_rows(fd,
	    "SELECT value FROM stash_kv WHERE key = "
	    "'auth:victim'",
	    &j);
	assert_string_equal(
	    json_string_value(json_array_get(json_array_get(rows, 0), 0)),
	    "\"safe\"");
	json_decref(j);
	j = ask(fd, "{\"op\":\"get\",\"key\":\"auth:victim\"}");
	assert_ok(j);
	assert_string_equal(
	    json_string_value(json_object_get(j, "value")), "safe");
	json_decref(j);

	/* Read-only PRAGMAs and reading stash_kv are fine. */
	rows = query_rows(fd, "PRAGMA table_info(auth_src)", &j);
	assert_int_equal(json_array_size(rows), 1);
	assert_string_equal(
	    json_string_value(json_array_get(json_array_get(rows, 0), 1)), "a");
	json_decref(j);
	rows = query_rows(fd, "PRAGMA integrity_check", &j);
	assert_string_equal(
	    json_string_value(json_array_get(json_array_get(rows, 0), 0)),
	    "ok");
	json_decref(j);
	rows = query_rows(fd, "SELECT * FROM stash_kv", &j);
	want = json_loads(
	    "[\"key\",\"value\",\"version\",\"expires_at\"]", 0, &err);
	assert_true(json_equal(want, json_object_get(j, "columns")));
	assert_true(json_array_size(rows) >= 1);
	json_decref(want);
	json_decref(j);

	/* The database itself: still WAL, still schema version 1. */
	assert_int_equal(
	    sqlite3_open_v2(shared.db, &db, SQLITE_OPEN_READONLY, NULL),
	    SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	assert_int_equal(
	    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	assert_int_equal(
	    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 2);
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	close(fd);
}

/* --sql off: only key-value operations. */
static void
test_sql_off(void **state)
{
	static const char *args[] = {"--sql", "off", NULL};
	struct daemon_proc d;
	json_t		  *j;
	int		   fd;

	(void)state;
	assert_int_equal(daemon_start(&d, args), 0);
	fd = connect_to(&d);
	ask_error(
	    fd, "{\"op\":\"exec\",\"sql\":\"CREATE TABLE t(a)\"}", "forbidden");
	ask_error(fd,
	    "{\"op\":\"exec\",\"sql\":\"CREATE TABLE t(a)\","
	    "\"durability\":\"async\"}",
	    "forbidden");
	ask_error(fd,
	    "{\"op\":\"exec\",\"tx\":[{\"sql\":\"CREATE TABLE t(a)"
	    "\"}]}",
	    "forbidden");
	ask_error(fd, "{\"op\":\"query\",\"sql\":\"SELECT 1\"}", "forbidden");
	ask_error(fd, "{\"op\":\"query\",\"sql\":\"SELECT * FROM stash_kv\"}",
	    "forbidden");
	ask_ok(fd, "{\"op\":\"set\",\"key\":\"k\",\"value\":[1]}");
	j = ask(fd, "{\"op\":\"get\",\"key\":\"k\"}");
	assert_ok(j);
	assert_int_equal(
	    json_integer_value(json_array_get(json_object_get(j, "value"), 0)),
	    1);
	json_decref(j);
	ask_ok(fd, "{\"op\":\"del\",\"key\":\"k\"}");
	ask_error(fd, "{\"op\":\"get\",\"key\":\"k\"}", "not_found");
	ask_ok(fd, "{\"op\":\"sync\"}");
	ask_ok(fd, "{\"op\":\"stats\"}");
	close(fd);
	assert_int_equal(daemon_stop(&d), 0);
	daemon_cleanup(&d);
}

/* get key: assert its value (JSON text) and version. */
static void
assert_get(int fd, const char *key, const char *value, json_int_t version)
{
	json_error_t err;
	json_t	    *j, *want;

	j = askf(fd, "{\"op\":\"get\",\"key\":\"%s\"}", key);
	if (!json_is_true(json_object_get(j, "ok")))
		fail_msg("get %s failed", key);
	want = json_loads(value, JSON_DECODE_ANY, &err);
	assert_non_null(want);
	if (!json_equal(want, json_object_get(j, "value")))
		fail_msg("get %s: wrong value", key);
	if (version > 0 && int_of(j, "version") != version)
		fail_msg("get %s: version %lld, not %lld", key,
		    (long long)int_of(j, "version"), (long long)version);
	json_decref(want);
	json_decref(j);
}

/* A set; its version. */
static json_int_t
set_dur(int fd, const char *key, const char *value, const char *dur)
{
	json_t	  *j = askf(fd,
	       "{\"op\":\"set\",\"key\":\"%s\",\"value\":%s,"
		  "\"durability\":\"%s\"}",
	       key, value, dur);
	json_int_t v;

	assert_ok(j);
	v = int_of(j, "version");
	json_decref(j);
	return v;
}

static json_int_t
max_ver(json_int_t a, json_int_t b)
{
	return a > b ? a : b;
}

static long long
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Does get key answer not_found within ms? */
static int
gone_within(int fd, const char *key, long long ms)
{
	long long deadline = harness_now_ms() + ms;
	json_t	 *g;
	int	  gone = 0;

	for (;;) {
		g = askf(fd, "{\"op\":\"get\",\"key\":\"%s\"}", key);
		gone = json_is_false(json_object_get(g, "ok"));
		if (gone)
			assert_error(g, "not_found");
		json_decref(g);
		if (gone || harness_now_ms() >= deadline)
			return gone;
		usleep(50 * 1000);
	}
}

/* Everything survives a SIGTERM restart. */
static void
test_persist_sigterm(void **state)
{
	struct daemon_proc d1, d2;
	json_int_t	   vj, vc, va, vt, vt2, vmax = 0, v;
	time_t		   t0, tset;
	json_t		  *j;
	int		   fd;

	(void)state;
	assert_int_equal(daemon_start(&d1, NULL), 0);
	fd = connect_to(&d1);
	vj = set_dur(fd, "p:j", "{\"a\":1}", "journal");
	vc = set_dur(fd, "p:c", "[\"c\"]", "commit");
	va = set_dur(fd, "p:a", "\"async\"", "async");
	vmax = max_ver(vmax, max_ver(vj, max_ver(vc, va)));
	vmax = max_ver(vmax, set_dur(fd, "p:dj", "1", "journal"));
	vmax = max_ver(vmax, set_dur(fd, "p:dc", "1", "journal"));
	ask_ok(fd, "{\"op\":\"del\",\"key\":\"p:dj\",\"durability\":"
		   "\"journal\"}");
	ask_ok(fd, "{\"op\":\"del\",\"key\":\"p:dc\",\"durability\":"
		   "\"commit\"}");
	ask_ok(fd, "{\"op\":\"exec\",\"sql\":\"CREATE TABLE pers(a)\"}");
	ask_ok(fd, "{\"op\":\"exec\",\"sql\":\"INSERT INTO pers VALUES (1)\"}");
	ask_ok(fd, "{\"op\":\"exec\",\"sql\":\"INSERT INTO pers VALUES (2)\","
		   "\"durability\":\"journal\"}");
	j = ask(fd, "{\"op\":\"exec\",\"sql\":\"INSERT INTO pers VALUES (3)\","
		    "\"durability\":\"async\"}");
	assert_ok(j);
	vmax = max_ver(vmax, int_of(j, "seq"));
	json_decref(j);
	/* TTL keys last: set at the start of a second, they live 2 s. */
	t0 = time(NULL);
	while ((tset = time(NULL)) == t0)
		usleep(5000);
	j = ask(fd, "{\"op\":\"set\",\"key\":\"p:ttl\",\"value\":1,\"ttl\":2}");
	assert_ok(j);
	vt = int_of(j, "version");
	json_decref(j);
	j = ask(fd, "{\"op\":\"set\",\"key\":\"p:ttl2\",\"value\":1,\"ttl\":2,"
		    "\"durability\":\"async\"}");
	assert_ok(j);
	vt2 = int_of(j, "version");
	json_decref(j);
	vmax = max_ver(vmax, max_ver(vt, vt2));
	close(fd);
	assert_int_equal(daemon_stop(&d1), 0);

	restart_on(&d2, &d1);
	fd = connect_to(&d2);
	/* Unless the restart was slow, p:ttl is still there. */
	if (wall_ms() < (long long)(tset + 2) * 1000 - 300)
		assert_get(fd, "p:ttl", "1", vt);
	else
		print_message("restart too slow to see p:ttl alive\n");
	assert_get(fd, "p:j", "{\"a\":1}", vj);
	assert_get(fd, "p:c", "[\"c\"]", vc);
	assert_get(fd, "p:a", "\"async\"", va);
	ask_error(fd, "{\"op\":\"get\",\"key\":\"p:dj\"}", "not_found");
	ask_error(fd, "{\"op\":\"get\",\"key\":\"p:dc\"}", "not_found");
	assert_int_equal(query_int(fd, "SELECT count(*) FROM pers"), 3);
	assert_int_equal(
	    query_int(fd, "SELECT count(*) FROM stash_kv WHERE "
			  "key = 'p:ttl' AND expires_at IS NOT NULL"),
	    1);
	/* Versions only grow, across the restart too. */
	v = set_dur(fd, "p:new", "1", "journal");
	assert_true(v > vmax);
	j = ask(fd, "{\"op\":\"exec\",\"sql\":\"INSERT INTO pers VALUES "
		    "(4)\"}");
	assert_ok(j);
	assert_true(int_of(j, "seq") > v);
	json_decref(j);
	/* The TTLs run out: p:ttl2 straight from SQLite, p:ttl cached. */
	while (time(NULL) < tset + 2)
		usleep(20000);
	assert_true(gone_within(fd, "p:ttl2", 3000));
	assert_true(gone_within(fd, "p:ttl", 3000));
	close(fd);
	assert_int_equal(daemon_stop(&d2), 0);
	daemon_cleanup(&d2);
	daemon_cleanup(&d1);
}

/*
 * Async writes alone, on a daemon with nothing else to do: the journal
 * thread lets them gather (writer.c) but takes them on its own within
 * moments, and the timed fdatasync makes them survive a SIGKILL.
 */
static void
test_async_alone_journaled(void **state)
{
	static const char *const args[] = {
	    "--fsync-interval", "200ms", "--apply-delay", "10s", NULL};
	struct daemon_proc d1, d2;
	struct sbuf	   b = {NULL, 0, 0};
	json_int_t	   versions[20];
	json_t		 **ans, *j;
	char		   key[32], val[32];
	long long	   queued = -1;
	int		   fd, i, tries;

	(void)state;
	assert_int_equal(daemon_start(&d1, args), 0);
	fd = connect_to(&d1);
	for (i = 0; i < 20; i++)
		sb_printf(&b,
		    "{\"op\":\"set\",\"key\":\"aa:%d\",\"value\":%d,"
		    "\"durability\":\"async\",\"id\":%d}\n",
		    i, i, i);
	ans = pipeline(fd, b.p, b.len, 20, NULL, NULL);
	for (i = 0; i < 20; i++) {
		assert_ok(ans[i]);
		versions[i] = int_of(ans[i], "version");
	}
	answers_free(ans, 20);
	sb_free(&b);
	/* In the journal within 200 ms, with no other write to wake it. */
	for (tries = 0; tries < 40 && queued != 0; tries++) {
		usleep(5 * 1000);
		j = stats_of(d1.sock);
		queued = stat_int(j, "write_queue", "journal_ops");
		json_decref(j);
	}
	assert_int_equal(queued, 0);
	/* Past the fsync interval: synced, not yet applied (apply-delay). */
	usleep(600 * 1000);
	assert_int_equal(daemon_kill(&d1, SIGKILL), 128 + SIGKILL);
	close(fd);

	restart_on(&d2, &d1);
	fd = connect_to(&d2);
	for (i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "aa:%d", i);
		snprintf(val, sizeof(val), "%d", i);
		assert_get(fd, key, val, versions[i]);
	}
	close(fd);
	assert_int_equal(daemon_stop(&d2), 0);
	daemon_cleanup(&d2);
	daemon_cleanup(&d1);
}

/*
 * Writes acknowledged before they are applied stay pinned in the cache
 * until SQLite has them, and then no longer. Async and journal writes
 * alternate, so that the async ones (pinned at once) are pinned ahead of
 * older journal ones (pinned once journaled), and deletes leave pinned
 * tombstones: once every write is applied, not one pin is left.
 */
static void
test_pins_released_when_applied(void **state)
{
	static const char *const args[] = {"--apply-delay", "10s", NULL};
	struct daemon_proc	 d;
	struct sbuf		 b = {NULL, 0, 0};
	json_t		       **ans, *j;
	int			 fd, i;

	(void)state;
	assert_int_equal(daemon_start(&d, args), 0);
	fd = connect_to(&d);
	for (i = 0; i < 300; i++) {
		if (i % 3 == 2)
			sb_printf(&b,
			    "{\"op\":\"del\",\"key\":\"pr:%d\",\"id\":%d}\n",
			    i - 1, i);
		else
			sb_printf(&b,
			    "{\"op\":\"set\",\"key\":\"pr:%d\",\"value\":%d,"
			    "\"durability\":\"%s\",\"id\":%d}\n",
			    i, i, i % 3 == 0 ? "async" : "journal", i);
	}
	ans = pipeline(fd, b.p, b.len, 300, NULL, NULL);
	for (i = 0; i < 300; i++)
		assert_ok(ans[i]);
	answers_free(ans, 300);
	sb_free(&b);
	/* Not applied yet (apply-delay): 200 keys, every one pinned. */
	j = stats_of(d.sock);
	assert_int_equal(stat_int(j, "cache", "pinned"), 200);
	json_decref(j);
	ask_ok(fd, "{\"op\":\"sync\"}");
	j = stats_of(d.sock);
	assert_int_equal(stat_int(j, "cache", "pinned"), 0);
	/* The tombstones went with their pins; the values stay cached. */
	assert_int_equal(stat_int(j, "cache", "entries"), 100);
	json_decref(j);
	close(fd);
	assert_int_equal(daemon_stop(&d), 0);
	daemon_cleanup(&d);
}

/* Acknowledged journal and commit writes survive SIGKILL. */
static void
test_persist_sigkill(void **state)
{
	struct daemon_proc d1, d2;
	struct sbuf	   b = {NULL, 0, 0};
	json_int_t	   versions[150];
	json_t		 **ans;
	char		   key[32], val[32];
	int		   fd, i, n;

	(void)state;
	assert_int_equal(daemon_start(&d1, NULL), 0);
	fd = connect_to(&d1);
	ask_ok(fd, "{\"op\":\"exec\",\"sql\":\"CREATE TABLE k9(a INTEGER "
		   "PRIMARY KEY, d TEXT)\"}");
	/* 100 journal sets, 50 commit sets, 50 + 50 inserts. */
	for (i = 0; i < 150; i++)
		sb_printf(&b,
		    "{\"op\":\"set\",\"key\":\"k:%d\",\"value\":"
		    "{\"i\":%d},\"durability\":\"%s\",\"id\":%d}\n",
		    i, i, i < 100 ? "journal" : "commit", i);
	for (i = 0; i < 100; i++)
		sb_printf(&b,
		    "{\"op\":\"exec\",\"sql\":\"INSERT INTO k9 "
		    "VALUES (?, ?)\",\"params\":[%d,\"%s\"],\"durability\":"
		    "\"%s\",\"id\":%d}\n",
		    i, i < 50 ? "c" : "j", i < 50 ? "commit" : "journal",
		    150 + i);
	n = 250;
	ans = pipeline(fd, b.p, b.len, (size_t)n, NULL, NULL);
	/* Killed the moment the last answer is in. */
	assert_int_equal(daemon_kill(&d1, SIGKILL), 128 + SIGKILL);
	for (i = 0; i < n; i++) {
		assert_ok(ans[i]);
		assert_int_equal(int_of(ans[i], "id"), i);
		if (i < 150)
			versions[i] = int_of(ans[i], "version");
	}
	answers_free(ans, (size_t)n);
	sb_free(&b);
	close(fd);

	restart_on(&d2, &d1);
	fd = connect_to(&d2);
	for (i = 0; i < 150; i++) {
		snprintf(key, sizeof(key), "k:%d", i);
		snprintf(val, sizeof(val), "{\"i\":%d}", i);
		assert_get(fd, key, val, versions[i]);
	}
	assert_int_equal(query_int(fd, "SELECT count(*) FROM k9"), 100);
	assert_int_equal(query_int(fd, "SELECT count(*) FROM k9 WHERE d = "
				       "'j'"),
	    50);
	/* Applied exactly once: no duplicate could have been inserted. */
	assert_int_equal(
	    query_int(fd, "SELECT count(DISTINCT a) FROM k9"), 100);
	close(fd);
	assert_int_equal(daemon_stop(&d2), 0);
	daemon_cleanup(&d2);
	daemon_cleanup(&d1);
}

/*
 * if_version and del after a restart, when the key is only in SQLite
 * (the cache is empty: the daemon must look it up first).
 */
static void
test_cas_del_after_restart(void **state)
{
	struct daemon_proc d1, d2;
	json_int_t	   va, vb, vc, v;
	json_t		  *j;
	int		   fd;

	(void)state;
	assert_int_equal(daemon_start(&d1, NULL), 0);
	fd = connect_to(&d1);
	va = set_dur(fd, "r:a", "\"a1\"", "journal");
	vb = set_dur(fd, "r:b", "\"b1\"", "journal");
	vc = set_dur(fd, "r:c", "\"c1\"", "commit");
	set_dur(fd, "r:d", "\"d1\"", "journal");
	set_dur(fd, "r:e", "\"e1\"", "journal");
	close(fd);
	assert_int_equal(daemon_stop(&d1), 0);

	restart_on(&d2, &d1);
	fd = connect_to(&d2);
	/* The right version: ok. */
	j = askf(fd,
	    "{\"op\":\"set\",\"key\":\"r:a\",\"value\":\"a2\","
	    "\"if_version\":%lld}",
	    (long long)va);
	assert_ok(j);
	v = int_of(j, "version");
	assert_true(v > va);
	json_decref(j);
	assert_get(fd, "r:a", "\"a2\"", v);
	/* A wrong one: conflict, nothing changes. */
	j = askf(fd,
	    "{\"op\":\"set\",\"key\":\"r:b\",\"value\":\"b2\","
	    "\"if_version\":%lld}",
	    (long long)vb + 1000);
	assert_error(j, "conflict");
	json_decref(j);
	assert_get(fd, "r:b", "\"b1\"", vb);
	/* 0 on a key that exists: conflict. */
	ask_error(fd,
	    "{\"op\":\"set\",\"key\":\"r:c\",\"value\":\"c2\","
	    "\"if_version\":0}",
	    "conflict");
	assert_get(fd, "r:c", "\"c1\"", vc);
	/* 0 on a key that does not, ok; another version on it, conflict. */
	ask_ok(fd, "{\"op\":\"set\",\"key\":\"r:new\",\"value\":1,"
		   "\"if_version\":0}");
	ask_error(fd,
	    "{\"op\":\"set\",\"key\":\"r:none\",\"value\":1,"
	    "\"if_version\":5}",
	    "conflict");
	/* del of a key only in SQLite. */
	j = ask(fd, "{\"op\":\"del\",\"key\":\"r:d\"}");
	assert_ok(j);
	assert_true(json_is_true(json_object_get(j, "deleted")));
	json_decref(j);
	ask_error(fd, "{\"op\":\"get\",\"key\":\"r:d\"}", "not_found");
	j = ask(fd, "{\"op\":\"del\",\"key\":\"r:d\"}");
	assert_ok(j);
	assert_true(json_is_false(json_object_get(j, "deleted")));
	json_decref(j);
	j = ask(fd, "{\"op\":\"del\",\"key\":\"r:never\"}");
	assert_ok(j);
	assert_true(json_is_false(json_object_get(j, "deleted")));
	json_decref(j);
	/* Pipelined: a commit del and a get right behind it. */
	assert_int_equal(raw_sends(fd, "{\"op\":\"del\",\"key\":\"r:e\","
				       "\"durability\":\"commit\"}\n{\"op\":"
				       "\"get\",\"key\":\"r:e\"}\n"),
	    0);
	{
		char *line = raw_readline(fd, 10000);

		j = parse_answer(line);
		free(line);
		assert_ok(j);
		assert_true(json_is_true(json_object_get(j, "deleted")));
		json_decref(j);
		line = raw_readline(fd, 10000);
		j = parse_answer(line);
		free(line);
		assert_error(j, "not_found");
		json_decref(j);
	}
	sync_on(fd);
	assert_int_equal(query_int(fd, "SELECT count(*) FROM stash_kv WHERE "
				       "key IN ('r:d', 'r:e')"),
	    0);
	close(fd);
	assert_int_equal(daemon_stop(&d2), 0);
	daemon_cleanup(&d2);
	daemon_cleanup(&d1);
}

/* set k=i then get k, 100 times in one write, with a durability. */
static void
ryw_kv(const char *dur)
{
	struct sbuf b = {NULL, 0, 0};
	json_int_t  v = 0;
	json_t	  **ans;
	int	    fd = connect_shared(), i;

	for (i = 1; i <= 100; i++)
		sb_printf(&b,
		    "{\"op\":\"set\",\"key\":\"ryw:%s\",\"value\":%d,"
		    "\"durability\":\"%s\"}\n{\"op\":\"get\",\"key\":"
		    "\"ryw:%s\"}\n",
		    dur, i, dur, dur);
	ans = pipeline(fd, b.p, b.len, 200, NULL, NULL);
	for (i = 0; i < 200; i += 2) {
		assert_ok(ans[i]);
		assert_ok(ans[i + 1]);
		assert_true(int_of(ans[i], "version") > v);
		v = int_of(ans[i], "version");
		if (int_of(ans[i + 1], "value") != i / 2 + 1)
			fail_msg("%s: get after set %d saw %lld", dur,
			    i / 2 + 1, (long long)int_of(ans[i + 1], "value"));
		assert_int_equal(int_of(ans[i + 1], "version"), v);
	}
	answers_free(ans, 200);
	sb_free(&b);
	close(fd);
}

/* One slow query: a few hundred milliseconds of a reader thread. */
/*
 * A query that keeps a reader busy for a while: a million rows counted
 * (0.3 s), 50,000 under valgrind (STASHD_WRAPPER), which runs it 50 times
 * slower, so that four of them end within the tests' timeouts there too.
 */
static const char *
slow_query(void)
{
	return getenv("STASHD_WRAPPER") == NULL
		   ? "{\"op\":\"query\",\"sql\":\"WITH RECURSIVE c(x) AS "
		     "(SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < "
		     "1000000) SELECT count(*) FROM c\"}\n"
		   : "{\"op\":\"query\",\"sql\":\"WITH RECURSIVE c(x) AS "
		     "(SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < "
		     "50000) SELECT count(*) FROM c\"}\n";
}

/*
 * Keep every reader thread (2 by default) busy for a while with slow
 * queries from another connection; readers_free() collects them.
 */
static int
readers_busy(const char *sock)
{
	int fd = raw_connect(sock), i;

	assert_true(fd >= 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(raw_sends(fd, slow_query()), 0);
	usleep(20 * 1000);
	return fd;
}

static void
readers_free(int fd)
{
	char   *line;
	json_t *j;
	int	i;

	for (i = 0; i < 4; i++) {
		line = raw_readline(fd, 20000);
		j = parse_answer(line);
		free(line);
		assert_ok(j);
		json_decref(j);
	}
	close(fd);
}

/* exec INSERT then query count(*), 100 times in one write. */
static void
ryw_exec(const char *dur)
{
	struct sbuf b = {NULL, 0, 0};
	json_t	  **ans, *row;
	long long   counts[100];
	int	    fd = connect_shared(), i;

	for (i = 1; i <= 100; i++)
		sb_printf(&b,
		    "{\"op\":\"exec\",\"sql\":\"INSERT INTO ryw_%s "
		    "VALUES (?)\",\"params\":[%d],\"durability\":\"%s\"}\n"
		    "{\"op\":\"query\",\"sql\":\"SELECT count(*) FROM ryw_%s\"}"
		    "\n",
		    dur, i, dur, dur);
	ans = pipeline(fd, b.p, b.len, 200, NULL, NULL);
	sb_free(&b);
	close(fd);
	for (i = 0; i < 200; i += 2) {
		assert_ok(ans[i]);
		assert_ok(ans[i + 1]);
		row = json_array_get(json_object_get(ans[i + 1], "rows"), 0);
		counts[i / 2] = json_integer_value(json_array_get(row, 0));
	}
	/* Checked once freed: a known failure leaks nothing. */
	answers_free(ans, 200);
	for (i = 0; i < 100; i++)
		if (counts[i] != i + 1)
			fail_msg("%s: query after insert %d counted %lld", dur,
			    i + 1, counts[i]);
}

/* Read-your-writes (Guarantee 4) for set then get, each durability. */
static void
test_read_your_writes(void **state)
{
	(void)state;
	ryw_kv("journal");
	ryw_kv("commit");
	ryw_kv("async");
}

/*
 * exec INSERT (commit) then query count(*), pipelined: each query counts
 * exactly the inserts before it -- not fewer (Guarantee 4), and not the
 * ones sent after it on the same connection (answers, and what they see,
 * follow the order of the requests).
 */
static void
test_read_your_writes_exec_commit(void **state)
{
	int fd = connect_shared();

	json_t		**ans, *row;
	long long	  count;
	int		  busy;
	static const char probe[] =
	    "{\"op\":\"exec\",\"sql\":\"INSERT INTO ryw_probe VALUES (1)\"}\n"
	    "{\"op\":\"query\",\"sql\":\"SELECT count(*) FROM ryw_probe\"}\n"
	    "{\"op\":\"exec\",\"sql\":\"INSERT INTO ryw_probe VALUES (2)\"}\n";

	(void)state;
	ask_ok(fd, "{\"op\":\"exec\",\"sql\":\"CREATE TABLE ryw_commit(a)\"}");
	ask_ok(fd, "{\"op\":\"exec\",\"sql\":\"CREATE TABLE ryw_probe(a)\"}");
	close(fd);
	ryw_exec("commit");

	/*
	 * The same made certain: while the readers are busy, the query
	 * waits in their queue, and the insert sent after it is applied
	 * first. The query must still count only the insert before it.
	 */
	busy = readers_busy(shared.sock);
	fd = connect_shared();
	ans = pipeline(fd, probe, sizeof(probe) - 1, 3, NULL, NULL);
	readers_free(busy);
	close(fd);
	assert_ok(ans[0]);
	assert_ok(ans[1]);
	assert_ok(ans[2]);
	row = json_array_get(json_object_get(ans[1], "rows"), 0);
	count = json_integer_value(json_array_get(row, 0));
	answers_free(ans, 3);
	if (count != 1)
		fail_msg("a query between two inserts counted %lld", count);
}

/*
 * Guarantee 4 for an exec acknowledged before it is applied (journal
 * durability): the query behind it must still see it.
 */
static void
test_read_your_writes_exec_journal(void **state)
{
	int fd = connect_shared();

	(void)state;
	ask_ok(fd, "{\"op\":\"exec\",\"sql\":\"CREATE TABLE ryw_journal(a)"
		   "\"}");
	close(fd);
	ryw_exec("journal");
}

/* The same for async, acknowledged on receipt. */
static void
test_read_your_writes_exec_async(void **state)
{
	int fd = connect_shared();

	(void)state;
	ask_ok(fd, "{\"op\":\"exec\",\"sql\":\"CREATE TABLE ryw_async(a)\"}");
	close(fd);
	ryw_exec("async");
}

/*
 * A get that misses the cache, pipelined before a set of the same key on
 * the same connection, answers what was there before the set: it must not
 * see a write that was sent after it. With async the set is visible on
 * receipt, long before the lookup of the get comes back.
 */
static void
test_read_before_write(void **state)
{
	struct sbuf b = {NULL, 0, 0};
	json_t	  **ans;
	int	    fd = connect_shared(), i, seen = 0;

	(void)state;
	for (i = 0; i < 50; i++)
		sb_printf(&b,
		    "{\"op\":\"get\",\"key\":\"rbw:%d\"}\n"
		    "{\"op\":\"mget\",\"keys\":[\"rbw:%d\"]}\n"
		    "{\"op\":\"set\",\"key\":\"rbw:%d\",\"value\":%d,"
		    "\"durability\":\"async\"}\n",
		    i, i, i, i);
	ans = pipeline(fd, b.p, b.len, 150, NULL, NULL);
	for (i = 0; i < 150; i += 3) {
		if (json_is_true(json_object_get(ans[i], "ok")))
			seen++;
		else
			assert_error(ans[i], "not_found");
		assert_ok(ans[i + 1]);
		if (!json_is_null(json_array_get(
			json_object_get(ans[i + 1], "values"), 0)))
			seen++;
		assert_ok(ans[i + 2]);
	}
	answers_free(ans, 150);
	sb_free(&b);
	if (seen > 0)
		fail_msg(
		    "%d of 100 reads saw the async set sent after them", seen);
	close(fd);
}

/*
 * The same for journal and commit sets: the lookup of the get waits
 * behind busy readers while the set behind it is acknowledged.
 */
static void
test_read_before_write_busy(void **state)
{
	struct sbuf b = {NULL, 0, 0};
	json_t	  **ans;
	int	    fd = connect_shared(), busy, saw_j, saw_c;

	(void)state;
	busy = readers_busy(shared.sock);
	sb_printf(&b,
	    "{\"op\":\"get\",\"key\":\"rbw:j\"}\n"
	    "{\"op\":\"set\",\"key\":\"rbw:j\",\"value\":1,\"durability\":"
	    "\"journal\"}\n"
	    "{\"op\":\"get\",\"key\":\"rbw:c\"}\n"
	    "{\"op\":\"set\",\"key\":\"rbw:c\",\"value\":1,\"durability\":"
	    "\"commit\"}\n");
	ans = pipeline(fd, b.p, b.len, 4, NULL, NULL);
	readers_free(busy);
	sb_free(&b);
	close(fd);
	assert_ok(ans[1]);
	assert_ok(ans[3]);
	saw_j = json_is_true(json_object_get(ans[0], "ok"));
	saw_c = json_is_true(json_object_get(ans[2], "ok"));
	if (!saw_j)
		assert_error(ans[0], "not_found");
	if (!saw_c)
		assert_error(ans[2], "not_found");
	answers_free(ans, 4);
	if (saw_j || saw_c)
		fail_msg("a get saw the set sent after it:%s%s",
		    saw_j ? " journal" : "", saw_c ? " commit" : "");
}

/*
 * A refusal of the authorizer is "forbidden" also when SQLite reports it
 * while the statement runs rather than while it is prepared (a PRAGMA
 * through its table-valued function). Allowing this read-only form would
 * do too; a "not authorized" sql_error would not.
 */
static void
test_refusal_code(void **state)
{
	static const char *reqs[] = {
	    "{\"op\":\"query\",\"sql\":\"SELECT * FROM "
	    "pragma_journal_mode\"}",
	    "{\"op\":\"exec\",\"sql\":\"SELECT * FROM "
	    "pragma_journal_mode\"}",
	};
	int	fd = connect_shared();
	char	code[64];
	json_t *j;
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		j = ask(fd, reqs[i]);
		snprintf(code, sizeof(code), "%s",
		    json_is_true(json_object_get(j, "ok"))
			? "ok"
			: json_string_value(json_object_get(
			      json_object_get(j, "error"), "code")));
		json_decref(j);
		if (strcmp(code, "ok") != 0 && strcmp(code, "forbidden") != 0) {
			close(fd);
			fail_msg("%s: %s, not forbidden", reqs[i], code);
		}
	}
	close(fd);
}

/* sync: every acknowledged write is applied when it answers. */
static void
test_sync(void **state)
{
	struct sbuf b = {NULL, 0, 0};
	json_int_t  last = 0;
	json_t	  **ans;
	int	    fd = connect_shared(), other = connect_shared(), i;

	(void)state;
	ask_ok(fd, "{\"op\":\"exec\",\"sql\":\"CREATE TABLE sy(a)\"}");
	for (i = 0; i < 500; i++) {
		if (i % 5 == 0)
			sb_printf(&b,
			    "{\"op\":\"exec\",\"sql\":\"INSERT "
			    "INTO sy VALUES (?)\",\"params\":[%d],"
			    "\"durability\":\"journal\"}\n",
			    i);
		else
			sb_printf(&b,
			    "{\"op\":\"set\",\"key\":\"sy:%d\","
			    "\"value\":%d,\"durability\":\"journal\"}\n",
			    i, i);
	}
	ans = pipeline(fd, b.p, b.len, 500, NULL, NULL);
	for (i = 0; i < 500; i++) {
		assert_ok(ans[i]);
		last = max_ver(
		    last, int_of(ans[i], i % 5 == 0 ? "seq" : "version"));
	}
	answers_free(ans, 500);
	sb_free(&b);
	/* On another connection: it covers every connection's writes. */
	assert_true(sync_on(other) >= last);
	assert_int_equal(query_int(other, "SELECT count(*) FROM sy"), 100);
	assert_int_equal(query_int(other, "SELECT count(*) FROM stash_kv "
					  "WHERE key LIKE 'sy:%'"),
	    400);
	assert_true(sync_on(fd) >= last);
	close(fd);
	close(other);
}

/*
 * --apply-delay: journaled writes wait to be applied in one large
 * transaction, but nobody who waits for SQLite waits for the delay: a
 * sync, a query after its connection's writes and a commit write are
 * applied at once.
 */
static void
test_apply_delay(void **state)
{
	static const char *args[] = {"--apply-delay", "10s", NULL};
	struct daemon_proc d, d2;
	long long	   t0, ver, applied;
	json_t		  *j;
	int		   fd, other;

	(void)state;
	assert_int_equal(daemon_start(&d, args), 0);
	fd = connect_to(&d);
	other = connect_to(&d);
	ask_ok(fd, "{\"op\":\"exec\",\"sql\":\"CREATE TABLE ad(a)\"}");

	/* A journal write is acknowledged, visible, and not yet applied. */
	t0 = harness_now_ms();
	j = askf(fd, "{\"op\":\"set\",\"key\":\"ad:1\",\"value\":1,"
		     "\"durability\":\"journal\"}");
	assert_ok(j);
	ver = int_of(j, "version");
	json_decref(j);
	assert_true(harness_now_ms() - t0 < 2000);
	assert_get(other, "ad:1", "1", 0);
	j = stats_of(d.sock);
	applied = stat_int(j, "write_queue", "applied_seq");
	json_decref(j);
	assert_true(applied < ver);

	/* A sync, on another connection, does not wait for the delay. */
	t0 = harness_now_ms();
	assert_true(sync_on(other) >= ver);
	assert_true(harness_now_ms() - t0 < 2000);

	/* Nor a query after its own connection's journal exec. */
	ask_ok(fd, "{\"op\":\"exec\",\"sql\":\"INSERT INTO ad VALUES (1)\","
		   "\"durability\":\"journal\"}");
	t0 = harness_now_ms();
	assert_int_equal(query_int(fd, "SELECT count(*) FROM ad"), 1);
	assert_true(harness_now_ms() - t0 < 2000);

	/* Nor a commit write, even behind journal writes. */
	ask_ok(fd, "{\"op\":\"set\",\"key\":\"ad:2\",\"value\":2,"
		   "\"durability\":\"journal\"}");
	t0 = harness_now_ms();
	ask_ok(other, "{\"op\":\"exec\",\"sql\":\"INSERT INTO ad VALUES "
		      "(2)\",\"durability\":\"commit\"}");
	assert_true(harness_now_ms() - t0 < 2000);
	assert_int_equal(query_int(other, "SELECT count(*) FROM stash_kv "
					  "WHERE key = 'ad:2'"),
	    1);

	/* The stop applies what is left, without waiting for the delay. */
	ask_ok(fd, "{\"op\":\"set\",\"key\":\"ad:3\",\"value\":3,"
		   "\"durability\":\"journal\"}");
	close(fd);
	close(other);
	t0 = harness_now_ms();
	assert_int_equal(daemon_stop(&d), 0);
	assert_true(harness_now_ms() - t0 < 5000);
	restart_on(&d2, &d);
	fd = connect_to(&d2);
	assert_int_equal(query_int(fd, "SELECT count(*) FROM stash_kv "
				       "WHERE key = 'ad:3'"),
	    1);
	close(fd);
	assert_int_equal(daemon_stop(&d2), 0);
	daemon_cleanup(&d2);
	daemon_cleanup(&d);
}

/*
 * Writes to one key in one applied batch: only the last reaches SQLite,
 * unless an SQL write between them could see the earlier one.
 */
static void
test_coalesced_writes(void **state)
{
	static const char *args[] = {"--apply-delay", "10s", NULL};
	struct daemon_proc d;
	struct sbuf	   b = {NULL, 0, 0};
	long long	   coalesced;
	json_t		 **ans, *j;
	int		   fd, i;

	(void)state;
	assert_int_equal(daemon_start(&d, args), 0);
	fd = connect_to(&d);
	ask_ok(fd, "{\"op\":\"exec\",\"sql\":\"CREATE TABLE co(v)\"}");
	for (i = 0; i < 200; i++)
		sb_printf(&b,
		    "{\"op\":\"set\",\"key\":\"co:hot\",\"value\":%d,"
		    "\"durability\":\"journal\"}\n",
		    i);
	/* An SQL write reads the key between two sets of it. */
	sb_printf(&b, "{\"op\":\"exec\",\"sql\":\"INSERT INTO co SELECT "
		      "value FROM stash_kv WHERE key = 'co:hot'\","
		      "\"durability\":\"journal\"}\n");
	sb_printf(&b, "{\"op\":\"set\",\"key\":\"co:hot\",\"value\":"
		      "\"last\",\"durability\":\"journal\"}\n");
	sb_printf(&b, "{\"op\":\"del\",\"key\":\"co:gone\","
		      "\"durability\":\"journal\"}\n");
	ans = pipeline(fd, b.p, b.len, 203, NULL, NULL);
	for (i = 0; i < 203; i++)
		assert_ok(ans[i]);
	answers_free(ans, 203);
	sb_free(&b);
	sync_on(fd);
	/* The exec saw the value of the set just before it. */
	j = askf(fd, "{\"op\":\"query\",\"sql\":\"SELECT v FROM co\"}");
	assert_ok(j);
	assert_int_equal(json_array_size(json_object_get(j, "rows")), 1);
	assert_string_equal(
	    json_string_value(json_array_get(
		json_array_get(json_object_get(j, "rows"), 0), 0)),
	    "199");
	json_decref(j);
	j = askf(fd, "{\"op\":\"query\",\"sql\":\"SELECT value FROM "
		     "stash_kv WHERE key = 'co:hot'\"}");
	assert_ok(j);
	assert_string_equal(
	    json_string_value(json_array_get(
		json_array_get(json_object_get(j, "rows"), 0), 0)),
	    "\"last\"");
	json_decref(j);
	j = stats_of(d.sock);
	coalesced = stat_int(j, "sqlite", "writes_coalesced");
	json_decref(j);
	/*
	 * 199 of the first 200 were overwritten before the exec, when they
	 * all wait in one batch; a busy machine may apply a first group of
	 * them alone, before the rest is journaled.
	 */
	assert_true(coalesced >= 150 && coalesced <= 199);
	close(fd);
	assert_int_equal(daemon_stop(&d), 0);
	daemon_cleanup(&d);
}

/*
 * Coalescing sorts a run by key: keys alike in many ways, each written
 * several times, interleaved, in two runs (an exec between them). Run 1:
 * a long shared prefix and keys that differ only after it and 8 more bytes
 * (the bytes the sort compares first). Run 2: keys that are prefixes of
 * each other. SQLite must hold the last value of each key.
 */
static void
test_coalesced_keys_alike(void **state)
{
	static const char *args[] = {"--apply-delay", "10s", NULL};
	static const char *run1[] = {"ca:long-shared-prefix:12345678:a",
	    "ca:long-shared-prefix:12345678:b", "ca:long-shared-prefix:1",
	    "ca:long-shared-prefix:12345678",
	    "ca:long-shared-prefix:12345678:"};
	static const char *run2[] = {"ca:k", "ca:k1", "ca:k10", "ca:k2", "ca:"};
	const char	 **keys;
	struct daemon_proc d;
	struct sbuf	   b = {NULL, 0, 0};
	long long	   coalesced;
	json_t		 **ans, *j, *rows;
	char		   want[64];
	int		   fd, i, r, n = 0, k;

	(void)state;
	assert_int_equal(daemon_start(&d, args), 0);
	fd = connect_to(&d);
	for (r = 0; r < 2; r++) {
		keys = r == 0 ? run1 : run2;
		/* Each key 4 times, in an order that mixes them. */
		for (i = 0; i < 20; i++) {
			k = (i * 3 + r) % 5;
			sb_printf(&b,
			    "{\"op\":\"set\",\"key\":\"%s\",\"value\":%d}\n",
			    keys[k], r * 100 + i);
			n++;
		}
		/* Not commit: nothing is applied before the sync below. */
		sb_printf(&b, "{\"op\":\"exec\",\"sql\":\"SELECT 1\","
			      "\"durability\":\"journal\"}\n");
		n++;
	}
	ans = pipeline(fd, b.p, b.len, (size_t)n, NULL, NULL);
	for (i = 0; i < n; i++)
		assert_ok(ans[i]);
	answers_free(ans, (size_t)n);
	sb_free(&b);
	sync_on(fd);
	for (r = 0; r < 2; r++) {
		keys = r == 0 ? run1 : run2;
		for (k = 0; k < 5; k++) {
			/* The last i of the 20 with (i * 3 + r) % 5 == k. */
			for (i = 19; (i * 3 + r) % 5 != k; i--)
				;
			j = askf(fd,
			    "{\"op\":\"query\",\"sql\":\"SELECT value FROM "
			    "stash_kv WHERE key = ?1\",\"params\":[\"%s\"]}",
			    keys[k]);
			assert_ok(j);
			rows = json_object_get(j, "rows");
			assert_int_equal(json_array_size(rows), 1);
			snprintf(want, sizeof(want), "%d", r * 100 + i);
			assert_string_equal(json_string_value(json_array_get(
						json_array_get(rows, 0), 0)),
			    want);
			json_decref(j);
		}
	}
	j = stats_of(d.sock);
	coalesced = stat_int(j, "sqlite", "writes_coalesced");
	json_decref(j);
	/* 15 of each run's 20: one batch, applied at the sync. */
	assert_int_equal(coalesced, 30);
	close(fd);
	assert_int_equal(daemon_stop(&d), 0);
	daemon_cleanup(&d);
}

/*
 * The write queue's memory (stats.process.write_pool_bytes) is its own and
 * goes back once the writes are applied: a bulk load of 40,000 writes
 * takes megabytes of the pool, and after a sync nothing is live in it and
 * at most a few chunks (256 KiB each) stay mapped. (keymap_renew, which
 * keeps a key written without pause from holding an old chunk, has its
 * test in test_qpool.)
 */
static void
test_write_pool_drains(void **state)
{
	/*
	 * The 40,000 writes take about 20 MB of the queue: under half of it,
	 * so that nothing makes them due before the sync.
	 */
	static const char *args[] = {
	    "--apply-delay", "10s", "--write-queue-max", "64MB", NULL};
	static char	   big[201];
	struct daemon_proc d;
	struct sbuf	   b = {NULL, 0, 0};
	json_t		 **ans, *j;
	int		   fd, r, i;

	(void)state;
	memset(big, 'x', 200);
	assert_int_equal(daemon_start(&d, args), 0);
	fd = connect_to(&d);
	for (r = 0; r < 40; r++) {
		for (i = 0; i < 1000; i++)
			sb_printf(&b,
			    "{\"op\":\"set\",\"key\":\"bulk:%d:%d\","
			    "\"value\":\"%s\",\"durability\":\"async\"}\n",
			    r, i, big);
		ans = pipeline(fd, b.p, b.len, 1000, NULL, NULL);
		for (i = 0; i < 1000; i++)
			assert_ok(ans[i]);
		answers_free(ans, 1000);
		b.len = 0;
	}
	sb_free(&b);
	j = stats_of(d.sock);
	if (stat_int(j, "process", "write_pool_bytes") > 0) {
		/* A pooled build (not under a sanitizer or valgrind). */
		assert_true(stat_int(j, "process", "write_pool_bytes") >
			    4 * 1024 * 1024);
		assert_true(stat_int(j, "process", "write_pool_live") >= 40000);
	}
	json_decref(j);
	sync_on(fd);
	j = stats_of(d.sock);
	assert_int_equal(stat_int(j, "process", "write_pool_live"), 0);
	assert_true(
	    stat_int(j, "process", "write_pool_bytes") <= 6 * 256 * 1024);
	json_decref(j);
	close(fd);
	assert_int_equal(daemon_stop(&d), 0);
	daemon_cleanup(&d);
}

/*
 * A key whose TTL runs out before its write is applied reads as absent:
 * neither the new value (still pinned in the cache, waiting for SQLite)
 * nor the older one SQLite holds.
 */
static void
test_expired_before_applied(void **state)
{
	static const char *args[] = {"--apply-delay", "10s", NULL};
	struct daemon_proc d;
	long long	   ver;
	json_t		  *j;
	int		   fd;

	(void)state;
	assert_int_equal(daemon_start(&d, args), 0);
	fd = connect_to(&d);
	ask_ok(fd, "{\"op\":\"set\",\"key\":\"ex:k\",\"value\":\"old\"}");
	sync_on(fd);
	j = askf(fd, "{\"op\":\"set\",\"key\":\"ex:k\",\"value\":\"new\","
		     "\"ttl\":1,\"durability\":\"journal\"}");
	assert_ok(j);
	ver = int_of(j, "version");
	json_decref(j);
	assert_get(fd, "ex:k", "\"new\"", ver);
	usleep(2200 * 1000);
	j = stats_of(d.sock);
	assert_true(stat_int(j, "write_queue", "applied_seq") < ver);
	json_decref(j);
	ask_error(fd, "{\"op\":\"get\",\"key\":\"ex:k\"}", "not_found");
	j = askf(fd, "{\"op\":\"mget\",\"keys\":[\"ex:k\"]}");
	assert_ok(j);
	assert_true(
	    json_is_null(json_array_get(json_object_get(j, "values"), 0)));
	json_decref(j);
	/* Compare-and-set sees it absent too. */
	ask_error(fd,
	    "{\"op\":\"set\",\"key\":\"ex:k\",\"value\":1,\"if_version\":1}",
	    "conflict");
	sync_on(fd);
	ask_error(fd, "{\"op\":\"get\",\"key\":\"ex:k\"}", "not_found");
	close(fd);
	assert_int_equal(daemon_stop(&d), 0);
	daemon_cleanup(&d);
}

/* Group commit: pipelined writes share groups and fsyncs. */
static void
test_group_commit(void **state)
{
	struct daemon_proc d;
	struct sbuf	   b = {NULL, 0, 0};
	long long	   groups, fsyncs;
	double		   mean;
	json_t		 **ans, *j;
	int		   fd, i;

	(void)state;
	assert_int_equal(daemon_start(&d, NULL), 0);
	fd = connect_to(&d);
	for (i = 0; i < 2000; i++)
		sb_printf(&b,
		    "{\"op\":\"set\",\"key\":\"g:%d\",\"value\":%d,"
		    "\"durability\":\"journal\",\"id\":%d}\n",
		    i % 500, i, i);
	ans = pipeline(fd, b.p, b.len, 2000, NULL, NULL);
	for (i = 0; i < 2000; i++) {
		assert_ok(ans[i]);
		assert_int_equal(int_of(ans[i], "id"), i);
		if (i > 0)
			assert_true(int_of(ans[i], "version") >
				    int_of(ans[i - 1], "version"));
	}
	answers_free(ans, 2000);
	sb_free(&b);
	j = stats_of(d.sock);
	groups = stat_int(j, "groups", "count");
	mean = stat_num(j, "groups", "mean_size");
	fsyncs = stat_int(j, "journal", "fsyncs");
	json_decref(j);
	assert_true(groups > 0);
	assert_true(groups < 2000);
	assert_true(mean > 1.0);
	assert_true(fsyncs <= groups);
	assert_get(fd, "g:499", "1999", 0);
	close(fd);
	assert_int_equal(daemon_stop(&d), 0);
	daemon_cleanup(&d);
}

/*
 * Another process holds SQLite's write lock: journal writes are still
 * acknowledged promptly, a commit write waits and then succeeds.
 */
static void
test_sqlite_busy(void **state)
{
	struct daemon_proc d;
	sqlite3		  *db;
	long long	   t_lock, t0, dt, worst = 0;
	char		  *line;
	json_t		  *j;
	int		   a, b, c, i;

	(void)state;
	assert_int_equal(daemon_start(&d, NULL), 0);
	a = connect_to(&d);
	b = connect_to(&d);
	c = connect_to(&d);
	ask_ok(a, "{\"op\":\"exec\",\"sql\":\"CREATE TABLE busy(x)\"}");
	sync_on(a);

	assert_int_equal(
	    sqlite3_open_v2(d.db, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	assert_int_equal(
	    sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db, "INSERT INTO busy VALUES (-1)", NULL, NULL, NULL),
	    SQLITE_OK);
	t_lock = harness_now_ms();

	/* The commit write waits for the lock. */
	assert_int_equal(
	    raw_sends(b, "{\"op\":\"exec\",\"sql\":\"INSERT INTO "
			 "busy VALUES (1)\",\"durability\":\"commit\"}\n"),
	    0);
	for (i = 0; harness_now_ms() - t_lock < 1500; i++) {
		t0 = harness_now_ms();
		j = askf(a,
		    "{\"op\":\"set\",\"key\":\"busy:%d\",\"value\":%d,"
		    "\"durability\":\"journal\"}",
		    i, i);
		dt = harness_now_ms() - t0;
		assert_ok(j);
		json_decref(j);
		if (dt > worst)
			worst = dt;
		/* Acknowledged writes are visible at once. */
		j = askf(a, "{\"op\":\"get\",\"key\":\"busy:%d\"}", i);
		assert_ok(j);
		assert_int_equal(int_of(j, "value"), i);
		json_decref(j);
		usleep(100 * 1000);
	}
	assert_true(i >= 5);
	if (worst >= 500)
		fail_msg("a journal write took %lld ms while SQLite was locked",
		    worst);
	/* Reads go on (WAL). */
	t0 = harness_now_ms();
	assert_int_equal(query_int(c, "SELECT count(*) FROM busy"), 0);
	assert_true(harness_now_ms() - t0 < 500);
	/* The commit write is not answered while the lock is held. */
	line = raw_readline(b, 50);
	if (line != NULL)
		fail_msg("commit write answered under the lock: %s", line);

	assert_int_equal(
	    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	line = raw_readline(b, 10000);
	j = parse_answer(line);
	free(line);
	assert_ok(j);
	assert_int_equal(int_of(j, "changes"), 1);
	json_decref(j);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);

	sync_on(a);
	assert_int_equal(query_int(c, "SELECT count(*) FROM busy"), 2);
	j = askf(c, "{\"op\":\"query\",\"sql\":\"SELECT count(*) FROM stash_kv "
		    "WHERE key LIKE 'busy:%%'\"}");
	assert_ok(j);
	assert_int_equal(json_integer_value(json_array_get(
			     json_array_get(json_object_get(j, "rows"), 0), 0)),
	    i);
	json_decref(j);
	j = stats_of(d.sock);
	assert_true(stat_int(j, "sqlite", "busy_retries") > 0);
	json_decref(j);
	close(a);
	close(b);
	close(c);
	assert_int_equal(daemon_stop(&d), 0);
	daemon_cleanup(&d);
}

/* What the other clients of the backpressure test do meanwhile. */
struct bp_state {
	const char *sock;
	int	    getter;
	int	    stats_fd;
	int	    gets;
	int	    misses;
	long long   worst_ms;
	long long   max_unapplied;
	long long   limit;
};

static void
bp_tick(void *arg)
{
	struct bp_state *s = arg;
	long long	 t0 = harness_now_ms(), dt, u;
	json_t		*j;

	j = ask(s->getter, "{\"op\":\"get\",\"key\":\"bp:fixed\"}");
	assert_ok(j);
	assert_string_equal(
	    json_string_value(json_object_get(j, "value")), "fixed");
	json_decref(j);
	/* A miss goes to a reader thread. */
	j = askf(s->getter, "{\"op\":\"get\",\"key\":\"bp:absent:%d\"}",
	    s->misses++);
	assert_error(j, "not_found");
	json_decref(j);
	dt = harness_now_ms() - t0;
	if (dt > s->worst_ms)
		s->worst_ms = dt;
	s->gets += 2;
	j = ask(s->stats_fd, "{\"op\":\"stats\"}");
	assert_ok(j);
	u = stat_int(j, "write_queue", "unapplied_bytes");
	s->limit = stat_int(j, "write_queue", "limit_bytes");
	json_decref(j);
	if (u > s->max_unapplied)
		s->max_unapplied = u;
}

/*
 * --write-queue-max 64KB: 5,000 pipelined 1 KB sets wait for room, none
 * is lost, and other clients are served meanwhile.
 */
static void
test_backpressure(void **state)
{
	static const char *args[] = {
	    "--write-queue-max", "64KB", "--max-memory", "64MB", NULL};
	static const int samples[] = {
	    0, 1, 63, 64, 65, 1000, 2500, 4095, 4998, 4999};
	struct daemon_proc d;
	struct sbuf	   b = {NULL, 0, 0};
	struct bp_state	   s;
	char		   val[1100], key[32];
	json_t		 **ans, *j;
	int		   fd, i;

	(void)state;
	assert_int_equal(daemon_start(&d, args), 0);
	fd = connect_to(&d);
	memset(&s, 0, sizeof(s));
	s.sock = d.sock;
	s.getter = connect_to(&d);
	s.stats_fd = connect_to(&d);
	ask_ok(s.getter, "{\"op\":\"set\",\"key\":\"bp:fixed\",\"value\":"
			 "\"fixed\",\"durability\":\"commit\"}");
	for (i = 0; i < 5000; i++) {
		big_value(val, sizeof(val), "bp", i);
		sb_printf(&b,
		    "{\"op\":\"set\",\"key\":\"bp:%d\",\"value\":"
		    "\"%s\",\"id\":%d}\n",
		    i, val, i);
	}
	ans = pipeline(fd, b.p, b.len, 5000, bp_tick, &s);
	for (i = 0; i < 5000; i++) {
		assert_ok(ans[i]);
		assert_int_equal(int_of(ans[i], "id"), i);
	}
	answers_free(ans, 5000);
	sb_free(&b);
	/* The others were served, promptly, while the writer waited. */
	assert_true(s.gets >= 4);
	if (s.worst_ms >= 2000)
		fail_msg("a get took %lld ms under backpressure", s.worst_ms);
	assert_int_equal(s.limit, 64 * 1024);
	/* The queue did fill up (the writes had to wait), on any disk. */
	assert_true(s.max_unapplied >= s.limit / 2);
	/* It stayed within its limit (plus the one write let in). */
	if (s.max_unapplied > s.limit + 2048)
		fail_msg("unapplied bytes reached %lld (limit %lld)",
		    s.max_unapplied, s.limit);
	for (i = 0; i < (int)(sizeof(samples) / sizeof(samples[0])); i++) {
		snprintf(key, sizeof(key), "bp:%d", samples[i]);
		big_value(val, sizeof(val), "bp", samples[i]);
		j = askf(fd, "{\"op\":\"get\",\"key\":\"%s\"}", key);
		assert_ok(j);
		assert_string_equal(
		    json_string_value(json_object_get(j, "value")), val);
		json_decref(j);
	}
	sync_on(fd);
	assert_int_equal(query_int(fd, "SELECT count(*) FROM stash_kv WHERE "
				       "key LIKE 'bp:%' AND key <> 'bp:fixed'"),
	    5000);
	close(fd);
	close(s.getter);
	close(s.stats_fd);
	assert_int_equal(daemon_stop(&d), 0);
	daemon_cleanup(&d);
}

/* Mixed durabilities on one key: the newer acknowledged write wins. */
static void
test_mixed_durability(void **state)
{
	static const char *orders[][2] = {
	    {"commit", "journal"},
	    {"journal", "commit"},
	    {"commit", "async"},
	    {"async", "commit"},
	};
	int	   fd = connect_shared(), round, o;
	char	   req[600], key[32], *line;
	json_int_t v2;
	json_t	  *j;

	(void)state;
	for (round = 0; round < 10; round++) {
		for (o = 0; o < 4; o++) {
			snprintf(key, sizeof(key), "mix:%d:%d", round, o);
			snprintf(req, sizeof(req),
			    "{\"op\":\"set\",\"key\":\"%s\",\"value\":1,"
			    "\"durability\":\"%s\"}\n"
			    "{\"op\":\"set\",\"key\":\"%s\",\"value\":2,"
			    "\"durability\":\"%s\"}\n"
			    "{\"op\":\"get\",\"key\":\"%s\"}\n",
			    key, orders[o][0], key, orders[o][1], key);
			assert_int_equal(raw_sends(fd, req), 0);
			line = raw_readline(fd, 10000);
			j = parse_answer(line);
			free(line);
			assert_ok(j);
			json_decref(j);
			line = raw_readline(fd, 10000);
			j = parse_answer(line);
			free(line);
			assert_ok(j);
			v2 = int_of(j, "version");
			json_decref(j);
			line = raw_readline(fd, 10000);
			j = parse_answer(line);
			free(line);
			assert_ok(j);
			if (int_of(j, "value") != 2)
				fail_msg("%s then %s: get saw %lld",
				    orders[o][0], orders[o][1],
				    (long long)int_of(j, "value"));
			assert_int_equal(int_of(j, "version"), v2);
			json_decref(j);
		}
		/* And a set then a del, each way. */
		snprintf(req, sizeof(req),
		    "{\"op\":\"set\",\"key\":\"mixd:%d\",\"value\":1,"
		    "\"durability\":\"%s\"}\n"
		    "{\"op\":\"del\",\"key\":\"mixd:%d\",\"durability\":"
		    "\"%s\"}\n"
		    "{\"op\":\"get\",\"key\":\"mixd:%d\"}\n",
		    round, round % 2 ? "commit" : "journal", round,
		    round % 2 ? "journal" : "commit", round);
		assert_int_equal(raw_sends(fd, req), 0);
		line = raw_readline(fd, 10000);
		j = parse_answer(line);
		free(line);
		assert_ok(j);
		json_decref(j);
		line = raw_readline(fd, 10000);
		j = parse_answer(line);
		free(line);
		assert_ok(j);
		assert_true(json_is_true(json_object_get(j, "deleted")));
		json_decref(j);
		line = raw_readline(fd, 10000);
		j = parse_answer(line);
		free(line);
		assert_error(j, "not_found");
		json_decref(j);
	}
	/* Once applied, SQLite holds the newer values too. */
	sync_on(fd);
	assert_int_equal(query_int(fd, "SELECT count(*) FROM stash_kv WHERE "
				       "key LIKE 'mix:%' AND value = '2'"),
	    40);
	assert_int_equal(query_int(fd, "SELECT count(*) FROM stash_kv WHERE "
				       "key LIKE 'mix:%'"),
	    40);
	assert_int_equal(query_int(fd, "SELECT count(*) FROM stash_kv WHERE "
				       "key LIKE 'mixd:%'"),
	    0);
	for (round = 0; round < 10; round++) {
		snprintf(key, sizeof(key), "mix:%d:1", round);
		assert_get(fd, key, "2", 0);
	}
	close(fd);
}

/* stats: the write path's sections, and counters that move. */
static void
test_stats_sections(void **state)
{
	static const char *fields[][2] = {
	    {"groups", "count"},
	    {"groups", "ops"},
	    {"groups", "mean_size"},
	    {"groups", "max_size"},
	    {"write_queue", "journal_ops"},
	    {"write_queue", "journal_bytes"},
	    {"write_queue", "apply_backlog"},
	    {"write_queue", "unapplied_bytes"},
	    {"write_queue", "limit_bytes"},
	    {"write_queue", "applied_seq"},
	    {"write_queue", "apply_errors"},
	    {"journal", "segments"},
	    {"journal", "bytes"},
	    {"journal", "fsyncs"},
	    {"journal", "fsync_us_mean"},
	    {"journal", "fsync_us_max"},
	    {"sqlite", "commits"},
	    {"sqlite", "rollbacks"},
	    {"sqlite", "busy_retries"},
	    {"sqlite", "checkpoints"},
	    {"writes", "received"},
	    {"writes", "acknowledged"},
	};
	int	  fd = connect_shared();
	long long ack0, ack1, rcv0, rcv1, groups0, groups1, commits0, commits1;
	json_t	 *j;
	size_t	  i;

	(void)state;
	j = stats_of(shared.sock);
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		(void)stat_num(j, fields[i][0], fields[i][1]);
	ack0 = stat_int(j, "writes", "acknowledged");
	rcv0 = stat_int(j, "writes", "received");
	groups0 = stat_int(j, "groups", "count");
	commits0 = stat_int(j, "sqlite", "commits");
	assert_true(stat_int(j, "journal", "segments") >= 1);
	json_decref(j);

	set_dur(fd, "st:1", "1", "journal");
	set_dur(fd, "st:2", "1", "commit");
	set_dur(fd, "st:3", "1", "async");
	sync_on(fd);

	j = stats_of(shared.sock);
	ack1 = stat_int(j, "writes", "acknowledged");
	rcv1 = stat_int(j, "writes", "received");
	groups1 = stat_int(j, "groups", "count");
	commits1 = stat_int(j, "sqlite", "commits");
	assert_true(ack1 >= ack0 + 3);
	assert_true(rcv1 >= rcv0 + 3);
	assert_true(groups1 > groups0);
	assert_true(commits1 > commits0);
	assert_true(stat_int(j, "journal", "fsyncs") >= 1);
	assert_true(stat_int(j, "journal", "bytes") > 0);
	assert_true(stat_int(j, "write_queue", "applied_seq") >=
		    stat_int(j, "writes", "last_seq"));
	assert_true(stat_int(j, "groups", "max_size") >= 1);
	json_decref(j);
	close(fd);
}

/*
 * --max-memory 1MB, 5,000 values of 1 KB: most are evicted, and each one
 * comes back from SQLite.
 */
static void
test_cache_miss_from_sqlite(void **state)
{
	static const char *args[] = {"--max-memory", "1MB", NULL};
	struct daemon_proc d;
	struct sbuf	   b = {NULL, 0, 0};
	char		   val[1100];
	json_t		 **ans, *j;
	int		   fd, i;

	(void)state;
	assert_int_equal(daemon_start(&d, args), 0);
	fd = connect_to(&d);
	for (i = 0; i < 5000; i++) {
		big_value(val, sizeof(val), "cm", i);
		sb_printf(&b,
		    "{\"op\":\"set\",\"key\":\"cm:%d\",\"value\":"
		    "\"%s\",\"id\":%d}\n",
		    i, val, i);
	}
	ans = pipeline(fd, b.p, b.len, 5000, NULL, NULL);
	for (i = 0; i < 5000; i++) {
		assert_ok(ans[i]);
		assert_int_equal(int_of(ans[i], "id"), i);
	}
	answers_free(ans, 5000);
	b.len = 0;
	for (i = 0; i < 5000; i++)
		sb_printf(
		    &b, "{\"op\":\"get\",\"key\":\"cm:%d\",\"id\":%d}\n", i, i);
	ans = pipeline(fd, b.p, b.len, 5000, NULL, NULL);
	for (i = 0; i < 5000; i++) {
		if (!json_is_true(json_object_get(ans[i], "ok")))
			fail_msg("get cm:%d failed", i);
		assert_int_equal(int_of(ans[i], "id"), i);
		big_value(val, sizeof(val), "cm", i);
		if (strcmp(json_string_value(json_object_get(ans[i], "value")),
			val) != 0)
			fail_msg("get cm:%d: wrong value", i);
	}
	answers_free(ans, 5000);
	sb_free(&b);
	j = stats_of(d.sock);
	assert_true(stat_int(j, "cache", "evictions") > 0);
	assert_true(stat_int(j, "cache", "misses") > 0);
	assert_true(stat_int(j, "cache", "bytes") <= 1024 * 1024);
	json_decref(j);
	close(fd);
	assert_int_equal(daemon_stop(&d), 0);
	daemon_cleanup(&d);
}

/*
 * A client that pipelines without end: at most 4096 answers may be in
 * flight on one connection; past that its lines wait, none is lost, and
 * the answers still come in order. Another process holds SQLite's write
 * lock meanwhile, so that commit writes cannot finish and the limit is
 * surely reached.
 */
static void
test_answers_in_flight_limit(void **state)
{
	struct daemon_proc d;
	size_t		   n = 6000, i, len = 0, cap = n * 96;
	char		  *buf = malloc(cap), *line;
	sqlite3		  *db;
	json_t		  *j, *st;
	int		   fd, fd2;

	(void)state;
	assert_non_null(buf);
	assert_int_equal(daemon_start(&d, NULL), 0);
	assert_int_equal(sqlite3_open(d.db, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
	fd = raw_connect(d.sock);
	assert_true(fd >= 0);
	for (i = 0; i < n; i++)
		len += (size_t)snprintf(buf + len, cap - len,
		    "{\"op\":\"set\",\"key\":\"f:%zu\",\"value\":%zu,"
		    "\"durability\":\"commit\",\"id\":%zu}\n",
		    i, i, i);
	assert_int_equal(raw_send(fd, buf, len), 0);
	/* The writes wait for the lock: the connection is held back. */
	fd2 = raw_connect(d.sock);
	for (i = 0; i < 100; i++) {
		j = ask(fd2, "{\"op\":\"stats\"}");
		st =
		    json_object_get(json_object_get(j, "stats"), "connections");
		if (json_integer_value(json_object_get(st, "backlogged")) >= 1)
			break;
		json_decref(j);
		j = NULL;
		usleep(20 * 1000);
	}
	assert_non_null(j);
	json_decref(j);
	close(fd2);
	assert_int_equal(
	    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	for (i = 0; i < n; i++) {
		line = raw_readline(fd, 30000);
		j = parse_answer(line);
		free(line);
		assert_ok(j);
		assert_int_equal(json_integer_value(json_object_get(j, "id")),
		    (json_int_t)i);
		json_decref(j);
	}
	close(fd);
	free(buf);
	assert_int_equal(daemon_stop(&d), 0);
	daemon_cleanup(&d);
}

int
main(void)
{
	const struct CMUnitTest shared_tests[] = {
	    cmocka_unit_test(test_exec_param_types),
	    cmocka_unit_test(test_exec_param_errors),
	    cmocka_unit_test(test_exec_results),
	    cmocka_unit_test(test_constraint_tables),
	    cmocka_unit_test(test_tx),
	    cmocka_unit_test(test_bad_statement_alone),
	    cmocka_unit_test(test_query),
	    cmocka_unit_test(test_authorizer),
	    cmocka_unit_test(test_read_your_writes),
	    cmocka_unit_test(test_read_your_writes_exec_commit),
	    cmocka_unit_test(test_read_your_writes_exec_journal),
	    cmocka_unit_test(test_read_your_writes_exec_async),
	    cmocka_unit_test(test_read_before_write),
	    cmocka_unit_test(test_read_before_write_busy),
	    cmocka_unit_test(test_refusal_code),
	    cmocka_unit_test(test_sync),
	    cmocka_unit_test(test_apply_delay),
	    cmocka_unit_test(test_coalesced_writes),
	    cmocka_unit_test(test_coalesced_keys_alike),
	    cmocka_unit_test(test_write_pool_drains),
	    cmocka_unit_test(test_expired_before_applied),
	    cmocka_unit_test(test_mixed_durability),
	    cmocka_unit_test(test_stats_sections),
	};
	const struct CMUnitTest own_tests[] = {
	    cmocka_unit_test(test_query_limits),
	    cmocka_unit_test(test_query_timeout),
	    cmocka_unit_test(test_sql_off),
	    cmocka_unit_test(test_persist_sigterm),
	    cmocka_unit_test(test_persist_sigkill),
	    cmocka_unit_test(test_async_alone_journaled),
	    cmocka_unit_test(test_pins_released_when_applied),
	    cmocka_unit_test(test_cas_del_after_restart),
	    cmocka_unit_test(test_group_commit),
	    cmocka_unit_test(test_sqlite_busy),
	    cmocka_unit_test(test_backpressure),
	    cmocka_unit_test(test_cache_miss_from_sqlite),
	    cmocka_unit_test(test_answers_in_flight_limit),
	};
	int failed;

	signal(SIGPIPE, SIG_IGN);
	failed = cmocka_run_group_tests_name(
	    "durable", shared_tests, group_setup, group_teardown);
	failed += cmocka_run_group_tests_name(
	    "durable-options", own_tests, NULL, NULL);
	sqlite3_shutdown();
	return failed;
}

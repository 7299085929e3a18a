/*
 * test_server.c -- integration tests: a private stashd on a private socket,
 * driven as a client would, over raw sockets and through libstash.
 */
#include "config.h"

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
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
#include "daemon/server.h"
#include "harness.h"

/* The shared daemon of the tests that need no special options. */
static struct daemon_proc shared;

static int
connect_shared(void)
{
	int fd = raw_connect(shared.sock);

	assert_true(fd >= 0);
	return fd;
}

static int
group_setup(void **state)
{
	return daemon_start(&shared, NULL);
}

static int
group_teardown(void **state)
{
	int rc = daemon_stop(&shared);

	daemon_cleanup(&shared);
	return rc == 0 ? 0 : -1;
}

static void
test_ping_and_id(void **state)
{
	int	fd = connect_shared();
	json_t *j;

	j = ask(fd, "{\"op\":\"ping\"}");
	assert_ok(j);
	assert_null(json_object_get(j, "id"));
	json_decref(j);

	j = ask(fd, "{\"op\":\"ping\",\"id\":42}");
	assert_ok(j);
	assert_int_equal(json_integer_value(json_object_get(j, "id")), 42);
	json_decref(j);

	j = ask(fd, "{\"id\":\"abc\",\"op\":\"ping\"}");
	assert_string_equal(json_string_value(json_object_get(j, "id")), "abc");
	json_decref(j);

	/* An error echoes the id too. */
	j = ask(fd, "{\"id\":7,\"op\":\"nope\"}");
	assert_error(j, "bad_request");
	assert_int_equal(json_integer_value(json_object_get(j, "id")), 7);
	json_decref(j);
	close(fd);
}

static void
test_set_get_del(void **state)
{
	int	   fd = connect_shared();
	json_int_t v1, v2;
	json_t	  *j, *val;

	j = ask(fd, "{\"op\":\"set\",\"key\":\"t:a\",\"value\":{\"x\": [1, 2, "
		    "\"three\"]}}");
	assert_ok(j);
	v1 = json_integer_value(json_object_get(j, "version"));
	assert_true(v1 > 0);
	json_decref(j);

	j = ask(fd, "{\"op\":\"get\",\"key\":\"t:a\"}");
	assert_ok(j);
	val = json_object_get(j, "value");
	assert_true(json_is_object(val));
	assert_int_equal(json_array_size(json_object_get(val, "x")), 3);
	assert_int_equal(json_integer_value(json_object_get(j, "version")), v1);
	json_decref(j);

	/* The value is stored compact. */
	{
		char *line =
		    raw_roundtrip(fd, "{\"op\":\"get\",\"key\":\"t:a\"}");

		assert_non_null(
		    strstr(line, "\"value\":{\"x\":[1,2,\"three\"]}"));
		free(line);
	}

	/* Overwrite: the version grows. */
	j = ask(fd, "{\"op\":\"set\",\"key\":\"t:a\",\"value\":\"s\"}");
	v2 = json_integer_value(json_object_get(j, "version"));
	assert_true(v2 > v1);
	json_decref(j);

	j = ask(fd, "{\"op\":\"del\",\"key\":\"t:a\"}");
	assert_ok(j);
	assert_true(json_is_true(json_object_get(j, "deleted")));
	json_decref(j);
	j = ask(fd, "{\"op\":\"del\",\"key\":\"t:a\"}");
	assert_ok(j);
	assert_true(json_is_false(json_object_get(j, "deleted")));
	json_decref(j);
	ask_error(fd, "{\"op\":\"get\",\"key\":\"t:a\"}", "not_found");
	close(fd);
}

static void
test_every_value_type(void **state)
{
	static const char *values[] = {"null", "true", "false", "0", "-1.5e3",
	    "\"\"", "\"h\\u00e9\\n\"", "[]", "{}", "[[[]]]",
	    "{\"a\":{\"b\":null}}", "12345678901234567890"};
	char		   req[256], *line, *p;
	size_t		   i;
	int		   fd = connect_shared();
	json_t		  *j;

	for (i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		snprintf(req, sizeof(req),
		    "{\"op\":\"set\",\"key\":\"t:v%zu\","
		    "\"value\":%s}",
		    i, values[i]);
		j = ask(fd, req);
		assert_ok(j);
		json_decref(j);
		snprintf(
		    req, sizeof(req), "{\"op\":\"get\",\"key\":\"t:v%zu\"}", i);
		line = raw_roundtrip(fd, req);
		assert_non_null(line);
		p = strstr(line, "\"value\":");
		assert_non_null(p);
		/* The value comes back byte for byte. */
		assert_memory_equal(p + 8, values[i], strlen(values[i]));
		assert_true(p[8 + strlen(values[i])] == ',');
		free(line);
	}
	close(fd);
}

static void
test_mget(void **state)
{
	int	fd = connect_shared();
	json_t *j, *vals;

	j = ask(fd, "{\"op\":\"set\",\"key\":\"m:1\",\"value\":1}");
	json_decref(j);
	j = ask(fd, "{\"op\":\"set\",\"key\":\"m:3\",\"value\":[3]}");
	json_decref(j);
	j = ask(fd, "{\"op\":\"mget\",\"keys\":[\"m:1\",\"m:2\",\"m:3\"]}");
	assert_ok(j);
	vals = json_object_get(j, "values");
	assert_int_equal(json_array_size(vals), 3);
	assert_int_equal(json_integer_value(json_array_get(vals, 0)), 1);
	assert_true(json_is_null(json_array_get(vals, 1)));
	assert_true(json_is_array(json_array_get(vals, 2)));
	json_decref(j);

	j = ask(fd, "{\"op\":\"mget\",\"keys\":[]}");
	assert_ok(j);
	assert_int_equal(json_array_size(json_object_get(j, "values")), 0);
	json_decref(j);
	ask_error(fd, "{\"op\":\"mget\",\"keys\":[1]}", "bad_request");
	ask_error(fd, "{\"op\":\"mget\",\"keys\":\"m:1\"}", "bad_request");
	close(fd);
}

static void
test_if_version(void **state)
{
	int	   fd = connect_shared();
	char	   req[256];
	json_int_t v;
	json_t	  *j;

	/* 0: must not exist. */
	j = ask(fd, "{\"op\":\"set\",\"key\":\"cas\",\"value\":1,"
		    "\"if_version\":0}");
	assert_ok(j);
	v = json_integer_value(json_object_get(j, "version"));
	json_decref(j);
	ask_error(fd,
	    "{\"op\":\"set\",\"key\":\"cas\",\"value\":2,"
	    "\"if_version\":0}",
	    "conflict");

	snprintf(req, sizeof(req),
	    "{\"op\":\"set\",\"key\":\"cas\","
	    "\"value\":2,\"if_version\":%lld}",
	    (long long)v + 1000);
	ask_error(fd, req, "conflict");

	snprintf(req, sizeof(req),
	    "{\"op\":\"set\",\"key\":\"cas\","
	    "\"value\":2,\"if_version\":%lld}",
	    (long long)v);
	j = ask(fd, req);
	assert_ok(j);
	json_decref(j);
	/* The same version again now conflicts: it moved on. */
	ask_error(fd, req, "conflict");

	j = ask(fd, "{\"op\":\"get\",\"key\":\"cas\"}");
	assert_int_equal(json_integer_value(json_object_get(j, "value")), 2);
	json_decref(j);
	close(fd);
}

static void
test_ttl(void **state)
{
	int	fd = connect_shared();
	json_t *j;

	j = ask(fd, "{\"op\":\"set\",\"key\":\"ttl:1\",\"value\":1,\"ttl\":1}");
	assert_ok(j);
	json_decref(j);
	j = ask(fd, "{\"op\":\"set\",\"key\":\"ttl:long\",\"value\":1,"
		    "\"ttl\":3600}");
	json_decref(j);
	j = ask(fd, "{\"op\":\"get\",\"key\":\"ttl:1\"}");
	assert_ok(j);
	json_decref(j);
	/* Whole seconds on a monotonic clock: gone within 2 s. */
	usleep(2100 * 1000);
	ask_error(fd, "{\"op\":\"get\",\"key\":\"ttl:1\"}", "not_found");
	j = ask(fd, "{\"op\":\"get\",\"key\":\"ttl:long\"}");
	assert_ok(j);
	json_decref(j);
	ask_error(fd, "{\"op\":\"set\",\"key\":\"x\",\"value\":1,\"ttl\":0}",
	    "bad_request");
	ask_error(fd, "{\"op\":\"set\",\"key\":\"x\",\"value\":1,\"ttl\":1.5}",
	    "bad_request");
	close(fd);
}

static void
test_durability_validated(void **state)
{
	int	fd = connect_shared();
	json_t *j;

	j = ask(fd, "{\"op\":\"set\",\"key\":\"d\",\"value\":1,"
		    "\"durability\":\"async\"}");
	assert_ok(j);
	json_decref(j);
	j = ask(fd, "{\"op\":\"del\",\"key\":\"d\",\"durability\":\"commit\"}");
	assert_ok(j);
	json_decref(j);
	ask_error(fd,
	    "{\"op\":\"set\",\"key\":\"d\",\"value\":1,"
	    "\"durability\":\"fast\"}",
	    "bad_request");
	close(fd);
}

static void
test_sync_and_stats(void **state)
{
	int	fd = connect_shared();
	json_t *j, *st;

	j = ask(fd, "{\"op\":\"set\",\"key\":\"s\",\"value\":1}");
	json_decref(j);
	j = ask(fd, "{\"op\":\"sync\"}");
	assert_ok(j);
	assert_true(json_integer_value(json_object_get(j, "applied_seq")) > 0);
	json_decref(j);

	j = ask(fd, "{\"op\":\"stats\"}");
	assert_ok(j);
	st = json_object_get(j, "stats");
	assert_true(json_is_object(st));
	assert_true(json_integer_value(json_object_get(
			json_object_get(st, "connections"), "current")) >= 1);
	assert_true(json_integer_value(json_object_get(
			json_object_get(st, "cache"), "entries")) >= 1);
	assert_true(json_integer_value(json_object_get(
			json_object_get(st, "cache"), "limit")) > 0);
	assert_true(json_integer_value(json_object_get(
			json_object_get(st, "process"), "rss_bytes")) > 0);
	assert_true(json_integer_value(json_object_get(
			json_object_get(st, "writes"), "acknowledged")) >= 1);
	json_decref(j);
	close(fd);
}

/* Read the next answer on fd: it must be ok, for request id. */
static json_t *
next_answer(int fd, json_int_t id)
{
	char   *line = raw_readline(fd, 10000);
	json_t *j = parse_answer(line);

	free(line);
	assert_ok(j);
	assert_int_equal(json_integer_value(json_object_get(j, "id")), id);
	return j;
}

/* 1,000 requests in one write; the answers come back in order. */
static void
test_pipeline_1000(void **state)
{
	int	fd = connect_shared();
	size_t	cap = 1000 * 80, len = 0;
	char   *buf = malloc(cap);
	json_t *j;
	int	i;

	assert_non_null(buf);
	for (i = 0; i < 1000; i++) {
		if (i % 2 == 0)
			len += (size_t)snprintf(buf + len, cap - len,
			    "{\"op\":\"set\",\"key\":\"p:%d\",\"value\":%d,"
			    "\"id\":%d}\n",
			    i, i, i);
		else
			len += (size_t)snprintf(buf + len, cap - len,
			    "{\"op\":\"get\",\"key\":\"p:%d\",\"id\":%d}\n",
			    i - 1, i);
	}
	assert_int_equal(raw_send(fd, buf, len), 0);
	for (i = 0; i < 1000; i++) {
		j = next_answer(fd, i);
		if (i % 2 == 1)
			assert_int_equal(
			    json_integer_value(json_object_get(j, "value")),
			    i - 1);
		json_decref(j);
	}
	free(buf);
	close(fd);
}

/*
 * A read waits for the write before it; the acknowledgement that lets it
 * go on must not let the answers after it overtake the write's own.
 */
static void
test_pipeline_async_after_wait(void **state)
{
	int	fd = connect_shared();
	size_t	cap = 300 * 100, len = 0;
	char   *buf = malloc(cap);
	json_t *j;
	int	i;

	assert_non_null(buf);
	for (i = 0; i < 300; i += 3)
		len += (size_t)snprintf(buf + len, cap - len,
		    "{\"op\":\"set\",\"key\":\"w:%d\",\"value\":1,"
		    "\"id\":%d}\n"
		    "{\"op\":\"get\",\"key\":\"w:%d\",\"id\":%d}\n"
		    "{\"op\":\"set\",\"key\":\"v:%d\",\"value\":2,"
		    "\"durability\":\"async\",\"id\":%d}\n",
		    i, i, i, i + 1, i, i + 2);
	assert_int_equal(raw_send(fd, buf, len), 0);
	for (i = 0; i < 300; i++) {
		j = next_answer(fd, i);
		json_decref(j);
	}
	free(buf);
	close(fd);
}

/*
 * A del that must look its key up first, then a get and an async set
 * pipelined behind it: the answers come in request order, each with its
 * own content (the set is answered when the del's acknowledgement lets
 * the connection go on, while the del's answer is being sent).
 */
static void
test_pipeline_order_after_lookup(void **state)
{
	int	fd = connect_shared();
	char	req[512];
	json_t *j;
	int	i, k;

	j = ask(fd, "{\"op\":\"set\",\"key\":\"ord:hit\",\"value\":1}");
	assert_ok(j);
	json_decref(j);
	for (i = 0; i < 50; i++) {
		snprintf(req, sizeof(req),
		    "{\"op\":\"del\",\"key\":\"ord:absent:%d\","
		    "\"durability\":\"async\",\"id\":1}\n"
		    "{\"op\":\"get\",\"key\":\"ord:hit\",\"id\":2}\n"
		    "{\"op\":\"set\",\"key\":\"ord:%d\",\"value\":3,"
		    "\"durability\":\"async\",\"id\":3}\n",
		    i, i);
		assert_int_equal(raw_sends(fd, req), 0);
		for (k = 1; k <= 3; k++) {
			j = next_answer(fd, k);
			if (k == 1)
				assert_true(json_is_false(
				    json_object_get(j, "deleted")));
			if (k == 2)
				assert_int_equal(
				    json_integer_value(
					json_object_get(j, "value")),
				    1);
			if (k == 3)
				assert_true(json_is_integer(
				    json_object_get(j, "version")));
			json_decref(j);
		}
	}
	close(fd);
}

/*
 * The same pipeline (a del that looks its key up, a read that waits for
 * it, an async set): the del must reach the writer before the set, which
 * has the next sequence number, so that what SQLite records as applied
 * is the last write. A sync then answers, and the applied_seq in
 * stash_meta is the last write's.
 */
static void
test_writes_reach_the_writer_in_order(void **state)
{
	int	  fd = connect_shared();
	char	  req[512], *line;
	json_t	 *j;
	int	  i, k;
	long long last = 0;

	j = ask(fd, "{\"op\":\"set\",\"key\":\"seq:hit\",\"value\":1}");
	assert_ok(j);
	json_decref(j);
	for (i = 0; i < 20; i++) {
		snprintf(req, sizeof(req),
		    "{\"op\":\"del\",\"key\":\"seq:absent:%d\","
		    "\"durability\":\"async\"}\n"
		    "{\"op\":\"get\",\"key\":\"seq:hit\"}\n"
		    "{\"op\":\"set\",\"key\":\"seq:%d\",\"value\":3,"
		    "\"durability\":\"async\"}\n",
		    i, i);
		assert_int_equal(raw_sends(fd, req), 0);
		for (k = 1; k <= 3; k++) {
			line = raw_readline(fd, 10000);
			j = parse_answer(line);
			free(line);
			assert_ok(j);
			if (k == 3)
				last = json_integer_value(
				    json_object_get(j, "version"));
			json_decref(j);
		}
		/* Answered once the last write is applied, not never. */
		line = raw_roundtrip(fd, "{\"op\":\"sync\"}");
		assert_non_null(line);
		j = parse_answer(line);
		free(line);
		assert_ok(j);
		json_decref(j);
		j = ask(fd, "{\"op\":\"query\",\"sql\":\"SELECT value FROM "
			    "stash_meta WHERE name = 'applied_seq'\"}");
		assert_ok(j);
		assert_true(json_integer_value(json_array_get(
				json_array_get(json_object_get(j, "rows"), 0),
				0)) >= last);
		json_decref(j);
	}
	close(fd);
}

/*
 * A del of a key the cache does not know is decided after a lookup; a
 * set sent after it on the connection must still come after it.
 */
static void
test_pipeline_del_then_set(void **state)
{
	int	fd = connect_shared();
	char	buf[512];
	json_t *j;
	int	i;

	snprintf(buf, sizeof(buf), "%s",
	    "{\"op\":\"del\",\"key\":\"ds:never\",\"id\":1}\n"
	    "{\"op\":\"set\",\"key\":\"ds:never\",\"value\":2,\"id\":2}\n"
	    "{\"op\":\"get\",\"key\":\"ds:never\",\"id\":3}\n");
	assert_int_equal(raw_sends(fd, buf), 0);
	for (i = 1; i <= 3; i++) {
		j = next_answer(fd, i);
		if (i == 1)
			assert_true(
			    json_is_false(json_object_get(j, "deleted")));
		if (i == 3)
			assert_int_equal(
			    json_integer_value(json_object_get(j, "value")), 2);
		json_decref(j);
	}
	close(fd);
}

static void
test_bad_requests_keep_connection(void **state)
{
	static const char *bad[] = {
	    "not json",
	    "{",
	    "{\"op\":\"get\"",
	    "[1,2]",
	    "\"just a string\"",
	    "",
	    "{}",
	    "{\"op\":1}",
	    "{\"op\":\"launch\"}",
	    "{\"op\":\"get\"}",
	    "{\"op\":\"get\",\"key\":\"\"}",
	    "{\"op\":\"get\",\"key\":5}",
	    "{\"op\":\"get\",\"key\":\"a\",\"extra\":1}",
	    "{\"op\":\"get\",\"key\":\"a\",\"key\":\"b\"}",
	    "{\"op\":\"set\",\"key\":\"a\"}",
	    "{\"op\":\"set\",\"key\":\"a\",\"value\":1,\"if_version\":-1}",
	    "{\"op\":\"ping\"} trailing",
	    "{\"op\":\"get\",\"key\":\"\\ud800\"}",
	    "{\"op\":\"ping\",\"id\":[1]}",
	};
	int	fd = connect_shared();
	size_t	i;
	json_t *j;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ask_error(fd, bad[i], "bad_request");
		/* Still usable. */
		j = ask(fd, "{\"op\":\"ping\"}");
		assert_ok(j);
		json_decref(j);
	}
	close(fd);
}

static void
test_invalid_utf8(void **state)
{
	int	fd = connect_shared();
	json_t *j;

	/* Raw invalid bytes inside a key and inside a value. */
	ask_error(fd, "{\"op\":\"get\",\"key\":\"a\xff\"}", "bad_request");
	ask_error(fd, "{\"op\":\"set\",\"key\":\"a\",\"value\":[\"\xc0\x80\"]}",
	    "bad_request");
	ask_error(fd,
	    "{\"op\":\"set\",\"key\":\"a\",\"value\":\"\xed\xa0\x80\"}",
	    "bad_request");
	/* Valid multi-byte UTF-8 is fine. */
	j = ask(fd, "{\"op\":\"set\",\"key\":\"\xc3\xa9t\xc3\xa9\",\"value\":"
		    "\"\xe2\x82\xac\"}");
	assert_ok(j);
	json_decref(j);
	j = ask(fd, "{\"op\":\"get\",\"key\":\"\\u00e9t\\u00e9\"}");
	assert_ok(j);
	assert_string_equal(
	    json_string_value(json_object_get(j, "value")), "\xe2\x82\xac");
	json_decref(j);
	close(fd);
}

static void
test_key_limit(void **state)
{
	char	req[2200], key[1100];
	int	fd = connect_shared();
	json_t *j;

	memset(key, 'k', 1024);
	key[1024] = '\0';
	snprintf(req, sizeof(req),
	    "{\"op\":\"set\",\"key\":\"%s\",\"value\":1}", key);
	j = ask(fd, req);
	assert_ok(j);
	json_decref(j);
	key[1024] = 'k';
	key[1025] = '\0';
	snprintf(req, sizeof(req),
	    "{\"op\":\"set\",\"key\":\"%s\",\"value\":1}", key);
	ask_error(fd, req, "bad_request");
	close(fd);
}

static void
test_deep_nesting(void **state)
{
	size_t	n = 100000, i, len = 0;
	char   *req = malloc(n * 2 + 100);
	json_t *j;
	int	fd = connect_shared();

	assert_non_null(req);
	len +=
	    (size_t)sprintf(req, "{\"op\":\"set\",\"key\":\"deep\",\"value\":");
	for (i = 0; i < n; i++)
		req[len++] = '[';
	for (i = 0; i < n; i++)
		req[len++] = ']';
	req[len++] = '}';
	req[len] = '\0';
	ask_error(fd, req, "bad_request");
	free(req);
	j = ask(fd, "{\"op\":\"ping\"}");
	assert_ok(j);
	json_decref(j);
	close(fd);
}

/* A line over the limit: too_large, then the connection closes. */
static void
test_line_too_large(void **state)
{
	size_t	n = 1024 * 1024 + 10;
	char   *big = malloc(n + 1);
	char   *line;
	json_t *j;
	int	fd = connect_shared(), fd2;

	assert_non_null(big);
	memset(big, ' ', n);
	big[n] = '\n';
	/* The daemon may close before taking every byte: ignore EPIPE. */
	(void)raw_send(fd, big, n + 1);
	line = raw_readline(fd, 10000);
	j = parse_answer(line);
	free(line);
	assert_error(j, "too_large");
	json_decref(j);
	assert_true(raw_closed(fd, 5000));
	close(fd);

	/* Also without a newline at all. */
	fd2 = connect_shared();
	(void)raw_send(fd2, big, n);
	line = raw_readline(fd2, 10000);
	j = parse_answer(line);
	free(line);
	assert_error(j, "too_large");
	json_decref(j);
	assert_true(raw_closed(fd2, 5000));
	close(fd2);
	free(big);

	/* The daemon is fine. */
	fd = connect_shared();
	j = ask(fd, "{\"op\":\"ping\"}");
	assert_ok(j);
	json_decref(j);
	close(fd);
}

/* A line of exactly the limit is accepted (with --max-line 4096). */
static void
test_line_limit_exact(void **state)
{
	static const char *args[] = {"--max-line", "4096", NULL};
	struct daemon_proc d;
	char		   req[4200], *line;
	size_t		   pre, i;
	json_t		  *j;
	int		   fd;

	assert_int_equal(daemon_start(&d, args), 0);
	fd = raw_connect(d.sock);
	pre = (size_t)snprintf(
	    req, sizeof(req), "{\"op\":\"set\",\"key\":\"x\",\"value\":\"");
	for (i = pre; i < 4096 - 2; i++)
		req[i] = 'v';
	memcpy(req + 4094, "\"}", 2);
	req[4096] = '\0';
	j = ask(fd, req);
	assert_ok(j);
	json_decref(j);

	/* One byte more: too_large and closed. */
	memcpy(req + 4094, "v\"}", 3);
	req[4097] = '\0';
	line = raw_roundtrip(fd, req);
	j = parse_answer(line);
	free(line);
	assert_error(j, "too_large");
	json_decref(j);
	assert_true(raw_closed(fd, 5000));
	close(fd);
	assert_int_equal(daemon_stop(&d), 0);
	daemon_cleanup(&d);
}

static void
test_mget_limit(void **state)
{
	static const char *args[] = {"--mget-max", "3", NULL};
	struct daemon_proc d;
	json_t		  *j;
	int		   fd;

	assert_int_equal(daemon_start(&d, args), 0);
	fd = raw_connect(d.sock);
	j = ask(fd, "{\"op\":\"mget\",\"keys\":[\"a\",\"b\",\"c\"]}");
	assert_ok(j);
	json_decref(j);
	ask_error(fd, "{\"op\":\"mget\",\"keys\":[\"a\",\"b\",\"c\",\"d\"]}",
	    "too_large");
	/* The connection stays. */
	j = ask(fd, "{\"op\":\"ping\"}");
	assert_ok(j);
	json_decref(j);
	close(fd);
	assert_int_equal(daemon_stop(&d), 0);
	daemon_cleanup(&d);
}

/* A partial line, then the client goes away: nothing breaks. */
static void
test_partial_line_disconnect(void **state)
{
	int	fd = connect_shared();
	json_t *j;

	assert_int_equal(
	    raw_sends(fd, "{\"op\":\"set\",\"key\":\"partial\","
			  "\"value\":1}\n{\"op\":\"set\",\"key\":\"par"),
	    0);
	free(raw_readline(fd, 5000));
	close(fd);

	fd = connect_shared();
	j = ask(fd, "{\"op\":\"get\",\"key\":\"partial\"}");
	assert_ok(j);
	json_decref(j);
	close(fd);
}

/* The answers of complete lines still arrive after the client's EOF. */
static void
test_half_close(void **state)
{
	int   fd = connect_shared();
	char *line;

	assert_int_equal(
	    raw_sends(fd, "{\"op\":\"ping\",\"id\":1}\n"
			  "{\"op\":\"ping\",\"id\":2}\n{\"op\":\"pi"),
	    0);
	assert_int_equal(shutdown(fd, SHUT_WR), 0);
	line = raw_readline(fd, 5000);
	assert_non_null(strstr(line, "\"id\":1"));
	free(line);
	line = raw_readline(fd, 5000);
	assert_non_null(strstr(line, "\"id\":2"));
	free(line);
	assert_true(raw_closed(fd, 5000));
	close(fd);
}

/* Raise our own descriptor limit for tests with many connections. */
static void
raise_nofile(rlim_t want)
{
	struct rlimit rl;

	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < want) {
		rl.rlim_cur = want;
		if (rl.rlim_max < want)
			rl.rlim_max = want;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			skip();
	}
}

static void
test_1000_connections(void **state)
{
	int   fds[1000], i;
	char *line;

	raise_nofile(4096);
	for (i = 0; i < 1000; i++) {
		fds[i] = raw_connect(shared.sock);
		assert_true(fds[i] >= 0);
	}
	for (i = 0; i < 1000; i++)
		assert_int_equal(
		    raw_sends(fds[i], "{\"op\":\"ping\",\"id\":1}\n"), 0);
	for (i = 0; i < 1000; i++) {
		line = raw_readline(fds[i], 10000);
		assert_non_null(line);
		assert_non_null(strstr(line, "\"ok\":true"));
		free(line);
	}
	for (i = 0; i < 1000; i++)
		close(fds[i]);
}

static void
test_max_connections(void **state)
{
	static const char *args[] = {"--max-connections", "5", NULL};
	struct daemon_proc d;
	int		   fds[5], fd, i;
	char		  *line;
	json_t		  *j;

	assert_int_equal(daemon_start(&d, args), 0);
	/* The start probe's connection may still be counted: settle. */
	usleep(100 * 1000);
	for (i = 0; i < 5; i++) {
		fds[i] = raw_connect(d.sock);
		j = ask(fds[i], "{\"op\":\"ping\"}");
		assert_ok(j);
		json_decref(j);
	}
	fd = raw_connect(d.sock);
	assert_true(fd >= 0);
	line = raw_readline(fd, 5000);
	j = parse_answer(line);
	free(line);
	assert_error(j, "busy");
	json_decref(j);
	assert_true(raw_closed(fd, 5000));
	close(fd);
	/* One leaves, another gets in. */
	close(fds[0]);
	usleep(100 * 1000);
	fds[0] = raw_connect(d.sock);
	j = ask(fds[0], "{\"op\":\"ping\"}");
	assert_ok(j);
	json_decref(j);
	for (i = 0; i < 5; i++)
		close(fds[i]);
	assert_int_equal(daemon_stop(&d), 0);
	daemon_cleanup(&d);
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
	return j;
}

/* Descriptors the process pid has open, from /proc/PID/fd. */
static int
fds_of(pid_t pid)
{
	char	       path[64];
	DIR	      *dir;
	struct dirent *e;
	int	       n = 0;

	snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
	assert_non_null(dir = opendir(path));
	while ((e = readdir(dir)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

/*
 * The one line a refused client reads (without its \n), after sending
 * first (NULL: nothing) and, after delay_ms, then; the connection must
 * close after it.
 */
static char *
refused_line(
    const char *sock, const char *first, int delay_ms, const char *then)
{
	int   fd = raw_connect(sock);
	char *line;

	assert_true(fd >= 0);
	if (first != NULL)
		assert_int_equal(raw_sends(fd, first), 0);
	if (delay_ms > 0)
		usleep((useconds_t)delay_ms * 1000);
	/* It may fail: a client refused at once is closed already. */
	if (then != NULL)
		(void)raw_sends(fd, then);
	line = raw_readline(fd, 5000);
	assert_non_null(line);
	assert_true(raw_closed(fd, 5000));
	close(fd);
	return line;
}

/* Refused as a Redis client: Redis's own error line. */
static void
assert_refused_resp(
    const char *sock, const char *first, int delay_ms, const char *then)
{
	char *line = refused_line(sock, first, delay_ms, then);

	if (strcmp(line, "-ERR max number of clients reached\r") != 0)
		fail_msg("%s%s: refused with \"%s\"", first ? first : "",
		    then ? then : "", line);
	free(line);
}

/* Refused as a protocol v1 client: the JSON busy error. */
static void
assert_refused_json(
    const char *sock, const char *first, int delay_ms, const char *then)
{
	char   *line = refused_line(sock, first, delay_ms, then);
	json_t *j = parse_answer(line);

	free(line);
	assert_error(j, "busy");
	json_decref(j);
}

/*
 * A client refused for --max-connections is answered in its protocol: a
 * Redis client reads Redis's "-ERR max number of clients reached",
 * whether its first bytes come with the connection, a moment later or
 * in pieces; a JSON client and a silent one read the JSON busy error, the
 * silent one after about a second. At most SERVER_REFUSED_MAX wait at
 * once: past them a client is refused at once, as protocol v1; and the
 * refused ones leave no descriptor behind.
 */
static void
test_max_connections_protocols(void **state)
{
	static const char *args[] = {"--max-connections", "2", NULL};
	enum { PEN = SERVER_REFUSED_MAX };
	struct daemon_proc d;
	int		   fds[2], pen[PEN], i, nfd;
	long long	   t0;
	char		  *line;
	json_t		  *j;

	assert_int_equal(daemon_start(&d, args), 0);
	usleep(100 * 1000);
	for (i = 0; i < 2; i++) {
		fds[i] = raw_connect(d.sock);
		j = ask(fds[i], "{\"op\":\"ping\"}");
		assert_ok(j);
		json_decref(j);
	}
	nfd = fds_of(d.pid);

	assert_refused_resp(d.sock, "*1\r\n$4\r\nPING\r\n", 0, NULL);
	assert_refused_resp(d.sock, "PING\r\n", 0, NULL);
	assert_refused_resp(d.sock, "\"ping\"\r\n", 0, NULL);
	assert_refused_resp(d.sock, NULL, 300, "*1\r\n$4\r\nPING\r\n");
	assert_refused_resp(d.sock, "pi", 300, "ng\r\n");
	assert_refused_json(d.sock, "{\"op\":\"ping\"}\n", 0, NULL);
	assert_refused_json(d.sock, "{\"op\"", 300, ":\"ping\"}\n");
	/* A word that is no command is protocol v1. */
	assert_refused_json(d.sock, "nosuch\n", 0, NULL);
	t0 = harness_now_ms();
	assert_refused_json(d.sock, NULL, 0, NULL);
	assert_true(harness_now_ms() - t0 >= 900);

	/* The pen is full: one more is answered at once, as protocol v1. */
	for (i = 0; i < PEN; i++)
		assert_true((pen[i] = raw_connect(d.sock)) >= 0);
	usleep(200 * 1000);
	t0 = harness_now_ms();
	assert_refused_json(d.sock, NULL, 0, NULL);
	assert_refused_json(d.sock, NULL, 300, "PING\r\n");
	assert_true(harness_now_ms() - t0 < 900);
	/* Those in the pen are answered when their time is up. */
	for (i = 0; i < PEN; i++) {
		line = raw_readline(pen[i], 5000);
		j = parse_answer(line);
		free(line);
		assert_error(j, "busy");
		json_decref(j);
		assert_true(raw_closed(pen[i], 5000));
		close(pen[i]);
	}
	/* And then the pen takes clients again. */
	assert_refused_resp(d.sock, NULL, 300, "PING\r\n");
	assert_int_equal(fds_of(d.pid), nfd);

	/* The connections in use were not disturbed. */
	for (i = 0; i < 2; i++) {
		j = ask(fds[i], "{\"op\":\"ping\"}");
		assert_ok(j);
		json_decref(j);
	}
	close(fds[0]);
	usleep(100 * 1000);
	j = stats_of(d.sock);
	assert_int_equal(
	    json_integer_value(json_object_get(
		json_object_get(json_object_get(j, "stats"), "connections"),
		"rejected")),
	    12 + PEN);
	json_decref(j);
	close(fds[1]);
	assert_int_equal(daemon_stop(&d), 0);
	daemon_cleanup(&d);
}

/*
 * A client that writes and never reads: it is paused, others keep being
 * served, and the daemon's memory stays bounded.
 */
static void
test_client_never_reads(void **state)
{
	static const char *args[] = {"--max-output", "256KB", NULL};
	struct daemon_proc d;
	char		  *value, *req, *line;
	size_t		   vlen = 64 * 1024, i;
	int		   hog, fd, sent = 0;
	long long	   rss_before, rss_after;
	json_t		  *j, *st;

	assert_int_equal(daemon_start(&d, args), 0);
	fd = raw_connect(d.sock);
	value = malloc(vlen + 64);
	assert_non_null(value);
	memset(value, 'x', vlen);
	req = malloc(vlen + 128);
	snprintf(req, vlen + 128,
	    "{\"op\":\"set\",\"key\":\"big\",\"value\":"
	    "\"%.*s\"}",
	    (int)vlen, value);
	j = ask(fd, req);
	assert_ok(j);
	json_decref(j);

	j = stats_of(d.sock);
	rss_before = json_integer_value(json_object_get(
	    json_object_get(json_object_get(j, "stats"), "process"),
	    "rss_bytes"));
	json_decref(j);

	/* The hog asks for the 64 KB value over and over, never reading. */
	hog = raw_connect(d.sock);
	assert_int_equal(fcntl(hog, F_SETFL, O_NONBLOCK), 0);
	for (i = 0; i < 200000; i++) {
		static const char get[] = "{\"op\":\"get\",\"key\":\"big\"}\n";

		if (send(hog, get, sizeof(get) - 1, MSG_NOSIGNAL) == -1) {
			assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
			break;
		}
		sent++;
	}
	/* The socket filled up: the daemon stopped reading from the hog. */
	assert_true(i < 200000);

	/* Others are served promptly meanwhile. */
	for (i = 0; i < 50; i++) {
		line = raw_roundtrip(fd, "{\"op\":\"ping\"}");
		assert_non_null(line);
		free(line);
	}
	j = stats_of(d.sock);
	st = json_object_get(j, "stats");
	assert_true(json_integer_value(json_object_get(
			json_object_get(st, "connections"), "paused")) >= 1);
	rss_after = json_integer_value(
	    json_object_get(json_object_get(st, "process"), "rss_bytes"));
	json_decref(j);
	/*
	 * Unbounded, the hog's answers would be sent * 64 KB (gigabytes);
	 * bounded, the daemon holds its output limit plus one line.
	 */
	assert_true(rss_after - rss_before < 32LL * 1024 * 1024);
	close(hog);
	close(fd);
	free(value);
	free(req);
	assert_int_equal(daemon_stop(&d), 0);
	daemon_cleanup(&d);
}

/* The CPU time (user and system) of process pid so far, in clock ticks. */
static long long
cpu_ticks(pid_t pid)
{
	char		   path[64], buf[1024], *p;
	unsigned long long utime, stime;
	FILE		  *f;
	size_t		   n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	assert_non_null(f = fopen(path, "r"));
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields 14 and 15, counted after the ")" that ends the name. */
	assert_non_null(p = strrchr(buf, ')'));
	assert_int_equal(sscanf(p + 2,
			     "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
			     "%llu %llu",
			     &utime, &stime),
	    2);
	return (long long)(utime + stime);
}

/* Whether this process (and so the daemon it starts) has one CPU. */
static int
one_cpu(void)
{
	cpu_set_t set;

	assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
	return CPU_COUNT(&set) == 1;
}

/* stats.GROUP.NAME of a stats answer. */
static long long
field_of(json_t *j, const char *group, const char *name)
{
	json_t *g = json_object_get(json_object_get(j, "stats"), group);

	return json_integer_value(json_object_get(g, name));
}

/* requests.polled, and the requests in all. */
static long long
polled_of(const char *sock, long long *total)
{
	json_t	 *j = stats_of(sock);
	long long v;

	v = field_of(j, "requests", "polled");
	*total = field_of(j, "requests", "total");
	json_decref(j);
	return v;
}

/*
 * n writes at durability dur on fd (or RESP SETs on a connection of their
 * own: dur "resp"), each with pings on a second connection while it waits
 * for its answer; the requests polled meanwhile (writes and pings).
 */
static long long
polled_during_writes(struct daemon_proc *d, int fd, const char *dur, int n)
{
	long long     before, after, total;
	struct pollfd pfd;
	char	      req[128], *line;
	int	      other, i, k, rfd = -1;

	if (strcmp(dur, "resp") == 0) {
		fd = rfd = raw_connect(d->sock);
		assert_true(fd >= 0);
	}
	other = raw_connect(d->sock);
	assert_true(other >= 0);
	before = polled_of(d->sock, &total);
	for (i = 0; i < n; i++) {
		if (strcmp(dur, "resp") == 0)
			/* At the default durability, journal. */
			snprintf(req, sizeof(req),
			    "*3\r\n$3\r\nSET\r\n$9\r\nresp:%04d\r\n"
			    "$1\r\n1\r\n",
			    i);
		else
			snprintf(req, sizeof(req),
			    "{\"op\":\"set\",\"key\":\"%s:%d\","
			    "\"value\":1,\"durability\":\"%s\"}\n",
			    dur, i, dur);
		assert_int_equal(raw_sends(fd, req), 0);
		/*
		 * Pings until the answer is there (at least one): requests
		 * keep coming faster than one a millisecond however long the
		 * fdatasync takes.
		 */
		pfd.fd = fd;
		pfd.events = POLLIN;
		k = 0;
		do {
			line = raw_roundtrip(other, "{\"op\":\"ping\"}");
			assert_non_null(line);
			assert_non_null(strstr(line, "\"ok\":true"));
			free(line);
		} while (++k < 10000 && poll(&pfd, 1, 0) == 0);
		line = raw_readline(fd, 10000);
		assert_non_null(line);
		if (strstr(line, "\"ok\":true") == NULL &&
		    strcmp(line, "+OK\r") != 0)
			fail_msg("answer: %s", line);
		free(line);
	}
	after = polled_of(d->sock, &total);
	close(other);
	if (rfd != -1)
		close(rfd);
	return after - before;
}

/* The last write applied to SQLite (write_queue.applied_seq). */
static long long
applied_of(const char *sock)
{
	json_t	 *j = stats_of(sock);
	long long v = field_of(j, "write_queue", "applied_seq");

	json_decref(j);
	return v;
}

/*
 * While a write's answer waits for the journal, the loop's next work is
 * the journal thread's message, due within an fdatasync: it polls, and
 * finds the other clients' requests that come meanwhile. Not while
 * writes only wait to be applied (async ones, kept unapplied here by
 * --apply-delay, after the journal ones: none of those is counted as
 * waiting once answered): the journal and apply threads need the CPUs
 * then, and the loop does not poll at all (exactly 0 polled). Should the
 * machine be so slow that the first writes are applied before the end
 * (10 s), the loop polls again, rightly, and that last check is skipped.
 */
static void
test_busy_poll_writes(void **state)
{
	static const char *args[] = {
	    "--busy-poll", "1ms", "--apply-delay", "10s", NULL};
	struct daemon_proc d;
	long long	   journal, resp, async;
	int		   fd;

	(void)state;
	assert_int_equal(daemon_start(&d, args), 0);
	fd = raw_connect(d.sock);
	assert_true(fd >= 0);
	journal = polled_during_writes(&d, fd, "journal", 100);
	resp = polled_during_writes(&d, fd, "resp", 100);
	/*
	 * A pause first: a loop that polls goes on as long as it finds
	 * work, whatever came last, so the requests that follow the last
	 * journal answer at once may still be found by polling.
	 */
	usleep(20 * 1000);
	async = polled_during_writes(&d, fd, "async", 100);
	fprintf(stderr,
	    "# busy-poll: %lld requests polled during JSON journal sets, "
	    "%lld during RESP ones, %lld during async sets\n",
	    journal, resp, async);
	if (applied_of(d.sock) == 0)
		assert_int_equal(async, 0);
	else
		fprintf(stderr, "# busy-poll: writes applied early: async "
				"not checked\n");
	if (one_cpu()) {
		assert_int_equal(journal, 0);
		assert_int_equal(resp, 0);
	} else if (getenv("STASHD_WRAPPER") == NULL) {
		assert_true(journal > 0);
		assert_true(resp > 0);
	}
	close(fd);
	assert_int_equal(daemon_stop(&d), 0);
	daemon_cleanup(&d);
}

/*
 * Busy polling: while requests come faster than one in --busy-poll, the
 * loop finds some of them by looking again instead of sleeping
 * (requests.polled); once they stop, it sleeps: an idle second costs it
 * next to no CPU, nor do requests slower than that. With --busy-poll 0 it
 * never polls, nor on a single CPU (taskset -c 0 make check). (Under valgrind,
 * round trips may be too slow to count as fast, and each costs the daemon more
 * CPU than the bound.)
 */
static void
test_busy_poll(void **state)
{
	static const char *on[] = {"--busy-poll", "1ms", NULL};
	static const char *off[] = {"--busy-poll", "0", NULL};
	const char *const *args[] = {on, off};
	struct daemon_proc d;
	long long	   polled, total, t0, ticks;
	char		  *line, req[64];
	int		   fd, i, k;

	for (k = 0; k < 2; k++) {
		assert_int_equal(daemon_start(&d, args[k]), 0);
		fd = raw_connect(d.sock);
		assert_true(fd >= 0);
		/*
		 * Lookups first (keys not cached): no polling while they are
		 * away, and polling again once they are back.
		 */
		for (i = 0; i < 20; i++) {
			snprintf(req, sizeof(req),
			    "{\"op\":\"get\",\"key\":\"absent:%d\"}", i);
			line = raw_roundtrip(fd, req);
			assert_non_null(line);
			assert_non_null(strstr(line, "\"not_found\""));
			free(line);
		}
		for (i = 0; i < 3000; i++) {
			line = raw_roundtrip(fd, "{\"op\":\"ping\"}");
			assert_non_null(line);
			assert_non_null(strstr(line, "\"ok\":true"));
			free(line);
		}
		polled = polled_of(d.sock, &total);
		assert_true(total >= 3020);
		assert_true(polled <= total);
		/* Never on one CPU: it would take the CPU from the client. */
		if (k == 1 || one_cpu())
			assert_int_equal(polled, 0);
		else if (getenv("STASHD_WRAPPER") == NULL)
			assert_true(polled > 0);
		/* Idle: it sleeps (a spinning loop would take 100%). */
		usleep(200 * 1000);
		t0 = cpu_ticks(d.pid);
		usleep(1000 * 1000);
		ticks = cpu_ticks(d.pid) - t0;
		fprintf(stderr,
		    "# busy-poll %s: %lld of %lld requests polled, "
		    "%lld ticks idle\n",
		    args[k][1], polled, total, ticks);
		assert_true(ticks * 5 <= sysconf(_SC_CLK_TCK));
		/*
		 * Slower than one a millisecond (one every 3 ms): no polling,
		 * where polling a millisecond after each would take a third of
		 * a CPU.
		 */
		t0 = cpu_ticks(d.pid);
		for (i = 0; i < 300; i++) {
			line = raw_roundtrip(fd, "{\"op\":\"ping\"}");
			assert_non_null(line);
			free(line);
			usleep(3000);
		}
		ticks = cpu_ticks(d.pid) - t0;
		fprintf(stderr,
		    "# busy-poll %s: %lld ticks for 300 slow pings\n",
		    args[k][1], ticks);
		if (getenv("STASHD_WRAPPER") == NULL)
			assert_true(ticks * 10 <= sysconf(_SC_CLK_TCK));
		close(fd);
		assert_int_equal(daemon_stop(&d), 0);
		daemon_cleanup(&d);
	}
}

/*
 * Requests pipelined far past the input limit behind reads that wait for
 * the writes before them: reading stops at the limit while the connection
 * waits, starts again as it goes on, and every request is answered, in
 * order, with its own value.
 */
static void
test_pipeline_over_input_limit(void **state)
{
	static const char *args[] = {"--max-line", "4096", NULL};
	struct daemon_proc d;
	size_t		   cap = 2000 * 64, len = 0;
	char		  *buf = malloc(cap);
	json_t		  *j;
	int		   fd, i;

	assert_non_null(buf);
	assert_int_equal(daemon_start(&d, args), 0);
	for (i = 0; i < 2000; i += 2)
		len += (size_t)snprintf(buf + len, cap - len,
		    "{\"op\":\"set\",\"key\":\"in:%d\",\"value\":%d,"
		    "\"id\":%d}\n"
		    "{\"op\":\"get\",\"key\":\"in:%d\",\"id\":%d}\n",
		    i, i, i, i, i + 1);
	assert_true(len > 16 * 4096);
	fd = raw_connect(d.sock);
	assert_int_equal(raw_send(fd, buf, len), 0);
	for (i = 0; i < 2000; i++) {
		j = next_answer(fd, i);
		if (i % 2 == 1)
			assert_int_equal(
			    json_integer_value(json_object_get(j, "value")),
			    i - 1);
		json_decref(j);
	}
	close(fd);
	free(buf);
	assert_int_equal(daemon_stop(&d), 0);
	daemon_cleanup(&d);
}

/*
 * An idle timeout set by a reload applies to the connections already
 * open, not only to new ones.
 */
static void
test_idle_timeout_reload(void **state)
{
	char		   conf[] = "/tmp/stashd-idle-conf-XXXXXX";
	const char	  *args[] = {"-c", conf, NULL};
	struct daemon_proc d;
	json_t		  *j;
	FILE		  *f;
	int		   fd, cfd;

	assert_true((cfd = mkstemp(conf)) != -1);
	assert_int_equal(close(cfd), 0);
	assert_int_equal(daemon_start(&d, args), 0);
	fd = raw_connect(d.sock);
	j = ask(fd, "{\"op\":\"ping\"}");
	assert_ok(j);
	json_decref(j);
	/* No timeout yet: it stays open. */
	assert_false(raw_closed(fd, 700));

	assert_non_null(f = fopen(conf, "w"));
	assert_true(fputs("[stashd]\nidle_timeout = 300ms\n", f) >= 0);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(kill(d.pid, SIGHUP), 0);
	assert_true(raw_closed(fd, 5000));
	close(fd);

	/* The daemon goes on. */
	fd = raw_connect(d.sock);
	j = ask(fd, "{\"op\":\"ping\"}");
	assert_ok(j);
	json_decref(j);
	close(fd);
	assert_int_equal(daemon_stop(&d), 0);
	daemon_cleanup(&d);
	assert_int_equal(unlink(conf), 0);
}

static void
test_idle_timeout(void **state)
{
	static const char *args[] = {"--idle-timeout", "300ms", NULL};
	struct daemon_proc d;
	json_t		  *j;
	int		   fd;

	assert_int_equal(daemon_start(&d, args), 0);
	fd = raw_connect(d.sock);
	j = ask(fd, "{\"op\":\"ping\"}");
	assert_ok(j);
	json_decref(j);
	assert_true(raw_closed(fd, 3000));
	close(fd);
	assert_int_equal(daemon_stop(&d), 0);
	daemon_cleanup(&d);
}

/* SIGTERM: answers what was read, exits 0, removes the socket. */
static void
test_sigterm(void **state)
{
	struct daemon_proc d;
	struct stat	   sb;
	char		  *line;
	int		   fd, i;

	assert_int_equal(daemon_start(&d, NULL), 0);
	fd = raw_connect(d.sock);
	assert_int_equal(raw_sends(fd, "{\"op\":\"ping\",\"id\":1}\n"
				       "{\"op\":\"ping\",\"id\":2}\n"),
	    0);
	line = raw_readline(fd, 5000);
	free(line);
	assert_int_equal(daemon_stop(&d), 0);
	line = raw_readline(fd, 5000);
	assert_non_null(line);
	assert_non_null(strstr(line, "\"id\":2"));
	free(line);
	assert_true(raw_closed(fd, 5000));
	close(fd);
	assert_int_equal(stat(d.sock, &sb), -1);
	assert_int_equal(errno, ENOENT);
	for (i = 0; i < 2; i++)
		;
	daemon_cleanup(&d);
}

/* A stale socket file is replaced; a regular file is not touched. */
static void
test_stale_socket(void **state)
{
	struct daemon_proc d;
	char		   path[400];
	json_t		  *j;
	int		   fd;

	assert_int_equal(daemon_start(&d, NULL), 0);
	/* Kill it hard: the socket file stays behind. */
	assert_int_equal(daemon_kill(&d, SIGKILL), 128 + SIGKILL);
	snprintf(path, sizeof(path), "%s", d.sock);
	{
		struct stat sb;

		assert_int_equal(stat(path, &sb), 0);
	}
	/* A new daemon on the same path. */
	{
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0) {
			int nul = open("/dev/null", O_WRONLY);

			dup2(nul, STDERR_FILENO);
			execl(getenv("STASHD") ? getenv("STASHD") : "./stashd",
			    "stashd", "-s", path, "-d", d.db, (char *)NULL);
			_exit(127);
		}
		d.pid = pid;
	}
	for (int i = 0; i < 200 && (fd = raw_connect(path)) == -1; i++)
		usleep(10000);
	assert_true(fd >= 0);
	j = ask(fd, "{\"op\":\"ping\"}");
	assert_ok(j);
	json_decref(j);
	close(fd);

	/* While it runs, a second daemon on the same path refuses. */
	{
		char cmd[1400];

		snprintf(cmd, sizeof(cmd), "'%s' -s '%s' -d '%s.2' 2>/dev/null",
		    getenv("STASHD") ? getenv("STASHD") : "./stashd", path,
		    d.db);
		assert_int_not_equal(system(cmd), 0);
	}
	assert_int_equal(daemon_stop(&d), 0);

	/* A regular file in the way: refuse and leave it. */
	{
		char	    cmd[1400];
		struct stat sb;
		int	    f = open(path, O_WRONLY | O_CREAT, 0600);

		assert_true(f >= 0);
		close(f);
		snprintf(cmd, sizeof(cmd), "'%s' -s '%s' -d '%s.3' 2>/dev/null",
		    getenv("STASHD") ? getenv("STASHD") : "./stashd", path,
		    d.db);
		assert_int_not_equal(system(cmd), 0);
		assert_int_equal(stat(path, &sb), 0);
		assert_true(S_ISREG(sb.st_mode));
	}
	daemon_cleanup(&d);
}

/* The socket is created with mode 0660 (umask around bind). */
static void
test_socket_mode(void **state)
{
	struct stat sb;

	assert_int_equal(stat(shared.sock, &sb), 0);
	assert_true(S_ISSOCK(sb.st_mode));
	assert_int_equal(sb.st_mode & 0777, 0660);
}

/*
 * The daemon's threads carry names (ps -L, top -H): the journal's, the
 * apply's and the readers', numbered from 1.
 */
static void
test_thread_names(void **state)
{
	char	       path[400], name[64];
	DIR	      *dir;
	FILE	      *fp;
	struct dirent *de;
	int	       journal = 0, apply = 0, reader1 = 0;

	(void)state;
	snprintf(path, sizeof(path), "/proc/%ld/task", (long)shared.pid);
	assert_non_null(dir = opendir(path));
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/task/%s/comm",
		    (long)shared.pid, de->d_name);
		if ((fp = fopen(path, "r")) == NULL)
			continue; /* gone meanwhile */
		if (fgets(name, sizeof(name), fp) != NULL) {
			name[strcspn(name, "\n")] = '\0';
			journal += strcmp(name, "journal") == 0;
			apply += strcmp(name, "apply") == 0;
			reader1 += strcmp(name, "reader-1") == 0;
		}
		fclose(fp);
	}
	closedir(dir);
	assert_int_equal(journal, 1);
	assert_int_equal(apply, 1);
	assert_int_equal(reader1, 1);
}

int
main(void)
{
	const struct CMUnitTest shared_tests[] = {
	    cmocka_unit_test(test_ping_and_id),
	    cmocka_unit_test(test_set_get_del),
	    cmocka_unit_test(test_every_value_type),
	    cmocka_unit_test(test_mget),
	    cmocka_unit_test(test_if_version),
	    cmocka_unit_test(test_ttl),
	    cmocka_unit_test(test_durability_validated),
	    cmocka_unit_test(test_sync_and_stats),
	    cmocka_unit_test(test_pipeline_1000),
	    cmocka_unit_test(test_pipeline_async_after_wait),
	    cmocka_unit_test(test_pipeline_order_after_lookup),
	    cmocka_unit_test(test_writes_reach_the_writer_in_order),
	    cmocka_unit_test(test_pipeline_del_then_set),
	    cmocka_unit_test(test_bad_requests_keep_connection),
	    cmocka_unit_test(test_invalid_utf8),
	    cmocka_unit_test(test_key_limit),
	    cmocka_unit_test(test_deep_nesting),
	    cmocka_unit_test(test_line_too_large),
	    cmocka_unit_test(test_partial_line_disconnect),
	    cmocka_unit_test(test_half_close),
	    cmocka_unit_test(test_1000_connections),
	    cmocka_unit_test(test_socket_mode),
	    cmocka_unit_test(test_thread_names),
	};
	const struct CMUnitTest own_tests[] = {
	    cmocka_unit_test(test_line_limit_exact),
	    cmocka_unit_test(test_mget_limit),
	    cmocka_unit_test(test_max_connections),
	    cmocka_unit_test(test_max_connections_protocols),
	    cmocka_unit_test(test_client_never_reads),
	    cmocka_unit_test(test_idle_timeout),
	    cmocka_unit_test(test_idle_timeout_reload),
	    cmocka_unit_test(test_busy_poll),
	    cmocka_unit_test(test_busy_poll_writes),
	    cmocka_unit_test(test_pipeline_over_input_limit),
	    cmocka_unit_test(test_sigterm),
	    cmocka_unit_test(test_stale_socket),
	};
	int failed;

	signal(SIGPIPE, SIG_IGN);
	failed = cmocka_run_group_tests_name(
	    "server", shared_tests, group_setup, group_teardown);
	failed += cmocka_run_group_tests_name(
	    "server-options", own_tests, NULL, NULL);
	return failed;
}

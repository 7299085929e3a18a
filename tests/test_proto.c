/*
 * test_proto.c -- unit tests of the protocol v1 request parser.
 *
 * Every line is parsed from a fresh heap copy of exactly its length, with
 * no NUL after it, so that AddressSanitizer or valgrind catches any read
 * past the end of the line. The request struct is filled with garbage
 * before each parse, so a field the parser forgets to reset shows up.
 *
 * After each parse, check_result() checks what must hold whatever the
 * input: a status from the enum, an error message exactly on failure, and
 * on success every pointer inside the line, keys and SQL valid UTF-8 and
 * the fields each op requires present.
 */
#include "config.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/proto.h"

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

static const struct proto_limits lim_default = {64, 100};
static const struct proto_limits lim_small = {4, 3};

/* One parse: the heap copy of the line and what proto_parse() said. */
struct parse {
	char		    *buf;
	size_t		     len;
	enum proto_status    st;
	const char	    *err;
	struct proto_request req;
};

/*
 * The heap blocks of the running test. A failed assertion leaves the test
 * by longjmp, so its teardown frees what it left behind: a failing test
 * then shows as a failure, not also as a leak under ASan or valgrind.
 */
static void *live[32];

/* malloc exactly n bytes (no slack, so overreads are caught). */
static void *
xmalloc(size_t n)
{
	void  *p;
	size_t i;

	p = malloc(n);
	if (p == NULL && n == 0)
		p = malloc(1); /* malloc(0) may give NULL */
	assert_non_null(p);
	for (i = 0; i < nitems(live); i++) {
		if (live[i] == NULL) {
			live[i] = p;
			return p;
		}
	}
	fail_msg("more than %zu live blocks", nitems(live));
	return NULL;
}

static void
xfree(void *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < nitems(live); i++) {
		if (live[i] == p) {
			live[i] = NULL;
			free(p);
			return;
		}
	}
	fail_msg("freeing a block that is not live");
}

/* Teardown of every test: free the blocks a failure left behind. */
static int
free_live(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < nitems(live); i++) {
		free(live[i]);
		live[i] = NULL;
	}
	return 0;
}

/* Is p[0..n) inside the parsed line? */
static int
in_line(const struct parse *p, const char *ptr, size_t n)
{
	uintptr_t b = (uintptr_t)p->buf, x = (uintptr_t)ptr;

	return x >= b && x <= b + p->len && n <= b + p->len - x;
}

/* Fail unless ptr[0..n) is NULL or inside the line. */
static void
check_span_in_line(
    const struct parse *p, const char *what, const char *ptr, size_t n)
{
	if (ptr != NULL && !in_line(p, ptr, n))
		fail_msg("%s (%zu bytes) points outside the line", what, n);
}

/* What must hold after any parse, whatever the input. */
static void
check_result(const struct parse *p)
{
	const struct proto_request *r = &p->req;

	if (p->st != PROTO_OK && p->st != PROTO_BAD_REQUEST &&
	    p->st != PROTO_TOO_LARGE)
		fail_msg("status %d is not a proto_status", (int)p->st);
	check_span_in_line(p, "id", r->id, r->id_len);
	if (r->id != NULL) {
		assert_true(r->id_len > 0);
		assert_true(r->id[0] != '{' && r->id[0] != '[');
	}
	if (p->st != PROTO_OK) {
		if (p->err == NULL || p->err[0] == '\0')
			fail_msg(
			    "failure %d without an error message", (int)p->st);
		return;
	}
	if (p->err != NULL)
		fail_msg("success with an error message: %s", p->err);
	assert_true(r->op > PROTO_OP_NONE && r->op < PROTO_OP__COUNT);
	assert_true(r->durability >= PROTO_DUR_DEFAULT &&
		    r->durability <= PROTO_DUR_COMMIT);
	assert_true(r->ttl <= INT32_MAX);
	assert_true(r->has_if_version == 0 || r->has_if_version == 1);
	check_span_in_line(p, "key", r->key, r->key_len);
	check_span_in_line(p, "value", r->value, r->value_len);
	check_span_in_line(p, "keys", r->keys, r->keys_len);
	check_span_in_line(p, "sql", r->sql, r->sql_len);
	check_span_in_line(p, "params", r->params, r->params_len);
	check_span_in_line(p, "tx", r->tx, r->tx_len);
	if (r->key != NULL) {
		assert_true(r->key_len >= 1 && r->key_len <= 1024);
		assert_true(proto_utf8_valid(r->key, r->key_len));
	}
	if (r->sql != NULL) {
		assert_true(r->sql_len >= 1);
		assert_true(proto_utf8_valid(r->sql, r->sql_len));
	}
	switch (r->op) {
	case PROTO_OP_GET:
	case PROTO_OP_DEL: assert_non_null(r->key); break;
	case PROTO_OP_SET:
		assert_non_null(r->key);
		assert_non_null(r->value);
		assert_true(r->value_len > 0);
		break;
	case PROTO_OP_MGET:
		assert_non_null(r->keys);
		assert_true(r->keys_len >= 2);
		assert_true(r->keys[0] == '[');
		break;
	case PROTO_OP_EXEC:
		assert_true((r->sql == NULL) != (r->tx == NULL));
		if (r->tx != NULL)
			assert_null(r->params);
		break;
	case PROTO_OP_QUERY: assert_non_null(r->sql); break;
	default: break;
	}
}

/* Parse a heap copy of exactly len bytes of line under lim. */
static enum proto_status
parse_n(struct parse *p, const char *line, size_t len,
    const struct proto_limits *lim)
{
	p->len = len;
	p->buf = xmalloc(len);
	if (len > 0)
		memcpy(p->buf, line, len);
	memset(&p->req, 0xa5, sizeof(p->req));
	p->err = "poison";
	p->st = proto_parse(p->buf, len, lim, &p->req, &p->err);
	check_result(p);
	return p->st;
}

static enum proto_status
parse_s(struct parse *p, const char *line, const struct proto_limits *lim)
{
	return parse_n(p, line, strlen(line), lim);
}

static void
parse_free(struct parse *p)
{
	xfree(p->buf);
	p->buf = NULL;
}

/* Parse line, which must succeed; returns the request. */
static struct proto_request *
ok_lim(struct parse *p, const char *line, const struct proto_limits *lim)
{
	if (parse_s(p, line, lim) != PROTO_OK)
		fail_msg(
		    "expected OK for %s, got %d: %s", line, (int)p->st, p->err);
	return &p->req;
}

static struct proto_request *
ok(struct parse *p, const char *line)
{
	return ok_lim(p, line, &lim_default);
}

/* Parse len bytes of line, which must fail with st; returns the request. */
static void
expect_n(const char *line, size_t len, const struct proto_limits *lim,
    enum proto_status st)
{
	struct parse p;

	if (parse_n(&p, line, len, lim) != st)
		fail_msg("expected status %d for \"%.*s\", got %d (%s)",
		    (int)st, (int)len, line, (int)p.st,
		    p.err != NULL ? p.err : "no message");
	parse_free(&p);
}

static void
expect_s(const char *line, const struct proto_limits *lim, enum proto_status st)
{
	expect_n(line, strlen(line), lim, st);
}

/* line must be a bad_request. */
static void
bad(const char *line)
{
	expect_n(line, strlen(line), &lim_default, PROTO_BAD_REQUEST);
}

static void
bad_lim(const char *line, const struct proto_limits *lim)
{
	expect_n(line, strlen(line), lim, PROTO_BAD_REQUEST);
}

/* Fail unless p[0..n) is exactly want[0..wantlen). */
static void
assert_span_n(
    const char *what, const char *p, size_t n, const char *want, size_t wantlen)
{
	if (p == NULL)
		fail_msg("%s is NULL, want \"%.*s\"", what, (int)wantlen, want);
	if (n != wantlen || memcmp(p, want, n) != 0)
		fail_msg("%s is \"%.*s\" (%zu bytes), want \"%.*s\" "
			 "(%zu bytes)",
		    what, (int)n, p, n, (int)wantlen, want, wantlen);
}

static void
assert_span(const char *what, const char *p, size_t n, const char *want)
{
	assert_span_n(what, p, n, want, strlen(want));
}

/* Fail unless the error message contains sub. */
static void
assert_err_has(const struct parse *p, const char *sub)
{
	if (p->err == NULL || strstr(p->err, sub) == NULL)
		fail_msg("error message \"%s\" does not contain \"%s\"",
		    p->err != NULL ? p->err : "(null)", sub);
}

/* printf into a fresh heap string. */
static char *xprintf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static char *
xprintf(const char *fmt, ...)
{
	va_list ap;
	char   *s;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	assert_true(n >= 0);
	s = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

/* A heap copy of tmpl with its one "%s" replaced by arg. */
static char *
subst(const char *tmpl, const char *arg)
{
	const char *at = strstr(tmpl, "%s");

	assert_non_null(at);
	return xprintf("%.*s%s%s", (int)(at - tmpl), tmpl, arg, at + 2);
}

/* A heap string of head, n copies of unit, then tail. */
static char *
repeat(const char *head, const char *unit, size_t n, const char *tail)
{
	size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail), i;
	char  *s, *o;

	s = xmalloc(hl + ul * n + tl + 1);
	memcpy(s, head, hl);
	o = s + hl;
	for (i = 0; i < n; i++, o += ul)
		memcpy(o, unit, ul);
	memcpy(o, tail, tl + 1);
	return s;
}

/* Walk the keys of a parsed mget and compare them with want[0..n). */
static void
assert_mget_keys(const struct parse *p, const char *const *want,
    const size_t *wantlen, size_t n)
{
	struct proto_keys_iter it;
	const char	      *key;
	size_t		       klen, i;

	assert_int_equal(p->req.nkeys, n);
	proto_keys_init(&it, &p->req);
	for (i = 0; i < n; i++) {
		if (!proto_keys_next(&it, &key, &klen))
			fail_msg("mget ended after %zu keys, want %zu", i, n);
		check_span_in_line(p, "mget key", key, klen);
		assert_span_n("mget key", key, klen, want[i], wantlen[i]);
	}
	assert_int_equal(proto_keys_next(&it, &key, &klen), 0);
	assert_int_equal(proto_keys_next(&it, &key, &klen), 0);
}

/* ---------------------------------------------------------------- ops */

static void
test_op_ping(void **state)
{
	struct parse	      p;
	struct proto_request *r;

	(void)state;
	r = ok(&p, "{\"op\":\"ping\"}");
	assert_int_equal(r->op, PROTO_OP_PING);
	assert_null(r->id);
	assert_null(r->key);
	assert_null(r->value);
	assert_null(r->keys);
	assert_int_equal(r->nkeys, 0);
	assert_null(r->sql);
	assert_null(r->params);
	assert_null(r->tx);
	assert_int_equal(r->ttl, 0);
	assert_int_equal(r->has_if_version, 0);
	assert_int_equal(r->durability, PROTO_DUR_DEFAULT);
	parse_free(&p);

	r = ok(&p, " \t{ \"op\" :\t\"ping\" } \t");
	assert_int_equal(r->op, PROTO_OP_PING);
	parse_free(&p);
}

static void
test_op_get(void **state)
{
	struct parse	      p;
	struct proto_request *r;

	(void)state;
	r = ok(&p, "{\"op\":\"get\",\"key\":\"user:42\"}");
	assert_int_equal(r->op, PROTO_OP_GET);
	assert_span("key", r->key, r->key_len, "user:42");
	assert_null(r->value);
	parse_free(&p);

	/* Field order does not matter. */
	r = ok(&p, "{ \"key\" : \"k\" , \"op\" : \"get\" }");
	assert_int_equal(r->op, PROTO_OP_GET);
	assert_span("key", r->key, r->key_len, "k");
	parse_free(&p);
}

static void
test_op_mget(void **state)
{
	static const char *const want[] = {"a", "bb", "ccc"};
	static const size_t	 wantlen[] = {1, 2, 3};
	struct parse		 p;
	struct proto_request	*r;

	(void)state;
	r = ok(&p, "{\"op\":\"mget\",\"keys\":[\"a\",\"bb\",\"ccc\"]}");
	assert_int_equal(r->op, PROTO_OP_MGET);
	assert_null(r->key);
	assert_mget_keys(&p, want, wantlen, 3);
	parse_free(&p);
}

static void
test_op_set(void **state)
{
	struct parse	      p;
	struct proto_request *r;

	(void)state;
	r = ok(&p, "{\"op\":\"set\",\"key\":\"k\",\"value\":{\"a\":1}}");
	assert_int_equal(r->op, PROTO_OP_SET);
	assert_span("key", r->key, r->key_len, "k");
	assert_span("value", r->value, r->value_len, "{\"a\":1}");
	assert_int_equal(r->ttl, 0);
	assert_int_equal(r->has_if_version, 0);
	assert_int_equal(r->if_version, 0);
	assert_int_equal(r->durability, PROTO_DUR_DEFAULT);
	parse_free(&p);

	r = ok(&p, "{\"op\":\"set\",\"key\":\"k2\",\"value\":\"v\",\"ttl\":60,"
		   "\"if_version\":17,\"durability\":\"async\",\"id\":\"s1\"}");
	assert_int_equal(r->op, PROTO_OP_SET);
	assert_span("key", r->key, r->key_len, "k2");
	assert_span("value", r->value, r->value_len, "\"v\"");
	assert_int_equal(r->ttl, 60);
	assert_int_equal(r->has_if_version, 1);
	assert_int_equal(r->if_version, 17);
	assert_int_equal(r->durability, PROTO_DUR_ASYNC);
	assert_span("id", r->id, r->id_len, "\"s1\"");
	parse_free(&p);

	r = ok(&p, "{\"durability\":\"journal\",\"if_version\":0,\"ttl\":1,"
		   "\"value\":null,\"key\":\"x\",\"op\":\"set\"}");
	assert_int_equal(r->op, PROTO_OP_SET);
	assert_span("value", r->value, r->value_len, "null");
	assert_int_equal(r->ttl, 1);
	assert_int_equal(r->has_if_version, 1);
	assert_int_equal(r->if_version, 0);
	assert_int_equal(r->durability, PROTO_DUR_JOURNAL);
	parse_free(&p);
}

static void
test_op_del(void **state)
{
	struct parse	      p;
	struct proto_request *r;

	(void)state;
	r = ok(&p, "{\"op\":\"del\",\"key\":\"gone\"}");
	assert_int_equal(r->op, PROTO_OP_DEL);
	assert_span("key", r->key, r->key_len, "gone");
	assert_int_equal(r->durability, PROTO_DUR_DEFAULT);
	parse_free(&p);

	r = ok(&p, "{\"op\":\"del\",\"key\":\"gone\","
		   "\"durability\":\"commit\"}");
	assert_int_equal(r->op, PROTO_OP_DEL);
	assert_int_equal(r->durability, PROTO_DUR_COMMIT);
	parse_free(&p);
}

static void
test_op_exec(void **state)
{
	struct parse	      p;
	struct proto_request *r;

	(void)state;
	r = ok(&p, "{\"op\":\"exec\",\"sql\":\"INSERT INTO t VALUES(?, ?)\","
		   "\"params\":[1, \"a b\"]}");
	assert_int_equal(r->op, PROTO_OP_EXEC);
	assert_span("sql", r->sql, r->sql_len, "INSERT INTO t VALUES(?, ?)");
	assert_span("params", r->params, r->params_len, "[1,\"a b\"]");
	assert_null(r->tx);
	assert_int_equal(r->durability, PROTO_DUR_DEFAULT);
	parse_free(&p);

	r = ok(&p, "{\"op\":\"exec\",\"sql\":\"UPDATE t SET a = :a\","
		   "\"params\":{ \"a\" : 2.5 },\"durability\":\"journal\"}");
	assert_span("sql", r->sql, r->sql_len, "UPDATE t SET a = :a");
	assert_span("params", r->params, r->params_len, "{\"a\":2.5}");
	assert_int_equal(r->durability, PROTO_DUR_JOURNAL);
	parse_free(&p);

	r = ok(&p, "{\"op\":\"exec\",\"sql\":\"DELETE FROM t\"}");
	assert_span("sql", r->sql, r->sql_len, "DELETE FROM t");
	assert_null(r->params);
	parse_free(&p);

	r = ok(&p,
	    "{\"op\":\"exec\",\"tx\":[ {\"sql\":\"INSERT INTO t "
	    "VALUES(?)\", \"params\":[1]} , {\"sql\":\"DELETE FROM u\"} ],"
	    "\"durability\":\"async\"}");
	assert_int_equal(r->op, PROTO_OP_EXEC);
	assert_null(r->sql);
	assert_null(r->params);
	assert_span("tx", r->tx, r->tx_len,
	    "[{\"sql\":\"INSERT INTO t "
	    "VALUES(?)\",\"params\":[1]},{\"sql\":\"DELETE FROM u\"}]");
	assert_int_equal(r->durability, PROTO_DUR_ASYNC);
	parse_free(&p);
}

static void
test_op_query(void **state)
{
	struct parse	      p;
	struct proto_request *r;

	(void)state;
	r = ok(&p, "{\"op\":\"query\",\"sql\":\"SELECT a, b FROM t\"}");
	assert_int_equal(r->op, PROTO_OP_QUERY);
	assert_span("sql", r->sql, r->sql_len, "SELECT a, b FROM t");
	assert_null(r->params);
	parse_free(&p);

	r = ok(&p, "{\"op\":\"query\",\"sql\":\"SELECT ?1\",\"params\":[ "
		   "[1, 2], {\"x\": null} ]}");
	assert_span("params", r->params, r->params_len, "[[1,2],{\"x\":null}]");
	parse_free(&p);
}

static void
test_op_sync_stats(void **state)
{
	struct parse	      p;
	struct proto_request *r;

	(void)state;
	r = ok(&p, "{\"op\":\"sync\"}");
	assert_int_equal(r->op, PROTO_OP_SYNC);
	parse_free(&p);
	r = ok(&p, "{\"op\":\"stats\",\"id\":3}");
	assert_int_equal(r->op, PROTO_OP_STATS);
	assert_span("id", r->id, r->id_len, "3");
	parse_free(&p);
}

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(proto_op_name(PROTO_OP_PING), "ping");
	assert_string_equal(proto_op_name(PROTO_OP_GET), "get");
	assert_string_equal(proto_op_name(PROTO_OP_MGET), "mget");
	assert_string_equal(proto_op_name(PROTO_OP_SET), "set");
	assert_string_equal(proto_op_name(PROTO_OP_DEL), "del");
	assert_string_equal(proto_op_name(PROTO_OP_EXEC), "exec");
	assert_string_equal(proto_op_name(PROTO_OP_QUERY), "query");
	assert_string_equal(proto_op_name(PROTO_OP_SYNC), "sync");
	assert_string_equal(proto_op_name(PROTO_OP_STATS), "stats");
	assert_string_equal(proto_op_name(PROTO_OP_NONE), "none");
	assert_string_equal(proto_op_name(PROTO_OP__COUNT), "none");
	assert_string_equal(proto_durability_name(PROTO_DUR_ASYNC), "async");
	assert_string_equal(
	    proto_durability_name(PROTO_DUR_JOURNAL), "journal");
	assert_string_equal(proto_durability_name(PROTO_DUR_COMMIT), "commit");
	assert_string_equal(
	    proto_durability_name(PROTO_DUR_DEFAULT), "default");
}

/* A request struct reused for a second parse keeps nothing of the first. */
static void
test_req_reset(void **state)
{
	struct proto_request req;
	const char	    *err;
	char a[] = "{\"op\":\"set\",\"key\":\"k\",\"value\":1,\"ttl\":5,"
		   "\"if_version\":3,\"durability\":\"async\",\"id\":9}";
	char b[] = "{\"op\":\"ping\"}";

	(void)state;
	assert_int_equal(
	    proto_parse(a, strlen(a), &lim_default, &req, &err), PROTO_OK);
	assert_int_equal(
	    proto_parse(b, strlen(b), &lim_default, &req, &err), PROTO_OK);
	assert_null(err);
	assert_int_equal(req.op, PROTO_OP_PING);
	assert_null(req.id);
	assert_null(req.key);
	assert_null(req.value);
	assert_int_equal(req.ttl, 0);
	assert_int_equal(req.has_if_version, 0);
	assert_int_equal(req.if_version, 0);
	assert_int_equal(req.durability, PROTO_DUR_DEFAULT);
}

/* ----------------------------------------------------------------- id */

static void
test_id_echo_ok(void **state)
{
	static const char *const ids[] = {
	    "\"abc\"",
	    "\"\"",
	    "\"a\\\"b\\u00e9\"",
	    "0",
	    "42",
	    "-7",
	    "1.5e-3",
	    "18446744073709551616",
	    "null",
	    "true",
	    "false",
	};
	struct parse	      p;
	struct proto_request *r;
	char		     *line;
	size_t		      i;

	(void)state;
	for (i = 0; i < nitems(ids); i++) {
		line = xprintf("{\"op\":\"ping\",\"id\":%s}", ids[i]);
		r = ok(&p, line);
		assert_span("id", r->id, r->id_len, ids[i]);
		parse_free(&p);
		xfree(line);

		/* Before the op, with whitespace around it. */
		line = xprintf("{ \"id\" :  %s  , \"op\":\"get\","
			       "\"key\":\"k\"}",
		    ids[i]);
		r = ok(&p, line);
		assert_span("id", r->id, r->id_len, ids[i]);
		parse_free(&p);
		xfree(line);
	}
}

/* A semantic error still gives the id, wherever it stands in the line. */
static void
test_id_echo_errors(void **state)
{
	static const struct {
		const char	 *line;
		const char	 *id;
		enum proto_status st;
		const char	 *msg;
	} t[] = {
	    /* unknown field */
	    {"{\"id\":\"abc\",\"op\":\"get\",\"key\":\"k\",\"tll\":5}",
		"\"abc\"", PROTO_BAD_REQUEST, "tll"},
	    {"{\"op\":\"get\",\"key\":\"k\",\"tll\":5,\"id\":\"abc\"}",
		"\"abc\"", PROTO_BAD_REQUEST, "tll"},
	    /* wrong type */
	    {"{\"op\":\"get\",\"key\":5,\"id\":42}", "42", PROTO_BAD_REQUEST,
		"key"},
	    {"{\"op\":\"set\",\"key\":\"k\",\"value\":1,\"ttl\":\"5\","
	     "\"id\":-1.5e3}",
		"-1.5e3", PROTO_BAD_REQUEST, "ttl"},
	    {"{\"op\":\"set\",\"key\":\"k\",\"value\":1,\"if_version\":-1,"
	     "\"id\":3}",
		"3", PROTO_BAD_REQUEST, "if_version"},
	    {"{\"op\":\"set\",\"key\":\"k\",\"value\":1,\"durability\":"
	     "\"fast\",\"id\":3}",
		"3", PROTO_BAD_REQUEST, "durability"},
	    {"{\"op\":\"set\",\"key\":\"\",\"value\":1,\"id\":\"e\"}", "\"e\"",
		PROTO_BAD_REQUEST, "key"},
	    {"{\"op\":\"mget\",\"keys\":[1],\"id\":2}", "2", PROTO_BAD_REQUEST,
		"keys"},
	    {"{\"op\":\"exec\",\"params\":1,\"sql\":\"x\",\"id\":2}", "2",
		PROTO_BAD_REQUEST, "params"},
	    /* field not valid for the op */
	    {"{\"op\":\"get\",\"key\":\"k\",\"value\":1,\"id\":null}", "null",
		PROTO_BAD_REQUEST, "value"},
	    {"{\"id\":null,\"ttl\":5,\"op\":\"get\",\"key\":\"k\"}", "null",
		PROTO_BAD_REQUEST, "ttl"},
	    /* missing field */
	    {"{\"op\":\"set\",\"key\":\"k\",\"id\":true}", "true",
		PROTO_BAD_REQUEST, "value"},
	    {"{\"op\":\"get\",\"id\":false}", "false", PROTO_BAD_REQUEST,
		"key"},
	    {"{\"id\":false,\"op\":\"query\"}", "false", PROTO_BAD_REQUEST,
		"sql"},
	    {"{\"id\":7}", "7", PROTO_BAD_REQUEST, "op"},
	    {"{\"key\":\"k\",\"id\":\"x\"}", "\"x\"", PROTO_BAD_REQUEST, "op"},
	    /* bad op */
	    {"{\"op\":\"nope\",\"id\":7}", "7", PROTO_BAD_REQUEST, "op"},
	    {"{\"op\":1,\"id\":7}", "7", PROTO_BAD_REQUEST, "op"},
	    /* duplicate field */
	    {"{\"op\":\"get\",\"key\":\"a\",\"key\":\"b\",\"id\":7}", "7",
		PROTO_BAD_REQUEST, "key"},
	    /* exec rules */
	    {"{\"op\":\"exec\",\"id\":1}", "1", PROTO_BAD_REQUEST, "exec"},
	    {"{\"op\":\"exec\",\"sql\":\"x\",\"tx\":[],\"id\":1}", "1",
		PROTO_BAD_REQUEST, "exec"},
	    {"{\"op\":\"exec\",\"tx\":[],\"params\":[],\"id\":1}", "1",
		PROTO_BAD_REQUEST, "params"},
	    /* over the mget limit of lim_small (3) */
	    {"{\"op\":\"mget\",\"keys\":[\"a\",\"b\",\"c\",\"d\"],"
	     "\"id\":\"m\"}",
		"\"m\"", PROTO_TOO_LARGE, "mget"},
	};
	struct parse p;
	size_t	     i;

	(void)state;
	for (i = 0; i < nitems(t); i++) {
		if (parse_s(&p, t[i].line, &lim_small) != t[i].st)
			fail_msg("%s: status %d, want %d (%s)", t[i].line,
			    (int)p.st, (int)t[i].st, p.err);
		assert_span("id", p.req.id, p.req.id_len, t[i].id);
		assert_err_has(&p, t[i].msg);
		parse_free(&p);
	}
}

static void
test_id_not_scalar(void **state)
{
	static const char *const lines[] = {
	    "{\"op\":\"ping\",\"id\":{}}",
	    "{\"op\":\"ping\",\"id\":{\"a\":1}}",
	    "{\"id\":[],\"op\":\"ping\"}",
	    "{\"id\":[1],\"op\":\"get\",\"key\":\"k\"}",
	};
	struct parse p;
	size_t	     i;

	(void)state;
	for (i = 0; i < nitems(lines); i++) {
		if (parse_s(&p, lines[i], &lim_default) != PROTO_BAD_REQUEST)
			fail_msg("%s: status %d", lines[i], (int)p.st);
		assert_null(p.req.id);
		assert_err_has(&p, "id");
		parse_free(&p);
	}
}

/* A line that is not valid JSON has no id to trust. */
static void
test_id_not_echoed_when_malformed(void **state)
{
	static const char *const lines[] = {
	    "{\"id\":1,\"op\":\"ping\",}",
	    "{\"id\":1,\"op\":\"ping\"} x",
	    "{\"id\":1,\"op\":\"get\",\"key\":\"\\x\"}",
	    "{\"id\":1,\"op\":\"set\",\"key\":\"k\",\"value\":[1,]}",
	};
	struct parse p;
	size_t	     i;

	(void)state;
	for (i = 0; i < nitems(lines); i++) {
		if (parse_s(&p, lines[i], &lim_default) != PROTO_BAD_REQUEST)
			fail_msg("%s: status %d", lines[i], (int)p.st);
		assert_null(p.req.id);
		parse_free(&p);
	}
}

/* --------------------------------------------------------------- keys */

static const struct {
	const char *json; /* the string body as sent */
	const char *dec;  /* its decoded bytes */
} key_cases[] = {
    {"plain", "plain"},
    {"a\\nb", "a\nb"},
    {"a\\\"b", "a\"b"},
    {"a\\\\b", "a\\b"},
    {"a\\/b", "a/b"},
    {"\\b\\f\\r\\t", "\b\f\r\t"},
    {"\\\\\\\"", "\\\""},
    {"\\\"\\\"", "\"\""},
    {"\\u0041", "A"},
    {"\\u00e9", "\xc3\xa9"},
    {"\\u00E9", "\xc3\xa9"},
    {"\\u07ff", "\xdf\xbf"},
    {"\\u0800", "\xe0\xa0\x80"},
    {"\\u20ac", "\xe2\x82\xac"},
    {"\\uffff", "\xef\xbf\xbf"},
    {"\\ud83d\\ude00", "\xf0\x9f\x98\x80"},
    {"\\uD83D\\uDE00", "\xf0\x9f\x98\x80"},
    {"\\ud800\\udc00", "\xf0\x90\x80\x80"},
    {"\\udbff\\udfff", "\xf4\x8f\xbf\xbf"},
    {"x\\ud83d\\ude00y\\n", "x\xf0\x9f\x98\x80y\n"},
    {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
	"caf\xc3\xa9 "
	"\xe2\x82\xac \xf0\x9f\x98\x80"},
    {"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xf4\x8f\xbf"
     "\xbf",
	"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80"
	"\xf4\x8f\xbf\xbf"},
    {"\x7f", "\x7f"},
    {"  spaced  ", "  spaced  "},
    {"{\\\"json\\\":[1, 2]}", "{\"json\":[1, 2]}"},
};

static void
test_key_unescape(void **state)
{
	struct parse	      p;
	struct proto_request *r;
	const char	     *want[2];
	size_t		      wantlen[2];
	char		     *line;
	size_t		      i;

	(void)state;
	for (i = 0; i < nitems(key_cases); i++) {
		const char *j = key_cases[i].json, *d = key_cases[i].dec;

		line = xprintf("{\"op\":\"get\",\"key\":\"%s\"}", j);
		r = ok(&p, line);
		assert_span("get key", r->key, r->key_len, d);
		parse_free(&p);
		xfree(line);

		line = xprintf("{\"key\" : \"%s\",\"op\":\"set\",\"value\":"
			       "\"%s\",\"id\":\"%s\"}",
		    j, j, j);
		r = ok(&p, line);
		assert_span("set key", r->key, r->key_len, d);
		/* The value and the id keep their escapes. */
		xfree(line);
		line = xprintf("\"%s\"", j);
		assert_span("set value", r->value, r->value_len, line);
		assert_span("id", r->id, r->id_len, line);
		parse_free(&p);
		xfree(line);

		line = xprintf("{\"op\":\"del\",\"key\":\"%s\"}", j);
		r = ok(&p, line);
		assert_span("del key", r->key, r->key_len, d);
		parse_free(&p);
		xfree(line);

		line = xprintf(
		    "{\"op\":\"mget\",\"keys\":[ \"%s\" ,\"%s\"]}", j, j);
		ok(&p, line);
		want[0] = want[1] = d;
		wantlen[0] = wantlen[1] = strlen(d);
		assert_mget_keys(&p, want, wantlen, 2);
		parse_free(&p);
		xfree(line);

		line = xprintf("{\"op\":\"query\",\"sql\":\"%s\"}", j);
		r = ok(&p, line);
		assert_span("query sql", r->sql, r->sql_len, d);
		parse_free(&p);
		xfree(line);

		line = xprintf("{\"sql\":\"%s\",\"params\":[\"%s\"],"
			       "\"op\":\"exec\"}",
		    j, j);
		r = ok(&p, line);
		assert_span("exec sql", r->sql, r->sql_len, d);
		xfree(line);
		line = xprintf("[\"%s\"]", j);
		assert_span("params", r->params, r->params_len, line);
		parse_free(&p);
		xfree(line);
	}
}

/* Keys hold 1..1024 bytes, counted after unescaping. */
static void
test_key_length(void **state)
{
	static const struct {
		const char *unit;   /* as sent */
		size_t	    declen; /* its decoded length */
	} units[] = {
	    {"a", 1},
	    {"\\n", 1},
	    {"\\u0041", 1},
	    {"\\u00e9", 2},
	    {"\xc3\xa9", 2},
	    {"\\u20ac", 3},
	    {"\\ud83d\\ude00", 4},
	    {"\xf0\x9f\x98\x80", 4},
	};
	static const char *const heads[] = {
	    "{\"op\":\"get\",\"key\":\"",
	    "{\"op\":\"del\",\"key\":\"",
	    "{\"op\":\"set\",\"value\":0,\"key\":\"",
	    "{\"op\":\"mget\",\"keys\":[\"x\",\"",
	};
	static const char *const tails[] = {
	    "\"}",
	    "\"}",
	    "\"}",
	    "\"]}",
	};
	struct parse	       p;
	struct proto_keys_iter it;
	const char	      *key;
	size_t		       u, h, n, klen;
	char		      *head, *line;

	(void)state;
	for (u = 0; u < nitems(units); u++) {
		n = 1024 / units[u].declen;
		for (h = 0; h < nitems(heads); h++) {
			/* Exactly 1024 bytes: pad with 'a' up to it. */
			head = xprintf("%s%.*s", heads[h],
			    (int)(1024 % units[u].declen), "aaa");
			line = repeat(head, units[u].unit, n, tails[h]);
			ok(&p, line);
			if (p.req.op == PROTO_OP_MGET) {
				assert_int_equal(p.req.nkeys, 2);
				proto_keys_init(&it, &p.req);
				assert_true(proto_keys_next(&it, &key, &klen));
				assert_true(proto_keys_next(&it, &key, &klen));
			} else {
				key = p.req.key;
				klen = p.req.key_len;
			}
			assert_int_equal(klen, 1024);
			parse_free(&p);
			xfree(line);

			/* 1025 bytes or more: one more unit. */
			line = repeat(head, units[u].unit, n + 1, tails[h]);
			bad(line);
			xfree(line);
			xfree(head);
		}
	}

	/* 1024 bytes plus one byte. */
	line = repeat("{\"op\":\"get\",\"key\":\"", "a", 1024, "\\n\"}");
	bad(line);
	xfree(line);
	line = repeat("{\"op\":\"get\",\"key\":\"", "a", 1023, "\\n\"}");
	ok(&p, line);
	assert_int_equal(p.req.key_len, 1024);
	assert_true(p.req.key[1023] == '\n');
	parse_free(&p);
	xfree(line);

	/* Empty keys. */
	bad("{\"op\":\"get\",\"key\":\"\"}");
	bad("{\"op\":\"del\",\"key\":\"\"}");
	bad("{\"op\":\"set\",\"key\":\"\",\"value\":1}");
	bad("{\"op\":\"mget\",\"keys\":[\"\"]}");
	bad("{\"op\":\"mget\",\"keys\":[\"a\",\"\"]}");
	/* Keys that are not strings. */
	bad("{\"op\":\"get\",\"key\":1}");
	bad("{\"op\":\"get\",\"key\":null}");
	bad("{\"op\":\"get\",\"key\":[\"a\"]}");
	bad("{\"op\":\"get\",\"key\":{\"a\":1}}");
	bad("{\"op\":\"del\",\"key\":true}");
	bad("{\"op\":\"set\",\"key\":2,\"value\":1}");
}

/* -------------------------------------------------------------- values */

static const struct {
	const char *in;
	const char *out;
} compact_cases[] = {
    {" { \"a\" : [ 1 , 2 , { } ] , \"b\" : null } ",
	"{\"a\":[1,2,{}],\"b\":null}"},
    {"\t[\r\n1 ,\t2\n]\r", "[1,2]"},
    {"\"  spaced  out  \"", "\"  spaced  out  \""},
    {"[ \"a b\" , \" c \" ]", "[\"a b\",\" c \"]"},
    {"\"esc \\\" \\\\ \\n \\u00e9 \\/ \\ud83d\\ude00 \\t\"",
	"\"esc \\\" \\\\ \\n \\u00e9 \\/ \\ud83d\\ude00 \\t\""},
    /* A string that ends in an escaped backslash. */
    {"[ \"a\\\\\" , \" b\" ]", "[\"a\\\\\",\" b\"]"},
    /* A string of one escaped quote. */
    {"[ \"\\\"\" , \" , \" ]", "[\"\\\"\",\" , \"]"},
    {"{ \"k y\" : \"v : , ] } [\" }", "{\"k y\":\"v : , ] } [\"}"},
    {"[ -1.5e+10 , 0 , 2E-3 , 1e5 , -0.0 , 1E400 , 12.25e-02 ]",
	"[-1.5e+10,0,2E-3,1e5,-0.0,1E400,12.25e-02]"},
    {"{ \"a\" : { \"b\" : { \"c\" : [ [ ] , { } ] } } }",
	"{\"a\":{\"b\":{\"c\":[[],{}]}}}"},
    {"[ true , false , null , \"\" ]", "[true,false,null,\"\"]"},
    {"\"caf\xc3\xa9 \xf0\x9f\x98\x80\"", "\"caf\xc3\xa9 \xf0\x9f\x98\x80\""},
    {"  42  ", "42"},
    {"-0.5E+3", "-0.5E+3"},
    {"\"\"", "\"\""},
    {"[]", "[]"},
    {"{}", "{}"},
    {"[ [ ] ]", "[[]]"},
    {"true", "true"},
    {"false", "false"},
    {"null", "null"},
    {"0", "0"},
    {"-0", "-0"},
    {"3.14", "3.14"},
    {"1e-7", "1e-7"},
    {"\"\\u0000\"", "\"\\u0000\""},
    {"\"\x7f\"", "\"\x7f\""},
};

static void
test_value_compaction(void **state)
{
	struct parse	      p;
	struct proto_request *r;
	char		     *line;
	size_t		      i;

	(void)state;
	for (i = 0; i < nitems(compact_cases); i++) {
		const char *in = compact_cases[i].in;
		const char *out = compact_cases[i].out;

		line =
		    xprintf("{\"op\":\"set\",\"key\":\"k\",\"value\":%s}", in);
		r = ok(&p, line);
		assert_span("value", r->value, r->value_len, out);
		assert_span("key", r->key, r->key_len, "k");
		parse_free(&p);
		xfree(line);

		/* First, with the id after it. */
		line = xprintf("{\"value\":%s,\"op\":\"set\",\"key\":\"k\","
			       "\"id\":\"after\"}",
		    in);
		r = ok(&p, line);
		assert_span("value", r->value, r->value_len, out);
		assert_span("id", r->id, r->id_len, "\"after\"");
		parse_free(&p);
		xfree(line);

		/* Inside params and tx, which are compacted the same way. */
		line = xprintf("{\"op\":\"exec\",\"sql\":\"s\","
			       "\"params\":[ %s ]}",
		    in);
		r = ok(&p, line);
		xfree(line);
		line = xprintf("[%s]", out);
		assert_span("params", r->params, r->params_len, line);
		parse_free(&p);
		xfree(line);

		line = xprintf("{\"op\":\"exec\",\"tx\":[ { \"sql\" : \"s\" , "
			       "\"params\" : [ %s ] } ]}",
		    in);
		r = ok(&p, line);
		xfree(line);
		line = xprintf("[{\"sql\":\"s\",\"params\":[%s]}]", out);
		assert_span("tx", r->tx, r->tx_len, line);
		parse_free(&p);
		xfree(line);
	}
}

/* ---------------------------------------------------------------- mget */

static void
test_mget_keys(void **state)
{
	static const char *const want[] = {
	    "a",
	    "b\nc",
	    "\xc3\xa9",
	    "q\"uote",
	    "back\\slash",
	    "a",
	    "\xf0\x9f\x98\x80",
	    "s/l",
	    " ,]\"[ ",
	};
	size_t	     wantlen[nitems(want)];
	struct parse p;
	size_t	     i;

	(void)state;
	for (i = 0; i < nitems(want); i++)
		wantlen[i] = strlen(want[i]);
	ok(&p, "{\"op\":\"mget\",\"keys\":[ \"a\" ,\t\"b\\nc\",\"\\u00e9\","
	       "\"q\\\"uote\" , \"back\\\\slash\",\"a\",\"\\ud83d\\ude00\","
	       "\"s\\/l\",\" ,]\\\"[ \" ],\"id\":1}");
	assert_mget_keys(&p, want, wantlen, nitems(want));
	parse_free(&p);

	/* Empty arrays are fine and yield nothing. */
	ok(&p, "{\"op\":\"mget\",\"keys\":[]}");
	assert_mget_keys(&p, want, wantlen, 0);
	parse_free(&p);
	ok(&p, "{\"op\":\"mget\",\"keys\":[ \t ]}");
	assert_mget_keys(&p, want, wantlen, 0);
	parse_free(&p);
}

static void
test_mget_limit(void **state)
{
	static const struct proto_limits zero = {64, 0};
	static const char *const	 want[] = {"a", "b", "c"};
	static const size_t		 wantlen[] = {1, 1, 1};
	struct parse			 p;

	(void)state;
	/* lim_small allows 3 keys. */
	ok_lim(
	    &p, "{\"op\":\"mget\",\"keys\":[\"a\",\"b\",\"c\"]}", &lim_small);
	assert_mget_keys(&p, want, wantlen, 3);
	parse_free(&p);

	assert_int_equal(parse_s(&p,
			     "{\"op\":\"mget\",\"keys\":[\"a\",\"b\","
			     "\"c\",\"d\"]}",
			     &lim_small),
	    PROTO_TOO_LARGE);
	assert_err_has(&p, "mget");
	parse_free(&p);

	/* Duplicates count too. */
	expect_s("{\"op\":\"mget\",\"keys\":[\"a\",\"a\",\"a\",\"a\",\"a\"]}",
	    &lim_small, PROTO_TOO_LARGE);

	ok_lim(&p, "{\"op\":\"mget\",\"keys\":[]}", &zero);
	assert_int_equal(p.req.nkeys, 0);
	parse_free(&p);
	expect_s("{\"op\":\"mget\",\"keys\":[\"a\"]}", &zero, PROTO_TOO_LARGE);
}

static void
test_mget_bad(void **state)
{
	static const char *const lines[] = {
	    "{\"op\":\"mget\",\"keys\":[1]}",
	    "{\"op\":\"mget\",\"keys\":[\"a\",null]}",
	    "{\"op\":\"mget\",\"keys\":[\"a\",true]}",
	    "{\"op\":\"mget\",\"keys\":[\"a\",[\"b\"]]}",
	    "{\"op\":\"mget\",\"keys\":[\"a\",{}]}",
	    "{\"op\":\"mget\",\"keys\":[{\"k\":\"a\"}]}",
	    "{\"op\":\"mget\",\"keys\":\"a\"}",
	    "{\"op\":\"mget\",\"keys\":{}}",
	    "{\"op\":\"mget\",\"keys\":null}",
	    "{\"op\":\"mget\",\"keys\":1}",
	    "{\"op\":\"mget\",\"keys\":[\"a\",]}",
	    "{\"op\":\"mget\",\"keys\":[,\"a\"]}",
	    "{\"op\":\"mget\",\"keys\":[\"a\" \"b\"]}",
	    "{\"op\":\"mget\",\"keys\":[\"a\"}",
	    "{\"op\":\"mget\"}",
	    "{\"op\":\"mget\",\"key\":\"a\"}",
	    "{\"op\":\"mget\",\"keys\":[\"a\"],\"key\":\"a\"}",
	};
	size_t i;

	(void)state;
	for (i = 0; i < nitems(lines); i++)
		bad(lines[i]);
}

/* ---------------------------------------------------- ttl, if_version */

static void
test_ttl(void **state)
{
	static const struct {
		const char *text;
		int	    ok;
		uint32_t    ttl;
	} t[] = {
	    {"1", 1, 1},
	    {"60", 1, 60},
	    {"2147483647", 1, 2147483647},
	    {"0", 0, 0},
	    {"-0", 0, 0},
	    {"-1", 0, 0},
	    {"-60", 0, 0},
	    {"1.5", 0, 0},
	    {"1.0", 0, 0},
	    {"1e3", 0, 0},
	    {"1E3", 0, 0},
	    {"\"5\"", 0, 0},
	    {"null", 0, 0},
	    {"true", 0, 0},
	    {"[5]", 0, 0},
	    {"{}", 0, 0},
	    {"2147483648", 0, 0},
	    {"4294967296", 0, 0},
	    {"4294967297", 0, 0},
	    {"18446744073709551617", 0, 0},
	    {"99999999999999999999999", 0, 0},
	};
	struct parse p;
	char	    *line;
	size_t	     i;

	(void)state;
	for (i = 0; i < nitems(t); i++) {
		line = xprintf("{\"op\":\"set\",\"key\":\"k\",\"value\":1,"
			       "\"ttl\":%s}",
		    t[i].text);
		if (t[i].ok) {
			ok(&p, line);
			assert_int_equal(p.req.ttl, t[i].ttl);
			parse_free(&p);
		} else {
			assert_int_equal(
			    parse_s(&p, line, &lim_default), PROTO_BAD_REQUEST);
			assert_err_has(&p, "ttl");
			parse_free(&p);
		}
		xfree(line);
	}
	/* Only set takes a ttl. */
	bad("{\"op\":\"get\",\"key\":\"k\",\"ttl\":5}");
	bad("{\"op\":\"del\",\"key\":\"k\",\"ttl\":5}");
}

static void
test_if_version(void **state)
{
	static const struct {
		const char *text;
		int	    ok;
		uint64_t    v;
	} t[] = {
	    {"0", 1, 0},
	    {"1", 1, 1},
	    {"4294967296", 1, 4294967296ULL},
	    {"10000000000000000000", 1, 10000000000000000000ULL},
	    {"18446744073709551615", 1, UINT64_MAX},
	    {"18446744073709551616", 0, 0},
	    {"18446744073709551620", 0, 0},
	    {"36893488147419103232", 0, 0},
	    {"99999999999999999999", 0, 0},
	    {"184467440737095516150", 0, 0},
	    {"-1", 0, 0},
	    {"-0", 0, 0},
	    {"1.0", 0, 0},
	    {"1e2", 0, 0},
	    {"\"1\"", 0, 0},
	    {"null", 0, 0},
	    {"false", 0, 0},
	    {"[]", 0, 0},
	};
	struct parse p;
	char	    *line;
	size_t	     i;

	(void)state;
	for (i = 0; i < nitems(t); i++) {
		line = xprintf("{\"op\":\"set\",\"key\":\"k\",\"value\":1,"
			       "\"if_version\":%s}",
		    t[i].text);
		if (t[i].ok) {
			ok(&p, line);
			assert_int_equal(p.req.has_if_version, 1);
			if (p.req.if_version != t[i].v)
				fail_msg("if_version %s read as %llu",
				    t[i].text,
				    (unsigned long long)p.req.if_version);
			parse_free(&p);
		} else {
			assert_int_equal(
			    parse_s(&p, line, &lim_default), PROTO_BAD_REQUEST);
			assert_err_has(&p, "if_version");
			parse_free(&p);
		}
		xfree(line);
	}
	bad("{\"op\":\"del\",\"key\":\"k\",\"if_version\":1}");
	bad("{\"op\":\"get\",\"key\":\"k\",\"if_version\":1}");
}

static void
test_durability(void **state)
{
	static const char *const heads[] = {
	    "{\"op\":\"set\",\"key\":\"k\",\"value\":1,\"durability\":",
	    "{\"op\":\"del\",\"key\":\"k\",\"durability\":",
	    "{\"op\":\"exec\",\"sql\":\"s\",\"durability\":",
	    "{\"op\":\"exec\",\"tx\":[],\"durability\":",
	};
	static const struct {
		const char	     *text;
		enum proto_durability d;
	} good[] = {
	    {"\"async\"", PROTO_DUR_ASYNC},
	    {"\"journal\"", PROTO_DUR_JOURNAL},
	    {"\"commit\"", PROTO_DUR_COMMIT},
	    {" \"commit\" ", PROTO_DUR_COMMIT},
	};
	static const char *const wrong[] = {
	    "\"ASYNC\"",
	    "\"Journal\"",
	    "\"\"",
	    "\"fsync\"",
	    "\"default\"",
	    "\" async\"",
	    "\"async \"",
	    "\"asyncx\"",
	    "\"commi\"",
	    "1",
	    "0",
	    "null",
	    "true",
	    "[\"async\"]",
	    "{}",
	};
	static const char *const not_taken[] = {
	    "{\"op\":\"ping\",\"durability\":\"async\"}",
	    "{\"op\":\"get\",\"key\":\"k\",\"durability\":\"async\"}",
	    "{\"op\":\"mget\",\"keys\":[],\"durability\":\"async\"}",
	    "{\"op\":\"query\",\"sql\":\"s\",\"durability\":\"commit\"}",
	    "{\"op\":\"sync\",\"durability\":\"journal\"}",
	    "{\"op\":\"stats\",\"durability\":\"journal\"}",
	};
	struct parse p;
	char	    *line;
	size_t	     h, i;

	(void)state;
	for (h = 0; h < nitems(heads); h++) {
		for (i = 0; i < nitems(good); i++) {
			line = xprintf("%s%s}", heads[h], good[i].text);
			ok(&p, line);
			assert_int_equal(p.req.durability, good[i].d);
			parse_free(&p);
			xfree(line);
		}
		for (i = 0; i < nitems(wrong); i++) {
			line = xprintf("%s%s}", heads[h], wrong[i]);
			assert_int_equal(
			    parse_s(&p, line, &lim_default), PROTO_BAD_REQUEST);
			assert_err_has(&p, "durability");
			parse_free(&p);
			xfree(line);
		}
	}
	for (i = 0; i < nitems(not_taken); i++) {
		assert_int_equal(
		    parse_s(&p, not_taken[i], &lim_default), PROTO_BAD_REQUEST);
		assert_err_has(&p, "durability");
		parse_free(&p);
	}
}

/* ---------------------------------------------------------------- exec */

static void
test_exec_rules(void **state)
{
	static const char *const lines[] = {
	    /* neither sql nor tx */
	    "{\"op\":\"exec\"}",
	    "{\"op\":\"exec\",\"params\":[1]}",
	    "{\"op\":\"exec\",\"durability\":\"commit\"}",
	    /* both */
	    "{\"op\":\"exec\",\"sql\":\"s\",\"tx\":[]}",
	    "{\"op\":\"exec\",\"tx\":[{\"sql\":\"s\"}],\"sql\":\"s\"}",
	    /* params with tx */
	    "{\"op\":\"exec\",\"tx\":[{\"sql\":\"s\"}],\"params\":[1]}",
	    "{\"op\":\"exec\",\"params\":{},\"tx\":[]}",
	    /* wrong types */
	    "{\"op\":\"exec\",\"sql\":1}",
	    "{\"op\":\"exec\",\"sql\":null}",
	    "{\"op\":\"exec\",\"sql\":[\"s\"]}",
	    "{\"op\":\"exec\",\"sql\":\"\"}",
	    "{\"op\":\"exec\",\"sql\":\"s\",\"params\":\"a\"}",
	    "{\"op\":\"exec\",\"sql\":\"s\",\"params\":1}",
	    "{\"op\":\"exec\",\"sql\":\"s\",\"params\":null}",
	    "{\"op\":\"exec\",\"sql\":\"s\",\"params\":true}",
	    "{\"op\":\"exec\",\"tx\":{}}",
	    "{\"op\":\"exec\",\"tx\":\"s\"}",
	    "{\"op\":\"exec\",\"tx\":null}",
	    /* fields exec does not take */
	    "{\"op\":\"exec\",\"sql\":\"s\",\"key\":\"k\"}",
	    "{\"op\":\"exec\",\"sql\":\"s\",\"ttl\":1}",
	    /* query */
	    "{\"op\":\"query\"}",
	    "{\"op\":\"query\",\"sql\":\"\"}",
	    "{\"op\":\"query\",\"sql\":5}",
	    "{\"op\":\"query\",\"tx\":[]}",
	    "{\"op\":\"query\",\"sql\":\"s\",\"tx\":[]}",
	    "{\"op\":\"query\",\"sql\":\"s\",\"params\":\"x\"}",
	};
	struct parse p;
	size_t	     i;

	(void)state;
	for (i = 0; i < nitems(lines); i++)
		bad(lines[i]);

	ok(&p, "{\"op\":\"exec\",\"tx\":[]}");
	assert_span("tx", p.req.tx, p.req.tx_len, "[]");
	parse_free(&p);
	ok(&p, "{\"op\":\"exec\",\"sql\":\"s\",\"params\":{}}");
	assert_span("params", p.req.params, p.req.params_len, "{}");
	parse_free(&p);
	ok(&p, "{\"op\":\"exec\",\"sql\":\"s\",\"params\":[]}");
	assert_span("params", p.req.params, p.req.params_len, "[]");
	parse_free(&p);
}

/* -------------------------------------------------------- field rules */

static void
test_field_rules(void **state)
{
	static const struct {
		const char *line;
		const char *msg;
	} t[] = {
	    /* duplicates */
	    {"{\"op\":\"get\",\"key\":\"a\",\"key\":\"b\"}", "key"},
	    {"{\"op\":\"get\",\"key\":\"a\",\"k\\u0065y\":\"a\"}", "key"},
	    {"{\"op\":\"ping\",\"op\":\"ping\"}", "op"},
	    {"{\"op\":\"ping\",\"id\":1,\"id\":1}", "id"},
	    {"{\"op\":\"set\",\"key\":\"k\",\"value\":1,\"value\":1}", "value"},
	    {"{\"op\":\"set\",\"key\":\"k\",\"value\":1,\"ttl\":1,"
	     "\"ttl\":2}",
		"ttl"},
	    {"{\"op\":\"mget\",\"keys\":[],\"keys\":[]}", "keys"},
	    /* unknown fields */
	    {"{\"op\":\"set\",\"key\":\"k\",\"value\":1,\"tll\":5}", "tll"},
	    {"{\"op\":\"get\",\"Key\":\"k\"}", "Key"},
	    {"{\"op\":\"get\",\"key \":\"k\"}", "key "},
	    {"{\"Op\":\"ping\"}", "Op"},
	    {"{\"op\":\"ping\",\"\":1}", "\"\""},
	    {"{\"op\":\"ping\",\"extra\":null}", "extra"},
	    /* fields the op does not take */
	    {"{\"op\":\"ping\",\"key\":\"k\"}", "key"},
	    {"{\"op\":\"get\",\"key\":\"k\",\"value\":1}", "value"},
	    {"{\"op\":\"get\",\"key\":\"k\",\"keys\":[]}", "keys"},
	    {"{\"op\":\"mget\",\"keys\":[],\"value\":1}", "value"},
	    {"{\"op\":\"set\",\"key\":\"k\",\"value\":1,\"sql\":\"s\"}", "sql"},
	    {"{\"op\":\"del\",\"key\":\"k\",\"value\":1}", "value"},
	    {"{\"op\":\"query\",\"sql\":\"s\",\"key\":\"k\"}", "key"},
	    {"{\"op\":\"sync\",\"key\":\"k\"}", "key"},
	    {"{\"op\":\"stats\",\"sql\":\"s\"}", "sql"},
	    /* missing fields */
	    {"{\"op\":\"get\"}", "key"},
	    {"{\"op\":\"del\"}", "key"},
	    {"{\"op\":\"set\",\"key\":\"k\"}", "value"},
	    {"{\"op\":\"set\",\"value\":1}", "key"},
	    {"{\"op\":\"mget\"}", "keys"},
	    {"{\"op\":\"query\"}", "sql"},
	};
	struct parse p;
	size_t	     i;

	(void)state;
	for (i = 0; i < nitems(t); i++) {
		if (parse_s(&p, t[i].line, &lim_default) != PROTO_BAD_REQUEST)
			fail_msg("%s: status %d", t[i].line, (int)p.st);
		assert_err_has(&p, t[i].msg);
		parse_free(&p);
	}
}

/* Member names are compared after unescaping, as JSON means them. */
static void
test_member_names(void **state)
{
	struct parse p;
	char	    *line;

	(void)state;
	ok(&p, "{\"\\u006fp\":\"ping\"}");
	assert_int_equal(p.req.op, PROTO_OP_PING);
	parse_free(&p);
	ok(&p, "{\"o\\u0070\":\"get\",\"k\\u0065y\":\"x\",\"\\u0069d\":5}");
	assert_int_equal(p.req.op, PROTO_OP_GET);
	assert_span("key", p.req.key, p.req.key_len, "x");
	assert_span("id", p.req.id, p.req.id_len, "5");
	parse_free(&p);

	/* A NUL inside a name does not make it "op". */
	bad("{\"op\\u0000\":\"ping\"}");
	bad("{\"op\":\"ping\",\"id\\u0000\":1}");
	/* Long names are unknown, not truncated. */
	bad("{\"op\":\"ping\",\"if_versionxxxxxxxxxxxxxxxxx\":1}");
	bad("{\"opopopopopopopopopopop\":\"ping\"}");
	line = repeat("{\"op\":\"ping\",\"", "a", 5000, "\":1}");
	bad(line);
	xfree(line);
	line = repeat("{\"op\":\"ping\",\"", "\\u00e9", 2000, "\":1}");
	bad(line);
	xfree(line);
}

/*
 * At most PROTO_MEMBERS_MAX (16) members: the 17th is refused for that,
 * before anything else is looked at; 16 are looked at one by one (here
 * the second "id" is a duplicate).
 */
static void
test_too_many_fields(void **state)
{
	struct parse p;
	char	    *line;

	(void)state;
	line = repeat("{\"op\":\"ping\"", ",\"id\":1", 16, "}");
	assert_int_equal(parse_s(&p, line, &lim_default), PROTO_BAD_REQUEST);
	assert_err_has(&p, "too many fields");
	parse_free(&p);
	xfree(line);
	line = repeat("{\"op\":\"ping\"", ",\"id\":1", 15, "}");
	assert_int_equal(parse_s(&p, line, &lim_default), PROTO_BAD_REQUEST);
	assert_err_has(&p, "duplicate");
	parse_free(&p);
	xfree(line);
	line = repeat("{\"op\":\"ping\"", ",\"x\":[1]", 1000, "}");
	bad(line);
	xfree(line);
	line = repeat("{\"op\":\"get\",\"key\":\"k\"", ",\"id\":{}", 100, "}");
	bad(line);
	xfree(line);
}

static void
test_op_errors(void **state)
{
	static const char *const lines[] = {
	    /* unknown op */
	    "{\"op\":\"PING\"}",
	    "{\"op\":\"Get\",\"key\":\"k\"}",
	    "{\"op\":\"pingx\"}",
	    "{\"op\":\"pin\"}",
	    "{\"op\":\"\"}",
	    "{\"op\":\" ping\"}",
	    "{\"op\":\"ping \"}",
	    "{\"op\":\"none\"}",
	    "{\"op\":\"ping\\u0000\"}",
	    /* missing op */
	    "{}",
	    "{ }",
	    "{\"id\":1}",
	    "{\"key\":\"k\"}",
	    /* op not a string */
	    "{\"op\":1}",
	    "{\"op\":null}",
	    "{\"op\":true}",
	    "{\"op\":[\"ping\"]}",
	    "{\"op\":{\"op\":\"ping\"}}",
	};
	struct parse p;
	size_t	     i;

	(void)state;
	for (i = 0; i < nitems(lines); i++) {
		if (parse_s(&p, lines[i], &lim_default) != PROTO_BAD_REQUEST)
			fail_msg("%s: status %d", lines[i], (int)p.st);
		assert_err_has(&p, "op");
		parse_free(&p);
	}
}

/*
 * A "keys" field on an op that does not take it is a bad_request, however
 * many keys it holds: too_large would tell the client its mget was too big
 * when it sent no mget at all. (Fails with the parser of 5bb4805, which
 * checks the mget limit before it knows the op.)
 */
static void
test_stray_keys_not_too_large(void **state)
{
	static const struct {
		const char *line;
		const char *id;
	} t[] = {
	    {"{\"op\":\"get\",\"key\":\"k\",\"keys\":[\"a\",\"b\",\"c\","
	     "\"d\"],\"id\":1}",
		"1"},
	    {"{\"op\":\"ping\",\"keys\":[\"a\",\"b\",\"c\",\"d\"],"
	     "\"id\":2}",
		"2"},
	    {"{\"keys\":[\"a\",\"b\",\"c\",\"d\"],\"id\":3}", "3"},
	};
	struct parse p;
	size_t	     i;

	(void)state;
	for (i = 0; i < nitems(t); i++) {
		if (parse_s(&p, t[i].line, &lim_small) != PROTO_BAD_REQUEST)
			fail_msg("%s: status %d (%s), want bad_request",
			    t[i].line, (int)p.st, p.err);
		assert_span("id", p.req.id, p.req.id_len, t[i].id);
		parse_free(&p);
	}
}

/*
 * The op and the durability are JSON strings and mean their decoded text,
 * as member names already do: "p\u0069ng" is "ping". (Fails with the
 * parser of 5bb4805, which compares their raw bytes.)
 */
static void
test_escaped_enum_values(void **state)
{
	struct parse p;

	(void)state;
	ok(&p, "{\"op\":\"p\\u0069ng\"}");
	assert_int_equal(p.req.op, PROTO_OP_PING);
	parse_free(&p);
	ok(&p, "{\"op\":\"g\\u0065t\",\"key\":\"k\"}");
	assert_int_equal(p.req.op, PROTO_OP_GET);
	parse_free(&p);
	ok(&p, "{\"op\":\"set\",\"key\":\"k\",\"value\":1,"
	       "\"durability\":\"\\u0061sync\"}");
	assert_int_equal(p.req.durability, PROTO_DUR_ASYNC);
	parse_free(&p);
	ok(&p, "{\"op\":\"del\",\"key\":\"k\",\"durability\":"
	       "\"c\\u006fmmit\"}");
	assert_int_equal(p.req.durability, PROTO_DUR_COMMIT);
	parse_free(&p);
	/* Still exact: a decoded NUL or a near miss is no op. */
	bad("{\"op\":\"ping\\u0000\"}");
	bad("{\"op\":\"p\\u0069n\"}");
	bad("{\"op\":\"set\",\"key\":\"k\",\"value\":1,"
	    "\"durability\":\"\\u0041sync\"}");
}

/* ------------------------------------------------------ framing, JSON */

static void
test_not_object(void **state)
{
	static const char *const lines[] = {
	    "",
	    " ",
	    "\t \t",
	    "\r",
	    "[]",
	    "[{\"op\":\"ping\"}]",
	    "\"ping\"",
	    "\"{\\\"op\\\":\\\"ping\\\"}\"",
	    "1",
	    "-1",
	    "null",
	    "true",
	    "{",
	    "}",
	    "x",
	    "\xef\xbb\xbf{\"op\":\"ping\"}",
	    /* An object body behind some other opening byte. */
	    "[\"op\":\"ping\"}",
	    "x\"op\":\"ping\"}",
	    " (\"op\":\"ping\"}",
	};
	size_t i;

	(void)state;
	for (i = 0; i < nitems(lines); i++)
		bad(lines[i]);
	/* A NUL alone, and before the object. */
	expect_n("\0", 1, &lim_default, PROTO_BAD_REQUEST);
	expect_n("\0{\"op\":\"ping\"}", 14, &lim_default, PROTO_BAD_REQUEST);
}

static void
test_trailing(void **state)
{
	static const char *const bad_lines[] = {
	    "{\"op\":\"ping\"}x",
	    "{\"op\":\"ping\"}{}",
	    "{\"op\":\"ping\"}{\"op\":\"ping\"}",
	    "{\"op\":\"ping\"},",
	    "{\"op\":\"ping\"}}",
	    "{\"op\":\"ping\"}]",
	    "{\"op\":\"ping\"} 1",
	    "{\"op\":\"ping\"}\r\rx",
	    "{\"op\":\"ping\"}\f",
	    "{\"op\":\"ping\"}\v",
	    "{\"op\":\"ping\"}\xc2\xa0",
	    "{\"op\":\"ping\"}//",
	};
	static const char *const good_lines[] = {
	    "{\"op\":\"ping\"}\r",
	    "{\"op\":\"ping\"} \t\r",
	    "{\"op\":\"ping\"}\r\n",
	    "\r{\"op\":\"ping\"}\r",
	    "{\r\"op\"\r:\r\"ping\"\r}\r",
	};
	struct parse p;
	size_t	     i;

	(void)state;
	for (i = 0; i < nitems(bad_lines); i++)
		bad(bad_lines[i]);
	expect_n("{\"op\":\"ping\"}\0", 14, &lim_default, PROTO_BAD_REQUEST);
	for (i = 0; i < nitems(good_lines); i++) {
		ok(&p, good_lines[i]);
		assert_int_equal(p.req.op, PROTO_OP_PING);
		parse_free(&p);
	}
	/* A CRLF client's get keeps its key intact. */
	ok(&p, "{\"op\":\"get\",\"key\":\"k\"}\r");
	assert_span("key", p.req.key, p.req.key_len, "k");
	parse_free(&p);
	ok(&p, "{\"op\":\"set\",\"key\":\"k\",\"value\":[1,2]}\r");
	assert_span("value", p.req.value, p.req.value_len, "[1,2]");
	parse_free(&p);
}

/* Text that is not a valid JSON value, whatever surrounds it. */
static const char *const bad_values[] = {
    /* strings */
    "\"abc",
    "\"abc\\",
    "\"a\\xb\"",
    "\"a\\ab\"",
    "\"a\\'b\"",
    "\"a\\U0041\"",
    "\"a\\0\"",
    "\"a\\u12\"",
    "\"a\\u12g4\"",
    "\"a\\u-123\"",
    "\"a\\u 123\"",
    "\"\\udc00\"",
    "\"\\uDFFF\"",
    "\"\\ud83d\"",
    "\"\\ud83dx\"",
    "\"\\ud83d\\u0041\"",
    "\"\\ud83d\\ud83d\"",
    "\"\\ud83d\\n\"",
    "\"\\ud83d\\ue000\"",
    "\"\\ude00\\ud83d\"",
    "\"a\x01z\"",
    "\"a\x1fz\"",
    "\"a\tz\"",
    "\"a\nz\"",
    "\"a\rz\"",
    "'single'",
    /* numbers */
    "01",
    "-01",
    "00",
    "1.",
    ".5",
    "+1",
    "1e",
    "1e+",
    "1E-",
    "-",
    "--1",
    "0x10",
    "1.2.3",
    "1e2e3",
    "- 1",
    /* words */
    "tru",
    "True",
    "nul",
    "NULL",
    "falsey",
    "nan",
    "NaN",
    "Infinity",
    "-Infinity",
    "undefined",
    "bare",
    /* containers */
    "[1,]",
    "[1,,2]",
    "[,1]",
    "[,]",
    "[1 2]",
    "[1",
    "[1}",
    "{\"a\":1,}",
    "{\"a\" 1}",
    "{\"a\"::1}",
    "{\"a\":}",
    "{\"a\"}",
    "{a:1}",
    "{'a':1}",
    "{1:1}",
    "{\"a\":1 \"b\":2}",
    "{\"a\":1]",
    "{,}",
    "[/* c */]",
    "[1]]",
    "\f1",
};

static void
test_malformed_json(void **state)
{
	static const char *const templates[] = {
	    "{\"op\":\"set\",\"key\":\"k\",\"value\":%s}",
	    "{\"op\":\"set\",\"key\":\"k\",\"value\":%s,\"id\":1}",
	    "{\"op\":\"set\",\"key\":\"k\",\"value\":[{\"a\":%s}]}",
	    "{\"op\":\"set\",\"key\":\"k\",\"value\":[0,%s,2]}",
	    "{\"op\":\"exec\",\"sql\":\"s\",\"params\":{\"a\":%s}}",
	    "{\"op\":\"ping\",\"id\":%s}",
	    "{\"op\":\"get\",\"key\":%s}",
	    "{\"op\":\"mget\",\"keys\":[%s]}",
	    "{\"op\":\"ping\",\"x\":%s}",
	    "{\"op\":%s}",
	};
	static const char *const lines[] = {
	    "{\"op\":\"ping\"",
	    "{\"op\":\"ping\",",
	    "{\"op\":\"ping\",}",
	    "{\"op\" \"ping\"}",
	    "{\"op\"::\"ping\"}",
	    "{\"op\":\"ping\" \"id\":1}",
	    "{\"op\":\"ping\";\"id\":1}",
	    "{op:\"ping\"}",
	    "{\"op\":ping}",
	    "{'op':'ping'}",
	    "{\"op\":'ping'}",
	    "{,\"op\":\"ping\"}",
	    "{\"op\":\"ping\",,\"id\":1}",
	    "{\"op\":\"ping\"]",
	    "{\"op\"}",
	    "{\"op\":}",
	    "{\"op\"",
	    "{\"op",
	    "{\"",
	    "{\"op\":\"pi\x01ng\"}",
	    "{\"o\\p\":\"ping\"}",
	    "{\"op\":\"ping\",\"id\":\"\\udc00\"}",
	    "{\"op\":\"ping\",\"\\ud800\":1}",
	    "{\"op\":\"ping\",\"id\":NaN}",
	    "{\"op\":\"ping\",\"id\":1}}",
	};
	char  *line;
	size_t t, i;

	(void)state;
	for (t = 0; t < nitems(templates); t++) {
		for (i = 0; i < nitems(bad_values); i++) {
			line = subst(templates[t], bad_values[i]);
			bad(line);
			xfree(line);
		}
	}
	for (i = 0; i < nitems(lines); i++)
		bad(lines[i]);
}

/* Bytes that are not valid UTF-8 (the line may end right after them). */
static const char *const bad_utf8[] = {
    "\xc0\x80",			/* overlong NUL */
    "\xc1\xbf",			/* overlong */
    "\xe0\x80\x80",		/* overlong, 3 bytes */
    "\xe0\x9f\xbf",		/* overlong, 3 bytes */
    "\xf0\x80\x80\x80",		/* overlong, 4 bytes */
    "\xf0\x8f\xbf\xbf",		/* overlong, 4 bytes */
    "\xed\xa0\x80",		/* encoded high surrogate */
    "\xed\xbf\xbf",		/* encoded low surrogate */
    "\xed\xa0\xbd\xed\xb8\x80", /* CESU-8 pair */
    "\xf4\x90\x80\x80",		/* above U+10FFFF */
    "\xf5\x80\x80\x80", "\xf7\xbf\xbf\xbf", "\xf8\x88\x80\x80\x80",
    "\xfc\x84\x80\x80\x80\x80", "\xfe", "\xff",
    "\x80",		      /* lone continuation bytes */
    "\xbf", "a\x80z", "\xc3", /* truncated */
    "\xc3z", "\xe2\x82", "\xe2\x82z", "\xe2z\xac", "\xf0\x9f\x98",
    "\xf0\x9f\x98z", "\xf0\x9fz\x80",
    "\xc3\xa9\x80", /* valid then a stray continuation */
};

/* The same, spelled as UTF-8 that is valid. */
static const char *const good_utf8[] = {
    "\xc2\x80",
    "\xdf\xbf",
    "\xe0\xa0\x80",
    "\xed\x9f\xbf",
    "\xee\x80\x80",
    "\xef\xbf\xbf",
    "\xf0\x90\x80\x80",
    "\xf4\x8f\xbf\xbf",
    "\x7f",
    "caf\xc3\xa9",
    "\xf0\x9f\x98\x80",
};

static void
test_invalid_utf8(void **state)
{
	/* Each %s is inside a string. */
	static const char *const templates[] = {
	    "{\"op\":\"get\",\"key\":\"%s\"}",
	    "{\"op\":\"get\",\"key\":\"a%sb\"}",
	    "{\"op\":\"del\",\"key\":\"%s\",\"id\":1}",
	    "{\"op\":\"set\",\"key\":\"k\",\"value\":\"%s\"}",
	    "{\"op\":\"set\",\"key\":\"k\",\"value\":{\"a\":[1,\"%s\"]}}",
	    "{\"op\":\"set\",\"key\":\"k\",\"value\":{\"a\":{\"%s\":1}}}",
	    "{\"op\":\"mget\",\"keys\":[\"a\",\"%s\"]}",
	    "{\"op\":\"query\",\"sql\":\"SELECT '%s'\"}",
	    "{\"op\":\"exec\",\"sql\":\"s\",\"params\":{\"%s\":1}}",
	    "{\"op\":\"exec\",\"tx\":[{\"sql\":\"%s\"}]}",
	    "{\"op\":\"ping\",\"id\":\"%s\"}",
	    "{\"op\":\"ping\",\"%s\":1}",
	    "{\"op\":\"%s\"}",
	    "{\"%s\":\"ping\"}",
	};
	/* Lines that end inside the bad sequence, with no quote after. */
	static const char *const heads[] = {
	    "{\"op\":\"get\",\"key\":\"",
	    "{\"op\":\"set\",\"key\":\"k\",\"value\":[[\"",
	    "{\"op\":\"ping\",\"",
	    "{\"",
	};
	struct parse p;
	char	    *line;
	size_t	     t, i;

	(void)state;
	for (t = 0; t < nitems(templates); t++) {
		for (i = 0; i < nitems(bad_utf8); i++) {
			line = subst(templates[t], bad_utf8[i]);
			bad(line);
			xfree(line);
		}
	}
	for (t = 0; t < nitems(heads); t++) {
		for (i = 0; i < nitems(bad_utf8); i++) {
			line = xprintf("%s%s", heads[t], bad_utf8[i]);
			bad(line);
			xfree(line);
		}
		for (i = 0; i < nitems(good_utf8); i++) {
			/* Cut a valid sequence short at the end of line. */
			line = xprintf("%s%s", heads[t], good_utf8[i]);
			expect_n(line, strlen(line) - 1, &lim_default,
			    PROTO_BAD_REQUEST);
			xfree(line);
		}
	}

	/* Valid UTF-8 passes everywhere, byte for byte. */
	for (t = 0; t < 11; t++) { /* the templates of valid lines */
		for (i = 0; i < nitems(good_utf8); i++) {
			line = subst(templates[t], good_utf8[i]);
			ok(&p, line);
			parse_free(&p);
			xfree(line);
		}
	}
	for (i = 0; i < nitems(good_utf8); i++) {
		line = xprintf("{\"op\":\"set\",\"key\":\"%s\",\"value\":"
			       "[ \"%s\" ]}",
		    good_utf8[i], good_utf8[i]);
		ok(&p, line);
		assert_span("key", p.req.key, p.req.key_len, good_utf8[i]);
		xfree(line);
		line = xprintf("[\"%s\"]", good_utf8[i]);
		assert_span("value", p.req.value, p.req.value_len, line);
		parse_free(&p);
		xfree(line);
	}
}

static void
test_utf8_valid(void **state)
{
	static const char *const more_good[] = {
	    "",
	    "a",
	    "plain ascii",
	    "\xc3\xa9t\xc3\xa9",
	    "\xe2\x82\xac\xf0\x9f\x98\x80z",
	};
	char  *buf;
	size_t i, n;

	(void)state;
	for (i = 0; i < nitems(good_utf8) + nitems(more_good); i++) {
		const char *s = i < nitems(good_utf8)
				    ? good_utf8[i]
				    : more_good[i - nitems(good_utf8)];

		n = strlen(s);
		buf = xmalloc(n);
		memcpy(buf, s, n);
		if (!proto_utf8_valid(buf, n))
			fail_msg("valid UTF-8 #%zu rejected", i);
		xfree(buf);
	}
	for (i = 0; i < nitems(bad_utf8); i++) {
		n = strlen(bad_utf8[i]);
		buf = xmalloc(n);
		memcpy(buf, bad_utf8[i], n);
		if (proto_utf8_valid(buf, n))
			fail_msg("invalid UTF-8 #%zu accepted", i);
		xfree(buf);
	}
	/* NUL is a character; the length, not a NUL, ends the buffer. */
	assert_true(proto_utf8_valid("a\0b", 3));
	assert_true(proto_utf8_valid("a\xff", 1));
	assert_false(proto_utf8_valid("\xc3\xa9", 1));
	assert_false(proto_utf8_valid("\xe2\x82\xac", 2));
	assert_false(proto_utf8_valid("\xf0\x9f\x98\x80", 3));
	assert_true(proto_utf8_valid("\xf0\x9f\x98\x80", 4));
	assert_true(proto_utf8_valid(NULL, 0));
}

/* --------------------------------------------------------------- depth */

static void
test_depth_limit(void **state)
{
	static const char *const good[] = {
	    /* lim_small: depth_max 4, the request object is 1. */
	    "{\"op\":\"set\",\"key\":\"k\",\"value\":[[[1]]]}",
	    "{\"op\":\"set\",\"key\":\"k\",\"value\":[[[]]]}",
	    "{\"op\":\"set\",\"key\":\"k\",\"value\":{\"a\":{\"b\":{}}}}",
	    "{\"op\":\"set\",\"key\":\"k\",\"value\":[{\"a\":[]}]}",
	    /* Siblings do not add up. */
	    "{\"op\":\"set\",\"key\":\"k\",\"value\":[[[1]],[[2]],[[3]]]}",
	    ("{\"op\":\"set\",\"key\":\"k\",\"value\":{\"a\":[[]],\"b\":"
	     "[[]],\"c\":{\"d\":{}}}}"),
	    "{\"op\":\"exec\",\"sql\":\"s\",\"params\":[[[1]]]}",
	    "{\"op\":\"exec\",\"tx\":[{\"sql\":\"s\",\"params\":[1]}]}",
	    "{\"op\":\"mget\",\"keys\":[\"a\"]}",
	};
	static const char *const deep[] = {
	    "{\"op\":\"set\",\"key\":\"k\",\"value\":[[[[1]]]]}",
	    "{\"op\":\"set\",\"key\":\"k\",\"value\":[[[[]]]]}",
	    ("{\"op\":\"set\",\"key\":\"k\",\"value\":{\"a\":{\"b\":{\"c\":"
	     "{}}}}}"),
	    "{\"op\":\"set\",\"key\":\"k\",\"value\":[[[1]],[[[2]]]]}",
	    "{\"op\":\"set\",\"key\":\"k\",\"value\":[1,[2,[3,[4]]]]}",
	    "{\"op\":\"exec\",\"sql\":\"s\",\"params\":[[[[1]]]]}",
	    "{\"op\":\"exec\",\"tx\":[{\"sql\":\"s\",\"params\":[[1]]}]}",
	    "{\"op\":\"ping\",\"x\":[[[[1]]]]}",
	};
	static const struct proto_limits one = {1, 100};
	struct parse			 p;
	size_t				 i;

	(void)state;
	for (i = 0; i < nitems(good); i++) {
		ok_lim(&p, good[i], &lim_small);
		parse_free(&p);
	}
	for (i = 0; i < nitems(deep); i++)
		bad_lim(deep[i], &lim_small);

	ok_lim(&p, "{\"op\":\"ping\"}", &one);
	parse_free(&p);
	ok_lim(&p, "{\"op\":\"get\",\"key\":\"k\"}", &one);
	parse_free(&p);
	bad_lim("{\"op\":\"mget\",\"keys\":[]}", &one);
	bad_lim("{\"op\":\"set\",\"key\":\"k\",\"value\":{}}", &one);
}

/* 100000 levels: a bad_request, with no crash or stack overflow. */
static void
test_depth_huge(void **state)
{
	static const struct {
		const char *head;
		const char *open;
		const char *mid;
		const char *close;
		const char *tail;
	} t[] = {
	    {"{\"op\":\"set\",\"key\":\"k\",\"value\":", "[", "1", "]", "}"},
	    {"{\"op\":\"set\",\"key\":\"k\",\"value\":", "[", "", "", ""},
	    {"{\"op\":\"set\",\"key\":\"k\",\"value\":", "{\"a\":", "1", "}",
		"}"},
	    {"{\"op\":\"exec\",\"sql\":\"s\",\"params\":", "[", "", "]", "}"},
	    {"{\"op\":\"mget\",\"keys\":", "[", "\"a\"", "]", "}"},
	    {"{\"op\":\"ping\",\"id\":", "[", "", "]", "}"},
	    {"", "[", "", "]", ""},
	    {"", "{\"a\":", "", "}", ""},
	};
	enum { DEPTH = 100000 };
	char  *open, *line;
	size_t i, n;

	(void)state;
	for (i = 0; i < nitems(t); i++) {
		open = repeat(t[i].head, t[i].open, DEPTH, t[i].mid);
		line = repeat(open, t[i].close, DEPTH, t[i].tail);
		n = strlen(line);
		expect_n(line, n, &lim_default, PROTO_BAD_REQUEST);
		expect_n(line, n, &lim_small, PROTO_BAD_REQUEST);
		xfree(open);
		xfree(line);
	}
}

/* ----------------------------------------------------- never crashes */

static const char *const sweep_lines[] = {
    "{\"op\":\"set\",\"key\":\"k\\u00e9\\n\",\"value\":{\"a\":[1,-2.5e3,"
    "true,null,\"s\\\"x\"]},\"ttl\":60,\"if_version\":0,"
    "\"durability\":\"commit\",\"id\":\"r1\"}",
    "{\"id\":7,\"op\":\"mget\",\"keys\":[\"a\",\"b\\\\c\","
    "\"\\ud83d\\ude00\"]}",
    "{\"op\":\"exec\",\"tx\":[{\"sql\":\"INSERT INTO t VALUES(?)\","
    "\"params\":[1]},{\"sql\":\"DELETE FROM t\"}],"
    "\"durability\":\"async\",\"id\":null}",
    "{\"op\":\"query\",\"sql\":\"SELECT * FROM t WHERE a = :a\","
    "\"params\":{\"a\":\"caf\xc3\xa9\"},\"id\":1.5}",
    "{ \"op\" : \"get\" , \"key\" : \"x\" }",
    "{\"op\":\"del\",\"key\":\"\\u00e9\xe2\x82\xac\","
    "\"durability\":\"journal\",\"id\":true}",
    "{\"op\":\"ping\"}",
    "{\"op\":\"exec\",\"sql\":\"s\\t\\/\",\"params\":[[{}],\"\"]}",
};

static const unsigned char sweep_bytes[] = {
    0x00,
    '"',
    '\\',
    '{',
    '}',
    '[',
    ']',
    ',',
    ':',
    0x80,
    0xff,
    ' ',
    '\n',
    '\r',
    '0',
    '-',
    'e',
    'u',
    'n',
    0xc3,
    0xed,
    0xf4,
};

/* Parse len bytes of line; returns the status after checking invariants. */
static enum proto_status
sweep_one(const char *line, size_t len, const struct proto_limits *lim)
{
	struct parse	       p, again;
	struct proto_keys_iter it;
	const char	      *key;
	size_t		       klen, count = 0;
	enum proto_status      st;
	char		      *wrap;

	st = parse_n(&p, line, len, lim);
	if (st == PROTO_OK && p.req.op == PROTO_OP_MGET) {
		proto_keys_init(&it, &p.req);
		while (proto_keys_next(&it, &key, &klen)) {
			check_span_in_line(&p, "mget key", key, klen);
			assert_true(klen >= 1 && klen <= 1024);
			assert_true(proto_utf8_valid(key, klen));
			count++;
			assert_true(count <= p.req.nkeys);
		}
		assert_int_equal(count, p.req.nkeys);
	}
	if (st == PROTO_OK && p.req.value != NULL) {
		/* The compacted value is valid JSON and compacts to itself. */
		wrap = xprintf("{\"op\":\"set\",\"key\":\"k\",\"value\":%.*s}",
		    (int)p.req.value_len, p.req.value);
		ok_lim(&again, wrap, &lim_default);
		assert_span_n("value", again.req.value, again.req.value_len,
		    p.req.value, p.req.value_len);
		parse_free(&again);
		xfree(wrap);
	}
	parse_free(&p);
	return st;
}

static void
test_sweep_prefixes(void **state)
{
	size_t i, n, len;

	(void)state;
	for (i = 0; i < nitems(sweep_lines); i++) {
		len = strlen(sweep_lines[i]);
		for (n = 0; n < len; n++) {
			if (sweep_one(sweep_lines[i], n, &lim_default) !=
			    PROTO_BAD_REQUEST)
				fail_msg("prefix of %zu bytes of line %zu "
					 "accepted",
				    n, i);
		}
		assert_int_equal(
		    sweep_one(sweep_lines[i], len, &lim_default), PROTO_OK);
	}
}

static void
test_sweep_mutations(void **state)
{
	static const struct proto_limits *const lims[] = {
	    &lim_default,
	    &lim_small,
	};
	char  *copy;
	size_t i, pos, b, l, len;

	(void)state;
	for (i = 0; i < nitems(sweep_lines); i++) {
		len = strlen(sweep_lines[i]);
		copy = xmalloc(len + 1);
		for (l = 0; l < nitems(lims); l++) {
			for (pos = 0; pos < len; pos++) {
				/* Each byte replaced. */
				for (b = 0; b < sizeof(sweep_bytes); b++) {
					memcpy(copy, sweep_lines[i], len);
					copy[pos] = (char)sweep_bytes[b];
					sweep_one(copy, len, lims[l]);
				}
				/* Each byte removed. */
				memcpy(copy, sweep_lines[i], pos);
				memcpy(copy + pos, sweep_lines[i] + pos + 1,
				    len - pos - 1);
				sweep_one(copy, len - 1, lims[l]);
				/* Each byte doubled. */
				memcpy(copy, sweep_lines[i], pos + 1);
				memcpy(copy + pos + 1, sweep_lines[i] + pos,
				    len - pos);
				sweep_one(copy, len + 1, lims[l]);
			}
		}
		xfree(copy);
	}
}

#define T(f) cmocka_unit_test_teardown(f, free_live)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_op_ping),
	    T(test_op_get),
	    T(test_op_mget),
	    T(test_op_set),
	    T(test_op_del),
	    T(test_op_exec),
	    T(test_op_query),
	    T(test_op_sync_stats),
	    T(test_names),
	    T(test_req_reset),
	    T(test_id_echo_ok),
	    T(test_id_echo_errors),
	    T(test_id_not_scalar),
	    T(test_id_not_echoed_when_malformed),
	    T(test_key_unescape),
	    T(test_key_length),
	    T(test_value_compaction),
	    T(test_mget_keys),
	    T(test_mget_limit),
	    T(test_mget_bad),
	    T(test_ttl),
	    T(test_if_version),
	    T(test_durability),
	    T(test_exec_rules),
	    T(test_field_rules),
	    T(test_member_names),
	    T(test_too_many_fields),
	    T(test_op_errors),
	    T(test_stray_keys_not_too_large),
	    T(test_escaped_enum_values),
	    T(test_not_object),
	    T(test_trailing),
	    T(test_malformed_json),
	    T(test_invalid_utf8),
	    T(test_utf8_valid),
	    T(test_depth_limit),
	    T(test_depth_huge),
	    T(test_sweep_prefixes),
	    T(test_sweep_mutations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

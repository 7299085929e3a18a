/*
 * test_resp.c -- unit tests of the RESP request parser (daemon/resp.c).
 *
 * Every message is parsed whole, then cut at every byte: each strict
 * prefix must ask for more and leave nothing parsed, and the whole must
 * then parse to the same command. Prefixes are copied into buffers of
 * exactly their size, so that a read past the end is caught by the
 * sanitizers and valgrind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/resp.h"

static const struct resp_limits limits = {
    .args_max = 16,
    .bulk_max = 64,
    .inline_max = 80,
};

static struct resp_cmd cmd;

/* Parse an exact-size copy of buf[0..len). */
static enum resp_status
parse_copy(const char *buf, size_t len, const struct resp_limits *lim)
{
	char		*copy = malloc(len > 0 ? len : 1);
	enum resp_status st;

	assert_non_null(copy);
	memcpy(copy, buf, len);
	st = resp_parse(copy, len, lim, &cmd);
	/* The views point into copy: check them before it goes. */
	if (st == RESP_OK) {
		size_t i;

		for (i = 0; i < cmd.argc; i++) {
			if (cmd.argv[i].p >= cmd.scratch &&
			    cmd.argv[i].p < cmd.scratch + sizeof(cmd.scratch)) {
				/* An unquoted copy: inline only. */
				assert_true(cmd.is_inline);
				assert_true(cmd.argv[i].p + cmd.argv[i].len <=
					    cmd.scratch + cmd.scratch_len);
				continue;
			}
			assert_true(cmd.argv[i].p >= copy);
			assert_true(
			    cmd.argv[i].p + cmd.argv[i].len <= copy + len);
			/* Point the view back into buf for the caller. */
			cmd.argv[i].p = buf + (cmd.argv[i].p - copy);
		}
	}
	free(copy);
	return st;
}

struct good {
	const char *msg;
	size_t	    len; /* 0: strlen */
	size_t	    argc;
	const char *argv[6];
	size_t	    arglen[6]; /* 0: strlen */
};

static const struct good goods[] = {
    {"*1\r\n$4\r\nPING\r\n", 0, 1, {"PING"}, {0}},
    {"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n", 0, 3,
	{"SET", "k", "hello"}, {0}},
    {"*2\r\n$3\r\nGET\r\n$0\r\n\r\n", 0, 2, {"GET", ""}, {0}},
    /* Binary-safe: CR, LF and NUL inside a bulk argument. */
    {"*2\r\n$4\r\nECHO\r\n$5\r\na\r\n\0b\r\n", 25, 2, {"ECHO", "a\r\n\0b"},
	{0, 5}},
    {"PING\r\n", 0, 1, {"PING"}, {0}},
    {"PING\n", 0, 1, {"PING"}, {0}},
    {"set  k\tv \r\n", 0, 3, {"set", "k", "v"}, {0}},
    {"*0\r\n", 0, 0, {NULL}, {0}},
    {"*-1\r\n", 0, 0, {NULL}, {0}},
    {"\r\n", 0, 0, {NULL}, {0}},
    {"*1\r\n$10\r\n0123456789\r\n", 0, 1, {"0123456789"}, {0}},
    /* Inline quoting, as sdssplitargs() does it. */
    {"SET \"a b\" \"x\\ny\"\r\n", 0, 3, {"SET", "a b", "x\ny"}, {0}},
    {"\"\" ''\n", 0, 2, {"", ""}, {0}},
    {"ECHO \"\\x41\\x6a\\x4A\\x7\" \"\\t\\r\\b\\a\\\\\\\"\\q\"\n", 0, 3,
	{"ECHO", "AjJx7", "\t\r\b\a\\\"q"}, {0}},
    {"\"\\x00\\xfF\" \"\\x\" \"\\xg0\"\n", 0, 3, {"\0\xff", "x", "xg0"},
	{2, 0, 0}},
    {"'it\\'s' 'a\\nb\\c' '\"' \"'\"\n", 0, 4, {"it's", "a\\nb\\c", "\"", "'"},
	{0}},
    {"a\"b c\" x'y z' \"u\"\t'v'\r\n", 0, 4, {"ab c", "xy z", "u", "v"}, {0}},
    {"a\vb \f\vc\t\r\"d\"\r\n", 0, 3, {"a\vb", "c", "d"}, {0}},
    {"\"a\"\r\r\n", 0, 1, {"a"}, {0}},
};

static void
check_good(const struct good *g)
{
	size_t len = g->len ? g->len : strlen(g->msg), i;

	assert_int_equal(parse_copy(g->msg, len, &limits), RESP_OK);
	assert_int_equal(cmd.consumed, len);
	assert_int_equal(cmd.argc, g->argc);
	for (i = 0; i < g->argc; i++) {
		size_t al = g->arglen[i] ? g->arglen[i] : strlen(g->argv[i]);

		assert_int_equal(cmd.argv[i].len, al);
		assert_memory_equal(cmd.argv[i].p, g->argv[i], al);
	}
}

static void
test_whole(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(goods) / sizeof(goods[0]); i++)
		check_good(&goods[i]);
}

/* Every strict prefix asks for more; prefix then the rest parses. */
static void
test_split_everywhere(void **state)
{
	size_t i, k;

	(void)state;
	for (i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
		const struct good *g = &goods[i];
		size_t		   len = g->len ? g->len : strlen(g->msg);

		for (k = 0; k < len; k++) {
			assert_int_equal(
			    parse_copy(g->msg, k, &limits), RESP_NEED_MORE);
			assert_int_equal(cmd.argc, 0);
			/* The rest arrives: the whole parses the same. */
			check_good(g);
		}
	}
}

/* Byte by byte, as a slow client sends: more is asked until the end. */
static void
test_byte_by_byte(void **state)
{
	size_t i, k;
	char   buf[64];

	(void)state;
	for (i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
		const struct good *g = &goods[i];
		size_t		   len = g->len ? g->len : strlen(g->msg);
		enum resp_status   st = RESP_NEED_MORE;

		assert_true(len <= sizeof(buf));
		for (k = 1; k <= len; k++) {
			buf[k - 1] = g->msg[k - 1];
			st = parse_copy(buf, k, &limits);
			if (k < len)
				assert_int_equal(st, RESP_NEED_MORE);
		}
		assert_int_equal(st, RESP_OK);
		assert_int_equal(cmd.consumed, len);
	}
}

/* Pipelined commands: each parse takes one and says where it ended. */
static void
test_pipeline(void **state)
{
	const char *buf = "*1\r\n$4\r\nPING\r\nECHO hi\r\n*2\r\n$3\r\nGET\r\n"
			  "$1\r\nk\r\n";
	size_t	    len = strlen(buf), off = 0;

	(void)state;
	assert_int_equal(resp_parse(buf, len, &limits, &cmd), RESP_OK);
	assert_int_equal(cmd.argc, 1);
	off += cmd.consumed;
	assert_int_equal(
	    resp_parse(buf + off, len - off, &limits, &cmd), RESP_OK);
	assert_int_equal(cmd.argc, 2);
	assert_true(cmd.is_inline);
	assert_memory_equal(cmd.argv[1].p, "hi", 2);
	off += cmd.consumed;
	assert_int_equal(
	    resp_parse(buf + off, len - off, &limits, &cmd), RESP_OK);
	assert_int_equal(cmd.argc, 2);
	assert_memory_equal(cmd.argv[1].p, "k", 1);
	off += cmd.consumed;
	assert_int_equal(off, len);
	assert_int_equal(
	    resp_parse(buf + off, 0, &limits, &cmd), RESP_NEED_MORE);
}

struct bad {
	const char *msg;
	const char *why; /* a word of the error */
};

static const struct bad bads[] = {
    {"*x\r\n", "multibulk length"},
    {"*\r\n", "multibulk length"},
    {"*-2\r\n", "multibulk length"},
    {"*1\n", "multibulk length"},
    {"*1\rX", "multibulk length"},
    {"*99999999999999999999\r\n", "multibulk length"},
    {"*1234567890123456789012345", "multibulk length"},
    {"*17\r\n", "too many arguments"},
    {"*1\r\n:4\r\n", "expected '$', got ':'"},
    {"*1\r\n$-1\r\n", "bulk length"},
    {"*1\r\n$abc\r\n", "bulk length"},
    {"*1\r\n$\r\n", "bulk length"},
    {"*1\r\n$99999999999999999999999\r\n", "bulk length"},
    {"*1\r\n$65\r\n", "too large"},
    {"*1\r\n$4\r\nPINGxx", "CRLF"},
    {"*1\r\n$4\r\nPING\rx", "CRLF"},
    {"*1\r\n$4\r\nPINGx", "CRLF"},
    {"*2\r\n$3\r\nGET\r\nxx", "expected '$', got 'x'"},
    {"a b c d e f g h i j k l m n o p q\r\n", "too many arguments"},
    {"a b c d e f g h i j k l m n o p \"q\"\r\n", "too many arguments"},
    /* Quotes left open, or closed against the next byte. */
    {"SET \"a b\r\n", "unbalanced quotes"},
    {"SET 'a b\n", "unbalanced quotes"},
    {"SET \"a\\\"\r\n", "unbalanced quotes"},
    {"SET \"a\\\n", "unbalanced quotes"},
    {"SET 'a\\'\n", "unbalanced quotes"},
    {"SET \"a\"b\n", "unbalanced quotes"},
    {"SET 'a'b\n", "unbalanced quotes"},
    {"SET \"a\"\"b\"\n", "unbalanced quotes"},
    {"SET k \"\n", "unbalanced quotes"},
    {"SET k a\"b\n", "unbalanced quotes"},
};

static void
test_malformed(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		const char *m = bads[i].msg;

		if (parse_copy(m, strlen(m), &limits) != RESP_ERROR)
			fail_msg("accepted: %s", m);
		assert_non_null(cmd.error);
		if (strstr(cmd.error, bads[i].why) == NULL)
			fail_msg("%s: error \"%s\"", m, cmd.error);
	}
}

/*
 * A NUL where '$' should be: the message names a space instead, so that
 * it is not cut short at the NUL.
 */
static void
test_malformed_nul(void **state)
{
	static const char m[] = "*1\r\n\0\r\n";

	(void)state;
	assert_int_equal(parse_copy(m, sizeof(m) - 1, &limits), RESP_ERROR);
	assert_non_null(cmd.error);
	assert_string_equal(cmd.error, "Protocol error: expected '$', got ' '");
}

static void
test_limits(void **state)
{
	struct resp_limits lim = limits;
	char		   line[200];

	(void)state;
	/* Exactly at the limits is fine. */
	memset(line, 'a', sizeof(line));
	memcpy(line + 80, "\n", 1);
	assert_int_equal(parse_copy(line, 81, &lim), RESP_OK);
	assert_int_equal(cmd.argv[0].len, 80);
	/* An inline line longer than inline_max, ended or not. */
	memcpy(line + 81, "\n", 1);
	line[80] = 'a';
	assert_int_equal(parse_copy(line, 82, &lim), RESP_ERROR);
	assert_int_equal(parse_copy(line, 81, &lim), RESP_ERROR);
	assert_int_equal(parse_copy(line, 80, &lim), RESP_NEED_MORE);
	/* A bulk of exactly bulk_max. */
	snprintf(line, sizeof(line), "*1\r\n$64\r\n%064d\r\n", 0);
	assert_int_equal(parse_copy(line, strlen(line), &lim), RESP_OK);
	lim.bulk_max = 63;
	assert_int_equal(parse_copy(line, strlen(line), &lim), RESP_ERROR);
	/* args_max is taken, and capped by RESP_ARGS_CAP. */
	lim.args_max = 1;
	assert_int_equal(parse_copy("*2\r\n", 4, &lim), RESP_ERROR);
	assert_int_equal(parse_copy("a b\n", 4, &lim), RESP_ERROR);
	lim.args_max = (size_t)-1;
	snprintf(line, sizeof(line), "*%d\r\n", RESP_ARGS_CAP + 1);
	assert_int_equal(parse_copy(line, strlen(line), &lim), RESP_ERROR);
	snprintf(line, sizeof(line), "*%d\r\n", RESP_ARGS_CAP);
	assert_int_equal(parse_copy(line, strlen(line), &lim), RESP_NEED_MORE);
}

/*
 * Inline arguments stay views into the input unless they hold an escape
 * or a quote inside them; those are copies that do not overlap.
 */
static void
test_inline_views(void **state)
{
	const char *buf = "SET \"a b\" 'c' d \"\"\n";
	const char *esc = "SET \"a\\tb\" x\"c d\" 'e\\'f'\n";

	(void)state;
	assert_int_equal(resp_parse(buf, strlen(buf), &limits, &cmd), RESP_OK);
	assert_int_equal(cmd.argc, 5);
	assert_ptr_equal(cmd.argv[1].p, buf + 5);
	assert_ptr_equal(cmd.argv[2].p, buf + 11);
	assert_ptr_equal(cmd.argv[3].p, buf + 14);
	assert_int_equal(cmd.argv[4].len, 0);
	assert_int_equal(cmd.scratch_len, 0);

	assert_int_equal(resp_parse(esc, strlen(esc), &limits, &cmd), RESP_OK);
	assert_int_equal(cmd.argc, 4);
	assert_ptr_equal(cmd.argv[0].p, esc);
	assert_ptr_equal(cmd.argv[1].p, cmd.scratch);
	assert_memory_equal(cmd.argv[1].p, "a\tb", 3);
	assert_ptr_equal(cmd.argv[2].p, cmd.scratch + 3);
	assert_memory_equal(cmd.argv[2].p, "xc d", 4);
	assert_ptr_equal(cmd.argv[3].p, cmd.scratch + 7);
	assert_memory_equal(cmd.argv[3].p, "e'f", 3);
	assert_int_equal(cmd.scratch_len, 10);
}

/* Quoted lines are held to the same limits, up to RESP_INLINE_CAP. */
static void
test_inline_limits(void **state)
{
	struct resp_limits lim = limits;
	char		  *line;
	size_t		   i, n = RESP_INLINE_CAP;

	(void)state;
	assert_non_null(line = malloc(n + 2));
	/* 80 bytes of escapes: the whole line, at inline_max. */
	line[0] = '"';
	for (i = 1; i < 79; i += 2)
		memcpy(line + i, "\\t", 2);
	memcpy(line + 79, "\"\n", 2);
	assert_int_equal(parse_copy(line, 81, &lim), RESP_OK);
	assert_int_equal(cmd.argc, 1);
	assert_int_equal(cmd.argv[0].len, 39);
	assert_int_equal(cmd.argv[0].p[38], '\t');
	/* Past it, the quote makes no difference. */
	memcpy(line + 79, "x\"\n", 3);
	assert_int_equal(parse_copy(line, 82, &lim), RESP_ERROR);

	/* A line of RESP_INLINE_CAP bytes nearly all copied: it fits. */
	lim.inline_max = (size_t)-1;
	memset(line, 'b', n + 2);
	memcpy(line, "a\"", 2);
	memcpy(line + n - 1, "\"\n", 2);
	assert_int_equal(parse_copy(line, n + 1, &lim), RESP_OK);
	assert_int_equal(cmd.argc, 1);
	assert_int_equal(cmd.argv[0].len, n - 2);
	assert_int_equal(cmd.scratch_len, n - 2);
	/* One more byte is past the cap, whatever inline_max says. */
	memcpy(line + n - 1, "b\"\n", 3);
	assert_int_equal(parse_copy(line, n + 2, &lim), RESP_ERROR);
	assert_non_null(strstr(cmd.error, "too big"));
	free(line);
}

/* Any byte sequence gives an answer without reading past the end. */
static void
test_noise(void **state)
{
	/* Mostly protocol bytes, quotes and escapes too, to go deep. */
	static const char bytes[] = "*$\r\n0123-9ab\"' \\x";
	unsigned char	  buf[48];
	uint32_t	  x = 12345;
	size_t		  i, n, len;

	(void)state;
	for (n = 0; n < 20000; n++) {
		len = n % sizeof(buf);
		for (i = 0; i < len; i++) {
			x = x * 1103515245 + 12345;
			buf[i] = (unsigned char)
			    bytes[(x >> 16) % (sizeof(bytes) - 1)];
		}
		switch (parse_copy((char *)buf, len, &limits)) {
		case RESP_OK: assert_true(cmd.consumed <= len); break;
		case RESP_ERROR: assert_non_null(cmd.error); break;
		case RESP_NEED_MORE: break;
		default: fail();
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_whole),
	    cmocka_unit_test(test_split_everywhere),
	    cmocka_unit_test(test_byte_by_byte),
	    cmocka_unit_test(test_pipeline),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_malformed_nul),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_inline_views),
	    cmocka_unit_test(test_inline_limits),
	    cmocka_unit_test(test_noise),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

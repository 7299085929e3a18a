/*
 * fuzz_resp.c -- fuzz target of the RESP request parser (daemon/resp.c).
 *
 * The input is a byte stream as a Redis client would send it, parsed the
 * way a connection reads it: one command after the other from an exact-
 * size heap copy, each resp_parse() starting where the last one ended;
 * RESP_NEED_MORE ends the stream (the rest waits for bytes that never
 * come), RESP_ERROR too (the server answers and closes).
 *
 * Invariants checked on every command:
 *  - RESP_OK: it used at least one byte and no more than it was given,
 *    argc within the limits, every argument inside the bytes it used or
 *    (an inline argument unquoted into a copy) inside the used part of
 *    the command's scratch, bulk arguments within bulk_max, inline
 *    arguments without a \n and no more bytes in all than the line, an
 *    inline line within inline_max;
 *  - RESP_ERROR comes with a message; RESP_NEED_MORE and RESP_OK without;
 *  - the command's bytes alone, in a buffer of their own, parse the same
 *    (what follows a command does not change it: the same views, the
 *    same copies), and a cut of them is
 *    RESP_NEED_MORE, never an error or another command: a command split
 *    across reads parses as the whole one does.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/resp.h"
#include "fuzz.h"

/* Small limits, so that short inputs reach them. */
static const struct resp_limits fuzz_limits = {8, 64, 128};

static struct resp_cmd cmd1, cmd2; /* 80 KB each: off the stack */

/* Does [p, p+n) lie inside [base, base+len)? */
static int
inside(const char *base, size_t len, const char *p, size_t n)
{
	return p != NULL && p >= base && n <= len &&
	       (size_t)(p - base) <= len - n;
}

static void
check_ok(const char *buf, size_t len, const struct resp_cmd *c)
{
	size_t i, k, total = 0;

	FUZZ_CHECK(c->consumed > 0 && c->consumed <= len);
	FUZZ_CHECK(c->error == NULL);
	FUZZ_CHECK(c->argc <= fuzz_limits.args_max && c->argc <= RESP_ARGS_CAP);
	if (c->is_inline)
		FUZZ_CHECK(c->consumed - 1 <= fuzz_limits.inline_max &&
			   buf[c->consumed - 1] == '\n');
	for (i = 0; i < c->argc; i++) {
		if (!c->is_inline) {
			FUZZ_CHECK(inside(
			    buf, c->consumed, c->argv[i].p, c->argv[i].len));
			FUZZ_CHECK(c->argv[i].len <= fuzz_limits.bulk_max);
			continue;
		}
		if (!inside(buf, c->consumed, c->argv[i].p, c->argv[i].len)) {
			FUZZ_CHECK(inside(c->scratch, c->scratch_len,
			    c->argv[i].p, c->argv[i].len));
		} else {
			for (k = 0; k < c->argv[i].len; k++)
				FUZZ_CHECK(c->argv[i].p[k] != '\n');
		}
		total += c->argv[i].len;
	}
	FUZZ_CHECK(total < c->consumed || c->argc == 0);
}

/* Whether argument a of c (parsed from buf) is a copy in its scratch. */
static int
is_copy(const struct resp_cmd *c, const struct resp_arg *a)
{
	return a->p >= c->scratch && a->p < c->scratch + sizeof(c->scratch);
}

/* Parse buf[0..n) from a heap copy of exactly n bytes. */
static enum resp_status
parse_copy(const char *buf, size_t n, struct resp_cmd *out, char **copy)
{
	if ((*copy = malloc(n > 0 ? n : 1)) == NULL)
		abort();
	if (n > 0)
		memcpy(*copy, buf, n);
	return resp_parse(*copy, n, &fuzz_limits, out);
}

/* The command at buf (cmd1) parses the same alone, and cut short. */
static void
check_alone(const char *buf, const struct resp_cmd *c)
{
	const size_t cuts[3] = {c->consumed - 1, c->consumed / 2, 1};
	size_t	     i;
	char	    *copy;

	FUZZ_CHECK(parse_copy(buf, c->consumed, &cmd2, &copy) == RESP_OK);
	FUZZ_CHECK(cmd2.consumed == c->consumed && cmd2.argc == c->argc &&
		   cmd2.is_inline == c->is_inline);
	for (i = 0; i < c->argc; i++) {
		FUZZ_CHECK(cmd2.argv[i].len == c->argv[i].len);
		FUZZ_CHECK(
		    is_copy(&cmd2, &cmd2.argv[i]) == is_copy(c, &c->argv[i]));
		if (is_copy(c, &c->argv[i]))
			FUZZ_CHECK(memcmp(cmd2.argv[i].p, c->argv[i].p,
				       c->argv[i].len) == 0);
		else
			FUZZ_CHECK(cmd2.argv[i].p - copy == c->argv[i].p - buf);
	}
	free(copy);
	for (i = 0; i < 3; i++) {
		if (cuts[i] == 0 || cuts[i] >= c->consumed)
			continue;
		FUZZ_CHECK(
		    parse_copy(buf, cuts[i], &cmd2, &copy) == RESP_NEED_MORE);
		FUZZ_CHECK(cmd2.error == NULL);
		free(copy);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum resp_status st;
	size_t		 off = 0;
	char		*buf;

	if ((buf = malloc(size > 0 ? size : 1)) == NULL)
		abort();
	if (size > 0)
		memcpy(buf, data, size);
	while (off < size) {
		st = resp_parse(buf + off, size - off, &fuzz_limits, &cmd1);
		FUZZ_CHECK(
		    st == RESP_OK || st == RESP_NEED_MORE || st == RESP_ERROR);
		if (st == RESP_ERROR) {
			FUZZ_CHECK(cmd1.error != NULL && cmd1.error[0] != '\0');
			break;
		}
		if (st == RESP_NEED_MORE) {
			FUZZ_CHECK(cmd1.error == NULL);
			break;
		}
		check_ok(buf + off, size - off, &cmd1);
		check_alone(buf + off, &cmd1);
		off += cmd1.consumed;
	}
	free(buf);
	return 0;
}

/*
 * resp.h -- parsing of RESP (the Redis serialization protocol) requests.
 *
 * resp_parse() is a pure function over a byte buffer: it reads one command
 * from the start of buf[0..len) and says whether the buffer holds all of
 * it (RESP_OK, with argv views into buf and the number of bytes it used),
 * only a prefix of it (RESP_NEED_MORE: call again with more bytes), or
 * something that is not RESP within the limits (RESP_ERROR, with a static
 * message). It allocates nothing, keeps no state between calls and never
 * reads outside buf[0..len), so it can be fed any bytes.
 *
 * Two forms are taken, as a Redis server takes them:
 *
 *	*<argc>\r\n then argc times $<len>\r\n<len bytes>\r\n
 *	an inline command: one line ended by \n (a \r before it is
 *	dropped), for people typing at a terminal, split into arguments
 *	as Redis and redis-cli split it (sdssplitargs).
 *
 * Inline splitting: arguments are separated by blanks (space, \t, \r,
 * \v, \f). "double quotes" take the escapes \n \r \t \b \a \\ \" and
 * \xHH (any other \c is c); in 'single quotes' only \' is an escape.
 * A quote may open in the middle of an argument (a"b c" is "ab c"); a
 * closing quote must be followed by a blank or the end of the line, and
 * a quote left open is RESP_ERROR "unbalanced quotes in request". Unlike
 * Redis, a NUL byte is an ordinary byte rather than the end of the line.
 *
 * An argument is a view into buf when its bytes are a run of buf (a word
 * without quotes, or a quoted one without escapes); only the others are
 * copied, into the command's own scratch (a quoted argument is never
 * longer than its source, so inline_max bytes of scratch always do).
 *
 * A command with no arguments (*0, *-1 or an empty inline line) is
 * RESP_OK with argc 0: the caller skips it.
 */
#ifndef STASHD_RESP_H
#define STASHD_RESP_H

#include <stddef.h>

/* The most arguments resp_parse() can return, whatever the limits say. */
#define RESP_ARGS_CAP 1024

/* The longest inline line resp_parse() takes, whatever the limits say. */
#define RESP_INLINE_CAP (64 * 1024)

enum resp_status {
	RESP_NEED_MORE = 0, /* a prefix of a command: read more */
	RESP_OK = 1,	    /* one command parsed */
	RESP_ERROR = -1,    /* not a valid command: error set */
};

struct resp_limits {
	size_t args_max;   /* arguments of one command, <= RESP_ARGS_CAP */
	size_t bulk_max;   /* bytes of one argument */
	size_t inline_max; /* bytes of an inline line, <= RESP_INLINE_CAP */
};

struct resp_arg {
	const char *p;
	size_t	    len;
};

struct resp_cmd {
	size_t		argc;
	struct resp_arg argv[RESP_ARGS_CAP];
	size_t		consumed; /* bytes of buf the command used */
	int		is_inline;
	const char     *error; /* RESP_ERROR: why, static or in errbuf */
	char		errbuf[48];
	/* Inline arguments unquoted into a copy: argv points here. */
	char   scratch[RESP_INLINE_CAP];
	size_t scratch_len;
};

enum resp_status resp_parse(const char *buf, size_t len,
    const struct resp_limits *limits, struct resp_cmd *out);

#endif /* STASHD_RESP_H */

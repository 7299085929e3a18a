/*
 * resp.c -- parsing of RESP requests; see resp.h.
 *
 * Every read is checked against the end of the buffer first. A length line
 * ($N or *N) is at most RESP_NUM_MAX bytes before its \r\n: a client that
 * sends a longer one is sending garbage, and waiting for more of it would
 * only hold its bytes longer. Lengths are checked against the limits
 * before anything that depends on them is looked at, so a huge length
 * costs nothing.
 */
#include "config.h"

#include <assert.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

#include "hexdigit.h"
#include "resp.h"

/* Bytes of a length line before its \r\n: a sign and 20 digits. */
#define RESP_NUM_MAX 21

/*
 * Read the integer line at buf[*pos..len), which starts after the type
 * byte. 1 with *v and *pos past the \r\n, 0 when more bytes are needed,
 * -1 when it is not a decimal integer line.
 */
static int
resp_number(const char *buf, size_t len, size_t *pos, long long *v)
{
	size_t	 i = *pos, digits = 0;
	int	 neg = 0;
	uint64_t n = 0;

	if (i < len && buf[i] == '-') {
		neg = 1;
		i++;
	}
	for (;; i++) {
		if (i >= len)
			return i - *pos > RESP_NUM_MAX ? -1 : 0;
		if (buf[i] < '0' || buf[i] > '9')
			break;
		if (++digits > 18)
			return -1; /* no length needs more */
		n = n * 10 + (uint64_t)(buf[i] - '0');
	}
	if (digits == 0 || buf[i] != '\r')
		return -1;
	if (i + 1 >= len)
		return 0;
	if (buf[i + 1] != '\n')
		return -1;
	*pos = i + 2;
	*v = neg ? -(long long)n : (long long)n;
	return 1;
}

/* The blanks between inline arguments: isspace() in the C locale. */
static int
resp_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' ||
	       ch == '\v' || ch == '\f';
}

/*
 * Add byte ch to the inline argument a. src is where ch lies in the
 * input, NULL for the byte an escape stands for: while every byte so far
 * is the next one of the input, a stays a view; the first one that is
 * not moves a to the scratch, where it grows from then on. The scratch
 * cannot overflow: each byte there stands for at least one input byte of
 * a line that is at most RESP_INLINE_CAP long.
 */
static void
resp_word_add(struct resp_cmd *out, struct resp_arg *a, int *copied,
    const char *src, char ch)
{
	if (!*copied) {
		if (src != NULL && (a->len == 0 || src == a->p + a->len)) {
			if (a->len == 0)
				a->p = src;
			a->len++;
			return;
		}
		assert(out->scratch_len + a->len < sizeof(out->scratch));
		memmove(out->scratch + out->scratch_len, a->p, a->len);
		a->p = out->scratch + out->scratch_len;
		*copied = 1;
	}
	assert(out->scratch_len + a->len < sizeof(out->scratch));
	out->scratch[out->scratch_len + a->len] = ch;
	a->len++;
}

/*
 * Read the inline argument at line[*pos..end), which is not a blank, into
 * a, as sdssplitargs() reads it (see resp.h). 0 with *pos past it, -1 on
 * unbalanced quotes.
 */
static int
resp_word(struct resp_cmd *out, const char *line, size_t end, size_t *pos,
    struct resp_arg *a)
{
	size_t i = *pos;
	int    copied = 0, hi, lo;
	char   quote = 0, ch;

	a->p = line + i;
	a->len = 0;
	for (;; i++) {
		if (quote == 0) {
			if (i == end || line[i] == ' ' || line[i] == '\t' ||
			    line[i] == '\r' || line[i] == '\n')
				break;
			if (line[i] == '"' || line[i] == '\'')
				quote = line[i];
			else
				resp_word_add(
				    out, a, &copied, line + i, line[i]);
			continue;
		}
		if (i == end)
			return -1; /* the quote is not closed */
		if (line[i] == quote) {
			/* The closing quote ends the argument. */
			if (i + 1 < end && !resp_blank(line[i + 1]))
				return -1;
			i++;
			break;
		}
		if (line[i] != '\\' || i + 1 == end) {
			resp_word_add(out, a, &copied, line + i, line[i]);
			continue;
		}
		if (quote == '\'') {
			/* Only \' is an escape between single quotes. */
			if (line[i + 1] == '\'')
				resp_word_add(out, a, &copied, NULL, line[++i]);
			else
				resp_word_add(out, a, &copied, line + i, '\\');
			continue;
		}
		if (line[i + 1] == 'x' && i + 3 < end &&
		    (hi = hex_digit(line[i + 2])) >= 0 &&
		    (lo = hex_digit(line[i + 3])) >= 0) {
			resp_word_add(
			    out, a, &copied, NULL, (char)(hi * 16 + lo));
			i += 3;
			continue;
		}
		switch ((ch = line[++i])) {
		case 'n': ch = '\n'; break;
		case 'r': ch = '\r'; break;
		case 't': ch = '\t'; break;
		case 'b': ch = '\b'; break;
		case 'a': ch = '\a'; break;
		default: break; /* \\, \" and any other \c: c */
		}
		resp_word_add(out, a, &copied, NULL, ch);
	}
	if (copied)
		out->scratch_len += a->len;
	*pos = i;
	return 0;
}

/* An inline command: one line of arguments. */
static enum resp_status
resp_parse_inline(const char *buf, size_t len, const struct resp_limits *lim,
    struct resp_cmd *out)
{
	const char *nl = memchr(buf, '\n', len);
	size_t	    end, i, max;

	max = lim->inline_max < RESP_INLINE_CAP ? lim->inline_max
						: RESP_INLINE_CAP;
	if (nl == NULL) {
		if (len > max) {
			out->error = "Protocol error: too big inline request";
			return RESP_ERROR;
		}
		return RESP_NEED_MORE;
	}
	end = (size_t)(nl - buf);
	if (end > max) {
		out->error = "Protocol error: too big inline request";
		return RESP_ERROR;
	}
	if (end > 0 && buf[end - 1] == '\r')
		end--;
	for (i = 0;;) {
		while (i < end && resp_blank(buf[i]))
			i++;
		if (i == end)
			break;
		if (out->argc >= lim->args_max || out->argc >= RESP_ARGS_CAP) {
			out->argc = 0;
			out->error = "Protocol error: too many arguments";
			return RESP_ERROR;
		}
		if (resp_word(out, buf, end, &i, &out->argv[out->argc]) == -1) {
			out->argc = 0;
			out->error = "Protocol error: unbalanced quotes in "
				     "request";
			return RESP_ERROR;
		}
		out->argc++;
	}
	out->consumed = (size_t)(nl - buf) + 1;
	out->is_inline = 1;
	return RESP_OK;
}

enum resp_status
resp_parse(const char *buf, size_t len, const struct resp_limits *lim,
    struct resp_cmd *out)
{
	long long n, blen;
	size_t	  pos = 1, i;
	int	  rc;

	out->argc = 0;
	out->consumed = 0;
	out->is_inline = 0;
	out->error = NULL;
	out->scratch_len = 0;
	if (len == 0)
		return RESP_NEED_MORE;
	if (buf[0] != '*')
		return resp_parse_inline(buf, len, lim, out);
	if ((rc = resp_number(buf, len, &pos, &n)) <= 0) {
		if (rc == 0)
			return RESP_NEED_MORE;
		out->error = "Protocol error: invalid multibulk length";
		return RESP_ERROR;
	}
	if (n <= 0) {
		/* Nothing to run; Redis skips these too. */
		if (n < -1) {
			out->error = "Protocol error: invalid multibulk length";
			return RESP_ERROR;
		}
		out->consumed = pos;
		return RESP_OK;
	}
	if ((uint64_t)n > lim->args_max || n > RESP_ARGS_CAP) {
		out->error = "Protocol error: too many arguments";
		return RESP_ERROR;
	}
	for (i = 0; i < (size_t)n; i++) {
		if (pos >= len)
			return RESP_NEED_MORE;
		if (buf[pos] != '$') {
			/* Redis's words, the byte found included. */
			snprintf(out->errbuf, sizeof(out->errbuf),
			    "Protocol error: expected '$', got '%c'",
			    buf[pos] != '\0' ? buf[pos] : ' ');
			out->error = out->errbuf;
			return RESP_ERROR;
		}
		pos++;
		if ((rc = resp_number(buf, len, &pos, &blen)) <= 0) {
			if (rc == 0)
				return RESP_NEED_MORE;
			out->error = "Protocol error: invalid bulk length";
			return RESP_ERROR;
		}
		if (blen < 0) {
			out->error = "Protocol error: invalid bulk length";
			return RESP_ERROR;
		}
		if ((uint64_t)blen > lim->bulk_max) {
			out->error = "Protocol error: bulk argument too large";
			return RESP_ERROR;
		}
		/* Room for the bytes and their \r\n? */
		if (len - pos < (size_t)blen + 2) {
			/* Check what is there of the \r\n already. */
			if (len - pos == (size_t)blen + 1 &&
			    buf[pos + (size_t)blen] != '\r') {
				out->error = "Protocol error: missing CRLF "
					     "after a bulk argument";
				return RESP_ERROR;
			}
			return RESP_NEED_MORE;
		}
		if (buf[pos + (size_t)blen] != '\r' ||
		    buf[pos + (size_t)blen + 1] != '\n') {
			out->error = "Protocol error: missing CRLF after a "
				     "bulk argument";
			return RESP_ERROR;
		}
		out->argv[i].p = buf + pos;
		out->argv[i].len = (size_t)blen;
		pos += (size_t)blen + 2;
	}
	out->argc = (size_t)n;
	out->consumed = pos;
	return RESP_OK;
}

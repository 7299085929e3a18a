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

#include <stdint.h>
#include <string.h>

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

/* An inline command: one line of words. */
static enum resp_status
resp_parse_inline(const char *buf, size_t len, const struct resp_limits *lim,
    struct resp_cmd *out)
{
	const char *nl = memchr(buf, '\n', len);
	size_t	    end, i, start;

	if (nl == NULL) {
		if (len > lim->inline_max) {
			out->error = "Protocol error: too big inline request";
			return RESP_ERROR;
		}
		return RESP_NEED_MORE;
	}
	end = (size_t)(nl - buf);
	if (end > lim->inline_max) {
		out->error = "Protocol error: too big inline request";
		return RESP_ERROR;
	}
	out->consumed = end + 1;
	if (end > 0 && buf[end - 1] == '\r')
		end--;
	out->is_inline = 1;
	for (i = 0; i < end;) {
		if (buf[i] == ' ' || buf[i] == '\t') {
			i++;
			continue;
		}
		start = i;
		while (i < end && buf[i] != ' ' && buf[i] != '\t')
			i++;
		if (out->argc >= lim->args_max || out->argc >= RESP_ARGS_CAP) {
			out->error = "Protocol error: too many arguments";
			return RESP_ERROR;
		}
		out->argv[out->argc].p = buf + start;
		out->argv[out->argc].len = i - start;
		out->argc++;
	}
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
			out->error = "Protocol error: expected '$'";
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

/*
 * proto.c -- the request parser of protocol v1.
 *
 * A request is one JSON object on one line. Parsing is a single validating
 * pass of recursive descent over the line buffer:
 *
 *  - Every byte is checked: JSON grammar (RFC 8259), UTF-8 inside strings
 *    (no overlong forms, no encoded surrogates, nothing past U+10FFFF),
 *    \u escapes (surrogates must pair), control characters.
 *  - Recursion is bounded by depth_max, so the stack used is bounded
 *    whatever the line holds; the line length is bounded by the caller.
 *  - Nothing is allocated. Fields are located as spans of the line; keys
 *    and SQL are unescaped in place (the decoded form is never longer than
 *    the escaped one) and values are compacted in place (whitespace outside
 *    strings removed). Each rewrite stays inside its own field's bytes, which
 *    the scan has already passed, so rewriting never disturbs the scan.
 *
 * Field rules are strict: an unknown field, a duplicate field or a field
 * that the op does not take is a bad_request, so that a typo ("tll") is an
 * error rather than a silently ignored option.
 *
 * Invariant: on PROTO_OK every pointer in the request points into the line
 * and every span it names is valid UTF-8 (keys, SQL) or valid compact JSON
 * (value, params, tx, id).
 */
#include "config.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "hexdigit.h"
#include "stash-protocol.h"
#include "proto.h"

struct parser {
	char	   *p;
	char	   *end;
	size_t	    depth;
	size_t	    depth_max;
	const char *err;
};

/* Fields a request may carry, as bits. */
#define F_OP	     0x0001
#define F_ID	     0x0002
#define F_KEY	     0x0004
#define F_VALUE	     0x0008
#define F_KEYS	     0x0010
#define F_TTL	     0x0020
#define F_IF_VERSION 0x0040
#define F_DURABILITY 0x0080
#define F_SQL	     0x0100
#define F_PARAMS     0x0200
#define F_TX	     0x0400

static const struct {
	const char *name;
	unsigned    bit;
} proto_fields[] = {
    {"op", F_OP},
    {"id", F_ID},
    {"key", F_KEY},
    {"value", F_VALUE},
    {"keys", F_KEYS},
    {"ttl", F_TTL},
    {"if_version", F_IF_VERSION},
    {"durability", F_DURABILITY},
    {"sql", F_SQL},
    {"params", F_PARAMS},
    {"tx", F_TX},
};

/* Each op: its name, the fields it takes, the fields it requires. */
static const struct {
	const char *name;
	unsigned    allowed;
	unsigned    required;
} proto_ops[PROTO_OP__COUNT] = {
    [PROTO_OP_NONE] = {"", 0, 0},
    [PROTO_OP_PING] = {"ping", 0, 0},
    [PROTO_OP_GET] = {"get", F_KEY, F_KEY},
    [PROTO_OP_MGET] = {"mget", F_KEYS, F_KEYS},
    [PROTO_OP_SET] = {"set",
	F_KEY | F_VALUE | F_TTL | F_IF_VERSION | F_DURABILITY, F_KEY | F_VALUE},
    [PROTO_OP_DEL] = {"del", F_KEY | F_DURABILITY, F_KEY},
    [PROTO_OP_EXEC] = {"exec", F_SQL | F_PARAMS | F_TX | F_DURABILITY, 0},
    [PROTO_OP_QUERY] = {"query", F_SQL | F_PARAMS, F_SQL},
    [PROTO_OP_SYNC] = {"sync", 0, 0},
    [PROTO_OP_STATS] = {"stats", 0, 0},
};

static int scan_value(struct parser *);

/* Skip JSON whitespace. */
static void
skip_ws(struct parser *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' ||
				      *ps->p == '\r' || *ps->p == '\n'))
		ps->p++;
}

/* Record the first error and fail. */
static int
fail(struct parser *ps, const char *msg)
{
	if (ps->err == NULL)
		ps->err = msg;
	return -1;
}

/*
 * Length of the UTF-8 sequence at s (at most n bytes), 0 when it is not
 * valid: no overlong forms, no UTF-16 surrogates, nothing above U+10FFFF.
 */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];

	if (c < 0x80)
		return 1;
	if (c < 0xc2)
		return 0; /* continuation byte or overlong */
	if (c < 0xe0) {
		if (n < 2 || (s[1] & 0xc0) != 0x80)
			return 0;
		return 2;
	}
	if (c < 0xf0) {
		if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if (c == 0xe0 && s[1] < 0xa0)
			return 0; /* overlong */
		if (c == 0xed && s[1] >= 0xa0)
			return 0; /* surrogate */
		return 3;
	}
	if (c < 0xf5) {
		if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 ||
		    (s[3] & 0xc0) != 0x80)
			return 0;
		if (c == 0xf0 && s[1] < 0x90)
			return 0; /* overlong */
		if (c == 0xf4 && s[1] >= 0x90)
			return 0; /* above U+10FFFF */
		return 4;
	}
	return 0;
}

int
proto_utf8_valid(const char *buf, size_t len)
{
	const unsigned char *s = (const unsigned char *)buf;
	size_t		     i = 0, n;

	while (i < len) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((n = utf8_seq(s + i, len - i)) == 0)
			return 0;
		i += n;
	}
	return 1;
}

/* Read the 4 hex digits at s (known to be there); -1 when not hex. */
static long
hex4(const char *s)
{
	long v = 0;
	int  i, h;

	for (i = 0; i < 4; i++) {
		if ((h = hex_digit(s[i])) < 0)
			return -1;
		v = (v << 4) | h;
	}
	return v;
}

/*
 * Scan the string at ps->p (which is '"'), leaving ps->p after its closing
 * quote. *declen gets the length of its decoded UTF-8 form.
 */
static int
scan_string(struct parser *ps, size_t *declen)
{
	const unsigned char *s;
	size_t		     len = 0, n;
	long		     cp, lo;

	assert(ps->p < ps->end && *ps->p == '"');
	ps->p++;
	for (;;) {
		if (ps->p >= ps->end)
			return fail(ps, "malformed JSON: unterminated string");
		s = (const unsigned char *)ps->p;
		if (*s == '"') {
			ps->p++;
			break;
		}
		if (*s < 0x20)
			return fail(
			    ps, "malformed JSON: control character in string");
		if (*s == '\\') {
			if (ps->end - ps->p < 2)
				return fail(ps, "malformed JSON: bad escape");
			switch (ps->p[1]) {
			case '"':
			case '\\':
			case '/':
			case 'b':
			case 'f':
			case 'n':
			case 'r':
			case 't':
				ps->p += 2;
				len++;
				continue;
			case 'u': break;
			default: return fail(ps, "malformed JSON: bad escape");
			}
			if (ps->end - ps->p < 6 || (cp = hex4(ps->p + 2)) < 0)
				return fail(
				    ps, "malformed JSON: bad \\u escape");
			ps->p += 6;
			if (cp >= 0xdc00 && cp <= 0xdfff)
				return fail(ps, "invalid \\u escape: lone "
						"low surrogate");
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (ps->end - ps->p < 6 || ps->p[0] != '\\' ||
				    ps->p[1] != 'u' ||
				    (lo = hex4(ps->p + 2)) < 0xdc00 ||
				    lo > 0xdfff)
					return fail(ps,
					    "invalid \\u escape: "
					    "unpaired high surrogate");
				ps->p += 6;
				len += 4;
			} else if (cp < 0x80)
				len += 1;
			else if (cp < 0x800)
				len += 2;
			else
				len += 3;
			continue;
		}
		if (*s < 0x80) {
			ps->p++;
			len++;
			continue;
		}
		if ((n = utf8_seq(s, (size_t)(ps->end - ps->p))) == 0)
			return fail(ps, "invalid UTF-8 in string");
		ps->p += n;
		len += n;
	}
	*declen = len;
	return 0;
}

/* Scan a number per the JSON grammar. */
static int
scan_number(struct parser *ps)
{
	char *p = ps->p, *end = ps->end;

	if (p < end && *p == '-')
		p++;
	if (p >= end)
		return fail(ps, "malformed JSON: bad number");
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9') {
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	} else
		return fail(ps, "malformed JSON: unexpected character");
	if (p < end && *p == '.') {
		p++;
		if (p >= end || *p < '0' || *p > '9')
			return fail(ps, "malformed JSON: bad number");
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || *p < '0' || *p > '9')
			return fail(ps, "malformed JSON: bad number");
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	ps->p = p;
	return 0;
}

/* Scan the literal word (true, false, null). */
static int
scan_literal(struct parser *ps, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
		return fail(ps, "malformed JSON: unexpected character");
	ps->p += n;
	return 0;
}

/* Scan an object or array at ps->p, one level deeper. */
static int
scan_container(struct parser *ps)
{
	char   close = *ps->p == '{' ? '}' : ']';
	size_t declen;
	int    first = 1;

	if (++ps->depth > ps->depth_max)
		return fail(ps, "JSON nested too deeply");
	ps->p++;
	for (;;) {
		skip_ws(ps);
		if (ps->p >= ps->end)
			return fail(ps, "malformed JSON: unexpected end");
		if (*ps->p == close && first) {
			ps->p++;
			break;
		}
		if (close == '}') {
			if (*ps->p != '"')
				return fail(ps, "malformed JSON: expected "
						"a member name");
			if (scan_string(ps, &declen) == -1)
				return -1;
			skip_ws(ps);
			if (ps->p >= ps->end || *ps->p != ':')
				return fail(ps, "malformed JSON: expected ':'");
			ps->p++;
		}
		if (scan_value(ps) == -1)
			return -1;
		skip_ws(ps);
		if (ps->p >= ps->end)
			return fail(ps, "malformed JSON: unexpected end");
		if (*ps->p == close) {
			ps->p++;
			break;
		}
		if (*ps->p != ',')
			return fail(ps, "malformed JSON: expected ',' or end");
		ps->p++;
		first = 0;
	}
	ps->depth--;
	return 0;
}

/* Scan any JSON value at ps->p (after whitespace). */
static int
scan_value(struct parser *ps)
{
	size_t declen;

	skip_ws(ps);
	if (ps->p >= ps->end)
		return fail(ps, "malformed JSON: unexpected end");
	switch (*ps->p) {
	case '{':
	case '[': return scan_container(ps);
	case '"': return scan_string(ps, &declen);
	case 't': return scan_literal(ps, "true");
	case 'f': return scan_literal(ps, "false");
	case 'n': return scan_literal(ps, "null");
	default: return scan_number(ps);
	}
}

/* Append code point cp as UTF-8 at out; returns the bytes written. */
static size_t
utf8_put(char *out, long cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/*
 * Decode the already validated string body s[0..n) (between its quotes)
 * into out, which may be s itself. Returns the decoded length.
 */
static size_t
unescape(const char *s, size_t n, char *out)
{
	size_t i = 0, o = 0;
	long   cp, lo;

	while (i < n) {
		if (s[i] != '\\') {
			out[o++] = s[i++];
			continue;
		}
		switch (s[i + 1]) {
		case 'b': out[o++] = '\b'; break;
		case 'f': out[o++] = '\f'; break;
		case 'n': out[o++] = '\n'; break;
		case 'r': out[o++] = '\r'; break;
		case 't': out[o++] = '\t'; break;
		case 'u':
			cp = hex4(s + i + 2);
			if (cp >= 0xd800 && cp <= 0xdbff) {
				lo = hex4(s + i + 8);
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				     (lo - 0xdc00);
				i += 6;
			}
			o += utf8_put(out + o, cp);
			i += 6;
			continue;
		default: out[o++] = s[i + 1]; break;
		}
		i += 2;
	}
	return o;
}

/* Remove whitespace outside strings from valid JSON s[0..n), in place. */
static size_t
compact(char *s, size_t n)
{
	size_t i, o = 0;
	int    in_str = 0;

	/* Only an object or an array can hold blanks between tokens. */
	if (n == 0 || (s[0] != '{' && s[0] != '['))
		return n;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (in_str) {
			s[o++] = c;
			if (c == '\\')
				s[o++] = s[++i];
			else if (c == '"')
				in_str = 0;
			continue;
		}
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (c == '"')
			in_str = 1;
		s[o++] = c;
	}
	return o;
}

/*
 * Read a non-negative JSON integer from s[0..n) (a validated number).
 * -1 when it has a sign, a fraction, an exponent or overflows.
 */
static int
parse_u64(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	size_t	 i;

	if (n == 0)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* Is the value text starting at c a JSON string / number / array...? */
static int
is_string(const char *v)
{
	return *v == '"';
}

static int
is_number(const char *v)
{
	return *v == '-' || (*v >= '0' && *v <= '9');
}

/* Check the keys of an mget array at v[0..n): strings of valid length. */
static enum proto_status
check_keys(char *v, size_t n, const struct proto_limits *lim,
    struct proto_request *req, const char **errmsg)
{
	struct parser ps = {v + 1, v + n, 0, 0, NULL};
	size_t	      declen, count = 0;

	for (;;) {
		skip_ws(&ps);
		if (*ps.p == ']')
			break;
		if (*ps.p == ',') {
			ps.p++;
			continue;
		}
		if (*ps.p != '"') {
			*errmsg = "keys must be an array of strings";
			return PROTO_BAD_REQUEST;
		}
		if (scan_string(&ps, &declen) == -1) {
			*errmsg = ps.err;
			return PROTO_BAD_REQUEST;
		}
		if (declen == 0 || declen > STASH_KEY_MAX) {
			*errmsg = "each key must be a non-empty string of at "
				  "most 1024 bytes";
			return PROTO_BAD_REQUEST;
		}
		count++;
	}
	/* The mget_max limit is checked once the op is known. */
	req->keys = v;
	req->keys_len = n;
	req->nkeys = count;
	return PROTO_OK;
}

void
proto_keys_init(struct proto_keys_iter *it, const struct proto_request *req)
{
	it->p = req->keys + 1;
	it->end = req->keys + req->keys_len;
}

int
proto_keys_next(struct proto_keys_iter *it, const char **key, size_t *len)
{
	char *start;

	while (it->p < it->end && *it->p != '"')
		it->p++;
	if (it->p >= it->end)
		return 0;
	start = ++it->p;
	while (*it->p != '"') {
		if (*it->p == '\\')
			it->p++;
		it->p++;
	}
	*key = start;
	*len = unescape(start, (size_t)(it->p - start), start);
	it->p++;
	return 1;
}

const char *
proto_op_name(enum proto_op op)
{
	if (op <= PROTO_OP_NONE || op >= PROTO_OP__COUNT)
		return "none";
	return proto_ops[op].name;
}

const char *
proto_durability_name(enum proto_durability d)
{
	switch (d) {
	case PROTO_DUR_ASYNC: return STASH_DUR_ASYNC;
	case PROTO_DUR_JOURNAL: return STASH_DUR_JOURNAL;
	case PROTO_DUR_COMMIT: return STASH_DUR_COMMIT;
	default: return "default";
	}
}

/* The decoded name of a member, into buf; "" when too long for a field. */
static const char *
member_name(char *s, size_t rawlen, size_t declen, char *buf, size_t size)
{
	if (declen >= size)
		return "";
	buf[unescape(s, rawlen, buf)] = '\0';
	if (strlen(buf) != declen)
		return ""; /* holds a NUL byte */
	return buf;
}

/* A bad_request naming one field. */
static enum proto_status
field_error(struct proto_request *req, const char **errmsg, const char *pre,
    const char *field, const char *post)
{
	snprintf(req->errbuf, sizeof(req->errbuf), "%s\"%.64s\"%s", pre, field,
	    post);
	*errmsg = req->errbuf;
	return PROTO_BAD_REQUEST;
}

/* Apply one member; the value is v[0..n), validated JSON. */
static enum proto_status
set_field(struct proto_request *req, const char *name, char *v, size_t n,
    size_t vdeclen, unsigned *seen, const struct proto_limits *lim,
    const char **errmsg)
{
	unsigned    bit = 0;
	char	    wordbuf[16];
	const char *word;
	uint64_t    u;
	size_t	    i;

	for (i = 0; i < sizeof(proto_fields) / sizeof(proto_fields[0]); i++)
		if (strcmp(name, proto_fields[i].name) == 0) {
			bit = proto_fields[i].bit;
			break;
		}
	if (bit == 0)
		return field_error(req, errmsg, "unknown field ", name, "");
	if (*seen & bit)
		return field_error(req, errmsg, "duplicate field ", name, "");
	*seen |= bit;

	switch (bit) {
	case F_OP:
		if (!is_string(v))
			return field_error(
			    req, errmsg, "", name, " must be a string");
		word = member_name(
		    v + 1, n - 2, vdeclen, wordbuf, sizeof(wordbuf));
		for (i = 1; i < PROTO_OP__COUNT; i++)
			if (strcmp(word, proto_ops[i].name) == 0) {
				req->op = (enum proto_op)i;
				break;
			}
		if (req->op == PROTO_OP_NONE) {
			*errmsg = "unknown op";
			return PROTO_BAD_REQUEST;
		}
		break;
	case F_ID:
		if (*v == '{' || *v == '[')
			return field_error(
			    req, errmsg, "", name, " must be a scalar");
		req->id = v;
		req->id_len = n;
		break;
	case F_KEY:
		if (!is_string(v) || vdeclen == 0 || vdeclen > STASH_KEY_MAX)
			return field_error(req, errmsg, "", name,
			    " must be a non-empty string of at most 1024 "
			    "bytes");
		req->key = v + 1;
		req->key_len = unescape(v + 1, n - 2, v + 1);
		break;
	case F_VALUE:
		req->value = v;
		req->value_len = compact(v, n);
		break;
	case F_KEYS:
		if (*v != '[')
			return field_error(req, errmsg, "", name,
			    " must be an array of strings");
		return check_keys(v, n, lim, req, errmsg);
	case F_TTL:
		if (!is_number(v) || parse_u64(v, n, &u) == -1 || u == 0 ||
		    u > INT32_MAX)
			return field_error(req, errmsg, "", name,
			    " must be an integer number of seconds from 1 to "
			    "2147483647");
		req->ttl = (uint32_t)u;
		break;
	case F_IF_VERSION:
		if (!is_number(v) || parse_u64(v, n, &u) == -1)
			return field_error(req, errmsg, "", name,
			    " must be a non-negative integer");
		req->has_if_version = 1;
		req->if_version = u;
		break;
	case F_DURABILITY:
		word = is_string(v) ? member_name(v + 1, n - 2, vdeclen,
					  wordbuf, sizeof(wordbuf))
				    : "";
		if (strcmp(word, STASH_DUR_ASYNC) == 0)
			req->durability = PROTO_DUR_ASYNC;
		else if (strcmp(word, STASH_DUR_JOURNAL) == 0)
			req->durability = PROTO_DUR_JOURNAL;
		else if (strcmp(word, STASH_DUR_COMMIT) == 0)
			req->durability = PROTO_DUR_COMMIT;
		else
			return field_error(req, errmsg, "", name,
			    " must be \"async\", \"journal\" or \"commit\"");
		break;
	case F_SQL:
		if (!is_string(v) || vdeclen == 0)
			return field_error(req, errmsg, "", name,
			    " must be a non-empty string");
		req->sql = v + 1;
		req->sql_len = unescape(v + 1, n - 2, v + 1);
		break;
	case F_PARAMS:
		if (*v != '[' && *v != '{')
			return field_error(req, errmsg, "", name,
			    " must be an array or an object");
		req->params = v;
		req->params_len = compact(v, n);
		break;
	case F_TX:
		if (*v != '[')
			return field_error(req, errmsg, "", name,
			    " must be an array of statements");
		req->tx = v;
		req->tx_len = compact(v, n);
		break;
	}
	return PROTO_OK;
}

/* One member of the request object, located by the first pass. */
struct member {
	char  *name;	 /* after the opening quote */
	size_t name_raw; /* escaped length */
	size_t name_dec; /* decoded length */
	char  *v;	 /* the value's JSON text */
	size_t n;
	size_t vdeclen; /* decoded length when a string */
};

#define PROTO_MEMBERS_MAX 16

enum proto_status
proto_parse(char *line, size_t len, const struct proto_limits *lim,
    struct proto_request *req, const char **errmsg)
{
	struct parser	  ps = {line, line + len, 1, lim->depth_max, NULL};
	struct member	  m[PROTO_MEMBERS_MAX];
	enum proto_status st;
	unsigned	  seen = 0, allowed, missing;
	char		  namebuf[72];
	const char	 *name;
	size_t		  i, nm = 0;

	memset(req, 0, offsetof(struct proto_request, errbuf));
	req->errbuf[0] = '\0';
	*errmsg = NULL;

	/* First pass: validate the whole line and locate the members. */
	skip_ws(&ps);
	if (ps.p >= ps.end || *ps.p != '{') {
		*errmsg = ps.p >= ps.end ? "empty request"
					 : "a request must be a JSON object";
		return PROTO_BAD_REQUEST;
	}
	ps.p++;
	skip_ws(&ps);
	if (ps.p < ps.end && *ps.p == '}')
		ps.p++;
	else
		for (;;) {
			struct member *mb =
			    &m[nm < PROTO_MEMBERS_MAX ? nm
						      : PROTO_MEMBERS_MAX - 1];

			skip_ws(&ps);
			if (ps.p >= ps.end || *ps.p != '"') {
				*errmsg =
				    "malformed JSON: expected a member name";
				return PROTO_BAD_REQUEST;
			}
			mb->name = ps.p + 1;
			if (scan_string(&ps, &mb->name_dec) == -1)
				goto malformed;
			mb->name_raw = (size_t)(ps.p - 1 - mb->name);
			skip_ws(&ps);
			if (ps.p >= ps.end || *ps.p != ':') {
				fail(&ps, "malformed JSON: expected ':'");
				goto malformed;
			}
			ps.p++;
			skip_ws(&ps);
			mb->v = ps.p;
			mb->vdeclen = 0;
			if (ps.p < ps.end && *ps.p == '"') {
				if (scan_string(&ps, &mb->vdeclen) == -1)
					goto malformed;
			} else if (scan_value(&ps) == -1)
				goto malformed;
			mb->n = (size_t)(ps.p - mb->v);
			nm++;
			skip_ws(&ps);
			if (ps.p >= ps.end) {
				fail(&ps, "malformed JSON: unexpected end");
				goto malformed;
			}
			if (*ps.p == '}') {
				ps.p++;
				break;
			}
			if (*ps.p != ',') {
				fail(
				    &ps, "malformed JSON: expected ',' or '}'");
				goto malformed;
			}
			ps.p++;
		}
	skip_ws(&ps);
	if (ps.p != ps.end) {
		*errmsg = "malformed JSON: data after the request object";
		return PROTO_BAD_REQUEST;
	}
	if (nm > PROTO_MEMBERS_MAX) {
		*errmsg = "too many fields";
		return PROTO_BAD_REQUEST;
	}

	/* The id first, so that every later error can echo it. */
	for (i = 0; i < nm; i++) {
		name = member_name(m[i].name, m[i].name_raw, m[i].name_dec,
		    namebuf, sizeof(namebuf));
		if (strcmp(name, "id") == 0 && *m[i].v != '{' &&
		    *m[i].v != '[') {
			req->id = m[i].v;
			req->id_len = m[i].n;
			break;
		}
	}

	/* Second pass: interpret each member. */
	for (i = 0; i < nm; i++) {
		name = member_name(m[i].name, m[i].name_raw, m[i].name_dec,
		    namebuf, sizeof(namebuf));
		st = set_field(req, name, m[i].v, m[i].n, m[i].vdeclen, &seen,
		    lim, errmsg);
		if (st != PROTO_OK)
			return st;
	}

	if (!(seen & F_OP)) {
		*errmsg = "missing field \"op\"";
		return PROTO_BAD_REQUEST;
	}
	allowed = proto_ops[req->op].allowed | F_OP | F_ID;
	if (seen & ~allowed) {
		for (i = 0; i < sizeof(proto_fields) / sizeof(proto_fields[0]);
		     i++)
			if (seen & ~allowed & proto_fields[i].bit)
				break;
		snprintf(req->errbuf, sizeof(req->errbuf),
		    "field \"%s\" is not valid for op \"%s\"",
		    proto_fields[i].name, proto_ops[req->op].name);
		*errmsg = req->errbuf;
		return PROTO_BAD_REQUEST;
	}
	missing = proto_ops[req->op].required & ~seen;
	if (missing) {
		for (i = 0; i < sizeof(proto_fields) / sizeof(proto_fields[0]);
		     i++)
			if (missing & proto_fields[i].bit)
				break;
		snprintf(req->errbuf, sizeof(req->errbuf),
		    "op \"%s\" needs field \"%s\"", proto_ops[req->op].name,
		    proto_fields[i].name);
		*errmsg = req->errbuf;
		return PROTO_BAD_REQUEST;
	}
	if (req->op == PROTO_OP_MGET && req->nkeys > lim->mget_max) {
		snprintf(req->errbuf, sizeof(req->errbuf),
		    "mget of %zu keys is over the limit of %zu", req->nkeys,
		    lim->mget_max);
		*errmsg = req->errbuf;
		return PROTO_TOO_LARGE;
	}
	if (req->op == PROTO_OP_EXEC) {
		if (!(seen & (F_SQL | F_TX)) || (seen & F_SQL && seen & F_TX)) {
			*errmsg = "op \"exec\" needs exactly one of \"sql\" "
				  "and \"tx\"";
			return PROTO_BAD_REQUEST;
		}
		if (seen & F_TX && seen & F_PARAMS) {
			*errmsg = "with \"tx\", each statement carries its "
				  "own \"params\"";
			return PROTO_BAD_REQUEST;
		}
	}
	return PROTO_OK;

malformed:
	/* A broken line has no trustworthy id: none is echoed. */
	*errmsg = ps.err;
	return PROTO_BAD_REQUEST;
}

/*
 * fuzz_proto.c -- fuzz target of the protocol v1 request parser.
 *
 * The input is a byte stream as a client would send it. It is cut into
 * lines at '\n' the way the server does: each complete line of at most
 * FUZZ_LINE_MAX bytes is parsed; a longer one ends the stream (the server
 * answers too_large and closes); bytes after the last '\n' are parsed as
 * the line they become when the client sends its '\n' (so that every input
 * is at least one line). Each line is parsed from a heap copy
 * of exactly its length, so that a read past its end is caught.
 *
 * Invariants checked on every line:
 *  - the status is one of the enum, with an error message exactly on
 *    failure; an echoed id lies in the line and is valid JSON;
 *  - on PROTO_OK: a known op, every span inside the line, keys and SQL
 *    valid UTF-8 (by a validator of our own, not the parser's), value,
 *    params, tx and id valid compact JSON (jansson, and no whitespace
 *    outside strings), the mget keys walk to exactly nkeys keys, within
 *    the limit, the fields each op requires present;
 *  - parsing a second copy of the line gives the same result, byte for
 *    byte (the parser keeps no state between calls);
 *  - proto_utf8_valid agrees with our validator on the raw line.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "daemon/proto.h"
#include "fuzz.h"

/* Small limits, so that inputs of a few KB reach them. */
#define FUZZ_LINE_MAX 8192
static const struct proto_limits fuzz_limits = {16, 32};

/* UTF-8 as RFC 3629 has it, written apart from the parser's. */
static int
utf8_ok(const unsigned char *s, size_t n)
{
	size_t	 i = 0, k, need;
	uint32_t cp, min;

	while (i < n) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((s[i] & 0xe0) == 0xc0) {
			need = 1;
			cp = s[i] & 0x1f;
			min = 0x80;
		} else if ((s[i] & 0xf0) == 0xe0) {
			need = 2;
			cp = s[i] & 0x0f;
			min = 0x800;
		} else if ((s[i] & 0xf8) == 0xf0) {
			need = 3;
			cp = s[i] & 0x07;
			min = 0x10000;
		} else
			return 0;
		if (n - i - 1 < need)
			return 0;
		for (k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += need + 1;
	}
	return 1;
}

/* Does [p, p+n) lie inside [line, line+len)? */
static int
inside(const char *line, size_t len, const char *p, size_t n)
{
	if (p == NULL)
		return n == 0;
	return p >= line && n <= len && (size_t)(p - line) <= len - n;
}

/*
 * Does jansson, a parser written apart, take s[0..n) as JSON? 1 yes, 0 no,
 * -1 when it cannot say: numbers past a double, member names holding
 * "\u0000" (valid JSON that jansson cannot hold), raw NUL bytes (jansson
 * may read past one as if it were not there).
 */
static int
jansson_takes(const char *s, size_t n, int *is_object)
{
	json_error_t err;
	json_t	    *v;

	if (n > 0 && memchr(s, '\0', n) != NULL)
		return -1;
	v = json_loadb(s, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
	if (v == NULL) {
		if (strstr(err.text, "overflow") != NULL ||
		    strstr(err.text, "too big") != NULL ||
		    strstr(err.text, "NUL byte in object key") != NULL)
			return -1;
		return 0;
	}
	if (is_object != NULL)
		*is_object = json_is_object(v);
	json_decref(v);
	return 1;
}

/* Is s[0..n) one JSON value with no whitespace outside its strings? */
static int
compact_json(const char *s, size_t n)
{
	size_t i;
	int    instr = 0;

	if (n > 0 && memchr(s, '\0', n) != NULL)
		return 0; /* never in JSON text, not even in strings */

	for (i = 0; i < n; i++) {
		if (instr) {
			if (s[i] == '\\')
				i++;
			else if (s[i] == '"')
				instr = 0;
		} else if (s[i] == '"')
			instr = 1;
		else if (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' ||
			 s[i] == '\n')
			return 0;
	}
	return jansson_takes(s, n, NULL) != 0;
}

/* Offset of p in line, or -1 for NULL: to compare two parses. */
static long
off(const char *line, const char *p)
{
	return p == NULL ? -1 : (long)(p - line);
}

static void
check_ok(const char *line, size_t len, const struct proto_request *r)
{
	struct proto_keys_iter it;
	const char	      *k;
	size_t		       klen, n = 0;

	FUZZ_CHECK(r->op > PROTO_OP_NONE && r->op < PROTO_OP__COUNT);
	FUZZ_CHECK(proto_op_name(r->op) != NULL);
	FUZZ_CHECK(r->durability >= PROTO_DUR_DEFAULT &&
		   r->durability <= PROTO_DUR_COMMIT);
	FUZZ_CHECK(proto_durability_name(r->durability) != NULL);
	FUZZ_CHECK(inside(line, len, r->id, r->id_len));
	FUZZ_CHECK(inside(line, len, r->key, r->key_len));
	FUZZ_CHECK(inside(line, len, r->value, r->value_len));
	FUZZ_CHECK(inside(line, len, r->keys, r->keys_len));
	FUZZ_CHECK(inside(line, len, r->sql, r->sql_len));
	FUZZ_CHECK(inside(line, len, r->params, r->params_len));
	FUZZ_CHECK(inside(line, len, r->tx, r->tx_len));
	if (r->id != NULL)
		FUZZ_CHECK(compact_json(r->id, r->id_len));
	if (r->key != NULL)
		FUZZ_CHECK(utf8_ok((const unsigned char *)r->key, r->key_len));
	if (r->sql != NULL)
		FUZZ_CHECK(utf8_ok((const unsigned char *)r->sql, r->sql_len));
	if (r->value != NULL)
		FUZZ_CHECK(compact_json(r->value, r->value_len));
	if (r->params != NULL)
		FUZZ_CHECK(compact_json(r->params, r->params_len));
	if (r->tx != NULL)
		FUZZ_CHECK(compact_json(r->tx, r->tx_len));

	switch (r->op) {
	case PROTO_OP_GET:
	case PROTO_OP_DEL: FUZZ_CHECK(r->key != NULL); break;
	case PROTO_OP_SET:
		FUZZ_CHECK(r->key != NULL && r->value != NULL);
		break;
	case PROTO_OP_MGET:
		FUZZ_CHECK(r->keys != NULL);
		FUZZ_CHECK(r->nkeys <= fuzz_limits.mget_max);
		proto_keys_init(&it, r);
		while (proto_keys_next(&it, &k, &klen)) {
			FUZZ_CHECK(n < r->nkeys);
			FUZZ_CHECK(inside(line, len, k, klen));
			FUZZ_CHECK(utf8_ok((const unsigned char *)k, klen));
			n++;
		}
		FUZZ_CHECK(n == r->nkeys);
		break;
	case PROTO_OP_EXEC:
		FUZZ_CHECK((r->sql != NULL) != (r->tx != NULL));
		FUZZ_CHECK(r->tx == NULL || r->params == NULL);
		break;
	case PROTO_OP_QUERY: FUZZ_CHECK(r->sql != NULL); break;
	default: break;
	}
}

/* Parse one line from a heap copy of exactly len bytes. */
static void
parse_line(const uint8_t *data, size_t len)
{
	struct proto_request r1, r2;
	enum proto_status    s1, s2;
	const char	    *e1, *e2;
	char		    *b1, *b2;
	int		     json, is_object = 0;

	if ((b1 = malloc(len > 0 ? len : 1)) == NULL ||
	    (b2 = malloc(len > 0 ? len : 1)) == NULL)
		abort();
	if (len > 0) {
		memcpy(b1, data, len);
		memcpy(b2, data, len);
	}
	FUZZ_CHECK(proto_utf8_valid(b1, len) == utf8_ok(data, len));
	json = jansson_takes((const char *)data, len, &is_object);

	memset(&r1, 0xa5, sizeof(r1));
	memset(&r2, 0x5a, sizeof(r2));
	s1 = proto_parse(b1, len, &fuzz_limits, &r1, &e1);
	s2 = proto_parse(b2, len, &fuzz_limits, &r2, &e2);

	/* The same line parses the same way. */
	FUZZ_CHECK(s1 == s2);
	FUZZ_CHECK(len == 0 || memcmp(b1, b2, len) == 0);
	FUZZ_CHECK(off(b1, r1.id) == off(b2, r2.id) && r1.id_len == r2.id_len);
	if (s1 != PROTO_OK)
		FUZZ_CHECK(strcmp(e1, e2) == 0);
	else {
		FUZZ_CHECK(r1.op == r2.op);
		FUZZ_CHECK(off(b1, r1.key) == off(b2, r2.key) &&
			   r1.key_len == r2.key_len);
		FUZZ_CHECK(off(b1, r1.value) == off(b2, r2.value) &&
			   r1.value_len == r2.value_len);
		FUZZ_CHECK(off(b1, r1.keys) == off(b2, r2.keys) &&
			   r1.keys_len == r2.keys_len && r1.nkeys == r2.nkeys);
		FUZZ_CHECK(off(b1, r1.sql) == off(b2, r2.sql) &&
			   r1.sql_len == r2.sql_len);
		FUZZ_CHECK(off(b1, r1.params) == off(b2, r2.params) &&
			   r1.params_len == r2.params_len);
		FUZZ_CHECK(
		    off(b1, r1.tx) == off(b2, r2.tx) && r1.tx_len == r2.tx_len);
		FUZZ_CHECK(r1.ttl == r2.ttl &&
			   r1.has_if_version == r2.has_if_version &&
			   r1.durability == r2.durability);
		FUZZ_CHECK(
		    !r1.has_if_version || r1.if_version == r2.if_version);
	}

	/* Walking the mget keys unescapes them: after the comparison. */
	FUZZ_CHECK(
	    s1 == PROTO_OK || s1 == PROTO_BAD_REQUEST || s1 == PROTO_TOO_LARGE);
	FUZZ_CHECK((s1 == PROTO_OK) == (e1 == NULL));
	FUZZ_CHECK(inside(b1, len, r1.id, r1.id_len));
	if (r1.id != NULL)
		FUZZ_CHECK(compact_json(r1.id, r1.id_len));
	if (s1 == PROTO_OK)
		check_ok(b1, len, &r1);
	else
		FUZZ_CHECK(e1[0] != '\0' && strlen(e1) < 200);
	/* Both parsers agree on what is JSON. */
	if (s1 == PROTO_OK)
		FUZZ_CHECK(json == -1 || (json == 1 && is_object));
	if (json == 1 && is_object)
		FUZZ_CHECK(s1 == PROTO_OK || strncmp(e1, "malformed", 9) != 0);
	free(b1);
	free(b2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size, *nl;

	while (p < end) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end; /* the line its '\n' will end */
		if ((size_t)(nl - p) > FUZZ_LINE_MAX)
			break; /* too_large: the connection closes */
		parse_line(p, (size_t)(nl - p));
		p = nl + 1;
	}
	return 0;
}

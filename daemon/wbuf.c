/* wbuf.c -- growable output buffer; see wbuf.h. */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wbuf.h"
#include "log.h"
#include "xmalloc.h"

void
wbuf_init(struct wbuf *w)
{
	w->buf = NULL;
	w->len = w->cap = 0;
}

void
wbuf_free(struct wbuf *w)
{
	free(w->buf);
	wbuf_init(w);
}

/* Make room for more bytes, doubling to keep appends amortised O(1). */
void
wbuf_reserve(struct wbuf *w, size_t more)
{
	size_t cap;

	if (w->cap - w->len >= more)
		return;
	cap = w->cap ? w->cap : 256;
	while (cap - w->len < more) {
		if (cap > SIZE_MAX / 2)
			fatalx("wbuf_reserve: %zu bytes", more);
		cap *= 2;
	}
	w->buf = xreallocarray(w->buf, 1, cap);
	w->cap = cap;
}

void
wbuf_add(struct wbuf *w, const void *p, size_t n)
{
	wbuf_reserve(w, n);
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

void
wbuf_adds(struct wbuf *w, const char *s)
{
	wbuf_add(w, s, strlen(s));
}

void
wbuf_addc(struct wbuf *w, char c)
{
	wbuf_reserve(w, 1);
	w->buf[w->len++] = c;
}

void
wbuf_add_u64(struct wbuf *w, uint64_t v)
{
	char   tmp[20];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	wbuf_reserve(w, n);
	while (n > 0)
		w->buf[w->len++] = tmp[--n];
}

void
wbuf_add_i64(struct wbuf *w, int64_t v)
{
	if (v < 0) {
		wbuf_addc(w, '-');
		wbuf_add_u64(w, (uint64_t)0 - (uint64_t)v);
	} else
		wbuf_add_u64(w, (uint64_t)v);
}

/* A double as JSON: shortest form that reads back; NaN/inf as null. */
void
wbuf_add_double(struct wbuf *w, double v)
{
	char tmp[32];
	int  n;

	if (!isfinite(v)) {
		wbuf_adds(w, "null");
		return;
	}
	n = snprintf(tmp, sizeof(tmp), "%.17g", v);
	if (n <= 0 || (size_t)n >= sizeof(tmp)) {
		wbuf_adds(w, "null");
		return;
	}
	/* Keep it a JSON real so that it reads back as one. */
	if (strpbrk(tmp, ".eE") == NULL && (size_t)n + 2 < sizeof(tmp))
		strcat(tmp, ".0");
	wbuf_adds(w, tmp);
}

void
wbuf_add_jstr(struct wbuf *w, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t		  i, run = 0;

	/* Worst case every byte becomes \u00XX. */
	wbuf_reserve(w, n + 2);
	w->buf[w->len++] = '"';
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		wbuf_add(w, s + run, i - run);
		run = i + 1;
		switch (c) {
		case '"': wbuf_add(w, "\\\"", 2); break;
		case '\\': wbuf_add(w, "\\\\", 2); break;
		case '\n': wbuf_add(w, "\\n", 2); break;
		case '\r': wbuf_add(w, "\\r", 2); break;
		case '\t': wbuf_add(w, "\\t", 2); break;
		default: {
			char u[6] = {
			    '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

			wbuf_add(w, u, 6);
		}
		}
	}
	wbuf_add(w, s + run, n - run);
	wbuf_addc(w, '"');
}

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* A BLOB as {"base64":"..."}. */
void
wbuf_add_base64(struct wbuf *w, const void *data, size_t n)
{
	const unsigned char *p = data;
	size_t		     i;

	wbuf_adds(w, "{\"base64\":\"");
	wbuf_reserve(w, (n + 2) / 3 * 4 + 3);
	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v =
		    (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		w->buf[w->len++] = b64[v >> 18];
		w->buf[w->len++] = b64[(v >> 12) & 63];
		w->buf[w->len++] = b64[(v >> 6) & 63];
		w->buf[w->len++] = b64[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)p[i] << 16 |
			     (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);

		w->buf[w->len++] = b64[v >> 18];
		w->buf[w->len++] = b64[(v >> 12) & 63];
		w->buf[w->len++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		w->buf[w->len++] = '=';
	}
	wbuf_adds(w, "\"}");
}

/*
 * wbuf.h -- a growable byte buffer with JSON writers.
 *
 * Answers are composed in one wbuf and handed to the connection's output
 * in one piece. Growth follows the daemon's allocation policy (xmalloc).
 */
#ifndef STASHD_WBUF_H
#define STASHD_WBUF_H

#include <stddef.h>
#include <stdint.h>

struct wbuf {
	char  *buf;
	size_t len;
	size_t cap;
};

void wbuf_init(struct wbuf *w);
void wbuf_free(struct wbuf *w);
void wbuf_reserve(struct wbuf *w, size_t more);
void wbuf_add(struct wbuf *w, const void *p, size_t n);
void wbuf_adds(struct wbuf *w, const char *s);
void wbuf_addc(struct wbuf *w, char c);
void wbuf_add_u64(struct wbuf *w, uint64_t v);
void wbuf_add_i64(struct wbuf *w, int64_t v);
void wbuf_add_double(struct wbuf *w, double v);
/* A JSON string literal of s[0..n), escaped; s is valid UTF-8. */
void wbuf_add_jstr(struct wbuf *w, const char *s, size_t n);
/* Bytes as {"base64":"..."}. */
void wbuf_add_base64(struct wbuf *w, const void *data, size_t n);

static inline void
wbuf_reset(struct wbuf *w)
{
	w->len = 0;
}

#endif /* STASHD_WBUF_H */

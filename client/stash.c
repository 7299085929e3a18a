/*
 * stash.c -- libstash: a blocking client of stashd's line protocol.
 *
 * A handle owns one socket, an output buffer of queued request lines and
 * an input buffer of answer lines, and a ring of the requests whose answers
 * have not been read yet ("pending"), each with the id the library gave it
 * and its kind. Queueing only appends to the output buffer. All socket I/O
 * happens in stash_pump(), which sends until the output is empty (flush) or
 * until the input holds a complete line (read). The socket is non-blocking
 * and poll() waits for either direction, so a large pipeline never
 * deadlocks: while the daemon's answers fill our receive buffer we keep
 * reading them into memory and keep writing.
 *
 * Answers are not parsed with jansson first: a small scanner (js_*) checks
 * the grammar of the line and finds the top-level members as spans of the
 * line. That keeps a value's text exactly as the daemon stored it (jansson
 * would reprint 0.1 as 0.10000000000000001 and refuse integers over 64
 * bits), parses versions as full uint64_t, and costs no allocation beyond
 * the copy the caller gets. jansson parses only what a _json call returns
 * and the error objects.
 *
 * Invariants of the connection, used to decide whether a broken socket may
 * be replaced without the risk of executing a request twice:
 *   - started counts the requests of which at least one byte was written
 *     on this connection, received the answer lines read on it;
 *   - out_midline is set when the last write stopped inside a request;
 *   - the output buffer only ever holds whole request lines.
 * A broken connection is replaced transparently, once per call, only when
 * started == received and !out_midline: every request sent on it has its
 * answer and no part of the waiting ones was sent. Otherwise the pending
 * requests whose answers did not arrive are marked lost; each of their
 * reads returns STASH_EIO, and the next request connects again.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "stash-protocol.h"
#include "stash.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* SO_NOSIGPIPE is set instead */
#endif

/* The longest answer line accepted, against a runaway peer. */
#define STASH_REPLY_MAX ((size_t)1 << 30)
/* Free room a read asks for in the input buffer. */
#define STASH_READ_CHUNK (64 * 1024)
/* An idle buffer larger than this is given back to the allocator. */
#define STASH_BUF_KEEP (1024 * 1024)
/* Nesting accepted in answers (the daemon's default limit is 64). */
#define STASH_DEPTH_MAX 512

/* A growable byte buffer: data[off..len) is what is left to use. */
struct buf {
	char  *data;
	size_t size;
	size_t off;
	size_t len;
};

/* The kinds of requests, for typed reads. */
enum stash_op {
	OP_ANY = 0,
	OP_PING,
	OP_GET,
	OP_MGET,
	OP_SET,
	OP_DEL,
	OP_STATS,
};

/* A request whose answer has not been read. */
struct pending {
	uint64_t      id;    /* 0: the caller's, unchecked */
	size_t	      nkeys; /* keys of an mget */
	unsigned char op;    /* enum stash_op */
	unsigned char lost;  /* no answer will come */
};

struct stash {
	char *path;
	int   fd;	  /* -1 when not connected */
	int   timeout_ms; /* <= 0: none */

	struct buf out;		/* queued request lines */
	int	   out_midline; /* last write ended mid-line */
	struct buf in;		/* answer bytes read */
	size_t	   in_scanned;	/* bytes past off, no \n */

	struct pending *pend; /* ring of unread answers */
	size_t		pend_head;
	size_t		pend_count;
	size_t		pend_size;

	uint64_t next_id;
	uint64_t started;  /* requests begun on this connection */
	uint64_t received; /* answer lines read on it */

	char errmsg[512];
	char lostmsg[256]; /* why answers were lost */
};

/* Spans of an answer's top-level members; p is NULL when absent. */
struct span {
	const char *p;
	size_t	    n;
};

struct reply {
	const char *line;
	size_t	    len;
	int	    ok;
	struct span id;
	struct span error;
	struct span value;
	struct span values;
	struct span version;
	struct span deleted;
	struct span stats;
};

static const struct {
	const char *name;
	const char *text;
} stash_errors[] = {
    [STASH_OK] = {"ok", "success"},
    [STASH_EBADREQUEST] = {STASH_ERR_BAD_REQUEST, "bad request"},
    [STASH_ENOTFOUND] = {STASH_ERR_NOT_FOUND, "not found"},
    [STASH_ETOOLARGE] = {STASH_ERR_TOO_LARGE, "too large"},
    [STASH_ECONFLICT] = {STASH_ERR_CONFLICT, "version conflict"},
    [STASH_ESQL] = {STASH_ERR_SQL_ERROR, "SQL error"},
    [STASH_EBUSY] = {STASH_ERR_BUSY, "daemon busy"},
    [STASH_EUNAVAILABLE] = {STASH_ERR_UNAVAILABLE, "unavailable"},
    [STASH_EFORBIDDEN] = {STASH_ERR_FORBIDDEN, "forbidden"},
    [STASH_EINTERNAL] = {STASH_ERR_INTERNAL, "daemon error"},
    [STASH_EIO] = {"io_error", "connection failed or lost"},
    [STASH_EPROTO] = {"protocol_error", "bad answer from the daemon"},
    [STASH_ENOMEM] = {"out_of_memory", "out of memory"},
    [STASH_EINVAL] = {"invalid_argument", "invalid argument"},
};
#define STASH_NERRORS (sizeof(stash_errors) / sizeof(stash_errors[0]))

static int stash_fail(stash_t *, int, const char *, ...)
    __attribute__((format(printf, 3, 4)));
static int stash_lost(stash_t *, int, int, const char *, ...)
    __attribute__((format(printf, 4, 5)));

/* --- buffers -------------------------------------------------------------- */

/* Make room for need more bytes after b->len. 0, or -1 out of memory. */
static int
buf_reserve(struct buf *b, size_t need)
{
	size_t size;
	char  *data;

	if (b->size - b->len >= need)
		return 0;
	if (b->off > 0) {
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
		if (b->size - b->len >= need)
			return 0;
	}
	if (need > SIZE_MAX / 2 - b->len)
		return -1;
	size = b->size < 4096 ? 4096 : b->size;
	while (size - b->len < need)
		size *= 2;
	if ((data = realloc(b->data, size)) == NULL)
		return -1;
	b->data = data;
	b->size = size;
	return 0;
}

/* Append n bytes. 0, or -1 out of memory. */
static int
buf_add(struct buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n) == -1)
		return -1;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

/* Append a C string. */
static int
buf_adds(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

/* Empty b, giving a large allocation back. */
static void
buf_reset(struct buf *b)
{
	b->off = b->len = 0;
	if (b->size > STASH_BUF_KEEP) {
		free(b->data);
		b->data = NULL;
		b->size = 0;
	}
}

/* How many \n in p[0..n). */
static size_t
count_newlines(const char *p, size_t n)
{
	const char *e = p + n, *q;
	size_t	    count = 0;

	while (p < e && (q = memchr(p, '\n', (size_t)(e - p))) != NULL) {
		count++;
		p = q + 1;
	}
	return count;
}

/* --- errors --------------------------------------------------------------- */

/* strerror(3) without a shared buffer: handles live in many threads. */
static const char *
errno_text(int error, char *buf, size_t len)
{
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
	return strerror_r(error, buf, len);
#else
	if (strerror_r(error, buf, len) != 0)
		(void)snprintf(buf, len, "error %d", error);
	return buf;
#endif
}

/* Record why a call fails and return its code. */
static int
stash_fail(stash_t *h, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(h->errmsg, sizeof(h->errmsg), fmt, ap);
	va_end(ap);
	return code;
}

/* A description of a code, for people. */
const char *
stash_strerror(int code)
{
	if (code < 0 || (size_t)code >= STASH_NERRORS)
		return "unknown error";
	return stash_errors[code].text;
}

/* The name of a code, for logs and scripts. */
const char *
stash_errname(int code)
{
	if (code < 0 || (size_t)code >= STASH_NERRORS)
		return "unknown";
	return stash_errors[code].name;
}

/* Why the last failed call failed. */
const char *
stash_errmsg(stash_t *h)
{
	if (h == NULL)
		return "no handle";
	if (h->errmsg[0] == '\0')
		return "no error";
	return h->errmsg;
}

/* Free what the library returned (its allocator, not the caller's). */
void
stash_free(void *p)
{
	free(p);
}

/* --- the pending ring ----------------------------------------------------- */

/* The i-th pending answer from the head. */
static struct pending *
pend_at(stash_t *h, size_t i)
{
	return &h->pend[(h->pend_head + i) % h->pend_size];
}

/* Add a pending answer at the tail. 0, or -1 out of memory. */
static int
pend_push(stash_t *h, uint64_t id, int op, size_t nkeys)
{
	struct pending *p, *np;
	size_t		i, size;

	if (h->pend_count == h->pend_size) {
		size = h->pend_size == 0 ? 64 : h->pend_size * 2;
		if (size > SIZE_MAX / sizeof(*np) ||
		    (np = calloc(size, sizeof(*np))) == NULL)
			return -1;
		for (i = 0; i < h->pend_count; i++)
			np[i] = *pend_at(h, i);
		free(h->pend);
		h->pend = np;
		h->pend_size = size;
		h->pend_head = 0;
	}
	p = pend_at(h, h->pend_count);
	p->id = id;
	p->op = (unsigned char)op;
	p->nkeys = nkeys;
	p->lost = 0;
	h->pend_count++;
	return 0;
}

/* Forget the head pending answer. */
static void
pend_pop(stash_t *h)
{
	h->pend_head = (h->pend_head + 1) % h->pend_size;
	h->pend_count--;
}

/* --- the connection ------------------------------------------------------- */

/* Connect to h->path. 0, or -1 with errno set. */
static int
stash_open(stash_t *h)
{
	struct sockaddr_un sun;
	struct pollfd	   pfd;
	socklen_t	   len;
	int		   fd, flags, error, saved;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(h->path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun.sun_path, h->path, strlen(h->path) + 1);

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
#ifdef SO_NOSIGPIPE
	flags = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &flags, sizeof(flags)) ==
	    -1)
		goto fail;
#endif
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		if (errno != EINTR)
			goto fail;
		/* Interrupted: the connection goes on; wait for its end. */
		pfd.fd = fd;
		pfd.events = POLLOUT;
		while (poll(&pfd, 1, -1) == -1) {
			if (errno != EINTR)
				goto fail;
		}
		len = sizeof(error);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) == -1)
			goto fail;
		if (error != 0) {
			errno = error;
			goto fail;
		}
	}
	if ((flags = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1)
		goto fail;

	h->fd = fd;
	h->started = 0;
	h->received = 0;
	h->out_midline = 0;
	return 0;

fail:
	saved = errno;
	(void)close(fd);
	errno = saved;
	return -1;
}

/* Close the socket, if open. */
static void
stash_shut(stash_t *h)
{
	if (h->fd != -1) {
		(void)close(h->fd);
		h->fd = -1;
	}
}

/*
 * The connection is gone (or no longer trusted): close it, drop unsent
 * requests, and mark lost every pending answer that did not arrive. With
 * keep, complete answer lines already read stay for their reads; without,
 * they go too. Returns code, with errmsg and lostmsg set.
 */
static int
stash_lost(stash_t *h, int keep, int code, const char *fmt, ...)
{
	struct pending *p;
	size_t		lines = 0, i;
	va_list		ap;

	va_start(ap, fmt);
	(void)vsnprintf(h->lostmsg, sizeof(h->lostmsg), fmt, ap);
	va_end(ap);
	(void)snprintf(h->errmsg, sizeof(h->errmsg), "%s", h->lostmsg);

	stash_shut(h);
	buf_reset(&h->out);
	h->out_midline = 0;

	if (keep && h->in.len > h->in.off) {
		lines = count_newlines(
		    h->in.data + h->in.off, h->in.len - h->in.off);
		/* Drop a partial last line. */
		while (
		    h->in.len > h->in.off && h->in.data[h->in.len - 1] != '\n')
			h->in.len--;
	} else
		buf_reset(&h->in);
	h->in_scanned = 0;

	for (i = 0; i < h->pend_count; i++) {
		p = pend_at(h, i);
		if (p->lost)
			continue;
		if (lines > 0)
			lines--;
		else
			p->lost = 1;
	}
	return code;
}

/* Send what the output holds. 0 (all, some or none sent), -1 broken. */
static int
stash_send(stash_t *h)
{
	struct buf *b = &h->out;
	ssize_t	    n;

	while (b->off < b->len) {
		n = send(h->fd, b->data + b->off, b->len - b->off,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1;
		}
		if (n == 0)
			return 0;
		/* Requests begun: the first byte, and one after each \n. */
		if (!h->out_midline)
			h->started++;
		h->started += count_newlines(b->data + b->off, (size_t)n - 1);
		b->off += (size_t)n;
		h->out_midline = b->data[b->off - 1] != '\n';
	}
	buf_reset(b);
	return 0;
}

/*
 * Read what the socket has. 1 read something, 0 nothing yet, -1 broken
 * (errno, 0 for end of file), -2 out of memory.
 */
static int
stash_recv(stash_t *h)
{
	struct buf *b = &h->in;
	ssize_t	    n;

	if (buf_reserve(b, STASH_READ_CHUNK) == -1)
		return -2;
	for (;;) {
		n = recv(
		    h->fd, b->data + b->len, b->size - b->len, MSG_DONTWAIT);
		if (n > 0)
			break;
		if (n == 0) {
			errno = 0;
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return -1;
	}
	h->received += count_newlines(b->data + b->len, (size_t)n);
	b->len += (size_t)n;
	return 1;
}

/* After a failure, keep what the daemon said before it closed. */
static void
stash_recv_rest(stash_t *h)
{
	while (stash_recv(h) == 1)
		/* nothing */;
}

/* Is there a complete line? Sets *nl to its \n. */
static int
stash_has_line(stash_t *h, char **nl)
{
	struct buf *b = &h->in;
	char	   *p;

	p = memchr(b->data + b->off + h->in_scanned, '\n',
	    b->len - b->off - h->in_scanned);
	if (p == NULL) {
		h->in_scanned = b->len - b->off;
		return 0;
	}
	if (nl != NULL)
		*nl = p;
	return 1;
}

/*
 * Has the daemon answered the request we are still sending? It does that
 * for a line over its size limit, and then closes. Drop the rest of that
 * line and the connection; the whole requests queued after it were never
 * begun, so they can go on a new connection. 1 when done, else 0.
 */
static int
stash_skip_partial(stash_t *h)
{
	char *nl;

	if (!h->out_midline || h->started != h->received)
		return 0;
	/* The buffer holds whole lines: the \n is there. */
	nl = memchr(h->out.data + h->out.off, '\n', h->out.len - h->out.off);
	if (nl == NULL)
		return 0;
	h->out.off = (size_t)(nl - h->out.data) + 1;
	h->out_midline = 0;
	if (h->out.off == h->out.len)
		buf_reset(&h->out);
	stash_shut(h);
	return 1;
}

/*
 * Drive the socket until the output is sent (want_line 0) or the input
 * has a complete line (want_line 1), connecting when needed and replacing
 * a broken connection once when that is safe (see the top of the file).
 */
static int
stash_pump(stash_t *h, int want_line)
{
	struct pollfd pfd;
	char	      ebuf[128];
	int	      n, reconnected = 0, error;

	for (;;) {
		if (h->fd != -1)
			(void)stash_skip_partial(h);
		if (want_line) {
			if (h->in.len > h->in.off && stash_has_line(h, NULL))
				return STASH_OK;
			if (h->in.len - h->in.off > STASH_REPLY_MAX)
				return stash_lost(h, 0, STASH_EPROTO,
				    "answer longer than %zu bytes",
				    STASH_REPLY_MAX);
		} else if (h->out.off == h->out.len)
			return STASH_OK;

		if (h->fd == -1) {
			if (h->out.off == h->out.len)
				return stash_lost(
				    h, 1, STASH_EIO, "not connected");
			if (stash_open(h) == -1)
				return stash_lost(h, 1, STASH_EIO,
				    "cannot connect to %s: %s", h->path,
				    errno_text(errno, ebuf, sizeof(ebuf)));
		}

		if (h->out.off < h->out.len) {
			if (stash_send(h) == -1)
				goto broken;
			if (!want_line && h->out.off == h->out.len)
				return STASH_OK;
		}

		pfd.fd = h->fd;
		pfd.events = POLLIN;
		if (h->out.off < h->out.len)
			pfd.events |= POLLOUT;
		pfd.revents = 0;
		n = poll(&pfd, 1, h->timeout_ms > 0 ? h->timeout_ms : -1);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return stash_lost(h, 1, STASH_EIO, "poll: %s",
			    errno_text(errno, ebuf, sizeof(ebuf)));
		}
		if (n == 0)
			return stash_lost(h, 1, STASH_EIO,
			    "no answer from stashd within %d ms",
			    h->timeout_ms);
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) {
			switch (stash_recv(h)) {
			case -2:
				return stash_lost(h, 1, STASH_ENOMEM,
				    "out of memory reading an answer");
			case -1: goto broken;
			default: break;
			}
		}
		continue;

	broken:
		error = errno;
		stash_recv_rest(h);
		if (stash_skip_partial(h))
			continue;
		if (!reconnected && h->started == h->received &&
		    !h->out_midline && h->out.off < h->out.len) {
			/*
			 * Every request sent on this connection was answered
			 * and none of the waiting ones was begun: the daemon
			 * has not seen them, sending them again is safe.
			 */
			reconnected = 1;
			stash_shut(h);
			continue;
		}
		if (error == 0)
			return stash_lost(
			    h, 1, STASH_EIO, "connection closed by stashd");
		return stash_lost(h, 1, STASH_EIO, "connection lost: %s",
		    errno_text(error, ebuf, sizeof(ebuf)));
	}
}

/* A new handle, connected to path (see stash.h for the default). */
stash_t *
stash_connect(const char *path)
{
	stash_t *h;
	int	 saved;

	if (path == NULL || *path == '\0')
		path = getenv(STASH_SOCKET_ENV);
	if (path == NULL || *path == '\0')
		path = STASH_SOCKET_DEFAULT;

	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	h->fd = -1;
	h->next_id = 1;
	if ((h->path = strdup(path)) == NULL) {
		free(h);
		errno = ENOMEM;
		return NULL;
	}
	if (stash_open(h) == -1) {
		saved = errno;
		free(h->path);
		free(h);
		errno = saved;
		return NULL;
	}
	return h;
}

/* Close the socket and free everything; unsent requests are dropped. */
void
stash_close(stash_t *h)
{
	if (h == NULL)
		return;
	stash_shut(h);
	free(h->out.data);
	free(h->in.data);
	free(h->pend);
	free(h->path);
	free(h);
}

/* The longest wait for the daemon's progress, <= 0 for none. */
void
stash_set_timeout(stash_t *h, int timeout_ms)
{
	if (h != NULL)
		h->timeout_ms = timeout_ms;
}

/* How many answers are still to be read. */
size_t
stash_pending(stash_t *h)
{
	return h == NULL ? 0 : h->pend_count;
}

/* Send every queued request (reading answers meanwhile). */
int
stash_flush(stash_t *h)
{
	if (h == NULL)
		return STASH_EINVAL;
	return stash_pump(h, 0);
}

/* --- building requests ---------------------------------------------------- */

/* Is s[0..n) well-formed UTF-8 (no overlong forms, no surrogates)? */
static int
utf8_valid(const unsigned char *s, size_t n)
{
	size_t	 i = 0, k, more;
	uint32_t cp, min;

	while (i < n) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((s[i] & 0xe0) == 0xc0) {
			more = 1;
			cp = s[i] & 0x1f;
			min = 0x80;
		} else if ((s[i] & 0xf0) == 0xe0) {
			more = 2;
			cp = s[i] & 0x0f;
			min = 0x800;
		} else if ((s[i] & 0xf8) == 0xf0) {
			more = 3;
			cp = s[i] & 0x07;
			min = 0x10000;
		} else
			return 0;
		if (more >= n - i)
			return 0;
		for (k = 1; k <= more; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += more + 1;
	}
	return 1;
}

/* Check a key. STASH_OK or STASH_EINVAL. */
static int
stash_check_key(stash_t *h, const char *key)
{
	size_t len;

	if (key == NULL || *key == '\0')
		return stash_fail(h, STASH_EINVAL, "empty key");
	len = strlen(key);
	if (len > STASH_KEY_MAX)
		return stash_fail(h, STASH_EINVAL,
		    "key of %zu bytes, longer than %d", len, STASH_KEY_MAX);
	if (!utf8_valid((const unsigned char *)key, len))
		return stash_fail(h, STASH_EINVAL, "key is not valid UTF-8");
	return STASH_OK;
}

/* Append s as a JSON string. 0, or -1 out of memory. */
static int
add_jstr(struct buf *b, const char *s)
{
	const char *p, *run;
	char	    esc[8];

	if (buf_add(b, "\"", 1) == -1)
		return -1;
	for (run = p = s; *p != '\0'; p++) {
		if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
			continue;
		if (buf_add(b, run, (size_t)(p - run)) == -1)
			return -1;
		if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = *p;
			esc[2] = '\0';
		} else
			(void)snprintf(esc, sizeof(esc), "\\u%04x",
			    (unsigned)(unsigned char)*p);
		if (buf_adds(b, esc) == -1)
			return -1;
		run = p + 1;
	}
	if (buf_add(b, run, (size_t)(p - run)) == -1)
		return -1;
	return buf_add(b, "\"", 1);
}

/* The protocol's name of a durability, NULL for the default. */
static const char *
durability_name(enum stash_durability d)
{
	switch (d) {
	case STASH_DURABILITY_ASYNC: return STASH_DUR_ASYNC;
	case STASH_DURABILITY_JOURNAL: return STASH_DUR_JOURNAL;
	case STASH_DURABILITY_COMMIT: return STASH_DUR_COMMIT;
	case STASH_DURABILITY_DEFAULT: break;
	}
	return NULL;
}

/* Check a durability. STASH_OK or STASH_EINVAL. */
static int
stash_check_durability(stash_t *h, enum stash_durability d)
{
	if (d != STASH_DURABILITY_DEFAULT && durability_name(d) == NULL)
		return stash_fail(
		    h, STASH_EINVAL, "unknown durability %d", (int)d);
	return STASH_OK;
}

/* Append ,"durability":"..." unless d is the default. */
static int
add_durability(struct buf *b, enum stash_durability d)
{
	const char *name;

	if ((name = durability_name(d)) == NULL)
		return 0;
	if (buf_adds(b, ",\"durability\":\"") == -1 ||
	    buf_adds(b, name) == -1 || buf_add(b, "\"", 1) == -1)
		return -1;
	return 0;
}

/* Append ,"name":n. */
static int
add_u64(struct buf *b, const char *name, uint64_t n)
{
	char tmp[64];

	(void)snprintf(tmp, sizeof(tmp), ",\"%s\":%" PRIu64, name, n);
	return buf_adds(b, tmp);
}

/* Start a request line: {"id":N,"op":"op". *mark is for req_end/req_undo. */
static int
req_begin(stash_t *h, const char *op, size_t *mark)
{
	char tmp[96];

	*mark = h->out.len - h->out.off;
	(void)snprintf(tmp, sizeof(tmp), "{\"id\":%" PRIu64 ",\"op\":\"%s\"",
	    h->next_id, op);
	return buf_adds(&h->out, tmp);
}

/* Forget a request line being built. */
static int
req_undo(stash_t *h, size_t mark)
{
	h->out.len = h->out.off + mark;
	return stash_fail(h, STASH_ENOMEM, "out of memory");
}

/* End a request line and make its answer pending. */
static int
req_end(stash_t *h, size_t mark, int op, size_t nkeys)
{
	if (buf_add(&h->out, "}\n", 2) == -1 ||
	    pend_push(h, h->next_id, op, nkeys) == -1)
		return req_undo(h, mark);
	h->next_id++;
	return STASH_OK;
}

/* Queue {"op":"ping"}. */
int
stash_queue_ping(stash_t *h)
{
	size_t mark;

	if (h == NULL)
		return STASH_EINVAL;
	if (req_begin(h, "ping", &mark) == -1)
		return req_undo(h, mark);
	return req_end(h, mark, OP_PING, 0);
}

/* Queue {"op":"stats"}. */
int
stash_queue_stats(stash_t *h)
{
	size_t mark;

	if (h == NULL)
		return STASH_EINVAL;
	if (req_begin(h, "stats", &mark) == -1)
		return req_undo(h, mark);
	return req_end(h, mark, OP_STATS, 0);
}

/* Queue a get of key. */
int
stash_queue_get(stash_t *h, const char *key)
{
	size_t mark;
	int    rc;

	if (h == NULL)
		return STASH_EINVAL;
	if ((rc = stash_check_key(h, key)) != STASH_OK)
		return rc;
	if (req_begin(h, "get", &mark) == -1 ||
	    buf_adds(&h->out, ",\"key\":") == -1 ||
	    add_jstr(&h->out, key) == -1)
		return req_undo(h, mark);
	return req_end(h, mark, OP_GET, 0);
}

/* Queue an mget of n keys. */
int
stash_queue_mget(stash_t *h, const char *const *keys, size_t n)
{
	size_t mark, i;
	int    rc;

	if (h == NULL)
		return STASH_EINVAL;
	if (keys == NULL && n > 0)
		return stash_fail(h, STASH_EINVAL, "no keys");
	for (i = 0; i < n; i++) {
		if ((rc = stash_check_key(h, keys[i])) != STASH_OK)
			return rc;
	}
	if (req_begin(h, "mget", &mark) == -1 ||
	    buf_adds(&h->out, ",\"keys\":[") == -1)
		return req_undo(h, mark);
	for (i = 0; i < n; i++) {
		if ((i > 0 && buf_add(&h->out, ",", 1) == -1) ||
		    add_jstr(&h->out, keys[i]) == -1)
			return req_undo(h, mark);
	}
	if (buf_add(&h->out, "]", 1) == -1)
		return req_undo(h, mark);
	return req_end(h, mark, OP_MGET, n);
}

/* Check set options. STASH_OK or STASH_EINVAL. */
static int
stash_check_opts(stash_t *h, const struct stash_set_opts *opts)
{
	if (opts == NULL)
		return STASH_OK;
	return stash_check_durability(h, opts->durability);
}

/*
 * Queue a set whose value is the JSON text v[0..vlen), known to be valid;
 * raw line breaks in it (only whitespace between tokens can hold one) are
 * turned into spaces so that the request stays one line.
 */
static int
stash_queue_set_text(stash_t *h, const char *key, const char *v, size_t vlen,
    const struct stash_set_opts *opts)
{
	size_t mark, i;
	char  *p;

	if (req_begin(h, "set", &mark) == -1 ||
	    buf_adds(&h->out, ",\"key\":") == -1 ||
	    add_jstr(&h->out, key) == -1 ||
	    buf_adds(&h->out, ",\"value\":") == -1)
		return req_undo(h, mark);
	if (buf_reserve(&h->out, vlen) == -1)
		return req_undo(h, mark);
	p = h->out.data + h->out.len;
	memcpy(p, v, vlen);
	for (i = 0; i < vlen; i++) {
		if (p[i] == '\n' || p[i] == '\r')
			p[i] = ' ';
	}
	h->out.len += vlen;
	if (opts != NULL) {
		if (opts->ttl > 0 && add_u64(&h->out, "ttl", opts->ttl) == -1)
			return req_undo(h, mark);
		if (opts->has_if_version &&
		    add_u64(&h->out, "if_version", opts->if_version) == -1)
			return req_undo(h, mark);
		if (add_durability(&h->out, opts->durability) == -1)
			return req_undo(h, mark);
	}
	return req_end(h, mark, OP_SET, 0);
}

/* Queue a set of JSON text, checked here and sent as it is. */
int
stash_queue_set(stash_t *h, const char *key, const char *value,
    const struct stash_set_opts *opts)
{
	json_error_t jerr;
	json_t	    *j;
	int	     rc;

	if (h == NULL)
		return STASH_EINVAL;
	if ((rc = stash_check_key(h, key)) != STASH_OK ||
	    (rc = stash_check_opts(h, opts)) != STASH_OK)
		return rc;
	if (value == NULL)
		return stash_fail(h, STASH_EINVAL, "no value");
	/* Only a check: the text itself is sent, numbers untouched. */
	j = json_loads(value,
	    JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &jerr);
	if (j == NULL)
		return stash_fail(h, STASH_EINVAL,
		    "value is not JSON: %s (line %d, column %d)", jerr.text,
		    jerr.line, jerr.column);
	json_decref(j);
	return stash_queue_set_text(h, key, value, strlen(value), opts);
}

/* Queue a set of a jansson value. */
int
stash_queue_set_json(stash_t *h, const char *key, const json_t *value,
    const struct stash_set_opts *opts)
{
	char *text;
	int   rc;

	if (h == NULL)
		return STASH_EINVAL;
	if ((rc = stash_check_key(h, key)) != STASH_OK ||
	    (rc = stash_check_opts(h, opts)) != STASH_OK)
		return rc;
	if (value == NULL)
		return stash_fail(h, STASH_EINVAL, "no value");
	text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
	if (text == NULL)
		return stash_fail(
		    h, STASH_EINVAL, "value cannot be encoded as JSON");
	rc = stash_queue_set_text(h, key, text, strlen(text), opts);
	free(text);
	return rc;
}

/* Queue a del of key. */
int
stash_queue_del(stash_t *h, const char *key, enum stash_durability durability)
{
	size_t mark;
	int    rc;

	if (h == NULL)
		return STASH_EINVAL;
	if ((rc = stash_check_key(h, key)) != STASH_OK ||
	    (rc = stash_check_durability(h, durability)) != STASH_OK)
		return rc;
	if (req_begin(h, "del", &mark) == -1 ||
	    buf_adds(&h->out, ",\"key\":") == -1 ||
	    add_jstr(&h->out, key) == -1 ||
	    add_durability(&h->out, durability) == -1)
		return req_undo(h, mark);
	return req_end(h, mark, OP_DEL, 0);
}

/* Queue any request object, adding an id unless it has one. */
int
stash_queue(stash_t *h, const json_t *request)
{
	char	*text;
	size_t	 mark, len;
	uint64_t id = 0;
	char	 tmp[64];

	if (h == NULL)
		return STASH_EINVAL;
	if (!json_is_object(request))
		return stash_fail(
		    h, STASH_EINVAL, "a request must be a JSON object");
	if ((text = json_dumps(request, JSON_COMPACT)) == NULL)
		return stash_fail(
		    h, STASH_EINVAL, "request cannot be encoded as JSON");
	len = strlen(text);
	mark = h->out.len - h->out.off;
	if (json_object_get(request, "id") == NULL) {
		/* Splice our id in at the front: {"id":N, + the rest. */
		id = h->next_id;
		(void)snprintf(tmp, sizeof(tmp), "{\"id\":%" PRIu64 "%s", id,
		    len > 2 ? "," : "");
		if (buf_adds(&h->out, tmp) == -1 ||
		    buf_add(&h->out, text + 1, len - 1) == -1)
			goto nomem;
	} else if (buf_add(&h->out, text, len) == -1)
		goto nomem;
	if (buf_add(&h->out, "\n", 1) == -1 ||
	    pend_push(h, id, OP_ANY, 0) == -1)
		goto nomem;
	if (id != 0)
		h->next_id++;
	free(text);
	return STASH_OK;

nomem:
	free(text);
	return req_undo(h, mark);
}

/* --- reading answers ------------------------------------------------------ */

/* Skip JSON whitespace. */
static const char *
js_ws(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* Locale-free isdigit(). */
static int
js_isdigit(char c)
{
	return c >= '0' && c <= '9';
}

/* Locale-free isxdigit(). */
static int
js_isxdigit(char c)
{
	return js_isdigit(c) || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F');
}

/* Skip the string at p (at its "). Its end, or NULL when malformed. */
static const char *
js_string(const char *p, const char *e)
{
	unsigned char c;
	int	      i;

	for (p++; p < e;) {
		c = (unsigned char)*p++;
		if (c == '"')
			return p;
		if (c < 0x20)
			return NULL;
		if (c != '\\')
			continue;
		if (p >= e)
			return NULL;
		c = (unsigned char)*p++;
		if (c == 'u') {
			for (i = 0; i < 4; i++, p++) {
				if (p >= e || !js_isxdigit(*p))
					return NULL;
			}
		} else if (c == '\0' || strchr("\"\\/bfnrt", c) == NULL)
			return NULL;
	}
	return NULL;
}

/* Skip the number at p. */
static const char *
js_number(const char *p, const char *e)
{
	if (p < e && *p == '-')
		p++;
	if (p >= e || !js_isdigit(*p))
		return NULL;
	if (*p == '0')
		p++;
	else {
		while (p < e && js_isdigit(*p))
			p++;
	}
	if (p < e && *p == '.') {
		if (++p >= e || !js_isdigit(*p))
			return NULL;
		while (p < e && js_isdigit(*p))
			p++;
	}
	if (p < e && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < e && (*p == '+' || *p == '-'))
			p++;
		if (p >= e || !js_isdigit(*p))
			return NULL;
		while (p < e && js_isdigit(*p))
			p++;
	}
	return p;
}

/* Skip the literal word at p. */
static const char *
js_word(const char *p, const char *e, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(e - p) < n || memcmp(p, word, n) != 0)
		return NULL;
	return p + n;
}

/* Skip one JSON value at p (no leading space). Its end, or NULL. */
static const char *
js_value(const char *p, const char *e, int depth)
{
	char close;

	if (p >= e)
		return NULL;
	switch (*p) {
	case '"': return js_string(p, e);
	case 't': return js_word(p, e, "true");
	case 'f': return js_word(p, e, "false");
	case 'n': return js_word(p, e, "null");
	case '{':
	case '[': break;
	default: return js_number(p, e);
	}
	if (depth <= 0)
		return NULL;
	close = *p == '{' ? '}' : ']';
	p = js_ws(p + 1, e);
	if (p < e && *p == close)
		return p + 1;
	for (;;) {
		if (close == '}') {
			if (p >= e || *p != '"' ||
			    (p = js_string(p, e)) == NULL)
				return NULL;
			p = js_ws(p, e);
			if (p >= e || *p != ':')
				return NULL;
			p = js_ws(p + 1, e);
		}
		if ((p = js_value(p, e, depth - 1)) == NULL)
			return NULL;
		p = js_ws(p, e);
		if (p >= e)
			return NULL;
		if (*p == close)
			return p + 1;
		if (*p != ',')
			return NULL;
		p = js_ws(p + 1, e);
	}
}

/* Is the span the raw text s? */
static int
span_is(const struct span *sp, const char *s)
{
	size_t n = strlen(s);

	return sp->p != NULL && sp->n == n && memcmp(sp->p, s, n) == 0;
}

/* Split an answer line into its top-level members. 0, or -1 malformed. */
static int
reply_scan(const char *line, size_t len, struct reply *r)
{
	static const struct {
		const char *key;
		size_t	    off;
	} members[] = {
	    {"\"ok\"", offsetof(struct reply, ok)},
	    {"\"id\"", offsetof(struct reply, id)},
	    {"\"error\"", offsetof(struct reply, error)},
	    {"\"value\"", offsetof(struct reply, value)},
	    {"\"values\"", offsetof(struct reply, values)},
	    {"\"version\"", offsetof(struct reply, version)},
	    {"\"deleted\"", offsetof(struct reply, deleted)},
	    {"\"stats\"", offsetof(struct reply, stats)},
	};
	const char *p = line, *e = line + len, *k, *v;
	struct span key, ok, *sp;
	size_t	    i;

	memset(r, 0, sizeof(*r));
	memset(&ok, 0, sizeof(ok));
	r->line = line;
	r->len = len;
	p = js_ws(p, e);
	if (p >= e || *p != '{')
		return -1;
	p = js_ws(p + 1, e);
	if (p < e && *p == '}')
		return -1; /* no "ok" */
	for (;;) {
		k = p;
		if (p >= e || *p != '"' || (p = js_string(p, e)) == NULL)
			return -1;
		key.p = k;
		key.n = (size_t)(p - k);
		p = js_ws(p, e);
		if (p >= e || *p != ':')
			return -1;
		v = p = js_ws(p + 1, e);
		if ((p = js_value(p, e, STASH_DEPTH_MAX)) == NULL)
			return -1;
		for (i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
			if (!span_is(&key, members[i].key))
				continue;
			sp = i == 0
				 ? &ok
				 : (struct span *)((char *)r + members[i].off);
			sp->p = v;
			sp->n = (size_t)(p - v);
			break;
		}
		p = js_ws(p, e);
		if (p >= e)
			return -1;
		if (*p == '}')
			break;
		if (*p != ',')
			return -1;
		p = js_ws(p + 1, e);
	}
	if (js_ws(p + 1, e) != e)
		return -1;
	if (span_is(&ok, "true"))
		r->ok = 1;
	else if (!span_is(&ok, "false"))
		return -1;
	return 0;
}

/* Parse a span of decimal digits. 0, or -1. */
static int
span_u64(const struct span *sp, uint64_t *out)
{
	uint64_t n = 0;
	size_t	 i;
	unsigned d;

	if (sp->p == NULL || sp->n == 0)
		return -1;
	for (i = 0; i < sp->n; i++) {
		if (!js_isdigit(sp->p[i]))
			return -1;
		d = (unsigned)(sp->p[i] - '0');
		if (n > (UINT64_MAX - d) / 10)
			return -1;
		n = n * 10 + d;
	}
	*out = n;
	return 0;
}

/* A copy of the span as a string. */
static char *
span_dup(const struct span *sp)
{
	char *s;

	if ((s = malloc(sp->n + 1)) == NULL)
		return NULL;
	memcpy(s, sp->p, sp->n);
	s[sp->n] = '\0';
	return s;
}

/* The span parsed by jansson; NULL (with errmsg) when it cannot. */
static json_t *
span_json(stash_t *h, const struct span *sp, int *rc)
{
	json_error_t jerr;
	json_t	    *j;

	j = json_loadb(sp->p, sp->n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (j == NULL)
		*rc = stash_fail(h, STASH_EPROTO,
		    "answer cannot be represented by jansson: %s", jerr.text);
	return j;
}

/* The code of a failure answer; errmsg gets its message. */
static int
reply_error(stash_t *h, const struct reply *r)
{
	json_t	   *err;
	const char *code, *msg;
	size_t	    i;
	int	    rc;

	if (r->error.p == NULL)
		return stash_fail(h, STASH_EPROTO, "failure without an error");
	if ((err = span_json(h, &r->error, &rc)) == NULL)
		return rc;
	code = json_string_value(json_object_get(err, "code"));
	msg = json_string_value(json_object_get(err, "message"));
	if (msg == NULL)
		msg = "";
	if (code == NULL) {
		json_decref(err);
		return stash_fail(h, STASH_EPROTO, "error without a code");
	}
	for (i = STASH_EBADREQUEST; i <= STASH_EINTERNAL; i++) {
		if (strcmp(code, stash_errors[i].name) == 0) {
			(void)stash_fail(h, (int)i, "%s", msg);
			json_decref(err);
			return (int)i;
		}
	}
	(void)stash_fail(
	    h, STASH_EPROTO, "unknown error code %s: %s", code, msg);
	json_decref(err);
	return STASH_EPROTO;
}

/* The name of a request kind, for messages. */
static const char *
op_name(int op)
{
	switch (op) {
	case OP_PING: return "ping";
	case OP_GET: return "get";
	case OP_MGET: return "mget";
	case OP_SET: return "set";
	case OP_DEL: return "del";
	case OP_STATS: return "stats";
	}
	return "generic";
}

/*
 * Take the answer of the next pending request, which must be of kind op
 * (OP_ANY: any) and, for an mget, of nkeys keys. Returns STASH_OK for a
 * success answer, the daemon's code for a failure answer (r is filled in
 * both cases; r->line is NULL when no answer was taken), or the library's.
 * r's spans point into the input buffer: use them before the next I/O.
 */
static int
stash_next(stash_t *h, int op, size_t nkeys, struct reply *r)
{
	struct pending *p;
	struct buf     *b = &h->in;
	char	       *nl, tmp[32];
	uint64_t	id;
	int		rc;

	memset(r, 0, sizeof(*r));
	/* The last answer's spans are dead now: the buffer may shrink. */
	if (b->off == b->len)
		buf_reset(b);
	if (h->pend_count == 0)
		return stash_fail(h, STASH_EINVAL, "no answer is pending");
	p = pend_at(h, 0);
	if (op != OP_ANY && p->op != op)
		return stash_fail(h, STASH_EINVAL,
		    "the next answer is of a %s request, not %s",
		    op_name(p->op), op_name(op));
	if (op == OP_MGET && p->nkeys != nkeys)
		return stash_fail(h, STASH_EINVAL,
		    "the next answer is of an mget of %zu keys, not %zu",
		    p->nkeys, nkeys);

	rc = STASH_OK;
	if (!p->lost)
		rc = stash_pump(h, 1);
	/* Even when the pump failed, an answer may have come first. */
	if (!p->lost && b->len > b->off && stash_has_line(h, &nl)) {
		id = p->id;
		pend_pop(h);
		r->line = b->data + b->off;
		r->len = (size_t)(nl - r->line);
		b->off += r->len + 1;
		h->in_scanned = 0;
		/* A bad line: the stream can no longer be trusted. */
		if (reply_scan(r->line, r->len, r) == -1) {
			memset(r, 0, sizeof(*r));
			return stash_lost(
			    h, 0, STASH_EPROTO, "malformed answer from stashd");
		}
		if (id != 0) {
			(void)snprintf(tmp, sizeof(tmp), "%" PRIu64, id);
			if (r->id.p != NULL ? !span_is(&r->id, tmp) : r->ok) {
				memset(r, 0, sizeof(*r));
				return stash_lost(h, 0, STASH_EPROTO,
				    "answer out of order: expected id %s", tmp);
			}
		}
		if (!r->ok)
			return reply_error(h, r);
		return STASH_OK;
	}
	if (p->lost) {
		pend_pop(h);
		return stash_fail(h, STASH_EIO, "%s", h->lostmsg);
	}
	return rc != STASH_OK
		   ? rc
		   : stash_fail(h, STASH_EINTERNAL, "no answer and no error");
}

/* The answer of a ping. */
int
stash_read_ping(stash_t *h)
{
	struct reply r;

	if (h == NULL)
		return STASH_EINVAL;
	return stash_next(h, OP_PING, 0, &r);
}

/* The answer of a get, as JSON text. */
int
stash_read_get(stash_t *h, char **value, uint64_t *version)
{
	struct reply r;
	uint64_t     v;
	int	     rc;

	if (value != NULL)
		*value = NULL;
	if (version != NULL)
		*version = 0;
	if (h == NULL)
		return STASH_EINVAL;
	if ((rc = stash_next(h, OP_GET, 0, &r)) != STASH_OK)
		return rc;
	if (r.value.p == NULL || span_u64(&r.version, &v) == -1)
		return stash_fail(
		    h, STASH_EPROTO, "get answer without value or version");
	if (value != NULL && (*value = span_dup(&r.value)) == NULL)
		return stash_fail(h, STASH_ENOMEM, "out of memory");
	if (version != NULL)
		*version = v;
	return STASH_OK;
}

/* The answer of a get, as a jansson value. */
int
stash_read_get_json(stash_t *h, json_t **value, uint64_t *version)
{
	struct reply r;
	uint64_t     v;
	int	     rc;

	if (value != NULL)
		*value = NULL;
	if (version != NULL)
		*version = 0;
	if (h == NULL)
		return STASH_EINVAL;
	if ((rc = stash_next(h, OP_GET, 0, &r)) != STASH_OK)
		return rc;
	if (r.value.p == NULL || span_u64(&r.version, &v) == -1)
		return stash_fail(
		    h, STASH_EPROTO, "get answer without value or version");
	if (value != NULL && (*value = span_json(h, &r.value, &rc)) == NULL)
		return rc;
	if (version != NULL)
		*version = v;
	return STASH_OK;
}

/* The answer of an mget, as n strings (NULL for absent keys). */
int
stash_read_mget(stash_t *h, char **values, size_t n)
{
	struct reply r;
	struct span  sp;
	const char  *p, *e, *v;
	size_t	     i;
	int	     rc;

	if (h == NULL)
		return STASH_EINVAL;
	if (values == NULL && n > 0)
		return stash_fail(h, STASH_EINVAL, "no values array");
	for (i = 0; i < n; i++)
		values[i] = NULL;
	if ((rc = stash_next(h, OP_MGET, n, &r)) != STASH_OK)
		return rc;
	if (r.values.p == NULL || *r.values.p != '[')
		return stash_fail(
		    h, STASH_EPROTO, "mget answer without values");
	/* The scanner already checked the array; walk its elements. */
	p = js_ws(r.values.p + 1, r.values.p + r.values.n);
	e = r.values.p + r.values.n - 1; /* at the ] */
	for (i = 0; p < e; i++) {
		v = p;
		if ((p = js_value(p, e, STASH_DEPTH_MAX)) == NULL)
			goto bad;
		sp.p = v;
		sp.n = (size_t)(p - v);
		p = js_ws(p, e);
		if (p < e && *p == ',')
			p = js_ws(p + 1, e);
		if (i >= n)
			goto bad;
		if (span_is(&sp, "null"))
			continue;
		if ((values[i] = span_dup(&sp)) == NULL) {
			rc = stash_fail(h, STASH_ENOMEM, "out of memory");
			goto fail;
		}
	}
	if (i != n)
		goto bad;
	return STASH_OK;

bad:
	rc = stash_fail(h, STASH_EPROTO, "mget answer with a bad values array");
fail:
	for (i = 0; i < n; i++) {
		free(values[i]);
		values[i] = NULL;
	}
	return rc;
}

/* The answer of an mget, as a jansson array. */
int
stash_read_mget_json(stash_t *h, json_t **values)
{
	struct reply r;
	json_t	    *j;
	int	     rc;

	if (values != NULL)
		*values = NULL;
	if (h == NULL)
		return STASH_EINVAL;
	if ((rc = stash_next(h, OP_MGET,
		 h->pend_count > 0 ? pend_at(h, 0)->nkeys : 0, &r)) != STASH_OK)
		return rc;
	if (r.values.p == NULL || *r.values.p != '[')
		return stash_fail(
		    h, STASH_EPROTO, "mget answer without values");
	if ((j = span_json(h, &r.values, &rc)) == NULL)
		return rc;
	if (values != NULL)
		*values = j;
	else
		json_decref(j);
	return STASH_OK;
}

/* The answer of a set: the new version. */
int
stash_read_set(stash_t *h, uint64_t *version)
{
	struct reply r;
	uint64_t     v;
	int	     rc;

	if (version != NULL)
		*version = 0;
	if (h == NULL)
		return STASH_EINVAL;
	if ((rc = stash_next(h, OP_SET, 0, &r)) != STASH_OK)
		return rc;
	if (span_u64(&r.version, &v) == -1)
		return stash_fail(
		    h, STASH_EPROTO, "set answer without version");
	if (version != NULL)
		*version = v;
	return STASH_OK;
}

/* The answer of a del: whether the key existed. */
int
stash_read_del(stash_t *h, int *deleted)
{
	struct reply r;
	int	     rc, d;

	if (deleted != NULL)
		*deleted = 0;
	if (h == NULL)
		return STASH_EINVAL;
	if ((rc = stash_next(h, OP_DEL, 0, &r)) != STASH_OK)
		return rc;
	if (span_is(&r.deleted, "true"))
		d = 1;
	else if (span_is(&r.deleted, "false"))
		d = 0;
	else
		return stash_fail(
		    h, STASH_EPROTO, "del answer without deleted");
	if (deleted != NULL)
		*deleted = d;
	return STASH_OK;
}

/* The answer of stats, as JSON text. */
int
stash_read_stats(stash_t *h, char **stats)
{
	struct reply r;
	int	     rc;

	if (stats != NULL)
		*stats = NULL;
	if (h == NULL)
		return STASH_EINVAL;
	if ((rc = stash_next(h, OP_STATS, 0, &r)) != STASH_OK)
		return rc;
	if (r.stats.p == NULL)
		return stash_fail(
		    h, STASH_EPROTO, "stats answer without stats");
	if (stats != NULL && (*stats = span_dup(&r.stats)) == NULL)
		return stash_fail(h, STASH_ENOMEM, "out of memory");
	return STASH_OK;
}

/* The answer of stats, as a jansson object. */
int
stash_read_stats_json(stash_t *h, json_t **stats)
{
	struct reply r;
	json_t	    *j;
	int	     rc;

	if (stats != NULL)
		*stats = NULL;
	if (h == NULL)
		return STASH_EINVAL;
	if ((rc = stash_next(h, OP_STATS, 0, &r)) != STASH_OK)
		return rc;
	if (r.stats.p == NULL)
		return stash_fail(
		    h, STASH_EPROTO, "stats answer without stats");
	if ((j = span_json(h, &r.stats, &rc)) == NULL)
		return rc;
	if (stats != NULL)
		*stats = j;
	else
		json_decref(j);
	return STASH_OK;
}

/* The answer of any request, whole. */
int
stash_read_reply(stash_t *h, json_t **reply)
{
	struct reply r;
	struct span  all;
	json_t	    *j;
	int	     rc, jrc;

	if (reply != NULL)
		*reply = NULL;
	if (h == NULL)
		return STASH_EINVAL;
	rc = stash_next(h, OP_ANY, 0, &r);
	if (r.line == NULL)
		return rc;
	all.p = r.line;
	all.n = r.len;
	if ((j = span_json(h, &all, &jrc)) == NULL)
		return jrc;
	if (reply != NULL)
		*reply = j;
	else
		json_decref(j);
	return rc;
}

/* --- one-shot calls ------------------------------------------------------- */

/* One-shot calls need every earlier answer read. */
static int
stash_check_idle(stash_t *h)
{
	if (h == NULL)
		return STASH_EINVAL;
	if (h->pend_count > 0)
		return stash_fail(h, STASH_EINVAL,
		    "%zu queued answers are still to be read", h->pend_count);
	return STASH_OK;
}

/* Round trip a ping. */
int
stash_ping(stash_t *h)
{
	int rc;

	if ((rc = stash_check_idle(h)) != STASH_OK ||
	    (rc = stash_queue_ping(h)) != STASH_OK)
		return rc;
	return stash_read_ping(h);
}

/* Get one value as JSON text. */
int
stash_get(stash_t *h, const char *key, char **value, uint64_t *version)
{
	int rc;

	if (value != NULL)
		*value = NULL;
	if (version != NULL)
		*version = 0;
	if ((rc = stash_check_idle(h)) != STASH_OK ||
	    (rc = stash_queue_get(h, key)) != STASH_OK)
		return rc;
	return stash_read_get(h, value, version);
}

/* Get one value as a jansson value. */
int
stash_get_json(stash_t *h, const char *key, json_t **value, uint64_t *version)
{
	int rc;

	if (value != NULL)
		*value = NULL;
	if (version != NULL)
		*version = 0;
	if ((rc = stash_check_idle(h)) != STASH_OK ||
	    (rc = stash_queue_get(h, key)) != STASH_OK)
		return rc;
	return stash_read_get_json(h, value, version);
}

/* Get n values as JSON text. */
int
stash_mget(stash_t *h, const char *const *keys, size_t n, char **values)
{
	size_t i;
	int    rc;

	if (values != NULL) {
		for (i = 0; i < n; i++)
			values[i] = NULL;
	}
	if ((rc = stash_check_idle(h)) != STASH_OK)
		return rc;
	if (values == NULL && n > 0)
		return stash_fail(h, STASH_EINVAL, "no values array");
	if ((rc = stash_queue_mget(h, keys, n)) != STASH_OK)
		return rc;
	return stash_read_mget(h, values, n);
}

/* Get n values as a jansson array. */
int
stash_mget_json(stash_t *h, const char *const *keys, size_t n, json_t **values)
{
	int rc;

	if (values != NULL)
		*values = NULL;
	if ((rc = stash_check_idle(h)) != STASH_OK ||
	    (rc = stash_queue_mget(h, keys, n)) != STASH_OK)
		return rc;
	return stash_read_mget_json(h, values);
}

/* Set a value given as JSON text. */
int
stash_set(stash_t *h, const char *key, const char *value,
    const struct stash_set_opts *opts, uint64_t *version)
{
	int rc;

	if (version != NULL)
		*version = 0;
	if ((rc = stash_check_idle(h)) != STASH_OK ||
	    (rc = stash_queue_set(h, key, value, opts)) != STASH_OK)
		return rc;
	return stash_read_set(h, version);
}

/* Set a value given as a jansson value. */
int
stash_set_json(stash_t *h, const char *key, const json_t *value,
    const struct stash_set_opts *opts, uint64_t *version)
{
	int rc;

	if (version != NULL)
		*version = 0;
	if ((rc = stash_check_idle(h)) != STASH_OK ||
	    (rc = stash_queue_set_json(h, key, value, opts)) != STASH_OK)
		return rc;
	return stash_read_set(h, version);
}

/* Delete a key. */
int
stash_del(
    stash_t *h, const char *key, enum stash_durability durability, int *deleted)
{
	int rc;

	if (deleted != NULL)
		*deleted = 0;
	if ((rc = stash_check_idle(h)) != STASH_OK ||
	    (rc = stash_queue_del(h, key, durability)) != STASH_OK)
		return rc;
	return stash_read_del(h, deleted);
}

/* The daemon's statistics as JSON text. */
int
stash_stats(stash_t *h, char **stats)
{
	int rc;

	if (stats != NULL)
		*stats = NULL;
	if ((rc = stash_check_idle(h)) != STASH_OK ||
	    (rc = stash_queue_stats(h)) != STASH_OK)
		return rc;
	return stash_read_stats(h, stats);
}

/* The daemon's statistics as a jansson object. */
int
stash_stats_json(stash_t *h, json_t **stats)
{
	int rc;

	if (stats != NULL)
		*stats = NULL;
	if ((rc = stash_check_idle(h)) != STASH_OK ||
	    (rc = stash_queue_stats(h)) != STASH_OK)
		return rc;
	return stash_read_stats_json(h, stats);
}

/* Any request and its whole answer. */
int
stash_request(stash_t *h, const json_t *request, json_t **reply)
{
	int rc;

	if (reply != NULL)
		*reply = NULL;
	if ((rc = stash_check_idle(h)) != STASH_OK ||
	    (rc = stash_queue(h, request)) != STASH_OK)
		return rc;
	return stash_read_reply(h, reply);
}

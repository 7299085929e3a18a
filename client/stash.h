/*
 * stash.h -- libstash, the C client library of stashd.
 *
 * A stash_t is one connection to stashd over its Unix socket. Every call
 * blocks until its answer arrives (or the optional timeout passes), and
 * returns 0 (STASH_OK) or one of the STASH_E* codes below; stash_errmsg()
 * says why in words. Nothing in the library exits, aborts or prints: out
 * of memory is STASH_ENOMEM like any other failure.
 *
 * Values are JSON. The text calls take and give JSON text (any JSON value,
 * not only objects: "42", "\"hi\"", "[1,2]"); the _json calls take and give
 * jansson json_t values. The text calls pass numbers through untouched, so
 * they are the ones to use for integers jansson cannot hold (beyond 64
 * bits): a _json call on such a value fails with STASH_EPROTO.
 *
 * Memory. Every string a call returns through a char ** is allocated with
 * malloc() and belongs to the caller, who releases it with free() (or
 * stash_free(), the same thing, for callers whose free() is another
 * allocator's). Every json_t a call returns carries one reference that
 * belongs to the caller: json_decref() it. Arguments are only borrowed for
 * the duration of the call. On failure, output pointers are set to NULL.
 *
 * Threads. A handle is not locked: use one handle per thread, or serialize
 * the calls on a shared one yourself. Handles are independent of each
 * other and the library has no global state, so any number of threads may
 * each use their own. SIGPIPE is never raised: a closed socket is an error
 * return, not a signal.
 *
 * Pipelining. stash_queue_*() append a request to the handle's output
 * without waiting; stash_flush() sends everything queued; stash_read_*()
 * return the answers one by one, in the order of the requests (flushing
 * first when something is still unsent). While it writes a large pipeline
 * the library also reads the answers that arrive, so that neither side
 * blocks on a full socket buffer; they wait in memory until read. Each
 * request gets an "id" the daemon echoes, and every answer is checked
 * against it. A typed read (stash_read_get, ...) must match the kind of the
 * next request, or it fails with STASH_EINVAL and consumes nothing;
 * stash_read_reply() reads any answer. The one-shot calls (stash_get, ...)
 * are a queue and a read; they refuse (STASH_EINVAL) while answers of
 * earlier queued requests are still unread.
 *
 * Restarts. The daemon may restart (a crash, an upgrade) between calls.
 * The library never sends a request twice when it cannot know whether the
 * first copy was executed:
 *   - when the connection turns out to be broken before any byte of the
 *     waiting requests was sent on it, and every earlier request had its
 *     answer, the library reconnects once, transparently, and sends them
 *     on the new connection: the daemon never saw them;
 *   - when it breaks after a request was sent, the answer is lost and the
 *     outcome unknown (the write may or may not have happened): the read
 *     of that answer, and of every later one, returns STASH_EIO. Answers
 *     that had arrived before the break are still returned first. The next
 *     call connects again. Retrying is the caller's decision; a set with
 *     if_version cannot apply twice (a second copy gets a conflict).
 *   - when a timeout is set and passes, the connection is closed (its late
 *     answers can no longer be matched) and the call returns STASH_EIO.
 *   - a request longer than the daemon's line limit (1 MiB by default) is
 *     answered STASH_ETOOLARGE and the daemon closes the connection; the
 *     requests queued after it were never begun, so they go on a new one.
 *   - an answer that is not valid JSON, or does not carry the expected id,
 *     is STASH_EPROTO: the stream cannot be trusted any more, so the
 *     connection is closed and the later answers are lost (STASH_EIO).
 *
 * Durability. A write (set, del) is acknowledged according to its
 * durability: STASH_DURABILITY_ASYNC on receipt (the journal is fsync'd
 * within the daemon's fsync_interval: a crash can lose the last moment of
 * writes); STASH_DURABILITY_JOURNAL once its journal record is fsync'd (it
 * survives a crash or power loss); STASH_DURABILITY_COMMIT once its SQLite
 * transaction committed. STASH_DURABILITY_DEFAULT leaves the choice to the
 * daemon (journal, unless configured otherwise). Reads see acknowledged
 * writes at once, whatever their durability.
 */
#ifndef STASH_H
#define STASH_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) && __GNUC__ >= 4
#define STASH_API __attribute__((visibility("default")))
#else
#define STASH_API
#endif

/* jansson's value type; include <jansson.h> to use the _json calls. */
struct json_t;

/* A key is a non-empty UTF-8 string of at most this many bytes. */
#ifndef STASH_KEY_MAX
#define STASH_KEY_MAX 1024
#endif

/* One connection to stashd. */
typedef struct stash stash_t;

/* What calls return. Keep stash_strerror() and stash_errname() in step. */
enum stash_error {
	STASH_OK = 0,
	/* Errors answered by the daemon (the protocol's error codes). */
	STASH_EBADREQUEST,  /* bad_request: the request is invalid */
	STASH_ENOTFOUND,    /* not_found: no such key */
	STASH_ETOOLARGE,    /* too_large: over a size limit */
	STASH_ECONFLICT,    /* conflict: if_version did not match */
	STASH_ESQL,	    /* sql_error */
	STASH_EBUSY,	    /* busy: over a limit, try again later */
	STASH_EUNAVAILABLE, /* unavailable: cannot take this now */
	STASH_EFORBIDDEN,   /* forbidden: not allowed for this peer */
	STASH_EINTERNAL,    /* internal: the daemon failed */
	/* Errors of the client side. */
	STASH_EIO,    /* cannot connect, connection lost, timeout */
	STASH_EPROTO, /* an answer the library cannot use */
	STASH_ENOMEM, /* out of memory */
	STASH_EINVAL, /* invalid argument or call out of order */
};

/* How durable a write must be before it is acknowledged. */
enum stash_durability {
	STASH_DURABILITY_DEFAULT = 0, /* the daemon's default */
	STASH_DURABILITY_ASYNC,
	STASH_DURABILITY_JOURNAL,
	STASH_DURABILITY_COMMIT,
};

/* Options of a set; all zero (or a NULL pointer) means none. */
struct stash_set_opts {
	uint32_t	      ttl;	      /* seconds, 0 = forever */
	int		      has_if_version; /* compare-and-set */
	uint64_t	      if_version;     /* 0 = must not exist */
	enum stash_durability durability;
};

/*
 * Connect to the daemon at path; NULL path means $STASH_SOCKET, or else
 * "stashd.sock" in the current folder. Returns a new handle, or NULL with
 * errno set (ENOMEM, ENAMETOOLONG, or connect(2)'s: ENOENT, ECONNREFUSED,
 * EACCES...).
 */
STASH_API stash_t *stash_connect(const char *path);
/* Close the connection and free h (NULL is fine); unsent requests are lost. */
STASH_API void stash_close(stash_t *h);
/*
 * Fail a call with STASH_EIO when the daemon makes no progress (accepts
 * nothing, answers nothing) for timeout_ms milliseconds; <= 0 (the
 * default) waits forever.
 */
STASH_API void stash_set_timeout(stash_t *h, int timeout_ms);

/* Text of an error code ("not found", ...). Never NULL. */
STASH_API const char *stash_strerror(int code);
/* The protocol's name of a code ("not_found"), or "io_error" and the like. */
STASH_API const char *stash_errname(int code);
/*
 * Why the last failed call of h failed: the daemon's message for the
 * daemon's errors, the library's for its own. Successful calls leave it
 * alone. Valid until the next call on h. Never NULL.
 */
STASH_API const char *stash_errmsg(stash_t *h);
/* free() for what the library returns. */
STASH_API void stash_free(void *p);

/* Is the daemon there? */
STASH_API int stash_ping(stash_t *h);
/*
 * The value of key as compact JSON text in *value (NULL to only test that
 * it exists) and its version in *version (or NULL). STASH_ENOTFOUND when
 * there is no such key.
 */
STASH_API int stash_get(
    stash_t *h, const char *key, char **value, uint64_t *version);
STASH_API int stash_get_json(
    stash_t *h, const char *key, struct json_t **value, uint64_t *version);
/*
 * The values of n keys: values[i] is the compact JSON text of keys[i], or
 * NULL when it is absent (the protocol does not tell an absent key from a
 * stored JSON null). The caller frees every values[i].
 */
STASH_API int stash_mget(
    stash_t *h, const char *const *keys, size_t n, char **values);
/* The same as a JSON array of n elements, null for the absent ones. */
STASH_API int stash_mget_json(
    stash_t *h, const char *const *keys, size_t n, struct json_t **values);
/*
 * Store value (JSON text, checked here: STASH_EINVAL when it is not JSON)
 * under key; opts may be NULL. *version (or NULL) gets the new version.
 * STASH_ECONFLICT when opts->has_if_version and the stored version
 * differs.
 */
STASH_API int stash_set(stash_t *h, const char *key, const char *value,
    const struct stash_set_opts *opts, uint64_t *version);
STASH_API int stash_set_json(stash_t *h, const char *key,
    const struct json_t *value, const struct stash_set_opts *opts,
    uint64_t *version);
/* Delete key; *deleted (or NULL) is 1 when it existed, 0 when it did not. */
STASH_API int stash_del(stash_t *h, const char *key,
    enum stash_durability durability, int *deleted);
/* The daemon's statistics, as JSON text or as an object. */
STASH_API int stash_stats(stash_t *h, char **stats);
STASH_API int stash_stats_json(stash_t *h, struct json_t **stats);
/*
 * Any request object (exec, query, sync...) and its whole answer, whether
 * ok or not: the return value is the answer's error code, and *reply (when
 * the answer arrived) is the answer object.
 */
STASH_API int stash_request(
    stash_t *h, const struct json_t *request, struct json_t **reply);

/*
 * Pipelining: queue requests, then read their answers in order. A queue
 * call fails only on a bad argument or out of memory; nothing is sent
 * until stash_flush() or a read.
 */
STASH_API int stash_queue_ping(stash_t *h);
STASH_API int stash_queue_get(stash_t *h, const char *key);
STASH_API int stash_queue_mget(stash_t *h, const char *const *keys, size_t n);
STASH_API int stash_queue_set(stash_t *h, const char *key, const char *value,
    const struct stash_set_opts *opts);
STASH_API int stash_queue_set_json(stash_t *h, const char *key,
    const struct json_t *value, const struct stash_set_opts *opts);
STASH_API int stash_queue_del(
    stash_t *h, const char *key, enum stash_durability durability);
STASH_API int stash_queue_stats(stash_t *h);
/*
 * Any request object. When it has no "id" the library adds one (and
 * checks it); an id of the caller's is left alone and not checked.
 */
STASH_API int stash_queue(stash_t *h, const struct json_t *request);
/* Send everything queued. STASH_EIO when the connection broke. */
STASH_API int stash_flush(stash_t *h);
/* How many answers are still to be read. */
STASH_API size_t stash_pending(stash_t *h);

/* The answer of the next request, which must be of the matching kind. */
STASH_API int stash_read_ping(stash_t *h);
STASH_API int stash_read_get(stash_t *h, char **value, uint64_t *version);
STASH_API int stash_read_get_json(
    stash_t *h, struct json_t **value, uint64_t *version);
STASH_API int stash_read_mget(stash_t *h, char **values, size_t n);
STASH_API int stash_read_mget_json(stash_t *h, struct json_t **values);
STASH_API int stash_read_set(stash_t *h, uint64_t *version);
STASH_API int stash_read_del(stash_t *h, int *deleted);
STASH_API int stash_read_stats(stash_t *h, char **stats);
STASH_API int stash_read_stats_json(stash_t *h, struct json_t **stats);
/*
 * The answer of the next request of any kind, as a whole object in *reply
 * (NULL when none arrived); returns its error code like the typed reads.
 */
STASH_API int stash_read_reply(stash_t *h, struct json_t **reply);

#endif /* STASH_H */

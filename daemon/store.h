/*
 * store.h -- the SQLite database: stashd's tables and the application's.
 *
 * One struct store is one SQLite connection, used by one thread: the
 * applier has the only writing connection, each reader thread has a
 * read-only one.
 */
#ifndef STASHD_STORE_H
#define STASHD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct store;
struct wbuf;

/* Result classes of the statements a client sent. */
enum store_status {
	STORE_OK = 0,
	STORE_BAD_REQUEST, /* parameters missing or of the wrong kind */
	STORE_SQL_ERROR,   /* the statement failed; others may go on */
	STORE_FORBIDDEN,   /* the authorizer refused it */
	STORE_TOO_LARGE,   /* a query answer over its limits */
	STORE_FATAL,	   /* the database failed: stop, roll back */
};

struct store_options {
	const char *path;
	int	    readonly;
	int	    synchronous_full; /* else NORMAL */
	unsigned    busy_timeout_ms;
	size_t	    cache_bytes; /* page cache; 0: SQLite's default */
	/* Query limits (readers). */
	size_t	 query_rows_max;
	size_t	 query_bytes_max;
	unsigned query_timeout_ms; /* 0: none */
};

/* The outcome of one client statement. */
struct store_result {
	int64_t changes;
	int64_t last_insert_rowid;
};

/*
 * Open (and on a writing connection create or upgrade) the database.
 * NULL with *cause on failure.
 */
struct store *store_open(const struct store_options *opts, char **cause);
void	      store_close(struct store *s);
/* Stop the statement running on s now (from any thread): it fails. */
void store_interrupt(struct store *s);

/* The last applied journal sequence number. */
int store_applied_seq(struct store *s, uint64_t *seq, char **cause);

/* A read transaction of a reader: one snapshot for several reads. */
int  store_read_begin(struct store *s, char **cause);
void store_read_end(struct store *s);

/* Group transactions of the applier: BEGIN IMMEDIATE ... COMMIT. */
int store_begin(struct store *s, char **cause);
/* Record applied_seq and commit; -1 leaves the transaction open. */
int  store_commit(struct store *s, uint64_t applied_seq, char **cause);
void store_rollback(struct store *s);
int  store_savepoint(struct store *s, char **cause);
int  store_release(struct store *s, char **cause);
int  store_rollback_to(struct store *s, char **cause);

/* 1 when stash_kv holds no key, 0 when it holds some, -1 on error. */
int store_kv_empty(struct store *s, char **cause);
/* Key-value writes. expires_at is Unix milliseconds, 0 for never. */
int store_kv_set(struct store *s, const char *key, size_t klen,
    const char *value, size_t vlen, int raw, uint64_t version,
    int64_t expires_at, char **cause);
int store_kv_del(struct store *s, const char *key, size_t klen, char **cause);
/* Delete up to limit rows expired at now; the count, or -1. */
int store_kv_purge(struct store *s, int64_t now, int limit, char **cause);

/*
 * Read key: 1 and the malloc'd *value when present (and not expired at
 * now), 0 when absent, -1 on error.
 */
int store_kv_get(struct store *s, const char *key, size_t klen, int64_t now,
    char **value, size_t *vlen, int *raw, uint64_t *version,
    int64_t *expires_at, char **cause);

/*
 * Run one client statement sql with params (a JSON array or object, or
 * NULL) on the writing connection. *message gets SQLite's message on
 * failure (malloc'd).
 */
enum store_status store_exec(struct store *s, const char *sql, size_t len,
    json_t *params, struct store_result *res, char **message);

/*
 * Run one read-only client statement and append ,"columns":[...],
 * "rows":[[...],...] to out. On failure nothing is appended and *message
 * says why.
 */
enum store_status store_query(struct store *s, const char *sql, size_t len,
    json_t *params, struct wbuf *out, char **message);

/* Checkpoint the WAL; 0 when every frame is in the database. */
int store_checkpoint(struct store *s, int truncate, char **cause);

/* SQLite's counters of this connection, for stats. */
struct store_stats {
	uint64_t commits;
	uint64_t rollbacks;
	uint64_t busy_retries;
	uint64_t checkpoints;
};
void store_get_stats(struct store *s, struct store_stats *st);

/* Is this SQLite result code a failure of the database itself? */
int store_code_is_fatal(int code);

#endif /* STASHD_STORE_H */

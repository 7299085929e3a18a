/*
 * store.c -- the SQLite database.
 *
 * Schema (user_version 2):
 *
 *	stash_kv(key TEXT PRIMARY KEY, value TEXT, version INTEGER,
 *	    expires_at INTEGER)		-- the key-value store; WITHOUT ROWID;
 *					   value is JSON text, or a BLOB
 *					   of bytes set through RESP;
 *					   expires_at in Unix milliseconds
 *					   (NULL: never)
 *	stash_meta(name TEXT PRIMARY KEY, value INTEGER)
 *					-- 'applied_seq': the last journal
 *					   record whose effect is here
 *
 * applied_seq is written in the same transaction as the writes it covers,
 * which is what makes replay exact: after any crash, the records to apply
 * again are exactly those after it (Guarantee 2).
 *
 * Client SQL runs under an authorizer that refuses ATTACH and DETACH,
 * extension loading, transaction control (the applier owns transactions),
 * any write to a stash_ table, and every PRAGMA but a few read-only ones.
 * Our own statements are prepared with the authorizer off.
 *
 * Every statement is prepared and bound; nothing is built by formatting
 * SQL text with values.
 *
 * Busy: another process holding the write lock makes SQLite call our busy
 * handler, which sleeps with exponential backoff (1 ms doubling to 50 ms)
 * and counts the retries, up to busy_timeout_ms in all.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "log.h"
#include "monotime.h"
#include "proto.h"
#include "store.h"
#include "wbuf.h"
#include "xmalloc.h"

/*
 * Version 2 counts expires_at in milliseconds; version 1 counted it in
 * seconds, and a database of version 1 is brought to 2 when opened.
 */
#define STORE_SCHEMA_VERSION 2

/*
 * Client statements are kept prepared, keyed by their SQL text: workers
 * send the same few statements over and over, and preparing is a large
 * part of running a small INSERT. The least recently used one goes when
 * the cache is full. A kept statement is reset and its bindings cleared
 * after every use; SQLite prepares it again by itself (under the
 * authorizer) when the schema changes.
 */
#define STORE_STMT_CACHE 64

struct stmt_slot {
	char	     *sql;
	size_t	      len;
	sqlite3_stmt *st;
	uint64_t      used;
};

struct store {
	sqlite3		    *db;
	struct store_options opts;
	char		    *path;
	int		     client_sql;	      /* authorizer on */
	struct stmt_slot     stmts[STORE_STMT_CACHE]; /* client SQL */
	uint64_t	     stmt_tick;
	uint64_t	     deadline_ms; /* of the running query; 0: none */
	int		     in_tx;
	struct store_stats   stats;
	/* Prepared statements of our own. */
	sqlite3_stmt *st_begin;
	sqlite3_stmt *st_rbegin; /* BEGIN (deferred), readers */
	sqlite3_stmt *st_commit;
	sqlite3_stmt *st_rollback;
	sqlite3_stmt *st_savepoint;
	sqlite3_stmt *st_release;
	sqlite3_stmt *st_rollback_to;
	sqlite3_stmt *st_kv_set;
	sqlite3_stmt *st_kv_del;
	sqlite3_stmt *st_kv_get;
	sqlite3_stmt *st_kv_purge;
	sqlite3_stmt *st_meta_set;
	sqlite3_stmt *st_meta_get;
};

/* PRAGMAs a client may run: they only read. */
static const char *const store_pragmas_ok[] = {
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "collation_list",
    "function_list",
    "pragma_list",
    "database_list",
    "compile_options",
    "data_version",
    "integrity_check",
    "quick_check",
    "page_count",
    "freelist_count",
};

int
store_code_is_fatal(int code)
{
	switch (code & 0xff) {
	case SQLITE_FULL:
	case SQLITE_IOERR:
	case SQLITE_NOMEM:
	case SQLITE_CORRUPT:
	case SQLITE_CANTOPEN:
	case SQLITE_NOTADB:
	case SQLITE_READONLY:
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_PROTOCOL:
	case SQLITE_INTERNAL:
	case SQLITE_PERM: return 1;
	default: return 0;
	}
}

/* The authorizer of client SQL; see the top of the file. */
static int
store_authorize(void *arg, int action, const char *a1, const char *a2,
    const char *dbname, const char *trigger)
{
	struct store *s = arg;
	size_t	      i;

	if (!s->client_sql)
		return SQLITE_OK;
	switch (action) {
	case SQLITE_ATTACH:
	case SQLITE_DETACH:
	case SQLITE_TRANSACTION:
	case SQLITE_SAVEPOINT: return SQLITE_DENY;
	case SQLITE_FUNCTION:
		if (a2 != NULL && strcasecmp(a2, "load_extension") == 0)
			return SQLITE_DENY;
		return SQLITE_OK;
	case SQLITE_PRAGMA:
		/* These only read; their argument names a table or index. */
		for (i = 0;
		     i < sizeof(store_pragmas_ok) / sizeof(store_pragmas_ok[0]);
		     i++)
			if (a1 != NULL &&
			    strcasecmp(a1, store_pragmas_ok[i]) == 0)
				return SQLITE_OK;
		return SQLITE_DENY;
	case SQLITE_INSERT:
	case SQLITE_UPDATE:
	case SQLITE_DELETE:
	case SQLITE_CREATE_INDEX:
	case SQLITE_CREATE_TABLE:
	case SQLITE_CREATE_TEMP_INDEX:
	case SQLITE_CREATE_TEMP_TABLE:
	case SQLITE_CREATE_TEMP_TRIGGER:
	case SQLITE_CREATE_TRIGGER:
	case SQLITE_DROP_INDEX:
	case SQLITE_DROP_TABLE:
	case SQLITE_DROP_TEMP_INDEX:
	case SQLITE_DROP_TEMP_TABLE:
	case SQLITE_DROP_TEMP_TRIGGER:
	case SQLITE_DROP_TRIGGER:
	case SQLITE_ALTER_TABLE:
	case SQLITE_CREATE_VTABLE:
	case SQLITE_DROP_VTABLE:
		/* a1 is the table for writes, a2 the table for indexes. */
		/*
		 * sqlite_ tables are SQLite's own, guarded by its defensive
		 * mode; its automatic indexes (sqlite_autoindex_*) come with
		 * any UNIQUE or non-integer PRIMARY KEY and must be allowed.
		 */
		if ((a1 != NULL && strncasecmp(a1, "stash_", 6) == 0) ||
		    (a2 != NULL && strncasecmp(a2, "stash_", 6) == 0))
			return SQLITE_DENY;
		return SQLITE_OK;
	default: return SQLITE_OK;
	}
}

/* Sleep with exponential backoff while another process has the lock. */
static int
store_busy(void *arg, int count)
{
	struct store	  *s = arg;
	unsigned	   ms = count < 6 ? 1u << count : 50;
	unsigned long long waited = 0;
	int		   i;
	struct timespec	   ts;

	for (i = 0; i < count; i++)
		waited += i < 6 ? 1u << i : 50;
	if (waited >= s->opts.busy_timeout_ms)
		return 0;
	s->stats.busy_retries++;
	ts.tv_sec = 0;
	ts.tv_nsec = (long)ms * 1000000L;
	nanosleep(&ts, NULL);
	return 1;
}

static void
set_cause(struct store *s, char **cause, const char *what)
{
	if (cause != NULL)
		xasprintf(
		    cause, "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

static int
prepare(struct store *s, const char *sql, sqlite3_stmt **st, char **cause)
{
	if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st,
		NULL) != SQLITE_OK) {
		set_cause(s, cause, sql);
		return -1;
	}
	return 0;
}

/* Run SQL of our own that returns no rows. */
static int
exec_sql(struct store *s, const char *sql, char **cause)
{
	char *err = NULL;

	if (sqlite3_exec(s->db, sql, NULL, NULL, &err) != SQLITE_OK) {
		if (cause != NULL)
			xasprintf(
			    cause, "%s: %s: %s", s->path, sql, err ? err : "?");
		sqlite3_free(err);
		return -1;
	}
	return 0;
}

/* Step a statement of ours that returns no row, then reset it. */
static int
step_done(struct store *s, sqlite3_stmt *st, char **cause)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE) {
		if (cause != NULL)
			xasprintf(cause, "%s: %s: %s", s->path, sqlite3_sql(st),
			    sqlite3_errstr(rc));
		return -1;
	}
	return 0;
}

/* Create the schema or check its version. */
static int
store_schema(struct store *s, char **cause)
{
	sqlite3_stmt *st;
	int	      version;

	if (prepare(s, "PRAGMA user_version", &st, cause) == -1)
		return -1;
	if (sqlite3_step(st) != SQLITE_ROW) {
		set_cause(s, cause, "PRAGMA user_version");
		sqlite3_finalize(st);
		return -1;
	}
	version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version > STORE_SCHEMA_VERSION) {
		xasprintf(cause,
		    "%s: schema version %d is newer than this "
		    "stashd knows (%d)",
		    s->path, version, STORE_SCHEMA_VERSION);
		return -1;
	}
	if (version == STORE_SCHEMA_VERSION || s->opts.readonly)
		return 0;
	if (version == 1) {
		if (exec_sql(s,
			"BEGIN IMMEDIATE;"
			"UPDATE stash_kv SET expires_at = expires_at * 1000 "
			"  WHERE expires_at IS NOT NULL;"
			"PRAGMA user_version = 2;"
			"COMMIT;",
			cause) == -1)
			return -1;
		log_info("%s: schema version 1 brought to 2 (expiries in "
			 "milliseconds)",
		    s->path);
		return 0;
	}
	return exec_sql(s,
	    "BEGIN IMMEDIATE;"
	    "CREATE TABLE IF NOT EXISTS stash_kv ("
	    "  key TEXT PRIMARY KEY NOT NULL,"
	    "  value TEXT NOT NULL,"
	    "  version INTEGER NOT NULL,"
	    "  expires_at INTEGER"
	    ") WITHOUT ROWID;"
	    "CREATE INDEX IF NOT EXISTS stash_kv_expires ON "
	    "stash_kv(expires_at)"
	    "  WHERE expires_at IS NOT NULL;"
	    "CREATE TABLE IF NOT EXISTS stash_meta ("
	    "  name TEXT PRIMARY KEY NOT NULL,"
	    "  value INTEGER NOT NULL"
	    ") WITHOUT ROWID;"
	    "INSERT OR IGNORE INTO stash_meta VALUES ('applied_seq', 0);"
	    "PRAGMA user_version = 2;"
	    "COMMIT;",
	    cause);
}

static int store_progress(void *);

struct store *
store_open(const struct store_options *opts, char **cause)
{
	struct store *s;
	int	      flags;

	s = xcalloc(1, sizeof(*s));
	s->opts = *opts;
	s->path = xstrdup(opts->path);
	s->opts.path = s->path;
	flags = SQLITE_OPEN_NOMUTEX |
		(opts->readonly ? SQLITE_OPEN_READONLY
				: SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
	if (sqlite3_open_v2(s->path, &s->db, flags, NULL) != SQLITE_OK) {
		xasprintf(cause, "%s: %s", s->path,
		    s->db ? sqlite3_errmsg(s->db) : "cannot open");
		goto fail;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_handler(s->db, store_busy, s);
	if (sqlite3_db_config(s->db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0,
		NULL) != SQLITE_OK ||
	    sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL) !=
		SQLITE_OK ||
	    sqlite3_db_config(s->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL) !=
		SQLITE_OK) {
		set_cause(s, cause, "sqlite3_db_config");
		goto fail;
	}
	if (!opts->readonly) {
		if (exec_sql(s, "PRAGMA journal_mode=WAL", cause) == -1 ||
		    exec_sql(s,
			opts->synchronous_full ? "PRAGMA synchronous=FULL"
					       : "PRAGMA synchronous=NORMAL",
			cause) == -1 ||
		    exec_sql(s, "PRAGMA foreign_keys=ON", cause) == -1 ||
		    /*
		     * Checkpoints are the apply thread's, between its
		     * transactions (writer.c), not SQLite's at every commit
		     * past 1000 pages: a large transaction would pay one.
		     */
		    exec_sql(s, "PRAGMA wal_autocheckpoint=0", cause) == -1)
			goto fail;
	}
	if (opts->cache_bytes > 0) {
		char sql[64];

		/* A large transaction's pages stay in memory to its commit. */
		snprintf(sql, sizeof(sql), "PRAGMA cache_size=-%zu",
		    opts->cache_bytes / 1024);
		if (exec_sql(s, sql, cause) == -1)
			goto fail;
	}
	if (store_schema(s, cause) == -1)
		goto fail;
	if (!opts->readonly) {
		if (prepare(s, "BEGIN IMMEDIATE", &s->st_begin, cause) == -1 ||
		    prepare(s, "COMMIT", &s->st_commit, cause) == -1 ||
		    prepare(s, "ROLLBACK", &s->st_rollback, cause) == -1 ||
		    prepare(s, "SAVEPOINT r", &s->st_savepoint, cause) == -1 ||
		    prepare(s, "RELEASE r", &s->st_release, cause) == -1 ||
		    prepare(s, "ROLLBACK TO r", &s->st_rollback_to, cause) ==
			-1 ||
		    prepare(s,
			"INSERT INTO stash_kv(key, value, version, "
			"expires_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT(key) "
			"DO "
			"UPDATE SET value = excluded.value, version = "
			"excluded.version, expires_at = excluded.expires_at",
			&s->st_kv_set, cause) == -1 ||
		    prepare(s, "DELETE FROM stash_kv WHERE key = ?1",
			&s->st_kv_del, cause) == -1 ||
		    prepare(s,
			"DELETE FROM stash_kv WHERE key IN (SELECT key "
			"FROM stash_kv WHERE expires_at IS NOT NULL AND "
			"expires_at <= ?1 LIMIT ?2)",
			&s->st_kv_purge, cause) == -1 ||
		    prepare(s,
			"UPDATE stash_meta SET value = ?1 WHERE name = "
			"'applied_seq'",
			&s->st_meta_set, cause) == -1)
			goto fail;
	}
	if (prepare(s, "BEGIN", &s->st_rbegin, cause) == -1 ||
	    (s->st_commit == NULL &&
		prepare(s, "COMMIT", &s->st_commit, cause) == -1) ||
	    prepare(s,
		"SELECT value, version, expires_at FROM stash_kv "
		"WHERE key = ?1",
		&s->st_kv_get, cause) == -1 ||
	    prepare(s,
		"SELECT value FROM stash_meta WHERE name = "
		"'applied_seq'",
		&s->st_meta_get, cause) == -1)
		goto fail;
	sqlite3_set_authorizer(s->db, store_authorize, s);
	if (opts->query_timeout_ms > 0)
		sqlite3_progress_handler(s->db, 10000, store_progress, s);
	return s;

fail:
	store_close(s);
	return NULL;
}

void
store_close(struct store *s)
{
	sqlite3_stmt **sts[] = {&s->st_begin, &s->st_rbegin, &s->st_commit,
	    &s->st_rollback, &s->st_savepoint, &s->st_release,
	    &s->st_rollback_to, &s->st_kv_set, &s->st_kv_del, &s->st_kv_get,
	    &s->st_kv_purge, &s->st_meta_set, &s->st_meta_get};
	size_t	       i;

	if (s == NULL)
		return;
	for (i = 0; i < sizeof(sts) / sizeof(sts[0]); i++)
		sqlite3_finalize(*sts[i]);
	for (i = 0; i < STORE_STMT_CACHE; i++) {
		sqlite3_finalize(s->stmts[i].st);
		free(s->stmts[i].sql);
	}
	if (s->db != NULL && sqlite3_close(s->db) != SQLITE_OK)
		log_warnx("%s: close: %s", s->path, sqlite3_errmsg(s->db));
	free(s->path);
	free(s);
}

int
store_applied_seq(struct store *s, uint64_t *seq, char **cause)
{
	int rc = sqlite3_step(s->st_meta_get);

	if (rc == SQLITE_ROW)
		*seq = (uint64_t)sqlite3_column_int64(s->st_meta_get, 0);
	sqlite3_reset(s->st_meta_get);
	if (rc != SQLITE_ROW) {
		set_cause(s, cause, "reading applied_seq");
		return -1;
	}
	return 0;
}

int
store_kv_empty(struct store *s, char **cause)
{
	sqlite3_stmt *st;
	int	      rc;

	if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM stash_kv LIMIT 1", -1, &st,
		NULL) != SQLITE_OK) {
		set_cause(s, cause, "counting keys");
		return -1;
	}
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		set_cause(s, cause, "counting keys");
		return -1;
	}
	return rc == SQLITE_DONE;
}

int
store_begin(struct store *s, char **cause)
{
	if (step_done(s, s->st_begin, cause) == -1)
		return -1;
	s->in_tx = 1;
	return 0;
}

int
store_read_begin(struct store *s, char **cause)
{
	return step_done(s, s->st_rbegin, cause);
}

void
store_read_end(struct store *s)
{
	char *cause = NULL;

	if (sqlite3_get_autocommit(s->db) == 0 &&
	    step_done(s, s->st_commit, &cause) == -1) {
		log_warnx("%s", cause);
		free(cause);
	}
}

int
store_commit(struct store *s, uint64_t applied_seq, char **cause)
{
	sqlite3_bind_int64(s->st_meta_set, 1, (sqlite3_int64)applied_seq);
	if (step_done(s, s->st_meta_set, cause) == -1 ||
	    step_done(s, s->st_commit, cause) == -1)
		return -1;
	s->in_tx = 0;
	s->stats.commits++;
	return 0;
}

void
store_rollback(struct store *s)
{
	char *cause = NULL;

	if (sqlite3_get_autocommit(s->db) == 0 &&
	    step_done(s, s->st_rollback, &cause) == -1) {
		log_warnx("%s", cause);
		free(cause);
	}
	s->in_tx = 0;
	s->stats.rollbacks++;
}

int
store_savepoint(struct store *s, char **cause)
{
	return step_done(s, s->st_savepoint, cause);
}

int
store_release(struct store *s, char **cause)
{
	return step_done(s, s->st_release, cause);
}

int
store_rollback_to(struct store *s, char **cause)
{
	if (step_done(s, s->st_rollback_to, cause) == -1)
		return -1;
	return store_release(s, cause);
}

int
store_kv_set(struct store *s, const char *key, size_t klen, const char *value,
    size_t vlen, int raw, uint64_t version, int64_t expires_at, char **cause)
{
	sqlite3_stmt *st = s->st_kv_set;

	if (sqlite3_bind_text(st, 1, key, (int)klen, SQLITE_STATIC) !=
		SQLITE_OK ||
	    (raw ? sqlite3_bind_blob(
		       st, 2, vlen > 0 ? value : "", (int)vlen, SQLITE_STATIC)
		 : sqlite3_bind_text(st, 2, value, (int)vlen, SQLITE_STATIC)) !=
		SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, (sqlite3_int64)version) != SQLITE_OK ||
	    (expires_at > 0 ? sqlite3_bind_int64(st, 4, expires_at)
			    : sqlite3_bind_null(st, 4)) != SQLITE_OK) {
		set_cause(s, cause, "bind");
		sqlite3_reset(st);
		return -1;
	}
	return step_done(s, st, cause);
}

int
store_kv_del(struct store *s, const char *key, size_t klen, char **cause)
{
	if (sqlite3_bind_text(s->st_kv_del, 1, key, (int)klen, SQLITE_STATIC) !=
	    SQLITE_OK) {
		set_cause(s, cause, "bind");
		return -1;
	}
	return step_done(s, s->st_kv_del, cause);
}

int
store_kv_purge(struct store *s, int64_t now, int limit, char **cause)
{
	if (sqlite3_bind_int64(s->st_kv_purge, 1, now) != SQLITE_OK ||
	    sqlite3_bind_int(s->st_kv_purge, 2, limit) != SQLITE_OK) {
		set_cause(s, cause, "bind");
		return -1;
	}
	if (step_done(s, s->st_kv_purge, cause) == -1)
		return -1;
	return sqlite3_changes(s->db);
}

int
store_kv_get(struct store *s, const char *key, size_t klen, int64_t now,
    char **value, size_t *vlen, int *raw, uint64_t *version,
    int64_t *expires_at, char **cause)
{
	sqlite3_stmt	    *st = s->st_kv_get;
	const unsigned char *v;
	int		     rc, n, found = 0;

	if (sqlite3_bind_text(st, 1, key, (int)klen, SQLITE_STATIC) !=
	    SQLITE_OK) {
		set_cause(s, cause, "bind");
		return -1;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*expires_at = sqlite3_column_type(st, 2) == SQLITE_NULL
				  ? 0
				  : sqlite3_column_int64(st, 2);
		if (*expires_at == 0 || *expires_at > now) {
			*raw = sqlite3_column_type(st, 0) == SQLITE_BLOB;
			v = *raw ? sqlite3_column_blob(st, 0)
				 : sqlite3_column_text(st, 0);
			n = sqlite3_column_bytes(st, 0);
			*value = xmalloc((size_t)n + 1);
			/* An empty BLOB comes back as NULL. */
			if (n > 0)
				memcpy(*value, v, (size_t)n);
			(*value)[n] = '\0';
			*vlen = (size_t)n;
			*version = (uint64_t)sqlite3_column_int64(st, 1);
			found = 1;
		}
	} else if (rc != SQLITE_DONE) {
		set_cause(s, cause, "reading a key");
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		return -1;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return found;
}

/* Bind one JSON value to parameter i. */
static int
bind_json(sqlite3_stmt *st, int i, json_t *v)
{
	char *text;
	int   rc;

	switch (json_typeof(v)) {
	case JSON_STRING:
		return sqlite3_bind_text(st, i, json_string_value(v),
		    (int)json_string_length(v), SQLITE_TRANSIENT);
	case JSON_INTEGER:
		return sqlite3_bind_int64(st, i, json_integer_value(v));
	case JSON_REAL: return sqlite3_bind_double(st, i, json_real_value(v));
	case JSON_TRUE: return sqlite3_bind_int(st, i, 1);
	case JSON_FALSE: return sqlite3_bind_int(st, i, 0);
	case JSON_NULL: return sqlite3_bind_null(st, i);
	default:
		if ((text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY)) ==
		    NULL)
			return SQLITE_NOMEM;
		rc = sqlite3_bind_text(st, i, text, -1, SQLITE_TRANSIENT);
		free(text);
		return rc;
	}
}

/*
 * Bind params (array: by position; object: by name without its prefix)
 * to every parameter of st. STORE_BAD_REQUEST names what is wrong.
 */
static enum store_status
bind_params(sqlite3_stmt *st, json_t *params, char **message)
{
	int	    n = sqlite3_bind_parameter_count(st), i, rc;
	const char *name;
	json_t	   *v;

	if (params == NULL || json_is_array(params)) {
		size_t given = params ? json_array_size(params) : 0;

		for (i = 1; i <= n; i++) {
			name = sqlite3_bind_parameter_name(st, i);
			if (name != NULL && name[0] != '?') {
				xasprintf(message,
				    "parameter %s is named; "
				    "params must then be an object",
				    name);
				return STORE_BAD_REQUEST;
			}
		}
		if ((size_t)n != given) {
			xasprintf(message,
			    "the statement has %d parameters "
			    "and %zu were given",
			    n, given);
			return STORE_BAD_REQUEST;
		}
		for (i = 1; i <= n; i++) {
			rc = bind_json(
			    st, i, json_array_get(params, (size_t)i - 1));
			if (rc != SQLITE_OK) {
				xasprintf(message,
				    "cannot bind parameter %d: "
				    "%s",
				    i, sqlite3_errstr(rc));
				return STORE_FATAL;
			}
		}
		return STORE_OK;
	}
	for (i = 1; i <= n; i++) {
		name = sqlite3_bind_parameter_name(st, i);
		if (name == NULL || name[0] == '?') {
			xasprintf(message,
			    "parameter %d is positional; "
			    "params must then be an array",
			    i);
			return STORE_BAD_REQUEST;
		}
		if ((v = json_object_get(params, name + 1)) == NULL) {
			xasprintf(message, "parameter %s is not bound", name);
			return STORE_BAD_REQUEST;
		}
		if ((rc = bind_json(st, i, v)) != SQLITE_OK) {
			xasprintf(message, "cannot bind parameter %s: %s", name,
			    sqlite3_errstr(rc));
			return STORE_FATAL;
		}
	}
	if (json_object_size(params) != (size_t)n) {
		const char *key;

		json_object_foreach(params, key, v)
		{
			char buf[260];
			int  found = 0;

			for (i = 1; i <= n && !found; i++) {
				name = sqlite3_bind_parameter_name(st, i);
				snprintf(buf, sizeof(buf), "%s",
				    name ? name + 1 : "");
				found = strcmp(buf, key) == 0;
			}
			if (!found) {
				xasprintf(message,
				    "params names \"%.64s\", "
				    "which the statement does not have",
				    key);
				return STORE_BAD_REQUEST;
			}
		}
	}
	return STORE_OK;
}

/* Put a kept client statement back for its next use. */
static void
stmt_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

static enum store_status prepare_client(
    struct store *, const char *, size_t, sqlite3_stmt **, char **);

/* The prepared statement of sql: a kept one, or a new one kept now. */
static enum store_status
client_stmt(struct store *s, const char *sql, size_t len, sqlite3_stmt **st,
    char **message)
{
	struct stmt_slot *slot, *lru = &s->stmts[0];
	enum store_status ret;
	size_t		  i;

	for (i = 0; i < STORE_STMT_CACHE; i++) {
		slot = &s->stmts[i];
		if (slot->st != NULL && slot->len == len &&
		    memcmp(slot->sql, sql, len) == 0) {
			slot->used = ++s->stmt_tick;
			*st = slot->st;
			return STORE_OK;
		}
		if (slot->st == NULL || slot->used < lru->used)
			lru = slot;
	}
	if ((ret = prepare_client(s, sql, len, st, message)) != STORE_OK)
		return ret;
	if (lru->st != NULL) {
		sqlite3_finalize(lru->st);
		free(lru->sql);
	}
	lru->sql = xmalloc(len + 1);
	memcpy(lru->sql, sql, len);
	lru->sql[len] = '\0';
	lru->len = len;
	lru->st = *st;
	lru->used = ++s->stmt_tick;
	return STORE_OK;
}

/* The class of a failed step: refusals surface here too. */
static enum store_status
step_status(int rc, const char *message)
{
	if ((rc & 0xff) == SQLITE_AUTH ||
	    strncmp(message, "not authorized", 14) == 0)
		return STORE_FORBIDDEN;
	return store_code_is_fatal(rc) ? STORE_FATAL : STORE_SQL_ERROR;
}

/*
 * Prepare one client statement with the authorizer on. Exactly one
 * statement: trailing text other than blanks and comments is refused.
 */
static enum store_status
prepare_client(struct store *s, const char *sql, size_t len, sqlite3_stmt **st,
    char **message)
{
	const char   *tail = NULL;
	sqlite3_stmt *t2 = NULL;
	int	      rc;

	if (len > INT32_MAX) {
		xasprintf(message, "SQL text too long");
		return STORE_TOO_LARGE;
	}
	rc = sqlite3_prepare_v3(
	    s->db, sql, (int)len, SQLITE_PREPARE_PERSISTENT, st, &tail);
	if (rc == SQLITE_OK && *st != NULL && tail != NULL &&
	    tail < sql + len) {
		/* Anything left must prepare to nothing. */
		rc = sqlite3_prepare_v2(
		    s->db, tail, (int)(sql + len - tail), &t2, NULL);
		if (rc == SQLITE_OK && t2 != NULL) {
			sqlite3_finalize(t2);
			sqlite3_finalize(*st);
			*st = NULL;
			xasprintf(message, "one statement per \"sql\"; use "
					   "\"tx\" for several");
			return STORE_BAD_REQUEST;
		}
	}
	if (rc != SQLITE_OK) {
		const char *m = sqlite3_errmsg(s->db);
		int	    refused = (rc & 0xff) == SQLITE_AUTH ||
			      strncmp(m, "not authorized", 14) == 0;

		if (refused)
			xasprintf(message,
			    "%s: stashd refuses ATTACH and "
			    "DETACH, extension loading, transaction control, "
			    "writes to stash_ tables and PRAGMAs that change "
			    "anything",
			    m);
		else
			xasprintf(message, "%s", m);
		if (*st != NULL) {
			sqlite3_finalize(*st);
			*st = NULL;
		}
		if (refused)
			return STORE_FORBIDDEN;
		return store_code_is_fatal(rc) ? STORE_FATAL : STORE_SQL_ERROR;
	}
	if (*st == NULL) {
		xasprintf(message, "no statement in \"sql\"");
		return STORE_BAD_REQUEST;
	}
	return STORE_OK;
}

/*
 * The authorizer stays on while a client statement runs, not only while it
 * is prepared: SQLite prepares it again inside sqlite3_step() when the
 * schema changed meanwhile.
 */
static enum store_status store_exec1(struct store *, const char *, size_t,
    json_t *, struct store_result *, char **);
static enum store_status store_query1(
    struct store *, const char *, size_t, json_t *, struct wbuf *, char **);

enum store_status
store_exec(struct store *s, const char *sql, size_t len, json_t *params,
    struct store_result *res, char **message)
{
	enum store_status ret;

	s->client_sql = 1;
	ret = store_exec1(s, sql, len, params, res, message);
	s->client_sql = 0;
	return ret;
}

enum store_status
store_query(struct store *s, const char *sql, size_t len, json_t *params,
    struct wbuf *out, char **message)
{
	enum store_status ret;

	s->client_sql = 1;
	ret = store_query1(s, sql, len, params, out, message);
	s->client_sql = 0;
	return ret;
}

static enum store_status
store_exec1(struct store *s, const char *sql, size_t len, json_t *params,
    struct store_result *res, char **message)
{
	enum store_status ret;
	sqlite3_stmt	 *st = NULL;
	int		  rc;

	*message = NULL;
	if ((ret = client_stmt(s, sql, len, &st, message)) != STORE_OK)
		return ret;
	if ((ret = bind_params(st, params, message)) != STORE_OK) {
		stmt_done(st);
		return ret;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		; /* RETURNING rows and the like are not kept */
	if (rc != SQLITE_DONE) {
		xasprintf(message, "%s", sqlite3_errmsg(s->db));
		stmt_done(st);
		return step_status(rc, *message);
	}
	res->changes = sqlite3_changes64(s->db);
	res->last_insert_rowid = sqlite3_last_insert_rowid(s->db);
	stmt_done(st);
	return STORE_OK;
}

/* TEXT as a JSON string; invalid UTF-8 bytes become U+FFFD. */
static void
add_text(struct wbuf *w, const char *p, size_t n)
{
	size_t	    i;
	struct wbuf tmp;

	if (proto_utf8_valid(p, n)) {
		wbuf_add_jstr(w, p, n);
		return;
	}
	wbuf_init(&tmp);
	for (i = 0; i < n; i++) {
		if ((unsigned char)p[i] < 0x80 || proto_utf8_valid(p + i, 1))
			wbuf_addc(&tmp, p[i]);
		else {
			size_t l;

			for (l = 4; l >= 2; l--)
				if (i + l <= n && proto_utf8_valid(p + i, l))
					break;
			if (l >= 2) {
				wbuf_add(&tmp, p + i, l);
				i += l - 1;
			} else
				wbuf_add(&tmp, "\xef\xbf\xbd", 3);
		}
	}
	wbuf_add_jstr(w, tmp.buf, tmp.len);
	wbuf_free(&tmp);
}

/* SQLite's progress handler: a query past its deadline is interrupted. */
static int
store_progress(void *arg)
{
	struct store *s = arg;

	return s->deadline_ms != 0 && monotime_ms() >= s->deadline_ms;
}

static enum store_status store_query2(
    struct store *, const char *, size_t, json_t *, struct wbuf *, char **);

/* A query, within query_timeout_ms. */
static enum store_status
store_query1(struct store *s, const char *sql, size_t len, json_t *params,
    struct wbuf *out, char **message)
{
	enum store_status ret;

	if (s->opts.query_timeout_ms > 0)
		s->deadline_ms = monotime_ms() + s->opts.query_timeout_ms;
	ret = store_query2(s, sql, len, params, out, message);
	if (s->deadline_ms != 0 && monotime_ms() >= s->deadline_ms &&
	    ret != STORE_OK) {
		free(*message);
		xasprintf(message, "the query ran longer than %u ms",
		    s->opts.query_timeout_ms);
		ret = STORE_TOO_LARGE;
	}
	s->deadline_ms = 0;
	return ret;
}

static enum store_status
store_query2(struct store *s, const char *sql, size_t len, json_t *params,
    struct wbuf *out, char **message)
{
	enum store_status ret;
	sqlite3_stmt	 *st = NULL;
	size_t		  start = out->len, rows = 0;
	int		  rc, i, ncol;

	*message = NULL;
	if ((ret = client_stmt(s, sql, len, &st, message)) != STORE_OK)
		return ret;
	if (!sqlite3_stmt_readonly(st)) {
		stmt_done(st);
		xasprintf(message, "query runs read-only statements; use "
				   "exec to write");
		return STORE_BAD_REQUEST;
	}
	if ((ret = bind_params(st, params, message)) != STORE_OK) {
		stmt_done(st);
		return ret;
	}
	ncol = sqlite3_column_count(st);
	wbuf_adds(out, ",\"columns\":[");
	for (i = 0; i < ncol; i++) {
		const char *name = sqlite3_column_name(st, i);

		if (i > 0)
			wbuf_addc(out, ',');
		if (name == NULL)
			name = "";
		add_text(out, name, strlen(name));
	}
	wbuf_adds(out, "],\"rows\":[");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (rows >= s->opts.query_rows_max ||
		    out->len - start > s->opts.query_bytes_max) {
			out->len = start;
			stmt_done(st);
			xasprintf(message,
			    "the answer has more than %zu rows "
			    "or %zu bytes",
			    s->opts.query_rows_max, s->opts.query_bytes_max);
			return STORE_TOO_LARGE;
		}
		wbuf_adds(out, rows > 0 ? ",[" : "[");
		for (i = 0; i < ncol; i++) {
			if (i > 0)
				wbuf_addc(out, ',');
			switch (sqlite3_column_type(st, i)) {
			case SQLITE_INTEGER:
				wbuf_add_i64(out, sqlite3_column_int64(st, i));
				break;
			case SQLITE_FLOAT:
				wbuf_add_double(
				    out, sqlite3_column_double(st, i));
				break;
			case SQLITE_TEXT:
				add_text(out,
				    (const char *)sqlite3_column_text(st, i),
				    (size_t)sqlite3_column_bytes(st, i));
				break;
			case SQLITE_BLOB:
				wbuf_add_base64(out, sqlite3_column_blob(st, i),
				    (size_t)sqlite3_column_bytes(st, i));
				break;
			default: wbuf_adds(out, "null"); break;
			}
		}
		wbuf_addc(out, ']');
		rows++;
	}
	if (rc != SQLITE_DONE) {
		out->len = start;
		xasprintf(message, "%s", sqlite3_errmsg(s->db));
		stmt_done(st);
		return step_status(rc, *message);
	}
	if (out->len - start > s->opts.query_bytes_max) {
		out->len = start;
		stmt_done(st);
		xasprintf(message, "the answer is over %zu bytes",
		    s->opts.query_bytes_max);
		return STORE_TOO_LARGE;
	}
	wbuf_addc(out, ']');
	stmt_done(st);
	return STORE_OK;
}

int
store_checkpoint(struct store *s, int truncate, char **cause)
{
	int log = 0, ckpt = 0, rc;

	rc = sqlite3_wal_checkpoint_v2(s->db, NULL,
	    truncate ? SQLITE_CHECKPOINT_TRUNCATE : SQLITE_CHECKPOINT_PASSIVE,
	    &log, &ckpt);
	if (rc != SQLITE_OK) {
		set_cause(s, cause, "checkpoint");
		return -1;
	}
	s->stats.checkpoints++;
	return log == ckpt || log == -1 ? 0 : 1;
}

void
store_get_stats(struct store *s, struct store_stats *st)
{
	*st = s->stats;
}

void
store_interrupt(struct store *s)
{
	sqlite3_interrupt(s->db);
}

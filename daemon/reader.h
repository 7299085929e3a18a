/*
 * reader.h -- reader threads: cache-miss lookups and queries, on read-only
 * SQLite connections (WAL lets them read while the applier writes), so a
 * slow query never delays the event loop or another client's get.
 */
#ifndef STASHD_READER_H
#define STASHD_READER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "store.h"
#include "wbuf.h"

struct mailbox;
struct reader;

enum rjob_type {
	RJOB_LOOKUP,
	RJOB_QUERY,
};

struct rkey {
	char	*key;
	size_t	 klen;
	int	 found;
	char	*value; /* malloc'd when found */
	size_t	 vlen;
	int	 raw; /* the value is bytes (RESP), not JSON */
	uint64_t version;
	int64_t	 expires_at;
};

struct rjob {
	TAILQ_ENTRY(rjob) entry;
	enum rjob_type type;
	/* RJOB_LOOKUP */
	struct rkey *keys;
	size_t	     nkeys;
	/* RJOB_QUERY */
	char  *sql;
	size_t sql_len;
	char  *params; /* JSON text or NULL */
	size_t params_len;
	/* Results. */
	uint64_t	  snapshot_seq; /* applied_seq it read at */
	enum store_status status;
	char		 *message;
	struct wbuf	  out; /* the query's columns/rows */
	/* Run on the loop thread when done. */
	void (*done)(struct rjob *job);
	void *arg;
};

struct reader *reader_start(unsigned nthreads, const struct store_options *opts,
    struct mailbox *mb, char **cause);
void	       reader_submit(struct reader *r, struct rjob *job);
/* Finish queued jobs, stop the threads. */
void reader_stop(struct reader *r);
/*
 * Jobs waiting or running, without taking the lock: cheap enough for the
 * loop to ask at every turn.
 */
size_t reader_backlog(struct reader *r);
void   rjob_free(struct rjob *job);

#endif /* STASHD_READER_H */

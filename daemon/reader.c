/*
 * reader.c -- a small pool of reader threads.
 *
 * Each thread owns a read-only connection. A job runs inside one read
 * transaction that also reads applied_seq, so the loop knows exactly which
 * writes the answer includes: a lookup whose snapshot is older than writes
 * the loop has since seen applied is done again (see cmd.c), which is how
 * a cache miss never returns a value older than an acknowledged write.
 */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "crashpoint.h"
#include "log.h"
#include "mailbox.h"
#include "monotime.h"
#include "reader.h"
#include "xmalloc.h"

struct reader {
	pthread_mutex_t lock;
	pthread_cond_t	cond;
	TAILQ_HEAD(, rjob) jobs;
	atomic_size_t	backlog; /* changed under the lock, read without */
	int		stopping;
	unsigned	nthreads;
	unsigned	live; /* threads not yet ended */
	pthread_t      *threads;
	struct store  **stores;
	struct mailbox *mb;
};

struct reader_arg {
	struct reader *r;
	struct store  *store;
	unsigned       n; /* 1, 2, ...: in the thread's name */
};

static void
rjob_done(void *arg)
{
	struct rjob *job = arg;

	job->done(job);
}

/* Run one job on st. */
static void
reader_run(struct store *st, struct rjob *job)
{
	json_error_t jerr;
	json_t	    *params = NULL;
	char	    *cause = NULL;
	size_t	     i;
	int	     rc;

	job->status = STORE_OK;
	if (store_read_begin(st, &cause) == -1 ||
	    store_applied_seq(st, &job->snapshot_seq, &cause) == -1)
		goto fatal;
	switch (job->type) {
	case RJOB_LOOKUP:
		if (FAULT_POINT("reader-lookup")) {
			cause = xstrdup("fault point reader-lookup");
			goto fatal;
		}
		for (i = 0; i < job->nkeys; i++) {
			struct rkey *k = &job->keys[i];

			rc = store_kv_get(st, k->key, k->klen, wall_ms(),
			    &k->value, &k->vlen, &k->raw, &k->version,
			    &k->expires_at, &cause);
			if (rc == -1)
				goto fatal;
			k->found = rc;
		}
		break;
	case RJOB_QUERY:
		if (job->params != NULL &&
		    (params = json_loadb(
			 job->params, job->params_len, 0, &jerr)) == NULL) {
			job->status = STORE_BAD_REQUEST;
			xasprintf(&job->message, "params: %s", jerr.text);
			break;
		}
		job->status = store_query(st, job->sql, job->sql_len, params,
		    &job->out, &job->message);
		json_decref(params);
		break;
	}
	store_read_end(st);
	return;

fatal:
	store_read_end(st);
	job->status = STORE_FATAL;
	job->message = cause;
	log_warnx("reader: %s", cause);
}

static void *
reader_main(void *arg)
{
	struct reader_arg *ra = arg;
	struct reader	  *r = ra->r;
	struct rjob	  *job;
	char		   name[16];
	int		   stopping;

	snprintf(name, sizeof(name), "reader-%u", ra->n);
	log_thread_name(name);

	pthread_mutex_lock(&r->lock);
	for (;;) {
		while (TAILQ_EMPTY(&r->jobs) && !r->stopping)
			pthread_cond_wait(&r->cond, &r->lock);
		if ((job = TAILQ_FIRST(&r->jobs)) == NULL)
			break;
		TAILQ_REMOVE(&r->jobs, job, entry);
		stopping = r->stopping;
		pthread_mutex_unlock(&r->lock);
		if (stopping) {
			/* Nobody waits for it any more: do not run it. */
			job->status = STORE_FATAL;
			job->message = xstrdup("shutting down");
		} else
			reader_run(ra->store, job);
		mailbox_post(r->mb, rjob_done, job);
		pthread_mutex_lock(&r->lock);
		atomic_fetch_sub_explicit(&r->backlog, 1, memory_order_relaxed);
	}
	r->live--;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	free(ra);
	return NULL;
}

struct reader *
reader_start(unsigned nthreads, const struct store_options *opts,
    struct mailbox *mb, char **cause)
{
	struct store_options ro = *opts;
	struct reader	    *r = xcalloc(1, sizeof(*r));
	struct reader_arg   *ra;
	unsigned	     i;

	ro.readonly = 1;
	ro.cache_bytes = 0; /* SQLite's default: the OS caches the file */
	r->mb = mb;
	r->nthreads = nthreads;
	r->live = nthreads;
	TAILQ_INIT(&r->jobs);
	if (pthread_mutex_init(&r->lock, NULL) != 0 ||
	    pthread_cond_init(&r->cond, NULL) != 0)
		fatalx("reader: cannot create locks");
	r->threads = xcalloc(nthreads, sizeof(*r->threads));
	r->stores = xcalloc(nthreads, sizeof(*r->stores));
	for (i = 0; i < nthreads; i++) {
		if ((r->stores[i] = store_open(&ro, cause)) == NULL) {
			while (i-- > 0)
				store_close(r->stores[i]);
			free(r->stores);
			free(r->threads);
			free(r);
			return NULL;
		}
	}
	for (i = 0; i < nthreads; i++) {
		ra = xmalloc(sizeof(*ra));
		ra->r = r;
		ra->store = r->stores[i];
		ra->n = (unsigned)i + 1;
		if (pthread_create(&r->threads[i], NULL, reader_main, ra) != 0)
			fatalx("reader: cannot start a thread");
	}
	return r;
}

void
reader_submit(struct reader *r, struct rjob *job)
{
	pthread_mutex_lock(&r->lock);
	TAILQ_INSERT_TAIL(&r->jobs, job, entry);
	atomic_fetch_add_explicit(&r->backlog, 1, memory_order_relaxed);
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

size_t
reader_backlog(struct reader *r)
{
	return atomic_load_explicit(&r->backlog, memory_order_relaxed);
}

void
reader_stop(struct reader *r)
{
	unsigned i;

	if (r == NULL)
		return;
	pthread_mutex_lock(&r->lock);
	r->stopping = 1;
	pthread_cond_broadcast(&r->cond);
	/*
	 * A query that never ends (a client may send one) must not hold the
	 * exit: interrupt what runs, again until every thread has ended (a
	 * statement that starts just after an interrupt is not stopped).
	 */
	while (r->live > 0) {
		struct timespec ts;

		pthread_mutex_unlock(&r->lock);
		for (i = 0; i < r->nthreads; i++)
			store_interrupt(r->stores[i]);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&r->lock);
		if (r->live > 0)
			pthread_cond_timedwait(&r->cond, &r->lock, &ts);
	}
	pthread_mutex_unlock(&r->lock);
	for (i = 0; i < r->nthreads; i++)
		if (pthread_join(r->threads[i], NULL) != 0)
			fatalx("reader: cannot join a thread");
	for (i = 0; i < r->nthreads; i++)
		store_close(r->stores[i]);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	free(r->threads);
	free(r->stores);
	free(r);
}

void
rjob_free(struct rjob *job)
{
	size_t i;

	if (job == NULL)
		return;
	for (i = 0; i < job->nkeys; i++) {
		free(job->keys[i].key);
		free(job->keys[i].value);
	}
	free(job->keys);
	free(job->sql);
	free(job->params);
	free(job->message);
	wbuf_free(&job->out);
	free(job);
}

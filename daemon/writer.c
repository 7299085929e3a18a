/*
 * writer.c -- group commit and the apply thread.
 *
 * Two threads, so that the fsync of the next group overlaps the SQLite
 * transaction of this one:
 *
 *   journal thread: waits for queued writes; takes everything queued (up to
 *     group_max_ops / group_max_bytes) as one group -- there is no fixed
 *     delay unless group_delay_us asks for one, so groups grow exactly as
 *     fast as the disk is slow; writes the group's records with one write,
 *     fdatasyncs once, reports the group journaled, and passes it on.
 *     Async writes alone do not wake it each time: when every queued write
 *     is async, it lets them gather for up to WRITER_ASYNC_GATHER_US
 *     before taking them (gather_async, writer_unstage).
 *     A group made only of async writes is written but fsync'd only once
 *     fsync_interval_ms has passed since the last fsync (the timed wait
 *     takes care of it when no group comes); its records carry
 *     JOURNAL_F_UNSYNCED, so that recovery knows that a later one may
 *     survive a power cut that loses it. Such a group is not reported
 *     journaled: its writes were answered when the loop took them.
 *
 *   apply thread: takes every journaled group waiting, applies them in one
 *     transaction (each client statement in its own SAVEPOINT, so one bad
 *     statement fails alone), stores the last seq as applied_seq in that
 *     same transaction, commits, reports the groups applied, and deletes
 *     journal segments that are wholly applied and durable in SQLite.
 *     Writes the journal already made durable are not in a hurry: the
 *     thread lets them gather for up to apply_delay_ms, so that one
 *     transaction covers many writes to the same B-tree pages (a write
 *     spread over a 100k-key table dirties a 4 KiB page per key; in one
 *     large transaction most of those pages are shared). It applies at
 *     once when someone waits for the result: a commit write, a sync, a
 *     query after its connection's writes (writer_kick), a full queue, or
 *     the stop.
 *
 * Failures:
 *   - a journal write or fdatasync failure is fatal to the write path: the
 *     group is never acknowledged, the loop is told, and it stops taking
 *     writes and exits for a restart (never retry-and-trust an fsync);
 *   - SQLITE_FULL, an I/O error or a lock held too long rolls the whole
 *     transaction back; the records stay in the journal; the loop is told
 *     to answer unavailable to new writes; the apply is retried with
 *     backoff until it succeeds.
 */
#include "config.h"

#include <errno.h>
#include <malloc.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include <event2/event.h>
#include <jansson.h>

#include "crashpoint.h"
#include "irqcpu.h"
#include "journal.h"
#include "kvsort.h"
#include "log.h"
#include "mailbox.h"
#include "monotime.h"
#include "proto.h"
#include "qpool.h"
#include "store.h"
#include "wbuf.h"
#include "writer.h"
#include "xmalloc.h"

TAILQ_HEAD(wgroup_list, wgroup);

struct writer {
	struct writer_options	opts;
	struct writer_callbacks cb;
	struct journal	       *journal;
	struct store	       *store;
	struct mailbox	       *mb;

	pthread_mutex_t	    lock;
	pthread_cond_t	    jcond; /* work for the journal thread */
	pthread_cond_t	    acond; /* work for the apply thread (monotonic) */
	struct wreq_list    incoming;
	struct wreq_list    staged;   /* the loop's, not yet in incoming */
	size_t		    staged_n; /* and their count and bytes */
	size_t		    staged_bytes;
	int		    staged_sync;   /* a staged write is not async */
	int		    incoming_sync; /* one in incoming is not async */
	int		    gathering;	  /* journal thread lets async gather */
	struct event	   *stage_ev;	  /* moves staged to incoming */
	struct wgroup_list  journaled;	  /* waiting to be applied */
	int		    journal_idle; /* journal thread waits for work */
	size_t		    last_group_n; /* writes in the latest group */
	int		    stopping;
	int		    journal_done; /* journal thread has exited */
	int		    broken;	  /* the journal failed */
	uint64_t	    kick_seq;	  /* apply up to here without delay */
	size_t		    urgent; /* journaled groups with commit writes */
	struct writer_stats stats;

	pthread_t jthread;
	pthread_t athread;
};

/*
 * A message for the loop thread. It carries its own copy of the callbacks:
 * messages may be drained after writer_stop() has freed the writer.
 */
struct wmsg {
	struct writer_callbacks cb;
	struct wgroup	       *g;
	int			on;
	char		       *why;
};

/* The apply thread trims the heap once this much was applied since. */
#define WRITER_TRIM_AFTER (16 * 1024 * 1024)
/*
 * How long the journal thread lets async writes gather before it takes
 * them, when no other write waits. They were answered when the loop took
 * them, and the journal is fsync'd for them only every fsync_interval:
 * waking the journal thread for each turn of the loop (26,000 times a
 * second at async SET -P 1) bought nothing and cost both threads CPU.
 */
#define WRITER_ASYNC_GATHER_US 1000
/* Writes go to a busy journal thread early while groups are this small. */
#define WRITER_EARLY_GROUP_MAX 64
/* Coalescing entries kept from one batch to the next (2 MiB). */
#define WRITER_RUN_KEEP 65536

/*
 * Most writes applied in one transaction: when SQLite falls behind, its
 * transactions grow to catch up (a page changed by many writes is written
 * once), up to this.
 */
static size_t
apply_batch_max(const struct writer *wr)
{
	return wr->opts.group_max_ops * 64;
}

/* The monotonic clock ms from now, for the apply thread's timed waits. */
static void
deadline(struct timespec *ts, uint64_t at_ms)
{
	ts->tv_sec = (time_t)(at_ms / 1000);
	ts->tv_nsec = (long)(at_ms % 1000) * 1000000L;
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/*
 * Whether the journal thread waits for work. Set under the lock; the loop
 * reads it without the lock as a hint (writer_hand_over).
 */
static void
journal_idle_set(struct writer *wr, int idle)
{
	__atomic_store_n(&wr->journal_idle, idle, __ATOMIC_RELAXED);
}

void
writer_group_free(struct wgroup *g)
{
	struct wreq *w;

	while ((w = TAILQ_FIRST(&g->reqs)) != NULL) {
		TAILQ_REMOVE(&g->reqs, w, entry);
		wreq_free(w);
	}
	qpool_free(g);
}

/* Loop-thread trampolines of the callbacks. */
static void
msg_journaled(void *arg)
{
	struct wmsg *m = arg;

	m->cb.journaled(m->cb.arg, m->g);
	free(m);
}

static void
msg_applied(void *arg)
{
	struct wmsg *m = arg;

	m->cb.applied(m->cb.arg, m->g);
	free(m);
}

static void
msg_unavailable(void *arg)
{
	struct wmsg *m = arg;

	m->cb.unavailable(m->cb.arg, m->on, m->why);
	free(m->why);
	free(m);
}

static void
msg_fatal(void *arg)
{
	struct wmsg *m = arg;

	m->cb.fatal(m->cb.arg, m->why);
	free(m->why);
	free(m);
}

static void
post(
    struct writer *wr, mailbox_fn fn, struct wgroup *g, int on, const char *why)
{
	struct wmsg *m = xcalloc(1, sizeof(*m));

	m->cb = wr->cb;
	m->g = g;
	m->on = on;
	m->why = why != NULL ? xstrdup(why) : NULL;
	mailbox_post(wr->mb, fn, m);
}

/*
 * Where the journal thread runs. It sleeps in fdatasync for most of a
 * durable write's life, and the disk's completion interrupt wakes it: on
 * the CPU that took the interrupt the wake-up is local; on another, it is
 * a message between CPUs (on a virtual machine, an exit to the host) and
 * a wait for that CPU's current thread. With journal_cpu auto, the thread
 * runs on the CPU that takes the journal disk's interrupts, when one takes
 * them all (a disk with one queue: virtio-blk, SATA), and while clients
 * wait on its fdatasyncs (irqplace); it looks at the interrupts again
 * every WRITER_PLACE_MS, as irqbalance may move them, and runs anywhere
 * when they are spread (a disk with a queue per CPU, NVMe), when it may
 * run on one CPU only, or while it mostly writes async groups, work the
 * scheduler should be free to move.
 */
#define WRITER_PLACE_MS 10000

struct jplace {
	struct irqcpu  *ic;
	struct irqplace policy;
	cpu_set_t	allowed; /* where the thread may run, as started */
	int		cpu;	 /* the CPU it is on, or -1 */
	int		seen;	 /* irqcpu's last verdict */
	uint64_t	next_ms; /* the next look at the interrupts */
};

/* Run the journal thread on cpu, or (-1) wherever it may; 0, or -1. */
static int
jplace_set(struct writer *wr, struct jplace *jp, int cpu)
{
	cpu_set_t one;
	int	  rc;

	if (cpu == jp->cpu)
		return 0;
	if (cpu >= 0) {
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		rc = pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
	} else
		rc = pthread_setaffinity_np(
		    pthread_self(), sizeof(jp->allowed), &jp->allowed);
	if (rc != 0) {
		errno = rc;
		if (cpu >= 0)
			log_warn("journal thread: cannot run on CPU %d", cpu);
		else
			log_warn("journal thread: cannot run on any CPU");
		return -1;
	}
	if (cpu >= 0)
		log_debug("journal thread on CPU %d", cpu);
	else
		log_debug("journal thread on any CPU");
	jp->cpu = cpu;
	pthread_mutex_lock(&wr->lock);
	wr->stats.journal_cpu = cpu;
	pthread_mutex_unlock(&wr->lock);
	return 0;
}

/*
 * After a group (synced: clients wait on it): look at the interrupts
 * when it is time, and run where the policy says.
 */
static void
jplace_group(struct writer *wr, struct jplace *jp, int synced)
{
	uint64_t now;
	int	 cpu;

	if (jp->ic == NULL)
		return;
	now = monotime_ms();
	if (now >= jp->next_ms) {
		jp->next_ms = now + WRITER_PLACE_MS;
		cpu = irqcpu_sample(jp->ic);
		if (cpu != IRQCPU_UNSURE && cpu != jp->seen) {
			if (cpu >= 0)
				log_info("the journal disk's interrupts go to "
					 "CPU %d%s",
				    cpu,
				    CPU_ISSET(cpu, &jp->allowed)
					? ""
					: ", where the daemon may not run");
			else
				log_info("the journal disk's interrupts are "
					 "spread");
			jp->seen = cpu;
			if (cpu >= 0 && !CPU_ISSET(cpu, &jp->allowed))
				cpu = -1;
			irqplace_set_cpu(&jp->policy, cpu);
		}
	}
	/* Refused (a cpuset changed under us?): stop following. */
	if (jplace_set(wr, jp, irqplace_group(&jp->policy, synced, now)) ==
	    -1) {
		irqcpu_free(jp->ic);
		jp->ic = NULL;
	}
}

static void
jplace_init(struct writer *wr, struct jplace *jp)
{
	char *cause = NULL;
	int   rc;

	memset(jp, 0, sizeof(*jp));
	jp->cpu = -1;
	jp->seen = IRQCPU_UNSURE;
	irqplace_init(&jp->policy, monotime_ms());
	if (wr->opts.journal_cpu == WRITER_CPU_OFF)
		return;
	rc = pthread_getaffinity_np(
	    pthread_self(), sizeof(jp->allowed), &jp->allowed);
	if (rc != 0) {
		errno = rc;
		log_warn("journal thread: pthread_getaffinity_np");
		return;
	}
	if (wr->opts.journal_cpu >= 0) {
		jplace_set(wr, jp, wr->opts.journal_cpu);
		return;
	}
	if (CPU_COUNT(&jp->allowed) < 2 || wr->opts.journal_dir == NULL)
		return;
	jp->ic = irqcpu_open("", wr->opts.journal_dir, &cause);
	if (jp->ic == NULL) {
		log_debug("journal thread on any CPU: %s", cause);
		free(cause);
	}
}

/* The writes waiting for the journal fill a group (the lock is held). */
static int
queue_full(const struct writer *wr)
{
	return wr->stats.queue_ops >= wr->opts.group_max_ops ||
	       wr->stats.queue_bytes >= wr->opts.group_max_bytes;
}

/*
 * Only async writes are queued (the lock is held): let more join them for
 * up to WRITER_ASYNC_GATHER_US, unless a write that is waited for comes
 * (writer_unstage wakes the thread for it), someone waits for the queued
 * ones to be applied (writer_kick), the group is full, or the writer
 * stops. While the thread gathers, the loop does not wake it for more.
 */
static void
gather_async(struct writer *wr)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += WRITER_ASYNC_GATHER_US * 1000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	wr->gathering = 1;
	journal_idle_set(wr, 1);
	while (
	    !wr->incoming_sync && !wr->stopping &&
	    wr->kick_seq <= wr->stats.journaled_seq && !queue_full(wr) &&
	    pthread_cond_timedwait(&wr->jcond, &wr->lock, &until) != ETIMEDOUT)
		;
	journal_idle_set(wr, 0);
	wr->gathering = 0;
}

/* The journal thread; see the top of the file. */
static void *
journal_main(void *arg)
{
	struct writer  *wr = arg;
	struct wbuf	buf;
	struct wgroup  *g = NULL;
	struct wreq    *w;
	struct timespec until;
	uint64_t	last_sync = monotime_ms();
	int		unsynced = 0, need_sync, sync_now, rc;
	size_t		bytes;
	char	       *cause = NULL;
	struct jplace	place;

	log_thread_name("journal");
	jplace_init(wr, &place);
	wbuf_init(&buf);
	pthread_mutex_lock(&wr->lock);
	for (;;) {
		while (TAILQ_EMPTY(&wr->incoming) && !wr->stopping) {
			if (!unsynced) {
				journal_idle_set(wr, 1);
				pthread_cond_wait(&wr->jcond, &wr->lock);
				journal_idle_set(wr, 0);
				continue;
			}
			/* Async writes wait at most fsync_interval. */
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += wr->opts.fsync_interval_ms / 1000;
			until.tv_nsec +=
			    (long)(wr->opts.fsync_interval_ms % 1000) *
			    1000000L;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			journal_idle_set(wr, 1);
			rc = pthread_cond_timedwait(
			    &wr->jcond, &wr->lock, &until);
			journal_idle_set(wr, 0);
			if (rc == ETIMEDOUT && TAILQ_EMPTY(&wr->incoming))
				break;
		}
		if (TAILQ_EMPTY(&wr->incoming)) {
			pthread_mutex_unlock(&wr->lock);
			if (unsynced) {
				if (journal_sync(wr->journal, &cause) == -1)
					goto broken;
				unsynced = 0;
				last_sync = monotime_ms();
			}
			pthread_mutex_lock(&wr->lock);
			if (wr->stopping && TAILQ_EMPTY(&wr->incoming))
				break;
			continue;
		}
		if (!wr->incoming_sync)
			gather_async(wr);
		if (wr->opts.group_delay_us > 0 && !wr->stopping &&
		    wr->stats.queue_ops < wr->opts.group_max_ops) {
			pthread_mutex_unlock(&wr->lock);
			{
				struct timespec ts = {
				    0, (long)wr->opts.group_delay_us * 1000L};

				nanosleep(&ts, NULL);
			}
			pthread_mutex_lock(&wr->lock);
		}
		/* From the write queue's pool, as the writes are. */
		g = qpool_calloc(sizeof(*g));
		TAILQ_INIT(&g->reqs);
		bytes = 0;
		need_sync = 0;
		while ((w = TAILQ_FIRST(&wr->incoming)) != NULL &&
		       (g->n == 0 || (g->n < wr->opts.group_max_ops &&
					 bytes + w->rec_len <=
					     wr->opts.group_max_bytes))) {
			TAILQ_REMOVE(&wr->incoming, w, entry);
			TAILQ_INSERT_TAIL(&g->reqs, w, entry);
			if (g->n++ == 0)
				g->first_seq = w->seq;
			g->last_seq = w->seq;
			bytes += w->rec_len;
			if (w->durability != PROTO_DUR_ASYNC)
				need_sync = 1;
			if (w->durability == PROTO_DUR_COMMIT)
				g->urgent = 1;
		}
		wr->stats.queue_ops -= g->n;
		wr->stats.queue_bytes -= bytes;
		if (TAILQ_EMPTY(&wr->incoming))
			wr->incoming_sync = 0;
		g->bytes = bytes;
		pthread_mutex_unlock(&wr->lock);

		/*
		 * Sync now, or leave it to the timed sync? Decided before the
		 * write: the records of a group left unsynced say so, for
		 * recovery (a disk may lose it and keep a later one).
		 */
		sync_now = need_sync || monotime_ms() - last_sync >=
					    wr->opts.fsync_interval_ms;
		/* Seal each record here, off the loop; mark the group's end. */
		wbuf_reset(&buf);
		wbuf_reserve(&buf, bytes);
		TAILQ_FOREACH(w, &g->reqs, entry)
		{
			uint8_t type = w->type;

			if (!sync_now)
				type |= JOURNAL_F_UNSYNCED;
			if (TAILQ_NEXT(w, entry) == NULL)
				type |= JOURNAL_GROUP_END;
			journal_record_seal(w->rec, type, w->seq,
			    w->rec_len - JOURNAL_RECORD_HEADER);
			wbuf_add(&buf, w->rec, w->rec_len);
		}
		if (journal_write(wr->journal, buf.buf, buf.len, g->first_seq,
			g->last_seq, &cause) == -1)
			goto broken;
		if (sync_now) {
			if (journal_sync(wr->journal, &cause) == -1)
				goto broken;
			unsynced = 0;
			last_sync = monotime_ms();
			g->synced = 1;
		} else
			unsynced = 1;
		/*
		 * Async writes were acknowledged when the loop took them: a
		 * group of only those has nothing to tell the loop until it is
		 * applied, and waking it for nothing costs two context
		 * switches.
		 */
		if (need_sync)
			post(wr, msg_journaled, g, 0, NULL);
		jplace_group(wr, &place, need_sync);

		pthread_mutex_lock(&wr->lock);
		wr->stats.groups++;
		wr->stats.group_ops += g->n;
		__atomic_store_n(&wr->last_group_n, g->n, __ATOMIC_RELAXED);
		if (g->n > wr->stats.group_max)
			wr->stats.group_max = g->n;
		wr->stats.journaled_seq = g->last_seq;
		wr->stats.apply_backlog += g->n;
		g->journaled_ms = monotime_ms();
		if (g->urgent)
			wr->urgent++;
		/*
		 * Wake the apply thread only when this changes its plans: it
		 * knows when the first waiting group is due.
		 */
		if (TAILQ_EMPTY(&wr->journaled) || g->urgent ||
		    wr->opts.apply_delay_ms == 0 ||
		    wr->stats.apply_backlog >= apply_batch_max(wr))
			pthread_cond_signal(&wr->acond);
		TAILQ_INSERT_TAIL(&wr->journaled, g, entry);
		g = NULL; /* the apply thread's now */
	}
	wr->journal_done = 1;
	pthread_cond_signal(&wr->acond);
	pthread_mutex_unlock(&wr->lock);
	wbuf_free(&buf);
	irqcpu_free(place.ic);
	qpool_thread_done();
	return NULL;

broken:
	/*
	 * The journal cannot be trusted to hold what we wrote: acknowledge
	 * nothing more. The loop exits and recovery reads what is on disk.
	 */
	log_warnx("journal: %s: no more writes are acknowledged", cause);
	post(wr, msg_fatal, NULL, 0, cause);
	free(cause);
	pthread_mutex_lock(&wr->lock);
	/* The group that failed goes back in front, never acknowledged. */
	if (g != NULL) {
		TAILQ_CONCAT(&g->reqs, &wr->incoming, entry);
		TAILQ_CONCAT(&wr->incoming, &g->reqs, entry);
		qpool_free(g);
	}
	wr->broken = 1;
	wr->journal_done = 1;
	pthread_cond_signal(&wr->acond);
	pthread_mutex_unlock(&wr->lock);
	wbuf_free(&buf);
	irqcpu_free(place.ic);
	qpool_thread_done();
	return NULL;
}

/* Apply the statements of a tx; results into w->results. */
static int
apply_tx(struct store *s, struct wreq *w)
{
	struct store_result res;
	struct wbuf	    out;
	json_error_t	    jerr;
	json_t		   *tx, *st, *sql;
	size_t		    i;
	char		   *msg = NULL, *cause = NULL;
	enum store_status   rc = STORE_OK;

	tx = json_loadb(w->json, w->json_len, JSON_DISABLE_EOF_CHECK, &jerr);
	if (tx == NULL || !json_is_array(tx)) {
		w->status = STORE_BAD_REQUEST;
		xasprintf(&w->message, "tx is not an array of statements");
		json_decref(tx);
		return 0;
	}
	if (store_savepoint(s, &cause) == -1)
		goto fatal;
	wbuf_init(&out);
	wbuf_addc(&out, '[');
	json_array_foreach(tx, i, st)
	{
		sql = json_object_get(st, "sql");
		if (!json_is_string(sql)) {
			rc = STORE_BAD_REQUEST;
			xasprintf(&msg, "statement %zu has no \"sql\"", i);
			break;
		}
		rc = store_exec(s, json_string_value(sql),
		    json_string_length(sql), json_object_get(st, "params"),
		    &res, &msg);
		if (rc != STORE_OK) {
			char *m2;

			xasprintf(&m2, "statement %zu: %s", i, msg);
			free(msg);
			msg = m2;
			break;
		}
		if (i > 0)
			wbuf_addc(&out, ',');
		wbuf_adds(&out, "{\"changes\":");
		wbuf_add_i64(&out, res.changes);
		wbuf_adds(&out, ",\"last_insert_rowid\":");
		wbuf_add_i64(&out, res.last_insert_rowid);
		wbuf_addc(&out, '}');
	}
	json_decref(tx);
	if (rc == STORE_FATAL) {
		log_warnx("apply: seq %" PRIu64 ": %s", w->seq, msg);
		free(msg);
		wbuf_free(&out);
		return -1;
	}
	if (rc != STORE_OK) {
		w->status = rc;
		w->message = msg;
		wbuf_free(&out);
		if (store_rollback_to(s, &cause) == -1)
			goto fatal;
		return 0;
	}
	if (store_release(s, &cause) == -1) {
		wbuf_free(&out);
		goto fatal;
	}
	wbuf_addc(&out, ']');
	wbuf_addc(&out, '\0');
	w->results = out.buf;
	w->status = STORE_OK;
	return 0;

fatal:
	log_warnx("apply: %s", cause);
	free(cause);
	return -1;
}

int
writer_apply(struct store *s, struct wreq *w)
{
	json_error_t	  jerr;
	json_t		 *params = NULL;
	char		 *cause = NULL;
	enum store_status rc;

	free(w->message);
	w->message = NULL;
	free(w->results);
	w->results = NULL;
	w->status = STORE_OK;
	switch (w->type) {
	case WREQ_KV_SET:
	case WREQ_KV_SET_RAW:
		if (store_kv_set(s, w->key, w->klen, w->value, w->vlen,
			w->type == WREQ_KV_SET_RAW, w->seq, w->expires_at,
			&cause) == -1)
			goto fatal;
		return 0;
	case WREQ_KV_DEL:
		if (store_kv_del(s, w->key, w->klen, &cause) == -1)
			goto fatal;
		return 0;
	case WREQ_TX: return apply_tx(s, w);
	case WREQ_EXEC: break;
	default:
		w->status = STORE_BAD_REQUEST;
		xasprintf(&w->message, "unknown record type %u", w->type);
		return 0;
	}
	if (w->json != NULL &&
	    (params = json_loadb(w->json, w->json_len, 0, &jerr)) == NULL) {
		w->status = STORE_BAD_REQUEST;
		xasprintf(&w->message, "params: %s", jerr.text);
		return 0;
	}
	if (store_savepoint(s, &cause) == -1) {
		json_decref(params);
		goto fatal;
	}
	rc = store_exec(s, w->sql, w->sql_len, params, &w->res, &w->message);
	json_decref(params);
	if (rc == STORE_FATAL) {
		log_warnx("apply: seq %" PRIu64 ": %s", w->seq, w->message);
		return -1;
	}
	w->status = rc;
	if (rc != STORE_OK) {
		if (store_rollback_to(s, &cause) == -1)
			goto fatal;
		return 0;
	}
	if (store_release(s, &cause) == -1)
		goto fatal;
	return 0;

fatal:
	log_warnx("apply: %s", cause);
	free(cause);
	return -1;
}

/*
 * Key-value writes waiting to be applied, between two SQL writes: of those
 * to one key, only the last reaches SQLite. The ones before it would be
 * overwritten in the same transaction, and no SQL statement runs between
 * them to see them (a run ends at each exec and tx). A hot key written a
 * thousand times in a batch costs one upsert. The run is sorted by key,
 * then seq (kvsort.h).
 */
struct kvrun {
	struct kvent *e;
	struct kvent *tmp; /* the sort's, as large */
	size_t	      n, cap;
};

/* Superseded writes keep the status wreq_alloc zeroed (kvrun_apply). */
_Static_assert(STORE_OK == 0, "STORE_OK is what a zeroed wreq holds");

/*
 * Apply the run: the last write of each key; the others are done
 * (superseded). -1 when the database failed.
 */
static int
kvrun_apply(struct writer *wr, struct kvrun *run, uint64_t *errors,
    uint64_t *coalesced, char **cause)
{
	struct wreq *w;
	size_t	     i;
	int	     whole;

	whole = kvsort_prefix(run->e, run->n);
	kvsort(run->e, run->tmp, run->n, whole);
	for (i = 0; i < run->n; i++) {
		w = run->e[i].w;
		/*
		 * Superseded: done. Its status is STORE_OK already (wreq_alloc
		 * zeroes it, and a key-value write never fails otherwise), and
		 * setting it again would cost a cache miss a write: the run is
		 * in key order, the writes are in the queue's.
		 */
		if (i + 1 < run->n && kvsort_same_key(run->e, i, whole)) {
			(*coalesced)++;
			continue;
		}
		if (writer_apply(wr->store, w) == -1) {
			xasprintf(cause,
			    "the database failed applying seq %" PRIu64,
			    w->seq);
			return -1;
		}
		CRASH_POINT("apply");
		if (w->status != STORE_OK)
			(*errors)++;
	}
	run->n = 0;
	return 0;
}

/* Apply a batch of groups in one transaction. -1: roll back, retry. */
static int
apply_batch(struct writer *wr, struct kvrun *run, struct wgroup_list *batch,
    uint64_t *last, uint64_t *errors, uint64_t *coalesced, char **cause)
{
	struct wgroup *g;
	struct wreq   *w;

	*errors = *coalesced = 0;
	run->n = 0;
	if (store_begin(wr->store, cause) == -1)
		return -1;
	TAILQ_FOREACH(g, batch, entry)
	{
		TAILQ_FOREACH(w, &g->reqs, entry)
		{
			*last = w->seq;
			if (WREQ_IS_KV(w->type)) {
				if (run->n == run->cap) {
					run->cap =
					    run->cap ? run->cap * 2 : 256;
					run->e = xreallocarray(
					    run->e, run->cap, sizeof(*run->e));
					run->tmp = xreallocarray(run->tmp,
					    run->cap, sizeof(*run->tmp));
				}
				run->e[run->n++].w = w;
				continue;
			}
			/* An SQL write sees every key-value write before it. */
			if (kvrun_apply(wr, run, errors, coalesced, cause) ==
			    -1)
				goto fail;
			if (writer_apply(wr->store, w) == -1) {
				xasprintf(cause,
				    "the database failed applying seq %" PRIu64,
				    w->seq);
				goto fail;
			}
			CRASH_POINT("apply");
			if (w->status != STORE_OK) {
				(*errors)++;
				if (w->durability != PROTO_DUR_COMMIT)
					log_warnx("apply: seq %" PRIu64
						  " failed: %s",
					    w->seq, w->message);
			}
		}
	}
	if (kvrun_apply(wr, run, errors, coalesced, cause) == -1)
		goto fail;
	if (store_commit(wr->store, *last, cause) == -1)
		goto fail;
	return 0;

fail:
	store_rollback(wr->store);
	return -1;
}

/*
 * Whether the journaled groups should be applied now (the lock is held);
 * if not, *due is when, on the monotonic clock in ms.
 */
static int
apply_due(const struct writer *wr, uint64_t *due)
{
	const struct wgroup *g = TAILQ_FIRST(&wr->journaled);

	if (wr->journal_done || wr->urgent > 0 ||
	    wr->kick_seq > wr->stats.applied_seq ||
	    wr->stats.apply_backlog >= apply_batch_max(wr))
		return 1;
	*due = g->journaled_ms + wr->opts.apply_delay_ms;
	return monotime_ms() >= *due;
}

/* The apply thread; see the top of the file. */
static void *
apply_main(void *arg)
{
	struct writer	  *wr = arg;
	struct wgroup_list batch;
	struct wgroup	  *g;
	uint64_t last = 0, errors, coalesced, ops, last_purge = monotime_ms();
	struct kvrun run;
	uint64_t     last_ckpt = monotime_ms(), durable = 0, due, ckpt_seq = 0;
	size_t	     bytes, applied_bytes = 0;
	unsigned     backoff = 0;
	int	     down = 0, n;
	char	    *cause = NULL;

	log_thread_name("apply");
	TAILQ_INIT(&batch);
	memset(&run, 0, sizeof(run));
	/*
	 * Applying is catching up, not answering: when the CPUs are short,
	 * the loop and the journal thread go first. (Linux: a thread's nice
	 * value is its own.) Whoever waits on SQLite makes the batch due at
	 * once, and the write queue's limit bounds how far behind it falls.
	 */
	if (wr->opts.apply_nice != 0) {
		int base, prio;

		/* getpriority() may return -1: errno tells. */
		errno = 0;
		base = getpriority(PRIO_PROCESS, 0);
		prio = base + (int)wr->opts.apply_nice;
		if (prio > 19)
			prio = 19;
		if ((base == -1 && errno != 0) ||
		    setpriority(
			PRIO_PROCESS, (id_t)syscall(SYS_gettid), prio) == -1)
			log_warn("apply thread: setpriority");
	}
	pthread_mutex_lock(&wr->lock);
	for (;;) {
		while (TAILQ_EMPTY(&wr->journaled) && !wr->journal_done) {
			struct timespec until;

			deadline(&until, monotime_ms() + 1000);
			if (pthread_cond_timedwait(
				&wr->acond, &wr->lock, &until) == ETIMEDOUT)
				break;
		}
		if (TAILQ_EMPTY(&wr->journaled)) {
			if (wr->journal_done)
				break;
			/* Idle: purge expired rows now and then. */
			pthread_mutex_unlock(&wr->lock);
			/*
			 * A burst of writes is applied and, a second later,
			 * freed by the loop: give the memory it held back to
			 * the system, here rather than on the loop (a trim
			 * walks the whole heap).
			 */
			if (applied_bytes >= WRITER_TRIM_AFTER) {
				applied_bytes = 0;
				malloc_trim(0);
			}
			if (ckpt_seq < last &&
			    store_checkpoint(wr->store, 0, &cause) == 0) {
				ckpt_seq = last;
				last_ckpt = monotime_ms();
				if (wr->opts.sync_normal) {
					durable = last;
					journal_release(wr->journal, durable);
				}
			} else if (cause != NULL) {
				log_warnx("checkpoint: %s", cause);
				free(cause);
				cause = NULL;
			}
			if (monotime_ms() - last_purge >=
			    wr->opts.purge_interval_ms) {
				last_purge = monotime_ms();
				if (store_begin(wr->store, &cause) == 0 &&
				    (n = store_kv_purge(wr->store, wall_ms(),
					 10000, &cause)) >= 0 &&
				    store_commit(wr->store,
					wr->stats.applied_seq, &cause) == 0) {
					pthread_mutex_lock(&wr->lock);
					wr->stats.purged += (uint64_t)n;
					pthread_mutex_unlock(&wr->lock);
				} else {
					store_rollback(wr->store);
					log_warnx("purge: %s", cause);
					free(cause);
					cause = NULL;
				}
			}
			pthread_mutex_lock(&wr->lock);
			continue;
		}
		if (!apply_due(wr, &due)) {
			struct timespec until;

			deadline(&until, due);
			pthread_cond_timedwait(&wr->acond, &wr->lock, &until);
			continue;
		}
		ops = bytes = 0;
		while ((g = TAILQ_FIRST(&wr->journaled)) != NULL &&
		       (ops == 0 || ops + g->n <= apply_batch_max(wr))) {
			TAILQ_REMOVE(&wr->journaled, g, entry);
			TAILQ_INSERT_TAIL(&batch, g, entry);
			ops += g->n;
			bytes += g->bytes;
			if (g->urgent)
				wr->urgent--;
		}
		pthread_mutex_unlock(&wr->lock);

		while (apply_batch(wr, &run, &batch, &last, &errors, &coalesced,
			   &cause) == -1) {
			log_warnx("apply: %s; retrying", cause);
			if (!down) {
				post(wr, msg_unavailable, NULL, 1, cause);
				down = 1;
			}
			free(cause);
			cause = NULL;
			pthread_mutex_lock(&wr->lock);
			wr->stats.apply_retries++;
			pthread_mutex_unlock(&wr->lock);
			backoff = backoff == 0 ? 10 : backoff * 2;
			if (backoff > 1000)
				backoff = 1000;
			sleep_ms(backoff);
		}
		CRASH_POINT("after-commit");
		/*
		 * A large batch's coalescing arrays (megabytes) go back at
		 * once, rather than stay for the next burst.
		 */
		if (run.cap > WRITER_RUN_KEEP) {
			free(run.e);
			free(run.tmp);
			memset(&run, 0, sizeof(run));
		}
		backoff = 0;
		if (down) {
			post(wr, msg_unavailable, NULL, 0, NULL);
			down = 0;
		}
		/*
		 * With synchronous=FULL the commit is durable now; with NORMAL,
		 * only once a checkpoint has copied and synced everything.
		 * Checkpoints are taken here in both cases (SQLite's automatic
		 * ones are off), so the WAL stays small.
		 */
		if (!wr->opts.sync_normal)
			durable = last;
		if (monotime_ms() - last_ckpt >=
		    wr->opts.checkpoint_interval_ms) {
			last_ckpt = monotime_ms();
			if (store_checkpoint(wr->store, 0, &cause) == 0) {
				ckpt_seq = last;
				if (wr->opts.sync_normal)
					durable = last;
			} else if (cause != NULL) {
				log_warnx("checkpoint: %s", cause);
				free(cause);
				cause = NULL;
			}
		}
		if (durable > 0)
			journal_release(wr->journal, durable);

		pthread_mutex_lock(&wr->lock);
		store_get_stats(wr->store, &wr->stats.sqlite);
		wr->stats.transactions++;
		wr->stats.applied_seq = last;
		wr->stats.apply_errors += errors;
		wr->stats.coalesced += coalesced;
		wr->stats.apply_backlog -= ops;
		applied_bytes += bytes;
		while ((g = TAILQ_FIRST(&batch)) != NULL) {
			TAILQ_REMOVE(&batch, g, entry);
			post(wr, msg_applied, g, 0, NULL);
		}
	}
	pthread_mutex_unlock(&wr->lock);
	free(run.e);
	free(run.tmp);
	return NULL;
}

static void writer_stage_cb(evutil_socket_t, short, void *);

struct writer *
writer_start(const struct writer_options *opts, struct journal *j,
    struct store *s, struct mailbox *mb, const struct writer_callbacks *cb)
{
	struct writer	  *wr = xcalloc(1, sizeof(*wr));
	pthread_condattr_t attr;

	wr->opts = *opts;
	wr->cb = *cb;
	wr->journal = j;
	wr->store = s;
	wr->mb = mb;
	TAILQ_INIT(&wr->incoming);
	TAILQ_INIT(&wr->staged);
	TAILQ_INIT(&wr->journaled);
	wr->stage_ev = event_new(mailbox_base(mb), -1, 0, writer_stage_cb, wr);
	if (wr->stage_ev == NULL)
		fatalx("writer: event_new");
	if (pthread_condattr_init(&attr) != 0 ||
	    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
	    pthread_mutex_init(&wr->lock, NULL) != 0 ||
	    pthread_cond_init(&wr->jcond, NULL) != 0 ||
	    pthread_cond_init(&wr->acond, &attr) != 0)
		fatalx("writer: cannot create locks");
	pthread_condattr_destroy(&attr);
	if (store_applied_seq(s, &wr->stats.applied_seq, NULL) == -1)
		wr->stats.applied_seq = 0;
	wr->stats.journaled_seq = wr->stats.applied_seq;
	wr->stats.journal_cpu = -1;
	if (pthread_create(&wr->jthread, NULL, journal_main, wr) != 0 ||
	    pthread_create(&wr->athread, NULL, apply_main, wr) != 0)
		fatalx("writer: cannot start threads");
	return wr;
}

/*
 * Hand the staged writes to the journal thread, with one lock and one
 * wakeup for all of them; none when they are all async and the thread
 * lets async writes gather already (gather_async), unless they fill a
 * group.
 */
static void
writer_unstage(struct writer *wr)
{
	if (TAILQ_EMPTY(&wr->staged))
		return;
	pthread_mutex_lock(&wr->lock);
	TAILQ_CONCAT(&wr->incoming, &wr->staged, entry);
	wr->stats.queue_ops += wr->staged_n;
	wr->stats.queue_bytes += wr->staged_bytes;
	if (wr->staged_sync)
		wr->incoming_sync = 1;
	if (wr->journal_idle &&
	    (wr->staged_sync || !wr->gathering || queue_full(wr)))
		pthread_cond_signal(&wr->jcond);
	pthread_mutex_unlock(&wr->lock);
	wr->staged_n = wr->staged_bytes = 0;
	wr->staged_sync = 0;
}

static void
writer_stage_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	writer_unstage(arg);
}

/*
 * Writes are staged on the loop and handed over once the loop has run
 * every callback ready in this turn: the requests read from all the
 * clients that woke the loop together join one group, rather than the
 * first waking the journal thread alone into a group of one.
 */
void
writer_submit(struct writer *wr, struct wreq *w)
{
	if (TAILQ_EMPTY(&wr->staged))
		event_active(wr->stage_ev, EV_READ, 0);
	TAILQ_INSERT_TAIL(&wr->staged, w, entry);
	if (w->durability != PROTO_DUR_ASYNC)
		wr->staged_sync = 1;
	wr->staged_n++;
	wr->staged_bytes += w->rec_len;
}

/*
 * While the journal thread is busy with a group, the writes staged so far
 * can go now: it takes them when it is done, with no wakeup, and they
 * join its next group even when that starts before the loop's turn ends.
 * Waiting for the end of the turn would leave them a whole fdatasync
 * behind. That matters when few clients write, one request at a time, and
 * groups are small: their latency is the throughput. When groups are
 * large, the loop's turns are long and this would cut each turn's writes
 * into several groups, each with its own fdatasync and its own message to
 * the loop, for no gain: the end of the turn is soon enough.
 */
void
writer_hand_over(struct writer *wr)
{
	if (!TAILQ_EMPTY(&wr->staged) &&
	    __atomic_load_n(&wr->last_group_n, __ATOMIC_RELAXED) <
		WRITER_EARLY_GROUP_MAX &&
	    !__atomic_load_n(&wr->journal_idle, __ATOMIC_RELAXED))
		writer_unstage(wr);
}

void
writer_kick(struct writer *wr, uint64_t seq)
{
	pthread_mutex_lock(&wr->lock);
	if (seq > wr->kick_seq) {
		wr->kick_seq = seq;
		pthread_cond_signal(&wr->acond);
		if (wr->gathering)
			pthread_cond_signal(&wr->jcond);
	}
	pthread_mutex_unlock(&wr->lock);
}

void
writer_stop(struct writer *wr)
{
	struct wreq *w;

	writer_unstage(wr);
	event_free(wr->stage_ev);
	pthread_mutex_lock(&wr->lock);
	wr->stopping = 1;
	pthread_cond_signal(&wr->jcond);
	pthread_mutex_unlock(&wr->lock);
	if (pthread_join(wr->jthread, NULL) != 0 ||
	    pthread_join(wr->athread, NULL) != 0)
		fatalx("writer: cannot join threads");
	/* After a journal failure, what was not written is dropped. */
	while ((w = TAILQ_FIRST(&wr->incoming)) != NULL) {
		TAILQ_REMOVE(&wr->incoming, w, entry);
		if (wr->cb.dropped != NULL)
			wr->cb.dropped(wr->cb.arg, w);
		wreq_free(w);
	}
	pthread_cond_destroy(&wr->jcond);
	pthread_cond_destroy(&wr->acond);
	pthread_mutex_destroy(&wr->lock);
	free(wr);
}

void
writer_get_stats(struct writer *wr, struct writer_stats *st)
{
	pthread_mutex_lock(&wr->lock);
	*st = wr->stats;
	pthread_mutex_unlock(&wr->lock);
}

/* Replay state: the open transaction and its size. */
struct replay {
	struct store *store;
	size_t	      batch;
	size_t	      in_tx;
	uint64_t      last;
	uint64_t      count;
	uint64_t      errors;
	char	     *cause;
};

static int
replay_record(void *arg, uint8_t type, uint64_t seq, const void *payload,
    size_t len, uint32_t format)
{
	struct replay *r = arg;
	struct wreq    w;

	memset(&w, 0, sizeof(w));
	if (wreq_decode(&w, type, seq, payload, len) == -1) {
		xasprintf(
		    &r->cause, "journal record %" PRIu64 " is malformed", seq);
		return -1;
	}
	/* Before format 3, an expiry was a Unix second. */
	if (format < 3 && w.expires_at != 0) {
		if (w.expires_at > INT64_MAX / 1000 ||
		    w.expires_at < INT64_MIN / 1000) {
			xasprintf(&r->cause,
			    "journal record %" PRIu64 " has a bad expiry", seq);
			return -1;
		}
		w.expires_at *= 1000;
	}
	if (r->in_tx == 0 && store_begin(r->store, &r->cause) == -1)
		return -1;
	if (writer_apply(r->store, &w) == -1) {
		free(w.message);
		free(w.results);
		xasprintf(&r->cause,
		    "the database failed replaying record %" PRIu64, seq);
		store_rollback(r->store);
		return -1;
	}
	CRASH_POINT("replay");
	if (w.status != STORE_OK) {
		r->errors++;
		log_info("replay: record %" PRIu64 " failed again: %s", seq,
		    w.message);
	}
	free(w.message);
	free(w.results);
	r->last = seq;
	r->count++;
	if (++r->in_tx >= r->batch) {
		if (store_commit(r->store, seq, &r->cause) == -1) {
			store_rollback(r->store);
			return -1;
		}
		r->in_tx = 0;
	}
	return 0;
}

int
writer_replay(struct journal *j, struct store *s, uint64_t applied,
    size_t batch, uint64_t *replayed, uint64_t *last, char **cause)
{
	struct replay r;
	char	     *jcause = NULL;

	memset(&r, 0, sizeof(r));
	r.store = s;
	r.batch = batch;
	r.last = applied;
	if (journal_replay(j, applied, replay_record, &r, &jcause) == -1) {
		if (r.cause != NULL) {
			*cause = r.cause;
			free(jcause);
		} else
			*cause = jcause;
		return -1;
	}
	if (r.in_tx > 0 && store_commit(s, r.last, cause) == -1) {
		store_rollback(s);
		return -1;
	}
	*replayed = r.count;
	*last = r.last;
	return 0;
}

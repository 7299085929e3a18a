/*
 * writer.h -- the write path: journal thread and apply thread.
 *
 * The loop submits wreqs in sequence order. The journal thread takes
 * whatever is queued when its previous fsync ended (a group), writes it with
 * one write and one fdatasync, and reports the group journaled; the apply
 * thread applies groups to SQLite in one transaction and reports them
 * applied. Reports run on the loop thread through the mailbox, in order.
 */
#ifndef STASHD_WRITER_H
#define STASHD_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "wreq.h"

struct journal;
struct mailbox;
struct store;
struct writer;

/* A group: the writes of one journal write + fdatasync. */
struct wgroup {
	struct wreq_list reqs;
	size_t		 n;
	uint64_t	 first_seq;
	uint64_t	 last_seq;
	int		 synced;
	int		 urgent;       /* holds commit writes: apply at once */
	size_t		 bytes;	       /* of its records */
	uint64_t	 journaled_ms; /* monotonic */
	TAILQ_ENTRY(wgroup) entry;
};

struct writer_callbacks {
	/* The group is in the journal (fsync'd when g->synced). */
	void (*journaled)(void *arg, struct wgroup *g);
	/* The group is applied; the loop frees it (writer_group_free). */
	void (*applied)(void *arg, struct wgroup *g);
	/* SQLite cannot take writes now (1) or can again (0). */
	void (*unavailable)(void *arg, int on, const char *why);
	/* The journal failed: nothing more will be acknowledged. */
	void (*fatal)(void *arg, const char *why);
	/*
	 * At writer_stop, on its caller's thread (the loop is over): a write
	 * never acknowledged, about to be freed. NULL: nothing to do.
	 */
	void (*dropped)(void *arg, struct wreq *w);
	void *arg;
};

struct writer_options {
	size_t	 group_max_ops;
	size_t	 group_max_bytes;
	unsigned group_delay_us;
	unsigned fsync_interval_ms; /* for async-only groups */
	unsigned apply_delay_ms;    /* let journaled writes gather this long */
	unsigned apply_nice;	    /* the apply thread's nice value, 0..19 */
	unsigned purge_interval_ms; /* expired rows */
	/*
	 * SQLite runs with synchronous=NORMAL: a commit is durable only once
	 * a checkpoint has completed, so journal segments are released after
	 * one, taken at least this often while writes come.
	 */
	int	 sync_normal;
	unsigned checkpoint_interval_ms;
	/*
	 * The CPU the journal thread runs on, or WRITER_CPU_AUTO: the one that
	 * takes the interrupts of the disk under journal_dir (irqcpu.h), when
	 * one takes them all; WRITER_CPU_OFF: any.
	 */
	int	    journal_cpu;
	const char *journal_dir;
};

#define WRITER_CPU_AUTO (-1)
#define WRITER_CPU_OFF	(-2)

struct writer_stats {
	uint64_t	   groups;
	uint64_t	   group_ops; /* sum of group sizes */
	uint64_t	   group_max;
	uint64_t	   transactions;
	uint64_t	   applied_seq;
	uint64_t	   journaled_seq;
	uint64_t	   apply_errors; /* statements that failed */
	uint64_t	   coalesced; /* kv writes overwritten in their batch */
	uint64_t	   apply_retries; /* SQLite unavailable */
	int		   journal_cpu;	  /* the journal thread's CPU, or -1 */
	uint64_t	   queue_ops;	  /* waiting for the journal */
	uint64_t	   queue_bytes;
	uint64_t	   apply_backlog; /* journaled, not applied */
	uint64_t	   purged;
	struct store_stats sqlite;
};

struct writer *writer_start(const struct writer_options *opts,
    struct journal *j, struct store *s, struct mailbox *mb,
    const struct writer_callbacks *cb);
/*
 * Queue w (the loop thread; seqs strictly increasing). It reaches the
 * journal thread at the end of the loop's turn, or at writer_hand_over().
 */
void writer_submit(struct writer *wr, struct wreq *w);
/* The loop is done with a client's input: hand over if it helps. */
void writer_hand_over(struct writer *wr);
/*
 * Someone waits for writes up to seq to be applied (a sync, a query after
 * writes, a full queue): apply them without the delay.
 */
void writer_kick(struct writer *wr, uint64_t seq);
/* Finish everything queued, then stop the threads. */
void writer_stop(struct writer *wr);
void writer_get_stats(struct writer *wr, struct writer_stats *st);
void writer_group_free(struct wgroup *g);

/*
 * Apply one write to the store inside an open transaction (the apply
 * thread, and replay at start). Fills w->status and friends; returns -1
 * only when the database itself failed (the transaction must go).
 */
int writer_apply(struct store *s, struct wreq *w);

/*
 * Replay the journal records after the store's applied seq, in
 * transactions of up to batch records. *last gets the last seq seen.
 */
int writer_replay(struct journal *j, struct store *s, uint64_t applied,
    size_t batch, uint64_t *replayed, uint64_t *last, char **cause);

#endif /* STASHD_WRITER_H */

/*
 * cmd.h -- the operations of protocol v1: one request line in, one answer
 * out (now, or later through a slot of the connection).
 */
#ifndef STASHD_CMD_H
#define STASHD_CMD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "proto.h"
#include "stats.h"
#include "wbuf.h"

struct cache;
struct conn;
struct journal;
struct keymap;
struct reader;
struct writer;
struct wgroup;
struct rcmd;
struct wreq;

/* What cmd_line() did with a line. */
enum cmd_result {
	CMD_DONE,     /* answered: the answer is in out */
	CMD_DEFERRED, /* answered later through a slot */
	CMD_WAIT,     /* not taken: run the same line again on resume */
};

/* Per connection state of the command layer. */
struct rtx;
struct rwatch;

struct cmd_session {
	struct conn  *conn;
	int	      role;	  /* enum access_role */
	unsigned long uid;	  /* of the peer */
	uint64_t      unacked;	  /* writes not yet acked */
	uint64_t      last_write; /* seq of its last write */
	uint64_t      reads;	  /* lookups, queries in flight */
	int	      apply_wait; /* on the apply waiters */
	int	      count_wait; /* DBSIZE/INFO waits for last_write */
	TAILQ_ENTRY(cmd_session) aentry;
	int queued; /* on the waiters list */
	TAILQ_ENTRY(cmd_session) wentry;
	/* RESP connections (rcmd.c). */
	uint64_t	      conn_id;
	int		      resp3; /* HELLO 3 was sent */
	int		      quit;  /* close once answered */
	enum proto_durability rdur;  /* STASH DURABILITY; 0: dur_kv */
	char		     *name;  /* CLIENT SETNAME */
	struct rtx    *tx;    /* after MULTI: the commands queued (rcmd.c) */
	struct rwatch *watch; /* WATCH's keys (rcmd.c) */
};

struct sync_waiter;

#define CMD_DEL_SLOTS 4096 /* power of two */

struct cmd_ctx {
	struct cache	     *cache;
	struct stats	     *stats;
	struct writer	     *writer; /* NULL: in memory only */
	struct reader	     *reader;
	struct keymap	     *keys;
	struct journal	     *journal;
	struct proto_limits   limits;
	enum proto_durability dur_kv;	/* default of set and del */
	enum proto_durability dur_exec; /* default of exec */
	int		      sql_enabled;
	uint64_t	      seq;	   /* last write sequence number */
	uint64_t	      applied_seq; /* applied, as the loop knows */
	uint64_t	      queue_kick;  /* seq of the last full-queue kick */
	size_t		      write_queue_max; /* bytes not yet applied */
	size_t		      unapplied_bytes;
	size_t		      journal_waits; /* answers due at an fdatasync */
	int		      send_now;	   /* cmd_journaled(): answers go now */
	size_t		      tx_bytes;	   /* queued after MULTI (rcmd.c) */
	int		      unavailable; /* SQLite cannot take writes */
	int		      broken;	   /* the journal failed */
	void (*on_broken)(void *arg);
	void *on_broken_arg;
	/* Send the answers gathered so far (server_flush), or NULL. */
	void (*flush)(void *arg);
	void *flush_arg;
	TAILQ_HEAD(, cmd_session) waiters;	 /* for write queue room */
	TAILQ_HEAD(, cmd_session) apply_waiters; /* queries after writes */
	struct sync_waiter *syncs;		 /* oldest first */
	struct sync_waiter *syncs_tail;
	const char	   *last_op;   /* of the last request taken */
	struct wbuf	    scratch;   /* a line kept for a retry */
	struct wbuf	    ans;       /* a deferred answer */
	struct rcmd	   *resp;      /* the RESP commands' state */
	size_t		    value_max; /* bytes of a value built by RESP */
	/*
	 * The cache holds every key SQLite holds: stash_kv was empty at
	 * start, and no key has left the cache since but by expiry or a
	 * delete (rcmd.c also checks the cache's evictions).
	 */
	int kv_complete;
	/*
	 * The seq of the latest applied delete of any key whose hash falls
	 * in each slot: once a delete is applied its key leaves the cache
	 * and SQLite, and with it the version a WATCH of an absent key would
	 * compare (cmd_deleted_since).
	 */
	uint64_t del_seq[CMD_DEL_SLOTS];
};

void cmd_init(struct cmd_ctx *ctx);
void cmd_free(struct cmd_ctx *ctx);
void cmd_session_init(
    struct cmd_ctx *ctx, struct cmd_session *ss, struct conn *c);
void cmd_session_close(struct cmd_ctx *ctx, struct cmd_session *ss);

/* Run line[0..len) (may be modified in place). */
enum cmd_result cmd_line(struct cmd_ctx *ctx, struct cmd_session *ss,
    char *line, size_t len, struct wbuf *out);
/* Append an error answer without an id (the line could not be read). */
void cmd_error(struct cmd_ctx *ctx, struct wbuf *out, enum stats_err code,
    const char *message);

/*
 * Shared with rcmd.c (the RESP commands), which takes key-value writes
 * through the same path.
 */
struct wreq;
struct rkey;
struct slot;
/* Number, account and hand over w (the caller numbered it: ++ctx->seq). */
void cmd_write_take(struct cmd_ctx *ctx, struct wreq *w);
/* w answers through slot (or NULL) once it is acknowledged. */
void cmd_write_owner(struct cmd_ctx *ctx, struct wreq *w, struct slot *slot);
/* Acknowledge w: make it visible, answer its slot, or into out. */
void cmd_ack_write(
    struct cmd_ctx *ctx, struct wreq *w, int applied, struct wbuf *out);
void cmd_kick_apply(struct cmd_ctx *ctx, uint64_t seq);
/* The loop is done with one client's input for now. */
void cmd_input_done(struct cmd_ctx *ctx);
/* Send ctx->ans through a slot; 1 while its connection stays open. */
int cmd_answer_slot(struct cmd_ctx *ctx, struct slot *sl);
/*
 * Cache what a fresh lookup found (or that the key is absent), unless the
 * key has a write not applied yet.
 */
void cmd_lookup_fill(struct cmd_ctx *ctx, const struct rkey *k);
/*
 * May key have been deleted by a write after seq, that write applied
 * since? 0 means surely not; 1 means yes, or a key of the same slot was.
 */
int cmd_deleted_since(
    const struct cmd_ctx *ctx, const char *key, size_t klen, uint64_t seq);
void cmd_add_json_value(struct wbuf *out, const void *v, size_t vlen, int raw);
void cmd_resp_error(struct cmd_ctx *ctx, struct wbuf *out, enum stats_err code,
    const char *msg);

/* Writer callbacks (loop thread). */
void cmd_journaled(void *arg, struct wgroup *g);
void cmd_applied(void *arg, struct wgroup *g);
void cmd_unavailable(void *arg, int on, const char *why);
void cmd_broken(void *arg, const char *why);
void cmd_dropped(void *arg, struct wreq *w);

#endif /* STASHD_CMD_H */

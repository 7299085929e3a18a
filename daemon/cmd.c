/*
 * cmd.c -- the operations of protocol v1.
 *
 * cmd_line() is the one dispatch function: it parses a request (proto.c)
 * and either answers at once (CMD_DONE), takes a slot of the connection to
 * answer later (CMD_DEFERRED), or leaves the line for later (CMD_WAIT).
 *
 * Reads. get and mget answer from the cache. A miss goes to a reader
 * thread; its answer is used only if its SQLite snapshot includes every
 * write the loop has seen applied (snapshot_seq >= applied_seq), else the
 * lookup runs again. Together with the next rule, this is Guarantee 3.
 *
 * Writes. Each write gets the next sequence number (its version) and goes
 * to the writer. It becomes visible -- in the cache, pinned until applied
 * -- when it is acknowledged: on receipt (async), once its journal record
 * is fsync'd (journal), or once its transaction committed (commit). The
 * cache room for pinned entries is reserved when the write is taken, so
 * making it visible never fails. An older write acknowledged after a newer
 * one of the same key (mixed durabilities) never hides the newer one.
 *
 * if_version and del decide on the latest write taken for the key, in
 * sequence order: the keymap knows keys whose latest write is neither
 * pinned in the cache nor applied (not acknowledged yet, mostly), the
 * cache knows the rest it holds; otherwise a lookup comes first and the
 * write is decided when it returns.
 *
 * Read-your-writes (Guarantee 4): a get or mget that follows a write of the
 * same connection that is not acknowledged yet waits (CMD_WAIT) until it
 * is; a query (which reads SQLite, not the cache) waits until the
 * connection's last write is applied. Pipelined writes do not wait for
 * each other, so they join the same group. The other way round, a write
 * that follows a read still in a reader thread waits for it, so that no
 * read ever answers with a write sent after it on its connection.
 *
 * Backpressure: past write_queue_max bytes of writes not yet applied, a
 * write waits (CMD_WAIT) and its connection is resumed when the applier
 * catches up.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "access.h"
#include "cache.h"
#include "cmd.h"
#include "crashpoint.h"
#include "journal.h"
#include "keymap.h"
#include "log.h"
#include "monotime.h"
#include "rcmd.h"
#include "reader.h"
#include "server.h"
#include "stash-protocol.h"
#include "wbuf.h"
#include "writer.h"
#include "wreq.h"
#include "xmalloc.h"

/* A sync waiting for applied_seq to reach target. */
struct sync_waiter {
	struct sync_waiter *next;
	uint64_t	    target;
	struct slot	   *slot;
	char		   *id;
	size_t		    id_len;
};

/* A set or del whose decision waits for a lookup. */
struct pwrite {
	int		      del;
	char		     *key;
	size_t		      klen;
	char		     *value;
	size_t		      vlen;
	uint32_t	      ttl;
	int		      has_if_version;
	uint64_t	      if_version;
	enum proto_durability dur;
};

enum lookup_kind {
	LK_GET,
	LK_MGET,
	LK_WRITE,
	LK_QUERY,
};

/* What waits for a reader job. */
struct lookup {
	enum lookup_kind kind;
	struct cmd_ctx	*ctx;
	struct slot	*slot;
	int		 counted; /* in its session's reads */
	char		*id;
	size_t		 id_len;
	struct pwrite	*pw;
};

static char *
memdup(const void *p, size_t n)
{
	char *q = xmalloc(n + 1);

	if (n > 0)
		memcpy(q, p, n);
	q[n] = '\0';
	return q;
}

/* Start an answer: {"ok":true or false, and the id when there is one. */
static void
reply_begin(struct wbuf *out, const char *id, size_t id_len, int ok)
{
	if (ok)
		wbuf_add(out, "{\"ok\":true", 10);
	else
		wbuf_add(out, "{\"ok\":false", 11);
	if (id != NULL) {
		wbuf_add(out, ",\"id\":", 6);
		wbuf_add(out, id, id_len);
	}
}

static void
reply_end(struct wbuf *out)
{
	wbuf_add(out, "}\n", 2);
}

static void
reply_error(struct cmd_ctx *ctx, struct wbuf *out, const char *id,
    size_t id_len, enum stats_err code, const char *msg)
{
	ctx->stats->errors[code]++;
	reply_begin(out, id, id_len, 0);
	wbuf_add(out, ",\"error\":{\"code\":\"", 18);
	wbuf_adds(out, stats_err_code(code));
	wbuf_add(out, "\",\"message\":", 12);
	wbuf_add_jstr(out, msg, strlen(msg));
	wbuf_add(out, "}}\n", 3);
}

/* An error answer to a parsed request. */
static void
req_error(struct cmd_ctx *ctx, struct wbuf *out,
    const struct proto_request *req, enum stats_err code, const char *msg)
{
	reply_error(
	    ctx, out, req ? req->id : NULL, req ? req->id_len : 0, code, msg);
}

void
cmd_error(struct cmd_ctx *ctx, struct wbuf *out, enum stats_err code,
    const char *message)
{
	reply_error(ctx, out, NULL, 0, code, message);
}

/*
 * A stored value as JSON: JSON text as it is; bytes set through RESP as
 * a JSON string when they are UTF-8, else as {"base64":"..."}.
 */
void
cmd_add_json_value(struct wbuf *out, const void *v, size_t vlen, int raw)
{
	if (!raw)
		wbuf_add(out, v, vlen);
	else if (proto_utf8_valid(v, vlen))
		wbuf_add_jstr(out, v, vlen);
	else
		wbuf_add_base64(out, v, vlen);
}

/* A RESP error reply for one of the protocol's error classes. */
void
cmd_resp_error(
    struct cmd_ctx *ctx, struct wbuf *out, enum stats_err code, const char *msg)
{
	const char *prefix;

	ctx->stats->errors[code]++;
	switch (code) {
	case ERR_BUSY: prefix = "-BUSY "; break;
	case ERR_UNAVAILABLE: prefix = "-LOADING "; break;
	case ERR_FORBIDDEN: prefix = "-NOPERM "; break;
	case ERR_CONFLICT: prefix = "-CONFLICT "; break;
	default: prefix = "-ERR "; break;
	}
	wbuf_adds(out, prefix);
	/* A reply line may not hold CR or LF. */
	for (; *msg != '\0'; msg++)
		wbuf_addc(out, *msg == '\r' || *msg == '\n' ? ' ' : *msg);
	wbuf_add(out, "\r\n", 2);
}

/* Someone waits for writes up to seq to be applied: no delay for them. */
static void
kick_apply(struct cmd_ctx *ctx, uint64_t seq)
{
	if (ctx->writer != NULL && seq > ctx->applied_seq)
		writer_kick(ctx->writer, seq);
}

/* Send ctx->ans through a slot; 1 while its connection stays open. */
static int
answer_slot(struct cmd_ctx *ctx, struct slot *sl)
{
	int alive = server_slot_answer(sl, ctx->ans.buf, ctx->ans.len);

	wbuf_reset(&ctx->ans);
	return alive;
}

/*
 * Answer a write through its slot (ctx->ans), then count it acknowledged.
 * In this order: the acknowledgement may resume the connection, whose next
 * lines are then answered after this one and may use ctx->ans themselves.
 * 1 while the connection stays open.
 */
static int
answer_acked(struct cmd_ctx *ctx, struct slot *sl)
{
	/* The slot may be freed once answered: take its connection now. */
	struct conn	   *c = server_slot_conn(sl);
	struct cmd_session *ss;

	/* The slot may be freed now; the connection stays if alive. */
	if (!answer_slot(ctx, sl) || c == NULL)
		return 0;
	ss = server_conn_session(c);
	if (ss->unacked > 0 && --ss->unacked == 0) {
		/* Nothing more to answer for now: see cmd_journaled(). */
		if (ctx->send_now && server_conn_send_now(c) == -1)
			return 0;
		server_conn_resume(c);
	}
	return 1;
}

static enum stats_err
store_err(enum store_status st)
{
	switch (st) {
	case STORE_BAD_REQUEST: return ERR_BAD_REQUEST;
	case STORE_SQL_ERROR: return ERR_SQL_ERROR;
	case STORE_FORBIDDEN: return ERR_FORBIDDEN;
	case STORE_TOO_LARGE: return ERR_TOO_LARGE;
	case STORE_FATAL: return ERR_UNAVAILABLE;
	default: return ERR_INTERNAL;
	}
}

/* Milliseconds left of an absolute expiry (at least 1); 0 for none. */
static uint64_t
ttl_left(int64_t expires_at)
{
	int64_t left;

	if (expires_at == 0)
		return 0;
	left = expires_at - wall_ms();
	return left < 1 ? 1 : (uint64_t)left;
}

/*
 * The version of the latest write taken for key (0: absent). 1 when
 * known, 0 when only SQLite knows.
 */
static int
known_version(struct cmd_ctx *ctx, const char *key, size_t klen, uint64_t *v)
{
	struct cache_entry *e;
	struct kstate	   *ks;

	if ((ks = keymap_find(ctx->keys, key, klen)) != NULL &&
	    ks->last != NULL) {
		*v = ks->last_is_del ? 0 : ks->last_version;
		return 1;
	}
	if ((e = cache_peek(ctx->cache, key, klen)) != NULL) {
		*v = cache_entry_absent(ctx->cache, e) ? 0
						       : cache_entry_version(e);
		return 1;
	}
	return 0;
}

static void write_forget_key(struct cmd_ctx *, struct wreq *);

/*
 * The cache's hash of a key-value write's key, worked out once: a write
 * goes through the cache four times (three prefetch steps and the change,
 * in the pass that acknowledges it), a while apart, and its key is in a
 * line of its own, cold by then.
 */
static uint64_t
write_hash(struct cmd_ctx *ctx, struct wreq *w)
{
	/* 0: not worked out yet (or a hash of 0, worked out again). */
	if (w->khash == 0)
		w->khash = cache_key_hash(ctx->cache, w->key, w->klen);
	return w->khash;
}

/*
 * Make write w visible in the cache: pinned when acknowledged before it is
 * applied, plain when already applied. A newer version in the cache stays.
 */
static void
make_visible(struct cmd_ctx *ctx, struct wreq *w, int pinned)
{
	unsigned flags;
	int	 rc;

	if (!WREQ_IS_KV(w->type))
		return;
	if (w->reserved > 0) {
		cache_unreserve(ctx->cache, w->reserved);
		w->reserved = 0;
	}
	flags = (pinned ? CACHE_F_PINNED : 0) |
		(w->type == WREQ_KV_DEL ? CACHE_F_TOMBSTONE : 0) |
		(w->type == WREQ_KV_SET_RAW ? CACHE_F_RAW : 0);
	if (pinned && FAULT_POINT("cache-pin"))
		rc = CACHE_ENOMEM;
	else
		rc = cache_set_newer_h(ctx->cache, w->key, w->klen,
		    write_hash(ctx, w), w->value, w->vlen, w->seq,
		    ttl_left(w->expires_at), flags);
	if (rc == CACHE_OK) {
		/*
		 * The cache shows the write now and keeps it until it is
		 * applied (a pinned entry neither goes nor expires): the key
		 * state can go, and the key map holds only the writes not
		 * yet acknowledged, a group or two, rather than every write
		 * of the last apply delay.
		 */
		write_forget_key(ctx, w);
		return;
	}
	if (rc == CACHE_ESTALE)
		return;
	/*
	 * Never leave an older value behind. The key state stays until the
	 * write is applied: for the writes and transactions that read it, it
	 * is the only place that knows of it. Reads go to SQLite, which has
	 * it once applied: that is made to happen now, not after the delay.
	 */
	cache_del(ctx->cache, w->key, w->klen);
	ctx->kv_complete = 0;
	if (pinned) {
		log_warnx("cache: cannot pin a write of %zu bytes (error %d)",
		    w->klen + w->vlen, rc);
		kick_apply(ctx, w->seq);
	}
}

/* The answer of an acknowledged write, into ctx->ans. */
static void
write_answer(struct cmd_ctx *ctx, struct wreq *w, int applied)
{
	struct wbuf *a = &ctx->ans;

	if (w->resp) {
		/* The answer was decided with the write. */
		if (applied && w->status != STORE_OK)
			cmd_resp_error(ctx, a, store_err(w->status),
			    w->message ? w->message : "failed");
		else
			wbuf_add(a, w->id, w->id_len);
		return;
	}
	if (applied && w->status != STORE_OK) {
		reply_error(ctx, a, w->id, w->id_len, store_err(w->status),
		    w->message ? w->message : "failed");
		return;
	}
	reply_begin(a, w->id, w->id_len, 1);
	switch (w->type) {
	case WREQ_KV_SET:
	case WREQ_KV_SET_RAW:
		wbuf_add(a, ",\"version\":", 11);
		wbuf_add_u64(a, w->seq);
		break;
	case WREQ_KV_DEL:
		wbuf_adds(
		    a, w->deleted ? ",\"deleted\":true" : ",\"deleted\":false");
		break;
	case WREQ_EXEC:
		if (applied) {
			wbuf_adds(a, ",\"changes\":");
			wbuf_add_i64(a, w->res.changes);
			wbuf_adds(a, ",\"last_insert_rowid\":");
			wbuf_add_i64(a, w->res.last_insert_rowid);
		}
		wbuf_adds(a, ",\"seq\":");
		wbuf_add_u64(a, w->seq);
		break;
	case WREQ_TX:
		if (applied && w->results != NULL) {
			wbuf_adds(a, ",\"results\":");
			wbuf_adds(a, w->results);
		}
		wbuf_adds(a, ",\"seq\":");
		wbuf_add_u64(a, w->seq);
		break;
	}
	reply_end(a);
}

/*
 * An answer that waits for the journal alone is counted: while there are
 * some, the loop's next work is the journal thread's message, due within
 * an fdatasync, and the loop may poll for it rather than sleep (main.c).
 */
static int
journal_wait(const struct wreq *w)
{
	return w->owner != NULL && w->durability == PROTO_DUR_JOURNAL;
}

void
cmd_write_owner(struct cmd_ctx *ctx, struct wreq *w, struct slot *slot)
{
	w->owner = slot;
	if (journal_wait(w))
		ctx->journal_waits++;
}

/* w's answer no longer waits. */
static void
write_disown(struct cmd_ctx *ctx, struct wreq *w)
{
	if (journal_wait(w))
		ctx->journal_waits--;
	w->owner = NULL;
}

/*
 * Acknowledge write w: make it visible (pinned when it is not applied
 * yet) and answer its client: through its slot when it has one (and the
 * client is still there), else into out when given (an async write
 * answered at once). 0 when answering closed its connection.
 */
static int
ack_write(struct cmd_ctx *ctx, struct wreq *w, int applied, struct wbuf *out)
{
	struct slot *sl;

	if (!applied || w->status == STORE_OK)
		make_visible(ctx, w, !applied);
	w->acked = 1;
	ctx->stats->writes_acknowledged++;
	if (w->owner == NULL) {
		if (out != NULL) {
			write_answer(ctx, w, applied);
			wbuf_add(out, ctx->ans.buf, ctx->ans.len);
			wbuf_reset(&ctx->ans);
		}
		return 1;
	}
	write_answer(ctx, w, applied);
	sl = w->owner;
	write_disown(ctx, w);
	return answer_acked(ctx, sl);
}

/*
 * The memory a write holds until it is applied: its record, its struct and
 * the allocator's and its key state's share. The write queue limit counts
 * this, not the record alone, so that it bounds what it is meant to.
 */
static size_t
write_mem(const struct wreq *w)
{
	return w->rec_len + sizeof(*w) + 64;
}

/*
 * w, the latest write of its key, is pinned in the cache, applied or
 * dropped: the key map need not know of it any more, and the key's state
 * goes.
 */
static void
write_forget_key(struct cmd_ctx *ctx, struct wreq *w)
{
	struct kstate *ks = w->ks;

	if (ks == NULL)
		return;
	w->ks = NULL;
	ks->last = NULL;
	keymap_put(ctx->keys, ks);
}

/* Take write w: number it, account it, and hand it to the writer. */
static void
write_take(struct cmd_ctx *ctx, struct wreq *w)
{
	struct kstate *ks;

	if (WREQ_IS_KV(w->type)) {
		ks = keymap_get(ctx->keys, w->key, w->klen);
		if (ks->last != NULL) {
			/* Only the latest write knows its key's state. */
			((struct wreq *)ks->last)->ks = NULL;
			ks = keymap_renew(ctx->keys, ks);
		}
		ks->last = w;
		w->ks = ks;
		ks->last_version = w->seq;
		ks->last_is_del = w->type == WREQ_KV_DEL;
	}
	ctx->unapplied_bytes += write_mem(w);
	/*
	 * Half the write queue waits for SQLite: do not let it fill. Once
	 * per batch: the kick stands until the writes up to it are applied.
	 */
	if (ctx->unapplied_bytes >= ctx->write_queue_max / 2 &&
	    ctx->queue_kick <= ctx->applied_seq) {
		ctx->queue_kick = w->seq;
		kick_apply(ctx, w->seq);
	}
	ctx->stats->writes_received++;
	ctx->stats->last_seq = w->seq;
}

/*
 * Write a set or del whose state is decided. Answers into out (slot NULL,
 * returns CMD_DONE or CMD_DEFERRED) or through slot (a decided lookup;
 * *alive is then 0 when answering closed the connection).
 */
static enum cmd_result
write_kv(struct cmd_ctx *ctx, struct cmd_session *ss, struct slot *slot,
    const struct pwrite *pw, const char *id, size_t id_len, uint64_t current,
    struct wbuf *out, int *alive)
{
	struct wbuf *a = slot != NULL ? &ctx->ans : out;
	size_t	     reserve = 0;
	struct wreq *w;
	uint64_t     seq;
	int64_t	     expires_at = 0;

	*alive = 1;
	if (pw->has_if_version && current != pw->if_version) {
		reply_error(ctx, a, id, id_len, ERR_CONFLICT,
		    pw->if_version == 0 ? "key exists"
					: "version does not match");
		goto answered;
	}
	if (ctx->broken || ctx->unavailable) {
		reply_error(ctx, a, id, id_len, ERR_UNAVAILABLE,
		    "the database cannot take writes now");
		goto answered;
	}
	if (pw->dur != PROTO_DUR_COMMIT) {
		reserve = cache_entry_size(
		    pw->klen, pw->del ? 0 : pw->vlen, pw->del ? 0 : pw->ttl);
		if (cache_reserve(ctx->cache, reserve) != CACHE_OK) {
			kick_apply(ctx, ctx->seq);
			reply_error(ctx, a, id, id_len, ERR_BUSY,
			    "the cache is full of writes not yet applied");
			goto answered;
		}
	}
	seq = ++ctx->seq;
	if (pw->ttl > 0)
		expires_at = wall_ms() + (int64_t)pw->ttl * 1000;
	w = pw->del ? wreq_kv_del(seq, pw->key, pw->klen)
		    : wreq_kv_set(seq, pw->key, pw->klen, pw->value, pw->vlen,
			  expires_at);
	w->durability = (uint8_t)pw->dur;
	w->reserved = reserve;
	w->deleted = pw->del && current != 0;
	if (id != NULL)
		wreq_set_id(w, id, id_len);
	write_take(ctx, w);
	if (slot == NULL)
		ss->last_write = seq;
	else if (server_slot_conn(slot) != NULL)
		server_conn_session(server_slot_conn(slot))->last_write = seq;
	if (pw->dur == PROTO_DUR_ASYNC) {
		/*
		 * Acknowledged on receipt: answered now, visible now. To the
		 * writer first: the acknowledgement may resume the connection,
		 * whose next writes take the next sequence numbers and must
		 * reach the writer after this one.
		 */
		cmd_write_owner(ctx, w, slot);
		writer_submit(ctx->writer, w);
		*alive = ack_write(ctx, w, 0, out);
		return slot != NULL ? CMD_DEFERRED : CMD_DONE;
	}
	if (slot == NULL) {
		slot = server_slot_new(ss->conn, pw->del ? "del" : "set");
		ss->unacked++;
	}
	cmd_write_owner(ctx, w, slot);
	writer_submit(ctx->writer, w);
	return CMD_DEFERRED;

answered:
	if (slot == NULL)
		return CMD_DONE;
	*alive = answer_acked(ctx, slot);
	return CMD_DEFERRED;
}

static void lookup_done(struct rjob *job);
static int  mget_compose(struct cmd_ctx *, struct lookup *, struct rjob *);

/* Send keys to a reader; lk says what waits for the answer. */
static void
lookup_start(
    struct cmd_ctx *ctx, struct lookup *lk, struct rkey *keys, size_t nkeys)
{
	struct rjob *job = xcalloc(1, sizeof(*job));

	job->type = RJOB_LOOKUP;
	job->keys = keys;
	job->nkeys = nkeys;
	job->done = lookup_done;
	job->arg = lk;
	wbuf_init(&job->out);
	lk->ctx = ctx;
	reader_submit(ctx->reader, job);
}

static void
lookup_free(struct lookup *lk)
{
	if (lk->pw != NULL) {
		free(lk->pw->key);
		free(lk->pw->value);
		free(lk->pw);
	}
	free(lk->id);
	free(lk);
}

/*
 * Cache what a fresh lookup found (or that the key is absent), unless a
 * write of the key is not applied yet: SQLite's state is older than it,
 * and the write's acknowledgement puts the newer one in the cache. (A
 * write the cache failed to pin is acknowledged and not there: an older
 * state cached now would stay after the write is applied.)
 */
static void
lookup_fill(struct cmd_ctx *ctx, const struct rkey *k)
{
	const struct kstate *ks = keymap_find(ctx->keys, k->key, k->klen);

	if (ks != NULL && ks->last != NULL)
		return;
	if (k->found)
		cache_set(ctx->cache, k->key, k->klen, k->value, k->vlen,
		    k->version, ttl_left(k->expires_at),
		    k->raw ? CACHE_F_RAW : 0);
	else
		cache_set(ctx->cache, k->key, k->klen, NULL, 0, 0, 0,
		    CACHE_F_TOMBSTONE);
}

/* The value of key now: from the cache, else from the lookup. */
static void
add_value(struct cmd_ctx *ctx, struct wbuf *a, const struct rkey *k,
    int with_version, int *found)
{
	struct cache_entry *e = cache_peek(ctx->cache, k->key, k->klen);
	const void	   *v;
	size_t		    vlen;

	*found = 0;
	if (e != NULL) {
		if (cache_entry_absent(ctx->cache, e))
			return;
		v = cache_entry_value(e, &vlen);
		cmd_add_json_value(
		    a, v, vlen, (cache_entry_flags(e) & CACHE_F_RAW) != 0);
		if (with_version) {
			wbuf_add(a, ",\"version\":", 11);
			wbuf_add_u64(a, cache_entry_version(e));
		}
		*found = 1;
		return;
	}
	if (!k->found)
		return;
	cmd_add_json_value(a, k->value, k->vlen, k->raw);
	if (with_version) {
		wbuf_add(a, ",\"version\":", 11);
		wbuf_add_u64(a, k->version);
	}
	*found = 1;
}

/* A reader finished a lookup or a query (loop thread). */
static void
lookup_done(struct rjob *job)
{
	struct lookup	   *lk = job->arg;
	struct cmd_ctx	   *ctx = lk->ctx;
	struct wbuf	   *a = &ctx->ans;
	struct cmd_session *ss = NULL; /* read at done only when alive */
	struct conn	   *c;
	uint64_t	    current;
	size_t		    i;
	int		    stale = 0, found, alive = 0, held;

	/*
	 * The client went away: drop the answer. (At shutdown this is every
	 * lookup, and the reader pool is gone: nothing may be sent again.)
	 */
	if ((c = server_slot_conn(lk->slot)) == NULL) {
		server_slot_answer(lk->slot, "", 0);
		goto done;
	}
	/* The slot may be freed once answered: take the session now. */
	ss = server_conn_session(c);
	/* A write's lookup holds its connection's writes until it is taken. */
	held = lk->kind == LK_WRITE;
	if (lk->counted && !held)
		ss->reads--;
	if (lk->kind == LK_QUERY) {
		if (job->status == STORE_OK) {
			reply_begin(a, lk->id, lk->id_len, 1);
			wbuf_add(a, job->out.buf, job->out.len);
			reply_end(a);
		} else
			reply_error(ctx, a, lk->id, lk->id_len,
			    store_err(job->status),
			    job->message ? job->message : "query failed");
		alive = answer_slot(ctx, lk->slot);
		goto done;
	}
	if (job->status != STORE_OK) {
		reply_error(ctx, a, lk->id, lk->id_len, ERR_UNAVAILABLE,
		    job->message ? job->message : "cannot read the database");
		alive = held ? answer_acked(ctx, lk->slot)
			     : answer_slot(ctx, lk->slot);
		if (held && alive)
			ss->reads--;
		goto done;
	}
	/* Is the snapshot recent enough for the keys the cache lacks? */
	for (i = 0; i < job->nkeys; i++)
		if (cache_peek(ctx->cache, job->keys[i].key,
			job->keys[i].klen) == NULL &&
		    job->snapshot_seq < ctx->applied_seq)
			stale = 1;
	if (stale) {
		for (i = 0; i < job->nkeys; i++) {
			free(job->keys[i].value);
			job->keys[i].value = NULL;
			job->keys[i].found = 0;
		}
		job->status = STORE_OK;
		if (lk->counted && !held)
			ss->reads++;
		reader_submit(ctx->reader, job);
		return;
	}
	for (i = 0; i < job->nkeys; i++)
		if (cache_peek(ctx->cache, job->keys[i].key,
			job->keys[i].klen) == NULL)
			lookup_fill(ctx, &job->keys[i]);

	switch (lk->kind) {
	case LK_GET:
		reply_begin(a, lk->id, lk->id_len, 1);
		wbuf_add(a, ",\"value\":", 9);
		add_value(ctx, a, &job->keys[0], 1, &found);
		if (!found) {
			wbuf_reset(a);
			reply_error(ctx, a, lk->id, lk->id_len, ERR_NOT_FOUND,
			    "no such key");
		} else
			reply_end(a);
		alive = answer_slot(ctx, lk->slot);
		break;
	case LK_MGET: alive = mget_compose(ctx, lk, job); break;
	case LK_WRITE:
		if (!known_version(ctx, lk->pw->key, lk->pw->klen, &current))
			current = job->keys[0].found ? job->keys[0].version : 0;
		write_kv(ctx, ss, lk->slot, lk->pw, lk->id, lk->id_len, current,
		    NULL, &alive);
		if (alive)
			ss->reads--;
		break;
	case LK_QUERY: break;
	}
done:
	/* Writes that waited for this read may go on now. */
	if (lk->counted && alive && ss->reads == 0)
		server_conn_resume(c);
	rjob_free(job);
	lookup_free(lk);
}

static void
cmd_ping(struct cmd_ctx *ctx, struct proto_request *req, struct wbuf *out)
{
	reply_begin(out, req->id, req->id_len, 1);
	reply_end(out);
}

/*
 * What will wait for a reader job of req: its answer slot, taken now in
 * request order, and its id. Every lookup counts in the session's reads,
 * so that its next write waits: after a read, so that the read does not
 * see it; after the lookup a write needs first, so that it does not
 * overtake that write.
 */
static struct lookup *
lookup_new(struct cmd_ctx *ctx, struct cmd_session *ss,
    struct proto_request *req, enum lookup_kind kind)
{
	struct lookup *lk = xcalloc(1, sizeof(*lk));

	lk->kind = kind;
	lk->ctx = ctx;
	lk->slot = server_slot_new(ss->conn, kind == LK_GET	? "get"
					     : kind == LK_MGET	? "mget"
					     : kind == LK_QUERY ? "query"
								: "set or del");
	if (req->id != NULL) {
		lk->id = memdup(req->id, req->id_len);
		lk->id_len = req->id_len;
	}
	ss->reads++;
	lk->counted = 1;
	return lk;
}

/* A deferred lookup of one or more keys. */
static enum cmd_result
defer_lookup(struct cmd_ctx *ctx, struct cmd_session *ss,
    struct proto_request *req, enum lookup_kind kind, struct rkey *keys,
    size_t nkeys, struct pwrite *pw)
{
	struct lookup *lk = lookup_new(ctx, ss, req, kind);

	lk->pw = pw;
	lookup_start(ctx, lk, keys, nkeys);
	return CMD_DEFERRED;
}

static enum cmd_result
cmd_get(struct cmd_ctx *ctx, struct cmd_session *ss, struct proto_request *req,
    struct wbuf *out)
{
	struct cache_entry *e;
	struct rkey	   *k;
	const void	   *v;
	size_t		    vlen;

	e = cache_get(ctx->cache, req->key, req->key_len);
	if (e == NULL) {
		k = xcalloc(1, sizeof(*k));
		k->key = memdup(req->key, req->key_len);
		k->klen = req->key_len;
		return defer_lookup(ctx, ss, req, LK_GET, k, 1, NULL);
	}
	if (cache_entry_absent(ctx->cache, e)) {
		req_error(ctx, out, req, ERR_NOT_FOUND, "no such key");
		return CMD_DONE;
	}
	v = cache_entry_value(e, &vlen);
	reply_begin(out, req->id, req->id_len, 1);
	wbuf_add(out, ",\"value\":", 9);
	cmd_add_json_value(
	    out, v, vlen, (cache_entry_flags(e) & CACHE_F_RAW) != 0);
	wbuf_add(out, ",\"version\":", 11);
	wbuf_add_u64(out, cache_entry_version(e));
	reply_end(out);
	return CMD_DONE;
}

/*
 * mget: hits answer at once; when some keys miss, all of them are looked
 * up together and the answer is composed when the lookup returns (the
 * cache is read again then, so every value is as recent as can be).
 */
static enum cmd_result
cmd_mget(struct cmd_ctx *ctx, struct cmd_session *ss, struct proto_request *req,
    struct wbuf *out)
{
	struct proto_keys_iter it;
	struct cache_entry    *e;
	struct rkey	      *keys;
	const char	      *key;
	const void	      *v;
	size_t		       klen, vlen, n = 0, misses = 0, mark = out->len;
	int		       first = 1;

	reply_begin(out, req->id, req->id_len, 1);
	wbuf_add(out, ",\"values\":[", 11);
	keys = xcalloc(req->nkeys > 0 ? req->nkeys : 1, sizeof(*keys));
	proto_keys_init(&it, req);
	while (proto_keys_next(&it, &key, &klen)) {
		keys[n].key = memdup(key, klen);
		keys[n].klen = klen;
		n++;
		if (!first)
			wbuf_addc(out, ',');
		first = 0;
		e = cache_get(ctx->cache, key, klen);
		if (e == NULL) {
			misses++;
			continue;
		}
		if (cache_entry_absent(ctx->cache, e)) {
			wbuf_add(out, "null", 4);
			continue;
		}
		v = cache_entry_value(e, &vlen);
		cmd_add_json_value(
		    out, v, vlen, (cache_entry_flags(e) & CACHE_F_RAW) != 0);
	}
	if (misses == 0) {
		for (n = 0; n < req->nkeys; n++)
			free(keys[n].key);
		free(keys);
		wbuf_addc(out, ']');
		reply_end(out);
		return CMD_DONE;
	}
	out->len = mark;
	return defer_lookup(ctx, ss, req, LK_MGET, keys, n, NULL);
}

/* Compose an mget answer once its lookup is back. */
static int
mget_compose(struct cmd_ctx *ctx, struct lookup *lk, struct rjob *job)
{
	struct wbuf *a = &ctx->ans;
	size_t	     i;
	int	     found;

	reply_begin(a, lk->id, lk->id_len, 1);
	wbuf_add(a, ",\"values\":[", 11);
	for (i = 0; i < job->nkeys; i++) {
		if (i > 0)
			wbuf_addc(a, ',');
		add_value(ctx, a, &job->keys[i], 0, &found);
		if (!found)
			wbuf_add(a, "null", 4);
	}
	wbuf_addc(a, ']');
	reply_end(a);
	return answer_slot(ctx, lk->slot);
}

static enum proto_durability
durability_of(enum proto_durability asked, enum proto_durability dflt)
{
	return asked == PROTO_DUR_DEFAULT ? dflt : asked;
}

static enum cmd_result
cmd_setdel(struct cmd_ctx *ctx, struct cmd_session *ss,
    struct proto_request *req, struct wbuf *out, int del)
{
	struct pwrite pw, *copy;
	struct rkey  *k;
	uint64_t      current = 0;
	int	      known, alive;

	memset(&pw, 0, sizeof(pw));
	pw.del = del;
	pw.key = (char *)(uintptr_t)req->key;
	pw.klen = req->key_len;
	pw.value = (char *)(uintptr_t)req->value;
	pw.vlen = req->value_len;
	pw.ttl = req->ttl;
	pw.has_if_version = req->has_if_version;
	pw.if_version = req->if_version;
	pw.dur = durability_of(req->durability, ctx->dur_kv);

	/* Only del and if_version need to know the current state. */
	known = (!del && !req->has_if_version) ||
		known_version(ctx, req->key, req->key_len, &current);
	if (known)
		return write_kv(ctx, ss, NULL, &pw, req->id, req->id_len,
		    current, out, &alive);

	copy = xmalloc(sizeof(*copy));
	*copy = pw;
	copy->key = memdup(req->key, req->key_len);
	copy->value = del ? NULL : memdup(req->value, req->value_len);
	k = xcalloc(1, sizeof(*k));
	k->key = memdup(req->key, req->key_len);
	k->klen = req->key_len;
	ss->unacked++;
	return defer_lookup(ctx, ss, req, LK_WRITE, k, 1, copy);
}

/* Check the shape of a tx: an array of {"sql": string, "params": ...}. */
static const char *
tx_check(const char *tx, size_t len)
{
	json_error_t jerr;
	json_t	    *a, *st, *v;
	const char  *key, *why = NULL;
	size_t	     i;

	if ((a = json_loadb(tx, len, 0, &jerr)) == NULL)
		return "\"tx\" is not valid JSON";
	if (json_array_size(a) == 0)
		why = "\"tx\" needs at least one statement";
	json_array_foreach(a, i, st)
	{
		if (why != NULL)
			break;
		if (!json_is_object(st)) {
			why = "each statement of \"tx\" is an object";
			break;
		}
		if (!json_is_string(json_object_get(st, "sql")) ||
		    json_string_length(json_object_get(st, "sql")) == 0) {
			why = "each statement of \"tx\" needs \"sql\"";
			break;
		}
		json_object_foreach(st, key, v)
		{
			if (strcmp(key, "sql") == 0)
				continue;
			if (strcmp(key, "params") == 0 &&
			    (json_is_array(v) || json_is_object(v)))
				continue;
			why = "a statement of \"tx\" has \"sql\" and "
			      "\"params\" (an array or an object) only";
			break;
		}
	}
	json_decref(a);
	return why;
}

static enum cmd_result
cmd_exec(struct cmd_ctx *ctx, struct cmd_session *ss, struct proto_request *req,
    struct wbuf *out)
{
	enum proto_durability dur =
	    durability_of(req->durability, ctx->dur_exec);
	const char  *why;
	struct wreq *w;
	uint64_t     seq;

	if (!ctx->sql_enabled) {
		req_error(ctx, out, req, ERR_FORBIDDEN, "SQL is turned off");
		return CMD_DONE;
	}
	if (ctx->broken || ctx->unavailable) {
		req_error(ctx, out, req, ERR_UNAVAILABLE,
		    "the database cannot take writes now");
		return CMD_DONE;
	}
	if (req->tx != NULL && (why = tx_check(req->tx, req->tx_len)) != NULL) {
		req_error(ctx, out, req, ERR_BAD_REQUEST, why);
		return CMD_DONE;
	}
	seq = ++ctx->seq;
	if (req->tx != NULL)
		w = wreq_tx(seq, req->tx, req->tx_len);
	else
		w = wreq_exec(
		    seq, req->sql, req->sql_len, req->params, req->params_len);
	w->durability = (uint8_t)dur;
	if (req->id != NULL)
		wreq_set_id(w, req->id, req->id_len);
	write_take(ctx, w);
	ss->last_write = seq;
	if (dur == PROTO_DUR_ASYNC) {
		/* To the writer first, as in write_kv(). */
		writer_submit(ctx->writer, w);
		ack_write(ctx, w, 0, out);
		return CMD_DONE;
	}
	cmd_write_owner(ctx, w, server_slot_new(ss->conn, "exec"));
	ss->unacked++;
	writer_submit(ctx->writer, w);
	return CMD_DEFERRED;
}

static enum cmd_result
cmd_query(struct cmd_ctx *ctx, struct cmd_session *ss,
    struct proto_request *req, struct wbuf *out)
{
	struct lookup *lk;
	struct rjob   *job;

	if (!ctx->sql_enabled) {
		req_error(ctx, out, req, ERR_FORBIDDEN, "SQL is turned off");
		return CMD_DONE;
	}
	job = xcalloc(1, sizeof(*job));
	job->type = RJOB_QUERY;
	job->sql = memdup(req->sql, req->sql_len);
	job->sql_len = req->sql_len;
	if (req->params != NULL) {
		job->params = memdup(req->params, req->params_len);
		job->params_len = req->params_len;
	}
	wbuf_init(&job->out);
	job->done = lookup_done;
	lk = lookup_new(ctx, ss, req, LK_QUERY);
	job->arg = lk;
	reader_submit(ctx->reader, job);
	return CMD_DEFERRED;
}

static enum cmd_result
cmd_sync(struct cmd_ctx *ctx, struct cmd_session *ss, struct proto_request *req,
    struct wbuf *out)
{
	struct sync_waiter *sw;

	if (ctx->applied_seq >= ctx->seq) {
		reply_begin(out, req->id, req->id_len, 1);
		wbuf_add(out, ",\"applied_seq\":", 15);
		wbuf_add_u64(out, ctx->applied_seq);
		reply_end(out);
		return CMD_DONE;
	}
	kick_apply(ctx, ctx->seq);
	sw = xcalloc(1, sizeof(*sw));
	sw->target = ctx->seq;
	sw->slot = server_slot_new(ss->conn, "sync");
	if (req->id != NULL) {
		sw->id = memdup(req->id, req->id_len);
		sw->id_len = req->id_len;
	}
	if (ctx->syncs_tail != NULL)
		ctx->syncs_tail->next = sw;
	else
		ctx->syncs = sw;
	ctx->syncs_tail = sw;
	return CMD_DEFERRED;
}

/* The writer's, journal's and SQLite's sections of stats. */
static void
stats_more(struct cmd_ctx *ctx, struct wbuf *w)
{
	struct writer_stats  ws;
	struct journal_stats js;

	writer_get_stats(ctx->writer, &ws);
	journal_get_stats(ctx->journal, &js);
	wbuf_adds(w, ",\"groups\":{\"count\":");
	wbuf_add_u64(w, ws.groups);
	wbuf_adds(w, ",\"ops\":");
	wbuf_add_u64(w, ws.group_ops);
	wbuf_adds(w, ",\"mean_size\":");
	wbuf_add_double(w, ws.groups ? (double)ws.group_ops / ws.groups : 0);
	wbuf_adds(w, ",\"max_size\":");
	wbuf_add_u64(w, ws.group_max);
	wbuf_adds(w, "},\"write_queue\":{\"journal_ops\":");
	wbuf_add_u64(w, ws.queue_ops);
	wbuf_adds(w, ",\"journal_bytes\":");
	wbuf_add_u64(w, ws.queue_bytes);
	wbuf_adds(w, ",\"apply_backlog\":");
	wbuf_add_u64(w, ws.apply_backlog);
	wbuf_adds(w, ",\"unapplied_bytes\":");
	wbuf_add_u64(w, ctx->unapplied_bytes);
	wbuf_adds(w, ",\"limit_bytes\":");
	wbuf_add_u64(w, ctx->write_queue_max);
	wbuf_adds(w, ",\"applied_seq\":");
	wbuf_add_u64(w, ctx->applied_seq);
	wbuf_adds(w, ",\"apply_errors\":");
	wbuf_add_u64(w, ws.apply_errors);
	wbuf_adds(w, ",\"unavailable\":");
	wbuf_adds(w, ctx->unavailable ? "true" : "false");
	wbuf_adds(w, "},\"journal\":{\"segments\":");
	wbuf_add_u64(w, js.segments);
	wbuf_adds(w, ",\"bytes\":");
	wbuf_add_u64(w, js.bytes);
	wbuf_adds(w, ",\"writes\":");
	wbuf_add_u64(w, js.writes);
	wbuf_adds(w, ",\"fsyncs\":");
	wbuf_add_u64(w, js.fsyncs);
	wbuf_adds(w, ",\"fsync_us_mean\":");
	wbuf_add_u64(w, js.fsyncs ? js.fsync_ns_total / js.fsyncs / 1000 : 0);
	wbuf_adds(w, ",\"fsync_us_max\":");
	wbuf_add_u64(w, js.fsync_ns_max / 1000);
	wbuf_adds(w, ",\"fsync_us_last\":");
	wbuf_add_u64(w, js.fsync_ns_last / 1000);
	wbuf_adds(w, ",\"segments_deleted\":");
	wbuf_add_u64(w, js.segments_deleted);
	wbuf_adds(w, ",\"thread_cpu\":");
	if (ws.journal_cpu >= 0)
		wbuf_add_u64(w, (uint64_t)ws.journal_cpu);
	else
		wbuf_adds(w, "null");
	wbuf_adds(w, "},\"sqlite\":{\"transactions\":");
	wbuf_add_u64(w, ws.transactions);
	wbuf_adds(w, ",\"commits\":");
	wbuf_add_u64(w, ws.sqlite.commits);
	wbuf_adds(w, ",\"rollbacks\":");
	wbuf_add_u64(w, ws.sqlite.rollbacks);
	wbuf_adds(w, ",\"busy_retries\":");
	wbuf_add_u64(w, ws.sqlite.busy_retries);
	wbuf_adds(w, ",\"checkpoints\":");
	wbuf_add_u64(w, ws.sqlite.checkpoints);
	wbuf_adds(w, ",\"apply_retries\":");
	wbuf_add_u64(w, ws.apply_retries);
	wbuf_adds(w, ",\"expired_rows_purged\":");
	wbuf_add_u64(w, ws.purged);
	wbuf_adds(w, ",\"writes_coalesced\":");
	wbuf_add_u64(w, ws.coalesced);
	wbuf_adds(w, ",\"reader_backlog\":");
	wbuf_add_u64(w, reader_backlog(ctx->reader));
	wbuf_addc(w, '}');
}

static void
cmd_stats(struct cmd_ctx *ctx, struct proto_request *req, struct wbuf *out)
{
	reply_begin(out, req->id, req->id_len, 1);
	wbuf_add(out, ",\"stats\":", 9);
	stats_render(ctx->stats, ctx->cache, out);
	/* Open the object again for the write path's sections. */
	out->len--;
	stats_more(ctx, out);
	wbuf_addc(out, '}');
	reply_end(out);
}

static int
op_is_read(enum proto_op op)
{
	return op == PROTO_OP_GET || op == PROTO_OP_MGET ||
	       op == PROTO_OP_QUERY;
}

static int
op_is_write(enum proto_op op)
{
	return op == PROTO_OP_SET || op == PROTO_OP_DEL || op == PROTO_OP_EXEC;
}

enum cmd_result
cmd_line(struct cmd_ctx *ctx, struct cmd_session *ss, char *line, size_t len,
    struct wbuf *out)
{
	struct proto_request req;
	enum proto_status    st;
	const char	    *msg;
	int full = ctx->unapplied_bytes >= ctx->write_queue_max;

	/* The line may have to wait: parse a copy, keep the original. */
	if (ss->unacked > 0 || full || ss->reads > 0 ||
	    ss->last_write > ctx->applied_seq) {
		wbuf_reset(&ctx->scratch);
		wbuf_add(&ctx->scratch, line, len);
		line = ctx->scratch.buf;
	}
	st = proto_parse(line, len, &ctx->limits, &req, &msg);
	if (st != PROTO_OK) {
		ctx->stats->requests++;
		req_error(ctx, out, &req,
		    st == PROTO_TOO_LARGE ? ERR_TOO_LARGE : ERR_BAD_REQUEST,
		    msg);
		return CMD_DONE;
	}
	if (ss->unacked > 0 && op_is_read(req.op))
		return CMD_WAIT;
	if (req.op == PROTO_OP_QUERY && ss->last_write > ctx->applied_seq) {
		if (!ss->apply_wait) {
			TAILQ_INSERT_TAIL(&ctx->apply_waiters, ss, aentry);
			ss->apply_wait = 1;
			kick_apply(ctx, ss->last_write);
		}
		return CMD_WAIT;
	}
	if (ss->reads > 0 && op_is_write(req.op))
		return CMD_WAIT;
	if (full && op_is_write(req.op)) {
		if (!ss->queued) {
			TAILQ_INSERT_TAIL(&ctx->waiters, ss, wentry);
			kick_apply(ctx, ctx->seq);
			ss->queued = 1;
		}
		return CMD_WAIT;
	}
	ctx->stats->requests++;
	ctx->stats->ops[req.op]++;
	ctx->last_op = proto_op_name(req.op);
	if (ss->role < (op_is_write(req.op) || req.op == PROTO_OP_SYNC
			       ? ROLE_WRITE
			       : ROLE_READ)) {
		char why[96];

		snprintf(why, sizeof(why), "uid %lu may only read", ss->uid);
		req_error(ctx, out, &req, ERR_FORBIDDEN, why);
		return CMD_DONE;
	}
	switch (req.op) {
	case PROTO_OP_PING: cmd_ping(ctx, &req, out); return CMD_DONE;
	case PROTO_OP_GET: return cmd_get(ctx, ss, &req, out);
	case PROTO_OP_MGET: return cmd_mget(ctx, ss, &req, out);
	case PROTO_OP_SET: return cmd_setdel(ctx, ss, &req, out, 0);
	case PROTO_OP_DEL: return cmd_setdel(ctx, ss, &req, out, 1);
	case PROTO_OP_EXEC: return cmd_exec(ctx, ss, &req, out);
	case PROTO_OP_QUERY: return cmd_query(ctx, ss, &req, out);
	case PROTO_OP_SYNC: return cmd_sync(ctx, ss, &req, out);
	case PROTO_OP_STATS: cmd_stats(ctx, &req, out); return CMD_DONE;
	default:
		req_error(ctx, out, &req, ERR_INTERNAL, "unhandled op");
		return CMD_DONE;
	}
}

/*
 * A journaled group of at most this many writes has its answers sent
 * connection by connection, each as soon as the connection has no write
 * left unacknowledged, rather than all after the group: with few writes
 * a group, each is a client waiting, and the first answers go out a
 * group's cache work sooner (SET -P 1 journal, 50 clients, groups of
 * about 17: 1-4% more req/s in 5 alternating rounds). A larger group's
 * go together: sending them in the middle of the group's work cost 6% at
 * SET -P 16 (groups of about 370).
 */
#define CMD_SEND_NOW_MAX 64

/*
 * Prefetching for a pass over a group's writes: the three steps of the
 * cache lookup of each key-value write start 3, 2 and 1 times
 * PREFETCH_AHEAD writes ahead of the one being handled. In a group of a
 * few hundred writes to keys spread over a large cache, a lookup is a
 * chain of misses; started early, those of several writes overlap.
 */
#define PREFETCH_AHEAD 4
#define PREFETCH_STEPS 3

struct prefetch {
	struct wreq *at[PREFETCH_STEPS]; /* where each step is */
	int	     applied;		 /* the pass of cmd_applied */
};

/*
 * Whether a pass over a group acknowledges w (the cache work a prefetch
 * is for): once journaled, every write not answered yet but commit ones;
 * once applied, every write not answered yet.
 */
static int
acks_in_pass(const struct wreq *w, int applied)
{
	return !w->acked && (applied || w->durability != PROTO_DUR_COMMIT);
}

static void
prefetch_advance(struct cmd_ctx *ctx, struct prefetch *pf, int step)
{
	struct wreq *w = pf->at[step];

	if (w == NULL)
		return;
	if (WREQ_IS_KV(w->type) && acks_in_pass(w, pf->applied))
		cache_prefetch_h(
		    ctx->cache, w->key, w->klen, write_hash(ctx, w), step);
	pf->at[step] = TAILQ_NEXT(w, entry);
}

static void
prefetch_start(
    struct cmd_ctx *ctx, struct prefetch *pf, struct wreq *first, int applied)
{
	int i, step;

	pf->applied = applied;
	for (step = 0; step < PREFETCH_STEPS; step++) {
		pf->at[step] = first;
		for (i = 0; i < (PREFETCH_STEPS - step) * PREFETCH_AHEAD; i++)
			prefetch_advance(ctx, pf, step);
	}
}

/* Before handling the next write. */
static void
prefetch_next(struct cmd_ctx *ctx, struct prefetch *pf)
{
	int step;

	for (step = 0; step < PREFETCH_STEPS; step++)
		prefetch_advance(ctx, pf, step);
}

/* The group's records are in the journal: acknowledge journal writes. */
void
cmd_journaled(void *arg, struct wgroup *g)
{
	struct cmd_ctx *ctx = arg;
	struct prefetch pf;
	struct wreq    *w;

	ctx->send_now = g->n <= CMD_SEND_NOW_MAX;
	prefetch_start(ctx, &pf, TAILQ_FIRST(&g->reqs), 0);
	TAILQ_FOREACH(w, &g->reqs, entry)
	{
		prefetch_next(ctx, &pf);
		if (acks_in_pass(w, 0))
			ack_write(ctx, w, 0, NULL);
	}
	ctx->send_now = 0;
	/*
	 * The group's answers go now, not after the clients' input that
	 * waits in this turn of the loop: the sooner the clients have them,
	 * the sooner their next writes join a group. (A small group's went
	 * already, each connection's once its last write was acknowledged.)
	 */
	if (ctx->flush != NULL)
		ctx->flush(ctx->flush_arg);
}

/*
 * The group is applied: answer commit writes, unpin, free. The pins of the
 * writes acknowledged before (in the cache since) go all at once, by seq:
 * writes are applied in seq order.
 */
void
cmd_applied(void *arg, struct wgroup *g)
{
	struct cmd_ctx	   *ctx = arg;
	struct sync_waiter *sw;
	struct cmd_session *ss;
	struct prefetch	    pf;
	struct wreq	   *w;

	if (g->last_seq > ctx->applied_seq)
		ctx->applied_seq = g->last_seq;
	prefetch_start(ctx, &pf, TAILQ_FIRST(&g->reqs), 1);
	TAILQ_FOREACH(w, &g->reqs, entry)
	{
		prefetch_next(ctx, &pf);
		if (acks_in_pass(w, 1))
			ack_write(ctx, w, 1, NULL);
		if (w->reserved > 0) {
			cache_unreserve(ctx->cache, w->reserved);
			w->reserved = 0;
		}
		if (w->type == WREQ_KV_DEL)
			ctx->del_seq[keymap_hash(w->key, w->klen) &
				     (CMD_DEL_SLOTS - 1)] = w->seq;
		/*
		 * The latest write of its key: none is pending any more (writes
		 * are applied in journal order).
		 */
		write_forget_key(ctx, w);
		ctx->unapplied_bytes -= write_mem(w);
	}
	writer_group_free(g);
	cache_unpin_upto(ctx->cache, ctx->applied_seq);

	while ((sw = ctx->syncs) != NULL && sw->target <= ctx->applied_seq) {
		ctx->syncs = sw->next;
		if (ctx->syncs == NULL)
			ctx->syncs_tail = NULL;
		reply_begin(&ctx->ans, sw->id, sw->id_len, 1);
		wbuf_add(&ctx->ans, ",\"applied_seq\":", 15);
		wbuf_add_u64(&ctx->ans, ctx->applied_seq);
		reply_end(&ctx->ans);
		answer_slot(ctx, sw->slot);
		free(sw->id);
		free(sw);
	}
	/* Queries waiting for their connection's writes to be applied. */
	{
		struct cmd_session *next;

		for (ss = TAILQ_FIRST(&ctx->apply_waiters); ss != NULL;
		     ss = next) {
			next = TAILQ_NEXT(ss, aentry);
			if (ss->last_write > ctx->applied_seq)
				continue;
			TAILQ_REMOVE(&ctx->apply_waiters, ss, aentry);
			ss->apply_wait = 0;
			server_conn_resume(ss->conn);
		}
	}
	/* Room in the write queue: let waiting writers go on, in order. */
	while (ctx->unapplied_bytes < ctx->write_queue_max &&
	       (ss = TAILQ_FIRST(&ctx->waiters)) != NULL) {
		TAILQ_REMOVE(&ctx->waiters, ss, wentry);
		ss->queued = 0;
		server_conn_resume(ss->conn);
	}
}

void
cmd_unavailable(void *arg, int on, const char *why)
{
	struct cmd_ctx *ctx = arg;

	ctx->unavailable = on;
	if (on)
		log_warnx("SQLite cannot take writes (%s): answering "
			  "unavailable to new writes",
		    why ? why : "?");
	else
		log_info("SQLite takes writes again");
}

/*
 * After a journal failure, at the stop: a write that was never
 * acknowledged. Its outcome is unknown (it may be on the disk), so it gets
 * no answer: its connection is closed; only its slot is freed.
 */
void
cmd_dropped(void *arg, struct wreq *w)
{
	struct cmd_ctx *ctx = arg;

	/* Freed unapplied: its key's state must not point at it. */
	write_forget_key(ctx, w);
	if (w->owner != NULL)
		server_slot_drop(w->owner);
	write_disown(ctx, w);
}

void
cmd_broken(void *arg, const char *why)
{
	struct cmd_ctx *ctx = arg;

	ctx->broken = 1;
	log_warnx("the journal failed (%s): stopping for a restart", why);
	if (ctx->on_broken != NULL)
		ctx->on_broken(ctx->on_broken_arg);
}

int
cmd_deleted_since(
    const struct cmd_ctx *ctx, const char *key, size_t klen, uint64_t seq)
{
	return ctx->del_seq[keymap_hash(key, klen) & (CMD_DEL_SLOTS - 1)] > seq;
}

void
cmd_init(struct cmd_ctx *ctx)
{
	TAILQ_INIT(&ctx->waiters);
	TAILQ_INIT(&ctx->apply_waiters);
	wbuf_init(&ctx->scratch);
	wbuf_init(&ctx->ans);
	ctx->keys = keymap_create();
}

void
cmd_free(struct cmd_ctx *ctx)
{
	struct sync_waiter *sw;

	while ((sw = ctx->syncs) != NULL) {
		ctx->syncs = sw->next;
		server_slot_answer(sw->slot, "", 0);
		free(sw->id);
		free(sw);
	}
	keymap_free(ctx->keys);
	rcmd_free(ctx->resp);
	wbuf_free(&ctx->scratch);
	wbuf_free(&ctx->ans);
}

void
cmd_session_init(struct cmd_ctx *ctx, struct cmd_session *ss, struct conn *c)
{
	memset(ss, 0, sizeof(*ss));
	ss->conn = c;
	ss->role = ROLE_WRITE;
}

void
cmd_session_close(struct cmd_ctx *ctx, struct cmd_session *ss)
{
	if (ss->queued) {
		TAILQ_REMOVE(&ctx->waiters, ss, wentry);
		ss->queued = 0;
	}
	if (ss->apply_wait) {
		TAILQ_REMOVE(&ctx->apply_waiters, ss, aentry);
		ss->apply_wait = 0;
	}
	free(ss->name);
	ss->name = NULL;
	rcmd_session_close(ss);
}

/* The write path, for rcmd.c (see cmd.h). */
void
cmd_write_take(struct cmd_ctx *ctx, struct wreq *w)
{
	write_take(ctx, w);
}

void
cmd_ack_write(
    struct cmd_ctx *ctx, struct wreq *w, int applied, struct wbuf *out)
{
	(void)ack_write(ctx, w, applied, out);
}

void
cmd_kick_apply(struct cmd_ctx *ctx, uint64_t seq)
{
	kick_apply(ctx, seq);
}

void
cmd_input_done(struct cmd_ctx *ctx)
{
	if (ctx->writer != NULL)
		writer_hand_over(ctx->writer);
}

int
cmd_answer_slot(struct cmd_ctx *ctx, struct slot *sl)
{
	return answer_slot(ctx, sl);
}

void
cmd_lookup_fill(struct cmd_ctx *ctx, const struct rkey *k)
{
	lookup_fill(ctx, k);
}

/*
 * rcmd.c -- the commands of the RESP protocol.
 *
 * A Redis client sees the key-value store of protocol v1: the same cache,
 * the same keymap of writes in flight, the same journal, group commit and
 * acknowledgement (cmd.c). Values set here are bytes, kept as they are
 * (the cache entry carries CACHE_F_RAW, the journal record is KV_SET_RAW,
 * SQLite holds a BLOB); values set as JSON read back here as their JSON
 * text.
 *
 * Every command runs through rx_run(): its handler reads the state of the
 * keys it needs with rx_state(), composes its reply, and lists the writes
 * it decided (rx_set, rx_del). The writes are then taken in one go
 * (rx_commit), each with the next sequence number, and the reply goes out
 * when the last one is acknowledged (or at once for async).
 *
 * State. A read (GET, MGET, EXISTS, TTL...) sees what is visible: the
 * cache. A read-modify-write (INCR, APPEND, SET NX/XX/GET, GETDEL,
 * EXPIRE...) decides on the latest write taken for the key, in sequence
 * order: the keymap knows the keys with writes not yet applied (its last
 * write's value), the cache the rest it holds. When neither knows a key,
 * the command is set aside, every key it names is looked up by a reader
 * thread, and the whole command runs again when the answer is back: the
 * keymap and the cache are asked first again, so a write that another
 * client made meanwhile is seen, and the lookup's answer is used only for
 * what they still do not know. Decisions are thus atomic with respect to
 * every other client's writes.
 *
 * Ordering on a connection follows cmd.c: a read waits for the
 * connection's unacknowledged writes; a write waits for its reads still in
 * a reader; a command set aside for a lookup counts as both, so nothing
 * sent after it on its connection overtakes it.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "access.h"
#include "cache.h"
#include "cmd.h"
#include "crashpoint.h"
#include "keymap.h"
#include "monotime.h"
#include "rcmd.h"
#include "reader.h"
#include "server.h"
#include "stash-protocol.h"
#include "wbuf.h"
#include "writer.h"
#include "wreq.h"
#include "xmalloc.h"

/* The Redis version announced to clients that look at it. */
#define RCMD_REDIS_VERSION "7.0.0"

#define RC_READ	 0x01 /* waits for the connection's unacked writes */
#define RC_WRITE 0x02 /* may write: waits for reads and room */
#define RC_COUNT 0x04 /* needs the number of keys in SQLite */

struct rx;

struct rdef {
	const char *name;
	int	    arity; /* > 0: exactly; < 0: at least -arity */
	int	    flags;
	int	    first, last, step; /* key arguments; last -1: to the end */
	void (*fn)(struct rx *);
	const char *cflags; /* for COMMAND */
};

/* A value as a command sees it. */
struct rval {
	int	    exists;
	const char *v;
	size_t	    vlen;
	int	    raw;
	int64_t	    expires_at; /* Unix milliseconds, 0: never */
};

/* A write a command decided. */
struct rwrite {
	int	    del;
	int	    raw;
	const char *key;
	size_t	    klen;
	const char *v;
	size_t	    vlen;
	int64_t	    expires_at;
	size_t	    reserved;
};

struct rcmd {
	struct wbuf   reply; /* of a command run again after a lookup */
	struct wbuf   val;   /* a value built by a command */
	struct rwrite w[RESP_ARGS_CAP];
	size_t	      nw;
};

/* One run of one command. */
struct rx {
	struct cmd_ctx	      *ctx;
	struct cmd_session    *ss;
	struct rcmd	      *r;
	const struct rdef     *def;
	size_t		       argc;
	const struct resp_arg *argv;
	struct rjob	      *job; /* a lookup's answer, on the second run */
	struct wbuf	      *out;
	size_t		       mark; /* where the reply starts in out */
	int		       failed;
	int		       unknown; /* a key only SQLite knows */
	struct rtx	      *tx;	/* the transaction it runs in */
};

/* A command set aside for a reader. */
struct rlookup {
	struct cmd_ctx	  *ctx;
	struct slot	  *slot;
	const struct rdef *def;
	int		   write;
	size_t		   argc;
	struct resp_arg	  *argv;
	char		  *bytes;
};

#define RTX_CMDS_MAX  4096		 /* commands a transaction holds */
#define RTX_BYTES_MAX (16 * 1024 * 1024) /* and their bytes */

/* A command queued after MULTI: a copy of its arguments. */
struct rtxcmd {
	const struct rdef *def;
	size_t		   argc;
	struct resp_arg	  *argv;
	char		  *bytes;
};

/* A key WATCH noted: its state as rx_stamp() gives it, and when. */
struct rwatched {
	char	*key;
	size_t	 klen;
	int	 exists;
	uint64_t version;
	uint64_t seq; /* the latest write taken then */
};

struct rwatch {
	struct rwatched *k;
	size_t		 n, cap;
};

struct rtx {
	struct cmd_ctx *ctx;
	struct rwatch  *watch; /* WATCH's keys, taken at EXEC */
	struct rtxcmd  *cmds;
	size_t		n, cap, bytes;
	int		dirty;	/* a command could not be queued */
	int		writes; /* it holds a write command */
	/* While it runs: the writes decided so far, and their copies. */
	struct rwrite *st;
	char	     **own;
	size_t	       nst, capst;
};

static const struct rdef *rdef_find(const char *, size_t);
static void		  rwatch_free(struct rwatch *);
static int rx_stamp(struct cmd_ctx *, const struct rjob *, const char *, size_t,
    int, int *, uint64_t *);
static const struct rwrite *rtx_staged(
    const struct rtx *, const char *, size_t);
static size_t rdef_count(void);
static void   rx_commands(struct rx *, const char *, size_t);

static struct rcmd *
rcmd_get(struct cmd_ctx *ctx)
{
	if (ctx->resp == NULL) {
		ctx->resp = xcalloc(1, sizeof(*ctx->resp));
		wbuf_init(&ctx->resp->reply);
		wbuf_init(&ctx->resp->val);
	}
	return ctx->resp;
}

void
rcmd_free(struct rcmd *r)
{
	if (r == NULL)
		return;
	wbuf_free(&r->reply);
	wbuf_free(&r->val);
	free(r);
}

/* Replies. */

static void
r_simple(struct wbuf *o, const char *s)
{
	wbuf_addc(o, '+');
	wbuf_adds(o, s);
	wbuf_add(o, "\r\n", 2);
}

static void
r_int(struct wbuf *o, int64_t v)
{
	wbuf_addc(o, ':');
	wbuf_add_i64(o, v);
	wbuf_add(o, "\r\n", 2);
}

static void
r_bulk(struct wbuf *o, const void *p, size_t n)
{
	wbuf_addc(o, '$');
	wbuf_add_u64(o, n);
	wbuf_add(o, "\r\n", 2);
	wbuf_add(o, p, n);
	wbuf_add(o, "\r\n", 2);
}

static void
r_bulks(struct wbuf *o, const char *s)
{
	r_bulk(o, s, strlen(s));
}

static void
r_array(struct wbuf *o, size_t n)
{
	wbuf_addc(o, '*');
	wbuf_add_u64(o, n);
	wbuf_add(o, "\r\n", 2);
}

static void
r_nil(struct rx *x)
{
	if (x->ss->resp3)
		wbuf_add(x->out, "_\r\n", 3);
	else
		wbuf_add(x->out, "$-1\r\n", 5);
}

/* A map of n pairs: a RESP3 map, or a flat array in RESP2. */
static void
r_map(struct rx *x, size_t n)
{
	if (x->ss->resp3) {
		wbuf_addc(x->out, '%');
		wbuf_add_u64(x->out, n);
		wbuf_add(x->out, "\r\n", 2);
	} else
		r_array(x->out, 2 * n);
}

/* The command's reply is an error: drop what it composed, and its writes. */
static void
rx_error(struct rx *x, enum stats_err code, const char *msg)
{
	x->out->len = x->mark;
	x->r->nw = 0;
	x->failed = 1;
	cmd_resp_error(x->ctx, x->out, code, msg);
}

/* Redis's words for a wrong number of arguments to command name. */
static const char *
arity_text(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "wrong number of arguments for '%s' command", name);
	return buf;
}

static void
rx_syntax(struct rx *x)
{
	rx_error(x, ERR_BAD_REQUEST, "syntax error");
}

static int
arg_is(const struct resp_arg *a, const char *s)
{
	return a->len == strlen(s) && strncasecmp(a->p, s, a->len) == 0;
}

/*
 * A decimal integer, as Redis reads one: no spaces, no '+', no leading
 * zero ("0" itself aside: "01" and "-0" are not integers).
 */
static int
parse_i64(const char *p, size_t n, int64_t *out)
{
	uint64_t v = 0, lim;
	size_t	 i = 0;
	int	 neg = 0;

	if (n == 0 || n > 20)
		return -1;
	if (n == 1 && p[0] == '0') {
		*out = 0;
		return 0;
	}
	if (p[0] == '-') {
		neg = 1;
		if (++i == n)
			return -1;
	}
	if (p[i] == '0')
		return -1;
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		if (v > (lim - (uint64_t)(p[i] - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	if (neg)
		*out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	else
		*out = (int64_t)v;
	return 0;
}

static int
arg_i64(struct rx *x, size_t i, int64_t *v)
{
	if (parse_i64(x->argv[i].p, x->argv[i].len, v) == -1) {
		rx_error(x, ERR_BAD_REQUEST,
		    "value is not an integer or out of range");
		return -1;
	}
	return 0;
}

/* Order of a lookup's keys: by length, then bytes. */
static int
rkey_cmp(const void *a, const void *b)
{
	const struct rkey *x = a, *y = b;

	if (x->klen != y->klen)
		return x->klen < y->klen ? -1 : 1;
	return memcmp(x->key, y->key, x->klen);
}

/*
 * Sort a lookup's keys and drop the repeated ones, so that job_key()
 * finds one in log time (a transaction may name thousands).
 */
static void
job_sort(struct rjob *job)
{
	size_t i, n = 0;

	if (job->nkeys < 2)
		return;
	qsort(job->keys, job->nkeys, sizeof(*job->keys), rkey_cmp);
	for (i = 0; i < job->nkeys; i++) {
		if (n > 0 && rkey_cmp(&job->keys[n - 1], &job->keys[i]) == 0) {
			free(job->keys[i].key);
			continue;
		}
		job->keys[n++] = job->keys[i];
	}
	job->nkeys = n;
}

/* The job's answer for key, NULL when it has none (keys sorted). */
static const struct rkey *
job_key(const struct rjob *job, const char *key, size_t klen)
{
	struct rkey want;

	if (job == NULL || job->type != RJOB_LOOKUP || job->nkeys == 0)
		return NULL;
	want.key = (char *)(uintptr_t)key;
	want.klen = klen;
	return bsearch(
	    &want, job->keys, job->nkeys, sizeof(*job->keys), rkey_cmp);
}

/* Does the cache know every key? (Then a miss is an absent key.) */
static int
rx_complete(struct cmd_ctx *ctx)
{
	struct cache_stats cs;

	if (!ctx->kv_complete)
		return 0;
	cache_get_stats(ctx->cache, &cs);
	if (cs.evictions > 0) {
		ctx->kv_complete = 0;
		return 0;
	}
	return 1;
}

/*
 * The state of the key in argument ai: what is visible (for_write 0), or
 * the latest write taken (for_write 1). 0 when only SQLite knows: the
 * command will run again after a lookup.
 */
static int
rx_state(struct rx *x, size_t ai, int for_write, struct rval *rv)
{
	const char	   *key = x->argv[ai].p;
	size_t		    klen = x->argv[ai].len;
	struct cmd_ctx	   *ctx = x->ctx;
	struct cache_entry *e;
	const struct rkey  *k;
	struct kstate	   *ks;
	struct wreq	   *w;

	memset(rv, 0, sizeof(*rv));
	if (x->tx != NULL) {
		/* In EXEC: its own earlier writes first. */
		const struct rwrite *st = rtx_staged(x->tx, key, klen);

		if (st != NULL) {
			if (st->del || (st->expires_at != 0 &&
					   st->expires_at <= wall_ms()))
				return 1;
			rv->exists = 1;
			rv->v = st->v;
			rv->vlen = st->vlen;
			rv->raw = st->raw;
			rv->expires_at = st->expires_at;
			return 1;
		}
		/*
		 * A transaction that writes is answered once its last write
		 * is durable, and with it every write taken before: its
		 * reads may see them all, as its writes do.
		 */
		if (x->tx->writes)
			for_write = 1;
	}
	if (for_write && (ks = keymap_find(ctx->keys, key, klen)) != NULL &&
	    ks->last != NULL) {
		w = ks->last;
		if (w->type == WREQ_KV_DEL ||
		    (w->expires_at != 0 && w->expires_at <= wall_ms()))
			return 1;
		rv->exists = 1;
		rv->v = w->value;
		rv->vlen = w->vlen;
		rv->raw = w->type == WREQ_KV_SET_RAW;
		rv->expires_at = w->expires_at;
		return 1;
	}
	e = for_write ? cache_peek(ctx->cache, key, klen)
		      : cache_get(ctx->cache, key, klen);
	if (e != NULL) {
		if (cache_entry_absent(ctx->cache, e))
			return 1;
		rv->exists = 1;
		rv->v = cache_entry_value(e, &rv->vlen);
		rv->raw = (cache_entry_flags(e) & CACHE_F_RAW) != 0;
		rv->expires_at =
		    (int64_t)cache_entry_expires(ctx->cache, e); /* wall ms */
		return 1;
	}
	if (rx_complete(ctx))
		return 1; /* not in the cache: not anywhere */
	if ((k = job_key(x->job, key, klen)) != NULL) {
		if (k->found &&
		    (k->expires_at == 0 || k->expires_at > wall_ms())) {
			rv->exists = 1;
			rv->v = k->value;
			rv->vlen = k->vlen;
			rv->raw = k->raw;
			rv->expires_at = k->expires_at;
		}
		return 1;
	}
	x->unknown = 1;
	return 0;
}

static struct rwrite *
rx_write(struct rx *x, size_t ai)
{
	struct rwrite *w = &x->r->w[x->r->nw++];

	memset(w, 0, sizeof(*w));
	w->key = x->argv[ai].p;
	w->klen = x->argv[ai].len;
	return w;
}

static void
rx_del(struct rx *x, size_t ai)
{
	rx_write(x, ai)->del = 1;
}

/*
 * Set the key of argument ai to v (bytes when raw, else JSON text). An
 * expiry now or past (SET or GETEX with an EXAT gone by) sets a key that
 * is gone at once: it is deleted.
 */
static void
rx_set(struct rx *x, size_t ai, const char *v, size_t vlen, int raw,
    int64_t expires_at)
{
	struct rwrite *w;

	if (expires_at != 0 && expires_at <= wall_ms()) {
		rx_del(x, ai);
		return;
	}
	w = rx_write(x, ai);
	w->v = v;
	w->vlen = vlen;
	w->raw = raw;
	w->expires_at = expires_at;
}

/* Keep a copy of a value read from the cache before the cache changes. */
static const char *
rx_keep(struct rx *x, const char *v, size_t n)
{
	wbuf_reset(&x->r->val);
	wbuf_add(&x->r->val, v, n);
	return x->r->val.buf != NULL ? x->r->val.buf : "";
}

/* Connection commands. */

static void
h_ping(struct rx *x)
{
	if (x->argc == 2)
		r_bulk(x->out, x->argv[1].p, x->argv[1].len);
	else if (x->argc == 1)
		r_simple(x->out, "PONG");
	else
		rx_error(x, ERR_BAD_REQUEST,
		    "wrong number of arguments for 'ping' command");
}

static void
h_echo(struct rx *x)
{
	r_bulk(x->out, x->argv[1].p, x->argv[1].len);
}

static void
h_quit(struct rx *x)
{
	r_simple(x->out, "OK");
	x->ss->quit = 1;
}

/*
 * WATCH key...: note each key's state (its latest write's sequence
 * number, or absent); EXEC runs only if none changed since. A key only
 * SQLite knows is looked up first (the handler runs again with x->job).
 */
#define RWATCH_MAX 4096 /* keys a connection watches */

static void
h_watch(struct rx *x)
{
	struct rwatch	*wa;
	struct rwatched *k;
	int		 exists;
	uint64_t	 version;
	size_t		 i;

	for (i = 1; i < x->argc; i++)
		if (!rx_stamp(x->ctx, x->job, x->argv[i].p, x->argv[i].len, 0,
			&exists, &version))
			x->unknown = 1;
	if (x->unknown)
		return; /* looked up, then run again */
	if ((wa = x->ss->watch) == NULL)
		wa = x->ss->watch = xcalloc(1, sizeof(*wa));
	if (wa->n + x->argc - 1 > RWATCH_MAX) {
		rx_error(x, ERR_BAD_REQUEST,
		    "a connection watches at most 4096 keys");
		return;
	}
	for (i = 1; i < x->argc; i++) {
		if (wa->n == wa->cap) {
			wa->cap = wa->cap == 0 ? 8 : wa->cap * 2;
			wa->k = xreallocarray(wa->k, wa->cap, sizeof(*wa->k));
		}
		k = &wa->k[wa->n++];
		k->klen = x->argv[i].len;
		k->key = xmalloc(k->klen);
		memcpy(k->key, x->argv[i].p, k->klen);
		rx_stamp(x->ctx, x->job, k->key, k->klen, 0, &k->exists,
		    &k->version);
		k->seq = x->ctx->seq;
	}
	r_simple(x->out, "OK");
}

static void
h_unwatch(struct rx *x)
{
	rwatch_free(x->ss->watch);
	x->ss->watch = NULL;
	r_simple(x->out, "OK");
}

static void
h_select(struct rx *x)
{
	int64_t db;

	if (arg_i64(x, 1, &db) == -1)
		return;
	if (db != 0)
		rx_error(x, ERR_BAD_REQUEST,
		    "DB index is out of range (stashd has one database, 0)");
	else
		r_simple(x->out, "OK");
}

static void
set_name(struct rx *x, const struct resp_arg *a)
{
	size_t i;

	for (i = 0; i < a->len; i++)
		if (a->p[i] <= ' ' || a->p[i] > '~') {
			rx_error(x, ERR_BAD_REQUEST,
			    "Client names cannot contain spaces, newlines or "
			    "special characters.");
			return;
		}
	free(x->ss->name);
	x->ss->name = NULL;
	if (a->len > 0) {
		x->ss->name = xmalloc(a->len + 1);
		memcpy(x->ss->name, a->p, a->len);
		x->ss->name[a->len] = '\0';
	}
}

static void
h_hello(struct rx *x)
{
	int64_t proto = x->ss->resp3 ? 3 : 2;
	size_t	i = 1;

	if (x->argc >= 2) {
		if (parse_i64(x->argv[1].p, x->argv[1].len, &proto) == -1) {
			rx_error(x, ERR_BAD_REQUEST,
			    "Protocol version is not an integer or out of "
			    "range");
			return;
		}
		if (proto != 2 && proto != 3) {
			x->out->len = x->mark;
			x->failed = 1;
			x->ctx->stats->errors[ERR_BAD_REQUEST]++;
			wbuf_adds(x->out, "-NOPROTO unsupported protocol "
					  "version\r\n");
			return;
		}
		i = 2;
	}
	for (; i < x->argc; i++) {
		if (arg_is(&x->argv[i], "SETNAME") && i + 1 < x->argc) {
			set_name(x, &x->argv[++i]);
			if (x->failed)
				return;
		} else if (arg_is(&x->argv[i], "AUTH") && i + 2 < x->argc) {
			/* Access is by the peer's credentials. */
			i += 2;
		} else {
			rx_syntax(x);
			return;
		}
	}
	x->ss->resp3 = proto == 3;
	r_map(x, 7);
	r_bulks(x->out, "server");
	r_bulks(x->out, "redis");
	r_bulks(x->out, "version");
	r_bulks(x->out, RCMD_REDIS_VERSION);
	r_bulks(x->out, "proto");
	r_int(x->out, proto);
	r_bulks(x->out, "id");
	r_int(x->out, (int64_t)x->ss->conn_id);
	r_bulks(x->out, "mode");
	r_bulks(x->out, "standalone");
	r_bulks(x->out, "role");
	r_bulks(x->out, "master");
	r_bulks(x->out, "modules");
	r_array(x->out, 0);
}

/* argc against an arity: > 0 exactly that many, < 0 at least -arity. */
static int
arity_fits(int arity, size_t argc)
{
	return arity > 0 ? argc == (size_t)arity : argc >= (size_t)-arity;
}

/* A subcommand: its name, arity as in struct rdef, and a line of help. */
struct rsub {
	const char *name;
	int	    arity;
	const char *help;
};

/*
 * Which of subs argv[1] names, checking its arity; -1 after Redis's
 * error for an unknown subcommand or a wrong number of arguments.
 */
static int
rx_sub(struct rx *x, const char *cmd, const struct rsub *subs, size_t n)
{
	const struct resp_arg *sub = &x->argv[1];
	char		       msg[200];
	size_t		       i;

	for (i = 0; i < n && !arg_is(sub, subs[i].name); i++)
		;
	if (i == n) {
		snprintf(msg, sizeof(msg),
		    "unknown subcommand '%.*s'. Try %s HELP.",
		    (int)(sub->len > 128 ? 128 : sub->len), sub->p, cmd);
		rx_error(x, ERR_BAD_REQUEST, msg);
		return -1;
	}
	if (!arity_fits(subs[i].arity, x->argc)) {
		snprintf(msg, sizeof(msg),
		    "wrong number of arguments for '%s|%s' command",
		    x->def->name, subs[i].name);
		rx_error(x, ERR_BAD_REQUEST, msg);
		return -1;
	}
	return (int)i;
}

/* The HELP of a command with subcommands: a line for each. */
static void
rx_sub_help(struct rx *x, const char *cmd, const struct rsub *subs, size_t n)
{
	char   line[160];
	size_t i;

	r_array(x->out, n + 1);
	snprintf(line, sizeof(line),
	    "%s <subcommand> [<arg> [value] [opt] ...]. Subcommands are:", cmd);
	r_simple(x->out, line);
	for (i = 0; i < n; i++)
		r_simple(x->out, subs[i].help);
}

static const struct rsub client_subs[] = {
    {"setname", 3, "SETNAME <name>: name this connection."},
    {"getname", 2, "GETNAME: this connection's name, or nil."},
    {"id", 2, "ID: this connection's id."},
    {"setinfo", 4, "SETINFO <attr> <value>: taken, and ignored."},
    {"info", 2, "INFO: id, name, db and protocol of this connection."},
    {"help", 2, "HELP: these lines."},
};

static void
h_client(struct rx *x)
{
	size_t n = sizeof(client_subs) / sizeof(client_subs[0]);
	char   line[160];

	switch (rx_sub(x, "CLIENT", client_subs, n)) {
	case 0:
		set_name(x, &x->argv[2]);
		if (!x->failed)
			r_simple(x->out, "OK");
		break;
	case 1:
		if (x->ss->name != NULL)
			r_bulks(x->out, x->ss->name);
		else
			r_nil(x);
		break;
	case 2: r_int(x->out, (int64_t)x->ss->conn_id); break;
	case 3: r_simple(x->out, "OK"); break;
	case 4:
		snprintf(line, sizeof(line), "id=%llu name=%s db=0 resp=%d\n",
		    (unsigned long long)x->ss->conn_id,
		    x->ss->name != NULL ? x->ss->name : "",
		    x->ss->resp3 ? 3 : 2);
		r_bulks(x->out, line);
		break;
	case 5: rx_sub_help(x, "CLIENT", client_subs, n); break;
	default: break; /* answered */
	}
}

static const struct rsub command_subs[] = {
    {"count", 2, "COUNT: the number of commands."},
    {"docs", -2, "DOCS [<command-name> ...]: none (an empty map)."},
    {"info", -2, "INFO [<command-name> ...]: each command's details."},
    {"list", 2, "LIST: every command's name."},
    {"help", 2, "HELP: these lines."},
};

static void
h_command(struct rx *x)
{
	size_t n = sizeof(command_subs) / sizeof(command_subs[0]), i;

	if (x->argc == 1) {
		rx_commands(x, NULL, 0);
		return;
	}
	switch (rx_sub(x, "COMMAND", command_subs, n)) {
	case 0: r_int(x->out, (int64_t)rdef_count()); break;
	case 1: r_map(x, 0); break;
	case 2:
		r_array(x->out, x->argc - 2);
		for (i = 2; i < x->argc; i++)
			rx_commands(x, x->argv[i].p, x->argv[i].len);
		break;
	case 3: rx_commands(x, "", 0); break;
	case 4: rx_sub_help(x, "COMMAND", command_subs, n); break;
	default: break; /* answered */
	}
}

/* What CONFIG GET answers: what clients and benchmarks ask at start. */
static void
h_config(struct rx *x)
{
	struct cache_stats cs;
	char		   maxmem[32], pat[128];
	const char	  *params[][2] = {
		   {"save", ""},
		   /* The journal is an append-only file, fsync'd per group. */
		   {"appendonly", "yes"},
		   {"appendfsync",
		       x->ctx->dur_kv == PROTO_DUR_ASYNC ? "everysec" : "always"},
		   {"maxmemory", maxmem},
		   {"maxmemory-policy", "allkeys-lru"},
		   {"databases", "1"},
		   {"timeout", "0"},
		   {"io-threads", "1"},
		   {"cluster-enabled", "no"},
	       };
	size_t i, j, n;

	if (!arg_is(&x->argv[1], "GET")) {
		rx_error(x, ERR_BAD_REQUEST,
		    "stashd answers CONFIG GET only; its configuration is "
		    "its configuration file");
		return;
	}
	if (x->argc < 3) {
		rx_error(x, ERR_BAD_REQUEST,
		    "wrong number of arguments for 'config|get' command");
		return;
	}
	cache_get_stats(x->ctx->cache, &cs);
	snprintf(
	    maxmem, sizeof(maxmem), "%llu", (unsigned long long)cs.max_memory);
	for (n = 0, i = 0; i < sizeof(params) / sizeof(params[0]); i++)
		for (j = 2; j < x->argc; j++) {
			if (x->argv[j].len >= sizeof(pat))
				continue;
			memcpy(pat, x->argv[j].p, x->argv[j].len);
			pat[x->argv[j].len] = '\0';
			if (fnmatch(pat, params[i][0], FNM_CASEFOLD) == 0) {
				n++;
				break;
			}
		}
	r_map(x, n);
	for (i = 0; i < sizeof(params) / sizeof(params[0]); i++)
		for (j = 2; j < x->argc; j++) {
			if (x->argv[j].len >= sizeof(pat))
				continue;
			memcpy(pat, x->argv[j].p, x->argv[j].len);
			pat[x->argv[j].len] = '\0';
			if (fnmatch(pat, params[i][0], FNM_CASEFOLD) == 0) {
				r_bulks(x->out, params[i][0]);
				r_bulks(x->out, params[i][1]);
				break;
			}
		}
}

static void
h_stash(struct rx *x)
{
	enum proto_durability d;

	if (!arg_is(&x->argv[1], "DURABILITY") || x->argc > 3) {
		rx_error(x, ERR_BAD_REQUEST,
		    "usage: STASH DURABILITY [async|journal|commit]");
		return;
	}
	if (x->argc == 2) {
		d = x->ss->rdur != PROTO_DUR_DEFAULT ? x->ss->rdur
						     : x->ctx->dur_kv;
		r_bulks(x->out, proto_durability_name(d));
		return;
	}
	if (arg_is(&x->argv[2], "async"))
		x->ss->rdur = PROTO_DUR_ASYNC;
	else if (arg_is(&x->argv[2], "journal"))
		x->ss->rdur = PROTO_DUR_JOURNAL;
	else if (arg_is(&x->argv[2], "commit"))
		x->ss->rdur = PROTO_DUR_COMMIT;
	else {
		rx_error(x, ERR_BAD_REQUEST,
		    "durability is async, journal or commit");
		return;
	}
	r_simple(x->out, "OK");
}

/* Reads. */

static void
h_get(struct rx *x)
{
	struct rval rv;

	if (!rx_state(x, 1, 0, &rv))
		return;
	if (rv.exists)
		r_bulk(x->out, rv.v, rv.vlen);
	else
		r_nil(x);
}

static void
h_mget(struct rx *x)
{
	struct rval rv;
	size_t	    i;

	r_array(x->out, x->argc - 1);
	for (i = 1; i < x->argc; i++) {
		if (!rx_state(x, i, 0, &rv))
			continue; /* all unknown keys are looked up at once */
		if (rv.exists)
			r_bulk(x->out, rv.v, rv.vlen);
		else
			r_nil(x);
	}
}

static void
h_exists(struct rx *x)
{
	struct rval rv;
	int64_t	    n = 0;
	size_t	    i;

	for (i = 1; i < x->argc; i++)
		if (rx_state(x, i, 0, &rv) && rv.exists)
			n++;
	r_int(x->out, n);
}

static void
h_strlen(struct rx *x)
{
	struct rval rv;

	if (rx_state(x, 1, 0, &rv))
		r_int(x->out, rv.exists ? (int64_t)rv.vlen : 0);
}

/* TYPE: every value is a string. */
static void
h_type(struct rx *x)
{
	struct rval rv;

	if (rx_state(x, 1, 0, &rv))
		r_simple(x->out, rv.exists ? "string" : "none");
}

/*
 * TTL and PTTL, as Redis answers them: PTTL the milliseconds to the
 * expiry, TTL that rounded to the nearest second (0 in its last half).
 */
static void
ttl_reply(struct rx *x, int ms)
{
	struct rval rv;
	int64_t	    left;

	if (!rx_state(x, 1, 0, &rv))
		return;
	if (!rv.exists)
		r_int(x->out, -2);
	else if (rv.expires_at == 0)
		r_int(x->out, -1);
	else {
		left = rv.expires_at - wall_ms();
		if (left < 0)
			left = 0;
		r_int(x->out, ms ? left : left / 1000 + (left % 1000 >= 500));
	}
}

static void
h_ttl(struct rx *x)
{
	ttl_reply(x, 0);
}

static void
h_pttl(struct rx *x)
{
	ttl_reply(x, 1);
}

/* Writes. */

/* Redis's words for an expiry out of range. */
static void
rx_bad_expire(struct rx *x)
{
	char msg[96];

	snprintf(msg, sizeof(msg), "invalid expire time in '%s' command",
	    x->def->name);
	rx_error(x, ERR_BAD_REQUEST, msg);
}

/*
 * The expiry n, in seconds or milliseconds, from now or absolute, as the
 * Unix millisecond the key goes at, computed as Redis does; -1 when that
 * does not fit 64 bits (Redis's "invalid expire time").
 */
static int
expiry_ms(int64_t n, int ms, int absolute, int64_t now, int64_t *at)
{
	if (!ms) {
		if (n > INT64_MAX / 1000 || n < INT64_MIN / 1000)
			return -1;
		n *= 1000;
	}
	if (!absolute) {
		if (n > INT64_MAX - now)
			return -1;
		n += now;
	}
	*at = n;
	return 0;
}

/*
 * Whether a is an expiry option of SET and GETEX (EX, PX, EXAT, PXAT), and
 * then whether its value is in milliseconds and an absolute time.
 */
static int
expiry_option(const struct resp_arg *a, int *ms, int *absolute)
{
	*ms = arg_is(a, "PX") || arg_is(a, "PXAT");
	*absolute = arg_is(a, "EXAT") || arg_is(a, "PXAT");
	return *ms || *absolute || arg_is(a, "EX");
}

/* SET's and SETEX's expiry, from 1 on, of argument ai. */
static int
expiry_of(struct rx *x, size_t ai, int ms, int absolute, int64_t *at)
{
	int64_t n;

	if (arg_i64(x, ai, &n) == -1)
		return -1;
	if (n <= 0 || expiry_ms(n, ms, absolute, wall_ms(), at) == -1) {
		rx_bad_expire(x);
		return -1;
	}
	return 0;
}

/*
 * SET's work once its options are read; GETSET is SET GET. An EXAT or
 * PXAT already past deletes the key (rx_set), and the answer is what SET
 * answers.
 */
static void
set_key(struct rx *x, int nx, int xx, int get, int keepttl, int64_t expires_at)
{
	struct rval rv;

	if (!nx && !xx && !get && !keepttl) {
		rx_set(x, 1, x->argv[2].p, x->argv[2].len, 1, expires_at);
		r_simple(x->out, "OK");
		return;
	}
	if (!rx_state(x, 1, 1, &rv))
		return;
	if (get) {
		if (rv.exists)
			r_bulk(x->out, rv.v, rv.vlen);
		else
			r_nil(x);
	}
	if ((nx && rv.exists) || (xx && !rv.exists)) {
		if (!get)
			r_nil(x);
		return;
	}
	if (keepttl)
		expires_at = rv.expires_at;
	rx_set(x, 1, x->argv[2].p, x->argv[2].len, 1, expires_at);
	if (!get)
		r_simple(x->out, "OK");
}

static void
h_set(struct rx *x)
{
	int	nx = 0, xx = 0, get = 0, keepttl = 0, ms = 0, absolute = 0;
	int64_t expires_at = 0;
	size_t	i, exp = 0; /* the expiry's value, once an option names it */

	/* Every option first, then the expiry's value, as Redis reads them. */
	for (i = 3; i < x->argc; i++) {
		const struct resp_arg *a = &x->argv[i];

		if (arg_is(a, "NX") && !xx)
			nx = 1;
		else if (arg_is(a, "XX") && !nx)
			xx = 1;
		else if (arg_is(a, "GET"))
			get = 1;
		else if (arg_is(a, "KEEPTTL") && exp == 0)
			keepttl = 1;
		else if (exp == 0 && !keepttl && i + 1 < x->argc &&
			 expiry_option(a, &ms, &absolute))
			exp = ++i;
		else {
			rx_syntax(x);
			return;
		}
	}
	if (exp != 0 && expiry_of(x, exp, ms, absolute, &expires_at) == -1)
		return;
	set_key(x, nx, xx, get, keepttl, expires_at);
}

static void
setex(struct rx *x, int ms)
{
	int64_t expires_at;

	if (expiry_of(x, 2, ms, 0, &expires_at) == -1)
		return;
	rx_set(x, 1, x->argv[3].p, x->argv[3].len, 1, expires_at);
	r_simple(x->out, "OK");
}

static void
h_setex(struct rx *x)
{
	setex(x, 0);
}

static void
h_psetex(struct rx *x)
{
	setex(x, 1);
}

/* SETNX: SET NX answering 1 (set) or 0 (the key exists). */
static void
h_setnx(struct rx *x)
{
	struct rval rv;

	if (!rx_state(x, 1, 1, &rv))
		return;
	if (rv.exists) {
		r_int(x->out, 0);
		return;
	}
	rx_set(x, 1, x->argv[2].p, x->argv[2].len, 1, 0);
	r_int(x->out, 1);
}

/* GETSET: SET GET (the new value has no expiry). */
static void
h_getset(struct rx *x)
{
	set_key(x, 0, 0, 1, 0, 0);
}

/*
 * MSET, and MSETNX (nx), which sets its keys only when none of them
 * exists and answers whether it did.
 */
static void
mset(struct rx *x, int nx)
{
	struct rval rv;
	char	    msg[96];
	size_t	    i;
	int	    any = 0;

	if (x->argc % 2 == 0) {
		rx_error(x, ERR_BAD_REQUEST,
		    arity_text(msg, sizeof(msg), x->def->name));
		return;
	}
	if (nx) {
		for (i = 1; i < x->argc; i += 2)
			if (rx_state(x, i, 1, &rv) && rv.exists)
				any = 1;
		if (x->unknown)
			return;
		if (any) {
			r_int(x->out, 0);
			return;
		}
	}
	for (i = 1; i < x->argc; i += 2)
		rx_set(x, i, x->argv[i + 1].p, x->argv[i + 1].len, 1, 0);
	if (nx)
		r_int(x->out, 1);
	else
		r_simple(x->out, "OK");
}

static void
h_mset(struct rx *x)
{
	mset(x, 0);
}

static void
h_msetnx(struct rx *x)
{
	mset(x, 1);
}

static void
h_getdel(struct rx *x)
{
	struct rval rv;

	if (!rx_state(x, 1, 1, &rv))
		return;
	if (!rv.exists) {
		r_nil(x);
		return;
	}
	r_bulk(x->out, rv.v, rv.vlen);
	rx_del(x, 1);
}

static void
h_del(struct rx *x)
{
	struct rval rv;
	int64_t	    n = 0;
	size_t	    i, j;

	for (i = 1; i < x->argc; i++)
		rx_state(x, i, 1, &rv);
	if (x->unknown)
		return;
	for (i = 1; i < x->argc; i++) {
		/* A key named twice is deleted once. */
		for (j = 1; j < i; j++)
			if (x->argv[j].len == x->argv[i].len &&
			    memcmp(x->argv[j].p, x->argv[i].p,
				x->argv[i].len) == 0)
				break;
		if (j < i)
			continue;
		rx_state(x, i, 1, &rv);
		if (rv.exists) {
			rx_del(x, i);
			n++;
		}
	}
	r_int(x->out, n);
}

/* EXPIRE's options, as Redis 7 has them. */
#define EXPIRE_NX 0x01 /* only when the key has no expiry */
#define EXPIRE_XX 0x02 /* only when it has one */
#define EXPIRE_GT 0x04 /* only later than the one it has (none: never) */
#define EXPIRE_LT 0x08 /* only earlier (none counts as later) */

/* The options after EXPIRE key n into *flags; -1 with an error reply. */
static int
expire_flags(struct rx *x, int *flags)
{
	char   msg[96];
	size_t i;

	*flags = 0;
	for (i = 3; i < x->argc; i++) {
		if (arg_is(&x->argv[i], "nx"))
			*flags |= EXPIRE_NX;
		else if (arg_is(&x->argv[i], "xx"))
			*flags |= EXPIRE_XX;
		else if (arg_is(&x->argv[i], "gt"))
			*flags |= EXPIRE_GT;
		else if (arg_is(&x->argv[i], "lt"))
			*flags |= EXPIRE_LT;
		else {
			snprintf(msg, sizeof(msg), "Unsupported option %.*s",
			    (int)(x->argv[i].len > 64 ? 64 : x->argv[i].len),
			    x->argv[i].p);
			rx_error(x, ERR_BAD_REQUEST, msg);
			return -1;
		}
	}
	if ((*flags & EXPIRE_NX) && (*flags & ~EXPIRE_NX)) {
		rx_error(x, ERR_BAD_REQUEST,
		    "NX and XX, GT or LT options at the same time are not "
		    "compatible");
		return -1;
	}
	if ((*flags & EXPIRE_GT) && (*flags & EXPIRE_LT)) {
		rx_error(x, ERR_BAD_REQUEST,
		    "GT and LT options at the same time are not compatible");
		return -1;
	}
	return 0;
}

/* May an expiry at (Unix ms) replace cur (0: none) under flags? */
static int
expire_allowed(int flags, int64_t cur, int64_t at)
{
	if ((flags & EXPIRE_NX) && cur != 0)
		return 0;
	if ((flags & EXPIRE_XX) && cur == 0)
		return 0;
	if ((flags & EXPIRE_GT) && (cur == 0 || at <= cur))
		return 0;
	if ((flags & EXPIRE_LT) && cur != 0 && at >= cur)
		return 0;
	return 1;
}

/*
 * EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT [NX|XX|GT|LT], PERSIST: write the
 * value again with a new expiry; one now or past deletes the key.
 */
static void
expire(struct rx *x, int ms, int absolute, int persist)
{
	struct rval rv;
	int64_t	    at = 0, n = 0, now = wall_ms();
	int	    flags = 0;

	if (!persist) {
		if (expire_flags(x, &flags) == -1 || arg_i64(x, 2, &n) == -1)
			return;
		if (expiry_ms(n, ms, absolute, now, &at) == -1) {
			rx_bad_expire(x);
			return;
		}
	}
	if (!rx_state(x, 1, 1, &rv))
		return;
	if (!rv.exists || (persist && rv.expires_at == 0)) {
		r_int(x->out, 0);
		return;
	}
	if (!persist) {
		if (!expire_allowed(flags, rv.expires_at, at)) {
			r_int(x->out, 0);
			return;
		}
	}
	r_int(x->out, 1);
	if (!persist && at <= now) {
		rx_del(x, 1);
		return;
	}
	rx_set(x, 1, rx_keep(x, rv.v, rv.vlen), rv.vlen, rv.raw, at);
}

static void
h_expire(struct rx *x)
{
	expire(x, 0, 0, 0);
}

static void
h_pexpire(struct rx *x)
{
	expire(x, 1, 0, 0);
}

static void
h_expireat(struct rx *x)
{
	expire(x, 0, 1, 0);
}

static void
h_pexpireat(struct rx *x)
{
	expire(x, 1, 1, 0);
}

static void
h_persist(struct rx *x)
{
	expire(x, 0, 0, 1);
}

/*
 * INCR and friends. The value keeps its kind: a JSON integer stays JSON
 * (its text is the same), bytes stay bytes; a new key is bytes.
 */
static void
incr(struct rx *x, int64_t by)
{
	struct rval rv;
	int64_t	    v = 0;
	char	    num[24];
	int	    n;

	if (!rx_state(x, 1, 1, &rv))
		return;
	if (rv.exists && parse_i64(rv.v, rv.vlen, &v) == -1) {
		rx_error(x, ERR_BAD_REQUEST,
		    "value is not an integer or out of range");
		return;
	}
	if ((by > 0 && v > INT64_MAX - by) || (by < 0 && v < INT64_MIN - by)) {
		rx_error(x, ERR_BAD_REQUEST,
		    "increment or decrement would overflow");
		return;
	}
	v += by;
	n = snprintf(num, sizeof(num), "%lld", (long long)v);
	r_int(x->out, v);
	rx_set(x, 1, rx_keep(x, num, (size_t)n), (size_t)n,
	    rv.exists ? rv.raw : 1, rv.expires_at);
}

static void
h_incr(struct rx *x)
{
	incr(x, 1);
}

static void
h_decr(struct rx *x)
{
	incr(x, -1);
}

static void
h_incrby(struct rx *x)
{
	int64_t by;

	if (arg_i64(x, 2, &by) == 0)
		incr(x, by);
}

static void
h_decrby(struct rx *x)
{
	int64_t by;

	if (arg_i64(x, 2, &by) == 0) {
		if (by == INT64_MIN)
			rx_error(
			    x, ERR_BAD_REQUEST, "decrement would overflow");
		else
			incr(x, -by);
	}
}

/* APPEND makes bytes: a JSON value's text, then the argument. */
static void
h_append(struct rx *x)
{
	struct rval  rv;
	struct wbuf *b = &x->r->val;
	size_t	     n;

	if (!rx_state(x, 1, 1, &rv))
		return;
	n = (rv.exists ? rv.vlen : 0) + x->argv[2].len;
	if (n > x->ctx->value_max) {
		rx_error(
		    x, ERR_TOO_LARGE, "string exceeds maximum allowed size");
		return;
	}
	wbuf_reset(b);
	if (rv.exists)
		wbuf_add(b, rv.v, rv.vlen);
	wbuf_add(b, x->argv[2].p, x->argv[2].len);
	r_int(x->out, (int64_t)n);
	rx_set(x, 1, b->buf, n, 1, rv.expires_at);
}

/*
 * GETRANGE (and SUBSTR): the bytes from start to end, both included;
 * negative ones count from the end; out of range, the empty string.
 */
static void
h_getrange(struct rx *x)
{
	struct rval rv;
	int64_t	    start, end, len;

	if (arg_i64(x, 2, &start) == -1 || arg_i64(x, 3, &end) == -1 ||
	    !rx_state(x, 1, 0, &rv))
		return;
	len = rv.exists ? (int64_t)rv.vlen : 0;
	if (start < 0 && end < 0 && start > end) {
		r_bulk(x->out, "", 0);
		return;
	}
	if (start < 0)
		start = len + start;
	if (end < 0)
		end = len + end;
	if (start < 0)
		start = 0;
	if (end < 0)
		end = 0;
	if (end >= len)
		end = len - 1;
	if (len == 0 || start > end)
		r_bulk(x->out, "", 0);
	else
		r_bulk(x->out, rv.v + start, (size_t)(end - start + 1));
}

/*
 * SETRANGE overwrites from offset on, padding with zero bytes, and makes
 * bytes, as APPEND does; the expiry stays. Nothing to write writes
 * nothing.
 */
static void
h_setrange(struct rx *x)
{
	struct rval  rv;
	struct wbuf *b = &x->r->val;
	int64_t	     off;
	size_t	     vlen = x->argv[3].len, old, n;

	if (arg_i64(x, 2, &off) == -1)
		return;
	if (off < 0) {
		rx_error(x, ERR_BAD_REQUEST, "offset is out of range");
		return;
	}
	if (!rx_state(x, 1, 1, &rv))
		return;
	if (vlen == 0) {
		r_int(x->out, rv.exists ? (int64_t)rv.vlen : 0);
		return;
	}
	if (vlen > x->ctx->value_max ||
	    (uint64_t)off > x->ctx->value_max - vlen) {
		rx_error(
		    x, ERR_TOO_LARGE, "string exceeds maximum allowed size");
		return;
	}
	old = rv.exists ? rv.vlen : 0;
	n = (size_t)off + vlen > old ? (size_t)off + vlen : old;
	wbuf_reset(b);
	wbuf_reserve(b, n);
	if (old > 0)
		memcpy(b->buf, rv.v, old);
	if (old < (size_t)off)
		memset(b->buf + old, 0, (size_t)off - old);
	memcpy(b->buf + off, x->argv[3].p, vlen);
	b->len = n;
	r_int(x->out, (int64_t)n);
	rx_set(x, 1, b->buf, n, 1, rv.expires_at);
}

/*
 * GETEX [EX s | PX ms | EXAT t | PXAT t | PERSIST]: GET, and a new expiry
 * (or none) for a key that exists; one now or past deletes it (rx_set).
 * As in Redis, the expiry's value is read only once the key is found: a
 * missing key is nil whatever it is.
 */
static void
h_getex(struct rx *x)
{
	struct rval rv;
	int64_t	    at = 0;
	int	    persist = 0, ms = 0, absolute = 0;

	if (x->argc == 4) {
		if (!expiry_option(&x->argv[2], &ms, &absolute)) {
			rx_syntax(x);
			return;
		}
	} else if (x->argc == 3) {
		if (!arg_is(&x->argv[2], "PERSIST")) {
			rx_syntax(x);
			return;
		}
		persist = 1;
	} else if (x->argc > 4) {
		rx_syntax(x);
		return;
	}
	if (!rx_state(x, 1, x->argc > 2, &rv))
		return;
	if (!rv.exists) {
		r_nil(x);
		return;
	}
	if (x->argc == 4 && expiry_of(x, 3, ms, absolute, &at) == -1)
		return;
	r_bulk(x->out, rv.v, rv.vlen);
	if (at != 0 || (persist && rv.expires_at != 0))
		rx_set(x, 1, rx_keep(x, rv.v, rv.vlen), rv.vlen, rv.raw, at);
}

/* The longest float text INCRBYFLOAT reads or writes, as Redis's. */
#define FLOAT_TEXT_MAX (5 * 1024)

/* A float as Redis reads one: all of it, no leading space, not NaN. */
static int
parse_float(const char *p, size_t n, long double *v)
{
	char  buf[FLOAT_TEXT_MAX];
	char *end;

	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, p, n);
	buf[n] = '\0';
	if (isspace((unsigned char)buf[0]))
		return -1;
	errno = 0;
	*v = strtold(buf, &end);
	if (end != buf + n || isnan(*v) ||
	    (errno == ERANGE && (*v == HUGE_VALL || *v == -HUGE_VALL ||
				    fpclassify(*v) == FP_ZERO)))
		return -1;
	return 0;
}

/*
 * INCRBYFLOAT, in long double, written as Redis writes it: 17 decimals,
 * trailing zeros cut. The value keeps its kind and its expiry, as INCR's.
 */
static void
h_incrbyfloat(struct rx *x)
{
	struct rval rv;
	long double v = 0, by;
	char	    num[FLOAT_TEXT_MAX + 32];
	int	    n;

	if (parse_float(x->argv[2].p, x->argv[2].len, &by) == -1) {
		rx_error(x, ERR_BAD_REQUEST, "value is not a valid float");
		return;
	}
	if (!rx_state(x, 1, 1, &rv))
		return;
	if (rv.exists && parse_float(rv.v, rv.vlen, &v) == -1) {
		rx_error(x, ERR_BAD_REQUEST, "value is not a valid float");
		return;
	}
	v += by;
	if (isnan(v) || isinf(v)) {
		rx_error(x, ERR_BAD_REQUEST,
		    "increment would produce NaN or Infinity");
		return;
	}
	/*
	 * Fits: a finite long double has at most 4,933 digits before the
	 * point. The limit is on the text as stored, trailing zeros cut.
	 */
	n = snprintf(num, sizeof(num), "%.17Lf", v);
	if (n < 0 || (size_t)n >= sizeof(num)) {
		rx_error(x, ERR_INTERNAL, "cannot write the float");
		return;
	}
	if (memchr(num, '.', (size_t)n) != NULL) {
		while (num[n - 1] == '0')
			n--;
		if (num[n - 1] == '.')
			n--;
	}
	if (n == 2 && num[0] == '-' && num[1] == '0') {
		num[0] = '0';
		n = 1;
	}
	if ((size_t)n > x->ctx->value_max) {
		rx_error(
		    x, ERR_TOO_LARGE, "string exceeds maximum allowed size");
		return;
	}
	r_bulk(x->out, num, (size_t)n);
	rx_set(x, 1, rx_keep(x, num, (size_t)n), (size_t)n,
	    rv.exists ? rv.raw : 1, rv.expires_at);
}

/* DBSIZE and INFO need the number of keys: rx_counted() gets it. */
static void
h_counted(struct rx *x)
{
	(void)x;
}

static void
info_u64(struct wbuf *b, const char *name, uint64_t v)
{
	wbuf_adds(b, name);
	wbuf_addc(b, ':');
	wbuf_add_u64(b, v);
	wbuf_add(b, "\r\n", 2);
}

static void
info_str(struct wbuf *b, const char *name, const char *v)
{
	wbuf_adds(b, name);
	wbuf_addc(b, ':');
	wbuf_adds(b, v);
	wbuf_add(b, "\r\n", 2);
}

/* Is section sec asked for? */
static int
info_wants(struct rx *x, const char *sec)
{
	size_t i;

	if (x->argc < 2)
		return 1;
	for (i = 1; i < x->argc; i++)
		if (arg_is(&x->argv[i], sec) || arg_is(&x->argv[i], "all") ||
		    arg_is(&x->argv[i], "everything") ||
		    arg_is(&x->argv[i], "default"))
			return 1;
	return 0;
}

/* What INFO's keyspace line counts: keys, those with an expiry, and theirs. */
struct rkeyspace {
	uint64_t keys;
	uint64_t expires;
	uint64_t avg_ttl_ms;
};

static void
rx_info(struct rx *x, const struct rkeyspace *ks)
{
	struct stats	  *st = x->ctx->stats;
	struct cache_stats cs;
	struct timespec	   now;
	struct wbuf	   b;
	uint64_t	   uptime = 0;
	char		   human[32];

	cache_get_stats(x->ctx->cache, &cs);
	if (clock_gettime(CLOCK_MONOTONIC, &now) == 0 &&
	    now.tv_sec >= st->started.tv_sec)
		uptime = (uint64_t)(now.tv_sec - st->started.tv_sec);
	wbuf_init(&b);
	if (info_wants(x, "server")) {
		wbuf_adds(&b, "# Server\r\n");
		info_str(&b, "redis_version", RCMD_REDIS_VERSION);
		info_str(&b, "stashd_version", PACKAGE_VERSION);
		info_str(&b, "redis_mode", "standalone");
		info_str(&b, "multiplexing_api", "epoll");
		info_u64(&b, "process_id", (uint64_t)getpid());
		info_u64(&b, "tcp_port", 0);
		info_u64(&b, "uptime_in_seconds", uptime);
		info_u64(&b, "uptime_in_days", uptime / 86400);
		wbuf_add(&b, "\r\n", 2);
	}
	if (info_wants(x, "clients")) {
		wbuf_adds(&b, "# Clients\r\n");
		info_u64(&b, "connected_clients", st->conn_current);
		info_u64(&b, "maxclients", st->conn_max);
		info_u64(&b, "blocked_clients", 0);
		wbuf_add(&b, "\r\n", 2);
	}
	if (info_wants(x, "memory")) {
		wbuf_adds(&b, "# Memory\r\n");
		info_u64(&b, "used_memory", cs.bytes);
		snprintf(human, sizeof(human), "%.2fM",
		    (double)cs.bytes / (1024.0 * 1024.0));
		info_str(&b, "used_memory_human", human);
		info_u64(&b, "used_memory_rss", stats_rss_bytes());
		info_u64(&b, "maxmemory", cs.max_memory);
		info_str(&b, "maxmemory_policy", "allkeys-lru");
		info_u64(&b, "pinned_entries", cs.pinned);
		wbuf_add(&b, "\r\n", 2);
	}
	if (info_wants(x, "persistence")) {
		wbuf_adds(&b, "# Persistence\r\n");
		info_u64(&b, "loading", 0);
		info_u64(&b, "aof_enabled", 0);
		info_u64(&b, "unapplied_bytes", x->ctx->unapplied_bytes);
		info_u64(&b, "applied_seq", x->ctx->applied_seq);
		info_u64(&b, "last_seq", x->ctx->seq);
		wbuf_add(&b, "\r\n", 2);
	}
	if (info_wants(x, "stats")) {
		wbuf_adds(&b, "# Stats\r\n");
		info_u64(&b, "total_connections_received", st->conn_total);
		info_u64(&b, "total_commands_processed", st->requests);
		info_u64(&b, "total_net_input_bytes", st->bytes_in);
		info_u64(&b, "total_net_output_bytes", st->bytes_out);
		info_u64(&b, "rejected_connections", st->conn_rejected);
		info_u64(&b, "expired_keys", cs.expirations);
		info_u64(&b, "evicted_keys", cs.evictions);
		info_u64(&b, "keyspace_hits", cs.hits);
		info_u64(&b, "keyspace_misses", cs.misses);
		info_u64(&b, "writes_received", st->writes_received);
		info_u64(&b, "writes_acknowledged", st->writes_acknowledged);
		wbuf_add(&b, "\r\n", 2);
	}
	if (info_wants(x, "keyspace")) {
		wbuf_adds(&b, "# Keyspace\r\n");
		if (ks->keys > 0) {
			wbuf_adds(&b, "db0:keys=");
			wbuf_add_u64(&b, ks->keys);
			wbuf_adds(&b, ",expires=");
			wbuf_add_u64(&b, ks->expires);
			wbuf_adds(&b, ",avg_ttl=");
			wbuf_add_u64(&b, ks->avg_ttl_ms);
			wbuf_adds(&b, "\r\n");
		}
	}
	r_bulk(x->out, b.buf != NULL ? b.buf : "", b.len);
	wbuf_free(&b);
}

/*
 * The commands. Flags for COMMAND follow Redis's names; key positions
 * tell which arguments are keys (looked up together when needed).
 */
static const struct rdef rdefs[] = {
    {"append", 3, RC_WRITE, 1, 1, 1, h_append, "write"},
    {"client", -2, 0, 0, 0, 0, h_client, "admin"},
    {"command", -1, 0, 0, 0, 0, h_command, "loading"},
    {"config", -2, 0, 0, 0, 0, h_config, "admin"},
    {"dbsize", 1, RC_COUNT, 0, 0, 0, h_counted, "readonly"},
    {"decr", 2, RC_WRITE, 1, 1, 1, h_decr, "write"},
    {"decrby", 3, RC_WRITE, 1, 1, 1, h_decrby, "write"},
    {"del", -2, RC_WRITE, 1, -1, 1, h_del, "write"},
    {"echo", 2, 0, 0, 0, 0, h_echo, "fast"},
    {"exists", -2, RC_READ, 1, -1, 1, h_exists, "readonly"},
    {"expire", -3, RC_WRITE, 1, 1, 1, h_expire, "write"},
    {"expireat", -3, RC_WRITE, 1, 1, 1, h_expireat, "write"},
    {"get", 2, RC_READ, 1, 1, 1, h_get, "readonly"},
    {"getdel", 2, RC_WRITE, 1, 1, 1, h_getdel, "write"},
    {"getex", -2, RC_WRITE, 1, 1, 1, h_getex, "write"},
    {"getrange", 4, RC_READ, 1, 1, 1, h_getrange, "readonly"},
    {"getset", 3, RC_WRITE, 1, 1, 1, h_getset, "write"},
    {"hello", -1, 0, 0, 0, 0, h_hello, "fast"},
    {"incr", 2, RC_WRITE, 1, 1, 1, h_incr, "write"},
    {"incrby", 3, RC_WRITE, 1, 1, 1, h_incrby, "write"},
    {"incrbyfloat", 3, RC_WRITE, 1, 1, 1, h_incrbyfloat, "write"},
    {"info", -1, RC_COUNT, 0, 0, 0, h_counted, "loading"},
    {"mget", -2, RC_READ, 1, -1, 1, h_mget, "readonly"},
    {"mset", -3, RC_WRITE, 1, -1, 2, h_mset, "write"},
    {"msetnx", -3, RC_WRITE, 1, -1, 2, h_msetnx, "write"},
    {"persist", 2, RC_WRITE, 1, 1, 1, h_persist, "write"},
    {"pexpire", -3, RC_WRITE, 1, 1, 1, h_pexpire, "write"},
    {"pexpireat", -3, RC_WRITE, 1, 1, 1, h_pexpireat, "write"},
    {"ping", -1, 0, 0, 0, 0, h_ping, "fast"},
    {"psetex", 4, RC_WRITE, 1, 1, 1, h_psetex, "write"},
    {"pttl", 2, RC_READ, 1, 1, 1, h_pttl, "readonly"},
    {"quit", -1, 0, 0, 0, 0, h_quit, "fast"},
    {"select", 2, 0, 0, 0, 0, h_select, "fast"},
    {"set", -3, RC_WRITE, 1, 1, 1, h_set, "write"},
    {"setex", 4, RC_WRITE, 1, 1, 1, h_setex, "write"},
    {"setnx", 3, RC_WRITE, 1, 1, 1, h_setnx, "write"},
    {"setrange", 4, RC_WRITE, 1, 1, 1, h_setrange, "write"},
    {"stash", -2, 0, 0, 0, 0, h_stash, "fast"},
    {"strlen", 2, RC_READ, 1, 1, 1, h_strlen, "readonly"},
    {"substr", 4, RC_READ, 1, 1, 1, h_getrange, "readonly"},
    {"touch", -2, RC_READ, 1, -1, 1, h_exists, "readonly"},
    {"ttl", 2, RC_READ, 1, 1, 1, h_ttl, "readonly"},
    {"type", 2, RC_READ, 1, 1, 1, h_type, "readonly"},
    {"unlink", -2, RC_WRITE, 1, -1, 1, h_del, "write"},
    {"unwatch", 1, 0, 0, 0, 0, h_unwatch, "fast"},
    {"watch", -2, RC_READ, 1, -1, 1, h_watch, "fast"},
};

static size_t
rdef_count(void)
{
	return sizeof(rdefs) / sizeof(rdefs[0]);
}

static const struct rdef *
rdef_find(const char *name, size_t len)
{
	size_t i;

	if (len == 0)
		return NULL;
	for (i = 0; i < rdef_count(); i++)
		if ((rdefs[i].name[0] == (name[0] | 0x20)) &&
		    strlen(rdefs[i].name) == len &&
		    strncasecmp(rdefs[i].name, name, len) == 0)
			return &rdefs[i];
	return NULL;
}

int
rcmd_known(const char *name, size_t len)
{
	struct resp_arg a = {name, len};

	/* MULTI, EXEC and DISCARD are answered, if only to be refused. */
	return rdef_find(name, len) != NULL || arg_is(&a, "multi") ||
	       arg_is(&a, "exec") || arg_is(&a, "discard");
}

/*
 * COMMAND replies: every command (name NULL), the names (len 0, name
 * ""), or one command's entry (nil when unknown).
 */
static void
rx_commands(struct rx *x, const char *name, size_t len)
{
	const struct rdef *d;
	size_t		   i;

	if (name != NULL && len > 0) {
		if ((d = rdef_find(name, len)) == NULL) {
			r_nil(x);
			return;
		}
	} else
		d = NULL;
	if (d == NULL)
		r_array(x->out, rdef_count());
	for (i = 0; i < rdef_count(); i++) {
		const struct rdef *e = d != NULL ? d : &rdefs[i];

		if (name != NULL && len == 0) {
			r_bulks(x->out, e->name);
			continue;
		}
		r_array(x->out, 6);
		r_bulks(x->out, e->name);
		r_int(x->out, e->arity);
		r_array(x->out, 1);
		r_simple(x->out, e->cflags);
		r_int(x->out, e->first);
		r_int(x->out, e->last);
		r_int(x->out, e->step);
		if (d != NULL)
			break;
	}
}

/* Is every key argument a key stashd takes? */
static int
keys_ok(const struct rdef *d, size_t argc, const struct resp_arg *argv)
{
	size_t i, last;

	if (d->first == 0)
		return 1;
	last = d->last < 0 ? argc - 1 : (size_t)d->last;
	for (i = (size_t)d->first; i <= last && i < argc; i += (size_t)d->step)
		if (argv[i].len == 0 || argv[i].len > STASH_KEY_MAX)
			return 0;
	return 1;
}

#define KEYS_BAD "invalid key: keys are 1 to 1024 bytes"

static int
rx_keys_ok(struct rx *x)
{
	if (keys_ok(x->def, x->argc, x->argv))
		return 1;
	rx_error(x, ERR_BAD_REQUEST, KEYS_BAD);
	return 0;
}

/*
 * Take writes ws[0..n), in order, each with its sequence number. The
 * reply (out[mark..]) goes with the last one: at once for async, through
 * a slot (taken now for op when slot is NULL) otherwise. CMD_DONE when
 * the reply is in out (the writes' answer, or an error instead of it,
 * nothing taken), CMD_DEFERRED when a slot has it.
 */
static enum cmd_result
take_writes(struct cmd_ctx *ctx, struct cmd_session *ss, struct rwrite *ws,
    size_t n, struct wbuf *out, size_t mark, struct slot *slot, const char *op)
{
	enum proto_durability dur =
	    ss->rdur != PROTO_DUR_DEFAULT ? ss->rdur : ctx->dur_kv;
	struct rwrite *rw;
	struct wreq   *w;
	size_t	       i, j;

	if (ctx->broken || ctx->unavailable) {
		out->len = mark;
		cmd_resp_error(ctx, out, ERR_UNAVAILABLE,
		    "the database cannot take writes now");
		return CMD_DONE;
	}
	for (i = 0; i < n && dur != PROTO_DUR_COMMIT; i++) {
		rw = &ws[i];
		rw->reserved = cache_entry_size(rw->klen,
		    rw->del ? 0 : rw->vlen, !rw->del && rw->expires_at != 0);
		if (cache_reserve(ctx->cache, rw->reserved) != CACHE_OK) {
			for (j = 0; j < i; j++)
				cache_unreserve(ctx->cache, ws[j].reserved);
			cmd_kick_apply(ctx, ctx->seq);
			/* Redis's answer when memory is short. */
			out->len = mark;
			ctx->stats->errors[ERR_BUSY]++;
			wbuf_adds(out, "-OOM the cache is full of writes not "
				       "yet applied\r\n");
			return CMD_DONE;
		}
	}
	for (i = 0; i < n; i++) {
		rw = &ws[i];
		++ctx->seq;
		if (rw->del)
			w = wreq_kv_del(ctx->seq, rw->key, rw->klen);
		else {
			w = wreq_kv_set(ctx->seq, rw->key, rw->klen, rw->v,
			    rw->vlen, rw->expires_at);
			if (rw->raw)
				w->type = WREQ_KV_SET_RAW;
		}
		w->durability = (uint8_t)dur;
		w->reserved = rw->reserved;
		w->resp = 1;
		cmd_write_take(ctx, w);
		ss->last_write = w->seq;
		if (dur == PROTO_DUR_ASYNC) {
			/* Acknowledged on receipt: visible now. */
			writer_submit(ctx->writer, w);
			cmd_ack_write(ctx, w, 0, NULL);
			continue;
		}
		if (i + 1 == n) {
			wreq_set_id(w, out->buf + mark, out->len - mark);
			out->len = mark;
			if (slot == NULL) {
				slot = server_slot_new(ss->conn, op);
				ss->unacked++;
			}
			cmd_write_owner(ctx, w, slot);
		}
		writer_submit(ctx->writer, w);
	}
	return dur == PROTO_DUR_ASYNC ? CMD_DONE : CMD_DEFERRED;
}

/* Take the writes the command decided (see take_writes). */
static enum cmd_result
rx_commit(struct rx *x, struct slot *slot)
{
	enum cmd_result res;

	res = take_writes(x->ctx, x->ss, x->r->w, x->r->nw, x->out, x->mark,
	    slot, x->def->name);
	x->r->nw = 0;
	return res;
}

/*
 * A copy of argv[0..argc) that outlives the input buffer: the views in the
 * returned array point into *bytes (both the caller's to free).
 */
static struct resp_arg *
argv_copy(size_t argc, const struct resp_arg *argv, char **bytes)
{
	struct resp_arg *cp = xcalloc(argc, sizeof(*cp));
	size_t		 i, n = 0;
	char		*p;

	for (i = 0; i < argc; i++)
		n += argv[i].len;
	p = *bytes = xmalloc(n > 0 ? n : 1);
	for (i = 0; i < argc; i++) {
		memcpy(p, argv[i].p, argv[i].len);
		cp[i].p = p;
		cp[i].len = argv[i].len;
		p += argv[i].len;
	}
	return cp;
}

static void rlookup_done(struct rjob *job);

/* Set the command aside: copy it, and look up every key it names. */
static enum cmd_result
rx_defer(struct rx *x, int count)
{
	struct rlookup	  *lk = xcalloc(1, sizeof(*lk));
	struct rjob	  *job = xcalloc(1, sizeof(*job));
	const struct rdef *d = x->def;
	size_t		   i, last;

	lk->ctx = x->ctx;
	lk->def = d;
	lk->write = (d->flags & RC_WRITE) != 0;
	lk->argc = x->argc;
	lk->argv = argv_copy(x->argc, x->argv, &lk->bytes);
	wbuf_init(&job->out);
	job->done = rlookup_done;
	job->arg = lk;
	if (count) {
		char params[32];
		int  len = snprintf(
		     params, sizeof(params), "[%lld]", (long long)wall_ms());

		job->type = RJOB_QUERY;
		/*
		 * DBSIZE's count, then for INFO the keys with an expiry and
		 * the milliseconds left to them all (a float: total() does
		 * not overflow).
		 */
		job->sql = xstrdup("SELECT count(*), count(expires_at), "
				   "total(expires_at - ?1) FROM stash_kv WHERE "
				   "expires_at IS NULL OR expires_at > ?1");
		job->sql_len = strlen(job->sql);
		job->params = xstrdup(params);
		job->params_len = (size_t)len;
	} else {
		job->type = RJOB_LOOKUP;
		last = d->last < 0 ? x->argc - 1 : (size_t)d->last;
		job->keys = xcalloc(x->argc, sizeof(*job->keys));
		for (i = (size_t)d->first; i <= last && i < x->argc;
		     i += (size_t)d->step) {
			struct rkey *k = &job->keys[job->nkeys++];

			k->key = xmalloc(x->argv[i].len);
			memcpy(k->key, x->argv[i].p, x->argv[i].len);
			k->klen = x->argv[i].len;
		}
		job_sort(job);
	}
	lk->slot = server_slot_new(x->ss->conn, d->name);
	/* Nothing after it on the connection may overtake it. */
	x->ss->reads++;
	if (lk->write)
		x->ss->unacked++;
	x->out->len = x->mark;
	reader_submit(x->ctx->reader, job);
	return CMD_DEFERRED;
}

static void
rlookup_free(struct rlookup *lk)
{
	free(lk->argv);
	free(lk->bytes);
	free(lk);
}

/* Run the handler of x->def; CMD_DONE with the reply in x->out. */
static enum cmd_result
rx_exec(struct rx *x, struct slot *slot)
{
	x->r->nw = 0;
	x->mark = x->out->len;
	x->def->fn(x);
	if (x->failed)
		return CMD_DONE;
	if (x->unknown) {
		if (slot == NULL)
			return rx_defer(x, 0);
		/* The lookup answered for every key: cannot happen. */
		rx_error(x, ERR_INTERNAL, "a key's state is unknown");
		return CMD_DONE;
	}
	if (x->r->nw > 0)
		return rx_commit(x, slot);
	return CMD_DONE;
}

/*
 * A lookup is back: is its snapshot recent enough for the keys the cache
 * lacks? If so, cache what it found for them and return 1; else submit
 * it again (0).
 */
static int
lookup_ready(struct cmd_ctx *ctx, struct rjob *job)
{
	size_t i;

	for (i = 0; i < job->nkeys; i++)
		if (cache_peek(ctx->cache, job->keys[i].key,
			job->keys[i].klen) == NULL &&
		    job->snapshot_seq < ctx->applied_seq) {
			for (i = 0; i < job->nkeys; i++) {
				free(job->keys[i].value);
				job->keys[i].value = NULL;
				job->keys[i].found = 0;
			}
			reader_submit(ctx->reader, job);
			return 0;
		}
	for (i = 0; i < job->nkeys; i++)
		if (cache_peek(ctx->cache, job->keys[i].key,
			job->keys[i].klen) == NULL)
			cmd_lookup_fill(ctx, &job->keys[i]);
	return 1;
}

/*
 * What follows a deferred command's run: the lookup no longer holds the
 * connection; the reply (r->reply) goes to its slot when it is not a
 * write's (res CMD_DONE), and the commands that waited go on.
 */
static void
lookup_answer(struct rcmd *r, struct cmd_session *ss, struct conn *c,
    struct slot *slot, enum cmd_result res, int write)
{
	int alive = 1;

	ss->reads--;
	if (res == CMD_DONE) {
		/* Answered without a write waiting for its acknowledgement. */
		if (write && ss->unacked > 0)
			ss->unacked--;
		alive = server_slot_answer(slot, r->reply.buf, r->reply.len);
		wbuf_reset(&r->reply);
	}
	if (alive)
		server_conn_resume(c);
}

/*
 * The row of the count query, "N,E,S]" after its "[[": N keys, E of them
 * with an expiry, S milliseconds left to those together.
 */
static void
keyspace_parse(const char *p, struct rkeyspace *ks)
{
	char  *end;
	double ms, avg;

	ks->keys = strtoull(p, &end, 10);
	if (*end != ',')
		return;
	ks->expires = strtoull(end + 1, &end, 10);
	if (*end != ',')
		return;
	ms = strtod(end + 1, NULL);
	if (ks->expires > 0 && ms > 0) {
		avg = ms / (double)ks->expires;
		ks->avg_ttl_ms = avg >= 1.8e19 ? UINT64_MAX : (uint64_t)avg;
	}
}

/* A reader finished a lookup or a count (loop thread). */
static void
rlookup_done(struct rjob *job)
{
	struct rlookup	   *lk = job->arg;
	struct cmd_ctx	   *ctx = lk->ctx;
	struct rcmd	   *r = rcmd_get(ctx);
	struct cmd_session *ss;
	struct conn	   *c;
	struct rx	    x;
	enum cmd_result	    res = CMD_DONE;

	if ((c = server_slot_conn(lk->slot)) == NULL) {
		server_slot_answer(lk->slot, "", 0);
		goto done;
	}
	ss = server_conn_session(c);
	memset(&x, 0, sizeof(x));
	x.ctx = ctx;
	x.ss = ss;
	x.r = r;
	x.def = lk->def;
	x.argc = lk->argc;
	x.argv = lk->argv;
	x.job = job;
	x.out = &r->reply;
	wbuf_reset(&r->reply);
	if (job->status != STORE_OK) {
		cmd_resp_error(ctx, x.out, ERR_UNAVAILABLE,
		    job->message ? job->message : "cannot read the database");
	} else if (job->type == RJOB_QUERY) {
		const char *p =
		    job->out.buf != NULL
			? memmem(job->out.buf, job->out.len, "[[", 2)
			: NULL;
		struct rkeyspace ks = {0, 0, 0};

		if (p != NULL)
			keyspace_parse(p + 2, &ks);
		if (x.def->fn == h_counted && strcmp(x.def->name, "info") == 0)
			rx_info(&x, &ks);
		else
			r_int(x.out, (int64_t)ks.keys);
	} else {
		if (!lookup_ready(ctx, job))
			return; /* looked up again */
		res = rx_exec(&x, lk->slot);
	}
	lookup_answer(r, ss, c, lk->slot, res, lk->write);
done:
	rjob_free(job);
	rlookup_free(lk);
}

/* Redis's words for an unknown command: its name, then its args. */
static void
unknown_command(
    struct cmd_ctx *ctx, const struct resp_cmd *cmd, struct wbuf *out)
{
	char   msg[400];
	size_t i, len, start, arg;

	/* The name (up to 128 bytes), the args while under 128 bytes. */
	len = (size_t)snprintf(msg, sizeof(msg),
	    "unknown command '%.*s', with args beginning with: ",
	    (int)(cmd->argv[0].len > 128 ? 128 : cmd->argv[0].len),
	    cmd->argv[0].p);
	start = len;
	for (i = 1; i < cmd->argc && len - start < 128; i++) {
		arg = cmd->argv[i].len;
		if (arg > 128 - (len - start))
			arg = 128 - (len - start);
		len += (size_t)snprintf(msg + len, sizeof(msg) - len, "'%.*s' ",
		    (int)arg, cmd->argv[i].p);
	}
	cmd_resp_error(ctx, out, ERR_BAD_REQUEST, msg);
}

/* Has cmd the number of arguments d takes? Else the error, in out. */
static int
arity_ok(struct cmd_ctx *ctx, const struct rdef *d, const struct resp_cmd *cmd,
    struct wbuf *out)
{
	char msg[96];

	if (arity_fits(d->arity, cmd->argc))
		return 1;
	cmd_resp_error(
	    ctx, out, ERR_BAD_REQUEST, arity_text(msg, sizeof(msg), d->name));
	return 0;
}

/*
 * Transactions: MULTI queues the commands that follow (each answered
 * QUEUED), EXEC runs them as one, DISCARD drops them. EXEC runs every
 * command in one turn of the loop, nothing of another client between
 * them: it first makes sure every key they name is known (in the cache,
 * or with a write pending), looking the others up in SQLite first, as a
 * single command does. A command sees the transaction's earlier writes.
 * The writes are taken together at the end, in order, each with its
 * sequence number, the room they need in the cache reserved for all of
 * them first (-OOM for the whole EXEC, nothing taken, when it is short),
 * and the answer (an array of every command's reply) goes out with the
 * last of them, once it is durable as the connection's durability says.
 * A command that fails at run time (INCR of text) answers its error in
 * the array and the others go on, as in Redis; one that cannot be
 * queued (unknown, wrong arity, a command stashd does not run inside a
 * transaction) makes EXEC answer EXECABORT. WATCH notes keys' states
 * (rx_stamp); EXEC does not run, and answers a null array, when one of
 * them changed since.
 */

/* EXEC set aside for a lookup of the keys the cache lacks. */
struct rtxlookup {
	struct cmd_ctx *ctx;
	struct slot    *slot;
	struct rtx     *tx;
};

static void
rwatch_free(struct rwatch *wa)
{
	size_t i;

	if (wa == NULL)
		return;
	for (i = 0; i < wa->n; i++)
		free(wa->k[i].key);
	free(wa->k);
	free(wa);
}

/*
 * The state of key: whether it exists, and its version: the sequence
 * number of its last write, a DEL's included while the cache or the
 * write queue remembers it (0 for a key never seen). latest: with a
 * write not yet acknowledged, if there is one; else what reads see. 0
 * when only SQLite knows (and job has no answer for it).
 *
 * What SQLite does not keep is a DEL's version: once a DEL is applied and
 * its tombstone gone from the cache, the key reads as never seen (0).
 * rtx_watched_changed asks cmd_deleted_since then.
 *
 * WATCH notes what reads see, and EXEC compares it with the latest: a
 * write pending at WATCH (which the client's GET did not see) or taken
 * since then makes them differ, and EXEC does not run.
 */
static int
rx_stamp(struct cmd_ctx *ctx, const struct rjob *job, const char *key,
    size_t klen, int latest, int *exists, uint64_t *version)
{
	int64_t		    now = wall_ms();
	struct kstate	   *ks;
	struct wreq	   *w;
	struct cache_entry *e;
	const struct rkey  *k;

	*exists = 0;
	*version = 0;
	if (latest && (ks = keymap_find(ctx->keys, key, klen)) != NULL &&
	    (w = ks->last) != NULL) {
		*exists = w->type != WREQ_KV_DEL &&
			  (w->expires_at == 0 || w->expires_at > now);
		*version = w->seq;
		return 1;
	}
	if ((e = cache_peek(ctx->cache, key, klen)) != NULL) {
		*exists = !cache_entry_absent(ctx->cache, e);
		*version = cache_entry_version(e); /* a DEL's, when absent */
		return 1;
	}
	if (rx_complete(ctx))
		return 1;
	if ((k = job_key(job, key, klen)) == NULL)
		return 0;
	if (k->found) {
		*exists = k->expires_at == 0 || k->expires_at > now;
		*version = k->version;
	}
	return 1;
}

/* Forget the writes staged so far. */
static void
rtx_unstage(struct rtx *tx)
{
	size_t i;

	for (i = 0; i < tx->nst; i++)
		free(tx->own[i]);
	tx->nst = 0;
}

static void
rtx_free(struct rtx *tx)
{
	size_t i;

	if (tx == NULL)
		return;
	tx->ctx->tx_bytes -= tx->bytes;
	rwatch_free(tx->watch);
	for (i = 0; i < tx->n; i++) {
		free(tx->cmds[i].argv);
		free(tx->cmds[i].bytes);
	}
	rtx_unstage(tx);
	free(tx->cmds);
	free(tx->st);
	free(tx->own);
	free(tx);
}

void
rcmd_session_close(struct cmd_session *ss)
{
	rtx_free(ss->tx);
	ss->tx = NULL;
	rwatch_free(ss->watch);
	ss->watch = NULL;
}

/* The latest write of key the transaction decided, or NULL. */
static const struct rwrite *
rtx_staged(const struct rtx *tx, const char *key, size_t klen)
{
	size_t i;

	for (i = tx->nst; i-- > 0;)
		if (tx->st[i].klen == klen &&
		    memcmp(tx->st[i].key, key, klen) == 0)
			return &tx->st[i];
	return NULL;
}

/* Keep the writes a command decided (r->w) for the later ones. */
static void
rtx_stage(struct rtx *tx, struct rcmd *r)
{
	struct rwrite *rw, *st;
	size_t	       i, vlen;
	char	      *p;

	for (i = 0; i < r->nw; i++) {
		rw = &r->w[i];
		if (tx->nst == tx->capst) {
			tx->capst = tx->capst == 0 ? 16 : tx->capst * 2;
			tx->st =
			    xreallocarray(tx->st, tx->capst, sizeof(*tx->st));
			tx->own =
			    xreallocarray(tx->own, tx->capst, sizeof(*tx->own));
		}
		/* A copy: the command's values live in its buffers. */
		vlen = rw->del ? 0 : rw->vlen;
		p = tx->own[tx->nst] = xmalloc(rw->klen + vlen + 1);
		memcpy(p, rw->key, rw->klen);
		if (vlen > 0)
			memcpy(p + rw->klen, rw->v, vlen);
		st = &tx->st[tx->nst++];
		*st = *rw;
		st->key = p;
		st->v = p + rw->klen;
		st->vlen = vlen;
		st->reserved = 0;
	}
	r->nw = 0;
}

/* Is key's state known without SQLite (as rx_state would find it)? */
static int
rtx_known(struct cmd_ctx *ctx, const struct rtx *tx, const struct rjob *job,
    const char *key, size_t klen)
{
	struct kstate *ks;

	if (tx->writes && (ks = keymap_find(ctx->keys, key, klen)) != NULL &&
	    ks->last != NULL)
		return 1;
	if (cache_peek(ctx->cache, key, klen) != NULL || rx_complete(ctx))
		return 1;
	return job_key(job, key, klen) != NULL;
}

/*
 * fn for every key tx names, its commands' then its watched ones, until
 * fn returns nonzero: that value, else 0.
 */
static int
rtx_each_key(
    const struct rtx *tx, int (*fn)(const char *, size_t, void *), void *arg)
{
	const struct rdef *d;
	size_t		   i, k, last;
	int		   rc;

	for (i = 0; i < tx->n; i++) {
		d = tx->cmds[i].def;
		if (d->first == 0)
			continue;
		last = d->last < 0 ? tx->cmds[i].argc - 1 : (size_t)d->last;
		for (k = (size_t)d->first; k <= last && k < tx->cmds[i].argc;
		     k += (size_t)d->step)
			if ((rc = fn(tx->cmds[i].argv[k].p,
				 tx->cmds[i].argv[k].len, arg)) != 0)
				return rc;
	}
	for (i = 0; tx->watch != NULL && i < tx->watch->n; i++)
		if ((rc = fn(tx->watch->k[i].key, tx->watch->k[i].klen, arg)) !=
		    0)
			return rc;
	return 0;
}

/* What rtx_each_key's callbacks work with. */
struct rtxkeys {
	struct cmd_ctx	  *ctx;
	const struct rtx  *tx;
	const struct rjob *known; /* a lookup's answers, or NULL */
	struct rjob	  *job;	  /* the lookup being built */
	struct slot	  *slot;  /* set: a second lookup, of every key */
};

static int
rtx_key_unknown(const char *key, size_t klen, void *arg)
{
	struct rtxkeys *k = arg;

	return !rtx_known(k->ctx, k->tx, k->known, key, klen);
}

/* Into the lookup being built: key, unless known (first lookup only). */
static int
rtx_add_key(const char *key, size_t klen, void *arg)
{
	struct rtxkeys *k = arg;
	struct rkey    *rk;

	if (k->slot == NULL && rtx_known(k->ctx, k->tx, NULL, key, klen))
		return 0;
	rk = &k->job->keys[k->job->nkeys++];
	rk->key = xmalloc(klen);
	memcpy(rk->key, key, klen);
	rk->klen = klen;
	return 0;
}

/*
 * Look up the keys of tx that are not known, then run it again (slot:
 * the answer's place, taken now when NULL). A second lookup (slot given:
 * a key the cache held was evicted meanwhile) takes every key of tx, so
 * that its answers know them all. CMD_DEFERRED.
 */
static void rtx_lookup_done(struct rjob *job);

static enum cmd_result
rtx_defer(struct cmd_ctx *ctx, struct cmd_session *ss, struct rtx *tx,
    struct slot *slot)
{
	struct rtxlookup *lk = xcalloc(1, sizeof(*lk));
	struct rtxkeys	  k = {ctx, tx, NULL, xcalloc(1, sizeof(*k.job)), slot};
	size_t		  i, nkeys = 0;

	for (i = 0; i < tx->n; i++)
		nkeys += tx->cmds[i].argc;
	if (tx->watch != NULL)
		nkeys += tx->watch->n;
	k.job->type = RJOB_LOOKUP;
	k.job->keys = xcalloc(nkeys > 0 ? nkeys : 1, sizeof(*k.job->keys));
	rtx_each_key(tx, rtx_add_key, &k);
	job_sort(k.job);
	wbuf_init(&k.job->out);
	k.job->done = rtx_lookup_done;
	k.job->arg = lk;
	lk->ctx = ctx;
	lk->tx = tx;
	if ((lk->slot = slot) == NULL) {
		lk->slot = server_slot_new(ss->conn, "exec");
		/* Nothing after it on the connection may overtake it. */
		ss->reads++;
		if (tx->writes)
			ss->unacked++;
	}
	reader_submit(ctx->reader, k.job);
	return CMD_DEFERRED;
}

/* Does tx name a key that is not known? */
static int
rtx_unknown(struct cmd_ctx *ctx, const struct rtx *tx, const struct rjob *job)
{
	struct rtxkeys k = {ctx, tx, job, NULL, NULL};

	return rtx_each_key(tx, rtx_key_unknown, &k);
}

/* Has a key WATCH noted changed since (every key known)? */
static int
rtx_watched_changed(
    struct cmd_ctx *ctx, const struct rtx *tx, const struct rjob *job)
{
	const struct rwatched *k;
	uint64_t	       version;
	size_t		       i;
	int		       exists;

	for (i = 0; tx->watch != NULL && i < tx->watch->n; i++) {
		k = &tx->watch->k[i];
		if (!rx_stamp(
			ctx, job, k->key, k->klen, 1, &exists, &version) ||
		    exists != k->exists)
			return 1;
		if (exists || version != 0) {
			if (version != k->version)
				return 1;
			continue;
		}
		/*
		 * Absent then and now, with no version to tell now: its
		 * tombstone, if WATCH saw one, is gone with its delete
		 * applied. It may also have been written and deleted since,
		 * that delete applied (an applied delete leaves nothing
		 * behind): the deletes applied since tell.
		 */
		if (cmd_deleted_since(ctx, k->key, k->klen, k->seq))
			return 1;
	}
	return 0;
}

/* Take the writes tx decided (see take_writes); frees tx. */
static enum cmd_result
rtx_commit(struct cmd_ctx *ctx, struct cmd_session *ss, struct rtx *tx,
    struct wbuf *out, size_t mark, struct slot *slot)
{
	enum cmd_result res = CMD_DONE;

	if (tx->nst > 0)
		res = take_writes(
		    ctx, ss, tx->st, tx->nst, out, mark, slot, "exec");
	rtx_free(tx);
	return res;
}

/*
 * The fault points exec-evict and exec-drop: key leaves the cache unless
 * pinned, as if evicted (or expired) meanwhile.
 */
static int
rtx_evict_key(const char *key, size_t klen, void *arg)
{
	struct cmd_ctx		 *ctx = arg;
	const struct cache_entry *e = cache_peek(ctx->cache, key, klen);

	if (e != NULL && !(cache_entry_flags(e) & CACHE_F_PINNED))
		(void)cache_del(ctx->cache, key, klen);
	return 0;
}

/*
 * Run tx: every command, in one go, once every key is known (job: a
 * lookup's answers). Frees tx or hands it to a lookup (*again set).
 */
static enum cmd_result
rtx_run(struct cmd_ctx *ctx, struct cmd_session *ss, struct rtx *tx,
    struct wbuf *out, struct slot *slot, struct rjob *job, int *again)
{
	struct rcmd *r = rcmd_get(ctx);
	struct rx    x;
	size_t	     mark = out->len, i;

	*again = 0;
	if (rtx_unknown(ctx, tx, job)) {
		*again = 1;
		return rtx_defer(ctx, ss, tx, slot);
	}
	if (rtx_watched_changed(ctx, tx, job)) {
		/* Not run: a null array, as Redis answers. */
		wbuf_adds(out, ss->resp3 ? "_\r\n" : "*-1\r\n");
		rtx_free(tx);
		return CMD_DONE;
	}
	r_array(out, tx->n);
	for (i = 0; i < tx->n; i++) {
		if (i > 0 && FAULT_POINT("exec-drop"))
			rtx_each_key(tx, rtx_evict_key, ctx);
		memset(&x, 0, sizeof(x));
		x.ctx = ctx;
		x.ss = ss;
		x.r = r;
		x.def = tx->cmds[i].def;
		x.argc = tx->cmds[i].argc;
		x.argv = tx->cmds[i].argv;
		x.job = job;
		x.tx = tx;
		x.out = out;
		x.mark = out->len;
		r->nw = 0;
		x.def->fn(&x);
		if (x.failed)
			continue;
		if (x.unknown) {
			/*
			 * A key known a moment ago is not now (it expired in
			 * between): nothing is taken yet, so drop
			 * what ran and look its keys up first.
			 */
			out->len = mark;
			r->nw = 0;
			rtx_unstage(tx);
			*again = 1;
			return rtx_defer(ctx, ss, tx, slot);
		}
		rtx_stage(tx, r);
	}
	return rtx_commit(ctx, ss, tx, out, mark, slot);
}

/* The lookup of an EXEC's keys is done (loop thread). */
static void
rtx_lookup_done(struct rjob *job)
{
	struct rtxlookup   *lk = job->arg;
	struct cmd_ctx	   *ctx = lk->ctx;
	struct rcmd	   *r = rcmd_get(ctx);
	struct cmd_session *ss;
	struct conn	   *c;
	enum cmd_result	    res = CMD_DONE;
	int		    writes = lk->tx->writes, again = 0;

	if ((c = server_slot_conn(lk->slot)) == NULL) {
		server_slot_answer(lk->slot, "", 0);
		goto done;
	}
	ss = server_conn_session(c);
	wbuf_reset(&r->reply);
	if (job->status != STORE_OK)
		cmd_resp_error(ctx, &r->reply, ERR_UNAVAILABLE,
		    job->message ? job->message : "cannot read the database");
	else {
		if (!lookup_ready(ctx, job))
			return; /* looked up again */
		if (FAULT_POINT("exec-evict"))
			rtx_each_key(lk->tx, rtx_evict_key, ctx);
		res =
		    rtx_run(ctx, ss, lk->tx, &r->reply, lk->slot, job, &again);
		lk->tx = NULL; /* run and freed, or another lookup's */
		if (again)
			goto done; /* that lookup answers the slot */
	}
	lookup_answer(r, ss, c, lk->slot, res, writes);
done:
	rjob_free(job);
	rtx_free(lk->tx);
	free(lk);
}

/* Queue cmd in the open transaction: QUEUED, or its error (dirty). */
static void
rtx_queue(struct cmd_ctx *ctx, struct cmd_session *ss,
    const struct resp_cmd *cmd, struct wbuf *out)
{
	struct rtx	  *tx = ss->tx;
	struct rtxcmd	  *q;
	const struct rdef *d;
	char		   msg[128];
	size_t		   i, n = 0;

	ctx->stats->requests++;
	for (i = 0; i < cmd->argc; i++)
		n += cmd->argv[i].len;
	if ((d = rdef_find(cmd->argv[0].p, cmd->argv[0].len)) == NULL)
		unknown_command(ctx, cmd, out);
	else if (!arity_ok(ctx, d, cmd, out))
		;
	else if ((d->flags & RC_COUNT) ||
		 (!(d->flags & (RC_READ | RC_WRITE)) && d->fn != h_ping &&
		     d->fn != h_echo && d->fn != h_unwatch)) {
		snprintf(msg, sizeof(msg),
		    "'%s' is not run inside MULTI by stashd", d->name);
		cmd_resp_error(ctx, out, ERR_BAD_REQUEST, msg);
	} else if ((d->flags & RC_WRITE) && ss->role < ROLE_WRITE) {
		snprintf(msg, sizeof(msg), "uid %lu may only read", ss->uid);
		cmd_resp_error(ctx, out, ERR_FORBIDDEN, msg);
	} else if (!keys_ok(d, cmd->argc, cmd->argv))
		cmd_resp_error(ctx, out, ERR_BAD_REQUEST, KEYS_BAD);
	else if (tx->n == RTX_CMDS_MAX || tx->bytes + n > RTX_BYTES_MAX)
		cmd_resp_error(ctx, out, ERR_BAD_REQUEST,
		    "a transaction holds at most 4096 commands and 16MB");
	else if (ctx->tx_bytes + n > ctx->write_queue_max) {
		/* All open transactions together: the write queue's size. */
		ctx->stats->errors[ERR_BUSY]++;
		wbuf_adds(out, "-OOM the open transactions hold "
			       "write_queue_max of commands already\r\n");
	} else {
		if (tx->n == tx->cap) {
			tx->cap = tx->cap == 0 ? 8 : tx->cap * 2;
			tx->cmds =
			    xreallocarray(tx->cmds, tx->cap, sizeof(*tx->cmds));
		}
		q = &tx->cmds[tx->n++];
		q->def = d;
		q->argc = cmd->argc;
		q->argv = argv_copy(cmd->argc, cmd->argv, &q->bytes);
		tx->bytes += n;
		ctx->tx_bytes += n;
		if (d->flags & RC_WRITE)
			tx->writes = 1;
		wbuf_adds(out, "+QUEUED\r\n");
		return;
	}
	tx->dirty = 1;
}

/*
 * A wrong number of arguments to MULTI, EXEC, DISCARD, or to WATCH in a
 * transaction, checked first, as Redis does: the error marks an open
 * transaction (EXEC answers EXECABORT), and EXEC's own drops it and the
 * watched keys, open or not. 1 when it was one, answered.
 */
static int
rtx_arity_error(struct cmd_ctx *ctx, struct cmd_session *ss,
    const struct resp_cmd *cmd, struct wbuf *out)
{
	static const char *const names[] = {"multi", "exec", "discard"};
	const struct resp_arg	*name = &cmd->argv[0];
	const char		*bad = NULL;
	char			 msg[96];
	size_t			 i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (cmd->argc != 1 && arg_is(name, names[i]))
			bad = names[i];
	if (ss->tx != NULL && cmd->argc < 2 && arg_is(name, "watch"))
		bad = "watch";
	if (bad == NULL)
		return 0;
	ctx->stats->requests++;
	arity_text(msg, sizeof(msg), bad);
	if (strcmp(bad, "exec") == 0) {
		rcmd_session_close(ss);
		ctx->stats->errors[ERR_BAD_REQUEST]++;
		wbuf_adds(out, "-EXECABORT Transaction discarded because of: ");
		wbuf_adds(out, msg);
		wbuf_adds(out, "\r\n");
		return 1;
	}
	cmd_resp_error(ctx, out, ERR_BAD_REQUEST, msg);
	if (ss->tx != NULL)
		ss->tx->dirty = 1;
	return 1;
}

/*
 * MULTI, EXEC, DISCARD, and every command while a transaction is open
 * (QUIT aside, which closes the connection). 1 when cmd was taken here,
 * with *res.
 */
static int
rtx_command(struct cmd_ctx *ctx, struct cmd_session *ss,
    const struct resp_cmd *cmd, struct wbuf *out, enum cmd_result *res)
{
	const struct resp_arg *name = &cmd->argv[0];
	struct rtx	      *tx = ss->tx;
	int		       again;

	*res = CMD_DONE;
	/* The common case first, at the cost of a length. */
	if (tx == NULL && name->len != 4 && name->len != 5 && name->len != 7)
		return 0;
	if (rtx_arity_error(ctx, ss, cmd, out))
		return 1;
	if (arg_is(name, "multi")) {
		ctx->stats->requests++;
		if (tx != NULL)
			cmd_resp_error(ctx, out, ERR_BAD_REQUEST,
			    "MULTI calls can not be nested");
		else {
			ss->tx = xcalloc(1, sizeof(*ss->tx));
			ss->tx->ctx = ctx;
			wbuf_adds(out, "+OK\r\n");
		}
		return 1;
	}
	if (arg_is(name, "discard")) {
		ctx->stats->requests++;
		if (tx == NULL)
			cmd_resp_error(
			    ctx, out, ERR_BAD_REQUEST, "DISCARD without MULTI");
		else {
			rcmd_session_close(ss); /* the watched keys too */
			wbuf_adds(out, "+OK\r\n");
		}
		return 1;
	}
	if (tx != NULL && arg_is(name, "watch")) {
		ctx->stats->requests++;
		cmd_resp_error(ctx, out, ERR_BAD_REQUEST,
		    "WATCH inside MULTI is not allowed");
		return 1;
	}
	if (arg_is(name, "exec")) {
		if (tx == NULL) {
			ctx->stats->requests++;
			cmd_resp_error(
			    ctx, out, ERR_BAD_REQUEST, "EXEC without MULTI");
			return 1;
		}
		if (tx->dirty) {
			ctx->stats->requests++;
			rcmd_session_close(ss);
			ctx->stats->errors[ERR_BAD_REQUEST]++;
			wbuf_adds(out, "-EXECABORT Transaction discarded "
				       "because of previous errors.\r\n");
			return 1;
		}
		/* After everything before it on the connection. */
		if (ss->unacked > 0 || ss->reads > 0) {
			*res = CMD_WAIT;
			return 1;
		}
		if (tx->writes &&
		    ctx->unapplied_bytes >= ctx->write_queue_max) {
			if (!ss->queued) {
				TAILQ_INSERT_TAIL(&ctx->waiters, ss, wentry);
				cmd_kick_apply(ctx, ctx->seq);
				ss->queued = 1;
			}
			*res = CMD_WAIT;
			return 1;
		}
		ctx->stats->requests++;
		ctx->last_op = "exec";
		ss->tx = NULL;
		tx->watch = ss->watch; /* EXEC ends the watch */
		ss->watch = NULL;
		*res = rtx_run(ctx, ss, tx, out, NULL, NULL, &again);
		return 1;
	}
	if (tx == NULL || arg_is(name, "quit"))
		return 0;
	rtx_queue(ctx, ss, cmd, out);
	return 1;
}

enum cmd_result
rcmd_run(struct cmd_ctx *ctx, struct cmd_session *ss,
    const struct resp_cmd *cmd, struct wbuf *out)
{
	struct rx	   x;
	const struct rdef *d;
	char		   msg[64];
	enum cmd_result	   res;
	int		   full = ctx->unapplied_bytes >= ctx->write_queue_max;

	if (cmd->argc == 0)
		return CMD_DONE;
	if (rtx_command(ctx, ss, cmd, out, &res))
		return res;
	if ((d = rdef_find(cmd->argv[0].p, cmd->argv[0].len)) == NULL) {
		ctx->stats->requests++;
		unknown_command(ctx, cmd, out);
		return CMD_DONE;
	}
	if (!arity_ok(ctx, d, cmd, out)) {
		ctx->stats->requests++;
		return CMD_DONE;
	}
	if ((d->flags & RC_READ) && ss->unacked > 0)
		return CMD_WAIT;
	if ((d->flags & RC_COUNT) && !ss->count_wait &&
	    ctx->seq > ctx->applied_seq) {
		/*
		 * It counts in SQLite: once every write taken before it is
		 * applied there (the connection waits like a query after its
		 * own writes). Only those: the writes taken while it waits
		 * do not hold it back again, or a steady stream of them
		 * would hold it forever.
		 */
		ss->last_write = ctx->seq;
		ss->count_wait = 1;
	}
	if ((d->flags & RC_COUNT) && ss->count_wait) {
		if (ss->last_write > ctx->applied_seq) {
			if (!ss->apply_wait) {
				TAILQ_INSERT_TAIL(
				    &ctx->apply_waiters, ss, aentry);
				ss->apply_wait = 1;
				cmd_kick_apply(ctx, ss->last_write);
			}
			return CMD_WAIT;
		}
		ss->count_wait = 0;
	}
	if ((d->flags & RC_WRITE) && ss->reads > 0)
		return CMD_WAIT;
	if ((d->flags & RC_WRITE) && full) {
		if (!ss->queued) {
			TAILQ_INSERT_TAIL(&ctx->waiters, ss, wentry);
			cmd_kick_apply(ctx, ctx->seq);
			ss->queued = 1;
		}
		return CMD_WAIT;
	}
	ctx->stats->requests++;
	ctx->last_op = d->name;
	if ((d->flags & RC_WRITE) && ss->role < ROLE_WRITE) {
		snprintf(msg, sizeof(msg), "uid %lu may only read", ss->uid);
		cmd_resp_error(ctx, out, ERR_FORBIDDEN, msg);
		return CMD_DONE;
	}
	memset(&x, 0, sizeof(x));
	x.ctx = ctx;
	x.ss = ss;
	x.r = rcmd_get(ctx);
	x.def = d;
	x.argc = cmd->argc;
	x.argv = cmd->argv;
	x.out = out;
	x.mark = out->len;
	if (!rx_keys_ok(&x))
		return CMD_DONE;
	if (d->flags & RC_COUNT)
		return rx_defer(&x, 1);
	return rx_exec(&x, NULL);
}

void
rcmd_protocol_error(struct cmd_ctx *ctx, struct wbuf *out, const char *why)
{
	cmd_resp_error(ctx, out, ERR_BAD_REQUEST, why);
}

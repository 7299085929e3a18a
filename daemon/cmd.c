/*
 * cmd.c -- the operations of protocol v1 against the cache.
 *
 * cmd_line() is the one dispatch function: it parses a request (proto.c),
 * runs it and writes exactly one answer line. Every answer starts with
 * {"ok":true or {"ok":false, then the request's "id" when it had one, so a
 * client can match answers even if it lost count.
 *
 * Writes get a sequence number: the version of the value they produce.
 * Versions only grow. With no store behind it yet, the cache is the whole
 * database: set and del change it directly and every durability level is
 * accepted (and validated) but means "in memory".
 */
#include "config.h"

#include <string.h>

#include "cache.h"
#include "cmd.h"
#include "stash-protocol.h"
#include "wbuf.h"

/* Start an answer: {"ok":true or false, and the id when there is one. */
static void
reply_begin(struct wbuf *out, const struct proto_request *req, int ok)
{
	if (ok)
		wbuf_add(out, "{\"ok\":true", 10);
	else
		wbuf_add(out, "{\"ok\":false", 11);
	if (req != NULL && req->id != NULL) {
		wbuf_add(out, ",\"id\":", 6);
		wbuf_add(out, req->id, req->id_len);
	}
}

static void
reply_end(struct wbuf *out)
{
	wbuf_add(out, "}\n", 2);
}

/* An error answer, echoing req's id when req is not NULL. */
static void
reply_error(struct cmd_ctx *ctx, struct wbuf *out,
    const struct proto_request *req, enum stats_err code, const char *msg)
{
	const char *name = stats_err_code(code);

	ctx->stats->errors[code]++;
	reply_begin(out, req, 0);
	wbuf_add(out, ",\"error\":{\"code\":\"", 18);
	wbuf_adds(out, name);
	wbuf_add(out, "\",\"message\":", 12);
	wbuf_add_jstr(out, msg, strlen(msg));
	wbuf_add(out, "}}\n", 3);
}

void
cmd_error(struct cmd_ctx *ctx, struct wbuf *out, enum stats_err code,
    const char *message)
{
	reply_error(ctx, out, NULL, code, message);
}

/* The error answer of a failed cache_set. */
static void
reply_cache_error(struct cmd_ctx *ctx, struct wbuf *out,
    const struct proto_request *req, int rc)
{
	switch (rc) {
	case CACHE_EFULL:
		reply_error(ctx, out, req, ERR_BUSY,
		    "cache is full of entries that cannot be evicted yet");
		break;
	case CACHE_EINVAL:
		reply_error(ctx, out, req, ERR_TOO_LARGE,
		    "entry is larger than the cache");
		break;
	default:
		reply_error(ctx, out, req, ERR_INTERNAL, "out of memory");
		break;
	}
}

static void
cmd_ping(struct cmd_ctx *ctx, struct proto_request *req, struct wbuf *out)
{
	reply_begin(out, req, 1);
	reply_end(out);
}

static void
cmd_get(struct cmd_ctx *ctx, struct proto_request *req, struct wbuf *out)
{
	struct cache_entry *e;
	const void *v;
	size_t vlen;

	e = cache_get(ctx->cache, req->key, req->key_len);
	if (e == NULL || (cache_entry_flags(e) & CACHE_F_TOMBSTONE)) {
		reply_error(ctx, out, req, ERR_NOT_FOUND, "no such key");
		return;
	}
	v = cache_entry_value(e, &vlen);
	reply_begin(out, req, 1);
	wbuf_add(out, ",\"value\":", 9);
	wbuf_add(out, v, vlen);
	wbuf_add(out, ",\"version\":", 11);
	wbuf_add_u64(out, cache_entry_version(e));
	reply_end(out);
}

static void
cmd_mget(struct cmd_ctx *ctx, struct proto_request *req, struct wbuf *out)
{
	struct proto_keys_iter it;
	struct cache_entry *e;
	const char *key;
	const void *v;
	size_t klen, vlen;
	int first = 1;

	reply_begin(out, req, 1);
	wbuf_add(out, ",\"values\":[", 11);
	proto_keys_init(&it, req);
	while (proto_keys_next(&it, &key, &klen)) {
		if (!first)
			wbuf_addc(out, ',');
		first = 0;
		e = cache_get(ctx->cache, key, klen);
		if (e == NULL || (cache_entry_flags(e) & CACHE_F_TOMBSTONE)) {
			wbuf_add(out, "null", 4);
			continue;
		}
		v = cache_entry_value(e, &vlen);
		wbuf_add(out, v, vlen);
	}
	wbuf_addc(out, ']');
	reply_end(out);
}

/* The version now stored for key: 0 when absent. */
static uint64_t
current_version(struct cmd_ctx *ctx, const char *key, size_t klen)
{
	struct cache_entry *e;

	e = cache_peek(ctx->cache, key, klen);
	if (e == NULL || (cache_entry_flags(e) & CACHE_F_TOMBSTONE))
		return 0;
	return cache_entry_version(e);
}

static void
cmd_set(struct cmd_ctx *ctx, struct proto_request *req, struct wbuf *out)
{
	uint64_t version;
	int rc;

	ctx->stats->writes_received++;
	if (req->has_if_version &&
	    current_version(ctx, req->key, req->key_len) != req->if_version) {
		reply_error(ctx, out, req, ERR_CONFLICT,
		    req->if_version == 0 ? "key exists" :
		    "version does not match");
		return;
	}
	version = ctx->seq + 1;
	rc = cache_set(ctx->cache, req->key, req->key_len, req->value,
	    req->value_len, version, req->ttl, 0);
	if (rc != CACHE_OK) {
		reply_cache_error(ctx, out, req, rc);
		return;
	}
	ctx->seq = version;
	ctx->stats->last_seq = version;
	ctx->stats->writes_acknowledged++;
	reply_begin(out, req, 1);
	wbuf_add(out, ",\"version\":", 11);
	wbuf_add_u64(out, version);
	reply_end(out);
}

static void
cmd_del(struct cmd_ctx *ctx, struct proto_request *req, struct wbuf *out)
{
	int deleted;

	ctx->stats->writes_received++;
	deleted = current_version(ctx, req->key, req->key_len) != 0;
	if (deleted && cache_del(ctx->cache, req->key, req->key_len) !=
	    CACHE_OK) {
		reply_error(ctx, out, req, ERR_INTERNAL, "delete failed");
		return;
	}
	ctx->seq++;
	ctx->stats->last_seq = ctx->seq;
	ctx->stats->writes_acknowledged++;
	reply_begin(out, req, 1);
	if (deleted)
		wbuf_add(out, ",\"deleted\":true", 15);
	else
		wbuf_add(out, ",\"deleted\":false", 16);
	reply_end(out);
}

static void
cmd_stats(struct cmd_ctx *ctx, struct proto_request *req, struct wbuf *out)
{
	reply_begin(out, req, 1);
	wbuf_add(out, ",\"stats\":", 9);
	stats_render(ctx->stats, ctx->cache, out);
	reply_end(out);
}

/* Operations that need the SQLite store, which this build does not have. */
static void
cmd_unavailable(struct cmd_ctx *ctx, struct proto_request *req,
    struct wbuf *out)
{
	reply_error(ctx, out, req, ERR_UNAVAILABLE,
	    "this op needs the SQLite store, which is not enabled");
}

void
cmd_line(struct cmd_ctx *ctx, char *line, size_t len, struct wbuf *out)
{
	struct proto_request req;
	enum proto_status st;
	const char *msg;

	ctx->stats->requests++;
	st = proto_parse(line, len, &ctx->limits, &req, &msg);
	if (st != PROTO_OK) {
		reply_error(ctx, out, &req, st == PROTO_TOO_LARGE ?
		    ERR_TOO_LARGE : ERR_BAD_REQUEST, msg);
		return;
	}
	ctx->stats->ops[req.op]++;
	switch (req.op) {
	case PROTO_OP_PING:
		cmd_ping(ctx, &req, out);
		break;
	case PROTO_OP_GET:
		cmd_get(ctx, &req, out);
		break;
	case PROTO_OP_MGET:
		cmd_mget(ctx, &req, out);
		break;
	case PROTO_OP_SET:
		cmd_set(ctx, &req, out);
		break;
	case PROTO_OP_DEL:
		cmd_del(ctx, &req, out);
		break;
	case PROTO_OP_STATS:
		cmd_stats(ctx, &req, out);
		break;
	case PROTO_OP_SYNC:
		/* Every acknowledged write is applied the moment it is. */
		reply_begin(out, &req, 1);
		wbuf_add(out, ",\"applied_seq\":", 15);
		wbuf_add_u64(out, ctx->seq);
		reply_end(out);
		break;
	case PROTO_OP_EXEC:
	case PROTO_OP_QUERY:
		cmd_unavailable(ctx, &req, out);
		break;
	default:
		reply_error(ctx, out, &req, ERR_INTERNAL, "unhandled op");
		break;
	}
}

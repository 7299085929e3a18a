/*
 * stats.c -- counters and their rendering as the "stats" answer.
 *
 * The answer groups counters the way an operator reads them: server,
 * connections, cache, requests (by op and by error code), writes, process.
 * Names are stable: monitoring scripts depend on them.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cache.h"
#include "qpool.h"
#include "stash-protocol.h"
#include "stats.h"
#include "wbuf.h"

static const char *const stats_err_codes[ERR__COUNT] = {
    [ERR_BAD_REQUEST] = STASH_ERR_BAD_REQUEST,
    [ERR_NOT_FOUND] = STASH_ERR_NOT_FOUND,
    [ERR_TOO_LARGE] = STASH_ERR_TOO_LARGE,
    [ERR_CONFLICT] = STASH_ERR_CONFLICT,
    [ERR_SQL_ERROR] = STASH_ERR_SQL_ERROR,
    [ERR_BUSY] = STASH_ERR_BUSY,
    [ERR_UNAVAILABLE] = STASH_ERR_UNAVAILABLE,
    [ERR_FORBIDDEN] = STASH_ERR_FORBIDDEN,
    [ERR_INTERNAL] = STASH_ERR_INTERNAL,
};

void
stats_init(struct stats *st)
{
	memset(st, 0, sizeof(*st));
	if (clock_gettime(CLOCK_MONOTONIC, &st->started) == -1)
		memset(&st->started, 0, sizeof(st->started));
	st->started_wall = time(NULL);
}

const char *
stats_err_code(enum stats_err e)
{
	return stats_err_codes[e];
}

/* Resident set size from /proc/self/statm (its second field, in pages). */
uint64_t
stats_rss_bytes(void)
{
	unsigned long size, resident;
	long	      page;
	FILE	     *f;
	int	      n;

	if ((f = fopen("/proc/self/statm", "re")) == NULL)
		return 0;
	n = fscanf(f, "%lu %lu", &size, &resident);
	fclose(f);
	if (n != 2 || (page = sysconf(_SC_PAGESIZE)) <= 0)
		return 0;
	return (uint64_t)resident * (uint64_t)page;
}

/* "name":value, with a comma before all but the first of an object. */
static void
field_u64(struct wbuf *w, int *first, const char *name, uint64_t v)
{
	if (!*first)
		wbuf_addc(w, ',');
	*first = 0;
	wbuf_addc(w, '"');
	wbuf_adds(w, name);
	wbuf_adds(w, "\":");
	wbuf_add_u64(w, v);
}

/* "name":{ -- opens a nested object. */
static void
object_open(struct wbuf *w, int *first, const char *name)
{
	if (!*first)
		wbuf_addc(w, ',');
	*first = 0;
	wbuf_addc(w, '"');
	wbuf_adds(w, name);
	wbuf_adds(w, "\":{");
}

void
stats_render(const struct stats *st, struct cache *cache, struct wbuf *w)
{
	struct cache_stats cs;
	struct qpool_stats qs;
	struct timespec	   now;
	uint64_t	   uptime = 0;
	int		   top = 1, f;
	size_t		   i;

	if (clock_gettime(CLOCK_MONOTONIC, &now) == 0)
		uptime = (uint64_t)(now.tv_sec - st->started.tv_sec);
	cache_get_stats(cache, &cs);

	wbuf_addc(w, '{');
	object_open(w, &top, "server");
	f = 1;
	wbuf_adds(w, "\"version\":");
	wbuf_add_jstr(w, PACKAGE_VERSION, strlen(PACKAGE_VERSION));
	f = 0;
	field_u64(w, &f, "protocol", STASH_PROTOCOL_VERSION);
	field_u64(w, &f, "pid", (uint64_t)getpid());
	field_u64(w, &f, "uptime_s", uptime);
	field_u64(w, &f, "started_at", (uint64_t)st->started_wall);
	wbuf_addc(w, '}');

	object_open(w, &top, "connections");
	f = 1;
	field_u64(w, &f, "current", st->conn_current);
	field_u64(w, &f, "total", st->conn_total);
	field_u64(w, &f, "max", st->conn_max);
	field_u64(w, &f, "rejected", st->conn_rejected);
	field_u64(w, &f, "paused", st->conn_paused);
	field_u64(w, &f, "backlogged", st->conn_backlogged);
	field_u64(w, &f, "closed_too_large", st->conn_too_large);
	field_u64(w, &f, "closed_idle", st->conn_idle_closed);
	wbuf_addc(w, '}');

	object_open(w, &top, "cache");
	f = 1;
	field_u64(w, &f, "entries", cs.entries);
	field_u64(w, &f, "pinned", cs.pinned);
	field_u64(w, &f, "bytes", cs.bytes);
	field_u64(w, &f, "limit", cs.max_memory);
	field_u64(w, &f, "hits", cs.hits);
	field_u64(w, &f, "misses", cs.misses);
	field_u64(w, &f, "evictions", cs.evictions);
	field_u64(w, &f, "expirations", cs.expirations);
	field_u64(w, &f, "buckets", cs.table_buckets);
	wbuf_addc(w, '}');

	object_open(w, &top, "requests");
	f = 1;
	field_u64(w, &f, "total", st->requests);
	field_u64(w, &f, "polled", st->polled);
	field_u64(w, &f, "bytes_in", st->bytes_in);
	field_u64(w, &f, "bytes_out", st->bytes_out);
	object_open(w, &f, "ops");
	{
		int g = 1;

		for (i = 1; i < PROTO_OP__COUNT; i++)
			field_u64(
			    w, &g, proto_op_name((enum proto_op)i), st->ops[i]);
	}
	wbuf_addc(w, '}');
	object_open(w, &f, "errors");
	{
		int g = 1;

		for (i = 0; i < ERR__COUNT; i++)
			field_u64(w, &g, stats_err_codes[i], st->errors[i]);
	}
	wbuf_adds(w, "}}");

	object_open(w, &top, "writes");
	f = 1;
	field_u64(w, &f, "received", st->writes_received);
	field_u64(w, &f, "acknowledged", st->writes_acknowledged);
	field_u64(w, &f, "last_seq", st->last_seq);
	wbuf_addc(w, '}');

	object_open(w, &top, "process");
	f = 1;
	field_u64(w, &f, "rss_bytes", stats_rss_bytes());
	qpool_get_stats(&qs);
	field_u64(w, &f, "write_pool_bytes", qs.bytes);
	field_u64(w, &f, "write_pool_live", qs.live);
	wbuf_addc(w, '}');
	wbuf_addc(w, '}');
}

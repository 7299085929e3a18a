/*
 * stats.h -- the daemon's counters and the "stats" answer.
 *
 * Counters are plain integers owned by the event-loop thread; other threads
 * (later: the writer) keep their own and hand them over with their results.
 */
#ifndef STASHD_STATS_H
#define STASHD_STATS_H

#include <stdint.h>
#include <time.h>

#include "proto.h"

struct cache;
struct wbuf;

/* Error codes of the protocol, as indexes into the error counters. */
enum stats_err {
	ERR_BAD_REQUEST = 0,
	ERR_NOT_FOUND,
	ERR_TOO_LARGE,
	ERR_CONFLICT,
	ERR_SQL_ERROR,
	ERR_BUSY,
	ERR_UNAVAILABLE,
	ERR_FORBIDDEN,
	ERR_INTERNAL,
	ERR__COUNT
};

struct stats {
	struct timespec started; /* CLOCK_MONOTONIC */
	time_t		started_wall;
	/* connections */
	uint64_t conn_current;
	uint64_t conn_total;
	uint64_t conn_rejected; /* over max_connections */
	uint64_t conn_max;
	uint64_t conn_paused;	  /* times reading stopped: backpressure */
	uint64_t conn_backlogged; /* times a client had too many answers
				     in flight and its lines waited */
	uint64_t conn_too_large;  /* closed for an over-long line */
	uint64_t conn_idle_closed;
	/* requests */
	uint64_t requests;
	uint64_t polled; /* of them, found by busy polling (main.c) */
	uint64_t ops[PROTO_OP__COUNT];
	uint64_t errors[ERR__COUNT];
	uint64_t bytes_in;
	uint64_t bytes_out;
	/* writes */
	uint64_t writes_received;
	uint64_t writes_acknowledged;
	uint64_t last_seq;
};

void	    stats_init(struct stats *st);
const char *stats_err_code(enum stats_err e);
/* The bytes of resident memory of this process, 0 when unknown. */
uint64_t stats_rss_bytes(void);
/* Append the JSON object of every counter to w. */
void stats_render(const struct stats *st, struct cache *cache, struct wbuf *w);

#endif /* STASHD_STATS_H */

/*
 * cmd.h -- the operations of protocol v1: one request line in, one answer
 * line out.
 */
#ifndef STASHD_CMD_H
#define STASHD_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "stats.h"

struct cache;
struct wbuf;

struct cmd_ctx {
	struct cache		*cache;
	struct stats		*stats;
	struct proto_limits	 limits;
	enum proto_durability	 dur_kv;	/* default of set and del */
	enum proto_durability	 dur_exec;	/* default of exec */
	uint64_t		 seq;		/* last write sequence number */
};

/* Parse line[0..len) (modified in place) and append its answer to out. */
void	cmd_line(struct cmd_ctx *ctx, char *line, size_t len,
	    struct wbuf *out);
/* Append an error answer without an id (the line could not be read). */
void	cmd_error(struct cmd_ctx *ctx, struct wbuf *out, enum stats_err code,
	    const char *message);

#endif /* STASHD_CMD_H */

/*
 * rcmd.h -- the commands of the RESP protocol (Redis clients), over the
 * same cache, keymap and write path as protocol v1 (cmd.c).
 */
#ifndef STASHD_RCMD_H
#define STASHD_RCMD_H

#include <stddef.h>

#include "cmd.h"
#include "resp.h"

struct rcmd;

/* Run one parsed command; the reply goes to out (CMD_DONE) or a slot. */
enum cmd_result rcmd_run(struct cmd_ctx *ctx, struct cmd_session *ss,
    const struct resp_cmd *cmd, struct wbuf *out);
/* The reply to a request that could not be parsed. */
void rcmd_protocol_error(
    struct cmd_ctx *ctx, struct wbuf *out, const char *why);
void rcmd_free(struct rcmd *r);
/* A connection's end: what its session holds (an open transaction). */
void rcmd_session_close(struct cmd_session *ss);
/* Is name[0..len) a command rcmd_run() knows? */
int rcmd_known(const char *name, size_t len);

#endif /* STASHD_RCMD_H */

/*
 * stash-protocol.h -- constants of wire protocol version 1, shared by the
 * daemon and libstash. The protocol itself is described in DESIGN.md and
 * README.md: one JSON object per line each way, answers in request order.
 */
#ifndef STASH_PROTOCOL_H
#define STASH_PROTOCOL_H

#define STASH_PROTOCOL_VERSION 1

/* A key is a non-empty UTF-8 string of at most this many bytes. */
#define STASH_KEY_MAX 1024

/* Default limits of the daemon; each one is an option. */
#define STASH_LINE_MAX_DEFAULT	(1024 * 1024) /* one request line */
#define STASH_DEPTH_MAX_DEFAULT 64	      /* JSON nesting */
#define STASH_MGET_MAX_DEFAULT	10000	      /* keys in one mget */

/* Default socket path, relative to the working folder. */
#define STASH_SOCKET_DEFAULT "stashd.sock"
/* Environment variable naming the socket, read by libstash and stash. */
#define STASH_SOCKET_ENV "STASH_SOCKET"

/* Error codes, as they appear in "error":{"code":...}. */
#define STASH_ERR_BAD_REQUEST "bad_request"
#define STASH_ERR_NOT_FOUND   "not_found"
#define STASH_ERR_TOO_LARGE   "too_large"
#define STASH_ERR_CONFLICT    "conflict"
#define STASH_ERR_SQL_ERROR   "sql_error"
#define STASH_ERR_BUSY	      "busy"
#define STASH_ERR_UNAVAILABLE "unavailable"
#define STASH_ERR_FORBIDDEN   "forbidden"
#define STASH_ERR_INTERNAL    "internal"

/* Durability levels. */
#define STASH_DUR_ASYNC	  "async"
#define STASH_DUR_JOURNAL "journal"
#define STASH_DUR_COMMIT  "commit"

#endif /* STASH_PROTOCOL_H */

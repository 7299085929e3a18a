/*
 * server.h -- the listening socket and the client connections.
 */
#ifndef STASHD_SERVER_H
#define STASHD_SERVER_H

#include <stddef.h>
#include <sys/types.h>

struct event_base;
struct cmd_ctx;
struct cmd_session;
struct stats;
struct server;
struct conn;
struct slot;
struct access;

/*
 * Refused clients (too many connections, not allowed) that may wait at
 * once for their first bytes, to be refused in their own protocol; each
 * holds a descriptor for at most a second.
 */
#define SERVER_REFUSED_MAX 16

struct server_config {
	char	*socket_path;
	mode_t	 socket_mode; /* of the socket file */
	size_t	 line_max;    /* bytes of one request line */
	size_t	 max_conns;
	size_t	 output_max;		  /* per-connection answers */
	unsigned idle_timeout_ms;	  /* 0: never */
	unsigned shutdown_timeout_ms;	  /* to flush answers on exit */
	int	 listen_fd;		  /* passed by socket activation,
					     or -1: bind socket_path */
	size_t	       max_conns_per_uid; /* 0: no limit */
	unsigned       slow_log_ms;	  /* log requests this slow; 0 off */
	struct access *access;		  /* who may do what; not owned */
};

/*
 * Bind the socket at cfg->socket_path and start accepting. A stale socket
 * file is replaced; a live one (another daemon answers) or a file that is
 * not a socket is an error. NULL with *cause set on failure.
 */
struct server *server_create(struct event_base *base,
    const struct server_config *cfg, struct cmd_ctx *cmd, struct stats *stats,
    char **cause);
/* Change limits at run time (the socket path stays). */
void server_set_limits(struct server *srv, const struct server_config *cfg);
/*
 * Stop accepting, remove the socket, answer what was read and close each
 * connection once its answers are out; the loop exits when all are closed
 * or the shutdown timeout passes. A second call exits at once.
 */
void server_shutdown(struct server *srv);
/*
 * Send the answers gathered so far now, not at the end of this turn of the
 * loop (srv: a struct server, as cmd_ctx's flush hook takes it).
 */
void server_flush(void *srv);
/* Close every connection and free everything. */
void server_free(struct server *srv);

/*
 * Deferred answers. A request answered later takes a slot, in request
 * order; server_slot_answer() fills it (copying buf) and sends every
 * answer at the head of the connection that is ready. A slot whose
 * connection went away is freed when answered.
 */
struct slot *server_slot_new(struct conn *c, const char *op);
/* Returns 1 while the connection stays open, 0 when it is gone. */
int server_slot_answer(struct slot *s, const char *buf, size_t len);
/*
 * Forget a slot whose answer will never come (a write the journal could
 * not take); its connection is gone, or loses the slot's place.
 */
void server_slot_drop(struct slot *s);
/* The slot's connection, NULL when it went away. */
struct conn	   *server_slot_conn(struct slot *s);
struct cmd_session *server_conn_session(struct conn *c);
/* Go on with a connection that cmd_line() told to wait. */
void server_conn_resume(struct conn *c);
/*
 * Send c's gathered answers now, not at the end of the turn (the flush
 * event does the same for every connection queued); a closing c is freed
 * once all is sent. -1 when c was freed.
 */
int server_conn_send_now(struct conn *c);

#endif /* STASHD_SERVER_H */

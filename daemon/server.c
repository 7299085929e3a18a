/*
 * server.c -- the listening socket and the client connections.
 *
 * One struct conn per client, driven by libevent bufferevents on the event
 * loop thread. A connection is in one of these states:
 *
 *   READING   the normal state: input is read, every complete line is
 *             answered in order, answers go to the output buffer.
 *   PAUSED    the output buffer is over output_max (the client does not
 *             read its answers): reading stops, lines already buffered
 *             wait. When the output drains to half the limit, the write
 *             callback resumes the connection and answers what waits.
 *   WAIT      the next line cannot run yet (a read after this client's
 *             unacknowledged writes, or a write while the write queue is
 *             full): it stays in the input until cmd resumes the
 *             connection. Reading goes on up to the input limit.
 *   DRAIN     the client shut its side (EOF) or the daemon is stopping:
 *             nothing more is read; the complete lines already buffered are
 *             answered (still within output_max, pausing as above), then
 *             the connection closes. A partial last line is dropped.
 *   CLOSING   the connection is ending (an over-long line, drained):
 *             nothing more is read; it is freed once its output is flushed.
 *
 * Input is bounded too: reading stops while line_max + 1 bytes or more
 * are buffered, so a connection never buffers more than one maximal line
 * plus what the last read brought. A line longer than line_max gets
 * too_large and the connection closes (its framing can no longer be
 * trusted).
 *
 * The input side is the daemon's own: a read event per connection (with
 * the idle timeout), one read of at most SERVER_READ_MAX bytes into the
 * connection's input buffer each time the socket is readable. The
 * bufferevent's own reading, never enabled, would ask the kernel how
 * much is readable (ioctl FIONREAD) before each read: one system call
 * more per request at pipeline depth 1. Reading is on exactly when the
 * connection is none of PAUSED, CLOSING or DRAIN and its input is under
 * the limit (conn_read_update); the output side stays the bufferevent's.
 *
 * Two protocols share the socket, chosen per connection by what it sends
 * first (conn_guess_proto): protocol v1's JSON lines, framed by \n, or
 * RESP for Redis clients, framed by resp_parse() and run by rcmd.c, with
 * the same states, limits and answer slots; one RESP command is at most
 * line_max bytes.
 *
 * Answers that come later (writes waiting for the journal, cache misses,
 * queries) hold a slot in the connection's queue, in request order; an
 * answer is sent only when every answer before it has been.
 *
 * A conn is freed only from its own callbacks, as their last action
 * (bufferevent_free is safe there: libevent defers the real free), and the
 * functions that may free it return -1 so their callers stop touching it.
 *
 * Accept: when the process runs out of descriptors (EMFILE/ENFILE) the
 * listener is disabled for 100 ms rather than spinning on a failing
 * accept(); a client over max_connections gets one busy answer and is
 * closed.
 *
 * A refused client (too many connections, not an allowed peer) is
 * answered in its own protocol, so that a Redis client reads Redis's
 * "-ERR max number of clients reached" rather than a JSON line it cannot
 * parse. Its protocol is in its first bytes, which are usually there when
 * it is accepted; when they are not, it waits for them in a pen of at
 * most SERVER_REFUSED_MAX sockets, for at most SERVER_REFUSED_WAIT_MS, as
 * a struct refused (a descriptor, an event, 32 bytes), never as a
 * connection. A client still silent then, or one refused while the pen
 * is full, gets protocol v1's JSON line at once, as all did before.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "access.h"
#include "cmd.h"
#include "crashpoint.h"
#include "log.h"
#include "monotime.h"
#include "rcmd.h"
#include "resp.h"
#include "server.h"
#include "stats.h"
#include "wbuf.h"
#include "xmalloc.h"

#define CONN_PAUSED  0x01 /* reading stopped: output over its limit */
#define CONN_CLOSING 0x02 /* free once the output is flushed */
#define CONN_DRAIN   0x04 /* read no more; answer what is buffered */
#define CONN_WAIT    0x08 /* the next line waits for cmd to resume */
#define CONN_BACKLOG 0x10 /* too many answers still to come */

/*
 * Answers still to come on one connection (writes in flight, misses,
 * queries): past this, the connection's next lines wait until half of
 * them are answered, so a client pipelining without end cannot make the
 * daemon hold unbounded work for it.
 */
#define CONN_SLOTS_MAX 4096

/* The protocol of a connection, chosen by the first byte it sends. */
#define CONN_PROTO_UNKNOWN 0
#define CONN_PROTO_JSON	   1 /* protocol v1: JSON lines */
#define CONN_PROTO_RESP	   2 /* '*' or a letter: a Redis client */

/* The first bytes of a client that tell its protocol. */
#define SERVER_GUESS_BYTES 32

/* The most one read takes from a client's socket. */
#define SERVER_READ_MAX (16 * 1024)

/* A refused client waits this long for its first bytes, in the pen. */
#define SERVER_REFUSED_WAIT_MS 1000

/*
 * A refused client in the pen: answered and freed as soon as its first
 * bytes tell its protocol, or when its time is up.
 */
struct refused {
	struct server *srv;
	int	       fd;
	struct event  *ev;
	uint64_t       deadline; /* monotonic ms */
	const char    *code;	 /* "busy" or "forbidden" */
	const char    *why;	 /* static */
	char	       buf[SERVER_GUESS_BYTES];
	size_t	       len;
	int	       eof;
	TAILQ_ENTRY(refused) entry;
};

struct slot {
	TAILQ_ENTRY(slot) entry;
	struct conn *conn; /* NULL: the client went away */
	const char  *op;   /* for the slow-request log */
	uint64_t     t0;   /* taken at, monotonic ms */
	int	     done;
	char	    *buf;
	size_t	     len;
};
TAILQ_HEAD(slot_list, slot);

/* Answers are handed to the output buffer in pieces of about this size. */
#define SERVER_FLUSH_AT (64 * 1024)

struct conn {
	struct server	   *srv;
	struct bufferevent *bev;     /* the output side */
	struct evbuffer	   *in;	     /* input, read by conn_read_cb */
	struct event	   *rev;     /* readable, or the idle timeout */
	int		    reading; /* rev is added */
	uint64_t	    id;
	pid_t		    pid;
	uid_t		    uid;
	gid_t		    gid;
	int		    flags;
	size_t		    scanned; /* input bytes known to hold no \n */
	struct slot_list    slots;   /* answers still to come */
	size_t		    nslots;
	struct cmd_session  session;
	struct wbuf	    pend;   /* deferred answers ready to go */
	int		    queued; /* on the server's flush queue */
	int		    proto;  /* CONN_PROTO_*, from the first byte */
	TAILQ_ENTRY(conn) entry;
	TAILQ_ENTRY(conn) fentry;
};

struct server {
	struct event_base     *base;
	struct server_config   cfg;
	char		      *socket_path;
	struct cmd_ctx	      *cmd;
	struct stats	      *stats;
	struct evconnlistener *listener;
	struct event	      *resume_ev;   /* re-enable accept after EMFILE */
	struct event	      *shutdown_ev; /* shutdown timeout */
	struct event	      *flush_ev;    /* sends the flush queue */
	TAILQ_HEAD(, conn) conns;
	TAILQ_HEAD(, conn) flushq; /* connections with deferred answers */
	uint64_t	next_id;
	int		shutting_down;
	int		activated;     /* the socket is systemd's */
	struct wbuf	out;	       /* answers being composed */
	struct resp_cmd rcmd;	       /* the RESP command being run */
	TAILQ_HEAD(, refused) refused; /* the pen: refused, waiting */
	size_t nrefused;
};

static int  conn_process(struct conn *);
static int  conn_process_resp(struct conn *);
static void server_flush_cb(evutil_socket_t, short, void *);

/* Log a request that took at least slow_log_ms. */
static void
server_slow(struct conn *c, const char *op, uint64_t ms)
{
	if (c->srv->cfg.slow_log_ms == 0 || ms < c->srv->cfg.slow_log_ms)
		return;
	log_info("slow request: conn %llu (pid %ld uid %ld): %s took %llu ms",
	    (unsigned long long)c->id, (long)c->pid, (long)c->uid,
	    op != NULL ? op : "?", (unsigned long long)ms);
}

/* Log with the connection's identity in front. */
#define conn_debug(c, fmt, ...)                                                \
	log_debug("conn %llu (pid %ld uid %ld): " fmt,                         \
	    (unsigned long long)(c)->id, (long)(c)->pid, (long)(c)->uid,       \
	    ##__VA_ARGS__)

/* Free a connection now. Its callbacks will not run again. */
static void
conn_free(struct conn *c)
{
	struct server *srv = c->srv;
	struct slot   *sl;

	conn_debug(c, "closed");
	/* Answers still to come are dropped when they come. */
	while ((sl = TAILQ_FIRST(&c->slots)) != NULL) {
		TAILQ_REMOVE(&c->slots, sl, entry);
		c->nslots--;
		if (sl->done) {
			free(sl->buf);
			free(sl);
		} else
			sl->conn = NULL;
	}
	cmd_session_close(srv->cmd, &c->session);
	TAILQ_REMOVE(&srv->conns, c, entry);
	if (c->queued)
		TAILQ_REMOVE(&srv->flushq, c, fentry);
	wbuf_free(&c->pend);
	event_free(c->rev);
	evbuffer_free(c->in);
	bufferevent_free(c->bev);
	free(c);
	srv->stats->conn_current--;
	if (srv->shutting_down && TAILQ_EMPTY(&srv->conns))
		event_base_loopbreak(srv->base);
}

/* Nothing left to send: no answer to come, queued or buffered. */
static int
conn_all_sent(struct conn *c)
{
	return TAILQ_EMPTY(&c->slots) && !c->queued &&
	       evbuffer_get_length(bufferevent_get_output(c->bev)) == 0;
}

/*
 * A closing connection: free it once everything is sent. -1 when it was
 * freed now, 0 when it waits for its output to drain.
 */
static int
conn_close_when_sent(struct conn *c)
{
	if (conn_all_sent(c)) {
		conn_free(c);
		return -1;
	}
	/* The write callback runs when the output is empty. */
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	return 0;
}

/* Stop waiting for c's input (and its idle timeout). */
static void
conn_read_stop(struct conn *c)
{
	if (!c->reading)
		return;
	if (event_del(c->rev) == -1)
		log_warnx(
		    "conn %llu: event_del failed", (unsigned long long)c->id);
	c->reading = 0;
}

/*
 * Turn reading on or off as c's state and input ask: on when c is none of
 * PAUSED, CLOSING, DRAIN and holds at most line_max bytes, with the idle
 * timeout (restarted by each read). -1 when it cannot be turned on.
 */
static int
conn_read_update(struct conn *c)
{
	const struct server_config *cfg = &c->srv->cfg;
	struct timeval		    tv;
	int			    want;

	want = !(c->flags & (CONN_PAUSED | CONN_CLOSING | CONN_DRAIN)) &&
	       evbuffer_get_length(c->in) <= cfg->line_max;
	if (want == c->reading)
		return 0;
	if (!want) {
		conn_read_stop(c);
		return 0;
	}
	tv.tv_sec = cfg->idle_timeout_ms / 1000;
	tv.tv_usec = (cfg->idle_timeout_ms % 1000) * 1000;
	if (event_add(c->rev, cfg->idle_timeout_ms > 0 ? &tv : NULL) == -1) {
		log_warnx("conn %llu: cannot wait for input",
		    (unsigned long long)c->id);
		return -1;
	}
	c->reading = 1;
	return 0;
}

/*
 * Close once the output is flushed. Returns -1 when the connection was
 * freed at once, 0 when it waits for its output to drain.
 */
static int
conn_close_after_flush(struct conn *c)
{
	c->flags |= CONN_CLOSING;
	conn_read_update(c);
	return conn_close_when_sent(c);
}

/*
 * Send answers: straight to the socket when nothing is waiting before
 * them (the usual case: one write, no EPOLLOUT to register and remove),
 * the rest through the bufferevent, which sends it when the socket takes
 * more. -1 when it cannot even be queued.
 */
static int
conn_send(struct conn *c, const char *buf, size_t len)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	ssize_t		 n;

	if (evbuffer_get_length(out) == 0 && !(c->flags & CONN_CLOSING)) {
		n = send(bufferevent_getfd(c->bev), buf, len,
		    MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
		}
		/* Errors are the bufferevent's to find and report. */
	}
	if (len == 0)
		return 0;
	return bufferevent_write(c->bev, buf, len);
}

/* Have c's gathered answers sent at the end of this turn of the loop. */
static void
conn_queue_pending(struct conn *c)
{
	if (c->queued)
		return;
	if (TAILQ_EMPTY(&c->srv->flushq))
		event_active(c->srv->flush_ev, EV_READ, 0);
	TAILQ_INSERT_TAIL(&c->srv->flushq, c, fentry);
	c->queued = 1;
}

/*
 * Send the deferred answers gathered for c, off the flush queue. -1 when
 * the connection had to be freed.
 */
static int
conn_send_pending(struct conn *c)
{
	struct server *srv = c->srv;

	if (!c->queued)
		return 0;
	TAILQ_REMOVE(&srv->flushq, c, fentry);
	c->queued = 0;
	srv->stats->bytes_out += c->pend.len;
	if (conn_send(c, c->pend.buf, c->pend.len) == -1) {
		log_warnx("conn %llu: cannot queue %zu bytes of answers",
		    (unsigned long long)c->id, c->pend.len);
		wbuf_reset(&c->pend);
		conn_free(c);
		return -1;
	}
	wbuf_reset(&c->pend);
	return 0;
}

/* Move composed answers to the connection's output buffer. */
static int
conn_flush_answers(struct conn *c)
{
	struct server *srv = c->srv;

	if (srv->out.len == 0)
		return 0;
	/* Deferred answers ready before these go first. */
	if (conn_send_pending(c) == -1) {
		wbuf_reset(&srv->out);
		return -1;
	}
	srv->stats->bytes_out += srv->out.len;
	if (conn_send(c, srv->out.buf, srv->out.len) == -1) {
		log_warnx("conn %llu: cannot queue %zu bytes of answers",
		    (unsigned long long)c->id, srv->out.len);
		wbuf_reset(&srv->out);
		conn_free(c);
		return -1;
	}
	wbuf_reset(&srv->out);
	return 0;
}

/* Stop reading: the client is not reading its answers. */
static void
conn_pause(struct conn *c)
{
	if (c->flags & CONN_PAUSED)
		return;
	c->flags |= CONN_PAUSED;
	c->srv->stats->conn_paused++;
	conn_read_update(c);
	conn_debug(c, "paused: output over %zu bytes", c->srv->cfg.output_max);
}

/* Whether a connection may take its next request now. */
enum { ROOM_YES, ROOM_NO, ROOM_PAUSED, ROOM_GONE };

/*
 * ROOM_NO: too many answers still to come (it waits for half of them);
 * ROOM_PAUSED: its output is over its limit, reading stops; ROOM_GONE: it
 * was freed.
 */
static int
conn_room(struct conn *c)
{
	struct server *srv = c->srv;

	if (c->nslots >= CONN_SLOTS_MAX) {
		c->flags |= CONN_BACKLOG;
		srv->stats->conn_backlogged++;
		return ROOM_NO;
	}
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) + srv->out.len +
		c->pend.len >=
	    srv->cfg.output_max) {
		if (conn_flush_answers(c) == -1)
			return ROOM_GONE;
		conn_pause(c);
		return ROOM_PAUSED;
	}
	return ROOM_YES;
}

/* Answer an over-long line and close. Returns what conn_close does. */
static int
conn_too_large(struct conn *c)
{
	struct server *srv = c->srv;
	char	       msg[96];

	snprintf(msg, sizeof(msg), "request line longer than %zu bytes",
	    srv->cfg.line_max);
	cmd_error(srv->cmd, &srv->out, ERR_TOO_LARGE, msg);
	srv->stats->conn_too_large++;
	conn_debug(c, "%s", msg);
	if (conn_flush_answers(c) == -1)
		return -1;
	return conn_close_after_flush(c);
}

/*
 * Which protocol a client speaks, from the first bytes it sent, p[0..n)
 * with n <= SERVER_GUESS_BYTES (eof: no more will come): '*' (a RESP
 * array) or a RESP command name followed by a space or the end of its
 * line (an inline command), or a command name in quotes ("get" k), is
 * RESP; anything else, '{' first, is protocol v1, whose errors it will
 * then get. Blank lines and spaces before it are skipped, as Redis skips
 * them before an inline command (and protocol v1 before a request).
 * UNKNOWN while the first word is still incomplete.
 */
static int
server_guess_proto(const char *p, size_t n, int eof)
{
	size_t i, q;
	int    more = !eof && n < SERVER_GUESS_BYTES; /* may more come? */

	for (i = 0; i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' ||
				 p[i] == '\n');
	     i++)
		;
	p += i;
	n -= i;
	if (n == 0)
		return more ? CONN_PROTO_UNKNOWN : CONN_PROTO_JSON;
	if (p[0] == '*')
		return CONN_PROTO_RESP;
	q = p[0] == '"' || p[0] == '\'' ? 1 : 0;
	if (q == n)
		return more ? CONN_PROTO_UNKNOWN : CONN_PROTO_JSON;
	if (!((p[q] >= 'a' && p[q] <= 'z') || (p[q] >= 'A' && p[q] <= 'Z')))
		return CONN_PROTO_JSON;
	for (i = q; i < n; i++)
		if (q ? p[i] == p[0]
		      : p[i] == ' ' || p[i] == '\r' || p[i] == '\n')
			break;
	if (i == n && more)
		return CONN_PROTO_UNKNOWN;
	return i < n && rcmd_known(p + q, i - q) ? CONN_PROTO_RESP
						 : CONN_PROTO_JSON;
}

/* server_guess_proto() of what a connection has sent so far. */
static int
conn_guess_proto(struct conn *c)
{
	struct evbuffer *in = c->in;
	size_t		 avail = evbuffer_get_length(in), n;
	const char	*p;

	n = avail < SERVER_GUESS_BYTES ? avail : SERVER_GUESS_BYTES;
	if ((p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n)) == NULL)
		fatalx("evbuffer_pullup");
	return server_guess_proto(p, n, (c->flags & CONN_DRAIN) != 0);
}

static void conn_hold_answer(struct conn *, size_t);

/*
 * What ends a pass over the input: send the answers ready, and close a
 * drained connection once nothing more is to come from it.
 */
static int
conn_process_end(struct conn *c)
{
	struct server *srv = c->srv;

	cmd_input_done(srv->cmd);
	if ((c->flags & (CONN_DRAIN | CONN_CLOSING | CONN_WAIT |
			    CONN_BACKLOG)) == CONN_DRAIN) {
		if (conn_flush_answers(c) == -1)
			return -1;
		return conn_close_after_flush(c);
	}
	if (srv->out.len > 0) {
		wbuf_add(&c->pend, srv->out.buf, srv->out.len);
		wbuf_reset(&srv->out);
		conn_queue_pending(c);
	}
	return 0;
}

/*
 * Answer every complete line in the input, in order, until the input has
 * no complete line or the output is over its limit. Returns -1 when the
 * connection was freed.
 */
static int
conn_process_json(struct conn *c)
{
	struct server	   *srv = c->srv;
	struct evbuffer	   *in = c->in;
	struct evbuffer_ptr pos, start;
	enum cmd_result	    r;
	uint64_t	    t0;
	size_t		    len, avail, mark;
	char		   *line;
	int		    room;

	while (!(c->flags & (CONN_CLOSING | CONN_WAIT | CONN_BACKLOG))) {
		if ((room = conn_room(c)) != ROOM_YES) {
			if (room == ROOM_NO)
				break;
			return room == ROOM_GONE ? -1 : 0;
		}
		avail = evbuffer_get_length(in);
		if (avail == 0)
			break;
		if (c->proto == CONN_PROTO_UNKNOWN) {
			if ((c->proto = conn_guess_proto(c)) ==
			    CONN_PROTO_UNKNOWN)
				break;
			if (c->proto == CONN_PROTO_RESP)
				return conn_process_resp(c);
		}
		if (evbuffer_ptr_set(
			in, &start, c->scanned, EVBUFFER_PTR_SET) == -1)
			fatalx("evbuffer_ptr_set");
		pos = evbuffer_search_eol(in, &start, NULL, EVBUFFER_EOL_LF);
		if (pos.pos < 0) {
			c->scanned = avail;
			if (avail > srv->cfg.line_max)
				return conn_too_large(c);
			break;
		}
		len = (size_t)pos.pos;
		if (len > srv->cfg.line_max)
			return conn_too_large(c);
		if ((line = (char *)evbuffer_pullup(in, (ev_ssize_t)len + 1)) ==
		    NULL)
			fatalx("evbuffer_pullup: %zu bytes", len + 1);
		mark = srv->out.len;
		t0 = srv->cfg.slow_log_ms > 0 ? monotime_ms() : 0;
		r = cmd_line(srv->cmd, &c->session, line, len, &srv->out);
		if (t0 != 0 && r == CMD_DONE)
			server_slow(c, srv->cmd->last_op, monotime_ms() - t0);
		if (r == CMD_WAIT) {
			c->flags |= CONN_WAIT;
			break;
		}
		srv->stats->bytes_in += len + 1;
		if (r == CMD_DONE)
			conn_hold_answer(c, mark);
		if (evbuffer_drain(in, len + 1) == -1)
			fatalx("evbuffer_drain");
		c->scanned = 0;
		if (srv->out.len >= SERVER_FLUSH_AT &&
		    conn_flush_answers(c) == -1)
			return -1;
	}
	return conn_process_end(c);
}

/*
 * The answer composed in srv->out from mark on is ready, but answers
 * before it are still to come: it waits in a slot of its own.
 */
static void
conn_hold_answer(struct conn *c, size_t mark)
{
	struct server *srv = c->srv;
	struct slot   *sl;

	if (TAILQ_EMPTY(&c->slots) || srv->out.len == mark)
		return;
	sl = xcalloc(1, sizeof(*sl));
	sl->conn = c;
	sl->done = 1;
	sl->len = srv->out.len - mark;
	sl->buf = xmalloc(sl->len);
	memcpy(sl->buf, srv->out.buf + mark, sl->len);
	srv->out.len = mark;
	TAILQ_INSERT_TAIL(&c->slots, sl, entry);
	c->nslots++;
}

/* A RESP request that cannot be read: answer, then close. */
static int
conn_resp_fail(struct conn *c, const char *why)
{
	struct server *srv = c->srv;
	size_t	       mark = srv->out.len;

	rcmd_protocol_error(srv->cmd, &srv->out, why);
	conn_hold_answer(c, mark);
	conn_debug(c, "%s", why);
	if (conn_flush_answers(c) == -1)
		return -1;
	return conn_close_after_flush(c);
}

/*
 * conn_process() for a RESP connection: the same states and limits, with
 * commands framed by resp_parse() instead of lines. One command is at
 * most line_max bytes.
 */
static int
conn_process_resp(struct conn *c)
{
	struct server	  *srv = c->srv;
	struct evbuffer	  *in = c->in;
	struct resp_cmd	  *cmd = &srv->rcmd;
	struct resp_limits lim;
	enum resp_status   st;
	enum cmd_result	   r;
	uint64_t	   t0;
	size_t		   avail, mark;
	const char	  *buf;
	char		   msg[96];
	int		   room;

	lim.args_max = RESP_ARGS_CAP;
	lim.bulk_max = srv->cfg.line_max;
	lim.inline_max = srv->cfg.line_max < RESP_INLINE_CAP ? srv->cfg.line_max
							     : RESP_INLINE_CAP;
	srv->cmd->value_max = srv->cfg.line_max;
	while (!(c->flags & (CONN_CLOSING | CONN_WAIT | CONN_BACKLOG))) {
		if ((room = conn_room(c)) != ROOM_YES) {
			if (room == ROOM_NO)
				break;
			return room == ROOM_GONE ? -1 : 0;
		}
		avail = evbuffer_get_length(in);
		if (avail == 0)
			break;
		if ((buf = (const char *)evbuffer_pullup(in, -1)) == NULL)
			fatalx("evbuffer_pullup: %zu bytes", avail);
		st = resp_parse(buf, avail, &lim, cmd);
		if (st == RESP_ERROR)
			return conn_resp_fail(c, cmd->error);
		if (st == RESP_NEED_MORE) {
			if (avail > srv->cfg.line_max) {
				snprintf(msg, sizeof(msg),
				    "Protocol error: request longer than %zu "
				    "bytes",
				    srv->cfg.line_max);
				srv->stats->conn_too_large++;
				return conn_resp_fail(c, msg);
			}
			break;
		}
		mark = srv->out.len;
		t0 = srv->cfg.slow_log_ms > 0 ? monotime_ms() : 0;
		r = rcmd_run(srv->cmd, &c->session, cmd, &srv->out);
		if (t0 != 0 && r == CMD_DONE)
			server_slow(c, srv->cmd->last_op, monotime_ms() - t0);
		if (r == CMD_WAIT) {
			c->flags |= CONN_WAIT;
			break;
		}
		srv->stats->bytes_in += cmd->consumed;
		if (r == CMD_DONE)
			conn_hold_answer(c, mark);
		if (evbuffer_drain(in, cmd->consumed) == -1)
			fatalx("evbuffer_drain");
		if (c->session.quit) {
			if (conn_flush_answers(c) == -1)
				return -1;
			return conn_close_after_flush(c);
		}
		if (srv->out.len >= SERVER_FLUSH_AT &&
		    conn_flush_answers(c) == -1)
			return -1;
	}
	return conn_process_end(c);
}

/*
 * Answer what c's input holds (in its protocol), then have reading follow
 * the state that left. -1 when the connection was freed.
 */
static int
conn_process(struct conn *c)
{
	if ((c->proto == CONN_PROTO_RESP ? conn_process_resp(c)
					 : conn_process_json(c)) == -1)
		return -1;
	if (conn_read_update(c) == -1) {
		conn_free(c);
		return -1;
	}
	return 0;
}

/* c's socket is readable (or its idle timeout passed): one read. */
static void
conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn	     *c = arg;
	struct evbuffer	     *in = c->in;
	struct evbuffer_iovec v[2];
	size_t		      want, len = evbuffer_get_length(in);
	ssize_t		      n;
	int		      nv, i;

	if (what & EV_TIMEOUT) {
		conn_debug(c, "idle timeout");
		c->srv->stats->conn_idle_closed++;
		conn_free(c);
		return;
	}
	/* Reading is on only under the limit (conn_read_update). */
	want = c->srv->cfg.line_max + 1 - len;
	if (want > SERVER_READ_MAX)
		want = SERVER_READ_MAX;
	if (FAULT_POINT("read-reserve") ||
	    (nv = evbuffer_reserve_space(in, (ev_ssize_t)want, v, 2)) <= 0) {
		log_warnx("conn %llu: no memory for %zu bytes of input",
		    (unsigned long long)c->id, want);
		conn_free(c);
		return;
	}
	if (v[0].iov_len > want) {
		v[0].iov_len = want;
		nv = 1;
	} else if (nv == 2 && v[0].iov_len + v[1].iov_len > want)
		v[1].iov_len = want - v[0].iov_len;
	do
		n = readv(fd, (struct iovec *)v, nv);
	while (n == -1 && errno == EINTR);
	if (FAULT_POINT("read-error")) {
		n = -1;
		errno = ECONNRESET;
	}
	if (n > 0) {
		for (i = 0; i < nv && n > 0; i++) {
			if ((size_t)n < v[i].iov_len)
				v[i].iov_len = (size_t)n;
			n -= (ssize_t)v[i].iov_len;
		}
		if (evbuffer_commit_space(in, v, i) == -1)
			fatalx("evbuffer_commit_space");
		conn_process(c);
		return;
	}
	if (n == 0) {
		/*
		 * The client shut its side: answer the complete lines it sent
		 * (a partial last line is dropped), then close.
		 */
		conn_debug(c, "end of input");
		c->flags |= CONN_DRAIN;
		conn_process(c);
		return;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return;
	conn_debug(c, "socket error: %s", strerror(errno));
	conn_free(c);
}

/* The output drained to its low watermark. */
static void
conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->flags & CONN_CLOSING) {
		if (conn_all_sent(c))
			conn_free(c);
		return;
	}
	if (c->flags & CONN_PAUSED) {
		c->flags &= ~CONN_PAUSED;
		conn_debug(c, "resumed");
		/* Reading resumes with it, unless it paused again. */
		conn_process(c);
	}
}

/* An error sending. (Reading and its timeout are conn_read_cb's.) */
static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (what & BEV_EVENT_ERROR) {
		conn_debug(c, "socket error: %s", strerror(errno));
		conn_free(c);
	}
}

/*
 * Apply the configured timeouts and watermarks to one connection. -1 when
 * reading cannot go on.
 */
static int
conn_apply_limits(struct conn *c)
{
	const struct server_config *cfg = &c->srv->cfg;

	if (!(c->flags & CONN_CLOSING))
		bufferevent_setwatermark(
		    c->bev, EV_WRITE, cfg->output_max / 2, 0);
	/* Added again, with the timeout now configured. */
	conn_read_stop(c);
	return conn_read_update(c);
}

/*
 * Read what a refused client has sent, up to the bytes that tell its
 * protocol. 1 when its answer can go (its protocol is known, it sent all
 * it will, or its socket failed), 0 when it has sent too little yet.
 */
static int
refused_read(struct refused *rf)
{
	ssize_t n;

	while (server_guess_proto(rf->buf, rf->len, rf->eof) ==
	       CONN_PROTO_UNKNOWN) {
		n = recv(rf->fd, rf->buf + rf->len, sizeof(rf->buf) - rf->len,
		    MSG_DONTWAIT);
		if (n > 0)
			rf->len += (size_t)n;
		else if (n == 0)
			rf->eof = 1;
		else if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		else if (errno != EINTR) {
			log_debug("refused client: recv: %s", strerror(errno));
			rf->eof = 1;
		}
	}
	return 1;
}

/*
 * Answer a refused client in its protocol (protocol v1 unless its first
 * bytes say RESP), then close and free it. What it sent is read first, up
 * to a bound, so that the close does not reset the connection before the
 * client reads the answer.
 */
static void
refused_answer(struct refused *rf)
{
	char	drain[4096];
	char	msg[256];
	int	n, i;
	ssize_t r;

	if (server_guess_proto(rf->buf, rf->len, 1) == CONN_PROTO_RESP) {
		if (strcmp(rf->code, "busy") == 0)
			n = snprintf(msg, sizeof(msg),
			    "-ERR max number of clients reached\r\n");
		else
			n = snprintf(
			    msg, sizeof(msg), "-NOPERM %s\r\n", rf->why);
	} else
		n = snprintf(msg, sizeof(msg),
		    "{\"ok\":false,\"error\":{\"code\":"
		    "\"%s\",\"message\":\"%s\"}}\n",
		    rf->code, rf->why);
	for (i = 0; i < 16 && !rf->eof; i++) {
		r = recv(rf->fd, drain, sizeof(drain), MSG_DONTWAIT);
		if (r <= 0 && !(r == -1 && errno == EINTR))
			break;
	}
	/* Best effort: the socket is new, its buffer is empty. */
	if (n > 0 && (size_t)n < sizeof(msg) &&
	    send(rf->fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) == -1)
		log_debug("refusing a connection: %s", strerror(errno));
	if (close(rf->fd) == -1)
		log_debug("refused client: close: %s", strerror(errno));
	if (rf->ev != NULL)
		event_free(rf->ev);
	free(rf);
}

/* Take a refused client out of the pen, answer it and free it. */
static void
refused_release(struct refused *rf)
{
	TAILQ_REMOVE(&rf->srv->refused, rf, entry);
	rf->srv->nrefused--;
	refused_answer(rf);
}

/* Wait in the pen for the rest of the time a refused client has. */
static int
refused_wait(struct refused *rf)
{
	struct timeval tv;
	uint64_t       now = monotime_ms(), left;

	left = rf->deadline > now ? rf->deadline - now : 0;
	tv.tv_sec = (time_t)(left / 1000);
	tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
	return event_add(rf->ev, &tv);
}

/* A refused client in the pen sent bytes, or its time is up. */
static void
refused_cb(evutil_socket_t fd, short what, void *arg)
{
	struct refused *rf = arg;

	(void)fd;
	if (!(what & EV_TIMEOUT) && refused_read(rf) == 0 &&
	    refused_wait(rf) == 0)
		return;
	refused_release(rf);
}

/*
 * Refuse a new client with one answer in its protocol, then close: at
 * once when its first bytes are there (or the pen is full), else once
 * they come or its time in the pen is up.
 */
static void
server_refuse(struct server *srv, int fd, const char *code, const char *why)
{
	struct refused *rf;

	srv->stats->conn_rejected++;
	rf = xcalloc(1, sizeof(*rf));
	rf->srv = srv;
	rf->fd = fd;
	rf->code = code;
	rf->why = why;
	if (refused_read(rf) == 1 || srv->nrefused >= SERVER_REFUSED_MAX) {
		refused_answer(rf);
		return;
	}
	rf->deadline = monotime_ms() + SERVER_REFUSED_WAIT_MS;
	if ((rf->ev = event_new(srv->base, fd, EV_READ, refused_cb, rf)) ==
		NULL ||
	    refused_wait(rf) == -1) {
		log_warnx("cannot wait for a refused client's first bytes");
		refused_answer(rf);
		return;
	}
	TAILQ_INSERT_TAIL(&srv->refused, rf, entry);
	srv->nrefused++;
}

/* Connections open for uid. */
static size_t
server_conns_of(struct server *srv, uid_t uid)
{
	struct conn *c;
	size_t	     n = 0;

	TAILQ_FOREACH(c, &srv->conns, entry)
	if (c->uid == uid)
		n++;
	return n;
}

static void
server_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct server *srv = arg;
	struct ucred   cred;
	socklen_t      clen = sizeof(cred);
	struct conn   *c;

	gid_t	  groups[64];
	socklen_t glen = sizeof(groups);
	size_t	  ngroups = 0;
	int	  role;

	if (srv->stats->conn_current >= srv->cfg.max_conns) {
		log_debug("refusing a connection: %zu connections open",
		    srv->cfg.max_conns);
		server_refuse(srv, fd, "busy", "too many connections");
		return;
	}
	/* Who is it? The kernel says, not the client. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == -1) {
		log_warn("getsockopt(SO_PEERCRED)");
		server_refuse(srv, fd, "forbidden", "unknown peer");
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) == 0)
		ngroups = glen / sizeof(gid_t);
	role =
	    access_role(srv->cfg.access, cred.uid, cred.gid, groups, ngroups);
	if (role == ROLE_NONE) {
		log_info("refused pid %ld uid %ld gid %ld: not an allowed user "
			 "or group",
		    (long)cred.pid, (long)cred.uid, (long)cred.gid);
		server_refuse(srv, fd, "forbidden",
		    "not an allowed user or "
		    "group");
		return;
	}
	if (srv->cfg.max_conns_per_uid > 0 &&
	    server_conns_of(srv, cred.uid) >= srv->cfg.max_conns_per_uid) {
		log_debug("refusing uid %ld: %zu connections open",
		    (long)cred.uid, srv->cfg.max_conns_per_uid);
		server_refuse(srv, fd, "busy",
		    "too many connections for this "
		    "user");
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->srv = srv;
	c->id = ++srv->next_id;
	c->pid = -1;
	TAILQ_INIT(&c->slots);
	wbuf_init(&c->pend);
	cmd_session_init(srv->cmd, &c->session, c);
	c->uid = (uid_t)-1;
	c->gid = (gid_t)-1;
	c->pid = cred.pid;
	c->uid = cred.uid;
	c->gid = cred.gid;
	c->session.role = role;
	c->session.uid = (unsigned long)cred.uid;
	c->session.conn_id = c->id;
	c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		log_warnx("bufferevent_socket_new failed");
		close(fd);
		cmd_session_close(srv->cmd, &c->session);
		free(c);
		return;
	}
	bufferevent_setcb(c->bev, NULL, conn_write_cb, conn_event_cb, c);
	c->rev =
	    event_new(srv->base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
	c->in = evbuffer_new();
	if (c->rev == NULL || c->in == NULL ||
	    bufferevent_enable(c->bev, EV_WRITE) == -1 ||
	    conn_apply_limits(c) == -1) {
		log_warnx(
		    "cannot set up connection %llu", (unsigned long long)c->id);
		if (c->rev != NULL)
			event_free(c->rev);
		if (c->in != NULL)
			evbuffer_free(c->in);
		bufferevent_free(c->bev);
		cmd_session_close(srv->cmd, &c->session);
		free(c);
		return;
	}
	TAILQ_INSERT_TAIL(&srv->conns, c, entry);
	srv->stats->conn_current++;
	srv->stats->conn_total++;
	conn_debug(c, "accepted");
}

static void
server_resume_accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	if (srv->listener != NULL && evconnlistener_enable(srv->listener) == -1)
		log_warnx("cannot resume accepting");
}

/* accept() failed for a reason other than EAGAIN/EINTR/ECONNABORTED. */
static void
server_accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct server *srv = arg;
	struct timeval tv = {0, 100 * 1000};
	int	       err = EVUTIL_SOCKET_ERROR();

	errno = err;
	log_warn("accept");
	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		/* Stop for a moment rather than spin; clients wait in backlog.
		 */
		if (evconnlistener_disable(l) == -1 ||
		    event_add(srv->resume_ev, &tv) == -1)
			log_warnx("cannot pause accepting");
	}
}

/*
 * Create, bind and listen on the Unix socket. The umask is set around
 * bind() so that the socket is never, even briefly, more open than mode.
 */
static int
server_bind(const char *path, mode_t mode, char **cause)
{
	struct sockaddr_un sun;
	struct stat	   sb;
	mode_t		   old;
	int		   fd, probe, rc, saved;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		xasprintf(cause, "socket path %s is longer than %zu bytes",
		    path, sizeof(sun.sun_path) - 1);
		return -1;
	}
	strcpy(sun.sun_path, path);

	if (lstat(path, &sb) == 0) {
		if (!S_ISSOCK(sb.st_mode)) {
			xasprintf(cause, "%s exists and is not a socket", path);
			return -1;
		}
		/* A socket file: is a daemon answering on it? */
		if ((probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) ==
		    -1) {
			xasprintf(cause, "socket: %s", strerror(errno));
			return -1;
		}
		rc = connect(probe, (struct sockaddr *)&sun, sizeof(sun));
		saved = errno;
		close(probe);
		if (rc == 0) {
			xasprintf(
			    cause, "%s is in use by another process", path);
			return -1;
		}
		if (saved != ECONNREFUSED && saved != ENOENT) {
			xasprintf(cause, "cannot check socket %s: %s", path,
			    strerror(saved));
			return -1;
		}
		if (unlink(path) == -1 && errno != ENOENT) {
			xasprintf(cause, "cannot remove stale socket %s: %s",
			    path, strerror(errno));
			return -1;
		}
		log_info("removed stale socket %s", path);
	} else if (errno != ENOENT) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		return -1;
	}

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
		 0)) == -1) {
		xasprintf(cause, "socket: %s", strerror(errno));
		return -1;
	}
	old = umask(~mode & 0777);
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	saved = errno;
	umask(old);
	if (rc == -1) {
		xasprintf(cause, "bind %s: %s", path, strerror(saved));
		close(fd);
		return -1;
	}
	if (listen(fd, 1024) == -1) {
		xasprintf(cause, "listen %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	return fd;
}

struct server *
server_create(struct event_base *base, const struct server_config *cfg,
    struct cmd_ctx *cmd, struct stats *stats, char **cause)
{
	struct server *srv;
	int	       fd;

	if (cfg->listen_fd >= 0) {
		/* Socket activation: systemd made, owns and removes it. */
		fd = cfg->listen_fd;
		if (evutil_make_socket_nonblocking(fd) == -1) {
			xasprintf(cause,
			    "socket activation: fd %d: cannot "
			    "make it non-blocking",
			    fd);
			return NULL;
		}
	} else if ((fd = server_bind(
			cfg->socket_path, cfg->socket_mode, cause)) == -1)
		return NULL;
	srv = xcalloc(1, sizeof(*srv));
	srv->base = base;
	srv->cfg = *cfg;
	srv->activated = cfg->listen_fd >= 0;
	srv->socket_path = xstrdup(cfg->socket_path);
	srv->cfg.socket_path = srv->socket_path;
	srv->cmd = cmd;
	srv->stats = stats;
	stats->conn_max = cfg->max_conns;
	TAILQ_INIT(&srv->conns);
	TAILQ_INIT(&srv->refused);
	wbuf_init(&srv->out);
	TAILQ_INIT(&srv->flushq);
	srv->resume_ev = evtimer_new(base, server_resume_accept_cb, srv);
	srv->flush_ev = event_new(base, -1, 0, server_flush_cb, srv);
	if (srv->resume_ev == NULL || srv->flush_ev == NULL)
		fatalx("event_new");
	srv->listener = evconnlistener_new(base, server_accept_cb, srv,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (srv->listener == NULL) {
		xasprintf(cause, "cannot listen on %s", cfg->socket_path);
		close(fd);
		unlink(cfg->socket_path);
		server_free(srv);
		return NULL;
	}
	evconnlistener_set_error_cb(srv->listener, server_accept_error_cb);
	if (srv->activated)
		log_info("listening on the socket passed by socket activation "
			 "(fd %d)",
		    fd);
	else
		log_info("listening on %s", cfg->socket_path);
	return srv;
}

void
server_set_limits(struct server *srv, const struct server_config *cfg)
{
	struct conn *c, *next;

	srv->cfg.line_max = cfg->line_max;
	srv->cfg.max_conns = cfg->max_conns;
	srv->cfg.max_conns_per_uid = cfg->max_conns_per_uid;
	srv->cfg.slow_log_ms = cfg->slow_log_ms;
	srv->cfg.access = cfg->access;
	srv->cfg.output_max = cfg->output_max;
	srv->cfg.idle_timeout_ms = cfg->idle_timeout_ms;
	srv->cfg.shutdown_timeout_ms = cfg->shutdown_timeout_ms;
	srv->stats->conn_max = cfg->max_conns;
	for (c = TAILQ_FIRST(&srv->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (conn_apply_limits(c) == -1)
			conn_free(c);
	}
}

static void
server_shutdown_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	log_warnx("shutdown: %llu connections still have unsent answers; "
		  "closing them",
	    (unsigned long long)srv->stats->conn_current);
	event_base_loopbreak(srv->base);
}

/* Stop listening and remove the socket file. */
static void
server_unlisten(struct server *srv)
{
	if (srv->listener == NULL)
		return;
	evconnlistener_free(srv->listener);
	srv->listener = NULL;
	if (srv->activated)
		return; /* systemd's socket stays for the next start */
	if (unlink(srv->socket_path) == -1 && errno != ENOENT)
		log_warn("unlink %s", srv->socket_path);
}

void
server_shutdown(struct server *srv)
{
	struct conn   *c, *next;
	struct timeval tv;

	if (srv->shutting_down) {
		log_info("second signal: exiting now");
		event_base_loopbreak(srv->base);
		return;
	}
	srv->shutting_down = 1;
	server_unlisten(srv);
	log_info("shutting down: %llu connections to finish",
	    (unsigned long long)srv->stats->conn_current);
	if (TAILQ_EMPTY(&srv->conns)) {
		event_base_loopbreak(srv->base);
		return;
	}
	for (c = TAILQ_FIRST(&srv->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (c->flags & (CONN_CLOSING | CONN_DRAIN))
			continue;
		c->flags |= CONN_DRAIN;
		conn_read_update(c);
		/* A paused one resumes from its write callback. */
		if (!(c->flags & CONN_PAUSED))
			conn_process(c);
	}
	if (TAILQ_EMPTY(&srv->conns))
		return; /* the last conn_free broke the loop */
	tv.tv_sec = srv->cfg.shutdown_timeout_ms / 1000;
	tv.tv_usec = (srv->cfg.shutdown_timeout_ms % 1000) * 1000;
	srv->shutdown_ev =
	    evtimer_new(srv->base, server_shutdown_timeout_cb, srv);
	if (srv->shutdown_ev == NULL || event_add(srv->shutdown_ev, &tv) == -1)
		fatalx("cannot arm the shutdown timer");
}

void
server_free(struct server *srv)
{
	struct conn    *c;
	struct refused *rf;

	srv->shutting_down = 1;
	while ((c = TAILQ_FIRST(&srv->conns)) != NULL)
		conn_free(c);
	while ((rf = TAILQ_FIRST(&srv->refused)) != NULL)
		refused_release(rf);
	server_unlisten(srv);
	if (srv->resume_ev != NULL)
		event_free(srv->resume_ev);
	if (srv->shutdown_ev != NULL)
		event_free(srv->shutdown_ev);
	if (srv->flush_ev != NULL)
		event_free(srv->flush_ev);
	wbuf_free(&srv->out);
	free(srv->socket_path);
	free(srv);
}

/* Send the deferred answers gathered since the last turn. */
static void
server_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	struct conn   *c;

	(void)fd;
	(void)what;
	while ((c = TAILQ_FIRST(&srv->flushq)) != NULL)
		(void)server_conn_send_now(c);
}

void
server_flush(void *srv)
{
	server_flush_cb(-1, 0, srv);
}

struct slot *
server_slot_new(struct conn *c, const char *op)
{
	struct slot *sl = xcalloc(1, sizeof(*sl));

	sl->conn = c;
	sl->op = op;
	if (c->srv->cfg.slow_log_ms > 0)
		sl->t0 = monotime_ms();
	TAILQ_INSERT_TAIL(&c->slots, sl, entry);
	c->nslots++;
	return sl;
}

void
server_slot_drop(struct slot *sl)
{
	struct conn *c = sl->conn;

	if (c != NULL) {
		TAILQ_REMOVE(&c->slots, sl, entry);
		c->nslots--;
	}
	free(sl->buf);
	free(sl);
}

struct conn *
server_slot_conn(struct slot *sl)
{
	return sl->conn;
}

struct cmd_session *
server_conn_session(struct conn *c)
{
	return &c->session;
}

int
server_slot_answer(struct slot *sl, const char *buf, size_t len)
{
	struct conn *c = sl->conn;

	if (c == NULL) {
		free(sl);
		return 0;
	}
	if (sl->t0 != 0)
		server_slow(c, sl->op, monotime_ms() - sl->t0);
	if (sl == TAILQ_FIRST(&c->slots)) {
		/* The usual case: nothing before it waits; no copy to keep. */
		TAILQ_REMOVE(&c->slots, sl, entry);
		c->nslots--;
		wbuf_add(&c->pend, buf, len);
		free(sl);
	} else {
		sl->buf = xmalloc(len > 0 ? len : 1);
		memcpy(sl->buf, buf, len);
		sl->len = len;
		sl->done = 1;
	}
	/*
	 * Gather what is ready at the head, in order. It is not sent at once:
	 * the flush event sends it after the callback that answered it, or
	 * server_flush() once a whole group is acknowledged, so that the
	 * answers of a group go out together, and clients' next writes then
	 * form larger groups; and straight to the socket, with no EPOLLOUT to
	 * register.
	 */
	while ((sl = TAILQ_FIRST(&c->slots)) != NULL && sl->done) {
		TAILQ_REMOVE(&c->slots, sl, entry);
		c->nslots--;
		wbuf_add(&c->pend, sl->buf, sl->len);
		free(sl->buf);
		free(sl);
	}
	if (c->pend.len > 0)
		conn_queue_pending(c);
	if ((c->flags & CONN_CLOSING) && !c->queued && TAILQ_EMPTY(&c->slots))
		return conn_close_when_sent(c) == -1 ? 0 : 1;
	if ((c->flags & CONN_BACKLOG) && c->nslots < CONN_SLOTS_MAX / 2) {
		c->flags &= ~CONN_BACKLOG;
		if (!(c->flags & (CONN_PAUSED | CONN_CLOSING)) &&
		    conn_process(c) == -1)
			return 0;
	}
	return 1;
}

int
server_conn_send_now(struct conn *c)
{
	if (conn_send_pending(c) == -1)
		return -1;
	if (c->flags & CONN_CLOSING)
		return conn_close_when_sent(c);
	return 0;
}

void
server_conn_resume(struct conn *c)
{
	if (!(c->flags & CONN_WAIT))
		return;
	c->flags &= ~CONN_WAIT;
	if (c->flags & (CONN_PAUSED | CONN_CLOSING))
		return;
	conn_process(c);
}

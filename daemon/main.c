/*
 * main.c -- stashd: options, start-up, signals, the event loop.
 *
 * Start-up order matters: options are checked before anything is created;
 * the database is opened and the journal recovered and replayed before the
 * writer threads start; the socket is bound last, so a client never
 * reaches a daemon that has not finished recovery.
 *
 * Stopping (SIGTERM): stop accepting, answer what was read, let the writer
 * finish every queued write, checkpoint, and exit 0.
 */
#include "config.h"

#include <sys/random.h>
#include <sys/resource.h>
#include <sched.h>
#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <sqlite3.h>

#include "access.h"
#include "cache.h"
#include "cmd.h"
#include "crashpoint.h"
#include "journal.h"
#include "log.h"
#include "mailbox.h"
#include "monotime.h"
#include "notify.h"
#include "options.h"
#include "qpool.h"
#include "reader.h"
#include "server.h"
#include "store.h"
#include "writer.h"
#include "stash-protocol.h"
#include "stats.h"
#include "wbuf.h"
#include "xmalloc.h"

/* How often expired cache entries are swept, and how much per sweep. */
#define SWEEP_INTERVAL_MS 100
#define SWEEP_STEPS	  4096

struct daemon {
	struct event_base *base;
	struct options	   opts;
	struct stats	   stats;
	struct cache	  *cache;
	struct cmd_ctx	   cmd;
	struct server	  *server;
	struct event	  *sweep_ev;
	struct mailbox	  *mailbox;
	struct journal	  *journal;
	struct store	  *store;
	struct writer	  *writer;
	struct reader	  *reader;
	int		   exit_code;
	struct access	  *access; /* who may do what */
	int		   argc;   /* for a reload */
	char		 **argv;
	struct event	  *status_ev; /* STATUS= for systemd */
	struct event	  *watchdog_ev;
	uint64_t	   status_requests;
};

/* How often the one-line status goes to the service manager. */
#define STATUS_INTERVAL_MS 2000

/* The span over which the loop measures how fast requests come. */
#define POLL_WINDOW_US 1000

/* Descriptors besides the connections: the daemon's own files. */
#define MAIN_OWN_FDS 64

/* Whether the daemon may run on more than one CPU. */
static int
several_cpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) == -1)
		return sysconf(_SC_NPROCESSORS_ONLN) > 1;
	return CPU_COUNT(&set) > 1;
}

/*
 * The event loop, with busy polling. Between two requests the loop
 * sleeps in epoll_wait, and the client that sends the next one pays for
 * waking it: at a GET every few microseconds from many clients, that is
 * thousands of wake-ups a second, each a few microseconds of the
 * clients' CPU, and of latency. So while requests come faster than one
 * in busy_poll (measured over the last POLL_WINDOW_US), the loop does not
 * go to sleep as soon as it runs out of work: it looks again, without
 * blocking, until busy_poll has passed since the last request it found.
 * It never polls on a single CPU (it would only take the CPU from the
 * clients), nor while writes wait to be applied or lookups and queries
 * wait for the readers (the threads doing them need the CPUs then), and
 * an idle daemon sleeps. But it does poll while an answer waits for the
 * journal (a durable write at journal durability): its acknowledgement
 * is due within an fdatasync, and a loop asleep then would be woken for
 * it and again for each client's next write, on the path that sets how
 * many writes each fdatasync carries.
 */
static void
daemon_loop(struct daemon *d)
{
	uint64_t since = monotime_us(), seen = d->stats.requests, last = 0, t,
		 n;
	int polling = 0, dense = 0, cpus = several_cpus(), rc;

	for (;;) {
		n = d->stats.requests;
		rc = event_base_loop(
		    d->base, polling ? EVLOOP_NONBLOCK : EVLOOP_ONCE);
		if (rc == -1)
			fatalx("event_base_loop failed");
		if (rc == 1 || event_base_got_break(d->base) ||
		    event_base_got_exit(d->base))
			return;
		t = monotime_us();
		if (d->stats.requests != n) {
			last = t;
			if (polling)
				d->stats.polled += d->stats.requests - n;
		}
		if (t - since >= POLL_WINDOW_US) {
			dense =
			    (d->stats.requests - seen) * d->opts.busy_poll_us >=
			    t - since;
			since = t;
			seen = d->stats.requests;
		}
		polling =
		    dense && cpus && d->opts.busy_poll_us > 0 &&
		    (d->cmd.unapplied_bytes == 0 || d->cmd.journal_waits > 0) &&
		    reader_backlog(d->reader) == 0 &&
		    t - last < d->opts.busy_poll_us;
	}
}

/*
 * Raise the descriptor limit to fit max_connections (plus room for the
 * daemon's own files and the refused clients it may hold a moment);
 * lower max_connections if the hard limit is short.
 */
static void
raise_nofile(struct options *o)
{
	struct rlimit rl;
	rlim_t	      want =
	    (rlim_t)o->server.max_conns + MAIN_OWN_FDS + SERVER_REFUSED_MAX;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
		log_warn("getrlimit(RLIMIT_NOFILE)");
		return;
	}
	if (rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want
			  ? want
			  : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		log_warn("setrlimit(RLIMIT_NOFILE, %llu)",
		    (unsigned long long)rl.rlim_cur);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
		o->server.max_conns =
		    rl.rlim_cur > 2 * (MAIN_OWN_FDS + SERVER_REFUSED_MAX)
			? (size_t)rl.rlim_cur - MAIN_OWN_FDS -
			      SERVER_REFUSED_MAX
			: MAIN_OWN_FDS;
		log_warnx("descriptor limit is %llu: max-connections lowered "
			  "to %zu",
		    (unsigned long long)rl.rlim_cur, o->server.max_conns);
	}
}

static void
signal_term_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	log_info("received %s", sig == SIGINT ? "SIGINT" : "SIGTERM");
	notify_send("STOPPING=1\nSTATUS=stopping: finishing queued writes");
	server_shutdown(d->server);
}

/*
 * The write queue's limit: write-queue-max, at most half of max-memory, so
 * that unapplied writes always fit the cache. The option itself is left
 * as given, so that a reload compares like with like.
 *
 * Unset, it is a quarter of max-memory, from 32MB to 256MB. The queue is
 * what lets a transaction to SQLite cover many writes: with keys spread
 * over a table, each transaction rewrites most of the table's pages, so
 * fewer, larger ones cost less a write (docs/benchmarks.md). The apply
 * starts once half the limit waits: at 256MB, some 290,000 writes of 100
 * bytes, past the most one transaction takes (writer.c, apply_batch_max:
 * 262,144 by default). A larger queue would only make the journal that a
 * restart replays longer.
 */
/* glibc's initial mmap threshold, kept (see main). */
#define STASHD_MMAP_THRESHOLD (128 * 1024)

#define WRITE_QUEUE_AUTO_MIN ((size_t)32 * 1024 * 1024)
#define WRITE_QUEUE_AUTO_MAX ((size_t)256 * 1024 * 1024)

static size_t
write_queue_limit(const struct options *o)
{
	size_t q = o->write_queue_max;

	if (q == 0) {
		q = o->max_memory / 4;
		if (q < WRITE_QUEUE_AUTO_MIN)
			q = WRITE_QUEUE_AUTO_MIN;
		if (q > WRITE_QUEUE_AUTO_MAX)
			q = WRITE_QUEUE_AUTO_MAX;
	}
	return q < o->max_memory / 2 ? q : o->max_memory / 2;
}

/* Push the settings that can change at run time into the daemon. */
static void
apply_limits(struct daemon *d)
{
	log_set_level(d->opts.log_level);
	cache_set_max_memory(d->cache, d->opts.max_memory);
	server_set_limits(d->server, &d->opts.server);
	d->cmd.limits.depth_max = d->opts.depth_max;
	d->cmd.limits.mget_max = d->opts.mget_max;
	d->cmd.dur_kv = d->opts.dur_kv;
	d->cmd.dur_exec = d->opts.dur_exec;
	d->cmd.sql_enabled = d->opts.sql_enabled;
	d->cmd.write_queue_max = write_queue_limit(&d->opts);
}

/*
 * SIGHUP: read the file again (and the command line, which still wins),
 * apply what can change at run time, and say what changed and what needs
 * a restart. A bad file keeps every running setting.
 */
static void
signal_hup_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	struct access *na;
	struct options n;
	char	      *cause = NULL, ov[64], nv[64];
	size_t	       i;
	int	       changed = 0, restart = 0;

	if (d->opts.config_file == NULL) {
		log_info("SIGHUP: no configuration file was read; nothing "
			 "to reload");
		return;
	}
	log_info("SIGHUP: reading %s", d->opts.config_file);
	notify_send("RELOADING=1");
	if (options_reread(&n, d->opts.config_file, d->argc, d->argv, &cause) ==
	    -1) {
		log_warnx("reload: %s; keeping the running settings", cause);
		free(cause);
		options_free(&n);
		notify_send("READY=1");
		return;
	}
	if (n.journal_dir == NULL)
		xasprintf(&n.journal_dir, "%s.journal", n.database);
	/* New access lists must resolve before anything changes. */
	if ((na = access_create(n.allow_users, n.allow_groups, &cause)) ==
	    NULL) {
		log_warnx("reload: allow-users/allow-groups: %s; keeping the "
			  "running settings",
		    cause);
		free(cause);
		options_free(&n);
		notify_send("READY=1");
		return;
	}
	for (i = 0; i < options_count(); i++) {
		if (!options_differ(&d->opts, &n, i))
			continue;
		options_format(&d->opts, i, ov, sizeof(ov));
		options_format(&n, i, nv, sizeof(nv));
		if (options_reloadable(i)) {
			log_info(
			    "reload: %s: %s -> %s", options_name(i), ov, nv);
			options_copy(&d->opts, &n, i);
			changed++;
		} else {
			log_warnx("reload: %s: %s -> %s needs a restart; "
				  "keeping %s",
			    options_name(i), ov, nv, ov);
			restart++;
		}
	}
	options_free(&n);
	if (changed == 0 && restart == 0)
		log_info("reload: nothing changed");
	/* New connections get the new lists; open ones keep their role. */
	access_free(d->access);
	d->access = na;
	d->opts.server.access = na;
	apply_limits(d);
	notify_send("READY=1");
}

/* One line for `systemctl status`: clients, ops/s, queue depth. */
static void
status_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	uint64_t       ops = d->stats.requests - d->status_requests;

	d->status_requests = d->stats.requests;
	notify_send("STATUS=%llu clients, %.0f ops/s, %zu bytes of writes "
		    "not yet applied",
	    (unsigned long long)d->stats.conn_current,
	    (double)ops * 1000.0 / STATUS_INTERVAL_MS, d->cmd.unapplied_bytes);
}

/* The loop is alive: tell the watchdog. */
static void
watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	notify_send("WATCHDOG=1");
}

/* Reclaim expired cache entries a little at a time. */
static void
sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	cache_sweep(d->cache, SWEEP_STEPS);
}

/* The journal failed: stop now, for systemd to restart us. */
static void
on_broken(void *arg)
{
	struct daemon *d = arg;

	d->exit_code = 1;
	event_base_loopbreak(d->base);
}

/*
 * Open the database and the journal, and apply what the journal holds
 * beyond the database's applied_seq. Returns the last sequence number.
 */
static uint64_t
recover(struct daemon *d, const struct store_options *so)
{
	struct journal_options	jo;
	struct journal_recovery rec;
	struct timespec		t0, t1;
	uint64_t		applied, replayed = 0, last = 0;
	double			secs;
	char		       *cause = NULL;

	/* The journal first: its lock keeps a second daemon out. */
	memset(&jo, 0, sizeof(jo));
	jo.dir = d->opts.journal_dir;
	jo.segment_max = d->opts.segment_max;
	jo.record_max = d->opts.record_max;
	jo.salvage = d->opts.salvage;
	/* Zeros a megabyte ahead: most fdatasyncs then flush no metadata. */
	jo.prezero = 1024 * 1024;
#ifdef STASHD_CRASH_POINTS
	jo.crash_point = crashpoint_hit;
#endif
	if ((d->journal = journal_open(&jo, &rec, &cause)) == NULL)
		fatalx("%s", cause);
	if ((d->store = store_open(so, &cause)) == NULL)
		fatalx("%s", cause);
	if (store_applied_seq(d->store, &applied, &cause) == -1)
		fatalx("%s", cause);
	log_info("journal %s: %" PRIu64 " records in %" PRIu64 " segments "
		 "(seq %" PRIu64 "..%" PRIu64
		 "), database applied_seq %" PRIu64,
	    jo.dir, rec.records, rec.segments, rec.first_seq, rec.last_seq,
	    applied);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (writer_replay(d->journal, d->store, applied, 4096, &replayed, &last,
		&cause) == -1)
		fatalx("replay: %s", cause);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (replayed > 0)
		log_info("replayed %" PRIu64 " journal records in %.3f s "
			 "(%.0f records/s)",
		    replayed, secs, secs > 0 ? (double)replayed / secs : 0.0);
	if (d->opts.sync_normal && store_checkpoint(d->store, 0, &cause) == -1)
		fatalx("%s", cause);
	journal_release(d->journal, last > applied ? last : applied);
	if (rec.last_seq > last)
		last = rec.last_seq;
	return last > applied ? last : applied;
}

/*
 * The cache's clock: the wall clock in milliseconds, as SQLite's expiries
 * and the writes' count, so that an entry's expiry reads back as the very
 * millisecond that was written (cache_entry_expires).
 */
static uint64_t
cache_wall_clock(void *arg)
{
	(void)arg;
	return (uint64_t)wall_ms();
}

int
main(int argc, char **argv)
{
	struct cache_config	cc;
	struct store_options	so;
	struct writer_callbacks wcb;
	struct daemon		d;
	struct qpool_stats	qs;
	struct event	       *ev_term, *ev_int, *ev_hup;
	struct timeval		tv = {0, SWEEP_INTERVAL_MS * 1000};
	char		       *cause = NULL;
	uint64_t		seed, last_seq;

	memset(&d, 0, sizeof(d));
	d.argc = argc;
	d.argv = argv;
	options_defaults(&d.opts);
	options_parse(&d.opts, argc, argv);
	if ((d.access = access_create(
		 d.opts.allow_users, d.opts.allow_groups, &cause)) == NULL) {
		fprintf(
		    stderr, "stashd: allow-users/allow-groups: %s\n", cause);
		return 2;
	}
	d.opts.server.access = d.access;
	if (d.opts.check_config) {
		access_free(d.access);
		printf("%s: ok\n", d.opts.config_file != NULL
				       ? d.opts.config_file
				       : "no configuration file; defaults");
		options_free(&d.opts);
		return 0;
	}
	log_init(d.opts.log_level);
	/*
	 * A fixed mmap threshold. By default glibc raises it each time a
	 * block above it is freed (up to 32MB), and later blocks of that size
	 * (a large batch's coalescing array, 8 MB) then come from the
	 * heaps, where they outlive the burst: after a fill of 1M keys
	 * through a 256MB write queue, 211 bytes a key stayed resident
	 * against 202 with the threshold fixed (docs/benchmarks.md). Setting
	 * it turns the raising off. Sanitizers refuse it (memory is theirs):
	 * that costs only those bytes.
	 */
	if (mallopt(M_MMAP_THRESHOLD, STASHD_MMAP_THRESHOLD) != 1)
		log_debug("malloc: the mmap threshold stays dynamic");
	/* No memory statistics: they cost a global mutex per allocation. */
	if (sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) != SQLITE_OK)
		log_warnx("sqlite: cannot turn memory statistics off");
#ifdef STASHD_CRASH_POINTS
	if (crashpoint_init(&cause) == -1)
		fatalx("%s", cause);
#endif
	if (d.opts.journal_dir == NULL)
		xasprintf(&d.opts.journal_dir, "%s.journal", d.opts.database);
	if (d.opts.write_queue_max > d.opts.max_memory / 2)
		log_info("write-queue-max lowered to %zu bytes: half of "
			 "max-memory, so unapplied writes always fit the cache",
		    write_queue_limit(&d.opts));

	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		fatal("signal(SIGPIPE)");
	raise_nofile(&d.opts);
	/* A socket passed by socket activation replaces our own. */
	if ((d.opts.server.listen_fd = notify_listen_fd(&cause)) == -2)
		fatalx("%s", cause);

	memset(&so, 0, sizeof(so));
	so.path = d.opts.database;
	so.synchronous_full = !d.opts.sync_normal;
	so.busy_timeout_ms = 30000;
	so.cache_bytes = d.opts.sqlite_cache;
	so.query_rows_max = d.opts.query_rows_max;
	so.query_bytes_max = d.opts.query_bytes_max;
	so.query_timeout_ms = d.opts.query_timeout_ms;
	last_seq = recover(&d, &so);
	if (d.opts.salvage) {
		log_info("salvage done: the journal holds only good records, "
			 "all applied");
		journal_close(d.journal);
		store_close(d.store);
		options_free(&d.opts);
		return 0;
	}

	if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
		fatal("getrandom");
	memset(&cc, 0, sizeof(cc));
	cc.max_memory = d.opts.max_memory;
	cc.seed = seed;
	cc.clock = cache_wall_clock; /* expiries are wall-clock times */
	if ((d.cache = cache_create(&cc)) == NULL)
		fatalx("cannot create the cache");

	/*
	 * Two priorities: what the other threads post to the loop (the
	 * mailbox: acknowledgements, lookups) runs before the clients' input
	 * in a turn of the loop (mailbox.c); everything else is at 1.
	 */
	if ((d.base = event_base_new()) == NULL ||
	    event_base_priority_init(d.base, 2) == -1)
		fatalx("event_base_new");
	d.mailbox = mailbox_create(d.base);
	if ((d.reader = reader_start(d.opts.readers, &so, d.mailbox, &cause)) ==
	    NULL)
		fatalx("%s", cause);

	stats_init(&d.stats);
	cmd_init(&d.cmd);
	d.cmd.cache = d.cache;
	d.cmd.stats = &d.stats;
	d.cmd.limits.depth_max = d.opts.depth_max;
	d.cmd.limits.mget_max = d.opts.mget_max;
	d.cmd.dur_kv = d.opts.dur_kv;
	d.cmd.dur_exec = d.opts.dur_exec;
	d.cmd.sql_enabled = d.opts.sql_enabled;
	d.cmd.seq = last_seq;
	d.cmd.applied_seq = last_seq;
	/* An empty key-value table: the cache will know every key. */
	switch (store_kv_empty(d.store, &cause)) {
	case 1: d.cmd.kv_complete = 1; break;
	case 0: break;
	default:
		log_warnx("%s", cause);
		free(cause);
		cause = NULL;
		break;
	}
	d.cmd.write_queue_max = write_queue_limit(&d.opts);
	d.cmd.journal = d.journal;
	d.cmd.reader = d.reader;
	d.cmd.on_broken = on_broken;
	d.cmd.on_broken_arg = &d;
	d.stats.last_seq = last_seq;

	memset(&wcb, 0, sizeof(wcb));
	wcb.journaled = cmd_journaled;
	wcb.applied = cmd_applied;
	wcb.unavailable = cmd_unavailable;
	wcb.fatal = cmd_broken;
	wcb.dropped = cmd_dropped;
	wcb.arg = &d.cmd;
	d.opts.writer.sync_normal = d.opts.sync_normal;
	d.opts.writer.journal_dir = d.opts.journal_dir;
	d.writer =
	    writer_start(&d.opts.writer, d.journal, d.store, d.mailbox, &wcb);
	d.cmd.writer = d.writer;

	ev_term = evsignal_new(d.base, SIGTERM, signal_term_cb, &d);
	ev_int = evsignal_new(d.base, SIGINT, signal_term_cb, &d);
	ev_hup = evsignal_new(d.base, SIGHUP, signal_hup_cb, &d);
	d.sweep_ev = event_new(d.base, -1, EV_PERSIST, sweep_cb, &d);
	if (ev_term == NULL || ev_int == NULL || ev_hup == NULL ||
	    d.sweep_ev == NULL || event_add(ev_term, NULL) == -1 ||
	    event_add(ev_int, NULL) == -1 || event_add(ev_hup, NULL) == -1 ||
	    event_add(d.sweep_ev, &tv) == -1)
		fatalx("cannot set up signal and timer events");

	d.server =
	    server_create(d.base, &d.opts.server, &d.cmd, &d.stats, &cause);
	if (d.server == NULL)
		fatalx("%s", cause);
	d.cmd.flush = server_flush;
	d.cmd.flush_arg = d.server;
	{
		struct timeval stv = {STATUS_INTERVAL_MS / 1000,
		    (STATUS_INTERVAL_MS % 1000) * 1000};
		uint64_t       wd = notify_watchdog_usec();

		d.status_ev = event_new(d.base, -1, EV_PERSIST, status_cb, &d);
		if (d.status_ev == NULL || event_add(d.status_ev, &stv) == -1)
			fatalx("cannot set up the status timer");
		if (wd > 0) {
			struct timeval wtv = {(time_t)(wd / 2 / 1000000),
			    (suseconds_t)(wd / 2 % 1000000)};

			d.watchdog_ev =
			    event_new(d.base, -1, EV_PERSIST, watchdog_cb, &d);
			if (d.watchdog_ev == NULL ||
			    event_add(d.watchdog_ev, &wtv) == -1)
				fatalx("cannot set up the watchdog timer");
			log_info("watchdog: pinging every %llu ms",
			    (unsigned long long)(wd / 2000));
		}
	}
	/* Recovery is over and the socket listens: ready. */
	notify_send("READY=1\nSTATUS=ready: seq %llu, 0 clients",
	    (unsigned long long)last_seq);
	log_info("stashd %s ready: database %s, cache %zu bytes, seq %" PRIu64
		 ", pid %ld",
	    PACKAGE_VERSION, d.opts.database, d.opts.max_memory, last_seq,
	    (long)getpid());

	daemon_loop(&d);

	/* Clients are gone; finish the writes, then close the files. */
	server_free(d.server);
	writer_stop(d.writer);
	reader_stop(d.reader);
	mailbox_drain(d.mailbox);
	/*
	 * Everything is applied: checkpoint, and once SQLite has it all on
	 * disk, the journal has nothing left to keep. If the checkpoint does
	 * not complete, the journal stays for the next start to replay.
	 */
	if (d.exit_code == 0) {
		if (store_checkpoint(d.store, 1, &cause) != 0) {
			log_warnx(
			    "checkpoint at exit did not complete%s%s; the "
			    "journal is kept",
			    cause ? ": " : "", cause ? cause : "");
			free(cause);
			cause = NULL;
		} else if (journal_finish(d.journal, d.cmd.applied_seq) == 0)
			log_info("journal empty: every write is in SQLite");
	}
	cmd_free(&d.cmd);
	mailbox_free(d.mailbox);
	journal_close(d.journal);
	store_close(d.store);
	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_hup);
	event_free(d.sweep_ev);
	event_free(d.status_ev);
	if (d.watchdog_ev != NULL)
		event_free(d.watchdog_ev);
	event_base_free(d.base);
	cache_destroy(d.cache);
	access_free(d.access);
	options_free(&d.opts);
	qpool_thread_done();
	qpool_get_stats(&qs);
	if (qs.live != 0)
		log_warnx("%zu writes still allocated at exit", qs.live);
	log_info(d.exit_code == 0 ? "stopped"
				  : "stopped after a journal "
				    "failure");
	return d.exit_code;
}

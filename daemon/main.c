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
#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include <event2/thread.h>

#include "cache.h"
#include "cmd.h"
#include "journal.h"
#include "log.h"
#include "mailbox.h"
#include "reader.h"
#include "server.h"
#include "store.h"
#include "writer.h"
#include "stash-protocol.h"
#include "stats.h"
#include "wbuf.h"
#include "xmalloc.h"

/* How often expired cache entries are swept, and how much per sweep. */
#define SWEEP_INTERVAL_MS	100
#define SWEEP_STEPS		4096

struct options {
	struct server_config	 server;
	size_t			 max_memory;
	size_t			 depth_max;
	size_t			 mget_max;
	enum proto_durability	 dur_kv;
	enum proto_durability	 dur_exec;
	enum log_level		 log_level;
	const char		*database;
	char			*journal_dir;
	size_t			 segment_max;
	size_t			 record_max;
	struct writer_options	 writer;
	size_t			 write_queue_max;
	unsigned		 readers;
	int			 sql_enabled;
	size_t			 query_rows_max;
	size_t			 query_bytes_max;
	int			 salvage;
	int			 sync_normal;
};

struct daemon {
	struct event_base	*base;
	struct options		 opts;
	struct stats		 stats;
	struct cache		*cache;
	struct cmd_ctx		 cmd;
	struct server		*server;
	struct event		*sweep_ev;
	struct mailbox		*mailbox;
	struct journal		*journal;
	struct store		*store;
	struct writer		*writer;
	struct reader		*reader;
	int			 exit_code;
};

enum {
	OPT_SOCKET_MODE = 256,
	OPT_MAX_LINE,
	OPT_MAX_DEPTH,
	OPT_MAX_CONNECTIONS,
	OPT_MAX_OUTPUT,
	OPT_MGET_MAX,
	OPT_IDLE_TIMEOUT,
	OPT_SHUTDOWN_TIMEOUT,
	OPT_DURABILITY_KV,
	OPT_DURABILITY_EXEC,
	OPT_JOURNAL_DIR,
	OPT_SEGMENT_SIZE,
	OPT_RECORD_MAX,
	OPT_GROUP_MAX_OPS,
	OPT_GROUP_MAX_BYTES,
	OPT_GROUP_DELAY,
	OPT_FSYNC_INTERVAL,
	OPT_WRITE_QUEUE_MAX,
	OPT_READERS,
	OPT_SQL,
	OPT_QUERY_ROWS_MAX,
	OPT_QUERY_BYTES_MAX,
	OPT_SALVAGE,
	OPT_SYNCHRONOUS,
};

static const struct option longopts[] = {
	{ "socket", required_argument, NULL, 's' },
	{ "socket-mode", required_argument, NULL, OPT_SOCKET_MODE },
	{ "max-memory", required_argument, NULL, 'm' },
	{ "max-line", required_argument, NULL, OPT_MAX_LINE },
	{ "max-depth", required_argument, NULL, OPT_MAX_DEPTH },
	{ "max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS },
	{ "max-output", required_argument, NULL, OPT_MAX_OUTPUT },
	{ "mget-max", required_argument, NULL, OPT_MGET_MAX },
	{ "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
	{ "shutdown-timeout", required_argument, NULL, OPT_SHUTDOWN_TIMEOUT },
	{ "durability-kv", required_argument, NULL, OPT_DURABILITY_KV },
	{ "durability-exec", required_argument, NULL, OPT_DURABILITY_EXEC },
	{ "database", required_argument, NULL, 'd' },
	{ "journal-dir", required_argument, NULL, OPT_JOURNAL_DIR },
	{ "segment-size", required_argument, NULL, OPT_SEGMENT_SIZE },
	{ "record-max", required_argument, NULL, OPT_RECORD_MAX },
	{ "group-max-ops", required_argument, NULL, OPT_GROUP_MAX_OPS },
	{ "group-max-bytes", required_argument, NULL, OPT_GROUP_MAX_BYTES },
	{ "group-delay", required_argument, NULL, OPT_GROUP_DELAY },
	{ "fsync-interval", required_argument, NULL, OPT_FSYNC_INTERVAL },
	{ "write-queue-max", required_argument, NULL, OPT_WRITE_QUEUE_MAX },
	{ "readers", required_argument, NULL, OPT_READERS },
	{ "sql", required_argument, NULL, OPT_SQL },
	{ "query-rows-max", required_argument, NULL, OPT_QUERY_ROWS_MAX },
	{ "query-bytes-max", required_argument, NULL, OPT_QUERY_BYTES_MAX },
	{ "salvage", no_argument, NULL, OPT_SALVAGE },
	{ "synchronous", required_argument, NULL, OPT_SYNCHRONOUS },
	{ "log-level", required_argument, NULL, 'l' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 }
};

static void
usage(FILE *f)
{
	fprintf(f,
"usage: stashd [options]\n"
"\n"
"A caching and write-batching daemon for SQLite, reached over a Unix socket.\n"
"\n"
"  -s, --socket PATH            socket to listen on [" STASH_SOCKET_DEFAULT "]\n"
"  -d, --database PATH          SQLite database [stashd.db]\n"
"      --journal-dir PATH       write-ahead journal folder [DATABASE.journal]\n"
"      --segment-size SIZE      journal segment size before rotation [64MB]\n"
"      --record-max SIZE        largest journal record [16MB]\n"
"      --group-max-ops N        most writes in one group commit [4096]\n"
"      --group-max-bytes SIZE   most bytes in one group commit [16MB]\n"
"      --group-delay TIME       wait this long for a group to fill [0]\n"
"      --fsync-interval TIME    async writes are fsync'd within this [1s]\n"
"      --write-queue-max SIZE   writes not yet applied before writers wait\n"
"                               [64MB, at most half of max-memory]\n"
"      --readers N              reader threads for misses and queries [2]\n"
"      --sql on|off             allow exec and query [on]\n"
"      --query-rows-max N       most rows in a query answer [100000]\n"
"      --query-bytes-max SIZE   most bytes in a query answer [16MB]\n"
"      --synchronous normal|full  SQLite's synchronous setting [normal]:\n"
"                               normal syncs SQLite at checkpoints (the\n"
"                               journal keeps writes until then), full at\n"
"                               every commit\n"
"      --salvage                keep the good prefix of a damaged journal,\n"
"                               apply it, and exit\n"
"      --socket-mode MODE       permissions of the socket, octal [0660]\n"
"  -m, --max-memory SIZE        cache memory limit [256MB]\n"
"      --max-line SIZE          longest request line [1MB]\n"
"      --max-depth N            deepest JSON nesting of a request [%d]\n"
"      --max-connections N      clients at once [1024]\n"
"      --max-output SIZE        unsent answers per client before reading\n"
"                               from it stops [4MB]\n"
"      --mget-max N             keys in one mget [%d]\n"
"      --idle-timeout TIME      close clients idle this long; 0 = never [0]\n"
"      --shutdown-timeout TIME  time to flush answers on exit [10s]\n"
"      --durability-kv D        default durability of set and del:\n"
"                               async, journal or commit [journal]\n"
"      --durability-exec D      default durability of exec [commit]\n"
"  -l, --log-level LEVEL        error, warning, info or debug [info]\n"
"  -v, --verbose                same as --log-level debug\n"
"  -h, --help                   show this help\n"
"  -V, --version                show the version\n"
"\n"
"SIZE takes a unit: 512KB, 64MB, 1GB (or KiB, MiB, GiB; all powers of 1024).\n"
"TIME takes a unit: 500ms, 30s, 5m, 1h (a bare number is seconds).\n",
	    STASH_DEPTH_MAX_DEFAULT, STASH_MGET_MAX_DEFAULT);
}

/* Parse a size with an optional unit. -1 when invalid. */
static int
parse_size(const char *s, size_t *out)
{
	static const struct {
		const char	*unit;
		int		 shift;
	} units[] = {
		{ "", 0 }, { "b", 0 }, { "k", 10 }, { "kb", 10 }, { "kib", 10 },
		{ "m", 20 }, { "mb", 20 }, { "mib", 20 },
		{ "g", 30 }, { "gb", 30 }, { "gib", 30 },
		{ "t", 40 }, { "tb", 40 }, { "tib", 40 },
	};
	unsigned long long v;
	char *end;
	size_t i;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	while (*end == ' ')
		end++;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(end, units[i].unit) != 0)
			continue;
		if (v > (SIZE_MAX >> units[i].shift))
			return -1;
		*out = (size_t)v << units[i].shift;
		return 0;
	}
	return -1;
}

/*
 * Parse a duration (us, ms, s, m or min, h; a bare number is seconds) into
 * units of unit_us microseconds, rounding down. -1 when invalid or when it
 * does not fit an unsigned.
 */
static int
parse_duration(const char *s, unsigned long long unit_us, unsigned *out)
{
	static const struct {
		const char		*suffix;
		unsigned long long	 us;
	} units[] = {
		{ "", 1000000ULL }, { "s", 1000000ULL }, { "us", 1ULL },
		{ "ms", 1000ULL }, { "m", 60000000ULL }, { "min", 60000000ULL },
		{ "h", 3600000000ULL },
	};
	unsigned long long v, r;
	char *end;
	size_t i;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].suffix) != 0)
			continue;
		if (units[i].us > 0 && v > ULLONG_MAX / units[i].us)
			return -1;
		r = v * units[i].us / unit_us;
		if (r > UINT_MAX)
			return -1;
		*out = (unsigned)r;
		return 0;
	}
	return -1;
}

static int
parse_duration_ms(const char *s, unsigned *out)
{
	return parse_duration(s, 1000, out);
}

static int
parse_duration_us(const char *s, unsigned *out)
{
	return parse_duration(s, 1, out);
}

/* Parse a positive count. */
static int
parse_count(const char *s, size_t min, size_t max, size_t *out)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = (size_t)v;
	return 0;
}

static int
parse_durability(const char *s, enum proto_durability *d)
{
	if (strcmp(s, STASH_DUR_ASYNC) == 0)
		*d = PROTO_DUR_ASYNC;
	else if (strcmp(s, STASH_DUR_JOURNAL) == 0)
		*d = PROTO_DUR_JOURNAL;
	else if (strcmp(s, STASH_DUR_COMMIT) == 0)
		*d = PROTO_DUR_COMMIT;
	else
		return -1;
	return 0;
}

static void
options_defaults(struct options *o)
{
	memset(o, 0, sizeof(*o));
	o->server.socket_path = STASH_SOCKET_DEFAULT;
	o->server.socket_mode = 0660;
	o->server.line_max = STASH_LINE_MAX_DEFAULT;
	o->server.max_conns = 1024;
	o->server.output_max = 4 * 1024 * 1024;
	o->server.idle_timeout_ms = 0;
	o->server.shutdown_timeout_ms = 10 * 1000;
	o->max_memory = (size_t)256 * 1024 * 1024;
	o->depth_max = STASH_DEPTH_MAX_DEFAULT;
	o->mget_max = STASH_MGET_MAX_DEFAULT;
	o->dur_kv = PROTO_DUR_JOURNAL;
	o->dur_exec = PROTO_DUR_COMMIT;
	o->log_level = LOG_LEVEL_INFO;
	o->database = "stashd.db";
	o->segment_max = (size_t)64 * 1024 * 1024;
	o->record_max = (size_t)16 * 1024 * 1024;
	o->writer.group_max_ops = 4096;
	o->writer.group_max_bytes = (size_t)16 * 1024 * 1024;
	o->writer.group_delay_us = 0;
	o->writer.fsync_interval_ms = 1000;
	o->writer.purge_interval_ms = 1000;
	o->writer.checkpoint_interval_ms = 1000;
	o->sync_normal = 1;
	o->write_queue_max = (size_t)64 * 1024 * 1024;
	o->readers = 2;
	o->sql_enabled = 1;
	o->query_rows_max = 100000;
	o->query_bytes_max = (size_t)16 * 1024 * 1024;
}

/* Complain about one option value and exit with status 2. */
static void __attribute__((noreturn))
bad_option(const char *name, const char *value, const char *want)
{
	fprintf(stderr, "stashd: --%s: invalid value \"%s\": %s\n", name,
	    value, want);
	exit(2);
}

static void
options_parse(struct options *o, int argc, char **argv)
{
	unsigned long mode;
	unsigned ms;
	size_t n;
	char *end;
	int ch;

	while ((ch = getopt_long(argc, argv, "s:d:m:l:vhV", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 's':
			if (*optarg == '\0')
				bad_option("socket", optarg, "a path");
			o->server.socket_path = optarg;
			break;
		case OPT_SOCKET_MODE:
			errno = 0;
			mode = strtoul(optarg, &end, 8);
			if (errno != 0 || *end != '\0' || mode > 0777)
				bad_option("socket-mode", optarg,
				    "an octal mode such as 0660");
			o->server.socket_mode = (mode_t)mode;
			break;
		case 'm':
			if (parse_size(optarg, &o->max_memory) == -1 ||
			    o->max_memory < 1024 * 1024)
				bad_option("max-memory", optarg,
				    "a size of at least 1MB");
			break;
		case OPT_MAX_LINE:
			if (parse_size(optarg, &o->server.line_max) == -1 ||
			    o->server.line_max < 1024 ||
			    o->server.line_max > (size_t)1 << 30)
				bad_option("max-line", optarg,
				    "a size from 1KB to 1GB");
			break;
		case OPT_MAX_DEPTH:
			if (parse_count(optarg, 2, 1000, &o->depth_max) == -1)
				bad_option("max-depth", optarg,
				    "a number from 2 to 1000");
			break;
		case OPT_MAX_CONNECTIONS:
			if (parse_count(optarg, 1, 1000000,
			    &o->server.max_conns) == -1)
				bad_option("max-connections", optarg,
				    "a number from 1 to 1000000");
			break;
		case OPT_MAX_OUTPUT:
			if (parse_size(optarg, &o->server.output_max) == -1 ||
			    o->server.output_max < 4096)
				bad_option("max-output", optarg,
				    "a size of at least 4KB");
			break;
		case OPT_MGET_MAX:
			if (parse_count(optarg, 1, 1000000, &o->mget_max) == -1)
				bad_option("mget-max", optarg,
				    "a number from 1 to 1000000");
			break;
		case OPT_IDLE_TIMEOUT:
			if (parse_duration_ms(optarg,
			    &o->server.idle_timeout_ms) == -1)
				bad_option("idle-timeout", optarg,
				    "a duration such as 30s or 0");
			break;
		case OPT_SHUTDOWN_TIMEOUT:
			if (parse_duration_ms(optarg,
			    &o->server.shutdown_timeout_ms) == -1)
				bad_option("shutdown-timeout", optarg,
				    "a duration such as 10s");
			break;
		case OPT_DURABILITY_KV:
			if (parse_durability(optarg, &o->dur_kv) == -1)
				bad_option("durability-kv", optarg,
				    "async, journal or commit");
			break;
		case OPT_DURABILITY_EXEC:
			if (parse_durability(optarg, &o->dur_exec) == -1)
				bad_option("durability-exec", optarg,
				    "async, journal or commit");
			break;
		case 'd':
			if (*optarg == '\0')
				bad_option("database", optarg, "a path");
			o->database = optarg;
			break;
		case OPT_JOURNAL_DIR:
			if (*optarg == '\0')
				bad_option("journal-dir", optarg, "a path");
			free(o->journal_dir);
			o->journal_dir = xstrdup(optarg);
			break;
		case OPT_SEGMENT_SIZE:
			if (parse_size(optarg, &o->segment_max) == -1 ||
			    o->segment_max < 64 * 1024)
				bad_option("segment-size", optarg,
				    "a size of at least 64KB");
			break;
		case OPT_RECORD_MAX:
			if (parse_size(optarg, &o->record_max) == -1 ||
			    o->record_max < 4096 ||
			    o->record_max > (size_t)1 << 31)
				bad_option("record-max", optarg,
				    "a size from 4KB to 2GB");
			break;
		case OPT_GROUP_MAX_OPS:
			if (parse_count(optarg, 1, 1000000,
			    &o->writer.group_max_ops) == -1)
				bad_option("group-max-ops", optarg,
				    "a number from 1 to 1000000");
			break;
		case OPT_GROUP_MAX_BYTES:
			if (parse_size(optarg, &o->writer.group_max_bytes) ==
			    -1 || o->writer.group_max_bytes < 4096)
				bad_option("group-max-bytes", optarg,
				    "a size of at least 4KB");
			break;
		case OPT_GROUP_DELAY:
			if (parse_duration_us(optarg, &o->writer.group_delay_us)
			    == -1 || o->writer.group_delay_us > 1000000)
				bad_option("group-delay", optarg,
				    "a duration up to 1s, such as 200us");
			break;
		case OPT_FSYNC_INTERVAL:
			if (parse_duration_ms(optarg, &ms) == -1 || ms < 1 ||
			    ms > 60000)
				bad_option("fsync-interval", optarg,
				    "a duration from 1ms to 60s");
			o->writer.fsync_interval_ms = ms;
			break;
		case OPT_WRITE_QUEUE_MAX:
			if (parse_size(optarg, &o->write_queue_max) == -1 ||
			    o->write_queue_max < 64 * 1024)
				bad_option("write-queue-max", optarg,
				    "a size of at least 64KB");
			break;
		case OPT_READERS:
			if (parse_count(optarg, 1, 64, &n) == -1)
				bad_option("readers", optarg,
				    "a number from 1 to 64");
			o->readers = (unsigned)n;
			break;
		case OPT_SQL:
			if (strcmp(optarg, "on") == 0)
				o->sql_enabled = 1;
			else if (strcmp(optarg, "off") == 0)
				o->sql_enabled = 0;
			else
				bad_option("sql", optarg, "on or off");
			break;
		case OPT_QUERY_ROWS_MAX:
			if (parse_count(optarg, 1, 100000000,
			    &o->query_rows_max) == -1)
				bad_option("query-rows-max", optarg,
				    "a number from 1 to 100000000");
			break;
		case OPT_QUERY_BYTES_MAX:
			if (parse_size(optarg, &o->query_bytes_max) == -1 ||
			    o->query_bytes_max < 1024)
				bad_option("query-bytes-max", optarg,
				    "a size of at least 1KB");
			break;
		case OPT_SALVAGE:
			o->salvage = 1;
			break;
		case OPT_SYNCHRONOUS:
			if (strcmp(optarg, "full") == 0)
				o->sync_normal = 0;
			else if (strcmp(optarg, "normal") == 0)
				o->sync_normal = 1;
			else
				bad_option("synchronous", optarg,
				    "full or normal");
			break;
		case 'l':
			if (log_parse_level(optarg, &o->log_level) == -1)
				bad_option("log-level", optarg,
				    "error, warning, info or debug");
			break;
		case 'v':
			o->log_level = LOG_LEVEL_DEBUG;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("stashd %s (protocol %d)\n", PACKAGE_VERSION,
			    STASH_PROTOCOL_VERSION);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind != argc) {
		fprintf(stderr, "stashd: unexpected argument \"%s\"\n",
		    argv[optind]);
		usage(stderr);
		exit(2);
	}
}

/*
 * Raise the descriptor limit to fit max_connections (plus room for the
 * daemon's own files); lower max_connections if the hard limit is short.
 */
static void
raise_nofile(struct options *o)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)o->server.max_conns + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
		log_warn("getrlimit(RLIMIT_NOFILE)");
		return;
	}
	if (rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ?
	    want : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		log_warn("setrlimit(RLIMIT_NOFILE, %llu)",
		    (unsigned long long)rl.rlim_cur);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
		o->server.max_conns = rl.rlim_cur > 128 ?
		    (size_t)rl.rlim_cur - 64 : 64;
		log_warnx("descriptor limit is %llu: max-connections lowered "
		    "to %zu", (unsigned long long)rl.rlim_cur,
		    o->server.max_conns);
	}
}

static void
signal_term_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	log_info("received %s", sig == SIGINT ? "SIGINT" : "SIGTERM");
	server_shutdown(d->server);
}

static void
signal_hup_cb(evutil_socket_t sig, short what, void *arg)
{
	log_info("received SIGHUP: nothing to reload without a "
	    "configuration file");
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
	struct journal_options jo;
	struct journal_recovery rec;
	struct timespec t0, t1;
	uint64_t applied, replayed = 0, last = 0;
	double secs;
	char *cause = NULL;

	/* The journal first: its lock keeps a second daemon out. */
	memset(&jo, 0, sizeof(jo));
	jo.dir = d->opts.journal_dir;
	jo.segment_max = d->opts.segment_max;
	jo.record_max = d->opts.record_max;
	jo.salvage = d->opts.salvage;
	/* Zeros a megabyte ahead: most fdatasyncs then flush no metadata. */
	jo.prezero = 1024 * 1024;
	if ((d->journal = journal_open(&jo, &rec, &cause)) == NULL)
		fatalx("%s", cause);
	if ((d->store = store_open(so, &cause)) == NULL)
		fatalx("%s", cause);
	if (store_applied_seq(d->store, &applied, &cause) == -1)
		fatalx("%s", cause);
	log_info("journal %s: %" PRIu64 " records in %" PRIu64 " segments "
	    "(seq %" PRIu64 "..%" PRIu64 "), database applied_seq %" PRIu64,
	    jo.dir, rec.records, rec.segments, rec.first_seq, rec.last_seq,
	    applied);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (writer_replay(d->journal, d->store, applied, 4096, &replayed,
	    &last, &cause) == -1)
		fatalx("replay: %s", cause);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (replayed > 0)
		log_info("replayed %" PRIu64 " journal records in %.3f s "
		    "(%.0f records/s)", replayed, secs,
		    secs > 0 ? (double)replayed / secs : 0.0);
	if (d->opts.sync_normal && store_checkpoint(d->store, 0, &cause) == -1)
		fatalx("%s", cause);
	journal_release(d->journal, last > applied ? last : applied);
	if (rec.last_seq > last)
		last = rec.last_seq;
	return last > applied ? last : applied;
}

int
main(int argc, char **argv)
{
	struct cache_config cc;
	struct store_options so;
	struct writer_callbacks wcb;
	struct daemon d;
	struct event *ev_term, *ev_int, *ev_hup;
	struct timeval tv = { 0, SWEEP_INTERVAL_MS * 1000 };
	char *cause = NULL;
	uint64_t seed, last_seq;

	memset(&d, 0, sizeof(d));
	options_defaults(&d.opts);
	options_parse(&d.opts, argc, argv);
	log_init(d.opts.log_level);
	if (d.opts.journal_dir == NULL)
		xasprintf(&d.opts.journal_dir, "%s.journal", d.opts.database);
	if (d.opts.write_queue_max > d.opts.max_memory / 2) {
		d.opts.write_queue_max = d.opts.max_memory / 2;
		log_info("write-queue-max lowered to %zu bytes: half of "
		    "max-memory, so unapplied writes always fit the cache",
		    d.opts.write_queue_max);
	}

	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		fatal("signal(SIGPIPE)");
	raise_nofile(&d.opts);
	if (evthread_use_pthreads() == -1)
		fatalx("evthread_use_pthreads");

	memset(&so, 0, sizeof(so));
	so.path = d.opts.database;
	so.synchronous_full = !d.opts.sync_normal;
	so.busy_timeout_ms = 30000;
	so.query_rows_max = d.opts.query_rows_max;
	so.query_bytes_max = d.opts.query_bytes_max;
	last_seq = recover(&d, &so);
	if (d.opts.salvage) {
		log_info("salvage done: the journal holds only good records, "
		    "all applied");
		journal_close(d.journal);
		store_close(d.store);
		free(d.opts.journal_dir);
		return 0;
	}

	if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
		fatal("getrandom");
	memset(&cc, 0, sizeof(cc));
	cc.max_memory = d.opts.max_memory;
	cc.seed = seed;
	if ((d.cache = cache_create(&cc)) == NULL)
		fatalx("cannot create the cache");

	if ((d.base = event_base_new()) == NULL)
		fatalx("event_base_new");
	d.mailbox = mailbox_create(d.base);
	if ((d.reader = reader_start(d.opts.readers, &so, d.mailbox,
	    &cause)) == NULL)
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
	d.cmd.write_queue_max = d.opts.write_queue_max;
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
	wcb.arg = &d.cmd;
	d.opts.writer.sync_normal = d.opts.sync_normal;
	d.writer = writer_start(&d.opts.writer, d.journal, d.store, d.mailbox,
	    &wcb);
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

	d.server = server_create(d.base, &d.opts.server, &d.cmd, &d.stats,
	    &cause);
	if (d.server == NULL)
		fatalx("%s", cause);
	log_info("stashd %s ready: database %s, cache %zu bytes, seq %" PRIu64
	    ", pid %ld", PACKAGE_VERSION, d.opts.database, d.opts.max_memory,
	    last_seq, (long)getpid());

	if (event_base_dispatch(d.base) == -1)
		fatalx("event_base_dispatch failed");

	/* Clients are gone; finish the writes, then close the files. */
	server_free(d.server);
	writer_stop(d.writer);
	reader_stop(d.reader);
	mailbox_drain(d.mailbox);
	if (d.exit_code == 0) {
		if (store_checkpoint(d.store, 1, &cause) == -1) {
			log_warnx("%s", cause);
			free(cause);
			cause = NULL;
		}
		journal_release(d.journal, d.cmd.applied_seq);
	}
	cmd_free(&d.cmd);
	mailbox_free(d.mailbox);
	journal_close(d.journal);
	store_close(d.store);
	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_hup);
	event_free(d.sweep_ev);
	event_base_free(d.base);
	cache_destroy(d.cache);
	free(d.opts.journal_dir);
	log_info(d.exit_code == 0 ? "stopped" : "stopped after a journal "
	    "failure");
	return d.exit_code;
}

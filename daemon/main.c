/*
 * main.c -- stashd: options, start-up, signals, the event loop.
 *
 * Start-up order matters: options are checked before anything is created,
 * the descriptor limit is raised before the socket is bound, and the socket
 * is bound last, so a client never reaches a daemon that is not ready.
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

#include "cache.h"
#include "cmd.h"
#include "log.h"
#include "server.h"
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
};

struct daemon {
	struct event_base	*base;
	struct options		 opts;
	struct stats		 stats;
	struct cache		*cache;
	struct cmd_ctx		 cmd;
	struct server		*server;
	struct event		*sweep_ev;
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

/* Parse a duration into milliseconds. -1 when invalid. */
static int
parse_duration_ms(const char *s, unsigned *out)
{
	unsigned long long v, mul;
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	if (*end == '\0' || strcmp(end, "s") == 0)
		mul = 1000;
	else if (strcmp(end, "ms") == 0)
		mul = 1;
	else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
		mul = 60 * 1000;
	else if (strcmp(end, "h") == 0)
		mul = 3600 * 1000;
	else
		return -1;
	if (v > UINT_MAX / mul)
		return -1;
	*out = (unsigned)(v * mul);
	return 0;
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
	char *end;
	int ch;

	while ((ch = getopt_long(argc, argv, "s:m:l:vhV", longopts,
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

int
main(int argc, char **argv)
{
	struct cache_config cc;
	struct daemon d;
	struct event *ev_term, *ev_int, *ev_hup;
	struct timeval tv = { 0, SWEEP_INTERVAL_MS * 1000 };
	char *cause = NULL;
	uint64_t seed;

	memset(&d, 0, sizeof(d));
	options_defaults(&d.opts);
	options_parse(&d.opts, argc, argv);
	log_init(d.opts.log_level);

	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		fatal("signal(SIGPIPE)");
	raise_nofile(&d.opts);

	if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
		fatal("getrandom");
	memset(&cc, 0, sizeof(cc));
	cc.max_memory = d.opts.max_memory;
	cc.seed = seed;
	if ((d.cache = cache_create(&cc)) == NULL)
		fatalx("cannot create the cache");

	stats_init(&d.stats);
	d.cmd.cache = d.cache;
	d.cmd.stats = &d.stats;
	d.cmd.limits.depth_max = d.opts.depth_max;
	d.cmd.limits.mget_max = d.opts.mget_max;
	d.cmd.dur_kv = d.opts.dur_kv;
	d.cmd.dur_exec = d.opts.dur_exec;

	if ((d.base = event_base_new()) == NULL)
		fatalx("event_base_new");
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
	log_info("stashd %s ready: cache %zu bytes, pid %ld", PACKAGE_VERSION,
	    d.opts.max_memory, (long)getpid());

	if (event_base_dispatch(d.base) == -1)
		fatalx("event_base_dispatch failed");

	server_free(d.server);
	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_hup);
	event_free(d.sweep_ev);
	event_base_free(d.base);
	cache_destroy(d.cache);
	log_info("stopped");
	return 0;
}

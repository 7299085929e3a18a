/*
 * options.c -- settings from one table.
 *
 * Every setting is a row of config_table: its name (the long option; in
 * the file the same name, with '_' or '-'), its type and limits, its
 * default as shown by --help, and one line of help. The file is read with
 * libinih; the command line is read after it and wins. A bad value or an
 * unknown key is an error naming the key, and the line in a file; nothing
 * is silently ignored.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ini.h>

#include "options.h"
#include "stash-protocol.h"
#include "xmalloc.h"

enum ctype {
	C_PATH,	 /* char *, owned */
	C_TEXT,	 /* char *, owned, may be empty */
	C_MODE,	 /* mode_t, octal */
	C_SIZE,	 /* size_t, with a unit */
	C_COUNT, /* size_t */
	C_UINT,	 /* unsigned */
	C_MS,	 /* unsigned milliseconds, a duration */
	C_US,	 /* unsigned microseconds, a duration */
	C_DUR,	 /* enum proto_durability */
	C_LEVEL, /* enum log_level */
	C_ONOFF, /* int */
	C_SYNC,	 /* int: 1 for normal, 0 for full */
	C_CPU,	 /* int: a CPU, WRITER_CPU_AUTO or WRITER_CPU_OFF */
};

struct cdef {
	const char	  *name;
	int		   shortopt; /* 0: none */
	enum ctype	   type;
	size_t		   off;
	unsigned long long min;
	unsigned long long max;
	const char	  *dflt; /* as --help shows it */
	const char	  *help;
	int		   reload; /* can change at run time (SIGHUP) */
};

#define O(f) offsetof(struct options, f)
#define KB   1024ULL
#define MB   (1024ULL * 1024)
#define GB   (1024ULL * 1024 * 1024)

static const struct cdef config_table[] = {
    {"socket", 's', C_PATH, O(server.socket_path), 0, 0, STASH_SOCKET_DEFAULT,
	"socket to listen on", 0},
    {"socket-mode", 0, C_MODE, O(server.socket_mode), 0, 0777, "0660",
	"permissions of the socket, octal", 0},
    {"database", 'd', C_PATH, O(database), 0, 0, "stashd.db", "SQLite database",
	0},
    {"journal-dir", 0, C_PATH, O(journal_dir), 0, 0, "DATABASE.journal",
	"write-ahead journal folder", 0},
    {"max-memory", 'm', C_SIZE, O(max_memory), MB, SIZE_MAX, "256MB",
	"cache memory limit", 1},
    {"max-line", 0, C_SIZE, O(server.line_max), KB, GB, "1MB",
	"longest request line", 1},
    {"max-depth", 0, C_COUNT, O(depth_max), 2, 1000, "64",
	"deepest JSON nesting of a request", 1},
    {"max-connections", 0, C_COUNT, O(server.max_conns), 1, 1000000, "1024",
	"clients at once", 1},
    {"max-output", 0, C_SIZE, O(server.output_max), 4 * KB, SIZE_MAX, "4MB",
	"unsent answers per client before reading it stops", 1},
    {"mget-max", 0, C_COUNT, O(mget_max), 1, 1000000, "10000",
	"keys in one mget", 1},
    {"idle-timeout", 0, C_MS, O(server.idle_timeout_ms), 0, UINT_MAX, "0",
	"close clients idle this long; 0 = never", 1},
    {"shutdown-timeout", 0, C_MS, O(server.shutdown_timeout_ms), 0, UINT_MAX,
	"10s", "time to flush answers on exit", 1},
    {"busy-poll", 0, C_US, O(busy_poll_us), 0, 1000, "20us",
	"while requests come faster than one in this long and no write waits "
	"to be applied (unless an answer waits for the journal) nor lookup "
	"for a reader, look for the next one this long before sleeping (up "
	"to 1ms; 0 = never)",
	1},
    {"durability-kv", 0, C_DUR, O(dur_kv), 0, 0, "journal",
	"default durability of set and del: async, journal or commit", 1},
    {"durability-exec", 0, C_DUR, O(dur_exec), 0, 0, "commit",
	"default durability of exec", 1},
    {"segment-size", 0, C_SIZE, O(segment_max), 64 * KB, SIZE_MAX, "64MB",
	"journal segment size before rotation", 0},
    {"record-max", 0, C_SIZE, O(record_max), 4 * KB, 2 * GB, "16MB",
	"largest journal record", 0},
    {"group-max-ops", 0, C_COUNT, O(writer.group_max_ops), 1, 1000000, "4096",
	"most writes in one group commit", 0},
    {"group-max-bytes", 0, C_SIZE, O(writer.group_max_bytes), 4 * KB, SIZE_MAX,
	"16MB", "most bytes in one group commit", 0},
    {"group-delay", 0, C_US, O(writer.group_delay_us), 0, 1000000, "0",
	"wait this long for a group to fill (up to 1s)", 0},
    {"apply-delay", 0, C_MS, O(writer.apply_delay_ms), 0, 10000, "1s",
	"let journaled writes gather this long before applying them to "
	"SQLite",
	0},
    {"apply-nice", 0, C_UINT, O(writer.apply_nice), 0, 19, "10",
	"how much nicer than the daemon the thread that applies writes "
	"to SQLite runs (0: as nice as the daemon)",
	0},
    {"journal-cpu", 0, C_CPU, O(writer.journal_cpu), 0, CPU_SETSIZE - 1, "auto",
	"the CPU the journal thread runs on: auto (the one that takes the "
	"journal disk's interrupts, when one takes them all), off (any), or "
	"a CPU number",
	0},
    {"fsync-interval", 0, C_MS, O(writer.fsync_interval_ms), 1, 60000, "1s",
	"async writes are fsync'd within this", 0},
    {"write-queue-max", 0, C_SIZE, O(write_queue_max), 64 * KB, SIZE_MAX,
	"a quarter of max-memory, 32MB to 256MB",
	"writes not yet applied before writers wait "
	"(at most half of max-memory)",
	1},
    {"readers", 0, C_UINT, O(readers), 1, 64, "2",
	"reader threads for cache misses and queries", 0},
    {"sql", 0, C_ONOFF, O(sql_enabled), 0, 0, "on",
	"allow exec and query: on or off", 1},
    {"query-rows-max", 0, C_COUNT, O(query_rows_max), 1, 100000000, "100000",
	"most rows in a query answer", 0},
    {"query-bytes-max", 0, C_SIZE, O(query_bytes_max), KB, SIZE_MAX, "16MB",
	"most bytes in a query answer", 0},
    {"query-timeout", 0, C_MS, O(query_timeout_ms), 0, UINT_MAX, "10s",
	"longest a query may run (too_large past it); 0 = no limit", 0},
    {"sqlite-cache", 0, C_SIZE, O(sqlite_cache), 1024 * 1024, 64 * GB, "16MB",
	"SQLite page cache of the connection that applies writes", 0},
    {"synchronous", 0, C_SYNC, O(sync_normal), 0, 0, "normal",
	"SQLite's synchronous setting: normal (synced at checkpoints; the "
	"journal keeps writes until then) or full",
	0},
    {"allow-users", 0, C_TEXT, O(allow_users), 0, 0, "",
	"users allowed, with their role: alice:write, 1001:read "
	"(root and stashd's user are admins)",
	1},
    {"allow-groups", 0, C_TEXT, O(allow_groups), 0, 0, "",
	"groups allowed, with their role: stash-clients:write; with "
	"both lists empty, every peer may write",
	1},
    {"max-connections-per-uid", 0, C_COUNT, O(server.max_conns_per_uid), 0,
	1000000, "0", "connections of one user at once; 0 = no limit", 1},
    {"slow-log", 0, C_MS, O(server.slow_log_ms), 0, UINT_MAX, "0",
	"log requests that take this long or longer; 0 = off", 1},
    {"log-level", 'l', C_LEVEL, O(log_level), 0, 0, "info",
	"error, warning, info or debug", 1},
};

#define CONFIG_NOPTS (sizeof(config_table) / sizeof(config_table[0]))

void
options_defaults(struct options *o)
{
	memset(o, 0, sizeof(*o));
	o->server.socket_path = xstrdup(STASH_SOCKET_DEFAULT);
	o->server.socket_mode = 0660;
	o->server.listen_fd = -1;
	o->server.line_max = STASH_LINE_MAX_DEFAULT;
	o->server.max_conns = 1024;
	o->server.output_max = 4 * 1024 * 1024;
	o->server.idle_timeout_ms = 0;
	o->server.shutdown_timeout_ms = 10 * 1000;
	o->busy_poll_us = 20;
	o->max_memory = (size_t)256 * 1024 * 1024;
	o->depth_max = STASH_DEPTH_MAX_DEFAULT;
	o->mget_max = STASH_MGET_MAX_DEFAULT;
	o->dur_kv = PROTO_DUR_JOURNAL;
	o->dur_exec = PROTO_DUR_COMMIT;
	o->log_level = LOG_LEVEL_INFO;
	o->database = xstrdup("stashd.db");
	o->segment_max = (size_t)64 * 1024 * 1024;
	o->record_max = (size_t)16 * 1024 * 1024;
	o->writer.group_max_ops = 4096;
	o->writer.group_max_bytes = (size_t)16 * 1024 * 1024;
	o->writer.group_delay_us = 0;
	o->writer.fsync_interval_ms = 1000;
	o->writer.apply_delay_ms = 1000;
	o->writer.apply_nice = 10;
	o->writer.journal_cpu = WRITER_CPU_AUTO;
	o->writer.purge_interval_ms = 1000;
	o->writer.checkpoint_interval_ms = 1000;
	o->sync_normal = 1;
	o->sqlite_cache = (size_t)16 * 1024 * 1024;
	o->write_queue_max = 0; /* from max_memory: write_queue_limit() */
	o->readers = 2;
	o->sql_enabled = 1;
	o->query_rows_max = 100000;
	o->query_bytes_max = (size_t)16 * 1024 * 1024;
	o->query_timeout_ms = 10000;
}

void
options_free(struct options *o)
{
	free(o->server.socket_path);
	free(o->database);
	free(o->journal_dir);
	free(o->config_file);
	free(o->allow_users);
	free(o->allow_groups);
	o->allow_users = o->allow_groups = NULL;
	o->server.socket_path = o->database = o->journal_dir = NULL;
	o->config_file = NULL;
}

/* A unit and its size. */
struct unit {
	const char	  *u;
	unsigned long long m;
};

/* A number with an optional unit; mult is the unit's size. -1: invalid. */
static int
parse_unit(const char *s, const struct unit *units, size_t nunits,
    unsigned long long *out)
{
	unsigned long long v;
	char		  *end;
	size_t		   i;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	while (*end == ' ')
		end++;
	for (i = 0; i < nunits; i++) {
		if (strcasecmp(end, units[i].u) != 0)
			continue;
		if (units[i].m > 0 && v > ULLONG_MAX / units[i].m)
			return -1;
		*out = v * units[i].m;
		return 0;
	}
	return -1;
}

static const struct unit size_units[] = {
    {"", 1},
    {"b", 1},
    {"k", KB},
    {"kb", KB},
    {"kib", KB},
    {"m", MB},
    {"mb", MB},
    {"mib", MB},
    {"g", GB},
    {"gb", GB},
    {"gib", GB},
    {"t", 1024 * GB},
    {"tb", 1024 * GB},
    {"tib", 1024 * GB},
};

/* Durations in microseconds; a bare number is seconds. */
static const struct unit time_units[] = {
    {"", 1000000},
    {"s", 1000000},
    {"us", 1},
    {"ms", 1000},
    {"m", 60000000},
    {"min", 60000000},
    {"h", 3600000000ULL},
};

#define NUNITS(a) (sizeof(a) / sizeof(a[0]))

/* A size for people: 64MB rather than 67108864. */
static void
fmt_size(unsigned long long v, char *buf, size_t size)
{
	if (v >= GB && v % GB == 0)
		snprintf(buf, size, "%lluGB", v / GB);
	else if (v >= MB && v % MB == 0)
		snprintf(buf, size, "%lluMB", v / MB);
	else if (v >= KB && v % KB == 0)
		snprintf(buf, size, "%lluKB", v / KB);
	else
		snprintf(buf, size, "%llu bytes", v);
}

/* The placeholder of d's value in --help. */
static const char *
arg_of(const struct cdef *d)
{
	static const char *const names[] = {
	    [C_PATH] = "PATH",
	    [C_TEXT] = "LIST",
	    [C_MODE] = "MODE",
	    [C_SIZE] = "SIZE",
	    [C_COUNT] = "N",
	    [C_UINT] = "N",
	    [C_MS] = "TIME",
	    [C_US] = "TIME",
	    [C_DUR] = "D",
	    [C_LEVEL] = "LEVEL",
	    [C_ONOFF] = "on|off",
	    [C_SYNC] = "MODE",
	    [C_CPU] = "CPU",
	};

	return names[d->type];
}

/* What a valid value of d looks like, for messages. */
static void
want_of(const struct cdef *d, char *buf, size_t size)
{
	switch (d->type) {
	case C_PATH: snprintf(buf, size, "a path"); break;
	case C_TEXT: snprintf(buf, size, "text"); break;
	case C_MODE: snprintf(buf, size, "an octal mode such as 0660"); break;
	case C_SIZE: {
		char lo[32], hi[32];

		fmt_size(d->min, lo, sizeof(lo));
		fmt_size(d->max, hi, sizeof(hi));
		if (d->max == SIZE_MAX)
			snprintf(buf, size,
			    "a size of at least %s, such as "
			    "64MB",
			    lo);
		else
			snprintf(buf, size, "a size from %s to %s", lo, hi);
		break;
	}
	case C_COUNT:
	case C_UINT:
		snprintf(
		    buf, size, "a number from %llu to %llu", d->min, d->max);
		break;
	case C_MS:
	case C_US: snprintf(buf, size, "a duration such as 500ms or 2s"); break;
	case C_DUR: snprintf(buf, size, "async, journal or commit"); break;
	case C_LEVEL:
		snprintf(buf, size, "error, warning, info or debug");
		break;
	case C_ONOFF: snprintf(buf, size, "on or off"); break;
	case C_SYNC: snprintf(buf, size, "normal or full"); break;
	case C_CPU:
		snprintf(buf, size, "auto, off or a CPU number from 0 to %llu",
		    d->max);
		break;
	}
}

/* Set d in o from text; 0, or -1. */
static int
set_value(struct options *o, const struct cdef *d, const char *value)
{
	char		  *p = (char *)o + d->off, *end;
	unsigned long long v;
	unsigned long	   mode;

	switch (d->type) {
	case C_PATH:
	case C_TEXT:
		if (*value == '\0' && d->type == C_PATH)
			return -1;
		free(*(char **)(void *)p);
		*(char **)(void *)p = xstrdup(value);
		return 0;
	case C_MODE:
		errno = 0;
		mode = strtoul(value, &end, 8);
		if (*value == '\0' || errno != 0 || *end != '\0' ||
		    mode > d->max)
			return -1;
		*(mode_t *)(void *)p = (mode_t)mode;
		return 0;
	case C_SIZE:
	case C_COUNT:
	case C_UINT:
		if (parse_unit(value, size_units,
			d->type == C_SIZE ? NUNITS(size_units) : 1, &v) == -1 ||
		    v < d->min || v > d->max)
			return -1;
		if (d->type == C_UINT)
			*(unsigned *)(void *)p = (unsigned)v;
		else
			*(size_t *)(void *)p = (size_t)v;
		return 0;
	case C_MS:
	case C_US:
		if (parse_unit(value, time_units, NUNITS(time_units), &v) == -1)
			return -1;
		if (d->type == C_MS)
			v /= 1000;
		if (v < d->min || v > d->max || v > UINT_MAX)
			return -1;
		*(unsigned *)(void *)p = (unsigned)v;
		return 0;
	case C_DUR:
		if (strcmp(value, STASH_DUR_ASYNC) == 0)
			*(enum proto_durability *)(void *)p = PROTO_DUR_ASYNC;
		else if (strcmp(value, STASH_DUR_JOURNAL) == 0)
			*(enum proto_durability *)(void *)p = PROTO_DUR_JOURNAL;
		else if (strcmp(value, STASH_DUR_COMMIT) == 0)
			*(enum proto_durability *)(void *)p = PROTO_DUR_COMMIT;
		else
			return -1;
		return 0;
	case C_LEVEL:
		return log_parse_level(value, (enum log_level *)(void *)p);
	case C_ONOFF:
	case C_SYNC:
		if (strcmp(value, d->type == C_ONOFF ? "on" : "normal") == 0)
			*(int *)(void *)p = 1;
		else if (strcmp(value, d->type == C_ONOFF ? "off" : "full") ==
			 0)
			*(int *)(void *)p = 0;
		else
			return -1;
		return 0;
	case C_CPU:
		if (strcmp(value, "auto") == 0)
			*(int *)(void *)p = WRITER_CPU_AUTO;
		else if (strcmp(value, "off") == 0)
			*(int *)(void *)p = WRITER_CPU_OFF;
		else if (parse_unit(value, size_units, 1, &v) == -1 ||
			 v > d->max)
			return -1;
		else
			*(int *)(void *)p = (int)v;
		return 0;
	}
	return -1;
}

/* The row of name, with '-' or '_' between words; NULL when unknown. */
static const struct cdef *
config_find(const char *name)
{
	char   buf[64];
	size_t i;

	if (strlen(name) >= sizeof(buf))
		return NULL;
	for (i = 0; name[i] != '\0'; i++)
		buf[i] = name[i] == '_' ? '-' : name[i];
	buf[i] = '\0';
	for (i = 0; i < CONFIG_NOPTS; i++)
		if (strcmp(buf, config_table[i].name) == 0)
			return &config_table[i];
	return NULL;
}

int
options_set(
    struct options *o, const char *name, const char *value, char **cause)
{
	const struct cdef *d = config_find(name);
	char		   want[96];

	if (d == NULL) {
		xasprintf(cause, "unknown key \"%s\"", name);
		return -1;
	}
	if (set_value(o, d, value) == -1) {
		want_of(d, want, sizeof(want));
		xasprintf(cause, "%s: invalid value \"%s\": %s", d->name, value,
		    want);
		return -1;
	}
	return 0;
}

struct ini_state {
	struct options *o;
	char	       *cause;
};

static int
config_ini_handler(
    void *arg, const char *section, const char *name, const char *value)
{
	struct ini_state *st = arg;

	if (st->cause != NULL)
		return 0;
	if (*section != '\0' && strcmp(section, "stashd") != 0) {
		xasprintf(&st->cause,
		    "unknown section [%s] (keys go before "
		    "any section, or under [stashd])",
		    section);
		return 0;
	}
	return options_set(st->o, name, value, &st->cause) == 0;
}

int
options_load_file(struct options *o, const char *path, char **cause)
{
	struct ini_state st = {o, NULL};
	int		 rc;

	rc = ini_parse(path, config_ini_handler, &st);
	if (rc == 0)
		return 0;
	if (rc == -1)
		xasprintf(cause, "%s: %s", path, strerror(errno));
	else if (rc == -2)
		xasprintf(cause, "%s: out of memory", path);
	else if (st.cause != NULL)
		xasprintf(cause, "%s:%d: %s", path, rc, st.cause);
	else
		xasprintf(cause, "%s:%d: not a key = value line", path, rc);
	free(st.cause);
	return -1;
}

void
options_usage(FILE *f)
{
	char   opt[64];
	size_t i;

	fprintf(f,
	    "usage: stashd [options]\n\n"
	    "A caching and write-batching daemon for SQLite, reached over a "
	    "Unix socket.\n\n"
	    "  -c, --config PATH              configuration file [%s, if it "
	    "exists]\n"
	    "      --check-config             check the configuration and "
	    "exit\n",
	    CONFIG_FILE_DEFAULT);
	for (i = 0; i < CONFIG_NOPTS; i++) {
		const struct cdef *d = &config_table[i];

		if (d->shortopt != 0)
			snprintf(opt, sizeof(opt), "-%c, --%s %s", d->shortopt,
			    d->name, arg_of(d));
		else
			snprintf(opt, sizeof(opt), "    --%s %s", d->name,
			    arg_of(d));
		fprintf(f, "  %-30s %s [%s]\n", opt, d->help, d->dflt);
	}
	fprintf(f,
	    "      --salvage                  keep the good prefix of a "
	    "damaged journal,\n"
	    "                                 apply it, and exit\n"
	    "  -v, --verbose                  same as --log-level debug\n"
	    "  -h, --help                     show this help\n"
	    "  -V, --version                  show the version\n"
	    "\n"
	    "Every option but -c, --check-config, --salvage, -v, -h and -V is "
	    "also a\n"
	    "key of the configuration file (max_memory = 64MB); the command "
	    "line wins.\n"
	    "SIZE takes a unit: 512KB, 64MB, 1GB (powers of 1024). A duration "
	    "takes\n"
	    "one: 200us, 500ms, 30s, 5m, 1h (a bare number is seconds).\n");
}

enum {
	OPT_CHECK_CONFIG = 1000,
	OPT_SALVAGE,
	OPT_TABLE = 2000, /* + the row's index */
};

void
options_parse(struct options *o, int argc, char **argv)
{
	struct option longopts[CONFIG_NOPTS + 8];
	char	      shorts[64] = "c:vhV", *cause = NULL;
	const char   *file = NULL;
	size_t	      i, n = 0, sl = strlen(shorts);
	int	      ch, idx;

	for (i = 0; i < CONFIG_NOPTS; i++) {
		longopts[n].name = config_table[i].name;
		longopts[n].has_arg = required_argument;
		longopts[n].flag = NULL;
		longopts[n].val = OPT_TABLE + (int)i;
		n++;
		if (config_table[i].shortopt != 0 && sl + 2 < sizeof(shorts)) {
			shorts[sl++] = (char)config_table[i].shortopt;
			shorts[sl++] = ':';
			shorts[sl] = '\0';
		}
	}
	longopts[n++] = (struct option){"config", required_argument, NULL, 'c'};
	longopts[n++] = (struct option){
	    "check-config", no_argument, NULL, OPT_CHECK_CONFIG};
	longopts[n++] =
	    (struct option){"salvage", no_argument, NULL, OPT_SALVAGE};
	longopts[n++] = (struct option){"verbose", no_argument, NULL, 'v'};
	longopts[n++] = (struct option){"help", no_argument, NULL, 'h'};
	longopts[n++] = (struct option){"version", no_argument, NULL, 'V'};
	longopts[n] = (struct option){NULL, 0, NULL, 0};

	/* First pass: which file, and the options that end at once. */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, shorts, longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': file = optarg; break;
		case OPT_CHECK_CONFIG: o->check_config = 1; break;
		case 'h': options_usage(stdout); exit(0);
		case 'V':
			printf("stashd %s (protocol %d)\n", PACKAGE_VERSION,
			    STASH_PROTOCOL_VERSION);
			exit(0);
		default: break;
		}
	}
	if (file == NULL && access(CONFIG_FILE_DEFAULT, F_OK) == 0)
		file = CONFIG_FILE_DEFAULT;
	if (file != NULL) {
		if (options_load_file(o, file, &cause) == -1) {
			fprintf(stderr, "stashd: %s\n", cause);
			exit(2);
		}
		/* Kept absolute: SIGHUP reads it again. */
		if ((o->config_file = realpath(file, NULL)) == NULL)
			o->config_file = xstrdup(file);
	}

	/* Second pass: the command line wins. */
	opterr = 1;
	optind = 0;
	while ((ch = getopt_long(argc, argv, shorts, longopts, NULL)) != -1) {
		if (ch >= OPT_TABLE) {
			idx = ch - OPT_TABLE;
			if (options_set(o, config_table[idx].name, optarg,
				&cause) == -1)
				goto bad;
			continue;
		}
		switch (ch) {
		case 'c':
		case OPT_CHECK_CONFIG: break;
		case OPT_SALVAGE: o->salvage = 1; break;
		case 'v': o->log_level = LOG_LEVEL_DEBUG; break;
		default:
			for (i = 0; i < CONFIG_NOPTS; i++)
				if (config_table[i].shortopt == ch)
					break;
			if (i < CONFIG_NOPTS) {
				if (options_set(o, config_table[i].name, optarg,
					&cause) == -1)
					goto bad;
				break;
			}
			options_usage(stderr);
			exit(2);
		}
	}
	if (optind != argc) {
		fprintf(stderr, "stashd: unexpected argument \"%s\"\n",
		    argv[optind]);
		options_usage(stderr);
		exit(2);
	}
	return;

bad:
	fprintf(stderr, "stashd: --%s\n", cause);
	exit(2);
}

size_t
options_count(void)
{
	return CONFIG_NOPTS;
}

const char *
options_name(size_t i)
{
	return config_table[i].name;
}

int
options_reloadable(size_t i)
{
	return config_table[i].reload;
}

/* The bytes of option i in o, for comparing and copying. */
static size_t
options_width(const struct cdef *d)
{
	switch (d->type) {
	case C_PATH:
	case C_TEXT: return sizeof(char *);
	case C_MODE: return sizeof(mode_t);
	case C_SIZE:
	case C_COUNT: return sizeof(size_t);
	case C_UINT:
	case C_MS:
	case C_US: return sizeof(unsigned);
	case C_DUR: return sizeof(enum proto_durability);
	case C_LEVEL: return sizeof(enum log_level);
	default: return sizeof(int);
	}
}

int
options_differ(const struct options *a, const struct options *b, size_t i)
{
	const struct cdef *d = &config_table[i];
	const char	  *pa = (const char *)a + d->off;
	const char	  *pb = (const char *)b + d->off;

	if (d->type == C_PATH || d->type == C_TEXT) {
		const char *sa = *(char *const *)(const void *)pa;
		const char *sb = *(char *const *)(const void *)pb;

		if (sa == NULL || sb == NULL)
			return sa != sb;
		return strcmp(sa, sb) != 0;
	}
	return memcmp(pa, pb, options_width(d)) != 0;
}

void
options_copy(struct options *dst, const struct options *src, size_t i)
{
	const struct cdef *d = &config_table[i];
	char		  *pd = (char *)dst + d->off;
	const char	  *ps = (const char *)src + d->off;

	if (d->type == C_PATH || d->type == C_TEXT) {
		const char *sv = *(char *const *)(const void *)ps;

		free(*(char **)(void *)pd);
		*(char **)(void *)pd = sv != NULL ? xstrdup(sv) : NULL;
		return;
	}
	memcpy(pd, ps, options_width(d));
}

void
options_format(const struct options *o, size_t i, char *buf, size_t size)
{
	const struct cdef	*d = &config_table[i];
	const char		*p = (const char *)o + d->off;
	static const char *const durs[] = {
	    "default", "async", "journal", "commit"};

	switch (d->type) {
	case C_PATH:
	case C_TEXT:
		snprintf(buf, size, "%s",
		    *(char *const *)(const void *)p
			? *(char *const *)(const void *)p
			: "(none)");
		break;
	case C_MODE:
		snprintf(buf, size, "%04o",
		    (unsigned)*(const mode_t *)(const void *)p);
		break;
	case C_SIZE:
		/* 0 where no one may set 0: the default, worked out later. */
		if (*(const size_t *)(const void *)p == 0 && d->min > 0)
			snprintf(buf, size, "(default)");
		else
			fmt_size(*(const size_t *)(const void *)p, buf, size);
		break;
	case C_COUNT:
		snprintf(buf, size, "%zu", *(const size_t *)(const void *)p);
		break;
	case C_UINT:
		snprintf(buf, size, "%u", *(const unsigned *)(const void *)p);
		break;
	case C_MS:
		snprintf(buf, size, "%ums", *(const unsigned *)(const void *)p);
		break;
	case C_US:
		snprintf(buf, size, "%uus", *(const unsigned *)(const void *)p);
		break;
	case C_DUR:
		snprintf(buf, size, "%s",
		    durs[*(const enum proto_durability *)(const void *)p]);
		break;
	case C_LEVEL:
		snprintf(buf, size, "%s",
		    log_level_name(*(const enum log_level *)(const void *)p));
		break;
	case C_ONOFF:
		snprintf(buf, size, "%s",
		    *(const int *)(const void *)p ? "on" : "off");
		break;
	case C_SYNC:
		snprintf(buf, size, "%s",
		    *(const int *)(const void *)p ? "normal" : "full");
		break;
	case C_CPU:
		if (*(const int *)(const void *)p == WRITER_CPU_AUTO)
			snprintf(buf, size, "auto");
		else if (*(const int *)(const void *)p == WRITER_CPU_OFF)
			snprintf(buf, size, "off");
		else
			snprintf(
			    buf, size, "%d", *(const int *)(const void *)p);
		break;
	}
}

int
options_reread(
    struct options *o, const char *file, int argc, char **argv, char **cause)
{
	struct option longopts[CONFIG_NOPTS + 1];
	size_t	      i;
	int	      ch;

	options_defaults(o);
	if (file != NULL && options_load_file(o, file, cause) == -1)
		return -1;
	/* The command line still wins; its values were checked at start. */
	for (i = 0; i < CONFIG_NOPTS; i++)
		longopts[i] = (struct option){config_table[i].name,
		    required_argument, NULL, OPT_TABLE + (int)i};
	longopts[CONFIG_NOPTS] = (struct option){NULL, 0, NULL, 0};
	opterr = 0;
	optind = 0;
	while ((ch = getopt_long(
		    argc, argv, "c:s:d:m:l:vhV", longopts, NULL)) != -1) {
		const char *name = NULL;

		if (ch >= OPT_TABLE)
			name = config_table[ch - OPT_TABLE].name;
		else if (ch == 'v')
			o->log_level = LOG_LEVEL_DEBUG;
		else
			for (i = 0; i < CONFIG_NOPTS; i++)
				if (config_table[i].shortopt == ch)
					name = config_table[i].name;
		if (name != NULL && options_set(o, name, optarg, cause) == -1)
			return -1;
	}
	return 0;
}

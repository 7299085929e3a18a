/*
 * stash-bench.c -- load generator for stashd, in the manner of
 * redis-benchmark and memtier_benchmark.
 *
 * The run opens CONNS connections to the daemon's Unix socket once, then
 * runs its phases one after the other on them: an optional fill (a set of
 * every key of the key space, so that gets hit), then each test named by -t
 * (get, set, mixed, exec). A phase ends after -n requests in all or after
 * --duration seconds; each phase prints one result line.
 *
 * The exec test measures the SQL write path: each request inserts one row
 * of a -d byte payload (a JSON string, so SQLite stores it as TEXT) with
 * exec into a table bench, which a single CREATE TABLE IF NOT EXISTS sent
 * on the first connection makes sure exists before the first exec test.
 * It is what many application processes writing one SQLite file would do.
 * Because stashd serves every connection from one queue, its fairness
 * matters as much as its total: every test also measures each
 * connection's own rate (its answers over the time from the start of the
 * phase to its last answer), and the exec test prints the slowest and
 * fastest of them beside the mean.
 *
 * With --sync, each phase is followed by a sync request on the first
 * connection, which the daemon answers once every write it acknowledged is
 * applied to SQLite: an async or journal test leaves a backlog that would
 * otherwise compete for the disk with whatever runs next. Its time is
 * shown apart, not counted in the phase.
 *
 * Threads. The connections are split between --threads workers (one by
 * default, which is how redis-benchmark works). A worker owns its
 * connections, its epoll descriptor, its random generator and its counters
 * and histogram: during a phase no worker touches another's memory. The
 * main thread starts one pthread per worker for each phase, waits for all
 * of them (printing progress once a second on a terminal), then merges
 * their counts and histograms. The only shared state is the phase's stop
 * flag (set by a worker that fails, so the others give up at once) and the
 * per-worker progress counters that the main thread reads.
 *
 * A connection is a small state machine, driven by conn_dispatch():
 *
 *   IDLE     nothing outstanding and no more work for it in this phase.
 *   WRITING  a batch is built and partly written; EPOLLOUT is armed until
 *            the rest goes out. Answers may already come back meanwhile.
 *   WAITING  the whole batch is written; its answers are awaited.
 *
 * A batch is DEPTH requests (fewer for the last one when -n does not
 * divide evenly). Its lines are built from prebuilt templates: a get line
 * and a set line whose key digits are patched in place. For get and set
 * tests, and the fill, every line of a batch has the same length, so the
 * buffer is built once per phase and only the 12 key digits of each line
 * are rewritten; a mixed batch is assembled by copying templates. The batch
 * goes out with one write(). Answers are read with large reads into a
 * per-connection buffer and split on '\n' with memchr. The next batch is
 * sent only when every answer of this one has arrived, so at most DEPTH
 * requests are in flight on a connection, and an answer line arriving when
 * none is outstanding is a protocol error.
 *
 * Latency of a request is the time from just before the first write() of
 * its batch to the end of the read() that brought its answer line. It is
 * recorded in nanoseconds in a log-linear histogram (HDR style): exact
 * below 128 ns, then 128 sub-buckets per power of two, so any percentile is
 * within 0.8% of the true value, in a fixed 35 KiB per worker however long
 * the run.
 *
 * Every answer line is checked: it must begin with {"ok":true or
 * {"ok":false followed by ',' or '}', and end with '}'. An ok:false answer
 * whose error code is not_found (a get miss) is counted apart from the
 * other errors. A malformed answer, a connection closed by the server or a
 * failing system call ends the run with a message and exit status 2; error
 * answers do not, they are counted and the first one is shown.
 */
#include "config.h"

#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "stash-protocol.h"

#define BENCH_EXIT_OK	  0
#define BENCH_EXIT_USAGE  1
#define BENCH_EXIT_FAILED 2

#define BENCH_TESTS_MAX	       32
#define BENCH_KEY_PREFIX       "key:"
#define BENCH_KEY_DIGITS       12
#define BENCH_KEYS_MAX	       1000000000000ULL /* 10^12: 12 digits */
#define BENCH_CONNS_MAX	       100000
#define BENCH_DEPTH_MAX	       100000
#define BENCH_THREADS_MAX      1024
#define BENCH_VALUE_MAX	       (512UL * 1024 * 1024)
#define BENCH_FILL_DEPTH       64	     /* at least, for the fill */
#define BENCH_FILL_BATCH_BYTES (1024 * 1024) /* at most, unless -P says */
#define BENCH_RBUF_MIN	       (64 * 1024)   /* read size */
#define BENCH_RBUF_SLACK       4096	     /* answer bytes besides value */
#define BENCH_POLL_MS	       100
#define BENCH_SAMPLE_MAX       200 /* bytes of an answer shown */

/* Sent once before the first exec test, on a connection of its own. */
#define BENCH_EXEC_CREATE                                                      \
	"{\"op\":\"exec\",\"sql\":\"CREATE TABLE IF NOT "                      \
	"EXISTS bench(id INTEGER PRIMARY KEY, "                                \
	"data BLOB)\"}\n"
/* Sent after each test with --sync; it may wait for a long backlog. */
#define BENCH_SYNC	    "{\"op\":\"sync\"}\n"
#define BENCH_SYNC_TIMEOUTS 10 /* times --timeout */

/* Latency histogram: see the top of the file. Values are nanoseconds. */
#define HIST_SUB_BITS 7
#define HIST_SUB      (1U << HIST_SUB_BITS)
#define HIST_MAX_EXP  40 /* 2^41 ns, about 36 minutes */
#define HIST_BUCKETS  ((HIST_MAX_EXP - HIST_SUB_BITS + 2) * HIST_SUB)

enum bench_test { TEST_FILL, TEST_GET, TEST_SET, TEST_MIXED, TEST_EXEC };

struct bench_config {
	const char     *socket_path;
	unsigned	conns;
	unsigned	depth;
	unsigned	threads;
	uint64_t	keys;
	size_t		value_size;
	uint64_t	requests;   /* per test; 0: --duration */
	double		duration;   /* seconds per test */
	double		timeout;    /* seconds without any answer */
	const char     *durability; /* NULL: the daemon's default */
	unsigned	ratio_get;
	unsigned	ratio_set;
	int		fill;
	int		sync; /* sync after each test */
	int		csv;
	int		quiet;
	enum bench_test tests[BENCH_TESTS_MAX];
	size_t		ntests;
};

/* One request line; the key digits sit at key_off (none in an exec). */
struct bench_tmpl {
	char  *line;
	size_t len;
	size_t key_off;
};

struct hist {
	uint64_t count[HIST_BUCKETS];
	uint64_t total;
	uint64_t max;
};

enum conn_state {
	CONN_IDLE,    /* nothing outstanding, no more work this phase */
	CONN_WRITING, /* batch partly written, EPOLLOUT armed */
	CONN_WAITING  /* batch written, answers awaited */
};

struct conn {
	int		fd;
	unsigned	id;
	enum conn_state state;
	int		out_armed; /* EPOLLOUT in the epoll set */
	int		built;	   /* wbuf laid out for the phase */

	char	*wbuf;
	size_t	 wcap;
	size_t	 wlen;
	size_t	 woff;
	unsigned sent;	  /* requests in the current batch */
	unsigned got;	  /* answers to it received */
	uint64_t t_batch; /* ns, just before the batch's write */
	uint64_t done;	  /* answers received in the phase */
	uint64_t t_end;	  /* ns, when it went IDLE; 0: not yet */

	char  *rbuf;
	size_t rcap;
	size_t rlen;
	size_t rscan; /* rbuf[0, rscan) holds no '\n' */
};

struct bench_phase {
	enum bench_test		 test;
	const char		*name;
	unsigned		 depth;
	const struct bench_tmpl *get;
	const struct bench_tmpl *set;
	const struct bench_tmpl *exec;
	unsigned		 ratio_get;
	unsigned		 ratio_sum;
	uint64_t		 keys;	      /* key space */
	uint64_t		 duration_ns; /* 0: stop on the budget */
	uint64_t		 timeout_ns;
	atomic_int		 stop;

	pthread_mutex_t lock;
	pthread_cond_t	cond;
	unsigned	running; /* workers not finished */
};

struct worker {
	unsigned	    id;
	pthread_t	    thread;
	struct bench_phase *phase;
	struct conn	   *conns;
	unsigned	    nconns;
	int		    epfd;
	struct epoll_event *events;
	uint64_t	    rng;

	/* Work of the phase. */
	uint64_t budget;   /* left; UINT64_MAX: no limit */
	uint64_t next_key; /* the fill's next key */
	uint64_t deadline; /* ns; 0: none */
	unsigned active;   /* connections not IDLE */

	/* Results of the phase. */
	uint64_t	     t_start;
	uint64_t	     t_end;
	uint64_t	     done;
	uint64_t	     errors;
	uint64_t	     not_found;
	uint64_t	     last_answer; /* ns */
	atomic_uint_fast64_t progress;
	struct hist	     hist;
	int		     failed;
	char		     cause[512];
	char		     first_error[BENCH_SAMPLE_MAX + 8];
};

struct bench_result {
	uint64_t    requests;
	double	    seconds;
	uint64_t    errors;
	uint64_t    not_found;
	double	    p50;
	double	    p99;
	double	    p999;
	double	    max;
	const char *first_error;

	/* Each connection's ops/s over the phase: see the top of the file. */
	double	 conn_min;
	double	 conn_max;
	double	 conn_mean;
	unsigned conn_min_id;
	unsigned conn_max_id;

	int    synced; /* --sync ran after the phase */
	double sync_seconds;
};

static void usage(FILE *, int) __attribute__((noreturn));
static void die(const char *, ...)
    __attribute__((format(printf, 1, 2), noreturn));
static void worker_fail(struct worker *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static const char *bench_progname = "stash-bench";

/* Print a message about a failed run and exit with status 2. */
static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "%s: ", bench_progname);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(BENCH_EXIT_FAILED);
}

/* Print a usage error and exit with status 1. */
static void
usage_error(const char *msg, const char *arg)
{
	if (arg != NULL)
		fprintf(stderr, "%s: %s: %s\n", bench_progname, msg, arg);
	else
		fprintf(stderr, "%s: %s\n", bench_progname, msg);
	fprintf(stderr, "Try '%s --help'.\n", bench_progname);
	exit(BENCH_EXIT_USAGE);
}

static void
usage(FILE *f, int status)
{
	fprintf(f,
	    "Usage: %s [options]\n"
	    "Load generator for stashd: drives get/set/exec traffic over many\n"
	    "connections and reports throughput and latency percentiles for "
	    "each test.\n"
	    "\n"
	    "  -s, --socket PATH      daemon socket (default $" STASH_SOCKET_ENV
	    ", else\n"
	    "                         " STASH_SOCKET_DEFAULT ")\n"
	    "  -c, --conns N          connections (default 50)\n"
	    "  -P, --pipeline N       requests per batch on a connection, "
	    "written with\n"
	    "                         one write(); the next batch goes when "
	    "all N\n"
	    "                         answers are in (default 1: no "
	    "pipelining)\n"
	    "  -t, --tests LIST       comma-separated tests to run in order, "
	    "among get,\n"
	    "                         set, mixed and exec (default "
	    "set,get,mixed)\n"
	    "                         exec: each request inserts one row of a "
	    "-d byte\n"
	    "                         payload, INSERT INTO bench(data) VALUES "
	    "(?), into\n"
	    "                         a table created first if it does not "
	    "exist\n"
	    "      --ratio G:S        get:set proportion of the mixed test "
	    "(default 9:1)\n"
	    "  -r, --keys N           key space: keys key:000000000000 .. N-1, "
	    "chosen\n"
	    "                         uniformly at random (default 100000)\n"
	    "  -d, --size BYTES       value size: sets store a JSON string of "
	    "BYTES\n"
	    "                         characters, \"xxx...\", and exec binds "
	    "one as its\n"
	    "                         parameter (default 100)\n"
	    "  -n, --requests N       requests per test\n"
	    "      --duration SECS    seconds per test (default 10 when -n is "
	    "not given;\n"
	    "                         decimals allowed). Batches in flight at "
	    "the end\n"
	    "                         are awaited and counted.\n"
	    "      --durability D     add \"durability\":D to every set and "
	    "exec: async,\n"
	    "                         journal or commit (default: none, the "
	    "daemon's\n"
	    "                         default)\n"
	    "      --fill             first set every key of the key space "
	    "once,\n"
	    "                         pipelined, so that gets hit; shown as "
	    "test fill\n"
	    "      --threads T        worker threads, each driving its share "
	    "of the\n"
	    "                         connections with one epoll loop (default "
	    "1)\n"
	    "      --sync             after each test, send {\"op\":\"sync\"} "
	    "and wait\n"
	    "                         until the daemon has applied every write "
	    "it\n"
	    "                         acknowledged, so that the next test or "
	    "program\n"
	    "                         does not share the disk with this one's "
	    "backlog;\n"
	    "                         not counted in the test's time, shown "
	    "apart\n"
	    "      --timeout SECS     give up when a worker gets no answer for "
	    "SECS\n"
	    "                         (default 30; the sync of --sync, 10 "
	    "times that)\n"
	    "      --csv              print results as CSV: a header line, "
	    "then one\n"
	    "                         line per test\n"
	    "  -q, --quiet            print one short line per test: no "
	    "banner, no\n"
	    "                         progress, no fill line, no error sample\n"
	    "  -h, --help             show this help and exit\n"
	    "\n"
	    "For each test: requests completed, elapsed seconds, ops/s, "
	    "latency p50,\n"
	    "p99, p99.9 and max in microseconds (from the write of a request's "
	    "batch\n"
	    "to the read of its answer), error answers (\"ok\":false) and "
	    "not-found\n"
	    "answers (a get miss, not counted as an error). For exec, also "
	    "each\n"
	    "connection's own rate (its answers over the time from the start "
	    "of the\n"
	    "test to its last answer): the slowest, the mean and the fastest, "
	    "and\n"
	    "how far the two ends are from the mean; --csv gives these for "
	    "every test.\n"
	    "\n"
	    "Exit status: 0 when the run completed (error answers included), 1 "
	    "on a\n"
	    "usage error, 2 when the run was aborted: cannot connect, "
	    "connection\n"
	    "closed by the server, malformed answer, no answer within "
	    "--timeout.\n",
	    bench_progname);
	exit(status);
}

/* Nanoseconds of the monotonic clock. */
static uint64_t
now_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		die("clock_gettime: %s", strerror(errno));
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Parse an unsigned decimal in [min, max] or exit with a usage error. */
static uint64_t
parse_u64(const char *s, uint64_t min, uint64_t max, const char *what)
{
	unsigned long long v;
	char		  *end;

	if (*s == '\0' || !isdigit((unsigned char)*s))
		usage_error(what, s);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		usage_error(what, s);
	return v;
}

/* Parse a positive number of seconds or exit with a usage error. */
static double
parse_seconds(const char *s, const char *what)
{
	double v;
	char  *end;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v <= 0 ||
	    v > 1e6)
		usage_error(what, s);
	return v;
}

static const char *
test_name(enum bench_test t)
{
	switch (t) {
	case TEST_FILL: return "fill";
	case TEST_GET: return "get";
	case TEST_SET: return "set";
	case TEST_MIXED: return "mixed";
	case TEST_EXEC: return "exec";
	}
	return "?";
}

/* Parse the comma-separated -t list into cfg->tests. */
static void
parse_tests(struct bench_config *cfg, const char *arg)
{
	const char *p, *comma;
	size_t	    len;

	cfg->ntests = 0;
	for (p = arg;; p = comma + 1) {
		comma = strchr(p, ',');
		len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		if (cfg->ntests == BENCH_TESTS_MAX)
			usage_error("too many tests", arg);
		if (len == 3 && strncmp(p, "get", 3) == 0)
			cfg->tests[cfg->ntests++] = TEST_GET;
		else if (len == 3 && strncmp(p, "set", 3) == 0)
			cfg->tests[cfg->ntests++] = TEST_SET;
		else if (len == 5 && strncmp(p, "mixed", 5) == 0)
			cfg->tests[cfg->ntests++] = TEST_MIXED;
		else if (len == 4 && strncmp(p, "exec", 4) == 0)
			cfg->tests[cfg->ntests++] = TEST_EXEC;
		else
			usage_error("unknown test in list (get, set, mixed, "
				    "exec)",
			    arg);
		if (comma == NULL)
			break;
	}
}

/* Parse --ratio G:S. */
static void
parse_ratio(struct bench_config *cfg, const char *arg)
{
	unsigned long long g, s;
	char		  *end;

	if (!isdigit((unsigned char)arg[0]))
		usage_error("bad --ratio, want GET:SET", arg);
	errno = 0;
	g = strtoull(arg, &end, 10);
	if (errno != 0 || *end != ':' || !isdigit((unsigned char)end[1]))
		usage_error("bad --ratio, want GET:SET", arg);
	s = strtoull(end + 1, &end, 10);
	if (errno != 0 || *end != '\0' || g > 1000000 || s > 1000000 ||
	    g + s == 0)
		usage_error("bad --ratio, want GET:SET", arg);
	cfg->ratio_get = (unsigned)g;
	cfg->ratio_set = (unsigned)s;
}

static void
parse_args(struct bench_config *cfg, int argc, char **argv)
{
	enum {
		OPT_RATIO = 256,
		OPT_DURATION,
		OPT_DURABILITY,
		OPT_FILL,
		OPT_THREADS,
		OPT_TIMEOUT,
		OPT_CSV,
		OPT_SYNC
	};
	static const struct option longopts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"conns", required_argument, NULL, 'c'},
	    {"pipeline", required_argument, NULL, 'P'},
	    {"tests", required_argument, NULL, 't'},
	    {"ratio", required_argument, NULL, OPT_RATIO},
	    {"keys", required_argument, NULL, 'r'},
	    {"size", required_argument, NULL, 'd'},
	    {"requests", required_argument, NULL, 'n'},
	    {"duration", required_argument, NULL, OPT_DURATION},
	    {"durability", required_argument, NULL, OPT_DURABILITY},
	    {"fill", no_argument, NULL, OPT_FILL},
	    {"threads", required_argument, NULL, OPT_THREADS},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"csv", no_argument, NULL, OPT_CSV},
	    {"sync", no_argument, NULL, OPT_SYNC},
	    {"quiet", no_argument, NULL, 'q'}, {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	const char *env;
	int	    ch, have_tests = 0;

	memset(cfg, 0, sizeof(*cfg));
	env = getenv(STASH_SOCKET_ENV);
	cfg->socket_path =
	    env != NULL && *env != '\0' ? env : STASH_SOCKET_DEFAULT;
	cfg->conns = 50;
	cfg->depth = 1;
	cfg->threads = 1;
	cfg->keys = 100000;
	cfg->value_size = 100;
	cfg->timeout = 30;
	cfg->ratio_get = 9;
	cfg->ratio_set = 1;

	while ((ch = getopt_long(
		    argc, argv, "s:c:P:t:r:d:n:qh", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			if (*optarg == '\0')
				usage_error("empty socket path", NULL);
			cfg->socket_path = optarg;
			break;
		case 'c':
			cfg->conns = (unsigned)parse_u64(
			    optarg, 1, BENCH_CONNS_MAX, "bad connection count");
			break;
		case 'P':
			cfg->depth = (unsigned)parse_u64(
			    optarg, 1, BENCH_DEPTH_MAX, "bad pipeline depth");
			break;
		case 't':
			parse_tests(cfg, optarg);
			have_tests = 1;
			break;
		case OPT_RATIO: parse_ratio(cfg, optarg); break;
		case 'r':
			cfg->keys = parse_u64(optarg, 1, BENCH_KEYS_MAX,
			    "bad key space (1 to 10^12)");
			break;
		case 'd':
			cfg->value_size = (size_t)parse_u64(
			    optarg, 0, BENCH_VALUE_MAX, "bad value size");
			break;
		case 'n':
			cfg->requests = parse_u64(
			    optarg, 1, UINT64_MAX / 2, "bad request count");
			break;
		case OPT_DURATION:
			cfg->duration = parse_seconds(optarg, "bad duration");
			break;
		case OPT_DURABILITY:
			if (strcmp(optarg, STASH_DUR_ASYNC) != 0 &&
			    strcmp(optarg, STASH_DUR_JOURNAL) != 0 &&
			    strcmp(optarg, STASH_DUR_COMMIT) != 0)
				usage_error("bad durability (async, journal, "
					    "commit)",
				    optarg);
			cfg->durability = optarg;
			break;
		case OPT_FILL: cfg->fill = 1; break;
		case OPT_THREADS:
			cfg->threads = (unsigned)parse_u64(
			    optarg, 1, BENCH_THREADS_MAX, "bad thread count");
			break;
		case OPT_TIMEOUT:
			cfg->timeout = parse_seconds(optarg, "bad timeout");
			break;
		case OPT_CSV: cfg->csv = 1; break;
		case OPT_SYNC: cfg->sync = 1; break;
		case 'q': cfg->quiet = 1; break;
		case 'h': usage(stdout, BENCH_EXIT_OK);
		default: usage(stderr, BENCH_EXIT_USAGE);
		}
	}
	if (optind != argc)
		usage_error("unexpected argument", argv[optind]);
	if (cfg->requests != 0 && cfg->duration != 0)
		usage_error("give -n or --duration, not both", NULL);
	if (cfg->requests == 0 && cfg->duration == 0)
		cfg->duration = 10;
	if (!have_tests) {
		cfg->tests[0] = TEST_SET;
		cfg->tests[1] = TEST_GET;
		cfg->tests[2] = TEST_MIXED;
		cfg->ntests = 3;
	}
	if (cfg->threads > cfg->conns)
		cfg->threads = cfg->conns;
}

/* Build the request line of op with a placeholder key. */
static void
tmpl_build(struct bench_tmpl *t, const struct bench_config *cfg, int is_set)
{
	static const char head_get[] = "{\"op\":\"get\",\"key\":\"";
	static const char head_set[] = "{\"op\":\"set\",\"key\":\"";
	const char	 *head = is_set ? head_set : head_get;
	size_t		  n, cap;
	char		 *p;

	cap = 64 + cfg->value_size +
	      (cfg->durability != NULL ? strlen(cfg->durability) + 32 : 0);
	if ((t->line = malloc(cap)) == NULL)
		die("out of memory");
	p = t->line;
	n = strlen(head);
	memcpy(p, head, n);
	p += n;
	memcpy(p, BENCH_KEY_PREFIX, strlen(BENCH_KEY_PREFIX));
	p += strlen(BENCH_KEY_PREFIX);
	t->key_off = (size_t)(p - t->line);
	memset(p, '0', BENCH_KEY_DIGITS);
	p += BENCH_KEY_DIGITS;
	*p++ = '"';
	if (is_set) {
		memcpy(p, ",\"value\":\"", 10);
		p += 10;
		memset(p, 'x', cfg->value_size);
		p += cfg->value_size;
		*p++ = '"';
		if (cfg->durability != NULL) {
			memcpy(p, ",\"durability\":\"", 15);
			p += 15;
			n = strlen(cfg->durability);
			memcpy(p, cfg->durability, n);
			p += n;
			*p++ = '"';
		}
	}
	*p++ = '}';
	*p++ = '\n';
	t->len = (size_t)(p - t->line);
	assert(t->len <= cap);
}

/*
 * Build the exec test's request line: one INSERT of a value_size byte
 * string. Every line is the same, so there are no key digits to patch.
 */
static void
tmpl_build_exec(struct bench_tmpl *t, const struct bench_config *cfg)
{
	static const char head[] =
	    "{\"op\":\"exec\",\"sql\":"
	    "\"INSERT INTO bench(data) VALUES (?)\",\"params\":[\"";
	size_t n, cap;
	char  *p;

	cap = sizeof(head) + 64 + cfg->value_size +
	      (cfg->durability != NULL ? strlen(cfg->durability) : 0);
	if ((t->line = malloc(cap)) == NULL)
		die("out of memory");
	p = t->line;
	memcpy(p, head, sizeof(head) - 1);
	p += sizeof(head) - 1;
	memset(p, 'x', cfg->value_size);
	p += cfg->value_size;
	memcpy(p, "\"]", 2);
	p += 2;
	if (cfg->durability != NULL) {
		memcpy(p, ",\"durability\":\"", 15);
		p += 15;
		n = strlen(cfg->durability);
		memcpy(p, cfg->durability, n);
		p += n;
		*p++ = '"';
	}
	*p++ = '}';
	*p++ = '\n';
	t->len = (size_t)(p - t->line);
	t->key_off = 0;
	assert(t->len <= cap);
}

/* Write key as the 12 zero-padded digits at p. */
static inline void
key_put(char *p, uint64_t key)
{
	int i;

	for (i = BENCH_KEY_DIGITS - 1; i >= 0; i--) {
		p[i] = (char)('0' + key % 10);
		key /= 10;
	}
}

/* xorshift64*: fast, and plenty for picking keys. */
static inline uint64_t
rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static size_t
hist_index(uint64_t v)
{
	unsigned e;

	if (v < HIST_SUB)
		return (size_t)v;
	e = 63 - (unsigned)__builtin_clzll(v);
	if (e > HIST_MAX_EXP)
		return HIST_BUCKETS - 1;
	return (size_t)(e - HIST_SUB_BITS + 1) * HIST_SUB +
	       (size_t)((v >> (e - HIST_SUB_BITS)) - HIST_SUB);
}

/* The highest value that falls into bucket i. */
static uint64_t
hist_upper(size_t i)
{
	unsigned e;
	uint64_t m;

	if (i < HIST_SUB)
		return i;
	e = (unsigned)(i / HIST_SUB) + HIST_SUB_BITS - 1;
	m = i % HIST_SUB;
	return ((HIST_SUB + m) << (e - HIST_SUB_BITS)) +
	       (1ULL << (e - HIST_SUB_BITS)) - 1;
}

static inline void
hist_record(struct hist *h, uint64_t v)
{
	h->count[hist_index(v)]++;
	h->total++;
	if (v > h->max)
		h->max = v;
}

static void
hist_merge(struct hist *to, const struct hist *from)
{
	size_t i;

	for (i = 0; i < HIST_BUCKETS; i++)
		to->count[i] += from->count[i];
	to->total += from->total;
	if (from->max > to->max)
		to->max = from->max;
}

/* The q-quantile (0 < q <= 1) in nanoseconds, never above the maximum. */
static uint64_t
hist_quantile(const struct hist *h, double q)
{
	uint64_t want, seen = 0, v;
	size_t	 i;

	if (h->total == 0)
		return 0;
	want = (uint64_t)ceil(q * (double)h->total);
	if (want == 0)
		want = 1;
	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += h->count[i];
		if (seen >= want) {
			v = hist_upper(i);
			return v < h->max ? v : h->max;
		}
	}
	return h->max;
}

/* Record why the worker failed, once, and stop every worker. */
static void
worker_fail(struct worker *w, const char *fmt, ...)
{
	va_list ap;

	if (!w->failed) {
		va_start(ap, fmt);
		vsnprintf(w->cause, sizeof(w->cause), fmt, ap);
		va_end(ap);
		w->failed = 1;
	}
	atomic_store(&w->phase->stop, 1);
}

/* Copy the start of an answer into dst, printable, for a message. */
static void
sample(char *dst, size_t dstsize, const char *p, size_t len)
{
	size_t i, o = 0;

	for (i = 0; i < len && o + 5 < dstsize; i++)
		dst[o++] = isprint((unsigned char)p[i]) ? p[i] : '?';
	if (i < len && o + 4 < dstsize) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
}

/* Does the ok:false answer p carry the error code not_found? */
static int
answer_is_not_found(const char *p, size_t len)
{
	static const char code[] = "\"code\"";
	const char	 *q, *end = p + len;

	q = memmem(p, len, code, sizeof(code) - 1);
	if (q == NULL)
		return 0;
	q += sizeof(code) - 1;
	while (q < end && (*q == ' ' || *q == '\t'))
		q++;
	if (q == end || *q++ != ':')
		return 0;
	while (q < end && (*q == ' ' || *q == '\t'))
		q++;
	return (size_t)(end - q) >= 11 && memcmp(q, "\"not_found\"", 11) == 0;
}

/*
 * Check and count one answer line (without its '\n'). Returns -1 when it
 * is malformed, after failing the worker.
 */
static int
answer_check(struct worker *w, struct conn *c, const char *p, size_t len)
{
	char buf[BENCH_SAMPLE_MAX + 8];
	int  ok;

	if (len >= 10 && memcmp(p, "{\"ok\":true", 10) == 0 &&
	    (len == 10 || p[10] == ',' || p[10] == '}'))
		ok = 1;
	else if (len >= 11 && memcmp(p, "{\"ok\":false", 11) == 0 &&
		 (len == 11 || p[11] == ',' || p[11] == '}'))
		ok = 0;
	else
		goto bad;
	if (p[len - 1] != '}')
		goto bad;
	if (!ok) {
		if (answer_is_not_found(p, len))
			w->not_found++;
		else {
			if (w->errors++ == 0)
				sample(w->first_error, sizeof(w->first_error),
				    p, len);
		}
	}
	return 0;
bad:
	sample(buf, sizeof(buf), p, len);
	worker_fail(w, "malformed answer on connection %u: \"%s\"", c->id, buf);
	return -1;
}

static int
conn_set_events(struct worker *w, struct conn *c, int out)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | (out ? EPOLLOUT : 0);
	ev.data.ptr = c;
	if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev) == -1) {
		worker_fail(w, "epoll_ctl: %s", strerror(errno));
		return -1;
	}
	c->out_armed = out;
	return 0;
}

/*
 * The server closed the connection while we wrote (error err). It may have
 * said why first (busy when over its connection limit, too_large): read
 * what it left and show its first line.
 */
static void
conn_lost(struct worker *w, struct conn *c, int err)
{
	char	    buf[BENCH_SAMPLE_MAX + 8];
	const char *nl;
	ssize_t	    n;

	/* A failed read just leaves nothing more to show. */
	n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
	if (n > 0)
		c->rlen += (size_t)n;
	if (c->rlen == 0) {
		worker_fail(w,
		    "connection %u closed by the server "
		    "(write: %s)%s%s",
		    c->id, strerror(err),
		    w->errors > 0 ? "; first error answer: " : "",
		    w->first_error);
		return;
	}
	nl = memchr(c->rbuf, '\n', c->rlen);
	sample(buf, sizeof(buf), c->rbuf,
	    nl != NULL ? (size_t)(nl - c->rbuf) : c->rlen);
	worker_fail(w,
	    "connection %u closed by the server (write: %s) "
	    "after it sent: \"%s\"",
	    c->id, strerror(err), buf);
}

/* Write what is left of the batch. Returns -1 on failure. */
static int
conn_write(struct worker *w, struct conn *c)
{
	ssize_t n;

	assert(c->state == CONN_WRITING);
	while (c->woff < c->wlen) {
		n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (!c->out_armed)
					return conn_set_events(w, c, 1);
				return 0;
			}
			if (errno == EPIPE || errno == ECONNRESET)
				conn_lost(w, c, errno);
			else
				worker_fail(w, "write on connection %u: %s",
				    c->id, strerror(errno));
			return -1;
		}
		c->woff += (size_t)n;
	}
	if (c->out_armed && conn_set_events(w, c, 0) == -1)
		return -1;
	c->state = CONN_WAITING;
	return 0;
}

/* Lay the phase's batch of n requests out in c->wbuf. */
static void
conn_build(struct worker *w, struct conn *c, unsigned n)
{
	const struct bench_phase *ph = w->phase;
	const struct bench_tmpl	 *t;
	unsigned		  i;
	size_t			  off;
	uint64_t		  key;

	if (ph->test == TEST_MIXED) {
		off = 0;
		for (i = 0; i < n; i++) {
			t = rng_next(&w->rng) % ph->ratio_sum < ph->ratio_get
				? ph->get
				: ph->set;
			assert(off + t->len <= c->wcap);
			memcpy(c->wbuf + off, t->line, t->len);
			key_put(c->wbuf + off + t->key_off,
			    rng_next(&w->rng) % ph->keys);
			off += t->len;
		}
		c->wlen = off;
		return;
	}

	if (ph->test == TEST_GET)
		t = ph->get;
	else if (ph->test == TEST_EXEC)
		t = ph->exec;
	else
		t = ph->set;
	if (!c->built) {
		assert((size_t)ph->depth * t->len <= c->wcap);
		for (i = 0; i < ph->depth; i++)
			memcpy(c->wbuf + (size_t)i * t->len, t->line, t->len);
		c->built = 1;
	}
	for (i = 0; i < n && ph->test != TEST_EXEC; i++) {
		if (ph->test == TEST_FILL)
			key = w->next_key++;
		else
			key = rng_next(&w->rng) % ph->keys;
		key_put(c->wbuf + (size_t)i * t->len + t->key_off, key);
	}
	c->wlen = (size_t)n * t->len;
}

/*
 * Send the connection's next batch, or make it IDLE when the phase has no
 * more work for it. Returns -1 on failure.
 */
static int
conn_next(struct worker *w, struct conn *c, uint64_t now)
{
	unsigned n = w->phase->depth;

	if (atomic_load_explicit(&w->phase->stop, memory_order_relaxed) ||
	    (w->deadline != 0 && now >= w->deadline))
		n = 0;
	if (w->budget != UINT64_MAX) {
		if (w->budget < n)
			n = (unsigned)w->budget;
		w->budget -= n;
	}
	if (n == 0) {
		if (c->state != CONN_IDLE) {
			c->state = CONN_IDLE;
			c->t_end = now;
			w->active--;
		}
		return 0;
	}
	if (c->state == CONN_IDLE)
		w->active++;
	conn_build(w, c, n);
	c->sent = n;
	c->got = 0;
	c->woff = 0;
	c->state = CONN_WRITING;
	c->t_batch = now_ns();
	return conn_write(w, c);
}

/*
 * Read answers, check and count every complete line; send the next batch
 * when the current one is all answered. Returns -1 on failure.
 */
static int
conn_read(struct worker *w, struct conn *c)
{
	char	 buf[BENCH_SAMPLE_MAX + 8];
	char	*p, *end, *nl, *last = NULL;
	uint64_t now, lat;
	ssize_t	 n;
	size_t	 left;

	n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
	if (n == -1) {
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		if (errno == ECONNRESET)
			worker_fail(w,
			    "connection %u closed by the server "
			    "(read: %s)",
			    c->id, strerror(errno));
		else
			worker_fail(w, "read on connection %u: %s", c->id,
			    strerror(errno));
		return -1;
	}
	if (n == 0) {
		if (c->state == CONN_IDLE)
			worker_fail(
			    w, "connection %u closed by the server", c->id);
		else
			worker_fail(w,
			    "connection %u closed by the server "
			    "with %u answers outstanding",
			    c->id, c->sent - c->got);
		return -1;
	}
	now = now_ns();
	c->rlen += (size_t)n;
	p = c->rbuf;
	end = c->rbuf + c->rlen;
	nl = memchr(p + c->rscan, '\n', (size_t)(end - p) - c->rscan);
	while (nl != NULL) {
		if (c->state == CONN_IDLE || c->got == c->sent) {
			sample(buf, sizeof(buf), p, (size_t)(nl - p));
			worker_fail(w,
			    "answer on connection %u with no "
			    "request outstanding: \"%s\"",
			    c->id, buf);
			return -1;
		}
		if (answer_check(w, c, p, (size_t)(nl - p)) == -1)
			return -1;
		lat = now - c->t_batch;
		hist_record(&w->hist, lat);
		c->got++;
		c->done++;
		w->done++;
		last = p;
		p = nl + 1;
		nl = memchr(p, '\n', (size_t)(end - p));
	}
	if (c->state == CONN_WRITING && c->got == c->sent) {
		/* The server answered before reading all: too_large. */
		assert(last != NULL);
		sample(buf, sizeof(buf), last, (size_t)(p - 1 - last));
		worker_fail(w,
		    "connection %u answered before its batch was "
		    "written: \"%s\"",
		    c->id, buf);
		return -1;
	}
	left = (size_t)(end - p);
	if (left > 0 && p != c->rbuf)
		memmove(c->rbuf, p, left);
	c->rlen = left;
	c->rscan = left;
	if (c->rlen == c->rcap) {
		worker_fail(w, "answer on connection %u longer than %zu bytes",
		    c->id, c->rcap);
		return -1;
	}
	if (p != c->rbuf) {
		w->last_answer = now;
		atomic_store_explicit(
		    &w->progress, w->done, memory_order_relaxed);
	}
	if (c->state != CONN_IDLE && c->got == c->sent) {
		assert(c->woff == c->wlen);
		c->state = CONN_WAITING;
		if (c->out_armed && conn_set_events(w, c, 0) == -1)
			return -1;
		if (conn_next(w, c, now) == -1)
			return -1;
		if (c->state == CONN_IDLE && w->active == 0)
			w->t_end = now;
	}
	return 0;
}

/* The one dispatch function of a connection: act on its epoll events. */
static int
conn_dispatch(struct worker *w, struct conn *c, uint32_t events)
{
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		if (conn_read(w, c) == -1)
			return -1;
	}
	if ((events & EPOLLOUT) && c->state == CONN_WRITING) {
		if (conn_write(w, c) == -1)
			return -1;
	}
	return 0;
}

/* Run one phase on the worker's connections: the thread's body. */
static void *
worker_run(void *arg)
{
	struct worker	   *w = arg;
	struct bench_phase *ph = w->phase;
	struct conn	   *c;
	uint64_t	    now;
	unsigned	    i;
	int		    n, k;

	w->t_start = now_ns();
	w->t_end = 0;
	w->last_answer = w->t_start;
	w->deadline = ph->duration_ns != 0 ? w->t_start + ph->duration_ns : 0;
	w->active = 0;
	for (i = 0; i < w->nconns && !w->failed; i++) {
		c = &w->conns[i];
		assert(c->state == CONN_IDLE && c->rlen == 0);
		c->built = 0;
		c->done = 0;
		c->t_end = 0;
		if (conn_next(w, c, w->t_start) == -1)
			break;
	}
	if (w->active == 0)
		w->t_end = now_ns();

	while (w->active > 0 && !w->failed &&
	       !atomic_load_explicit(&ph->stop, memory_order_relaxed)) {
		n = epoll_wait(
		    w->epfd, w->events, (int)w->nconns, BENCH_POLL_MS);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			worker_fail(w, "epoll_wait: %s", strerror(errno));
			break;
		}
		for (k = 0; k < n; k++) {
			if (conn_dispatch(w, w->events[k].data.ptr,
				w->events[k].events) == -1)
				break;
		}
		if (n == 0) {
			now = now_ns();
			if (now - w->last_answer > ph->timeout_ns)
				worker_fail(w,
				    "no answer from the server for "
				    "%.1f s",
				    (double)(now - w->last_answer) / 1e9);
		}
	}
	if (w->t_end == 0)
		w->t_end = now_ns();
	for (i = 0; i < w->nconns; i++) {
		if (w->conns[i].t_end == 0)
			w->conns[i].t_end = w->t_end;
	}
	atomic_store(&w->progress, w->done);

	if (pthread_mutex_lock(&ph->lock) != 0)
		abort();
	ph->running--;
	if (pthread_cond_signal(&ph->cond) != 0)
		abort();
	if (pthread_mutex_unlock(&ph->lock) != 0)
		abort();
	return NULL;
}

/* Connect to the daemon; the socket is non-blocking once connected. */
static int
bench_connect(const char *path)
{
	struct sockaddr_un sun;
	int		   fd, flags;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		die("socket path too long: %s", path);
	memcpy(sun.sun_path, path, strlen(path) + 1);

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		die("socket: %s", strerror(errno));
	while (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		if (errno != EINTR)
			die("cannot connect to %s: %s", path, strerror(errno));
	}
	if ((flags = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1)
		die("fcntl: %s", strerror(errno));
	return fd;
}

/* Raise the descriptor limit when the connections need more. */
static void
bench_raise_nofile(unsigned conns, unsigned threads)
{
	struct rlimit rl;
	rlim_t	      want = (rlim_t)conns + threads + 32;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		die("getrlimit: %s", strerror(errno));
	if (rl.rlim_cur >= want)
		return;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
		die("%u connections need %llu descriptors; the limit is %llu",
		    conns, (unsigned long long)want,
		    (unsigned long long)rl.rlim_max);
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		die("setrlimit: %s", strerror(errno));
}

/* Open the connections and split them between the workers. */
static struct worker *
bench_setup(const struct bench_config *cfg, size_t wcap)
{
	struct worker	  *workers, *w;
	struct epoll_event ev;
	struct conn	  *c;
	unsigned	   i, j, per, extra, id = 0;
	uint64_t	   seed;

	bench_raise_nofile(cfg->conns, cfg->threads);
	if ((workers = calloc(cfg->threads, sizeof(*workers))) == NULL)
		die("out of memory");
	seed = now_ns() ^ ((uint64_t)getpid() << 32);
	per = cfg->conns / cfg->threads;
	extra = cfg->conns % cfg->threads;
	for (i = 0; i < cfg->threads; i++) {
		w = &workers[i];
		w->id = i;
		w->nconns = per + (i < extra ? 1 : 0);
		w->rng = (seed + 0x9E3779B97F4A7C15ULL * (i + 1)) | 1;
		w->conns = calloc(w->nconns, sizeof(*w->conns));
		w->events = calloc(w->nconns, sizeof(*w->events));
		if (w->conns == NULL || w->events == NULL)
			die("out of memory");
		if ((w->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
			die("epoll_create1: %s", strerror(errno));
		for (j = 0; j < w->nconns; j++) {
			c = &w->conns[j];
			c->id = id++;
			c->fd = bench_connect(cfg->socket_path);
			c->wcap = wcap;
			c->rcap = cfg->value_size + BENCH_RBUF_SLACK;
			if (c->rcap < BENCH_RBUF_MIN)
				c->rcap = BENCH_RBUF_MIN;
			c->wbuf = malloc(c->wcap);
			c->rbuf = malloc(c->rcap);
			if (c->wbuf == NULL || c->rbuf == NULL)
				die("out of memory");
			memset(&ev, 0, sizeof(ev));
			ev.events = EPOLLIN;
			ev.data.ptr = c;
			if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &ev) == -1)
				die("epoll_ctl: %s", strerror(errno));
		}
	}
	return workers;
}

/* Wait up to timeout seconds for fd to be ready for events, or exit. */
static void
bench_wait_fd(int fd, short events, double timeout, const char *what)
{
	struct pollfd pfd;
	int	      n, ms;

	ms = timeout * 1000 < INT_MAX ? (int)(timeout * 1000) : INT_MAX;
	pfd.fd = fd;
	pfd.events = events;
	do {
		n = poll(&pfd, 1, ms);
	} while (n == -1 && errno == EINTR);
	if (n == -1)
		die("poll: %s", strerror(errno));
	if (n == 0)
		die("no answer to %s within %.1f s", what, timeout);
}

/*
 * Send one request line outside any phase, on the first connection (idle
 * then, with nothing outstanding or unread, so no connection is added to
 * what the daemon counts), and wait up to timeout seconds for its answer,
 * which must be ok:true. Exits when it is not. what names the request in
 * messages.
 */
static void
bench_request(
    struct worker *workers, const char *line, const char *what, double timeout)
{
	char	    buf[BENCH_SAMPLE_MAX + 8], ans[4096];
	size_t	    off = 0, len = 0, linelen = strlen(line);
	const char *nl = NULL;
	ssize_t	    n;
	int	    fd;

	assert(workers[0].nconns > 0);
	assert(workers[0].conns[0].state == CONN_IDLE &&
	       workers[0].conns[0].rlen == 0);
	fd = workers[0].conns[0].fd;
	while (off < linelen) {
		n = write(fd, line + off, linelen - off);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				die("%s: write: %s", what, strerror(errno));
			bench_wait_fd(fd, POLLOUT, timeout, what);
			continue;
		}
		off += (size_t)n;
	}
	while (nl == NULL) {
		if (len == sizeof(ans))
			die("%s: answer too long", what);
		n = read(fd, ans + len, sizeof(ans) - len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				die("%s: read: %s", what, strerror(errno));
			bench_wait_fd(fd, POLLIN, timeout, what);
			continue;
		}
		if (n == 0)
			die("%s: connection closed by the server before it "
			    "answered",
			    what);
		len += (size_t)n;
		nl = memchr(ans, '\n', len);
	}
	if ((size_t)(nl - ans) < 10 || memcmp(ans, "{\"ok\":true", 10) != 0) {
		sample(buf, sizeof(buf), ans, (size_t)(nl - ans));
		die("%s failed: \"%s\"", what, buf);
	}
	if (nl != ans + len - 1)
		die("%s: more than one answer", what);
}

/*
 * --sync: wait until the daemon has applied every write acknowledged so
 * far, so that the next test (or the next program) does not share the
 * disk with this one's backlog. Returns the seconds it took.
 */
static double
bench_sync(const struct bench_config *cfg, struct worker *workers)
{
	uint64_t t0 = now_ns();

	bench_request(
	    workers, BENCH_SYNC, "sync", cfg->timeout * BENCH_SYNC_TIMEOUTS);
	return (double)(now_ns() - t0) / 1e9;
}

static void
bench_teardown(struct worker *workers, unsigned nworkers)
{
	struct worker *w;
	unsigned       i, j;

	for (i = 0; i < nworkers; i++) {
		w = &workers[i];
		for (j = 0; j < w->nconns; j++) {
			if (close(w->conns[j].fd) == -1)
				die("close: %s", strerror(errno));
			free(w->conns[j].wbuf);
			free(w->conns[j].rbuf);
		}
		if (close(w->epfd) == -1)
			die("close: %s", strerror(errno));
		free(w->conns);
		free(w->events);
	}
	free(workers);
}

/* Print a progress line on stderr, a terminal. */
static void
bench_progress(const struct bench_phase *ph, struct worker *workers,
    unsigned nworkers, uint64_t t0)
{
	uint64_t done = 0;
	double	 secs;
	unsigned i;

	for (i = 0; i < nworkers; i++)
		done += atomic_load_explicit(
		    &workers[i].progress, memory_order_relaxed);
	secs = (double)(now_ns() - t0) / 1e9;
	fprintf(stderr, "\r\033[K%s: %llu requests, %.1f s, %.0f ops/s",
	    ph->name, (unsigned long long)done, secs,
	    secs > 0 ? (double)done / secs : 0.0);
}

/*
 * Each connection's rate over the phase: its answers over the time from
 * its worker's start to its last answer. A connection is never left out,
 * so one that starved shows as the slowest.
 */
static void
bench_conn_rates(
    const struct worker *workers, unsigned nworkers, struct bench_result *res)
{
	const struct worker *w;
	const struct conn   *c;
	double		     rate, sum = 0;
	unsigned	     i, j, n = 0;

	res->conn_min = HUGE_VAL;
	res->conn_max = 0;
	for (i = 0; i < nworkers; i++) {
		w = &workers[i];
		for (j = 0; j < w->nconns; j++) {
			c = &w->conns[j];
			rate = c->t_end > w->t_start
				   ? (double)c->done /
					 ((double)(c->t_end - w->t_start) / 1e9)
				   : 0;
			if (rate < res->conn_min) {
				res->conn_min = rate;
				res->conn_min_id = c->id;
			}
			if (rate >= res->conn_max) {
				res->conn_max = rate;
				res->conn_max_id = c->id;
			}
			sum += rate;
			n++;
		}
	}
	if (n == 0)
		res->conn_min = 0;
	res->conn_mean = n > 0 ? sum / n : 0;
}

/*
 * Run one phase on every worker, wait for them, and merge their results.
 * Exits with status 2 when a worker failed.
 */
static void
bench_phase_run(const struct bench_config *cfg, struct bench_phase *ph,
    struct worker *workers, uint64_t total, struct bench_result *res,
    struct hist *hist)
{
	struct worker  *w;
	struct timespec ts;
	uint64_t t0, t_start = UINT64_MAX, t_end = 0, per, extra, key = 0;
	unsigned i, started;
	int	 progress, rc;

	progress = !cfg->quiet && isatty(STDERR_FILENO);
	atomic_store(&ph->stop, 0);
	if ((rc = pthread_mutex_init(&ph->lock, NULL)) != 0 ||
	    (rc = pthread_cond_init(&ph->cond, NULL)) != 0)
		die("pthread init: %s", strerror(rc));
	ph->running = cfg->threads;

	per = total / cfg->threads;
	extra = total % cfg->threads;
	t0 = now_ns();
	for (started = 0; started < cfg->threads; started++) {
		w = &workers[started];
		w->phase = ph;
		w->budget =
		    total == 0 ? UINT64_MAX : per + (started < extra ? 1 : 0);
		w->next_key = key;
		if (total != 0)
			key += w->budget;
		w->done = w->errors = w->not_found = 0;
		w->failed = 0;
		w->cause[0] = '\0';
		w->first_error[0] = '\0';
		atomic_store(&w->progress, 0);
		memset(&w->hist, 0, sizeof(w->hist));
		if ((rc = pthread_create(&w->thread, NULL, worker_run, w)) != 0)
			die("pthread_create: %s", strerror(rc));
	}

	if ((rc = pthread_mutex_lock(&ph->lock)) != 0)
		die("pthread_mutex_lock: %s", strerror(rc));
	while (ph->running > 0) {
		if (clock_gettime(CLOCK_REALTIME, &ts) == -1)
			die("clock_gettime: %s", strerror(errno));
		ts.tv_sec += 1;
		rc = pthread_cond_timedwait(&ph->cond, &ph->lock, &ts);
		if (rc != 0 && rc != ETIMEDOUT)
			die("pthread_cond_timedwait: %s", strerror(rc));
		if (rc == ETIMEDOUT && progress)
			bench_progress(ph, workers, cfg->threads, t0);
	}
	if ((rc = pthread_mutex_unlock(&ph->lock)) != 0)
		die("pthread_mutex_unlock: %s", strerror(rc));
	if (progress)
		fprintf(stderr, "\r\033[K");

	memset(res, 0, sizeof(*res));
	memset(hist, 0, sizeof(*hist));
	for (i = 0; i < cfg->threads; i++) {
		w = &workers[i];
		if ((rc = pthread_join(w->thread, NULL)) != 0)
			die("pthread_join: %s", strerror(rc));
	}
	for (i = 0; i < cfg->threads; i++) {
		if (workers[i].failed) {
			fflush(stdout);
			die("%s: %s", ph->name, workers[i].cause);
		}
	}
	for (i = 0; i < cfg->threads; i++) {
		w = &workers[i];
		res->requests += w->done;
		res->errors += w->errors;
		res->not_found += w->not_found;
		if (res->first_error == NULL && w->first_error[0] != '\0')
			res->first_error = w->first_error;
		hist_merge(hist, &w->hist);
		if (w->t_start < t_start)
			t_start = w->t_start;
		if (w->t_end > t_end)
			t_end = w->t_end;
	}
	bench_conn_rates(workers, cfg->threads, res);
	assert(hist->total == res->requests);
	assert(total == 0 || res->requests == total);
	res->seconds = t_end > t_start ? (double)(t_end - t_start) / 1e9 : 0;
	res->p50 = (double)hist_quantile(hist, 0.50) / 1e3;
	res->p99 = (double)hist_quantile(hist, 0.99) / 1e3;
	res->p999 = (double)hist_quantile(hist, 0.999) / 1e3;
	res->max = (double)hist->max / 1e3;
	if (pthread_mutex_destroy(&ph->lock) != 0 ||
	    pthread_cond_destroy(&ph->cond) != 0)
		die("pthread destroy failed");
}

static void
bench_print_header(const struct bench_config *cfg)
{
	if (cfg->csv) {
		printf("test,conns,pipeline,threads,keys,size,requests,seconds,"
		       "ops_per_sec,p50_us,p99_us,p999_us,max_us,errors,"
		       "not_found,conn_min_ops_per_sec,conn_mean_ops_per_sec,"
		       "conn_max_ops_per_sec,sync_seconds\n");
		return;
	}
	if (cfg->quiet)
		return;
	printf("%s: %s, %u connection%s, %u thread%s, pipeline %u, "
	       "%llu keys, %zu-byte values",
	    bench_progname, cfg->socket_path, cfg->conns,
	    cfg->conns == 1 ? "" : "s", cfg->threads,
	    cfg->threads == 1 ? "" : "s", cfg->depth,
	    (unsigned long long)cfg->keys, cfg->value_size);
	if (cfg->requests != 0)
		printf(", %llu requests per test",
		    (unsigned long long)cfg->requests);
	else
		printf(", %g s per test", cfg->duration);
	if (cfg->durability != NULL)
		printf(", durability %s", cfg->durability);
	printf(", mixed %u:%u\n", cfg->ratio_get, cfg->ratio_set);
	printf("%-6s %11s %8s %11s %9s %9s %9s %9s %8s %9s\n", "test",
	    "requests", "seconds", "ops/s", "p50 us", "p99 us", "p99.9 us",
	    "max us", "errors", "not_found");
}

/* How far v is from mean, in percent of the mean. */
static double
bench_pct(double v, double mean)
{
	return mean > 0 ? (v - mean) / mean * 100 : 0;
}

static void
bench_print_result(const struct bench_config *cfg, enum bench_test test,
    const struct bench_result *r)
{
	const char *name = test_name(test);
	double	    ops;

	ops = r->seconds > 0 ? (double)r->requests / r->seconds : 0;
	if (cfg->csv) {
		printf("%s,%u,%u,%u,%llu,%zu,%llu,%.3f,%.1f,%.1f,%.1f,%.1f,"
		       "%.1f,%llu,%llu,%.1f,%.1f,%.1f,",
		    name, cfg->conns, cfg->depth, cfg->threads,
		    (unsigned long long)cfg->keys, cfg->value_size,
		    (unsigned long long)r->requests, r->seconds, ops, r->p50,
		    r->p99, r->p999, r->max, (unsigned long long)r->errors,
		    (unsigned long long)r->not_found, r->conn_min, r->conn_mean,
		    r->conn_max);
		if (r->synced)
			printf("%.3f", r->sync_seconds);
		printf("\n");
		if (r->first_error != NULL && !cfg->quiet)
			fprintf(stderr, "%s: first error answer: %s\n", name,
			    r->first_error);
	} else if (cfg->quiet) {
		printf("%s: %.1f ops/s, p50 %.1f us, p99 %.1f us, %llu errors, "
		       "%llu not found",
		    name, ops, r->p50, r->p99, (unsigned long long)r->errors,
		    (unsigned long long)r->not_found);
		if (test == TEST_EXEC)
			printf(", per connection %.1f to %.1f ops/s",
			    r->conn_min, r->conn_max);
		if (r->synced)
			printf(", synced in %.3f s", r->sync_seconds);
		printf("\n");
	} else {
		printf("%-6s %11llu %8.2f %11.1f %9.1f %9.1f %9.1f %9.1f "
		       "%8llu %9llu\n",
		    name, (unsigned long long)r->requests, r->seconds, ops,
		    r->p50, r->p99, r->p999, r->max,
		    (unsigned long long)r->errors,
		    (unsigned long long)r->not_found);
		if (test == TEST_EXEC)
			printf(
			    "       per connection: slowest %.1f ops/s "
			    "(connection %u, %+.1f%% of the mean), mean %.1f, "
			    "fastest %.1f (connection %u, %+.1f%%)\n",
			    r->conn_min, r->conn_min_id,
			    bench_pct(r->conn_min, r->conn_mean), r->conn_mean,
			    r->conn_max, r->conn_max_id,
			    bench_pct(r->conn_max, r->conn_mean));
		if (r->synced)
			printf("       sync: every acknowledged write applied "
			       "%.3f s after the test\n",
			    r->sync_seconds);
		if (r->first_error != NULL)
			printf(
			    "       first error answer: %s\n", r->first_error);
	}
	if (fflush(stdout) == EOF)
		die("stdout: %s", strerror(errno));
}

int
main(int argc, char **argv)
{
	struct bench_config cfg;
	struct bench_tmpl   get, set, exec;
	struct bench_phase  ph;
	struct bench_result res;
	struct worker	   *workers;
	struct hist	   *hist;
	size_t		    i, maxlen, wcap;
	int		    have_exec = 0;
	unsigned	    fill_depth;
	struct sigaction    sa;

	parse_args(&cfg, argc, argv);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	if (sigemptyset(&sa.sa_mask) == -1 ||
	    sigaction(SIGPIPE, &sa, NULL) == -1)
		die("sigaction: %s", strerror(errno));

	tmpl_build(&get, &cfg, 0);
	tmpl_build(&set, &cfg, 1);
	tmpl_build_exec(&exec, &cfg);
	maxlen = set.len > get.len ? set.len : get.len;
	for (i = 0; i < cfg.ntests; i++) {
		if (cfg.tests[i] == TEST_EXEC)
			have_exec = 1;
	}
	if (have_exec && exec.len > maxlen)
		maxlen = exec.len;

	/* The fill pipelines deeply, within about a megabyte per batch. */
	fill_depth = (unsigned)(BENCH_FILL_BATCH_BYTES / set.len);
	if (fill_depth > BENCH_FILL_DEPTH)
		fill_depth = BENCH_FILL_DEPTH;
	if (fill_depth < cfg.depth)
		fill_depth = cfg.depth;
	if (fill_depth == 0)
		fill_depth = 1;
	wcap = (size_t)cfg.depth * maxlen;
	if (cfg.fill && (size_t)fill_depth * set.len > wcap)
		wcap = (size_t)fill_depth * set.len;
	if (maxlen != 0 && wcap / maxlen < cfg.depth)
		die("batch too large");

	if ((hist = malloc(sizeof(*hist))) == NULL)
		die("out of memory");
	workers = bench_setup(&cfg, wcap);
	if (have_exec)
		bench_request(workers, BENCH_EXEC_CREATE, "exec: CREATE TABLE",
		    cfg.timeout);

	memset(&ph, 0, sizeof(ph));
	ph.get = &get;
	ph.set = &set;
	ph.exec = &exec;
	ph.ratio_get = cfg.ratio_get;
	ph.ratio_sum = cfg.ratio_get + cfg.ratio_set;
	ph.keys = cfg.keys;
	ph.timeout_ns = (uint64_t)(cfg.timeout * 1e9);

	bench_print_header(&cfg);
	if (cfg.fill) {
		ph.test = TEST_FILL;
		ph.name = test_name(TEST_FILL);
		ph.depth = fill_depth;
		ph.duration_ns = 0;
		bench_phase_run(&cfg, &ph, workers, cfg.keys, &res, hist);
		if (cfg.sync) {
			res.sync_seconds = bench_sync(&cfg, workers);
			res.synced = 1;
		}
		if (!cfg.quiet || cfg.csv)
			bench_print_result(&cfg, ph.test, &res);
	}
	for (i = 0; i < cfg.ntests; i++) {
		ph.test = cfg.tests[i];
		ph.name = test_name(ph.test);
		ph.depth = cfg.depth;
		ph.duration_ns =
		    cfg.requests != 0 ? 0 : (uint64_t)(cfg.duration * 1e9);
		bench_phase_run(&cfg, &ph, workers, cfg.requests, &res, hist);
		if (cfg.sync) {
			res.sync_seconds = bench_sync(&cfg, workers);
			res.synced = 1;
		}
		bench_print_result(&cfg, ph.test, &res);
	}

	bench_teardown(workers, cfg.threads);
	free(hist);
	free(get.line);
	free(set.line);
	free(exec.line);
	return BENCH_EXIT_OK;
}

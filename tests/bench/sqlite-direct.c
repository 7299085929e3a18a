/*
 * sqlite-direct.c -- the baseline stashd is measured against: what a user
 * has today when several processes write one SQLite file themselves.
 *
 * The parent makes the database (WAL mode, a table bench(id INTEGER
 * PRIMARY KEY, data BLOB)) and closes it, then forks -p processes. Each
 * child opens its own connection (a connection never crosses a fork), sets
 * synchronous=FULL and busy_timeout=5000, and waits on a pipe until every
 * child is ready; the parent then closes the pipe and all of them start at
 * once. A child inserts rows of a -d byte blob, one autocommit INSERT (so
 * one transaction, one WAL fsync) each, until --duration seconds have gone
 * by since its start. That is the common way to write SQLite from many
 * workers: every transaction takes the single write lock, and a writer that
 * waited busy_timeout for it gets SQLITE_BUSY, "database is locked".
 *
 * Such an error is counted and the child carries on: it is a result, the
 * thing this program exists to show, not a failure. Any other error ends
 * the child with status 2 and the run fails.
 *
 * Results go back through an anonymous shared mapping, one slot per child
 * that only that child writes: its rows, its busy errors, its start and
 * end on the monotonic clock (shared by every process) and a histogram of
 * its INSERT latencies (log-linear, 16 sub-buckets per power of two, so a
 * percentile is within about 6%). The parent reads the slots after every
 * child has exited.
 *
 * Rates count only the rows each process committed within its window of
 * --duration seconds from its start. The INSERT under way at the end of
 * the window may wait up to busy_timeout for the lock and end seconds
 * later; counting it, and the time until the last process ended, would
 * make the baseline look slower than it is. Total rows/s is the rows
 * inside the windows over the window; a process's rate is its own rows
 * over the window. Inserts that ended after the window are reported as
 * late, and their latencies are in the percentiles.
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#define DIRECT_EXIT_OK	   0
#define DIRECT_EXIT_USAGE  1
#define DIRECT_EXIT_FAILED 2

#define DIRECT_PROCS_MAX       1024
#define DIRECT_SIZE_MAX	       (64 * 1024 * 1024)
#define DIRECT_BUSY_TIMEOUT_MS 5000
#define DIRECT_FILE_DEFAULT    "sqlite-direct.db"

/* Latency histogram in nanoseconds: see the top of the file. */
#define HIST_SUB_BITS 4
#define HIST_SUB      (1U << HIST_SUB_BITS)
#define HIST_MAX_EXP  40
#define HIST_BUCKETS  ((HIST_MAX_EXP - HIST_SUB_BITS + 2) * HIST_SUB)

struct direct_config {
	unsigned    procs;
	double	    duration;
	size_t	    size;
	const char *file;
	int	    csv;
};

struct hist {
	uint64_t count[HIST_BUCKETS];
	uint64_t total;
	uint64_t max;
};

/* One child's results; only that child writes its slot. */
struct direct_slot {
	uint64_t    rows; /* committed within the window */
	uint64_t    late; /* committed after it */
	uint64_t    busy;
	uint64_t    t_start; /* ns, monotonic */
	uint64_t    t_end;
	int	    failed;
	char	    cause[256];
	struct hist hist;
};

static void usage(FILE *, int) __attribute__((noreturn));
static void die(const char *, ...)
    __attribute__((format(printf, 1, 2), noreturn));

static const char *direct_progname = "sqlite-direct";

/* Print a message about a failed run and exit with status 2. */
static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "%s: ", direct_progname);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(DIRECT_EXIT_FAILED);
}

/* Print a usage error and exit with status 1. */
static void
usage_error(const char *msg, const char *arg)
{
	fprintf(stderr, "%s: %s: %s\n", direct_progname, msg, arg);
	fprintf(stderr, "Try '%s --help'.\n", direct_progname);
	exit(DIRECT_EXIT_USAGE);
}

static void
usage(FILE *f, int status)
{
	fprintf(f,
	    "Usage: %s [options]\n"
	    "The baseline for stashd: PROCS processes insert straight into one "
	    "SQLite\n"
	    "file, each with its own connection (WAL, synchronous=FULL,\n"
	    "busy_timeout=%d), one transaction per INSERT of a BYTES blob.\n"
	    "\n"
	    "  -p, --procs PROCS      writer processes (default 8)\n"
	    "      --duration SECS    seconds each process inserts (default "
	    "10;\n"
	    "                         decimals allowed)\n"
	    "  -d, --size BYTES       bytes of each row's blob (default 100)\n"
	    "  -f, --file FILE        database file, created when missing, "
	    "kept\n"
	    "                         afterwards (default " DIRECT_FILE_DEFAULT
	    ")\n"
	    "      --csv              print a CSV header line and one result "
	    "line\n"
	    "  -h, --help             show this help and exit\n"
	    "\n"
	    "Prints the rows each process committed within its SECS from its "
	    "start,\n"
	    "SECS, total rows/s, the slowest, mean and fastest process's "
	    "rows/s, the\n"
	    "latency p50 and p99 of a successful INSERT in microseconds, and\n"
	    "the count of SQLITE_BUSY (\"database is locked\") errors: a "
	    "process that\n"
	    "gets one counts it and goes on. Inserts that ended after the "
	    "window (a\n"
	    "wait for the lock can last busy_timeout) are shown apart, not "
	    "counted.\n"
	    "\n"
	    "Exit status: 0 when every process ran to the end (busy errors "
	    "included),\n"
	    "1 on a usage error, 2 on any other error.\n",
	    direct_progname, DIRECT_BUSY_TIMEOUT_MS);
	exit(status);
}

/* Nanoseconds of the monotonic clock, the same in every process. */
static uint64_t
now_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		die("clock_gettime: %s", strerror(errno));
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Parse an unsigned decimal in [min, max] or exit with a usage error. */
static unsigned long long
parse_ull(const char *s, unsigned long long min, unsigned long long max,
    const char *what)
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

static void
parse_args(struct direct_config *cfg, int argc, char **argv)
{
	enum { OPT_DURATION = 256, OPT_CSV };
	static const struct option longopts[] = {
	    {"procs", required_argument, NULL, 'p'},
	    {"duration", required_argument, NULL, OPT_DURATION},
	    {"size", required_argument, NULL, 'd'},
	    {"file", required_argument, NULL, 'f'},
	    {"csv", no_argument, NULL, OPT_CSV},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	char *end;
	int   ch;

	memset(cfg, 0, sizeof(*cfg));
	cfg->procs = 8;
	cfg->duration = 10;
	cfg->size = 100;
	cfg->file = DIRECT_FILE_DEFAULT;

	while (
	    (ch = getopt_long(argc, argv, "p:d:f:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			cfg->procs = (unsigned)parse_ull(
			    optarg, 1, DIRECT_PROCS_MAX, "bad process count");
			break;
		case OPT_DURATION:
			errno = 0;
			cfg->duration = strtod(optarg, &end);
			if (errno != 0 || end == optarg || *end != '\0' ||
			    !isfinite(cfg->duration) || cfg->duration <= 0 ||
			    cfg->duration > 1e6)
				usage_error("bad duration", optarg);
			break;
		case 'd':
			cfg->size = (size_t)parse_ull(
			    optarg, 0, DIRECT_SIZE_MAX, "bad blob size");
			break;
		case 'f':
			if (*optarg == '\0')
				usage_error("bad file", "empty name");
			cfg->file = optarg;
			break;
		case OPT_CSV: cfg->csv = 1; break;
		case 'h': usage(stdout, DIRECT_EXIT_OK);
		default: usage(stderr, DIRECT_EXIT_USAGE);
		}
	}
	if (optind != argc)
		usage_error("unexpected argument", argv[optind]);
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

static void
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

/* Run one statement that returns no rows we need; -1 on error. */
static int
direct_exec(sqlite3 *db, const char *sql, char *cause, size_t causesize)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(cause, causesize, "%s: %s", sql,
		    msg != NULL ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* Create the database and its table, in WAL mode, before any fork. */
static void
direct_prepare(const struct direct_config *cfg)
{
	char	 cause[512];
	sqlite3 *db;

	if (sqlite3_open_v2(cfg->file, &db,
		SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
		die("%s: %s", cfg->file,
		    db != NULL ? sqlite3_errmsg(db) : "out of memory");
	if (sqlite3_busy_timeout(db, DIRECT_BUSY_TIMEOUT_MS) != SQLITE_OK ||
	    direct_exec(db, "PRAGMA journal_mode=WAL", cause, sizeof(cause)) ==
		-1 ||
	    direct_exec(db,
		"CREATE TABLE IF NOT EXISTS bench(id INTEGER "
		"PRIMARY KEY, data BLOB)",
		cause, sizeof(cause)) == -1)
		die("%s: %s", cfg->file, cause);
	if (sqlite3_close(db) != SQLITE_OK)
		die("%s: close: %s", cfg->file, sqlite3_errmsg(db));
}

/*
 * A child's body: wait for the start, insert until the deadline, fill the
 * slot. Returns the exit status.
 */
static int
direct_child(
    const struct direct_config *cfg, struct direct_slot *slot, int startfd)
{
	sqlite3	      *db = NULL;
	sqlite3_stmt  *ins = NULL;
	uint64_t       t0, t1, deadline;
	unsigned char *blob;
	char	       c;
	ssize_t	       n;
	int	       rc;

	if ((blob = malloc(cfg->size > 0 ? cfg->size : 1)) == NULL) {
		snprintf(slot->cause, sizeof(slot->cause), "out of memory");
		goto fail;
	}
	memset(blob, 'x', cfg->size);
	if (sqlite3_open_v2(cfg->file, &db, SQLITE_OPEN_READWRITE, NULL) !=
	    SQLITE_OK) {
		snprintf(slot->cause, sizeof(slot->cause), "open: %s",
		    db != NULL ? sqlite3_errmsg(db) : "out of memory");
		goto fail;
	}
	if (sqlite3_busy_timeout(db, DIRECT_BUSY_TIMEOUT_MS) != SQLITE_OK) {
		snprintf(slot->cause, sizeof(slot->cause), "busy_timeout: %s",
		    sqlite3_errmsg(db));
		goto fail;
	}
	if (direct_exec(db, "PRAGMA synchronous=FULL", slot->cause,
		sizeof(slot->cause)) == -1)
		goto fail;
	if (sqlite3_prepare_v2(db, "INSERT INTO bench(data) VALUES (?)", -1,
		&ins, NULL) != SQLITE_OK) {
		snprintf(slot->cause, sizeof(slot->cause), "prepare: %s",
		    sqlite3_errmsg(db));
		goto fail;
	}

	/* Every child is ready: wait for the parent to close the pipe. */
	do {
		n = read(startfd, &c, 1);
	} while (n == -1 && errno == EINTR);
	if (n != 0) {
		snprintf(slot->cause, sizeof(slot->cause), "start pipe: %s",
		    n == -1 ? strerror(errno) : "unexpected data");
		goto fail;
	}

	slot->t_start = now_ns();
	deadline = slot->t_start + (uint64_t)(cfg->duration * 1e9);
	t0 = slot->t_start;
	do {
		if (sqlite3_bind_blob(ins, 1, blob, (int)cfg->size,
			SQLITE_STATIC) != SQLITE_OK) {
			snprintf(slot->cause, sizeof(slot->cause), "bind: %s",
			    sqlite3_errmsg(db));
			goto fail;
		}
		rc = sqlite3_step(ins);
		t1 = now_ns();
		/* With sqlite3_prepare_v2, step returns the extended code. */
		if ((rc & 0xff) == SQLITE_BUSY)
			slot->busy++;
		else if (rc != SQLITE_DONE) {
			snprintf(slot->cause, sizeof(slot->cause),
			    "INSERT: %s (%d)", sqlite3_errmsg(db), rc);
			goto fail;
		} else {
			if (t1 <= deadline)
				slot->rows++;
			else
				slot->late++;
			hist_record(&slot->hist, t1 - t0);
		}
		/* After an error, reset returns it again. */
		if (sqlite3_reset(ins) != SQLITE_OK && rc == SQLITE_DONE) {
			snprintf(slot->cause, sizeof(slot->cause), "reset: %s",
			    sqlite3_errmsg(db));
			goto fail;
		}
		t0 = now_ns();
	} while (t0 < deadline);
	slot->t_end = t0;

	if (sqlite3_finalize(ins) != SQLITE_OK ||
	    sqlite3_close(db) != SQLITE_OK) {
		snprintf(slot->cause, sizeof(slot->cause), "close: %s",
		    sqlite3_errmsg(db));
		ins = NULL;
		goto fail;
	}
	free(blob);
	return DIRECT_EXIT_OK;

fail:
	slot->failed = 1;
	sqlite3_finalize(ins);
	sqlite3_close(db);
	free(blob);
	return DIRECT_EXIT_FAILED;
}

/* Fork the children, start them together and wait for all of them. */
static void
direct_run(const struct direct_config *cfg, struct direct_slot *slots)
{
	int	 start[2], status, failed = 0;
	unsigned i, started;
	pid_t	 pid;

	if (pipe(start) == -1)
		die("pipe: %s", strerror(errno));
	/* Our output is flushed so that no child repeats it. */
	if (fflush(stdout) == EOF)
		die("stdout: %s", strerror(errno));
	for (started = 0; started < cfg->procs; started++) {
		if ((pid = fork()) == -1) {
			fprintf(stderr, "%s: fork: %s\n", direct_progname,
			    strerror(errno));
			failed = 1;
			break;
		}
		if (pid == 0) {
			if (close(start[1]) == -1)
				_exit(DIRECT_EXIT_FAILED);
			_exit(direct_child(cfg, &slots[started], start[0]));
		}
	}
	if (close(start[0]) == -1 || close(start[1]) == -1)
		die("close: %s", strerror(errno));

	for (i = 0; i < started; i++) {
		if (wait(&status) == -1)
			die("wait: %s", strerror(errno));
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed = 1;
	}
	for (i = 0; i < started; i++) {
		if (slots[i].failed)
			fprintf(stderr, "%s: process %u: %s\n", direct_progname,
			    i, slots[i].cause);
	}
	if (failed)
		die("%s", "a writer process failed");
}

int
main(int argc, char **argv)
{
	struct direct_config cfg;
	struct direct_slot  *slots;
	struct hist	    *all;
	uint64_t rows = 0, late = 0, busy = 0, t_start = UINT64_MAX, t_end = 0;
	double span, rate, total, pmin = HUGE_VAL, pmax = 0, psum = 0, p50, p99;
	size_t len;
	unsigned i;

	parse_args(&cfg, argc, argv);

	len = (size_t)cfg.procs * sizeof(*slots);
	slots = mmap(NULL, len, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (slots == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	if ((all = calloc(1, sizeof(*all))) == NULL)
		die("out of memory");

	direct_prepare(&cfg);
	direct_run(&cfg, slots);

	/* Rates are over the window: see the top of the file. */
	for (i = 0; i < cfg.procs; i++) {
		rows += slots[i].rows;
		late += slots[i].late;
		busy += slots[i].busy;
		if (slots[i].t_start < t_start)
			t_start = slots[i].t_start;
		if (slots[i].t_end > t_end)
			t_end = slots[i].t_end;
		rate = (double)slots[i].rows / cfg.duration;
		if (rate < pmin)
			pmin = rate;
		if (rate > pmax)
			pmax = rate;
		psum += rate;
		hist_merge(all, &slots[i].hist);
	}
	total = (double)rows / cfg.duration;
	span = t_end > t_start ? (double)(t_end - t_start) / 1e9 : 0;
	p50 = (double)hist_quantile(all, 0.50) / 1e3;
	p99 = (double)hist_quantile(all, 0.99) / 1e3;

	if (cfg.csv) {
		printf("procs,size,rows,seconds,rows_per_sec,"
		       "proc_min_rows_per_sec,proc_mean_rows_per_sec,"
		       "proc_max_rows_per_sec,p50_us,p99_us,busy_errors,"
		       "late_rows,span_seconds\n");
		printf("%u,%zu,%llu,%.3f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%llu,"
		       "%llu,%.3f\n",
		    cfg.procs, cfg.size, (unsigned long long)rows, cfg.duration,
		    total, pmin, psum / cfg.procs, pmax, p50, p99,
		    (unsigned long long)busy, (unsigned long long)late, span);
	} else {
		printf("%s: %s, %u process%s, %zu-byte blobs, %g s, WAL, "
		       "synchronous=FULL, busy_timeout=%d, SQLite %s\n",
		    direct_progname, cfg.file, cfg.procs,
		    cfg.procs == 1 ? "" : "es", cfg.size, cfg.duration,
		    DIRECT_BUSY_TIMEOUT_MS, sqlite3_libversion());
		printf("%11s %8s %11s %14s %14s %14s %9s %9s %11s\n", "rows",
		    "seconds", "rows/s", "slowest rows/s", "mean rows/s",
		    "fastest rows/s", "p50 us", "p99 us", "busy errors");
		printf("%11llu %8.2f %11.1f %14.1f %14.1f %14.1f %9.1f %9.1f "
		       "%11llu\n",
		    (unsigned long long)rows, cfg.duration, total, pmin,
		    psum / cfg.procs, pmax, p50, p99, (unsigned long long)busy);
		printf("%llu more rows committed after the window; the last "
		       "process ended %.2f s after the first started\n",
		    (unsigned long long)late, span);
	}
	if (fflush(stdout) == EOF)
		die("stdout: %s", strerror(errno));
	free(all);
	if (munmap(slots, len) == -1)
		die("munmap: %s", strerror(errno));
	return DIRECT_EXIT_OK;
}

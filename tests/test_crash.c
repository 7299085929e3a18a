/*
 * test_crash.c -- the kill test: SIGKILL stashd again and again under a
 * write load, restart it on the same database and journal, and check that
 * no acknowledged write was lost, none was applied twice, and no read went
 * back in time (DESIGN.md, guarantees 1 to 4).
 *
 * Without arguments (make check) it is a short run (64 clients, 10 cycles);
 * with options it is the soak (--help). --crash-points makes the daemon
 * kill itself at named points instead (daemon/crashpoint.h); --power-loss
 * adds a power cut after each death (tests/faultfs.c, powerloss.c). One
 * run:
 *
 *   start stashd in a folder of its own (kept across all cycles)
 *   create the table rows(client, n) -- no unique constraint, so that an
 *       insert applied twice shows up as two rows
 *   for each cycle:
 *       each client, a thread with its own connection, writes until its
 *       connection breaks, keeping a few requests in flight:
 *         set c<i>:k<n> = {"c":i,"n":n}     durability journal / commit
 *         set c<i>:counter = 1, 2, 3, ...   durability journal
 *         get c<i>:counter (now and then)   must not be older than the
 *                                           last acknowledged set
 *         exec INSERT INTO rows VALUES(i, n) durability commit / journal
 *       after a random delay, SIGKILL the daemon; join the clients
 *       start it again and time it until it accepts; read its log for the
 *           replay line
 *       check on a fresh connection what was written
 *   SIGTERM (must exit 0), then open the database with SQLite itself:
 *   integrity_check, applied_seq, and every check once more, in full.
 *
 * Bookkeeping. A write is acknowledged only when its "ok" answer arrived;
 * a write whose answer never came is unknown: it may or may not be there
 * after the restart. The first check after a restart settles it: present
 * makes it as binding as an acknowledged one (it must stay), absent makes
 * it gone (it must never come back). Per client, key and row numbers n are
 * dense (0, 1, 2...) and never reused, so the state of each is two bits in
 * a bitmap: acknowledged and gone; a third bitmap remembers which
 * duplicates were already reported. 64 clients times millions of writes
 * stay within a few megabytes. The counter is one number per client: the
 * floor its value may never fall under.
 *
 * Sequence numbers. Every acknowledged write carries its journal sequence
 * number (a set's version, an exec's seq). On one connection they must
 * grow in the order of the requests (replay follows the journal, so a
 * later set with a smaller seq would be undone on replay), and after a
 * restart every new one must be above every one acknowledged before the
 * kill.
 *
 * What is checked after each restart: the keys and rows written in that
 * cycle, all counters, a random sample of older keys, every duplicate in
 * the whole table, and no row with an n never sent. Everything is checked
 * after the last cycle, every FULL_EVERY cycles, and always while the run
 * is small.
 *
 * Failures are counted by kind (lost, duplicated, stale, daemon, other);
 * the first few of each kind are printed with the key or row, what was
 * expected and what was found. The daemon's own failures (it died by
 * itself, did not start, did not exit 0 on SIGTERM) are always printed. A
 * connection that breaks before the kill is noted by its client and
 * reported once per cycle by the main thread.
 *
 * Threads. Clients report failures through fail(), under a mutex;
 * everything else they touch is their own struct client, which the main
 * thread reads only after joining them, and cx->seq_floor, which changes
 * only between cycles.
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "harness.h"
#include "powerloss.h"
#include "stash.h"

#define CLIENTS_MAX	  512
#define WINDOW_MAX	  16 /* requests in flight per client */
#define DAEMON_ARGS_MAX	  16
#define BATCH		  1000	 /* keys per mget */
#define ROW_SPAN	  20000	 /* n per rows query */
#define FULL_LIMIT	  200000 /* below this many items, check all */
#define FULL_EVERY	  20	 /* otherwise all every this many cycles */
#define SAMPLE		  1000	 /* older keys checked in other cycles */
#define CLIENT_TIMEOUT_MS 30000
#define VERIFY_TIMEOUT_MS 120000
#define START_TIMEOUT_MS  60000
#define STOP_TIMEOUT_MS	  60000
#define MSGS_MAX	  20 /* failures printed per kind */
#define GET_EVERY	  4  /* get the counter after every 4th set */

#define COUNTER_N UINT64_MAX /* kbatch: the counter key */

#define POINT_TIMEOUT_MS 30000 /* an armed crash point must be reached */

/*
 * The crash points of daemon/crashpoint.h, in the order --crash-points
 * visits them, one per cycle. The point armed is hit at a count drawn in
 * 1..max_hit; "replay" first crashes the apply (so that the journal holds
 * records SQLite does not), then crashes the replay of the next starts.
 */
struct cpoint {
	const char *name;
	const char *armed; /* the point armed first */
	unsigned    max_hit;
	int	    replays; /* starts that then crash in their replay */
};

static const struct cpoint cpoints[] = {
    {"after-write", "after-write", 200, 0},
    {"after-sync", "after-sync", 200, 0},
    {"apply", "apply", 400, 0},
    {"after-commit", "after-commit", 8, 0},
    {"before-delete", "before-delete", 3, 0},
    {"rotate-created", "rotate-created", 5, 0},
    {"rotate-synced", "rotate-synced", 5, 0},
    {"replay", "apply", 400, 2},
};
#define NPOINTS ((int)(sizeof(cpoints) / sizeof(cpoints[0])))

/* Kinds of failure, counted apart in the summary. */
enum fail_kind {
	F_LOST,	  /* an acknowledged write is missing */
	F_DUP,	  /* a write applied twice */
	F_STALE,  /* a read older than an acknowledged write */
	F_DAEMON, /* the daemon died, did not start, exited badly */
	F_OTHER,  /* anything else: wrong value, order of seqs... */
	F_KINDS
};

static const char *const fail_names[F_KINDS] = {
    "lost", "duplicated", "stale", "daemon", "other"};

/* A growable bitmap, indexed by n. */
struct bits {
	uint64_t *w;
	size_t	  nw;
};

struct crash;

/* One client: its thread's state during a cycle, its ledger across all. */
struct client {
	struct crash *cx;
	int	      id;
	pthread_t     thread;

	/* Unique keys c<id>:k<n>: n < k_next were sent (or queued). */
	uint64_t    k_next;
	uint64_t    k_checked; /* n below this were checked */
	struct bits k_acked;
	struct bits k_gone;

	/* The counter c<id>:counter: values < cnt_next were sent. */
	uint64_t cnt_next;
	uint64_t cnt_floor; /* last acknowledged or seen; 0 none */
	unsigned cnt_sets;

	/* Rows (id, n): n < r_next were sent. */
	uint64_t    r_next;
	uint64_t    r_checked;
	struct bits r_acked;
	struct bits r_gone;
	struct bits r_dup; /* duplicates already reported */

	/* The next request of the round: key, counter, get, row. */
	int slot;

	/* This cycle: the connection broke before the kill. */
	int  lost_early;
	char lost_msg[160];

	/* Totals. */
	uint64_t acks; /* acknowledged writes */
	uint64_t acks_key, acks_cnt, acks_row;
	uint64_t gets;	  /* in-run counter reads checked */
	uint64_t busy;	  /* writes answered busy */
	uint64_t max_seq; /* highest acknowledged seq */
};

/* A batch of keys for one mget (or its direct SQLite equivalent). */
struct kbatch {
	size_t	       len;
	struct client *client[BATCH];
	uint64_t       n[BATCH]; /* COUNTER_N for the counter */
	char	       buf[BATCH][48];
	const char    *keys[BATCH];
	char	      *values[BATCH];
};

/* The whole run. */
struct crash {
	/* Options. */
	int	    soak;
	int	    nclients;
	int	    cycles;
	int	    window;
	uint64_t    seed;
	int	    min_ms, max_ms;
	int	    keep;
	const char *daemon_args[DAEMON_ARGS_MAX + 1];
	int	    ndaemon_args;
	int	    crashpoints; /* the daemon kills itself (--crash-points) */
	int	    powerloss;	 /* a power cut after each death */
	const char *faultfs;	 /* the shim that records syncs */
	char	    plog[320];	 /* its record */
	struct powerloss_stats pls;
	uint64_t	       pl_taken; /* bytes and files, at the last line */

	/* STASHD_CRASH of the next start, or none when empty. */
	char	 crash_env[80];
	uint64_t points_hit;  /* armed points reached */
	uint64_t replays_hit; /* replays that crashed as armed */

	/* The daemon and its files. */
	const char *bin;
	char	    dir[256];
	char	    sock[320];
	char	    db[320];
	char	    log[320];
	pid_t	    pid;
	off_t	    log_off; /* where this start's log begins */

	/* Shared with the client threads. */
	int		killed;	   /* atomic: the kill was sent */
	uint64_t	seq_floor; /* every new seq must be above */
	pthread_mutex_t lock;
	unsigned long	fails[F_KINDS];
	unsigned long	printed[F_KINDS];

	/* Checking. */
	char	       where[64]; /* "after cycle 3", ... */
	stash_t	      *vh;	  /* the daemon, or */
	sqlite3	      *sq;	  /* the database itself */
	uint32_t      *counts;	  /* ROW_SPAN row counts */
	struct kbatch *kb;
	uint64_t       rng;

	struct client *clients;

	/* Results. */
	double	*ready_ms; /* per restart */
	int	 nready;
	uint64_t replayed_total;
	double	 replay_max_s;
	double	 replay_best_rate;
	uint64_t observed; /* unknown writes found present */
	uint64_t vanished; /* unknown writes found absent */
	char	 integrity[256];
	uint64_t applied_seq;
	int	 stop_status;
};

/*
 * The daemon's pid for on_signal(): a test interrupted (^C, a make check
 * timeout) must not leave a daemon behind.
 */
static volatile sig_atomic_t running_pid;

static void fail(struct crash *, enum fail_kind, const char *, ...)
    __attribute__((format(printf, 3, 4)));
static void die(const char *, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/* --- small helpers ------------------------------------------------------- */

/* Print a message and exit 1: for what leaves the test nothing to do. */
static void
die(const char *fmt, ...)
{
	va_list ap;

	if (running_pid > 0)
		kill((pid_t)running_pid, SIGKILL);
	fflush(stdout);
	fprintf(stderr, "test_crash: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

/* Record a failure; print the first MSGS_MAX of each kind. */
static void
fail(struct crash *cx, enum fail_kind kind, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&cx->lock);
	cx->fails[kind]++;
	if (cx->printed[kind] < MSGS_MAX || kind == F_DAEMON) {
		cx->printed[kind]++;
		fflush(stdout);
		fprintf(stderr, "FAIL (%s) ", fail_names[kind]);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fprintf(stderr, "\n");
		if (cx->printed[kind] == MSGS_MAX && kind != F_DAEMON)
			fprintf(stderr,
			    "FAIL (%s) further failures of this "
			    "kind are counted, not printed\n",
			    fail_names[kind]);
	}
	pthread_mutex_unlock(&cx->lock);
}

/* All failures so far. */
static unsigned long
fail_total(struct crash *cx)
{
	unsigned long t = 0;
	int	      k;

	pthread_mutex_lock(&cx->lock);
	for (k = 0; k < F_KINDS; k++)
		t += cx->fails[k];
	pthread_mutex_unlock(&cx->lock);
	return t;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
sleep_ms(int ms)
{
	struct timespec ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* xorshift64*: the run's randomness, reproducible from --seed. */
static uint64_t
rng_next(struct crash *cx)
{
	cx->rng ^= cx->rng >> 12;
	cx->rng ^= cx->rng << 25;
	cx->rng ^= cx->rng >> 27;
	return cx->rng * 2685821657736338717ULL;
}

static int
bits_get(const struct bits *b, uint64_t i)
{
	uint64_t k = i / 64;

	return k < b->nw && ((b->w[k] >> (i % 64)) & 1);
}

static void
bits_set(struct bits *b, uint64_t i)
{
	uint64_t  k = i / 64;
	uint64_t *nw;
	size_t	  n;

	if (k >= b->nw) {
		n = b->nw * 2 > k + 1 ? b->nw * 2 : k + 1024;
		if ((nw = realloc(b->w, n * sizeof(*nw))) == NULL)
			die("out of memory");
		memset(nw + b->nw, 0, (n - b->nw) * sizeof(*nw));
		b->w = nw;
		b->nw = n;
	}
	b->w[k] |= (uint64_t)1 << (i % 64);
}

static void
bits_clear(struct bits *b, uint64_t i)
{
	uint64_t k = i / 64;

	if (k < b->nw)
		b->w[k] &= ~((uint64_t)1 << (i % 64));
}

static void
bits_free(struct bits *b)
{
	free(b->w);
	b->w = NULL;
	b->nw = 0;
}

/* The durability of key n and of row n: they alternate. */
static enum stash_durability
key_durability(uint64_t n)
{
	return n % 2 == 0 ? STASH_DURABILITY_JOURNAL : STASH_DURABILITY_COMMIT;
}

static enum stash_durability
row_durability(uint64_t n)
{
	return n % 2 == 0 ? STASH_DURABILITY_COMMIT : STASH_DURABILITY_JOURNAL;
}

static const char *
durability_name(enum stash_durability d)
{
	return d == STASH_DURABILITY_COMMIT ? "commit" : "journal";
}

static void
key_name(char *buf, size_t len, int id, uint64_t n)
{
	if (n == COUNTER_N)
		snprintf(buf, len, "c%d:counter", id);
	else
		snprintf(buf, len, "c%d:k%" PRIu64, id, n);
}

static void
key_value(char *buf, size_t len, int id, uint64_t n)
{
	snprintf(buf, len, "{\"c\":%d,\"n\":%" PRIu64 "}", id, n);
}

/* A JSON integer >= 0 from text; -1 when it is not one. */
static int
parse_u64(const char *s, uint64_t *v)
{
	char *end;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return errno != 0 || *end != '\0' ? -1 : 0;
}

/* --- the daemon ------------------------------------------------------------
 */

/* SIGINT, SIGTERM, SIGHUP: kill the daemon, then die of the signal. */
static void
on_signal(int sig)
{
	if (running_pid > 0)
		kill((pid_t)running_pid, SIGKILL);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* The daemon has been reaped. */
static void
daemon_gone(struct crash *cx)
{
	cx->pid = 0;
	running_pid = 0;
}

/* Print the log of the current start, to tell why it failed. */
static void
log_tail(struct crash *cx)
{
	char  line[1024];
	FILE *f;
	int   n = 0;

	if ((f = fopen(cx->log, "r")) == NULL)
		return;
	if (fseeko(f, cx->log_off, SEEK_SET) == 0) {
		fprintf(stderr, "--- %s, this start:\n", cx->log);
		while (fgets(line, sizeof(line), f) != NULL && n++ < 60)
			fputs(line, stderr);
		fprintf(stderr, "---\n");
	}
	fclose(f);
}

/* Find the replay line of this start's log: records and seconds. */
static int
log_replay(struct crash *cx, uint64_t *records, double *secs)
{
	char		   line[1024];
	const char	  *p;
	unsigned long long r;
	double		   s;
	FILE		  *f;
	int		   found = 0;

	if ((f = fopen(cx->log, "r")) == NULL)
		return 0;
	if (fseeko(f, cx->log_off, SEEK_SET) == 0) {
		while (!found && fgets(line, sizeof(line), f) != NULL) {
			if ((p = strstr(line, "replayed ")) != NULL &&
			    sscanf(p, "replayed %llu journal records in %lf s",
				&r, &s) == 2) {
				*records = r;
				*secs = s;
				found = 1;
			}
		}
	}
	fclose(f);
	return found;
}

/* Does this start's log hold the text? */
static int
log_has(struct crash *cx, const char *text)
{
	char  line[1024];
	FILE *f;
	int   found = 0;

	if ((f = fopen(cx->log, "r")) == NULL)
		return 0;
	if (fseeko(f, cx->log_off, SEEK_SET) == 0)
		while (!found && fgets(line, sizeof(line), f) != NULL)
			found = strstr(line, text) != NULL;
	fclose(f);
	return found;
}

/*
 * Did the daemon die of its armed crash point: SIGKILL, and the line of
 * daemon/crashpoint.c naming the point in this start's log?
 */
static int
crashed_as_armed(struct crash *cx, int status)
{
	char	    want[128], name[80];
	const char *colon;

	if (cx->crash_env[0] == '\0' || !WIFSIGNALED(status) ||
	    WTERMSIG(status) != SIGKILL)
		return 0;
	colon = strrchr(cx->crash_env, ':');
	snprintf(name, sizeof(name), "%.*s",
	    colon != NULL ? (int)(colon - cx->crash_env) : 0, cx->crash_env);
	snprintf(want, sizeof(want), "crash point %s reached", name);
	return log_has(cx, want);
}

/*
 * --power-loss: the daemon is dead; take away what it had not synced, as
 * a power cut would (tests/powerloss.c), before anything reads the files.
 */
static void
power_cut(struct crash *cx)
{
	char err[512];

	if (!cx->powerloss)
		return;
	if (powerloss_apply(cx->plog, &cx->pls, err, sizeof(err)) == -1)
		die("power cut: %s", err);
}

/* What the power cuts took away so far: bytes and files. */
static uint64_t
power_taken(struct crash *cx)
{
	return cx->pls.bytes_undone + cx->pls.bytes_cut +
	       cx->pls.files_dropped + cx->pls.dirs_dropped;
}

/* Describe a wait status. */
static void
status_text(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "signal %d (%s)", WTERMSIG(status),
		    strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "status 0x%x", (unsigned)status);
}

/*
 * Start the daemon on the run's socket and database, its stderr appended
 * to the run's log, and wait until it accepts: the journal is replayed
 * before the socket listens, so this is the restart-to-ready time (ms).
 * Returns -1 when it exits or does not answer in START_TIMEOUT_MS.
 */
static double
daemon_up(struct crash *cx)
{
	const char *argv[8 + DAEMON_ARGS_MAX];
	struct stat st;
	double	    t0;
	int	    n = 0, i, fd, status;

	argv[n++] = cx->bin;
	argv[n++] = "-s";
	argv[n++] = cx->sock;
	argv[n++] = "-d";
	argv[n++] = cx->db;
	argv[n++] = "-c"; /* no system configuration file */
	argv[n++] = "/dev/null";
	for (i = 0; i < cx->ndaemon_args; i++)
		argv[n++] = cx->daemon_args[i];
	argv[n] = NULL;

	power_cut(cx);
	cx->log_off = stat(cx->log, &st) == 0 ? st.st_size : 0;
	fflush(stdout);
	fflush(stderr);
	t0 = now_s();
	if ((cx->pid = fork()) == -1)
		die("fork: %s", strerror(errno));
	if (cx->pid == 0) {
		int lfd = open(cx->log, O_WRONLY | O_CREAT | O_APPEND, 0600);

		if (lfd != -1) {
			dup2(lfd, STDERR_FILENO);
			dup2(lfd, STDOUT_FILENO);
			close(lfd);
		}
		if (cx->powerloss) {
			const char *asan = getenv("ASAN_OPTIONS");
			char	    opt[512];

			/* The shim comes before a sanitizer's runtime. */
			snprintf(opt, sizeof(opt),
			    "%s%sverify_asan_link_order=0",
			    asan != NULL ? asan : "", asan != NULL ? ":" : "");
			if (setenv("LD_PRELOAD", cx->faultfs, 1) == -1 ||
			    setenv("FAULTFS_DIR", cx->dir, 1) == -1 ||
			    setenv("FAULTFS_LOG", cx->plog, 1) == -1 ||
			    setenv("ASAN_OPTIONS", opt, 1) == -1)
				_exit(127);
		}
		if (cx->crash_env[0] != '\0'
			? setenv("STASHD_CRASH", cx->crash_env, 1) == -1
			: unsetenv("STASHD_CRASH") == -1)
			_exit(127);
		if (getenv("STASHD_WRAPPER") != NULL) {
			/* e.g. valgrind: through sh to split its words */
			char   cmd[4096];
			size_t off;

			off = (size_t)snprintf(cmd, sizeof(cmd), "exec %s",
			    getenv("STASHD_WRAPPER"));
			for (i = 0; argv[i] != NULL && off < sizeof(cmd); i++)
				off += (size_t)snprintf(cmd + off,
				    sizeof(cmd) - off, " '%s'", argv[i]);
			execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		} else
			execv(cx->bin, (char *const *)(uintptr_t)argv);
		_exit(127);
	}
	running_pid = cx->pid;
	while (now_s() - t0 < START_TIMEOUT_MS / 1000.0) {
		if (waitpid(cx->pid, &status, WNOHANG) == cx->pid) {
			char st_text[64];

			daemon_gone(cx);
			if (crashed_as_armed(cx, status))
				return -2;
			status_text(status, st_text, sizeof(st_text));
			fail(cx, F_DAEMON, "%s: stashd did not start: %s",
			    cx->where, st_text);
			log_tail(cx);
			return -1;
		}
		if ((fd = raw_connect(cx->sock)) != -1) {
			close(fd);
			return (now_s() - t0) * 1000.0;
		}
		sleep_ms(1);
	}
	fail(cx, F_DAEMON, "%s: stashd did not accept within %d s", cx->where,
	    START_TIMEOUT_MS / 1000);
	log_tail(cx);
	kill(cx->pid, SIGKILL);
	waitpid(cx->pid, &status, 0);
	daemon_gone(cx);
	return -1;
}

/*
 * SIGKILL the daemon. It must still be running: a daemon that died on its
 * own is a failure.
 */
static void
daemon_sigkill(struct crash *cx, int cycle)
{
	char st_text[64];
	int  status;

	if (waitpid(cx->pid, &status, WNOHANG) == cx->pid) {
		status_text(status, st_text, sizeof(st_text));
		fail(cx, F_DAEMON,
		    "cycle %d: stashd died on its own before "
		    "the kill: %s",
		    cycle, st_text);
		log_tail(cx);
		__atomic_store_n(&cx->killed, 1, __ATOMIC_SEQ_CST);
		daemon_gone(cx);
		return;
	}
	__atomic_store_n(&cx->killed, 1, __ATOMIC_SEQ_CST);
	if (kill(cx->pid, SIGKILL) == -1)
		die("kill: %s", strerror(errno));
	while (waitpid(cx->pid, &status, 0) == -1)
		if (errno != EINTR)
			die("waitpid: %s", strerror(errno));
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
		status_text(status, st_text, sizeof(st_text));
		fail(cx, F_DAEMON,
		    "cycle %d: stashd ended by itself just "
		    "before the kill: %s",
		    cycle, st_text);
		log_tail(cx);
	}
	daemon_gone(cx);
}

/* SIGTERM the daemon and wait; its wait status, -1 on a timeout. */
static int
daemon_term(struct crash *cx)
{
	double t0 = now_s();
	int    status;

	if (kill(cx->pid, SIGTERM) == -1)
		die("kill: %s", strerror(errno));
	while (now_s() - t0 < STOP_TIMEOUT_MS / 1000.0) {
		if (waitpid(cx->pid, &status, WNOHANG) == cx->pid) {
			daemon_gone(cx);
			return status;
		}
		sleep_ms(10);
	}
	kill(cx->pid, SIGKILL);
	waitpid(cx->pid, &status, 0);
	daemon_gone(cx);
	return -1;
}

/* --- the clients ---------------------------------------------------------- */

/* What a request in flight was. */
enum req_kind { R_KEY, R_COUNTER, R_GET, R_ROW };

struct req {
	enum req_kind kind;
	uint64_t      n; /* key or row number, counter value */
};

/* Queue the next request of the round; -1 on a local failure. */
static int
client_queue(struct client *c, stash_t *h, struct req *r)
{
	struct crash	     *cx = c->cx;
	struct stash_set_opts so;
	char		      key[48], val[64];
	json_t		     *q;
	int		      rc;

	memset(&so, 0, sizeof(so));
	switch (c->slot) {
	case 0:
		r->kind = R_KEY;
		r->n = c->k_next++;
		key_name(key, sizeof(key), c->id, r->n);
		key_value(val, sizeof(val), c->id, r->n);
		so.durability = key_durability(r->n);
		rc = stash_queue_set(h, key, val, &so);
		c->slot = 1;
		break;
	case 1:
		r->kind = R_COUNTER;
		r->n = c->cnt_next++;
		key_name(key, sizeof(key), c->id, COUNTER_N);
		snprintf(val, sizeof(val), "%" PRIu64, r->n);
		so.durability = STASH_DURABILITY_JOURNAL;
		rc = stash_queue_set(h, key, val, &so);
		c->slot = ++c->cnt_sets % GET_EVERY == 0 ? 2 : 3;
		break;
	case 2:
		r->kind = R_GET;
		r->n = 0;
		key_name(key, sizeof(key), c->id, COUNTER_N);
		rc = stash_queue_get(h, key);
		c->slot = 3;
		break;
	default:
		r->kind = R_ROW;
		r->n = c->r_next++;
		q = json_pack("{s:s, s:s, s:[i, I], s:s}", "op", "exec", "sql",
		    "INSERT INTO rows(client, n) VALUES (?, ?)", "params",
		    c->id, (json_int_t)r->n, "durability",
		    durability_name(row_durability(r->n)));
		if (q == NULL)
			die("out of memory");
		rc = stash_queue(h, q);
		json_decref(q);
		c->slot = 0;
		break;
	}
	if (rc != STASH_OK) {
		fail(cx, F_OTHER, "client %d: cannot queue a request: %s",
		    c->id, stash_errmsg(h));
		return -1;
	}
	return 0;
}

/* Check the seq of an acknowledged write against what came before. */
static void
client_seq(struct client *c, uint64_t *conn_seq, uint64_t seq, const char *what)
{
	struct crash *cx = c->cx;

	if (seq <= cx->seq_floor)
		fail(cx, F_OTHER,
		    "client %d: %s acknowledged with seq %" PRIu64
		    ", not above %" PRIu64 ", the highest seq acknowledged "
		    "before the last restart",
		    c->id, what, seq, cx->seq_floor);
	else if (seq <= *conn_seq)
		fail(cx, F_OTHER,
		    "client %d: %s acknowledged with seq %" PRIu64
		    ", not above %" PRIu64 " of an earlier write on the same "
		    "connection",
		    c->id, what, seq, *conn_seq);
	if (seq > *conn_seq)
		*conn_seq = seq;
	if (seq > c->max_seq)
		c->max_seq = seq;
}

/*
 * Read the answer of r and book it. Returns -1 when the connection is
 * gone: r and every request after it stay unknown.
 */
static int
client_answer(
    struct client *c, stash_t *h, const struct req *r, uint64_t *conn_seq)
{
	struct crash *cx = c->cx;
	char	      what[96], *value = NULL;
	json_t	     *reply = NULL, *j;
	uint64_t      version = 0, v;
	int	      rc;

	switch (r->kind) {
	case R_KEY:
	case R_COUNTER: rc = stash_read_set(h, &version); break;
	case R_GET: rc = stash_read_get(h, &value, &version); break;
	default: rc = stash_read_reply(h, &reply); break;
	}
	if (r->kind == R_KEY)
		snprintf(what, sizeof(what), "set c%d:k%" PRIu64 " (%s)", c->id,
		    r->n, durability_name(key_durability(r->n)));
	else if (r->kind == R_COUNTER)
		snprintf(what, sizeof(what), "set c%d:counter = %" PRIu64,
		    c->id, r->n);
	else if (r->kind == R_GET)
		snprintf(what, sizeof(what), "get c%d:counter", c->id);
	else
		snprintf(what, sizeof(what),
		    "insert row (%d, %" PRIu64 ") (%s)", c->id, r->n,
		    durability_name(row_durability(r->n)));

	if (rc == STASH_EIO) {
		if (!__atomic_load_n(&cx->killed, __ATOMIC_SEQ_CST)) {
			c->lost_early = 1;
			snprintf(c->lost_msg, sizeof(c->lost_msg),
			    "client "
			    "%d at %s: %s",
			    c->id, what, stash_errmsg(h));
		}
		json_decref(reply);
		return -1;
	}
	if (rc == STASH_EBUSY && r->kind != R_GET) {
		c->busy++;
		json_decref(reply);
		return 0;
	}
	if (rc == STASH_ENOTFOUND && r->kind == R_GET) {
		if (c->cnt_floor > 0)
			fail(cx, F_STALE,
			    "client %d: get c%d:counter found "
			    "nothing after the set of %" PRIu64 " was "
			    "acknowledged",
			    c->id, c->id, c->cnt_floor);
		c->gets++;
		return 0;
	}
	if (rc != STASH_OK) {
		fail(cx, F_OTHER, "client %d: %s answered %s: %s", c->id, what,
		    stash_errname(rc), stash_errmsg(h));
		json_decref(reply);
		return rc == STASH_EPROTO ? -1 : 0;
	}

	switch (r->kind) {
	case R_KEY:
		bits_set(&c->k_acked, r->n);
		c->acks_key++;
		client_seq(c, conn_seq, version, what);
		break;
	case R_COUNTER:
		if (r->n > c->cnt_floor)
			c->cnt_floor = r->n;
		c->acks_cnt++;
		client_seq(c, conn_seq, version, what);
		break;
	case R_GET:
		c->gets++;
		if (parse_u64(value, &v) == -1)
			fail(cx, F_OTHER,
			    "client %d: get c%d:counter returned "
			    "%s, not a counter value",
			    c->id, c->id, value);
		else if (v < c->cnt_floor)
			fail(cx, F_STALE,
			    "client %d: get c%d:counter returned "
			    "%" PRIu64 " (version %" PRIu64 ") after the set "
			    "of %" PRIu64 " was acknowledged",
			    c->id, c->id, v, version, c->cnt_floor);
		else if (v >= c->cnt_next)
			fail(cx, F_OTHER,
			    "client %d: get c%d:counter returned "
			    "%" PRIu64 ", never written (last sent %" PRIu64
			    ")",
			    c->id, c->id, v, c->cnt_next - 1);
		free(value);
		break;
	default:
		bits_set(&c->r_acked, r->n);
		c->acks_row++;
		j = json_object_get(reply, "seq");
		if (!json_is_integer(j))
			fail(cx, F_OTHER, "client %d: %s: answer without a seq",
			    c->id, what);
		else
			client_seq(
			    c, conn_seq, (uint64_t)json_integer_value(j), what);
		j = json_object_get(reply, "changes");
		if (row_durability(r->n) == STASH_DURABILITY_COMMIT &&
		    (!json_is_integer(j) || json_integer_value(j) != 1))
			fail(cx, F_OTHER, "client %d: %s: changes is not 1",
			    c->id, what);
		json_decref(reply);
		break;
	}
	if (r->kind != R_GET)
		c->acks++;
	return 0;
}

/*
 * A client thread: keep cx->window requests in flight until the
 * connection breaks (the kill).
 */
static void *
client_main(void *arg)
{
	struct client *c = arg;
	struct crash  *cx = c->cx;
	struct req     ring[WINDOW_MAX];
	size_t	       head = 0, count = 0;
	uint64_t       conn_seq = 0;
	stash_t	      *h;

	if ((h = stash_connect(cx->sock)) == NULL) {
		if (!__atomic_load_n(&cx->killed, __ATOMIC_SEQ_CST)) {
			c->lost_early = 1;
			snprintf(c->lost_msg, sizeof(c->lost_msg),
			    "client "
			    "%d cannot connect: %s",
			    c->id, strerror(errno));
		}
		return NULL;
	}
	stash_set_timeout(h, CLIENT_TIMEOUT_MS);
	for (;;) {
		while (count < (size_t)cx->window) {
			if (client_queue(
				c, h, &ring[(head + count) % WINDOW_MAX]) == -1)
				goto out;
			count++;
		}
		if (client_answer(c, h, &ring[head], &conn_seq) == -1)
			break;
		head = (head + 1) % WINDOW_MAX;
		count--;
	}
out:
	stash_close(h);
	return NULL;
}

/* --- checking ------------------------------------------------------------- */

/* Values of b's keys from the daemon (mget) or the database. */
static int
fetch_values(struct crash *cx, struct kbatch *b)
{
	sqlite3_stmt	    *st = NULL;
	const unsigned char *t;
	size_t		     i;
	int		     rc;

	if (cx->sq == NULL) {
		rc = stash_mget(cx->vh, b->keys, b->len, b->values);
		if (rc != STASH_OK) {
			fail(cx, F_OTHER, "%s: mget of %zu keys failed: %s",
			    cx->where, b->len, stash_errmsg(cx->vh));
			return -1;
		}
		return 0;
	}
	if (sqlite3_prepare_v2(cx->sq,
		"SELECT value FROM stash_kv WHERE "
		"key = ?",
		-1, &st, NULL) != SQLITE_OK) {
		fail(cx, F_OTHER, "%s: %s", cx->where, sqlite3_errmsg(cx->sq));
		return -1;
	}
	for (i = 0; i < b->len; i++) {
		b->values[i] = NULL;
		sqlite3_bind_text(st, 1, b->keys[i], -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			t = sqlite3_column_text(st, 0);
			if (t != NULL &&
			    (b->values[i] = strdup((const char *)t)) == NULL)
				die("out of memory");
		} else if (rc != SQLITE_DONE) {
			fail(cx, F_OTHER, "%s: reading stash_kv: %s", cx->where,
			    sqlite3_errmsg(cx->sq));
			while (i-- > 0)
				free(b->values[i]);
			sqlite3_finalize(st);
			return -1;
		}
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	return 0;
}

/* Check what a unique key holds against the ledger. */
static void
check_key(struct crash *cx, struct client *c, uint64_t n, const char *v)
{
	char want[64];

	key_value(want, sizeof(want), c->id, n);
	if (v == NULL) {
		if (bits_get(&c->k_acked, n)) {
			fail(cx, F_LOST,
			    "%s: key c%d:k%" PRIu64 " is missing; "
			    "its set (durability %s) was acknowledged",
			    cx->where, c->id, n,
			    durability_name(key_durability(n)));
			bits_clear(&c->k_acked, n);
		} else if (!bits_get(&c->k_gone, n))
			cx->vanished++;
		bits_set(&c->k_gone, n);
	} else if (strcmp(v, want) != 0)
		fail(cx, F_OTHER,
		    "%s: key c%d:k%" PRIu64 " holds %s, "
		    "expected %s",
		    cx->where, c->id, n, v, want);
	else if (bits_get(&c->k_gone, n)) {
		fail(cx, F_OTHER,
		    "%s: key c%d:k%" PRIu64 " came back: its set "
		    "was never acknowledged and it was absent after an "
		    "earlier restart",
		    cx->where, c->id, n);
		bits_clear(&c->k_gone, n);
		bits_set(&c->k_acked, n);
	} else if (!bits_get(&c->k_acked, n)) {
		/* Unknown, and here: it must stay. */
		bits_set(&c->k_acked, n);
		cx->observed++;
	}
}

/* Check what a counter holds: never under its floor, never unsent. */
static void
check_counter(struct crash *cx, struct client *c, const char *v)
{
	uint64_t val;

	if (v == NULL) {
		if (c->cnt_floor > 0) {
			fail(cx, F_LOST,
			    "%s: counter c%d:counter is missing; "
			    "its set of %" PRIu64 " was acknowledged",
			    cx->where, c->id, c->cnt_floor);
			c->cnt_floor = 0;
		}
		return;
	}
	if (parse_u64(v, &val) == -1 || val == 0) {
		fail(cx, F_OTHER,
		    "%s: counter c%d:counter holds %s, not a "
		    "counter value",
		    cx->where, c->id, v);
		return;
	}
	if (val >= c->cnt_next) {
		fail(cx, F_OTHER,
		    "%s: counter c%d:counter holds %" PRIu64
		    ", never written (last sent %" PRIu64 ")",
		    cx->where, c->id, val, c->cnt_next - 1);
		return;
	}
	if (val < c->cnt_floor)
		fail(cx, F_LOST,
		    "%s: counter c%d:counter went back in time: "
		    "holds %" PRIu64 ", but the set of %" PRIu64 " was "
		    "acknowledged",
		    cx->where, c->id, val, c->cnt_floor);
	else if (val > c->cnt_floor)
		cx->observed++;
	c->cnt_floor = val;
}

/* Fetch and check a full batch. */
static int
kbatch_flush(struct crash *cx, struct kbatch *b)
{
	size_t i;
	int    rc = 0;

	if (b->len == 0)
		return 0;
	if (fetch_values(cx, b) == -1)
		rc = -1;
	else {
		for (i = 0; i < b->len; i++) {
			if (b->n[i] == COUNTER_N)
				check_counter(cx, b->client[i], b->values[i]);
			else
				check_key(
				    cx, b->client[i], b->n[i], b->values[i]);
			free(b->values[i]);
		}
	}
	b->len = 0;
	return rc;
}

static int
kbatch_add(struct crash *cx, struct kbatch *b, struct client *c, uint64_t n)
{
	size_t i = b->len;

	key_name(b->buf[i], sizeof(b->buf[i]), c->id, n);
	b->keys[i] = b->buf[i];
	b->client[i] = c;
	b->n[i] = n;
	if (++b->len == BATCH)
		return kbatch_flush(cx, b);
	return 0;
}

/* Run a query on the daemon or the database; rows as a JSON array. */
static json_t *
run_query(struct crash *cx, const char *sql, json_t *params)
{
	sqlite3_stmt *st = NULL;
	json_t	     *q, *reply = NULL, *rows, *row;
	size_t	      i;
	int	      rc, k, ncol;

	if (cx->sq == NULL) {
		q = json_pack("{s:s, s:s, s:o}", "op", "query", "sql", sql,
		    "params", params);
		if (q == NULL)
			die("out of memory");
		rc = stash_request(cx->vh, q, &reply);
		json_decref(q);
		rows = json_object_get(reply, "rows");
		if (rc != STASH_OK || !json_is_array(rows)) {
			fail(cx, F_OTHER, "%s: query %s failed: %s", cx->where,
			    sql,
			    rc != STASH_OK ? stash_errmsg(cx->vh)
					   : "no rows in the answer");
			json_decref(reply);
			return NULL;
		}
		json_incref(rows);
		json_decref(reply);
		return rows;
	}
	if (sqlite3_prepare_v2(cx->sq, sql, -1, &st, NULL) != SQLITE_OK) {
		fail(cx, F_OTHER, "%s: %s: %s", cx->where, sql,
		    sqlite3_errmsg(cx->sq));
		json_decref(params);
		return NULL;
	}
	for (i = 0; i < json_array_size(params); i++)
		sqlite3_bind_int64(st, (int)i + 1,
		    json_integer_value(json_array_get(params, i)));
	json_decref(params);
	if ((rows = json_array()) == NULL)
		die("out of memory");
	ncol = sqlite3_column_count(st);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((row = json_array()) == NULL)
			die("out of memory");
		for (k = 0; k < ncol; k++)
			json_array_append_new(
			    row, json_integer(sqlite3_column_int64(st, k)));
		json_array_append_new(rows, row);
	}
	if (rc != SQLITE_DONE) {
		fail(cx, F_OTHER, "%s: %s: %s", cx->where, sql,
		    sqlite3_errmsg(cx->sq));
		json_decref(rows);
		rows = NULL;
	}
	sqlite3_finalize(st);
	return rows;
}

/* Row (i, j) of a query result as an integer. */
static uint64_t
cell(json_t *rows, size_t i, size_t j)
{
	return (uint64_t)json_integer_value(
	    json_array_get(json_array_get(rows, i), j));
}

/* Check rows (c, n) for lo <= n < hi: each acknowledged one is there. */
static int
check_rows(struct crash *cx, struct client *c, uint64_t lo, uint64_t hi)
{
	json_t	*rows;
	uint64_t n, cnt;
	size_t	 i;

	for (; lo < hi; lo += ROW_SPAN) {
		uint64_t top = hi - lo > ROW_SPAN ? lo + ROW_SPAN : hi;

		rows = run_query(cx,
		    "SELECT n, count(*) FROM rows WHERE "
		    "client = ? AND n >= ? AND n < ? GROUP BY n",
		    json_pack(
			"[i, I, I]", c->id, (json_int_t)lo, (json_int_t)top));
		if (rows == NULL)
			return -1;
		memset(cx->counts, 0, ROW_SPAN * sizeof(*cx->counts));
		for (i = 0; i < json_array_size(rows); i++) {
			n = cell(rows, i, 0);
			cnt = cell(rows, i, 1);
			if (n < lo || n >= top) {
				fail(cx, F_OTHER,
				    "%s: row query for client "
				    "%d, n in [%" PRIu64 ", %" PRIu64 ") "
				    "answered n %" PRIu64,
				    cx->where, c->id, lo, top, n);
				continue;
			}
			cx->counts[n - lo] = (uint32_t)cnt;
		}
		json_decref(rows);
		for (n = lo; n < top; n++) {
			cnt = cx->counts[n - lo];
			if (cnt == 0) {
				if (bits_get(&c->r_acked, n)) {
					fail(cx, F_LOST,
					    "%s: row (client %d, "
					    "n %" PRIu64 ") is missing; its "
					    "insert (durability %s) was "
					    "acknowledged",
					    cx->where, c->id, n,
					    durability_name(row_durability(n)));
					bits_clear(&c->r_acked, n);
				} else if (!bits_get(&c->r_gone, n))
					cx->vanished++;
				bits_set(&c->r_gone, n);
			} else if (bits_get(&c->r_gone, n)) {
				fail(cx, F_OTHER,
				    "%s: row (client %d, n %" PRIu64
				    ") came back: its insert was never "
				    "acknowledged and it was absent after an "
				    "earlier restart",
				    cx->where, c->id, n);
				bits_clear(&c->r_gone, n);
				bits_set(&c->r_acked, n);
			} else if (!bits_get(&c->r_acked, n)) {
				bits_set(&c->r_acked, n);
				cx->observed++;
			}
			/* More than one: reported by check_dups(). */
		}
	}
	return 0;
}

/* No (client, n) more than once in the whole table, none never sent. */
static int
check_dups(struct crash *cx)
{
	struct client *c;
	json_t	      *rows;
	uint64_t       id, n, cnt;
	size_t	       i;

	rows = run_query(cx,
	    "SELECT client, n, count(*) c FROM rows "
	    "GROUP BY client, n HAVING c > 1",
	    json_array());
	if (rows == NULL)
		return -1;
	for (i = 0; i < json_array_size(rows); i++) {
		id = cell(rows, i, 0);
		n = cell(rows, i, 1);
		cnt = cell(rows, i, 2);
		if (id >= (uint64_t)cx->nclients) {
			fail(cx, F_DUP,
			    "%s: row (client %" PRIu64 ", n %" PRIu64
			    ") is there %" PRIu64 " times, and no "
			    "such client ever wrote",
			    cx->where, id, n, cnt);
			continue;
		}
		c = &cx->clients[id];
		if (bits_get(&c->r_dup, n))
			continue;
		bits_set(&c->r_dup, n);
		fail(cx, F_DUP,
		    "%s: row (client %" PRIu64 ", n %" PRIu64
		    ") is there %" PRIu64 " times; it was inserted once "
		    "(durability %s, %s)",
		    cx->where, id, n, cnt, durability_name(row_durability(n)),
		    bits_get(&c->r_acked, n) ? "acknowledged"
					     : "answer never received");
	}
	json_decref(rows);

	rows = run_query(cx,
	    "SELECT client, max(n) FROM rows GROUP BY "
	    "client",
	    json_array());
	if (rows == NULL)
		return -1;
	for (i = 0; i < json_array_size(rows); i++) {
		id = cell(rows, i, 0);
		n = cell(rows, i, 1);
		if (id >= (uint64_t)cx->nclients || n >= cx->clients[id].r_next)
			fail(cx, F_OTHER,
			    "%s: row (client %" PRIu64 ", n %" PRIu64
			    ") was never inserted",
			    cx->where, id, n);
	}
	json_decref(rows);
	return 0;
}

/*
 * Check the ledger against the daemon (cx->vh) or the database (cx->sq):
 * everything when full, else what this cycle wrote and a sample.
 */
static int
check_all(struct crash *cx, int full)
{
	struct kbatch *b = cx->kb;
	struct client *c;
	uint64_t       n, k;
	int	       i;

	b->len = 0;
	for (i = 0; i < cx->nclients; i++)
		if (kbatch_add(cx, b, &cx->clients[i], COUNTER_N) == -1)
			return -1;
	for (i = 0; i < cx->nclients; i++) {
		c = &cx->clients[i];
		for (n = full ? 0 : c->k_checked; n < c->k_next; n++)
			if (kbatch_add(cx, b, c, n) == -1)
				return -1;
	}
	if (!full) {
		for (k = 0; k < SAMPLE; k++) {
			c = &cx->clients[rng_next(cx) % (uint64_t)cx->nclients];
			if (c->k_checked == 0)
				continue;
			if (kbatch_add(cx, b, c, rng_next(cx) % c->k_checked) ==
			    -1)
				return -1;
		}
	}
	if (kbatch_flush(cx, b) == -1)
		return -1;
	for (i = 0; i < cx->nclients; i++) {
		c = &cx->clients[i];
		c->k_checked = c->k_next;
		if (check_rows(cx, c, full ? 0 : c->r_checked, c->r_next) == -1)
			return -1;
		c->r_checked = c->r_next;
	}
	return check_dups(cx);
}

/* Connect for checking, sync, and check; 0 or -1. */
static int
check_daemon(struct crash *cx, int full)
{
	json_t *q, *reply = NULL, *j;
	int	rc;

	if ((cx->vh = stash_connect(cx->sock)) == NULL) {
		fail(cx, F_OTHER, "%s: cannot connect: %s", cx->where,
		    strerror(errno));
		return -1;
	}
	stash_set_timeout(cx->vh, VERIFY_TIMEOUT_MS);
	if ((q = json_pack("{s:s}", "op", "sync")) == NULL)
		die("out of memory");
	rc = stash_request(cx->vh, q, &reply);
	json_decref(q);
	j = json_object_get(reply, "applied_seq");
	if (rc != STASH_OK || !json_is_integer(j))
		fail(cx, F_OTHER, "%s: sync failed: %s", cx->where,
		    rc != STASH_OK ? stash_errmsg(cx->vh) : "no applied_seq");
	else if ((uint64_t)json_integer_value(j) < cx->seq_floor)
		fail(cx, F_LOST,
		    "%s: sync answers applied_seq %" JSON_INTEGER_FORMAT
		    ", below %" PRIu64 ", the highest seq acknowledged before "
		    "the kill",
		    cx->where, json_integer_value(j), cx->seq_floor);
	json_decref(reply);
	rc = check_all(cx, full);
	stash_close(cx->vh);
	cx->vh = NULL;
	return rc;
}

/* After the SIGTERM: the database file itself. */
static void
check_database(struct crash *cx)
{
	sqlite3_stmt *st;
	uint64_t      maxv = 0;
	int	      rc;

	snprintf(cx->where, sizeof(cx->where), "in the database after SIGTERM");
	power_cut(cx); /* a clean stop leaves nothing unsynced */
	if (sqlite3_open_v2(cx->db, &cx->sq, SQLITE_OPEN_READWRITE, NULL) !=
	    SQLITE_OK) {
		fail(cx, F_OTHER, "cannot open %s: %s", cx->db,
		    cx->sq != NULL ? sqlite3_errmsg(cx->sq) : "no memory");
		sqlite3_close(cx->sq);
		cx->sq = NULL;
		return;
	}
	sqlite3_busy_timeout(cx->sq, 10000);

	snprintf(cx->integrity, sizeof(cx->integrity), "not run");
	if (sqlite3_prepare_v2(
		cx->sq, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK) {
		size_t off = 0;

		cx->integrity[0] = '\0';
		while (sqlite3_step(st) == SQLITE_ROW &&
		       off < sizeof(cx->integrity) - 1)
			off += (size_t)snprintf(cx->integrity + off,
			    sizeof(cx->integrity) - off, "%s%s",
			    off > 0 ? "; " : "",
			    (const char *)sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
	}
	if (strcmp(cx->integrity, "ok") != 0)
		fail(cx, F_DAEMON, "PRAGMA integrity_check: %s", cx->integrity);

	rc = sqlite3_prepare_v2(cx->sq,
	    "SELECT value FROM stash_meta WHERE "
	    "name = 'applied_seq'",
	    -1, &st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		cx->applied_seq = (uint64_t)sqlite3_column_int64(st, 0);
	else
		fail(cx, F_OTHER, "no applied_seq in stash_meta: %s",
		    sqlite3_errmsg(cx->sq));
	sqlite3_finalize(st);
	rc = sqlite3_prepare_v2(
	    cx->sq, "SELECT max(version) FROM stash_kv", -1, &st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		maxv = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (cx->applied_seq < cx->seq_floor)
		fail(cx, F_LOST,
		    "stash_meta applied_seq is %" PRIu64 ", below "
		    "%" PRIu64 ", the highest seq acknowledged",
		    cx->applied_seq, cx->seq_floor);
	if (cx->applied_seq < maxv)
		fail(cx, F_OTHER,
		    "stash_meta applied_seq is %" PRIu64 ", below "
		    "the highest version in stash_kv, %" PRIu64,
		    cx->applied_seq, maxv);

	check_all(cx, 1);
	sqlite3_close(cx->sq);
	cx->sq = NULL;
}

/* --- the run -------------------------------------------------------------- */

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: test_crash [options]\n"
	    "\n"
	    "The kill test of stashd: clients write, stashd is SIGKILLed at a "
	    "random\n"
	    "moment, restarted on the same database and journal, and every "
	    "write\n"
	    "acknowledged before the kill is checked: none lost, none applied "
	    "twice,\n"
	    "no read older than an acknowledged write. At the end stashd must "
	    "exit 0\n"
	    "on SIGTERM and the database must pass PRAGMA integrity_check.\n"
	    "\n"
	    "Without options: the short run of make check (64 clients, 10 "
	    "cycles,\n"
	    "kills 100..700 ms apart). With any option but the two modes "
	    "below: the\n"
	    "soak, whose defaults are the values in brackets.\n"
	    "\n"
	    "  --clients N       concurrent clients, one connection each [64]\n"
	    "  --cycles N        kill and restart cycles [300]\n"
	    "  --seed S          seed of the delays and samples [time]\n"
	    "  --min-ms MS       shortest run before a kill [20]\n"
	    "  --max-ms MS       longest run before a kill [800]\n"
	    "  --window N        requests in flight per client, 1..%d [4]\n"
	    "  --daemon-arg ARG  pass ARG to stashd (repeat for several)\n"
	    "  --keep            keep the folder (database, journal, log)\n"
	    "  --crash-points    instead of the SIGKILL, the daemon kills "
	    "itself at\n"
	    "                    a crash point (daemon/crashpoint.h), one "
	    "point "
	    "per\n"
	    "                    cycle in turn, at a random hit; the "
	    "\"replay\" cycles\n"
	    "                    crash two replays in a row after it. Needs a "
	    "stashd\n"
	    "                    built with them: $STASHD_CRASHPOINTS, else "
	    "$STASHD;\n"
	    "                    exits 77 when it has none. Alone: %d "
	    "cycles\n"
	    "                    (each point 3 times)\n"
	    "  --power-loss      after each death of the daemon (and after the "
	    "last\n"
	    "                    SIGTERM), a power cut: every file goes back "
	    "to its\n"
	    "                    last fsync, files created since their "
	    "folder's last\n"
	    "                    fsync go (the daemon runs under "
	    "$FAULTFS_SO,\n"
	    "                    tests/faultfs.c, which records the syncs)\n"
	    "  -h, --help        this help\n"
	    "\n"
	    "Environment: STASHD (the daemon, ./stashd), TESTS_TMPDIR (where "
	    "the\n"
	    "folder goes, /tmp), STASHD_WRAPPER (run the daemon through it).\n"
	    "Prints a line per cycle, a summary, then \"N passed, M failed\" "
	    "(cycles\n"
	    "plus the final checks); exits 0 when nothing failed, 1 "
	    "otherwise.\n",
	    WINDOW_MAX, 3 * NPOINTS);
}

static int
parse_int(const char *name, const char *s, int lo, int hi)
{
	char *end;
	long  v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || v < lo || v > hi)
		die("%s must be an integer in %d..%d, not \"%s\"", name, lo, hi,
		    s);
	return (int)v;
}

static void
options(struct crash *cx, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"clients", required_argument, NULL, 'c'},
	    {"cycles", required_argument, NULL, 'n'},
	    {"seed", required_argument, NULL, 'S'},
	    {"min-ms", required_argument, NULL, 'a'},
	    {"max-ms", required_argument, NULL, 'b'},
	    {"window", required_argument, NULL, 'w'},
	    {"daemon-arg", required_argument, NULL, 'D'},
	    {"keep", no_argument, NULL, 'k'}, {"help", no_argument, NULL, 'h'},
	    {"crash-points", no_argument, NULL, 'P'},
	    {"power-loss", no_argument, NULL, 'L'}, {NULL, 0, NULL, 0}};
	char *end;
	int   ch, seeded = 0, i, modes = 0;

	/* A mode alone is still the short run of that mode. */
	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], "--crash-points") == 0) {
			cx->crashpoints = 1;
			modes++;
		} else if (strcmp(argv[i], "--power-loss") == 0) {
			cx->powerloss = 1;
			modes++;
		}
	cx->soak = argc - modes > 1;
	cx->nclients = 64;
	cx->cycles = cx->soak ? 300 : cx->crashpoints ? 3 * NPOINTS : 10;
	cx->min_ms = cx->soak ? 20 : 100;
	cx->max_ms = cx->soak ? 800 : 700;
	cx->window = 4;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			cx->nclients =
			    parse_int("--clients", optarg, 1, CLIENTS_MAX);
			break;
		case 'n':
			cx->cycles = parse_int("--cycles", optarg, 1, 1000000);
			break;
		case 'S':
			errno = 0;
			cx->seed = strtoull(optarg, &end, 0);
			if (errno != 0 || *end != '\0' || end == optarg)
				die("--seed must be an integer");
			seeded = 1;
			break;
		case 'a':
			cx->min_ms = parse_int("--min-ms", optarg, 0, 3600000);
			break;
		case 'b':
			cx->max_ms = parse_int("--max-ms", optarg, 0, 3600000);
			break;
		case 'w':
			cx->window =
			    parse_int("--window", optarg, 1, WINDOW_MAX);
			break;
		case 'D':
			if (cx->ndaemon_args == DAEMON_ARGS_MAX)
				die("at most %d --daemon-arg", DAEMON_ARGS_MAX);
			cx->daemon_args[cx->ndaemon_args++] = optarg;
			break;
		case 'k': cx->keep = 1; break;
		case 'P':
		case 'L': break; /* seen above */
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind < argc)
		die("unexpected argument \"%s\" (see --help)", argv[optind]);
	if (cx->max_ms < cx->min_ms)
		die("--max-ms must not be under --min-ms");
	if (!seeded) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		cx->seed = (uint64_t)ts.tv_sec * 1000003u ^
			   (uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 32;
	}
	cx->rng = cx->seed * 0x9E3779B97F4A7C15ULL | 1;
}

/* The folder, the daemon's first start, the table. */
static void
setup(struct crash *cx)
{
	const char		*tmp = getenv("TESTS_TMPDIR");
	json_t			*q, *reply = NULL;
	stash_t			*h;
	int			 i, rc;
	static const char *const ddl[] = {
	    "CREATE TABLE IF NOT EXISTS rows(client INTEGER NOT NULL, "
	    "n INTEGER NOT NULL)",
	    /* Not unique: a twice applied insert must show as two rows. */
	    "CREATE INDEX IF NOT EXISTS rows_client_n ON rows(client, n)",
	};

	if (cx->crashpoints && getenv("STASHD_CRASHPOINTS") != NULL)
		cx->bin = getenv("STASHD_CRASHPOINTS");
	else if ((cx->bin = getenv("STASHD")) == NULL)
		cx->bin = "./stashd";
	if (cx->crashpoints) {
		/* Segments rotate and go often: their points are reached. */
		if (cx->ndaemon_args + 2 > DAEMON_ARGS_MAX)
			die("too many --daemon-arg with --crash-points");
		cx->daemon_args[cx->ndaemon_args++] = "--segment-size";
		cx->daemon_args[cx->ndaemon_args++] = "64KB";
		/* A point no code has: armed, never reached. */
		snprintf(cx->crash_env, sizeof(cx->crash_env), "none:1");
	}
	if (access(cx->bin, X_OK) == -1)
		die("%s: %s (set STASHD)", cx->bin, strerror(errno));
	snprintf(cx->dir, sizeof(cx->dir), "%s/tmp.crash.XXXXXX",
	    tmp != NULL ? tmp : "/tmp");
	if (mkdtemp(cx->dir) == NULL)
		die("mkdtemp %s: %s", cx->dir, strerror(errno));
	snprintf(cx->sock, sizeof(cx->sock), "%s/s.sock", cx->dir);
	snprintf(cx->db, sizeof(cx->db), "%s/stash.db", cx->dir);
	snprintf(cx->log, sizeof(cx->log), "%s/stashd.log", cx->dir);
	snprintf(cx->plog, sizeof(cx->plog), "%s/faultfs.rec", cx->dir);
	if (cx->powerloss && ((cx->faultfs = getenv("FAULTFS_SO")) == NULL ||
				 access(cx->faultfs, R_OK) == -1))
		die("--power-loss needs FAULTFS_SO, the path of the shim "
		    "tests/.libs/faultfs.so");

	if ((cx->clients = calloc(
		 (size_t)cx->nclients, sizeof(*cx->clients))) == NULL ||
	    (cx->ready_ms = calloc(
		 (size_t)cx->cycles, sizeof(*cx->ready_ms))) == NULL ||
	    (cx->counts = calloc(ROW_SPAN, sizeof(*cx->counts))) == NULL ||
	    (cx->kb = calloc(1, sizeof(*cx->kb))) == NULL)
		die("out of memory");
	for (i = 0; i < cx->nclients; i++) {
		cx->clients[i].cx = cx;
		cx->clients[i].id = i;
		cx->clients[i].cnt_next = 1;
	}

	snprintf(cx->where, sizeof(cx->where), "first start");
	if (daemon_up(cx) < 0)
		die("stashd does not start; see %s", cx->log);
	if (cx->crashpoints && !log_has(cx, "crash point armed")) {
		char cmd[600];

		kill(cx->pid, SIGKILL);
		waitpid(cx->pid, NULL, 0);
		daemon_gone(cx);
		printf("SKIP: %s has no crash points (./configure "
		       "--enable-crash-points, or make check's "
		       "tests/stashd-crashpoints in STASHD_CRASHPOINTS)\n",
		    cx->bin);
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", cx->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", cx->dir);
		exit(77);
	}
	cx->crash_env[0] = '\0';
	if ((h = stash_connect(cx->sock)) == NULL)
		die("cannot connect to %s: %s", cx->sock, strerror(errno));
	stash_set_timeout(h, VERIFY_TIMEOUT_MS);
	for (i = 0; i < (int)(sizeof(ddl) / sizeof(ddl[0])); i++) {
		q = json_pack("{s:s, s:s, s:s}", "op", "exec", "sql", ddl[i],
		    "durability", "commit");
		if (q == NULL)
			die("out of memory");
		rc = stash_request(h, q, &reply);
		json_decref(q);
		json_decref(reply);
		if (rc != STASH_OK) {
			log_tail(cx);
			die("%s: %s (folder %s)", ddl[i], stash_errmsg(h),
			    cx->dir);
		}
	}
	stash_close(h);
}

/*
 * --crash-points: stop the daemon of the last check (it must exit 0), and
 * start it again with the cycle's point armed at a random count.
 */
static int
point_arm(struct crash *cx, int cycle, const struct cpoint *p)
{
	char st_text[64];
	int  status;

	snprintf(cx->where, sizeof(cx->where), "cycle %d, stop", cycle);
	if ((status = daemon_term(cx)) != 0) {
		if (status == -1)
			snprintf(st_text, sizeof(st_text), "no exit");
		else
			status_text(status, st_text, sizeof(st_text));
		fail(cx, F_DAEMON, "cycle %d: stashd on SIGTERM: %s", cycle,
		    st_text);
		log_tail(cx);
	}
	snprintf(cx->crash_env, sizeof(cx->crash_env), "%s:%u", p->armed,
	    1 + (unsigned)(rng_next(cx) % p->max_hit));
	snprintf(cx->where, sizeof(cx->where), "cycle %d, armed %s", cycle,
	    cx->crash_env);
	return daemon_up(cx) < 0 ? -1 : 0;
}

/* Wait for the daemon to die of its armed point; kill it if it does not. */
static void
point_wait(struct crash *cx, int cycle)
{
	char   st_text[64];
	double t0 = now_s();
	int    status;

	while (waitpid(cx->pid, &status, WNOHANG) != cx->pid) {
		if (now_s() - t0 > POINT_TIMEOUT_MS / 1000.0) {
			fail(cx, F_DAEMON,
			    "cycle %d: crash point %s not reached "
			    "in %d s",
			    cycle, cx->crash_env, POINT_TIMEOUT_MS / 1000);
			daemon_sigkill(cx, cycle);
			return;
		}
		sleep_ms(5);
	}
	daemon_gone(cx);
	if (crashed_as_armed(cx, status)) {
		cx->points_hit++;
		return;
	}
	status_text(status, st_text, sizeof(st_text));
	fail(cx, F_DAEMON, "cycle %d: armed %s, stashd ended with %s", cycle,
	    cx->crash_env, st_text);
	log_tail(cx);
}

/*
 * The point's further crashes: start with the replay armed at its first
 * record, p->replays times; each start must die there, before it accepts.
 */
static int
point_replays(struct crash *cx, int cycle, const struct cpoint *p)
{
	int r;

	for (r = 1; r <= p->replays; r++) {
		snprintf(cx->crash_env, sizeof(cx->crash_env), "replay:1");
		snprintf(cx->where, sizeof(cx->where),
		    "cycle %d, replay crash %d", cycle, r);
		switch ((int)daemon_up(cx)) {
		case -2: cx->replays_hit++; break;
		case -1: return -1;
		default:
			fail(cx, F_DAEMON,
			    "%s: stashd started without replaying "
			    "a record: the crash in its replay was not reached",
			    cx->where);
			daemon_sigkill(cx, cycle);
			break;
		}
	}
	return 0;
}

/* One cycle: write, kill, restart, check. 0, or -1 when it cannot go on. */
static int
cycle_run(struct crash *cx, int cycle, uint64_t *acked_before)
{
	const struct cpoint *point = NULL;
	struct client	    *c, *first = NULL;
	uint64_t	     acked = 0, records = 0, seq = cx->seq_floor;
	unsigned long	     fails0 = fail_total(cx);
	double		     ready, secs = 0, t0;
	int		     i, delay, full, replayed, nlost = 0;

	if (cx->crashpoints) {
		point = &cpoints[(cycle - 1) % NPOINTS];
		if (point_arm(cx, cycle, point) == -1)
			return -1;
	}
	/* With a crash point armed, the daemon may go at any moment. */
	__atomic_store_n(&cx->killed, cx->crashpoints, __ATOMIC_SEQ_CST);
	for (i = 0; i < cx->nclients; i++)
		cx->clients[i].lost_early = 0;
	t0 = now_s();
	for (i = 0; i < cx->nclients; i++)
		if ((errno = pthread_create(&cx->clients[i].thread, NULL,
			 client_main, &cx->clients[i])) != 0)
			die("pthread_create: %s", strerror(errno));
	if (cx->crashpoints)
		point_wait(cx, cycle);
	else {
		delay =
		    cx->min_ms + (int)(rng_next(cx) %
				       (uint64_t)(cx->max_ms - cx->min_ms + 1));
		sleep_ms(delay);
		daemon_sigkill(cx, cycle);
	}
	delay = (int)((now_s() - t0) * 1000);
	for (i = 0; i < cx->nclients; i++)
		pthread_join(cx->clients[i].thread, NULL);

	for (i = 0; i < cx->nclients; i++) {
		c = &cx->clients[i];
		acked += c->acks;
		if (c->max_seq > seq)
			seq = c->max_seq;
		if (c->lost_early && nlost++ == 0)
			first = c;
	}
	cx->seq_floor = seq;
	if (nlost > 0)
		fail(cx, F_DAEMON,
		    "cycle %d: %d of %d clients lost their "
		    "connection while stashd was running; first: %s",
		    cycle, nlost, cx->nclients, first->lost_msg);

	if (point != NULL && point->replays > 0 &&
	    point_replays(cx, cycle, point) == -1)
		return -1;
	snprintf(cx->where, sizeof(cx->where), "after cycle %d", cycle);
	cx->crash_env[0] = '\0';
	if ((ready = daemon_up(cx)) < 0)
		return -1;
	cx->ready_ms[cx->nready++] = ready;
	if ((replayed = log_replay(cx, &records, &secs)) != 0) {
		cx->replayed_total += records;
		if (secs > cx->replay_max_s)
			cx->replay_max_s = secs;
		if (secs > 0 && records / secs > cx->replay_best_rate)
			cx->replay_best_rate = records / secs;
	}

	full = cycle == cx->cycles || cycle % FULL_EVERY == 0 ||
	       acked < FULL_LIMIT;
	if (check_daemon(cx, full) == -1)
		return -1;

	pthread_mutex_lock(&cx->lock);
	printf("cycle %d/%d: %s%s%s after %d ms, %" PRIu64 " acknowledged "
	       "writes so far (+%" PRIu64 "), lost %lu, duplicates %lu, "
	       "stale %lu, daemon %lu, other %lu; ready in %.1f ms",
	    cycle, cx->cycles, point != NULL ? "crash point " : "killed",
	    point != NULL ? point->name : "",
	    point != NULL && point->replays > 0 ? " (twice in replay)" : "",
	    delay, acked, acked - *acked_before, cx->fails[F_LOST],
	    cx->fails[F_DUP], cx->fails[F_STALE], cx->fails[F_DAEMON],
	    cx->fails[F_OTHER], ready);
	pthread_mutex_unlock(&cx->lock);
	if (replayed)
		printf(", replayed %" PRIu64 " records in %.3f s (%.0f "
		       "records/s)",
		    records, secs, secs > 0 ? records / secs : 0.0);
	else
		printf(", nothing replayed");
	if (cx->powerloss) {
		printf(", power cut took %" PRIu64 " bytes and files",
		    power_taken(cx) - cx->pl_taken);
		cx->pl_taken = power_taken(cx);
	}
	printf("%s%s\n", full ? ", checked in full" : "",
	    fail_total(cx) != fails0 ? "  FAILED" : "");
	fflush(stdout);
	*acked_before = acked;
	return 0;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void
summary(struct crash *cx, int cycles_done)
{
	uint64_t acks = 0, k = 0, cnt = 0, rows = 0, gets = 0, busy = 0;
	int	 i;

	for (i = 0; i < cx->nclients; i++) {
		acks += cx->clients[i].acks;
		k += cx->clients[i].acks_key;
		cnt += cx->clients[i].acks_cnt;
		rows += cx->clients[i].acks_row;
		gets += cx->clients[i].gets;
		busy += cx->clients[i].busy;
	}
	qsort(cx->ready_ms, (size_t)cx->nready, sizeof(double), cmp_double);
	printf("\nsummary (seed %" PRIu64 ", %d clients, window %d, kills "
	       "%d..%d ms)\n",
	    cx->seed, cx->nclients, cx->window, cx->min_ms, cx->max_ms);
	printf("  %-28s %d of %d\n", "cycles", cycles_done, cx->cycles);
	printf("  %-28s %" PRIu64 " (keys %" PRIu64 ", counters %" PRIu64
	       ", rows %" PRIu64 ")\n",
	    "acknowledged writes", acks, k, cnt, rows);
	printf("  %-28s %" PRIu64 " present, %" PRIu64 " absent\n",
	    "unanswered writes found", cx->observed, cx->vanished);
	printf("  %-28s %" PRIu64 "\n", "in-run counter gets checked", gets);
	printf("  %-28s %" PRIu64 "\n", "writes answered busy", busy);
	printf("  %-28s %lu\n", "lost", cx->fails[F_LOST]);
	printf("  %-28s %lu\n", "duplicated", cx->fails[F_DUP]);
	printf("  %-28s %lu\n", "stale", cx->fails[F_STALE]);
	printf("  %-28s %lu\n", "daemon failures", cx->fails[F_DAEMON]);
	printf("  %-28s %lu\n", "other failures", cx->fails[F_OTHER]);
	if (cx->crashpoints)
		printf("  %-28s %" PRIu64 " of %d cycles, and %" PRIu64
		       " replays\n",
		    "crash points reached", cx->points_hit, cycles_done,
		    cx->replays_hit);
	if (cx->powerloss)
		printf("  %-28s %" PRIu64 " unsynced bytes put back, %" PRIu64
		       " cut off, %u files and %u folders dropped, in %u "
		       "files; %u syncs seen\n",
		    "power cuts", cx->pls.bytes_undone, cx->pls.bytes_cut,
		    cx->pls.files_dropped, cx->pls.dirs_dropped,
		    cx->pls.files_rewound, cx->pls.syncs);
	printf("  %-28s %s\n", "integrity_check",
	    cx->integrity[0] != '\0' ? cx->integrity : "not run");
	printf("  %-28s %" PRIu64 " (highest acknowledged seq %" PRIu64 ")\n",
	    "applied_seq at the end", cx->applied_seq, cx->seq_floor);
	printf("  %-28s %s\n", "exit on SIGTERM",
	    cx->stop_status == 0 ? "0" : "FAILED");
	if (cx->nready > 0)
		printf("  %-28s min %.1f, median %.1f, max %.1f\n",
		    "restart-to-ready (ms)", cx->ready_ms[0],
		    cx->ready_ms[cx->nready / 2], cx->ready_ms[cx->nready - 1]);
	printf("  %-28s %" PRIu64 " records, longest %.3f s, best %.0f "
	       "records/s\n",
	    "journal replay", cx->replayed_total, cx->replay_max_s,
	    cx->replay_best_rate);
}

int
main(int argc, char **argv)
{
	struct crash  cx;
	char	      st_text[64];
	uint64_t      acked = 0;
	int	      cycle, done = 0, passed = 0, failed = 0, i;
	unsigned long f0;

	memset(&cx, 0, sizeof(cx));
	pthread_mutex_init(&cx.lock, NULL);
	options(&cx, argc, argv);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	setvbuf(stdout, NULL, _IOLBF, 0);
	setup(&cx);
	printf("test_crash: %s run, seed %" PRIu64 ", %d clients, %d cycles, "
	       "folder %s\n",
	    cx.soak ? "soak" : "short", cx.seed, cx.nclients, cx.cycles,
	    cx.dir);

	for (cycle = 1; cycle <= cx.cycles; cycle++) {
		f0 = fail_total(&cx);
		if (cycle_run(&cx, cycle, &acked) == -1) {
			failed++;
			break;
		}
		done++;
		if (fail_total(&cx) == f0)
			passed++;
		else
			failed++;
	}

	/* The end: a clean stop, then the database itself. */
	f0 = fail_total(&cx);
	cx.stop_status = -1;
	if (cx.pid > 0) {
		snprintf(cx.where, sizeof(cx.where), "at the end");
		cx.stop_status = daemon_term(&cx);
		if (cx.stop_status != 0) {
			if (cx.stop_status == -1)
				snprintf(st_text, sizeof(st_text),
				    "no exit within %d s",
				    STOP_TIMEOUT_MS / 1000);
			else
				status_text(
				    cx.stop_status, st_text, sizeof(st_text));
			fail(&cx, F_DAEMON,
			    "stashd on SIGTERM: %s, expected "
			    "exit 0",
			    st_text);
			log_tail(&cx);
		}
		check_database(&cx);
	}
	if (fail_total(&cx) == f0 && cx.stop_status == 0)
		passed++;
	else
		failed++;

	if (cx.powerloss && done > 0 && power_taken(&cx) == 0) {
		fail(&cx, F_OTHER,
		    "the power cuts never took anything away: "
		    "the shim saw no unsynced data, the run proves nothing");
		failed++;
	}
	summary(&cx, done);
	if (failed > 0 || cx.keep)
		printf("folder kept: %s (log %s)\n", cx.dir, cx.log);
	else {
		char cmd[600];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", cx.dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", cx.dir);
	}
	for (i = 0; i < cx.nclients; i++) {
		bits_free(&cx.clients[i].k_acked);
		bits_free(&cx.clients[i].k_gone);
		bits_free(&cx.clients[i].r_acked);
		bits_free(&cx.clients[i].r_gone);
		bits_free(&cx.clients[i].r_dup);
	}
	free(cx.clients);
	free(cx.ready_ms);
	free(cx.counts);
	free(cx.kb);
	pthread_mutex_destroy(&cx.lock);
	if (failed > 0)
		fprintf(stderr,
		    "test_crash: FAILED: %lu lost, %lu duplicated, "
		    "%lu stale, %lu daemon, %lu other; seed %" PRIu64 "\n",
		    cx.fails[F_LOST], cx.fails[F_DUP], cx.fails[F_STALE],
		    cx.fails[F_DAEMON], cx.fails[F_OTHER], cx.seed);
	printf("%d passed, %d failed\n", passed, failed);
	return failed > 0 ? 1 : 0;
}

/*
 * test_faults.c -- I/O errors and a full disk, injected under stashd by
 * tests/faultfs.c (LD_PRELOAD), then a power cut (tests/powerloss.c) and a
 * restart: what was acknowledged must all be there.
 *
 * Each case runs in a folder of its own:
 *
 *   start stashd under the shim, the fault armed but switched off
 *   write some keys (all must be acknowledged)
 *   switch the fault on (FAULTFS_SWITCH) and keep writing
 *   ... what the daemon must do depends on where the fault is:
 *
 *   the journal (a write, an fdatasync, the folder's fsync, the creation of
 *   a segment fails, once): no more writes are acknowledged; the client
 *   gets "unavailable" or the connection closes; stashd exits 1 (for
 *   systemd to restart it) and never retries an fsync to trust it: after
 *   the failed sync the shim sees no sync of that file at all;
 *
 *   SQLite's files (EIO or ENOSPC on every write while the switch is on):
 *   stashd stays up, answers "unavailable" to new writes within a second,
 *   retries the apply, and takes writes again once the fault is switched
 *   off;
 *
 *   the journal, full (ENOSPC on every write): stashd stops as above; a
 *   restart while the disk is still full starts (recovery needs no new
 *   space) and stops again at the first write; once space is back, the
 *   next restart takes writes.
 *
 *   memory (tests/failmalloc.c, preloaded too: the n-th malloc, calloc or
 *   realloc after the switch fails, n = 1..20, or every one from the 1st
 *   or the 50th): a request may get an error or its connection closed, and
 *   stashd may exit 1 (xmalloc's policy: out of memory in the daemon's own
 *   bookkeeping is fatal, the journal makes the restart safe), but it never
 *   dies of a signal nor answers a wrong value; if it runs on, it takes
 *   writes once memory is back. Skipped when stashd is built with a
 *   sanitizer or runs under valgrind, whose allocators the shim cannot
 *   sit under.
 *
 *   a power cut that keeps later unsynced writes of the journal and loses
 *   an earlier one (after async writes, each its own group, left to the
 *   timed sync): stashd starts by itself, without the lost write and the
 *   unsynced ones after it, with every write acknowledged as durable.
 *
 * Every case ends the same way: the daemon is dead (killed, or exited by
 * itself); a power cut takes away whatever no successful fsync covered;
 * stashd starts without faults; every acknowledged key holds its value;
 * a new write is acknowledged; SIGTERM exits 0. A fault the daemon never
 * reached fails the case: the test would prove nothing.
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"
#include "powerloss.h"

#define KEYS_MAX 20000
#define WARMUP	 50   /* writes before the fault is switched on */
#define PAD	 1000 /* bytes of padding: segments rotate often */
/*
 * Clients hear of the fault within error_s: ERROR_S, or ERROR_SLOW_S for
 * a daemon built with sanitizers or run under valgrind (several times
 * slower, and make check runs tests side by side).
 */
#define ERROR_S	     1.0
#define ERROR_SLOW_S 3.0
/* stashd's default apply-delay: SQLite is first tried this late. */
#define APPLY_DELAY_S 1.0
#define RESUME_S      10.0 /* writes resume within this once it is over */
#define EXIT_S	      10.0 /* a broken journal stops the daemon within this */
#define MSG_MAX	      512
#define VALGRIND                                                               \
	"valgrind -q --leak-check=full --errors-for-leak-kinds=definite "      \
	"--error-exitcode=99"

/* One case: its folder, its daemon, what was acknowledged. */
struct fx {
	const char	  *name;
	char		   dir[256];
	char		   db[320];
	char		   rec[320];
	char		   sw[320];
	struct daemon_proc d;
	int		   up;
	unsigned	   next; /* keys k0..k<next-1> were sent */
	unsigned char	   acked[KEYS_MAX];
	unsigned	   nacked;
	unsigned	   unavailable; /* answers "unavailable" */
	unsigned	   closed;	/* connections closed under us */
	int		   failed;
	char		   msg[MSG_MAX];
	const char	  *oom; /* FAILMALLOC of the next start, or NULL */
	char		   jdir[320]; /* --journal-dir, when not empty */
	const char *const *extra;     /* more arguments, NULL-terminated */
	/* The power cut: journal files lose only their oldest write. */
	int		       cut_oldest;
	struct powerloss_stats cut; /* what the last power cut did */
	/* Async writes k<async_first>..: not durable, but in order. */
	unsigned async_first, async_end;
	unsigned async_kept; /* of them, there after the restart */
};

static int    passes, fails;
static double error_s = ERROR_S;

static void fx_fail(struct fx *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static void
fx_fail(struct fx *f, const char *fmt, ...)
{
	va_list ap;

	if (f->failed++ > 0)
		return; /* the first reason is the one to read */
	va_start(ap, fmt);
	vsnprintf(f->msg, sizeof(f->msg), fmt, ap);
	va_end(ap);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
print_log(struct fx *f)
{
	char   buf[4096];
	size_t n;
	FILE  *fp;

	if ((fp = fopen(f->d.log, "r")) == NULL)
		return;
	fprintf(stderr, "--- %s: stashd's log\n", f->name);
	while ((n = fread(buf, 1, sizeof(buf), fp)) > 0)
		fwrite(buf, 1, n, stderr);
	fprintf(stderr, "---\n");
	fclose(fp);
}

static int
fx_init(struct fx *f, const char *name)
{
	const char *tmp = getenv("TESTS_TMPDIR");

	memset(f, 0, sizeof(*f));
	f->name = name;
	snprintf(f->dir, sizeof(f->dir), "%s/tmp.faults.XXXXXX",
	    tmp != NULL ? tmp : "/tmp");
	if (mkdtemp(f->dir) == NULL) {
		perror("mkdtemp");
		return -1;
	}
	snprintf(f->db, sizeof(f->db), "%s/stash.db", f->dir);
	snprintf(f->rec, sizeof(f->rec), "%s/faultfs.rec", f->dir);
	snprintf(f->sw, sizeof(f->sw), "%s/fault-on", f->dir);
	return 0;
}

/* Turn the armed fault on or off. */
static void
fx_switch(struct fx *f, int on)
{
	int fd;

	if (!on) {
		if (unlink(f->sw) == -1 && errno != ENOENT)
			fx_fail(f, "unlink %s: %s", f->sw, strerror(errno));
		return;
	}
	if ((fd = open(f->sw, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) == -1)
		fx_fail(f, "create %s: %s", f->sw, strerror(errno));
	else
		close(fd);
}

/*
 * A power cut (the daemon must be dead), then start stashd on the case's
 * database under the shim, with spec armed (NULL: no fault).
 */
static int
fx_start(struct fx *f, const char *spec)
{
	const char *so = getenv("FAULTFS_SO");
	const char *args[24] = {"-d", f->db, "--segment-size", "64KB"};
	struct powerloss_stats st;
	char		       err[512];
	size_t		       n = 4, i;
	int		       rc;

	if (f->jdir[0] != '\0') {
		args[n++] = "--journal-dir";
		args[n++] = f->jdir;
	}
	for (i = 0; f->extra != NULL && f->extra[i] != NULL &&
		    n < sizeof(args) / sizeof(args[0]) - 1;
	     i++)
		args[n++] = f->extra[i];
	args[n] = NULL;
	memset(&st, 0, sizeof(st));
	if ((f->cut_oldest
		    ? powerloss_apply_oldest(
			  f->rec, ".journal/", &st, err, sizeof(err))
		    : powerloss_apply(f->rec, &st, err, sizeof(err))) == -1) {
		fx_fail(f, "power cut: %s", err);
		return -1;
	}
	f->cut = st;
	if (f->d.dir[0] != '\0')
		daemon_cleanup(&f->d); /* the last start's socket and log */
	/* Only the daemon runs under the shim: set, fork, unset. */
	if (f->oom != NULL) {
		const char *fm = getenv("FAILMALLOC_SO");
		char	    pre[1024], cnt[400];

		snprintf(pre, sizeof(pre), "%s %s", so, fm);
		snprintf(cnt, sizeof(cnt), "%s/oom.count", f->dir);
		if (setenv("FAILMALLOC", f->oom, 1) == -1 ||
		    setenv("FAILMALLOC_SWITCH", f->sw, 1) == -1 ||
		    setenv("FAILMALLOC_COUNT", cnt, 1) == -1 ||
		    setenv("LD_PRELOAD", pre, 1) == -1) {
			fx_fail(f, "setenv: %s", strerror(errno));
			return -1;
		}
	} else if (setenv("LD_PRELOAD", so, 1) == -1) {
		fx_fail(f, "setenv: %s", strerror(errno));
		return -1;
	}
	if (setenv("FAULTFS_DIR", f->dir, 1) == -1 ||
	    setenv("FAULTFS_LOG", f->rec, 1) == -1 ||
	    setenv("FAULTFS_SWITCH", f->sw, 1) == -1 ||
	    setenv("ASAN_OPTIONS", "verify_asan_link_order=0", 1) == -1 ||
	    (spec != NULL ? setenv("FAULTFS_FAIL", spec, 1)
			  : unsetenv("FAULTFS_FAIL")) == -1) {
		fx_fail(f, "setenv: %s", strerror(errno));
		return -1;
	}
	rc = daemon_start(&f->d, args);
	unsetenv("LD_PRELOAD");
	unsetenv("FAULTFS_FAIL");
	unsetenv("FAILMALLOC");
	if (rc == -1) {
		fx_fail(f, "stashd did not start (%s)",
		    spec != NULL ? spec : "no fault");
		return -1;
	}
	f->up = 1;
	return 0;
}

/*
 * Wait up to secs for the daemon to exit by itself; its exit code, or -1
 * (still running: killed) or -2 (died of a signal: a crash).
 */
static int
fx_wait_exit(struct fx *f, double secs)
{
	double t0 = now_s();
	int    status;

	while (now_s() - t0 < secs) {
		if (waitpid(f->d.pid, &status, WNOHANG) == f->d.pid) {
			f->d.pid = 0;
			f->up = 0;
			if (WIFSIGNALED(status)) {
				fx_fail(f, "stashd died of signal %d",
				    WTERMSIG(status));
				print_log(f);
				return -2;
			}
			return WEXITSTATUS(status);
		}
		usleep(10000);
	}
	return -1;
}

static void
fx_kill(struct fx *f)
{
	if (f->up && f->d.pid > 0)
		daemon_kill(&f->d, SIGKILL);
	f->up = 0;
}

/*
 * Send one set (with durability dur, or the default: journal) and read
 * its answer: 1 acknowledged, 0 an error answer (its code in code), -1
 * the connection is gone. Only a durable write counts as acknowledged.
 */
static int
fx_set_dur(struct fx *f, int fd, const char *dur, char *code, size_t len)
{
	static char  pad[PAD + 1];
	json_error_t jerr;
	json_t	    *j, *e;
	char	     line[PAD + 128], *ans;
	unsigned     n = f->next;
	int	     rc;

	if (pad[0] == '\0')
		memset(pad, 'x', PAD);
	if (n >= KEYS_MAX) {
		fx_fail(f, "more than %d keys", KEYS_MAX);
		return -1;
	}
	f->next++;
	snprintf(line, sizeof(line),
	    "{\"op\":\"set\",\"key\":\"k%u\",\"value\":{\"n\":%u,"
	    "\"pad\":\"%s\"}%s%s%s}",
	    n, n, pad, dur != NULL ? ",\"durability\":\"" : "",
	    dur != NULL ? dur : "", dur != NULL ? "\"" : "");
	if ((ans = raw_roundtrip(fd, line)) == NULL) {
		f->closed++;
		return -1;
	}
	if ((j = json_loads(ans, 0, &jerr)) == NULL) {
		fx_fail(f, "set k%u: an answer that is not JSON: %s", n, ans);
		free(ans);
		return -1;
	}
	free(ans);
	if (json_is_true(json_object_get(j, "ok"))) {
		if (dur == NULL || strcmp(dur, "async") != 0) {
			f->acked[n] = 1;
			f->nacked++;
		}
		rc = 1;
	} else {
		e = json_object_get(json_object_get(j, "error"), "code");
		snprintf(code, len, "%s",
		    json_is_string(e) ? json_string_value(e) : "?");
		if (strcmp(code, "unavailable") == 0)
			f->unavailable++;
		rc = 0;
	}
	json_decref(j);
	return rc;
}

static int
fx_set(struct fx *f, int fd, char *code, size_t len)
{
	return fx_set_dur(f, fd, NULL, code, len);
}

/* The warm-up: WARMUP writes, every one acknowledged. */
static int
fx_warmup(struct fx *f, int fd)
{
	char code[64];
	int  i;

	for (i = 0; i < WARMUP; i++)
		if (fx_set(f, fd, code, sizeof(code)) != 1) {
			fx_fail(f, "warm-up write k%u not acknowledged",
			    f->next - 1);
			return -1;
		}
	return 0;
}

/*
 * After the faults: a power cut, a clean start, every acknowledged key
 * there with its value, one more write acknowledged, SIGTERM exits 0.
 */
static void
fx_verify(struct fx *f)
{
	json_t	*j, *v;
	char	 req[64], *ans, code[64];
	unsigned n, lost = 0, first = 0, gap = 0;
	int	 fd, rc, here;

	fx_kill(f);
	if (fx_start(f, NULL) == -1)
		return;
	if ((fd = raw_connect(f->d.sock)) == -1) {
		fx_fail(f, "cannot connect after the restart");
		return;
	}
	for (n = 0; n < f->next; n++) {
		if (!f->acked[n])
			continue;
		snprintf(
		    req, sizeof(req), "{\"op\":\"get\",\"key\":\"k%u\"}", n);
		ans = raw_roundtrip(fd, req);
		j = ans != NULL ? json_loads(ans, 0, NULL) : NULL;
		v = json_object_get(json_object_get(j, "value"), "n");
		if (!json_is_integer(v) || json_integer_value(v) != n) {
			if (lost++ == 0)
				first = n;
		}
		json_decref(j);
		free(ans);
	}
	if (lost > 0)
		fx_fail(f,
		    "%u of %u acknowledged keys lost or wrong after the "
		    "power cut and restart (first: k%u)",
		    lost, f->nacked, first);
	/*
	 * Async writes may be lost, but only from one on: a later one
	 * without an earlier one was replayed out of order.
	 */
	for (n = f->async_first; n < f->async_end; n++) {
		snprintf(
		    req, sizeof(req), "{\"op\":\"get\",\"key\":\"k%u\"}", n);
		ans = raw_roundtrip(fd, req);
		j = ans != NULL ? json_loads(ans, 0, NULL) : NULL;
		v = json_object_get(json_object_get(j, "value"), "n");
		here = json_is_integer(v) && json_integer_value(v) == n;
		json_decref(j);
		free(ans);
		if (here && gap > 0) {
			fx_fail(f,
			    "async k%u is there after the restart, but not "
			    "k%u before it",
			    n, gap);
			break;
		}
		if (here)
			f->async_kept++;
		else if (gap == 0)
			gap = n;
	}
	if ((rc = fx_set(f, fd, code, sizeof(code))) != 1)
		fx_fail(f, "a write after the recovery: %s",
		    rc == 0 ? code : "connection closed");
	close(fd);
	if ((rc = daemon_stop(&f->d)) != 0)
		fx_fail(f, "stashd on SIGTERM after the recovery: exit %d", rc);
	f->up = 0;
}

/* Close a case: print its line, remove its folder unless it failed. */
static void
fx_done(struct fx *f, const char *detail)
{
	char cmd[600];

	fx_kill(f);
	if (f->failed) {
		fails++;
		printf("FAIL %s: %s\n", f->name, f->msg);
		print_log(f);
		printf("     folder kept: %s\n", f->dir);
		return;
	}
	passes++;
	printf("ok   %s: %s\n", f->name, detail);
	daemon_cleanup(&f->d);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", f->dir);
}

/*
 * A fault in the journal, once: writes stop being acknowledged, the
 * daemon exits 1 for a restart, the failed sync is never retried.
 */
static void
case_journal(const char *op, unsigned nth, const char *err, const char *vg)
{
	struct powerloss_scan sc;
	struct fx	     *f = calloc(1, sizeof(*f));
	char		      name[96], spec[96], code[64], detail[256];
	unsigned	      after = 0, errors = 0;
	double		      t0;
	int		      fd = -1, rc, st;

	detail[0] = '\0';
	snprintf(name, sizeof(name), "journal %s fails with %s (call %u)%s", op,
	    err, nth, vg != NULL ? ", under valgrind" : "");
	snprintf(spec, sizeof(spec), "%s:journal:%u:%s", op, nth, err);
	if (f == NULL || fx_init(f, name) == -1) {
		fails++;
		free(f);
		return;
	}
	/* Under valgrind, exit 99 tells of a leak or an error on the way out.
	 */
	if (vg != NULL && (setenv("STASHD_WRAPPER", vg, 1) == -1 ||
			      setenv("STASHD_QPOOL", "malloc", 1) == -1))
		fx_fail(f, "setenv: %s", strerror(errno));
	rc = fx_start(f, spec);
	if (vg != NULL) {
		unsetenv("STASHD_WRAPPER");
		unsetenv("STASHD_QPOOL");
	}
	if (rc == -1 || (fd = raw_connect(f->d.sock)) == -1 ||
	    fx_warmup(f, fd) == -1)
		goto out;
	fx_switch(f, 1);
	t0 = now_s();
	/* Write until the daemon stops answering, for EXIT_S at most. */
	while (now_s() - t0 < EXIT_S) {
		rc = fx_set(f, fd, code, sizeof(code));
		if (rc == -1)
			break;
		if (rc == 1)
			after++;
		else if (strcmp(code, "unavailable") != 0) {
			fx_fail(
			    f, "a write answered %s, not unavailable", code);
			break;
		} else
			errors++;
	}
	if ((st = fx_wait_exit(f, EXIT_S)) == -1)
		fx_fail(f, "stashd still runs %.0f s after the journal failed",
		    EXIT_S);
	else if (st != 1 && st != -2)
		fx_fail(f, "stashd exited %d after the journal failed, not 1%s",
		    st,
		    st == 99 ? " (99: valgrind found a leak or an error)" : "");
	if (powerloss_scan(f->rec, &sc) == -1 || sc.faults == 0)
		fx_fail(f, "the fault was never reached");
	else if (sc.syncs_after > 0)
		fx_fail(f,
		    "%s was synced again after its failed %s: an fsync "
		    "retried and trusted",
		    sc.first_path, sc.first_op);
	snprintf(detail, sizeof(detail),
	    "hit %.60s; %u writes acknowledged after the switch (before the "
	    "failing call), then %u answered unavailable and the "
	    "connection closed; exit 1; nothing lost after a power cut",
	    strrchr(sc.first_path, '/') != NULL
		? strrchr(sc.first_path, '/') + 1
		: sc.first_path,
	    after, errors);
	close(fd);
	fd = -1;
	fx_switch(f, 0);
	fx_verify(f);
out:
	if (fd != -1)
		close(fd);
	fx_done(f, detail);
	free(f);
}

/*
 * While SQLite cannot take writes, a RESP transaction that writes is
 * queued but its EXEC answers -LOADING, nothing of it taken: a GET of its
 * key after the fault finds nothing.
 */
static void
resp_tx_unavailable(struct fx *f)
{
	static const char *const want[] = {"+OK\r", "+QUEUED\r", "+QUEUED\r",
	    "-LOADING the database cannot take writes now\r"};
	char			*line;
	size_t			 i;
	int			 fd;

	if ((fd = raw_connect(f->d.sock)) == -1) {
		fx_fail(f, "connect: %s", strerror(errno));
		return;
	}
	if (raw_sends(fd, "MULTI\r\nSET fx-tx 1\r\nINCR fx-tx\r\nEXEC\r\n") ==
	    -1)
		fx_fail(f, "send: %s", strerror(errno));
	for (i = 0; i < sizeof(want) / sizeof(want[0]) && !f->failed; i++) {
		line = raw_readline(fd, 10000);
		if (line == NULL || strcmp(line, want[i]) != 0)
			fx_fail(f,
			    "EXEC under the fault: got \"%s\", not \"%s\"",
			    line != NULL ? line : "(nothing)", want[i]);
		free(line);
	}
	close(fd);
}

/* After the fault: the refused transaction left nothing. */
static void
resp_tx_left_nothing(struct fx *f)
{
	char *line;
	int   fd;

	if ((fd = raw_connect(f->d.sock)) == -1) {
		fx_fail(f, "connect: %s", strerror(errno));
		return;
	}
	if (raw_sends(fd, "GET fx-tx\r\n") == -1)
		fx_fail(f, "send: %s", strerror(errno));
	line = raw_readline(fd, 10000);
	if (line == NULL || strcmp(line, "$-1\r") != 0)
		fx_fail(f, "GET of the refused transaction's key: \"%s\"",
		    line != NULL ? line : "(nothing)");
	free(line);
	close(fd);
}

/*
 * SQLite's files fail while the switch is on: stashd answers unavailable
 * within error_s of its first apply after the fault, which comes at most
 * APPLY_DELAY_S after a write is journaled (the journal holds the writes
 * meanwhile: acknowledging them is right); it stays up, and takes writes
 * again once the fault is off.
 */
static void
case_sqlite(const char *err)
{
	struct powerloss_scan sc;
	struct fx	     *f = calloc(1, sizeof(*f));
	char		      name[96], spec[96], code[64], detail[256];
	double		      t0, t_err = -1, t_off, t_back = -1;
	int		      fd = -1, rc, st;

	snprintf(name, sizeof(name), "SQLite's writes fail with %s", err);
	snprintf(spec, sizeof(spec), "write:db:1:%s:forever", err);
	detail[0] = '\0';
	if (f == NULL || fx_init(f, name) == -1) {
		fails++;
		free(f);
		return;
	}
	if (fx_start(f, spec) == -1 || (fd = raw_connect(f->d.sock)) == -1 ||
	    fx_warmup(f, fd) == -1)
		goto out;
	fx_switch(f, 1);
	t0 = now_s();
	/* The fault stays on a second after the first error. */
	while ((t_err < 0 && now_s() - t0 < 10 * (APPLY_DELAY_S + error_s)) ||
	       (t_err >= 0 && now_s() - t0 < t_err + 1.0)) {
		if ((rc = fx_set(f, fd, code, sizeof(code))) == -1) {
			fx_fail(f, "the connection closed under the fault");
			goto out;
		}
		if (rc == 0 && strcmp(code, "unavailable") != 0) {
			fx_fail(
			    f, "a write answered %s, not unavailable", code);
			goto out;
		}
		if (rc == 0 && t_err < 0)
			t_err = now_s() - t0;
		if (rc == 0)
			usleep(5000);
	}
	if (t_err < 0 || t_err > APPLY_DELAY_S + error_s)
		fx_fail(f,
		    "no unavailable within %.1f s of the fault (%.2f s): "
		    "the apply delay and %.1f s",
		    APPLY_DELAY_S + error_s, t_err, error_s);
	else
		resp_tx_unavailable(f);
	fx_switch(f, 0);
	t_off = now_s();
	while (now_s() - t_off < RESUME_S) {
		if ((rc = fx_set(f, fd, code, sizeof(code))) == -1) {
			fx_fail(f, "the connection closed after the fault");
			goto out;
		}
		if (rc == 1) {
			t_back = now_s() - t_off;
			break;
		}
		usleep(20000);
	}
	if (t_back < 0)
		fx_fail(f, "writes not taken again %.0f s after the fault",
		    RESUME_S);
	else
		resp_tx_left_nothing(f);
	if (powerloss_scan(f->rec, &sc) == -1 || sc.faults == 0)
		fx_fail(f, "the fault was never reached");
	if ((st = fx_wait_exit(f, 0.1)) != -1)
		fx_fail(f, "stashd exited (%d) under a fault of SQLite", st);
	snprintf(detail, sizeof(detail),
	    "%u faults injected; unavailable after %.2f s; %u writes "
	    "answered unavailable; writes again %.2f s after the fault "
	    "ended; nothing lost after SIGKILL and a power cut",
	    sc.faults, t_err, f->unavailable, t_back);
	close(fd);
	fd = -1;
	fx_verify(f);
out:
	if (fd != -1)
		close(fd);
	fx_done(f, detail);
	free(f);
}

/*
 * The journal's disk is full: stashd stops taking writes and exits for a
 * restart; restarted on a still-full disk it starts and stops again at
 * the first write; with space back, writes resume.
 */
static void
case_journal_full(void)
{
	struct fx *f = calloc(1, sizeof(*f));
	char	   code[64], detail[256];
	double	   t0, t_err = -1;
	int	   fd = -1, rc, st, i;

	detail[0] = '\0';
	if (f == NULL ||
	    fx_init(f, "the journal's disk is full (ENOSPC)") == -1) {
		fails++;
		free(f);
		return;
	}
	if (fx_start(f, "write:journal:1:ENOSPC:forever") == -1 ||
	    (fd = raw_connect(f->d.sock)) == -1 || fx_warmup(f, fd) == -1)
		goto out;
	fx_switch(f, 1);
	t0 = now_s();
	while (now_s() - t0 < EXIT_S) {
		rc = fx_set(f, fd, code, sizeof(code));
		if (rc == 1)
			continue;
		if (rc == 0 && strcmp(code, "unavailable") != 0) {
			fx_fail(
			    f, "a write answered %s, not unavailable", code);
			goto out;
		}
		if (t_err < 0)
			t_err = now_s() - t0;
		if (rc == -1)
			break;
	}
	close(fd);
	fd = -1;
	if (t_err < 0 || t_err > error_s)
		fx_fail(f, "no error within %.1f s of the full disk (%.2f s)",
		    error_s, t_err);
	if ((st = fx_wait_exit(f, EXIT_S)) != 1 && st != -2)
		fx_fail(f, "stashd on a full journal disk: %d, not exit 1", st);

	/* Restarts on the full disk: each starts, and stops at a write. */
	for (i = 0; i < 2 && !f->failed; i++) {
		if (fx_start(f, "write:journal:1:ENOSPC:forever") == -1 ||
		    (fd = raw_connect(f->d.sock)) == -1) {
			fx_fail(f, "restart %d on the full disk failed", i + 1);
			goto out;
		}
		rc = fx_set(f, fd, code, sizeof(code));
		close(fd);
		fd = -1;
		if (rc == 1)
			fx_fail(f, "a write was acknowledged on a full disk");
		else if (rc == 0 && strcmp(code, "unavailable") != 0)
			fx_fail(
			    f, "a write on the full disk answered %s", code);
		if ((st = fx_wait_exit(f, EXIT_S)) != 1 && st != -2)
			fx_fail(f,
			    "restart %d on the full disk: %d, not "
			    "exit 1",
			    i + 1, st);
	}
	snprintf(detail, sizeof(detail),
	    "error after %.2f s, exit 1; two restarts on the full disk "
	    "start and stop at their first write; with space back, "
	    "nothing lost after a power cut, writes taken",
	    t_err);
	fx_switch(f, 0);
	fx_verify(f);
out:
	if (fd != -1)
		close(fd);
	fx_done(f, detail);
	free(f);
}

/*
 * The journal in a folder stashd creates, under one it did not: after the
 * first acknowledged writes, a SIGKILL and a power cut, the journal folder
 * must still be there (its creation synced in its parent), or the writes
 * SQLite had not made durable yet are gone.
 */
static void
case_new_journal_dir(void)
{
	struct fx *f = calloc(1, sizeof(*f));
	char	   sub[320];
	int	   fd = -1;

	if (f == NULL ||
	    fx_init(f, "the journal's folder is created, then a power cut") ==
		-1) {
		fails++;
		free(f);
		return;
	}
	snprintf(sub, sizeof(sub), "%s/sub", f->dir);
	snprintf(f->jdir, sizeof(f->jdir), "%s/sub/journal", f->dir);
	if (mkdir(sub, 0700) == -1) {
		fx_fail(f, "mkdir %s: %s", sub, strerror(errno));
		goto out;
	}
	/* Killed at once: no checkpoint has made SQLite's copy durable. */
	if (fx_start(f, NULL) == -1 || (fd = raw_connect(f->d.sock)) == -1 ||
	    fx_warmup(f, fd) == -1)
		goto out;
	close(fd);
	fd = -1;
	fx_verify(f);
out:
	if (fd != -1)
		close(fd);
	fx_done(f, "every acknowledged write there after the power cut");
	free(f);
}

/* Does the daemon's log hold s? */
static int
log_has(struct fx *f, const char *s)
{
	char  line[2048];
	int   found = 0;
	FILE *fp;

	if ((fp = fopen(f->d.log, "r")) == NULL)
		return 0;
	while (!found && fgets(line, sizeof(line), fp) != NULL)
		found = strstr(line, s) != NULL;
	fclose(fp);
	return found;
}

/* Wait up to secs until the journal has taken ops writes; 0 or -1. */
static int
fx_wait_journaled(struct fx *f, int fd, unsigned ops, double secs)
{
	double	t0 = now_s();
	json_t *j, *o;
	char   *ans;
	int	done = 0;

	while (!done && now_s() - t0 < secs) {
		if ((ans = raw_roundtrip(fd, "{\"op\":\"stats\"}")) == NULL)
			return -1;
		j = json_loads(ans, 0, NULL);
		free(ans);
		o = json_object_get(
		    json_object_get(json_object_get(j, "stats"), "groups"),
		    "ops");
		done = json_is_integer(o) && json_integer_value(o) >= ops;
		json_decref(j);
		if (!done)
			usleep(10000);
	}
	return done ? 0 : -1;
}

/*
 * A power cut that loses an earlier unsynced write of the journal and
 * keeps later ones: 50 journal writes, then 30 async ones, each in a
 * group of its own (the next is sent once the journal has the last),
 * left to the timed sync (60 s away); SIGKILL; a cut that undoes only the
 * oldest unsynced write of each journal file. stashd must start by
 * itself, without an operator's --salvage: every journal write there,
 * the async ones from the lost one on gone (with a warning), new writes
 * taken, exit 0 on SIGTERM.
 */
static void
case_async_lost_write(void)
{
	static const char *const extra[] = {"--segment-size", "4MB",
	    "--fsync-interval", "60s", "--apply-delay", "10s", NULL};
	struct fx		*f = calloc(1, sizeof(*f));
	char			 code[64], detail[256] = "";
	unsigned		 i;
	int			 fd = -1;

	if (f == NULL ||
	    fx_init(f, "a power cut loses an unsynced async write and keeps "
		       "later ones") == -1) {
		fails++;
		free(f);
		return;
	}
	f->extra = extra;
	if (fx_start(f, NULL) == -1 || (fd = raw_connect(f->d.sock)) == -1 ||
	    fx_warmup(f, fd) == -1)
		goto out;
	f->async_first = f->next;
	for (i = 0; i < 30; i++) {
		if (fx_set_dur(f, fd, "async", code, sizeof(code)) != 1) {
			fx_fail(
			    f, "async write k%u not acknowledged", f->next - 1);
			goto out;
		}
		/* In the journal before the next: a group of its own. */
		if (fx_wait_journaled(f, fd, f->next, 10.0) == -1) {
			fx_fail(f, "async write k%u did not reach the journal",
			    f->next - 1);
			goto out;
		}
	}
	f->async_end = f->next;
	close(fd);
	fd = -1;
	f->cut_oldest = 1;
	fx_verify(f);
	if (f->failed)
		goto out;
	/* Else the cut took nothing that a strict one would not. */
	if (f->cut.writes_undone == 0 || f->cut.writes_kept < 2)
		fx_fail(f,
		    "the power cut undid %u writes and kept %u later ones: "
		    "it proves nothing",
		    f->cut.writes_undone, f->cut.writes_kept);
	else if (!log_has(f, "lost unsynced write"))
		fx_fail(f, "no warning of the lost unsynced write in the log");
	snprintf(detail, sizeof(detail),
	    "the cut kept %u later unsynced writes; stashd started by "
	    "itself, %u of 30 async writes left, all %u journal writes there",
	    f->cut.writes_kept, f->async_kept, f->nacked);
out:
	if (fd != -1)
		close(fd);
	fx_done(f, detail);
	free(f);
}

/* Is $STASHD built with AddressSanitizer (linked to libasan)? */
static int
sanitized(void)
{
	const char *bin = getenv("STASHD");
	char	    cmd[1200];

	snprintf(cmd, sizeof(cmd), "ldd '%s' 2>/dev/null | grep -q libasan",
	    bin != NULL ? bin : "./stashd");
	return system(cmd) == 0;
}

/* How many allocations the malloc shim failed. */
static long
oom_count(struct fx *f)
{
	struct stat st;
	char	    path[400];

	snprintf(path, sizeof(path), "%s/oom.count", f->dir);
	return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/*
 * Out of memory in the daemon: the nth allocation after the switch fails
 * (or every one from it, forever). Requests may fail with an error
 * answer, and the daemon may stop with exit 1 (xmalloc's policy), but it
 * never dies of a signal, never answers a wrong value, and loses nothing
 * acknowledged. The outcome is counted in *survived or *exited.
 */
static void
case_oom(unsigned nth, int forever, unsigned *survived, unsigned *exited)
{
	struct fx *f = calloc(1, sizeof(*f));
	char	   name[96], spec[64], code[64], detail[256], req[64];
	unsigned   errors = 0, n;
	double	   t0;
	json_t	  *j, *v;
	char	  *ans;
	int	   fd = -1, rc, st = -1, i;

	detail[0] = '\0';
	snprintf(name, sizeof(name), "allocation %u%s fails", nth,
	    forever ? " and every later one" : "");
	snprintf(spec, sizeof(spec), "%u%s", nth, forever ? ":forever" : "");
	if (f == NULL || fx_init(f, name) == -1) {
		fails++;
		free(f);
		return;
	}
	f->oom = spec;
	if (fx_start(f, NULL) == -1 || (fd = raw_connect(f->d.sock)) == -1 ||
	    fx_warmup(f, fd) == -1)
		goto out;
	fx_switch(f, 1);
	t0 = now_s();
	for (i = 0; now_s() - t0 < 0.3; i++) {
		if (i % 2 == 0) {
			if ((rc = fx_set(f, fd, code, sizeof(code))) == -1)
				break;
			if (rc == 0)
				errors++;
			continue;
		}
		/* A get of an acknowledged key: its value, or an error. */
		n = (unsigned)i % WARMUP;
		snprintf(
		    req, sizeof(req), "{\"op\":\"get\",\"key\":\"k%u\"}", n);
		if ((ans = raw_roundtrip(fd, req)) == NULL)
			break;
		j = json_loads(ans, 0, NULL);
		free(ans);
		v = json_object_get(json_object_get(j, "value"), "n");
		if (json_is_true(json_object_get(j, "ok")) &&
		    (!json_is_integer(v) || json_integer_value(v) != n))
			fx_fail(f, "get k%u answered a wrong value", n);
		else if (!json_is_true(json_object_get(j, "ok")))
			errors++;
		json_decref(j);
	}
	fx_switch(f, 0);
	if (fd != -1)
		close(fd);
	fd = -1;
	if (oom_count(f) == 0)
		fx_fail(f, "no allocation failed: the fault was never reached");
	/* Alive and well, or gone with exit 1: never a signal. */
	if ((st = fx_wait_exit(f, 0.2)) == -1) {
		if ((fd = raw_connect(f->d.sock)) == -1 ||
		    fx_set(f, fd, code, sizeof(code)) != 1)
			fx_fail(f, "stashd runs but takes no write once memory "
				   "is back");
		(*survived)++;
	} else if (st == 1)
		(*exited)++;
	else if (st != -2)
		fx_fail(f, "stashd exited %d when out of memory, not 1", st);
	snprintf(detail, sizeof(detail),
	    "%ld allocations failed; %u requests answered an error; stashd "
	    "%s; nothing lost after a power cut",
	    oom_count(f), errors,
	    st == -1 ? "kept running and takes writes" : "exited 1");
	if (fd != -1)
		close(fd);
	fd = -1;
	f->oom = NULL;
	fx_verify(f);
out:
	if (fd != -1)
		close(fd);
	fx_done(f, detail);
	free(f);
}

/*
 * The one connection a daemon with --max-connections 1 takes, once it has
 * closed the one daemon_start made to see it up (-1 if it never does).
 */
static int
only_conn(struct fx *f)
{
	char *ans;
	int   fd, i, ok;

	for (i = 0; i < 100; i++) {
		if ((fd = raw_connect(f->d.sock)) == -1)
			break;
		ans = raw_roundtrip(fd, "{\"op\":\"ping\"}");
		ok = ans != NULL && strstr(ans, "\"ok\":true") != NULL;
		free(ans);
		if (ok)
			return fd;
		close(fd);
		usleep(10000);
	}
	fx_fail(f, "no connection taken");
	return -1;
}

/*
 * Out of memory while refusing a connection: with one connection allowed
 * and one open, the next is refused; it is held a while for its first
 * bytes, which takes an event. When that allocation fails, the refused
 * client is answered at once ("busy") instead, and the daemon runs on.
 * The second allocation after the switch is that event's (the first is
 * the refused client's record); should some other allocation come
 * between them, the case starts the daemon again, up to 3 times.
 */
static void
case_oom_refused(void)
{
	static const char *const extra[] = {"--max-connections", "1", NULL};
	static const char	 waitmsg[] =
	    "cannot wait for a refused client's first bytes";
	struct fx *f = calloc(1, sizeof(*f));
	char	   code[64], detail[256];
	char	  *ans = NULL;
	long	   before;
	double	   t0, took = 0;
	int	   fd = -1, fd2 = -1, attempt, reached = 0;

	detail[0] = '\0';
	if (f == NULL || fx_init(f, "allocation 2 fails while refusing a "
				    "connection") == -1) {
		fails++;
		free(f);
		return;
	}
	f->oom = "2";
	f->extra = extra;
	for (attempt = 0; attempt < 3 && !reached && !f->failed; attempt++) {
		if (attempt > 0)
			fx_kill(f);
		if (fx_start(f, NULL) == -1 || (fd = only_conn(f)) == -1 ||
		    fx_warmup(f, fd) == -1)
			goto out;
		before = oom_count(f);
		fx_switch(f, 1);
		t0 = now_s();
		if ((fd2 = raw_connect(f->d.sock)) == -1) {
			fx_fail(f, "connect: %s", strerror(errno));
			goto out;
		}
		ans = raw_readline(fd2, 5000);
		took = now_s() - t0;
		fx_switch(f, 0);
		close(fd2);
		fd2 = -1;
		if (ans == NULL || strstr(ans, "\"busy\"") == NULL) {
			fx_fail(f, "the refused client got %s, not busy",
			    ans != NULL ? ans : "nothing");
			goto out;
		}
		free(ans);
		ans = NULL;
		if (oom_count(f) != before + 1) {
			fx_fail(f, "%ld allocations failed, not 1",
			    oom_count(f) - before);
			goto out;
		}
		reached = log_has(f, waitmsg);
		/* Still serving the connection it has. */
		if (fx_set(f, fd, code, sizeof(code)) != 1) {
			fx_fail(f, "no write taken after the refusal");
			goto out;
		}
		close(fd);
		fd = -1;
	}
	if (!reached)
		fx_fail(f, "3 starts, and the failed allocation was never the "
			   "refused client's event");
	else if (took > 0.5)
		fx_fail(f,
		    "the refused client was answered after %.2f s, "
		    "not at once",
		    took);
	snprintf(detail, sizeof(detail),
	    "answered busy at once (%.0f ms), logged, and runs on (%d "
	    "start%s)",
	    took * 1000, attempt, attempt > 1 ? "s" : "");
	f->oom = NULL;
	f->extra = NULL;
	fx_verify(f);
out:
	free(ans);
	if (fd2 != -1)
		close(fd2);
	if (fd != -1)
		close(fd);
	fx_done(f, detail);
	free(f);
}

int
main(int argc, char **argv)
{
	static const char *const ops[] = {"write", "sync", "dirsync", "open"};
	const char		*so = getenv("FAULTFS_SO");
	const char		*fm = getenv("FAILMALLOC_SO");
	const char		*why = "";
	unsigned		 i, n, survived = 0, exited = 0;
	int			 oom = 1, oom_only, san;

	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--oom-only") != 0)) {
		fprintf(stderr,
		    "usage: test_faults [--oom-only]\n"
		    "environment: STASHD, FAULTFS_SO, FAILMALLOC_SO, "
		    "TESTS_TMPDIR\n");
		return 2;
	}
	oom_only = argc == 2;
	if (so == NULL || access(so, R_OK) == -1) {
		printf("SKIP: FAULTFS_SO does not name the shim "
		       "tests/.libs/faultfs.so\n");
		return 77;
	}
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	san = sanitized();
	if (san || getenv("STASHD_WRAPPER") != NULL)
		error_s = ERROR_SLOW_S;
	/* The malloc shim cannot sit under a sanitizer's allocator. */
	if (fm == NULL || access(fm, R_OK) == -1) {
		oom = 0;
		why = "FAILMALLOC_SO does not name tests/.libs/failmalloc.so";
	} else if (san) {
		oom = 0;
		why = "stashd is built with a sanitizer";
	} else if (getenv("STASHD_WRAPPER") != NULL) {
		oom = 0;
		why =
		    "stashd runs under a wrapper (valgrind has its own malloc)";
	}

	for (i = 0; !oom_only && i < sizeof(ops) / sizeof(ops[0]); i++)
		for (n = 1; n <= 3; n++)
			case_journal(ops[i], n, "EIO", NULL);
	/*
	 * The way out after a journal failure, under valgrind when there is
	 * one: no leak, no error (the writes never acknowledged included).
	 */
	if (!oom_only && getenv("STASHD_WRAPPER") == NULL && !san &&
	    system("valgrind --version >/dev/null 2>&1") == 0)
		case_journal("sync", 2, "EIO", VALGRIND);
	if (!oom_only) {
		case_sqlite("EIO");
		case_sqlite("ENOSPC");
		case_journal_full();
		case_new_journal_dir();
		case_async_lost_write();
	}
	if (oom) {
		for (n = 1; n <= 20; n++)
			case_oom(n, 0, &survived, &exited);
		case_oom(1, 1, &survived, &exited);
		case_oom(50, 1, &survived, &exited);
		case_oom_refused();
		printf("out of memory: stashd kept running %u times, exited 1 "
		       "%u times, never died of a signal\n",
		    survived, exited);
	} else
		printf("skip the out-of-memory cases: %s\n", why);

	printf("%d passed, %d failed\n", passes, fails);
	return fails > 0 ? 1 : 0;
}

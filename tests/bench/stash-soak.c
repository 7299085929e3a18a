/*
 * stash-soak.c -- a long mixed load against a running stashd, watching
 * its resident memory.
 *
 * CONNS connections each keep DEPTH requests in flight: the requests of
 * every connection are written, then every answer is read, over and over
 * until OPS requests are answered. Each request is drawn at random from a
 * mix of get, set, del, mget, exec and query over a bounded key space (and
 * a bounded table for the SQL), so that, with a --max-memory smaller than
 * the key space, the daemon's cache fills up and evicts. Every answer is
 * checked: ok, or not_found for a get of a key never set or deleted; a get
 * that finds its key must return that key's value.
 *
 * The daemon's VmRSS (/proc/PID/status) is sampled SAMPLES times over the
 * run. The run passes when every answer was right, the cache evicted, and
 * the RSS at the end is within TOLERANCE percent of the RSS after warm-up
 * (the first WARMUP percent of the requests). Exit status 0 on a pass, 1
 * on a failure of the criteria, 2 on an error.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct conn {
	int    fd;
	char  *in; /* answers read, not yet split */
	size_t len, cap;
	/* what each request in flight expects: the key of a get, or -1 */
	long *expect;
	char *kind; /* 'g' get, 'm' mget, 'o' anything ok */
};

static struct {
	const char *sock;
	long	    pid;
	long long   ops;
	int	    conns;
	int	    depth;
	long	    keys;
	int	    size;
	int	    samples;
	int	    warmup;
	double	    tolerance;
	unsigned    seed;
} opt = {NULL, 0, 10000000, 32, 8, 300000, 300, 100, 10, 5.0, 1};

static char *pad;

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "stash-soak: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long
rss_kb(void)
{
	char	  path[64], line[256];
	long long kb = -1;
	FILE	 *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", opt.pid);
	if ((f = fopen(path, "r")) == NULL)
		die("%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %lld kB", &kb) == 1)
			break;
	fclose(f);
	if (kb <= 0)
		die("no VmRSS in %s", path);
	return kb;
}

static int
connect_to(const char *path)
{
	struct timeval	   tv = {30, 0};
	struct sockaddr_un sun;
	int		   fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		die("socket path too long: %s", path);
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1)
		die("socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		die("connect %s: %s", path, strerror(errno));
	/* A daemon that stops answering fails the run, not hangs it. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1)
		die("setsockopt: %s", strerror(errno));
	return fd;
}

static void
write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, buf, len)) == -1) {
			if (errno == EINTR)
				continue;
			die("write: %s", strerror(errno));
		}
		buf += n;
		len -= (size_t)n;
	}
}

/* The next answer line of c, NUL-terminated in place; its length. */
static char *
read_line(struct conn *c, size_t *consumed)
{
	char   *nl;
	ssize_t n;

	for (;;) {
		if (c->len > 0 && (nl = memchr(c->in, '\n', c->len)) != NULL) {
			*nl = '\0';
			*consumed = (size_t)(nl - c->in) + 1;
			return c->in;
		}
		if (c->cap - c->len < 65536) {
			c->cap = c->cap * 2 + 65536;
			if ((c->in = realloc(c->in, c->cap)) == NULL)
				die("out of memory");
		}
		n = read(c->fd, c->in + c->len, c->cap - c->len);
		if (n == 0)
			die("the daemon closed a connection");
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				die("no answer from the daemon in 30 s");
			die("read: %s", strerror(errno));
		}
		c->len += (size_t)n;
	}
}

static void
consume(struct conn *c, size_t n)
{
	memmove(c->in, c->in + n, c->len - n);
	c->len -= n;
}

static long
rnd_key(void)
{
	return (long)(((unsigned long)rand() << 16 ^ (unsigned long)rand()) %
		      (unsigned long)opt.keys);
}

/* Append one random request to buf; note what its answer must be. */
static size_t
build(char *buf, size_t cap, long *expect, char *kind)
{
	int  r = rand() % 100, i, n;
	long k = rnd_key();

	*expect = -1;
	*kind = 'o';
	if (r < 45) { /* get */
		*expect = k;
		*kind = 'g';
		return (size_t)snprintf(
		    buf, cap, "{\"op\":\"get\",\"key\":\"s:%ld\"}\n", k);
	}
	if (r < 70) /* set: mostly async, some journal */
		return (size_t)snprintf(buf, cap,
		    "{\"op\":\"set\",\"key\":\"s:%ld\",\"value\":{\"k\":%ld,"
		    "\"p\":\"%s\"},\"durability\":\"%s\"}\n",
		    k, k, pad, r < 67 ? "async" : "journal");
	if (r < 75)
		return (size_t)snprintf(buf, cap,
		    "{\"op\":\"del\",\"key\":\"s:%ld\",\"durability\":"
		    "\"async\"}\n",
		    k);
	if (r < 85) {
		*kind = 'm';
		n = snprintf(buf, cap, "{\"op\":\"mget\",\"keys\":[");
		for (i = 0; i < 8; i++)
			n += snprintf(buf + n, cap - (size_t)n, "%s\"s:%ld\"",
			    i > 0 ? "," : "", rnd_key());
		n += snprintf(buf + n, cap - (size_t)n, "]}\n");
		return (size_t)n;
	}
	if (r < 95)
		return (size_t)snprintf(buf, cap,
		    "{\"op\":\"exec\",\"sql\":\"INSERT OR REPLACE INTO "
		    "soak(id, v) VALUES (?, ?)\",\"params\":[%ld,\"%.64s\"],"
		    "\"durability\":\"journal\"}\n",
		    k % 20000, pad);
	return (size_t)snprintf(buf, cap,
	    "{\"op\":\"query\",\"sql\":\"SELECT id, v FROM soak WHERE id = "
	    "?\",\"params\":[%ld]}\n",
	    k % 20000);
}

static long long errors, notfound;

/* Check one answer against what its request expects. */
static void
check(const char *line, long expect, char kind)
{
	char want[64];

	if (strncmp(line, "{\"ok\":true", 10) == 0) {
		if (kind == 'g') {
			snprintf(want, sizeof(want), "\"value\":{\"k\":%ld,",
			    expect);
			if (strstr(line, want) == NULL) {
				if (errors++ < 5)
					fprintf(stderr,
					    "wrong value for s:%ld: %.200s\n",
					    expect, line);
			}
		}
		return;
	}
	if (kind == 'g' && strstr(line, "\"code\":\"not_found\"") != NULL) {
		notfound++;
		return;
	}
	if (errors++ < 5)
		fprintf(stderr, "error answer: %.200s\n", line);
}

static void
usage(int status)
{
	printf("usage: stash-soak -s SOCKET -p PID [options]\n"
	       "  -s, --socket PATH    the daemon's socket\n"
	       "  -p, --pid PID        the daemon's pid, for its VmRSS\n"
	       "  -n, --ops N          requests in all [10000000]\n"
	       "  -c, --conns N        connections [32]\n"
	       "  -P, --pipeline N     requests in flight per connection [8]\n"
	       "  -r, --keys N         key space [300000]\n"
	       "  -d, --size N         value padding in bytes [300]\n"
	       "      --samples N      RSS samples over the run [100]\n"
	       "      --warmup PCT     warm-up share of the run [10]\n"
	       "      --tolerance PCT  most RSS change after warm-up [5]\n"
	       "      --seed N         random seed [1]\n");
	exit(status);
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {{"socket", 1, NULL, 's'},
	    {"pid", 1, NULL, 'p'}, {"ops", 1, NULL, 'n'},
	    {"conns", 1, NULL, 'c'}, {"pipeline", 1, NULL, 'P'},
	    {"keys", 1, NULL, 'r'}, {"size", 1, NULL, 'd'},
	    {"samples", 1, NULL, 1}, {"warmup", 1, NULL, 2},
	    {"tolerance", 1, NULL, 3}, {"seed", 1, NULL, 4},
	    {"help", 0, NULL, 'h'}, {NULL, 0, NULL, 0}};
	struct conn		  *cs;
	long long done = 0, next_sample, rss_warm = -1, rss_end, rss_max = 0,
		  rss_min = -1, evictions = -1;
	double t0, t;
	char  *buf, *line, *p;
	size_t cap, len, used;
	int    ch, i, j, s = 0, fail = 0;

	while (
	    (ch = getopt_long(argc, argv, "s:p:n:c:P:r:d:h", lo, NULL)) != -1) {
		switch (ch) {
		case 's': opt.sock = optarg; break;
		case 'p': opt.pid = atol(optarg); break;
		case 'n': opt.ops = atoll(optarg); break;
		case 'c': opt.conns = atoi(optarg); break;
		case 'P': opt.depth = atoi(optarg); break;
		case 'r': opt.keys = atol(optarg); break;
		case 'd': opt.size = atoi(optarg); break;
		case 1: opt.samples = atoi(optarg); break;
		case 2: opt.warmup = atoi(optarg); break;
		case 3: opt.tolerance = atof(optarg); break;
		case 4: opt.seed = (unsigned)atol(optarg); break;
		case 'h': usage(0); break;
		default: usage(2);
		}
	}
	if (opt.sock == NULL || opt.pid <= 0 || opt.ops <= 0 ||
	    opt.conns <= 0 || opt.depth <= 0 || opt.keys <= 0 || opt.size < 0 ||
	    opt.samples <= 0 || opt.warmup < 0 || opt.warmup >= 100)
		usage(2);
	srand(opt.seed);
	if ((pad = malloc((size_t)opt.size + 1)) == NULL)
		die("out of memory");
	memset(pad, 'x', (size_t)opt.size);
	pad[opt.size] = '\0';
	cap = (size_t)opt.depth * ((size_t)opt.size + 512);
	if ((buf = malloc(cap)) == NULL ||
	    (cs = calloc((size_t)opt.conns, sizeof(*cs))) == NULL)
		die("out of memory");
	for (i = 0; i < opt.conns; i++) {
		cs[i].fd = connect_to(opt.sock);
		cs[i].expect = calloc((size_t)opt.depth, sizeof(long));
		cs[i].kind = calloc((size_t)opt.depth, 1);
		if (cs[i].expect == NULL || cs[i].kind == NULL)
			die("out of memory");
	}
	/* The table of the SQL requests. */
	write_all(cs[0].fd,
	    "{\"op\":\"exec\",\"sql\":\"CREATE TABLE IF NOT EXISTS soak("
	    "id INTEGER PRIMARY KEY, v TEXT)\"}\n",
	    strlen("{\"op\":\"exec\",\"sql\":\"CREATE TABLE IF NOT EXISTS "
		   "soak(id INTEGER PRIMARY KEY, v TEXT)\"}\n"));
	line = read_line(&cs[0], &used);
	if (strncmp(line, "{\"ok\":true", 10) != 0)
		die("create table: %s", line);
	consume(&cs[0], used);

	printf(
	    "%12s %10s %10s %10s\n", "requests", "req/s", "rss_kb", "seconds");
	t0 = now_s();
	next_sample = opt.ops / opt.samples;
	while (done < opt.ops) {
		for (i = 0; i < opt.conns; i++) {
			for (len = 0, j = 0; j < opt.depth; j++)
				len += build(buf + len, cap - len,
				    &cs[i].expect[j], &cs[i].kind[j]);
			write_all(cs[i].fd, buf, len);
		}
		for (i = 0; i < opt.conns; i++)
			for (j = 0; j < opt.depth; j++) {
				line = read_line(&cs[i], &used);
				check(line, cs[i].expect[j], cs[i].kind[j]);
				consume(&cs[i], used);
			}
		done += (long long)opt.conns * opt.depth;
		if (done >= next_sample || done >= opt.ops) {
			long long r = rss_kb();

			s++;
			next_sample += opt.ops / opt.samples;
			t = now_s() - t0;
			if (rss_warm < 0 && done >= opt.ops * opt.warmup / 100)
				rss_warm = r;
			if (rss_warm >= 0) {
				if (r > rss_max)
					rss_max = r;
				if (rss_min < 0 || r < rss_min)
					rss_min = r;
			}
			if (s % 10 == 0 || done >= opt.ops || rss_warm == r)
				printf("%12lld %10.0f %10lld %10.1f\n", done,
				    (double)done / t, r, t);
			fflush(stdout);
		}
	}
	t = now_s() - t0;
	rss_end = rss_kb();

	/* Did the cache evict? */
	write_all(cs[0].fd, "{\"op\":\"stats\"}\n", 15);
	line = read_line(&cs[0], &used);
	if ((p = strstr(line, "\"evictions\":")) != NULL)
		evictions = atoll(p + 12);
	consume(&cs[0], used);

	printf("requests %lld in %.1f s (%.0f/s), %d connections x %d in "
	       "flight, %ld keys\n",
	    done, t, (double)done / t, opt.conns, opt.depth, opt.keys);
	printf("answers: %lld errors, %lld gets not found; cache evictions "
	       "%lld\n",
	    errors, notfound, evictions);
	printf("RSS after warm-up (%d%%) %lld KB, at the end %lld KB "
	       "(%+.2f%%), after warm-up min %lld KB max %lld KB\n",
	    opt.warmup, rss_warm, rss_end,
	    100.0 * (double)(rss_end - rss_warm) / (double)rss_warm, rss_min,
	    rss_max);
	if (errors > 0) {
		printf("FAIL: %lld wrong answers\n", errors);
		fail = 1;
	}
	if (evictions <= 0) {
		printf("FAIL: the cache never evicted: raise the key space or "
		       "lower --max-memory\n");
		fail = 1;
	}
	if (100.0 * (double)llabs(rss_end - rss_warm) / (double)rss_warm >=
	    opt.tolerance) {
		printf(
		    "FAIL: RSS moved by %.1f%% after warm-up (limit %.1f%%)\n",
		    100.0 * (double)(rss_end - rss_warm) / (double)rss_warm,
		    opt.tolerance);
		fail = 1;
	}
	if (!fail)
		printf("PASS\n");
	for (i = 0; i < opt.conns; i++) {
		close(cs[i].fd);
		free(cs[i].in);
		free(cs[i].expect);
		free(cs[i].kind);
	}
	free(cs);
	free(buf);
	free(pad);
	return fail;
}

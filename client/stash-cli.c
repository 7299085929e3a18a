/*
 * stash-cli.c -- stash, the command-line client of stashd.
 *
 * One command per run, through libstash: parse the global options, connect,
 * run the command, print its result on stdout, and say what went wrong in
 * one line on stderr. The exit status is what scripts test:
 *
 *   0  done
 *   1  not found: get or del of an absent key
 *   2  anything else: usage, invalid JSON, connection, the daemon's errors
 *
 * Arguments are checked before connecting, so that a typo is reported as
 * such even when the daemon is down.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "stash-protocol.h"
#include "stash.h"

#define EXIT_NOTFOUND 1
#define EXIT_ERROR    2

/* The options a command takes. */
#define OPT_TTL	       0x1
#define OPT_IF_VERSION 0x2
#define OPT_DURABILITY 0x4

/* Options of set and del, which may follow the command's arguments. */
struct cli_opts {
	struct stash_set_opts set;
};

/* The one-line help of each command, for the usage text. */
static const char *cli_usage_text =
    "usage: stash [-s socket] [-t seconds] command [arguments]\n"
    "\n"
    "commands:\n"
    "  ping                    check that stashd answers; prints \"pong\"\n"
    "  get KEY                 print the value of KEY as one line of JSON;\n"
    "                          exit 1 when there is no such key\n"
    "  mget KEY...             print one line per key: its value, or null\n"
    "                          when absent (a stored null looks the same)\n"
    "  set KEY JSON [options]  store the JSON value (\"-\": read it from\n"
    "                          stdin) and print its new version\n"
    "      --ttl N             expire after N seconds\n"
    "      --if-version N      only if the stored version is N (0: only if\n"
    "                          KEY does not exist); else fail with conflict\n"
    "      --durability D      async, journal or commit (default: the\n"
    "                          daemon's)\n"
    "  del KEY [--durability D]\n"
    "                          delete KEY and print \"deleted\"; exit 1 when\n"
    "                          there was no such key\n"
    "  stats                   print the daemon's statistics (JSON)\n"
    "\n"
    "options:\n"
    "  -s, --socket PATH       the daemon's socket (default: $" STASH_SOCKET_ENV
    ", or\n"
    "                          " STASH_SOCKET_DEFAULT ")\n"
    "  -t, --timeout SECONDS   give up when the daemon does not answer\n"
    "  -h, --help              show this help\n"
    "      --version           show the version\n"
    "\n"
    "Put \"--\" before a key that starts with \"--\". Exit status: 0 done,\n"
    "1 not found, 2 any error (usage, invalid JSON, connection, or the\n"
    "daemon's error, printed as \"stash: COMMAND: CODE: message\").\n";

static void cli_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));

/* Print "stash: " and a message on stderr. */
static void
cli_warnx(const char *fmt, ...)
{
	va_list ap;

	(void)fputs("stash: ", stderr);
	va_start(ap, fmt);
	(void)vfprintf(stderr, fmt, ap);
	va_end(ap);
	(void)fputc('\n', stderr);
}

/* Complain about the command line and exit. */
static void __attribute__((noreturn)) cli_usage(const char *msg)
{
	if (msg != NULL)
		cli_warnx("%s; try stash --help", msg);
	else
		(void)fputs("usage: stash [-s socket] [-t seconds] command "
			    "[arguments]; try stash --help\n",
		    stderr);
	exit(EXIT_ERROR);
}

/* Show a command's synopsis on stderr and exit. */
static void __attribute__((noreturn)) cli_synopsis(const char *synopsis)
{
	(void)fprintf(stderr, "usage: stash [-s socket] %s\n", synopsis);
	exit(EXIT_ERROR);
}

/* Parse a decimal unsigned integer in [min, max]. 0, or -1. */
static int
cli_number(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long n;
	char		  *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || n < min || n > max)
		return -1;
	*out = n;
	return 0;
}

/* Parse a durability name. 0, or -1. */
static int
cli_durability(const char *s, enum stash_durability *d)
{
	if (strcmp(s, STASH_DUR_ASYNC) == 0)
		*d = STASH_DURABILITY_ASYNC;
	else if (strcmp(s, STASH_DUR_JOURNAL) == 0)
		*d = STASH_DURABILITY_JOURNAL;
	else if (strcmp(s, STASH_DUR_COMMIT) == 0)
		*d = STASH_DURABILITY_COMMIT;
	else
		return -1;
	return 0;
}

/*
 * Split a command's arguments into options (--name value or --name=value,
 * those in the OPT_* mask allowed) and positional ones, kept in order in
 * argv. Returns the number of positional arguments; exits on a usage error.
 */
static int
cli_parse_opts(
    const char *cmd, int argc, char **argv, int allowed, struct cli_opts *o)
{
	char	    msg[256], name[64];
	const char *arg, *value, *eq;
	uint64_t    n;
	size_t	    len;
	int	    i, npos = 0, dashdash = 0;

	memset(o, 0, sizeof(*o));
	for (i = 0; i < argc; i++) {
		arg = argv[i];
		if (dashdash || strncmp(arg, "--", 2) != 0) {
			argv[npos++] = argv[i];
			continue;
		}
		if (arg[2] == '\0') {
			dashdash = 1;
			continue;
		}
		if ((eq = strchr(arg, '=')) != NULL) {
			len = (size_t)(eq - arg - 2);
			value = eq + 1;
		} else {
			len = strlen(arg + 2);
			value = NULL;
		}
		if (len >= sizeof(name))
			len = sizeof(name) - 1;
		memcpy(name, arg + 2, len);
		name[len] = '\0';
		if (!((allowed & OPT_TTL) && strcmp(name, "ttl") == 0) &&
		    !((allowed & OPT_IF_VERSION) &&
			strcmp(name, "if-version") == 0) &&
		    !((allowed & OPT_DURABILITY) &&
			strcmp(name, "durability") == 0)) {
			(void)snprintf(msg, sizeof(msg),
			    "%s: unknown option --%s", cmd, name);
			cli_usage(msg);
		}
		if (value == NULL) {
			if (i + 1 >= argc) {
				(void)snprintf(msg, sizeof(msg),
				    "%s: --%s needs a value", cmd, name);
				cli_usage(msg);
			}
			value = argv[++i];
		}
		if (strcmp(name, "ttl") == 0) {
			if (cli_number(value, 1, UINT32_MAX, &n) == -1) {
				(void)snprintf(msg, sizeof(msg),
				    "%s: --ttl wants whole seconds > 0, not "
				    "\"%.64s\"",
				    cmd, value);
				cli_usage(msg);
			}
			o->set.ttl = (uint32_t)n;
		} else if (strcmp(name, "if-version") == 0) {
			if (cli_number(value, 0, UINT64_MAX, &n) == -1) {
				(void)snprintf(msg, sizeof(msg),
				    "%s: --if-version wants a version number, "
				    "not \"%.64s\"",
				    cmd, value);
				cli_usage(msg);
			}
			o->set.has_if_version = 1;
			o->set.if_version = n;
		} else if (cli_durability(value, &o->set.durability) == -1) {
			(void)snprintf(msg, sizeof(msg),
			    "%s: --durability is async, journal or commit, "
			    "not \"%.64s\"",
			    cmd, value);
			cli_usage(msg);
		}
	}
	return npos;
}

/* Check a key before connecting. */
static void
cli_check_key(const char *cmd, const char *key)
{
	char msg[128];

	if (*key == '\0') {
		(void)snprintf(msg, sizeof(msg), "%s: empty key", cmd);
		cli_usage(msg);
	}
	if (strlen(key) > STASH_KEY_MAX) {
		(void)snprintf(msg, sizeof(msg),
		    "%s: key of %zu bytes, longer than %d", cmd, strlen(key),
		    STASH_KEY_MAX);
		cli_usage(msg);
	}
}

/* Read all of stdin into a string; NULL on error (reported). */
static char *
cli_read_stdin(void)
{
	char  *buf = NULL, *nbuf;
	size_t len = 0, size = 0, n;

	for (;;) {
		if (size - len < 65536) {
			size = size == 0 ? 65536 : size * 2;
			if ((nbuf = realloc(buf, size + 1)) == NULL) {
				cli_warnx("set: out of memory reading stdin");
				free(buf);
				return NULL;
			}
			buf = nbuf;
		}
		n = fread(buf + len, 1, size - len, stdin);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(stdin)) {
		cli_warnx("set: cannot read stdin: %s", strerror(errno));
		free(buf);
		return NULL;
	}
	buf[len] = '\0';
	if (strlen(buf) != len) {
		cli_warnx("set: invalid JSON value: NUL byte in input");
		free(buf);
		return NULL;
	}
	return buf;
}

/* Report a failed call; returns the exit status it means. */
static int
cli_fail(stash_t *h, const char *cmd, int rc)
{
	cli_warnx("%s: %s: %s", cmd, stash_errname(rc), stash_errmsg(h));
	return rc == STASH_ENOTFOUND ? EXIT_NOTFOUND : EXIT_ERROR;
}

/* Print a line on stdout. */
static int
cli_puts(const char *s)
{
	if (puts(s) == EOF) {
		cli_warnx("cannot write to stdout: %s", strerror(errno));
		return EXIT_ERROR;
	}
	return 0;
}

/* stash ping: prints "pong". */
static int
cmd_ping(stash_t *h)
{
	int rc;

	if ((rc = stash_ping(h)) != STASH_OK)
		return cli_fail(h, "ping", rc);
	return cli_puts("pong");
}

/* stash get KEY: prints the value; exit 1 when absent. */
static int
cmd_get(stash_t *h, const char *key)
{
	char *value;
	int   rc, ex;

	if ((rc = stash_get(h, key, &value, NULL)) != STASH_OK)
		return cli_fail(h, "get", rc);
	ex = cli_puts(value);
	free(value);
	return ex;
}

/* stash mget KEY...: one line per key, null when absent. */
static int
cmd_mget(stash_t *h, int n, char **keys)
{
	char **values;
	int    rc, i, ex = 0;

	if ((values = calloc((size_t)n, sizeof(*values))) == NULL) {
		cli_warnx("mget: out of memory");
		return EXIT_ERROR;
	}
	rc = stash_mget(h, (const char *const *)keys, (size_t)n, values);
	if (rc != STASH_OK) {
		free(values);
		return cli_fail(h, "mget", rc);
	}
	for (i = 0; i < n; i++) {
		if (ex == 0)
			ex = cli_puts(values[i] != NULL ? values[i] : "null");
		free(values[i]);
	}
	free(values);
	return ex;
}

/* stash set KEY JSON: prints the new version. */
static int
cmd_set(
    stash_t *h, const char *key, const char *value, const struct cli_opts *o)
{
	uint64_t version;
	int	 rc;

	if ((rc = stash_set(h, key, value, &o->set, &version)) != STASH_OK)
		return cli_fail(h, "set", rc);
	if (printf("%" PRIu64 "\n", version) < 0) {
		cli_warnx("cannot write to stdout: %s", strerror(errno));
		return EXIT_ERROR;
	}
	return 0;
}

/* stash del KEY: prints "deleted"; exit 1 when absent. */
static int
cmd_del(stash_t *h, const char *key, const struct cli_opts *o)
{
	int rc, deleted;

	if ((rc = stash_del(h, key, o->set.durability, &deleted)) != STASH_OK)
		return cli_fail(h, "del", rc);
	if (!deleted) {
		cli_warnx("del: %s: no such key", STASH_ERR_NOT_FOUND);
		return EXIT_NOTFOUND;
	}
	return cli_puts("deleted");
}

/* stash stats: the statistics, indented. */
static int
cmd_stats(stash_t *h)
{
	json_t *stats;
	int	rc;

	if ((rc = stash_stats_json(h, &stats)) != STASH_OK)
		return cli_fail(h, "stats", rc);
	rc = json_dumpf(stats, stdout, JSON_INDENT(2));
	json_decref(stats);
	if (rc == -1 || putchar('\n') == EOF) {
		cli_warnx("cannot write to stdout: %s", strerror(errno));
		return EXIT_ERROR;
	}
	return 0;
}

/* Parse, check, connect, run one command. */
int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'}, {NULL, 0, NULL, 0}};
	struct cli_opts o;
	json_error_t	jerr;
	json_t	       *j;
	stash_t	       *h;
	const char     *path = NULL, *cmd;
	char	       *input = NULL, msg[128];
	uint64_t	timeout = 0;
	int		ch, n, ex;

	opterr = 0;
	while (
	    (ch = getopt_long(argc, argv, "+:s:t:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 's': path = optarg; break;
		case 't':
			if (cli_number(optarg, 1, INT_MAX / 1000, &timeout) ==
			    -1)
				cli_usage("-t wants whole seconds > 0");
			break;
		case 'h':
			if (fputs(cli_usage_text, stdout) == EOF)
				return EXIT_ERROR;
			return 0;
		case 'V':
			if (printf("stash %s (stashd protocol %d)\n",
				PACKAGE_VERSION, STASH_PROTOCOL_VERSION) < 0)
				return EXIT_ERROR;
			return 0;
		case ':':
			(void)snprintf(msg, sizeof(msg),
			    "option %.64s needs a value", argv[optind - 1]);
			cli_usage(msg);
		default:
			if (optopt != 0)
				(void)snprintf(msg, sizeof(msg),
				    "unknown option -%c", optopt);
			else
				(void)snprintf(msg, sizeof(msg),
				    "unknown option %.64s", argv[optind - 1]);
			cli_usage(msg);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		cli_usage("no command");
	cmd = argv[0];
	argc--;
	argv++;

	/* Check everything before connecting. */
	if (strcmp(cmd, "ping") == 0 || strcmp(cmd, "stats") == 0) {
		if (argc != 0) {
			(void)snprintf(
			    msg, sizeof(msg), "%s takes no arguments", cmd);
			cli_usage(msg);
		}
	} else if (strcmp(cmd, "get") == 0) {
		if (cli_parse_opts(cmd, argc, argv, 0, &o) != 1)
			cli_synopsis("get KEY");
		cli_check_key(cmd, argv[0]);
	} else if (strcmp(cmd, "mget") == 0) {
		n = cli_parse_opts(cmd, argc, argv, 0, &o);
		if (n < 1)
			cli_synopsis("mget KEY...");
		argc = n;
		for (n = 0; n < argc; n++)
			cli_check_key(cmd, argv[n]);
	} else if (strcmp(cmd, "set") == 0) {
		if (cli_parse_opts(cmd, argc, argv,
			OPT_TTL | OPT_IF_VERSION | OPT_DURABILITY, &o) != 2)
			cli_synopsis("set KEY JSON [--ttl N] [--if-version N] "
				     "[--durability D]");
		cli_check_key(cmd, argv[0]);
		if (strcmp(argv[1], "-") == 0) {
			if ((input = cli_read_stdin()) == NULL)
				return EXIT_ERROR;
			argv[1] = input;
		}
		j = json_loads(argv[1],
		    JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL,
		    &jerr);
		if (j == NULL) {
			cli_warnx("set: invalid JSON value: %s (line %d, "
				  "column %d)",
			    jerr.text, jerr.line, jerr.column);
			free(input);
			return EXIT_ERROR;
		}
		json_decref(j);
	} else if (strcmp(cmd, "del") == 0) {
		if (cli_parse_opts(cmd, argc, argv, OPT_DURABILITY, &o) != 1)
			cli_synopsis("del KEY [--durability D]");
		cli_check_key(cmd, argv[0]);
	} else {
		(void)snprintf(
		    msg, sizeof(msg), "unknown command \"%.64s\"", cmd);
		cli_usage(msg);
	}

	if (path == NULL || *path == '\0')
		path = getenv(STASH_SOCKET_ENV);
	if (path == NULL || *path == '\0')
		path = STASH_SOCKET_DEFAULT;
	if ((h = stash_connect(path)) == NULL) {
		cli_warnx("cannot connect to %s: %s", path, strerror(errno));
		free(input);
		return EXIT_ERROR;
	}
	stash_set_timeout(h, (int)timeout * 1000);

	if (strcmp(cmd, "ping") == 0)
		ex = cmd_ping(h);
	else if (strcmp(cmd, "stats") == 0)
		ex = cmd_stats(h);
	else if (strcmp(cmd, "get") == 0)
		ex = cmd_get(h, argv[0]);
	else if (strcmp(cmd, "mget") == 0)
		ex = cmd_mget(h, argc, argv);
	else if (strcmp(cmd, "set") == 0)
		ex = cmd_set(h, argv[0], argv[1], &o);
	else
		ex = cmd_del(h, argv[0], &o);

	stash_close(h);
	free(input);
	if (ex == 0 && fflush(stdout) == EOF) {
		cli_warnx("cannot write to stdout: %s", strerror(errno));
		ex = EXIT_ERROR;
	}
	return ex;
}

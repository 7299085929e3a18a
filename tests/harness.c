/*
 * harness.c -- integration-test helpers; see harness.h.
 *
 * raw_readline() keeps a small per-descriptor buffer so that answers that
 * arrive together are split into lines correctly.
 */
#include "config.h"

#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define RB_FDS 32768 /* test_abuse opens 10,000 connections */

struct rbuf {
	char  *buf;
	size_t len;
	size_t cap;
};

static struct rbuf rbufs[RB_FDS];

long long
harness_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A start failed: show the daemon's log, then remove its folder. */
static void
daemon_fail_start(struct daemon_proc *d)
{
	char   buf[4096];
	size_t n;
	FILE  *f;

	d->pid = 0;
	if ((f = fopen(d->log, "r")) != NULL) {
		while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
			fwrite(buf, 1, n, stderr);
		fclose(f);
	}
	daemon_cleanup(d);
}

int
daemon_start(struct daemon_proc *d, const char *const *args)
{
	const char *bin = getenv("STASHD");
	const char *tmp = getenv("TESTS_TMPDIR");
	const char *argv[64];
	long long   deadline;
	pid_t	    parent;
	int	    fd, n = 0, i;

	memset(d, 0, sizeof(*d));
	if (bin == NULL)
		bin = "./stashd";
	if (tmp == NULL)
		tmp = "/tmp";
	snprintf(d->dir, sizeof(d->dir), "%s/tmp.stashd.XXXXXX", tmp);
	if (mkdtemp(d->dir) == NULL) {
		perror("mkdtemp");
		return -1;
	}
	snprintf(d->sock, sizeof(d->sock), "%s/s.sock", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/stashd.log", d->dir);
	snprintf(d->db, sizeof(d->db), "%s/stash.db", d->dir);

	argv[n++] = bin;
	argv[n++] = "-s";
	argv[n++] = d->sock;
	argv[n++] = "-d";
	argv[n++] = d->db;
	argv[n++] = "-c"; /* no system configuration file */
	argv[n++] = "/dev/null";
	for (i = 0; args != NULL && args[i] != NULL && n < 62; i++)
		argv[n++] = args[i];
	argv[n] = NULL;

	parent = getpid();
	if ((d->pid = fork()) == -1) {
		perror("fork");
		return -1;
	}
	if (d->pid == 0) {
		int lfd;

		/*
		 * A failed assertion leaves its test without daemon_stop: the
		 * daemon goes with the test program rather than outlive it.
		 */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 ||
		    getppid() != parent)
			_exit(127);
		lfd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (lfd != -1) {
			dup2(lfd, STDERR_FILENO);
			close(lfd);
		}
		if (getenv("STASHD_WRAPPER") != NULL) {
			/* e.g. valgrind: run through sh to split words */
			char   cmd[4096];
			size_t off;

			off = (size_t)snprintf(cmd, sizeof(cmd), "exec %s",
			    getenv("STASHD_WRAPPER"));
			for (i = 0; argv[i] != NULL && off < sizeof(cmd); i++)
				off += (size_t)snprintf(cmd + off,
				    sizeof(cmd) - off, " '%s'", argv[i]);
			execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		} else {
			/* execv wants char *const[]: hand it copies. */
			char *av[64];

			for (i = 0; argv[i] != NULL; i++)
				if ((av[i] = strdup(argv[i])) == NULL)
					_exit(127);
			av[i] = NULL;
			execv(bin, av);
		}
		_exit(127);
	}
	deadline = harness_now_ms() + 20000;
	while (harness_now_ms() < deadline) {
		int status;

		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			fprintf(stderr, "stashd exited at start; its log:\n");
			daemon_fail_start(d);
			return -1;
		}
		if ((fd = raw_connect(d->sock)) != -1) {
			close(fd);
			return 0;
		}
		usleep(10000);
	}
	fprintf(stderr, "stashd did not start; its log:\n");
	daemon_kill(d, SIGKILL);
	daemon_fail_start(d);
	return -1;
}

int
daemon_kill(struct daemon_proc *d, int sig)
{
	int status;

	if (d->pid <= 0)
		return -1;
	if (kill(d->pid, sig) == -1)
		return -1;
	while (waitpid(d->pid, &status, 0) == -1)
		if (errno != EINTR)
			return -1;
	d->pid = 0;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

int
daemon_stop(struct daemon_proc *d)
{
	return daemon_kill(d, SIGTERM);
}

void
daemon_cleanup(struct daemon_proc *d)
{
	char cmd[600];

	if (d->pid > 0)
		daemon_kill(d, SIGKILL);
	if (d->dir[0] == '\0' || getenv("KEEP_TMP") != NULL)
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", d->dir);
}

int
raw_connect(const char *path)
{
	struct sockaddr_un sun;
	int		   fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		return -1;
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		close(fd);
		return -1;
	}
	if (fd < RB_FDS)
		rbufs[fd].len = 0;
	return fd;
}

int
raw_send(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t	    n;

	while (len > 0) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
raw_sends(int fd, const char *s)
{
	return raw_send(fd, s, strlen(s));
}

char *
raw_readline(int fd, int timeout_ms)
{
	struct rbuf  *rb;
	struct pollfd pfd;
	long long     deadline = harness_now_ms() + timeout_ms;
	char	     *nl, *line;
	ssize_t	      n;
	size_t	      l;

	if (fd < 0 || fd >= RB_FDS)
		return NULL;
	rb = &rbufs[fd];
	for (;;) {
		if (rb->len > 0 && (nl = memchr(rb->buf, '\n', rb->len))) {
			l = (size_t)(nl - rb->buf);
			if ((line = malloc(l + 1)) == NULL)
				return NULL;
			memcpy(line, rb->buf, l);
			line[l] = '\0';
			memmove(rb->buf, nl + 1, rb->len - l - 1);
			rb->len -= l + 1;
			return line;
		}
		if (rb->cap - rb->len < 65536) {
			char *nb = realloc(rb->buf, rb->cap * 2 + 65536);

			if (nb == NULL)
				return NULL;
			rb->buf = nb;
			rb->cap = rb->cap * 2 + 65536;
		}
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1,
			(int)(deadline - harness_now_ms() > 0
				  ? deadline - harness_now_ms()
				  : 0)) <= 0)
			return NULL;
		n = recv(fd, rb->buf + rb->len, rb->cap - rb->len, 0);
		if (n <= 0)
			return NULL;
		rb->len += (size_t)n;
	}
}

/*
 * Send line and its newline in one write, then read the answer, even when
 * the send failed: the daemon may answer and close before it has read all
 * of an over-long line, and its answer is still there to read.
 */
char *
raw_roundtrip(int fd, const char *line)
{
	size_t n = strlen(line);
	char  *buf = malloc(n + 1);

	if (buf == NULL)
		return NULL;
	memcpy(buf, line, n);
	buf[n] = '\n';
	(void)raw_send(fd, buf, n + 1);
	free(buf);
	return raw_readline(fd, 10000);
}

int
raw_closed(int fd, int timeout_ms)
{
	long long     deadline = harness_now_ms() + timeout_ms;
	char	      buf[4096];
	struct pollfd pfd;
	ssize_t	      n;

	if (fd >= 0 && fd < RB_FDS)
		rbufs[fd].len = 0;
	while (harness_now_ms() < deadline) {
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, (int)(deadline - harness_now_ms())) <= 0)
			return 0;
		n = recv(fd, buf, sizeof(buf), 0);
		if (n == 0 || (n == -1 && errno == ECONNRESET))
			return 1;
		if (n == -1 && errno != EINTR && errno != EAGAIN)
			return 1;
	}
	return 0;
}

/*
 * harness.h -- integration-test helpers: a private stashd on a private
 * socket in a temporary folder, and raw line-protocol clients.
 */
#ifndef STASH_TESTS_HARNESS_H
#define STASH_TESTS_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

struct daemon_proc {
	pid_t pid;
	char  dir[256];	 /* temporary folder */
	char  sock[300]; /* socket path inside it */
	char  log[300];	 /* the daemon's stderr */
	char  db[300];	 /* the database, in dir */
};

/* Milliseconds on the monotonic clock. */
long long harness_now_ms(void);

/*
 * Start $STASHD with the socket in a new temporary folder and extra
 * arguments (NULL-terminated); wait until it accepts. 0 or -1.
 */
int daemon_start(struct daemon_proc *d, const char *const *args);
/* SIGTERM, wait; returns the exit status (or 128+signal), -1 on error. */
int daemon_stop(struct daemon_proc *d);
/* Send sig and wait for the exit; returns like daemon_stop. */
int daemon_kill(struct daemon_proc *d, int sig);
/* Remove the temporary folder. */
void daemon_cleanup(struct daemon_proc *d);

/* Connect to a socket path; the fd, or -1. */
int raw_connect(const char *path);
/* Write all of buf. 0 or -1. */
int raw_send(int fd, const void *buf, size_t len);
int raw_sends(int fd, const char *s);
/*
 * Read one line (without its \n) into a malloc'd string; NULL on EOF,
 * error, or after timeout_ms without a complete line.
 */
char *raw_readline(int fd, int timeout_ms);
/* Send one line and read the answer; the caller frees it. */
char *raw_roundtrip(int fd, const char *line);
/* Is the peer closed (EOF within timeout_ms)? 1 yes, 0 no. */
int raw_closed(int fd, int timeout_ms);

#endif /* STASH_TESTS_HARNESS_H */

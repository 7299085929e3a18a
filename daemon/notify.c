/*
 * notify.c -- the service manager's protocols, with or without libsystemd.
 *
 * Built with libsystemd (./configure --with-systemd, the default when it
 * is installed) these are sd_notify, sd_watchdog_enabled and
 * sd_listen_fds. Without it, the same small protocols are spoken here: a
 * datagram to $NOTIFY_SOCKET, and LISTEN_PID/LISTEN_FDS with descriptors
 * from 3. Either way the rest of the daemon calls notify_* and has no
 * #ifdef.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "notify.h"
#include "xmalloc.h"

#define LISTEN_FDS_START 3

#ifndef HAVE_SYSTEMD
/* sd_notify's datagram, for builds without libsystemd. */
static int
notify_datagram(const char *msg)
{
	const char	  *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	socklen_t	   len;
	ssize_t		   n;
	int		   fd;

	if (path == NULL || *path == '\0')
		return 0;
	if ((*path != '/' && *path != '@') ||
	    strlen(path) >= sizeof(sun.sun_path))
		return -1;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	if (sun.sun_path[0] == '@')
		sun.sun_path[0] = '\0'; /* abstract namespace */
	len =
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	n = sendto(
	    fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sun, len);
	close(fd);
	return n == -1 ? -1 : 1;
}
#endif

int
notify_send(const char *fmt, ...)
{
	char	msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
#ifdef HAVE_SYSTEMD
	return sd_notify(0, msg);
#else
	return notify_datagram(msg);
#endif
}

uint64_t
notify_watchdog_usec(void)
{
#ifdef HAVE_SYSTEMD
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) <= 0)
		return 0;
	return usec;
#else
	const char *s = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");

	if (s == NULL || (pid != NULL && atol(pid) != (long)getpid()))
		return 0;
	return strtoull(s, NULL, 10);
#endif
}

int
notify_listen_fd(char **cause)
{
	int n, fd;

#ifdef HAVE_SYSTEMD
	n = sd_listen_fds(1);
#else
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");

	n = 0;
	if (pid != NULL && fds != NULL && atol(pid) == (long)getpid())
		n = atoi(fds);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
#endif
	if (n <= 0)
		return -1;
	if (n > 1) {
		xasprintf(cause,
		    "socket activation passed %d sockets; stashd "
		    "listens on one",
		    n);
		return -2;
	}
	fd = LISTEN_FDS_START;
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) == -1) {
		xasprintf(
		    cause, "socket activation: fd %d: %s", fd, strerror(errno));
		return -2;
	}
	return fd;
}

int
notify_have_libsystemd(void)
{
#ifdef HAVE_SYSTEMD
	return 1;
#else
	return 0;
#endif
}

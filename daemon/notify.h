/*
 * notify.h -- talking to the service manager: readiness and status
 * (sd_notify), the watchdog, and sockets passed by socket activation
 * (sd_listen_fds). Without a service manager every call does nothing.
 */
#ifndef STASHD_NOTIFY_H
#define STASHD_NOTIFY_H

#include <stdint.h>

/* Send one state line ("READY=1", "STATUS=..."); 0 when not supervised. */
int notify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The watchdog interval asked for, in microseconds; 0 when none. */
uint64_t notify_watchdog_usec(void);
/*
 * The listening socket passed by socket activation, or -1 when stashd was
 * not socket-activated (it then binds its own). More than one socket is
 * an error: *cause says so and -2 is returned.
 */
int notify_listen_fd(char **cause);
/* Does the binary use libsystemd? For the log. */
int notify_have_libsystemd(void);

#endif /* STASHD_NOTIFY_H */

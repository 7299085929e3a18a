/*
 * mailbox.c -- a locked queue of callbacks for the loop thread.
 *
 * Posting takes the lock for a few instructions and, only when the queue
 * was empty, writes to the mailbox's eventfd, which the loop watches: a
 * burst of completions costs one wake-up. The loop swaps the whole queue
 * out under the lock and runs it without holding the lock, so a callback
 * may post again. No other thread calls libevent, so libevent runs
 * without locks of its own (no evthread_use_pthreads): the loop's every
 * event_add and callback would take one.
 *
 * A turn of the loop runs callbacks for at most MAILBOX_SLICE_US and
 * leaves the rest for the next turn (a zero timeout), so that a burst --
 * a large applied transaction unpins tens of thousands of writes -- does
 * not hold up the clients' reads and writes in between.
 *
 * The eventfd's event has priority 0, ahead of the clients' (1, when the
 * base has two priorities, as the daemon's has): a group's
 * acknowledgements reach its clients before the loop reads what other
 * clients sent meanwhile, and those reads then find the next writes of
 * the first. The zero-timeout rest of a burst keeps the default priority
 * and waits its turn behind the clients.
 */
#include "config.h"

#include <sys/eventfd.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "mailbox.h"
#include "monotime.h"
#include "xmalloc.h"

struct mail {
	mailbox_fn   fn;
	void	    *arg;
	struct mail *next;
};

struct mailbox {
	pthread_mutex_t lock;
	struct mail    *head;
	struct mail    *tail;
	int		efd;   /* eventfd: readable when mail waits */
	struct event   *ev;    /* on efd */
	struct mail    *local; /* taken out, not yet run (the loop's) */
	struct mail    *local_tail;
	struct event   *more; /* the next turn runs the rest */
};

#define MAILBOX_SLICE_US 1000

/* Move what was posted to the loop's own list. */
static void
mailbox_take(struct mailbox *mb)
{
	struct mail *m, *tail;

	pthread_mutex_lock(&mb->lock);
	m = mb->head;
	tail = mb->tail;
	mb->head = mb->tail = NULL;
	pthread_mutex_unlock(&mb->lock);
	if (m == NULL)
		return;
	if (mb->local_tail != NULL)
		mb->local_tail->next = m;
	else
		mb->local = m;
	mb->local_tail = tail;
}

/* Run the next callback taken out; 0 when there is none. */
static int
mailbox_run_one(struct mailbox *mb)
{
	struct mail *m = mb->local;

	if (m == NULL)
		return 0;
	if ((mb->local = m->next) == NULL)
		mb->local_tail = NULL;
	m->fn(m->arg);
	free(m);
	return 1;
}

static void
mailbox_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mailbox *mb = arg;
	struct timeval	now = {0, 0};
	uint64_t	start = monotime_us();
	unsigned	n = 0;

	(void)fd;
	if (what & EV_READ) {
		uint64_t v;

		/* Reset before taking: a post after the take writes again. */
		if (read(mb->efd, &v, sizeof(v)) == -1 && errno != EAGAIN)
			fatal("mailbox: read eventfd");
	}
	mailbox_take(mb);
	while (mailbox_run_one(mb)) {
		if (++n % 8 == 0 && monotime_us() - start >= MAILBOX_SLICE_US)
			break;
	}
	if (mb->local != NULL && evtimer_add(mb->more, &now) == -1)
		fatalx("evtimer_add");
}

struct mailbox *
mailbox_create(struct event_base *base)
{
	struct mailbox *mb = xcalloc(1, sizeof(*mb));

	if (pthread_mutex_init(&mb->lock, NULL) != 0)
		fatalx("pthread_mutex_init");
	if ((mb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		fatal("eventfd");
	if ((mb->ev = event_new(base, mb->efd, EV_READ | EV_PERSIST, mailbox_cb,
		 mb)) == NULL ||
	    (mb->more = evtimer_new(base, mailbox_cb, mb)) == NULL ||
	    event_priority_set(mb->ev, 0) == -1 ||
	    event_add(mb->ev, NULL) == -1)
		fatalx("event_new");
	return mb;
}

struct event_base *
mailbox_base(struct mailbox *mb)
{
	return event_get_base(mb->ev);
}

void
mailbox_post(struct mailbox *mb, mailbox_fn fn, void *arg)
{
	struct mail *m = xmalloc(sizeof(*m));
	int	     wake;

	m->fn = fn;
	m->arg = arg;
	m->next = NULL;
	pthread_mutex_lock(&mb->lock);
	wake = mb->head == NULL;
	if (mb->tail != NULL)
		mb->tail->next = m;
	else
		mb->head = m;
	mb->tail = m;
	pthread_mutex_unlock(&mb->lock);
	if (wake) {
		uint64_t one = 1;

		/* EAGAIN: the counter is full, the loop is woken anyway. */
		while (write(mb->efd, &one, sizeof(one)) == -1) {
			if (errno == EAGAIN)
				break;
			if (errno != EINTR)
				fatal("mailbox: write eventfd");
		}
	}
}

void
mailbox_drain(struct mailbox *mb)
{
	mailbox_take(mb);
	while (mailbox_run_one(mb))
		;
}

void
mailbox_free(struct mailbox *mb)
{
	struct mail *m, *next;

	if (mb == NULL)
		return;
	for (m = mb->head; m != NULL; m = next) {
		next = m->next;
		free(m);
	}
	for (m = mb->local; m != NULL; m = next) {
		next = m->next;
		free(m);
	}
	event_free(mb->ev);
	event_free(mb->more);
	close(mb->efd);
	pthread_mutex_destroy(&mb->lock);
	free(mb);
}

/*
 * mailbox.c -- a locked queue of callbacks for the loop thread.
 *
 * Posting takes the lock for a few instructions and activates the loop's
 * event only when the queue was empty, so a burst of completions costs one
 * wake-up. The loop swaps the whole queue out under the lock and runs it
 * without holding the lock, so a callback may post again.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>

#include <event2/event.h>

#include "log.h"
#include "mailbox.h"
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
	struct event   *ev;
};

static void
mailbox_cb(evutil_socket_t fd, short what, void *arg)
{
	mailbox_drain(arg);
}

struct mailbox *
mailbox_create(struct event_base *base)
{
	struct mailbox *mb = xcalloc(1, sizeof(*mb));

	if (pthread_mutex_init(&mb->lock, NULL) != 0)
		fatalx("pthread_mutex_init");
	if ((mb->ev = event_new(base, -1, 0, mailbox_cb, mb)) == NULL)
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
	if (wake)
		event_active(mb->ev, EV_READ, 0);
	pthread_mutex_unlock(&mb->lock);
}

void
mailbox_drain(struct mailbox *mb)
{
	struct mail *m, *next;

	pthread_mutex_lock(&mb->lock);
	m = mb->head;
	mb->head = mb->tail = NULL;
	pthread_mutex_unlock(&mb->lock);
	for (; m != NULL; m = next) {
		next = m->next;
		m->fn(m->arg);
		free(m);
	}
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
	event_free(mb->ev);
	pthread_mutex_destroy(&mb->lock);
	free(mb);
}

/*
 * mailbox.h -- hand work from other threads to the event-loop thread.
 *
 * Any thread posts a function and its argument; the loop runs them, in the
 * order posted, from one libevent callback. The loop is woken through an
 * eventfd of the mailbox's own; no other thread calls libevent.
 */
#ifndef STASHD_MAILBOX_H
#define STASHD_MAILBOX_H

struct event_base;
struct mailbox;

typedef void (*mailbox_fn)(void *arg);

struct mailbox *mailbox_create(struct event_base *base);
/* Run fn(arg) on the loop thread, soon. Never fails (OOM is fatal). */
void mailbox_post(struct mailbox *mb, mailbox_fn fn, void *arg);
/* Run everything posted so far, now, on the calling (loop) thread. */
void mailbox_drain(struct mailbox *mb);
void mailbox_free(struct mailbox *mb);
/* The loop the mailbox wakes. */
struct event_base *mailbox_base(struct mailbox *mb);

#endif /* STASHD_MAILBOX_H */

/*
 * keymap.h -- the loop's small index of keys with work in flight.
 *
 * An entry exists while the latest write of a key taken (last) is neither
 * pinned in the cache nor applied -- not acknowledged yet, or the cache
 * failed to pin it; it is what lets the loop decide if_version and del in
 * journal order without waiting for SQLite. An acknowledged write is
 * pinned in the cache until applied, and the cache answers for it from
 * then on: the map holds about a group of writes, not every write of the
 * apply delay. Entries come from the write queue's pool (qpool.h) and are
 * short-lived: keymap_renew moves an entry next to each new write of its
 * key, so that a key written without pause never holds an old chunk of
 * the pool.
 */
#ifndef STASHD_KEYMAP_H
#define STASHD_KEYMAP_H

#include <stddef.h>
#include <stdint.h>

struct keymap;

struct kstate {
	struct kstate *next; /* hash chain */
	uint64_t       hash;
	uint64_t       last_version; /* of the latest submitted write */
	int	       last_is_del;
	/* The latest write taken (struct wreq), while not applied. */
	void  *last;
	size_t klen;
	char   key[];
};

struct keymap *keymap_create(void);
void	       keymap_free(struct keymap *m);
struct kstate *keymap_find(struct keymap *m, const char *key, size_t klen);
/* Find or add. */
struct kstate *keymap_get(struct keymap *m, const char *key, size_t klen);
/*
 * Move st to a fresh allocation and return it; st is gone. Pointers to it
 * held elsewhere (the last write's) are the caller's to update.
 */
struct kstate *keymap_renew(struct keymap *m, struct kstate *st);
/* Remove st if its key has no write in flight any more (last NULL). */
void   keymap_put(struct keymap *m, struct kstate *st);
size_t keymap_count(const struct keymap *m);

/* The hash of a key (FNV-1a), for tables of keys elsewhere too. */
uint64_t keymap_hash(const char *key, size_t klen);

#endif /* STASHD_KEYMAP_H */

/*
 * keymap.c -- a chained hash table of struct kstate, growing by doubling.
 *
 * It holds only keys whose latest write is in flight, so it stays small;
 * an entry goes as soon as that write is pinned in the cache or applied.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "keymap.h"
#include "log.h"
#include "qpool.h"
#include "xmalloc.h"

struct keymap {
	struct kstate **table;
	size_t		size; /* power of two */
	size_t		count;
};

/* FNV-1a, 64 bits: keys here are few and short-lived. */
uint64_t
keymap_hash(const char *key, size_t klen)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t	 i;

	for (i = 0; i < klen; i++) {
		h ^= (unsigned char)key[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

struct keymap *
keymap_create(void)
{
	struct keymap *m = xcalloc(1, sizeof(*m));

	m->size = 64;
	m->table = xcalloc(m->size, sizeof(*m->table));
	return m;
}

void
keymap_free(struct keymap *m)
{
	struct kstate *st, *next;
	size_t	       i;

	if (m == NULL)
		return;
	for (i = 0; i < m->size; i++)
		for (st = m->table[i]; st != NULL; st = next) {
			next = st->next;
			qpool_free(st);
		}
	free(m->table);
	free(m);
}

struct kstate *
keymap_find(struct keymap *m, const char *key, size_t klen)
{
	uint64_t       h = keymap_hash(key, klen);
	struct kstate *st;

	for (st = m->table[h & (m->size - 1)]; st != NULL; st = st->next)
		if (st->hash == h && st->klen == klen &&
		    memcmp(st->key, key, klen) == 0)
			return st;
	return NULL;
}

static void
keymap_grow(struct keymap *m)
{
	struct kstate **t, *st, *next;
	size_t		size = m->size * 2, i;

	t = xcalloc(size, sizeof(*t));
	for (i = 0; i < m->size; i++)
		for (st = m->table[i]; st != NULL; st = next) {
			next = st->next;
			st->next = t[st->hash & (size - 1)];
			t[st->hash & (size - 1)] = st;
		}
	free(m->table);
	m->table = t;
	m->size = size;
}

struct kstate *
keymap_get(struct keymap *m, const char *key, size_t klen)
{
	struct kstate *st;
	size_t	       b;

	if ((st = keymap_find(m, key, klen)) != NULL)
		return st;
	if (m->count >= m->size)
		keymap_grow(m);
	st = qpool_calloc(sizeof(*st) + klen);
	st->hash = keymap_hash(key, klen);
	st->klen = klen;
	memcpy(st->key, key, klen);
	b = st->hash & (m->size - 1);
	st->next = m->table[b];
	m->table[b] = st;
	m->count++;
	return st;
}

struct kstate *
keymap_renew(struct keymap *m, struct kstate *st)
{
	struct kstate **pp, *n;
	size_t		size = sizeof(*st) + st->klen;

	for (pp = &m->table[st->hash & (m->size - 1)]; *pp != st;
	     pp = &(*pp)->next)
		if (*pp == NULL)
			fatalx("keymap_renew: entry not in the map");
	n = qpool_alloc(size);
	memcpy(n, st, size);
	*pp = n;
	qpool_free(st);
	return n;
}

void
keymap_put(struct keymap *m, struct kstate *st)
{
	struct kstate **pp;

	if (st->last != NULL)
		return;
	for (pp = &m->table[st->hash & (m->size - 1)]; *pp != NULL;
	     pp = &(*pp)->next) {
		if (*pp == st) {
			*pp = st->next;
			m->count--;
			qpool_free(st);
			return;
		}
	}
}

size_t
keymap_count(const struct keymap *m)
{
	return m->count;
}

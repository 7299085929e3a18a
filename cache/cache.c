/*
 * cache.c -- a memory-bounded LRU cache: hash index, LRU list, byte
 * accounting, TTL and pinning. See cache.h for the contract.
 *
 * Layout
 *
 * An entry is one allocation: a 43-byte header (on LP64) followed by the
 * key and then the value, allocated as offsetof(data) + klen + vlen. The
 * header holds the hash-chain link, the two links of its list, the
 * version, vlen, the expiry time, klen and the flags. The hash of the key
 * is not stored: it is recomputed when an entry moves to a new table or is
 * evicted, which for the short keys a cache holds costs a few nanoseconds.
 *
 * The index is a chained hash table with a power-of-two bucket array. When
 * entries pass twice the buckets (load factor above 2), a table of twice the
 * size is allocated and buckets are moved to it a few at a time by every
 * cache_set, cache_get, cache_del, cache_unpin and cache_sweep, as Redis's
 * dict does, so no single call pays for moving a million entries. While
 * rehashing, buckets of ht[0] below rehashidx are empty, new entries go to
 * ht[1], and lookups look in both. Growth is an optimisation, never a
 * condition of correctness: when the new array cannot be allocated, or does
 * not fit under max_memory as things are, the old table is kept (longer
 * chains) and growth is tried again on a later insert. We do not evict
 * entries to make room for a bigger table: that would throw away a tenth
 * of a cache of 100-byte values, in one call. The table is never shrunk, except
 * that an empty cache whose bucket array alone is over the limit (after
 * cache_set_max_memory) gives it back; the array is allocated lazily by the
 * first insert.
 *
 * The hash is our own: a wyhash-like multiply-and-fold of 16-byte blocks.
 * Before each 64x64->128 multiply, one word is xored with a secret and the
 * other with the running state, both derived from cfg->seed, so the
 * collisions of one seed are not those of another and an attacker who does
 * not know the seed cannot precompute keys that collide (hash flooding).
 * For 1M sequential keys the chain lengths follow the Poisson law of an
 * ideal hash (38.5% empty buckets, 36.8% with one entry, longest 8 or 9).
 *
 * Unpinned entries are on the LRU list, most recently used at the head;
 * pinned entries are on a list of their own, in the order they were pinned
 * (cache_unpin_upto walks it; a lookup does not move them). Pinned entries
 * can never be evicted, so keeping them off the LRU list means eviction
 * never has to step over them: it always takes the LRU tail, in O(1). An
 * entry that is unpinned joins the LRU list at its head.
 *
 * Accounting
 *
 * bytes = table_bytes + sum of cache_entry_size() of every entry, which is
 * exactly what the cache asks of the allocator (the struct cache itself is
 * not charged). pinned_bytes is the part of it held by pinned entries, so
 * the bytes that eviction could free are bytes - table_bytes -
 * pinned_bytes. cache_set plans before it changes anything: if evicting
 * every unpinned entry (other than the one being replaced) would not make
 * room, it returns CACHE_EFULL and nothing has moved; otherwise it allocates
 * the new entry (CACHE_ENOMEM leaves everything as it was), and only then
 * evicts. An entry that could not fit even in an otherwise empty cache
 * (its charge plus the current bucket arrays exceed max_memory) is
 * CACHE_EINVAL, "too large", not CACHE_EFULL, which means "try later".
 *
 * Invariant: max_memory == 0 || bytes <= max_memory || npinned > 0. The
 * cache exceeds its limit only after cache_set_max_memory shrank it below
 * what the pinned entries (and the bucket array that indexes them) need;
 * cache_unpin and cache_del evict back down as soon as pins go.
 *
 * Time
 *
 * Expiry times are u64 milliseconds on the cache clock: cfg->clock minus
 * its value at creation, plus one. Only an entry that has one keeps it: 8
 * bytes after its value, flagged CACHE_F_EXPIRES, charged with the entry. An
 * entry expires when the clock reaches expires; pinned entries never expire
 * while pinned. Expired entries are reclaimed when looked up by cache_get,
 * cache_del or cache_unpin, and by cache_sweep, whose cursor walks the
 * buckets of ht[0]; while rehashing, bucket i of ht[0] splits into buckets
 * i and i + size of ht[1], and a sweep step visits all three, so a cursor
 * that survives the switch to the bigger table misses nothing.
 *
 * Measured overhead (1,000,000 entries, 16-byte keys, 100-byte values,
 * x86_64, glibc 2.36, gcc -O2): a small program creates an unlimited
 * cache, reads mallinfo2(), sets the keys, sweeps until the last rehash is
 * done, and reads cache_get_stats() and mallinfo2() again.
 *
 *  - charged: (bytes - key bytes - value bytes) / N = 43.19 bytes per
 *    entry: the 39-byte header plus 4.19 bytes of the 2^19-bucket array;
 *    51.19 when every entry has an expiry (8 bytes more each).
 *  - real heap: (uordblks + hblkhd after, minus before, minus key and
 *    value bytes) / N = 64.20 bytes per entry (hblkhd holds the bucket
 *    array, which glibc maps with mmap): glibc rounds each 155-byte request
 *    up to a 176-byte chunk (8 bytes of chunk header, 16-byte steps), which
 *    adds 21 bytes to what is charged; with an expiry, 163 bytes take the
 *    same chunk, and the real figure is 64.20 too.
 *
 * The header is 39 bytes; the bucket array adds 8 bytes per bucket, that
 * is 8 / load factor per entry: 4 to 8 bytes, as the load factor stays
 * between 1 and 2 (chains of one or two entries on average), and up to 12
 * for the short while a doubling is in progress. So the charged overhead
 * is 43 to 47 bytes an entry without an expiry depending on where N falls
 * between two doublings: 43.19 at a million, within the 48-byte goal. (The
 * header was 43 bytes while it held a 32-bit expiry in whole seconds:
 * 47.19 charged, 64.20 real; with a load factor of 1 and that header,
 * 51.39 charged and 68.39 real.)
 */

/*
 * Entries per bucket before the table doubles. At 2, chains hold 1 to 2
 * entries on average and the bucket array costs 4 to 8 bytes an entry.
 */
#define CACHE_LOAD_MAX 2

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"

#define CACHE_MIN_BUCKETS  8  /* first bucket array */
#define CACHE_REHASH_STEPS 2  /* buckets moved per operation */
#define CACHE_REHASH_EMPTY 10 /* empty buckets skipped per move */
#define CACHE_F_ALL	   (CACHE_F_PINNED | CACHE_F_TOMBSTONE | CACHE_F_RAW)
#define CACHE_F_EXPIRES	   0x80 /* the cache's own: an expiry follows */
#define CACHE_EXPIRY_BYTES 8

struct cache_entry {
	struct cache_entry *hnext; /* hash chain */
	struct cache_entry *prev;  /* LRU or pinned list */
	struct cache_entry *next;
	uint64_t	    version;
	uint32_t	    vlen;
	uint16_t	    klen;
	uint8_t		    flags;  /* CACHE_F_* */
	char		    data[]; /* key, value, then expiry if it has one */
};

#define CACHE_ENTRY_HDR offsetof(struct cache_entry, data)

_Static_assert(CACHE_ENTRY_HDR <= 40, "the entry header grew");
_Static_assert(CACHE_KEY_MAX <= UINT16_MAX, "klen is a u16");

/* A doubly-linked list of entries, most recently used at the head. */
struct cache_list {
	struct cache_entry *head;
	struct cache_entry *tail;
};

/* A bucket array; size is a power of two, or 0 when not allocated. */
struct cache_table {
	struct cache_entry **b;
	size_t		     size;
};

struct cache {
	struct cache_table ht[2];     /* ht[1] while rehashing */
	size_t		   rehashidx; /* next bucket to move */
	size_t		   cursor;    /* next bucket to sweep */

	struct cache_list lru;	  /* unpinned entries */
	struct cache_list pinned; /* pinned entries */

	uint64_t k0, k1; /* hash secrets */

	size_t	 max_memory;
	size_t	 bytes;
	size_t	 table_bytes;
	size_t	 pinned_bytes; /* reserved bytes included */
	size_t	 reserved;     /* by cache_reserve */
	uint64_t entries;
	uint64_t npinned;
	uint64_t hits;
	uint64_t misses;
	uint64_t evictions;
	uint64_t expirations;

	uint64_t (*clock)(void *);
	void	*clock_arg;
	uint64_t clock_base;

	void *(*alloc)(size_t, void *);
	void (*free)(void *, void *);
	void *alloc_arg;
};

#ifdef CACHE_DEBUG
static void cache_verify(const struct cache *);
#define CACHE_VERIFY(c) cache_verify(c)
#else
#define CACHE_VERIFY(c)                                                        \
	do {                                                                   \
	} while (0)
#endif

/* The limit holds unless pinned entries hold the cache above it. */
#define CACHE_LIMIT_OK(c)                                                      \
	((c)->max_memory == 0 || (c)->bytes <= (c)->max_memory ||              \
	    (c)->npinned > 0 || (c)->reserved > 0)

/* malloc behind the allocator hook. */
static void *
cache_default_alloc(size_t size, void *arg)
{
	(void)arg;
	return malloc(size);
}

/* free behind the allocator hook. */
static void
cache_default_free(void *p, void *arg)
{
	(void)arg;
	free(p);
}

/* CLOCK_MONOTONIC in milliseconds, the default clock. */
static uint64_t
cache_default_clock(void *arg)
{
	struct timespec ts;

	(void)arg;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		return 0; /* cannot happen; time then stands still */
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The cache clock: milliseconds since creation plus one (0 means never). */
static uint64_t
cache_now(const struct cache *c)
{
	uint64_t now;

	now = c->clock(c->clock_arg);
	if (now < c->clock_base)
		return 1;
	return now - c->clock_base + 1;
}

/* e's expiry on the cache clock, 0 for none. */
static uint64_t
cache_expires(const struct cache_entry *e)
{
	uint64_t t;

	if (!(e->flags & CACHE_F_EXPIRES))
		return 0;
	memcpy(&t, e->data + e->klen + e->vlen, sizeof(t));
	return t;
}

/* Whether e has expired at now (a clock value fetched on first need). */
static int
cache_expired(const struct cache *c, const struct cache_entry *e, uint64_t *now)
{
	if (!(e->flags & CACHE_F_EXPIRES) || (e->flags & CACHE_F_PINNED))
		return 0;
	if (*now == 0)
		*now = cache_now(c);
	return *now >= cache_expires(e);
}

/* Fold the 128-bit product of a and b into 64 bits. */
static uint64_t
cache_mum(uint64_t a, uint64_t b)
{
#ifdef __SIZEOF_INT128__
	unsigned __int128 r;

	r = (unsigned __int128)a * b;
	return (uint64_t)r ^ (uint64_t)(r >> 64);
#else
	uint64_t ha = a >> 32, la = (uint32_t)a;
	uint64_t hb = b >> 32, lb = (uint32_t)b;
	uint64_t hh = ha * hb, hl = ha * lb, lh = la * hb, ll = la * lb;
	uint64_t lo, t, carry;

	t = ll + (hl << 32);
	carry = t < ll;
	lo = t + (lh << 32);
	carry += lo < t;
	return lo ^ (hh + (hl >> 32) + (lh >> 32) + carry);
#endif
}

/* Eight bytes at p, in native order. */
static uint64_t
cache_read64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* Four bytes at p, in native order. */
static uint64_t
cache_read32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/*
 * The seeded hash of a key. Whole 16-byte blocks are folded in one by one;
 * the last 1 to 16 bytes are read as two (possibly overlapping) words, so
 * every byte counts once the length is mixed in.
 */
static uint64_t
cache_hash(const struct cache *c, const void *key, size_t len)
{
	const unsigned char *p = key;
	uint64_t	     h, a, b;
	size_t		     n = len;

	h = c->k0 ^ ((uint64_t)len * 0x9e3779b97f4a7c15ULL);
	while (n > 16) {
		h = cache_mum(cache_read64(p) ^ c->k1, cache_read64(p + 8) ^ h);
		p += 16;
		n -= 16;
	}
	if (n >= 8) {
		a = cache_read64(p);
		b = cache_read64(p + n - 8);
	} else if (n >= 4) {
		a = cache_read32(p);
		b = cache_read32(p + n - 4);
	} else if (n > 0) {
		a = ((uint64_t)p[0] << 16) | ((uint64_t)p[n >> 1] << 8) |
		    p[n - 1];
		b = 0;
	} else
		a = b = 0;
	h = cache_mum(a ^ c->k1, b ^ h);
	return cache_mum(h ^ c->k0, (uint64_t)len ^ c->k1);
}

/* splitmix64: spread one seed into independent secrets. */
static uint64_t
cache_splitmix(uint64_t *s)
{
	uint64_t z;

	z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Whether a key can be stored or looked up. */
static int
cache_key_ok(const void *key, size_t klen)
{
	return key != NULL && klen >= 1 && klen <= CACHE_KEY_MAX;
}

/* The charge of an entry that exists. */
static size_t
cache_charge(const struct cache_entry *e)
{
	return CACHE_ENTRY_HDR + e->klen + e->vlen +
	       ((e->flags & CACHE_F_EXPIRES) ? CACHE_EXPIRY_BYTES : 0);
}

/* Insert e at the head (most recently used end) of l. */
static void
cache_list_insert(struct cache_list *l, struct cache_entry *e)
{
	e->prev = NULL;
	e->next = l->head;
	if (l->head != NULL)
		l->head->prev = e;
	else
		l->tail = e;
	l->head = e;
}

/* Take e off l. */
static void
cache_list_remove(struct cache_list *l, struct cache_entry *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		l->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		l->tail = e->prev;
	e->prev = e->next = NULL;
}

/* The list e is on. */
static struct cache_list *
cache_list_of(struct cache *c, const struct cache_entry *e)
{
	return (e->flags & CACHE_F_PINNED) ? &c->pinned : &c->lru;
}

/* Whether buckets are being moved from ht[0] to ht[1]. */
static int
cache_rehashing(const struct cache *c)
{
	return c->ht[1].size != 0;
}

/* Allocate a zeroed bucket array of size buckets; NULL on failure. */
static struct cache_entry **
cache_table_alloc(struct cache *c, size_t size)
{
	struct cache_entry **b;

	if ((b = c->alloc(size * sizeof(*b), c->alloc_arg)) == NULL)
		return NULL;
	memset(b, 0, size * sizeof(*b));
	return b;
}

/* Free both bucket arrays of an empty cache. */
static void
cache_table_free(struct cache *c)
{
	int t;

	assert(c->entries == 0);
	for (t = 0; t < 2; t++) {
		if (c->ht[t].b != NULL)
			c->free(c->ht[t].b, c->alloc_arg);
		c->ht[t].b = NULL;
		c->ht[t].size = 0;
	}
	c->bytes -= c->table_bytes;
	c->table_bytes = 0;
	c->rehashidx = 0;
	c->cursor = 0;
	assert(c->bytes == c->reserved);
}

/*
 * Find key with hash h. Returns the entry, and in *linkp the pointer that
 * points to it in its chain, or NULL.
 */
static struct cache_entry *
cache_find(struct cache *c, uint64_t h, const void *key, size_t klen,
    struct cache_entry ***linkp)
{
	struct cache_entry **lp, *e;
	size_t		     i;
	int		     t;

	for (t = 0; t < 2 && c->ht[t].size != 0; t++) {
		i = h & (c->ht[t].size - 1);
		if (t == 0 && cache_rehashing(c) && i < c->rehashidx)
			continue; /* already moved to ht[1] */
		for (lp = &c->ht[t].b[i]; (e = *lp) != NULL; lp = &e->hnext) {
			if (e->klen == klen &&
			    memcmp(e->data, key, klen) == 0) {
				*linkp = lp;
				return e;
			}
		}
	}
	return NULL;
}

/* The bucket a lookup of hash h starts from (as cache_find walks them). */
static struct cache_entry *const *
cache_bucket(const struct cache *c, uint64_t h)
{
	size_t i;

	if (c->ht[0].size == 0)
		return NULL;
	i = h & (c->ht[0].size - 1);
	if (cache_rehashing(c) && i < c->rehashidx)
		return &c->ht[1].b[h & (c->ht[1].size - 1)];
	return &c->ht[0].b[i];
}

uint64_t
cache_key_hash(const struct cache *c, const void *key, size_t klen)
{
	return cache_key_ok(key, klen) ? cache_hash(c, key, klen) : 0;
}

void
cache_prefetch(const struct cache *c, const void *key, size_t klen, int step)
{
	cache_prefetch_h(c, key, klen, cache_key_hash(c, key, klen), step);
}

void
cache_prefetch_h(
    const struct cache *c, const void *key, size_t klen, uint64_t h, int step)
{
	struct cache_entry *const *b;
	const struct cache_entry  *e;

	if (!cache_key_ok(key, klen) || (b = cache_bucket(c, h)) == NULL)
		return;
	if (step == 0) {
		__builtin_prefetch(b);
		return;
	}
	if ((e = *b) == NULL)
		return;
	if (step == 1) {
		/*
		 * The header, and the line the key would end in (computed as
		 * a number: the entry there may be shorter).
		 */
		__builtin_prefetch(e);
		__builtin_prefetch(
		    (const void *)((uintptr_t)e + CACHE_ENTRY_HDR + klen - 1));
		return;
	}
	if (e->klen != klen || memcmp(e->data, key, klen) != 0) {
		if (e->hnext != NULL)
			__builtin_prefetch(e->hnext);
		return;
	}
	/* Replacing or moving e unlinks it from its list. */
	if (e->prev != NULL)
		__builtin_prefetch(e->prev);
	if (e->next != NULL)
		__builtin_prefetch(e->next);
}

/* The pointer that points to e in its hash chain. */
static struct cache_entry **
cache_link(struct cache *c, const struct cache_entry *e)
{
	struct cache_entry **lp = NULL, *found;

	found = cache_find(
	    c, cache_hash(c, e->data, e->klen), e->data, e->klen, &lp);
	assert(found == e);
	(void)found;
	return lp;
}

/* Put e into the table new entries go to. */
static void
cache_table_insert(struct cache *c, struct cache_entry *e, uint64_t h)
{
	struct cache_table *t;
	size_t		    i;

	t = &c->ht[cache_rehashing(c) ? 1 : 0];
	assert(t->size != 0);
	i = h & (t->size - 1);
	e->hnext = t->b[i];
	t->b[i] = e;
}

/* Unlink e (*lp points to it) from its chain and list, and free it. */
static void
cache_remove(struct cache *c, struct cache_entry *e, struct cache_entry **lp)
{
	size_t size;

	assert(*lp == e);
	size = cache_charge(e);
	*lp = e->hnext;
	cache_list_remove(cache_list_of(c, e), e);
	if (e->flags & CACHE_F_PINNED) {
		assert(c->npinned > 0 && c->pinned_bytes >= size);
		c->npinned--;
		c->pinned_bytes -= size;
	}
	assert(c->entries > 0 && c->bytes >= c->table_bytes + size);
	c->entries--;
	c->bytes -= size;
	c->free(e, c->alloc_arg);
}

/* Evict the least recently used unpinned entry. */
static void
cache_evict_one(struct cache *c)
{
	struct cache_entry *e = c->lru.tail;

	assert(e != NULL && !(e->flags & CACHE_F_PINNED));
	cache_remove(c, e, cache_link(c, e));
	c->evictions++;
}

/* Move up to n non-empty buckets from ht[0] to ht[1]. */
static void
cache_rehash(struct cache *c, size_t n)
{
	struct cache_entry *e, *next;
	size_t		    empty, i;

	if (!cache_rehashing(c))
		return;
	if (n > SIZE_MAX / CACHE_REHASH_EMPTY)
		empty = SIZE_MAX;
	else
		empty = n * CACHE_REHASH_EMPTY;
	assert(c->ht[1].size == 2 * c->ht[0].size);
	while (n > 0 && c->rehashidx < c->ht[0].size) {
		e = c->ht[0].b[c->rehashidx];
		if (e == NULL) {
			c->rehashidx++;
			if (empty-- == 0)
				break;
			continue;
		}
		for (; e != NULL; e = next) {
			next = e->hnext;
			i = cache_hash(c, e->data, e->klen) &
			    (c->ht[1].size - 1);
			e->hnext = c->ht[1].b[i];
			c->ht[1].b[i] = e;
		}
		c->ht[0].b[c->rehashidx++] = NULL;
		n--;
	}
	if (c->rehashidx < c->ht[0].size)
		return;

	/* Done: ht[1] becomes the table. The sweep cursor stays valid. */
	c->free(c->ht[0].b, c->alloc_arg);
	c->bytes -= c->ht[0].size * sizeof(*c->ht[0].b);
	c->table_bytes -= c->ht[0].size * sizeof(*c->ht[0].b);
	c->ht[0] = c->ht[1];
	c->ht[1].b = NULL;
	c->ht[1].size = 0;
	c->rehashidx = 0;
}

/* Start doubling the table if the load factor passed its limit and it fits. */
static void
cache_grow(struct cache *c)
{
	struct cache_entry **b;
	size_t		     size, cost;

	if (cache_rehashing(c) || c->ht[0].size == 0 ||
	    c->entries <= CACHE_LOAD_MAX * c->ht[0].size)
		return;
	if (c->ht[0].size > SIZE_MAX / 2 / sizeof(*b))
		return;
	size = c->ht[0].size * 2;
	cost = size * sizeof(*b);
	if (c->max_memory != 0 &&
	    (c->bytes > c->max_memory || cost > c->max_memory - c->bytes))
		return; /* keep the old table; see above */
	if ((b = cache_table_alloc(c, size)) == NULL)
		return;
	c->ht[1].b = b;
	c->ht[1].size = size;
	c->rehashidx = 0;
	c->bytes += cost;
	c->table_bytes += cost;
}

/*
 * Evict unpinned entries while over the limit. An empty cache whose bucket
 * arrays alone are over it gives them back.
 */
static void
cache_enforce(struct cache *c)
{
	if (c->max_memory == 0)
		return;
	while (c->bytes > c->max_memory && c->lru.tail != NULL)
		cache_evict_one(c);
	if (c->bytes > c->max_memory && c->entries == 0)
		cache_table_free(c);
	assert(CACHE_LIMIT_OK(c));
}

/* Create an empty cache; the bucket array comes with the first entry. */
struct cache *
cache_create(const struct cache_config *cfg)
{
	static const struct cache_config defaults;
	struct cache			*c;
	uint64_t			 s;

	if (cfg == NULL)
		cfg = &defaults;
	if ((cfg->alloc == NULL) != (cfg->free == NULL))
		return NULL; /* one hook without the other */
	if (cfg->alloc != NULL)
		c = cfg->alloc(sizeof(*c), cfg->alloc_arg);
	else
		c = malloc(sizeof(*c));
	if (c == NULL)
		return NULL;
	memset(c, 0, sizeof(*c));

	c->alloc = cfg->alloc != NULL ? cfg->alloc : cache_default_alloc;
	c->free = cfg->free != NULL ? cfg->free : cache_default_free;
	c->alloc_arg = cfg->alloc_arg;
	c->clock = cfg->clock != NULL ? cfg->clock : cache_default_clock;
	c->clock_arg = cfg->clock_arg;
	c->clock_base = c->clock(c->clock_arg);
	c->max_memory = cfg->max_memory;

	/* k1 is odd with its top bit set: k1 ^ len is never 0. */
	s = cfg->seed;
	c->k0 = cache_splitmix(&s);
	c->k1 = cache_splitmix(&s) | 0x8000000000000001ULL;
	CACHE_VERIFY(c);
	return c;
}

/* Free every entry, the bucket arrays and the cache. */
void
cache_destroy(struct cache *c)
{
	struct cache_list  *lists[2];
	struct cache_entry *e, *next;
	int		    i;

	if (c == NULL)
		return;
	lists[0] = &c->lru;
	lists[1] = &c->pinned;
	for (i = 0; i < 2; i++) {
		for (e = lists[i]->head; e != NULL; e = next) {
			next = e->next;
			c->free(e, c->alloc_arg);
		}
	}
	for (i = 0; i < 2; i++) {
		if (c->ht[i].b != NULL)
			c->free(c->ht[i].b, c->alloc_arg);
	}
	c->free(c, c->alloc_arg);
}

/* Set e's fields, and its value: its key is in place. */
static void
cache_fill(struct cache *c, struct cache_entry *e, const void *val, size_t vlen,
    uint64_t version, uint64_t ttl, unsigned flags)
{
	uint64_t now, t;

	e->version = version;
	e->vlen = (uint32_t)vlen;
	e->flags = (uint8_t)flags;
	if (vlen != 0)
		memcpy(e->data + e->klen, val, vlen);
	if (ttl != 0) {
		now = cache_now(c);
		t = ttl > UINT64_MAX - now ? UINT64_MAX : now + ttl;
		e->flags |= CACHE_F_EXPIRES;
		memcpy(e->data + e->klen + vlen, &t, sizeof(t));
	}
}

/*
 * Replace old by an entry of its own size, planned to fit: in place, with
 * neither allocation nor hash-chain change. It ends up where a new entry
 * would: at the head of its list (the newest pin, or the most recently
 * used). The bytes are the same; as in cache_put, unpinned entries go
 * while pins hold the cache above its limit.
 */
static int
cache_reuse(struct cache *c, struct cache_entry *old, const void *val,
    size_t vlen, uint64_t version, uint64_t ttl, unsigned flags)
{
	size_t size = cache_charge(old);

	cache_list_remove(cache_list_of(c, old), old);
	if (old->flags & CACHE_F_PINNED) {
		c->npinned--;
		c->pinned_bytes -= size;
	}
	cache_fill(c, old, val, vlen, version, ttl, flags);
	while (c->max_memory != 0 && c->bytes > c->max_memory &&
	       c->lru.tail != NULL)
		cache_evict_one(c);
	assert(c->max_memory == 0 || c->bytes <= c->max_memory);
	cache_list_insert(cache_list_of(c, old), old);
	if (flags & CACHE_F_PINNED) {
		c->npinned++;
		c->pinned_bytes += size;
	}
	cache_rehash(c, CACHE_REHASH_STEPS);
	CACHE_VERIFY(c);
	return CACHE_OK;
}

/*
 * Insert or replace key: plan, allocate, then evict and link. With newer,
 * an entry of a higher version than version stays (CACHE_ESTALE).
 */
static int
cache_put(struct cache *c, const void *key, size_t klen, uint64_t h,
    const void *val, size_t vlen, uint64_t version, uint64_t ttl,
    unsigned flags, int newer)
{
	struct cache_entry *old, *e, **lp = NULL, **nb = NULL;
	size_t		    size, oldsize = 0, tcost, need, excess, avail;

	if (!cache_key_ok(key, klen) || (flags & ~CACHE_F_ALL) != 0)
		return CACHE_EINVAL;
	old = cache_find(c, h, key, klen, &lp);
	if (old != NULL) {
		if (newer && old->version > version)
			return CACHE_ESTALE;
		oldsize = cache_charge(old);
	}
	if ((flags & CACHE_F_TOMBSTONE) ? vlen != 0
					: (val == NULL && vlen != 0))
		return CACHE_EINVAL;
	if (vlen > UINT32_MAX)
		return CACHE_EINVAL;
	size = cache_entry_size(klen, vlen, ttl);

	/* Too large: it would not fit even if the cache were empty. */
	if (c->ht[0].size == 0)
		tcost = CACHE_MIN_BUCKETS * sizeof(*nb);
	else
		tcost = c->table_bytes;
	if (c->max_memory != 0 &&
	    (size > c->max_memory || tcost > c->max_memory - size))
		return CACHE_EINVAL;

	/* Are there enough unpinned bytes, besides old, to make room? */
	if (c->max_memory != 0) {
		need = c->bytes - oldsize + size;
		if (c->ht[0].size == 0)
			need += tcost;
		if (need > c->max_memory) {
			excess = need - c->max_memory;
			avail = c->bytes - c->table_bytes - c->pinned_bytes;
			if (old != NULL && !(old->flags & CACHE_F_PINNED))
				avail -= oldsize;
			if (excess > avail)
				return CACHE_EFULL;
		}
	}

	if (old != NULL && oldsize == size)
		return cache_reuse(c, old, val, vlen, version, ttl, flags);

	/* Allocate everything before changing anything. */
	if (c->ht[0].size == 0 &&
	    (nb = cache_table_alloc(c, CACHE_MIN_BUCKETS)) == NULL)
		return CACHE_ENOMEM;
	if ((e = c->alloc(size, c->alloc_arg)) == NULL) {
		if (nb != NULL)
			c->free(nb, c->alloc_arg);
		return CACHE_ENOMEM;
	}
	if (nb != NULL) {
		assert(c->entries == 0 && c->bytes == c->reserved);
		c->ht[0].b = nb;
		c->ht[0].size = CACHE_MIN_BUCKETS;
		c->table_bytes = tcost;
		c->bytes = c->reserved + tcost;
		c->cursor = 0;
	}

	e->klen = (uint16_t)klen;
	memcpy(e->data, key, klen);
	cache_fill(c, e, val, vlen, version, ttl, flags);

	/* Nothing can fail from here on. */
	if (old != NULL)
		cache_remove(c, old, lp);
	while (c->max_memory != 0 && c->bytes + size > c->max_memory)
		cache_evict_one(c);

	cache_table_insert(c, e, h);
	cache_list_insert(cache_list_of(c, e), e);
	c->entries++;
	c->bytes += size;
	if (flags & CACHE_F_PINNED) {
		c->npinned++;
		c->pinned_bytes += size;
	}
	assert(c->max_memory == 0 || c->bytes <= c->max_memory);

	/* Rehash only now: a failed call must leave everything as it was. */
	cache_rehash(c, CACHE_REHASH_STEPS);
	cache_grow(c);
	CACHE_VERIFY(c);
	return CACHE_OK;
}

int
cache_set(struct cache *c, const void *key, size_t klen, const void *val,
    size_t vlen, uint64_t version, uint64_t ttl, unsigned flags)
{
	return cache_put(c, key, klen, cache_key_hash(c, key, klen), val, vlen,
	    version, ttl, flags, 0);
}

int
cache_set_newer(struct cache *c, const void *key, size_t klen, const void *val,
    size_t vlen, uint64_t version, uint64_t ttl, unsigned flags)
{
	return cache_set_newer_h(c, key, klen, cache_key_hash(c, key, klen),
	    val, vlen, version, ttl, flags);
}

int
cache_set_newer_h(struct cache *c, const void *key, size_t klen, uint64_t h,
    const void *val, size_t vlen, uint64_t version, uint64_t ttl,
    unsigned flags)
{
	return cache_put(c, key, klen, h, val, vlen, version, ttl, flags, 1);
}

/* Look key up, counting a hit or a miss and refreshing its recency. */
struct cache_entry *
cache_get(struct cache *c, const void *key, size_t klen)
{
	struct cache_entry *e, **lp = NULL;
	struct cache_list  *l;
	uint64_t	    now = 0;

	if (!cache_key_ok(key, klen)) {
		c->misses++;
		return NULL;
	}
	cache_rehash(c, CACHE_REHASH_STEPS);
	e = cache_find(c, cache_hash(c, key, klen), key, klen, &lp);
	if (e == NULL) {
		c->misses++;
		return NULL;
	}
	if (cache_expired(c, e, &now)) {
		cache_remove(c, e, lp);
		c->expirations++;
		c->misses++;
		CACHE_VERIFY(c);
		return NULL;
	}
	c->hits++;
	/* The pinned list keeps the order of the pins (cache_unpin_upto). */
	l = &c->lru;
	if (!(e->flags & CACHE_F_PINNED) && l->head != e) {
		cache_list_remove(l, e);
		cache_list_insert(l, e);
	}
	CACHE_VERIFY(c);
	return e;
}

/* Look key up without counting, moving or reclaiming anything. */
struct cache_entry *
cache_peek(struct cache *c, const void *key, size_t klen)
{
	struct cache_entry *e, **lp = NULL;
	uint64_t	    now = 0;

	if (!cache_key_ok(key, klen))
		return NULL;
	e = cache_find(c, cache_hash(c, key, klen), key, klen, &lp);
	if (e == NULL || cache_expired(c, e, &now))
		return NULL;
	return e;
}

/* Remove key, pinned or not. */
int
cache_del(struct cache *c, const void *key, size_t klen)
{
	struct cache_entry *e, **lp = NULL;
	uint64_t	    now = 0;
	int		    rc = CACHE_OK;

	if (!cache_key_ok(key, klen))
		return CACHE_ENOENT;
	cache_rehash(c, CACHE_REHASH_STEPS);
	e = cache_find(c, cache_hash(c, key, klen), key, klen, &lp);
	if (e == NULL)
		return CACHE_ENOENT;
	if (cache_expired(c, e, &now)) {
		c->expirations++;
		rc = CACHE_ENOENT;
	}
	cache_remove(c, e, lp);
	cache_enforce(c);
	CACHE_VERIFY(c);
	return rc;
}

/*
 * Clear e's pin: it joins the LRU list at its head. A tombstone has done
 * its work and goes (lp: the link to it in its chain, NULL to look it up).
 */
static void
cache_unpin_entry(
    struct cache *c, struct cache_entry *e, struct cache_entry **lp)
{
	if (e->flags & CACHE_F_TOMBSTONE)
		cache_remove(c, e, lp != NULL ? lp : cache_link(c, e));
	else if (e->flags & CACHE_F_PINNED) {
		cache_list_remove(&c->pinned, e);
		e->flags &= ~CACHE_F_PINNED;
		cache_list_insert(&c->lru, e);
		assert(c->npinned > 0);
		c->npinned--;
		c->pinned_bytes -= cache_charge(e);
	}
}

/*
 * Clear the pin of key if it still has version; an unpinned tombstone has
 * served its purpose and goes. The entry joins the LRU list at its head.
 */
int
cache_unpin(struct cache *c, const void *key, size_t klen, uint64_t version)
{
	return cache_unpin_h(
	    c, key, klen, cache_key_hash(c, key, klen), version);
}

int
cache_unpin_h(
    struct cache *c, const void *key, size_t klen, uint64_t h, uint64_t version)
{
	struct cache_entry *e, **lp = NULL;
	uint64_t	    now = 0;

	if (!cache_key_ok(key, klen))
		return CACHE_ENOENT;
	cache_rehash(c, CACHE_REHASH_STEPS);
	e = cache_find(c, h, key, klen, &lp);
	if (e == NULL)
		return CACHE_ENOENT;
	if (cache_expired(c, e, &now)) {
		cache_remove(c, e, lp);
		c->expirations++;
		CACHE_VERIFY(c);
		return CACHE_ENOENT;
	}
	if (e->version != version)
		return CACHE_ENOENT;
	cache_unpin_entry(c, e, lp);
	cache_enforce(c);
	CACHE_VERIFY(c);
	return CACHE_OK;
}

/*
 * Clear the pins of version version and below, oldest pin first, up to the
 * first pin of a newer version. Walking the pinned list, which keeps the
 * order the pins were taken in, costs a load per entry and no lookup.
 */
size_t
cache_unpin_upto(struct cache *c, uint64_t version)
{
	struct cache_entry *e;
	size_t		    n = 0;

	while ((e = c->pinned.tail) != NULL && e->version <= version) {
		if (e->prev != NULL)
			__builtin_prefetch(e->prev);
		cache_unpin_entry(c, e, NULL);
		n++;
	}
	if (n > 0) {
		cache_enforce(c);
		CACHE_VERIFY(c);
	}
	return n;
}

/* Change the limit, evicting down to a lower one. */
void
cache_set_max_memory(struct cache *c, size_t max_memory)
{
	c->max_memory = max_memory;
	cache_enforce(c);
	cache_grow(c);
	CACHE_VERIFY(c);
}

/* Reclaim the expired entries of one chain. */
static size_t
cache_sweep_chain(struct cache *c, struct cache_entry **lp, uint64_t now)
{
	struct cache_entry *e;
	size_t		    n = 0;

	while ((e = *lp) != NULL) {
		if (cache_expired(c, e, &now)) {
			cache_remove(c, e, lp);
			c->expirations++;
			n++;
		} else
			lp = &e->hnext;
	}
	return n;
}

/*
 * Visit up to max_steps buckets of ht[0] from the cursor (and, while
 * rehashing, the two ht[1] buckets each one splits into).
 */
size_t
cache_sweep(struct cache *c, size_t max_steps)
{
	size_t	 n = 0, i, size;
	uint64_t now;

	cache_rehash(c, max_steps);
	if (c->ht[0].size == 0)
		return 0;
	if (max_steps > c->ht[0].size)
		max_steps = c->ht[0].size;
	now = cache_now(c);
	size = c->ht[0].size;
	while (max_steps-- > 0) {
		if (c->cursor >= size)
			c->cursor = 0;
		i = c->cursor++;
		if (!cache_rehashing(c)) {
			n += cache_sweep_chain(c, &c->ht[0].b[i], now);
			continue;
		}
		if (i >= c->rehashidx)
			n += cache_sweep_chain(c, &c->ht[0].b[i], now);
		n += cache_sweep_chain(c, &c->ht[1].b[i], now);
		n += cache_sweep_chain(c, &c->ht[1].b[i + size], now);
	}
	CACHE_VERIFY(c);
	return n;
}

/* Fill st with the counters. */
void
cache_get_stats(const struct cache *c, struct cache_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->entries = c->entries;
	st->pinned = c->npinned;
	st->bytes = c->bytes;
	st->max_memory = c->max_memory;
	st->hits = c->hits;
	st->misses = c->misses;
	st->evictions = c->evictions;
	st->expirations = c->expirations;
	st->table_buckets = c->ht[0].size + c->ht[1].size;
	st->reserved = c->reserved;
}

/*
 * Header, key, value, and the expiry if ttl is not 0; SIZE_MAX if that
 * does not fit a size_t.
 */
size_t
cache_entry_size(size_t klen, size_t vlen, uint64_t ttl)
{
	size_t fixed = CACHE_ENTRY_HDR + (ttl != 0 ? CACHE_EXPIRY_BYTES : 0);

	if (klen > SIZE_MAX - fixed || vlen > SIZE_MAX - fixed - klen)
		return SIZE_MAX;
	return fixed + klen + vlen;
}

/* The key bytes of e. */
const void *
cache_entry_key(const struct cache_entry *e, size_t *klen)
{
	if (klen != NULL)
		*klen = e->klen;
	return e->data;
}

/* The value bytes of e (a tombstone's are empty). */
const void *
cache_entry_value(const struct cache_entry *e, size_t *vlen)
{
	if (vlen != NULL)
		*vlen = e->vlen;
	return e->data + e->klen;
}

/* The version stored with e. */
uint64_t
cache_entry_version(const struct cache_entry *e)
{
	return e->version;
}

/* The CACHE_F_* flags of e. */
unsigned
cache_entry_flags(const struct cache_entry *e)
{
	return e->flags & CACHE_F_ALL;
}

/* Milliseconds left; at least 1 for a pinned entry held past its expiry. */
uint64_t
cache_entry_ttl(const struct cache *c, const struct cache_entry *e)
{
	uint64_t now, t = cache_expires(e);

	if (t == 0)
		return 0;
	now = cache_now(c);
	return now >= t ? 1 : t - now;
}

uint64_t
cache_entry_expires(const struct cache *c, const struct cache_entry *e)
{
	uint64_t t = cache_expires(e);

	if (t == 0)
		return 0;
	return t > UINT64_MAX - c->clock_base ? UINT64_MAX
					      : t + c->clock_base - 1;
}

int
cache_entry_absent(const struct cache *c, const struct cache_entry *e)
{
	return (e->flags & CACHE_F_TOMBSTONE) ||
	       ((e->flags & CACHE_F_EXPIRES) &&
		   cache_now(c) >= cache_expires(e));
}

#ifdef CACHE_DEBUG
/* Check one list: links both ways, every entry pinned or not as l says. */
static void
cache_verify_list(
    const struct cache_list *l, int pinned, uint64_t *n, size_t *bytes)
{
	const struct cache_entry *e, *prev = NULL;

	for (e = l->head; e != NULL; prev = e, e = e->next) {
		assert(e->prev == prev);
		assert(((e->flags & CACHE_F_PINNED) != 0) == pinned);
		assert(!(e->flags & CACHE_F_TOMBSTONE) || e->vlen == 0);
		(*n)++;
		*bytes += cache_charge(e);
	}
	assert(l->tail == prev);
}

/* Walk everything and check every invariant; debug builds only. */
static void
cache_verify(const struct cache *c)
{
	const struct cache_entry *e;
	uint64_t		  n = 0, nl = 0, np = 0;
	size_t	 i, bytes = 0, lbytes = 0, pbytes = 0, tbytes = 0;
	uint64_t h;
	int	 t;

	assert(CACHE_LIMIT_OK(c));
	if (c->entries > 20000)
		return; /* too slow to walk on every call */
	for (t = 0; t < 2; t++) {
		assert(c->ht[t].size == 0 ||
		       (c->ht[t].size & (c->ht[t].size - 1)) == 0);
		assert((c->ht[t].b == NULL) == (c->ht[t].size == 0));
		tbytes += c->ht[t].size * sizeof(*c->ht[t].b);
		for (i = 0; i < c->ht[t].size; i++) {
			if (t == 0 && c->ht[1].size != 0 && i < c->rehashidx)
				assert(c->ht[t].b[i] == NULL);
			for (e = c->ht[t].b[i]; e != NULL; e = e->hnext) {
				h = cache_hash(c, e->data, e->klen);
				assert((h & (c->ht[t].size - 1)) == i);
				n++;
				bytes += cache_charge(e);
			}
		}
	}
	if (c->ht[1].size != 0)
		assert(c->ht[1].size == 2 * c->ht[0].size);
	if (c->ht[0].size == 0)
		assert(c->entries == 0);
	cache_verify_list(&c->lru, 0, &nl, &lbytes);
	cache_verify_list(&c->pinned, 1, &np, &pbytes);
	assert(n == c->entries && nl + np == n && np == c->npinned);
	assert(lbytes + pbytes == bytes &&
	       pbytes + c->reserved == c->pinned_bytes);
	assert(tbytes == c->table_bytes &&
	       c->bytes == tbytes + bytes + c->reserved);
}
#endif

int
cache_reserve(struct cache *c, size_t n)
{
	size_t excess, avail, need = n;

	/*
	 * An empty cache has no bucket array: the first set allocates one,
	 * so the room promised must hold it too. (Once the array exists,
	 * reservations and the array both count in bytes; when the cache
	 * empties again, the array freed was at least this large.)
	 */
	if (c->ht[0].size == 0) {
		if (n > SIZE_MAX - CACHE_MIN_BUCKETS * sizeof(*c->ht[0].b))
			return CACHE_EFULL;
		need += CACHE_MIN_BUCKETS * sizeof(*c->ht[0].b);
	}
	if (c->max_memory != 0 && c->bytes + need > c->max_memory) {
		if (need > c->max_memory)
			return CACHE_EFULL;
		excess = c->bytes + need - c->max_memory;
		avail = c->bytes - c->table_bytes - c->pinned_bytes;
		if (excess > avail)
			return CACHE_EFULL;
		while (c->bytes + need > c->max_memory)
			cache_evict_one(c);
	}
	c->bytes += n;
	c->pinned_bytes += n;
	c->reserved += n;
	return CACHE_OK;
}

void
cache_unreserve(struct cache *c, size_t n)
{
	assert(c->reserved >= n);
	c->bytes -= n;
	c->pinned_bytes -= n;
	c->reserved -= n;
}

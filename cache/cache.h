/*
 * cache.h -- a memory-bounded LRU cache of byte-string keys and values.
 *
 * The cache is a plain library: no I/O, no threads, no globals. One struct
 * cache is used by one thread at a time (the daemon's event loop).
 *
 * Memory: every entry is charged its header, key and value bytes; the hash
 * table's bucket array is charged too. The sum never exceeds max_memory.
 * Least recently used unpinned entries are evicted to make room. Pinned
 * entries (writes not yet durable, tombstones of deletes not yet applied)
 * are never evicted; when only pinned entries are left and a new entry does
 * not fit, the insert fails with CACHE_EFULL rather than exceed the limit.
 *
 * TTL: an entry may expire after a number of milliseconds. An expired
 * entry is never returned; it is reclaimed when it is next looked up and by
 * cache_sweep(), which the owner calls from a timer.
 *
 * Tombstones: an entry flagged CACHE_F_TOMBSTONE has no value; it records
 * that the key is known to be absent (a delete not yet applied, or a
 * negative lookup). cache_get() returns it so the caller can tell "known
 * absent" from "not cached".
 *
 * Allocation failure is an error returned to the caller, never an exit; the
 * cache stays consistent after it.
 */
#ifndef STASH_CACHE_H
#define STASH_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct cache;
struct cache_entry;

/* Return codes. */
#define CACHE_OK     0
#define CACHE_ENOMEM -1 /* the allocator failed */
#define CACHE_EFULL  -2 /* does not fit: only pinned entries left */
#define CACHE_EINVAL -3 /* key empty or too long, entry too large */
#define CACHE_ENOENT -4 /* no such key (or it expired) */
#define CACHE_ESTALE -5 /* a newer version is there: kept */

/* Entry flags. */
#define CACHE_F_PINNED	  0x01 /* never evicted, never expires */
#define CACHE_F_TOMBSTONE 0x02 /* known absent; no value */
#define CACHE_F_RAW	  0x04 /* the owner's: kept as given */

#define CACHE_KEY_MAX 65535

struct cache_config {
	size_t	 max_memory; /* bytes; 0 means no limit */
	uint64_t seed;	     /* hash seed (random in the daemon) */
	/*
	 * A clock in milliseconds; NULL uses CLOCK_MONOTONIC. An entry
	 * expires when this clock reaches the time set for it, so a clock
	 * that jumps (the wall clock) moves what has expired with it.
	 */
	uint64_t (*clock)(void *arg);
	void *clock_arg;
	/* Allocator hooks; NULL uses malloc/free. */
	void *(*alloc)(size_t size, void *arg);
	void (*free)(void *ptr, void *arg);
	void *alloc_arg;
};

struct cache_stats {
	uint64_t entries; /* live entries, tombstones included */
	uint64_t pinned;
	uint64_t bytes; /* charged bytes, table included */
	uint64_t max_memory;
	uint64_t hits;
	uint64_t misses;
	uint64_t evictions;
	uint64_t expirations;
	uint64_t table_buckets;
	uint64_t reserved; /* bytes held by cache_reserve */
};

/* Create a cache; NULL when the allocator fails. */
struct cache *cache_create(const struct cache_config *cfg);
/* Free the cache and every entry. */
void cache_destroy(struct cache *c);

/*
 * Insert or replace key. ttl is in milliseconds, 0 for none. flags is a mix of
 * CACHE_F_*; a tombstone takes no value (val NULL, vlen 0). On any error the
 * old entry, if there was one, is left as it was.
 */
int cache_set(struct cache *c, const void *key, size_t klen, const void *val,
    size_t vlen, uint64_t version, uint64_t ttl, unsigned flags);

/*
 * Like cache_set, but when key has an entry of a version above version
 * (expired or not: it is newer), that entry stays and the call returns
 * CACHE_ESTALE. One lookup for what would take cache_peek and cache_set.
 */
int cache_set_newer(struct cache *c, const void *key, size_t klen,
    const void *val, size_t vlen, uint64_t version, uint64_t ttl,
    unsigned flags);

/*
 * The seeded hash the cache files key under: it does not change for the
 * cache's life. The _h calls below take it, so that a caller that passes
 * the same key to several calls (a prefetch in steps, then the change)
 * reads the key's bytes and hashes them once. h must be
 * cache_key_hash(c, key, klen); each call is otherwise the one without _h.
 * A key no call takes (empty, or over CACHE_KEY_MAX) hashes to 0, unread.
 */
uint64_t cache_key_hash(const struct cache *c, const void *key, size_t klen);
int cache_set_newer_h(struct cache *c, const void *key, size_t klen, uint64_t h,
    const void *val, size_t vlen, uint64_t version, uint64_t ttl,
    unsigned flags);

/*
 * Look key up. Returns the entry (and marks it most recently used), or NULL
 * when absent or expired. Counts a hit or a miss; a tombstone counts as a
 * hit. The entry stays valid until the next call that changes the cache.
 */
struct cache_entry *cache_get(struct cache *c, const void *key, size_t klen);

/* Like cache_get but neither counts nor changes LRU order. */
struct cache_entry *cache_peek(struct cache *c, const void *key, size_t klen);

/*
 * A hint that key is about to be looked up, for callers that know their
 * next keys (a batch of writes): step 0 starts loading its bucket, step 1,
 * once that had time to arrive, the first entry of its chain, step 2 the
 * entries a change of it touches. A lookup of a large table misses the CPU
 * cache at each of those; issued a few keys ahead, the misses overlap.
 * Nothing changes, and a key never looked up costs nothing but the loads.
 */
void cache_prefetch(
    const struct cache *c, const void *key, size_t klen, int step);
void cache_prefetch_h(
    const struct cache *c, const void *key, size_t klen, uint64_t h, int step);

/* Remove key. CACHE_OK, or CACHE_ENOENT when it was not there. */
int cache_del(struct cache *c, const void *key, size_t klen);

/*
 * Clear the pinned flag of key if its version is still version (a newer
 * write keeps its own pin). A tombstone that is unpinned is removed.
 * CACHE_OK, or CACHE_ENOENT when no entry matched.
 */
int cache_unpin(
    struct cache *c, const void *key, size_t klen, uint64_t version);
int cache_unpin_h(struct cache *c, const void *key, size_t klen, uint64_t h,
    uint64_t version);

/*
 * Clear the pins of every entry of version version or below, in the order
 * they were pinned, stopping at the first pin of a newer version (the pins
 * after it wait for a later call): what a caller whose versions are applied
 * in order calls once per batch instead of cache_unpin per key. Unpinned
 * tombstones go, as with cache_unpin. Returns the number of pins cleared.
 */
size_t cache_unpin_upto(struct cache *c, uint64_t version);

/*
 * Reserve bytes for entries that will be pinned later (writes taken but
 * not yet acknowledged): they count as used and cannot be evicted, so a
 * pinned cache_set of that size after cache_unreserve() never fails for
 * lack of room. Evicts unpinned entries to make room; CACHE_EFULL, with
 * nothing changed, when even that is not enough.
 */
int cache_reserve(struct cache *c, size_t bytes);
/* Give back bytes reserved with cache_reserve(). */
void cache_unreserve(struct cache *c, size_t bytes);

/* Change the limit; shrinking evicts down to it (pinned entries stay). */
void cache_set_max_memory(struct cache *c, size_t max_memory);

/*
 * Reclaim expired entries, looking at no more than max_steps buckets.
 * Returns the number reclaimed. Called repeatedly, it visits every bucket.
 */
size_t cache_sweep(struct cache *c, size_t max_steps);

void cache_get_stats(const struct cache *c, struct cache_stats *st);

/*
 * The charge of one entry of these sizes, with a ttl or not (0), for
 * callers that plan ahead.
 */
size_t cache_entry_size(size_t klen, size_t vlen, uint64_t ttl);

/* Entry accessors. */
const void *cache_entry_key(const struct cache_entry *e, size_t *klen);
const void *cache_entry_value(const struct cache_entry *e, size_t *vlen);
uint64_t    cache_entry_version(const struct cache_entry *e);
unsigned    cache_entry_flags(const struct cache_entry *e);
/* Milliseconds left before expiry, 0 when the entry has no TTL. */
uint64_t cache_entry_ttl(const struct cache *c, const struct cache_entry *e);
/*
 * When e expires, as a reading of the cache's clock (cfg->clock); 0 when
 * it has no TTL.
 */
uint64_t cache_entry_expires(
    const struct cache *c, const struct cache_entry *e);
/*
 * Whether e reads as absent: a tombstone, or its time is up. A pinned
 * entry is never reclaimed before it is unpinned (it stands for a write
 * SQLite does not have yet), so it may outlive its expiry: callers that
 * read it must ask this, not the tombstone flag alone.
 */
int cache_entry_absent(const struct cache *c, const struct cache_entry *e);

#endif /* STASH_CACHE_H */

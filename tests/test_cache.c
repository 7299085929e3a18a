/*
 * test_cache.c -- unit tests of the cache library.
 *
 * Most tests compare the cache with a model kept here: which keys must be
 * present (pinned ones) or may have been evicted (unpinned ones), with what
 * value, version and flags, and what stats.bytes must then be: the sum of
 * cache_entry_size() of the entries present plus 8 bytes (one pointer) per
 * bucket. A counting allocator checks that the charge is exactly what the
 * cache holds from the allocator, and that nothing leaks; it can also fail
 * the N-th allocation. A fake clock drives the TTL tests.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cache.h"

#define NKEYS	     256
#define BUCKET_BYTES sizeof(void *)

/* A counting allocator that can fail the N-th call, or every call from N. */
struct talloc {
	unsigned long calls;
	unsigned long fail_at;	  /* 0: never fail */
	int	      fail_after; /* and every call after it */
	unsigned long failures;
	size_t	      failed_size;
	size_t	      live;
	size_t	      live_bytes;
};

/* A clock the tests move by hand. */
struct fclock {
	uint64_t now;
};

/* What the cache should hold, per key id. */
struct model {
	int	 present[NKEYS];
	uint64_t version[NKEYS];
	unsigned flags[NKEYS];
	size_t	 vlen[NKEYS];
	uint64_t evictions; /* keys found gone */
};

/* Allocate through the counter; the size is kept in front of the block. */
static void *
talloc_alloc(size_t size, void *arg)
{
	struct talloc *t = arg;
	unsigned char *p;

	t->calls++;
	if (t->fail_at != 0 && (t->calls == t->fail_at ||
				   (t->fail_after && t->calls > t->fail_at))) {
		t->failures++;
		t->failed_size = size;
		return NULL;
	}
	if ((p = malloc(size + 16)) == NULL)
		return NULL;
	memcpy(p, &size, sizeof(size));
	t->live++;
	t->live_bytes += size;
	return p + 16;
}

/* Free through the counter. */
static void
talloc_free(void *ptr, void *arg)
{
	struct talloc *t = arg;
	unsigned char *p = ptr;
	size_t	       size;

	assert_non_null(ptr);
	p -= 16;
	memcpy(&size, p, sizeof(size));
	assert_true(t->live > 0 && t->live_bytes >= size);
	t->live--;
	t->live_bytes -= size;
	free(p);
}

/* The fake clock. */
static uint64_t
fclock_now(void *arg)
{
	struct fclock *fc = arg;

	return fc->now;
}

/* Key number id: "k<id>" padded to a length that varies with id. */
static size_t
key_of(char *buf, size_t cap, unsigned id)
{
	int    n;
	size_t len, pad;

	n = snprintf(buf, cap, "k%u:", id);
	assert_true(n > 0 && (size_t)n < cap);
	len = (size_t)n;
	pad = (id * 7) % 40;
	assert_true(len + pad < cap);
	memset(buf + len, 'x', pad);
	len += pad;
	buf[len] = '\0';
	return len;
}

/* The value bytes of key id at a version. */
static void
value_of(unsigned char *buf, size_t vlen, unsigned id, uint64_t version)
{
	size_t i;

	for (i = 0; i < vlen; i++)
		buf[i] = (unsigned char)(id * 131 + version * 7 + i);
}

/* A cache with the given limit, allocator and clock (both optional). */
static struct cache *
new_cache(
    size_t max_memory, uint64_t seed, struct talloc *ta, struct fclock *fc)
{
	struct cache_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.max_memory = max_memory;
	cfg.seed = seed;
	if (ta != NULL) {
		cfg.alloc = talloc_alloc;
		cfg.free = talloc_free;
		cfg.alloc_arg = ta;
	}
	if (fc != NULL) {
		cfg.clock = fclock_now;
		cfg.clock_arg = fc;
	}
	return cache_create(&cfg);
}

/* Set key id in the cache and, on success, in the model. */
static int
mset(struct cache *c, struct model *m, unsigned id, size_t vlen,
    uint64_t version, unsigned flags)
{
	char	      key[64];
	unsigned char val[4096];
	size_t	      klen;
	int	      rc;

	assert_true(id < NKEYS && vlen <= sizeof(val));
	klen = key_of(key, sizeof(key), id);
	value_of(val, vlen, id, version);
	rc = cache_set(c, key, klen, (flags & CACHE_F_TOMBSTONE) ? NULL : val,
	    vlen, version, 0, flags);
	if (rc == CACHE_OK) {
		m->present[id] = 1;
		m->version[id] = version;
		m->flags[id] = flags;
		m->vlen[id] = vlen;
	}
	return rc;
}

/* Delete key id in the cache and the model. */
static int
mdel(struct cache *c, struct model *m, unsigned id)
{
	char   key[64];
	size_t klen;
	int    rc;

	klen = key_of(key, sizeof(key), id);
	rc = cache_del(c, key, klen);
	if (rc == CACHE_OK)
		m->present[id] = 0;
	return rc;
}

/* Unpin key id in the cache and the model. */
static int
munpin(struct cache *c, struct model *m, unsigned id, uint64_t version)
{
	char   key[64];
	size_t klen;
	int    rc;

	klen = key_of(key, sizeof(key), id);
	rc = cache_unpin(c, key, klen, version);
	if (rc == CACHE_OK) {
		assert_true(m->present[id] && m->version[id] == version);
		if (m->flags[id] & CACHE_F_TOMBSTONE)
			m->present[id] = 0;
		m->flags[id] &= ~(unsigned)CACHE_F_PINNED;
	}
	return rc;
}

/* The stats, for comparisons. */
static struct cache_stats
stats(const struct cache *c)
{
	struct cache_stats st;

	cache_get_stats(c, &st);
	return st;
}

/*
 * Compare the cache with the model. A pinned key must be there; an
 * unpinned one may have been evicted, and the model learns it. Then every
 * counter must match what is present, and the allocator must hold exactly
 * the charged bytes (plus base, the struct cache). The tests that use the
 * model set no TTL, so a key that went missing was evicted.
 */
static void
model_check(
    struct cache *c, struct model *m, const struct talloc *ta, size_t base)
{
	struct cache_stats  st;
	struct cache_entry *e;
	char		    key[64];
	unsigned char	    val[4096];
	const void	   *p;
	size_t		    klen, len;
	uint64_t	    n = 0, np = 0, bytes = 0;
	unsigned	    id;

	for (id = 0; id < NKEYS; id++) {
		klen = key_of(key, sizeof(key), id);
		e = cache_peek(c, key, klen);
		if (!m->present[id]) {
			assert_null(e);
			continue;
		}
		if (e == NULL) {
			/* Evicted: only unpinned keys, under a limit. */
			assert_false(m->flags[id] & CACHE_F_PINNED);
			assert_true(stats(c).max_memory != 0);
			m->present[id] = 0;
			m->evictions++;
			continue;
		}
		p = cache_entry_key(e, &len);
		assert_int_equal(len, klen);
		assert_memory_equal(p, key, klen);
		assert_int_equal(cache_entry_version(e), m->version[id]);
		assert_int_equal(cache_entry_flags(e), m->flags[id]);
		p = cache_entry_value(e, &len);
		assert_int_equal(len, m->vlen[id]);
		value_of(val, len, id, m->version[id]);
		if (len > 0)
			assert_memory_equal(p, val, len);
		n++;
		if (m->flags[id] & CACHE_F_PINNED)
			np++;
		bytes += cache_entry_size(klen, len, 0);
	}
	cache_get_stats(c, &st);
	assert_int_equal(st.entries, n);
	assert_int_equal(st.pinned, np);
	assert_int_equal(st.evictions, m->evictions);
	assert_int_equal(st.bytes, bytes + st.table_buckets * BUCKET_BYTES);
	assert_true(
	    st.max_memory == 0 || st.bytes <= st.max_memory || st.pinned > 0);
	if (ta != NULL)
		assert_int_equal(ta->live_bytes, base + st.bytes);
}

/* Whether the key "s" is in the cache, without touching it. */
static int
has(struct cache *c, const char *s)
{
	return cache_peek(c, s, strlen(s)) != NULL;
}

/* cache_set or cache_set_newer. */
typedef int (*set_fn)(struct cache *, const void *, size_t, const void *,
    size_t, uint64_t, uint64_t, unsigned);

/* Set the key "s" with a value of vlen bytes through set. */
static int
put_with(set_fn set, struct cache *c, const char *s, size_t vlen,
    uint64_t version, uint64_t ttl, unsigned flags)
{
	static const char zero[8192];

	assert_true(vlen <= sizeof(zero));
	return set(c, s, strlen(s), (flags & CACHE_F_TOMBSTONE) ? NULL : zero,
	    vlen, version, ttl, flags);
}

static int
put(struct cache *c, const char *s, size_t vlen, uint64_t version, uint64_t ttl,
    unsigned flags)
{
	return put_with(cache_set, c, s, vlen, version, ttl, flags);
}

/* Argument checks, accessors, counters of one entry. */
static void
test_basic(void **state)
{
	struct cache	   *c;
	struct cache_entry *e;
	struct cache_stats  st;
	static char	    big[CACHE_KEY_MAX + 1];
	const void	   *p;
	size_t		    len;

	(void)state;
	assert_non_null(c = cache_create(NULL));
	assert_null(cache_get(c, "a", 1));
	assert_int_equal(cache_set(c, "a", 1, "hello", 5, 7, 0, 0), CACHE_OK);
	assert_non_null(e = cache_get(c, "a", 1));
	p = cache_entry_key(e, &len);
	assert_int_equal(len, 1);
	assert_memory_equal(p, "a", 1);
	p = cache_entry_value(e, &len);
	assert_int_equal(len, 5);
	assert_memory_equal(p, "hello", 5);
	assert_int_equal(cache_entry_version(e), 7);
	assert_int_equal(cache_entry_flags(e), 0);
	assert_int_equal(cache_entry_ttl(c, e), 0);
	assert_null(cache_get(c, "ab", 2));
	assert_null(cache_get(c, "b", 1));
	assert_non_null(cache_peek(c, "a", 1));

	/* Bad arguments. */
	assert_int_equal(cache_set(c, "", 0, "x", 1, 1, 0, 0), CACHE_EINVAL);
	memset(big, 'k', sizeof(big));
	assert_int_equal(
	    cache_set(c, big, sizeof(big), "x", 1, 1, 0, 0), CACHE_EINVAL);
	assert_int_equal(cache_set(c, "a", 1, NULL, 3, 1, 0, 0), CACHE_EINVAL);
	assert_int_equal(
	    cache_set(c, "a", 1, "x", 1, 1, 0, 0x80), CACHE_EINVAL);
	assert_int_equal(cache_set(c, "a", 1, "x", 1, 1, 0, CACHE_F_TOMBSTONE),
	    CACHE_EINVAL);
	assert_null(cache_get(c, "", 0));
	assert_int_equal(cache_del(c, big, sizeof(big)), CACHE_ENOENT);

	/* The longest key works, and an empty value. */
	assert_int_equal(
	    cache_set(c, big, CACHE_KEY_MAX, NULL, 0, 2, 0, 0), CACHE_OK);
	assert_non_null(e = cache_get(c, big, CACHE_KEY_MAX));
	cache_entry_value(e, &len);
	assert_int_equal(len, 0);
	cache_entry_key(e, &len);
	assert_int_equal(len, CACHE_KEY_MAX);

	cache_get_stats(c, &st);
	assert_int_equal(st.entries, 2);
	assert_int_equal(st.hits, 2);
	assert_int_equal(st.misses, 4);
	assert_int_equal(st.pinned, 0);
	assert_int_equal(st.max_memory, 0);
	assert_int_equal(st.bytes, cache_entry_size(1, 5, 0) +
				       cache_entry_size(CACHE_KEY_MAX, 0, 0) +
				       st.table_buckets * BUCKET_BYTES);
	assert_true(cache_entry_size(16, 100, 0) <= 48 + 16 + 100);
	cache_destroy(c);

	/* One allocator hook without the other is refused. */
	{
		struct cache_config cfg;

		memset(&cfg, 0, sizeof(cfg));
		cfg.alloc = talloc_alloc;
		assert_null(cache_create(&cfg));
	}
}

/* Room for exactly n entries of size sz with an 8-bucket table. */
static size_t
room_for(size_t n, size_t sz)
{
	return 8 * BUCKET_BYTES + n * sz;
}

/* Least recently used goes first; get and set refresh, peek does not. */
static void
test_lru_order(void **state)
{
	struct cache *c;
	size_t	      sz = cache_entry_size(2, 10, 0);

	(void)state;
	assert_non_null(c = new_cache(room_for(4, sz), 1, NULL, NULL));
	assert_int_equal(put(c, "k0", 10, 1, 0, 0), CACHE_OK);
	assert_int_equal(put(c, "k1", 10, 1, 0, 0), CACHE_OK);
	assert_int_equal(put(c, "k2", 10, 1, 0, 0), CACHE_OK);
	assert_int_equal(put(c, "k3", 10, 1, 0, 0), CACHE_OK);
	assert_int_equal(stats(c).bytes, room_for(4, sz));
	assert_int_equal(stats(c).table_buckets, 8);

	/* MRU..LRU: k3 k2 k1 k0 -> get k0 -> k0 k3 k2 k1. */
	assert_non_null(cache_get(c, "k0", 2));
	assert_non_null(cache_peek(c, "k1", 2));
	assert_int_equal(put(c, "k4", 10, 1, 0, 0), CACHE_OK);
	assert_false(has(c, "k1"));
	assert_true(
	    has(c, "k0") && has(c, "k2") && has(c, "k3") && has(c, "k4"));
	assert_int_equal(stats(c).evictions, 1);

	/* k4 k0 k3 k2 -> overwrite k2 -> k2 k4 k0 k3; no eviction. */
	assert_int_equal(put(c, "k2", 10, 2, 0, 0), CACHE_OK);
	assert_int_equal(stats(c).evictions, 1);
	assert_int_equal(put(c, "k5", 10, 1, 0, 0), CACHE_OK);
	assert_false(has(c, "k3"));
	assert_int_equal(put(c, "k6", 10, 1, 0, 0), CACHE_OK);
	assert_false(has(c, "k0"));
	assert_true(
	    has(c, "k2") && has(c, "k4") && has(c, "k5") && has(c, "k6"));

	/* k6 k5 k2 k4: an entry as big as two evicts the two oldest. */
	assert_int_equal(put(c, "k7", sz + 10, 1, 0, 0), CACHE_OK);
	assert_false(has(c, "k4"));
	assert_false(has(c, "k2"));
	assert_true(has(c, "k5") && has(c, "k6") && has(c, "k7"));
	assert_int_equal(stats(c).evictions, 5);
	assert_int_equal(stats(c).entries, 3);
	assert_int_equal(stats(c).bytes, room_for(4, sz));
	cache_destroy(c);
}

/* Random gets, peeks, sets and deletes against an exact LRU model. */
static void
test_lru_random(void **state)
{
	struct cache	  *c;
	struct cache_stats st;
	size_t		   sz = cache_entry_size(3, 8, 0);
	unsigned	   order[8], n = 0, i, j, k, op;
	uint64_t	   hits = 0, misses = 0, evictions = 0;
	char		   key[4];
	int		   at;

	(void)state;
	srand(12345);
	assert_non_null(c = new_cache(room_for(8, sz), 99, NULL, NULL));
	for (i = 0; i < 20000; i++) {
		k = (unsigned)rand() % 20;
		snprintf(key, sizeof(key), "k%02u", k);
		op = (unsigned)rand() % 10;
		for (at = -1, j = 0; j < n; j++)
			if (order[j] == k)
				at = (int)j;
		if (op < 4) { /* get */
			if (at < 0) {
				assert_null(cache_get(c, key, 3));
				misses++;
				continue;
			}
			assert_non_null(cache_get(c, key, 3));
			hits++;
		} else if (op < 5) { /* peek */
			assert_true(
			    (cache_peek(c, key, 3) != NULL) == (at >= 0));
			continue;
		} else if (op < 9) { /* set */
			assert_int_equal(
			    cache_set(c, key, 3, "12345678", 8, i, 0, 0),
			    CACHE_OK);
			if (at < 0 && n == 8) {
				n--;
				evictions++;
			}
			if (at < 0)
				at = (int)n++;
		} else { /* delete */
			assert_int_equal(cache_del(c, key, 3),
			    at < 0 ? CACHE_ENOENT : CACHE_OK);
			if (at >= 0) {
				memmove(order + at, order + at + 1,
				    (n - (unsigned)at - 1) * sizeof(*order));
				n--;
			}
			continue;
		}
		/* Move k to the front. */
		memmove(order + 1, order, (unsigned)at * sizeof(*order));
		order[0] = k;

		for (j = 0; j < 20; j++) {
			snprintf(key, sizeof(key), "k%02u", j);
			for (at = -1, k = 0; k < n; k++)
				if (order[k] == j)
					at = 0;
			assert_true(
			    (cache_peek(c, key, 3) != NULL) == (at == 0));
		}
	}
	cache_get_stats(c, &st);
	assert_int_equal(st.hits, hits);
	assert_int_equal(st.misses, misses);
	assert_int_equal(st.evictions, evictions);
	assert_int_equal(st.entries, n);
	cache_destroy(c);
}

/* Random sets of random sizes, pins, tombstones and deletes: the limit. */
static void
test_byte_limit_random(void **state)
{
	struct talloc	   ta;
	struct model	   m;
	struct cache	  *c;
	struct cache_stats before, after;
	size_t		   base, max = 30000;
	unsigned	   i, id, op, nfull = 0, nset = 0;
	uint64_t	   ver = 0;
	int		   rc, was;

	(void)state;
	memset(&ta, 0, sizeof(ta));
	memset(&m, 0, sizeof(m));
	srand(777);
	assert_non_null(c = new_cache(max, 5, &ta, NULL));
	base = ta.live_bytes;
	for (i = 0; i < 20000; i++) {
		id = (unsigned)rand() % 200;
		op = (unsigned)rand() % 100;
		ver++;
		if (op < 70) {
			cache_get_stats(c, &before);
			rc = mset(c, &m, id,
			    (size_t)rand() % (rand() % 8 == 0 ? 4000 : 300),
			    ver, (op < 3) ? CACHE_F_PINNED : 0);
			if (rc == CACHE_EFULL) {
				nfull++;
				cache_get_stats(c, &after);
				assert_memory_equal(
				    &before, &after, sizeof(before));
			} else {
				assert_int_equal(rc, CACHE_OK);
				nset++;
			}
		} else if (op < 73) {
			rc = mset(c, &m, id, 0, ver,
			    CACHE_F_TOMBSTONE | CACHE_F_PINNED);
			assert_true(rc == CACHE_OK || rc == CACHE_EFULL);
		} else if (op < 85) {
			if (m.present[id])
				assert_int_equal(
				    munpin(c, &m, id, m.version[id]), CACHE_OK);
			else
				assert_int_equal(
				    munpin(c, &m, id, 1), CACHE_ENOENT);
		} else {
			/* Learn the evictions first. */
			model_check(c, &m, &ta, base);
			was = m.present[id];
			rc = mdel(c, &m, id);
			assert_int_equal(rc, was ? CACHE_OK : CACHE_ENOENT);
			assert_false(m.present[id]);
		}
		assert_true(stats(c).bytes <= max);
		model_check(c, &m, &ta, base);
	}
	assert_true(nset > 10000);
	assert_true(stats(c).evictions > 1000);
	cache_destroy(c);
	assert_int_equal(ta.live, 0);
	assert_int_equal(ta.live_bytes, 0);
}

/* Expiry with a fake clock: not returned, counted, reclaimed. */
static void
test_ttl(void **state)
{
	struct fclock	    fc = {1000000};
	struct cache	   *c;
	struct cache_entry *e;
	struct cache_stats  st;

	(void)state;
	assert_non_null(c = new_cache(0, 3, NULL, &fc));
	assert_int_equal(put(c, "a", 5, 1, 10, 0), CACHE_OK);
	assert_int_equal(put(c, "b", 5, 1, 0, 0), CACHE_OK);
	assert_int_equal(put(c, "c", 5, 1, 3, 0), CACHE_OK);
	assert_int_equal(put(c, "d", 5, 1, 3, 0), CACHE_OK);
	assert_non_null(e = cache_get(c, "a", 1));
	assert_int_equal(cache_entry_ttl(c, e), 10);
	fc.now += 9;
	assert_non_null(e = cache_get(c, "a", 1));
	assert_int_equal(cache_entry_ttl(c, e), 1);
	assert_non_null(e = cache_get(c, "b", 1));
	assert_int_equal(cache_entry_ttl(c, e), 0);
	fc.now += 1;

	/* Neither peek nor get returns it; get reclaims and counts it. */
	assert_null(cache_peek(c, "a", 1));
	assert_int_equal(stats(c).entries, 4);
	assert_null(cache_get(c, "a", 1));
	cache_get_stats(c, &st);
	assert_int_equal(st.entries, 3);
	assert_int_equal(st.expirations, 1);
	assert_int_equal(st.misses, 1);
	assert_int_equal(st.hits, 3);
	assert_non_null(cache_get(c, "b", 1));

	/* Delete and unpin of an expired key say ENOENT and reclaim it. */
	assert_int_equal(cache_del(c, "c", 1), CACHE_ENOENT);
	assert_int_equal(cache_unpin(c, "d", 1, 1), CACHE_ENOENT);
	cache_get_stats(c, &st);
	assert_int_equal(st.entries, 1);
	assert_int_equal(st.expirations, 3);
	assert_int_equal(st.bytes,
	    cache_entry_size(1, 5, 0) + st.table_buckets * BUCKET_BYTES);

	/* Setting it again brings it back with a fresh TTL. */
	assert_int_equal(put(c, "a", 5, 2, 100, 0), CACHE_OK);
	assert_non_null(e = cache_get(c, "a", 1));
	assert_int_equal(cache_entry_ttl(c, e), 100);
	/* A huge TTL saturates rather than wrapping into the past. */
	assert_int_equal(put(c, "z", 1, 1, UINT32_MAX, 0), CACHE_OK);
	fc.now += 1000;
	assert_non_null(cache_get(c, "z", 1));
	cache_destroy(c);
}

/* Pinned entries do not expire until they are unpinned. */
static void
test_ttl_pinned(void **state)
{
	struct fclock	    fc = {5};
	struct cache	   *c;
	struct cache_entry *e;

	(void)state;
	assert_non_null(c = new_cache(0, 3, NULL, &fc));
	assert_int_equal(put(c, "p", 5, 1, 2, CACHE_F_PINNED), CACHE_OK);
	assert_int_equal(
	    put(c, "t", 0, 2, 0, CACHE_F_PINNED | CACHE_F_TOMBSTONE), CACHE_OK);
	assert_int_equal(put(c, "q", 5, 3, 0, CACHE_F_PINNED), CACHE_OK);
	assert_non_null(e = cache_get(c, "p", 1));
	assert_false(cache_entry_absent(c, e));
	fc.now += 10;
	/* Kept while pinned, but read as absent: its time is up. */
	assert_non_null(e = cache_get(c, "p", 1));
	assert_int_equal(cache_entry_ttl(c, e), 1);
	assert_true(cache_entry_absent(c, e));
	assert_true(cache_entry_absent(c, cache_get(c, "t", 1)));
	assert_false(cache_entry_absent(c, cache_get(c, "q", 1)));
	assert_int_equal(cache_del(c, "t", 1), CACHE_OK);
	assert_int_equal(cache_del(c, "q", 1), CACHE_OK);
	assert_int_equal(cache_sweep(c, 100), 0);
	assert_non_null(cache_peek(c, "p", 1));
	assert_int_equal(cache_unpin(c, "p", 1, 1), CACHE_OK);
	assert_null(cache_peek(c, "p", 1));
	assert_int_equal(cache_sweep(c, 100), 1);
	assert_int_equal(stats(c).entries, 0);
	assert_int_equal(stats(c).expirations, 1);
	cache_destroy(c);
}

/* Sweep, a few buckets at a time, reclaims every expired entry. */
static void
test_sweep(void **state)
{
	struct fclock	   fc = {42};
	struct talloc	   ta;
	struct cache	  *c;
	struct cache_stats st;
	char		   key[32];
	size_t	 total = 0, n, calls = 0, expected = 0, kbytes = 0, left = 0;
	size_t	 kept = 0;
	unsigned i, ttl;
	int	 len;

	(void)state;
	memset(&ta, 0, sizeof(ta));
	assert_non_null(c = new_cache(0, 11, &ta, &fc));
	/* Stop inserting while a rehash is in progress. */
	for (i = 0; i < 5000 || stats(c).table_buckets % 3 != 0; i++) {
		assert_true(i < 100000);
		len = snprintf(key, sizeof(key), "key-%u", i);
		ttl = i % 3 == 0 ? 0 : i % 3 == 1 ? 5 : 50;
		if (ttl == 5)
			expected++;
		assert_int_equal(cache_set(c, key, (size_t)len, "v", 1, i, ttl,
				     i % 17 == 0 ? CACHE_F_PINNED : 0),
		    CACHE_OK);
		if (ttl == 5 && i % 17 == 0)
			expected--;
		if (ttl == 50 && i % 17 != 0)
			left++; /* expires in the second round */
		if (ttl == 0 || i % 17 == 0) {
			kept++; /* never expires */
			kbytes += cache_entry_size((size_t)len, 1, ttl);
		}
	}
	cache_get_stats(c, &st);
	assert_true(st.table_buckets % 3 == 0);	   /* mid-rehash */
	assert_int_equal(cache_sweep(c, 1000), 0); /* nothing expired */

	fc.now += 5;
	while (total < expected) {
		n = cache_sweep(c, 1);
		total += n;
		assert_true(++calls < 100000);
	}
	assert_int_equal(total, expected);
	cache_get_stats(c, &st);
	assert_int_equal(st.expirations, expected);
	assert_int_equal(st.entries, i - expected);
	assert_true((st.table_buckets & (st.table_buckets - 1)) == 0);
	/* Another full round finds nothing more. */
	for (n = 0; n < st.table_buckets; n += 64)
		assert_int_equal(cache_sweep(c, 64), 0);
	for (i = 0; i < 5000; i++) {
		len = snprintf(key, sizeof(key), "key-%u", i);
		assert_true((cache_peek(c, key, (size_t)len) != NULL) ==
			    (i % 3 != 1 || i % 17 == 0));
	}

	/* Everything with a TTL expires; big sweeps take it all. */
	fc.now += 100;
	total = 0;
	for (i = 0; i < 100; i++)
		total += cache_sweep(c, 4096);
	assert_int_equal(total, left);
	cache_get_stats(c, &st);
	assert_int_equal(st.entries, kept);
	assert_int_equal(st.expirations, expected + left);
	assert_int_equal(st.bytes, kbytes + st.table_buckets * BUCKET_BYTES);
	cache_destroy(c);
	assert_int_equal(ta.live, 0);
}

/* Prefetching is a hint: it changes no counter, no LRU order, no rehash. */
static void
test_prefetch(void **state)
{
	struct cache_stats before, after;
	struct cache	  *c;
	char		   key[64];
	size_t		   len, sz = cache_entry_size(2, 10, 0);
	unsigned	   i;
	int		   step;

	(void)state;
	/* No table yet; keys a lookup would refuse. */
	assert_non_null(c = new_cache(room_for(4, sz), 3, NULL, NULL));
	for (step = 0; step < 3; step++) {
		cache_prefetch(c, "a", 1, step);
		cache_prefetch(c, "", 0, step);
		cache_prefetch(c, "a", CACHE_KEY_MAX + 1, step);
	}
	assert_int_equal(stats(c).entries, 0);

	/* Prefetching the oldest key does not save it from eviction. */
	assert_int_equal(put(c, "k1", 10, 1, 0, 0), CACHE_OK);
	assert_int_equal(put(c, "k2", 10, 2, 0, 0), CACHE_OK);
	assert_int_equal(put(c, "k3", 10, 3, 0, 0), CACHE_OK);
	assert_int_equal(put(c, "k4", 10, 4, 0, 0), CACHE_OK);
	before = stats(c);
	for (step = 0; step < 3; step++) {
		cache_prefetch(c, "k1", 2, step);
		cache_prefetch(c, "k9", 2, step);
	}
	after = stats(c);
	assert_memory_equal(&before, &after, sizeof(before));
	assert_int_equal(put(c, "k5", 10, 5, 0, 0), CACHE_OK);
	assert_null(cache_peek(c, "k1", 2));
	assert_non_null(cache_peek(c, "k2", 2));
	cache_destroy(c);

	/* Mid-rehash, present and absent keys, every step. */
	assert_non_null(c = new_cache(0, 5, NULL, NULL));
	for (i = 0; i < 5000 || stats(c).table_buckets % 3 != 0; i++) {
		assert_true(i < 100000);
		len = key_of(key, sizeof(key), i);
		assert_int_equal(cache_set(c, key, len, "v", 1, i + 1, 0,
				     i % 5 == 0 ? CACHE_F_PINNED : 0),
		    CACHE_OK);
	}
	before = stats(c);
	for (i = 0; i < 2 * 5000; i++) {
		len = key_of(key, sizeof(key), i);
		for (step = 0; step < 3; step++)
			cache_prefetch(c, key, len, step);
	}
	after = stats(c);
	assert_memory_equal(&before, &after, sizeof(before));
	assert_true(after.table_buckets % 3 == 0); /* still mid-rehash */
	for (i = 0; i < 5000; i++) {
		len = key_of(key, sizeof(key), i);
		assert_non_null(cache_peek(c, key, len));
	}
	cache_destroy(c);
}

/*
 * The _h calls, with hashes taken before the table exists: the hash of a
 * key is the cache's for its whole life, through growth and mid-rehash;
 * each call then does what the one without _h does. Another seed hashes
 * the same keys otherwise.
 */
static void
test_hash_given(void **state)
{
	struct cache_stats before, after;
	struct cache	  *c, *c2;
	uint64_t	  *h;
	char		   key[64];
	size_t		   len;
	unsigned	   i, n, nkeys = 10000, differ = 0, pinned = 0;
	int		   step;

	(void)state;
	assert_non_null(h = calloc(nkeys, sizeof(*h)));
	assert_non_null(c = new_cache(0, 7, NULL, NULL));
	assert_non_null(c2 = new_cache(0, 8, NULL, NULL));
	for (i = 0; i < nkeys; i++) {
		len = key_of(key, sizeof(key), i);
		h[i] = cache_key_hash(c, key, len);
		differ += h[i] != cache_key_hash(c2, key, len);
	}
	assert_true(differ > nkeys / 2);
	/* Half the keys or more, up to a point mid-rehash. */
	for (i = 0; i < nkeys / 2 || stats(c).table_buckets % 3 != 0; i++) {
		assert_true(i < nkeys);
		len = key_of(key, sizeof(key), i);
		assert_int_equal(
		    cache_set_newer_h(c, key, len, h[i], "v", 1, i + 10, 0,
			i % 5 == 0 ? CACHE_F_PINNED : 0),
		    CACHE_OK);
		pinned += i % 5 == 0;
		/* An older version stays out, as with cache_set_newer. */
		assert_int_equal(
		    cache_set_newer_h(c, key, len, h[i], "w", 1, i + 9, 0, 0),
		    CACHE_ESTALE);
	}
	n = i;
	assert_int_equal(stats(c).pinned, pinned);
	before = stats(c);
	for (i = 0; i < nkeys; i++) {
		len = key_of(key, sizeof(key), i);
		for (step = 0; step < 3; step++)
			cache_prefetch_h(c, key, len, h[i], step);
	}
	after = stats(c);
	assert_memory_equal(&before, &after, sizeof(before));
	for (i = 0; i < n; i++) {
		len = key_of(key, sizeof(key), i);
		assert_non_null(cache_peek(c, key, len));
		/* A version that is not the entry's unpins nothing. */
		assert_int_equal(
		    cache_unpin_h(c, key, len, h[i], i + 11), CACHE_ENOENT);
		assert_int_equal(
		    cache_unpin_h(c, key, len, h[i], i + 10), CACHE_OK);
	}
	assert_int_equal(stats(c).pinned, 0);
	assert_int_equal(stats(c).entries, n);
	/* Keys a lookup refuses: hashed to 0, not read (ASan checks). */
	assert_true(cache_key_hash(c, "a", CACHE_KEY_MAX + 1) == 0);
	assert_true(cache_key_hash(c, "", 0) == 0);
	assert_int_equal(cache_set(c, "a", CACHE_KEY_MAX + 1, "v", 1, 1, 0, 0),
	    CACHE_EINVAL);
	assert_int_equal(
	    cache_unpin(c, "a", CACHE_KEY_MAX + 1, 1), CACHE_ENOENT);
	assert_int_equal(
	    cache_set_newer_h(c, "", 0, 0, "v", 1, 1, 0, 0), CACHE_EINVAL);
	assert_int_equal(cache_unpin_h(c, "", 0, 0, 1), CACHE_ENOENT);
	cache_prefetch_h(c, "", 0, 0, 0);
	cache_destroy(c2);
	cache_destroy(c);
	free(h);
}

/* Fill a 4-entry cache with pinned and unpinned entries of size sz. */
static struct cache *
pin_setup(size_t sz)
{
	struct cache *c;

	assert_non_null(c = new_cache(room_for(4, sz), 8, NULL, NULL));
	assert_int_equal(put(c, "p1", 10, 1, 0, CACHE_F_PINNED), CACHE_OK);
	assert_int_equal(put(c, "p2", 10, 2, 0, CACHE_F_PINNED), CACHE_OK);
	assert_int_equal(put(c, "u1", 10, 3, 0, 0), CACHE_OK);
	assert_int_equal(put(c, "u2", 10, 4, 0, 0), CACHE_OK);
	return c;
}

/* Pinned entries are never evicted; when only they are left, EFULL. */
static void
test_pinning(void **state)
{
	struct cache	   *c;
	struct cache_entry *e;
	struct cache_stats  before, after;
	size_t		    sz = cache_entry_size(2, 10, 0);

	(void)state;
	c = pin_setup(sz);
	/* The oldest entries are pinned; the oldest unpinned ones go. */
	assert_int_equal(put(c, "u3", 10, 5, 0, 0), CACHE_OK);
	assert_false(has(c, "u1"));
	assert_int_equal(put(c, "u4", 10, 6, 0, 0), CACHE_OK);
	assert_false(has(c, "u2"));
	assert_int_equal(put(c, "p3", 10, 7, 0, CACHE_F_PINNED), CACHE_OK);
	assert_false(has(c, "u3"));
	assert_int_equal(put(c, "p4", 10, 8, 0, CACHE_F_PINNED), CACHE_OK);
	assert_false(has(c, "u4"));
	assert_int_equal(stats(c).pinned, 4);
	assert_int_equal(stats(c).evictions, 4);

	/* Only pinned entries: EFULL, and nothing changes. */
	cache_get_stats(c, &before);
	assert_int_equal(put(c, "x", 1, 9, 0, 0), CACHE_EFULL);
	assert_int_equal(put(c, "y", 1, 9, 0, CACHE_F_PINNED), CACHE_EFULL);
	assert_int_equal(put(c, "p1", 11, 9, 0, CACHE_F_PINNED), CACHE_EFULL);
	cache_get_stats(c, &after);
	assert_memory_equal(&before, &after, sizeof(before));
	assert_non_null(e = cache_peek(c, "p1", 2));
	assert_int_equal(cache_entry_version(e), 1);
	assert_true(has(c, "p2") && has(c, "p3") && has(c, "p4"));

	/* Replacing a pinned entry by one of the same size frees its own. */
	assert_int_equal(put(c, "p1", 10, 10, 0, CACHE_F_PINNED), CACHE_OK);
	assert_int_equal(cache_entry_version(cache_peek(c, "p1", 2)), 10);

	/* Unpin by version only: a newer write keeps its own pin. */
	assert_int_equal(cache_unpin(c, "p1", 2, 1), CACHE_ENOENT);
	assert_int_equal(stats(c).pinned, 4);
	assert_int_equal(cache_unpin(c, "nope", 4, 1), CACHE_ENOENT);
	assert_int_equal(cache_unpin(c, "p1", 2, 10), CACHE_OK);
	assert_int_equal(stats(c).pinned, 3);
	assert_int_equal(cache_entry_flags(cache_peek(c, "p1", 2)), 0);
	/* Again: it matches and stays, already unpinned. */
	assert_int_equal(cache_unpin(c, "p1", 2, 10), CACHE_OK);
	assert_true(has(c, "p1"));

	/* Now p1 is the only evictable entry. */
	assert_int_equal(put(c, "x", 10, 11, 0, 0), CACHE_OK);
	assert_false(has(c, "p1"));
	assert_true(
	    has(c, "p2") && has(c, "p3") && has(c, "p4") && has(c, "x"));
	assert_int_equal(stats(c).evictions, 5);
	cache_destroy(c);
}

/*
 * cache_unpin_upto clears pins oldest first, by version, up to the first
 * newer one; a lookup does not reorder pins; unpinned entries join the LRU
 * head in the order they were unpinned, tombstones go, and the limit is
 * enforced again.
 */
static void
test_unpin_upto(void **state)
{
	struct cache *c;
	size_t	      sz = cache_entry_size(1, 10, 0);

	(void)state;
	assert_non_null(c = new_cache(room_for(6, sz), 8, NULL, NULL));
	assert_int_equal(put(c, "a", 10, 1, 0, CACHE_F_PINNED), CACHE_OK);
	assert_int_equal(put(c, "b", 10, 2, 0, CACHE_F_PINNED), CACHE_OK);
	assert_int_equal(
	    put(c, "t", 0, 3, 0, CACHE_F_PINNED | CACHE_F_TOMBSTONE), CACHE_OK);
	assert_int_equal(put(c, "c", 10, 5, 0, CACHE_F_PINNED), CACHE_OK);
	/* A newer pin of a: its place is now the newest. */
	assert_int_equal(put(c, "a", 10, 6, 0, CACHE_F_PINNED), CACHE_OK);
	/* Lookups leave the order of the pins alone. */
	assert_non_null(cache_get(c, "b", 1));
	assert_non_null(cache_get(c, "t", 1));
	/* A pin out of version order, after newer ones. */
	assert_int_equal(put(c, "d", 10, 4, 0, CACHE_F_PINNED), CACHE_OK);
	assert_int_equal(stats(c).pinned, 5);

	assert_int_equal(cache_unpin_upto(c, 1), 0);
	assert_int_equal(stats(c).pinned, 5);
	assert_int_equal(cache_unpin_upto(c, 2), 1);
	assert_int_equal(cache_entry_flags(cache_peek(c, "b", 1)), 0);
	/* The tombstone goes; the walk stops at c (5): d (4) waits. */
	assert_int_equal(cache_unpin_upto(c, 4), 1);
	assert_false(has(c, "t"));
	assert_int_equal(stats(c).entries, 4);
	assert_int_equal(stats(c).pinned, 3);
	assert_int_equal(
	    cache_entry_flags(cache_peek(c, "d", 1)), CACHE_F_PINNED);
	assert_int_equal(cache_unpin_upto(c, 5), 1);
	assert_int_equal(
	    cache_entry_flags(cache_peek(c, "a", 1)), CACHE_F_PINNED);
	assert_int_equal(cache_unpin_upto(c, 100), 2);
	assert_int_equal(stats(c).pinned, 0);
	assert_int_equal(cache_unpin_upto(c, 100), 0);

	/* Eviction takes them in the order they were unpinned: b c a d. */
	assert_int_equal(put(c, "e", 10, 7, 0, 0), CACHE_OK);
	assert_int_equal(put(c, "f", 10, 8, 0, 0), CACHE_OK);
	assert_true(has(c, "b"));
	assert_int_equal(put(c, "g", 10, 9, 0, 0), CACHE_OK);
	assert_false(has(c, "b"));
	assert_true(has(c, "c"));
	assert_int_equal(put(c, "h", 10, 10, 0, 0), CACHE_OK);
	assert_false(has(c, "c"));
	assert_true(has(c, "a") && has(c, "d"));
	assert_int_equal(stats(c).evictions, 2);

	/* Shrunk below its pins, the cache evicts down once they go. */
	assert_int_equal(put(c, "p", 10, 11, 0, CACHE_F_PINNED), CACHE_OK);
	assert_int_equal(put(c, "q", 10, 12, 0, CACHE_F_PINNED), CACHE_OK);
	cache_set_max_memory(c, room_for(1, sz));
	assert_int_equal(stats(c).entries, 2);
	assert_int_equal(cache_unpin_upto(c, 11), 1);
	assert_int_equal(stats(c).entries, 1);
	assert_true(has(c, "q"));
	assert_int_equal(stats(c).bytes, room_for(1, sz));
	cache_destroy(c);
}

/*
 * Reservations: room held for entries to be pinned later counts as used,
 * evicts what it must, cannot be evicted, and turns into a pinned entry
 * that always fits.
 */
static void
test_reserve(void **state)
{
	struct cache	  *c;
	struct cache_stats before, after;
	size_t		   sz = cache_entry_size(2, 10, 0);

	(void)state;
	c = pin_setup(sz); /* room for 4: p1 p2 pinned, u1 u2 */
	/* Reserving one entry's room evicts the oldest unpinned one. */
	assert_int_equal(cache_reserve(c, sz), CACHE_OK);
	assert_false(has(c, "u1"));
	assert_true(has(c, "u2"));
	assert_int_equal(stats(c).reserved, sz);
	assert_true(stats(c).bytes <= stats(c).max_memory);
	/* A second one takes u2; a third cannot: nothing left to evict. */
	assert_int_equal(cache_reserve(c, sz), CACHE_OK);
	assert_false(has(c, "u2"));
	cache_get_stats(c, &before);
	assert_int_equal(cache_reserve(c, sz), CACHE_EFULL);
	assert_int_equal(
	    cache_reserve(c, stats(c).max_memory + 1), CACHE_EFULL);
	cache_get_stats(c, &after);
	assert_memory_equal(&before, &after, sizeof(before));
	/* Reserved room is not taken by unpinned entries. */
	assert_int_equal(put(c, "u3", 10, 5, 0, 0), CACHE_EFULL);
	/* Given back and used at once, a pinned entry of that size fits. */
	cache_unreserve(c, sz);
	assert_int_equal(put(c, "q1", 10, 6, 0, CACHE_F_PINNED), CACHE_OK);
	cache_unreserve(c, sz);
	assert_int_equal(put(c, "q2", 10, 7, 0, CACHE_F_PINNED), CACHE_OK);
	assert_int_equal(stats(c).reserved, 0);
	assert_int_equal(stats(c).pinned, 4);
	assert_true(stats(c).bytes <= stats(c).max_memory);
	/* An unreserved, unused reservation frees its bytes again. */
	assert_int_equal(cache_unpin(c, "q2", 2, 7), CACHE_OK);
	assert_int_equal(cache_reserve(c, sz), CACHE_OK);
	assert_false(has(c, "q2"));
	before = stats(c);
	cache_unreserve(c, sz);
	assert_int_equal(stats(c).bytes, before.bytes - sz);
	cache_destroy(c);
}

/*
 * A reservation in an empty cache, which has no bucket array yet, holds
 * room for the array as well: the pinned set it promises must fit though
 * that set allocates the array.
 */
static void
test_reserve_empty(void **state)
{
	struct cache *c;
	size_t	      fits = 1024, big = fits + 21;
	size_t	      vfits = fits - cache_entry_size(2, 0, 0);

	(void)state;
	c = new_cache(2048, 1, NULL, NULL);
	assert_non_null(c);
	assert_int_equal(stats(c).table_buckets, 0);
	assert_int_equal(cache_reserve(c, 960), CACHE_OK);
	/* 960 + 1045 leave no room for the 8 buckets of 8 bytes. */
	assert_int_equal(cache_entry_size(2, vfits, 0), fits);
	assert_int_equal(cache_reserve(c, big), CACHE_EFULL);
	assert_int_equal(stats(c).reserved, 960);
	/* 960 + 1024 + 64 is 2048: that one is kept, and then fits. */
	assert_int_equal(cache_reserve(c, fits), CACHE_OK);
	cache_unreserve(c, fits);
	assert_int_equal(put(c, "p1", vfits, 1, 0, CACHE_F_PINNED), CACHE_OK);
	assert_int_equal(stats(c).table_buckets, 8);
	assert_int_equal(stats(c).bytes, 2048);
	cache_unreserve(c, 960);
	cache_destroy(c);
}

/* Tombstones: no value, a hit, removed when unpinned. */
static void
test_tombstones(void **state)
{
	struct cache	   *c;
	struct cache_entry *e;
	struct cache_stats  st;
	size_t		    vlen;

	(void)state;
	assert_non_null(c = new_cache(0, 8, NULL, NULL));
	assert_int_equal(put(c, "t", 5, 1, 0, 0), CACHE_OK);
	assert_int_equal(cache_set(c, "t", 1, NULL, 0, 9, 0,
			     CACHE_F_TOMBSTONE | CACHE_F_PINNED),
	    CACHE_OK);
	assert_non_null(e = cache_get(c, "t", 1));
	assert_int_equal(
	    cache_entry_flags(e), CACHE_F_TOMBSTONE | CACHE_F_PINNED);
	assert_int_equal(cache_entry_version(e), 9);
	cache_entry_value(e, &vlen);
	assert_int_equal(vlen, 0);
	cache_get_stats(c, &st);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.misses, 0);
	assert_int_equal(st.pinned, 1);
	assert_int_equal(st.bytes,
	    cache_entry_size(1, 0, 0) + st.table_buckets * BUCKET_BYTES);

	assert_int_equal(cache_unpin(c, "t", 1, 8), CACHE_ENOENT);
	assert_true(has(c, "t"));
	assert_int_equal(cache_unpin(c, "t", 1, 9), CACHE_OK);
	assert_false(has(c, "t"));
	cache_get_stats(c, &st);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.pinned, 0);
	assert_int_equal(st.bytes, st.table_buckets * BUCKET_BYTES);

	/* An unpinned tombstone (a negative lookup) can be deleted. */
	assert_int_equal(put(c, "n", 0, 3, 0, CACHE_F_TOMBSTONE), CACHE_OK);
	assert_non_null(e = cache_get(c, "n", 1));
	assert_int_equal(cache_entry_flags(e), CACHE_F_TOMBSTONE);
	assert_int_equal(cache_del(c, "n", 1), CACHE_OK);
	assert_null(cache_get(c, "n", 1));
	cache_destroy(c);
}

/* Delete removes pinned and unpinned entries and gives the bytes back. */
static void
test_delete(void **state)
{
	struct cache	  *c;
	struct cache_stats st;

	(void)state;
	assert_non_null(c = new_cache(0, 8, NULL, NULL));
	assert_int_equal(cache_del(c, "a", 1), CACHE_ENOENT);
	assert_int_equal(put(c, "a", 50, 1, 0, 0), CACHE_OK);
	assert_int_equal(put(c, "b", 60, 1, 0, CACHE_F_PINNED), CACHE_OK);
	assert_int_equal(cache_del(c, "a", 1), CACHE_OK);
	assert_int_equal(cache_del(c, "a", 1), CACHE_ENOENT);
	assert_null(cache_get(c, "a", 1));
	cache_get_stats(c, &st);
	assert_int_equal(st.entries, 1);
	assert_int_equal(st.bytes,
	    cache_entry_size(1, 60, 0) + st.table_buckets * BUCKET_BYTES);
	assert_int_equal(cache_del(c, "b", 1), CACHE_OK);
	cache_get_stats(c, &st);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.pinned, 0);
	assert_int_equal(st.bytes, st.table_buckets * BUCKET_BYTES);
	assert_int_equal(cache_unpin(c, "b", 1, 1), CACHE_ENOENT);
	cache_destroy(c);
}

/* Overwrites with larger and smaller values account exactly. */
static void
test_overwrite(void **state)
{
	struct talloc	    ta;
	struct model	    m;
	struct cache	   *c;
	struct cache_entry *e;
	struct cache_stats  before, after;
	size_t		    base, sz = cache_entry_size(2, 100, 0);

	(void)state;
	memset(&ta, 0, sizeof(ta));
	memset(&m, 0, sizeof(m));
	assert_non_null(c = new_cache(0, 4, &ta, NULL));
	base = ta.live_bytes;
	assert_int_equal(mset(c, &m, 1, 10, 1, 0), CACHE_OK);
	model_check(c, &m, &ta, base);
	assert_int_equal(mset(c, &m, 1, 1000, 2, 0), CACHE_OK);
	model_check(c, &m, &ta, base);
	assert_int_equal(mset(c, &m, 1, 0, 3, 0), CACHE_OK);
	model_check(c, &m, &ta, base);
	assert_int_equal(mset(c, &m, 1, 3000, 4, CACHE_F_PINNED), CACHE_OK);
	model_check(c, &m, &ta, base);
	assert_int_equal(mset(c, &m, 1, 7, 5, 0), CACHE_OK);
	model_check(c, &m, &ta, base);
	assert_int_equal(stats(c).entries, 1);
	assert_int_equal(stats(c).pinned, 0);
	cache_destroy(c);
	assert_int_equal(ta.live, 0);

	/* Under the limit: a larger value evicts others, never itself. */
	assert_non_null(c = new_cache(room_for(4, sz), 4, NULL, NULL));
	assert_int_equal(put(c, "k0", 100, 1, 0, 0), CACHE_OK);
	assert_int_equal(put(c, "k1", 100, 1, 0, 0), CACHE_OK);
	assert_int_equal(put(c, "k2", 100, 1, 0, CACHE_F_PINNED), CACHE_OK);
	assert_int_equal(put(c, "k3", 100, 1, 0, 0), CACHE_OK);
	assert_int_equal(put(c, "k0", 100 + sz, 2, 0, 0), CACHE_OK);
	assert_false(has(c, "k1"));
	assert_true(has(c, "k0") && has(c, "k2") && has(c, "k3"));
	assert_int_equal(stats(c).bytes, room_for(4, sz));
	/* Larger than all that can be freed: EFULL, the old one stays. */
	cache_get_stats(c, &before);
	assert_int_equal(put(c, "k0", 100 + 2 * sz + 1, 3, 0, 0), CACHE_EFULL);
	cache_get_stats(c, &after);
	assert_memory_equal(&before, &after, sizeof(before));
	assert_non_null(e = cache_peek(c, "k0", 2));
	assert_int_equal(cache_entry_version(e), 2);
	/* Exactly all that can be freed: k3 goes. */
	assert_int_equal(put(c, "k0", 100 + 2 * sz, 3, 0, 0), CACHE_OK);
	assert_false(has(c, "k3"));
	assert_int_equal(stats(c).bytes, room_for(4, sz));
	/* Smaller again. */
	assert_int_equal(put(c, "k0", 1, 4, 0, 0), CACHE_OK);
	cache_get_stats(c, &after);
	assert_int_equal(
	    after.bytes, 8 * BUCKET_BYTES + sz + cache_entry_size(2, 1, 0));
	assert_int_equal(after.entries, 2);

	/* Too large for the cache at all: EINVAL, not EFULL. */
	assert_int_equal(put(c, "k9", 5 * sz, 1, 0, 0), CACHE_EINVAL);
	assert_int_equal(stats(c).entries, 2);
	cache_destroy(c);
}

/*
 * A value replaced by one of its size is written in place: no allocation,
 * the same bytes, and the entry goes where a new one would (the head of
 * the LRU list, or the newest pin).
 */
static void
test_replace_in_place(void **state)
{
	struct talloc	    ta;
	struct fclock	    fc = {.now = 1000};
	struct cache	   *c;
	struct cache_entry *e;
	struct cache_stats  before, after;
	const void	   *v;
	size_t		    vlen, sz = cache_entry_size(1, 10, 0);
	unsigned long	    calls;

	(void)state;
	memset(&ta, 0, sizeof(ta));
	/* Room for three values, a tombstone, and one expiry. */
	assert_int_equal(cache_entry_size(1, 10, 30), sz + 8);
	assert_non_null(
	    c = new_cache(
		room_for(3, sz) + cache_entry_size(1, 0, 0) + 8, 4, &ta, &fc));
	/* "a" has an expiry, kept after its value: same size with another. */
	assert_int_equal(put(c, "a", 10, 1, 30, 0), CACHE_OK);
	assert_int_equal(put(c, "b", 10, 2, 0, 0), CACHE_OK);
	assert_int_equal(put(c, "c", 10, 3, 0, 0), CACHE_OK);
	cache_get_stats(c, &before);
	calls = ta.calls;
	assert_int_equal(
	    cache_set(c, "a", 1, "0123456789", 10, 4, 60, CACHE_F_PINNED),
	    CACHE_OK);
	assert_int_equal(ta.calls, calls);
	cache_get_stats(c, &after);
	assert_int_equal(after.bytes, before.bytes);
	assert_int_equal(after.entries, 3);
	assert_int_equal(after.pinned, 1);
	assert_non_null(e = cache_peek(c, "a", 1));
	v = cache_entry_value(e, &vlen);
	assert_int_equal(vlen, 10);
	assert_memory_equal(v, "0123456789", 10);
	assert_int_equal(cache_entry_version(e), 4);
	assert_int_equal(cache_entry_flags(e), CACHE_F_PINNED);
	assert_int_equal(cache_entry_ttl(c, e), 60);

	/* Pinned to unpinned, another TTL: the most recently used now. */
	assert_int_equal(
	    cache_set(c, "a", 1, "abcdefghij", 10, 5, 90, 0), CACHE_OK);
	assert_int_equal(ta.calls, calls);
	assert_int_equal(stats(c).pinned, 0);
	assert_int_equal(cache_entry_ttl(c, cache_peek(c, "a", 1)), 90);
	assert_int_equal(put(c, "d", 10, 6, 0, 0), CACHE_OK);
	assert_false(has(c, "b"));
	assert_true(has(c, "a") && has(c, "c") && has(c, "d"));

	/* A tombstone replaced by a tombstone. */
	assert_int_equal(
	    put(c, "t", 0, 7, 0, CACHE_F_PINNED | CACHE_F_TOMBSTONE), CACHE_OK);
	calls = ta.calls;
	assert_int_equal(
	    put(c, "t", 0, 8, 0, CACHE_F_PINNED | CACHE_F_TOMBSTONE), CACHE_OK);
	assert_int_equal(ta.calls, calls);
	assert_int_equal(cache_entry_version(cache_peek(c, "t", 1)), 8);

	/* A pin renewed in place is the newest pin. */
	assert_int_equal(put(c, "c", 10, 9, 0, CACHE_F_PINNED), CACHE_OK);
	assert_int_equal(
	    put(c, "t", 0, 10, 0, CACHE_F_PINNED | CACHE_F_TOMBSTONE),
	    CACHE_OK);
	assert_int_equal(cache_unpin_upto(c, 9), 1);
	assert_int_equal(cache_entry_flags(cache_peek(c, "c", 1)), 0);
	assert_true(has(c, "t"));

	/* Without its expiry "a" is 8 bytes smaller: a new entry. */
	cache_get_stats(c, &before);
	calls = ta.calls;
	assert_int_equal(put(c, "a", 10, 11, 0, CACHE_F_PINNED), CACHE_OK);
	assert_true(ta.calls > calls);
	assert_int_equal(stats(c).bytes, before.bytes - 8);
	assert_int_equal(cache_entry_ttl(c, cache_peek(c, "a", 1)), 0);

	/* Pins hold the cache above its limit: no room, nothing changes. */
	assert_int_equal(put(c, "c", 10, 12, 0, CACHE_F_PINNED), CACHE_OK);
	assert_int_equal(put(c, "d", 10, 13, 0, CACHE_F_PINNED), CACHE_OK);
	cache_set_max_memory(c, room_for(2, sz));
	cache_get_stats(c, &before);
	assert_true(before.bytes > before.max_memory);
	assert_int_equal(put(c, "a", 10, 14, 0, 0), CACHE_EFULL);
	cache_get_stats(c, &after);
	assert_memory_equal(&before, &after, sizeof(before));
	assert_int_equal(cache_entry_version(cache_peek(c, "a", 1)), 11);
	cache_destroy(c);
	assert_int_equal(ta.live, 0);
}

/* The version of the key "s", which must be there (and not expired). */
static uint64_t
version_of(struct cache *c, const char *s, size_t *vlen)
{
	struct cache_entry *e;

	assert_non_null(e = cache_peek(c, s, strlen(s)));
	(void)cache_entry_value(e, vlen);
	return cache_entry_version(e);
}

/* cache_set_newer with the key "s". */
static int
put_newer(struct cache *c, const char *s, size_t vlen, uint64_t version,
    uint64_t ttl, unsigned flags)
{
	return put_with(cache_set_newer, c, s, vlen, version, ttl, flags);
}

/*
 * cache_set_newer: an entry of a higher version stays, whatever it is
 * (pinned, a tombstone, expired) and whatever the new one would have
 * failed with; the same or a lower version is replaced as cache_set does.
 */
static void
test_set_newer(void **state)
{
	struct fclock	   fc = {1000};
	struct cache	  *c;
	struct cache_stats before, after;
	size_t		   vlen, sz = cache_entry_size(1, 100, 0);

	(void)state;
	assert_non_null(c = new_cache(room_for(4, sz), 5, NULL, &fc));
	/* Absent: inserted. */
	assert_int_equal(put_newer(c, "a", 100, 5, 0, 0), CACHE_OK);
	assert_int_equal(version_of(c, "a", &vlen), 5);

	/* Older: kept, nothing counted or moved. */
	assert_int_equal(put(c, "b", 100, 1, 0, 0), CACHE_OK);
	cache_get_stats(c, &before);
	assert_int_equal(put_newer(c, "a", 50, 4, 0, 0), CACHE_ESTALE);
	assert_int_equal(
	    put_newer(c, "a", 0, 4, 0, CACHE_F_TOMBSTONE), CACHE_ESTALE);
	cache_get_stats(c, &after);
	assert_memory_equal(&before, &after, sizeof(before));
	assert_int_equal(version_of(c, "a", &vlen), 5);
	assert_int_equal(vlen, 100);
	/* An older write too large for the cache: still ESTALE, kept. */
	assert_int_equal(put_newer(c, "a", 5 * sz, 4, 0, 0), CACHE_ESTALE);
	assert_int_equal(version_of(c, "a", &vlen), 5);
	/* A newer one that large: EINVAL, and the old one stays. */
	assert_int_equal(put_newer(c, "a", 5 * sz, 6, 0, 0), CACHE_EINVAL);
	assert_int_equal(version_of(c, "a", &vlen), 5);

	/* The same version, or a higher one: replaced. */
	assert_int_equal(put_newer(c, "a", 50, 5, 0, 0), CACHE_OK);
	assert_int_equal(version_of(c, "a", &vlen), 5);
	assert_int_equal(vlen, 50);
	assert_int_equal(put_newer(c, "a", 60, 9, 0, CACHE_F_PINNED), CACHE_OK);
	assert_int_equal(version_of(c, "a", &vlen), 9);
	assert_int_equal(stats(c).pinned, 1);

	/* A pinned newer one and a newer tombstone stay. */
	assert_int_equal(put_newer(c, "a", 10, 8, 0, 0), CACHE_ESTALE);
	assert_int_equal(stats(c).pinned, 1);
	assert_int_equal(put(c, "t", 0, 7, 0, CACHE_F_TOMBSTONE), CACHE_OK);
	assert_int_equal(put_newer(c, "t", 10, 6, 0, 0), CACHE_ESTALE);
	assert_true(
	    cache_entry_flags(cache_peek(c, "t", 1)) & CACHE_F_TOMBSTONE);

	/* A newer entry that expired stays too: the key stays absent. */
	assert_int_equal(put(c, "e", 100, 20, 1, 0), CACHE_OK);
	fc.now += 2;
	assert_false(has(c, "e"));
	assert_int_equal(put_newer(c, "e", 100, 19, 0, 0), CACHE_ESTALE);
	assert_false(has(c, "e"));
	/* A later version replaces it. */
	assert_int_equal(put_newer(c, "e", 100, 21, 0, 0), CACHE_OK);
	assert_true(has(c, "e"));
	assert_int_equal(version_of(c, "e", &vlen), 21);
	cache_destroy(c);
}

/*
 * A limit too small for the table to grow: growth is skipped and every
 * key is still found.
 */
static void
test_no_growth(void **state)
{
	struct cache *c;
	size_t	      sz = cache_entry_size(3, 1, 0);
	char	      key[4];
	unsigned      i;

	(void)state;
	assert_non_null(c = new_cache(room_for(18, sz), 4, NULL, NULL));
	for (i = 0; i < 18; i++) {
		snprintf(key, sizeof(key), "k%02u", i);
		assert_int_equal(
		    cache_set(c, key, 3, "v", 1, i, 0, 0), CACHE_OK);
	}
	assert_int_equal(stats(c).table_buckets, 8);
	assert_int_equal(stats(c).entries, 18);
	assert_int_equal(stats(c).evictions, 0);
	for (i = 0; i < 18; i++) {
		snprintf(key, sizeof(key), "k%02u", i);
		assert_non_null(cache_get(c, key, 3));
	}
	/* Raising the limit lets it grow. */
	cache_set_max_memory(c, 0);
	assert_int_equal(stats(c).table_buckets, 8 + 16);
	for (i = 0; i < 18; i++) {
		snprintf(key, sizeof(key), "k%02u", i);
		assert_non_null(cache_get(c, key, 3));
	}
	assert_int_equal(stats(c).table_buckets, 16);
	cache_destroy(c);
}

/* The million-key key of i: 16 bytes. */
static void
mkey(char *buf, unsigned i)
{
	char tmp[17];

	snprintf(tmp, sizeof(tmp), "key:%012u", i);
	memcpy(buf, tmp, 16);
}

/* Check that keys 0..n-1 are there with peek, which moves nothing. */
static void
million_check(struct cache *c, unsigned n)
{
	struct cache_entry *e;
	char		    key[16];
	const void	   *v;
	size_t		    vlen;
	unsigned	    i, got;

	for (i = 0; i < n; i++) {
		mkey(key, i);
		e = cache_peek(c, key, 16);
		assert_non_null(e);
		v = cache_entry_value(e, &vlen);
		assert_int_equal(vlen, sizeof(got));
		memcpy(&got, v, sizeof(got));
		assert_int_equal(got, i);
	}
}

/* Grow to a million keys, looking every key up in the middle of rehashes. */
static void
test_million(void **state)
{
	struct cache	  *c;
	struct cache_stats st;
	char		   key[16];
	unsigned	   i, n = 1000000, mid = 0;
	uint64_t	   checked = 0, buckets;
	double		   overhead;

	(void)state;
	assert_non_null(c = new_cache(0, 0x1234, NULL, NULL));
	for (i = 0; i < n; i++) {
		mkey(key, i);
		assert_int_equal(
		    cache_set(c, key, 16, &i, sizeof(i), i, 0, 0), CACHE_OK);
		buckets = stats(c).table_buckets;
		if (buckets % 3 == 0 && buckets != checked &&
		    buckets >= 3 * 64) {
			/* Mid-rehash: both tables in use. */
			million_check(c, i + 1);
			assert_int_equal(stats(c).table_buckets, buckets);
			checked = buckets;
			mid++;
		}
	}
	assert_true(mid >= 10);
	cache_get_stats(c, &st);
	assert_int_equal(st.entries, n);
	/* Lookups with get finish the rehash too. */
	for (i = 0; i < n; i++) {
		mkey(key, i);
		assert_non_null(cache_get(c, key, 16));
	}
	cache_get_stats(c, &st);
	assert_int_equal(st.hits, n);
	/* A million entries at most two per bucket: 2^19 buckets. */
	assert_int_equal(st.table_buckets, 1u << 19);
	overhead = (double)(st.bytes - (uint64_t)n * (16 + sizeof(i))) / n;
	assert_true(overhead <= 48.0);
	assert_int_equal(cache_del(c, "nope", 4), CACHE_ENOENT);
	cache_destroy(c);
}

/*
 * A scripted run for the allocation failure test. vlens are chosen so that
 * every entry's charge is odd; bucket arrays are even. Returns the number
 * of calls that answered CACHE_ENOMEM.
 */
static int
script(struct cache *c, struct model *m, const struct talloc *ta, size_t base)
{
	char	 key[64];
	size_t	 klen, v;
	unsigned i, id, ntomb = 0;
	int	 rc, nomem = 0;
	uint64_t ver = 0;

#define STEP(call)                                                             \
	do {                                                                   \
		rc = (call);                                                   \
		assert_true(rc == CACHE_OK || rc == CACHE_ENOMEM);             \
		if (rc == CACHE_ENOMEM)                                        \
			nomem++;                                               \
		model_check(c, m, ta, base);                                   \
	} while (0)
#define ODD(id, len)                                                           \
	((cache_entry_size(key_of(key, sizeof(key), (id)), (len), 0) & 1)      \
		? (len)                                                        \
		: (len) + 1)

	for (i = 0; i < 40; i++)
		STEP(mset(c, m, i, ODD(i, 10 + (i * 13) % 300), ++ver,
		    i % 7 == 0 ? CACHE_F_PINNED : 0));
	for (i = 0; i < 40; i += 3)
		STEP(mset(c, m, i, ODD(i, 500 + i), ++ver, 0));
	for (i = 0; i < 40; i += 5)
		STEP(mset(c, m, i, ODD(i, 1), ++ver, CACHE_F_PINNED));
	for (id = 40; id < 120 && ntomb < 8; id++) {
		klen = key_of(key, sizeof(key), id);
		if ((cache_entry_size(klen, 0, 0) & 1) == 0)
			continue;
		STEP(mset(
		    c, m, id, 0, ++ver, CACHE_F_TOMBSTONE | CACHE_F_PINNED));
		ntomb++;
	}
	for (id = 0; id < 120; id++) {
		if (!m->present[id])
			continue;
		if (id % 4 == 0) {
			rc = munpin(c, m, id, m->version[id]);
			assert_int_equal(rc, CACHE_OK);
		} else if (id % 4 == 1) {
			assert_int_equal(
			    munpin(c, m, id, m->version[id] + 1), CACHE_ENOENT);
		} else if (id % 4 == 2) {
			assert_int_equal(mdel(c, m, id), CACHE_OK);
		} else {
			klen = key_of(key, sizeof(key), id);
			assert_non_null(cache_get(c, key, klen));
		}
		model_check(c, m, ta, base);
	}
	for (i = 0; i < 10; i++) {
		cache_sweep(c, 3);
		model_check(c, m, ta, base);
	}

	/* About half of what is there: evict, then keep writing under it. */
	cache_set_max_memory(c, 6000);
	model_check(c, m, ta, base);
	for (i = 0; i < 60; i++) {
		v = ODD(120 + i, 50 + (i * 37) % 400);
		STEP(mset(
		    c, m, 120 + i, v, ++ver, i % 9 == 0 ? CACHE_F_PINNED : 0));
	}
	for (i = 0; i < 60; i += 2)
		STEP(mset(c, m, 120 + i, ODD(120 + i, 700), ++ver, 0));
#undef STEP
#undef ODD
	return nomem;
}

/*
 * Fail the N-th allocation (or all from the N-th) for every N the script
 * reaches: each failure is an error or a skipped growth, the cache stays
 * consistent with the model after every call, and nothing leaks.
 */
static void
test_alloc_failure(void **state)
{
	struct talloc ta;
	struct model  m;
	struct cache *c;
	unsigned long k, n;
	size_t	      base;
	int	      mode, nomem, surfaced = 0;

	(void)state;
	/* A run without failures counts the allocations. */
	memset(&ta, 0, sizeof(ta));
	memset(&m, 0, sizeof(m));
	assert_non_null(c = new_cache(0, 21, &ta, NULL));
	base = ta.live_bytes;
	assert_int_equal(script(c, &m, &ta, base), 0);
	assert_true(stats(c).evictions > 0);
	assert_true(stats(c).table_buckets >= 32);
	cache_destroy(c);
	assert_int_equal(ta.live, 0);
	k = ta.calls;
	assert_true(k > 150);

	for (mode = 0; mode < 2; mode++) {
		for (n = 1; n <= k + 1; n++) {
			memset(&ta, 0, sizeof(ta));
			memset(&m, 0, sizeof(m));
			ta.fail_at = n;
			ta.fail_after = mode;
			c = new_cache(0, 21, &ta, NULL);
			if (n == 1) {
				assert_null(c);
				assert_int_equal(ta.live, 0);
				continue;
			}
			assert_non_null(c);
			base = ta.live_bytes;
			nomem = script(c, &m, &ta, base);
			if (n > k) {
				assert_int_equal(ta.failures, 0);
				assert_int_equal(nomem, 0);
			} else if (mode == 0) {
				/* A failed entry is an error to its caller. */
				assert_int_equal(ta.failures, 1);
				assert_true(nomem <= 1);
				if (ta.failed_size & 1)
					assert_int_equal(nomem, 1);
				surfaced += nomem;
			} else
				assert_true(ta.failures >= 1);
			cache_destroy(c);
			assert_int_equal(ta.live, 0);
			assert_int_equal(ta.live_bytes, 0);
		}
	}
	assert_true(surfaced > 100);
}

/* Shrinking the limit evicts LRU first and keeps pinned entries. */
static void
test_shrink(void **state)
{
	struct cache	  *c;
	struct cache_stats st;
	size_t		   sz = cache_entry_size(3, 20, 0), tbytes;
	char		   key[4];
	unsigned	   i;

	(void)state;
	assert_non_null(c = new_cache(0, 6, NULL, NULL));
	for (i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "k%02u", i);
		assert_int_equal(
		    put(c, key, 20, i + 1, 0, i < 3 ? CACHE_F_PINNED : 0),
		    CACHE_OK);
	}
	for (i = 0; i < 200; i++)
		cache_sweep(c, 64); /* finish any rehash */
	cache_get_stats(c, &st);
	tbytes = st.table_buckets * BUCKET_BYTES;
	assert_int_equal(st.table_buckets, 64);
	assert_int_equal(st.bytes, tbytes + 100 * sz);

	/* Keep 3 pinned + the 7 most recent: k93..k99. */
	cache_set_max_memory(c, tbytes + 10 * sz);
	cache_get_stats(c, &st);
	assert_int_equal(st.max_memory, tbytes + 10 * sz);
	assert_int_equal(st.entries, 10);
	assert_int_equal(st.evictions, 90);
	assert_int_equal(st.bytes, tbytes + 10 * sz);
	for (i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "k%02u", i);
		assert_true(has(c, key) == (i < 3 || i >= 93));
	}

	/* Below what the pinned need: they stay, over the limit. */
	cache_set_max_memory(c, 500);
	cache_get_stats(c, &st);
	assert_int_equal(st.entries, 3);
	assert_int_equal(st.pinned, 3);
	assert_true(st.bytes > st.max_memory);
	assert_int_equal(put(c, "new", 20, 1, 0, 0), CACHE_EINVAL);

	/* Unpinning lets them go; an empty cache gives its table back. */
	assert_int_equal(cache_unpin(c, "k00", 3, 1), CACHE_OK);
	assert_int_equal(stats(c).entries, 2);
	assert_int_equal(cache_unpin(c, "k01", 3, 2), CACHE_OK);
	assert_int_equal(cache_del(c, "k02", 3), CACHE_OK);
	cache_get_stats(c, &st);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(st.table_buckets, 0);

	/* And it works again under the small limit. */
	assert_int_equal(put(c, "new", 20, 1, 0, 0), CACHE_OK);
	assert_true(stats(c).bytes <= 500);
	assert_true(has(c, "new"));
	cache_set_max_memory(c, 1);
	assert_int_equal(stats(c).bytes, 0);
	cache_destroy(c);
}

/* Different seeds, the same answers, for keys of every length. */
static void
test_seeds(void **state)
{
	static const uint64_t seeds[] = {0, 1, 2, 0xdeadbeefULL, UINT64_MAX};
	struct cache	     *c;
	struct cache_entry   *e;
	unsigned char	      key[200];
	size_t		      s, len, vlen;
	unsigned	      i;
	const void	     *v;

	(void)state;
	for (s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
		assert_non_null(c = new_cache(0, seeds[s], NULL, NULL));
		/* Keys of length 1..199 that differ in one byte only. */
		for (i = 0; i < 4000; i++) {
			len = 1 + i % 199;
			memset(key, 'a', len);
			key[(i / 199) % len] = (unsigned char)(i / 199);
			assert_int_equal(
			    cache_set(c, key, len, &i, sizeof(i), i, 0, 0),
			    CACHE_OK);
		}
		assert_int_equal(stats(c).entries, 4000);
		for (i = 0; i < 4000; i++) {
			len = 1 + i % 199;
			memset(key, 'a', len);
			key[(i / 199) % len] = (unsigned char)(i / 199);
			assert_non_null(e = cache_get(c, key, len));
			v = cache_entry_value(e, &vlen);
			assert_int_equal(vlen, sizeof(i));
			assert_memory_equal(v, &i, sizeof(i));
			if (i % 2 == 0)
				assert_int_equal(
				    cache_del(c, key, len), CACHE_OK);
		}
		for (i = 0; i < 4000; i++) {
			len = 1 + i % 199;
			memset(key, 'a', len);
			key[(i / 199) % len] = (unsigned char)(i / 199);
			assert_true(
			    (cache_peek(c, key, len) != NULL) == (i % 2 == 1));
		}
		assert_int_equal(stats(c).entries, 2000);
		cache_destroy(c);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_basic),
	    cmocka_unit_test(test_lru_order),
	    cmocka_unit_test(test_lru_random),
	    cmocka_unit_test(test_byte_limit_random),
	    cmocka_unit_test(test_ttl),
	    cmocka_unit_test(test_ttl_pinned),
	    cmocka_unit_test(test_sweep),
	    cmocka_unit_test(test_prefetch),
	    cmocka_unit_test(test_hash_given),
	    cmocka_unit_test(test_pinning),
	    cmocka_unit_test(test_unpin_upto),
	    cmocka_unit_test(test_reserve),
	    cmocka_unit_test(test_reserve_empty),
	    cmocka_unit_test(test_tombstones),
	    cmocka_unit_test(test_delete),
	    cmocka_unit_test(test_overwrite),
	    cmocka_unit_test(test_replace_in_place),
	    cmocka_unit_test(test_set_newer),
	    cmocka_unit_test(test_no_growth),
	    cmocka_unit_test(test_million),
	    cmocka_unit_test(test_alloc_failure),
	    cmocka_unit_test(test_shrink),
	    cmocka_unit_test(test_seeds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

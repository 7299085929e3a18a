/*
 * fuzz_cache.c -- fuzz target of the LRU cache (cache/cache.c).
 *
 * The input is a program: four bytes an operation (op, a, b, c) run on a
 * cache with a tiny memory limit, 16 keys of different lengths, a clock
 * the program moves and an allocator that counts every byte and fails
 * when told to. cache.c is built with CACHE_DEBUG, so it checks its own
 * lists and sums after every change; this file checks the contract from
 * outside, against a model of what each key may hold:
 *
 *	ABSENT	 the cache must not return it
 *	MAYBE	 set without a pin: it may have been evicted, but if it is
 *		 returned it is exactly what was set (value, version, flags)
 *		 and not expired
 *	PINNED	 it must be there, exactly as set, expired or not
 *
 * and after every operation: stats.pinned is the model's count of pins,
 * stats.reserved its reservations, the limit holds unless pins or
 * reservations hold it up, and the bytes the allocator has out are the
 * bytes the cache says it charges (plus the struct cache itself). A set
 * that fails leaves the cache as it was; a set after a reservation of its
 * size never fails for lack of room. At the end nothing is left allocated.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "fuzz.h"

#define NKEYS 16

enum op {
	OP_SET,
	OP_GET,
	OP_PEEK,
	OP_DEL,
	OP_UNPIN,
	OP_TICK,
	OP_SWEEP,
	OP_RESERVE,
	OP_UNRESERVE,
	OP_MAXMEM,
	OP_FAILALLOC,
	OP_RESERVE_SET,
	OP_UNPIN_UPTO,
	OP__COUNT
};

enum state { ABSENT = 0, MAYBE, PINNED };

struct model {
	enum state st;
	uint64_t   version;
	size_t	   vlen;
	unsigned   flags;
	uint64_t   expires; /* fake seconds, 0: never */
};

struct run {
	uint64_t     now;     /* the fake clock, seconds */
	size_t	     out;     /* bytes the allocator has out */
	int	     fail_in; /* fail the allocation this many from now */
	size_t	     reserved;
	uint64_t     version;
	struct model m[NKEYS];
	uint8_t	     keys[NKEYS][24];
	size_t	     klen[NKEYS];
};

static const size_t limits[4] = {1024, 2048, 8192, 0};

static uint64_t
fake_clock(void *arg)
{
	return ((struct run *)arg)->now;
}

/* Every block carries its size in front, so that free can count it. */
static void *
count_alloc(size_t size, void *arg)
{
	struct run *r = arg;
	size_t	   *p;

	if (r->fail_in > 0 && --r->fail_in == 0)
		return NULL;
	if ((p = malloc(size + sizeof(max_align_t))) == NULL)
		abort();
	*p = size;
	r->out += size;
	return (char *)p + sizeof(max_align_t);
}

static void
count_free(void *ptr, void *arg)
{
	struct run *r = arg;
	size_t	   *p;

	if (ptr == NULL)
		return;
	p = (size_t *)(void *)((char *)ptr - sizeof(max_align_t));
	FUZZ_CHECK(r->out >= *p);
	r->out -= *p;
	free(p);
}

/* The value bytes of a version: a pattern that tells versions apart. */
static void
fill(uint8_t *buf, size_t n, uint64_t version)
{
	size_t i;

	for (i = 0; i < n; i++)
		buf[i] = (uint8_t)(version * 31 + i);
}

/* An entry returned for key k must be exactly what the model holds. */
static void
check_entry(struct run *r, struct cache *c, int k, const struct cache_entry *e)
{
	const struct model *m = &r->m[k];
	const uint8_t	   *kp, *vp;
	uint8_t		    want[1024];
	size_t		    kl, vl;
	uint32_t	    left;

	FUZZ_CHECK(m->st != ABSENT);
	kp = cache_entry_key(e, &kl);
	FUZZ_CHECK(kl == r->klen[k] && memcmp(kp, r->keys[k], kl) == 0);
	FUZZ_CHECK(cache_entry_version(e) == m->version);
	FUZZ_CHECK(cache_entry_flags(e) == m->flags);
	vp = cache_entry_value(e, &vl);
	FUZZ_CHECK(vl == m->vlen);
	fill(want, vl, m->version);
	FUZZ_CHECK(vl == 0 || memcmp(vp, want, vl) == 0);
	if (m->st == MAYBE && m->expires != 0) {
		/* Never returned once expired, and the time left is right. */
		FUZZ_CHECK(r->now < m->expires);
		left = cache_entry_ttl(c, e);
		FUZZ_CHECK(left == m->expires - r->now);
	}
	if (m->expires == 0)
		FUZZ_CHECK(cache_entry_ttl(c, e) == 0);
	/* The expiry reads back as the clock's time it was set for. */
	FUZZ_CHECK(cache_entry_expires(c, e) == m->expires);
}

/* What must hold after every operation. */
static void
check_all(struct run *r, struct cache *c, size_t base)
{
	struct cache_stats  st;
	struct cache_entry *e;
	uint64_t	    npinned = 0;
	int		    k;

	cache_get_stats(c, &st);
	for (k = 0; k < NKEYS; k++) {
		if (r->m[k].st == PINNED)
			npinned++;
		e = cache_peek(c, r->keys[k], r->klen[k]);
		if (r->m[k].st == PINNED)
			FUZZ_CHECK(e != NULL);
		if (e != NULL)
			check_entry(r, c, k, e);
	}
	FUZZ_CHECK(st.pinned == npinned);
	FUZZ_CHECK(st.entries >= st.pinned && st.entries <= NKEYS);
	FUZZ_CHECK(st.reserved == r->reserved);
	FUZZ_CHECK(st.max_memory == 0 || st.bytes <= st.max_memory ||
		   st.pinned > 0 || st.reserved > 0);
	/* The cache charges exactly what it asks of the allocator. */
	FUZZ_CHECK(r->out - base == st.bytes - st.reserved);
}

/* The parts of the stats a failed operation must not change. */
static int
stats_same(const struct cache_stats *a, const struct cache_stats *b)
{
	return a->entries == b->entries && a->pinned == b->pinned &&
	       a->bytes == b->bytes && a->evictions == b->evictions &&
	       a->reserved == b->reserved;
}

static void
op_set(struct run *r, struct cache *c, int k, size_t vlen, unsigned flags,
    uint32_t ttl, int reserve_first)
{
	struct cache_stats before, after;
	struct model	  *m = &r->m[k];
	uint8_t		   val[1024];
	uint64_t	   version = ++r->version;
	size_t		   need;
	int		   rc;

	if (flags & CACHE_F_TOMBSTONE)
		vlen = 0;
	fill(val, vlen, version);
	if (reserve_first) {
		/* A reservation of the size makes room for the pinned set. */
		flags |= CACHE_F_PINNED;
		need = cache_entry_size(r->klen[k], vlen, ttl);
		if (cache_reserve(c, need) != CACHE_OK)
			return;
		cache_unreserve(c, need);
	}
	cache_get_stats(c, &before);
	rc = cache_set(c, r->keys[k], r->klen[k], vlen > 0 ? val : NULL, vlen,
	    version, ttl, flags);
	cache_get_stats(c, &after);
	FUZZ_CHECK(rc == CACHE_OK || rc == CACHE_ENOMEM || rc == CACHE_EFULL ||
		   rc == CACHE_EINVAL);
	if (reserve_first)
		FUZZ_CHECK(rc != CACHE_EFULL && rc != CACHE_EINVAL);
	if (rc != CACHE_OK) {
		/* Nothing moved; the old entry, if any, is as it was. */
		FUZZ_CHECK(stats_same(&before, &after));
		return;
	}
	m->st = flags & CACHE_F_PINNED ? PINNED : MAYBE;
	m->version = version;
	m->vlen = vlen;
	m->flags = flags;
	m->expires = ttl != 0 ? r->now + ttl : 0;
	FUZZ_CHECK(cache_peek(c, r->keys[k], r->klen[k]) != NULL);
}

static void
op_lookup(struct run *r, struct cache *c, int k, int peek)
{
	struct cache_entry *e;

	if (peek)
		e = cache_peek(c, r->keys[k], r->klen[k]);
	else
		e = cache_get(c, r->keys[k], r->klen[k]);
	if (e == NULL) {
		FUZZ_CHECK(r->m[k].st != PINNED);
		r->m[k].st = ABSENT;
	} else
		check_entry(r, c, k, e);
}

static void
op_del(struct run *r, struct cache *c, int k)
{
	int rc = cache_del(c, r->keys[k], r->klen[k]);

	FUZZ_CHECK(rc == CACHE_OK || rc == CACHE_ENOENT);
	if (r->m[k].st == PINNED)
		FUZZ_CHECK(rc == CACHE_OK);
	if (r->m[k].st == ABSENT)
		FUZZ_CHECK(rc == CACHE_ENOENT);
	r->m[k].st = ABSENT;
}

static void
op_unpin(struct run *r, struct cache *c, int k, int right)
{
	struct model *m = &r->m[k];
	uint64_t      v = right ? m->version : m->version + 1;
	int	      rc = cache_unpin(c, r->keys[k], r->klen[k], v);

	FUZZ_CHECK(rc == CACHE_OK || rc == CACHE_ENOENT);
	if (m->st == ABSENT || !right) {
		/* Nothing there, or a newer write that keeps its own pin. */
		FUZZ_CHECK(rc == CACHE_ENOENT);
		return;
	}
	if (m->st == PINNED)
		FUZZ_CHECK(rc == CACHE_OK);
	if (rc != CACHE_OK) {
		m->st = ABSENT; /* evicted or expired */
		return;
	}
	m->flags &= ~CACHE_F_PINNED;
	/* An unpinned tombstone has done its work and goes. */
	m->st = m->flags & CACHE_F_TOMBSTONE ? ABSENT : MAYBE;
}

/*
 * Clear the pins up to version v. The versions of this program only grow,
 * so the order of the pins is theirs and no older pin waits behind a
 * newer one: every pin of v or below goes.
 */
static void
op_unpin_upto(struct run *r, struct cache *c, uint64_t v)
{
	size_t n = cache_unpin_upto(c, v), want = 0;
	int    k;

	for (k = 0; k < NKEYS; k++) {
		struct model *m = &r->m[k];

		if (m->st != PINNED || m->version > v)
			continue;
		want++;
		m->flags &= ~CACHE_F_PINNED;
		m->st = m->flags & CACHE_F_TOMBSTONE ? ABSENT : MAYBE;
	}
	FUZZ_CHECK(n == want);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cache_config cfg;
	struct cache	   *c;
	struct run	    r;
	size_t		    i, n, base;
	uint8_t		    op, a, b, x;
	int		    k, rc;

	memset(&r, 0, sizeof(r));
	r.now = 1000;
	for (k = 0; k < NKEYS; k++) {
		r.klen[k] = 1 + (size_t)(k * 7) % 24;
		memset(r.keys[k], 'a' + k, r.klen[k]);
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.max_memory = 2048;
	cfg.seed = size > 0 ? data[0] : 0;
	cfg.clock = fake_clock;
	cfg.clock_arg = &r;
	cfg.alloc = count_alloc;
	cfg.free = count_free;
	cfg.alloc_arg = &r;
	if ((c = cache_create(&cfg)) == NULL)
		abort();
	/* The struct cache is the one block the cache does not charge. */
	{
		struct cache_stats st;

		cache_get_stats(c, &st);
		FUZZ_CHECK(r.out >= st.bytes);
		base = r.out - st.bytes;
	}

	for (i = 0; i + 4 <= size && i < 4 * 4096; i += 4) {
		op = data[i] % OP__COUNT;
		a = data[i + 1];
		b = data[i + 2];
		x = data[i + 3];
		k = a % NKEYS;
		switch (op) {
		case OP_SET:
		case OP_RESERVE_SET:
			op_set(&r, c, k, (size_t)b * 4, x & 3, (x >> 2) & 7,
			    op == OP_RESERVE_SET);
			break;
		case OP_GET: op_lookup(&r, c, k, 0); break;
		case OP_PEEK: op_lookup(&r, c, k, 1); break;
		case OP_DEL: op_del(&r, c, k); break;
		case OP_UNPIN: op_unpin(&r, c, k, b & 1); break;
		case OP_TICK: r.now += a % 8; break;
		case OP_SWEEP: cache_sweep(c, a); break;
		case OP_RESERVE:
			n = (size_t)a * 16;
			rc = cache_reserve(c, n);
			FUZZ_CHECK(rc == CACHE_OK || rc == CACHE_EFULL);
			if (rc == CACHE_OK)
				r.reserved += n;
			break;
		case OP_UNRESERVE:
			n = (size_t)a * 16;
			if (n > r.reserved)
				n = r.reserved;
			cache_unreserve(c, n);
			r.reserved -= n;
			break;
		case OP_MAXMEM: cache_set_max_memory(c, limits[a % 4]); break;
		case OP_FAILALLOC: r.fail_in = 1 + a % 4; break;
		case OP_UNPIN_UPTO:
			op_unpin_upto(&r, c, r.version > a ? r.version - a : 0);
			break;
		}
		check_all(&r, c, base);
	}
	cache_destroy(c);
	FUZZ_CHECK(r.out == 0);
	return 0;
}

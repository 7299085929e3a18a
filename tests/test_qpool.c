/*
 * test_qpool.c -- unit tests of the write queue's allocator (qpool.h).
 *
 * Every allocation must be aligned and must not overlap another; a chunk
 * must go back as soon as its last allocation is freed, whatever the
 * thread that frees it; one allocation kept must hold its own chunk and
 * no other; keymap_renew must move a key's state out of an old chunk.
 * Under AddressSanitizer (or STASHD_QPOOL=malloc) the pool is
 * plain malloc: the tests of chunk bookkeeping are skipped there, those of
 * the allocations' contents still run.
 */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/keymap.h"
#include "daemon/qpool.h"

#define SPARES_MAX 4 /* QPOOL_SPARES in qpool.c: spares kept when drained */

static struct qpool_stats
stats(void)
{
	struct qpool_stats st;

	qpool_get_stats(&st);
	return st;
}

/* Bytes mapped once every allocation is freed: spares only. */
static void
assert_drained(void)
{
	struct qpool_stats st;

	qpool_thread_done();
	st = stats();
	assert_int_equal(st.live, 0);
	assert_true(st.bytes <= SPARES_MAX * QPOOL_CHUNK);
	assert_true(st.chunks <= SPARES_MAX);
}

static void
test_alignment_and_contents(void **state)
{
	enum { N = 5000 };
	unsigned char *p[N];
	size_t	       len[N], i, j;

	(void)state;
	srand(1);
	for (i = 0; i < N; i++) {
		/* Mostly small; one in 50 larger than a quarter chunk. */
		len[i] = i % 50 == 49
			     ? QPOOL_CHUNK / 4 + 1 + (size_t)rand() % 100000
			     : 1 + (size_t)rand() % 700;
		p[i] = qpool_alloc(len[i]);
		assert_non_null(p[i]);
		assert_int_equal((uintptr_t)p[i] % 16, 0);
		memset(p[i], (int)(i & 0xff), len[i]);
	}
	/* Nothing written later overwrote an earlier allocation. */
	for (i = 0; i < N; i++)
		for (j = 0; j < len[i]; j++)
			if (p[i][j] != (unsigned char)(i & 0xff))
				fail_msg("allocation %zu byte %zu overwritten",
				    i, j);
	if (qpool_pooled())
		assert_int_equal(stats().live, N);
	for (i = 0; i < N; i++)
		qpool_free(p[i]);
	if (qpool_pooled())
		assert_drained();
}

static void
test_calloc_zeroes(void **state)
{
	unsigned char *p, *q;
	size_t	       i;

	(void)state;
	/* Dirty a chunk, give it back as a spare, and take it again. */
	p = qpool_alloc(4000);
	memset(p, 0xa5, 4000);
	qpool_free(p);
	qpool_thread_done();
	q = qpool_calloc(4000);
	for (i = 0; i < 4000; i++)
		assert_int_equal(q[i], 0);
	qpool_free(q);
	qpool_free(NULL);
	if (qpool_pooled())
		assert_drained();
}

/* One allocation kept holds its chunk, and only it. */
static void
test_kept_allocation_holds_one_chunk(void **state)
{
	enum { PER = 1024, CHUNKS = 20 };
	static void	  *p[PER * CHUNKS];
	struct qpool_stats st;
	size_t		   i;

	(void)state;
	if (!qpool_pooled())
		skip();
	for (i = 0; i < PER * CHUNKS; i++)
		p[i] = qpool_alloc(200);
	st = stats();
	assert_true(st.chunks >= CHUNKS * 200 * PER / QPOOL_CHUNK);
	/* Keep the 10th, free everything else. */
	for (i = 0; i < PER * CHUNKS; i++)
		if (i != 10)
			qpool_free(p[i]);
	qpool_thread_done();
	st = stats();
	assert_int_equal(st.live, 1);
	assert_true(st.chunks <= 1 + SPARES_MAX);
	assert_true(st.bytes <= (1 + SPARES_MAX) * QPOOL_CHUNK);
	qpool_free(p[10]);
	assert_drained();
}

/*
 * A queue that drains and fills again reuses its chunks: the spares
 * grow with the chunks in use, and go back once everything is freed.
 */
static void
test_spares_follow_use(void **state)
{
	enum { CHUNKS = 100, SZ = 1024, N = CHUNKS * (QPOOL_CHUNK / SZ) };
	static void	  *p[N];
	struct qpool_stats st;
	size_t		   i, half = N / 2, mapped;

	(void)state;
	if (!qpool_pooled())
		skip();
	/* CHUNKS chunks of 1 KiB allocations; the first half goes. */
	for (i = 0; i < N; i++)
		p[i] = qpool_alloc(SZ);
	assert_true(stats().chunks >= CHUNKS);
	for (i = 0; i < half; i++)
		qpool_free(p[i]);
	st = stats();
	assert_true(st.chunks > CHUNKS / 2 + SPARES_MAX); /* spares kept */
	/* Filling that half again takes spares, not fresh mappings. */
	mapped = st.mapped;
	for (i = 0; i < half; i++)
		p[i] = qpool_alloc(SZ);
	assert_true(stats().mapped - mapped < CHUNKS / 2 - SPARES_MAX);
	for (i = 0; i < N; i++)
		qpool_free(p[i]);
	assert_drained();
}

/* The pool's clock in the tests that set it (qpool_set_clock). */
static uint64_t fake_now;

static uint64_t
fake_clock(void)
{
	return fake_now;
}

/*
 * n allocations of sz bytes into p, then, age_ms later on the fake clock,
 * the first nfree of them freed; the chunks mapped before the frees.
 */
static size_t
fill_then_free(void **p, size_t n, size_t nfree, size_t sz, uint64_t age_ms)
{
	size_t i, before;

	for (i = 0; i < n; i++)
		p[i] = qpool_alloc(sz);
	fake_now += age_ms;
	before = stats().chunks;
	assert_true(before >= n / (QPOOL_CHUNK / sz));
	for (i = 0; i < nfree; i++)
		qpool_free(p[i]);
	return before;
}

/*
 * Below 16 chunks in use (QPOOL_SPARES_BUSY), 4 spares are kept, not
 * twice the use: a queue that has drained holds little.
 */
static void
test_spares_few_in_use(void **state)
{
	enum { SZ = 1024, PER = QPOOL_CHUNK / SZ, N = 14 * PER, F = 8 * PER };
	static void *p[N];
	size_t	     i, before, after;

	(void)state;
	if (!qpool_pooled())
		skip();
	before = fill_then_free(p, N, F, SZ, 0);
	after = stats().chunks;
	/* 8 or 9 chunks freed (a chunk holds PER - 1); 4 of them kept. */
	assert_true(after <= before - 8 + 4);
	assert_true(after >= before - 9 + 4);
	for (i = F; i < N; i++)
		qpool_free(p[i]);
	assert_drained();
}

/*
 * On the fake clock, n allocations of 1 KiB, the first f freed age_ms
 * later: every chunk they held is kept as a spare; then f allocated again,
 * mapping at most fresh chunks.
 */
static void
drain_and_refill(size_t n, size_t f, size_t fresh, uint64_t age_ms)
{
	static void *p[300 * (QPOOL_CHUNK / 1024)];
	size_t	     i, before, mapped;

	if (!qpool_pooled())
		skip();
	assert_true(n <= sizeof(p) / sizeof(p[0]));
	fake_now = 1000000;
	qpool_set_clock(fake_clock);
	before = fill_then_free(p, n, f, 1024, age_ms);
	assert_int_equal(stats().chunks, before); /* none unmapped */
	mapped = stats().mapped;
	for (i = 0; i < f; i++)
		p[i] = qpool_alloc(1024);
	assert_true(stats().mapped - mapped <= fresh);
	for (i = 0; i < n; i++)
		qpool_free(p[i]);
	assert_drained();
	qpool_set_clock(NULL);
}

/*
 * Twice the chunks in use are kept as spares, with no recent peak to
 * follow (the frees come 20 s after the allocations): a batch freed at
 * once while as many chunks stay in use keeps all its chunks, and filling
 * them again maps none (the write queue between two applies).
 */
static void
test_spares_twice_use(void **state)
{
	enum { PER = QPOOL_CHUNK / 1024 };

	(void)state;
	drain_and_refill(300 * PER, 150 * PER, 0, 20000);
}

/*
 * Spares up to the queue's recent peak: a queue of 300 chunks that drains
 * to 50 and fills again (a batch applied while the next one gathers)
 * takes its chunks back from the spares; the fill's last chunk was partly
 * full, so one more is mapped. Twice the use alone gave back 144 of the
 * 250 chunks freed.
 */
static void
test_spares_follow_peak(void **state)
{
	enum { PER = QPOOL_CHUNK / 1024 };

	(void)state;
	drain_and_refill(300 * PER, 250 * PER, 1, 0);
}

/*
 * The peak ages: 10 s after it (one span) the spares still fill the
 * queue back to it; 20 s after, they are twice the use again.
 */
static void
test_peak_ages(void **state)
{
	enum {
		SZ = 1024,
		PER = QPOOL_CHUNK / SZ,
		N = 300 * PER,
		F = 250 * PER
	};
	static void *p[N];
	size_t	     i, before, chunks, used;

	(void)state;
	if (!qpool_pooled())
		skip();
	fake_now = 1000000;
	qpool_set_clock(fake_clock);
	before = fill_then_free(p, N, F, SZ, 0);
	assert_int_equal(stats().chunks, before);
	/* One span on: one more chunk's worth freed, every chunk kept. */
	fake_now += 10000;
	for (i = F; i < F + PER; i++)
		qpool_free(p[i]);
	assert_int_equal(stats().chunks, before);
	/* Two spans on: the peak is forgotten, spares go to twice the use. */
	fake_now += 10000;
	for (i = F + PER; i < F + 2 * PER; i++)
		qpool_free(p[i]);
	chunks = stats().chunks;
	used = (N - F - 2 * PER) / (PER - 1) + 2; /* at most */
	assert_true(chunks + 100 <= before);	  /* the peak's spares went */
	assert_true(chunks <= 3 * used + 2); /* the chunk released counted */
	assert_true(chunks >= (N - F - 2 * PER) / PER * 3);
	for (i = F + 2 * PER; i < N; i++)
		qpool_free(p[i]);
	assert_drained();
	qpool_set_clock(NULL);
}

/*
 * However many chunks are in use, at most 1,024 spares are kept
 * (QPOOL_SPARES_MAX, 256 MiB): about 1,150 chunks freed with about 550
 * in use keep 1,024, where twice the use would be about 1,100.
 */
static void
test_spares_capped(void **state)
{
	enum {
		FREED = 1150,
		SZ = 1024,
		PER = QPOOL_CHUNK / SZ,
		N = 1700 * PER
	};
	static void *p[N];
	size_t	     i, before, after;

	(void)state;
	if (!qpool_pooled())
		skip();
	before = fill_then_free(p, N, FREED * PER, SZ, 0);
	after = stats().chunks;
	/*
	 * Freed: FREED chunks' worth of allocations, a few chunks more (a
	 * chunk's header leaves room for PER - 1); spares: exactly the cap.
	 */
	assert_true(after <= before - FREED + 1024);
	assert_true(after >= before - (FREED * PER / (PER - 1) + 1) + 1024);
	for (i = FREED * PER; i < N; i++)
		qpool_free(p[i]);
	assert_drained();
}

static void
test_large_allocation_is_given_back(void **state)
{
	struct qpool_stats before, st;
	unsigned char	  *p;

	(void)state;
	if (!qpool_pooled())
		skip();
	before = stats();
	p = qpool_alloc(10 * QPOOL_CHUNK + 12345);
	memset(p, 1, 10 * QPOOL_CHUNK + 12345);
	st = stats();
	assert_true(st.bytes >= before.bytes + 10 * QPOOL_CHUNK + 12345);
	assert_int_equal(st.live, before.live + 1);
	qpool_free(p);
	st = stats();
	assert_int_equal(st.bytes, before.bytes);
	assert_int_equal(st.live, before.live);
}

#define XN 20000

static void *xs[XN];

static void *
free_all(void *arg)
{
	size_t i;

	(void)arg;
	for (i = 0; i < XN; i++)
		qpool_free(xs[i]);
	return NULL;
}

static void *
alloc_all(void *arg)
{
	size_t i;

	(void)arg;
	for (i = 0; i < XN; i++) {
		xs[i] = qpool_alloc(64 + i % 300);
		memset(xs[i], 7, 64 + i % 300);
	}
	qpool_thread_done();
	return NULL;
}

/* Allocated in one thread, freed in another, both ways. */
static void
test_free_from_another_thread(void **state)
{
	pthread_t t;
	size_t	  i;

	(void)state;
	for (i = 0; i < XN; i++)
		xs[i] = qpool_alloc(64 + i % 300);
	assert_int_equal(pthread_create(&t, NULL, free_all, NULL), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	if (qpool_pooled())
		assert_drained();

	assert_int_equal(pthread_create(&t, NULL, alloc_all, NULL), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	for (i = 0; i < XN; i++)
		qpool_free(xs[i]);
	if (qpool_pooled())
		assert_drained();
}

/*
 * keymap_renew: a key's state allocated long ago, kept because its key is
 * written without pause, holds an old chunk; renewing it moves it to the
 * chunk being filled and the old chunk goes back. 40 such keys, each
 * brought in 1,000 writes after the one before, hold 40 chunks until
 * renewed, and a handful after.
 */
static void
test_keymap_renew_moves_entries(void **state)
{
	enum { KEYS = 40, BULK = 1000 };
	static void   *bulk[KEYS * BULK];
	struct keymap *m;
	struct kstate *st;
	char	       key[32];
	size_t	       i;
	int	       r, n;

	(void)state;
	if (!qpool_pooled())
		skip();
	m = keymap_create();
	for (r = 0; r < KEYS; r++) {
		n = snprintf(key, sizeof(key), "hot:%d", r);
		st = keymap_get(m, key, (size_t)n);
		st->last = bulk; /* a write pending: the entry stays */
		st->last_version = (uint64_t)r + 1;
		for (i = 0; i < BULK; i++)
			bulk[(size_t)r * BULK + i] = qpool_alloc(300);
	}
	for (i = 0; i < KEYS * BULK; i++)
		qpool_free(bulk[i]);
	assert_true(stats().chunks >= KEYS);
	for (r = 0; r < KEYS; r++) {
		n = snprintf(key, sizeof(key), "hot:%d", r);
		st = keymap_find(m, key, (size_t)n);
		assert_non_null(st);
		st = keymap_renew(m, st);
		assert_ptr_equal(keymap_find(m, key, (size_t)n), st);
	}
	assert_true(stats().chunks <= 1 + SPARES_MAX);
	assert_int_equal(keymap_count(m), KEYS);
	for (r = 0; r < KEYS; r++) {
		n = snprintf(key, sizeof(key), "hot:%d", r);
		st = keymap_find(m, key, (size_t)n);
		assert_non_null(st);
		assert_int_equal(st->last_version, (uint64_t)r + 1);
		assert_int_equal(st->klen, (size_t)n);
		assert_memory_equal(st->key, key, (size_t)n);
		st->last = NULL;
		keymap_put(m, st);
	}
	assert_int_equal(keymap_count(m), 0);
	keymap_free(m);
	assert_drained();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_alignment_and_contents),
	    cmocka_unit_test(test_calloc_zeroes),
	    cmocka_unit_test(test_kept_allocation_holds_one_chunk),
	    cmocka_unit_test(test_spares_follow_use),
	    cmocka_unit_test(test_spares_few_in_use),
	    cmocka_unit_test(test_spares_twice_use),
	    cmocka_unit_test(test_spares_follow_peak),
	    cmocka_unit_test(test_peak_ages),
	    cmocka_unit_test(test_spares_capped),
	    cmocka_unit_test(test_large_allocation_is_given_back),
	    cmocka_unit_test(test_free_from_another_thread),
	    cmocka_unit_test(test_keymap_renew_moves_entries),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

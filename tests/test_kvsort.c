/*
 * test_kvsort.c -- unit tests of the apply thread's key order (kvsort.h).
 *
 * Every run is sorted twice: by kvsort, and by a plain comparison of the
 * whole keys (bytes, then length, as SQLite orders TEXT), then seq. The
 * two orders must be the same write for write, and kvsort_same_key must
 * find exactly the neighbours whose keys are equal. Runs of every shape:
 * numbered keys as redis-benchmark sends them, keys that differ only past
 * their 8 bytes after the shared prefix, keys that are each other's
 * prefixes or end in zero bytes, one hot key, runs below and above the
 * size where the radix sort takes over.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/kvsort.h"
#include "daemon/wreq.h"

#define KEY_MAX 64

struct run {
	struct wreq *w;
	char (*keys)[KEY_MAX];
	struct kvent *e, *tmp;
	struct wreq **want;
	size_t	      n;
};

static unsigned long rnd_state = 12345;

static unsigned
rnd(void)
{
	rnd_state = rnd_state * 6364136223846793005UL + 1442695040888963407UL;
	return (unsigned)(rnd_state >> 33);
}

static struct run *
run_new(size_t n)
{
	struct run *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	r->n = n;
	r->w = calloc(n, sizeof(*r->w));
	r->keys = calloc(n, sizeof(*r->keys));
	r->e = calloc(n, sizeof(*r->e));
	r->tmp = calloc(n, sizeof(*r->tmp));
	r->want = calloc(n, sizeof(*r->want));
	assert_true(r->w && r->keys && r->e && r->tmp && r->want);
	return r;
}

static void
run_free(struct run *r)
{
	free(r->w);
	free(r->keys);
	free(r->e);
	free(r->tmp);
	free(r->want);
	free(r);
}

/* Write i gets key k (len bytes) and seq 1000 + i: seqs rise in the run. */
static void
run_key(struct run *r, size_t i, const void *k, size_t len)
{
	assert_true(len <= KEY_MAX);
	memcpy(r->keys[i], k, len);
	r->w[i].key = r->keys[i];
	r->w[i].klen = len;
	r->w[i].seq = 1000 + i;
}

static int
ref_cmp(const void *a, const void *b)
{
	const struct wreq *x = *(struct wreq *const *)a;
	const struct wreq *y = *(struct wreq *const *)b;
	int c = memcmp(x->key, y->key, x->klen < y->klen ? x->klen : y->klen);

	if (c != 0)
		return c;
	if (x->klen != y->klen)
		return x->klen < y->klen ? -1 : 1;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

static int
same_key(const struct wreq *x, const struct wreq *y)
{
	return x->klen == y->klen && memcmp(x->key, y->key, x->klen) == 0;
}

/* Sort r both ways; they must agree. Returns kvsort_prefix's answer. */
static int
run_check(struct run *r)
{
	size_t i;
	int    whole;

	for (i = 0; i < r->n; i++) {
		r->e[i].w = &r->w[i];
		r->want[i] = &r->w[i];
	}
	qsort(r->want, r->n, sizeof(*r->want), ref_cmp);
	whole = kvsort_prefix(r->e, r->n);
	kvsort(r->e, r->tmp, r->n, whole);
	for (i = 0; i < r->n; i++) {
		if (r->e[i].w != r->want[i])
			fail_msg("entry %zu of %zu: seq %lu, expected seq %lu "
				 "(whole %d)",
			    i, r->n, (unsigned long)r->e[i].w->seq,
			    (unsigned long)r->want[i]->seq, whole);
		if (i + 1 < r->n)
			assert_int_equal(kvsort_same_key(r->e, i, whole),
			    same_key(r->want[i], r->want[i + 1]));
	}
	return whole;
}

/* Keys "key:%012u" from a range, as redis-benchmark -r sends them. */
static void
test_numbered(void **state)
{
	static const size_t   sizes[] = {1, 2, 3, 63, 64, 65, 1000, 50000};
	static const unsigned ranges[] = {1, 10, 1000, 100000, 4000000000u};
	char		      k[32];
	size_t		      s, g, i;
	int		      len;

	(void)state;
	for (s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
		for (g = 0; g < sizeof(ranges) / sizeof(ranges[0]); g++) {
			struct run *r = run_new(sizes[s]);

			for (i = 0; i < r->n; i++) {
				len = snprintf(k, sizeof(k), "key:%012u",
				    rnd() % ranges[g]);
				run_key(r, i, k, (size_t)len);
			}
			/*
			 * 16 bytes: whole while at most 8 digits vary (not
			 * for the largest range); one key is its own prefix.
			 */
			assert_int_equal(
			    run_check(r), ranges[g] < 100000000 || r->n == 1);
			run_free(r);
		}
}

/* Short keys of random bytes, zeros included, of 0 to 8 bytes. */
static void
test_short_binary(void **state)
{
	static const size_t sizes[] = {5, 64, 300, 20000};
	unsigned char	    k[8];
	size_t		    s, i, j, len;

	(void)state;
	for (s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		struct run *r = run_new(sizes[s]);

		for (i = 0; i < r->n; i++) {
			len = rnd() % 9;
			for (j = 0; j < len; j++)
				k[j] = (unsigned char)(rnd() % 4 == 0
							   ? 0
							   : rnd() % 256);
			run_key(r, i, k, len);
		}
		assert_int_equal(run_check(r), 1);
		run_free(r);
	}
}

/* Keys that are each other's prefixes or end in zero bytes. */
static void
test_prefixes_and_zeros(void **state)
{
	static const char *const base[] = {"a", "a\0", "a\0\0", "ab", "a\x01",
	    "", "\0", "b", "a\0b", "user:1:", "user:1:\0"};
	static const size_t	 blen[] = {1, 2, 3, 2, 2, 0, 1, 1, 3, 7, 8};
	struct run		*r = run_new(400);
	size_t			 i, b;

	(void)state;
	for (i = 0; i < r->n; i++) {
		b = rnd() % (sizeof(base) / sizeof(base[0]));
		run_key(r, i, base[b], blen[b]);
	}
	(void)run_check(r);
	run_free(r);
}

/*
 * Keys that differ in their first byte, then share 20 more, then differ
 * again: the 8 bytes after the shared prefix (none) do not tell them
 * apart, and the sort has to compare the keys (not whole).
 */
static void
test_long_tails(void **state)
{
	static const size_t sizes[] = {10, 64, 5000};
	char		    k[KEY_MAX];
	size_t		    s, i;
	int		    len;

	(void)state;
	for (s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		struct run *r = run_new(sizes[s]);

		for (i = 0; i < r->n; i++) {
			len = snprintf(k, sizeof(k),
			    "%c:tenant:0042:session:%05u",
			    'a' + (int)(rnd() % 3), rnd() % 700);
			run_key(r, i, k, (size_t)len);
		}
		assert_int_equal(run_check(r), 0);
		run_free(r);
	}
}

/* One key written over and over: the writes keep their order. */
static void
test_hot_key(void **state)
{
	struct run *r = run_new(3000);
	size_t	    i;

	(void)state;
	for (i = 0; i < r->n; i++)
		if (i % 10 == 0)
			run_key(r, i, "other", 5);
		else
			run_key(r, i, "hot", 3);
	assert_int_equal(run_check(r), 1);
	run_free(r);
}

/* Lengths up to 8 apart with the same bytes where they overlap. */
static void
test_lengths_only(void **state)
{
	struct run *r = run_new(1000);
	size_t	    i;

	(void)state;
	for (i = 0; i < r->n; i++)
		run_key(r, i, "prefix:\0\0\0\0\0\0\0\0", 7 + rnd() % 9);
	assert_int_equal(run_check(r), 1);
	run_free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_numbered),
	    cmocka_unit_test(test_short_binary),
	    cmocka_unit_test(test_prefixes_and_zeros),
	    cmocka_unit_test(test_long_tails),
	    cmocka_unit_test(test_hot_key),
	    cmocka_unit_test(test_lengths_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * kvsort.h -- a run of key-value writes in key order, for the apply thread.
 *
 * The apply thread sorts each run of key-value writes by key, then seq:
 * the writes of a key end up side by side, the last one last, and the ones
 * kept go in key order, which walks SQLite's B-tree from left to right,
 * with the pages it needs next already in the CPU's cache and SQLite's.
 * Each entry carries 8 bytes of its key, taken after the prefix every key
 * of the run shares ("user:1234:..."), its key's length and its seq, so
 * that most comparisons are of integers in the array, not of two keys
 * somewhere in the write queue (a cache miss each, in a run of 200,000
 * writes). When no key has more than 8 bytes after that prefix (whole),
 * those 8 bytes and the length are the whole key, and the sort never reads
 * the writes at all: a radix sort on them, stable, so that the writes of a
 * key keep their order.
 */
#ifndef STASHD_KVSORT_H
#define STASHD_KVSORT_H

#include <stddef.h>
#include <stdint.h>

struct wreq;

struct kvent {
	uint64_t     pre; /* key bytes [skip, skip + 8), big-endian, 0-padded */
	uint64_t     seq;
	size_t	     klen;
	struct wreq *w;
};

/*
 * Fill each entry's pre, seq and klen from its write (e[i].w) and say
 * whether those tell every key apart (1) or not (0).
 */
int kvsort_prefix(struct kvent *e, size_t n);

/*
 * Sort e[0..n) by key in SQLite's order for TEXT (BINARY: bytes, then
 * length), then seq. whole is kvsort_prefix's answer. tmp has room for n
 * entries; with whole, the entries of a key must come in seq order.
 */
void kvsort(struct kvent *e, struct kvent *tmp, size_t n, int whole);

/* Whether e[i] and e[i + 1] are writes of the same key. */
int kvsort_same_key(const struct kvent *e, size_t i, int whole);

#endif

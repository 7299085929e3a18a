/*
 * qpool.h -- memory for the write queue, kept apart from the cache's.
 *
 * A write lives from the moment the loop takes it until its group is
 * applied to SQLite: milliseconds to a second. Cache entries live for
 * hours. When both come from malloc they interleave in the same heap, and
 * the holes the writes leave behind, too small and too scattered to give
 * back, stay in the process: after a bulk load of a million keys they were
 * a sixth of its memory. qpool takes the writes' memory in FIFO order from
 * chunks of their own (mmap, QPOOL_CHUNK bytes, aligned to their size) and
 * gives a chunk back as soon as everything in it is freed, so a drained
 * write queue holds no memory at all.
 *
 * qpool_alloc may be called from any thread; each thread fills a chunk of
 * its own. qpool_free may be called from any thread. An allocation larger
 * than a quarter of a chunk gets a mapping of its own. Out of memory is
 * fatal, as for xmalloc. Under AddressSanitizer every call goes to malloc
 * and free, so that the sanitizer sees each object.
 */
#ifndef STASHD_QPOOL_H
#define STASHD_QPOOL_H

#include <stddef.h>
#include <stdint.h>

#define QPOOL_CHUNK ((size_t)256 * 1024)

struct qpool_stats {
	size_t live;   /* allocations not yet freed */
	size_t chunks; /* chunks mapped, spares included */
	size_t bytes;  /* bytes mapped */
	size_t mapped; /* mmap calls since the start */
};

void *qpool_alloc(size_t size);
void *qpool_calloc(size_t size);
void  qpool_free(void *p);
/* Give back the calling thread's current chunk once it is empty. */
void qpool_thread_done(void);
void qpool_get_stats(struct qpool_stats *st);
/*
 * The clock, in ms, that ages the queue's peak (NULL: the monotonic
 * clock); for tests. The peak starts again from nothing.
 */
void qpool_set_clock(uint64_t (*fn)(void));
/* 1 when allocations come from chunks, 0 when they go to malloc. */
int qpool_pooled(void);

#endif /* STASHD_QPOOL_H */

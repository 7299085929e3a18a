/*
 * qpool.c -- memory for the write queue; see qpool.h.
 *
 * A chunk starts with its header; the allocations follow it, 16-byte
 * aligned, handed out by bumping a pointer that belongs to the thread
 * filling the chunk. The header counts the chunk's live allocations plus
 * one while a thread still fills it; whoever drops the count to zero gives
 * the chunk back: to a list of spares (so that a steady stream of writes
 * does not mmap and munmap all the time), else to the kernel. The list
 * grows with the chunks in use and shrinks back when they go: it keeps
 * what the queue used at its recent peak, and little once it drains.
 * Chunks are aligned to QPOOL_CHUNK, so the header of any allocation is
 * found by rounding its address down; a large allocation has a mapping of
 * its own that starts with the same header.
 *
 * Nothing is reused inside a chunk: a chunk is given back whole or not at
 * all. A write that stays (one waiting on a lookup, say) keeps its chunk
 * mapped, at most QPOOL_CHUNK bytes for it, until it goes.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "monotime.h"
#include "qpool.h"
#include "xmalloc.h"

#if defined(__SANITIZE_ADDRESS__)
#define QPOOL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QPOOL_ASAN 1
#endif
#endif

#define QPOOL_ALIGN	  16
#define QPOOL_LARGE	  (QPOOL_CHUNK / 4)
#define QPOOL_SPARES	  4	/* spares kept at least */
#define QPOOL_SPARES_BUSY 16	/* chunks in use: more spares kept */
#define QPOOL_SPARES_MAX  1024	/* up to (256 MiB) */
#define QPOOL_PEAK_MS	  10000 /* the peak's span: 10 to 20 s back */

struct qchunk {
	atomic_size_t refs; /* live allocations, plus one while filled */
	size_t	      len;  /* bytes mapped */
	int	      large;
};

#define QPOOL_HDR                                                              \
	((sizeof(struct qchunk) + QPOOL_ALIGN - 1) & ~(size_t)(QPOOL_ALIGN - 1))

/* The chunk this thread fills, and its free space. */
static __thread struct qchunk *cur;
static __thread unsigned char *top, *end;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct qchunk  *spares[QPOOL_SPARES_MAX];
static int	       nspares;
/* The most chunks in use in this span and the one before; under the lock. */
static size_t	peak_cur, peak_prev;
static uint64_t peak_since;
static uint64_t (*clock_ms)(void) = monotime_ms;

static atomic_size_t nlive, nchunks, nbytes, nmapped;

/* Under the sanitizer, or when STASHD_QPOOL=malloc (for valgrind). */
static int
use_malloc(void)
{
	static atomic_int mode; /* 0: not read yet, 1: pool, 2: malloc */
	const char	 *e;
	int		  m;

#ifdef QPOOL_ASAN
	return 1;
#endif
	if ((m = atomic_load_explicit(&mode, memory_order_relaxed)) == 0) {
		e = getenv("STASHD_QPOOL");
		m = e != NULL && strcmp(e, "malloc") == 0 ? 2 : 1;
		atomic_store_explicit(&mode, m, memory_order_relaxed);
	}
	return m == 2;
}

/* len bytes (a multiple of the page size) aligned to QPOOL_CHUNK. */
static struct qchunk *
map_aligned(size_t len)
{
	size_t	       span = len + QPOOL_CHUNK, head, tail;
	unsigned char *p, *a;

	p = mmap(NULL, span, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		fatal("qpool: mmap %zu bytes", span);
	a = (unsigned char *)(((uintptr_t)p + QPOOL_CHUNK - 1) &
			      ~(uintptr_t)(QPOOL_CHUNK - 1));
	head = (size_t)(a - p);
	tail = span - head - len;
	if (head > 0 && munmap(p, head) == -1)
		log_warn("qpool: munmap");
	if (tail > 0 && munmap(a + len, tail) == -1)
		log_warn("qpool: munmap");
	atomic_fetch_add_explicit(&nchunks, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&nbytes, len, memory_order_relaxed);
	atomic_fetch_add_explicit(&nmapped, 1, memory_order_relaxed);
	return (struct qchunk *)(void *)a;
}

static void
chunk_unmap(struct qchunk *c)
{
	size_t len = c->len;

	if (munmap(c, len) == -1)
		log_warn("qpool: munmap");
	atomic_fetch_sub_explicit(&nchunks, 1, memory_order_relaxed);
	atomic_fetch_sub_explicit(&nbytes, len, memory_order_relaxed);
}

/* Chunks in use: mapped, less the spares. Under the lock. */
static size_t
in_use(void)
{
	size_t n = atomic_load_explicit(&nchunks, memory_order_relaxed);

	return n > (size_t)nspares ? n - (size_t)nspares : 0;
}

/* The most chunks in use over the last 10 to 20 s. Under the lock. */
static size_t
peak_recent(void)
{
	uint64_t now = clock_ms();

	if (now - peak_since >= QPOOL_PEAK_MS) {
		peak_prev =
		    now - peak_since >= 2 * QPOOL_PEAK_MS ? 0 : peak_cur;
		peak_cur = 0;
		peak_since = now;
	}
	return peak_cur > peak_prev ? peak_cur : peak_prev;
}

/* A chunk goes into use: used chunks are, with it. Under the lock. */
static void
peak_note(size_t used)
{
	(void)peak_recent(); /* a new span starts counting from here */
	if (used > peak_cur)
		peak_cur = used;
}

/*
 * How many spares to keep while the queue holds QPOOL_SPARES_BUSY chunks
 * or more: enough to fill the queue back to its peak of the last 10 to 20
 * seconds, and at least twice the chunks in use; up to QPOOL_SPARES_MAX.
 * QPOOL_SPARES below that. A busy write queue fills and drains over and
 * over: the apply thread takes most of it as one batch, and once that is
 * applied the loop frees the batch's writes at once, while the writes
 * taken since stay queued behind it; then the queue fills again. Kept to
 * twice what stays, the spares fell short of the refill by half (at SET
 * -P 16, the queue went from 150 MB down to 35 and back up every batch):
 * the loop mapped 110 fresh chunks a second and faulted in each of
 * their pages, 12% of its time. With the spares up to the peak, the
 * queue fills again with chunks it has already faulted in (the daemon's
 * page faults went from 33,000-45,000 a second to 8,000). The spares are
 * chunks that were in use, so they never raise the memory above the
 * queue's peak, and once the queue drains only QPOOL_SPARES stay. Under
 * the lock.
 */
static int
spares_wanted(void)
{
	size_t used = in_use(), peak, want;

	if (used < QPOOL_SPARES_BUSY)
		return QPOOL_SPARES;
	peak = peak_recent();
	want = 2 * used;
	/* used counts the chunk being released: used - 1 stay in use. */
	if (peak >= used && peak - (used - 1) > want)
		want = peak - (used - 1);
	return want < QPOOL_SPARES_MAX ? (int)want : QPOOL_SPARES_MAX;
}

static void
chunk_release(struct qchunk *c)
{
	struct qchunk *extra[QPOOL_SPARES_MAX];
	int	       i, n = 0, want;

	if (!c->large) {
		if (pthread_mutex_lock(&lock) != 0)
			fatalx("qpool: pthread_mutex_lock");
		want = spares_wanted();
		if (nspares < want) {
			spares[nspares++] = c;
			c = NULL;
		}
		while (nspares > want)
			extra[n++] = spares[--nspares];
		if (pthread_mutex_unlock(&lock) != 0)
			fatalx("qpool: pthread_mutex_unlock");
		for (i = 0; i < n; i++)
			chunk_unmap(extra[i]);
		if (c == NULL)
			return;
	}
	chunk_unmap(c);
}

static void
chunk_unref(struct qchunk *c)
{
	if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
		chunk_release(c);
}

/* Make a fresh chunk this thread's current one. */
static void
chunk_next(void)
{
	struct qchunk *c = NULL;

	if (cur != NULL) {
		chunk_unref(cur);
		cur = NULL;
	}
	if (pthread_mutex_lock(&lock) != 0)
		fatalx("qpool: pthread_mutex_lock");
	if (nspares > 0)
		c = spares[--nspares];
	peak_note(in_use() + (c == NULL)); /* one more to map: count it */
	if (pthread_mutex_unlock(&lock) != 0)
		fatalx("qpool: pthread_mutex_unlock");
	if (c == NULL)
		c = map_aligned(QPOOL_CHUNK);
	c->len = QPOOL_CHUNK;
	c->large = 0;
	atomic_store_explicit(&c->refs, 1, memory_order_relaxed);
	cur = c;
	top = (unsigned char *)c + QPOOL_HDR;
	end = (unsigned char *)c + QPOOL_CHUNK;
}

void *
qpool_alloc(size_t size)
{
	struct qchunk *c;
	unsigned char *p;
	long	       page;
	size_t	       len;

	if (use_malloc())
		return xmalloc(size);
	if (size == 0)
		size = 1;
	if (size > QPOOL_LARGE) {
		if ((page = sysconf(_SC_PAGESIZE)) <= 0)
			page = 4096;
		if (size > SIZE_MAX - QPOOL_HDR - QPOOL_CHUNK - (size_t)page)
			fatalx("qpool: %zu bytes", size);
		len =
		    (QPOOL_HDR + size + (size_t)page - 1) & ~((size_t)page - 1);
		c = map_aligned(len);
		c->len = len;
		c->large = 1;
		atomic_store_explicit(&c->refs, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&nlive, 1, memory_order_relaxed);
		return (unsigned char *)c + QPOOL_HDR;
	}
	size = (size + QPOOL_ALIGN - 1) & ~(size_t)(QPOOL_ALIGN - 1);
	if (cur == NULL || (size_t)(end - top) < size)
		chunk_next();
	p = top;
	top += size;
	atomic_fetch_add_explicit(&cur->refs, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&nlive, 1, memory_order_relaxed);
	return p;
}

void *
qpool_calloc(size_t size)
{
	void *p = qpool_alloc(size);

	memset(p, 0, size);
	return p;
}

void
qpool_free(void *p)
{
	if (p == NULL)
		return;
	if (use_malloc()) {
		free(p);
		return;
	}
	atomic_fetch_sub_explicit(&nlive, 1, memory_order_relaxed);
	chunk_unref((struct qchunk *)(void *)((uintptr_t)p &
					      ~(uintptr_t)(QPOOL_CHUNK - 1)));
}

void
qpool_thread_done(void)
{
	if (cur != NULL) {
		chunk_unref(cur);
		cur = NULL;
		top = end = NULL;
	}
}

void
qpool_set_clock(uint64_t (*fn)(void))
{
	if (pthread_mutex_lock(&lock) != 0)
		fatalx("qpool: pthread_mutex_lock");
	clock_ms = fn != NULL ? fn : monotime_ms;
	peak_cur = peak_prev = 0;
	peak_since = clock_ms();
	if (pthread_mutex_unlock(&lock) != 0)
		fatalx("qpool: pthread_mutex_unlock");
}

int
qpool_pooled(void)
{
	return !use_malloc();
}

void
qpool_get_stats(struct qpool_stats *st)
{
	st->live = atomic_load_explicit(&nlive, memory_order_relaxed);
	st->chunks = atomic_load_explicit(&nchunks, memory_order_relaxed);
	st->bytes = atomic_load_explicit(&nbytes, memory_order_relaxed);
	st->mapped = atomic_load_explicit(&nmapped, memory_order_relaxed);
}

/*
 * failmalloc.c -- an LD_PRELOAD shim that makes malloc, calloc and realloc
 * fail (NULL, ENOMEM) for the out-of-memory test.
 *
 * FAILMALLOC="N" fails the N-th allocation counted while the file named by
 * FAILMALLOC_SWITCH exists, once; "N:forever" fails that one and every
 * later one while the switch is on. Each failure is counted in the file
 * FAILMALLOC_COUNT (one byte appended per failure), so that the test knows
 * the fault was reached. Without FAILMALLOC nothing fails.
 *
 * The allocations themselves are glibc's (__libc_malloc and friends): the
 * shim adds a check, not an allocator. It cannot sit under a sanitizer's
 * allocator; the test skips when the daemon is built with one.
 */
#include "config.h"

#include <sys/syscall.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

void *malloc(size_t);
void *calloc(size_t, size_t);
void *realloc(void *, size_t);

static int	     fm_state; /* 0 unread, 1 off, 2 armed */
static unsigned long fm_nth;
static int	     fm_forever;
static unsigned long fm_count;
static const char   *fm_switch;
static const char   *fm_counter;

/* Read the environment once; getenv allocates nothing. */
static void
fm_init(void)
{
	const char *spec = getenv("FAILMALLOC");
	char	   *end;

	fm_state = 1;
	if (spec == NULL || *spec == '\0')
		return;
	fm_nth = strtoul(spec, &end, 10);
	fm_forever = strcmp(end, ":forever") == 0;
	fm_switch = getenv("FAILMALLOC_SWITCH");
	fm_counter = getenv("FAILMALLOC_COUNT");
	if (fm_nth > 0 && fm_switch != NULL && (*end == '\0' || fm_forever))
		fm_state = 2;
}

/* Should this allocation fail? */
static int
fm_fail(void)
{
	unsigned long n;
	int	      fd;

	if (fm_state == 0)
		fm_init();
	if (fm_state != 2 || access(fm_switch, F_OK) == -1)
		return 0;
	n = __atomic_add_fetch(&fm_count, 1, __ATOMIC_SEQ_CST);
	if (n != fm_nth && !(fm_forever && n > fm_nth))
		return 0;
	/* Straight to the kernel: another shim may watch open and write. */
	if (fm_counter != NULL &&
	    (fd = (int)syscall(SYS_openat, AT_FDCWD, fm_counter,
		 O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) != -1) {
		long w = syscall(SYS_write, fd, "x", (size_t)1);

		(void)w;
		syscall(SYS_close, fd);
	}
	errno = ENOMEM;
	return 1;
}

void *
malloc(size_t size)
{
	return fm_fail() ? NULL : __libc_malloc(size);
}

void *
calloc(size_t nmemb, size_t size)
{
	return fm_fail() ? NULL : __libc_calloc(nmemb, size);
}

void *
realloc(void *ptr, size_t size)
{
	return fm_fail() ? NULL : __libc_realloc(ptr, size);
}

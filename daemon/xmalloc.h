/*
 * xmalloc.h -- allocation wrappers of the daemon: out of memory is fatal.
 *
 * The daemon's policy (STYLE.md): a process that cannot allocate a few
 * bytes for its own bookkeeping exits and lets systemd restart it; the
 * journal makes that safe. cache/ and libstash never use these.
 */
#ifndef STASHD_XMALLOC_H
#define STASHD_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s);
int   xasprintf(char **ret, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif /* STASHD_XMALLOC_H */

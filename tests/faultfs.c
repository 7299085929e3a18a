/*
 * faultfs.c -- an LD_PRELOAD shim for the fault tests: it records what
 * reached the disk for good, so that a test can take away what a power cut
 * would, and it makes chosen calls fail (EIO, ENOSPC...).
 *
 * It watches only the files and folders under FAULTFS_DIR (the test's
 * private folder), through the libc calls stashd and SQLite use: open,
 * open64, openat, write, pwrite, pwrite64, writev, ftruncate, fsync,
 * fdatasync, close, rename, unlink and mkdir. SQLite's -shm file is left
 * alone: it is memory shared between connections, rebuilt after a crash,
 * never synced.
 *
 * The record (FAULTFS_LOG, appended line by line, read by tests/powerloss.c
 * once the daemon is dead) holds:
 *
 *	S size path	a successful fsync/fdatasync: the file's content up to
 *			here is on the disk; also, the first time a process
 *			opens an existing file, its content then (a baseline)
 *	W off len path	followed by len bytes: the old content of a range
 *			about to be overwritten or cut off (undo data)
 *	X off len path	a write of len bytes at off was done (after its W
 *			records): a power cut that loses some unsynced
 *			writes and keeps others needs each one's extent
 *	C path		the file was created (gone after a power cut unless
 *			its folder is fsync'd later: D)
 *	M path		a folder was created (same rule, with its parent)
 *	D path		a folder was fsync'd: the entries created in it so far
 *			are on the disk
 *	U path		unlinked
 *	R old new	renamed
 *	F op errno path	a fault was injected
 *
 * Faults: FAULTFS_FAIL="OP:WHERE:N:ERRNO[:forever]" fails the N-th call of
 * kind OP on files of WHERE (and, with forever, every later one) with
 * ERRNO, without doing it. OP is write (write, pwrite, writev, ftruncate
 * growing a file), sync (fsync or fdatasync of a file), dirsync (fsync of a
 * folder), open or rename; WHERE is journal (paths with ".journal/" in
 * them, and that folder itself), db (the others) or any; ERRNO is EIO,
 * ENOSPC, EDQUOT or a number.
 * When FAULTFS_SWITCH names a file, faults are injected (and calls counted)
 * only while that file exists: the test turns the disk full on and off.
 *
 * A failed fsync records no S: what it should have made durable stays
 * undoable, as the kernel may have dropped those pages.
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FD_MAX 4096

enum ff_op { OP_NONE, OP_WRITE, OP_SYNC, OP_DIRSYNC, OP_OPEN, OP_RENAME };
enum ff_where { W_ANY, W_JOURNAL, W_DB };

struct ff_seen {
	char	       *path;
	struct ff_seen *next;
};

static struct {
	int		inited;
	const char     *dir;
	size_t		dirlen;
	const char     *logpath;
	const char     *switchpath;
	int		logfd;
	enum ff_op	op;
	enum ff_where	where;
	unsigned long	nth;
	int		err;
	int		forever;
	unsigned long	count;
	pthread_mutex_t lock;
	char	       *fds[FD_MAX]; /* watched descriptors: their paths */
	struct ff_seen *seen;
} ff = {.logfd = -1, .lock = PTHREAD_MUTEX_INITIALIZER};

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_close)(int);
static int (*real_rename)(const char *, const char *);
static int (*real_unlink)(const char *);
static int (*real_mkdir)(const char *, mode_t);

static void *
sym(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);

	if (p == NULL) {
		fprintf(stderr, "faultfs: no %s in libc\n", name);
		abort();
	}
	return p;
}

static int
parse_errno(const char *s)
{
	if (strcmp(s, "EIO") == 0)
		return EIO;
	if (strcmp(s, "ENOSPC") == 0)
		return ENOSPC;
	if (strcmp(s, "EDQUOT") == 0)
		return EDQUOT;
	return atoi(s);
}

/* Read FAULTFS_FAIL; a spec that does not parse stops the process. */
static void
parse_fail(const char *spec)
{
	char buf[128], *f[5], *save = NULL, *t;
	int  n = 0;

	snprintf(buf, sizeof(buf), "%s", spec);
	for (t = strtok_r(buf, ":", &save); t != NULL && n < 5;
	     t = strtok_r(NULL, ":", &save))
		f[n++] = t;
	if (n < 4)
		goto bad;
	if (strcmp(f[0], "write") == 0)
		ff.op = OP_WRITE;
	else if (strcmp(f[0], "sync") == 0)
		ff.op = OP_SYNC;
	else if (strcmp(f[0], "dirsync") == 0)
		ff.op = OP_DIRSYNC;
	else if (strcmp(f[0], "open") == 0)
		ff.op = OP_OPEN;
	else if (strcmp(f[0], "rename") == 0)
		ff.op = OP_RENAME;
	else
		goto bad;
	if (strcmp(f[1], "journal") == 0)
		ff.where = W_JOURNAL;
	else if (strcmp(f[1], "db") == 0)
		ff.where = W_DB;
	else if (strcmp(f[1], "any") == 0)
		ff.where = W_ANY;
	else
		goto bad;
	ff.nth = strtoul(f[2], NULL, 10);
	ff.err = parse_errno(f[3]);
	ff.forever = n == 5 && strcmp(f[4], "forever") == 0;
	if (ff.nth == 0 || ff.err <= 0 ||
	    (n == 5 && !ff.forever && strcmp(f[4], "once") != 0))
		goto bad;
	return;
bad:
	fprintf(stderr,
	    "faultfs: FAULTFS_FAIL=%s: expected OP:WHERE:N:ERRNO[:forever]\n",
	    spec);
	abort();
}

__attribute__((constructor)) static void
ff_init(void)
{
	const char *spec;

	real_open = sym("open");
	real_open64 = sym("open64");
	real_openat = sym("openat");
	real_write = sym("write");
	real_pwrite = sym("pwrite");
	real_pwrite64 = sym("pwrite64");
	real_writev = sym("writev");
	real_ftruncate = sym("ftruncate");
	real_ftruncate64 = sym("ftruncate64");
	real_fsync = sym("fsync");
	real_fdatasync = sym("fdatasync");
	real_close = sym("close");
	real_rename = sym("rename");
	real_unlink = sym("unlink");
	real_mkdir = sym("mkdir");
	if ((ff.dir = getenv("FAULTFS_DIR")) == NULL ||
	    (ff.logpath = getenv("FAULTFS_LOG")) == NULL)
		return; /* nothing watched */
	ff.dirlen = strlen(ff.dir);
	while (ff.dirlen > 1 && ff.dir[ff.dirlen - 1] == '/')
		ff.dirlen--;
	ff.switchpath = getenv("FAULTFS_SWITCH");
	if ((spec = getenv("FAULTFS_FAIL")) != NULL && *spec != '\0')
		parse_fail(spec);
	ff.logfd = real_open(
	    ff.logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (ff.logfd == -1) {
		fprintf(
		    stderr, "faultfs: %s: %s\n", ff.logpath, strerror(errno));
		abort();
	}
	ff.inited = 1;
}

/* Is the path under the watched folder (and not ours, nor a -shm)? */
static int
watched(const char *path)
{
	size_t n;

	if (!ff.inited || path == NULL || path[0] != '/' ||
	    strncmp(path, ff.dir, ff.dirlen) != 0 ||
	    (path[ff.dirlen] != '/' && path[ff.dirlen] != '\0') ||
	    strcmp(path, ff.logpath) == 0 ||
	    (ff.switchpath != NULL && strcmp(path, ff.switchpath) == 0))
		return 0;
	n = strlen(path);
	return !(n > 4 && strcmp(path + n - 4, "-shm") == 0);
}

static const char *
fd_path(int fd)
{
	return ff.inited && fd >= 0 && fd < FD_MAX ? ff.fds[fd] : NULL;
}

/* Append to the record; the lock is held. */
static void
emit(const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t	    n;

	while (len > 0) {
		n = real_write(ff.logfd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(
			    stderr, "faultfs: cannot write %s\n", ff.logpath);
			abort();
		}
		p += n;
		len -= (size_t)n;
	}
}

static void emitf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
emitf(const char *fmt, ...)
{
	char	buf[8192];
	va_list ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		fprintf(stderr, "faultfs: record too long\n");
		abort();
	}
	emit(buf, (size_t)n);
}

/*
 * Should this call fail? Counts the calls of the armed kind while the
 * switch is on; the lock is held.
 */
static int
fault(enum ff_op op, const char *path)
{
	size_t n;
	int    journal;

	if (ff.op != op || path == NULL)
		return 0;
	n = strlen(path);
	journal = strstr(path, ".journal/") != NULL ||
		  (n >= 8 && strcmp(path + n - 8, ".journal") == 0);
	if ((ff.where == W_JOURNAL && !journal) ||
	    (ff.where == W_DB && journal))
		return 0;
	if (ff.switchpath != NULL && access(ff.switchpath, F_OK) == -1)
		return 0;
	ff.count++;
	if (ff.count == ff.nth || (ff.forever && ff.count > ff.nth)) {
		static const char *const names[] = {
		    "none", "write", "sync", "dirsync", "open", "rename"};

		emitf("F %s %d %s\n", names[op], ff.err, path);
		return 1;
	}
	return 0;
}

/* Save the old bytes of [off, off+len) that exist; the lock is held. */
static void
save_old(int fd, const char *path, off_t off, size_t len)
{
	struct stat st;
	char	    buf[65536];
	size_t	    n, done = 0;
	ssize_t	    r;

	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || off >= st.st_size)
		return;
	if ((off_t)len > st.st_size - off)
		len = (size_t)(st.st_size - off);
	while (done < len) {
		n = len - done < sizeof(buf) ? len - done : sizeof(buf);
		r = pread(fd, buf, n, off + (off_t)done);
		if (r <= 0) {
			/* A write-only descriptor: read through the path. */
			int rfd = real_open(path, O_RDONLY | O_CLOEXEC);

			if (rfd == -1 ||
			    (r = pread(rfd, buf, n, off + (off_t)done)) <= 0) {
				fprintf(
				    stderr, "faultfs: cannot read %s\n", path);
				abort();
			}
			real_close(rfd);
		}
		emitf(
		    "W %lld %zd %s\n", (long long)(off + (off_t)done), r, path);
		emit(buf, (size_t)r);
		done += (size_t)r;
	}
}

/* A descriptor was opened on a watched path; the lock is held. */
static void
opened(int fd, const char *path, int created)
{
	struct ff_seen *s;
	struct stat	st;

	if (fd < 0 || fd >= FD_MAX)
		return;
	free(ff.fds[fd]);
	ff.fds[fd] = strdup(path);
	for (s = ff.seen; s != NULL; s = s->next)
		if (strcmp(s->path, path) == 0)
			break;
	if (s == NULL && (s = calloc(1, sizeof(*s))) != NULL &&
	    (s->path = strdup(path)) != NULL) {
		s->next = ff.seen;
		ff.seen = s;
		if (created)
			emitf("C %s\n", path);
		else if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
			emitf("S %lld %s\n", (long long)st.st_size, path);
	} else if (created)
		emitf("C %s\n", path);
}

static int
do_open(int (*fn)(const char *, int, ...), int dirfd, const char *path,
    int flags, mode_t mode)
{
	int fd, existed = 1, saved;

	if (!watched(path))
		return dirfd == -1 ? fn(path, flags, mode)
				   : real_openat(dirfd, path, flags, mode);
	pthread_mutex_lock(&ff.lock);
	if (fault(OP_OPEN, path)) {
		pthread_mutex_unlock(&ff.lock);
		errno = ff.err;
		return -1;
	}
	if ((flags & O_CREAT) != 0)
		existed = access(path, F_OK) == 0;
	fd = dirfd == -1 ? fn(path, flags, mode)
			 : real_openat(dirfd, path, flags, mode);
	saved = errno;
	if (fd != -1)
		opened(fd, path, !existed);
	pthread_mutex_unlock(&ff.lock);
	errno = saved;
	return fd;
}

int
open(const char *path, int flags, ...)
{
	mode_t	mode = 0;
	va_list ap;

	if ((flags & (O_CREAT | O_TMPFILE)) != 0) {
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	return do_open(real_open, -1, path, flags, mode);
}

int
open64(const char *path, int flags, ...)
{
	mode_t	mode = 0;
	va_list ap;

	if ((flags & (O_CREAT | O_TMPFILE)) != 0) {
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	return do_open(real_open64, -1, path, flags, mode);
}

int
openat(int dirfd, const char *path, int flags, ...)
{
	mode_t	mode = 0;
	va_list ap;

	if ((flags & (O_CREAT | O_TMPFILE)) != 0) {
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	/* Only absolute paths are watched. */
	return do_open(
	    real_open, path[0] == '/' ? -1 : dirfd, path, flags, mode);
}

/* The common part of every write: undo data, fault, the write itself. */
static ssize_t
do_write(int fd, off_t off, size_t len, ssize_t (*fn)(void *), void *arg)
{
	const char *path = fd_path(fd);
	ssize_t	    n;
	int	    saved;

	if (path == NULL)
		return fn(arg);
	pthread_mutex_lock(&ff.lock);
	if (fault(OP_WRITE, path)) {
		pthread_mutex_unlock(&ff.lock);
		errno = ff.err;
		return -1;
	}
	if (off == -1) {
		struct stat st;

		if ((fcntl(fd, F_GETFL) & O_APPEND) != 0)
			off = fstat(fd, &st) == 0 ? st.st_size : -1;
		else
			off = lseek(fd, 0, SEEK_CUR);
	}
	if (off >= 0)
		save_old(fd, path, off, len);
	n = fn(arg);
	saved = errno;
	if (n > 0 && off >= 0)
		emitf("X %lld %zd %s\n", (long long)off, n, path);
	pthread_mutex_unlock(&ff.lock);
	errno = saved;
	return n;
}

struct wargs {
	int		    fd;
	const void	   *buf;
	size_t		    len;
	off_t		    off;
	const struct iovec *iov;
	int		    iovcnt;
	int		    which;
};

static ssize_t
call_write(void *p)
{
	struct wargs *a = p;

	switch (a->which) {
	case 0: return real_write(a->fd, a->buf, a->len);
	case 1: return real_pwrite(a->fd, a->buf, a->len, a->off);
	case 2: return real_pwrite64(a->fd, a->buf, a->len, a->off);
	default: return real_writev(a->fd, a->iov, a->iovcnt);
	}
}

ssize_t
write(int fd, const void *buf, size_t len)
{
	struct wargs a = {fd, buf, len, 0, NULL, 0, 0};

	return do_write(fd, -1, len, call_write, &a);
}

ssize_t
pwrite(int fd, const void *buf, size_t len, off_t off)
{
	struct wargs a = {fd, buf, len, off, NULL, 0, 1};

	return do_write(fd, off, len, call_write, &a);
}

ssize_t
pwrite64(int fd, const void *buf, size_t len, off_t off)
{
	struct wargs a = {fd, buf, len, off, NULL, 0, 2};

	return do_write(fd, off, len, call_write, &a);
}

ssize_t
writev(int fd, const struct iovec *iov, int iovcnt)
{
	struct wargs a = {fd, NULL, 0, 0, iov, iovcnt, 3};
	size_t	     len = 0;
	int	     i;

	for (i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	return do_write(fd, -1, len, call_write, &a);
}

static int
do_ftruncate(int (*fn)(int, off_t), int fd, off_t size)
{
	const char *path = fd_path(fd);
	struct stat st;
	int	    rc, saved;

	if (path == NULL)
		return fn(fd, size);
	pthread_mutex_lock(&ff.lock);
	if (fstat(fd, &st) == 0 && size > st.st_size && fault(OP_WRITE, path)) {
		pthread_mutex_unlock(&ff.lock);
		errno = ff.err;
		return -1;
	}
	save_old(fd, path, size, (size_t)-1 / 2);
	rc = fn(fd, size);
	saved = errno;
	pthread_mutex_unlock(&ff.lock);
	errno = saved;
	return rc;
}

int
ftruncate(int fd, off_t size)
{
	return do_ftruncate(real_ftruncate, fd, size);
}

int
ftruncate64(int fd, off_t size)
{
	return do_ftruncate(real_ftruncate64, fd, size);
}

static int
do_sync(int (*fn)(int), int fd)
{
	const char *path = fd_path(fd);
	struct stat st;
	int	    rc, saved, dir;

	if (path == NULL)
		return fn(fd);
	pthread_mutex_lock(&ff.lock);
	dir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
	if (fault(dir ? OP_DIRSYNC : OP_SYNC, path)) {
		pthread_mutex_unlock(&ff.lock);
		errno = ff.err;
		return -1;
	}
	rc = fn(fd);
	saved = errno;
	if (rc == 0 && dir)
		emitf("D %s\n", path);
	else if (rc == 0 && fstat(fd, &st) == 0)
		emitf("S %lld %s\n", (long long)st.st_size, path);
	pthread_mutex_unlock(&ff.lock);
	errno = saved;
	return rc;
}

int
fsync(int fd)
{
	return do_sync(real_fsync, fd);
}

int
fdatasync(int fd)
{
	return do_sync(real_fdatasync, fd);
}

int
close(int fd)
{
	if (fd_path(fd) != NULL) {
		pthread_mutex_lock(&ff.lock);
		free(ff.fds[fd]);
		ff.fds[fd] = NULL;
		pthread_mutex_unlock(&ff.lock);
	}
	return real_close(fd);
}

int
rename(const char *from, const char *to)
{
	int rc, saved;

	if (!watched(from) && !watched(to))
		return real_rename(from, to);
	pthread_mutex_lock(&ff.lock);
	if (fault(OP_RENAME, to)) {
		pthread_mutex_unlock(&ff.lock);
		errno = ff.err;
		return -1;
	}
	rc = real_rename(from, to);
	saved = errno;
	if (rc == 0)
		emitf("R %s %s\n", from, to);
	pthread_mutex_unlock(&ff.lock);
	errno = saved;
	return rc;
}

int
unlink(const char *path)
{
	int rc, saved;

	if (!watched(path))
		return real_unlink(path);
	pthread_mutex_lock(&ff.lock);
	rc = real_unlink(path);
	saved = errno;
	if (rc == 0)
		emitf("U %s\n", path);
	pthread_mutex_unlock(&ff.lock);
	errno = saved;
	return rc;
}

int
mkdir(const char *path, mode_t mode)
{
	int rc, saved;

	if (!watched(path))
		return real_mkdir(path, mode);
	pthread_mutex_lock(&ff.lock);
	rc = real_mkdir(path, mode);
	saved = errno;
	if (rc == 0)
		emitf("M %s\n", path);
	pthread_mutex_unlock(&ff.lock);
	errno = saved;
	return rc;
}

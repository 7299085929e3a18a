/*
 * powerloss.c -- apply a power cut to the files tests/faultfs.c watched;
 * see powerloss.h and the record format at the top of faultfs.c.
 *
 * One pass over the record builds the state of each path: its size at the
 * last sync, the undo data written since (in order), whether and when it
 * was created or unlinked. Then each file's undo data is put back newest
 * first, which leaves it as it was at its last sync, and it is cut to that
 * size; last, what was created after the last fsync of its folder goes.
 * This is the strictest reading of POSIX: nothing unsynced survives.
 *
 * powerloss_apply_oldest() models a disk that writes pages back in any
 * order: a file it is asked to treat so loses only its oldest write since
 * its last sync (the X record gives its extent; the W records just before
 * it, what it overwrote; where it extended the file, zeros) and keeps
 * every later one.
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "powerloss.h"

struct undo {
	long long   off;
	size_t	    len;
	const char *data;
};

struct pstate {
	char	    *path;
	int	     has_sync;
	long long    sync_size;
	struct undo *undo;
	size_t	     nundo, capundo;
	long	     created; /* record index, -1 */
	long	     mkdired; /* record index, -1 */
	int	     gone;
	/* The oldest write since the last sync (X), and its undo data. */
	int	  has_x;
	long long x_off;
	size_t	  x_len;
	size_t	  x_undo_from, x_undo_to; /* undo[from..to) */
	size_t	  undo_mark;		  /* undo entries before: not its */
	unsigned  x_later;		  /* writes after it */
};

struct dsync {
	char *path;
	long  at;
};

struct plog {
	struct pstate *st;
	size_t	       nst, capst;
	struct dsync  *ds;
	size_t	       nds, capds;
};

static void *
grow(void *p, size_t *cap, size_t n, size_t size)
{
	void *np;

	if (n < *cap)
		return p;
	*cap = *cap * 2 + 16;
	if ((np = realloc(p, *cap * size)) == NULL) {
		fprintf(stderr, "powerloss: out of memory\n");
		exit(1);
	}
	return np;
}

static struct pstate *
state(struct plog *pl, const char *path)
{
	struct pstate *s;
	size_t	       i;

	for (i = 0; i < pl->nst; i++)
		if (strcmp(pl->st[i].path, path) == 0)
			return &pl->st[i];
	pl->st = grow(pl->st, &pl->capst, pl->nst, sizeof(*pl->st));
	s = &pl->st[pl->nst++];
	memset(s, 0, sizeof(*s));
	if ((s->path = strdup(path)) == NULL) {
		fprintf(stderr, "powerloss: out of memory\n");
		exit(1);
	}
	s->created = -1;
	s->mkdired = -1;
	return s;
}

/* Was the folder of path fsync'd after record index at? */
static int
dir_synced_after(struct plog *pl, const char *path, long at)
{
	const char *slash = strrchr(path, '/');
	size_t	    n = slash != NULL ? (size_t)(slash - path) : 0, i;

	for (i = 0; i < pl->nds; i++)
		if (pl->ds[i].at > at && strlen(pl->ds[i].path) == n &&
		    strncmp(pl->ds[i].path, path, n) == 0)
			return 1;
	return 0;
}

/* Forget the writes since the last sync: the file is as synced. */
static void
writes_reset(struct pstate *s)
{
	s->nundo = 0;
	s->has_x = 0;
	s->undo_mark = 0;
	s->x_later = 0;
}

static void
rm_tree(const char *path)
{
	char cmd[1200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd) != 0)
		fprintf(stderr, "powerloss: cannot remove %s\n", path);
}

/* Put a file back to its last sync. */
static int
rewind_file(
    struct pstate *s, struct powerloss_stats *st, char *err, size_t errlen)
{
	struct stat sb;
	size_t	    i;
	int	    fd;

	if (s->gone || s->mkdired != -1 || !s->has_sync)
		return 0;
	if (stat(s->path, &sb) == -1 || !S_ISREG(sb.st_mode))
		return 0;
	if (s->nundo == 0 && sb.st_size <= s->sync_size)
		return 0;
	if ((fd = open(s->path, O_WRONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "open %s: %s", s->path, strerror(errno));
		return -1;
	}
	for (i = s->nundo; i-- > 0;) {
		if (pwrite(fd, s->undo[i].data, s->undo[i].len,
			(off_t)s->undo[i].off) != (ssize_t)s->undo[i].len) {
			snprintf(err, errlen, "pwrite %s: %s", s->path,
			    strerror(errno));
			close(fd);
			return -1;
		}
		st->bytes_undone += s->undo[i].len;
	}
	if (fstat(fd, &sb) == -1) {
		snprintf(err, errlen, "fstat %s: %s", s->path, strerror(errno));
		close(fd);
		return -1;
	}
	if (sb.st_size > s->sync_size) {
		if (ftruncate(fd, (off_t)s->sync_size) == -1) {
			snprintf(err, errlen, "ftruncate %s: %s", s->path,
			    strerror(errno));
			close(fd);
			return -1;
		}
		st->bytes_cut += (uint64_t)(sb.st_size - s->sync_size);
	}
	close(fd);
	st->files_rewound++;
	return 0;
}

/*
 * Put back only the oldest write since the last sync: what it overwrote
 * (its W records, newest first, so the oldest content wins), zeros where
 * it extended the file. The file keeps its size and every later write.
 */
static int
rewind_oldest(
    struct pstate *s, struct powerloss_stats *st, char *err, size_t errlen)
{
	struct stat    sb;
	unsigned char *old;
	long long      lo, hi;
	size_t	       i, n;
	int	       fd;

	if (s->gone || s->mkdired != -1 || !s->has_sync)
		return 0;
	if (!s->has_x)
		return rewind_file(s, st, err, errlen); /* no write to undo */
	if (stat(s->path, &sb) == -1 || !S_ISREG(sb.st_mode) ||
	    sb.st_size <= s->x_off)
		return 0;
	n = (size_t)(sb.st_size - s->x_off) < s->x_len
		? (size_t)(sb.st_size - s->x_off)
		: s->x_len;
	if ((old = calloc(1, n)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (i = s->x_undo_to; i-- > s->x_undo_from;) {
		lo = s->undo[i].off > s->x_off ? s->undo[i].off : s->x_off;
		hi = s->undo[i].off + (long long)s->undo[i].len;
		if (hi > s->x_off + (long long)n)
			hi = s->x_off + (long long)n;
		if (lo < hi)
			memcpy(old + (lo - s->x_off),
			    s->undo[i].data + (lo - s->undo[i].off),
			    (size_t)(hi - lo));
	}
	if ((fd = open(s->path, O_WRONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "open %s: %s", s->path, strerror(errno));
		free(old);
		return -1;
	}
	if (pwrite(fd, old, n, (off_t)s->x_off) != (ssize_t)n) {
		snprintf(
		    err, errlen, "pwrite %s: %s", s->path, strerror(errno));
		close(fd);
		free(old);
		return -1;
	}
	close(fd);
	free(old);
	st->bytes_undone += n;
	st->writes_undone++;
	st->writes_kept += s->x_later;
	st->files_rewound++;
	return 0;
}

static int
apply(const char *path, const char *match, struct powerloss_stats *st,
    char *err, size_t errlen)
{
	struct plog    pl;
	struct pstate *s;
	struct stat    sb;
	char	      *buf = NULL, *p, *end, *nl, a[1024], b[1024];
	long	       idx = 0;
	long long      x, y;
	size_t	       i, len;
	FILE	      *f;
	int	       rc = 0, n;

	memset(&pl, 0, sizeof(pl));
	if ((f = fopen(path, "r")) == NULL)
		return errno == ENOENT ? 0 : -1;
	if (fstat(fileno(f), &sb) == -1 ||
	    (buf = malloc((size_t)sb.st_size + 1)) == NULL ||
	    fread(buf, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size) {
		snprintf(err, errlen, "cannot read %s", path);
		fclose(f);
		free(buf);
		return -1;
	}
	fclose(f);
	len = (size_t)sb.st_size;
	buf[len] = '\0';

	for (p = buf, end = buf + len; p < end; idx++) {
		/*
		 * The daemon may die while the shim writes a record: the
		 * last one may be cut short. Its call had not begun (undo
		 * data goes out first), so it is simply not there.
		 */
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			break;
		if (p[0] == 'W' && sscanf(p, "W %lld %lld", &x, &y) == 2 &&
		    y >= 0 && (long long)(end - (nl + 1)) < y)
			break;
		*nl = '\0';
		switch (p[0]) {
		case 'S':
			if (sscanf(p, "S %lld %1023s", &x, a) != 2)
				goto bad;
			s = state(&pl, a);
			s->has_sync = 1;
			s->sync_size = x;
			writes_reset(s);
			st->syncs++;
			break;
		case 'X':
			if (sscanf(p, "X %lld %lld %1023s", &x, &y, a) != 3 ||
			    x < 0 || y <= 0)
				goto bad;
			s = state(&pl, a);
			if (!s->has_x) {
				s->has_x = 1;
				s->x_off = x;
				s->x_len = (size_t)y;
				s->x_undo_from = s->undo_mark;
				s->x_undo_to = s->nundo;
			} else
				s->x_later++;
			s->undo_mark = s->nundo;
			break;
		case 'W':
			if (sscanf(p, "W %lld %lld %1023s", &x, &y, a) != 3 ||
			    y < 0)
				goto bad;
			s = state(&pl, a);
			s->undo = grow(
			    s->undo, &s->capundo, s->nundo, sizeof(*s->undo));
			s->undo[s->nundo].off = x;
			s->undo[s->nundo].len = (size_t)y;
			s->undo[s->nundo].data = nl + 1;
			s->nundo++;
			nl += y;
			break;
		case 'C':
			if (sscanf(p, "C %1023s", a) != 1)
				goto bad;
			s = state(&pl, a);
			s->created = idx;
			s->has_sync = 1;
			s->sync_size = 0;
			writes_reset(s);
			s->gone = 0;
			break;
		case 'M':
			if (sscanf(p, "M %1023s", a) != 1)
				goto bad;
			s = state(&pl, a);
			s->mkdired = idx;
			s->gone = 0;
			break;
		case 'D':
			if (sscanf(p, "D %1023s", a) != 1)
				goto bad;
			pl.ds = grow(pl.ds, &pl.capds, pl.nds, sizeof(*pl.ds));
			if ((pl.ds[pl.nds].path = strdup(a)) == NULL)
				goto bad;
			pl.ds[pl.nds++].at = idx;
			break;
		case 'U':
			if (sscanf(p, "U %1023s", a) != 1)
				goto bad;
			s = state(&pl, a);
			s->gone = 1;
			writes_reset(s);
			s->created = -1;
			break;
		case 'R':
			if (sscanf(p, "R %1023s %1023s", a, b) != 2)
				goto bad;
			/* The new name is as durable as the old content. */
			s = state(&pl, a);
			s->gone = 1;
			s = state(&pl, b);
			s->gone = 0;
			s->has_sync = 0;
			writes_reset(s);
			break;
		case 'F': st->faults++; break;
		default: goto bad;
		}
		p = nl + 1;
	}

	for (i = 0; i < pl.nst; i++)
		if ((match != NULL && strstr(pl.st[i].path, match) != NULL
			    ? rewind_oldest(&pl.st[i], st, err, errlen)
			    : rewind_file(&pl.st[i], st, err, errlen)) == -1) {
			rc = -1;
			goto out;
		}
	for (i = 0; i < pl.nst; i++) {
		s = &pl.st[i];
		if (s->gone)
			continue;
		if (s->created != -1 &&
		    !dir_synced_after(&pl, s->path, s->created) &&
		    unlink(s->path) == 0)
			st->files_dropped++;
		if (s->mkdired != -1 &&
		    !dir_synced_after(&pl, s->path, s->mkdired) &&
		    access(s->path, F_OK) == 0) {
			rm_tree(s->path);
			st->dirs_dropped++;
		}
	}
	if ((n = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "empty %s: %s", path, strerror(errno));
		rc = -1;
	} else
		close(n);
	goto out;

bad:
	snprintf(err, errlen, "%s: bad record \"%.60s\"", path, p);
	rc = -1;
out:
	for (i = 0; i < pl.nst; i++) {
		free(pl.st[i].path);
		free(pl.st[i].undo);
	}
	for (i = 0; i < pl.nds; i++)
		free(pl.ds[i].path);
	free(pl.st);
	free(pl.ds);
	free(buf);
	return rc;
}

int
powerloss_apply(
    const char *path, struct powerloss_stats *st, char *err, size_t errlen)
{
	return apply(path, NULL, st, err, errlen);
}

int
powerloss_apply_oldest(const char *path, const char *match,
    struct powerloss_stats *st, char *err, size_t errlen)
{
	return apply(path, match, st, err, errlen);
}

int
powerloss_scan(const char *path, struct powerloss_scan *sc)
{
	char	  line[4096], op[16], file[1024];
	long long x, y;
	int	  e;
	FILE	 *f;

	memset(sc, 0, sizeof(*sc));
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (line[0] == 'F' &&
		    sscanf(line, "F %15s %d %1023s", op, &e, file) == 3) {
			if (sc->faults++ == 0) {
				snprintf(sc->first_op, sizeof(sc->first_op),
				    "%s", op);
				snprintf(sc->first_path, sizeof(sc->first_path),
				    "%s", file);
			}
		} else if (line[0] == 'S' && sc->faults > 0 &&
			   sscanf(line, "S %lld %1023s", &x, file) == 2 &&
			   strcmp(file, sc->first_path) == 0)
			sc->syncs_after++;
		else if (line[0] == 'W' &&
			 sscanf(line, "W %lld %lld", &x, &y) == 2 &&
			 fseeko(f, (off_t)y, SEEK_CUR) == -1)
			break;
	}
	fclose(f);
	return 0;
}

/*
 * journal.c -- the write-ahead journal.
 *
 * Durability rests on three rules:
 *
 *  1. A group of records goes out in one write and is acknowledged only
 *     after one fdatasync of its segment has succeeded.
 *  2. A new segment is fsync'd, and its folder fsync'd, before the first
 *     record in it can be acknowledged, so the file itself survives a crash.
 *  3. If fdatasync fails, the pages may already have been dropped by the
 *     kernel: the caller never retries and trusts it; it stops and lets
 *     recovery read what is really on disk.
 *
 * A failed write may leave part of a record at the end of the segment; it
 * is cut back to the last good size at once, so that the next group never
 * lands behind garbage (which recovery would rightly call corruption).
 *
 * Recovery reads every segment in order and checks every record: its length
 * against record_max before anything else, its CRC, and that sequence
 * numbers grow. A bad record at the end of the last segment is a torn write
 * from a crash: it is cut off with a log line. A crash in the middle of a
 * group's write can also leave good records after a bad one, but only of
 * the same group, which was never fsync'd and so never acknowledged. A
 * later group, though, is written only after the earlier one's fsync: so a
 * bad record followed by the end of a group and then more good records
 * (found by trying every later offset) means acknowledged data is damaged.
 * That is corruption: the daemon refuses to start, naming the segment and
 * offset, unless salvage was asked for. Every segment but the last was
 * complete and synced before the next one began: any bad record there is
 * corruption too. (A damaged group-end record of the second-to-last group
 * cannot be told from a torn tail; that double fault is not detected.)
 *
 * Groups of async writes only break the "one unsynced group" rule: they
 * are written one after another and fdatasync'd only every
 * fsync_interval, so several can be unsynced at a power cut, and the disk
 * may keep a later one and lose an earlier one. The writer marks every
 * record of such a group with JOURNAL_F_UNSYNCED. A group without the
 * flag was fdatasync'd before it was acknowledged, and that fdatasync
 * covered everything written before it: a bad record with an unflagged
 * sound record anywhere after it was synced, and is corruption. A bad
 * record followed only by flagged records (in its segment and in every
 * later one) is a lost unsynced write: the segment is cut there and the
 * later segments removed, with a log line; only async writes, never
 * promised durable, go. Nor can a lost unsynced write sit inside an
 * unflagged group (that group was synced before anything after it was
 * written), so a bad record right after an unflagged record that does
 * not end its group stays corruption. (The damaged first record of a
 * synced group followed only by unsynced groups cannot be told from a
 * lost write; a bad disk, not a power cut, makes that.)
 *
 * Segments are deleted once every record in them is applied to SQLite and
 * that state is durable (journal_release, called by the applier).
 *
 * Pre-zeroing: when asked, a segment is extended with zeros a chunk ahead
 * of the writes, so that most fdatasyncs flush data only, not the file's
 * size. A segment therefore may end in zeros: an all-zero tail is the
 * clean end of its records, in any segment, not a torn write.
 */
#include "config.h"

#include <sys/file.h>
#include <sys/mman.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "journal.h"
#include "log.h"
#include "monotime.h"
#include "xmalloc.h"

static const char journal_magic[8] = {'S', 'T', 'A', 'S', 'H', 'J', 'N', 'L'};

struct segment {
	uint64_t name_seq;  /* from the file name */
	uint32_t version;   /* format, from the header; 0: not read yet */
	uint64_t first_seq; /* of its first record, 0: none */
	uint64_t last_seq;  /* of its last record, 0: none */
	uint64_t size;
	uint64_t records;
	char	*path;
	TAILQ_ENTRY(segment) entry;
};
TAILQ_HEAD(segment_list, segment);

struct journal {
	struct journal_options opts;
	char		      *dir;
	int		       dirfd;
	pthread_mutex_t	       lock; /* segments and stats */
	struct segment_list    segments;
	struct segment	      *cur;    /* being written, or NULL */
	int		       fd;     /* of cur */
	int		       lockfd; /* LOCK, held while open */
	uint64_t	       zeroed; /* cur's file size, zeros included */
	struct journal_stats   stats;
};

#define CRASH_POINT(j, name)                                                   \
	do {                                                                   \
		if ((j)->opts.crash_point != NULL)                             \
			(j)->opts.crash_point(name);                           \
	} while (0)

static void
put_u32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static void
put_u64(unsigned char *p, uint64_t v)
{
	put_u32(p, (uint32_t)v);
	put_u32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t
get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t
get_u64(const unsigned char *p)
{
	return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

void
journal_record_seal(void *dst, uint8_t type, uint64_t seq, size_t len)
{
	unsigned char *p = dst;
	uint32_t       crc;

	put_u32(p + 4, (uint32_t)len);
	p[8] = type;
	put_u64(p + 9, seq);
	crc = crc32c_extend(0, p + 4, JOURNAL_RECORD_HEADER - 4 + len);
	put_u32(p, crc32c_mask(crc));
}

void
journal_record_encode(
    void *dst, uint8_t type, uint64_t seq, const void *payload, size_t len)
{
	unsigned char *p = dst;

	if (len > 0)
		memcpy(p + JOURNAL_RECORD_HEADER, payload, len);
	journal_record_seal(dst, type, seq, len);
}

/* The type flags a segment of this format may not hold. */
static uint8_t
format_bad_flags(uint32_t version)
{
	return version < 2 ? JOURNAL_F_UNSYNCED : 0;
}

/*
 * Check the record at buf[off..size): 0 and its total size in *recsize when
 * it is whole and sound with a seq above prev and none of the type flags
 * in bad; -1 with *why otherwise.
 */
static int
record_check(const unsigned char *buf, uint64_t size, uint64_t off,
    uint64_t prev, size_t record_max, uint8_t bad, uint64_t *recsize,
    uint64_t *seqp, const char **why)
{
	uint32_t len, crc;
	uint64_t seq;

	if (size - off < JOURNAL_RECORD_HEADER) {
		*why = "incomplete record header";
		return -1;
	}
	len = get_u32(buf + off + 4);
	if (len > record_max) {
		/* A whole, sound record: the limit was lowered since. */
		if (size - off - JOURNAL_RECORD_HEADER >= len &&
		    crc32c_mask(crc32c_extend(0, buf + off + 4,
			JOURNAL_RECORD_HEADER - 4 + len)) == get_u32(buf + off))
			*why = "a sound record is longer than record-max; "
			       "raise record-max";
		else
			*why = "record length over the limit";
		return -1;
	}
	if (size - off - JOURNAL_RECORD_HEADER < len) {
		*why = "incomplete record";
		return -1;
	}
	crc = crc32c_extend(0, buf + off + 4, JOURNAL_RECORD_HEADER - 4 + len);
	if (crc32c_mask(crc) != get_u32(buf + off)) {
		*why = "checksum mismatch";
		return -1;
	}
	seq = get_u64(buf + off + 9);
	if (seq <= prev) {
		*why = "sequence number goes backwards";
		return -1;
	}
	if ((buf[off + 8] & bad) != 0) {
		*why = "a type flag this segment's format does not have";
		return -1;
	}
	*recsize = JOURNAL_RECORD_HEADER + (uint64_t)len;
	*seqp = seq;
	return 0;
}

/*
 * Could a sound record start at off? Only what record_check() would
 * demand, without the CRC, plus a sequence number at most 2^32 after
 * prev: a later record never is further on. The search past a bad record
 * probes every offset; in a damaged region each could claim a long
 * record, and a CRC over each claim made the search quadratic (a 2 MB
 * region took 20 s).
 */
static int
record_plausible(const unsigned char *buf, uint64_t size, uint64_t off,
    uint64_t prev, size_t record_max)
{
	uint32_t len;
	uint64_t seq;

	if (size - off < JOURNAL_RECORD_HEADER)
		return 0;
	len = get_u32(buf + off + 4);
	if (len > record_max || size - off - JOURNAL_RECORD_HEADER < len)
		return 0;
	seq = get_u64(buf + off + 9);
	return seq > prev && seq - prev <= ((uint64_t)1 << 32);
}

/* Are all n bytes at p zero? */
static int
all_zero(const unsigned char *p, uint64_t n)
{
	uint64_t i;

	for (i = 0; i < n; i++)
		if (p[i] != 0)
			return 0;
	return 1;
}

/* Are the bytes of the record at off all there, with a good CRC? */
static int
record_sound(const unsigned char *buf, uint64_t size, uint64_t off)
{
	uint32_t len;

	if (size - off < JOURNAL_RECORD_HEADER)
		return 0;
	len = get_u32(buf + off + 4);
	if (size - off - JOURNAL_RECORD_HEADER < len)
		return 0;
	return crc32c_mask(crc32c_extend(0, buf + off + 4,
		   JOURNAL_RECORD_HEADER - 4 + len)) == get_u32(buf + off);
}

/* Is the segment header at buf sound? Its format version, or -1. */
static int
header_check(const unsigned char *buf, uint64_t size, uint64_t name_seq)
{
	uint32_t version;

	if (size < JOURNAL_HEADER_SIZE)
		return -1;
	version = get_u32(buf + 8);
	if (memcmp(buf, journal_magic, 8) != 0 || version < 1 ||
	    version > JOURNAL_FORMAT_VERSION ||
	    get_u32(buf + 12) != JOURNAL_HEADER_SIZE ||
	    get_u64(buf + 16) != name_seq)
		return -1;
	if (crc32c_mask(crc32c_extend(0, buf, 32)) != get_u32(buf + 32))
		return -1;
	return (int)version;
}

/* Map a segment file read-only; *size 0 and NULL for an empty file. */
static const unsigned char *
segment_map(const char *path, uint64_t *size, char **cause)
{
	struct stat sb;
	void	   *p;
	int	    fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		xasprintf(cause, "open %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &sb) == -1) {
		xasprintf(cause, "fstat %s: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	*size = (uint64_t)sb.st_size;
	if (sb.st_size == 0) {
		close(fd);
		return (const unsigned char *)"";
	}
	p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		xasprintf(cause, "mmap %s: %s", path, strerror(errno));
		return NULL;
	}
	return p;
}

static void
segment_unmap(const unsigned char *p, uint64_t size)
{
	if (size > 0)
		munmap((void *)(uintptr_t)p, (size_t)size);
}

/* Cut a file to size and make that durable. */
static int
file_truncate(const char *path, uint64_t size, char **cause)
{
	int fd;

	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) == -1) {
		xasprintf(cause, "open %s: %s", path, strerror(errno));
		return -1;
	}
	if (ftruncate(fd, (off_t)size) == -1 || fsync(fd) == -1) {
		xasprintf(cause, "truncate %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int
dir_sync(struct journal *j, char **cause)
{
	if (fsync(j->dirfd) == -1) {
		xasprintf(
		    cause, "fsync of folder %s: %s", j->dir, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * A folder just created survives a power cut only once the folder that
 * holds it is fsync'd: else the journal, and every segment synced into it,
 * could vanish with the entry that names it.
 */
static int
parent_sync(const char *dir, char **cause)
{
	char  *parent = xstrdup(dir), *slash;
	size_t n = strlen(parent);
	int    fd;

	while (n > 1 && parent[n - 1] == '/')
		parent[--n] = '\0';
	if ((slash = strrchr(parent, '/')) == NULL)
		strcpy(parent, ".");
	else if (slash == parent)
		parent[1] = '\0';
	else
		*slash = '\0';
	if ((fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    fsync(fd) == -1) {
		xasprintf(
		    cause, "fsync of folder %s: %s", parent, strerror(errno));
		if (fd != -1)
			close(fd);
		free(parent);
		return -1;
	}
	close(fd);
	free(parent);
	return 0;
}

static void
segment_free(struct segment *s)
{
	free(s->path);
	free(s);
}

/*
 * Walk every sound record of buf from off on, stepping over damaged
 * stretches byte by byte with the cheap probe first (record_plausible:
 * no CRC over every offset's claim). 1 when each carries the unsynced
 * flag, with their count added to *n and *prev moved to the last one's
 * seq; 0 at the first one that does not.
 */
static int
records_unsynced(const unsigned char *buf, uint64_t size, uint64_t off,
    uint64_t *prev, size_t record_max, uint8_t bad, uint64_t *n)
{
	const char *why;
	uint64_t    recsize, seq;

	while (off < size && size - off >= JOURNAL_RECORD_HEADER) {
		if (!record_plausible(buf, size, off, *prev, record_max) ||
		    record_check(buf, size, off, *prev, record_max, bad,
			&recsize, &seq, &why) == -1) {
			off++;
			continue;
		}
		if ((buf[off + 8] & JOURNAL_F_UNSYNCED) == 0)
			return 0;
		(*n)++;
		*prev = seq;
		off += recsize;
	}
	return 1;
}

/*
 * Do the segments after s hold only records with the unsynced flag, or
 * none? 1 (their count added to *n), 0 when one does not or a header is
 * bad (a header only torn at the end of the last segment holds nothing),
 * -1 with *cause.
 */
static int
later_unsynced(struct journal *j, struct segment *s, uint64_t prev, uint64_t *n,
    char **cause)
{
	const unsigned char *buf;
	uint64_t	     size;
	int		     version, ok;

	for (s = TAILQ_NEXT(s, entry); s != NULL; s = TAILQ_NEXT(s, entry)) {
		if ((buf = segment_map(s->path, &size, cause)) == NULL)
			return -1;
		version = header_check(buf, size, s->name_seq);
		if (version == -1) {
			segment_unmap(buf, size);
			if (TAILQ_NEXT(s, entry) == NULL &&
			    size <= JOURNAL_HEADER_SIZE)
				continue;
			return 0;
		}
		ok = records_unsynced(buf, size, JOURNAL_HEADER_SIZE, &prev,
		    j->opts.record_max, format_bad_flags((uint32_t)version), n);
		segment_unmap(buf, size);
		if (!ok)
			return 0;
	}
	return 1;
}

/*
 * Delete the last segment's file and forget it, counting its bytes as cut
 * (the caller says why in the log). -1 with *cause.
 */
static int
segment_remove_last(struct journal *j, char **cause)
{
	struct segment *s = TAILQ_LAST(&j->segments, segment_list);
	struct stat	sb;

	if (stat(s->path, &sb) == -1) {
		xasprintf(cause, "stat %s: %s", s->path, strerror(errno));
		return -1;
	}
	if (unlink(s->path) == -1) {
		xasprintf(cause, "unlink %s: %s", s->path, strerror(errno));
		return -1;
	}
	j->stats.truncated_bytes += (uint64_t)sb.st_size;
	TAILQ_REMOVE(&j->segments, s, entry);
	segment_free(s);
	return 0;
}

/*
 * Remove every segment after s, the last first, then sync the folder:
 * a crash on the way leaves a journal that gets the same verdict. why
 * ends the log line of each.
 */
static int
segments_drop_after(
    struct journal *j, struct segment *s, const char *why, char **cause)
{
	struct segment *t;

	while ((t = TAILQ_LAST(&j->segments, segment_list)) != s) {
		log_warnx("journal: removing %s: %s", t->path, why);
		if (segment_remove_last(j, cause) == -1)
			return -1;
	}
	return dir_sync(j, cause);
}

/*
 * Scan one segment. last says whether it is the last one (where a torn
 * tail is expected after a crash). *prev is the last seq seen so far.
 * Returns 0, or -1 with *cause; 1 when the segment (a torn header) was
 * removed; 2 when salvage cut it (the later segments are removed first).
 * A lost unsynced write is cut here, later segments included (0).
 */
static int
segment_scan(struct journal *j, struct segment *s, int last, uint64_t *prev,
    journal_record_cb cb, void *arg, uint64_t after, int repair, char **cause)
{
	const unsigned char *buf;
	const char	    *why = NULL;
	uint64_t	     size, off, recsize, seq, probe, pseq, p2;
	uint64_t	     first = 0, lastseq = 0, nrec = 0;
	uint8_t		     bad, lasttype = 0;
	int		     rc = 0, later_group, whole, version;

	if ((buf = segment_map(s->path, &size, cause)) == NULL)
		return -1;
	if ((version = header_check(buf, size, s->name_seq)) == -1) {
		segment_unmap(buf, size);
		/*
		 * Only a header cut short by a crash while the segment was
		 * created (nothing in it was acknowledged) is removed.
		 */
		if (last && repair && size <= JOURNAL_HEADER_SIZE) {
			/* Crashed while creating it: nothing was acknowledged.
			 */
			log_warnx("journal: %s has a torn header; removing it",
			    s->path);
			if (unlink(s->path) == -1) {
				xasprintf(cause, "unlink %s: %s", s->path,
				    strerror(errno));
				return -1;
			}
			j->stats.truncated_bytes += size;
			s->size = 0;
			return 1; /* removed */
		}
		xasprintf(
		    cause, "journal corrupt: segment %s: bad header", s->path);
		return -1;
	}
	s->version = (uint32_t)version;
	bad = format_bad_flags(s->version);
	off = JOURNAL_HEADER_SIZE;
	while (off < size) {
		if (record_check(buf, size, off, *prev, j->opts.record_max, bad,
			&recsize, &seq, &why) == -1)
			break;
		if (cb != NULL && seq > after) {
			uint32_t len = get_u32(buf + off + 4);

			if (cb(arg, buf[off + 8] & ~JOURNAL_TYPE_FLAGS, seq,
				buf + off + JOURNAL_RECORD_HEADER, len,
				s->version) == -1) {
				xasprintf(cause,
				    "replay of record %" PRIu64 " failed", seq);
				rc = -1;
				goto out;
			}
		}
		if (first == 0)
			first = seq;
		lastseq = seq;
		lasttype = buf[off + 8];
		nrec++;
		*prev = seq;
		off += recsize;
	}
	/* Only the scan at open describes the segment (replay reads it). */
	if (repair) {
		s->first_seq = first;
		s->last_seq = lastseq;
		s->records = nrec;
		s->size = off;
	}
	if (off == size || all_zero(buf + off, size - off))
		goto out; /* the end, perhaps pre-zeroed space after it */

	/*
	 * A bad record at off: torn tail, or corruption? Find the next sound
	 * record, then walk on: the end of a group followed by another sound
	 * record means a later group was written after this one was synced.
	 */
	for (probe = off + 1; probe + JOURNAL_RECORD_HEADER <= size; probe++) {
		const char *w2;

		if (record_plausible(
			buf, size, probe, *prev, j->opts.record_max) &&
		    record_check(buf, size, probe, *prev, j->opts.record_max,
			bad, &p2, &pseq, &w2) == 0)
			break;
	}
	/*
	 * A record whose bytes are all there and whose CRC holds was not
	 * torn by a crash: if it is out of order, the log is inconsistent.
	 */
	whole = record_sound(buf, size, off);
	later_group = whole;
	if (!later_group && probe + JOURNAL_RECORD_HEADER <= size) {
		uint64_t    q = probe, qprev = *prev;
		int	    ended = 0;
		const char *w2;

		while (q < size &&
		       record_check(buf, size, q, qprev, j->opts.record_max,
			   bad, &p2, &pseq, &w2) == 0) {
			if (ended) {
				later_group = 1;
				break;
			}
			ended = (buf[q + 8] & JOURNAL_GROUP_END) != 0;
			qprev = pseq;
			q += p2;
		}
	}
	if (strstr(why, "raise record-max") != NULL) {
		xasprintf(cause, "journal segment %s offset %" PRIu64 ": %s",
		    s->path, off, why);
		rc = -1;
		goto out;
	}
	/*
	 * Records follow the damage: if they all carry the unsynced flag,
	 * in this segment and every later one, and the damaged record is
	 * not inside an unflagged group, an unsynced write was lost.
	 */
	if ((later_group || !last) && repair && !whole &&
	    (nrec == 0 ||
		(lasttype & (JOURNAL_GROUP_END | JOURNAL_F_UNSYNCED)) != 0)) {
		uint64_t n = 0, q = *prev;
		int	 lost;

		lost = records_unsynced(
		    buf, size, off + 1, &q, j->opts.record_max, bad, &n);
		if (lost)
			lost = later_unsynced(j, s, q, &n, cause);
		if (lost == -1) {
			rc = -1;
			goto out;
		}
		if (lost && n > 0) {
			log_warnx("journal: lost unsynced write in %s at "
				  "offset %" PRIu64 " (%s): cutting %" PRIu64
				  " bytes; %" PRIu64 " unsynced records "
				  "after it dropped",
			    s->path, off, why, size - off, n);
			segment_unmap(buf, size);
			if (segments_drop_after(j, s,
				"only unsynced records after a lost one",
				cause) == -1)
				return -1;
			j->stats.truncated_bytes += size - off;
			if (file_truncate(s->path, off, cause) == -1)
				return -1;
			return 0;
		}
	}
	if (later_group || !last) {
		if (!repair || !j->opts.salvage) {
			xasprintf(cause,
			    "journal corrupt: segment %s offset "
			    "%" PRIu64 ": %s, and records follow it; "
			    "stashd --salvage keeps the records before it",
			    s->path, off, why);
			rc = -1;
			goto out;
		}
		log_warnx("journal: salvage: cutting %s at offset %" PRIu64
			  " (%s); %" PRIu64 " bytes dropped",
		    s->path, off, why, size - off);
		rc = 2; /* later segments must go too */
	} else if (repair)
		log_warnx(
		    "journal: torn record at the end of %s, offset %" PRIu64
		    " (%s): cutting %" PRIu64 " bytes",
		    s->path, off, why, size - off);
	if (repair) {
		segment_unmap(buf, size);
		/*
		 * Salvage removes the later segments before it cuts this one,
		 * so that a crash on the way never leaves records after the
		 * cut without the ones between: the next open finds the same
		 * damage (or, with all of them gone, a torn tail to cut at
		 * the same place).
		 */
		if (rc == 2 && segments_drop_after(j, s,
				   "salvage: it follows the cut", cause) == -1)
			return -1;
		j->stats.truncated_bytes += size - off;
		if (file_truncate(s->path, off, cause) == -1)
			return -1;
		return rc;
	}
out:
	segment_unmap(buf, size);
	return rc;
}

/*
 * Take the journal's lock: an exclusive flock on dir/LOCK, held until
 * journal_close. A second stashd on the same journal fails here, before it
 * reads or changes anything.
 */
static int
journal_lock(struct journal *j, char **cause)
{
	char *path;

	xasprintf(&path, "%s/LOCK", j->dir);
	j->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (j->lockfd == -1) {
		xasprintf(cause, "open %s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	if (flock(j->lockfd, LOCK_EX | LOCK_NB) == -1) {
		xasprintf(cause,
		    "%s is locked: another stashd uses this "
		    "journal and database",
		    path);
		free(path);
		return -1;
	}
	free(path);
	return 0;
}

/* Parse "%020llu.seg"; -1 when the name is not a segment's. */
static int
segment_name_seq(const char *name, uint64_t *seq)
{
	uint64_t v = 0;
	int	 i;

	if (strlen(name) != 24 || strcmp(name + 20, ".seg") != 0)
		return -1;
	for (i = 0; i < 20; i++) {
		if (name[i] < '0' || name[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(name[i] - '0');
	}
	*seq = v;
	return 0;
}

static int
segment_cmp(const void *a, const void *b)
{
	const struct segment *sa = *(struct segment *const *)a;
	const struct segment *sb = *(struct segment *const *)b;

	return sa->name_seq < sb->name_seq ? -1 : sa->name_seq > sb->name_seq;
}

/* List the segment files of the folder, sorted. */
static int
journal_list(struct journal *j, char **cause)
{
	struct segment **v = NULL, *s;
	struct dirent	*de;
	size_t		 n = 0, i;
	uint64_t	 seq;
	DIR		*d;

	if ((d = opendir(j->dir)) == NULL) {
		xasprintf(cause, "opendir %s: %s", j->dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (segment_name_seq(de->d_name, &seq) == -1)
			continue;
		s = xcalloc(1, sizeof(*s));
		s->name_seq = seq;
		xasprintf(&s->path, "%s/%s", j->dir, de->d_name);
		v = xreallocarray(v, n + 1, sizeof(*v));
		v[n++] = s;
	}
	closedir(d);
	if (n > 0)
		qsort(v, n, sizeof(*v), segment_cmp);
	for (i = 0; i < n; i++)
		TAILQ_INSERT_TAIL(&j->segments, v[i], entry);
	free(v);
	return 0;
}

/*
 * A last segment of an older format is never written to: the next write
 * starts a new segment, named by its first seq. One that holds no record
 * may bear that very name, so it goes now (it holds nothing).
 */
static int
journal_drop_empty_old(struct journal *j, char **cause)
{
	struct segment *s;
	uint64_t	size;

	while ((s = TAILQ_LAST(&j->segments, segment_list)) != NULL &&
	       s->version != JOURNAL_FORMAT_VERSION && s->records == 0) {
		log_info("journal: removing %s: format %" PRIu32
			 ", and no record in it",
		    s->path, s->version);
		size = s->size;
		if (segment_remove_last(j, cause) == -1)
			return -1;
		j->stats.bytes -= size;
	}
	return 0;
}

struct journal *
journal_open(const struct journal_options *opts, struct journal_recovery *rec,
    char **cause)
{
	struct journal *j;
	struct segment *s, *next;
	uint64_t	prev = 0;
	int		rc, cut = 0;

	j = xcalloc(1, sizeof(*j));
	j->opts = *opts;
	j->dir = xstrdup(opts->dir);
	j->opts.dir = j->dir;
	j->fd = -1;
	j->dirfd = -1;
	j->lockfd = -1;
	TAILQ_INIT(&j->segments);
	if (pthread_mutex_init(&j->lock, NULL) != 0)
		fatalx("pthread_mutex_init");
	memset(rec, 0, sizeof(*rec));

	if (mkdir(j->dir, 0700) == -1) {
		if (errno != EEXIST) {
			xasprintf(
			    cause, "mkdir %s: %s", j->dir, strerror(errno));
			goto fail;
		}
	} else if (parent_sync(j->dir, cause) == -1)
		goto fail;
	if ((j->dirfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) ==
	    -1) {
		xasprintf(cause, "open %s: %s", j->dir, strerror(errno));
		goto fail;
	}
	/* One daemon per journal (and so per database). */
	if (journal_lock(j, cause) == -1)
		goto fail;
	if (journal_list(j, cause) == -1)
		goto fail;

	for (s = TAILQ_FIRST(&j->segments); s != NULL; s = next) {
		next = TAILQ_NEXT(s, entry);
		rc = segment_scan(
		    j, s, next == NULL, &prev, NULL, NULL, 0, 1, cause);
		if (rc == -1)
			goto fail;
		if (rc == 1) {
			TAILQ_REMOVE(&j->segments, s, entry);
			segment_free(s);
			continue;
		}
		if (rc == 2)
			cut = 1;
		/* A cut (lost write or salvage) removed the later ones. */
		next = TAILQ_NEXT(s, entry);
		if (rec->first_seq == 0)
			rec->first_seq = s->first_seq;
		if (s->last_seq != 0)
			rec->last_seq = s->last_seq;
		rec->records += s->records;
		j->stats.bytes += s->size;
	}
	if (journal_drop_empty_old(j, cause) == -1)
		goto fail;
	if ((cut || j->stats.truncated_bytes > 0) && dir_sync(j, cause) == -1)
		goto fail;
	TAILQ_FOREACH(s, &j->segments, entry)
	j->stats.segments++;
	rec->segments = j->stats.segments;
	rec->truncated_bytes = j->stats.truncated_bytes;

	/*
	 * Append to the last segment; one of an older format is left as it
	 * is, and the first write starts a new one.
	 */
	if ((s = TAILQ_LAST(&j->segments, segment_list)) != NULL &&
	    s->version == JOURNAL_FORMAT_VERSION) {
		struct stat sb;

		if ((j->fd = open(s->path, O_WRONLY | O_CLOEXEC)) == -1 ||
		    fstat(j->fd, &sb) == -1) {
			xasprintf(
			    cause, "open %s: %s", s->path, strerror(errno));
			goto fail;
		}
		j->cur = s;
		j->zeroed = (uint64_t)sb.st_size;
	}
	return j;

fail:
	journal_close(j);
	return NULL;
}

int
journal_replay(struct journal *j, uint64_t after, journal_record_cb cb,
    void *arg, char **cause)
{
	struct segment *s;
	uint64_t	prev = 0;

	TAILQ_FOREACH(s, &j->segments, entry)
	{
		if (s->last_seq != 0 && s->last_seq <= after) {
			prev = s->last_seq;
			continue;
		}
		if (segment_scan(j, s, TAILQ_NEXT(s, entry) == NULL, &prev, cb,
			arg, after, 0, cause) != 0) {
			if (*cause == NULL)
				xasprintf(cause,
				    "journal changed during "
				    "replay: %s",
				    s->path);
			return -1;
		}
	}
	return 0;
}

/* Start a new segment for records from first_seq on. */
static int
journal_rotate(struct journal *j, uint64_t first_seq, char **cause)
{
	unsigned char	hdr[JOURNAL_HEADER_SIZE];
	struct segment *s, *last;
	uint64_t	salt, name = first_seq;
	ssize_t		n;
	int		fd, taken = 0;

	/*
	 * Named by its first seq, unless a segment has that name already:
	 * only one named above its own records can (a damaged or hand-made
	 * journal whose last segment, of an older format, is not appended
	 * to). Then the name after the last one's keeps them in order.
	 */
	pthread_mutex_lock(&j->lock);
	TAILQ_FOREACH(last, &j->segments, entry)
	{
		if (last->name_seq == name)
			taken = 1;
	}
	last = TAILQ_LAST(&j->segments, segment_list);
	if (taken)
		name = last->name_seq + 1;
	pthread_mutex_unlock(&j->lock);
	if (name == 0) {
		xasprintf(cause, "journal: no segment name is left");
		return -1;
	}
	if (getrandom(&salt, sizeof(salt), 0) != (ssize_t)sizeof(salt))
		salt = monotime_ns();
	memcpy(hdr, journal_magic, 8);
	put_u32(hdr + 8, JOURNAL_FORMAT_VERSION);
	put_u32(hdr + 12, JOURNAL_HEADER_SIZE);
	put_u64(hdr + 16, name);
	put_u64(hdr + 24, salt);
	put_u32(hdr + 32, crc32c_mask(crc32c_extend(0, hdr, 32)));

	s = xcalloc(1, sizeof(*s));
	s->name_seq = name;
	s->version = JOURNAL_FORMAT_VERSION;
	xasprintf(&s->path, "%s/%020" PRIu64 ".seg", j->dir, name);
	fd = open(s->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1) {
		xasprintf(cause, "create %s: %s", s->path, strerror(errno));
		segment_free(s);
		return -1;
	}
	CRASH_POINT(j, "rotate-created");
	n = write(fd, hdr, sizeof(hdr));
	if (n != (ssize_t)sizeof(hdr) || fsync(fd) == -1) {
		xasprintf(cause, "write %s: %s", s->path,
		    n == -1 || n == (ssize_t)sizeof(hdr) ? strerror(errno)
							 : "short write");
		close(fd);
		if (unlink(s->path) == -1)
			log_warn("unlink %s", s->path);
		segment_free(s);
		return -1;
	}
	if (dir_sync(j, cause) == -1) {
		close(fd);
		if (unlink(s->path) == -1)
			log_warn("unlink %s", s->path);
		segment_free(s);
		return -1;
	}
	CRASH_POINT(j, "rotate-synced");
	/* Async writes of the old segment may not be synced yet. */
	if (j->fd != -1 && fdatasync(j->fd) == -1) {
		xasprintf(
		    cause, "fdatasync %s: %s", j->cur->path, strerror(errno));
		close(fd);
		segment_free(s);
		return -1;
	}
	if (j->fd != -1 && close(j->fd) == -1)
		log_warn("close %s", j->cur->path);
	j->fd = fd;
	j->zeroed = JOURNAL_HEADER_SIZE;
	s->size = JOURNAL_HEADER_SIZE;
	pthread_mutex_lock(&j->lock);
	TAILQ_INSERT_TAIL(&j->segments, s, entry);
	j->cur = s;
	j->stats.segments++;
	j->stats.bytes += JOURNAL_HEADER_SIZE;
	pthread_mutex_unlock(&j->lock);
	return 0;
}

/*
 * Extend the current segment with zeros past end, a chunk ahead. The zeros
 * reach the disk with the next fdatasync, with the file's new size; the
 * writes after them then overwrite space that is already there.
 */
static int
journal_prezero(struct journal *j, uint64_t end, char **cause)
{
	static const char zeros[65536];
	uint64_t	  target, off;
	size_t		  n;
	ssize_t		  w;

	target = (end + j->opts.prezero) / j->opts.prezero * j->opts.prezero;
	for (off = j->zeroed; off < target; off += (uint64_t)w) {
		n = target - off < sizeof(zeros) ? (size_t)(target - off)
						 : sizeof(zeros);
		w = pwrite(j->fd, zeros, n, (off_t)off);
		if (w == -1 && errno == EINTR) {
			w = 0;
			continue;
		}
		if (w <= 0) {
			xasprintf(cause, "extend %s: %s", j->cur->path,
			    w == -1 ? strerror(errno) : "short write");
			if (ftruncate(j->fd, (off_t)j->zeroed) == -1)
				log_warn("journal: cut back %s", j->cur->path);
			return -1;
		}
	}
	j->zeroed = target;
	return 0;
}

int
journal_write(struct journal *j, const void *buf, size_t len,
    uint64_t first_seq, uint64_t last_seq, char **cause)
{
	const char *p = buf;
	uint64_t    start;
	size_t	    left = len;
	ssize_t	    n;

	if (j->cur == NULL ||
	    (j->cur->records > 0 && j->cur->size + len > j->opts.segment_max)) {
		if (journal_rotate(j, first_seq, cause) == -1)
			return -1;
	}
	start = j->cur->size;
	if (j->opts.prezero > 0 && start + len > j->zeroed &&
	    journal_prezero(j, start + len, cause) == -1)
		return -1;
	while (left > 0) {
		n = pwrite(j->fd, p, left, (off_t)(start + (len - left)));
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			int saved = n == -1 ? errno : EIO;

			xasprintf(cause, "write %s: %s", j->cur->path,
			    strerror(saved));
			/* Never leave part of a record behind. */
			if (ftruncate(j->fd, (off_t)start) == -1) {
				char *old = *cause;

				xasprintf(cause,
				    "%s; and cannot cut it back: "
				    "%s",
				    old, strerror(errno));
				free(old);
			}
			j->zeroed = start;
			return -1;
		}
		p += n;
		left -= (size_t)n;
	}
	CRASH_POINT(j, "after-write");
	pthread_mutex_lock(&j->lock);
	j->cur->size += len;
	if (j->cur->first_seq == 0)
		j->cur->first_seq = first_seq;
	j->cur->last_seq = last_seq;
	j->cur->records++;
	j->stats.bytes += len;
	j->stats.writes++;
	pthread_mutex_unlock(&j->lock);
	return 0;
}

int
journal_sync(struct journal *j, char **cause)
{
	uint64_t t0, dt;

	if (j->fd == -1)
		return 0;
	t0 = monotime_ns();
	if (fdatasync(j->fd) == -1) {
		xasprintf(
		    cause, "fdatasync %s: %s", j->cur->path, strerror(errno));
		return -1;
	}
	dt = monotime_ns() - t0;
	CRASH_POINT(j, "after-sync");
	pthread_mutex_lock(&j->lock);
	j->stats.fsyncs++;
	j->stats.fsync_ns_total += dt;
	j->stats.fsync_ns_last = dt;
	if (dt > j->stats.fsync_ns_max)
		j->stats.fsync_ns_max = dt;
	pthread_mutex_unlock(&j->lock);
	return 0;
}

int
journal_release(struct journal *j, uint64_t durable_seq)
{
	struct segment *s;
	int		n = 0;

	pthread_mutex_lock(&j->lock);
	while ((s = TAILQ_FIRST(&j->segments)) != NULL && s != j->cur &&
	       s->last_seq <= durable_seq) {
		CRASH_POINT(j, "before-delete");
		if (unlink(s->path) == -1) {
			log_warn("journal: unlink %s", s->path);
			break;
		}
		TAILQ_REMOVE(&j->segments, s, entry);
		j->stats.segments--;
		j->stats.bytes -= s->size;
		j->stats.segments_deleted++;
		segment_free(s);
		n++;
	}
	pthread_mutex_unlock(&j->lock);
	return n;
}

int
journal_finish(struct journal *j, uint64_t durable_seq)
{
	int left = 0;

	if (j->fd != -1) {
		if (close(j->fd) == -1)
			log_warn("journal: close %s", j->cur->path);
		j->fd = -1;
	}
	pthread_mutex_lock(&j->lock);
	j->cur = NULL; /* the last segment may go now */
	pthread_mutex_unlock(&j->lock);
	journal_release(j, durable_seq);
	pthread_mutex_lock(&j->lock);
	left = (int)j->stats.segments;
	pthread_mutex_unlock(&j->lock);
	if (fsync(j->dirfd) == -1)
		log_warn("journal: fsync of %s", j->dir);
	return left;
}

void
journal_get_stats(struct journal *j, struct journal_stats *st)
{
	pthread_mutex_lock(&j->lock);
	*st = j->stats;
	pthread_mutex_unlock(&j->lock);
}

void
journal_close(struct journal *j)
{
	struct segment *s;

	if (j == NULL)
		return;
	if (j->fd != -1 && close(j->fd) == -1)
		log_warn("journal: close");
	if (j->dirfd != -1)
		close(j->dirfd);
	if (j->lockfd != -1)
		close(j->lockfd); /* releases the lock */
	while ((s = TAILQ_FIRST(&j->segments)) != NULL) {
		TAILQ_REMOVE(&j->segments, s, entry);
		segment_free(s);
	}
	pthread_mutex_destroy(&j->lock);
	free(j->dir);
	free(j);
}

/*
 * test_journal.c -- unit tests of the write-ahead journal and of CRC-32C.
 *
 * Every test works in a fresh temporary folder (under $TESTS_TMPDIR, else
 * /tmp) that its teardown removes. The tests check the files on disk with
 * their own small decoder, written from the format described in journal.h
 * and not from journal.c, so that a change of the format is noticed. They
 * damage segments by hand the ways a crash or a bad disk would: truncation
 * at every byte of the tail, flipped bits, zero-filled tails, torn headers,
 * and a write that fails partway (RLIMIT_FSIZE).
 *
 * Records written by a test are remembered (type, seq, payload) in a list,
 * and replay is compared with that list byte for byte.
 */
#include "config.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon/crc32c.h"
#include "daemon/journal.h"
#include "daemon/log.h"

#define BIG_SEGMENT (1u << 20)
#define RECORD_MAX  (64u * 1024)

/* The folder of one test: base is removed at teardown. */
struct tmp {
	char base[512];
	char dir[600];	/* the journal: base/j */
	char work[600]; /* a second folder: base/w */
};

/* One record as written, to compare replay with. */
struct item {
	uint8_t	       type;
	uint64_t       seq;
	size_t	       len;
	unsigned char *data;
};

struct items {
	struct item *v;
	size_t	     n;
	size_t	     cap;
};

/* A segment file as this test's own decoder sees it. */
struct segscan {
	uint64_t  name_seq;
	uint64_t  size; /* of the file */
	size_t	  n;	/* whole records with a good CRC */
	uint64_t *off;	/* n + 1 entries: starts, then the end */
	uint64_t *seq;	/* n entries */
};

/* Pre-zeroing chunk of the journals the tests open (0: off). */
static size_t jopen_prezero;
/* Flags encode_group() sets on every record (JOURNAL_F_UNSYNCED or 0). */
static uint8_t group_flags;

/* ------------------------------------------------------------------ */
/* Small helpers. */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static uint32_t
le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t
le64(const unsigned char *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* crc32c_hw where the CPU has it (it would fault otherwise). */
static uint32_t
crc_hw(uint32_t crc, const void *buf, size_t len)
{
	if (!crc32c_hw_available())
		return crc32c_sw(crc, buf, len);
	return crc32c_hw(crc, buf, len);
}

/* Bit-at-a-time CRC-32C: the reference the fast versions must match. */
static uint32_t
crc32c_ref(uint32_t crc, const unsigned char *p, size_t len)
{
	int k;

	crc = ~crc;
	while (len-- > 0) {
		crc ^= *p++;
		for (k = 0; k < 8; k++)
			crc = (crc & 1) ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
	}
	return ~crc;
}

/*
 * unlink() and stat() of segment files fail on demand: the program is
 * linked with --wrap=unlink and --wrap=stat, so the journal's calls (and
 * the tests' own) come here first.
 */
static int	   fail_seg_unlink; /* errno for unlink of a segment, 0: none */
static int	   fail_seg_stat;   /* the same for stat */
static const char *fail_unlink_path; /* unlink of this one fails (EIO) */

int __real_unlink(const char *path);
int __real_stat(const char *restrict path, struct stat *restrict sb);
int __wrap_unlink(const char *path);
int __wrap_stat(const char *restrict path, struct stat *restrict sb);

static int
is_segment_path(const char *path)
{
	size_t n = strlen(path);

	return n > 4 && strcmp(path + n - 4, ".seg") == 0;
}

int
__wrap_unlink(const char *path)
{
	if (fail_seg_unlink != 0 && is_segment_path(path)) {
		errno = fail_seg_unlink;
		return -1;
	}
	if (fail_unlink_path != NULL && strcmp(path, fail_unlink_path) == 0) {
		errno = EIO;
		return -1;
	}
	return __real_unlink(path);
}

int
__wrap_stat(const char *restrict path, struct stat *restrict sb)
{
	if (fail_seg_stat != 0 && is_segment_path(path)) {
		errno = fail_seg_stat;
		return -1;
	}
	return __real_stat(path, sb);
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (flag == FTW_DP || flag == FTW_D)
		return rmdir(path);
	return unlink(path);
}

static void
rm_rf(const char *path)
{
	struct stat sb;

	if (lstat(path, &sb) == -1)
		return;
	assert_int_equal(nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

static int
setup(void **state)
{
	jopen_prezero = 0;
	group_flags = 0;
	const char *root = getenv("TESTS_TMPDIR");
	struct tmp *t;

	if (root == NULL || *root == '\0')
		root = "/tmp";
	if (strlen(root) > 400) {
		fprintf(stderr, "TESTS_TMPDIR is too long\n");
		return -1;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return -1;
	snprintf(t->base, sizeof(t->base), "%s/test_journal.XXXXXX", root);
	if (mkdtemp(t->base) == NULL) {
		fprintf(stderr, "mkdtemp %s: %s\n", t->base, strerror(errno));
		free(t);
		return -1;
	}
	snprintf(t->dir, sizeof(t->dir), "%s/j", t->base);
	snprintf(t->work, sizeof(t->work), "%s/w", t->base);
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct tmp *t = *state;

	rm_rf(t->base);
	free(t);
	return 0;
}

static void
seg_path(char *buf, size_t size, const char *dir, uint64_t seq)
{
	snprintf(buf, size, "%s/%020" PRIu64 ".seg", dir, seq);
}

static int
file_exists(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0;
}

static uint64_t
file_size(const char *path)
{
	struct stat sb;

	assert_int_equal(stat(path, &sb), 0);
	return (uint64_t)sb.st_size;
}

/* The whole file, malloc'd (at least one byte so an empty file works). */
static unsigned char *
read_all(const char *path, size_t *size)
{
	unsigned char *buf;
	struct stat    sb;
	ssize_t	       n;
	size_t	       got = 0;
	int	       fd;

	fd = open(path, O_RDONLY);
	assert_true(fd != -1);
	assert_int_equal(fstat(fd, &sb), 0);
	buf = malloc((size_t)sb.st_size + 1);
	assert_non_null(buf);
	while (got < (size_t)sb.st_size) {
		n = read(fd, buf + got, (size_t)sb.st_size - got);
		assert_true(n > 0);
		got += (size_t)n;
	}
	close(fd);
	*size = got;
	return buf;
}

static void
write_all(const char *path, const void *buf, size_t size)
{
	const unsigned char *p = buf;
	ssize_t		     n;
	int		     fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd != -1);
	while (size > 0) {
		n = write(fd, p, size);
		assert_true(n > 0);
		p += n;
		size -= (size_t)n;
	}
	assert_int_equal(close(fd), 0);
}

static void
flip_bit(const char *path, uint64_t off, int bit)
{
	unsigned char c;
	int	      fd;

	fd = open(path, O_RDWR);
	assert_true(fd != -1);
	assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
	c ^= (unsigned char)(1u << bit);
	assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
	assert_int_equal(close(fd), 0);
}

static void
append_zeros(const char *path, size_t n)
{
	unsigned char *z;
	int	       fd;

	z = calloc(1, n);
	assert_non_null(z);
	fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd != -1);
	assert_int_equal(write(fd, z, n), (ssize_t)n);
	assert_int_equal(close(fd), 0);
	free(z);
}

static int
is_segment_name(const char *name)
{
	size_t i;

	if (strlen(name) != 24 || strcmp(name + 20, ".seg") != 0)
		return 0;
	for (i = 0; i < 20; i++) {
		if (name[i] < '0' || name[i] > '9')
			return 0;
	}
	return 1;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The files of a folder, sorted; *nseg counts those named like segments.
 * Other files are listed too, so that a test can see strays.
 */
static size_t
list_dir(const char *dir, char ***names, size_t *nseg)
{
	struct dirent *de;
	char	     **v = NULL;
	size_t	       n = 0;
	DIR	      *d;

	*nseg = 0;
	d = opendir(dir);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		/* LOCK is the journal's lock file, held while it is open. */
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0 ||
		    strcmp(de->d_name, "LOCK") == 0)
			continue;
		v = realloc(v, (n + 1) * sizeof(*v));
		assert_non_null(v);
		v[n] = strdup(de->d_name);
		assert_non_null(v[n]);
		if (is_segment_name(v[n]))
			(*nseg)++;
		n++;
	}
	closedir(d);
	if (n > 0)
		qsort(v, n, sizeof(*v), name_cmp);
	*names = v;
	return n;
}

static void
free_names(char **names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* How many files are in a folder, all of them segments. */
static size_t
count_segments(const char *dir)
{
	char **names;
	size_t n, nseg;

	n = list_dir(dir, &names, &nseg);
	free_names(names, n);
	assert_int_equal(n, nseg);
	return nseg;
}

/* Is the decimal v in s, not as part of a longer number? */
static int
contains_number(const char *s, uint64_t v)
{
	char	    num[32];
	const char *p = s;
	size_t	    n;

	snprintf(num, sizeof(num), "%" PRIu64, v);
	n = strlen(num);
	while ((p = strstr(p, num)) != NULL) {
		if ((p == s || p[-1] < '0' || p[-1] > '9') &&
		    (p[n] < '0' || p[n] > '9'))
			return 1;
		p++;
	}
	return 0;
}

/* The cause must name the segment file and the offset. */
static void
assert_cause_names(const char *cause, uint64_t name_seq, uint64_t off)
{
	char base[64];

	assert_non_null(cause);
	snprintf(base, sizeof(base), "%020" PRIu64 ".seg", name_seq);
	if (strstr(cause, base) == NULL || !contains_number(cause, off)) {
		print_error("cause \"%s\" should name %s and offset %" PRIu64
			    "\n",
		    cause, base, off);
		fail();
	}
}

/* cause must say what failed (call), on which file (its name), and why. */
static void
assert_cause_says(
    const char *cause, const char *call, const char *path, int err)
{
	const char *base = strrchr(path, '/');

	assert_non_null(cause);
	base = base != NULL ? base + 1 : path;
	if (strstr(cause, call) == NULL || strstr(cause, base) == NULL ||
	    strstr(cause, strerror(err)) == NULL) {
		print_error("cause \"%s\" should name %s, %s and \"%s\"\n",
		    cause, call, base, strerror(err));
		fail();
	}
}

/*
 * Decode a segment as journal.h describes it; the header must be sound and
 * every whole record's CRC right (checked with the bitwise reference).
 */
static void
seg_scan(const char *dir, uint64_t name_seq, struct segscan *ss)
{
	char	       path[PATH_MAX];
	unsigned char *buf;
	size_t	       size, off, len, cap = 16;

	seg_path(path, sizeof(path), dir, name_seq);
	buf = read_all(path, &size);
	memset(ss, 0, sizeof(*ss));
	ss->name_seq = name_seq;
	ss->size = size;
	assert_true(size >= JOURNAL_HEADER_SIZE);
	assert_memory_equal(buf, "STASHJNL", 8);
	assert_int_equal(le32(buf + 8), JOURNAL_FORMAT_VERSION);
	assert_int_equal(le32(buf + 12), JOURNAL_HEADER_SIZE);
	assert_int_equal(le64(buf + 16), name_seq);
	assert_int_equal(le32(buf + 32), crc32c_mask(crc32c_ref(0, buf, 32)));
	ss->off = malloc((cap + 1) * sizeof(*ss->off));
	ss->seq = malloc(cap * sizeof(*ss->seq));
	assert_true(ss->off != NULL && ss->seq != NULL);
	off = JOURNAL_HEADER_SIZE;
	while (size - off >= JOURNAL_RECORD_HEADER) {
		len = le32(buf + off + 4);
		if (size - off - JOURNAL_RECORD_HEADER < len)
			break;
		if (le32(buf + off) == 0 && len == 0)
			break; /* pre-zeroed space after the records */
		assert_int_equal(
		    le32(buf + off), crc32c_mask(crc32c_ref(0, buf + off + 4,
					 JOURNAL_RECORD_HEADER - 4 + len)));
		if (ss->n == cap) {
			cap *= 2;
			ss->off =
			    realloc(ss->off, (cap + 1) * sizeof(*ss->off));
			ss->seq = realloc(ss->seq, cap * sizeof(*ss->seq));
			assert_true(ss->off != NULL && ss->seq != NULL);
		}
		ss->off[ss->n] = off;
		ss->seq[ss->n] = le64(buf + off + 9);
		ss->n++;
		off += JOURNAL_RECORD_HEADER + len;
	}
	ss->off[ss->n] = off;
	free(buf);
}

static void
seg_free(struct segscan *ss)
{
	free(ss->off);
	free(ss->seq);
}

/* The first seq of every segment in dir, sorted; returns the count. */
static size_t
segment_seqs(const char *dir, uint64_t **seqs)
{
	char **names;
	size_t n, nseg, i;

	n = list_dir(dir, &names, &nseg);
	assert_int_equal(n, nseg);
	*seqs = calloc(n + 1, sizeof(**seqs));
	assert_non_null(*seqs);
	for (i = 0; i < n; i++)
		(*seqs)[i] = strtoull(names[i], NULL, 10);
	free_names(names, n);
	return n;
}

/* ------------------------------------------------------------------ */
/* Expected records. */

static void
items_add(
    struct items *l, uint8_t type, uint64_t seq, const void *data, size_t len)
{
	struct item *it;

	if (l->n == l->cap) {
		l->cap = l->cap == 0 ? 64 : l->cap * 2;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		assert_non_null(l->v);
	}
	it = &l->v[l->n++];
	it->type = type;
	it->seq = seq;
	it->len = len;
	it->data = malloc(len + 1);
	assert_non_null(it->data);
	if (len > 0)
		memcpy(it->data, data, len);
}

/* Keep the first n. */
static void
items_cut(struct items *l, size_t n)
{
	while (l->n > n)
		free(l->v[--l->n].data);
}

static void
items_free(struct items *l)
{
	items_cut(l, 0);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static uint8_t
type_of(uint64_t seq)
{
	/* The top two bits are the journal's flags, never a type. */
	return (uint8_t)((seq * 7 + 3) & 0x3f);
}

/* The default payload length of a record: varied, some empty. */
static size_t
len_of(uint64_t seq)
{
	return (size_t)((seq * 37 + 11) % 211);
}

static void
fill_payload(unsigned char *p, uint64_t seq, size_t len)
{
	uint64_t x = seq * 0x9e3779b97f4a7c15ull + 1;
	size_t	 i;

	for (i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (unsigned char)x;
	}
}

/* Encode records with these seqs and payload lengths into one buffer. */
static unsigned char *
encode_group(struct items *exp, const uint64_t *seqs, const size_t *lens,
    size_t n, size_t *total)
{
	unsigned char *buf, *payload;
	size_t	       i, off = 0;

	*total = 0;
	for (i = 0; i < n; i++)
		*total += journal_record_size(lens[i]);
	buf = malloc(*total + 1);
	assert_non_null(buf);
	for (i = 0; i < n; i++) {
		payload = malloc(lens[i] + 1);
		assert_non_null(payload);
		fill_payload(payload, seqs[i], lens[i]);
		/* The last record of a group carries the group-end flag. */
		journal_record_encode(buf + off,
		    type_of(seqs[i]) | group_flags |
			(i == n - 1 ? JOURNAL_GROUP_END : 0),
		    seqs[i], payload, lens[i]);
		if (exp != NULL)
			items_add(
			    exp, type_of(seqs[i]), seqs[i], payload, lens[i]);
		free(payload);
		off += journal_record_size(lens[i]);
	}
	return buf;
}

/* Write records with any seqs as one group and sync it; must succeed. */
static void
write_seqs(struct journal *j, struct items *exp, const uint64_t *seqs,
    const size_t *lens, size_t n)
{
	unsigned char *buf;
	char	      *cause = NULL;
	size_t	       total;
	int	       rc;

	buf = encode_group(exp, seqs, lens, n, &total);
	rc = journal_write(j, buf, total, seqs[0], seqs[n - 1], &cause);
	if (rc != 0)
		print_error("journal_write: %s\n", cause);
	assert_int_equal(rc, 0);
	free(buf);
	rc = journal_sync(j, &cause);
	if (rc != 0)
		print_error("journal_sync: %s\n", cause);
	assert_int_equal(rc, 0);
}

/* Write records first..first+n-1 with these lengths (NULL: len_of). */
static void
write_group(struct journal *j, struct items *exp, uint64_t first,
    const size_t *lens, size_t n)
{
	uint64_t *seqs;
	size_t	 *l, i;

	seqs = malloc(n * sizeof(*seqs));
	l = malloc(n * sizeof(*l));
	assert_true(seqs != NULL && l != NULL);
	for (i = 0; i < n; i++) {
		seqs[i] = first + i;
		l[i] = lens != NULL ? lens[i] : len_of(first + i);
	}
	write_seqs(j, exp, seqs, l, n);
	free(seqs);
	free(l);
}

/* Records first..first+n-1, all with payloads of len bytes. */
static void
write_uniform(
    struct journal *j, struct items *exp, uint64_t first, size_t n, size_t len)
{
	size_t *lens, i;

	lens = malloc(n * sizeof(*lens));
	assert_non_null(lens);
	for (i = 0; i < n; i++)
		lens[i] = len;
	write_group(j, exp, first, lens, n);
	free(lens);
}

/*
 * Records first..first+n-1 as one group of async writes, as the writer
 * writes them: flagged unsynced, and not synced.
 */
static void
write_unsynced(struct journal *j, struct items *exp, uint64_t first, size_t n)
{
	unsigned char *buf;
	uint64_t      *seqs;
	size_t	      *lens, i, total;
	char	      *cause = NULL;
	int	       rc;

	seqs = malloc(n * sizeof(*seqs));
	lens = malloc(n * sizeof(*lens));
	assert_true(seqs != NULL && lens != NULL);
	for (i = 0; i < n; i++) {
		seqs[i] = first + i;
		lens[i] = len_of(first + i);
	}
	group_flags = JOURNAL_F_UNSYNCED;
	buf = encode_group(exp, seqs, lens, n, &total);
	group_flags = 0;
	rc = journal_write(j, buf, total, first, first + n - 1, &cause);
	if (rc != 0)
		print_error("journal_write: %s\n", cause);
	assert_int_equal(rc, 0);
	free(buf);
	free(seqs);
	free(lens);
}

static struct journal *
jopen(const char *dir, size_t segment_max, size_t record_max, int salvage,
    struct journal_recovery *rec, char **cause)
{
	struct journal_options opts;

	memset(&opts, 0, sizeof(opts));
	opts.prezero = jopen_prezero;
	opts.dir = dir;
	opts.segment_max = segment_max;
	opts.record_max = record_max;
	opts.salvage = salvage;
	*cause = NULL;
	return journal_open(&opts, rec, cause);
}

/* Open; must succeed. */
static struct journal *
jopen_ok(const char *dir, size_t segment_max, size_t record_max, int salvage,
    struct journal_recovery *rec)
{
	struct journal *j;
	char	       *cause;

	j = jopen(dir, segment_max, record_max, salvage, rec, &cause);
	if (j == NULL)
		print_error("journal_open %s: %s\n", dir, cause);
	assert_non_null(j);
	assert_null(cause);
	return j;
}

/*
 * A journal in dir of segments of segment_max bytes, with records 1 up
 * to (not including) upto in groups of n, payloads of len bytes (0:
 * len_of), then closed. Its segments' name seqs go to *seqs (the caller
 * frees them); returns their count.
 */
static size_t
fill_segments(const char *dir, struct items *exp, size_t segment_max,
    uint64_t upto, size_t n, size_t len, uint64_t **seqs)
{
	struct journal_recovery rec;
	struct journal	       *j;
	uint64_t		seq;

	j = jopen_ok(dir, segment_max, RECORD_MAX, 0, &rec);
	for (seq = 1; seq < upto; seq += n) {
		if (len == 0)
			write_group(j, exp, seq, NULL, n);
		else
			write_uniform(j, exp, seq, n, len);
	}
	journal_close(j);
	return segment_seqs(dir, seqs);
}

/* Open; must fail, and *cause is returned for the caller to check. */
static char *
jopen_fail(const char *dir, size_t segment_max, size_t record_max)
{
	struct journal_recovery rec;
	struct journal	       *j;
	char		       *cause;

	j = jopen(dir, segment_max, record_max, 0, &rec, &cause);
	if (j != NULL) {
		journal_close(j);
		print_error("journal_open %s succeeded: %" PRIu64 " records, "
			    "%" PRIu64 " bytes cut\n",
		    dir, rec.records, rec.truncated_bytes);
		fail();
	}
	assert_non_null(cause);
	return cause;
}

struct collect {
	struct items got;
	uint64_t     fail_at;	 /* return -1 at this seq; 0: never */
	uint32_t     format[16]; /* the format each small seq came with */
};

static int
collect_cb(void *arg, uint8_t type, uint64_t seq, const void *payload,
    size_t len, uint32_t format)
{
	struct collect *c = arg;

	if (seq < sizeof(c->format) / sizeof(c->format[0]))
		c->format[seq] = format;

	if (c->fail_at != 0 && seq == c->fail_at)
		return -1;
	items_add(&c->got, type, seq, payload, len);
	return 0;
}

/* Replay after `after` must give exactly the expected records past it. */
static void
check_replay(struct journal *j, uint64_t after, const struct items *exp)
{
	struct collect	   c;
	const struct item *e, *g;
	char		  *cause = NULL;
	size_t		   i, k = 0;
	int		   rc;

	memset(&c, 0, sizeof(c));
	rc = journal_replay(j, after, collect_cb, &c, &cause);
	if (rc != 0)
		print_error("journal_replay: %s\n", cause);
	assert_int_equal(rc, 0);
	for (i = 0; i < exp->n; i++) {
		e = &exp->v[i];
		if (e->seq <= after)
			continue;
		if (k >= c.got.n) {
			print_error("replay after %" PRIu64 " stopped before "
				    "seq %" PRIu64 "\n",
			    after, e->seq);
			fail();
		}
		g = &c.got.v[k++];
		assert_int_equal(g->seq, e->seq);
		assert_int_equal(g->type, e->type);
		assert_int_equal(g->len, e->len);
		if (e->len > 0)
			assert_memory_equal(g->data, e->data, e->len);
	}
	assert_int_equal(c.got.n, k);
	items_free(&c.got);
}

/* The recovery summary must match the expected records. */
static void
check_recovery(const struct journal_recovery *rec, const struct items *exp)
{
	assert_int_equal(rec->records, exp->n);
	if (exp->n == 0) {
		assert_int_equal(rec->first_seq, 0);
		assert_int_equal(rec->last_seq, 0);
	} else {
		assert_int_equal(rec->first_seq, exp->v[0].seq);
		assert_int_equal(rec->last_seq, exp->v[exp->n - 1].seq);
	}
}

/* Close, reopen cleanly (nothing cut), and compare everything. */
static struct journal *
reopen_check(struct journal *j, const char *dir, size_t segment_max,
    const struct items *exp)
{
	struct journal_recovery rec;

	journal_close(j);
	j = jopen_ok(dir, segment_max, RECORD_MAX, 0, &rec);
	assert_int_equal(rec.truncated_bytes, 0);
	check_recovery(&rec, exp);
	check_replay(j, 0, exp);
	return j;
}

/* ------------------------------------------------------------------ */
/* CRC-32C. */

static void
test_crc32c_check_value(void **state)
{
	static const char check[] = "123456789";

	(void)state;
	assert_int_equal(
	    crc32c_ref(0, (const unsigned char *)check, 9), 0xe3069283u);
	assert_int_equal(crc32c_sw(0, check, 9), 0xe3069283u);
	assert_int_equal(crc32c_extend(0, check, 9), 0xe3069283u);
	if (crc32c_hw_available())
		assert_int_equal(crc32c_hw(0, check, 9), 0xe3069283u);
	else
		fprintf(stderr, "note: no SSE4.2, crc32c_hw not tested\n");
	/* The empty buffer leaves the CRC as it is. */
	assert_int_equal(crc32c_sw(0, check, 0), 0);
	assert_int_equal(crc32c_extend(0x12345678u, check, 0), 0x12345678u);
	/* 32 zero bytes: the RFC 3720 (iSCSI) test vector. */
	{
		unsigned char z[32], ff[32];

		memset(z, 0, sizeof(z));
		memset(ff, 0xff, sizeof(ff));
		assert_int_equal(crc32c_sw(0, z, sizeof(z)), 0x8a9136aau);
		assert_int_equal(crc32c_extend(0, z, sizeof(z)), 0x8a9136aau);
		assert_int_equal(crc32c_sw(0, ff, sizeof(ff)), 0x62a8ab43u);
		assert_int_equal(crc32c_extend(0, ff, sizeof(ff)), 0x62a8ab43u);
	}
}

static void
test_crc32c_sw_hw_agree(void **state)
{
	unsigned char *buf;
	size_t	       len, start, i;
	uint32_t       sw, hw;
	int	       have_hw = crc32c_hw_available();

	(void)state;
	buf = malloc(4096 + 16);
	assert_non_null(buf);
	for (i = 0; i < 4096 + 16; i++)
		buf[i] = (unsigned char)rng();
	for (len = 0; len <= 4096; len++) {
		/* Every length, each from a different (mis)alignment. */
		start = len % 8;
		sw = crc32c_sw(0, buf + start, len);
		hw = crc_hw(0, buf + start, len);
		if (sw != hw) {
			print_error("len %zu start %zu: sw %08x hw %08x\n", len,
			    start, sw, hw);
			fail();
		}
		assert_int_equal(crc32c_extend(0, buf + start, len), sw);
		/* The bitwise reference: all short lengths, then a few. */
		if (len <= 300 || len % 509 == 0)
			assert_int_equal(crc32c_ref(0, buf + start, len), sw);
	}
	/* Every start 0..15 at lengths around the 8-byte steps. */
	for (start = 0; start < 16; start++) {
		for (len = 0; len <= 40; len++) {
			sw = crc32c_sw(0, buf + start, len);
			assert_int_equal(crc32c_ref(0, buf + start, len), sw);
			assert_int_equal(crc_hw(0, buf + start, len), sw);
		}
		sw = crc32c_sw(0, buf + start, 4096);
		assert_int_equal(crc_hw(0, buf + start, 4096), sw);
		assert_int_equal(crc32c_ref(0, buf + start, 4096), sw);
	}
	if (!have_hw)
		fprintf(stderr, "note: no SSE4.2, crc32c_hw is crc32c_sw\n");
	free(buf);
}

static void
test_crc32c_extend_parts(void **state)
{
	unsigned char buf[1031];
	uint32_t      whole, a;
	size_t	      cut;

	(void)state;
	for (cut = 0; cut < sizeof(buf); cut++)
		buf[cut] = (unsigned char)rng();
	whole = crc32c_ref(0, buf, sizeof(buf));
	assert_int_equal(crc32c_extend(0, buf, sizeof(buf)), whole);
	for (cut = 0; cut <= sizeof(buf); cut++) {
		a = crc32c_extend(0, buf, cut);
		assert_int_equal(
		    crc32c_extend(a, buf + cut, sizeof(buf) - cut), whole);
		a = crc32c_sw(0, buf, cut);
		assert_int_equal(
		    crc32c_sw(a, buf + cut, sizeof(buf) - cut), whole);
		a = crc_hw(0, buf, cut);
		assert_int_equal(
		    crc_hw(a, buf + cut, sizeof(buf) - cut), whole);
	}
	/* Three parts, hardware and software mixed. */
	a = crc32c_sw(0, buf, 5);
	a = crc_hw(a, buf + 5, 500);
	a = crc32c_extend(a, buf + 505, sizeof(buf) - 505);
	assert_int_equal(a, whole);
}

static void
test_crc32c_mask(void **state)
{
	static const uint32_t edge[] = {0, 1, 0x7fffffffu, 0x80000000u,
	    0xffffffffu, 0xa282ead8u, 0xe3069283u};
	uint32_t	      crc;
	size_t		      i;

	(void)state;
	for (i = 0; i < sizeof(edge) / sizeof(edge[0]) + 10000; i++) {
		crc = i < sizeof(edge) / sizeof(edge[0]) ? edge[i]
							 : (uint32_t)rng();
		assert_int_equal(crc32c_unmask(crc32c_mask(crc)), crc);
		assert_int_equal(crc32c_mask(crc32c_unmask(crc)), crc);
		assert_int_equal(
		    crc32c_unmask(crc32c_unmask(crc32c_mask(crc32c_mask(crc)))),
		    crc);
	}
	/* The LevelDB mask: rotate right by 15, add the delta. */
	assert_int_equal(crc32c_mask(0), 0xa282ead8u);
	assert_int_equal(crc32c_mask(0xe3069283u),
	    ((0xe3069283u >> 15) | (0xe3069283u << 17)) + 0xa282ead8u);
	assert_true(crc32c_mask(0xe3069283u) != 0xe3069283u);
}

/* ------------------------------------------------------------------ */
/* The record format. */

static void
test_record_format(void **state)
{
	unsigned char payload[100], a[JOURNAL_RECORD_HEADER + 100];
	unsigned char b[JOURNAL_RECORD_HEADER + 100];
	unsigned char e[JOURNAL_RECORD_HEADER];
	uint64_t      seq = 0x0102030405060708ull;

	(void)state;
	assert_int_equal(journal_record_size(0), JOURNAL_RECORD_HEADER);
	assert_int_equal(journal_record_size(100), JOURNAL_RECORD_HEADER + 100);
	fill_payload(payload, 5, sizeof(payload));
	journal_record_encode(a, 0xab, seq, payload, sizeof(payload));
	/* u32 masked crc | u32 len | u8 type | u64 seq | payload, LE. */
	assert_int_equal(le32(a + 4), 100);
	assert_int_equal(a[8], 0xab);
	assert_int_equal(le64(a + 9), seq);
	assert_memory_equal(a + JOURNAL_RECORD_HEADER, payload, 100);
	assert_int_equal(le32(a),
	    crc32c_mask(crc32c_ref(0, a + 4, JOURNAL_RECORD_HEADER - 4 + 100)));
	/* Sealing a payload already in place gives the same bytes. */
	memcpy(b + JOURNAL_RECORD_HEADER, payload, sizeof(payload));
	journal_record_seal(b, 0xab, seq, sizeof(payload));
	assert_memory_equal(a, b, sizeof(a));
	/* An empty payload: NULL is allowed, only the header is written. */
	journal_record_encode(e, 0, 1, NULL, 0);
	assert_int_equal(le32(e + 4), 0);
	assert_int_equal(le64(e + 9), 1);
	assert_int_equal(le32(e), crc32c_mask(crc32c_ref(0, e + 4, 13)));
}

/* ------------------------------------------------------------------ */
/* Round trip. */

static void
test_empty_journal(void **state)
{
	struct tmp	       *t = *state;
	struct journal_recovery rec;
	struct journal_stats	st;
	struct items		none;
	struct journal	       *j;
	char		       *cause = NULL;
	struct stat		sb;

	memset(&none, 0, sizeof(none));
	/* The folder does not exist yet: open makes it. */
	assert_false(file_exists(t->dir));
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	assert_int_equal(stat(t->dir, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	check_recovery(&rec, &none);
	assert_int_equal(rec.segments, 0);
	assert_int_equal(rec.truncated_bytes, 0);
	check_replay(j, 0, &none);
	assert_int_equal(journal_sync(j, &cause), 0);
	assert_int_equal(journal_release(j, UINT64_MAX), 0);
	journal_get_stats(j, &st);
	assert_int_equal(st.segments, 0);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(count_segments(t->dir), 0);
	j = reopen_check(j, t->dir, BIG_SEGMENT, &none);
	journal_close(j);
	/* Files that are not segments are left alone. */
	{
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s/README", t->dir);
		write_all(path, "not a segment", 13);
		j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
		check_recovery(&rec, &none);
		journal_close(j);
		assert_true(file_exists(path));
	}
}

static void
test_round_trip(void **state)
{
	struct tmp	       *t = *state;
	struct journal_recovery rec;
	struct journal_stats	st;
	struct items		exp;
	struct journal	       *j;
	uint64_t		seq = 1, after;
	size_t			i, lens[8];

	memset(&exp, 0, sizeof(exp));
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	/* Groups of one to eight records, some empty, some large. */
	for (i = 0; i < 40; i++) {
		size_t n = 1 + i % 8, k;

		for (k = 0; k < n; k++)
			lens[k] = len_of(seq + k);
		if (i == 3)
			lens[0] = 0;
		if (i == 7)
			lens[n - 1] = RECORD_MAX; /* exactly the limit */
		if (i == 11)
			lens[0] = RECORD_MAX - 1;
		write_group(j, &exp, seq, lens, n);
		seq += n;
	}
	write_uniform(j, &exp, seq, 5, 0); /* all empty */
	seq += 5;
	assert_int_equal(exp.n, seq - 1);
	/* Before closing, the journal replays what it has. */
	check_replay(j, 0, &exp);
	journal_get_stats(j, &st);
	assert_int_equal(st.segments, 1);
	journal_close(j);

	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	check_recovery(&rec, &exp);
	assert_int_equal(rec.segments, 1);
	assert_int_equal(rec.truncated_bytes, 0);
	check_replay(j, 0, &exp);
	for (after = 1; after <= seq; after += 7)
		check_replay(j, after, &exp);
	check_replay(j, seq - 2, &exp);
	check_replay(j, seq - 1, &exp); /* nothing */
	check_replay(j, UINT64_MAX, &exp);
	/* Appending after a reopen continues the same log. */
	write_group(j, &exp, seq, NULL, 3);
	seq += 3;
	j = reopen_check(j, t->dir, BIG_SEGMENT, &exp);
	check_replay(j, seq - 2, &exp);
	journal_close(j);
	items_free(&exp);
}

static void
test_replay_callback_error(void **state)
{
	struct tmp	       *t = *state;
	struct journal_recovery rec;
	struct collect		c;
	struct items		exp;
	struct journal	       *j;
	char		       *cause = NULL;

	memset(&exp, 0, sizeof(exp));
	memset(&c, 0, sizeof(c));
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	write_group(j, &exp, 1, NULL, 10);
	c.fail_at = 4;
	assert_int_equal(journal_replay(j, 0, collect_cb, &c, &cause), -1);
	assert_non_null(cause);
	assert_true(contains_number(cause, 4));
	free(cause);
	/* The records before the failing one were delivered, in order. */
	assert_int_equal(c.got.n, 3);
	assert_int_equal(c.got.v[2].seq, 3);
	items_free(&c.got);
	/* The journal is unchanged: a full replay still works. */
	check_replay(j, 0, &exp);
	journal_close(j);
	items_free(&exp);
}

/*
 * A replay that fails in a callback must not change what the journal
 * believes a segment holds: journal_release relies on it.
 */
static void
test_replay_error_keeps_segments(void **state)
{
	struct tmp	       *t = *state;
	struct journal_recovery rec;
	struct segscan		s0;
	struct collect		c;
	struct items		exp;
	struct journal	       *j;
	uint64_t		seq = 1, *seqs, last0;
	char		       *cause = NULL;
	size_t			nseg, f0, f1 = 0, f2 = 0;
	int			rc0, rc1 = 0, n0, n1 = -1, n2 = -1;

	memset(&exp, 0, sizeof(exp));
	j = jopen_ok(t->dir, 1024, RECORD_MAX, 0, &rec);
	while (seq < 40) {
		write_uniform(j, &exp, seq, 2, 100);
		seq += 2;
	}
	nseg = segment_seqs(t->dir, &seqs);
	assert_true(nseg >= 3);
	seg_scan(t->dir, seqs[0], &s0);
	assert_true(s0.n >= 3);

	/*
	 * The applier fails at the first record, then at one in the middle.
	 * Results are kept and checked after cleaning up, so that a failure
	 * here leaks nothing under ASan or valgrind.
	 */
	memset(&c, 0, sizeof(c));
	c.fail_at = 1;
	rc0 = journal_replay(j, 0, collect_cb, &c, &cause);
	free(cause);
	cause = NULL;
	items_free(&c.got);
	/* Nothing is durable: nothing may be deleted. */
	n0 = journal_release(j, 0);
	f0 = count_segments(t->dir);

	if (n0 == 0) {
		memset(&c, 0, sizeof(c));
		c.fail_at = s0.seq[1];
		rc1 = journal_replay(j, 0, collect_cb, &c, &cause);
		free(cause);
		cause = NULL;
		items_free(&c.got);
		/* Only records before s0.seq[1] are durable: segment 0 stays.
		 */
		n1 = journal_release(j, s0.seq[0]);
		f1 = count_segments(t->dir);
		if (n1 == 0) {
			check_replay(j, 0, &exp);
			/* With its last record durable, it goes. */
			n2 = journal_release(j, s0.seq[s0.n - 1]);
			f2 = count_segments(t->dir);
		}
	}
	last0 = s0.seq[s0.n - 1];
	seg_free(&s0);
	free(seqs);
	journal_close(j);
	items_free(&exp);

	assert_int_equal(rc0, -1);
	if (n0 != 0)
		print_error("replay failed at seq 1, then journal_release(0) "
			    "deleted %d segment(s) holding seqs up to %" PRIu64
			    "\n",
		    n0, last0);
	assert_int_equal(n0, 0);
	assert_int_equal(f0, nseg);
	assert_int_equal(rc1, -1);
	assert_int_equal(n1, 0);
	assert_int_equal(f1, nseg);
	assert_int_equal(n2, 1);
	assert_int_equal(f2, nseg - 1);
}

/* ------------------------------------------------------------------ */
/* record_max. */

static void
test_record_max(void **state)
{
	struct tmp	       *t = *state;
	struct journal_recovery rec;
	struct segscan		ss;
	struct items		exp;
	struct journal	       *j;
	char			path[PATH_MAX], *cause;
	unsigned char	       *orig;
	size_t			size;

	memset(&exp, 0, sizeof(exp));
	seg_path(path, sizeof(path), t->dir, 1);
	/* Written with a limit of 4096: records of 100, 1000, 100. */
	j = jopen_ok(t->dir, BIG_SEGMENT, 4096, 0, &rec);
	write_uniform(j, &exp, 1, 3, 100);
	write_uniform(j, &exp, 4, 1, 1000);
	write_uniform(j, &exp, 5, 1, 100);
	journal_close(j);
	seg_scan(t->dir, 1, &ss);
	assert_int_equal(ss.n, 5);
	orig = read_all(path, &size);

	/* Exactly at the limit is fine. */
	j = jopen_ok(t->dir, BIG_SEGMENT, 1000, 0, &rec);
	check_recovery(&rec, &exp);
	journal_close(j);

	/* Reopened with 999: a bad record followed by a good one. */
	cause = jopen_fail(t->dir, BIG_SEGMENT, 999);
	assert_cause_names(cause, 1, ss.off[3]);
	free(cause);
	/* A refused open changes nothing on disk. */
	assert_int_equal(file_size(path), size);

	/*
	 * With the over-long record last, it is still whole and sound: an
	 * acknowledged write written under a larger limit. It is not cut as
	 * a torn tail; the open fails and asks for a larger record-max.
	 */
	assert_int_equal(truncate(path, (off_t)ss.off[4]), 0);
	cause = jopen_fail(t->dir, BIG_SEGMENT, 999);
	assert_cause_names(cause, 1, ss.off[3]);
	assert_non_null(strstr(cause, "record-max"));
	free(cause);
	assert_int_equal(file_size(path), ss.off[4]);
	/* The same record cut short is a torn tail: cut. */
	assert_int_equal(truncate(path, (off_t)ss.off[4] - 1), 0);
	j = jopen_ok(t->dir, BIG_SEGMENT, 999, 0, &rec);
	items_cut(&exp, 3);
	check_recovery(&rec, &exp);
	assert_int_equal(rec.truncated_bytes, ss.off[4] - 1 - ss.off[3]);
	assert_int_equal(file_size(path), ss.off[3]);
	check_replay(j, 0, &exp);
	journal_close(j);

	seg_free(&ss);
	free(orig);
	items_free(&exp);
}

/* ------------------------------------------------------------------ */
/* Torn tails. */

/* Make dst a copy of the segments read into bufs, the last cut to len. */
static void
copy_truncated(const char *dst, const uint64_t *seqs, size_t nseg,
    unsigned char *const *bufs, const size_t *sizes, size_t len)
{
	char   path[PATH_MAX];
	size_t i;

	rm_rf(dst);
	assert_int_equal(mkdir(dst, 0700), 0);
	for (i = 0; i < nseg; i++) {
		seg_path(path, sizeof(path), dst, seqs[i]);
		write_all(path, bufs[i], i == nseg - 1 ? len : sizes[i]);
	}
}

static void
test_truncate_every_byte(void **state)
{
	struct tmp	       *t = *state;
	struct journal_recovery rec;
	struct journal_stats	st;
	struct segscan		last;
	struct items		exp, want;
	struct journal	       *j;
	unsigned char	      **bufs;
	char			path[PATH_MAX];
	uint64_t		seq = 1, *seqs, before, len, cut;
	size_t			nseg, *sizes, i, whole, lens[3] = {33, 0, 41};

	memset(&exp, 0, sizeof(exp));
	/* Several segments, the last with a few records. */
	j = jopen_ok(t->dir, 2048, RECORD_MAX, 0, &rec);
	while (seq < 30) {
		write_group(j, &exp, seq, NULL, 3);
		seq += 3;
	}
	write_group(j, &exp, seq, lens, 3); /* 33, then 0 and 41 last */
	seq += 3;
	journal_close(j);

	nseg = segment_seqs(t->dir, &seqs);
	assert_true(nseg >= 2);
	seg_scan(t->dir, seqs[nseg - 1], &last);
	assert_true(last.n >= 3);
	assert_int_equal(last.seq[last.n - 1], seq - 1);
	bufs = calloc(nseg, sizeof(*bufs));
	sizes = calloc(nseg, sizeof(*sizes));
	assert_true(bufs != NULL && sizes != NULL);
	for (i = 0; i < nseg; i++) {
		seg_path(path, sizeof(path), t->dir, seqs[i]);
		bufs[i] = read_all(path, &sizes[i]);
	}
	before = exp.n - last.n; /* records in earlier segments */
	seg_path(path, sizeof(path), t->work, seqs[nseg - 1]);

	for (len = last.off[last.n - 2]; len < last.size; len++) {
		copy_truncated(t->work, seqs, nseg, bufs, sizes, (size_t)len);
		/* The records wholly present survive. */
		for (whole = 0; whole < last.n && last.off[whole + 1] <= len;
		     whole++)
			;
		cut = last.off[whole];
		memset(&want, 0, sizeof(want));
		for (i = 0; i < before + whole; i++)
			items_add(&want, exp.v[i].type, exp.v[i].seq,
			    exp.v[i].data, exp.v[i].len);

		j = jopen_ok(t->work, 2048, RECORD_MAX, 0, &rec);
		check_recovery(&rec, &want);
		assert_int_equal(rec.segments, nseg);
		assert_int_equal(rec.truncated_bytes, len - cut);
		journal_get_stats(j, &st);
		assert_int_equal(st.truncated_bytes, len - cut);
		assert_int_equal(file_size(path), cut);
		check_replay(j, 0, &want);

		/* The next record lands right after the survivors. */
		write_uniform(j, &want, want.v[want.n - 1].seq + 1, 1, 7);
		assert_int_equal(file_size(path), cut + journal_record_size(7));
		j = reopen_check(j, t->work, 2048, &want);
		journal_close(j);
		items_free(&want);
	}

	for (i = 0; i < nseg; i++)
		free(bufs[i]);
	free(bufs);
	free(sizes);
	free(seqs);
	seg_free(&last);
	items_free(&exp);
}

static void
test_zero_tail(void **state)
{
	struct tmp	       *t = *state;
	struct journal_recovery rec;
	struct items		exp;
	struct journal	       *j;
	char			path[PATH_MAX];
	uint64_t		size;

	memset(&exp, 0, sizeof(exp));
	seg_path(path, sizeof(path), t->dir, 1);
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	write_group(j, &exp, 1, NULL, 6);
	write_group(j, &exp, 7, NULL, 2);
	journal_close(j);
	size = file_size(path);

	/*
	 * Zeros after the last record are the clean end of the log (space
	 * pre-zeroed ahead of the writes): kept, not cut, nothing lost.
	 */
	append_zeros(path, 4096);
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	check_recovery(&rec, &exp);
	assert_int_equal(rec.truncated_bytes, 0);
	assert_int_equal(file_size(path), size + 4096);
	check_replay(j, 0, &exp);
	write_group(j, &exp, 9, NULL, 2);
	j = reopen_check(j, t->dir, BIG_SEGMENT, &exp);
	journal_close(j);

	/* A few zero bytes, less than a record header. */
	size = file_size(path);
	append_zeros(path, 5);
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	check_recovery(&rec, &exp);
	assert_int_equal(rec.truncated_bytes, 0);
	assert_int_equal(file_size(path), size + 5);
	journal_close(j);
	items_free(&exp);
}

/*
 * A damaged tail where every offset claims a long record: the search for
 * a sound record after the bad one must not cost a CRC over each claim
 * (2 MB of "01 00 08 00" took 20 s before). It is a torn tail, cut.
 */
static void
test_damaged_tail_is_fast(void **state)
{
	struct tmp	       *t = *state;
	struct journal_recovery rec;
	struct items		exp;
	struct journal	       *j;
	struct timespec		t0, t1;
	unsigned char	       *junk;
	char			path[PATH_MAX];
	uint64_t		size;
	size_t			i, n = 2 * 1024 * 1024;
	int			fd;

	memset(&exp, 0, sizeof(exp));
	seg_path(path, sizeof(path), t->dir, 1);
	j = jopen_ok(t->dir, BIG_SEGMENT, 1024 * 1024, 0, &rec);
	write_group(j, &exp, 1, NULL, 6);
	journal_close(j);
	size = file_size(path);
	junk = malloc(n);
	assert_non_null(junk);
	for (i = 0; i < n; i++)
		junk[i] = "\x01\x00\x08\x00"[i % 4];
	fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd != -1);
	assert_int_equal(write(fd, junk, n), (ssize_t)n);
	assert_int_equal(close(fd), 0);
	free(junk);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	j = jopen_ok(t->dir, BIG_SEGMENT, 1024 * 1024, 0, &rec);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	check_recovery(&rec, &exp);
	assert_int_equal(rec.truncated_bytes, n);
	assert_int_equal(file_size(path), size);
	assert_true(t1.tv_sec - t0.tv_sec < 3);
	journal_close(j);
	items_free(&exp);
}

/*
 * Pre-zeroing: segments grow by whole zeroed chunks ahead of the writes;
 * every record survives reopening, across chunk edges and rotations; a
 * record torn inside the zeroed space is cut, the zeros after it are not
 * corruption.
 */
static void
test_prezero(void **state)
{
	struct tmp	       *t = *state;
	struct journal_recovery rec;
	struct segscan		ss;
	struct items		exp;
	struct journal	       *j;
	char			path[PATH_MAX];
	uint64_t		seq = 1, size;
	int			i;

	memset(&exp, 0, sizeof(exp));
	jopen_prezero = 4096;
	j = jopen_ok(t->dir, 8192, RECORD_MAX, 0, &rec);
	for (i = 0; i < 60; i++) {
		write_group(j, &exp, seq, NULL, 7);
		seq += 7;
	}
	journal_close(j);
	assert_true(count_segments(t->dir) > 1);
	seg_path(path, sizeof(path), t->dir, 1);
	assert_int_equal(file_size(path) % 4096, 0);
	j = reopen_check(NULL, t->dir, 8192, &exp);
	/* More after a reopen lands after the records, not after zeros. */
	write_group(j, &exp, seq, NULL, 3);
	seq += 3;
	j = reopen_check(j, t->dir, 8192, &exp);
	journal_close(j);

	/* Damage the last record's last byte, as a torn write would. */
	{
		uint64_t     *seqs;
		size_t	      nseg = segment_seqs(t->dir, &seqs);
		unsigned char z = 0xff;
		int	      fd;

		seg_path(path, sizeof(path), t->dir, seqs[nseg - 1]);
		seg_scan(t->dir, seqs[nseg - 1], &ss);
		free(seqs);
		size = ss.off[ss.n - 1];
		assert_true((fd = open(path, O_WRONLY)) >= 0);
		assert_int_equal(
		    pwrite(fd, &z, 1, (off_t)(ss.off[ss.n] - 1)), 1);
		close(fd);
	}
	seg_free(&ss);
	j = jopen_ok(t->dir, 8192, RECORD_MAX, 0, &rec);
	items_cut(&exp, exp.n - 1);
	check_recovery(&rec, &exp);
	assert_int_equal(file_size(path), size);
	check_replay(j, 0, &exp);
	journal_close(j);
	jopen_prezero = 0;
	items_free(&exp);
}

/* ------------------------------------------------------------------ */
/* Flipped bits. */

/*
 * Bit positions to damage in a record of len payload bytes at off: at most
 * JOURNAL_RECORD_HEADER + 3 of them.
 */
static size_t
damage_points(uint64_t off, size_t len, uint64_t *where, int *bit)
{
	size_t n = 0, k;

	/* One bit in every header byte: crc, length, type, seq. */
	for (k = 0; k < JOURNAL_RECORD_HEADER; k++) {
		where[n] = off + k;
		bit[n++] = (int)(k % 8);
	}
	/* The high bit of the length: far over any limit. */
	where[n] = off + 7;
	bit[n++] = 7;
	if (len > 0) {
		where[n] = off + JOURNAL_RECORD_HEADER + len / 2;
		bit[n++] = 3;
		where[n] = off + JOURNAL_RECORD_HEADER + len - 1;
		bit[n++] = 0;
	}
	return n;
}

static void
test_flip_middle_last_segment(void **state)
{
	struct tmp	       *t = *state;
	struct journal_recovery rec;
	struct segscan		ss;
	struct items		exp;
	struct journal	       *j;
	char			path[PATH_MAX], *cause;
	unsigned char	       *orig, *now;
	uint64_t		where[32], bad;
	size_t			size, size2, npt, k, victim;
	int			bit[32];

	memset(&exp, 0, sizeof(exp));
	seg_path(path, sizeof(path), t->dir, 1);
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	write_group(j, &exp, 1, NULL, 4);
	write_uniform(j, &exp, 5, 3, 120);
	write_group(j, &exp, 8, NULL, 4);
	journal_close(j);
	seg_scan(t->dir, 1, &ss);
	assert_int_equal(ss.n, 11);
	orig = read_all(path, &size);

	victim = 5; /* seq 6, with five good records after */
	bad = ss.off[victim];
	npt = damage_points(bad, 120, where, bit);
	for (k = 0; k < npt; k++) {
		write_all(path, orig, size);
		flip_bit(path, where[k], bit[k]);
		cause = jopen_fail(t->dir, BIG_SEGMENT, RECORD_MAX);
		assert_cause_names(cause, 1, bad);
		free(cause);
		/* Refusing to start leaves the evidence as it is. */
		now = read_all(path, &size2);
		assert_int_equal(size2, size);
		assert_memory_not_equal(now, orig, size);
		free(now);
	}

	/* Salvage keeps exactly the records before the damaged one. */
	write_all(path, orig, size);
	flip_bit(path, bad + JOURNAL_RECORD_HEADER + 60, 5);
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 1, &rec);
	items_cut(&exp, victim);
	check_recovery(&rec, &exp);
	assert_int_equal(rec.truncated_bytes, size - bad);
	assert_int_equal(file_size(path), bad);
	check_replay(j, 0, &exp);
	/* And the log goes on from there, cleanly. */
	write_group(j, &exp, victim + 1, NULL, 2);
	j = reopen_check(j, t->dir, BIG_SEGMENT, &exp);
	journal_close(j);

	free(orig);
	seg_free(&ss);
	items_free(&exp);
}

static void
test_flip_middle_earlier_segment(void **state)
{
	struct tmp	       *t = *state;
	struct journal_recovery rec;
	struct segscan		s0, s1;
	struct items		exp;
	struct journal	       *j;
	char			path[PATH_MAX], *cause;
	unsigned char	       *orig;
	uint64_t	       *seqs, bad;
	size_t			size, nseg, victim, before, i;

	memset(&exp, 0, sizeof(exp));
	nseg = fill_segments(t->dir, &exp, 1024, 50, 2, 0, &seqs);
	assert_true(nseg >= 3);
	seg_scan(t->dir, seqs[0], &s0);
	seg_scan(t->dir, seqs[1], &s1);
	assert_true(s0.n >= 3);
	seg_path(path, sizeof(path), t->dir, seqs[0]);
	orig = read_all(path, &size);

	/*
	 * A record in the middle of the first segment, and its last record
	 * (good records follow only in later segments): both corruption.
	 */
	for (i = 0; i < 2; i++) {
		victim = i == 0 ? s0.n / 2 : s0.n - 1;
		bad = s0.off[victim];
		write_all(path, orig, size);
		flip_bit(path, bad + 11, 2); /* in the seq */
		cause = jopen_fail(t->dir, 1024, RECORD_MAX);
		assert_cause_names(cause, seqs[0], bad);
		free(cause);
		assert_int_equal(file_size(path), size);
		assert_int_equal(count_segments(t->dir), nseg);
	}

	/* Salvage: the good prefix stays, the later segments go. */
	victim = s0.n / 2;
	bad = s0.off[victim];
	write_all(path, orig, size);
	flip_bit(path, s0.off[victim + 1] - 1, 6); /* its last byte */
	j = jopen_ok(t->dir, 1024, RECORD_MAX, 1, &rec);
	before = victim;
	items_cut(&exp, before);
	check_recovery(&rec, &exp);
	assert_int_equal(rec.segments, 1);
	assert_int_equal(file_size(path), bad);
	assert_int_equal(count_segments(t->dir), 1);
	assert_true(file_exists(path));
	check_replay(j, 0, &exp);
	write_group(j, &exp, exp.v[exp.n - 1].seq + 1, NULL, 2);
	j = reopen_check(j, t->dir, 1024, &exp);
	journal_close(j);

	free(orig);
	free(seqs);
	seg_free(&s0);
	seg_free(&s1);
	items_free(&exp);
}

/*
 * Salvage stopped half way (here by an unlink that fails, as a crash
 * would stop it) must never leave records after the cut without the
 * segments between: the later segments go, the last first, before the
 * damaged one is cut. What is left gets the same verdict: refused
 * without salvage, and salvage then keeps the same prefix.
 */
static void
test_salvage_interrupted(void **state)
{
	struct tmp	       *t = *state;
	struct journal_recovery rec;
	struct segscan		s0;
	struct items		exp;
	struct journal	       *j;
	char			path[PATH_MAX], stuck[PATH_MAX], *cause;
	uint64_t	       *seqs, *left, bad;
	size_t			size, nseg, nleft, victim, i;

	memset(&exp, 0, sizeof(exp));
	nseg = fill_segments(t->dir, &exp, 1024, 80, 2, 0, &seqs);
	assert_true(nseg >= 4);
	seg_scan(t->dir, seqs[0], &s0);
	assert_true(s0.n >= 3);
	seg_path(path, sizeof(path), t->dir, seqs[0]);
	size = (size_t)file_size(path);
	victim = s0.n / 2;
	bad = s0.off[victim];
	flip_bit(path, s0.off[victim + 1] - 1, 6);

	/* The second segment after the damage cannot be removed. */
	seg_path(stuck, sizeof(stuck), t->dir, seqs[2]);
	fail_unlink_path = stuck;
	j = jopen(t->dir, 1024, RECORD_MAX, 1, &rec, &cause);
	fail_unlink_path = NULL;
	assert_null(j);
	assert_cause_says(cause, "unlink", stuck, EIO);
	free(cause);
	/* The ones after it went; it, the one before it and the cut did not. */
	nleft = segment_seqs(t->dir, &left);
	assert_int_equal(nleft, 3);
	for (i = 0; i < nleft; i++)
		assert_int_equal(left[i], seqs[i]);
	free(left);
	assert_int_equal(file_size(path), size);

	/* Without salvage: the same damage, refused, nothing touched. */
	cause = jopen_fail(t->dir, 1024, RECORD_MAX);
	assert_cause_names(cause, seqs[0], bad);
	free(cause);
	assert_int_equal(count_segments(t->dir), 3);
	assert_int_equal(file_size(path), size);

	/* Salvage, not stopped this time: the same prefix as ever. */
	j = jopen_ok(t->dir, 1024, RECORD_MAX, 1, &rec);
	items_cut(&exp, victim);
	check_recovery(&rec, &exp);
	assert_int_equal(rec.segments, 1);
	assert_int_equal(file_size(path), bad);
	assert_int_equal(count_segments(t->dir), 1);
	check_replay(j, 0, &exp);
	journal_close(j);

	free(seqs);
	seg_free(&s0);
	items_free(&exp);
}

static void
test_flip_last_record(void **state)
{
	struct tmp	       *t = *state;
	struct journal_recovery rec;
	struct segscan		ss;
	struct items		exp, want;
	struct journal	       *j;
	char			path[PATH_MAX];
	unsigned char	       *orig;
	uint64_t		where[32], bad;
	size_t			size, npt, k, i;
	int			bit[32];

	memset(&exp, 0, sizeof(exp));
	seg_path(path, sizeof(path), t->dir, 1);
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	write_group(j, &exp, 1, NULL, 5);
	write_uniform(j, &exp, 6, 1, 150);
	journal_close(j);
	seg_scan(t->dir, 1, &ss);
	assert_int_equal(ss.n, 6);
	orig = read_all(path, &size);
	bad = ss.off[5];

	npt = damage_points(bad, 150, where, bit);
	for (k = 0; k < npt; k++) {
		write_all(path, orig, size);
		flip_bit(path, where[k], bit[k]);
		j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
		memset(&want, 0, sizeof(want));
		for (i = 0; i < 5; i++)
			items_add(&want, exp.v[i].type, exp.v[i].seq,
			    exp.v[i].data, exp.v[i].len);
		check_recovery(&rec, &want);
		assert_int_equal(rec.truncated_bytes, size - bad);
		assert_int_equal(file_size(path), bad);
		check_replay(j, 0, &want);
		journal_close(j);
		items_free(&want);
	}
	free(orig);
	seg_free(&ss);
	items_free(&exp);
}

/* ------------------------------------------------------------------ */
/* Unsynced groups: async writes left to the timed sync. */

/* Zero [off, off+len) of a file: a write the disk never made. */
static void
zero_range(const char *path, uint64_t off, size_t len)
{
	unsigned char *z;
	int	       fd;

	z = calloc(1, len);
	assert_non_null(z);
	fd = open(path, O_RDWR);
	assert_true(fd != -1);
	assert_int_equal(pwrite(fd, z, len, (off_t)off), (ssize_t)len);
	assert_int_equal(close(fd), 0);
	free(z);
}

/* The first n expected records, copied. */
static void
items_prefix(struct items *dst, const struct items *src, size_t n)
{
	size_t i;

	memset(dst, 0, sizeof(*dst));
	for (i = 0; i < n; i++)
		items_add(dst, src->v[i].type, src->v[i].seq, src->v[i].data,
		    src->v[i].len);
}

/*
 * Two synced groups, then six unsynced groups of two records (seqs 8 to
 * 19). A power cut may lose any unsynced write and keep later ones: a
 * record of the unsynced tail damaged (a bit flipped anywhere in it, or
 * zeros where it was) must open, cut at that record, keeping every record
 * before it, and the log goes on from there. Without the flag's rule
 * this was "corrupt": good groups follow the damage.
 */
static void
test_unsynced_tail_lost(void **state)
{
	struct tmp	       *t = *state;
	struct journal_recovery rec;
	struct segscan		ss;
	struct items		exp, want;
	struct journal	       *j;
	char			path[PATH_MAX];
	unsigned char	       *orig;
	uint64_t		where[32], bad;
	size_t			size, npt, k, v, victim = 0, len;
	int			bit[32];
	/* The first unsynced record, the first of a middle group, a second. */
	static const size_t victims[] = {7, 11, 14};

	memset(&exp, 0, sizeof(exp));
	seg_path(path, sizeof(path), t->dir, 1);
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	write_group(j, &exp, 1, NULL, 4);
	write_group(j, &exp, 5, NULL, 3);
	for (k = 0; k < 6; k++)
		write_unsynced(j, &exp, 8 + 2 * k, 2);
	journal_close(j);
	seg_scan(t->dir, 1, &ss);
	assert_int_equal(ss.n, 19);
	orig = read_all(path, &size);

	for (v = 0; v < sizeof(victims) / sizeof(victims[0]); v++) {
		victim = victims[v];
		bad = ss.off[victim];
		len = (size_t)(ss.off[victim + 1] - bad);
		npt =
		    damage_points(bad, len - JOURNAL_RECORD_HEADER, where, bit);
		items_prefix(&want, &exp, victim);
		for (k = 0; k <= npt; k++) {
			write_all(path, orig, size);
			if (k < npt)
				flip_bit(path, where[k], bit[k]);
			else
				zero_range(path, bad, len);
			j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
			check_recovery(&rec, &want);
			assert_int_equal(rec.truncated_bytes, size - bad);
			assert_int_equal(file_size(path), bad);
			check_replay(j, 0, &want);
			journal_close(j);
		}
		items_free(&want);
	}

	/* After the last cut the log goes on, and opens cleanly. */
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	items_cut(&exp, victim);
	write_group(j, &exp, victim + 1, NULL, 2);
	write_unsynced(j, &exp, victim + 3, 2);
	j = reopen_check(j, t->dir, BIG_SEGMENT, &exp);
	journal_close(j);

	free(orig);
	seg_free(&ss);
	items_free(&exp);
}

/* Damage the record of seq victim_seq in segment 1; open must refuse. */
static void
refused_at(struct tmp *t, uint64_t victim_seq, int zero)
{
	struct segscan ss;
	char	       path[PATH_MAX], *cause;
	unsigned char *orig, *now;
	uint64_t       bad;
	size_t	       size, size2, i;

	seg_path(path, sizeof(path), t->dir, 1);
	seg_scan(t->dir, 1, &ss);
	for (i = 0; i < ss.n && ss.seq[i] != victim_seq; i++)
		;
	assert_true(i < ss.n);
	bad = ss.off[i];
	orig = read_all(path, &size);
	if (zero)
		zero_range(path, bad, (size_t)(ss.off[i + 1] - bad));
	else
		flip_bit(path, bad + JOURNAL_RECORD_HEADER - 1, 4);
	cause = jopen_fail(t->dir, BIG_SEGMENT, RECORD_MAX);
	assert_cause_names(cause, 1, bad);
	assert_non_null(strstr(cause, "corrupt"));
	free(cause);
	/* Refusing to start leaves the evidence as it is. */
	now = read_all(path, &size2);
	assert_int_equal(size2, size);
	free(now);
	write_all(path, orig, size);
	free(orig);
	seg_free(&ss);
}

/*
 * A damaged record with a record without the unsynced flag anywhere
 * after it: that record's group was synced before it was acknowledged,
 * and the sync covered the damaged one. Corruption, as before, and
 * salvage keeps the good prefix. So is damage inside a synced group
 * followed only by unsynced groups: that group was synced before any of
 * them was written.
 */
static void
test_unsynced_then_synced_refused(void **state)
{
	struct tmp	       *t = *state;
	struct journal_recovery rec;
	struct items		exp;
	struct journal	       *j;
	char			path[PATH_MAX];
	int			zero;

	memset(&exp, 0, sizeof(exp));
	seg_path(path, sizeof(path), t->dir, 1);
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	write_group(j, &exp, 1, NULL, 4);
	write_unsynced(j, &exp, 5, 2);
	write_unsynced(j, &exp, 7, 2);
	write_group(j, &exp, 9, NULL, 2); /* synced: covers 1..10 */
	write_unsynced(j, &exp, 11, 2);
	journal_close(j);

	for (zero = 0; zero < 2; zero++) {
		refused_at(t, 5, zero);
		refused_at(t, 8, zero);
		refused_at(t, 2, zero);
	}

	/* Salvage keeps the records before the damage. */
	refused_at(t, 7, 1);
	{
		struct segscan ss;

		seg_scan(t->dir, 1, &ss);
		zero_range(path, ss.off[6], (size_t)(ss.off[7] - ss.off[6]));
		j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 1, &rec);
		assert_int_equal(file_size(path), ss.off[6]);
		seg_free(&ss);
	}
	items_cut(&exp, 6);
	check_recovery(&rec, &exp);
	check_replay(j, 0, &exp);
	journal_close(j);

	/* Inside a synced group, only unsynced groups after it. */
	rm_rf(t->dir);
	items_free(&exp);
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	write_group(j, &exp, 1, NULL, 4);
	write_unsynced(j, &exp, 5, 2);
	write_unsynced(j, &exp, 7, 2);
	journal_close(j);
	for (zero = 0; zero < 2; zero++) {
		refused_at(t, 3, zero);
		refused_at(t, 4, zero);
	}
	/* Put right, it opens with everything. */
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	assert_int_equal(rec.truncated_bytes, 0);
	check_recovery(&rec, &exp);
	check_replay(j, 0, &exp);
	journal_close(j);
	items_free(&exp);
}

/*
 * Unsynced groups over several segments. A record damaged in one of them
 * with only unsynced records after it: that segment is cut there and the
 * later ones go (seqs stay contiguous). With a synced record in the last
 * segment, the same damage is corruption and nothing is touched.
 */
static void
test_unsynced_later_segments(void **state)
{
	struct tmp	       *t = *state;
	struct journal_recovery rec;
	struct segscan		ss;
	struct items		exp, want;
	struct journal	       *j;
	char			path[PATH_MAX], *cause;
	unsigned char	      **bufs;
	uint64_t	       *seqs, seq = 1, bad, cut;
	size_t		       *sizes, nseg, i, vs, victim, keep;

	memset(&exp, 0, sizeof(exp));
	j = jopen_ok(t->dir, 1024, RECORD_MAX, 0, &rec);
	for (; seq < 7; seq += 2)
		write_group(j, &exp, seq, NULL, 2);
	for (; seq < 61; seq += 2)
		write_unsynced(j, &exp, seq, 2);
	journal_close(j);
	nseg = segment_seqs(t->dir, &seqs);
	assert_true(nseg >= 5);
	bufs = calloc(nseg, sizeof(*bufs));
	sizes = calloc(nseg, sizeof(*sizes));
	assert_true(bufs != NULL && sizes != NULL);
	for (i = 0; i < nseg; i++) {
		seg_path(path, sizeof(path), t->dir, seqs[i]);
		bufs[i] = read_all(path, &sizes[i]);
	}
	/* The second segment whose records are all unsynced. */
	for (vs = 0; vs < nseg && seqs[vs] < 7; vs++)
		;
	vs++;
	assert_true(vs + 2 < nseg);
	seg_scan(t->dir, seqs[vs], &ss);
	assert_true(ss.n >= 2);
	victim = ss.n / 2;
	bad = ss.off[victim];
	seg_path(path, sizeof(path), t->dir, seqs[vs]);

	/* A synced record at the very end: refused, nothing touched. */
	j = jopen_ok(t->dir, 1024, RECORD_MAX, 0, &rec);
	write_group(j, NULL, seq, NULL, 1);
	journal_close(j);
	flip_bit(path, bad + JOURNAL_RECORD_HEADER, 1);
	cause = jopen_fail(t->dir, 1024, RECORD_MAX);
	assert_cause_names(cause, seqs[vs], bad);
	free(cause);
	assert_int_equal(count_segments(t->dir), nseg);
	assert_int_equal(file_size(path), sizes[vs]);

	/* Only unsynced records after it: cut, later segments gone. */
	rm_rf(t->dir);
	assert_int_equal(mkdir(t->dir, 0700), 0);
	for (i = 0; i < nseg; i++) {
		seg_path(path, sizeof(path), t->dir, seqs[i]);
		write_all(path, bufs[i], sizes[i]);
	}
	seg_path(path, sizeof(path), t->dir, seqs[vs]);
	zero_range(path, bad, (size_t)(ss.off[victim + 1] - bad));
	j = jopen_ok(t->dir, 1024, RECORD_MAX, 0, &rec);
	for (keep = 0; keep < exp.n && exp.v[keep].seq < ss.seq[victim]; keep++)
		;
	items_prefix(&want, &exp, keep);
	check_recovery(&rec, &want);
	check_replay(j, 0, &want);
	assert_int_equal(rec.segments, vs + 1);
	assert_int_equal(count_segments(t->dir), vs + 1);
	assert_int_equal(file_size(path), bad);
	cut = sizes[vs] - bad;
	for (i = vs + 1; i < nseg; i++) {
		seg_path(path, sizeof(path), t->dir, seqs[i]);
		assert_false(file_exists(path));
		cut += sizes[i];
	}
	assert_int_equal(rec.truncated_bytes, cut);
	/* And the log goes on from there. */
	write_group(j, &want, ss.seq[victim], NULL, 3);
	j = reopen_check(j, t->dir, 1024, &want);
	journal_close(j);

	for (i = 0; i < nseg; i++)
		free(bufs[i]);
	free(bufs);
	free(sizes);
	free(seqs);
	seg_free(&ss);
	items_free(&want);
	items_free(&exp);
}

/* Rewrite a segment's header as format version, its CRC right. */
static void
set_format(const char *path, uint32_t version)
{
	unsigned char *buf;
	size_t	       size;
	uint32_t       crc;
	int	       k;

	buf = read_all(path, &size);
	assert_true(size >= JOURNAL_HEADER_SIZE);
	for (k = 0; k < 4; k++)
		buf[8 + k] = (unsigned char)(version >> (8 * k));
	crc = crc32c_mask(crc32c_ref(0, buf, 32));
	for (k = 0; k < 4; k++)
		buf[32 + k] = (unsigned char)(crc >> (8 * k));
	write_all(path, buf, size);
	free(buf);
}

/*
 * At path, a segment of only the header of segment file image (its
 * format kept), renamed to start at first (below 256).
 */
static void
write_header_only(const char *path, const unsigned char *image, uint64_t first)
{
	unsigned char hdr[JOURNAL_HEADER_SIZE];
	uint32_t      crc;
	int	      k;

	memcpy(hdr, image, JOURNAL_HEADER_SIZE);
	hdr[16] = (unsigned char)first; /* first seq, little-endian */
	crc = crc32c_mask(crc32c_ref(0, hdr, 32));
	for (k = 0; k < 4; k++)
		hdr[32 + k] = (unsigned char)(crc >> (8 * k));
	write_all(path, hdr, sizeof(hdr));
}

/*
 * Segments of format 1 (before the unsynced flag) are still read; they
 * are never written to: the next write starts a segment of the current
 * format. A format 1 segment holding no record goes at open (the next
 * segment may need its name). In format 1 the unsynced bit makes a
 * record invalid: a whole record with it is corruption.
 */
static void
test_format_1_segment(void **state)
{
	struct tmp	       *t = *state;
	struct journal_recovery rec;
	struct segscan		ss;
	struct items		exp;
	struct collect		c;
	struct journal	       *j;
	char			path[PATH_MAX], path8[PATH_MAX], *cause;
	unsigned char	       *v1, *now;
	size_t			size, size2;
	uint64_t		seq;

	memset(&exp, 0, sizeof(exp));
	seg_path(path, sizeof(path), t->dir, 1);
	seg_path(path8, sizeof(path8), t->dir, 8);
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	write_group(j, &exp, 1, NULL, 4);
	write_group(j, &exp, 5, NULL, 3);
	journal_close(j);
	set_format(path, 1);
	v1 = read_all(path, &size);

	/* A header-only format 1 segment after it, named by the next seq. */
	write_header_only(path8, v1, 8);

	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	assert_int_equal(rec.segments, 1);
	assert_false(file_exists(path8));
	check_recovery(&rec, &exp);
	check_replay(j, 0, &exp);
	write_group(j, &exp, 8, NULL, 2);
	write_unsynced(j, &exp, 10, 2);
	journal_close(j);
	/* The old segment is as it was; the new one is of this format. */
	now = read_all(path, &size2);
	assert_int_equal(size2, size);
	assert_memory_equal(now, v1, size);
	free(now);
	assert_int_equal(count_segments(t->dir), 2);
	seg_scan(t->dir, 8, &ss);
	assert_int_equal(ss.n, 4);
	seg_free(&ss);
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	assert_int_equal(rec.truncated_bytes, 0);
	check_recovery(&rec, &exp);
	check_replay(j, 0, &exp);
	/* Each record comes with its segment's format. */
	memset(&c, 0, sizeof(c));
	assert_int_equal(journal_replay(j, 0, collect_cb, &c, &cause), 0);
	for (seq = 1; seq <= 11; seq++)
		assert_int_equal(
		    c.format[seq], seq < 8 ? 1 : JOURNAL_FORMAT_VERSION);
	items_free(&c.got);
	journal_close(j);
	free(v1);

	/*
	 * A format 1 last segment named above its own records (named 2,
	 * holding seq 1: only a damaged or hand-made journal has that): the
	 * next write, seq 2, must not need its name.
	 */
	rm_rf(t->dir);
	items_free(&exp);
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	write_group(j, &exp, 1, NULL, 1);
	journal_close(j);
	v1 = read_all(path, &size);
	assert_int_equal(unlink(path), 0);
	v1[16] = 2; /* first seq 2, little-endian */
	seg_path(path8, sizeof(path8), t->dir, 2);
	write_all(path8, v1, size);
	free(v1);
	set_format(path8, 1);
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	check_recovery(&rec, &exp);
	write_group(j, &exp, 2, NULL, 2);
	j = reopen_check(j, t->dir, BIG_SEGMENT, &exp);
	journal_close(j);
	assert_int_equal(count_segments(t->dir), 2);

	/*
	 * The same at the very end of the names: the last segment is named
	 * 2^64-1 and the next write's seq has that name. No name is left
	 * after it: the write fails, saying so, and creates nothing.
	 */
	rm_rf(t->dir);
	items_free(&exp);
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	write_group(j, &exp, UINT64_MAX - 1, NULL, 1);
	journal_close(j);
	seg_path(path8, sizeof(path8), t->dir, UINT64_MAX - 1);
	v1 = read_all(path8, &size);
	assert_int_equal(unlink(path8), 0);
	v1[16] = 0xff; /* first seq 2^64-1, little-endian */
	seg_path(path8, sizeof(path8), t->dir, UINT64_MAX);
	write_all(path8, v1, size);
	set_format(path8, 1);
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	check_recovery(&rec, &exp);
	{
		unsigned char *buf;
		uint64_t       last = UINT64_MAX;
		size_t	       total, one = 8;

		buf = encode_group(&exp, &last, &one, 1, &total);
		cause = NULL;
		assert_int_equal(journal_write(j, buf, total, UINT64_MAX,
				     UINT64_MAX, &cause),
		    -1);
		free(buf);
	}
	assert_non_null(cause);
	assert_non_null(strstr(cause, "no segment name is left"));
	free(cause);
	journal_close(j);
	assert_int_equal(count_segments(t->dir), 1);
	now = read_all(path8, &size2);
	assert_int_equal(size2, size);
	free(now);
	free(v1);

	/* Format 1 with a record flagged unsynced: corruption. */
	rm_rf(t->dir);
	items_free(&exp);
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	write_group(j, &exp, 1, NULL, 4);
	write_unsynced(j, &exp, 5, 2);
	journal_close(j);
	seg_scan(t->dir, 1, &ss);
	set_format(path, 1);
	cause = jopen_fail(t->dir, BIG_SEGMENT, RECORD_MAX);
	assert_cause_names(cause, 1, ss.off[4]);
	free(cause);
	seg_free(&ss);
	items_free(&exp);
}

/*
 * While *fail is err (the call, stat or unlink, fails for segments), open
 * must fail on the segment at path, say so, and leave the file.
 */
static void
open_fails_removing(
    const char *dir, int *fail, int err, const char *call, const char *path)
{
	char *cause;

	*fail = err;
	cause = jopen_fail(dir, BIG_SEGMENT, RECORD_MAX);
	*fail = 0;
	assert_cause_says(cause, call, path, err);
	free(cause);
	assert_true(file_exists(path));
}

/*
 * Segments the journal removes (an empty one of an older format and a torn
 * header at open, wholly applied ones later) may fail to go: open then
 * fails naming the file and the error, release keeps the segment for the
 * next call, and both go on once the file can be removed.
 */
static void
test_remove_failures(void **state)
{
	struct tmp	       *t = *state;
	struct journal_recovery rec;
	struct journal_stats	st;
	struct items		exp;
	struct journal	       *j;
	char	       path[PATH_MAX], path8[PATH_MAX], path10[PATH_MAX];
	unsigned char *v1;
	size_t	       size;

	memset(&exp, 0, sizeof(exp));
	seg_path(path, sizeof(path), t->dir, 1);
	seg_path(path8, sizeof(path8), t->dir, 8);
	seg_path(path10, sizeof(path10), t->dir, 10);
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	write_group(j, &exp, 1, NULL, 4);
	write_group(j, &exp, 5, NULL, 3);
	journal_close(j);
	set_format(path, 1);
	v1 = read_all(path, &size);
	write_header_only(path8, v1, 8);
	free(v1);

	/* Open removes the empty format 1 segment: stat, then unlink. */
	open_fails_removing(t->dir, &fail_seg_stat, EACCES, "stat", path8);
	open_fails_removing(t->dir, &fail_seg_unlink, EPERM, "unlink", path8);
	assert_true(file_exists(path));
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	assert_false(file_exists(path8));
	check_recovery(&rec, &exp);
	check_replay(j, 0, &exp);

	/* The next write starts segment 8; segment 1 is then applied. */
	write_group(j, &exp, 8, NULL, 2);
	fail_seg_unlink = EIO;
	assert_int_equal(journal_release(j, 7), 0);
	fail_seg_unlink = 0;
	assert_true(file_exists(path));
	journal_get_stats(j, &st);
	assert_int_equal(st.segments, 2);
	assert_int_equal(st.segments_deleted, 0);
	check_replay(j, 0, &exp);
	assert_int_equal(journal_release(j, 7), 1);
	assert_false(file_exists(path));
	journal_get_stats(j, &st);
	assert_int_equal(st.segments, 1);
	assert_int_equal(st.segments_deleted, 1);
	check_replay(j, 7, &exp);
	journal_close(j);

	/* A torn header at the end (a crash while segment 10 was made). */
	v1 = read_all(path8, &size);
	write_all(path10, v1, 10);
	free(v1);
	open_fails_removing(t->dir, &fail_seg_unlink, ENOENT, "unlink", path10);
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	assert_false(file_exists(path10));
	assert_int_equal(rec.truncated_bytes, 10);
	check_replay(j, 7, &exp);
	journal_close(j);
	items_free(&exp);
}

/* ------------------------------------------------------------------ */
/* Rotation and deletion. */

static void
test_rotation(void **state)
{
	struct tmp	       *t = *state;
	struct journal_recovery rec;
	struct journal_stats	st;
	struct segscan		ss;
	struct items		exp;
	struct journal	       *j;
	uint64_t		seq = 1, *seqs, bytes, big_first;
	size_t			nseg, nseg2, i, n, lens[3] = {2000, 2000, 2000};

	memset(&exp, 0, sizeof(exp));
	j = jopen_ok(t->dir, 4096, RECORD_MAX, 0, &rec);
	for (i = 0; i < 60; i++) {
		n = 1 + i % 5;
		write_group(j, &exp, seq, NULL, n);
		seq += n;
	}
	nseg = segment_seqs(t->dir, &seqs);
	assert_true(nseg >= 4);
	journal_get_stats(j, &st);
	assert_int_equal(st.segments, nseg);
	/* Every segment: named by its first seq, sound, within the limit. */
	bytes = 0;
	for (i = 0; i < nseg; i++) {
		seg_scan(t->dir, seqs[i], &ss);
		assert_true(ss.n > 0);
		assert_int_equal(ss.seq[0], seqs[i]);
		assert_int_equal(ss.off[ss.n], ss.size);
		assert_true(ss.size <= 4096);
		if (i + 1 < nseg)
			assert_int_equal(ss.seq[ss.n - 1] + 1, seqs[i + 1]);
		bytes += ss.size;
		seg_free(&ss);
	}
	assert_int_equal(st.bytes, bytes);
	check_replay(j, 0, &exp);

	/* A group larger than segment_max goes whole into a new segment. */
	big_first = seq;
	write_group(j, &exp, seq, lens, 3);
	seq += 3;
	nseg2 = count_segments(t->dir);
	assert_int_equal(nseg2, nseg + 1);
	seg_scan(t->dir, big_first, &ss);
	assert_int_equal(ss.n, 3);
	assert_int_equal(ss.size, JOURNAL_HEADER_SIZE + 3 * (17 + 2000));
	seg_free(&ss);
	/* And the next group starts another. */
	write_group(j, &exp, seq, NULL, 2);
	seq += 2;
	assert_int_equal(count_segments(t->dir), nseg + 2);
	seg_scan(t->dir, big_first + 3, &ss);
	assert_int_equal(ss.n, 2);
	seg_free(&ss);

	j = reopen_check(j, t->dir, 4096, &exp);
	/* Replay from inside any segment. */
	for (i = 0; i < nseg; i++) {
		check_replay(j, seqs[i], &exp);
		check_replay(j, seqs[i] - 1, &exp);
	}
	journal_get_stats(j, &st);
	assert_int_equal(st.segments, nseg + 2);
	journal_close(j);

	/* Reopened with a smaller limit, writing goes on in a new file. */
	j = jopen_ok(t->dir, 1024, RECORD_MAX, 0, &rec);
	assert_int_equal(rec.segments, nseg + 2);
	write_uniform(j, &exp, seq, 3, 300);
	assert_int_equal(count_segments(t->dir), nseg + 3);
	j = reopen_check(j, t->dir, 1024, &exp);
	journal_close(j);
	free(seqs);
	items_free(&exp);
}

static void
test_release(void **state)
{
	struct tmp	       *t = *state;
	struct journal_recovery rec;
	struct journal_stats	st;
	struct segscan	       *ss;
	struct items		exp, left;
	struct journal	       *j;
	char			path[PATH_MAX];
	uint64_t		seq = 1, *seqs, bytes, deleted = 0;
	size_t			nseg, i, k, gone = 0;

	memset(&exp, 0, sizeof(exp));
	memset(&left, 0, sizeof(left));
	j = jopen_ok(t->dir, 1024, RECORD_MAX, 0, &rec);
	while (seq < 80) {
		write_uniform(j, &exp, seq, 3, 90);
		seq += 3;
	}
	nseg = segment_seqs(t->dir, &seqs);
	assert_true(nseg >= 5);
	ss = calloc(nseg, sizeof(*ss));
	assert_non_null(ss);
	for (i = 0; i < nseg; i++)
		seg_scan(t->dir, seqs[i], &ss[i]);

	/* Nothing durable, or not all of the first segment: nothing goes. */
	assert_int_equal(journal_release(j, 0), 0);
	assert_int_equal(journal_release(j, ss[0].seq[ss[0].n - 1] - 1), 0);
	assert_int_equal(count_segments(t->dir), nseg);
	journal_get_stats(j, &st);
	assert_int_equal(st.segments_deleted, 0);

	/* Exactly the first segment. */
	assert_int_equal(journal_release(j, ss[0].seq[ss[0].n - 1]), 1);
	gone = 1;
	deleted = 1;
	seg_path(path, sizeof(path), t->dir, seqs[0]);
	assert_false(file_exists(path));
	/* The next two, with durable_seq inside the fourth. */
	assert_int_equal(journal_release(j, ss[3].seq[1]), 2);
	gone = 3;
	deleted += 2;
	for (i = 0; i < nseg; i++) {
		seg_path(path, sizeof(path), t->dir, seqs[i]);
		assert_int_equal(file_exists(path), i >= gone);
	}
	journal_get_stats(j, &st);
	assert_int_equal(st.segments, nseg - gone);
	assert_int_equal(st.segments_deleted, deleted);
	for (bytes = 0, i = gone; i < nseg; i++)
		bytes += ss[i].size;
	assert_int_equal(st.bytes, bytes);

	/* Everything durable: all but the segment being written. */
	assert_int_equal(
	    journal_release(j, UINT64_MAX), (int)(nseg - 1 - gone));
	deleted += nseg - 1 - gone;
	gone = nseg - 1;
	assert_int_equal(count_segments(t->dir), 1);
	seg_path(path, sizeof(path), t->dir, seqs[nseg - 1]);
	assert_true(file_exists(path));
	journal_get_stats(j, &st);
	assert_int_equal(st.segments, 1);
	assert_int_equal(st.segments_deleted, deleted);
	assert_int_equal(st.bytes, ss[nseg - 1].size);
	assert_int_equal(journal_release(j, UINT64_MAX), 0);

	/* The remaining records replay, before and after a reopen. */
	for (i = 0; i < exp.n; i++) {
		if (exp.v[i].seq < seqs[gone])
			continue;
		items_add(&left, exp.v[i].type, exp.v[i].seq, exp.v[i].data,
		    exp.v[i].len);
	}
	assert_int_equal(left.n, ss[nseg - 1].n);
	check_replay(j, 0, &left);
	/* Writing goes on; the current segment fills and rotates. */
	for (k = 0; k < 6; k++) {
		write_uniform(j, &left, seq, 3, 90);
		seq += 3;
	}
	j = reopen_check(j, t->dir, 1024, &left);
	assert_true(count_segments(t->dir) >= 2);
	journal_close(j);

	for (i = 0; i < nseg; i++)
		seg_free(&ss[i]);
	free(ss);
	free(seqs);
	items_free(&exp);
	items_free(&left);
}

/* ------------------------------------------------------------------ */
/* Segment headers. */

static void
test_torn_header(void **state)
{
	struct tmp	       *t = *state;
	struct journal_recovery rec;
	struct journal_stats	st;
	struct items		exp;
	struct journal	       *j;
	char			path[PATH_MAX];
	unsigned char	       *hdr;
	uint64_t		seq = 21, *seqs; /* the next record's */
	size_t			size, nseg, nseg2;

	memset(&exp, 0, sizeof(exp));
	nseg = fill_segments(t->dir, &exp, 1024, seq, 2, 150, &seqs);
	assert_true(nseg >= 2);
	seg_path(path, sizeof(path), t->dir, seqs[0]);
	hdr = read_all(path, &size);

	/* A crash while creating the next segment: 10 bytes of a header. */
	seg_path(path, sizeof(path), t->dir, seq);
	write_all(path, hdr, 10);
	j = jopen_ok(t->dir, 1024, RECORD_MAX, 0, &rec);
	assert_false(file_exists(path));
	check_recovery(&rec, &exp);
	assert_int_equal(rec.segments, nseg);
	assert_int_equal(rec.truncated_bytes, 10);
	journal_get_stats(j, &st);
	assert_int_equal(st.segments, nseg);
	check_replay(j, 0, &exp);
	/* Rotation can make that segment again. */
	write_uniform(j, &exp, seq, 6, 150);
	seq += 6;
	j = reopen_check(j, t->dir, 1024, &exp);
	journal_close(j);
	nseg2 = count_segments(t->dir);

	/* An empty file, the same. */
	seg_path(path, sizeof(path), t->dir, seq);
	write_all(path, hdr, 0);
	j = jopen_ok(t->dir, 1024, RECORD_MAX, 0, &rec);
	assert_false(file_exists(path));
	check_recovery(&rec, &exp);
	assert_int_equal(rec.segments, nseg2);
	journal_close(j);

	/* The only segment torn: an empty journal. */
	rm_rf(t->dir);
	assert_int_equal(mkdir(t->dir, 0700), 0);
	seg_path(path, sizeof(path), t->dir, 1);
	write_all(path, hdr, 10);
	items_cut(&exp, 0);
	j = jopen_ok(t->dir, 1024, RECORD_MAX, 0, &rec);
	assert_false(file_exists(path));
	check_recovery(&rec, &exp);
	assert_int_equal(rec.segments, 0);
	write_group(j, &exp, 1, NULL, 3);
	j = reopen_check(j, t->dir, 1024, &exp);
	journal_close(j);

	free(hdr);
	free(seqs);
	items_free(&exp);
}

/* A segment of a header only (crash after rotating): kept and used. */
static void
test_header_only_segment(void **state)
{
	struct tmp	       *t = *state;
	struct journal_recovery rec;
	struct segscan		ss;
	struct items		exp;
	struct journal	       *j;
	char			path[PATH_MAX];
	unsigned char	       *buf;
	size_t			size;

	memset(&exp, 0, sizeof(exp));
	j = jopen_ok(t->dir, 1024, RECORD_MAX, 0, &rec);
	write_uniform(j, &exp, 1, 3, 300);
	write_uniform(j, &exp, 4, 3, 300); /* rotates: segment 4 */
	journal_close(j);
	assert_int_equal(count_segments(t->dir), 2);
	/* Cut segment 4 back to its header, as if its records never came. */
	seg_path(path, sizeof(path), t->dir, 4);
	assert_int_equal(truncate(path, JOURNAL_HEADER_SIZE), 0);
	items_cut(&exp, 3);
	j = jopen_ok(t->dir, 1024, RECORD_MAX, 0, &rec);
	check_recovery(&rec, &exp);
	assert_int_equal(rec.segments, 2);
	assert_int_equal(rec.truncated_bytes, 0);
	check_replay(j, 0, &exp);
	/* Records 4.. go into it, and no new file is made. */
	write_uniform(j, &exp, 4, 2, 300);
	assert_int_equal(count_segments(t->dir), 2);
	seg_scan(t->dir, 4, &ss);
	assert_int_equal(ss.n, 2);
	seg_free(&ss);
	j = reopen_check(j, t->dir, 1024, &exp);
	journal_close(j);
	buf = read_all(path, &size);
	assert_int_equal(size, JOURNAL_HEADER_SIZE + 2 * (17 + 300));
	free(buf);

	/*
	 * Again from a header-only segment, with a group larger than
	 * segment_max: it goes whole into that segment (no new file, which
	 * would also be named 4).
	 */
	assert_int_equal(truncate(path, JOURNAL_HEADER_SIZE), 0);
	items_cut(&exp, 3);
	j = jopen_ok(t->dir, 1024, RECORD_MAX, 0, &rec);
	write_uniform(j, &exp, 4, 4, 300);
	assert_int_equal(count_segments(t->dir), 2);
	assert_int_equal(file_size(path), JOURNAL_HEADER_SIZE + 4 * (17 + 300));
	j = reopen_check(j, t->dir, 1024, &exp);
	journal_close(j);
	items_free(&exp);
}

static void
test_bad_header_not_last(void **state)
{
	struct tmp	       *t = *state;
	struct journal_recovery rec;
	struct items		exp;
	struct journal	       *j;
	char			path[PATH_MAX], *cause;
	unsigned char	       *orig;
	uint64_t	       *seqs;
	size_t			size, nseg, k;
	static const size_t	where[] = {0, 7, 9, 13, 17, 25, 33};

	memset(&exp, 0, sizeof(exp));
	nseg = fill_segments(t->dir, &exp, 1024, 20, 2, 150, &seqs);
	assert_true(nseg >= 3);
	seg_path(path, sizeof(path), t->dir, seqs[1]);
	orig = read_all(path, &size);

	/* A bit flipped in any field of the header of a middle segment. */
	for (k = 0; k < sizeof(where) / sizeof(where[0]); k++) {
		write_all(path, orig, size);
		flip_bit(path, where[k], (int)k % 8);
		cause = jopen_fail(t->dir, 1024, RECORD_MAX);
		assert_non_null(strstr(cause, path + strlen(t->dir) + 1));
		free(cause);
		assert_int_equal(count_segments(t->dir), nseg);
	}
	/* A torn header (10 bytes) that is not the last segment. */
	write_all(path, orig, 10);
	cause = jopen_fail(t->dir, 1024, RECORD_MAX);
	assert_non_null(strstr(cause, path + strlen(t->dir) + 1));
	free(cause);
	assert_true(file_exists(path));
	/* A header whose first seq is not the file's name. */
	write_all(path, orig, size);
	{
		char other[PATH_MAX];

		seg_path(other, sizeof(other), t->dir, seqs[1] + 1);
		assert_int_equal(rename(path, other), 0);
		cause = jopen_fail(t->dir, 1024, RECORD_MAX);
		assert_non_null(strstr(cause, other + strlen(t->dir) + 1));
		free(cause);
		assert_int_equal(rename(other, path), 0);
	}
	/* Put right, it opens. */
	j = jopen_ok(t->dir, 1024, RECORD_MAX, 0, &rec);
	check_recovery(&rec, &exp);
	journal_close(j);
	free(orig);
	free(seqs);
	items_free(&exp);
}

/*
 * The last segment's header is damaged but records follow it. It cannot be
 * a crash while creating the segment (the header is fsync'd before any
 * record is written), so it is corruption like any bad data followed by
 * good records: open must refuse, not delete the file with its records.
 */
static void
test_bad_header_last_with_records(void **state)
{
	struct tmp	       *t = *state;
	struct journal_recovery rec;
	struct items		exp;
	struct journal	       *j;
	char			path[PATH_MAX], *cause;
	uint64_t	       *seqs;
	size_t			nseg, size;
	int			opened, named, exists;

	memset(&exp, 0, sizeof(exp));
	nseg = fill_segments(t->dir, &exp, 1024, 20, 2, 150, &seqs);
	assert_true(nseg >= 2);
	seg_path(path, sizeof(path), t->dir, seqs[nseg - 1]);
	size = (size_t)file_size(path);
	assert_true(size > JOURNAL_HEADER_SIZE);

	flip_bit(path, 26, 1); /* in the salt */
	j = jopen(t->dir, 1024, RECORD_MAX, 0, &rec, &cause);
	opened = j != NULL;
	journal_close(j);
	named =
	    cause != NULL && strstr(cause, path + strlen(t->dir) + 1) != NULL;
	free(cause);
	exists = file_exists(path);
	free(seqs);
	items_free(&exp);

	if (opened)
		print_error("journal_open succeeded with %" PRIu64 " of the "
			    "records; %s was %s\n",
		    rec.records, path, exists ? "kept" : "deleted");
	assert_false(opened);
	assert_true(named);
	assert_true(exists);
	assert_int_equal(file_size(path), size);
}

/* ------------------------------------------------------------------ */
/* Sequence numbers. */

static void
test_seq_backwards(void **state)
{
	struct tmp	       *t = *state;
	struct journal_recovery rec;
	struct segscan		ss;
	struct items		exp;
	struct journal	       *j;
	char			path[PATH_MAX], *cause;
	unsigned char	       *buf, pl[40];
	uint64_t		seqs[3];
	size_t			size, lens[3] = {40, 40, 40};

	memset(&exp, 0, sizeof(exp));
	/* Within a segment: 1..5, then 3, then 6..8. */
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	write_group(j, &exp, 1, NULL, 5);
	seqs[0] = 3;
	write_seqs(j, NULL, seqs, lens, 1);
	write_group(j, NULL, 6, NULL, 3);
	journal_close(j);
	seg_scan(t->dir, 1, &ss); /* record 5 is the seq 3 */
	cause = jopen_fail(t->dir, BIG_SEGMENT, RECORD_MAX);
	assert_cause_names(cause, 1, ss.off[5]);
	free(cause);
	/* A repeated seq is no better than a smaller one. */
	rm_rf(t->dir);
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	write_group(j, NULL, 1, NULL, 5);
	seqs[0] = 5;
	write_seqs(j, NULL, seqs, lens, 1);
	write_group(j, NULL, 6, NULL, 3);
	journal_close(j);
	cause = jopen_fail(t->dir, BIG_SEGMENT, RECORD_MAX);
	assert_cause_names(cause, 1, ss.off[5]);
	free(cause);
	/* Salvage keeps 1..5. */
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 1, &rec);
	check_recovery(&rec, &exp);
	check_replay(j, 0, &exp);
	journal_close(j);
	seg_free(&ss);

	/*
	 * Segments are read in the order of their names, not of creation:
	 * written as 10..12, then 5..6, then 20..21, they read 5, 6, 10, ...
	 * which is a sound log.
	 */
	rm_rf(t->dir);
	j = jopen_ok(t->dir, 200, RECORD_MAX, 0, &rec);
	write_group(j, NULL, 10, lens, 3); /* segment 10: 10..12 */
	seqs[0] = 5;
	seqs[1] = 6;
	write_seqs(j, NULL, seqs, lens, 2); /* segment 5: 5, 6 */
	write_group(j, NULL, 20, lens, 2);  /* segment 20: 20, 21 */
	journal_close(j);
	assert_int_equal(count_segments(t->dir), 3);
	j = jopen_ok(t->dir, 200, RECORD_MAX, 0, &rec);
	assert_int_equal(rec.records, 7);
	assert_int_equal(rec.first_seq, 5);
	assert_int_equal(rec.last_seq, 21);
	journal_close(j);

	/*
	 * Across segments: segment 15 (between 10..12 and 20..21) holding
	 * records 7 and 8 goes backwards: corruption at its first record.
	 */
	rm_rf(t->dir);
	j = jopen_ok(t->dir, 200, RECORD_MAX, 0, &rec);
	write_group(j, NULL, 10, lens, 3);
	seqs[0] = 15;
	seqs[1] = 16;
	write_seqs(j, NULL, seqs, lens, 2);
	write_group(j, NULL, 20, lens, 2);
	journal_close(j);
	seg_path(path, sizeof(path), t->dir, 15);
	buf = read_all(path, &size);
	assert_int_equal(size, JOURNAL_HEADER_SIZE + 2 * (17 + 40));
	fill_payload(pl, 7, sizeof(pl));
	journal_record_encode(buf + JOURNAL_HEADER_SIZE, 1, 7, pl, sizeof(pl));
	journal_record_encode(
	    buf + JOURNAL_HEADER_SIZE + 17 + 40, 1, 8, pl, sizeof(pl));
	write_all(path, buf, size);
	free(buf);
	cause = jopen_fail(t->dir, 200, RECORD_MAX);
	assert_cause_names(cause, 15, JOURNAL_HEADER_SIZE);
	free(cause);
	items_free(&exp);
}

/* ------------------------------------------------------------------ */
/* Statistics. */

static void
test_stats(void **state)
{
	struct tmp	       *t = *state;
	struct journal_recovery rec;
	struct journal_stats	st;
	struct items		exp;
	struct journal	       *j;
	unsigned char	       *buf;
	char			path[PATH_MAX], *cause = NULL;
	uint64_t		seqs[1] = {100};
	size_t			total, lens[1] = {10}, i;

	memset(&exp, 0, sizeof(exp));
	seg_path(path, sizeof(path), t->dir, 1);
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	journal_get_stats(j, &st);
	assert_int_equal(st.writes, 0);
	assert_int_equal(st.fsyncs, 0);
	assert_int_equal(st.segments, 0);
	assert_int_equal(st.bytes, 0);
	/* Five writes, three syncs. */
	for (i = 0; i < 5; i++) {
		seqs[0] = 1 + i;
		buf = encode_group(&exp, seqs, lens, 1, &total);
		assert_int_equal(
		    journal_write(j, buf, total, seqs[0], seqs[0], &cause), 0);
		free(buf);
		if (i % 2 == 0)
			assert_int_equal(journal_sync(j, &cause), 0);
	}
	journal_get_stats(j, &st);
	assert_int_equal(st.writes, 5);
	assert_int_equal(st.fsyncs, 3);
	assert_int_equal(st.segments, 1);
	assert_int_equal(st.bytes, file_size(path));
	assert_int_equal(
	    st.bytes, JOURNAL_HEADER_SIZE + 5 * journal_record_size(10));
	assert_true(st.fsync_ns_max >= st.fsync_ns_last);
	assert_true(st.fsync_ns_total >= st.fsync_ns_max);
	assert_true(st.fsync_ns_total > 0);
	assert_int_equal(st.truncated_bytes, 0);
	assert_int_equal(st.segments_deleted, 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(journal_sync(j, &cause), 0);
	journal_get_stats(j, &st);
	assert_int_equal(st.fsyncs, 7);
	assert_int_equal(st.writes, 5);
	assert_null(cause);
	/* After a reopen, bytes and segments come from the files. */
	j = reopen_check(j, t->dir, BIG_SEGMENT, &exp);
	journal_get_stats(j, &st);
	assert_int_equal(st.segments, 1);
	assert_int_equal(st.bytes, file_size(path));
	journal_close(j);
	items_free(&exp);
}

/* ------------------------------------------------------------------ */
/* A write that fails partway. */

static void
test_write_failure_cuts_back(void **state)
{
	struct tmp	       *t = *state;
	struct journal_recovery rec;
	struct journal_stats	st0, st1;
	struct sigaction	sa, old_sa;
	struct rlimit		old, lim;
	struct items		exp;
	struct journal	       *j;
	unsigned char	       *buf;
	char			path[PATH_MAX], *cause = NULL;
	uint64_t		size0, size1, seqs[4] = {11, 12, 13, 14};
	size_t			total, lens[4] = {300, 300, 300, 300};
	int			rc, lim_rc;

	memset(&exp, 0, sizeof(exp));
	seg_path(path, sizeof(path), t->dir, 1);
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	write_group(j, &exp, 1, NULL, 6);
	write_group(j, &exp, 7, NULL, 4);
	size0 = file_size(path);
	journal_get_stats(j, &st0);
	buf = encode_group(NULL, seqs, lens, 4, &total);

	if (getrlimit(RLIMIT_FSIZE, &old) == -1 ||
	    (old.rlim_max != RLIM_INFINITY && old.rlim_max < size0 + total)) {
		free(buf);
		journal_close(j);
		items_free(&exp);
		skip();
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGXFSZ, &sa, &old_sa), 0);
	/* Room for 500 bytes: the group of 1268 fails partway. */
	lim = old;
	lim.rlim_cur = (rlim_t)(size0 + 500);
	lim_rc = setrlimit(RLIMIT_FSIZE, &lim);
	if (lim_rc == -1) {
		sigaction(SIGXFSZ, &old_sa, NULL);
		free(buf);
		journal_close(j);
		items_free(&exp);
		skip();
	}
	rc = journal_write(j, buf, total, 11, 14, &cause);
	/* Restore before any assertion can print. */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(sigaction(SIGXFSZ, &old_sa, NULL), 0);

	assert_int_equal(rc, -1);
	assert_non_null(cause);
	assert_non_null(strstr(cause, strerror(EFBIG)));
	assert_non_null(strstr(cause, path + strlen(t->dir) + 1));
	free(cause);
	cause = NULL;
	/* Cut back to where it was; the counters did not move. */
	size1 = file_size(path);
	assert_int_equal(size1, size0);
	journal_get_stats(j, &st1);
	assert_int_equal(st1.writes, st0.writes);
	assert_int_equal(st1.bytes, st0.bytes);
	assert_int_equal(st1.bytes, size0);
	check_replay(j, 0, &exp);

	/* The same group, retried, lands where the failed one began. */
	free(buf);
	buf = encode_group(&exp, seqs, lens, 4, &total);
	assert_int_equal(journal_write(j, buf, total, 11, 14, &cause), 0);
	assert_int_equal(journal_sync(j, &cause), 0);
	assert_int_equal(file_size(path), size0 + total);
	free(buf);
	j = reopen_check(j, t->dir, BIG_SEGMENT, &exp);
	journal_close(j);

	/* And a reopen right after a failed write sees only good records. */
	rm_rf(t->dir);
	items_cut(&exp, 0);
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	write_group(j, &exp, 1, NULL, 3);
	size0 = file_size(path);
	buf = encode_group(NULL, seqs, lens, 4, &total);
	assert_int_equal(sigaction(SIGXFSZ, &sa, &old_sa), 0);
	lim.rlim_cur = (rlim_t)(size0 + 100);
	lim_rc = setrlimit(RLIMIT_FSIZE, &lim);
	rc = lim_rc == 0 ? journal_write(j, buf, total, 4, 7, &cause) : 0;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(sigaction(SIGXFSZ, &old_sa, NULL), 0);
	assert_int_equal(lim_rc, 0);
	assert_int_equal(rc, -1);
	free(cause);
	free(buf);
	journal_close(j);
	assert_int_equal(file_size(path), size0);
	j = jopen_ok(t->dir, BIG_SEGMENT, RECORD_MAX, 0, &rec);
	check_recovery(&rec, &exp);
	assert_int_equal(rec.truncated_bytes, 0);
	check_replay(j, 0, &exp);
	journal_close(j);
	items_free(&exp);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc32c_check_value),
	    cmocka_unit_test(test_crc32c_sw_hw_agree),
	    cmocka_unit_test(test_crc32c_extend_parts),
	    cmocka_unit_test(test_crc32c_mask),
	    cmocka_unit_test(test_record_format),
	    cmocka_unit_test_setup_teardown(
		test_empty_journal, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_replay_callback_error, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_replay_error_keeps_segments, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_record_max, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_truncate_every_byte, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_prezero, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_zero_tail, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_damaged_tail_is_fast, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_flip_middle_last_segment, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_flip_middle_earlier_segment, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_salvage_interrupted, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_flip_last_record, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_unsynced_tail_lost, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_unsynced_then_synced_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_unsynced_later_segments, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_format_1_segment, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_remove_failures, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_release, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_torn_header, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_header_only_segment, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_bad_header_not_last, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_bad_header_last_with_records, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_seq_backwards, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_write_failure_cuts_back, setup, teardown),
	};

	/* Quiet: the journal's warnings about cut tails are expected. */
	log_init(LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

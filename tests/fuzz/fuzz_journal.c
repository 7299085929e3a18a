/*
 * fuzz_journal.c -- fuzz target of journal recovery (daemon/journal.c).
 *
 * The input becomes one or two segment files in a scratch folder (on
 * /dev/shm when there is one: per-input work stays small). Its first
 * byte says how:
 *
 *	bit 0	  open with salvage
 *	bit 1	  raw: the input is the whole first file, header included;
 *		  otherwise a sound header named 1 is put before it
 *	bits 2-3  record_max: 32, 256, 4096 or 1 MB
 *	bit 4	  two segments: the next two bytes (little-endian, modulo
 *		  the body's size) say where the first one ends; the second
 *		  gets a sound header named after its first record's seq
 *	bit 5	  seal: walk the records of each body and write their CRC,
 *		  except for records whose type has bit 5 set (otherwise a
 *		  fuzzer almost never makes a record that passes its CRC);
 *		  sealed records with bit 6 of their type carry the unsynced
 *		  flag (JOURNAL_F_UNSYNCED)
 *	bit 6	  strict replay too: the callback fails on a payload that
 *		  wreq_decode refuses, as the writer's does
 *	bit 7	  the sound headers say format 1 (no unsynced flag: a record
 *		  with it is invalid there)
 *
 * Then journal_open scans them, as the daemon does at start, and the
 * checks are:
 *  - it fails only with a cause that names the reason (corruption, bad
 *    header, record-max), and then, without salvage, every file is left
 *    exactly as it was: a refused start loses nothing;
 *  - replay hands out types without their flag bits;
 *  - when it opens, every file left is a prefix of what it was (recovery
 *    only cuts), the bytes cut (removed files included) add up to
 *    truncated_bytes,
 *    and replay hands out exactly rec.records records, seqs growing from
 *    rec.first_seq to rec.last_seq, none longer than record_max; a replay
 *    from the middle skips what it must;
 *  - each replayed payload that wreq_decode (what replay in the writer
 *    uses) accepts has its views inside the payload, and encodes back to
 *    the same bytes;
 *  - a strict replay fails, with a cause, exactly when a payload is
 *    refused, and leaves the journal usable;
 *  - a record appended after recovery, synced, is found by the next open,
 *    which must be clean: nothing cut, nothing refused, salvage or not.
 */
#include "config.h"

#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/crc32c.h"
#include "daemon/journal.h"
#include "daemon/log.h"
#include "daemon/wreq.h"
#include "fuzz.h"

#define F_SALVAGE 0x01
#define F_RAW	  0x02
#define F_RECMAX  0x0c
#define F_TWO	  0x10
#define F_SEAL	  0x20
#define F_STRICT  0x40
#define F_V1	  0x80
#define T_NOSEAL  0x20

static const size_t record_maxes[4] = {32, 256, 4096, 1024 * 1024};

static char fuzz_dir[256];
static int  verbose; /* FUZZ_VERBOSE set: say what recovery did */

/* A segment as written, to compare with what recovery left. */
struct seg {
	char	 path[320];
	uint8_t *buf;
	size_t	 len;
};

/* What replay saw. */
struct seen {
	size_t	 record_max;
	uint64_t after;
	uint64_t prev;
	uint64_t first;
	uint64_t records;
	int	 strict;  /* fail on a payload wreq_decode refuses */
	uint64_t refused; /* payloads wreq_decode refused */
};

static void
put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static void
put_u64(uint8_t *p, uint64_t v)
{
	put_u32(p, (uint32_t)v);
	put_u32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t
get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t
get_u64(const uint8_t *p)
{
	return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static void
dir_clean(void)
{
	struct dirent *de;
	char	       path[600];
	DIR	      *d;
	int	       n;

	if ((d = opendir(fuzz_dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		n = snprintf(path, sizeof(path), "%s/%s", fuzz_dir, de->d_name);
		if (n < 0 || (size_t)n >= sizeof(path) || unlink(path) == -1)
			abort();
	}
	closedir(d);
}

static void
dir_remove(void)
{
	dir_clean();
	rmdir(fuzz_dir);
}

/* Make the scratch folder, once. */
static void
setup(void)
{
	const char *base;
	int	    n;

	if (fuzz_dir[0] != '\0')
		return;
	verbose = getenv("FUZZ_VERBOSE") != NULL;
	/* Cut tails are expected: no noise, unless asked. */
	log_init(verbose ? LOG_LEVEL_INFO : LOG_LEVEL_ERROR);
	if ((base = getenv("FUZZ_TMPDIR")) == NULL) {
		if (access("/dev/shm", W_OK) == 0)
			base = "/dev/shm";
		else if ((base = getenv("TMPDIR")) == NULL)
			base = "/tmp";
	}
	n = snprintf(
	    fuzz_dir, sizeof(fuzz_dir), "%s/stashd-fuzz-journal.XXXXXX", base);
	if (n < 0 || (size_t)n >= sizeof(fuzz_dir)) {
		fprintf(stderr, "%s: path too long\n", base);
		abort();
	}
	if (mkdtemp(fuzz_dir) == NULL) {
		fprintf(stderr, "mkdtemp %s: %s\n", fuzz_dir, strerror(errno));
		abort();
	}
	atexit(dir_remove);
}

/* Write CRCs into the records of body[0..len), as journal_record_seal. */
static void
seal(uint8_t *body, size_t len)
{
	size_t	 off = 0;
	uint32_t plen;

	while (len - off >= JOURNAL_RECORD_HEADER) {
		plen = get_u32(body + off + 4);
		if (plen > len - off - JOURNAL_RECORD_HEADER)
			break;
		if (!(body[off + 8] & T_NOSEAL))
			put_u32(body + off,
			    crc32c_mask(crc32c_extend(0, body + off + 4,
				JOURNAL_RECORD_HEADER - 4 + plen)));
		off += JOURNAL_RECORD_HEADER + plen;
	}
}

/* Build a segment named seq: header of format version (unless raw), body. */
static void
seg_make(struct seg *s, uint64_t seq, int raw, uint32_t version,
    const uint8_t *body, size_t len, int sealed)
{
	size_t hdr = raw ? 0 : JOURNAL_HEADER_SIZE;
	int    n;

	n = snprintf(
	    s->path, sizeof(s->path), "%s/%020" PRIu64 ".seg", fuzz_dir, seq);
	if (n < 0 || (size_t)n >= sizeof(s->path))
		abort();
	if ((s->buf = malloc(hdr + len + 1)) == NULL)
		abort();
	if (!raw) {
		memcpy(s->buf, "STASHJNL", 8);
		put_u32(s->buf + 8, version);
		put_u32(s->buf + 12, JOURNAL_HEADER_SIZE);
		put_u64(s->buf + 16, seq);
		put_u64(s->buf + 24, 0x5eed5eed5eed5eedULL);
		put_u32(s->buf + 32, crc32c_mask(crc32c_extend(0, s->buf, 32)));
	}
	if (len > 0)
		memcpy(s->buf + hdr, body, len);
	if (sealed)
		seal(s->buf + hdr, len);
	s->len = hdr + len;
}

static void
seg_write(const struct seg *s)
{
	int fd;

	fd = open(s->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1 || write(fd, s->buf, s->len) != (ssize_t)s->len ||
	    close(fd) == -1) {
		fprintf(stderr, "write %s: %s\n", s->path, strerror(errno));
		abort();
	}
}

/*
 * Read back the file of s: its size in *len (0 and NULL when it is gone);
 * the caller frees.
 */
static uint8_t *
file_read(const char *path, size_t *len)
{
	struct stat sb;
	uint8_t	   *buf;
	int	    fd;

	*len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		FUZZ_CHECK(errno == ENOENT);
		return NULL;
	}
	if (fstat(fd, &sb) == -1 ||
	    (buf = malloc((size_t)sb.st_size + 1)) == NULL ||
	    read(fd, buf, (size_t)sb.st_size) != (ssize_t)sb.st_size)
		abort();
	close(fd);
	*len = (size_t)sb.st_size;
	return buf;
}

/* Is [p, p+n) inside [base, base+len)? */
static int
inside(const void *base, size_t len, const void *p, size_t n)
{
	const char *b = base, *q = p;

	if (q == NULL)
		return n == 0;
	return q >= b && n <= len && (size_t)(q - b) <= len - n;
}

/* Decode a payload as the writer's replay does, and encode it back. */
static int
payload_check(uint8_t type, uint64_t seq, const void *payload, size_t len)
{
	struct wreq w, *again;
	const char *pl = payload;

	memset(&w, 0, sizeof(w));
	if (wreq_decode(&w, type, seq, payload, len) == -1)
		return -1; /* replay refuses it with a message: fine */
	FUZZ_CHECK(w.type == type && w.seq == seq);
	switch (type) {
	case WREQ_KV_SET:
	case WREQ_KV_SET_RAW: /* the payload of KV_SET; the value is bytes */
		FUZZ_CHECK(inside(pl, len, w.key, w.klen) && w.klen > 0);
		FUZZ_CHECK(inside(pl, len, w.value, w.vlen));
		again = wreq_kv_set(
		    seq, w.key, w.klen, w.value, w.vlen, w.expires_at);
		break;
	case WREQ_KV_DEL:
		FUZZ_CHECK(inside(pl, len, w.key, w.klen) && w.klen > 0);
		again = wreq_kv_del(seq, w.key, w.klen);
		break;
	case WREQ_EXEC:
		FUZZ_CHECK(inside(pl, len, w.sql, w.sql_len));
		FUZZ_CHECK(inside(pl, len, w.json, w.json_len));
		again = wreq_exec(seq, w.sql, w.sql_len, w.json, w.json_len);
		break;
	case WREQ_TX:
		FUZZ_CHECK(inside(pl, len, w.json, w.json_len));
		again = wreq_tx(seq, w.json, w.json_len);
		break;
	default: FUZZ_CHECK(!"wreq_decode accepted an unknown type"); return -1;
	}
	FUZZ_CHECK(again->rec_len == journal_record_size(len));
	FUZZ_CHECK(len == 0 ||
		   memcmp(again->rec + JOURNAL_RECORD_HEADER, pl, len) == 0);
	wreq_free(again);
	return 0;
}

static int
on_record(void *arg, uint8_t type, uint64_t seq, const void *payload,
    size_t len, uint32_t format)
{
	struct seen *sn = arg;

	FUZZ_CHECK(format >= 1 && format <= JOURNAL_FORMAT_VERSION);
	FUZZ_CHECK(!(type & JOURNAL_TYPE_FLAGS));
	FUZZ_CHECK(len <= sn->record_max);
	FUZZ_CHECK(len == 0 || payload != NULL);
	FUZZ_CHECK(seq > sn->after);
	FUZZ_CHECK(seq > sn->prev);
	if (payload_check(type, seq, payload, len) == -1) {
		sn->refused++;
		if (sn->strict)
			return -1;
	}
	if (sn->records == 0)
		sn->first = seq;
	sn->prev = seq;
	sn->records++;
	return 0;
}

/* Replay after `after`; returns what it saw. */
static struct seen
replay(struct journal *j, size_t record_max, uint64_t after)
{
	struct seen sn = {record_max, after, 0, 0, 0, 0, 0};
	char	   *cause = NULL;

	if (journal_replay(j, after, on_record, &sn, &cause) != 0) {
		fprintf(stderr, "replay: %s\n", cause ? cause : "?");
		FUZZ_CHECK(!"replay of a recovered journal failed");
	}
	return sn;
}

/*
 * Replay failing on the first payload the writer would refuse: it fails
 * exactly when there is one, with a cause.
 */
static void
replay_strict(struct journal *j, size_t record_max, uint64_t refused)
{
	struct seen sn = {record_max, 0, 0, 0, 0, 1, 0};
	char	   *cause = NULL;
	int	    rc;

	rc = journal_replay(j, 0, on_record, &sn, &cause);
	if (refused == 0)
		FUZZ_CHECK(rc == 0 && cause == NULL);
	else {
		FUZZ_CHECK(rc == -1 && sn.refused == 1);
		FUZZ_CHECK(cause != NULL && strstr(cause, "replay of record"));
		free(cause);
	}
}

/* Append one record after last_seq, sync, close; 0 if it cannot be. */
static uint64_t
append_one(struct journal *j, uint64_t last_seq)
{
	uint8_t	 rec[JOURNAL_RECORD_HEADER + 4];
	uint64_t seq = last_seq + 1;
	char	*cause = NULL;

	if (seq == 0)
		return 0; /* the seqs are used up: nothing to add */
	journal_record_encode(rec, 1 | JOURNAL_GROUP_END, seq, "fuzz", 4);
	if (journal_write(j, rec, sizeof(rec), seq, seq, &cause) != 0 ||
	    journal_sync(j, &cause) != 0) {
		fprintf(stderr, "append: %s\n", cause ? cause : "?");
		FUZZ_CHECK(!"append after recovery failed");
	}
	return seq;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct journal_options	opts;
	struct journal_recovery rec, rec2;
	struct journal	       *j;
	struct seg		seg[2];
	struct seen		sn;
	uint8_t			flags, *now;
	size_t			nseg = 1, split, nowlen, i, cut = 0;
	uint64_t		seq2, added;
	uint32_t		version;
	char		       *cause = NULL;

	if (size < 1)
		return 0;
	setup();
	flags = data[0];
	data++;
	size--;

	memset(&opts, 0, sizeof(opts));
	opts.dir = fuzz_dir;
	opts.segment_max = 1024 * 1024;
	opts.record_max = record_maxes[(flags & F_RECMAX) >> 2];
	opts.salvage = (flags & F_SALVAGE) != 0;

	split = size;
	if (flags & F_TWO && size >= 2) {
		split = (size_t)(data[0] | data[1] << 8);
		data += 2;
		size -= 2;
		split = size > 0 ? split % (size + 1) : 0;
		nseg = 2;
	}
	version = flags & F_V1 ? 1 : JOURNAL_FORMAT_VERSION;
	seg_make(
	    &seg[0], 1, flags & F_RAW, version, data, split, flags & F_SEAL);
	if (nseg == 2) {
		seq2 = size - split >= JOURNAL_RECORD_HEADER
			   ? get_u64(data + split + 9)
			   : 2;
		if (seq2 <= 1)
			seq2 = 2;
		seg_make(&seg[1], seq2, 0, version, data + split, size - split,
		    flags & F_SEAL);
	}
	for (i = 0; i < nseg; i++)
		seg_write(&seg[i]);

	j = journal_open(&opts, &rec, &cause);
	if (j == NULL) {
		FUZZ_CHECK(cause != NULL);
		if (verbose)
			fprintf(stderr, "refused: %s\n", cause);
		if (opts.salvage)
			FUZZ_CHECK(strstr(cause, "bad header") != NULL ||
				   strstr(cause, "record-max") != NULL);
		else
			FUZZ_CHECK(strstr(cause, "corrupt") != NULL ||
				   strstr(cause, "record-max") != NULL);
		free(cause);
		/* A refused start loses nothing, changes nothing. */
		if (!opts.salvage)
			for (i = 0; i < nseg; i++) {
				now = file_read(seg[i].path, &nowlen);
				FUZZ_CHECK(now != NULL && nowlen == seg[i].len);
				FUZZ_CHECK(
				    memcmp(now, seg[i].buf, nowlen) == 0);
				free(now);
			}
		goto out;
	}
	FUZZ_CHECK(cause == NULL);
	if (verbose)
		fprintf(stderr,
		    "opened: %" PRIu64 " records (%" PRIu64 "..%" PRIu64
		    "), %" PRIu64 " segments, %" PRIu64 " bytes cut\n",
		    rec.records, rec.first_seq, rec.last_seq, rec.segments,
		    rec.truncated_bytes);

	/* Recovery only cuts: what is left of each file is a prefix. */
	for (i = 0; i < nseg; i++) {
		now = file_read(seg[i].path, &nowlen);
		FUZZ_CHECK(nowlen <= seg[i].len);
		FUZZ_CHECK(nowlen == 0 || memcmp(now, seg[i].buf, nowlen) == 0);
		cut += seg[i].len - nowlen;
		free(now);
	}
	FUZZ_CHECK(rec.truncated_bytes == cut);
	FUZZ_CHECK(rec.segments <= nseg);

	/* Replay gives exactly what the scan counted. */
	sn = replay(j, opts.record_max, 0);
	FUZZ_CHECK(sn.records == rec.records);
	if (rec.records > 0) {
		FUZZ_CHECK(
		    sn.first == rec.first_seq && sn.prev == rec.last_seq);
		sn = replay(j, opts.record_max, rec.first_seq);
		FUZZ_CHECK(sn.records == rec.records - 1);
		sn = replay(j, opts.record_max, rec.last_seq);
		FUZZ_CHECK(sn.records == 0);
	} else
		FUZZ_CHECK(rec.first_seq == 0 && rec.last_seq == 0);
	if (flags & F_STRICT) {
		sn = replay(j, opts.record_max, 0);
		replay_strict(j, opts.record_max, sn.refused);
	}

	/* Writing goes on after recovery, and the next start is clean. */
	added = append_one(j, rec.last_seq);
	journal_close(j);
	opts.salvage = 0;
	j = journal_open(&opts, &rec2, &cause);
	if (j == NULL)
		fprintf(stderr, "reopen: %s\n", cause);
	FUZZ_CHECK(j != NULL);
	FUZZ_CHECK(rec2.truncated_bytes == 0);
	if (added != 0) {
		FUZZ_CHECK(rec2.records == rec.records + 1);
		FUZZ_CHECK(rec2.last_seq == added);
		sn = replay(j, opts.record_max, rec.last_seq);
		FUZZ_CHECK(sn.records == 1 && sn.first == added);
	} else
		FUZZ_CHECK(rec2.records == rec.records);
	journal_close(j);
out:
	for (i = 0; i < nseg; i++)
		free(seg[i].buf);
	dir_clean();
	return 0;
}

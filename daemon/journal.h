/*
 * journal.h -- the write-ahead journal: a folder of append-only segments.
 *
 * A segment file is named by the first sequence number it holds
 * (%020llu.seg) and starts with a header:
 *
 *	magic "STASHJNL" | u32 format version | u32 header size |
 *	u64 first seq | u64 salt | u32 masked crc32c of the above
 *
 * then records:
 *
 *	u32 masked crc32c | u32 payload length | u8 type | u64 seq | payload
 *
 * all little-endian, the CRC covering length, type, seq and payload. The
 * low six bits of the type byte are the record's type; the top two are
 * flags that replay takes off (JOURNAL_TYPE_FLAGS).
 *
 * Format 2 added JOURNAL_F_UNSYNCED; format 1 segments are still read (in
 * them that bit makes a record invalid) but never written to: the first
 * write after a start goes to a new segment. Format 3 changes nothing the
 * journal reads: it tells replay that the writer's payloads count key
 * expiries in milliseconds (in seconds before); replay passes each
 * record's format on.
 *
 * One thread (the journal writer) calls journal_write and journal_sync;
 * journal_release may be called from another thread (it takes a lock).
 */
#ifndef STASHD_JOURNAL_H
#define STASHD_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#define JOURNAL_HEADER_SIZE    36
#define JOURNAL_RECORD_HEADER  17
#define JOURNAL_FORMAT_VERSION 3
/*
 * The last record of each group has this bit set in its type; replay
 * passes the type without it. Recovery uses it to tell a torn tail (bad
 * records followed only by the rest of their own, never acknowledged,
 * group) from corruption (a later group follows a damaged record).
 */
#define JOURNAL_GROUP_END 0x80
/*
 * Every record of a group written without an fdatasync before it was
 * acknowledged (a group of async writes only, left to the timed sync)
 * has this bit set. A disk may keep such a write and lose an earlier one
 * at a power cut: recovery takes a bad record followed only by flagged
 * records as a lost unsynced write, not as corruption. Format 2 on.
 */
#define JOURNAL_F_UNSYNCED 0x40
/* The flag bits of the type byte; replay passes the type without them. */
#define JOURNAL_TYPE_FLAGS (JOURNAL_GROUP_END | JOURNAL_F_UNSYNCED)

struct journal;

struct journal_options {
	const char *dir;
	size_t	    segment_max; /* rotate past this many bytes */
	size_t	    record_max;	 /* largest payload accepted */
	int	    salvage;	 /* keep the good prefix of a bad log */
	/*
	 * Extend the segment with zeros this many bytes ahead of the writes
	 * (0: off). fdatasync of a write into space already written costs no
	 * metadata flush; appending to the file does, every time.
	 */
	size_t prezero;
	/* Test hook: called at named points; NULL in production. */
	void (*crash_point)(const char *name);
};

struct journal_stats {
	uint64_t segments;
	uint64_t bytes; /* in all segments */
	uint64_t writes;
	uint64_t fsyncs;
	uint64_t fsync_ns_total;
	uint64_t fsync_ns_max;
	uint64_t fsync_ns_last;
	uint64_t truncated_bytes; /* torn tail cut at open */
	uint64_t segments_deleted;
};

/* What a scan found; filled by journal_open. */
struct journal_recovery {
	uint64_t first_seq; /* 0 when the journal is empty */
	uint64_t last_seq;
	uint64_t records;
	uint64_t segments;
	uint64_t truncated_bytes;
};

typedef int (*journal_record_cb)(void *arg, uint8_t type, uint64_t seq,
    const void *payload, size_t len, uint32_t format);

/* The bytes a record of this payload takes. */
static inline size_t
journal_record_size(size_t payload_len)
{
	return JOURNAL_RECORD_HEADER + payload_len;
}

/* Write a record (header and payload) at dst, journal_record_size bytes. */
void journal_record_encode(
    void *dst, uint8_t type, uint64_t seq, const void *payload, size_t len);
/*
 * Write only the record header at dst; the payload must already follow it
 * at dst + JOURNAL_RECORD_HEADER (saves a copy for large payloads).
 */
void journal_record_seal(void *dst, uint8_t type, uint64_t seq, size_t len);

/*
 * Open the journal in opts->dir (created if missing), scanning every
 * segment: a torn tail of the last segment is cut off (logged); so is a
 * bad record followed only by records with JOURNAL_F_UNSYNCED (a lost
 * unsynced write: those records and any later segments go, logged); any
 * other bad record followed by good ones is corruption and fails with
 * *cause naming the segment and offset, unless opts->salvage, which keeps
 * the good prefix. NULL on failure.
 */
struct journal *journal_open(const struct journal_options *opts,
    struct journal_recovery *rec, char **cause);
/*
 * Call cb for every record with seq > after, in order, its type unflagged,
 * with the format of the segment it is in.
 */
int journal_replay(struct journal *j, uint64_t after, journal_record_cb cb,
    void *arg, char **cause);
/*
 * Append buf (whole encoded records, first_seq..last_seq) with one write.
 * Rotates first when the segment is full; a new segment and its folder are
 * fsync'd before it is used. On a failed write the segment is cut back to
 * its last good size. -1 with *cause on failure.
 */
int journal_write(struct journal *j, const void *buf, size_t len,
    uint64_t first_seq, uint64_t last_seq, char **cause);
/* fdatasync the current segment. -1 on failure: never retry-and-trust. */
int journal_sync(struct journal *j, char **cause);
/*
 * Delete segments whose every record is <= durable_seq (never the one
 * being written). Returns how many were deleted.
 */
int journal_release(struct journal *j, uint64_t durable_seq);
/*
 * On a clean stop: close the segment being written and delete every
 * segment whose records are all <= durable_seq, that one too, so that a
 * stop that applied everything leaves an empty journal. Returns how many
 * segments are left.
 */
int  journal_finish(struct journal *j, uint64_t durable_seq);
void journal_get_stats(struct journal *j, struct journal_stats *st);
void journal_close(struct journal *j);

#endif /* STASHD_JOURNAL_H */

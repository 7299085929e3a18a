/*
 * crashpoint.h -- named places where a test build of stashd kills itself.
 *
 * Built with STASHD_CRASH_POINTS (./configure --enable-crash-points, or the
 * tests/stashd-crashpoints binary that make check builds), CRASH_POINT(name)
 * counts how often the point is reached; when STASHD_CRASH=name:N is set in
 * the environment, the N-th time the daemon writes one line to stderr and
 * dies of SIGKILL, at once, as a crash or a power cut would stop it: no
 * atexit, no buffered output, no cleanup. Without the option the macro is
 * nothing and production builds carry no trace of it.
 *
 * The points (where the code calls them):
 *	after-write	journal.c: a group written, not yet fdatasync'd
 *	after-sync	journal.c: fdatasync'd, not yet acknowledged
 *	rotate-created	journal.c: a new segment created, before its header,
 *			its fsync and its folder's fsync
 *	rotate-synced	journal.c: the new segment and its folder synced,
 *			the old segment not yet closed
 *	before-delete	journal.c: applied and durable, segment not deleted
 *	apply		writer.c: a write applied inside the open SQLite
 *			transaction, before its COMMIT
 *	after-commit	writer.c: COMMIT done, the groups not yet reported
 *			applied nor their segments released
 *	replay		writer.c: a journal record replayed at start, inside
 *			the replay's transaction, before its COMMIT
 *
 * The same build has fault points: FAULT_POINT(name) is true when
 * STASHD_FAULT=name:N is set and this is the N-th time the point is
 * reached, so that a test can take an error path that no outside fault
 * reaches exactly. The code goes on as if the step had failed. Without
 * the option it is 0.
 *
 *	cache-pin	cmd.c: pinning an acknowledged write in the cache
 *			fails (as when the allocator fails)
 *	reader-lookup	reader.c: a lookup of keys in SQLite fails
 *	exec-evict	rcmd.c: the keys of a transaction whose lookup just
 *			came back leave the cache (the pinned ones stay), as
 *			if evicted while the lookup was away
 *	exec-drop	rcmd.c: the keys of a transaction leave the cache
 *			between two of its commands (the pinned ones stay),
 *			as a key's expiry does when the second turns
 *	read-reserve	server.c: no room can be made in a connection's
 *			input buffer for a read (as when the allocator fails)
 *	read-error	server.c: reading a client's socket fails
 *			(ECONNRESET), as when the client resets it
 */
#ifndef STASHD_CRASHPOINT_H
#define STASHD_CRASHPOINT_H

#ifdef STASHD_CRASH_POINTS
/*
 * Read STASHD_CRASH once, at start; -1 with *cause when it is malformed.
 * Say on stderr which point is armed, so a test knows the build has them.
 */
int  crashpoint_init(char **cause);
void crashpoint_hit(const char *name);
int  faultpoint_hit(const char *name);
#define CRASH_POINT(name) crashpoint_hit(name)
#define FAULT_POINT(name) faultpoint_hit(name)
#else
#define CRASH_POINT(name) ((void)0)
#define FAULT_POINT(name) 0
#endif

#endif /* STASHD_CRASHPOINT_H */

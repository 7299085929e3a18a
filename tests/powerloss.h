/*
 * powerloss.h -- take away from the disk what a power cut would, using the
 * record tests/faultfs.c kept while the daemon ran (the daemon must be
 * dead): every file goes back to its content at its last successful
 * fsync/fdatasync, and files and folders created without a later fsync of
 * their folder disappear. The record is then emptied for the next start.
 */
#ifndef STASH_TESTS_POWERLOSS_H
#define STASH_TESTS_POWERLOSS_H

#include <stddef.h>
#include <stdint.h>

struct powerloss_stats {
	unsigned files_rewound; /* files with something taken back */
	uint64_t bytes_undone;	/* unsynced overwrites put back */
	uint64_t bytes_cut;	/* unsynced bytes at ends cut off */
	unsigned files_dropped; /* created, folder never synced after */
	unsigned dirs_dropped;
	unsigned faults; /* F records: faults injected */
	unsigned syncs;	 /* S records: successful syncs and baselines */
	/* powerloss_apply_oldest: */
	unsigned writes_undone; /* oldest unsynced writes put back */
	unsigned writes_kept;	/* later unsynced writes left in place */
};

/*
 * Apply the power cut the record at path describes, add what it did to
 * *st, and empty the record. 0, or -1 with a message in err. A missing
 * record is an empty one.
 */
int powerloss_apply(
    const char *path, struct powerloss_stats *st, char *err, size_t errlen);
/*
 * The same, except for the files whose path contains match: each of them
 * loses only its oldest write since its last sync (put back to what it
 * overwrote, zeros where it extended the file) and keeps every later
 * one, as a disk that writes pages back in any order may. Needs the X
 * records of tests/faultfs.c.
 */
int powerloss_apply_oldest(const char *path, const char *match,
    struct powerloss_stats *st, char *err, size_t errlen);
/* What the record says about injected faults; read only. */
struct powerloss_scan {
	unsigned faults;	   /* F records */
	char	 first_op[16];	   /* of the first fault */
	char	 first_path[1024]; /* the file of the first fault */
	unsigned syncs_after;	   /* S of that file after it */
};
/* Scan the record at path; 0, or -1 when it cannot be read. */
int powerloss_scan(const char *path, struct powerloss_scan *sc);

#endif /* STASH_TESTS_POWERLOSS_H */

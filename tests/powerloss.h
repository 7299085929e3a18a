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
};

/*
 * Apply the power cut the record at path describes, add what it did to
 * *st, and empty the record. 0, or -1 with a message in err. A missing
 * record is an empty one.
 */
int powerloss_apply(
    const char *path, struct powerloss_stats *st, char *err, size_t errlen);
/* Count the faults (F records) of the record without changing anything. */
int powerloss_faults(const char *path);

#endif /* STASH_TESTS_POWERLOSS_H */

#!/bin/sh
# test_powerloss.sh -- the kill test with power cuts. stashd runs under
# tests/faultfs.c (LD_PRELOAD), which records what each fsync/fdatasync
# made durable; after each death of the daemon, tests/powerloss.c takes
# away what a power cut would (every file back to its last sync, files
# created since their folder's last fsync gone) before the restart. Then
# test_crash's verification: nothing acknowledged lost, nothing applied
# twice, no read older than an acknowledged write, integrity_check ok.
#
# Two runs: SIGKILL at random moments (10 cycles), then every crash point
# of daemon/crashpoint.h in turn (24 cycles, with tests/stashd-crashpoints;
# skipped, exit 77, when that daemon has no crash points).
B="${TOP_BUILDDIR:-.}/tests"
"$B/test_crash" --power-loss "$@" || exit 1
exec "$B/test_crash" --crash-points --power-loss "$@"

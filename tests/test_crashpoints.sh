#!/bin/sh
# test_crashpoints.sh -- the kill test with crash points: instead of a
# SIGKILL from outside, stashd kills itself at each named point of
# daemon/crashpoint.h in turn (between journal write and fdatasync, between
# fdatasync and acknowledgement, inside the SQLite transaction, after the
# COMMIT, before a segment is deleted, while a segment is rotated, and twice
# in a row inside the replay after a crash), each point 3 times at a random
# hit, with the verification of test_crash: nothing acknowledged lost,
# nothing applied twice, no read older than an acknowledged write,
# integrity_check ok.
#
# make check runs it with tests/stashd-crashpoints, a stashd built with the
# points whatever ./configure said; exit 77 (skip) when the daemon given has
# none.
exec "${TOP_BUILDDIR:-.}/tests/test_crash" --crash-points "$@"

# lib.sh -- shared by the shell tests (sourced): a temporary folder
# removed on exit with the processes listed in $KILL, and the pass/fail
# count with its closing line.
#
#	. "$SRC/tests/lib.sh"; test_init NAME; ... ok / bad "why"; test_done

test_init() {
	TMP=$(mktemp -d "${TESTS_TMPDIR:-/tmp}/tmp.$1.XXXXXX")
	KILL=
	fails=0
	passes=0
	trap test_cleanup EXIT
}

test_cleanup() {
	for p in $KILL; do kill -9 "$p" 2>/dev/null; done
	rm -rf "$TMP"
}

ok() { passes=$((passes + 1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

test_done() {
	echo "$passes passed, $fails failed"
	[ $fails -eq 0 ]
}

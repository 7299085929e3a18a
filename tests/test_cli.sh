#!/bin/sh
#
# test_cli.sh -- the stash command-line tool against a private stashd.
#
# Starts $STASHD on a socket in a fresh folder under $TESTS_TMPDIR, runs
# $STASH against it and checks stdout, stderr and the exit status of every
# command (0 done, 1 not found, 2 error), then stops the daemon with SIGTERM
# and expects it to exit 0. $STASHD_WRAPPER (e.g. valgrind) is put in front
# of the daemon when set. Exit 0 pass, 1 fail, 77 skip (no $STASHD).

if [ -z "$STASHD" ]; then
	echo "test_cli: STASHD is not set, skipping" >&2
	exit 77
fi
: "${STASH:?STASH is not set}"
: "${TESTS_TMPDIR:=${TMPDIR:-/tmp}}"

DIR=$(mktemp -d "$TESTS_TMPDIR/test_cli.XXXXXX") || exit 1
SOCK="$DIR/s.sock"
PID=
FAILS=0

# shellcheck disable=SC2317 # called through the trap
cleanup() {
	if [ -n "$PID" ]; then
		kill -TERM "$PID" 2>/dev/null
		wait "$PID" 2>/dev/null
	fi
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

fail() {
	echo "FAIL: $*" >&2
	FAILS=$((FAILS + 1))
}

# run ARGS...: run $STASH -s $SOCK ARGS, keeping stdout, stderr and status.
run() {
	"$STASH" -s "$SOCK" "$@" >"$DIR/out" 2>"$DIR/err"
	RC=$?
	OUT=$(cat "$DIR/out")
	ERR=$(cat "$DIR/err")
}

# expect WHAT RC [OUT]: check the last run's status and, if given, stdout.
expect() {
	if [ "$RC" != "$2" ]; then
		fail "$1: exit $RC, expected $2 (stdout: $OUT; stderr: $ERR)"
		return
	fi
	if [ $# -ge 3 ] && [ "$OUT" != "$3" ]; then
		fail "$1: stdout \"$OUT\", expected \"$3\""
	fi
}

# expect_err WHAT PATTERN: the last run's stderr is one line matching it.
# shellcheck disable=SC2254 # PATTERN is a glob on purpose
expect_err() {
	case "$ERR" in
	*"
"*)	fail "$1: stderr has more than one line: $ERR" ;;
	$2)	;;
	*)	fail "$1: stderr \"$ERR\" does not match \"$2\"" ;;
	esac
}

# --- without a daemon -----------------------------------------------------

"$STASH" --help >"$DIR/out" 2>&1 || fail "--help exits non-zero"
grep -q "usage: stash" "$DIR/out" || fail "--help shows no usage"
"$STASH" --version >"$DIR/out" 2>&1 || fail "--version exits non-zero"
grep -q "^stash " "$DIR/out" || fail "--version shows no version"

run ping
expect "ping with no daemon" 2 ""
expect_err "ping with no daemon" "stash: cannot connect to $SOCK: *"

run frobnicate
expect "unknown command" 2 ""
expect_err "unknown command" "*unknown command*"
run
expect "no command" 2
run get
expect "get without a key" 2
run set k
expect "set without a value" 2
run set k '{"a":'
expect "set of invalid JSON" 2 ""
expect_err "set of invalid JSON" "stash: set: invalid JSON value: *"
run set k 1 --ttl 0
expect "--ttl 0" 2
run set k 1 --ttl x
expect "--ttl x" 2
run set k 1 --if-version -1
expect "--if-version -1" 2
run set k 1 --durability sometimes
expect "bad --durability" 2
expect_err "bad --durability" "*durability*"
run get ""
expect "empty key" 2
LONGKEY=$(printf '%1025s' '' | tr ' ' k)
run get "$LONGKEY"
expect "key over 1024 bytes" 2
expect_err "key over 1024 bytes" "*longer than 1024*"

# --- start the daemon -----------------------------------------------------

# The daemon runs in its own folder (its database and journal go there).
(cd "$DIR" && exec $STASHD_WRAPPER "$STASHD" -c /dev/null -s "$SOCK") \
    >"$DIR/stashd.log" 2>&1 &
PID=$!
i=0
while :; do
	if [ -S "$SOCK" ] && "$STASH" -s "$SOCK" ping >/dev/null 2>&1; then
		break
	fi
	if ! kill -0 "$PID" 2>/dev/null; then
		echo "test_cli: stashd exited at startup:" >&2
		cat "$DIR/stashd.log" >&2
		PID=
		exit 1
	fi
	i=$((i + 1))
	if [ $i -gt 300 ]; then
		echo "test_cli: stashd does not answer on $SOCK" >&2
		cat "$DIR/stashd.log" >&2
		exit 1
	fi
	sleep 0.1
done

# --- with the daemon ------------------------------------------------------

run ping
expect "ping" 0 "pong"

run get nokey
expect "get of an absent key" 1 ""
expect_err "get of an absent key" "stash: get: not_found: *"

run set k1 '{"a": [1, 2, "x"],
  "b": {"c": null, "d": true}}'
expect "set" 0
case "$OUT" in
''|*[!0-9]*)	fail "set prints \"$OUT\", not a version" ;;
esac
V1=$OUT

run get k1
expect "get" 0 '{"a":[1,2,"x"],"b":{"c":null,"d":true}}'

# The invalid value was refused locally: nothing was stored.
run get k
expect "get after a refused set" 1

run set k1 '"second"'
expect "overwrite" 0
V2=$OUT
[ "${V2:-0}" -gt "${V1:-0}" ] 2>/dev/null ||
    fail "versions do not grow: $V1 then $V2"
run get k1
expect "get after overwrite" 0 '"second"'

# Scalars and unicode, key and value.
run set 'clé ü' '"héllo \u00e9 \"q\" \\ /"'
expect "set unicode" 0
run get 'clé ü'
expect "get unicode" 0
case "$OUT" in
'"h'*'llo '*'\"q\"'*)	;;
*)	fail "get unicode: $OUT" ;;
esac
run set num -12.5e3
expect "set a negative number" 0
run get num
expect "get a number" 0
case "$OUT" in
-12.5e3|-12500|-12500.0|-1.25e4|-1.25e+4|-1.25E4|-12.5E3)	;;
*)	fail "get a number: $OUT" ;;
esac

# Compare-and-set.
run set k1 '"cas"' --if-version $((V2 + 1000))
expect "set with a wrong --if-version" 2 ""
expect_err "set with a wrong --if-version" "stash: set: conflict: *"
run get k1
expect "value after a conflict" 0 '"second"'
run set k1 '"cas"' --if-version "$V2"
expect "set with the right --if-version" 0
run set k1 '"again"' --if-version=0
expect "--if-version 0 on an existing key" 2
expect_err "--if-version 0 on an existing key" "stash: set: conflict: *"
run set fresh '[]' --if-version 0
expect "--if-version 0 on a new key" 0
run get k1
expect "get after compare-and-set" 0 '"cas"'

# Durability levels are all accepted.
for d in async journal commit; do
	run set "dur-$d" '{"d":"'$d'"}' --durability "$d"
	expect "set --durability $d" 0
	run get "dur-$d"
	expect "get after --durability $d" 0 '{"d":"'$d'"}'
done

# mget: one line per key, null for the absent.
run mget k1 nokey fresh
expect "mget" 0 '"cas"
null
[]'

# A key that looks like an option, after --.
run set -- --dashed '1'
expect "set of a --key" 0
run get -- --dashed
expect "get of a --key" 0 "1"

# The longest key.
KEY1024=$(printf '%1024s' '' | tr ' ' k)
run set "$KEY1024" 7
expect "set with a 1024-byte key" 0
run get "$KEY1024"
expect "get with a 1024-byte key" 0 "7"

# A large value, from stdin, survives the round trip.
awk 'BEGIN { printf "\""; for (i = 0; i < 20000; i++) printf "0123456789abcdef0123456789ABCDEF0123456789abcdef"; print "\"" }' \
    >"$DIR/big.json"
"$STASH" -s "$SOCK" set big - <"$DIR/big.json" >"$DIR/out" 2>"$DIR/err" ||
    fail "set of a large value from stdin: $(cat "$DIR/err")"
"$STASH" -s "$SOCK" get big >"$DIR/big.out" 2>"$DIR/err" ||
    fail "get of a large value: $(cat "$DIR/err")"
cmp -s "$DIR/big.json" "$DIR/big.out" ||
    fail "large value differs after the round trip"

# del: deleted, then not found.
run del k1
expect "del" 0 "deleted"
run del k1 --durability commit
expect "del of an absent key" 1 ""
expect_err "del of an absent key" "stash: del: not_found: *"
run get k1
expect "get after del" 1

# TTL: gone after it expires.
run set short '"brief"' --ttl 2
expect "set --ttl 2" 0
run get short
expect "get before the ttl" 0 '"brief"'
sleep 3.2
run get short
expect "get after the ttl" 1

# stats: pretty-printed JSON object.
run stats
expect "stats" 0
case "$OUT" in
"{"*"}")	;;
*)	fail "stats is not an object: $OUT" ;;
esac
[ "$(wc -l <"$DIR/out")" -gt 1 ] || fail "stats is not pretty-printed"

# The socket from the environment.
STASH_SOCKET="$SOCK" "$STASH" ping >"$DIR/out" 2>"$DIR/err" ||
    fail "STASH_SOCKET is not used: $(cat "$DIR/err")"

# A timeout that is not reached.
run -t 5 get fresh
expect "get with -t" 0 "[]"

# --- stop -----------------------------------------------------------------

kill -TERM "$PID"
wait "$PID"
STATUS=$?
PID=
[ "$STATUS" -eq 0 ] || {
	fail "stashd exited $STATUS on SIGTERM"
	cat "$DIR/stashd.log" >&2
}

run ping
expect "ping after the daemon stopped" 2

if [ "$FAILS" -gt 0 ]; then
	echo "test_cli: $FAILS failures" >&2
	exit 1
fi
echo "test_cli: ok"
exit 0

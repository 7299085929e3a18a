#!/bin/sh
# test_systemd.sh -- stashd under a service manager, without one running:
#   - readiness: READY=1 only once it listens, RELOADING=1 then READY=1 on
#     SIGHUP, STOPPING=1 on SIGTERM, to a NOTIFY_SOCKET of our own;
#   - socket activation through systemd-socket-activate;
#   - the units: systemd-analyze verify, and an exposure of 2.0 or lower
#     from systemd-analyze security --offline=yes.
# Exit 0 pass, 1 fail, 77 skip (no daemon, or no systemd tools).
set -u
[ -n "${STASHD:-}" ] || exit 77
SRC=${TOP_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRC/tests/lib.sh"
test_init systemd
wait_for() {	# file pattern
	i=0
	while ! grep -q -- "$2" "$1" 2>/dev/null && [ $i -lt 200 ]; do
		sleep 0.05; i=$((i + 1))
	done
	grep -q -- "$2" "$1" 2>/dev/null
}

# Readiness and state changes.
"$SRC/tests/notify-listen" "$TMP/notify.sock" "$TMP/notes" &
KILL="$KILL $!"
i=0; while [ ! -S "$TMP/notify.sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
printf 'log_level = info\n' > "$TMP/c.conf"
NOTIFY_SOCKET="$TMP/notify.sock" "$STASHD" -c "$TMP/c.conf" \
    -s "$TMP/s.sock" -d "$TMP/s.db" 2>"$TMP/log" &
SP=$!
KILL="$KILL $SP"
if wait_for "$TMP/notes" '^READY=1'; then ok; else bad "no READY=1"; fi
# READY came after the socket was listening.
[ -S "$TMP/s.sock" ] && ok || bad "READY=1 before the socket"
grep -q '^STATUS=' "$TMP/notes" && ok || bad "no STATUS="
kill -HUP "$SP"
if wait_for "$TMP/notes" '^RELOADING=1'; then ok; else bad "no RELOADING=1"; fi
[ "$(grep -c '^READY=1' "$TMP/notes")" -ge 2 ] || sleep 0.5
[ "$(grep -c '^READY=1' "$TMP/notes")" -ge 2 ] && ok ||
    bad "no READY=1 after the reload"
# Writes of every durability, then SIGTERM: all in SQLite, journal empty.
printf '%s\n' '{"op":"set","key":"a","value":1,"durability":"async"}' \
    '{"op":"set","key":"b","value":2,"durability":"journal"}' \
    '{"op":"exec","sql":"CREATE TABLE t(x)"}' \
    '{"op":"exec","sql":"INSERT INTO t VALUES (1)","durability":"journal"}' |
    socat -t 5 - UNIX-CONNECT:"$TMP/s.sock" > /dev/null
kill -TERM "$SP"
wait "$SP"; rc=$?
[ $rc -eq 0 ] && ok || bad "exit $rc after SIGTERM"
n=$(ls "$TMP/s.db.journal" | grep -c '\.seg$')
[ "$n" -eq 0 ] && ok || bad "$n journal segments left after SIGTERM"
rows=$(python3 -c "import sqlite3; c=sqlite3.connect('$TMP/s.db'); print(c.execute('select (select count(*) from stash_kv), (select count(*) from t)').fetchone())")
[ "$rows" = "(2, 1)" ] && ok || bad "after SIGTERM SQLite holds $rows"
grep -q '^STOPPING=1' "$TMP/notes" && ok || bad "no STOPPING=1"

# The watchdog: pings at half of WATCHDOG_USEC; journald's <N> prefixes;
# the slow-request log.
: > "$TMP/notes"
WATCHDOG_USEC=200000 NOTIFY_SOCKET="$TMP/notify.sock" JOURNAL_STREAM=8:1 \
    "$STASHD" -c /dev/null -s "$TMP/w.sock" -d "$TMP/w.db" --slow-log 1ms \
    2>"$TMP/wlog" &
WP=$!
KILL="$KILL $WP"
wait_for "$TMP/notes" '^READY=1' || bad "watchdog run: no READY=1"
printf '%s\n' '{"op":"exec","sql":"CREATE TABLE t(x)"}' \
    '{"op":"exec","sql":"INSERT INTO t VALUES (1)"}' |
    socat -t 5 - UNIX-CONNECT:"$TMP/w.sock" > /dev/null
sleep 0.6
[ "$(grep -c '^WATCHDOG=1' "$TMP/notes")" -ge 3 ] && ok ||
    bad "fewer than 3 WATCHDOG=1 in 0.6 s"
grep -q '^<6>stashd 0.1.0 ready\|^<6>.*ready' "$TMP/wlog" && ok ||
    bad "no <6> priority prefix under JOURNAL_STREAM: $(head -2 "$TMP/wlog")"
grep -q 'slow request: conn [0-9]* .*: exec took [0-9]* ms' "$TMP/wlog" && ok ||
    bad "no slow-request line for a committed exec"
kill -TERM "$WP"; wait "$WP"

# Socket activation.
if command -v systemd-socket-activate >/dev/null 2>&1; then
	systemd-socket-activate -l "$TMP/act.sock" "$STASHD" -c /dev/null \
	    -d "$TMP/a.db" 2>"$TMP/alog" &
	KILL="$KILL $!"
	i=0; while [ ! -S "$TMP/act.sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
	ans=$(printf '{"op":"ping"}\n' | socat -t 5 - UNIX-CONNECT:"$TMP/act.sock")
	[ "$ans" = '{"ok":true}' ] && ok || bad "socket activation: $ans"
	grep -q "socket passed by socket activation" "$TMP/alog" && ok ||
	    bad "the activated socket was not used"
	pkill -TERM -f "stashd -c /dev/null -d $TMP/a.db"
	sleep 0.5
	[ -S "$TMP/act.sock" ] && ok || bad "stashd removed systemd's socket"
else
	echo "skip: no systemd-socket-activate" >&2
fi

# The units.
if command -v systemd-analyze >/dev/null 2>&1; then
	sed -e "s|@sbindir@/stashd|$STASHD|" -e 's|@sysconfdir@|/etc|' \
	    "$SRC/systemd/stashd.service.in" > "$TMP/stashd.service"
	cp "$SRC/systemd/stashd.socket" "$TMP/"
	out=$(cd "$TMP" && systemd-analyze verify --man=no \
	    "$TMP/stashd.service" "$TMP/stashd.socket" 2>&1)
	[ $? -eq 0 ] && [ -z "$out" ] && ok || bad "verify: $out"
	out=$(cd "$TMP" && systemd-analyze security --offline=yes \
	    --threshold=20 "$TMP/stashd.service" 2>&1)
	if [ $? -eq 0 ]; then ok; else
		bad "security: $(echo "$out" | tail -1)"
	fi
	echo "$out" | grep "Overall exposure" >&2
else
	echo "skip: no systemd-analyze" >&2
fi

test_done

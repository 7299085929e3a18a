#!/bin/sh
# test_access.sh -- who may connect and what they may do, checked with
# other uids (setpriv): roles by user and by group, a refused peer, the
# per-user connection limit, the socket's mode, a reload of the lists.
# Runs as root; exit 77 (skip) when not root or without setpriv.
set -u
[ -n "${STASHD:-}" ] || exit 77
[ "$(id -u)" -eq 0 ] || { echo "skip: not root" >&2; exit 77; }
command -v setpriv >/dev/null 2>&1 || { echo "skip: no setpriv" >&2; exit 77; }
command -v socat >/dev/null 2>&1 || { echo "skip: no socat" >&2; exit 77; }
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
test_init access
chmod 755 "$TMP"
PID=
HOLD=
NOBODY=65534
# as UID GID REQUEST...: one connection, its answers on stdout.
as() {
	u=$1; g=$2; shift 2
	printf '%s\n' "$@" | setpriv --reuid="$u" --regid="$g" --clear-groups \
	    socat -t 3 - UNIX-CONNECT:"$TMP/s.sock" 2>&1
}
# greet UID GID: connect and only read (what a refused peer is told).
greet() {
	setpriv --reuid="$1" --regid="$2" --clear-groups \
	    socat -t 3 -u UNIX-CONNECT:"$TMP/s.sock" STDOUT 2>&1
}
start() {
	"$STASHD" -c "$TMP/c.conf" 2>>"$TMP/log" &
	PID=$!
	KILL="$KILL $PID"
	i=0
	while [ ! -S "$TMP/s.sock" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
}
stop() { kill -TERM "$PID"; wait "$PID"; PID=; }
expect() {	# what answer
	case $2 in *"$3"*) ok ;; *) bad "$1: expected $3, got: $2" ;; esac
}

# The default mode 0660 keeps other users out of the socket itself.
printf 'socket = %s/s.sock\ndatabase = %s/t.db\n' "$TMP" "$TMP" > "$TMP/c.conf"
start
out=$(as $NOBODY $NOBODY '{"op":"ping"}')
expect "mode 0660" "$out" "Permission denied"
stop

# Roles by user: nobody reads; root is always admin; others are refused.
cat > "$TMP/c.conf" <<EOC
socket = $TMP/s.sock
database = $TMP/t.db
socket_mode = 0666
allow_users = nobody:read
max_connections_per_uid = 1
EOC
start
out=$(as 0 0 '{"op":"set","key":"k","value":1}')
expect "root sets" "$out" '"version"'
out=$(as $NOBODY $NOBODY '{"op":"get","key":"k"}' '{"op":"set","key":"k","value":2}' \
    '{"op":"ping","id":3}')
expect "nobody reads" "$out" '"value":1'
expect "nobody may not write" "$out" '"forbidden"'
expect "the connection stays" "$out" '"id":3'
# The same roles through RESP.
out=$(as $NOBODY $NOBODY 'GET k' 'INCR k' 'ECHO still')
expect "nobody reads through RESP" "$out" "$(printf '$1\r\n1')"
expect "nobody may not INCR" "$out" "-NOPERM uid $NOBODY may only read"
expect "the RESP connection stays" "$out" "still"
out=$(greet 1 1)
expect "an unlisted user is refused" "$out" '"not an allowed user or group"'
out=$(as 1 1 'PING')
expect "a RESP client is refused in RESP" "$out" \
    "$(printf -- '-NOPERM not an allowed user or group\r')"
grep -q "refused pid [0-9]* uid 1 " "$TMP/log" && ok || bad "refusal not logged"

# At most one connection for nobody: hold one, the second is refused.
(sleep 3 | setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups \
    socat - UNIX-CONNECT:"$TMP/s.sock" >/dev/null 2>&1) &
HOLD=$!
KILL="$KILL $HOLD"
sleep 0.5
out=$(greet $NOBODY $NOBODY)
expect "per-user limit" "$out" '"too many connections for this user"'
out=$(as $NOBODY $NOBODY 'PING')
expect "per-user limit in RESP" "$out" \
    "$(printf -- '-ERR max number of clients reached\r')"
kill $HOLD 2>/dev/null; wait $HOLD 2>/dev/null; HOLD=
sleep 0.3

# Roles by group, and a reload of the lists: nogroup may now write.
cat > "$TMP/c.conf" <<EOC
socket = $TMP/s.sock
database = $TMP/t.db
socket_mode = 0666
allow_groups = nogroup:write
EOC
kill -HUP "$PID"
sleep 0.5
out=$(as $NOBODY $NOBODY '{"op":"set","key":"k","value":3}')
expect "group role after reload" "$out" '"version"'
# A list that does not resolve keeps the running ones.
printf 'socket = %s/s.sock\ndatabase = %s/t.db\nsocket_mode = 0666\nallow_groups = no-such-group-x:read\n' \
    "$TMP" "$TMP" > "$TMP/c.conf"
kill -HUP "$PID"
sleep 0.5
grep -q 'no such group "no-such-group-x"; keeping the running settings' \
    "$TMP/log" && ok || bad "a bad list on reload not refused"
out=$(as $NOBODY $NOBODY '{"op":"set","key":"k","value":4}')
expect "old lists kept" "$out" '"version"'
stop

test_done

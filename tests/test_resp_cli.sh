#!/bin/sh
#
# test_resp_cli.sh -- stashd's RESP protocol through redis-cli and
# redis-benchmark, and through redis-py (tests/test_resp_py.py, run with
# Debian's /usr/bin/python3, which has the python3-redis module).
#
# Starts a private stashd in a fresh folder, checks every command's reply
# as redis-cli prints it, the same keys through the stash tool (protocol
# v1), an interactive-style session on stdin, a short redis-benchmark
# run, then a restart. Exit 0 pass, 1 fail, 77 skip (no redis-cli).

: "${STASHD:?STASHD is not set}"
: "${STASH:?STASH is not set}"
SRC=${TOP_SRCDIR:-$(dirname "$0")/..}
. "$SRC/tests/lib.sh"

if ! command -v redis-cli >/dev/null 2>&1; then
	echo "test_resp_cli: redis-cli is not installed (redis-tools), skipping" >&2
	exit 77
fi

test_init resp_cli
SOCK="$TMP/s.sock"
PID=

start() {
	(cd "$TMP" && exec $STASHD_WRAPPER "$STASHD" -c /dev/null -s "$SOCK" \
	    -d "$TMP/db") >>"$TMP/stashd.log" 2>&1 &
	PID=$!
	KILL="$KILL $PID"
	i=0
	until redis-cli -s "$SOCK" ping >/dev/null 2>&1; do
		i=$((i + 1))
		if [ $i -gt 500 ] || ! kill -0 "$PID" 2>/dev/null; then
			echo "test_resp_cli: stashd did not start:" >&2
			cat "$TMP/stashd.log" >&2
			exit 1
		fi
		sleep 0.02
	done
}

stop() {
	kill -TERM "$PID"
	wait "$PID"
	rc=$?
	[ $rc -eq 0 ] && ok || bad "stashd exited $rc on SIGTERM"
}

# is WHAT EXPECTED ARGS...: redis-cli ARGS prints EXPECTED.
is() {
	what=$1 want=$2
	shift 2
	got=$(redis-cli -s "$SOCK" "$@" 2>&1)
	if [ "$got" = "$want" ]; then ok; else
		bad "$what: got \"$got\", expected \"$want\""
	fi
}

# within WHAT LOW HIGH ARGS...: redis-cli ARGS prints a number in range
# (a second may pass between setting an expiry and reading it).
within() {
	what=$1 lo=$2 hi=$3
	shift 3
	got=$(redis-cli -s "$SOCK" "$@" 2>&1)
	if [ "$got" -ge "$lo" ] 2>/dev/null && [ "$got" -le "$hi" ]; then
		ok
	else
		bad "$what: got \"$got\", expected $lo to $hi"
	fi
}

start

is "PING" "PONG" ping
is "ECHO" "hello there" echo "hello there"
is "SET" "OK" set k1 v1
is "GET" "v1" get k1
is "GET missing" "" get nokey
is "SET NX" "" set k1 v2 nx
is "SET XX GET" "v1" set k1 v3 xx get
is "SET EX" "OK" set k2 v ex 100
within "TTL" 98 100 ttl k2
is "PERSIST" "1" persist k2
is "TTL none" "-1" ttl k2
is "EXPIRE" "1" expire k2 50
is "PEXPIRE" "1" pexpire k2 60000
within "PTTL" 58000 60000 pttl k2
is "SETEX" "OK" setex k3 10 v
is "SETNX" "1" setnx k4 a
is "SETNX existing" "0" setnx k4 b
is "GETSET" "a" getset k4 c
is "TYPE" "string" type k4
is "TYPE missing" "none" type nokey
is "TOUCH" "1" touch k4 nokey
is "EXPIREAT" "1" expireat k4 4000000000
within "PTTL after EXPIREAT" 1 4000000000000 pttl k4
is "PEXPIREAT past" "1" pexpireat k4 1000
is "PEXPIREAT deleted" "0" exists k4
# SET with EXAT or PXAT already past sets a key gone at once, as Redis
# does; with NX, XX and GET as ever.
is "SET EXAT past" "OK" set k4 v exat 1
is "SET EXAT past: gone" "0" exists k4
is "SET NX PXAT past" "OK" set k4 v nx pxat 1000
is "SET NX PXAT past: gone" "" get k4
is "SET again" "OK" set k4 old
is "SET XX EXAT past GET" "old" set k4 new xx exat 1 get
is "SET XX EXAT past GET: gone" "0" exists k4
is "SET XX EXAT past, missing" "" set k4 v xx exat 1
is "SET EXAT past, missing: none" "-2" ttl k4
is "TTL missing" "-2" ttl nokey
# EXPIRE's options, as Redis 7 has them (compared with Redis reply by
# reply): NX without an expiry, XX with one, GT later (none is never
# later), LT earlier (none counts as later).
is "SET e1" "OK" set e1 v
is "EXPIRE XX, none" "0" expire e1 100 xx
is "TTL after XX" "-1" ttl e1
is "EXPIRE NX" "1" expire e1 100 nx
is "EXPIRE NX, has one" "0" expire e1 200 NX
is "EXPIRE GT, earlier" "0" expire e1 50 gt
within "TTL after GT" 99 100 ttl e1
is "EXPIRE GT" "1" expire e1 200 gt
is "EXPIRE LT, later" "0" expire e1 300 lt
is "EXPIRE LT" "1" pexpire e1 150000 lt
within "TTL after LT" 149 150 ttl e1
is "PERSIST e1" "1" persist e1
is "EXPIRE GT, none" "0" expire e1 10 gt
is "EXPIRE LT, none" "1" expire e1 10 lt
within "TTL after LT, none" 9 10 ttl e1
is "EXPIRE NX XX" \
    "ERR NX and XX, GT or LT options at the same time are not compatible" \
    expire e1 10 nx xx
is "EXPIRE GT LT" \
    "ERR GT and LT options at the same time are not compatible" \
    expire e1 10 gt lt
is "EXPIRE FOO" "ERR Unsupported option FOO" expire e1 10 FOO
is "EXPIRE missing NX" "0" expire nokey 10 nx
is "EXPIRE past, GT" "0" expire e1 -1 gt
is "EXISTS after GT" "1" exists e1
is "EXPIRE past, LT" "1" expire e1 -1 lt
is "EXISTS after LT" "0" exists e1
is "MSET" "OK" mset a 1 b 2 c 3
is "MGET" "1
2

3" mget a b nokey c
is "EXISTS" "3" exists a b c nokey
is "DEL" "2" del a b nokey
is "UNLINK" "1" unlink c
is "INCR" "1" incr n
is "INCRBY" "11" incrby n 10
is "DECR" "10" decr n
is "DECRBY" "-5" decrby n 15
is "INCR on text" "ERR value is not an integer or out of range" incr k1
# Integers as Redis reads them: "0", but no leading zero, no "-0".
is "INCRBY 0" "-5" incrby n 0
for v in 01 -0 -01 00 +1 " 1"; do
	is "INCRBY '$v'" "ERR value is not an integer or out of range" \
	    incrby n "$v"
done
is "SET EX 01" "ERR value is not an integer or out of range" \
    set n2 v ex 01
# Every option is read before the expiry's value: a bad option is a
# syntax error even after a bad value, as in Redis.
is "SET EX 0 FOO" "ERR syntax error" set n2 v ex 0 foo
is "SET EX x PX 10" "ERR syntax error" set n2 v ex x px 10
is "SET EX 0 KEEPTTL" "ERR syntax error" set n2 v ex 0 keepttl
is "SET NX EX x XX" "ERR syntax error" set n2 v nx ex x xx
is "SET EX GET" "ERR value is not an integer or out of range" \
    set n2 v ex get
is "nothing set by those" "0" exists n2
# Expiries out of range, in Redis's words: what does not fit 64 bits of
# Unix milliseconds, relative or absolute, a missing key included; the
# same limits as Redis 7.0's, checked the same way.
is "SET EX 0" "ERR invalid expire time in 'set' command" set n2 v ex 0
is "SETEX -1" "ERR invalid expire time in 'setex' command" setex n2 -1 v
is "SET EX (2^63-1)/1000" "ERR invalid expire time in 'set' command" \
    set n2 v ex 9223372036854775
is "SET EX (2^63-1)/1000+1" "ERR invalid expire time in 'set' command" \
    set n2 v ex 9223372036854776
is "SET PX 2^63-1" "ERR invalid expire time in 'set' command" \
    set n2 v px 9223372036854775807
is "SETEX (2^63-1)/1000" "ERR invalid expire time in 'setex' command" \
    setex n2 9223372036854775 v
is "EXPIRE (2^63-1)/1000+1" "ERR invalid expire time in 'expire' command" \
    expire n 9223372036854776
is "EXPIRE (2^63-1)/1000" "ERR invalid expire time in 'expire' command" \
    expire n 9223372036854775
is "EXPIRE missing, too far" "ERR invalid expire time in 'expire' command" \
    expire nokey 9223372036854776
is "PEXPIRE 2^63-1" "ERR invalid expire time in 'pexpire' command" \
    pexpire n 9223372036854775807
is "EXPIREAT (2^63-1)/1000+1" \
    "ERR invalid expire time in 'expireat' command" \
    expireat n 9223372036854776
is "SET EXAT (2^63-1)/1000+1" "ERR invalid expire time in 'set' command" \
    set n2 v exat 9223372036854776
is "EXPIRE -(2^63-1)/1000-1" "ERR invalid expire time in 'expire' command" \
    expire n -9223372036854776
is "n kept its expiry" "-1" ttl n
# The furthest absolute expiries are taken and read back in full: the
# cache and SQLite keep 64 bits of milliseconds.
is "PEXPIREAT 2^63-1 on a key" "1" pexpireat n 9223372036854775807
left=$((9223372036854775807 - $(date +%s%3N)))
within "PTTL of PEXPIREAT 2^63-1" $((left - 2000)) "$left" pttl n
is "PERSIST after it" "1" persist n
is "SET EXAT (2^63-1)/1000" "OK" set n2 v exat 9223372036854775
left=$((9223372036854775 - $(date +%s)))
within "TTL of SET EXAT (2^63-1)/1000" $((left - 2)) "$left" ttl n2
is "SET EX 10^11 (3,170 years)" "OK" set n2 v ex 100000000000
within "TTL of SET EX 10^11" 99999999998 100000000000 ttl n2
is "EXPIREAT 2100-01-01" "1" expireat n2 4102444800
left=$((4102444800 - $(date +%s)))
within "TTL to 2100-01-01" $((left - 2)) "$((left + 1))" ttl n2
is "SET EXAT 2100-01-01" "OK" set n2 v exat 4102444800
within "TTL of SET EXAT 2100-01-01" $((left - 2)) "$((left + 1))" ttl n2
is "DEL n2" "1" del n2
is "APPEND" "5" append ap hello
is "APPEND more" "6" append ap "!"
is "STRLEN" "6" strlen ap
is "GETDEL" "hello!" getdel ap
is "GETDEL gone" "" getdel ap
# GETRANGE and SUBSTR: Redis's index rules, as Redis answers them.
is "SET for GETRANGE" "OK" set gr "Hello World"
is "GETRANGE" "Hello" getrange gr 0 4
is "GETRANGE negative" "World" getrange gr -5 -1
is "GETRANGE past the end" "Hello World" getrange gr 0 100
is "GETRANGE start after end" "" getrange gr 5 3
is "GETRANGE both negative, reversed" "" getrange gr -1 -5
is "GETRANGE before the start" "Hel" getrange gr -100 2
is "GETRANGE after the end" "" getrange gr 11 20
is "GETRANGE missing" "" getrange nokey 0 10
is "GETRANGE not a number" "ERR value is not an integer or out of range" \
    getrange gr a 1
is "SUBSTR" "ell" substr gr 1 3
# SETRANGE pads with zero bytes, keeps the expiry, makes bytes.
is "SETRANGE new" "8" setrange sr 5 abc
is "SETRANGE zero-padded" "8" strlen sr
is "SETRANGE over" "8" setrange sr 0 XY
is "SETRANGE grows" "12" setrange sr 8 tail
is "SETRANGE bytes" '"XY\x00\x00\x00abctail"' --no-raw get sr
is "SETRANGE nothing" "12" setrange sr 2 ""
is "SETRANGE nothing, missing" "0" setrange nokey 3 ""
is "SETRANGE nothing made" "0" exists nokey
is "SETRANGE negative" "ERR offset is out of range" setrange sr -1 x
is "SETRANGE not a number" "ERR value is not an integer or out of range" \
    setrange sr x x
is "SET for SETRANGE's expiry" "OK" set sr v ex 100
is "SETRANGE with expiry" "2" setrange sr 1 w
within "SETRANGE kept the TTL" 99 100 ttl sr
# The longest value a command builds is the longest line (--max-line,
# 1 MB here): SETRANGE and APPEND past it change nothing.
is "SETRANGE to the longest" "1048576" setrange big 1048575 x
is "SETRANGE past the longest" "ERR string exceeds maximum allowed size" \
    setrange big 1048576 x
is "APPEND past the longest" "ERR string exceeds maximum allowed size" \
    append big x
is "the longest unchanged" "1048576" strlen big
is "DEL the longest" "1" del big
# GETEX: GET, then a new expiry, none (PERSIST), or gone if past.
is "GETEX" "vw" getex sr
is "GETEX PERSIST" "vw" getex sr persist
is "TTL after GETEX PERSIST" "-1" ttl sr
is "GETEX EX" "vw" getex sr ex 50
within "TTL after GETEX EX" 49 50 ttl sr
is "GETEX PX" "vw" getex sr px 20000
within "TTL after GETEX PX" 19 20 ttl sr
is "GETEX EX 0" "ERR invalid expire time in 'getex' command" getex sr ex 0
is "GETEX FOO" "ERR syntax error" getex sr foo
is "GETEX EX PERSIST" "ERR syntax error" getex sr ex 10 persist
is "GETEX missing" "" getex nokey ex 10
is "GETEX EXAT past" "vw" getex sr exat 1
is "GETEX EXAT past: gone" "0" exists sr
# MSETNX sets all of its keys or none.
is "MSETNX" "1" msetnx mn1 a mn2 b
is "MSETNX, one exists" "0" msetnx mn2 c mn3 d
is "MSETNX set nothing" "b" mget mn2 mn3
is "MSETNX odd" "ERR wrong number of arguments for 'msetnx' command" \
    msetnx mn4 a mn5
# INCRBYFLOAT in long double, written as Redis writes it (17 decimals,
# trailing zeros cut). Sums exact in binary read the same at any
# precision; valgrind computes long double in double precision, so the
# sums that show long double's own rounding, and infinity, are checked
# only outside it.
is "SET for INCRBYFLOAT" "OK" set fl 10.50
is "INCRBYFLOAT" "10.75" incrbyfloat fl 0.25
is "INCRBYFLOAT negative" "5.75" incrbyfloat fl -5
is "INCRBYFLOAT exponent" "5005.75" incrbyfloat fl 5.0e3
is "INCRBYFLOAT to a whole number" "0" incrbyfloat fl -5005.75
case ${STASHD_WRAPPER:-} in
*valgrind*) ;;
*)
	# 10.6, then 5005.6 with the error of long double, as in Redis.
	is "INCRBYFLOAT, inexact" "10.6" incrbyfloat fl 10.6
	is "INCRBYFLOAT, long double's error" "5005.60000000000000009" \
	    incrbyfloat fl 4995
	is "INCRBYFLOAT inf" "ERR increment would produce NaN or Infinity" \
	    incrbyfloat fl inf
	;;
esac
is "INCRBYFLOAT missing" "3" incrbyfloat nofl 3
is "INCRBYFLOAT big" "1000000000000000000000" incrbyfloat nofl 1e21
is "INCRBYFLOAT not a float" "ERR value is not a valid float" \
    incrbyfloat fl abc
is "INCRBYFLOAT leading space" "ERR value is not a valid float" \
    incrbyfloat fl " 1"
is "INCRBYFLOAT nan" "ERR value is not a valid float" incrbyfloat fl nan
is "INCRBYFLOAT on text" "ERR value is not a valid float" incrbyfloat gr 1
is "DEL the string commands' keys" "5" del gr mn1 mn2 fl nofl
is "SELECT 0" "OK" select 0
is "SELECT 1" "ERR DB index is out of range (stashd has one database, 0)" \
    select 1
is "CLIENT SETNAME" "OK" client setname me
# Subcommands: Redis's errors for an unknown one and a wrong arity.
is "CLIENT FOO" "ERR unknown subcommand 'FOO'. Try CLIENT HELP." client FOO
is "CLIENT SETNAME, no name" \
    "ERR wrong number of arguments for 'client|setname' command" \
    client setname
is "CLIENT GETNAME x" \
    "ERR wrong number of arguments for 'client|getname' command" \
    client GETNAME x
is "COMMAND FOO" "ERR unknown subcommand 'foo'. Try COMMAND HELP." \
    command foo
is "COMMAND COUNT x" \
    "ERR wrong number of arguments for 'command|count' command" \
    command count x
for c in client command; do
	redis-cli -s "$SOCK" $c help >"$TMP/help"
	if head -n 1 "$TMP/help" | grep -q -i "^$c <subcommand>" &&
	    grep -q "^HELP: " "$TMP/help"; then ok; else
		bad "$c HELP: $(cat "$TMP/help")"
	fi
done
is "CONFIG GET save" "save" config get save
is "CONFIG GET appendonly" "appendonly
yes" config get appendonly
is "STASH DURABILITY" "journal" stash durability
is "unknown command" \
    "ERR unknown command 'frob', with args beginning with: 'x' 'y z' " \
    frob x "y z"
is "unknown command, no args" \
    "ERR unknown command 'frob', with args beginning with: " frob
# The args are quoted while they have taken fewer than 128 bytes.
a100=$(printf '%0100d' 0)
is "unknown command, long args" \
    "ERR unknown command 'frob', with args beginning with: '$a100' '$(printf '%025d' 0)' " \
    frob "$a100" "$a100" "$a100"
is "wrong arity" "ERR wrong number of arguments for 'get' command" get

# DBSIZE counts what SQLite holds, after this connection's writes.
is "DBSIZE" "4" dbsize
redis-cli -s "$SOCK" info >"$TMP/info"
for f in "# Server" "# Clients" "# Memory" "# Stats" "# Keyspace" \
    "redis_version:" "used_memory:" "connected_clients:" \
    "total_commands_processed:" "db0:keys=4"; do
	if grep -q "^$f" "$TMP/info"; then ok; else bad "INFO has no $f"; fi
done
# The keyspace line counts the keys with an expiry and the time left to
# them, in ms, as Redis's does: one more of 1000 s (the others here have
# at most 100 s left) adds one and raises the average.
keyspace() {
	redis-cli -s "$SOCK" info keyspace | tr -d '\r' | grep '^db0:'
}
field() { # field NAME LINE
	echo "$2" | tr ',:' '\n\n' | sed -n "s/^$1=//p"
}
ks0=$(keyspace)
is "SET EX for INFO" "OK" set ksx v ex 1000
ks1=$(keyspace)
e0=$(field expires "$ks0") e1=$(field expires "$ks1")
t0=$(field avg_ttl "$ks0") t1=$(field avg_ttl "$ks1")
if [ "$(field keys "$ks0")" = 4 ] && [ "$(field keys "$ks1")" = 5 ] &&
    [ "$e1" -eq $((e0 + 1)) ] && [ "$t1" -gt "$t0" ] &&
    [ "$t1" -le $(((t0 * e0 + 1000000) / e1 + 1000)) ] &&
    [ "$t1" -ge $(((t0 * e0 + 998000) / e1 - 1000)) ]; then
	ok
else
	bad "INFO keyspace, one more expiry of 1000 s: $ks0, then $ks1"
fi
is "DEL for INFO" "1" del ksx

# The same keys through protocol v1.
out=$("$STASH" -s "$SOCK" get k1)
[ "$out" = '"v3"' ] && ok || bad "stash get of a RESP value: $out"
"$STASH" -s "$SOCK" set j '{"x":1}' >/dev/null || bad "stash set"
is "GET of a JSON value" '{"x":1}' get j
"$STASH" -s "$SOCK" set jn 7 >/dev/null || bad "stash set 7"
is "INCR of a JSON integer" "8" incr jn
out=$("$STASH" -s "$SOCK" get jn)
[ "$out" = '8' ] && ok || bad "stash get after INCR: $out"

# A session on stdin, as typed, with durability changes.
out=$(printf '%s\n' "stash durability commit" "set s1 x" "get s1" \
    "stash durability" "stash durability async" "incr s2" "get s2" \
    "client getname" "echo end" | redis-cli -s "$SOCK")
want="OK
OK
x
commit
OK
1
1

end"
[ "$out" = "$want" ] && ok || bad "session on stdin: \"$out\""

# Inline commands with quotes, as typed at nc or socat: redis-cli's own
# splitting (sdssplitargs), done by the server. Answers are compared as
# od -c prints them.
if command -v socat >/dev/null 2>&1; then
	# inline LINE...: the answers to the lines, sent on one connection.
	inline() {
		printf '%s\r\n' "$@" | timeout 10 socat -t 2 - \
		    "UNIX-CONNECT:$SOCK" | od -An -c | tr -s ' \n' ' '
	}
	# bytes FORMAT: what printf FORMAT prints, as inline() shows it.
	bytes() {
		printf -- "$1" | od -An -c | tr -s ' \n' ' '
	}
	got=$(inline 'SET "a b" "x\ny\t\x41\"z"' 'GET "a b"' \
	    "APPEND 'a b' 'it\\'s'" 'ECHO a"b c"' 'ECHO ""')
	want=$(bytes '+OK\r\n$7\r\nx\ny\tA"z\r\n:11\r\n$4\r\nab c\r\n$0\r\n\r\n')
	[ "$got" = "$want" ] && ok || bad "inline quotes: $got"
	is "GET of a quoted inline SET" "$(printf 'x\ny\tA"zit'"'"'s')" \
	    get "a b"
	got=$(inline 'SET k "v' 'PING')
	want=$(bytes '-ERR Protocol error: unbalanced quotes in request\r\n')
	[ "$got" = "$want" ] && ok || bad "unbalanced quotes: $got"
	got=$(inline 'SET k "v"w' 'PING')
	[ "$got" = "$want" ] && ok || bad "a quote closed against a byte: $got"
	is "nothing set by unbalanced quotes" "" get k
	got=$(inline '"ping" '"'hi'")
	[ "$got" = "$(bytes '$2\r\nhi\r\n')" ] && ok ||
	    bad "quoted command name: $got"
	# MULTI ... EXEC, DISCARD, EXECABORT and the errors around them:
	# byte for byte what Redis 7.0 answers to the same lines.
	got=$(inline 'EXEC' 'DISCARD' 'MULTI' 'SET t1 1' 'INCR t1' 'GET t1' \
	    'MULTI' 'EXEC' 'MULTI' 'SET t2 1' 'FOO' 'GET t2' 'EXEC' 'GET t2' \
	    'MULTI' 'SET t4 x' 'DISCARD' 'GET t4' 'MULTI' 'SET t5 abc' \
	    'INCR t5' 'APPEND t5 def' 'EXEC')
	want=$(bytes '-ERR EXEC without MULTI\r\n-ERR DISCARD without MULTI\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n-ERR MULTI calls can not be nested\r\n*3\r\n+OK\r\n:2\r\n$1\r\n2\r\n+OK\r\n+QUEUED\r\n-ERR unknown command '"'FOO'"', with args beginning with: \r\n+QUEUED\r\n-EXECABORT Transaction discarded because of previous errors.\r\n$-1\r\n+OK\r\n+QUEUED\r\n+OK\r\n$-1\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n+OK\r\n-ERR value is not an integer or out of range\r\n:6\r\n')
	[ "$got" = "$want" ] && ok || bad "MULTI/EXEC: $got"
	# A wrong number of arguments to MULTI, EXEC, DISCARD or WATCH is
	# checked first, as in Redis: inside a transaction it aborts it, and
	# EXEC's own ends it at once (and any watch with it).
	got=$(inline 'MULTI x' 'EXEC x' 'DISCARD x' 'MULTI' 'MULTI x' \
	    'SET t6 1' 'EXEC' 'MULTI' 'WATCH' 'EXEC' 'MULTI' 'DISCARD x' \
	    'EXEC' 'MULTI' 'SET t6 1' 'EXEC x' 'EXEC' 'GET t6' 'WATCH t6' \
	    'EXEC x' 'SET t6 2' 'MULTI' 'GET t6' 'EXEC')
	want=$(bytes '-ERR wrong number of arguments for '"'multi'"' command\r\n-EXECABORT Transaction discarded because of: wrong number of arguments for '"'exec'"' command\r\n-ERR wrong number of arguments for '"'discard'"' command\r\n+OK\r\n-ERR wrong number of arguments for '"'multi'"' command\r\n+QUEUED\r\n-EXECABORT Transaction discarded because of previous errors.\r\n+OK\r\n-ERR wrong number of arguments for '"'watch'"' command\r\n-EXECABORT Transaction discarded because of previous errors.\r\n+OK\r\n-ERR wrong number of arguments for '"'discard'"' command\r\n-EXECABORT Transaction discarded because of previous errors.\r\n+OK\r\n+QUEUED\r\n-EXECABORT Transaction discarded because of: wrong number of arguments for '"'exec'"' command\r\n-ERR EXEC without MULTI\r\n$-1\r\n+OK\r\n-EXECABORT Transaction discarded because of: wrong number of arguments for '"'exec'"' command\r\n+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n$1\r\n2\r\n')
	[ "$got" = "$want" ] && ok || bad "arity of MULTI/EXEC/DISCARD/WATCH: $got"
	# WATCH, UNWATCH and EXEC's null array: byte for byte what Redis 7.0
	# answers (a key set and deleted again since WATCH counts as changed).
	got=$(inline 'WATCH a' 'SET a 1' 'MULTI' 'GET a' 'EXEC' 'WATCH a' \
	    'MULTI' 'GET a' 'EXEC' 'WATCH a b' 'UNWATCH' 'SET a 2' 'MULTI' \
	    'GET a' 'EXEC' 'MULTI' 'WATCH a' 'EXEC' 'WATCH' 'UNWATCH x' \
	    'WATCH nokey' 'MULTI' 'SET nokey 1' 'EXEC' 'WATCH nokey2' \
	    'SET nokey2 1' 'DEL nokey2' 'MULTI' 'GET nokey2' 'EXEC' \
	    'WATCH a' 'MULTI' 'UNWATCH' 'GET a' 'EXEC' 'WATCH a' 'DISCARD' \
	    'MULTI' 'DISCARD')
	want=$(bytes '+OK\r\n+OK\r\n+OK\r\n+QUEUED\r\n*-1\r\n+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n$1\r\n1\r\n+OK\r\n+OK\r\n+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n$1\r\n2\r\n+OK\r\n-ERR WATCH inside MULTI is not allowed\r\n*0\r\n-ERR wrong number of arguments for '"'"'watch'"'"' command\r\n-ERR wrong number of arguments for '"'"'unwatch'"'"' command\r\n+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n+OK\r\n+OK\r\n:1\r\n+OK\r\n+QUEUED\r\n*-1\r\n+OK\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n$1\r\n2\r\n+OK\r\n-ERR DISCARD without MULTI\r\n+OK\r\n+OK\r\n')
	[ "$got" = "$want" ] && ok || bad "WATCH: $got"
	# Blank lines and spaces before the first command, as Redis takes
	# them; protocol v1 after blank lines is still protocol v1.
	got=$(inline '' '' '  PING' '	echo x')
	[ "$got" = "$(bytes '+PONG\r\n$1\r\nx\r\n')" ] && ok ||
	    bad "blank lines before an inline command: $got"
	got=$(printf '\n {"op":"ping"}\n' | timeout 10 socat -t 2 - \
	    "UNIX-CONNECT:$SOCK" | tail -n 1)
	[ "$got" = '{"ok":true}' ] && ok ||
	    bad "a blank line before a protocol v1 request: $got"
else
	echo "test_resp_cli: socat is not installed, skipping inline quotes" >&2
fi

# redis-cli at a terminal: it asks COMMAND DOCS at start, then prompts.
if command -v script >/dev/null 2>&1; then
	(sleep 0.5; printf 'set t 41\r'; sleep 0.3; printf 'incr t\r'
	    sleep 0.3; printf 'quit\r'; sleep 0.3) |
	    TERM=dumb timeout 20 script -qc "redis-cli -s $SOCK" /dev/null \
	    >"$TMP/tty" 2>&1
	if grep -q "(integer) 42" "$TMP/tty"; then ok; else
		bad "interactive redis-cli: $(cat "$TMP/tty")"
	fi
fi

# redis-benchmark runs to the end without an error.
if command -v redis-benchmark >/dev/null 2>&1; then
	redis-benchmark -s "$SOCK" -t set,get,incr,mset -n 2000 -c 5 -P 4 -q \
	    >"$TMP/bench" 2>&1
	rc=$?
	n=$(grep -c "requests per second" "$TMP/bench")
	if [ $rc -eq 0 ] && [ "$n" -eq 4 ] && ! grep -q ERR "$TMP/bench"; then
		ok
	else
		bad "redis-benchmark (exit $rc): $(cat "$TMP/bench")"
	fi
fi

# DBSIZE and INFO answer while other clients write without a pause: they
# wait for the writes taken before them, not for those taken since.
if command -v redis-benchmark >/dev/null 2>&1; then
	redis-benchmark -s "$SOCK" -t set -n 100000000 -c 20 -P 16 -r 100000 \
	    -d 100 -q >/dev/null 2>&1 &
	bench=$!
	KILL="$KILL $bench"
	sleep 0.5
	n=$(timeout 20 redis-cli -s "$SOCK" dbsize 2>&1)
	info=$(timeout 20 redis-cli -s "$SOCK" info keyspace 2>&1)
	if kill -0 "$bench" 2>/dev/null; then running=1; else running=0; fi
	kill "$bench" 2>/dev/null
	wait "$bench" 2>/dev/null
	if [ "$n" -ge 2 ] 2>/dev/null; then ok; else
		bad "DBSIZE under writes: got \"$n\""
	fi
	case $info in
	*db0:keys=*) ok ;;
	*) bad "INFO keyspace under writes: got \"$info\"" ;;
	esac
	[ $running -eq 1 ] && ok || bad "redis-benchmark stopped early"
fi

# Values persist across a restart.
stop
start
is "GET after restart" "v3" get k1
is "INCR after restart" "-4" incr n
t=$(redis-cli -s "$SOCK" ttl k2)
[ "$t" -ge 50 ] && [ "$t" -le 60 ] && ok || bad "TTL after restart: $t"
stop

# redis-py, with Debian's Python (python3 on PATH may lack the module).
if /usr/bin/python3 -c 'import redis' 2>/dev/null; then
	if /usr/bin/python3 "$SRC/tests/test_resp_py.py"; then ok; else
		bad "tests/test_resp_py.py"
	fi
else
	echo "test_resp_cli: python3-redis is not installed, skipping it" >&2
fi

test_done

#!/bin/sh
# test_options.sh -- the configuration file and the command line.
#
# conf/stashd.conf lists exactly the keys --help lists and checks clean; a
# bad file is refused naming the key and the line; the command line wins
# over the file; a daemon started with only -c takes its socket and
# database from the file. Exit 0 pass, 1 fail, 77 skip.
set -u
[ -n "${STASHD:-}" ] || exit 77
SRC=$(cd "$(dirname "$0")/.." && pwd)
. "$SRC/tests/lib.sh"
test_init options
PID=

# Every option of --help is a key of the example file, and back.
"$STASHD" --help | sed -n 's/^ *\(-., \)\{0,1\}--\([a-z-]*\) .*/\2/p' |
    grep -v -x -e config -e check-config -e salvage -e verbose -e help \
    -e version | sort > "$TMP/help"
sed -n 's/^#\{0,1\}\([a-z_]*\) =.*/\1/p' "$SRC/conf/stashd.conf" |
    tr _ - | sort > "$TMP/conf"
if [ -s "$TMP/help" ] && cmp -s "$TMP/help" "$TMP/conf"; then ok; else
	bad "--help and conf/stashd.conf list different keys:"
	diff "$TMP/help" "$TMP/conf" >&2
fi

# The example checks clean.
if "$STASHD" -c "$SRC/conf/stashd.conf" --check-config >/dev/null; then ok
else bad "conf/stashd.conf does not check"; fi

# Refusals name the key and the line, and exit 2.
expect_refused() {	# file-content pattern
	printf "$1" > "$TMP/bad.conf"
	out=$("$STASHD" -c "$TMP/bad.conf" --check-config 2>&1)
	rc=$?
	if [ $rc -eq 2 ] && echo "$out" | grep -q -- "$2"; then ok; else
		bad "expected exit 2 and '$2', got $rc: $out"
	fi
}
expect_refused 'max_memory = 64MB\nbogus = 1\n' 'bad.conf:2: unknown key "bogus"'
expect_refused '# c\n\nmax_memory = lots\n' 'bad.conf:3: max-memory: invalid value "lots"'
expect_refused 'readers = 0\n' 'bad.conf:1: readers: invalid value "0"'
expect_refused 'durability_kv = fast\n' 'durability-kv: invalid value "fast"'
expect_refused 'busy_poll = 1001us\n' 'busy-poll: invalid value "1001us"'
printf 'busy_poll = 1ms\n' > "$TMP/poll.conf"
if "$STASHD" -c "$TMP/poll.conf" --check-config >/dev/null; then ok
else bad "busy_poll = 1ms refused"; fi
expect_refused '[other]\nsql = on\n' 'bad.conf:2: unknown section'
expect_refused 'just words\n' 'bad.conf:1:'
out=$("$STASHD" -c "$TMP/nonexistent" --check-config 2>&1)
if [ $? -eq 2 ] && echo "$out" | grep -q "No such file"; then ok
else bad "a missing file: $out"; fi
# A bad command-line value is refused too.
out=$("$STASHD" --max-line 5GB 2>&1)
if [ $? -eq 2 ] && echo "$out" | grep -q "max-line"; then ok
else bad "--max-line 5GB: $out"; fi

# Dashes or underscores, with or without a section.
printf 'max-memory = 64MB\n[stashd]\nidle_timeout = 500ms\n' > "$TMP/ok.conf"
if "$STASHD" -c "$TMP/ok.conf" --check-config >/dev/null; then ok
else bad "dashes and [stashd] refused"; fi

# A daemon from the file alone; the command line wins over the file.
start() {
	(cd "$TMP" && exec "$STASHD" "$@") 2>>"$TMP/log" &
	PID=$!
	KILL="$KILL $PID"
	i=0
	while [ ! -S "$TMP/f.sock" ] && [ $i -lt 200 ]; do
		sleep 0.05; i=$((i + 1))
	done
}
stop() {
	kill -TERM "$PID"; wait "$PID"; rc=$?; PID=
	[ $rc -eq 0 ] || bad "stashd exited $rc"
}
ask() {
	printf '%s\n' "$1" | socat -t 5 - UNIX-CONNECT:"$TMP/f.sock"
}
printf 'socket = %s/f.sock\ndatabase = %s/f.db\nsql = off\n' "$TMP" "$TMP" \
    > "$TMP/f.conf"
start -c "$TMP/f.conf"
case $(ask '{"op":"query","sql":"SELECT 1"}') in
*'"forbidden"'*) ok ;;
*) bad "sql = off in the file was not applied" ;;
esac
[ -f "$TMP/f.db" ] && ok || bad "database from the file not used"
stop
start -c "$TMP/f.conf" --sql on
case $(ask '{"op":"query","sql":"SELECT 1"}') in
*'"rows":[[1]]'*) ok ;;
*) bad "--sql on did not win over the file" ;;
esac
stop

# SIGHUP: what can change does, what cannot is said, a bad file keeps all.
stat_of() {	# section field
	ask '{"op":"stats"}' | sed -n "s/.*\"$1\":{[^}]*\"$2\":\([0-9]*\).*/\1/p"
}
printf 'socket = %s/f.sock\ndatabase = %s/f.db\nmax_connections = 100\n' \
    "$TMP" "$TMP" > "$TMP/f.conf"
: > "$TMP/log"
start -c "$TMP/f.conf"
[ "$(stat_of connections max)" = 100 ] && ok || bad "max_connections not 100"
printf 'socket = %s/g.sock\ndatabase = %s/f.db\nmax_connections = 7\nmax_memory = 64MB\n' \
    "$TMP" "$TMP" > "$TMP/f.conf"
kill -HUP "$PID"; sleep 0.5
[ "$(stat_of connections max)" = 7 ] && ok || bad "reload: max_connections"
[ "$(stat_of cache limit)" = 67108864 ] && ok || bad "reload: max_memory"
grep -q "reload: socket: .* needs a restart" "$TMP/log" && ok ||
    bad "reload: socket change not reported"
[ -S "$TMP/f.sock" ] && ok || bad "reload moved the socket"
echo 'garbage' > "$TMP/f.conf"
kill -HUP "$PID"; sleep 0.5
grep -q "keeping the running settings" "$TMP/log" && ok ||
    bad "a bad file on reload not reported"
[ "$(stat_of connections max)" = 7 ] && ok || bad "a bad file changed settings"
stop

# write_queue_max over half of max_memory is held to half, and said at
# start; a reload of the same file then finds nothing changed.
printf 'socket = %s/f.sock\ndatabase = %s/f.db\nmax_memory = 64MB\nwrite_queue_max = 64MB\n' \
    "$TMP" "$TMP" > "$TMP/f.conf"
: > "$TMP/log"
start -c "$TMP/f.conf"
[ "$(stat_of write_queue limit_bytes)" = 33554432 ] && ok ||
    bad "write queue limit not half of max_memory: $(stat_of write_queue limit_bytes)"
grep -q "write-queue-max lowered to 33554432 bytes" "$TMP/log" && ok ||
    bad "the lowered write queue limit not logged"
kill -HUP "$PID"; sleep 0.5
grep -q "reload: nothing changed" "$TMP/log" && ok ||
    bad "a reload of the same file reported a change: $(grep reload: "$TMP/log")"
# A larger max_memory on reload gives the queue the whole 64MB.
sed 's/^max_memory = 64MB/max_memory = 256MB/' "$TMP/f.conf" > "$TMP/g.conf" &&
    mv "$TMP/g.conf" "$TMP/f.conf"
kill -HUP "$PID"; sleep 0.5
[ "$(stat_of write_queue limit_bytes)" = 67108864 ] && ok ||
    bad "reload: write queue limit not 64MB: $(stat_of write_queue limit_bytes)"
stop

# Unset, write_queue_max is a quarter of max_memory, from 32MB to 256MB
# (and at most half of max_memory); it follows max_memory on reload, and
# setting it on reload says from what to what.
wq_default() {	# max_memory, then the limit expected in MB
	printf 'socket = %s/f.sock\ndatabase = %s/f.db\nmax_memory = %s\n' \
	    "$TMP" "$TMP" "$1" > "$TMP/f.conf"
	kill -HUP "$PID"; sleep 0.5
	got=$(stat_of write_queue limit_bytes)
	[ "$got" = $(($2 * 1048576)) ] && ok ||
	    bad "max_memory $1: write queue limit $got, not ${2}MB"
}
printf 'socket = %s/f.sock\ndatabase = %s/f.db\n' "$TMP" "$TMP" > "$TMP/f.conf"
: > "$TMP/log"
start -c "$TMP/f.conf"
[ "$(stat_of write_queue limit_bytes)" = 67108864 ] && ok ||
    bad "default write queue limit not 64MB: $(stat_of write_queue limit_bytes)"
wq_default 1GB 256
wq_default 4GB 256
wq_default 200MB 50
wq_default 100MB 32
wq_default 48MB 24
grep -q "write-queue-max lowered" "$TMP/log" &&
    bad "the default write queue limit was reported lowered" || ok
printf 'socket = %s/f.sock\ndatabase = %s/f.db\nmax_memory = 1GB\nwrite_queue_max = 40MB\n' \
    "$TMP" "$TMP" > "$TMP/f.conf"
kill -HUP "$PID"; sleep 0.5
[ "$(stat_of write_queue limit_bytes)" = 41943040 ] && ok ||
    bad "write_queue_max 40MB: $(stat_of write_queue limit_bytes)"
grep -q "reload: write-queue-max: (default) -> 40MB" "$TMP/log" && ok ||
    bad "reload to 40MB not logged: $(grep reload: "$TMP/log")"
stop

# apply_nice: the thread that applies writes to SQLite runs that much
# nicer than the daemon (up to 19), the others as the daemon.
printf 'socket = %s/f.sock\ndatabase = %s/f.db\napply_nice = 7\n' "$TMP" "$TMP" \
    > "$TMP/f.conf"
start -c "$TMP/f.conf"
base=$(awk '{print $19}' /proc/"$PID"/stat)
want=$((base + 7 > 19 ? 19 : base + 7))
nices=$(for t in /proc/"$PID"/task/*/stat; do awk '{print $19}' "$t"; done |
    sort -n | tr '\n' ' ')
case " $nices" in *" $want "*) ok ;; *) bad "no thread at nice $want: $nices" ;; esac
case " $nices" in *" $base "*) ok ;; *) bad "no thread at nice $base: $nices" ;; esac
stop

# journal_cpu: the CPUs the journal thread may run on, and what stats says.
expect_refused 'journal_cpu = fast\n' 'journal-cpu: invalid value "fast"'
expect_refused 'journal_cpu = -1\n' 'journal-cpu: invalid value "-1"'
expect_refused 'journal_cpu = 1024\n' 'journal-cpu: invalid value "1024"'
journal_cpus() {
	for t in /proc/"$PID"/task/*; do
		[ "$(cat "$t/comm")" = journal ] &&
		    sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "$t/status"
	done
}
thread_cpu() {
	ask '{"op":"stats"}' |
	    sed -n 's/.*"journal":{[^}]*"thread_cpu":\([0-9a-z]*\).*/\1/p'
}
all=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status)
printf 'socket = %s/f.sock\ndatabase = %s/f.db\njournal_cpu = 0\n' \
    "$TMP" "$TMP" > "$TMP/f.conf"
start -c "$TMP/f.conf"
sleep 0.2
case $(thread_cpu) in
0)	# the thread runs there, and says so
	[ "$(journal_cpus)" = 0 ] && ok ||
	    bad "journal_cpu = 0: the thread may run on $(journal_cpus)" ;;
null)	# CPU 0 is not one this daemon may use: said, and it runs on
	grep -q "journal thread: cannot run on CPU 0" "$TMP/log" && ok ||
	    bad "journal_cpu = 0 not used and not reported" ;;
*)	bad "journal_cpu = 0: stats says $(thread_cpu)" ;;
esac
stop
# A CPU number the machine does not have: said, and the daemon runs on.
: > "$TMP/log"
start -c "$TMP/f.conf" --journal-cpu 1023
sleep 0.2
grep -q "journal thread: cannot run on CPU 1023" "$TMP/log" && ok ||
    bad "journal_cpu = 1023 not reported"
[ "$(thread_cpu)" = null ] && [ "$(journal_cpus)" = "$all" ] && ok ||
    bad "journal_cpu = 1023: stats says $(thread_cpu), the thread may run on $(journal_cpus)"
[ -n "$(ask '{"op":"set","key":"jc","value":1,"durability":"journal"}' |
    grep '"ok":true')" ] && ok || bad "journal_cpu = 1023: a durable set failed"
stop
start -c "$TMP/f.conf" --journal-cpu off
sleep 0.2
[ "$(journal_cpus)" = "$all" ] && ok ||
    bad "journal_cpu = off: the thread may run on $(journal_cpus), not $all"
[ "$(thread_cpu)" = null ] && ok || bad "journal_cpu = off: stats says $(thread_cpu)"
stop
# auto: anywhere until clients wait on the journal's fdatasyncs; then on
# the CPU that takes the disk's interrupts, when the log named one the
# daemon may run on (it depends on the machine: none for a device-mapper
# disk, an NVMe disk or one CPU), and stats names it.
: > "$TMP/log"
start -c "$TMP/f.conf" --journal-cpu auto
sleep 0.2
[ "$(thread_cpu)" = null ] && [ "$(journal_cpus)" = "$all" ] && ok ||
    bad "journal_cpu = auto, no writes yet: stats says $(thread_cpu), the thread may run on $(journal_cpus)"
# Durable writes from 4 clients, one at a time each: a group every
# fdatasync, all synced, for a second.
"${TOP_BUILDDIR:-$SRC}/tests/bench/stash-bench" -s "$TMP/f.sock" -c 4 \
    -t set -r 1000 --durability journal --duration 1 >/dev/null 2>&1 ||
    bad "stash-bench failed"
irq=$(sed -n "s/.*the journal disk's interrupts go to CPU \([0-9]*\)$/\1/p" \
    "$TMP/log" | tail -n 1)
cpu=$(thread_cpu)
if [ -n "$irq" ]; then
	[ "$cpu" = "$irq" ] && [ "$(journal_cpus)" = "$irq" ] && ok ||
	    bad "journal_cpu = auto, interrupts on CPU $irq: stats says $cpu, the thread may run on $(journal_cpus)"
else
	[ "$cpu" = null ] && [ "$(journal_cpus)" = "$all" ] && ok ||
	    bad "journal_cpu = auto, no interrupts' CPU: stats says $cpu, the thread may run on $(journal_cpus)"
fi
stop

test_done

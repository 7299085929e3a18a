#!/usr/bin/python3
"""test_resp_py.py -- stashd's RESP protocol through the redis-py client.

Starts a private stashd (in a fresh folder under $TESTS_TMPDIR) and talks
to it with redis-py, with raw RESP on a socket (RESP3, malformed input)
and with protocol v1 JSON lines on the same socket (both see the same
keys). Every check is an assert on an answer; the first failure ends the
test with exit status 1.
"""
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

import redis

STASHD = os.environ.get("STASHD")
if not STASHD:
    print("test_resp_py: STASHD is not set, skipping", file=sys.stderr)
    sys.exit(77)

TMP = tempfile.mkdtemp(prefix="test_resp_py.",
                       dir=os.environ.get("TESTS_TMPDIR", "/tmp"))
SOCK = os.path.join(TMP, "s.sock")
DB = os.path.join(TMP, "db")
proc = None
checks = 0


def start(*extra):
    global proc
    wrapper = os.environ.get("STASHD_WRAPPER", "").split()
    proc = subprocess.Popen(wrapper + [STASHD, "-s", SOCK, "-d", DB, "-c",
                                       "/dev/null"] + list(extra),
                            stderr=open(os.path.join(TMP, "log"), "a"))
    for _ in range(500):
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(SOCK)
            s.close()
            return
        except OSError:
            time.sleep(0.02)
    sys.stderr.write(open(os.path.join(TMP, "log")).read())
    raise SystemExit("stashd did not start")


def stop(sig=signal.SIGTERM):
    global proc
    proc.send_signal(sig)
    rc = proc.wait(timeout=60)
    proc = None
    return rc


def check(cond, what):
    global checks
    if not cond:
        raise AssertionError(what)
    checks += 1


def eq(got, want, what):
    check(got == want, "%s: got %r, expected %r" % (what, got, want))


def client(**kw):
    return redis.Redis(unix_socket_path=SOCK, **kw)


def json_req(obj):
    """One protocol v1 request on its own connection."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(SOCK)
    s.sendall((json.dumps(obj) + "\n").encode())
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    return json.loads(buf)


def raw(data, want_close=False):
    """Send raw bytes, return everything read until a pause or close."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(SOCK)
    s.sendall(data)
    s.settimeout(0.5)
    buf = b""
    closed = False
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                closed = True
                break
            buf += chunk
    except socket.timeout:
        pass
    s.close()
    if want_close:
        check(closed, "connection closed after %r" % data[:40])
    return buf


def expect_error(fn, prefix, what):
    try:
        fn()
    except redis.ResponseError as e:
        check(str(e).startswith(prefix), "%s: error %r" % (what, str(e)))
        return
    raise AssertionError("%s: no error" % what)


def expect_error_in(fn, sub, what):
    """fn must raise a ResponseError whose text holds sub."""
    try:
        fn()
    except redis.ResponseError as e:
        check(sub in str(e), "%s: error %r" % (what, str(e)))
        return
    raise AssertionError("%s: no error" % what)


def expect_watch_error(fn, what):
    """fn must raise redis-py's WatchError (EXEC answered a null array)."""
    try:
        fn()
    except redis.WatchError:
        check(True, what)
        return
    raise AssertionError("%s: EXEC ran" % what)


def test_connection(r):
    eq(r.ping(), True, "PING")
    eq(r.echo(b"a\r\nb\x00"), b"a\r\nb\x00", "ECHO binary")
    check(r.execute_command("SELECT", 0) in (True, b"OK", "OK"), "SELECT 0")
    expect_error(lambda: r.execute_command("SELECT", 1), "DB index",
                 "SELECT 1")
    eq(r.client_setname("worker-1"), True, "CLIENT SETNAME")
    check(r.client_getname() in ("worker-1", b"worker-1"), "CLIENT GETNAME")
    check(isinstance(r.client_id(), int) and r.client_id() > 0, "CLIENT ID")
    check(r.command_count() >= 30, "COMMAND COUNT")
    cmds = r.command()
    check("get" in cmds and cmds["get"]["arity"] == 2, "COMMAND")
    eq(raw(b"COMMAND INFO get nosuch\r\n"),
       b"*2\r\n*6\r\n$3\r\nget\r\n:2\r\n*1\r\n+readonly\r\n"
       b":1\r\n:1\r\n:1\r\n$-1\r\n", "COMMAND INFO")
    eq(r.config_get("save"), {"save": ""}, "CONFIG GET save")
    eq(r.config_get("appendonly"), {"appendonly": "yes"},
       "CONFIG GET appendonly")
    check("maxmemory" in r.config_get("max*"), "CONFIG GET max*")
    eq(r.config_get("appendfsync"), {"appendfsync": "always"},
       "journal durability is an fsync per group")
    expect_error(lambda: r.execute_command("NOSUCH", "x"),
                 "unknown command", "unknown command")
    expect_error(lambda: r.execute_command("GET"), "wrong number",
                 "arity")
    expect_error(lambda: r.execute_command("GET", ""), "invalid key",
                 "empty key")
    expect_error(lambda: r.get(b"k" * 1025), "invalid key", "long key")


def test_strings(r):
    eq(r.set("s1", b"v\x00\xff"), True, "SET binary")
    eq(r.get("s1"), b"v\x00\xff", "GET binary")
    eq(r.get("nokey"), None, "GET missing")
    eq(r.strlen("s1"), 3, "STRLEN")
    eq(r.strlen("nokey"), 0, "STRLEN missing")
    eq(r.set("s1", "x", nx=True), None, "SET NX on existing")
    eq(r.set("s2", "x", nx=True), True, "SET NX on new")
    eq(r.set("s3", "y", xx=True), None, "SET XX on missing")
    eq(r.set("s2", "y", xx=True), True, "SET XX on existing")
    eq(r.set("s2", "z", get=True), b"y", "SET GET")
    eq(r.get("s2"), b"z", "after SET GET")
    eq(r.setex("s4", 100, "t"), True, "SETEX")
    check(98 <= r.ttl("s4") <= 100, "TTL after SETEX")
    check(90000 <= r.pttl("s4") <= 100000, "PTTL after SETEX")
    eq(r.set("s5", "t", px=1500), True, "SET PX")
    check(1 <= r.ttl("s5") <= 2, "TTL after PX")
    eq(r.set("s5", "u", keepttl=True), True, "SET KEEPTTL")
    check(r.ttl("s5") >= 1, "KEEPTTL kept the TTL")
    eq(r.ttl("s1"), -1, "TTL without expiry")
    eq(r.ttl("nokey"), -2, "TTL missing")
    expect_error(lambda: r.set("s6", "v", ex=0), "invalid expire",
                 "SET EX 0")
    eq(r.set("s6", "v", exat=1), True, "SET EXAT past")
    eq(r.exists("s6"), 0, "SET EXAT past: gone")
    eq(r.set("s5", "w", pxat=1000, get=True), b"u", "SET PXAT past GET")
    eq(r.exists("s5"), 0, "SET PXAT past GET: gone")
    expect_error(lambda: r.set("s6", "v", ex=2**63 // 1000 + 1),
                 "invalid expire", "SET EX past 64 bits of milliseconds")
    eq(r.expireat("s1", 4102444800), True, "EXPIREAT 2100-01-01")
    check(r.ttl("s1") >= 4102444800 - int(time.time()) - 2,
          "TTL to 2100-01-01 read back in full")
    eq(r.persist("s1"), True, "PERSIST")
    eq(r.set("g1", "Hello World"), True, "SET for GETRANGE")
    eq(r.getrange("g1", -5, -1), b"World", "GETRANGE")
    eq(r.setrange("g1", 6, "There"), 11, "SETRANGE")
    eq(r.setrange("g2", 2, b"\x00z"), 4, "SETRANGE new")
    eq(r.get("g2"), b"\x00\x00\x00z", "SETRANGE zero-padded")
    eq(r.getex("g1", ex=100), b"Hello There", "GETEX EX")
    check(98 <= r.ttl("g1") <= 100, "TTL after GETEX EX")
    eq(r.getex("g1", persist=True), b"Hello There", "GETEX PERSIST")
    eq(r.ttl("g1"), -1, "TTL after GETEX PERSIST")
    eq(r.getex("g1", exat=1), b"Hello There", "GETEX EXAT past")
    eq(r.exists("g1"), 0, "GETEX EXAT past: gone")
    # As in Redis, a missing key is nil before its expiry is read; the
    # same expiry on a key that exists is an error, the key untouched.
    eq(r.getex("g1", ex=0), None, "GETEX EX 0 of a missing key")
    eq(r.execute_command("GETEX", "g1", "EX", "x"), None,
       "GETEX EX x of a missing key")
    r.set("g1", "v")
    expect_error_in(lambda: r.getex("g1", ex=0), "invalid expire time",
                    "GETEX EX 0 of a key")
    eq(r.ttl("g1"), -1, "GETEX EX 0: the key untouched")
    eq(r.msetnx({"g3": "a", "g4": "b"}), True, "MSETNX")
    eq(r.msetnx({"g4": "c", "g5": "d"}), False, "MSETNX, one exists")
    eq(r.mget("g4", "g5"), [b"b", None], "MSETNX set nothing")
    eq(r.incrbyfloat("g6", 2.5), 2.5, "INCRBYFLOAT")
    eq(r.incrbyfloat("g6", -0.5), 2.0, "INCRBYFLOAT down")
    eq(r.get("g6"), b"2", "INCRBYFLOAT's text")
    expect_error(lambda: r.incrbyfloat("g4", 1),
                 "value is not a valid float", "INCRBYFLOAT on text")
    eq(r.delete("g2", "g3", "g4", "g6"), 4, "DEL")
    expect_error(lambda: r.execute_command("SET", "s6", "v", "NX", "XX"),
                 "syntax", "SET NX XX")
    eq(r.mset({"m1": "1", "m2": "2", "m3": b"\x80"}), True, "MSET")
    eq(r.mget("m1", "nokey", "m2", "m3"), [b"1", None, b"2", b"\x80"],
       "MGET")
    eq(r.exists("m1", "m2", "nokey", "m1"), 3, "EXISTS counts")
    eq(r.delete("m1", "m2", "nokey", "m1"), 2, "DEL counts keys once")
    eq(r.unlink("m3", "nokey"), 1, "UNLINK")
    eq(r.exists("m1", "m3"), 0, "deleted")
    eq(r.getdel("s2"), b"z", "GETDEL")
    eq(r.getdel("s2"), None, "GETDEL again")
    eq(r.append("ap", "ab"), 2, "APPEND new")
    eq(r.append("ap", b"\x00c"), 4, "APPEND")
    eq(r.get("ap"), b"ab\x00c", "after APPEND")
    eq(r.setnx("nx1", "a"), True, "SETNX new")
    eq(r.setnx("nx1", "b"), False, "SETNX existing")
    eq(r.get("nx1"), b"a", "SETNX kept the first")
    r.set("gs", "old", ex=100)
    eq(r.getset("gs", b"new\x00"), b"old", "GETSET")
    eq(r.get("gs"), b"new\x00", "after GETSET")
    eq(r.ttl("gs"), -1, "GETSET drops the expiry, as SET does")
    eq(r.getset("gs2", "x"), None, "GETSET missing")
    eq(r.get("gs2"), b"x", "GETSET missing sets")
    eq(r.type("gs"), b"string", "TYPE")
    eq(r.type("nokey"), b"none", "TYPE missing")
    eq(r.touch("gs", "gs2", "nokey", "gs"), 3, "TOUCH counts")
    expect_error(lambda: r.execute_command("SETNX", "k"),
                 "wrong number of arguments", "SETNX arity")


def test_counters(r):
    eq(r.incr("c"), 1, "INCR new")
    eq(r.incrby("c", 41), 42, "INCRBY")
    eq(r.decr("c"), 41, "DECR")
    eq(r.decrby("c", 50), -9, "DECRBY")
    eq(r.get("c"), b"-9", "counter text")
    r.set("c2", "10")
    eq(r.incr("c2"), 11, "INCR on SET 10")
    r.set("c3", "x")
    expect_error(lambda: r.incr("c3"), "value is not an integer",
                 "INCR on text")
    r.set("c4", str(2**63 - 1))
    expect_error(lambda: r.incr("c4"), "increment or decrement",
                 "INCR overflow")
    eq(r.get("c4"), str(2**63 - 1).encode(), "overflow changed nothing")
    expect_error(lambda: r.incrby("c", "x"), "value is not",
                 "INCRBY x")


def test_expiry(r):
    r.set("e1", "v")
    eq(r.expire("e1", 100), True, "EXPIRE")
    check(98 <= r.ttl("e1") <= 100, "TTL after EXPIRE")
    eq(r.persist("e1"), True, "PERSIST")
    eq(r.ttl("e1"), -1, "TTL after PERSIST")
    eq(r.persist("e1"), False, "PERSIST without TTL")
    eq(r.pexpire("e1", 50000), True, "PEXPIRE")
    check(48 <= r.ttl("e1") <= 50, "TTL after PEXPIRE")
    eq(r.expire("nokey", 10), False, "EXPIRE missing")
    eq(r.get("e1"), b"v", "EXPIRE kept the value")
    eq(r.expire("e1", 0), True, "EXPIRE 0")
    eq(r.get("e1"), None, "EXPIRE 0 deletes")
    # The options of Redis 7, through redis-py's keywords.
    r.set("e3", "v")
    eq(r.expire("e3", 100, xx=True), False, "EXPIRE XX without TTL")
    eq(r.expire("e3", 100, nx=True), True, "EXPIRE NX")
    eq(r.expire("e3", 200, nx=True), False, "EXPIRE NX with TTL")
    eq(r.expire("e3", 50, gt=True), False, "EXPIRE GT earlier")
    eq(r.pexpire("e3", 200000, gt=True), True, "PEXPIRE GT")
    check(198 <= r.ttl("e3") <= 200, "TTL after GT")
    eq(r.expire("e3", 150, lt=True), True, "EXPIRE LT")
    check(148 <= r.ttl("e3") <= 150, "TTL after LT")
    eq(r.expire("e3", 100, xx=True), True, "EXPIRE XX with TTL")
    expect_error(lambda: r.expire("e3", 10, gt=True, lt=True),
                 "GT and LT options", "EXPIRE GT LT")
    # EXPIREAT and PEXPIREAT: a Unix time, the options as for EXPIRE; one
    # now or past deletes the key.
    now = int(time.time())
    r.set("ea", "v")
    eq(r.expireat("ea", now + 100), True, "EXPIREAT")
    check(98 <= r.ttl("ea") <= 100, "TTL after EXPIREAT")
    eq(r.pexpireat("ea", (now + 50) * 1000 + 1), True, "PEXPIREAT")
    check(49 <= r.ttl("ea") <= 51, "TTL after PEXPIREAT")
    eq(r.expireat("ea", now + 10, gt=True), False, "EXPIREAT GT earlier")
    eq(r.expireat("ea", now + 500, nx=True), False, "EXPIREAT NX")
    eq(r.expireat("nokey", now + 100), False, "EXPIREAT missing")
    eq(r.expireat("ea", now - 1), True, "EXPIREAT past")
    eq(r.exists("ea"), 0, "EXPIREAT past deletes")
    r.set("ea", "v")
    eq(r.pexpireat("ea", 1), True, "PEXPIREAT 1")
    eq(r.get("ea"), None, "PEXPIREAT 1 deletes")
    expect_error(lambda: r.execute_command("EXPIREAT", "ea", "soon"),
                 "value is not an integer", "EXPIREAT soon")
    r.set("e2", "v", ex=1)
    time.sleep(2.2)
    eq(r.get("e2"), None, "expired")
    eq(r.ttl("e2"), -2, "expired TTL")
    eq(r.incr("e2"), 1, "INCR after expiry starts again")


def pttl_after(r, key, set_expiry):
    """Run set_expiry, then PTTL of key: (pttl, ms that passed from just
    before set_expiry to just after PTTL's answer)."""
    t0 = time.monotonic()
    set_expiry()
    pttl = r.pttl(key)
    return pttl, (time.monotonic() - t0) * 1000


def test_expiry_at_turn(r):
    """An expiry set in the first moments of a second counts from that
    second: time() would still give the one before for a millisecond or
    more (a clock updated at each tick), and PX 1000 set then would be
    over at once, PTTL 1."""
    for i in range(5):
        while True:
            frac = time.time() % 1
            if frac < 0.0003:
                break
            if frac < 0.99:
                time.sleep(0.99 - frac)
        eq(r.set("turn", "v", px=1000), True, "SET PX 1000 at a turn")
        pttl = r.pttl("turn")
        check(pttl > 900,
              "SET PX 1000 %.3f ms into a second: PTTL %d"
              % (frac * 1000, pttl))
        eq(r.get("turn"), b"v", "GET right after SET PX 1000 at a turn")
    r.delete("turn")


def test_expiry_ms(r):
    """Expiries count in milliseconds, as in Redis: PTTL right after PX n
    is n less the time that passed, TTL is that rounded to the nearest
    second, and a key goes at its millisecond."""
    for ms in (150, 999, 1000, 1001, 1500, 2999, 86400001):
        for what, fn in (
                ("SET PX", lambda: r.set("pt", "v", px=ms)),
                ("PSETEX", lambda: r.psetex("pt", ms, "v")),
                ("PEXPIRE", lambda: (r.set("pt", "v"), r.pexpire("pt", ms))),
                ("SET PXAT", lambda: r.set(
                    "pt", "v", pxat=int(time.time() * 1000) + ms))):
            pttl, took = pttl_after(r, "pt", fn)
            check(ms - took - 2 <= pttl <= ms,
                  "%s %d: PTTL %d after %.1f ms" % (what, ms, pttl, took))
    # TTL rounds to the nearest second, as Redis's does.
    for ms, want in ((10100, 10), (10900, 11), (400, 0)):
        r.set("pt", "v", px=ms)
        eq(r.ttl("pt"), want, "TTL of PX %d" % ms)
    # GT and LT compare milliseconds.
    r.set("pt", "v", px=100000)
    eq(r.pexpire("pt", 100500, gt=True), True, "PEXPIRE GT by 500 ms")
    eq(r.pexpire("pt", 100200, lt=True), True, "PEXPIRE LT by 300 ms")
    # A key goes at its millisecond, not at the next whole second.
    r.set("pt", "v", px=200)
    r.set("pt2", "v")
    r.pexpire("pt2", 200)
    time.sleep(0.5)
    eq(r.get("pt"), None, "SET PX 200: gone after 0.5 s")
    eq(r.get("pt2"), None, "PEXPIRE 200: gone after 0.5 s")
    # And not before: PX 1500 is there after 1.1 s.
    r.set("pt", "v", px=1500)
    time.sleep(1.1)
    eq(r.get("pt"), b"v", "SET PX 1500: there after 1.1 s")
    pttl = r.pttl("pt")
    check(0 < pttl <= 400, "SET PX 1500: PTTL %d after 1.1 s" % pttl)
    r.delete("pt")


def test_cross_protocol(r):
    r.set("x1", "héllo")
    a = json_req({"op": "get", "key": "x1"})
    eq(a["value"], "héllo", "JSON get of a RESP UTF-8 value")
    r.set("x2", b"\xff\x00\x01")
    a = json_req({"op": "get", "key": "x2"})
    eq(a["value"], {"base64": "/wAB"}, "JSON get of RESP bytes")
    a = json_req({"op": "mget", "keys": ["x1", "x2", "nokey"]})
    eq(a["values"], ["héllo", {"base64": "/wAB"}, None], "JSON mget")
    json_req({"op": "set", "key": "j1", "value": 42})
    eq(r.get("j1"), b"42", "RESP GET of JSON 42")
    json_req({"op": "set", "key": "j2", "value": "abc"})
    eq(r.get("j2"), b'"abc"', "RESP GET of JSON \"abc\"")
    json_req({"op": "set", "key": "j3", "value": {"a": [1, 2]}})
    eq(r.get("j3"), b'{"a":[1,2]}', "RESP GET of a JSON object")
    eq(r.incr("j1"), 43, "INCR of a JSON integer")
    eq(json_req({"op": "get", "key": "j1"})["value"], 43,
       "a JSON integer stays one")
    eq(r.incr("c2"), 12, "INCR of RESP 11")
    eq(json_req({"op": "get", "key": "c2"})["value"], "12",
       "RESP counter as a JSON string")
    expect_error(lambda: r.incr("j2"), "value is not", "INCR of \"abc\"")
    eq(json_req({"op": "del", "key": "x1"})["deleted"], True, "JSON del")
    eq(r.get("x1"), None, "RESP sees the JSON del")
    eq(r.delete("j3"), 1, "RESP DEL of a JSON key")
    eq(json_req({"op": "get", "key": "j3"})["error"]["code"], "not_found",
       "JSON sees the RESP DEL")


def db_row(key):
    c = sqlite3.connect("file:%s?mode=ro" % DB, uri=True)
    try:
        return c.execute("SELECT typeof(value), value, expires_at FROM "
                         "stash_kv WHERE key = ?", (key,)).fetchone()
    finally:
        c.close()


def test_durability(r):
    eq(r.execute_command("STASH", "DURABILITY"), b"journal",
       "default durability")
    for mode in ("async", "journal", "commit"):
        eq(r.execute_command("STASH", "DURABILITY", mode), b"OK",
           "STASH DURABILITY " + mode)
        eq(r.execute_command("STASH", "DURABILITY"), mode.encode(),
           "durability reported")
        eq(r.set("d-" + mode, b"\x01" + mode.encode()), True, "SET " + mode)
        eq(r.get("d-" + mode), b"\x01" + mode.encode(), "read your write")
        eq(r.incr("n-" + mode), 1, "INCR " + mode)
    # commit: in SQLite when acknowledged, as a BLOB.
    eq(db_row("d-commit")[:2], ("blob", b"\x01commit"), "commit is applied")
    r.set("d-exp", "v", ex=1000)
    row = db_row("d-exp")
    check(row is not None and row[2] > time.time() + 900,
          "expires_at is stored")
    json_req({"op": "set", "key": "d-json", "value": "t",
              "durability": "commit"})
    eq(db_row("d-json")[0], "text", "JSON values stay TEXT")
    expect_error(lambda: r.execute_command("STASH", "DURABILITY", "x"),
                 "durability", "bad durability")
    eq(r.execute_command("STASH", "DURABILITY", "journal"), b"OK", "reset")


def test_pipeline(r):
    p = r.pipeline(transaction=False)
    for i in range(500):
        p.set("p%d" % i, i)
        p.incr("pc")
        p.get("p%d" % i)
    res = p.execute()
    eq(len(res), 1500, "pipeline answers")
    eq(res[-1], b"499", "last pipelined GET")
    eq(res[-2], 500, "last pipelined INCR")
    eq([res[3 * i + 2] for i in range(500)],
       [str(i).encode() for i in range(500)], "every pipelined GET")


def test_transactions(r):
    """MULTI/EXEC through redis-py's default (transactional) pipeline."""
    p = r.pipeline()
    p.set("tx1", 1).incr("tx1").get("tx1").set("tx2", "x").incr("tx2")
    p.get("tx2").delete("tx1").get("tx1").expire("tx2", 100).ttl("tx2")
    res = p.execute(raise_on_error=False)
    eq(res[:4], [True, 2, b"2", True], "SET, INCR, GET in a transaction")
    check(isinstance(res[4], redis.ResponseError),
          "INCR of text fails alone inside EXEC")
    eq(res[5:], [b"x", 1, None, True, 100], "the rest ran")
    eq(r.get("tx2"), b"x", "a transaction's writes stay")
    p = r.pipeline()
    p.setnx("tx3", 1).setnx("tx3", 2).getset("tx3", 3).type("tx3")
    p.touch("tx3", "nokey").expireat("tx3", 4000000000).pexpireat("tx3", 1)
    p.exists("tx3")
    eq(p.execute(), [True, False, b"1", b"string", 1, True, True, 0],
       "SETNX, GETSET, TYPE, TOUCH, EXPIREAT in a transaction")
    eq(r.pipeline().execute(), [], "an empty transaction")
    # A command that cannot be queued: EXECABORT, nothing done.
    p = r.pipeline()
    p.set("tx3", 1)
    p.execute_command("NOSUCH", "x")
    expect_error_in(p.execute, "unknown command 'NOSUCH'", "EXECABORT")
    eq(r.exists("tx3"), 0, "nothing of an aborted transaction done")
    expect_error_in(lambda: r.pipeline().dbsize().execute(),
                    "'dbsize' is not run inside MULTI", "DBSIZE in MULTI")
    # Each durability: the answer once the writes are as durable.
    for dur in ("async", "commit", "journal"):
        r.execute_command("STASH", "DURABILITY", dur)
        eq(r.pipeline().set("txd", dur).get("txd").execute(),
           [True, dur.encode()], "a transaction, " + dur)
        if dur == "commit":
            eq(db_row("txd")[1], b"commit", "in SQLite when answered")
    # Atomic: no other client's INCR between a transaction's two.
    r.set("txa", 0)
    bad = []

    def work():
        c = client()
        for _ in range(150):
            a, b = c.pipeline().incr("txa").incr("txa").execute()
            if b != a + 1:
                bad.append((a, b))
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    eq(bad, [], "every transaction's two INCRs adjacent")
    eq(r.get("txa"), b"2400", "no INCR lost")
    # At most 4096 commands: the 4097th is refused, EXECABORT.
    p = r.pipeline()
    for i in range(4097):
        p.set("txl", i)
    expect_error_in(p.execute, "a transaction holds at most",
                    "4097 commands")
    eq(r.exists("txl"), 0, "nothing of the over-long transaction done")
    p = r.pipeline()
    for i in range(4096):
        p.incr("txl")
    eq(p.execute()[-1], 4096, "4096 commands")
    # At most 16MB of arguments.
    big = b"b" * (600 * 1024)
    p = r.pipeline()
    for i in range(28):
        p.set("txb%d" % i, big)
    expect_error_in(p.execute, "a transaction holds at most", "over 16MB")
    eq(r.exists("txb0"), 0, "nothing of the over-large transaction done")
    p = r.pipeline()
    for i in range(26):
        p.set("txb%d" % i, big)
    eq(len(p.execute()), 26, "under 16MB")
    eq(r.strlen("txb25"), len(big), "its last value")
    r.delete(*["txb%d" % i for i in range(26)])
    test_watch(r)
    # Raw: the exchange as Redis answers it.
    eq(raw(b"EXEC\r\nMULTI\r\nMULTI\r\nSET tr 1\r\nDISCARD\r\n"
           b"GET tr\r\n"),
       b"-ERR EXEC without MULTI\r\n+OK\r\n"
       b"-ERR MULTI calls can not be nested\r\n+QUEUED\r\n+OK\r\n"
       b"$-1\r\n", "MULTI, nested MULTI, DISCARD")


def concurrent_incr(key):
    """8 clients pipelining 200 INCRs each on key, all at once."""
    def work():
        c = client()
        p = c.pipeline(transaction=False)
        for _ in range(200):
            p.incr(key)
        p.execute()
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def watch_incr(pipe):
    """The optimistic increment of redis-py's documentation."""
    v = int(pipe.get("wc") or 0)
    pipe.multi()
    pipe.set("wc", v + 1)


def del_slot(key):
    """The slot of key among the 4096 that remember applied deletes
    (FNV-1a, as daemon/keymap.c hashes)."""
    h = 0xcbf29ce484222325
    for b in key.encode():
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return h & 4095


def test_watch(r):
    """WATCH: EXEC runs only if no watched key changed since."""
    o = client()
    r.set("wk", 1)
    p = r.pipeline()
    p.watch("wk")
    v = int(p.get("wk"))
    p.multi()
    p.set("wk", v + 1)
    eq(p.execute(), [True], "no change: EXEC runs")
    p = r.pipeline()
    p.watch("wk")
    p.get("wk")
    o.set("wk", 100)
    p.multi()
    p.set("wk", 7)
    expect_watch_error(p.execute, "a change")
    eq(r.get("wk"), b"100", "nothing of the aborted EXEC done")
    p = r.pipeline()
    p.watch("wnew")
    o.set("wnew", 1)
    p.multi()
    p.set("wnew", 2)
    expect_watch_error(p.execute, "a key created since")
    # Created and deleted since, the delete applied: nothing of the key is
    # left to compare (cache, SQLite), and EXEC must still see the change.
    p = r.pipeline()
    p.watch("wgone")
    o.set("wgone", 1)
    o.delete("wgone")
    eq(json_req({"op": "sync"})["ok"], True, "sync: the delete applied")
    p.multi()
    p.set("wgone", 2)
    expect_watch_error(p.execute, "a key created and deleted since")
    eq(r.get("wgone"), None, "nothing of that aborted EXEC done")
    # Another key's applied delete does not abort it (unless the two keys
    # share one of the 4096 slots that remember deletes: chosen apart).
    other = next(k for k in ("wo%d" % i for i in range(100))
                 if del_slot(k) != del_slot("wstill"))
    p = r.pipeline()
    p.watch("wstill")
    o.set(other, 1)
    o.delete(other)
    eq(json_req({"op": "sync"})["ok"], True, "sync: the other delete applied")
    p.multi()
    p.set("wstill", 3)
    eq(p.execute(), [True], "another key deleted since: EXEC runs")
    # Deleted just before WATCH, that delete applied before EXEC: the
    # tombstone WATCH saw is gone from the cache, which is no change.
    r.set("wdel", 1)
    r.delete("wdel")
    p = r.pipeline()
    p.watch("wdel")
    eq(json_req({"op": "sync"})["ok"], True, "sync: the delete applied")
    p.multi()
    p.set("wdel", 2)
    eq(p.execute(), [True], "a delete WATCH saw, applied since: EXEC runs")
    eq(r.get("wdel"), b"2", "that EXEC done")
    p = r.pipeline()
    p.watch("wk", "wnew")
    p.unwatch()
    o.set("wk", 5)
    p.multi()
    p.get("wk")
    eq(p.execute(), [b"5"], "UNWATCH: EXEC runs")
    # 4 clients x 100 optimistic increments: none lost.
    def work():
        c = client()
        for _ in range(100):
            c.transaction(watch_incr, "wc")
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    eq(r.get("wc"), b"400", "optimistic increments under contention")
    expect_error_in(lambda: r.execute_command("WATCH"),
                    "wrong number of arguments", "WATCH without keys")
    # At most 4096 watched keys on a connection.
    c = client()
    for j in range(0, 4096, 1024):  # a command takes 1023 keys at most
        c.execute_command("WATCH", *["wl%d" % i for i in range(j, j + 1023)])
    c.execute_command("WATCH", *["wl%d" % i for i in range(4092, 4096)])
    expect_error_in(lambda: c.execute_command("WATCH", "wl-one-more"),
                    "at most 4096 keys", "the 4097th watched key")
    eq(c.execute_command("UNWATCH"), True, "UNWATCH")
    eq(c.execute_command("WATCH", "wl-one-more"), True, "room again")


def test_atomic_incr():
    """INCR from many clients at once loses no increment."""
    json_req({"op": "set", "key": "atomic", "value": 0})
    concurrent_incr("atomic")
    eq(client().get("atomic"), b"1600", "concurrent INCR")


def test_info(r):
    info = r.info()
    for field in ("redis_version", "connected_clients", "used_memory",
                  "total_commands_processed", "keyspace_hits"):
        check(field in info, "INFO has " + field)
    check(info["db0"]["keys"] >= 10, "INFO keyspace")
    eq(r.info("memory").keys() >= {"used_memory", "maxmemory"}, True,
       "INFO memory")
    check("redis_version" not in r.info("memory"), "INFO section filter")
    r.set("dbs", "1")
    check(r.dbsize() >= 10, "DBSIZE")


def test_raw_protocol():
    eq(raw(b"PING\r\n"), b"+PONG\r\n", "inline PING")
    eq(raw(b"ECHO hi\nECHO there\r\n"), b"$2\r\nhi\r\n$5\r\nthere\r\n",
       "inline pipelined")
    eq(raw(b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$5\r\nnokey\r\n"),
       b"+PONG\r\n$-1\r\n", "RESP2 nil")
    out = raw(b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n"
              b"*2\r\n$3\r\nGET\r\n$5\r\nnokey\r\n"
              b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$4\r\nsave\r\n")
    check(out.startswith(b"%7\r\n$6\r\nserver\r\n"), "HELLO 3 map")
    check(out.endswith(b"_\r\n%1\r\n$4\r\nsave\r\n$0\r\n\r\n"),
          "RESP3 null and map: %r" % out[-40:])
    eq(raw(b"*1\r\n$5\r\nHELLO\r\n*2\r\n$5\r\nHELLO\r\n$1\r\n4\r\n")[-31:],
       b"-NOPROTO unsupported protocol version\r\n"[-31:], "HELLO 4")
    eq(raw(b"QUIT\r\nPING\r\n", want_close=True), b"+OK\r\n", "QUIT")
    # Journal writes (the default) are answered once journaled, each
    # connection's as soon as its last one is: before a QUIT closes it,
    # and before the reads behind them, which see them.
    eq(raw(b"SET jq 1\r\nSET jq 2\r\nQUIT\r\nPING\r\n", want_close=True),
       b"+OK\r\n+OK\r\n+OK\r\n", "journal writes answered before QUIT")
    eq(raw(b"SET jr 1\r\nGET jr\r\nSET jr 2\r\nSET jr 3\r\nGET jr\r\n"),
       b"+OK\r\n$1\r\n1\r\n+OK\r\n+OK\r\n$1\r\n3\r\n",
       "reads after journal writes")
    # Inline arguments in quotes, split as redis-cli splits them.
    eq(raw(b'SET "q k" "a\\x00\\"b\\n"\r\nGET \'q k\'\r\n'
           b"ECHO 'it\\'s \\n'\r\n"),
       b'+OK\r\n$5\r\na\x00"b\n\r\n$7\r\nit\'s \\n\r\n', "inline quotes")
    eq(client().get("q k"), b'a\x00"b\n', "GET of an inline quoted SET")
    for bad in (b'SET k "v\r\n', b"SET k 'v\r\n", b'SET k "v"w\r\n'):
        eq(raw(bad + b"PING\r\n", want_close=True),
           b"-ERR Protocol error: unbalanced quotes in request\r\n",
           "unbalanced quotes in %r" % bad)
    # Malformed input: an error, then the connection is closed.
    for bad in (b"*1\r\n$-5\r\n", b"*x\r\n", b"*1\r\n:1\r\n",
                b"*1\r\n$4\r\nPINGxx", b"*99999999\r\n",
                b"*1\r\n$99999999999\r\n"):
        out = raw(bad, want_close=True)
        check(out.startswith(b"-ERR Protocol error"),
              "protocol error for %r: %r" % (bad, out))
    # The error comes after the answers of the commands before it.
    eq(raw(b"SET ord 1\r\nINCR ord\r\n*1\r\n$-5\r\n", want_close=True),
       b"+OK\r\n:2\r\n-ERR Protocol error: invalid bulk length\r\n",
       "answers in order before a protocol error")
    # A request over max-line (1 MB by default) is refused, not buffered.
    out = raw(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n" +
              b"x" * 100, want_close=True)
    check(out.startswith(b"-ERR Protocol error"), "huge bulk: %r" % out)
    # Still serving.
    eq(raw(b"PING\r\n"), b"+PONG\r\n", "alive after bad input")
    # A JSON client is unaffected.
    eq(json_req({"op": "ping"}), {"ok": True}, "JSON ping")


def test_restart():
    # Writes stay in the journal only (applied 10 s later at the earliest)
    # when the daemon is killed: the restart replays them.
    eq(stop(), 0, "SIGTERM exits 0")
    start("--apply-delay", "10s")
    r = client()
    r.set("keep-bytes", b"\x00\xfe")
    r.set("keep-ttl", "v", ex=5000)
    r.incr("keep-n")
    r.execute_command("STASH", "DURABILITY", "journal")
    r.set("keep-journal", "j")
    r.set("keep-empty", "")
    r.pipeline().set("keep-tx1", "a").set("keep-tx2", "b").execute()
    check(db_row("keep-bytes") is None and db_row("keep-journal") is None,
          "not applied before the kill")
    # Killed: journaled writes come back from the journal.
    eq(stop(signal.SIGKILL), -signal.SIGKILL, "killed")
    start()
    r = client()
    eq(r.get("keep-bytes"), b"\x00\xfe", "bytes after restart")
    check(4990 <= r.ttl("keep-ttl") <= 5000, "TTL after restart")
    eq(r.get("keep-n"), b"1", "counter after restart")
    eq(r.get("keep-journal"), b"j", "journaled write after restart")
    eq(r.get("keep-empty"), b"", "empty value after restart")
    eq(r.mget("keep-tx1", "keep-tx2"), [b"a", b"b"],
       "a transaction's writes after restart")
    eq(json_req({"op": "get", "key": "keep-empty"})["value"], "",
       "JSON read of an empty value")
    eq(json_req({"op": "get", "key": "keep-bytes"})["value"],
       {"base64": "AP4="}, "JSON read of bytes after restart")
    eq(db_row("keep-bytes")[:2], ("blob", b"\x00\xfe"),
       "replayed as a BLOB")
    eq(r.incr("keep-n"), 2, "INCR of a value read from SQLite")
    eq(stop(), 0, "SIGTERM exits 0")
    start()
    # keep-n is only in SQLite now: the first INCRs of every client look
    # it up, and each is decided when its lookup is back.
    concurrent_incr("keep-n")
    eq(client().get("keep-n"), b"1602", "concurrent INCR of a key in SQLite")
    # The same for a key that is in SQLite as JSON, with DEL mixed in.
    json_req({"op": "set", "key": "keep-j", "value": 5,
              "durability": "commit"})
    eq(stop(), 0, "SIGTERM exits 0")
    start()
    r = client()
    p = r.pipeline(transaction=False)
    p.incr("keep-j")
    p.delete("keep-j")
    p.incr("keep-j")
    p.get("keep-j")
    eq(p.execute(), [6, 1, 1, b"1"], "INCR, DEL, INCR of a key in SQLite")


def crc32c(data):
    """CRC-32C (Castagnoli), as daemon/crc32c.c computes it."""
    crc = 0xffffffff
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 if crc & 1 else 0)
    return crc ^ 0xffffffff


def crc32c_mask(crc):
    return (((crc >> 15) | (crc << 17)) + 0xa282ead8) & 0xffffffff


def format2_segment(jdir, key, value, expires_at):
    """A journal folder holding one format 2 segment of one group: a KV_SET
    of key to value (JSON text) expiring at expires_at (Unix seconds)."""
    import struct
    os.mkdir(jdir)
    hdr = b"STASHJNL" + struct.pack("<IIQQ", 2, 36, 1, 12345)
    hdr += struct.pack("<I", crc32c_mask(crc32c(hdr)))
    payload = (struct.pack("<H", len(key)) + key + struct.pack("<I", len(value))
               + value + struct.pack("<q", expires_at))
    body = struct.pack("<IBQ", len(payload), 0x81, 1) + payload
    rec = struct.pack("<I", crc32c_mask(crc32c(body))) + body
    with open(os.path.join(jdir, "%020d.seg" % 1), "wb") as f:
        f.write(hdr + rec)


def test_upgrade():
    """A database and a journal of the versions that counted expiries in
    whole seconds (schema 1, journal format 2) are read in milliseconds:
    the database brought to schema 2 at start, the journal's records
    converted as they are replayed."""
    eq(stop(), 0, "SIGTERM exits 0")
    old = os.path.join(TMP, "old")
    os.mkdir(old)
    db = os.path.join(old, "db")
    now = int(time.time())
    c = sqlite3.connect(db)
    c.executescript(
        "CREATE TABLE stash_kv (key TEXT PRIMARY KEY NOT NULL,"
        "  value TEXT NOT NULL, version INTEGER NOT NULL,"
        "  expires_at INTEGER) WITHOUT ROWID;"
        "CREATE INDEX stash_kv_expires ON stash_kv(expires_at)"
        "  WHERE expires_at IS NOT NULL;"
        "CREATE TABLE stash_meta (name TEXT PRIMARY KEY NOT NULL,"
        "  value INTEGER NOT NULL) WITHOUT ROWID;"
        "INSERT INTO stash_meta VALUES ('applied_seq', 0);"
        "PRAGMA user_version = 1;")
    c.execute("INSERT INTO stash_kv VALUES ('old-ttl', '\"a\"', 1, ?)",
              (now + 1000,))
    c.execute("INSERT INTO stash_kv VALUES ('old-none', '\"b\"', 1, NULL)")
    c.commit()
    c.close()
    # A format 2 segment holding one group: SET old-j "x", expiring in
    # 2000 s, counted in seconds.
    format2_segment(db + ".journal", b"old-j", b'"x"', now + 2000)
    global DB
    saved, DB = DB, db
    try:
        start()
        r = client()
        for key, secs in (("old-ttl", 1000), ("old-j", 2000)):
            pttl = r.pttl(key)
            check((secs - 5) * 1000 <= pttl <= secs * 1000,
                  "%s: PTTL %d after the upgrade" % (key, pttl))
        eq(r.ttl("old-none"), -1, "no expiry after the upgrade")
        eq(r.get("old-j"), b'"x"', "the replayed write (JSON text)")
        eq(json_req({"op": "sync"})["ok"], True, "sync")
        c = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
        eq(c.execute("PRAGMA user_version").fetchone()[0], 2,
           "schema version 2")
        for key, secs in (("old-ttl", 1000), ("old-j", 2000)):
            at = c.execute("SELECT expires_at FROM stash_kv WHERE key = ?",
                           (key,)).fetchone()[0]
            check(at in ((now + secs) * 1000,),
                  "%s: expires_at %d in SQLite" % (key, at))
        c.close()
        eq(stop(), 0, "SIGTERM exits 0")
    finally:
        DB = saved
    # An old record whose expiry in seconds does not fit 64 bits of
    # milliseconds is refused, with the record named, not wrapped around.
    bad = os.path.join(TMP, "bad")
    os.mkdir(bad)
    format2_segment(os.path.join(bad, "db.journal"), b"k", b"1", 2**62)
    wrapper = os.environ.get("STASHD_WRAPPER", "").split()
    p = subprocess.run(wrapper + [STASHD, "-s", os.path.join(bad, "s.sock"),
                                  "-d", os.path.join(bad, "db"), "-c",
                                  "/dev/null"],
                       stderr=subprocess.PIPE, timeout=120)
    check(p.returncode != 0, "a bad old expiry: stashd exits")
    check(b"journal record 1 has a bad expiry" in p.stderr,
          "a bad old expiry: %r" % p.stderr[-300:])
    start()


def test_coalesce_nul_keys():
    """Keys that differ only in trailing NUL bytes stay apart when the
    writes of one batch are coalesced (only each key's last reaches
    SQLite)."""
    eq(stop(), 0, "SIGTERM exits 0")
    start("--apply-delay", "10s")
    keys = [b"nk", b"nk\x00", b"nk\x00\x00", b"nk\x01"]
    p = client().pipeline(transaction=False)
    for i in range(12):
        p.set(keys[i % 4], b"v%d" % i)
    eq(p.execute(), [True] * 12, "12 SETs of 4 keys")
    # Applied in one batch as the daemon stops; read back from SQLite.
    eq(stop(), 0, "SIGTERM exits 0")
    start()
    eq(client().mget(keys), [b"v8", b"v9", b"v10", b"v11"],
       "each key's last value, from SQLite")


def test_value_max():
    """INCRBYFLOAT's result is held to --max-line as stored, its trailing
    zeros cut. valgrind computes long double in double precision, where
    these values are out of range: checked outside it only."""
    if "valgrind" in os.environ.get("STASHD_WRAPPER", ""):
        return
    eq(stop(), 0, "SIGTERM exits 0")
    start("--max-line", "1KB")
    r = client()
    eq(r.set("vm", "1e1010"), True, "SET for INCRBYFLOAT")
    # 1,011 digits; with its 17 decimals it would be 1,029 bytes.
    r.incrbyfloat("vm", 0)
    eq(r.strlen("vm"), 1011, "INCRBYFLOAT to 1,011 bytes, under 1 KB")
    eq(r.set("vm", "1e1030"), True, "SET for INCRBYFLOAT past the limit")
    expect_error(lambda: r.incrbyfloat("vm", 0),
                 "string exceeds maximum allowed size",
                 "INCRBYFLOAT to 1,031 bytes")
    eq(r.get("vm"), b"1e1030", "INCRBYFLOAT past the limit changed nothing")
    r.delete("vm")


def test_eviction():
    """Keys evicted from a small cache are read back from SQLite."""
    eq(stop(), 0, "SIGTERM exits 0")
    subprocess.call(["rm", "-rf", DB, DB + "-wal", DB + "-shm",
                     DB + ".journal"])
    start("--max-memory", "1MB")
    r = client()
    eq(r.get("ev0"), None, "an empty database")
    val = b"v" * 1000
    for i in range(0, 3000, 100):
        r.mset({"ev%d" % j: val for j in range(i, i + 100)})
    check(r.info("stats")["evicted_keys"] > 0, "the cache evicted keys")
    eq(r.get("ev0"), val, "an evicted key is read from SQLite")
    eq(r.mget("ev1", "ev2999", "nokey"), [val, val, None], "MGET")
    eq(r.append("ev4", "x"), 1001, "APPEND to an evicted key")
    eq(r.exists("ev5", "ev6"), 2, "EXISTS of evicted keys")
    # A transaction over keys the cache lacks: looked up first, then run.
    p = r.pipeline()
    p.get("ev7").append("ev8", "y").get("ev8").mget("ev9", "ev2998")
    p.delete("ev10").exists("ev10")
    eq(p.execute(), [val, 1001, val + b"y", [val, val], 1, 0],
       "a transaction over evicted keys")
    # Thousands of keys the cache lacks, some named twice.
    p = r.pipeline()
    for i in range(100, 3000, 2):
        p.get("ev%d" % i)
    p.mget(["ev%d" % i for i in range(101, 2100, 2)] + ["ev101", "nokey"])
    res = p.execute()
    check(res[:-1] == [val] * 1450,
          "1450 GETs of evicted keys in a transaction")
    check(res[-1] == [val] * 1001 + [None], "an MGET of 1002 keys in it")
    # WATCH of keys the cache lacks: looked up, noted, compared.
    p = r.pipeline()
    p.watch("ev20", "ev21", "ev-never")
    p.multi()
    p.get("ev20")
    eq(p.execute(), [val], "WATCH of evicted keys, unchanged")
    p = r.pipeline()
    p.watch("ev22")
    client().set("ev22", "changed")
    p.multi()
    p.get("ev22")
    expect_watch_error(p.execute, "WATCH of an evicted key, changed")
    # The client goes while its EXEC waits for a lookup: nothing breaks.
    s = socket.socket(socket.AF_UNIX)
    s.connect(SOCK)
    s.sendall(b"MULTI\r\nGET ev11\r\nINCR ev12\r\nEXEC\r\n")
    s.close()
    eq(r.ping(), True, "alive after a client left during EXEC")


def test_max_clients():
    """Clients over --max-connections are refused in their protocol."""
    eq(stop(), 0, "SIGTERM exits 0")
    start("--max-connections", "2")
    time.sleep(0.1)  # start()'s probe may still be counted
    held = [client(), client()]
    for c in held:
        eq(c.ping(), True, "a connection within the limit")
    try:
        client().ping()
    except redis.ConnectionError as e:
        eq(str(e), "max number of clients reached", "redis-py refused")
    else:
        raise AssertionError("a client over the limit was served")
    eq(raw(b"*1\r\n$4\r\nPING\r\n", want_close=True),
       b"-ERR max number of clients reached\r\n", "RESP refused")
    out = raw(b'{"op":"ping"}\n', want_close=True)
    eq(json.loads(out)["error"]["code"], "busy", "JSON refused")
    for c in held:
        eq(c.ping(), True, "the connections within the limit stay")
        c.close()


def test_tx_memory():
    """All open transactions together hold at most write_queue_max."""
    eq(stop(), 0, "SIGTERM exits 0")
    start("--write-queue-max", "1MB")
    a, b = client(), client()
    v = b"m" * (400 * 1024)
    # Queue a's commands by hand, so that they stay open meanwhile.
    ca = a.connection_pool.get_connection("MULTI")
    ca.send_command("MULTI")
    eq(ca.read_response(), b"OK", "MULTI")
    for k in ("tm1", "tm2"):
        ca.send_command("SET", k, v)
        eq(ca.read_response(), b"QUEUED", "800KB queued")
    pb = b.pipeline()
    pb.set("tm3", v)
    expect_error_in(pb.execute, "the open transactions hold",
                    "over write_queue_max of open transactions")
    ca.send_command("EXEC")
    eq(ca.read_response(), [b"OK", b"OK"], "the first transaction runs")
    a.connection_pool.release(ca)
    eq(b.pipeline().set("tm3", v).execute(), [True],
       "room again once it ran")
    eq(b.strlen("tm3"), len(v), "its value")


def test_tx_cache_full():
    """A transaction whose writes the cache cannot hold until applied."""
    eq(stop(), 0, "SIGTERM exits 0")
    start("--max-memory", "2MB")  # write_queue_max: 1MB
    r = client()
    # 100,000 tiny writes: under 1MB of arguments, but some 6MB of cache
    # entries to pin until they are applied, in a 2MB cache.
    p = r.pipeline()
    for i in range(200):
        p.mset({"o%d_%d" % (i, j): "v" for j in range(500)})
    expect_error_in(p.execute, "full of writes", "-OOM for the whole EXEC")
    eq(r.exists("o0_0", "o199_499"), 0, "nothing of it taken")
    p = r.pipeline()
    for i in range(2):
        p.mset({"o%d_%d" % (i, j): "v" for j in range(500)})
    eq(p.execute(), [True, True], "a transaction that fits")
    eq(r.get("o1_499"), b"v", "its writes")


def main():
    try:
        start()
        r = client()
        test_connection(r)
        d = client(decode_responses=True)
        eq(d.echo("é"), "é", "ECHO, decoded")
        eq(d.set("dec", "ü"), True, "SET, decoded")
        eq(d.get("dec"), "ü", "GET, decoded")
        test_strings(r)
        test_counters(r)
        test_expiry(r)
        test_expiry_at_turn(r)
        test_expiry_ms(r)
        test_cross_protocol(r)
        test_durability(r)
        test_pipeline(r)
        test_transactions(r)
        test_atomic_incr()
        test_info(r)
        test_raw_protocol()
        test_restart()
        test_upgrade()
        test_coalesce_nul_keys()
        test_value_max()
        test_eviction()
        test_max_clients()
        test_tx_memory()
        test_tx_cache_full()
        eq(stop(), 0, "SIGTERM exits 0")
    except AssertionError as e:
        print("FAIL: %s" % e, file=sys.stderr)
        print("%d checks passed before it" % checks, file=sys.stderr)
        return 1
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        subprocess.call(["rm", "-rf", TMP])
    print("%d checks passed" % checks)
    return 0


if __name__ == "__main__":
    sys.exit(main())

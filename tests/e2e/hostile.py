#!/usr/bin/env python3
"""Hostile input (issue 10, part 1): one bad input never takes good ones with it.

Entries written straight into orders:{S} or fills:{S} — an operator script, a
bug in another writer — bypass ingest's validation. Two layers catch them:

1. The matcher validates every decoded input as strictly as ingest does and
   answers a bad one with a REJECTED report the database accepts. Reproducer
   of the adversarial run: matchers stopped, 5 orders POSTed, rogue entries
   (unknown symbol, a symbol of another shard, a bad client_order_id, qty 0
   and -5, side 3, tif 9, an empty account, ts 0, ids 0 and 2^63) XADDed to
   the same shard, 5 more orders POSTed, matcher started: all 10 orders must
   be recorded, every rogue order with an id in range must be a REJECTED row
   with its reason, none may rest in the book, and nothing is dead-lettered.
   (Before the fix: 0 of 10 recorded, the whole fills entry dead-lettered.)
2. The recorder dead-letters the smallest unit it can: in one fills entry of
   five reports, one refused by a CHECK, one of an unknown symbol and one
   with a client_order_id breaking its grammar, the two good ones are
   recorded and exactly those three reports are dead letters, each naming its
   index in the entry.

Run by tests/integration/hostile_inputs.sh under tests/run-integration.sh.
Exit status 0 when every check holds, 1 otherwise (failures printed).
"""
import os
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e import Client, healthy, psql, reset, start, stop_all, wait  # noqa: E402

SHARDS = int(os.environ.get("ORDER_SHARDS", "4"))
ALICE = "dev-key-alice"


# --- a minimal msgpack encoder (maps of str -> int / str / bool, arrays) -----
def mp(v):
    if isinstance(v, bool):
        return b"\xc3" if v else b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if v >= 0:
            return b"\xcf" + struct.pack(">Q", v)
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, str):
        b = v.encode()
        return (bytes([0xa0 | len(b)]) if len(b) < 32 else b"\xd9" + bytes([len(b)])) + b
    if isinstance(v, list):
        return b"\xdc" + struct.pack(">H", len(v)) + b"".join(mp(x) for x in v)
    if isinstance(v, dict):
        return b"\xde" + struct.pack(">H", len(v)) + b"".join(mp(k) + mp(x) for k, x in v.items())
    raise TypeError(v)


def fnv1a32(s):
    h = 2166136261
    for c in s.encode():
        h = ((h ^ c) * 16777619) & 0xFFFFFFFF
    return h


def shard_of(sym):
    return fnv1a32(sym) % SHARDS


def redis_raw(*args, data):
    """Runs redis-cli with data (bytes) as the last argument (-x: binary-safe)."""
    return subprocess.run(["redis-cli", "-u", os.environ["REDIS_URL"], "-x", *args], input=data,
                          check=True, capture_output=True).stdout.decode().strip()


def main():
    port = int(os.environ["INGEST_PORT"])
    reset()
    psql("TRUNCATE dead_letters")
    fails = []

    def check(what, got, want):
        if got != want:
            fails.append(f"{what}: got {got!r}, want {want!r}")

    ingest = start("hostile-ingest", "orderpipe-ingest", {"INGEST_PORT": str(port)})
    recorder = start("hostile-recorder", "orderpipe-recorder", {"RECORDER_METRICS_PORT": "0"})
    procs = [ingest, recorder]
    try:
        c = Client(port)
        if not wait("ingest", lambda: healthy(c), 30):
            return 1

        # --- 1. through the matcher -------------------------------------
        good = []

        def post(n, first):
            for i in range(n):
                body = {"symbol": "AAPL", "side": "buy", "type": "limit",
                        "price": f"{100 + first + i}.00", "qty": 10,
                        "client_order_id": f"good-{first + i}"}
                st, ans = c.call("POST", "/v1/orders", ALICE, body)
                if st != 202:
                    fails.append(f"good order {i}: {st} {ans}")
                else:
                    good.append(int(ans["order_id"]))

        post(5, 0)
        s = shard_of("AAPL")
        other = next(x for x in ["MSFT", "GOOG", "AMZN", "TSLA"] if shard_of(x) != s)
        ts = time.time_ns()
        base = 8_000_000_000_000_000_000
        # (what, fields overriding a valid order, expected reject_reason or None: no row)
        rogue = [
            ("unknown symbol", {"sym": "ZZZZ"}, "UNKNOWN_SYMBOL"),
            ("symbol of another shard", {"sym": other}, "UNKNOWN_SYMBOL"),
            ("bad client_order_id", {"coid": "bad id!"}, "BAD_CLIENT_ORDER_ID"),
            ("qty 0", {"qty": 0}, "BAD_QTY"),
            ("qty -5", {"qty": -5}, "BAD_QTY"),
            ("qty above the symbol's max", {"qty": 1_000_001}, "BAD_QTY"),
            ("side 3", {"side": 3}, "BAD_SIDE"),
            ("tif 9", {"tif": 9}, "BAD_TIF"),
            ("empty account", {"acct": ""}, "BAD_ACCOUNT"),
            ("ts 0", {"ts": 0}, "BAD_TIME"),
            ("id 0", {"id": 0}, None),
            ("id 2^63", {"id": 1 << 63}, None),
        ]
        for n, (what, over, _) in enumerate(rogue):
            m = {"k": 1, "id": base + n, "ts": ts, "sym": "AAPL", "acct": "alice", "side": 1,
                 "type": 1, "tif": 1, "px": 9000 + n, "qty": 7}
            m.update(over)
            redis_raw("XADD", f"orders:{{{s}}}", "*", "type", "new", "sym", m["sym"], "m",
                      data=mp(m))
        # Event time (part 7): a taker stamped a second before the maker it
        # meets (two ingest threads may write in that order) trades at the
        # engine time, never before the maker's created_at.
        t_sym = "MSFT" if shard_of("MSFT") == s else "AAPL"
        maker, taker = base + 50, base + 51
        for oid, side, acct, t in [(maker, 2, "bob", ts), (taker, 1, "alice", ts - 10**9)]:
            m = {"k": 1, "id": oid, "ts": t, "sym": t_sym, "acct": acct, "side": side,
                 "type": 1, "tif": 1, "px": 5000 if t_sym == "MSFT" else 200, "qty": 3}
            redis_raw("XADD", f"orders:{{{s}}}", "*", "type", "new", "sym", t_sym, "m", data=mp(m))
        post(5, 5)

        matcher = start("hostile-matcher", "orderpipe-matcher", {"MATCHER_METRICS_PORT": "0"})
        procs.append(matcher)
        want = len(good) + sum(1 for r in rogue if r[2]) + 2
        wait("orders recorded",
             lambda: int(psql("SELECT count(*) FROM orders")[0][0]) >= want, 60)
        time.sleep(0.5)  # anything wrongly dead-lettered lands with the same batch
        got = {int(r[0]): r[1:] for r in psql(
            "SELECT order_id, status, coalesce(reject_reason,''), coalesce(qty::text,'null'),"
            " coalesce(client_order_id,'null') FROM orders")}
        check("good orders recorded", sum(1 for g in good if g in got), 10)
        for g in good:
            if g in got:
                check(f"good order {g} status", got[g][0], "NEW")
        for n, (what, over, reason) in enumerate(rogue):
            oid = over.get("id", base + n)
            if reason is None:
                check(f"{what}: no row", oid in got, False)
                continue
            if oid not in got:
                fails.append(f"{what}: no orders row for {oid}")
                continue
            check(f"{what}: status", got[oid][0], "REJECTED")
            check(f"{what}: reason", got[oid][1], reason)
        check("qty 0: qty is null", got.get(base + 3, ["", "", ""])[2], "null")
        check("bad client_order_id: null", got.get(base + 2, ["", "", "", ""])[3], "null")
        check("dead letters", psql("SELECT count(*) FROM dead_letters")[0][0], "0")
        times = psql("SELECT f.matched_at >= m.created_at, t.created_at = m.created_at"
                     " FROM fills f JOIN orders m ON m.order_id = f.maker_order_id"
                     f" JOIN orders t ON t.order_id = f.taker_order_id WHERE f.taker_order_id = {taker}")
        check("time: a fill is never before its maker's created_at (and the late-stamped taker"
              " is created at the engine time)", times, [["t", "t"]])
        check("no book for the unknown symbol",
              subprocess.run(["redis-cli", "-u", os.environ["REDIS_URL"], "EXISTS",
                              f"book:{{{s}}}:ZZZZ"], capture_output=True, text=True).stdout.strip(),
              "0")

        for f in fails:
            print("FAIL (matcher part):", f)
        print(f"hostile: matcher part: {len(fails)} failures")

        # --- 2. the recorder alone: a fills entry with two bad reports ----
        def acc(oid, rid, **over):
            r = {"k": 1, "rid": rid, "ts": ts, "id": oid, "sym": "AAPL", "rk": 1, "acct": "bob",
                 "side": 2, "type": 1, "tif": 1, "px": 20000, "qty": 3, "st": 1}
            r.update(over)
            return r

        ids = [base + 100 + i for i in range(5)]
        reports = [acc(ids[0], 1 << 40), acc(ids[1], (1 << 40) + 1, side=9),
                   acc(ids[2], (1 << 40) + 2), acc(ids[3], (1 << 40) + 3, sym="NOPE"),
                   acc(ids[4], (1 << 40) + 4, coid="bad id!")]
        entry = redis_raw("XADD", f"fills:{{{s}}}", "*", "sym", "AAPL,NOPE", "kind",
                          "accepted=5", "n", "5", "in", "0-1", "m", data=mp(reports))
        wait("the entry's good reports recorded", lambda: int(psql(
            f"SELECT count(*) FROM orders WHERE order_id IN ({ids[0]},{ids[2]})")[0][0]) == 2, 30)
        wait("its dead letters", lambda: int(psql(
            "SELECT count(*) FROM dead_letters")[0][0]) >= 3, 30)
        rows = psql(f"SELECT order_id FROM orders WHERE order_id IN ({','.join(map(str, ids))})"
                    " ORDER BY order_id")
        check("recorder: good reports of the entry recorded", [int(r[0]) for r in rows],
              [ids[0], ids[2]])
        dead = psql("SELECT entry_id, report, error FROM dead_letters ORDER BY report")
        check("recorder: three dead letters", len(dead), 3)
        if len(dead) == 3:
            check("recorder: entry id", [d[0] for d in dead], [entry] * 3)
            check("recorder: report indices", [d[1] for d in dead], ["1", "3", "4"])
            if "orders_side_check" not in dead[0][2]:
                fails.append(f"recorder: report 1 error: {dead[0][2]}")
            if "unknown symbol 'NOPE'" not in dead[1][2]:
                fails.append(f"recorder: report 3 error: {dead[1][2]}")
            # the grammar is the recorder's to check (migration 005 dropped the regex CHECK)
            if "client_order_id breaks its grammar" not in dead[2][2]:
                fails.append(f"recorder: report 4 error: {dead[2][2]}")
        raw = psql("SELECT encode(raw, 'hex') FROM dead_letters WHERE report = 1")
        # that report alone, re-encoded: a one-element msgpack array
        check("recorder: a dead report's raw is that report alone",
              raw[0][0][:2] if raw else "", "91")
    finally:
        fails += stop_all(procs)
        reset()  # a clean stack for the next test
        psql("TRUNCATE dead_letters")
    for f in fails:
        print("FAIL:", f)
    print(f"hostile: {len(fails)} failures")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())

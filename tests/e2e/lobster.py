#!/usr/bin/env python3
"""End-to-end replay of the LOBSTER AAPL sample (Nasdaq, 2012-06-21) over HTTP.

The book before the sample is seeded from the first orderbook row (one
stand-in order per visible level), then every message is replayed through
ingest: type 1 -> a limit order, 3 -> a cancel, 2 -> an amend down to the
remaining size, a burst of type 4 rows with one timestamp and direction -> one
IOC order on the other side at the burst's worst price, 5 (hidden) skipped.
Every burst whose makers are all orders placed during the sample must trade
exactly its type-4 rows, in order (maker, quantity, price); bursts touching
stand-in orders (whose FIFO split we cannot know) must trade the same total.

Skips (exit 0, with a message) when ../shared/data/lobster/ (or LOBSTER_DIR)
is absent. Uses the services started by e2e.py's helpers.
"""
import csv
import os
import sys
import time
from decimal import Decimal

sys.path.insert(0, os.path.dirname(__file__))
import e2e  # noqa: E402  (shared helpers: Client, psql, start, wait, reset)

DIR = os.environ.get("LOBSTER_DIR", os.path.join(os.environ.get("OP_ROOT", "."), "..", "shared",
                                                  "data", "lobster"))
PREFIX = "AAPL_2012-06-21_34200000_57600000_"


def px(p):  # LOBSTER prices are dollars x 10000
    return str(Decimal(int(p)) / Decimal(10000))


def main():
    msg_file = os.path.join(DIR, PREFIX + "message_10.csv")
    book_file = os.path.join(DIR, PREFIX + "orderbook_10.csv")
    if not (os.path.exists(msg_file) and os.path.exists(book_file)):
        print(f"lobster: SKIPPED: the LOBSTER sample is not in {DIR}")
        return 0
    msgs = [r for r in csv.reader(open(msg_file))]
    book0 = [int(x) for x in next(csv.reader(open(book_file)))]

    # The first orderbook row is the book after message 0: take message 0 out.
    levels = {"sell": {}, "buy": {}}
    for lv in range(10):
        ask_p, ask_q, bid_p, bid_q = book0[4 * lv:4 * lv + 4]
        if ask_q > 0:
            levels["sell"][ask_p] = ask_q
        if bid_q > 0:
            levels["buy"][bid_p] = bid_q
    t0, typ0, oid0, size0, price0, dir0 = msgs[0]
    if typ0 == "1":
        side = "buy" if dir0 == "1" else "sell"
        levels[side][int(price0)] -= int(size0)

    e2e.reset()
    port = int(os.environ["INGEST_PORT"])
    procs = [e2e.start("lobster-ingest", "orderpipe-ingest", {"INGEST_PORT": str(port)}),
             e2e.start("lobster-matcher", "orderpipe-matcher", {"MATCHER_METRICS_PORT": "0"}),
             e2e.start("lobster-recorder", "orderpipe-recorder", {"RECORDER_METRICS_PORT": "0"})]
    fails = []
    try:
        c = e2e.Client(port)
        if not e2e.wait("ingest", lambda: e2e.healthy(c), 30):
            return 1
        alice, bob = "dev-key-alice", "dev-key-bob"

        def new(side, price, qty, tif="GTC", key=alice):
            st, ans = c.call("POST", "/v1/orders", key, {
                "symbol": "AAPL", "side": side, "type": "limit", "price": px(price), "qty": qty,
                "tif": tif})
            if st != 202:
                fails.append(f"order {side} {qty}@{px(price)}: {st} {ans}")
                return None
            return int(ans["order_id"])

        # One stand-in per visible level for the orders resting before the
        # sample: {(side, price): [our id, total, filled]}. Deletes and
        # executions of unknown (pre-sample) orders are applied to it.
        standins = {}
        for side in ("sell", "buy"):
            for price, qty in levels[side].items():
                if qty > 0:
                    standins[(side, price)] = [new(side, price, qty), qty, 0]

        def standin_reduce(side, price, size):
            st = standins.get((side, price))
            if not st or st[1] - st[2] <= 0:
                return
            left = st[1] - st[2] - size
            if left <= 0:
                c.call("DELETE", f"/v1/orders/{st[0]}?symbol=AAPL", alice)
                st[1] = st[2]
            else:
                st[1] = st[2] + left
                c.call("PATCH", f"/v1/orders/{st[0]}?symbol=AAPL", alice, {"qty": st[1]})
        ids = {}          # LOBSTER order id -> our order id
        bursts = []       # (our taker id, [(lobster maker id, size, price)])
        side_of = {}      # our taker id -> the side of the orders it executes
        i = 0
        while i < len(msgs):
            t, typ, oid, size, price, direction = msgs[i]
            side = "buy" if direction == "1" else "sell"
            if typ == "1":
                ids[oid] = new(side, int(price), int(size))
            elif typ == "3" and oid in ids:
                st, _ = c.call("DELETE", f"/v1/orders/{ids[oid]}?symbol=AAPL", alice)
                if st != 202:
                    fails.append(f"cancel {oid}: {st}")
            elif typ in ("2", "3"):  # a pre-sample order shrinks or leaves: its stand-in does
                standin_reduce(side, int(price), int(size))
            elif typ == "2":
                pass  # partial cancels of in-sample orders: none in this sample
            elif typ == "4":
                rows = []
                while i < len(msgs) and msgs[i][1] == "4" and msgs[i][0] == t and msgs[i][5] == direction:
                    rows.append((msgs[i][2], int(msgs[i][3]), int(msgs[i][4])))
                    i += 1
                for m, q, p in rows:  # executions of pre-sample orders fill the stand-in
                    if m not in ids and (side, p) in standins:
                        standins[(side, p)][2] += q
                worst = min(r[2] for r in rows) if side == "buy" else max(r[2] for r in rows)
                aggressor = "sell" if side == "buy" else "buy"
                taker = new(aggressor, worst, sum(r[1] for r in rows), "IOC", bob)
                side_of[taker] = side
                bursts.append((taker, rows))
                continue
            i += 1

        takers = [b[0] for b in bursts if b[0]]
        if not e2e.wait("every burst's trades to be recorded",
                        lambda: int(e2e.psql("SELECT count(DISTINCT order_id) FROM orders WHERE order_id IN ("
                                             + ",".join(map(str, takers or [0])) + ") AND status IN "
                                             "('FILLED','CANCELLED')")[0][0]) == len(takers), 120):
            fails.append("bursts not recorded in time")
        exact = totals = skipped = 0
        for taker, rows in bursts:
            if any(m not in ids and (side_of[taker], p) not in standins for m, _, p in rows):
                skipped += 1  # executes a pre-sample order outside the 10 visible levels
                continue
            got = [(int(m), int(q), Decimal(p)) for m, q, p in e2e.psql(
                f"SELECT maker_order_id, qty, price FROM fills WHERE taker_order_id = {taker} "
                "ORDER BY fill_id")]
            if all(r[0] in ids for r in rows):
                want = [(ids[m], q, Decimal(p) / 10000) for m, q, p in rows]
                if got != want:
                    fails.append(f"burst of {len(rows)} rows: got {got}, want {want}")
                exact += 1
            else:
                want_qty = sum(r[1] for r in rows)
                if sum(g[1] for g in got) != want_qty:
                    fails.append(f"burst against stand-ins: traded {sum(g[1] for g in got)}, want {want_qty}")
                totals += 1
        print(f"lobster: {len(msgs)} messages, {len(standins)} stand-in orders, {len(bursts)} bursts: "
              f"{exact} checked trade by trade, {totals} by total, {skipped} not representable "
              "(they execute pre-sample orders the orderbook file never showed)")
        if exact < 20:
            fails.append(f"only {exact} bursts could be checked trade by trade (want >= 20)")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            rc = p.wait(timeout=30)
            if rc != 0:
                fails.append(f"{p.args[0]} exited with {rc} after SIGTERM")
        e2e.reset()
    for f in fails[:20]:
        print("FAIL:", f)
    print(f"lobster: {len(fails)} failures")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())

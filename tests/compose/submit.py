#!/usr/bin/env python3
"""Submits orders to ingest one request at a time and records every answer.

    submit.py URL OUT COUNT [--start N] [--pace-ms MS] [--symbols A,B,...]

Used by tests/compose/run.sh. Order i (i = N, N+1, ..., N+COUNT-1) is a
limit order at 100.00 for 1 lot, GTC, on SYMBOLS[(i // 2) % len]: a buy by
alice (dev-key-alice) when i is even, a sell by bob (dev-key-bob) when odd.
All orders of a symbol share one price, so every buy can trade with every
sell: once all are matched, a symbol has min(buys, sells) fills.

Each answer appends one line to OUT, flushed at once so that a reader can
follow the run:  STATUS ORDER_ID SYMBOL SIDE COID  (ORDER_ID '-' unless 202;
COID the order's client_order_id, "c<i>", by which an order answered 503
can be found in PostgreSQL: a 503 for a request Redis took just before it
was killed is ambiguous by nature, docs/ingest.md "Durability"). A
request that gets no HTTP answer at all (connection refused or reset, no
answer within 30 s) is recorded as 'ERR - SYMBOL SIDE' and its reason printed
on stderr: its outcome is unknown, which the caller treats as a failure
(ingest answers 503 when Redis is down; it must always answer). Sleeps
--pace-ms between requests (default 0). Exits 0 after COUNT requests, 2 on
bad arguments.
"""
import argparse
import http.client
import json
import sys
import time
import urllib.parse

KEYS = {"buy": "dev-key-alice", "sell": "dev-key-bob"}
TIMEOUT_S = 30  # above ingest's REDIS_TIMEOUT_MS: ingest answers first


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("url")
    ap.add_argument("out")
    ap.add_argument("count", type=int)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--pace-ms", type=int, default=0)
    ap.add_argument("--symbols", default="AAPL,MSFT,GOOG,AMZN,TSLA")
    a = ap.parse_args()
    u = urllib.parse.urlsplit(a.url)
    if u.scheme != "http" or not u.hostname or a.count < 0 or a.pace_ms < 0:
        ap.error("URL must be http://HOST:PORT, COUNT and --pace-ms not negative")
    symbols = [s for s in a.symbols.split(",") if s]
    if not symbols:
        ap.error("--symbols names no symbol")

    conn = None
    with open(a.out, "a", encoding="ascii") as out:
        for i in range(a.start, a.start + a.count):
            side = "buy" if i % 2 == 0 else "sell"
            sym = symbols[(i // 2) % len(symbols)]
            coid = f"c{i}"
            body = json.dumps({"symbol": sym, "side": side, "type": "limit",
                               "price": "100.00", "qty": 1, "client_order_id": coid})
            headers = {"Authorization": "Bearer " + KEYS[side],
                       "Content-Type": "application/json"}
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=TIMEOUT_S)
                conn.request("POST", "/v1/orders", body, headers)
                resp = conn.getresponse()
                data = resp.read()
                oid = "-"
                if resp.status == 202:
                    oid = json.loads(data)["order_id"]
                out.write(f"{resp.status} {oid} {sym} {side} {coid}\n")
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
                print(f"submit.py: order {i}: no answer: {e!r}", file=sys.stderr)
                out.write(f"ERR - {sym} {side} {coid}\n")
                if conn is not None:
                    conn.close()
                conn = None
            out.flush()
            if a.pace_ms:
                time.sleep(a.pace_ms / 1000)
    return 0


if __name__ == "__main__":
    sys.exit(main())

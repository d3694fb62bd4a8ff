#!/usr/bin/env python3
"""End-to-end test: a seeded random order flow over HTTP through ingest,
matcher and recorder, then the `orders` and `fills` tables compared with an
independent reference model of the matching rules written here.

Run by tests/integration/e2e_flow.sh under tests/run-integration.sh (which
provides REDIS_URL, DATABASE_URL, OP_BUILD, OP_STACK_DIR, INGEST_PORT).
Exit status 0 when every row matches, 1 otherwise (differences printed).
"""
import http.client
import json
import os
import random
import subprocess
import sys
import time
from decimal import Decimal

SEED = int(os.environ.get("E2E_SEED", "20261121"))
REQUESTS = int(os.environ.get("E2E_REQUESTS", "2500"))
SYMBOLS = ["AAPL", "MSFT", "TSLA"]
ACCOUNTS = {"alice": "dev-key-alice", "bob": "dev-key-bob"}
TICK = Decimal("0.01")


# --- the reference model: a deliberately naive book per symbol --------------
class Order:
    def __init__(self, oid, acct, sym, side, typ, tif, po, price, qty, coid):
        self.oid, self.acct, self.sym, self.side = oid, acct, sym, side
        self.type, self.tif, self.post_only = typ, tif, po
        self.price, self.qty, self.filled, self.coid = price, qty, 0, coid
        self.status = "NEW"


class Model:
    """Price-time priority, trades at the maker's price, per docs/engine.md."""

    def __init__(self):
        self.books = {s: {"buy": [], "sell": []} for s in SYMBOLS}  # lists in arrival order
        self.orders = {}  # oid -> Order (every accepted order)
        self.fills = {s: [] for s in SYMBOLS}

    def _crosses(self, o, maker):
        if o.type == "market":
            return True
        return maker.price <= o.price if o.side == "buy" else maker.price >= o.price

    def _makers(self, o):
        opp = self.books[o.sym]["sell" if o.side == "buy" else "buy"]
        # best price first, then time (list order); naive sort each time
        if o.side == "buy":
            return sorted(opp, key=lambda m: m.price)  # stable: keeps arrival order
        return sorted(opp, key=lambda m: -m.price)

    def new(self, o):
        self.orders[o.oid] = o
        makers = [m for m in self._makers(o) if self._crosses(o, m)]
        if o.post_only and makers:
            o.status = "CANCELLED"
            return
        if o.tif == "FOK" and sum(m.qty - m.filled for m in makers) < o.qty:
            o.status = "CANCELLED"
            return
        for m in makers:
            if o.filled == o.qty:
                break
            q = min(o.qty - o.filled, m.qty - m.filled)
            o.filled += q
            m.filled += q
            self.fills[o.sym].append((m.oid, o.oid, m.price, q, m.acct, o.acct, o.side))
            m.status = "FILLED" if m.filled == m.qty else "PARTIALLY_FILLED"
            if m.filled == m.qty:
                self.books[o.sym][m.side].remove(m)
        if o.filled == o.qty:
            o.status = "FILLED"
        elif o.tif in ("IOC", "FOK") or o.type == "market":
            o.status = "CANCELLED"
        else:
            o.status = "PARTIALLY_FILLED" if o.filled else "NEW"
            self.books[o.sym][o.side].append(o)

    def _open(self, oid, acct, sym):
        o = self.orders.get(oid)
        if o is None or o.sym != sym or o.acct != acct:
            return None
        if o.status not in ("NEW", "PARTIALLY_FILLED"):
            return None
        return o

    def cancel(self, oid, acct, sym):
        o = self._open(oid, acct, sym)
        if o is not None:
            o.status = "CANCELLED"
            self.books[sym][o.side].remove(o)

    def amend(self, oid, acct, sym, qty):
        o = self._open(oid, acct, sym)
        if o is not None and o.filled < qty < o.qty:
            o.qty = qty


# --- HTTP -------------------------------------------------------------------
class Client:
    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method, path, key, body=None):
        headers = {"Authorization": "Bearer " + key}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        for attempt in range(3):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                return r.status, json.loads(r.read() or b"null")
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        raise RuntimeError("ingest unreachable")


def psql(sql):
    out = subprocess.run(["psql", "-qAtX", "-F", "\t", os.environ["DATABASE_URL"], "-c", sql],
                         check=True, capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def start(name, binary, env):
    log = open(os.path.join(os.environ["OP_STACK_DIR"], name + ".log"), "a")
    return subprocess.Popen([os.path.join(os.environ["OP_BUILD"], "bin", binary)],
                            env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)


def healthy(client):
    """True once ingest answers /healthz with 200."""
    try:
        return client.call("GET", "/healthz", "x")[0] == 200
    except Exception:
        return False


def wait(what, cond, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.2)
    print(f"timed out after {timeout}s waiting for {what}")
    return False


def stop_all(procs):
    """SIGTERM to every service, then waits for each; returns the failures
    (a service must exit 0: a graceful stop, no sanitizer report)."""
    fails = []
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            rc = p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = "timeout"
        if rc != 0:
            fails.append(f"{p.args[0]} exited with {rc} after SIGTERM")
    return fails


def reset():
    """Starts from a clean slate: the harness shares one stack between tests,
    and orders other tests left in the streams would otherwise reach the books."""
    subprocess.run(["redis-cli", "-u", os.environ["REDIS_URL"], "FLUSHALL"], check=True,
                   capture_output=True)
    subprocess.run([os.path.join(os.environ["OP_BUILD"], "bin", "orderpipe-setup")], check=True,
                   capture_output=True)
    psql("TRUNCATE orders, fills")


def main():
    port = int(os.environ["INGEST_PORT"])
    reset()
    procs = [
        start("e2e-ingest", "orderpipe-ingest", {"INGEST_PORT": str(port)}),
        start("e2e-matcher", "orderpipe-matcher", {"MATCHER_METRICS_PORT": "0"}),
        start("e2e-recorder", "orderpipe-recorder", {"RECORDER_METRICS_PORT": "0"}),
    ]
    fails = []
    try:
        c = Client(port)
        if not wait("ingest", lambda: healthy(c), 30):
            return 1
        rnd = random.Random(SEED)
        model = Model()
        sent_new = []        # (oid, acct, sym, body)
        mid = {s: 10000 for s in SYMBOLS}  # in ticks
        counts = {"new": 0, "cancel": 0, "amend": 0, "retry": 0, "coid_other_symbol": 0}
        for i in range(REQUESTS):
            sym = rnd.choice(SYMBOLS)
            acct = rnd.choice(list(ACCOUNTS))
            r = rnd.random()
            if r < 0.05 and sent_new:  # a retried client_order_id: answered, not queued
                oid, a, s, body = rnd.choice(sent_new)
                if "client_order_id" in body:
                    st, ans = c.call("POST", "/v1/orders", ACCOUNTS[a], body)
                    if st != 200 or ans.get("order_id") != str(oid):
                        fails.append(f"retry of {body['client_order_id']}: {st} {ans}")
                    counts["retry"] += 1
                continue
            if r < 0.20 and sent_new:  # cancel, sometimes of another account's order
                oid, owner, s, _ = rnd.choice(sent_new[-200:])
                who = owner if rnd.random() < 0.85 else ("bob" if owner == "alice" else "alice")
                st, ans = c.call("DELETE", f"/v1/orders/{oid}?symbol={s}", ACCOUNTS[who])
                if st != 202:
                    fails.append(f"cancel {oid}: {st} {ans}")
                model.cancel(oid, who, s)
                counts["cancel"] += 1
                continue
            if r < 0.30 and sent_new:  # amend: valid or not, the model decides
                oid, owner, s, _ = rnd.choice(sent_new[-200:])
                qty = rnd.randint(1, 60)
                st, ans = c.call("PATCH", f"/v1/orders/{oid}?symbol={s}", ACCOUNTS[owner], {"qty": qty})
                if st != 202:
                    fails.append(f"amend {oid}: {st} {ans}")
                model.amend(oid, owner, s, qty)
                counts["amend"] += 1
                continue
            side = rnd.choice(["buy", "sell"])
            mid[sym] += rnd.choice([-1, 0, 0, 1])
            body = {"symbol": sym, "side": side, "qty": rnd.randint(1, 50)}
            if rnd.random() < 0.1:
                body["type"] = "market"
                if rnd.random() < 0.3:
                    body["tif"] = "FOK"
            else:
                body["type"] = "limit"
                off = rnd.randint(-4, 4)
                ticks = mid[sym] + (off if side == "buy" else -off)
                body["price"] = str(Decimal(ticks) * TICK)
                x = rnd.random()
                if x < 0.12:
                    body["tif"] = "IOC"
                elif x < 0.22:
                    body["tif"] = "FOK"
                elif x < 0.32:
                    body["post_only"] = True
            if rnd.random() < 0.3:
                body["client_order_id"] = f"e2e-{SEED}-{i}"
                # client_order_id is unique per account and symbol: the id of
                # one of this account's orders on another symbol (all three
                # symbols share a shard) names a new order, not a repeat.
                mine = {b.get("client_order_id") for _, a, s, b in sent_new if a == acct and s == sym}
                others = [b["client_order_id"] for _, a, s, b in sent_new[-300:]
                          if a == acct and s != sym and "client_order_id" in b
                          and b["client_order_id"] not in mine]
                if others and rnd.random() < 0.3:
                    body["client_order_id"] = rnd.choice(others)
                    counts["coid_other_symbol"] += 1
            st, ans = c.call("POST", "/v1/orders", ACCOUNTS[acct], body)
            if st != 202:
                fails.append(f"new order {body}: {st} {ans}")
                continue
            oid = int(ans["order_id"])
            tif = body.get("tif", "IOC" if body["type"] == "market" else "GTC")
            price = Decimal(body["price"]) if "price" in body else None
            model.new(Order(oid, acct, sym, side, body["type"], tif, body.get("post_only", False),
                            price, body["qty"], body.get("client_order_id")))
            sent_new.append((oid, acct, sym, body))
            counts["new"] += 1

        want_fills = sum(len(v) for v in model.fills.values())
        print(f"sent: {counts}; model: {len(model.orders)} orders, {want_fills} fills")

        def recorded():
            n_orders = int(psql("SELECT count(*) FROM orders")[0][0])
            n_fills = int(psql("SELECT count(*) FROM fills")[0][0])
            return n_orders >= len(model.orders) and n_fills >= want_fills

        if not wait("the pipeline to record everything", recorded, 180):
            fails.append("pipeline did not record everything in time")
        time.sleep(1.0)  # let any late (wrong, extra) rows land before comparing

        rows = {int(r[0]): r for r in psql(
            "SELECT order_id, account, symbol, side, type, tif, coalesce(price::text,''), qty, "
            "filled_qty, status, coalesce(client_order_id,'') FROM orders")}
        for oid, o in model.orders.items():
            want = [str(oid), o.acct, o.sym, o.side, o.type, o.tif,
                    "" if o.price is None else str(o.price), str(o.qty), str(o.filled), o.status,
                    o.coid or ""]
            got = rows.get(oid)
            if got is None:
                fails.append(f"order {oid}: missing from the orders table")
            elif [g if k != 6 or not g else str(Decimal(g)) for k, g in enumerate(got)] != want:
                fails.append(f"order {oid}: got {got}, want {want}")
        extra = set(rows) - set(model.orders)
        if extra:
            fails.append(f"orders table has {len(extra)} rows the model does not: {sorted(extra)[:5]}")
        for s in SYMBOLS:
            got = [(int(r[0]), int(r[1]), Decimal(r[2]), int(r[3]), r[4], r[5], r[6]) for r in psql(
                "SELECT maker_order_id, taker_order_id, price, qty, maker_account, taker_account, "
                f"taker_side FROM fills WHERE symbol = '{s}' ORDER BY fill_id")]
            want = model.fills[s]
            if got != want:
                k = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
                fails.append(f"fills of {s}: {len(got)} rows, want {len(want)}; first difference at "
                             f"#{k}: got {got[k] if k < len(got) else None}, want {want[k] if k < len(want) else None}")
        # Event time moves forward (docs/engine.md, "Time"): no fill before
        # the creation of either of its orders.
        early = psql("SELECT count(*) FROM fills f JOIN orders m ON m.order_id = f.maker_order_id"
                     " JOIN orders t ON t.order_id = f.taker_order_id"
                     " WHERE f.matched_at < m.created_at OR f.matched_at < t.created_at")[0][0]
        if early != "0":
            fails.append(f"{early} fills are matched before their maker or taker was created")
        print(f"compared {len(model.orders)} orders and {want_fills} fills")
    finally:
        fails += stop_all(procs)
        reset()  # leave a clean stack to the tests after this one
    for f in fails[:40]:
        print("FAIL:", f)
    print(f"e2e: {len(fails)} failures")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())

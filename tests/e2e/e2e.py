#!/usr/bin/env python3
"""End-to-end test: a seeded random order flow over HTTP through ingest,
matcher and recorder, then the `orders` and `fills` tables compared with an
independent reference model of the matching rules written here.

Run by tests/integration/e2e_flow.sh under tests/run-integration.sh (which
provides REDIS_URL, DATABASE_URL, OP_BUILD, OP_STACK_DIR, INGEST_PORT).
Exit status 0 when every row matches, 1 otherwise (differences printed).

The trading controls of issue 14 — self-trade prevention (`stp`), replace
(PATCH with a price and/or a larger qty), cancel-all (`DELETE
/v1/orders[?symbol=]`) and the open-order limit (the matcher's
MAX_OPEN_ORDERS) — are used by the flow only where the running stack has
them: probes on a symbol the comparison leaves out (PROBE_SYMBOL) find out
first, each one by what ingest answers and what the pipeline records (an
ingest that knows a field while the matcher does not yet, or the other way
round, is possible while the branches are merged). The features found are
printed.

Each order's row is compared column by column, `reject_reason` included
(the cancel or reject reason the model expects, NULL for an open or filled
order), and the fills of each symbol in fill_id order.

E2E_INGEST_PORTS=p1,p2,… points the flow at services the caller started
(any number of ingests, matchers and recorders, e.g. on a Redis Cluster:
tests/integration/redis_cluster.sh): e2e.py then starts none and does not
empty Redis (a FLUSHALL would reach one cluster node only, under running
services), and sends its requests to those ingests in turn, one at a time,
so each shard still receives them in the flow's order. The caller starts
the matchers with MAX_OPEN_ORDERS=E2E_MAX_OPEN_ORDERS (10) and hands a
fresh Redis and empty tables.

`e2e.py --self-test` runs the model alone on scenario tables of those rules
(docs/engine.md, issue 14), without a stack; `E2E_DRY_RUN=1 e2e.py` runs
the random flow against the model only (the features of E2E_DRY_FEATURES,
comma-separated, default all; fake order ids) and prints what it did, to
tune the flow's mix.
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
STP_MODES = ["none", "cancel_taker", "cancel_maker", "cancel_both", "decrement"]
# The matcher's MAX_OPEN_ORDERS in this test: small enough that the flow's
# accounts reach it now and then (a new order is then REJECTED
# TOO_MANY_OPEN_ORDERS), large enough that most orders are not: with the
# default seed, 10 rejects ~30 of ~1740 new orders with every feature, ~115
# with the limit and replace only (no cancel-all to empty the book; cancels
# then target resting orders half of the time, P_CANCEL_OPEN).
# E2E_DRY_RUN=1 prints these numbers.
MAX_OPEN = int(os.environ.get("E2E_MAX_OPEN_ORDERS", "10"))
# Probes and barrier markers go to this symbol, which the comparison leaves
# out; listed in the dev SYMBOLS_FILE, and in the same shard as SYMBOLS with
# the default ORDER_SHARDS=4 (a marker is a barrier for its own shard only).
PROBE_SYMBOL = os.environ.get("E2E_PROBE_SYMBOL", "AMZN")
# What the probes look for: stp (ingest takes the field, the matcher applies
# it), replace (the matcher replaces on a larger qty), price_patch (ingest
# takes a price in PATCH), cancel_all and cancel_all_every_symbol (DELETE
# /v1/orders with and without ?symbol=, applied), max_open (the matcher
# rejects beyond MAX_OPEN_ORDERS).
# Issue 15: gtd (ingest takes tif GTD with expire_at, the matcher expires it
# while idle: ticks), stops (stop_limit accepted PENDING_TRIGGER, triggered
# by a trade), dead_man (POST /v1/cancel-all-after, fired while idle).
FEATURES = ("stp", "replace", "price_patch", "cancel_all", "cancel_all_every_symbol", "max_open",
            "gtd", "stops", "dead_man")
# Shares of the issue-14 inputs in the flow, when the stack has them.
P_CANCEL_ALL = 0.012  # a request is a cancel-all
P_ALL_SYMBOLS = 0.3   # … of every symbol (no ?symbol=)
P_STP = 0.5           # a new order carries an explicit stp (any mode, "none" too)
P_PRICE = 0.4         # an amend carries a price
P_PRICE_ONLY = 0.35   # … and no qty
P_AMEND_OPEN = 0.5    # an amend targets a resting order (most of the recent ones are closed)
P_CANCEL_OPEN = float(os.environ.get("E2E_P_CANCEL_OPEN", "0.5"))  # a cancel does, with the open-order limit
# Issue 15, drawn from the second sequence too. In the random flow a GTD
# order expires an hour later (it behaves as GTC: when an expiry or a switch
# fires depends on receipt times the model cannot know) and a dead-man
# switch is armed for ten minutes or disarmed; the time-driven outcomes are
# checked after the flow, on orders that cannot trade meanwhile (time_phase).
P_STOP = 0.08       # a new order is a stop (stop_market for a market order, else stop_limit)
P_GTD = 0.1         # a GTC limit or stop_limit order is GTD instead
P_DEAD_MAN = 0.004  # a request arms (600 s) or disarms the account's switch
FAR_MS = 3600 * 1000
TIME_SYMBOL = os.environ.get("E2E_TIME_SYMBOL", "GOOG")  # time_phase's orders, no other


def shard_of(symbol, shards):
    """FNV-1a 32 of the symbol's bytes modulo the shard count (DESIGN.md)."""
    h = 0x811C9DC5
    for b in symbol.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h % shards


# --- the reference model: a deliberately naive book per symbol --------------
OPEN = ("NEW", "PARTIALLY_FILLED", "PENDING_TRIGGER")  # what cancels and cancel-alls reach


class Order:
    def __init__(self, oid, acct, sym, side, typ, tif, po, price, qty, coid, stp="none",
                 stop=None, expire=None):
        self.oid, self.acct, self.sym, self.side = oid, acct, sym, side
        self.type, self.tif, self.post_only = typ, tif, po
        self.price, self.qty, self.filled, self.coid = price, qty, 0, coid
        self.stp = stp
        self.stop = stop      # stop_market / stop_limit: the trigger price (Decimal)
        self.expire = expire  # GTD: expiry, ns since the epoch (engine time)
        self.status = "NEW"
        self.reason = None  # orders.reject_reason: the reason of the last state

    def open_qty(self):
        return self.qty - self.filled

    def is_market(self):
        """A market order, or a stop_market once triggered: it takes any price."""
        return self.type in ("market", "stop_market")


class Model:
    """Price-time priority, trades at the maker's price, per docs/engine.md;
    with stp, replace and max_open, the rules of issue 14 (self-trade
    prevention by the taker's mode, replace, the open-order limit); and the
    time and triggers of issue 15:

    - Engine time (`now`) is the largest input ts applied so far. Every
      input method takes its `ts` (None: time does not move, as in the live
      flow, where the model cannot know receipt times; there the time-driven
      outcomes are applied with expire() and fire_dead_man() once they are
      observed). At the start of each input, after raising `now` to its ts:
      GTD orders with expire <= now are CANCELLED EXPIRED (by expire, then
      order id), then the dead-man switches whose deadline (arm time +
      timeout) is < now fire (by deadline, then account): every open order of
      the account, resting or untriggered stop, CANCELLED DEAD_MAN, and the
      switch is disarmed. Then the input. A GTD order whose expiry is already
      reached when it arrives may trade; its remainder is CANCELLED EXPIRED.
    - Stops are PENDING_TRIGGER, off the book; a buy stop triggers on a trade
      of its symbol at >= stop, a sell stop at <= stop. After an input's own
      matching, the trades are walked in order (the triggered stops' own
      trades join the end: cascades within the input); the stops a trade
      triggers enter as new takers in the order: buys by stop ascending,
      then sells by stop descending, then order id (buys before sells is
      this model's reading of the contract, which does not say: a trade
      triggers both sides only when a buy stop is at or below it and a sell
      stop at or above it). stop_market enters as a market order (IOC/FOK),
      stop_limit as a limit order of its tif. Stops count toward the
      open-order limit, and cancels and cancel-alls reach them.
    """

    def __init__(self, symbols=SYMBOLS, stp=False, replace=False, max_open=None):
        self.books = {s: {"buy": [], "sell": []} for s in symbols}  # lists in arrival order
        self.stops = {s: [] for s in symbols}  # untriggered stops, in arrival order
        self.orders = {}  # oid -> Order (every order the engine got, rejected ones too)
        self.fills = {s: [] for s in symbols}
        self.stp, self.replace, self.max_open = stp, replace, max_open
        self.now = 0        # engine time, ns
        self.switches = {}  # account -> (arm time, timeout), ns: armed dead-man switches
        self.events = {}  # what happened, for the summary: name -> count

    def _count(self, what):
        self.events[what] = self.events.get(what, 0) + 1

    def _crosses(self, o, maker_price):
        if o.is_market():
            return True
        return maker_price <= o.price if o.side == "buy" else maker_price >= o.price

    def _makers(self, o):
        """The resting orders o crosses, best price first, then time."""
        opp = self.books[o.sym]["sell" if o.side == "buy" else "buy"]
        # naive sort each time; stable: keeps arrival order within a price
        ms = sorted(opp, key=(lambda m: m.price) if o.side == "buy" else (lambda m: -m.price))
        return [m for m in ms if self._crosses(o, m.price)]

    def _self(self, o, m):
        return self.stp and o.stp != "none" and m.acct == o.acct

    def _close(self, o, status, reason=None):
        o.status, o.reason = status, reason
        book = self.books[o.sym][o.side]
        if o in book:
            book.remove(o)
        if o in self.stops[o.sym]:
            self.stops[o.sym].remove(o)

    def _open_orders(self, acct):
        """acct's open orders (resting and untriggered stops), by order id."""
        return sorted((o for o in self.orders.values() if o.acct == acct and o.status in OPEN),
                      key=lambda o: o.oid)

    def _begin(self, ts):
        """The start of every input: time moves to ts (None: it does not),
        then expiries, then fired dead-man switches."""
        if ts is None:
            return
        self.now = max(self.now, ts)
        due = sorted((o for o in self.orders.values() if o.status in OPEN and o.tif == "GTD"
                      and o.expire is not None and o.expire <= self.now),
                     key=lambda o: (o.expire, o.oid))
        for o in due:
            self.expire(o.oid)
        fired = sorted((arm + to, a) for a, (arm, to) in self.switches.items() if self.now > arm + to)
        for _, a in fired:
            self.fire_dead_man(a)

    def expire(self, oid):
        """GTD order oid reached its expiry (an observed one, in the live flow)."""
        o = self.orders[oid]
        if o.status in OPEN:
            self._close(o, "CANCELLED", "EXPIRED")
            self._count("expired")

    def fire_dead_man(self, acct):
        """acct's switch fired: every open order CANCELLED DEAD_MAN, disarmed."""
        for o in self._open_orders(acct):
            self._close(o, "CANCELLED", "DEAD_MAN")
            self._count("cancelled_by_dead_man")
        self.switches.pop(acct, None)

    def tick(self, ts):
        """A tick input: only time moves."""
        self._begin(ts)

    def cancel_all_after(self, acct, timeout_ms, ts=None):
        """The dead-man switch of acct: armed (re-armed) at engine time for
        timeout_ms, or disarmed by 0."""
        self._begin(ts)
        if timeout_ms:
            self.switches[acct] = (self.now, timeout_ms * 1000000)
        else:
            self.switches.pop(acct, None)

    def _triggers(self, sym, mark):
        """Stops triggered by the trades of sym from fills index mark on,
        entered in order; their own trades are walked too (cascade)."""
        k = mark
        while k < len(self.fills[sym]) and self.stops[sym]:
            px = self.fills[sym][k][2]
            k += 1
            hit = [s for s in self.stops[sym]
                   if (px >= s.stop if s.side == "buy" else px <= s.stop)]
            hit.sort(key=lambda s: (0, s.stop, s.oid) if s.side == "buy" else (1, -s.stop, s.oid))
            for s in hit:
                self.stops[sym].remove(s)
            for s in hit:
                s.status, s.reason = "NEW", None
                self._count("triggered")
                self._take(s)

    def _fok_fillable(self, o, makers):
        """Liquidity reachable before the first maker of o's own account (with
        stp; cancel_maker skips those makers instead) covers o's qty."""
        need = o.qty
        for m in makers:
            if self._self(o, m):
                if o.stp == "cancel_maker":
                    continue
                return False
            need -= m.open_qty()
            if need <= 0:
                return True
        return False

    def _match(self, o, makers):
        """o takes liquidity from makers in order. Returns True when
        self-trade prevention cancelled o (its status is set)."""
        for m in makers:
            if o.filled == o.qty:
                break
            if self._self(o, m):
                self._count("stp_" + o.stp)
                q = min(o.open_qty(), m.open_qty())
                if o.stp == "cancel_taker":
                    self._close(o, "CANCELLED", "SELF_TRADE")
                    return True
                if o.stp == "cancel_maker":
                    self._close(m, "CANCELLED", "SELF_TRADE")
                    continue
                if o.stp == "cancel_both":
                    self._close(m, "CANCELLED", "SELF_TRADE")
                    self._close(o, "CANCELLED", "SELF_TRADE")
                    return True
                # decrement: both by q without a trade; the one at q is cancelled
                if m.open_qty() == q:
                    self._close(m, "CANCELLED", "SELF_TRADE")
                else:
                    m.qty -= q
                    m.reason = None
                if o.open_qty() == q:
                    self._close(o, "CANCELLED", "SELF_TRADE")
                    return True
                o.qty -= q
                o.reason = None
                continue
            q = min(o.open_qty(), m.open_qty())
            o.filled += q
            m.filled += q
            o.reason = m.reason = None
            self.fills[o.sym].append((m.oid, o.oid, m.price, q, m.acct, o.acct, o.side))
            m.status = "FILLED" if m.filled == m.qty else "PARTIALLY_FILLED"
            if m.filled == m.qty:
                self.books[o.sym][m.side].remove(m)
        return False

    def _rest_or_finish(self, o):
        """After matching: filled, cancelled (not GTC), or resting at the back."""
        if o.filled == o.qty:
            o.status, o.reason = "FILLED", None
        elif o.tif in ("IOC", "FOK") or o.is_market():
            why = "NO_LIQUIDITY" if o.is_market() and o.filled == 0 else "IOC_REMAINDER"
            o.status, o.reason = "CANCELLED", why
        elif o.tif == "GTD" and o.expire is not None and o.expire <= self.now:
            o.status, o.reason = "CANCELLED", "EXPIRED"  # arrived expired: no rest
            self._count("expired")
        else:
            o.status = "PARTIALLY_FILLED" if o.filled else "NEW"
            self.books[o.sym][o.side].append(o)

    def resting(self, acct, sym):
        """acct's open orders in sym: resting, and untriggered stops."""
        return (sum(1 for side in ("buy", "sell") for m in self.books[sym][side] if m.acct == acct)
                + sum(1 for s in self.stops[sym] if s.acct == acct))

    def new(self, o, ts=None):
        self._begin(ts)
        self.orders[o.oid] = o
        if not self.stp:
            o.stp = "none"
        if self.max_open is not None and self.resting(o.acct, o.sym) >= self.max_open:
            o.status, o.reason = "REJECTED", "TOO_MANY_OPEN_ORDERS"
            self._count("too_many_open_orders")
            return
        if o.type in ("stop_market", "stop_limit"):
            o.status = "PENDING_TRIGGER"
            self.stops[o.sym].append(o)
            return
        mark = len(self.fills[o.sym])
        self._take(o)
        self._triggers(o.sym, mark)

    def _take(self, o):
        """o arrives as a taker (a new order, or a triggered stop)."""
        makers = self._makers(o)
        if o.post_only and makers:
            o.status, o.reason = "CANCELLED", "POST_ONLY_WOULD_TRADE"
            return
        if o.tif == "FOK" and not self._fok_fillable(o, makers):
            o.status, o.reason = "CANCELLED", "FOK_UNFILLED"
            return
        if self._match(o, makers):
            return
        self._rest_or_finish(o)

    def _open(self, oid, acct, sym):
        o = self.orders.get(oid)
        if o is None or o.sym != sym or o.acct != acct:
            return None
        if o.status not in OPEN:
            return None
        return o

    def cancel(self, oid, acct, sym, ts=None):
        self._begin(ts)
        o = self._open(oid, acct, sym)
        if o is not None:
            self._close(o, "CANCELLED", "USER_CANCEL")

    def cancel_all(self, acct, sym=None, ts=None):
        """Every open order (resting, untriggered stop) of acct in sym (None:
        every symbol)."""
        self._begin(ts)
        for s in self.books if sym is None else [sym]:
            for side in ("buy", "sell"):
                for o in [m for m in self.books[s][side] if m.acct == acct]:
                    self._close(o, "CANCELLED", "USER_CANCEL")
                    self._count("cancelled_by_cancel_all")
            for o in [m for m in self.stops[s] if m.acct == acct]:
                self._close(o, "CANCELLED", "USER_CANCEL")
                self._count("cancelled_by_cancel_all")

    def amend(self, oid, acct, sym, qty=None, price=None, ts=None):
        """PATCH: qty and/or price, None = unchanged. Without replace (the
        matcher before issue 14) only a reduction of qty is applied. An
        untriggered stop is not amended here: the flow never sends one (the
        contract does not say yet what a replace of a stop is)."""
        self._begin(ts)
        o = self._open(oid, acct, sym)
        if o is None:
            return
        assert o.status != "PENDING_TRIGGER", "the model does not amend stops"
        if not self.replace:
            if qty is not None and o.filled < qty < o.qty:
                o.qty, o.reason = qty, None
            return
        nq = o.qty if qty is None else qty
        np = o.price if price is None else price
        if nq <= o.filled or (nq == o.qty and np == o.price):
            return  # BAD_AMEND
        if np == o.price and nq < o.qty:
            o.qty, o.reason = nq, None  # AMENDED: keeps its place
            self._count("amended")
            return
        self._count("replaced")
        self.books[o.sym][o.side].remove(o)
        o.price, o.qty, o.reason = np, nq, None
        mark = len(self.fills[o.sym])
        self._take(o)
        self._triggers(o.sym, mark)


# --- the model's own scenarios (--self-test) ---------------------------------
def self_test():
    """Scenario tables of the rules the model implements: each builds a book,
    applies inputs and checks states, reasons and fills. Returns failures."""
    fails = []
    n = [0]

    def order(m, acct, side, price, qty, tif="GTC", typ="limit", po=False, stp="none", sym="AAPL",
              stop=None, expire=None, ts=None):
        n[0] += 1
        o = Order(n[0], acct, sym, side, typ, tif, po,
                  None if price is None else Decimal(price), qty, None, stp,
                  None if stop is None else Decimal(stop), expire)
        m.new(o, ts)
        return o

    def check(name, got, want):
        if got != want:
            fails.append(f"{name}: got {got}, want {want}")

    def st(o):
        return (o.status, o.reason, o.qty, o.filled)

    def fills(m, sym="AAPL"):
        return [(mk, tk, str(px), q) for mk, tk, px, q, _, _, _ in m.fills[sym]]

    # cancel_taker after a trade: the trade stays, the taker's rest is
    # cancelled, the self maker untouched
    m = Model(stp=True, replace=True)
    b1 = order(m, "bob", "sell", "10.00", 5)
    a1 = order(m, "alice", "sell", "10.01", 5)
    t = order(m, "alice", "buy", "10.02", 8, stp="cancel_taker")
    check("cancel_taker", [st(b1), st(a1), st(t)],
          [("FILLED", None, 5, 5), ("NEW", None, 5, 0), ("CANCELLED", "SELF_TRADE", 8, 5)])
    check("cancel_taker fills", fills(m), [(b1.oid, t.oid, "10.00", 5)])
    # cancel_maker: several self makers at one level are cancelled, matching goes on
    m = Model(stp=True, replace=True)
    a1 = order(m, "alice", "sell", "10.00", 3)
    a2 = order(m, "alice", "sell", "10.00", 4)
    b1 = order(m, "bob", "sell", "10.00", 5)
    t = order(m, "alice", "buy", "10.00", 6, stp="cancel_maker")
    check("cancel_maker", [st(a1), st(a2), st(b1), st(t)],
          [("CANCELLED", "SELF_TRADE", 3, 0), ("CANCELLED", "SELF_TRADE", 4, 0),
           ("FILLED", None, 5, 5), ("PARTIALLY_FILLED", None, 6, 5)])
    check("cancel_maker rests", m.books["AAPL"]["buy"], [t])
    # cancel_both: the maker, then the taker; a market order
    m = Model(stp=True, replace=True)
    a1 = order(m, "alice", "buy", "10.00", 3)
    a2 = order(m, "alice", "buy", "9.99", 3)
    t = order(m, "alice", "sell", None, 5, tif="IOC", typ="market", stp="cancel_both")
    check("cancel_both", [st(a1), st(a2), st(t)],
          [("CANCELLED", "SELF_TRADE", 3, 0), ("NEW", None, 3, 0), ("CANCELLED", "SELF_TRADE", 5, 0)])
    # decrement: maker larger -> maker AMENDED (qty down), taker cancelled
    m = Model(stp=True, replace=True)
    a1 = order(m, "alice", "sell", "10.00", 10)
    t = order(m, "alice", "buy", "10.00", 4, stp="decrement")
    check("decrement, maker larger", [st(a1), st(t)],
          [("NEW", None, 6, 0), ("CANCELLED", "SELF_TRADE", 4, 0)])
    check("decrement keeps the maker's place", m.books["AAPL"]["sell"], [a1])
    # decrement: taker larger -> maker cancelled, taker AMENDED and trades on
    m = Model(stp=True, replace=True)
    b1 = order(m, "bob", "sell", "10.00", 2)
    a1 = order(m, "alice", "sell", "10.00", 3)
    b2 = order(m, "bob", "sell", "10.01", 4)
    t = order(m, "alice", "buy", "10.01", 10, stp="decrement")
    check("decrement, taker larger", [st(b1), st(a1), st(b2), st(t)],
          [("FILLED", None, 2, 2), ("CANCELLED", "SELF_TRADE", 3, 0), ("FILLED", None, 4, 4),
           ("PARTIALLY_FILLED", None, 7, 6)])
    # decrement: equal -> both cancelled, qty unchanged
    m = Model(stp=True, replace=True)
    a1 = order(m, "alice", "sell", "10.00", 4)
    t = order(m, "alice", "buy", "10.00", 4, tif="IOC", stp="decrement")
    check("decrement, equal", [st(a1), st(t)],
          [("CANCELLED", "SELF_TRADE", 4, 0), ("CANCELLED", "SELF_TRADE", 4, 0)])
    # FOK: liquidity behind the first self maker does not count (cancel_taker),
    # and nothing happens but FOK_UNFILLED; with cancel_maker self makers are skipped
    m = Model(stp=True, replace=True)
    b1 = order(m, "bob", "sell", "10.00", 2)
    a1 = order(m, "alice", "sell", "10.00", 3)
    b2 = order(m, "bob", "sell", "10.00", 5)
    t = order(m, "alice", "buy", "10.00", 6, tif="FOK", stp="cancel_taker")
    check("FOK behind a self maker", [st(b1), st(a1), st(b2), st(t)],
          [("NEW", None, 2, 0), ("NEW", None, 3, 0), ("NEW", None, 5, 0),
           ("CANCELLED", "FOK_UNFILLED", 6, 0)])
    t = order(m, "alice", "buy", "10.00", 6, tif="FOK", stp="cancel_maker")
    check("FOK skipping self makers", [st(b1), st(a1), st(b2), st(t)],
          [("FILLED", None, 2, 2), ("CANCELLED", "SELF_TRADE", 3, 0),
           ("PARTIALLY_FILLED", None, 5, 4), ("FILLED", None, 6, 6)])
    t = order(m, "alice", "buy", "10.00", 2, tif="FOK")  # 1 left: not enough
    check("FOK without stp", st(t), ("CANCELLED", "FOK_UNFILLED", 2, 0))
    # market order: cancel_maker of every maker, nothing filled -> NO_LIQUIDITY
    m = Model(stp=True, replace=True)
    a1 = order(m, "alice", "sell", "10.00", 3)
    t = order(m, "alice", "buy", None, 5, tif="IOC", typ="market", stp="cancel_maker")
    check("market after cancel_maker", [st(a1), st(t)],
          [("CANCELLED", "SELF_TRADE", 3, 0), ("CANCELLED", "NO_LIQUIDITY", 5, 0)])
    # post-only never matches: stp irrelevant
    m = Model(stp=True, replace=True)
    a1 = order(m, "alice", "sell", "10.00", 3)
    t = order(m, "alice", "buy", "10.00", 3, po=True, stp="cancel_maker")
    check("post-only", [st(a1), st(t)], [("NEW", None, 3, 0), ("CANCELLED", "POST_ONLY_WOULD_TRADE", 3, 0)])
    # without stp support, the same account trades with itself
    m = Model(stp=False)
    a1 = order(m, "alice", "sell", "10.00", 3)
    t = order(m, "alice", "buy", "10.00", 3, stp="cancel_taker")
    check("stp off", [st(a1), st(t)], [("FILLED", None, 3, 3), ("FILLED", None, 3, 3)])
    # open-order limit: resting orders of the account in the symbol
    m = Model(stp=True, replace=True, max_open=2)
    a1 = order(m, "alice", "buy", "9.00", 1)
    a2 = order(m, "alice", "buy", "9.01", 1)
    a3 = order(m, "alice", "sell", None, 1, tif="IOC", typ="market")
    b1 = order(m, "bob", "buy", "9.00", 1)
    a4 = order(m, "alice", "buy", "9.00", 1, sym="MSFT")
    check("limit", [st(a3), st(b1), st(a4), len(m.fills["AAPL"])],
          [("REJECTED", "TOO_MANY_OPEN_ORDERS", 1, 0), ("NEW", None, 1, 0), ("NEW", None, 1, 0), 0])
    m.cancel(a1.oid, "alice", "AAPL")
    a5 = order(m, "alice", "buy", "9.02", 1)
    check("limit after a cancel", st(a5), ("NEW", None, 1, 0))
    # cancel-all: one symbol or all, never another account's
    m = Model(stp=True, replace=True)
    a1 = order(m, "alice", "buy", "9.00", 1)
    a2 = order(m, "alice", "buy", "9.00", 1, sym="MSFT")
    b1 = order(m, "bob", "buy", "9.00", 1)
    m.cancel_all("alice", "AAPL")
    check("cancel-all AAPL", [st(a1), st(a2), st(b1)],
          [("CANCELLED", "USER_CANCEL", 1, 0), ("NEW", None, 1, 0), ("NEW", None, 1, 0)])
    m.cancel_all("alice")
    check("cancel-all", [st(a2), st(b1)], [("CANCELLED", "USER_CANCEL", 1, 0), ("NEW", None, 1, 0)])
    # replace: a reduction keeps the place; a price change or more qty goes to
    # the back and may trade (its own stp); bad amends change nothing
    m = Model(stp=True, replace=True)
    a1 = order(m, "alice", "buy", "9.00", 5)
    a2 = order(m, "alice", "buy", "9.00", 5)
    m.amend(a1.oid, "alice", "AAPL", qty=4)
    check("reduce keeps place", m.books["AAPL"]["buy"], [a1, a2])
    m.amend(a1.oid, "alice", "AAPL", qty=6)
    check("qty up goes back", (m.books["AAPL"]["buy"], st(a1)), ([a2, a1], ("NEW", None, 6, 0)))
    m.amend(a2.oid, "alice", "AAPL", qty=5, price=Decimal("9.00"))
    check("nothing changes: rejected", (m.books["AAPL"]["buy"], st(a2)), ([a2, a1], ("NEW", None, 5, 0)))
    b1 = order(m, "bob", "sell", "9.05", 3)
    a3 = order(m, "alice", "sell", "9.06", 2)
    m.amend(a1.oid, "alice", "AAPL", price=Decimal("9.10"))  # crosses bob, then its own a3 (stp none)
    check("replace trades", (st(a1), st(b1), st(a3), fills(m)),
          (("PARTIALLY_FILLED", None, 6, 5), ("FILLED", None, 3, 3), ("FILLED", None, 2, 2),
           [(b1.oid, a1.oid, "9.05", 3), (a3.oid, a1.oid, "9.06", 2)]))
    check("replaced order rests at its new price", (a1.price, m.books["AAPL"]["buy"][-1]),
          (Decimal("9.10"), a1))
    m.amend(a1.oid, "alice", "AAPL", qty=5)
    check("qty at filled: rejected", st(a1), ("PARTIALLY_FILLED", None, 6, 5))
    c = order(m, "bob", "sell", "9.50", 2, po=True)
    m.amend(c.oid, "bob", "AAPL", price=Decimal("9.10"))
    check("post-only replace that would cross", st(c), ("CANCELLED", "POST_ONLY_WOULD_TRADE", 2, 0))
    d = order(m, "alice", "sell", "9.50", 2, stp="cancel_taker")
    m.amend(d.oid, "alice", "AAPL", price=Decimal("9.10"))
    check("replace with its own stp", (st(d), st(a1)),
          (("CANCELLED", "SELF_TRADE", 2, 0), ("PARTIALLY_FILLED", None, 6, 5)))
    # without replace (the matcher before issue 14): only reductions
    m = Model()
    a1 = order(m, "alice", "buy", "9.00", 5)
    m.amend(a1.oid, "alice", "AAPL", qty=8)
    m.amend(a1.oid, "alice", "AAPL", qty=3, price=Decimal("9.01"))
    check("replace off", (st(a1), a1.price), (("NEW", None, 3, 0), Decimal("9.00")))
    fails += self_test_issue15(order, check, st, fills)
    return fails


def self_test_issue15(order, check, st, fills):
    """Scenario tables of issue 15 (time, GTD, dead-man switch, stops), with
    the helpers of self_test. Returns failures."""
    fails = []

    def chk(name, got, want):
        if got != want:
            fails.append(f"{name}: got {got}, want {want}")

    del check  # chk collects into this list
    # GTD: the boundary — one ns before nothing, at expire_ns cancelled
    m = Model(stp=True, replace=True)
    g = order(m, "alice", "buy", "9.00", 5, tif="GTD", expire=1000, ts=100)
    m.tick(999)
    chk("GTD one ns before", st(g), ("NEW", None, 5, 0))
    m.tick(1000)
    chk("GTD at expiry", st(g), ("CANCELLED", "EXPIRED", 5, 0))
    chk("GTD leaves the book", m.books["AAPL"]["buy"], [])
    # an expiry comes before the input that reaches it: nothing trades
    m = Model(stp=True, replace=True)
    g = order(m, "alice", "sell", "9.00", 5, tif="GTD", expire=500, ts=100)
    b = order(m, "bob", "buy", "9.00", 2, ts=500)
    chk("expiry before the input", (st(g), st(b), fills(m)),
        (("CANCELLED", "EXPIRED", 5, 0), ("NEW", None, 2, 0), []))
    # time never goes back: an input with an older ts is at engine time
    m = Model(stp=True, replace=True)
    m.tick(2000)
    g = order(m, "alice", "buy", "9.00", 5, tif="GTD", expire=3000, ts=1500)
    order(m, "bob", "buy", "8.00", 1, ts=1700)
    chk("older ts, time kept", (m.now, st(g)), (2000, ("NEW", None, 5, 0)))
    # a GTD order arriving already expired trades, its remainder is EXPIRED
    b = order(m, "bob", "buy", "9.10", 2, ts=2100)
    g2 = order(m, "alice", "sell", "9.10", 5, tif="GTD", expire=2050, ts=2100)
    chk("arrives expired", (st(b), st(g2), fills(m)[-1]),
        (("FILLED", None, 2, 2), ("CANCELLED", "EXPIRED", 5, 2), (b.oid, g2.oid, "9.10", 2)))
    # dead-man: fires when time passes arm + timeout (not at it); every open
    # order of the account, stops too, and only its account; then disarmed
    m = Model(stp=True, replace=True)
    a1 = order(m, "alice", "buy", "9.00", 5, ts=10)
    a2 = order(m, "alice", "buy", None, 5, tif="IOC", typ="stop_market", stop="9.50", ts=10)
    b1 = order(m, "bob", "buy", "9.00", 5, ts=10)
    m.cancel_all_after("alice", 1, ts=1000)  # deadline 1000 + 1 ms
    m.tick(1001000)
    chk("dead-man at its deadline", (st(a1), st(a2)), (("NEW", None, 5, 0), ("PENDING_TRIGGER", None, 5, 0)))
    m.cancel_all_after("alice", 1, ts=1001000)  # renewed: deadline 2001000
    m.tick(1001001)
    chk("dead-man renewed", st(a1), ("NEW", None, 5, 0))
    m.tick(2001001)
    chk("dead-man fired", (st(a1), st(a2), st(b1), m.switches),
        (("CANCELLED", "DEAD_MAN", 5, 0), ("CANCELLED", "DEAD_MAN", 5, 0), ("NEW", None, 5, 0), {}))
    a3 = order(m, "alice", "buy", "9.00", 5, ts=9000000)
    chk("disarmed after firing", st(a3), ("NEW", None, 5, 0))
    m.cancel_all_after("alice", 1, ts=9000000)
    m.cancel_all_after("alice", 0, ts=9000001)
    m.tick(99000000)
    chk("disarmed by 0", st(a3), ("NEW", None, 5, 0))
    # expiries before dead-man switches, switches by deadline then account,
    # all before the input itself
    m = Model(stp=True, replace=True)
    g = order(m, "alice", "sell", "9.00", 1, tif="GTD", expire=5000000, ts=1)
    a1 = order(m, "alice", "sell", "9.01", 1, ts=1)
    c1 = order(m, "carol", "sell", "9.02", 1, ts=1)
    m.cancel_all_after("carol", 1, ts=2)
    m.cancel_all_after("alice", 1, ts=2)
    t = order(m, "bob", "buy", "9.05", 3, ts=5000000)
    chk("expiry, dead-man, then the input", (st(g), st(a1), st(c1), st(t), fills(m)),
        (("CANCELLED", "EXPIRED", 1, 0), ("CANCELLED", "DEAD_MAN", 1, 0),
         ("CANCELLED", "DEAD_MAN", 1, 0), ("NEW", None, 3, 0), []))
    # stops: off the book, then a cascade through three levels in one input;
    # the first one triggered by its own account's trade
    m = Model(stp=True, replace=True)
    for px in ("10.00", "10.02", "10.04"):
        order(m, "bob", "sell", px, 1)
    s1 = order(m, "alice", "buy", None, 1, tif="IOC", typ="stop_market", stop="10.00")
    s2 = order(m, "carol", "buy", None, 1, tif="IOC", typ="stop_market", stop="10.02")
    s3 = order(m, "carol", "buy", "10.04", 3, typ="stop_limit", stop="10.04")
    chk("stops pending, off the book", ([st(s) for s in (s1, s2, s3)], m.books["AAPL"]["buy"]),
        ([("PENDING_TRIGGER", None, 1, 0), ("PENDING_TRIGGER", None, 1, 0),
          ("PENDING_TRIGGER", None, 3, 0)], []))
    t = order(m, "alice", "buy", "10.00", 1)
    chk("cascade", ([st(x) for x in (t, s1, s2, s3)], [f[1] for f in fills(m)]),
        ([("FILLED", None, 1, 1), ("FILLED", None, 1, 1), ("FILLED", None, 1, 1),
          ("NEW", None, 3, 0)], [t.oid, s1.oid, s2.oid]))
    chk("a triggered stop_limit rests", m.books["AAPL"]["buy"], [s3])
    # several stops of one trade: buys by stop ascending, sells descending, then id
    m = Model(stp=True, replace=True)
    for px in ("10.10", "10.11", "10.12"):
        order(m, "bob", "sell", px, 1)
    sa = order(m, "alice", "buy", None, 1, tif="IOC", typ="stop_market", stop="10.03")
    sb = order(m, "alice", "buy", None, 1, tif="IOC", typ="stop_market", stop="10.01")
    sc = order(m, "alice", "buy", None, 1, tif="IOC", typ="stop_market", stop="10.01")
    order(m, "bob", "sell", "10.05", 1)
    order(m, "carol", "buy", "10.05", 1)
    chk("buy stops of one trade", [(f[1], f[2]) for f in fills(m)][1:],
        [(sb.oid, "10.10"), (sc.oid, "10.11"), (sa.oid, "10.12")])
    m = Model(stp=True, replace=True)
    for px in ("9.90", "9.89", "9.88"):
        order(m, "bob", "buy", px, 1)
    sa = order(m, "alice", "sell", None, 1, tif="IOC", typ="stop_market", stop="9.97")
    sb = order(m, "alice", "sell", None, 1, tif="IOC", typ="stop_market", stop="9.99")
    sc = order(m, "alice", "sell", None, 1, tif="IOC", typ="stop_market", stop="9.99")
    order(m, "bob", "buy", "9.95", 1)
    order(m, "carol", "sell", "9.95", 1)
    chk("sell stops of one trade", [(f[1], f[2]) for f in fills(m)][1:],
        [(sb.oid, "9.90"), (sc.oid, "9.89"), (sa.oid, "9.88")])
    # a trade below a buy stop triggers nothing; stop_market with no
    # liquidity; stop_limit FOK unfillable
    m = Model(stp=True, replace=True)
    s1 = order(m, "alice", "buy", None, 2, tif="IOC", typ="stop_market", stop="10.00")
    s2 = order(m, "alice", "buy", "10.00", 5, tif="FOK", typ="stop_limit", stop="9.99")
    order(m, "bob", "sell", "9.98", 1)
    order(m, "carol", "buy", "9.98", 1)
    chk("below the stop", (st(s1), st(s2)), (("PENDING_TRIGGER", None, 2, 0), ("PENDING_TRIGGER", None, 5, 0)))
    order(m, "bob", "sell", "10.00", 1)
    order(m, "carol", "buy", "10.00", 1)
    chk("market stop, no liquidity; FOK stop", (st(s1), st(s2)),
        (("CANCELLED", "NO_LIQUIDITY", 2, 0), ("CANCELLED", "FOK_UNFILLED", 5, 0)))
    # stops count toward the open-order limit; cancel and cancel-all reach them
    m = Model(stp=True, replace=True, max_open=2)
    s1 = order(m, "alice", "buy", None, 1, tif="IOC", typ="stop_market", stop="10.00")
    s2 = order(m, "alice", "sell", "9.00", 1, typ="stop_limit", stop="9.00")
    a1 = order(m, "alice", "buy", "8.00", 1)
    chk("stops in the limit", st(a1), ("REJECTED", "TOO_MANY_OPEN_ORDERS", 1, 0))
    m.cancel(s1.oid, "alice", "AAPL")
    m.cancel_all("alice")
    chk("cancel, cancel-all of stops", (st(s1), st(s2), m.stops["AAPL"]),
        (("CANCELLED", "USER_CANCEL", 1, 0), ("CANCELLED", "USER_CANCEL", 1, 0), []))
    # a GTD stop expires untriggered
    m = Model(stp=True, replace=True)
    s1 = order(m, "alice", "buy", "10.00", 1, tif="GTD", typ="stop_limit", stop="10.00",
               expire=50, ts=10)
    m.tick(60)
    chk("GTD stop expires", (st(s1), m.stops["AAPL"]), (("CANCELLED", "EXPIRED", 1, 0), []))
    return fails


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


class RoundRobin:
    """Several ingests (E2E_INGEST_PORTS) as one client: each call goes to
    the next one. Calls are sequential, so order is kept per shard."""

    def __init__(self, ports):
        self.clients = [Client(p) for p in ports]
        self.n = 0

    def call(self, method, path, key, body=None):
        c = self.clients[self.n % len(self.clients)]
        self.n += 1
        return c.call(method, path, key, body)


class FakeClient:
    """E2E_DRY_RUN: answers every request as ingest would if it were
    valid, with order ids of its own; nothing reaches a matcher."""

    def __init__(self):
        self.next_id = 1 << 20

    def call(self, method, path, key, body=None):
        if method == "POST":
            self.next_id += 1
            return 202, {"status": "QUEUED", "order_id": str(self.next_id)}
        return 202, {}


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
    url = os.environ["REDIS_URL"]
    if os.environ.get("OP_REDIS_CLUSTER") == "1":
        # a cluster (the harness run with OP_REDIS_CLUSTER=1): FLUSHALL
        # empties one node only, so every primary gets one
        nodes = subprocess.run(["redis-cli", "-u", url, "CLUSTER", "NODES"], check=True,
                               capture_output=True, text=True).stdout.split("\n")
        for n in (line.split() for line in nodes):
            if len(n) > 2 and "master" in n[2] and "fail" not in n[2]:
                host, port = n[1].split("@")[0].rsplit(":", 1)
                subprocess.run(["redis-cli", "-h", host, "-p", port, "FLUSHALL"], check=True,
                               capture_output=True)
    else:
        subprocess.run(["redis-cli", "-u", url, "FLUSHALL"], check=True, capture_output=True)
    subprocess.run([os.path.join(os.environ["OP_BUILD"], "bin", "orderpipe-setup")], check=True,
                   capture_output=True)
    psql("TRUNCATE orders, fills")


def default_stp():
    """Each account's default stp: the optional third column of
    API_KEYS_FILE (issue 14), else none."""
    out = {a: "none" for a in ACCOUNTS}
    path = os.environ.get("API_KEYS_FILE")
    try:
        with open(path) as f:
            for line in f:
                w = line.split("#", 1)[0].split()
                if len(w) >= 3 and w[1] in out and w[2] in STP_MODES:
                    out[w[1]] = w[2]
    except (OSError, TypeError):
        pass
    return out


# --- probes: which of issue 14's features the running stack has -------------
class Probes:
    """Requests on PROBE_SYMBOL, whose rows the comparison ignores (ids
    collects them). sync() is a barrier: an IOC order that cannot trade,
    whose recorded row means everything sent before it on its shard is
    recorded (one recorder commits a shard's reports in order)."""

    def __init__(self, c, ids):
        self.c, self.ids = c, ids
        self.px = 5000  # ticks of the next probe's price: each probe its own level

    def post(self, acct, body):
        body = {"symbol": PROBE_SYMBOL, "type": "limit", "qty": 1, **body}
        st, ans = self.c.call("POST", "/v1/orders", ACCOUNTS[acct], body)
        if st == 202:
            self.ids.add(int(ans["order_id"]))
            return int(ans["order_id"])
        return None

    def price(self):
        self.px += 10
        return str(Decimal(self.px) * TICK)

    def delete(self, acct, oid):
        self.c.call("DELETE", f"/v1/orders/{oid}?symbol={PROBE_SYMBOL}", ACCOUNTS[acct])

    def row(self, oid):
        r = psql("SELECT status, coalesce(reject_reason, ''), qty, coalesce(price::text, '') "
                 f"FROM orders WHERE order_id = {int(oid)}")
        return tuple(r[0]) if r else None

    def sync(self, timeout=30):
        oid = self.post("bob", {"side": "buy", "price": "0.01", "tif": "IOC"})
        return oid is not None and wait("a probe's barrier", lambda: self.row(oid) is not None,
                                        timeout)

    def state(self, oid):
        """(status, reject_reason) of probe order oid, or None."""
        r = self.row(oid) if oid is not None else None
        return r[:2] if r else None

    def run(self):
        """The features found, each False unless the probe saw it work; a
        probe order that could not even be placed leaves its feature off
        (the flow would then fail on its own)."""
        f = {k: False for k in FEATURES}
        if not self.sync():
            return f
        # replace: a larger qty (the matcher) with a price (ingest), else alone
        px = self.price()
        a = self.post("alice", {"side": "buy", "price": px})
        if a is not None:
            new_px = str(Decimal(px) + TICK)
            path = f"/v1/orders/{a}?symbol={PROBE_SYMBOL}"
            body = {"qty": 3, "price": new_px}
            price_ok = self.c.call("PATCH", path, ACCOUNTS["alice"], body)[0] == 202
            if not price_ok:
                self.c.call("PATCH", path, ACCOUNTS["alice"], {"qty": 3})
            self.delete("alice", a)
            r = self.row(a) if self.sync() else None
            f["replace"] = r is not None and r[2] == "3"
            f["price_patch"] = f["replace"] and price_ok and Decimal(r[3]) == Decimal(new_px)
        # self-trade prevention: ingest takes the field, the matcher applies it
        px = self.price()
        a = self.post("alice", {"side": "buy", "price": px})
        b = self.post("alice", {"side": "sell", "price": px, "stp": "cancel_taker"})
        if a is not None and b is not None and self.sync():
            f["stp"] = self.state(b) == ("CANCELLED", "SELF_TRADE")
        if a is not None:
            self.delete("alice", a)
        # cancel-all of one symbol, then of every symbol
        for key, path in (("cancel_all", f"/v1/orders?symbol={PROBE_SYMBOL}"),
                          ("cancel_all_every_symbol", "/v1/orders")):
            a = self.post("alice", {"side": "buy", "price": self.price()})
            if a is None:
                continue
            st, _ = self.c.call("DELETE", path, ACCOUNTS["alice"])
            if st == 202 and self.sync():
                f[key] = self.state(a) == ("CANCELLED", "USER_CANCEL")
            self.delete("alice", a)
        # the open-order limit: MAX_OPEN resting orders, then one more
        px = self.price()
        mine = [self.post("bob", {"side": "sell", "price": px}) for _ in range(MAX_OPEN + 1)]
        if None not in mine and self.sync():
            f["max_open"] = self.state(mine[-1]) == ("REJECTED", "TOO_MANY_OPEN_ORDERS")
        for oid in mine:
            if oid is not None:
                self.delete("bob", oid)
        # issue 15, stops: a stop_limit is PENDING_TRIGGER until a trade at
        # its stop price triggers it; it then rests (nothing left to take)
        px = self.price()
        s = self.post("alice", {"side": "buy", "type": "stop_limit", "price": px, "stop_price": px})
        if s is not None and self.sync() and self.state(s) == ("PENDING_TRIGGER", ""):
            b = self.post("bob", {"side": "sell", "price": px})
            a = self.post("alice", {"side": "buy", "price": px})
            if a is not None and b is not None and self.sync():
                f["stops"] = self.state(s) == ("NEW", "")
            for who, oid in (("bob", b), ("alice", a)):
                if oid is not None:
                    self.delete(who, oid)
        if s is not None:
            self.delete("alice", s)
        # GTD and the dead-man switch: a GTD order 1 s ahead and alice's only
        # open order under a 1 s switch, both cancelled by the matcher's
        # ticks (nothing is sent meanwhile)
        g = self.post("bob", {"side": "buy", "price": self.price(), "tif": "GTD",
                              "expire_at": int(time.time() * 1000) + 1000})
        d = self.post("alice", {"side": "buy", "price": self.price()})
        armed = d is not None and self.c.call("POST", "/v1/cancel-all-after", ACCOUNTS["alice"],
                                              {"timeout_ms": 1000})[0] == 202
        if g is not None or armed:
            wait("the GTD and dead-man probes", lambda: (
                (g is None or (self.state(g) or ("",))[0] == "CANCELLED")
                and (not armed or (self.state(d) or ("",))[0] == "CANCELLED")), 15)
        f["gtd"] = g is not None and self.state(g) == ("CANCELLED", "EXPIRED")
        f["dead_man"] = armed and self.state(d) == ("CANCELLED", "DEAD_MAN")
        if armed and not f["dead_man"]:
            self.c.call("POST", "/v1/cancel-all-after", ACCOUNTS["alice"], {"timeout_ms": 0})
        for who, oid in (("bob", g), ("alice", d)):
            if oid is not None:
                self.delete(who, oid)
        self.sync()
        return f


# --- the flow -----------------------------------------------------------------
def flow(c, model, feat, fails):
    """Sends REQUESTS random requests, applying each to the model as the
    engine will; returns the counts of what was sent. The main random
    sequence is the one of the flow before issue 14; the new inputs draw
    from a second one, so with no feature on the flow is what it was."""
    rnd = random.Random(SEED)
    rx = random.Random(SEED ^ 0x14)
    stp_default = default_stp()
    sent_new = []        # (oid, acct, sym, body)
    mid = {s: 10000 for s in SYMBOLS}  # in ticks
    counts = {"new": 0, "cancel": 0, "amend": 0, "retry": 0, "coid_other_symbol": 0,
              "cancel_all": 0, "stp_field": 0, "amend_with_price": 0, "stop": 0, "gtd": 0,
              "dead_man": 0, "amend_of_stop_not_sent": 0}
    any_cancel_all = feat["cancel_all"] or feat["cancel_all_every_symbol"]
    for i in range(REQUESTS):
        sym = rnd.choice(SYMBOLS)
        acct = rnd.choice(list(ACCOUNTS))
        r = rnd.random()
        if any_cancel_all and rx.random() < P_CANCEL_ALL:
            every = feat["cancel_all_every_symbol"] and (
                not feat["cancel_all"] or rx.random() < P_ALL_SYMBOLS)
            path = "/v1/orders" if every else f"/v1/orders?symbol={sym}"
            st, ans = c.call("DELETE", path, ACCOUNTS[acct])
            if st != 202:
                fails.append(f"cancel-all {path}: {st} {ans}")
            model.cancel_all(acct, None if every else sym)
            counts["cancel_all"] += 1
            continue
        if feat["dead_man"] and rx.random() < P_DEAD_MAN:
            to = rx.choice([0, 600000])
            st, ans = c.call("POST", "/v1/cancel-all-after", ACCOUNTS[acct], {"timeout_ms": to})
            if st != 202:
                fails.append(f"cancel-all-after {to}: {st} {ans}")
            model.cancel_all_after(acct, to)
            counts["dead_man"] += 1
            continue
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
            if feat["max_open"] and rx.random() < P_CANCEL_OPEN:
                # the limit is met less often when resting orders also leave
                resting = [o for sy in SYMBOLS for sd in ("buy", "sell") for o in model.books[sy][sd]]
                resting += [o for sy in SYMBOLS for o in model.stops[sy]]  # none without stops
                if resting:
                    o = rx.choice(resting)
                    oid, owner, s = o.oid, o.acct, o.sym
                    who = owner
            st, ans = c.call("DELETE", f"/v1/orders/{oid}?symbol={s}", ACCOUNTS[who])
            if st != 202:
                fails.append(f"cancel {oid}: {st} {ans}")
            model.cancel(oid, who, s)
            counts["cancel"] += 1
            continue
        if r < 0.30 and sent_new:  # amend: valid or not, the model decides
            oid, owner, s, _ = rnd.choice(sent_new[-200:])
            qty = rnd.randint(1, 60)
            if feat["replace"] and rx.random() < P_AMEND_OPEN:
                resting = [o for sy in SYMBOLS for sd in ("buy", "sell") for o in model.books[sy][sd]]
                if resting:
                    o = rx.choice(resting)
                    oid, owner, s = o.oid, o.acct, o.sym
            if model.orders[oid].status == "PENDING_TRIGGER":
                counts["amend_of_stop_not_sent"] += 1  # not modelled: Model.amend
                continue
            body = {"qty": qty}
            if feat["price_patch"] and rx.random() < P_PRICE:
                o = model.orders.get(oid)
                base = o.price if o is not None and o.price is not None else Decimal(mid[s]) * TICK
                body["price"] = str(max(base + rx.randint(-3, 3) * TICK, TICK))
                if rx.random() < P_PRICE_ONLY:
                    del body["qty"]
                counts["amend_with_price"] += 1
            st, ans = c.call("PATCH", f"/v1/orders/{oid}?symbol={s}", ACCOUNTS[owner], body)
            if st != 202:
                fails.append(f"amend {oid} {body}: {st} {ans}")
            model.amend(oid, owner, s, body.get("qty"),
                        Decimal(body["price"]) if "price" in body else None)
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
        if feat["stp"] and rx.random() < P_STP:
            body["stp"] = rx.choice(STP_MODES)
            counts["stp_field"] += 1
        if feat["stops"] and rx.random() < P_STOP:
            # buy stops above the mid, sell stops below, as traders use them
            off = rx.randint(1, 6)
            body["stop_price"] = str(Decimal(mid[sym] + (off if side == "buy" else -off)) * TICK)
            body.pop("post_only", None)
            if body["type"] == "market":
                body["type"] = "stop_market"
                body.setdefault("tif", "IOC")
            else:
                body["type"] = "stop_limit"
            counts["stop"] += 1
        if feat["gtd"] and body["type"] in ("limit", "stop_limit") and "tif" not in body \
                and rx.random() < P_GTD:
            body["tif"] = "GTD"
            body["expire_at"] = int(time.time() * 1000) + FAR_MS
            counts["gtd"] += 1
        st, ans = c.call("POST", "/v1/orders", ACCOUNTS[acct], body)
        if st != 202:
            fails.append(f"new order {body}: {st} {ans}")
            continue
        oid = int(ans["order_id"])
        model.new(order_of(oid, acct, body, body.get("stp", stp_default[acct])))
        sent_new.append((oid, acct, sym, body))
        counts["new"] += 1
    return counts


def order_of(oid, acct, body, stp):
    """The model's Order for a POST /v1/orders body that ingest queued as oid."""
    tif = body.get("tif", "IOC" if body["type"] == "market" else "GTC")
    price = Decimal(body["price"]) if "price" in body else None
    stop = Decimal(body["stop_price"]) if "stop_price" in body else None
    expire = body["expire_at"] * 1000000 if "expire_at" in body else None
    return Order(oid, acct, body["symbol"], body["side"], body["type"], tif,
                 body.get("post_only", False), price, body["qty"], body.get("client_order_id"),
                 stp, stop, expire)


def time_phase(c, model, feat, fails):
    """After the flow, the outcomes that depend on engine time, each on
    orders nothing else can reach meanwhile (TIME_SYMBOL, prices far apart,
    no request of the account until it is observed), so only what happens,
    not when, matters; the matcher's ticks must move time, since nothing
    is sent while waiting. Applies each observed outcome to the model (the
    comparison then checks every row); returns what it checked."""
    done = []
    stp = default_stp()

    def post(acct, body):
        body = {"symbol": TIME_SYMBOL, "type": "limit", **body}
        st, ans = c.call("POST", "/v1/orders", ACCOUNTS[acct], body)
        if st != 202:
            fails.append(f"time phase: new order {body}: {st} {ans}")
            return None
        o = order_of(int(ans["order_id"]), acct, body, body.get("stp", stp[acct]))
        model.new(o)
        return o

    def status(oids):
        if not oids:
            return {}
        rows = psql("SELECT order_id, status, coalesce(reject_reason, '') FROM orders WHERE "
                    f"order_id IN ({', '.join(str(o) for o in oids)})")
        return {int(r[0]): (r[1], r[2]) for r in rows}

    if feat["gtd"]:
        # a GTD order trades, then its rest expires; one expires resting;
        # one an hour ahead stays
        t0 = time.time()
        short = int(t0 * 1000) + 4000
        g1 = post("bob", {"side": "sell", "price": "100.00", "qty": 5, "tif": "GTD", "expire_at": short})
        a1 = post("alice", {"side": "buy", "price": "100.00", "qty": 2})
        g2 = post("alice", {"side": "buy", "price": "50.00", "qty": 1, "tif": "GTD", "expire_at": short})
        post("bob", {"side": "sell", "price": "150.00", "qty": 1, "tif": "GTD",
                     "expire_at": int(t0 * 1000) + FAR_MS})
        if time.time() - t0 > 3.0:
            fails.append("time phase: placing the GTD orders took over 3 s of their 4: "
                         "the trade may have come after the expiry (inconclusive)")
        if g1 and a1 and g2:
            ids = [g1.oid, g2.oid]
            if not wait("the GTD orders to expire", lambda: all(
                    v[0] == "CANCELLED" for v in status(ids).values()) and len(status(ids)) == 2, 30):
                fails.append("time phase: the short GTD orders were not cancelled in 30 s")
            model.expire(g1.oid)
            model.expire(g2.oid)
            done.append("gtd")
    if feat["dead_man"]:
        post("alice", {"side": "buy", "price": "40.00", "qty": 1})
        mine = [o.oid for o in model._open_orders("alice")]
        st, ans = c.call("POST", "/v1/cancel-all-after", ACCOUNTS["alice"], {"timeout_ms": 1000})
        if st != 202:
            fails.append(f"time phase: cancel-all-after 1000: {st} {ans}")
        else:
            model.cancel_all_after("alice", 1000)
            if not wait("alice's dead-man switch to fire", lambda: all(
                    v[0] == "CANCELLED" for v in status(mine).values()), 30):
                fails.append("time phase: alice's open orders were not cancelled in 30 s")
            model.fire_dead_man("alice")
            done.append(f"dead_man ({len(mine)} open orders of alice)")
    return done


def summary(model):
    by = {}
    for o in model.orders.values():
        k = o.status + ("/" + o.reason if o.reason else "")
        by[k] = by.get(k, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(by.items()))


def dry_run():
    """The flow against the model alone, with the features of
    E2E_DRY_FEATURES (comma-separated, default all)."""
    want = os.environ.get("E2E_DRY_FEATURES", ",".join(FEATURES)).split(",")
    feat = {k: k in want for k in FEATURES}
    model = Model(stp=feat["stp"], replace=feat["replace"],
                  max_open=MAX_OPEN if feat["max_open"] else None)
    fails = []
    counts = flow(FakeClient(), model, feat, fails)
    print(f"dry run ({', '.join(k for k in FEATURES if feat[k])}; MAX_OPEN_ORDERS={MAX_OPEN}): "
          f"sent {counts}")
    print(f"model events: {model.events}")
    print(f"orders: {summary(model)}; fills {sum(len(v) for v in model.fills.values())}")
    return 1 if fails else 0


def main():
    if "--self-test" in sys.argv[1:]:
        fails = self_test()
        for f in fails:
            print("FAIL:", f)
        print(f"e2e model self-test: {len(fails)} failures")
        return 1 if fails else 0
    if os.environ.get("E2E_DRY_RUN") == "1":
        return dry_run()
    external = [int(p) for p in os.environ.get("E2E_INGEST_PORTS", "").split(",") if p]
    procs = []
    if external:
        print(f"services started by the caller; requests to the ingests on {external} in turn")
    else:
        port = int(os.environ["INGEST_PORT"])
        reset()
        procs = [
            start("e2e-ingest", "orderpipe-ingest", {"INGEST_PORT": str(port)}),
            start("e2e-matcher", "orderpipe-matcher",
                  {"MATCHER_METRICS_PORT": "0", "MAX_OPEN_ORDERS": str(MAX_OPEN)}),
            start("e2e-recorder", "orderpipe-recorder", {"RECORDER_METRICS_PORT": "0"}),
        ]
    fails = []
    try:
        c = RoundRobin(external) if external else Client(port)
        for one in (c.clients if external else [c]):
            if not wait("ingest", lambda one=one: healthy(one), 30):
                return 1
        probe_ids = set()
        probes = Probes(c, probe_ids)
        feat = probes.run()
        print("issue 14/15 features of this stack: " +
              ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in feat.items()))
        timed = feat["gtd"] or feat["dead_man"]
        model = Model(symbols=SYMBOLS + ([TIME_SYMBOL] if timed else []), stp=feat["stp"],
                      replace=feat["replace"], max_open=MAX_OPEN if feat["max_open"] else None)
        counts = flow(c, model, feat, fails)
        want_fills = sum(len(v) for v in model.fills.values())
        print(f"sent: {counts}; model: {len(model.orders)} orders, {want_fills} fills")
        print(f"model events: {model.events}")
        print(f"model orders: {summary(model)}")
        in_syms = "symbol IN (" + ", ".join(f"'{s}'" for s in SYMBOLS) + ")"

        def recorded():
            n_orders = int(psql(f"SELECT count(*) FROM orders WHERE {in_syms}")[0][0])
            n_fills = int(psql(f"SELECT count(*) FROM fills WHERE {in_syms}")[0][0])
            return n_orders >= len(model.orders) and n_fills >= want_fills

        if not wait("the pipeline to record everything", recorded, 180):
            fails.append("pipeline did not record everything in time")
        # A barrier per shard of SYMBOLS, so that the last states (a cancel
        # after the order's last new row) are in too; then a moment for any
        # late (wrong, extra) rows.
        shards = int(os.environ.get("ORDER_SHARDS", "4"))
        if any(shard_of(s, shards) != shard_of(PROBE_SYMBOL, shards) for s in SYMBOLS):
            print(f"note: {PROBE_SYMBOL} is not in the shard of every symbol: no barrier")
        elif not probes.sync(60):
            fails.append("the final barrier order was not recorded in time")
        if timed:
            print("time phase: " + ", ".join(time_phase(c, model, feat, fails)))
        time.sleep(1.0)

        rows = {int(r[0]): r for r in psql(
            "SELECT order_id, account, symbol, side, type, tif, coalesce(price::text,''), qty, "
            "filled_qty, status, coalesce(client_order_id,''), coalesce(reject_reason,'') "
            "FROM orders")}
        for oid, o in model.orders.items():
            want = [str(oid), o.acct, o.sym, o.side, o.type, o.tif,
                    "" if o.price is None else str(o.price), str(o.qty), str(o.filled), o.status,
                    o.coid or "", o.reason or ""]
            got = rows.get(oid)
            if got is None:
                fails.append(f"order {oid}: missing from the orders table")
            elif [g if k != 6 or not g else str(Decimal(g)) for k, g in enumerate(got)] != want:
                fails.append(f"order {oid}: got {got}, want {want}")
        extra = set(rows) - set(model.orders) - probe_ids
        if extra:
            fails.append(f"orders table has {len(extra)} rows the model does not: {sorted(extra)[:5]}")
        for s in model.fills:
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
        if not external:
            reset()  # leave a clean stack to the tests after this one
    for f in fails[:40]:
        print("FAIL:", f)
    print(f"e2e: {len(fails)} failures")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())

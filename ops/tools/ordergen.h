/* A seeded, deterministic order flow: shared by orderpipe-ordergen and the matcher checker. */
#ifndef OP_ORDERGEN_H
#define OP_ORDERGEN_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "shared/msg.h"
#include "shared/shard.h"

/*
 * flowgen_next() produces input number i of the flow of `seed` (i counts from
 * 0): a struct op_order_msg with its order_id and ts_ns derived from i, so
 * that the generator (which XADDs it) and the checker (which runs it through
 * the in-process engine) produce exactly the same sequence. Nothing depends
 * on the clock, on the process or on Redis.
 *
 * The mix, per input: 70% new orders (90% limit: GTC 75%, IOC 15%, FOK 10%,
 * post-only on 15% of GTC; 10% market), 20% cancels, 10% amends; accounts
 * alice and bob at random, so a cancel or amend targets the other account's
 * order about half of the time (rejected NOT_OWNER). Prices are a random walk
 * of each symbol's mid ± 25 ticks, quantities 1 … 500. Cancels and amends
 * pick one of the symbol's last 64 new orders (filled, resting or cancelled),
 * or once in 32 an id nobody used.
 *
 * With timers (tests of issue 15's time-driven events; off by default, and
 * the default flow is then byte for byte what it was): accounts alice, bob,
 * carol and dave; 30% of the GTC limit orders become GTD, expiring
 * FLOWGEN_GTD_MIN_MS … + FLOWGEN_GTD_SPAN_MS after their ts (some by later
 * inputs, the last ones by the matcher's ticks once the flow stops); and
 * 2% of the inputs are a CANCEL_ALL_AFTER of a random account on the shard
 * of a random symbol (symbol "", flowgen_shard knows the shard): a disarm
 * (timeout 0) once in five, else an arming of FLOWGEN_DM_MIN_MS … +
 * FLOWGEN_DM_SPAN_MS. ts0 and ts_step (flowgen_init: FLOWGEN_TS0 and 10 µs)
 * may be changed after flowgen_init, e.g. to the wall clock and 1 s / rate,
 * so that the flow's times and the ticks' (the matcher's clock) agree.
 *
 * Entry number i is "poisoned" (its msgpack replaced by garbage) when
 * poison_every > 0 and i % poison_every == poison_every - 1; the matcher
 * answers it with REJECTED MALFORMED, which the checker reproduces by feeding
 * the engine an input of kind 0 carrying only the entry's symbol.
 */

#define FLOWGEN_SYMBOLS_MAX 32
#define FLOWGEN_RECENT 64 /* ids remembered per symbol for cancels/amends */
/* 2026-11-21T10:00:00Z in ns: event times are synthetic, 10 µs apart. */
#define FLOWGEN_TS0 UINT64_C(1795255200000000000)
#define FLOWGEN_ID0 (UINT64_C(1) << 40) /* far from ingest's ids (blocks of 2^20) */
#define FLOWGEN_TS_STEP 10000           /* ns between inputs by default */
/* Timers: why these spans. A GTD order lives 20 ms … 8 s, so that some
 * expire within a few inputs, some while a takeover (a 2 s lease) is under
 * way, and some seconds after the flow stops, when only ticks move time;
 * dead-man timeouts of 0.2 … 6 s likewise, longer than an account's usual
 * gap between arms (a few hundred inputs) only now and then, so that
 * switches fire mid-flow as well as after it. */
#define FLOWGEN_GTD_MIN_MS 20
#define FLOWGEN_GTD_SPAN_MS 8000
#define FLOWGEN_DM_MIN_MS 200
#define FLOWGEN_DM_SPAN_MS 5800

struct flowgen_sym {
    char name[OP_SYMBOL_MAX];
    int64_t mid;                     /* ticks */
    uint64_t recent[FLOWGEN_RECENT]; /* last new order ids, 0 = none */
    unsigned nrecent;                /* ids written so far (ring position) */
};

struct flowgen {
    uint64_t rng;    /* xorshift64* state */
    uint64_t i;      /* index of the next input */
    uint32_t shards; /* ORDER_SHARDS */
    uint64_t poison_every;
    int resting;           /* every input a GTC limit that never crosses (benchmarks) */
    int timers;            /* GTD orders and dead-man switches (see above) */
    uint64_t ts0, ts_step; /* input i has ts ts0 + i * ts_step */
    uint32_t dm_shard;     /* the shard of the last CANCEL_ALL_AFTER (its symbol is "") */
    struct flowgen_sym sym[FLOWGEN_SYMBOLS_MAX];
    unsigned nsym;
};

/* Default symbols: the dev table's five plus NVDA and META, so that with 4
 * shards every shard gets a flow (fnv1a32 % 4 = 3 3 1 3 3 2 0). */
#define FLOWGEN_DEFAULT_SYMBOLS "AAPL,MSFT,GOOG,AMZN,TSLA,NVDA,META"

static inline uint64_t flowgen_rand(struct flowgen *g)
{
    g->rng ^= g->rng >> 12;
    g->rng ^= g->rng << 25;
    g->rng ^= g->rng >> 27;
    return g->rng * UINT64_C(2685821657736338717);
}

/* Uniform in [0, n). */
static inline uint64_t flowgen_below(struct flowgen *g, uint64_t n)
{
    return n ? flowgen_rand(g) % n : 0;
}

/* Sets up g for `seed` over the comma-separated `symbols` (NULL: the
 * default list) and `shards` shards. Returns 0, or -1 when a symbol is
 * empty, longer than 15 characters or there are too many. */
static inline int flowgen_init(struct flowgen *g, uint64_t seed, const char *symbols,
                               uint32_t shards, uint64_t poison_every)
{
    memset(g, 0, sizeof(*g));
    g->rng = seed * UINT64_C(0x9E3779B97F4A7C15) + 0x1234567;
    if (g->rng == 0)
        g->rng = 1;
    g->shards = shards;
    g->poison_every = poison_every;
    g->ts0 = FLOWGEN_TS0;
    g->ts_step = FLOWGEN_TS_STEP;
    const char *p = symbols ? symbols : FLOWGEN_DEFAULT_SYMBOLS;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (n == 0 || n >= OP_SYMBOL_MAX || g->nsym == FLOWGEN_SYMBOLS_MAX)
            return -1;
        struct flowgen_sym *s = &g->sym[g->nsym++];
        memcpy(s->name, p, n);
        s->mid = 10000 + (int64_t)(g->nsym * 7919 % 40000); /* 100.00 … 500.00 */
        p += n;
        if (*p == ',')
            p++;
    }
    return g->nsym ? 0 : -1;
}

/* Picks a target id for a cancel/amend on s. */
static inline uint64_t flowgen_target(struct flowgen *g, const struct flowgen_sym *s)
{
    unsigned have = s->nrecent < FLOWGEN_RECENT ? s->nrecent : FLOWGEN_RECENT;
    if (have == 0 || flowgen_below(g, 32) == 0)
        return FLOWGEN_ID0 - 1 - flowgen_below(g, 1000); /* never used */
    return s->recent[flowgen_below(g, have)];
}

/*
 * Writes input g->i into *m and advances. Returns 1 when the entry is to be
 * poisoned (m is then still filled in: its symbol names the stream entry).
 */
static inline int flowgen_next(struct flowgen *g, struct op_order_msg *m)
{
    memset(m, 0, sizeof(*m));
    uint64_t i = g->i++;
    struct flowgen_sym *s = &g->sym[flowgen_below(g, g->nsym)];
    memcpy(m->symbol, s->name, sizeof(m->symbol));
    static const char *const timer_accounts[] = {"alice", "bob", "carol", "dave"};
    if (g->timers)
        snprintf(m->account, sizeof(m->account), "%s", timer_accounts[flowgen_below(g, 4)]);
    else
        snprintf(m->account, sizeof(m->account), "%s", flowgen_below(g, 2) ? "alice" : "bob");
    m->ts_ns = g->ts0 + i * g->ts_step;
    if (!g->resting && flowgen_below(g, 50) == 0) /* the mid wanders */
        s->mid += flowgen_below(g, 2) ? 5 : -5;
    if (s->mid < 100)
        s->mid = 100;
    uint64_t r = flowgen_below(g, 100);
    if (g->timers && flowgen_below(g, 50) == 0) { /* 2%: the account's dead-man switch */
        m->kind = OP_MSG_CANCEL_ALL_AFTER;
        memset(m->symbol, 0, sizeof(m->symbol)); /* every symbol: ingest's form */
        g->dm_shard = op_shard_of(s->name, strlen(s->name), g->shards);
        if (flowgen_below(g, 5) != 0)
            m->timeout_ms = FLOWGEN_DM_MIN_MS + (uint32_t)flowgen_below(g, FLOWGEN_DM_SPAN_MS);
        return g->poison_every && i % g->poison_every == g->poison_every - 1;
    }
    if (g->resting) { /* bids below the mid, asks above: nothing ever trades */
        m->kind = OP_MSG_NEW;
        m->order_id = FLOWGEN_ID0 + i;
        m->side = r < 50 ? OP_SIDE_BUY : OP_SIDE_SELL;
        m->type = OP_TYPE_LIMIT;
        m->tif = OP_TIF_GTC;
        m->qty = 1 + (int64_t)flowgen_below(g, 500);
        int64_t off = 100 + (int64_t)flowgen_below(g, 200);
        m->price = m->side == OP_SIDE_BUY ? s->mid - off : s->mid + off;
        return 0;
    }
    if (r < 70) {
        m->kind = OP_MSG_NEW;
        m->order_id = FLOWGEN_ID0 + i;
        m->side = flowgen_below(g, 2) ? OP_SIDE_BUY : OP_SIDE_SELL;
        m->qty = 1 + (int64_t)flowgen_below(g, 500);
        if (flowgen_below(g, 10) == 0) {
            m->type = OP_TYPE_MARKET;
            m->tif = flowgen_below(g, 4) == 0 ? OP_TIF_FOK : OP_TIF_IOC;
        } else {
            m->type = OP_TYPE_LIMIT;
            uint64_t t = flowgen_below(g, 100);
            m->tif = t < 75 ? OP_TIF_GTC : t < 90 ? OP_TIF_IOC : OP_TIF_FOK;
            m->post_only = m->tif == OP_TIF_GTC && flowgen_below(g, 100) < 15;
            if (g->timers && m->tif == OP_TIF_GTC && flowgen_below(g, 10) < 3) {
                m->tif = OP_TIF_GTD;
                m->expire_ns =
                    m->ts_ns + UINT64_C(1000000) *
                                   (FLOWGEN_GTD_MIN_MS + flowgen_below(g, FLOWGEN_GTD_SPAN_MS));
            }
            /* buyers bid mostly below the mid, sellers ask above: a book forms,
             * and the overlap (± 25 ticks) makes trades */
            int64_t off = (int64_t)flowgen_below(g, 51) - 15;
            m->price = m->side == OP_SIDE_BUY ? s->mid - off : s->mid + off;
            if (m->price < 1)
                m->price = 1;
        }
        if (flowgen_below(g, 5) == 0)
            snprintf(m->client_order_id, sizeof(m->client_order_id), "c-%llu",
                     (unsigned long long)i);
        s->recent[s->nrecent++ % FLOWGEN_RECENT] = m->order_id;
    } else if (r < 90) {
        m->kind = OP_MSG_CANCEL;
        m->order_id = flowgen_target(g, s);
    } else {
        m->kind = OP_MSG_AMEND;
        m->order_id = flowgen_target(g, s);
        m->qty = 1 + (int64_t)flowgen_below(g, 400);
    }
    return g->poison_every && i % g->poison_every == g->poison_every - 1;
}

/* The shard of m's symbol; for a CANCEL_ALL_AFTER (symbol "") the shard
 * flowgen_next chose for it, so call it right after flowgen_next. */
static inline uint32_t flowgen_shard(const struct flowgen *g, const struct op_order_msg *m)
{
    if (m->kind == OP_MSG_CANCEL_ALL_AFTER)
        return g->dm_shard;
    return op_shard_of(m->symbol, strlen(m->symbol), g->shards);
}

/* The input the matcher gives the engine for an entry it cannot decode:
 * kind 0 (answered REJECTED MALFORMED), only the entry's `sym` kept. */
static inline void flowgen_malformed(struct op_order_msg *m, const char *sym, size_t len)
{
    memset(m, 0, sizeof(*m));
    if (len > 0 && len < OP_SYMBOL_MAX)
        memcpy(m->symbol, sym, len);
}

#endif

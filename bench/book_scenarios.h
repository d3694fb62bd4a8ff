/* Realistic order flows for the book bench: deep books, cancel-heavy, reprices, IOC sweeps, a
 * crash. */
#ifndef BENCH_BOOK_SCENARIOS_H
#define BENCH_BOOK_SCENARIOS_H

/*
 * Shaped like the public matching-engine harness of issue 19 (one symbol,
 * a GBM mid price, power-law depth, ~95 % of orders ending cancelled, ~15 %
 * IOC, ~20 % of orders modified — a modify being a cancel and a re-insert at
 * a new price or a larger quantity, under a new id), deterministic from a
 * seed. Each scenario is generated against a shadow engine (so that every
 * cancel targets an open order and the mid follows the real book), before
 * anything is timed.
 *
 *   deep_static   ~21,000 resting orders, a calm mid: the id map and the
 *                 levels outgrow the caches
 *   normal        ~5,000 resting, moderate volatility
 *   volatile      ~3,000 resting, a fast mid: reprices and trades
 *   ioc_sweeps    ~5,000 resting, 40 % of orders IOC sweeping 1-5 levels
 *   flash_crash   ~8,000 resting; at 40 % of the run the mid falls 8 % in
 *                 2 % of the messages, market sells sweeping the bids, then
 *                 recovers
 *
 * Ids are those of ingest's blocks (block << 20 | n) from two writer lanes,
 * interleaved, as a shard sees them.
 */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "matcher/engine/engine.h"
#include "ops/tools/refengine.h"

struct scenario {
    const char *name;
    uint32_t resting;   /* open orders the flow hovers around */
    double sigma;       /* the mid's volatility per message (log return) */
    double ioc;         /* share of new orders that are IOC, crossing */
    double modify;      /* share of resting orders modified once (cancel + re-insert) */
    double depth_alpha; /* power law of the distance from the touch: P(d > x) ~ x^-alpha */
    int crash;          /* 1: a flash crash at 40 % of the run */
};

static const struct scenario scenarios[] = {
    {"deep_static", 21000, 0.00002, 0.10, 0.20, 0.8, 0},
    {"normal", 5000, 0.0001, 0.15, 0.20, 1.2, 0},
    {"volatile", 3000, 0.0005, 0.15, 0.30, 1.5, 0},
    {"ioc_sweeps", 5000, 0.0001, 0.40, 0.10, 1.2, 0},
    {"flash_crash", 8000, 0.0001, 0.15, 0.20, 1.0, 1},
};
#define NSCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

/* The generator's view of the shadow book: open orders, unordered. */
struct sc_order {
    uint64_t id;
    int64_t price, qty;
    uint8_t side;
    uint8_t modified;
};

struct sc_gen {
    const struct scenario *sc;
    uint64_t rng;
    double mid; /* ticks */
    uint64_t ts;
    uint64_t lane_next[2]; /* next id of each writer lane */
    struct sc_order *open;
    size_t nopen, cap;
    /* id -> index + 1 in open (0: not open): a hash, since ids are sparse */
    uint64_t *keys;
    uint32_t *vals;
    size_t mask;
    uint64_t emitted, total;
    struct eng *shadow;
    struct eng_reports out;
};

static inline double sc_uniform(struct sc_gen *g)
{
    return (double)(gen_rand(&g->rng) >> 11) * (1.0 / 9007199254740992.0);
}

static inline double sc_normal(struct sc_gen *g)
{
    double u = sc_uniform(g), v = sc_uniform(g);
    return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

static inline size_t sc_slot(const struct sc_gen *g, uint64_t id)
{
    uint64_t x = id * UINT64_C(0x9E3779B97F4A7C15);
    return (size_t)(x >> 20) & g->mask;
}

static size_t sc_find(const struct sc_gen *g, uint64_t id)
{
    for (size_t i = sc_slot(g, id);; i = (i + 1) & g->mask) {
        if (g->keys[i] == id)
            return i;
        if (g->keys[i] == 0)
            return SIZE_MAX;
    }
}

static void sc_put(struct sc_gen *g, uint64_t id, uint32_t val)
{
    size_t i = sc_slot(g, id);
    while (g->keys[i] != 0 && g->keys[i] != id)
        i = (i + 1) & g->mask;
    g->keys[i] = id;
    g->vals[i] = val;
}

/* Backward-shift delete of id (present). */
static void sc_del(struct sc_gen *g, uint64_t id)
{
    size_t i = sc_find(g, id), j = i;
    for (;;) {
        j = (j + 1) & g->mask;
        if (g->keys[j] == 0)
            break;
        size_t k = sc_slot(g, g->keys[j]);
        int stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            g->keys[i] = g->keys[j];
            g->vals[i] = g->vals[j];
            i = j;
        }
    }
    g->keys[i] = 0;
}

static void sc_add_open(struct sc_gen *g, uint64_t id, int64_t price, int64_t qty, uint8_t side)
{
    if (g->nopen == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 4096;
        g->open = realloc(g->open, g->cap * sizeof(*g->open));
        if (!g->open)
            abort();
    }
    g->open[g->nopen] = (struct sc_order){id, price, qty, side, 0};
    sc_put(g, id, (uint32_t)++g->nopen);
}

static void sc_drop_open(struct sc_gen *g, uint64_t id)
{
    size_t s = sc_find(g, id);
    if (s == SIZE_MAX)
        return;
    uint32_t p = g->vals[s];
    sc_del(g, id);
    g->open[p - 1] = g->open[--g->nopen];
    if (p - 1 < g->nopen)
        sc_put(g, g->open[p - 1].id, p);
}

/* Sets g up for scenario sc, total messages, seed; 0 or -1 (memory). */
static int sc_init(struct sc_gen *g, const struct scenario *sc, uint64_t total, uint64_t seed)
{
    memset(g, 0, sizeof(*g));
    g->sc = sc;
    g->rng = seed * 2 + 1;
    g->mid = 100000;
    g->ts = 1700000000000000000ull;
    g->lane_next[0] = (UINT64_C(37) << 20) | 1;
    g->lane_next[1] = (UINT64_C(38) << 20) | 1;
    g->total = total;
    g->mask = 1;
    while (g->mask < (size_t)sc->resting * 8)
        g->mask <<= 1;
    g->keys = calloc(g->mask, sizeof(*g->keys));
    g->vals = calloc(g->mask, sizeof(*g->vals));
    g->mask--;
    g->shadow = eng_new(0, 0);
    eng_reports_init(&g->out);
    return g->keys && g->vals && g->shadow ? 0 : -1;
}

static void sc_release(struct sc_gen *g)
{
    free(g->keys);
    free(g->vals);
    free(g->open);
    eng_free(g->shadow);
    eng_reports_release(&g->out);
}

/* Applies in to the shadow engine and follows its reports. */
static void sc_shadow(struct sc_gen *g, const struct op_order_msg *in)
{
    eng_reports_reset(&g->out);
    eng_apply(g->shadow, in, &g->out);
    int rests = in->kind == OP_MSG_NEW && in->tif == OP_TIF_GTC;
    for (size_t i = 0; i < g->out.len; i++) {
        const struct op_report *r = &g->out.v[i];
        if (r->kind == OP_REPORT_TRADE) {
            if (r->maker_status == OP_STATUS_FILLED)
                sc_drop_open(g, r->maker_order_id);
            if (r->status == OP_STATUS_FILLED)
                rests = 0;
        } else if (r->kind == OP_REPORT_CANCELLED) {
            sc_drop_open(g, r->order_id);
            rests = 0;
        } else if (r->kind == OP_REPORT_REJECTED) {
            rests = 0;
        }
    }
    if (rests)
        sc_add_open(g, in->order_id, in->price, in->qty, in->side);
}

static void sc_fill(struct op_order_msg *in, int kind, uint64_t id, uint64_t ts)
{
    memset(in, 0, sizeof(*in));
    in->kind = (uint8_t)kind;
    in->order_id = id;
    in->ts_ns = ts;
    memcpy(in->symbol, "AAPL", 5);
    memcpy(in->account, id % 3 ? "alice" : "bob", id % 3 ? 6 : 4);
}

static int64_t sc_best(const struct sc_gen *g, int side)
{
    struct book_depth d;
    if (eng_depth(g->shadow, "AAPL", side, &d, 1) == 0)
        return side == OP_SIDE_BUY ? (int64_t)g->mid - 1 : (int64_t)g->mid + 1;
    return d.price;
}

/* A new order: passive at a power-law distance behind the touch, or (ioc) an
 * IOC crossing 1-5 levels. */
static void sc_new(struct sc_gen *g, struct op_order_msg *in, int side, int ioc, int64_t qty)
{
    int lane = (int)(gen_rand(&g->rng) & 1);
    sc_fill(in, OP_MSG_NEW, g->lane_next[lane]++, g->ts);
    in->side = (uint8_t)side;
    in->type = OP_TYPE_LIMIT;
    in->tif = ioc ? OP_TIF_IOC : OP_TIF_GTC;
    in->qty = qty ? qty : 1 + (int64_t)gen_below(&g->rng, 500);
    int64_t m = (int64_t)g->mid;
    if (ioc) {
        int64_t through = 1 + (int64_t)gen_below(&g->rng, 5);
        in->price = side == OP_SIDE_BUY ? sc_best(g, OP_SIDE_SELL) + through
                                        : sc_best(g, OP_SIDE_BUY) - through;
    } else {
        double d = pow(sc_uniform(g) + 1e-12, -1.0 / g->sc->depth_alpha) - 1.0;
        int64_t off = 1 + (int64_t)(d > 5000 ? 5000 : d);
        in->price = side == OP_SIDE_BUY ? m - off : m + off;
    }
    if (in->price < 1)
        in->price = 1;
}

/*
 * Writes the next messages into v (room for 2) and returns how many (1 or
 * 2: a modify is a cancel and a re-insert).
 */
static int sc_next(struct sc_gen *g, struct op_order_msg *v)
{
    const struct scenario *sc = g->sc;
    g->ts += 1000;
    double crash_at = 0.40 * (double)g->total, crash_len = 0.02 * (double)g->total;
    double pos = (double)g->emitted;
    int crashing = sc->crash && pos >= crash_at && pos < crash_at + crash_len;
    if (crashing)
        g->mid *= 1.0 - 0.08 / crash_len;
    else if (sc->crash && pos >= crash_at + crash_len && pos < crash_at + 4 * crash_len)
        g->mid *= 1.0 + 0.08 / (3 * crash_len);
    else
        g->mid *= exp(sc->sigma * sc_normal(g));
    int side = gen_rand(&g->rng) & 1 ? OP_SIDE_BUY : OP_SIDE_SELL;
    int n = 1;
    if (crashing && gen_below(&g->rng, 3) == 0) {
        /* panic selling: market sells sweeping the bids */
        int lane = (int)(gen_rand(&g->rng) & 1);
        sc_fill(&v[0], OP_MSG_NEW, g->lane_next[lane]++, g->ts);
        v[0].side = OP_SIDE_SELL;
        v[0].type = OP_TYPE_MARKET;
        v[0].tif = OP_TIF_IOC;
        v[0].qty = 500 + (int64_t)gen_below(&g->rng, 3000);
    } else if (g->nopen < sc->resting / 2 ||
               (g->nopen < sc->resting * 3 / 2 && gen_below(&g->rng, 100) < 50)) {
        /* about half the messages are new orders while the book is near its
         * size: every new GTC is later cancelled, filled or modified */
        sc_new(g, &v[0], side, sc_uniform(g) < sc->ioc, 0);
    } else {
        struct sc_order *o = &g->open[gen_below(&g->rng, g->nopen)];
        if (!o->modified && sc_uniform(g) < sc->modify) {
            /* modify: cancel + re-insert at a new price or a larger quantity */
            int oside = o->side;
            int64_t qty = o->qty, price = o->price;
            sc_fill(&v[0], OP_MSG_CANCEL, o->id, g->ts);
            sc_shadow(g, &v[0]);
            g->emitted++;
            int lane = (int)(gen_rand(&g->rng) & 1);
            sc_fill(&v[1], OP_MSG_NEW, g->lane_next[lane]++, g->ts);
            v[1].side = (uint8_t)oside;
            v[1].type = OP_TYPE_LIMIT;
            v[1].tif = OP_TIF_GTC;
            if (gen_below(&g->rng, 2)) {
                v[1].price =
                    price + (oside == OP_SIDE_BUY ? -1 : 1) * (1 + (int64_t)gen_below(&g->rng, 3));
                v[1].qty = qty;
            } else {
                v[1].price = price;
                v[1].qty = qty + 1 + (int64_t)gen_below(&g->rng, 100);
            }
            if (v[1].price < 1)
                v[1].price = 1;
            sc_shadow(g, &v[1]);
            size_t s = sc_find(g, v[1].order_id);
            if (s != SIZE_MAX)
                g->open[g->vals[s] - 1].modified = 1;
            g->emitted++;
            return 2;
        }
        sc_fill(&v[0], OP_MSG_CANCEL, o->id, g->ts);
    }
    sc_shadow(g, &v[0]);
    g->emitted++;
    return n;
}

#endif

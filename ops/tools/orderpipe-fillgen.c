/* orderpipe-fillgen: writes realistic execution reports to fills:{S}, and the tables they must
 * give. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shared/alloc.h"
#include "shared/buf.h"
#include "shared/codec.h"
#include "shared/config.h"
#include "shared/log.h"
#include "shared/pg.h"
#include "shared/redis.h"
#include "shared/shard.h"
#include "shared/symbols.h"

/*
 * For tests and benchmarks of the recorder: a small order-book model (not the
 * matching engine: FIFO per side, no price priority) that turns random inputs
 * — new orders (limit/market, GTC/IOC/FOK, post-only), cancels, amends,
 * rejections — into the execution reports the matcher would publish, with
 * report ids (seq << 10 | shard) and states consistent with schemas/messages.md,
 * one fills entry per input (fields sym, kind, m) XADDed to its shard with
 * NOMKSTREAM in pipelined rounds.
 *
 * With --expect DIR it also writes what the recorder must produce, computed
 * from the model alone (the last state of every order, every trade), in the
 * format of
 *   COPY (SELECT … ORDER BY id) TO STDOUT
 * with times as integer microseconds (see tests/integration/recorder_lib.sh):
 *   DIR/orders.tsv  DIR/fills.tsv  DIR/dead.count (poison entries written)
 *
 * Usage: orderpipe-fillgen [--inputs N | --trades N] [--seed S] [--expect DIR]
 *          [--poison K] [--round N] [--pace-ms MS] [--id-base B] [--seq-base Q]
 *          [--group N] [--ts-base NS] [--controls]
 * --group N puts the reports of N inputs of a shard into one entry, as the
 * matcher does with a batch (default 1: one entry per input). Poison entries
 * always stand alone. --ts-base NS: the first event time (ns since the epoch)
 * instead of a fixed day of November 2026; each input adds 1–101 µs.
 * --controls adds the trading controls of issue 14 to the mix: self-trade
 * prevention on new orders (every mode: CANCELLED and AMENDED reports with
 * reason SELF_TRADE), replaces (REPLACED with a new price and/or a larger
 * qty, then trades with req_kind AMEND), cancel-alls (CANCELLED req_kind 4,
 * CANCEL_ALL_DONE, rejected ones) and the rejections TOO_MANY_OPEN_ORDERS
 * and BAD_STP. Without it the output is what it always was (the benchmarks
 * compare runs with it).
 * Reads REDIS_URL, ORDER_SHARDS, SYMBOLS_FILE. Prints one summary line.
 * Exit status: 0 done, 1 redis or file failure, 2 bad arguments.
 */

#define NACCOUNTS 6
static const char *const accounts[NACCOUNTS] = {"alice", "bob",         "carol",
                                                "dave",  "back\\slash", "erin"};
/* Why 40: resting orders per side per symbol kept small so a sweep stays a
 * few reports and the model stays O(pool) per input. */
#define POOL_MAX 40

struct gorder {
    uint64_t id;
    int64_t price; /* ticks, 0 market (or a refused price) */
    int64_t qty, filled;
    uint64_t created_ns, updated_ns, version;
    uint16_t sym;
    uint8_t acct, side, type, tif, post_only, status, reason, has_coid, is_state_report_reason;
    uint8_t stp; /* enum op_stp (--controls only) */
};

struct gsym {
    const struct op_symbol *s; /* (ref) */
    uint32_t shard;
    uint32_t pool[2][POOL_MAX]; /* resting order indices, FIFO; [0] buys, [1] sells */
    int npool[2];
};

struct gen {
    struct op_redis redis;
    struct op_symtab syms;
    uint32_t shards;
    struct gsym *gs;
    size_t nsyms;
    struct gorder *orders;
    size_t norders, cap_orders;
    uint64_t *seq; /* per shard */
    uint64_t next_id;
    uint64_t ts;
    uint64_t rng;
    /* the current input's reports: at most two per resting order met (a
     * self-trade decrement reduces the maker and the taker), and a few more */
    struct op_report rep[POOL_MAX * 3 + 8];
    size_t nrep;
    /* the fills expected, as text */
    struct op_buf fills_tsv;
    struct op_buf enc;
    int pending; /* XADDs queued in this round */
    /* --group N: reports of N inputs per entry, per shard, as the matcher
     * writes them (one entry per batch); 1 = one entry per input */
    uint32_t group;
    struct op_report **acc; /* per shard: reports waiting for their entry */
    size_t *nacc;           /* per shard: how many */
    uint32_t *inacc;        /* per shard: of how many inputs */
    int no_group;           /* publish the next entry alone (poison) */
    int round;
    int pace_ms;
    uint64_t inputs, entries, reports, trades, poison;
    int write_expect;
    int controls; /* --controls: the inputs of issue 14 too */
};

static uint64_t rnd(struct gen *g)
{
    /* xorshift64*: deterministic for a seed, good enough for test data */
    g->rng ^= g->rng >> 12;
    g->rng ^= g->rng << 25;
    g->rng ^= g->rng >> 27;
    return g->rng * 2685821657736338717ULL;
}

static uint64_t below(struct gen *g, uint64_t n)
{
    return rnd(g) % n;
}

static int die(const char *what, const char *why)
{
    fprintf(stderr, "orderpipe-fillgen: %s: %s\n", what, why);
    exit(1);
}

/* Sends the queued XADDs' replies; dies on any failure (a test tool). */
static void flush_round(struct gen *g)
{
    for (int i = 0; i < g->pending; i++) {
        struct redisReply *rep = op_redis_next_reply(&g->redis);
        if (!rep)
            die("xadd failed", g->redis.errstr);
        if (op_reply_type(rep) != OP_REPLY_STRING)
            die("xadd refused (did orderpipe-setup create the streams?)",
                op_reply_type(rep) == OP_REPLY_ERROR ? op_reply_str(rep, NULL) : "nil reply");
        op_reply_free(rep);
    }
    g->pending = 0;
    if (g->pace_ms > 0) {
        struct timespec ts = {g->pace_ms / 1000, (long)(g->pace_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* XADDs m (len bytes) to fills:{shard} with fields sym and kind. */
static void xadd(struct gen *g, uint32_t shard, const char *sym, const char *kind, const char *m,
                 size_t len)
{
    char key[OP_KEY_MAX];
    op_key_fills(key, shard);
    const char *argv[] = {"XADD", key, "NOMKSTREAM", "*", "sym", sym, "kind", kind, "m", m};
    size_t lens[] = {4, strlen(key), 10, 1, 3, strlen(sym), 4, strlen(kind), 1, len};
    if (op_redis_append(&g->redis, 10, argv, lens) != 0)
        die("xadd failed", g->redis.errstr);
    g->entries++;
    if (++g->pending >= g->round)
        flush_round(g);
}

/* XADDs reps[0..n) as one entry of shard, fields sym and kind (the kinds). */
static void publish_now(struct gen *g, uint32_t shard, const char *sym,
                        const struct op_report *reps, size_t n)
{
    char kind[1024];
    size_t kl = 0;
    kind[0] = '\0';
    for (size_t i = 0; i < n && kl + 16 < sizeof(kind); i++)
        kl += (size_t)snprintf(kind + kl, sizeof(kind) - kl, "%s%s", i ? "," : "",
                               op_report_kind_name(reps[i].kind));
    op_buf_reset(&g->enc);
    if (op_codec_encode_reports(&g->enc, reps, n) != 0)
        die("encode", "out of memory");
    xadd(g, shard, sym, kind, g->enc.data, g->enc.len);
    g->reports += n;
}

/* Writes the reports waiting for shard's grouped entry, if any. */
static void flush_group(struct gen *g, uint32_t shard)
{
    if (!g->acc || g->nacc[shard] == 0)
        return;
    publish_now(g, shard, g->acc[shard][0].symbol, g->acc[shard], g->nacc[shard]);
    g->nacc[shard] = 0;
    g->inacc[shard] = 0;
}

/* Publishes the current input's reports: as one entry of sym's shard, or
 * (--group) added to the shard's pending entry. */
static void publish(struct gen *g, const struct gsym *s)
{
    if (g->group <= 1 || g->no_group) {
        publish_now(g, s->shard, s->s->name, g->rep, g->nrep);
        g->nrep = 0;
        return;
    }
    uint32_t sh = s->shard;
    if (g->nacc[sh] + g->nrep > OP_CODEC_REPORTS_MAX)
        flush_group(g, sh);
    memcpy(&g->acc[sh][g->nacc[sh]], g->rep, g->nrep * sizeof(g->rep[0]));
    g->nacc[sh] += g->nrep;
    g->nrep = 0;
    if (++g->inacc[sh] >= g->group)
        flush_group(g, sh);
}

static uint64_t next_rid(struct gen *g, uint32_t shard)
{
    return (g->seq[shard]++ << 10) | shard;
}

static const char *status_of(int st)
{
    return op_status_name(st);
}

/* A report about order o (taker side), description included, state after. */
static struct op_report *report(struct gen *g, struct gorder *o, int kind, int req_kind)
{
    const struct gsym *s = &g->gs[o->sym];
    struct op_report *r = &g->rep[g->nrep++];
    memset(r, 0, sizeof(*r));
    r->kind = (uint8_t)kind;
    r->req_kind = (uint8_t)req_kind;
    r->report_id = next_rid(g, s->shard);
    r->ts_ns = g->ts;
    r->order_id = o->id;
    r->side = o->side, r->type = o->type, r->tif = o->tif, r->post_only = o->post_only;
    r->price = o->price;
    r->qty = o->qty;
    r->filled_qty = o->filled;
    r->status = o->status;
    snprintf(r->symbol, sizeof(r->symbol), "%s", s->s->name);
    snprintf(r->account, sizeof(r->account), "%s", accounts[o->acct]);
    if (o->has_coid)
        snprintf(r->client_order_id, sizeof(r->client_order_id), "c-%llu",
                 (unsigned long long)o->id);
    return r;
}

/* The model's record of what the recorder must show: state from report r. */
static void applied(struct gorder *o, const struct op_report *r, int reason)
{
    o->updated_ns = r->ts_ns;
    o->version = r->report_id;
    o->reason = (uint8_t)reason;
}

static struct gorder *new_order(struct gen *g)
{
    if (g->norders == g->cap_orders) {
        size_t cap = g->cap_orders ? g->cap_orders * 2 : 4096;
        struct gorder *p = op_realloc(g->orders, cap * sizeof(*p));
        if (!p)
            die("model", "out of memory");
        g->orders = p;
        g->cap_orders = cap;
    }
    struct gorder *o = &g->orders[g->norders++];
    memset(o, 0, sizeof(*o));
    o->id = g->next_id++;
    return o;
}

static void pool_remove(struct gsym *s, int side, int k)
{
    memmove(&s->pool[side][k], &s->pool[side][k + 1],
            (size_t)(s->npool[side] - k - 1) * sizeof(uint32_t));
    s->npool[side]--;
}

static int crosses(const struct gorder *taker, const struct gorder *maker)
{
    if (taker->type == OP_TYPE_MARKET)
        return 1;
    return taker->side == OP_SIDE_BUY ? maker->price <= taker->price : maker->price >= taker->price;
}

/* Appends the fills row of trade r (COPY text, times in µs). */
static void expect_fill(struct gen *g, const struct op_report *r, const struct op_symbol *sym)
{
    if (!g->write_expect)
        return;
    char px[64];
    op_decimal_format(r->trade_price, sym->tick, px, sizeof(px));
    struct op_buf *b = &g->fills_tsv;
    op_buf_printf(b, "%llu\t%s\t%s\t%lld\t%llu\t%llu\t", (unsigned long long)r->report_id,
                  r->symbol, px, (long long)r->trade_qty, (unsigned long long)r->maker_order_id,
                  (unsigned long long)r->order_id);
    op_pg_copy_escape(b, r->maker_account, strlen(r->maker_account));
    op_buf_append(b, "\t", 1);
    op_pg_copy_escape(b, r->account, strlen(r->account));
    op_buf_printf(b, "\t%s\t%llu\n", op_side_name(r->side), (unsigned long long)(r->ts_ns / 1000));
}

/* Self-trade prevention between taker o and the resting maker m (same
 * account, o->stp not none) at position i of opp's pool of s: the reports
 * of docs/engine.md's rules, req_kind rk. Returns 1 when the taker must be
 * cancelled (the caller reports it), else 0 with *next the pool position to
 * look at next. */
static int self_trade(struct gen *g, struct gsym *s, int opp, int i, struct gorder *o,
                      struct gorder *m, int rk, int *next)
{
    int64_t q = o->qty - o->filled;
    if (m->qty - m->filled < q)
        q = m->qty - m->filled;
    int stp = o->stp;
    *next = i;
    if (stp == OP_STP_CANCEL_MAKER || stp == OP_STP_CANCEL_BOTH ||
        (stp == OP_STP_DECREMENT && m->qty - m->filled == q)) {
        pool_remove(s, opp, i);
        m->status = OP_STATUS_CANCELLED;
        struct op_report *r = report(g, m, OP_REPORT_CANCELLED, rk);
        r->reason = OP_REASON_SELF_TRADE;
        applied(m, r, OP_REASON_SELF_TRADE);
    } else if (stp == OP_STP_DECREMENT) {
        m->qty -= q;
        struct op_report *r = report(g, m, OP_REPORT_AMENDED, rk);
        r->reason = OP_REASON_SELF_TRADE;
        applied(m, r, 0);
        *next = i + 1;
    }
    if (stp == OP_STP_CANCEL_TAKER || stp == OP_STP_CANCEL_BOTH ||
        (stp == OP_STP_DECREMENT && o->qty - o->filled == q))
        return 1;
    if (stp == OP_STP_DECREMENT) {
        o->qty -= q;
        struct op_report *r = report(g, o, OP_REPORT_AMENDED, rk);
        r->reason = OP_REASON_SELF_TRADE;
        applied(o, r, 0);
    }
    return 0;
}

/* Matches taker o against the resting orders of s's opposite side that it
 * crosses, in pool order (FIFO, no price priority), one TRADE per maker met
 * (req_kind rk), self-trade prevention by o->stp. Returns
 * OP_REASON_SELF_TRADE when that cancels the taker (not yet reported), else
 * 0. */
static int match(struct gen *g, struct gsym *s, struct gorder *o, int rk)
{
    int opp = o->side == OP_SIDE_BUY ? 1 : 0;
    for (int i = 0; i < s->npool[opp] && o->filled < o->qty;) {
        struct gorder *m = &g->orders[s->pool[opp][i]];
        if (!crosses(o, m)) {
            i++;
            continue;
        }
        if (o->stp != OP_STP_NONE && m->acct == o->acct) {
            if (self_trade(g, s, opp, i, o, m, rk, &i))
                return OP_REASON_SELF_TRADE;
            continue;
        }
        int64_t q = o->qty - o->filled;
        if (m->qty - m->filled < q)
            q = m->qty - m->filled;
        o->filled += q;
        m->filled += q;
        o->status = o->filled == o->qty ? OP_STATUS_FILLED : OP_STATUS_PARTIALLY_FILLED;
        m->status = m->filled == m->qty ? OP_STATUS_FILLED : OP_STATUS_PARTIALLY_FILLED;
        struct op_report *r = report(g, o, OP_REPORT_TRADE, rk);
        r->maker_order_id = m->id;
        r->trade_price = m->price;
        r->trade_qty = q;
        r->maker_qty = m->qty;
        r->maker_filled_qty = m->filled;
        r->maker_status = m->status;
        snprintf(r->maker_account, sizeof(r->maker_account), "%s", accounts[m->acct]);
        applied(o, r, 0);
        applied(m, r, 0);
        expect_fill(g, r, s->s);
        g->trades++;
        if (m->filled == m->qty)
            pool_remove(s, opp, i);
        else
            i++;
    }
    return 0;
}

/* One NEW input on symbol si. */
static void input_new(struct gen *g, size_t si)
{
    struct gsym *s = &g->gs[si];
    struct gorder *o = new_order(g);
    uint32_t oi = (uint32_t)(g->norders - 1);
    o->sym = (uint16_t)si;
    o->acct = (uint8_t)below(g, NACCOUNTS);
    o->side = below(g, 2) ? OP_SIDE_BUY : OP_SIDE_SELL;
    o->has_coid = below(g, 2) == 0;
    uint64_t k = below(g, 100);
    o->type = k < 8 ? OP_TYPE_MARKET : OP_TYPE_LIMIT;
    o->tif = o->type == OP_TYPE_MARKET ? OP_TIF_IOC
             : k < 16                  ? OP_TIF_IOC
             : k < 20                  ? OP_TIF_FOK
                                       : OP_TIF_GTC;
    o->post_only = o->tif == OP_TIF_GTC && k >= 95;
    o->price = o->type == OP_TYPE_MARKET ? 0 : 10000 + (int64_t)below(g, 21) - 10;
    o->qty = 1 + (int64_t)below(g, 100);
    o->created_ns = g->ts;
    o->status = OP_STATUS_NEW;
    /* --controls: self-trade prevention on half of the orders, each mode
     * alike; not on FOK (this model's FOK test would count self liquidity)
     * nor post-only orders (they never match) */
    if (g->controls && o->tif != OP_TIF_FOK && !o->post_only && below(g, 2) == 0)
        o->stp = (uint8_t)(1 + below(g, OP_STP_MAX));
    if (below(g, 100) < 2) { /* refused by the engine: a bad price */
        int why = OP_REASON_BAD_PRICE;
        if (g->controls && below(g, 3) != 0)
            why = below(g, 2) ? OP_REASON_TOO_MANY_OPEN_ORDERS : OP_REASON_BAD_STP;
        if (why == OP_REASON_BAD_PRICE)
            o->price = -(int64_t)below(g, 5);
        o->status = OP_STATUS_REJECTED;
        struct op_report *r = report(g, o, OP_REPORT_REJECTED, OP_MSG_NEW);
        r->reason = (uint8_t)why;
        applied(o, r, why);
        if (o->price < 0)
            o->price = 0; /* recorded as NULL: not a price */
        publish(g, s);
        return;
    }
    applied(o, report(g, o, OP_REPORT_ACCEPTED, OP_MSG_NEW), 0);
    int opp = o->side == OP_SIDE_BUY ? 1 : 0;
    int64_t avail = 0;
    for (int i = 0; i < s->npool[opp]; i++)
        if (crosses(o, &g->orders[s->pool[opp][i]]))
            avail += g->orders[s->pool[opp][i]].qty - g->orders[s->pool[opp][i]].filled;
    int reason = 0;
    if (o->tif == OP_TIF_FOK && avail < o->qty)
        reason = OP_REASON_FOK_UNFILLED;
    else if (o->post_only && avail > 0)
        reason = OP_REASON_POST_ONLY;
    else if (o->type == OP_TYPE_MARKET && s->npool[opp] == 0)
        reason = OP_REASON_NO_LIQUIDITY;
    if (!reason)
        reason = match(g, s, o, OP_MSG_NEW);
    if (!reason && o->filled < o->qty && o->tif != OP_TIF_GTC)
        reason = OP_REASON_IOC_REMAINDER;
    if (reason) {
        o->status = OP_STATUS_CANCELLED;
        struct op_report *r = report(g, o, OP_REPORT_CANCELLED, OP_MSG_NEW);
        r->reason = (uint8_t)reason;
        applied(o, r, reason);
    } else if (o->filled < o->qty) {
        int side = o->side == OP_SIDE_BUY ? 0 : 1;
        if (s->npool[side] == POOL_MAX) { /* the oldest leaves: its owner cancels it */
            publish(g, s);
            struct gorder *old = &g->orders[s->pool[side][0]];
            pool_remove(s, side, 0);
            old->status = OP_STATUS_CANCELLED;
            struct op_report *r = report(g, old, OP_REPORT_CANCELLED, OP_MSG_CANCEL);
            r->reason = OP_REASON_USER_CANCEL;
            applied(old, r, OP_REASON_USER_CANCEL);
        }
        s->pool[side][s->npool[side]++] = oi;
    }
    publish(g, s);
}

/* Replaces the resting order at position k of pool side of s (--controls):
 * a new price (up to 3 ticks either way) and/or a larger qty. It leaves the
 * book (REPLACED, req_kind AMEND), then a post-only order that would trade
 * is cancelled, any other matches as a taker (TRADEs req_kind AMEND, its own
 * self-trade prevention) and rests at the back of the pool. */
static void replace(struct gen *g, struct gsym *s, int side, int k)
{
    uint32_t oi = s->pool[side][k];
    struct gorder *o = &g->orders[oi];
    int64_t px = o->price + (int64_t)below(g, 7) - 3;
    int64_t qty = o->qty + (below(g, 2) ? (int64_t)below(g, 20) : 0);
    if (px == o->price && qty == o->qty)
        px++; /* something changes (same price, less qty: an AMENDED instead) */
    pool_remove(s, side, k);
    o->price = px, o->qty = qty;
    applied(o, report(g, o, OP_REPORT_REPLACED, OP_MSG_AMEND), 0);
    int reason = 0;
    if (o->post_only)
        for (int i = 0; i < s->npool[side ^ 1]; i++)
            if (crosses(o, &g->orders[s->pool[side ^ 1][i]]))
                reason = OP_REASON_POST_ONLY;
    if (!reason)
        reason = match(g, s, o, OP_MSG_AMEND);
    if (reason) {
        o->status = OP_STATUS_CANCELLED;
        struct op_report *r = report(g, o, OP_REPORT_CANCELLED, OP_MSG_AMEND);
        r->reason = (uint8_t)reason;
        applied(o, r, reason);
    } else if (o->filled < o->qty) {
        s->pool[side][s->npool[side]++] = oi; /* it left the pool: there is room */
    }
}

/* A cancel or amend of a random resting order of si (or of one that is not). */
static void input_modify(struct gen *g, size_t si, int amend)
{
    struct gsym *s = &g->gs[si];
    int side = (int)below(g, 2);
    if (s->npool[side] == 0 || below(g, 10) == 0) {
        /* refused: the target is unknown or closed; the order is unchanged */
        struct op_report *r = &g->rep[g->nrep++];
        memset(r, 0, sizeof(*r));
        r->kind = OP_REPORT_REJECTED;
        r->req_kind = amend ? OP_MSG_AMEND : OP_MSG_CANCEL;
        r->reason = OP_REASON_UNKNOWN_ORDER;
        r->report_id = next_rid(g, s->shard);
        r->ts_ns = g->ts;
        /* sometimes an existing order: a rejected request must not touch it */
        r->order_id = g->norders && below(g, 2) ? g->orders[below(g, g->norders)].id : 424242;
        snprintf(r->symbol, sizeof(r->symbol), "%s", s->s->name);
        snprintf(r->account, sizeof(r->account), "%s", accounts[below(g, NACCOUNTS)]);
        publish(g, s);
        return;
    }
    int k = (int)below(g, (uint64_t)s->npool[side]);
    struct gorder *o = &g->orders[s->pool[side][k]];
    if (amend && g->controls && below(g, 2) == 0) {
        replace(g, s, side, k);
    } else if (amend && o->qty - o->filled >= 2) {
        o->qty = o->filled + 1 + (int64_t)below(g, (uint64_t)(o->qty - o->filled - 1));
        applied(o, report(g, o, OP_REPORT_AMENDED, OP_MSG_AMEND), 0);
    } else if (amend) {
        struct op_report *r = report(g, o, OP_REPORT_REJECTED, OP_MSG_AMEND);
        r->reason = OP_REASON_BAD_AMEND;
        /* the order's state is unchanged: the model records nothing */
    } else {
        pool_remove(s, side, k);
        o->status = OP_STATUS_CANCELLED;
        struct op_report *r = report(g, o, OP_REPORT_CANCELLED, OP_MSG_CANCEL);
        r->reason = OP_REASON_USER_CANCEL;
        applied(o, r, OP_REASON_USER_CANCEL);
    }
    publish(g, s);
}

/* A cancel-all (--controls) of a random account, on si or (one time in
 * three) on every symbol of its shard: a CANCELLED (req_kind 4,
 * USER_CANCEL) for each of the account's resting orders there, then
 * CANCEL_ALL_DONE (id 0, symbol "" for all, qty = how many). One in ten is
 * rejected (id 0, an empty account) and changes nothing. */
static void input_cancel_all(struct gen *g, size_t si)
{
    struct gsym *s = &g->gs[si];
    int acct = (int)below(g, NACCOUNTS);
    int all = below(g, 3) == 0;
    struct op_report *r;
    if (below(g, 10) == 0) {
        r = &g->rep[g->nrep++];
        memset(r, 0, sizeof(*r));
        r->kind = OP_REPORT_REJECTED;
        r->req_kind = OP_MSG_CANCEL_ALL;
        r->reason = OP_REASON_BAD_ACCOUNT;
        r->report_id = next_rid(g, s->shard);
        r->ts_ns = g->ts;
        snprintf(r->symbol, sizeof(r->symbol), "%s", all ? "" : s->s->name);
        publish(g, s);
        return;
    }
    int64_t n = 0;
    for (size_t j = 0; j < g->nsyms; j++) {
        struct gsym *t = &g->gs[j];
        if (all ? t->shard != s->shard : j != si)
            continue;
        for (int side = 0; side < 2; side++)
            for (int i = 0; i < t->npool[side];) {
                struct gorder *o = &g->orders[t->pool[side][i]];
                if (o->acct != acct) {
                    i++;
                    continue;
                }
                if (g->nrep + 1 >= sizeof(g->rep) / sizeof(g->rep[0]))
                    publish(g, s); /* an input's reports may span entries */
                pool_remove(t, side, i);
                o->status = OP_STATUS_CANCELLED;
                r = report(g, o, OP_REPORT_CANCELLED, OP_MSG_CANCEL_ALL);
                r->reason = OP_REASON_USER_CANCEL;
                applied(o, r, OP_REASON_USER_CANCEL);
                n++;
            }
    }
    r = &g->rep[g->nrep++];
    memset(r, 0, sizeof(*r));
    r->kind = OP_REPORT_CANCEL_ALL_DONE;
    r->req_kind = OP_MSG_CANCEL_ALL;
    r->report_id = next_rid(g, s->shard);
    r->ts_ns = g->ts;
    r->qty = n;
    snprintf(r->symbol, sizeof(r->symbol), "%s", all ? "" : s->s->name);
    snprintf(r->account, sizeof(r->account), "%s", accounts[acct]);
    publish(g, s);
}

/* A new order whose id is already taken: rejected, and the existing order
 * must stay as it is. */
static void input_duplicate(struct gen *g, size_t si)
{
    if (g->norders == 0)
        return;
    struct gorder copy = g->orders[below(g, g->norders)];
    copy.sym = (uint16_t)si;
    copy.status = OP_STATUS_REJECTED;
    copy.filled = 0;
    if (copy.price <= 0 && copy.type == OP_TYPE_LIMIT)
        copy.price = 10000;
    struct op_report *r = report(g, &copy, OP_REPORT_REJECTED, OP_MSG_NEW);
    r->reason = OP_REASON_DUPLICATE_ID;
    publish(g, &g->gs[si]);
}

/* Poison entries, each of its own kind in turn; their ids are outside the
 * model's so they change no expected row. */
static void input_poison(struct gen *g, uint64_t n)
{
    struct gsym *s = &g->gs[below(g, g->nsyms)];
    struct gorder o;
    memset(&o, 0, sizeof(o));
    o.id = 9000000000000000000ULL + n;
    o.side = OP_SIDE_BUY, o.type = OP_TYPE_LIMIT, o.tif = OP_TIF_GTC;
    o.price = 10000, o.qty = 5, o.status = OP_STATUS_NEW;
    o.sym = (uint16_t)(s - g->gs);
    flush_group(g, s->shard); /* a poison entry stands alone: it is dead-lettered whole */
    g->no_group = 1;
    switch (n % 4) {
    case 0: /* not msgpack at all */
        xadd(g, s->shard, s->s->name, "accepted", "\xc1garbage", 8);
        break;
    case 1: /* a symbol the recorder does not know */
        report(g, &o, OP_REPORT_ACCEPTED, OP_MSG_NEW);
        snprintf(g->rep[0].symbol, sizeof(g->rep[0].symbol), "NOPE");
        publish(g, s);
        break;
    case 2: /* an accepted order with no quantity: orders.qty >= 1 refuses it (a
             * REJECTED one is recorded, with qty NULL: migration 004) */
        o.qty = 0;
        report(g, &o, OP_REPORT_ACCEPTED, OP_MSG_NEW);
        publish(g, s);
        break;
    default: /* a side outside the enum: the recorder refuses it (orders_side_check) */
        o.side = 9;
        report(g, &o, OP_REPORT_ACCEPTED, OP_MSG_NEW);
        publish(g, s);
        break;
    }
    g->no_group = 0;
    g->poison++;
}

/* Writes DIR/name from b, or dies. */
static void write_file(const char *dir, const char *name, const char *data, size_t len)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0)
        die(path, strerror(errno));
}

static int cmp_order(const void *a, const void *b)
{
    const struct gorder *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

struct fill_line {
    uint64_t id;
    const char *p;
    size_t len;
};

static int cmp_fill(const void *a, const void *b)
{
    const struct fill_line *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static void write_expect(struct gen *g, const char *dir)
{
    struct op_buf b;
    op_buf_init(&b);
    qsort(g->orders, g->norders, sizeof(*g->orders), cmp_order);
    for (size_t i = 0; i < g->norders; i++) {
        const struct gorder *o = &g->orders[i];
        const struct op_symbol *sym = g->gs[o->sym].s;
        char px[64] = "\\N";
        if (o->price > 0)
            op_decimal_format(o->price, sym->tick, px, sizeof(px));
        op_buf_printf(&b, "%llu\t", (unsigned long long)o->id);
        if (o->has_coid)
            op_buf_printf(&b, "c-%llu\t", (unsigned long long)o->id);
        else
            op_buf_append(&b, "\\N\t", 3);
        op_pg_copy_escape(&b, accounts[o->acct], strlen(accounts[o->acct]));
        op_buf_printf(&b, "\t%s\t%s\t%s\t%s\t%s\t%s\t%lld\t%lld\t%s\t%s\t%llu\t%llu\t%llu\n",
                      sym->name, op_side_name(o->side), op_type_name(o->type), op_tif_name(o->tif),
                      o->post_only ? "t" : "f", px, (long long)o->qty, (long long)o->filled,
                      status_of(o->status), o->reason ? op_reason_name(o->reason) : "\\N",
                      (unsigned long long)(o->created_ns / 1000),
                      (unsigned long long)(o->updated_ns / 1000), (unsigned long long)o->version);
    }
    write_file(dir, "orders.tsv", b.data, b.len);
    /* fills: reports ids interleave across shards: sort the lines by id */
    size_t n = 0, cap = 1024;
    struct fill_line *lines = op_malloc(cap * sizeof(*lines));
    const char *p = g->fills_tsv.data, *end = p ? p + g->fills_tsv.len : NULL;
    while (p && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (n == cap) {
            cap *= 2;
            lines = op_realloc(lines, cap * sizeof(*lines));
        }
        if (!lines)
            die("expect", "out of memory");
        lines[n].id = strtoull(p, NULL, 10);
        lines[n].p = p;
        lines[n].len = (size_t)(nl - p) + 1;
        n++;
        p = nl + 1;
    }
    qsort(lines, n, sizeof(*lines), cmp_fill);
    op_buf_reset(&b);
    for (size_t i = 0; i < n; i++)
        op_buf_append(&b, lines[i].p, lines[i].len);
    write_file(dir, "fills.tsv", b.data ? b.data : "", b.len);
    op_free(lines);
    char cnt[32];
    int l = snprintf(cnt, sizeof(cnt), "%llu\n", (unsigned long long)g->poison);
    write_file(dir, "dead.count", cnt, (size_t)l);
    op_buf_release(&b);
}

static uint64_t arg_u64(const char *flag, const char *v)
{
    char *end;
    errno = 0;
    unsigned long long x = v ? strtoull(v, &end, 10) : 0;
    if (!v || errno || *end) {
        fprintf(stderr, "orderpipe-fillgen: %s wants a non-negative integer\n", flag);
        exit(2);
    }
    return x;
}

int main(int argc, char **argv)
{
    struct op_config c;
    struct gen *g = op_calloc(1, sizeof(*g));
    uint64_t inputs = 10000, trades = 0, seed = 1, npoison = 0;
    const char *expect = NULL;
    if (!g)
        return 1;
    g->round = 1000;
    g->next_id = 1 << 20;
    uint64_t seq_base = 1, ts_base = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--inputs") == 0)
            inputs = arg_u64(a, v), i++;
        else if (strcmp(a, "--trades") == 0)
            trades = arg_u64(a, v), i++;
        else if (strcmp(a, "--seed") == 0)
            seed = arg_u64(a, v), i++;
        else if (strcmp(a, "--poison") == 0)
            npoison = arg_u64(a, v), i++;
        else if (strcmp(a, "--round") == 0)
            g->round = (int)arg_u64(a, v), i++;
        else if (strcmp(a, "--pace-ms") == 0)
            g->pace_ms = (int)arg_u64(a, v), i++;
        else if (strcmp(a, "--id-base") == 0)
            g->next_id = arg_u64(a, v), i++;
        else if (strcmp(a, "--seq-base") == 0)
            seq_base = arg_u64(a, v), i++;
        else if (strcmp(a, "--expect") == 0 && v)
            expect = v, i++;
        else if (strcmp(a, "--group") == 0)
            g->group = (uint32_t)arg_u64(a, v), i++;
        else if (strcmp(a, "--ts-base") == 0)
            ts_base = arg_u64(a, v), i++;
        else if (strcmp(a, "--controls") == 0)
            g->controls = 1;
        else {
            fprintf(stderr, "usage: orderpipe-fillgen [--inputs N | --trades N] [--seed S] "
                            "[--expect DIR] [--poison K] [--round N] [--pace-ms MS] "
                            "[--id-base B] [--seq-base Q] [--group N] [--ts-base NS] "
                            "[--controls]\n");
            return 2;
        }
    }
    if (g->round < 1)
        g->round = 1;
    op_config_load_or_exit(&c, "orderpipe-fillgen");
    char err[300];
    if (op_symtab_load(&g->syms, c.symbols_file, err, sizeof(err)) != 0 &&
        op_symtab_defaults(&g->syms) != 0)
        die("symbols", err);
    g->shards = c.order_shards;
    g->nsyms = g->syms.n;
    g->gs = op_calloc(g->nsyms, sizeof(*g->gs));
    g->seq = op_calloc(g->shards, sizeof(*g->seq));
    if (!g->gs || !g->seq)
        die("model", "out of memory");
    for (uint32_t i = 0; i < g->shards; i++)
        g->seq[i] = seq_base;
    if (g->group > 1) {
        g->acc = op_calloc(g->shards, sizeof(struct op_report *));
        g->nacc = op_calloc(g->shards, sizeof(*g->nacc));
        g->inacc = op_calloc(g->shards, sizeof(*g->inacc));
        if (!g->acc || !g->nacc || !g->inacc)
            die("model", "out of memory");
        for (uint32_t i = 0; i < g->shards; i++)
            if (!(g->acc[i] = op_calloc(OP_CODEC_REPORTS_MAX, sizeof(*g->acc[i]))))
                die("model", "out of memory");
    }
    for (size_t i = 0; i < g->nsyms; i++) {
        g->gs[i].s = &g->syms.v[i];
        g->gs[i].shard = op_shard_of(g->syms.v[i].name, strlen(g->syms.v[i].name), g->shards);
    }
    g->rng = seed * 0x9E3779B97F4A7C15ULL + 1;
    g->write_expect = expect != NULL;
    op_buf_init(&g->fills_tsv);
    op_buf_init(&g->enc);
    /* event times: a fixed day, ns digits that do not round to whole µs
     * (or from --ts-base: the partitions test puts them around a midnight) */
    g->ts = ts_base ? ts_base : 1795000000000000000ULL + seed * 1000000000000ULL;
    if (op_redis_init(&g->redis, c.redis_url, c.redis_timeout_ms) != 0 ||
        op_redis_connect(&g->redis) != 0)
        die("cannot connect to redis", g->redis.errstr);

    uint64_t poison_every = npoison ? (trades ? trades : inputs) / (npoison + 1) + 1 : 0;
    uint64_t poison_done = 0;
    while (trades ? g->trades < trades : g->inputs < inputs) {
        size_t si = (size_t)below(g, g->nsyms);
        g->ts += 1000 + below(g, 100000);
        uint64_t k = below(g, 100);
        if (k < 70)
            input_new(g, si);
        else if (k < 85)
            input_modify(g, si, 0);
        else if (k < 97)
            input_modify(g, si, 1);
        else if (g->controls && k < 99)
            input_cancel_all(g, si);
        else
            input_duplicate(g, si);
        g->inputs++;
        uint64_t progress = trades ? g->trades : g->inputs;
        if (poison_every && poison_done < npoison && progress >= poison_every * (poison_done + 1))
            input_poison(g, poison_done++);
    }
    while (poison_done < npoison)
        input_poison(g, poison_done++);
    for (uint32_t sh = 0; sh < g->shards; sh++)
        flush_group(g, sh);
    flush_round(g);
    if (expect)
        write_expect(g, expect);
    printf("fillgen: inputs=%llu entries=%llu reports=%llu trades=%llu orders=%zu poison=%llu\n",
           (unsigned long long)g->inputs, (unsigned long long)g->entries,
           (unsigned long long)g->reports, (unsigned long long)g->trades, g->norders,
           (unsigned long long)g->poison);
    op_redis_release(&g->redis);
    op_symtab_release(&g->syms);
    op_buf_release(&g->fills_tsv);
    if (g->acc) {
        for (uint32_t i = 0; i < g->shards; i++)
            op_free(g->acc[i]);
        op_free(g->acc);
        op_free(g->nacc);
        op_free(g->inacc);
    }
    op_buf_release(&g->enc);
    op_free(g->orders);
    op_free(g->gs);
    op_free(g->seq);
    op_free(g);
    return 0;
}

/* A deliberately naive reference engine (linear scans) and a random input generator, for tests and
 * the book bench. */
#ifndef OP_REFENGINE_H
#define OP_REFENGINE_H

/*
 * The reference implements docs/engine.md from scratch, as plainly as
 * possible: every open order of every symbol sits in one unsorted array, the
 * best maker is found by scanning it, closed orders sit in a FIFO array
 * scanned linearly. It shares no code with the engine, so a differential test
 * of the two checks the engine's data structures (and both readings of the
 * semantics) rather than one against itself. Everything is static: include it
 * from one .c file per binary.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/msg.h"

struct ref_order {
    uint64_t id;
    uint64_t time; /* arrival sequence: lower = earlier (time priority) */
    int64_t price, qty, filled;
    uint8_t side, type, tif, post_only, stp;
    char symbol[OP_SYMBOL_MAX];
    char account[OP_ACCOUNT_MAX];
    char clordid[OP_CLORDID_MAX];
};

struct ref_closed {
    uint64_t id;
    char symbol[OP_SYMBOL_MAX];
    char account[OP_ACCOUNT_MAX];
};

struct ref {
    uint32_t shard;
    uint64_t seq;  /* reports emitted */
    uint64_t time; /* arrivals */
    uint64_t now;  /* the largest input ts so far: every report's time */
    struct ref_order *open;
    size_t nopen, capopen;
    struct ref_closed *closed; /* a ring: oldest at closed_head once full */
    size_t nclosed, closed_max, closed_head;
    size_t max_open; /* open orders per account per symbol; 0 = no limit */
    /* symbols in the order their first order was accepted (the engine's
     * book order, which a cancel-all of every symbol follows) */
    char (*books)[OP_SYMBOL_MAX];
    size_t nbooks, capbooks;
};

static inline void ref_die(const char *what)
{
    fprintf(stderr, "ref: %s\n", what);
    abort();
}

static inline struct ref *ref_new(uint32_t shard, size_t closed_max)
{
    struct ref *r = calloc(1, sizeof(*r));
    if (r == NULL)
        ref_die("out of memory");
    r->shard = shard;
    r->closed_max = closed_max;
    r->closed = calloc(closed_max, sizeof(*r->closed));
    if (r->closed == NULL)
        ref_die("out of memory");
    return r;
}

static inline void ref_free(struct ref *r)
{
    if (r == NULL)
        return;
    free(r->open);
    free(r->closed);
    free(r->books);
    free(r);
}

/* Copies a string field NUL-padded; returns 1 when it had no NUL (truncated). */
static inline int ref_field(char *dst, const char *src, size_t size)
{
    size_t n = 0;
    while (n < size && src[n] != '\0')
        n++;
    int bad = n == size;
    if (bad)
        n = size - 1;
    memset(dst, 0, size);
    memcpy(dst, src, n);
    return bad;
}

static inline struct op_report *ref_rep(struct ref *r, struct op_report *out, size_t *n, int kind,
                                        int req_kind, uint64_t ts)
{
    struct op_report *p = &out[(*n)++];
    memset(p, 0, sizeof(*p));
    p->kind = (uint8_t)kind;
    p->req_kind = (uint8_t)req_kind;
    r->seq++;
    p->report_id = r->seq * 1024 + r->shard;
    p->ts_ns = ts;
    return p;
}

static inline uint8_t ref_status(const struct ref_order *o)
{
    if (o->filled == 0)
        return OP_STATUS_NEW;
    if (o->filled == o->qty)
        return OP_STATUS_FILLED;
    return OP_STATUS_PARTIALLY_FILLED;
}

static inline void ref_desc(struct op_report *p, const struct ref_order *o)
{
    p->status = ref_status(o);
    p->side = o->side;
    p->type = o->type;
    p->tif = o->tif;
    p->post_only = o->post_only;
    p->order_id = o->id;
    p->price = o->price;
    p->qty = o->qty;
    p->filled_qty = o->filled;
    memcpy(p->symbol, o->symbol, OP_SYMBOL_MAX);
    memcpy(p->account, o->account, OP_ACCOUNT_MAX);
    memcpy(p->client_order_id, o->clordid, OP_CLORDID_MAX);
}

static inline void ref_close(struct ref *r, const struct ref_order *o)
{
    struct ref_closed *c;
    if (r->nclosed == r->closed_max) { /* overwrite the oldest */
        c = &r->closed[r->closed_head];
        r->closed_head = (r->closed_head + 1) % r->closed_max;
    } else {
        c = &r->closed[r->nclosed++];
    }
    c->id = o->id;
    memcpy(c->symbol, o->symbol, OP_SYMBOL_MAX);
    memcpy(c->account, o->account, OP_ACCOUNT_MAX);
}

static inline long ref_find_open(const struct ref *r, uint64_t id)
{
    for (size_t i = 0; i < r->nopen; i++)
        if (r->open[i].id == id)
            return (long)i;
    return -1;
}

static inline long ref_find_closed(const struct ref *r, uint64_t id)
{
    for (size_t i = 0; i < r->nclosed; i++)
        if (r->closed[i].id == id)
            return (long)i;
    return -1;
}

/* Would o trade with a maker at price? */
static inline int ref_crosses(const struct ref_order *o, int64_t price)
{
    if (o->type == OP_TYPE_MARKET)
        return 1;
    return o->side == OP_SIDE_BUY ? o->price >= price : o->price <= price;
}

/* Index of the best maker for taker o (best price, then earliest), or -1. */
static inline long ref_best(const struct ref *r, const struct ref_order *o)
{
    long best = -1;
    for (size_t i = 0; i < r->nopen; i++) {
        const struct ref_order *m = &r->open[i];
        if (m->side == o->side || strcmp(m->symbol, o->symbol) != 0)
            continue;
        if (best < 0) {
            best = (long)i;
            continue;
        }
        const struct ref_order *b = &r->open[best];
        int better = m->side == OP_SIDE_SELL ? m->price < b->price : m->price > b->price;
        if (better || (m->price == b->price && m->time < b->time))
            best = (long)i;
    }
    return best;
}

static inline void ref_remove(struct ref *r, long i)
{
    r->open[i] = r->open[r->nopen - 1];
    r->nopen--;
}

static inline void ref_reject_req(struct ref *r, const struct op_order_msg *in, const char *sym,
                                  const char *acct, int reason, struct op_report *out, size_t *n)
{
    struct op_report *p = ref_rep(r, out, n, OP_REPORT_REJECTED, in->kind, r->now);
    p->reason = (uint8_t)reason;
    p->order_id = in->order_id;
    memcpy(p->symbol, sym, OP_SYMBOL_MAX);
    memcpy(p->account, acct, OP_ACCOUNT_MAX);
}

/* 1 when s is 1-36 characters, each a letter, a digit, '.', '_' or '-'. */
static inline int ref_clordid_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 36)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-", s[i]))
            return 0;
    return 1;
}

/* Index of symbol in r->books, adding it when add is set; -1 when absent. */
static inline long ref_book(struct ref *r, const char *symbol, int add)
{
    for (size_t i = 0; i < r->nbooks; i++)
        if (strcmp(r->books[i], symbol) == 0)
            return (long)i;
    if (!add)
        return -1;
    if (r->nbooks == r->capbooks) {
        r->capbooks = r->capbooks ? r->capbooks * 2 : 16;
        r->books = realloc(r->books, r->capbooks * sizeof(*r->books));
        if (r->books == NULL)
            ref_die("out of memory");
    }
    memset(r->books[r->nbooks], 0, OP_SYMBOL_MAX);
    memcpy(r->books[r->nbooks], symbol, strlen(symbol));
    return (long)r->nbooks++;
}

/* Is a better than b as a resting order of one side (price, then time)? */
static inline int ref_before(const struct ref_order *a, const struct ref_order *b)
{
    if (a->price != b->price)
        return a->side == OP_SIDE_BUY ? a->price > b->price : a->price < b->price;
    return a->time < b->time;
}

static inline void ref_cancel_rep(struct ref *r, const struct ref_order *o, int reason, int rk,
                                  struct op_report *out, size_t *n)
{
    struct op_report *p = ref_rep(r, out, n, OP_REPORT_CANCELLED, rk, r->now);
    ref_desc(p, o);
    p->status = OP_STATUS_CANCELLED;
    p->reason = (uint8_t)reason;
}

/* Can FOK order t fill completely, counting only what it could trade? */
static inline int ref_fok_ok(const struct ref *r, const struct ref_order *t)
{
    int64_t avail = 0;
    if (t->stp == OP_STP_NONE) {
        for (size_t i = 0; i < r->nopen; i++) {
            const struct ref_order *m = &r->open[i];
            if (m->side != t->side && strcmp(m->symbol, t->symbol) == 0 && ref_crosses(t, m->price))
                avail += m->qty - m->filled;
        }
        return avail >= t->qty;
    }
    /* Makers in priority order: the next one after `last` each time. */
    const struct ref_order *last = NULL;
    for (;;) {
        const struct ref_order *next = NULL;
        for (size_t i = 0; i < r->nopen; i++) {
            const struct ref_order *m = &r->open[i];
            if (m->side == t->side || strcmp(m->symbol, t->symbol) != 0 ||
                !ref_crosses(t, m->price) || (last != NULL && !ref_before(last, m)))
                continue;
            if (next == NULL || ref_before(m, next))
                next = m;
        }
        if (next == NULL)
            return 0;
        if (strcmp(next->account, t->account) == 0) {
            if (t->stp != OP_STP_CANCEL_MAKER)
                return 0;
        } else {
            avail += next->qty - next->filled;
            if (avail >= t->qty)
                return 1;
        }
        last = next;
    }
}

/* Arriving order t (reported ACCEPTED or REPLACED, by an input of kind rk)
 * takes liquidity, then rests or is cancelled. */
static inline void ref_take(struct ref *r, struct ref_order *tp, int rk, struct op_report *out,
                            size_t *np, size_t max)
{
    struct ref_order t = *tp;
    size_t n = *np;
    int cancel = 0;
    long b = ref_best(r, &t);
    if (t.post_only && b >= 0 && ref_crosses(&t, r->open[b].price))
        cancel = OP_REASON_POST_ONLY;
    if (!cancel && t.tif == OP_TIF_FOK && !ref_fok_ok(r, &t))
        cancel = OP_REASON_FOK_UNFILLED;
    while (!cancel && t.filled < t.qty) {
        b = ref_best(r, &t);
        if (b < 0 || !ref_crosses(&t, r->open[b].price))
            break;
        struct ref_order *m = &r->open[b];
        if (n + 2 >= max)
            ref_die("report buffer too small");
        if (t.stp != OP_STP_NONE && strcmp(m->account, t.account) == 0) {
            int64_t q =
                t.qty - t.filled < m->qty - m->filled ? t.qty - t.filled : m->qty - m->filled;
            int drop_maker = t.stp == OP_STP_CANCEL_MAKER || t.stp == OP_STP_CANCEL_BOTH ||
                             (t.stp == OP_STP_DECREMENT && m->qty - m->filled == q);
            if (drop_maker) {
                ref_cancel_rep(r, m, OP_REASON_SELF_TRADE, rk, out, &n);
                ref_close(r, m);
                ref_remove(r, b);
            } else if (t.stp == OP_STP_DECREMENT) {
                m->qty -= q;
                struct op_report *p = ref_rep(r, out, &n, OP_REPORT_AMENDED, rk, r->now);
                ref_desc(p, m);
                p->reason = OP_REASON_SELF_TRADE;
            }
            if (t.stp == OP_STP_CANCEL_TAKER || t.stp == OP_STP_CANCEL_BOTH ||
                (t.stp == OP_STP_DECREMENT && t.qty - t.filled == q)) {
                cancel = OP_REASON_SELF_TRADE;
            } else if (t.stp == OP_STP_DECREMENT) {
                t.qty -= q;
                struct op_report *p = ref_rep(r, out, &n, OP_REPORT_AMENDED, rk, r->now);
                ref_desc(p, &t);
                p->reason = OP_REASON_SELF_TRADE;
            }
            continue;
        }
        int64_t q = t.qty - t.filled < m->qty - m->filled ? t.qty - t.filled : m->qty - m->filled;
        t.filled += q;
        m->filled += q;
        struct op_report *p = ref_rep(r, out, &n, OP_REPORT_TRADE, rk, r->now);
        ref_desc(p, &t);
        p->maker_order_id = m->id;
        p->trade_price = m->price;
        p->trade_qty = q;
        p->maker_qty = m->qty;
        p->maker_filled_qty = m->filled;
        p->maker_status = ref_status(m);
        memcpy(p->maker_account, m->account, OP_ACCOUNT_MAX);
        if (m->filled == m->qty) {
            ref_close(r, m);
            ref_remove(r, b);
        }
    }
    if (!cancel && t.filled < t.qty && t.tif != OP_TIF_GTC)
        cancel = t.type == OP_TYPE_MARKET && t.filled == 0 ? OP_REASON_NO_LIQUIDITY
                                                           : OP_REASON_IOC_REMAINDER;
    if (cancel) {
        ref_cancel_rep(r, &t, cancel, rk, out, &n);
        ref_close(r, &t);
    } else if (t.filled == t.qty) {
        ref_close(r, &t);
    } else {
        if (r->nopen == r->capopen) {
            r->capopen = r->capopen ? r->capopen * 2 : 256;
            r->open = realloc(r->open, r->capopen * sizeof(*r->open));
            if (r->open == NULL)
                ref_die("out of memory");
        }
        r->open[r->nopen++] = t;
    }
    *np = n;
}

/* Cancel-all of account acct in symbol sym ("" = every symbol). */
static inline void ref_cancel_all(struct ref *r, const char *sym, const char *acct,
                                  struct op_report *out, size_t *np, size_t max)
{
    size_t n = *np;
    int64_t count = 0;
    for (size_t k = 0; k < r->nbooks; k++) {
        if (sym[0] != '\0' && strcmp(sym, r->books[k]) != 0)
            continue;
        for (int side = OP_SIDE_BUY; side <= OP_SIDE_SELL; side++) {
            for (;;) { /* the account's best remaining order of this side */
                long best = -1;
                for (size_t i = 0; i < r->nopen; i++) {
                    const struct ref_order *o = &r->open[i];
                    if (o->side != side || strcmp(o->symbol, r->books[k]) != 0 ||
                        strcmp(o->account, acct) != 0)
                        continue;
                    if (best < 0 || ref_before(o, &r->open[best]))
                        best = (long)i;
                }
                if (best < 0)
                    break;
                if (n + 2 >= max)
                    ref_die("report buffer too small");
                ref_cancel_rep(r, &r->open[best], OP_REASON_USER_CANCEL, OP_MSG_CANCEL_ALL, out,
                               &n);
                ref_close(r, &r->open[best]);
                ref_remove(r, best);
                count++;
            }
        }
    }
    struct op_report *p = ref_rep(r, out, &n, OP_REPORT_CANCEL_ALL_DONE, OP_MSG_CANCEL_ALL, r->now);
    p->qty = count;
    memcpy(p->symbol, sym, OP_SYMBOL_MAX);
    memcpy(p->account, acct, OP_ACCOUNT_MAX);
    *np = n;
}

/* Applies in; writes its reports to out (room for max) and returns how many. */
static inline size_t ref_apply(struct ref *r, const struct op_order_msg *in, struct op_report *out,
                               size_t max)
{
    size_t n = 0;
    if (in->ts_ns > r->now)
        r->now = in->ts_ns;
    char sym[OP_SYMBOL_MAX], acct[OP_ACCOUNT_MAX], clo[OP_CLORDID_MAX];
    int bad = ref_field(sym, in->symbol, sizeof(sym));
    bad |= ref_field(acct, in->account, sizeof(acct));
    if (in->kind != OP_MSG_NEW && in->kind != OP_MSG_CANCEL && in->kind != OP_MSG_AMEND &&
        in->kind != OP_MSG_CANCEL_ALL) {
        ref_reject_req(r, in, sym, acct, OP_REASON_MALFORMED, out, &n);
        return n;
    }
    if (in->kind == OP_MSG_CANCEL_ALL) {
        int reason = bad               ? OP_REASON_MALFORMED
                     : in->ts_ns == 0  ? OP_REASON_BAD_TIME
                     : acct[0] == '\0' ? OP_REASON_BAD_ACCOUNT
                                       : 0;
        if (reason)
            ref_reject_req(r, in, sym, acct, reason, out, &n);
        else
            ref_cancel_all(r, sym, acct, out, &n, max);
        return n;
    }
    if (in->kind != OP_MSG_NEW) {
        int reason = 0;
        long i = -1;
        if (bad) {
            reason = OP_REASON_MALFORMED;
        } else if (in->ts_ns == 0) {
            reason = OP_REASON_BAD_TIME;
        } else if (acct[0] == '\0') {
            reason = OP_REASON_BAD_ACCOUNT;
        } else if ((i = ref_find_open(r, in->order_id)) >= 0 && in->order_id != 0) {
            struct ref_order *o = &r->open[i];
            if (strcmp(o->symbol, sym) != 0)
                reason = OP_REASON_UNKNOWN_ORDER;
            else if (strcmp(o->account, acct) != 0)
                reason = OP_REASON_NOT_OWNER;
            else if (in->kind == OP_MSG_AMEND) {
                int64_t q = in->qty ? in->qty : o->qty, px = in->price ? in->price : o->price;
                if ((in->qty == 0 && in->price == 0) || q <= o->filled || q > 2147483647 ||
                    px < 1 || (q == o->qty && px == o->price))
                    reason = OP_REASON_BAD_AMEND;
            }
        } else {
            long c = in->order_id ? ref_find_closed(r, in->order_id) : -1;
            if (c < 0 || strcmp(r->closed[c].symbol, sym) != 0)
                reason = OP_REASON_UNKNOWN_ORDER;
            else if (strcmp(r->closed[c].account, acct) != 0)
                reason = OP_REASON_NOT_OWNER;
            else
                reason = OP_REASON_ORDER_CLOSED;
        }
        if (reason) {
            ref_reject_req(r, in, sym, acct, reason, out, &n);
            return n;
        }
        struct ref_order *o = &r->open[i];
        if (in->kind == OP_MSG_CANCEL) {
            struct op_report *p = ref_rep(r, out, &n, OP_REPORT_CANCELLED, OP_MSG_CANCEL, r->now);
            ref_desc(p, o);
            p->status = OP_STATUS_CANCELLED;
            p->reason = OP_REASON_USER_CANCEL;
            ref_close(r, o);
            ref_remove(r, i);
        } else if ((in->price == 0 || in->price == o->price) && in->qty < o->qty) {
            o->qty = in->qty;
            struct op_report *p = ref_rep(r, out, &n, OP_REPORT_AMENDED, OP_MSG_AMEND, r->now);
            ref_desc(p, o);
        } else { /* replace: out of the book, back in as a taker, last in time */
            struct ref_order t = *o;
            ref_remove(r, i);
            if (in->qty)
                t.qty = in->qty;
            if (in->price)
                t.price = in->price;
            t.time = ++r->time;
            ref_desc(ref_rep(r, out, &n, OP_REPORT_REPLACED, OP_MSG_AMEND, r->now), &t);
            ref_take(r, &t, OP_MSG_AMEND, out, &n, max);
        }
        return n;
    }

    bad |= ref_field(clo, in->client_order_id, sizeof(clo));
    int reason = 0;
    if (bad || in->order_id == 0 || in->order_id > (uint64_t)INT64_MAX)
        reason = OP_REASON_MALFORMED;
    else if (in->ts_ns == 0)
        reason = OP_REASON_BAD_TIME;
    else if (sym[0] == '\0')
        reason = OP_REASON_UNKNOWN_SYMBOL;
    else if (acct[0] == '\0')
        reason = OP_REASON_BAD_ACCOUNT;
    else if (in->side != 1 && in->side != 2)
        reason = OP_REASON_BAD_SIDE;
    else if (in->type != 1 && in->type != 2)
        reason = OP_REASON_BAD_TYPE;
    else if (in->tif < 1 || in->tif > 3)
        reason = OP_REASON_BAD_TIF;
    else if (in->qty < 1 || in->qty > 2147483647)
        reason = OP_REASON_BAD_QTY;
    else if ((in->type == OP_TYPE_LIMIT && in->price < 1) ||
             (in->type == OP_TYPE_MARKET && in->price != 0))
        reason = OP_REASON_BAD_PRICE;
    else if (in->post_only && (in->type == OP_TYPE_MARKET || in->tif != OP_TIF_GTC))
        reason = OP_REASON_BAD_POST_ONLY;
    else if (clo[0] != '\0' && !ref_clordid_ok(clo))
        reason = OP_REASON_BAD_CLIENT_ID;
    else if (in->stp > OP_STP_MAX)
        reason = OP_REASON_BAD_STP;
    else if (ref_find_open(r, in->order_id) >= 0 || ref_find_closed(r, in->order_id) >= 0)
        reason = OP_REASON_DUPLICATE_ID;
    else if (r->max_open) {
        size_t mine = 0;
        for (size_t i = 0; i < r->nopen; i++)
            mine += strcmp(r->open[i].symbol, sym) == 0 && strcmp(r->open[i].account, acct) == 0;
        if (mine >= r->max_open)
            reason = OP_REASON_TOO_MANY_OPEN_ORDERS;
    }
    if (reason) {
        struct op_report *p = ref_rep(r, out, &n, OP_REPORT_REJECTED, OP_MSG_NEW, r->now);
        p->reason = (uint8_t)reason;
        p->status = OP_STATUS_REJECTED;
        p->side = in->side;
        p->type = in->type;
        p->tif = in->tif;
        p->post_only = in->post_only;
        p->order_id = in->order_id;
        p->price = in->price;
        p->qty = in->qty;
        memcpy(p->symbol, sym, OP_SYMBOL_MAX);
        memcpy(p->account, acct, OP_ACCOUNT_MAX);
        memcpy(p->client_order_id, clo, OP_CLORDID_MAX);
        return n;
    }
    struct ref_order t;
    memset(&t, 0, sizeof(t));
    t.id = in->order_id;
    t.time = ++r->time;
    t.price = in->price;
    t.qty = in->qty;
    t.side = in->side;
    t.type = in->type;
    t.tif = in->tif;
    if (t.type == OP_TYPE_MARKET && t.tif == OP_TIF_GTC)
        t.tif = OP_TIF_IOC;
    t.post_only = in->post_only;
    t.stp = in->stp;
    memcpy(t.symbol, sym, sizeof(sym));
    memcpy(t.account, acct, sizeof(acct));
    memcpy(t.clordid, clo, sizeof(clo));
    ref_book(r, sym, 1);
    ref_desc(ref_rep(r, out, &n, OP_REPORT_ACCEPTED, OP_MSG_NEW, r->now), &t);
    ref_take(r, &t, OP_MSG_NEW, out, &n, max);
    return n;
}

/* One aggregated level, as eng_depth gives it. */
struct ref_level {
    int64_t price, qty;
    uint32_t count;
};

/* Aggregates the levels of symbol/side, best first, up to max; returns how many. */
static inline size_t ref_depth(const struct ref *r, const char *symbol, int side,
                               struct ref_level *out, size_t max)
{
    size_t n = 0;
    int64_t last = 0;
    int have_last = 0;
    while (n < max) {
        /* the best price strictly worse than last */
        int found = 0;
        int64_t px = 0;
        for (size_t i = 0; i < r->nopen; i++) {
            const struct ref_order *o = &r->open[i];
            if (o->side != side || strcmp(o->symbol, symbol) != 0)
                continue;
            if (have_last && (side == OP_SIDE_BUY ? o->price >= last : o->price <= last))
                continue;
            if (!found || (side == OP_SIDE_BUY ? o->price > px : o->price < px))
                px = o->price;
            found = 1;
        }
        if (!found)
            break;
        out[n].price = px;
        out[n].qty = 0;
        out[n].count = 0;
        for (size_t i = 0; i < r->nopen; i++) {
            const struct ref_order *o = &r->open[i];
            if (o->side == side && o->price == px && strcmp(o->symbol, symbol) == 0) {
                out[n].qty += o->qty - o->filled;
                out[n].count++;
            }
        }
        n++;
        last = px;
        have_last = 1;
    }
    return n;
}

/* --- random input generator ----------------------------------------------- */

/* xorshift64*: deterministic, seedable, good enough for test inputs. */
static inline uint64_t gen_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * UINT64_C(2685821657736338717);
}

static inline uint64_t gen_below(uint64_t *s, uint64_t n)
{
    return gen_rand(s) % n;
}

#define GEN_SYMBOLS 4
#define GEN_ACCOUNTS 4
#define GEN_RECENT 4096
/* Open orders the generator steers towards (when given the reference). */
#define GEN_OPEN_TARGET 400

struct gen {
    uint64_t rng;
    uint64_t next_id;
    uint64_t ts;
    int64_t mid[GEN_SYMBOLS];
    uint64_t recent[GEN_RECENT]; /* ids issued lately */
    size_t nrecent;
    int features; /* 1: also issue 14's inputs (stp, replace, cancel-all); 2: and issue 15's
                     (GTD, stops, ticks, dead-man switches: the reference does not model
                     them, so only engine-against-engine tests use 2); 0: the mix before */
};

static const char *const gen_symbols[GEN_SYMBOLS] = {"AAPL", "MSFT", "GOOG", "TSLA"};
static const char *const gen_accounts[GEN_ACCOUNTS] = {"alice", "bob", "carol", "dave"};

static inline void gen_init(struct gen *g, uint64_t seed)
{
    memset(g, 0, sizeof(*g));
    g->rng = seed * 2 + 1;
    g->next_id = 1;
    g->ts = 1700000000000000000ull;
    for (int i = 0; i < GEN_SYMBOLS; i++)
        g->mid[i] = 1000 + 100 * i;
}

/*
 * Writes a random input into in. The mix: 55% NEW (GTC 55%, IOC 12%, FOK 10%,
 * market 10%, post-only 13%), 25% CANCEL, 15% AMEND, 5% invalid inputs of
 * every kind. Cancels and amends target an open order of r (when r is not
 * NULL) half the time, else a recent id (open, closed or forgotten), an
 * unknown id, another account or another symbol. Above GEN_OPEN_TARGET open
 * orders in r, a third of the inputs are owner cancels of random open orders.
 * With g->features set (issue 14), also: 40% of new orders carry an stp
 * mode, amends of open orders change the price or raise the quantity a
 * third of the time each (replace), and 1% of inputs are cancel-alls of one
 * symbol or every symbol; with it clear, the inputs are the same as before.
 */
static inline void gen_next(struct gen *g, const struct ref *r, struct op_order_msg *in)
{
    memset(in, 0, sizeof(*in));
    g->ts += 1 + gen_below(&g->rng, 1000);
    in->ts_ns = g->ts;
    if (gen_below(&g->rng, 40) == 0) /* stamped earlier than the last input: engine time holds */
        in->ts_ns -= gen_below(&g->rng, 5000);
    int si = (int)gen_below(&g->rng, GEN_SYMBOLS);
    if (gen_below(&g->rng, 50) == 0)
        g->mid[si] += gen_below(&g->rng, 2) ? 3 : -3;
    if (g->mid[si] < 50)
        g->mid[si] = 50;
    snprintf(in->symbol, sizeof(in->symbol), "%s", gen_symbols[si]);
    if (gen_below(&g->rng, 100) == 0) /* a long tail of quiet symbols: many books */
        snprintf(in->symbol, sizeof(in->symbol), "Z%02d", (int)gen_below(&g->rng, 64));
    snprintf(in->account, sizeof(in->account), "%s",
             gen_accounts[gen_below(&g->rng, GEN_ACCOUNTS)]);
    if (g->features >= 2 && gen_below(&g->rng, 50) == 0) {
        memset(in->symbol, 0, sizeof(in->symbol));
        if (gen_below(&g->rng, 3) == 0) { /* arm (1-5 ms) or disarm a dead-man switch */
            in->kind = OP_MSG_CANCEL_ALL_AFTER;
            in->timeout_ms = (uint32_t)gen_below(&g->rng, 6);
        } else {
            in->kind = OP_MSG_TICK;
            memset(in->account, 0, sizeof(in->account));
        }
        return;
    }
    if (g->features && gen_below(&g->rng, 100) == 0) {
        in->kind = OP_MSG_CANCEL_ALL;
        if (gen_below(&g->rng, 3) == 0)
            memset(in->symbol, 0, sizeof(in->symbol));
        if (gen_below(&g->rng, 50) == 0)
            in->account[0] = '\0';
        return;
    }
    uint64_t dice = gen_below(&g->rng, 100);
    if (r != NULL && r->nopen > GEN_OPEN_TARGET && gen_below(&g->rng, 3) == 0) {
        /* keep the book near GEN_OPEN_TARGET orders: the owner cancels one */
        const struct ref_order *o = &r->open[gen_below(&g->rng, r->nopen)];
        in->kind = OP_MSG_CANCEL;
        in->order_id = o->id;
        snprintf(in->symbol, sizeof(in->symbol), "%s", o->symbol);
        snprintf(in->account, sizeof(in->account), "%s", o->account);
        return;
    }
    if (dice < 60) {
        in->kind = OP_MSG_NEW;
        in->order_id = g->next_id++;
        g->recent[g->nrecent++ % GEN_RECENT] = in->order_id;
        in->side = gen_below(&g->rng, 2) ? OP_SIDE_BUY : OP_SIDE_SELL;
        in->type = OP_TYPE_LIMIT;
        in->tif = OP_TIF_GTC;
        /* 40% passive, spread over 60 ticks behind the touch (a deep book:
         * binary search and memmove in the level arrays); the rest near it. */
        int64_t off = gen_below(&g->rng, 10) < 4 ? 3 + (int64_t)gen_below(&g->rng, 60)
                                                 : (int64_t)gen_below(&g->rng, 21) - 10;
        in->price = g->mid[si] + (in->side == OP_SIDE_BUY ? -off : off) - 2;
        in->qty = 1 + (int64_t)gen_below(&g->rng, gen_below(&g->rng, 4) ? 20 : 300);
        if (gen_below(&g->rng, 3) == 0)
            snprintf(in->client_order_id, sizeof(in->client_order_id), "c-%llu",
                     (unsigned long long)in->order_id);
        uint64_t t = gen_below(&g->rng, 100);
        if (t < 12) {
            in->tif = OP_TIF_IOC;
        } else if (t < 22) {
            in->tif = OP_TIF_FOK;
        } else if (t < 32) {
            in->type = OP_TYPE_MARKET;
            in->price = 0;
            in->tif = gen_below(&g->rng, 4) == 0 ? OP_TIF_FOK : OP_TIF_IOC;
            if (gen_below(&g->rng, 3) == 0)
                in->tif = OP_TIF_GTC;
        } else if (t < 45) {
            in->post_only = true;
        }
        if (g->features && gen_below(&g->rng, 10) < 4)
            in->stp = (uint8_t)(1 + gen_below(&g->rng, OP_STP_MAX));
        if (g->features >= 2 && in->type == OP_TYPE_LIMIT && !in->post_only &&
            gen_below(&g->rng, 10) == 0) { /* a stop: market or limit, near the mid */
            in->stop_price = g->mid[si] + (int64_t)gen_below(&g->rng, 21) - 10;
            if (gen_below(&g->rng, 2)) {
                in->type = OP_TYPE_STOP_MARKET;
                in->price = 0;
                in->tif = OP_TIF_IOC;
            } else {
                in->type = OP_TYPE_STOP_LIMIT;
            }
        }
        if (g->features >= 2 && in->type != OP_TYPE_STOP_MARKET && in->tif == OP_TIF_GTC &&
            gen_below(&g->rng, 8) == 0) { /* GTD, expiring within ~0-400 inputs */
            in->tif = OP_TIF_GTD;
            in->expire_ns = in->ts_ns + gen_below(&g->rng, 200000);
        }
        if (g->features && dice >= 55 && gen_below(&g->rng, 16) == 0) {
            in->stp = (uint8_t)(OP_STP_MAX + 1 + gen_below(&g->rng, 200));
            return;
        }
        if (dice >= 55) { /* invalid in one way */
            switch (gen_below(&g->rng, 15)) {
            case 0:
                in->side = (uint8_t)gen_below(&g->rng, 4) * 3;
                break;
            case 1:
                in->type = 0;
                break;
            case 2:
                in->tif = 7;
                break;
            case 3:
                in->qty = -(int64_t)gen_below(&g->rng, 3);
                break;
            case 4:
                in->price = in->type == OP_TYPE_LIMIT ? 0 : 5;
                break;
            case 5:
                in->post_only = true;
                in->tif = OP_TIF_IOC;
                break;
            case 6:
                in->order_id = g->recent[gen_below(&g->rng, GEN_RECENT)];
                break;
            case 7:
                memset(in->symbol, 'X', sizeof(in->symbol));
                break;
            case 8:
                in->symbol[0] = '\0';
                break;
            case 9:
                in->order_id = 0;
                break;
            case 10:
                memset(in->account, 'a', sizeof(in->account));
                break;
            case 11:
                in->account[0] = '\0';
                break;
            case 12:
                snprintf(in->client_order_id, sizeof(in->client_order_id), "%s",
                         gen_below(&g->rng, 2) ? "has space" : "semi;colon");
                break;
            case 13:
                in->ts_ns = 0;
                break;
            default:
                in->qty = (int64_t)1 << 40;
                break;
            }
        }
        return;
    }
    in->kind = dice < 85   ? OP_MSG_CANCEL
               : dice < 99 ? OP_MSG_AMEND
                           : (uint8_t)(OP_MSG_KIND_MAX + 1 + dice % 3);
    uint64_t pick = gen_below(&g->rng, 100);
    int64_t cur_qty = 1 + (int64_t)gen_below(&g->rng, 300);
    if (r != NULL && r->nopen > 0 && pick < 50) {
        const struct ref_order *o = &r->open[gen_below(&g->rng, r->nopen)];
        in->order_id = o->id;
        snprintf(in->symbol, sizeof(in->symbol), "%s", o->symbol);
        if (gen_below(&g->rng, 10) != 0)
            snprintf(in->account, sizeof(in->account), "%s", o->account);
        else if (gen_below(&g->rng, 2))
            snprintf(in->symbol, sizeof(in->symbol), "%s",
                     gen_symbols[gen_below(&g->rng, GEN_SYMBOLS)]);
        if (in->kind == OP_MSG_AMEND && gen_below(&g->rng, 4) != 0)
            in->qty = o->filled + 1 + (int64_t)gen_below(&g->rng, (uint64_t)(o->qty - o->filled));
        else
            in->qty = (int64_t)gen_below(&g->rng, (uint64_t)o->qty + 2);
        if (in->kind == OP_MSG_AMEND && g->features) {
            uint64_t how = gen_below(&g->rng, 6);
            if (how < 2) /* a new price, maybe crossing, maybe the same */
                in->price = o->price + (int64_t)gen_below(&g->rng, 13) - 6;
            if (how == 0 || how == 2) /* more quantity, or none given */
                in->qty = how == 0 ? 0 : o->qty + 1 + (int64_t)gen_below(&g->rng, 50);
            if (how == 3 && gen_below(&g->rng, 8) == 0)
                in->price = -(int64_t)gen_below(&g->rng, 3);
        }
        return;
    }
    if (pick < 90 && g->nrecent > 0) {
        size_t k = g->nrecent < GEN_RECENT ? g->nrecent : GEN_RECENT;
        in->order_id = g->recent[gen_below(&g->rng, k)];
    } else {
        in->order_id = gen_below(&g->rng, 3) ? g->next_id + gen_below(&g->rng, 100) : 0;
    }
    in->qty = (int64_t)gen_below(&g->rng, (uint64_t)cur_qty + 2);
    if (pick == 99)
        memset(in->account, 'z', sizeof(in->account));
    else if (pick == 98)
        in->account[0] = '\0';
    else if (pick == 97)
        in->ts_ns = 0;
}

#endif

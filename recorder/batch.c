/* A batch of fills entries: decoded reports, poison detection, and the binary COPY rows to write
 * them. */
#include "recorder/batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recorder/copybin.h"
#include "shared/alloc.h"

/* Why 64: most entries hold 1-3 reports; the arrays grow by doubling. */
#define INITIAL_CAP 64

int rec_batch_init(struct rec_batch *b, const struct op_symtab *syms)
{
    memset(b, 0, sizeof(*b));
    b->syms = syms;
    op_buf_init(&b->raw);
    b->codec = op_codec_new();
    return b->codec ? 0 : -1;
}

void rec_batch_release(struct rec_batch *b)
{
    op_codec_free(b->codec);
    op_free(b->entries);
    op_free(b->reports);
    op_free(b->rep_entry);
    op_free(b->rep_skip);
    op_free(b->bad);
    op_free(b->orders);
    op_free(b->slots);
    op_free(b->trades);
    op_buf_release(&b->raw);
    memset(b, 0, sizeof(*b));
}

void rec_batch_reset(struct rec_batch *b)
{
    b->nentries = 0;
    b->nreports = 0;
    b->nbad = 0;
    b->rows = 0;
    b->npoison = 0;
    b->first_ms = 0;
    b->ignored_rejects = 0;
    op_buf_reset(&b->raw);
}

/* Grows *arr (of elem-byte items, capacity *cap) to hold at least need items.
 * Returns 0, or -1 (unchanged) out of memory. */
static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : INITIAL_CAP;
    while (n < need)
        n *= 2;
    void *p = op_realloc(*arr, n * elem);
    if (!p)
        return -1;
    *arr = p;
    *cap = n;
    return 0;
}

/* What a report writes: 0 nothing (an ignored reject, the end of a
 * cancel-all, a dead-man ack, a tick), 1 order state, 2 trade, -1 unknown
 * kind. */
static int report_effect(const struct op_report *r)
{
    switch (r->kind) {
    case OP_REPORT_TRADE:
        return 2;
    case OP_REPORT_ACCEPTED:
    case OP_REPORT_CANCELLED: /* any req_kind: a cancel-all's too (rk 4) */
    case OP_REPORT_AMENDED:   /* a qty reduction, or a self-trade decrement */
    case OP_REPORT_REPLACED:  /* new price and qty: the state carries both */
    case OP_REPORT_TRIGGERED: /* a stop enters: PENDING_TRIGGER becomes NEW */
        return 1;
    case OP_REPORT_CANCEL_ALL_DONE:
        /* Concerns no order (id 0): its CANCELLED reports before it wrote
         * every change (a fired dead-man switch's too, rsn DEAD_MAN). Valid,
         * so not a dead letter. */
    case OP_REPORT_DEAD_MAN: /* an arm/disarm ack: id 0, qty the timeout */
    case OP_REPORT_TICK:     /* engine time moved; its expiries come before it */
        return 0;
    case OP_REPORT_REJECTED:
        /* A rejected cancel/amend/cancel-all leaves its target unchanged; a
         * new order rejected as a duplicate id is not the order that owns
         * the id; an id outside the table's range can have no row. */
        return (r->req_kind == OP_MSG_NEW && r->reason != OP_REASON_DUPLICATE_ID &&
                r->order_id >= 1 && r->order_id <= (uint64_t)INT64_MAX)
                   ? 1
                   : 0;
    default:
        return -1;
    }
}

/* 1 when every id report r writes (report_id: fill_id or version; order_id;
 * a trade's maker_order_id) fits a bigint column, else 0. eff is
 * report_effect(r). */
static int ids_fit_bigint(const struct op_report *r, int eff)
{
    return r->report_id <= (uint64_t)INT64_MAX && r->order_id <= (uint64_t)INT64_MAX &&
           (eff != 2 || r->maker_order_id <= (uint64_t)INT64_MAX);
}

/* Fills why with the refusal of a report (other than REJECTED) whose side,
 * type, tif or status, or maker status of a TRADE, is outside its enum: the
 * orders row would hold "?" there. These were the IN lists of the table's
 * CHECKs until migration 006; the message names the constraint each one
 * replaces. Leaves why empty when every value is known. */
static void enum_refusal(const struct op_report *r, char *why, size_t n)
{
    static const char unknown[] = "?";
    if (strcmp(op_side_name(r->side), unknown) == 0)
        snprintf(why, n, "side %d is not buy or sell (orders_side_check)", r->side);
    else if (strcmp(op_type_name(r->type), unknown) == 0)
        snprintf(why, n, "type %d is not an order type (orders_type_check)", r->type);
    else if (strcmp(op_tif_name(r->tif), unknown) == 0)
        snprintf(why, n, "tif %d is not a time in force (orders_tif_check)", r->tif);
    else if (strcmp(op_status_name(r->status), unknown) == 0)
        snprintf(why, n, "status %d is not an order status (orders_status_check)", r->status);
    else if (r->kind == OP_REPORT_TRADE && strcmp(op_status_name(r->maker_status), unknown) == 0)
        snprintf(why, n, "maker status %d is not an order status (orders_status_check)",
                 r->maker_status);
}

/* Copies why into err[REC_ERR_MAX] as printable ASCII (others become '?'). */
static void set_err(char *err, const char *why)
{
    snprintf(err, REC_ERR_MAX, "%s", why);
    for (char *p = err; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = '?';
}

/* Marks entry e poison with a printable-ASCII copy of why. */
static void set_poison(struct rec_batch *b, struct rec_entry *e, const char *why)
{
    set_err(e->err, why);
    b->nreports = e->first; /* its reports, if any were decoded, are dropped */
    e->n = 0;
    b->npoison++;
}

int rec_batch_add(struct rec_batch *b, uint32_t shard, const char *id, size_t idlen, const void *m,
                  size_t mlen)
{
    size_t cap = b->cap_reports;
    if (grow((void **)&b->entries, &b->cap_entries, b->nentries + 1, sizeof(*b->entries)) != 0 ||
        grow((void **)&b->reports, &cap, b->nreports + OP_CODEC_REPORTS_MAX, sizeof(*b->reports)) !=
            0)
        return -1;
    if (cap != b->cap_reports) { /* the per-report arrays follow reports' capacity */
        uint32_t *ent = op_realloc(b->rep_entry, cap * sizeof(*ent));
        if (ent)
            b->rep_entry = ent;
        uint8_t *skip = ent ? op_realloc(b->rep_skip, cap) : NULL;
        if (!skip)
            return -1; /* cap_reports unchanged: the next call grows again */
        b->rep_skip = skip;
        b->cap_reports = cap;
    }
    size_t raw_off = b->raw.len;
    if (m && op_buf_append(&b->raw, m, mlen) != 0)
        return -1;
    struct rec_entry *e = &b->entries[b->nentries++];
    e->shard = shard;
    if (idlen >= sizeof(e->id))
        idlen = sizeof(e->id) - 1;
    memcpy(e->id, id, idlen);
    e->id[idlen] = '\0';
    e->raw_off = raw_off;
    e->raw_len = m ? mlen : 0;
    e->has_raw = m != NULL;
    e->first = b->nreports;
    e->n = 0;
    e->err[0] = '\0';
    if (!m) {
        set_poison(b, e, "entry has no 'm' field");
        return 0;
    }
    size_t n = 0;
    if (op_codec_decode_reports(b->codec, m, mlen, b->reports + b->nreports, OP_CODEC_REPORTS_MAX,
                                &n) != 0) {
        char why[REC_ERR_MAX];
        snprintf(why, sizeof(why), "cannot decode reports: %s", op_codec_error(b->codec));
        set_poison(b, e, why);
        return 0;
    }
    size_t rows = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = b->nreports + i;
        const struct op_report *r = &b->reports[k];
        b->rep_entry[k] = (uint32_t)(b->nentries - 1);
        b->rep_skip[k] = 0;
        int eff = report_effect(r);
        char why[REC_ERR_MAX] = "";
        if (eff < 0) {
            snprintf(why, sizeof(why), "unknown report kind %u", r->kind);
        } else if (eff > 0 && r->kind != OP_REPORT_REJECTED) {
            /* A REJECTED row is recordable whatever it holds (put_order
             * writes NULL for what the table cannot take). */
            if (!op_symtab_find(b->syms, r->symbol, strlen(r->symbol)))
                snprintf(why, sizeof(why), "unknown symbol '%s' (not in SYMBOLS_FILE)", r->symbol);
            else if (r->client_order_id[0] && !op_client_order_id_valid(r->client_order_id))
                /* the grammar is checked here, not by a regex CHECK in every
                 * insert (migration 005) */
                snprintf(why, sizeof(why), "client_order_id breaks its grammar");
            else
                enum_refusal(r, why, sizeof(why));
        }
        if (!why[0] && eff > 0 && !ids_fit_bigint(r, eff))
            /* the binary COPY writes the 8 bytes as they are: the server
             * could not refuse a wrapped id, so it is refused here (the text
             * format had the server say "out of range for type bigint") */
            snprintf(why, sizeof(why),
                     "an id of the report is above 2^63-1 (out of range for bigint)");
        if (why[0]) {
            if (grow((void **)&b->bad, &b->cap_bad, b->nbad + 1, sizeof(*b->bad)) != 0)
                return -1;
            struct rec_bad_report *x = &b->bad[b->nbad++];
            x->report = k;
            set_err(x->err, why);
            b->rep_skip[k] = 1;
            b->npoison++;
            continue;
        }
        if (eff == 0) {
            if (r->kind == OP_REPORT_REJECTED)
                b->ignored_rejects++;
            continue;
        }
        rows++;
    }
    e->n = n;
    b->nreports += n;
    b->rows += rows ? rows : 1; /* an entry of ignored reports still costs a little */
    return 0;
}

int rec_batch_add_poison(struct rec_batch *b, uint32_t shard, const char *id, size_t idlen,
                         const char *why)
{
    if (rec_batch_add(b, shard, id, idlen, NULL, 0) != 0)
        return -1;
    struct rec_entry *e = &b->entries[b->nentries - 1];
    snprintf(e->err, sizeof(e->err), "%s", why);
    return 0;
}

/* ---- binary COPY fields (recorder/copybin.h) ------------------------------- */

/* A bigint column from an id kept as uint64_t: rec_batch_add set aside every
 * report with an id above INT64_MAX, so the cast is exact. */
static void put_id(struct op_buf *o, uint64_t v)
{
    rec_copybin_int8(o, (int64_t)v);
}

static void put_text(struct op_buf *o, const char *s)
{
    rec_copybin_text(o, s, strlen(s));
}

/* Appends ticks of symbol sym as a numeric; -1 (nothing appended) if the
 * symbol is unknown: rec_batch_add set such reports aside, but for REJECTED
 * ones, whose price is then NULL. */
static int put_price(const struct rec_batch *b, struct op_buf *o, const char *sym, int64_t ticks)
{
    const struct op_symbol *s = op_symtab_find(b->syms, sym, strlen(sym));
    if (!s)
        return -1;
    rec_copybin_numeric(o, ticks, s->tick);
    return 0;
}

/* Per-row worst case: every field's length word and fixed-size value, two
 * numerics, and the strings, bounded by msg.h's sizes (symbol, two
 * accounts, client_order_id, enum names). */
#define ROW_RESERVE 1024

/* ---- the merge table ------------------------------------------------------ */

static uint32_t hash_id(uint64_t id)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdULL;
    id ^= id >> 33;
    return (uint32_t)id;
}

/* Sizes the table for up to max orders (load <= 1/2) and empties it. */
static int merge_reset(struct rec_batch *b, size_t max)
{
    size_t want = 64;
    while (want < max * 2)
        want *= 2;
    if (want > b->nslots) {
        uint32_t *s = op_realloc(b->slots, want * sizeof(*s));
        if (!s)
            return -1;
        b->slots = s;
        b->nslots = want;
    }
    memset(b->slots, 0, b->nslots * sizeof(*b->slots));
    if (grow((void **)&b->orders, &b->cap_orders, max, sizeof(*b->orders)) != 0)
        return -1;
    b->norders = 0;
    return 0;
}

/* Folds one report's view of order_id into its merged row: the state if its
 * version (report_id) is the highest so far, the description if the row has
 * none yet, created_at from an ACCEPTED/REJECTED report. */
static void merge(struct rec_batch *b, uint64_t order_id, const struct op_report *r, int maker)
{
    size_t mask = b->nslots - 1;
    size_t i = hash_id(order_id) & mask;
    struct rec_order_row *row;
    for (;;) {
        uint32_t s = b->slots[i];
        if (s == 0) {
            row = &b->orders[b->norders];
            b->slots[i] = (uint32_t)++b->norders;
            memset(row, 0, sizeof(*row));
            row->order_id = order_id;
            break;
        }
        if (b->orders[s - 1].order_id == order_id) {
            row = &b->orders[s - 1];
            break;
        }
        i = (i + 1) & mask;
    }
    if (!maker && !row->desc)
        row->desc = r;
    if (!maker && !row->created_ns &&
        (r->kind == OP_REPORT_ACCEPTED || r->kind == OP_REPORT_REJECTED))
        row->created_ns = r->ts_ns;
    if (!row->state || r->report_id > row->state->report_id) {
        row->state = r;
        row->state_is_maker = maker;
    }
}

/* Appends one fills row for trade r (REC_FILLS_NCOLS fields). Returns 0, or
 * -1 (price not writable). */
static int put_fill(struct rec_batch *b, struct op_buf *o, const struct op_report *r)
{
    rec_copybin_tuple(o, REC_FILLS_NCOLS);
    put_id(o, r->report_id);
    put_text(o, r->symbol);
    if (put_price(b, o, r->symbol, r->trade_price) != 0)
        return -1;
    rec_copybin_int8(o, r->trade_qty);
    put_id(o, r->maker_order_id);
    put_id(o, r->order_id);
    put_text(o, r->maker_account);
    put_text(o, r->account);
    put_text(o, op_side_name(r->side));
    rec_copybin_timestamptz(o, r->ts_ns);
    return 0;
}

/* An enum's name; with null_unknown, NULL instead of "?" (a value outside
 * the enum, which a rejected order may carry). */
static void put_enum(struct op_buf *o, const char *name, int null_unknown)
{
    if (null_unknown && strcmp(name, "?") == 0)
        rec_copybin_null(o);
    else
        put_text(o, name);
}

/* Appends one orders row for merged row w (REC_ORDERS_NCOLS fields). Returns 0. */
static int put_order(struct rec_batch *b, struct op_buf *o, const struct rec_order_row *w)
{
    const struct op_report *s = w->state, *d = w->desc;
    int64_t qty, filled, price;
    int status;
    const char *reason = NULL;
    /* The price is state, like qty (a REPLACED report changes it): that of
     * the report of the highest version, which every report has — a maker's
     * TRADE trades at the maker's price. */
    if (w->state_is_maker) {
        qty = s->maker_qty, filled = s->maker_filled_qty, status = s->maker_status;
        price = s->trade_price;
    } else {
        qty = s->qty, filled = s->filled_qty, status = s->status;
        price = s->price;
        if ((s->kind == OP_REPORT_CANCELLED || s->kind == OP_REPORT_REJECTED) && s->reason)
            reason = op_reason_name(s->reason);
    }
    /* A rejected order may carry values the table cannot hold (whatever a
     * writer put into orders:{S}): those are NULL. Any other report with
     * such a value is refused by a CHECK and dead-lettered alone. */
    int rejected = status == OP_STATUS_REJECTED;
    rec_copybin_tuple(o, REC_ORDERS_NCOLS);
    put_id(o, w->order_id);
    if (d && d->client_order_id[0] && (!rejected || op_client_order_id_valid(d->client_order_id)))
        put_text(o, d->client_order_id);
    else
        rec_copybin_null(o);
    put_text(o, w->state_is_maker ? s->maker_account : s->account);
    put_text(o, s->symbol);
    if (d) {
        put_enum(o, op_side_name(d->side), rejected);
        put_enum(o, op_type_name(d->type), rejected);
        put_enum(o, op_tif_name(d->tif), rejected);
        rec_copybin_bool(o, d->post_only);
    } else {
        for (int i = 0; i < 4; i++) /* side, type, tif, post_only */
            rec_copybin_null(o);
    }
    /* 0: market order (and a refused price): NULL; so is the price of a
     * rejected order of an unlisted symbol (no tick to read it with). */
    if (price <= 0 || put_price(b, o, s->symbol, price) != 0)
        rec_copybin_null(o);
    if (qty >= 1 || !rejected)
        rec_copybin_int8(o, qty);
    else
        rec_copybin_null(o); /* a rejected order without a valid quantity (migration 004) */
    rec_copybin_int8(o, filled);
    put_text(o, op_status_name(status));
    if (reason)
        put_text(o, reason);
    else
        rec_copybin_null(o);
    if (w->created_ns)
        rec_copybin_timestamptz(o, w->created_ns);
    else
        rec_copybin_null(o);
    rec_copybin_timestamptz(o, s->ts_ns);
    put_id(o, s->report_id);
    return 0;
}

/* Orders rows in order_id order: two recorders upserting overlapping orders
 * then take row locks in the same order and cannot deadlock. */
static int cmp_rows(const void *x, const void *y)
{
    const struct rec_order_row *a = x, *c = y;
    return a->order_id < c->order_id ? -1 : a->order_id > c->order_id;
}

/* Trades in fill_id (report_id) order, for the same reason. */
static int cmp_trades(const void *x, const void *y)
{
    const struct rec_trade_ref *a = x, *c = y;
    return a->fill_id < c->fill_id ? -1 : a->fill_id > c->fill_id;
}

void rec_copy_init(struct rec_copy *c)
{
    memset(c, 0, sizeof(*c));
    op_buf_init(&c->fills);
    op_buf_init(&c->new_orders);
    op_buf_init(&c->upd_orders);
}

void rec_copy_release(struct rec_copy *c)
{
    op_buf_release(&c->fills);
    op_buf_release(&c->new_orders);
    op_buf_release(&c->upd_orders);
}

int rec_batch_build(struct rec_batch *b, size_t lo, size_t hi, struct rec_copy *out)
{
    op_buf_reset(&out->fills);
    op_buf_reset(&out->new_orders);
    op_buf_reset(&out->upd_orders);
    out->nfills = out->nnew = out->nupd = 0;
    size_t nrep = hi - lo, ntrades = 0;
    if (merge_reset(b, nrep * 2 + 1) != 0 ||
        grow((void **)&b->trades, &b->cap_trades, nrep + 1, sizeof(*b->trades)) != 0)
        return -1;
    for (size_t k = lo; k < hi; k++) {
        const struct op_report *r = &b->reports[k];
        int eff = b->rep_skip[k] ? 0 : report_effect(r);
        if (eff <= 0)
            continue;
        merge(b, r->order_id, r, 0);
        if (eff == 2) {
            merge(b, r->maker_order_id, r, 1);
            b->trades[ntrades].fill_id = r->report_id;
            b->trades[ntrades++].rep = r;
        }
    }
    qsort(b->trades, ntrades, sizeof(*b->trades), cmp_trades);
    for (size_t i = 0; i < ntrades; i++) {
        /* A redelivered entry repeats a trade of another entry of the range
         * (same report_id, same content): one row is enough. */
        if (i > 0 && b->trades[i].fill_id == b->trades[i - 1].fill_id)
            continue;
        if (op_buf_reserve(&out->fills, ROW_RESERVE) != 0 ||
            put_fill(b, &out->fills, b->trades[i].rep) != 0)
            return -1;
        out->nfills++;
    }
    qsort(b->orders, b->norders, sizeof(*b->orders), cmp_rows);
    for (size_t i = 0; i < b->norders; i++) {
        const struct rec_order_row *w = &b->orders[i];
        /* created_ns: the order's ACCEPTED (or REJECTED new order) is in the
         * range, so its row was most likely never written before. */
        struct op_buf *o = w->created_ns ? &out->new_orders : &out->upd_orders;
        if (op_buf_reserve(o, ROW_RESERVE) != 0 || put_order(b, o, w) != 0)
            return -1;
        if (w->created_ns)
            out->nnew++;
        else
            out->nupd++;
    }
    return 0;
}

int rec_batch_report_raw(const struct rec_batch *b, size_t k, struct op_buf *out)
{
    return op_codec_encode_reports(out, &b->reports[k], 1);
}

/* Snapshot, restore and state hash of a whole engine, as msgpack (through shared/codec.h). */
#include "matcher/engine/engine.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/buf.h"
#include "shared/codec.h"

/*
 * Snapshot layout (msgpack), documented in docs/engine.md:
 *
 *   [ "orderpipe-engine", 4, hash:uint64, body:bin ]
 *
 *   body = [ shard, seq, closed_max, books, closed, now_ns, dead_man ]
 *     (version 1, still restored: without now_ns (then 0); versions 1-3
 *     without dead_man)
 *     books  = [ [ symbol, bids, asks, buy_stops, sell_stops ], … ]   book index order
 *              (versions 1-3: [ symbol, bids, asks ])
 *     bids, asks = [ order, … ]                     best price first, FIFO within a price
 *     buy_stops, sell_stops = [ order, … ]          pending stops in trigger order
 *     order  = [ id, price, qty, filled, type, tif, post_only, account, client_order_id,
 *                stp, stop_price, expire_ns ]
 *     (versions 1 and 2: orders without the last three, version 3 without the
 *     last two; absent means 0)
 *     dead_man = [ [ account, deadline ], … ]        armed switches, by account name
 *     closed = [ [ id, account, book_index ], … ]   oldest first
 *
 * hash = FNV-1a 64 over the body bytes. The body is canonical (one encoding
 * per state: msgpack-c always picks the shortest form, the order of every
 * array is defined by the state), so it is also eng_hash().
 */

#define SNAP_MAGIC "orderpipe-engine"
#define SNAP_VERSION 4

/* Appends order o in layout `version`. */
static int pack_order(const struct eng *e, const struct book_order *o, struct op_buf *out,
                      unsigned version)
{
    const char *acct = e->accounts[o->account];
    int rc = op_mp_put_array(out, version >= 4 ? 12 : version >= 3 ? 10 : 9);
    rc |= op_mp_put_uint(out, o->id);
    rc |= op_mp_put_int(out, o->price);
    rc |= op_mp_put_int(out, o->qty);
    rc |= op_mp_put_int(out, o->filled);
    rc |= op_mp_put_uint(out, o->type);
    rc |= op_mp_put_uint(out, o->tif);
    rc |= op_mp_put_bool(out, o->post_only != 0);
    rc |= op_mp_put_str(out, acct, strlen(acct));
    rc |= op_mp_put_str(out, o->client_order_id, strlen(o->client_order_id));
    if (version >= 3)
        rc |= op_mp_put_uint(out, o->stp);
    if (version >= 4) {
        rc |= op_mp_put_int(out, o->stop_price);
        rc |= op_mp_put_uint(out, o->expire_ns);
    }
    return rc;
}

/* The armed dead-man switches sorted by account name (canonical order). */
static int pack_dead_man(const struct eng *e, struct op_buf *out)
{
    uint32_t n = 0;
    for (uint32_t a = 0; a < e->naccounts; a++)
        n += e->dm_deadline[a] != 0;
    int rc = op_mp_put_array(out, n);
    const char *last = NULL;
    for (uint32_t k = 0; k < n && rc == 0; k++) { /* selection by name: few accounts */
        int64_t pick = -1;
        for (uint32_t a = 0; a < e->naccounts; a++) {
            if (e->dm_deadline[a] == 0 ||
                (last != NULL && memcmp(e->accounts[a], last, OP_ACCOUNT_MAX) <= 0))
                continue;
            if (pick < 0 || memcmp(e->accounts[a], e->accounts[pick], OP_ACCOUNT_MAX) < 0)
                pick = a;
        }
        last = e->accounts[pick];
        rc |= op_mp_put_array(out, 2);
        rc |= op_mp_put_str(out, last, strlen(last));
        rc |= op_mp_put_uint(out, e->dm_deadline[pick]);
    }
    return rc;
}

/* Appends e's canonical body of layout `version` (1 to 4) to out; returns 0
 * or -1 when memory is short. */
static int pack_body(const struct eng *e, struct op_buf *out, unsigned version)
{
    int rc = 0;
    rc |= op_mp_put_array(out, version >= 4 ? 7 : version >= 2 ? 6 : 5);
    rc |= op_mp_put_uint(out, e->shard);
    rc |= op_mp_put_uint(out, e->seq);
    rc |= op_mp_put_uint(out, e->closed_max);
    rc |= op_mp_put_array(out, e->nbooks);
    for (uint32_t i = 0; i < e->nbooks && rc == 0; i++) {
        const struct book *b = e->books[i];
        rc |= op_mp_put_array(out, version >= 4 ? 5 : 3);
        rc |= op_mp_put_str(out, b->symbol, strlen(b->symbol));
        for (int s = 0; s < 2; s++) {
            const struct book_side *sd = &b->side[s];
            uint32_t n = 0;
            for (uint32_t j = 0; j < sd->n; j++)
                n += sd->lv[j]->count;
            rc |= op_mp_put_array(out, n);
            for (uint32_t j = sd->n; j-- > 0;) {
                for (const struct book_order *o = sd->lv[j]->head; o != NULL; o = o->next)
                    rc |= pack_order(e, o, out, version);
            }
        }
        for (int s = 0; s < 2 && version >= 4; s++) {
            rc |= op_mp_put_array(out, b->stops[s].n);
            for (uint32_t j = 0; j < b->stops[s].n; j++)
                rc |= pack_order(e, b->stops[s].v[j], out, version);
        }
    }
    rc |= op_mp_put_array(out, e->closed_len);
    for (uint32_t k = 0; k < e->closed_len && rc == 0; k++) {
        const struct eng_closed *c = &e->ring[(e->closed_head + k) % e->closed_max];
        const char *acct = e->accounts[c->account];
        rc |= op_mp_put_array(out, 3);
        rc |= op_mp_put_uint(out, c->id);
        rc |= op_mp_put_str(out, acct, strlen(acct));
        rc |= op_mp_put_uint(out, c->book);
    }
    if (version >= 2)
        rc |= op_mp_put_uint(out, e->now_ns);
    if (version >= 4)
        rc |= pack_dead_man(e, out);
    return rc ? -1 : 0;
}

/* eng_hash of e in body layout `version`. */
static uint64_t hash_as(const struct eng *e, unsigned version)
{
    struct op_buf b;
    op_buf_init(&b);
    if (pack_body(e, &b, version) != 0)
        eng_oom("state hash");
    uint64_t h = eng_fnv1a64(b.data, b.len);
    op_buf_release(&b);
    return h;
}

uint64_t eng_hash(const struct eng *e)
{
    return hash_as(e, SNAP_VERSION);
}

int eng_snapshot(const struct eng *e, char **out, size_t *len)
{
    struct op_buf body, sb;
    op_buf_init(&body);
    op_buf_init(&sb);
    int rc = -1;
    if (pack_body(e, &body, SNAP_VERSION) != 0)
        goto out;
    int prc = op_mp_put_array(&sb, 4);
    prc |= op_mp_put_str(&sb, SNAP_MAGIC, strlen(SNAP_MAGIC));
    prc |= op_mp_put_uint(&sb, SNAP_VERSION);
    /* Always the 9-byte uint64 form, so the hash sits at a fixed offset. */
    unsigned char h[9] = {0xcf};
    uint64_t hv = eng_fnv1a64(body.data, body.len);
    for (int i = 0; i < 8; i++)
        h[1 + i] = (unsigned char)(hv >> (56 - 8 * i));
    prc |= op_buf_append(&sb, h, sizeof(h));
    prc |= op_mp_put_bin(&sb, body.data, body.len);
    if (prc != 0)
        goto out;
    *len = sb.len;
    *out = sb.data; /* allocated through shared/alloc.h's hooks: free()-compatible */
    op_buf_init(&sb);
    rc = 0;
out:
    op_buf_release(&body);
    op_buf_release(&sb);
    return rc;
}

/* --- restore ------------------------------------------------------------------ */

/* Restore context: the error message goes to err. */
struct rctx {
    char *err;
    size_t errlen;
};

/* Formats the error into c->err and returns -1. */
static int fail(struct rctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Reads the head of an array of exactly n elements; 0 or -1. */
static int get_arr(struct op_mp_reader *r, uint32_t n)
{
    uint32_t k;
    return op_mp_get_array(r, &k) == 0 && k == n ? 0 : -1;
}

/* Copies a string of 0 … size-1 bytes without NUL into dst, NUL-padded; 0 or -1. */
static int get_str(struct op_mp_reader *r, char *dst, size_t size)
{
    const char *s;
    size_t n;
    if (op_mp_get_str(r, &s, &n) != 0 || n >= size || memchr(s, '\0', n) != NULL)
        return -1;
    memset(dst, 0, size);
    memcpy(dst, s, n);
    return 0;
}

/* Reads one order array of layout version into a new pooled order of book
 * b on side s (not placed anywhere yet); NULL after fail() when malformed. */
static struct book_order *restore_order(struct eng *e, struct book *b, int s,
                                        struct op_mp_reader *r, unsigned version, struct rctx *c)
{
    uint64_t id, qty, filled, type, tif, stp = 0, stop = 0, expire = 0, price;
    bool post_only;
    char account[OP_ACCOUNT_MAX], clordid[OP_CLORDID_MAX];
    if (get_arr(r, version >= 4   ? 12
                   : version >= 3 ? 10
                                  : 9) ||
        op_mp_get_uint(r, INT64_MAX, &id) || id == 0 || op_mp_get_uint(r, INT64_MAX, &price) ||
        op_mp_get_uint(r, ENG_QTY_MAX, &qty) || qty < 1 || op_mp_get_uint(r, qty - 1, &filled) ||
        op_mp_get_uint(r, OP_TYPE_STOP_LIMIT, &type) || type < OP_TYPE_LIMIT ||
        op_mp_get_uint(r, OP_TIF_GTD, &tif) || tif < OP_TIF_GTC || op_mp_get_bool(r, &post_only) ||
        get_str(r, account, sizeof(account)) || get_str(r, clordid, sizeof(clordid)) ||
        (version >= 3 && op_mp_get_uint(r, OP_STP_MAX, &stp)) ||
        (version >= 4 &&
         (op_mp_get_uint(r, INT64_MAX, &stop) || op_mp_get_uint(r, UINT64_MAX, &expire)))) {
        fail(c, "book '%s': an order of side %d is malformed", b->symbol, s);
        return NULL;
    }
    if (eng_id_known(e, id)) {
        fail(c, "order id %llu appears twice", (unsigned long long)id);
        return NULL;
    }
    if ((tif == OP_TIF_GTD) != (expire != 0) || (type == OP_TYPE_LIMIT && stop != 0) ||
        (type != OP_TYPE_LIMIT && stop == 0) || (type == OP_TYPE_STOP_MARKET) != (price == 0) ||
        (type == OP_TYPE_MARKET)) {
        fail(c, "book '%s': order %llu has impossible fields", b->symbol, (unsigned long long)id);
        return NULL;
    }
    struct book_order *o = book_pool_get(&e->orders);
    memset(o, 0, sizeof(*o));
    o->id = id;
    o->price = (int64_t)price;
    o->qty = (int64_t)qty;
    o->filled = (int64_t)filled;
    o->account = (uint32_t)eng_account(e, account, 1);
    o->book = b->index;
    o->side = s == BOOK_BID ? OP_SIDE_BUY : OP_SIDE_SELL;
    o->type = (uint8_t)type;
    o->tif = (uint8_t)tif;
    o->post_only = post_only ? 1 : 0;
    o->stp = (uint8_t)stp;
    o->stop_price = (int64_t)stop;
    o->expire_ns = expire;
    memcpy(o->client_order_id, clordid, sizeof(clordid));
    return o;
}

/* Restores one side s of book b from the array at r (best first). */
static int restore_side(struct eng *e, struct book *b, int s, struct op_mp_reader *r,
                        unsigned version, struct rctx *c)
{
    uint32_t n;
    if (op_mp_get_array(r, &n) != 0)
        return fail(c, "book '%s': side is not an array", b->symbol);
    int64_t last_key = INT64_MAX;
    for (uint32_t i = 0; i < n; i++) {
        struct book_order *o = restore_order(e, b, s, r, version, c);
        if (o == NULL)
            return -1;
        /* Resting: a limit order or a triggered stop-limit, GTC or GTD. */
        int ok = o->price >= 1 && (o->type == OP_TYPE_LIMIT || o->type == OP_TYPE_STOP_LIMIT) &&
                 (o->tif == OP_TIF_GTC || o->tif == OP_TIF_GTD);
        int64_t key = book_key(s, o->price);
        if (!ok || key > last_key) {
            book_pool_put(&e->orders, o);
            return fail(c, "book '%s': resting order %u of side %d impossible or out of priority",
                        b->symbol, i, s);
        }
        last_key = key;
        eng_rest(e, o);
        if (o->expire_ns != 0)
            eng_gtd_add(e, o);
    }
    return 0;
}

/* Restores the pending stops of side s of book b (layout 4). */
static int restore_stops(struct eng *e, struct book *b, int s, struct op_mp_reader *r,
                         struct rctx *c)
{
    uint32_t n;
    if (op_mp_get_array(r, &n) != 0)
        return fail(c, "book '%s': stop list is not an array", b->symbol);
    for (uint32_t i = 0; i < n; i++) {
        struct book_order *o = restore_order(e, b, s, r, 4, c);
        if (o == NULL)
            return -1;
        if (o->type == OP_TYPE_LIMIT || o->filled != 0) {
            book_pool_put(&e->orders, o);
            return fail(c, "book '%s': stop %u of side %d impossible", b->symbol, i, s);
        }
        eng_stop_add(e, o);
        if (o->expire_ns != 0)
            eng_gtd_add(e, o);
    }
    return 0;
}

/* Why 6: a snapshot nests body > books > book > side > order (5 levels below
 * the top array); anything deeper is not a snapshot. */
#define SNAP_DEPTH 6

/* Fills the empty engine *ep from the body at r, of layout version; 0 or -1. */
static int restore_body(struct eng **ep, struct op_mp_reader *r, unsigned version, struct rctx *c)
{
    uint64_t shard, seq, closed_max, now_ns = 0;
    if (get_arr(r, version >= 4   ? 7
                   : version >= 2 ? 6
                                  : 5) ||
        op_mp_get_uint(r, ENG_SHARD_MAX - 1, &shard) ||
        op_mp_get_uint(r, (UINT64_C(1) << (64 - ENG_SHARD_BITS)) - 1, &seq) ||
        op_mp_get_uint(r, ENG_CLOSED_LIMIT, &closed_max) || closed_max == 0)
        return fail(c, "snapshot header fields malformed");
    struct eng *e = eng_new((uint32_t)shard, (uint32_t)closed_max);
    if (e == NULL)
        return fail(c, "out of memory");
    *ep = e;
    e->seq = seq;
    uint32_t nbooks, nclosed;
    if (op_mp_get_array(r, &nbooks) != 0)
        return fail(c, "books or closed list is not an array");
    for (uint32_t i = 0; i < nbooks; i++) {
        char symbol[OP_SYMBOL_MAX];
        if (get_arr(r, version >= 4 ? 5 : 3) || get_str(r, symbol, sizeof(symbol)) ||
            symbol[0] == '\0')
            return fail(c, "book %u malformed", i);
        if (eng_book(e, symbol, 0) != NULL)
            return fail(c, "book '%s' appears twice", symbol);
        struct book *b = eng_book(e, symbol, 1);
        if (restore_side(e, b, BOOK_BID, r, version, c) ||
            restore_side(e, b, BOOK_ASK, r, version, c) ||
            (version >= 4 &&
             (restore_stops(e, b, BOOK_BID, r, c) || restore_stops(e, b, BOOK_ASK, r, c))))
            return -1;
    }
    if (op_mp_get_array(r, &nclosed) != 0)
        return fail(c, "books or closed list is not an array");
    if (nclosed > closed_max)
        return fail(c, "closed list longer than its bound");
    for (uint32_t k = 0; k < nclosed; k++) {
        uint64_t id, book;
        char account[OP_ACCOUNT_MAX];
        if (get_arr(r, 3) || op_mp_get_uint(r, INT64_MAX, &id) || id == 0 ||
            get_str(r, account, sizeof(account)) || e->nbooks == 0 ||
            op_mp_get_uint(r, (uint64_t)e->nbooks - 1, &book))
            return fail(c, "closed record %u malformed", k);
        if (eng_id_known(e, id))
            return fail(c, "order id %llu appears twice", (unsigned long long)id);
        eng_closed_add(e, id, (uint32_t)eng_account(e, account, 1), (uint32_t)book);
    }
    if (version >= 2 && op_mp_get_uint(r, UINT64_MAX, &now_ns))
        return fail(c, "snapshot header fields malformed");
    e->now_ns = now_ns;
    uint32_t ndm = 0;
    if (version >= 4 && op_mp_get_array(r, &ndm) != 0)
        return fail(c, "dead-man list is not an array");
    for (uint32_t k = 0; k < ndm; k++) {
        char account[OP_ACCOUNT_MAX];
        uint64_t deadline;
        if (get_arr(r, 2) || get_str(r, account, sizeof(account)) || account[0] == '\0' ||
            op_mp_get_uint(r, UINT64_MAX, &deadline) || deadline == 0)
            return fail(c, "dead-man switch %u malformed", k);
        eng_dead_man_set(e, (uint32_t)eng_account(e, account, 1), deadline);
    }
    if (r->off != r->len)
        return fail(c, "snapshot body has trailing bytes");
    return 0;
}

struct eng *eng_restore(const void *buf, size_t len, char *err, size_t errlen)
{
    struct rctx c = {err, errlen};
    struct eng *e = NULL;
    int rc = -1;
    if (buf == NULL || op_mp_check_all(buf, len, 2) != 0) {
        fail(&c, "snapshot truncated or not msgpack");
        goto out;
    }
    struct op_mp_reader top = {buf, len, 0};
    uint64_t version, hash;
    const char *magic;
    size_t mlen;
    if (get_arr(&top, 4) || op_mp_get_str(&top, &magic, &mlen) || mlen != strlen(SNAP_MAGIC) ||
        memcmp(magic, SNAP_MAGIC, mlen) != 0) {
        fail(&c, "not an engine snapshot");
        goto out;
    }
    if (op_mp_get_uint(&top, UINT32_MAX, &version) || version < 1 || version > SNAP_VERSION) {
        fail(&c, "unsupported snapshot version");
        goto out;
    }
    const void *body;
    size_t body_len;
    if (op_mp_get_uint(&top, UINT64_MAX, &hash) || op_mp_get_bin(&top, &body, &body_len) != 0) {
        fail(&c, "snapshot hash or body malformed");
        goto out;
    }
    if (eng_fnv1a64(body, body_len) != hash) {
        fail(&c, "snapshot checksum mismatch");
        goto out;
    }
    if (op_mp_check_all(body, body_len, SNAP_DEPTH) != 0) {
        fail(&c, "snapshot body truncated or not msgpack");
        goto out;
    }
    struct op_mp_reader rd = {body, body_len, 0};
    if (restore_body(&e, &rd, (unsigned)version, &c) != 0 || e == NULL)
        goto out;
    if (eng_check(e, err, errlen) != 0)
        goto out;
    /* A body msgpack-c would not have written (non-shortest integers, …)
     * restores a state whose canonical form differs: refuse it, so that
     * hash(restore(x)) == hash(x) always holds. */
    if (hash_as(e, (unsigned)version) != hash) {
        fail(&c, "snapshot body is not in canonical form");
        goto out;
    }
    rc = 0;
out:
    if (rc != 0) {
        eng_free(e);
        e = NULL;
    }
    return e;
}

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
 *   [ "orderpipe-engine", 3, hash:uint64, body:bin ]
 *
 *   body = [ shard, seq, closed_max, books, closed, now_ns ]
 *     (version 1, still restored: the same without now_ns, which is then 0)
 *     books  = [ [ symbol, bids, asks ], … ]        in book index order
 *     bids, asks = [ order, … ]                     best price first, FIFO within a price
 *     order  = [ id, price, qty, filled, type, tif, post_only, account, client_order_id, stp ]
 *     (versions 1 and 2, still restored: orders without stp, which is then 0)
 *     closed = [ [ id, account, book_index ], … ]   oldest first
 *
 * hash = FNV-1a 64 over the body bytes. The body is canonical (one encoding
 * per state: msgpack-c always picks the shortest form, the order of every
 * array is defined by the state), so it is also eng_hash().
 */

#define SNAP_MAGIC "orderpipe-engine"
#define SNAP_VERSION 3

/* Appends e's canonical body of layout `version` (1 to 3) to out; returns 0
 * or -1 when memory is short. */
static int pack_body(const struct eng *e, struct op_buf *out, unsigned version)
{
    int rc = 0;
    rc |= op_mp_put_array(out, version >= 2 ? 6 : 5);
    rc |= op_mp_put_uint(out, e->shard);
    rc |= op_mp_put_uint(out, e->seq);
    rc |= op_mp_put_uint(out, e->closed_max);
    rc |= op_mp_put_array(out, e->nbooks);
    for (uint32_t i = 0; i < e->nbooks && rc == 0; i++) {
        const struct book *b = e->books[i];
        rc |= op_mp_put_array(out, 3);
        rc |= op_mp_put_str(out, b->symbol, strlen(b->symbol));
        for (int s = 0; s < 2; s++) {
            const struct book_side *sd = &b->side[s];
            uint32_t n = 0;
            for (uint32_t j = 0; j < sd->n; j++)
                n += sd->lv[j]->count;
            rc |= op_mp_put_array(out, n);
            for (uint32_t j = sd->n; j-- > 0;) {
                for (const struct book_order *o = sd->lv[j]->head; o != NULL; o = o->next) {
                    const char *acct = e->accounts[o->account];
                    rc |= op_mp_put_array(out, version >= 3 ? 10 : 9);
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
                }
            }
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

/* Restores one side s of book b from the array at r (best first). */
static int restore_side(struct eng *e, struct book *b, int s, struct op_mp_reader *r,
                        unsigned version, struct rctx *c)
{
    uint32_t n;
    if (op_mp_get_array(r, &n) != 0)
        return fail(c, "book '%s': side is not an array", b->symbol);
    int64_t last_key = INT64_MAX;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t id, price, qty, filled, type, tif, stp = 0;
        bool post_only;
        char account[OP_ACCOUNT_MAX], clordid[OP_CLORDID_MAX];
        if (get_arr(r, version >= 3 ? 10 : 9) || op_mp_get_uint(r, INT64_MAX, &id) || id == 0 ||
            op_mp_get_uint(r, INT64_MAX, &price) || price < 1 ||
            op_mp_get_uint(r, ENG_QTY_MAX, &qty) || qty < 1 ||
            op_mp_get_uint(r, qty - 1, &filled) || op_mp_get_uint(r, 255, &type) ||
            type != OP_TYPE_LIMIT || op_mp_get_uint(r, 255, &tif) || tif != OP_TIF_GTC ||
            op_mp_get_bool(r, &post_only) || get_str(r, account, sizeof(account)) ||
            get_str(r, clordid, sizeof(clordid)) ||
            (version >= 3 && op_mp_get_uint(r, OP_STP_MAX, &stp)))
            return fail(c, "book '%s': order %u of side %d is malformed", b->symbol, i, s);
        int64_t key = book_key(s, (int64_t)price);
        if (key > last_key)
            return fail(c, "book '%s': order %llu out of price priority", b->symbol,
                        (unsigned long long)id);
        last_key = key;
        if (eng_id_known(e, id))
            return fail(c, "order id %llu appears twice", (unsigned long long)id);
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
        memcpy(o->client_order_id, clordid, sizeof(clordid));
        eng_rest(e, o);
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
    if (get_arr(r, version >= 2 ? 6 : 5) || op_mp_get_uint(r, ENG_SHARD_MAX - 1, &shard) ||
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
        if (get_arr(r, 3) || get_str(r, symbol, sizeof(symbol)) || symbol[0] == '\0')
            return fail(c, "book %u malformed", i);
        if (eng_book(e, symbol, 0) != NULL)
            return fail(c, "book '%s' appears twice", symbol);
        struct book *b = eng_book(e, symbol, 1);
        if (restore_side(e, b, BOOK_BID, r, version, c) ||
            restore_side(e, b, BOOK_ASK, r, version, c))
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

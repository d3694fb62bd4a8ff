/* Snapshot, restore and state hash of a whole engine, as msgpack (the only msgpack-c user here). */
#include "matcher/engine/engine.h"

#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Snapshot layout (msgpack), documented in docs/engine.md:
 *
 *   [ "orderpipe-engine", 2, hash:uint64, body:bin ]
 *
 *   body = [ shard, seq, closed_max, books, closed, now_ns ]
 *     (version 1, still restored: the same without now_ns, which is then 0)
 *     books  = [ [ symbol, bids, asks ], … ]        in book index order
 *     bids, asks = [ order, … ]                     best price first, FIFO within a price
 *     order  = [ id, price, qty, filled, type, tif, post_only, account, client_order_id ]
 *     closed = [ [ id, account, book_index ], … ]   oldest first
 *
 * hash = FNV-1a 64 over the body bytes. The body is canonical (one encoding
 * per state: msgpack-c always picks the shortest form, the order of every
 * array is defined by the state), so it is also eng_hash().
 */

#define SNAP_MAGIC "orderpipe-engine"
#define SNAP_VERSION 2

/* Packs e's canonical body of layout `version` (1 or 2) into sb; returns 0
 * or -1 when memory is short. */
static int pack_body(const struct eng *e, msgpack_sbuffer *sb, unsigned version)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    int rc = 0;
    rc |= msgpack_pack_array(&pk, version >= 2 ? 6 : 5);
    rc |= msgpack_pack_uint32(&pk, e->shard);
    rc |= msgpack_pack_uint64(&pk, e->seq);
    rc |= msgpack_pack_uint32(&pk, e->closed_max);
    rc |= msgpack_pack_array(&pk, e->nbooks);
    for (uint32_t i = 0; i < e->nbooks && rc == 0; i++) {
        const struct book *b = e->books[i];
        size_t symlen = strlen(b->symbol);
        rc |= msgpack_pack_array(&pk, 3);
        rc |= msgpack_pack_str(&pk, symlen);
        rc |= msgpack_pack_str_body(&pk, b->symbol, symlen);
        for (int s = 0; s < 2; s++) {
            const struct book_side *sd = &b->side[s];
            uint32_t n = 0;
            for (uint32_t j = 0; j < sd->n; j++)
                n += sd->lv[j]->count;
            rc |= msgpack_pack_array(&pk, n);
            for (uint32_t j = sd->n; j-- > 0;) {
                for (const struct book_order *o = sd->lv[j]->head; o != NULL; o = o->next) {
                    const char *acct = e->accounts[o->account];
                    size_t al = strlen(acct), cl = strlen(o->client_order_id);
                    rc |= msgpack_pack_array(&pk, 9);
                    rc |= msgpack_pack_uint64(&pk, o->id);
                    rc |= msgpack_pack_int64(&pk, o->price);
                    rc |= msgpack_pack_int64(&pk, o->qty);
                    rc |= msgpack_pack_int64(&pk, o->filled);
                    rc |= msgpack_pack_uint8(&pk, o->type);
                    rc |= msgpack_pack_uint8(&pk, o->tif);
                    rc |= o->post_only ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
                    rc |= msgpack_pack_str(&pk, al);
                    rc |= msgpack_pack_str_body(&pk, acct, al);
                    rc |= msgpack_pack_str(&pk, cl);
                    rc |= msgpack_pack_str_body(&pk, o->client_order_id, cl);
                }
            }
        }
    }
    rc |= msgpack_pack_array(&pk, e->closed_len);
    for (uint32_t k = 0; k < e->closed_len && rc == 0; k++) {
        const struct eng_closed *c = &e->ring[(e->closed_head + k) % e->closed_max];
        rc |= msgpack_pack_array(&pk, 3);
        rc |= msgpack_pack_uint64(&pk, c->id);
        const char *acct = e->accounts[c->account];
        rc |= msgpack_pack_str(&pk, strlen(acct));
        rc |= msgpack_pack_str_body(&pk, acct, strlen(acct));
        rc |= msgpack_pack_uint32(&pk, c->book);
    }
    if (version >= 2)
        rc |= msgpack_pack_uint64(&pk, e->now_ns);
    return rc ? -1 : 0;
}

/* eng_hash of e in body layout `version`. */
static uint64_t hash_as(const struct eng *e, unsigned version)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (pack_body(e, &sb, version) != 0)
        eng_oom("state hash");
    uint64_t h = eng_fnv1a64(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return h;
}

uint64_t eng_hash(const struct eng *e)
{
    return hash_as(e, SNAP_VERSION);
}

int eng_snapshot(const struct eng *e, char **out, size_t *len)
{
    msgpack_sbuffer body, sb;
    msgpack_sbuffer_init(&body);
    msgpack_sbuffer_init(&sb);
    int rc = -1;
    if (pack_body(e, &body, SNAP_VERSION) != 0)
        goto out;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int prc = msgpack_pack_array(&pk, 4);
    prc |= msgpack_pack_str(&pk, strlen(SNAP_MAGIC));
    prc |= msgpack_pack_str_body(&pk, SNAP_MAGIC, strlen(SNAP_MAGIC));
    prc |= msgpack_pack_uint32(&pk, SNAP_VERSION);
    /* Always the 9-byte uint64 form, so the hash sits at a fixed offset. */
    unsigned char h[9] = {0xcf};
    uint64_t hv = eng_fnv1a64(body.data, body.size);
    for (int i = 0; i < 8; i++)
        h[1 + i] = (unsigned char)(hv >> (56 - 8 * i));
    prc |= msgpack_sbuffer_write(&sb, (const char *)h, sizeof(h));
    prc |= msgpack_pack_bin(&pk, body.size);
    prc |= msgpack_pack_bin_body(&pk, body.data, body.size);
    if (prc != 0)
        goto out;
    *len = sb.size;
    *out = msgpack_sbuffer_release(&sb);
    rc = 0;
out:
    msgpack_sbuffer_destroy(&body);
    msgpack_sbuffer_destroy(&sb);
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

/* o as an array of exactly n elements, or NULL. */
static const msgpack_object *arr(const msgpack_object *o, uint32_t n)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != n)
        return NULL;
    return o->via.array.ptr;
}

/* Reads a non-negative integer ≤ max into *v; 0 or -1. */
static int get_u64(const msgpack_object *o, uint64_t max, uint64_t *v)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > max)
        return -1;
    *v = o->via.u64;
    return 0;
}

/* Copies a string of 0 … size-1 bytes without NUL into dst, NUL-padded; 0 or -1. */
static int get_str(const msgpack_object *o, char *dst, size_t size)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size >= size ||
        memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL)
        return -1;
    memset(dst, 0, size);
    memcpy(dst, o->via.str.ptr, o->via.str.size);
    return 0;
}

/* Restores one side s of book b from the array a (best first). */
static int restore_side(struct eng *e, struct book *b, int s, const msgpack_object *a,
                        struct rctx *c)
{
    if (a->type != MSGPACK_OBJECT_ARRAY)
        return fail(c, "book '%s': side is not an array", b->symbol);
    int64_t last_key = INT64_MAX;
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        const msgpack_object *f = arr(&a->via.array.ptr[i], 9);
        uint64_t id, price, qty, filled, type, tif;
        char account[OP_ACCOUNT_MAX], clordid[OP_CLORDID_MAX];
        if (f == NULL || get_u64(&f[0], INT64_MAX, &id) || id == 0 ||
            get_u64(&f[1], INT64_MAX, &price) || price < 1 || get_u64(&f[2], ENG_QTY_MAX, &qty) ||
            qty < 1 || get_u64(&f[3], qty - 1, &filled) || get_u64(&f[4], 255, &type) ||
            type != OP_TYPE_LIMIT || get_u64(&f[5], 255, &tif) || tif != OP_TIF_GTC ||
            f[6].type != MSGPACK_OBJECT_BOOLEAN || get_str(&f[7], account, sizeof(account)) ||
            get_str(&f[8], clordid, sizeof(clordid)))
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
        o->post_only = f[6].via.boolean ? 1 : 0;
        memcpy(o->client_order_id, clordid, sizeof(clordid));
        eng_rest(e, o);
    }
    return 0;
}

/* Big-endian unsigned integer of n bytes at p. */
static uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/*
 * Returns 0 when buf (len bytes) is exactly one complete msgpack object whose
 * every array/map count is at most the bytes left after its header, else -1.
 * msgpack-c allocates an array's elements from its declared count before it
 * reads them, so a forged count of 2^32 would make it ask for 96 GiB; this
 * O(len) walk bounds what it can allocate to O(len).
 */
static int mp_plausible(const unsigned char *buf, size_t len)
{
    size_t pos = 0;
    uint64_t pending = 1; /* objects still to read */
    while (pending > 0) {
        if (pos >= len)
            return -1;
        unsigned t = buf[pos++];
        uint64_t skip = 0, items = 0;
        size_t left = len - pos;
        if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
            /* fixint, nil, bool */
        } else if ((t & 0xf0) == 0x80) {
            items = 2 * (uint64_t)(t & 0x0f);
        } else if ((t & 0xf0) == 0x90) {
            items = t & 0x0f;
        } else if ((t & 0xe0) == 0xa0) {
            skip = t & 0x1f;
        } else {
            int hdr; /* bytes of length or value that follow the type byte */
            switch (t) {
            case 0xc4:
            case 0xd9:
            case 0xcc:
            case 0xd0:
                hdr = 1;
                break;
            case 0xc5:
            case 0xda:
            case 0xcd:
            case 0xd1:
            case 0xdc:
            case 0xde:
                hdr = 2;
                break;
            case 0xc6:
            case 0xdb:
            case 0xce:
            case 0xd2:
            case 0xca:
            case 0xdd:
            case 0xdf:
                hdr = 4;
                break;
            case 0xcf:
            case 0xd3:
            case 0xcb:
                hdr = 8;
                break;
            default:
                return -1; /* ext types and 0xc1 never appear in a snapshot */
            }
            if (left < (size_t)hdr)
                return -1;
            uint64_t v = be(buf + pos, hdr);
            pos += (size_t)hdr;
            left -= (size_t)hdr;
            if (t == 0xc4 || t == 0xc5 || t == 0xc6 || t == 0xd9 || t == 0xda || t == 0xdb)
                skip = v;
            else if (t == 0xdc || t == 0xdd)
                items = v;
            else if (t == 0xde || t == 0xdf)
                items = 2 * v;
        }
        if (skip > left || items > left)
            return -1;
        pos += (size_t)skip;
        pending = pending - 1 + items;
    }
    return pos == len ? 0 : -1;
}

/* Fills the empty engine *ep from the body object of layout version; 0 or -1. */
static int restore_body(struct eng **ep, const msgpack_object *body, unsigned version,
                        struct rctx *c)
{
    const msgpack_object *f = arr(body, version >= 2 ? 6 : 5);
    uint64_t shard, seq, closed_max, now_ns = 0;
    if (f == NULL || get_u64(&f[0], ENG_SHARD_MAX - 1, &shard) ||
        get_u64(&f[1], (UINT64_C(1) << (64 - ENG_SHARD_BITS)) - 1, &seq) ||
        get_u64(&f[2], ENG_CLOSED_LIMIT, &closed_max) || closed_max == 0 ||
        (version >= 2 && get_u64(&f[5], UINT64_MAX, &now_ns)))
        return fail(c, "snapshot header fields malformed");
    struct eng *e = eng_new((uint32_t)shard, (uint32_t)closed_max);
    if (e == NULL)
        return fail(c, "out of memory");
    *ep = e;
    e->seq = seq;
    e->now_ns = now_ns;
    const msgpack_object *books = &f[3], *closed = &f[4];
    if (books->type != MSGPACK_OBJECT_ARRAY || closed->type != MSGPACK_OBJECT_ARRAY)
        return fail(c, "books or closed list is not an array");
    for (uint32_t i = 0; i < books->via.array.size; i++) {
        const msgpack_object *bf = arr(&books->via.array.ptr[i], 3);
        char symbol[OP_SYMBOL_MAX];
        if (bf == NULL || get_str(&bf[0], symbol, sizeof(symbol)) || symbol[0] == '\0')
            return fail(c, "book %u malformed", i);
        if (eng_book(e, symbol, 0) != NULL)
            return fail(c, "book '%s' appears twice", symbol);
        struct book *b = eng_book(e, symbol, 1);
        if (restore_side(e, b, BOOK_BID, &bf[1], c) || restore_side(e, b, BOOK_ASK, &bf[2], c))
            return -1;
    }
    if (closed->via.array.size > closed_max)
        return fail(c, "closed list longer than its bound");
    for (uint32_t k = 0; k < closed->via.array.size; k++) {
        const msgpack_object *cf = arr(&closed->via.array.ptr[k], 3);
        uint64_t id, book;
        char account[OP_ACCOUNT_MAX];
        if (cf == NULL || get_u64(&cf[0], INT64_MAX, &id) || id == 0 ||
            get_str(&cf[1], account, sizeof(account)) ||
            get_u64(&cf[2], (uint64_t)e->nbooks - 1, &book) || e->nbooks == 0)
            return fail(c, "closed record %u malformed", k);
        if (eng_id_known(e, id))
            return fail(c, "order id %llu appears twice", (unsigned long long)id);
        eng_closed_add(e, id, (uint32_t)eng_account(e, account, 1), (uint32_t)book);
    }
    return 0;
}

struct eng *eng_restore(const void *buf, size_t len, char *err, size_t errlen)
{
    struct rctx c = {err, errlen};
    struct eng *e = NULL;
    msgpack_unpacked top;
    msgpack_unpacked_init(&top);
    size_t off = 0;
    int rc = -1;
    if (buf == NULL || mp_plausible(buf, len) != 0 ||
        msgpack_unpack_next(&top, buf, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len) {
        fail(&c, "snapshot truncated or not msgpack");
        goto out;
    }
    const msgpack_object *f = arr(&top.data, 4);
    uint64_t version, hash;
    if (f == NULL || f[0].type != MSGPACK_OBJECT_STR || f[0].via.str.size != strlen(SNAP_MAGIC) ||
        memcmp(f[0].via.str.ptr, SNAP_MAGIC, strlen(SNAP_MAGIC)) != 0) {
        fail(&c, "not an engine snapshot");
        goto out;
    }
    if (get_u64(&f[1], UINT32_MAX, &version) || version < 1 || version > SNAP_VERSION) {
        fail(&c, "unsupported snapshot version");
        goto out;
    }
    if (get_u64(&f[2], UINT64_MAX, &hash) || f[3].type != MSGPACK_OBJECT_BIN) {
        fail(&c, "snapshot hash or body malformed");
        goto out;
    }
    const char *body = f[3].via.bin.ptr;
    size_t body_len = f[3].via.bin.size;
    if (eng_fnv1a64(body, body_len) != hash) {
        fail(&c, "snapshot checksum mismatch");
        goto out;
    }
    msgpack_unpacked inner;
    msgpack_unpacked_init(&inner);
    off = 0;
    if (mp_plausible((const unsigned char *)body, body_len) != 0 ||
        msgpack_unpack_next(&inner, body, body_len, &off) != MSGPACK_UNPACK_SUCCESS ||
        off != body_len) {
        msgpack_unpacked_destroy(&inner);
        fail(&c, "snapshot body truncated or not msgpack");
        goto out;
    }
    int brc = restore_body(&e, &inner.data, (unsigned)version, &c);
    msgpack_unpacked_destroy(&inner);
    if (brc != 0)
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
    msgpack_unpacked_destroy(&top);
    if (rc != 0) {
        eng_free(e);
        e = NULL;
    }
    return e;
}

/* Unit tests of shared/codec: round trips and hostile input for every stream message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <msgpack.h>
#include <string.h>

#include "shared/buf.h"
#include "shared/codec.h"

static struct op_order_msg sample_new(void)
{
    struct op_order_msg m;
    memset(&m, 0, sizeof(m));
    m.kind = OP_MSG_NEW;
    m.side = OP_SIDE_SELL;
    m.type = OP_TYPE_LIMIT;
    m.tif = OP_TIF_FOK;
    m.post_only = false;
    m.order_id = UINT64_C(9223372036854775807);
    m.ts_ns = UINT64_C(1795000000123456789);
    m.price = 18725;
    m.qty = 1000000;
    snprintf(m.symbol, sizeof(m.symbol), "%s", "AAPL");
    snprintf(m.account, sizeof(m.account), "%s", "alice");
    snprintf(m.client_order_id, sizeof(m.client_order_id), "%s",
             "abcdefghijklmnopqrstuvwxyz0123456789"); /* 36 chars */
    return m;
}

static void test_order_round_trip(void **state)
{
    (void)state;
    struct op_codec *c = op_codec_new();
    struct op_buf b;
    op_buf_init(&b);
    struct op_order_msg in[4];
    in[0] = sample_new();
    in[1] = sample_new();
    in[1].type = OP_TYPE_MARKET, in[1].price = 0, in[1].tif = OP_TIF_IOC;
    memset(in[1].client_order_id, 0, sizeof(in[1].client_order_id));
    in[2] = sample_new();
    memset(&in[2], 0, sizeof(in[2]));
    in[2].kind = OP_MSG_CANCEL, in[2].order_id = 42, in[2].ts_ns = 7;
    snprintf(in[2].symbol, sizeof(in[2].symbol), "%s", "TSLA"),
        snprintf(in[2].account, sizeof(in[2].account), "%s", "bob");
    in[3] = in[2];
    in[3].kind = OP_MSG_AMEND, in[3].qty = 5;
    for (int i = 0; i < 4; i++) {
        struct op_order_msg out;
        op_buf_reset(&b);
        assert_int_equal(op_codec_encode_order(&b, &in[i]), 0);
        assert_int_equal(op_codec_decode_order(c, b.data, b.len, &out), 0);
        assert_memory_equal(&in[i], &out, sizeof(out));
    }
    op_buf_release(&b);
    op_codec_free(c);
}

static struct op_report sample_trade(void)
{
    struct op_report r;
    memset(&r, 0, sizeof(r));
    r.kind = OP_REPORT_TRADE;
    r.req_kind = OP_MSG_NEW;
    r.status = OP_STATUS_PARTIALLY_FILLED;
    r.side = OP_SIDE_BUY, r.type = OP_TYPE_LIMIT, r.tif = OP_TIF_GTC, r.post_only = true;
    r.report_id = (UINT64_C(123456789) << 10) | 3;
    r.ts_ns = UINT64_C(1795000000123456789);
    r.order_id = 77, r.price = 18800, r.qty = 300, r.filled_qty = 100;
    r.maker_order_id = 55, r.trade_price = 18725, r.trade_qty = 100;
    r.maker_qty = 100, r.maker_filled_qty = 100, r.maker_status = OP_STATUS_FILLED;
    snprintf(r.symbol, sizeof(r.symbol), "%s", "AAPL"),
        snprintf(r.account, sizeof(r.account), "%s", "alice"),
        snprintf(r.maker_account, sizeof(r.maker_account), "%s", "bob");
    snprintf(r.client_order_id, sizeof(r.client_order_id), "%s", "c-1");
    return r;
}

static void test_reports_round_trip(void **state)
{
    (void)state;
    struct op_codec *c = op_codec_new();
    struct op_buf b;
    op_buf_init(&b);
    static struct op_report in[OP_CODEC_REPORTS_MAX], out[OP_CODEC_REPORTS_MAX];
    for (int i = 0; i < OP_CODEC_REPORTS_MAX; i++) {
        in[i] = sample_trade();
        in[i].report_id += (uint64_t)i << 10;
        in[i].kind = (uint8_t)(1 + i % 5);
        in[i].reason = (uint8_t)(i % 3 ? 0 : OP_REASON_BAD_AMEND);
        in[i].price = -i; /* negative ints survive too */
    }
    size_t n = 0;
    assert_int_equal(op_codec_encode_reports(&b, in, 1), 0);
    assert_int_equal(op_codec_decode_reports(c, b.data, b.len, out, 8, &n), 0);
    assert_int_equal(n, 1);
    assert_memory_equal(&in[0], &out[0], sizeof(out[0]));

    op_buf_reset(&b);
    assert_int_equal(op_codec_encode_reports(&b, in, OP_CODEC_REPORTS_MAX), 0);
    assert_true(b.len < OP_CODEC_REPORTS_BYTES_MAX);
    assert_int_equal(op_codec_decode_reports(c, b.data, b.len, out, OP_CODEC_REPORTS_MAX, &n), 0);
    assert_int_equal(n, OP_CODEC_REPORTS_MAX);
    assert_memory_equal(in, out, sizeof(in));
    /* more reports than the caller's array */
    assert_int_equal(op_codec_decode_reports(c, b.data, b.len, out, 10, &n), -1);
    assert_string_equal(op_codec_error(c), "too many reports in one entry");
    assert_int_equal(op_codec_encode_reports(&b, in, OP_CODEC_REPORTS_MAX + 1), -1);

    op_buf_reset(&b); /* empty array is fine */
    assert_int_equal(op_codec_encode_reports(&b, in, 0), 0);
    assert_int_equal(op_codec_decode_reports(c, b.data, b.len, out, 10, &n), 0);
    assert_int_equal(n, 0);
    op_buf_release(&b);
    op_codec_free(c);
}

static void test_truncated(void **state)
{
    (void)state;
    struct op_codec *c = op_codec_new();
    struct op_buf b;
    op_buf_init(&b);
    struct op_order_msg m = sample_new(), out;
    assert_int_equal(op_codec_encode_order(&b, &m), 0);
    for (size_t len = 0; len < b.len; len++)
        assert_int_equal(op_codec_decode_order(c, b.data, len, &out), -1);
    struct op_report r[3] = {sample_trade(), sample_trade(), sample_trade()}, ro[3];
    size_t n;
    op_buf_reset(&b);
    op_codec_encode_reports(&b, r, 3);
    for (size_t len = 0; len < b.len; len++)
        assert_int_equal(op_codec_decode_reports(c, b.data, len, ro, 3, &n), -1);
    op_buf_release(&b);
    op_codec_free(c);
}

/* Packs a map of (key, value) with a chosen wrong value for one key. */
static void pack_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    msgpack_pack_str(pk, strlen(k)), msgpack_pack_str_body(pk, k, strlen(k));
    msgpack_pack_str(pk, strlen(v)), msgpack_pack_str_body(pk, v, strlen(v));
}

static void pack_kv_u(msgpack_packer *pk, const char *k, uint64_t v)
{
    msgpack_pack_str(pk, strlen(k)), msgpack_pack_str_body(pk, k, strlen(k));
    msgpack_pack_uint64(pk, v);
}

static void test_wrong_types_and_missing(void **state)
{
    (void)state;
    struct op_codec *c = op_codec_new();
    struct op_order_msg out;
    msgpack_sbuffer sb;
    msgpack_packer pk;

    /* Variants of a cancel: each must fail for the stated reason. */
    for (int variant = 0; variant < 8; variant++) {
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        int fields = variant == 1 ? 4 : 5;
        msgpack_pack_map(&pk, (size_t)fields + (variant == 7 ? 1 : 0));
        pack_kv_u(&pk, "k", variant == 5 ? 9 : OP_MSG_CANCEL);
        if (variant == 0)
            pack_kv_str(&pk, "id", "42"); /* string for uint */
        else if (variant != 1)
            pack_kv_u(&pk, "id", 42); /* 1: id missing */
        if (variant == 2)
            pack_kv_u(&pk, "ts", 0), msgpack_pack_str(&pk, 3), msgpack_pack_str_body(&pk, "sym", 3),
                msgpack_pack_int64(&pk, -1);
        else
            pack_kv_u(&pk, "ts", 1),
                pack_kv_str(&pk, "sym", variant == 3 ? "SIXTEEN_CHARS_XX" : "AAPL");
        if (variant == 4) {
            msgpack_pack_str(&pk, 4), msgpack_pack_str_body(&pk, "acct", 4), msgpack_pack_nil(&pk);
        } else if (variant == 6) {
            msgpack_pack_uint64(&pk, 5), msgpack_pack_str(&pk, 1),
                msgpack_pack_str_body(&pk, "x", 1);
        } else
            pack_kv_str(&pk, "acct", "alice");
        if (variant == 7)
            pack_kv_str(&pk, "acct", "bob"); /* duplicate key */
        int rc = op_codec_decode_order(c, sb.data, sb.size, &out);
        if (rc != -1)
            fail_msg("variant %d decoded", variant);
        assert_int_equal(out.kind, 0); /* zeroed on failure */
        msgpack_sbuffer_destroy(&sb);
    }
    /* not a map at all */
    assert_int_equal(op_codec_decode_order(c, "\x93\x01\x02\x03", 4, &out), -1);
    assert_string_equal(op_codec_error(c), "message is not a map");
    /* trailing garbage after a valid map */
    struct op_buf b;
    op_buf_init(&b);
    struct op_order_msg m = sample_new();
    op_codec_encode_order(&b, &m);
    op_buf_append(&b, "\x01", 1);
    assert_int_equal(op_codec_decode_order(c, b.data, b.len, &out), -1);
    op_buf_release(&b);
    op_codec_free(c);
}

static void test_oversized_and_hostile(void **state)
{
    (void)state;
    struct op_codec *c = op_codec_new();
    struct op_order_msg out;
    struct op_report r[4];
    size_t n;
    /* array32 header claiming 4 billion elements: must not allocate for them */
    assert_int_equal(op_codec_decode_reports(c, "\xdd\xff\xff\xff\xff\x80", 6, r, 4, &n), -1);
    assert_string_equal(op_codec_error(c), "truncated input");
    assert_int_equal(op_codec_decode_order(c, "\xdf\xff\xff\xff\xff", 5, &out), -1);
    /* str32 claiming 4 GiB */
    assert_int_equal(op_codec_decode_order(c, "\xdb\xff\xff\xff\xff\x41", 6, &out), -1);
    /* the never-used byte 0xc1 */
    assert_int_equal(op_codec_decode_order(c, "\x81\xc1\x01", 3, &out), -1);
    assert_string_equal(op_codec_error(c), "corrupt input");
    /* nesting deeper than any message */
    assert_int_equal(op_codec_decode_order(c, "\x91\x91\x91\x91\x91\x91\x01", 7, &out), -1);
    assert_string_equal(op_codec_error(c), "input nested too deeply");
    /* larger than the order limit */
    static char big[OP_CODEC_ORDER_MAX + 1];
    assert_int_equal(op_codec_decode_order(c, big, sizeof(big), &out), -1);
    assert_string_equal(op_codec_error(c), "input too large");
    assert_int_equal(op_codec_decode_order(c, "", 0, &out), -1);
    op_codec_free(c);
}

/* Random byte flips of valid messages: decode either succeeds or fails
 * cleanly (ASan/UBSan watch for the rest). */
static void test_random_corruption(void **state)
{
    (void)state;
    struct op_codec *c = op_codec_new();
    struct op_buf b, good;
    op_buf_init(&b), op_buf_init(&good);
    struct op_report in[5] = {sample_trade(), sample_trade(), sample_trade(), sample_trade(),
                              sample_trade()};
    static struct op_report out[16];
    op_codec_encode_reports(&good, in, 5);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    int ok = 0, bad = 0;
    for (int i = 0; i < 100000; i++) {
        op_buf_reset(&b);
        op_buf_append(&b, good.data, good.len);
        for (int f = 0; f < 1 + i % 4; f++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            b.data[x % b.len] = (char)(x >> 32);
        }
        size_t n;
        if (op_codec_decode_reports(c, b.data, b.len - (i % 7 == 0 ? x % b.len : 0), out, 16, &n) ==
            0)
            ok++, assert_true(n <= 16);
        else
            bad++, assert_true(strlen(op_codec_error(c)) > 0);
    }
    assert_true(bad > 0);
    op_buf_release(&b), op_buf_release(&good);
    op_codec_free(c);
}

/* The direct decoders accept, refuse and produce exactly what the msgpack-c
 * references do, on valid messages mutated at random (byte flips,
 * truncations, inserted bytes of every msgpack type). */
static void test_decoders_equal_msgpack(void **state)
{
    (void)state;
    struct op_codec *c1 = op_codec_new(), *c2 = op_codec_new();
    struct op_buf b, reps, order;
    op_buf_init(&b), op_buf_init(&reps), op_buf_init(&order);
    struct op_report in[5] = {sample_trade(), sample_trade(), sample_trade(), sample_trade(),
                              sample_trade()};
    in[1].price = -5, in[2].qty = 300, in[3].report_id = UINT64_MAX, in[4].side = 0;
    op_codec_encode_reports(&reps, in, 5);
    struct op_order_msg m = sample_new();
    op_codec_encode_order(&order, &m);
    static struct op_report o1[16], o2[16];
    uint64_t x = 0x2545f4914f6cdd1dull;
    int agree_ok = 0;
    for (int i = 0; i < 200000; i++) {
        const struct op_buf *good = i % 2 ? &reps : &order;
        op_buf_reset(&b);
        op_buf_append(&b, good->data, good->len);
        for (int f = 0; f < 1 + i % 3; f++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t at = x % b.len;
            if ((x >> 40) % 4 == 0 && b.len < 4000) { /* insert a byte */
                op_buf_append(&b, "", 1);
                memmove(b.data + at + 1, b.data + at, b.len - at - 1);
            }
            b.data[at] = (char)(x >> 32);
        }
        size_t len = b.len - (i % 5 == 0 ? x % b.len : 0);
        int r1, r2;
        if (good == &reps) {
            size_t n1 = 99, n2 = 99;
            memset(o1, 0, sizeof(o1)), memset(o2, 0, sizeof(o2));
            r1 = op_codec_decode_reports(c1, b.data, len, o1, 16, &n1);
            r2 = op_codec_decode_reports_msgpack(c2, b.data, len, o2, 16, &n2);
            assert_int_equal(r1, r2);
            if (r1 == 0) {
                assert_int_equal(n1, n2);
                assert_memory_equal(o1, o2, n1 * sizeof(o1[0]));
                agree_ok++;
            }
        } else {
            struct op_order_msg a, z;
            r1 = op_codec_decode_order(c1, b.data, len, &a);
            r2 = op_codec_decode_order_msgpack(c2, b.data, len, &z);
            assert_int_equal(r1, r2);
            assert_memory_equal(&a, &z, sizeof(a));
            agree_ok += r1 == 0;
        }
    }
    assert_true(agree_ok > 1000); /* mutations that still decode were compared too */
    /* every integer format, with values at its edges, in a u64 (ts), a u8
     * (side) and an i64 (px) field of a cancel (random flips rarely make a
     * signed format holding 0) */
    static const unsigned char fmts[] = {0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2, 0xd3};
    static const int64_t vals[] = {0,  1,   2,   127,  128,  255,       256,
                                   -1, -32, -33, -128, -129, INT64_MAX, INT64_MIN};
    const char *keys[] = {"ts", "side", "px"};
    int decoded = 0;
    for (size_t f = 0; f < sizeof(fmts); f++)
        for (size_t v = 0; v < sizeof(vals) / sizeof(vals[0]); v++)
            for (size_t k = 0; k < 3; k++) {
                /* {"k":2,"id":5,"sym":"A","acct":"a"[,"ts":7], <key>: <value in fmt>} */
                unsigned char msg[64] = {0x85, 0xa1, 'k', 2,    0xa2, 'i', 'd', 5,   0xa3, 's', 'y',
                                         'm',  0xa1, 'A', 0xa4, 'a',  'c', 'c', 't', 0xa1, 'a'};
                size_t n = 21;
                if (k != 0) {
                    static const unsigned char ts[] = {0xa2, 't', 's', 7};
                    memcpy(msg + n, ts, sizeof(ts));
                    n += sizeof(ts);
                    msg[0] = 0x86;
                }
                size_t kl = strlen(keys[k]);
                msg[n++] = (unsigned char)(0xa0 | kl);
                memcpy(msg + n, keys[k], kl);
                n += kl;
                int w = 1 << (fmts[f] & 3);
                msg[n++] = fmts[f];
                for (int j = w - 1; j >= 0; j--)
                    msg[n++] = (unsigned char)((uint64_t)vals[v] >> (8 * j));
                struct op_order_msg a1, a2;
                int r1 = op_codec_decode_order(c1, msg, n, &a1);
                int r2 = op_codec_decode_order_msgpack(c2, msg, n, &a2);
                assert_int_equal(r1, r2);
                assert_memory_equal(&a1, &a2, sizeof(a1));
                decoded += r1 == 0;
            }
    assert_true(decoded > 100);
    op_buf_release(&b), op_buf_release(&reps), op_buf_release(&order);
    op_codec_free(c1), op_codec_free(c2);
}

/* A value at or near a boundary of msgpack's integer forms, or random. */
static uint64_t edge_u64(uint64_t *rng)
{
    static const uint64_t edges[] = {
        0,     1,           127,         128, 255, 256,        65535,
        65536, 4294967295u, 4294967296u, 31,  32,  UINT64_MAX, (UINT64_C(1) << 63)};
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    uint64_t r = *rng;
    return r % 3 ? edges[r % (sizeof(edges) / sizeof(edges[0]))] + (r >> 60) % 3 - 1 : r;
}

/* The fast report and order encoders write exactly msgpack-c's bytes (the reference),
 * for values at every boundary of msgpack's integer and string forms, and
 * negative ones (test_reports_round_trip decodes what it writes). */
static void test_reports_fast_equals_msgpack(void **state)
{
    (void)state;
    static struct op_report in[300];
    uint64_t rng = 88172645463325252u;
    for (int round = 0; round < 200; round++) {
        memset(in, 0, sizeof(in));
        size_t n = round < 100 ? (size_t)round % 20 + 1 : 300;
        for (size_t i = 0; i < n; i++) {
            struct op_report *r = &in[i];
            r->kind = (uint8_t)edge_u64(&rng);
            r->req_kind = (uint8_t)edge_u64(&rng);
            r->reason = (uint8_t)edge_u64(&rng);
            r->status = (uint8_t)edge_u64(&rng);
            r->side = (uint8_t)edge_u64(&rng);
            r->type = (uint8_t)edge_u64(&rng);
            r->tif = (uint8_t)edge_u64(&rng);
            r->post_only = edge_u64(&rng) & 1;
            r->report_id = edge_u64(&rng);
            r->ts_ns = edge_u64(&rng);
            r->order_id = edge_u64(&rng);
            r->maker_order_id = edge_u64(&rng);
            r->maker_status = (uint8_t)edge_u64(&rng);
            int64_t *iv[] = {&r->price,     &r->qty,       &r->filled_qty,      &r->trade_price,
                             &r->trade_qty, &r->maker_qty, &r->maker_filled_qty};
            for (size_t k = 0; k < sizeof(iv) / sizeof(iv[0]); k++) {
                uint64_t u = edge_u64(&rng);
                *iv[k] = (int64_t)(u & 1 ? u : (uint64_t)0 - u);
            }
            /* strings of every length up to each field's bound */
            memset(r->symbol, 'S', edge_u64(&rng) % OP_SYMBOL_MAX);
            memset(r->account, 'a', edge_u64(&rng) % OP_ACCOUNT_MAX);
            memset(r->maker_account, 'm', edge_u64(&rng) % OP_ACCOUNT_MAX);
            memset(r->client_order_id, 'c', edge_u64(&rng) % OP_CLORDID_MAX);
        }
        struct op_buf fast, ref;
        op_buf_init(&fast);
        op_buf_init(&ref);
        assert_int_equal(op_codec_encode_reports(&fast, in, n), 0);
        assert_int_equal(op_codec_encode_reports_msgpack(&ref, in, n), 0);
        assert_int_equal(fast.len, ref.len);
        assert_memory_equal(fast.data, ref.data, ref.len);
        /* and an order of each kind made of the same values */
        for (int k = 1; k <= 3; k++) {
            struct op_order_msg m;
            memset(&m, 0, sizeof(m));
            m.kind = (uint8_t)k;
            m.side = in[0].side, m.type = in[0].type, m.tif = in[0].tif;
            m.post_only = in[0].post_only;
            m.order_id = in[0].order_id, m.ts_ns = in[0].ts_ns;
            m.price = in[0].price, m.qty = in[0].qty;
            memcpy(m.symbol, in[0].symbol, sizeof(m.symbol));
            memcpy(m.account, in[0].account, sizeof(m.account));
            memcpy(m.client_order_id, in[0].client_order_id, sizeof(m.client_order_id));
            op_buf_reset(&fast);
            op_buf_reset(&ref);
            assert_int_equal(op_codec_encode_order(&fast, &m), 0);
            assert_int_equal(op_codec_encode_order_msgpack(&ref, &m), 0);
            assert_int_equal(fast.len, ref.len);
            assert_memory_equal(fast.data, ref.data, ref.len);
        }
        op_buf_release(&fast);
        op_buf_release(&ref);
    }
}

/* An orders entry: the array ingest writes splits into its inputs, each
 * decoding to what was encoded; fields say what it holds. */
static void test_orders_entry(void **state)
{
    (void)state;
    struct op_codec *c = op_codec_new();
    struct op_buf b, f;
    op_buf_init(&b);
    op_buf_init(&f);
    enum { N = 40 };
    struct op_order_msg in[N];
    const struct op_order_msg *p[N];
    for (int i = 0; i < N; i++) {
        in[i] = sample_new();
        in[i].order_id = 1000 + (uint64_t)i;
        if (i % 3 == 1) {
            in[i].kind = OP_MSG_CANCEL;
        } else if (i % 3 == 2) {
            in[i].kind = OP_MSG_AMEND;
            in[i].qty = 7;
        }
        snprintf(in[i].symbol, sizeof(in[i].symbol), "S%d", i % 10);
        p[i] = &in[i];
    }
    assert_int_equal(op_codec_encode_orders(&b, p, N), 0);
    static struct op_span sp[OP_CODEC_ORDERS_MAX];
    assert_int_equal(op_codec_split_orders(c, b.data, b.len, sp, OP_CODEC_ORDERS_MAX), N);
    for (int i = 0; i < N; i++) {
        struct op_order_msg out;
        assert_int_equal(op_codec_decode_order(c, b.data + sp[i].off, sp[i].len, &out), 0);
        assert_int_equal(out.kind, in[i].kind);
        assert_int_equal(out.order_id, in[i].order_id);
        assert_string_equal(out.symbol, in[i].symbol);
    }
    assert_int_equal(op_codec_split_orders(c, b.data, b.len, sp, N - 1), -1); /* above max */
    assert_int_equal(op_codec_orders_fields(&f, p, N), 0);
    const char *t = f.data;
    assert_string_equal(t, "new,cancel,amend");
    t += strlen(t) + 1;
    assert_string_equal(t, "S0,S1,S2,S3,S4,S5,S6,S7,...");
    t += strlen(t) + 1;
    assert_string_equal(t, "40");
    t += strlen(t) + 1;
    assert_string_equal(t, "1000..1039");
    op_buf_reset(&f);
    assert_int_equal(op_codec_orders_fields(&f, p, 1), 0);
    assert_string_equal(f.data + strlen(f.data) + 1 + 3 + 2, "1000"); /* "new\0S0\01\0" */

    /* cancel-alls name no order (id 0) and, for every symbol, no symbol */
    struct op_order_msg ca[3] = {in[0], in[0], in[0]};
    const struct op_order_msg *pc[4] = {&ca[0], &in[1], &ca[1], &ca[2]};
    for (int i = 0; i < 3; i++) {
        ca[i].kind = OP_MSG_CANCEL_ALL;
        ca[i].order_id = 0;
    }
    ca[0].symbol[0] = '\0';
    snprintf(ca[1].symbol, sizeof(ca[1].symbol), "S9");
    static const struct {
        size_t from, n;
        const char *fields; /* type, sym, n, ids with '|' for the NULs */
    } want[] = {
        {0, 1, "cancel_all||1|-"},
        {0, 2, "cancel,cancel_all|S1|2|1001"},
        {1, 3, "cancel,cancel_all|S1,S9,S0|3|1001"},
        {0, 4, "cancel,cancel_all|S1,S9,S0|4|1001"},
    };
    for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
        op_buf_reset(&f);
        assert_int_equal(op_codec_orders_fields(&f, pc + want[w].from, want[w].n), 0);
        for (size_t i = 0; i < f.len; i++)
            if (f.data[i] == '\0')
                f.data[i] = '|';
        f.data[f.len - 1] = '\0'; /* the last NUL */
        if (strcmp(f.data, want[w].fields) != 0)
            fail_msg("cancel-all fields %zu: '%s', want '%s'", w, f.data, want[w].fields);
    }
    op_buf_reset(&f);
    const struct op_order_msg *mix[3] = {&in[0], &ca[0], &in[5]};
    assert_int_equal(op_codec_orders_fields(&f, mix, 3), 0);
    t = f.data;
    for (int i = 0; i < 3; i++)
        t += strlen(t) + 1;
    assert_string_equal(t, "1000..1005"); /* not 1000..0 */

    /* one map: the form before group commit, one input */
    op_buf_reset(&b);
    assert_int_equal(op_codec_encode_order(&b, &in[0]), 0);
    assert_int_equal(op_codec_split_orders(c, b.data, b.len, sp, OP_CODEC_ORDERS_MAX), 1);
    assert_int_equal(sp[0].off, 0);
    assert_int_equal(sp[0].len, b.len);

    /* empty array, too large: refused whole */
    assert_int_equal(op_codec_split_orders(c, "\x90", 1, sp, OP_CODEC_ORDERS_MAX), -1);
    assert_int_equal(op_codec_split_orders(c, "\xdc\x00", 2, sp, OP_CODEC_ORDERS_MAX), -1);
    op_buf_release(&b);
    op_buf_release(&f);
    op_codec_free(c);
}

/* A poisoned element among good ones: a map that is not an order is its
 * own span (its sym readable); broken bytes end the walk, the rest is one
 * span; trailing bytes are one more. */
static void test_orders_entry_poisoned(void **state)
{
    (void)state;
    struct op_codec *c = op_codec_new();
    struct op_buf b;
    op_buf_init(&b);
    struct op_order_msg m = sample_new();
    static struct op_span sp[OP_CODEC_ORDERS_MAX];
    struct op_order_msg out;
    char sym[OP_SYMBOL_MAX];

    op_mp_put_array(&b, 3);
    op_codec_encode_order(&b, &m);
    size_t bad = b.len;
    op_buf_append(&b, "\x82\xa3sym\xa4TSLA\xa1k\xa1x", 14); /* {"sym":"TSLA","k":"x"} */
    op_codec_encode_order(&b, &m);
    assert_int_equal(op_codec_split_orders(c, b.data, b.len, sp, OP_CODEC_ORDERS_MAX), 3);
    assert_int_equal(sp[1].off, bad);
    assert_int_equal(sp[1].len, 14);
    assert_int_equal(op_codec_decode_order(c, b.data + sp[0].off, sp[0].len, &out), 0);
    assert_int_equal(op_codec_decode_order(c, b.data + sp[1].off, sp[1].len, &out), -1);
    assert_int_equal(op_codec_peek_symbol(b.data + sp[1].off, sp[1].len, sym), 0);
    assert_string_equal(sym, "TSLA");
    assert_int_equal(op_codec_decode_order(c, b.data + sp[2].off, sp[2].len, &out), 0);
    assert_int_equal(op_codec_peek_symbol("\x81\xa3sym\x01", 6, sym), -1); /* sym not a string */
    assert_int_equal(op_codec_peek_symbol("\xc1", 1, sym), -1);

    op_buf_reset(&b);
    op_mp_put_array(&b, 3);
    op_codec_encode_order(&b, &m);
    size_t broken = b.len;
    op_buf_append(&b, "\xc1garbage", 8);
    op_codec_encode_order(&b, &m);
    assert_int_equal(op_codec_split_orders(c, b.data, b.len, sp, OP_CODEC_ORDERS_MAX), 2);
    assert_int_equal(sp[1].off, broken);
    assert_int_equal(sp[1].off + sp[1].len, b.len);

    op_buf_reset(&b);
    op_mp_put_array(&b, 1);
    op_codec_encode_order(&b, &m);
    op_buf_append(&b, "\x01\x02", 2);
    assert_int_equal(op_codec_split_orders(c, b.data, b.len, sp, OP_CODEC_ORDERS_MAX), 2);
    assert_int_equal(sp[1].len, 2);
    assert_int_equal(op_codec_split_orders(c, b.data, b.len, sp, 1), 1);
    assert_int_equal(sp[0].off + sp[0].len, b.len); /* no room: the last one takes them */

    /* truncated anywhere: never a span past the end */
    op_buf_reset(&b);
    op_mp_put_array(&b, 2);
    op_codec_encode_order(&b, &m);
    op_codec_encode_order(&b, &m);
    for (size_t len = 0; len < b.len; len++) {
        long n = op_codec_split_orders(c, b.data, len, sp, OP_CODEC_ORDERS_MAX);
        for (long i = 0; i < n; i++)
            assert_true(sp[i].off + sp[i].len <= len);
    }
    op_buf_release(&b);
    op_codec_free(c);
}

/* The largest order ingest can write fits its bound, which makes 4096 of
 * them fit an entry's. */
static void test_order_encoded_max(void **state)
{
    (void)state;
    struct op_buf b;
    op_buf_init(&b);
    struct op_order_msg m = sample_new();
    m.order_id = UINT64_MAX;
    m.ts_ns = UINT64_MAX;
    m.price = INT64_MIN;
    m.qty = INT64_MIN;
    m.post_only = true;
    memset(m.symbol, 'S', OP_SYMBOL_MAX - 1);
    memset(m.account, 'A', sizeof(m.account) - 1);
    memset(m.client_order_id, 'C', sizeof(m.client_order_id) - 1);
    assert_int_equal(op_codec_encode_order(&b, &m), 0);
    assert_true(b.len <= OP_CODEC_ORDER_ENCODED_MAX);
    op_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_round_trip),
        cmocka_unit_test(test_orders_entry),
        cmocka_unit_test(test_orders_entry_poisoned),
        cmocka_unit_test(test_order_encoded_max),
        cmocka_unit_test(test_reports_round_trip),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_wrong_types_and_missing),
        cmocka_unit_test(test_oversized_and_hostile),
        cmocka_unit_test(test_random_corruption),
        cmocka_unit_test(test_reports_fast_equals_msgpack),
        cmocka_unit_test(test_decoders_equal_msgpack),
    };
    return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}

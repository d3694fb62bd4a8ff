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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_round_trip),
        cmocka_unit_test(test_reports_round_trip),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_wrong_types_and_missing),
        cmocka_unit_test(test_oversized_and_hostile),
        cmocka_unit_test(test_random_corruption),
    };
    return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}

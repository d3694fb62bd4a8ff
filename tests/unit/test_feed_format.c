/* Unit tests of feed/format: every report kind as each account sees it, trades, strings, times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "feed/format.h"

/* AAPL, tick 0.01. */
static const struct op_symbol aapl = {.name = "AAPL", .tick = {1, 2}, .lot = 1, .max_qty = 1000000};

/* 2026-12-06T21:00:00.123456789Z */
#define TS 1796590800123456789ULL

static struct op_report base(uint8_t kind)
{
    struct op_report r;
    memset(&r, 0, sizeof(r));
    r.kind = kind;
    r.req_kind = OP_MSG_NEW;
    r.report_id = 17;
    r.ts_ns = TS;
    r.order_id = 42;
    r.side = OP_SIDE_BUY;
    r.type = OP_TYPE_LIMIT;
    r.tif = OP_TIF_GTC;
    r.price = 18725;
    r.qty = 100;
    r.status = OP_STATUS_NEW;
    snprintf(r.symbol, sizeof(r.symbol), "%s", "AAPL");
    snprintf(r.account, sizeof(r.account), "%s", "alice");
    return r;
}

/* Formats r for leg (sym may be NULL) and compares with want. */
static void check(const struct op_report *r, enum feed_leg leg, const struct op_symbol *sym,
                  const char *want)
{
    struct op_buf b;
    op_buf_init(&b);
    assert_int_equal(feed_format_report(&b, r, leg, sym), 0);
    assert_int_equal(op_buf_append(&b, "", 1), 0);
    assert_string_equal(b.data, want);
    op_buf_release(&b);
}

static void test_accepted(void **state)
{
    (void)state;
    struct op_report r = base(OP_REPORT_ACCEPTED);
    snprintf(r.client_order_id, sizeof(r.client_order_id), "%s", "my-1");
    check(&r, FEED_LEG_ORDER, &aapl,
          "{\"kind\":\"accepted\",\"report_id\":\"17\",\"ts\":\"2026-12-06T21:00:00.123456789Z\","
          "\"order_id\":\"42\",\"client_order_id\":\"my-1\",\"symbol\":\"AAPL\",\"side\":\"buy\","
          "\"type\":\"limit\",\"tif\":\"GTC\",\"price\":\"187.25\",\"qty\":100,\"filled_qty\":0,"
          "\"status\":\"NEW\",\"request\":\"new\"}");
    /* a symbol the feed does not list: prices as ticks */
    r.client_order_id[0] = '\0';
    check(&r, FEED_LEG_ORDER, NULL,
          "{\"kind\":\"accepted\",\"report_id\":\"17\",\"ts\":\"2026-12-06T21:00:00.123456789Z\","
          "\"order_id\":\"42\",\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\","
          "\"tif\":\"GTC\",\"price_ticks\":18725,\"qty\":100,\"filled_qty\":0,\"status\":\"NEW\","
          "\"request\":\"new\"}");
}

static void test_trade_both_legs(void **state)
{
    (void)state;
    struct op_report r = base(OP_REPORT_TRADE);
    r.filled_qty = 40;
    r.status = OP_STATUS_PARTIALLY_FILLED;
    r.maker_order_id = 7;
    r.trade_price = 18720;
    r.trade_qty = 40;
    r.maker_qty = 40;
    r.maker_filled_qty = 40;
    r.maker_status = OP_STATUS_FILLED;
    snprintf(r.maker_account, sizeof(r.maker_account), "%s", "bob");
    assert_string_equal(feed_leg_account(&r, FEED_LEG_ORDER), "alice");
    assert_string_equal(feed_leg_account(&r, FEED_LEG_MAKER), "bob");
    check(&r, FEED_LEG_ORDER, &aapl,
          "{\"kind\":\"trade\",\"report_id\":\"17\",\"ts\":\"2026-12-06T21:00:00.123456789Z\","
          "\"order_id\":\"42\",\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\","
          "\"tif\":\"GTC\",\"price\":\"187.25\",\"qty\":100,\"filled_qty\":40,"
          "\"status\":\"PARTIALLY_FILLED\",\"liquidity\":\"taker\",\"fill_id\":\"17\","
          "\"trade_price\":\"187.20\",\"trade_qty\":40,\"request\":\"new\"}");
    /* the maker's leg: its own order, opposite side, no taker account anywhere */
    check(&r, FEED_LEG_MAKER, &aapl,
          "{\"kind\":\"trade\",\"report_id\":\"17\",\"ts\":\"2026-12-06T21:00:00.123456789Z\","
          "\"order_id\":\"7\",\"symbol\":\"AAPL\",\"side\":\"sell\",\"liquidity\":\"maker\","
          "\"price\":\"187.20\",\"qty\":40,\"filled_qty\":40,\"status\":\"FILLED\","
          "\"fill_id\":\"17\",\"trade_price\":\"187.20\",\"trade_qty\":40,\"request\":\"new\"}");
}

static void test_cancel_kinds(void **state)
{
    (void)state;
    struct op_report r = base(OP_REPORT_CANCELLED);
    r.req_kind = OP_MSG_TICK;
    r.reason = OP_REASON_EXPIRED;
    r.status = OP_STATUS_CANCELLED;
    r.tif = OP_TIF_GTD;
    r.expire_ns = TS;
    check(&r, FEED_LEG_ORDER, &aapl,
          "{\"kind\":\"cancelled\",\"report_id\":\"17\",\"ts\":\"2026-12-06T21:00:00.123456789Z\","
          "\"order_id\":\"42\",\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\","
          "\"tif\":\"GTD\",\"price\":\"187.25\",\"expire_at\":\"2026-12-06T21:00:00.123456789Z\","
          "\"qty\":100,\"filled_qty\":0,\"status\":\"CANCELLED\",\"reason\":\"EXPIRED\","
          "\"request\":\"tick\"}");
    struct op_report d = base(OP_REPORT_CANCEL_ALL_DONE);
    d.order_id = 0;
    d.qty = 3;
    d.reason = OP_REASON_DEAD_MAN;
    d.req_kind = OP_MSG_TICK;
    d.symbol[0] = '\0';
    check(&d, FEED_LEG_ORDER, NULL,
          "{\"kind\":\"cancel_all_done\",\"report_id\":\"17\",\"ts\":\"2026-12-06T21:00:00."
          "123456789Z\","
          "\"symbol\":\"\",\"count\":3,\"reason\":\"DEAD_MAN\",\"request\":\"tick\"}");
    struct op_report m = base(OP_REPORT_DEAD_MAN);
    m.qty = 5000;
    m.req_kind = OP_MSG_CANCEL_ALL_AFTER;
    m.symbol[0] = '\0';
    check(&m, FEED_LEG_ORDER, NULL,
          "{\"kind\":\"dead_man\",\"report_id\":\"17\",\"ts\":\"2026-12-06T21:00:00.123456789Z\","
          "\"symbol\":\"\",\"timeout_ms\":5000,\"request\":\"cancel_all_after\"}");
    /* a tick concerns nobody; a non-trade has no maker leg */
    struct op_report t = base(OP_REPORT_TICK);
    assert_string_equal(feed_leg_account(&t, FEED_LEG_ORDER), "");
    assert_string_equal(feed_leg_account(&r, FEED_LEG_MAKER), "");
}

static void test_stop(void **state)
{
    (void)state;
    struct op_report r = base(OP_REPORT_ACCEPTED);
    r.type = OP_TYPE_STOP_LIMIT;
    r.stop_price = 18800;
    r.status = OP_STATUS_PENDING_TRIGGER;
    check(&r, FEED_LEG_ORDER, &aapl,
          "{\"kind\":\"accepted\",\"report_id\":\"17\",\"ts\":\"2026-12-06T21:00:00.123456789Z\","
          "\"order_id\":\"42\",\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"stop_limit\","
          "\"tif\":\"GTC\",\"price\":\"187.25\",\"stop_price\":\"188.00\",\"qty\":100,"
          "\"filled_qty\":0,\"status\":\"PENDING_TRIGGER\",\"request\":\"new\"}");
}

static void test_public_trade(void **state)
{
    (void)state;
    struct op_report r = base(OP_REPORT_TRADE);
    r.side = OP_SIDE_SELL;
    r.trade_price = 18720;
    r.trade_qty = 40;
    snprintf(r.maker_account, sizeof(r.maker_account), "%s", "bob");
    struct op_buf b;
    op_buf_init(&b);
    assert_int_equal(feed_format_trade(&b, &r, &aapl), 0);
    op_buf_append(&b, "", 1);
    assert_string_equal(b.data,
                        "{\"fill_id\":\"17\",\"price\":\"187.20\",\"qty\":40,"
                        "\"taker_side\":\"sell\",\"ts\":\"2026-12-06T21:00:00.123456789Z\"}");
    assert_null(strstr(b.data, "alice"));
    assert_null(strstr(b.data, "bob"));
    op_buf_release(&b);
}

static void test_strings_and_positions(void **state)
{
    (void)state;
    struct op_buf b;
    op_buf_init(&b);
    /* quotes, backslash, control and non-ASCII bytes never reach the wire raw */
    assert_int_equal(feed_json_str(&b, "a\"b\\c\n\x01\xc3\xa9", 9), 0);
    op_buf_append(&b, "", 1);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\u000a\\u0001\\u00c3\\u00a9\"");
    op_buf_reset(&b);
    assert_int_equal(feed_format_pos_part(&b, 3, (struct op_sid){1796590800123ULL, 7}), 0);
    op_buf_append(&b, "", 1);
    assert_string_equal(b.data, "3:1796590800123-7");
    op_buf_release(&b);
    char t[48];
    feed_format_time(0, t, sizeof(t));
    assert_string_equal(t, "1970-01-01T00:00:00.000000000Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),     cmocka_unit_test(test_trade_both_legs),
        cmocka_unit_test(test_cancel_kinds), cmocka_unit_test(test_stop),
        cmocka_unit_test(test_public_trade), cmocka_unit_test(test_strings_and_positions),
    };
    return cmocka_run_group_tests_name("feed_format", tests, NULL, NULL);
}

/* Unit tests of recorder/batch: tables of execution reports in, COPY rows out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "recorder/batch.h"
#include "tests/unit/copybin_text.h"
#include "shared/buf.h"
#include "shared/codec.h"
#include "shared/symbols.h"

/*
 * Each case adds stream entries of reports (encoded with the codec, as the
 * matcher writes them) to a batch and compares rec_batch_build's COPY rows,
 * read back from the binary format as the text PostgreSQL prints
 * (copybin_text.h), row for row. Columns: REC_FILLS_COLUMNS and
 * REC_ORDERS_COLUMNS.
 *
 * Times: T(k) is k microseconds after 2023-11-14 22:13:20 UTC, so its text is
 * "2023-11-14 22:13:20.00000k+00" for k < 10.
 */
#define T(k) (UINT64_C(1700000000000000000) + (uint64_t)(k)*1000u)
#define TS(k) "2023-11-14 22:13:20.00000" #k "+00"
#define N "\\N"

static struct op_symtab syms; /* AAPL MSFT GOOG AMZN TSLA, tick 0.01 */

/* A report of alice's buy limit GTC order `order_id` of 100 AAPL at 187.25,
 * with the given kind, report_id and time; status NEW. */
static struct op_report rep(int kind, uint64_t report_id, uint64_t order_id, int t)
{
    struct op_report r;
    memset(&r, 0, sizeof(r));
    r.kind = (uint8_t)kind;
    r.req_kind = OP_MSG_NEW;
    r.status = OP_STATUS_NEW;
    r.side = OP_SIDE_BUY, r.type = OP_TYPE_LIMIT, r.tif = OP_TIF_GTC;
    r.report_id = report_id;
    r.ts_ns = T(t);
    r.order_id = order_id;
    r.price = 18725, r.qty = 100;
    snprintf(r.symbol, sizeof(r.symbol), "%s", "AAPL");
    snprintf(r.account, sizeof(r.account), "%s", "alice");
    return r;
}

/* A trade of taker order_id (alice, buy) against maker `maker` (bob) of qty
 * at 187.00: the taker is PARTIALLY_FILLED with `qty` filled, the maker
 * FILLED. */
static struct op_report trade(uint64_t report_id, uint64_t order_id, uint64_t maker, int64_t qty,
                              int t)
{
    struct op_report r = rep(OP_REPORT_TRADE, report_id, order_id, t);
    r.status = OP_STATUS_PARTIALLY_FILLED;
    r.filled_qty = qty;
    r.maker_order_id = maker;
    r.trade_price = 18700, r.trade_qty = qty;
    r.maker_qty = qty, r.maker_filled_qty = qty, r.maker_status = OP_STATUS_FILLED;
    snprintf(r.maker_account, sizeof(r.maker_account), "%s", "bob");
    return r;
}

/* A rejected new order (req NEW, status REJECTED) for `reason`. */
static struct op_report rejected(uint64_t report_id, uint64_t order_id, int reason, int t)
{
    struct op_report r = rep(OP_REPORT_REJECTED, report_id, order_id, t);
    r.status = OP_STATUS_REJECTED;
    r.reason = (uint8_t)reason;
    return r;
}

/* Adds one entry holding reports r[0..n) to b, with id "1-<seq>" on shard 0. */
static void add(struct rec_batch *b, const struct op_report *r, size_t n)
{
    struct op_buf m;
    char id[32];
    op_buf_init(&m);
    assert_int_equal(op_codec_encode_reports(&m, r, n), 0);
    int len = snprintf(id, sizeof(id), "1-%zu", b->nentries);
    assert_int_equal(rec_batch_add(b, 0, id, (size_t)len, m.data, m.len), 0);
    op_buf_release(&m);
}

/* Reads the binary COPY tuples in got (columns of the given types,
 * copybin_text.h) back as COPY text and compares it with want. */
static void expect_text(const struct op_buf *got, const char *types, const char *want)
{
    char text[4096];
    int n = copybin_text(got->data ? got->data : "", got->len, types, text, sizeof(text));
    assert_true(n >= 0);
    assert_string_equal(text, want);
}

/* Builds every report of b and compares the three COPY texts. */
static void expect_rows(struct rec_batch *b, const char *fills, const char *new_orders,
                        const char *upd_orders)
{
    struct rec_copy c;
    rec_copy_init(&c);
    assert_int_equal(rec_batch_build(b, 0, b->nreports, &c), 0);
    expect_text(&c.fills, CBT_FILLS, fills);
    expect_text(&c.new_orders, CBT_ORDERS, new_orders);
    expect_text(&c.upd_orders, CBT_ORDERS, upd_orders);
    rec_copy_release(&c);
}

static int setup(void **state)
{
    static struct rec_batch b;
    assert_int_equal(rec_batch_init(&b, &syms), 0);
    *state = &b;
    return 0;
}

static int teardown(void **state)
{
    rec_batch_release(*state);
    return 0;
}

/* Several reports of one order, in several entries and out of report_id
 * order, make one row: the state of the highest report_id (the CANCELLED,
 * with its reason), the description and created_at of the ACCEPTED. The
 * trade writes a fills row and the maker's state (no description: it is not
 * in the report; its price is the trade's, the maker's own), which goes to
 * the update list (its ACCEPTED is not here). */
static void test_merge_one_order(void **state)
{
    struct rec_batch *b = *state;
    struct op_report acc = rep(OP_REPORT_ACCEPTED, 10, 7, 1);
    snprintf(acc.client_order_id, sizeof(acc.client_order_id), "%s", "c-1");
    /* like the engine, every report of the order carries its description */
    struct op_report cxl = rep(OP_REPORT_CANCELLED, 14, 7, 4);
    cxl.status = OP_STATUS_CANCELLED, cxl.filled_qty = 40, cxl.reason = OP_REASON_USER_CANCEL;
    cxl.client_order_id[0] = 'c', cxl.client_order_id[1] = '-', cxl.client_order_id[2] = '1';
    struct op_report tr = trade(12, 7, 5, 40, 2);
    tr.client_order_id[0] = 'c', tr.client_order_id[1] = '-', tr.client_order_id[2] = '1';
    add(b, &cxl, 1); /* the latest state first */
    struct op_report two[] = {acc, tr};
    add(b, two, 2);
    assert_int_equal(b->nentries, 2);
    assert_int_equal(b->nreports, 3);
    assert_int_equal(b->npoison, 0);
    expect_rows(
        b, "12\tAAPL\t187.00\t40\t5\t7\tbob\talice\tbuy\t" TS(2) "\n",
        "7\tc-1\talice\tAAPL\tbuy\tlimit\tGTC\tf\t187.25\t100\t40\tCANCELLED\tUSER_CANCEL\t" TS(
            1) "\t" TS(4) "\t14\n",
        "5\t" N "\tbob\tAAPL\t" N "\t" N "\t" N "\t" N "\t187.00\t40\t40\tFILLED\t" N "\t" N
        "\t" TS(2) "\t12\n");
}

/* A maker's TRADE and its own ACCEPTED in one range: the state is the
 * trade's maker side (higher report_id), the description and created_at
 * come from the ACCEPTED (the trade carries the taker's description, not
 * the maker's), and the row is new. */
static void test_maker_row_with_its_accept(void **state)
{
    struct rec_batch *b = *state;
    struct op_report r[] = {trade(21, 8, 6, 30, 3), rep(OP_REPORT_ACCEPTED, 20, 8, 2),
                            rep(OP_REPORT_ACCEPTED, 3, 6, 1)};
    r[2].side = OP_SIDE_SELL, r[2].price = 18700, r[2].qty = 30;
    snprintf(r[2].account, sizeof(r[2].account), "%s", "bob");
    add(b, r, 3);
    expect_rows(
        b, "21\tAAPL\t187.00\t30\t6\t8\tbob\talice\tbuy\t" TS(3) "\n",
        "6\t" N "\tbob\tAAPL\tsell\tlimit\tGTC\tf\t187.00\t30\t30\tFILLED\t" N "\t" TS(1) "\t" TS(
            3) "\t21\n"
               "8\t" N "\talice\tAAPL\tbuy\tlimit\tGTC\tf\t187.25\t100\t30\tPARTIALLY_FILLED\t" N
               "\t" TS(2) "\t" TS(3) "\t21\n",
        "");
}

/* An AMENDED alone updates the state only (no created_at: update list);
 * rows come out in order_id order whatever the report order. */
static void test_update_list_sorted(void **state)
{
    struct rec_batch *b = *state;
    struct op_report am = rep(OP_REPORT_AMENDED, 31, 40, 5);
    am.qty = 60;
    struct op_report cx = rep(OP_REPORT_CANCELLED, 30, 9, 4);
    cx.status = OP_STATUS_CANCELLED, cx.reason = OP_REASON_IOC_REMAINDER, cx.tif = OP_TIF_IOC;
    struct op_report r[] = {am, cx};
    add(b, r, 2);
    expect_rows(b, "", "",
                "9\t" N
                "\talice\tAAPL\tbuy\tlimit\tIOC\tf\t187.25\t100\t0\tCANCELLED\tIOC_REMAINDER\t" N
                "\t" TS(4) "\t30\n"
                           "40\t" N "\talice\tAAPL\tbuy\tlimit\tGTC\tf\t187.25\t60\t0\tNEW\t" N
                           "\t" N "\t" TS(5) "\t31\n");
}

/* A redelivered entry (the same reports twice in one batch) gives one fills
 * row and one row per order. */
static void test_trade_redelivered(void **state)
{
    struct rec_batch *b = *state;
    struct op_report r[] = {rep(OP_REPORT_ACCEPTED, 50, 11, 1), trade(51, 11, 10, 5, 2)};
    add(b, r, 2);
    add(b, r, 2);
    struct rec_copy c;
    rec_copy_init(&c);
    assert_int_equal(rec_batch_build(b, 0, b->nreports, &c), 0);
    assert_int_equal(c.nfills, 1);
    assert_int_equal(c.nnew, 1);
    assert_int_equal(c.nupd, 1);
    expect_text(&c.fills, CBT_FILLS, "51\tAAPL\t187.00\t5\t10\t11\tbob\talice\tbuy\t" TS(2) "\n");
    rec_copy_release(&c);
}

/* Poison entries: undecodable bytes, no `m` field, a deleted entry, an
 * unknown report kind (the codec refuses the whole entry). Each is kept
 * with its reason and no reports; the good entry beside them is built. */
static void test_poison_entries(void **state)
{
    struct rec_batch *b = *state;
    assert_int_equal(rec_batch_add(b, 1, "2-0", 3, "\xc1 not msgpack", 13), 0);
    assert_int_equal(rec_batch_add(b, 1, "2-1", 3, NULL, 0), 0);
    assert_int_equal(rec_batch_add_poison(b, 2, "3-0", 3, "entry deleted"), 0);
    struct op_report odd = rep(OP_REPORT_ACCEPTED, 60, 12, 1);
    odd.kind = OP_REPORT_KIND_MAX + 1; /* 11 since issue 15 (9 was unknown before) */
    add(b, &odd, 1);
    struct op_report ok = rep(OP_REPORT_ACCEPTED, 61, 13, 2);
    add(b, &ok, 1);
    assert_int_equal(b->nentries, 5);
    assert_int_equal(b->npoison, 4);
    assert_int_equal(b->nreports, 1);
    assert_non_null(strstr(b->entries[0].err, "cannot decode reports"));
    assert_string_equal(b->entries[1].err, "entry has no 'm' field");
    assert_string_equal(b->entries[2].err, "entry deleted");
    assert_string_equal(b->entries[3].err, "cannot decode reports: unknown report kind");
    assert_string_equal(b->entries[4].err, "");
    assert_int_equal(b->entries[0].n, 0);
    assert_int_equal(b->entries[0].has_raw, 1);
    assert_int_equal(b->entries[1].has_raw, 0);
    expect_rows(b, "",
                "13\t" N "\talice\tAAPL\tbuy\tlimit\tGTC\tf\t187.25\t100\t0\tNEW\t" N
                "\t" TS(2) "\t" TS(2) "\t61\n",
                "");
}

/* A report of an unlisted symbol is set aside alone (bad[], never built)
 * while its entry's other reports are recorded; a REJECTED one of an
 * unlisted symbol is recorded, with a NULL price. */
static void test_bad_reports(void **state)
{
    struct rec_batch *b = *state;
    struct op_report r[] = {rep(OP_REPORT_ACCEPTED, 70, 14, 1), rep(OP_REPORT_ACCEPTED, 71, 15, 2),
                            rejected(72, 16, OP_REASON_UNKNOWN_SYMBOL, 3)};
    snprintf(r[0].symbol, sizeof(r[0].symbol), "%s", "ZZZZ");
    snprintf(r[2].symbol, sizeof(r[2].symbol), "%s", "ZZZZ");
    add(b, r, 3);
    assert_int_equal(b->nreports, 3);
    assert_int_equal(b->nbad, 1);
    assert_int_equal(b->bad[0].report, 0);
    assert_string_equal(b->bad[0].err, "unknown symbol 'ZZZZ' (not in SYMBOLS_FILE)");
    assert_int_equal(b->rep_skip[0], 1);
    assert_int_equal(b->npoison, 1);
    assert_string_equal(b->entries[0].err, "");
    expect_rows(b, "",
                "15\t" N "\talice\tAAPL\tbuy\tlimit\tGTC\tf\t187.25\t100\t0\tNEW\t" N "\t" TS(
                    2) "\t" TS(2) "\t71\n"
                                  "16\t" N "\talice\tZZZZ\tbuy\tlimit\tGTC\tf\t" N
                                  "\t100\t0\tREJECTED\tUNKNOWN_SYMBOL\t" TS(3) "\t" TS(3) "\t72\n",
                "");
}

/* The extremes of every column: the largest price (INT64_MAX ticks) and
 * quantity, the largest ids, a 36-character client_order_id; a price of 0
 * and a negative one are written as such (the table's CHECK refuses them
 * and the report is bisected out), never as a negative zero; the maker's
 * row takes its price from its last trade (NULL when not positive, as any
 * price). */
static void test_extreme_values(void **state)
{
    struct rec_batch *b = *state;
    const uint64_t top = (uint64_t)INT64_MAX;
    struct op_report acc = rep(OP_REPORT_ACCEPTED, top - 1, top, 1);
    acc.price = INT64_MAX, acc.qty = INT64_MAX;
    snprintf(acc.client_order_id, sizeof(acc.client_order_id), "%s",
             "0123456789abcdefghijklmnopqrstuvwxyz");
    struct op_report tr = trade(top, top, top - 2, INT64_MAX, 2);
    tr.trade_price = INT64_MAX, tr.qty = INT64_MAX, tr.filled_qty = INT64_MAX;
    tr.price = INT64_MAX; /* the taker's price, in every report about it */
    tr.status = OP_STATUS_FILLED;
    tr.maker_qty = INT64_MAX, tr.maker_filled_qty = INT64_MAX;
    struct op_report zero = trade(5, 3, 4, 1, 3), neg = trade(6, 3, 4, 1, 3);
    zero.trade_price = 0, neg.trade_price = -1;
    struct op_report r[] = {acc, tr, zero, neg};
    add(b, r, 4);
    assert_int_equal(b->nbad, 0);
    expect_rows(
        b,
        "5\tAAPL\t0.00\t1\t4\t3\tbob\talice\tbuy\t" TS(
            3) "\n"
               "6\tAAPL\t-0.01\t1\t4\t3\tbob\talice\tbuy\t" TS(
                   3) "\n"
                      "9223372036854775807\tAAPL\t92233720368547758.07\t9223372036854775807\t"
                      "9223372036854775805\t9223372036854775807\tbob\talice\tbuy\t" TS(2) "\n",
        "9223372036854775807\t0123456789abcdefghijklmnopqrstuvwxyz\talice\tAAPL\tbuy\t"
        "limit\tGTC\tf\t92233720368547758.07\t9223372036854775807\t9223372036854775807\t"
        "FILLED\t" N "\t" TS(1) "\t" TS(2) "\t9223372036854775807\n",
        "3\t" N "\talice\tAAPL\tbuy\tlimit\tGTC\tf\t187.25\t100\t1\tPARTIALLY_FILLED\t" N "\t" N
        "\t" TS(
            3) "\t6\n"
               "4\t" N "\tbob\tAAPL\t" N "\t" N "\t" N "\t" N "\t" N "\t1\t1\tFILLED\t" N "\t" N
               "\t" TS(
                   3) "\t6\n"
                      "9223372036854775805\t" N "\tbob\tAAPL\t" N "\t" N "\t" N "\t" N
                      "\t92233720368547758.07\t9223372036854775807\t9223372036854775807\tFILLED\t" N
                      "\t" N "\t" TS(2) "\t9223372036854775807\n");
}

/* An id above 2^63-1 cannot be a bigint: the binary COPY would write it
 * wrapped, so the report is set aside alone (a dead letter) — a trade's
 * report_id (fill_id), its maker_order_id, an order_id — while the entry's
 * other reports are recorded. */
static void test_ids_beyond_bigint(void **state)
{
    struct rec_batch *b = *state;
    const uint64_t over = (uint64_t)INT64_MAX + 1;
    struct op_report r[] = {trade(over, 20, 21, 1, 1), trade(80, 20, over, 1, 1),
                            rep(OP_REPORT_CANCELLED, 81, UINT64_MAX, 1),
                            rep(OP_REPORT_ACCEPTED, 82, 22, 1)};
    add(b, r, 4);
    assert_int_equal(b->nbad, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(b->bad[i].report, i);
        assert_string_equal(b->bad[i].err,
                            "an id of the report is above 2^63-1 (out of range for bigint)");
    }
    expect_rows(b, "",
                "22\t" N "\talice\tAAPL\tbuy\tlimit\tGTC\tf\t187.25\t100\t0\tNEW\t" N
                "\t" TS(1) "\t" TS(1) "\t82\n",
                "");
}

/* A rejected new order is always recordable: what the table cannot hold is
 * NULL — qty 0, a side outside the enum, a client_order_id breaking the
 * grammar. The same side on an ACCEPTED is set aside alone (a dead letter
 * naming the CHECK it replaces since migration 006), and so is any other
 * report with a type, tif, status or maker status outside its enum. */
static void test_rejected_unrepresentable(void **state)
{
    struct rec_batch *b = *state;
    struct op_report q = rejected(80, 17, OP_REASON_BAD_QTY, 1);
    q.qty = 0;
    struct op_report s = rejected(81, 18, OP_REASON_BAD_SIDE, 2);
    s.side = 9;
    snprintf(s.client_order_id, sizeof(s.client_order_id), "%s", "bad id!");
    struct op_report a = rep(OP_REPORT_ACCEPTED, 82, 19, 3);
    a.side = 9;
    struct op_report ty = rep(OP_REPORT_CANCELLED, 83, 20, 4);
    ty.type = 7;
    struct op_report tf = rep(OP_REPORT_AMENDED, 84, 21, 5);
    tf.tif = 0;
    struct op_report st = rep(OP_REPORT_ACCEPTED, 85, 22, 6);
    st.status = 99;
    struct op_report ms = trade(86, 23, 24, 1, 1);
    ms.maker_status = 0;
    struct op_report r[] = {q, s, a, ty, tf, st, ms};
    add(b, r, 7);
    static const char *const refusals[] = {
        "side 9 is not buy or sell (orders_side_check)",
        "type 7 is not an order type (orders_type_check)",
        "tif 0 is not a time in force (orders_tif_check)",
        "status 99 is not an order status (orders_status_check)",
        "maker status 0 is not an order status (orders_status_check)",
    };
    assert_int_equal(b->nbad, 5);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(b->bad[i].report, i + 2);
        assert_string_equal(b->bad[i].err, refusals[i]);
    }
    expect_rows(
        b, "",
        "17\t" N "\talice\tAAPL\tbuy\tlimit\tGTC\tf\t187.25\t" N
        "\t0\tREJECTED\tBAD_QTY\t" TS(1) "\t" TS(
            1) "\t80\n"
               "18\t" N "\talice\tAAPL\t" N
               "\tlimit\tGTC\tf\t187.25\t100\t0\tREJECTED\tBAD_SIDE\t" TS(2) "\t" TS(2) "\t81\n",
        "");
}

/* Rejects that write nothing, counted as ignored: an order id outside
 * 1 … 2^63-1 (no row can hold it), a duplicate order id (the id belongs to
 * another order), a rejected cancel or amend (the order is unchanged). */
static void test_ignored_rejects(void **state)
{
    struct rec_batch *b = *state;
    struct op_report zero = rejected(90, 0, OP_REASON_MALFORMED, 1);
    struct op_report big = rejected(91, UINT64_C(9223372036854775808), OP_REASON_MALFORMED, 2);
    struct op_report dup = rejected(92, 20, OP_REASON_DUPLICATE_ID, 3);
    struct op_report cxl = rejected(93, 21, OP_REASON_UNKNOWN_ORDER, 4);
    cxl.req_kind = OP_MSG_CANCEL;
    struct op_report amd = rejected(94, 22, OP_REASON_BAD_AMEND, 5);
    amd.req_kind = OP_MSG_AMEND;
    struct op_report r[] = {zero, big, dup, cxl, amd};
    add(b, r, 5);
    assert_int_equal(b->ignored_rejects, 5);
    assert_int_equal(b->npoison, 0);
    assert_int_equal(b->rows, 1); /* an entry of ignored reports still counts one */
    expect_rows(b, "", "", "");
}

/* Bisection builds halves of the reports: an order split across them gets
 * its description and created_at from the half with its ACCEPTED (new
 * list) and its later state from the other (update list). */
static void test_build_ranges(void **state)
{
    struct rec_batch *b = *state;
    struct op_report cx = rep(OP_REPORT_CANCELLED, 101, 23, 2);
    cx.status = OP_STATUS_CANCELLED, cx.reason = OP_REASON_USER_CANCEL;
    struct op_report r[] = {rep(OP_REPORT_ACCEPTED, 100, 23, 1), cx};
    add(b, r, 2);
    struct rec_copy c;
    rec_copy_init(&c);
    assert_int_equal(rec_batch_build(b, 0, 1, &c), 0);
    expect_text(&c.new_orders, CBT_ORDERS,
                "23\t" N "\talice\tAAPL\tbuy\tlimit\tGTC\tf\t187.25\t100\t0\tNEW\t" N
                "\t" TS(1) "\t" TS(1) "\t100\n");
    expect_text(&c.upd_orders, CBT_ORDERS, "");
    assert_int_equal(rec_batch_build(b, 1, 2, &c), 0);
    expect_text(&c.new_orders, CBT_ORDERS, "");
    expect_text(&c.upd_orders, CBT_ORDERS,
                "23\t" N
                "\talice\tAAPL\tbuy\tlimit\tGTC\tf\t187.25\t100\t0\tCANCELLED\tUSER_CANCEL\t" N
                "\t" TS(2) "\t101\n");
    rec_copy_release(&c);
}

/* A REPLACED report (issue 14) carries the order's new price and qty: the
 * row takes them as state, with the version, like an AMENDED's qty. Here
 * the order is replaced (price 187.25 -> 188.00, qty 100 -> 150), trades as
 * a taker at the maker's 187.90, then is reduced to 120 (an AMENDED, which
 * keeps the new price); the entries arrive out of order, and the row is
 * the newest state with the replaced price. The REPLACED alone (a bisected
 * range) writes its own price and qty at its version. */
static void test_replaced_keeps_newest(void **state)
{
    struct rec_batch *b = *state;
    struct op_report acc = rep(OP_REPORT_ACCEPTED, 40, 30, 1);
    struct op_report rp = rep(OP_REPORT_REPLACED, 41, 30, 2);
    rp.req_kind = OP_MSG_AMEND, rp.price = 18800, rp.qty = 150;
    struct op_report tr = trade(42, 30, 31, 20, 3);
    tr.req_kind = OP_MSG_AMEND, tr.price = 18800, tr.qty = 150, tr.trade_price = 18790;
    struct op_report am = rep(OP_REPORT_AMENDED, 43, 30, 4);
    am.req_kind = OP_MSG_AMEND, am.price = 18800, am.qty = 120, am.filled_qty = 20;
    am.status = OP_STATUS_PARTIALLY_FILLED;
    add(b, &am, 1); /* the latest state first */
    struct op_report three[] = {acc, rp, tr};
    add(b, three, 3);
    assert_int_equal(b->npoison, 0);
    expect_rows(b, "42\tAAPL\t187.90\t20\t31\t30\tbob\talice\tbuy\t" TS(3) "\n",
                "30\t" N "\talice\tAAPL\tbuy\tlimit\tGTC\tf\t188.00\t120\t20\tPARTIALLY_FILLED\t" N
                "\t" TS(1) "\t" TS(4) "\t43\n",
                "31\t" N "\tbob\tAAPL\t" N "\t" N "\t" N "\t" N "\t187.90\t20\t20\tFILLED\t" N
                "\t" N "\t" TS(3) "\t42\n");
    struct rec_copy c;
    rec_copy_init(&c);
    assert_int_equal(rec_batch_build(b, 2, 3, &c), 0); /* the REPLACED alone */
    expect_text(&c.new_orders, CBT_ORDERS, "");
    expect_text(&c.upd_orders, CBT_ORDERS,
                "30\t" N "\talice\tAAPL\tbuy\tlimit\tGTC\tf\t188.00\t150\t0\tNEW\t" N "\t" N
                "\t" TS(2) "\t41\n");
    rec_copy_release(&c);
}

/* Out-of-order delivery of a REPLACED and a later TRADE of the replaced
 * order as a maker (two recorders may commit them in either order): bob's
 * sell 33 is replaced (price 187.60, qty 80) at version 51, then alice's
 * buy 34 takes 30 from it at version 52. The TRADE carries no description
 * of the maker, but its price is the maker's new one: the row of each range
 * holds the new price, so whichever the upsert applies last, the version
 * decides and the price cannot go back to the one before the replace. In
 * one range, TRADE first: the trade's state, the REPLACED's description. */
static void test_replaced_then_maker_trade_out_of_order(void **state)
{
    struct rec_batch *b = *state;
    struct op_report rp = rep(OP_REPORT_REPLACED, 51, 33, 2);
    rp.req_kind = OP_MSG_AMEND, rp.side = OP_SIDE_SELL, rp.price = 18760, rp.qty = 80;
    snprintf(rp.account, sizeof(rp.account), "%s", "bob");
    struct op_report tr = trade(52, 34, 33, 30, 3);
    tr.price = 18760, tr.trade_price = 18760;
    tr.maker_qty = 80, tr.maker_status = OP_STATUS_PARTIALLY_FILLED;
    add(b, &tr, 1);
    add(b, &rp, 1);
    const char *fill = "52\tAAPL\t187.60\t30\t33\t34\tbob\talice\tbuy\t" TS(3) "\n";
    struct rec_copy c;
    rec_copy_init(&c);
    assert_int_equal(rec_batch_build(b, 0, 1, &c), 0); /* the TRADE's range */
    expect_text(&c.fills, CBT_FILLS, fill);
    expect_text(&c.upd_orders, CBT_ORDERS,
                "33\t" N "\tbob\tAAPL\t" N "\t" N "\t" N "\t" N "\t187.60\t80\t30\t"
                "PARTIALLY_FILLED\t" N "\t" N
                "\t" TS(3) "\t52\n"
                           "34\t" N "\talice\tAAPL\tbuy\tlimit\tGTC\tf\t187.60\t100\t30\t"
                           "PARTIALLY_FILLED\t" N "\t" N "\t" TS(3) "\t52\n");
    assert_int_equal(rec_batch_build(b, 1, 2, &c), 0); /* the REPLACED's range */
    expect_text(&c.upd_orders, CBT_ORDERS,
                "33\t" N "\tbob\tAAPL\tsell\tlimit\tGTC\tf\t187.60\t80\t0\tNEW\t" N "\t" N
                "\t" TS(2) "\t51\n");
    rec_copy_release(&c);
    expect_rows(
        b, fill, "",
        "33\t" N "\tbob\tAAPL\tsell\tlimit\tGTC\tf\t187.60\t80\t30\tPARTIALLY_FILLED\t" N "\t" N
        "\t" TS(3) "\t52\n"
                   "34\t" N
                   "\talice\tAAPL\tbuy\tlimit\tGTC\tf\t187.60\t100\t30\tPARTIALLY_FILLED\t" N "\t" N
                   "\t" TS(3) "\t52\n");
}

/* A cancel-all: a CANCELLED (req_kind 4, USER_CANCEL) per order, then
 * CANCEL_ALL_DONE (id 0, symbol "" for every symbol, qty = how many), which
 * writes nothing and is neither poison nor a reject; a rejected cancel-all
 * (id 0) writes nothing either and counts as an ignored reject. */
static void test_cancel_all(void **state)
{
    struct rec_batch *b = *state;
    struct op_report r[4];
    for (int i = 0; i < 2; i++) {
        r[i] = rep(OP_REPORT_CANCELLED, 60 + (uint64_t)i, 35 + (uint64_t)i, 1);
        r[i].req_kind = OP_MSG_CANCEL_ALL;
        r[i].status = OP_STATUS_CANCELLED, r[i].reason = OP_REASON_USER_CANCEL;
    }
    memset(&r[2], 0, sizeof(r[2]));
    r[2].kind = OP_REPORT_CANCEL_ALL_DONE, r[2].req_kind = OP_MSG_CANCEL_ALL;
    r[2].report_id = 62, r[2].ts_ns = T(1), r[2].qty = 2;
    snprintf(r[2].account, sizeof(r[2].account), "%s", "alice");
    memset(&r[3], 0, sizeof(r[3]));
    r[3].kind = OP_REPORT_REJECTED, r[3].req_kind = OP_MSG_CANCEL_ALL;
    r[3].reason = OP_REASON_BAD_ACCOUNT, r[3].report_id = 63, r[3].ts_ns = T(2);
    snprintf(r[3].symbol, sizeof(r[3].symbol), "%s", "MSFT");
    add(b, r, 4);
    assert_int_equal(b->nreports, 4);
    assert_int_equal(b->npoison, 0);
    assert_int_equal(b->nbad, 0);
    assert_int_equal(b->ignored_rejects, 1);
    assert_int_equal(b->rows, 2);
    expect_rows(
        b, "", "",
        "35\t" N "\talice\tAAPL\tbuy\tlimit\tGTC\tf\t187.25\t100\t0\tCANCELLED\tUSER_CANCEL\t" N
        "\t" TS(1) "\t60\n"
                   "36\t" N
                   "\talice\tAAPL\tbuy\tlimit\tGTC\tf\t187.25\t100\t0\tCANCELLED\tUSER_CANCEL\t" N
                   "\t" TS(1) "\t61\n");
}

/* Self-trade prevention and the new rejections of issue 14: a CANCELLED
 * SELF_TRADE stores the reason; an AMENDED SELF_TRADE (a decrement, req_kind
 * NEW) applies like an amend: qty, no reason; new orders rejected
 * TOO_MANY_OPEN_ORDERS or BAD_STP are rejected rows like any other. */
static void test_self_trade_and_new_reasons(void **state)
{
    struct rec_batch *b = *state;
    struct op_report cx = rep(OP_REPORT_CANCELLED, 70, 37, 1);
    cx.status = OP_STATUS_CANCELLED, cx.reason = OP_REASON_SELF_TRADE;
    struct op_report dec = rep(OP_REPORT_AMENDED, 71, 38, 1);
    dec.qty = 60, dec.reason = OP_REASON_SELF_TRADE;
    struct op_report r[] = {cx, dec, rejected(72, 39, OP_REASON_TOO_MANY_OPEN_ORDERS, 2),
                            rejected(73, 40, OP_REASON_BAD_STP, 3)};
    add(b, r, 4);
    assert_int_equal(b->npoison, 0);
    assert_int_equal(b->ignored_rejects, 0);
    expect_rows(
        b, "",
        "39\t" N "\talice\tAAPL\tbuy\tlimit\tGTC\tf\t187.25\t100\t0\tREJECTED\tTOO_MANY_OPEN_"
        "ORDERS\t" TS(2) "\t" TS(
            2) "\t72\n"
               "40\t" N "\talice\tAAPL\tbuy\tlimit\tGTC\tf\t187.25\t100\t0\tREJECTED\tBAD_STP\t" TS(
                   3) "\t" TS(3) "\t73\n",
        "37\t" N "\talice\tAAPL\tbuy\tlimit\tGTC\tf\t187.25\t100\t0\tCANCELLED\tSELF_TRADE\t" N
        "\t" TS(1) "\t70\n"
                   "38\t" N "\talice\tAAPL\tbuy\tlimit\tGTC\tf\t187.25\t60\t0\tNEW\t" N "\t" N
                   "\t" TS(1) "\t71\n");
}

/* Stops and GTD orders (issue 15): an accepted stop is a new row with status
 * PENDING_TRIGGER and its type (stop_market: no price), a GTD order's tif is
 * GTD; TRIGGERED is a state report like the others (versioned by report_id),
 * so a stop accepted, triggered and traded in one range is one row of the
 * trade's state, and one triggered in a later range is an update (NEW). */
static void test_stops_and_gtd(void **state)
{
    struct rec_batch *b = *state;
    /* 41: a sell stop_limit GTD, accepted, triggered and partly filled */
    struct op_report acc = rep(OP_REPORT_ACCEPTED, 80, 41, 1);
    acc.side = OP_SIDE_SELL, acc.type = OP_TYPE_STOP_LIMIT, acc.tif = OP_TIF_GTD;
    acc.status = OP_STATUS_PENDING_TRIGGER, acc.stop_price = 18800, acc.expire_ns = T(9);
    struct op_report trg = acc;
    trg.kind = OP_REPORT_TRIGGERED, trg.report_id = 82, trg.ts_ns = T(2);
    trg.status = OP_STATUS_NEW;
    struct op_report tr = trade(83, 41, 5, 40, 2);
    tr.side = OP_SIDE_SELL, tr.type = OP_TYPE_STOP_LIMIT, tr.tif = OP_TIF_GTD;
    tr.stop_price = 18800, tr.expire_ns = T(9);
    /* 42: a buy stop_market still waiting */
    struct op_report stm = rep(OP_REPORT_ACCEPTED, 81, 42, 1);
    stm.type = OP_TYPE_STOP_MARKET, stm.tif = OP_TIF_IOC, stm.price = 0;
    stm.status = OP_STATUS_PENDING_TRIGGER, stm.stop_price = 19000;
    /* 43: accepted in an earlier batch, triggered now */
    struct op_report late = rep(OP_REPORT_TRIGGERED, 84, 43, 3);
    late.type = OP_TYPE_STOP_LIMIT, late.stop_price = 18700;
    struct op_report r1[] = {acc, stm}, r2[] = {trg, tr}, r3[] = {late};
    add(b, r2, 2); /* out of order on purpose: the version decides */
    add(b, r1, 2);
    add(b, r3, 1);
    assert_int_equal(b->npoison, 0);
    assert_int_equal(b->nbad, 0);
    assert_int_equal(b->ignored_rejects, 0);
    assert_int_equal(b->rows, 5);
    expect_rows(
        b, "83\tAAPL\t187.00\t40\t5\t41\tbob\talice\tsell\t" TS(2) "\n",
        "41\t" N "\talice\tAAPL\tsell\tstop_limit\tGTD\tf\t187.25\t100\t40\tPARTIALLY_FILLED\t" N
        "\t" TS(1) "\t" TS(2) "\t83\n"
                              "42\t" N "\talice\tAAPL\tbuy\tstop_market\tIOC\tf\t" N
                              "\t100\t0\tPENDING_TRIGGER\t" N "\t" TS(1) "\t" TS(1) "\t81\n",
        "5\t" N "\tbob\tAAPL\t" N "\t" N "\t" N "\t" N "\t187.00\t40\t40\tFILLED\t" N "\t" N
        "\t" TS(2) "\t83\n"
                   "43\t" N "\talice\tAAPL\tbuy\tstop_limit\tGTC\tf\t187.25\t100\t0\tNEW\t" N "\t" N
                   "\t" TS(3) "\t84\n");
}

/* Time (issue 15): an expiry and a fired dead-man switch are CANCELLED
 * reports whose reason is stored (EXPIRED, DEAD_MAN); the CANCEL_ALL_DONE
 * ending the switch, the DEAD_MAN ack of an arm/disarm and a TICK concern
 * no order (id 0, symbol ""): nothing is written, nothing is poison and none
 * is an ignored reject. New orders rejected BAD_EXPIRY or BAD_STOP are
 * rejected rows; a rejected cancel_all_after (BAD_TIMEOUT, id 0) changes
 * no order and is counted as ignored. An entry of ticks only still counts
 * one row towards the batch's size. */
static void test_expiry_dead_man_tick(void **state)
{
    struct rec_batch *b = *state;
    struct op_report exp = rep(OP_REPORT_CANCELLED, 90, 45, 1);
    exp.req_kind = OP_MSG_TICK, exp.tif = OP_TIF_GTD, exp.expire_ns = T(1);
    exp.status = OP_STATUS_CANCELLED, exp.reason = OP_REASON_EXPIRED;
    struct op_report dm = rep(OP_REPORT_CANCELLED, 91, 46, 1);
    dm.req_kind = OP_MSG_TICK, dm.status = OP_STATUS_CANCELLED, dm.reason = OP_REASON_DEAD_MAN;
    struct op_report done, ack, tick, badto;
    memset(&done, 0, sizeof(done));
    done.kind = OP_REPORT_CANCEL_ALL_DONE, done.req_kind = OP_MSG_TICK;
    done.reason = OP_REASON_DEAD_MAN, done.report_id = 92, done.ts_ns = T(1), done.qty = 1;
    snprintf(done.account, sizeof(done.account), "%s", "alice");
    tick = done;
    tick.kind = OP_REPORT_TICK, tick.report_id = 93, tick.reason = 0, tick.qty = 0;
    tick.account[0] = '\0';
    ack = done;
    ack.kind = OP_REPORT_DEAD_MAN, ack.req_kind = OP_MSG_CANCEL_ALL_AFTER, ack.reason = 0;
    ack.report_id = 94, ack.ts_ns = T(2), ack.qty = 5000;
    badto = ack;
    badto.kind = OP_REPORT_REJECTED, badto.report_id = 95, badto.reason = OP_REASON_BAD_TIMEOUT;
    badto.status = OP_STATUS_REJECTED;
    struct op_report r[] = {exp,
                            dm,
                            done,
                            tick,
                            ack,
                            badto,
                            rejected(96, 47, OP_REASON_BAD_EXPIRY, 3),
                            rejected(97, 48, OP_REASON_BAD_STOP, 3)};
    add(b, r, 8);
    assert_int_equal(b->npoison, 0);
    assert_int_equal(b->nbad, 0);
    assert_int_equal(b->ignored_rejects, 1);
    assert_int_equal(b->rows, 4);
    struct op_report only_tick = tick;
    only_tick.report_id = 98;
    add(b, &only_tick, 1);
    assert_int_equal(b->rows, 5);
    assert_int_equal(b->npoison, 0);
    expect_rows(
        b, "",
        "47\t" N
        "\talice\tAAPL\tbuy\tlimit\tGTC\tf\t187.25\t100\t0\tREJECTED\tBAD_EXPIRY\t" TS(3) "\t" TS(
            3) "\t96\n"
               "48\t" N
               "\talice\tAAPL\tbuy\tlimit\tGTC\tf\t187.25\t100\t0\tREJECTED\tBAD_STOP\t" TS(
                   3) "\t" TS(3) "\t97\n",
        "45\t" N "\talice\tAAPL\tbuy\tlimit\tGTD\tf\t187.25\t100\t0\tCANCELLED\tEXPIRED\t" N
        "\t" TS(1) "\t90\n"
                   "46\t" N
                   "\talice\tAAPL\tbuy\tlimit\tGTC\tf\t187.25\t100\t0\tCANCELLED\tDEAD_MAN\t" N
                   "\t" TS(1) "\t91\n");
}

/* rec_batch_reset empties the batch and its counters for the next one. */
static void test_reset(void **state)
{
    struct rec_batch *b = *state;
    struct op_report r = rejected(110, 0, OP_REASON_MALFORMED, 1);
    add(b, &r, 1);
    assert_int_equal(rec_batch_add(b, 0, "9-9", 3, NULL, 0), 0);
    rec_batch_reset(b);
    assert_int_equal(b->nentries, 0);
    assert_int_equal(b->nreports, 0);
    assert_int_equal(b->npoison, 0);
    assert_int_equal(b->nbad, 0);
    assert_int_equal(b->rows, 0);
    assert_int_equal(b->ignored_rejects, 0);
    expect_rows(b, "", "", "");
}

int main(void)
{
    if (op_symtab_defaults(&syms) != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_merge_one_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_maker_row_with_its_accept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_list_sorted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trade_redelivered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_poison_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_reports, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extreme_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ids_beyond_bigint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejected_unrepresentable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ignored_rejects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_build_ranges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replaced_keeps_newest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replaced_then_maker_trade_out_of_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cancel_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_self_trade_and_new_reasons, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stops_and_gtd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry_dead_man_tick, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    op_symtab_release(&syms);
    return rc;
}

/* Integration test: the recorder's transactions on the real tables, committed out of order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recorder/batch.h"
#include "recorder/stats.h"
#include "recorder/store.h"
#include "shared/buf.h"
#include "shared/codec.h"
#include "shared/pg.h"
#include "shared/symbols.h"

/*
 * Run by tests/run-integration.sh with DATABASE_URL of the migrated stack
 * database. Each case commits batches of reports with rec_store_write in a
 * chosen order — the order in which several recorders may commit them —
 * and reads the orders rows back: the state, the price included (a
 * REPLACED report changes it, issue 14), is the one of the highest
 * report_id whatever the commit order. The rows use ids of their own
 * (ID_BASE and up), deleted after each case, so the tests that compare
 * whole tables afterwards see nothing of them.
 */

#define ID_BASE UINT64_C(7000000000000000000)
#define T(k) (UINT64_C(1700000000000000000) + (uint64_t)(k)*1000000u)

static struct op_pg pg; /* the test's own session, to read rows back */
static struct op_symtab syms;
static struct rec_stats stats;
static struct rec_store store;
static struct rec_batch batch;
static int nentry; /* entry ids of this run */

static void cleanup_rows(void)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "DELETE FROM orders WHERE order_id >= %llu; DELETE FROM fills WHERE fill_id >= %llu;"
             "DELETE FROM dead_letters WHERE entry_id LIKE 'store-%%'",
             (unsigned long long)ID_BASE, (unsigned long long)ID_BASE);
    assert_int_equal(op_pg_exec(&pg, sql), 0);
}

static int setup(void **state)
{
    (void)state;
    const char *url = getenv("DATABASE_URL");
    if (!url) {
        fprintf(stderr, "test_recorder_store: DATABASE_URL must be set (run via "
                        "tests/run-integration.sh)\n");
        return -1;
    }
    if (op_pg_connect(&pg, url, "test_recorder_store") != 0) {
        fprintf(stderr, "test_recorder_store: %s\n", pg.err);
        return -1;
    }
    if (op_symtab_defaults(&syms) != 0 || rec_stats_init(&stats, 1) != 0 ||
        rec_batch_init(&batch, &syms) != 0)
        return -1;
    rec_store_init(&store, url, &stats);
    if (rec_store_ready(&store) != 0) {
        fprintf(stderr, "test_recorder_store: %s\n", store.pg.err);
        return -1;
    }
    return op_pg_exec(&pg, "SET TimeZone = 'UTC'");
}

static int teardown(void **state)
{
    (void)state;
    rec_store_release(&store);
    rec_batch_release(&batch);
    rec_stats_release(&stats);
    op_symtab_release(&syms);
    op_pg_close(&pg);
    return 0;
}

static int each_setup(void **state)
{
    (void)state;
    cleanup_rows();
    return 0;
}

static int each_teardown(void **state)
{
    (void)state;
    cleanup_rows();
    return 0;
}

/* A report about order ID_BASE + oid (AAPL limit GTC), report_id ID_BASE +
 * rid, at time T(rid): account, side, price (ticks), qty, filled, status. */
static struct op_report about(int kind, int req_kind, uint64_t rid, uint64_t oid, const char *acct,
                              int side, int64_t price, int64_t qty, int64_t filled, int status)
{
    struct op_report r;
    memset(&r, 0, sizeof(r));
    r.kind = (uint8_t)kind;
    r.req_kind = (uint8_t)req_kind;
    r.report_id = ID_BASE + rid;
    r.ts_ns = T(rid);
    r.order_id = ID_BASE + oid;
    r.side = (uint8_t)side, r.type = OP_TYPE_LIMIT, r.tif = OP_TIF_GTC;
    r.price = price, r.qty = qty, r.filled_qty = filled;
    r.status = (uint8_t)status;
    snprintf(r.symbol, sizeof(r.symbol), "%s", "AAPL");
    snprintf(r.account, sizeof(r.account), "%s", acct);
    return r;
}

/* Taker report t trades q against maker ID_BASE + maker (bob) at the maker's
 * price px; the maker's state after it: mqty, mfilled, mstatus. */
static struct op_report traded(struct op_report t, uint64_t maker, int64_t px, int64_t q,
                               int64_t mqty, int64_t mfilled, int mstatus)
{
    t.kind = OP_REPORT_TRADE;
    t.maker_order_id = ID_BASE + maker;
    t.trade_price = px, t.trade_qty = q;
    t.maker_qty = mqty, t.maker_filled_qty = mfilled, t.maker_status = (uint8_t)mstatus;
    snprintf(t.maker_account, sizeof(t.maker_account), "%s", "bob");
    return t;
}

/* Commits reports r[0..n) as one batch of one entry: what one recorder's
 * transaction would write. */
static void commit(const struct op_report *r, size_t n)
{
    struct op_buf m;
    char id[32];
    op_buf_init(&m);
    assert_int_equal(op_codec_encode_reports(&m, r, n), 0);
    int len = snprintf(id, sizeof(id), "store-%d", nentry++);
    rec_batch_reset(&batch);
    assert_int_equal(rec_batch_add(&batch, 0, id, (size_t)len, m.data, m.len), 0);
    assert_int_equal(batch.npoison, 0);
    if (rec_store_write(&store, &batch) != 0)
        fail_msg("rec_store_write: %s", store.pg.err);
    op_buf_release(&m);
}

/* The orders row of ID_BASE + oid as "price|qty|filled|status|reason|side|version-ID_BASE". */
static void expect_row(uint64_t oid, const char *want)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT concat_ws('|', price, qty, filled_qty, status, coalesce(reject_reason, '-'), "
             "coalesce(side, '-'), version - %llu) FROM orders WHERE order_id = %llu",
             (unsigned long long)ID_BASE, (unsigned long long)(ID_BASE + oid));
    struct pg_result *res = op_pg_query(&pg, sql, 0, NULL);
    if (!res)
        fail_msg("%s: %s", sql, pg.err);
    assert_int_equal(op_pg_rows(res), 1);
    assert_string_equal(op_pg_value(res, 0, 0), want);
    op_pg_clear(res);
}

/* A resting order replaced (new price, more qty), then traded as a maker at
 * its new price; the trade is committed before the REPLACED (two
 * recorders): the row keeps the newest state and the new price. Upserted
 * as one row, the price was description and stayed the one of the
 * ACCEPTED. Then everything again (a rewound group: the safe path):
 * nothing changes. */
static void test_replaced_maker_committed_late(void **state)
{
    (void)state;
    struct op_report acc = about(OP_REPORT_ACCEPTED, OP_MSG_NEW, 10, 1, "bob", OP_SIDE_SELL, 18750,
                                 50, 0, OP_STATUS_NEW);
    struct op_report rp = about(OP_REPORT_REPLACED, OP_MSG_AMEND, 11, 1, "bob", OP_SIDE_SELL, 18760,
                                80, 0, OP_STATUS_NEW);
    struct op_report tacc = about(OP_REPORT_ACCEPTED, OP_MSG_NEW, 12, 2, "alice", OP_SIDE_BUY,
                                  18800, 30, 0, OP_STATUS_NEW);
    struct op_report tt = tacc;
    tt.report_id = ID_BASE + 13, tt.ts_ns = T(13), tt.filled_qty = 30;
    tt.status = OP_STATUS_FILLED;
    struct op_report tr[] = {tacc, traded(tt, 1, 18760, 30, 80, 30, OP_STATUS_PARTIALLY_FILLED)};
    commit(&acc, 1);
    commit(tr, 2);
    expect_row(1, "187.60|80|30|PARTIALLY_FILLED|-|sell|13");
    commit(&rp, 1);
    expect_row(1, "187.60|80|30|PARTIALLY_FILLED|-|sell|13");
    expect_row(2, "188.00|30|30|FILLED|-|buy|13");
    commit(&acc, 1); /* redelivered */
    commit(&rp, 1);
    commit(tr, 2);
    expect_row(1, "187.60|80|30|PARTIALLY_FILLED|-|sell|13");
}

/* A taker replaced, trading as a taker (req_kind AMEND), then reduced by an
 * AMENDED: every commit order gives the AMENDED's qty and the replaced
 * price; the REPLACED itself, committed last, changes nothing. */
static void test_replaced_taker_every_order(void **state)
{
    (void)state;
    struct op_report acc = about(OP_REPORT_ACCEPTED, OP_MSG_NEW, 20, 3, "alice", OP_SIDE_BUY, 18700,
                                 100, 0, OP_STATUS_NEW);
    struct op_report rp = about(OP_REPORT_REPLACED, OP_MSG_AMEND, 21, 3, "alice", OP_SIDE_BUY,
                                18800, 150, 0, OP_STATUS_NEW);
    struct op_report t = about(OP_REPORT_TRADE, OP_MSG_AMEND, 22, 3, "alice", OP_SIDE_BUY, 18800,
                               150, 20, OP_STATUS_PARTIALLY_FILLED);
    struct op_report tr = traded(t, 4, 18790, 20, 20, 20, OP_STATUS_FILLED);
    struct op_report am = about(OP_REPORT_AMENDED, OP_MSG_AMEND, 23, 3, "alice", OP_SIDE_BUY, 18800,
                                120, 20, OP_STATUS_PARTIALLY_FILLED);
    const struct op_report *seq[] = {&acc, &rp, &tr, &am};
    static const int orders[][4] = {{0, 1, 2, 3}, {0, 3, 2, 1}, {3, 2, 1, 0}, {2, 0, 3, 1}};
    for (size_t k = 0; k < sizeof(orders) / sizeof(orders[0]); k++) {
        cleanup_rows();
        for (int i = 0; i < 4; i++)
            commit(seq[orders[k][i]], 1);
        expect_row(3, "188.00|120|20|PARTIALLY_FILLED|-|buy|23");
        expect_row(4, "187.90|20|20|FILLED|-|-|22");
    }
}

/* A cancel-all's reports: each CANCELLED (req_kind 4) recorded with
 * USER_CANCEL, its CANCEL_ALL_DONE and a rejected cancel-all store nothing
 * and are no dead letters; self-trade cancels and decrements, and the new
 * rejections. */
static void test_cancel_all_and_self_trade(void **state)
{
    (void)state;
    struct op_report r[8];
    r[0] = about(OP_REPORT_ACCEPTED, OP_MSG_NEW, 30, 5, "alice", OP_SIDE_BUY, 18700, 10, 0,
                 OP_STATUS_NEW);
    r[1] = about(OP_REPORT_ACCEPTED, OP_MSG_NEW, 31, 6, "alice", OP_SIDE_BUY, 18600, 10, 0,
                 OP_STATUS_NEW);
    r[2] = about(OP_REPORT_CANCELLED, OP_MSG_CANCEL_ALL, 32, 5, "alice", OP_SIDE_BUY, 18700, 10, 0,
                 OP_STATUS_CANCELLED);
    r[2].reason = OP_REASON_USER_CANCEL;
    r[3] = about(OP_REPORT_CANCELLED, OP_MSG_CANCEL_ALL, 33, 6, "alice", OP_SIDE_BUY, 18600, 10, 0,
                 OP_STATUS_CANCELLED);
    r[3].reason = OP_REASON_USER_CANCEL;
    memset(&r[4], 0, sizeof(r[4]));
    r[4].kind = OP_REPORT_CANCEL_ALL_DONE, r[4].req_kind = OP_MSG_CANCEL_ALL;
    r[4].report_id = ID_BASE + 34, r[4].ts_ns = T(34), r[4].qty = 2;
    snprintf(r[4].account, sizeof(r[4].account), "%s", "alice");
    r[5] = r[4];
    r[5].kind = OP_REPORT_REJECTED, r[5].reason = OP_REASON_BAD_ACCOUNT, r[5].qty = 0;
    r[5].report_id = ID_BASE + 35;
    r[6] = about(OP_REPORT_REJECTED, OP_MSG_NEW, 36, 7, "alice", OP_SIDE_BUY, 18700, 10, 0,
                 OP_STATUS_REJECTED);
    r[6].reason = OP_REASON_TOO_MANY_OPEN_ORDERS;
    r[7] = about(OP_REPORT_REJECTED, OP_MSG_NEW, 37, 8, "alice", OP_SIDE_BUY, 18700, 10, 0,
                 OP_STATUS_REJECTED);
    r[7].reason = OP_REASON_BAD_STP;
    commit(r, 8);
    expect_row(5, "187.00|10|0|CANCELLED|USER_CANCEL|buy|32");
    expect_row(6, "186.00|10|0|CANCELLED|USER_CANCEL|buy|33");
    expect_row(7, "187.00|10|0|REJECTED|TOO_MANY_OPEN_ORDERS|buy|36");
    expect_row(8, "187.00|10|0|REJECTED|BAD_STP|buy|37");

    struct op_report s[4];
    s[0] = about(OP_REPORT_ACCEPTED, OP_MSG_NEW, 40, 9, "bob", OP_SIDE_SELL, 18700, 10, 0,
                 OP_STATUS_NEW);
    s[1] = about(OP_REPORT_ACCEPTED, OP_MSG_NEW, 41, 10, "bob", OP_SIDE_SELL, 18710, 10, 0,
                 OP_STATUS_NEW);
    s[2] = about(OP_REPORT_CANCELLED, OP_MSG_NEW, 43, 9, "bob", OP_SIDE_SELL, 18700, 10, 0,
                 OP_STATUS_CANCELLED);
    s[2].reason = OP_REASON_SELF_TRADE;
    s[3] = about(OP_REPORT_AMENDED, OP_MSG_NEW, 44, 10, "bob", OP_SIDE_SELL, 18710, 6, 0,
                 OP_STATUS_NEW);
    s[3].reason = OP_REASON_SELF_TRADE;
    commit(s, 2);
    commit(s + 2, 2);
    expect_row(9, "187.00|10|0|CANCELLED|SELF_TRADE|sell|43");
    expect_row(10, "187.10|6|0|NEW|-|sell|44");

    struct pg_result *res = op_pg_query(
        &pg, "SELECT count(*) FROM dead_letters WHERE entry_id LIKE 'store-%'", 0, NULL);
    assert_non_null(res);
    assert_string_equal(op_pg_value(res, 0, 0), "0");
    op_pg_clear(res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_replaced_maker_committed_late, each_setup,
                                        each_teardown),
        cmocka_unit_test_setup_teardown(test_replaced_taker_every_order, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_all_and_self_trade, each_setup, each_teardown),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

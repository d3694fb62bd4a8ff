/* Integration test: the recorder's binary COPY rows, read back by PostgreSQL itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "recorder/batch.h"
#include "recorder/copybin.h"
#include "shared/buf.h"
#include "shared/decimal.h"
#include "shared/pg.h"
#include "shared/symbols.h"

/*
 * Run by tests/run-integration.sh with DATABASE_URL of a migrated throw-away
 * database. Every row also carries the text the recorder used to send for
 * the same value; the server parses that text and compares it with what it
 * read from the binary fields (value and price::text alike): the binary path
 * stores exactly what the text path stored.
 */

static struct op_pg pg;

static int setup(void **state)
{
    (void)state;
    const char *url = getenv("DATABASE_URL");
    if (!url) {
        fprintf(stderr, "test_recorder_copybin: DATABASE_URL must be set (run via "
                        "tests/run-integration.sh)\n");
        return -1;
    }
    if (op_pg_connect(&pg, url, "test_recorder_copybin") != 0) {
        fprintf(stderr, "test_recorder_copybin: %s\n", pg.err);
        return -1;
    }
    return op_pg_exec(&pg, "SET TimeZone = 'UTC'");
}

static int teardown(void **state)
{
    (void)state;
    op_pg_close(&pg);
    return 0;
}

/* COPYs tuples (header and trailer added) with sql; returns the rows loaded. */
static long long copy_tuples(const char *sql, const struct op_buf *tuples)
{
    char h[REC_COPYBIN_HEADER_LEN], t[REC_COPYBIN_TRAILER_LEN];
    size_t hl = rec_copybin_header(h), tl = rec_copybin_trailer(t);
    long long rows = 0;
    if (op_pg_copy_begin(&pg, sql) != 0 || op_pg_copy_put(&pg, h, hl) != 0 ||
        op_pg_copy_put(&pg, tuples->data, tuples->len) != 0 || op_pg_copy_put(&pg, t, tl) != 0 ||
        op_pg_copy_end_rows(&pg, &rows) != 0)
        fail_msg("copy: %s", pg.err);
    return rows;
}

/* The single value of a one-row, one-column query. */
static void expect_sql(const char *sql, const char *want)
{
    struct pg_result *res = op_pg_query(&pg, sql, 0, NULL);
    if (!res)
        fail_msg("%s: %s", sql, pg.err);
    assert_int_equal(op_pg_rows(res), 1);
    assert_string_equal(op_pg_value(res, 0, 0), want);
    op_pg_clear(res);
}

static void put_text(struct op_buf *b, const char *s)
{
    rec_copybin_text(b, s, strlen(s));
}

/* Numerics of every kind of tick, extremes included, and bigint, boolean,
 * text and timestamptz extremes, with NULLs: the server's reading of each
 * binary field equals its reading of the text the recorder used to send. */
static void test_fields_match_text(void **state)
{
    (void)state;
    assert_int_equal(op_pg_exec(&pg, "CREATE TEMP TABLE cb (id bigint, n numeric, n_text text, "
                                     "i bigint, i_text text, b boolean, t text, z timestamptz, "
                                     "z_text text)"),
                     0);
    static const struct op_tick ticks[] = {{1, 0}, {1, 2}, {5, 2}, {25, 1}, {1, 9}, {12345, 4}};
    static const int64_t edges[] = {0,         1,      -1,        9,        10,           99,
                                    9999,      10000,  10001,     99999999, 100000000,    INT64_MAX,
                                    INT64_MIN, -10000, 123456789, 18725,    INT64_MAX - 1};
    static const uint64_t times[] = {0, UINT64_C(946684800000000000), UINT64_C(946684799999999999),
                                     UINT64_C(1700000000123456789), UINT64_MAX};
    struct op_buf b;
    op_buf_init(&b);
    uint64_t x = 42;
    int64_t id = 0;
    for (size_t k = 0; k < sizeof(ticks) / sizeof(*ticks); k++) {
        for (size_t i = 0; i < sizeof(edges) / sizeof(*edges) + 300; i++) {
            int64_t v;
            if (i < sizeof(edges) / sizeof(*edges)) {
                v = edges[i];
            } else {
                x = x * 6364136223846793005u + 1442695040888963407u;
                v = (int64_t)(x >> (x % 60));
            }
            char text[OP_DECIMAL_MAX_LEN + 32], itext[24], ztext[64];
            assert_true(op_decimal_format(v, ticks[k], text, sizeof(text)) > 0);
            snprintf(itext, sizeof(itext), "%lld", (long long)v);
            uint64_t ts = times[id % 5];
            /* the text the recorder formatted: whole µs, UTC */
            time_t sec = (time_t)(ts / 1000000000u);
            struct tm tm;
            char date[32];
            gmtime_r(&sec, &tm);
            strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
            snprintf(ztext, sizeof(ztext), "%s.%06u+00", date,
                     (unsigned)(ts % 1000000000u / 1000u));
            assert_int_equal(op_buf_reserve(&b, 512), 0);
            rec_copybin_tuple(&b, 9);
            rec_copybin_int8(&b, ++id);
            rec_copybin_numeric(&b, v, ticks[k]);
            put_text(&b, text);
            rec_copybin_int8(&b, v);
            put_text(&b, itext);
            rec_copybin_bool(&b, (int)(id & 1));
            put_text(&b, (id & 1) ? "0123456789abcdefghijklmnopqrstuvwxyz" : "");
            rec_copybin_timestamptz(&b, ts);
            put_text(&b, ztext);
        }
    }
    assert_int_equal(op_buf_reserve(&b, 512), 0);
    rec_copybin_tuple(&b, 9); /* all NULL but the id */
    rec_copybin_int8(&b, ++id);
    for (int c = 0; c < 8; c++)
        rec_copybin_null(&b);
    assert_int_equal(copy_tuples("COPY cb FROM STDIN (FORMAT binary)", &b), id);
    expect_sql("SELECT count(*) FROM cb WHERE n IS DISTINCT FROM n_text::numeric"
               " OR n::text IS DISTINCT FROM n_text OR i::text IS DISTINCT FROM i_text"
               " OR z IS DISTINCT FROM z_text::timestamptz",
               "0");
    expect_sql("SELECT count(*) FROM cb WHERE n_text IS NULL AND n IS NULL AND i IS NULL"
               " AND b IS NULL AND t IS NULL AND z IS NULL",
               "1");
    expect_sql("SELECT count(*) FROM cb WHERE n::text LIKE '-%' AND n = 0", "0");
    expect_sql("SELECT n::text FROM cb WHERE n_text = '92233720368547758.07'",
               "92233720368547758.07");
    expect_sql("SELECT max(octet_length(t)) FROM cb", "36");
    expect_sql("SELECT to_char(max(z), 'YYYY-MM-DD HH24:MI:SS.US') FROM cb",
               "2554-07-21 23:34:33.709551");
    expect_sql("SELECT count(DISTINCT b) FROM cb", "2");
    op_buf_release(&b);
}

/* The recorder's own rows (recorder/batch.c) of extreme reports, COPYed into
 * tables shaped like the contract's, with their constraints: the largest
 * price, quantity and ids, a 36-character client_order_id, NULLs. */
static void test_batch_rows_into_tables(void **state)
{
    (void)state;
    struct op_symtab syms;
    struct rec_batch batch;
    struct rec_copy c;
    assert_int_equal(op_symtab_defaults(&syms), 0);
    assert_int_equal(rec_batch_init(&batch, &syms), 0);
    rec_copy_init(&c);
    assert_int_equal(op_pg_exec(&pg, "CREATE TEMP TABLE cb_fills (LIKE fills INCLUDING ALL);"
                                     "CREATE TEMP TABLE cb_orders (LIKE orders INCLUDING ALL)"),
                     0);
    struct op_report r[2];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 2; i++) {
        r[i].req_kind = OP_MSG_NEW;
        r[i].side = OP_SIDE_BUY, r[i].type = OP_TYPE_LIMIT, r[i].tif = OP_TIF_GTC;
        r[i].order_id = (uint64_t)INT64_MAX;
        r[i].price = INT64_MAX, r[i].qty = INT64_MAX;
        snprintf(r[i].symbol, sizeof(r[i].symbol), "%s", "AAPL");
        snprintf(r[i].account, sizeof(r[i].account), "%s", "alice");
        snprintf(r[i].client_order_id, sizeof(r[i].client_order_id), "%s",
                 "0123456789abcdefghijklmnopqrstuvwxyz");
    }
    r[0].kind = OP_REPORT_ACCEPTED, r[0].status = OP_STATUS_NEW;
    r[0].report_id = (uint64_t)INT64_MAX - 1, r[0].ts_ns = UINT64_C(1700000000123456789);
    r[1].kind = OP_REPORT_TRADE, r[1].status = OP_STATUS_FILLED;
    r[1].report_id = (uint64_t)INT64_MAX, r[1].ts_ns = UINT64_C(1700000000123457999);
    r[1].filled_qty = INT64_MAX, r[1].maker_order_id = 1;
    r[1].trade_price = INT64_MAX, r[1].trade_qty = INT64_MAX;
    r[1].maker_qty = INT64_MAX, r[1].maker_filled_qty = INT64_MAX;
    r[1].maker_status = OP_STATUS_FILLED;
    snprintf(r[1].maker_account, sizeof(r[1].maker_account), "%s", "bob");
    struct op_buf m;
    op_buf_init(&m);
    assert_int_equal(op_codec_encode_reports(&m, r, 2), 0);
    assert_int_equal(rec_batch_add(&batch, 0, "1-1", 3, m.data, m.len), 0);
    assert_int_equal(rec_batch_build(&batch, 0, batch.nreports, &c), 0);
    assert_int_equal(c.nfills, 1);
    assert_int_equal(c.nnew, 1);
    assert_int_equal(c.nupd, 1); /* the maker, order 1 */
    assert_int_equal(
        copy_tuples("COPY cb_fills (" REC_FILLS_COLUMNS ") FROM STDIN (FORMAT binary)", &c.fills),
        1);
    struct op_buf both;
    op_buf_init(&both);
    assert_int_equal(op_buf_append(&both, c.new_orders.data, c.new_orders.len), 0);
    assert_int_equal(op_buf_append(&both, c.upd_orders.data, c.upd_orders.len), 0);
    assert_int_equal(
        copy_tuples("COPY cb_orders (" REC_ORDERS_COLUMNS ") FROM STDIN (FORMAT binary)", &both),
        2);
    expect_sql("SELECT concat_ws('|', fill_id, symbol, price, qty, maker_order_id, "
               "taker_order_id, maker_account, taker_account, taker_side, "
               "to_char(matched_at, 'YYYY-MM-DD HH24:MI:SS.US')) FROM cb_fills",
               "9223372036854775807|AAPL|92233720368547758.07|9223372036854775807|1|"
               "9223372036854775807|bob|alice|buy|2023-11-14 22:13:20.123457");
    expect_sql("SELECT concat_ws('|', order_id, client_order_id, account, symbol, side, type, "
               "tif, post_only, price, qty, filled_qty, status, coalesce(reject_reason, '-'), "
               "to_char(created_at, 'YYYY-MM-DD HH24:MI:SS.US'), "
               "to_char(updated_at, 'YYYY-MM-DD HH24:MI:SS.US'), version) "
               "FROM cb_orders WHERE order_id > 1",
               "9223372036854775807|0123456789abcdefghijklmnopqrstuvwxyz|alice|AAPL|buy|limit|"
               "GTC|f|92233720368547758.07|9223372036854775807|9223372036854775807|FILLED|-|"
               "2023-11-14 22:13:20.123456|2023-11-14 22:13:20.123457|9223372036854775807");
    /* the maker: no description, but its price (the trade's) is state */
    expect_sql("SELECT concat_ws('|', account, side IS NULL, price, created_at IS NULL, "
               "qty, status) FROM cb_orders WHERE order_id = 1",
               "bob|t|92233720368547758.07|t|9223372036854775807|FILLED");
    op_buf_release(&both);
    op_buf_release(&m);
    rec_copy_release(&c);
    rec_batch_release(&batch);
    op_symtab_release(&syms);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_match_text),
        cmocka_unit_test(test_batch_rows_into_tables),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/* Integration smoke test: the shared library against a real Redis and PostgreSQL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/buf.h"
#include "shared/codec.h"
#include "shared/config.h"
#include "shared/pg.h"
#include "shared/redis.h"
#include "shared/shard.h"

/*
 * Run by tests/run-integration.sh with REDIS_URL and DATABASE_URL of a
 * throw-away stack on which orderpipe-setup has run (streams, groups and
 * tables exist).
 */

static struct op_config cfg;

static int setup(void **state)
{
    char err[256];
    (void)state;
    if (!getenv("REDIS_URL") || !getenv("DATABASE_URL")) {
        fprintf(stderr, "test_smoke: REDIS_URL and DATABASE_URL must be set (run via "
                        "tests/run-integration.sh)\n");
        return -1;
    }
    if (op_config_load(&cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "test_smoke: %s\n", err);
        return -1;
    }
    return 0;
}

static void connect_redis(struct op_redis *r)
{
    assert_int_equal(op_redis_init(r, cfg.redis_url, 5000), 0);
    if (op_redis_connect(r) != 0)
        fail_msg("%s", r->errstr);
}

/* An order encoded, XADDed to its shard's stream (NOMKSTREAM), read back by
 * XREADGROUP in the matchers group, decoded equal, then XACKed. */
static void test_order_through_redis(void **state)
{
    (void)state;
    struct op_redis r;
    struct op_codec *c = op_codec_new();
    struct op_buf b;
    char key[OP_KEY_MAX];

    connect_redis(&r);
    op_buf_init(&b);
    struct op_order_msg in, out;
    memset(&in, 0, sizeof(in));
    in.kind = OP_MSG_NEW, in.side = OP_SIDE_BUY, in.type = OP_TYPE_LIMIT, in.tif = OP_TIF_GTC;
    in.order_id = 4242, in.ts_ns = 1795000000000000001ull, in.price = 18725, in.qty = 100;
    snprintf(in.symbol, sizeof(in.symbol), "%s", "AAPL"),
        snprintf(in.account, sizeof(in.account), "%s", "alice"),
        snprintf(in.client_order_id, sizeof(in.client_order_id), "%s", "smoke-1");
    assert_int_equal(op_codec_encode_order(&b, &in), 0);

    uint32_t shard = op_shard_of("AAPL", 4, cfg.order_shards);
    op_key_orders(key, shard);
    struct redisReply *rep =
        op_redis_cmdf(&r, "XADD %s NOMKSTREAM * type new sym AAPL m %b", key, b.data, b.len);
    assert_non_null(rep);
    assert_int_equal(op_reply_type(rep), OP_REPLY_STRING);
    char id[64];
    snprintf(id, sizeof(id), "%s", op_reply_str(rep, NULL));
    op_reply_free(rep);

    /* A stream that setup did not create is never created by a write. */
    rep = op_redis_cmdf(&r, "XADD orders:{99999} NOMKSTREAM * type new m x");
    assert_int_equal(op_reply_type(rep), OP_REPLY_NIL);
    op_reply_free(rep);

    rep = op_redis_cmdf(&r, "XREADGROUP GROUP %s smoke COUNT 100 STREAMS %s >", OP_GROUP_MATCHERS,
                        key);
    assert_non_null(rep);
    assert_int_equal(op_reply_count(rep), 1);
    struct redisReply *entries = op_reply_at(op_reply_at(rep, 0), 1);
    int found = 0;
    for (size_t i = 0; i < op_reply_count(entries); i++) {
        struct redisReply *e = op_reply_at(entries, i);
        if (strcmp(op_reply_str(op_reply_at(e, 0), NULL), id) != 0)
            continue;
        struct redisReply *fields = op_reply_at(e, 1);
        assert_int_equal(op_reply_count(fields), 6);
        assert_string_equal(op_reply_str(op_reply_at(fields, 0), NULL), "type");
        assert_string_equal(op_reply_str(op_reply_at(fields, 1), NULL), "new");
        size_t mlen;
        const char *m = op_reply_str(op_reply_at(fields, 5), &mlen);
        assert_int_equal(op_codec_decode_order(c, m, mlen, &out), 0);
        assert_memory_equal(&in, &out, sizeof(in));
        found = 1;
    }
    op_reply_free(rep);
    assert_true(found);

    rep = op_redis_cmdf(&r, "XACK %s %s %s", key, OP_GROUP_MATCHERS, id);
    assert_int_equal(op_reply_int(rep), 1);
    op_reply_free(rep);

    /* pipelining: three commands, three replies in order */
    assert_int_equal(op_redis_appendf(&r, "PING"), 0);
    assert_int_equal(op_redis_appendf(&r, "ECHO %s", "x"), 0);
    assert_int_equal(op_redis_appendf(&r, "XLEN %s", key), 0);
    rep = op_redis_next_reply(&r);
    assert_true(op_reply_is_status(rep, "PONG"));
    op_reply_free(rep);
    rep = op_redis_next_reply(&r);
    assert_string_equal(op_reply_str(rep, NULL), "x");
    op_reply_free(rep);
    rep = op_redis_next_reply(&r);
    assert_true(op_reply_int(rep) >= 1);
    op_reply_free(rep);
    assert_int_equal(r.pending, 0);

    op_buf_release(&b);
    op_codec_free(c);
    op_redis_release(&r);
}

/* The contract's fills columns, in COPY order (later migrations may add
 * columns with defaults, such as recorded_at). */
#define FILL_COLS                                                                                  \
    "fill_id, symbol, price, qty, maker_order_id, taker_order_id, maker_account, taker_account, "  \
    "taker_side, matched_at"

/* A fills row COPYed through a staging table and read back exactly. */
static void test_fill_through_copy(void **state)
{
    (void)state;
    struct op_pg pg = {0};
    if (op_pg_connect(&pg, cfg.database_url, "test_smoke") != 0)
        fail_msg("%s", pg.err);
    assert_int_equal(op_pg_exec(&pg, "DELETE FROM fills WHERE fill_id IN (990001, 990002)"), 0);
    assert_int_equal(op_pg_exec(&pg, "BEGIN"), 0);
    assert_int_equal(op_pg_exec(&pg, "CREATE TEMP TABLE smoke_stage (LIKE fills) ON COMMIT DROP"),
                     0);
    assert_int_equal(op_pg_copy_begin(&pg, "COPY smoke_stage (" FILL_COLS ") FROM STDIN"), 0);
    struct op_buf b;
    op_buf_init(&b);
    op_buf_printf(&b, "990001\tAAPL\t187.25\t100\t11\t12\tbob\t");
    op_pg_copy_escape(&b, "al\\ice\t", 7); /* escaping round-trips */
    op_buf_printf(&b, "\tbuy\t2026-11-21 10:00:00.123456+00\n");
    op_buf_printf(&b, "990002\tAAPL\t92233720368547758.07\t1\t11\t13\tbob\talice\tsell\t2026-11-21 "
                      "10:00:01+00\n");
    /* sent in two pieces split mid-row */
    assert_int_equal(op_pg_copy_put(&pg, b.data, 10), 0);
    assert_int_equal(op_pg_copy_put(&pg, b.data + 10, b.len - 10), 0);
    assert_int_equal(op_pg_copy_end(&pg, 0), 0);
    assert_int_equal(op_pg_exec(&pg, "INSERT INTO fills (" FILL_COLS ") SELECT " FILL_COLS
                                     " FROM smoke_stage ON CONFLICT DO NOTHING"),
                     0);
    assert_int_equal(op_pg_exec(&pg, "COMMIT"), 0);

    struct pg_result *res =
        op_pg_query(&pg,
                    "SELECT price::text, qty, taker_account, taker_side, "
                    "to_char(matched_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') "
                    "FROM fills WHERE fill_id = $1",
                    1, (const char *[]){"990001"});
    assert_non_null(res);
    assert_int_equal(op_pg_rows(res), 1);
    assert_string_equal(op_pg_value(res, 0, 0), "187.25");
    assert_string_equal(op_pg_value(res, 0, 1), "100");
    assert_string_equal(op_pg_value(res, 0, 2), "al\\ice\t");
    assert_string_equal(op_pg_value(res, 0, 3), "buy");
    assert_string_equal(op_pg_value(res, 0, 4), "2026-11-21 10:00:00.123456");
    op_pg_clear(res);
    res = op_pg_query(&pg, "SELECT price::text FROM fills WHERE fill_id = 990002", 0, NULL);
    assert_string_equal(op_pg_value(res, 0, 0), "92233720368547758.07"); /* exact, no float */
    op_pg_clear(res);

    /* A bad row aborts the COPY with the server's message; nothing lands. */
    assert_int_equal(op_pg_exec(&pg, "BEGIN"), 0);
    assert_int_equal(
        op_pg_exec(&pg, "CREATE TEMP TABLE smoke_stage (LIKE fills INCLUDING ALL) ON COMMIT DROP"),
        0);
    assert_int_equal(op_pg_copy_begin(&pg, "COPY smoke_stage (" FILL_COLS ") FROM STDIN"), 0);
    const char *bad = "990003\tAAPL\tnot-a-number\t1\t1\t1\ta\tb\tbuy\t2026-11-21 10:00:00+00\n";
    op_pg_copy_put(&pg, bad, strlen(bad));
    assert_int_equal(op_pg_copy_end(&pg, 0), -1);
    assert_non_null(strstr(pg.err, "numeric"));
    op_pg_exec(&pg, "ROLLBACK");
    res = op_pg_query(&pg, "SELECT count(*) FROM fills WHERE fill_id = 990003", 0, NULL);
    assert_string_equal(op_pg_value(res, 0, 0), "0");
    op_pg_clear(res);

    op_buf_release(&b);
    op_pg_close(&pg);
}

/* Migrations are idempotent and a changed applied migration is refused. */
static void test_migrations(void **state)
{
    (void)state;
    struct op_pg pg = {0};
    int applied = -1;
    if (op_pg_connect(&pg, cfg.database_url, "test_smoke") != 0)
        fail_msg("%s", pg.err);
    assert_int_equal(op_pg_migrate(&pg, cfg.schemas_dir, &applied), 0);
    assert_int_equal(applied, 0); /* setup already applied them all */

    char dir[] = "/tmp/op-mig-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/001_t.sql", dir);
    FILE *f = fopen(path, "w");
    fputs("CREATE TABLE IF NOT EXISTS smoke_mig (x int);", f);
    fclose(f);
    assert_int_equal(op_pg_migrate(&pg, dir, &applied), 0);
    assert_int_equal(applied, 1);
    f = fopen(path, "w");
    fputs("CREATE TABLE IF NOT EXISTS smoke_mig (x int, y int);", f);
    fclose(f);
    assert_int_equal(op_pg_migrate(&pg, dir, &applied), -1);
    assert_non_null(strstr(pg.err, "changed after it was applied"));
    /* a failing migration rolls back and is not recorded */
    snprintf(path, sizeof(path), "%s/002_bad.sql", dir);
    f = fopen(path, "w");
    fputs("CREATE TABLE smoke_bad (x int); SELECT no_such_function();", f);
    fclose(f);
    assert_int_equal(op_pg_exec(&pg, "DELETE FROM schema_migrations WHERE version = '001_t.sql'"),
                     0);
    assert_int_equal(op_pg_migrate(&pg, dir, &applied), -1);
    assert_non_null(strstr(pg.err, "002_bad.sql"));
    struct pg_result *res = op_pg_query(&pg, "SELECT to_regclass('smoke_bad') IS NULL", 0, NULL);
    assert_string_equal(op_pg_value(res, 0, 0), "t");
    op_pg_clear(res);
    op_pg_exec(&pg, "DROP TABLE IF EXISTS smoke_mig; DELETE FROM schema_migrations WHERE version "
                    "IN ('001_t.sql')");
    remove(path);
    snprintf(path, sizeof(path), "%s/001_t.sql", dir);
    remove(path);
    remove(dir);
    op_pg_close(&pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_through_redis),
        cmocka_unit_test(test_fill_through_copy),
        cmocka_unit_test(test_migrations),
    };
    return cmocka_run_group_tests_name("smoke", tests, setup, NULL);
}

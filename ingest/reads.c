/* The read side of the REST API: orders and fills from PostgreSQL, owner-only. */
#include "ingest/reads.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/json.h"
#include "shared/alloc.h"
#include "shared/log.h"
#include "shared/pg.h"
#include "shared/redis.h"

static const char *db_url;

/* One connection per HTTP thread: libpq connections are not shared between
 * threads, and the pool's threads are few and long-lived. A thread-specific
 * key closes it when the thread exits. */
struct thread_db {
    struct op_pg pg;
    int64_t next_retry_ms; /* no reconnect attempt before this */
};
static pthread_key_t db_key;

static void thread_db_free(void *p)
{
    struct thread_db *t = p;
    op_pg_close(&t->pg);
    op_free(t);
}

void reads_init(const char *database_url)
{
    db_url = database_url;
    pthread_key_create(&db_key, thread_db_free);
}

/* Returns this thread's connection, connecting or resetting as needed, or
 * NULL while PostgreSQL is unreachable (retried at most once a second so a
 * dead database does not add a connect timeout to every request). */
static struct op_pg *db(void)
{
    struct thread_db *t = pthread_getspecific(db_key);
    if (!t) {
        t = op_calloc(1, sizeof(*t));
        if (!t || pthread_setspecific(db_key, t) != 0) {
            op_free(t);
            return NULL;
        }
    }
    if (op_pg_ok(&t->pg))
        return &t->pg;
    if (op_now_ms() < t->next_retry_ms)
        return NULL;
    int rc = t->pg.conn ? op_pg_reset(&t->pg) : op_pg_connect(&t->pg, db_url, "orderpipe-ingest");
    if (rc != 0) {
        op_warn("db_unavailable", "err=\"%s\"", t->pg.err);
        t->next_retry_ms = op_now_ms() + 1000;
        return NULL;
    }
    return &t->pg;
}

int reads_db_ok(void)
{
    struct op_pg *pg = db();
    if (!pg)
        return 0;
    struct pg_result *res = op_pg_query(pg, "SELECT 1", 0, NULL);
    if (!res)
        return 0;
    op_pg_clear(res);
    return 1;
}

static int db_fail(struct api_error *e)
{
    return api_fail(e, 503, "database_unavailable", "",
                    "the read side (postgresql) is unavailable; orders are still accepted");
}

/* Appends "key":"value" (or "key":null) with a leading comma unless first. */
static void put_field(struct op_buf *b, const char *key, const struct pg_result *res, int row,
                      int col, int quoted, int first)
{
    op_buf_printf(b, "%s\"%s\":", first ? "" : ",", key);
    if (op_pg_is_null(res, row, col))
        op_buf_append(b, "null", 4);
    else if (quoted)
        json_put_str(b, op_pg_value(res, row, col));
    else
        op_buf_printf(b, "%s", op_pg_value(res, row, col));
}

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

int reads_order(uint64_t id, const char *account, struct op_buf *out, struct api_error *e)
{
    static const char *const names[] = {
        "order_id",   "client_order_id", "account", "symbol",     "side",   "type",
        "tif",        "price",           "qty",     "filled_qty", "status", "reject_reason",
        "created_at", "updated_at"};
    /* numbers unquoted except ids and price (ids may exceed 2^53; prices are
     * exact decimals and must not meet a JSON parser's double) */
    static const int quoted[] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1};
    struct op_pg *pg = db();
    if (!pg)
        return db_fail(e);
    char idtxt[24];
    snprintf(idtxt, sizeof(idtxt), "%llu", (unsigned long long)id);
    const char *params[] = {idtxt, account};
    struct pg_result *res = op_pg_query(
        pg,
        "SELECT order_id::text, client_order_id, account, symbol, side, type, tif, price::text, "
        "qty, filled_qty, status, reject_reason, " TS("created_at") ", " TS(
            "updated_at") " FROM orders WHERE order_id = $1 AND account = $2",
        2, params);
    if (!res)
        return op_pg_ok(pg) ? api_fail(e, 500, "internal", "", "order lookup failed") : db_fail(e);
    if (op_pg_rows(res) == 0) {
        op_pg_clear(res);
        return api_fail(e, 404, "not_found", "order_id",
                        "no order %s for this account (yet: the read side lags the pipeline)",
                        idtxt);
    }
    op_buf_append(out, "{", 1);
    for (int c = 0; c < 14; c++)
        put_field(out, names[c], res, 0, c, quoted[c], c == 0);
    op_buf_append(out, "}", 1);
    op_pg_clear(res);
    return 0;
}

int reads_fills(const char *account, const char *symbol, uint64_t order_id, int limit,
                struct op_buf *out, struct api_error *e)
{
    struct op_pg *pg = db();
    if (!pg)
        return db_fail(e);
    char idtxt[24], limtxt[16];
    snprintf(idtxt, sizeof(idtxt), "%llu", (unsigned long long)order_id);
    snprintf(limtxt, sizeof(limtxt), "%d", limit);
    const char *params[] = {account, symbol ? symbol : "", idtxt, limtxt};
    /* The account's side of each fill: its order, its side, maker or taker.
     * The counterparty's account is never shown. */
    /* Two ordered index scans, one per role, merged: each reads at most
     * `limit` rows of (taker_account, fill_id) / (maker_account, fill_id)
     * newest first, where an OR would need a bitmap scan and a sort of all
     * the account's fills. A self-trade shows both of its legs, taker
     * first: the tie on fill_id is broken, so the order does not depend on
     * the plan (one index scan, or a Merge Append over fills' partitions).
     * The fills of one order all lie between its created_at and updated_at
     * (report times only move forward in its shard, and the order's row
     * and its fills are written by the same transaction): that range
     * lets PostgreSQL skip, at run time, every partition of fills outside
     * the order's life, so a lookup by order reads the same few pages
     * however many days of partitions are kept (created_at is NULL for a
     * maker row whose ACCEPTED is not recorded yet: no lower bound then; an
     * order row archived away while its fills were kept: no bound at all). */
#define FILLS_LEG(role, acct_col, order_col, side_expr)                                            \
    "(SELECT fill_id, symbol, price, qty, " order_col " AS order_id, " side_expr                   \
    " AS side, '" role "' AS liquidity, matched_at FROM fills WHERE " acct_col " = $1"             \
    " AND ($2 = '' OR symbol = $2) AND ($3::bigint = 0 OR (" order_col " = $3::bigint"             \
    " AND matched_at BETWEEN coalesce((SELECT created_at FROM orders WHERE order_id = "            \
    "$3::bigint),"                                                                                 \
    " '-infinity') AND coalesce((SELECT updated_at FROM orders WHERE order_id = $3::bigint),"      \
    " 'infinity')))"                                                                               \
    " ORDER BY fill_id DESC LIMIT $4::int)"
    struct pg_result *res = op_pg_query(
        pg,
        "SELECT fill_id::text, symbol, price::text, qty, order_id::text, side, "
        "liquidity, " TS("matched_at") " FROM (" FILLS_LEG(
            "taker", "taker_account", "taker_order_id",
            "taker_side") " UNION ALL " FILLS_LEG("maker", "maker_account", "maker_order_id",
                                                  "CASE WHEN taker_side = 'buy' THEN "
                                                  "'sell' ELSE 'buy' END") ") f ORDER BY "
                                                                           "f.fill_id DESC, "
                                                                           "f.liquidity DESC "
                                                                           "LIMIT $4::int",
        4, params);
#undef FILLS_LEG
    if (!res)
        return op_pg_ok(pg) ? api_fail(e, 500, "internal", "", "fills lookup failed") : db_fail(e);
    static const char *const names[] = {"fill_id",  "symbol", "price",     "qty",
                                        "order_id", "side",   "liquidity", "matched_at"};
    static const int quoted[] = {1, 1, 1, 0, 1, 1, 1, 1};
    op_buf_append(out, "{\"fills\":[", 10);
    for (int r = 0; r < op_pg_rows(res); r++) {
        op_buf_append(out, r ? ",{" : "{", r ? 2 : 1);
        for (int c = 0; c < 8; c++)
            put_field(out, names[c], res, r, c, quoted[c], c == 0);
        op_buf_append(out, "}", 1);
    }
    op_buf_append(out, "]}", 2);
    op_pg_clear(res);
    return 0;
}

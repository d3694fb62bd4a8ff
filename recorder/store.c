/* The recorder's PostgreSQL side: one transaction per batch, idempotent, with dead letters. */
#include "recorder/store.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "recorder/copybin.h"
#include "shared/log.h"
#include "shared/redis.h"
#include "shared/shard.h"

/* The staging tables, once per session. TEMP: no WAL and private to the
 * session; ON COMMIT DELETE ROWS: emptied by each commit, so nothing is
 * created or dropped per batch (that would bloat the catalog). Their
 * columns are the COPY rows' (recorder/batch.h), typed exactly as in the
 * tables, which the binary format needs (CREATE TABLE AS copies no
 * constraint). */
static const char SESSION_SQL[] =
    "CREATE TEMP TABLE IF NOT EXISTS rec_fills ON COMMIT DELETE ROWS AS"
    " SELECT " REC_FILLS_COLUMNS " FROM fills WITH NO DATA;"
    "CREATE TEMP TABLE IF NOT EXISTS rec_orders ON COMMIT DELETE ROWS AS"
    " SELECT " REC_ORDERS_COLUMNS " FROM orders WITH NO DATA;"
    "DEALLOCATE ALL;"
    /* The safe path for fills (a batch the fast path found already partly
     * recorded): a redelivered trade has the same fill_id, DO NOTHING absorbs
     * it. Staged in fill_id order (sorted in C), which a scan of the staging
     * table returns, so two recorders inserting overlapping batches lock keys
     * in one order. No conflict target: the only unique key of fills is
     * (fill_id) before migration 007 and (fill_id, matched_at) after it (a
     * replayed trade has the same matched_at too), and a recorder may run
     * across the migration. */
    "PREPARE rec_ins_fills AS"
    " INSERT INTO fills (" REC_FILLS_COLUMNS ")"
    " SELECT * FROM rec_fills ON CONFLICT DO NOTHING;"
    /* orders that may exist: one staged row per order (merged in C), in
     * order_id order. The state (price, qty, filled_qty, status,
     * reject_reason, updated_at) is taken only from a higher version
     * (report_id), so it only moves forward whatever the order in which
     * recorders commit (price is state since a REPLACED report can change
     * it: issue 14); the description (side … created_at) is filled in where
     * it is missing (a maker row created from a TRADE before its own
     * ACCEPTED was recorded), and so is a price that is missing (a row
     * written before price was state). A row with nothing new is not
     * touched at all. The count of rows written comes from the command tag
     * (no RETURNING). */
    "PREPARE rec_upsert_orders AS"
    " INSERT INTO orders AS o (" REC_ORDERS_COLUMNS ")"
    " SELECT * FROM rec_orders"
    " ON CONFLICT (order_id) DO UPDATE SET"
    "  client_order_id = COALESCE(o.client_order_id, EXCLUDED.client_order_id),"
    "  side = COALESCE(o.side, EXCLUDED.side),"
    "  type = COALESCE(o.type, EXCLUDED.type),"
    "  tif = COALESCE(o.tif, EXCLUDED.tif),"
    "  post_only = COALESCE(o.post_only, EXCLUDED.post_only),"
    "  price = CASE WHEN EXCLUDED.version > o.version THEN COALESCE(EXCLUDED.price, o.price)"
    "          ELSE COALESCE(o.price, EXCLUDED.price) END,"
    "  created_at = COALESCE(o.created_at, EXCLUDED.created_at),"
    "  qty = CASE WHEN EXCLUDED.version > o.version THEN EXCLUDED.qty ELSE o.qty END,"
    "  filled_qty = CASE WHEN EXCLUDED.version > o.version"
    "               THEN EXCLUDED.filled_qty ELSE o.filled_qty END,"
    "  status = CASE WHEN EXCLUDED.version > o.version THEN EXCLUDED.status ELSE o.status END,"
    "  reject_reason = CASE WHEN EXCLUDED.version > o.version"
    "                  THEN EXCLUDED.reject_reason ELSE o.reject_reason END,"
    "  updated_at = CASE WHEN EXCLUDED.version > o.version"
    "               THEN EXCLUDED.updated_at ELSE o.updated_at END,"
    "  version = GREATEST(o.version, EXCLUDED.version)"
    " WHERE EXCLUDED.version > o.version"
    "  OR (o.side IS NULL AND EXCLUDED.side IS NOT NULL)"
    "  OR (o.created_at IS NULL AND EXCLUDED.created_at IS NOT NULL);";

/* The fast path: rows straight into the tables, like `psql \copy` (no
 * staging, no ON CONFLICT check per row). A unique violation (a redelivered
 * batch, or a row another recorder wrote first) rolls the transaction back
 * and the range is written again through the safe path above. */
static const char COPY_FILLS_SQL[] =
    "COPY fills (" REC_FILLS_COLUMNS ") FROM STDIN (FORMAT binary)";
static const char COPY_ORDERS_SQL[] =
    "COPY orders (" REC_ORDERS_COLUMNS ") FROM STDIN (FORMAT binary)";
static const char COPY_STAGE_FILLS_SQL[] = "COPY rec_fills FROM STDIN (FORMAT binary)";
static const char COPY_STAGE_ORDERS_SQL[] = "COPY rec_orders FROM STDIN (FORMAT binary)";

/* Rare: one statement per poison entry or report. (stream, entry_id,
 * report) is unique (migration 004), so a redelivered poison is recorded once. */
static const char DEAD_LETTER_SQL[] =
    "INSERT INTO dead_letters (stream, entry_id, report, raw, error)"
    " VALUES ($1, $2, $3::integer, decode($4, 'hex'), $5)"
    " ON CONFLICT (stream, entry_id, (COALESCE(report, -1))) DO NOTHING RETURNING id";

void rec_store_init(struct rec_store *st, const char *url, struct rec_stats *stats)
{
    memset(st, 0, sizeof(*st));
    st->url = url;
    st->stats = stats;
    st->backoff_ms = REC_PG_BACKOFF_MIN_MS;
    rec_copy_init(&st->copy);
    op_buf_init(&st->hex);
    op_buf_init(&st->one);
}

void rec_store_release(struct rec_store *st)
{
    op_pg_close(&st->pg);
    rec_copy_release(&st->copy);
    op_buf_release(&st->hex);
    op_buf_release(&st->one);
}

/* Copies the last error into out[size] fit for a log value or a dead letter:
 * printable ASCII only, double quotes turned into single ones. */
static void clean_err(const struct rec_store *st, char *out, size_t size)
{
    snprintf(out, size, "%s", st->pg.err);
    for (char *p = out; *p; p++) {
        if (*p == '"')
            *p = '\'';
        else if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = ' ';
    }
}

/* Notes a failure to reach or use the server: gauge down, retry counted,
 * session to be rebuilt if the connection went. */
static void pg_failed(struct rec_store *st, const char *what)
{
    REC_SET(st->stats, pg_up, 0);
    REC_ADD(st->stats, pg_retries, 1);
    if (!op_pg_ok(&st->pg))
        st->session_ready = 0;
    char err[256];
    clean_err(st, err, sizeof(err));
    op_warn("postgres_unavailable", "op=%s sqlstate=%s err=\"%s\"", what,
            st->pg.sqlstate[0] ? st->pg.sqlstate : "-", err);
}

/* After a failed attempt (a connect, or a transaction the server refused
 * for a reason other than the data: disk full, shutting down, ...): the next
 * one not before backoff_ms, which doubles up to REC_PG_BACKOFF_MAX_MS. Only a
 * commit resets it (store_write), so a server that accepts connections but
 * fails every transaction is retried at the same slowing pace. */
static void backoff(struct rec_store *st, int64_t now)
{
    st->next_attempt_ms = now + st->backoff_ms;
    st->backoff_ms =
        st->backoff_ms * 2 > REC_PG_BACKOFF_MAX_MS ? REC_PG_BACKOFF_MAX_MS : st->backoff_ms * 2;
}

/*
 * Creates the coming days' partitions of fills and drains its default
 * partition (migration 007's orderpipe_fills_ensure_partitions), at the
 * start of each session and then every REC_PARTITIONS_EVERY_MS. Never in the
 * way of recording: a failure (a lock not granted within the function's
 * lock_timeout, say) is logged and counted, and retried after
 * REC_PARTITIONS_RETRY_MS; meanwhile rows of a day without a partition go to
 * the default partition, nothing is refused. Before migration 007 the
 * function does not exist: noted once per session, not counted.
 */
static void ensure_partitions(struct rec_store *st)
{
    int64_t now = op_now_ms();
    long created = 0;
    int rc = op_pg_fills_partitions(&st->pg, &created);
    if (rc == 1) {
        REC_ADD(st->stats, parts_created, (uint64_t)(created > 0 ? created : 0));
        if (created > 0)
            op_info("fills_partitions_created", "count=%ld", created);
        st->next_parts_ms = now + REC_PARTITIONS_EVERY_MS;
        return;
    }
    if (rc == 0) {
        op_info("fills_partitions_missing", "note=\"migration 007 not applied\"");
        st->next_parts_ms = now + REC_PARTITIONS_EVERY_MS;
        return;
    }
    char err[256];
    clean_err(st, err, sizeof(err));
    REC_ADD(st->stats, parts_failed, 1);
    op_warn("fills_partitions_failed", "sqlstate=%s err=\"%s\" retry_ms=%lld",
            st->pg.sqlstate[0] ? st->pg.sqlstate : "-", err, (long long)REC_PARTITIONS_RETRY_MS);
    st->next_parts_ms = now + REC_PARTITIONS_RETRY_MS;
}

int rec_store_ready(struct rec_store *st)
{
    if (st->session_ready && op_pg_ok(&st->pg))
        return 0;
    int64_t now = op_now_ms();
    if (now < st->next_attempt_ms)
        return -1;
    int rc;
    if (!st->pg.conn)
        rc = op_pg_connect(&st->pg, st->url, "orderpipe-recorder");
    else
        rc = op_pg_reset(&st->pg);
    if (rc == 0)
        rc = op_pg_exec(&st->pg, SESSION_SQL);
    if (rc != 0) {
        pg_failed(st, "connect");
        st->session_ready = 0;
        backoff(st, now);
        return -1;
    }
    if (st->commits > 0 || st->next_attempt_ms > 0)
        op_info("postgres_connected", "note=\"session prepared\"");
    st->session_ready = 1;
    REC_SET(st->stats, pg_up, 1);
    ensure_partitions(st);
    return 0;
}

/* 1 when the last failure is about the data (a value or a constraint):
 * retrying the same rows cannot succeed, isolating them can. */
static int data_error(const struct rec_store *st)
{
    const char *s = st->pg.sqlstate;
    return op_pg_ok(&st->pg) && (strncmp(s, "22", 2) == 0 || strncmp(s, "23", 2) == 0);
}

/* Runs sql (COPY … FROM STDIN (FORMAT binary)) with the given buffers of
 * tuples as its data, one after the other, between the format's header and
 * trailer; adds the rows loaded to *rows. Returns 0 or -1 (pg.err). */
static int copy_in(struct rec_store *st, const char *sql, const struct op_buf *d1,
                   const struct op_buf *d2, long long *rows)
{
    if (op_pg_copy_begin(&st->pg, sql) != 0)
        return -1;
    char header[REC_COPYBIN_HEADER_LEN], trailer[REC_COPYBIN_TRAILER_LEN];
    size_t hlen = rec_copybin_header(header), tlen = rec_copybin_trailer(trailer);
    if (op_pg_copy_put(&st->pg, header, hlen) != 0 ||
        op_pg_copy_put(&st->pg, d1->data, d1->len) != 0 ||
        (d2 && op_pg_copy_put(&st->pg, d2->data, d2->len) != 0) ||
        op_pg_copy_put(&st->pg, trailer, tlen) != 0) {
        char keep[256];
        snprintf(keep, sizeof(keep), "%s", st->pg.err);
        op_pg_copy_end(&st->pg, 1);
        snprintf(st->pg.err, sizeof(st->pg.err), "%s", keep);
        return -1;
    }
    long long n = 0;
    if (op_pg_copy_end_rows(&st->pg, &n) != 0)
        return -1;
    *rows += n;
    return 0;
}

/*
 * Inserts, in autocommit (its own transaction), the dead letter of report k
 * of b (k == SIZE_MAX: the whole entry e, which has no decoded reports) with
 * error why. A report that is its entry's only one stands for the entry: raw
 * is then the entry's `m`, byte for byte, and report NULL; otherwise report
 * is its index in the entry and raw that report alone, re-encoded. Returns 1
 * inserted, 0 already there, -1 failed.
 */
static int insert_dead_letter(struct rec_store *st, const struct rec_batch *b,
                              const struct rec_entry *e, size_t k, const char *why)
{
    static const char hexd[] = "0123456789abcdef";
    char stream[OP_KEY_MAX], index[24] = "";
    op_key_fills(stream, e->shard);
    const unsigned char *raw = (const unsigned char *)b->raw.data + e->raw_off;
    size_t raw_len = e->raw_len;
    int has_raw = e->has_raw;
    op_buf_reset(&st->one);
    if (k != SIZE_MAX && e->n > 1) {
        snprintf(index, sizeof(index), "%zu", k - e->first);
        if (rec_batch_report_raw(b, k, &st->one) != 0)
            return op_log_fail("out_of_memory", "what=dead_letter");
        raw = (const unsigned char *)st->one.data;
        raw_len = st->one.len;
        has_raw = 1;
    }
    op_buf_reset(&st->hex);
    if (op_buf_reserve(&st->hex, raw_len * 2 + 1) != 0)
        return op_log_fail("out_of_memory", "what=dead_letter");
    for (size_t i = 0; i < raw_len; i++) {
        st->hex.data[st->hex.len++] = hexd[raw[i] >> 4];
        st->hex.data[st->hex.len++] = hexd[raw[i] & 15];
    }
    st->hex.data[st->hex.len] = '\0';
    /* Only printable ASCII in the error text, whatever the server quoted. */
    char err[300];
    snprintf(err, sizeof(err), "%s", why);
    for (char *p = err; *p; p++)
        if (*p == '\n')
            *p = ' ';
        else if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = '?';
    const char *params[] = {stream, e->id, index[0] ? index : NULL, has_raw ? st->hex.data : NULL,
                            err};
    struct pg_result *res = op_pg_query(&st->pg, DEAD_LETTER_SQL, 5, params);
    if (!res)
        return -1;
    int rows = op_pg_rows(res);
    op_pg_clear(res);
    for (char *p = err; *p; p++)
        if (*p == '"')
            *p = '\'';
    op_warn("dead_letter", "stream=%s id=%s report=%s err=\"%s\"", stream, e->id,
            index[0] ? index : "all", err);
    return rows > 0;
}

/* Test only (RECORDER_FAULT=exit_after_commit:N): dies like kill -9 right
 * after the Nth commit, before anything is acknowledged. */
static void fault_point(struct rec_store *st)
{
    if (st->fault_after && st->commits == st->fault_after) {
        op_warn("fault_injected", "what=exit_after_commit commits=%llu",
                (unsigned long long)st->commits);
        raise(SIGKILL);
    }
}

static uint64_t us_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (uint64_t)((t1.tv_sec - t0->tv_sec) * 1000000 + (t1.tv_nsec - t0->tv_nsec) / 1000);
}

/* What write_range returns besides 0 (committed) and -1 (any other failure). */
#define WRITE_DATA_ERROR 1 /* refused for its data (class 22/23): bisect */
#define WRITE_CONFLICT 2   /* fast path hit a row already there: use the safe path */

/*
 * One transaction for reports [lo, hi) of b:
 *   fast (safe == 0): COPY fills and the range's new orders straight into the
 *     tables; stage the other orders rows and upsert them;
 *   safe: stage everything, INSERT fills … ON CONFLICT DO NOTHING, upsert
 *     every orders row — idempotent whatever is already recorded.
 * then COMMIT. Returns 0 committed,
 * WRITE_CONFLICT (fast only: a unique violation, rolled back),
 * WRITE_DATA_ERROR (pg.err says why; rolled back), or -1 for any other
 * failure (rolled back or connection lost).
 */
static int write_range(struct rec_store *st, struct rec_batch *b, size_t lo, size_t hi, int safe)
{
    struct rec_copy *c = &st->copy;
    long long fills_written = 0, orders_written = 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (rec_batch_build(b, lo, hi, c) != 0) {
        op_error("out_of_memory", "what=copy_text");
        return -1;
    }
    if (op_pg_exec(&st->pg, "BEGIN") != 0)
        goto fail;
    long long staged = 0, upserted = 0; /* rows copied into a staging table; upserted */
    if (!safe) {
        if (c->nfills && copy_in(st, COPY_FILLS_SQL, &c->fills, NULL, &fills_written) != 0)
            goto fail;
        if (c->nnew && copy_in(st, COPY_ORDERS_SQL, &c->new_orders, NULL, &orders_written) != 0)
            goto fail;
        if (c->nupd && (copy_in(st, COPY_STAGE_ORDERS_SQL, &c->upd_orders, NULL, &staged) != 0 ||
                        op_pg_exec_rows(&st->pg, "EXECUTE rec_upsert_orders", &upserted) != 0))
            goto fail;
    } else {
        if (c->nfills && (copy_in(st, COPY_STAGE_FILLS_SQL, &c->fills, NULL, &staged) != 0 ||
                          op_pg_exec_rows(&st->pg, "EXECUTE rec_ins_fills", &fills_written) != 0))
            goto fail;
        if ((c->nnew || c->nupd) &&
            (copy_in(st, COPY_STAGE_ORDERS_SQL, &c->new_orders, &c->upd_orders, &staged) != 0 ||
             op_pg_exec_rows(&st->pg, "EXECUTE rec_upsert_orders", &upserted) != 0))
            goto fail;
    }
    orders_written += upserted;
    if (op_pg_exec(&st->pg, "COMMIT") != 0)
        goto fail; /* outcome unknown: the retry is idempotent either way */
    st->commits++;
    op_hist_observe(&st->stats->commit_us, us_since(&t0));
    REC_ADD(st->stats, fills_written, (uint64_t)fills_written);
    REC_ADD(st->stats, orders_written, (uint64_t)orders_written);
    REC_SET(st->stats, pg_up, 1);
    fault_point(st);
    return 0;
fail:;
    int data = data_error(st);
    int conflict = !safe && data && strcmp(st->pg.sqlstate, "23505") == 0;
    char keep[256], state[6];
    snprintf(keep, sizeof(keep), "%s", st->pg.err);
    snprintf(state, sizeof(state), "%s", st->pg.sqlstate);
    if (op_pg_ok(&st->pg))
        op_pg_exec(&st->pg, "ROLLBACK");
    snprintf(st->pg.err, sizeof(st->pg.err), "%s", keep);
    snprintf(st->pg.sqlstate, sizeof(st->pg.sqlstate), "%s", state);
    if (conflict) {
        REC_ADD(st->stats, safe_retries, 1);
        return WRITE_CONFLICT;
    }
    if (data)
        return WRITE_DATA_ERROR;
    pg_failed(st, "write");
    return -1;
}

/* Dead-letters report k of entry e of b (k == SIZE_MAX: the whole entry)
 * in autocommit, counting it. Returns 0, or -1 to retry the batch. */
static int dead_letter(struct rec_store *st, struct rec_batch *b, const struct rec_entry *e,
                       size_t k, const char *why)
{
    int d = insert_dead_letter(st, b, e, k, why);
    if (d < 0) {
        pg_failed(st, "dead_letter");
        return -1;
    }
    REC_ADD(st->stats, dead_letters, (uint64_t)d);
    return 0;
}

/* dead_letter of report k alone. */
static int dead_report(struct rec_store *st, struct rec_batch *b, size_t k, const char *why)
{
    return dead_letter(st, b, &b->entries[b->rep_entry[k]], k, why);
}

/* Records reports [lo, hi), splitting on data errors down to single reports,
 * which become dead letters. Returns 0 when all are committed, -1 to retry. */
static int write_split(struct rec_store *st, struct rec_batch *b, size_t lo, size_t hi)
{
    int r = write_range(st, b, lo, hi, 0);
    if (r == WRITE_CONFLICT)
        r = write_range(st, b, lo, hi, 1);
    if (r <= 0)
        return r;
    if (hi - lo == 1) {
        char why[256];
        snprintf(why, sizeof(why), "%s", st->pg.err);
        return dead_report(st, b, lo, why);
    }
    REC_ADD(st->stats, bisects, 1);
    char err[256];
    clean_err(st, err, sizeof(err));
    op_info("batch_split", "reports=%zu err=\"%s\"", hi - lo, err);
    size_t mid = lo + (hi - lo) / 2;
    if (write_split(st, b, lo, mid) != 0)
        return -1;
    return write_split(st, b, mid, hi);
}

/*
 * Writes b: its reports (bisected on data errors), then the dead letters
 * found before writing — entries that could not be decoded, reports set
 * aside by rec_batch_add — each on its own. Every step is idempotent, so a
 * failure anywhere (-1) retries the whole batch safely; 0 when all of b is
 * recorded or dead-lettered and may be acknowledged.
 */
static int write_all(struct rec_store *st, struct rec_batch *b)
{
    if (b->nreports > b->nbad && write_split(st, b, 0, b->nreports) != 0)
        return -1;
    for (size_t i = 0; i < b->nbad; i++)
        if (dead_report(st, b, b->bad[i].report, b->bad[i].err) != 0)
            return -1;
    for (size_t i = 0; i < b->nentries; i++)
        if (b->entries[i].err[0] &&
            dead_letter(st, b, &b->entries[i], SIZE_MAX, b->entries[i].err) != 0)
            return -1;
    return 0;
}

int rec_store_write(struct rec_store *st, struct rec_batch *b)
{
    if (b->nentries == 0)
        return 0;
    if (op_now_ms() < st->next_attempt_ms) /* backing off after a failure */
        return -1;
    if (rec_store_ready(st) != 0)
        return -1;
    if (op_now_ms() >= st->next_parts_ms)
        ensure_partitions(st);
    if (write_all(st, b) != 0) {
        backoff(st, op_now_ms());
        return -1;
    }
    st->backoff_ms = REC_PG_BACKOFF_MIN_MS;
    st->next_attempt_ms = 0;
    return 0;
}

/* The recorder's PostgreSQL side: one transaction per batch, idempotent, with dead letters. */
#ifndef REC_STORE_H
#define REC_STORE_H

#include <stdint.h>

#include "recorder/batch.h"
#include "recorder/stats.h"
#include "shared/buf.h"
#include "shared/pg.h"

struct rec_store {
    struct op_pg pg;
    const char *url;         /* (ref) DATABASE_URL */
    struct rec_stats *stats; /* (ref) */
    int session_ready;       /* staging tables and prepared statements exist */
    int backoff_ms;          /* delay before the next reconnect attempt */
    int64_t next_attempt_ms; /* monotonic ms before which rec_store_ready won't retry */
    struct rec_copy copy;    /* COPY rows (binary), reused across batches */
    struct op_buf hex;       /* a dead letter's raw bytes as hex */
    struct op_buf one;       /* a dead report re-encoded alone */
    uint64_t commits;        /* transactions committed */
    uint64_t fault_after;    /* test only: SIGKILL self after this commit (0: never) */
    int64_t next_parts_ms;   /* monotonic ms of the next ensure_partitions call */
};

/* Why these bounds: 100 ms retries a restarting server quickly; 5 s keeps a
 * long outage from filling the log while recovering within seconds. */
#define REC_PG_BACKOFF_MIN_MS 100
#define REC_PG_BACKOFF_MAX_MS 5000

/* The daily partitions of fills (migration 007) are created every hour,
 * a week ahead (the SQL function's default, which orderpipe-setup uses
 * too): a recorder whose calls keep failing (logged,
 * recorder_partition_failures_total) has days to be noticed before rows go
 * to the default partition — where they are still recorded, just not yet
 * in their day's partition. A failed call is retried after a minute. */
#define REC_PARTITIONS_EVERY_MS ((int64_t)3600 * 1000)
#define REC_PARTITIONS_RETRY_MS ((int64_t)60 * 1000)

/* Prepares st (no connection yet). url and stats must outlive st. */
void rec_store_init(struct rec_store *st, const char *url, struct rec_stats *stats);
void rec_store_release(struct rec_store *st);

/*
 * Makes sure the connection is up and the session prepared: the TEMP staging
 * tables (created once per session, ON COMMIT DELETE ROWS) and the prepared
 * statements. Retries at most once per backoff delay (doubling up to
 * REC_PG_BACKOFF_MAX_MS). Returns 0 when ready, -1 otherwise (logged).
 * A new session also creates the coming days' partitions of fills (a
 * failure there is logged and counted, never fatal).
 */
int rec_store_ready(struct rec_store *st);

/*
 * Records every entry of b, committed, before returning 0:
 *   BEGIN; COPY fills; COPY orders (new rows); upsert of the other orders rows
 *   guarded by version (= report_id, state only moves forward; description
 *   filled in once); COMMIT — then the dead letters of what rec_batch_add
 *   set aside (undecodable entries, reports of an unknown kind or symbol),
 *   each in its own statement.
 * When PostgreSQL refuses the data itself (SQLSTATE class 22 or 23: a value
 * or a constraint), the range of reports is split in halves and each
 * retried, down to the single report, which goes to dead_letters with the
 * server's message: every other report — of the same entry too — is
 * recorded. Any other failure (connection lost, server restarting,
 * deadlock, disk full) returns -1: nothing is lost, the caller retries the
 * same batch later (every statement is idempotent). After a failure, calls
 * before the backoff delay (REC_PG_BACKOFF_MIN_MS doubling to
 * REC_PG_BACKOFF_MAX_MS, reset by a commit) return -1 at once without
 * touching the server: the caller may poll it as often as it likes.
 */
int rec_store_write(struct rec_store *st, struct rec_batch *b);

#endif

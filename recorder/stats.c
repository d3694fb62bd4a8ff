/* The recorder's counters and gauges rendered as Prometheus text. */
#include "recorder/stats.h"

#include <stdio.h>

#include "shared/alloc.h"

int rec_stats_init(struct rec_stats *s, uint32_t shards)
{
    s->shards = shards;
    s->lag = op_calloc(shards, sizeof(*s->lag));
    s->pending = op_calloc(shards, sizeof(*s->pending));
    if (!s->lag || !s->pending) {
        rec_stats_release(s);
        return -1;
    }
    return 0;
}

void rec_stats_release(struct rec_stats *s)
{
    op_free((void *)s->lag);
    op_free((void *)s->pending);
    s->lag = NULL;
    s->pending = NULL;
}

void rec_stats_render(const struct rec_stats *s, struct op_buf *b)
{
    op_metrics_counter(b, "recorder_entries_total", "Stream entries taken into a batch.",
                       REC_GET(s, entries));
    op_metrics_counter(b, "recorder_reports_total", "Execution reports decoded.",
                       REC_GET(s, reports));
    op_metrics_counter(b, "recorder_fills_written_total",
                       "Rows inserted into fills (redeliveries excluded).",
                       REC_GET(s, fills_written));
    op_metrics_counter(b, "recorder_order_updates_total", "Rows of orders inserted or updated.",
                       REC_GET(s, orders_written));
    op_metrics_counter(b, "recorder_ignored_rejects_total",
                       "REJECTED cancel/amend/cancel-all/cancel-all-after (and duplicate-id new) "
                       "reports: no order change.",
                       REC_GET(s, ignored_rejects));
    op_metrics_counter(b, "recorder_batches_total", "Batches committed.", REC_GET(s, batches));
    op_metrics_counter(b, "recorder_bisects_total", "Batch splits while isolating a poison entry.",
                       REC_GET(s, bisects));
    op_metrics_counter(
        b, "recorder_safe_writes_total",
        "Batches whose direct COPY met rows already recorded (a redelivery): written again "
        "with ON CONFLICT.",
        REC_GET(s, safe_retries));
    op_metrics_counter(b, "recorder_dead_letters_total",
                       "Entries written to dead_letters and acknowledged.",
                       REC_GET(s, dead_letters));
    op_metrics_header(b, "recorder_retries_total", "counter",
                      "Failed attempts retried with backoff, by server.");
    op_metrics_sample(b, "recorder_retries_total", "target=\"postgres\"", REC_GET(s, pg_retries));
    op_metrics_sample(b, "recorder_retries_total", "target=\"redis\"", REC_GET(s, redis_retries));
    op_metrics_counter(b, "recorder_reclaimed_total",
                       "Pending entries of other consumers taken over (XAUTOCLAIM).",
                       REC_GET(s, reclaimed));
    op_metrics_counter(b, "recorder_reclaim_deleted_total",
                       "Pending ids XAUTOCLAIM reported deleted from the stream.",
                       REC_GET(s, reclaim_deleted));
    op_metrics_counter(b, "recorder_pending_trimmed_total",
                       "Own pending entries read back without fields (trimmed meanwhile).",
                       REC_GET(s, pending_trimmed));
    op_metrics_counter(b, "recorder_trimmed_total", "Stream entries removed by XTRIM MINID.",
                       REC_GET(s, trimmed));
    op_metrics_counter(b, "recorder_acked_total", "Entries acknowledged (XACK).",
                       REC_GET(s, acked));
    op_metrics_counter(b, "recorder_partitions_created_total",
                       "Daily partitions of fills created (orderpipe_fills_ensure_partitions).",
                       REC_GET(s, parts_created));
    op_metrics_counter(b, "recorder_partition_failures_total",
                       "Failed calls creating the coming days' partitions of fills (retried).",
                       REC_GET(s, parts_failed));
    op_metrics_gauge(b, "recorder_redis_up", "1 if the last Redis call succeeded.",
                     (uint64_t)REC_GET(s, redis_up));
    op_metrics_gauge(b, "recorder_postgres_up", "1 if the last PostgreSQL call succeeded.",
                     (uint64_t)REC_GET(s, pg_up));
    op_metrics_gauge(b, "recorder_blocked",
                     "1 while a batch waits for PostgreSQL or Redis to come back.",
                     (uint64_t)REC_GET(s, blocked));
    char lbl[32];
    op_metrics_header(b, "recorder_lag_entries", "gauge",
                      "Entries of fills:{S} not yet delivered to the recorders group.");
    for (uint32_t i = 0; i < s->shards; i++) {
        snprintf(lbl, sizeof(lbl), "shard=\"%u\"", i);
        int64_t v = atomic_load_explicit(&s->lag[i], memory_order_relaxed);
        op_metrics_sample(b, "recorder_lag_entries", lbl, v > 0 ? (uint64_t)v : 0);
    }
    op_metrics_header(b, "recorder_pending_entries", "gauge",
                      "Entries of fills:{S} delivered to the group but not acknowledged.");
    for (uint32_t i = 0; i < s->shards; i++) {
        snprintf(lbl, sizeof(lbl), "shard=\"%u\"", i);
        int64_t v = atomic_load_explicit(&s->pending[i], memory_order_relaxed);
        op_metrics_sample(b, "recorder_pending_entries", lbl, v > 0 ? (uint64_t)v : 0);
    }
    op_metrics_histogram(b, "recorder_batch_rows", "Reports per committed batch.", &s->batch_rows,
                         1, 1);
    op_metrics_histogram(b, "recorder_batch_seconds",
                         "Batch duration: first entry read to acknowledged.", &s->batch_us, 1e-6,
                         0);
    op_metrics_histogram(b, "recorder_commit_seconds", "One batch's transaction, BEGIN to COMMIT.",
                         &s->commit_us, 1e-6, 0);
}

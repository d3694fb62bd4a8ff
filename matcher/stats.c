/* The matcher's counters, histograms and per-shard gauges rendered as Prometheus text. */
#include <stdio.h>
#include <time.h>

#include "matcher/matcher.h"

#define GET(x) atomic_load_explicit(&(x), memory_order_relaxed)

int stats_render(const struct matcher_stats *st, uint32_t shards, struct op_buf *b)
{
    op_metrics_counter(b, "matcher_inputs_total", "Orders entries processed and published.",
                       GET(st->inputs));
    op_metrics_counter(b, "matcher_reports_total", "Execution reports published to fills:{S}.",
                       GET(st->reports));
    op_metrics_counter(b, "matcher_trades_total", "TRADE reports published.", GET(st->trades));
    op_metrics_counter(b, "matcher_malformed_total",
                       "Entries that did not decode (REJECTED MALFORMED).", GET(st->malformed));
    op_metrics_counter(b, "matcher_replayed_total",
                       "Inputs replayed without publishing during recoveries.", GET(st->replayed));
    op_metrics_counter(b, "matcher_batches_total", "Batches published (one MULTI/EXEC each).",
                       GET(st->batches));
    op_metrics_counter(b, "matcher_ticks_total",
                       "Tick inputs appended to orders:{S} so that engine time moves.",
                       GET(st->ticks));
    op_metrics_counter(b, "matcher_replication_timeouts_total",
                       "Publishes whose WAIT saw fewer than MATCHER_MIN_REPLICAS replicas in "
                       "time (their outputs and XACK may exist on the primary only).",
                       GET(st->repl_short));
    op_metrics_histogram(b, "matcher_replication_wait_seconds",
                         "Time WAIT added after a publish's EXEC reply (MATCHER_MIN_REPLICAS > 0).",
                         &st->wait_us, 1e-6, 0);
    op_metrics_counter(b, "matcher_fenced_total",
                       "Publishes refused by the lease fence (nil EXEC).", GET(st->fenced));
    op_metrics_counter(
        b, "matcher_publish_refused_total",
        "Publishes Redis refused whole (EXEC error: OOM, MISCONF, ...), retried as they were.",
        GET(st->publish_refused));
    op_metrics_header(b, "matcher_lease_changes_total", "counter",
                      "Lease changes of this worker, by kind.");
    op_metrics_sample(b, "matcher_lease_changes_total", "kind=\"acquired\"",
                      GET(st->lease_acquired));
    op_metrics_sample(b, "matcher_lease_changes_total", "kind=\"lost\"", GET(st->lease_lost));
    op_metrics_sample(b, "matcher_lease_changes_total", "kind=\"released\"",
                      GET(st->lease_released));
    op_metrics_counter(b, "matcher_recoveries_total",
                       "Shard recoveries (snapshot load + replay) completed.", GET(st->recoveries));
    op_metrics_counter(b, "matcher_snapshots_total", "Snapshots stored.", GET(st->snapshots));
    op_metrics_counter(b, "matcher_deleted_pending_total",
                       "Pending entries found deleted from the stream (content lost).",
                       GET(st->deleted_pending));
    op_metrics_counter(b, "matcher_redis_errors_total", "Redis connection failures.",
                       GET(st->redis_errors));
    op_metrics_counter(b, "matcher_book_updates_total", "book:{S}:<SYMBOL> keys written.",
                       GET(st->book_updates));
    op_metrics_gauge(b, "matcher_redis_up", "1 while Redis answers.", (uint64_t)GET(st->redis_up));
    op_metrics_gauge(b, "matcher_live_workers", "Matchers in the heartbeat set.",
                     (uint64_t)GET(st->live_workers));
    op_metrics_gauge(b, "matcher_target_shards", "Shards this worker should own.",
                     (uint64_t)GET(st->target_shards));
    op_metrics_histogram(b, "matcher_batch_size", "Inputs per published batch.", &st->batch_size, 1,
                         1);
    op_metrics_histogram(
        b, "matcher_batch_seconds",
        "Processing latency of a batch: from its read to its EXEC reply (fence, apply, publish).",
        &st->batch_latency, 1e-6, 0);
    op_metrics_histogram(b, "matcher_snapshot_seconds", "Time to serialise a snapshot.",
                         &st->snapshot_us, 1e-6, 0);
    op_metrics_histogram(b, "matcher_snapshot_kib", "Snapshot sizes in KiB.", &st->snapshot_bytes,
                         1, 1);
    op_metrics_histogram(b, "matcher_recovery_seconds", "Shard recoveries: snapshot load + replay.",
                         &st->recovery_us, 1e-6, 0);

    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    static const char *const names[] = {"matcher_shard_owned",
                                        "matcher_shard_lag",
                                        "matcher_shard_pending",
                                        "matcher_shard_open_orders",
                                        "matcher_shard_snapshot_age_seconds",
                                        "matcher_shard_backlog_orders"};
    static const char *const helps[] = {
        "1 while this worker owns the shard.",
        "Entries of orders:{S} not delivered to group matchers (without the orders counters).",
        "Entries delivered to group matchers, not yet acknowledged.",
        "Resting orders in the engine of an owned shard.",
        "Seconds since this worker stored the shard's last snapshot (owned shards).",
        "Inputs written to orders:{S} by ingest and not yet processed (oseq:{S} - odone:{S})."};
    for (int k = 0; k < 6; k++) {
        op_metrics_header(b, names[k], "gauge", helps[k]);
        for (uint32_t s = 0; s < shards; s++) {
            const struct matcher_shard_stats *ss = &st->shard[s];
            char lbl[32];
            snprintf(lbl, sizeof(lbl), "shard=\"%u\"", s);
            int owned = GET(ss->owned);
            int64_t at = GET(ss->snapshot_wall_ms);
            switch (k) {
            case 0:
                op_metrics_sample(b, names[k], lbl, (uint64_t)owned);
                break;
            case 1:
                op_metrics_sample(b, names[k], lbl, (uint64_t)GET(ss->lag));
                break;
            case 2:
                op_metrics_sample(b, names[k], lbl, (uint64_t)GET(ss->pending));
                break;
            case 3:
                if (owned)
                    op_metrics_sample(b, names[k], lbl, GET(ss->open_orders));
                break;
            case 4:
                if (owned && at > 0)
                    op_metrics_sample_f(b, names[k], lbl, (double)(now_ms - at) / 1000.0);
                break;
            default:
                if (GET(ss->backlog_orders) >= 0)
                    op_metrics_sample(b, names[k], lbl, (uint64_t)GET(ss->backlog_orders));
                break;
            }
        }
    }
    return 0;
}

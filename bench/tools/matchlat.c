/* Match latency for bench/e2e.sh: each report's ts (ingest receipt) to its fills entry's time in
 * Redis. */
#include "bench/tools/fillsread.h"

/*
 *   matchlat            (REDIS_URL, ORDER_SHARDS from the environment)
 *
 * Follows every fills:{S} stream from its end (XREAD BLOCK, no consumer
 * group: it takes nothing from the recorders) until SIGTERM/SIGINT, then
 * prints one line:
 *
 *   match latency (ms): p50 X p99 X p99.9 X (N reports)
 *
 * A report's latency is its fills entry's id time (the Redis clock when the
 * matcher's EXEC added it) minus the report's ts (ns since the epoch: the
 * ingest receipt time of its input, or the engine time when that was later
 * — docs/engine.md, "Time"). Both clocks are this machine's. Histogram in
 * 10 µs buckets up to 10 s: the percentiles are exact to 10 µs.
 */

/* Entries per XREAD: a fills entry holds up to 4096 reports (~1 MiB). */
#define READ_COUNT_TEXT "16"

static void on_entry(uint32_t shard, int64_t entry_ms, const struct op_report *reps, size_t n,
                     int64_t arrived_us)
{
    (void)shard;
    (void)arrived_us;
    for (size_t k = 0; k < n; k++)
        if (reps[k].ts_ns)
            fills_observe(entry_ms * 1000 - (int64_t)(reps[k].ts_ns / 1000));
}

int main(void)
{
    int rc = fills_follow("matchlat", READ_COUNT_TEXT, "500", on_entry);
    if (rc == 0)
        printf("match latency (ms): p50 %.2f p99 %.2f p99.9 %.2f (%" PRIu64 " reports)\n",
               fills_pct(0.5), fills_pct(0.99), fills_pct(0.999), fills_total);
    free(fills_hist);
    return rc;
}

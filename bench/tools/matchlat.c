/* Match latency for bench/e2e.sh: each report's ts (ingest receipt) to its fills entry's time in
 * Redis. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/codec.h"
#include "shared/config.h"
#include "shared/redis.h"
#include "shared/shard.h"

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

#define BUCKET_US 10
#define BUCKETS 1000000 /* 10 s */
/* Entries per XREAD: a fills entry holds up to 4096 reports (~1 MiB). */
#define READ_COUNT_TEXT "16"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static uint64_t *hist;
static uint64_t total;

static void observe(int64_t us)
{
    if (us < 0)
        us = 0;
    int64_t b = us / BUCKET_US;
    hist[b < BUCKETS ? b : BUCKETS - 1]++;
    total++;
}

static double pct(double q)
{
    uint64_t want = (uint64_t)((double)total * q), seen = 0;
    for (int64_t b = 0; b < BUCKETS; b++) {
        seen += hist[b];
        if (seen > want)
            return (double)(b * BUCKET_US) / 1000.0;
    }
    return (double)BUCKETS * BUCKET_US / 1000.0;
}

/* Folds one XREAD reply ([[stream, [[id, [k, v, …]], …]], …]) into the
 * histogram and advances last[] to the ids read. */
static void take(const struct redisReply *rep, char (*last)[48], uint32_t shards,
                 struct op_codec *codec, struct op_report *reps)
{
    for (size_t s = 0; s < op_reply_count(rep); s++) {
        const struct redisReply *st = op_reply_at(rep, s);
        const char *key = op_reply_str(op_reply_at(st, 0), NULL);
        const struct redisReply *ents = op_reply_at(st, 1);
        uint32_t shard = UINT32_MAX;
        if (!key || sscanf(key, "fills:{%" SCNu32 "}", &shard) != 1 || shard >= shards)
            continue;
        for (size_t e = 0; e < op_reply_count(ents); e++) {
            const struct redisReply *ent = op_reply_at(ents, e);
            size_t idlen = 0;
            const char *id = op_reply_str(op_reply_at(ent, 0), &idlen);
            const struct redisReply *kv = op_reply_at(ent, 1);
            if (!id || idlen >= sizeof(last[0]))
                continue;
            memcpy(last[shard], id, idlen);
            last[shard][idlen] = '\0';
            int64_t entry_ms = strtoll(id, NULL, 10);
            for (size_t f = 0; f + 1 < op_reply_count(kv); f += 2) {
                const char *name = op_reply_str(op_reply_at(kv, f), NULL);
                size_t mlen = 0;
                const char *m = op_reply_str(op_reply_at(kv, f + 1), &mlen);
                size_t n = 0;
                if (!name || strcmp(name, "m") != 0 || !m ||
                    op_codec_decode_reports(codec, m, mlen, reps, OP_CODEC_REPORTS_MAX, &n) != 0)
                    continue;
                for (size_t k = 0; k < n; k++)
                    if (reps[k].ts_ns)
                        observe(entry_ms * 1000 - (int64_t)(reps[k].ts_ns / 1000));
            }
        }
    }
}

int main(void)
{
    struct op_config c;
    op_config_load_or_exit(&c, "matchlat");
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    uint32_t shards = c.order_shards;
    hist = calloc(BUCKETS, sizeof(*hist));
    char(*last)[48] = calloc(shards, sizeof(*last));
    const char **argv = calloc(6 + 2 * (size_t)shards, sizeof(*argv));
    char(*keys)[OP_KEY_MAX] = calloc(shards, sizeof(*keys));
    struct op_report *reps = calloc(OP_CODEC_REPORTS_MAX, sizeof(*reps));
    struct op_codec *codec = op_codec_new();
    struct op_redis r;
    int rc = 2;
    memset(&r, 0, sizeof(r));
    if (!hist || !last || !argv || !keys || !reps || !codec ||
        op_redis_init(&r, c.redis_url, 5000) != 0 || op_redis_connect(&r) != 0) {
        fprintf(stderr, "matchlat: cannot start (memory or redis at '%s')\n", c.redis_url);
        goto out;
    }
    /* Start after each stream's last entry ("$" would only hold for the
     * first read: a stream that got nothing then would lose what arrives
     * between two reads). */
    for (uint32_t s = 0; s < shards; s++) {
        op_key_fills(keys[s], s);
        snprintf(last[s], sizeof(last[s]), "0-0");
        struct redisReply *rep = op_redis_cmdf(&r, "XREVRANGE %s + - COUNT 1", keys[s]);
        size_t n = 0;
        const char *id = op_reply_str(op_reply_at(op_reply_at(rep, 0), 0), &n);
        if (id && n < sizeof(last[s])) {
            memcpy(last[s], id, n);
            last[s][n] = '\0';
        }
        op_reply_free(rep);
    }
    while (!stop) {
        int a = 0;
        argv[a++] = "XREAD";
        argv[a++] = "COUNT";
        argv[a++] = READ_COUNT_TEXT;
        argv[a++] = "BLOCK";
        argv[a++] = "500";
        argv[a++] = "STREAMS";
        for (uint32_t s = 0; s < shards; s++)
            argv[a++] = keys[s];
        for (uint32_t s = 0; s < shards; s++)
            argv[a++] = last[s];
        struct redisReply *rep = op_redis_cmd(&r, a, argv, NULL);
        if (!rep) {
            if (op_redis_ensure(&r) != 0)
                break;
            continue;
        }
        take(rep, last, shards, codec, reps);
        op_reply_free(rep);
    }
    printf("match latency (ms): p50 %.2f p99 %.2f p99.9 %.2f (%" PRIu64 " reports)\n", pct(0.5),
           pct(0.99), pct(0.999), total);
    rc = 0;
out:
    op_redis_release(&r);
    op_codec_free(codec);
    free(reps);
    free(keys);
    free(argv);
    free(last);
    free(hist);
    return rc;
}

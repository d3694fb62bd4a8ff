/* Following every fills:{S} stream with XREAD, for the bench tools matchlat and xreadlat. */
#ifndef BENCH_FILLSREAD_H
#define BENCH_FILLSREAD_H

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shared/codec.h"
#include "shared/config.h"
#include "shared/redis.h"
#include "shared/shard.h"

/*
 * Header-only (static functions): each tool is one .c file built by the
 * Makefile's bench/tools rule. A reader starts after each stream's last
 * entry, reads with XREAD BLOCK (no consumer group: it takes nothing from
 * the recorders) until SIGTERM/SIGINT, decodes each entry's reports and
 * hands them to the tool, with the wall time the reply arrived.
 *
 * A latency histogram of 10 µs buckets up to 10 s goes with it: the
 * percentiles are exact to 10 µs.
 */

#define FILLS_BUCKET_US 10
#define FILLS_BUCKETS 1000000 /* 10 s */

static volatile sig_atomic_t fills_stop;

static void fills_on_signal(int sig)
{
    (void)sig;
    fills_stop = 1;
}

static uint64_t *fills_hist;
static uint64_t fills_total;
static int64_t fills_max_us;

static void fills_observe(int64_t us)
{
    if (us < 0)
        us = 0;
    if (us > fills_max_us)
        fills_max_us = us;
    int64_t b = us / FILLS_BUCKET_US;
    fills_hist[b < FILLS_BUCKETS ? b : FILLS_BUCKETS - 1]++;
    fills_total++;
}

/* The q-quantile of what was observed, in ms. */
static double fills_pct(double q)
{
    uint64_t want = (uint64_t)((double)fills_total * q), seen = 0;
    for (int64_t b = 0; b < FILLS_BUCKETS; b++) {
        seen += fills_hist[b];
        if (seen > want)
            return (double)(b * FILLS_BUCKET_US) / 1000.0;
    }
    return (double)FILLS_BUCKETS * FILLS_BUCKET_US / 1000.0;
}

static int64_t fills_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Called for each entry read: its shard, the ms of its id, its n decoded
 * reports (n 0 and reps NULL when its m did not decode), and when the
 * XREAD reply holding it arrived. */
typedef void (*fills_entry_fn)(uint32_t shard, int64_t entry_ms, const struct op_report *reps,
                               size_t n, int64_t arrived_us);

/*
 * Follows every fills stream of the environment's REDIS_URL and
 * ORDER_SHARDS, XREAD COUNT count BLOCK block_ms, calling fn per entry,
 * until a stop signal (installed here). Prints "<tool>: reading N fills
 * streams" once it is reading (a bench starts its load then). Returns 0,
 * or 2 when it could not start (message on stderr).
 */
static int fills_follow(const char *tool, const char *count, const char *block_ms,
                        fills_entry_fn fn)
{
    struct op_config c;
    op_config_load_or_exit(&c, tool);
    signal(SIGTERM, fills_on_signal);
    signal(SIGINT, fills_on_signal);
    uint32_t shards = c.order_shards;
    fills_hist = calloc(FILLS_BUCKETS, sizeof(*fills_hist));
    char(*last)[48] = calloc(shards, sizeof(*last));
    const char **argv = calloc(6 + 2 * (size_t)shards, sizeof(*argv));
    char(*keys)[OP_KEY_MAX] = calloc(shards, sizeof(*keys));
    struct op_report *reps = calloc(OP_CODEC_REPORTS_MAX, sizeof(*reps));
    struct op_codec *codec = op_codec_new();
    struct op_redis r;
    int rc = 2;
    memset(&r, 0, sizeof(r));
    if (!fills_hist || !last || !argv || !keys || !reps || !codec ||
        op_redis_init(&r, c.redis_url, 5000) != 0 || op_redis_connect(&r) != 0) {
        fprintf(stderr, "%s: cannot start (memory or redis at '%s')\n", tool, c.redis_url);
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
    printf("%s: reading %" PRIu32 " fills streams\n", tool, shards);
    fflush(stdout);
    while (!fills_stop) {
        int a = 0;
        argv[a++] = "XREAD";
        argv[a++] = "COUNT";
        argv[a++] = count;
        argv[a++] = "BLOCK";
        argv[a++] = block_ms;
        argv[a++] = "STREAMS";
        for (uint32_t s = 0; s < shards; s++)
            argv[a++] = keys[s];
        for (uint32_t s = 0; s < shards; s++)
            argv[a++] = last[s];
        struct redisReply *rep = op_redis_cmd(&r, a, argv, NULL);
        int64_t now = fills_wall_us(); /* before decoding: the time it arrived */
        if (!rep) {
            if (op_redis_ensure(&r) != 0)
                break;
            continue;
        }
        /* [[stream, [[id, [k, v, …]], …]], …] */
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
                size_t n = 0;
                int decoded = 0;
                for (size_t f = 0; f + 1 < op_reply_count(kv) && !decoded; f += 2) {
                    const char *name = op_reply_str(op_reply_at(kv, f), NULL);
                    size_t mlen = 0;
                    const char *m = op_reply_str(op_reply_at(kv, f + 1), &mlen);
                    decoded = name && strcmp(name, "m") == 0 && m &&
                              op_codec_decode_reports(codec, m, mlen, reps, OP_CODEC_REPORTS_MAX,
                                                      &n) == 0;
                }
                fn(shard, strtoll(id, NULL, 10), decoded ? reps : NULL, decoded ? n : 0, now);
            }
        }
        op_reply_free(rep);
    }
    rc = 0;
out:
    op_redis_release(&r);
    op_codec_free(codec);
    free(reps);
    free(keys);
    free(argv);
    free(last);
    return rc;
}

#endif

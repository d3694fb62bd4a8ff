/* bench/feed.sh's baseline: how late a plain XREAD reader of the fills streams gets each entry. */
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
 *   xreadlat            (REDIS_URL, ORDER_SHARDS from the environment)
 *
 * Follows every fills:{S} stream from its end, as the feed's reader does
 * (XREAD COUNT 64 BLOCK 500 over all of them, no consumer group), until
 * SIGTERM/SIGINT, then prints:
 *
 *   xread latency (ms): p50 X p99 X p99.9 X max X (N entries, R reports)
 *   trades by symbol: AAPL 812 MSFT 790 …
 *   reports by account: alice 3011 bob 2998 …
 *
 * An entry's latency is the wall clock when the XREAD reply holding it
 * arrived minus the ms part of its id (the Redis clock when the matcher's
 * EXEC added it): what the stream itself gives a reader, with no feed in
 * between. The id has ms resolution, so this over-states by 0-1 ms, as the
 * feed clients' figure does. Histogram in 10 µs buckets up to 10 s.
 *
 * The two count lines are what a loss-free feed must deliver over the same
 * stretch of stream: one `trades` message per entry holding a trade of the
 * symbol, one `orders` message per entry holding a report that names the
 * account (the report's owner, or a trade's maker) — docs/feed.md.
 */

#define BUCKET_US 10
#define BUCKETS 1000000 /* 10 s */
/* The feed's reader reads 64 entries per stream per XREAD, blocking 500 ms
 * (feed/source.c): the same here, so that the two differ only by the feed. */
#define READ_COUNT_TEXT "64"
#define READ_BLOCK_TEXT "500"
/* Why 64: the symbol table and the load generator's accounts are a handful;
 * names beyond the table are counted as "other". */
#define NAMES_MAX 64

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* Counts per name (symbols, accounts), in order of first appearance. */
struct tally {
    char name[NAMES_MAX][OP_ACCOUNT_MAX > OP_SYMBOL_MAX ? OP_ACCOUNT_MAX : OP_SYMBOL_MAX];
    uint64_t n[NAMES_MAX];
    size_t len;
    uint64_t other; /* entries whose name did not fit */
};

static uint64_t *hist;
static uint64_t total, reports;
static int64_t max_us;
static struct tally trades_by_sym, by_account;

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void observe(int64_t us)
{
    if (us < 0)
        us = 0;
    if (us > max_us)
        max_us = us;
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

/* Counts one item (a trade of a symbol, a report leg of an account) for
 * name (n bytes, no NUL needed): what the feed sends its subscribers, item
 * for item, however it groups them into messages. */
static void tally_mark(struct tally *t, const char *name, size_t n)
{
    if (!n)
        return;
    size_t i = 0;
    while (i < t->len && (strlen(t->name[i]) != n || memcmp(t->name[i], name, n) != 0))
        i++;
    if (i == t->len) {
        if (t->len == NAMES_MAX || n >= sizeof(t->name[0])) {
            t->other++;
            return;
        }
        memcpy(t->name[i], name, n);
        t->name[i][n] = '\0';
        t->len++;
    }
    t->n[i]++;
}

static void tally_print(const struct tally *t, const char *title)
{
    printf("%s:", title);
    for (size_t i = 0; i < t->len; i++)
        printf(" %s %" PRIu64, t->name[i], t->n[i]);
    if (t->other)
        printf(" (other %" PRIu64 ")", t->other);
    printf("\n");
}

/* Counts what the feed would send for the n reports of one entry. */
static void count_entry(const struct op_report *reps, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        const struct op_report *r = &reps[k];
        if (r->kind == OP_REPORT_TICK)
            continue;
        tally_mark(&by_account, r->account, strnlen(r->account, sizeof(r->account)));
        if (r->kind != OP_REPORT_TRADE)
            continue;
        tally_mark(&by_account, r->maker_account,
                   strnlen(r->maker_account, sizeof(r->maker_account)));
        tally_mark(&trades_by_sym, r->symbol, strnlen(r->symbol, sizeof(r->symbol)));
    }
}

/* Folds one XREAD reply ([[stream, [[id, [k, v, …]], …]], …]) that arrived
 * at now_us into the histogram and the tallies, and advances last[] to the
 * ids read. */
static void take(const struct redisReply *rep, int64_t now_us, char (*last)[48], uint32_t shards,
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
            observe(now_us - strtoll(id, NULL, 10) * 1000);
            for (size_t f = 0; f + 1 < op_reply_count(kv); f += 2) {
                const char *name = op_reply_str(op_reply_at(kv, f), NULL);
                size_t mlen = 0;
                const char *m = op_reply_str(op_reply_at(kv, f + 1), &mlen);
                size_t n = 0;
                if (!name || strcmp(name, "m") != 0 || !m ||
                    op_codec_decode_reports(codec, m, mlen, reps, OP_CODEC_REPORTS_MAX, &n) != 0)
                    continue;
                reports += n;
                count_entry(reps, n);
            }
        }
    }
}

int main(void)
{
    struct op_config c;
    op_config_load_or_exit(&c, "xreadlat");
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
        fprintf(stderr, "xreadlat: cannot start (memory or redis at '%s')\n", c.redis_url);
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
    /* The bench starts the load once this line is out. */
    printf("xreadlat: reading %" PRIu32 " fills streams\n", shards);
    fflush(stdout);
    while (!stop) {
        int a = 0;
        argv[a++] = "XREAD";
        argv[a++] = "COUNT";
        argv[a++] = READ_COUNT_TEXT;
        argv[a++] = "BLOCK";
        argv[a++] = READ_BLOCK_TEXT;
        argv[a++] = "STREAMS";
        for (uint32_t s = 0; s < shards; s++)
            argv[a++] = keys[s];
        for (uint32_t s = 0; s < shards; s++)
            argv[a++] = last[s];
        struct redisReply *rep = op_redis_cmd(&r, a, argv, NULL);
        int64_t now = wall_us(); /* before decoding: the time it arrived */
        if (!rep) {
            if (op_redis_ensure(&r) != 0)
                break;
            continue;
        }
        take(rep, now, last, shards, codec, reps);
        op_reply_free(rep);
    }
    printf("xread latency (ms): p50 %.2f p99 %.2f p99.9 %.2f max %.2f (%" PRIu64
           " entries, %" PRIu64 " reports)\n",
           pct(0.5), pct(0.99), pct(0.999), (double)max_us / 1000.0, total, reports);
    tally_print(&trades_by_sym, "trades by symbol");
    tally_print(&by_account, "reports by account");
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

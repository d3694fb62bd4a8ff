/* orderpipe-ordergen: XADDs a seeded, deterministic order flow to orders:{S} (tests, benchmarks).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops/tools/ordergen.h"
#include "shared/buf.h"
#include "shared/codec.h"
#include "shared/config.h"
#include "shared/log.h"
#include "shared/redis.h"

/*
 *   orderpipe-ordergen --seed N --count N [--from K] [--rate R] [--batch B]
 *                      [--group G] [--poison-every K] [--symbols A,B,…] [--resting]
 *                      [--timers] [--ts0 NS] [--ts-step NS]
 *
 * Writes inputs from … from+count-1 of the flow of `seed` (ops/tools/
 * ordergen.h) to orders:{S} with XADD NOMKSTREAM, B inputs per pipeline
 * (default 1000). By default each input is an entry of its own (the form
 * before group commit, which the matcher still reads); with --group G the
 * inputs of a pipeline are grouped by shard into entries of up to G inputs
 * (msgpack arrays, as ingest writes them; a poisoned input is then a map
 * with only a `sym`, so that its neighbours decode). At most R inputs per
 * second when --rate is given (a
 * sustained flow for fault tests), as fast as Redis takes them otherwise.
 * --resting makes every input a GTC limit order that never trades (bids
 * 1.00 … 2.99 below the mid, asks as far above): a deep book for the
 * recovery benchmark. --timers adds GTD orders and dead-man switch
 * arms/disarms to the flow (ops/tools/ordergen.h; issue 15's fault test);
 * --ts0 and --ts-step set input i's ts to ts0 + i * step ns (default
 * 2026-11-21T10:00Z and 10 µs): the wall clock and 1e9 / rate make the
 * flow's times keep pace with the matcher's ticks.
 * Reads REDIS_URL, REDIS_TIMEOUT_MS and ORDER_SHARDS. A Redis failure stops
 * it (exit 1): whether the entries of a pipeline cut short were written is
 * unknown, and a retry could duplicate them. Exits 0 when all were written,
 * 2 on bad arguments.
 */

struct args {
    uint64_t seed, count, from, rate, batch, group, poison_every, ts0, ts_step;
    const char *symbols;
    int resting, timers;
};

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (!s || !*s)
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0')
        return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, struct args *a)
{
    memset(a, 0, sizeof(*a));
    a->batch = 1000;
    a->seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t *dst = strcmp(k, "--seed") == 0           ? &a->seed
                        : strcmp(k, "--count") == 0        ? &a->count
                        : strcmp(k, "--from") == 0         ? &a->from
                        : strcmp(k, "--rate") == 0         ? &a->rate
                        : strcmp(k, "--batch") == 0        ? &a->batch
                        : strcmp(k, "--group") == 0        ? &a->group
                        : strcmp(k, "--poison-every") == 0 ? &a->poison_every
                        : strcmp(k, "--ts0") == 0          ? &a->ts0
                        : strcmp(k, "--ts-step") == 0      ? &a->ts_step
                                                           : NULL;
        if (strcmp(k, "--resting") == 0 || strcmp(k, "--timers") == 0) {
            *(strcmp(k, "--resting") == 0 ? &a->resting : &a->timers) = 1;
            continue;
        }
        if (strcmp(k, "--symbols") == 0 && v) {
            a->symbols = v;
        } else if (!dst || parse_u64(v, dst) != 0) {
            fprintf(stderr, "orderpipe-ordergen: bad argument '%s'\n", k);
            return -1;
        }
        i++;
    }
    if (a->count == 0 || a->batch == 0 || a->batch > 100000 || a->group > OP_CODEC_ORDERS_MAX) {
        fprintf(stderr,
                "orderpipe-ordergen: --count must be >= 1, --batch in 1..100000, "
                "--group in 0..%d\n",
                OP_CODEC_ORDERS_MAX);
        return -1;
    }
    return 0;
}

/* One input ready to be XADDed (alone, or in a group). */
struct entry {
    uint32_t shard;
    const char *type; /* op_msg_kind_name: "new" | "cancel" | "amend" | "cancel_all_after" */
    char sym[OP_SYMBOL_MAX];
    size_t off, len; /* of its m in the batch buffer */
    struct op_order_msg msg;
    int poison;
    int sent; /* --group: already in an entry */
};

/* --group: the entries of a pipeline, their m and fields. */
static struct op_buf gm, gf;

/* Appends the XADD of one group: the next up to g unsent inputs of the
 * shard of e[first], from first on. Returns 0 or -1. */
static int append_group(struct op_redis *r, struct entry *e, size_t n, size_t first, size_t g)
{
    const struct op_order_msg *msgs[OP_CODEC_ORDERS_MAX];
    const struct entry *in[OP_CODEC_ORDERS_MAX];
    size_t k = 0;
    for (size_t i = first; i < n && k < g; i++)
        if (!e[i].sent && e[i].shard == e[first].shard) {
            e[i].sent = 1;
            in[k] = &e[i];
            msgs[k++] = &e[i].msg;
        }
    op_buf_reset(&gm);
    op_buf_reset(&gf);
    if (op_mp_put_array(&gm, (uint32_t)k) != 0)
        return -1;
    for (size_t j = 0; j < k; j++) {
        if (!in[j]->poison) {
            if (op_codec_encode_order(&gm, msgs[j]) != 0)
                return -1;
            continue;
        }
        /* a map that is not an order: only its sym (the matcher reports it) */
        size_t sl = strlen(in[j]->sym);
        unsigned char h[] = {0x81, 0xa3, 's', 'y', 'm', (unsigned char)(0xa0 | sl)};
        if (op_buf_append(&gm, h, sizeof(h)) != 0 || op_buf_append(&gm, in[j]->sym, sl) != 0)
            return -1;
    }
    if (op_codec_orders_fields(&gf, msgs, k) != 0)
        return -1;
    char key[OP_KEY_MAX];
    op_key_orders(key, e[first].shard);
    const char *t = gf.data, *sym = t + strlen(t) + 1, *cnt = sym + strlen(sym) + 1,
               *ids = cnt + strlen(cnt) + 1;
    const char *argv[] = {"XADD", key, "NOMKSTREAM", "*",   "type", t,   "sym",
                          sym,    "n", cnt,          "ids", ids,    "m", gm.data};
    size_t lens[] = {4,           strlen(key), 10,          1, 4,           strlen(t), 3,
                     strlen(sym), 1,           strlen(cnt), 3, strlen(ids), 1,         gm.len};
    return op_redis_append(r, 14, argv, lens);
}

/* Sends entries e[0 … n-1] (m bytes in buf) in one pipeline; returns how many
 * Redis acknowledged, in order (stops at the first failure). */
static size_t send_batch(struct op_redis *r, struct entry *e, size_t n, const struct op_buf *buf,
                         size_t group)
{
    char key[OP_KEY_MAX];
    if (group) {
        size_t entries = 0;
        for (size_t i = 0; i < n; i++) {
            if (e[i].sent)
                continue;
            if (append_group(r, e, n, i, group) != 0)
                return 0;
            entries++;
        }
        for (size_t i = 0; i < entries; i++) {
            struct redisReply *rep = op_redis_next_reply(r);
            int ok = rep && op_reply_type(rep) == OP_REPLY_STRING;
            if (rep && !ok)
                op_error("xadd_failed", "err=\"%s\"", op_reply_str(rep, NULL));
            op_reply_free(rep);
            if (!ok)
                return 0; /* which inputs were written is unknown: stop */
        }
        return n;
    }
    for (size_t i = 0; i < n; i++) {
        op_key_orders(key, e[i].shard);
        const char *argv[] = {"XADD",    key,   "NOMKSTREAM", "*", "type",
                              e[i].type, "sym", e[i].sym,     "m", buf->data + e[i].off};
        size_t lens[] = {4, strlen(key),      10, 1,       4, strlen(e[i].type),
                         3, strlen(e[i].sym), 1,  e[i].len};
        if (op_redis_append(r, 10, argv, lens) != 0)
            return 0;
    }
    size_t ok = 0;
    int broken = 0;
    for (size_t i = 0; i < n; i++) {
        struct redisReply *rep = op_redis_next_reply(r);
        if (!rep)
            return ok;
        if (op_reply_type(rep) != OP_REPLY_STRING) {
            const char *s = op_reply_str(rep, NULL);
            op_error("xadd_failed", "err=\"%s\"", s ? s : "no id");
            broken = 1;
        } else if (!broken) {
            ok++;
        }
        op_reply_free(rep);
    }
    return ok;
}

int main(int argc, char **argv)
{
    struct args a;
    struct op_config c;
    if (parse_args(argc, argv, &a) != 0)
        return 2;
    op_config_load_or_exit(&c, "ordergen");
    struct flowgen g;
    if (flowgen_init(&g, a.seed, a.symbols, c.order_shards, a.poison_every) != 0) {
        fprintf(stderr, "orderpipe-ordergen: bad --symbols\n");
        return 2;
    }
    g.resting = a.resting;
    g.timers = a.timers;
    if (a.ts0)
        g.ts0 = a.ts0;
    if (a.ts_step)
        g.ts_step = a.ts_step;
    struct op_redis r;
    if (op_redis_init(&r, c.redis_url, c.redis_timeout_ms) != 0 || op_redis_connect(&r) != 0) {
        fprintf(stderr, "orderpipe-ordergen: %s\n", r.errstr);
        return 1;
    }
    struct op_order_msg m;
    for (uint64_t i = 0; i < a.from; i++)
        flowgen_next(&g, &m);

    struct entry *e = calloc(a.batch, sizeof(*e));
    struct op_buf buf;
    op_buf_init(&buf);
    int64_t t0 = op_now_ms();
    uint64_t done = 0;
    while (done < a.count && e) {
        size_t n = 0;
        op_buf_reset(&buf);
        while (n < a.batch && done + n < a.count) {
            int poison = flowgen_next(&g, &m);
            e[n].shard = flowgen_shard(&g, &m);
            e[n].type = op_msg_kind_name(m.kind);
            memcpy(e[n].sym, m.symbol, sizeof(e[n].sym));
            e[n].off = buf.len;
            e[n].msg = m;
            e[n].poison = poison;
            e[n].sent = 0;
            if (poison)
                op_buf_append(&buf, "\xc1garbage", 8); /* 0xc1: never used in msgpack */
            else if (op_codec_encode_order(&buf, &m) != 0)
                break;
            e[n].len = buf.len - e[n].off;
            n++;
        }
        if (send_batch(&r, e, n, &buf, a.group) < n) {
            fprintf(stderr, "orderpipe-ordergen: writing to redis failed: %s\n",
                    r.err ? r.errstr : "an XADD was refused");
            break;
        }
        done += n;
        if (a.rate) { /* pace: input `done` is due at t0 + done / rate */
            int64_t due = t0 + (int64_t)(done * 1000 / a.rate);
            int64_t now = op_now_ms();
            if (due > now) {
                struct timespec ts = {(due - now) / 1000, (long)((due - now) % 1000) * 1000000};
                nanosleep(&ts, NULL);
            }
        }
    }
    int64_t ms = op_now_ms() - t0;
    printf("ordergen: wrote %llu inputs (from %llu, seed %llu) in %lld ms\n",
           (unsigned long long)done, (unsigned long long)a.from, (unsigned long long)a.seed,
           (long long)ms);
    free(e);
    op_buf_release(&buf);
    op_buf_release(&gm);
    op_buf_release(&gf);
    op_redis_release(&r);
    return done == a.count ? 0 : 1;
}

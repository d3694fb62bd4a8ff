/* The matcher checker: fills:{S} must equal what the in-process engine makes of the seeded flow. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "matcher/engine.h"
#include "ops/tools/ordergen.h"
#include "shared/buf.h"
#include "shared/codec.h"
#include "shared/config.h"
#include "shared/redis.h"

/*
 *   test_matcher_check check --seed N --count N [--poison-every K] [--symbols A,B]
 *   test_matcher_check engine --seed N --count N        (benchmark baseline)
 *   test_matcher_check                                  (self-test, run by the harness)
 *
 * check: regenerates inputs 0 … count-1 of the flow of `seed`
 * (ops/tools/ordergen.h, as orderpipe-ordergen wrote them), runs them through
 * one engine per shard (eng_new(S, 0), as the matcher), encodes the reports
 * of each input exactly as the matcher lays them out (one entry per input,
 * runs of OP_CODEC_REPORTS_MAX) and compares, shard by shard and in order,
 * with every entry of fills:{S} (XRANGE): the same `sym`, `kind` and `m`
 * bytes — so the same reports with the same ids in the same order, nothing
 * missing, nothing duplicated, nothing extra; the `in` ids must increase.
 * Prints the first difference and exits 1, or prints a summary and exits 0.
 *
 * engine: the same inputs through decode → apply → encode in-process, no
 * Redis, and prints the rate (the matcher benchmark's baseline).
 *
 * With no arguments (integration harness): a self-test of the checker on
 * scratch streams — an exact copy passes; a missing, a duplicated and an
 * altered entry each fail.
 */

struct opts {
    uint64_t seed, count, poison_every;
    const char *symbols;
    const char *prefix; /* fills stream prefix, "fills:" */
};

/* One fills entry, copied out of the reply. */
struct fentry {
    char *sym, *kind, *m, *in;
    size_t m_len;
};

struct fshard {
    struct fentry *v;
    size_t n, cap, next; /* next: the entry to compare next */
};

static void fshards_free(struct fshard *f, uint32_t shards)
{
    for (uint32_t s = 0; s < shards; s++) {
        for (size_t i = 0; i < f[s].n; i++) {
            free(f[s].v[i].sym);
            free(f[s].v[i].kind);
            free(f[s].v[i].m);
            free(f[s].v[i].in);
        }
        free(f[s].v);
    }
    free(f);
}

static char *dup_field(const struct redisReply *fields, const char *name, size_t *len)
{
    for (size_t i = 0; i + 1 < op_reply_count(fields); i += 2) {
        const char *k = op_reply_str(op_reply_at(fields, i), NULL);
        size_t l;
        const char *v = op_reply_str(op_reply_at(fields, i + 1), &l);
        if (k && v && strcmp(k, name) == 0) {
            char *out = malloc(l + 1);
            if (!out)
                abort();
            memcpy(out, v, l);
            out[l] = '\0';
            if (len)
                *len = l;
            return out;
        }
    }
    char *empty = calloc(1, 1);
    if (!empty)
        abort();
    if (len)
        *len = 0;
    return empty;
}

/* Reads every entry of <prefix>{s} for each shard. NULL on a Redis error. */
static struct fshard *load_fills(struct op_redis *r, const char *prefix, uint32_t shards)
{
    struct fshard *f = calloc(shards, sizeof(*f));
    if (!f)
        return NULL;
    for (uint32_t s = 0; s < shards; s++) {
        char key[96], from[64] = "-";
        snprintf(key, sizeof(key), "%s{%u}", prefix, s);
        for (;;) {
            struct redisReply *rep = op_redis_cmdf(r, "XRANGE %s %s + COUNT 5000", key, from);
            if (!rep || op_reply_type(rep) != OP_REPLY_ARRAY) {
                fprintf(stderr, "matchcheck: XRANGE %s failed: %s\n", key,
                        rep ? op_reply_str(rep, NULL) : r->errstr);
                op_reply_free(rep);
                fshards_free(f, shards);
                return NULL;
            }
            size_t n = op_reply_count(rep);
            for (size_t i = 0; i < n; i++) {
                const struct redisReply *e = op_reply_at(rep, i);
                if (f[s].n == f[s].cap) {
                    f[s].cap = f[s].cap ? f[s].cap * 2 : 1024;
                    f[s].v = realloc(f[s].v, f[s].cap * sizeof(*f[s].v));
                    if (!f[s].v)
                        abort();
                }
                struct fentry *x = &f[s].v[f[s].n++];
                const struct redisReply *fields = op_reply_at(e, 1);
                x->sym = dup_field(fields, "sym", NULL);
                x->kind = dup_field(fields, "kind", NULL);
                x->in = dup_field(fields, "in", NULL);
                x->m = dup_field(fields, "m", &x->m_len);
                if (i + 1 == n)
                    snprintf(from, sizeof(from), "(%s", op_reply_str(op_reply_at(e, 0), NULL));
            }
            op_reply_free(rep);
            if (n < 5000)
                break;
        }
    }
    return f;
}

/* Compares stream ids "a-b" numerically: <0, 0, >0. */
static int sid_cmp_text(const char *a, const char *b)
{
    unsigned long long am = 0, as = 0, bm = 0, bs = 0;
    sscanf(a, "%llu-%llu", &am, &as);
    sscanf(b, "%llu-%llu", &bm, &bs);
    if (am != bm)
        return am < bm ? -1 : 1;
    return as < bs ? -1 : as > bs;
}

/* The expected entries of one input's reports r[0 … n-1], compared with the
 * next entries of f. Returns 0, or -1 after printing the difference. */
static int compare_input(struct fshard *f, uint32_t s, uint64_t i, const struct op_order_msg *m,
                         const struct op_report *r, size_t n, struct op_buf *enc,
                         struct op_buf *kinds)
{
    for (size_t start = 0; start < n;) {
        size_t k = n - start < OP_CODEC_REPORTS_MAX ? n - start : OP_CODEC_REPORTS_MAX;
        op_buf_reset(enc);
        op_buf_reset(kinds);
        op_codec_encode_reports(enc, r + start, k);
        for (size_t j = 0; j < k; j++)
            op_buf_printf(kinds, "%s%s", j ? "," : "", op_report_kind_name(r[start + j].kind));
        if (f->next == f->n) {
            printf("matchcheck: MISSING: shard %u has %zu entries; input %" PRIu64
                   " (%s, order %" PRIu64 ") expects one more (kind %s, report id %" PRIu64 ")\n",
                   s, f->n, i, op_msg_kind_name(m->kind), m->order_id, kinds->data,
                   r[start].report_id);
            return -1;
        }
        const struct fentry *x = &f->v[f->next];
        if (strcmp(x->sym, m->symbol) != 0 || strcmp(x->kind, kinds->data) != 0 ||
            x->m_len != enc->len || memcmp(x->m, enc->data, enc->len) != 0) {
            printf("matchcheck: DIFFERENT: shard %u entry %zu (in %s): sym=%s kind=%s (%zu bytes); "
                   "input %" PRIu64 " expects sym=%s kind=%s (%zu bytes, first report id %" PRIu64
                   ")\n",
                   s, f->next, x->in, x->sym, x->kind, x->m_len, i, m->symbol, kinds->data,
                   enc->len, r[start].report_id);
            return -1;
        }
        if (f->next > 0 && sid_cmp_text(f->v[f->next - 1].in, x->in) > 0) {
            printf("matchcheck: ORDER: shard %u entry %zu has in=%s after in=%s\n", s, f->next,
                   x->in, f->v[f->next - 1].in);
            return -1;
        }
        f->next++;
        start += k;
    }
    return 0;
}

/* Runs the check of o against the streams <o->prefix>{S}. 0 ok, 1 differs, 2 error. */
static int check(struct op_redis *r, const struct opts *o, uint32_t shards)
{
    struct fshard *f = load_fills(r, o->prefix, shards);
    if (!f)
        return 2;
    struct flowgen g;
    if (flowgen_init(&g, o->seed, o->symbols, shards, o->poison_every) != 0) {
        fshards_free(f, shards);
        return 2;
    }
    struct eng **e = calloc(shards, sizeof(struct eng *)); /* NOLINT(bugprone-sizeof-expression) */
    struct eng_reports reps;
    struct op_buf enc, kinds;
    eng_reports_init(&reps);
    op_buf_init(&enc);
    op_buf_init(&kinds);
    int rc = 0;
    uint64_t nreports = 0, poisoned = 0;
    for (uint32_t s = 0; s < shards; s++)
        if (!(e[s] = eng_new(s, 0)))
            abort();
    for (uint64_t i = 0; i < o->count && rc == 0; i++) {
        struct op_order_msg m;
        int poison = flowgen_next(&g, &m);
        uint32_t s = flowgen_shard(&g, &m);
        if (poison) {
            char sym[OP_SYMBOL_MAX];
            memcpy(sym, m.symbol, sizeof(sym));
            flowgen_malformed(&m, sym, strlen(sym));
            poisoned++;
        }
        eng_reports_reset(&reps);
        eng_apply(e[s], &m, &reps);
        nreports += reps.len;
        if (compare_input(&f[s], s, i, &m, reps.v, reps.len, &enc, &kinds) != 0)
            rc = 1;
    }
    size_t entries = 0;
    for (uint32_t s = 0; s < shards && rc == 0; s++) {
        entries += f[s].n;
        if (f[s].next != f[s].n) {
            printf("matchcheck: EXTRA: shard %u has %zu entries, %zu expected; the first extra: "
                   "in=%s kind=%s\n",
                   s, f[s].n, f[s].next, f[s].v[f[s].next].in, f[s].v[f[s].next].kind);
            rc = 1;
        }
    }
    if (rc == 0)
        printf("matchcheck: ok: %" PRIu64 " inputs (%" PRIu64 " poisoned), %" PRIu64
               " reports in %zu entries over %u shards, identical\n",
               o->count, poisoned, nreports, entries, shards);
    for (uint32_t s = 0; s < shards; s++)
        eng_free(e[s]);
    free(e);
    eng_reports_release(&reps);
    op_buf_release(&enc);
    op_buf_release(&kinds);
    fshards_free(f, shards);
    return rc;
}

static double secs_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* The in-process baseline: pre-encoded inputs, then decode → apply →
 * encode, timed. */
static int engine_rate(const struct opts *o, uint32_t shards)
{
    struct flowgen g;
    if (flowgen_init(&g, o->seed, o->symbols, shards, o->poison_every) != 0)
        return 2;
    struct op_buf in, enc;
    op_buf_init(&in);
    op_buf_init(&enc);
    size_t *off = malloc((o->count + 1) * sizeof(*off));
    uint32_t *sh = malloc(o->count * sizeof(*sh));
    if (!off || !sh)
        abort();
    for (uint64_t i = 0; i < o->count; i++) {
        struct op_order_msg m;
        flowgen_next(&g, &m);
        sh[i] = flowgen_shard(&g, &m);
        off[i] = in.len;
        op_codec_encode_order(&in, &m);
    }
    off[o->count] = in.len;
    struct op_codec *c = op_codec_new();
    struct eng **e = calloc(shards, sizeof(struct eng *)); /* NOLINT(bugprone-sizeof-expression) */
    struct eng_reports reps;
    eng_reports_init(&reps);
    for (uint32_t s = 0; s < shards; s++)
        e[s] = eng_new(s, 0);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t nrep = 0;
    for (uint64_t i = 0; i < o->count; i++) {
        struct op_order_msg m;
        if (op_codec_decode_order(c, in.data + off[i], off[i + 1] - off[i], &m) != 0)
            abort();
        eng_reports_reset(&reps);
        eng_apply(e[sh[i]], &m, &reps);
        op_buf_reset(&enc);
        op_codec_encode_reports(&enc, reps.v, reps.len);
        nrep += reps.len;
    }
    double dt = secs_since(&t0);
    printf("engine: %" PRIu64 " inputs, %" PRIu64 " reports in %.3f s: %.0f inputs/s, %.0f "
           "reports/s (decode + apply + encode, in-process)\n",
           o->count, nrep, dt, (double)o->count / dt, (double)nrep / dt);
    for (uint32_t s = 0; s < shards; s++)
        eng_free(e[s]);
    free(e);
    eng_reports_release(&reps);
    op_codec_free(c);
    op_buf_release(&in);
    op_buf_release(&enc);
    free(off);
    free(sh);
    return 0;
}

/* Writes the expected fills of o to <prefix>{S}, skipping input `skip` and
 * doubling input `dup`, altering input `alter` (UINT64_MAX: none). */
static int write_expected(struct op_redis *r, const struct opts *o, uint32_t shards, uint64_t skip,
                          uint64_t dup, uint64_t alter)
{
    struct flowgen g;
    flowgen_init(&g, o->seed, o->symbols, shards, o->poison_every);
    struct eng **e = calloc(shards, sizeof(struct eng *)); /* NOLINT(bugprone-sizeof-expression) */
    struct eng_reports reps;
    struct op_buf enc, kinds;
    eng_reports_init(&reps);
    op_buf_init(&enc);
    op_buf_init(&kinds);
    for (uint32_t s = 0; s < shards; s++) {
        char key[96];
        e[s] = eng_new(s, 0);
        snprintf(key, sizeof(key), "%s{%u}", o->prefix, s);
        op_reply_free(op_redis_cmdf(r, "DEL %s", key));
    }
    for (uint64_t i = 0; i < o->count; i++) {
        struct op_order_msg m;
        int poison = flowgen_next(&g, &m);
        uint32_t s = flowgen_shard(&g, &m);
        if (poison) {
            char sym[OP_SYMBOL_MAX];
            memcpy(sym, m.symbol, sizeof(sym));
            flowgen_malformed(&m, sym, strlen(sym));
        }
        eng_reports_reset(&reps);
        eng_apply(e[s], &m, &reps);
        op_buf_reset(&enc);
        op_buf_reset(&kinds);
        op_codec_encode_reports(&enc, reps.v, reps.len);
        for (size_t j = 0; j < reps.len; j++)
            op_buf_printf(&kinds, "%s%s", j ? "," : "", op_report_kind_name(reps.v[j].kind));
        if (i == alter)
            enc.data[enc.len - 1] ^= 1;
        char key[96], in[32];
        snprintf(key, sizeof(key), "%s{%u}", o->prefix, s);
        snprintf(in, sizeof(in), "%" PRIu64 "-0", i + 1);
        for (int rep = 0; rep < (i == dup ? 2 : i == skip ? 0 : 1); rep++)
            op_reply_free(op_redis_cmdf(r, "XADD %s * sym %s kind %s in %s m %b", key, m.symbol,
                                        kinds.data, in, enc.data, enc.len));
    }
    for (uint32_t s = 0; s < shards; s++)
        eng_free(e[s]);
    free(e);
    eng_reports_release(&reps);
    op_buf_release(&enc);
    op_buf_release(&kinds);
    return 0;
}

static int self_test(struct op_redis *r, uint32_t shards)
{
    struct opts o = {.seed = 7, .count = 3000, .poison_every = 500, .prefix = "selftest-fills:"};
    int fails = 0;
    struct {
        const char *what;
        uint64_t skip, dup, alter;
        int want;
    } cases[] = {
        {"exact copy passes", UINT64_MAX, UINT64_MAX, UINT64_MAX, 0},
        {"a missing entry fails", 1234, UINT64_MAX, UINT64_MAX, 1},
        {"a duplicated entry fails", UINT64_MAX, 2000, UINT64_MAX, 1},
        {"an altered report fails", UINT64_MAX, UINT64_MAX, 17, 1},
        {"an extra entry at the end fails", UINT64_MAX, 2999, UINT64_MAX, 1},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        write_expected(r, &o, shards, cases[k].skip, cases[k].dup, cases[k].alter);
        int got = check(r, &o, shards);
        printf("self-test: %s: %s\n", cases[k].what, got == cases[k].want ? "ok" : "FAILED");
        fails += got != cases[k].want;
    }
    for (uint32_t s = 0; s < shards; s++)
        op_reply_free(op_redis_cmdf(r, "DEL %s{%u}", o.prefix, s));
    /* the flow is a function of the seed alone */
    struct flowgen a, b;
    flowgen_init(&a, 99, NULL, shards, 0);
    flowgen_init(&b, 99, NULL, shards, 0);
    for (int i = 0; i < 10000; i++) {
        struct op_order_msg x, y;
        flowgen_next(&a, &x);
        flowgen_next(&b, &y);
        if (x.order_id != y.order_id || x.ts_ns != y.ts_ns || x.kind != y.kind ||
            x.price != y.price || x.qty != y.qty || strcmp(x.symbol, y.symbol) != 0 ||
            strcmp(x.account, y.account) != 0) {
            printf("self-test: the flow is not deterministic at input %d\n", i);
            fails++;
            break;
        }
    }
    printf("test_matcher_check: %d failed\n", fails);
    return fails ? 1 : 0;
}

static int parse(int argc, char **argv, struct opts *o)
{
    memset(o, 0, sizeof(*o));
    o->seed = 1;
    o->prefix = "fills:";
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--seed") == 0)
            o->seed = strtoull(v, NULL, 10);
        else if (strcmp(k, "--count") == 0)
            o->count = strtoull(v, NULL, 10);
        else if (strcmp(k, "--poison-every") == 0)
            o->poison_every = strtoull(v, NULL, 10);
        else if (strcmp(k, "--symbols") == 0)
            o->symbols = v;
        else
            return -1;
    }
    return o->count ? 0 : -1;
}

int main(int argc, char **argv)
{
    struct op_config c;
    struct opts o;
    op_config_load_or_exit(&c, "matchcheck");
    if (argc > 1 && parse(argc, argv, &o) != 0) {
        fprintf(stderr,
                "usage: %s [check|engine] --seed N --count N [--poison-every K] "
                "[--symbols A,B]\n",
                argv[0]);
        return 2;
    }
    if (argc > 1 && strcmp(argv[1], "engine") == 0)
        return engine_rate(&o, c.order_shards);
    struct op_redis r;
    if (op_redis_init(&r, c.redis_url, 30000) != 0 || op_redis_connect(&r) != 0) {
        fprintf(stderr, "matchcheck: %s\n", r.errstr);
        return 2;
    }
    int rc = argc > 1 && strcmp(argv[1], "check") == 0 ? check(&r, &o, c.order_shards)
                                                       : self_test(&r, c.order_shards);
    op_redis_release(&r);
    return rc;
}

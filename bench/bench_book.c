/* Single-threaded order book benchmark: the engine against the naive reference book on a realistic
 * mix. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "matcher/engine/engine.h"
#include "ops/tools/refengine.h"
#include "bench/book_scenarios.h"
#include "shared/buf.h"
#include "shared/codec.h"

/*
 * What is measured: eng_apply() on one symbol whose book holds ~1,000
 * resting orders per side within 50 ticks of the touch, fed inputs that are
 * all generated before any timing (5M inputs = 640 MB, read sequentially).
 * Two engines with the default closed-order memory (1M ids, so the id map
 * outgrows the caches as in production) are timed one after the other on
 * the same inputs: plain eng_apply, and eng_apply_batch's prefetch pipeline
 * (the summary line). The input mix, per input:
 *
 *   10%  NEW GTC limit: 4 in 5 passive (0 … 5 ticks behind the touch),
 *        1 in 5 aggressive (at the opposite touch: trades, maybe rests)
 *    3%  NEW IOC limit at the opposite touch (trades against 1-2 makers)
 *    6%  CANCEL of a random open order
 *   41%  AMEND of a random open order (total reduced by 1 lot)
 *   40%  cancel/replace moves: CANCEL of a random open order, then a NEW
 *        GTC of the same side at a new passive price (two inputs)
 *
 * A regulator keeps the book between 1,600 and 2,400 orders (a NEW becomes a
 * CANCEL above, a CANCEL a NEW below). Inputs are generated against a
 * shadow engine so that cancels and amends target orders that are open.
 *
 * Latency: every SAMPLE_EVERY-th input is bracketed by clock_gettime
 * (CLOCK_MONOTONIC, vDSO, ~20 ns); the median cost of an empty bracket is
 * subtracted. Sampling 1 in 64 keeps the timer's share of the throughput
 * figure under 1%; percentiles come from those samples (78k of 5M).
 *
 * Baseline: the naive reference book of ops/tools/refengine.h (every
 * lookup a linear scan) on the first BASE_OPS inputs of the same stream,
 * from the same starting book; it is too slow to run on all of them, so
 * both are compared in ops/s. Its reports are checked equal to the
 * engine's, so the two do the same work.
 *
 * Then the realistic scenarios of bench/book_scenarios.h (deep books,
 * cancel-heavy, reprices, IOC sweeps, a crash), each timed on a fresh engine
 * with the default closed memory: the summary line is the worst of them
 * (eng_apply_batch), against the reference's rate.
 */

/* Messages per realistic scenario (book_scenarios.h); BENCH_BOOK_SCENARIO_OPS
 * overrides, BENCH_BOOK_SCENARIO picks one by name. 2M as in the harness of
 * issue 19: long enough for the id map to reach its steady size. */
#define SCENARIO_OPS_DEFAULT 2000000L
/* Inputs per eng_apply_batch call in the scenarios: the matcher's batch. */
#define SCENARIO_BATCH 256

/* Inputs timed; BENCH_BOOK_OPS overrides (for profiling runs). */
#define TOTAL_OPS_DEFAULT 5000000L
#define CHUNK 100000L
#define BASE_OPS 50000L
#define SAMPLE_EVERY 64
#define PREFETCH_PAD 16
/* The reference's closed memory (it scans it linearly). The bench's cancels
 * and amends only target open orders, so the size changes no report. */
#define CLOSED_MAX 4096
#define SIDE_ORDERS 1000 /* resting orders per side at the start */
#define MID 100000       /* ticks */

/* The generator's model of one open order. */
struct live {
    uint64_t id;
    int64_t qty, filled;
    uint8_t side;
};

struct model {
    struct live *v; /* open orders, unordered */
    size_t n, cap;
    uint32_t *pos; /* id → index in v + 1 (0 = not open); ids are dense */
    uint64_t next_id;
    uint64_t ts;
    uint64_t rng;
    int64_t best_bid, best_ask;
};

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (p == NULL) {
        fprintf(stderr, "bench_book: out of memory\n");
        exit(1);
    }
    return p;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static inline uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void model_add(struct model *m, uint64_t id, int64_t qty, uint8_t side)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 4096;
        m->v = xrealloc(m->v, m->cap * sizeof(*m->v));
    }
    m->v[m->n] = (struct live){id, qty, 0, side};
    m->pos[id] = (uint32_t)++m->n;
}

static void model_del(struct model *m, uint64_t id)
{
    uint32_t p = m->pos[id];
    if (p == 0)
        return;
    assert(p <= m->n); /* pos only names entries of v */
    m->v[p - 1] = m->v[--m->n];
    if (p - 1 < m->n)
        m->pos[m->v[p - 1].id] = p;
    m->pos[id] = 0;
}

/* Applies in to the shadow engine and updates the model from its reports. */
static void shadow_apply(struct model *m, struct eng *shadow, const struct op_order_msg *in,
                         struct eng_reports *out)
{
    eng_reports_reset(out);
    eng_apply(shadow, in, out);
    int rests = in->kind == OP_MSG_NEW && in->tif == OP_TIF_GTC;
    for (size_t i = 0; i < out->len; i++) {
        const struct op_report *r = &out->v[i];
        if (r->kind == OP_REPORT_TRADE) {
            if (r->maker_status == OP_STATUS_FILLED)
                model_del(m, r->maker_order_id);
            else if (m->pos[r->maker_order_id])
                m->v[m->pos[r->maker_order_id] - 1].filled = r->maker_filled_qty;
            if (r->status == OP_STATUS_FILLED)
                rests = 0;
        } else if (r->kind == OP_REPORT_CANCELLED) {
            model_del(m, r->order_id);
            rests = 0;
        } else if (r->kind == OP_REPORT_AMENDED && m->pos[r->order_id]) {
            m->v[m->pos[r->order_id] - 1].qty = r->qty;
        } else if (r->kind == OP_REPORT_REJECTED) {
            rests = 0;
        }
    }
    if (rests) {
        const struct op_report *last = &out->v[out->len - 1];
        model_add(m, in->order_id, in->qty, in->side);
        m->v[m->n - 1].filled = last->filled_qty;
    }
    struct book_depth d;
    m->best_bid = eng_depth(shadow, "AAPL", OP_SIDE_BUY, &d, 1) ? d.price : MID - 1;
    m->best_ask = eng_depth(shadow, "AAPL", OP_SIDE_SELL, &d, 1) ? d.price : MID + 1;
}

static void make_new(struct model *m, struct op_order_msg *in, int side, int tif, int aggressive)
{
    memset(in, 0, sizeof(*in));
    in->kind = OP_MSG_NEW;
    in->order_id = m->next_id++;
    in->ts_ns = m->ts;
    in->side = (uint8_t)side;
    in->type = OP_TYPE_LIMIT;
    in->tif = (uint8_t)tif;
    in->qty = 100 + (int64_t)gen_below(&m->rng, 400);
    int64_t behind = (int64_t)gen_below(&m->rng, 6);
    if (side == OP_SIDE_BUY)
        in->price = aggressive ? m->best_ask : m->best_ask - 1 - behind;
    else
        in->price = aggressive ? m->best_bid : m->best_bid + 1 + behind;
    if (tif == OP_TIF_IOC)
        in->qty = 50 + (int64_t)gen_below(&m->rng, 300);
    snprintf(in->symbol, sizeof(in->symbol), "%s", "AAPL");
    snprintf(in->account, sizeof(in->account), "%s", in->order_id % 2 ? "alice" : "bob");
}

static void make_target(struct model *m, struct op_order_msg *in, int kind, const struct live *o)
{
    memset(in, 0, sizeof(*in));
    in->kind = (uint8_t)kind;
    in->order_id = o->id;
    in->ts_ns = m->ts;
    snprintf(in->symbol, sizeof(in->symbol), "%s", "AAPL");
    /* the owner: ids alternate */
    snprintf(in->account, sizeof(in->account), "%s", o->id % 2 ? "alice" : "bob");
}

/* Generates n inputs into v (applying each to shadow); returns how many (≥ n, < n+2). */
static long gen_chunk(struct model *m, struct eng *shadow, struct op_order_msg *v, long n,
                      struct eng_reports *out)
{
    long k = 0;
    while (k < n) {
        m->ts += 1000;
        /* Per 80 draws: 10 GTC, 3 IOC, 6 cancels, 41 amends, 20 cancel/replace
         * pairs = 100 inputs in the proportions of the header comment. */
        uint64_t d = gen_below(&m->rng, 80);
        int side = gen_below(&m->rng, 2) ? OP_SIDE_BUY : OP_SIDE_SELL;
        if (m->n > 2400 && d < 13)
            d = 13; /* too many: cancel instead */
        if (m->n < 1600 && d >= 10 && d < 19)
            d = 0; /* too few: new instead */
        if (d < 10) {
            make_new(m, &v[k], side, OP_TIF_GTC, gen_below(&m->rng, 5) == 0);
        } else if (d < 13) {
            make_new(m, &v[k], side, OP_TIF_IOC, 1);
        } else if (d < 19) {
            make_target(m, &v[k], OP_MSG_CANCEL, &m->v[gen_below(&m->rng, m->n)]);
        } else if (d < 60) {
            const struct live *o = &m->v[gen_below(&m->rng, m->n)];
            if (o->qty - o->filled > 1) {
                make_target(m, &v[k], OP_MSG_AMEND, o);
                v[k].qty = o->qty - 1;
            } else {
                make_target(m, &v[k], OP_MSG_CANCEL, o);
            }
        } else {
            const struct live *o = &m->v[gen_below(&m->rng, m->n)];
            int oside = o->side;
            make_target(m, &v[k], OP_MSG_CANCEL, o);
            shadow_apply(m, shadow, &v[k], out);
            k++;
            make_new(m, &v[k], oside, OP_TIF_GTC, 0);
        }
        shadow_apply(m, shadow, &v[k], out);
        k++;
    }
    return k;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void cpu_model(char *buf, size_t len)
{
    snprintf(buf, len, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f == NULL)
        return;
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *p = strchr(line, ':');
            if (p) {
                p += 2;
                p[strcspn(p, "\n")] = '\0';
                snprintf(buf, len, "%s", p);
            }
            break;
        }
    }
    fclose(f);
}

/* One engine under test and what was measured on it. */
struct variant {
    struct eng *e;
    int prefetch;      /* 1: the eng_apply_batch pipeline */
    double elapsed;    /* seconds inside the timed loops */
    uint64_t *samples; /* sampled per-input latencies, ns */
    size_t ns;
    uint64_t reports;
    double ops_s;
    uint64_t p50, p99, p999;
};

/* Applies chunk[0 … n-1] to v->e, timing the whole and 1 in SAMPLE_EVERY inputs. */
static void timed_run(struct variant *v, const struct op_order_msg *chunk, long n,
                      uint64_t overhead, struct eng_reports *out)
{
    struct eng *e = v->e;
    eng_reports_reset(out);
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        if ((i & 255) == 0) { /* the matcher resets its buffer per batch */
            v->reports += out->len;
            eng_reports_reset(out);
        }
        /* eng_apply_batch's loop, spelled out so single inputs can be timed
         * (the prefetch hints are inside the timed bracket) */
        if (i % SAMPLE_EVERY == 0) {
            uint64_t a = now_ns();
            if (v->prefetch) {
                eng_prefetch(e, &chunk[i + 16], 0);
                eng_prefetch(e, &chunk[i + 8], 1);
            }
            eng_apply(e, &chunk[i], out);
            uint64_t b = now_ns();
            v->samples[v->ns++] = b - a > overhead ? b - a - overhead : 0;
        } else {
            if (v->prefetch) {
                eng_prefetch(e, &chunk[i + 16], 0);
                eng_prefetch(e, &chunk[i + 8], 1);
            }
            eng_apply(e, &chunk[i], out);
        }
    }
    v->elapsed += now_s() - t0;
    v->reports += out->len;
    eng_reports_reset(out);
}

static void finish(struct variant *v, long done)
{
    v->ops_s = (double)done / v->elapsed;
    qsort(v->samples, v->ns, sizeof(*v->samples), cmp_u64);
    v->p50 = v->samples[v->ns / 2];
    v->p99 = v->samples[v->ns * 99 / 100];
    v->p999 = v->samples[v->ns * 999 / 1000];
}

/* Seeds the book: SIDE_ORDERS per side over 50 levels each side of MID. */
static void seed(struct model *m, struct eng *shadow, struct op_order_msg *v, long *n,
                 struct eng_reports *out)
{
    for (int i = 0; i < 2 * SIDE_ORDERS; i++) {
        int side = i % 2 ? OP_SIDE_SELL : OP_SIDE_BUY;
        struct op_order_msg *in = &v[(*n)++];
        memset(in, 0, sizeof(*in));
        in->kind = OP_MSG_NEW;
        in->order_id = m->next_id++;
        in->ts_ns = ++m->ts;
        in->side = (uint8_t)side;
        in->type = OP_TYPE_LIMIT;
        in->tif = OP_TIF_GTC;
        in->qty = 100 + (int64_t)gen_below(&m->rng, 400);
        int64_t lvl = (int64_t)((i / 2) % 50);
        in->price = side == OP_SIDE_BUY ? MID - 1 - lvl : MID + 1 + lvl;
        snprintf(in->symbol, sizeof(in->symbol), "%s", "AAPL");
        snprintf(in->account, sizeof(in->account), "%s", in->order_id % 2 ? "alice" : "bob");
        shadow_apply(m, shadow, in, out);
    }
}

/* What one scenario measured. */
struct sc_result {
    double plain_s, piped_s; /* messages per second */
    double encoded_s;        /* eng_apply_batch + the msgpack encoding of its reports */
    double reports;          /* per message */
    uint64_t messages, open_end;
    uint32_t closed; /* remembered closed ids when the timed part starts */
};

/* Generates scenario sc (untimed, against a shadow engine): `total`
 * messages of warm-up, then `total` timed ones. Times a fresh engine
 * (default closed memory) on it twice: eng_apply one by one, and
 * eng_apply_batch in batches of SCENARIO_BATCH; each must end in the
 * shadow's state. The warm-up (applied untimed) fills the closed-order
 * memory to its bound, as in a matcher that has run for a while: the id map
 * is at its working size (1M remembered ids), the state the timed part
 * measures. Reports are reset per batch, as the matcher does. */
static int run_scenario(const struct scenario *sc, long total, struct op_order_msg *v,
                        struct sc_result *res)
{
    struct sc_gen g;
    if (sc_init(&g, sc, (uint64_t)total * 2, 20261201) != 0)
        return -1;
    long n = 0, warm = 0;
    while (n < total)
        n += sc_next(&g, &v[n]);
    warm = n;
    while (n < 2 * total)
        n += sc_next(&g, &v[n]);
    memset(&v[n], 0, PREFETCH_PAD * sizeof(*v));
    uint64_t want = eng_hash(g.shadow);
    res->messages = (uint64_t)(n - warm);
    res->open_end = eng_open_orders(g.shadow);
    sc_release(&g);
    struct eng_reports out;
    eng_reports_init(&out);
    struct op_buf enc;
    op_buf_init(&enc);
    for (int piped = 0; piped < 3; piped++) {
        struct eng *e = eng_new(0, 0);
        uint64_t reports = 0;
        for (long i = 0; i < warm; i += SCENARIO_BATCH) {
            eng_apply_batch(e, &v[i],
                            (size_t)(warm - i < SCENARIO_BATCH ? warm - i : SCENARIO_BATCH), &out);
            eng_reports_reset(&out);
        }
        res->closed = e->closed_len;
        double t0 = now_s();
        for (long i = warm; i < n; i += SCENARIO_BATCH) {
            long k = n - i < SCENARIO_BATCH ? n - i : SCENARIO_BATCH;
            if (piped) {
                eng_apply_batch(e, &v[i], (size_t)k, &out);
                if (piped == 2) { /* what the matcher does next: one fills entry's m */
                    op_buf_reset(&enc);
                    for (size_t at = 0; at < out.len; at += OP_CODEC_REPORTS_MAX) {
                        size_t c = out.len - at < OP_CODEC_REPORTS_MAX ? out.len - at
                                                                       : OP_CODEC_REPORTS_MAX;
                        if (op_codec_encode_reports(&enc, out.v + at, c) != 0)
                            abort();
                    }
                }
            } else {
                for (long j = 0; j < k; j++)
                    eng_apply(e, &v[i + j], &out);
            }
            reports += out.len;
            eng_reports_reset(&out);
        }
        double el = now_s() - t0;
        char err[256] = "";
        if (eng_check(e, err, sizeof(err)) != 0 || eng_hash(e) != want) {
            fprintf(stderr, "bench_book: scenario %s: engine state differs from the shadow's %s\n",
                    sc->name, err);
            exit(1); /* the process ends: nothing to free */
        }
        *(piped == 2 ? &res->encoded_s
          : piped    ? &res->piped_s
                     : &res->plain_s) = (double)(n - warm) / el;
        res->reports = (double)reports / (double)(n - warm);
        eng_free(e);
    }
    eng_reports_release(&out);
    op_buf_release(&enc);
    return 0;
}

int main(void)
{
    const char *env = getenv("BENCH_BOOK_OPS");
    long TOTAL_OPS = env && strtol(env, NULL, 10) > 0 ? strtol(env, NULL, 10) : TOTAL_OPS_DEFAULT;
    char cpu[256];
    cpu_model(cpu, sizeof(cpu));
    struct model m;
    memset(&m, 0, sizeof(m));
    m.next_id = 1;
    m.ts = 1700000000000000000ull;
    m.rng = 0x9E3779B97F4A7C15ull;
    m.pos = calloc((size_t)TOTAL_OPS * 2 + 4 * (size_t)SIDE_ORDERS, sizeof(*m.pos));
    /* + PREFETCH_PAD: the pipeline reads (and ignores) up to 16 inputs past the end */
    struct op_order_msg *all = calloc((size_t)TOTAL_OPS + CHUNK + 2 + PREFETCH_PAD, sizeof(*all));
    struct op_order_msg *base_in =
        malloc(((size_t)BASE_OPS + 2 + 2 * (size_t)SIDE_ORDERS) * sizeof(*base_in));
    if (m.pos == NULL || all == NULL || base_in == NULL) {
        fprintf(stderr, "bench_book: out of memory\n");
        exit(1); /* the process ends: nothing to free */
    }
    struct eng *shadow = eng_new(0, 0), *e = eng_new(0, 0), *e_pf = eng_new(0, 0);
    struct eng_reports sout, out;
    uint64_t closed_len = 0;
    eng_reports_init(&sout);
    eng_reports_init(&out);

    /* The starting book (untimed), kept for the baseline. */
    long nseed = 0;
    seed(&m, shadow, base_in, &nseed, &sout);
    for (long i = 0; i < nseed; i++) {
        eng_apply(e, &base_in[i], &out);
        eng_apply(e_pf, &base_in[i], &out);
    }
    eng_reports_reset(&out);
    long nbase = nseed;

    size_t nsamples = (size_t)(TOTAL_OPS / SAMPLE_EVERY + CHUNK);
    /* The timer's own cost: median of empty brackets. */
    uint64_t cal[1001];
    for (int i = 0; i < 1001; i++) {
        uint64_t t0 = now_ns();
        cal[i] = now_ns() - t0;
    }
    qsort(cal, 1001, sizeof(cal[0]), cmp_u64);
    uint64_t overhead = cal[500];

    struct variant plain = {.e = e, .prefetch = 0}, piped = {.e = e_pf, .prefetch = 1};
    plain.samples = malloc(nsamples * sizeof(uint64_t));
    piped.samples = malloc(nsamples * sizeof(uint64_t));
    /* Generate every input first (against the shadow engine), then time each
     * variant alone: no other engine competes for the caches while one runs. */
    long done = 0;
    uint64_t kinds[8] = {0};
    while (done < TOTAL_OPS) {
        long n = gen_chunk(&m, shadow, all + done, CHUNK, &sout);
        done += n;
    }
    for (long i = 0; i < done; i++)
        kinds[all[i].kind & 7]++;
    long take = done < BASE_OPS ? done : BASE_OPS;
    memcpy(&base_in[nbase], all, (size_t)take * sizeof(*all));
    nbase += take;
    uint64_t want_hash = eng_hash(shadow);
    eng_free(shadow);
    shadow = NULL;
    free(m.pos);
    m.pos = NULL;
    char err[256] = "";
    struct variant *vs[2] = {&plain, &piped};
    for (int k = 0; k < 2; k++) {
        struct variant *v = vs[k];
        for (long off = 0; off < done; off += CHUNK)
            timed_run(v, all + off, done - off < CHUNK ? done - off : CHUNK, overhead, &out);
        finish(v, done);
        if (eng_check(v->e, err, sizeof(err)) != 0 || eng_hash(v->e) != want_hash) {
            fprintf(stderr, "bench_book: engine state check failed: %s\n", err);
            exit(1); /* the process ends: nothing to free */
        }
        closed_len = v->e->closed_len;
        eng_free(v->e);
        v->e = NULL;
    }
    uint64_t reports = piped.reports;

    /* Baseline: the naive reference on the first BASE_OPS inputs. */
    struct ref *r = ref_new(0, CLOSED_MAX);
    static struct op_report rrep[8192];
    for (long i = 0; i < nseed; i++)
        ref_apply(r, &base_in[i], rrep, 8192);
    double t0 = now_s();
    for (long i = nseed; i < nbase; i++)
        ref_apply(r, &base_in[i], rrep, 8192);
    double base_elapsed = now_s() - t0;
    double base_ops_s = (double)(nbase - nseed) / base_elapsed;
    /* Same work: replay the prefix through a fresh engine and compare the last reports. */
    ref_free(r);
    r = ref_new(0, CLOSED_MAX);
    struct eng *e2 = eng_new(0, 0);
    for (long i = 0; i < nbase; i++) {
        size_t nr = ref_apply(r, &base_in[i], rrep, 8192);
        eng_reports_reset(&out);
        size_t ne = eng_apply(e2, &base_in[i], &out);
        if (i >= nseed && (nr != ne || memcmp(rrep, out.v, ne * sizeof(*out.v)) != 0)) {
            fprintf(stderr, "bench_book: reference and engine differ at input %ld\n", i);
            exit(1); /* the process ends: nothing to free */
        }
    }

    printf("cpu: %s\n", cpu);
    printf("conditions: 1 thread, 1 symbol, %d resting orders per side at start over 50 levels, "
           "book kept at 1600-2400 orders\n",
           SIDE_ORDERS);
    printf("mix: 10%% new GTC (1/5 aggressive), 3%% IOC, 6%% cancel, 41%% amend, "
           "40%% cancel/replace inputs\n");
    printf("inputs: %ld (new %.1f%%, cancel %.1f%%, amend %.1f%%), %.2f reports/input, "
           "closed memory %u ids (engine default), %llu remembered at the end\n",
           done, 100.0 * (double)kinds[OP_MSG_NEW] / (double)done,
           100.0 * (double)kinds[OP_MSG_CANCEL] / (double)done,
           100.0 * (double)kinds[OP_MSG_AMEND] / (double)done, (double)reports / (double)done,
           ENG_CLOSED_DEFAULT, (unsigned long long)closed_len);
    printf("engine, eng_apply: %.0f ops/s, %.1f ns/op mean over %.3f s; latency (1 in %d "
           "sampled, %zu samples, timer overhead %" PRIu64 " ns subtracted): p50 %" PRIu64
           " ns, p99 %" PRIu64 " ns, p99.9 %" PRIu64 " ns\n",
           plain.ops_s, 1e9 / plain.ops_s, plain.elapsed, SAMPLE_EVERY, plain.ns, overhead,
           plain.p50, plain.p99, plain.p999);
    printf("engine, eng_apply_batch pipeline (prefetch 16/8 ahead): %.0f ops/s, %.1f ns/op mean "
           "over %.3f s; latency p50 %" PRIu64 " ns, p99 %" PRIu64 " ns, p99.9 %" PRIu64 " ns\n",
           piped.ops_s, 1e9 / piped.ops_s, piped.elapsed, piped.p50, piped.p99, piped.p999);
    printf("baseline (naive reference book, linear scans) on the first %ld inputs: "
           "%.0f ops/s; its reports equal the engine's\n",
           nbase - nseed, base_ops_s);

    /* The realistic scenarios (issue 19), in the buffer of the mix above. */
    env = getenv("BENCH_BOOK_SCENARIO_OPS");
    long sc_ops = env && strtol(env, NULL, 10) > 0 ? strtol(env, NULL, 10) : SCENARIO_OPS_DEFAULT;
    if (sc_ops * 2 > TOTAL_OPS)
        sc_ops = TOTAL_OPS / 2;
    const char *only = getenv("BENCH_BOOK_SCENARIO");
    printf("scenarios: one symbol, %ld messages each after as many untimed (warm-up: the closed "
           "memory full), ids of two ingest lanes, GBM mid, power-law "
           "depth, cancel-heavy, ~20%% of orders modified (cancel + re-insert), batches of %d; "
           "closed memory %u ids (engine default)\n",
           sc_ops, SCENARIO_BATCH, ENG_CLOSED_DEFAULT);
    double worst = 0;
    const char *worst_name = "";
    for (size_t k = 0; k < NSCENARIOS; k++) {
        if (only && strcmp(only, scenarios[k].name) != 0)
            continue;
        struct sc_result res;
        if (run_scenario(&scenarios[k], sc_ops, all, &res) != 0) {
            fprintf(stderr, "bench_book: out of memory\n");
            exit(1);
        }
        printf(
            "scenario %-12s (resting ~%5u, ioc %2.0f%%, modify %2.0f%%%s): eng_apply %9.0f "
            "msgs/s, eng_apply_batch %9.0f msgs/s, + encoding %9.0f msgs/s; %.2f reports/msg, %u "
            "closed remembered, %llu open at the end\n",
            scenarios[k].name, scenarios[k].resting, scenarios[k].ioc * 100,
            scenarios[k].modify * 100, scenarios[k].crash ? ", crash" : "", res.plain_s,
            res.piped_s, res.encoded_s, res.reports, res.closed, (unsigned long long)res.open_end);
        if (worst == 0 || res.piped_s < worst) {
            worst = res.piped_s;
            worst_name = scenarios[k].name;
        }
    }
    printf("worst scenario: %s, %.0f msgs/s (eng_apply_batch)\n", worst_name, worst);
    printf("bench book: %.0f msgs/s (baseline %.0f ops/s, ratio %.1f)\n", worst, base_ops_s,
           worst / base_ops_s);

    ref_free(r);
    eng_free(e2);
    eng_reports_release(&out);
    eng_reports_release(&sout);
    free(plain.samples);
    free(piped.samples);
    free(base_in);
    free(all);
    free(m.v);
    return 0;
}

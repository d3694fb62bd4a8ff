/* The matcher checker: fills:{S} must equal what the in-process engine makes of the seeded flow. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "matcher/engine/engine.h"
#include "ops/tools/ordergen.h"
#include "shared/buf.h"
#include "shared/codec.h"
#include "shared/config.h"
#include "shared/redis.h"
#include "shared/reply.h"
#include "shared/service.h"
#include "shared/symbols.h"

/*
 *   test_matcher_check check --seed N --count N [--poison-every K] [--symbols A,B]
 *   test_matcher_check log                              (the log against the fills)
 *   test_matcher_check engine --seed N --count N        (benchmark baseline)
 *   test_matcher_check                                  (self-test, run by the harness)
 *
 * check: regenerates inputs 0 … count-1 of the flow of `seed`
 * (ops/tools/ordergen.h, as orderpipe-ordergen wrote them), runs them through
 * one engine per shard (eng_new(S, 0), as the matcher), and compares, shard
 * by shard, the concatenated sequence of the reports of every entry of
 * fills:{S} (XRANGE; each entry's `m` is an array of reports, one entry per
 * batch, so how inputs are grouped into entries may differ after a failover)
 * with the engine's reports, byte for byte: the same reports with the same
 * ids in the same order, nothing missing, nothing duplicated, nothing extra.
 * The readable fields of each entry must agree with its reports: `kind`
 * the counts by kind, `sym` the distinct symbols of the inputs it covers,
 * `n` the inputs whose last report it holds; the `in` ids must not go
 * backwards. Prints the first difference and exits 1, or a summary and 0.
 *
 * log: the same comparison, but with the inputs read back from orders:{S}
 * instead of regenerated: every entry (XRANGE), taken apart and decoded
 * exactly as the matcher does (op_codec_split_orders, op_codec_decode_order;
 * what does not decode is a MALFORMED input of kind 0 with the symbol the
 * matcher would give it), applied to one fresh engine per shard set up as
 * the matcher sets up its own (MATCHER_CLOSED_MAX, the listing of
 * SYMBOLS_FILE, MAX_OPEN_ORDERS). It so covers what the regenerated flow
 * cannot: the ticks the owners appended, and with them every GTD expiry and
 * dead-man firing at the input where it happened. The fills must equal one
 * uninterrupted run of the log, whatever owners came and went. The log must
 * be whole: a stream that was ever trimmed (XINFO STREAM: entries-added
 * above its length) is an error, not a pass. Prints the counts of the
 * time-driven events (GTD orders accepted and expired, dead-man switches
 * armed and fired, orders they cancelled) and `pending=N`, the shards whose
 * engine, or a restored copy of it, would still expire an order or fire a
 * switch at a tick (log_owed), for the test to assert.
 *
 * engine: the same inputs through decode → apply → encode in-process, no
 * Redis, and prints the rate (the matcher benchmark's baseline).
 *
 * With no arguments (integration harness): a self-test of the checker on
 * scratch streams — exact copies in two different groupings pass; a missing,
 * a duplicated, an altered and an extra input, and a wrong readable field,
 * each fail. The log mode, on a scratch log of a timers flow with ticks and
 * poisoned elements: its own fills pass (expiries and firings counted,
 * nothing owed); an altered report, a tick's reports missing, and a log
 * with an entry deleted each fail; without the final ticks, expiries are
 * owed (`pending`).
 */

struct opts {
    uint64_t seed, count, poison_every;
    const char *symbols;
    const char *prefix; /* fills stream prefix, "fills:" */
};

/* Why 8, and the format: as the matcher's `sym` field (matcher/partition.c). */
#define SYM_SUMMARY_MAX 8

/* The `sym` field being built: distinct symbols in order of appearance. */
struct symlist {
    char text[256]; /* "AAPL,MSFT" */
    size_t n;       /* symbols in text */
    int more;       /* more than SYM_SUMMARY_MAX: text is followed by ",..." */
};

/* Adds sym (unless empty or already listed) to l. */
static void symlist_add(struct symlist *l, const char *sym)
{
    if (!sym[0])
        return;
    const char *p = l->text;
    for (size_t j = 0; j < l->n; j++) {
        size_t len = strcspn(p, ",");
        if (len == strlen(sym) && memcmp(p, sym, len) == 0)
            return;
        p += len + 1;
    }
    if (l->n == SYM_SUMMARY_MAX) {
        l->more = 1;
        return;
    }
    size_t used = strlen(l->text);
    snprintf(l->text + used, sizeof(l->text) - used, "%s%s", l->n ? "," : "", sym);
    l->n++;
}

/* One fills entry, copied out of the reply. */
struct fentry {
    char *sym, *kind, *m, *in, *n;
    size_t m_len;
    size_t count; /* reports in m (its array header) */
    size_t body;  /* offset of the first report in m */
};

struct fshard {
    struct fentry *v;
    size_t n, cap;
    size_t next; /* the entry being compared */
    size_t rep;  /* reports of it compared so far */
    size_t off;  /* byte offset in its m of the next report */
    /* what its readable fields must say, built as its reports are compared */
    size_t kinds[OP_REPORT_KIND_MAX + 1];
    struct symlist syms;
    size_t done;        /* inputs whose last report it holds */
    uint64_t cur_input; /* the input whose reports are being compared */
    int cur_counted;    /* cur_input's symbol already counted in this entry */
};

static void fshards_free(struct fshard *f, uint32_t shards)
{
    for (uint32_t s = 0; s < shards; s++) {
        for (size_t i = 0; i < f[s].n; i++) {
            free(f[s].v[i].sym);
            free(f[s].v[i].kind);
            free(f[s].v[i].m);
            free(f[s].v[i].in);
            free(f[s].v[i].n);
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

/* Reads the msgpack array header of x->m into x->count and x->body; a
 * missing or bad header reads as an empty array with no body, which the
 * comparison reports. */
static void array_header(struct fentry *x)
{
    const unsigned char *m = (const unsigned char *)x->m;
    x->count = 0;
    x->body = x->m_len;
    if (x->m_len >= 1 && (m[0] & 0xf0) == 0x90) {
        x->count = m[0] & 0x0f;
        x->body = 1;
    } else if (x->m_len >= 3 && m[0] == 0xdc) {
        x->count = (size_t)m[1] << 8 | m[2];
        x->body = 3;
    } else if (x->m_len >= 5 && m[0] == 0xdd) {
        x->count = (size_t)m[1] << 24 | (size_t)m[2] << 16 | (size_t)m[3] << 8 | m[4];
        x->body = 5;
    }
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
                x->n = dup_field(fields, "n", NULL);
                x->m = dup_field(fields, "m", &x->m_len);
                array_header(x);
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

/* The current entry of f is complete: checks it holds nothing more and
 * that its readable fields say what its reports are, then moves to the
 * next one. Returns 0, or -1 after printing the difference. */
static int close_entry(struct fshard *f, uint32_t s)
{
    const struct fentry *x = &f->v[f->next];
    char kinds[128] = "", syms[300], n[32];
    size_t used = 0;
    for (int k = 0; k <= OP_REPORT_KIND_MAX; k++)
        if (f->kinds[k])
            used += (size_t)snprintf(kinds + used, sizeof(kinds) - used, "%s%s=%zu",
                                     used ? "," : "", op_report_kind_name(k), f->kinds[k]);
    snprintf(syms, sizeof(syms), "%s%s", f->syms.text, f->syms.more ? ",..." : "");
    snprintf(n, sizeof(n), "%zu", f->done);
    if (f->off != x->m_len) {
        printf("matchcheck: DIFFERENT: shard %u entry %zu (in %s): %zu bytes of m after its %zu "
               "reports\n",
               s, f->next, x->in, x->m_len - f->off, x->count);
        return -1;
    }
    if (strcmp(x->kind, kinds) != 0 || strcmp(x->sym, syms) != 0 || strcmp(x->n, n) != 0) {
        printf("matchcheck: FIELDS: shard %u entry %zu (in %s): kind=%s sym=%s n=%s; its reports "
               "say kind=%s sym=%s n=%s\n",
               s, f->next, x->in, x->kind, x->sym, x->n, kinds, syms, n);
        return -1;
    }
    const char *first = x->in, *dots = strstr(x->in, "..");
    if (f->next > 0) {
        const char *prev = f->v[f->next - 1].in, *pd = strstr(prev, "..");
        if (sid_cmp_text(pd ? pd + 2 : prev, first) > 0) {
            printf("matchcheck: ORDER: shard %u entry %zu has in=%s after in=%s\n", s, f->next,
                   x->in, prev);
            return -1;
        }
    }
    if (dots && sid_cmp_text(first, dots + 2) > 0) {
        printf("matchcheck: ORDER: shard %u entry %zu has in=%s\n", s, f->next, x->in);
        return -1;
    }
    f->next++;
    f->rep = 0;
    f->off = f->next < f->n ? f->v[f->next].body : 0;
    memset(f->kinds, 0, sizeof(f->kinds));
    memset(&f->syms, 0, sizeof(f->syms));
    f->done = 0;
    f->cur_counted = 0;
    return 0;
}

/* Compares the reports r[0 … n-1] of input i (message m) of shard s with
 * the next reports of f, wherever entries begin and end. Returns 0, or -1
 * after printing the difference. */
static int compare_input(struct fshard *f, uint32_t s, uint64_t i, const struct op_order_msg *m,
                         const struct op_report *r, size_t n, struct op_buf *enc)
{
    f->cur_input = i;
    f->cur_counted = 0;
    for (size_t j = 0; j < n; j++) {
        while (f->next < f->n && f->rep == f->v[f->next].count)
            if (close_entry(f, s) != 0) /* an empty entry, or one whose reports are all seen */
                return -1;
        if (f->next == f->n) {
            printf("matchcheck: MISSING: shard %u has %zu entries; input %" PRIu64
                   " (%s, order %" PRIu64 ") expects one more report (%s, report id %" PRIu64 ")\n",
                   s, f->n, i, op_msg_kind_name(m->kind), m->order_id,
                   op_report_kind_name(r[j].kind), r[j].report_id);
            return -1;
        }
        const struct fentry *x = &f->v[f->next];
        op_buf_reset(enc);
        op_codec_encode_reports(enc, r + j, 1);
        size_t len = enc->len - 1; /* without the array header of one element */
        if (x->m_len - f->off < len || memcmp(x->m + f->off, enc->data + 1, len) != 0) {
            printf("matchcheck: DIFFERENT: shard %u entry %zu (in %s) report %zu: input %" PRIu64
                   " (%s, order %" PRIu64 ") expects %s with report id %" PRIu64 " there\n",
                   s, f->next, x->in, f->rep, i, op_msg_kind_name(m->kind), m->order_id,
                   op_report_kind_name(r[j].kind), r[j].report_id);
            return -1;
        }
        f->off += len;
        f->rep++;
        if (r[j].kind <= OP_REPORT_KIND_MAX)
            f->kinds[r[j].kind]++;
        if (!f->cur_counted) {
            symlist_add(&f->syms, m->symbol);
            f->cur_counted = 1;
        }
        if (j + 1 == n)
            f->done++;
        if (f->rep == x->count && j + 1 < n)
            f->cur_counted = 0; /* the input goes on in the next entry */
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
    struct op_buf enc;
    eng_reports_init(&reps);
    op_buf_init(&enc);
    int rc = 0;
    uint64_t nreports = 0, poisoned = 0;
    for (uint32_t s = 0; s < shards; s++)
        f[s].off = f[s].n ? f[s].v[0].body : 0;
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
        if (compare_input(&f[s], s, i, &m, reps.v, reps.len, &enc) != 0)
            rc = 1;
    }
    size_t entries = 0;
    for (uint32_t s = 0; s < shards && rc == 0; s++) {
        entries += f[s].n;
        while (rc == 0 && f[s].next < f[s].n && f[s].rep == f[s].v[f[s].next].count)
            if (close_entry(&f[s], s) != 0)
                rc = 1;
        if (rc == 0 && f[s].next != f[s].n) {
            const struct fentry *x = &f[s].v[f[s].next];
            printf("matchcheck: EXTRA: shard %u entry %zu (in=%s kind=%s) has %zu more reports "
                   "than the flow gives\n",
                   s, f[s].next, x->in, x->kind, x->count - f[s].rep);
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
    fshards_free(f, shards);
    return rc;
}

/* ---- log: the inputs read back from orders:{S} ---------------------------- */

/* The counts of a log check: how many of each time-driven event. */
struct log_counts {
    uint64_t inputs, entries, ticks, malformed, reports;
    uint64_t gtd_accepted, expired;         /* GTD orders accepted; CANCELLED EXPIRED */
    uint64_t dm_armed, dm_fired, dm_orders; /* arms; CANCEL_ALL_DONE DEAD_MAN; CANCELLED DEAD_MAN */
    uint32_t pending;                       /* shards with an engine event still due */
};

/* 0 when orders:{s} holds every entry ever added to it (XINFO STREAM:
 * entries-added = length): nothing was trimmed, the replay starts where the
 * shard started. -1 after printing why not. */
static int log_whole(struct op_redis *r, const char *key)
{
    struct redisReply *rep = op_redis_cmdf(r, "XINFO STREAM %s", key);
    long long added = -1, length = -1;
    const struct redisReply *a = op_reply_field(rep, "entries-added");
    const struct redisReply *l = op_reply_field(rep, "length");
    if (op_reply_type(a) == OP_REPLY_INTEGER && op_reply_type(l) == OP_REPLY_INTEGER) {
        added = op_reply_int(a);
        length = op_reply_int(l);
    }
    op_reply_free(rep);
    if (added < 0) {
        fprintf(stderr,
                "matchcheck: XINFO STREAM %s failed or has no entries-added (redis >= 7.0 "
                "needed)\n",
                key);
        return -1;
    }
    if (added != length) {
        fprintf(stderr,
                "matchcheck: %s holds %lld of the %lld entries ever added: it was trimmed "
                "(a snapshot), the log is not whole; keep it untrimmed for this check\n",
                key, length, added);
        return -1;
    }
    return 0;
}

/* The matcher's symbol for a malformed input (matcher/part.c): sym (slen
 * bytes) when it is one symbol of 1-15 bytes, else none. */
static void log_malformed(struct op_order_msg *m, const char *sym, size_t slen)
{
    memset(m, 0, sizeof(*m));
    if (sym && slen > 0 && slen < OP_SYMBOL_MAX && !memchr(sym, ',', slen))
        memcpy(m->symbol, sym, slen);
}

/* Turns the stream entry `entry` into its inputs in *v (grown as needed,
 * *n of them), as the matcher's decode_entry does: one per element of `m`;
 * an element that does not decode is MALFORMED with its own `sym` when it
 * has one, else the entry's; an `m` that cannot be taken apart, or none,
 * is one MALFORMED input with the entry's `sym`. Returns how many inputs
 * it gave (at least 1). */
static size_t log_entry_inputs(struct op_codec *c, const struct redisReply *entry,
                               struct op_order_msg **v, size_t *cap, struct op_span *spans,
                               uint64_t *malformed)
{
    const struct redisReply *fields = op_reply_at(entry, 1);
    size_t mlen = 0, slen = 0;
    const char *mv = op_reply_field_str(fields, "m", &mlen);
    const char *sym = op_reply_field_str(fields, "sym", &slen);
    long k = mv ? op_codec_split_orders(c, mv, mlen, spans, OP_CODEC_ORDERS_MAX) : -1;
    size_t n = k < 0 ? 1 : (size_t)k;
    if (n > *cap) {
        *v = realloc(*v, n * sizeof(**v));
        if (!*v)
            abort();
        *cap = n;
    }
    if (k < 0) {
        log_malformed(&(*v)[0], sym, slen);
        (*malformed)++;
        return 1;
    }
    for (size_t j = 0; j < n; j++) {
        struct op_order_msg *m = &(*v)[j];
        if (op_codec_decode_order(c, mv + spans[j].off, spans[j].len, m) == 0)
            continue;
        char own[OP_SYMBOL_MAX];
        if (op_codec_peek_symbol(mv + spans[j].off, spans[j].len, own) == 0)
            log_malformed(m, own, strlen(own));
        else
            log_malformed(m, sym, slen);
        (*malformed)++;
    }
    return n;
}

/* Counts the time-driven events among reports r[0 … n-1]. */
static void log_count(struct log_counts *k, const struct op_report *r, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        if (r[j].kind == OP_REPORT_ACCEPTED && r[j].tif == OP_TIF_GTD)
            k->gtd_accepted++;
        else if (r[j].kind == OP_REPORT_CANCELLED && r[j].reason == OP_REASON_EXPIRED)
            k->expired++;
        else if (r[j].kind == OP_REPORT_CANCELLED && r[j].reason == OP_REASON_DEAD_MAN)
            k->dm_orders++;
        else if (r[j].kind == OP_REPORT_CANCEL_ALL_DONE && r[j].reason == OP_REASON_DEAD_MAN)
            k->dm_fired++;
        else if (r[j].kind == OP_REPORT_DEAD_MAN && r[j].qty > 0)
            k->dm_armed++;
    }
}

/* The reports (beside the tick's own) that a tick stamped ts makes e emit. */
static size_t log_tick_owes(struct eng *e, struct eng_reports *reps, uint64_t ts)
{
    struct op_order_msg tick = {.kind = OP_MSG_TICK, .ts_ns = ts};
    eng_reports_reset(reps);
    eng_apply(e, &tick, reps);
    return reps->len - 1;
}

/*
 * 1 when engine e (consumed: a tick is applied to it) still owes reports to
 * time, or when a restored copy of it (eng_snapshot + eng_restore: what a
 * successor would hold) would owe different ones; 0 when neither owes any.
 * eng_next_event_ns alone does not tell: the uninterrupted engine's expiry
 * heap keeps the entries of GTD orders closed before their expiry (skipped
 * lazily), so it may name a time at which nothing happens, where a restored
 * engine (heap rebuilt from the open orders) names none. So both get a tick
 * at e's next event (or at last_ts, e's engine time, if later). Prints what
 * is owed.
 */
static int log_owed(struct eng *e, struct eng_reports *reps, uint32_t s, uint64_t last_ts)
{
    uint64_t due = eng_next_event_ns(e);
    if (due == 0)
        return 0;
    char *blob = NULL, err[200];
    size_t len = 0;
    struct eng *copy =
        eng_snapshot(e, &blob, &len) == 0 ? eng_restore(blob, len, err, sizeof(err)) : NULL;
    free(blob);
    if (!copy)
        abort(); /* the matcher's own snapshots go through the same calls */
    uint64_t restored_due = eng_next_event_ns(copy), ts = due > last_ts ? due : last_ts;
    size_t owed = log_tick_owes(e, reps, ts), owed_restored = log_tick_owes(copy, reps, ts);
    eng_free(copy);
    if (owed == 0 && owed_restored == 0) /* the event was a closed order's */
        return 0;
    printf("matchcheck: shard %u: a tick at %" PRIu64 " ns (engine time %" PRIu64
           ") still gives %zu reports, %zu on a restored copy (whose next event is %" PRIu64 ")\n",
           s, due, last_ts, owed, owed_restored, restored_due);
    return 1;
}

/* Replays orders:{s} (whole, in pages) through engine e and compares the
 * reports with f, then counts the shard in k->pending when e still owes
 * reports to time (log_owed, which leaves e changed). Returns 0, 1 (differs) or 2 (Redis error, log
 * not whole). */
static int log_shard(struct op_redis *r, const char *orders, struct eng *e, struct fshard *f,
                     uint32_t s, struct log_counts *k)
{
    char key[96], from[80] = "-";
    snprintf(key, sizeof(key), "%s{%u}", orders, s);
    if (log_whole(r, key) != 0)
        return 2;
    struct op_codec *c = op_codec_new();
    struct op_span *spans = malloc(OP_CODEC_ORDERS_MAX * sizeof(*spans));
    struct op_order_msg *v = NULL;
    size_t cap = 0;
    struct eng_reports reps;
    struct op_buf enc;
    if (!c || !spans)
        abort();
    eng_reports_init(&reps);
    op_buf_init(&enc);
    uint64_t i = 0, last_ts = 0; /* the shard's input number, engine time */
    int rc = 0;
    while (rc == 0) {
        /* Why 500: an entry holds up to 4096 inputs; a page stays a few MB. */
        struct redisReply *rep = op_redis_cmdf(r, "XRANGE %s %s + COUNT 500", key, from);
        if (!rep || op_reply_type(rep) != OP_REPLY_ARRAY) {
            fprintf(stderr, "matchcheck: XRANGE %s failed: %s\n", key,
                    rep ? op_reply_str(rep, NULL) : r->errstr);
            op_reply_free(rep);
            rc = 2;
            break;
        }
        size_t ne = op_reply_count(rep);
        for (size_t x = 0; x < ne && rc == 0; x++) {
            const struct redisReply *entry = op_reply_at(rep, x);
            size_t n = log_entry_inputs(c, entry, &v, &cap, spans, &k->malformed);
            k->entries++;
            for (size_t j = 0; j < n && rc == 0; j++, i++) {
                eng_reports_reset(&reps);
                eng_apply(e, &v[j], &reps);
                k->inputs++;
                k->ticks += v[j].kind == OP_MSG_TICK;
                k->reports += reps.len;
                last_ts = reps.len ? reps.v[reps.len - 1].ts_ns : last_ts;
                log_count(k, reps.v, reps.len);
                if (compare_input(f, s, i, &v[j], reps.v, reps.len, &enc) != 0)
                    rc = 1;
            }
            if (x + 1 == ne)
                snprintf(from, sizeof(from), "(%s", op_reply_str(op_reply_at(entry, 0), NULL));
        }
        op_reply_free(rep);
        if (ne < 500)
            break;
    }
    while (rc == 0 && f->next < f->n && f->rep == f->v[f->next].count)
        if (close_entry(f, s) != 0)
            rc = 1;
    if (rc == 0 && f->next != f->n) {
        const struct fentry *x = &f->v[f->next];
        printf("matchcheck: EXTRA: shard %u entry %zu (in=%s kind=%s) has %zu more reports than "
               "the log gives\n",
               s, f->next, x->in, x->kind, x->count - f->rep);
        rc = 1;
    }
    if (rc == 0 && log_owed(e, &reps, s, last_ts) != 0)
        k->pending++;
    eng_reports_release(&reps);
    op_buf_release(&enc);
    op_codec_free(c);
    free(spans);
    free(v);
    return rc;
}

/* The log check of every shard: <orders>{S} against <fills>{S}, each
 * engine set up as the matcher's (syms, closed_max, max_open); the counts
 * go to *out (may be NULL). 0 ok, 1 differs, 2 error. */
static int check_log(struct op_redis *r, uint32_t shards, const struct op_symtab *syms,
                     uint32_t closed_max, uint32_t max_open, const char *orders, const char *fills,
                     struct log_counts *out)
{
    struct fshard *f = load_fills(r, fills, shards);
    if (!f)
        return 2;
    struct log_counts k = {0};
    size_t fentries = 0;
    int rc = 0;
    for (uint32_t s = 0; s < shards && rc == 0; s++) {
        struct eng *e = eng_new(s, closed_max);
        if (!e || eng_list_symbols(e, syms, shards) != 0)
            abort();
        eng_set_max_open(e, max_open);
        f[s].off = f[s].n ? f[s].v[0].body : 0;
        fentries += f[s].n;
        rc = log_shard(r, orders, e, &f[s], s, &k);
        eng_free(e);
    }
    if (rc == 0)
        printf("matchcheck: ok: log of %" PRIu64 " inputs in %" PRIu64 " orders entries (%" PRIu64
               " ticks, %" PRIu64 " malformed), %" PRIu64 " reports in %zu fills entries over %u "
               "shards, identical; gtd=%" PRIu64 " expired=%" PRIu64 " armed=%" PRIu64
               " dead_man_fired=%" PRIu64 " dead_man_cancelled=%" PRIu64 " pending=%u\n",
               k.inputs, k.entries, k.ticks, k.malformed, k.reports, fentries, shards,
               k.gtd_accepted, k.expired, k.dm_armed, k.dm_fired, k.dm_orders, k.pending);
    fshards_free(f, shards);
    if (out)
        *out = k;
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

/* A self-test case: how the expected fills are written. */
struct wcase {
    const char *what;
    uint64_t skip, dup, alter; /* inputs left out, written twice, altered (UINT64_MAX: none) */
    uint64_t bad_kind;         /* the entry holding this input gets a wrong `kind` */
    size_t group;              /* inputs per entry: cycles 1, group, 3 * group, … */
    int want;                  /* the checker's expected result */
};

/* One shard's entry being built by write_expected. */
struct wentry {
    struct op_report *r; /* [OP_CODEC_REPORTS_MAX] */
    size_t nr;
    size_t inputs, done;
    struct symlist syms;
    int bad;
    uint64_t first, last;
    size_t seq; /* entries written: picks the size of the next one */
};

/* XADDs the entry e of shard key (as the matcher lays it out) and empties it. */
static void flush_wentry(struct op_redis *r, const char *key, struct wentry *e, struct op_buf *enc)
{
    if (e->nr == 0 && e->inputs == 0)
        return;
    char kinds[128] = "", syms[300], in[64], n[32];
    size_t count[OP_REPORT_KIND_MAX + 1] = {0}, used = 0;
    for (size_t j = 0; j < e->nr; j++)
        count[e->r[j].kind <= OP_REPORT_KIND_MAX ? e->r[j].kind : 0]++;
    for (int k = 0; k <= OP_REPORT_KIND_MAX; k++)
        if (count[k])
            used += (size_t)snprintf(kinds + used, sizeof(kinds) - used, "%s%s=%zu",
                                     used ? "," : "", op_report_kind_name(k), count[k]);
    if (e->bad)
        snprintf(kinds, sizeof(kinds), "accepted=1");
    snprintf(syms, sizeof(syms), "%s%s", e->syms.text, e->syms.more ? ",..." : "");
    snprintf(n, sizeof(n), "%zu", e->done);
    snprintf(in, sizeof(in), "%" PRIu64 "-0..%" PRIu64 "-0", e->first, e->last);
    op_buf_reset(enc);
    op_codec_encode_reports(enc, e->r, e->nr);
    op_reply_free(op_redis_cmdf(r, "XADD %s * sym %s kind %s n %s in %s m %b", key, syms, kinds, n,
                                in, enc->data, enc->len));
    e->nr = e->inputs = e->done = 0;
    memset(&e->syms, 0, sizeof(e->syms));
    e->bad = 0;
    e->seq++;
}

/* Writes the expected fills of o to <prefix>{S} as c says: entries of a
 * varying number of inputs (at most OP_CODEC_REPORTS_MAX reports each). */
static int write_expected(struct op_redis *r, const struct opts *o, uint32_t shards,
                          const struct wcase *c)
{
    struct flowgen g;
    flowgen_init(&g, o->seed, o->symbols, shards, o->poison_every);
    struct eng **e = calloc(shards, sizeof(struct eng *)); /* NOLINT(bugprone-sizeof-expression) */
    struct wentry *we = calloc(shards, sizeof(*we));
    struct eng_reports reps;
    struct op_buf enc;
    if (!e || !we)
        abort();
    eng_reports_init(&reps);
    op_buf_init(&enc);
    for (uint32_t s = 0; s < shards; s++) {
        char key[96];
        e[s] = eng_new(s, 0);
        we[s].r = malloc(OP_CODEC_REPORTS_MAX * sizeof(*we[s].r));
        if (!we[s].r)
            abort();
        snprintf(key, sizeof(key), "%s{%u}", o->prefix, s);
        op_reply_free(op_redis_cmdf(r, "DEL %s", key));
    }
    size_t groups[] = {1, c->group, 3 * c->group, 2};
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
        if (reps.len > OP_CODEC_REPORTS_MAX)
            abort(); /* not in this flow: no book that deep */
        if (i == c->alter)
            reps.v[reps.len - 1].qty ^= 1;
        char key[96];
        snprintf(key, sizeof(key), "%s{%u}", o->prefix, s);
        struct wentry *x = &we[s];
        if (!x->r)
            abort(); /* allocated above for every shard */
        for (int rep = 0; rep < (i == c->dup ? 2 : i == c->skip ? 0 : 1); rep++) {
            if (x->nr + reps.len > OP_CODEC_REPORTS_MAX)
                flush_wentry(r, key, x, &enc);
            for (size_t j = 0; j < reps.len; j++)
                x->r[x->nr++] = reps.v[j];
            if (x->inputs++ == 0)
                x->first = i + 1;
            x->last = i + 1;
            x->done++;
            x->bad |= i == c->bad_kind;
            symlist_add(&x->syms, m.symbol);
            if (x->inputs >= groups[x->seq % 4] || i + 1 == o->count)
                flush_wentry(r, key, x, &enc);
        }
    }
    for (uint32_t s = 0; s < shards; s++) {
        char key[96];
        snprintf(key, sizeof(key), "%s{%u}", o->prefix, s);
        flush_wentry(r, key, &we[s], &enc);
        free(we[s].r);
        eng_free(e[s]);
    }
    free(we);
    free(e);
    eng_reports_release(&reps);
    op_buf_release(&enc);
    return 0;
}

static int log_self_test(struct op_redis *r, uint32_t shards, const struct op_symtab *syms);

static int self_test(struct op_redis *r, uint32_t shards, const struct op_symtab *syms)
{
    struct opts o = {.seed = 7, .count = 3000, .poison_every = 500, .prefix = "selftest-fills:"};
    int fails = 0;
    const uint64_t none = UINT64_MAX;
    struct wcase cases[] = {
        {"exact copy passes", none, none, none, none, 50, 0},
        {"exact copy, grouped otherwise, passes", none, none, none, none, 7, 0},
        {"exact copy, one input per entry, passes", none, none, none, none, 1, 0},
        {"a missing input fails", 1234, none, none, none, 50, 1},
        {"a duplicated input fails", none, 2000, none, none, 50, 1},
        {"an altered report fails", none, none, 17, none, 50, 1},
        {"an extra input at the end fails", none, 2999, none, none, 50, 1},
        {"a wrong kind field fails", none, none, none, 600, 50, 1},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        write_expected(r, &o, shards, &cases[k]);
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
    fails += log_self_test(r, shards, syms);
    printf("test_matcher_check: %d failed\n", fails);
    return fails ? 1 : 0;
}

/* A log self-test case: how the scratch log and its fills are written. */
struct lcase {
    const char *what;
    int final_ticks;  /* end every shard's log with a tick past every timer */
    uint64_t alter;   /* the input whose last report is altered (UINT64_MAX: none) */
    int skip_last;    /* the fills lack the reports of the last input of shard 0 */
    int trim;         /* orders of shard 0 trimmed (its first entry deleted) */
    int want;         /* check_log's result */
    int want_pending; /* shards with something owed */
};

#define LOG_SELFTEST_ORDERS "selftest-orders:"
#define LOG_SELFTEST_FILLS "selftest-fills:"
#define LOG_SELFTEST_GROUP 7          /* inputs per orders entry */
#define LOG_TICK_IDX (UINT64_MAX - 1) /* the final tick: no flow index, never altered */

/* One shard's pending orders entry while the scratch log is written. */
struct lpend {
    struct op_order_msg in[LOG_SELFTEST_GROUP + 1]; /* + the final tick */
    uint64_t idx[LOG_SELFTEST_GROUP + 1];           /* flow index (LOG_TICK_IDX: the tick) */
    int poison[LOG_SELFTEST_GROUP + 1];
    size_t n;
};

/* XADDs shard t's pending inputs as one orders entry of the scratch log
 * and their reports (from e, with c's mutations) as one fills entry. */
static void log_flush(struct op_redis *r, uint32_t t, struct lpend *p, struct eng *e,
                      struct wentry *w, const struct lcase *c, int last, struct eng_reports *reps,
                      struct op_buf *m, struct op_buf *enc)
{
    char key[96];
    snprintf(key, sizeof(key), "%s{%u}", LOG_SELFTEST_FILLS, t);
    op_buf_reset(m);
    op_mp_put_array(m, (uint32_t)p->n);
    for (size_t j = 0; j < p->n; j++) {
        struct op_order_msg in = p->in[j];
        if (p->poison[j]) { /* a map with only a sym, as ordergen --group writes */
            size_t sl = strlen(in.symbol);
            unsigned char h[] = {0x81, 0xa3, 's', 'y', 'm', (unsigned char)(0xa0 | sl)};
            op_buf_append(m, h, sizeof(h));
            op_buf_append(m, in.symbol, sl);
            char sym[OP_SYMBOL_MAX];
            memcpy(sym, in.symbol, sizeof(sym));
            flowgen_malformed(&in, sym, strlen(sym));
        } else {
            op_codec_encode_order(m, &in);
        }
        eng_reports_reset(reps);
        eng_apply(e, &in, reps);
        if (p->idx[j] == c->alter)
            reps->v[reps->len - 1].qty ^= 1;
        if (c->skip_last && t == 0 && last && j + 1 == p->n)
            continue;
        if (!w->r || w->nr + reps->len > OP_CODEC_REPORTS_MAX)
            abort(); /* allocated by log_write; no entry of this flow is that large */
        for (size_t q = 0; q < reps->len; q++)
            w->r[w->nr++] = reps->v[q];
        if (w->inputs++ == 0)
            w->first = w->seq + 1;
        w->last = w->seq + 1;
        w->done++;
        symlist_add(&w->syms, in.symbol);
    }
    op_reply_free(
        op_redis_cmdf(r, "XADD %s{%u} * sym - m %b", LOG_SELFTEST_ORDERS, t, m->data, m->len));
    flush_wentry(r, key, w, enc);
    p->n = 0;
}

/* Writes the scratch log of c (a timers flow in entries of up to
 * LOG_SELFTEST_GROUP inputs of a shard, one poisoned element in 500, and,
 * with c->final_ticks, a last tick per shard 10 s past the flow) and its
 * fills, one fills entry per orders entry, from engines set up as
 * check_log sets up its own, with the mutations of c. */
static void log_write(struct op_redis *r, uint32_t shards, const struct op_symtab *syms,
                      const struct lcase *c)
{
    struct flowgen g;
    flowgen_init(&g, 11, NULL, shards, 500);
    g.timers = 1;
    g.ts_step = 1000000; /* 1 ms: the flow's 3 s see expiries and firings */
    struct eng **e = calloc(shards, sizeof(struct eng *)); /* NOLINT(bugprone-sizeof-expression) */
    struct wentry *we = calloc(shards, sizeof(*we));
    struct lpend *p = calloc(shards, sizeof(*p));
    struct eng_reports reps;
    struct op_buf m, enc;
    if (!e || !we || !p)
        abort();
    eng_reports_init(&reps);
    op_buf_init(&m);
    op_buf_init(&enc);
    for (uint32_t s = 0; s < shards; s++) {
        if (!(e[s] = eng_new(s, 0)) || eng_list_symbols(e[s], syms, shards) != 0)
            abort();
        eng_set_max_open(e[s], 10000);
        if (!(we[s].r = malloc(OP_CODEC_REPORTS_MAX * sizeof(*we[s].r))))
            abort();
        op_reply_free(
            op_redis_cmdf(r, "DEL %s{%u} %s{%u}", LOG_SELFTEST_ORDERS, s, LOG_SELFTEST_FILLS, s));
    }
    uint64_t last_ts = 0;
    for (uint64_t i = 0; i < 3000; i++) {
        struct op_order_msg x;
        int bad = flowgen_next(&g, &x);
        uint32_t s = flowgen_shard(&g, &x);
        last_ts = x.ts_ns;
        p[s].in[p[s].n] = x;
        p[s].idx[p[s].n] = i;
        p[s].poison[p[s].n++] = bad;
        if (p[s].n == LOG_SELFTEST_GROUP)
            log_flush(r, s, &p[s], e[s], &we[s], c, 0, &reps, &m, &enc);
    }
    for (uint32_t s = 0; s < shards; s++) {
        if (c->final_ticks) { /* past every timer of the flow */
            struct op_order_msg tick = {.kind = OP_MSG_TICK, .ts_ns = last_ts + 10000000000u};
            p[s].in[p[s].n] = tick;
            p[s].idx[p[s].n] = LOG_TICK_IDX;
            p[s].poison[p[s].n++] = 0;
        }
        if (p[s].n)
            log_flush(r, s, &p[s], e[s], &we[s], c, 1, &reps, &m, &enc);
    }
    if (c->trim) { /* shard 0's first entry deleted, as a trim would */
        struct redisReply *first =
            op_redis_cmdf(r, "XRANGE %s{0} - + COUNT 1", LOG_SELFTEST_ORDERS);
        const char *id = op_reply_str(op_reply_at(op_reply_at(first, 0), 0), NULL);
        if (id)
            op_reply_free(op_redis_cmdf(r, "XDEL %s{0} %s", LOG_SELFTEST_ORDERS, id));
        op_reply_free(first);
    }
    for (uint32_t s = 0; s < shards; s++) {
        free(we[s].r);
        eng_free(e[s]);
    }
    free(e);
    free(we);
    free(p);
    eng_reports_release(&reps);
    op_buf_release(&m);
    op_buf_release(&enc);
}

/* The log mode's self-test: a scratch log with ticks, GTD orders, dead-man
 * switches and poisoned elements passes against its own fills (expiries and
 * firings counted, nothing owed); an altered report, the reports of a tick
 * missing, a log with an entry deleted, each fail; without the final
 * ticks, shards still owe expiries. Returns the number of failed cases. */
static int log_self_test(struct op_redis *r, uint32_t shards, const struct op_symtab *syms)
{
    const uint64_t none = UINT64_MAX;
    struct lcase cases[] = {
        {"log: its own fills pass, timers fired", 1, none, 0, 0, 0, 0},
        {"log: an altered report fails", 1, 1500, 0, 0, 1, 0},
        {"log: a tick's reports missing fails", 1, none, 1, 0, 1, 0},
        {"log: a trimmed log is refused", 1, none, 0, 1, 2, 0},
        {"log: without the final ticks, expiries are owed", 0, none, 0, 0, 0, 1},
    };
    int fails = 0;
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        const struct lcase *c = &cases[k];
        struct log_counts n = {0};
        log_write(r, shards, syms, c);
        int got = check_log(r, shards, syms, 0, 10000, LOG_SELFTEST_ORDERS, LOG_SELFTEST_FILLS, &n);
        int ok = got == c->want;
        if (ok && c->want == 0)
            ok = (c->want_pending ? n.pending > 0 : n.pending == 0) && n.expired > 0 &&
                 n.dm_fired > 0 && n.dm_orders > 0 && n.malformed > 0 &&
                 (n.ticks > 0) == c->final_ticks;
        printf("self-test: %s: %s\n", c->what, ok ? "ok" : "FAILED");
        fails += !ok;
    }
    for (uint32_t s = 0; s < shards; s++)
        op_reply_free(
            op_redis_cmdf(r, "DEL %s{%u} %s{%u}", LOG_SELFTEST_ORDERS, s, LOG_SELFTEST_FILLS, s));
    return fails;
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
    return o->count || strcmp(argv[1], "log") == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    struct op_config c;
    struct opts o;
    op_config_load_or_exit(&c, "matchcheck");
    if (argc > 1 && parse(argc, argv, &o) != 0) {
        fprintf(stderr,
                "usage: %s [check|engine] --seed N --count N [--poison-every K] "
                "[--symbols A,B] | log\n",
                argv[0]);
        return 2;
    }
    if (argc > 1 && strcmp(argv[1], "engine") == 0)
        return engine_rate(&o, c.order_shards);
    struct op_symtab syms = {0};
    uint32_t closed_max = 0, max_open = 0;
    int log = argc > 1 && strcmp(argv[1], "log") == 0;
    if (argc == 1) /* the self-test's log cases run engines with the listing */
        op_symbols_load_or_exit(&c, "matchcheck", &syms);
    if (log) { /* the engine's configuration, read as the matcher reads it (matcher/main.c) */
        op_symbols_load_or_exit(&c, "matchcheck", &syms);
        closed_max = (uint32_t)op_env_int_or_exit("matchcheck", "MATCHER_CLOSED_MAX",
                                                  ENG_CLOSED_DEFAULT, 1, ENG_CLOSED_LIMIT);
        max_open =
            (uint32_t)op_env_int_or_exit("matchcheck", "MAX_OPEN_ORDERS", 10000, 0, 100000000);
    }
    struct op_redis r;
    if (op_redis_init(&r, c.redis_url, 30000) != 0 || op_redis_connect(&r) != 0) {
        fprintf(stderr, "matchcheck: %s\n", r.errstr);
        return 2;
    }
    int rc =
        log ? check_log(&r, c.order_shards, &syms, closed_max, max_open, "orders:", "fills:", NULL)
        : argc > 1 && strcmp(argv[1], "check") == 0 ? check(&r, &o, c.order_shards)
                                                    : self_test(&r, c.order_shards, &syms);
    op_redis_release(&r);
    op_symtab_release(&syms);
    return rc;
}

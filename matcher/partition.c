/* One owned shard: recovery by snapshot + replay, batches, the fenced publish, snapshots. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "matcher/part.h"
#include "shared/log.h"
#include "shared/reply.h"

/* Why 1000: a replay page of 1000 orders entries is ~200 KB, one round trip
 * per ~1 ms of engine work; the lease is renewed between pages. */
#define REPLAY_PAGE 1000
/* Why 1000: XAUTOCLAIM's COUNT per call while moving a dead owner's PEL. */
#define CLAIM_PAGE 1000

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct part *part_new(struct worker *w, uint32_t shard, int64_t deadline_ms)
{
    struct part *p = calloc(1, sizeof(*p));
    size_t nsym = w->cfg->syms->n ? w->cfg->syms->n : 1;
    if (!p)
        return NULL;
    p->dirty = calloc(nsym, sizeof(*p->dirty));
    p->sym_ts = calloc(nsym, sizeof(*p->sym_ts));
    if (!p->dirty || !p->sym_ts) {
        part_free(p);
        return NULL;
    }
    p->shard = shard;
    p->state = PART_RECOVER;
    p->lease_deadline_ms = deadline_ms;
    op_key_orders(p->orders, shard);
    op_key_fills(p->fills, shard);
    lease_key(p->lease, shard);
    snap_key(p->snap, shard);
    return p;
}

void part_free(struct part *p)
{
    if (!p)
        return;
    eng_free(p->eng);
    op_reply_free(p->next);
    free(p->dirty);
    free(p->sym_ts);
    free(p);
}

/* Makes room for n inputs in the worker's batch arrays. 0 or -1. */
static int reserve_inputs(struct worker *w, size_t n)
{
    if (n <= w->cap)
        return 0;
    size_t cap = n < 64 ? 64 : n;
    struct in_entry *e = realloc(w->ents, cap * sizeof(*e));
    if (e)
        w->ents = e;
    struct op_order_msg *m = realloc(w->msgs, cap * sizeof(*m));
    if (m)
        w->msgs = m;
    size_t *r = realloc(w->rep_end, cap * sizeof(*r));
    if (r)
        w->rep_end = r;
    if (!e || !m || !r)
        return op_log_fail("out_of_memory", "what=batch inputs=%zu", n);
    w->cap = cap;
    return 0;
}

/*
 * Turns stream entry `entry` ([id, [fields…]] or [id, nil] for a deleted
 * one) into w->ents[i] and w->msgs[i]. An `m` that does not decode becomes
 * an input of kind 0 carrying the entry's `sym` (when it fits), which the
 * engine answers REJECTED MALFORMED with the next report id: a poisoned
 * entry is reported and acknowledged like any other and never stops the
 * shard. Returns 0, or -1 when the reply is not a stream entry at all.
 */
static int decode_entry(struct worker *w, const struct redisReply *entry, size_t i)
{
    struct in_entry *e = &w->ents[i];
    struct op_order_msg *m = &w->msgs[i];
    const struct redisReply *fields = op_reply_at(entry, 1);
    e->id = op_reply_str(op_reply_at(entry, 0), &e->idlen);
    if (!e->id || op_sid_parse(e->id, e->idlen, &e->sid) != 0)
        return op_log_fail("bad_stream_reply", "what=entry id");
    e->deleted = !fields || op_reply_type(fields) != OP_REPLY_ARRAY;
    e->sym = -1;
    memset(m, 0, sizeof(*m));
    if (e->deleted)
        return 0;
    size_t mlen = 0, slen = 0;
    const char *mv = op_reply_field_str(fields, "m", &mlen);
    if (!mv || op_codec_decode_order(w->codec, mv, mlen, m) != 0) {
        const char *sym = op_reply_field_str(fields, "sym", &slen);
        memset(m, 0, sizeof(*m)); /* kind 0: the engine answers MALFORMED */
        if (sym && slen > 0 && slen < OP_SYMBOL_MAX)
            memcpy(m->symbol, sym, slen);
        atomic_fetch_add(&w->st->malformed, 1);
        op_warn("malformed_entry", "id=%.*s err=\"%s\"", (int)e->idlen, e->id,
                mv ? op_codec_error(w->codec) : "no m field");
    }
    const struct op_symbol *s = op_symtab_find(w->cfg->syms, m->symbol, strlen(m->symbol));
    e->sym = s ? (int)(s - w->cfg->syms->v) : -1;
    return 0;
}

/* Decodes the entries array `list` into w->ents/msgs; returns their number or -1. */
static long decode_entries(struct worker *w, const struct redisReply *list)
{
    size_t n = op_reply_count(list);
    if (reserve_inputs(w, n) != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (decode_entry(w, op_reply_at(list, i), i) != 0)
            return -1;
    return (long)n;
}

/* Applies inputs 0 … n-1 to p's engine, recording where each one's reports
 * end (w->rep_end), and marks their books for market data. Prefetches as
 * eng_apply_batch does (the id-map slot 16 inputs ahead, the order 8 ahead). */
static void apply_inputs(struct worker *w, struct part *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i + 16 < n && !w->ents[i + 16].deleted)
            eng_prefetch(p->eng, &w->msgs[i + 16], 0);
        if (i + 8 < n && !w->ents[i + 8].deleted)
            eng_prefetch(p->eng, &w->msgs[i + 8], 1);
        if (!w->ents[i].deleted) {
            eng_apply(p->eng, &w->msgs[i], &w->reps);
            if (w->ents[i].sym >= 0 && w->msgs[i].kind != 0) { /* not a malformed entry */
                p->dirty[w->ents[i].sym] = 1;
                p->sym_ts[w->ents[i].sym] = w->msgs[i].ts_ns;
                p->any_dirty = 1;
            }
            p->last = w->ents[i].sid;
            p->since_snap++;
        }
        w->rep_end[i] = w->reps.len;
    }
}

/* ---- recovery --------------------------------------------------------------- */

/* Loads snap:{S} into p (or a new engine when there is none). 0 or -1. */
static int load_snapshot(struct worker *w, struct part *p)
{
    struct redisReply *rep = op_redis_cmdf(&w->redis, "HMGET %s id eng", p->snap);
    if (!rep)
        return -1;
    size_t idlen = 0, len = 0;
    const char *id = op_reply_count(rep) == 2 ? op_reply_str(op_reply_at(rep, 0), &idlen) : NULL;
    const char *blob = op_reply_count(rep) == 2 ? op_reply_str(op_reply_at(rep, 1), &len) : NULL;
    char err[200];
    int rc = 0;
    eng_free(p->eng);
    p->eng = NULL;
    memset(&p->last, 0, sizeof(p->last));
    if (id && blob) {
        int64_t t0 = now_us();
        if (op_sid_parse(id, idlen, &p->last) != 0) {
            rc = op_log_fail("snapshot_bad", "shard=%u err=\"bad id\"", p->shard);
        } else if (!(p->eng = eng_restore(blob, len, err, sizeof(err)))) {
            rc = op_log_fail("snapshot_bad", "shard=%u err=\"%s\"", p->shard, err);
        } else if (p->eng->shard != p->shard) {
            rc = op_log_fail("snapshot_bad", "shard=%u err=\"snapshot of shard %u\"", p->shard,
                             p->eng->shard);
        } else {
            op_info("snapshot_loaded", "shard=%u id=%.*s bytes=%zu open_orders=%llu ms=%lld",
                    p->shard, (int)idlen, id, len, (unsigned long long)eng_open_orders(p->eng),
                    (long long)((now_us() - t0) / 1000));
        }
    } else if (op_reply_type(rep) != OP_REPLY_ARRAY) {
        rc = op_log_fail("snapshot_read_failed", "shard=%u", p->shard);
    } else if (!(p->eng = eng_new(p->shard, w->cfg->closed_max))) {
        rc = op_log_fail("out_of_memory", "what=engine shard=%u", p->shard);
    }
    /* The shard's symbols and their limits: configuration, not in snapshots. */
    if (rc == 0 && eng_list_symbols(p->eng, w->cfg->syms, w->cfg->shards) != 0)
        rc = op_log_fail("out_of_memory", "what=symbol_listing shard=%u", p->shard);
    op_reply_free(rep);
    return rc;
}

/* Moves every pending entry of group "matchers" (ours and dead owners') to
 * us with XAUTOCLAIM, fenced on the lease. Sets *pmin to the lowest pending
 * id and *any to whether there is one. Entries found deleted (the third
 * element of the 7.0 reply) are counted and logged: their content is gone.
 * Returns 0 or -1. */
static int claim_pending(struct worker *w, struct part *p, struct op_sid *pmin, int *any)
{
    char cursor[OP_SID_TEXT_MAX] = "0-0", count[16];
    snprintf(count, sizeof(count), "%d", CLAIM_PAGE);
    *any = 0;
    for (;;) {
        const char *argv[] = {"XAUTOCLAIM", p->orders, OP_GROUP_MATCHERS, w->cfg->name, "0", cursor,
                              "COUNT",      count,     "JUSTID"};
        if (lease_append_fenced(&w->redis, p->shard, w->cfg->name, p->orders, 9, argv) != 0)
            return -1;
        struct redisReply *rep = op_redis_next_reply(&w->redis);
        if (!rep)
            return -1;
        if (lease_is_fenced(rep)) {
            p->lost = 1;
            op_reply_free(rep);
            return -1;
        }
        const struct redisReply *ids = op_reply_at(rep, 1), *gone = op_reply_at(rep, 2);
        size_t clen = 0;
        const char *next = op_reply_str(op_reply_at(rep, 0), &clen);
        if (!next || !ids || clen >= sizeof(cursor)) {
            const char *s = op_reply_str(rep, NULL);
            op_error("xautoclaim_failed", "shard=%u err=\"%s\"", p->shard, s ? s : "bad reply");
            op_reply_free(rep);
            return -1;
        }
        for (size_t i = 0; i < op_reply_count(ids); i++) {
            size_t l;
            const char *s = op_reply_str(op_reply_at(ids, i), &l);
            struct op_sid id;
            if (s && op_sid_parse(s, l, &id) == 0 && (!*any || op_sid_cmp(id, *pmin) < 0)) {
                *pmin = id;
                *any = 1;
            }
        }
        for (size_t i = 0; gone && i < op_reply_count(gone); i++) {
            size_t l;
            const char *s = op_reply_str(op_reply_at(gone, i), &l);
            atomic_fetch_add(&w->st->deleted_pending, 1);
            op_error("pending_entry_deleted",
                     "shard=%u id=%.*s note=\"trimmed before it was "
                     "processed: its reports are lost\"",
                     p->shard, (int)l, s ? s : "?");
        }
        memcpy(cursor, next, clen);
        cursor[clen] = '\0';
        op_reply_free(rep);
        if (strcmp(cursor, "0-0") == 0)
            return 0;
    }
}

/* The group's last-delivered-id of orders:{S} into *d. 0 or -1. */
static int last_delivered(struct worker *w, struct part *p, struct op_sid *d)
{
    struct redisReply *rep = op_redis_cmdf(&w->redis, "XINFO GROUPS %s", p->orders);
    if (!rep)
        return -1;
    struct op_group g;
    int rc = op_groups_find(rep, OP_GROUP_MATCHERS, &g);
    if (rc == 0)
        *d = g.last_delivered;
    if (rc != 0)
        op_error("group_missing", "stream=%s group=%s note=\"run orderpipe-setup\"", p->orders,
                 OP_GROUP_MATCHERS);
    op_reply_free(rep);
    return rc;
}

/* Replays entries after p->last up to `end` (inclusive, or exclusive when
 * end_exclusive) through the engine without publishing. 0 or -1. */
static int replay(struct worker *w, struct part *p, struct op_sid end, int end_exclusive)
{
    char from[OP_SID_TEXT_MAX], to[OP_SID_TEXT_MAX], count[16];
    snprintf(count, sizeof(count), "%d", REPLAY_PAGE);
    op_sid_format(end, end_exclusive, to);
    for (;;) {
        worker_renew(w);
        if (p->lost)
            return -1;
        op_sid_format(p->last, 1, from);
        if (!end_exclusive && op_sid_cmp(p->last, end) >= 0)
            return 0;
        struct redisReply *rep =
            op_redis_cmdf(&w->redis, "XRANGE %s %s %s COUNT %s", p->orders, from, to, count);
        if (!rep)
            return -1;
        if (op_reply_type(rep) != OP_REPLY_ARRAY) {
            const char *s = op_reply_str(rep, NULL);
            op_error("replay_failed", "shard=%u err=\"%s\"", p->shard, s ? s : "bad reply");
            op_reply_free(rep);
            return -1;
        }
        long n = decode_entries(w, rep);
        if (n < 0) {
            op_reply_free(rep);
            return -1;
        }
        eng_reports_reset(&w->reps);
        apply_inputs(w, p, (size_t)n);
        atomic_fetch_add(&w->st->replayed, (uint64_t)n);
        op_reply_free(rep);
        if (n < REPLAY_PAGE)
            return 0;
    }
}

int part_recover(struct worker *w, struct part *p)
{
    int64_t t0 = now_us();
    struct op_sid pmin = {0, 0}, d = {0, 0};
    int any = 0;
    op_reply_free(p->next);
    p->next = NULL;
    p->since_snap = 0;
    if (load_snapshot(w, p) != 0 || claim_pending(w, p, &pmin, &any) != 0 ||
        last_delivered(w, p, &d) != 0)
        return -1;
    struct op_sid from = p->last;
    /* Acknowledged = below every pending entry (a shard is processed in id
     * order and a batch is acknowledged whole), and not after the group's
     * last-delivered-id. */
    if (replay(w, p, any ? pmin : d, any) != 0)
        return -1;
    uint64_t replayed = p->since_snap; /* kept: the next snapshot covers the replay too */
    p->state = PART_PENDING;
    memset(&p->cursor, 0, sizeof(p->cursor));
    p->snap_due_ms = op_now_ms() + w->cfg->snapshot_ms;
    p->book_due_ms = 0;
    atomic_fetch_add(&w->st->recoveries, 1);
    op_hist_observe(&w->st->recovery_us, (uint64_t)(now_us() - t0));
    atomic_store(&w->st->shard[p->shard].open_orders, eng_open_orders(p->eng));
    char a[OP_SID_TEXT_MAX], b[OP_SID_TEXT_MAX];
    op_info("recovered", "shard=%u from=%s to=%s replayed=%llu pending_from=%s ms=%lld", p->shard,
            op_sid_format(from, 0, a), op_sid_format(p->last, 0, b), (unsigned long long)replayed,
            any ? op_sid_format(pmin, 0, b) : "none", (long long)((now_us() - t0) / 1000));
    return 0;
}

/* ---- batches and the fenced publish ------------------------------------------ */

/* Queues (inside the MULTI of a fenced publish) the read of p's next
 * batch: its own PEL after the cursor (PENDING) or new entries (LIVE).
 * Inside MULTI the read cannot block, and it runs only if the lease did not
 * change since WATCH: a stale owner never takes entries into its PEL after
 * a takeover (which would hide them from the new owner's '>' reads). */
static int append_read(struct worker *w, struct part *p)
{
    char count[16], cur[OP_SID_TEXT_MAX];
    snprintf(count, sizeof(count), "%d", w->cfg->batch);
    const char *argv[] = {
        "XREADGROUP", "GROUP",   OP_GROUP_MATCHERS,
        w->cfg->name, "COUNT",   count,
        "STREAMS",    p->orders, p->state == PART_PENDING ? op_sid_format(p->cursor, 0, cur) : ">"};
    return op_redis_append(&w->redis, 9, argv, NULL);
}

/* Makes room for n XACK arguments. 0 or -1. */
static int reserve_argv(struct worker *w, size_t n)
{
    if (n <= w->cap_argv)
        return 0;
    const char **a = realloc(w->argv, n * sizeof(*a));
    if (a)
        w->argv = a;
    size_t *l = realloc(w->lens, n * sizeof(*l));
    if (l)
        w->lens = l;
    if (!a || !l)
        return op_log_fail("out_of_memory", "what=xack args=%zu", n);
    w->cap_argv = n;
    return 0;
}

/* Why 8: the `sym` field is for a human in redis-cli; a batch of a busy
 * shard can touch every symbol of it, and the list must stay short. */
#define SYM_SUMMARY_MAX 8

/* Appends "AAPL,MSFT" to w->text: the distinct non-empty symbols of the
 * inputs first … last that have reports in [pos, cut), in order of first
 * appearance, at most SYM_SUMMARY_MAX, then ",..." if there are more; and a
 * NUL. Returns 0 or -1. */
static int sym_summary(struct worker *w, size_t first, size_t last, size_t pos, size_t cut)
{
    const char *seen[SYM_SUMMARY_MAX];
    size_t nseen = 0;
    int more = 0;
    for (size_t k = first; k <= last; k++) {
        size_t from = k ? w->rep_end[k - 1] : 0;
        const char *sym = w->msgs[k].symbol;
        if (w->rep_end[k] <= pos || from >= cut || from == w->rep_end[k] || !sym[0])
            continue;
        size_t j = 0;
        while (j < nseen && strcmp(seen[j], sym) != 0)
            j++;
        if (j < nseen)
            continue;
        if (nseen == SYM_SUMMARY_MAX) {
            more = 1;
            continue;
        }
        if (op_buf_printf(&w->text, "%s%s", nseen ? "," : "", sym) != 0)
            return -1;
        seen[nseen++] = sym;
    }
    return op_buf_append(&w->text, more ? ",...\0" : "\0", more ? 5 : 1);
}

/* Appends "accepted=312,trade=140" (counts of the report kinds among
 * r[0 … k-1], in kind order) and a NUL to b. Returns 0 or -1. */
static int kind_summary(struct op_buf *b, const struct op_report *r, size_t k)
{
    size_t count[OP_REPORT_AMENDED + 1] = {0};
    int any = 0;
    for (size_t j = 0; j < k; j++)
        if (r[j].kind <= OP_REPORT_AMENDED)
            count[r[j].kind]++;
    for (int kind = 0; kind <= OP_REPORT_AMENDED; kind++)
        if (count[kind]) {
            if (op_buf_printf(b, "%s%s=%zu", any ? "," : "", op_report_kind_name(kind),
                              count[kind]) != 0)
                return -1;
            any = 1;
        }
    return op_buf_append(b, "", 1);
}

/* Makes room for one more out_entry. 0 or -1. */
static int reserve_out(struct worker *w)
{
    if (w->nouts < w->cap_outs)
        return 0;
    size_t cap = w->cap_outs ? w->cap_outs * 2 : 16;
    struct out_entry *o = realloc(w->outs, cap * sizeof(*o));
    if (!o)
        return op_log_fail("out_of_memory", "what=outputs");
    w->outs = o;
    w->cap_outs = cap;
    return 0;
}

/*
 * Encodes the reports of inputs 0 … n-1 (w->reps, ending at w->rep_end[i])
 * into w->outs: as few fills entries as possible, each of at most
 * OP_CODEC_REPORTS_MAX reports, cut at an input boundary unless one input
 * alone exceeds the limit from where the entry starts. Inputs without
 * reports (entries deleted from the stream) are in no entry. 0 or -1.
 */
static int encode_outputs(struct worker *w, size_t n)
{
    op_buf_reset(&w->enc);
    op_buf_reset(&w->text);
    w->nouts = 0;
    size_t total = n ? w->rep_end[n - 1] : 0, pos = 0, i = 0;
    while (pos < total) {
        while (w->rep_end[i] <= pos) /* the input holding report pos */
            i++;
        size_t limit = total - pos > OP_CODEC_REPORTS_MAX ? pos + OP_CODEC_REPORTS_MAX : total;
        size_t cut = pos, last = i, done = 0;
        for (size_t j = i; j < n && w->rep_end[j] <= limit; j++)
            cut = w->rep_end[j];
        if (cut == pos) /* input i alone goes past the limit: split it */
            cut = limit;
        while (w->rep_end[last] < cut) /* the input holding report cut - 1 */
            last++;
        for (size_t k = i; k <= last; k++)
            done += w->rep_end[k] <= cut && w->rep_end[k] > (k ? w->rep_end[k - 1] : 0);
        if (reserve_out(w) != 0)
            return -1;
        struct out_entry *o = &w->outs[w->nouts++];
        o->m_off = w->enc.len;
        if (op_codec_encode_reports(&w->enc, w->reps.v + pos, cut - pos) != 0)
            return op_log_fail("encode_failed", "reports=%zu", cut - pos);
        o->m_len = w->enc.len - o->m_off;
        o->sym_off = w->text.len;
        if (sym_summary(w, i, last, pos, cut) != 0)
            return -1;
        o->kind_off = w->text.len;
        if (kind_summary(&w->text, w->reps.v + pos, cut - pos) != 0)
            return -1;
        o->n_off = w->text.len;
        if (op_buf_printf(&w->text, "%zu", done) != 0 || op_buf_append(&w->text, "", 1) != 0)
            return -1;
        o->in_off = w->text.len;
        const struct in_entry *a = &w->ents[i], *z = &w->ents[last];
        if ((i == last ? op_buf_printf(&w->text, "%.*s", (int)a->idlen, a->id)
                       : op_buf_printf(&w->text, "%.*s..%.*s", (int)a->idlen, a->id, (int)z->idlen,
                                       z->id)) != 0 ||
            op_buf_append(&w->text, "", 1) != 0)
            return -1;
        pos = cut;
    }
    return 0;
}

/* The book JSONs due now; each appended as "key\0json\0" to w->md. Returns
 * the number of books, clearing their dirty marks. */
static int encode_books(struct worker *w, struct part *p, int64_t now)
{
    op_buf_reset(&w->md);
    if (!p->any_dirty || now < p->book_due_ms || !w->cfg->syms->n)
        return 0;
    int n = 0;
    for (size_t i = 0; i < w->cfg->syms->n; i++) {
        if (!p->dirty[i])
            continue;
        const struct op_symbol *s = &w->cfg->syms->v[i];
        if (op_buf_printf(&w->md, "book:{%u}:%s", p->shard, s->name) != 0 ||
            op_buf_append(&w->md, "", 1) != 0 ||
            md_book_json(p->eng, s->name, s->tick, p->sym_ts[i], w->cfg->book_levels, &w->md) !=
                0 ||
            op_buf_append(&w->md, "", 1) != 0)
            return -1;
        p->dirty[i] = 0;
        n++;
    }
    p->any_dirty = 0;
    p->book_due_ms = now + w->cfg->book_ms;
    return n;
}

/* Queues WATCH + GET + PTTL of shard s's lease (the fence of its next
 * publish), recording that the replies follow. */
static void append_fence(struct worker *w, int s)
{
    char key[OP_KEY_MAX];
    lease_key(key, (uint32_t)s);
    op_redis_appendf(&w->redis, "WATCH %s", key);
    op_redis_appendf(&w->redis, "GET %s", key);
    op_redis_appendf(&w->redis, "PTTL %s", key);
    w->watching = 1;
    w->fence_for = s;
    w->fence_at_ms = op_now_ms();
}

/* Reads the three replies queued by append_fence into w->fence_*. 0, or -1
 * when Redis failed. */
static int read_fence(struct worker *w)
{
    struct redisReply *r0 = op_redis_next_reply(&w->redis);
    struct redisReply *r1 = r0 ? op_redis_next_reply(&w->redis) : NULL;
    struct redisReply *r2 = r1 ? op_redis_next_reply(&w->redis) : NULL;
    int rc = r2 ? 0 : -1;
    const char *v = op_reply_str(r1, NULL);
    w->fence_mine = r2 && op_reply_is_status(r0, "OK") && v && strcmp(v, w->cfg->name) == 0;
    w->fence_ttl = r2 ? op_reply_int(r2) : 0;
    op_reply_free(r0);
    op_reply_free(r1);
    op_reply_free(r2);
    if (rc != 0)
        w->fence_for = -1;
    return rc;
}

/*
 * The fence of a publish of p: the lease must still name us, after WATCH,
 * with more than a quarter of the TTL left (renewing once if it is short).
 * The WATCH + GET + PTTL were usually pipelined behind the previous EXEC
 * (w->fence_for == p->shard); then no round trip is needed here, and the
 * TTL counts as reduced by the time since the WATCH was sent. Otherwise a
 * WATCH that may still be set for another shard is dropped (UNWATCH) in the
 * same round trip as the new WATCH + GET + PTTL. Returns 1 (go on: WATCH
 * is set), 0 (lease lost: unwatched) or -1 (Redis failed).
 */
static int fence_check(struct worker *w, struct part *p)
{
    /* Why a quarter: renewals run every third of the TTL, so a healthy
     * lease never has less; less means renewals are failing or late. */
    long long margin = w->cfg->lease_ms / 4;
    if (w->fence_for == (int)p->shard) {
        w->fence_for = -1;
        if (w->fence_mine && w->fence_ttl - (op_now_ms() - w->fence_at_ms) > margin)
            return 1;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        if (w->watching) {
            op_redis_appendf(&w->redis, "UNWATCH");
            op_reply_free(op_redis_next_reply(&w->redis));
            w->watching = 0;
            if (w->redis.err)
                return -1;
        }
        append_fence(w, (int)p->shard);
        if (read_fence(w) != 0)
            return -1;
        w->fence_for = -1;
        if (w->fence_mine && w->fence_ttl > margin)
            return 1;
        op_reply_free(op_redis_cmdf(&w->redis, "UNWATCH"));
        w->watching = 0;
        if (!w->fence_mine) {
            p->lost = 1;
            return 0;
        }
        w->next_renew_ms = 0; /* renew now, then check again */
        worker_renew(w);
        if (p->lost || w->redis.err)
            return p->lost ? 0 : -1;
    }
    return 0;
}

/* Why 100 ms doubling to 5 s: Redis refuses writes (maxmemory reached with
 * noeviction, a failed background save) until memory is freed or the disk
 * recovers, which can take an operator minutes; 100 ms resumes at once after
 * a short spike, 5 s keeps a long refusal from costing a whole batch's round
 * trip several times a second. */
#define REFUSED_BACKOFF_MIN_MS 100
#define REFUSED_BACKOFF_MAX_MS 5000
/* Why 5 s: a refusal can last for hours; one line every 5 s (with the
 * refusals since the last line) says it still does without flooding the log. */
#define REFUSED_LOG_EVERY_MS 5000
/* Why 50 ms: the slice of a backoff wait, so that a lease renewal that is
 * due and a SIGTERM are not held up by a long wait. */
#define REFUSED_SLICE_MS 50

/* The retries of one refused publish. */
struct refusal {
    int backoff_ms;    /* the next wait */
    uint64_t attempts; /* refusals of this publish so far */
};

/*
 * After Redis refused a publish of p's n inputs whole (err: nothing was
 * written): counts it, logs it (at most every REFUSED_LOG_EVERY_MS per
 * worker), then waits rf->backoff_ms (doubled for the next time, up to
 * REFUSED_BACKOFF_MAX_MS) while renewing the leases of every owned shard.
 * Returns 0 to send the same publish again, or -1 when it must not: the
 * lease was lost or ran out (p->lost), Redis failed (w->redis.err: the
 * caller recovers), or a stop was requested (p goes to RECOVER, so nothing
 * more is published; the next owner recovers the shard from Redis).
 */
static int refusal_wait(struct worker *w, struct part *p, struct refusal *rf, size_t n,
                        const char *err)
{
    rf->attempts++;
    w->refused_unlogged++;
    atomic_fetch_add(&w->st->publish_refused, 1);
    int64_t now = op_now_ms();
    if (now >= w->refused_log_ms) {
        char e[160];
        snprintf(e, sizeof(e), "%s", err);
        for (char *c = e; *c; c++)
            if (*c == '"' || (unsigned char)*c < 0x20)
                *c = '\'';
        op_warn("publish_refused",
                "shard=%u inputs=%zu err=\"%s\" refusals=%llu retry_ms=%d note=\"nothing "
                "written: the same batch is sent again, no recovery\"",
                p->shard, n, e, (unsigned long long)w->refused_unlogged, rf->backoff_ms);
        w->refused_unlogged = 0;
        w->refused_log_ms = now + REFUSED_LOG_EVERY_MS;
    }
    int64_t until = now + rf->backoff_ms;
    rf->backoff_ms =
        rf->backoff_ms * 2 > REFUSED_BACKOFF_MAX_MS ? REFUSED_BACKOFF_MAX_MS : rf->backoff_ms * 2;
    for (;;) {
        if (w->stop && *w->stop) {
            p->state = PART_RECOVER;
            return -1;
        }
        worker_renew(w);
        if (p->lost || w->redis.err)
            return -1;
        now = op_now_ms();
        if (now >= p->lease_deadline_ms) {
            p->lost = 1;
            return -1;
        }
        if (now >= until)
            return 0;
        int64_t ms = until - now < REFUSED_SLICE_MS ? until - now : REFUSED_SLICE_MS;
        struct timespec ts = {0, (long)ms * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/*
 * Publishes inputs 0 … n-1 of the current batch (already applied: their
 * reports are in w->reps) in one transaction fenced on the lease:
 *
 *   [WATCH lease:{S}; GET; PTTL]          → ours, with margin? else drop
 *                                           (usually already read: fence_check)
 *   MULTI
 *     XADD fills:{S} NOMKSTREAM * sym … kind … n … in … m …   (one per batch,
 *                                           or per run of 4096 reports)
 *     XACK orders:{S} matchers <ids…>
 *     [HSET snap:{S} id <last> eng <snapshot>; XTRIM orders:{S} MINID ~ <last>]
 *     [SET book:{S}:<SYMBOL> <json> …]
 *     [XREADGROUP … COUNT batch STREAMS orders:{S} >|<cursor>   the next batch]
 *   EXEC
 *   [WATCH lease:{S'}; GET; PTTL]          the fence of the next publish (S'
 *                                           from worker_next_publisher)
 *
 * With read_next the EXEC reply is kept in p->next (its last element is the
 * next batch). A nil EXEC (the lease changed or expired since WATCH) drops
 * the shard. An EXEC answered with an error (EXECABORT after a command
 * refused while queueing, e.g. OOM or MISCONF; or EXEC itself refused)
 * means Redis discarded the whole transaction: the same commands are sent
 * again, fenced again, with backoff (refusal_wait) — no recovery, and the
 * engine does not apply the batch twice. Only errors among the elements of
 * an executed EXEC (something may have been written) send p to RECOVER.
 * Returns 0, or -1 with p->lost set or w->redis.err set, or p sent back to
 * RECOVER (an element failed, or a stop came during refusals).
 */
static int publish(struct worker *w, struct part *p, size_t n, int force_snapshot, int read_next,
                   int64_t t_read_us)
{
    int64_t now = op_now_ms();
    if (now >= p->lease_deadline_ms) {
        p->lost = 1;
        return -1;
    }
    if (encode_outputs(w, n) != 0 || reserve_argv(w, n + 3) != 0)
        return -1;
    int nbooks = encode_books(w, p, now);
    if (nbooks < 0)
        return -1;
    int snap =
        p->since_snap > 0 && (force_snapshot || p->since_snap >= (uint64_t)w->cfg->snapshot_every ||
                              now >= p->snap_due_ms);
    char *blob = NULL;
    size_t blen = 0;
    if (snap) {
        int64_t t0 = now_us();
        if (eng_snapshot(p->eng, &blob, &blen) != 0)
            return op_log_fail("snapshot_failed", "shard=%u err=\"out of memory\"", p->shard);
        op_hist_observe(&w->st->snapshot_us, (uint64_t)(now_us() - t0));
        op_hist_observe_size(&w->st->snapshot_bytes, blen / 1024);
    }
    if (n == 0 && !snap && nbooks == 0 && !read_next)
        return 0;
    char last[OP_SID_TEXT_MAX], trim[OP_SID_TEXT_MAX];
    struct refusal rf = {REFUSED_BACKOFF_MIN_MS, 0};
    struct redisReply *ex = NULL;
again:;
    int rc = fence_check(w, p);
    if (rc != 1) {
        free(blob);
        return -1;
    }
    int queued = 0;
    op_redis_appendf(&w->redis, "MULTI");
    for (size_t j = 0; j < w->nouts; j++) {
        const struct out_entry *o = &w->outs[j];
        const char *t = w->text.data;
        const char *argv[] = {"XADD",       p->fills,
                              "NOMKSTREAM", "*",
                              "sym",        t + o->sym_off,
                              "kind",       t + o->kind_off,
                              "n",          t + o->n_off,
                              "in",         t + o->in_off,
                              "m",          w->enc.data + o->m_off};
        size_t lens[] = {4,  strlen(p->fills),
                         10, 1,
                         3,  strlen(t + o->sym_off),
                         4,  strlen(t + o->kind_off),
                         1,  strlen(t + o->n_off),
                         2,  strlen(t + o->in_off),
                         1,  o->m_len};
        op_redis_append(&w->redis, 14, argv, lens);
        queued++;
    }
    if (n) { /* deleted entries too: they leave the PEL */
        w->argv[0] = "XACK";
        w->argv[1] = p->orders;
        w->argv[2] = OP_GROUP_MATCHERS;
        w->lens[0] = 4;
        w->lens[1] = strlen(p->orders);
        w->lens[2] = strlen(OP_GROUP_MATCHERS);
        for (size_t i = 0; i < n; i++) {
            w->argv[3 + i] = w->ents[i].id;
            w->lens[3 + i] = w->ents[i].idlen;
        }
        op_redis_append(&w->redis, (int)(n + 3), w->argv, w->lens);
        queued++;
    }
    if (snap) {
        op_sid_format(p->last, 0, last);
        const char *argv[] = {"HSET", p->snap, "id", last, "eng", blob};
        size_t lens[] = {4, strlen(p->snap), 2, strlen(last), 3, blen};
        op_redis_append(&w->redis, 6, argv, lens);
        /* Only below the snapshot: everything before it is acknowledged and
         * reflected in it, so no recovery ever needs it again. LIMIT 0: with
         * "~" Redis otherwise removes at most 100 x stream-node-max-entries
         * (10,000) entries per call, and a shard taking more than that
         * between two snapshots grew without bound (seen in ops/soak.sh). */
        snprintf(trim, sizeof(trim), "%s", last);
        op_redis_appendf(&w->redis, "XTRIM %s MINID ~ %s LIMIT 0", p->orders, trim);
        queued += 2;
    }
    for (const char *k = w->md.data; nbooks > 0 && k < w->md.data + w->md.len;) {
        const char *json = k + strlen(k) + 1;
        op_redis_appendf(&w->redis, "SET %s %s", k, json);
        queued++;
        k = json + strlen(json) + 1;
    }
    if (read_next) {
        append_read(w, p);
        queued++;
    }
    op_redis_appendf(&w->redis, "EXEC");
    w->watching = 0;
    /* The fence of the next publish rides on this round trip. */
    int next = read_next && !w->no_read_ahead ? worker_next_publisher(w, p->shard) : -1;
    if (next >= 0)
        append_fence(w, next);

    /* Replies: MULTI's OK, one QUEUED per command, EXEC's array. A command
     * refused while queueing (OOM, MISCONF, ...) makes Redis discard the
     * whole transaction at EXEC (EXECABORT): its error is kept for the log
     * of that case, not logged once per command. */
    int ok = 1;
    char refused[160] = "";
    for (int i = 0; i <= queued; i++) {
        struct redisReply *rep = op_redis_next_reply(&w->redis);
        if (!rep) {
            free(blob);
            return -1;
        }
        if (op_reply_type(rep) == OP_REPLY_ERROR) {
            if (!refused[0])
                snprintf(refused, sizeof(refused), "%s", op_reply_str(rep, NULL));
            ok = 0;
        }
        op_reply_free(rep);
    }
    ex = op_redis_next_reply(&w->redis);
    if (!ex || (next >= 0 && read_fence(w) != 0)) {
        op_reply_free(ex);
        free(blob);
        return -1;
    }
    if (op_reply_type(ex) == OP_REPLY_NIL) {
        /* The lease changed or expired after WATCH: nothing was written. */
        atomic_fetch_add(&w->st->fenced, 1);
        op_warn("publish_fenced", "shard=%u inputs=%zu", p->shard, n);
        p->lost = 1;
        op_reply_free(ex);
        free(blob);
        return -1;
    }
    if (op_reply_type(ex) == OP_REPLY_ERROR) {
        /* EXEC refused (EXECABORT after a refused command, or OOM on EXEC
         * itself): Redis discarded the transaction, nothing was written, and
         * our engine is ahead of Redis by exactly this batch. Send the very
         * same commands again, fenced again, after a backoff: re-deriving
         * them would apply the batch a second time. */
        if (!refused[0])
            snprintf(refused, sizeof(refused), "%s", op_reply_str(ex, NULL));
        op_reply_free(ex);
        ex = NULL;
        if (refusal_wait(w, p, &rf, n, refused) != 0) {
            free(blob);
            return -1;
        }
        goto again;
    }
    if (rf.attempts)
        op_info("publish_resumed", "shard=%u inputs=%zu refusals=%llu", p->shard, n,
                (unsigned long long)rf.attempts);
    free(blob);
    for (size_t i = 0; ok && i < op_reply_count(ex); i++)
        if (op_reply_type(op_reply_at(ex, i)) == OP_REPLY_ERROR) {
            op_error("exec_element_failed",
                     "shard=%u element=%zu err=\"%s\" note=\"part of the "
                     "batch may be published: recovering the shard\"",
                     p->shard, i, op_reply_str(op_reply_at(ex, i), NULL));
            ok = 0;
        }
    if (!ok || op_reply_type(ex) != OP_REPLY_ARRAY || op_reply_count(ex) != (size_t)queued) {
        if (refused[0])
            op_error("multi_refused", "shard=%u err=\"%s\"", p->shard, refused);
        op_reply_free(ex);
        p->state = PART_RECOVER; /* our engine may be ahead of what Redis holds */
        p->retry_at_ms = op_now_ms() + 1000;
        return -1;
    }
    if (read_next)
        p->next = ex; /* its last element is the next batch */
    else
        op_reply_free(ex);
    /* Published. */
    uint64_t trades = 0;
    for (size_t i = 0; i < w->reps.len; i++)
        trades += w->reps.v[i].kind == OP_REPORT_TRADE;
    atomic_fetch_add(&w->st->inputs, n);
    atomic_fetch_add(&w->st->reports, w->reps.len);
    atomic_fetch_add(&w->st->trades, trades);
    atomic_fetch_add(&w->st->book_updates, (uint64_t)nbooks);
    if (n) {
        atomic_fetch_add(&w->st->batches, 1);
        op_hist_observe_size(&w->st->batch_size, n);
        op_hist_observe(&w->st->batch_latency, (uint64_t)(now_us() - t_read_us));
    }
    if (snap) {
        p->since_snap = 0;
        p->snap_due_ms = op_now_ms() + w->cfg->snapshot_ms;
        atomic_fetch_add(&w->st->snapshots, 1);
        atomic_store(&w->st->shard[p->shard].snapshot_wall_ms, wall_ms());
        op_debug("snapshot_stored", "shard=%u id=%s bytes=%zu", p->shard, last, blen);
    }
    atomic_store(&w->st->shard[p->shard].open_orders, eng_open_orders(p->eng));
    return 0;
}

/* Takes the batch in `rep` (an XREADGROUP reply) apart. Returns the number
 * of entries, 0 for none, -1 when the reply is broken. */
static long take_batch(struct worker *w, struct part *p, const struct redisReply *rep)
{
    if (!rep)
        return -1;
    if (op_reply_type(rep) == OP_REPLY_NIL)
        return 0;
    if (op_reply_type(rep) != OP_REPLY_ARRAY) {
        const char *s = op_reply_str(rep, NULL);
        op_error("xreadgroup_failed", "shard=%u err=\"%s\"", p->shard, s ? s : "bad reply");
        return -1;
    }
    const struct redisReply *stream = op_reply_at(rep, 0);
    return decode_entries(w, op_reply_at(stream, 1));
}

int part_step(struct worker *w, struct part *p)
{
    struct redisReply *rep = p->next;
    p->next = NULL;
    if (!rep) { /* nothing read ahead: a fenced transaction of just the read */
        eng_reports_reset(&w->reps);
        if (publish(w, p, 0, 0, 1, now_us()) != 0) {
            if (!p->lost && p->state != PART_RECOVER)
                p->state = PART_RECOVER;
            return -1;
        }
        rep = p->next;
        p->next = NULL;
    }
    int64_t t_read = now_us();
    long n = rep ? take_batch(w, p, op_reply_at(rep, op_reply_count(rep) - 1)) : -1;
    if (n < 0) {
        op_reply_free(rep);
        return -1;
    }
    if (n == 0) {
        op_reply_free(rep);
        if (p->state == PART_PENDING) { /* our PEL is worked off: new entries now */
            p->state = PART_LIVE;
            op_info("shard_live", "shard=%u last=%llu-%llu", p->shard,
                    (unsigned long long)p->last.ms, (unsigned long long)p->last.seq);
            return 1;
        }
        p->idle = 1;
        return 0;
    }
    p->idle = 0;
    /* An entry at or below what the engine already reflects was applied
     * before (it cannot be pending: batches are acknowledged whole, in
     * order); acknowledge it again without applying it. */
    for (long i = 0; i < n; i++)
        if (!w->ents[i].deleted && op_sid_cmp(w->ents[i].sid, p->last) <= 0) {
            op_error("entry_already_applied", "shard=%u id=%.*s", p->shard, (int)w->ents[i].idlen,
                     w->ents[i].id);
            w->ents[i].deleted = 1;
        }
    if (p->state == PART_PENDING)
        p->cursor = w->ents[n - 1].sid;
    for (long i = 0; i < n; i++)
        if (w->ents[i].deleted) {
            atomic_fetch_add(&w->st->deleted_pending, 1);
            op_error("pending_entry_deleted", "shard=%u id=%.*s", p->shard, (int)w->ents[i].idlen,
                     w->ents[i].id);
        }
    eng_reports_reset(&w->reps);
    apply_inputs(w, p, (size_t)n);
    int rc = publish(w, p, (size_t)n, 0, !w->no_read_ahead, t_read);
    op_reply_free(rep); /* the entry ids of the XACK pointed into it */
    if (rc != 0 && !p->lost && p->state != PART_RECOVER)
        p->state = PART_RECOVER; /* Redis failed mid-publish: did EXEC run? recover to know */
    return rc == 0 ? 1 : -1;
}

int part_flush(struct worker *w, struct part *p, int force_snapshot)
{
    if (p->state == PART_RECOVER || !p->eng)
        return 0;
    eng_reports_reset(&w->reps);
    int rc = publish(w, p, 0, force_snapshot, 0, now_us());
    if (rc != 0 && !p->lost)
        p->state = PART_RECOVER;
    return rc;
}

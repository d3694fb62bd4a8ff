/* One fenced publish of a shard's batch: build it, send it (MULTI … EXEC behind the fence), account
 * it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "matcher/part.h"
#include "shared/alloc.h"
#include "shared/codec.h"
#include "shared/log.h"

/* Queues (inside the MULTI of a fenced publish) the read of p's next
 * batch: its own PEL after the cursor (PENDING) or new entries (LIVE).
 * Inside MULTI the read cannot block, and it runs only if the lease did not
 * change since WATCH: a stale owner never takes entries into its PEL after
 * a takeover (which would hide them from the new owner's '>' reads). */
static int append_read(struct worker *w, struct part *p)
{
    char count[16], cur[OP_SID_TEXT_MAX];
    snprintf(count, sizeof(count), "%d", p->read_count);
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
    const char **a = op_realloc((void *)w->argv, n * sizeof(*a));
    if (a)
        w->argv = a;
    size_t *l = op_realloc(w->lens, n * sizeof(*l));
    if (l)
        w->lens = l;
    if (!a || !l)
        return op_log_fail("out_of_memory", "what=xack args=%zu", n);
    w->cap_argv = n;
    return 0;
}

/* Appends the `sym` field to w->text (op_sym_summary): the non-empty
 * symbols of the inputs first … last that have reports in [pos, cut).
 * Returns 0 or -1. */
static int sym_summary(struct worker *w, size_t first, size_t last, size_t pos, size_t cut)
{
    struct op_sym_summary syms = {0};
    for (size_t k = first; k <= last; k++) {
        size_t from = k ? w->rep_end[k - 1] : 0;
        const char *sym = w->msgs[k].symbol;
        if (w->rep_end[k] > pos && from < cut && from != w->rep_end[k] && sym[0])
            op_sym_summary_add(&syms, sym);
    }
    return op_sym_summary_put(&w->text, &syms);
}

/* Appends "accepted=312,trade=140" (counts of the report kinds among
 * r[0 … k-1], in kind order) and a NUL to b. Returns 0 or -1. */
static int kind_summary(struct op_buf *b, const struct op_report *r, size_t k)
{
    size_t count[OP_REPORT_KIND_MAX + 1] = {0};
    int any = 0;
    for (size_t j = 0; j < k; j++)
        if (r[j].kind <= OP_REPORT_KIND_MAX)
            count[r[j].kind]++;
    for (int kind = 0; kind <= OP_REPORT_KIND_MAX; kind++)
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
    struct out_entry *o = op_realloc(w->outs, cap * sizeof(*o));
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

/*
 * Appends one tick input to orders:{S}, as ingest's entry script does
 * (ingest/writer.c): KEYS[1] orders:{S}, KEYS[2] oseq:{S}; ARGV[1…4] the
 * readable fields type, sym, n, ids and ARGV[5] the `m`. oseq:{S} is
 * raised by n and the entry's `seq` is its value before, atomically with
 * the XADD, so backpressure's count of orders (shared/backlog.h) keeps
 * holding. A missing stream (setup not run) is an error reply: nothing is
 * written and the publish is BROKEN, which sends the shard to recovery. Run
 * inside the fenced MULTI, so only while the lease is ours. EVAL, not
 * EVALSHA: a tick is rare and small, and there is no NOSCRIPT to handle.
 */
static const char TICK_SCRIPT[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then\n"
    "  return redis.error_reply('ERR no stream ' .. KEYS[1] .. ': run orderpipe-setup')\n"
    "end\n"
    "local n = tonumber(ARGV[3])\n"
    "local seq = redis.call('INCRBY', KEYS[2], n) - n\n"
    "return redis.call('XADD', KEYS[1], 'NOMKSTREAM', '*', 'type', ARGV[1], 'sym', ARGV[2],\n"
    "  'n', ARGV[3], 'ids', ARGV[4], 'seq', tostring(seq), 'm', ARGV[5])\n";

/* Encodes a tick input stamped ts (schemas/messages.md: k 5, id 0, sym and
 * acct "") into pb: its readable fields (op_codec_orders_fields, as ingest
 * writes them) appended to w->text, its `m` to w->enc. 0 or -1. */
static int encode_tick(struct worker *w, uint64_t ts, struct publish *pb)
{
    struct op_order_msg m;
    memset(&m, 0, sizeof(m));
    m.kind = OP_MSG_TICK;
    m.ts_ns = ts;
    const struct op_order_msg *msgs[] = {&m};
    pb->tick_text = w->text.len;
    if (op_codec_orders_fields(&w->text, msgs, 1) != 0)
        return op_log_fail("out_of_memory", "what=tick");
    pb->tick_m = w->enc.len;
    if (op_codec_encode_orders(&w->enc, msgs, 1) != 0)
        return op_log_fail("encode_failed", "what=tick");
    pb->tick_mlen = w->enc.len - pb->tick_m;
    return 0;
}

/* Why 100 ms: the first wait after Redis refused a publish (publish_build
 * sets it; part.c doubles it, docs/matcher.md "Failure behaviour"). */
#define REFUSED_BACKOFF_FIRST_MS 100

int publish_build(struct worker *w, struct part *p, size_t n, int force_snapshot, int read_next,
                  int64_t t_read_us, uint64_t tick_ts, struct publish *pb)
{
    memset(pb, 0, sizeof(*pb));
    int64_t now = op_now_ms();
    if (encode_outputs(w, n) != 0 || reserve_argv(w, n + 3) != 0)
        return -1;
    int nbooks = encode_books(w, p, now);
    if (nbooks < 0)
        return -1;
    int snap =
        p->since_snap > 0 && (force_snapshot || p->since_snap >= (uint64_t)w->cfg->snapshot_every ||
                              now >= p->snap_due_ms);
    if (n == 0 && !snap && nbooks == 0 && !read_next && !tick_ts)
        return 0;
    if (tick_ts && encode_tick(w, tick_ts, pb) != 0)
        return -1;
    if (snap) {
        int64_t t0 = part_now_us();
        if (eng_snapshot(p->eng, &pb->blob, &pb->blen) != 0)
            return op_log_fail("snapshot_failed", "shard=%u err=\"out of memory\"", p->shard);
        op_hist_observe(&w->st->snapshot_us, (uint64_t)(part_now_us() - t0));
        op_hist_observe_size(&w->st->snapshot_bytes, pb->blen / 1024);
        op_sid_format(p->last, 0, pb->last);
    }
    if (n) { /* deleted entries too: they leave the PEL */
        w->argv[0] = "XACK";
        w->argv[1] = p->orders;
        w->argv[2] = OP_GROUP_MATCHERS;
        w->lens[0] = 4;
        w->lens[1] = strlen(p->orders);
        w->lens[2] = strlen(OP_GROUP_MATCHERS);
        size_t a = 3;
        for (size_t i = 0; i < n; i++)
            if (w->ents[i].first) { /* once per entry: its inputs share its id */
                w->argv[a] = w->ents[i].id;
                w->lens[a++] = w->ents[i].idlen;
            }
        pb->nack = a - 3;
    }
    pb->odone = -1;
    for (size_t i = 0; i < n; i++)
        if (w->ents[i].first && w->ents[i].seq_end >= 0)
            pb->odone = w->ents[i].seq_end;
    pb->active = 1;
    pb->n = n;
    pb->read_next = read_next;
    pb->nbooks = nbooks;
    pb->snap = snap;
    pb->t_read_us = t_read_us;
    pb->tick_ts = tick_ts;
    pb->backoff_ms = REFUSED_BACKOFF_FIRST_MS;
    return 1;
}

/* Queues MULTI, the commands of *pb and EXEC. Returns the number of
 * commands between MULTI and EXEC (each answers QUEUED). */
static int queue_transaction(struct worker *w, struct part *p, const struct publish *pb)
{
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
    if (pb->n) {
        op_redis_append(&w->redis, (int)(pb->nack + 3), w->argv, w->lens);
        queued++;
    }
    if (pb->odone >= 0) { /* with the XACK: the backlog counts what is left */
        op_redis_appendf(&w->redis, "SET %s %lld", p->odone, (long long)pb->odone);
        queued++;
    }
    if (pb->snap) {
        const char *argv[] = {"HSET", p->snap, "id", pb->last, "eng", pb->blob};
        size_t lens[] = {4, strlen(p->snap), 2, strlen(pb->last), 3, pb->blen};
        op_redis_append(&w->redis, 6, argv, lens);
        /* Only below the snapshot: everything before it is acknowledged and
         * reflected in it, so no recovery ever needs it again. LIMIT 0: with
         * "~" Redis otherwise removes at most 100 x stream-node-max-entries
         * (10,000) entries per call, and a shard taking more than that
         * between two snapshots grew without bound (seen in ops/soak.sh). */
        op_redis_appendf(&w->redis, "XTRIM %s MINID ~ %s LIMIT 0", p->orders, pb->last);
        queued += 2;
    }
    for (const char *k = w->md.data; pb->nbooks > 0 && k < w->md.data + w->md.len;) {
        const char *json = k + strlen(k) + 1;
        op_redis_appendf(&w->redis, "SET %s %s", k, json);
        queued++;
        k = json + strlen(json) + 1;
    }
    if (pb->tick_ts) { /* before the read: the read brings the tick back */
        char oseq[OP_KEY_MAX];
        const char *t = w->text.data + pb->tick_text; /* type, sym, n, ids */
        const char *type = t, *sym = type + strlen(type) + 1, *nf = sym + strlen(sym) + 1,
                   *ids = nf + strlen(nf) + 1;
        op_key_oseq(oseq, p->shard);
        const char *argv[] = {"EVAL", TICK_SCRIPT, "2", p->orders, oseq,
                              type,   sym,         nf,  ids,       w->enc.data + pb->tick_m};
        size_t lens[] = {4,
                         sizeof(TICK_SCRIPT) - 1,
                         1,
                         strlen(p->orders),
                         strlen(oseq),
                         strlen(type),
                         strlen(sym),
                         strlen(nf),
                         strlen(ids),
                         pb->tick_mlen};
        op_redis_append(&w->redis, 10, argv, lens);
        queued++;
    }
    if (pb->read_next) {
        append_read(w, p);
        queued++;
    }
    op_redis_appendf(&w->redis, "EXEC");
    if (w->cfg->min_replicas > 0) /* covers the EXEC's writes: read after its reply */
        op_redis_appendf(&w->redis, "WAIT %d %d", w->cfg->min_replicas, w->cfg->replica_timeout_ms);
    return queued;
}

/*
 * Takes the reply rep (freed) of the WAIT queued after a publish's EXEC:
 * when fewer than min_replicas replicas acknowledged, counts it and logs
 * the first of a run (and the end of the run), so that an operator knows
 * the outputs and the XACK may live on the primary only. The matcher goes
 * on: its correctness does not rest on it (docs/matcher.md, "Replica
 * acknowledgement"). t0: when EXEC's reply was read.
 */
static void take_wait_reply(struct worker *w, const struct part *p, struct redisReply *rep,
                            const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    op_hist_observe(&w->st->wait_us, (uint64_t)((t1.tv_sec - t0->tv_sec) * 1000000 +
                                                (t1.tv_nsec - t0->tv_nsec) / 1000));
    long long acked = op_reply_type(rep) == OP_REPLY_INTEGER ? op_reply_int(rep) : -1;
    if (acked >= w->cfg->min_replicas) {
        if (w->repl_short_run)
            op_info("replication_caught_up", "shard=%u replicas=%lld short_publishes=%llu",
                    p->shard, acked, (unsigned long long)w->repl_short_run);
        w->repl_short_run = 0;
    } else {
        atomic_fetch_add(&w->st->repl_short, 1);
        if (w->repl_short_run++ == 0)
            op_warn("replication_timeout",
                    "shard=%u replicas=%lld wanted=%d timeout_ms=%d err=\"%s\" note=\"published "
                    "outputs and XACK may be on the primary only; a failover now replays them\"",
                    p->shard, acked, w->cfg->min_replicas, w->cfg->replica_timeout_ms,
                    acked < 0 && op_reply_str(rep, NULL) ? op_reply_str(rep, NULL) : "");
    }
    op_reply_free(rep);
}

/* Checks every element of an executed EXEC reply ex of `queued` commands
 * (MULTI does not roll back run-time errors); logs the failed ones.
 * Returns 1 when all of them succeeded. */
static int exec_complete(const struct part *p, const struct redisReply *ex, int queued)
{
    int ok = 1;
    for (size_t i = 0; i < op_reply_count(ex); i++)
        if (op_reply_type(op_reply_at(ex, i)) == OP_REPLY_ERROR) {
            op_error("exec_element_failed",
                     "shard=%u element=%zu err=\"%s\" note=\"part of the "
                     "batch may be published: recovering the shard\"",
                     p->shard, i, op_reply_str(op_reply_at(ex, i), NULL));
            ok = 0;
            break;
        }
    return ok && op_reply_type(ex) == OP_REPLY_ARRAY && op_reply_count(ex) == (size_t)queued;
}

/*
 * Sends *pb in one transaction fenced on the lease:
 *
 *   [WATCH lease:{S}; GET; PTTL]          → ours, with margin? (fence_check;
 *                                           usually prefetched: no round trip)
 *   MULTI
 *     XADD fills:{S} NOMKSTREAM * sym … kind … n … in … m …   (one per batch,
 *                                           or per run of 4096 reports)
 *     XACK orders:{S} matchers <ids…>
 *     [SET odone:{S} <seq + n of the last entry>]   (shared/backlog.h)
 *     [HSET snap:{S} id <last> eng <snapshot>; XTRIM orders:{S} MINID ~ <last>]
 *     [SET book:{S}:<SYMBOL> <json> …]
 *     [EVAL <tick script> orders:{S} oseq:{S} …   a tick input: INCRBY + XADD]
 *     [XREADGROUP … COUNT batch STREAMS orders:{S} >|<cursor>   the next batch]
 *   EXEC
 *   [WATCH lease:{S'}; GET; PTTL]          the fence of the next publish
 *
 * A nil EXEC (the lease changed or expired since WATCH) is FENCED and
 * counted. An EXEC answered with an error (EXECABORT after a command
 * refused while queueing, e.g. OOM or MISCONF; or EXEC itself refused)
 * means Redis discarded the whole transaction: REFUSED, *pb can be sent
 * again as it is. Only errors among the elements of an executed EXEC
 * (something may have been written) are BROKEN.
 */
enum publish_outcome publish_send(struct worker *w, struct part *p, struct publish *pb, int next,
                                  struct redisReply **ex, char *err)
{
    *ex = NULL;
    err[0] = '\0';
    switch (fence_check(&w->fence, &w->redis, p->shard)) {
    case FENCE_REDIS:
        return PUBLISH_REDIS;
    case FENCE_LOST:
        return PUBLISH_FENCED;
    case FENCE_SHORT:
        return PUBLISH_SHORT;
    case FENCE_OURS:
        break;
    }
    int queued = queue_transaction(w, p, pb);
    fence_exec_sent(&w->fence);
    /* The fence of the next publish rides on this round trip. */
    if (!pb->read_next)
        next = -1;
    if (next >= 0)
        fence_append(&w->fence, &w->redis, (uint32_t)next);

    /* Replies: MULTI's OK, one QUEUED per command, EXEC's array. A command
     * refused while queueing (OOM, MISCONF, ...) makes Redis discard the
     * whole transaction at EXEC (EXECABORT): its error is kept for the log
     * of that case, not logged once per command. */
    int ok = 1;
    for (int i = 0; i <= queued; i++) {
        struct redisReply *rep = op_redis_next_reply(&w->redis);
        if (!rep)
            return PUBLISH_REDIS;
        if (op_reply_type(rep) == OP_REPLY_ERROR) {
            if (!err[0])
                snprintf(err, PUBLISH_ERR_MAX, "%s", op_reply_str(rep, NULL));
            ok = 0;
        }
        op_reply_free(rep);
    }
    struct redisReply *rep = op_redis_next_reply(&w->redis);
    struct redisReply *wait = NULL;
    struct timespec t_exec;
    clock_gettime(CLOCK_MONOTONIC, &t_exec);
    if (rep && w->cfg->min_replicas > 0 && !(wait = op_redis_next_reply(&w->redis))) {
        op_reply_free(rep);
        return PUBLISH_REDIS;
    }
    if (wait && op_reply_type(rep) == OP_REPLY_ARRAY)
        take_wait_reply(w, p, wait, &t_exec); /* EXEC ran: something was written */
    else
        op_reply_free(wait);
    if (!rep || (next >= 0 && fence_read(&w->fence, &w->redis) != 0)) {
        op_reply_free(rep);
        return PUBLISH_REDIS;
    }
    if (op_reply_type(rep) == OP_REPLY_NIL) {
        /* The lease changed or expired after WATCH: nothing was written. */
        atomic_fetch_add(&w->st->fenced, 1);
        op_warn("publish_fenced", "shard=%u inputs=%zu", p->shard, pb->n);
        op_reply_free(rep);
        return PUBLISH_FENCED;
    }
    if (op_reply_type(rep) == OP_REPLY_ERROR) {
        /* Redis discarded the transaction, nothing was written, and our
         * engine is ahead of Redis by exactly this batch. */
        if (!err[0])
            snprintf(err, PUBLISH_ERR_MAX, "%s", op_reply_str(rep, NULL));
        op_reply_free(rep);
        return PUBLISH_REFUSED;
    }
    if (!ok || !exec_complete(p, rep, queued)) {
        if (err[0])
            op_error("multi_refused", "shard=%u err=\"%s\"", p->shard, err);
        op_reply_free(rep);
        return PUBLISH_BROKEN;
    }
    *ex = rep;
    return PUBLISH_DONE;
}

void publish_account(struct worker *w, struct part *p, const struct publish *pb)
{
    uint64_t trades = 0;
    for (size_t i = 0; i < w->reps.len; i++)
        trades += w->reps.v[i].kind == OP_REPORT_TRADE;
    atomic_fetch_add(&w->st->inputs, pb->n);
    atomic_fetch_add(&w->st->reports, w->reps.len);
    atomic_fetch_add(&w->st->trades, trades);
    atomic_fetch_add(&w->st->book_updates, (uint64_t)pb->nbooks);
    if (pb->tick_ts) {
        p->tick_inflight = 1; /* until it is read back and applied (part.c) */
        atomic_fetch_add(&w->st->ticks, 1);
        op_debug("tick_written", "shard=%u ts=%llu", p->shard, (unsigned long long)pb->tick_ts);
    }
    if (pb->n) {
        atomic_fetch_add(&w->st->batches, 1);
        op_hist_observe_size(&w->st->batch_size, pb->n);
        op_hist_observe(&w->st->batch_latency, (uint64_t)(part_now_us() - pb->t_read_us));
    }
    if (pb->snap) {
        p->since_snap = 0;
        p->snap_due_ms = op_now_ms() + w->cfg->snapshot_ms;
        atomic_fetch_add(&w->st->snapshots, 1);
        atomic_store(&w->st->shard[p->shard].snapshot_wall_ms, part_wall_ms());
        op_debug("snapshot_stored", "shard=%u id=%s bytes=%zu", p->shard, pb->last, pb->blen);
    }
    atomic_store(&w->st->shard[p->shard].open_orders, eng_open_orders(p->eng));
}

void publish_release(struct publish *pb)
{
    free(pb->blob); /* eng_snapshot's buffer: op_free(), as engine.h says */
    op_reply_free(pb->batch);
    memset(pb, 0, sizeof(*pb));
}

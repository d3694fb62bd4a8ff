/* One owned shard's life cycle: recovery (snapshot + replay, one page per call), batches, held
 * publishes. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "matcher/part.h"
#include "matcher/tick.h"
#include "shared/alloc.h"
#include "shared/log.h"
#include "shared/reply.h"

/* Why 64: an orders entry holds up to 4096 inputs (OP_CODEC_ORDERS_MAX,
 * ~1 MiB), so a read's size is bounded by what it may hold, not by what
 * the last one held: at most 64 MiB, and a few hundred KB at the reads'
 * usual ~MATCHER_BATCH inputs. Entries of single orders (a light flow)
 * still give reads of 64 inputs, enough to amortise a round trip. Replay
 * pages are reads too: the lease is renewed between them. */
#define READ_ENTRIES_MAX 64
/* Why 1000: XAUTOCLAIM's COUNT per call while moving a dead owner's PEL. */
#define CLAIM_PAGE 1000

/* Why 2 s: a recovery that failed for a reason Redis will not fix by
 * itself (a corrupt snapshot, the group missing, a broken reply) is logged
 * and retried with the lease kept; every 2 s says so without flooding the
 * log, and resumes soon after an operator fixed it. */
#define RECOVERY_RETRY_MS 2000
/* Why 1 s: after an error inside an executed EXEC part of the batch may be
 * written; recovering at once would likely meet the same fault (a key of
 * the wrong type, a script error), a second lets it clear. */
#define EXEC_ERROR_RETRY_MS 1000
/* Why 100 ms doubling to 5 s: Redis refuses writes (maxmemory reached with
 * noeviction, a failed background save) until memory is freed or the disk
 * recovers, which can take an operator minutes; 100 ms (the first wait,
 * publish.c) resumes at once after a short spike, 5 s keeps a long
 * refusal from costing a whole batch's round trip several times a second. */
#define REFUSED_BACKOFF_MAX_MS 5000
/* Why 5 s: a refusal can last for hours; one line every 5 s (with the
 * refusals since the last line) says it still does without flooding the log. */
#define REFUSED_LOG_EVERY_MS 5000
/* Why 2: a fence found short of TTL is retried once after renewing the
 * leases (as before any publish); short again means renewals are failing,
 * and the shard recovers rather than publish on a lease about to lapse. */
#define SHORT_FENCE_TRIES 2

struct part *part_new(const struct worker *w, uint32_t shard, int64_t deadline_ms)
{
    struct part *p = op_calloc(1, sizeof(*p));
    size_t nsym = w->cfg->syms->n ? w->cfg->syms->n : 1;
    if (!p)
        return NULL;
    p->dirty = op_calloc(nsym, sizeof(*p->dirty));
    p->sym_ts = op_calloc(nsym, sizeof(*p->sym_ts));
    if (!p->dirty || !p->sym_ts) {
        part_free(p);
        return NULL;
    }
    p->shard = shard;
    p->state = PART_RECOVER;
    p->rec = REC_START;
    p->lease_deadline_ms = deadline_ms;
    p->read_count = w->cfg->batch < READ_ENTRIES_MAX ? w->cfg->batch : READ_ENTRIES_MAX;
    op_key_orders(p->orders, shard);
    op_key_fills(p->fills, shard);
    lease_key(p->lease, shard);
    snap_key(p->snap, shard);
    op_key_odone(p->odone, shard);
    return p;
}

void part_free(struct part *p)
{
    if (!p)
        return;
    eng_free(p->eng);
    op_reply_free(p->next);
    publish_release(&p->pub);
    op_free(p->dirty);
    op_free(p->sym_ts);
    op_free(p);
}

void part_renewed(struct part *p, int64_t deadline_ms)
{
    p->lease_deadline_ms = deadline_ms;
}

void part_lose(struct part *p)
{
    p->lost = 1;
}

void part_fail(struct part *p, const char *why, int retry_ms)
{
    if (p->state != PART_RECOVER || p->rec != REC_START)
        op_debug("shard_recovering", "shard=%u why=\"%s\" retry_ms=%d", p->shard, why, retry_ms);
    p->state = PART_RECOVER;
    p->rec = REC_START;
    p->retry_at_ms = retry_ms > 0 ? op_now_ms() + retry_ms : 0;
    op_reply_free(p->next);
    p->next = NULL;
    p->next_direct = 0;
    p->tick_inflight = 0; /* the recovery reads whatever got in */
    publish_release(&p->pub);
}

int part_publishing(const struct part *p)
{
    return p && !p->lost && p->state != PART_RECOVER;
}

/* Makes room for n inputs in the worker's batch arrays. 0 or -1. */
static int reserve_inputs(struct worker *w, size_t n)
{
    if (n <= w->cap)
        return 0;
    size_t cap = n < 64 ? 64 : n;
    struct in_entry *e = op_realloc(w->ents, cap * sizeof(*e));
    if (e)
        w->ents = e;
    struct op_order_msg *m = op_realloc(w->msgs, cap * sizeof(*m));
    if (m)
        w->msgs = m;
    size_t *r = op_realloc(w->rep_end, cap * sizeof(*r));
    if (r)
        w->rep_end = r;
    if (!e || !m || !r)
        return op_log_fail("out_of_memory", "what=batch inputs=%zu", n);
    w->cap = cap;
    return 0;
}

/* Input i as MALFORMED (kind 0, which the engine answers REJECTED
 * MALFORMED with the next report id), carrying sym when it is one symbol
 * (the element's own `sym`, else the entry's `sym` field when it names one
 * symbol): a poisoned input is reported and acknowledged like any other
 * and never stops the shard. */
static void malformed_input(struct worker *w, size_t i, const char *sym, size_t slen,
                            const char *why)
{
    struct op_order_msg *m = &w->msgs[i];
    const struct in_entry *e = &w->ents[i];
    memset(m, 0, sizeof(*m));
    if (sym && slen > 0 && slen < OP_SYMBOL_MAX && !memchr(sym, ',', slen))
        memcpy(m->symbol, sym, slen);
    atomic_fetch_add(&w->st->malformed, 1);
    op_warn("malformed_entry", "id=%.*s err=\"%s\"", (int)e->idlen, e->id, why);
}

/* The non-negative decimal field `name` of an entry into *v; 0, or -1
 * when it is missing or not one. */
static int field_u63(const struct redisReply *fields, const char *name, long long *v)
{
    size_t len = 0;
    const char *s = op_reply_field_str(fields, name, &len);
    char buf[24], *end;
    if (!s || len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    *v = strtoll(buf, &end, 10);
    return *end || *v < 0 ? -1 : 0;
}

/* The entry's `seq` + `n` (written by ingest: the shard's inputs up to its
 * end, which the publish stores in odone:{S}), or -1 without them. */
static int64_t entry_seq_end(const struct redisReply *fields, int deleted)
{
    long long seq, n;
    if (deleted || field_u63(fields, "seq", &seq) != 0 || field_u63(fields, "n", &n) != 0 ||
        seq > INT64_MAX - n)
        return -1;
    return (int64_t)(seq + n);
}

/*
 * Turns stream entry `entry` ([id, [fields…]] or [id, nil] for a deleted
 * one) into inputs w->ents/msgs[*n …], advancing *n: one per element of its
 * `m` (schemas/messages.md), all sharing the entry's id. An element that
 * does not decode is one MALFORMED input and its neighbours are processed;
 * an `m` that cannot be taken apart at all (missing, too large, no input)
 * is one MALFORMED input. Returns 0, or -1 when the reply is not a stream
 * entry at all or memory runs out.
 */
static int decode_entry(struct worker *w, const struct redisReply *entry, size_t *n)
{
    struct op_sid sid;
    size_t idlen = 0;
    const char *id = op_reply_str(op_reply_at(entry, 0), &idlen);
    const struct redisReply *fields = op_reply_at(entry, 1);
    if (!id || op_sid_parse(id, idlen, &sid) != 0)
        return op_log_fail("bad_stream_reply", "what=entry id");
    int deleted = !fields || op_reply_type(fields) != OP_REPLY_ARRAY;
    size_t mlen = 0, slen = 0;
    const char *mv = deleted ? NULL : op_reply_field_str(fields, "m", &mlen);
    const char *sym = deleted ? NULL : op_reply_field_str(fields, "sym", &slen);
    int64_t seq_end = entry_seq_end(fields, deleted);
    long k = mv ? op_codec_split_orders(w->codec, mv, mlen, w->spans, OP_CODEC_ORDERS_MAX) : 1;
    const char *bad = !mv ? "no m field" : k < 0 ? op_codec_error(w->codec) : NULL;
    if (k < 0)
        k = 1;
    if (reserve_inputs(w, *n + (size_t)k) != 0)
        return -1;
    for (long j = 0; j < k; j++) {
        size_t i = (*n)++;
        struct in_entry *e = &w->ents[i];
        struct op_order_msg *m = &w->msgs[i];
        *e = (struct in_entry){.id = id,
                               .idlen = idlen,
                               .sid = sid,
                               .first = j == 0,
                               .seq_end = seq_end,
                               .deleted = deleted,
                               .sym = -1};
        memset(m, 0, sizeof(*m));
        if (deleted)
            continue;
        if (bad)
            malformed_input(w, i, sym, slen, bad);
        else if (op_codec_decode_order(w->codec, mv + w->spans[j].off, w->spans[j].len, m) != 0) {
            char own[OP_SYMBOL_MAX];
            const char *why = op_codec_error(w->codec);
            if (op_codec_peek_symbol(mv + w->spans[j].off, w->spans[j].len, own) == 0)
                malformed_input(w, i, own, strlen(own), why);
            else
                malformed_input(w, i, sym, slen, why);
        }
        const struct op_symbol *s = op_symtab_find(w->cfg->syms, m->symbol, strlen(m->symbol));
        e->sym = s ? (int)(s - w->cfg->syms->v) : -1;
    }
    return 0;
}

/* Decodes the entries array `list` into w->ents/msgs; returns the number of
 * inputs, or -1. *entries (may be NULL) gets the number of entries. */
static long decode_entries(struct worker *w, const struct redisReply *list, size_t *entries)
{
    size_t ne = op_reply_count(list), n = 0;
    for (size_t i = 0; i < ne; i++)
        if (decode_entry(w, op_reply_at(list, i), &n) != 0)
            return -1;
    if (entries)
        *entries = ne;
    return (long)n;
}

/* Entries per read after a read of `entries` entries holding `inputs`:
 * about MATCHER_BATCH inputs at the last read's inputs per entry, at most
 * READ_ENTRIES_MAX. */
static void adapt_read_count(struct worker *w, struct part *p, size_t entries, size_t inputs)
{
    if (!entries)
        return;
    size_t per = (inputs + entries - 1) / entries, c = (size_t)w->cfg->batch / (per ? per : 1);
    p->read_count = c < 1 ? 1 : c > READ_ENTRIES_MAX ? READ_ENTRIES_MAX : (int)c;
}

/* Marks the book of listed symbol k for market data, as of input time ts. */
static inline void mark_book(struct part *p, size_t k, uint64_t ts)
{
    p->dirty[k] = 1;
    p->sym_ts[k] = ts;
    p->any_dirty = 1;
}

/* Marks the books of the symbols named by reports[from … w->reps.len) for
 * market data: for inputs whose effects are not confined to their own
 * symbol (what engine time made due — an expiry, a dead-man switch firing —
 * and a cancel-all of every symbol, which name none). */
static void mark_reported_books(struct worker *w, struct part *p, size_t from, uint64_t ts)
{
    for (size_t r = from; r < w->reps.len; r++) {
        const char *sym = w->reps.v[r].symbol;
        const struct op_symbol *s = sym[0] ? op_symtab_find(w->cfg->syms, sym, strlen(sym)) : NULL;
        if (s)
            mark_book(p, (size_t)(s - w->cfg->syms->v), ts);
    }
}

/* Applies inputs 0 … n-1 to p's engine, recording where each one's reports
 * end (w->rep_end), and marks their books for market data. Prefetches as
 * eng_apply_batch does (the id-map slot 16 inputs ahead, the order 8 ahead).
 * A tick input read back ends the tick in flight (any owner's: one is
 * enough to move time). */
static void apply_inputs(struct worker *w, struct part *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i + 16 < n && !w->ents[i + 16].deleted)
            eng_prefetch(p->eng, &w->msgs[i + 16], 0);
        if (i + 8 < n && !w->ents[i + 8].deleted)
            eng_prefetch(p->eng, &w->msgs[i + 8], 1);
        if (!w->ents[i].deleted) {
            size_t from = w->reps.len;
            /* Due before this input: its time reaches an expiry or a dead-man
             * deadline (engine time = the largest ts so far, and what was due
             * at the last one has run). */
            uint64_t due = eng_next_event_ns(p->eng);
            eng_apply(p->eng, &w->msgs[i], &w->reps);
            if (w->msgs[i].kind == OP_MSG_TICK)
                p->tick_inflight = 0;
            int every = w->msgs[i].kind == OP_MSG_CANCEL_ALL && w->msgs[i].symbol[0] == '\0';
            if (every || w->msgs[i].kind == OP_MSG_TICK || (due != 0 && w->msgs[i].ts_ns >= due))
                mark_reported_books(w, p, from, w->msgs[i].ts_ns); /* any symbol of the shard */
            if (w->ents[i].sym >= 0 && w->msgs[i].kind != 0)       /* not malformed */
                mark_book(p, (size_t)w->ents[i].sym, w->msgs[i].ts_ns);
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
        int64_t t0 = part_now_us();
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
                    (long long)((part_now_us() - t0) / 1000));
        }
    } else if (op_reply_type(rep) != OP_REPLY_ARRAY) {
        rc = op_log_fail("snapshot_read_failed", "shard=%u", p->shard);
    } else if (!(p->eng = eng_new(p->shard, w->cfg->closed_max))) {
        rc = op_log_fail("out_of_memory", "what=engine shard=%u", p->shard);
    }
    /* The shard's symbols, their limits and the open-order limit:
     * configuration, not in snapshots. */
    if (rc == 0 && eng_list_symbols(p->eng, w->cfg->syms, w->cfg->shards) != 0)
        rc = op_log_fail("out_of_memory", "what=symbol_listing shard=%u", p->shard);
    if (rc == 0)
        eng_set_max_open(p->eng, w->cfg->max_open);
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
            part_lose(p);
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

/* Replays one page (p->read_count entries) after p->last up to p->rec_end
 * (exclusive when rec_pending) through the engine without publishing.
 * Returns 1 when more may follow, 0 when the replay is complete, -1 on a
 * failure. */
static int replay_page(struct worker *w, struct part *p)
{
    char from[OP_SID_TEXT_MAX], to[OP_SID_TEXT_MAX], count[16];
    snprintf(count, sizeof(count), "%d", p->read_count);
    op_sid_format(p->rec_end, p->rec_pending, to);
    op_sid_format(p->last, 1, from);
    if (!p->rec_pending && op_sid_cmp(p->last, p->rec_end) >= 0)
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
    size_t entries = 0;
    int asked = p->read_count;
    long n = decode_entries(w, rep, &entries);
    if (n < 0) {
        op_reply_free(rep);
        return -1;
    }
    eng_reports_reset(&w->reps);
    apply_inputs(w, p, (size_t)n);
    atomic_fetch_add(&w->st->replayed, (uint64_t)n);
    op_reply_free(rep);
    adapt_read_count(w, p, entries, (size_t)n);
    return entries < (size_t)asked ? 0 : 1;
}

/* The first step of a recovery: snapshot, pending entries claimed, the
 * group's last-delivered-id; sets what the replay covers. 0 or -1. */
static int recovery_start(struct worker *w, struct part *p)
{
    struct op_sid pmin = {0, 0}, d = {0, 0};
    int any = 0;
    p->rec_t0_us = part_now_us();
    op_reply_free(p->next);
    p->next = NULL;
    p->next_direct = 0;
    p->since_snap = 0;
    if (load_snapshot(w, p) != 0 || claim_pending(w, p, &pmin, &any) != 0 ||
        last_delivered(w, p, &d) != 0)
        return -1;
    p->rec_from = p->last;
    /* Acknowledged = below every pending entry (a shard is processed in id
     * order and a batch is acknowledged whole), and not after the group's
     * last-delivered-id. */
    p->rec_end = any ? pmin : d;
    p->rec_pending = any;
    return 0;
}

/* The replay is complete: RECOVER → PENDING. */
static void recovery_done(struct worker *w, struct part *p)
{
    uint64_t replayed = p->since_snap; /* kept: the next snapshot covers the replay too */
    int64_t t0 = p->rec_t0_us;
    p->state = PART_PENDING;
    p->rec = REC_START;
    memset(&p->cursor, 0, sizeof(p->cursor));
    p->snap_due_ms = op_now_ms() + w->cfg->snapshot_ms;
    p->book_due_ms = 0;
    p->input_ms = op_now_ms();
    atomic_fetch_add(&w->st->recoveries, 1);
    op_hist_observe(&w->st->recovery_us, (uint64_t)(part_now_us() - t0));
    atomic_store(&w->st->shard[p->shard].open_orders, eng_open_orders(p->eng));
    char a[OP_SID_TEXT_MAX], b[OP_SID_TEXT_MAX];
    op_info("recovered", "shard=%u from=%s to=%s replayed=%llu pending_from=%s ms=%lld", p->shard,
            op_sid_format(p->rec_from, 0, a), op_sid_format(p->last, 0, b),
            (unsigned long long)replayed, p->rec_pending ? op_sid_format(p->rec_end, 0, b) : "none",
            (long long)((part_now_us() - t0) / 1000));
}

enum part_rc part_recover(struct worker *w, struct part *p)
{
    if (p->state != PART_RECOVER || op_now_ms() < p->retry_at_ms)
        return PART_IDLE;
    int rc;
    if (p->rec == REC_START) {
        rc = recovery_start(w, p);
        if (rc == 0)
            p->rec = REC_REPLAY;
    } else {
        rc = replay_page(w, p);
        if (rc == 0)
            recovery_done(w, p);
    }
    if (rc >= 0)
        return PART_DID;
    /* Lost or Redis failed: the loop drops or reconnects. Otherwise (a bad
     * snapshot, the group missing, a broken reply): log and retry later,
     * lease kept — the shard stops rather than trade on a wrong book. */
    part_fail(p, "recovery failed", p->lost || w->redis.err ? 0 : RECOVERY_RETRY_MS);
    return PART_FAILED;
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
    size_t entries = 0;
    long n = decode_entries(w, op_reply_at(stream, 1), &entries);
    if (n > 0)
        adapt_read_count(w, p, entries, (size_t)n);
    return n;
}

/*
 * After Redis refused p's publish whole (err: nothing was written): counts
 * it, logs it (at most every REFUSED_LOG_EVERY_MS per worker) and holds it
 * until now + its backoff (doubled for the next time, up to
 * REFUSED_BACKOFF_MAX_MS). The loop renews the leases meanwhile and calls
 * part_resume; a lost lease drops the shard, a stop abandons the publish
 * (part_finish). Returns PART_HELD.
 */
static enum part_rc hold_refused(struct worker *w, struct part *p, const char *err)
{
    struct publish *pb = &p->pub;
    pb->attempts++;
    pb->short_tries = 0;
    w->refused_unlogged++;
    atomic_fetch_add(&w->st->publish_refused, 1);
    int64_t now = op_now_ms();
    if (now >= w->refused_log_ms) {
        char e[PUBLISH_ERR_MAX];
        snprintf(e, sizeof(e), "%s", err);
        for (char *c = e; *c; c++)
            if (*c == '"' || (unsigned char)*c < 0x20)
                *c = '\'';
        op_warn("publish_refused",
                "shard=%u inputs=%zu err=\"%s\" refusals=%llu retry_ms=%d note=\"nothing "
                "written: the same batch is sent again, no recovery\"",
                p->shard, pb->n, e, (unsigned long long)w->refused_unlogged, pb->backoff_ms);
        w->refused_unlogged = 0;
        w->refused_log_ms = now + REFUSED_LOG_EVERY_MS;
    }
    pb->due_ms = now + pb->backoff_ms;
    pb->backoff_ms =
        pb->backoff_ms * 2 > REFUSED_BACKOFF_MAX_MS ? REFUSED_BACKOFF_MAX_MS : pb->backoff_ms * 2;
    return PART_HELD;
}

/* Sends p->pub (built) and moves p on by the outcome: published (the
 * batch read ahead into p->next), held (refused, or a fence short of TTL:
 * the loop renews first), lost, or back to RECOVER. */
static enum part_rc send_publish(struct worker *w, struct part *p, int next)
{
    struct redisReply *ex = NULL;
    char err[PUBLISH_ERR_MAX];
    if (op_now_ms() >= p->lease_deadline_ms) {
        part_lose(p);
        return PART_FAILED;
    }
    p->pub.renew_first = 0;
    switch (publish_send(w, p, &p->pub, next, &ex, err)) {
    case PUBLISH_DONE:
        if (p->pub.attempts)
            op_info("publish_resumed", "shard=%u inputs=%zu refusals=%llu", p->shard, p->pub.n,
                    (unsigned long long)p->pub.attempts);
        publish_account(w, p, &p->pub);
        if (p->pub.read_next)
            p->next = ex; /* its last element is the next batch */
        else
            op_reply_free(ex);
        publish_release(&p->pub);
        return PART_DID;
    case PUBLISH_REFUSED:
        return hold_refused(w, p, err);
    case PUBLISH_SHORT:
        if (++p->pub.short_tries >= SHORT_FENCE_TRIES)
            break;
        p->pub.renew_first = 1;
        p->pub.due_ms = 0;
        return PART_HELD;
    case PUBLISH_FENCED:
        part_lose(p);
        return PART_FAILED;
    case PUBLISH_BROKEN:
        /* our engine may be ahead of what Redis holds */
        part_fail(p, "exec element failed", EXEC_ERROR_RETRY_MS);
        return PART_FAILED;
    case PUBLISH_REDIS:
        break;
    }
    /* Redis failed mid-publish (did EXEC run?), or renewals are failing:
     * recover to know. */
    part_fail(p, w->redis.err ? "redis failed while publishing" : "lease short of ttl", 0);
    return PART_FAILED;
}

/* Builds and sends the publish of inputs 0 … n-1; batch (owned, may be
 * NULL) is the reply their ids point into, freed with the publish. */
static enum part_rc publish_batch(struct worker *w, struct part *p, size_t n, int force_snapshot,
                                  int read_next, int64_t t_read_us, uint64_t tick_ts,
                                  struct redisReply *batch, int next)
{
    if (op_now_ms() >= p->lease_deadline_ms) {
        op_reply_free(batch);
        part_lose(p);
        return PART_FAILED;
    }
    int built = publish_build(w, p, n, force_snapshot, read_next, t_read_us, tick_ts, &p->pub);
    if (built <= 0) {
        op_reply_free(batch);
        publish_release(&p->pub);
        if (built == 0)
            return PART_IDLE;
        part_fail(p, "out of memory while building a publish", 0);
        return PART_FAILED;
    }
    p->pub.batch = batch;
    return send_publish(w, p, next);
}

enum part_rc part_step(struct worker *w, struct part *p, int next)
{
    if (!part_publishing(p))
        return PART_IDLE;
    if (p->pub.active)
        return part_resume(w, p, next);
    struct redisReply *rep = p->next;
    int direct = p->next_direct;
    p->next = NULL;
    p->next_direct = 0;
    if (!rep) { /* nothing read ahead: a fenced transaction of just the read */
        eng_reports_reset(&w->reps);
        enum part_rc rc = publish_batch(w, p, 0, 0, 1, part_now_us(), 0, NULL, next);
        if (rc != PART_DID)
            return rc;
        rep = p->next;
        p->next = NULL;
    }
    int64_t t_read = part_now_us();
    long n = !rep ? -1 : take_batch(w, p, direct ? rep : op_reply_at(rep, op_reply_count(rep) - 1));
    if (n < 0) {
        op_reply_free(rep);
        part_fail(p, "broken batch reply", 0);
        return PART_FAILED;
    }
    if (n == 0) {
        op_reply_free(rep);
        if (p->state == PART_PENDING) { /* our PEL is worked off: new entries now */
            p->state = PART_LIVE;
            op_info("shard_live", "shard=%u last=%llu-%llu", p->shard,
                    (unsigned long long)p->last.ms, (unsigned long long)p->last.seq);
            return PART_DID;
        }
        p->idle = 1;
        return PART_IDLE;
    }
    p->idle = 0;
    p->input_ms = op_now_ms();
    /* An entry at or below what the engine already reflects was applied
     * before (it cannot be pending: batches are acknowledged whole, in
     * order); acknowledge it again without applying it. */
    for (long i = 0; i < n; i++)
        if (!w->ents[i].deleted && op_sid_cmp(w->ents[i].sid, p->last) <= 0) {
            if (w->ents[i].first)
                op_error("entry_already_applied", "shard=%u id=%.*s", p->shard,
                         (int)w->ents[i].idlen, w->ents[i].id);
            w->ents[i].deleted = 2; /* not applied, not counted as deleted */
        }
    if (p->state == PART_PENDING)
        p->cursor = w->ents[n - 1].sid;
    for (long i = 0; i < n; i++)
        if (w->ents[i].deleted == 1) {
            atomic_fetch_add(&w->st->deleted_pending, 1);
            op_error("pending_entry_deleted", "shard=%u id=%.*s", p->shard, (int)w->ents[i].idlen,
                     w->ents[i].id);
        }
    eng_reports_reset(&w->reps);
    apply_inputs(w, p, (size_t)n);
    enum part_rc rc = publish_batch(w, p, (size_t)n, 0, next >= 0, t_read, 0, rep, next);
    return rc == PART_IDLE ? PART_DID : rc;
}

int64_t part_tick_wait_ms(const struct worker *w, const struct part *p, int64_t now_ms)
{
    if (!part_publishing(p) || p->state != PART_LIVE || !p->eng || w->cfg->tick_ms <= 0)
        return -1;
    /* MATCHER_TICK_FORCE (tests): as if an event had been due since the
     * epoch, so that the ticks' path runs before the engine has events. */
    uint64_t next = w->cfg->tick_force ? 1 : eng_next_event_ns(p->eng);
    return tick_wait_ms(w->cfg->tick_ms, p->tick_inflight, now_ms - p->input_ms, next,
                        part_wall_ns());
}

enum part_rc part_tick(struct worker *w, struct part *p, int next)
{
    if (p->pub.active || p->next || part_tick_wait_ms(w, p, op_now_ms()) != 0)
        return PART_IDLE;
    eng_reports_reset(&w->reps);
    enum part_rc rc = publish_batch(w, p, 0, 0, 1, part_now_us(), part_wall_ns(), NULL, next);
    return rc == PART_IDLE ? PART_DID : rc;
}

enum part_rc part_flush(struct worker *w, struct part *p, int force_snapshot)
{
    if (!part_publishing(p) || !p->eng || p->pub.active)
        return PART_IDLE;
    eng_reports_reset(&w->reps);
    return publish_batch(w, p, 0, force_snapshot, 0, part_now_us(), 0, NULL, -1);
}

enum part_rc part_resume(struct worker *w, struct part *p, int next)
{
    if (!part_publishing(p) || !p->pub.active)
        return PART_IDLE;
    return send_publish(w, p, next);
}

/* part_finish's answer to a publish held while handing back: a fence
 * short of TTL is sent again after the loop renewed (PART_HELD); a
 * refusal is abandoned, nothing written (the next owner recovers). */
static enum part_rc finish_held(struct part *p)
{
    if (p->pub.renew_first)
        return PART_HELD;
    part_fail(p, "handed back with a refused publish", 0);
    return PART_DID;
}

enum part_rc part_finish(struct worker *w, struct part *p)
{
    if (p->pub.active && !p->pub.renew_first)
        return finish_held(p);
    while (part_publishing(p) && !w->redis.err && (p->pub.active || p->next))
        if ((p->pub.active ? part_resume(w, p, -1) : part_step(w, p, -1)) == PART_HELD)
            return finish_held(p);
    if (part_publishing(p) && !w->redis.err && part_flush(w, p, 1) == PART_HELD)
        return finish_held(p);
    return p->lost || w->redis.err ? PART_FAILED : PART_DID;
}

/* The recorder's Redis side: read fills:{S} in the "recorders" group, reclaim, acknowledge, trim.
 */
#include "recorder/stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/alloc.h"
#include "shared/backlog.h"
#include "shared/codec.h"
#include "shared/log.h"
#include "shared/reply.h"
#include "shared/sid.h"

int rec_stream_init(struct rec_stream *s, const struct rec_stream_config *cfg,
                    struct rec_stats *stats)
{
    memset(s, 0, sizeof(*s));
    s->cfg = *cfg;
    s->stats = stats;
    s->pending_phase = 1;
    if (op_redis_init(&s->redis, cfg->redis_url, cfg->timeout_ms) != 0)
        return op_log_fail("redis_config", "err=\"%s\"", s->redis.errstr);
    uint32_t n = cfg->shards;
    s->keys = op_calloc(n, sizeof(*s->keys));
    s->cursor = op_calloc(n, sizeof(*s->cursor));
    s->claim = op_calloc(n, sizeof(*s->claim));
    s->drained = op_calloc(n, 1);
    s->argv_cap = 16 + 2 * (size_t)n;
    s->argv = op_calloc(s->argv_cap, sizeof(*s->argv));
    s->lens = op_calloc(s->argv_cap, sizeof(*s->lens));
    if (!s->keys || !s->cursor || !s->claim || !s->drained || !s->argv || !s->lens) {
        rec_stream_release(s);
        return op_log_fail("out_of_memory", "what=stream");
    }
    for (uint32_t i = 0; i < n; i++) {
        op_key_fills(s->keys[i], i);
        snprintf(s->cursor[i], sizeof(s->cursor[i]), "0");
        snprintf(s->claim[i], sizeof(s->claim[i]), "0-0");
    }
    return 0;
}

void rec_stream_release(struct rec_stream *s)
{
    op_redis_release(&s->redis);
    op_free(s->keys);
    op_free(s->cursor);
    op_free(s->claim);
    op_free(s->drained);
    op_free(s->argv);
    op_free(s->lens);
    s->keys = NULL, s->cursor = NULL, s->claim = NULL, s->drained = NULL;
    s->argv = NULL, s->lens = NULL;
}

void rec_stream_fill_starts(struct rec_stream *s, int batch_empty)
{
    if (batch_empty && s->rescan && !s->pending_phase) {
        s->pending_phase = 1;
        for (uint32_t i = 0; i < s->cfg.shards; i++) {
            snprintf(s->cursor[i], sizeof(s->cursor[i]), "0");
            s->drained[i] = 0;
        }
    }
    s->rescan = 0;
}

int rec_stream_in_pending_phase(const struct rec_stream *s)
{
    return s->pending_phase;
}

int rec_stream_serial(const struct rec_stream *s)
{
    return s->rescan || s->pending_phase;
}

/* Records a Redis failure: gauge down, retry counted, reply loss noted. */
static int redis_failed(struct rec_stream *s, const char *what)
{
    REC_SET(s->stats, redis_up, 0);
    REC_ADD(s->stats, redis_retries, 1);
    s->rescan = 1; /* a command may have run without us seeing its reply */
    op_warn("redis_unavailable", "op=%s err=\"%s\"", what, s->redis.errstr);
    return -1;
}

int rec_stream_ready(struct rec_stream *s)
{
    if (s->redis.ctx && !s->redis.err)
        return 0;
    if (op_redis_ensure(&s->redis) != 0) {
        REC_SET(s->stats, redis_up, 0);
        return -1;
    }
    if (s->connected_before)
        op_info("redis_reconnected", "host=%s port=%d", s->redis.url.host, s->redis.url.port);
    s->connected_before = 1;
    REC_SET(s->stats, redis_up, 1);
    return 0;
}

/* Argument vector helpers: argv[i] with its length. */
static void arg(struct rec_stream *s, int i, const char *v)
{
    s->argv[i] = v;
    s->lens[i] = strlen(v);
}

/* The shard of "fills:{N}" (len bytes), or -1 when it is not one of ours. */
static long shard_of_key(const struct rec_stream *s, const char *key, size_t len)
{
    if (len < 9 || memcmp(key, "fills:{", 7) != 0 || key[len - 1] != '}')
        return -1;
    long v = 0;
    for (size_t i = 7; i < len - 1; i++) {
        if (key[i] < '0' || key[i] > '9' || v > OP_SHARDS_MAX)
            return -1;
        v = v * 10 + (key[i] - '0');
    }
    return v < (long)s->cfg.shards ? v : -1;
}

/*
 * Appends the entries of one [[id, fields], ...] array of shard to b. An
 * entry with nil fields (deleted from the stream after delivery) becomes a
 * poison entry. Stores the last id seen in last (REC_ID_MAX) if non-NULL.
 * Returns the count added, or -1 out of memory.
 */
static int add_entries(struct rec_stream *s, struct rec_batch *b, uint32_t shard,
                       const struct redisReply *entries, char *last)
{
    int added = 0;
    size_t n = op_reply_count(entries);
    for (size_t i = 0; i < n; i++) {
        const struct redisReply *e = op_reply_at(entries, i);
        if (!e || op_reply_type(e) != OP_REPLY_ARRAY || op_reply_count(e) < 2)
            continue;
        size_t idlen;
        const char *id = op_reply_str(op_reply_at(e, 0), &idlen);
        if (!id)
            continue;
        if (last && idlen < REC_ID_MAX) {
            memcpy(last, id, idlen);
            last[idlen] = '\0';
        }
        const struct redisReply *fields = op_reply_at(e, 1);
        int rc;
        if (op_reply_type(fields) != OP_REPLY_ARRAY) {
            REC_ADD(s->stats, pending_trimmed, 1);
            op_warn("pending_entry_trimmed", "stream=%s id=%.*s", s->keys[shard], (int)idlen, id);
            rc = rec_batch_add_poison(b, shard, id, idlen,
                                      "entry deleted from the stream before it was recorded");
        } else {
            size_t mlen = 0;
            const char *m = op_reply_field_str(fields, "m", &mlen);
            rc = rec_batch_add(b, shard, id, idlen, m, mlen);
        }
        if (rc != 0)
            return -1;
        added++;
    }
    return added;
}

/* How many entries to ask each of `streams` streams for, so that about
 * `room` reports come back (see the COUNT comment in rec_stream_read). */
static size_t entries_per_stream(struct rec_stream *s, size_t room, uint32_t streams)
{
    if (s->per_entry == 0)
        s->per_entry = OP_CODEC_REPORTS_MAX;
    size_t total = room / s->per_entry;
    size_t cap = 16 * room / OP_CODEC_REPORTS_MAX;
    if (total > cap)
        total = cap;
    size_t per = (total + streams - 1) / streams;
    return per ? per : 1;
}

int rec_stream_read(struct rec_stream *s, struct rec_batch *b, size_t room, int block_ms)
{
    uint32_t n = s->cfg.shards;
    char count[24], block[24];
    int argc = 0;
    uint32_t active[OP_SHARDS_MAX];
    uint32_t nactive = 0;

    for (uint32_t i = 0; i < n; i++)
        if (!s->pending_phase || !s->drained[i])
            active[nactive++] = i;
    if (nactive == 0) {
        s->pending_phase = 0;
        return 0;
    }
    /* COUNT is per stream and counts entries, while room counts reports, and
     * an entry holds from one to OP_CODEC_REPORTS_MAX reports (the matcher
     * writes one entry per batch). So COUNT = room / the largest entry size
     * seen lately, shared among the streams that had entries last time
     * (often fewer than all shards), so that one read fills about one batch —
     * every XREADGROUP is a round trip, and with appendfsync always an fsync
     * in Redis. The estimate starts at the maximum and decays by a quarter
     * per read; whatever it says, one read takes at most 16 x room /
     * OP_CODEC_REPORTS_MAX entries, so that a backlog of large entries after
     * a quiet spell of small ones overshoots by at most 16 batches. */
    uint32_t share = s->busy_shards && s->busy_shards < nactive ? s->busy_shards : nactive;
    size_t per = entries_per_stream(s, room, share);
    snprintf(count, sizeof(count), "%zu", per ? per : 1);
    snprintf(block, sizeof(block), "%d", block_ms);
    arg(s, argc++, "XREADGROUP");
    arg(s, argc++, "GROUP");
    arg(s, argc++, OP_GROUP_RECORDERS);
    arg(s, argc++, s->cfg.name);
    arg(s, argc++, "COUNT");
    arg(s, argc++, count);
    if (!s->pending_phase && block_ms > 0) {
        arg(s, argc++, "BLOCK");
        arg(s, argc++, block);
    }
    arg(s, argc++, "STREAMS");
    for (uint32_t k = 0; k < nactive; k++)
        arg(s, argc++, s->keys[active[k]]);
    for (uint32_t k = 0; k < nactive; k++)
        arg(s, argc++, s->pending_phase ? s->cursor[active[k]] : ">");

    struct redisReply *rep = op_redis_cmd(&s->redis, argc, s->argv, s->lens);
    if (!rep)
        return redis_failed(s, "xreadgroup");
    if (op_reply_type(rep) == OP_REPLY_ERROR) {
        /* LOADING after a restart, NOGROUP before setup ran: retried by the
         * loop every few tens of ms, so logged at most every 5 s. */
        int64_t now = op_now_ms();
        if (now - s->refused_log_ms >= 5000) {
            const char *e = op_reply_str(rep, NULL);
            op_warn("xreadgroup_refused", "err=\"%s\"%s", e,
                    op_reply_is_error(rep, "NOGROUP")
                        ? " hint=\"run orderpipe-setup to create the streams and the group\""
                        : "");
            s->refused_log_ms = now;
        }
        op_reply_free(rep);
        REC_SET(s->stats, redis_up, 0);
        REC_ADD(s->stats, redis_retries, 1);
        return -1;
    }
    int added = 0;
    uint32_t busy = 0;
    size_t first_entry = b->nentries;
    size_t ns = op_reply_count(rep); /* NIL on a BLOCK timeout: 0 streams */
    for (size_t i = 0; i < ns && added >= 0; i++) {
        const struct redisReply *st = op_reply_at(rep, i);
        size_t kl;
        const char *key = op_reply_str(op_reply_at(st, 0), &kl);
        long shard = key ? shard_of_key(s, key, kl) : -1;
        if (shard < 0)
            continue;
        const struct redisReply *entries = op_reply_at(st, 1);
        if (s->pending_phase && op_reply_count(entries) == 0)
            s->drained[shard] = 1;
        busy += op_reply_count(entries) > 0;
        int a =
            add_entries(s, b, (uint32_t)shard, entries, s->pending_phase ? s->cursor[shard] : NULL);
        added = a < 0 ? -1 : added + a;
    }
    op_reply_free(rep);
    if (added < 0)
        return op_log_fail("out_of_memory", "what=batch");
    if (busy)
        s->busy_shards = busy;
    if (b->nentries > first_entry) {
        size_t biggest = 1;
        for (size_t i = first_entry; i < b->nentries; i++)
            if (b->entries[i].n > biggest)
                biggest = b->entries[i].n;
        size_t decayed = s->per_entry - s->per_entry / 4;
        s->per_entry = biggest > decayed ? biggest : (decayed ? decayed : 1);
    }
    if (s->pending_phase && added > 0)
        op_info("pending_recovered", "entries=%d", added);
    REC_SET(s->stats, redis_up, 1);
    return added;
}

int rec_stream_claim(struct rec_stream *s, struct rec_batch *b, size_t room)
{
    if (s->cfg.claim_idle_ms <= 0)
        return 0;
    char idle[24], count[24];
    snprintf(idle, sizeof(idle), "%d", s->cfg.claim_idle_ms);
    snprintf(count, sizeof(count), "%zu", entries_per_stream(s, room, s->cfg.shards));
    int total = 0;
    for (uint32_t i = 0; i < s->cfg.shards; i++) {
        int argc = 0;
        arg(s, argc++, "XAUTOCLAIM");
        arg(s, argc++, s->keys[i]);
        arg(s, argc++, OP_GROUP_RECORDERS);
        arg(s, argc++, s->cfg.name);
        arg(s, argc++, idle);
        arg(s, argc++, s->claim[i]);
        arg(s, argc++, "COUNT");
        arg(s, argc++, count);
        if (op_redis_append(&s->redis, argc, s->argv, s->lens) != 0)
            return redis_failed(s, "xautoclaim");
    }
    for (uint32_t i = 0; i < s->cfg.shards; i++) {
        struct redisReply *rep = op_redis_next_reply(&s->redis);
        if (!rep)
            return redis_failed(s, "xautoclaim");
        if (op_reply_type(rep) != OP_REPLY_ARRAY || op_reply_count(rep) < 2) {
            op_reply_free(rep);
            continue;
        }
        size_t cl;
        const char *next = op_reply_str(op_reply_at(rep, 0), &cl);
        if (next && cl < REC_ID_MAX) {
            memcpy(s->claim[i], next, cl);
            s->claim[i][cl] = '\0';
        }
        int a = add_entries(s, b, i, op_reply_at(rep, 1), NULL);
        /* Redis 7: ids that were pending but are gone from the stream; the
         * command already removed them from the pending list. */
        const struct redisReply *gone = op_reply_at(rep, 2);
        size_t ng = gone ? op_reply_count(gone) : 0;
        for (size_t k = 0; k < ng && a >= 0; k++) {
            size_t gl;
            const char *gid = op_reply_str(op_reply_at(gone, k), &gl);
            if (!gid)
                continue;
            op_warn("claimed_entry_deleted", "stream=%s id=%.*s", s->keys[i], (int)gl, gid);
            if (rec_batch_add_poison(b, i, gid, gl,
                                     "entry deleted from the stream before it was recorded") != 0)
                a = -1;
        }
        op_reply_free(rep);
        if (a < 0) {
            /* drain the other replies to keep the connection in step */
            for (uint32_t k = i + 1; k < s->cfg.shards; k++)
                op_reply_free(op_redis_next_reply(&s->redis));
            return op_log_fail("out_of_memory", "what=batch");
        }
        if (a > 0 || ng > 0) {
            REC_ADD(s->stats, reclaimed, (uint64_t)a);
            REC_ADD(s->stats, reclaim_deleted, ng);
            op_info("reclaimed", "stream=%s entries=%d deleted=%zu", s->keys[i], a, ng);
        }
        total += a + (int)ng;
    }
    return total;
}

/* Makes room for argc arguments. Returns 0 or -1. */
static int argv_reserve(struct rec_stream *s, size_t argc)
{
    if (argc <= s->argv_cap)
        return 0;
    size_t cap = s->argv_cap * 2 > argc ? s->argv_cap * 2 : argc;
    const char **a = op_realloc((void *)s->argv, cap * sizeof(*a));
    if (!a)
        return -1;
    s->argv = a;
    size_t *l = op_realloc(s->lens, cap * sizeof(*l));
    if (!l)
        return -1;
    s->lens = l;
    s->argv_cap = cap;
    return 0;
}

int rec_stream_ack(struct rec_stream *s, const struct rec_batch *b)
{
    if (b->nentries == 0)
        return 0;
    if (argv_reserve(s, b->nentries + 3) != 0)
        return op_log_fail("out_of_memory", "what=xack");
    int sent = 0;
    for (uint32_t sh = 0; sh < s->cfg.shards; sh++) {
        int argc = 0;
        arg(s, argc++, "XACK");
        arg(s, argc++, s->keys[sh]);
        arg(s, argc++, OP_GROUP_RECORDERS);
        for (size_t i = 0; i < b->nentries; i++)
            if (b->entries[i].shard == sh)
                arg(s, argc++, b->entries[i].id);
        if (argc == 3)
            continue;
        if (op_redis_append(&s->redis, argc, s->argv, s->lens) != 0)
            return redis_failed(s, "xack");
        sent++;
    }
    uint64_t acked = 0;
    for (int i = 0; i < sent; i++) {
        struct redisReply *rep = op_redis_next_reply(&s->redis);
        if (!rep)
            return redis_failed(s, "xack");
        if (op_reply_type(rep) == OP_REPLY_ERROR) {
            op_warn("xack_refused", "err=\"%s\"", op_reply_str(rep, NULL));
            op_reply_free(rep);
            for (int k = i + 1; k < sent; k++)
                op_reply_free(op_redis_next_reply(&s->redis));
            REC_ADD(s->stats, redis_retries, 1);
            return -1;
        }
        acked += (uint64_t)op_reply_int(rep);
        op_reply_free(rep);
    }
    REC_ADD(s->stats, acked, acked);
    return 0;
}

/* What one group needs kept: its last-delivered id and pending count. */
struct group_pos {
    char name[64];
    struct op_sid last;
    long long pending;
};

/* Why 0 (rule 1 of shared/backlog.h: only "is anything undelivered"): a
 * fills entry holds up to 4096 reports, hundreds of KB, too much to count
 * them in a script every second; a fully delivered stream still reads 0,
 * and a backlog is Redis' lag when consistent, else the stream's length. */
#define BACKLOG_COUNT_MAX 0

/* Why 16: a fills stream has one group ("recorders"); tools may add a few. */
#define GROUPS_MAX 16

int rec_stream_poll(struct rec_stream *s, int trim)
{
    uint32_t n = s->cfg.shards;
    struct group_pos *gp = op_calloc((size_t)n * GROUPS_MAX, sizeof(*gp));
    int *ng = op_calloc(n, sizeof(*ng));
    int rc = -1;
    if (!gp || !ng) {
        op_free(gp);
        op_free(ng);
        return op_log_fail("out_of_memory", "what=poll");
    }
    /* 1. XINFO GROUPS of every shard (before XPENDING: an entry delivered
     *    after this snapshot is above its last-delivered id, so it is kept). */
    /*    With each, the backlog script of shared/backlog.h for the lag gauge
     *    (XINFO's raw `lag` can be stale after a Redis restart). */
    for (uint32_t i = 0; i < n; i++)
        if (op_redis_appendf(&s->redis, "XINFO GROUPS %s", s->keys[i]) != 0 ||
            op_backlog_append(&s->redis, s->keys[i], OP_GROUP_RECORDERS, BACKLOG_COUNT_MAX) != 0)
            goto redis_fail;
    for (uint32_t i = 0; i < n; i++) {
        struct redisReply *rep = op_redis_next_reply(&s->redis);
        struct op_backlog bl;
        if (!rep)
            goto redis_fail;
        if (op_backlog_read(&s->redis, &bl) != 0) {
            op_reply_free(rep);
            goto redis_fail;
        }
        if (bl.found)
            atomic_store_explicit(&s->stats->lag[i], bl.undelivered, memory_order_relaxed);
        for (size_t g = 0; g < op_reply_count(rep) && ng[i] < GROUPS_MAX; g++) {
            struct op_group grp;
            struct group_pos *p = &gp[(size_t)i * GROUPS_MAX + (size_t)ng[i]];
            if (op_groups_at(rep, g, &grp) != 0)
                continue;
            snprintf(p->name, sizeof(p->name), "%.*s", (int)grp.name_len, grp.name);
            p->last = grp.last_delivered;
            p->pending = grp.pending;
            if (strcmp(p->name, OP_GROUP_RECORDERS) == 0)
                atomic_store_explicit(&s->stats->pending[i], p->pending, memory_order_relaxed);
            ng[i]++;
        }
        op_reply_free(rep);
    }
    if (!trim) {
        rc = 0;
        goto out;
    }
    /* 2. The smallest pending id of every group that has pending entries. */
    int asked = 0;
    for (uint32_t i = 0; i < n; i++)
        for (int g = 0; g < ng[i]; g++)
            if (gp[(size_t)i * GROUPS_MAX + (size_t)g].pending > 0) {
                if (op_redis_appendf(&s->redis, "XPENDING %s %s", s->keys[i],
                                     gp[(size_t)i * GROUPS_MAX + (size_t)g].name) != 0)
                    goto redis_fail;
                asked++;
            }
    struct op_sid *minid = op_calloc(n, sizeof(*minid));
    unsigned char *known = op_calloc(n, 1);
    if (!minid || !known) {
        op_free(minid);
        op_free(known);
        for (int k = 0; k < asked; k++)
            op_reply_free(op_redis_next_reply(&s->redis));
        op_log_fail("out_of_memory", "what=poll");
        goto out;
    }
    for (uint32_t i = 0; i < n; i++) {
        for (int g = 0; g < ng[i]; g++) {
            const struct group_pos *p = &gp[(size_t)i * GROUPS_MAX + (size_t)g];
            struct op_sid need = op_sid_next(p->last); /* first entry not delivered yet */
            if (p->pending > 0) {
                struct redisReply *rep = op_redis_next_reply(&s->redis);
                if (!rep) {
                    op_free(minid);
                    op_free(known);
                    goto redis_fail;
                }
                /* [count, smallest id, greatest id, consumers]; anything else
                 * (an error, a nil id): trim nothing this time. */
                const struct redisReply *lo = op_reply_at(rep, 1);
                size_t l = 0;
                const char *los = lo ? op_reply_str(lo, &l) : NULL;
                struct op_sid pmin;
                if (!los || op_sid_parse(los, l, &pmin) != 0)
                    need = (struct op_sid){0, 0};
                else if (op_sid_cmp(pmin, need) < 0)
                    need = pmin;
                op_reply_free(rep);
            }
            if (!known[i] || op_sid_cmp(need, minid[i]) < 0)
                minid[i] = need;
            known[i] = 1;
        }
    }
    /* 3. Keep what is younger than retain_ms, by Redis' clock (entry ids
     *    are its milliseconds), so that feed clients can resume from the
     *    streams (docs/feed.md). */
    if (s->cfg.retain_ms > 0) {
        struct redisReply *t = op_redis_cmdf(&s->redis, "TIME");
        const char *sec = op_reply_str(op_reply_at(t, 0), NULL);
        if (!t || op_reply_count(t) != 2 || !sec) {
            op_reply_free(t);
            op_free(minid);
            op_free(known);
            goto redis_fail;
        }
        long long now_ms = strtoll(sec, NULL, 10) * 1000;
        op_reply_free(t);
        struct op_sid cap = {now_ms > s->cfg.retain_ms ? (uint64_t)(now_ms - s->cfg.retain_ms) : 0,
                             0};
        for (uint32_t i = 0; i < n; i++)
            if (known[i] && op_sid_cmp(cap, minid[i]) < 0)
                minid[i] = cap;
    }
    /* 4. XTRIM MINID ~: whole radix-tree nodes only, never above minid.
     * LIMIT 0: with "~" Redis otherwise removes at most 10,000 entries per
     * call (100 x stream-node-max-entries) and a busy stream outgrows it. */
    int trims = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!known[i] || (minid[i].ms == 0 && minid[i].seq <= 1))
            continue;
        char id[OP_SID_TEXT_MAX];
        if (op_redis_appendf(&s->redis, "XTRIM %s MINID ~ %s LIMIT 0", s->keys[i],
                             op_sid_format(minid[i], 0, id)) != 0) {
            op_free(minid);
            op_free(known);
            goto redis_fail;
        }
        trims++;
    }
    op_free(minid);
    op_free(known);
    for (int k = 0; k < trims; k++) {
        struct redisReply *rep = op_redis_next_reply(&s->redis);
        if (!rep)
            goto redis_fail;
        REC_ADD(s->stats, trimmed, (uint64_t)op_reply_int(rep));
        op_reply_free(rep);
    }
    rc = 0;
    goto out;
redis_fail:
    rc = redis_failed(s, "poll");
out:
    op_free(gp);
    op_free(ng);
    return rc;
}

/* The matcher's loop: leases, heartbeat and balancing, owned shards' batches, idle waits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "matcher/part.h"
#include "shared/backlog.h"
#include "shared/alloc.h"
#include "shared/log.h"

struct worker *worker_new(const struct matcher_config *cfg, struct matcher_stats *st)
{
    struct worker *w = op_calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->cfg = cfg;
    w->st = st;
    fence_init(&w->fence, cfg->name, cfg->lease_ms);
    w->parts =
        op_calloc(cfg->shards, sizeof(struct part *)); /* NOLINT(bugprone-sizeof-expression) */
    w->codec = op_codec_new();
    w->backlog_memo = op_calloc(cfg->shards, sizeof(*w->backlog_memo));
    w->spans = op_calloc(OP_CODEC_ORDERS_MAX, sizeof(*w->spans));
    if (!w->parts || !w->codec || !w->backlog_memo || !w->spans) {
        worker_free(w);
        return NULL;
    }
    eng_reports_init(&w->reps);
    op_buf_init(&w->enc);
    op_buf_init(&w->text);
    op_buf_init(&w->md);
    op_redis_init(&w->redis, cfg->redis_url, cfg->redis_timeout_ms);
    return w;
}

void worker_free(struct worker *w)
{
    if (!w)
        return;
    for (uint32_t s = 0; w->parts && s < w->cfg->shards; s++)
        part_free(w->parts[s]);
    op_free(w->parts);
    op_codec_free(w->codec);
    op_redis_release(&w->redis);
    eng_reports_release(&w->reps);
    op_buf_release(&w->enc);
    op_buf_release(&w->text);
    op_buf_release(&w->md);
    op_free(w->ents);
    op_free(w->msgs);
    op_free(w->spans);
    op_free(w->rep_end);
    op_free(w->backlog_memo);
    op_free(w->outs);
    op_free((void *)w->argv);
    op_free(w->lens);
    op_free(w);
}

/* Why a third: two renewals can fail (a Redis hiccup, a slow batch) before
 * the lease runs out. */
static int64_t renew_every(const struct worker *w)
{
    return w->cfg->lease_ms / 3;
}

/* Forgets shard s at once: its engine state is ahead of nothing we may still
 * publish. `released` says whether the lease was handed back or lost. */
static void forget(struct worker *w, uint32_t s, int released, const char *why)
{
    struct part *p = w->parts[s];
    if (!p)
        return;
    if (released) {
        atomic_fetch_add(&w->st->lease_released, 1);
        op_info("lease_released", "shard=%u why=%s", s, why);
    } else {
        atomic_fetch_add(&w->st->lease_lost, 1);
        op_warn("lease_lost",
                "shard=%u why=%s note=\"in-memory state discarded, nothing "
                "more published\"",
                s, why);
    }
    fence_forget(&w->fence, s); /* its WATCH stays set until the next UNWATCH or EXEC */
    part_free(p);
    w->parts[s] = NULL;
    w->owned--;
    atomic_store(&w->st->shard[s].owned, 0);
}

/* Renews the leases of every owned shard when due, in one pipeline; a
 * lease found not ours any more marks its part lost. */
static void renew(struct worker *w)
{
    int64_t now = op_now_ms();
    if (now < w->next_renew_ms || w->owned == 0) {
        if (w->owned == 0)
            w->next_renew_ms = now + renew_every(w);
        return;
    }
    /* A renewal modifies the lease keys: a WATCH pipelined for the next
     * publish would make its EXEC fail. Drop it; that publish watches again. */
    if (fence_unwatch(&w->fence, &w->redis) != 0)
        return;
    for (uint32_t s = 0; s < w->cfg->shards; s++)
        if (w->parts[s] && lease_append_renew(&w->redis, s, w->cfg->name, w->cfg->lease_ms) != 0)
            return;
    for (uint32_t s = 0; s < w->cfg->shards; s++) {
        struct part *p = w->parts[s];
        if (!p)
            continue;
        struct redisReply *rep = op_redis_next_reply(&w->redis);
        if (!rep)
            return;
        if (op_reply_type(rep) == OP_REPLY_INTEGER && op_reply_int(rep) == 1)
            part_renewed(p, now + w->cfg->lease_ms); /* from before we sent it */
        else
            part_lose(p);
        op_reply_free(rep);
    }
    w->next_renew_ms = now + renew_every(w);
}

/* The shard whose publish follows shard s's in the round-robin (s itself
 * when it is the only one), or -1: its fence is pipelined behind s's EXEC. */
static int next_publisher(const struct worker *w, uint32_t s)
{
    for (uint32_t k = 1; k <= w->cfg->shards; k++) {
        uint32_t t = (s + k) % w->cfg->shards;
        if (part_publishing(w->parts[t]))
            return (int)t;
    }
    return -1;
}

/* The shard holding a publish (refused, or waiting for a renewal), or -1.
 * While one does, the others wait: their buffers are the worker's, and
 * Redis refuses them alike. */
static int held_shard(const struct worker *w)
{
    for (uint32_t s = 0; s < w->cfg->shards; s++)
        if (w->parts[s] && w->parts[s]->pub.active)
            return (int)s;
    return -1;
}

/* Hands shard s back: publishes a batch read ahead, stores a snapshot so the
 * next owner starts fast (part_finish, which asks for a renewal when a
 * fence was short), then deletes the lease if it is still ours. */
static void hand_back(struct worker *w, uint32_t s, const char *why)
{
    struct part *p = w->parts[s];
    while (part_finish(w, p) == PART_HELD && !w->redis.err) {
        w->next_renew_ms = 0;
        renew(w);
    }
    if (p->lost) {
        forget(w, s, 0, "lost while handing back");
        return;
    }
    if (!w->redis.err)
        lease_release(&w->redis, s, w->cfg->name);
    forget(w, s, 1, why);
}

/* Why 1000: as in ingest/writer.c, the same streams (rule 1 of
 * shared/backlog.h: a backlog up to this is counted exactly). */
#define BACKLOG_COUNT_MAX 1000

/* op_backlog_poll_orders' store: the shard's lag and pending gauges. */
static void store_backlog(void *ctx, uint32_t s, const struct op_backlog *b)
{
    struct matcher_stats *st = ctx;
    if (b->found) {
        if (b->undelivered >= 0)
            atomic_store(&st->shard[s].lag, b->undelivered);
        atomic_store(&st->shard[s].pending, b->pending);
        atomic_store(&st->shard[s].backlog_orders, b->orders);
    }
}

/* Polls the backlog of group "matchers" for every shard (metrics): the
 * undelivered part (shared/backlog.h, not XINFO's raw `lag`, which Redis
 * 7.0 can leave stale after a restart) and the pending part. */
static void poll_groups(struct worker *w)
{
    op_backlog_poll_orders_memo(&w->redis, w->cfg->shards, OP_GROUP_MATCHERS, BACKLOG_COUNT_MAX,
                                w->backlog_memo, store_backlog, w->st);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * The balance: every live worker (heartbeat set) computes the same sorted
 * list of names; the worker of rank r should own
 *     floor(shards / live) + (r < shards % live ? 1 : 0)
 * shards, which sums to exactly `shards`. A worker above its target hands
 * back its highest shards (batch finished, snapshot, lease deleted); one
 * below takes free leases (no key, or expired) with SET NX, trying shards
 * from an offset by rank so that workers rarely race for the same one.
 */
static void balance(struct worker *w)
{
    const struct matcher_config *c = w->cfg;
    struct redisReply *rep = lease_heartbeat(&w->redis, c->name, c->lease_ms);
    if (!rep)
        return;
    size_t live = op_reply_count(rep), rank = live;
    const char **names = op_calloc(live ? live : 1, sizeof(*names));
    if (!names) {
        op_reply_free(rep);
        return;
    }
    for (size_t i = 0; i < live; i++) {
        names[i] = op_reply_str(op_reply_at(rep, i), NULL);
        if (!names[i])
            names[i] = "";
    }
    qsort(names, live, sizeof(*names), cmp_str);
    for (size_t i = 0; i < live; i++)
        if (strcmp(names[i], c->name) == 0)
            rank = i;
    op_free((void *)names);
    op_reply_free(rep);
    if (rank == live) /* our heartbeat is not in the set: wait for the next one */
        return;
    int target = (int)(c->shards / live) + (rank < c->shards % live ? 1 : 0);
    if (target != w->target)
        op_info("balance", "live=%zu rank=%zu target=%d owned=%d", live, rank, target, w->owned);
    w->target = target;
    atomic_store(&w->st->live_workers, (int)live);
    atomic_store(&w->st->target_shards, target);

    for (uint32_t s = c->shards; s-- > 0 && w->owned > target;)
        if (w->parts[s])
            hand_back(w, s, "balance");
    if (w->owned >= target || w->redis.err)
        return;
    uint32_t first = (uint32_t)((uint64_t)rank * c->shards / live);
    for (uint32_t k = 0; k < c->shards && w->owned < target; k++) {
        uint32_t s = (first + k) % c->shards;
        if (w->parts[s])
            continue;
        int64_t t = op_now_ms();
        int rc = lease_acquire(&w->redis, s, c->name, c->lease_ms);
        if (rc < 0)
            return;
        if (rc == 0)
            continue;
        struct part *p = part_new(w, s, t + c->lease_ms);
        if (!p) {
            lease_release(&w->redis, s, c->name);
            return;
        }
        w->parts[s] = p;
        w->owned++;
        atomic_store(&w->st->shard[s].owned, 1);
        atomic_fetch_add(&w->st->lease_acquired, 1);
        op_info("lease_acquired", "shard=%u owned=%d target=%d", s, w->owned, target);
    }
}

/* Behind the XREAD BLOCK of idle_wait: the fenced read (lease.c) of the
 * next batch of every shard that waits, which Redis runs as soon as the
 * XREAD returns — in the same event loop, so that with appendfsync always
 * one fsync covers ingest's write and our read, and no round trip is spent
 * on a separate fenced transaction to read (which cost one fsync and ~1 ms
 * on every batch of a light flow). A shard whose lease is no longer ours
 * reads nothing (the script refuses). The replies become the shards' batch
 * read ahead (p->next, direct). */
static int append_fenced_reads(struct worker *w, struct part **waiting, int n)
{
    for (int i = 0; i < n; i++) {
        struct part *p = waiting[i];
        char count[16];
        snprintf(count, sizeof(count), "%d", p->read_count);
        const char *argv[] = {"XREADGROUP", "GROUP",   OP_GROUP_MATCHERS, w->cfg->name, "COUNT",
                              count,        "STREAMS", p->orders,         ">"};
        if (lease_append_fenced(&w->redis, p->shard, w->cfg->name, p->orders, 9, argv) != 0)
            return -1;
    }
    return 0;
}

/* Takes the replies of append_fenced_reads. */
static void take_fenced_reads(struct worker *w, struct part **waiting, int n)
{
    for (int i = 0; i < n; i++) {
        struct part *p = waiting[i];
        struct redisReply *rep = op_redis_next_reply(&w->redis);
        if (!rep)
            return; /* the connection failed: the loop reconnects and recovers */
        if (lease_is_fenced(rep)) {
            part_lose(p);
            op_reply_free(rep);
        } else if (op_reply_type(rep) == OP_REPLY_ERROR) {
            op_error("xreadgroup_failed", "shard=%u err=\"%s\"", p->shard, op_reply_str(rep, NULL));
            op_reply_free(rep);
            part_fail(p, "fenced read failed", 0);
        } else if (op_reply_type(rep) == OP_REPLY_NIL) {
            op_reply_free(rep); /* nothing new */
        } else {
            p->next = rep;
            p->next_direct = 1;
        }
    }
}

/* Waits for new entries on the LIVE shards (XREAD BLOCK, which changes
 * nothing in the groups), or sleeps when there is none, at most until the
 * next renewal, market-data publication or tick is due (Redis times a BLOCK out
 * at its serverCron ticks, up to 100 ms late at hz 10: a wait is at most
 * that much longer). New entries are read behind it (append_fenced_reads). */
static void idle_wait(struct worker *w)
{
    int64_t now = op_now_ms(), until = now + w->cfg->block_ms;
    if (w->next_renew_ms < until)
        until = w->next_renew_ms;
    if (w->next_balance_ms < until)
        until = w->next_balance_ms;
    const char *argv[4 + 2 * OP_SHARDS_MAX];
    char ids[OP_SHARDS_MAX][OP_SID_TEXT_MAX];
    char block[24];
    struct part *waiting[OP_SHARDS_MAX];
    int n = 0, nwait = 0;
    for (uint32_t s = 0; s < w->cfg->shards; s++) {
        struct part *p = w->parts[s];
        if (!p || p->state != PART_LIVE)
            continue;
        if (!p->next && !p->pub.active && part_publishing(p))
            waiting[nwait++] = p;
        if (p->any_dirty && p->book_due_ms < until)
            until = p->book_due_ms;
        int64_t tick = part_tick_wait_ms(w, p, now);
        if (tick >= 0 && now + tick < until)
            until = now + tick;
        op_sid_format(p->last, 0, ids[n]);
        argv[4 + n] = p->orders;
        n++;
    }
    int64_t ms = until - now;
    if (ms < 1)
        return;
    if (n == 0) {
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
        return;
    }
    for (int i = 0; i < n; i++)
        argv[4 + n + i] = ids[i];
    snprintf(block, sizeof(block), "%lld", (long long)ms);
    argv[0] = "XREAD";
    argv[1] = "BLOCK";
    argv[2] = block;
    argv[3] = "STREAMS";
    if (op_redis_append(&w->redis, 4 + 2 * n, argv, NULL) != 0 ||
        append_fenced_reads(w, waiting, nwait) != 0)
        return;
    struct redisReply *rep = op_redis_next_reply(&w->redis);
    if (!rep)
        return;
    op_reply_free(rep);
    take_fenced_reads(w, waiting, nwait);
}

/* Drops shard s when its lease is gone (lost, or not renewed in time:
 * another worker may own it already). Returns 1 when it did. */
static int drop_if_lost(struct worker *w, uint32_t s, int64_t now, const char *why)
{
    struct part *p = w->parts[s];
    if (!p->lost && now >= p->lease_deadline_ms)
        part_lose(p);
    if (!p->lost)
        return 0;
    forget(w, s, 0, why);
    return 1;
}

/* Runs one pass over the owned shards: a recovery step for those in
 * RECOVER, a batch for the others. Returns 1 when one of them did work. */
static int pass(struct worker *w)
{
    int did = 0;
    int64_t now = op_now_ms();
    for (uint32_t s = 0; s < w->cfg->shards && !w->redis.err; s++) {
        struct part *p = w->parts[s];
        if (!p || drop_if_lost(w, s, now, "lease expired or taken over"))
            continue;
        if (p->state == PART_RECOVER) {
            did |= part_recover(w, p) == PART_DID;
        } else {
            enum part_rc rc = part_step(w, p, next_publisher(w, s));
            did |= rc == PART_DID || rc == PART_HELD;
            if (rc == PART_IDLE) { /* idle: a tick when one is due (matcher/tick.h) */
                rc = part_tick(w, p, next_publisher(w, s));
                did |= rc == PART_DID || rc == PART_HELD;
            }
            if (rc == PART_IDLE && (p->any_dirty || now >= p->snap_due_ms))
                did |= part_flush(w, p, 0) == PART_HELD;
        }
        if (p->lost)
            forget(w, s, 0, "fenced");
        if (held_shard(w) >= 0)
            break; /* the others wait until the held publish went through */
    }
    return did;
}

/* Why 50 ms: the slice of a wait for a held publish, so that a lease
 * renewal that is due and a SIGTERM are not held up by a long backoff. */
#define HELD_SLICE_MS 50

/* Serves the shard s holding a publish: sends it again when due (renewing
 * the leases first when its fence was short), else sleeps a slice. */
static void serve_held(struct worker *w, uint32_t s)
{
    int64_t now = op_now_ms();
    if (drop_if_lost(w, s, now, "lease lost while a refused publish waited"))
        return;
    struct part *p = w->parts[s];
    if (p->pub.renew_first) {
        w->next_renew_ms = 0;
        renew(w);
        if (w->redis.err || drop_if_lost(w, s, op_now_ms(), "lease lost while renewing"))
            return;
    }
    if (now < p->pub.due_ms) {
        int64_t ms = p->pub.due_ms - now < HELD_SLICE_MS ? p->pub.due_ms - now : HELD_SLICE_MS;
        struct timespec ts = {0, (long)ms * 1000000L};
        nanosleep(&ts, NULL);
        return;
    }
    part_resume(w, p, next_publisher(w, s));
    if (p->lost)
        forget(w, s, 0, "fenced");
}

/* After Redis failed: whether the last EXEC ran, and which entries a read
 * cut short delivered to us, is unknown, so every shard recovers from what
 * Redis holds (its lease, if still ours, is kept). */
static void redis_lost(struct worker *w)
{
    if (atomic_exchange(&w->st->redis_up, 0) == 1) {
        atomic_fetch_add(&w->st->redis_errors, 1);
        op_error("redis_unavailable", "err=\"%s\" owned=%d", w->redis.errstr, w->owned);
    }
    fence_reset(&w->fence); /* a new connection watches nothing */
    for (uint32_t s = 0; s < w->cfg->shards; s++)
        if (w->parts[s])
            part_fail(w->parts[s], "redis connection lost", 0);
}

int worker_run(struct worker *w, volatile sig_atomic_t *stop)
{
    while (!*stop) {
        if (w->redis.err || !w->redis.ctx) {
            redis_lost(w);
            if (op_redis_ensure(&w->redis) != 0) {
                int64_t now = op_now_ms();
                for (uint32_t s = 0; s < w->cfg->shards; s++)
                    if (w->parts[s] && now >= w->parts[s]->lease_deadline_ms)
                        forget(w, s, 0, "lease expired while redis was unreachable");
                struct timespec ts = {0, 50L * 1000000};
                nanosleep(&ts, NULL);
                continue;
            }
            op_info("redis_available", "reconnects=%llu", (unsigned long long)w->redis.reconnects);
            atomic_store(&w->st->redis_up, 1);
        }
        renew(w);
        int held = held_shard(w);
        if (held >= 0 && !w->redis.err) { /* a refused publish: nothing else meanwhile */
            serve_held(w, (uint32_t)held);
            continue;
        }
        if (!w->redis.err && op_now_ms() >= w->next_balance_ms) {
            balance(w);
            poll_groups(w);
            w->next_balance_ms = op_now_ms() + renew_every(w);
        }
        if (w->redis.err)
            continue;
        if (!pass(w) && !w->redis.err)
            idle_wait(w);
    }
    /* SIGTERM: the batch in hand is published (pass returned); hand every
     * shard back with a snapshot so that its next owner starts at once. */
    op_info("stopping", "owned=%d", w->owned);
    for (uint32_t s = 0; s < w->cfg->shards; s++)
        if (w->parts[s]) {
            if (w->redis.err)
                forget(w, s, 0, "redis unavailable at shutdown");
            else
                hand_back(w, s, "shutdown");
        }
    if (!w->redis.err)
        lease_leave(&w->redis, w->cfg->name);
    return 0;
}

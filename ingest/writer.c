/* The Redis writer: one thread that pipelines the commands of many requests per round trip. */
#include "ingest/writer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/alloc.h"
#include "shared/backlog.h"
#include "shared/buf.h"
#include "shared/codec.h"
#include "shared/log.h"
#include "shared/redis.h"
#include "shared/shard.h"

/* Order ids: (block << ID_BLOCK_BITS) | n. A block comes from INCR
 * orderpipe:id_block, durable in Redis' AOF, so ids are unique across ingest
 * instances and restarts with one round trip per 2^20 orders. Block 0 is
 * never used, so ids are >= 2^20; they stay below 2^63 for 2^43 blocks. */
#define ID_BLOCK_BITS 20
#define ID_BLOCK_KEY "orderpipe:id_block"

/* Why 4096: a round's inputs of one shard are one orders:{S} entry, so
 * this bounds an entry (OP_CODEC_ORDERS_MAX: a matcher reads entries whole);
 * ~1 MB and ~10 ms of Redis work, and larger rounds only add latency to the
 * first request in them. A job larger than this (a batch request: at most
 * BATCH_MAX = 1000 orders) is still one round. */
#define ROUND_MAX_ITEMS OP_CODEC_ORDERS_MAX
/* How often the consumer-group backlog of every shard is polled. */
#define LAG_POLL_MS 200

/*
 * Writes one orders:{S} entry, atomically:
 *   KEYS[1] orders:{S}, KEYS[2] oseq:{S}, KEYS[3…] the idempotency keys of
 *   the entry's new orders that carry a client_order_id;
 *   ARGV[1] their TTL (s), ARGV[2…6] the entry's fields type, sym, n, ids
 *   and m, ARGV[7…] the order id of each idempotency key.
 * If any idempotency key exists, nothing is written and the answer is
 * {0, {k, previous id, …}} (k: the key's index from 1): the writer drops
 * those orders and sends the entry again. Otherwise oseq:{S} is raised by n
 * (the entry's `seq` field is the count of inputs before it: backpressure
 * counts orders with it, shared/backlog.h), the entry is added and the keys
 * set: {1, entry id}. {2} when the stream does not exist (setup not run):
 * nothing written. Every key carries the shard's hash tag (one cluster slot).
 */
static const char ENTRY_SCRIPT[] =
    "local dups = {}\n"
    "for i = 3, #KEYS do\n"
    "  local prev = redis.call('GET', KEYS[i])\n"
    "  if prev then dups[#dups + 1] = i - 2; dups[#dups + 1] = prev end\n"
    "end\n"
    "if #dups > 0 then return {0, dups} end\n"
    "if redis.call('EXISTS', KEYS[1]) == 0 then return {2} end\n"
    "local n = tonumber(ARGV[4])\n"
    "local seq = redis.call('INCRBY', KEYS[2], n) - n\n"
    "local id = redis.call('XADD', KEYS[1], 'NOMKSTREAM', '*', 'type', ARGV[2], 'sym', ARGV[3],\n"
    "  'n', ARGV[4], 'ids', ARGV[5], 'seq', tostring(seq), 'm', ARGV[6])\n"
    "for i = 3, #KEYS do redis.call('SET', KEYS[i], ARGV[4 + i], 'EX', ARGV[1]) end\n"
    "return {1, id}\n";

/* Why 2: NOSCRIPT means the script did not run (nothing written), so the
 * entry is sent again after loading it; twice in one round means something
 * keeps flushing scripts, and the orders get 503 rather than loop. */
#define NOSCRIPT_RETRIES 2

/* One orders:{S} entry of a round: the round's inputs of one shard. */
struct entry {
    uint32_t shard;
    size_t first, n; /* its items: lane.order[first … first + n) */
    size_t placed;   /* grouping cursor */
    bool queued;     /* its script call is in the pipeline */
    bool resend;     /* Redis knew some client_order_ids: send again without them */
};

/* One writer thread with its own Redis connection. Several lanes take jobs
 * from the one queue, so that while a pipeline waits for Redis (with
 * appendfsync always, for its fsync) the next one is already being sent:
 * Redis then fsyncs the commands of all lanes together. */
struct lane {
    struct writer *w; /* (ref) */
    int index;        /* 0 also polls the backlog */
    pthread_t thread;
    struct op_redis redis;
    struct op_buf enc;   /* the `m` of the entry being sent */
    struct op_buf text;  /* its other fields and idempotency keys */
    struct item **order; /* the round's order items, grouped by entry */
    size_t cap_order;
    struct entry *ents; /* the round's entries, in order of first appearance */
    size_t nents, cap_ents;
    int32_t *shard_ent;               /* [shards]: the shard's entry in this round, -1 */
    const struct op_order_msg **msgs; /* the written inputs of the entry being sent */
    size_t cap_msgs;
    struct item **seen; /* repeat detection of client_order_ids, a hash table */
    size_t cap_seen;
    const char **argv; /* the script call of one entry */
    size_t *lens;
    size_t cap_argv, cap_lens;
    char sha[48];            /* ENTRY_SCRIPT loaded on this connection, "" if not */
    uint64_t sha_reconnects; /* redis.reconnects when it was loaded */
    int noscript;            /* NOSCRIPT answers this round */
    uint64_t id_block;       /* 0 = none yet */
    uint64_t id_next;        /* next n within the block */
    int64_t next_lag_poll_ms;
    long long acked; /* replicas the round's last WAIT reported, -1 none yet */
    _Atomic bool up; /* last contact with Redis succeeded */
};

struct writer {
    struct writer_config cfg;
    struct lane *lanes;
    int nlanes;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *head, *tail;              /* queue, under mu */
    bool stopping;                        /* under mu */
    int idle;                             /* lanes waiting on cv, under mu: submit wakes one
                                             only if some lane is idle; a busy lane looks at
                                             the queue itself when its round is done */
    _Atomic int64_t *backlog;             /* per shard */
    struct op_backlog_memo *backlog_memo; /* per shard, lane 0's between polls */
    _Atomic int lanes_up;                 /* lanes whose last contact with Redis succeeded */
    _Atomic bool last_ok;                 /* the latest contact of any lane succeeded */
    struct writer_stats stats;
};

void job_release(struct job *j)
{
    for (int i = 0; i < j->nitems; i++) {
        op_free(j->items[i].value);
        j->items[i].value = NULL;
    }
}

struct writer_stats *writer_stats(struct writer *w)
{
    return &w->stats;
}

bool writer_overloaded(struct writer *w, uint32_t shard)
{
    return atomic_load_explicit(&w->backlog[shard], memory_order_relaxed) > w->cfg.max_lag;
}

int64_t writer_backlog(struct writer *w, uint32_t shard)
{
    return atomic_load_explicit(&w->backlog[shard], memory_order_relaxed);
}

bool writer_redis_ok(struct writer *w)
{
    /* The latest contact, not "any lane up": a lane that has not tried since
     * Redis went away still counts as up, so /healthz would answer 200
     * after requests on another lane had already failed. */
    return atomic_load(&w->last_ok);
}

/* Records whether lane l can talk to Redis; logs the transitions. */
static void lane_set_up(struct lane *l, bool up)
{
    /* Written only when it changes: the lanes share this line. */
    if (atomic_load_explicit(&l->w->last_ok, memory_order_relaxed) != up)
        atomic_store(&l->w->last_ok, up);
    bool was = atomic_exchange(&l->up, up);
    if (was == up)
        return;
    atomic_fetch_add(&l->w->lanes_up, up ? 1 : -1);
    if (up)
        op_info("redis_available", "lane=%d host=%s reconnects=%llu", l->index, l->redis.url.host,
                (unsigned long long)l->redis.reconnects);
    else
        op_error("redis_unavailable", "lane=%d err=\"%s\"", l->index, l->redis.errstr);
}

/* Marks every still-pending item of the jobs in list with st and completes
 * the jobs. */
static void complete_all(struct job *list, enum item_status st)
{
    while (list) {
        struct job *next = list->next;
        for (int i = 0; i < list->nitems; i++)
            if (list->items[i].status == ITEM_PENDING)
                list->items[i].status = st;
        list->done(list);
        list = next;
    }
}

void writer_submit(struct writer *w, struct job *j)
{
    for (int i = 0; i < j->nitems; i++)
        j->items[i].status = ITEM_PENDING;
    j->next = NULL;
    pthread_mutex_lock(&w->mu);
    if (w->stopping) {
        pthread_mutex_unlock(&w->mu);
        complete_all(j, ITEM_SHUTTING_DOWN);
        return;
    }
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    if (w->idle > 0)
        pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Gets a fresh id block when the current one is used up. 0 or -1. */
static int ensure_id_block(struct lane *l)
{
    if (l->id_block != 0 && l->id_next < (UINT64_C(1) << ID_BLOCK_BITS))
        return 0;
    struct redisReply *rep = op_redis_cmdf(&l->redis, "INCR %s", ID_BLOCK_KEY);
    if (!rep)
        return -1;
    long long b = op_reply_int(rep);
    int ok = op_reply_type(rep) == OP_REPLY_INTEGER && b > 0 && b < (1LL << (63 - ID_BLOCK_BITS));
    op_reply_free(rep);
    if (!ok)
        return op_log_fail("id_block_failed", "key=%s", ID_BLOCK_KEY);
    l->id_block = (uint64_t)b;
    l->id_next = 0;
    op_info("id_block", "block=%lld", b);
    return 0;
}

/* Why 1000 (rule 1 of shared/backlog.h: a backlog up to this is counted
 * exactly, whatever XINFO's `lag` says): an orders entry is one order of a
 * few hundred bytes, so 1000 of them are ~200 KB read inside Redis, well
 * under a millisecond per poll; above it the high-water mark
 * (INGEST_MAX_LAG) is reached only with Redis' lag or the stream's length. */
#define BACKLOG_COUNT_MAX 1000

/* op_backlog_poll_orders' store: the backlog ingest acts on, per shard. */
static void store_backlog(void *ctx, uint32_t s, const struct op_backlog *b)
{
    struct writer *w = ctx;
    atomic_store_explicit(&w->backlog[s], op_backlog_total(b), memory_order_relaxed);
}

/* Polls the backlog (undelivered + pending of "matchers", shared/backlog.h)
 * of every shard in one pipelined round trip. A shard whose reply is lost
 * keeps its last value. The memo spares Redis rule 1's count of 1000
 * entries every 200 ms while a shard's backlog stays above it (measured:
 * ~1-2 ms of Redis per shard and poll, which every XADD behind it waited
 * for: the p99 of bench/ingest.sh). */
static void poll_lag(struct lane *l)
{
    op_backlog_poll_orders_memo(&l->redis, l->w->cfg.shards, OP_GROUP_MATCHERS, BACKLOG_COUNT_MAX,
                                l->w->backlog_memo, store_backlog, l->w);
}

/* Grows a lane array *v of *cap elements of size sz to hold n. 0 or -1. */
static int grow(void *v, size_t *cap, size_t n, size_t sz)
{
    if (n <= *cap)
        return 0;
    size_t c = *cap ? *cap : 16;
    while (c < n)
        c *= 2;
    void *p = op_realloc(*(void **)v, c * sz);
    if (!p)
        return -1;
    *(void **)v = p;
    *cap = c;
    return 0;
}

/* The idempotency key's hash: symbol, account and client_order_id. */
static uint32_t idem_hash(const struct op_order_msg *m)
{
    uint32_t h = op_fnv1a32(m->symbol, strlen(m->symbol));
    h = h * 31 + op_fnv1a32(m->account, strlen(m->account));
    return h * 31 + op_fnv1a32(m->client_order_id, strlen(m->client_order_id));
}

static bool same_idem(const struct op_order_msg *a, const struct op_order_msg *b)
{
    return strcmp(a->client_order_id, b->client_order_id) == 0 &&
           strcmp(a->account, b->account) == 0 && strcmp(a->symbol, b->symbol) == 0;
}

static bool has_idem(const struct item *it)
{
    return it->msg.kind == OP_MSG_NEW && it->msg.client_order_id[0];
}

/* Marks the items of entry e that repeat the client_order_id of an earlier
 * one of e (a client's retry landing in the same round): they are not
 * written and get the earlier one's answer. 0 or -1 (memory). */
static int mark_repeats(struct lane *l, const struct entry *e)
{
    size_t k = 0;
    for (size_t i = 0; i < e->n; i++)
        k += has_idem(l->order[e->first + i]);
    if (k < 2)
        return 0;
    size_t size = 4;
    while (size < 2 * k)
        size *= 2;
    if (grow(&l->seen, &l->cap_seen, size, sizeof(struct item *)) != 0)
        return -1;
    memset((void *)l->seen, 0, size * sizeof(struct item *));
    for (size_t i = 0; i < e->n; i++) {
        struct item *it = l->order[e->first + i];
        if (!has_idem(it))
            continue;
        size_t h = idem_hash(&it->msg) & (size - 1);
        while (l->seen[h] && !same_idem(&l->seen[h]->msg, &it->msg))
            h = (h + 1) & (size - 1);
        if (l->seen[h])
            it->same_as = l->seen[h];
        else
            l->seen[h] = it;
    }
    return 0;
}

/* Clears the shard → entry map of the round's entries; returns rc. */
static int forget_shards(struct lane *l, int rc)
{
    for (size_t e = 0; e < l->nents; e++)
        l->shard_ent[l->ents[e].shard] = -1;
    return rc;
}

/*
 * Assigns the round's order ids and groups its order items by shard into
 * l->ents / l->order, keeping their order (a request's orders of one shard
 * stay in request order). Returns 0, or -1 (Redis for an id block, memory).
 */
static int group_round(struct lane *l, struct job *list)
{
    size_t total = 0;
    l->nents = 0;
    for (struct job *j = list; j; j = j->next)
        for (int i = 0; i < j->nitems; i++) {
            struct item *it = &j->items[i];
            if (it->kind != ITEM_ORDER)
                continue;
            it->same_as = NULL;
            it->dropped = false;
            if (it->msg.kind == OP_MSG_NEW) {
                if (ensure_id_block(l) != 0)
                    return forget_shards(l, -1);
                it->msg.order_id = (l->id_block << ID_BLOCK_BITS) | l->id_next++;
            }
            int32_t e = l->shard_ent[it->shard];
            if (e < 0) {
                if (grow(&l->ents, &l->cap_ents, l->nents + 1, sizeof(*l->ents)) != 0)
                    return forget_shards(l, op_log_fail("out_of_memory", "what=round entries"));
                e = l->shard_ent[it->shard] = (int32_t)l->nents++;
                l->ents[e] = (struct entry){.shard = it->shard};
            }
            l->ents[e].n++;
            total++;
        }
    if (grow(&l->order, &l->cap_order, total, sizeof(struct item *)) != 0)
        return forget_shards(l, op_log_fail("out_of_memory", "what=round items=%zu", total));
    for (size_t e = 0, at = 0; e < l->nents; e++) {
        l->ents[e].first = at;
        at += l->ents[e].n;
    }
    for (struct job *j = list; j; j = j->next)
        for (int i = 0; i < j->nitems; i++) {
            struct item *it = &j->items[i];
            if (it->kind != ITEM_ORDER)
                continue;
            struct entry *en = &l->ents[l->shard_ent[it->shard]];
            l->order[en->first + en->placed++] = it;
        }
    forget_shards(l, 0);
    for (size_t e = 0; e < l->nents; e++)
        if (mark_repeats(l, &l->ents[e]) != 0)
            return op_log_fail("out_of_memory", "what=round repeats");
    return 0;
}

/* The items of e that are written: not repeats, not known duplicates. */
static bool written(const struct item *it)
{
    return !it->same_as && !it->dropped;
}

/*
 * Queues the script call writing entry e (its written items only).
 * Returns 1 when queued, 0 when nothing of e is left to write, -1 on a
 * failure (memory or the connection).
 */
static int send_entry(struct lane *l, const struct entry *e)
{
    struct writer *w = l->w;
    size_t n = 0, k = 0;
    for (size_t i = 0; i < e->n; i++) {
        const struct item *it = l->order[e->first + i];
        n += written(it);
        k += written(it) && has_idem(it);
    }
    if (n == 0)
        return 0;
    if (grow(&l->msgs, &l->cap_msgs, n, sizeof(const struct op_order_msg *)) != 0)
        return op_log_fail("out_of_memory", "what=entry inputs=%zu", n);
    for (size_t i = 0, j = 0; i < e->n; i++) {
        const struct item *it = l->order[e->first + i];
        if (written(it))
            l->msgs[j++] = &it->msg;
    }
    op_buf_reset(&l->enc);
    op_buf_reset(&l->text);
    if (op_codec_encode_orders(&l->enc, l->msgs, n) != 0)
        return -1;
    /* texts: numkeys, stream, seq key, idem keys, ttl, fields, ids */
    if (op_buf_printf(&l->text, "%zu", 2 + k) != 0 || op_buf_append(&l->text, "", 1) != 0)
        return -1;
    char stream[OP_KEY_MAX], seq[OP_KEY_MAX], ttl[16];
    op_key_orders(stream, e->shard);
    op_key_oseq(seq, e->shard);
    snprintf(ttl, sizeof(ttl), "%d", w->cfg.idempotency_ttl_s);
    for (size_t i = 0; i < e->n; i++) {
        const struct item *it = l->order[e->first + i];
        /* Scoped per account and symbol (docs/ingest.md): the same id on
         * another symbol is another order, even on the same shard. Neither
         * a symbol nor a client_order_id can contain ':', so the key is
         * unambiguous whatever the account name holds. */
        if (written(it) && has_idem(it) &&
            (op_buf_printf(&l->text, "idem:{%u}:%s:%s:%s", e->shard, it->msg.symbol,
                           it->msg.account, it->msg.client_order_id) != 0 ||
             op_buf_append(&l->text, "", 1) != 0))
            return -1;
    }
    if (op_codec_orders_fields(&l->text, l->msgs, n) != 0)
        return -1;
    for (size_t i = 0; i < e->n; i++) {
        const struct item *it = l->order[e->first + i];
        if (written(it) && has_idem(it) &&
            (op_buf_printf(&l->text, "%llu", (unsigned long long)it->msg.order_id) != 0 ||
             op_buf_append(&l->text, "", 1) != 0))
            return -1;
    }
    size_t argc = 3 + 2 + k + 6 + k;
    if (grow(&l->argv, &l->cap_argv, argc, sizeof(*l->argv)) != 0 ||
        grow(&l->lens, &l->cap_lens, argc, sizeof(*l->lens)) != 0)
        return op_log_fail("out_of_memory", "what=entry args=%zu", argc);
    const char *t = l->text.data;
    size_t a = 0;
#define ARG(p, len) (l->argv[a] = (p), l->lens[a] = (len), a++)
#define TEXT() (ARG(t, strlen(t)), t += strlen(t) + 1)
    ARG("EVALSHA", 7);
    ARG(l->sha, strlen(l->sha));
    TEXT(); /* numkeys */
    ARG(stream, strlen(stream));
    ARG(seq, strlen(seq));
    for (size_t i = 0; i < k; i++)
        TEXT();
    ARG(ttl, strlen(ttl));
    for (int f = 0; f < 4; f++) /* type, sym, n, ids */
        TEXT();
    ARG(l->enc.data, l->enc.len);
    for (size_t i = 0; i < k; i++)
        TEXT();
#undef TEXT
#undef ARG
    return op_redis_append(&l->redis, (int)a, l->argv, l->lens) == 0 ? 1 : -1;
}

/* Sets the status of e's written items. */
static void entry_status(struct lane *l, const struct entry *e, enum item_status st)
{
    for (size_t i = 0; i < e->n; i++) {
        struct item *it = l->order[e->first + i];
        if (written(it))
            it->status = st;
    }
}

/* Records the script's reply rep (freed) for entry e: written, refused
 * (the stream missing, an error), or some client_order_ids already known
 * (those items answered as duplicates, e->resend). -1 if rep is NULL. */
static int take_entry_reply(struct lane *l, struct entry *e, struct redisReply *rep)
{
    e->resend = false;
    if (!rep) {
        entry_status(l, e, ITEM_REDIS_DOWN);
        return -1;
    }
    int t = op_reply_type(rep);
    long long code = t == OP_REPLY_ARRAY ? op_reply_int(op_reply_at(rep, 0)) : -1;
    if (code == 1 && op_reply_type(op_reply_at(rep, 1)) == OP_REPLY_STRING) {
        entry_status(l, e, ITEM_QUEUED);
        atomic_fetch_add(&l->w->stats.entries, 1);
    } else if (code == 2) {
        entry_status(l, e, ITEM_NO_STREAM);
    } else if (code == 0) {
        const struct redisReply *d = op_reply_at(rep, 1);
        size_t nd = op_reply_count(d), key = 0;
        for (size_t i = 0, next = 0; i < e->n && next + 1 < nd; i++) {
            struct item *it = l->order[e->first + i];
            if (!written(it) || !has_idem(it))
                continue;
            if (++key != (size_t)op_reply_int(op_reply_at(d, next)))
                continue;
            const char *prev = op_reply_str(op_reply_at(d, next + 1), NULL);
            it->dropped = true;
            it->status = ITEM_DUPLICATE;
            it->msg.order_id = prev ? strtoull(prev, NULL, 10) : 0;
            next += 2;
        }
        e->resend = true;
    } else {
        const char *err = op_reply_str(rep, NULL);
        if (err && strncmp(err, "NOSCRIPT", 8) == 0 && l->noscript++ < NOSCRIPT_RETRIES) {
            /* SCRIPT FLUSH, or a Redis that lost its cache without our
             * noticing: nothing ran; load it again and resend */
            l->sha[0] = '\0';
            e->resend = true;
        } else {
            op_warn("redis_refused", "shard=%u err=\"%s\"", e->shard,
                    err ? err : "unexpected reply");
            entry_status(l, e, ITEM_REDIS_DOWN);
        }
    }
    op_reply_free(rep);
    return 0;
}

/* Records the reply of a GET item (rep freed). -1 if rep is NULL. */
static int take_get_reply(struct item *it, struct redisReply *rep)
{
    if (!rep) {
        it->status = ITEM_REDIS_DOWN;
        return -1;
    }
    size_t len;
    const char *s = op_reply_str(rep, &len);
    int t = op_reply_type(rep);
    if (t == OP_REPLY_STRING && (it->value = op_malloc(len + 1)) != NULL) {
        memcpy(it->value, s, len);
        it->value[len] = '\0';
        it->value_len = len;
        it->status = ITEM_FOUND;
    } else {
        it->status = t == OP_REPLY_NIL ? ITEM_NOT_FOUND : ITEM_REDIS_DOWN;
    }
    op_reply_free(rep);
    return 0;
}

/* Loads ENTRY_SCRIPT on the lane's connection unless it is there. 0 or -1. */
static int ensure_script(struct lane *l)
{
    if (l->sha[0] && l->sha_reconnects == l->redis.reconnects)
        return 0;
    struct redisReply *rep = op_redis_cmdf(&l->redis, "SCRIPT LOAD %s", ENTRY_SCRIPT);
    if (!rep)
        return -1;
    size_t len = 0;
    const char *sha = op_reply_str(rep, &len);
    int ok = op_reply_type(rep) == OP_REPLY_STRING && len < sizeof(l->sha);
    if (ok) {
        memcpy(l->sha, sha, len);
        l->sha[len] = '\0';
        l->sha_reconnects = l->redis.reconnects;
    } else {
        op_warn("redis_refused", "what=script_load err=\"%s\"", sha ? sha : "unexpected reply");
    }
    op_reply_free(rep);
    return ok ? 0 : -1;
}

/* Why a key of its own: WAIT waits for the replication offset of this
 * connection's last write, and an entry refused for known client_order_ids
 * writes nothing, so a round that only answers duplicates would WAIT for an
 * older offset than the original's write (made by another lane or ingest).
 * INCR of this key is a write: WAIT after it covers everything Redis had
 * written before, the original included. Only rounds with such a duplicate
 * pay it. */
#define WAIT_TOUCH_KEY "orderpipe:wait_touch:{%u}"

/* Queues WAIT min_replicas replica_timeout_ms (after INCR of the touch key
 * of shard when touch_shard >= 0). Returns the number of commands queued
 * (0 when min_replicas is 0), or -1 (connection). */
static int queue_wait(struct lane *l, long touch_shard)
{
    const struct writer_config *c = &l->w->cfg;
    if (c->min_replicas <= 0)
        return 0;
    int n = 0;
    if (touch_shard >= 0) {
        char key[OP_KEY_MAX];
        snprintf(key, sizeof(key), WAIT_TOUCH_KEY, (unsigned)touch_shard);
        if (op_redis_appendf(&l->redis, "INCR %s", key) != 0)
            return -1;
        n++;
    }
    if (op_redis_appendf(&l->redis, "WAIT %d %d", c->min_replicas, c->replica_timeout_ms) != 0)
        return -1;
    return n + 1;
}

/* Reads the replies queue_wait queued (nq of them; the last is WAIT's)
 * into l->acked (-1 for anything but an integer) and observes WAIT's extra
 * time since t0. 0, or -1 when the connection failed. */
static int read_wait(struct lane *l, int nq, const struct timespec *t0)
{
    for (int i = 0; i < nq; i++) {
        struct redisReply *rep = op_redis_next_reply(&l->redis);
        if (!rep)
            return -1;
        if (i == nq - 1) {
            l->acked = op_reply_type(rep) == OP_REPLY_INTEGER ? op_reply_int(rep) : -1;
            if (l->acked < 0)
                op_warn("redis_refused", "what=wait err=\"%s\"",
                        op_reply_str(rep, NULL) ? op_reply_str(rep, NULL) : "unexpected reply");
        }
        op_reply_free(rep);
    }
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    op_hist_observe(&l->w->stats.wait_us, (uint64_t)((t1.tv_sec - t0->tv_sec) * 1000000 +
                                                     (t1.tv_nsec - t0->tv_nsec) / 1000));
    return 0;
}

/* With min_replicas set: when the round's WAIT did not report that many
 * replicas (or never answered), turns every item answered as written
 * (queued or duplicate) into ITEM_REPL_TIMEOUT, and counts the round. */
static void check_replicas(struct lane *l)
{
    const struct writer_config *c = &l->w->cfg;
    if (c->min_replicas <= 0 || l->acked >= c->min_replicas)
        return;
    size_t hit = 0;
    for (size_t e = 0; e < l->nents; e++)
        for (size_t i = 0; i < l->ents[e].n; i++) {
            struct item *it = l->order[l->ents[e].first + i];
            if (it->status == ITEM_QUEUED || it->status == ITEM_DUPLICATE) {
                it->status = ITEM_REPL_TIMEOUT;
                hit++;
            }
        }
    if (hit == 0)
        return;
    atomic_fetch_add(&l->w->stats.repl_short, 1);
    op_warn("replication_timeout",
            "lane=%d replicas=%lld wanted=%d timeout_ms=%d items=%zu note=\"written on the primary "
            "only: answered 503\"",
            l->index, l->acked, c->min_replicas, c->replica_timeout_ms, hit);
}

/* Gives each repeat the answer of the item it repeats, and counts the
 * round's outcomes. */
static void settle_round(struct lane *l)
{
    struct writer_stats *st = &l->w->stats;
    for (size_t e = 0; e < l->nents; e++) {
        const struct entry *en = &l->ents[e];
        for (size_t i = 0; i < en->n; i++) {
            struct item *it = l->order[en->first + i];
            if (it->same_as) {
                const struct item *o = it->same_as;
                bool ok = o->status == ITEM_QUEUED || o->status == ITEM_DUPLICATE;
                it->status = ok ? ITEM_DUPLICATE : o->status;
                if (ok)
                    it->msg.order_id = o->msg.order_id;
            }
            if (it->status == ITEM_QUEUED)
                atomic_fetch_add(&st->orders_queued, 1);
            else if (it->status == ITEM_DUPLICATE)
                atomic_fetch_add(&st->duplicates, 1);
            else if (it->status == ITEM_REPL_TIMEOUT)
                atomic_fetch_add(&st->repl_timeouts, 1);
            else
                atomic_fetch_add(&st->redis_errors, 1);
        }
        if (en->n)
            op_hist_observe_size(&st->entry_items, en->n);
    }
}

/* Queues the script call of every entry marked resend (every entry when
 * all), marking those it queued. Returns how many, or -1 (connection). */
static int queue_entries(struct lane *l, bool all)
{
    int n = 0;
    for (size_t e = 0; e < l->nents; e++) {
        struct entry *en = &l->ents[e];
        if (!all && !en->resend)
            continue;
        int rc = send_entry(l, en);
        if (rc < 0)
            return -1;
        en->queued = rc == 1;
        n += rc;
    }
    return n;
}

/* Reads the replies of the entries queue_entries queued. 0 or -1. */
static int read_entries(struct lane *l)
{
    for (size_t e = 0; e < l->nents; e++) {
        struct entry *en = &l->ents[e];
        if (en->queued && take_entry_reply(l, en, op_redis_next_reply(&l->redis)) != 0)
            return -1;
        en->queued = false;
    }
    return 0;
}

/* The shard of an item of the round that Redis answered as a duplicate of
 * an earlier write, or -1. */
static long dropped_shard(const struct lane *l)
{
    for (size_t e = 0; e < l->nents; e++)
        for (size_t i = 0; i < l->ents[e].n; i++)
            if (l->order[l->ents[e].first + i]->dropped)
                return (long)l->ents[e].shard;
    return -1;
}

/*
 * One round: ids, one entry per shard, one pipeline of every entry's
 * script call, the round's GETs and (with min_replicas) one WAIT, replies,
 * completions for the jobs in list. Entries in which Redis found known
 * client_order_ids are sent again without those orders (a client's retry:
 * rare); each pass drops at least one order, so this ends; such a round
 * then WAITs once more, after a write (WAIT_TOUCH_KEY), so that its
 * duplicates' originals are covered too. With min_replicas, what WAIT did
 * not confirm is answered ITEM_REPL_TIMEOUT (check_replicas).
 */
static void run_round(struct lane *l, struct job *list)
{
    struct writer *w = l->w;
    int n = 0, nw = 0;
    l->acked = -1;

    if (op_redis_ensure(&l->redis) != 0 || ensure_id_block(l) != 0 || ensure_script(l) != 0) {
        lane_set_up(l, false);
        complete_all(list, ITEM_REDIS_DOWN);
        return;
    }
    lane_set_up(l, true);
    l->noscript = 0;
    /* ids and entries first: the id block may need a round trip of its own */
    if (group_round(l, list) != 0) {
        complete_all(list, ITEM_REDIS_DOWN);
        return;
    }
    struct timespec ts0;
    clock_gettime(CLOCK_MONOTONIC, &ts0);
    if ((n = queue_entries(l, true)) < 0)
        goto lost;
    for (struct job *j = list; j; j = j->next)
        for (int i = 0; i < j->nitems; i++)
            if (j->items[i].kind == ITEM_GET) {
                if (op_redis_appendf(&l->redis, "GET %s", j->items[i].key) != 0)
                    goto lost;
                n++;
            }
    /* one WAIT per round, after all of its writes, in the same pipeline */
    if (l->nents > 0 && (nw = queue_wait(l, -1)) < 0)
        goto lost;
    n += nw;
    if (read_entries(l) != 0)
        goto lost;
    for (struct job *j = list; j; j = j->next)
        for (int i = 0; i < j->nitems; i++)
            if (j->items[i].kind == ITEM_GET &&
                take_get_reply(&j->items[i], op_redis_next_reply(&l->redis)) != 0)
                goto lost;
    struct timespec ts1;
    clock_gettime(CLOCK_MONOTONIC, &ts1);
    if (nw > 0 && read_wait(l, nw, &ts1) != 0)
        goto lost;
    if (nw > 0)
        clock_gettime(CLOCK_MONOTONIC, &ts1);
    op_hist_observe(&w->stats.round_us, (uint64_t)((ts1.tv_sec - ts0.tv_sec) * 1000000 +
                                                   (ts1.tv_nsec - ts0.tv_nsec) / 1000));
    op_hist_observe_size(&w->stats.batch_items, (uint64_t)n);
    atomic_fetch_add(&w->stats.rounds, 1);
    int again;
    bool resent = false;
    while ((again = ensure_script(l) == 0 ? queue_entries(l, false) : -1) > 0) {
        resent = true;
        if (read_entries(l) != 0)
            goto lost;
    }
    if (again < 0)
        goto lost;
    long touch = nw > 0 ? dropped_shard(l) : -1;
    if (nw > 0 && (resent || touch >= 0)) {
        /* rare (a retry answered as a duplicate, NOSCRIPT): writes after
         * the first WAIT, or an original written elsewhere (WAIT_TOUCH_KEY) */
        struct timespec tw;
        clock_gettime(CLOCK_MONOTONIC, &tw);
        if ((nw = queue_wait(l, touch)) < 0 || read_wait(l, nw, &tw) != 0)
            goto lost;
    }
    check_replicas(l);
    settle_round(l);
    complete_all(list, ITEM_REDIS_DOWN); /* nothing pending is left; completes the jobs */
    return;
lost:
    op_error("redis_lost", "lane=%d err=\"%s\" commands=%d", l->index, l->redis.errstr, n);
    lane_set_up(l, false);
    l->acked = -1; /* a WAIT read before a later loss does not cover the later writes */
    check_replicas(l);
    settle_round(l);
    complete_all(list, ITEM_REDIS_DOWN);
}

/* Takes up to ROUND_MAX_ITEMS items' worth of jobs off the non-empty queue
 * (always at least one job, however large). Called with mu held. */
static struct job *take_jobs(struct writer *w)
{
    struct job *first = w->head, *last = first;
    int items = first->nitems;
    for (struct job *j = first->next; j && items + j->nitems <= ROUND_MAX_ITEMS; j = j->next) {
        items += j->nitems;
        last = j;
    }
    w->head = last->next;
    if (!w->head)
        w->tail = NULL;
    last->next = NULL;
    return first;
}

static void *writer_main(void *arg)
{
    struct lane *l = arg;
    struct writer *w = l->w;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !w->stopping) {
            struct timespec dl;
            clock_gettime(CLOCK_REALTIME, &dl);
            dl.tv_nsec += LAG_POLL_MS * 1000000L;
            if (dl.tv_nsec >= 1000000000L)
                dl.tv_sec++, dl.tv_nsec -= 1000000000L;
            w->idle++;
            pthread_cond_timedwait(&w->cv, &w->mu, &dl);
            w->idle--;
            if (l->index == 0 && op_now_ms() >= l->next_lag_poll_ms)
                break;
        }
        if (!w->head && w->stopping)
            break;
        struct job *list = w->head ? take_jobs(w) : NULL;
        if (w->head && w->idle > 0) /* more than one round's worth: wake another lane */
            pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        if (list)
            run_round(l, list);
        if (l->index == 0 && op_now_ms() >= l->next_lag_poll_ms) {
            l->next_lag_poll_ms = op_now_ms() + LAG_POLL_MS;
            if (op_redis_ensure(&l->redis) == 0)
                poll_lag(l);
            lane_set_up(l, l->redis.ctx != NULL);
        }
        pthread_mutex_lock(&w->mu);
        uint64_t rc = 0;
        for (int i = 0; i < w->nlanes; i++)
            rc += w->lanes[i].redis.reconnects;
        atomic_store(&w->stats.reconnects, rc);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Frees what a lane allocated (not its connection). */
static void lane_release(struct lane *l)
{
    op_buf_release(&l->enc);
    op_buf_release(&l->text);
    op_free(l->shard_ent);
    op_free(l->order);
    op_free(l->ents);
    op_free(l->seen);
    op_free((void *)l->msgs);
    op_free((void *)l->argv);
    op_free(l->lens);
}

struct writer *writer_start(const struct writer_config *cfg)
{
    struct writer *w = op_calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->cfg = *cfg;
    w->nlanes = cfg->lanes > 0 ? cfg->lanes : 1;
    w->backlog = op_calloc(cfg->shards, sizeof(*w->backlog));
    w->backlog_memo = op_calloc(cfg->shards, sizeof(*w->backlog_memo));
    w->lanes = op_calloc((size_t)w->nlanes, sizeof(*w->lanes));
    if (!w->backlog || !w->backlog_memo || !w->lanes) {
        fprintf(stderr, "ingest: out of memory\n");
        goto fail;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    for (int i = 0; i < w->nlanes; i++) {
        struct lane *l = &w->lanes[i];
        l->w = w;
        l->index = i;
        op_buf_init(&l->enc);
        op_buf_init(&l->text);
        if (!(l->shard_ent = op_malloc(cfg->shards * sizeof(*l->shard_ent)))) {
            fprintf(stderr, "ingest: out of memory\n");
            goto fail;
        }
        for (uint32_t s = 0; s < cfg->shards; s++)
            l->shard_ent[s] = -1;
        if (op_redis_init(&l->redis, cfg->redis_url, cfg->timeout_ms) != 0) {
            fprintf(stderr, "ingest: %s (REDIS_URL)\n", l->redis.errstr);
            goto fail;
        }
        if (op_redis_ensure(&l->redis) == 0)
            lane_set_up(l, true);
        else if (i == 0)
            op_warn("redis_unavailable", "err=\"%s\" note=\"answering 503 until it is back\"",
                    l->redis.errstr);
    }
    for (int i = 0; i < w->nlanes; i++) {
        if (pthread_create(&w->lanes[i].thread, NULL, writer_main, &w->lanes[i]) != 0) {
            fprintf(stderr, "ingest: cannot start redis writer thread %d\n", i);
            w->nlanes = i; /* stop the ones started */
            writer_stop(w);
            writer_free(w);
            return NULL;
        }
    }
    return w;
fail:
    if (w->lanes)
        for (int i = 0; i < w->nlanes; i++) {
            op_redis_release(&w->lanes[i].redis);
            lane_release(&w->lanes[i]);
        }
    op_free(w->lanes);
    op_free(w->backlog);
    op_free(w->backlog_memo);
    op_free(w);
    return NULL;
}

void writer_stop(struct writer *w)
{
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->nlanes; i++)
        pthread_join(w->lanes[i].thread, NULL);
}

void writer_free(struct writer *w)
{
    for (int i = 0; i < w->nlanes; i++) {
        op_redis_release(&w->lanes[i].redis);
        lane_release(&w->lanes[i]);
    }
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    op_free(w->lanes);
    op_free(w->backlog);
    op_free(w->backlog_memo);
    op_free(w);
}

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

/* Why 4096: one pipeline of that many XADDs is ~1 MB and ~10 ms of Redis
 * work; larger rounds only add latency to the first request in them. */
#define ROUND_MAX_ITEMS 4096
/* How often the consumer-group backlog of every shard is polled. */
#define LAG_POLL_MS 200

/* Atomically: if the client_order_id key exists, answer its order id;
 * else XADD the order and remember the id for ARGV[4] seconds. Both keys
 * carry the shard's hash tag, so this also works on a Redis Cluster. */
static const char IDEM_SCRIPT[] = "local prev = redis.call('GET', KEYS[1]) "
                                  "if prev then return {0, prev} end "
                                  "local id = redis.call('XADD', KEYS[2], 'NOMKSTREAM', '*', "
                                  "'type', 'new', 'sym', ARGV[1], 'm', ARGV[2]) "
                                  "if not id then return {2, ''} end "
                                  "redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4]) "
                                  "return {1, id}";

/* One writer thread with its own Redis connection. Several lanes take jobs
 * from the one queue, so that while a pipeline waits for Redis (with
 * appendfsync always, for its fsync) the next one is already being sent:
 * Redis then fsyncs the commands of all lanes together. */
struct lane {
    struct writer *w; /* (ref) */
    int index;        /* 0 also polls the backlog */
    pthread_t thread;
    struct op_redis redis;
    struct op_buf enc; /* encoded messages of the round */
    uint64_t id_block; /* 0 = none yet */
    uint64_t id_next;  /* next n within the block */
    int64_t next_lag_poll_ms;
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
    return atomic_load(&w->lanes_up) > 0;
}

/* Records whether lane l can talk to Redis; logs the transitions. */
static void lane_set_up(struct lane *l, bool up)
{
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

/* Appends the command of one item to the pipeline. 0 or -1 (connection). */
static int append_item(struct lane *l, struct item *it, char *key, size_t off, size_t len)
{
    struct writer *w = l->w;
    const char *type = op_msg_kind_name(it->msg.kind);
    if (it->kind == ITEM_GET)
        return op_redis_appendf(&l->redis, "GET %s", it->key);
    op_key_orders(key, it->shard);
    if (it->msg.kind == OP_MSG_NEW && it->msg.client_order_id[0]) {
        char idem[160], id[24], ttl[16];
        /* Scoped per account and symbol (docs/ingest.md): the same id on
         * another symbol is another order, even on the same shard. Neither
         * a symbol nor a client_order_id can contain ':', so the key is
         * unambiguous whatever the account name holds. */
        snprintf(idem, sizeof(idem), "idem:{%u}:%s:%s:%s", it->shard, it->msg.symbol,
                 it->msg.account, it->msg.client_order_id);
        snprintf(id, sizeof(id), "%llu", (unsigned long long)it->msg.order_id);
        snprintf(ttl, sizeof(ttl), "%d", w->cfg.idempotency_ttl_s);
        return op_redis_appendf(&l->redis, "EVAL %s 2 %s %s %s %b %s %s", IDEM_SCRIPT, idem, key,
                                it->msg.symbol, l->enc.data + off, len, id, ttl);
    }
    return op_redis_appendf(&l->redis, "XADD %s NOMKSTREAM * type %s sym %s m %b", key, type,
                            it->msg.symbol, l->enc.data + off, len);
}

/* Records the reply of one item. Returns 0, or -1 if rep is NULL (lost). */
static int take_reply(struct writer *w, struct item *it, struct redisReply *rep)
{
    if (!rep) {
        it->status = ITEM_REDIS_DOWN;
        return -1;
    }
    int t = op_reply_type(rep);
    if (it->kind == ITEM_GET) {
        size_t len;
        const char *s = op_reply_str(rep, &len);
        if (t == OP_REPLY_STRING && (it->value = op_malloc(len + 1)) != NULL) {
            memcpy(it->value, s, len);
            it->value[len] = '\0';
            it->value_len = len;
            it->status = ITEM_FOUND;
        } else {
            it->status = t == OP_REPLY_NIL ? ITEM_NOT_FOUND : ITEM_REDIS_DOWN;
        }
    } else if (t == OP_REPLY_STRING) { /* XADD id */
        it->status = ITEM_QUEUED;
    } else if (t == OP_REPLY_NIL) { /* NOMKSTREAM: no such stream */
        it->status = ITEM_NO_STREAM;
    } else if (t == OP_REPLY_ARRAY && op_reply_count(rep) == 2) { /* the idempotency script */
        long long code = op_reply_int(op_reply_at(rep, 0));
        if (code == 1) {
            it->status = ITEM_QUEUED;
        } else if (code == 0) {
            it->status = ITEM_DUPLICATE;
            const char *prev = op_reply_str(op_reply_at(rep, 1), NULL);
            it->msg.order_id = prev ? strtoull(prev, NULL, 10) : 0;
        } else {
            it->status = ITEM_NO_STREAM;
        }
    } else {
        const char *err = op_reply_str(rep, NULL);
        op_warn("redis_refused", "err=\"%s\"", err ? err : "unexpected reply");
        it->status = ITEM_REDIS_DOWN;
    }
    switch (it->status) {
    case ITEM_QUEUED:
        atomic_fetch_add(&w->stats.orders_queued, 1);
        break;
    case ITEM_DUPLICATE:
        atomic_fetch_add(&w->stats.duplicates, 1);
        break;
    case ITEM_REDIS_DOWN:
    case ITEM_NO_STREAM:
        atomic_fetch_add(&w->stats.redis_errors, 1);
        break;
    default:
        break;
    }
    op_reply_free(rep);
    return 0;
}

/* One round: ids, encoding, pipeline, replies, completions for the jobs in list. */
static void run_round(struct lane *l, struct job *list)
{
    struct writer *w = l->w;
    char key[OP_KEY_MAX];
    int n = 0;

    if (op_redis_ensure(&l->redis) != 0 || ensure_id_block(l) != 0) {
        lane_set_up(l, false);
        complete_all(list, ITEM_REDIS_DOWN);
        return;
    }
    lane_set_up(l, true);
    /* ids and encodings first: the id block may need a round trip of its own */
    op_buf_reset(&l->enc);
    for (struct job *j = list; j; j = j->next) {
        for (int i = 0; i < j->nitems; i++) {
            struct item *it = &j->items[i];
            if (it->kind != ITEM_ORDER)
                continue;
            if (it->msg.kind == OP_MSG_NEW) {
                if (ensure_id_block(l) != 0) {
                    complete_all(list, ITEM_REDIS_DOWN);
                    return;
                }
                it->msg.order_id = (l->id_block << ID_BLOCK_BITS) | l->id_next++;
            }
            it->enc_off = l->enc.len;
            if (op_codec_encode_order(&l->enc, &it->msg) != 0) {
                complete_all(list, ITEM_REDIS_DOWN);
                return;
            }
            it->enc_len = l->enc.len - it->enc_off;
        }
    }
    struct timespec ts0;
    clock_gettime(CLOCK_MONOTONIC, &ts0);
    for (struct job *j = list; j; j = j->next) {
        for (int i = 0; i < j->nitems; i++) {
            struct item *it = &j->items[i];
            if (append_item(l, it, key, it->enc_off, it->enc_len) != 0)
                goto lost;
            n++;
        }
    }
    for (struct job *j = list; j; j = j->next) {
        for (int i = 0; i < j->nitems; i++) {
            if (take_reply(w, &j->items[i], op_redis_next_reply(&l->redis)) != 0)
                goto lost;
        }
    }
    struct timespec ts1;
    clock_gettime(CLOCK_MONOTONIC, &ts1);
    op_hist_observe(&w->stats.round_us, (uint64_t)((ts1.tv_sec - ts0.tv_sec) * 1000000 +
                                                   (ts1.tv_nsec - ts0.tv_nsec) / 1000));
    op_hist_observe_size(&w->stats.batch_items, (uint64_t)n);
    atomic_fetch_add(&w->stats.rounds, 1);
    complete_all(list, ITEM_REDIS_DOWN); /* nothing pending is left; completes the jobs */
    return;
lost:
    op_error("redis_lost", "lane=%d err=\"%s\" items=%d", l->index, l->redis.errstr, n);
    lane_set_up(l, false);
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
        for (int i = 0; i < w->nlanes; i++)
            op_redis_release(&w->lanes[i].redis);
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
        op_buf_release(&w->lanes[i].enc);
    }
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    op_free(w->lanes);
    op_free(w->backlog);
    op_free(w->backlog_memo);
    op_free(w);
}

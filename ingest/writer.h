/* The Redis writer: one thread that pipelines the commands of many requests per round trip. */
#ifndef INGEST_WRITER_H
#define INGEST_WRITER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "shared/msg.h"
#include "shared/metrics.h"

/*
 * HTTP threads never talk to Redis. They validate a request into a job of
 * items and hand it to the writer (writer_submit), then suspend the
 * connection. A writer lane takes every job queued since its last round,
 * assigns order ids, and groups the round's inputs by shard: one orders:{S}
 * entry per shard per round holds all of them in order (group commit:
 * Redis pays one command, one stream insert and one AOF record per entry,
 * not per order). It sends every entry (one script call each, which also
 * checks the client_order_ids) as one pipeline, reads the replies, records
 * each item's outcome and calls the job's done callback (which resumes the
 * connection). So N concurrent requests cost one round trip, not N.
 *
 *   HTTP threads ──submit──▶ [queue] ──▶ writer: ids, encode, pipeline ──▶ Redis
 *          ▲                                      │
 *          └──────────── done(job) ◀── replies ───┘
 */

enum item_kind {
    ITEM_ORDER = 1, /* a new/cancel/amend input for orders:{S} */
    ITEM_GET = 2,   /* GET key (the published book), result in value */
};

enum item_status {
    ITEM_PENDING = 0,
    ITEM_QUEUED,        /* XADD acknowledged: 202 */
    ITEM_DUPLICATE,     /* client_order_id seen before: 200 with the original id */
    ITEM_REDIS_DOWN,    /* Redis unreachable, erroring or timing out: 503, nothing queued */
    ITEM_NO_STREAM,     /* the shard's stream does not exist: 503, setup not run */
    ITEM_FOUND,         /* ITEM_GET: value holds the string */
    ITEM_NOT_FOUND,     /* ITEM_GET: no such key */
    ITEM_SHUTTING_DOWN, /* submitted after writer_stop: 503, nothing queued */
    ITEM_REPL_TIMEOUT,  /* written on the primary (or a duplicate), but WAIT saw fewer than
                           min_replicas replicas take it in time: 503 replication_timeout; it
                           may be matched, or lost by a failover */
};

struct item {
    enum item_kind kind;
    uint32_t shard;
    struct op_order_msg msg; /* ITEM_ORDER: the message; order_id is set by the
                                writer for NEW orders */
    char key[96];            /* ITEM_GET: the key */
    enum item_status status; /* set by the writer */
    char *value;             /* ITEM_GET result, malloc'd; freed by job_release */
    size_t value_len;
    /* writer-private: */
    struct item *same_as; /* an earlier item of the same entry with the same
                             client_order_id: answered as its duplicate */
    bool dropped;         /* Redis already knew its client_order_id: not written */
};

struct job;
typedef void (*job_done_fn)(struct job *j);

/* A unit of work: the items of one HTTP request. Owned by the request. */
struct job {
    struct item *items; /* (ref) the request's array */
    int nitems;
    job_done_fn done; /* called once, on the writer thread, when all items have a status */
    void *arg;        /* for done */
    struct job *next; /* queue link, writer-owned while queued */
};

/* Frees what the writer attached to items (GET values). */
void job_release(struct job *j);

struct writer_stats {
    _Atomic uint64_t orders_queued; /* inputs in entries Redis acknowledged */
    _Atomic uint64_t entries;       /* orders:{S} entries written */
    _Atomic uint64_t duplicates;    /* client_order_id repeats answered 200 */
    _Atomic uint64_t redis_errors;  /* items answered 503 */
    _Atomic uint64_t rounds;        /* pipelines sent */
    _Atomic uint64_t reconnects;
    _Atomic uint64_t repl_timeouts; /* items answered 503 replication_timeout */
    _Atomic uint64_t repl_short;    /* rounds whose WAIT saw fewer than min_replicas */
    struct op_hist wait_us;         /* WAIT's extra time: last write reply → WAIT reply */
    struct op_hist round_us;        /* round-trip time of a pipeline */
    struct op_hist batch_items;     /* commands per pipeline */
    struct op_hist entry_items;     /* inputs per orders:{S} entry */
};

struct writer_config {
    const char *redis_url;
    int timeout_ms;
    uint32_t shards;
    int64_t max_lag;        /* backpressure high-water mark, orders per shard */
    int idempotency_ttl_s;  /* how long a client_order_id is remembered */
    int lanes;              /* writer threads, each with its own connection */
    int min_replicas;       /* INGEST_MIN_REPLICAS: 0 = no WAIT; else a 202 needs WAIT to
                               report at least this many replicas */
    int replica_timeout_ms; /* INGEST_REPLICA_TIMEOUT_MS: WAIT's timeout, < timeout_ms */
};

struct writer;

/* Creates the writer and starts its thread. Returns NULL with a message on
 * stderr on failure (thread or allocation). Redis need not be up yet. */
struct writer *writer_start(const struct writer_config *cfg);

/* Queues j; thread-safe, never blocks on Redis. After writer_stop began,
 * jobs are answered at once with ITEM_SHUTTING_DOWN. */
void writer_submit(struct writer *w, struct job *j);

/* 1 if shard's backlog (lag + pending of group "matchers") is above
 * max_lag as of the last check (at most ~200 ms old). Thread-safe. */
bool writer_overloaded(struct writer *w, uint32_t shard);

/* 1 if the latest contact of any lane with Redis succeeded. Thread-safe. */
bool writer_redis_ok(struct writer *w);

/* Backlog of a shard as of the last check. */
int64_t writer_backlog(struct writer *w, uint32_t shard);

struct writer_stats *writer_stats(struct writer *w);

/* Answers every queued job and stops the thread. w stays valid: jobs
 * submitted afterwards are answered at once with ITEM_SHUTTING_DOWN, so HTTP
 * threads still running can use it until the daemon is stopped. */
void writer_stop(struct writer *w);

/* Frees a stopped writer (after the HTTP daemon is gone). */
void writer_free(struct writer *w);

#endif

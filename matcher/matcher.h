/* The matcher service: configuration, statistics and the interfaces between its files. */
#ifndef OP_MATCHER_H
#define OP_MATCHER_H

#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "matcher/engine/engine.h"
#include "shared/buf.h"
#include "shared/codec.h"
#include "shared/metrics.h"
#include "shared/redis.h"
#include "shared/shard.h"
#include "shared/symbols.h"

/*
 * One process runs one worker: a single thread with one Redis connection
 * that owns any number of shards (struct part) through lease keys. The
 * files:
 *
 *   main.c        configuration, signals, metrics endpoint, the run loop
 *   worker.c      the loop: leases, heartbeat and balancing, idle waits; it
 *                 drives the shards and is never called back by them
 *   part.c        one owned shard's life cycle (part.h): every state change,
 *                 recovery one step per call, batches, held publishes
 *   publish.c     one fenced publish: build, send (MULTI/EXEC), account
 *   fence.c       the WATCH + GET + PTTL fence, pipelined behind an EXEC
 *   lease.c       the Lua scripts: lease acquire/renew/release, heartbeat,
 *                 the fenced read (a command run only while a lease is ours)
 *   marketdata.c  the aggregated book JSON of book:{S}:<SYMBOL>
 *   stats.c       the /metrics text
 *   tick.h        when an idle shard appends a tick (a pure decision)
 *
 * Includes go one way: worker.c, part.c, publish.c → part.h → fence.h,
 * matcher.h; fence.c → fence.h, matcher.h.
 *
 * docs/matcher.md describes the design; the env variables are in the README.
 */

struct matcher_config {
    const char *redis_url;        /* REDIS_URL */
    int redis_timeout_ms;         /* REDIS_TIMEOUT_MS: must exceed block_ms */
    uint32_t shards;              /* ORDER_SHARDS */
    char name[96];                /* MATCHER_NAME, or host-pid-random */
    int lease_ms;                 /* MATCHER_LEASE_MS: lease TTL */
    int batch;                    /* MATCHER_BATCH: XREADGROUP COUNT */
    int block_ms;                 /* MATCHER_BLOCK_MS: idle wait per XREAD */
    long long snapshot_every;     /* MATCHER_SNAPSHOT_EVERY: inputs between snapshots */
    int snapshot_ms;              /* MATCHER_SNAPSHOT_MS: time between snapshots */
    int book_ms;                  /* MATCHER_BOOK_MS: market data at most this often */
    int book_levels;              /* MATCHER_BOOK_LEVELS: levels per side */
    int metrics_port;             /* MATCHER_METRICS_PORT: 0 disables */
    uint32_t closed_max;          /* MATCHER_CLOSED_MAX: engine's closed-order memory */
    uint32_t max_open;            /* MAX_OPEN_ORDERS: per account per symbol, 0 = none */
    int tick_ms;                  /* MATCHER_TICK_MS: idle time before a tick, 0 = never */
    int tick_force;               /* MATCHER_TICK_FORCE (test only): tick as if an event were due */
    int min_replicas;             /* MATCHER_MIN_REPLICAS: WAIT after each publish, 0 = none */
    int replica_timeout_ms;       /* MATCHER_REPLICA_TIMEOUT_MS: that WAIT's timeout */
    const struct op_symtab *syms; /* (ref) SYMBOLS_FILE: ticks for market data */
};

/* Per-shard gauges, written by the loop, read by the metrics thread. */
struct matcher_shard_stats {
    _Atomic int owned;                /* 1 while this worker owns the shard */
    _Atomic int64_t lag;              /* group "matchers": entries not yet delivered */
    _Atomic int64_t pending;          /* group "matchers": delivered, not acknowledged */
    _Atomic int64_t backlog_orders;   /* inputs not yet processed (oseq - odone), -1 unknown */
    _Atomic int64_t snapshot_wall_ms; /* wall-clock ms of this worker's last snapshot, 0 none */
    _Atomic uint64_t open_orders;     /* resting orders in the engine */
};

struct matcher_stats {
    _Atomic uint64_t inputs;           /* inputs processed and published */
    _Atomic uint64_t reports;          /* execution reports published */
    _Atomic uint64_t trades;           /* TRADE reports published */
    _Atomic uint64_t malformed;        /* entries that could not be decoded */
    _Atomic uint64_t replayed;         /* inputs replayed (not published) in recoveries */
    _Atomic uint64_t batches;          /* batches published */
    _Atomic uint64_t fenced;           /* publishes refused by the fence (lease lost) */
    _Atomic uint64_t publish_refused;  /* publishes Redis refused whole (EXEC error), retried */
    _Atomic uint64_t lease_acquired;   /* leases taken */
    _Atomic uint64_t lease_lost;       /* leases lost (expired, taken over) */
    _Atomic uint64_t lease_released;   /* leases handed back (balance, shutdown) */
    _Atomic uint64_t recoveries;       /* shard recoveries completed */
    _Atomic uint64_t snapshots;        /* snapshots stored */
    _Atomic uint64_t deleted_pending;  /* pending entries found deleted (trimmed) */
    _Atomic uint64_t redis_errors;     /* connection failures */
    _Atomic uint64_t book_updates;     /* book:{S}:<SYMBOL> keys written */
    _Atomic uint64_t ticks;            /* tick inputs appended to orders:{S} */
    _Atomic uint64_t repl_short;       /* publishes whose WAIT saw < MATCHER_MIN_REPLICAS */
    _Atomic int live_workers;          /* matchers alive, from the heartbeat */
    _Atomic int target_shards;         /* shards this worker should own */
    _Atomic int redis_up;              /* 1 while Redis answers */
    struct op_hist batch_size;         /* inputs per published batch */
    struct op_hist batch_latency;      /* µs from read to EXEC reply */
    struct op_hist snapshot_us;        /* µs to serialise a snapshot */
    struct op_hist snapshot_bytes;     /* (size histogram, KiB) snapshot sizes */
    struct op_hist recovery_us;        /* µs of a recovery (load + replay) */
    struct op_hist wait_us;            /* µs WAIT added after a publish's EXEC reply */
    struct matcher_shard_stats *shard; /* [shards] */
};

/* --- lease.c ------------------------------------------------------------- */

/* Key names of shard s, written into buf (OP_KEY_MAX bytes). */
int lease_key(char *buf, uint32_t s); /* "lease:{S}" */
int snap_key(char *buf, uint32_t s);  /* "snap:{S}" */

/* The heartbeat set: member = worker name, score = expiry (Redis ms). */
#define MATCHER_ALIVE_KEY "matchers:alive"

/* Tries SET lease:{s} name NX PX lease_ms. Returns 1 taken, 0 held by
 * another, -1 on a Redis error. */
int lease_acquire(struct op_redis *r, uint32_t s, const char *name, int lease_ms);

/* Queues the compare-and-renew script for lease:{s} (pipelining); its reply
 * is 1 (renewed) or 0 (not ours any more). */
int lease_append_renew(struct op_redis *r, uint32_t s, const char *name, int lease_ms);

/* Deletes lease:{s} if it still holds name. Returns 1, 0 (not ours) or -1. */
int lease_release(struct op_redis *r, uint32_t s, const char *name);

/* Refreshes name in the heartbeat set with a TTL of ttl_ms, drops expired
 * members, and returns the reply: an array of the live names (the caller
 * frees it), or NULL on an error. */
struct redisReply *lease_heartbeat(struct op_redis *r, const char *name, int ttl_ms);

/* Removes name from the heartbeat set (shutdown). */
void lease_leave(struct op_redis *r, const char *name);

/*
 * Queues (pipelining) one command of argc args that Redis runs only if
 * lease:{s} holds name, atomically with that check (a Lua script). The reply
 * is the command's, or an error reply "FENCED" when the lease is not ours.
 * stream_key is declared as the script's second key.
 */
int lease_append_fenced(struct op_redis *r, uint32_t s, const char *name, const char *stream_key,
                        int argc, const char **argv);

/* 1 when rep is the fenced script's refusal. */
int lease_is_fenced(const struct redisReply *rep);

/* --- marketdata.c ---------------------------------------------------------- */

/* Upper bound of MATCHER_BOOK_LEVELS (the contract's depth). */
#define MATCHER_BOOK_LEVELS_MAX 100

/*
 * Appends the JSON of symbol's book in e to out:
 *   {"symbol":"AAPL","ts":"2026-11-21T10:00:00.000000Z","bids":[["187.25",300,2],…],"asks":[…]}
 * best level first, at most levels per side, prices formatted with tick;
 * ts is ts_ns (the event time of the last input applied) in UTC with µs.
 * Returns 0, or -1 on allocation failure.
 */
int md_book_json(const struct eng *e, const char *symbol, struct op_tick tick, uint64_t ts_ns,
                 int levels, struct op_buf *out);

/* --- stats.c --------------------------------------------------------------- */

/* Appends the Prometheus text of st (shards gauges for `shards`) to out. */
int stats_render(const struct matcher_stats *st, uint32_t shards, struct op_buf *out);

/* --- worker.c ------------------------------------------------------------- */

struct worker;

/* Returns a new worker for cfg reporting into st (both borrowed, outliving
 * it), or NULL on allocation failure. Connects lazily. */
struct worker *worker_new(const struct matcher_config *cfg, struct matcher_stats *st);

/* Runs the loop until *stop becomes non-zero, then hands every owned shard
 * back (last batch published, snapshot, lease released) and returns 0. */
int worker_run(struct worker *w, volatile sig_atomic_t *stop);

void worker_free(struct worker *w);

#endif

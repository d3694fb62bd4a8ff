/* A consumer group's backlog (undelivered + pending) that survives Redis' stale `lag`. */
#ifndef OP_BACKLOG_H
#define OP_BACKLOG_H

#include <stdint.h>

#include "shared/redis.h"
#include "shared/shard.h"
#include "shared/sid.h"

/*
 * XINFO GROUPS reports a group's `lag` (entries not yet delivered) from the
 * group's `entries-read` counter, which Redis 7.0 does not restore exactly
 * from the AOF: after restarts a fully delivered stream was seen reporting
 * a lag of 48,183 (pending 0, last-delivered-id = the last entry), and
 * ingest answered 429 on an idle pipeline. So the backlog is computed from
 * what Redis does know exactly, in one script per stream (pipelined: one
 * round trip for all shards):
 *
 *   1. the entries after the group's last-delivered-id are counted, up to
 *      count_max: at most that many → undelivered = the count (exact; 0 for
 *      a fully delivered stream, whatever `lag` says);
 *   2. more: a `lag` in count_max+1 … XLEN is consistent (an undelivered
 *      entry is never trimmed, so there cannot be more than the stream
 *      holds)                                        → undelivered = lag;
 *   3. more, and `lag` nil (unknown) or outside that range (inconsistent)
 *                                                    → undelivered = XLEN,
 *      an upper bound (trimming keeps the stream near what is not yet
 *      processed), until the group's counter is exact again (Redis makes
 *      it exact when the group reads the stream's last entry).
 *
 * Rule 1 reads up to count_max + 1 entries in full inside Redis: choose it
 * by the size of the stream's entries (0: only "is there any").
 */
struct op_backlog {
    int found;                            /* the group exists on the stream */
    int64_t pending;                      /* delivered, not acknowledged (XINFO `pending`) */
    int64_t undelivered;                  /* entries after last-delivered-id, as above;
                                             -1 with OP_BACKLOG_ORDERS (not counted) */
    int64_t redis_lag;                    /* XINFO GROUPS' `lag` as Redis reported it; -1 for nil */
    int how;                              /* which rule gave undelivered: OP_BACKLOG_* */
    char last_delivered[OP_SID_TEXT_MAX]; /* the group's last-delivered-id */
    int64_t orders; /* orders streams (op_backlog_poll_orders): the inputs not yet
                       processed, oseq:{S} - odone:{S}; -1 for another stream or when
                       the counters are inconsistent (then undelivered is counted) */
};

/*
 * What a poller remembers of one stream between polls: a last-delivered-id
 * that had more than count_max entries after it. While the group stays
 * there, rule 1's count is skipped (the answer is the same: entries after
 * it are only ever added), which is what makes a poll of a stream with a
 * large backlog cheap — rule 1 reads count_max + 1 entries in full inside
 * Redis, and Redis serves nobody else meanwhile. Zero it to start.
 */
struct op_backlog_memo {
    char over[OP_SID_TEXT_MAX]; /* "" when unknown */
};

enum {
    OP_BACKLOG_NONE = 0,        /* group or stream missing */
    OP_BACKLOG_COUNTED = 1,     /* rule 1: counted, exact */
    OP_BACKLOG_LAG = 2,         /* rule 2: Redis' lag, consistent */
    OP_BACKLOG_UPPER_BOUND = 3, /* rule 3: XLEN (lag unknown or inconsistent) */
    OP_BACKLOG_ORDERS = 4,      /* an orders stream's counters: orders exact, entries unknown */
};

/* The backlog the caller acts on: the orders in it when known, else
 * undelivered + pending entries (0 when not found). */
int64_t op_backlog_total(const struct op_backlog *b);

/*
 * Queues (pipelining) the script that measures group's backlog on stream;
 * read its reply with op_backlog_read. count_max: rule 1's bound.
 * Returns 0, or -1 when the connection failed (r->errstr).
 */
int op_backlog_append(struct op_redis *r, const char *stream, const char *group,
                      long long count_max);

/* op_backlog_append, using and meant to be followed by op_backlog_remember
 * on memo (NULL: none). */
int op_backlog_append_memo(struct op_redis *r, const char *stream, const char *group,
                           long long count_max, const struct op_backlog_memo *memo);

/* Updates memo from the backlog b just read for its stream. */
void op_backlog_remember(struct op_backlog_memo *memo, const struct op_backlog *b);

/*
 * Reads the reply queued by op_backlog_append into *out. Returns 0 (out
 * filled; found = 0 when the stream or group is missing or the reply is
 * an error), or -1 when the connection failed (out zeroed).
 */
int op_backlog_read(struct op_redis *r, struct op_backlog *out);

/*
 * Measures group's backlog on orders:{0} … orders:{shards-1} in one
 * pipelined round trip and calls store(ctx, s, &backlog) for each shard s
 * in order as its reply is read (found = 0 for a missing stream or group).
 * Returns 0, or -1 when the connection failed: the shards not stored yet
 * are skipped (their callers keep the last value).
 */
int op_backlog_poll_orders(struct op_redis *r, uint32_t shards, const char *group,
                           long long count_max,
                           void (*store)(void *ctx, uint32_t s, const struct op_backlog *b),
                           void *ctx);

/* op_backlog_poll_orders with memo[shards] (struct op_backlog_memo), kept
 * by the caller from one poll to the next. */
int op_backlog_poll_orders_memo(struct op_redis *r, uint32_t shards, const char *group,
                                long long count_max, struct op_backlog_memo *memo,
                                void (*store)(void *ctx, uint32_t s, const struct op_backlog *b),
                                void *ctx);

#endif

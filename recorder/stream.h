/* The recorder's Redis side: read fills:{S} in the "recorders" group, reclaim, acknowledge, trim.
 */
#ifndef REC_STREAM_H
#define REC_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "recorder/batch.h"
#include "recorder/stats.h"
#include "shared/redis.h"
#include "shared/shard.h"

struct rec_stream_config {
    const char *redis_url;
    int timeout_ms;      /* REDIS_TIMEOUT_MS: connect and command timeout */
    uint32_t shards;     /* ORDER_SHARDS */
    const char *name;    /* consumer name in the group (RECORDER_NAME) */
    int claim_idle_ms;   /* RECORDER_CLAIM_IDLE_MS; 0 disables XAUTOCLAIM */
    long long retain_ms; /* RECORDER_FILLS_RETAIN_MS: keep entries this young (feed resume) */
};

/*
 * One connection (one thread). Reading starts in the "pending" phase: the
 * consumer's own pending list (ID 0 onwards per shard: entries delivered
 * before a crash or a lost reply), then switches to new entries (">").
 */
struct rec_stream {
    struct rec_stream_config cfg;
    struct op_redis redis;
    struct rec_stats *stats;    /* (ref) */
    char (*keys)[OP_KEY_MAX];   /* fills:{S} per shard */
    char (*cursor)[REC_ID_MAX]; /* pending phase: last id read per shard */
    char (*claim)[REC_ID_MAX];  /* XAUTOCLAIM cursor per shard */
    unsigned char *drained;     /* pending phase: shard's own list read to the end */
    int pending_phase;          /* 1 while reading the own pending list */
    int rescan;                 /* a reply was lost: re-read the pending list when idle */
    const char **argv;          /* reused argument vectors */
    size_t *lens;
    size_t argv_cap;
    int connected_before;   /* for the reconnect log line */
    int64_t refused_log_ms; /* when a refused XREADGROUP was last logged */
    uint32_t busy_shards;   /* streams that returned entries in the last read */
    size_t per_entry;       /* estimated reports per entry (the largest lately seen) */
};

/* Prepares s (no connection yet). Returns 0, or -1 (logged) on a bad URL or
 * out of memory. stats must outlive s. */
int rec_stream_init(struct rec_stream *s, const struct rec_stream_config *cfg,
                    struct rec_stats *stats);
void rec_stream_release(struct rec_stream *s);

/* Connects if needed (with op_redis_ensure's backoff). Returns 0 when
 * connected, -1 while Redis is unreachable. */
int rec_stream_ready(struct rec_stream *s);

/*
 * Called before each fill of a batch: after a lost Redis reply (a command
 * that may have run unseen, so entries may have been delivered to us
 * unseen), and with nothing in hand (batch_empty), goes back to reading the
 * own pending list from ID 0 on every shard. The lost reply is forgotten
 * either way: with entries in hand they are written one at a time first.
 */
void rec_stream_fill_starts(struct rec_stream *s, int batch_empty);

/* 1 while reading the own pending list (XAUTOCLAIM then waits). */
int rec_stream_in_pending_phase(const struct rec_stream *s);

/* 1 while batches must be written one at a time: the own pending list is
 * being re-read (or will be, after a lost reply), and a re-read would
 * deliver a batch still in flight a second time. */
int rec_stream_serial(const struct rec_stream *s);

/*
 * One XREADGROUP over every shard, appending the entries to b: in the pending
 * phase the consumer's own pending entries after each shard's cursor (an
 * entry read back as [id, nil] — trimmed meanwhile — is added as poison so it
 * is dead-lettered and acknowledged); afterwards new entries, waiting up to
 * block_ms for some (0: not at all; Redis times a BLOCK out only at its
 * serverCron ticks, every 100 ms at hz 10, so a short one is no use). Reads at most about `room`
 * entries. Returns the number of entries added, or -1 when Redis failed (connection dropped; the
 * caller retries after rec_stream_ready) or memory ran out.
 */
int rec_stream_read(struct rec_stream *s, struct rec_batch *b, size_t room, int block_ms);

/*
 * XAUTOCLAIM: takes over entries pending for longer than claim_idle_ms in any
 * consumer (a dead recorder's), at most about `room`, appending them to b.
 * Ids XAUTOCLAIM reports deleted (Redis 7: third element) are counted and
 * added as poison for the record. Returns the number of entries added, or -1.
 */
int rec_stream_claim(struct rec_stream *s, struct rec_batch *b, size_t room);

/* Acknowledges every entry of b: one XACK per shard, pipelined. Returns 0,
 * or -1 if Redis failed (retry: XACK is idempotent). */
int rec_stream_ack(struct rec_stream *s, const struct rec_batch *b);

/*
 * Updates the lag and pending gauges of every shard (XINFO GROUPS, then
 * XPENDING of every group) and, with trim set, trims each stream below the
 * lowest entry some group still needs (XTRIM MINID ~): the smallest pending id
 * of any group, else the entry after its last-delivered id. Never MAXLEN,
 * which ignores groups. Returns 0, or -1 if Redis failed.
 */
int rec_stream_poll(struct rec_stream *s, int trim);

#endif

/* The publish fence: WATCH + GET + PTTL of a lease, pipelined behind the previous EXEC. */
#ifndef OP_MATCHER_FENCE_H
#define OP_MATCHER_FENCE_H

#include <stdint.h>

#include "shared/redis.h"

/*
 * The watch state of the worker's one connection (docs/matcher.md,
 * "Publish fence"). A connection holds one set of watched keys, and EXEC,
 * DISCARD and UNWATCH clear it, so at most one prefetched fence exists: the
 * one of the next publish, whose WATCH + GET + PTTL ride behind the
 * previous EXEC. Only this module sends WATCH and UNWATCH.
 */
struct fence {
    int watching;        /* a WATCH may be set on the connection (UNWATCH before reuse) */
    int shard;           /* shard whose WATCH + GET + PTTL replies were read, or -1 */
    int mine;            /* that GET named us */
    long long ttl;       /* that PTTL, ms */
    int64_t at_ms;       /* monotonic ms when that WATCH was sent */
    const char *name;    /* (ref) MATCHER_NAME: the value a lease of ours holds */
    long long margin_ms; /* the least TTL left a publish may go on with */
};

/* The verdicts of fence_check. */
enum fence_verdict {
    FENCE_REDIS = -1, /* Redis failed (r->err): nothing is known */
    FENCE_LOST = 0,   /* the lease is not ours: unwatched */
    FENCE_OURS = 1,   /* ours with margin: the WATCH is set, MULTI may follow */
    FENCE_SHORT = 2,  /* ours, but too little TTL left: unwatched, renew first */
};

/* Initialises f for a worker called name (borrowed) with leases of
 * lease_ms. Nothing is watched. */
void fence_init(struct fence *f, const char *name, int lease_ms);

/* Queues WATCH + GET + PTTL of shard s's lease on r; their replies must be
 * read with fence_read, in order, after whatever was queued before. 0, or
 * -1 when the connection failed. */
int fence_append(struct fence *f, struct op_redis *r, uint32_t s);

/* Reads the three replies queued by fence_append into f (f->shard = s,
 * f->mine, f->ttl). 0, or -1 when Redis failed (f->shard = -1). */
int fence_read(struct fence *f, struct op_redis *r);

/*
 * The fence of a publish of shard s: the lease must still name us, after
 * WATCH, with more than margin_ms of TTL left. When the prefetched fence
 * is s's, no round trip is needed, and its TTL counts as reduced by the
 * time since its WATCH was sent; otherwise (or when that prefetched check
 * fails) a WATCH possibly set for another shard is dropped (UNWATCH) in the
 * same round trip as s's WATCH + GET + PTTL. Returns a fence_verdict; on
 * FENCE_OURS the WATCH stays set for the MULTI … EXEC that follows.
 */
enum fence_verdict fence_check(struct fence *f, struct op_redis *r, uint32_t s);

/* Sends UNWATCH (one round trip) when a WATCH may be set, and forgets the
 * prefetched fence: our own writes to a lease key (a renewal) would
 * otherwise make the watched EXEC fail as if fenced. 0, or -1 when Redis
 * failed. */
int fence_unwatch(struct fence *f, struct op_redis *r);

/* Records that an EXEC was queued: it clears the connection's WATCH. */
void fence_exec_sent(struct fence *f);

/* Forgets a prefetched fence of shard s (the shard was dropped); its WATCH
 * stays set until the next UNWATCH or EXEC. */
void fence_forget(struct fence *f, uint32_t s);

/* A new connection watches nothing: forgets everything. */
void fence_reset(struct fence *f);

#endif

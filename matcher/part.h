/* The matcher's private structures: the worker and the shards it owns (worker.c, partition.c). */
#ifndef OP_MATCHER_PART_H
#define OP_MATCHER_PART_H

#include "matcher/matcher.h"
#include "shared/sid.h"

/*
 * The life of an owned shard:
 *
 *   acquire ─▶ RECOVER ─▶ PENDING ─▶ LIVE ─▶ (hand back | lease lost)
 *              load snapshot,        read own PEL      read '>'
 *              replay acknowledged   from 0, publish   publish
 *
 * Any doubt about what Redis holds (a connection lost mid-publish, an EXEC
 * with an error inside) sends the shard back to RECOVER while the lease is
 * still ours; a lost lease drops it at once.
 */
enum part_state { PART_RECOVER = 0, PART_PENDING = 1, PART_LIVE = 2 };

struct part {
    uint32_t shard;
    enum part_state state;
    char orders[OP_KEY_MAX];   /* orders:{S} */
    char fills[OP_KEY_MAX];    /* fills:{S} */
    char lease[OP_KEY_MAX];    /* lease:{S} */
    char snap[OP_KEY_MAX];     /* snap:{S} */
    struct eng *eng;           /* NULL until recovered */
    int64_t lease_deadline_ms; /* monotonic ms after which the lease is surely gone */
    int64_t retry_at_ms;       /* RECOVER: not before this (after a failed recovery) */
    struct op_sid last;        /* the last input applied to eng */
    struct op_sid cursor;      /* PENDING: the last entry of our PEL read */
    struct redisReply *next;   /* a batch read ahead with the last EXEC, or NULL */
    uint64_t since_snap;       /* inputs applied since the last snapshot stored */
    int64_t snap_due_ms;       /* a snapshot is due by time after this */
    int64_t book_due_ms;       /* market data not before this */
    uint8_t *dirty;            /* [syms->n]: book changed since last published */
    uint64_t *sym_ts;          /* [syms->n]: event time of the last input of the symbol */
    int any_dirty;             /* some dirty[] is set */
    int idle;                  /* the last read found nothing new */
    int lost;                  /* lease lost: drop at the next chance, publish nothing */
};

/* One input of a batch. */
struct in_entry {
    const char *id; /* (ref) into the batch reply */
    size_t idlen;
    struct op_sid sid;
    int deleted; /* the entry is gone from the stream (PEL read of a trimmed id) */
    int sym;     /* index in the symbol table, -1 when not listed */
};

/*
 * One XADD to fills:{S}: the reports of a run of consecutive inputs of a
 * batch, at most OP_CODEC_REPORTS_MAX of them (a batch's reports are cut at
 * input boundaries when they exceed it; a single input beyond it is split).
 * The texts are NUL-terminated in w->text at the given offsets.
 */
struct out_entry {
    size_t m_off, m_len; /* msgpack array of the reports in w->enc */
    size_t sym_off;      /* "AAPL,MSFT": distinct symbols of the inputs covered */
    size_t kind_off;     /* "accepted=312,trade=140": report counts by kind */
    size_t n_off;        /* inputs whose last report is in this entry, decimal */
    size_t in_off;       /* "<first id>..<last id>" of the inputs covered, or one id */
};

struct worker {
    const struct matcher_config *cfg; /* (ref) */
    struct matcher_stats *st;         /* (ref) */
    struct op_redis redis;            /* the one connection (hiredis: one per thread) */
    struct op_codec *codec;
    struct part **parts;         /* [shards]: NULL when not owned */
    int owned;                   /* non-NULL parts */
    int target;                  /* shards to own, from the balance */
    int64_t next_renew_ms;       /* lease renewal due */
    int64_t next_balance_ms;     /* heartbeat, balance and group poll due */
    int no_read_ahead;           /* handing back: do not read the next batch */
    volatile sig_atomic_t *stop; /* (ref) worker_run's stop flag: ends a publish retry */
    int64_t refused_log_ms;      /* publish_refused is logged again not before this */
    uint64_t refused_unlogged;   /* refusals since the last publish_refused line */
    /* The fence of the next publish, pipelined behind the previous EXEC
     * (docs/matcher.md, "Publish fence"): */
    int watching;        /* a WATCH may be set on the connection (UNWATCH before reuse) */
    int fence_for;       /* shard whose WATCH + GET + PTTL replies are below, or -1 */
    int fence_mine;      /* the GET named us */
    long long fence_ttl; /* the PTTL, ms */
    int64_t fence_at_ms; /* monotonic ms when the WATCH was sent */
    /* per-batch buffers, reused: no allocation per order once warm */
    struct in_entry *ents;
    struct op_order_msg *msgs;
    size_t *rep_end; /* reports of input i end at rep_end[i] */
    size_t cap;
    struct eng_reports reps;
    struct out_entry *outs;
    size_t nouts, cap_outs;
    struct op_buf enc;  /* msgpack of every out_entry */
    struct op_buf text; /* the readable fields of every out_entry */
    struct op_buf md;   /* book JSONs */
    const char **argv;  /* XACK arguments */
    size_t *lens;
    size_t cap_argv;
};

/* partition.c */
struct part *part_new(struct worker *w, uint32_t shard, int64_t deadline_ms);
void part_free(struct part *p);
/* Loads the snapshot, replays the acknowledged inputs after it, claims the
 * pending ones: RECOVER → PENDING. Returns 0, or -1 (lease lost, Redis or
 * snapshot failure; the caller decides by p's state and w->redis.err). */
int part_recover(struct worker *w, struct part *p);
/* One step of a PENDING or LIVE shard: read a batch (or use the one read
 * ahead), apply it, publish it fenced. Returns 1 when it processed inputs,
 * 0 when there was nothing to read, -1 when the shard must be dropped
 * (lease lost) or Redis failed (w->redis.err set). */
int part_step(struct worker *w, struct part *p);
/* Publishes what is due without inputs (market data; with force_snapshot a
 * snapshot of unsnapshotted inputs). Returns 0 or -1 as part_step. */
int part_flush(struct worker *w, struct part *p, int force_snapshot);

/* worker.c: the shard whose publish follows shard s's in the round-robin
 * (s itself when it is the only one), or -1: its fence is pipelined behind
 * s's EXEC. */
int worker_next_publisher(const struct worker *w, uint32_t s);

/* worker.c: renews the leases when due (long operations such as a recovery
 * call it between pages); a lease found lost sets its part's `lost`. */
void worker_renew(struct worker *w);

#endif

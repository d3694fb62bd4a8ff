/* The matcher's private structures: the worker, the shards it owns, and the shard life cycle. */
#ifndef OP_MATCHER_PART_H
#define OP_MATCHER_PART_H

#include <time.h>

#include "matcher/fence.h"
#include "matcher/matcher.h"
#include "shared/backlog.h"
#include "shared/sid.h"

/*
 * The life of an owned shard, all of it in part.c (no other file writes
 * state, lost, retry_at_ms or the held publish):
 *
 *   acquire ─▶ RECOVER ─────────────▶ PENDING ─────────▶ LIVE ─▶ (hand back | lease lost)
 *              load snapshot, claim,   read own PEL      read '>'
 *              replay acknowledged     from 0, publish   publish
 *              (one page per call)
 *
 * Any doubt about what Redis holds (a connection lost mid-publish, an EXEC
 * with an error inside) sends the shard back to RECOVER while the lease is
 * still ours (part_fail); a lost lease drops it at once (part_lose). A
 * publish Redis refused whole is held, built, and sent again as it was at
 * pub.due_ms; meanwhile the loop renews the leases and serves nothing else.
 */
enum part_state { PART_RECOVER = 0, PART_PENDING = 1, PART_LIVE = 2 };

/* Where a recovery is (RECOVER): it runs one step per part_recover call. */
enum part_recovery { REC_START = 0, REC_REPLAY = 1 };

/*
 * One fenced publish, built once (publish_build) and sent until Redis takes
 * it (publish_send): the same commands every time, so a refused batch is
 * never applied twice.
 */
struct publish {
    int active;    /* built and not yet through: held by its part */
    size_t n;      /* inputs 0 … n-1 of the worker's batch arrays */
    size_t nack;   /* the entries they are in (XACK ids) */
    int64_t odone; /* the last seq_end among them (SET odone:{S}), -1 for none */
    int read_next; /* the next batch's read is queued inside the MULTI */
    int nbooks;    /* book keys in w->md */
    int snap;      /* carries a snapshot of the engine */
    char *blob;    /* the snapshot, op_free'd when done */
    size_t blen;
    char last[OP_SID_TEXT_MAX]; /* the snapshot's id */
    int64_t t_read_us;          /* when the batch was read (latency histogram) */
    struct redisReply *batch;   /* (owned) the batch reply its XACK ids point into, or NULL */
    uint64_t attempts;          /* refusals so far */
    int backoff_ms;             /* the next wait after a refusal */
    int short_tries;            /* fences found ours with too little TTL left */
    int renew_first;            /* the loop renews the leases before the next send */
    int64_t due_ms;             /* not sent again before this (monotonic ms) */
    uint64_t tick_ts;           /* appends a tick input stamped this (ns) to orders:{S}, 0 none */
    size_t tick_text, tick_m;   /* the tick entry's fields in w->text, its `m` in w->enc */
    size_t tick_mlen;
};

struct part {
    uint32_t shard;
    enum part_state state;
    char orders[OP_KEY_MAX];   /* orders:{S} */
    char fills[OP_KEY_MAX];    /* fills:{S} */
    char lease[OP_KEY_MAX];    /* lease:{S} */
    char snap[OP_KEY_MAX];     /* snap:{S} */
    char odone[OP_KEY_MAX];    /* odone:{S}: inputs of the shard processed (shared/backlog.h) */
    struct eng *eng;           /* NULL until recovered */
    int64_t lease_deadline_ms; /* monotonic ms after which the lease is surely gone */
    int64_t retry_at_ms;       /* RECOVER: not before this (after a failed recovery) */
    struct op_sid last;        /* the last input applied to eng */
    struct op_sid cursor;      /* PENDING: the last entry of our PEL read */
    int read_count;            /* entries per read: ~MATCHER_BATCH inputs (part.c) */
    struct redisReply *next;   /* a batch read ahead with the last EXEC, or NULL */
    int next_direct;           /* next is the XREADGROUP reply itself (the fenced read
                                  behind an idle wait), not an EXEC reply ending with it */
    uint64_t since_snap;       /* inputs applied since the last snapshot stored */
    int64_t snap_due_ms;       /* a snapshot is due by time after this */
    int64_t book_due_ms;       /* market data not before this */
    uint8_t *dirty;            /* [syms->n]: book changed since last published */
    uint64_t *sym_ts;          /* [syms->n]: event time of the last input of the symbol */
    int any_dirty;             /* some dirty[] is set */
    int idle;                  /* the last read found nothing new */
    int64_t input_ms;          /* monotonic ms of the last new input read (or of going
                                  live): how long the shard has been idle, for ticks */
    int tick_inflight;         /* a tick of ours is written and not read back yet */
    int lost;                  /* lease lost: drop at the next chance, publish nothing */
    struct publish pub;        /* the publish in progress; kept across loop turns when held */
    /* RECOVER, between part_recover calls: */
    enum part_recovery rec; /* the next step */
    int64_t rec_t0_us;      /* when this recovery started */
    struct op_sid rec_from; /* the snapshot's id */
    struct op_sid rec_end;  /* replay up to here: pmin (exclusive) or last-delivered-id */
    int rec_pending;        /* there are pending entries: rec_end is the lowest, exclusive */
};

/* One input of a batch: an element of an orders:{S} entry (an entry holds
 * one ingest round's inputs of the shard; its inputs share its id). */
struct in_entry {
    const char *id; /* (ref) into the batch reply: the entry's id */
    size_t idlen;
    struct op_sid sid;
    int first;       /* the first input of its entry (its XACK) */
    int64_t seq_end; /* the entry's seq + n (inputs of the shard up to its end), -1 without */
    int deleted;     /* not applied: 1 the entry is gone from the stream (PEL read of a
                        trimmed id), 2 it was applied before */
    int sym;         /* index in the symbol table, -1 when not listed */
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
    struct op_backlog_memo *backlog_memo; /* [shards]: spares the poll's count (shared/backlog.h) */
    struct part **parts;                  /* [shards]: NULL when not owned */
    int owned;                            /* non-NULL parts */
    int target;                           /* shards to own, from the balance */
    int64_t next_renew_ms;                /* lease renewal due */
    int64_t next_balance_ms;              /* heartbeat, balance and group poll due */
    int64_t refused_log_ms;               /* publish_refused is logged again not before this */
    uint64_t refused_unlogged;            /* refusals since the last publish_refused line */
    uint64_t repl_short_run;              /* publishes in a row whose WAIT fell short */
    struct fence fence;                   /* the connection's WATCH (fence.h) */
    /* per-batch buffers, reused: no allocation per order once warm. A held
     * publish (part.pub) keeps them: no other shard runs meanwhile. */
    struct in_entry *ents;
    struct op_order_msg *msgs;
    struct op_span *spans; /* [OP_CODEC_ORDERS_MAX]: the inputs of one entry */
    size_t *rep_end;       /* reports of input i end at rep_end[i] */
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

/* What part_recover, part_step, part_flush and part_resume return. */
enum part_rc {
    PART_FAILED = -1, /* the shard failed: lost (p->lost), back in RECOVER, or Redis failed */
    PART_IDLE = 0,    /* nothing to do (nothing to read, recovery not due) */
    PART_DID = 1,     /* progress: inputs published, a recovery step, PENDING → LIVE */
    PART_HELD = 2,    /* a publish waits in p->pub until pub.due_ms (part_resume) */
};

/* Monotonic µs (latency histograms) and wall-clock ms (snapshot age). */
static inline int64_t part_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t part_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wall-clock ns since the epoch: a tick's `ts` (the only clock an input
 * of the matcher carries; docs/matcher.md, "Ticks"). */
static inline uint64_t part_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* --- part.c: the shard's life cycle ---------------------------------------- */

/* A new shard in RECOVER whose lease runs out at deadline_ms, sized for w's
 * symbols; NULL on allocation failure. Freed with part_free. */
struct part *part_new(const struct worker *w, uint32_t shard, int64_t deadline_ms);
void part_free(struct part *p);

/* The lease of p was renewed: it runs out at deadline_ms (or not, lost). */
void part_renewed(struct part *p, int64_t deadline_ms);
/* The lease of p is gone (why for the log of the caller): publish nothing more. */
void part_lose(struct part *p);
/* Back to RECOVER (engine, read-ahead and held publish discarded) after
 * something left what Redis holds in doubt; recovery not before
 * now + retry_ms. why names the cause for the log. */
void part_fail(struct part *p, const char *why, int retry_ms);

/* One step of a recovery: first the snapshot, the claim of the pending
 * entries and the group's last-delivered-id; then one replay page per
 * call, so that the loop renews leases in between; the last page makes p
 * PENDING. PART_IDLE when not due yet, PART_DID on progress, PART_FAILED. */
enum part_rc part_recover(struct worker *w, struct part *p);

/* One step of a PENDING or LIVE shard: read a batch (or use the one read
 * ahead), apply it, publish it fenced, with the fence of shard `next`
 * (-1: none, and no read ahead) pipelined behind the EXEC. */
enum part_rc part_step(struct worker *w, struct part *p, int next);

/* Appends a tick input to orders:{S} when one is due (matcher/tick.h: p
 * LIVE and idle for MATCHER_TICK_MS, nothing read ahead, an engine event
 * due by the wall clock), fenced like any publish, with the read of the
 * next batch (the tick itself) behind it in the MULTI. PART_IDLE when no
 * tick is due, else as part_step. */
enum part_rc part_tick(struct worker *w, struct part *p, int next);

/* The ms until p may need a tick (0 now), or -1 for none (tick.h). */
int64_t part_tick_wait_ms(const struct worker *w, const struct part *p, int64_t now_ms);

/* Publishes what is due without inputs (market data; with force_snapshot a
 * snapshot of unsnapshotted inputs). PART_IDLE when nothing was due. */
enum part_rc part_flush(struct worker *w, struct part *p, int force_snapshot);

/* Sends p's held publish again (call at pub.due_ms, after renewing the
 * leases when pub.renew_first). PART_DID when it went through, PART_HELD
 * when refused again, PART_FAILED. */
enum part_rc part_resume(struct worker *w, struct part *p, int next);

/* Before handing p back: publishes the batch read ahead and a snapshot.
 * A publish Redis refuses meanwhile is abandoned (p to RECOVER, nothing
 * written: the next owner recovers the shard). 0 when the lease may be
 * released, -1 when p was lost meanwhile or Redis failed. */
int part_finish(struct worker *w, struct part *p);

/* 1 when p can publish now (not lost, not recovering): the round-robin
 * picks the next fence to prefetch among these. */
int part_publishing(const struct part *p);

/* --- publish.c: one fenced publish (never changes a part's life cycle) ---- */

/* Room for Redis' error text of a refused publish (publish_send's err). */
#define PUBLISH_ERR_MAX 160

/* What publish_send found. */
enum publish_outcome {
    PUBLISH_DONE = 0,    /* EXEC ran every command (its reply in *ex) */
    PUBLISH_REDIS = 1,   /* Redis failed: whether EXEC ran is unknown */
    PUBLISH_FENCED = 2,  /* the lease is not ours (GET, or a nil EXEC): nothing written */
    PUBLISH_SHORT = 3,   /* ours, too little TTL: renew and send again */
    PUBLISH_REFUSED = 4, /* EXEC refused whole (EXECABORT, OOM): nothing written */
    PUBLISH_BROKEN = 5,  /* an element failed inside EXEC: some of it may be written */
};

/* Builds the publish of inputs 0 … n-1 (applied: reports in w->reps) into
 * *pb: fills entries, XACK arguments, due market data and snapshot, and
 * with tick_ts != 0 a tick input stamped tick_ts appended to orders:{S}
 * (oseq:{S} raised with it, as ingest does). 1 when there is something to
 * send, 0 when there is nothing, -1 on allocation failure (pb then holds
 * nothing to free). */
int publish_build(struct worker *w, struct part *p, size_t n, int force_snapshot, int read_next,
                  int64_t t_read_us, uint64_t tick_ts, struct publish *pb);

/* Sends *pb fenced (MULTI … EXEC), the fence of shard next (-1: none)
 * pipelined behind it. On PUBLISH_DONE *ex is the EXEC reply (the caller
 * frees it); *err (PUBLISH_ERR_MAX bytes) holds Redis' error text for REFUSED. */
enum publish_outcome publish_send(struct worker *w, struct part *p, struct publish *pb, int next,
                                  struct redisReply **ex, char *err);

/* Counts a publish that went through (stats, snapshot bookkeeping). */
void publish_account(struct worker *w, struct part *p, const struct publish *pb);

/* Frees what *pb owns (snapshot, batch reply) and clears it. */
void publish_release(struct publish *pb);

#endif

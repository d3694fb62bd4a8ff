/* The recorder's counters and gauges, shared by its loop and the /metrics thread. */
#ifndef REC_STATS_H
#define REC_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "shared/buf.h"
#include "shared/metrics.h"

/*
 * Written by the recorder's single loop thread, read by the opsd thread that
 * renders /metrics: every field is atomic (relaxed is enough: each is an
 * independent number). Per-shard arrays have `shards` elements.
 */
struct rec_stats {
    uint32_t shards;
    _Atomic uint64_t entries;         /* stream entries taken into a batch */
    _Atomic uint64_t reports;         /* reports decoded from them */
    _Atomic uint64_t fills_written;   /* fills rows inserted (not counting redeliveries) */
    _Atomic uint64_t orders_written;  /* orders rows inserted or updated */
    _Atomic uint64_t ignored_rejects; /* REJECTED cancel(-all)(-after)/amend/dup id: no change */
    _Atomic uint64_t batches;         /* batches committed */
    _Atomic uint64_t bisects;         /* batch splits while isolating a poison entry */
    _Atomic uint64_t safe_retries;    /* fast-path writes that met a recorded row: safe path */
    _Atomic uint64_t dead_letters;    /* entries sent to dead_letters */
    _Atomic uint64_t pg_retries;      /* failed postgres attempts (retried) */
    _Atomic uint64_t redis_retries;   /* failed redis attempts (retried) */
    _Atomic uint64_t reclaimed;       /* entries taken over with XAUTOCLAIM */
    _Atomic uint64_t reclaim_deleted; /* pending ids XAUTOCLAIM found deleted */
    _Atomic uint64_t pending_trimmed; /* own pending entries read back as [id, nil] */
    _Atomic uint64_t trimmed;         /* entries removed by XTRIM MINID */
    _Atomic uint64_t acked;           /* entries acknowledged */
    _Atomic uint64_t parts_created;   /* daily partitions of fills created (migration 007) */
    _Atomic uint64_t parts_failed;    /* failed calls of orderpipe_fills_ensure_partitions */
    _Atomic int redis_up;             /* 1 while the last redis call worked */
    _Atomic int pg_up;                /* 1 while the last postgres call worked */
    _Atomic int blocked;              /* 1 while a batch waits for postgres or redis */
    _Atomic int64_t *lag;             /* per shard: entries not yet delivered to the group */
    _Atomic int64_t *pending;         /* per shard: delivered but not acknowledged */
    struct op_hist batch_rows;        /* reports per committed batch */
    struct op_hist batch_us;          /* first entry read -> acknowledged */
    struct op_hist commit_us;         /* BEGIN -> COMMIT of one batch */
};

/* Allocates the per-shard arrays (zeroed). Returns 0, or -1 out of memory. */
int rec_stats_init(struct rec_stats *s, uint32_t shards);
void rec_stats_release(struct rec_stats *s);

/* Appends the Prometheus text of every metric to out (see docs/recorder.md). */
void rec_stats_render(const struct rec_stats *s, struct op_buf *out);

#define REC_ADD(s, field, n) atomic_fetch_add_explicit(&(s)->field, (n), memory_order_relaxed)
#define REC_SET(s, field, v) atomic_store_explicit(&(s)->field, (v), memory_order_relaxed)
#define REC_GET(s, field) atomic_load_explicit(&(s)->field, memory_order_relaxed)

#endif

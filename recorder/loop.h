/* The recorder's loop: fill a batch from the streams, write it on the writer thread, acknowledge
 * it. */
#ifndef REC_LOOP_H
#define REC_LOOP_H

#include <stdint.h>

#include "recorder/batch.h"
#include "recorder/stats.h"
#include "recorder/store.h"
#include "recorder/stream.h"
#include "recorder/writer.h"
#include "shared/symbols.h"

/* Why 500 ms: the longest XREADGROUP BLOCK while idle; it bounds how late a
 * SIGTERM, a claim or a lag poll is noticed (hiredis retries reads on EINTR,
 * so a signal does not cut a BLOCK short). The Redis socket timeout must
 * outlast it. */
#define REC_IDLE_BLOCK_MS 500

/* Why at most 2 (RECORDER_WRITERS, default 1): with two, a full batch goes
 * to the second writer, on its own PostgreSQL session, while the first
 * one's transaction is still running (its COPY or its commit's WAL flush),
 * so a backlog is written by two backends at once; a batch that is not full
 * waits for the commit in flight, as before (adaptive batching). It pays
 * where PostgreSQL has cores to spare (bench recorder: +20-50% rows/s) and
 * costs where it has none (bench e2e on 2 shared cores: PostgreSQL +3 us of
 * CPU per order, the backends contending for the same index pages), hence
 * the default. More would take more batches in memory for little: a later
 * batch's update of an order waits for the row lock of the earlier batch
 * that inserted it. */
#define REC_WRITERS 2

struct rec_loop_config {
    long long batch_rows;    /* RECORDER_BATCH_ROWS */
    long long flush_ms;      /* RECORDER_FLUSH_MS */
    long long claim_idle_ms; /* RECORDER_CLAIM_IDLE_MS (0: no XAUTOCLAIM) */
    long long trim_ms;       /* RECORDER_TRIM_INTERVAL_MS (0: no trimming) */
    long long stop_ms;       /* RECORDER_STOP_TIMEOUT_MS */
};

/* Everything the loop needs. */
struct rec_loop {
    struct rec_loop_config cfg;
    struct rec_stats *stats;               /* (ref) */
    struct rec_stream *stream;             /* (ref) */
    struct rec_store *stores[REC_WRITERS]; /* (ref) one PostgreSQL session per writer;
                                            * stores[1] NULL: one writer */
    /* one being filled, one per writer (committing, or committed and
     * waiting for its XACK) */
    struct rec_batch batches[REC_WRITERS + 1];
    struct rec_writer writers[REC_WRITERS];
    int nwriters; /* writer threads running (0: batches written on this thread) */
    struct {
        struct rec_batch *b; /* (ref) a batch submitted to writers[w] */
        int w;
    } fl[REC_WRITERS]; /* in flight, oldest first */
    int nfl;
    int64_t next_poll_ms;
    int64_t next_trim_ms;
    int64_t next_claim_ms;
    int64_t stop_deadline_ms; /* set when a stop was requested */
};

/* Prepares r with its batches; stats, stream, the stores and syms must
 * outlive it. stores[0] is required; stores[1] may be NULL (one writer).
 * Returns 0, or -1 out of memory. */
int rec_loop_init(struct rec_loop *r, const struct rec_loop_config *cfg, struct rec_stats *stats,
                  struct rec_stream *stream, struct rec_store *const stores[REC_WRITERS],
                  const struct op_symtab *syms);
void rec_loop_release(struct rec_loop *r);

/* Runs until a stop is requested (op_stop_requested), then writes and
 * acknowledges the batches in hand, giving up on them (left pending, so
 * redelivered later) once RECORDER_STOP_TIMEOUT_MS has passed with a server
 * down. Starts and stops the writer threads itself. */
void rec_loop_run(struct rec_loop *r);

#endif

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
    struct rec_stats *stats;     /* (ref) */
    struct rec_stream *stream;   /* (ref) */
    struct rec_store *store;     /* (ref) */
    struct rec_batch batches[2]; /* one being filled, one with the writer */
    struct rec_writer writer;
    int overlap; /* the writer thread runs */
    int64_t next_poll_ms;
    int64_t next_trim_ms;
    int64_t next_claim_ms;
    int64_t stop_deadline_ms; /* set when a stop was requested */
};

/* Prepares r with its two batches; stats, stream, store and syms must
 * outlive it. Returns 0, or -1 out of memory. */
int rec_loop_init(struct rec_loop *r, const struct rec_loop_config *cfg, struct rec_stats *stats,
                  struct rec_stream *stream, struct rec_store *store, const struct op_symtab *syms);
void rec_loop_release(struct rec_loop *r);

/* Runs until a stop is requested (op_stop_requested), then writes and
 * acknowledges the batches in hand, giving up on them (left pending, so
 * redelivered later) once RECORDER_STOP_TIMEOUT_MS has passed with a server
 * down. Starts and stops the writer thread itself. */
void rec_loop_run(struct rec_loop *r);

#endif

/* The recorder's writer thread: commits batch n while the main thread reads batch n+1. */
#ifndef REC_WRITER_H
#define REC_WRITER_H

#include <pthread.h>

#include "recorder/batch.h"
#include "recorder/store.h"

/*
 * One thread that runs rec_store_write for one batch at a time. The main
 * thread hands it a batch (rec_writer_submit), keeps reading and decoding the
 * next batch from Redis meanwhile, then collects the result
 * (rec_writer_wait) and only then acknowledges the batch: XACK still follows
 * COMMIT. Between submit and wait the store and the batch belong to the
 * writer; at any other time to the main thread (the mutex hands them over,
 * so neither is touched by two threads at once). The overlap costs one more
 * batch in memory: at most two (one being committed, one being filled).
 */
struct rec_writer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct rec_store *store; /* (ref) */
    struct rec_batch *batch; /* (ref) the batch submitted, NULL when none */
    int rc;                  /* rec_store_write's result for batch */
    int stop;                /* 1: the thread exits */
    int started;             /* the thread runs (rec_writer_stop joins it) */
};

/* Starts the thread for st (which must outlive w). Returns 0, or -1 if the
 * thread cannot be created (logged): callers then write synchronously. */
int rec_writer_start(struct rec_writer *w, struct rec_store *st);

/* Hands b to the thread, which starts its transaction at once. Only when
 * nothing is in flight (after rec_writer_wait). */
void rec_writer_submit(struct rec_writer *w, struct rec_batch *b);

/* Waits for the submitted batch's result: rec_store_write's (0 committed, -1
 * to retry). The store and the batch are the caller's again. */
int rec_writer_wait(struct rec_writer *w);

/* 1 while a submitted batch is still being written (its result not posted
 * yet), else 0. Never blocks: the loop polls it to write its next batch as
 * soon as the previous commit completed. */
int rec_writer_busy(struct rec_writer *w);

/* Stops and joins the thread (after rec_writer_wait if a batch is in flight). */
void rec_writer_stop(struct rec_writer *w);

#endif

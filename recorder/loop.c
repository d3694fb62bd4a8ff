/* The recorder's loop: fill a batch from the streams, write it on the writer thread, acknowledge
 * it. */
#include "recorder/loop.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "shared/log.h"
#include "shared/redis.h"
#include "shared/service.h"

/*
 * The loop (the opsd thread only reads atomics; the writer thread only runs
 * transactions):
 *
 *   fill   XREADGROUP (own pending list first, then ">") into one batch until
 *          the previous batch's commit completed (adaptive: idle, one report
 *          goes through alone; under load a batch is what arrived while the
 *          previous one was committed), RECORDER_BATCH_ROWS reports, or
 *          RECORDER_FLUSH_MS after its first entry at the most; XAUTOCLAIM of
 *          dead consumers' entries and the lag poll / trim run between reads
 *   write  one transaction (rec_store_write) on the writer thread, while the
 *          main thread fills the next batch (two batches in memory at most)
 *   ack    once the writer committed it: the next batch goes to the writer,
 *          then XACK per shard, pipelined, retried until Redis takes it
 *
 *   main:   fill n+1 ........ | wait n, submit n+1, ack n | fill n+2 ........ | …
 *   writer:   BEGIN … COMMIT n | BEGIN … COMMIT n+1 ......................... |
 *
 * A failed transaction is retried with backoff on the main thread (the writer
 * idle), reading nothing new meanwhile. While the own pending list is re-read
 * (start, or a lost Redis reply), batches are written one at a time: a
 * re-read would otherwise deliver the batch in flight a second time.
 *
 * SIGTERM/SIGINT: stop filling, write and acknowledge the batch in hand, exit
 * 0. If a server stays down past RECORDER_STOP_TIMEOUT_MS, exit 0 anyway:
 * the unacknowledged entries stay pending and are redelivered.
 */

/* Why 1 s: lag and pending gauges fresh enough for a dashboard, at the cost of
 * two cheap commands per shard. */
#define POLL_MS 1000
/* Why 50 ms: the sleep between polls while a server is down; short enough
 * to notice SIGTERM promptly. It is not the retry pace: rec_store_write
 * backs off by itself (100 ms doubling to 5 s), op_redis_ensure likewise. */
#define RETRY_SLICE_MS 50

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* 1 when a stop was requested and its deadline has passed. */
static int stop_overdue(struct rec_loop *r)
{
    if (!op_stop_requested)
        return 0;
    int64_t now = op_now_ms();
    if (!r->stop_deadline_ms)
        r->stop_deadline_ms = now + r->cfg.stop_ms;
    return now >= r->stop_deadline_ms;
}

/* Lag poll, trimming and reclaiming, each when due. Redis failures are only
 * noted: the loop's next read notices them too. */
static void housekeeping(struct rec_loop *r, struct rec_batch *b, int may_claim)
{
    int64_t now = op_now_ms();
    if (now >= r->next_poll_ms) {
        int trim = r->cfg.trim_ms > 0 && now >= r->next_trim_ms;
        if (rec_stream_poll(r->stream, trim) == 0 && trim)
            r->next_trim_ms = now + r->cfg.trim_ms;
        r->next_poll_ms =
            now + (r->cfg.trim_ms > 0 && r->cfg.trim_ms < POLL_MS ? r->cfg.trim_ms : POLL_MS);
    }
    if (may_claim && r->cfg.claim_idle_ms > 0 && now >= r->next_claim_ms && b &&
        (size_t)r->cfg.batch_rows > b->rows) {
        if (rec_stream_claim(r->stream, b, (size_t)r->cfg.batch_rows - b->rows) > 0 &&
            b->first_ms == 0)
            b->first_ms = now;
        /* Why half the idle time: a dead consumer's entries wait at most
         * 1.5 x RECORDER_CLAIM_IDLE_MS. */
        r->next_claim_ms = now + (r->cfg.claim_idle_ms / 2 > 50 ? r->cfg.claim_idle_ms / 2 : 50);
    }
}

/* Fills b until it holds something and no commit is in flight (in_flight 0,
 * or the writer thread has finished it), it is full, its flush time has
 * come, or a stop is requested. Returns when there is something to write (or
 * on stop) — or, with in_flight set (a batch is being committed and waits
 * for its XACK), as soon as a read brought nothing new, so that the loop
 * waits for the commit (on the writer's condition variable: it learns of the
 * commit at once) and acknowledges it.
 *
 * While a commit is in flight reads do not BLOCK: Redis times a BLOCK out
 * only at its serverCron ticks (hz 10: every 100 ms), so the 2 ms BLOCK
 * used here before held the XACK of every batch, and the write of the next
 * one, for 50 ms on average (bench e2e at 1,000 orders/s: fill latency p50
 * 52 ms with it, ~10 ms with Redis at hz 100, what a non-blocking read gives
 * without touching Redis' configuration). */
static void fill(struct rec_loop *r, struct rec_batch *b, int in_flight)
{
    rec_stream_fill_starts(r->stream, b->nentries == 0);
    while (!op_stop_requested && b->rows < (size_t)r->cfg.batch_rows) {
        int64_t now = op_now_ms();
        if (b->nentries && now >= b->first_ms + r->cfg.flush_ms)
            return;
        if (b->nentries && (!in_flight || !rec_writer_busy(&r->writer)))
            return; /* the previous commit completed: write what arrived meanwhile */
        if (rec_stream_ready(r->stream) != 0) {
            REC_SET(r->stats, blocked, b->nentries == 0 ? 0 : 1);
            if (b->nentries)
                return; /* write what we have; the ack will wait for Redis */
            sleep_ms(RETRY_SLICE_MS);
            continue;
        }
        /* Not while a commit is in flight: its entries, ours, would count as
         * idle (RECORDER_CLAIM_IDLE_MS) for as long as it lasts, and be
         * taken a second time. */
        housekeeping(r, b, !rec_stream_in_pending_phase(r->stream) && !in_flight);
        if (b->rows >= (size_t)r->cfg.batch_rows)
            return;
        /* b is empty here unless a commit is in flight (returned above) */
        int block = in_flight ? 0 : REC_IDLE_BLOCK_MS;
        size_t before = b->nentries;
        int64_t t_read = op_now_ms();
        int n = rec_stream_read(r->stream, b, (size_t)r->cfg.batch_rows - b->rows, block);
        if (n < 0) {
            if (b->nentries)
                return;
            sleep_ms(RETRY_SLICE_MS);
            continue;
        }
        if (before == 0 && b->nentries > 0) /* a batch starts with the read that began it; */
            b->first_ms =
                n > 0 && op_now_ms() - t_read < REC_IDLE_BLOCK_MS / 2 ? t_read : op_now_ms();
        if (in_flight && n == 0)
            return;
    }
}

static uint64_t us_since_ms(int64_t t0_ms)
{
    int64_t d = op_now_ms() - t0_ms;
    return d > 0 ? (uint64_t)d * 1000 : 0;
}

/* Acknowledges b, whose transaction committed: XACK retried until Redis
 * takes it or a stop is overdue, then b's figures go to the metrics and b is
 * reset. Returns 0 done, -1 given up (stop overdue: b stays as it is, its
 * entries pending, redelivered and re-applied idempotently later). */
static int ack(struct rec_loop *r, struct rec_batch *b)
{
    while (rec_stream_ready(r->stream) != 0 || rec_stream_ack(r->stream, b) != 0) {
        REC_SET(r->stats, blocked, 1);
        if (stop_overdue(r)) {
            op_warn("stop_before_ack", "entries=%zu note=\"committed; redelivery is idempotent\"",
                    b->nentries);
            return -1;
        }
        sleep_ms(RETRY_SLICE_MS);
    }
    REC_SET(r->stats, blocked, 0);
    REC_ADD(r->stats, batches, 1);
    REC_ADD(r->stats, entries, b->nentries);
    REC_ADD(r->stats, reports, b->nreports);
    REC_ADD(r->stats, ignored_rejects, b->ignored_rejects);
    op_hist_observe_size(&r->stats->batch_rows, b->rows);
    op_hist_observe(&r->stats->batch_us, us_since_ms(b->first_ms));
    if (op_log_enabled(OP_LOG_DEBUG))
        op_debug("batch_done", "entries=%zu reports=%zu poison=%zu ignored_rejects=%llu",
                 b->nentries, b->nreports, b->npoison, (unsigned long long)b->ignored_rejects);
    rec_batch_reset(b);
    return 0;
}

/* Writes b (unless the writer thread already tried: then rc is its result),
 * then acknowledges it, each retried until it works or a stop is overdue.
 * Returns 0 done, -1 given up (stop overdue). */
static int write_and_ack(struct rec_loop *r, struct rec_batch *b, int tried, int rc)
{
    if (!tried)
        rc = rec_store_write(r->store, b);
    while (rc != 0) {
        REC_SET(r->stats, blocked, 1);
        if (stop_overdue(r)) {
            op_warn("stop_before_commit", "entries=%zu note=\"left pending: redelivered later\"",
                    b->nentries);
            return -1;
        }
        if (rec_stream_ready(r->stream) == 0)
            housekeeping(r, NULL, 0); /* keep the lag gauges fresh while blocked */
        sleep_ms(RETRY_SLICE_MS);
        rc = rec_store_write(r->store, b);
    }
    return ack(r, b);
}

int rec_loop_init(struct rec_loop *r, const struct rec_loop_config *cfg, struct rec_stats *stats,
                  struct rec_stream *stream, struct rec_store *store, const struct op_symtab *syms)
{
    memset(r, 0, sizeof(*r));
    r->cfg = *cfg;
    r->stats = stats;
    r->stream = stream;
    r->store = store;
    if (rec_batch_init(&r->batches[0], syms) != 0 || rec_batch_init(&r->batches[1], syms) != 0) {
        rec_loop_release(r);
        return -1;
    }
    return 0;
}

void rec_loop_release(struct rec_loop *r)
{
    rec_batch_release(&r->batches[0]);
    rec_batch_release(&r->batches[1]);
}

void rec_loop_run(struct rec_loop *r)
{
    /* Without the thread (it could not be created) batches are written one
     * at a time, as correct, only slower. */
    r->overlap = rec_writer_start(&r->writer, r->store) == 0;

    /* in_flight: the batch the writer thread is committing, or NULL. */
    struct rec_batch *cur = &r->batches[0], *in_flight = NULL;
    int stopped = 0;
    while (!op_stop_requested && !stopped) {
        fill(r, cur, in_flight != NULL);
        if (in_flight) {
            struct rec_batch *done = in_flight;
            int rc = rec_writer_wait(&r->writer);
            in_flight = NULL;
            if (rc == 0 && cur->nentries && !op_stop_requested && !rec_stream_serial(r->stream)) {
                /* done committed: the next batch's transaction starts now,
                 * and done's XACK (a round trip, and an fsync in Redis with
                 * appendfsync always) runs beside it instead of in front of
                 * it. XACK still follows done's COMMIT. */
                rec_writer_submit(&r->writer, cur);
                in_flight = cur;
                stopped = ack(r, done) != 0;
                cur = done;
                continue;
            }
            stopped = write_and_ack(r, done, 1, rc) != 0;
        }
        if (stopped || cur->nentries == 0)
            continue;
        if (r->overlap && !rec_stream_serial(r->stream)) {
            rec_writer_submit(&r->writer, cur);
            in_flight = cur;
            cur = cur == &r->batches[0] ? &r->batches[1] : &r->batches[0];
        } else {
            stopped = write_and_ack(r, cur, 0, 0) != 0;
        }
    }
    /* Batches still in hand (the stop came while filling): write and ack
     * them, the one in flight first. If a server stays down past the stop
     * deadline, their entries simply stay pending and are redelivered:
     * nothing is lost, so the exit is still 0. */
    if (in_flight) {
        int rc = rec_writer_wait(&r->writer);
        stopped = write_and_ack(r, in_flight, 1, rc) != 0 || stopped;
    }
    if (!stopped && cur->nentries && !stop_overdue(r))
        write_and_ack(r, cur, 0, 0);
    rec_writer_stop(&r->writer);
}

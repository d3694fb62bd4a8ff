/* orderpipe-recorder: fills:{S} -> PostgreSQL; wires config -> stream -> batch -> store -> opsd. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "recorder/batch.h"
#include "recorder/stats.h"
#include "recorder/store.h"
#include "recorder/stream.h"
#include "recorder/writer.h"
#include "shared/config.h"
#include "shared/log.h"
#include "shared/opsd.h"
#include "shared/service.h"
#include "shared/redis.h"
#include "shared/symbols.h"

/*
 * The loop (the opsd thread only reads atomics; the writer thread only runs
 * transactions):
 *
 *   fill   XREADGROUP (own pending list first, then ">") into one batch until
 *          RECORDER_BATCH_ROWS reports or RECORDER_FLUSH_MS after its first
 *          entry; XAUTOCLAIM of dead consumers' entries and the lag poll /
 *          trim run between reads
 *   write  one transaction (rec_store_write) on the writer thread, while the
 *          main thread fills the next batch (two batches in memory at most)
 *   ack    once the writer committed it: XACK per shard, pipelined, retried
 *          until Redis takes it; then the next batch goes to the writer
 *
 *   main:   fill n+1 ........ | wait n, ack n | fill n+2 ........ | wait n+1 …
 *   writer:   BEGIN … COMMIT n |  idle         | BEGIN … COMMIT n+1 |
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

struct settings {
    long long batch_rows;    /* RECORDER_BATCH_ROWS */
    long long flush_ms;      /* RECORDER_FLUSH_MS */
    long long claim_idle_ms; /* RECORDER_CLAIM_IDLE_MS (0: no XAUTOCLAIM) */
    long long trim_ms;       /* RECORDER_TRIM_INTERVAL_MS (0: no trimming) */
    long long stop_ms;       /* RECORDER_STOP_TIMEOUT_MS */
    long long metrics_port;  /* RECORDER_METRICS_PORT (0: no HTTP) */
    const char *metrics_bind;
    char name[128];       /* RECORDER_NAME, default hostname-pid */
    uint64_t fault_after; /* RECORDER_FAULT=exit_after_commit:N (tests) */
};

/* Why 500 ms: the longest XREADGROUP BLOCK while idle; it bounds how late a
 * SIGTERM, a claim or a lag poll is noticed (hiredis retries reads on EINTR,
 * so a signal does not cut a BLOCK short). */
#define IDLE_BLOCK_MS 500
/* Why 1 s: lag and pending gauges fresh enough for a dashboard, at the cost of
 * two cheap commands per shard. */
#define POLL_MS 1000
/* Why 50 ms: the sleep between polls while a server is down; short enough
 * to notice SIGTERM promptly. It is not the retry pace: rec_store_write
 * backs off by itself (100 ms doubling to 5 s), op_redis_ensure likewise. */
#define RETRY_SLICE_MS 50

static void load_settings(struct settings *s)
{
    memset(s, 0, sizeof(*s));
    s->batch_rows = op_env_int_or_exit("recorder", "RECORDER_BATCH_ROWS", 10000, 1, 1000000);
    s->flush_ms = op_env_int_or_exit("recorder", "RECORDER_FLUSH_MS", 20, 1, 60000);
    s->claim_idle_ms = op_env_int_or_exit("recorder", "RECORDER_CLAIM_IDLE_MS", 30000, 0, 86400000);
    s->trim_ms = op_env_int_or_exit("recorder", "RECORDER_TRIM_INTERVAL_MS", 5000, 0, 86400000);
    s->stop_ms = op_env_int_or_exit("recorder", "RECORDER_STOP_TIMEOUT_MS", 10000, 0, 3600000);
    s->metrics_port = op_env_int_or_exit("recorder", "RECORDER_METRICS_PORT", 9102, 0, 65535);
    s->metrics_bind = op_env_str("METRICS_BIND", "127.0.0.1");
    const char *name = op_env_str("RECORDER_NAME", NULL);
    if (name) {
        if (strlen(name) >= sizeof(s->name) || strpbrk(name, " \t\r\n")) {
            fprintf(stderr,
                    "recorder: invalid RECORDER_NAME='%.60s': want 1-127 characters "
                    "without spaces\n",
                    name);
            exit(2);
        }
        snprintf(s->name, sizeof(s->name), "%s", name);
    } else {
        char host[64] = "recorder";
        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        snprintf(s->name, sizeof(s->name), "%s-%ld", host, (long)getpid());
    }
    const char *fault = op_env_str("RECORDER_FAULT", NULL);
    if (fault) {
        char *end = NULL;
        unsigned long long n = 0;
        if (strncmp(fault, "exit_after_commit:", 18) == 0)
            n = strtoull(fault + 18, &end, 10);
        if (n == 0 || !end || *end != '\0') {
            fprintf(stderr,
                    "recorder: invalid RECORDER_FAULT='%.60s': want exit_after_commit:N "
                    "(N >= 1; test only)\n",
                    fault);
            exit(2);
        }
        s->fault_after = n;
    }
}

static int health(void *arg, struct op_buf *out)
{
    const struct rec_stats *st = arg;
    int r = REC_GET(st, redis_up), p = REC_GET(st, pg_up), blocked = REC_GET(st, blocked);
    op_buf_printf(out, "{\"status\":\"%s\",\"redis\":\"%s\",\"postgres\":\"%s\",\"blocked\":%s}",
                  r && p ? "ok" : "unavailable", r ? "up" : "down", p ? "up" : "down",
                  blocked ? "true" : "false");
    return r && p;
}

static void metrics(void *arg, struct op_buf *out)
{
    rec_stats_render(arg, out);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Everything the loop needs. */
struct recorder {
    struct settings set;
    struct rec_stats *stats;
    struct rec_stream stream;
    struct rec_store store;
    struct rec_batch batches[2]; /* one being filled, one with the writer */
    struct rec_writer writer;
    int overlap; /* the writer thread runs */
    int64_t next_poll_ms;
    int64_t next_trim_ms;
    int64_t next_claim_ms;
    int64_t stop_deadline_ms; /* set when a stop was requested */
};

/* 1 when a stop was requested and its deadline has passed. */
static int stop_overdue(struct recorder *r)
{
    if (!op_stop_requested)
        return 0;
    int64_t now = op_now_ms();
    if (!r->stop_deadline_ms)
        r->stop_deadline_ms = now + r->set.stop_ms;
    return now >= r->stop_deadline_ms;
}

/* Lag poll, trimming and reclaiming, each when due. Redis failures are only
 * noted: the loop's next read notices them too. */
static void housekeeping(struct recorder *r, struct rec_batch *b, int may_claim)
{
    int64_t now = op_now_ms();
    if (now >= r->next_poll_ms) {
        int trim = r->set.trim_ms > 0 && now >= r->next_trim_ms;
        if (rec_stream_poll(&r->stream, trim) == 0 && trim)
            r->next_trim_ms = now + r->set.trim_ms;
        r->next_poll_ms =
            now + (r->set.trim_ms > 0 && r->set.trim_ms < POLL_MS ? r->set.trim_ms : POLL_MS);
    }
    if (may_claim && r->set.claim_idle_ms > 0 && now >= r->next_claim_ms && b &&
        (size_t)r->set.batch_rows > b->rows) {
        if (rec_stream_claim(&r->stream, b, (size_t)r->set.batch_rows - b->rows) > 0 &&
            b->first_ms == 0)
            b->first_ms = now;
        /* Why half the idle time: a dead consumer's entries wait at most
         * 1.5 x RECORDER_CLAIM_IDLE_MS. */
        r->next_claim_ms = now + (r->set.claim_idle_ms / 2 > 50 ? r->set.claim_idle_ms / 2 : 50);
    }
}

/* Fills b until it is full, its flush time has come, or a stop is requested.
 * Returns when there is something to write (or on stop) — or, with
 * in_flight set (a batch is being committed and waits for its XACK), as soon
 * as one read found nothing, so that the XACK is not held up by an idle
 * BLOCK. */
static void fill(struct recorder *r, struct rec_batch *b, int in_flight)
{
    if (b->nentries == 0 && r->stream.rescan && !r->stream.pending_phase) {
        /* A reply was lost with Redis: entries may have been delivered to us
         * unseen. With nothing in hand, re-read our own pending list. */
        r->stream.pending_phase = 1;
        for (uint32_t i = 0; i < r->stream.cfg.shards; i++) {
            snprintf(r->stream.cursor[i], sizeof(r->stream.cursor[i]), "0");
            r->stream.drained[i] = 0;
        }
    }
    r->stream.rescan = 0;
    while (!op_stop_requested && b->rows < (size_t)r->set.batch_rows) {
        int64_t now = op_now_ms();
        if (b->nentries && now >= b->first_ms + r->set.flush_ms)
            return;
        if (rec_stream_ready(&r->stream) != 0) {
            REC_SET(r->stats, blocked, b->nentries == 0 ? 0 : 1);
            if (b->nentries)
                return; /* write what we have; the ack will wait for Redis */
            sleep_ms(RETRY_SLICE_MS);
            continue;
        }
        housekeeping(r, b, !r->stream.pending_phase);
        if (b->rows >= (size_t)r->set.batch_rows)
            return;
        int idle = in_flight ? (int)r->set.flush_ms : IDLE_BLOCK_MS;
        int block = b->nentries ? (int)(b->first_ms + r->set.flush_ms - now) : idle;
        size_t before = b->nentries;
        int64_t t_read = op_now_ms();
        int n = rec_stream_read(&r->stream, b, (size_t)r->set.batch_rows - b->rows,
                                block > 0 ? block : 1);
        if (n < 0) {
            if (b->nentries)
                return;
            sleep_ms(RETRY_SLICE_MS);
            continue;
        }
        if (before == 0 && b->nentries > 0) /* a batch starts with the read that began it; */
            b->first_ms = n > 0 && op_now_ms() - t_read < IDLE_BLOCK_MS / 2 ? t_read : op_now_ms();
        if (in_flight && b->nentries == 0)
            return;
    }
}

static uint64_t us_since_ms(int64_t t0_ms)
{
    int64_t d = op_now_ms() - t0_ms;
    return d > 0 ? (uint64_t)d * 1000 : 0;
}

/* Writes b (unless the writer thread already tried: then rc is its result),
 * then acknowledges it, each retried until it works or a stop is overdue.
 * Returns 0 done, -1 given up (stop overdue). */
static int write_and_ack(struct recorder *r, struct rec_batch *b, int tried, int rc)
{
    if (!tried)
        rc = rec_store_write(&r->store, b);
    while (rc != 0) {
        REC_SET(r->stats, blocked, 1);
        if (stop_overdue(r)) {
            op_warn("stop_before_commit", "entries=%zu note=\"left pending: redelivered later\"",
                    b->nentries);
            return -1;
        }
        if (rec_stream_ready(&r->stream) == 0)
            housekeeping(r, NULL, 0); /* keep the lag gauges fresh while blocked */
        sleep_ms(RETRY_SLICE_MS);
        rc = rec_store_write(&r->store, b);
    }
    while (rec_stream_ready(&r->stream) != 0 || rec_stream_ack(&r->stream, b) != 0) {
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

int main(void)
{
    struct op_config c;
    struct op_symtab syms;
    static struct rec_stats stats;
    struct recorder r;

    op_config_load_or_exit(&c, "recorder");
    memset(&r, 0, sizeof(r));
    load_settings(&r.set);
    op_symbols_load_or_exit(&c, "recorder", &syms);
    op_stop_signals_install();

    if (rec_stats_init(&stats, c.order_shards) != 0) {
        fprintf(stderr, "recorder: out of memory\n");
        return 1;
    }
    r.stats = &stats;
    struct rec_stream_config sc = {
        .redis_url = c.redis_url,
        /* the socket timeout must outlast the longest BLOCK */
        .timeout_ms = c.redis_timeout_ms + IDLE_BLOCK_MS,
        .shards = c.order_shards,
        .name = r.set.name,
        .claim_idle_ms = (int)r.set.claim_idle_ms,
    };
    if (rec_stream_init(&r.stream, &sc, &stats) != 0) {
        fprintf(stderr, "recorder: %s (REDIS_URL)\n", r.stream.redis.errstr);
        rec_stats_release(&stats);
        return 2;
    }
    rec_store_init(&r.store, c.database_url, &stats);
    r.store.fault_after = r.set.fault_after;
    if (rec_batch_init(&r.batches[0], &syms) != 0 || rec_batch_init(&r.batches[1], &syms) != 0) {
        fprintf(stderr, "recorder: out of memory\n");
        return 1;
    }
    struct op_opsd *opsd = NULL;
    if (r.set.metrics_port > 0) {
        struct op_opsd_config oc = {.bind = r.set.metrics_bind,
                                    .port = (int)r.set.metrics_port,
                                    .health = health,
                                    .metrics = metrics,
                                    .arg = &stats};
        opsd = op_opsd_start(&oc);
        if (!opsd) {
            fprintf(stderr,
                    "recorder: cannot serve metrics on %s:%lld (METRICS_BIND, "
                    "RECORDER_METRICS_PORT): port in use or bad address\n",
                    r.set.metrics_bind, r.set.metrics_port);
            return 2;
        }
    }
    op_info("started",
            "name=%s shards=%u batch_rows=%lld flush_ms=%lld claim_idle_ms=%lld trim_ms=%lld "
            "metrics=%s:%lld symbols=%zu",
            r.set.name, c.order_shards, r.set.batch_rows, r.set.flush_ms, r.set.claim_idle_ms,
            r.set.trim_ms, r.set.metrics_bind, r.set.metrics_port, syms.n);
    /* Connect to PostgreSQL up front so /healthz tells the truth early; a
     * failure here is retried by the loop like any other. */
    rec_store_ready(&r.store);
    /* Without the thread (it could not be created) batches are written one
     * at a time, as correct, only slower. */
    r.overlap = rec_writer_start(&r.writer, &r.store) == 0;

    /* in_flight: the batch the writer thread is committing, or NULL. */
    struct rec_batch *cur = &r.batches[0], *in_flight = NULL;
    int stopped = 0;
    while (!op_stop_requested && !stopped) {
        fill(&r, cur, in_flight != NULL);
        if (in_flight) {
            int rc = rec_writer_wait(&r.writer);
            stopped = write_and_ack(&r, in_flight, 1, rc) != 0;
            in_flight = NULL;
        }
        if (stopped || cur->nentries == 0)
            continue;
        if (r.overlap && !r.stream.rescan && !r.stream.pending_phase) {
            rec_writer_submit(&r.writer, cur);
            in_flight = cur;
            cur = cur == &r.batches[0] ? &r.batches[1] : &r.batches[0];
        } else {
            stopped = write_and_ack(&r, cur, 0, 0) != 0;
        }
    }
    /* Batches still in hand (the stop came while filling): write and ack
     * them, the one in flight first. If a server stays down past the stop
     * deadline, their entries simply stay pending and are redelivered:
     * nothing is lost, so the exit is still 0. */
    if (in_flight) {
        int rc = rec_writer_wait(&r.writer);
        stopped = write_and_ack(&r, in_flight, 1, rc) != 0 || stopped;
    }
    if (!stopped && cur->nentries && !stop_overdue(&r))
        write_and_ack(&r, cur, 0, 0);
    rec_writer_stop(&r.writer);
    op_info("stopped", "batches=%llu fills=%llu order_updates=%llu dead_letters=%llu",
            (unsigned long long)REC_GET(&stats, batches),
            (unsigned long long)REC_GET(&stats, fills_written),
            (unsigned long long)REC_GET(&stats, orders_written),
            (unsigned long long)REC_GET(&stats, dead_letters));
    op_opsd_stop(opsd);
    rec_batch_release(&r.batches[0]);
    rec_batch_release(&r.batches[1]);
    rec_store_release(&r.store);
    rec_stream_release(&r.stream);
    rec_stats_release(&stats);
    op_symtab_release(&syms);
    return 0;
}

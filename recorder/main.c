/* orderpipe-recorder: fills:{S} -> PostgreSQL; wires config -> stream -> store -> loop -> opsd. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "recorder/loop.h"
#include "recorder/stats.h"
#include "recorder/store.h"
#include "recorder/stream.h"
#include "shared/config.h"
#include "shared/log.h"
#include "shared/opsd.h"
#include "shared/service.h"
#include "shared/redis.h"
#include "shared/symbols.h"

struct settings {
    struct rec_loop_config loop; /* the RECORDER_* of the loop (recorder/loop.h) */
    long long metrics_port;      /* RECORDER_METRICS_PORT (0: no HTTP) */
    const char *metrics_bind;
    char name[128];       /* RECORDER_NAME, default hostname-pid */
    uint64_t fault_after; /* RECORDER_FAULT=exit_after_commit:N (tests) */
    long long retain_ms;  /* RECORDER_FILLS_RETAIN_MS */
};

static void load_settings(struct settings *s)
{
    memset(s, 0, sizeof(*s));
    s->loop.batch_rows = op_env_int_or_exit("recorder", "RECORDER_BATCH_ROWS", 10000, 1, 1000000);
    s->loop.flush_ms = op_env_int_or_exit("recorder", "RECORDER_FLUSH_MS", 20, 1, 60000);
    s->loop.claim_idle_ms =
        op_env_int_or_exit("recorder", "RECORDER_CLAIM_IDLE_MS", 30000, 0, 86400000);
    s->loop.trim_ms =
        op_env_int_or_exit("recorder", "RECORDER_TRIM_INTERVAL_MS", 5000, 0, 86400000);
    /* Why 60 s: a feed client that reconnects within a minute resumes from
     * its position (docs/feed.md); at 40k orders/s that keeps ~0.5 GB of
     * fills in Redis, at ordinary rates a few MB. 0: trim as soon as
     * recorded. */
    s->retain_ms = op_env_int_or_exit("recorder", "RECORDER_FILLS_RETAIN_MS", 60000, 0, 86400000);
    s->loop.stop_ms = op_env_int_or_exit("recorder", "RECORDER_STOP_TIMEOUT_MS", 10000, 0, 3600000);
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

int main(void)
{
    struct op_config c;
    struct op_symtab syms;
    static struct rec_stats stats;
    struct settings set;
    struct rec_stream stream;
    struct rec_store store;
    static struct rec_loop loop;

    op_config_load_or_exit(&c, "recorder");
    load_settings(&set);
    op_symbols_load_or_exit(&c, "recorder", &syms);
    op_stop_signals_install();

    if (rec_stats_init(&stats, c.order_shards) != 0) {
        fprintf(stderr, "recorder: out of memory\n");
        return 1;
    }
    struct rec_stream_config sc = {
        .redis_url = c.redis_url,
        /* the socket timeout must outlast the longest BLOCK */
        .timeout_ms = c.redis_timeout_ms + REC_IDLE_BLOCK_MS,
        .shards = c.order_shards,
        .name = set.name,
        .claim_idle_ms = (int)set.loop.claim_idle_ms,
        .retain_ms = set.retain_ms,
    };
    if (rec_stream_init(&stream, &sc, &stats) != 0) {
        fprintf(stderr, "recorder: %s (REDIS_URL)\n", stream.redis.errstr);
        rec_stats_release(&stats);
        return 2;
    }
    rec_store_init(&store, c.database_url, &stats);
    store.fault_after = set.fault_after;
    if (rec_loop_init(&loop, &set.loop, &stats, &stream, &store, &syms) != 0) {
        fprintf(stderr, "recorder: out of memory\n");
        return 1;
    }
    struct op_opsd *opsd = NULL;
    if (set.metrics_port > 0) {
        struct op_opsd_config oc = {.bind = set.metrics_bind,
                                    .port = (int)set.metrics_port,
                                    .health = health,
                                    .metrics = metrics,
                                    .arg = &stats};
        opsd = op_opsd_start(&oc);
        if (!opsd) {
            fprintf(stderr,
                    "recorder: cannot serve metrics on %s:%lld (METRICS_BIND, "
                    "RECORDER_METRICS_PORT): port in use or bad address\n",
                    set.metrics_bind, set.metrics_port);
            return 2;
        }
    }
    op_info("started",
            "name=%s shards=%u batch_rows=%lld flush_ms=%lld claim_idle_ms=%lld trim_ms=%lld "
            "retain_ms=%lld "
            "metrics=%s:%lld symbols=%zu",
            set.name, c.order_shards, set.loop.batch_rows, set.loop.flush_ms,
            set.loop.claim_idle_ms, set.loop.trim_ms, set.retain_ms, set.metrics_bind,
            set.metrics_port, syms.n);
    /* Connect to PostgreSQL up front so /healthz tells the truth early; a
     * failure here is retried by the loop like any other. */
    rec_store_ready(&store);
    rec_loop_run(&loop);
    op_info("stopped", "batches=%llu fills=%llu order_updates=%llu dead_letters=%llu",
            (unsigned long long)REC_GET(&stats, batches),
            (unsigned long long)REC_GET(&stats, fills_written),
            (unsigned long long)REC_GET(&stats, orders_written),
            (unsigned long long)REC_GET(&stats, dead_letters));
    op_opsd_stop(opsd);
    rec_loop_release(&loop);
    rec_store_release(&store);
    rec_stream_release(&stream);
    rec_stats_release(&stats);
    op_symtab_release(&syms);
    return 0;
}

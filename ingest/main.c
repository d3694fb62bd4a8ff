/* orderpipe-ingest: the REST front door; wires config -> tables -> writer -> HTTP. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest/cors.h"
#include "ingest/http.h"
#include "ingest/ratelimit.h"
#include "ingest/reads.h"
#include "ingest/writer.h"
#include "shared/apikeys.h"
#include "shared/config.h"
#include "shared/log.h"
#include "shared/redis.h"
#include "shared/service.h"
#include "shared/symbols.h"

/* Loads the symbol table and the API keys, or exits naming the file. */
static void load_tables(const struct op_config *c, struct op_symtab *syms, struct op_apikeys *keys)
{
    char err[300];
    op_symbols_load_or_exit(c, "ingest", syms);
    if (op_apikeys_load(keys, c->api_keys_file, err, sizeof(err)) != 0) {
        fprintf(stderr, "ingest: %s (API_KEYS_FILE)\n", err);
        exit(2);
    }
}

/*
 * INGEST_CORS_ORIGINS into cors, or exits naming it. Unset, it is the
 * feed's own origins — its console page posts orders here — on FEED_PORT
 * (8081): http://127.0.0.1:<port> and http://localhost:<port>.
 */
static void load_cors(struct cors_origins *cors)
{
    char def[64], err[300];
    const char *list = op_env_str("INGEST_CORS_ORIGINS", NULL);
    if (!list) {
        long long feed_port = op_env_int_or_exit("ingest", "FEED_PORT", 8081, 1, 65535);
        snprintf(def, sizeof(def), "http://127.0.0.1:%lld,http://localhost:%lld", feed_port,
                 feed_port);
        list = def;
    }
    if (cors_origins_parse(cors, list, err, sizeof(err)) != 0) {
        fprintf(stderr,
                "ingest: invalid INGEST_CORS_ORIGINS='%.200s': %s (a comma-separated list of "
                "origins, or none)\n",
                list, err);
        exit(2);
    }
}

/* INGEST_FAULT=alloc:N (tests only): the Nth allocation of every request
 * fails (http_fault_init). Returns N, 0 when unset; exits on
 * anything else. */
static long load_fault(void)
{
    const char *f = op_env_str("INGEST_FAULT", NULL);
    if (!f)
        return 0;
    char *end = NULL;
    long n = 0;
    if (strncmp(f, "alloc:", 6) == 0)
        n = strtol(f + 6, &end, 10);
    if (n < 1 || !end || *end != '\0') {
        fprintf(stderr, "ingest: invalid INGEST_FAULT='%.60s': want alloc:N (N >= 1; test only)\n",
                f);
        exit(2);
    }
    return n;
}

int main(void)
{
    struct op_config c;
    struct op_symtab syms;
    struct op_apikeys keys;
    static struct cors_origins cors; /* 8 KiB: not on the stack */

    op_config_load_or_exit(&c, "ingest");
    load_cors(&cors);
    struct http_config hc = {
        .bind = op_env_str("INGEST_BIND", "127.0.0.1"),
        .port = c.ingest_port,
        .threads = (int)op_env_int_or_exit("ingest", "INGEST_THREADS", 2, 1, 64),
        .max_connections =
            (int)op_env_int_or_exit("ingest", "INGEST_MAX_CONNECTIONS", 4096, 1, 1000000),
        .max_connections_per_ip =
            (int)op_env_int_or_exit("ingest", "INGEST_MAX_CONNECTIONS_PER_IP", 1024, 0, 1000000),
        .idle_timeout_s = (int)op_env_int_or_exit("ingest", "INGEST_IDLE_TIMEOUT_S", 30, 1, 3600),
        .request_timeout_ms =
            (int)op_env_int_or_exit("ingest", "INGEST_REQUEST_TIMEOUT_MS", 10000, 100, 600000),
        .max_body =
            (size_t)op_env_int_or_exit("ingest", "INGEST_MAX_BODY", 1 << 20, 1024, 64 << 20),
        /* 90 days: the longest GTD the big venues take; at most 10 years,
         * far inside what expire_ns (uint64 ns, until 2554) can hold. */
        .max_expiry_ms = op_env_int_or_exit("ingest", "INGEST_MAX_EXPIRY_MS", 90LL * 86400000, 1000,
                                            3650LL * 86400000),
        .shards = c.order_shards,
    };
    struct writer_config wc = {
        .redis_url = c.redis_url,
        .timeout_ms = c.redis_timeout_ms,
        .shards = c.order_shards,
        .max_lag = op_env_int_or_exit("ingest", "INGEST_MAX_LAG", 1000000, 1, INT64_MAX),
        .idempotency_ttl_s = (int)op_env_int_or_exit("ingest", "INGEST_IDEMPOTENCY_TTL_S", 86400,
                                                     86400, 30LL * 86400),
        .lanes = (int)op_env_int_or_exit("ingest", "INGEST_REDIS_LANES", 2, 1, 32),
    };
    /* INGEST_MIN_REPLICAS 0: no WAIT at all (today's cost); docs/ingest.md,
     * "Replica acknowledgement". Why 100 ms for INGEST_REPLICA_TIMEOUT_MS: a
     * healthy replica acknowledges within a round trip (< 1 ms on a LAN, a
     * few ms across zones); 100 ms rides out a replica's fsync or fork
     * stall, and bounds what a dead replica adds to every round: WAIT waits
     * its whole timeout whenever fewer replicas than asked are connected, so
     * each round then answers 503 after 100 ms. */
    op_replica_settings_or_exit("ingest", "INGEST", wc.timeout_ms, &wc.min_replicas,
                                &wc.replica_timeout_ms);
    int drain_s = (int)op_env_int_or_exit("ingest", "INGEST_DRAIN_TIMEOUT_S", 10, 0, 3600);
    /* Orders per second per API key, per ingest instance (0: no limit); the
     * burst defaults to one second's worth. 10^9: ingest/ratelimit.h. */
    int64_t rate = op_env_int_or_exit("ingest", "INGEST_RATE_LIMIT", 0, 0, 1000000000);
    int64_t burst =
        op_env_int_or_exit("ingest", "INGEST_RATE_BURST", rate > 0 ? rate : 1, 1, 1000000000);

    http_fault_init(load_fault()); /* before any thread starts */
    load_tables(&c, &syms, &keys);
    op_stop_signals_install();

    if (rate > 0 && !(hc.limiter = ratelimit_new(keys.n, rate, burst))) {
        fprintf(stderr, "ingest: out of memory for the rate limits of %zu keys\n", keys.n);
        return 1;
    }
    reads_init(c.database_url);
    struct writer *w = writer_start(&wc);
    if (!w)
        return 1;
    hc.syms = &syms;
    hc.keys = &keys;
    hc.writer = w;
    hc.cors = &cors;
    struct http_server *s = http_start(&hc);
    if (!s) {
        writer_stop(w);
        writer_free(w);
        return 1;
    }
    op_info("started",
            "bind=%s port=%d threads=%d shards=%u symbols=%zu keys=%zu rate_limit=%lld "
            "rate_burst=%lld cors_origins=%d",
            hc.bind, hc.port, hc.threads, c.order_shards, syms.n, keys.n,
            (long long)(rate > 0 ? rate : 0), (long long)(rate > 0 ? burst : 0), cors.n);

    while (!op_stop_requested)
        usleep(50000); /* a signal also cuts the sleep short */

    /* Graceful stop: no new connections, let in-flight requests finish (the
     * writer answers every queued job), then stop the daemon. */
    op_info("stopping", "inflight=%ld", http_inflight(s));
    http_quiesce(s);
    int64_t deadline = op_now_ms() + (int64_t)drain_s * 1000;
    while (http_inflight(s) > 0 && op_now_ms() < deadline)
        usleep(10000);
    writer_stop(w); /* answers anything still queued, resuming its connections */
    usleep(50000);  /* let resumed connections send their answers */
    long left = http_inflight(s);
    http_stop(s);
    writer_free(w); /* only now: HTTP threads may submit until the daemon stopped */
    op_info("stopped", "unanswered=%ld", left);
    ratelimit_free(hc.limiter);
    op_symtab_release(&syms);
    op_apikeys_release(&keys);
    return 0;
}

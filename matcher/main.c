/* orderpipe-matcher: wires config -> symbol table -> worker loop, with /healthz and /metrics. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "matcher/matcher.h"
#include "shared/alloc.h"
#include "shared/config.h"
#include "shared/log.h"
#include "shared/opsd.h"
#include "shared/service.h"

#include <stdatomic.h>

/* MATCHER_NAME, or "<host>-<pid>-<random>": unique even for containers that
 * all run as pid 1 on hosts with equal names. */
static void worker_name(char *out, size_t size)
{
    const char *name = op_env_str("MATCHER_NAME", NULL);
    if (name) {
        if (strlen(name) >= size || strpbrk(name, " \t\r\n\"")) {
            fprintf(stderr,
                    "matcher: invalid MATCHER_NAME='%.60s': want 1-95 characters without "
                    "spaces or quotes\n",
                    name);
            exit(2);
        }
        snprintf(out, size, "%s", name);
        return;
    }
    char host[48] = "matcher";
    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    unsigned rnd = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(&rnd, sizeof(rnd), 1, f) != 1)
        rnd = (unsigned)op_now_ms() ^ (unsigned)getpid() * 2654435761u;
    if (f)
        fclose(f);
    snprintf(out, size, "%s-%ld-%08x", host, (long)getpid(), rnd);
}

struct ops_ctx {
    const struct matcher_config *cfg;
    const struct matcher_stats *st;
};

/* Healthy while Redis answers; the body says what this worker holds. */
static int health(void *arg, struct op_buf *out)
{
    const struct ops_ctx *x = arg;
    int up = atomic_load(&x->st->redis_up);
    int owned = 0;
    for (uint32_t s = 0; s < x->cfg->shards; s++)
        owned += atomic_load(&x->st->shard[s].owned);
    op_buf_printf(out, "{\"status\":\"%s\",\"redis\":%s,\"name\":\"%s\",\"owned_shards\":%d}",
                  up ? "ok" : "unavailable", up ? "true" : "false", x->cfg->name, owned);
    return up;
}

static void metrics(void *arg, struct op_buf *out)
{
    const struct ops_ctx *x = arg;
    stats_render(x->st, x->cfg->shards, out);
}

/* MATCHER_FAULT=fail_alloc:N (test only, tests/integration/matcher_alloc.sh):
 * the Nth allocation through shared/alloc.h fails, once, so that the
 * out-of-memory paths of the matcher are exercised on the real binary. */
static _Atomic unsigned long long fault_calls;
static unsigned long long fault_at;

/* Counts an allocation; 1 when it is the one to fail (logged). */
static int fault_hit(size_t n)
{
    if (atomic_fetch_add(&fault_calls, 1) + 1 != fault_at)
        return 0;
    op_warn("fault_alloc_failed", "call=%llu bytes=%zu note=\"MATCHER_FAULT\"", fault_at, n);
    return 1;
}

static void *fault_malloc(size_t n)
{
    return fault_hit(n) ? NULL : malloc(n);
}

static void *fault_realloc(void *p, size_t n)
{
    return fault_hit(n) ? NULL : realloc(p, n);
}

/* Reads MATCHER_FAULT; exits 2 on a bad value. */
static void fault_install(void)
{
    const char *fault = op_env_str("MATCHER_FAULT", NULL);
    if (!fault)
        return;
    char *end = NULL;
    if (strncmp(fault, "fail_alloc:", 11) == 0)
        fault_at = strtoull(fault + 11, &end, 10);
    if (fault_at == 0 || !end || *end != '\0') {
        fprintf(stderr,
                "matcher: invalid MATCHER_FAULT='%.60s': want fail_alloc:N (N >= 1; test only)\n",
                fault);
        exit(2);
    }
    static const struct op_alloc_hooks hooks = {fault_malloc, fault_realloc, free};
    op_alloc_set_hooks(&hooks);
}

int main(void)
{
    struct op_config c;
    struct op_symtab syms;
    struct matcher_config mc;

    op_config_load_or_exit(&c, "matcher");
    memset(&mc, 0, sizeof(mc));
    mc.redis_url = c.redis_url;
    mc.redis_timeout_ms = c.redis_timeout_ms;
    mc.shards = c.order_shards;
    worker_name(mc.name, sizeof(mc.name));
    mc.lease_ms = (int)op_env_int_or_exit("matcher", "MATCHER_LEASE_MS", 3000, 300, 600000);
    /* Why 2000: with appendfsync always every batch costs one fsync and one
     * round trip, whatever its size; a backlog drains ~15% faster than with
     * 500 (bench/matcher.sh), and ~3,200 reports still fit in one fills
     * entry (4096). A live flow's batches are what arrived meanwhile. */
    mc.batch = (int)op_env_int_or_exit("matcher", "MATCHER_BATCH", 2000, 1, 10000);
    mc.block_ms = (int)op_env_int_or_exit("matcher", "MATCHER_BLOCK_MS", 100, 1, 10000);
    mc.snapshot_every =
        op_env_int_or_exit("matcher", "MATCHER_SNAPSHOT_EVERY", 100000, 1, 1000000000);
    mc.snapshot_ms = (int)op_env_int_or_exit("matcher", "MATCHER_SNAPSHOT_MS", 30000, 10, 86400000);
    mc.book_ms = (int)op_env_int_or_exit("matcher", "MATCHER_BOOK_MS", 100, 0, 3600000);
    mc.book_levels =
        (int)op_env_int_or_exit("matcher", "MATCHER_BOOK_LEVELS", 100, 1, MATCHER_BOOK_LEVELS_MAX);
    mc.metrics_port = (int)op_env_int_or_exit("matcher", "MATCHER_METRICS_PORT", 9101, 0, 65535);
    mc.closed_max = (uint32_t)op_env_int_or_exit("matcher", "MATCHER_CLOSED_MAX",
                                                 ENG_CLOSED_DEFAULT, 1, ENG_CLOSED_LIMIT);
    mc.max_open = (uint32_t)op_env_int_or_exit("matcher", "MAX_OPEN_ORDERS", 10000, 0, 100000000);
    /* Why 100 ms: an expiry or a dead-man deadline of an idle shard happens
     * at most this long (plus a BLOCK's lateness) after it is due, and a
     * shard with something pending costs at most 10 small writes a second. */
    mc.tick_ms = (int)op_env_int_or_exit("matcher", "MATCHER_TICK_MS", 100, 0, 3600000);
    mc.tick_force = (int)op_env_int_or_exit("matcher", "MATCHER_TICK_FORCE", 0, 0, 1);
    /* Separate from INGEST_MIN_REPLICAS: ingest's WAIT decides an answer,
     * the matcher's only bounds how far it runs ahead of the replicas and
     * costs a round trip (and, without a replica, the whole timeout) per
     * batch (docs/matcher.md, "Replica acknowledgement"). Why 100 ms: as
     * INGEST_REPLICA_TIMEOUT_MS, a healthy replica answers within a round
     * trip; a missing one then costs each batch 100 ms. */
    op_replica_settings_or_exit("matcher", "MATCHER", mc.redis_timeout_ms, &mc.min_replicas,
                                &mc.replica_timeout_ms);
    const char *bind = op_env_str("METRICS_BIND", "127.0.0.1");
    if (mc.block_ms >= mc.redis_timeout_ms) {
        fprintf(stderr,
                "matcher: invalid MATCHER_BLOCK_MS=%d: must be below REDIS_TIMEOUT_MS=%d "
                "(a blocked read would look like a timeout)\n",
                mc.block_ms, mc.redis_timeout_ms);
        exit(2);
    }
    if (mc.redis_timeout_ms >= mc.lease_ms) {
        fprintf(stderr,
                "matcher: invalid MATCHER_LEASE_MS=%d: must exceed REDIS_TIMEOUT_MS=%d "
                "(a worker must notice a dead connection before its lease runs out)\n",
                mc.lease_ms, mc.redis_timeout_ms);
        exit(2);
    }
    op_symbols_load_or_exit(&c, "matcher", &syms);
    mc.syms = &syms;

    fault_install();
    struct matcher_stats st;
    memset(&st, 0, sizeof(st));
    st.shard = op_calloc(mc.shards, sizeof(*st.shard));
    struct worker *w = st.shard ? worker_new(&mc, &st) : NULL;
    if (!w) {
        fprintf(stderr, "matcher: out of memory (%u shards)\n", mc.shards);
        op_free(st.shard);
        op_symtab_release(&syms);
        return 1;
    }

    op_stop_signals_install();

    struct ops_ctx ox = {&mc, &st};
    struct op_opsd *opsd = NULL;
    if (mc.metrics_port > 0) {
        struct op_opsd_config oc = {.bind = bind,
                                    .port = mc.metrics_port,
                                    .health = health,
                                    .metrics = metrics,
                                    .arg = &ox};
        opsd = op_opsd_start(&oc);
        if (!opsd) {
            fprintf(stderr,
                    "matcher: cannot serve metrics on %s:%d (METRICS_BIND, "
                    "MATCHER_METRICS_PORT): port in use or bad address\n",
                    bind, mc.metrics_port);
            worker_free(w);
            op_free(st.shard);
            op_symtab_release(&syms);
            return 2;
        }
    }
    op_info("started",
            "name=%s shards=%u lease_ms=%d batch=%d snapshot_every=%lld "
            "snapshot_ms=%d book_ms=%d tick_ms=%d%s metrics_port=%d symbols=%zu",
            mc.name, mc.shards, mc.lease_ms, mc.batch, mc.snapshot_every, mc.snapshot_ms,
            mc.book_ms, mc.tick_ms, mc.tick_force ? " tick_force=1" : "", mc.metrics_port, syms.n);

    int rc = worker_run(w, &op_stop_requested);

    op_opsd_stop(opsd);
    worker_free(w);
    op_free(st.shard);
    op_symtab_release(&syms);
    op_info("stopped", "rc=%d", rc);
    return rc;
}

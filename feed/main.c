/* orderpipe-feed: fills:{S} -> WebSocket clients; wires config -> source -> hub -> ws. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "feed/hub.h"
#include "feed/source.h"
#include "feed/ws.h"
#include "shared/apikeys.h"
#include "shared/config.h"
#include "shared/log.h"
#include "shared/service.h"
#include "shared/symbols.h"

struct settings {
    long long port;          /* FEED_PORT */
    const char *bind;        /* FEED_BIND */
    long long queue_kb;      /* FEED_CLIENT_QUEUE_KB */
    long long max_delay_ms;  /* FEED_CLIENT_MAX_DELAY_MS */
    long long book_ms;       /* FEED_BOOK_MS */
    long long page_entries;  /* FEED_PAGE_ENTRIES */
    const char *console_dir; /* FEED_CONSOLE_DIR */
    char ingest_url[512];    /* FEED_INGEST_URL */
};

static void load_settings(struct settings *s, const struct op_config *c)
{
    s->port = op_env_int_or_exit("feed", "FEED_PORT", 8081, 1, 65535);
    s->bind = op_env_str("FEED_BIND", "127.0.0.1");
    /* Why 8 MiB: about a second of a market maker's reports at 10k orders/s
     * (bench feed: 7-14 MB/s for such an account), many seconds of a
     * symbol's trades. The memory it bounds is per client; messages shared
     * by many clients are held once. */
    s->queue_kb = op_env_int_or_exit("feed", "FEED_CLIENT_QUEUE_KB", 8192, 4, 1048576);
    /* Why 5 s: a client that reads is never that far behind unless it
     * stalls; one that stopped reading is dropped then, whatever its rate. */
    s->max_delay_ms = op_env_int_or_exit("feed", "FEED_CLIENT_MAX_DELAY_MS", 5000, 0, 3600000);
    /* Why 50 ms: half the matcher's default MATCHER_BOOK_MS, so a book
     * update reaches clients at most ~150 ms after the trade. */
    s->book_ms = op_env_int_or_exit("feed", "FEED_BOOK_MS", 50, 5, 60000);
    s->page_entries = op_env_int_or_exit("feed", "FEED_PAGE_ENTRIES", 1000, 1, 100000);
    s->console_dir = op_env_str("FEED_CONSOLE_DIR", "feed/console");
    const char *ingest = op_env_str("FEED_INGEST_URL", NULL);
    if (ingest && (strlen(ingest) >= sizeof(s->ingest_url) ||
                   (strncmp(ingest, "http://", 7) != 0 && strncmp(ingest, "https://", 8) != 0))) {
        fprintf(stderr, "feed: invalid FEED_INGEST_URL='%.60s': want an http:// or https:// URL\n",
                ingest);
        exit(2);
    }
    if (ingest)
        snprintf(s->ingest_url, sizeof(s->ingest_url), "%s", ingest);
    else
        snprintf(s->ingest_url, sizeof(s->ingest_url), "http://127.0.0.1:%d", c->ingest_port);
}

int main(void)
{
    struct op_config c;
    struct op_symtab syms;
    struct op_apikeys keys;
    struct settings set;
    char err[512];

    op_config_load_or_exit(&c, "feed");
    load_settings(&set, &c);
    op_symbols_load_or_exit(&c, "feed", &syms);
    if (op_apikeys_load(&keys, c.api_keys_file, err, sizeof(err)) != 0) {
        fprintf(stderr, "feed: %s (API_KEYS_FILE)\n", err);
        return 2;
    }
    op_stop_signals_install();
    /* Each client is a socket: take every descriptor the hard limit allows
     * (libwebsockets sizes its tables from the soft limit at start). */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    struct feed_ws_config wc = {.bind = set.bind,
                                .port = (int)set.port,
                                .console_dir = set.console_dir,
                                .ingest_url = set.ingest_url,
                                .syms = &syms};
    struct feed_ws *ws = feed_ws_new(&wc);
    if (!ws) {
        fprintf(stderr,
                "feed: cannot listen on %s:%lld (FEED_BIND, FEED_PORT): port in use or "
                "bad address\n",
                set.bind, set.port);
        return 2;
    }
    struct feed_source_config sc = {.redis_url = c.redis_url,
                                    .timeout_ms = c.redis_timeout_ms,
                                    .shards = c.order_shards,
                                    .syms = &syms,
                                    .page_entries = (uint32_t)set.page_entries,
                                    .book_ms = (int)set.book_ms,
                                    .wake = feed_ws_wake,
                                    .wake_arg = ws};
    struct feed_source *src = feed_source_new(&sc, err, sizeof(err));
    if (!src) {
        fprintf(stderr, "feed: %s (REDIS_URL)\n", err);
        feed_ws_free(ws);
        return 2;
    }
    struct feed_hub_config hc = {.syms = &syms,
                                 .keys = &keys,
                                 .shards = c.order_shards,
                                 .queue_max = (size_t)set.queue_kb * 1024,
                                 .max_delay_ms = set.max_delay_ms,
                                 .src = src,
                                 .want_write = feed_ws_want_write,
                                 .kill = feed_ws_kill};
    struct feed_hub *hub = feed_hub_new(&hc);
    if (!hub || feed_source_start(src) != 0) {
        fprintf(stderr, "feed: out of memory\n");
        return 1;
    }
    op_info("started",
            "bind=%s port=%lld shards=%u symbols=%zu queue_kb=%lld book_ms=%lld console=%s "
            "ingest_url=%s",
            set.bind, set.port, c.order_shards, syms.n, set.queue_kb, set.book_ms, set.console_dir,
            set.ingest_url);
    feed_ws_run(ws, hub, src, &op_stop_requested);
    op_info("stopping", "clients=%llu", (unsigned long long)feed_hub_stats(hub)->clients);
    /* The source's threads first (they wake the loop), then the sockets
     * (closing them calls the hub), then the hub, then the source. */
    feed_source_stop(src);
    feed_ws_free(ws);
    feed_hub_free(hub);
    feed_source_free(src);
    op_apikeys_release(&keys);
    op_symtab_release(&syms);
    op_info("stopped", "ok=1");
    return 0;
}

/* The HTTP front door: libmicrohttpd daemon, routing, limits, suspend/resume. */
#ifndef INGEST_HTTP_H
#define INGEST_HTTP_H

#include <stdint.h>

#include "ingest/cors.h"
#include "ingest/ratelimit.h"
#include "ingest/writer.h"
#include "shared/apikeys.h"
#include "shared/symbols.h"

struct http_config {
    const char *bind;           /* INGEST_BIND */
    int port;                   /* INGEST_PORT */
    int threads;                /* INGEST_THREADS */
    int max_connections;        /* INGEST_MAX_CONNECTIONS: above it, evict the idlest */
    int max_connections_per_ip; /* INGEST_MAX_CONNECTIONS_PER_IP, 0 = no cap */
    int idle_timeout_s;         /* INGEST_IDLE_TIMEOUT_S */
    int request_timeout_ms;     /* INGEST_REQUEST_TIMEOUT_MS */
    size_t max_body;            /* INGEST_MAX_BODY */
    int64_t max_expiry_ms;      /* INGEST_MAX_EXPIRY_MS: a GTD order's horizon */
    uint32_t shards;
    const struct op_symtab *syms;    /* (ref) */
    const struct op_apikeys *keys;   /* (ref) */
    struct writer *writer;           /* (ref) */
    struct ratelimit *limiter;       /* (ref) INGEST_RATE_LIMIT per key of keys, NULL: none */
    const struct cors_origins *cors; /* (ref) INGEST_CORS_ORIGINS; NULL or empty: no CORS */
};

struct http_server;

/* INGEST_FAULT=alloc:N (tests only): from now on, the Nth allocation made
 * for each HTTP request fails (alloc_at 0: never). Installs allocation
 * hooks: call before starting any thread. */
void http_fault_init(long alloc_at);

/* Starts listening and serving on its own threads. Returns NULL with a
 * message on stderr (e.g. the port is taken). */
struct http_server *http_start(const struct http_config *cfg);

/* Graceful stop, step 1: stop accepting connections. */
void http_quiesce(struct http_server *s);

/* Requests received but not answered yet. */
long http_inflight(struct http_server *s);

/* Step 2: stops the daemon (every suspended connection must have been
 * resumed: stop the writer first, which answers its queue) and frees s. */
void http_stop(struct http_server *s);

#endif

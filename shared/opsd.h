/* A small operations HTTP server: GET /healthz and GET /metrics from callbacks. */
#ifndef OP_OPSD_H
#define OP_OPSD_H

#include <stdint.h>

#include "shared/buf.h"

/*
 * The only file of shared/ that includes <microhttpd.h> (ingest keeps its own
 * server). A service that is not an HTTP server itself (recorder, matcher)
 * starts one of these beside its loop so that Prometheus can scrape it and an
 * orchestrator can probe it.
 *
 * Both callbacks run on the daemon's own thread, concurrently with the
 * service's loop: they must only read state that is safe to read from another
 * thread (atomics, or data under the service's own lock).
 */
struct op_opsd_config {
    const char *bind; /* IPv4 address to listen on, e.g. "127.0.0.1" */
    int port;         /* TCP port, 1..65535 */
    /* Appends a short JSON body for GET /healthz to out and returns 1 when
     * healthy (200) or 0 when not (503). */
    int (*health)(void *arg, struct op_buf *out);
    /* Appends the Prometheus text exposition for GET /metrics to out. */
    void (*metrics)(void *arg, struct op_buf *out);
    void *arg; /* (ref) passed to both callbacks */
};

struct op_opsd;

/*
 * Starts listening on cfg->bind:cfg->port with one internal thread. Returns
 * the server, or NULL after logging why (bad address, port in use). The
 * config is copied; cfg->arg must outlive the server. Other paths answer 404,
 * other methods 405.
 */
struct op_opsd *op_opsd_start(const struct op_opsd_config *cfg);

/* Stops the daemon (waits for its thread) and frees d. NULL is a no-op. */
void op_opsd_stop(struct op_opsd *d);

#endif

/* A small operations HTTP server: GET /healthz and GET /metrics from callbacks. */
#include "shared/opsd.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "shared/alloc.h"
#include "shared/log.h"

struct op_opsd {
    struct op_opsd_config cfg; /* copied at start */
    struct MHD_Daemon *d;
};

/* Why these limits: a scrape or a probe is one small request; a handful of
 * concurrent connections covers Prometheus plus an orchestrator, and 10 s
 * drops a stuck client without troubling a slow scraper. */
#define OPSD_MAX_CONNECTIONS 32
#define OPSD_TIMEOUT_S 10

/* libmicrohttpd's error messages, as one log line each. */
static void opsd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    op_log_message(OP_LOG_WARN, "opsd_error", fmt, ap);
}

/* Queues a copy of body with content type ctype and the given status. */
static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *ctype,
                             const char *body, size_t len, const char *allow)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", ctype);
    if (allow)
        MHD_add_response_header(resp, "Allow", allow);
    enum MHD_Result rc = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* GET /healthz -> health callback, GET /metrics -> metrics callback; no body
 * is read (GET only), so the first call for a request answers it. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    struct op_opsd *d = cls;
    (void)version, (void)upload_data, (void)con_cls;
    if (*upload_size) {
        *upload_size = 0; /* a GET has no body; ignore whatever was sent */
        return MHD_YES;
    }
    int is_health = strcmp(url, "/healthz") == 0;
    int is_metrics = strcmp(url, "/metrics") == 0;
    if (!is_health && !is_metrics) {
        static const char nf[] = "{\"error\":{\"code\":\"not_found\",\"message\":\"try /healthz "
                                 "or /metrics\",\"field\":\"\"}}";
        return reply(conn, MHD_HTTP_NOT_FOUND, "application/json", nf, sizeof(nf) - 1, NULL);
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        static const char na[] = "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"GET "
                                 "only\",\"field\":\"GET\"}}";
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "application/json", na, sizeof(na) - 1,
                     "GET");
    }
    struct op_buf b;
    op_buf_init(&b);
    enum MHD_Result rc;
    if (is_health) {
        int ok = d->cfg.health ? d->cfg.health(d->cfg.arg, &b) : 1;
        if (b.len == 0)
            op_buf_printf(&b, "{\"status\":\"%s\"}", ok ? "ok" : "unavailable");
        rc = reply(conn, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, "application/json",
                   b.data, b.len, NULL);
    } else {
        if (d->cfg.metrics)
            d->cfg.metrics(d->cfg.arg, &b);
        rc = reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4", b.data ? b.data : "", b.len,
                   NULL);
    }
    op_buf_release(&b);
    return rc;
}

struct op_opsd *op_opsd_start(const struct op_opsd_config *cfg)
{
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)cfg->port);
    if (cfg->port < 1 || cfg->port > 65535 || inet_pton(AF_INET, cfg->bind, &addr.sin_addr) != 1) {
        op_error("opsd_start_failed",
                 "bind=%s port=%d err=\"want an IPv4 address and a port in 1..65535\"", cfg->bind,
                 cfg->port);
        return NULL;
    }
    struct op_opsd *d = op_calloc(1, sizeof(*d));
    if (!d) {
        op_error("opsd_start_failed", "err=\"out of memory\"");
        return NULL;
    }
    d->cfg = *cfg;
    d->d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)cfg->port, NULL, NULL,
        on_request, d, MHD_OPTION_EXTERNAL_LOGGER, opsd_log, NULL, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned)OPSD_MAX_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)OPSD_TIMEOUT_S, MHD_OPTION_END);
    if (!d->d) {
        op_error("opsd_start_failed",
                 "bind=%s port=%d err=\"cannot listen: port in use or not "
                 "permitted\"",
                 cfg->bind, cfg->port);
        op_free(d);
        return NULL;
    }
    return d;
}

void op_opsd_stop(struct op_opsd *d)
{
    if (!d)
        return;
    MHD_stop_daemon(d->d);
    op_free(d);
}

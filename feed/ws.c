/* The feed's transport: one libwebsockets context serving WebSocket clients and HTTP. */
#include "feed/ws.h"

#include <libwebsockets.h>

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "feed/format.h"
#include "shared/alloc.h"
#include "shared/log.h"
#include "shared/metrics.h"

_Static_assert(LWS_PRE <= FEED_MSG_PRE, "FEED_MSG_PRE must hold libwebsockets' LWS_PRE");

/* Why 64 KiB: a client message is a small JSON object (a position of 1024
 * shards is ~40 KiB); anything larger is refused before it is parsed. */
#define RX_MAX ((size_t)64 * 1024)
/* Why 5 s: a connection that must close (slow consumer, bad key) gets that
 * long to take its close frame before the socket is dropped without it. */
#define KILL_SECS 5
/* Why 16: enough to empty a client's queue in few events, few enough that
 * one busy client cannot hold the loop from the others for long. */
#define WRITES_PER_EVENT 16

struct feed_ws {
    struct feed_ws_config cfg;
    struct lws_context *ctx;
    struct feed_hub *hub;    /* (ref) set by feed_ws_run */
    struct feed_source *src; /* (ref) */
    struct op_hist delivery; /* entry id time -> written to the socket, µs */
    struct op_buf page;      /* HTTP body assembly */
};

/* Per connection (HTTP or WebSocket), zeroed by libwebsockets. */
struct pss {
    struct feed_conn *conn; /* WebSocket: the hub's connection */
    struct op_buf rx;       /* WebSocket: fragments of the message being received */
    int rx_too_big;
    char *body; /* HTTP: LWS_PRE + body_len bytes, sent in HTTP_WRITEABLE */
    size_t body_len;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void feed_ws_wake(void *arg)
{
    struct feed_ws *w = arg;
    lws_cancel_service(w->ctx);
}

void feed_ws_want_write(void *transport)
{
    lws_callback_on_writable(transport);
}

void feed_ws_kill(void *transport)
{
    lws_set_timeout(transport, PENDING_TIMEOUT_USER_OK, KILL_SECS);
}

/* The metrics of the whole service. */
static void render_metrics(struct feed_ws *w, struct op_buf *b)
{
    const struct feed_hub_stats *hs = feed_hub_stats(w->hub);
    const struct feed_source_stats *ss = feed_source_stats(w->src);
    op_metrics_gauge(b, "feed_clients", "WebSocket connections open.", hs->clients);
    op_metrics_counter(b, "feed_connections_total", "WebSocket connections accepted.",
                       hs->connections);
    op_metrics_gauge(b, "feed_subscriptions", "Subscriptions open.", hs->subscriptions);
    op_metrics_counter(b, "feed_messages_total", "Messages written to clients.", hs->messages);
    op_metrics_counter(b, "feed_sent_bytes_total", "Bytes of messages written to clients.",
                       hs->bytes);
    op_metrics_gauge(b, "feed_queued_bytes", "Bytes queued for clients, all connections.",
                     hs->queued_bytes);
    op_metrics_counter(b, "feed_slow_closed_total",
                       "Connections closed 4001 because their queue passed FEED_CLIENT_QUEUE_KB.",
                       hs->slow_closed);
    op_metrics_counter(b, "feed_auth_failed_total", "Connections closed 1008 for a bad key.",
                       hs->auth_failed);
    op_metrics_counter(b, "feed_resumes_total", "Subscriptions resumed from a position.",
                       hs->resumes);
    op_metrics_counter(b, "feed_gaps_total", "Resumes answered gap.", hs->gaps);
    op_metrics_counter(b, "feed_book_updates_total", "Book update messages built.",
                       hs->book_updates);
    op_metrics_counter(b, "feed_entries_total", "fills entries read live.",
                       atomic_load(&ss->entries));
    op_metrics_counter(b, "feed_reports_total", "Reports in them.", atomic_load(&ss->reports));
    op_metrics_counter(b, "feed_malformed_total", "fills entries whose m did not decode.",
                       atomic_load(&ss->malformed));
    op_metrics_counter(
        b, "feed_holes_total",
        "Times entries were trimmed before the feed read them (subscribers got gap).",
        atomic_load(&ss->holes));
    op_metrics_counter(b, "feed_replay_pages_total", "Replay pages read from the streams.",
                       atomic_load(&ss->fetches));
    op_metrics_counter(b, "feed_book_reads_total", "Changed book texts read.",
                       atomic_load(&ss->books));
    op_metrics_counter(b, "feed_redis_errors_total", "Failed Redis commands or connections.",
                       atomic_load(&ss->redis_errors));
    op_metrics_gauge(b, "feed_redis_up", "1 while the live reader's Redis works.",
                     (uint64_t)atomic_load(&ss->redis_up));
    op_metrics_histogram(b, "feed_delivery_seconds",
                         "From the fills entry's id time (ms) to its message written to a client.",
                         &w->delivery, 1e-6, 0);
}

/* Answers an HTTP request with status, type and the body in w->page. */
static int http_reply(struct lws *wsi, struct pss *p, unsigned status, const char *type,
                      const struct op_buf *body)
{
    unsigned char hdr[LWS_PRE + 1024], *start = hdr + LWS_PRE, *q = start, *end = hdr + sizeof(hdr);
    p->body = op_malloc(LWS_PRE + body->len + 1);
    if (!p->body)
        return -1;
    memcpy(p->body + LWS_PRE, body->data ? body->data : "", body->len);
    p->body_len = body->len;
    if (lws_add_http_common_headers(wsi, status, type, (lws_filepos_t)body->len, &q, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-store", 8, &q, end) ||
        lws_finalize_write_http_header(wsi, start, &q, end))
        return -1;
    lws_callback_on_writable(wsi);
    return 0;
}

static const char *mime_of(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot)
        return "application/octet-stream";
    if (!strcmp(dot, ".html"))
        return "text/html; charset=utf-8";
    if (!strcmp(dot, ".js"))
        return "text/javascript; charset=utf-8";
    if (!strcmp(dot, ".css"))
        return "text/css; charset=utf-8";
    if (!strcmp(dot, ".json"))
        return "application/json";
    if (!strcmp(dot, ".svg"))
        return "image/svg+xml";
    if (!strcmp(dot, ".png"))
        return "image/png";
    return "application/octet-stream";
}

/* 1 when name is a plain file name of the console: [A-Za-z0-9._-], no
 * leading dot (no path, no "..", no hidden file). */
static int safe_name(const char *name)
{
    if (!name[0] || name[0] == '.' || strlen(name) > 100)
        return 0;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '.' || *c == '_' || *c == '-'))
            return 0;
    return 1;
}

static int on_http(struct feed_ws *w, struct lws *wsi, struct pss *p, const char *uri)
{
    struct op_buf *b = &w->page;
    op_buf_reset(b);
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0) {
        op_buf_printf(b, "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"only GET\"}}");
        return http_reply(wsi, p, 405, "application/json", b);
    }
    if (!strcmp(uri, "/healthz")) {
        const struct feed_source_stats *ss = feed_source_stats(w->src);
        int up = atomic_load(&ss->redis_up);
        op_buf_printf(b, "{\"status\":\"%s\",\"redis\":%s,\"clients\":%" PRIu64 "}",
                      up ? "ok" : "unavailable", up ? "true" : "false",
                      feed_hub_stats(w->hub)->clients);
        return http_reply(wsi, p, up ? 200 : 503, "application/json", b);
    }
    if (!strcmp(uri, "/metrics")) {
        render_metrics(w, b);
        return http_reply(wsi, p, 200, "text/plain; version=0.0.4", b);
    }
    if (!strcmp(uri, "/config.json")) {
        op_buf_printf(b, "{\"ingest_url\":");
        feed_json_str(b, w->cfg.ingest_url, strlen(w->cfg.ingest_url));
        op_buf_printf(b, ",\"symbols\":[");
        for (size_t i = 0; i < w->cfg.syms->n; i++)
            op_buf_printf(b, "%s\"%s\"", i ? "," : "", w->cfg.syms->v[i].name);
        op_buf_printf(b, "]}");
        return http_reply(wsi, p, 200, "application/json", b);
    }
    const char *name = !strcmp(uri, "/") ? "index.html" : uri + 1;
    if (uri[0] == '/' && safe_name(name)) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", w->cfg.console_dir, name);
        FILE *f = fopen(path, "rb");
        if (f) {
            char chunk[8192];
            size_t n;
            while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
                op_buf_append(b, chunk, n);
            fclose(f);
            return http_reply(wsi, p, 200, mime_of(name), b);
        }
    }
    op_buf_printf(b, "{\"error\":{\"code\":\"not_found\",\"message\":\"no such path\"}}");
    return http_reply(wsi, p, 404, "application/json", b);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct feed_ws *w = lws_context_user(lws_get_context(wsi));
    struct pss *p = user;
    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (w->hub)
            feed_hub_pump(w->hub);
        return 0;
    case LWS_CALLBACK_HTTP:
        return on_http(w, wsi, p, in ? (const char *)in : "/") ? -1 : 0;
    case LWS_CALLBACK_HTTP_WRITEABLE: {
        if (!p->body)
            return -1;
        int n =
            lws_write(wsi, (unsigned char *)p->body + LWS_PRE, p->body_len, LWS_WRITE_HTTP_FINAL);
        op_free(p->body);
        p->body = NULL;
        if (n < 0)
            return -1;
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    case LWS_CALLBACK_CLOSED_HTTP:
        op_free(p->body);
        p->body = NULL;
        return 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
        char uri[64] = "";
        lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);
        return strcmp(uri, "/ws") == 0 ? 0 : -1; /* only /ws upgrades */
    }
    case LWS_CALLBACK_ESTABLISHED:
        op_buf_init(&p->rx);
        p->conn = w->hub ? feed_hub_open(w->hub, wsi) : NULL;
        return p->conn ? 0 : -1;
    case LWS_CALLBACK_RECEIVE:
        if (!p->conn)
            return -1;
        if (lws_frame_is_binary(wsi))
            p->rx_too_big = 1; /* text only: answered as a bad request below */
        if (!p->rx_too_big && (p->rx.len + len > RX_MAX || op_buf_append(&p->rx, in, len) != 0))
            p->rx_too_big = 1;
        if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
            return 0;
        if (p->rx_too_big) {
            static const char bad[] = "{\"op\":0}"; /* answered bad_request by the hub */
            feed_hub_text(w->hub, p->conn, bad, sizeof(bad) - 1);
        } else {
            feed_hub_text(w->hub, p->conn, p->rx.data ? p->rx.data : "", p->rx.len);
        }
        op_buf_reset(&p->rx);
        p->rx_too_big = 0;
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE: {
        if (!p->conn)
            return -1;
        /* Several queued messages per writable event, while the socket
         * takes them without libwebsockets buffering a remainder: one poll
         * pass per message would cap a busy client at the loop's rate. */
        for (int k = 0; k < WRITES_PER_EVENT; k++) {
            struct feed_msg *m = NULL;
            const char *why = NULL;
            int code = feed_hub_next(w->hub, p->conn, &m, &why);
            if (code) {
                lws_close_reason(wsi, (enum lws_close_status)code, (unsigned char *)why,
                                 strlen(why));
                return -1;
            }
            if (!m)
                return 0;
            if (lws_write(wsi, feed_msg_text(m), m->len, LWS_WRITE_TEXT) < (int)m->len)
                return -1;
            if (m->born_ms) {
                int64_t d = wall_ms() - (int64_t)m->born_ms;
                op_hist_observe(&w->delivery, d > 0 ? (uint64_t)d * 1000 : 0);
            }
            if (!feed_hub_sent(w->hub, p->conn))
                return 0;
            if (lws_send_pipe_choked(wsi))
                break;
        }
        lws_callback_on_writable(wsi);
        return 0;
    }
    case LWS_CALLBACK_CLOSED:
        if (p->conn)
            feed_hub_close(w->hub, p->conn);
        p->conn = NULL;
        op_buf_release(&p->rx);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* rx 4096: a client message is small (larger ones arrive in fragments,
 * joined in pss->rx). tx: without it libwebsockets cuts every send at the
 * rx size and sends one 4 KiB piece per writable event, so a 60 KiB message
 * took 15 passes over the poll loop (bench feed, strace: 2-6 sends per
 * message); 1 MiB lets one lws_write hand a whole message to the kernel. */
#define TX_PACKET_SIZE (1u << 20)

static const struct lws_protocols protocols[] = {
    {"feed", callback, sizeof(struct pss), 4096, 0, NULL, TX_PACKET_SIZE},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* libwebsockets' own log lines, through ours (errors and warnings only). */
static void lws_logger(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    if (level & LLL_ERR)
        op_warn("libwebsockets", "level=err msg=\"%.*s\"", (int)n, line);
    else
        op_info("libwebsockets", "level=warn msg=\"%.*s\"", (int)n, line);
}

struct feed_ws *feed_ws_new(const struct feed_ws_config *cfg)
{
    struct feed_ws *w = op_calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->cfg = *cfg;
    op_buf_init(&w->page);
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_logger);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = cfg->port;
    info.iface = cfg->bind;
    info.protocols = protocols;
    info.user = w;
    info.gid = -1;
    info.uid = -1;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_IPV6;
    w->ctx = lws_create_context(&info);
    if (!w->ctx) {
        op_log_fail("listen_failed", "bind=%s port=%d", cfg->bind, cfg->port);
        op_free(w);
        return NULL;
    }
    return w;
}

void feed_ws_run(struct feed_ws *w, struct feed_hub *hub, struct feed_source *src,
                 volatile sig_atomic_t *stop)
{
    w->hub = hub;
    w->src = src;
    while (!*stop)
        if (lws_service(w->ctx, 0) < 0)
            break;
}

void feed_ws_free(struct feed_ws *w)
{
    if (!w)
        return;
    lws_context_destroy(w->ctx);
    op_buf_release(&w->page);
    op_free(w);
}

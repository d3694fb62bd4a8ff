/* The HTTP front door: libmicrohttpd daemon, routing, limits, suspend/resume. */
#include "ingest/http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include "ingest/json.h"
#include "ingest/order.h"
#include "ingest/ratelimit.h"
#include "ingest/reads.h"
#include "shared/alloc.h"
#include "shared/buf.h"
#include "shared/decimal.h"
#include "shared/log.h"
#include "shared/metrics.h"
#include "shared/redis.h"
#include "shared/shard.h"

/* Why 1000: the contract's batch limit. */
#define BATCH_MAX 1000
/* JSON tokens per body: an order object is ~20 tokens, so a full batch
 * needs ~20k; anything beyond is not a valid request. */
#define TOKENS_MAX 32768

enum route {
    R_NONE = 0,
    R_NEW,
    R_BATCH,
    R_CANCEL,
    R_AMEND,
    R_CANCEL_ALL,
    R_CANCEL_ALL_AFTER,
    R_GET_ORDER,
    R_FILLS,
    R_BOOK,
    R_HEALTH,
    R_METRICS,
    R_PREFLIGHT,
    R_COUNT
};
static const char *const route_names[R_COUNT] = {
    "unknown",   "new_order", "batch", "cancel",  "amend",   "cancel_all", "cancel_all_after",
    "get_order", "fills",     "book",  "healthz", "metrics", "preflight"};

/* Status codes counted per route; anything else lands in "other". */
static const int codes[] = {200, 202, 204, 400, 401, 403, 404, 405, 413, 415, 429, 500, 503};
#define NCODES (int)(sizeof(codes) / sizeof(codes[0]))

/*
 * Connection deadlines and eviction. libmicrohttpd's own timeout
 * (INGEST_IDLE_TIMEOUT_S) restarts with every byte received, so a client
 * trickling one byte every few seconds (slowloris) holds a connection for
 * ever, and its connection limit refuses new clients once idle or trickling
 * ones fill it. So ingest tracks every connection itself:
 *
 *   - deadline: a connection must complete a request within
 *     INGEST_REQUEST_TIMEOUT_MS of its start or of the end of its previous
 *     request, however its bytes trickle in; the reaper thread closes the
 *     overdue ones (shutdown(), so libmicrohttpd sees the end of the stream
 *     and closes it on its own thread). A request suspended waiting for the
 *     writer is never reaped: the writer's REDIS_TIMEOUT_MS bounds it, and
 *     its deadline restarts when it resumes.
 *   - eviction: above INGEST_MAX_CONNECTIONS, a new connection closes the
 *     one idle longest (no request in progress, oldest start or last answer)
 *     instead of being refused; libmicrohttpd's hard limit sits above it
 *     (HARD_LIMIT) to absorb the closes in flight.
 *
 * The slots are allocated once (one per possible connection); a request
 * costs a few atomic stores on its slot and no lock. mu guards fd, shut and
 * the free list: libmicrohttpd notifies CLOSED before it close()s the socket
 * (MHD_cleanup_connections in 0.9.75), and CLOSED takes mu, so the reaper
 * never shuts down a descriptor number that was closed and reused meanwhile.
 */
struct req;

struct conn_slot {
    struct req *req;          /* the connection's request state, kept between its
                                 requests; owned, touched by its thread only */
    int fd;                   /* the socket, -1 while the slot is free (mu) */
    bool shut;                /* shutdown() sent, close not seen yet (mu) */
    int next_free;            /* free-list link (mu) */
    _Atomic int64_t since_ms; /* start of the connection or end of its last request */
    _Atomic bool in_request;  /* headers received, answer not complete */
    _Atomic bool suspended;   /* waiting for the writer: not reaped */
    _Atomic bool answered;    /* has completed a request (eviction spares it longer) */
};

struct conn_table {
    pthread_mutex_t mu;
    struct conn_slot *slots; /* cap of them, owned */
    int cap;                 /* libmicrohttpd's hard connection limit, HARD_LIMIT */
    int free_head;           /* first free slot, -1 if none (mu) */
    int live;                /* slots in use and not shut (mu) */
    int soft_limit;          /* INGEST_MAX_CONNECTIONS */
    int64_t timeout_ms;      /* INGEST_REQUEST_TIMEOUT_MS */
    pthread_t reaper;
    bool reaper_started;
    _Atomic bool stop;
    _Atomic uint64_t timed_out; /* closed at their deadline */
    _Atomic uint64_t evicted;   /* closed to make room for a new one */
    _Atomic int open;           /* live, for /metrics */
};

/* Connections open at most: INGEST_MAX_CONNECTIONS plus a quarter (plus 16
 * for tiny limits) for those shut down but not yet closed, which a fast
 * reconnecting flood keeps a few of at any time. */
#define OPEN_MAX(soft) ((soft) + (soft) / 4 + 16)
/* libmicrohttpd splits its connection limit evenly between its threads, and
 * a thread at its share refuses what it accepts even when the others are
 * empty: give each thread the whole OPEN_MAX, eviction bounds the total. */
#define HARD_LIMIT(soft, threads) (OPEN_MAX(soft) * (threads))
/* Descriptors beyond the connections: Redis lanes, PostgreSQL, epoll,
 * listening socket, logs; generous. */
#define FD_RESERVE 256

struct http_server {
    struct http_config cfg;
    struct conn_table conns;
    struct MHD_Daemon *d;
    _Atomic long inflight;
    _Atomic uint64_t requests[R_COUNT][NCODES + 1];
    struct op_hist latency[R_COUNT];
    struct op_hist batch_sizes;
    _Atomic uint64_t backpressure;
    _Atomic uint64_t rate_limited; /* requests refused by the per-key rate limit */
};

/*
 * Per-request state, from the first header callback to completion. A
 * tracked connection keeps its struct req from one request to the next
 * (conn_slot.req, freed when the connection closes), and with it the
 * buffers from `body` on, as long as each is at most REQ_KEEP_BYTES: a
 * keep-alive client's single orders then cost no allocation at all
 * (req_get / req_put). The fields before `body` are zeroed per request.
 */
struct req {
    struct http_server *s; /* (ref) */
    enum route route;
    char path_arg[40];           /* the {id} or {symbol} of the URL */
    const struct op_apikey *key; /* (ref) into the key table, NULL = anonymous */
    const char *account;         /* (ref) key's account, NULL = anonymous */
    bool too_large;
    bool oom;                    /* the body could not be stored: 500 */
    bool waiting;                /* submitted to the writer, suspended */
    _Atomic bool done;           /* writer finished the job */
    struct MHD_Connection *conn; /* (ref) */
    struct job job;
    int ninputs;
    int depth;               /* R_BOOK: levels per side wanted */
    bool has_origin;         /* the request sent an Origin header (answers Vary: Origin) */
    const char *cors_origin; /* (ref) its Origin when INGEST_CORS_ORIGINS allows it (into
                                cfg.cors), else NULL: no CORS headers */
    struct timespec t0;
    struct conn_slot *slot; /* (ref) its connection's, NULL if untracked */
    long allocs;            /* allocations made for this request (INGEST_FAULT) */
    /* kept across the connection's requests (see above) */
    struct op_buf body;      /* the request body */
    struct op_buf out;       /* the answer being built */
    struct json_parser json; /* the body's tokens */
    struct item *items;      /* the job's items [items_cap] */
    int *item_of;            /* batch: index of each input's item, -1 if rejected */
    struct api_error *errs;  /* batch: per-input errors */
    int items_cap, item_of_cap, errs_cap;
};

/* Why 8 KiB: what one connection keeps between requests, per buffer — a
 * single order's body, tokens, item and answer fit well inside, a large
 * batch's are freed after it. At most a few such buffers per open
 * connection: about as much as libmicrohttpd's own 16 KiB pool. */
#define REQ_KEEP_BYTES 8192

/* ---- responses ----------------------------------------------------------- */

static int code_index(int status)
{
    for (int i = 0; i < NCODES; i++)
        if (codes[i] == status)
            return i;
    return NCODES;
}

static uint64_t elapsed_us(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (uint64_t)((t1.tv_sec - t0->tv_sec) * 1000000 + (t1.tv_nsec - t0->tv_nsec) / 1000);
}

/*
 * Adds the CORS headers of r's answer: Vary: Origin when it sent an Origin
 * (the answer depends on it), and Access-Control-Allow-Origin with that
 * exact origin when INGEST_CORS_ORIGINS allows it, so the page's script may
 * read the answer (errors included), Retry-After too. A request without
 * Origin — every non-browser client — adds nothing.
 */
static void add_cors_headers(const struct req *r, struct MHD_Response *resp)
{
    if (!r->has_origin)
        return;
    MHD_add_response_header(resp, "Vary", "Origin");
    if (r->cors_origin) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->cors_origin);
        MHD_add_response_header(resp, "Access-Control-Expose-Headers", "Retry-After");
    }
}

/* Queues resp (destroyed here) for r with status, and counts it in
 * r's route's metrics. */
static enum MHD_Result queue_counted(struct req *r, int status, struct MHD_Response *resp)
{
    enum MHD_Result rc = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    atomic_fetch_add_explicit(&r->s->requests[r->route][code_index(status)], 1,
                              memory_order_relaxed);
    op_hist_observe(&r->s->latency[r->route], elapsed_us(&r->t0));
    return rc;
}

/* Queues a response with body (copied) and optional headers. */
static enum MHD_Result respond(struct req *r, int status, const char *ctype, const char *body,
                               size_t len, const char *h1, const char *v1)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", ctype);
    if (h1)
        MHD_add_response_header(resp, h1, v1);
    add_cors_headers(r, resp);
    return queue_counted(r, status, resp);
}

static enum MHD_Result respond_json(struct req *r, int status, const struct op_buf *b)
{
    return respond(r, status, "application/json", b->data ? b->data : "", b->len, NULL, NULL);
}

/* Appends {"code":…,"message":…,"field":…} (the inside of "error"). */
static void put_error(struct op_buf *b, const struct api_error *e)
{
    op_buf_printf(b, "{\"code\":\"%s\",\"message\":", e->code);
    json_put_str(b, e->message);
    op_buf_append(b, ",\"field\":", 9);
    json_put_str(b, e->field);
    op_buf_append(b, "}", 1);
}

/* Why 64: the fixed text of {"error":{"code":"","message":,"field":}}
 * and its quotes. Each character of the message and field takes at most 6
 * bytes once escaped (\u00XX). */
#define ERROR_FIXED_MAX 64
static size_t error_size_max(const struct api_error *e)
{
    return ERROR_FIXED_MAX + strlen(e->code) + 6 * (strlen(e->message) + strlen(e->field));
}

/* The answer when memory ran out: static, so that it needs none. Nothing
 * was queued (see reserve_answer). */
static const char OOM_BODY[] =
    "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\",\"field\":\"\"}}";

/* Renders {"error":…} of e into r->out (reset first). Returns 0, or -1 out
 * of memory (r->out then holds nothing usable). */
static int render_error(struct req *r, const struct api_error *e)
{
    op_buf_reset(&r->out);
    if (op_buf_reserve(&r->out, error_size_max(e)) != 0)
        return -1;
    op_buf_append(&r->out, "{\"error\":", 9);
    put_error(&r->out, e);
    op_buf_append(&r->out, "}", 1);
    return 0;
}

static enum MHD_Result respond_oom(struct req *r)
{
    return respond(r, 500, "application/json", OOM_BODY, sizeof(OOM_BODY) - 1, NULL, NULL);
}

static enum MHD_Result respond_error(struct req *r, const struct api_error *e)
{
    if (render_error(r, e) != 0)
        return respond_oom(r);
    const struct op_buf *b = &r->out;
    if (e->status == 429 || e->status == 503) {
        char after[16];
        snprintf(after, sizeof(after), "%d", e->retry_after_s > 1 ? e->retry_after_s : 1);
        return respond(r, e->status, "application/json", b->data, b->len, "Retry-After", after);
    }
    if (e->status == 405)
        return respond(r, e->status, "application/json", b->data, b->len, "Allow", e->field);
    return respond(r, e->status, "application/json", b->data, b->len, NULL, NULL);
}

static enum MHD_Result fail(struct req *r, int status, const char *code, const char *field,
                            const char *msg)
{
    struct api_error e;
    api_fail(&e, status, code, field, "%s", msg);
    return respond_error(r, &e);
}

/* ---- routing ------------------------------------------------------------- */

/* Maps method + url to a route. Returns R_NONE with *allow set to the
 * allowed methods when the path exists but the method does not (405), or
 * with *allow NULL when the path is unknown (404). */
static enum route route_of(const char *method, const char *url, char *arg, size_t argsz,
                           const char **allow)
{
    *allow = NULL;
    arg[0] = '\0';
    if (strcmp(url, "/v1/orders") == 0) {
        *allow = "POST, DELETE";
        if (strcmp(method, "POST") == 0)
            return R_NEW;
        return strcmp(method, "DELETE") == 0 ? R_CANCEL_ALL : R_NONE;
    }
    if (strcmp(url, "/v1/cancel-all-after") == 0) {
        *allow = "POST";
        return strcmp(method, "POST") == 0 ? R_CANCEL_ALL_AFTER : R_NONE;
    }
    if (strcmp(url, "/v1/orders/batch") == 0) {
        *allow = "POST";
        return strcmp(method, "POST") == 0 ? R_BATCH : R_NONE;
    }
    if (strncmp(url, "/v1/orders/", 11) == 0 && url[11] && !strchr(url + 11, '/')) {
        snprintf(arg, argsz, "%s", url + 11);
        *allow = "GET, PATCH, DELETE";
        if (strcmp(method, "GET") == 0)
            return R_GET_ORDER;
        if (strcmp(method, "DELETE") == 0)
            return R_CANCEL;
        if (strcmp(method, "PATCH") == 0)
            return R_AMEND;
        return R_NONE;
    }
    if (strncmp(url, "/v1/book/", 9) == 0 && url[9] && !strchr(url + 9, '/')) {
        snprintf(arg, argsz, "%s", url + 9);
        *allow = "GET";
        return strcmp(method, "GET") == 0 ? R_BOOK : R_NONE;
    }
    static const struct {
        const char *path;
        enum route r;
    } gets[] = {{"/v1/fills", R_FILLS}, {"/healthz", R_HEALTH}, {"/metrics", R_METRICS}};
    for (size_t i = 0; i < sizeof(gets) / sizeof(gets[0]); i++) {
        if (strcmp(url, gets[i].path) == 0) {
            *allow = "GET";
            return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ? gets[i].r : R_NONE;
        }
    }
    return R_NONE;
}

/* ---- the job and its completion ------------------------------------------ */

/* Writer thread: the job is answered; wake the connection. */
static void job_done(struct job *j)
{
    struct req *r = j->arg;
    atomic_store(&r->done, true);
    MHD_resume_connection(r->conn);
}

/* Why 256: the longest answer for one queued item (put_queued: ~150 bytes
 * with a 20-digit id and a 36-character client_order_id), or for one the
 * writer could not queue (item_error's messages are shorter). */
#define ITEM_ANSWER_MAX ((size_t)256)

/*
 * Makes room in r->out for the longest answer finish can build for r, so
 * that once something is queued its answer cannot fail for memory (a 500
 * would tell the client that nothing was). Returns 0, or -1 out of memory.
 */
static int reserve_answer(struct req *r)
{
    size_t n = 2 * ITEM_ANSWER_MAX;
    if (r->route == R_BATCH) {
        n = 16;
        for (int i = 0; i < r->ninputs; i++)
            n += r->item_of[i] >= 0 ? ITEM_ANSWER_MAX : 32 + error_size_max(&r->errs[i]);
    } else if (r->route == R_BOOK) {
        n += r->items[0].value_len + strlen(r->path_arg);
    } else if (r->route == R_CANCEL_ALL || r->route == R_CANCEL_ALL_AFTER) {
        /* its 503 may follow a partial write */
        n += ERROR_FIXED_MAX + 32 + 6 * (sizeof(r->errs->message) + sizeof(r->errs->field));
    }
    op_buf_reset(&r->out);
    return op_buf_reserve(&r->out, n);
}

/* Suspends the connection and hands the job to the writer; answers 500
 * (nothing queued) if the room for its answer cannot be reserved. */
static enum MHD_Result submit(struct req *r, int nitems)
{
    if (reserve_answer(r) != 0)
        return fail(r, 500, "internal", "", "out of memory");
    r->job.items = r->items;
    r->job.nitems = nitems;
    r->job.done = job_done;
    r->job.arg = r;
    r->waiting = true;
    if (r->slot)
        atomic_store_explicit(&r->slot->suspended, true, memory_order_relaxed);
    MHD_suspend_connection(r->conn);
    writer_submit(r->s->cfg.writer, &r->job);
    return MHD_YES;
}

static struct timespec realtime_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts;
}

static uint64_t ts_ns(void)
{
    struct timespec ts = realtime_now();
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Error of an item the writer could not queue. */
static void item_error(const struct item *it, struct api_error *e)
{
    if (it->status == ITEM_SHUTTING_DOWN)
        api_fail(e, 503, "shutting_down", "", "ingest is stopping: nothing was queued, retry");
    else if (it->status == ITEM_NO_STREAM)
        api_fail(e, 503, "redis_unavailable", "",
                 "the stream of shard %u does not exist: run orderpipe-setup", it->shard);
    else if (it->status == ITEM_REPL_TIMEOUT)
        /* Not "nothing was queued": the primary has it (docs/ingest.md,
         * "Replica acknowledgement"). */
        api_fail(e, 503, "replication_timeout", "", "%s",
                 "queued on the redis primary only (INGEST_MIN_REPLICAS replicas did not confirm "
                 "it in time): it may execute or be lost in a failover; resending with the same "
                 "client_order_id is safe");
    else
        api_fail(e, 503, "redis_unavailable", "", "redis is unavailable: nothing was queued");
}

/* Appends the answer object of a queued new order. */
static void put_queued(struct op_buf *b, const struct item *it)
{
    op_buf_printf(b, "{\"status\":\"QUEUED\",\"order_id\":\"%llu\",\"client_order_id\":",
                  (unsigned long long)it->msg.order_id);
    if (it->msg.client_order_id[0])
        json_put_str(b, it->msg.client_order_id);
    else
        op_buf_append(b, "null", 4);
    if (it->status == ITEM_DUPLICATE)
        op_buf_append(b, ",\"duplicate\":true", 17);
    op_buf_append(b, "}", 1);
}

/*
 * The matcher publishes each book as
 *   {"symbol":"AAPL","ts":"…","bids":[["187.25",300,2],…],"asks":[…]}
 * (price, total qty, order count per level, best first, up to 100 levels).
 * Copies it to out with at most depth levels per side. Returns 0, or -1 if
 * the stored value is not in that shape.
 */
static int book_slice(const char *text, size_t len, int depth, struct op_buf *out)
{
    struct json_doc d;
    struct json_tok toks[1024];
    const char *err;
    if (json_parse(&d, text, len, toks, 1024, &err) != 0 || toks[0].type != JSON_OBJECT)
        return -1;
    op_buf_append(out, "{", 1);
    int k = 1;
    for (int i = 0; i < toks[0].size; i++, k = toks[k + 1].next) {
        const struct json_tok *key = &toks[k], *v = &toks[k + 1];
        op_buf_printf(out, "%s\"%.*s\":", i ? "," : "", key->end - key->start, text + key->start);
        if (v->type != JSON_ARRAY) {
            int q = v->type == JSON_STRING;
            op_buf_printf(out, "%s%.*s%s", q ? "\"" : "", v->end - v->start, text + v->start,
                          q ? "\"" : "");
            continue;
        }
        op_buf_append(out, "[", 1);
        int e = k + 2;
        for (int j = 0; j < v->size && j < depth; j++, e = toks[e].next)
            op_buf_printf(out, "%s%.*s", j ? "," : "", toks[e].end - toks[e].start,
                          text + toks[e].start);
        op_buf_append(out, "]", 1);
    }
    op_buf_append(out, "}", 1);
    return 0;
}

/* Appends the answer of a queued amend: the target, and the new qty and
 * price (null when unchanged). */
static void put_amend_queued(struct req *r, struct op_buf *b, const struct item *it)
{
    char px[48] = "";
    const struct op_symbol *sym =
        op_symtab_find(r->s->cfg.syms, it->msg.symbol, strlen(it->msg.symbol));
    if (it->msg.price && sym)
        op_decimal_format(it->msg.price, sym->tick, px, sizeof(px));
    op_buf_printf(b, "{\"status\":\"AMEND_QUEUED\",\"order_id\":\"%llu\",\"qty\":",
                  (unsigned long long)it->msg.order_id);
    if (it->msg.qty)
        op_buf_printf(b, "%lld", (long long)it->msg.qty);
    else
        op_buf_append(b, "null", 4);
    if (px[0])
        op_buf_printf(b, ",\"price\":\"%s\"}", px);
    else
        op_buf_append(b, ",\"price\":null}", 14);
}

/*
 * The answer of a cancel-all or of a cancel-all-after (the dead-man
 * switch): 202 when every shard's input is queued. Its inputs are one job,
 * so they reach Redis in one writer round, one per shard's entry; those
 * entries are separate writes (one script call per shard: each shard's keys
 * live in their own cluster slot), so Redis can fail some and take others,
 * or the connection die between their replies. Then the answer is the 503
 * of the first failure, saying how many shards took it: both are safe to
 * send again (a cancel-all cancels what is open when it arrives, a
 * cancel-all-after re-arms from its own time, on every shard), which is
 * what the client must do.
 */
static enum MHD_Result finish_cancel_all(struct req *r)
{
    struct api_error e;
    int queued = 0, failed = -1;
    bool after = r->route == R_CANCEL_ALL_AFTER;
    for (int i = 0; i < r->job.nitems; i++) {
        if (r->items[i].status == ITEM_QUEUED)
            queued++;
        else if (failed < 0)
            failed = i;
    }
    if (failed < 0 && after) {
        op_buf_printf(&r->out, "{\"status\":\"CANCEL_ALL_AFTER_QUEUED\",\"timeout_ms\":%u}",
                      (unsigned)r->items[0].msg.timeout_ms);
        return respond_json(r, 202, &r->out);
    }
    if (failed < 0) {
        op_buf_append(&r->out, "{\"status\":\"CANCEL_ALL_QUEUED\",\"symbol\":", 39);
        if (r->items[0].msg.symbol[0])
            json_put_str(&r->out, r->items[0].msg.symbol);
        else
            op_buf_append(&r->out, "null", 4);
        op_buf_append(&r->out, "}", 1);
        return respond_json(r, 202, &r->out);
    }
    item_error(&r->items[failed], &e);
    if (queued > 0)
        api_fail(&e, 503, e.code, "",
                 "redis failed while the %s was queued on %d of its %d shards: send it "
                 "again (a %s is safe to repeat)",
                 after ? "cancel-all-after" : "cancel-all", queued, r->job.nitems,
                 after ? "cancel-all-after" : "cancel-all");
    return respond_error(r, &e);
}

/* Builds the response of a finished job. */
static enum MHD_Result finish(struct req *r)
{
    enum MHD_Result rc;
    struct api_error e;
    struct item *it = &r->items[0];
    /* Cannot fail when something was queued: submit reserved the room. */
    if (reserve_answer(r) != 0)
        return respond_oom(r);
    struct op_buf *b = &r->out;

    if (r->route == R_CANCEL_ALL || r->route == R_CANCEL_ALL_AFTER) {
        rc = finish_cancel_all(r);
    } else if (r->route == R_BATCH) {
        int queued = 0, failed = 0;
        op_buf_append(b, "{\"results\":[", 12);
        for (int i = 0; i < r->ninputs; i++) {
            if (i)
                op_buf_append(b, ",", 1);
            int k = r->item_of[i];
            if (k >= 0 &&
                (r->items[k].status == ITEM_QUEUED || r->items[k].status == ITEM_DUPLICATE)) {
                put_queued(b, &r->items[k]);
                queued++;
                continue;
            }
            if (k >= 0) {
                item_error(&r->items[k], &r->errs[i]);
                failed++;
            }
            op_buf_append(b, "{\"status\":\"REJECTED\",\"error\":", 29);
            put_error(b, &r->errs[i]);
            op_buf_append(b, "}", 1);
        }
        op_buf_append(b, "]}", 2);
        op_hist_observe_size(&r->s->batch_sizes, (uint64_t)r->ninputs);
        if (queued == 0 && failed > 0) { /* Redis took none of them */
            item_error(&r->items[0], &e);
            rc = respond_error(r, &e);
        } else if (queued == 0) {
            /* Nothing was submitted: every item is invalid (400), or a valid
             * one was refused by backpressure (429: a retry may pass). */
            int status = 400;
            for (int i = 0; i < r->ninputs; i++)
                if (r->errs[i].status == 429)
                    status = 429;
            rc = respond(r, status, "application/json", b->data, b->len,
                         status == 429 ? "Retry-After" : NULL, "1");
        } else {
            rc = respond_json(r, 202, b);
        }
    } else if (it->status == ITEM_QUEUED || it->status == ITEM_DUPLICATE) {
        if (r->route == R_NEW) {
            put_queued(b, it);
            rc = respond_json(r, it->status == ITEM_DUPLICATE ? 200 : 202, b);
        } else if (r->route == R_CANCEL) {
            op_buf_printf(b, "{\"status\":\"CANCEL_QUEUED\",\"order_id\":\"%llu\"}",
                          (unsigned long long)it->msg.order_id);
            rc = respond_json(r, 202, b);
        } else {
            put_amend_queued(r, b, it);
            rc = respond_json(r, 202, b);
        }
    } else if (r->route == R_BOOK) {
        if (it->status == ITEM_FOUND && book_slice(it->value, it->value_len, r->depth, b) == 0) {
            rc = respond_json(r, 200, b);
        } else if (it->status == ITEM_NOT_FOUND) {
            op_buf_printf(b, "{\"symbol\":\"%s\",\"bids\":[],\"asks\":[],\"published\":false}",
                          r->path_arg);
            rc = respond_json(r, 200, b);
        } else {
            item_error(it, &e);
            rc = respond_error(r, &e);
        }
    } else {
        item_error(it, &e);
        rc = respond_error(r, &e);
    }
    return rc;
}

/* ---- handlers ------------------------------------------------------------ */

/* Makes arr (of *cap elements of size bytes, owned) hold n zeroed ones,
 * keeping it when it is large enough. Returns the array, or NULL out of
 * memory (arr is then unchanged). */
static void *reserve_zeroed(void *arr, int *cap, int n, size_t size)
{
    if (n > *cap) {
        void *p = op_calloc((size_t)n, size);
        if (!p)
            return NULL;
        op_free(arr);
        *cap = n;
        return p;
    }
    memset(arr, 0, (size_t)n * size);
    return arr;
}

/* r->items with n zeroed items. Returns 0, or -1 out of memory. */
static int reserve_items(struct req *r, int n)
{
    void *p = reserve_zeroed(r->items, &r->items_cap, n, sizeof(*r->items));
    if (!p)
        return -1;
    r->items = p;
    return 0;
}

/* Parses the body as JSON into doc (tokens in r->json); on failure fills e
 * (400, or 500 out of memory). */
static int parse_body(struct req *r, struct json_doc *doc, struct api_error *e)
{
    const char *err;
    doc->text = "";
    doc->toks = NULL;
    doc->ntoks = 0;
    int max = (int)(r->body.len / 2 + 8);
    if (max > TOKENS_MAX)
        max = TOKENS_MAX;
    if (json_parser_reserve(&r->json, max) != 0) {
        api_fail(e, 500, "internal", "", "out of memory");
        return -1;
    }
    if (json_parse_with(&r->json, doc, r->body.data ? r->body.data : "", r->body.len, max, &err) !=
        0) {
        api_fail(e, 400, "invalid_json", "", "%s", err);
        return -1;
    }
    if (doc->ntoks < 1 || doc->toks[0].type != JSON_OBJECT) {
        api_fail(e, 400, "invalid_body", "", "the body must be one JSON object");
        return -1;
    }
    return 0;
}

/* The symbol of ?symbol= for cancel/amend: must be listed (it picks the shard). */
static const struct op_symbol *query_symbol(struct req *r, struct api_error *e)
{
    const char *sym = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "symbol");
    if (!sym || !*sym) {
        api_fail(e, 400, "missing_field", "symbol", "the query parameter ?symbol= is required");
        return NULL;
    }
    const struct op_symbol *s = op_symtab_find(r->s->cfg.syms, sym, strlen(sym));
    if (!s)
        api_fail(e, 400, "unknown_symbol", "symbol", "symbol is not traded here");
    return s;
}

/*
 * Takes n tokens (inputs) from the request's key under INGEST_RATE_LIMIT,
 * all or none. Returns 0 (also when there is no limit), or -1 with e set
 * to the 429 rate_limited answer, Retry-After the whole seconds after which
 * the same request would pass (at least 1). No lock, no allocation
 * (ingest/ratelimit.h).
 */
static int take_tokens(struct req *r, int n, struct api_error *e)
{
    struct ratelimit *rl = r->s->cfg.limiter;
    if (!rl)
        return 0;
    struct timespec now;
    int64_t wait_ns = 0;
    clock_gettime(CLOCK_MONOTONIC, &now);
    size_t key = (size_t)(r->key - r->s->cfg.keys->v);
    enum ratelimit_outcome o =
        ratelimit_take(rl, key, n, (int64_t)now.tv_sec * 1000000000 + now.tv_nsec, &wait_ns);
    if (o == RATELIMIT_OK)
        return 0;
    atomic_fetch_add_explicit(&r->s->rate_limited, 1, memory_order_relaxed);
    if (o == RATELIMIT_TOO_MANY) {
        api_fail(e, 429, "rate_limited", "",
                 "this request holds %d orders, more than this key's burst of %lld "
                 "(INGEST_RATE_BURST): send at most that many per request",
                 n, (long long)ratelimit_burst(rl));
        e->retry_after_s = 1;
        return -1;
    }
    api_fail(e, 429, "rate_limited", "",
             "this api key sends orders faster than INGEST_RATE_LIMIT allows: nothing was "
             "queued, retry after the delay");
    int64_t secs = (wait_ns + 999999999) / 1000000000; /* rounded up: a retry then passes */
    e->retry_after_s = secs < 1 ? 1 : secs > 86400 ? 86400 : (int)secs;
    return -1;
}

/* What a new order of r received at now_ns is validated against. */
static struct order_env order_env_of(const struct req *r, uint64_t now_ns)
{
    struct order_env env = {
        .syms = r->s->cfg.syms,
        .account = r->account,
        .stp_default = r->key->stp,
        .now_ns = now_ns,
        .max_expiry_ms = r->s->cfg.max_expiry_ms,
    };
    return env;
}

static enum MHD_Result handle_new(struct req *r)
{
    struct json_doc doc;
    struct api_error e;
    enum MHD_Result rc;

    if (reserve_items(r, 1) != 0)
        return fail(r, 500, "internal", "", "out of memory");
    struct item *it = &r->items[0];
    struct order_env env = order_env_of(r, ts_ns());
    if (parse_body(r, &doc, &e) != 0 || order_parse_new(&doc, 0, &env, &it->msg, &e) != 0)
        return respond_error(r, &e);
    it->kind = ITEM_ORDER;
    it->shard = op_shard_of(it->msg.symbol, strlen(it->msg.symbol), r->s->cfg.shards);
    if (writer_overloaded(r->s->cfg.writer, it->shard)) {
        atomic_fetch_add(&r->s->backpressure, 1);
        api_fail(&e, 429, "backpressure", "",
                 "the matchers of this symbol are behind; retry after the delay");
        return respond_error(r, &e);
    }
    if (take_tokens(r, 1, &e) != 0)
        return respond_error(r, &e);
    it->msg.ts_ns = env.now_ns; /* the time expire_at was checked against */
    rc = submit(r, 1);
    return rc;
}

static enum MHD_Result handle_batch(struct req *r)
{
    struct json_doc doc;
    struct api_error e;
    static const char *const fields[] = {"orders", NULL};
    const char *bad;
    bool dup;

    if (parse_body(r, &doc, &e) != 0)
        goto bad;
    if (json_object_check(&doc, 0, fields, &bad, &dup) != 0) {
        api_fail(&e, 400, dup ? "duplicate_field" : "unknown_field", bad, "%s '%s'",
                 dup ? "field appears twice:" : "unknown field", bad);
        goto bad;
    }
    int arr = json_get(&doc, 0, "orders");
    if (arr < 0) {
        api_fail(&e, 400, "missing_field", "orders", "field 'orders' is required");
        goto bad;
    }
    int n = doc.toks[arr].size;
    if (doc.toks[arr].type != JSON_ARRAY || n < 1 || n > BATCH_MAX) {
        api_fail(&e, 400, "invalid_field", "orders", "orders must be an array of 1 to %d orders",
                 BATCH_MAX);
        goto bad;
    }
    void *item_of = reserve_zeroed(r->item_of, &r->item_of_cap, n, sizeof(*r->item_of));
    if (item_of)
        r->item_of = item_of;
    void *errs = reserve_zeroed(r->errs, &r->errs_cap, n, sizeof(*r->errs));
    if (errs)
        r->errs = errs;
    if (!item_of || !errs || reserve_items(r, n) != 0) {
        api_fail(&e, 500, "internal", "", "out of memory");
        goto bad;
    }
    r->ninputs = n;
    int nitems = 0;
    uint64_t now = ts_ns();
    struct order_env env = order_env_of(r, now);
    for (int i = 0, t = arr + 1; i < n; i++, t = doc.toks[t].next) {
        struct item *it = &r->items[nitems];
        r->item_of[i] = -1;
        if (order_parse_new(&doc, t, &env, &it->msg, &r->errs[i]) != 0)
            continue;
        it->kind = ITEM_ORDER;
        it->shard = op_shard_of(it->msg.symbol, strlen(it->msg.symbol), r->s->cfg.shards);
        if (writer_overloaded(r->s->cfg.writer, it->shard)) {
            atomic_fetch_add(&r->s->backpressure, 1);
            api_fail(&r->errs[i], 429, "backpressure", "",
                     "the matchers of this symbol are behind; retry after the delay");
            continue;
        }
        it->msg.ts_ns = now;
        r->item_of[i] = nitems++;
    }
    if (nitems == 0) { /* nothing to queue: answer now */
        atomic_store(&r->done, true);
        return finish(r);
    }
    /* All or nothing: a batch the bucket cannot cover queues none of it. */
    if (take_tokens(r, nitems, &e) != 0)
        goto bad;
    return submit(r, nitems);
bad:
    return respond_error(r, &e);
}

/* Cancel (DELETE) and amend (PATCH) of /v1/orders/{id}?symbol=. An amend
 * carries the new qty and/or price (0 = unchanged: order_parse_amend). */
static enum MHD_Result handle_cancel_amend(struct req *r)
{
    struct api_error e;
    uint64_t id;
    int64_t qty = 0, price = 0;

    if (order_parse_id(r->path_arg, &id, &e) != 0)
        return respond_error(r, &e);
    const struct op_symbol *sym = query_symbol(r, &e);
    if (!sym)
        return respond_error(r, &e);
    if (r->route == R_AMEND) {
        struct json_doc doc;
        int rc = parse_body(r, &doc, &e);
        if (rc == 0)
            rc = order_parse_amend(&doc, 0, sym, &qty, &price, &e);
        if (rc != 0)
            return respond_error(r, &e);
    }
    if (reserve_items(r, 1) != 0)
        return fail(r, 500, "internal", "", "out of memory");
    struct item *it = &r->items[0];
    it->kind = ITEM_ORDER;
    it->msg.kind = r->route == R_AMEND ? OP_MSG_AMEND : OP_MSG_CANCEL;
    it->msg.order_id = id;
    it->msg.qty = qty;
    it->msg.price = price;
    snprintf(it->msg.symbol, sizeof(it->msg.symbol), "%s", sym->name);
    snprintf(it->msg.account, sizeof(it->msg.account), "%s", r->account);
    it->shard = op_shard_of(sym->name, strlen(sym->name), r->s->cfg.shards);
    /* Cancels pass even under backpressure: they only ever reduce risk. */
    if (r->route == R_AMEND && writer_overloaded(r->s->cfg.writer, it->shard)) {
        atomic_fetch_add(&r->s->backpressure, 1);
        return fail(r, 429, "backpressure", "", "the matchers of this symbol are behind");
    }
    if (take_tokens(r, 1, &e) != 0)
        return respond_error(r, &e);
    it->msg.ts_ns = ts_ns();
    return submit(r, 1);
}

/*
 * Queues one input of `kind` (a cancel-all or a dead-man arming) of the
 * requester: to sym's shard with sym, or with symbol "" to every shard
 * 0 … ORDER_SHARDS-1 when sym is NULL, all with one receipt time, as one
 * job counted as one input by the rate limit.
 */
static enum MHD_Result submit_account_input(struct req *r, uint8_t kind,
                                            const struct op_symbol *sym, uint32_t timeout_ms)
{
    struct api_error e;
    int n = sym ? 1 : (int)r->s->cfg.shards;
    if (reserve_items(r, n) != 0)
        return fail(r, 500, "internal", "", "out of memory");
    if (take_tokens(r, 1, &e) != 0)
        return respond_error(r, &e);
    uint64_t now = ts_ns();
    for (int i = 0; i < n; i++) {
        struct item *it = &r->items[i];
        it->kind = ITEM_ORDER;
        it->msg.kind = kind;
        it->msg.ts_ns = now;
        it->msg.timeout_ms = timeout_ms;
        if (sym)
            snprintf(it->msg.symbol, sizeof(it->msg.symbol), "%s", sym->name);
        snprintf(it->msg.account, sizeof(it->msg.account), "%s", r->account);
        it->shard = sym ? op_shard_of(sym->name, strlen(sym->name), r->s->cfg.shards) : (uint32_t)i;
    }
    return submit(r, n);
}

/*
 * Cancel-all, DELETE /v1/orders[?symbol=S]: with S (which must be listed),
 * one OP_MSG_CANCEL_ALL input of S to S's shard; without, one with symbol
 * "" to every shard 0 … ORDER_SHARDS-1. Its inputs are one job, and a job
 * is refused or taken whole (the rate limit counts it as one input, the
 * writer never splits a job between rounds, shutdown answers all of it);
 * finish_cancel_all says what a Redis failure between shards means. Like a
 * cancel, it passes under backpressure. `?symbol=` with an empty value is
 * an unknown symbol, not "all": a client's empty variable must not cancel
 * every order.
 */
static enum MHD_Result handle_cancel_all(struct req *r)
{
    const char *q = NULL;
    size_t qlen = 0;
    const struct op_symbol *sym = NULL;

    if (MHD_lookup_connection_value_n(r->conn, MHD_GET_ARGUMENT_KIND, "symbol", 6, &q, &qlen) ==
        MHD_YES) {
        sym = q ? op_symtab_find(r->s->cfg.syms, q, qlen) : NULL;
        if (!sym)
            return fail(r, 400, "unknown_symbol", "symbol", "symbol is not traded here");
    }
    return submit_account_input(r, OP_MSG_CANCEL_ALL, sym, 0);
}

/*
 * The dead-man switch, POST /v1/cancel-all-after {"timeout_ms": N}: one
 * OP_MSG_CANCEL_ALL_AFTER input (order_id 0, symbol "", the requester's
 * account, N) to every shard 0 … ORDER_SHARDS-1, all with one receipt
 * time: the engine of each shard arms (N > 0; each call re-arms) or
 * disarms (0) the account's switch there, in engine time. The path of the
 * cancel-all of every symbol: one job, taken or refused whole, counted as
 * one input by the rate limit, passing under backpressure (it can only
 * cancel), and finish_cancel_all's answer to a failure between shards.
 */
static enum MHD_Result handle_cancel_all_after(struct req *r)
{
    struct json_doc doc;
    struct api_error e;
    uint32_t timeout_ms;

    if (parse_body(r, &doc, &e) != 0 || order_parse_cancel_all_after(&doc, 0, &timeout_ms, &e) != 0)
        return respond_error(r, &e);
    return submit_account_input(r, OP_MSG_CANCEL_ALL_AFTER, NULL, timeout_ms);
}

static enum MHD_Result handle_get_order(struct req *r)
{
    struct api_error e;
    struct op_buf b;
    uint64_t id;
    if (order_parse_id(r->path_arg, &id, &e) != 0)
        return respond_error(r, &e);
    op_buf_init(&b);
    enum MHD_Result rc =
        reads_order(id, r->account, &b, &e) == 0 ? respond_json(r, 200, &b) : respond_error(r, &e);
    op_buf_release(&b);
    return rc;
}

static enum MHD_Result handle_fills(struct req *r)
{
    struct api_error e;
    struct op_buf b;
    uint64_t id = 0;
    long limit = 100;
    const char *sym = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "symbol");
    const char *oid = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "order_id");
    const char *lim = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "limit");
    if (sym && *sym && !op_symtab_find(r->s->cfg.syms, sym, strlen(sym)))
        return fail(r, 400, "unknown_symbol", "symbol", "symbol is not traded here");
    if (oid && order_parse_id(oid, &id, &e) != 0)
        return respond_error(r, &e);
    if (lim) {
        char *end;
        limit = strtol(lim, &end, 10);
        if (end == lim || *end || limit < 1 || limit > 1000)
            return fail(r, 400, "invalid_field", "limit", "limit must be an integer in 1..1000");
    }
    op_buf_init(&b);
    enum MHD_Result rc = reads_fills(r->account, sym, id, (int)limit, &b, &e) == 0
                             ? respond_json(r, 200, &b)
                             : respond_error(r, &e);
    op_buf_release(&b);
    return rc;
}

static enum MHD_Result handle_book(struct req *r)
{
    const struct op_symbol *sym = op_symtab_find(r->s->cfg.syms, r->path_arg, strlen(r->path_arg));
    if (!sym)
        return fail(r, 404, "unknown_symbol", "symbol", "symbol is not traded here");
    const char *depth = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "depth");
    r->depth = 10;
    if (depth) {
        char *end;
        long d = strtol(depth, &end, 10);
        if (end == depth || *end || d < 1 || d > 100)
            return fail(r, 400, "invalid_field", "depth", "depth must be an integer in 1..100");
        r->depth = (int)d;
    }
    if (reserve_items(r, 1) != 0)
        return fail(r, 500, "internal", "", "out of memory");
    r->items[0].kind = ITEM_GET;
    uint32_t shard = op_shard_of(sym->name, strlen(sym->name), r->s->cfg.shards);
    snprintf(r->items[0].key, sizeof(r->items[0].key), "book:{%u}:%s", shard, sym->name);
    return submit(r, 1);
}

static enum MHD_Result handle_health(struct req *r)
{
    struct op_buf b;
    op_buf_init(&b);
    bool redis = writer_redis_ok(r->s->cfg.writer);
    int db = reads_db_ok();
    op_buf_printf(&b, "{\"status\":\"%s\",\"redis\":\"%s\",\"postgres\":\"%s\"}",
                  redis ? "ok" : "unavailable", redis ? "ok" : "unavailable",
                  db ? "ok" : "unavailable");
    /* Health is the write path: PostgreSQL down only degrades the read side. */
    enum MHD_Result rc = respond_json(r, redis ? 200 : 503, &b);
    op_buf_release(&b);
    return rc;
}

static enum MHD_Result handle_metrics(struct req *r)
{
    struct op_buf b;
    struct http_server *s = r->s;
    struct writer_stats *ws = writer_stats(s->cfg.writer);
    char labels[96];
    op_buf_init(&b);

    op_metrics_header(&b, "ingest_requests_total", "counter", "HTTP requests by route and status");
    for (int rt = 0; rt < R_COUNT; rt++) {
        for (int c = 0; c <= NCODES; c++) {
            uint64_t v = atomic_load(&s->requests[rt][c]);
            if (!v)
                continue;
            if (c < NCODES)
                snprintf(labels, sizeof(labels), "route=\"%s\",code=\"%d\"", route_names[rt],
                         codes[c]);
            else
                snprintf(labels, sizeof(labels), "route=\"%s\",code=\"other\"", route_names[rt]);
            op_metrics_sample(&b, "ingest_requests_total", labels, v);
        }
    }
    op_metrics_header(&b, "ingest_request_duration_seconds", "histogram",
                      "time from request to answer");
    for (int rt = 1; rt < R_COUNT; rt++) {
        snprintf(labels, sizeof(labels), "route=\"%s\"", route_names[rt]);
        op_metrics_hist(&b, "ingest_request_duration_seconds", labels, &s->latency[rt], 1e-6, 0);
    }
    op_metrics_header(&b, "ingest_orders_queued_total", "counter",
                      "inputs acknowledged by redis (new, cancel, amend, cancel_all per shard)");
    op_metrics_sample(&b, "ingest_orders_queued_total", NULL, atomic_load(&ws->orders_queued));
    op_metrics_header(&b, "ingest_stream_entries_total", "counter",
                      "orders:{S} entries written (one per shard per writer round)");
    op_metrics_sample(&b, "ingest_stream_entries_total", NULL, atomic_load(&ws->entries));
    op_metrics_header(&b, "ingest_duplicates_total", "counter",
                      "repeated client_order_ids answered with the original id");
    op_metrics_sample(&b, "ingest_duplicates_total", NULL, atomic_load(&ws->duplicates));
    op_metrics_header(&b, "ingest_backpressure_total", "counter",
                      "orders refused with 429 because a shard's backlog is above INGEST_MAX_LAG");
    op_metrics_sample(&b, "ingest_backpressure_total", NULL, atomic_load(&s->backpressure));
    op_metrics_header(&b, "ingest_rate_limited_total", "counter",
                      "requests refused with 429 by the per-key rate limit (INGEST_RATE_LIMIT)");
    op_metrics_sample(&b, "ingest_rate_limited_total", NULL, atomic_load(&s->rate_limited));
    op_metrics_header(&b, "ingest_redis_errors_total", "counter",
                      "items answered 503 (redis down, refusing or timing out)");
    op_metrics_sample(&b, "ingest_redis_errors_total", NULL, atomic_load(&ws->redis_errors));
    op_metrics_header(&b, "ingest_replication_timeouts_total", "counter",
                      "items answered 503 replication_timeout: written on the primary, but WAIT "
                      "saw fewer than INGEST_MIN_REPLICAS replicas in time");
    op_metrics_sample(&b, "ingest_replication_timeouts_total", NULL,
                      atomic_load(&ws->repl_timeouts));
    op_metrics_header(&b, "ingest_replication_short_rounds_total", "counter",
                      "writer rounds whose WAIT saw fewer than INGEST_MIN_REPLICAS replicas");
    op_metrics_sample(&b, "ingest_replication_short_rounds_total", NULL,
                      atomic_load(&ws->repl_short));
    op_metrics_header(&b, "ingest_replication_wait_seconds", "histogram",
                      "time WAIT added to a round: last write reply to WAIT's reply "
                      "(INGEST_MIN_REPLICAS > 0 only)");
    op_metrics_hist(&b, "ingest_replication_wait_seconds", NULL, &ws->wait_us, 1e-6, 0);
    op_metrics_header(&b, "ingest_redis_reconnects_total", "counter", "reconnections to redis");
    op_metrics_sample(&b, "ingest_redis_reconnects_total", NULL, atomic_load(&ws->reconnects));
    op_metrics_header(&b, "ingest_redis_up", "gauge", "1 if the last contact with redis succeeded");
    op_metrics_sample(&b, "ingest_redis_up", NULL, writer_redis_ok(s->cfg.writer) ? 1 : 0);
    op_metrics_header(&b, "ingest_redis_roundtrip_seconds", "histogram",
                      "round trip of one pipeline of orders entries");
    op_metrics_hist(&b, "ingest_redis_roundtrip_seconds", NULL, &ws->round_us, 1e-6, 0);
    op_metrics_header(&b, "ingest_pipeline_commands", "histogram", "commands per redis pipeline");
    op_metrics_hist(&b, "ingest_pipeline_commands", NULL, &ws->batch_items, 1, 1);
    op_metrics_header(&b, "ingest_entry_orders", "histogram", "inputs per orders:{S} entry");
    op_metrics_hist(&b, "ingest_entry_orders", NULL, &ws->entry_items, 1, 1);
    op_metrics_header(&b, "ingest_batch_orders", "histogram", "orders per batch request");
    op_metrics_hist(&b, "ingest_batch_orders", NULL, &s->batch_sizes, 1, 1);
    op_metrics_header(&b, "ingest_shard_backlog", "gauge",
                      "lag + pending of the matchers group per shard");
    for (uint32_t sh = 0; sh < s->cfg.shards; sh++) {
        snprintf(labels, sizeof(labels), "shard=\"%u\"", sh);
        op_metrics_sample_f(&b, "ingest_shard_backlog", labels,
                            (double)writer_backlog(s->cfg.writer, sh));
    }
    op_metrics_header(&b, "ingest_connections_open", "gauge",
                      "HTTP connections open (INGEST_MAX_CONNECTIONS evicts above it)");
    op_metrics_sample_f(&b, "ingest_connections_open", NULL, (double)atomic_load(&s->conns.open));
    op_metrics_header(&b, "ingest_connections_closed_total", "counter",
                      "connections ingest closed: past INGEST_REQUEST_TIMEOUT_MS, or evicted "
                      "(idle longest) for a new one above INGEST_MAX_CONNECTIONS");
    op_metrics_sample(&b, "ingest_connections_closed_total", "reason=\"request_timeout\"",
                      atomic_load(&s->conns.timed_out));
    op_metrics_sample(&b, "ingest_connections_closed_total", "reason=\"evicted\"",
                      atomic_load(&s->conns.evicted));
    op_metrics_header(&b, "ingest_inflight_requests", "gauge",
                      "requests received and not yet answered");
    op_metrics_sample_f(&b, "ingest_inflight_requests", NULL, (double)atomic_load(&s->inflight));
    enum MHD_Result rc = respond(r, 200, "text/plain; version=0.0.4", b.data, b.len, NULL, NULL);
    op_buf_release(&b);
    return rc;
}

/* ---- framing -------------------------------------------------------------- */

/*
 * libmicrohttpd 0.9.75 is lenient where a proxy in front of ingest may not
 * be: it takes the first of two Content-Length headers, prefers
 * Transfer-Encoding over Content-Length, ends a header value at an embedded
 * NUL byte (the bytes after it vanish), and serves HTTP/1.1 without Host.
 * Any of these lets the proxy and ingest see different requests (request
 * smuggling, header confusion), so check_framing refuses them before a byte
 * of the body is read.
 *
 * It does not see the NUL itself: it checks the layout. libmicrohttpd parses
 * the request line and headers in place, in one buffer starting at the method
 * ([method, method + MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE)), replacing each
 * CR and LF by '\0' and keeping pointers into it. So a header's value, taken
 * up to its length, is followed by its line's one or two terminator bytes and
 * then the next header's name (after the last header: the empty line, up to
 * four bytes in all). Anything else there — the rest of a line cut at a NUL,
 * an obsolete folded continuation line — is refused, as is a header that does
 * not lie in that buffer at all (libmicrohttpd reallocates a folded one).
 */

/* Terminator bytes after a header line: CR LF. */
#define LINE_END_MAX 2
/* After the last header: its CR LF and the empty line's CR LF. */
#define LAST_LINE_END_MAX 4

struct header_scan {
    const char *block;     /* (ref) start of the request line in libmicrohttpd's buffer */
    const char *block_end; /* (ref) end of the empty line that ends the headers */
    const char *prev_end;  /* end of the previous header's value, NULL before the first */
    const char *prev_name; /* (ref) its name */
    const char *bad;       /* (ref) first header with bytes hidden after its value */
    int content_length;    /* occurrences of each header */
    int transfer_encoding;
    int authorization;
    int host;
    bool te_chunked; /* the Transfer-Encoding is exactly "chunked" */
};

/* True if the bytes from p to end are all '\0' and at most max of them. */
static bool only_terminators(const char *p, const char *end, size_t max)
{
    if (end < p || (size_t)(end - p) > max)
        return false;
    for (; p < end; p++)
        if (*p)
            return false;
    return true;
}

/* True if the n bytes at p lie in the header buffer (compared as addresses:
 * p may point anywhere). */
static bool in_block(const struct header_scan *sc, const char *p, size_t n)
{
    uintptr_t a = (uintptr_t)p, lo = (uintptr_t)sc->block, hi = (uintptr_t)sc->block_end;
    return p && a >= lo && a <= hi && n <= hi - a;
}

/* MHD_get_connection_values_n iterator over the request's headers, in the
 * order they arrived: counts the headers check_framing cares about and checks
 * what lies between one header and the next (see above). */
static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   size_t key_size, const char *value, size_t value_size)
{
    struct header_scan *sc = cls;
    (void)kind;
    if (!sc->bad && (!in_block(sc, key, key_size) || !in_block(sc, value, value_size)))
        sc->bad = key;
    else if (!sc->bad && sc->prev_end && !only_terminators(sc->prev_end, key, LINE_END_MAX))
        sc->bad = sc->prev_name;
    sc->prev_end = value + value_size;
    sc->prev_name = key;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        sc->content_length++;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        sc->transfer_encoding++;
        sc->te_chunked = strcasecmp(value, "chunked") == 0;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_AUTHORIZATION) == 0) {
        sc->authorization++;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0) {
        sc->host++;
    }
    return MHD_YES;
}

/* Answers 400 invalid_header naming field; with close set, also closes the
 * connection after the answer: the framing of what follows is not known. */
static enum MHD_Result fail_header(struct req *r, bool close, const char *field, const char *msg)
{
    struct api_error e;
    api_fail(&e, 400, "invalid_header", field, "%s", msg);
    if (render_error(r, &e) != 0)
        return respond_oom(r);
    return respond(r, 400, "application/json", r->out.data, r->out.len,
                   close ? MHD_HTTP_HEADER_CONNECTION : NULL, "close");
}

/*
 * First call of a request, headers complete, body not read: refuses (400
 * invalid_header) a request whose framing or identity headers could be read
 * two ways. Returns MHD_YES when the request may proceed with *answered
 * false; otherwise the result of queueing the 400, with *answered true.
 */
static enum MHD_Result check_framing(struct req *r, const char *method, const char *version,
                                     bool *answered)
{
    struct header_scan sc = {0};
    const union MHD_ConnectionInfo *hs =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    *answered = true;
    if (!hs)
        return fail_header(r, true, "", "the request headers could not be read");
    sc.block = method;
    sc.block_end = method + hs->header_size;
    MHD_get_connection_values_n(r->conn, MHD_HEADER_KIND, scan_header, &sc);
    if (!sc.bad && sc.prev_end && !only_terminators(sc.prev_end, sc.block_end, LAST_LINE_END_MAX))
        sc.bad = sc.prev_name;
    if (sc.bad)
        return fail_header(r, true, sc.bad,
                           "a header holds a NUL byte or a folded line: send each header on "
                           "one line, without NUL");
    if (sc.content_length > 1)
        return fail_header(r, true, MHD_HTTP_HEADER_CONTENT_LENGTH,
                           "Content-Length appears more than once");
    if (sc.transfer_encoding && sc.content_length)
        return fail_header(r, true, MHD_HTTP_HEADER_TRANSFER_ENCODING,
                           "send either Transfer-Encoding or Content-Length, not both");
    if (sc.transfer_encoding > 1 || (sc.transfer_encoding && !sc.te_chunked))
        return fail_header(r, true, MHD_HTTP_HEADER_TRANSFER_ENCODING,
                           "the only Transfer-Encoding accepted is one 'chunked'");
    if (sc.authorization > 1)
        return fail_header(r, false, MHD_HTTP_HEADER_AUTHORIZATION,
                           "Authorization appears more than once");
    if (sc.host > 1 || (sc.host == 0 && strcmp(version, MHD_HTTP_VERSION_1_0) != 0))
        return fail_header(r, false, MHD_HTTP_HEADER_HOST,
                           "an HTTP/1.1 request needs exactly one Host header");
    *answered = false;
    return MHD_YES;
}

/* ---- CORS ------------------------------------------------------------------ */

/* Why 600 s: how long a browser may reuse a preflight's answer for a URL
 * (Chromium caps it at 7200 s): it spares a page a round trip before each
 * of its orders, and a change of INGEST_CORS_ORIGINS reaches browsers
 * within ten minutes. */
#define CORS_MAX_AGE "600"

/* Reads the request's Origin header: sets r->has_origin and, when
 * INGEST_CORS_ORIGINS lists the origin, r->cors_origin. One header lookup,
 * no allocation. */
static void read_origin(struct req *r)
{
    const char *o = NULL;
    size_t len = 0;
    if (MHD_lookup_connection_value_n(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ORIGIN, 6, &o,
                                      &len) != MHD_YES ||
        !o)
        return;
    r->has_origin = true;
    if (r->s->cfg.cors)
        r->cors_origin = cors_origin_find(r->s->cfg.cors, o, len);
}

/*
 * Answers a CORS preflight (OPTIONS with Origin and
 * Access-Control-Request-Method), which a browser sends before a
 * cross-origin request with an Authorization header or a JSON body: 204
 * allowing the path's methods (allow, as route_of gives them), the headers
 * Authorization and Content-Type, for CORS_MAX_AGE, to an origin
 * INGEST_CORS_ORIGINS lists; 403 origin_not_allowed to any other (the
 * browser then sends nothing); 404 for a path ingest does not serve
 * (allow NULL). Needs no API key: a preflight never carries one.
 */
static enum MHD_Result handle_preflight(struct req *r, const char *allow)
{
    if (!allow)
        return fail(r, 404, "not_found", "", "no such endpoint");
    if (!r->cors_origin) {
        struct api_error e;
        const char *o =
            MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ORIGIN);
        api_fail(&e, 403, "origin_not_allowed", "Origin",
                 "origin '%.100s' is not allowed to call this api from a browser: add it to "
                 "INGEST_CORS_ORIGINS",
                 o ? o : "");
        return respond_error(r, &e);
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    add_cors_headers(r, resp);
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", allow);
    MHD_add_response_header(resp, "Access-Control-Allow-Headers", "Authorization, Content-Type");
    MHD_add_response_header(resp, "Access-Control-Max-Age", CORS_MAX_AGE);
    return queue_counted(r, 204, resp);
}

/* ---- the access handler -------------------------------------------------- */

/* First call for a request (headers only): framing, route, auth, content checks.
 * Returns MHD_YES to read the body, or the result of queueing an error. */
static enum MHD_Result on_headers(struct req *r, const char *method, const char *url,
                                  const char *version)
{
    const char *allow;
    char msg[96];
    bool answered;
    enum MHD_Result frc = check_framing(r, method, version, &answered);
    if (answered)
        return frc;
    read_origin(r);
    r->route = route_of(method, url, r->path_arg, sizeof(r->path_arg), &allow);
    if (r->has_origin && r->route == R_NONE && strcmp(method, MHD_HTTP_METHOD_OPTIONS) == 0 &&
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Access-Control-Request-Method")) {
        r->route = R_PREFLIGHT;
        return handle_preflight(r, allow);
    }
    if (r->route == R_NONE) {
        if (allow) {
            snprintf(msg, sizeof(msg), "method %s is not allowed here", method);
            struct api_error e;
            api_fail(&e, 405, "method_not_allowed", allow, "%s", msg);
            return respond_error(r, &e);
        }
        return fail(r, 404, "not_found", "", "no such endpoint");
    }
    if (r->route == R_HEALTH || r->route == R_METRICS)
        return MHD_YES;

    const char *auth = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return fail(r, 401, "unauthorized", "", "send 'Authorization: Bearer <api key>'");
    r->key = op_apikeys_lookup(r->s->cfg.keys, auth + 7, strlen(auth + 7));
    if (!r->key)
        return fail(r, 401, "unauthorized", "", "unknown api key");
    r->account = r->key->account;

    if (r->route == R_NEW || r->route == R_BATCH || r->route == R_AMEND ||
        r->route == R_CANCEL_ALL_AFTER) {
        const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
        size_t n = strlen("application/json");
        if (!ct || strncasecmp(ct, "application/json", n) != 0 ||
            (ct[n] && ct[n] != ';' && ct[n] != ' '))
            return fail(r, 415, "unsupported_media_type", "",
                        "Content-Type must be application/json");
        /* A body somewhat over the limit is read and dropped, so that the
         * client sees the 413 rather than a reset; a grossly larger one is
         * refused at once (the client may see the connection close). */
        const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > 16 * (unsigned long long)r->s->cfg.max_body)
            return fail(r, 413, "payload_too_large", "", "the body is larger than INGEST_MAX_BODY");
    }
    return MHD_YES;
}

/* ---- request state: kept per connection --------------------------------- */

/*
 * INGEST_FAULT=alloc:N (tests only): the Nth allocation made for each
 * request on an HTTP thread fails, so that a test can walk every
 * out-of-memory path of a request (docs/ingest.md). fault_allocs points at
 * the count of the request being served on this thread, NULL outside one.
 */
static long fault_alloc_at;
static _Thread_local long *fault_allocs;

static bool fault_due(void)
{
    return fault_allocs && ++*fault_allocs == fault_alloc_at;
}

static void *fault_malloc(size_t n)
{
    return fault_due() ? NULL : malloc(n);
}

static void *fault_realloc(void *p, size_t n)
{
    return fault_due() ? NULL : realloc(p, n);
}

void http_fault_init(long alloc_at)
{
    static const struct op_alloc_hooks faulty = {fault_malloc, fault_realloc, free};
    fault_alloc_at = alloc_at > 0 ? alloc_at : 0;
    op_alloc_set_hooks(fault_alloc_at ? &faulty : NULL);
}

static void req_free(struct req *r)
{
    if (!r)
        return;
    op_buf_release(&r->body);
    op_buf_release(&r->out);
    json_parser_release(&r->json);
    op_free(r->items);
    op_free(r->item_of);
    op_free(r->errs);
    op_free(r);
}

/* The state for a new request on conn: slot's kept one (its per-request
 * fields zeroed), else a new one, kept in slot if there is one. Returns
 * NULL out of memory. */
static struct req *req_get(struct http_server *s, struct MHD_Connection *conn,
                           struct conn_slot *slot)
{
    struct req *r = slot ? slot->req : NULL;
    if (!r) {
        r = op_calloc(1, sizeof(*r));
        if (!r)
            return NULL;
        op_buf_init(&r->body);
        op_buf_init(&r->out);
        json_parser_init(&r->json);
        if (slot)
            slot->req = r;
    }
    memset(r, 0, offsetof(struct req, body));
    r->s = s;
    r->conn = conn;
    r->slot = slot;
    clock_gettime(CLOCK_MONOTONIC, &r->t0);
    op_buf_reset(&r->body);
    if (fault_allocs) { /* from now on, count this request's allocations in it */
        r->allocs = *fault_allocs;
        fault_allocs = &r->allocs;
    }
    return r;
}

/* Frees *arr (of cap elements of size bytes) when it is above REQ_KEEP_BYTES. */
static void trim(void **arr, int *cap, size_t size)
{
    if ((size_t)*cap * size > REQ_KEEP_BYTES) {
        op_free(*arr);
        *arr = NULL;
        *cap = 0;
    }
}

/* The request is over: frees what the writer attached, and either keeps
 * r for the connection's next request (dropping buffers above
 * REQ_KEEP_BYTES) or, untracked, frees it. */
static void req_put(struct req *r)
{
    job_release(&r->job);
    if (!r->slot) {
        req_free(r);
        return;
    }
    if (r->body.cap > REQ_KEEP_BYTES)
        op_buf_release(&r->body);
    if (r->out.cap > REQ_KEEP_BYTES)
        op_buf_release(&r->out);
    if (json_parser_size(&r->json) > REQ_KEEP_BYTES)
        json_parser_release(&r->json);
    void *p = r->items;
    trim(&p, &r->items_cap, sizeof(*r->items));
    r->items = p;
    p = r->item_of;
    trim(&p, &r->item_of_cap, sizeof(*r->item_of));
    r->item_of = p;
    p = r->errs;
    trim(&p, &r->errs_cap, sizeof(*r->errs));
    r->errs = p;
}

/* *con_cls of a request that got no state (out of memory): answered 500
 * at once, ignored afterwards. */
static char req_refused;

/* Answers 500 out of memory to a request that has no state. */
static enum MHD_Result refuse_oom(struct http_server *s, struct MHD_Connection *conn)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        sizeof(OOM_BODY) - 1, (void *)OOM_BODY, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "application/json");
    enum MHD_Result rc = MHD_queue_response(conn, 500, resp);
    MHD_destroy_response(resp);
    atomic_fetch_add_explicit(&s->requests[R_NONE][code_index(500)], 1, memory_order_relaxed);
    return rc;
}

static enum MHD_Result serve(struct http_server *s, struct MHD_Connection *conn, const char *url,
                             const char *method, const char *version, const char *upload,
                             size_t *upload_size, void **con_cls)
{
    struct req *r = *con_cls;

    if (r == (void *)&req_refused) {
        *upload_size = 0;
        return MHD_YES;
    }
    if (!r) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        struct conn_slot *slot = ci ? ci->socket_context : NULL;
        r = req_get(s, conn, slot);
        if (!r) {
            *con_cls = &req_refused;
            return refuse_oom(s, conn);
        }
        if (r->slot)
            atomic_store_explicit(&r->slot->in_request, true, memory_order_relaxed);
        *con_cls = r;
        atomic_fetch_add(&s->inflight, 1);
        return on_headers(r, method, url, version);
    }
    if (*upload_size) {
        if (!r->too_large && !r->oom && r->body.len + *upload_size <= s->cfg.max_body) {
            if (op_buf_append(&r->body, upload, *upload_size) != 0)
                r->oom = true;
        } else if (!r->oom) {
            r->too_large = true;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->waiting) { /* resumed: the writer has answered */
        if (!atomic_load(&r->done))
            return MHD_YES;
        if (r->slot) { /* a fresh deadline to send the answer */
            atomic_store_explicit(&r->slot->since_ms, op_now_ms(), memory_order_relaxed);
            atomic_store_explicit(&r->slot->suspended, false, memory_order_relaxed);
        }
        return finish(r);
    }
    if (r->oom)
        return fail(r, 500, "internal", "", "out of memory");
    if (r->too_large)
        return fail(r, 413, "payload_too_large", "", "the body is larger than INGEST_MAX_BODY");

    switch (r->route) {
    case R_NEW:
        return handle_new(r);
    case R_BATCH:
        return handle_batch(r);
    case R_CANCEL:
    case R_AMEND:
        return handle_cancel_amend(r);
    case R_CANCEL_ALL:
        return handle_cancel_all(r);
    case R_CANCEL_ALL_AFTER:
        return handle_cancel_all_after(r);
    case R_GET_ORDER:
        return handle_get_order(r);
    case R_FILLS:
        return handle_fills(r);
    case R_BOOK:
        return handle_book(r);
    case R_HEALTH:
        return handle_health(r);
    case R_METRICS:
        return handle_metrics(r);
    default:
        return fail(r, 404, "not_found", "", "no such endpoint");
    }
}

/* libmicrohttpd's access handler: serve, counting the request's
 * allocations for INGEST_FAULT. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    long first = 0; /* before the request has its state */
    struct req *r = *con_cls;
    if (fault_alloc_at)
        fault_allocs = r && r != (void *)&req_refused ? &r->allocs : &first;
    enum MHD_Result rc = serve(cls, conn, url, method, version, upload, upload_size, con_cls);
    fault_allocs = NULL;
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    struct req *r = *con_cls;
    (void)conn;
    if (r == (void *)&req_refused)
        *con_cls = NULL;
    if (!*con_cls)
        return;
    if (r->slot) { /* the next request's deadline counts from here */
        atomic_store_explicit(&r->slot->since_ms, op_now_ms(), memory_order_relaxed);
        atomic_store_explicit(&r->slot->in_request, false, memory_order_relaxed);
        atomic_store_explicit(&r->slot->suspended, false, memory_order_relaxed);
        if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
            atomic_store_explicit(&r->slot->answered, true, memory_order_relaxed);
    }
    req_put(r);
    *con_cls = NULL;
    atomic_fetch_sub(&s->inflight, 1);
}

/* ---- connection tracking ------------------------------------------------- */

/* Closes slot's connection: shutdown() makes libmicrohttpd read the end of
 * the stream and close it on its own thread. Caller holds t->mu. */
static void conn_shut(struct conn_table *t, struct conn_slot *slot)
{
    shutdown(slot->fd, SHUT_RDWR);
    slot->shut = true;
    t->live--;
    atomic_store_explicit(&t->open, t->live, memory_order_relaxed);
}

/* The connection to evict for a new one (not self), by class, oldest start
 * or last answer first within a class: idle and never answered (what an idle
 * or slowloris flood is made of), then idle keep-alive ones that have been
 * answered before, then those with a request in progress. Never a suspended
 * one. The first class matters: a flood larger than the table arrives in
 * bursts, and in a burst every connection is only milliseconds old, so age
 * alone would let it push out a client's keep-alive connection. NULL if
 * there is none. Caller holds t->mu. O(cap), run only above the soft limit. */
static struct conn_slot *conn_victim(struct conn_table *t, const struct conn_slot *self)
{
    struct conn_slot *best[3] = {NULL, NULL, NULL};
    for (int i = 0; i < t->cap; i++) {
        struct conn_slot *c = &t->slots[i];
        if (c == self || c->fd < 0 || c->shut || atomic_load(&c->suspended))
            continue;
        int k = atomic_load(&c->in_request) ? 2 : atomic_load(&c->answered) ? 1 : 0;
        if (!best[k] || atomic_load(&c->since_ms) < atomic_load(&best[k]->since_ms))
            best[k] = c;
    }
    return best[0] ? best[0] : best[1] ? best[1] : best[2];
}

/* MHD_OPTION_NOTIFY_CONNECTION: takes a slot for a new connection (evicting
 * above the soft limit) and frees it when the connection closes. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct conn_table *t = &((struct http_server *)cls)->conns;
    struct conn_slot *slot = *socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        if (!slot)
            return;
        req_free(slot->req); /* this thread's: no lock needed */
        slot->req = NULL;
        pthread_mutex_lock(&t->mu);
        if (!slot->shut)
            t->live--;
        atomic_store_explicit(&t->open, t->live, memory_order_relaxed);
        slot->fd = -1;
        slot->next_free = t->free_head;
        t->free_head = (int)(slot - t->slots);
        pthread_mutex_unlock(&t->mu);
        *socket_context = NULL;
        return;
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return;
    pthread_mutex_lock(&t->mu);
    if (t->free_head >= 0) { /* always, as cap is libmicrohttpd's own limit */
        slot = &t->slots[t->free_head];
        t->free_head = slot->next_free;
        slot->fd = ci->connect_fd;
        slot->shut = false;
        atomic_store(&slot->since_ms, op_now_ms());
        atomic_store(&slot->in_request, false);
        atomic_store(&slot->suspended, false);
        atomic_store(&slot->answered, false);
        t->live++;
        while (t->live > t->soft_limit) {
            struct conn_slot *victim = conn_victim(t, slot);
            if (!victim)
                break;
            conn_shut(t, victim);
            atomic_fetch_add_explicit(&t->evicted, 1, memory_order_relaxed);
        }
        atomic_store_explicit(&t->open, t->live, memory_order_relaxed);
        *socket_context = slot;
    }
    pthread_mutex_unlock(&t->mu);
}

/* The reaper thread: every few milliseconds, closes each connection that has
 * not completed a request within timeout_ms of its start or previous answer
 * (suspended ones excepted). */
static void *conn_reaper(void *arg)
{
    struct conn_table *t = arg;
    /* A tenth of the timeout, 10..250 ms: a deadline is overshot by at most
     * that, and the scan stays negligible (cap slots, a few ns each). */
    int64_t period = t->timeout_ms / 10;
    period = period < 10 ? 10 : period > 250 ? 250 : period;
    struct timespec ts = {.tv_sec = period / 1000, .tv_nsec = (long)(period % 1000) * 1000000};
    while (!atomic_load(&t->stop)) {
        nanosleep(&ts, NULL);
        int64_t now = op_now_ms();
        pthread_mutex_lock(&t->mu);
        for (int i = 0; i < t->cap; i++) {
            struct conn_slot *c = &t->slots[i];
            if (c->fd < 0 || c->shut || atomic_load(&c->suspended) ||
                now - atomic_load(&c->since_ms) < t->timeout_ms)
                continue;
            conn_shut(t, c);
            atomic_fetch_add_explicit(&t->timed_out, 1, memory_order_relaxed);
        }
        pthread_mutex_unlock(&t->mu);
    }
    return NULL;
}

/* Allocates cap slots and starts the reaper. Returns 0, or -1 with a message
 * on stderr; conns_release undoes either way. */
static int conns_init(struct conn_table *t, int soft_limit, int cap, int64_t timeout_ms)
{
    memset(t, 0, sizeof(*t));
    pthread_mutex_init(&t->mu, NULL);
    t->slots = op_calloc((size_t)cap, sizeof(*t->slots));
    if (!t->slots) {
        fprintf(stderr, "ingest: out of memory for %d connection slots\n", cap);
        return -1;
    }
    t->cap = cap;
    t->soft_limit = soft_limit;
    t->timeout_ms = timeout_ms;
    for (int i = 0; i < cap; i++) {
        t->slots[i].fd = -1;
        t->slots[i].next_free = i + 1 < cap ? i + 1 : -1;
    }
    t->free_head = 0;
    if (pthread_create(&t->reaper, NULL, conn_reaper, t) != 0) {
        fprintf(stderr, "ingest: cannot start the connection reaper thread\n");
        return -1;
    }
    t->reaper_started = true;
    return 0;
}

/* Stops the reaper. Call before MHD_stop_daemon; conns_release after it. */
static void conns_stop(struct conn_table *t)
{
    atomic_store(&t->stop, true);
    if (t->reaper_started)
        pthread_join(t->reaper, NULL);
    t->reaper_started = false;
}

static void conns_release(struct conn_table *t)
{
    conns_stop(t);
    for (int i = 0; t->slots && i < t->cap; i++) /* none after MHD_stop_daemon; in case */
        req_free(t->slots[i].req);
    op_free(t->slots);
    t->slots = NULL;
    pthread_mutex_destroy(&t->mu);
}

/* Raises the soft limit of open descriptors to what want connections need
 * (up to the hard limit); warns when even that is too low, since accept()
 * would then fail before the connection limit is reached. */
static void raise_fd_limit(int want)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)want + FD_RESERVE;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < need)
        op_warn("fd_limit",
                "open file limit %llu is below the %llu that %d connections need: "
                "raise 'ulimit -n' or lower INGEST_MAX_CONNECTIONS",
                (unsigned long long)rl.rlim_cur, (unsigned long long)need, want);
}

/* libmicrohttpd's error messages, as one log line each. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    op_log_message(OP_LOG_WARN, "http_error", fmt, ap);
}

struct http_server *http_start(const struct http_config *cfg)
{
    struct http_server *s = op_calloc(1, sizeof(*s));
    struct sockaddr_in addr;
    if (!s)
        return NULL;
    s->cfg = *cfg;
    int hard = HARD_LIMIT(cfg->max_connections, cfg->threads);
    if (conns_init(&s->conns, cfg->max_connections, hard, cfg->request_timeout_ms) != 0) {
        conns_release(&s->conns);
        op_free(s);
        return NULL;
    }
    raise_fd_limit(OPEN_MAX(cfg->max_connections));
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)cfg->port);
    if (inet_pton(AF_INET, cfg->bind, &addr.sin_addr) != 1) {
        fprintf(stderr,
                "ingest: invalid INGEST_BIND='%s': want an IPv4 address such as 127.0.0.1\n",
                cfg->bind);
        conns_release(&s->conns);
        op_free(s);
        return NULL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    s->d = MHD_start_daemon(
        flags, (uint16_t)cfg->port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
        NULL, /* first, so it gets every message */
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)cfg->threads, MHD_OPTION_CONNECTION_LIMIT, (unsigned)hard,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->max_connections_per_ip,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)cfg->idle_timeout_s,
        /* Per-connection pool for the request line, headers and read buffer.
         * libmicrohttpd zeroes it for every request, so it is kept small:
         * 16 KiB holds any sane header set (larger headers get 431); 64 KiB
         * made the memset 13% of ingest's CPU. The body goes to our buffer. */
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16 * 1024, MHD_OPTION_LISTEN_BACKLOG_SIZE,
        (unsigned)1024, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    if (!s->d) {
        fprintf(stderr,
                "ingest: cannot listen on %s:%d (INGEST_BIND, INGEST_PORT): port in use or not "
                "permitted\n",
                cfg->bind, cfg->port);
        conns_release(&s->conns);
        op_free(s);
        return NULL;
    }
    return s;
}

void http_quiesce(struct http_server *s)
{
    MHD_quiesce_daemon(s->d);
}

long http_inflight(struct http_server *s)
{
    return atomic_load(&s->inflight);
}

void http_stop(struct http_server *s)
{
    conns_stop(&s->conns); /* no shutdown() while the daemon closes sockets */
    MHD_stop_daemon(s->d);
    conns_release(&s->conns);
    op_free(s);
}

/* The feed's JSON: execution reports as an account sees them, public trades, positions. */
#include "feed/format.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

const char *feed_leg_account(const struct op_report *r, enum feed_leg leg)
{
    if (r->kind == OP_REPORT_TICK)
        return "";
    if (leg == FEED_LEG_MAKER)
        return r->kind == OP_REPORT_TRADE ? r->maker_account : "";
    return r->account;
}

int feed_json_str(struct op_buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (op_buf_reserve(out, n + 2) != 0)
        return -1;
    if (op_buf_append(out, "\"", 1) != 0)
        return -1;
    size_t run = 0; /* bytes of s[i - run .. i) that need no escape */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            run++;
            continue;
        }
        if (op_buf_append(out, s + i - run, run) != 0)
            return -1;
        run = 0;
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        if (c == '"' || c == '\\') {
            esc[1] = (char)c;
            if (op_buf_append(out, esc, 2) != 0)
                return -1;
        } else if (op_buf_append(out, esc, 6) != 0) {
            return -1;
        }
    }
    if (op_buf_append(out, s + n - run, run) != 0)
        return -1;
    return op_buf_append(out, "\"", 1);
}

/*
 * Fast appenders: the report JSON is the feed's hot path (one per report
 * per account watching it), and vsnprintf was 85 % of its time (perf on
 * feed_format_report: ~2.2 µs per report). Each returns 0 or -1 as
 * op_buf_append.
 */
/* op_buf_append with its common case inlined: ~50 appends per report. */
static inline int app(struct op_buf *out, const void *p, size_t n)
{
    if (out->data && n < out->cap - out->len) {
        memcpy(out->data + out->len, p, n);
        out->len += n;
        out->data[out->len] = '\0';
        return 0;
    }
    return op_buf_append(out, p, n);
}

#define LIT(out, s) app((out), (s), sizeof(s) - 1)

static int put_u64(struct op_buf *out, uint64_t v)
{
    char d[24];
    size_t i = sizeof(d);
    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return app(out, d + i, sizeof(d) - i);
}

static int put_i64(struct op_buf *out, int64_t v)
{
    if (v < 0) {
        if (app(out, "-", 1) != 0)
            return -1;
        return put_u64(out, (uint64_t)0 - (uint64_t)v);
    }
    return put_u64(out, (uint64_t)v);
}

/* Appends the NUL-terminated s as is (a name from the msg.h tables). */
static int put_raw(struct op_buf *out, const char *s)
{
    return app(out, s, strlen(s));
}

/* The date and time part "YYYY-MM-DDTHH:MM:SS" of the last second
 * formatted: the reports of a batch share a few seconds at most, so
 * gmtime_r runs once per second, not once per report. */
static _Thread_local struct {
    uint64_t sec;
    int valid;
    char text[48];
} time_cache;

/* Appends ns as RFC 3339 UTC with nanoseconds (feed_format_time's text). */
static int put_time_text(struct op_buf *out, uint64_t ns)
{
    uint64_t sec = ns / 1000000000u;
    if (!time_cache.valid || time_cache.sec != sec) {
        time_t t = (time_t)sec;
        struct tm tm;
        gmtime_r(&t, &tm);
        snprintf(time_cache.text, sizeof(time_cache.text), "%04d-%02d-%02dT%02d:%02d:%02d",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        time_cache.sec = sec;
        time_cache.valid = 1;
    }
    char frac[11] = ".000000000";
    uint32_t f = (uint32_t)(ns % 1000000000u);
    for (int i = 9; i >= 1; i--) {
        frac[i] = (char)('0' + f % 10);
        f /= 10;
    }
    if (put_raw(out, time_cache.text) != 0 || app(out, frac, 10) != 0)
        return -1;
    return LIT(out, "Z");
}

void feed_format_time(uint64_t ns, char *out, size_t size)
{
    time_t sec = (time_t)(ns / 1000000000u);
    struct tm tm;
    gmtime_r(&sec, &tm);
    snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%09uZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(ns % 1000000000u));
}

int feed_format_pos_part(struct op_buf *out, uint32_t shard, struct op_sid id)
{
    return op_buf_printf(out, "%" PRIu32 ":%" PRIu64 "-%" PRIu64, shard, id.ms, id.seq);
}

/* Appends ,"key":"<price>" (or ,"key_ticks":N when sym is NULL). */
static int put_price(struct op_buf *out, const char *key, int64_t ticks,
                     const struct op_symbol *sym)
{
    char px[48];
    int n = sym ? op_decimal_format(ticks, sym->tick, px, sizeof(px)) : -1;
    int rc = LIT(out, ",\"") | put_raw(out, key);
    if (n < 0)
        return rc | LIT(out, "_ticks\":") | put_i64(out, ticks) ? -1 : 0;
    rc |= LIT(out, "\":\"") | app(out, px, (size_t)n) | LIT(out, "\"");
    return rc ? -1 : 0;
}

/* Appends ,"key":"<time>". */
static int put_time(struct op_buf *out, const char *key, uint64_t ns)
{
    int rc = LIT(out, ",\"") | put_raw(out, key) | LIT(out, "\":\"") | put_time_text(out, ns) |
             LIT(out, "\"");
    return rc ? -1 : 0;
}

/* Appends ,"key": followed by the JSON string of the NUL-terminated s. */
static int put_str(struct op_buf *out, const char *key, const char *s)
{
    int rc = LIT(out, ",\"") | put_raw(out, key) | LIT(out, "\":");
    return rc | feed_json_str(out, s, strlen(s)) ? -1 : 0;
}

/* Appends ,"key":"<name>" for a name of the msg.h tables (plain ASCII). */
static int put_name(struct op_buf *out, const char *key, const char *name)
{
    int rc = LIT(out, ",\"") | put_raw(out, key) | LIT(out, "\":\"") | put_raw(out, name) |
             LIT(out, "\"");
    return rc ? -1 : 0;
}

/* Appends ,"key":N. */
static int put_int(struct op_buf *out, const char *key, int64_t v)
{
    return LIT(out, ",\"") | put_raw(out, key) | LIT(out, "\":") | put_i64(out, v) ? -1 : 0;
}

/* Appends ,"key":"N" (ids: decimal strings, beyond JavaScript's 2^53). */
static int put_id(struct op_buf *out, const char *key, uint64_t v)
{
    int rc =
        LIT(out, ",\"") | put_raw(out, key) | LIT(out, "\":\"") | put_u64(out, v) | LIT(out, "\"");
    return rc ? -1 : 0;
}

/* The maker's side is the taker's opposite. */
static int opposite(int side)
{
    return side == OP_SIDE_BUY ? OP_SIDE_SELL : OP_SIDE_BUY;
}

/* The fields that describe order r->order_id (every kind about one order). */
static int put_order(struct op_buf *out, const struct op_report *r, const struct op_symbol *sym)
{
    int rc = put_id(out, "order_id", r->order_id);
    if (r->client_order_id[0])
        rc |= put_str(out, "client_order_id", r->client_order_id);
    rc |= put_str(out, "symbol", r->symbol);
    if (r->side)
        rc |= put_name(out, "side", op_side_name(r->side));
    if (r->type)
        rc |= put_name(out, "type", op_type_name(r->type));
    if (r->tif)
        rc |= put_name(out, "tif", op_tif_name(r->tif));
    if (r->post_only)
        rc |= LIT(out, ",\"post_only\":true");
    if (r->price)
        rc |= put_price(out, "price", r->price, sym);
    if (r->stop_price)
        rc |= put_price(out, "stop_price", r->stop_price, sym);
    if (r->expire_ns)
        rc |= put_time(out, "expire_at", r->expire_ns);
    rc |= put_int(out, "qty", r->qty) | put_int(out, "filled_qty", r->filled_qty);
    if (r->status)
        rc |= put_name(out, "status", op_status_name(r->status));
    return rc ? -1 : 0;
}

int feed_format_report(struct op_buf *out, const struct op_report *r, enum feed_leg leg,
                       const struct op_symbol *sym)
{
    int rc = LIT(out, "{\"kind\":\"") | put_raw(out, op_report_kind_name(r->kind)) |
             LIT(out, "\"") | put_id(out, "report_id", r->report_id) |
             put_time(out, "ts", r->ts_ns);
    if (r->kind == OP_REPORT_TRADE && leg == FEED_LEG_MAKER) {
        /* The maker's own order: its side is the taker's opposite and its
         * limit price the trade price (a maker always trades at its price). */
        rc |= put_id(out, "order_id", r->maker_order_id) | put_str(out, "symbol", r->symbol) |
              put_name(out, "side", op_side_name(opposite(r->side))) |
              LIT(out, ",\"liquidity\":\"maker\"") | put_price(out, "price", r->trade_price, sym) |
              put_int(out, "qty", r->maker_qty) | put_int(out, "filled_qty", r->maker_filled_qty);
        if (r->maker_status)
            rc |= put_name(out, "status", op_status_name(r->maker_status));
    } else if (r->kind == OP_REPORT_CANCEL_ALL_DONE || r->kind == OP_REPORT_DEAD_MAN) {
        /* They concern no order: id 0, qty the count (or the timeout). */
        rc |= put_str(out, "symbol", r->symbol) |
              put_int(out, r->kind == OP_REPORT_DEAD_MAN ? "timeout_ms" : "count", r->qty);
    } else {
        rc |= put_order(out, r, sym);
        if (r->kind == OP_REPORT_TRADE)
            rc |= LIT(out, ",\"liquidity\":\"taker\"");
    }
    if (r->kind == OP_REPORT_TRADE)
        rc |= put_id(out, "fill_id", r->report_id) |
              put_price(out, "trade_price", r->trade_price, sym) |
              put_int(out, "trade_qty", r->trade_qty);
    if (r->reason)
        rc |= put_name(out, "reason", op_reason_name(r->reason));
    if (r->req_kind)
        rc |= put_name(out, "request", op_msg_kind_name(r->req_kind));
    rc |= LIT(out, "}");
    return rc ? -1 : 0;
}

int feed_format_trade(struct op_buf *out, const struct op_report *r, const struct op_symbol *sym)
{
    int rc = LIT(out, "{\"fill_id\":\"") | put_u64(out, r->report_id) | LIT(out, "\"") |
             put_price(out, "price", r->trade_price, sym) | put_int(out, "qty", r->trade_qty) |
             put_name(out, "taker_side", op_side_name(r->side)) | put_time(out, "ts", r->ts_ns) |
             LIT(out, "}");
    return rc ? -1 : 0;
}

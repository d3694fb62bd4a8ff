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
    if (!sym)
        return op_buf_printf(out, ",\"%s_ticks\":%" PRId64, key, ticks);
    char px[48];
    if (op_decimal_format(ticks, sym->tick, px, sizeof(px)) < 0)
        return op_buf_printf(out, ",\"%s_ticks\":%" PRId64, key, ticks);
    return op_buf_printf(out, ",\"%s\":\"%s\"", key, px);
}

/* Appends ,"key":"<time>". */
static int put_time(struct op_buf *out, const char *key, uint64_t ns)
{
    char t[48];
    feed_format_time(ns, t, sizeof(t));
    return op_buf_printf(out, ",\"%s\":\"%s\"", key, t);
}

/* Appends ,"key": followed by the JSON string of the NUL-terminated s. */
static int put_str(struct op_buf *out, const char *key, const char *s)
{
    if (op_buf_printf(out, ",\"%s\":", key) != 0)
        return -1;
    return feed_json_str(out, s, strlen(s));
}

/* The maker's side is the taker's opposite. */
static int opposite(int side)
{
    return side == OP_SIDE_BUY ? OP_SIDE_SELL : OP_SIDE_BUY;
}

/* The fields that describe order r->order_id (every kind about one order). */
static int put_order(struct op_buf *out, const struct op_report *r, const struct op_symbol *sym)
{
    int rc = 0;
    rc |= op_buf_printf(out, ",\"order_id\":\"%" PRIu64 "\"", r->order_id);
    if (r->client_order_id[0])
        rc |= put_str(out, "client_order_id", r->client_order_id);
    rc |= put_str(out, "symbol", r->symbol);
    if (r->side)
        rc |= op_buf_printf(out, ",\"side\":\"%s\"", op_side_name(r->side));
    if (r->type)
        rc |= op_buf_printf(out, ",\"type\":\"%s\"", op_type_name(r->type));
    if (r->tif)
        rc |= op_buf_printf(out, ",\"tif\":\"%s\"", op_tif_name(r->tif));
    if (r->post_only)
        rc |= op_buf_printf(out, ",\"post_only\":true");
    if (r->price)
        rc |= put_price(out, "price", r->price, sym);
    if (r->stop_price)
        rc |= put_price(out, "stop_price", r->stop_price, sym);
    if (r->expire_ns)
        rc |= put_time(out, "expire_at", r->expire_ns);
    rc |= op_buf_printf(out, ",\"qty\":%" PRId64 ",\"filled_qty\":%" PRId64, r->qty, r->filled_qty);
    if (r->status)
        rc |= op_buf_printf(out, ",\"status\":\"%s\"", op_status_name(r->status));
    return rc ? -1 : 0;
}

int feed_format_report(struct op_buf *out, const struct op_report *r, enum feed_leg leg,
                       const struct op_symbol *sym)
{
    int rc = 0;
    rc |= op_buf_printf(out, "{\"kind\":\"%s\",\"report_id\":\"%" PRIu64 "\"",
                        op_report_kind_name(r->kind), r->report_id);
    rc |= put_time(out, "ts", r->ts_ns);
    if (r->kind == OP_REPORT_TRADE && leg == FEED_LEG_MAKER) {
        /* The maker's own order: its side is the taker's opposite and its
         * limit price the trade price (a maker always trades at its price). */
        rc |= op_buf_printf(out, ",\"order_id\":\"%" PRIu64 "\"", r->maker_order_id);
        rc |= put_str(out, "symbol", r->symbol);
        rc |= op_buf_printf(out, ",\"side\":\"%s\",\"liquidity\":\"maker\"",
                            op_side_name(opposite(r->side)));
        rc |= put_price(out, "price", r->trade_price, sym);
        rc |= op_buf_printf(out, ",\"qty\":%" PRId64 ",\"filled_qty\":%" PRId64, r->maker_qty,
                            r->maker_filled_qty);
        if (r->maker_status)
            rc |= op_buf_printf(out, ",\"status\":\"%s\"", op_status_name(r->maker_status));
    } else if (r->kind == OP_REPORT_CANCEL_ALL_DONE || r->kind == OP_REPORT_DEAD_MAN) {
        /* They concern no order: id 0, qty the count (or the timeout). */
        rc |= put_str(out, "symbol", r->symbol);
        rc |= op_buf_printf(
            out, r->kind == OP_REPORT_DEAD_MAN ? ",\"timeout_ms\":%" PRId64 : ",\"count\":%" PRId64,
            r->qty);
    } else {
        rc |= put_order(out, r, sym);
        if (r->kind == OP_REPORT_TRADE)
            rc |= op_buf_printf(out, ",\"liquidity\":\"taker\"");
    }
    if (r->kind == OP_REPORT_TRADE) {
        rc |= op_buf_printf(out, ",\"fill_id\":\"%" PRIu64 "\"", r->report_id);
        rc |= put_price(out, "trade_price", r->trade_price, sym);
        rc |= op_buf_printf(out, ",\"trade_qty\":%" PRId64, r->trade_qty);
    }
    if (r->reason)
        rc |= op_buf_printf(out, ",\"reason\":\"%s\"", op_reason_name(r->reason));
    if (r->req_kind)
        rc |= op_buf_printf(out, ",\"request\":\"%s\"", op_msg_kind_name(r->req_kind));
    rc |= op_buf_append(out, "}", 1);
    return rc ? -1 : 0;
}

int feed_format_trade(struct op_buf *out, const struct op_report *r, const struct op_symbol *sym)
{
    int rc = 0;
    rc |= op_buf_printf(out, "{\"fill_id\":\"%" PRIu64 "\"", r->report_id);
    rc |= put_price(out, "price", r->trade_price, sym);
    rc |= op_buf_printf(out, ",\"qty\":%" PRId64 ",\"taker_side\":\"%s\"", r->trade_qty,
                        op_side_name(r->side));
    rc |= put_time(out, "ts", r->ts_ns);
    rc |= op_buf_append(out, "}", 1);
    return rc ? -1 : 0;
}

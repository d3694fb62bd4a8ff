/* Names of the message enums, for logs, JSON answers and database columns. */
#include "shared/msg.h"

#include <stddef.h>
#include <string.h>

/* Returns names[v] when v indexes a non-NULL entry, "?" otherwise. */
static const char *name_of(const char *const *names, size_t n, int v)
{
    if (v < 0 || (size_t)v >= n || names[v] == NULL)
        return "?";
    return names[v];
}

#define NAME_OF(arr, v) name_of((arr), sizeof(arr) / sizeof((arr)[0]), (v))

const char *op_side_name(int side)
{
    static const char *const names[] = {[OP_SIDE_BUY] = "buy", [OP_SIDE_SELL] = "sell"};
    return NAME_OF(names, side);
}

const char *op_type_name(int type)
{
    static const char *const names[] = {[OP_TYPE_LIMIT] = "limit",
                                        [OP_TYPE_MARKET] = "market",
                                        [OP_TYPE_STOP_MARKET] = "stop_market",
                                        [OP_TYPE_STOP_LIMIT] = "stop_limit"};
    return NAME_OF(names, type);
}

const char *op_tif_name(int tif)
{
    static const char *const names[] = {
        [OP_TIF_GTC] = "GTC", [OP_TIF_IOC] = "IOC", [OP_TIF_FOK] = "FOK", [OP_TIF_GTD] = "GTD"};
    return NAME_OF(names, tif);
}

const char *op_status_name(int status)
{
    static const char *const names[] = {
        [OP_STATUS_NEW] = "NEW",           [OP_STATUS_PARTIALLY_FILLED] = "PARTIALLY_FILLED",
        [OP_STATUS_FILLED] = "FILLED",     [OP_STATUS_CANCELLED] = "CANCELLED",
        [OP_STATUS_REJECTED] = "REJECTED", [OP_STATUS_PENDING_TRIGGER] = "PENDING_TRIGGER",
    };
    return NAME_OF(names, status);
}

const char *op_report_kind_name(int kind)
{
    static const char *const names[] = {
        [OP_REPORT_ACCEPTED] = "accepted",
        [OP_REPORT_TRADE] = "trade",
        [OP_REPORT_CANCELLED] = "cancelled",
        [OP_REPORT_REJECTED] = "rejected",
        [OP_REPORT_AMENDED] = "amended",
        [OP_REPORT_REPLACED] = "replaced",
        [OP_REPORT_CANCEL_ALL_DONE] = "cancel_all_done",
        [OP_REPORT_TRIGGERED] = "triggered",
        [OP_REPORT_DEAD_MAN] = "dead_man",
        [OP_REPORT_TICK] = "tick",
    };
    return NAME_OF(names, kind);
}

const char *op_msg_kind_name(int kind)
{
    static const char *const names[] = {
        [OP_MSG_NEW] = "new",     [OP_MSG_CANCEL] = "cancel",
        [OP_MSG_AMEND] = "amend", [OP_MSG_CANCEL_ALL] = "cancel_all",
        [OP_MSG_TICK] = "tick",   [OP_MSG_CANCEL_ALL_AFTER] = "cancel_all_after"};
    return NAME_OF(names, kind);
}

const char *op_reason_name(int reason)
{
    static const char *const names[] = {
        [OP_REASON_NONE] = "",
        [OP_REASON_USER_CANCEL] = "USER_CANCEL",
        [OP_REASON_IOC_REMAINDER] = "IOC_REMAINDER",
        [OP_REASON_FOK_UNFILLED] = "FOK_UNFILLED",
        [OP_REASON_POST_ONLY] = "POST_ONLY_WOULD_TRADE",
        [OP_REASON_NO_LIQUIDITY] = "NO_LIQUIDITY",
        [OP_REASON_SELF_TRADE] = "SELF_TRADE",
        [OP_REASON_EXPIRED] = "EXPIRED",
        [OP_REASON_DEAD_MAN] = "DEAD_MAN",
        [OP_REASON_MALFORMED] = "MALFORMED",
        [OP_REASON_BAD_SIDE] = "BAD_SIDE",
        [OP_REASON_BAD_TYPE] = "BAD_TYPE",
        [OP_REASON_BAD_TIF] = "BAD_TIF",
        [OP_REASON_BAD_QTY] = "BAD_QTY",
        [OP_REASON_BAD_PRICE] = "BAD_PRICE",
        [OP_REASON_BAD_POST_ONLY] = "BAD_POST_ONLY",
        [OP_REASON_DUPLICATE_ID] = "DUPLICATE_ORDER_ID",
        [OP_REASON_UNKNOWN_ORDER] = "UNKNOWN_ORDER",
        [OP_REASON_NOT_OWNER] = "NOT_OWNER",
        [OP_REASON_ORDER_CLOSED] = "ORDER_CLOSED",
        [OP_REASON_BAD_AMEND] = "BAD_AMEND",
        [OP_REASON_UNKNOWN_SYMBOL] = "UNKNOWN_SYMBOL",
        [OP_REASON_BAD_ACCOUNT] = "BAD_ACCOUNT",
        [OP_REASON_BAD_CLIENT_ID] = "BAD_CLIENT_ORDER_ID",
        [OP_REASON_BAD_TIME] = "BAD_TIME",
        [OP_REASON_TOO_MANY_OPEN_ORDERS] = "TOO_MANY_OPEN_ORDERS",
        [OP_REASON_BAD_STP] = "BAD_STP",
        [OP_REASON_BAD_EXPIRY] = "BAD_EXPIRY",
        [OP_REASON_BAD_STOP] = "BAD_STOP",
        [OP_REASON_BAD_TIMEOUT] = "BAD_TIMEOUT",
    };
    return NAME_OF(names, reason);
}

int op_client_order_id_valid(const char *s)
{
    size_t n = strnlen(s, OP_CLORDID_MAX);
    if (n < 1 || n >= OP_CLORDID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

const char *op_stp_name(int stp)
{
    static const char *const names[] = {
        [OP_STP_NONE] = "none",
        [OP_STP_CANCEL_TAKER] = "cancel_taker",
        [OP_STP_CANCEL_MAKER] = "cancel_maker",
        [OP_STP_CANCEL_BOTH] = "cancel_both",
        [OP_STP_DECREMENT] = "decrement",
    };
    return NAME_OF(names, stp);
}

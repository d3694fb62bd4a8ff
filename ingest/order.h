/* Validation of REST order requests into stream messages: every field, every error. */
#ifndef INGEST_ORDER_H
#define INGEST_ORDER_H

#include <stddef.h>
#include <stdint.h>

#include "ingest/json.h"
#include "shared/msg.h"
#include "shared/symbols.h"

/*
 * An error answer: HTTP status, a stable machine code, a human message and
 * the offending field ("" when none). Rendered as
 *   {"error":{"code":"…","message":"…","field":"…"}}
 * Codes: invalid_json, invalid_body, unknown_field, duplicate_field,
 * missing_field, invalid_field, unknown_symbol, invalid_price, invalid_qty,
 * invalid_order_id, unauthorized, forbidden, not_found, method_not_allowed,
 * payload_too_large, unsupported_media_type, backpressure, rate_limited,
 * redis_unavailable, database_unavailable, shutting_down, internal.
 */
struct api_error {
    int status;
    const char *code; /* a literal */
    char message[192];
    char field[40];
    int retry_after_s; /* 429/503: the Retry-After header, seconds (0 stands for 1) */
};

/* Fills e (retry_after_s 0) and returns -1, so that validators can
 * `return api_fail(…)`. */
int api_fail(struct api_error *e, int status, const char *code, const char *field, const char *fmt,
             ...) __attribute__((format(printf, 5, 6)));

/*
 * What a new order is validated against besides its own text: the request's
 * context. Everything is borrowed; filled by the HTTP thread per request.
 */
struct order_env {
    const struct op_symtab *syms; /* (ref) the listed symbols */
    const char *account;          /* (ref) the requesting account */
    uint8_t stp_default;          /* enum op_stp: the account's, from API_KEYS_FILE */
    uint64_t now_ns;              /* the request's receipt time (its inputs' ts) */
    int64_t max_expiry_ms;        /* INGEST_MAX_EXPIRY_MS: how far ahead expire_at may be */
};

/*
 * Validates the order object at token obj of d for env->account against the
 * symbol table and fills m (kind NEW; order_id and ts_ns are left 0 for the
 * caller). An order without "stp" gets env->stp_default. A GTD order's
 * "expire_at" (RFC 3339 or epoch ms, order_parse_expiry) must lie in
 * (env->now_ns, env->now_ns + env->max_expiry_ms]; stops carry
 * "stop_price" (docs/ingest.md). Returns 0, or -1 with e set (status 400).
 * Nothing is allocated.
 */
int order_parse_new(const struct json_doc *d, int obj, const struct order_env *env,
                    struct op_order_msg *m, struct api_error *e);

/*
 * Parses an RFC 3339 timestamp, YYYY-MM-DDTHH:MM:SS[.fraction]OFFSET with
 * 1-9 fraction digits and OFFSET "Z" or +HH:MM / -HH:MM (converted to UTC;
 * "T" and "Z" in either case, as RFC 3339 allows), of years 1970-9999, into
 * ns since the epoch. Leap seconds (:60) are refused: epoch time has none.
 * Returns 0, or -1 with *why a constant message. Pure.
 */
int order_parse_rfc3339(const char *s, size_t n, uint64_t *ns, const char **why);

/*
 * Validates a dead-man switch body {"timeout_ms": N}: N a JSON integer, 0
 * (disarm) or ORDER_DEAD_MAN_MIN_MS..ORDER_DEAD_MAN_MAX_MS. Returns 0 with
 * *timeout_ms, or -1 with e (400). Nothing is allocated.
 */
int order_parse_cancel_all_after(const struct json_doc *d, int obj, uint32_t *timeout_ms,
                                 struct api_error *e);

/* The dead-man timeout's range (issue 15). Why 1 s: below it the switch
 * would fire on an ordinary network hiccup, and engine time only moves in
 * MATCHER_TICK_MS steps (100 ms) while a shard is idle. Why 10 min: a switch
 * is there to catch a silent client within minutes; the engine accepts up
 * to 24 h (BAD_TIMEOUT above), so this is the bound that holds. */
#define ORDER_DEAD_MAN_MIN_MS 1000
#define ORDER_DEAD_MAN_MAX_MS 600000

/*
 * Validates an amend (replace) body {"qty": N, "price": "…"} of an order of
 * sym: either field or both, each with the rules of a new order's (qty an
 * integer >= 1, at most sym's max, a multiple of its lot; price a decimal
 * string or JSON number, a positive multiple of its tick). The engine
 * checks them against the order. Returns 0 with *qty (lots) and *price
 * (ticks) set, 0 for the one that is absent; or -1 with e (400; neither:
 * missing_field). Nothing is allocated.
 */
int order_parse_amend(const struct json_doc *d, int obj, const struct op_symbol *sym, int64_t *qty,
                      int64_t *price, struct api_error *e);

/* Parses an order id from URL text: decimal 1..2^63-1, digits only.
 * Returns 0, or -1 with e (400 invalid_order_id). */
int order_parse_id(const char *s, uint64_t *id, struct api_error *e);

#endif

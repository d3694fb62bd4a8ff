/* Validation of REST order requests into stream messages: every field, every error. */
#ifndef INGEST_ORDER_H
#define INGEST_ORDER_H

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
 * Validates the order object at token obj of d for `account` against the
 * symbol table and fills m (kind NEW; order_id and ts_ns are left 0 for the
 * caller). An order without "stp" gets stp_default (enum op_stp: the
 * account's, from API_KEYS_FILE). Returns 0, or -1 with e set (status
 * 400). Nothing is allocated.
 */
int order_parse_new(const struct json_doc *d, int obj, const struct op_symtab *syms,
                    const char *account, uint8_t stp_default, struct op_order_msg *m,
                    struct api_error *e);

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

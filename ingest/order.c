/* Validation of REST order requests into stream messages: every field, every error. */
#include "ingest/order.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "shared/decimal.h"

int api_fail(struct api_error *e, int status, const char *code, const char *field, const char *fmt,
             ...)
{
    va_list ap;
    e->status = status;
    e->code = code;
    e->retry_after_s = 0;
    snprintf(e->field, sizeof(e->field), "%s", field ? field : "");
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return -1;
}

/* Parses the digits-only text s[0..n) as an int64 >= 0; -1 on anything else
 * (sign, fraction, exponent, overflow). */
static int parse_uint_text(const char *s, int n, int64_t *out)
{
    int64_t v = 0;
    if (n <= 0 || n > 19)
        return -1;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        int d = s[i] - '0';
        if (v > (INT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Reads qty at token t: a JSON integer >= 1. */
static int read_qty(const struct json_doc *d, int t, int64_t *qty, struct api_error *e)
{
    const struct json_tok *k = &d->toks[t];
    if (k->type != JSON_NUMBER)
        return api_fail(e, 400, "invalid_qty", "qty", "qty must be a JSON integer");
    if (parse_uint_text(d->text + k->start, k->end - k->start, qty) != 0 || *qty < 1)
        return api_fail(e, 400, "invalid_qty", "qty", "qty must be a whole number >= 1");
    return 0;
}

/* Reads qty at token t as read_qty does, then checks it against sym: at
 * most its max qty, a multiple of its lot. */
static int read_sym_qty(const struct json_doc *d, int t, const struct op_symbol *sym, int64_t *qty,
                        struct api_error *e)
{
    if (read_qty(d, t, qty, e) != 0)
        return -1;
    if (*qty > sym->max_qty)
        return api_fail(e, 400, "invalid_qty", "qty", "qty must be at most %lld for %s",
                        (long long)sym->max_qty, sym->name);
    if (*qty % sym->lot != 0)
        return api_fail(e, 400, "invalid_qty", "qty", "qty must be a multiple of the lot %lld",
                        (long long)sym->lot);
    return 0;
}

/* Reads a limit price at token t: a decimal string (or a JSON number, by
 * its exact text), a positive multiple of sym's tick; *price in ticks. */
static int read_price(const struct json_doc *d, int t, const struct op_symbol *sym, int64_t *price,
                      struct api_error *e)
{
    const struct json_tok *k = &d->toks[t];
    if (k->type != JSON_STRING && k->type != JSON_NUMBER)
        return api_fail(e, 400, "invalid_price", "price",
                        "price must be a decimal string such as \"187.25\"");
    enum op_decimal_err de =
        op_decimal_parse(d->text + k->start, (size_t)(k->end - k->start), sym->tick, price);
    if (de != OP_DEC_OK)
        return api_fail(e, 400, "invalid_price", "price", "%s", op_decimal_strerror(de));
    return 0;
}

/* Reads an enum given as a string among names[1..n); stores its index. */
static int read_enum(const struct json_doc *d, int t, const char *field, const char *const *names,
                     int n, uint8_t *out, struct api_error *e)
{
    for (int i = 1; i < n; i++) {
        if (json_eq(d, t, names[i])) {
            *out = (uint8_t)i;
            return 0;
        }
    }
    char list[64] = "";
    for (int i = 1; i < n; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s\"%s\"", i > 1 ? ", " : "",
                 names[i]);
    return api_fail(e, 400, "invalid_field", field, "%s must be one of %s", field, list);
}

/* Reads stp at token t: one of the names of enum op_stp, "none" included. */
static int read_stp(const struct json_doc *d, int t, uint8_t *stp, struct api_error *e)
{
    for (int i = OP_STP_NONE; i <= OP_STP_MAX; i++) {
        if (json_eq(d, t, op_stp_name(i))) {
            *stp = (uint8_t)i;
            return 0;
        }
    }
    return api_fail(e, 400, "invalid_field", "stp",
                    "stp must be one of \"none\", \"cancel_taker\", \"cancel_maker\", "
                    "\"cancel_both\", \"decrement\"");
}

static const char *const new_fields[] = {"symbol", "side",      "type", "price",           "qty",
                                         "tif",    "post_only", "stp",  "client_order_id", NULL};

int order_parse_new(const struct json_doc *d, int obj, const struct op_symtab *syms,
                    const char *account, uint8_t stp_default, struct op_order_msg *m,
                    struct api_error *e)
{
    static const char *const sides[] = {"", "buy", "sell"};
    static const char *const types[] = {"", "limit", "market"};
    static const char *const tifs[] = {"", "GTC", "IOC", "FOK"};
    const char *bad;
    bool dup;

    memset(m, 0, sizeof(*m));
    m->kind = OP_MSG_NEW;
    if (d->toks[obj].type != JSON_OBJECT)
        return api_fail(e, 400, "invalid_body", "", "an order must be a JSON object");
    if (json_object_check(d, obj, new_fields, &bad, &dup) != 0)
        return dup ? api_fail(e, 400, "duplicate_field", bad, "field '%s' appears twice", bad)
                   : api_fail(e, 400, "unknown_field", bad, "unknown field '%s'", bad);

    static const char *const required[] = {"symbol", "side", "type", "qty"};
    for (int i = 0; i < 4; i++)
        if (json_get(d, obj, required[i]) < 0)
            return api_fail(e, 400, "missing_field", required[i], "field '%s' is required",
                            required[i]);

    int t = json_get(d, obj, "symbol");
    if (json_string(d, t, m->symbol, sizeof(m->symbol)) < 0 || m->symbol[0] == '\0')
        return api_fail(e, 400, "unknown_symbol", "symbol", "symbol must be a listed symbol");
    const struct op_symbol *sym = op_symtab_find(syms, m->symbol, strlen(m->symbol));
    if (!sym)
        return api_fail(e, 400, "unknown_symbol", "symbol", "symbol '%s' is not traded here",
                        m->symbol);

    if (read_enum(d, json_get(d, obj, "side"), "side", sides, 3, &m->side, e) != 0 ||
        read_enum(d, json_get(d, obj, "type"), "type", types, 3, &m->type, e) != 0)
        return -1;

    t = json_get(d, obj, "tif");
    if (t < 0)
        m->tif = m->type == OP_TYPE_MARKET ? OP_TIF_IOC : OP_TIF_GTC;
    else if (read_enum(d, t, "tif", tifs, 4, &m->tif, e) != 0)
        return -1;
    if (m->type == OP_TYPE_MARKET && m->tif == OP_TIF_GTC)
        return api_fail(e, 400, "invalid_field", "tif",
                        "market orders cannot rest: tif must be IOC or FOK");

    t = json_get(d, obj, "post_only");
    if (t >= 0) {
        enum json_type ty = d->toks[t].type;
        if (ty != JSON_TRUE && ty != JSON_FALSE)
            return api_fail(e, 400, "invalid_field", "post_only",
                            "post_only must be true or false");
        m->post_only = ty == JSON_TRUE;
        if (m->post_only && m->type != OP_TYPE_LIMIT)
            return api_fail(e, 400, "invalid_field", "post_only",
                            "post_only applies to limit orders only");
        if (m->post_only && m->tif != OP_TIF_GTC)
            return api_fail(e, 400, "invalid_field", "post_only",
                            "post_only orders must rest: tif must be GTC");
    }

    t = json_get(d, obj, "price");
    if (m->type == OP_TYPE_MARKET) {
        if (t >= 0)
            return api_fail(e, 400, "invalid_price", "price", "market orders take no price");
    } else {
        if (t < 0)
            return api_fail(e, 400, "missing_field", "price", "limit orders need a price");
        if (read_price(d, t, sym, &m->price, e) != 0)
            return -1;
    }

    if (read_sym_qty(d, json_get(d, obj, "qty"), sym, &m->qty, e) != 0)
        return -1;

    t = json_get(d, obj, "stp");
    if (t < 0)
        m->stp = stp_default;
    else if (read_stp(d, t, &m->stp, e) != 0)
        return -1;

    t = json_get(d, obj, "client_order_id");
    if (t >= 0 && (json_string(d, t, m->client_order_id, sizeof(m->client_order_id)) < 0 ||
                   !op_client_order_id_valid(m->client_order_id)))
        return api_fail(e, 400, "invalid_field", "client_order_id",
                        "client_order_id must be 1-36 characters of [A-Za-z0-9._-]");

    snprintf(m->account, sizeof(m->account), "%s", account);
    return 0;
}

int order_parse_amend(const struct json_doc *d, int obj, const struct op_symbol *sym, int64_t *qty,
                      int64_t *price, struct api_error *e)
{
    static const char *const fields[] = {"qty", "price", NULL};
    const char *bad;
    bool dup;

    *qty = 0;
    *price = 0;
    if (d->toks[obj].type != JSON_OBJECT)
        return api_fail(e, 400, "invalid_body", "",
                        "an amend must be a JSON object {\"qty\": N, \"price\": \"…\"}");
    if (json_object_check(d, obj, fields, &bad, &dup) != 0)
        return dup ? api_fail(e, 400, "duplicate_field", bad, "field '%s' appears twice", bad)
                   : api_fail(e, 400, "unknown_field", bad, "unknown field '%s'", bad);
    int tq = json_get(d, obj, "qty"), tp = json_get(d, obj, "price");
    if (tq < 0 && tp < 0)
        return api_fail(e, 400, "missing_field", "qty",
                        "an amend needs qty, price or both: nothing to change");
    if (tq >= 0 && read_sym_qty(d, tq, sym, qty, e) != 0)
        return -1;
    if (tp >= 0 && read_price(d, tp, sym, price, e) != 0)
        return -1;
    return 0;
}

int order_parse_id(const char *s, uint64_t *id, struct api_error *e)
{
    int64_t v;
    if (parse_uint_text(s, (int)strnlen(s, 32), &v) != 0 || v < 1)
        return api_fail(e, 400, "invalid_order_id", "order_id",
                        "order_id must be a decimal number in 1..9223372036854775807");
    *id = (uint64_t)v;
    return 0;
}

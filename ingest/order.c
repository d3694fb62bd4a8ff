/* Validation of REST order requests into stream messages: every field, every error. */
#include "ingest/order.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

/* Reads a price at token t for field ("price", "stop_price"): a decimal
 * string (or a JSON number, by its exact text), a positive multiple of
 * sym's tick; *price in ticks. Errors are invalid_price naming field. */
static int read_price(const struct json_doc *d, int t, const struct op_symbol *sym,
                      const char *field, int64_t *price, struct api_error *e)
{
    const struct json_tok *k = &d->toks[t];
    if (k->type != JSON_STRING && k->type != JSON_NUMBER)
        return api_fail(e, 400, "invalid_price", field,
                        "%s must be a decimal string such as \"187.25\"", field);
    enum op_decimal_err de =
        op_decimal_parse(d->text + k->start, (size_t)(k->end - k->start), sym->tick, price);
    if (de != OP_DEC_OK) {
        const char *why = op_decimal_strerror(de); /* "price is …", "price must …" */
        if (strncmp(why, "price ", 6) == 0)
            return api_fail(e, 400, "invalid_price", field, "%s %s", field, why + 6);
        return api_fail(e, 400, "invalid_price", field, "%s: %s", field, why);
    }
    return 0;
}

/* Reads exactly n decimal digits at s into *v. Returns 0, or -1. */
static int fixed_digits(const char *s, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        *v = *v * 10 + (s[i] - '0');
    }
    return 0;
}

/* Days from 1970-01-01 to the proleptic Gregorian date y-mo-d (y >= 1970),
 * by the days-from-civil algorithm (H. Hinnant): no table, no libc time. */
static int64_t days_from_civil(int y, int mo, int d)
{
    y -= mo <= 2;
    int64_t era = y / 400, yoe = y - era * 400;
    int64_t doy = (153 * (mo > 2 ? mo - 3 : mo + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int mo)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return mo == 2 && leap ? 29 : days[mo - 1];
}

int order_parse_rfc3339(const char *s, size_t n, uint64_t *ns, const char **why)
{
    int y, mo, d, h, mi, sec, oh = 0, om = 0;
    uint64_t frac = 0;
    size_t i = 19;

    *why = "expire_at must be an RFC 3339 time such as \"2026-12-06T18:00:00Z\" or an integer "
           "of epoch milliseconds";
    if (n < 20 || fixed_digits(s, 4, &y) || s[4] != '-' || fixed_digits(s + 5, 2, &mo) ||
        s[7] != '-' || fixed_digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
        fixed_digits(s + 11, 2, &h) || s[13] != ':' || fixed_digits(s + 14, 2, &mi) ||
        s[16] != ':' || fixed_digits(s + 17, 2, &sec))
        return -1;
    if (s[i] == '.') {
        int k = 0;
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, k++) {
            if (k == 9) {
                *why = "expire_at has more than 9 fraction digits (nanoseconds)";
                return -1;
            }
            frac = frac * 10 + (uint64_t)(s[i] - '0');
        }
        if (k == 0)
            return -1;
        for (; k < 9; k++)
            frac *= 10;
    }
    int sign = 0; /* of the offset; 0: Z */
    if (i + 1 == n && (s[i] == 'Z' || s[i] == 'z')) {
        sign = 0;
    } else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && fixed_digits(s + i + 1, 2, &oh) == 0 &&
               s[i + 3] == ':' && fixed_digits(s + i + 4, 2, &om) == 0) {
        sign = s[i] == '+' ? 1 : -1;
    } else {
        return -1;
    }
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
        sec > 60 || oh > 23 || om > 59) {
        *why = "expire_at is not a valid date and time (years 1970-9999)";
        return -1;
    }
    if (sec == 60) {
        *why = "expire_at names a leap second (:60), which epoch time does not have";
        return -1;
    }
    int64_t t = days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + sec -
                sign * ((int64_t)oh * 3600 + (int64_t)om * 60);
    if (t < 0) /* 1970-01-01 with a positive offset: in the past all the same */
        *ns = 0;
    else if ((uint64_t)t >= UINT64_MAX / 1000000000u) /* after 2554: beyond any horizon */
        *ns = UINT64_MAX;
    else
        *ns = (uint64_t)t * 1000000000u + frac;
    return 0;
}

/* Writes t_ns as an RFC 3339 UTC time with milliseconds into out. */
static void format_rfc3339_ms(uint64_t t_ns, char *out, size_t size)
{
    time_t secs = (time_t)(t_ns / 1000000000u);
    struct tm tm;
    if (!gmtime_r(&secs, &tm)) {
        snprintf(out, size, "?");
        return;
    }
    snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (unsigned)(t_ns % 1000000000u / 1000000u));
}

/*
 * Reads expire_at at token t: an RFC 3339 string or a JSON integer of epoch
 * milliseconds, into *exp (ns since the epoch), which must be after
 * env->now_ns and at most env->max_expiry_ms after it. Errors name
 * expire_at (400 invalid_field).
 */
static int read_expire_at(const struct json_doc *d, int t, const struct order_env *env,
                          uint64_t *exp, struct api_error *e)
{
    const struct json_tok *k = &d->toks[t];
    const char *why;
    int64_t ms;

    if (k->type == JSON_NUMBER) {
        if (parse_uint_text(d->text + k->start, k->end - k->start, &ms) != 0)
            return api_fail(e, 400, "invalid_field", "expire_at",
                            "expire_at as a number must be a whole number of milliseconds "
                            "since the epoch");
        *exp = (uint64_t)ms > UINT64_MAX / 1000000u ? UINT64_MAX : (uint64_t)ms * 1000000u;
    } else if (k->type == JSON_STRING) {
        if (order_parse_rfc3339(d->text + k->start, (size_t)(k->end - k->start), exp, &why) != 0)
            return api_fail(e, 400, "invalid_field", "expire_at", "%s", why);
    } else {
        return api_fail(e, 400, "invalid_field", "expire_at",
                        "expire_at must be an RFC 3339 time such as \"2026-12-06T18:00:00Z\" "
                        "or an integer of epoch milliseconds");
    }
    char now[64];
    if (*exp <= env->now_ns) {
        format_rfc3339_ms(env->now_ns, now, sizeof(now));
        return api_fail(e, 400, "invalid_field", "expire_at",
                        "expire_at is not in the future: it must be after the time ingest "
                        "received the order (%s)",
                        now);
    }
    if (*exp - env->now_ns > (uint64_t)env->max_expiry_ms * 1000000u) {
        format_rfc3339_ms(env->now_ns, now, sizeof(now));
        char span[48];
        if (env->max_expiry_ms % 86400000 == 0)
            snprintf(span, sizeof(span), "%lld days", (long long)(env->max_expiry_ms / 86400000));
        else
            snprintf(span, sizeof(span), "%lld ms", (long long)env->max_expiry_ms);
        return api_fail(e, 400, "invalid_field", "expire_at",
                        "expire_at is too far ahead: at most %s (INGEST_MAX_EXPIRY_MS) after the "
                        "time ingest received the order (%s)",
                        span, now);
    }
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

static const char *const new_fields[] = {
    "symbol",          "side",      "type",       "price", "qty", "tif", "post_only", "stp",
    "client_order_id", "expire_at", "stop_price", NULL};

int order_parse_new(const struct json_doc *d, int obj, const struct order_env *env,
                    struct op_order_msg *m, struct api_error *e)
{
    static const char *const sides[] = {"", "buy", "sell"};
    static const char *const types[] = {"", "limit", "market", "stop_market", "stop_limit"};
    static const char *const tifs[] = {"", "GTC", "IOC", "FOK", "GTD"};
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
    const struct op_symbol *sym = op_symtab_find(env->syms, m->symbol, strlen(m->symbol));
    if (!sym)
        return api_fail(e, 400, "unknown_symbol", "symbol", "symbol '%s' is not traded here",
                        m->symbol);

    if (read_enum(d, json_get(d, obj, "side"), "side", sides, 3, &m->side, e) != 0 ||
        read_enum(d, json_get(d, obj, "type"), "type", types, 5, &m->type, e) != 0)
        return -1;
    const char *type = types[m->type];
    /* A stop market becomes a market order when triggered: the same rules. */
    bool no_price = m->type == OP_TYPE_MARKET || m->type == OP_TYPE_STOP_MARKET;
    bool stop = m->type == OP_TYPE_STOP_MARKET || m->type == OP_TYPE_STOP_LIMIT;

    t = json_get(d, obj, "tif");
    if (t < 0)
        m->tif = no_price ? OP_TIF_IOC : OP_TIF_GTC;
    else if (read_enum(d, t, "tif", tifs, 5, &m->tif, e) != 0)
        return -1;
    if (no_price && (m->tif == OP_TIF_GTC || m->tif == OP_TIF_GTD))
        return api_fail(e, 400, "invalid_field", "tif",
                        "%s orders cannot rest: tif must be IOC or FOK", type);

    /* Parsed only when present: an order without it costs one key lookup. */
    t = json_get(d, obj, "expire_at");
    if (m->tif == OP_TIF_GTD) {
        if (t < 0)
            return api_fail(e, 400, "missing_field", "expire_at",
                            "GTD orders need expire_at: an RFC 3339 time or epoch milliseconds");
        if (read_expire_at(d, t, env, &m->expire_ns, e) != 0)
            return -1;
    } else if (t >= 0) {
        return api_fail(e, 400, "invalid_field", "expire_at", "expire_at applies to tif GTD only");
    }

    t = json_get(d, obj, "post_only");
    if (t >= 0) {
        enum json_type ty = d->toks[t].type;
        if (ty != JSON_TRUE && ty != JSON_FALSE)
            return api_fail(e, 400, "invalid_field", "post_only",
                            "post_only must be true or false");
        m->post_only = ty == JSON_TRUE;
        if (m->post_only && m->type != OP_TYPE_LIMIT && m->type != OP_TYPE_STOP_LIMIT)
            return api_fail(e, 400, "invalid_field", "post_only",
                            "post_only applies to limit and stop_limit orders only");
        if (m->post_only && m->tif != OP_TIF_GTC && m->tif != OP_TIF_GTD)
            return api_fail(e, 400, "invalid_field", "post_only",
                            "post_only orders must rest: tif must be GTC or GTD");
    }

    t = json_get(d, obj, "price");
    if (no_price) {
        if (t >= 0)
            return api_fail(e, 400, "invalid_price", "price", "%s orders take no price", type);
    } else {
        if (t < 0)
            return api_fail(e, 400, "missing_field", "price", "%s orders need a price", type);
        if (read_price(d, t, sym, "price", &m->price, e) != 0)
            return -1;
    }

    t = json_get(d, obj, "stop_price");
    if (stop) {
        if (t < 0)
            return api_fail(e, 400, "missing_field", "stop_price",
                            "%s orders need a stop_price, the price that triggers them", type);
        if (read_price(d, t, sym, "stop_price", &m->stop_price, e) != 0)
            return -1;
    } else if (t >= 0) {
        return api_fail(e, 400, "invalid_price", "stop_price",
                        "stop_price applies to stop_market and stop_limit orders only");
    }

    if (read_sym_qty(d, json_get(d, obj, "qty"), sym, &m->qty, e) != 0)
        return -1;

    t = json_get(d, obj, "stp");
    if (t < 0)
        m->stp = env->stp_default;
    else if (read_stp(d, t, &m->stp, e) != 0)
        return -1;

    t = json_get(d, obj, "client_order_id");
    if (t >= 0 && (json_string(d, t, m->client_order_id, sizeof(m->client_order_id)) < 0 ||
                   !op_client_order_id_valid(m->client_order_id)))
        return api_fail(e, 400, "invalid_field", "client_order_id",
                        "client_order_id must be 1-36 characters of [A-Za-z0-9._-]");

    snprintf(m->account, sizeof(m->account), "%s", env->account);
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
    if (tp >= 0 && read_price(d, tp, sym, "price", price, e) != 0)
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

int order_parse_cancel_all_after(const struct json_doc *d, int obj, uint32_t *timeout_ms,
                                 struct api_error *e)
{
    static const char *const fields[] = {"timeout_ms", NULL};
    const char *bad;
    bool dup;
    int64_t v;

    *timeout_ms = 0;
    if (d->toks[obj].type != JSON_OBJECT)
        return api_fail(e, 400, "invalid_body", "", "the body must be {\"timeout_ms\": N}");
    if (json_object_check(d, obj, fields, &bad, &dup) != 0)
        return dup ? api_fail(e, 400, "duplicate_field", bad, "field '%s' appears twice", bad)
                   : api_fail(e, 400, "unknown_field", bad, "unknown field '%s'", bad);
    int t = json_get(d, obj, "timeout_ms");
    if (t < 0)
        return api_fail(e, 400, "missing_field", "timeout_ms",
                        "field 'timeout_ms' is required (0 disarms the switch)");
    const struct json_tok *k = &d->toks[t];
    if (k->type != JSON_NUMBER || parse_uint_text(d->text + k->start, k->end - k->start, &v) != 0 ||
        (v != 0 && (v < ORDER_DEAD_MAN_MIN_MS || v > ORDER_DEAD_MAN_MAX_MS)))
        return api_fail(e, 400, "invalid_field", "timeout_ms",
                        "timeout_ms must be a whole number of milliseconds: 0 (disarm) or %d to %d",
                        ORDER_DEAD_MAN_MIN_MS, ORDER_DEAD_MAN_MAX_MS);
    *timeout_ms = (uint32_t)v;
    return 0;
}

/* Unit tests of ingest's strict JSON reader and order validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest/json.h"
#include "ingest/order.h"
#include "shared/buf.h"

static struct json_tok toks[256];

static int parse(struct json_doc *d, const char *s)
{
    const char *err;
    return json_parse(d, s, strlen(s), toks, 256, &err);
}

static void test_json_valid_and_invalid(void **state)
{
    (void)state;
    static const char *good[] = {
        "{}",
        " { \"a\" : 1 } ",
        "{\"a\":[1,2,{\"b\":null}],\"c\":true,\"d\":false}",
        "[]",
        "\"x\"",
        "[-0.5e+3, 0, 1E2]",
        "{\"a\":\"\\u0041\\n\\\"\"}",
        "[[[[1]]]]",
    };
    static const char *bad[] = {
        "",           " ",        "{",           "}",
        "{\"a\"}",    "{\"a\":}", "{\"a\" 1}",   "{\"a\":1 \"b\":2}",
        "{\"a\":1,}", "[1,]",     "[1 2]",       "{} {}",
        "{}x",        "01",       "1.",          ".5",
        "+1",         "1e",       "--1",         "tru",
        "nul",        "{a:1}",    "{\"a\":'x'}", "\"\\x\"",
        "\"\\u12\"",  "\"a\tb\"", "[1,,2]",      "{,}",
        "{\"a\"::1}",
    };
    struct json_doc d;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (parse(&d, good[i]) != 0)
            fail_msg("rejected valid '%s'", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (parse(&d, bad[i]) == 0)
            fail_msg("accepted invalid '%s'", bad[i]);
}

static void test_json_navigation(void **state)
{
    (void)state;
    struct json_doc d;
    char s[16];
    assert_int_equal(parse(&d, "{\"x\":{\"y\":[1,2]},\"z\":\"a\\/b\",\"n\":-12.50}"), 0);
    int z = json_get(&d, 0, "z");
    assert_true(z > 0);
    assert_int_equal(json_string(&d, z, s, sizeof(s)), 3);
    assert_string_equal(s, "a/b");
    int n = json_get(&d, 0, "n");
    assert_int_equal(d.toks[n].type, JSON_NUMBER);
    assert_int_equal(d.toks[n].end - d.toks[n].start, 6); /* exact text "-12.50" */
    assert_int_equal(json_get(&d, 0, "y"), -1);           /* not a top-level key */
    assert_int_equal(json_string(&d, json_get(&d, 0, "x"), s, sizeof(s)), -1);
    assert_int_equal(json_string(&d, z, s, 3), -1); /* does not fit */

    static const char *const allowed[] = {"a", "b", NULL};
    const char *bad;
    bool dup;
    assert_int_equal(parse(&d, "{\"a\":1,\"b\":{\"a\":2,\"a\":3}}"), 0);
    assert_int_equal(json_object_check(&d, 0, allowed, &bad, &dup), 0); /* nested dup not ours */
    assert_int_equal(parse(&d, "{\"a\":1,\"b\":2,\"a\":3}"), 0);
    assert_int_equal(json_object_check(&d, 0, allowed, &bad, &dup), -1);
    assert_true(dup);
    assert_string_equal(bad, "a");
    assert_int_equal(parse(&d, "{\"a\":1,\"zz\":2}"), 0);
    assert_int_equal(json_object_check(&d, 0, allowed, &bad, &dup), -1);
    assert_false(dup);
    assert_string_equal(bad, "zz");
}

static void test_json_put_str(void **state)
{
    (void)state;
    struct op_buf b;
    op_buf_init(&b);
    json_put_str(&b, "a\"b\\c\n\x01");
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\u000a\\u0001\"");
    op_buf_release(&b);
}

static struct op_symtab syms;

static int setup(void **state)
{
    (void)state;
    return op_symtab_defaults(&syms);
}

static int teardown(void **state)
{
    (void)state;
    op_symtab_release(&syms);
    return 0;
}

/* The receipt time orders are parsed at: 2026-12-06T18:00:00Z. */
#define NOW_NS 1796580000000000000ULL
static uint64_t test_now_ns = NOW_NS;

/* The error of the last order_code, amend_code. */
static struct api_error last;

/* Parses body as an order of an account whose default stp is stp_default;
 * returns the error code, or "ok". */
static const char *order_code_stp(const char *body, uint8_t stp_default, struct op_order_msg *m)
{
    struct json_doc d;
    memset(m, 0, sizeof(*m));
    memset(&last, 0, sizeof(last));
    if (parse(&d, body) != 0)
        return "invalid_json";
    struct order_env env = {.syms = &syms,
                            .account = "alice",
                            .stp_default = stp_default,
                            .now_ns = test_now_ns,
                            .max_expiry_ms = 90LL * 86400000};
    if (order_parse_new(&d, 0, &env, m, &last) != 0)
        return last.code;
    return "ok";
}

static const char *order_code(const char *body, struct op_order_msg *m)
{
    return order_code_stp(body, OP_STP_NONE, m);
}

static void test_order_fields(void **state)
{
    (void)state;
    struct op_order_msg m;
    assert_string_equal(order_code("{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\","
                                   "\"price\":\"187.25\",\"qty\":100,\"client_order_id\":\"my-1\"}",
                                   &m),
                        "ok");
    assert_int_equal(m.kind, OP_MSG_NEW);
    assert_int_equal(m.side, OP_SIDE_BUY);
    assert_int_equal(m.type, OP_TYPE_LIMIT);
    assert_int_equal(m.tif, OP_TIF_GTC);
    assert_int_equal(m.price, 18725);
    assert_int_equal(m.qty, 100);
    assert_string_equal(m.symbol, "AAPL");
    assert_string_equal(m.account, "alice");
    assert_string_equal(m.client_order_id, "my-1");

    assert_string_equal(
        order_code("{\"symbol\":\"TSLA\",\"side\":\"sell\",\"type\":\"market\",\"qty\":3}", &m),
        "ok");
    assert_int_equal(m.tif, OP_TIF_IOC); /* market orders default to IOC */
    assert_int_equal(m.price, 0);
    assert_string_equal(order_code("{\"symbol\":\"TSLA\",\"side\":\"sell\",\"type\":\"limit\","
                                   "\"price\":250.5,\"qty\":3,\"tif\":\"FOK\",\"post_only\":false}",
                                   &m),
                        "ok");
    assert_int_equal(m.price, 25050);
    assert_int_equal(m.tif, OP_TIF_FOK);

    static const struct {
        const char *body, *code;
    } cases[] = {
        {"{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\",\"price\":\"1\",\"qty\":1,"
         "\"qty\":2}",
         "duplicate_field"},
        {"{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\",\"price\":\"1\",\"qty\":1,\"x\":"
         "1}",
         "unknown_field"},
        {"{\"symbol\":\"AAPL\",\"type\":\"limit\",\"price\":\"1\",\"qty\":1}", "missing_field"},
        {"{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\",\"qty\":1}", "missing_field"},
        {"{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"market\",\"price\":\"1\",\"qty\":1}",
         "invalid_price"},
        {"{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"market\",\"tif\":\"GTC\",\"qty\":1}",
         "invalid_field"},
        {"{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"market\",\"post_only\":true,\"qty\":1}",
         "invalid_field"},
        {"{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\",\"price\":\"1e2\",\"qty\":1}",
         "invalid_price"},
        {"{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\",\"price\":\"1.001\",\"qty\":1}",
         "invalid_price"},
        {"{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\",\"price\":null,\"qty\":1}",
         "invalid_price"},
        {"{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\",\"price\":\"1\",\"qty\":0}",
         "invalid_qty"},
        {"{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\",\"price\":\"1\",\"qty\":-1}",
         "invalid_qty"},
        {"{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\",\"price\":\"1\",\"qty\":2.0}",
         "invalid_qty"},
        {"{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\",\"price\":\"1\",\"qty\":"
         "1000001}",
         "invalid_qty"},
        {"{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\",\"price\":\"1\",\"qty\":true}",
         "invalid_qty"},
        {"{\"symbol\":\"NOPE\",\"side\":\"buy\",\"type\":\"limit\",\"price\":\"1\",\"qty\":1}",
         "unknown_symbol"},
        {"{\"symbol\":\"AAPL\\u0000\",\"side\":\"buy\",\"type\":\"limit\",\"price\":\"1\",\"qty\":"
         "1}",
         "unknown_symbol"},
        {"{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\",\"price\":\"1\",\"qty\":1,"
         "\"client_order_id\":\"x/y\"}",
         "invalid_field"},
        {"{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\",\"price\":\"1\",\"qty\":1,"
         "\"client_order_id\":7}",
         "invalid_field"},
        {"[]", "invalid_body"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = order_code(cases[i].body, &m);
        if (strcmp(got, cases[i].code) != 0)
            fail_msg("case %zu: got %s want %s", i, got, cases[i].code);
    }
}

/* stp: optional, one of five names; absent, the account's default. */
static void test_order_stp(void **state)
{
    (void)state;
    struct op_order_msg m;
    static const struct {
        const char *name;
        int stp;
    } names[] = {
        {"none", OP_STP_NONE},
        {"cancel_taker", OP_STP_CANCEL_TAKER},
        {"cancel_maker", OP_STP_CANCEL_MAKER},
        {"cancel_both", OP_STP_CANCEL_BOTH},
        {"decrement", OP_STP_DECREMENT},
    };
    char body[200];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(body, sizeof(body),
                 "{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\",\"price\":\"1\","
                 "\"qty\":1,\"stp\":\"%s\"}",
                 names[i].name);
        /* an explicit stp wins over the account's default, "none" included */
        assert_string_equal(order_code_stp(body, OP_STP_DECREMENT, &m), "ok");
        assert_int_equal(m.stp, names[i].stp);
    }
    const char *plain = "{\"symbol\":\"AAPL\",\"side\":\"sell\",\"type\":\"market\",\"qty\":1}";
    assert_string_equal(order_code(plain, &m), "ok");
    assert_int_equal(m.stp, OP_STP_NONE);
    assert_string_equal(order_code_stp(plain, OP_STP_CANCEL_BOTH, &m), "ok");
    assert_int_equal(m.stp, OP_STP_CANCEL_BOTH);

    static const char *const bad[] = {"\"cancel\"", "\"NONE\"", "\"\"",       "1",
                                      "null",       "true",     "[\"none\"]", "\"decrement \""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(body, sizeof(body),
                 "{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\",\"price\":\"1\","
                 "\"qty\":1,\"stp\":%s}",
                 bad[i]);
        if (strcmp(order_code(body, &m), "invalid_field") != 0)
            fail_msg("stp %s: got %s, want invalid_field", bad[i], last.code);
        assert_int_equal(last.status, 400);
        assert_string_equal(last.field, "stp");
        assert_non_null(strstr(last.message, "\"cancel_taker\", \"cancel_maker\""));
    }
    assert_string_equal(order_code("{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\","
                                   "\"price\":\"1\",\"qty\":1,\"stp\":\"none\",\"stp\":\"none\"}",
                                   &m),
                        "duplicate_field");
}

/* Parses body as an amend of an order of symbol sym; returns the error
 * code, or "ok" with *qty and *price. */
static const char *amend_code(const char *body, const char *sym, int64_t *qty, int64_t *price)
{
    struct json_doc d;
    memset(&last, 0, sizeof(last));
    *qty = *price = -1;
    if (parse(&d, body) != 0)
        return "invalid_json";
    const struct op_symbol *s = op_symtab_find(&syms, sym, strlen(sym));
    assert_non_null(s);
    if (order_parse_amend(&d, 0, s, qty, price, &last) != 0)
        return last.code;
    return "ok";
}

/* Replace: qty and/or price, each with the rules of a new order's. */
static void test_amend_replace(void **state)
{
    (void)state;
    int64_t qty, price;
    assert_string_equal(amend_code("{\"qty\":5}", "AAPL", &qty, &price), "ok");
    assert_int_equal(qty, 5);
    assert_int_equal(price, 0); /* unchanged */
    assert_string_equal(amend_code("{\"price\":\"187.25\"}", "AAPL", &qty, &price), "ok");
    assert_int_equal(qty, 0); /* unchanged */
    assert_int_equal(price, 18725);
    assert_string_equal(amend_code("{\"price\":187.5,\"qty\":7}", "AAPL", &qty, &price), "ok");
    assert_int_equal(qty, 7);
    assert_int_equal(price, 18750);
    assert_string_equal(amend_code("{\"qty\":1000000,\"price\":\"0.01\"}", "AAPL", &qty, &price),
                        "ok");
    assert_int_equal(qty, 1000000);
    assert_int_equal(price, 1);

    static const struct {
        const char *body, *code, *field;
    } cases[] = {
        {"{}", "missing_field", "qty"},
        {"[]", "invalid_body", ""},
        {"{\"qty\":5,\"side\":\"buy\"}", "unknown_field", "side"},
        {"{\"qty\":5,\"qty\":6}", "duplicate_field", "qty"},
        {"{\"price\":\"1\",\"price\":\"2\"}", "duplicate_field", "price"},
        {"{\"qty\":0}", "invalid_qty", "qty"},
        {"{\"qty\":-3}", "invalid_qty", "qty"},
        {"{\"qty\":2.5}", "invalid_qty", "qty"},
        {"{\"qty\":\"5\"}", "invalid_qty", "qty"},
        {"{\"qty\":1000001}", "invalid_qty", "qty"}, /* above the max */
        {"{\"qty\":null,\"price\":\"1\"}", "invalid_qty", "qty"},
        {"{\"price\":\"187.251\"}", "invalid_price", "price"}, /* below the tick */
        {"{\"price\":\"0\"}", "invalid_price", "price"},
        {"{\"price\":\"-1\"}", "invalid_price", "price"},
        {"{\"price\":\"1e2\"}", "invalid_price", "price"},
        {"{\"price\":true}", "invalid_price", "price"},
        {"{\"price\":null}", "invalid_price", "price"},
        {"{\"qty\":5,\"price\":\"x\"}", "invalid_price", "price"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = amend_code(cases[i].body, "AAPL", &qty, &price);
        if (strcmp(got, cases[i].code) != 0 || strcmp(last.field, cases[i].field) != 0)
            fail_msg("case %zu %s: got %s/%s want %s/%s", i, cases[i].body, got, last.field,
                     cases[i].code, cases[i].field);
        assert_int_equal(last.status, 400);
    }
}

/* The lot and tick of the order's own symbol apply. */
static void test_amend_symbol_rules(void **state)
{
    (void)state;
    struct op_symtab t;
    char err[200];
    char path[] = "/tmp/op-test-syms-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "NICK 0.05 10 1000\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(op_symtab_load(&t, path, err, sizeof(err)), 0);
    unlink(path);
    struct op_symtab keep = syms;
    syms = t;
    int64_t qty, price;
    assert_string_equal(amend_code("{\"qty\":20,\"price\":\"1.15\"}", "NICK", &qty, &price), "ok");
    assert_int_equal(qty, 20);
    assert_int_equal(price, 23);
    assert_string_equal(amend_code("{\"qty\":15}", "NICK", &qty, &price), "invalid_qty");
    assert_non_null(strstr(last.message, "lot 10"));
    assert_string_equal(amend_code("{\"qty\":1010}", "NICK", &qty, &price), "invalid_qty");
    assert_string_equal(amend_code("{\"price\":\"1.12\"}", "NICK", &qty, &price), "invalid_price");
    syms = keep;
    op_symtab_release(&t);
}

static void test_order_id(void **state)
{
    (void)state;
    struct api_error e;
    uint64_t id;
    assert_int_equal(order_parse_id("9223372036854775807", &id, &e), 0);
    assert_true(id == UINT64_C(9223372036854775807));
    assert_int_equal(order_parse_id("9223372036854775808", &id, &e), -1);
    assert_int_equal(order_parse_id("0", &id, &e), -1);
    assert_int_equal(order_parse_id("-1", &id, &e), -1);
    assert_int_equal(order_parse_id("12a", &id, &e), -1);
    assert_int_equal(order_parse_id("", &id, &e), -1);
    assert_string_equal(e.code, "invalid_order_id");
    assert_int_equal(e.status, 400);
}

/* A GTD limit buy of AAPL with expire_at set to the JSON text exp. */
static const char *gtd_code(const char *exp, struct op_order_msg *m)
{
    static char body[256];
    snprintf(body, sizeof(body),
             "{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\",\"price\":\"1\",\"qty\":1,"
             "\"tif\":\"GTD\",\"expire_at\":%s}",
             exp);
    return order_code(body, m);
}

/* GTD: expire_at as RFC 3339 or epoch ms, after the receipt time, within
 * the horizon (90 days here), on GTD only; never on market orders. */
static void test_order_gtd(void **state)
{
    (void)state;
    struct op_order_msg m;
    static const struct {
        const char *exp;
        uint64_t ns;
    } good[] = {
        {"\"2026-12-06T18:00:01Z\"", NOW_NS + 1000000000ULL},
        {"\"2026-12-06T18:00:00.000000001Z\"", NOW_NS + 1}, /* one ns after receipt */
        {"\"2026-12-06T18:00:00.5Z\"", NOW_NS + 500000000ULL},
        {"\"2026-12-06t18:00:00.123z\"", NOW_NS + 123000000ULL},
        {"\"2026-12-06T18:30:00+00:00\"", NOW_NS + 1800000000000ULL},
        {"\"2026-12-06T12:00:00-07:00\"", NOW_NS + 3600000000000ULL},     /* 19:00Z */
        {"\"2026-12-07T00:30:00+05:30\"", NOW_NS + 3600000000000ULL},     /* 19:00Z */
        {"\"2027-03-06T18:00:00Z\"", NOW_NS + 90ULL * 86400000000000ULL}, /* the horizon */
        {"1796580000001", NOW_NS + 1000000ULL},                           /* epoch ms */
        {"1804356000000", NOW_NS + 90ULL * 86400000000000ULL},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        const char *got = gtd_code(good[i].exp, &m);
        if (strcmp(got, "ok") != 0)
            fail_msg("expire_at %s: got %s (%s)", good[i].exp, got, last.message);
        assert_int_equal(m.tif, OP_TIF_GTD);
        if (m.expire_ns != good[i].ns)
            fail_msg("expire_at %s: %llu, want %llu", good[i].exp, (unsigned long long)m.expire_ns,
                     (unsigned long long)good[i].ns);
    }

    static const struct {
        const char *exp, *msg; /* msg: a part of the message */
    } bad[] = {
        {"\"2026-12-06T18:00:00Z\"", "not in the future"}, /* = the receipt time */
        {"\"2026-12-06T19:00:00+01:00\"", "not in the future"},
        {"\"2026-12-06T17:59:59.999999999Z\"", "not in the future"},
        {"\"1970-01-01T00:30:00+01:00\"", "not in the future"},
        {"1796580000000", "not in the future"},
        {"0", "not in the future"},
        {"\"2027-03-06T18:00:00.000000001Z\"", "too far ahead: at most 90 days"},
        {"1804356000001", "too far ahead"},
        {"9223372036854775807", "too far ahead"},
        {"\"9999-12-31T23:59:59Z\"", "too far ahead"},
        {"\"2026-12-06 18:00:01Z\"", "RFC 3339"},
        {"\"2026-12-06T18:00:01\"", "RFC 3339"},
        {"\"2026-12-06T18:00:01+0100\"", "RFC 3339"},
        {"\"2026-12-06T18:00:01+01\"", "RFC 3339"},
        {"\"2026-12-06T18:00:01.Z\"", "RFC 3339"},
        {"\"2026-12-06T18:00:01Z \"", "RFC 3339"},
        {"\"2026-12-6T18:00:01Z\"", "RFC 3339"},
        {"\"1796580000001\"", "RFC 3339"},
        {"\"\"", "RFC 3339"},
        {"\"2026-12-06T18:00:01.1234567891Z\"", "more than 9 fraction digits"},
        {"\"2026-02-29T18:00:01Z\"", "not a valid date"},
        {"\"2026-12-32T18:00:01Z\"", "not a valid date"},
        {"\"2026-13-06T18:00:01Z\"", "not a valid date"},
        {"\"2026-12-06T24:00:00Z\"", "not a valid date"},
        {"\"2026-12-06T18:00:01+24:00\"", "not a valid date"},
        {"\"1969-12-31T23:59:59Z\"", "not a valid date"},
        {"\"2026-12-31T23:59:60Z\"", "leap second"},
        {"1796580000001.5", "milliseconds"},
        {"-1", "milliseconds"},
        {"1.7e12", "milliseconds"},
        {"null", "RFC 3339"},
        {"true", "RFC 3339"},
        {"[1]", "RFC 3339"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *got = gtd_code(bad[i].exp, &m);
        if (strcmp(got, "invalid_field") != 0 || strcmp(last.field, "expire_at") != 0 ||
            !strstr(last.message, bad[i].msg))
            fail_msg("expire_at %s: got %s field '%s' '%s'", bad[i].exp, got, last.field,
                     last.message);
        assert_int_equal(last.status, 400);
    }
    /* the receipt time in the message, to show a client its clock skew */
    assert_string_equal(gtd_code("1", &m), "invalid_field");
    assert_non_null(strstr(last.message, "(2026-12-06T18:00:00.000Z)"));

    static const struct {
        const char *body, *code, *field;
    } cases[] = {
        {"{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\",\"price\":\"1\",\"qty\":1,"
         "\"tif\":\"GTD\"}",
         "missing_field", "expire_at"},
        {"{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\",\"price\":\"1\",\"qty\":1,"
         "\"expire_at\":\"2026-12-06T18:00:01Z\"}",
         "invalid_field", "expire_at"}, /* GTC by default */
        {"{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\",\"price\":\"1\",\"qty\":1,"
         "\"tif\":\"IOC\",\"expire_at\":\"2026-12-06T18:00:01Z\"}",
         "invalid_field", "expire_at"},
        {"{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"market\",\"qty\":1,"
         "\"tif\":\"GTD\",\"expire_at\":\"2026-12-06T18:00:01Z\"}",
         "invalid_field", "tif"},
        {"{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"market\",\"qty\":1,"
         "\"expire_at\":\"2026-12-06T18:00:01Z\"}",
         "invalid_field", "expire_at"},
        {"{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\",\"price\":\"1\",\"qty\":1,"
         "\"tif\":\"gtd\",\"expire_at\":1796580000001}",
         "invalid_field", "tif"},
        {"{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\",\"price\":\"1\",\"qty\":1,"
         "\"tif\":\"GTD\",\"expire_at\":1796580000001,\"expire_at\":1796580000002}",
         "duplicate_field", "expire_at"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = order_code(cases[i].body, &m);
        if (strcmp(got, cases[i].code) != 0 || strcmp(last.field, cases[i].field) != 0)
            fail_msg("case %zu: got %s field '%s', want %s '%s'", i, got, last.field, cases[i].code,
                     cases[i].field);
    }
    /* a GTD order rests: post_only may ask for it */
    assert_string_equal(order_code("{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\","
                                   "\"price\":\"1\",\"qty\":1,\"tif\":\"GTD\",\"post_only\":true,"
                                   "\"expire_at\":1796580060000}",
                                   &m),
                        "ok");
    assert_true(m.post_only);
    assert_true(m.expire_ns == NOW_NS + 60000000000ULL);
    /* without GTD, nothing of it reaches the input */
    assert_string_equal(gtd_code("1796580000001", &m), "ok");
    assert_string_equal(order_code("{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\","
                                   "\"price\":\"1\",\"qty\":1}",
                                   &m),
                        "ok");
    assert_true(m.expire_ns == 0);
}

/* RFC 3339 away from the receipt time: calendar arithmetic and its edges. */
static void test_rfc3339(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        uint64_t ns;
    } good[] = {
        {"1970-01-01T00:00:00Z", 0},
        {"1970-01-01T00:00:00.000000001Z", 1},
        {"2000-02-29T12:34:56Z", 951827696000000000ULL},
        {"2028-02-29T00:00:00Z", 1835395200000000000ULL},
        {"2028-02-28T20:00:00-04:00", 1835395200000000000ULL},
        {"2554-07-21T00:00:00Z", 18446659200000000000ULL}, /* the last day expire_ns can hold */
        {"2600-01-01T00:00:00Z", UINT64_MAX},              /* beyond: no wrap-around */
    };
    const char *why;
    uint64_t ns;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (order_parse_rfc3339(good[i].s, strlen(good[i].s), &ns, &why) != 0)
            fail_msg("%s: refused (%s)", good[i].s, why);
        if (ns != good[i].ns)
            fail_msg("%s: %llu, want %llu", good[i].s, (unsigned long long)ns,
                     (unsigned long long)good[i].ns);
    }
    static const char *const bad[] = {
        "2027-02-29T00:00:00Z", "2100-02-29T00:00:00Z",  "2026-04-31T00:00:00Z",
        "2026-00-10T00:00:00Z", "2026-12-06T18:60:00Z",  "2026-12-06T18:00:00+00:60",
        "2026-12-06T18:00:00",  "2026-12-06T18:00:00ZZ", "+2026-12-06T18:00:00Z"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (order_parse_rfc3339(bad[i], strlen(bad[i]), &ns, &why) == 0)
            fail_msg("%s: accepted", bad[i]);
    /* only the n bytes given are read */
    assert_int_equal(order_parse_rfc3339("2026-12-06T18:00:00Zjunk", 20, &ns, &why), 0);
    assert_true(ns == NOW_NS);
}

/* Stops: stop_market (no price, IOC/FOK) and stop_limit (price, any tif),
 * both with stop_price, parsed like a price; stop_price nowhere else. */
static void test_order_stops(void **state)
{
    (void)state;
    struct op_order_msg m;
    assert_string_equal(order_code("{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"stop_market\","
                                   "\"stop_price\":\"190.00\",\"qty\":5}",
                                   &m),
                        "ok");
    assert_int_equal(m.type, OP_TYPE_STOP_MARKET);
    assert_int_equal(m.tif, OP_TIF_IOC); /* it becomes a market order */
    assert_int_equal(m.stop_price, 19000);
    assert_int_equal(m.price, 0);
    assert_string_equal(
        order_code("{\"symbol\":\"AAPL\",\"side\":\"sell\",\"type\":\"stop_market\","
                   "\"stop_price\":185,\"qty\":5,\"tif\":\"FOK\"}",
                   &m),
        "ok");
    assert_int_equal(m.tif, OP_TIF_FOK);
    assert_int_equal(m.stop_price, 18500);

    assert_string_equal(order_code("{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"stop_limit\","
                                   "\"price\":\"190.50\",\"stop_price\":\"190.00\",\"qty\":5}",
                                   &m),
                        "ok");
    assert_int_equal(m.type, OP_TYPE_STOP_LIMIT);
    assert_int_equal(m.tif, OP_TIF_GTC);
    assert_int_equal(m.price, 19050);
    assert_int_equal(m.stop_price, 19000);
    assert_string_equal(order_code("{\"symbol\":\"AAPL\",\"side\":\"sell\",\"type\":\"stop_limit\","
                                   "\"price\":\"180\",\"stop_price\":\"181\",\"qty\":5,"
                                   "\"tif\":\"GTD\",\"expire_at\":\"2026-12-07T18:00:00Z\","
                                   "\"post_only\":true}",
                                   &m),
                        "ok");
    assert_int_equal(m.tif, OP_TIF_GTD);
    assert_true(m.expire_ns == NOW_NS + 86400000000000ULL);
    assert_true(m.post_only);
    for (int i = 0; i < 2; i++) {
        char body[200];
        snprintf(body, sizeof(body),
                 "{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"stop_limit\",\"price\":\"1\","
                 "\"stop_price\":\"1\",\"qty\":1,\"tif\":\"%s\"}",
                 i ? "FOK" : "IOC");
        assert_string_equal(order_code(body, &m), "ok");
    }

    static const struct {
        const char *fields, *code, *field; /* fields: added to a stop_market buy of AAPL */
    } cases[] = {
        {"", "missing_field", "stop_price"},
        {",\"stop_price\":\"190\",\"price\":\"190\"", "invalid_price", "price"},
        {",\"stop_price\":\"190\",\"tif\":\"GTC\"", "invalid_field", "tif"},
        {",\"stop_price\":\"190\",\"tif\":\"GTD\",\"expire_at\":1796580060000", "invalid_field",
         "tif"},
        {",\"stop_price\":\"190\",\"post_only\":true", "invalid_field", "post_only"},
        {",\"stop_price\":\"0\"", "invalid_price", "stop_price"},
        {",\"stop_price\":\"-1\"", "invalid_price", "stop_price"},
        {",\"stop_price\":-1", "invalid_price", "stop_price"},
        {",\"stop_price\":\"1.001\"", "invalid_price", "stop_price"},
        {",\"stop_price\":\"1e2\"", "invalid_price", "stop_price"},
        {",\"stop_price\":null", "invalid_price", "stop_price"},
        {",\"stop_price\":true", "invalid_price", "stop_price"},
        {",\"stop_price\":\"99999999999999999999\"", "invalid_price", "stop_price"},
        {",\"stop_price\":\"1\",\"stop_price\":\"2\"", "duplicate_field", "stop_price"},
    };
    char body[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(body, sizeof(body),
                 "{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"stop_market\",\"qty\":1%s}",
                 cases[i].fields);
        const char *got = order_code(body, &m);
        if (strcmp(got, cases[i].code) != 0 || strcmp(last.field, cases[i].field) != 0)
            fail_msg("stop_market%s: got %s field '%s' (%s), want %s '%s'", cases[i].fields, got,
                     last.field, last.message, cases[i].code, cases[i].field);
    }
    assert_string_equal(order_code("{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"stop_market\","
                                   "\"stop_price\":\"1.001\",\"qty\":1}",
                                   &m),
                        "invalid_price");
    assert_string_equal(last.message, "stop_price has more decimals than the symbol's tick size");

    static const struct {
        const char *body, *code, *field;
    } others[] = {
        {"{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"stop_limit\",\"stop_price\":\"1\","
         "\"qty\":1}",
         "missing_field", "price"},
        {"{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"stop_limit\",\"price\":\"1\","
         "\"qty\":1}",
         "missing_field", "stop_price"},
        {"{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\",\"price\":\"1\","
         "\"stop_price\":\"1\",\"qty\":1}",
         "invalid_price", "stop_price"},
        {"{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"market\",\"stop_price\":\"1\","
         "\"qty\":1}",
         "invalid_price", "stop_price"},
        {"{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"stop\",\"stop_price\":\"1\","
         "\"qty\":1}",
         "invalid_field", "type"},
        {"{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"STOP_LIMIT\",\"price\":\"1\","
         "\"stop_price\":\"1\",\"qty\":1}",
         "invalid_field", "type"},
    };
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        const char *got = order_code(others[i].body, &m);
        if (strcmp(got, others[i].code) != 0 || strcmp(last.field, others[i].field) != 0)
            fail_msg("case %zu: got %s field '%s', want %s '%s'", i, got, last.field,
                     others[i].code, others[i].field);
    }
}

/* The dead-man switch's body: {"timeout_ms": 0 | 1000..600000}. */
static void test_cancel_all_after(void **state)
{
    (void)state;
    static const struct {
        const char *body, *code;
        uint32_t timeout_ms;
    } cases[] = {
        {"{\"timeout_ms\":0}", "ok", 0},
        {"{\"timeout_ms\":1000}", "ok", 1000},
        {"{\"timeout_ms\":60000}", "ok", 60000},
        {"{\"timeout_ms\":600000}", "ok", 600000},
        {"{\"timeout_ms\":999}", "invalid_field", 0},
        {"{\"timeout_ms\":1}", "invalid_field", 0},
        {"{\"timeout_ms\":600001}", "invalid_field", 0},
        {"{\"timeout_ms\":99999999999999999999}", "invalid_field", 0},
        {"{\"timeout_ms\":-1000}", "invalid_field", 0},
        {"{\"timeout_ms\":1000.0}", "invalid_field", 0},
        {"{\"timeout_ms\":1e3}", "invalid_field", 0},
        {"{\"timeout_ms\":\"1000\"}", "invalid_field", 0},
        {"{\"timeout_ms\":null}", "invalid_field", 0},
        {"{\"timeout_ms\":false}", "invalid_field", 0},
        {"{}", "missing_field", 0},
        {"{\"timeout\":1000}", "unknown_field", 0},
        {"{\"timeout_ms\":1000,\"symbol\":\"AAPL\"}", "unknown_field", 0},
        {"{\"timeout_ms\":1000,\"timeout_ms\":2000}", "duplicate_field", 0},
        {"[1000]", "invalid_body", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct json_doc d;
        struct api_error e;
        uint32_t to = 12345;
        memset(&e, 0, sizeof(e));
        assert_int_equal(parse(&d, cases[i].body), 0);
        int rc = order_parse_cancel_all_after(&d, 0, &to, &e);
        const char *got = rc == 0 ? "ok" : e.code;
        if (strcmp(got, cases[i].code) != 0)
            fail_msg("%s: got %s, want %s", cases[i].body, got, cases[i].code);
        if (rc == 0) {
            assert_int_equal(to, cases[i].timeout_ms);
        } else {
            assert_int_equal(e.status, 400);
            if (strcmp(e.code, "invalid_field") == 0) {
                assert_string_equal(e.field, "timeout_ms");
                assert_string_equal(e.message, "timeout_ms must be a whole number of "
                                               "milliseconds: 0 (disarm) or 1000 to 600000");
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_valid_and_invalid),
        cmocka_unit_test(test_json_navigation),
        cmocka_unit_test(test_json_put_str),
        cmocka_unit_test(test_order_fields),
        cmocka_unit_test(test_order_stp),
        cmocka_unit_test(test_amend_replace),
        cmocka_unit_test(test_amend_symbol_rules),
        cmocka_unit_test(test_order_id),
        cmocka_unit_test(test_order_gtd),
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_order_stops),
        cmocka_unit_test(test_cancel_all_after),
    };
    return cmocka_run_group_tests_name("ingest_parse", tests, setup, teardown);
}

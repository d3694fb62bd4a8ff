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
    if (order_parse_new(&d, 0, &syms, "alice", stp_default, m, &last) != 0)
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
    };
    return cmocka_run_group_tests_name("ingest_parse", tests, setup, teardown);
}

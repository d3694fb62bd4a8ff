/* Unit tests of shared/decimal: exact price text <-> ticks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "shared/decimal.h"

static const struct op_tick cent = {1, 2};

struct parse_case {
    const char *text;
    struct op_tick tick;
    enum op_decimal_err want;
    int64_t ticks;
};

static void test_parse_table(void **state)
{
    (void)state;
    static const struct parse_case cases[] = {
        {"187.25", {1, 2}, OP_DEC_OK, 18725},
        {"187", {1, 2}, OP_DEC_OK, 18700},
        {"187.2", {1, 2}, OP_DEC_OK, 18720},
        {"187.250", {1, 2}, OP_DEC_OK, 18725}, /* trailing zero beyond the scale */
        {"0.01", {1, 2}, OP_DEC_OK, 1},
        {"000.01", {1, 2}, OP_DEC_OK, 1},
        {"0.05", {5, 2}, OP_DEC_OK, 1},
        {"1.10", {5, 2}, OP_DEC_OK, 22},
        {"1.12", {5, 2}, OP_DEC_NOT_TICK_MULTIPLE, 0},
        {"187.251", {1, 2}, OP_DEC_TOO_MANY_DECIMALS, 0},
        {"187.2500001", {1, 2}, OP_DEC_TOO_MANY_DECIMALS, 0},
        {"5", {1, 0}, OP_DEC_OK, 5},
        {"5.0", {1, 0}, OP_DEC_OK, 5},
        {"5.5", {1, 0}, OP_DEC_TOO_MANY_DECIMALS, 0},
        {"0.00000001", {1, 8}, OP_DEC_OK, 1},
        {"", {1, 2}, OP_DEC_EMPTY, 0},
        {"-1.00", {1, 2}, OP_DEC_SIGN, 0},
        {"+1.00", {1, 2}, OP_DEC_SIGN, 0},
        {"1e2", {1, 2}, OP_DEC_EXPONENT, 0},
        {"1.5E+2", {1, 2}, OP_DEC_EXPONENT, 0},
        {".5", {1, 2}, OP_DEC_SYNTAX, 0},
        {"5.", {1, 2}, OP_DEC_SYNTAX, 0},
        {"1.2.3", {1, 2}, OP_DEC_SYNTAX, 0},
        {"12a", {1, 2}, OP_DEC_SYNTAX, 0},
        {" 12", {1, 2}, OP_DEC_SYNTAX, 0},
        {"0x10", {1, 2}, OP_DEC_SYNTAX, 0},
        {"NaN", {1, 2}, OP_DEC_SYNTAX, 0},
        {"inf", {1, 2}, OP_DEC_SYNTAX, 0},
        {"0", {1, 2}, OP_DEC_ZERO, 0},
        {"0.00", {1, 2}, OP_DEC_ZERO, 0},
        {"92233720368547758.07", {1, 2}, OP_DEC_OK, INT64_MAX},
        {"92233720368547758.08", {1, 2}, OP_DEC_OVERFLOW, 0},
        {"9223372036854775807", {1, 0}, OP_DEC_OK, INT64_MAX},
        {"9223372036854775808", {1, 0}, OP_DEC_OVERFLOW, 0},
        {"99999999999999999999999999999", {1, 0}, OP_DEC_OVERFLOW, 0},
        {"1234567890123456789012345678901234567890.5", {1, 2}, OP_DEC_TOO_LONG, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct parse_case *c = &cases[i];
        int64_t got = -7;
        enum op_decimal_err e = op_decimal_parse(c->text, strlen(c->text), c->tick, &got);
        if (e != c->want)
            fail_msg("'%s': got err %d want %d", c->text, e, c->want);
        if (c->want == OP_DEC_OK)
            assert_int_equal(got, c->ticks);
        else
            assert_int_equal(got, -7); /* untouched on error */
    }
}

static void test_parse_uses_len_not_nul(void **state)
{
    (void)state;
    int64_t t;
    assert_int_equal(op_decimal_parse("12.34xyz", 4, cent, &t), OP_DEC_OK); /* "12.3" */
    assert_int_equal(t, 1230);
}

static void test_tick_parse(void **state)
{
    (void)state;
    struct op_tick t;
    assert_int_equal(op_tick_parse("0.01", &t), 0);
    assert_int_equal(t.mantissa, 1);
    assert_int_equal(t.scale, 2);
    assert_int_equal(op_tick_parse("0.050", &t), 0);
    assert_int_equal(t.mantissa, 5);
    assert_int_equal(t.scale, 2);
    assert_int_equal(op_tick_parse("25", &t), 0);
    assert_int_equal(t.mantissa, 25);
    assert_int_equal(t.scale, 0);
    assert_int_equal(op_tick_parse("0", &t), -1);
    assert_int_equal(op_tick_parse("-0.01", &t), -1);
    assert_int_equal(op_tick_parse("0.0000000001", &t), -1); /* 10 decimals */
    assert_int_equal(op_tick_parse("abc", &t), -1);
}

static void test_format(void **state)
{
    (void)state;
    char buf[64];
    assert_int_equal(op_decimal_format(18725, cent, buf, sizeof(buf)), 6);
    assert_string_equal(buf, "187.25");
    op_decimal_format(1, cent, buf, sizeof(buf));
    assert_string_equal(buf, "0.01");
    op_decimal_format(0, cent, buf, sizeof(buf));
    assert_string_equal(buf, "0.00");
    op_decimal_format(-5, cent, buf, sizeof(buf));
    assert_string_equal(buf, "-0.05");
    op_decimal_format(22, (struct op_tick){5, 2}, buf, sizeof(buf));
    assert_string_equal(buf, "1.10");
    op_decimal_format(7, (struct op_tick){1, 0}, buf, sizeof(buf));
    assert_string_equal(buf, "7");
    op_decimal_format(INT64_MAX, (struct op_tick){5, 2}, buf, sizeof(buf)); /* > int64 units */
    assert_string_equal(buf, "461168601842738790.35");
    op_decimal_format(INT64_MIN, cent, buf, sizeof(buf));
    assert_string_equal(buf, "-92233720368547758.08");
    assert_int_equal(op_decimal_format(18725, cent, buf, 6), -1); /* needs 7 */
    assert_string_equal(buf, "");
}

/* parse(format(x)) == x over many values and tick sizes. */
static void test_round_trip(void **state)
{
    (void)state;
    static const struct op_tick ticks[] = {{1, 2}, {5, 2}, {1, 0}, {25, 3}, {1, 8}, {1, 9}};
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        struct op_tick t = ticks[i % 6];
        int64_t v = (int64_t)(x % 1000000000000ull) + 1;
        char buf[64];
        int64_t back;
        assert_true(op_decimal_format(v, t, buf, sizeof(buf)) > 0);
        assert_int_equal(op_decimal_parse(buf, strlen(buf), t, &back), OP_DEC_OK);
        assert_int_equal(back, v);
    }
}

static void test_strerror(void **state)
{
    (void)state;
    for (int e = OP_DEC_OK; e <= OP_DEC_ZERO; e++)
        assert_true(strlen(op_decimal_strerror((enum op_decimal_err)e)) > 0);
    assert_string_equal(op_decimal_strerror(OP_DEC_EXPONENT),
                        "price must not use exponent notation");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table), cmocka_unit_test(test_parse_uses_len_not_nul),
        cmocka_unit_test(test_tick_parse),  cmocka_unit_test(test_format),
        cmocka_unit_test(test_round_trip),  cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests_name("decimal", tests, NULL, NULL);
}

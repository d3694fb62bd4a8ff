/* Unit tests of shared/sid: the one stream-id grammar, its order and its text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "shared/sid.h"

/* Parses the NUL-terminated s (its strlen); 0 or -1. */
static int parse(const char *s, struct op_sid *out)
{
    return op_sid_parse(s, strlen(s), out);
}

static void test_parse_accepts(void **state)
{
    (void)state;
    struct op_sid id;
    assert_int_equal(parse("0-0", &id), 0);
    assert_true(id.ms == 0 && id.seq == 0);
    assert_int_equal(parse("1526919030474-55", &id), 0);
    assert_true(id.ms == 1526919030474ULL && id.seq == 55);
    assert_int_equal(parse("18446744073709551615-18446744073709551615", &id), 0);
    assert_true(id.ms == UINT64_MAX && id.seq == UINT64_MAX);
    /* len bounds the input: no NUL needed, bytes after it are not read */
    assert_int_equal(op_sid_parse("12-34junk", 5, &id), 0);
    assert_true(id.ms == 12 && id.seq == 34);
}

static void test_parse_rejects(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",  /* empty */
        "5", /* no '-' (the recorder took this once) */
        "-",
        "5-",
        "-5", /* a part missing */
        "1-2-3",
        "1-2x",
        "1-2 ",
        " 1-2",
        "1 -2", /* trailing / inner bytes, spaces */
        "+1-2",
        "1-+2",
        "-1-2",
        "1--2", /* signs */
        "01-2",
        "1-02",
        "00-0",                    /* leading zeros: not canonical */
        "18446744073709551616-0",  /* ms overflows by one */
        "0-18446744073709551616",  /* seq overflows by one */
        "99999999999999999999-0",  /* 20 digits above the max */
        "184467440737095516150-0", /* 21 digits */
        "1.5-2",
        "0x10-0",
        "a-b",
        "*",
        "$", /* not decimal */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct op_sid id;
        if (parse(bad[i], &id) != -1)
            fail_msg("'%s' parsed as an id", bad[i]);
    }
    struct op_sid id;
    assert_int_equal(op_sid_parse(NULL, 0, &id), -1);
    assert_int_equal(op_sid_parse("1-2", 2, &id), -1); /* "1-" */
    const char nul[] = {'1', '\0', '-', '2'};
    assert_int_equal(op_sid_parse(nul, sizeof(nul), &id), -1); /* an inner NUL */
}

static void test_cmp(void **state)
{
    (void)state;
    struct op_sid a = {1, 5}, b = {2, 0}, c = {1, 6}, m = {UINT64_MAX, UINT64_MAX};
    assert_int_equal(op_sid_cmp(a, a), 0);
    assert_int_equal(op_sid_cmp(a, b), -1); /* ms first, whatever seq says */
    assert_int_equal(op_sid_cmp(b, a), 1);
    assert_int_equal(op_sid_cmp(a, c), -1);
    assert_int_equal(op_sid_cmp(c, a), 1);
    assert_int_equal(op_sid_cmp(m, b), 1);
    assert_int_equal(op_sid_cmp((struct op_sid){0, UINT64_MAX}, (struct op_sid){1, 0}), -1);
}

static void test_format_round_trip(void **state)
{
    (void)state;
    char buf[OP_SID_TEXT_MAX];
    static const char *ids[] = {"0-0", "1-0", "0-1", "1526919030474-55",
                                "18446744073709551615-18446744073709551615"};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        struct op_sid id;
        assert_int_equal(parse(ids[i], &id), 0);
        assert_string_equal(op_sid_format(id, 0, buf), ids[i]);
    }
    struct op_sid m = {UINT64_MAX, UINT64_MAX};
    assert_string_equal(op_sid_format(m, 1, buf), "(18446744073709551615-18446744073709551615");
    assert_int_equal(strlen(buf) + 1, OP_SID_TEXT_MAX); /* the longest text fits exactly */
    assert_string_equal(op_sid_format((struct op_sid){7, 3}, 1, buf), "(7-3");
}

static void test_next(void **state)
{
    (void)state;
    struct op_sid n = op_sid_next((struct op_sid){5, 9});
    assert_true(n.ms == 5 && n.seq == 10);
    n = op_sid_next((struct op_sid){5, UINT64_MAX});
    assert_true(n.ms == 6 && n.seq == 0);
    n = op_sid_next((struct op_sid){UINT64_MAX, UINT64_MAX}); /* the maximum stays */
    assert_true(n.ms == UINT64_MAX && n.seq == UINT64_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_accepts), cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_cmp),           cmocka_unit_test(test_format_round_trip),
        cmocka_unit_test(test_next),
    };
    return cmocka_run_group_tests_name("sid", tests, NULL, NULL);
}

/* Unit tests of shared/log: line formats and level handling. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "shared/log.h"

static void test_kv_line(void **state)
{
    (void)state;
    char line[512];
    op_log_init("ingest", OP_LOG_INFO, OP_LOG_KV);
    int n = op_log_format_line(line, sizeof(line), OP_LOG_WARN, "redis_down",
                               "url=redis://x err=\"a b\"");
    assert_int_equal(n, (int)strlen(line));
    assert_non_null(
        strstr(line, " level=warn svc=ingest event=redis_down url=redis://x err=\"a b\"\n"));
    assert_int_equal(strncmp(line, "ts=", 3), 0);
    assert_int_equal(line[n - 1], '\n');
}

static void test_json_line(void **state)
{
    (void)state;
    char line[512];
    op_log_init("matcher", OP_LOG_DEBUG, OP_LOG_JSON);
    op_log_format_line(line, sizeof(line), OP_LOG_ERROR, "boom",
                       "shard=3 err=\"quote \\\" inside\" path=C:\\x");
    assert_non_null(
        strstr(line, "\"level\":\"error\",\"svc\":\"matcher\",\"event\":\"boom\",\"shard\":\"3\""));
    assert_non_null(strstr(line, "\"err\":\"quote \\\\\\\" inside\""));
    assert_non_null(strstr(line, "\"path\":\"C:\\\\x\"}\n"));
    op_log_init("orderpipe", OP_LOG_INFO, OP_LOG_KV);
}

static void test_truncation(void **state)
{
    (void)state;
    char line[64];
    char big[300];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    int n = op_log_format_line(line, sizeof(line), OP_LOG_INFO, "e", big);
    assert_true(n < (int)sizeof(line));
    assert_int_equal(line[n - 1], '\n'); /* still one whole line */
}

static void test_levels(void **state)
{
    (void)state;
    enum op_log_level l;
    enum op_log_format f;
    assert_int_equal(op_log_level_parse("warn", &l), 0);
    assert_int_equal(l, OP_LOG_WARN);
    assert_int_equal(op_log_level_parse("WARN", &l), -1);
    assert_int_equal(op_log_format_parse("json", &f), 0);
    assert_int_equal(op_log_format_parse("xml", &f), -1);
    op_log_init("t", OP_LOG_WARN, OP_LOG_KV);
    assert_false(op_log_enabled(OP_LOG_INFO));
    assert_true(op_log_enabled(OP_LOG_ERROR));
    assert_int_equal(op_log_fail("x", "k=%d", 1), -1);
    op_log_init("orderpipe", OP_LOG_INFO, OP_LOG_KV);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_line),
        cmocka_unit_test(test_json_line),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_levels),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}

/* Unit tests of shared/metrics: the exposition text of counters, gauges and histograms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "shared/metrics.h"

static void test_counter_gauge(void **state)
{
    (void)state;
    struct op_buf b;
    op_buf_init(&b);
    assert_int_equal(op_metrics_counter(&b, "x_total", "Things done.", 42), 0);
    assert_int_equal(op_metrics_gauge(&b, "x_up", "1 while up.", 0), 0);
    assert_int_equal(op_metrics_counter(&b, "x_max", "Largest.", UINT64_MAX), 0);
    assert_int_equal(op_buf_append(&b, "", 1), 0);
    assert_string_equal(b.data, "# HELP x_total Things done.\n# TYPE x_total counter\nx_total 42\n"
                                "# HELP x_up 1 while up.\n# TYPE x_up gauge\nx_up 0\n"
                                "# HELP x_max Largest.\n# TYPE x_max counter\n"
                                "x_max 18446744073709551615\n");
    op_buf_release(&b);
}

static void test_histogram(void **state)
{
    (void)state;
    struct op_hist h;
    memset(&h, 0, sizeof(h));
    op_hist_observe_size(&h, 3);
    op_hist_observe_size(&h, 100000);
    struct op_buf a, b;
    op_buf_init(&a);
    op_buf_init(&b);
    assert_int_equal(op_metrics_histogram(&a, "s", "Sizes.", &h, 1, 1), 0);
    /* the same as the header and op_metrics_hist without labels */
    op_metrics_header(&b, "s", "histogram", "Sizes.");
    op_metrics_hist(&b, "s", NULL, &h, 1, 1);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    assert_int_equal(op_buf_append(&a, "", 1), 0);
    assert_non_null(strstr(a.data, "# TYPE s histogram\n"));
    assert_non_null(strstr(a.data, "s_bucket{le=\"2\"} 0\ns_bucket{le=\"4\"} 1\n"));
    assert_non_null(strstr(a.data, "s_bucket{le=\"+Inf\"} 2\ns_sum 100003\ns_count 2\n"));
    op_buf_release(&a);
    op_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_gauge),
        cmocka_unit_test(test_histogram),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}

/* Unit tests of shared/buf and shared/alloc: growth, and allocation failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "shared/alloc.h"
#include "shared/buf.h"
#include "shared/codec.h"

static int allocs_left; /* failing hooks: succeed this many times, then fail */

static void *failing_malloc(size_t n)
{
    return allocs_left-- > 0 ? malloc(n) : NULL;
}

static void *failing_realloc(void *p, size_t n)
{
    return allocs_left-- > 0 ? realloc(p, n) : NULL;
}

static void test_growth(void **state)
{
    (void)state;
    struct op_buf b;
    op_buf_init(&b);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(op_buf_append(&b, "abc", 3), 0);
    assert_int_equal(b.len, 30000);
    assert_int_equal(b.data[b.len], '\0');
    assert_int_equal(op_buf_printf(&b, "%d-%s", 42, "x"), 0);
    assert_string_equal(b.data + 30000, "42-x");
    op_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_true(b.cap >= 30000); /* kept for reuse */
    op_buf_release(&b);
    assert_null(b.data);
}

static void test_alloc_failure(void **state)
{
    (void)state;
    struct op_alloc_hooks h = {failing_malloc, failing_realloc, free};
    struct op_buf b;
    op_buf_init(&b);
    op_alloc_set_hooks(&h);
    allocs_left = 0;
    assert_int_equal(op_buf_append(&b, "x", 1), -1);
    assert_int_equal(b.len, 0);
    assert_null(op_codec_new());
    assert_null(op_calloc((size_t)-1, 16)); /* overflow */

    /* an encoder that cannot grow its buffer fails and leaves it as it was */
    allocs_left = 1;
    assert_int_equal(op_buf_append(&b, "hello", 5), 0); /* first block: 256 bytes */
    struct op_order_msg m;
    memset(&m, 0, sizeof(m));
    m.kind = OP_MSG_NEW;
    memset(m.client_order_id, 'a', sizeof(m.client_order_id) - 1);
    memset(m.account, 'b', sizeof(m.account) - 1);
    char pad[200];
    memset(pad, 'x', sizeof(pad));
    assert_int_equal(op_buf_append(&b, pad, sizeof(pad)), 0); /* 205 of 256 used */
    allocs_left = 0;
    assert_int_equal(op_codec_encode_order(&b, &m), -1); /* needs ~130 bytes more */
    assert_int_equal(b.len, 205);
    allocs_left = 1;
    assert_int_equal(op_codec_encode_order(&b, &m), 0);
    assert_true(b.len > 205);
    op_alloc_set_hooks(NULL);
    op_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}

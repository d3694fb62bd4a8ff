/* Unit tests of shared/shard: the contract's FNV-1a shard function and key names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "shared/shard.h"

static void test_fnv1a32_vectors(void **state)
{
    (void)state;
    /* Reference values of FNV-1a 32 (from the FNV specification's test suite). */
    assert_int_equal(op_fnv1a32("", 0), 0x811c9dc5u);
    assert_int_equal(op_fnv1a32("a", 1), 0xe40c292cu);
    assert_int_equal(op_fnv1a32("foobar", 6), 0xbf9cf968u);
}

static void test_shard_of(void **state)
{
    (void)state;
    static const char *syms[] = {"AAPL", "MSFT", "GOOG", "AMZN", "TSLA"};
    for (int i = 0; i < 5; i++) {
        uint32_t h = op_fnv1a32(syms[i], strlen(syms[i]));
        assert_int_equal(op_shard_of(syms[i], strlen(syms[i]), 4), h % 4);
        assert_int_equal(op_shard_of(syms[i], strlen(syms[i]), 1), 0);
    }
}

static void test_keys(void **state)
{
    (void)state;
    char k[OP_KEY_MAX];
    assert_int_equal(op_key_orders(k, 3), 10);
    assert_string_equal(k, "orders:{3}");
    op_key_fills(k, 1023);
    assert_string_equal(k, "fills:{1023}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fnv1a32_vectors),
        cmocka_unit_test(test_shard_of),
        cmocka_unit_test(test_keys),
    };
    return cmocka_run_group_tests_name("shard", tests, NULL, NULL);
}

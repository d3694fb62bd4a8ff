/* Unit tests of ingest's per-key token buckets, on a made-up timeline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>

#include "ingest/ratelimit.h"

#define S INT64_C(1000000000)
#define MS INT64_C(1000000)

/* A full bucket gives its burst at once, then one token per 1/rate. */
static void test_burst_then_rate(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(2, 1, 5); /* 1/s, burst 5 */
    int64_t wait = 0, t = 1000 * S;
    assert_non_null(rl);
    for (int i = 0; i < 5; i++)
        assert_int_equal(ratelimit_take(rl, 0, 1, t, &wait), RATELIMIT_OK);
    assert_int_equal(ratelimit_take(rl, 0, 1, t, &wait), RATELIMIT_WAIT);
    assert_int_equal(wait, S); /* the next token comes back in 1 s */
    assert_int_equal(ratelimit_take(rl, 0, 1, t + 999 * MS, &wait), RATELIMIT_WAIT);
    assert_int_equal(wait, 1 * MS);
    assert_int_equal(ratelimit_take(rl, 0, 1, t + S, &wait), RATELIMIT_OK);
    assert_int_equal(ratelimit_take(rl, 0, 1, t + S, &wait), RATELIMIT_WAIT);
    /* another key has its own full bucket */
    for (int i = 0; i < 5; i++)
        assert_int_equal(ratelimit_take(rl, 1, 1, t + S, &wait), RATELIMIT_OK);
    assert_int_equal(ratelimit_take(rl, 1, 1, t + S, &wait), RATELIMIT_WAIT);
    /* idle for long: full again, never more than the burst */
    assert_int_equal(ratelimit_take(rl, 0, 5, t + 3600 * S, &wait), RATELIMIT_OK);
    assert_int_equal(ratelimit_take(rl, 0, 1, t + 3600 * S, &wait), RATELIMIT_WAIT);
    ratelimit_free(rl);
}

/* n tokens at once are all or nothing; more than the burst never pass. */
static void test_all_or_nothing(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(1, 10, 10); /* 10/s: a token per 100 ms */
    int64_t wait = 0, t = 5 * S;
    assert_non_null(rl);
    assert_int_equal(ratelimit_burst(rl), 10);
    assert_int_equal(ratelimit_take(rl, 0, 7, t, &wait), RATELIMIT_OK);
    assert_int_equal(ratelimit_take(rl, 0, 4, t, &wait), RATELIMIT_WAIT); /* 3 left */
    assert_int_equal(wait, 100 * MS);
    assert_int_equal(ratelimit_take(rl, 0, 3, t, &wait),
                     RATELIMIT_OK); /* the refused 4 took none */
    assert_int_equal(ratelimit_take(rl, 0, 11, t + 60 * S, &wait), RATELIMIT_TOO_MANY);
    assert_int_equal(ratelimit_take(rl, 0, 10, t + 60 * S, &wait), RATELIMIT_OK);
    assert_int_equal(ratelimit_take(rl, 0, 0, t + 120 * S, &wait), RATELIMIT_TOO_MANY);
    assert_int_equal(ratelimit_take(rl, 1, 1, t + 120 * S, &wait),
                     RATELIMIT_TOO_MANY); /* no key 1 */
    ratelimit_free(rl);
}

static void test_bad_parameters(void **state)
{
    (void)state;
    assert_null(ratelimit_new(1, 0, 1));
    assert_null(ratelimit_new(1, 1, 0));
    assert_null(ratelimit_new(0, 1, 1));
    assert_null(ratelimit_new(1, INT64_C(1000000001), 1));
    struct ratelimit *rl = ratelimit_new(1, INT64_C(1000000000), INT64_C(1000000000));
    assert_non_null(rl);
    ratelimit_free(rl);
    ratelimit_free(NULL);
}

/* Threads taking tokens of one key at one instant: exactly the burst is
 * granted, whatever the interleaving of their compare-and-swaps. */
struct racer {
    struct ratelimit *rl;
    int granted;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    int64_t wait;
    for (int i = 0; i < 20000; i++)
        r->granted += ratelimit_take(r->rl, 0, 1, 7 * S, &wait) == RATELIMIT_OK;
    return NULL;
}

static void test_threads_share_a_key(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(1, 1, 30000);
    struct racer r[4];
    pthread_t th[4];
    assert_non_null(rl);
    for (int i = 0; i < 4; i++) {
        r[i] = (struct racer){rl, 0};
        assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += r[i].granted;
    }
    assert_int_equal(total, 30000);
    ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_rate),
        cmocka_unit_test(test_all_or_nothing),
        cmocka_unit_test(test_bad_parameters),
        cmocka_unit_test(test_threads_share_a_key),
    };
    return cmocka_run_group_tests_name("ratelimit", tests, NULL, NULL);
}

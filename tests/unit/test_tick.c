/* Unit tests of matcher/tick.h: when an idle shard's owner appends a tick input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "matcher/tick.h"

#define SEC 1000000000ull
#define T0 (1800000000ull * SEC) /* a wall clock in 2027 */

/* One row: the inputs of tick_wait_ms and what it must answer. */
struct row {
    const char *what;
    int tick_ms;
    int in_flight;
    int64_t idle_ms;
    uint64_t next_event_ns;
    uint64_t wall_ns;
    int64_t want;
};

static const struct row rows[] = {
    {"idle long enough, event due: now", 100, 0, 100, T0, T0, 0},
    {"event due exactly one ns ago", 100, 0, 500, T0 - 1, T0, 0},
    {"nothing pending: never (an idle shard costs nothing)", 100, 0, 10000, 0, T0, -1},
    {"ticks off (MATCHER_TICK_MS=0)", 0, 0, 10000, T0, T0, -1},
    {"a tick in flight: not a second one", 100, 1, 10000, T0, T0, -1},
    {"not idle long enough: the rest of tick_ms", 100, 0, 30, T0, T0, 70},
    {"just read an input: all of tick_ms", 100, 0, 0, T0, T0, 100},
    {"a clock that went back (idle < 0): all of tick_ms", 100, 0, -5, T0, T0, 100},
    {"event 1 ns ahead of the wall clock: 1 ms (never early)", 100, 0, 1000, T0 + 1, T0, 1},
    {"event 2.5 s ahead: 2500 ms", 100, 0, 1000, T0 + 2500000000ull, T0, 2500},
    {"event ahead by less than the idle time missing: the idle time", 100, 0, 10, T0 + 20000000ull,
     T0, 90},
    {"event far in the future: capped", 100, 0, 1000, UINT64_MAX, T0, TICK_WAIT_MAX_MS},
    {"event ahead of a wall clock at 0: capped, no overflow", 100, 0, 1000, UINT64_MAX, 0,
     TICK_WAIT_MAX_MS},
    {"event at 1 ns since the epoch (the test knob): now", 100, 0, 100, 1, T0, 0},
};

static void test_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *r = &rows[i];
        int64_t got =
            tick_wait_ms(r->tick_ms, r->in_flight, r->idle_ms, r->next_event_ns, r->wall_ns);
        if (got != r->want)
            fail_msg("%s: got %lld, want %lld", r->what, (long long)got, (long long)r->want);
    }
}

/* Waiting the answer makes the tick due: the wait is never short. */
static void test_wait_then_due(void **state)
{
    (void)state;
    int64_t idle = 40;
    uint64_t wall = T0, event = T0 + 75500000ull; /* 75.5 ms ahead */
    int64_t w = tick_wait_ms(100, 0, idle, event, wall);
    assert_int_equal(w, 76);
    assert_true(tick_wait_ms(100, 0, idle + w - 1, event, wall + (uint64_t)(w - 1) * 1000000) > 0);
    assert_int_equal(tick_wait_ms(100, 0, idle + w, event, wall + (uint64_t)w * 1000000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_wait_then_due),
    };
    return cmocka_run_group_tests_name("tick", tests, NULL, NULL);
}

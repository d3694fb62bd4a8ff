/* Integration test of shared/backlog's memo: skipping the count never changes the answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/backlog.h"
#include "shared/config.h"
#include "shared/redis.h"

/*
 * Run by tests/run-integration.sh with REDIS_URL of a throw-away stack. Uses
 * its own key. At each step the backlog is measured twice, with and without
 * the memo, and both must agree field for field.
 */

#define KEY "test:backlog-memo"
#define GROUP "g"
/* Rule 1's bound, small so that the steps stay quick. */
#define MAX 100

static struct op_redis r;
static struct op_backlog_memo memo;

static void cmd(const char *fmt, const char *arg)
{
    struct redisReply *rep = op_redis_cmdf(&r, fmt, arg);
    assert_non_null(rep);
    assert_int_not_equal(op_reply_type(rep), OP_REPLY_ERROR);
    op_reply_free(rep);
}

/* Appends n entries to KEY. */
static void add(int n)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(op_redis_appendf(&r, "XADD %s * f v", KEY), 0);
    for (int i = 0; i < n; i++) {
        struct redisReply *rep = op_redis_next_reply(&r);
        assert_non_null(rep);
        op_reply_free(rep);
    }
}

/* Measures with and without the memo, checks they agree, updates the memo;
 * returns the measure. */
static struct op_backlog measure(void)
{
    struct op_backlog plain, memod;
    assert_int_equal(op_backlog_append(&r, KEY, GROUP, MAX), 0);
    assert_int_equal(op_backlog_append_memo(&r, KEY, GROUP, MAX, &memo), 0);
    assert_int_equal(op_backlog_read(&r, &plain), 0);
    assert_int_equal(op_backlog_read(&r, &memod), 0);
    op_backlog_remember(&memo, &memod);
    assert_int_equal(plain.found, memod.found);
    assert_int_equal(plain.pending, memod.pending);
    assert_int_equal(plain.undelivered, memod.undelivered);
    assert_int_equal(plain.redis_lag, memod.redis_lag);
    assert_int_equal(plain.how, memod.how);
    assert_string_equal(plain.last_delivered, memod.last_delivered);
    return memod;
}

static void test_memo_agrees(void **state)
{
    (void)state;
    struct op_config cfg;
    char err[256];
    assert_int_equal(op_config_load(&cfg, err, sizeof(err)), 0);
    assert_int_equal(op_redis_init(&r, cfg.redis_url, 5000), 0);
    if (op_redis_connect(&r) != 0)
        fail_msg("%s", r.errstr);

    cmd("DEL %s", KEY);
    cmd("XGROUP CREATE %s " GROUP " 0 MKSTREAM", KEY);
    add(3 * MAX);
    struct op_backlog b = measure(); /* above MAX: Redis' lag, remembered */
    assert_int_equal(b.how, OP_BACKLOG_LAG);
    assert_int_equal(b.undelivered, 3 * MAX);
    assert_string_equal(memo.over, "0-0");
    add(5);
    b = measure(); /* the memo is used: same answer */
    assert_int_equal(b.undelivered, 3 * MAX + 5);
    cmd("XGROUP SETID %s " GROUP " 0 ENTRIESREAD 1", KEY); /* a stale counter */
    b = measure();
    assert_int_equal(b.how, OP_BACKLOG_LAG);
    assert_int_equal(b.undelivered, 3 * MAX + 4);

    /* The group moves on: counted again, exactly, and forgotten. */
    struct redisReply *rep =
        op_redis_cmdf(&r, "XREADGROUP GROUP " GROUP " c COUNT %d STREAMS %s >", 2 * MAX + 50, KEY);
    assert_non_null(rep);
    op_reply_free(rep);
    b = measure();
    assert_int_equal(b.how, OP_BACKLOG_COUNTED);
    assert_int_equal(b.undelivered, MAX - 45);
    assert_int_equal(b.pending, 2 * MAX + 50);
    assert_string_equal(memo.over, "");

    /* A stream recreated with the group at the remembered id: XLEN is at
     * most MAX, so it is counted. */
    add(2 * MAX);
    measure();
    assert_string_not_equal(memo.over, "");
    snprintf(memo.over, sizeof(memo.over), "%s", "0-0");
    cmd("DEL %s", KEY);
    cmd("XGROUP CREATE %s " GROUP " 0 MKSTREAM", KEY);
    add(5);
    b = measure();
    assert_int_equal(b.how, OP_BACKLOG_COUNTED);
    assert_int_equal(b.undelivered, 5);

    cmd("DEL %s", KEY);
    op_redis_release(&r);
}

int main(void)
{
    if (!getenv("REDIS_URL")) {
        fprintf(stderr, "test_backlog_memo: REDIS_URL must be set (run via "
                        "tests/run-integration.sh)\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memo_agrees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests of shared/redis without a server: URL parsing, failure and backoff. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "shared/redis.h"

static void test_url_parse(void **state)
{
    (void)state;
    struct op_redis_url u;
    char err[128];
    assert_int_equal(op_redis_url_parse("redis://127.0.0.1:6390", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6390);
    assert_int_equal(u.db, 0);
    assert_string_equal(u.password, "");
    assert_int_equal(op_redis_url_parse("redis://:s3cret@h/2", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "h");
    assert_int_equal(u.port, 6379);
    assert_string_equal(u.password, "s3cret");
    assert_string_equal(u.user, "");
    assert_int_equal(u.db, 2);
    assert_int_equal(op_redis_url_parse("redis://app:p@ss@h:1/", &u, err, sizeof(err)), 0);
    assert_string_equal(u.user, "app");
    assert_string_equal(u.password, "p@ss");

    static const char *bad[] = {"http://h",        "redis://",       "redis://h:0",
                                "redis://h:99999", "redis://h:12x",  "redis://h/x",
                                "redis://user@h",  "redis://h:1/2/3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (op_redis_url_parse(bad[i], &u, err, sizeof(err)) != -1)
            fail_msg("'%s' parsed", bad[i]);
        assert_true(strlen(err) > 0);
    }
    assert_int_equal(op_redis_url_parse("redis://:topsecret@h:x", &u, err, sizeof(err)), -1);
    assert_null(strstr(err, "topsecret"));
}

static void test_connect_refused_and_backoff(void **state)
{
    (void)state;
    struct op_redis r;
    /* Port 1 on loopback: nothing listens there, the connect is refused at once. */
    assert_int_equal(op_redis_init(&r, "redis://127.0.0.1:1", 500), 0);
    assert_int_equal(op_redis_connect(&r), -1);
    assert_non_null(strstr(r.errstr, "cannot connect to redis at '127.0.0.1:1'"));
    assert_null(op_redis_cmdf(&r, "PING"));
    /* a call on the dropped connection keeps the cause, for the caller's log */
    assert_non_null(strstr(r.errstr, "cannot connect to redis at '127.0.0.1:1'"));
    assert_int_equal(op_redis_append(&r, 1, (const char *[]){"PING"}, NULL), -1);

    assert_int_equal(op_redis_ensure(&r), -1);
    int first = r.backoff_ms;
    int64_t next = r.next_attempt_ms;
    assert_true(next > op_now_ms() - 1);
    assert_int_equal(op_redis_ensure(&r), -1); /* within the delay: no attempt */
    assert_int_equal(r.next_attempt_ms, next);
    for (int i = 0; i < 12; i++) {
        r.next_attempt_ms = 0; /* pretend the delay passed */
        assert_int_equal(op_redis_ensure(&r), -1);
    }
    assert_true(r.backoff_ms > first);
    assert_int_equal(r.backoff_ms, OP_REDIS_BACKOFF_MAX_MS);
    op_redis_release(&r);
}

/* A chained accessor over a missing element must not crash. */
static void test_null_reply_accessors(void **state)
{
    (void)state;
    size_t len = 7;
    assert_int_equal(op_reply_type(NULL), 0);
    assert_null(op_reply_str(NULL, &len));
    assert_int_equal(len, 7);
    assert_int_equal(op_reply_int(NULL), 0);
    assert_int_equal(op_reply_count(NULL), 0);
    assert_null(op_reply_at(op_reply_at(NULL, 0), 1));
    assert_false(op_reply_is_status(NULL, "OK"));
    assert_false(op_reply_is_error(NULL, "ERR"));
    op_reply_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_reply_accessors),
        cmocka_unit_test(test_url_parse),
        cmocka_unit_test(test_connect_refused_and_backoff),
    };
    return cmocka_run_group_tests_name("redis", tests, NULL, NULL);
}

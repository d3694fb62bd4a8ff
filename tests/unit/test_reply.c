/* Unit tests of shared/reply: field lookup in flat arrays and the XINFO GROUPS walk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

/* Replies are built by hand here: the test needs hiredis' struct, which the
 * services never see (shared/redis.h keeps it opaque). */
#include <hiredis.h>

#include "shared/reply.h"

/* Why 64: more elements than any reply built below. */
#define POOL_MAX 64

/* A fixed pool of reply nodes, reset per test (never freed: not malloc'ed). */
static redisReply pool[POOL_MAX];
static redisReply *elems[POOL_MAX][16];
static int used;

static redisReply *node(int type)
{
    assert_true(used < POOL_MAX);
    redisReply *r = &pool[used++];
    memset(r, 0, sizeof(*r));
    r->type = type;
    return r;
}

/* A string reply of the NUL-terminated s (hiredis terminates them too). */
static redisReply *str(const char *s)
{
    redisReply *r = node(REDIS_REPLY_STRING);
    r->str = (char *)s;
    r->len = strlen(s);
    return r;
}

static redisReply *num(long long v)
{
    redisReply *r = node(REDIS_REPLY_INTEGER);
    r->integer = v;
    return r;
}

/* An array of the n replies that follow. */
static redisReply *arr(size_t n, ...)
{
    redisReply *r = node(REDIS_REPLY_ARRAY);
    assert_true(n <= 16);
    r->element = elems[r - pool];
    r->elements = n;
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        r->element[i] = va_arg(ap, redisReply *);
    va_end(ap);
    return r;
}

static int reset(void **state)
{
    (void)state;
    used = 0;
    return 0;
}

static void test_field(void **state)
{
    (void)state;
    redisReply *f = arr(6, str("sym"), str("AAPL"), str("m"), str("\x81\xa1k"), str("mm"), num(3));
    size_t len = 0;
    assert_string_equal(op_reply_field_str(f, "sym", &len), "AAPL");
    assert_int_equal(len, 4);
    assert_non_null(op_reply_field_str(f, "m", &len)); /* exact name: "m", not "mm" */
    assert_int_equal(len, 3);
    assert_int_equal(op_reply_int(op_reply_field(f, "mm")), 3);
    assert_null(op_reply_field_str(f, "mm", NULL)); /* not a string */
    assert_null(op_reply_field(f, "M"));            /* case-sensitive */
    assert_null(op_reply_field(f, "s"));            /* no prefix match */
    assert_null(op_reply_field(f, "AAPL"));         /* values are not names */
    assert_null(op_reply_field(NULL, "m"));
    assert_null(op_reply_field(str("m"), "m")); /* not an array */
    /* a last name without a value, and a non-string name */
    redisReply *odd = arr(3, num(1), str("x"), str("m"));
    assert_null(op_reply_field(odd, "m"));
    assert_null(op_reply_field(arr(0), "m"));
    /* the first of two equal names wins */
    redisReply *dup = arr(4, str("a"), str("1"), str("a"), str("2"));
    assert_string_equal(op_reply_field_str(dup, "a", NULL), "1");
}

/* One XINFO GROUPS element as Redis 7.0 writes it. */
static redisReply *group(const char *name, long long pending, const char *last)
{
    return arr(12, str("name"), str(name), str("consumers"), num(1), str("pending"), num(pending),
               str("last-delivered-id"), str(last), str("entries-read"), num(10), str("lag"),
               num(0));
}

static void test_groups(void **state)
{
    (void)state;
    redisReply *g = arr(4, group("tools", 0, "0-0"), group("bad", 1, "12"),
                        arr(2, str("pending"), num(4)), group("matchers", 7, "1700000000000-3"));
    struct op_group out;
    assert_int_equal(op_groups_at(g, 0, &out), 0);
    assert_string_equal(out.name, "tools");
    assert_int_equal(out.name_len, 5);
    assert_true(out.last_delivered.ms == 0 && out.last_delivered.seq == 0);
    assert_int_equal(op_groups_at(g, 1, &out), -1); /* last-delivered-id not an id */
    assert_int_equal(op_groups_at(g, 2, &out), -1); /* no name, no id */
    assert_int_equal(op_groups_at(g, 3, &out), 0);
    assert_int_equal(out.pending, 7);
    assert_int_equal(op_groups_at(g, 4, &out), -1); /* past the end */

    assert_int_equal(op_groups_find(g, "matchers", &out), 0);
    assert_true(out.last_delivered.ms == 1700000000000ULL && out.last_delivered.seq == 3);
    assert_int_equal(out.pending, 7);
    assert_int_equal(op_groups_find(g, "bad", &out), -1);     /* invalid: as missing */
    assert_int_equal(op_groups_find(g, "matcher", &out), -1); /* exact names */
    assert_int_equal(op_groups_find(g, "matchersx", &out), -1);
    assert_int_equal(op_groups_find(arr(0), "matchers", &out), -1);
    assert_int_equal(op_groups_find(NULL, "matchers", &out), -1);
    redisReply *err = node(REDIS_REPLY_ERROR);
    err->str = (char *)"ERR no such key";
    err->len = strlen(err->str);
    assert_int_equal(op_groups_find(err, "matchers", &out), -1);
    /* pending missing: 0 */
    redisReply *bare = arr(1, arr(4, str("name"), str("r"), str("last-delivered-id"), str("5-5")));
    assert_int_equal(op_groups_find(bare, "r", &out), 0);
    assert_int_equal(out.pending, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_field, reset),
        cmocka_unit_test_setup(test_groups, reset),
    };
    return cmocka_run_group_tests_name("reply", tests, NULL, NULL);
}

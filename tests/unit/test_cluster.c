/* Unit tests of shared/cluster: key slots, command routing and redirection errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "shared/cluster.h"

static uint16_t slot_of(const char *key)
{
    return op_cluster_slot(key, strlen(key));
}

static void test_slots(void **state)
{
    (void)state;
    /* Expected values: CLUSTER KEYSLOT of a Redis 7.0 node. */
    static const struct {
        const char *key;
        uint16_t slot;
    } cases[] = {
        {"foo", 12182},          {"123456789", 12739},          {"orders:{0}", 13907},
        {"orders:{15}", 4178},   {"fills:{15}", 4178},          {"foo{}{bar}", 8363},
        {"foo{{bar}}zap", 4015}, {"foo{bar}{zap}", 5061},       {"{", 4092},
        {"a{b", 13340},          {"orderpipe:id_block", 13620},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (slot_of(cases[i].key) != cases[i].slot)
            fail_msg("slot of '%s': %u, expected %u", cases[i].key, slot_of(cases[i].key),
                     cases[i].slot);
    }
    /* a shard's keys share its slot */
    assert_int_equal(slot_of("orders:{7}"), slot_of("lease:{7}"));
    assert_int_equal(slot_of("orders:{7}"), slot_of("idem:{7}:AAPL:alice:c1"));
}

/* Formats argv as hiredis does, into buf. Returns its length. */
static size_t resp(char *buf, size_t size, int argc, const char **argv)
{
    size_t n = (size_t)snprintf(buf, size, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++)
        n += (size_t)snprintf(buf + n, size - n, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
    return n;
}

/* Parses and routes argv; returns the route (asserting parse succeeded). */
static struct op_cmd_route route(int argc, const char **argv, int *rc)
{
    char buf[1024];
    struct op_cmd_arg args[32];
    size_t len = resp(buf, sizeof(buf), argc, argv);
    assert_int_equal(op_cmd_parse(buf, len, args, 32), argc);
    for (int i = 0; i < argc; i++)
        assert_memory_equal(args[i].p, argv[i], strlen(argv[i]));
    struct op_cmd_route rt;
    *rc = op_cmd_route(args, argc, &rt);
    return rt;
}

static void test_parse(void **state)
{
    (void)state;
    struct op_cmd_arg args[2];
    const char ok[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n";
    assert_int_equal(op_cmd_parse(ok, sizeof(ok) - 1, args, 2), 3); /* more than max: count */
    assert_int_equal(args[1].len, 1);
    /* binary arguments: \r\n inside a bulk string */
    const char bin[] = "*2\r\n$3\r\nGET\r\n$4\r\na\r\nb\r\n";
    assert_int_equal(op_cmd_parse(bin, sizeof(bin) - 1, args, 2), 2);
    assert_int_equal(args[1].len, 4);
    static const char *bad[] = {
        "",
        "*",
        "*0\r\n",
        "*1\r\n",
        "*1\r\n$3\r\nGE\r\n",
        "*1\r\n$3\r\nGETX\r\n",
        "*1\r\n$3\r\nGET\r\nextra",
        "+OK\r\n",
        "*1\r\n$x\r\nGET\r\n",
        "*2\r\n$3\r\nGET\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (op_cmd_parse(bad[i], strlen(bad[i]), args, 2) != -1)
            fail_msg("'%s' parsed", bad[i]);
}

static void test_route(void **state)
{
    (void)state;
    int rc;
    struct op_cmd_route rt;

    rt = route(3, (const char *[]){"GET", "k", "x"}, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(rt.kind, OP_ROUTE_KEY);
    assert_int_equal(rt.key, 1);
    rt = route(3, (const char *[]){"xinfo", "GROUPS", "orders:{1}"}, &rc);
    assert_int_equal(rt.kind, OP_ROUTE_KEY);
    assert_int_equal(rt.key, 2);
    rt = route(5, (const char *[]){"EVALSHA", "abc", "2", "lease:{1}", "orders:{1}"}, &rc);
    assert_int_equal(rt.kind, OP_ROUTE_KEY);
    assert_int_equal(rt.key, 3);
    rt = route(3, (const char *[]){"EVAL", "return 1", "0"}, &rc);
    assert_int_equal(rt.kind, OP_ROUTE_ANY);
    rt = route(3, (const char *[]){"WAIT", "1", "100"}, &rc);
    assert_int_equal(rt.kind, OP_ROUTE_WAIT);
    rt = route(1, (const char *[]){"multi"}, &rc);
    assert_int_equal(rt.kind, OP_ROUTE_MULTI);
    rt = route(1, (const char *[]){"EXEC"}, &rc);
    assert_int_equal(rt.kind, OP_ROUTE_EXEC);
    rt = route(1, (const char *[]){"UNWATCH"}, &rc);
    assert_int_equal(rt.kind, OP_ROUTE_UNWATCH);
    rt = route(3, (const char *[]){"SCRIPT", "LOAD", "return 1"}, &rc);
    assert_int_equal(rt.kind, OP_ROUTE_ALL);
    rt = route(1, (const char *[]){"TIME"}, &rc);
    assert_int_equal(rt.kind, OP_ROUTE_ANY);
    rt = route(2, (const char *[]){"CLUSTER", "SLOTS"}, &rc);
    assert_int_equal(rt.kind, OP_ROUTE_ANY);
    route(1, (const char *[]){"GET"}, &rc); /* a keyed command without its key */
    assert_int_equal(rc, -1);

    rt = route(8, (const char *[]){"XREAD", "COUNT", "10", "BLOCK", "100", "STREAMS", "a", "0"},
               &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(rt.kind, OP_ROUTE_STREAMS);
    assert_int_equal(rt.block, 3);
    assert_int_equal(rt.block_ms, 100);
    assert_int_equal(rt.streams, 5);
    assert_int_equal(rt.nstreams, 1);
    /* a group and a consumer named like keywords */
    route(10,
          (const char *[]){"XREADGROUP", "GROUP", "STREAMS", "BLOCK", "COUNT", "5", "STREAMS",
                           "fills:{0}", "fills:{1}", ">"},
          &rc);
    assert_int_equal(rc, -1); /* 3 arguments after STREAMS: not keys and ids */
    rt = route(11,
               (const char *[]){"XREADGROUP", "GROUP", "STREAMS", "BLOCK", "COUNT", "5", "STREAMS",
                                "fills:{0}", "fills:{1}", ">", ">"},
               &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(rt.block, -1);
    assert_int_equal(rt.streams, 6);
    assert_int_equal(rt.nstreams, 2);
    route(5, (const char *[]){"XREAD", "BLOCK", "x", "STREAMS", "a"}, &rc);
    assert_int_equal(rc, -1);
}

static void test_redirect(void **state)
{
    (void)state;
    char host[64];
    int slot = -1, port = -1;
    assert_int_equal(
        op_cluster_redirect("MOVED 3999 127.0.0.1:6381", &slot, host, sizeof(host), &port),
        OP_REDIRECT_MOVED);
    assert_int_equal(slot, 3999);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 6381);
    assert_int_equal(op_cluster_redirect("ASK 1 ::1:7000", &slot, host, sizeof(host), &port),
                     OP_REDIRECT_ASK);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 7000);
    assert_int_equal(op_cluster_redirect("TRYAGAIN Multiple keys request during rehashing of slot",
                                         &slot, host, sizeof(host), &port),
                     OP_REDIRECT_TRYAGAIN);
    static const char *none[] = {
        "ERR wrong",   "MOVED",      "MOVED x 1.2.3.4:5", "MOVED 16384 h:1", "MOVED 1 h",
        "MOVED 1 h:0", "MOVED 1 :5", "ASK 1 h:70000",     "MOVED 1 h:5x",
    };
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++)
        if (op_cluster_redirect(none[i], &slot, host, sizeof(host), &port) != OP_REDIRECT_NONE)
            fail_msg("'%s' taken for a redirection", none[i]);
    char tiny[4];
    assert_int_equal(op_cluster_redirect("MOVED 1 127.0.0.1:5", &slot, tiny, sizeof(tiny), &port),
                     OP_REDIRECT_NONE);
    assert_int_equal(op_cluster_redirect(NULL, &slot, host, sizeof(host), &port), OP_REDIRECT_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_route),
        cmocka_unit_test(test_redirect),
    };
    return cmocka_run_group_tests_name("cluster", tests, NULL, NULL);
}

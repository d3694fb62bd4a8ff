/* Integration test of shared/redis.c's cluster client against a real 3+3 Redis Cluster. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shared/cluster.h"
#include "shared/redis.h"

/*
 * Run by tests/run-integration.sh: starts its own cluster (ops/redis-cluster.sh,
 * 3 primaries + 3 replicas on free ports under $OP_STACK_DIR) unless
 * OP_CLUSTER_URL names one, and stops it at the end. Steps, each on the
 * same handle so that its slot map goes stale on purpose:
 *  - routing: a pipeline over 16 shards' keys (all three primaries) answers
 *    in the order given; MULTI/EXEC on one shard; SCRIPT LOAD + EVALSHA on
 *    every primary; WAIT counts the replicas of every node written;
 *  - split reads: XREADGROUP over 16 streams is merged into one reply, a
 *    BLOCK read returns nil when nothing comes and the entry when another
 *    client adds one while it waits;
 *  - a slot moved under the handle: MOVED followed; a slot half migrated:
 *    ASK followed, for a moved key and for a new key;
 *  - a primary killed (-9): the handle fails, then rediscovers the map once
 *    the replica took over, and a value written with WAIT is still there.
 * Control operations (SETSLOT, MIGRATE, kill) go through redis-cli.
 */

static struct op_redis r;
static char url[128];
static char dir[512];
static int first_port;
static int started; /* 1 when this test started the cluster */

/* Runs a shell command line; returns its first output line in out (may be NULL). */
static int sh(char *out, size_t outlen, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    FILE *f = popen(line, "r");
    if (!f)
        return -1;
    char buf[1024] = "";
    if (!fgets(buf, sizeof(buf), f))
        buf[0] = '\0';
    char drain[256];
    while (fgets(drain, sizeof(drain), f))
        ;
    int st = pclose(f);
    buf[strcspn(buf, "\r\n")] = '\0';
    if (out)
        snprintf(out, outlen, "%s", buf);
    return st;
}

static struct redisReply *must(struct redisReply *rep)
{
    if (!rep)
        fail_msg("no reply: %s", r.errstr);
    if (op_reply_type(rep) == OP_REPLY_ERROR)
        fail_msg("error reply: %s", op_reply_str(rep, NULL));
    return rep;
}

static void ok(struct redisReply *rep)
{
    op_reply_free(must(rep));
}

/* A node that answers (the first may have been killed). */
static int live_port(void)
{
    for (int p = first_port; p < first_port + 6; p++)
        if (sh(NULL, 0, "redis-cli -p %d PING 2>/dev/null | grep -q PONG", p) == 0)
            return p;
    fail_msg("no node of the cluster answers");
    return -1;
}

/* The port of the primary serving key's slot, from CLUSTER NODES. */
static int owner_port(const char *key)
{
    char out[64];
    sh(out, sizeof(out),
       "redis-cli -p %d CLUSTER NODES | awk -v s=%u '/master/ && !/fail/ { for (i = 9; i <= NF; "
       "i++) { if ($i ~ /^\\[/) continue; n = split($i, r, \"-\"); a = r[1]; b = n > 1 ? r[2] : "
       "r[1]; if (s >= a + 0 && s <= b + 0) { split($2, h, \"[:@]\"); print h[2]; exit } } }'",
       live_port(), op_cluster_slot(key, strlen(key)));
    return (int)strtol(out, NULL, 10);
}

/* The node id of the node on port. */
static void node_id(int port, char *id, size_t idlen)
{
    sh(id, idlen, "redis-cli -p %d CLUSTER MYID", port);
}

/* A primary other than port. */
static int other_primary(int port)
{
    char out[64];
    sh(out, sizeof(out),
       "redis-cli -p %d CLUSTER NODES | awk '/master/ && !/fail/ {split($2,a,\"[:@]\"); if (a[2] "
       "!= "
       "%d) {print a[2]; exit}}'",
       live_port(), port);
    return (int)strtol(out, NULL, 10);
}

static void test_routing(void **state)
{
    (void)state;
    char key[32], val[32];
    for (int s = 0; s < 16; s++) {
        snprintf(key, sizeof(key), "t:{%d}", s);
        snprintf(val, sizeof(val), "v%d", s);
        assert_int_equal(op_redis_appendf(&r, "SET %s %s", key, val), 0);
        assert_int_equal(op_redis_appendf(&r, "GET %s", key), 0);
    }
    for (int s = 0; s < 16; s++) {
        op_reply_free(must(op_redis_next_reply(&r)));
        struct redisReply *rep = must(op_redis_next_reply(&r));
        snprintf(val, sizeof(val), "v%d", s);
        assert_string_equal(op_reply_str(rep, NULL), val);
        op_reply_free(rep);
    }
    /* a transaction: MULTI goes where its first command goes */
    assert_int_equal(op_redis_appendf(&r, "MULTI"), 0);
    assert_int_equal(op_redis_appendf(&r, "SET t:{7} a"), 0);
    assert_int_equal(op_redis_appendf(&r, "APPEND t:{7} b"), 0);
    assert_int_equal(op_redis_appendf(&r, "EXEC"), 0);
    for (int i = 0; i < 3; i++)
        ok(op_redis_next_reply(&r));
    struct redisReply *ex = must(op_redis_next_reply(&r));
    assert_int_equal(op_reply_count(ex), 2);
    assert_int_equal(op_reply_int(op_reply_at(ex, 1)), 2);
    op_reply_free(ex);
    /* a script, loaded on every primary, run on keys of each */
    struct redisReply *sha =
        must(op_redis_cmdf(&r, "SCRIPT LOAD %s", "return redis.call('GET', KEYS[1])"));
    char h[64];
    snprintf(h, sizeof(h), "%s", op_reply_str(sha, NULL));
    op_reply_free(sha);
    for (int s = 0; s < 16; s++) {
        snprintf(key, sizeof(key), "t:{%d}", s);
        struct redisReply *rep = must(op_redis_cmdf(&r, "EVALSHA %s 1 %s", h, key));
        assert_int_equal(op_reply_type(rep), OP_REPLY_STRING);
        op_reply_free(rep);
    }
    /* WAIT after writes on every primary: the smallest count, each has one replica */
    for (int s = 0; s < 16; s++)
        assert_int_equal(op_redis_appendf(&r, "INCR t:n:{%d}", s), 0);
    assert_int_equal(op_redis_appendf(&r, "WAIT 1 5000"), 0);
    for (int s = 0; s < 16; s++)
        ok(op_redis_next_reply(&r));
    struct redisReply *w = must(op_redis_next_reply(&r));
    assert_int_equal(op_reply_int(w), 1);
    op_reply_free(w);
    /* WATCH on one node, UNWATCH reaches it */
    ok(op_redis_cmdf(&r, "WATCH t:{3}"));
    ok(op_redis_cmdf(&r, "UNWATCH"));
    /* a command whose keys span slots is refused by the cluster, not split */
    struct redisReply *cross = op_redis_cmdf(&r, "MGET t:{1} t:{2}");
    assert_true(op_reply_is_error(cross, "CROSSSLOT"));
    op_reply_free(cross);
}

struct adder {
    int delay_ms;
};

/* Adds one entry to t:s:{9} after delay_ms, on a handle of its own. */
static void *add_later(void *arg)
{
    const struct adder *a = arg;
    struct timespec ts = {0, a->delay_ms * 1000000L};
    nanosleep(&ts, NULL);
    struct op_redis o;
    if (op_redis_init(&o, url, 2000) == 0 && op_redis_connect(&o) == 0)
        op_reply_free(op_redis_cmdf(&o, "XADD t:s:{9} * late 1"));
    op_redis_release(&o);
    return NULL;
}

static void test_split_reads(void **state)
{
    (void)state;
    const char *argv[9 + 32];
    char keys[16][24];
    for (int s = 0; s < 16; s++) {
        snprintf(keys[s], sizeof(keys[s]), "t:s:{%d}", s);
        ok(op_redis_cmdf(&r, "XGROUP CREATE %s g $ MKSTREAM", keys[s]));
        ok(op_redis_cmdf(&r, "XADD %s * n %d", keys[s], s));
    }
    int n = 0;
    argv[n++] = "XREADGROUP", argv[n++] = "GROUP", argv[n++] = "g", argv[n++] = "c";
    argv[n++] = "COUNT", argv[n++] = "10", argv[n++] = "BLOCK", argv[n++] = "100";
    argv[n++] = "STREAMS";
    for (int s = 0; s < 16; s++)
        argv[n + s] = keys[s], argv[n + 16 + s] = ">";
    n += 32;
    struct redisReply *rep = must(op_redis_cmd(&r, n, argv, NULL));
    assert_int_equal(op_reply_count(rep), 16); /* one [key, entries] per stream, merged */
    int seen[16] = {0};
    for (size_t i = 0; i < 16; i++) {
        const char *k = op_reply_str(op_reply_at(op_reply_at(rep, i), 0), NULL);
        for (int s = 0; s < 16; s++)
            seen[s] += strcmp(k, keys[s]) == 0;
        assert_int_equal(op_reply_count(op_reply_at(op_reply_at(rep, i), 1)), 1);
    }
    for (int s = 0; s < 16; s++)
        assert_int_equal(seen[s], 1);
    op_reply_free(rep);
    /* nothing new: nil after the BLOCK */
    rep = must(op_redis_cmd(&r, n, argv, NULL));
    assert_int_equal(op_reply_type(rep), OP_REPLY_NIL);
    op_reply_free(rep);
    /* an entry added while the read waits is returned */
    argv[7] = "10000";
    struct adder a = {200};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, add_later, &a), 0);
    rep = must(op_redis_cmd(&r, n, argv, NULL));
    pthread_join(t, NULL);
    assert_int_equal(op_reply_count(rep), 1);
    assert_string_equal(op_reply_str(op_reply_at(op_reply_at(rep, 0), 0), NULL), "t:s:{9}");
    op_reply_free(rep);
}

/* Moves the slot of key from its owner to another primary, key by key,
 * leaving it half done (MIGRATING/IMPORTING with the given keys moved)
 * when finish is 0. Returns the destination port. */
static int move_slot(const char *key, const char *const *keys, int nkeys, int finish, int *from)
{
    unsigned slot = op_cluster_slot(key, strlen(key));
    int src = owner_port(key), dst = other_primary(src);
    char sid[64], did[64];
    node_id(src, sid, sizeof(sid));
    node_id(dst, did, sizeof(did));
    assert_true(src > 0 && dst > 0 && sid[0] && did[0]);
    assert_int_equal(sh(NULL, 0, "redis-cli -p %d CLUSTER SETSLOT %u IMPORTING %s", dst, slot, sid),
                     0);
    assert_int_equal(sh(NULL, 0, "redis-cli -p %d CLUSTER SETSLOT %u MIGRATING %s", src, slot, did),
                     0);
    for (int i = 0; i < nkeys; i++)
        assert_int_equal(
            sh(NULL, 0, "redis-cli -p %d MIGRATE 127.0.0.1 %d '%s' 0 5000", src, dst, keys[i]), 0);
    if (finish) {
        for (int p = first_port; p < first_port + 6; p++)
            sh(NULL, 0, "redis-cli -p %d CLUSTER SETSLOT %u NODE %s", p, slot, did);
    }
    *from = src;
    return dst;
}

static void test_moved_and_ask(void **state)
{
    (void)state;
    ok(op_redis_cmdf(&r, "SET t:{m} before"));
    const char *mk[] = {"t:{m}"};
    int src;
    move_slot("t:{m}", mk, 1, 1, &src);
    uint64_t before = r.redirects;
    struct redisReply *rep = must(op_redis_cmdf(&r, "GET t:{m}"));
    assert_string_equal(op_reply_str(rep, NULL), "before");
    op_reply_free(rep);
    assert_true(r.redirects > before); /* MOVED, followed */

    /* half migrated: one key moved, the slot still the source's */
    ok(op_redis_cmdf(&r, "SET t:{a}:1 one"));
    ok(op_redis_cmdf(&r, "SET t:{a}:2 two"));
    const char *ak[] = {"t:{a}:1"};
    int dst = move_slot("t:{a}", ak, 1, 0, &src);
    before = r.redirects;
    rep = must(op_redis_cmdf(&r, "GET t:{a}:1")); /* moved: ASK */
    assert_string_equal(op_reply_str(rep, NULL), "one");
    op_reply_free(rep);
    assert_true(r.redirects > before);
    rep = must(op_redis_cmdf(&r, "GET t:{a}:2")); /* not moved yet: served by the source */
    assert_string_equal(op_reply_str(rep, NULL), "two");
    op_reply_free(rep);
    ok(op_redis_cmdf(&r, "SET t:{a}:3 three")); /* a new key: created on the destination */
    /* finish the migration */
    assert_int_equal(
        sh(NULL, 0, "redis-cli -p %d MIGRATE 127.0.0.1 %d '' 0 5000 KEYS t:{a}:2", src, dst), 0);
    char did[64];
    node_id(dst, did, sizeof(did));
    unsigned slot = op_cluster_slot("t:{a}", 5);
    for (int p = first_port; p < first_port + 6; p++)
        sh(NULL, 0, "redis-cli -p %d CLUSTER SETSLOT %u NODE %s", p, slot, did);
    for (int i = 1; i <= 3; i++) {
        rep = must(op_redis_cmdf(&r, "GET t:{a}:%d", i));
        assert_int_equal(op_reply_type(rep), OP_REPLY_STRING);
        op_reply_free(rep);
    }
    char out[32];
    sh(out, sizeof(out), "redis-cli -p %d DBSIZE", src);
    (void)out;
}

static void test_failover(void **state)
{
    (void)state;
    ok(op_redis_cmdf(&r, "SET t:{f} kept"));
    struct redisReply *w = must(op_redis_cmdf(&r, "WAIT 1 5000"));
    assert_int_equal(op_reply_int(w), 1);
    op_reply_free(w);
    int port = owner_port("t:{f}");
    char pid[32];
    sh(pid, sizeof(pid), "redis-cli -p %d INFO server | awk -F: '/^process_id/{print $2}'", port);
    assert_true((int)strtol(pid, NULL, 10) > 0);
    assert_int_equal(sh(NULL, 0, "kill -9 %s", pid), 0);
    /* the handle fails, then finds the promoted replica */
    struct redisReply *rep = NULL;
    int failures = 0;
    for (int i = 0; i < 600 && !rep; i++) {
        if (op_redis_ensure(&r) == 0) {
            rep = op_redis_cmdf(&r, "GET t:{f}");
            if (rep && op_reply_type(rep) == OP_REPLY_ERROR) {
                op_reply_free(rep); /* CLUSTERDOWN while the replica takes over */
                rep = NULL;
            }
        }
        failures += !rep;
        if (!rep)
            usleep(50000);
    }
    assert_non_null(rep);
    assert_true(failures > 0);
    assert_string_equal(op_reply_str(rep, NULL), "kept");
    op_reply_free(rep);
    assert_true(owner_port("t:{f}") != port);
}

static int setup(void **state)
{
    (void)state;
    const char *given = getenv("OP_CLUSTER_URL");
    if (given) {
        snprintf(url, sizeof(url), "%s", given);
        first_port = (int)strtol(strrchr(given, ':') + 1, NULL, 10);
    } else {
        const char *root = getenv("OP_ROOT"), *stack = getenv("OP_STACK_DIR");
        if (!root || !stack) {
            fprintf(stderr, "test_cluster_client: needs OP_ROOT and OP_STACK_DIR (run it through "
                            "tests/run-integration.sh) or OP_CLUSTER_URL\n");
            return -1;
        }
        snprintf(dir, sizeof(dir), "%s/cluster-client", stack);
        char port[16];
        /* (popen runs /bin/sh, which cannot source the bash ops/lib.sh) */
        sh(port, sizeof(port), "'%s/ops/redis-cluster.sh' free-port", root);
        first_port = (int)strtol(port, NULL, 10);
        if (first_port <= 0 || sh(NULL, 0, "'%s/ops/redis-cluster.sh' start '%s' %d >&2", root, dir,
                                  first_port) != 0) {
            fprintf(stderr, "test_cluster_client: cannot start a cluster in '%s'\n", dir);
            return -1;
        }
        started = 1;
        snprintf(url, sizeof(url), "redis://127.0.0.1:%d", first_port);
    }
    if (op_redis_init(&r, url, 5000) != 0 || op_redis_connect(&r) != 0) {
        fprintf(stderr, "test_cluster_client: %s\n", r.errstr);
        return -1;
    }
    if (!r.cl) {
        fprintf(stderr, "test_cluster_client: '%s' is not a cluster node\n", url);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    op_redis_release(&r);
    if (started)
        sh(NULL, 0, "'%s/ops/redis-cluster.sh' stop '%s' %d >&2", getenv("OP_ROOT"), dir,
           first_port);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routing),
        cmocka_unit_test(test_split_reads),
        cmocka_unit_test(test_moved_and_ask),
        cmocka_unit_test(test_failover),
    };
    return cmocka_run_group_tests_name("cluster_client", tests, setup, teardown);
}

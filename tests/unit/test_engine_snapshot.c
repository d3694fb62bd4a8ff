/* Engine snapshot/restore: continuing from a restore equals the uninterrupted run; bad buffers fail
 * cleanly. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>

#include "matcher/engine/engine.h"
#include "ops/tools/refengine.h"

#define SNAP_CLOSED_MAX 2000
/* Open orders per account and symbol: reached now and then by the generator. */
#define SNAP_MAX_OPEN 12

/* Reports of every kind and reason fed so far (to show what a test exercised). */
static uint64_t fed_kinds[OP_REPORT_KIND_MAX + 1], fed_reasons[256];

/* Feeds the same n generated inputs to a and b; their reports must be byte-identical. */
static void feed_both(struct gen *g, struct ref *r, struct eng *a, struct eng *b, long n,
                      struct eng_reports *ra, struct eng_reports *rb)
{
    static struct op_report scratch[4096];
    for (long i = 0; i < n; i++) {
        struct op_order_msg in;
        gen_next(g, r, &in);
        ref_apply(r, &in, scratch, 4096); /* only steers the generator */
        eng_reports_reset(ra);
        eng_reports_reset(rb);
        eng_apply(a, &in, ra);
        eng_apply(b, &in, rb);
        assert_int_equal(ra->len, rb->len);
        assert_memory_equal(ra->v, rb->v, ra->len * sizeof(*ra->v));
        for (size_t k = 0; k < ra->len; k++) {
            fed_kinds[ra->v[k].kind <= OP_REPORT_KIND_MAX ? ra->v[k].kind : 0]++;
            fed_reasons[ra->v[k].reason]++;
        }
    }
}

/* Round trip: restore(snapshot(e)); checks hash and byte-identical re-snapshot. */
static struct eng *round_trip(const struct eng *e)
{
    char *buf = NULL, *buf2 = NULL;
    size_t len = 0, len2 = 0;
    char err[256] = "";
    assert_int_equal(eng_snapshot(e, &buf, &len), 0);
    struct eng *c = eng_restore(buf, len, err, sizeof(err));
    if (c == NULL)
        fail_msg("restore failed: %s", err);
    assert_int_equal(eng_hash(c), eng_hash(e));
    assert_int_equal(eng_snapshot(c, &buf2, &len2), 0);
    assert_int_equal(len, len2);
    assert_memory_equal(buf, buf2, len);
    assert_int_equal(eng_check(c, err, sizeof(err)), 0);
    free(buf);
    free(buf2);
    return c;
}

/* Snapshot at random points, restore into a new engine, continue: identical
 * reports and hash to the uninterrupted run. */
static void test_snapshot_continue(void **state)
{
    (void)state;
    struct gen g;
    gen_init(&g, 42);
    g.features = 2; /* stp modes, replaces, cancel-alls, the limit; GTD, stops, ticks, dead-man */
    uint64_t rng = 99;
    struct ref *r = ref_new(9, SNAP_CLOSED_MAX);
    struct eng *a = eng_new(9, SNAP_CLOSED_MAX); /* the uninterrupted run */
    struct eng *b = eng_new(9, SNAP_CLOSED_MAX); /* restored again and again */
    r->max_open = SNAP_MAX_OPEN;
    eng_set_max_open(a, SNAP_MAX_OPEN);
    eng_set_max_open(b, SNAP_MAX_OPEN);
    struct eng_reports ra, rb;
    eng_reports_init(&ra);
    eng_reports_init(&rb);
    int restores = 0;
    for (int round = 0; round < 60; round++) {
        feed_both(&g, r, a, b, 1 + (long)gen_below(&rng, 5000), &ra, &rb);
        assert_int_equal(eng_hash(a), eng_hash(b));
        struct eng *c = round_trip(b);
        eng_free(b);
        b = c;
        eng_set_max_open(b, SNAP_MAX_OPEN); /* configuration, not state */
        restores++;
    }
    feed_both(&g, r, a, b, 5000, &ra, &rb);
    assert_int_equal(eng_hash(a), eng_hash(b));
    assert_true(eng_open_orders(a) >
                20); /* cancel-alls keep it well below the generator's target */
    assert_int_equal(a->closed_len, SNAP_CLOSED_MAX); /* the ring wrapped */
    print_message("%d restores, %" PRIu64 " open orders, %" PRIu64 " reports (triggered %" PRIu64
                  ", expired %" PRIu64 ", dead-man cancels %" PRIu64 ", ticks %" PRIu64
                  ", self-trade %" PRIu64 ", replaced %" PRIu64 ")\n",
                  restores, eng_open_orders(a), a->seq, fed_kinds[OP_REPORT_TRIGGERED],
                  fed_reasons[OP_REASON_EXPIRED], fed_reasons[OP_REASON_DEAD_MAN],
                  fed_kinds[OP_REPORT_TICK], fed_reasons[OP_REASON_SELF_TRADE],
                  fed_kinds[OP_REPORT_REPLACED]);
    /* the flow must have exercised what the snapshots have to carry */
    assert_true(fed_kinds[OP_REPORT_TRIGGERED] > 100 && fed_reasons[OP_REASON_EXPIRED] > 100 &&
                fed_reasons[OP_REASON_DEAD_MAN] > 10 && fed_reasons[OP_REASON_SELF_TRADE] > 100);
    eng_reports_release(&ra);
    eng_reports_release(&rb);
    ref_free(r);
    eng_free(a);
    eng_free(b);
}

static void test_snapshot_empty(void **state)
{
    (void)state;
    struct eng *e = eng_new(1023, 0);
    struct eng *c = round_trip(e);
    assert_int_equal(c->shard, 1023);
    assert_int_equal(c->closed_max, ENG_CLOSED_DEFAULT);
    eng_free(c);
    eng_free(e);
}

/* A small engine with open orders on both sides of two books and closed ids. */
static struct eng *small_engine(void)
{
    struct eng *e = eng_new(2, 64);
    struct gen g;
    gen_init(&g, 7);
    g.features = 1;
    struct ref *r = ref_new(2, 64);
    struct eng_reports out;
    eng_reports_init(&out);
    static struct op_report scratch[4096];
    for (int i = 0; i < 300; i++) {
        struct op_order_msg in;
        gen_next(&g, r, &in);
        ref_apply(r, &in, scratch, 4096);
        eng_apply(e, &in, &out);
    }
    assert_true(eng_open_orders(e) > 10);
    eng_reports_release(&out);
    ref_free(r);
    return e;
}

static void test_snapshot_truncated(void **state)
{
    (void)state;
    struct eng *e = small_engine();
    char *buf;
    size_t len;
    assert_int_equal(eng_snapshot(e, &buf, &len), 0);
    char err[256];
    for (size_t n = 0; n < len; n++) {
        /* a copy of exactly n bytes, so ASan catches any read beyond them */
        char *cut = malloc(n ? n : 1);
        memcpy(cut, buf, n);
        err[0] = '\0';
        struct eng *c = eng_restore(cut, n, err, sizeof(err));
        assert_null(c);
        assert_true(err[0] != '\0');
        free(cut);
    }
    char *longer = malloc(len + 1);
    memcpy(longer, buf, len);
    longer[len] = 0;
    assert_null(eng_restore(longer, len + 1, err, sizeof(err))); /* trailing byte */
    assert_null(eng_restore(NULL, 0, err, sizeof(err)));
    free(longer);
    free(buf);
    eng_free(e);
}

/* Every single-byte change is detected (FNV-1a changes with any one byte). */
static void test_snapshot_corrupt(void **state)
{
    (void)state;
    struct eng *e = small_engine();
    char *buf;
    size_t len;
    assert_int_equal(eng_snapshot(e, &buf, &len), 0);
    char err[256];
    static const unsigned char flips[] = {0x01, 0x80, 0xff};
    for (size_t i = 0; i < len; i++) {
        for (size_t f = 0; f < sizeof(flips); f++) {
            buf[i] = (char)(buf[i] ^ flips[f]);
            struct eng *c = eng_restore(buf, len, err, sizeof(err));
            if (c != NULL)
                fail_msg("byte %zu ^ 0x%02x restored", i, flips[f]);
            buf[i] = (char)(buf[i] ^ flips[f]);
        }
    }
    struct eng *c = eng_restore(buf, len, err, sizeof(err)); /* intact again */
    assert_non_null(c);
    eng_free(c);
    free(buf);
    eng_free(e);
}

/* Offset of the body within a snapshot: [fixarray 4, str16 magic, version, 0xcf hash, bin]. */
static size_t body_offset(const unsigned char *b, size_t *body_len)
{
    size_t at = 1 + 17 + 1 + 9;
    switch (b[at]) {
    case 0xc4:
        *body_len = b[at + 1];
        return at + 2;
    case 0xc5:
        *body_len = (size_t)b[at + 1] << 8 | b[at + 2];
        return at + 3;
    default:
        assert_int_equal(b[at], 0xc6);
        *body_len =
            (size_t)b[at + 1] << 24 | (size_t)b[at + 2] << 16 | (size_t)b[at + 3] << 8 | b[at + 4];
        return at + 5;
    }
}

/* Forged snapshots: the body mutated and the checksum fixed up. Restore must
 * either refuse it or give an engine whose invariants hold and that keeps
 * working; it must never crash or leak (ASan). */
static void test_snapshot_forged(void **state)
{
    (void)state;
    struct eng *e = small_engine();
    char *orig;
    size_t len;
    assert_int_equal(eng_snapshot(e, &orig, &len), 0);
    size_t blen;
    size_t boff = body_offset((const unsigned char *)orig, &blen);
    assert_int_equal(boff + blen, len);
    uint64_t rng = 5;
    char *buf = malloc(len);
    int accepted = 0;
    char err[256];
    struct eng_reports out;
    eng_reports_init(&out);
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(buf, orig, len);
        int nmut = 1 + (int)gen_below(&rng, 3);
        for (int k = 0; k < nmut; k++) {
            size_t at = boff + gen_below(&rng, blen);
            static const unsigned char vals[] = {0x00, 0x01, 0x7f, 0x80, 0xc0, 0xcf, 0xd3,
                                                 0xff, 0x90, 0xa0, 0xc2, 0xc3, 0x93, 0x99};
            buf[at] = gen_below(&rng, 2) ? (char)vals[gen_below(&rng, sizeof(vals))]
                                         : (char)(buf[at] ^ (1 << gen_below(&rng, 8)));
        }
        uint64_t h = eng_fnv1a64(buf + boff, blen);
        for (int i = 0; i < 8; i++)
            buf[20 + i] = (char)(h >> (56 - 8 * i));
        struct eng *c = eng_restore(buf, len, err, sizeof(err));
        if (c == NULL)
            continue;
        accepted++;
        assert_int_equal(eng_check(c, err, sizeof(err)), 0);
        assert_int_equal(eng_hash(c), h);
        struct op_order_msg in = {.kind = OP_MSG_NEW,
                                  .order_id = 1u << 30,
                                  .side = OP_SIDE_BUY,
                                  .type = OP_TYPE_MARKET,
                                  .tif = OP_TIF_IOC,
                                  .qty = 1000000,
                                  .symbol = "AAPL",
                                  .account = "x"};
        eng_reports_reset(&out);
        eng_apply(c, &in, &out);
        assert_int_equal(eng_check(c, err, sizeof(err)), 0);
        eng_free(c);
    }
    print_message("forged snapshots accepted as valid states: %d of 20000\n", accepted);
    eng_reports_release(&out);
    free(buf);
    free(orig);
    eng_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_continue),  cmocka_unit_test(test_snapshot_empty),
        cmocka_unit_test(test_snapshot_truncated), cmocka_unit_test(test_snapshot_corrupt),
        cmocka_unit_test(test_snapshot_forged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Scenario tables for time and triggers (issue 15): GTD expiry, the dead-man switch, stops. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "matcher/engine/engine.h"

#define B OP_SIDE_BUY
#define S OP_SIDE_SELL
#define MS UINT64_C(1000000) /* ns */

/* Inputs; every one carries its own ts (engine time is the largest so far). */
#define LIM(id_, acct, side_, px, q, ts_)                                                          \
    {                                                                                              \
        .kind = OP_MSG_NEW, .order_id = (id_), .side = (side_), .type = OP_TYPE_LIMIT,             \
        .tif = OP_TIF_GTC, .price = (px), .qty = (q), .symbol = "AAPL", .account = (acct),         \
        .ts_ns = (ts_)                                                                             \
    }
#define GTD(id_, acct, side_, px, q, exp_, ts_)                                                    \
    {                                                                                              \
        .kind = OP_MSG_NEW, .order_id = (id_), .side = (side_), .type = OP_TYPE_LIMIT,             \
        .tif = OP_TIF_GTD, .price = (px), .qty = (q), .expire_ns = (exp_), .symbol = "AAPL",       \
        .account = (acct), .ts_ns = (ts_)                                                          \
    }
#define STOPM(id_, acct, side_, stop, q, ts_)                                                      \
    {                                                                                              \
        .kind = OP_MSG_NEW, .order_id = (id_), .side = (side_), .type = OP_TYPE_STOP_MARKET,       \
        .tif = OP_TIF_IOC, .stop_price = (stop), .qty = (q), .symbol = "AAPL", .account = (acct),  \
        .ts_ns = (ts_)                                                                             \
    }
#define STOPL(id_, acct, side_, px, stop, q, ts_)                                                  \
    {                                                                                              \
        .kind = OP_MSG_NEW, .order_id = (id_), .side = (side_), .type = OP_TYPE_STOP_LIMIT,        \
        .tif = OP_TIF_GTC, .price = (px), .stop_price = (stop), .qty = (q), .symbol = "AAPL",      \
        .account = (acct), .ts_ns = (ts_)                                                          \
    }
#define TICK(ts_)                                                                                  \
    {                                                                                              \
        .kind = OP_MSG_TICK, .ts_ns = (ts_)                                                        \
    }
#define DMS(acct, ms, ts_)                                                                         \
    {                                                                                              \
        .kind = OP_MSG_CANCEL_ALL_AFTER, .timeout_ms = (ms), .account = (acct), .ts_ns = (ts_)     \
    }
#define CXL(id_, acct, ts_)                                                                        \
    {                                                                                              \
        .kind = OP_MSG_CANCEL, .order_id = (id_), .symbol = "AAPL", .account = (acct),             \
        .ts_ns = (ts_)                                                                             \
    }
#define AMD(id_, acct, q, ts_)                                                                     \
    {                                                                                              \
        .kind = OP_MSG_AMEND, .order_id = (id_), .qty = (q), .symbol = "AAPL", .account = (acct),  \
        .ts_ns = (ts_)                                                                             \
    }

/* An expected report: kind, order id, reason, status (maker id for a trade). */
struct exp {
    int kind;
    uint64_t id;
    int reason;
    int status;
    uint64_t maker;
};
#define E(k, id_, why, st)                                                                         \
    {                                                                                              \
        OP_REPORT_##k, id_, why, st, 0                                                             \
    }
#define TRD(id_, mk, st)                                                                           \
    {                                                                                              \
        OP_REPORT_TRADE, id_, 0, st, mk                                                            \
    }
#define NW OP_STATUS_NEW
#define PF OP_STATUS_PARTIALLY_FILLED
#define FL OP_STATUS_FILLED
#define CX OP_STATUS_CANCELLED
#define RJ OP_STATUS_REJECTED
#define PT OP_STATUS_PENDING_TRIGGER

#define MAX_STEPS 12
#define MAX_REPS 8

struct step {
    struct op_order_msg in;
    struct exp want[MAX_REPS]; /* ends at kind 0 */
};

struct lv {
    int64_t price, qty;
};

struct scenario {
    const char *name;
    struct step steps[MAX_STEPS]; /* ends at kind 0 */
    struct lv bids[4], asks[4];   /* the book after, best first; ends at price 0 */
    uint32_t max_open;
};

static const struct scenario scenarios[] = {
    {"GTD: expires exactly when engine time reaches expire_ns, not one ns before",
     {{GTD(1, "alice", B, 100, 5, 2000, 1000), {E(ACCEPTED, 1, 0, NW)}},
      {TICK(1999), {E(TICK, 0, 0, 0)}},
      {TICK(2000), {E(CANCELLED, 1, OP_REASON_EXPIRED, CX), E(TICK, 0, 0, 0)}}},
     {{0}},
     {{0}}},
    {"GTD: the expiry comes before the input that reaches it (no trade with it)",
     {{GTD(1, "alice", S, 100, 5, 1500, 1000), {E(ACCEPTED, 1, 0, NW)}},
      {LIM(2, "bob", B, 100, 5, 1500),
       {E(CANCELLED, 1, OP_REASON_EXPIRED, CX), E(ACCEPTED, 2, 0, NW)}}},
     {{100, 5}},
     {{0}}},
    {"GTD: already reached on arrival, it trades and its rest is cancelled, not rested",
     {{LIM(1, "bob", S, 100, 2, 1000), {E(ACCEPTED, 1, 0, NW)}},
      {GTD(2, "alice", B, 100, 5, 900, 1000),
       {E(ACCEPTED, 2, 0, NW), TRD(2, 1, PF), E(CANCELLED, 2, OP_REASON_EXPIRED, CX)}}},
     {{0}},
     {{0}}},
    {"dead-man: armed, renewed, fires once time passes the deadline, then disarmed",
     {{LIM(1, "alice", B, 90, 1, 1000), {E(ACCEPTED, 1, 0, NW)}},
      {STOPL(2, "alice", S, 80, 85, 1, 1000), {E(ACCEPTED, 2, 0, PT)}},
      {LIM(3, "bob", B, 91, 1, 1000), {E(ACCEPTED, 3, 0, NW)}},
      {DMS("alice", 1000, 1000), {E(DEAD_MAN, 0, 0, 0)}},
      {DMS("alice", 1000, 1000 + 500 * MS), {E(DEAD_MAN, 0, 0, 0)}},
      {TICK(1001 + 1000 * MS), {E(TICK, 0, 0, 0)}},
      {TICK(1000 + 1500 * MS), {E(TICK, 0, 0, 0)}},
      {TICK(1001 + 1500 * MS),
       {E(CANCELLED, 1, OP_REASON_DEAD_MAN, CX), E(CANCELLED, 2, OP_REASON_DEAD_MAN, CX),
        E(CANCEL_ALL_DONE, 0, OP_REASON_DEAD_MAN, 0), E(TICK, 0, 0, 0)}},
      {TICK(1000 + 9000 * MS), {E(TICK, 0, 0, 0)}},
      {DMS("alice", 1000, 1000 + 9000 * MS), {E(DEAD_MAN, 0, 0, 0)}},
      {DMS("alice", 0, 1000 + 9500 * MS), {E(DEAD_MAN, 0, 0, 0)}},
      {TICK(1000 + 99000 * MS), {E(TICK, 0, 0, 0)}}},
     {{91, 1}},
     {{0}}},
    {"stops: a cascade through several levels, in one input",
     {{LIM(1, "bob", S, 101, 1, 1000), {E(ACCEPTED, 1, 0, NW)}},
      {LIM(2, "bob", S, 102, 1, 1000), {E(ACCEPTED, 2, 0, NW)}},
      {LIM(3, "bob", S, 103, 5, 1000), {E(ACCEPTED, 3, 0, NW)}},
      {STOPM(5, "dave", B, 102, 1, 1000), {E(ACCEPTED, 5, 0, PT)}},
      {STOPM(4, "carol", B, 101, 1, 1000), {E(ACCEPTED, 4, 0, PT)}},
      {STOPM(6, "erin", B, 110, 1, 1000), {E(ACCEPTED, 6, 0, PT)}},
      {LIM(7, "alice", B, 101, 1, 1000),
       {E(ACCEPTED, 7, 0, NW), TRD(7, 1, FL), E(TRIGGERED, 4, 0, NW), TRD(4, 2, FL),
        E(TRIGGERED, 5, 0, NW), TRD(5, 3, FL)}}},
     {{0}},
     {{103, 4}}},
    {"stops: triggered by the stop's own account's trade; a stop-limit triggers and rests",
     {{STOPL(1, "alice", S, 95, 100, 2, 1000), {E(ACCEPTED, 1, 0, PT)}},
      {LIM(2, "bob", B, 100, 1, 1000), {E(ACCEPTED, 2, 0, NW)}},
      {LIM(3, "alice", S, 100, 1, 1000),
       {E(ACCEPTED, 3, 0, NW), TRD(3, 2, FL), E(TRIGGERED, 1, 0, NW)}}},
     {{0}},
     {{95, 2}}},
    {"stops: same trigger price enter by order id; sells trigger at or below",
     {{LIM(1, "bob", B, 99, 3, 1000), {E(ACCEPTED, 1, 0, NW)}},
      {STOPM(9, "carol", S, 100, 1, 1000), {E(ACCEPTED, 9, 0, PT)}},
      {STOPM(8, "dave", S, 100, 1, 1000), {E(ACCEPTED, 8, 0, PT)}},
      {STOPM(7, "erin", S, 98, 1, 1000), {E(ACCEPTED, 7, 0, PT)}},
      {LIM(2, "bob", S, 100, 1, 1000), {E(ACCEPTED, 2, 0, NW)}},
      {LIM(3, "alice", B, 100, 1, 1000),
       {E(ACCEPTED, 3, 0, NW), TRD(3, 2, FL), E(TRIGGERED, 8, 0, NW), TRD(8, 1, FL),
        E(TRIGGERED, 9, 0, NW), TRD(9, 1, FL)}}},
     {{99, 1}},
     {{0}}},
    {"stops: amended and cancelled while pending; count toward the open-order limit",
     {{STOPM(1, "alice", B, 105, 3, 1000), {E(ACCEPTED, 1, 0, PT)}},
      {LIM(2, "alice", B, 90, 1, 1000), {E(REJECTED, 2, OP_REASON_TOO_MANY_OPEN_ORDERS, RJ)}},
      {AMD(1, "alice", 2, 1000), {E(AMENDED, 1, 0, PT)}},
      {CXL(1, "alice", 1000), {E(CANCELLED, 1, OP_REASON_USER_CANCEL, CX)}},
      {LIM(3, "alice", B, 90, 1, 1000), {E(ACCEPTED, 3, 0, NW)}}},
     {{90, 1}},
     {{0}},
     1},
    {"validation of the new fields",
     {{GTD(1, "a", B, 100, 1, 0, 1000), {E(REJECTED, 1, OP_REASON_BAD_EXPIRY, RJ)}},
      {STOPM(2, "a", B, 0, 1, 1000), {E(REJECTED, 2, OP_REASON_BAD_STOP, RJ)}},
      {STOPL(3, "a", B, 0, 100, 1, 1000), {E(REJECTED, 3, OP_REASON_BAD_PRICE, RJ)}},
      {DMS("a", ENG_DEAD_MAN_MAX_MS + 1, 1000), {E(REJECTED, 0, OP_REASON_BAD_TIMEOUT, 0)}},
      {DMS("", 1000, 1000), {E(REJECTED, 0, OP_REASON_BAD_ACCOUNT, 0)}},
      {TICK(0), {E(REJECTED, 0, OP_REASON_BAD_TIME, 0)}}},
     {{0}},
     {{0}}},
};

static void check_side(const struct eng *e, const char *name, int side, const struct lv *want)
{
    struct book_depth d[5];
    size_t n = eng_depth(e, "AAPL", side, d, 5), nw = 0;
    while (nw < 4 && want[nw].price != 0)
        nw++;
    if (n != nw)
        fail_msg("%s: %s side has %zu levels, want %zu", name, op_side_name(side), n, nw);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(d[i].price, want[i].price);
        assert_int_equal(d[i].qty, want[i].qty);
    }
}

/* Runs sc on e from its start; when snap_at >= 0, the engine is replaced by
 * restore(snapshot()) before step snap_at (a recovery replay). */
static void run_scenario(const struct scenario *sc, int snap_at)
{
    struct eng *e = eng_new(5, 0);
    eng_set_max_open(e, sc->max_open);
    struct eng_reports out;
    eng_reports_init(&out);
    char err[200];
    for (int s = 0; s < MAX_STEPS && sc->steps[s].in.kind != 0; s++) {
        if (s == snap_at) {
            char *buf;
            size_t len;
            assert_int_equal(eng_snapshot(e, &buf, &len), 0);
            struct eng *c = eng_restore(buf, len, err, sizeof(err));
            if (c == NULL)
                fail_msg("%s: restore before step %d: %s", sc->name, s, err);
            assert_int_equal(eng_hash(c), eng_hash(e));
            free(buf);
            eng_free(e);
            e = c;
            eng_set_max_open(e, sc->max_open);
        }
        eng_reports_reset(&out);
        size_t n = eng_apply(e, &sc->steps[s].in, &out), nw = 0;
        while (nw < MAX_REPS && sc->steps[s].want[nw].kind != 0)
            nw++;
        for (size_t i = 0; i < n || i < nw; i++) {
            const struct exp *w = i < nw ? &sc->steps[s].want[i] : NULL;
            const struct op_report *r = i < n ? &out.v[i] : NULL;
            if (w && r && r->kind == w->kind && r->order_id == w->id && r->reason == w->reason &&
                r->status == w->status && r->maker_order_id == w->maker)
                continue;
            fail_msg("%s, step %d, report %zu: got %s id=%" PRIu64 " reason=%s status=%s "
                     "maker=%" PRIu64 ", want %s id=%" PRIu64 " reason=%s status=%s",
                     sc->name, s, i, r ? op_report_kind_name(r->kind) : "(none)",
                     r ? r->order_id : 0, r ? op_reason_name(r->reason) : "",
                     r ? op_status_name(r->status) : "", r ? r->maker_order_id : 0,
                     w ? op_report_kind_name(w->kind) : "(none)", w ? w->id : 0,
                     w ? op_reason_name(w->reason) : "", w ? op_status_name(w->status) : "");
        }
        if (eng_check(e, err, sizeof(err)) != 0)
            fail_msg("%s, step %d: %s", sc->name, s, err);
    }
    check_side(e, sc->name, OP_SIDE_BUY, sc->bids);
    check_side(e, sc->name, OP_SIDE_SELL, sc->asks);
    eng_reports_release(&out);
    eng_free(e);
}

static void test_scenarios(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
        print_message("scenario: %s\n", scenarios[i].name);
        run_scenario(&scenarios[i], -1);
    }
}

/* Every scenario again, with a snapshot + restore before each of its steps:
 * expiries, armed switches and stops survive a recovery and fire at the same
 * inputs (the same reports as the uninterrupted run, checked step by step). */
static void test_scenarios_across_restores(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
        for (int at = 0; at < MAX_STEPS && scenarios[i].steps[at].in.kind != 0; at++)
            run_scenario(&scenarios[i], at);
}

/* The dead-man switch across shards: ingest writes the arming to every
 * shard; each fires on its own engine time, cancelling only that shard's
 * orders of the account. */
static void test_dead_man_across_shards(void **state)
{
    (void)state;
    struct eng *sh[2] = {eng_new(0, 0), eng_new(1, 0)};
    struct eng_reports out;
    eng_reports_init(&out);
    const char *sym[2] = {"AAPL", "GOOG"};
    for (int k = 0; k < 2; k++) {
        struct op_order_msg a = LIM(10 + (uint64_t)k, "alice", B, 90, 1, 1000);
        struct op_order_msg b = LIM(20 + (uint64_t)k, "bob", B, 90, 1, 1000);
        snprintf(a.symbol, sizeof(a.symbol), "%s", sym[k]);
        snprintf(b.symbol, sizeof(b.symbol), "%s", sym[k]);
        struct op_order_msg arm = DMS("alice", 2000, 2000);
        eng_apply(sh[k], &a, &out);
        eng_apply(sh[k], &b, &out);
        eng_apply(sh[k], &arm, &out);
        assert_int_equal(eng_next_event_ns(sh[k]), 2000 + 2000 * MS + 1);
    }
    /* shard 0's time passes the deadline first (its own inputs), shard 1's later */
    struct op_order_msg t0 = TICK(2001 + 2000 * MS), t1 = TICK(1999 + 2000 * MS);
    eng_reports_reset(&out);
    eng_apply(sh[0], &t0, &out);
    assert_int_equal(out.len, 3); /* alice's AAPL order, done, tick */
    assert_int_equal(out.v[0].order_id, 10);
    assert_int_equal(out.v[0].reason, OP_REASON_DEAD_MAN);
    eng_reports_reset(&out);
    eng_apply(sh[1], &t1, &out);
    assert_int_equal(out.len, 1); /* not yet */
    t1.ts_ns = 2001 + 2000 * MS;
    eng_reports_reset(&out);
    eng_apply(sh[1], &t1, &out);
    assert_int_equal(out.len, 3);
    assert_int_equal(out.v[0].order_id, 11);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(eng_open_orders(sh[k]), 1); /* bob's */
        assert_int_equal(eng_next_event_ns(sh[k]), 0);
        eng_free(sh[k]);
    }
    eng_reports_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scenarios),
        cmocka_unit_test(test_scenarios_across_restores),
        cmocka_unit_test(test_dead_man_across_shards),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

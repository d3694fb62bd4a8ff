/* Scenario tables for the matching engine: input orders → expected reports and book. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "matcher/engine/engine.h"
#include "shared/shard.h"

/* --- table notation -------------------------------------------------------- */

#define B OP_SIDE_BUY
#define S OP_SIDE_SELL
#define LMT OP_TYPE_LIMIT
#define MKT OP_TYPE_MARKET
#define GTC OP_TIF_GTC
#define IOC OP_TIF_IOC
#define FOK OP_TIF_FOK

/* An input: NEW order (id, account, side, type, tif, price, qty, post_only). */
#define NEWO(id_, acct, side_, type_, tif_, px, q, po)                                             \
    {                                                                                              \
        .kind = OP_MSG_NEW, .order_id = (id_), .side = (side_), .type = (type_), .tif = (tif_),    \
        .price = (px), .qty = (q), .post_only = (po), .symbol = "AAPL", .account = (acct),         \
        .ts_ns = 1                                                                                 \
    }
#define LIM(id_, acct, side_, px, q) NEWO(id_, acct, side_, LMT, GTC, px, q, false)
/* A NEW order with a self-trade prevention mode (enum op_stp). */
#define NEWS(id_, acct, side_, type_, tif_, px, q, stp_)                                           \
    {                                                                                              \
        .kind = OP_MSG_NEW, .order_id = (id_), .side = (side_), .type = (type_), .tif = (tif_),    \
        .price = (px), .qty = (q), .stp = (stp_), .symbol = "AAPL", .account = (acct), .ts_ns = 1  \
    }
#define LIMS(id_, acct, side_, px, q, stp_) NEWS(id_, acct, side_, LMT, GTC, px, q, stp_)
#define CXL(id_, acct)                                                                             \
    {                                                                                              \
        .kind = OP_MSG_CANCEL, .order_id = (id_), .symbol = "AAPL", .account = (acct), .ts_ns = 1  \
    }
#define AMD(id_, acct, q)                                                                          \
    {                                                                                              \
        .kind = OP_MSG_AMEND, .order_id = (id_), .qty = (q), .symbol = "AAPL", .account = (acct),  \
        .ts_ns = 1                                                                                 \
    }
/* A replace: new qty (0 = same) and new price (0 = same). */
#define AMDP(id_, acct, q, px)                                                                     \
    {                                                                                              \
        .kind = OP_MSG_AMEND, .order_id = (id_), .qty = (q), .price = (px), .symbol = "AAPL",      \
        .account = (acct), .ts_ns = 1                                                              \
    }
#define CXA(acct)                                                                                  \
    {                                                                                              \
        .kind = OP_MSG_CANCEL_ALL, .symbol = "AAPL", .account = (acct), .ts_ns = 1                 \
    }

/* An expected report; fields left 0 in a TRADE are still compared. */
struct exp {
    int kind;
    uint64_t order_id;
    int reason;
    int status;
    int64_t qty, filled;
    uint64_t maker;    /* TRADE */
    int64_t tpx, tqty; /* TRADE */
    int64_t mfilled;   /* TRADE */
    int mstatus;       /* TRADE */
};

#define ACC(id_, q)                                                                                \
    {                                                                                              \
        OP_REPORT_ACCEPTED, id_, 0, OP_STATUS_NEW, q, 0, 0, 0, 0, 0, 0                             \
    }
/* TRADE: taker id, taker qty/filled after, maker id, price, qty, maker filled, maker status */
#define TRD(id_, q, f, mk, px, tq, mf, ms)                                                         \
    {                                                                                              \
        OP_REPORT_TRADE, id_, 0, (f) == (q) ? OP_STATUS_FILLED : OP_STATUS_PARTIALLY_FILLED, q, f, \
            mk, px, tq, mf, ms                                                                     \
    }
#define CXD(id_, why, q, f)                                                                        \
    {                                                                                              \
        OP_REPORT_CANCELLED, id_, why, OP_STATUS_CANCELLED, q, f, 0, 0, 0, 0, 0                    \
    }
#define REJN(id_, why, q)                                                                          \
    {                                                                                              \
        OP_REPORT_REJECTED, id_, why, OP_STATUS_REJECTED, q, 0, 0, 0, 0, 0, 0                      \
    }
#define REJ(id_, why)                                                                              \
    {                                                                                              \
        OP_REPORT_REJECTED, id_, why, 0, 0, 0, 0, 0, 0, 0, 0                                       \
    }
#define AMDD(id_, q, f, st)                                                                        \
    {                                                                                              \
        OP_REPORT_AMENDED, id_, 0, st, q, f, 0, 0, 0, 0, 0                                         \
    }
/* REPLACED: the order's new qty, filled, status and price (in tpx). */
#define RPL(id_, q, f, st, px)                                                                     \
    {                                                                                              \
        OP_REPORT_REPLACED, id_, 0, st, q, f, 0, px, 0, 0, 0                                       \
    }
/* AMENDED by a self-trade decrement: the order's new qty, filled, status. */
#define DEC(id_, q, f, st)                                                                         \
    {                                                                                              \
        OP_REPORT_AMENDED, id_, OP_REASON_SELF_TRADE, st, q, f, 0, 0, 0, 0, 0                      \
    }
/* CANCEL_ALL_DONE of n orders. */
#define CAD(n)                                                                                     \
    {                                                                                              \
        OP_REPORT_CANCEL_ALL_DONE, 0, 0, 0, n, 0, 0, 0, 0, 0, 0                                    \
    }
#define SELF OP_REASON_SELF_TRADE
#define PF OP_STATUS_PARTIALLY_FILLED
#define FL OP_STATUS_FILLED
#define NW OP_STATUS_NEW

#define MAX_STEPS 16
#define MAX_REPS 10
#define MAX_LV 6

struct step {
    struct op_order_msg in;
    struct exp want[MAX_REPS]; /* ends at the first kind 0 */
};

struct lv {
    int64_t price, qty;
    uint32_t count;
};

struct scenario {
    const char *name;
    struct step steps[MAX_STEPS]; /* ends at the first kind 0 input */
    struct lv bids[MAX_LV];       /* expected book after, best first; ends at price 0 */
    struct lv asks[MAX_LV];
    uint32_t max_open; /* eng_set_max_open; 0: no limit */
};

/* --- the scenarios ------------------------------------------------------------- */

static const struct scenario scenarios[] = {
    {"fifo within a level",
     {{LIM(1, "alice", S, 100, 10), {ACC(1, 10)}},
      {LIM(2, "bob", S, 100, 5), {ACC(2, 5)}},
      {LIM(3, "alice", S, 100, 7), {ACC(3, 7)}},
      {LIM(4, "bob", B, 100, 12),
       {ACC(4, 12), TRD(4, 12, 10, 1, 100, 10, 10, FL), TRD(4, 12, 12, 2, 100, 2, 2, PF)}}},
     {{0}},
     {{100, 10, 2}}},
    {"partial fills at the maker's price",
     {{LIM(1, "alice", S, 100, 10), {ACC(1, 10)}},
      {LIM(2, "bob", B, 100, 4), {ACC(2, 4), TRD(2, 4, 4, 1, 100, 4, 4, PF)}},
      {LIM(3, "bob", B, 105, 4), {ACC(3, 4), TRD(3, 4, 4, 1, 100, 4, 8, PF)}},
      {LIM(4, "bob", B, 101, 5), {ACC(4, 5), TRD(4, 5, 2, 1, 100, 2, 10, FL)}}},
     {{101, 3, 1}},
     {{0}}},
    {"sweep across levels, rest of the taker rests",
     {{LIM(1, "alice", S, 101, 5), {ACC(1, 5)}},
      {LIM(2, "alice", S, 103, 5), {ACC(2, 5)}},
      {LIM(3, "alice", S, 102, 5), {ACC(3, 5)}},
      {LIM(4, "bob", B, 102, 12),
       {ACC(4, 12), TRD(4, 12, 5, 1, 101, 5, 5, FL), TRD(4, 12, 10, 3, 102, 5, 5, FL)}},
      {LIM(5, "bob", B, 100, 1), {ACC(5, 1)}}},
     {{102, 2, 1}, {100, 1, 1}},
     {{103, 5, 1}}},
    {"IOC remainder is cancelled, IOC that cannot trade too",
     {{LIM(1, "alice", S, 100, 5), {ACC(1, 5)}},
      {NEWO(2, "bob", B, LMT, IOC, 100, 8, false),
       {ACC(2, 8), TRD(2, 8, 5, 1, 100, 5, 5, FL), CXD(2, OP_REASON_IOC_REMAINDER, 8, 5)}},
      {LIM(3, "alice", S, 102, 5), {ACC(3, 5)}},
      {NEWO(4, "bob", B, LMT, IOC, 101, 8, false),
       {ACC(4, 8), CXD(4, OP_REASON_IOC_REMAINDER, 8, 0)}}},
     {{0}},
     {{102, 5, 1}}},
    {"FOK killed before any trade, FOK filled",
     {{LIM(1, "alice", S, 100, 5), {ACC(1, 5)}},
      {LIM(2, "alice", S, 101, 5), {ACC(2, 5)}},
      {NEWO(3, "bob", B, LMT, FOK, 101, 11, false),
       {ACC(3, 11), CXD(3, OP_REASON_FOK_UNFILLED, 11, 0)}},
      {NEWO(4, "bob", B, LMT, FOK, 100, 6, false),
       {ACC(4, 6), CXD(4, OP_REASON_FOK_UNFILLED, 6, 0)}},
      {NEWO(5, "bob", B, LMT, FOK, 101, 7, false),
       {ACC(5, 7), TRD(5, 7, 5, 1, 100, 5, 5, FL), TRD(5, 7, 7, 2, 101, 2, 2, PF)}},
      {NEWO(6, "bob", B, MKT, FOK, 0, 3, false), {ACC(6, 3), TRD(6, 3, 3, 2, 101, 3, 5, FL)}}},
     {{0}},
     {{0}}},
    {"post-only cancelled when it would trade, rests otherwise",
     {{LIM(1, "alice", S, 100, 5), {ACC(1, 5)}},
      {NEWO(2, "bob", B, LMT, GTC, 100, 5, true), {ACC(2, 5), CXD(2, OP_REASON_POST_ONLY, 5, 0)}},
      {NEWO(3, "bob", B, LMT, GTC, 99, 5, true), {ACC(3, 5)}},
      {NEWO(4, "bob", S, LMT, GTC, 99, 5, true), {ACC(4, 5), CXD(4, OP_REASON_POST_ONLY, 5, 0)}}},
     {{99, 5, 1}},
     {{100, 5, 1}}},
    {"market orders: empty book, partial, GTC market is IOC",
     {{NEWO(1, "bob", B, MKT, IOC, 0, 5, false), {ACC(1, 5), CXD(1, OP_REASON_NO_LIQUIDITY, 5, 0)}},
      {LIM(2, "alice", S, 100, 3), {ACC(2, 3)}},
      {LIM(3, "alice", S, 150, 1), {ACC(3, 1)}},
      {NEWO(4, "bob", B, MKT, GTC, 0, 5, false),
       {ACC(4, 5), TRD(4, 5, 3, 2, 100, 3, 3, FL), TRD(4, 5, 4, 3, 150, 1, 1, FL),
        CXD(4, OP_REASON_IOC_REMAINDER, 5, 4)}},
      {NEWO(5, "bob", S, MKT, FOK, 0, 5, false),
       {ACC(5, 5), CXD(5, OP_REASON_FOK_UNFILLED, 5, 0)}}},
     {{0}},
     {{0}}},
    {"cancels: own, foreign, unknown, filled, twice, wrong symbol",
     {{LIM(1, "alice", S, 100, 5), {ACC(1, 5)}},
      {LIM(2, "alice", S, 101, 5), {ACC(2, 5)}},
      {CXL(1, "bob"), {REJ(1, OP_REASON_NOT_OWNER)}},
      {CXL(99, "alice"), {REJ(99, OP_REASON_UNKNOWN_ORDER)}},
      {CXL(1, "alice"), {CXD(1, OP_REASON_USER_CANCEL, 5, 0)}},
      {CXL(1, "alice"), {REJ(1, OP_REASON_ORDER_CLOSED)}},
      {CXL(1, "bob"), {REJ(1, OP_REASON_NOT_OWNER)}},
      {LIM(3, "bob", B, 101, 5), {ACC(3, 5), TRD(3, 5, 5, 2, 101, 5, 5, FL)}},
      {CXL(2, "alice"), {REJ(2, OP_REASON_ORDER_CLOSED)}},
      {CXL(3, "bob"), {REJ(3, OP_REASON_ORDER_CLOSED)}},
      {LIM(4, "bob", B, 90, 5), {ACC(4, 5)}},
      {{.kind = OP_MSG_CANCEL, .order_id = 4, .symbol = "MSFT", .account = "bob"},
       {REJ(4, OP_REASON_UNKNOWN_ORDER)}},
      {{.kind = 9, .order_id = 4, .symbol = "AAPL", .account = "bob"},
       {REJ(4, OP_REASON_MALFORMED)}}},
     {{90, 5, 1}},
     {{0}}},
    {"amend keeps time priority; invalid amends change nothing",
     {{LIM(1, "alice", B, 100, 10), {ACC(1, 10)}},
      {LIM(2, "bob", B, 100, 10), {ACC(2, 10)}},
      {AMD(1, "alice", 6), {AMDD(1, 6, 0, NW)}},
      {LIM(3, "carol", S, 100, 2), {ACC(3, 2), TRD(3, 2, 2, 1, 100, 2, 2, PF)}},
      {AMD(1, "alice", 6), {REJ(1, OP_REASON_BAD_AMEND)}},
      {AMDP(1, "alice", 6, 100), {REJ(1, OP_REASON_BAD_AMEND)}},
      {AMD(1, "alice", 2), {REJ(1, OP_REASON_BAD_AMEND)}},
      {AMD(1, "alice", 0), {REJ(1, OP_REASON_BAD_AMEND)}},
      {AMDP(1, "alice", 0, -5), {REJ(1, OP_REASON_BAD_AMEND)}},
      {AMD(1, "bob", 3), {REJ(1, OP_REASON_NOT_OWNER)}},
      {AMD(42, "alice", 3), {REJ(42, OP_REASON_UNKNOWN_ORDER)}},
      {AMD(1, "alice", 3), {AMDD(1, 3, 2, PF)}},
      {LIM(4, "carol", S, 100, 2),
       {ACC(4, 2), TRD(4, 2, 1, 1, 100, 1, 3, FL), TRD(4, 2, 2, 2, 100, 1, 1, PF)}},
      {AMD(1, "alice", 2), {REJ(1, OP_REASON_ORDER_CLOSED)}},
      {AMD(3, "carol", 1), {REJ(3, OP_REASON_ORDER_CLOSED)}}},
     {{100, 9, 1}},
     {{0}}},
    {"invalid orders are rejected, never asserted on",
     {{NEWO(1, "a", 3, LMT, GTC, 100, 1, false), {REJN(1, OP_REASON_BAD_SIDE, 1)}},
      {NEWO(2, "a", B, 0, GTC, 100, 1, false), {REJN(2, OP_REASON_BAD_TYPE, 1)}},
      {NEWO(3, "a", B, LMT, 5, 100, 1, false), {REJN(3, OP_REASON_BAD_TIF, 1)}},
      {NEWO(4, "a", B, LMT, GTC, 100, 0, false), {REJN(4, OP_REASON_BAD_QTY, 0)}},
      {NEWO(5, "a", B, LMT, GTC, 100, -5, false), {REJN(5, OP_REASON_BAD_QTY, -5)}},
      {NEWO(6, "a", B, LMT, GTC, 0, 1, false), {REJN(6, OP_REASON_BAD_PRICE, 1)}},
      {NEWO(7, "a", B, LMT, GTC, -1, 1, false), {REJN(7, OP_REASON_BAD_PRICE, 1)}},
      {NEWO(8, "a", B, MKT, IOC, 100, 1, false), {REJN(8, OP_REASON_BAD_PRICE, 1)}},
      {NEWO(9, "a", B, MKT, IOC, 0, 1, true), {REJN(9, OP_REASON_BAD_POST_ONLY, 1)}},
      {NEWO(10, "a", B, LMT, IOC, 100, 1, true), {REJN(10, OP_REASON_BAD_POST_ONLY, 1)}},
      {NEWO(11, "a", B, LMT, FOK, 100, 1, true), {REJN(11, OP_REASON_BAD_POST_ONLY, 1)}},
      {NEWO(0, "a", B, LMT, GTC, 100, 1, false), {REJN(0, OP_REASON_MALFORMED, 1)}},
      {NEWO(12, "a", B, LMT, GTC, 100, ENG_QTY_MAX + 1, false),
       {REJN(12, OP_REASON_BAD_QTY, ENG_QTY_MAX + 1)}},
      {LIM(13, "a", B, 100, 1), {ACC(13, 1)}},
      {LIM(13, "a", B, 100, 1), {REJN(13, OP_REASON_DUPLICATE_ID, 1)}},
      {CXL(13, "a"), {CXD(13, OP_REASON_USER_CANCEL, 1, 0)}}},
     {{0}},
     {{0}}},
    {"a closed id stays a duplicate",
     {{LIM(1, "a", B, 100, 1), {ACC(1, 1)}},
      {NEWO(2, "b", S, MKT, IOC, 0, 1, false), {ACC(2, 1), TRD(2, 1, 1, 1, 100, 1, 1, FL)}},
      {LIM(1, "a", B, 100, 1), {REJN(1, OP_REASON_DUPLICATE_ID, 1)}},
      {LIM(2, "a", B, 100, 1), {REJN(2, OP_REASON_DUPLICATE_ID, 1)}}},
     {{0}},
     {{0}}},

    /* --- self-trade prevention (docs/engine.md) ------------------------------ */
    {"stp cancel_taker: taker partially filled first, then cancelled at its own order",
     {{LIM(1, "bob", S, 100, 5), {ACC(1, 5)}},
      {LIM(2, "alice", S, 100, 5), {ACC(2, 5)}},
      {LIM(3, "alice", S, 101, 5), {ACC(3, 5)}},
      {LIMS(4, "alice", B, 102, 12, OP_STP_CANCEL_TAKER),
       {ACC(4, 12), TRD(4, 12, 5, 1, 100, 5, 5, FL), CXD(4, SELF, 12, 5)}}},
     {{0}},
     {{100, 5, 1}, {101, 5, 1}}},
    {"stp cancel_maker: several own makers at one level are cancelled, matching goes on",
     {{LIM(1, "alice", S, 100, 3), {ACC(1, 3)}},
      {LIM(2, "alice", S, 100, 4), {ACC(2, 4)}},
      {LIM(3, "bob", S, 100, 5), {ACC(3, 5)}},
      {LIM(4, "alice", S, 100, 2), {ACC(4, 2)}},
      {LIMS(5, "alice", B, 100, 6, OP_STP_CANCEL_MAKER),
       {ACC(5, 6), CXD(1, SELF, 3, 0), CXD(2, SELF, 4, 0), TRD(5, 6, 5, 3, 100, 5, 5, FL),
        CXD(4, SELF, 2, 0)}}},
     {{100, 1, 1}},
     {{0}}},
    {"stp cancel_both: the own maker and the taker's remainder, earlier trades stay",
     {{LIM(1, "bob", S, 100, 2), {ACC(1, 2)}},
      {LIM(2, "alice", S, 100, 5), {ACC(2, 5)}},
      {LIM(3, "bob", S, 100, 5), {ACC(3, 5)}},
      {LIMS(4, "alice", B, 100, 10, OP_STP_CANCEL_BOTH),
       {ACC(4, 10), TRD(4, 10, 2, 1, 100, 2, 2, FL), CXD(2, SELF, 5, 0), CXD(4, SELF, 10, 2)}}},
     {{0}},
     {{100, 5, 1}}},
    {"stp decrement: smaller maker cancelled and taker reduced; larger maker reduced",
     {{LIM(1, "alice", S, 100, 4), {ACC(1, 4)}},
      {LIM(2, "bob", S, 100, 5), {ACC(2, 5)}},
      {LIMS(3, "alice", B, 100, 10, OP_STP_DECREMENT),
       {ACC(3, 10), CXD(1, SELF, 4, 0), DEC(3, 6, 0, NW), TRD(3, 6, 5, 2, 100, 5, 5, FL)}},
      {LIM(4, "carol", S, 101, 10), {ACC(4, 10)}},
      {LIMS(5, "carol", B, 101, 4, OP_STP_DECREMENT),
       {ACC(5, 4), DEC(4, 6, 0, NW), CXD(5, SELF, 4, 0)}},
      {LIMS(6, "carol", B, 101, 6, OP_STP_DECREMENT),
       {ACC(6, 6), CXD(4, SELF, 6, 0), CXD(6, SELF, 6, 0)}}},
     {{100, 1, 1}},
     {{0}}},
    {"stp and FOK: only liquidity it could trade counts",
     {{LIM(1, "alice", S, 100, 5), {ACC(1, 5)}},
      {LIM(2, "bob", S, 100, 5), {ACC(2, 5)}},
      {NEWS(3, "alice", B, LMT, FOK, 100, 8, OP_STP_CANCEL_TAKER),
       {ACC(3, 8), CXD(3, OP_REASON_FOK_UNFILLED, 8, 0)}},
      {NEWS(4, "alice", B, LMT, FOK, 100, 8, OP_STP_DECREMENT),
       {ACC(4, 8), CXD(4, OP_REASON_FOK_UNFILLED, 8, 0)}},
      {NEWS(5, "alice", B, LMT, FOK, 100, 6, OP_STP_CANCEL_MAKER),
       {ACC(5, 6), CXD(5, OP_REASON_FOK_UNFILLED, 6, 0)}},
      {NEWS(6, "alice", B, LMT, FOK, 100, 5, OP_STP_CANCEL_MAKER),
       {ACC(6, 5), CXD(1, SELF, 5, 0), TRD(6, 5, 5, 2, 100, 5, 5, FL)}},
      {LIM(7, "alice", S, 100, 5), {ACC(7, 5)}},
      {NEWS(8, "alice", B, LMT, FOK, 100, 5, OP_STP_NONE),
       {ACC(8, 5), TRD(8, 5, 5, 7, 100, 5, 5, FL)}}},
     {{0}},
     {{0}}},
    {"stp and market orders",
     {{LIM(1, "alice", S, 100, 5), {ACC(1, 5)}},
      {LIM(2, "bob", S, 101, 5), {ACC(2, 5)}},
      {NEWS(3, "alice", B, MKT, IOC, 0, 8, OP_STP_CANCEL_MAKER),
       {ACC(3, 8), CXD(1, SELF, 5, 0), TRD(3, 8, 5, 2, 101, 5, 5, FL),
        CXD(3, OP_REASON_IOC_REMAINDER, 8, 5)}},
      {LIM(4, "alice", S, 102, 5), {ACC(4, 5)}},
      {NEWS(5, "alice", B, MKT, IOC, 0, 3, OP_STP_CANCEL_TAKER), {ACC(5, 3), CXD(5, SELF, 3, 0)}},
      {NEWS(6, "alice", B, MKT, IOC, 0, 3, OP_STP_CANCEL_MAKER),
       {ACC(6, 3), CXD(4, SELF, 5, 0), CXD(6, OP_REASON_NO_LIQUIDITY, 3, 0)}}},
     {{0}},
     {{0}}},
    {"stp none trades with itself; another account's order is no self-trade",
     {{LIM(1, "alice", S, 100, 5), {ACC(1, 5)}},
      {LIMS(2, "bob", B, 100, 2, OP_STP_CANCEL_BOTH), {ACC(2, 2), TRD(2, 2, 2, 1, 100, 2, 2, PF)}},
      {LIM(3, "alice", B, 100, 1), {ACC(3, 1), TRD(3, 1, 1, 1, 100, 1, 3, PF)}},
      {NEWS(4, "alice", B, LMT, GTC, 100, 1, 5), {REJN(4, OP_REASON_BAD_STP, 1)}}},
     {{0}},
     {{100, 2, 1}}},

    /* --- replace (amend of price or more quantity) ------------------------------ */
    {"replace: more quantity loses priority, less keeps it",
     {{LIM(1, "alice", B, 100, 10), {ACC(1, 10)}},
      {LIM(2, "bob", B, 100, 10), {ACC(2, 10)}},
      {AMD(1, "alice", 12), {RPL(1, 12, 0, NW, 100)}},
      {AMD(2, "bob", 9), {AMDD(2, 9, 0, NW)}},
      {LIM(3, "carol", S, 100, 10),
       {ACC(3, 10), TRD(3, 10, 9, 2, 100, 9, 9, FL), TRD(3, 10, 10, 1, 100, 1, 1, PF)}}},
     {{100, 11, 1}},
     {{0}}},
    {"replace: a new price without crossing moves the order to the back of its new level",
     {{LIM(1, "alice", B, 100, 10), {ACC(1, 10)}},
      {LIM(2, "bob", B, 99, 10), {ACC(2, 10)}},
      {LIM(3, "carol", S, 100, 4), {ACC(3, 4), TRD(3, 4, 4, 1, 100, 4, 4, PF)}},
      {AMDP(1, "alice", 0, 99), {RPL(1, 10, 4, PF, 99)}},
      {LIM(4, "carol", S, 99, 12),
       {ACC(4, 12), TRD(4, 12, 10, 2, 99, 10, 10, FL), TRD(4, 12, 12, 1, 99, 2, 6, PF)}}},
     {{99, 4, 1}},
     {{0}}},
    {"replace: a crossing price trades on arrival, post-only is cancelled instead",
     {{LIM(1, "bob", S, 105, 5), {ACC(1, 5)}},
      {LIM(2, "alice", B, 100, 8), {ACC(2, 8)}},
      {AMDP(2, "alice", 0, 105), {RPL(2, 8, 0, NW, 105), TRD(2, 8, 5, 1, 105, 5, 5, FL)}},
      {LIM(3, "bob", S, 110, 5), {ACC(3, 5)}},
      {NEWO(4, "carol", B, LMT, GTC, 101, 5, true), {ACC(4, 5)}},
      {AMDP(4, "carol", 6, 110), {RPL(4, 6, 0, NW, 110), CXD(4, OP_REASON_POST_ONLY, 6, 0)}},
      {AMDP(2, "alice", 2, 0), {REJ(2, OP_REASON_BAD_AMEND)}},
      {AMDP(2, "alice", 0, 105), {REJ(2, OP_REASON_BAD_AMEND)}}},
     {{105, 3, 1}},
     {{110, 5, 1}}},
    {"replace: self-trade prevention of the replaced order applies",
     {{LIM(1, "alice", S, 101, 5), {ACC(1, 5)}},
      {LIMS(2, "alice", B, 100, 5, OP_STP_CANCEL_TAKER), {ACC(2, 5)}},
      {AMDP(2, "alice", 0, 101), {RPL(2, 5, 0, NW, 101), CXD(2, SELF, 5, 0)}}},
     {{0}},
     {{101, 5, 1}}},

    /* --- open-order limit and cancel-all ----------------------------------------- */
    {"open-order limit per account and symbol",
     {{LIM(1, "alice", B, 100, 1), {ACC(1, 1)}},
      {LIM(2, "alice", B, 99, 1), {ACC(2, 1)}},
      {LIM(3, "alice", S, 200, 1), {REJN(3, OP_REASON_TOO_MANY_OPEN_ORDERS, 1)}},
      {NEWO(4, "alice", S, MKT, IOC, 0, 1, false), {REJN(4, OP_REASON_TOO_MANY_OPEN_ORDERS, 1)}},
      {LIM(5, "bob", S, 200, 1), {ACC(5, 1)}},
      {AMDP(2, "alice", 5, 98), {RPL(2, 5, 0, NW, 98)}},
      {CXL(1, "alice"), {CXD(1, OP_REASON_USER_CANCEL, 1, 0)}},
      {LIM(6, "alice", S, 200, 1), {ACC(6, 1)}},
      {LIM(3, "alice", S, 200, 1), {REJN(3, OP_REASON_TOO_MANY_OPEN_ORDERS, 1)}}},
     {{98, 5, 1}},
     {{200, 2, 2}},
     2},
    {"cancel-all: every open order of the account that precedes it, never another's",
     {{LIM(1, "alice", B, 100, 1), {ACC(1, 1)}},
      {LIM(2, "bob", B, 100, 2), {ACC(2, 2)}},
      {LIM(3, "alice", B, 101, 3), {ACC(3, 3)}},
      {LIM(4, "alice", S, 105, 4), {ACC(4, 4)}},
      {LIM(5, "alice", S, 104, 5), {ACC(5, 5)}},
      {LIM(6, "carol", S, 101, 1), {ACC(6, 1), TRD(6, 1, 1, 3, 101, 1, 1, PF)}},
      {CXA("alice"),
       {CXD(3, OP_REASON_USER_CANCEL, 3, 1), CXD(1, OP_REASON_USER_CANCEL, 1, 0),
        CXD(5, OP_REASON_USER_CANCEL, 5, 0), CXD(4, OP_REASON_USER_CANCEL, 4, 0), CAD(4)}},
      {CXA("alice"), {CAD(0)}},
      {CXA("dave"), {CAD(0)}},
      {LIM(7, "alice", S, 106, 1), {ACC(7, 1)}},
      {CXA(""), {REJ(0, OP_REASON_BAD_ACCOUNT)}}},
     {{100, 2, 1}},
     {{106, 1, 1}}},
};

/* --- the runner -------------------------------------------------------------- */

static void check_report(const char *name, int step, int i, const struct op_report *r,
                         const struct exp *w, const struct op_order_msg *in)
{
    int ok = r->kind == w->kind && r->order_id == w->order_id && r->reason == w->reason &&
             r->status == w->status && r->qty == w->qty && r->filled_qty == w->filled;
    if (w->kind == OP_REPORT_TRADE)
        ok = ok && r->maker_order_id == w->maker && r->trade_price == w->tpx &&
             r->trade_qty == w->tqty && r->maker_filled_qty == w->mfilled &&
             r->maker_status == w->mstatus && (in->kind != OP_MSG_NEW || r->side == in->side);
    else if (w->kind == OP_REPORT_REPLACED)
        ok = ok && r->price == w->tpx && r->maker_order_id == 0;
    else
        ok = ok && r->maker_order_id == 0 && r->trade_qty == 0 && r->maker_account[0] == '\0';
    if (!ok) {
        fprintf(stderr,
                "%s, step %d, report %d: got %s id=%" PRIu64 " reason=%s status=%s qty=%" PRId64
                " filled=%" PRId64 " maker=%" PRIu64 " px=%" PRId64 " tqty=%" PRId64
                " mfilled=%" PRId64 " mstatus=%d\n  want %s id=%" PRIu64
                " reason=%s status=%s qty=%" PRId64 " filled=%" PRId64 " maker=%" PRIu64
                " px=%" PRId64 " tqty=%" PRId64 " mfilled=%" PRId64 " mstatus=%d\n",
                name, step, i, op_report_kind_name(r->kind), r->order_id, op_reason_name(r->reason),
                op_status_name(r->status), r->qty, r->filled_qty, r->maker_order_id, r->trade_price,
                r->trade_qty, r->maker_filled_qty, r->maker_status, op_report_kind_name(w->kind),
                w->order_id, op_reason_name(w->reason), op_status_name(w->status), w->qty,
                w->filled, w->maker, w->tpx, w->tqty, w->mfilled, w->mstatus);
        fail();
    }
    /* Common fields: time, symbol, requester/owner account, request kind. */
    assert_int_equal(r->ts_ns, in->ts_ns);
    assert_int_equal(r->req_kind, in->kind);
    assert_string_equal(r->symbol, in->symbol);
    assert_string_equal(r->account, in->account);
    if (r->kind == OP_REPORT_REJECTED && in->kind != OP_MSG_NEW) {
        /* msg.h: the target id and the requester only; the order is unchanged. */
        assert_int_equal(r->side, 0);
        assert_int_equal(r->price, 0);
        assert_int_equal(r->client_order_id[0], '\0');
    }
}

static void check_side(const struct eng *e, const char *name, int side, const struct lv *want)
{
    struct book_depth d[MAX_LV + 1];
    size_t n = eng_depth(e, "AAPL", side, d, MAX_LV + 1);
    size_t nw = 0;
    while (nw < MAX_LV && want[nw].price != 0)
        nw++;
    if (n != nw)
        fprintf(stderr, "%s: %s side has %zu levels, want %zu\n", name, op_side_name(side), n, nw);
    assert_int_equal(n, nw);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(d[i].price, want[i].price);
        assert_int_equal(d[i].qty, want[i].qty);
        assert_int_equal(d[i].count, want[i].count);
    }
}

static void run_scenario(const struct scenario *sc)
{
    struct eng *e = eng_new(5, 0);
    assert_non_null(e);
    eng_set_max_open(e, sc->max_open);
    struct eng_reports out;
    eng_reports_init(&out);
    uint64_t seq = 0;
    for (int s = 0; s < MAX_STEPS && sc->steps[s].in.kind != 0; s++) {
        struct op_order_msg in = sc->steps[s].in;
        in.ts_ns = 1000 + (uint64_t)s;
        if (in.kind == OP_MSG_NEW && in.order_id % 2)
            snprintf(in.client_order_id, sizeof(in.client_order_id), "cl-%" PRIu64, in.order_id);
        eng_reports_reset(&out);
        size_t n = eng_apply(e, &in, &out);
        size_t nw = 0;
        while (nw < MAX_REPS && sc->steps[s].want[nw].kind != 0)
            nw++;
        if (n != nw)
            fprintf(stderr, "%s, step %d: %zu reports, want %zu\n", sc->name, s, n, nw);
        assert_int_equal(n, nw);
        for (size_t i = 0; i < n; i++) {
            const struct op_report *r = &out.v[i];
            check_report(sc->name, s, (int)i, r, &sc->steps[s].want[i], &in);
            /* report_id = (seq << 10) | shard, one step per report */
            assert_int_equal(r->report_id, (++seq << ENG_SHARD_BITS) | 5);
            if (in.kind == OP_MSG_NEW && r->kind != OP_REPORT_REJECTED &&
                r->order_id == in.order_id) {
                assert_int_equal(r->side, in.side);
                assert_int_equal(r->price, in.price);
                assert_string_equal(r->client_order_id, in.client_order_id);
            }
        }
        char err[200];
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
        run_scenario(&scenarios[i]);
    }
}

/* --- other unit tests ----------------------------------------------------------- */

/* The closed memory is bounded: beyond closed_max an old id is forgotten. */
static void test_closed_memory_bound(void **state)
{
    (void)state;
    struct eng *e = eng_new(0, 4);
    struct eng_reports out;
    eng_reports_init(&out);
    for (uint64_t id = 1; id <= 6; id++) {
        struct op_order_msg in = LIM(id, "a", B, 100, 1);
        eng_apply(e, &in, &out);
        struct op_order_msg c = CXL(id, "a");
        eng_apply(e, &c, &out);
    }
    eng_reports_reset(&out);
    struct op_order_msg c = CXL(2, "a");
    eng_apply(e, &c, &out);
    assert_int_equal(out.v[0].reason, OP_REASON_UNKNOWN_ORDER); /* evicted */
    c.order_id = 3;
    eng_apply(e, &c, &out);
    assert_int_equal(out.v[1].reason, OP_REASON_ORDER_CLOSED); /* still remembered */
    struct op_order_msg again = LIM(1, "a", B, 100, 1);        /* forgotten id: reusable */
    eng_apply(e, &again, &out);
    assert_int_equal(out.v[2].kind, OP_REPORT_ACCEPTED);
    char err[200];
    assert_int_equal(eng_check(e, err, sizeof(err)), 0);
    eng_reports_release(&out);
    eng_free(e);
}

/* Open orders of account in symbol, from the depth (count) of a one-account book side. */
static uint64_t open_count(const struct eng *e, const char *symbol)
{
    struct book_depth d[64];
    uint64_t n = 0;
    for (int side = OP_SIDE_BUY; side <= OP_SIDE_SELL; side++) {
        size_t k = eng_depth(e, symbol, side, d, 64);
        for (size_t i = 0; i < k; i++)
            n += d[i].count;
    }
    return n;
}

/*
 * A cancel-all without a symbol reaches every shard (ingest writes one input
 * per shard): here two engines stand for two shards, with alice and bob
 * resting orders in three symbols. alice's all-symbol cancel-all leaves only
 * bob's orders everywhere; a cancel-all of one symbol touches only that
 * symbol; orders after a cancel-all stay.
 */
static void test_cancel_all_across_shards_and_symbols(void **state)
{
    (void)state;
    struct eng *sh[2] = {eng_new(0, 0), eng_new(1, 0)};
    const char *syms[2][2] = {{"AAPL", "MSFT"}, {"GOOG", "GOOG"}};
    struct eng_reports out;
    eng_reports_init(&out);
    uint64_t id = 1;
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 2; j++)
            for (int i = 0; i < 3; i++) {
                struct op_order_msg a =
                    LIM(id++, "alice", i % 2 ? S : B, i % 2 ? 200 + i : 100 - i, 1);
                struct op_order_msg b = LIM(id++, "bob", i % 2 ? S : B, i % 2 ? 210 : 90, 1);
                snprintf(a.symbol, sizeof(a.symbol), "%s", syms[k][j]);
                snprintf(b.symbol, sizeof(b.symbol), "%s", syms[k][j]);
                eng_apply(sh[k], &a, &out);
                eng_apply(sh[k], &b, &out);
            }
    assert_int_equal(open_count(sh[0], "AAPL"), 6);
    assert_int_equal(open_count(sh[1], "GOOG"), 12);

    /* alice, MSFT only (shard 0) */
    struct op_order_msg one = CXA("alice");
    snprintf(one.symbol, sizeof(one.symbol), "MSFT");
    eng_reports_reset(&out);
    eng_apply(sh[0], &one, &out);
    assert_int_equal(out.len, 4);
    assert_int_equal(out.v[3].kind, OP_REPORT_CANCEL_ALL_DONE);
    assert_int_equal(out.v[3].qty, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(out.v[i].kind, OP_REPORT_CANCELLED);
        assert_int_equal(out.v[i].req_kind, OP_MSG_CANCEL_ALL);
        assert_string_equal(out.v[i].account, "alice");
        assert_string_equal(out.v[i].symbol, "MSFT");
    }
    assert_int_equal(open_count(sh[0], "MSFT"), 3);
    assert_int_equal(open_count(sh[0], "AAPL"), 6);

    /* alice, every symbol: one input per shard */
    struct op_order_msg all = CXA("alice");
    memset(all.symbol, 0, sizeof(all.symbol));
    uint64_t cancelled = 0;
    for (int k = 0; k < 2; k++) {
        eng_reports_reset(&out);
        eng_apply(sh[k], &all, &out);
        const struct op_report *done = &out.v[out.len - 1];
        assert_int_equal(done->kind, OP_REPORT_CANCEL_ALL_DONE);
        assert_string_equal(done->symbol, "");
        assert_int_equal((uint64_t)done->qty, out.len - 1);
        cancelled += (uint64_t)done->qty;
        for (size_t i = 0; i + 1 < out.len; i++)
            assert_string_equal(out.v[i].account, "alice");
    }
    assert_int_equal(cancelled, 3 + 6);
    assert_int_equal(open_count(sh[0], "AAPL"), 3);
    assert_int_equal(open_count(sh[0], "MSFT"), 3);
    assert_int_equal(open_count(sh[1], "GOOG"), 6);

    /* an order after the cancel-all stays */
    struct op_order_msg later = LIM(id++, "alice", B, 50, 1);
    eng_apply(sh[0], &later, &out);
    assert_int_equal(open_count(sh[0], "AAPL"), 4);
    char err[200];
    for (int k = 0; k < 2; k++) {
        assert_int_equal(eng_check(sh[k], err, sizeof(err)), 0);
        eng_free(sh[k]);
    }
    eng_reports_release(&out);
}

/* Many levels (binary search, inserts in the middle), many books, depth order. */
static void test_deep_book_and_many_books(void **state)
{
    (void)state;
    struct eng *e = eng_new(1, 0);
    struct eng_reports out;
    eng_reports_init(&out);
    uint64_t id = 1;
    for (int i = 0; i < 500; i++) {
        int64_t px = 1000 - ((i * 37) % 500); /* scattered order of arrival */
        struct op_order_msg in = LIM(id++, "a", B, px, 1 + i % 3);
        eng_apply(e, &in, &out);
        struct op_order_msg in2 = LIM(id++, "a", S, 2000 + ((i * 53) % 500), 1);
        eng_apply(e, &in2, &out);
    }
    for (int k = 0; k < 200; k++) {
        struct op_order_msg in = LIM(id++, "b", B, 10, 1);
        snprintf(in.symbol, sizeof(in.symbol), "SYM%d", k);
        eng_apply(e, &in, &out);
    }
    struct book_depth d[600];
    size_t n = eng_depth(e, "AAPL", OP_SIDE_BUY, d, 600);
    assert_int_equal(n, 500);
    for (size_t i = 1; i < n; i++)
        assert_true(d[i - 1].price > d[i].price);
    assert_int_equal(d[0].price, 1000);
    n = eng_depth(e, "AAPL", OP_SIDE_SELL, d, 10);
    assert_int_equal(n, 10);
    assert_int_equal(d[0].price, 2000);
    assert_int_equal(d[9].price, 2009);
    for (int k = 0; k < 200; k++) {
        char sym[OP_SYMBOL_MAX];
        snprintf(sym, sizeof(sym), "SYM%d", k);
        assert_int_equal(eng_depth(e, sym, OP_SIDE_BUY, d, 5), 1);
    }
    assert_int_equal(eng_depth(e, "NOPE", OP_SIDE_BUY, d, 5), 0);
    /* A sell sweeping 100 bid levels. */
    eng_reports_reset(&out);
    struct op_order_msg sw = NEWO(id++, "c", S, LMT, IOC, 901, 100000, false);
    eng_apply(e, &sw, &out);
    size_t trades = 0;
    for (size_t i = 0; i < out.len; i++)
        trades += out.v[i].kind == OP_REPORT_TRADE;
    assert_int_equal(trades, 100);
    assert_int_equal(out.v[out.len - 1].reason, OP_REASON_IOC_REMAINDER);
    n = eng_depth(e, "AAPL", OP_SIDE_BUY, d, 1);
    assert_int_equal(n, 1);
    assert_int_equal(d[0].price, 900);
    char err[200];
    assert_int_equal(eng_check(e, err, sizeof(err)), 0);
    eng_reports_release(&out);
    eng_free(e);
}

/* Identical inputs give byte-identical reports, even with garbage after the
 * strings' NULs (inputs are normalised, reports memset). */
static void test_determinism(void **state)
{
    (void)state;
    struct eng_reports a, b;
    eng_reports_init(&a);
    eng_reports_init(&b);
    struct eng *e1 = eng_new(3, 0), *e2 = eng_new(3, 0);
    for (int i = 0; i < 300; i++) {
        struct op_order_msg in =
            NEWO((uint64_t)i + 1, "alice", i % 2 ? B : S, LMT, GTC, 100 + i % 7, 1 + i % 5, false);
        struct op_order_msg in2 = in;
        memset(in2.account + 6, 'x', sizeof(in2.account) - 7); /* garbage past the NUL */
        memset(in2.symbol + 5, 'y', sizeof(in2.symbol) - 6);
        eng_apply(e1, &in, &a);
        eng_apply(e2, &in2, &b);
    }
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.v, b.v, a.len * sizeof(*a.v));
    assert_int_equal(eng_hash(e1), eng_hash(e2));
    eng_reports_release(&a);
    eng_reports_release(&b);
    eng_free(e1);
    eng_free(e2);
}

static void test_bad_args(void **state)
{
    (void)state;
    assert_null(eng_new(ENG_SHARD_MAX, 0));
    assert_null(eng_new(0, ENG_CLOSED_LIMIT + 1));
    struct eng *e = eng_new(ENG_SHARD_MAX - 1, 1);
    assert_non_null(e);
    struct eng_reports out;
    eng_reports_init(&out);
    struct op_order_msg in;
    memset(&in, 0xff, sizeof(in)); /* no NUL anywhere, every value out of range */
    in.post_only = false;
    for (int k = 0; k < 256; k++) {
        in.kind = (uint8_t)k;
        eng_apply(e, &in, &out);
    }
    assert_int_equal(out.len, 256);
    for (size_t i = 0; i < out.len; i++) {
        /* a tick needs nothing but a time: the one input that is not rejected */
        assert_int_equal(out.v[i].kind, i == OP_MSG_TICK ? OP_REPORT_TICK : OP_REPORT_REJECTED);
        assert_int_equal(out.v[i].report_id & (ENG_SHARD_MAX - 1), ENG_SHARD_MAX - 1);
    }
    assert_int_equal(eng_open_orders(e), 0);
    eng_reports_release(&out);
    eng_free(e);
    eng_free(NULL);
}

/* One input through e; returns its first report (the test holds one at a time). */
static struct op_report apply1(struct eng *e, struct op_order_msg in, size_t *n)
{
    struct eng_reports out;
    eng_reports_init(&out);
    *n = eng_apply(e, &in, &out);
    struct op_report r = out.v[0];
    eng_reports_release(&out);
    return r;
}

/*
 * Issue 10: what a rogue writer can put into orders:{S} is validated as
 * strictly as ingest does, with the shard's symbol listing: every bad input
 * is one REJECTED report with its reason, and changes nothing.
 */
static void test_hostile_inputs(void **state)
{
    (void)state;
    /* Two shards; find a listed symbol of shard 0 and one of shard 1. */
    struct op_symbol v[] = {
        {.name = "AAPL", .tick = {1, 2}, .lot = 1, .max_qty = 1000},
        {.name = "LOT10", .tick = {1, 2}, .lot = 10, .max_qty = 1000},
        {.name = "MSFT", .tick = {1, 2}, .lot = 1, .max_qty = 1000},
        {.name = "NVDA", .tick = {1, 2}, .lot = 1, .max_qty = 1000},
        {.name = "TSLA", .tick = {1, 2}, .lot = 1, .max_qty = 1000},
    };
    struct op_symtab t = {v, sizeof(v) / sizeof(v[0])};
    uint32_t aapl = op_shard_of("AAPL", 4, 2);
    const char *other = NULL;
    for (size_t i = 0; i < t.n; i++)
        if (op_shard_of(v[i].name, strlen(v[i].name), 2) != aapl)
            other = v[i].name;
    assert_non_null(other);
    struct eng *e = eng_new(aapl, 0);
    assert_int_equal(eng_list_symbols(e, &t, 2), 0);
    size_t n;
    struct {
        const char *what;
        struct op_order_msg in;
        int reason;
    } cases[] = {
        {"unknown symbol", LIM(1, "a", B, 100, 1), OP_REASON_UNKNOWN_SYMBOL},
        {"symbol of another shard", LIM(2, "a", B, 100, 1), OP_REASON_UNKNOWN_SYMBOL},
        {"qty above the symbol's max", LIM(3, "a", B, 100, 1001), OP_REASON_BAD_QTY},
        {"qty 0", LIM(4, "a", B, 100, 0), OP_REASON_BAD_QTY},
        {"empty account", LIM(5, "", B, 100, 1), OP_REASON_BAD_ACCOUNT},
        {"bad client_order_id", LIM(6, "a", B, 100, 1), OP_REASON_BAD_CLIENT_ID},
        {"ts 0", LIM(7, "a", B, 100, 1), OP_REASON_BAD_TIME},
        {"id 2^63", LIM(UINT64_C(1) << 63, "a", B, 100, 1), OP_REASON_MALFORMED},
        {"cancel with an empty account", CXL(9, ""), OP_REASON_BAD_ACCOUNT},
        {"cancel at ts 0", CXL(9, "a"), OP_REASON_BAD_TIME},
    };
    snprintf(cases[0].in.symbol, sizeof(cases[0].in.symbol), "ZZZZ");
    snprintf(cases[1].in.symbol, sizeof(cases[1].in.symbol), "%s", other);
    snprintf(cases[5].in.client_order_id, sizeof(cases[5].in.client_order_id), "no spaces");
    cases[6].in.ts_ns = 0;
    cases[9].in.ts_ns = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct op_report r = apply1(e, cases[i].in, &n);
        if (r.kind != OP_REPORT_REJECTED || r.reason != cases[i].reason)
            fail_msg("%s: got %s %s, want REJECTED %s", cases[i].what, op_report_kind_name(r.kind),
                     op_reason_name(r.reason), op_reason_name(cases[i].reason));
        assert_int_equal(n, 1);
    }
    assert_int_equal(eng_open_orders(e), 0);
    char zzzz[OP_SYMBOL_MAX] = "ZZZZ";
    assert_null(eng_book(e, zzzz, 0)); /* no book for a refused symbol */

    /* A lot: qty must be a multiple of it. */
    assert_int_equal(op_shard_of("LOT10", 5, 2), aapl);
    {
        struct op_order_msg in = LIM(20, "a", B, 100, 15);
        snprintf(in.symbol, sizeof(in.symbol), "LOT10");
        assert_int_equal(apply1(e, in, &n).reason, OP_REASON_BAD_QTY);
        in.qty = 20;
        assert_int_equal(apply1(e, in, &n).kind, OP_REPORT_ACCEPTED);
    }
    /* A good order still trades; engine time never goes back (the second
     * order was stamped earlier, as two ingest threads may do). */
    struct op_order_msg a = LIM(30, "a", B, 100, 5), b = LIM(31, "b", S, 100, 5);
    a.ts_ns = 5000;
    b.ts_ns = 4000;
    assert_int_equal(apply1(e, a, &n).ts_ns, 5000);
    struct op_report r = apply1(e, b, &n);
    assert_int_equal(r.kind, OP_REPORT_ACCEPTED);
    assert_int_equal(r.ts_ns, 5000);
    assert_int_equal(e->now_ns, 5000);
    char err[200];
    assert_int_equal(eng_check(e, err, sizeof(err)), 0);

    /* Engine time survives a snapshot. */
    char *buf;
    size_t len;
    assert_int_equal(eng_snapshot(e, &buf, &len), 0);
    struct eng *c = eng_restore(buf, len, err, sizeof(err));
    assert_non_null(c);
    assert_int_equal(c->now_ns, 5000);
    free(buf);
    eng_free(c);
    eng_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scenarios),
        cmocka_unit_test(test_closed_memory_bound),
        cmocka_unit_test(test_cancel_all_across_shards_and_symbols),
        cmocka_unit_test(test_deep_book_and_many_books),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_hostile_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

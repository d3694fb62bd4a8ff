/* Unit tests of feed/book: the matcher's book JSON in, the feed's snapshot and update messages out.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "feed/book.h"
#include "shared/alloc.h"
#include "shared/buf.h"
#include "shared/decimal.h"

/*
 * Books are written as the matcher writes them (matcher/marketdata.c):
 *   {"symbol":"AAPL","ts":"…","bids":[["187.25",300,2],…],"asks":[…]}
 * TS is a time in the matcher's format; B(bids, asks) builds a book of AAPL
 * at that time from the two sides' level lists.
 */
#define TS "2026-11-21T10:00:00.000000Z"
#define TS2 "2026-11-21T10:00:00.100000Z"
#define B(bids, asks)                                                                              \
    "{\"symbol\":\"AAPL\",\"ts\":\"" TS "\",\"bids\":[" bids "],\"asks\":[" asks "]}"
#define B2(bids, asks)                                                                             \
    "{\"symbol\":\"AAPL\",\"ts\":\"" TS2 "\",\"bids\":[" bids "],\"asks\":[" asks "]}"
#define SNAP(seq, ts, bids, asks)                                                                  \
    "{\"type\":\"book\",\"kind\":\"snapshot\",\"symbol\":\"AAPL\",\"seq\":" #seq ",\"ts\":\"" ts   \
    "\",\"bids\":[" bids "],\"asks\":[" asks "]}"
#define UPD(seq, ts, bids, asks)                                                                   \
    "{\"type\":\"book\",\"kind\":\"update\",\"symbol\":\"AAPL\",\"seq\":" #seq ",\"ts\":\"" ts     \
    "\",\"bids\":[" bids "],\"asks\":[" asks "]}"

/* the default symbols' tick, 0.01 (a macro for the static tables' initialisers) */
#define CENT                                                                                       \
    {                                                                                              \
        1, 2                                                                                       \
    }
static const struct op_tick cent = CENT;

/* Parses text into b with tick; fails the test with the error if it does not parse. */
static void must_parse(struct feed_book *b, const char *text, struct op_tick tick)
{
    char err[160] = "";
    if (feed_book_parse(b, text, strlen(text), tick, err, sizeof(err)) != 0)
        fail_msg("cannot parse '%s': %s", text, err);
}

/* ---- snapshots ---------------------------------------------------------------- */

struct snap_case {
    const char *name;
    struct op_tick tick;
    const char *book; /* the matcher's JSON */
    uint64_t seq;
    const char *symbol; /* the symbol given to feed_book_snapshot_json */
    const char *want;   /* the exact snapshot message */
};

static void test_snapshot_table(void **state)
{
    (void)state;
    static const struct snap_case cases[] = {
        {"two levels a side, as docs/feed.md shows", CENT,
         B("[\"187.25\",300,2],[\"187.20\",50,1]", "[\"187.30\",100,1],[\"187.31\",7,3]"), 1,
         "AAPL",
         SNAP(1, TS, "[\"187.25\",300,2],[\"187.20\",50,1]",
              "[\"187.30\",100,1],[\"187.31\",7,3]")},
        {"an empty book", CENT, B("", ""), 7, "AAPL", SNAP(7, TS, "", "")},
        {"only bids", CENT, B("[\"0.01\",1,1]", ""), 2, "AAPL", SNAP(2, TS, "[\"0.01\",1,1]", "")},
        {"only asks", CENT, B("", "[\"99999.99\",1000000,250]"), 3, "AAPL",
         SNAP(3, TS, "", "[\"99999.99\",1000000,250]")},
        {"tick 0.05",
         {5, 2},
         B("[\"1.10\",4,1],[\"1.05\",2,1]", "[\"1.15\",3,1]"),
         1,
         "AAPL",
         SNAP(1, TS, "[\"1.10\",4,1],[\"1.05\",2,1]", "[\"1.15\",3,1]")},
        {"tick 1 (no decimals)",
         {1, 0},
         B("[\"187\",5,1]", "[\"190\",6,2]"),
         1,
         "AAPL",
         SNAP(1, TS, "[\"187\",5,1]", "[\"190\",6,2]")},
        {"tick 1e-8",
         {1, 8},
         B("[\"0.00000001\",5,1]", "[\"12.34567891\",6,2]"),
         1,
         "AAPL",
         SNAP(1, TS, "[\"0.00000001\",5,1]", "[\"12.34567891\",6,2]")},
        {"trailing zeros are printed as the matcher prints the price", CENT,
         B("[\"187.250\",5,1],[\"187\",1,1]", ""), 1, "AAPL",
         SNAP(1, TS, "[\"187.25\",5,1],[\"187.00\",1,1]", "")},
        {"whitespace and key order do not matter, other keys are ignored", CENT,
         " { \"asks\" : [ [ \"187.30\" , 1 , 1 ] ] , \"extra\" : {\"a\":[1,{}]}, \"bids\" : [ ] , "
         "\"ts\" : \"" TS "\" } ",
         1, "AAPL", SNAP(1, TS, "", "[\"187.30\",1,1]")},
        {"the largest seq", CENT, B("", ""), UINT64_MAX, "AAPL",
         SNAP(18446744073709551615, TS, "", "")},
        {"int64 quantities", CENT, B("[\"1.00\",9223372036854775807,9223372036854775807]", ""), 1,
         "AAPL", SNAP(1, TS, "[\"1.00\",9223372036854775807,9223372036854775807]", "")},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct snap_case *c = &cases[i];
        struct feed_book b;
        struct op_buf out;
        feed_book_init(&b);
        op_buf_init(&out);
        must_parse(&b, c->book, c->tick);
        if (feed_book_snapshot_json(&b, c->symbol, c->tick, c->seq, &out) != 0)
            fail_msg("%s: snapshot failed", c->name);
        if (strcmp(out.data, c->want) != 0)
            fail_msg("%s:\n got  %s\n want %s", c->name, out.data, c->want);
        op_buf_release(&out);
        feed_book_release(&b);
    }
}

/* The symbol is JSON-escaped, and a snapshot is appended after what out holds. */
static void test_snapshot_appends_and_escapes(void **state)
{
    (void)state;
    struct feed_book b;
    struct op_buf out;
    feed_book_init(&b);
    op_buf_init(&out);
    must_parse(&b, B("[\"1.00\",1,1]", ""), cent);
    assert_int_equal(op_buf_append(&out, "prefix|", 7), 0);
    assert_int_equal(feed_book_snapshot_json(&b, "A\"B\\", cent, 5, &out), 0);
    assert_string_equal(out.data, "prefix|{\"type\":\"book\",\"kind\":\"snapshot\",\"symbol\":"
                                  "\"A\\\"B\\\\\",\"seq\":5,\"ts\":\"" TS "\",\"bids\":[[\"1.00\","
                                  "1,1]],\"asks\":[]}");
    op_buf_release(&out);
    feed_book_release(&b);
}

/* A never-parsed book is empty with ts "". */
static void test_snapshot_of_empty_init(void **state)
{
    (void)state;
    struct feed_book b;
    struct op_buf out;
    feed_book_init(&b);
    op_buf_init(&out);
    assert_int_equal(feed_book_snapshot_json(&b, "AAPL", cent, 1, &out), 0);
    assert_string_equal(out.data, SNAP(1, "", "", ""));
    op_buf_release(&out);
    feed_book_release(&b);
}

/* ---- updates -------------------------------------------------------------------- */

struct update_case {
    const char *name;
    const char *old, *cur; /* the matcher's JSON before and after */
    const char *want;      /* the exact update message (seq 2), NULL: nothing changed */
};

static void test_update_table(void **state)
{
    (void)state;
    static const struct update_case cases[] = {
        {"identical books: nothing", B("[\"187.25\",300,2]", "[\"187.30\",100,1]"),
         B("[\"187.25\",300,2]", "[\"187.30\",100,1]"), NULL},
        {"only the ts moved: nothing", B("[\"187.25\",300,2]", "[\"187.30\",100,1]"),
         B2("[\"187.25\",300,2]", "[\"187.30\",100,1]"), NULL},
        {"two empty books: nothing", B("", ""), B2("", ""), NULL},
        {"docs/feed.md's example: a bid reduced, the best ask gone",
         B("[\"187.25\",300,2]", "[\"187.30\",100,1],[\"187.35\",10,1]"),
         B2("[\"187.25\",200,1]", "[\"187.35\",10,1]"),
         UPD(2, TS2, "[\"187.25\",200,1]", "[\"187.30\",0,0]")},
        {"only the count changed", B("[\"187.25\",300,2]", ""), B2("[\"187.25\",300,3]", ""),
         UPD(2, TS2, "[\"187.25\",300,3]", "")},
        {"a new best on both sides", B("[\"187.20\",5,1]", "[\"187.40\",5,1]"),
         B2("[\"187.25\",1,1],[\"187.20\",5,1]", "[\"187.35\",2,1],[\"187.40\",5,1]"),
         UPD(2, TS2, "[\"187.25\",1,1]", "[\"187.35\",2,1]")},
        {"levels added deeper and in between",
         B("[\"187.25\",5,1],[\"187.10\",5,1]", "[\"187.30\",5,1],[\"187.50\",5,1]"),
         B2("[\"187.25\",5,1],[\"187.20\",1,1],[\"187.10\",5,1],[\"187.00\",2,2]",
            "[\"187.30\",5,1],[\"187.40\",3,1],[\"187.50\",5,1],[\"187.60\",4,4]"),
         UPD(2, TS2, "[\"187.20\",1,1],[\"187.00\",2,2]", "[\"187.40\",3,1],[\"187.60\",4,4]")},
        {"levels removed on both sides, the rest unchanged",
         B("[\"187.25\",5,1],[\"187.20\",1,1],[\"187.10\",5,1]",
           "[\"187.30\",5,1],[\"187.40\",3,1],[\"187.50\",5,1]"),
         B2("[\"187.20\",1,1]", "[\"187.40\",3,1]"),
         UPD(2, TS2, "[\"187.25\",0,0],[\"187.10\",0,0]", "[\"187.30\",0,0],[\"187.50\",0,0]")},
        {"added, changed and removed interleaved, best first",
         B("[\"10.05\",1,1],[\"10.03\",1,1],[\"10.01\",1,1]",
           "[\"10.10\",1,1],[\"10.12\",1,1],[\"10.14\",1,1]"),
         B2("[\"10.06\",1,1],[\"10.05\",2,1],[\"10.02\",1,1],[\"10.01\",1,1]",
            "[\"10.11\",1,1],[\"10.12\",1,2],[\"10.14\",1,1],[\"10.15\",9,9]"),
         UPD(2, TS2, "[\"10.06\",1,1],[\"10.05\",2,1],[\"10.03\",0,0],[\"10.02\",1,1]",
             "[\"10.10\",0,0],[\"10.11\",1,1],[\"10.12\",1,2],[\"10.15\",9,9]")},
        {"everything gone", B("[\"187.25\",5,1],[\"187.20\",1,1]", "[\"187.30\",5,1]"), B2("", ""),
         UPD(2, TS2, "[\"187.25\",0,0],[\"187.20\",0,0]", "[\"187.30\",0,0]")},
        {"from empty", B("", ""), B2("[\"187.25\",5,1]", "[\"187.30\",5,1],[\"187.31\",1,1]"),
         UPD(2, TS2, "[\"187.25\",5,1]", "[\"187.30\",5,1],[\"187.31\",1,1]")},
        {"one side changed only: the other is an empty list",
         B("[\"187.25\",5,1]", "[\"187.30\",5,1]"), B2("[\"187.25\",5,1]", "[\"187.30\",4,1]"),
         UPD(2, TS2, "", "[\"187.30\",4,1]")},
        {"the whole side moved past the old one (a sweep)",
         B("[\"5.00\",1,1],[\"4.00\",1,1]", "[\"6.00\",1,1],[\"7.00\",1,1]"),
         B2("[\"8.00\",1,1]", "[\"9.00\",1,1]"),
         UPD(2, TS2, "[\"8.00\",1,1],[\"5.00\",0,0],[\"4.00\",0,0]",
             "[\"6.00\",0,0],[\"7.00\",0,0],[\"9.00\",1,1]")},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct update_case *c = &cases[i];
        struct feed_book old, cur;
        struct op_buf out;
        feed_book_init(&old);
        feed_book_init(&cur);
        op_buf_init(&out);
        must_parse(&old, c->old, cent);
        must_parse(&cur, c->cur, cent);
        assert_int_equal(op_buf_append(&out, "x", 1), 0);
        int rc = feed_book_update_json(&old, &cur, "AAPL", cent, 2, &out);
        if (rc != (c->want ? 1 : 0))
            fail_msg("%s: returned %d, want %d (out '%s')", c->name, rc, c->want ? 1 : 0, out.data);
        if (!c->want && strcmp(out.data, "x") != 0)
            fail_msg("%s: appended '%s' for no change", c->name, out.data + 1);
        if (c->want && strcmp(out.data + 1, c->want) != 0)
            fail_msg("%s:\n got  %s\n want %s", c->name, out.data + 1, c->want);
        op_buf_release(&out);
        feed_book_release(&old);
        feed_book_release(&cur);
    }
}

/*
 * An update applied to the old book (set the level, qty 0 deletes) gives the
 * new one: checked over a deterministic random walk of 100-level books.
 */
static uint64_t rng = 88172645463325252u;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Writes a random book (up to 100 levels a side around 100.00) as the matcher would. */
static void random_book(struct op_buf *out)
{
    op_buf_reset(out);
    op_buf_printf(out, "{\"symbol\":\"AAPL\",\"ts\":\"%s\",\"bids\":[", TS);
    int n = 0;
    for (int px = 10000; px > 9800 && n < 100; px--) {
        if (next_rand() % 3 != 0)
            continue;
        op_buf_printf(out, "%s[\"%d.%02d\",%d,%d]", n++ ? "," : "", px / 100, px % 100,
                      (int)(next_rand() % 5 + 1), 1);
    }
    op_buf_printf(out, "],\"asks\":[");
    n = 0;
    for (int px = 10001; px < 10201 && n < 100; px++) {
        if (next_rand() % 3 != 0)
            continue;
        op_buf_printf(out, "%s[\"%d.%02d\",%d,%d]", n++ ? "," : "", px / 100, px % 100,
                      (int)(next_rand() % 5 + 1), (int)(next_rand() % 2 + 1));
    }
    op_buf_printf(out, "]}");
}

/* Applies the levels of the JSON array text at *p ("[[px,q,c],…]") to the
 * side v[0..*n) (kept sorted: bids descending when bid). Advances *p. */
static void apply_side(const char **p, struct feed_level *v, size_t *n, int bid)
{
    const char *s = *p;
    assert_int_equal(*s++, '[');
    while (*s != ']') {
        unsigned a, c;
        long long q, k;
        int used = 0;
        if (sscanf(s, "[\"%u.%2u\",%lld,%lld]%n", &a, &c, &q, &k, &used) != 4)
            fail_msg("cannot read a level at '%s'", s);
        s += used;
        if (*s == ',')
            s++;
        int64_t px = (int64_t)a * 100 + c;
        size_t i = 0;
        while (i < *n && (bid ? v[i].px > px : v[i].px < px))
            i++;
        if (i < *n && v[i].px == px && q == 0) {
            memmove(&v[i], &v[i + 1], (*n - i - 1) * sizeof(*v));
            (*n)--;
        } else if (i < *n && v[i].px == px) {
            v[i].qty = q;
            v[i].count = k;
        } else {
            assert_true(q > 0); /* a removal names a level that was there */
            memmove(&v[i + 1], &v[i], (*n - i) * sizeof(*v));
            v[i] = (struct feed_level){px, q, k};
            (*n)++;
        }
    }
    *p = s + 1;
}

static void test_update_applies(void **state)
{
    (void)state;
    struct feed_book old, cur;
    struct op_buf text, out;
    feed_book_init(&old);
    feed_book_init(&cur);
    op_buf_init(&text);
    op_buf_init(&out);
    random_book(&text);
    must_parse(&old, text.data, cent);
    int updates = 0;
    for (int round = 0; round < 500; round++) {
        random_book(&text);
        must_parse(&cur, text.data, cent);
        op_buf_reset(&out);
        int rc = feed_book_update_json(&old, &cur, "AAPL", cent, (uint64_t)round + 2, &out);
        assert_true(rc == 0 || rc == 1);
        if (rc == 1) {
            updates++;
            struct feed_level bids[300], asks[300];
            size_t nb = old.nbids, na = old.nasks;
            memcpy(bids, old.bids, nb * sizeof(*bids));
            memcpy(asks, old.asks, na * sizeof(*asks));
            char head[128];
            snprintf(head, sizeof(head),
                     "{\"type\":\"book\",\"kind\":\"update\",\"symbol\":\"AAPL\",\"seq\":%d,"
                     "\"ts\":\"" TS "\",\"bids\":",
                     round + 2);
            assert_memory_equal(out.data, head, strlen(head));
            const char *p = out.data + strlen(head);
            apply_side(&p, bids, &nb, 1);
            assert_memory_equal(p, ",\"asks\":", 8);
            p += 8;
            apply_side(&p, asks, &na, 0);
            assert_string_equal(p, "}");
            assert_int_equal(nb, cur.nbids);
            assert_int_equal(na, cur.nasks);
            assert_memory_equal(bids, cur.bids, nb * sizeof(*bids));
            assert_memory_equal(asks, cur.asks, na * sizeof(*asks));
        } else {
            assert_int_equal(out.len, 0);
            assert_int_equal(old.nbids, cur.nbids);
            assert_memory_equal(old.bids, cur.bids, old.nbids * sizeof(*old.bids));
        }
        feed_book_swap(&old, &cur);
    }
    assert_true(updates > 400); /* the walk does change the book */
    op_buf_release(&text);
    op_buf_release(&out);
    feed_book_release(&old);
    feed_book_release(&cur);
}

/* A snapshot parses back (as a book: its extra keys are ignored) into the same levels. */
static void test_snapshot_round_trip(void **state)
{
    (void)state;
    struct feed_book a, b;
    struct op_buf text, out;
    feed_book_init(&a);
    feed_book_init(&b);
    op_buf_init(&text);
    op_buf_init(&out);
    for (int round = 0; round < 50; round++) {
        random_book(&text);
        must_parse(&a, text.data, cent);
        op_buf_reset(&out);
        assert_int_equal(feed_book_snapshot_json(&a, "AAPL", cent, 1, &out), 0);
        must_parse(&b, out.data, cent);
        assert_int_equal(a.nbids, b.nbids);
        assert_int_equal(a.nasks, b.nasks);
        assert_memory_equal(a.bids, b.bids, a.nbids * sizeof(*a.bids));
        assert_memory_equal(a.asks, b.asks, a.nasks * sizeof(*a.asks));
        assert_string_equal(a.ts, b.ts);
        /* and the levels are the very text the matcher wrote */
        const char *lv = strstr(text.data, "\"bids\":");
        assert_non_null(strstr(out.data, lv));
    }
    op_buf_release(&text);
    op_buf_release(&out);
    feed_book_release(&a);
    feed_book_release(&b);
}

/* ---- malformed books ------------------------------------------------------------ */

struct bad_case {
    const char *text;
    struct op_tick tick;
    const char *err; /* a substring of the error message */
};

static void test_parse_rejects(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"", {1, 2}, "not valid JSON"},
        {"not json", {1, 2}, "not valid JSON"},
        {"{\"ts\":\"" TS "\",\"bids\":[],\"asks\":[]", {1, 2}, "not valid JSON"},
        {B("", "") "x", {1, 2}, "not valid JSON"},
        {B("", "") B("", ""), {1, 2}, "JSON"},
        {"{\"ts\":\"" TS "\",\"bids\":[],\"asks\":[],}", {1, 2}, "not valid JSON"},
        {"{\"ts\":\"" TS "\",\"bids\":[[\"1.00\",1,1],],\"asks\":[]}", {1, 2}, "not valid JSON"},
        {"{\"ts\":\"" TS "\",\"bids\":[[\"1.00\" 1,1]],\"asks\":[]}", {1, 2}, "not valid JSON"},
        {"[]", {1, 2}, "not a JSON object"},
        {"\"book\"", {1, 2}, "not a JSON object"},
        {"{\"bids\":[],\"asks\":[]}", {1, 2}, "no \"ts\""},
        {"{\"ts\":\"" TS "\",\"asks\":[]}", {1, 2}, "no \"bids\""},
        {"{\"ts\":\"" TS "\",\"bids\":[]}", {1, 2}, "no \"asks\""},
        {"{\"ts\":\"" TS "\",\"bids\":[],\"asks\":[],\"bids\":[]}", {1, 2}, "\"bids\" twice"},
        {"{\"ts\":\"" TS "\",\"ts\":\"" TS "\",\"bids\":[],\"asks\":[]}", {1, 2}, "\"ts\" twice"},
        {"{\"ts\":12,\"bids\":[],\"asks\":[]}", {1, 2}, "\"ts\" is not a string"},
        {"{\"ts\":\"" TS TS "\",\"bids\":[],\"asks\":[]}", {1, 2}, "\"ts\" is not a string"},
        {"{\"ts\":\"\\u00e9\",\"bids\":[],\"asks\":[]}", {1, 2}, "\"ts\" is not a string"},
        {"{\"ts\":\"" TS "\",\"bids\":{},\"asks\":[]}", {1, 2}, "\"bids\" is not an array"},
        {"{\"ts\":\"" TS "\",\"bids\":[],\"asks\":null}", {1, 2}, "\"asks\" is not an array"},
        {B("\"1.00\"", ""), {1, 2}, "bids level 0: not an array"},
        {B("[\"1.00\",1]", ""), {1, 2}, "bids level 0: not an array"},
        {B("[\"1.00\",1,1,1]", ""), {1, 2}, "bids level 0: not an array"},
        {B("[\"2.00\",1,1],{}", ""), {1, 2}, "bids level 1: not an array"},
        {B("[1.00,1,1]", ""), {1, 2}, "bids level 0: price is not a string"},
        {B("", "[\"1.001\",1,1]"), {1, 2}, "asks level 0: price has more decimals"},
        {B("", "[\"1.12\",1,1]"),
         {5, 2},
         "asks level 0: price is not a multiple of the symbol's tick"},
        {B("", "[\"1.5\",1,1]"), {1, 0}, "asks level 0: price has more decimals"},
        {B("[\"0.00\",1,1]", ""), {1, 2}, "price must be greater than zero"},
        {B("[\"-1.00\",1,1]", ""), {1, 2}, "must not carry a sign"},
        {B("[\"1e2\",1,1]", ""), {1, 2}, "exponent"},
        {B("[\"\",1,1]", ""), {1, 2}, "price is empty"},
        {B("[\" 1.00\",1,1]", ""), {1, 2}, "price must be a decimal"},
        {B("[\"92233720368547758.08\",1,1]", ""), {1, 2}, "too large"},
        {B("[\"1.00\",0,1]", ""), {1, 2}, "bids level 0: qty is not an integer >= 1"},
        {B("[\"1.00\",-1,1]", ""), {1, 2}, "qty is not an integer >= 1"},
        {B("[\"1.00\",1.5,1]", ""), {1, 2}, "qty is not an integer >= 1"},
        {B("[\"1.00\",1e2,1]", ""), {1, 2}, "qty is not an integer >= 1"},
        {B("[\"1.00\",\"1\",1]", ""), {1, 2}, "qty is not an integer >= 1"},
        {B("[\"1.00\",null,1]", ""), {1, 2}, "qty is not an integer >= 1"},
        {B("[\"1.00\",9223372036854775808,1]", ""), {1, 2}, "qty is not an integer >= 1"},
        {B("[\"1.00\",1,0]", ""), {1, 2}, "bids level 0: order count is not an integer >= 1"},
        {B("[\"1.00\",1,[1]]", ""), {1, 2}, "order count is not an integer >= 1"},
        {B("[\"1.00\",1,1],[\"1.01\",1,1]", ""), {1, 2}, "bids level 1: price not below"},
        {B("[\"1.00\",1,1],[\"1.00\",1,1]", ""), {1, 2}, "bids level 1: price not below"},
        {B("[\"3.00\",1,1],[\"2.00\",1,1],[\"2.50\",1,1]", ""), {1, 2}, "bids level 2"},
        {B("", "[\"2.00\",1,1],[\"1.99\",1,1]"), {1, 2}, "asks level 1: price not above"},
        {B("", "[\"2.00\",1,1],[\"2.000\",1,1]"), {1, 2}, "asks level 1: price not above"},
        {B("[\"2.00\",1,1]", "[\"2.00\",1,1]"), {1, 2}, "crossed"},
        {B("[\"2.01\",1,1]", "[\"2.00\",1,1]"), {1, 2}, "crossed"},
    };
    struct feed_book b;
    feed_book_init(&b);
    /* what b holds before each refused parse, and must still hold after it */
    const char *good = B("[\"187.25\",300,2],[\"187.20\",50,1]", "[\"187.30\",100,1]");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct bad_case *c = &cases[i];
        must_parse(&b, good, cent);
        char err[160] = "";
        if (feed_book_parse(&b, c->text, strlen(c->text), c->tick, err, sizeof(err)) != -1)
            fail_msg("'%s' was accepted", c->text);
        if (!strstr(err, c->err))
            fail_msg("'%s': error '%s' does not say '%s'", c->text, err, c->err);
        assert_int_equal(b.nbids, 2);
        assert_int_equal(b.nasks, 1);
        assert_int_equal(b.bids[0].px, 18725);
        assert_int_equal(b.bids[0].qty, 300);
        assert_int_equal(b.bids[0].count, 2);
        assert_int_equal(b.bids[1].px, 18720);
        assert_int_equal(b.asks[0].px, 18730);
        assert_string_equal(b.ts, TS);
    }
    feed_book_release(&b);
}

/* The length is what counts: a NUL or text past len is not part of the book. */
static void test_parse_uses_len(void **state)
{
    (void)state;
    struct feed_book b;
    char err[160];
    feed_book_init(&b);
    const char *text = B("[\"1.00\",1,1]", "") "garbage";
    size_t len = strlen(text) - strlen("garbage");
    assert_int_equal(feed_book_parse(&b, text, len, cent, err, sizeof(err)), 0);
    assert_int_equal(b.nbids, 1);
    char withnul[] = B("[\"1.00\",1,1]", "") " ";
    withnul[strlen(withnul) - 1] = '\0';
    assert_int_equal(feed_book_parse(&b, withnul, sizeof(withnul) - 1, cent, err, sizeof(err)), -1);
    assert_int_equal(feed_book_parse(&b, text, strlen(text) - 2, cent, err, sizeof(err)), -1);
    feed_book_release(&b);
}

/* A text above FEED_BOOK_TEXT_MAX is refused before it is tokenised. */
static void test_parse_too_large(void **state)
{
    (void)state;
    struct feed_book b;
    char err[160] = "";
    size_t n = FEED_BOOK_TEXT_MAX + 1;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, ' ', n);
    feed_book_init(&b);
    assert_int_equal(feed_book_parse(&b, big, n, cent, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "more than"));
    free(big);
    feed_book_release(&b);
}

/* ---- out of memory ----------------------------------------------------------------- */

static int allocs_left; /* failing hooks: succeed this many times, then fail */

static void *failing_malloc(size_t n)
{
    return allocs_left-- > 0 ? malloc(n) : NULL;
}

static void *failing_realloc(void *p, size_t n)
{
    return allocs_left-- > 0 ? realloc(p, n) : NULL;
}

static void test_out_of_memory(void **state)
{
    (void)state;
    struct op_alloc_hooks h = {failing_malloc, failing_realloc, free};
    struct feed_book old, cur;
    struct op_buf out;
    char err[160] = "";
    feed_book_init(&old);
    feed_book_init(&cur);
    op_buf_init(&out);
    must_parse(&old, B("[\"1.00\",1,1]", ""), cent);
    must_parse(&cur, B("[\"1.00\",2,1]", ""), cent);
    assert_int_equal(op_buf_append(&out, "keep", 4), 0); /* 256 bytes allocated */
    char pad[240];
    memset(pad, 'p', sizeof(pad));
    assert_int_equal(op_buf_append(&out, pad, sizeof(pad)), 0); /* 244 of 256 used */

    op_alloc_set_hooks(&h);
    allocs_left = 0;
    /* the messages do not fit in what is left: out stays as it was */
    assert_int_equal(feed_book_snapshot_json(&old, "AAPL", cent, 1, &out), -1);
    assert_int_equal(out.len, 244);
    assert_int_equal(out.data[244], '\0');
    assert_int_equal(feed_book_update_json(&old, &cur, "AAPL", cent, 2, &out), -1);
    assert_int_equal(out.len, 244);
    /* a parse that cannot get its tokens or its levels leaves the book as it was */
    assert_int_equal(feed_book_parse(&old, B("[\"2.00\",1,1]", ""), strlen(B("[\"2.00\",1,1]", "")),
                                     cent, err, sizeof(err)),
                     -1);
    assert_string_equal(err, "out of memory");
    allocs_left = 2; /* the token arrays, not the levels */
    const char *two = B("[\"2.00\",1,1],[\"1.00\",1,1]", "");
    assert_int_equal(feed_book_parse(&old, two, strlen(two), cent, err, sizeof(err)), -1);
    assert_string_equal(err, "out of memory");
    assert_int_equal(old.nbids, 1);
    assert_int_equal(old.bids[0].px, 100);
    assert_int_equal(old.bids[0].qty, 1);
    op_alloc_set_hooks(NULL);

    assert_int_equal(feed_book_parse(&old, two, strlen(two), cent, err, sizeof(err)), 0);
    assert_int_equal(old.nbids, 2);
    assert_int_equal(feed_book_update_json(&old, &cur, "AAPL", cent, 2, &out), 1);
    assert_memory_equal(out.data, "keep", 4);
    op_buf_release(&out);
    feed_book_release(&old);
    feed_book_release(&cur);
}

/* swap exchanges levels and ts; release empties. */
static void test_swap_release(void **state)
{
    (void)state;
    struct feed_book a, b;
    feed_book_init(&a);
    feed_book_init(&b);
    must_parse(&a, B("[\"1.00\",1,1]", ""), cent);
    must_parse(&b, B2("", "[\"3.00\",1,1],[\"4.00\",1,1]"), cent);
    feed_book_swap(&a, &b);
    assert_int_equal(a.nbids, 0);
    assert_int_equal(a.nasks, 2);
    assert_string_equal(a.ts, TS2);
    assert_int_equal(b.nbids, 1);
    assert_int_equal(b.bids[0].px, 100);
    assert_string_equal(b.ts, TS);
    feed_book_release(&a);
    assert_null(a.bids);
    assert_null(a.asks);
    assert_int_equal(a.nasks, 0);
    assert_string_equal(a.ts, "");
    feed_book_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_table),
        cmocka_unit_test(test_snapshot_appends_and_escapes),
        cmocka_unit_test(test_snapshot_of_empty_init),
        cmocka_unit_test(test_update_table),
        cmocka_unit_test(test_update_applies),
        cmocka_unit_test(test_snapshot_round_trip),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_parse_uses_len),
        cmocka_unit_test(test_parse_too_large),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_swap_release),
    };
    return cmocka_run_group_tests_name("feed_book", tests, NULL, NULL);
}

/* A symbol's published depth: the matcher's book JSON in, the feed's book snapshot and update
 * messages out. */
#ifndef FEED_BOOK_H
#define FEED_BOOK_H

#include <stddef.h>
#include <stdint.h>

#include "shared/buf.h"
#include "shared/decimal.h"

/*
 * Pure code: no I/O, no clock. The feed reads `book:{S}:<SYMBOL>` (written by
 * the matcher at most every MATCHER_BOOK_MS, docs/matcher.md "Market data"),
 * parses it with feed_book_parse into a fresh feed_book, sends a client that
 * subscribes feed_book_snapshot_json of it and every subscriber
 * feed_book_update_json(previous, fresh); then the fresh book becomes the
 * previous one (feed_book_swap). Messages are those of docs/feed.md:
 *
 *   {"type":"book","kind":"snapshot","symbol":"AAPL","seq":1,"ts":"…",
 *    "bids":[["187.25",300,2],…],"asks":[["187.30",100,1],…]}
 *   {"type":"book","kind":"update","symbol":"AAPL","seq":2,"ts":"…",
 *    "bids":[["187.25",200,1]],"asks":[["187.30",0,0]]}
 *
 * Prices are held as int64 ticks of the symbol and printed with
 * op_decimal_format, exactly as the matcher prints them: never a double.
 */

/* One aggregated price level. */
struct feed_level {
    int64_t px;    /* price in ticks of the symbol, >= 1 */
    int64_t qty;   /* total open quantity at px, >= 1 */
    int64_t count; /* orders resting at px, >= 1 */
};

/* Longest "ts" text kept (the matcher writes 27 characters). */
#define FEED_BOOK_TS_MAX 48

/*
 * Why a bound on the text: the matcher writes at most MATCHER_BOOK_LEVELS_MAX
 * (100) levels a side, a few KiB; anything above 1 MiB in a book key is not
 * the matcher's and is refused before tokenising it.
 */
#define FEED_BOOK_TEXT_MAX ((size_t)1 << 20)

/* One symbol's published depth. Owns bids and asks (init/release). */
struct feed_book {
    struct feed_level *bids;   /* [capbids], nbids used; best (highest px) first */
    struct feed_level *asks;   /* [capasks], nasks used; best (lowest px) first */
    size_t nbids, nasks;       /* levels in use */
    size_t capbids, capasks;   /* levels allocated, kept across parses */
    char ts[FEED_BOOK_TS_MAX]; /* the matcher's "ts" text, copied; "" before the first parse */
};

/* An empty book, nothing allocated. */
void feed_book_init(struct feed_book *b);

/* Frees the levels; b is then empty again (as after feed_book_init). */
void feed_book_release(struct feed_book *b);

/* Exchanges the contents (levels and ts) of a and b; allocates nothing. */
void feed_book_swap(struct feed_book *a, struct feed_book *b);

/*
 * Parses the matcher's book JSON text[0..len) (no NUL needed), of a symbol
 * whose tick is `tick`, into b, replacing its content:
 *
 *   {"symbol":"AAPL","ts":"2026-11-21T10:00:00.000000Z",
 *    "bids":[["187.25",300,2],…],"asks":[["187.30",100,1],…]}
 *
 * "ts" (a string of fewer than FEED_BOOK_TS_MAX ASCII characters), "bids" and
 * "asks" (arrays) are required; other keys ("symbol", or what a newer matcher
 * adds) are ignored; a key given twice is refused. Each level is an array of
 * exactly a price string that is a positive multiple of the tick, a quantity
 * and an order count, both integers >= 1. Bids must be strictly descending,
 * asks strictly ascending, and the best bid below the best ask (a crossed
 * book is not a matcher's). Returns 0, or -1 with a message in err (errlen
 * bytes, NUL-terminated) naming the side, level and problem — malformed JSON,
 * a wrong type, a price off the tick, unsorted levels, out of memory; b is
 * unchanged on error (its capacity may have grown).
 */
int feed_book_parse(struct feed_book *b, const char *text, size_t len, struct op_tick tick,
                    char *err, size_t errlen);

/*
 * Appends to out the snapshot message of b for `symbol` (JSON-escaped),
 * with sequence number seq and b's ts, every level of b (docs/feed.md).
 * Returns 0, or -1 out of memory (out is then as it was).
 */
int feed_book_snapshot_json(const struct feed_book *b, const char *symbol, struct op_tick tick,
                            uint64_t seq, struct op_buf *out);

/*
 * Appends to out the update message that turns old into cur for `symbol`,
 * with sequence number seq and cur's ts: per side, best first, the levels of
 * cur that are new or whose qty or count changed as they are in cur, and the
 * levels of old that cur no longer has as [price,0,0]. Returns 1 when it
 * appended one, 0 when no level changed (nothing appended, whatever the ts:
 * the seq is then not used), -1 out of memory (out is then as it was).
 */
int feed_book_update_json(const struct feed_book *old, const struct feed_book *cur,
                          const char *symbol, struct op_tick tick, uint64_t seq,
                          struct op_buf *out);

#endif

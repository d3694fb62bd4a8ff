/* The feed's JSON: execution reports as an account sees them, public trades, positions. */
#ifndef FEED_FORMAT_H
#define FEED_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "shared/buf.h"
#include "shared/msg.h"
#include "shared/sid.h"
#include "shared/symbols.h"

/*
 * Pure functions (no I/O, no clock): every message text of docs/feed.md is
 * built here, so that tests can compare it byte for byte. Each appends to
 * out and returns 0, or -1 when out could not grow (out then holds a
 * prefix: the caller drops the message).
 *
 * sym is the report's symbol in SYMBOLS_FILE, or NULL when it is not
 * listed there: prices are then written as integer ticks in `*_ticks`
 * fields, since their decimal form is unknown.
 */

/* Which leg of a report an account receives: the order `id` (the taker's,
 * for a trade) or the maker's leg of a trade. */
enum feed_leg {
    FEED_LEG_ORDER = 0,
    FEED_LEG_MAKER = 1,
};

/* The account a leg concerns: r->account for FEED_LEG_ORDER, the maker's
 * for FEED_LEG_MAKER; "" when the report concerns nobody (a tick). */
const char *feed_leg_account(const struct op_report *r, enum feed_leg leg);

/* Appends the report object of docs/feed.md ("orders" channel) for leg. */
int feed_format_report(struct op_buf *out, const struct op_report *r, enum feed_leg leg,
                       const struct op_symbol *sym);

/* Appends the public trade object of a TRADE report (no account names). */
int feed_format_trade(struct op_buf *out, const struct op_report *r, const struct op_symbol *sym);

/* Appends a JSON string literal of the n bytes at s: quotes, escapes for
 * '"', '\\' and control characters, and \u00XX for bytes >= 0x80 (the
 * streams carry ASCII; anything else is shown, never sent as invalid
 * UTF-8, which a browser would close the socket over). */
int feed_json_str(struct op_buf *out, const char *s, size_t n);

/* Writes ns (since the epoch) as RFC 3339 UTC with nanoseconds,
 * "2026-12-06T21:00:00.123456789Z", into out (at least 40 bytes). */
void feed_format_time(uint64_t ns, char *out, size_t size);

/* A position component "S:ms-seq" (docs/feed.md, "Positions"). */
int feed_format_pos_part(struct op_buf *out, uint32_t shard, struct op_sid id);

#endif

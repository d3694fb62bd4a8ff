/* Redis stream ids ("ms-seq") as numbers: parse, compare, format, successor. */
#ifndef OP_SID_H
#define OP_SID_H

#include <stddef.h>
#include <stdint.h>

/*
 * One grammar for every id the services read back from Redis (entry ids,
 * last-delivered-id, XPENDING / XAUTOCLAIM ids, the id stored in snap:{S}):
 *
 *     id   = part "-" part
 *     part = "0" | [1-9][0-9]*        (at most UINT64_MAX)
 *
 * Both parts are required; no sign, no whitespace, no leading zeros, no
 * trailing bytes. That is exactly what Redis writes (and what
 * op_sid_format writes), so format(parse(s)) == s for every accepted s.
 * Anything else (an empty string, "5" without a sequence, "1-2x", an
 * overflowing part) is not an id.
 */
struct op_sid {
    uint64_t ms;  /* milliseconds part */
    uint64_t seq; /* sequence within the millisecond */
};

/* "18446744073709551615-18446744073709551615" (41) + an optional '(' + NUL. */
#define OP_SID_TEXT_MAX 43

/* Parses the len bytes at s (no NUL needed) into *out. Returns 0, or -1
 * when they are not an id by the grammar above (*out is then unspecified). */
int op_sid_parse(const char *s, size_t len, struct op_sid *out);

/* -1, 0 or 1 as a is below, equal to or above b (numerically, ms first). */
int op_sid_cmp(struct op_sid a, struct op_sid b);

/* Writes id as "ms-seq" into buf (OP_SID_TEXT_MAX bytes), preceded by '('
 * when exclusive (an exclusive XRANGE bound). Returns buf. */
char *op_sid_format(struct op_sid id, int exclusive, char *buf);

/* The smallest id above a (seq + 1, or the next ms at seq UINT64_MAX);
 * the maximum id is returned unchanged. */
struct op_sid op_sid_next(struct op_sid a);

#endif

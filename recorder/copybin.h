/* PostgreSQL's binary COPY format, written into a buffer: no text for the server to parse. */
#ifndef REC_COPYBIN_H
#define REC_COPYBIN_H

#include <stddef.h>
#include <stdint.h>

#include "shared/buf.h"
#include "shared/decimal.h"

/*
 * Pure code: bytes into an op_buf, no I/O. The layout is PostgreSQL's
 * (documentation of COPY, "Binary Format"; every integer big-endian):
 *
 *   header   "PGCOPY\n\377\r\n\0", int32 flags (0: no OIDs), int32 length
 *            of the header extension (0)
 *   tuple    int16 number of fields, then per field an int32 length and
 *            that many bytes of the type's send format; length -1 is NULL
 *   trailer  int16 -1
 *
 * The send formats used: bigint (int64), boolean (one byte 0/1), text (the
 * bytes, no terminator, no escaping), timestamptz (int64 microseconds since
 * 2000-01-01 00:00:00 UTC) and numeric (below). A column's type must be the
 * one the table has: the server reads the bytes as that type's binary form,
 * never converts them.
 *
 * The field writers do not grow the buffer: the caller reserves room first
 * (op_buf_reserve), at most REC_COPYBIN_NUMERIC_MAX bytes for a numeric,
 * 12 for bigint and timestamptz, 5 for boolean, 4 + n for text, 2 for a
 * tuple's start.
 */

/* Bytes of the header and of the trailer. */
#define REC_COPYBIN_HEADER_LEN 19
#define REC_COPYBIN_TRAILER_LEN 2
/* A numeric field at most: length, 4 int16 of header, and the base-10000
 * digits of 39 integer digits (2^127) and OP_DECIMAL_MAX_SCALE decimals,
 * rounded up. */
#define REC_COPYBIN_NUMERIC_MAX 48

/* Writes the header / the trailer into out; returns its length. */
size_t rec_copybin_header(char out[REC_COPYBIN_HEADER_LEN]);
size_t rec_copybin_trailer(char out[REC_COPYBIN_TRAILER_LEN]);

/* Starts a tuple of nfields fields; the caller then writes exactly that many. */
void rec_copybin_tuple(struct op_buf *o, int nfields);
void rec_copybin_null(struct op_buf *o);
/* A bigint. An id kept as uint64_t must be <= INT64_MAX: the caller checks it
 * (recorder/batch.c sets such reports aside), the bytes cannot. */
void rec_copybin_int8(struct op_buf *o, int64_t v);
void rec_copybin_bool(struct op_buf *o, int v);
/* n bytes of s (valid in the database's encoding: the server checks it). */
void rec_copybin_text(struct op_buf *o, const char *s, size_t n);
/* ts_ns nanoseconds since the Unix epoch, truncated to the microsecond
 * (PostgreSQL's resolution, as the text format wrote it). */
void rec_copybin_timestamptz(struct op_buf *o, uint64_t ts_ns);

/*
 * A numeric of value ticks * tick, with display scale tick.scale (so that
 * price::text is what op_decimal_format writes: "187.25" for 18725 ticks of
 * 0.01, "0.00" for 0). PostgreSQL's numeric send format: int16 ndigits,
 * int16 weight, uint16 sign (0x0000 positive, 0x4000 negative), int16
 * dscale, then ndigits int16 base-10000 digits, most significant first; value
 * = sum of digit[i] * 10000^(weight - i). Written normalised, as the server
 * stores it: no leading or trailing zero digit, zero as ndigits 0, weight 0,
 * sign positive (there is no negative zero).
 */
void rec_copybin_numeric(struct op_buf *o, int64_t ticks, struct op_tick tick);

#endif

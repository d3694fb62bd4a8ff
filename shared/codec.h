/* The msgpack codec for every stream message: orders in, execution reports out. */
#ifndef OP_CODEC_H
#define OP_CODEC_H

#include <stdbool.h>
#include <stddef.h>

#include "shared/buf.h"
#include "shared/msg.h"

/*
 * The wire form (field names, types, which are required) is documented in
 * schemas/messages.md; codec.c is the only file that includes <msgpack.h>
 * (for the reference encoders and decoders: the hot paths write and read the
 * bytes themselves, and so do the engine's snapshots, through op_mp_*).
 *
 * Decoders work on a buffer, never a socket; they check every type and
 * length and return an error for truncated, corrupt, wrongly-typed or
 * oversized input, never crash and never read past len. Unknown map keys are
 * ignored so that a newer writer can add fields.
 */

/* Why 4 KiB: an order map is under 300 bytes; anything near this is garbage. */
#define OP_CODEC_ORDER_MAX 4096
/* Why 1 MiB: one fills entry carries every report of one input; the matcher
 * splits a sweep into entries of at most OP_CODEC_REPORTS_MAX reports, each
 * well under 256 bytes. */
#define OP_CODEC_REPORTS_BYTES_MAX (1u << 20)
#define OP_CODEC_REPORTS_MAX 4096
/* The most bytes op_codec_encode_order writes for one order (see codec.c). */
#define OP_CODEC_ORDER_ENCODED_MAX 320
/* Why 4096: an orders entry holds what one ingest writer round took for one
 * shard, and a round takes at most 4096 inputs (ingest/writer.c); its bytes
 * follow from ingest's encoding of an order (OP_CODEC_ORDER_ENCODED_MAX). */
#define OP_CODEC_ORDERS_MAX 4096
#define OP_CODEC_ORDERS_BYTES_MAX (5 + OP_CODEC_ORDERS_MAX * OP_CODEC_ORDER_ENCODED_MAX)

/* A decoder's reusable state (a msgpack zone); one per thread. */
struct op_codec;

/* Returns a new decoder, or NULL on allocation failure. Free with op_codec_free. */
struct op_codec *op_codec_new(void);
void op_codec_free(struct op_codec *c);

/* The last decode error, a constant lowercase string ("truncated input", …). */
const char *op_codec_error(const struct op_codec *c);

/* The same decoders through msgpack-c's unpacker: the references the direct
 * decoders are tested against (same acceptance, same output). */
int op_codec_decode_order_msgpack(struct op_codec *c, const void *data, size_t len,
                                  struct op_order_msg *m);
int op_codec_decode_reports_msgpack(struct op_codec *c, const void *data, size_t len,
                                    struct op_report *out, size_t max, size_t *n);

/* Appends the msgpack map of m to out. Returns 0, or -1 on allocation failure
 * or an invalid kind. */
int op_codec_encode_order(struct op_buf *out, const struct op_order_msg *m);

/* The same bytes as op_codec_encode_order, through msgpack-c's packer: the
 * reference the fast encoder is tested against. */
int op_codec_encode_order_msgpack(struct op_buf *out, const struct op_order_msg *m);

/* Decodes len bytes at data into *m (zeroed first). Returns 0, or -1 with
 * op_codec_error(c) saying why. */
int op_codec_decode_order(struct op_codec *c, const void *data, size_t len, struct op_order_msg *m);

/* One input's bytes inside an orders entry's `m`. */
struct op_span {
    size_t off, len;
};

/*
 * Splits the `m` of an orders entry into its inputs (schemas/messages.md):
 * a msgpack array of order maps gives one span per element; anything else
 * (one map: an entry of a single input, the form before group commit) one
 * span covering all of it. An element whose bytes are not one complete
 * msgpack value ends the walk: it and everything after it form the last
 * span (which then does not decode). Decode each span with
 * op_codec_decode_order. Returns the number of spans, at least 1 and at
 * most max; or -1 with op_codec_error when the entry is larger than
 * OP_CODEC_ORDERS_BYTES_MAX, holds more than max inputs, or holds none.
 */
long op_codec_split_orders(struct op_codec *c, const void *data, size_t len, struct op_span *out,
                           size_t max);

/* Why 8: the `sym` field of orders and fills entries is for a human in
 * redis-cli; a batch of a busy shard can touch every symbol of it, and the
 * list must stay short. */
#define OP_SYM_SUMMARY_MAX 8

/* The `sym` field of an entry (schemas/messages.md): its distinct symbols
 * in order of first appearance, at most OP_SYM_SUMMARY_MAX, then ",...".
 * Zero it to start; it keeps the strings by reference. */
struct op_sym_summary {
    const char *seen[OP_SYM_SUMMARY_MAX];
    size_t n;
    bool more;
};
void op_sym_summary_add(struct op_sym_summary *s, const char *sym);
/* Appends the field ("AAPL,MSFT" or "AAPL,…,TSLA,...") and a NUL. 0 or -1. */
int op_sym_summary_put(struct op_buf *out, const struct op_sym_summary *s);

/*
 * Appends the readable fields of an orders entry holding msgs[0 … n)
 * (n >= 1), each NUL-terminated (schemas/messages.md): `type` (the kinds
 * it holds, in kind order: "new,cancel"), `sym` (its symbols in order of
 * first appearance, at most 8, then ",..."; a cancel-all of every symbol
 * adds none), `n` and `ids` (first..last order id, or the one id, of the
 * inputs that name an order — cancel-alls do not —, or "-" when none
 * does). Returns 0, or -1 out of memory.
 */
int op_codec_orders_fields(struct op_buf *out, const struct op_order_msg *const *msgs, size_t n);

/* Appends the `m` of an orders entry: a msgpack array of the n orders.
 * Returns 0, or -1 out of memory or an invalid kind. */
int op_codec_encode_orders(struct op_buf *out, const struct op_order_msg *const *msgs, size_t n);

/* The `sym` of a map that does not decode as an order (a malformed input),
 * when it has one of 1-15 bytes without NUL: copied into sym (OP_SYMBOL_MAX
 * bytes), 0; else -1. */
int op_codec_peek_symbol(const void *data, size_t len, char *sym);

/* Appends a msgpack array of the n reports (n <= OP_CODEC_REPORTS_MAX) to out.
 * Returns 0, or -1 on allocation failure or n too large. */
int op_codec_encode_reports(struct op_buf *out, const struct op_report *r, size_t n);

/* The same bytes as op_codec_encode_reports, through msgpack-c's packer: the
 * reference the fast encoder is tested against. */
int op_codec_encode_reports_msgpack(struct op_buf *out, const struct op_report *r, size_t n);

/*
 * Decodes an array of reports into out[0..max); stores the count in *n.
 * Returns 0, or -1 (with op_codec_error) when the input is malformed or holds
 * more than max reports.
 */
int op_codec_decode_reports(struct op_codec *c, const void *data, size_t len, struct op_report *out,
                            size_t max, size_t *n);

/* ---- raw msgpack, for the engine's snapshots (matcher/engine/snapshot.c) ----
 *
 * So that this file stays the one wrapper of msgpack: writers that append
 * msgpack-c's own encoding of a value (the shortest form: a snapshot's body
 * must be canonical), and a reader over bytes op_mp_check_all accepted.
 */

/* 0 when data[0 … len) is exactly one msgpack value, nested at most
 * max_depth deep, every length and count within the bytes; else -1. */
int op_mp_check_all(const void *data, size_t len, int max_depth);

/* Each appends one value to out; 0, or -1 out of memory. */
int op_mp_put_array(struct op_buf *out, uint32_t n);
int op_mp_put_uint(struct op_buf *out, uint64_t v);
int op_mp_put_int(struct op_buf *out, int64_t v);
int op_mp_put_bool(struct op_buf *out, bool v);
int op_mp_put_str(struct op_buf *out, const char *s, size_t n);
int op_mp_put_bin(struct op_buf *out, const void *data, size_t n);

/* A cursor over p[0 … len), which op_mp_check_all accepted. */
struct op_mp_reader {
    const unsigned char *p; /* (ref) */
    size_t len;
    size_t off; /* the next value */
};

/* Each reads the next value when it is of that type (an unsigned integer
 * at most max; the header only of an array, whose n elements follow; a
 * string or bin by reference into p) and moves past it: 0; else -1 with the
 * cursor unchanged. */
int op_mp_get_array(struct op_mp_reader *r, uint32_t *n);
int op_mp_get_uint(struct op_mp_reader *r, uint64_t max, uint64_t *v);
int op_mp_get_bool(struct op_mp_reader *r, bool *v);
int op_mp_get_str(struct op_mp_reader *r, const char **s, size_t *n);
int op_mp_get_bin(struct op_mp_reader *r, const void **data, size_t *n);

#endif

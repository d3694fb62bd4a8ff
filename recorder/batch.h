/* A batch of fills entries: decoded reports, poison detection, and the binary COPY rows to write
 * them. */
#ifndef REC_BATCH_H
#define REC_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "shared/buf.h"
#include "shared/codec.h"
#include "shared/msg.h"
#include "shared/symbols.h"

/*
 * Pure code: no I/O, no clock. The stream module fills a batch with entries
 * (rec_batch_add), the store module asks for the COPY rows of any range of
 * their reports (rec_batch_build) — the whole batch, or a half while it
 * bisects a batch that PostgreSQL refused, down to a single report: one bad
 * report is dead-lettered alone, never with the entry (a matcher batch) that
 * carries it. Every array is reused across batches
 * (rec_batch_reset keeps the allocations), so steady state does not allocate.
 *
 * What a report becomes (see docs/recorder.md):
 *   ACCEPTED            order row: description, created_at, state
 *   TRADE               fills row; taker state (with its description);
 *                       maker state (no description: it is not in the report;
 *                       its price is the trade's, always the maker's)
 *   CANCELLED, AMENDED, order state (+ description); reject_reason = cancel
 *   REPLACED            reason (a CANCELLED's only). The state includes the
 *                       price, which a REPLACED changes: it moves forward
 *                       with the version like qty
 *   TRIGGERED           order state (+ description) like the above: a stop
 *                       left PENDING_TRIGGER and entered (status NEW)
 *   CANCEL_ALL_DONE,    nothing (they concern no order, id 0: the CANCELLED
 *   DEAD_MAN, TICK      reports before a CANCEL_ALL_DONE carry the changes);
 *                       not dead letters, not counted as ignored rejects
 *   REJECTED, req NEW   order row with status REJECTED, reject_reason, created_at;
 *                       values the table cannot hold (qty < 1, a side/type/tif
 *                       outside its enum, a client_order_id breaking its
 *                       grammar, the price of an unlisted symbol) are NULL
 *   any report above    set aside (dead letter) when an id it writes is above
 *                       2^63-1: the bigint columns cannot hold it
 *   REJECTED otherwise  nothing (a rejected cancel/amend/cancel-all leaves its
 *                       order as it was; a duplicate-id new order is not the
 *                       order of that id; an id outside 1 … 2^63-1 can have
 *                       no row)
 * Within a range, all the states of one order collapse into one row: the
 * state (price included) of the highest report_id, the description of any
 * report carrying it, created_at of its ACCEPTED/REJECTED report.
 */

/* "18446744073709551615-18446744073709551615" plus NUL, rounded up. */
#define REC_ID_MAX 48
/* Room for an error such as "unknown symbol 'XXXXXXXXXXXXXXX'" or a codec message. */
#define REC_ERR_MAX 96

/* One stream entry of the batch. */
struct rec_entry {
    uint32_t shard;      /* fills:{shard} */
    char id[REC_ID_MAX]; /* stream entry id, NUL-terminated */
    size_t raw_off;      /* its `m` field: batch->raw.data[raw_off .. +raw_len) */
    size_t raw_len;
    int has_raw;  /* 0 when the entry had no `m` field */
    size_t first; /* its reports: batch->reports[first .. first + n) */
    size_t n;
    char err[REC_ERR_MAX]; /* "" or why it cannot be recorded (poison: dead letter) */
};

/* A report that cannot be recorded, found before writing (a symbol
 * SYMBOLS_FILE does not list, a client_order_id breaking its grammar; an
 * unknown kind too, though the codec refuses such an entry first):
 * dead-lettered alone. */
struct rec_bad_report {
    size_t report;         /* index in batch->reports */
    char err[REC_ERR_MAX]; /* why */
};

/* One order's merged row (internal to rec_batch_build; here for sizing). */
struct rec_order_row {
    uint64_t order_id;
    const struct op_report *state; /* (ref) report of the highest version */
    const struct op_report *desc;  /* (ref) a report carrying the description, or NULL */
    uint64_t created_ns;           /* ts of its ACCEPTED/REJECTED report, 0 if none */
    int state_is_maker;            /* state comes from the maker_* fields of a TRADE */
};

/* A trade of the range being built (internal to rec_batch_build). */
struct rec_trade_ref {
    uint64_t fill_id;            /* its report_id */
    const struct op_report *rep; /* (ref) into batch->reports */
};

struct rec_batch {
    const struct op_symtab *syms; /* (ref) ticks of each symbol, for prices */
    struct op_codec *codec;       /* owned decoder */
    struct rec_entry *entries;    /* [0 .. nentries) */
    size_t nentries, cap_entries;
    struct op_report *reports; /* decoded reports of every entry */
    size_t nreports, cap_reports;
    uint32_t *rep_entry; /* [cap_reports]: the entry of each report */
    uint8_t *rep_skip;   /* [cap_reports]: 1 = in bad[], never written */
    struct rec_bad_report *bad;
    size_t nbad, cap_bad;
    struct op_buf raw; /* the entries' `m` bytes, back to back */
    size_t rows;       /* reports that write something (the size limit's unit) */
    size_t npoison;    /* entries with err set, plus bad reports */
    int64_t first_ms;  /* monotonic ms when the first entry came in (caller's) */
    /* rec_batch_build's merge table, reused */
    struct rec_order_row *orders;
    size_t norders, cap_orders;
    struct rec_trade_ref *trades; /* the range's trades, sorted by fill_id */
    size_t cap_trades;
    uint32_t *slots; /* open addressing: orders index + 1, 0 = empty */
    size_t nslots;   /* a power of two */
    /* counters since the last rec_batch_reset, for the caller's metrics */
    uint64_t ignored_rejects;
};

/* Prepares b (empty). syms must outlive b. Returns 0, or -1 out of memory. */
int rec_batch_init(struct rec_batch *b, const struct op_symtab *syms);
void rec_batch_release(struct rec_batch *b);
/* Empties b, keeping its allocations. */
void rec_batch_reset(struct rec_batch *b);

/*
 * Appends one stream entry: id (idlen bytes) of fills:{shard} with its `m`
 * field (m may be NULL: then the entry is poison, "entry has no 'm' field").
 * Decodes it; an undecodable entry is kept as poison (err set, no reports),
 * a report of an unlisted symbol or with a bad client_order_id (except a
 * REJECTED one, recordable with NULLs) goes to bad[] while the entry's other reports
 * stay, so that the store dead-letters just those and acknowledges the entry.
 * Returns 0, or -1 out of memory (nothing appended).
 */
int rec_batch_add(struct rec_batch *b, uint32_t shard, const char *id, size_t idlen, const void *m,
                  size_t mlen);

/*
 * Appends an entry that is known to be unrecordable without its content (for
 * instance deleted from the stream before it was recorded): poison with the
 * given reason and no raw bytes. Returns 0, or -1 out of memory.
 */
int rec_batch_add_poison(struct rec_batch *b, uint32_t shard, const char *id, size_t idlen,
                         const char *why);

/* The columns of the COPY rows, in order: the one definition the store's
 * COPY, staging tables and upsert are written with; and how many. */
#define REC_FILLS_COLUMNS                                                                          \
    "fill_id, symbol, price, qty, maker_order_id, taker_order_id, maker_account, "                 \
    "taker_account, taker_side, matched_at"
#define REC_ORDERS_COLUMNS                                                                         \
    "order_id, client_order_id, account, symbol, side, type, tif, post_only, price, qty, "         \
    "filled_qty, status, reject_reason, created_at, updated_at, version"
#define REC_FILLS_NCOLS 10
#define REC_ORDERS_NCOLS 16

/*
 * The COPY rows of a range of entries in PostgreSQL's binary format
 * (recorder/copybin.h: numeric, timestamptz and bigint as the server stores
 * them, nothing for it to parse), tuples only — the store sends the header
 * before and the trailer after, so that two lists can go into one COPY —
 * split by how the store writes it:
 *   fills       one row per trade, columns of `fills` up to matched_at, in
 *               fill_id order;
 *   new_orders  orders rows created by a report of the range (their ACCEPTED,
 *               or REJECTED new order, is in it): rows the table most likely
 *               does not hold yet, in order_id order;
 *   upd_orders  the other orders rows (a later state of an order created
 *               earlier), in order_id order.
 * Columns: REC_FILLS_COLUMNS and REC_ORDERS_COLUMNS, in that order. Orders
 * rows are unique by order_id across both lists.
 * Sorted so that two recorders writing overlapping rows lock them in one
 * order, and so that the primary keys are appended in key order.
 */
struct rec_copy {
    struct op_buf fills;
    struct op_buf new_orders;
    struct op_buf upd_orders;
    size_t nfills, nnew, nupd; /* rows in each */
};

void rec_copy_init(struct rec_copy *c);
void rec_copy_release(struct rec_copy *c);

/*
 * Builds into out (reset first) the COPY rows of reports [lo, hi) of b
 * (indices into b->reports, whatever entries they belong to); bad reports
 * are skipped. Returns 0, or -1 out of memory.
 */
int rec_batch_build(struct rec_batch *b, size_t lo, size_t hi, struct rec_copy *out);

/* Appends to out the msgpack array of the one report k (a dead letter's raw
 * bytes). Returns 0, or -1 out of memory. */
int rec_batch_report_raw(const struct rec_batch *b, size_t k, struct op_buf *out);

#endif

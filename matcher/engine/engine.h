/* The matching engine of one shard: pure, deterministic order matching with no I/O. */
#ifndef OP_ENGINE_H
#define OP_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "matcher/engine/book.h"
#include "shared/msg.h"
#include "shared/symbols.h"

/*
 * One struct eng holds every book of one shard. eng_apply() takes one input
 * (struct op_order_msg) and appends its execution reports (struct op_report)
 * to a caller-owned buffer. Nothing here reads the clock, does I/O or
 * depends on addresses: the same inputs give byte-identical reports.
 * Semantics, report order and limits are in docs/engine.md; in short:
 *
 *   NEW    → REJECTED                                  (invalid / duplicate id /
 *                                                       open-order limit)
 *          | ACCEPTED, (TRADE | self-trade reports)*, [CANCELLED reason]
 *                                                      (IOC/market remainder,
 *                                                       FOK kill, post-only,
 *                                                       self-trade)
 *   CANCEL → CANCELLED USER_CANCEL | REJECTED (req_kind CANCEL)
 *   AMEND  → AMENDED (qty down)    | REPLACED, then as a NEW after its
 *            ACCEPTED (new price or more qty: back of the level)
 *                                  | REJECTED (req_kind AMEND)
 *   CANCEL_ALL → CANCELLED USER_CANCEL*, CANCEL_ALL_DONE | REJECTED
 *
 * Report ids: report_id = (seq << ENG_SHARD_BITS) | shard, where seq counts
 * every report of the shard from 1. Ids thus increase with emission order
 * within a shard, never collide across shards (shard < 1024) and are
 * reproduced by a replay from the same snapshot.
 *
 * Engine layout (book layout in book.h):
 *
 *   struct eng (shard 3)
 *   ├─ books[]   ─▶ struct book "AAPL", "MSFT", …   created on first NEW order
 *   ├─ symtab    open addressing: symbol ─▶ book index
 *   ├─ ids       open addressing, linear probing, backward-shift delete:
 *   │              order_id ─▶ struct book_order *          (open order)
 *   │                        ─▶ closed ring slot  (tag bit 0) (recently closed)
 *   ├─ accounts  interned account names (index ─▶ name, name ─▶ index); never
 *   │            shrinks: bounded by the accounts of the API key file
 *   ├─ closed    ring of { order_id, account, book } × closed_max;
 *   │            a newly closed order evicts the oldest (forgotten: a cancel
 *   │            then answers UNKNOWN_ORDER and the id may be reused)
 *   └─ pools     order and level slabs with free lists (book_pool)
 */

/* Bits of report_id that hold the shard number. */
#define ENG_SHARD_BITS 10
#define ENG_SHARD_MAX (1u << ENG_SHARD_BITS) /* shards are 0 … 1023 */

/* Largest order quantity the engine accepts (2^31-1 lots, ~2,000 times the
 * contract's 1,000,000): a level's open sum then cannot overflow int64
 * before it holds 2^32 orders, far more than memory allows. */
#define ENG_QTY_MAX INT64_C(2147483647)

/* Closed orders remembered by default (to answer ORDER_CLOSED / DUPLICATE_ID):
 * 1M records = 16 MiB of ring + at most 64 MiB of id-map slots per shard,
 * allocated as they fill; ~10 s of flow at 100k orders/s, more than any
 * client needs to see its cancel of a just-filled order answered precisely.
 * Beyond it a cancel answers UNKNOWN_ORDER (still a no-op). */
#define ENG_CLOSED_DEFAULT (1u << 20)
/* Upper bound accepted by eng_new / restore (keeps the map's size sane). */
#define ENG_CLOSED_LIMIT (1u << 26)

/* A caller-owned, growable array of reports; reset it per batch. */
struct eng_reports {
    struct op_report *v; /* reports, v[0 … len-1] */
    size_t len;          /* reports in use */
    size_t cap;          /* allocated reports */
};

void eng_reports_init(struct eng_reports *r);
void eng_reports_release(struct eng_reports *r);
static inline void eng_reports_reset(struct eng_reports *r)
{
    r->len = 0;
}

/* A record of a recently closed order. */
struct eng_closed {
    uint64_t id;      /* order_id */
    uint32_t account; /* owner, index in the account table */
    uint32_t book;    /* index of its book */
};

/* A symbol the shard trades, with its limits from SYMBOLS_FILE. */
struct eng_listing {
    char symbol[OP_SYMBOL_MAX]; /* NUL-padded */
    int64_t lot;                /* qty must be a multiple of it */
    int64_t max_qty;            /* largest qty of one order, at most ENG_QTY_MAX */
};

/* A GTD expiry: order id expires at engine time `at`. */
struct eng_timer {
    uint64_t at;
    uint64_t id;
};

/* Largest dead-man timeout the engine accepts (ingest allows 1 s … 10 min). */
#define ENG_DEAD_MAN_MAX_MS 86400000u

/* One slot of the id map; id 0 marks an empty slot (order ids are ≥ 1). */
struct eng_slot {
    uint64_t id;
    uintptr_t ref; /* struct book_order *, or (closed ring index << 1) | 1 */
};

/* The engine. Fields are private to engine*.c and snapshot*.c. */
struct eng {
    uint32_t shard;                   /* 0 … ENG_SHARD_MAX-1 */
    uint64_t seq;                     /* reports emitted so far; next report_id uses seq+1 */
    uint64_t now_ns;                  /* engine time: the largest input ts applied so far */
    struct book **books;              /* books[i]->index == i */
    uint32_t nbooks;                  /* books in use */
    uint32_t cap_books;               /* allocated entries of books */
    uint32_t *symtab;                 /* book index + 1 per slot, 0 = empty */
    uint32_t symtab_mask;             /* slots - 1 (power of two) */
    struct eng_slot *ids;             /* id map */
    uint64_t ids_mask;                /* slots - 1 (power of two) */
    uint64_t ids_used;                /* occupied slots (open + remembered closed) */
    char (*accounts)[OP_ACCOUNT_MAX]; /* account table: NUL-padded names */
    uint32_t naccounts;               /* names in use */
    uint32_t cap_accounts;            /* allocated names */
    uint32_t *accttab;                /* open addressing: name → index + 1, 0 = empty */
    uint32_t accttab_mask;            /* slots - 1 (power of two) */
    struct eng_closed *ring;          /* closed ring, grown up to closed_max entries */
    uint32_t ring_cap;                /* allocated entries of ring (≤ closed_max) */
    uint32_t closed_max;              /* records remembered at most */
    uint32_t closed_head;             /* index of the oldest record */
    uint32_t closed_len;              /* records in use */
    struct eng_listing *listed;       /* the shard's symbols, sorted by name (eng_list_symbols) */
    uint32_t nlisted;                 /* entries of listed */
    int listing;                      /* 0: no list set, every symbol trades */
    uint32_t max_open;                /* open orders per account per book; 0 = no limit */
    struct eng_timer *gtd;            /* min-heap of GTD expiries (lazy: stale entries skipped) */
    uint32_t ngtd, cap_gtd;           /* entries in use / allocated */
    uint32_t gtd_live;                /* open GTD orders (to bound the stale entries) */
    uint64_t *dm_deadline;            /* per account: dead-man deadline, 0 = disarmed */
    uint64_t dm_next;                 /* the earliest armed deadline, 0 = none */
    uint64_t next_event;              /* min(GTD heap top, dm_next + 1); 0 = nothing due */
    struct book_order **trig;         /* stops triggered by this input, to enter in order */
    uint32_t ntrig, cap_trig, trig_head;
    struct book_pool orders; /* struct book_order */
    struct book_pool levels; /* struct book_level */
};

/* Returns a new empty engine for shard (< ENG_SHARD_MAX) remembering up to
 * closed_max closed orders (0: ENG_CLOSED_DEFAULT; at most ENG_CLOSED_LIMIT),
 * or NULL when an argument is out of range or memory is short. Free it with
 * eng_free. */
struct eng *eng_new(uint32_t shard, uint32_t closed_max);

/*
 * Restricts e to the symbols of syms whose shard (op_shard_of over shards)
 * is e's, with their lot and max quantity: a NEW order for any other symbol,
 * or breaking those limits, is REJECTED (UNKNOWN_SYMBOL, BAD_QTY). Without
 * this call every symbol trades, with lot 1 and ENG_QTY_MAX (unit tests,
 * benchmarks). The listing is configuration, not state: it is not in
 * snapshots, so call it again after eng_restore. Returns 0, or -1 out of
 * memory (e unchanged). syms is only read.
 */
int eng_list_symbols(struct eng *e, const struct op_symtab *syms, uint32_t shards);

/* Sets the open-order limit: a NEW order of an account that already has n
 * resting orders in its symbol is REJECTED (TOO_MANY_OPEN_ORDERS); 0 (the
 * default of eng_new) means no limit. Configuration like the listing: not in
 * snapshots, set it again after eng_restore, and give every matcher of a
 * deployment the same value (a replay must decide as the first run did). */
void eng_set_max_open(struct eng *e, uint32_t n);

/* Frees e and everything it owns; NULL is a no-op. */
void eng_free(struct eng *e);

/* Applies one input to e, appending its reports (at least one) to out, and
 * returns how many it appended. Any content of in is acceptable: invalid
 * inputs yield a REJECTED report and change nothing. in is only read. Aborts
 * (eng_oom) when memory runs out, since a half-applied input cannot be
 * undone. */
size_t eng_apply(struct eng *e, const struct op_order_msg *in, struct eng_reports *out);

/*
 * Applies in[0 … n-1] in order, exactly as n calls of eng_apply would, and
 * returns the number of reports appended to out. Faster on large shards: it
 * prefetches the id-map slot of the input 16 ahead and the order of the
 * input 8 ahead (eng_prefetch), hiding the cache misses that dominate once
 * the id map outgrows the caches.
 */
size_t eng_apply_batch(struct eng *e, const struct op_order_msg *in, size_t n,
                       struct eng_reports *out);

/* A hint with no effect on results: stage 0 prefetches the id-map slot of
 * in->order_id, stage 1 (issued some inputs later, once that slot is likely
 * cached) the order it refers to. For callers that pipeline inputs
 * themselves; eng_apply_batch does it for them. */
void eng_prefetch(const struct eng *e, const struct op_order_msg *in, int stage);

/* Writes up to max aggregated levels of `side` (enum op_side) of symbol's
 * book, best first, into out and returns how many; 0 for an unknown symbol
 * or an empty side. Read-only. */
size_t eng_depth(const struct eng *e, const char *symbol, int side, struct book_depth *out,
                 size_t max);

/* The earliest engine time at which something is due without a new order:
 * a GTD order's expiry or an armed dead-man switch's deadline; 0 when
 * nothing is pending. The shard's owner appends a TICK input once the wall
 * clock passes it (and the shard is idle), so that time moves in the log
 * and the expiry happens there, at the same input in every replay. */
uint64_t eng_next_event_ns(const struct eng *e);

/* Number of open (resting) orders across every book of e. */
uint64_t eng_open_orders(const struct eng *e);

/* Checks every invariant of e (books, id map, closed ring); returns 0, or -1
 * with a description in err. O(state): for tests and after a restore. */
int eng_check(const struct eng *e, char *err, size_t errlen);

/* --- snapshot.c ---------------------------------------------------------- */

/* Serialises the whole state of e (books in priority order, open orders,
 * report counter, closed-order memory) to a msgpack buffer that the caller
 * frees with free(); *out and *len receive it. Returns 0, or -1 when memory
 * is short (*out untouched). The layout is in docs/engine.md. */
int eng_snapshot(const struct eng *e, char **out, size_t *len);

/* Returns a new engine with the state in buf (len bytes, from eng_snapshot),
 * or NULL with a message in err (errlen bytes) when buf is truncated,
 * corrupt (checksum) or describes an impossible state. Never reads beyond
 * buf[len-1]. The caller frees the result with eng_free. */
struct eng *eng_restore(const void *buf, size_t len, char *err, size_t errlen);

/* FNV-1a 64 over the canonical serialisation of e's state (the body of its
 * snapshot): equal states have equal hashes, whatever their history of
 * memory layout. O(state). */
uint64_t eng_hash(const struct eng *e);

/* --- internal: shared by engine.c and snapshot.c --------------------------- */

/* FNV-1a 64 of n bytes at p. */
uint64_t eng_fnv1a64(const void *p, size_t n);

/* Returns the book of symbol (a NUL-padded OP_SYMBOL_MAX array), creating it
 * when create is non-zero; NULL when absent and not created. */
struct book *eng_book(struct eng *e, const char *symbol, int create);

/* Rests o (fully filled in, from e->orders) in its book and the id map. The
 * id must be unknown. */
void eng_rest(struct eng *e, struct book_order *o);

/* Records id as closed (evicting the oldest record when the ring is full);
 * the id may be in the id map as an open order (its slot is reused). */
void eng_closed_add(struct eng *e, uint64_t id, uint32_t account, uint32_t book);

/* Returns the index of account (a NUL-padded OP_ACCOUNT_MAX array) in e's
 * account table, adding it when create is non-zero; -1 when absent and not
 * created. */
int64_t eng_account(struct eng *e, const char *account, int create);

/* Registers the expiry of o, an open GTD order (resting or pending). */
void eng_gtd_add(struct eng *e, const struct book_order *o);

/* Puts o (fully filled in, a stop not yet triggered) in its book's stop list
 * and the id map; the id must be unknown. */
void eng_stop_add(struct eng *e, struct book_order *o);

/* Sets account's dead-man deadline (engine time; 0 disarms). */
void eng_dead_man_set(struct eng *e, uint32_t account, uint64_t deadline);

/* 1 when id is in the id map (open or remembered closed), else 0. */
int eng_id_known(const struct eng *e, uint64_t id);

#endif

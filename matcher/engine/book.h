/* The order book of one symbol: sorted price levels with FIFO queues, and the pools behind them. */
#ifndef OP_BOOK_H
#define OP_BOOK_H

#include <stddef.h>
#include <stdint.h>

#include "shared/msg.h"

/*
 * Layout of one book (one symbol). Prices are int64 ticks.
 *
 *   struct book "AAPL"
 *   ├─ side[BOOK_BID]  key: [  9950 |  9990 |  9998 |  9999 ]   sorted ascending,
 *   │                  lv:  [   *   |   *   |   *   |   *   ]   best level LAST
 *   │                                                   │
 *   │                                                   ▼
 *   │        struct book_level { price 9999, open 300, count 3 }
 *   │          head ─▶ order#17 ◀─▶ order#21 ◀─▶ order#40 ◀─ tail
 *   │                  (oldest)                  (newest)     FIFO, intrusive links
 *   └─ side[BOOK_ASK]  key: [-10005 |-10003 |-10001 ]   key = -price, so the
 *                      lv:  [   *   |   *   |   *   ]   lowest ask is LAST too
 *
 * Why a sorted array with the best level at the end: almost all activity is
 * within a few levels of the touch, so a new level is found by a short
 * backward scan (binary search beyond 16 steps) and inserted with a small
 * memmove near the end; the best level is key[n-1], and removing it (the
 * common case while matching) is n--. `key` is kept apart from `lv` so the
 * scan touches one dense int64 array, not the level objects.
 *
 * Orders and levels come from struct book_pool: slabs of BOOK_SLAB objects
 * with a free list threaded through each free object's first word, so the
 * hot path never calls malloc once the pools have grown to the peak size.
 * Every order is also reachable through the engine's id map (engine.h).
 */

/* Always-on assertion for broken internal invariants (kept under NDEBUG:
 * a corrupted book must stop, not trade). Never used for input checks. */
#define ENG_ASSERT(cond) ((cond) ? (void)0 : eng_assert_fail(#cond, __FILE__, __LINE__))

/* Prints "engine invariant broken at file:line: expr" to stderr and aborts. */
_Noreturn void eng_assert_fail(const char *expr, const char *file, int line)
    __attribute__((noreturn));

/* Prints "engine: out of memory (what)" to stderr and aborts. An input that is
 * half applied cannot be rolled back, so running out of memory is fatal;
 * recovery is snapshot + replay (docs/matcher.md, "Snapshots and recovery"). */
_Noreturn void eng_oom(const char *what) __attribute__((noreturn));

enum { BOOK_BID = 0, BOOK_ASK = 1 };

/* Objects per pool slab: 4096 orders = 512 KiB, few enough mallocs that
 * growth is noise, small enough that an idle shard wastes little. */
#define BOOK_SLAB 4096

/*
 * One resting (or arriving) order: exactly two cache lines, 64-byte aligned
 * in its slab. Line 1 holds everything matching, cancel and amend touch;
 * line 2 what only reports need. The account is interned (an index into the
 * engine's account table) so that the owner check is an integer compare and
 * the order fits in 128 bytes.
 */
struct book_order {
    /* line 1 */
    struct book_order *next;  /* FIFO: newer order at the level; free-list link */
    struct book_order *prev;  /* FIFO: older order at the level */
    struct book_level *level; /* (ref) the level it rests at; NULL while arriving */
    uint64_t id;              /* order_id, 1 … 2^63-1 */
    int64_t price;            /* limit price, ticks; 0 for a market order */
    int64_t qty;              /* total quantity, lots (reduced by amends) */
    int64_t filled;           /* cumulative filled quantity, 0 ≤ filled < qty while open */
    uint32_t book;            /* index of its book in the engine */
    uint8_t side;             /* enum op_side */
    uint8_t type;             /* enum op_type */
    uint8_t tif;              /* enum op_tif (market orders: IOC or FOK) */
    uint8_t post_only;        /* 0 or 1 */
    /* line 2 */
    uint32_t account;                     /* index in the engine's account table */
    uint8_t stp;                          /* enum op_stp: applies when it trades as a taker */
    uint8_t pending;                      /* 1: a stop waiting for its trigger (in no level) */
    char client_order_id[OP_CLORDID_MAX]; /* NUL-padded to the end */
    char pad_[112 - 70 - OP_CLORDID_MAX]; /* to the 8-byte fields */
    uint64_t expire_ns;                   /* GTD: expiry in engine time; else 0 */
    int64_t stop_price;                   /* stops: trigger price, ticks; else 0 */
};
_Static_assert(sizeof(struct book_order) == 128, "struct book_order is two cache lines");

/* One price level: a FIFO queue of orders at one price. */
struct book_level {
    struct book_level *next_free; /* free-list link while pooled (must be first) */
    int64_t price;                /* ticks */
    int64_t open;                 /* sum of (qty - filled) over its orders */
    uint32_t count;               /* number of orders */
    struct book_order *head;      /* oldest order: matched first */
    struct book_order *tail;      /* newest order */
};

/* One side of a book: levels sorted by key ascending, best at the end. */
struct book_side {
    int64_t *key;           /* price (bids) or -price (asks), ascending */
    struct book_level **lv; /* lv[i] has key key[i] */
    uint32_t n;             /* levels in use */
    uint32_t cap;           /* allocated entries of key and lv */
};

struct book {
    char symbol[OP_SYMBOL_MAX]; /* NUL-padded to the end */
    uint32_t index;             /* its index in the engine's book table */
    uint32_t orders;            /* resting orders, both sides */
    struct book_side side[2];   /* BOOK_BID, BOOK_ASK */
    /* Set by the engine (eng_list_symbols), not part of the book's state: */
    int64_t lot;     /* a new order's qty must be a multiple of it */
    int64_t max_qty; /* and at most this */
    int listed;      /* 0: the symbol no longer trades here (new orders rejected) */
    /* Stops waiting for their trigger, in trigger order: buys by stop price
     * ascending (a trade at p triggers those ≤ p, a prefix), sells
     * descending (≥ p, a prefix); order id ascending within a price. */
    struct book_stops {
        struct book_order **v;
        uint32_t n, cap;
    } stops[2]; /* BOOK_BID: buy stops, BOOK_ASK: sell stops */
    /* Derived from the orders (rebuilt by a restore, not serialised): */
    uint32_t *open_of;  /* open_of[a]: open orders (resting + pending stops) of account a */
    uint32_t n_open_of; /* allocated entries of open_of */
};

/* Resting orders of account index a in b. */
static inline uint32_t book_open_of(const struct book *b, uint32_t a)
{
    return a < b->n_open_of ? b->open_of[a] : 0;
}

/* A pool of fixed-size objects; the first word of a free object links it. */
struct book_pool {
    void *free;       /* free list */
    void **slabs;     /* every slab allocated, freed by book_pool_release */
    size_t nslabs;    /* slabs in use */
    size_t cap_slabs; /* allocated entries of slabs */
    size_t obj_size;  /* bytes per object, a multiple of 8 */
    size_t live;      /* objects handed out and not yet put back */
};

void book_pool_init(struct book_pool *p, size_t obj_size);
void book_pool_release(struct book_pool *p);
/* Allocates a slab and threads it onto p's free list; aborts (eng_oom) when
 * malloc fails. Called by book_pool_get only. */
void book_pool_grow(struct book_pool *p);

/* Returns an uninitialised object from p (never NULL: aborts when out of memory). */
static inline void *book_pool_get(struct book_pool *p)
{
    if (p->free == NULL)
        book_pool_grow(p);
    void *obj = p->free;
    p->free = *(void **)obj;
    p->live++;
    return obj;
}

/* Returns obj, which came from book_pool_get(p), to p. */
static inline void book_pool_put(struct book_pool *p, void *obj)
{
    *(void **)obj = p->free;
    p->free = obj;
    p->live--;
}

/* Index into book.side[] of an op_side (BUY → bids, SELL → asks). */
static inline int book_side_of(int op_side)
{
    return op_side == OP_SIDE_BUY ? BOOK_BID : BOOK_ASK;
}

/* The sort key of price on side s: higher key = better price. */
static inline int64_t book_key(int s, int64_t price)
{
    return s == BOOK_BID ? price : -price;
}

/* The best level of side s of b, or NULL when that side is empty. */
static inline struct book_level *book_best(const struct book *b, int s)
{
    const struct book_side *sd = &b->side[s];
    return sd->n ? sd->lv[sd->n - 1] : NULL;
}

/* Initialises an empty book for symbol (copied, NUL-padded, at most
 * OP_SYMBOL_MAX-1 chars) at engine index `index`. */
void book_init(struct book *b, const char *symbol, uint32_t index);

/* Returns every level and order of b to the pools and frees its arrays. */
void book_release(struct book *b, struct book_pool *orders, struct book_pool *levels);

/* Appends o (side, price set; level NULL) at the tail of its price level,
 * creating the level from `levels` when needed. O(1) at the touch, O(log n)
 * search + memmove elsewhere. */
void book_add(struct book *b, struct book_pool *levels, struct book_order *o);

/* Unlinks o from its level and the level from its side when it empties
 * (returned to `levels`). o itself is not put back to any pool. */
void book_remove(struct book *b, struct book_pool *levels, struct book_order *o);

/* One aggregated price level, as published by the matcher. */
struct book_depth {
    int64_t price;  /* ticks */
    int64_t qty;    /* open quantity at the price */
    uint32_t count; /* number of orders */
};

/* Writes up to max levels of side s of b, best first, into out; returns the
 * number written. */
size_t book_depth(const struct book *b, int s, struct book_depth *out, size_t max);

/* Checks every structural invariant of b (sorted keys, links, counts, open
 * sums); returns 0, or -1 with a description in err (errlen bytes). O(size). */
int book_check(const struct book *b, char *err, size_t errlen);

#endif

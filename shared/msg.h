/* The in-memory form of every stream message: orders in, execution reports out. */
#ifndef OP_MSG_H
#define OP_MSG_H

#include <stdbool.h>
#include <stdint.h>

/*
 * These structs are what the codec (shared/codec.h) decodes stream entries
 * into and encodes them from, and what the matching engine consumes and
 * produces. They hold no pointers so that they can be copied, pooled and
 * compared byte for byte. Prices are int64 ticks of the symbol's tick size,
 * quantities int64 lots; nothing here is ever a floating-point number.
 *
 * The wire form of each struct, field by field, is in schemas/messages.md.
 */

/* Sizes include the terminating NUL. */
#define OP_SYMBOL_MAX 16  /* 15 chars: longer than any listed equity ticker */
#define OP_ACCOUNT_MAX 33 /* 32 chars: account names are operator-chosen labels */
#define OP_CLORDID_MAX 37 /* 36 chars: the contract's client_order_id limit (a UUID) */

enum op_side { OP_SIDE_BUY = 1, OP_SIDE_SELL = 2 };
/* Stops (issue 15) wait, off the book, until a trade in their symbol
 * reaches stop_price; then they enter as a market or limit order. */
enum op_type {
    OP_TYPE_LIMIT = 1,
    OP_TYPE_MARKET = 2,
    OP_TYPE_STOP_MARKET = 3,
    OP_TYPE_STOP_LIMIT = 4,
};
/* GTD: good till expire_ns, engine time (docs/engine.md, "Time"). */
enum op_tif { OP_TIF_GTC = 1, OP_TIF_IOC = 2, OP_TIF_FOK = 3, OP_TIF_GTD = 4 };

/* Self-trade prevention: what happens when an arriving order would trade
 * with a resting order of its own account (docs/engine.md, "Self-trade
 * prevention"). The arriving order's mode decides. */
enum op_stp {
    OP_STP_NONE = 0,         /* trade as with anyone */
    OP_STP_CANCEL_TAKER = 1, /* cancel the arriving order's remainder */
    OP_STP_CANCEL_MAKER = 2, /* cancel the resting order, keep matching */
    OP_STP_CANCEL_BOTH = 3,  /* cancel both */
    OP_STP_DECREMENT = 4,    /* reduce both by the smaller open qty, no trade */
};
#define OP_STP_MAX OP_STP_DECREMENT

/* What an entry of orders:{S} asks for (its `type` field). */
enum op_msg_kind {
    OP_MSG_NEW = 1,
    OP_MSG_CANCEL = 2,
    OP_MSG_AMEND = 3,
    OP_MSG_CANCEL_ALL = 4,
    OP_MSG_TICK = 5,             /* the shard owner's clock tick: time moves, nothing else */
    OP_MSG_CANCEL_ALL_AFTER = 6, /* arms (timeout_ms > 0) or disarms the dead-man switch */
};
#define OP_MSG_KIND_MAX OP_MSG_CANCEL_ALL_AFTER

/*
 * One input of the matcher, decoded from orders:{S}.
 *
 *   kind NEW:        every field is meaningful (price 0 for market orders).
 *   kind CANCEL:     order_id is the order to cancel; account is the requester.
 *   kind AMEND:      order_id is the order to amend (replace); qty its new
 *                    total, price its new limit price: 0 = unchanged, at
 *                    least one of them set.
 *   kind CANCEL_ALL: every open order of account in symbol, or in every
 *                    symbol of the shard when symbol is ""; order_id 0.
 *   kind TICK:       ts only (order_id 0, symbol and account ""): written
 *                    by the shard's owner when idle, so that time moves.
 *   kind CANCEL_ALL_AFTER: account's dead-man switch on this shard:
 *                    timeout_ms > 0 arms it (re-arms), 0 disarms it.
 *
 * The decoder checks types and string lengths only; values (side, qty > 0,
 * …) are validated by ingest and again by the engine, which rejects with a
 * report rather than trusting them.
 */
struct op_order_msg {                     /* widest fields first: no padding (144 bytes) */
    uint64_t order_id;                    /* NEW: the new id; else the target */
    uint64_t ts_ns;                       /* ingest receipt time, ns since epoch */
    int64_t price;                        /* ticks; 0 for market orders (AMEND: 0 = same) */
    int64_t qty;                          /* NEW: quantity; AMEND: new total (0 = same) */
    int64_t stop_price;                   /* NEW stop orders: trigger price, ticks */
    uint64_t expire_ns;                   /* NEW GTD: expiry, ns since epoch (engine time) */
    uint32_t timeout_ms;                  /* CANCEL_ALL_AFTER: 0 disarms */
    uint8_t kind;                         /* enum op_msg_kind */
    uint8_t side;                         /* enum op_side (NEW) */
    uint8_t type;                         /* enum op_type (NEW) */
    uint8_t tif;                          /* enum op_tif (NEW) */
    bool post_only;                       /* NEW, limit only */
    uint8_t stp;                          /* enum op_stp (NEW) */
    char symbol[OP_SYMBOL_MAX];           /* NUL-terminated */
    char account[OP_ACCOUNT_MAX];         /* the requesting account */
    char client_order_id[OP_CLORDID_MAX]; /* NEW only; "" when absent */
};

/* Order states, as in the contract's GET /v1/orders answer. */
enum op_status {
    OP_STATUS_NEW = 1,
    OP_STATUS_PARTIALLY_FILLED = 2,
    OP_STATUS_FILLED = 3,
    OP_STATUS_CANCELLED = 4,
    OP_STATUS_REJECTED = 5,
    OP_STATUS_PENDING_TRIGGER = 6, /* a stop waiting for its trigger (not in the book) */
};

enum op_report_kind {
    OP_REPORT_ACCEPTED = 1,        /* a new order entered the engine (may trade next) */
    OP_REPORT_TRADE = 2,           /* one match between a resting maker and a taker */
    OP_REPORT_CANCELLED = 3,       /* an order left the book unfilled (reason says why) */
    OP_REPORT_REJECTED = 4,        /* an input was refused; see req_kind */
    OP_REPORT_AMENDED = 5,         /* an order's total quantity was reduced, priority kept */
    OP_REPORT_REPLACED = 6,        /* an order got a new price or a larger qty, lost priority */
    OP_REPORT_CANCEL_ALL_DONE = 7, /* a cancel-all finished (its CANCELLEDs precede it) */
    OP_REPORT_TRIGGERED = 8,       /* a stop triggered: it now enters as a taker */
    OP_REPORT_DEAD_MAN = 9,        /* a dead-man switch was armed (qty = timeout ms) or disarmed */
    OP_REPORT_TICK = 10,           /* a tick was applied (its expiries precede it) */
};
#define OP_REPORT_KIND_MAX OP_REPORT_TICK

/* Why an order was cancelled or an input rejected. Values are on the wire. */
enum op_reason {
    OP_REASON_NONE = 0,
    /* cancellations */
    OP_REASON_USER_CANCEL = 1,   /* the owner's cancel request */
    OP_REASON_IOC_REMAINDER = 2, /* unfilled rest of an IOC or market order */
    OP_REASON_FOK_UNFILLED = 3,  /* FOK could not fill completely: nothing traded */
    OP_REASON_POST_ONLY = 4,     /* post-only order would have traded on arrival */
    OP_REASON_NO_LIQUIDITY = 5,  /* market order met an empty opposite side */
    OP_REASON_SELF_TRADE = 6,    /* self-trade prevention (op_stp) cancelled or reduced it */
    OP_REASON_EXPIRED = 7,       /* a GTD order reached its expiry */
    OP_REASON_DEAD_MAN = 8,      /* the account's dead-man switch fired */
    /* rejections */
    OP_REASON_MALFORMED = 20, /* the stream entry could not be decoded */
    OP_REASON_BAD_SIDE = 21,
    OP_REASON_BAD_TYPE = 22,
    OP_REASON_BAD_TIF = 23,
    OP_REASON_BAD_QTY = 24,        /* qty < 1 */
    OP_REASON_BAD_PRICE = 25,      /* limit price < 1 tick, or a market order with a price */
    OP_REASON_BAD_POST_ONLY = 26,  /* post_only on a market order or with IOC/FOK */
    OP_REASON_DUPLICATE_ID = 27,   /* order_id already known to the engine */
    OP_REASON_UNKNOWN_ORDER = 28,  /* cancel/amend of an order the engine never saw */
    OP_REASON_NOT_OWNER = 29,      /* cancel/amend of another account's order */
    OP_REASON_ORDER_CLOSED = 30,   /* cancel/amend of a filled or cancelled order */
    OP_REASON_BAD_AMEND = 31,      /* new total not in (filled, current total) */
    OP_REASON_UNKNOWN_SYMBOL = 32, /* symbol not listed for this shard in SYMBOLS_FILE */
    OP_REASON_BAD_ACCOUNT = 33,    /* empty account name */
    OP_REASON_BAD_CLIENT_ID =
        34,                  /* client_order_id breaks its grammar (op_client_order_id_valid) */
    OP_REASON_BAD_TIME = 35, /* ts 0: no receipt time */
    OP_REASON_TOO_MANY_OPEN_ORDERS =
        36,                     /* the account's open orders in the symbol are at the limit */
    OP_REASON_BAD_STP = 37,     /* stp not an enum op_stp */
    OP_REASON_BAD_EXPIRY = 38,  /* GTD without expire_ns, or expire_ns on another tif */
    OP_REASON_BAD_STOP = 39,    /* stop_price < 1 on a stop, or set on another type */
    OP_REASON_BAD_TIMEOUT = 40, /* a dead-man timeout above ENG_DEAD_MAN_MAX_MS */
};

/*
 * One execution report, published to fills:{S}.
 *
 * report_id is unique within the shard and increases with every report the
 * shard emits, in emission order; it is derived from the input position, so
 * a replay reproduces it. It doubles as the fill_id of a trade and as the
 * version of the order state the report carries (filled_qty, qty, status):
 * the recorder applies an order update only if its report_id is higher than
 * the one it last applied.
 *
 * Every report carries the description of order_id (side, type, tif,
 * post_only, price, client_order_id) whenever the engine knows the order, so
 * that a recorder seeing reports out of order can still build the row.
 *
 * Fields per kind (others are zero):
 *   ACCEPTED:  order description, state (status NEW)
 *   TRADE:     order_id/account = taker with its state after the match;
 *              maker_* = maker with its state; trade_price, trade_qty;
 *              side = taker side
 *   CANCELLED: order_id, account, state (status CANCELLED), reason
 *   REJECTED:  req_kind says which input; for a NEW input the order
 *              description and status REJECTED, for CANCEL/AMEND the target
 *              order_id and the requesting account (the order is unchanged)
 *   AMENDED:   order_id, account, state (qty = the new total); req_kind
 *              AMEND, or NEW with reason SELF_TRADE for a decrement
 *   REPLACED:  order_id, account, description and state with the new
 *              price and qty (it then matches as a taker: TRADEs follow)
 *   CANCEL_ALL_DONE: account (the requester), symbol ("" = all), order_id 0,
 *              qty = how many orders the cancel-all cancelled; reason
 *              DEAD_MAN when the account's dead-man switch fired
 *   TRIGGERED: a stop's description and state (status NEW) as it enters
 *   DEAD_MAN:  account, order_id 0, qty = the timeout in ms (0: disarmed)
 *   TICK:      order_id 0, symbol and account ""; only ts
 * Stops carry stop_price, GTD orders expire_ns, in every report about them.
 */
struct op_report {
    uint8_t kind;     /* enum op_report_kind */
    uint8_t req_kind; /* enum op_msg_kind of the input */
    uint8_t reason;   /* enum op_reason */
    uint8_t status;   /* enum op_status of order_id after it */
    uint8_t side;     /* enum op_side (of order_id) */
    uint8_t type;     /* enum op_type */
    uint8_t tif;      /* enum op_tif */
    bool post_only;
    uint64_t report_id; /* see above; fill_id for trades */
    uint64_t ts_ns;     /* the input's ts_ns: the event time */
    uint64_t order_id;  /* the order concerned (taker for trades) */
    int64_t price;      /* order's limit price, ticks (0 market) */
    int64_t qty;        /* order's total qty after the event */
    int64_t filled_qty; /* order's cumulative filled qty after it */
    /* TRADE only */
    uint64_t maker_order_id;
    int64_t trade_price; /* ticks: always the maker's price */
    int64_t trade_qty;
    int64_t maker_qty;        /* maker's total qty */
    int64_t maker_filled_qty; /* maker's cumulative filled after it */
    int64_t stop_price;       /* of order_id, a stop (ticks) */
    uint64_t expire_ns;       /* of order_id, a GTD order */
    uint8_t maker_status;     /* enum op_status of the maker after it */
    char symbol[OP_SYMBOL_MAX];
    char account[OP_ACCOUNT_MAX];         /* owner of order_id (requester on reject) */
    char maker_account[OP_ACCOUNT_MAX];   /* TRADE only */
    char client_order_id[OP_CLORDID_MAX]; /* of order_id, when known */
};

/* 1 when s (NUL-terminated) is a valid client_order_id: 1-36 characters of
 * [A-Za-z0-9._-] (the contract's grammar, checked by ingest, the engine and
 * the recorder alike), else 0. */
int op_client_order_id_valid(const char *s);

/* Names for logs, JSON and the database ("buy", "GTC", "PARTIALLY_FILLED", …);
 * each returns "?" for a value outside its enum. */
const char *op_side_name(int side);
const char *op_type_name(int type);
const char *op_tif_name(int tif);
const char *op_status_name(int status);
const char *op_report_kind_name(int kind);
const char *op_msg_kind_name(int kind);
const char *op_reason_name(int reason);
const char *op_stp_name(int stp); /* "none", "cancel_taker", … */

#endif

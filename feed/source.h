/* The feed's Redis side: a live reader of the fills streams, and a helper for replays and books. */
#ifndef FEED_SOURCE_H
#define FEED_SOURCE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/msg.h"
#include "shared/sid.h"
#include "shared/symbols.h"

/*
 * Two threads, each with its own Redis connection (hiredis contexts are not
 * thread-safe), hand what they read to the service's thread (the one that
 * owns the WebSocket clients) through an inbox, and wake it with
 * cfg.wake:
 *
 *   reader:  XREAD BLOCK over fills:{0..N-1} from where it left off
 *            -> decoded entries, in stream order per shard
 *   helper:  replays asked with feed_source_fetch (XINFO STREAM + XRANGE)
 *            -> pages of entries, with a gap / bad position verdict;
 *            the books of watched symbols (GET book:{S}:<SYMBOL>), when a
 *            fills entry touched them or a subscriber asked for one
 *
 * Memory is bounded: the reader stops reading while the inbox holds more
 * than FEED_INBOX_MAX entries not yet taken (Redis keeps the rest).
 */

/* One fills:{S} entry, decoded. Owned by whoever holds it; free with op_free. */
struct feed_entry {
    struct feed_entry *next; /* in an inbox or page list */
    uint32_t shard;
    struct op_sid id;       /* the entry id: positions are made of these */
    uint32_t n;             /* reports in rep */
    uint32_t malformed;     /* 1 when its `m` did not decode (n is then 0) */
    uint32_t hole;          /* 1: not an entry but a hole before the next ones of
                               shard: entries were trimmed unread (id: the first
                               one left) */
    struct op_report rep[]; /* [n], in the shard's report order */
};

/* Why 4096: at most ~4096 x 4096 reports would be absurd; a few thousand
 * entries of a few hundred reports each is a few hundred MB at worst and
 * tens of ms of work for the service thread, enough to ride out a burst. */
#define FEED_INBOX_MAX 4096

/* Verdict on a replay page of one shard. */
enum feed_page_status {
    FEED_PAGE_OK = 0,
    FEED_PAGE_GAP,          /* an entry after `from` has been trimmed */
    FEED_PAGE_BAD_POSITION, /* `from` is beyond the stream's last id */
    FEED_PAGE_ERROR,        /* Redis failed; the caller may ask again */
};

/* The entries of shard that follow `from`, at most the page size. */
struct feed_page {
    uint32_t shard;
    struct op_sid from;
    enum feed_page_status status;
    int complete;               /* 1 when the stream had no more entries */
    struct feed_entry *entries; /* list, in order (owned) */
};

/* A replay request and, once served, its answer (same object). */
struct feed_fetch {
    struct feed_fetch *next;
    void *owner;              /* (ref) the requester's handle, returned as is */
    uint32_t n;               /* pages */
    struct feed_page pages[]; /* [n]: shard and from set by the requester */
};

/* The text of book:{S}:<SYMBOL> as the helper read it. */
struct feed_book_text {
    struct feed_book_text *next;
    uint32_t sym; /* index in the symbol table */
    int found;    /* 0 when the key does not exist (no market data yet) */
    size_t len;
    char text[]; /* [len] + NUL */
};

/* What the service thread takes from the inbox at once (all lists owned). */
struct feed_inbox {
    struct feed_entry *entries; /* live entries, in arrival order */
    struct feed_fetch *fetches; /* answered replays */
    struct feed_book_text *books;
};

struct feed_source_config {
    const char *redis_url;
    int timeout_ms;               /* connect and command timeout (beyond the BLOCK) */
    uint32_t shards;              /* ORDER_SHARDS */
    const struct op_symtab *syms; /* (ref) symbols whose books can be watched */
    uint32_t page_entries;        /* entries per replay page (FEED_PAGE_ENTRIES) */
    int book_ms;                  /* how often touched books are read (FEED_BOOK_MS) */
    void (*wake)(void *arg);      /* called (from the source's threads) after the inbox grew */
    void *wake_arg;
};

/* Counters the service exports (written by the source's threads). */
struct feed_source_stats {
    _Atomic uint64_t entries;       /* live entries read */
    _Atomic uint64_t reports;       /* reports in them */
    _Atomic uint64_t malformed;     /* entries whose `m` did not decode */
    _Atomic uint64_t holes;         /* holes: entries trimmed before the reader read them */
    _Atomic uint64_t fetches;       /* replay pages served */
    _Atomic uint64_t books;         /* book texts read that changed */
    _Atomic uint64_t redis_errors;  /* failed commands or connections */
    _Atomic int redis_up;           /* 1 while the reader's last command worked */
    _Atomic uint64_t last_entry_ms; /* ms part of the newest live entry id */
};

struct feed_source;

/*
 * Connects (the reader's connection), reads where each stream ends now
 * (the live position a new subscriber starts from) and returns the source,
 * threads not started yet. Returns NULL with a message in err when Redis
 * cannot be reached or a stream is missing (run orderpipe-setup).
 */
struct feed_source *feed_source_new(const struct feed_source_config *cfg, char *err, size_t errlen);

/* The id each stream ended at when feed_source_new ran ("0-0" if empty). */
struct op_sid feed_source_start_id(const struct feed_source *s, uint32_t shard);

/* Starts both threads. Returns 0, or -1 (logged). */
int feed_source_start(struct feed_source *s);

/* Stops and joins the threads (nothing is read or woken after it). */
void feed_source_stop(struct feed_source *s);

/* Stops the threads if running, frees s and everything it still holds. */
void feed_source_free(struct feed_source *s);

/* Moves everything the inbox holds into *in (the caller frees it). */
void feed_source_take(struct feed_source *s, struct feed_inbox *in);

/* Queues a replay; its answer comes back in feed_inbox.fetches. Takes f. */
void feed_source_fetch(struct feed_source *s, struct feed_fetch *f);

/* Watches (on=1) or stops watching the book of symbol index sym; a new
 * watch reads the book at once and returns it even when unchanged. */
void feed_source_book_watch(struct feed_source *s, uint32_t sym, int on);

/* Says that symbol sym traded or changed: its book is read for the next
 * FEED_BOOK_TOUCH_MS (the matcher publishes within MATCHER_BOOK_MS). */
void feed_source_book_touch(struct feed_source *s, uint32_t sym);

const struct feed_source_stats *feed_source_stats(const struct feed_source *s);

/* Frees an entry list, a fetch (and its pages' entries), a book text list. */
void feed_entries_free(struct feed_entry *e);
void feed_fetch_free(struct feed_fetch *f);
void feed_books_free(struct feed_book_text *b);

#endif

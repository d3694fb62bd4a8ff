/* The feed's clients: authentication, subscriptions, positions, replays and bounded queues. */
#ifndef FEED_HUB_H
#define FEED_HUB_H

#include <stddef.h>
#include <stdint.h>

#include "feed/source.h"
#include "shared/apikeys.h"
#include "shared/buf.h"
#include "shared/symbols.h"

/*
 * Everything here runs on the service thread (the WebSocket event loop):
 * no lock. The hub knows nothing of libwebsockets; the transport
 * (feed/ws.c) gives it each connection's opaque handle and is called back
 * through want_write and kill.
 *
 * A message is built once and shared by every connection it goes to
 * (reference counted): the public channels cost one JSON per fills entry,
 * whatever the number of subscribers.
 */

/* Bytes kept free before a message's text, for the transport's framing
 * (libwebsockets' LWS_PRE; feed/ws.c checks it fits). */
#define FEED_MSG_PRE 32

struct feed_msg {
    uint32_t refs;        /* queues holding it */
    uint32_t len;         /* bytes of text */
    uint64_t born_ms;     /* ms part of the entry id it comes from (0: none), for latency */
    unsigned char data[]; /* FEED_MSG_PRE bytes, then the text */
};

static inline unsigned char *feed_msg_text(struct feed_msg *m)
{
    return m->data + FEED_MSG_PRE;
}

struct feed_hub_config {
    const struct op_symtab *syms;  /* (ref) */
    const struct op_apikeys *keys; /* (ref) */
    uint32_t shards;               /* ORDER_SHARDS */
    size_t queue_max;              /* FEED_CLIENT_QUEUE_KB * 1024 */
    int64_t
        max_delay_ms; /* FEED_CLIENT_MAX_DELAY_MS: oldest queued message's age bound (0: none) */
    struct feed_source *src;             /* (ref) replays and books are asked from it */
    void (*want_write)(void *transport); /* the connection has something to send */
    void (*kill)(void *transport);       /* close it even if it never becomes writable */
};

/* Counters for /metrics (service thread only). */
struct feed_hub_stats {
    uint64_t connections;   /* accepted since start */
    uint64_t clients;       /* open now */
    uint64_t subscriptions; /* open now */
    uint64_t messages;      /* messages written to sockets */
    uint64_t bytes;         /* their bytes */
    uint64_t slow_closed;   /* connections closed 4001 */
    uint64_t auth_failed;   /* connections closed 1008 */
    uint64_t resumes;       /* subscriptions with "from" that were accepted */
    uint64_t gaps;          /* answered "gap" */
    uint64_t book_updates;  /* book messages built */
    uint64_t queued_bytes;  /* in all queues now */
};

struct feed_hub;
struct feed_conn;

/* Returns a hub whose live positions start where cfg->src's streams ended,
 * or NULL when memory ran out. */
struct feed_hub *feed_hub_new(const struct feed_hub_config *cfg);
void feed_hub_free(struct feed_hub *h);

/* A new WebSocket connection; NULL when memory ran out (refuse it). */
struct feed_conn *feed_hub_open(struct feed_hub *h, void *transport);

/* The connection is gone: frees its queue and subscriptions. */
void feed_hub_close(struct feed_hub *h, struct feed_conn *c);

/* One text message from the client (len bytes at text). */
void feed_hub_text(struct feed_hub *h, struct feed_conn *c, const char *text, size_t len);

/*
 * What the transport sends when the connection is writable: a close code
 * (and *reason) when it must be closed now (1008 bad key, 4001 slow
 * consumer), else 0 and the next message in *m (NULL when the queue is
 * empty). After writing *m, the transport calls feed_hub_sent.
 */
int feed_hub_next(struct feed_hub *h, struct feed_conn *c, struct feed_msg **m,
                  const char **reason);

/* The message returned by feed_hub_next was written: dequeue it. Returns 1
 * when more is queued. */
int feed_hub_sent(struct feed_hub *h, struct feed_conn *c);

/* Takes what the source read and delivers it. */
void feed_hub_pump(struct feed_hub *h);

const struct feed_hub_stats *feed_hub_stats(const struct feed_hub *h);

/* Appends the hub's metrics (Prometheus text) to out. */
void feed_hub_metrics(const struct feed_hub *h, struct op_buf *out);

#endif

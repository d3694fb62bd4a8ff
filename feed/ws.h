/* The feed's transport: one libwebsockets context serving WebSocket clients and HTTP. */
#ifndef FEED_WS_H
#define FEED_WS_H

#include <signal.h>

#include "feed/hub.h"
#include "feed/source.h"

/*
 * The only file that includes <libwebsockets.h>. One port serves:
 *   /ws          the WebSocket protocol of docs/feed.md (handled by the hub)
 *   /healthz     200 while the source's Redis connection works, else 503
 *   /metrics     Prometheus text
 *   /config.json {"ingest_url":…,"symbols":[…]} for the console page
 *   /            the console page (FEED_CONSOLE_DIR/index.html) and its files
 */
struct feed_ws_config {
    const char *bind;             /* FEED_BIND: address to listen on */
    int port;                     /* FEED_PORT */
    const char *console_dir;      /* FEED_CONSOLE_DIR: the console page's files */
    const char *ingest_url;       /* FEED_INGEST_URL: where the page sends orders */
    const struct op_symtab *syms; /* (ref) */
};

struct feed_ws;

/* Creates the context and listens. Returns NULL after logging why. */
struct feed_ws *feed_ws_new(const struct feed_ws_config *cfg);

/* Wakes the event loop from another thread (the source's wake callback). */
void feed_ws_wake(void *ws);

/* The hub's transport callbacks (want_write, kill) on a connection handle. */
void feed_ws_want_write(void *transport);
void feed_ws_kill(void *transport);

/* Runs the event loop until *stop becomes non-zero, with hub and src. */
void feed_ws_run(struct feed_ws *w, struct feed_hub *hub, struct feed_source *src,
                 volatile sig_atomic_t *stop);

void feed_ws_free(struct feed_ws *w);

#endif

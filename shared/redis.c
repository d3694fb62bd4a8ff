/* The Redis helper: URL parsing, AUTH, timeouts, pipelining, reconnect with backoff, Redis Cluster.
 */
#include "shared/redis.h"

#include <hiredis.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "shared/alloc.h"
#include "shared/cluster.h"

int64_t op_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Copies s[0..n) into out[size] NUL-terminated; -1 if it does not fit. */
static int copy_part(char *out, size_t size, const char *s, size_t n)
{
    if (n >= size)
        return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

int op_redis_url_parse(const char *url, struct op_redis_url *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof(*u));
    u->port = 6379;
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, "redis url must start with 'redis://'");
        return -1;
    }
    const char *p = url + 8;
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon) {
            snprintf(err, errlen,
                     "redis url: credentials must be ':password@' or 'user:password@'");
            return -1;
        }
        if (copy_part(u->user, sizeof(u->user), p, (size_t)(colon - p)) != 0 ||
            copy_part(u->password, sizeof(u->password), colon + 1, (size_t)(at - colon - 1)) != 0) {
            snprintf(err, errlen, "redis url: user or password too long");
            return -1;
        }
        p = at + 1;
    }
    size_t hlen = strcspn(p, ":/");
    if (hlen == 0 || copy_part(u->host, sizeof(u->host), p, hlen) != 0) {
        snprintf(err, errlen, "redis url: missing or too long host");
        return -1;
    }
    p += hlen;
    if (*p == ':') {
        char *end;
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port < 1 || port > 65535 || (*end != '\0' && *end != '/')) {
            snprintf(err, errlen, "redis url: bad port");
            return -1;
        }
        u->port = (int)port;
        p = end;
    }
    if (*p == '/' && p[1] != '\0') {
        char *end;
        long db = strtol(p + 1, &end, 10);
        if (end == p + 1 || *end != '\0' || db < 0 || db > 1000000) {
            snprintf(err, errlen, "redis url: bad database number");
            return -1;
        }
        u->db = (int)db;
    } else if (*p != '\0' && strcmp(p, "/") != 0) {
        snprintf(err, errlen, "redis url: unexpected text after host");
        return -1;
    }
    return 0;
}

/* ---- the cluster client's state (shared/redis.h says what it does) ---- */

#define NO_NODE 0xFFFF

/* Why 16: a slot moves once per reshard step; more redirections in a row
 * than this means the map keeps changing under us, and the command fails
 * with the last error rather than loop. */
#define REDIRECTS_MAX 16
/* Why 20 ms x 100: TRYAGAIN lasts while a slot's keys are half migrated,
 * a few ms per MIGRATE batch; 2 s is far longer than any batch. */
#define TRYAGAIN_SLEEP_MS 20
#define TRYAGAIN_MAX 100

/* A reply read off a node ahead of its turn, kept until asked for. */
struct stashed {
    uint64_t seq;    /* its number among the node's replies */
    redisReply *rep; /* (owned) */
};

/* One node of the cluster: its address and, once used, its connection. */
struct cnode {
    char host[256];
    int port;
    redisContext *ctx;     /* NULL until first used, and after a failure */
    uint64_t sent, recvd;  /* commands appended on ctx, replies read off it */
    struct stashed *stash; /* replies read ahead of their turn */
    size_t nstash, cap_stash;
    bool unflushed; /* appended commands not yet written to the socket */
    bool written;   /* got a command since its last WAIT */
    bool watching;  /* holds a WATCH (no EXEC, DISCARD or UNWATCH since) */
};

/* One command as sent to one node. */
struct sub {
    int node;     /* index in nodes, -1 while a MULTI waits for its node */
    int slot;     /* its keys' slot, -1 for a keyless command */
    uint64_t seq; /* its reply's number on the node */
    char *cmd;    /* RESP text, for a resend (hiredis-allocated, owned) */
    size_t len;
};

enum rec_kind {
    REC_ONE,   /* one command, one reply */
    REC_WAIT,  /* WAIT on several nodes: the smallest count */
    REC_FIRST, /* the same command on several nodes: the first reply */
    REC_READ,  /* XREAD(GROUP) split by slot: the replies merged */
    REC_LOCAL, /* answered here (a slot no node serves) */
};

/* What the caller's next reply is made of, in the order commands were given. */
struct rec {
    enum rec_kind kind;
    bool in_tx;         /* given between MULTI and EXEC: redirections are not followed */
    long long block_ms; /* REC_READ: the BLOCK the caller asked for, -1 none */
    size_t nsub;
    struct sub one;    /* the command when nsub is 1 */
    struct sub *subs;  /* the commands of a record for several nodes (owned), else NULL */
    redisReply *local; /* REC_LOCAL's reply (owned) */
};

struct op_cluster {
    uint16_t owner[OP_CLUSTER_SLOTS]; /* node index serving each slot, NO_NODE */
    struct cnode *nodes;              /* every node seen: in a map, a MOVED, the URL */
    size_t nnodes, cap_nodes;
    struct rec *q; /* pending replies: q[qhead … qhead + qlen) */
    size_t qhead, qlen, cap_q;
    uint64_t pushed, popped; /* records ever queued and taken, for multi_at */
    struct op_cmd_arg *args; /* the command being routed */
    int cap_args;
    int home;          /* node of the connection r->ctx points at */
    int last;          /* node of the last command routed, -1 */
    int tx;            /* node of the open transaction, -1 */
    bool multi_open;   /* a MULTI waits for the node of the next command */
    uint64_t multi_at; /* its record, counted as pushed */
};

static bool is_cluster(const struct op_redis *r)
{
    return r->cl != NULL;
}

/* Drops every node connection, read-ahead reply and pending command; keeps
 * the node list and slot map, from which op_redis_connect rediscovers. */
static void cluster_drop(struct op_cluster *cl)
{
    for (size_t i = 0; i < cl->nnodes; i++) {
        struct cnode *n = &cl->nodes[i];
        if (n->ctx)
            redisFree(n->ctx);
        for (size_t k = 0; k < n->nstash; k++)
            freeReplyObject(n->stash[k].rep);
        n->ctx = NULL;
        n->nstash = 0;
        n->sent = n->recvd = 0;
        n->unflushed = n->written = n->watching = false;
    }
    for (size_t i = 0; i < cl->qlen; i++) {
        struct rec *rc = &cl->q[cl->qhead + i];
        struct sub *subs = rc->subs ? rc->subs : &rc->one;
        for (size_t k = 0; k < rc->nsub; k++)
            redisFreeCommand(subs[k].cmd);
        op_free(rc->subs);
        if (rc->local)
            freeReplyObject(rc->local);
    }
    cl->popped += cl->qlen;
    cl->qhead = cl->qlen = 0;
    cl->last = cl->tx = -1;
    cl->multi_open = false;
}

static void cluster_free(struct op_cluster *cl)
{
    if (!cl)
        return;
    cluster_drop(cl);
    for (size_t i = 0; i < cl->nnodes; i++)
        op_free(cl->nodes[i].stash);
    op_free(cl->nodes);
    op_free(cl->q);
    op_free(cl->args);
    op_free(cl);
}

/* Closes r's connection (every node's on a cluster, keeping what is known
 * of the cluster) and forgets the replies it owed. */
static void drop_conn(struct op_redis *r)
{
    if (r->cl)
        cluster_drop(r->cl);
    else if (r->ctx)
        redisFree(r->ctx);
    r->ctx = NULL;
    r->pending = 0;
}

/* Records a failure: sets err/errstr, drops the connection so the next
 * op_redis_ensure reconnects. Returns -1. */
static int fail(struct op_redis *r, const char *what, const char *why)
{
    r->err = 1;
    snprintf(r->errstr, sizeof(r->errstr), "%.40s redis at '%.64s:%d': %.100s", what, r->url.host,
             r->url.port, why && *why ? why : "connection lost");
    drop_conn(r);
    return -1;
}

/* A call on a dropped connection: -1, keeping the message of the failure
 * that dropped it (what the caller logs) when there is one. */
static int not_connected(struct op_redis *r)
{
    if (r->err && r->errstr[0])
        return -1;
    return fail(r, "not connected to", "not connected");
}

int op_redis_init(struct op_redis *r, const char *url, int timeout_ms)
{
    memset(r, 0, sizeof(*r));
    r->timeout_ms = timeout_ms;
    r->backoff_ms = OP_REDIS_BACKOFF_MIN_MS;
    if (op_redis_url_parse(url, &r->url, r->errstr, sizeof(r->errstr)) != 0) {
        r->err = 1;
        return -1;
    }
    return 0;
}

static struct timeval tv_of(int ms)
{
    struct timeval tv = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

/* Opens a connection to host:port with r's timeout and credentials (and
 * its database unless on a cluster). Returns it, or NULL with why[] set. */
static redisContext *open_ctx(const struct op_redis *r, const char *host, int port, char *why,
                              size_t whylen)
{
    redisContext *c = redisConnectWithTimeout(host, port, tv_of(r->timeout_ms));
    if (!c) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    if (c->err) {
        snprintf(why, whylen, "%s", c->errstr);
        goto fail;
    }
    if (redisSetTimeout(c, tv_of(r->timeout_ms)) != REDIS_OK) {
        snprintf(why, whylen, "cannot set its timeout: setsockopt failed");
        goto fail;
    }
    redisEnableKeepAlive(c);
    if (r->url.password[0]) {
        redisReply *rep = r->url.user[0]
                              ? redisCommand(c, "AUTH %s %s", r->url.user, r->url.password)
                              : redisCommand(c, "AUTH %s", r->url.password);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            snprintf(why, whylen, "cannot authenticate: %s", rep ? rep->str : c->errstr);
            if (rep)
                freeReplyObject(rep);
            goto fail;
        }
        freeReplyObject(rep);
    }
    if (r->url.db && !r->cl) {
        redisReply *rep = redisCommand(c, "SELECT %d", r->url.db);
        int ok = rep && rep->type != REDIS_REPLY_ERROR;
        if (rep)
            freeReplyObject(rep);
        if (!ok) {
            snprintf(why, whylen, "cannot select database: SELECT failed");
            goto fail;
        }
    }
    return c;
fail:
    redisFree(c);
    return NULL;
}

/* The index of node host:port in cl, added when new; -1 (memory). */
static int node_index(struct op_cluster *cl, const char *host, int port)
{
    for (size_t i = 0; i < cl->nnodes; i++)
        if (cl->nodes[i].port == port && strcmp(cl->nodes[i].host, host) == 0)
            return (int)i;
    if (cl->nnodes == NO_NODE || strlen(host) >= sizeof(cl->nodes[0].host))
        return -1;
    if (cl->nnodes == cl->cap_nodes) {
        size_t c = cl->cap_nodes ? 2 * cl->cap_nodes : 8;
        struct cnode *p = op_realloc(cl->nodes, c * sizeof(*p));
        if (!p)
            return -1;
        cl->nodes = p;
        cl->cap_nodes = c;
    }
    struct cnode *n = &cl->nodes[cl->nnodes];
    memset(n, 0, sizeof(*n));
    snprintf(n->host, sizeof(n->host), "%s", host);
    n->port = port;
    return (int)cl->nnodes++;
}

/* Applies a CLUSTER SLOTS reply (asked of host) to cl's map. A node listed
 * with an empty host is the one asked. 0, or -1 when rep is no slot map. */
static int apply_slots(struct op_cluster *cl, const redisReply *rep, const char *host)
{
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements == 0)
        return -1;
    uint16_t owner[OP_CLUSTER_SLOTS];
    for (size_t s = 0; s < OP_CLUSTER_SLOTS; s++)
        owner[s] = NO_NODE;
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *e = rep->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2)
            return -1;
        const redisReply *pri = e->element[2];
        long long from = e->element[0]->integer, to = e->element[1]->integer;
        if (from < 0 || to >= OP_CLUSTER_SLOTS || from > to ||
            pri->element[0]->type != REDIS_REPLY_STRING ||
            pri->element[1]->type != REDIS_REPLY_INTEGER)
            return -1;
        const char *h = pri->element[0]->len ? pri->element[0]->str : host;
        int n = node_index(cl, h, (int)pri->element[1]->integer);
        if (n < 0)
            return -1;
        for (long long s = from; s <= to; s++)
            owner[s] = (uint16_t)n;
    }
    memcpy(cl->owner, owner, sizeof(owner));
    return 0;
}

/* Sets owns[i] (nnodes of them) for each node serving at least one slot
 * of the map: the primaries. */
static void mark_primaries(const struct op_cluster *cl, bool *owns)
{
    memset(owns, 0, cl->nnodes * sizeof(*owns));
    for (size_t s = 0; s < OP_CLUSTER_SLOTS; s++)
        if (cl->owner[s] != NO_NODE)
            owns[cl->owner[s]] = true;
}

/* Writes every node's appended commands to its socket, so that all nodes
 * work on theirs while we wait for one. 0, or -1 (r failed). */
static int flush_nodes(struct op_redis *r)
{
    struct op_cluster *cl = r->cl;
    for (size_t i = 0; i < cl->nnodes; i++) {
        struct cnode *n = &cl->nodes[i];
        int done = 0;
        while (n->unflushed && !done)
            if (redisBufferWrite(n->ctx, &done) != REDIS_OK) {
                char why[160];
                snprintf(why, sizeof(why), "node %.64s:%d: %.60s", n->host, n->port,
                         n->ctx->errstr);
                return fail(r, "lost", why);
            }
        n->unflushed = false;
    }
    return 0;
}

/* Appends cmd[0..len) to node i (connecting it when needed) and sets *seq
 * to its reply's number. 0, or -1 (r failed). */
static int node_send(struct op_redis *r, int i, const char *cmd, size_t len, uint64_t *seq)
{
    struct cnode *n = &r->cl->nodes[i];
    if (!n->ctx) {
        char why[200];
        if (!(n->ctx = open_ctx(r, n->host, n->port, why, sizeof(why)))) {
            char msg[256];
            snprintf(msg, sizeof(msg), "node %.64s:%d: %.160s", n->host, n->port, why);
            return fail(r, "cannot connect to", msg);
        }
    }
    if (redisAppendFormattedCommand(n->ctx, cmd, len) != REDIS_OK)
        return fail(r, "cannot queue a command for", "out of memory");
    n->unflushed = true;
    *seq = n->sent++;
    return 0;
}

/* The reply numbered seq of node i: from the read-ahead replies, or read
 * off the socket (keeping the ones before it). NULL when r failed. */
static redisReply *node_take(struct op_redis *r, int i, uint64_t seq)
{
    struct cnode *n = &r->cl->nodes[i];
    if (seq < n->recvd) {
        for (size_t k = 0; k < n->nstash; k++)
            if (n->stash[k].seq == seq) {
                redisReply *rep = n->stash[k].rep;
                n->stash[k] = n->stash[--n->nstash];
                return rep;
            }
        fail(r, "lost a reply of", "no such reply (a bug)");
        return NULL;
    }
    if (!n->ctx || flush_nodes(r) != 0) {
        if (!r->err)
            fail(r, "lost", "not connected");
        return NULL;
    }
    for (;;) {
        void *rep = NULL;
        if (redisGetReply(n->ctx, &rep) != REDIS_OK || !rep) {
            char why[160];
            snprintf(why, sizeof(why), "node %.64s:%d: %.60s", n->host, n->port, n->ctx->errstr);
            fail(r, "lost", why);
            return NULL;
        }
        uint64_t got = n->recvd++;
        if (got == seq)
            return rep;
        if (n->nstash == n->cap_stash) {
            size_t c = n->cap_stash ? 2 * n->cap_stash : 8;
            struct stashed *p = op_realloc(n->stash, c * sizeof(*p));
            if (!p) {
                freeReplyObject(rep);
                fail(r, "lost", "out of memory");
                return NULL;
            }
            n->stash = p;
            n->cap_stash = c;
        }
        n->stash[n->nstash++] = (struct stashed){got, rep};
    }
}

/* Reads the slot map again, from a connected node or any known one.
 * 0, or -1 (r failed, or no node answers with a map). */
static int cluster_refresh(struct op_redis *r)
{
    struct op_cluster *cl = r->cl;
    static const char CMD[] = "*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n";
    int at = cl->home;
    for (size_t i = 0; at < 0 || !cl->nodes[at].ctx; i++) {
        if (i >= cl->nnodes)
            return fail(r, "cannot read the slot map of", "no node connected");
        at = cl->nodes[i].ctx ? (int)i : -1;
    }
    uint64_t seq = 0;
    if (node_send(r, at, CMD, sizeof(CMD) - 1, &seq) != 0)
        return -1;
    redisReply *rep = node_take(r, at, seq);
    if (!rep)
        return -1;
    int rc = apply_slots(cl, rep, cl->nodes[at].host);
    freeReplyObject(rep);
    return rc;
}

/* The node serving slot, reading the map again when none is known; -1. */
static int slot_node(struct op_redis *r, int slot)
{
    if (r->cl->owner[slot] == NO_NODE && !r->err)
        cluster_refresh(r);
    return r->cl->owner[slot] == NO_NODE ? -1 : r->cl->owner[slot];
}

/* A reply made here: an error with text msg. NULL (memory). */
static redisReply *error_reply(const char *msg)
{
    /* calloc/malloc: freeReplyObject (hiredis 0.14) frees with free() */
    redisReply *rep = calloc(1, sizeof(*rep));
    if (!rep || !(rep->str = strdup(msg))) {
        free(rep);
        return NULL;
    }
    rep->type = REDIS_REPLY_ERROR;
    rep->len = strlen(msg);
    return rep;
}

/* A new record at the end of the queue, zeroed. NULL (memory). */
static struct rec *push_rec(struct op_redis *r, enum rec_kind kind)
{
    struct op_cluster *cl = r->cl;
    if (cl->qhead + cl->qlen == cl->cap_q) {
        if (cl->qhead > 0) {
            memmove(cl->q, cl->q + cl->qhead, cl->qlen * sizeof(*cl->q));
            cl->qhead = 0;
        } else {
            size_t c = cl->cap_q ? 2 * cl->cap_q : 64;
            struct rec *p = op_realloc(cl->q, c * sizeof(*p));
            if (!p)
                return NULL;
            cl->q = p;
            cl->cap_q = c;
        }
    }
    struct rec *rc = &cl->q[cl->qhead + cl->qlen++];
    memset(rc, 0, sizeof(*rc));
    rc->kind = kind;
    rc->block_ms = -1;
    rc->in_tx = cl->tx >= 0 || cl->multi_open;
    cl->pushed++;
    r->pending++;
    return rc;
}

/* The node a keyless command goes to: the transaction's, the last one used,
 * or the one r->ctx is on. */
static int any_node(const struct op_cluster *cl)
{
    return cl->tx >= 0 ? cl->tx : cl->last >= 0 ? cl->last : cl->home;
}

/* Sends the MULTI waiting for a node to node i, which becomes the
 * transaction's. 0 or -1 (r failed). */
static int open_tx(struct op_redis *r, int i)
{
    struct op_cluster *cl = r->cl;
    if (!cl->multi_open)
        return 0;
    struct rec *rc = &cl->q[cl->qhead + (cl->multi_at - cl->popped)];
    cl->multi_open = false;
    cl->tx = i;
    rc->one.node = i;
    return node_send(r, i, rc->one.cmd, rc->one.len, &rc->one.seq);
}

/* Sends cmd (owned from here) to node i as a one-reply record. 0 or -1. */
static int send_one(struct op_redis *r, int i, int slot, char *cmd, size_t len)
{
    struct op_cluster *cl = r->cl;
    if (open_tx(r, i) != 0) {
        redisFreeCommand(cmd);
        return -1;
    }
    if (cl->tx >= 0)
        i = cl->tx; /* a transaction stays on its node: a wrong slot aborts it */
    struct rec *rc = push_rec(r, REC_ONE);
    if (!rc) {
        redisFreeCommand(cmd);
        return fail(r, "cannot queue a command for", "out of memory");
    }
    rc->nsub = 1;
    rc->one = (struct sub){.node = i, .slot = slot, .cmd = cmd, .len = len};
    cl->last = i;
    cl->nodes[i].written = true;
    return node_send(r, i, cmd, len, &rc->one.seq);
}

/* Sends cmd (owned from here) to each node i with pick[i] set, as one
 * record of kind; clears each one's `written` (WAIT) or, with unwatch, its
 * `watching`. 0 or -1. */
static int send_many(struct op_redis *r, enum rec_kind kind, const bool *pick, bool unwatch,
                     char *cmd, size_t len)
{
    struct op_cluster *cl = r->cl;
    size_t k = 0;
    for (size_t i = 0; i < cl->nnodes; i++)
        k += pick[i];
    struct sub *subs = op_calloc(k, sizeof(*subs));
    struct rec *rc = subs ? push_rec(r, kind) : NULL;
    if (!rc) {
        op_free(subs);
        redisFreeCommand(cmd);
        return fail(r, "cannot queue a command for", "out of memory");
    }
    rc->nsub = k;
    rc->subs = subs;
    for (size_t i = 0, j = 0; i < cl->nnodes; i++) {
        if (!pick[i])
            continue;
        subs[j] = (struct sub){.node = (int)i, .slot = -1, .cmd = j == 0 ? cmd : NULL, .len = len};
        if (node_send(r, (int)i, cmd, len, &subs[j].seq) != 0)
            return -1; /* cmd is freed with the record by fail */
        if (kind == REC_WAIT)
            cl->nodes[i].written = false;
        else if (unwatch)
            cl->nodes[i].watching = false;
        j++;
    }
    return 0;
}

/* Splits XREAD(GROUP) args (rt: its route) into one command per slot of
 * its streams, without BLOCK, as one REC_READ record. cmd is freed. */
static int send_read(struct op_redis *r, const struct op_cmd_route *rt, int argc, char *cmd)
{
    struct op_cluster *cl = r->cl;
    const struct op_cmd_arg *a = cl->args;
    int ns = rt->nstreams, base = rt->streams + 1;
    int *slots = op_malloc((size_t)ns * sizeof(int));
    const char **argv = op_malloc((size_t)argc * sizeof(char *));
    size_t *lens = op_malloc((size_t)argc * sizeof(size_t));
    struct sub *subs = op_calloc((size_t)ns, sizeof(*subs));
    struct rec *rc = NULL;
    int rc_ok = -1;
    if (!slots || !argv || !lens || !subs) {
        fail(r, "cannot queue a command for", "out of memory");
        goto out;
    }
    for (int k = 0; k < ns; k++)
        slots[k] = op_cluster_slot(a[base + k].p, a[base + k].len);
    size_t nsub = 0;
    for (int k = 0; k < ns; k++) {
        int seen = 0;
        for (int j = 0; j < k && !seen; j++)
            seen = slots[j] == slots[k];
        if (seen)
            continue;
        int c = 0;
        for (int i = 0; i < rt->streams; i++) {
            if (rt->block >= 0 && (i == rt->block || i == rt->block + 1))
                continue;
            argv[c] = a[i].p, lens[c++] = a[i].len;
        }
        argv[c] = a[rt->streams].p, lens[c++] = a[rt->streams].len;
        for (int j = k; j < ns; j++)
            if (slots[j] == slots[k])
                argv[c] = a[base + j].p, lens[c++] = a[base + j].len;
        for (int j = k; j < ns; j++)
            if (slots[j] == slots[k])
                argv[c] = a[base + ns + j].p, lens[c++] = a[base + ns + j].len;
        char *sc = NULL;
        long long sl = redisFormatCommandArgv(&sc, c, argv, lens);
        int node = slot_node(r, slots[k]);
        if (sl < 0 || node < 0) {
            redisFreeCommand(sc);
            if (!r->err)
                fail(r, node < 0 ? "cannot route a read on" : "cannot queue a command for",
                     node < 0 ? "a slot no node serves" : "out of memory");
            goto out;
        }
        subs[nsub++] = (struct sub){.node = node, .slot = slots[k], .cmd = sc, .len = (size_t)sl};
    }
    if (!(rc = push_rec(r, REC_READ))) {
        fail(r, "cannot queue a command for", "out of memory");
        goto out;
    }
    rc->nsub = nsub;
    rc->subs = subs;
    rc->block_ms = rt->block_ms;
    subs = NULL; /* the record's now */
    for (size_t i = 0; i < nsub; i++) {
        struct sub *s = &rc->subs[i];
        cl->last = s->node;
        if (node_send(r, s->node, s->cmd, s->len, &s->seq) != 0)
            goto out;
    }
    rc_ok = 0;
out:
    if (subs)
        for (int k = 0; k < ns; k++)
            redisFreeCommand(subs[k].cmd);
    op_free(subs);
    op_free(slots);
    op_free((void *)argv);
    op_free(lens);
    redisFreeCommand(cmd);
    return rc_ok;
}

/* Routes cmd[0..len) (RESP, owned from here) on a cluster. 0, or -1 (r
 * failed: the command is not sent). */
static int cluster_append(struct op_redis *r, char *cmd, size_t len)
{
    struct op_cluster *cl = r->cl;
    int argc = op_cmd_parse(cmd, len, cl->args, cl->cap_args);
    if (argc > cl->cap_args) {
        struct op_cmd_arg *p = op_realloc(cl->args, (size_t)argc * sizeof(*p));
        if (!p) {
            redisFreeCommand(cmd);
            return fail(r, "cannot queue a command for", "out of memory");
        }
        cl->args = p;
        cl->cap_args = argc;
        argc = op_cmd_parse(cmd, len, cl->args, cl->cap_args);
    }
    struct op_cmd_route rt;
    if (argc < 1 || op_cmd_route(cl->args, argc, &rt) != 0) {
        redisFreeCommand(cmd);
        return fail(r, "cannot route a command on", "a command without its key");
    }
    bool pick[NO_NODE];
    int node;
    switch (rt.kind) {
    case OP_ROUTE_KEY: {
        int slot = op_cluster_slot(cl->args[rt.key].p, cl->args[rt.key].len);
        if ((node = slot_node(r, slot)) < 0) {
            redisFreeCommand(cmd);
            if (r->err)
                return -1;
            struct rec *rc = push_rec(r, REC_LOCAL);
            if (!rc || !(rc->local = error_reply("CLUSTERDOWN no node serves the key's slot")))
                return fail(r, "cannot queue a command for", "out of memory");
            return 0;
        }
        bool watch = cl->args[0].len == 5 && strncasecmp(cl->args[0].p, "WATCH", 5) == 0;
        if (send_one(r, node, slot, cmd, len) != 0)
            return -1;
        if (watch)
            cl->nodes[cl->last].watching = true;
        return 0;
    }
    case OP_ROUTE_STREAMS:
        if (rt.nstreams > 0) {
            int slot = op_cluster_slot(cl->args[rt.streams + 1].p, cl->args[rt.streams + 1].len);
            bool one_slot = true;
            for (int k = 1; k < rt.nstreams && one_slot; k++)
                one_slot = op_cluster_slot(cl->args[rt.streams + 1 + k].p,
                                           cl->args[rt.streams + 1 + k].len) == slot;
            if (one_slot) {
                if ((node = slot_node(r, slot)) < 0) {
                    redisFreeCommand(cmd);
                    return r->err ? -1 : fail(r, "cannot route a read on", "a slot no node serves");
                }
                return send_one(r, node, slot, cmd, len);
            }
        }
        return send_read(r, &rt, argc, cmd);
    case OP_ROUTE_MULTI: {
        struct rec *rc = push_rec(r, REC_ONE);
        if (!rc) {
            redisFreeCommand(cmd);
            return fail(r, "cannot queue a command for", "out of memory");
        }
        rc->nsub = 1;
        rc->one = (struct sub){.node = -1, .slot = -1, .cmd = cmd, .len = len};
        rc->in_tx = true;
        cl->multi_open = true;
        cl->multi_at = cl->pushed - 1;
        return 0;
    }
    case OP_ROUTE_EXEC:
        node = any_node(cl); /* a MULTI with no keyed command goes there too */
        if (open_tx(r, node) != 0) {
            redisFreeCommand(cmd);
            return -1;
        }
        node = cl->tx >= 0 ? cl->tx : node;
        if (send_one(r, node, -1, cmd, len) != 0)
            return -1;
        cl->q[cl->qhead + cl->qlen - 1].in_tx = true;
        cl->tx = -1;
        cl->nodes[node].watching = false;
        return 0;
    case OP_ROUTE_ANY:
        return send_one(r, any_node(cl), -1, cmd, len);
    case OP_ROUTE_WAIT:
    case OP_ROUTE_UNWATCH:
    case OP_ROUTE_ALL: {
        size_t k = 0;
        if (rt.kind == OP_ROUTE_ALL)
            mark_primaries(cl, pick);
        for (size_t i = 0; i < cl->nnodes; i++) {
            const struct cnode *n = &cl->nodes[i];
            if (rt.kind != OP_ROUTE_ALL)
                pick[i] = rt.kind == OP_ROUTE_WAIT ? n->written && n->ctx : n->watching && n->ctx;
            k += pick[i];
        }
        if (k == 0)
            return send_one(r, any_node(cl), -1, cmd, len);
        return send_many(r, rt.kind == OP_ROUTE_WAIT ? REC_WAIT : REC_FIRST, pick,
                         rt.kind == OP_ROUTE_UNWATCH, cmd, len);
    }
    }
    redisFreeCommand(cmd);
    return fail(r, "cannot route a command on", "unknown route");
}

/* Takes the reply of s, following MOVED, ASK and TRYAGAIN unless in_tx
 * (then only a MOVED's slot is noted). NULL when r failed. */
static redisReply *take_sub(struct op_redis *r, struct sub *s, bool in_tx)
{
    struct op_cluster *cl = r->cl;
    redisReply *rep = node_take(r, s->node, s->seq);
    int tries = 0, again = 0;
    bool asking = false; /* the last resend was an ASK's: a TRYAGAIN resend asks again */
    while (rep && rep->type == REDIS_REPLY_ERROR && tries < REDIRECTS_MAX) {
        char host[256];
        int slot, port;
        enum op_redirect how = op_cluster_redirect(rep->str, &slot, host, sizeof(host), &port);
        if (how == OP_REDIRECT_NONE)
            break;
        int to = how == OP_REDIRECT_TRYAGAIN ? s->node : node_index(cl, host, port);
        if (to < 0)
            break;
        if (how == OP_REDIRECT_MOVED) {
            cl->owner[slot] = (uint16_t)to;
            if (cluster_refresh(r) != 0 && r->err)
                break; /* rep is returned: NULL below */
            to = s->slot >= 0 && cl->owner[s->slot] != NO_NODE ? cl->owner[s->slot] : to;
        }
        if (in_tx || !s->cmd || (how == OP_REDIRECT_TRYAGAIN && ++again > TRYAGAIN_MAX))
            break;
        if (how == OP_REDIRECT_TRYAGAIN) {
            struct timespec ts = {0, TRYAGAIN_SLEEP_MS * 1000000L};
            nanosleep(&ts, NULL);
        } else {
            tries++;
            asking = how == OP_REDIRECT_ASK;
        }
        freeReplyObject(rep);
        r->redirects++;
        uint64_t ask_seq = 0;
        static const char ASKING[] = "*1\r\n$6\r\nASKING\r\n";
        if ((asking && node_send(r, to, ASKING, sizeof(ASKING) - 1, &ask_seq) != 0) ||
            node_send(r, to, s->cmd, s->len, &s->seq) != 0)
            return NULL;
        s->node = to;
        if (asking) {
            redisReply *ok = node_take(r, to, ask_seq);
            if (!ok)
                return NULL;
            freeReplyObject(ok);
        }
        rep = node_take(r, to, s->seq);
    }
    if (r->err && rep) {
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

/* Merges the replies reps[0..n) (freed) of a split XREAD(GROUP) into one:
 * the first error if any, else one array of every stream's [key, entries]
 * (NIL when none). NULL (memory). */
static redisReply *merge_reads(redisReply **reps, size_t n)
{
    size_t total = 0, err = n;
    for (size_t i = 0; i < n; i++) {
        if (reps[i] && reps[i]->type == REDIS_REPLY_ERROR && err == n)
            err = i;
        if (reps[i] && reps[i]->type == REDIS_REPLY_ARRAY)
            total += reps[i]->elements;
    }
    size_t keep = err < n ? err : 0;
    redisReply *out = reps[keep];
    if (err == n && total > 0) {
        out = calloc(1, sizeof(*out)); /* freeReplyObject frees with free() */
        if (out)
            out->element = calloc(total, sizeof(redisReply *));
        if (!out || !out->element) {
            free(out);
            out = NULL;
        } else {
            out->type = REDIS_REPLY_ARRAY;
            for (size_t i = 0; i < n; i++)
                if (reps[i] && reps[i]->type == REDIS_REPLY_ARRAY) {
                    for (size_t k = 0; k < reps[i]->elements; k++)
                        out->element[out->elements++] = reps[i]->element[k];
                    reps[i]->elements = 0;
                }
        }
        keep = n; /* every input is freed below */
    }
    for (size_t i = 0; i < n; i++)
        if (i != keep && reps[i])
            freeReplyObject(reps[i]);
    return out;
}

/* Takes the replies of rc's commands into reps[]; NULL entries when r failed. */
static int take_all(struct op_redis *r, struct rec *rc, redisReply **reps)
{
    int rc_ok = 0;
    for (size_t i = 0; i < rc->nsub; i++) {
        reps[i] = rc_ok == 0 ? take_sub(r, &rc->subs[i], rc->in_tx) : NULL;
        if (!reps[i])
            rc_ok = -1;
    }
    if (rc_ok != 0)
        for (size_t i = 0; i < rc->nsub; i++)
            if (reps[i])
                freeReplyObject(reps[i]);
    return rc_ok;
}

/* The reply of a split read; with BLOCK and nothing read, sends the reads
 * again after 1 ms, then after twice as long each time up to
 * OP_CLUSTER_POLL_MAX_MS, until something comes or BLOCK's time is up (0:
 * for ever, as Redis does). NULL when r failed. */
static redisReply *take_read(struct op_redis *r, struct rec *rc, redisReply **reps)
{
    int64_t until = op_now_ms() + rc->block_ms, pause = 1;
    for (;;) {
        if (take_all(r, rc, reps) != 0)
            return NULL;
        redisReply *out = merge_reads(reps, rc->nsub);
        if (!out) {
            fail(r, "lost", "out of memory");
            return NULL;
        }
        int64_t now = op_now_ms();
        if (out->type != REDIS_REPLY_NIL || rc->block_ms < 0 || (rc->block_ms > 0 && now >= until))
            return out;
        freeReplyObject(out);
        int64_t ms = rc->block_ms == 0 || until - now > pause ? pause : until - now;
        pause = pause * 2 > OP_CLUSTER_POLL_MAX_MS ? OP_CLUSTER_POLL_MAX_MS : pause * 2;
        struct timespec ts = {0, (long)ms * 1000000L};
        nanosleep(&ts, NULL);
        for (size_t i = 0; i < rc->nsub; i++) {
            struct sub *s = &rc->subs[i];
            if (node_send(r, s->node, s->cmd, s->len, &s->seq) != 0)
                return NULL;
        }
    }
}

/* Of the replies reps[0..n) to one command sent to several nodes: WAIT's
 * smallest count (an error or a non-integer first) when wait, else the
 * first. The others are freed. */
static redisReply *pick_reply(redisReply **reps, size_t n, bool wait)
{
    size_t pick = 0;
    for (size_t i = 1; i < n && wait; i++) {
        const redisReply *a = reps[pick], *b = reps[i];
        if (a && b && a->type == REDIS_REPLY_INTEGER &&
            (b->type != REDIS_REPLY_INTEGER || b->integer < a->integer))
            pick = i;
    }
    for (size_t i = 0; i < n; i++)
        if (i != pick && reps[i])
            freeReplyObject(reps[i]);
    return reps[pick];
}

/* The caller's next reply on a cluster (see op_redis_next_reply). */
static redisReply *cluster_next_reply(struct op_redis *r)
{
    struct op_cluster *cl = r->cl;
    if (cl->qlen == 0) {
        fail(r, "lost", "no reply pending (a bug)");
        return NULL;
    }
    if (cl->multi_open && cl->multi_at == cl->popped && open_tx(r, any_node(cl)) != 0)
        return NULL;
    struct rec rc = cl->q[cl->qhead];
    struct sub *owned = rc.subs, *subs = owned ? owned : &rc.one;
    rc.subs = subs;
    redisReply *out = NULL, *small[8] = {NULL}, **reps = small;
    if (rc.nsub > 8 && !(reps = op_calloc(rc.nsub, sizeof(redisReply *)))) {
        fail(r, "lost", "out of memory");
        return NULL;
    }
    if (rc.kind == REC_LOCAL) {
        out = rc.local;
        cl->q[cl->qhead].local = NULL;
    } else if (rc.kind == REC_ONE) {
        out = take_sub(r, &subs[0], rc.in_tx);
    } else if (rc.kind == REC_READ) {
        out = take_read(r, &rc, reps);
    } else if (rc.nsub > 0 && take_all(r, &rc, reps) == 0) {
        out = pick_reply(reps, rc.nsub, rc.kind == REC_WAIT);
    }
    if (reps != small)
        op_free(reps);
    if (r->err) { /* fail() already freed the queue, this record with it */
        if (out)
            freeReplyObject(out);
        return NULL;
    }
    for (size_t i = 0; i < rc.nsub; i++)
        redisFreeCommand(subs[i].cmd);
    op_free(owned);
    cl->qhead++;
    cl->qlen--;
    cl->popped++;
    if (cl->qlen == 0)
        cl->qhead = 0;
    if (r->pending > 0)
        r->pending--;
    return out;
}

/* ---- connecting ---- */

/* Makes r a cluster client on the slot map rep (asked of ctx at host:port),
 * or a single-instance one when rep says cluster support is off. 0, or -1
 * with why[] set. ctx is r's from here, whatever happens. */
static int take_topology(struct op_redis *r, redisContext *ctx, const char *host, int port,
                         redisReply *rep, char *why, size_t whylen)
{
    bool single =
        rep->type == REDIS_REPLY_ERROR && (strstr(rep->str, "cluster support disabled") || !r->cl);
    if (single) { /* not a cluster node (or one we cannot ask: used as before) */
        cluster_free(r->cl);
        r->cl = NULL;
        r->ctx = ctx;
        return 0;
    }
    if (r->url.db) {
        redisFree(ctx);
        snprintf(why, whylen, "a cluster has only database 0: drop '/%d' from REDIS_URL",
                 r->url.db);
        return -1;
    }
    if (!r->cl && !(r->cl = op_calloc(1, sizeof(*r->cl)))) {
        redisFree(ctx);
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    struct op_cluster *cl = r->cl;
    cluster_drop(cl);
    int home = node_index(cl, host, port);
    if (home < 0 || apply_slots(cl, rep, host) != 0) {
        redisFree(ctx);
        snprintf(why, whylen, "%s",
                 rep->type == REDIS_REPLY_ARRAY && rep->elements == 0
                     ? "the cluster has no slot assigned (create it: redis-cli --cluster create)"
                     : "cannot read the cluster's slot map (CLUSTER SLOTS)");
        return -1;
    }
    cl->home = home;
    cl->nodes[home].ctx = ctx;
    r->ctx = ctx;
    return 0;
}

/* Connects every primary of the map that is not connected yet: a handle
 * counts as connected only when all are, so that while one is down (a
 * failover under way) op_redis_ensure backs off instead of the caller
 * failing on every command for that node at full speed. 0, or -1 with
 * why[] set (every connection dropped). */
static int connect_primaries(struct op_redis *r, char *why, size_t whylen)
{
    struct op_cluster *cl = r->cl;
    bool *owns = op_calloc(cl->nnodes, sizeof(*owns));
    if (!owns) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    mark_primaries(cl, owns);
    int rc = 0;
    for (size_t i = 0; i < cl->nnodes && rc == 0; i++) {
        struct cnode *n = &cl->nodes[i];
        char e[200];
        if (!owns[i] || n->ctx)
            continue;
        if (!(n->ctx = open_ctx(r, n->host, n->port, e, sizeof(e)))) {
            snprintf(why, whylen, "primary %.64s:%d of the slot map: %.150s", n->host, n->port, e);
            rc = -1;
        }
    }
    op_free(owns);
    if (rc != 0)
        cluster_drop(cl);
    return rc;
}

int op_redis_connect(struct op_redis *r)
{
    drop_conn(r);
    char why[256] = "";
    /* the URL's node first, then (on a cluster) every node known */
    size_t tried = 0, known = r->cl ? r->cl->nnodes : 0;
    for (;;) {
        const char *host = tried == 0 ? r->url.host : r->cl->nodes[tried - 1].host;
        int port = tried == 0 ? r->url.port : r->cl->nodes[tried - 1].port;
        redisContext *ctx = open_ctx(r, host, port, why, sizeof(why));
        if (ctx) {
            redisReply *rep = redisCommand(ctx, "CLUSTER SLOTS");
            if (!rep) {
                snprintf(why, sizeof(why), "%s", ctx->errstr);
                redisFree(ctx);
            } else {
                int rc = take_topology(r, ctx, host, port, rep, why, sizeof(why));
                freeReplyObject(rep);
                if (rc == 0 && (!r->cl || connect_primaries(r, why, sizeof(why)) == 0))
                    break;
                r->ctx = NULL; /* freed with the others by connect_primaries */
            }
        }
        if (++tried > known) {
            char msg[300];
            snprintf(msg, sizeof(msg), "%s%s", why, known ? " (nor any other cluster node)" : "");
            return fail(r, "cannot connect to", msg);
        }
    }
    r->err = 0;
    r->errstr[0] = '\0';
    r->backoff_ms = OP_REDIS_BACKOFF_MIN_MS;
    if (r->connected_once)
        r->reconnects++;
    r->connected_once = 1;
    return 0;
}

int op_redis_ensure(struct op_redis *r)
{
    if (r->ctx && !r->ctx->err)
        return 0;
    int64_t now = op_now_ms();
    if (now < r->next_attempt_ms)
        return -1;
    if (op_redis_connect(r) == 0) {
        r->next_attempt_ms = 0;
        return 0;
    }
    r->next_attempt_ms = now + r->backoff_ms;
    r->backoff_ms =
        r->backoff_ms * 2 > OP_REDIS_BACKOFF_MAX_MS ? OP_REDIS_BACKOFF_MAX_MS : r->backoff_ms * 2;
    return -1;
}

void op_redis_release(struct op_redis *r)
{
    drop_conn(r);
    cluster_free(r->cl);
    r->cl = NULL;
}

/* ---- commands ---- */

/* Turns a NULL reply into a dropped connection with the context's reason. */
static struct redisReply *checked(struct op_redis *r, void *rep)
{
    if (!rep) {
        char why[128];
        snprintf(why, sizeof(why), "%s", r->ctx ? r->ctx->errstr : "not connected");
        fail(r, "lost", why);
    }
    return rep;
}

/* Formats fmt/ap (hiredis's format) and routes it on a cluster. 0 or -1. */
static int cluster_vappend(struct op_redis *r, const char *fmt, va_list ap)
{
    char *cmd = NULL;
    int len = redisvFormatCommand(&cmd, fmt, ap);
    if (len < 0)
        return fail(r, "cannot queue a command for", "bad format or out of memory");
    return cluster_append(r, cmd, (size_t)len);
}

int op_redis_append(struct op_redis *r, int argc, const char **argv, const size_t *lens)
{
    if (!r->ctx)
        return not_connected(r);
    if (is_cluster(r)) {
        char *cmd = NULL;
        long long len = redisFormatCommandArgv(&cmd, argc, argv, lens);
        if (len < 0)
            return fail(r, "cannot queue a command for", "out of memory");
        return cluster_append(r, cmd, (size_t)len);
    }
    if (redisAppendCommandArgv(r->ctx, argc, argv, lens) != REDIS_OK)
        return fail(r, "cannot queue a command for", "out of memory");
    r->pending++;
    return 0;
}

int op_redis_appendf(struct op_redis *r, const char *fmt, ...)
{
    if (!r->ctx)
        return not_connected(r);
    va_list ap;
    va_start(ap, fmt);
    int rc;
    if (is_cluster(r)) {
        rc = cluster_vappend(r, fmt, ap);
        va_end(ap);
        return rc;
    }
    rc = redisvAppendCommand(r->ctx, fmt, ap);
    va_end(ap);
    if (rc != REDIS_OK)
        return fail(r, "cannot queue a command for", "bad format or out of memory");
    r->pending++;
    return 0;
}

struct redisReply *op_redis_next_reply(struct op_redis *r)
{
    void *rep = NULL;
    if (!r->ctx) {
        not_connected(r);
        return NULL;
    }
    if (is_cluster(r))
        return cluster_next_reply(r);
    if (redisGetReply(r->ctx, &rep) != REDIS_OK)
        return checked(r, NULL);
    if (r->pending > 0)
        r->pending--;
    return rep;
}

struct redisReply *op_redis_cmd(struct op_redis *r, int argc, const char **argv, const size_t *lens)
{
    if (!r->ctx) {
        not_connected(r);
        return NULL;
    }
    if (is_cluster(r))
        return op_redis_append(r, argc, argv, lens) == 0 ? op_redis_next_reply(r) : NULL;
    return checked(r, redisCommandArgv(r->ctx, argc, argv, lens));
}

struct redisReply *op_redis_cmdf(struct op_redis *r, const char *fmt, ...)
{
    if (!r->ctx) {
        not_connected(r);
        return NULL;
    }
    va_list ap;
    va_start(ap, fmt);
    if (is_cluster(r)) {
        int rc = cluster_vappend(r, fmt, ap);
        va_end(ap);
        return rc == 0 ? op_redis_next_reply(r) : NULL;
    }
    void *rep = redisvCommand(r->ctx, fmt, ap);
    va_end(ap);
    return checked(r, rep);
}

int op_reply_type(const struct redisReply *rep)
{
    return rep ? rep->type : 0;
}

const char *op_reply_str(const struct redisReply *rep, size_t *len)
{
    if (!rep || (rep->type != REDIS_REPLY_STRING && rep->type != REDIS_REPLY_STATUS &&
                 rep->type != REDIS_REPLY_ERROR))
        return NULL;
    if (len)
        *len = rep->len;
    return rep->str;
}

long long op_reply_int(const struct redisReply *rep)
{
    return rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
}

size_t op_reply_count(const struct redisReply *rep)
{
    return rep && rep->type == REDIS_REPLY_ARRAY ? rep->elements : 0;
}

struct redisReply *op_reply_at(const struct redisReply *rep, size_t i)
{
    return (rep && rep->type == REDIS_REPLY_ARRAY && i < rep->elements) ? rep->element[i] : NULL;
}

void op_reply_free(struct redisReply *rep)
{
    if (rep)
        freeReplyObject(rep);
}

int op_reply_is_status(const struct redisReply *rep, const char *s)
{
    return rep && rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, s) == 0;
}

int op_reply_is_error(const struct redisReply *rep, const char *prefix)
{
    return rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, prefix, strlen(prefix)) == 0;
}

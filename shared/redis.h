/* The Redis helper: URL parsing, AUTH, timeouts, pipelining, reconnect with backoff. */
#ifndef OP_REDIS_H
#define OP_REDIS_H

#include <stddef.h>
#include <stdint.h>

/*
 * The only wrapper around hiredis (0.14): no other file includes its
 * headers.
 *
 * Redis Cluster: when the server at the URL answers CLUSTER SLOTS (a node
 * with cluster-enabled yes), the handle becomes a cluster client, and every
 * function below keeps its meaning: each command goes to the primary owning
 * its key's slot (one connection per node, opened when first needed), and
 * replies still come back in the order the commands were given. MOVED
 * refreshes the slot map and resends, ASK resends once after ASKING,
 * TRYAGAIN (a multi-key command during a migration) waits and resends —
 * except between MULTI and EXEC, where the error is returned (EXEC then
 * fails with EXECABORT) so that a transaction never runs in pieces. MULTI
 * goes to the node of the next keyed command, EXEC to the transaction's,
 * WAIT to every node written since its last WAIT (the reply is the smallest
 * count), UNWATCH to every node holding a WATCH, SCRIPT to every primary.
 * XREAD and XREADGROUP over streams of several slots are split into one
 * command per slot (a cluster refuses a command whose keys span slots) and
 * their replies merged into one; such a read with BLOCK polls instead,
 * 1 ms after the last empty answer and then twice as long each time up to
 * OP_CLUSTER_POLL_MAX_MS (docs/cluster.md says why). Any I/O failure drops every node connection;
 * op_redis_ensure then reads the slot map again from the URL's node or any
 * node known before. A Redis that is not a cluster node is used exactly as
 * before. Replies are handed out as opaque `struct redisReply *` and read
 * with the op_reply_* accessors below; the caller frees each reply it got
 * with op_reply_free.
 *
 * hiredis 0.14 contexts are not thread-safe: use one struct op_redis per
 * thread.
 */
struct redisReply;
struct redisContext;

struct op_redis_url {
    char host[256];
    int port;           /* 6379 when the URL has none */
    char user[128];     /* ACL user, "" for the default user */
    char password[256]; /* "" for no AUTH */
    int db;             /* SELECTed after connecting, 0 by default */
};

/*
 * Parses redis://[[user]:password@]host[:port][/db]. Returns 0, or -1 with a
 * message in err that never contains the password.
 */
int op_redis_url_parse(const char *url, struct op_redis_url *u, char *err, size_t errlen);

/* A connection handle that survives errors: after a failure err is set and
 * ctx is dropped; op_redis_ensure reconnects with backoff. */
struct op_redis {
    struct redisContext *ctx; /* NULL while disconnected */
    struct op_redis_url url;
    int timeout_ms;          /* connect and per-command timeout */
    int err;                 /* 0, or non-zero after the last call failed */
    char errstr[256];        /* what failed, lowercase, for logs */
    int backoff_ms;          /* delay before the next reconnect attempt */
    int64_t next_attempt_ms; /* monotonic ms before which ensure won't retry */
    uint64_t reconnects;     /* successful connects after the first one */
    int connected_once;      /* 1 after the first successful connect */
    int pending;             /* replies appended but not yet read */
    struct op_cluster *cl;   /* the slot map and node connections when the server at url
                                is a Redis Cluster node (found at connect), else NULL */
    uint64_t redirects;      /* MOVED, ASK and TRYAGAIN answers followed (cluster only) */
};

/* Why 16 ms: a read split over several slots cannot BLOCK on all of them
 * at once, so it polls, backing off from 1 ms while nothing comes. A
 * steady flow is found within 1-2 ms; an idle pipeline costs about 60
 * polls a second per reading process (a fixed 2 ms cost 8-11 % of a core
 * per process with 16 shards, measured), and its first report after a
 * quiet spell waits at most 16 ms more than it would on one Redis. */
#define OP_CLUSTER_POLL_MAX_MS 16

/* Why these bounds: 50 ms retries a restarting Redis quickly; 2 s caps the
 * wait so a recovered Redis is used again within 2 s. */
#define OP_REDIS_BACKOFF_MIN_MS 50
#define OP_REDIS_BACKOFF_MAX_MS 2000

/* Parses url into r (no connection yet). Returns 0, or -1 with r->errstr. */
int op_redis_init(struct op_redis *r, const char *url, int timeout_ms);

/* Connects now (AUTH and SELECT included). Returns 0, or -1 with r->errstr. */
int op_redis_connect(struct op_redis *r);

/*
 * Makes sure r is connected: returns 0 at once when it is; otherwise tries to
 * reconnect unless the backoff delay has not passed, doubling the delay after
 * each failure. Returns -1 (errstr set) while Redis stays unreachable.
 */
int op_redis_ensure(struct op_redis *r);

/* Closes the connection; r can be connected again. */
void op_redis_release(struct op_redis *r);

/*
 * Runs one command given as argc strings (lens may be NULL for
 * NUL-terminated args) and returns its reply, which may be an error reply.
 * Returns NULL on an I/O error or timeout: the connection is then dropped and
 * errstr says why. The caller frees the reply.
 */
struct redisReply *op_redis_cmd(struct op_redis *r, int argc, const char **argv,
                                const size_t *lens);

/* printf-style variant (hiredis format: %s, %b for binary with a length, %d …). */
struct redisReply *op_redis_cmdf(struct op_redis *r, const char *fmt, ...);

/*
 * Pipelining: op_redis_append queues a command without waiting; each queued
 * command's reply is then read in order with op_redis_next_reply. A failure of
 * either drops the connection (the queued commands may or may not have run).
 * Return 0/-1 and the reply or NULL.
 */
int op_redis_append(struct op_redis *r, int argc, const char **argv, const size_t *lens);
int op_redis_appendf(struct op_redis *r, const char *fmt, ...);
struct redisReply *op_redis_next_reply(struct op_redis *r);

/* Reply accessors. Each accepts NULL (a missing element of a malformed
 * reply) and answers as for an empty reply: type 0, NULL string, 0, no
 * elements, so that a chain such as op_reply_str(op_reply_at(r, 3), NULL)
 * never dereferences NULL. */
enum op_reply_type {
    OP_REPLY_STRING = 1,
    OP_REPLY_ARRAY = 2,
    OP_REPLY_INTEGER = 3,
    OP_REPLY_NIL = 4,
    OP_REPLY_STATUS = 5,
    OP_REPLY_ERROR = 6,
};
int op_reply_type(const struct redisReply *rep);
/* The string of a STRING, STATUS or ERROR reply (len may be NULL); NULL otherwise. */
const char *op_reply_str(const struct redisReply *rep, size_t *len);
long long op_reply_int(const struct redisReply *rep);
size_t op_reply_count(const struct redisReply *rep); /* array elements, 0 otherwise */
struct redisReply *op_reply_at(const struct redisReply *rep, size_t i); /* borrowed */
void op_reply_free(struct redisReply *rep);

/* 1 when rep is a STATUS reply equal to s (e.g. "OK"). */
int op_reply_is_status(const struct redisReply *rep, const char *s);
/* 1 when rep is an ERROR reply starting with prefix (e.g. "BUSYGROUP"). */
int op_reply_is_error(const struct redisReply *rep, const char *prefix);

/* Monotonic milliseconds, for deadlines and backoff. */
int64_t op_now_ms(void);

#endif

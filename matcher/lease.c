/* Shard leases, the workers' heartbeat and the fenced read: the Lua scripts of the matcher. */
#include <stdio.h>
#include <string.h>

#include "matcher/matcher.h"
#include "shared/log.h"

/*
 * Every script is sent with EVAL (Redis caches it by its SHA; the text is a
 * few hundred bytes, and EVAL survives a Redis restart that empties the
 * script cache, which EVALSHA would not). Keys a script touches are passed
 * in KEYS, and a shard's keys share its {S} hash tag, so each script stays
 * within one cluster slot.
 */

/* Renew only while the lease still names us: a lease that expired and was
 * taken by another worker must not be extended by the old owner. */
static const char RENEW_SCRIPT[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                   "redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end return 0";

static const char RELEASE_SCRIPT[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                     "redis.call('DEL', KEYS[1]) return 1 end return 0";

/* Server time, so that the workers' clocks never need to agree. A sorted
 * set rather than one key per worker: counting keys would need SCAN over a
 * keyspace that holds millions of idempotency keys. */
static const char HEARTBEAT_SCRIPT[] =
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1]) "
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) "
    "redis.call('PEXPIRE', KEYS[1], 10 * tonumber(ARGV[2])) "
    "return redis.call('ZRANGE', KEYS[1], 0, -1)";

/* Runs ARGV[2…] as a command only while KEYS[1] (the lease) holds ARGV[1].
 * Atomic: a takeover (SET NX of the new owner) is ordered either before the
 * script, which then refuses, or after the command. */
static const char FENCED_SCRIPT[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('FENCED') end "
    "return redis.call(unpack(ARGV, 2))";

int lease_key(char *buf, uint32_t s)
{
    return snprintf(buf, OP_KEY_MAX, "lease:{%u}", s);
}

int snap_key(char *buf, uint32_t s)
{
    return snprintf(buf, OP_KEY_MAX, "snap:{%u}", s);
}

int lease_acquire(struct op_redis *r, uint32_t s, const char *name, int lease_ms)
{
    char key[OP_KEY_MAX];
    lease_key(key, s);
    struct redisReply *rep = op_redis_cmdf(r, "SET %s %s NX PX %d", key, name, lease_ms);
    if (!rep)
        return -1;
    int rc = op_reply_is_status(rep, "OK") ? 1 : op_reply_type(rep) == OP_REPLY_NIL ? 0 : -1;
    if (rc < 0)
        op_error("lease_acquire_failed", "shard=%u err=\"%s\"", s,
                 op_reply_str(rep, NULL) ? op_reply_str(rep, NULL) : "unexpected reply");
    op_reply_free(rep);
    return rc;
}

int lease_append_renew(struct op_redis *r, uint32_t s, const char *name, int lease_ms)
{
    char key[OP_KEY_MAX];
    lease_key(key, s);
    return op_redis_appendf(r, "EVAL %s 1 %s %s %d", RENEW_SCRIPT, key, name, lease_ms);
}

int lease_release(struct op_redis *r, uint32_t s, const char *name)
{
    char key[OP_KEY_MAX];
    lease_key(key, s);
    struct redisReply *rep = op_redis_cmdf(r, "EVAL %s 1 %s %s", RELEASE_SCRIPT, key, name);
    if (!rep)
        return -1;
    int rc = op_reply_type(rep) == OP_REPLY_INTEGER ? (int)op_reply_int(rep) : -1;
    op_reply_free(rep);
    return rc;
}

struct redisReply *lease_heartbeat(struct op_redis *r, const char *name, int ttl_ms)
{
    struct redisReply *rep =
        op_redis_cmdf(r, "EVAL %s 1 %s %s %d", HEARTBEAT_SCRIPT, MATCHER_ALIVE_KEY, name, ttl_ms);
    if (rep && op_reply_type(rep) != OP_REPLY_ARRAY) {
        const char *s = op_reply_str(rep, NULL);
        op_error("heartbeat_failed", "err=\"%s\"", s ? s : "unexpected reply");
        op_reply_free(rep);
        return NULL;
    }
    return rep;
}

void lease_leave(struct op_redis *r, const char *name)
{
    op_reply_free(op_redis_cmdf(r, "ZREM %s %s", MATCHER_ALIVE_KEY, name));
}

/* Why 32: the longest fenced command is XREADGROUP with its 9 arguments. */
#define FENCED_ARGS_MAX 32

int lease_append_fenced(struct op_redis *r, uint32_t s, const char *name, const char *stream_key,
                        int argc, const char **argv)
{
    char key[OP_KEY_MAX];
    const char *av[FENCED_ARGS_MAX + 6];
    if (argc > FENCED_ARGS_MAX)
        return -1;
    lease_key(key, s);
    av[0] = "EVAL";
    av[1] = FENCED_SCRIPT;
    av[2] = "2";
    av[3] = key;
    av[4] = stream_key;
    av[5] = name;
    memcpy(av + 6, argv, (size_t)argc * sizeof(*argv));
    return op_redis_append(r, argc + 6, av, NULL);
}

int lease_is_fenced(const struct redisReply *rep)
{
    /* Redis 7.0 prefixes a script's error_reply with "ERR " when it has no
     * code of its own: match the word anywhere. */
    const char *s = rep && op_reply_type(rep) == OP_REPLY_ERROR ? op_reply_str(rep, NULL) : NULL;
    return s && strstr(s, "FENCED") != NULL;
}

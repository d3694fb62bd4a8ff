/* The Redis helper: URL parsing, AUTH, timeouts, pipelining, reconnect with backoff. */
#include "shared/redis.h"

#include <hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* Records a failure: sets err/errstr, drops the connection so the next
 * op_redis_ensure reconnects. Returns -1. */
static int fail(struct op_redis *r, const char *what, const char *why)
{
    r->err = 1;
    snprintf(r->errstr, sizeof(r->errstr), "%.40s redis at '%.64s:%d': %.100s", what, r->url.host,
             r->url.port, why && *why ? why : "connection lost");
    if (r->ctx) {
        redisFree(r->ctx);
        r->ctx = NULL;
    }
    r->pending = 0;
    return -1;
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

int op_redis_connect(struct op_redis *r)
{
    if (r->ctx) {
        redisFree(r->ctx);
        r->ctx = NULL;
    }
    r->pending = 0;
    r->ctx = redisConnectWithTimeout(r->url.host, r->url.port, tv_of(r->timeout_ms));
    if (!r->ctx)
        return fail(r, "cannot connect to", "out of memory");
    if (r->ctx->err) {
        char why[128];
        snprintf(why, sizeof(why), "%s", r->ctx->errstr);
        return fail(r, "cannot connect to", why);
    }
    if (redisSetTimeout(r->ctx, tv_of(r->timeout_ms)) != REDIS_OK)
        return fail(r, "cannot set timeout on", "setsockopt failed");
    redisEnableKeepAlive(r->ctx);
    if (r->url.password[0]) {
        redisReply *rep = r->url.user[0]
                              ? redisCommand(r->ctx, "AUTH %s %s", r->url.user, r->url.password)
                              : redisCommand(r->ctx, "AUTH %s", r->url.password);
        if (!rep)
            return fail(r, "cannot authenticate to", r->ctx->errstr);
        if (rep->type == REDIS_REPLY_ERROR) {
            char why[128];
            snprintf(why, sizeof(why), "%s", rep->str);
            freeReplyObject(rep);
            return fail(r, "cannot authenticate to", why);
        }
        freeReplyObject(rep);
    }
    if (r->url.db) {
        redisReply *rep = redisCommand(r->ctx, "SELECT %d", r->url.db);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            if (rep)
                freeReplyObject(rep);
            return fail(r, "cannot select database on", "SELECT failed");
        }
        freeReplyObject(rep);
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
    if (r->ctx)
        redisFree(r->ctx);
    r->ctx = NULL;
    r->pending = 0;
}

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

struct redisReply *op_redis_cmd(struct op_redis *r, int argc, const char **argv, const size_t *lens)
{
    if (!r->ctx) {
        fail(r, "not connected to", "not connected");
        return NULL;
    }
    return checked(r, redisCommandArgv(r->ctx, argc, argv, lens));
}

struct redisReply *op_redis_cmdf(struct op_redis *r, const char *fmt, ...)
{
    if (!r->ctx) {
        fail(r, "not connected to", "not connected");
        return NULL;
    }
    va_list ap;
    va_start(ap, fmt);
    void *rep = redisvCommand(r->ctx, fmt, ap);
    va_end(ap);
    return checked(r, rep);
}

int op_redis_append(struct op_redis *r, int argc, const char **argv, const size_t *lens)
{
    if (!r->ctx)
        return fail(r, "not connected to", "not connected");
    if (redisAppendCommandArgv(r->ctx, argc, argv, lens) != REDIS_OK)
        return fail(r, "cannot queue a command for", "out of memory");
    r->pending++;
    return 0;
}

int op_redis_appendf(struct op_redis *r, const char *fmt, ...)
{
    if (!r->ctx)
        return fail(r, "not connected to", "not connected");
    va_list ap;
    va_start(ap, fmt);
    int rc = redisvAppendCommand(r->ctx, fmt, ap);
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
        fail(r, "not connected to", "not connected");
        return NULL;
    }
    if (redisGetReply(r->ctx, &rep) != REDIS_OK)
        return checked(r, NULL);
    if (r->pending > 0)
        r->pending--;
    return rep;
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

/* The publish fence: WATCH + GET + PTTL of a lease, pipelined behind the previous EXEC. */
#include "matcher/fence.h"

#include <string.h>

#include "matcher/matcher.h"

void fence_init(struct fence *f, const char *name, int lease_ms)
{
    memset(f, 0, sizeof(*f));
    f->shard = -1;
    f->name = name;
    /* Why a quarter: renewals run every third of the TTL, so a healthy
     * lease never has less; less means renewals are failing or late. */
    f->margin_ms = lease_ms / 4;
}

int fence_append(struct fence *f, struct op_redis *r, uint32_t s)
{
    char key[OP_KEY_MAX];
    lease_key(key, s);
    f->watching = 1;
    f->shard = -1;
    f->at_ms = op_now_ms();
    if (op_redis_appendf(r, "WATCH %s", key) != 0 || op_redis_appendf(r, "GET %s", key) != 0 ||
        op_redis_appendf(r, "PTTL %s", key) != 0)
        return -1;
    f->shard = (int)s;
    return 0;
}

int fence_read(struct fence *f, struct op_redis *r)
{
    struct redisReply *r0 = op_redis_next_reply(r);
    struct redisReply *r1 = r0 ? op_redis_next_reply(r) : NULL;
    struct redisReply *r2 = r1 ? op_redis_next_reply(r) : NULL;
    int rc = r2 ? 0 : -1;
    const char *v = op_reply_str(r1, NULL);
    f->mine = r2 && op_reply_is_status(r0, "OK") && v && strcmp(v, f->name) == 0;
    f->ttl = r2 ? op_reply_int(r2) : 0;
    op_reply_free(r0);
    op_reply_free(r1);
    op_reply_free(r2);
    if (rc != 0)
        f->shard = -1;
    return rc;
}

enum fence_verdict fence_check(struct fence *f, struct op_redis *r, uint32_t s)
{
    if (f->shard == (int)s) {
        f->shard = -1;
        if (f->mine && f->ttl - (op_now_ms() - f->at_ms) > f->margin_ms)
            return FENCE_OURS;
    }
    if (fence_unwatch(f, r) != 0 || fence_append(f, r, s) != 0 || fence_read(f, r) != 0)
        return FENCE_REDIS;
    f->shard = -1;
    if (f->mine && f->ttl > f->margin_ms)
        return FENCE_OURS;
    int unwatched = fence_unwatch(f, r);
    if (!f->mine)
        return FENCE_LOST; /* whatever the UNWATCH met: the lease is gone */
    return unwatched != 0 ? FENCE_REDIS : FENCE_SHORT;
}

int fence_unwatch(struct fence *f, struct op_redis *r)
{
    f->shard = -1;
    if (!f->watching)
        return 0;
    op_reply_free(op_redis_cmdf(r, "UNWATCH"));
    f->watching = 0;
    return r->err ? -1 : 0;
}

void fence_exec_sent(struct fence *f)
{
    f->watching = 0;
}

void fence_forget(struct fence *f, uint32_t s)
{
    if (f->shard == (int)s)
        f->shard = -1;
}

void fence_reset(struct fence *f)
{
    f->watching = 0;
    f->shard = -1;
}

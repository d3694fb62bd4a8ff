/* A consumer group's backlog (undelivered + pending) that survives Redis' stale `lag`. */
#include "shared/backlog.h"

#include <stdio.h>
#include <string.h>

/*
 * The rules of shared/backlog.h in one script per stream: KEYS[1] the
 * stream, ARGV[1] the group, ARGV[2] count_max, ARGV[3] (optional) a
 * last-delivered-id that had more than count_max entries after it at the
 * previous poll (struct op_backlog_memo): while the group still stands
 * there, it still has (entries after it are only ever added: nothing trims
 * undelivered entries), so rule 1's XRANGE is skipped — it is what costs,
 * count_max entries read in full inside Redis while every other client
 * waits. XLEN > count_max guards against a stream recreated meanwhile.
 * With KEYS[2] and KEYS[3] (an orders stream's oseq:{S}, the inputs ever
 * written to it, and odone:{S}, those the matcher acknowledged), the orders
 * of the backlog are their difference, and nothing is read or counted
 * (how 4, undelivered -1: unknown); only without oseq (a stream ingest
 * never wrote to) or when odone is ahead of it (the counters were reset)
 * do the rules above apply, orders -1.
 * Returns {found, pending, undelivered, redis_lag (-1 for nil), how,
 * last-delivered-id, orders}. `no-writes`: it runs on a
 * replica and while Redis refuses writes (MISCONF); `allow-oom`: also above
 * maxmemory (a flagged script is refused there otherwise, even read-only).
 * Lua sees a nil reply element as false.
 */
static const char BACKLOG_SCRIPT[] =
    "#!lua flags=no-writes,allow-oom\n"
    "if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0, 0, -1, 0} end\n"
    "local groups = redis.call('XINFO', 'GROUPS', KEYS[1])\n"
    "for _, g in ipairs(groups) do\n"
    "  local f = {}\n"
    "  for i = 1, #g, 2 do f[g[i]] = g[i + 1] end\n"
    "  if f['name'] == ARGV[1] then\n"
    "    local pending = f['pending'] or 0\n"
    "    local lag = -1\n"
    "    if type(f['lag']) == 'number' then lag = f['lag'] end\n"
    "    local last = f['last-delivered-id']\n"
    "    local total = KEYS[3] and redis.call('GET', KEYS[2])\n"
    "    if total then\n"
    "      total = tonumber(total)\n"
    "      local done = tonumber(redis.call('GET', KEYS[3]) or '0')\n"
    "      if total >= done then\n"
    "        return {1, pending, -1, lag, 4, last, total - done}\n"
    "      end\n"
    "    end\n"
    "    local max = tonumber(ARGV[2])\n"
    "    local len, n = -1, nil\n"
    "    if ARGV[3] == last then\n"
    "      len = redis.call('XLEN', KEYS[1])\n"
    "      if len > max then n = max + 1 end\n"
    "    end\n"
    "    if not n then\n"
    "      n = #redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', max + 1)\n"
    "    end\n"
    "    if n <= max then return {1, pending, n, lag, 1, last, -1} end\n"
    "    if len < 0 then len = redis.call('XLEN', KEYS[1]) end\n"
    "    if lag > max and lag <= len then return {1, pending, lag, lag, 2, last, -1} end\n"
    "    return {1, pending, len, lag, 3, last, -1}\n"
    "  end\n"
    "end\n"
    "return {0, 0, 0, -1, 0}\n";

int64_t op_backlog_total(const struct op_backlog *b)
{
    if (!b->found)
        return 0;
    return b->orders >= 0 ? b->orders : b->undelivered + b->pending;
}

int op_backlog_append(struct op_redis *r, const char *stream, const char *group,
                      long long count_max)
{
    return op_backlog_append_memo(r, stream, group, count_max, NULL);
}

static int append_script(struct op_redis *r, const char *stream, uint32_t shard, const char *group,
                         long long count_max, const struct op_backlog_memo *memo);

int op_backlog_append_memo(struct op_redis *r, const char *stream, const char *group,
                           long long count_max, const struct op_backlog_memo *memo)
{
    return append_script(r, stream, UINT32_MAX, group, count_max, memo);
}

/* Queues BACKLOG_SCRIPT for stream (shard: an orders stream's shard, whose
 * counters it reads; UINT32_MAX for another stream). */
static int append_script(struct op_redis *r, const char *stream, uint32_t shard, const char *group,
                         long long count_max, const struct op_backlog_memo *memo)
{
    char max[24], seq[OP_KEY_MAX], done[OP_KEY_MAX];
    snprintf(max, sizeof(max), "%lld", count_max > 0 ? count_max : 0);
    const char *over = memo && memo->over[0] ? memo->over : "-";
    if (shard == UINT32_MAX)
        return op_redis_appendf(r, "EVAL %s 1 %s %s %s %s", BACKLOG_SCRIPT, stream, group, max,
                                over);
    op_key_oseq(seq, shard);
    op_key_odone(done, shard);
    return op_redis_appendf(r, "EVAL %s 3 %s %s %s %s %s %s", BACKLOG_SCRIPT, stream, seq, done,
                            group, max, over);
}

void op_backlog_remember(struct op_backlog_memo *memo, const struct op_backlog *b)
{
    if (b->found && b->how != OP_BACKLOG_COUNTED)
        snprintf(memo->over, sizeof(memo->over), "%s", b->last_delivered);
    else
        memo->over[0] = '\0';
}

int op_backlog_read(struct op_redis *r, struct op_backlog *out)
{
    memset(out, 0, sizeof(*out));
    out->redis_lag = -1;
    out->orders = -1;
    struct redisReply *rep = op_redis_next_reply(r);
    if (!rep)
        return -1;
    if (op_reply_type(rep) == OP_REPLY_ARRAY && op_reply_count(rep) == 7 &&
        op_reply_int(op_reply_at(rep, 0)) == 1) {
        out->orders = op_reply_int(op_reply_at(rep, 6));
        out->found = 1;
        out->pending = op_reply_int(op_reply_at(rep, 1));
        out->undelivered = op_reply_int(op_reply_at(rep, 2));
        out->redis_lag = op_reply_int(op_reply_at(rep, 3));
        out->how = (int)op_reply_int(op_reply_at(rep, 4));
        size_t ll = 0;
        const char *last = op_reply_str(op_reply_at(rep, 5), &ll);
        if (last && ll < sizeof(out->last_delivered)) {
            memcpy(out->last_delivered, last, ll);
            out->last_delivered[ll] = '\0';
        }
        if (out->pending < 0)
            out->pending = 0;
        if (out->undelivered < 0) /* unknown (OP_BACKLOG_ORDERS) */
            out->undelivered = -1;
    }
    op_reply_free(rep);
    return 0;
}

int op_backlog_poll_orders(struct op_redis *r, uint32_t shards, const char *group,
                           long long count_max,
                           void (*store)(void *ctx, uint32_t s, const struct op_backlog *b),
                           void *ctx)
{
    return op_backlog_poll_orders_memo(r, shards, group, count_max, NULL, store, ctx);
}

int op_backlog_poll_orders_memo(struct op_redis *r, uint32_t shards, const char *group,
                                long long count_max, struct op_backlog_memo *memo,
                                void (*store)(void *ctx, uint32_t s, const struct op_backlog *b),
                                void *ctx)
{
    char key[OP_KEY_MAX];
    for (uint32_t s = 0; s < shards; s++) {
        op_key_orders(key, s);
        if (append_script(r, key, s, group, count_max, memo ? &memo[s] : NULL) != 0)
            return -1;
    }
    for (uint32_t s = 0; s < shards; s++) {
        struct op_backlog b;
        if (op_backlog_read(r, &b) != 0)
            return -1;
        if (memo)
            op_backlog_remember(&memo[s], &b);
        store(ctx, s, &b);
    }
    return 0;
}

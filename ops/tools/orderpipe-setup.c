/* orderpipe-setup: applies the SQL migrations and creates the Redis streams and groups. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/config.h"
#include "shared/log.h"
#include "shared/pg.h"
#include "shared/redis.h"
#include "shared/shard.h"

/*
 * Run by the stack's start-up (ops/stack.sh) and by the test harness before
 * any service starts. Idempotent: running it again changes nothing.
 *
 *  1. PostgreSQL: applies schemas/NNN_*.sql not applied yet (op_pg_migrate),
 *     then creates the coming days' partitions of fills (migration 007).
 *  2. Redis: records the shard count in `orderpipe:shards` and refuses to
 *     run when it differs from ORDER_SHARDS, because changing the count
 *     would route a symbol's orders to a different stream than its book;
 *     creates orders:{S} with group "matchers" and fills:{S} with group
 *     "recorders" for every shard, so ingest can XADD with NOMKSTREAM and a
 *     mistyped key never silently creates a stream.
 *
 * Flags: --no-db / --no-redis skip a half (for a stack that has only one).
 * Exit status: 0 done, 1 a server refused, 2 bad configuration.
 */

/* Creates stream `key` with consumer group `group` from the start (id 0), or
 * leaves an existing one alone. Returns 0 or -1 (logged). */
static int ensure_group(struct op_redis *r, const char *key, const char *group)
{
    struct redisReply *rep = op_redis_cmdf(r, "XGROUP CREATE %s %s 0 MKSTREAM", key, group);
    if (!rep)
        return op_log_fail("redis_failed", "key=%s err=\"%s\"", key, r->errstr);
    int ok = op_reply_is_status(rep, "OK") || op_reply_is_error(rep, "BUSYGROUP");
    if (!ok) {
        const char *s = op_reply_str(rep, NULL);
        op_error("xgroup_create_failed", "key=%s group=%s err=\"%s\"", key, group, s ? s : "?");
    }
    op_reply_free(rep);
    return ok ? 0 : -1;
}

/* A new orders stream starts its counters (oseq:{S}, odone:{S}: the
 * backlog in orders, shared/backlog.h) from zero: left from a stream that
 * was deleted, they would count its orders as a backlog. 0 or -1. */
static int reset_counters_if_new(struct op_redis *r, const char *key, uint32_t shard)
{
    char seq[OP_KEY_MAX], done[OP_KEY_MAX];
    op_key_oseq(seq, shard);
    op_key_odone(done, shard);
    struct redisReply *rep = op_redis_cmdf(r, "EXISTS %s", key);
    if (!rep)
        return op_log_fail("redis_failed", "key=%s err=\"%s\"", key, r->errstr);
    long long exists = op_reply_int(rep);
    op_reply_free(rep);
    if (exists)
        return 0;
    if (!(rep = op_redis_cmdf(r, "DEL %s %s", seq, done)))
        return op_log_fail("redis_failed", "key=%s err=\"%s\"", seq, r->errstr);
    op_reply_free(rep);
    return 0;
}

/* Checks or records the shard count; 0 when it matches, -1 otherwise. */
static int check_shards(struct op_redis *r, uint32_t shards)
{
    struct redisReply *rep = op_redis_cmdf(r, "SET orderpipe:shards %u NX GET", shards);
    if (!rep)
        return op_log_fail("redis_failed", "err=\"%s\"", r->errstr);
    int rc = 0;
    const char *prev = op_reply_str(rep, NULL);
    if (op_reply_type(rep) == OP_REPLY_ERROR) {
        rc = op_log_fail("redis_failed", "err=\"%s\"", prev);
    } else if (op_reply_type(rep) == OP_REPLY_STRING &&
               (uint32_t)strtol(prev, NULL, 10) != shards) {
        fprintf(stderr,
                "orderpipe-setup: ORDER_SHARDS=%u but the streams in redis were created with %s "
                "shards; changing it would send a symbol's orders to another shard than its book. "
                "Use ORDER_SHARDS=%s, or start from an empty redis.\n",
                shards, prev, prev);
        rc = -1;
    }
    op_reply_free(rep);
    return rc;
}

static int setup_redis(const struct op_config *c)
{
    struct op_redis r;
    char key[OP_KEY_MAX];
    int rc = 0;

    if (op_redis_init(&r, c->redis_url, c->redis_timeout_ms) != 0 || op_redis_connect(&r) != 0) {
        fprintf(stderr, "orderpipe-setup: %s (REDIS_URL)\n", r.errstr);
        return -1;
    }
    if (check_shards(&r, c->order_shards) != 0) {
        rc = -1;
        goto out;
    }
    for (uint32_t s = 0; s < c->order_shards && rc == 0; s++) {
        op_key_orders(key, s);
        rc |= reset_counters_if_new(&r, key, s);
        rc |= ensure_group(&r, key, OP_GROUP_MATCHERS);
        op_key_fills(key, s);
        rc |= ensure_group(&r, key, OP_GROUP_RECORDERS);
    }
    if (rc == 0)
        op_info("redis_ready", "shards=%u", c->order_shards);
out:
    op_redis_release(&r);
    return rc;
}

/*
 * Creates the coming days' partitions of fills (migration 007's function,
 * a week ahead by its default) once the migrations are applied, so that a
 * fresh stack starts with them. Skipped when the schema has no such
 * function (SCHEMAS_DIR before 007). A failure is a warning, not an error:
 * the recorder makes the same call at start and every hour, and until one
 * works rows go to the default partition, never refused.
 */
static void ensure_partitions(struct op_pg *pg)
{
    long created = 0;
    int rc = op_pg_fills_partitions(pg, &created);
    if (rc < 0)
        op_warn("fills_partitions_failed", "err=\"%s\" note=\"the recorder retries\"", pg->err);
    else if (rc > 0)
        op_info("fills_partitions_ready", "created=%ld", created);
}

static int setup_db(const struct op_config *c)
{
    struct op_pg pg = {0};
    int applied = 0, rc = 0;

    if (op_pg_connect(&pg, c->database_url, "orderpipe-setup") != 0) {
        fprintf(stderr, "orderpipe-setup: %s (DATABASE_URL)\n", pg.err);
        op_pg_close(&pg);
        return -1;
    }
    if (op_pg_migrate(&pg, c->schemas_dir, &applied) != 0) {
        fprintf(stderr, "orderpipe-setup: %s (SCHEMAS_DIR=%s)\n", pg.err, c->schemas_dir);
        rc = -1;
    } else {
        op_info("migrations_applied", "count=%d dir=%s", applied, c->schemas_dir);
        ensure_partitions(&pg);
    }
    op_pg_close(&pg);
    return rc;
}

int main(int argc, char **argv)
{
    struct op_config c;
    int db = 1, redis = 1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-db") == 0) {
            db = 0;
        } else if (strcmp(argv[i], "--no-redis") == 0) {
            redis = 0;
        } else {
            fprintf(stderr, "usage: orderpipe-setup [--no-db] [--no-redis]\n"
                            "  reads REDIS_URL, DATABASE_URL, ORDER_SHARDS, SCHEMAS_DIR\n");
            return 2;
        }
    }
    op_config_load_or_exit(&c, "orderpipe-setup");
    if (db && setup_db(&c) != 0)
        return 1;
    if (redis && setup_redis(&c) != 0)
        return 1;
    return 0;
}

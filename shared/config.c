/* Configuration from environment variables, validated, with working defaults. */
#include "shared/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/shard.h"

const char *op_env_str(const char *name, const char *def)
{
    const char *v = getenv(name);
    return (v && *v) ? v : def;
}

int op_env_int(const char *name, long long def, long long min, long long max, long long *out,
               char *err, size_t errlen)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno != 0 || *end != '\0' || x < min || x > max ||
        !((*v >= '0' && *v <= '9') || *v == '-')) {
        snprintf(err, errlen, "invalid %s='%.60s': want an integer in %lld..%lld", name, v, min,
                 max);
        return -1;
    }
    *out = x;
    return 0;
}

int op_config_load(struct op_config *c, char *err, size_t errlen)
{
    long long v;

    c->redis_url = op_env_str("REDIS_URL", "redis://127.0.0.1:6390");
    c->database_url = op_env_str("DATABASE_URL", "postgresql://orderpipe@127.0.0.1:5440/orderpipe");
    c->symbols_file_set = op_env_str("SYMBOLS_FILE", NULL) != NULL;
    c->symbols_file = op_env_str("SYMBOLS_FILE", "config/symbols.conf");
    c->api_keys_file = op_env_str("API_KEYS_FILE", "config/api-keys.conf");
    c->schemas_dir = op_env_str("SCHEMAS_DIR", "schemas");

    if (op_env_int("INGEST_PORT", 8080, 1, 65535, &v, err, errlen) != 0)
        return -1;
    c->ingest_port = (int)v;
    if (op_env_int("ORDER_SHARDS", 4, 1, OP_SHARDS_MAX, &v, err, errlen) != 0)
        return -1;
    c->order_shards = (uint32_t)v;
    if (op_env_int("REDIS_TIMEOUT_MS", 2000, 10, 600000, &v, err, errlen) != 0)
        return -1;
    c->redis_timeout_ms = (int)v;

    const char *lvl = op_env_str("LOG_LEVEL", "info");
    if (op_log_level_parse(lvl, &c->log_level) != 0) {
        snprintf(err, errlen, "invalid LOG_LEVEL='%.40s': want debug, info, warn or error", lvl);
        return -1;
    }
    const char *fmt = op_env_str("LOG_FORMAT", "kv");
    if (op_log_format_parse(fmt, &c->log_format) != 0) {
        snprintf(err, errlen, "invalid LOG_FORMAT='%.40s': want kv or json", fmt);
        return -1;
    }
    if (strncmp(c->redis_url, "redis://", 8) != 0) {
        snprintf(err, errlen,
                 "invalid REDIS_URL='%.100s': want redis://[:password@]host[:port][/db]",
                 c->redis_url);
        return -1;
    }
    if (strncmp(c->database_url, "postgresql://", 13) != 0 &&
        strncmp(c->database_url, "postgres://", 11) != 0) {
        snprintf(err, errlen,
                 "invalid DATABASE_URL='%.100s': want postgresql://user[:password]@host[:port]/db",
                 c->database_url);
        return -1;
    }
    return 0;
}

void op_config_load_or_exit(struct op_config *c, const char *service)
{
    char err[300];
    if (op_config_load(c, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", service, err);
        exit(2);
    }
    op_log_init(service, c->log_level, c->log_format);
}

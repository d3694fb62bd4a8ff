/* Configuration from environment variables, validated, with working defaults. */
#ifndef OP_CONFIG_H
#define OP_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "shared/log.h"

/*
 * The settings every service shares. Each field names its variable; the
 * defaults are those of the `make run` stack (see the README's table).
 * Strings point into the environment or to literals: never free them.
 */
struct op_config {
    const char *redis_url;       /* REDIS_URL, redis://127.0.0.1:6390 */
    const char *database_url;    /* DATABASE_URL, postgresql://orderpipe@127.0.0.1:5440/orderpipe */
    int ingest_port;             /* INGEST_PORT, 8080 */
    uint32_t order_shards;       /* ORDER_SHARDS, 4 (1..OP_SHARDS_MAX) */
    const char *symbols_file;    /* SYMBOLS_FILE, config/symbols.conf */
    int symbols_file_set;        /* 1 if SYMBOLS_FILE was given explicitly */
    const char *api_keys_file;   /* API_KEYS_FILE, config/api-keys.conf */
    const char *schemas_dir;     /* SCHEMAS_DIR, schemas */
    int redis_timeout_ms;        /* REDIS_TIMEOUT_MS, 2000 */
    enum op_log_level log_level; /* LOG_LEVEL, info */
    enum op_log_format log_format; /* LOG_FORMAT, kv */
};

/*
 * Fills c from the environment. Returns 0, or -1 with a message naming the
 * variable, its value and what is expected in err (e.g. "invalid
 * ORDER_SHARDS='abc': want an integer in 1..1024").
 */
int op_config_load(struct op_config *c, char *err, size_t errlen);

/* Like op_config_load, but on error prints the message to stderr and exits
 * with status 2: the start-up tier of error handling. Also applies the log
 * settings for `service`. */
void op_config_load_or_exit(struct op_config *c, const char *service);

/*
 * Reads an integer variable `name` in [min, max], or def when unset or
 * empty. Returns 0, or -1 with a message in err. For services' own settings.
 */
int op_env_int(const char *name, long long def, long long min, long long max, long long *out,
               char *err, size_t errlen);

/* Reads a string variable, or def when unset or empty. Never fails. */
const char *op_env_str(const char *name, const char *def);

#endif

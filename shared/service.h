/* Start-up helpers every service's main.c shares: settings, symbol table, stop signals. */
#ifndef OP_SERVICE_H
#define OP_SERVICE_H

#include <signal.h>

#include "shared/config.h"
#include "shared/symbols.h"

/*
 * Reads the integer setting `name` in [min, max] (def when unset) or exits
 * with status 2 and "<service>: invalid NAME='…': want …" on stderr — the
 * start-up tier of error handling.
 */
long long op_env_int_or_exit(const char *service, const char *name, long long def, long long min,
                             long long max);

/*
 * Reads a service's replica acknowledgement settings, `<prefix>_MIN_REPLICAS`
 * (0..16, default 0: no WAIT) into *min_replicas and
 * `<prefix>_REPLICA_TIMEOUT_MS` (1..60000, default 100) into *timeout_ms, or
 * exits with status 2 naming the variable: also when replicas are asked for
 * and the timeout is not below redis_timeout_ms (REDIS_TIMEOUT_MS), since
 * WAIT's reply would then come after the connection gave up on it.
 */
void op_replica_settings_or_exit(const char *service, const char *prefix, int redis_timeout_ms,
                                 int *min_replicas, int *timeout_ms);

/*
 * Loads SYMBOLS_FILE into syms, or exits naming the file and the problem.
 * When SYMBOLS_FILE was not set and the default file does not exist, loads
 * the built-in defaults instead (AAPL MSFT GOOG AMZN TSLA) and logs it.
 */
void op_symbols_load_or_exit(const struct op_config *c, const char *service,
                             struct op_symtab *syms);

/* Set to 1 by SIGTERM or SIGINT once op_stop_signals_install ran. */
extern volatile sig_atomic_t op_stop_requested;

/* Installs the SIGTERM/SIGINT handlers (graceful stop) and ignores SIGPIPE
 * (a client that went away must not kill the service). */
void op_stop_signals_install(void);

#endif

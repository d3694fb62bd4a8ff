/* Start-up helpers every service's main.c shares: settings, symbol table, stop signals. */
#include "shared/service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shared/log.h"

volatile sig_atomic_t op_stop_requested;

long long op_env_int_or_exit(const char *service, const char *name, long long def, long long min,
                             long long max)
{
    long long v;
    char err[200];
    if (op_env_int(name, def, min, max, &v, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", service, err);
        exit(2);
    }
    return v;
}

void op_replica_settings_or_exit(const char *service, const char *prefix, int redis_timeout_ms,
                                 int *min_replicas, int *timeout_ms)
{
    char name[64];
    snprintf(name, sizeof(name), "%s_MIN_REPLICAS", prefix);
    *min_replicas = (int)op_env_int_or_exit(service, name, 0, 0, 16);
    snprintf(name, sizeof(name), "%s_REPLICA_TIMEOUT_MS", prefix);
    *timeout_ms = (int)op_env_int_or_exit(service, name, 100, 1, 60000);
    if (*min_replicas > 0 && *timeout_ms >= redis_timeout_ms) {
        fprintf(stderr,
                "%s: %s (%d) must be below REDIS_TIMEOUT_MS (%d): lower it or raise "
                "REDIS_TIMEOUT_MS\n",
                service, name, *timeout_ms, redis_timeout_ms);
        exit(2);
    }
}

void op_symbols_load_or_exit(const struct op_config *c, const char *service, struct op_symtab *syms)
{
    char err[300];
    if (op_symtab_load(syms, c->symbols_file, err, sizeof(err)) == 0)
        return;
    if (c->symbols_file_set || access(c->symbols_file, F_OK) == 0) {
        fprintf(stderr, "%s: %s (SYMBOLS_FILE)\n", service, err);
        exit(2);
    }
    if (op_symtab_defaults(syms) != 0) {
        fprintf(stderr, "%s: out of memory loading the default symbols\n", service);
        exit(1);
    }
    op_info("symbols_default", "note=\"%s missing: AAPL MSFT GOOG AMZN TSLA\"", c->symbols_file);
}

static void on_stop_signal(int sig)
{
    (void)sig;
    op_stop_requested = 1;
}

void op_stop_signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

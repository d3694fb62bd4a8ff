/* Unit tests of the symbol table, the API-key table and the environment config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shared/apikeys.h"
#include "shared/config.h"
#include "shared/symbols.h"

/* Writes text to a fresh temporary file; returns its path (static buffer). */
static const char *tmp_file(const char *text)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/op-test-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_symbols_load(void **state)
{
    (void)state;
    struct op_symtab t;
    char err[256];
    const char *p = tmp_file(
        "# comment\n\nTSLA 0.01 1 1000000\nAAPL 0.05 10 5000  # trailing\r\nBRK.A 1 1 100\n");
    assert_int_equal(op_symtab_load(&t, p, err, sizeof(err)), 0);
    unlink(p);
    assert_int_equal(t.n, 3);
    const struct op_symbol *s = op_symtab_find(&t, "AAPL", 4);
    assert_non_null(s);
    assert_int_equal(s->tick.mantissa, 5);
    assert_int_equal(s->tick.scale, 2);
    assert_int_equal(s->lot, 10);
    assert_int_equal(s->max_qty, 5000);
    assert_non_null(op_symtab_find(&t, "BRK.A", 5));
    assert_non_null(op_symtab_find(&t, "TSLAX", 4)); /* length-bounded name */
    assert_null(op_symtab_find(&t, "TSL", 3));
    assert_null(op_symtab_find(&t, "MSFT", 4));
    assert_null(op_symtab_find(&t, "", 0));
    op_symtab_release(&t);
}

static void test_symbols_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *want; /* substring of the error */
    } cases[] = {
        {"AAPL 0.01 1\n", "line 1: expected 'SYMBOL TICK LOT MAX_QTY', got 3 fields"},
        {"AAPL 0.01 1 100\naapl 0.01 1 100\n", "line 2: bad symbol 'aapl'"},
        {"AAPL 0.01 1 100\nAAPL 0.01 1 100\n", "symbol 'AAPL' listed twice"},
        {"AAPL -0.01 1 100\n", "bad tick '-0.01'"},
        {"AAPL 0 1 100\n", "bad tick '0'"},
        {"AAPL 0.01 0 100\n", "bad lot '0'"},
        {"AAPL 0.01 10 105\n", "bad max qty '105'"},
        {"AAPL 0.01 1 1e6\n", "bad max qty '1e6'"},
        {"THISISWAYTOOLONG 0.01 1 100\n", "bad symbol"},
        {"# nothing\n", "no symbols"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct op_symtab t;
        char err[256] = "";
        const char *p = tmp_file(cases[i].text);
        assert_int_equal(op_symtab_load(&t, p, err, sizeof(err)), -1);
        unlink(p);
        if (!strstr(err, cases[i].want))
            fail_msg("case %zu: error '%s' lacks '%s'", i, err, cases[i].want);
        assert_int_equal(t.n, 0);
        assert_null(t.v);
    }
    struct op_symtab t;
    char err[256];
    assert_int_equal(op_symtab_load(&t, "/nonexistent/symbols.conf", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot open '/nonexistent/symbols.conf'"));
}

static void test_symbols_defaults_and_shipped_file(void **state)
{
    (void)state;
    struct op_symtab d, f;
    char err[256];
    assert_int_equal(op_symtab_defaults(&d), 0);
    assert_int_equal(op_symtab_load(&f, "config/symbols.conf", err, sizeof(err)), 0);
    assert_int_equal(d.n, 5);
    assert_int_equal(f.n, d.n); /* the shipped file is the defaults */
    for (size_t i = 0; i < d.n; i++) {
        assert_string_equal(d.v[i].name, f.v[i].name);
        assert_int_equal(d.v[i].tick.mantissa, f.v[i].tick.mantissa);
        assert_int_equal(d.v[i].tick.scale, f.v[i].tick.scale);
        assert_int_equal(d.v[i].max_qty, f.v[i].max_qty);
    }
    op_symtab_release(&d);
    op_symtab_release(&f);
}

static void test_apikeys(void **state)
{
    (void)state;
    struct op_apikeys k;
    char err[256];
    assert_int_equal(op_apikeys_load(&k, "config/api-keys.conf", err, sizeof(err)), 0);
    assert_string_equal(op_apikeys_lookup(&k, "dev-key-alice", 13)->account, "alice");
    assert_string_equal(op_apikeys_lookup(&k, "dev-key-bob", 11)->account, "bob");
    assert_int_equal(op_apikeys_lookup(&k, "dev-key-bob", 11)->stp, OP_STP_NONE);
    assert_null(op_apikeys_lookup(&k, "dev-key-alic", 12));
    assert_null(op_apikeys_lookup(&k, "dev-key-alicex", 14));
    assert_null(op_apikeys_lookup(&k, "dev-key-alice", 12));
    assert_null(op_apikeys_lookup(&k, "", 0));
    char longkey[300];
    memset(longkey, 'a', sizeof(longkey));
    assert_null(op_apikeys_lookup(&k, longkey, sizeof(longkey)));
    op_apikeys_release(&k);
}

/* The optional third column: the account's default self-trade prevention,
 * one per account (lines without it take it from the account's others). */
static void test_apikeys_stp(void **state)
{
    (void)state;
    struct op_apikeys k;
    char err[256] = "";
    const char *p = tmp_file("key-carol-1 carol\n"
                             "key-alice-1 alice cancel_maker\n"
                             "key-carol-2 carol decrement\n"
                             "key-carol-3 carol\n"
                             "key-carol-4 carol decrement\n"
                             "key-bob-01 bob none\n"
                             "key-dave-1 dave\n");
    int rc = op_apikeys_load(&k, p, err, sizeof(err));
    unlink(p);
    if (rc != 0)
        fail_msg("load failed: %s", err);
    static const struct {
        const char *key;
        const char *account;
        int stp;
    } want[] = {
        {"key-carol-1", "carol", OP_STP_DECREMENT}, {"key-alice-1", "alice", OP_STP_CANCEL_MAKER},
        {"key-carol-2", "carol", OP_STP_DECREMENT}, {"key-carol-3", "carol", OP_STP_DECREMENT},
        {"key-carol-4", "carol", OP_STP_DECREMENT}, {"key-bob-01", "bob", OP_STP_NONE},
        {"key-dave-1", "dave", OP_STP_NONE},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const struct op_apikey *e = op_apikeys_lookup(&k, want[i].key, strlen(want[i].key));
        assert_non_null(e);
        assert_ptr_equal(e, &k.v[i]); /* the index identifies the key */
        assert_string_equal(e->account, want[i].account);
        if (e->stp != want[i].stp)
            fail_msg("%s: stp %d, want %d", want[i].key, e->stp, want[i].stp);
    }
    op_apikeys_release(&k);
}

static void test_apikeys_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *want;
    } cases[] = {
        {"dev-key-alice\n", "expected 'KEY ACCOUNT [STP]', got 1 fields"},
        {"dev-key-alice alice none x\n", "line 1: expected 'KEY ACCOUNT [STP]', got 4 fields"},
        {"# keys\ndev-key-alice alice cancel\n",
         "api keys file '/tmp/op-test-"}, /* names the file … */
        {"# keys\ndev-key-alice alice cancel\n",
         "line 2: bad stp 'cancel': want none, cancel_taker, cancel_maker, cancel_both or "
         "decrement"}, /* … the line and the value */
        {"dev-key-alice alice Decrement\n", "bad stp 'Decrement'"},
        {"dev-key-alice alice decrement\ndev-key-alice2 alice\ndev-key-alice3 alice none\n",
         "line 3: stp 'none' differs from the 'decrement' an earlier line gives account 'alice'"},
        {"short alice\n", "bad key"},
        {"dev-key-alice Alice\n", "bad account 'Alice'"},
        {"dev-key-alice alice\ndev-key-alice bob\n", "line 2: key listed twice"},
        {"\n# none\n", "no keys"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct op_apikeys k;
        char err[256] = "";
        const char *p = tmp_file(cases[i].text);
        assert_int_equal(op_apikeys_load(&k, p, err, sizeof(err)), -1);
        unlink(p);
        if (!strstr(err, cases[i].want))
            fail_msg("case %zu: error '%s' lacks '%s'", i, err, cases[i].want);
        assert_null(strstr(err, "dev-key-alice")); /* never echo a key */
    }
}

static void test_config(void **state)
{
    (void)state;
    struct op_config c;
    char err[256];
    static const char *vars[] = {"REDIS_URL",    "DATABASE_URL", "INGEST_PORT",
                                 "ORDER_SHARDS", "SYMBOLS_FILE", "API_KEYS_FILE",
                                 "LOG_LEVEL",    "LOG_FORMAT",   "REDIS_TIMEOUT_MS"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
    assert_int_equal(op_config_load(&c, err, sizeof(err)), 0);
    assert_string_equal(c.redis_url, "redis://127.0.0.1:6390");
    assert_int_equal(c.ingest_port, 8080);
    assert_int_equal(c.order_shards, 4);
    assert_int_equal(c.symbols_file_set, 0);

    setenv("ORDER_SHARDS", "16", 1);
    setenv("INGEST_PORT", "9000", 1);
    setenv("LOG_FORMAT", "json", 1);
    assert_int_equal(op_config_load(&c, err, sizeof(err)), 0);
    assert_int_equal(c.order_shards, 16);
    assert_int_equal(c.ingest_port, 9000);
    assert_int_equal(c.log_format, OP_LOG_JSON);

    static const struct {
        const char *var, *val, *want;
    } bad[] = {
        {"ORDER_SHARDS", "0", "invalid ORDER_SHARDS='0': want an integer in 1..1024"},
        {"ORDER_SHARDS", "4x", "invalid ORDER_SHARDS='4x'"},
        {"ORDER_SHARDS", "2000", "invalid ORDER_SHARDS='2000'"},
        {"INGEST_PORT", "70000", "invalid INGEST_PORT='70000'"},
        {"LOG_LEVEL", "loud", "invalid LOG_LEVEL='loud'"},
        {"REDIS_URL", "localhost:6379", "invalid REDIS_URL='localhost:6379'"},
        {"DATABASE_URL", "mysql://x", "invalid DATABASE_URL='mysql://x'"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *old = getenv(bad[i].var);
        char keep[256] = "";
        if (old)
            snprintf(keep, sizeof(keep), "%s", old);
        setenv(bad[i].var, bad[i].val, 1);
        assert_int_equal(op_config_load(&c, err, sizeof(err)), -1);
        if (!strstr(err, bad[i].want))
            fail_msg("'%s': error '%s' lacks '%s'", bad[i].var, err, bad[i].want);
        if (old)
            setenv(bad[i].var, keep, 1);
        else
            unsetenv(bad[i].var);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_symbols_load),
        cmocka_unit_test(test_symbols_errors),
        cmocka_unit_test(test_symbols_defaults_and_shipped_file),
        cmocka_unit_test(test_apikeys),
        cmocka_unit_test(test_apikeys_stp),
        cmocka_unit_test(test_apikeys_errors),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests_name("tables", tests, NULL, NULL);
}

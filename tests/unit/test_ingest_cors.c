/* Unit tests of ingest's CORS origin list (INGEST_CORS_ORIGINS). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "ingest/cors.h"

static const char *find(const struct cors_origins *c, const char *origin)
{
    return cors_origin_find(c, origin, strlen(origin));
}

/* The default list, spaces around items, exact matches only. */
static void test_list_and_lookup(void **state)
{
    (void)state;
    struct cors_origins c;
    char err[256] = "";
    assert_int_equal(
        cors_origins_parse(&c, " http://127.0.0.1:8081 ,http://localhost:8081", err, sizeof(err)),
        0);
    assert_int_equal(c.n, 2);
    assert_string_equal(find(&c, "http://127.0.0.1:8081"), "http://127.0.0.1:8081");
    assert_string_equal(find(&c, "http://localhost:8081"), "http://localhost:8081");
    assert_ptr_equal(find(&c, "http://localhost:8081"), c.v[1]); /* points into the list */
    assert_null(find(&c, "http://localhost:8082"));
    assert_null(find(&c, "https://localhost:8081"));
    assert_null(find(&c, "http://localhost:808"));   /* a prefix */
    assert_null(find(&c, "http://localhost:80811")); /* an extension */
    assert_null(find(&c, "http://localhost:8081/"));
    assert_null(find(&c, ""));
    assert_null(find(&c, "null")); /* what a sandboxed page or a file:// page sends */
    /* the length counts, not a NUL: a header value is (pointer, length) */
    assert_non_null(cors_origin_find(&c, "http://localhost:8081xyz", 21));
}

/* Stored as a browser serialises an origin: lower case, no default port. */
static void test_canonical_form(void **state)
{
    (void)state;
    struct cors_origins c;
    char err[256] = "";
    assert_int_equal(cors_origins_parse(&c,
                                        "HTTP://LocalHost:80,https://Example.COM:443,"
                                        "https://example.com:8443,http://[::1]:08081,"
                                        "http://localhost",
                                        err, sizeof(err)),
                     0);
    assert_int_equal(c.n, 4); /* the second http://localhost is kept once */
    assert_string_equal(c.v[0], "http://localhost");
    assert_string_equal(c.v[1], "https://example.com");
    assert_string_equal(c.v[2], "https://example.com:8443");
    assert_string_equal(c.v[3], "http://[::1]:8081");
    assert_null(find(&c, "http://LocalHost"));
}

/* "none" turns CORS off; every malformed item is refused, naming it. */
static void test_none_and_errors(void **state)
{
    (void)state;
    struct cors_origins c;
    char err[256];
    assert_int_equal(cors_origins_parse(&c, " None ", err, sizeof(err)), 0);
    assert_int_equal(c.n, 0);
    assert_null(find(&c, "http://localhost:8081"));

    static const char *const bad[] = {
        "",
        " ",
        "http://a,,http://b",
        "http://a,",
        ",http://a",
        "localhost:8081",
        "ftp://localhost",
        "http://",
        "http://localhost:",
        "http://localhost:0",
        "http://localhost:65536",
        "http://localhost:99999999999999999999",
        "http://localhost:8081/",
        "http://localhost:8081/console",
        "http://local host",
        "http://user@localhost",
        "http://[::1",
        "http://[]",
        "*",
        "null",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (cors_origins_parse(&c, bad[i], err, sizeof(err)) != -1)
            fail_msg("'%s' was accepted", bad[i]);
        assert_true(err[0] != '\0');
    }
    assert_int_equal(cors_origins_parse(&c, "http://ok, http://x/y", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "'http://x/y' is not an origin"));
    /* a host too long to be one */
    char big[400] = "http://";
    memset(big + 7, 'a', 300);
    big[307] = '\0';
    assert_int_equal(cors_origins_parse(&c, big, err, sizeof(err)), -1);
}

/* At most CORS_ORIGINS_MAX distinct origins. */
static void test_too_many(void **state)
{
    (void)state;
    static struct cors_origins c;
    char list[4096] = "", err[256];
    size_t n = 0;
    for (int i = 0; i < CORS_ORIGINS_MAX; i++)
        n += (size_t)snprintf(list + n, sizeof(list) - n, "%shttp://h%d", i ? "," : "", i);
    assert_int_equal(cors_origins_parse(&c, list, err, sizeof(err)), 0);
    assert_int_equal(c.n, CORS_ORIGINS_MAX);
    snprintf(list + n, sizeof(list) - n, ",http://one-more");
    assert_int_equal(cors_origins_parse(&c, list, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "more than"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_and_lookup),
        cmocka_unit_test(test_canonical_form),
        cmocka_unit_test(test_none_and_errors),
        cmocka_unit_test(test_too_many),
    };
    return cmocka_run_group_tests_name("ingest_cors", tests, NULL, NULL);
}

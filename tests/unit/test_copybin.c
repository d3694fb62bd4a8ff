/* Unit tests of recorder/copybin: PostgreSQL's binary COPY format, byte for byte and read back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "recorder/copybin.h"
#include "shared/buf.h"
#include "shared/decimal.h"
#include "tests/unit/copybin_text.h"

/*
 * Fixed cases compare bytes with the layout of PostgreSQL's documentation
 * (and numeric_send); the sweeps read the bytes back with copybin_text.h,
 * which refuses a non-normalised numeric or a negative zero, and compare
 * with the text the recorder used to send (op_decimal_format), so that
 * price::text is unchanged by the binary path.
 */

static void expect_bytes(const struct op_buf *b, const unsigned char *want, size_t n)
{
    assert_int_equal(b->len, n);
    assert_memory_equal(b->data, want, n);
}

static void test_header_trailer(void **state)
{
    (void)state;
    static const unsigned char header[] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n',
                                           0,   0,   0,   0,   0,   0,   0,    0,    0};
    char h[REC_COPYBIN_HEADER_LEN], t[REC_COPYBIN_TRAILER_LEN];
    assert_int_equal(rec_copybin_header(h), sizeof(header));
    assert_memory_equal(h, header, sizeof(header));
    assert_int_equal(rec_copybin_trailer(t), 2);
    assert_memory_equal(t, "\xff\xff", 2);
}

/* One numeric field's bytes: 187.25 (tick 0.01) is the digits 187, 2500 of
 * weight 0; 0.05 is 500 of weight -1; 10000 (tick 1) is one digit 1 of
 * weight 1 (trailing zero digits stripped); zero has no digits and is
 * positive; a negative value has sign 0x4000. */
static void test_numeric_bytes(void **state)
{
    (void)state;
    struct op_tick cent = {1, 2}, one = {1, 0};
    struct op_buf b;
    op_buf_init(&b);
    assert_int_equal(op_buf_reserve(&b, 256), 0);
    rec_copybin_numeric(&b, 18725, cent);
    expect_bytes(&b, (const unsigned char *)"\0\0\0\x0c\0\x02\0\0\0\0\0\x02\0\xbb\x09\xc4", 16);
    op_buf_reset(&b);
    rec_copybin_numeric(&b, 5, cent);
    expect_bytes(&b, (const unsigned char *)"\0\0\0\x0a\0\x01\xff\xff\0\0\0\x02\x01\xf4", 14);
    op_buf_reset(&b);
    rec_copybin_numeric(&b, 10000, one);
    expect_bytes(&b, (const unsigned char *)"\0\0\0\x0a\0\x01\0\x01\0\0\0\0\0\x01", 14);
    op_buf_reset(&b);
    rec_copybin_numeric(&b, 0, cent);
    expect_bytes(&b, (const unsigned char *)"\0\0\0\x08\0\0\0\0\0\0\0\x02", 12);
    op_buf_reset(&b);
    rec_copybin_numeric(&b, -5, cent);
    expect_bytes(&b, (const unsigned char *)"\0\0\0\x0a\0\x01\xff\xff\x40\0\0\x02\x01\xf4", 14);
    op_buf_release(&b);
}

/* The text PostgreSQL prints for one numeric field written by the encoder. */
static void numeric_text(int64_t ticks, struct op_tick tick, char *out, size_t size)
{
    struct op_buf b;
    op_buf_init(&b);
    assert_int_equal(op_buf_reserve(&b, 2 + REC_COPYBIN_NUMERIC_MAX), 0);
    rec_copybin_tuple(&b, 1);
    rec_copybin_numeric(&b, ticks, tick);
    assert_true(b.len <= 2 + REC_COPYBIN_NUMERIC_MAX);
    char text[128];
    int n = copybin_text(b.data, b.len, "N", text, sizeof(text));
    assert_true(n > 0);
    text[n - 1] = '\0'; /* the row's '\n' */
    snprintf(out, size, "%s", text);
    op_buf_release(&b);
}

/* The extremes: the largest and smallest tick counts at several tick sizes. */
static void test_numeric_extremes(void **state)
{
    (void)state;
    char got[128];
    numeric_text(INT64_MAX, (struct op_tick){1, 2}, got, sizeof(got));
    assert_string_equal(got, "92233720368547758.07");
    numeric_text(INT64_MIN, (struct op_tick){1, 2}, got, sizeof(got));
    assert_string_equal(got, "-92233720368547758.08");
    numeric_text(INT64_MAX, (struct op_tick){1, 9}, got, sizeof(got));
    assert_string_equal(got, "9223372036.854775807");
    numeric_text(1, (struct op_tick){1, 9}, got, sizeof(got));
    assert_string_equal(got, "0.000000001");
    numeric_text(INT64_MAX, (struct op_tick){INT64_MAX, 9}, got, sizeof(got));
    assert_string_equal(got, "85070591730234615847396907784.232501249");
    numeric_text(INT64_MAX, (struct op_tick){1, 0}, got, sizeof(got));
    assert_string_equal(got, "9223372036854775807");
    numeric_text(0, (struct op_tick){1, 0}, got, sizeof(got));
    assert_string_equal(got, "0");
    numeric_text(0, (struct op_tick){5, 9}, got, sizeof(got));
    assert_string_equal(got, "0.000000000");
    numeric_text(-1, (struct op_tick){25, 1}, got, sizeof(got));
    assert_string_equal(got, "-2.5");
}

/* Every tick size of scale 0..9 (mantissas 1, 5, 25, 100, 12345) against
 * values around powers of ten (where base-10000 groups begin and end), small
 * counts and a pseudo-random sweep: the text read back is
 * op_decimal_format's, the text the recorder sent before. */
static void test_numeric_sweep(void **state)
{
    (void)state;
    static const int64_t mantissas[] = {1, 5, 25, 100, 12345};
    uint64_t x = 0x9e3779b97f4a7c15u;
    int checked = 0;
    for (int scale = 0; scale <= OP_DECIMAL_MAX_SCALE; scale++) {
        for (size_t m = 0; m < sizeof(mantissas) / sizeof(*mantissas); m++) {
            struct op_tick tick = {mantissas[m], scale};
            int64_t values[41 + 18 * 4 + 200];
            size_t nv = 0;
            for (int64_t v = -20; v <= 20; v++)
                values[nv++] = v;
            int64_t p = 1;
            for (int e = 0; e < 18; e++, p *= 10) {
                values[nv++] = p - 1;
                values[nv++] = p + 1;
                values[nv++] = -p;
                values[nv++] = p * 7;
            }
            for (int i = 0; i < 200; i++) {
                x = x * 6364136223846793005u + 1442695040888963407u;
                values[nv++] = (int64_t)(x >> (x % 50)); /* all magnitudes */
            }
            for (size_t i = 0; i < nv; i++) {
                char got[128], want[128];
                numeric_text(values[i], tick, got, sizeof(got));
                assert_true(op_decimal_format(values[i], tick, want, sizeof(want)) > 0);
                if (strcmp(got, want) != 0)
                    fail_msg("ticks %lld of %lld e-%d: binary reads back '%s', text was '%s'",
                             (long long)values[i], (long long)tick.mantissa, scale, got, want);
                checked++;
            }
        }
    }
    assert_true(checked > 10000);
}

/* bigint, boolean, text (a 36-character client id, the empty string), NULL
 * and timestamptz in one tuple, and the truncation of ns to µs. */
static void test_fields(void **state)
{
    (void)state;
    struct op_buf b;
    op_buf_init(&b);
    assert_int_equal(op_buf_reserve(&b, 1024), 0);
    const char *clid = "abcdefghijklmnopqrstuvwxyz0123456789";
    assert_int_equal(strlen(clid), 36);
    rec_copybin_tuple(&b, 11);
    rec_copybin_int8(&b, INT64_MAX);
    rec_copybin_int8(&b, INT64_MIN);
    rec_copybin_int8(&b, 0);
    rec_copybin_bool(&b, 1);
    rec_copybin_bool(&b, 0);
    rec_copybin_text(&b, clid, strlen(clid));
    rec_copybin_text(&b, "", 0);
    rec_copybin_null(&b);
    rec_copybin_timestamptz(&b, 0);
    rec_copybin_timestamptz(&b, UINT64_C(946684800000000999)); /* 2000-01-01 + 999 ns */
    rec_copybin_timestamptz(&b, UINT64_MAX);
    char text[512];
    assert_true(copybin_text(b.data, b.len, "IIIBBTTNZZZ", text, sizeof(text)) > 0);
    assert_string_equal(text, "9223372036854775807\t-9223372036854775808\t0\tt\tf\t"
                              "abcdefghijklmnopqrstuvwxyz0123456789\t\t\\N\t"
                              "1970-01-01 00:00:00.000000+00\t2000-01-01 00:00:00.000000+00\t"
                              "2554-07-21 23:34:33.709551+00\n");
    /* the bytes of 2000-01-01 itself: zero microseconds */
    op_buf_reset(&b);
    rec_copybin_timestamptz(&b, UINT64_C(946684800000000000));
    expect_bytes(&b, (const unsigned char *)"\0\0\0\x08\0\0\0\0\0\0\0\0", 12);
    op_buf_reset(&b);
    rec_copybin_null(&b);
    expect_bytes(&b, (const unsigned char *)"\xff\xff\xff\xff", 4);
    op_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_trailer),   cmocka_unit_test(test_numeric_bytes),
        cmocka_unit_test(test_numeric_extremes), cmocka_unit_test(test_numeric_sweep),
        cmocka_unit_test(test_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

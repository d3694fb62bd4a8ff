/* Test helper: binary COPY tuples read back into the text format PostgreSQL would print. */
#ifndef TEST_COPYBIN_TEXT_H
#define TEST_COPYBIN_TEXT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/*
 * An independent reader of recorder/copybin.c's output, written from
 * PostgreSQL's documentation and its numeric_out/timestamptz_out, not from
 * the encoder: tuples of the given column types are turned into COPY text
 * rows (tab-separated, \N for NULL, one '\n' per row), so that the tests
 * compare what the server will store in the form it prints it.
 *
 * types: one letter per column: I bigint, T text, N numeric, B boolean,
 * Z timestamptz (printed "YYYY-MM-DD HH:MM:SS.uuuuuu+00", UTC).
 * Returns the text's length, or -1 when the bytes are not tuples of those
 * types (a wrong field count or length, a numeric digit above 9999, a
 * negative zero, leading or trailing zero digits) or out is too small.
 */

static uint64_t cbt_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Appends the text of a numeric's send format (len bytes at p) to out. */
static int cbt_numeric(const unsigned char *p, size_t len, char *out, size_t size)
{
    if (len < 8)
        return -1;
    int ndigits = (int16_t)cbt_be(p, 2), weight = (int16_t)cbt_be(p + 2, 2);
    unsigned sign = (unsigned)cbt_be(p + 4, 2);
    int dscale = (int16_t)cbt_be(p + 6, 2);
    if (ndigits < 0 || len != 8 + 2 * (size_t)ndigits || dscale < 0 ||
        (sign != 0 && sign != 0x4000))
        return -1;
    int d[64];
    if (ndigits > 64)
        return -1;
    for (int i = 0; i < ndigits; i++) {
        d[i] = (int16_t)cbt_be(p + 8 + 2 * i, 2);
        if (d[i] < 0 || d[i] > 9999)
            return -1;
    }
    /* normalised: what the server would store (and negative zero is not a value) */
    if (ndigits > 0 && (d[0] == 0 || d[ndigits - 1] == 0))
        return -1;
    if (ndigits == 0 && (sign != 0 || weight != 0))
        return -1;
    size_t o = 0;
    char tmp[32];
#define CBT_PUT(s)                                                                                 \
    do {                                                                                           \
        size_t n_ = strlen(s);                                                                     \
        if (o + n_ + 1 > size)                                                                     \
            return -1;                                                                             \
        memcpy(out + o, s, n_);                                                                    \
        o += n_;                                                                                   \
    } while (0)
    if (sign == 0x4000)
        CBT_PUT("-");
    if (weight < 0) {
        CBT_PUT("0");
    } else {
        for (int g = 0; g <= weight; g++) {
            int v = g < ndigits ? d[g] : 0;
            snprintf(tmp, sizeof(tmp), g == 0 ? "%d" : "%04d", v);
            CBT_PUT(tmp);
        }
    }
    if (dscale > 0) {
        CBT_PUT(".");
        int left = dscale;
        for (int g = weight + 1; left > 0; g++) {
            int v = g >= 0 && g < ndigits ? d[g] : 0;
            snprintf(tmp, sizeof(tmp), "%04d", v);
            tmp[left < 4 ? left : 4] = '\0';
            CBT_PUT(tmp);
            left -= 4;
        }
    }
    out[o] = '\0';
    return (int)o;
}

/* Appends a timestamptz (µs since 2000-01-01 UTC) as text. */
static int cbt_timestamptz(int64_t us, char *out, size_t size)
{
    int64_t unix_us = us + INT64_C(946684800) * 1000000;
    time_t sec = (time_t)(unix_us / 1000000);
    int64_t frac = unix_us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        sec--;
    }
    struct tm tm;
    char date[32];
    gmtime_r(&sec, &tm);
    strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
    int n = snprintf(out, size, "%s.%06lld+00", date, (long long)frac);
    return n < 0 || (size_t)n >= size ? -1 : n;
}

static int copybin_text(const void *data, size_t len, const char *types, char *out, size_t size)
{
    const unsigned char *p = data, *end = p + len;
    int ncols = (int)strlen(types);
    size_t o = 0;
    char val[512];
    while (p < end) {
        if (end - p < 2 || (int)cbt_be(p, 2) != ncols)
            return -1;
        p += 2;
        for (int c = 0; c < ncols; c++) {
            if (end - p < 4)
                return -1;
            int32_t flen = (int32_t)cbt_be(p, 4);
            p += 4;
            int n;
            if (flen == -1) {
                n = snprintf(val, sizeof(val), "\\N");
            } else if (flen < 0 || end - p < flen) {
                return -1;
            } else {
                switch (types[c]) {
                case 'I':
                    if (flen != 8)
                        return -1;
                    n = snprintf(val, sizeof(val), "%lld", (long long)(int64_t)cbt_be(p, 8));
                    break;
                case 'B':
                    if (flen != 1 || p[0] > 1)
                        return -1;
                    n = snprintf(val, sizeof(val), "%c", p[0] ? 't' : 'f');
                    break;
                case 'T':
                    if ((size_t)flen >= sizeof(val))
                        return -1;
                    memcpy(val, p, (size_t)flen);
                    val[flen] = '\0';
                    n = flen;
                    break;
                case 'N':
                    n = cbt_numeric(p, (size_t)flen, val, sizeof(val));
                    break;
                case 'Z':
                    if (flen != 8)
                        return -1;
                    n = cbt_timestamptz((int64_t)cbt_be(p, 8), val, sizeof(val));
                    break;
                default:
                    return -1;
                }
                p += flen;
            }
            if (n < 0 || o + (size_t)n + 2 > size)
                return -1;
            memcpy(out + o, val, (size_t)n);
            o += (size_t)n;
            out[o++] = c + 1 < ncols ? '\t' : '\n';
        }
    }
    if (o + 1 > size)
        return -1;
    out[o] = '\0';
    return (int)o;
}

/* Column types of recorder/batch.h's REC_FILLS_COLUMNS and REC_ORDERS_COLUMNS. */
#define CBT_FILLS "ITNIIITTTZ"
#define CBT_ORDERS "ITTTTTTBNIITTZZI"

#endif

/* PostgreSQL's binary COPY format, written into a buffer: no text for the server to parse. */
#include "recorder/copybin.h"

#include <string.h>

/* Seconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch for timestamps. */
#define PG_EPOCH_UNIX_SECONDS INT64_C(946684800)

static void put_be16(struct op_buf *o, uint16_t v)
{
    unsigned char *d = (unsigned char *)o->data + o->len;
    d[0] = (unsigned char)(v >> 8);
    d[1] = (unsigned char)v;
    o->len += 2;
}

static void put_be32(struct op_buf *o, uint32_t v)
{
    unsigned char *d = (unsigned char *)o->data + o->len;
    d[0] = (unsigned char)(v >> 24);
    d[1] = (unsigned char)(v >> 16);
    d[2] = (unsigned char)(v >> 8);
    d[3] = (unsigned char)v;
    o->len += 4;
}

static void put_be64(struct op_buf *o, uint64_t v)
{
    put_be32(o, (uint32_t)(v >> 32));
    put_be32(o, (uint32_t)v);
}

size_t rec_copybin_header(char out[REC_COPYBIN_HEADER_LEN])
{
    /* signature (11 bytes with its NUL), int32 flags 0, int32 header
     * extension length 0 */
    static const char header[REC_COPYBIN_HEADER_LEN] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0";
    memcpy(out, header, sizeof(header));
    return sizeof(header);
}

size_t rec_copybin_trailer(char out[REC_COPYBIN_TRAILER_LEN])
{
    out[0] = out[1] = (char)0xff; /* int16 -1 */
    return REC_COPYBIN_TRAILER_LEN;
}

void rec_copybin_tuple(struct op_buf *o, int nfields)
{
    put_be16(o, (uint16_t)nfields);
}

void rec_copybin_null(struct op_buf *o)
{
    put_be32(o, 0xffffffffu);
}

void rec_copybin_int8(struct op_buf *o, int64_t v)
{
    put_be32(o, 8);
    put_be64(o, (uint64_t)v);
}

void rec_copybin_bool(struct op_buf *o, int v)
{
    put_be32(o, 1);
    o->data[o->len++] = v ? 1 : 0;
}

void rec_copybin_text(struct op_buf *o, const char *s, size_t n)
{
    put_be32(o, (uint32_t)n);
    memcpy(o->data + o->len, s, n);
    o->len += n;
}

void rec_copybin_timestamptz(struct op_buf *o, uint64_t ts_ns)
{
    /* ts_ns < 2^64 ns (year 2554): microseconds fit in int64 with room */
    int64_t us = (int64_t)(ts_ns / 1000u) - PG_EPOCH_UNIX_SECONDS * 1000000;
    put_be32(o, 8);
    put_be64(o, (uint64_t)us);
}

void rec_copybin_numeric(struct op_buf *o, int64_t ticks, struct op_tick tick)
{
    /* |ticks| * mantissa may exceed int64 (as in op_decimal_format): the
     * magnitude in unsigned 128 bits, then its decimal digits. */
    int neg = ticks < 0;
    unsigned __int128 mag = neg ? (unsigned __int128)(-(ticks + 1)) + 1 : (unsigned __int128)ticks;
    mag *= (unsigned __int128)tick.mantissa;
    /* The decimal digits laid out on whole base-10000 groups: the integer
     * part padded on the left to a multiple of 4, the fraction (tick.scale
     * digits) padded on the right. dec[] is least significant first. */
    char dec[64];
    int n = 0;
    while (mag != 0) {
        dec[n++] = (char)(mag % 10);
        mag /= 10;
    }
    int scale = tick.scale;
    int fgroups = (scale + 3) / 4;         /* groups after the point */
    int shift = fgroups * 4 - scale;       /* zeros appended on the right */
    int ipart = n > scale ? n - scale : 0; /* integer digits */
    int igroups = (ipart + 3) / 4;
    int total = igroups + fgroups;
    /* digit value of decimal position p, counted from the right of the
     * padded layout (0 = last padding digit): dec[p - shift] if present */
    int16_t groups[16] = {0};
    for (int g = 0; g < total; g++) {
        int v = 0;
        /* group g (0 = most significant) covers positions
         * (total - 1 - g) * 4 + 3 down to (total - 1 - g) * 4 */
        int base = (total - 1 - g) * 4;
        for (int k = 3; k >= 0; k--) {
            int p = base + k - shift;
            v = v * 10 + (p >= 0 && p < n ? dec[p] : 0);
        }
        groups[g] = (int16_t)v;
    }
    int first = 0, last = total; /* strip zero groups at both ends */
    while (first < last && groups[first] == 0)
        first++;
    while (last > first && groups[last - 1] == 0)
        last--;
    int ndigits = last - first;
    int weight = ndigits ? igroups - 1 - first : 0;
    put_be32(o, (uint32_t)(8 + 2 * ndigits));
    put_be16(o, (uint16_t)ndigits);
    put_be16(o, (uint16_t)(int16_t)weight);
    put_be16(o, ndigits && neg ? 0x4000 : 0x0000);
    put_be16(o, (uint16_t)scale);
    for (int g = first; g < last; g++)
        put_be16(o, (uint16_t)groups[g]);
}

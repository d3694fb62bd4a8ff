/* Redis stream ids ("ms-seq") as numbers: parse, compare, format, successor. */
#include "shared/sid.h"

#include <inttypes.h>
#include <stdio.h>

/* Parses one part of an id: the n bytes at s, canonical decimal (no
 * leading zero unless the part is "0"), at most UINT64_MAX. 0 or -1. */
static int part_parse(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || (n > 1 && s[0] == '0'))
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1; /* overflow */
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int op_sid_parse(const char *s, size_t len, struct op_sid *out)
{
    if (!s)
        return -1;
    size_t dash = 0;
    while (dash < len && s[dash] != '-')
        dash++;
    if (dash == len)
        return -1; /* no '-': "ms" alone is not an id here */
    if (part_parse(s, dash, &out->ms) != 0 ||
        part_parse(s + dash + 1, len - dash - 1, &out->seq) != 0)
        return -1;
    return 0;
}

int op_sid_cmp(struct op_sid a, struct op_sid b)
{
    if (a.ms != b.ms)
        return a.ms < b.ms ? -1 : 1;
    return a.seq < b.seq ? -1 : a.seq > b.seq;
}

char *op_sid_format(struct op_sid id, int exclusive, char *buf)
{
    snprintf(buf, OP_SID_TEXT_MAX, "%s%" PRIu64 "-%" PRIu64, exclusive ? "(" : "", id.ms, id.seq);
    return buf;
}

struct op_sid op_sid_next(struct op_sid a)
{
    if (a.seq < UINT64_MAX) {
        a.seq++;
    } else if (a.ms < UINT64_MAX) {
        a.ms++;
        a.seq = 0;
    }
    return a;
}

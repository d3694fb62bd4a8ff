/* Market data: the aggregated top levels of a book as the JSON ingest serves at /v1/book. */
#include <stdio.h>
#include <time.h>

#include "matcher/matcher.h"

/* Appends one side as ["price",qty,count],… (best first). */
static int put_side(const struct eng *e, const char *symbol, int side, struct op_tick tick,
                    int levels, struct op_buf *out)
{
    struct book_depth d[MATCHER_BOOK_LEVELS_MAX];
    size_t n = eng_depth(e, symbol, side, d, (size_t)levels);
    int rc = op_buf_append(out, "[", 1);
    for (size_t i = 0; i < n && rc == 0; i++) {
        char px[OP_DECIMAL_MAX_LEN + 8];
        if (op_decimal_format(d[i].price, tick, px, sizeof(px)) < 0)
            return -1;
        rc = op_buf_printf(out, "%s[\"%s\",%lld,%u]", i ? "," : "", px, (long long)d[i].qty,
                           d[i].count);
    }
    return rc == 0 ? op_buf_append(out, "]", 1) : -1;
}

int md_book_json(const struct eng *e, const char *symbol, struct op_tick tick, uint64_t ts_ns,
                 int levels, struct op_buf *out)
{
    if (levels > MATCHER_BOOK_LEVELS_MAX)
        levels = MATCHER_BOOK_LEVELS_MAX;
    time_t sec = (time_t)(ts_ns / 1000000000u);
    struct tm tm;
    char when[40] = "1970-01-01T00:00:00";
    if (gmtime_r(&sec, &tm))
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    if (op_buf_printf(out, "{\"symbol\":\"%s\",\"ts\":\"%s.%06uZ\",\"bids\":", symbol, when,
                      (unsigned)(ts_ns % 1000000000u / 1000u)) != 0 ||
        put_side(e, symbol, OP_SIDE_BUY, tick, levels, out) != 0 ||
        op_buf_append(out, ",\"asks\":", 8) != 0 ||
        put_side(e, symbol, OP_SIDE_SELL, tick, levels, out) != 0)
        return -1;
    return op_buf_append(out, "}", 1);
}

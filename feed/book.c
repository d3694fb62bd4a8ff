/* A symbol's published depth: the matcher's book JSON in, the feed's book snapshot and update
 * messages out. */
#include "feed/book.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ingest/json.h"
#include "shared/alloc.h"

/* Room for a formatted price: OP_DECIMAL_MAX_LEN digits, a point, a sign. */
#define PX_TEXT_MAX (OP_DECIMAL_MAX_LEN + 8)

void feed_book_init(struct feed_book *b)
{
    memset(b, 0, sizeof(*b));
}

void feed_book_release(struct feed_book *b)
{
    op_free(b->bids);
    op_free(b->asks);
    feed_book_init(b);
}

void feed_book_swap(struct feed_book *a, struct feed_book *b)
{
    struct feed_book t = *a;
    *a = *b;
    *b = t;
}

/* ---- parsing ---------------------------------------------------------------- */

/*
 * Parses a JSON number token as an integer >= 1 into *v. Returns 0, or -1 if
 * it is not a number, has a sign, a fraction or an exponent, is 0 or does
 * not fit in int64.
 */
static int parse_positive(const struct json_doc *d, int tok, int64_t *v)
{
    const struct json_tok *t = &d->toks[tok];
    if (t->type != JSON_NUMBER)
        return -1;
    int64_t n = 0;
    for (int i = t->start; i < t->end; i++) {
        char c = d->text[i];
        if (c < '0' || c > '9')
            return -1;
        if (n > (INT64_MAX - (c - '0')) / 10)
            return -1;
        n = n * 10 + (c - '0');
    }
    if (n < 1)
        return -1;
    *v = n;
    return 0;
}

/* Writes the message "<side> level <i>: <what>" into err. Returns -1. */
static int level_error(char *err, size_t errlen, const char *side, size_t i, const char *what)
{
    snprintf(err, errlen, "%s level %zu: %s", side, i, what);
    return -1;
}

/*
 * Reads side `name` (the array token arr; bids when bid) into out[0..) when
 * out is not NULL, else only checks it. *n gets the number of levels, *best
 * the price of the first (0 when there is none). Returns 0, or -1 with err.
 */
static int read_side(const struct json_doc *d, int arr, const char *name, bool bid,
                     struct op_tick tick, struct feed_level *out, size_t *n, int64_t *best,
                     char *err, size_t errlen)
{
    if (d->toks[arr].type != JSON_ARRAY) {
        snprintf(err, errlen, "\"%s\" is not an array", name);
        return -1;
    }
    int64_t prev = 0;
    int e = arr + 1;
    *best = 0;
    size_t count = (size_t)d->toks[arr].size;
    for (size_t i = 0; i < count; i++, e = d->toks[e].next) {
        const struct json_tok *lv = &d->toks[e];
        struct feed_level l;
        if (lv->type != JSON_ARRAY || lv->size != 3)
            return level_error(err, errlen, name, i, "not an array of [price, qty, count]");
        const struct json_tok *p = &d->toks[e + 1];
        if (p->type != JSON_STRING)
            return level_error(err, errlen, name, i, "price is not a string");
        enum op_decimal_err de =
            op_decimal_parse(d->text + p->start, (size_t)(p->end - p->start), tick, &l.px);
        if (de != OP_DEC_OK)
            return level_error(err, errlen, name, i, op_decimal_strerror(de));
        if (parse_positive(d, d->toks[e + 1].next, &l.qty) != 0)
            return level_error(err, errlen, name, i, "qty is not an integer >= 1");
        if (parse_positive(d, d->toks[d->toks[e + 1].next].next, &l.count) != 0)
            return level_error(err, errlen, name, i, "order count is not an integer >= 1");
        if (i > 0 && (bid ? l.px >= prev : l.px <= prev))
            return level_error(err, errlen, name, i,
                               bid ? "price not below the level before it (bids go down)"
                                   : "price not above the level before it (asks go up)");
        if (i == 0)
            *best = l.px;
        prev = l.px;
        if (out)
            out[i] = l;
    }
    *n = count;
    return 0;
}

/* Makes *v hold at least n levels (keeping *cap when it is enough). Returns
 * 0, or -1 out of memory (then *v and *cap are unchanged). */
static int reserve_levels(struct feed_level **v, size_t *cap, size_t n)
{
    if (n <= *cap)
        return 0;
    if (n > SIZE_MAX / sizeof(**v))
        return -1;
    struct feed_level *nv = op_realloc(*v, n * sizeof(**v));
    if (!nv)
        return -1;
    *v = nv;
    *cap = n;
    return 0;
}

/*
 * Finds the value of key in object 0 of d, in *val (-1 if absent). Returns
 * 0, or -1 if the key is given more than once.
 */
static int find_key(const struct json_doc *d, const char *key, int *val)
{
    *val = -1;
    int k = 1;
    for (int i = 0; i < d->toks[0].size; i++, k = d->toks[k + 1].next) {
        if (!json_eq(d, k, key))
            continue;
        if (*val >= 0)
            return -1;
        *val = k + 1;
    }
    return 0;
}

int feed_book_parse(struct feed_book *b, const char *text, size_t len, struct op_tick tick,
                    char *err, size_t errlen)
{
    struct json_parser p;
    struct json_doc d;
    const char *jerr;
    int rc = -1;

    if (len > FEED_BOOK_TEXT_MAX) {
        snprintf(err, errlen, "book is %zu bytes, more than the %zu a book can be", len,
                 FEED_BOOK_TEXT_MAX);
        return -1;
    }
    /* Every token but the first needs a separator and every container or
     * string two characters of its own, so a text of len bytes holds at
     * most (len + 1) / 2 tokens. */
    json_parser_init(&p);
    if (json_parser_reserve(&p, (int)((len + 1) / 2 + 1)) != 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (json_parse_with(&p, &d, text, len, p.cap, &jerr) != 0) {
        snprintf(err, errlen, "book is not valid JSON (%s)", jerr);
        goto out;
    }
    if (d.toks[0].type != JSON_OBJECT) {
        snprintf(err, errlen, "book is not a JSON object");
        goto out;
    }

    int ts = -1, bids = -1, asks = -1;
    static const char *const keys[] = {"ts", "bids", "asks"};
    int *vals[] = {&ts, &bids, &asks};
    for (size_t i = 0; i < 3; i++) {
        if (find_key(&d, keys[i], vals[i]) != 0) {
            snprintf(err, errlen, "book has \"%s\" twice", keys[i]);
            goto out;
        }
        if (*vals[i] < 0) {
            snprintf(err, errlen, "book has no \"%s\"", keys[i]);
            goto out;
        }
    }
    char when[FEED_BOOK_TS_MAX];
    if (json_string(&d, ts, when, sizeof(when)) < 0) {
        snprintf(err, errlen, "\"ts\" is not a string of at most %d ASCII characters",
                 FEED_BOOK_TS_MAX - 1);
        goto out;
    }

    /* Check everything first, so that b changes only when all is well. */
    size_t nb, na;
    int64_t bid, ask;
    if (read_side(&d, bids, "bids", true, tick, NULL, &nb, &bid, err, errlen) != 0 ||
        read_side(&d, asks, "asks", false, tick, NULL, &na, &ask, err, errlen) != 0)
        goto out;
    if (nb > 0 && na > 0 && bid >= ask) {
        snprintf(err, errlen, "book is crossed: best bid not below best ask");
        goto out;
    }
    if (reserve_levels(&b->bids, &b->capbids, nb) != 0 ||
        reserve_levels(&b->asks, &b->capasks, na) != 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    /* cannot fail now: the same walk succeeded above */
    read_side(&d, bids, "bids", true, tick, b->bids, &b->nbids, &bid, err, errlen);
    read_side(&d, asks, "asks", false, tick, b->asks, &b->nasks, &ask, err, errlen);
    memcpy(b->ts, when, sizeof(b->ts));
    rc = 0;
out:
    json_parser_release(&p);
    return rc;
}

/* ---- messages --------------------------------------------------------------- */

/* Appends one level as ["<price>",qty,count] (a comma before it unless
 * first). Returns 0 or -1. */
static int put_level(struct op_buf *out, bool first, int64_t px, int64_t qty, int64_t count,
                     struct op_tick tick)
{
    char text[PX_TEXT_MAX];
    if (op_decimal_format(px, tick, text, sizeof(text)) < 0)
        return -1;
    return op_buf_printf(out, "%s[\"%s\",%lld,%lld]", first ? "" : ",", text, (long long)qty,
                         (long long)count);
}

/* Appends the head {"type":"book","kind":…,"symbol":…,"seq":…,"ts":…,"bids":[
 * Returns 0 or -1. */
static int put_head(struct op_buf *out, const char *kind, const char *symbol, uint64_t seq,
                    const char *ts)
{
    if (op_buf_printf(out, "{\"type\":\"book\",\"kind\":\"%s\",\"symbol\":", kind) != 0 ||
        json_put_str(out, symbol) != 0 ||
        op_buf_printf(out, ",\"seq\":%llu,\"ts\":", (unsigned long long)seq) != 0 ||
        json_put_str(out, ts) != 0)
        return -1;
    return op_buf_append(out, ",\"bids\":[", 9);
}

/* Puts out back to len bytes (what it held before a failed append). */
static void truncate_to(struct op_buf *out, size_t len)
{
    out->len = len;
    if (out->data)
        out->data[len] = '\0';
}

int feed_book_snapshot_json(const struct feed_book *b, const char *symbol, struct op_tick tick,
                            uint64_t seq, struct op_buf *out)
{
    size_t len0 = out->len;
    int rc = put_head(out, "snapshot", symbol, seq, b->ts);
    for (size_t i = 0; i < b->nbids && rc == 0; i++)
        rc = put_level(out, i == 0, b->bids[i].px, b->bids[i].qty, b->bids[i].count, tick);
    if (rc == 0)
        rc = op_buf_append(out, "],\"asks\":[", 10);
    for (size_t i = 0; i < b->nasks && rc == 0; i++)
        rc = put_level(out, i == 0, b->asks[i].px, b->asks[i].qty, b->asks[i].count, tick);
    if (rc == 0)
        rc = op_buf_append(out, "]}", 2);
    if (rc != 0)
        truncate_to(out, len0);
    return rc;
}

/*
 * Appends the changes of one side from o[0..no) to c[0..nc) (both best
 * first; bids when bid): merged in price order, a level of c that is new or
 * differs, a level of o that c lacks as [px,0,0]. *changed counts what was
 * appended. Returns 0 or -1.
 */
static int put_changes(struct op_buf *out, const struct feed_level *o, size_t no,
                       const struct feed_level *c, size_t nc, bool bid, struct op_tick tick,
                       size_t *changed)
{
    size_t i = 0, j = 0, n = 0;
    int rc = 0;
    while (rc == 0 && (i < no || j < nc)) {
        /* which comes first in the side's order: the old level, the new one, or both */
        int cmp;
        if (i == no)
            cmp = 1;
        else if (j == nc)
            cmp = -1;
        else if (o[i].px == c[j].px)
            cmp = 0;
        else
            cmp = (o[i].px > c[j].px) == bid ? -1 : 1;
        if (cmp < 0) { /* gone */
            rc = put_level(out, n == 0, o[i].px, 0, 0, tick);
            n++;
            i++;
        } else if (cmp > 0) { /* new */
            rc = put_level(out, n == 0, c[j].px, c[j].qty, c[j].count, tick);
            n++;
            j++;
        } else { /* still there: sent only when it changed */
            if (o[i].qty != c[j].qty || o[i].count != c[j].count) {
                rc = put_level(out, n == 0, c[j].px, c[j].qty, c[j].count, tick);
                n++;
            }
            i++;
            j++;
        }
    }
    *changed += n;
    return rc;
}

int feed_book_update_json(const struct feed_book *old, const struct feed_book *cur,
                          const char *symbol, struct op_tick tick, uint64_t seq, struct op_buf *out)
{
    size_t len0 = out->len, changed = 0;
    int rc = put_head(out, "update", symbol, seq, cur->ts);
    if (rc == 0)
        rc = put_changes(out, old->bids, old->nbids, cur->bids, cur->nbids, true, tick, &changed);
    if (rc == 0)
        rc = op_buf_append(out, "],\"asks\":[", 10);
    if (rc == 0)
        rc = put_changes(out, old->asks, old->nasks, cur->asks, cur->nasks, false, tick, &changed);
    if (rc == 0)
        rc = op_buf_append(out, "]}", 2);
    if (rc != 0 || changed == 0)
        truncate_to(out, len0);
    return rc != 0 ? -1 : changed > 0;
}

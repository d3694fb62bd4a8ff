/* The order book of one symbol: level search/insert/removal, FIFO links, pools (see book.h). */
#include "matcher/engine/book.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Backward steps from the touch before falling back to binary search: levels
 * are dense near the best price, so most searches end within a few steps. */
#define BOOK_SCAN_STEPS 16

_Noreturn void eng_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "engine invariant broken at %s:%d: %s\n", file, line, expr);
    fflush(stderr);
    abort();
}

_Noreturn void eng_oom(const char *what)
{
    fprintf(stderr, "engine: out of memory (%s)\n", what);
    fflush(stderr);
    abort();
}

void book_pool_init(struct book_pool *p, size_t obj_size)
{
    memset(p, 0, sizeof(*p));
    /* Objects of a cache line or more start on a line: one order = 2 lines, not 3. */
    p->obj_size = obj_size >= 64 ? (obj_size + 63) & ~(size_t)63 : (obj_size + 7) & ~(size_t)7;
}

void book_pool_release(struct book_pool *p)
{
    for (size_t i = 0; i < p->nslabs; i++)
        free(p->slabs[i]);
    free(p->slabs);
    memset(p, 0, sizeof(*p));
}

void book_pool_grow(struct book_pool *p)
{
    if (p->nslabs == p->cap_slabs) {
        size_t cap = p->cap_slabs ? p->cap_slabs * 2 : 16;
        void **s = realloc(p->slabs, cap * sizeof(*s));
        if (s == NULL)
            eng_oom("pool slab table");
        p->slabs = s;
        p->cap_slabs = cap;
    }
    char *slab = aligned_alloc(64, p->obj_size * BOOK_SLAB);
    if (slab == NULL)
        eng_oom("pool slab");
    p->slabs[p->nslabs++] = slab;
    /* Thread in address order so that consecutive gets are consecutive in memory. */
    for (size_t i = BOOK_SLAB; i-- > 0;) {
        void *obj = slab + i * p->obj_size;
        *(void **)obj = p->free;
        p->free = obj;
    }
}

void book_init(struct book *b, const char *symbol, uint32_t index)
{
    memset(b, 0, sizeof(*b));
    size_t n = strnlen(symbol, OP_SYMBOL_MAX - 1);
    memcpy(b->symbol, symbol, n);
    b->index = index;
}

void book_release(struct book *b, struct book_pool *orders, struct book_pool *levels)
{
    for (int s = 0; s < 2; s++) {
        struct book_side *sd = &b->side[s];
        for (uint32_t i = 0; i < sd->n; i++) {
            struct book_level *lv = sd->lv[i];
            for (struct book_order *o = lv->head, *nx; o != NULL; o = nx) {
                nx = o->next;
                book_pool_put(orders, o);
            }
            book_pool_put(levels, lv);
        }
        free(sd->key);
        free(sd->lv);
        sd->key = NULL;
        sd->lv = NULL;
        sd->n = sd->cap = 0;
    }
    b->orders = 0;
    for (int s = 0; s < 2; s++) {
        for (uint32_t i = 0; i < b->stops[s].n; i++)
            book_pool_put(orders, b->stops[s].v[i]);
        free(b->stops[s].v);
        memset(&b->stops[s], 0, sizeof(b->stops[s]));
    }
    free(b->open_of);
    b->open_of = NULL;
    b->n_open_of = 0;
}

/*
 * Returns the position in sd where key k is or would be inserted: the
 * smallest i with sd->key[i] >= k (sd->n when k beats every level). Searches
 * backwards from the best level first, then binary.
 */
static uint32_t side_find(const struct book_side *sd, int64_t k)
{
    uint32_t hi = sd->n; /* answer is <= hi */
    for (int step = 0; step < BOOK_SCAN_STEPS; step++) {
        if (hi == 0 || sd->key[hi - 1] < k)
            return hi;
        hi--;
    }
    uint32_t lo = 0; /* answer is >= lo */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (sd->key[mid] < k)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void side_reserve(struct book_side *sd)
{
    if (sd->n < sd->cap)
        return;
    uint32_t cap = sd->cap ? sd->cap * 2 : 64;
    int64_t *key = realloc(sd->key, cap * sizeof(*key));
    if (key == NULL)
        eng_oom("level keys");
    sd->key = key;
    struct book_level **lv = realloc(sd->lv, cap * sizeof(struct book_level *));
    if (lv == NULL)
        eng_oom("level table");
    sd->lv = lv;
    sd->cap = cap;
}

void book_add(struct book *b, struct book_pool *levels, struct book_order *o)
{
    int s = book_side_of(o->side);
    struct book_side *sd = &b->side[s];
    int64_t k = book_key(s, o->price);
    uint32_t i = side_find(sd, k);
    struct book_level *lv;
    if (i < sd->n && sd->key[i] == k) {
        lv = sd->lv[i];
    } else {
        side_reserve(sd);
        lv = book_pool_get(levels);
        memset(lv, 0, sizeof(*lv));
        lv->price = o->price;
        uint32_t tail = sd->n - i;
        if (tail) {
            memmove(&sd->key[i + 1], &sd->key[i], tail * sizeof(*sd->key));
            memmove(&sd->lv[i + 1], &sd->lv[i], tail * sizeof(struct book_level *));
        }
        sd->key[i] = k;
        sd->lv[i] = lv;
        sd->n++;
    }
    o->level = lv;
    o->next = NULL;
    o->prev = lv->tail;
    if (lv->tail)
        lv->tail->next = o;
    else
        lv->head = o;
    lv->tail = o;
    lv->count++;
    lv->open += o->qty - o->filled;
    b->orders++;
}

void book_remove(struct book *b, struct book_pool *levels, struct book_order *o)
{
    struct book_level *lv = o->level;
    ENG_ASSERT(lv != NULL && lv->count > 0);
    if (o->prev)
        o->prev->next = o->next;
    else
        lv->head = o->next;
    if (o->next)
        o->next->prev = o->prev;
    else
        lv->tail = o->prev;
    lv->count--;
    lv->open -= o->qty - o->filled;
    o->level = NULL;
    o->next = o->prev = NULL;
    ENG_ASSERT(b->orders > 0);
    b->orders--;
    if (lv->count)
        return;
    ENG_ASSERT(lv->open == 0 && lv->head == NULL);
    int s = book_side_of(o->side);
    struct book_side *sd = &b->side[s];
    /* The touch, the common case while matching, is the last entry: nothing
     * to move. Any other level is found and the levels after it close up. */
    if (sd->n == 0 || sd->lv[sd->n - 1] != lv) {
        uint32_t i = side_find(sd, book_key(s, lv->price));
        ENG_ASSERT(i < sd->n && sd->lv[i] == lv);
        uint32_t tail = sd->n - i - 1;
        memmove(&sd->key[i], &sd->key[i + 1], tail * sizeof(*sd->key));
        memmove(&sd->lv[i], &sd->lv[i + 1], tail * sizeof(struct book_level *));
    }
    sd->n--;
    book_pool_put(levels, lv);
}

size_t book_depth(const struct book *b, int s, struct book_depth *out, size_t max)
{
    const struct book_side *sd = &b->side[s];
    size_t n = 0;
    for (uint32_t i = sd->n; i-- > 0 && n < max; n++) {
        const struct book_level *lv = sd->lv[i];
        out[n].price = lv->price;
        out[n].qty = lv->open;
        out[n].count = lv->count;
    }
    return n;
}

int book_check(const struct book *b, char *err, size_t errlen)
{
    uint32_t total = 0;
    for (int s = 0; s < 2; s++) {
        const struct book_side *sd = &b->side[s];
        for (uint32_t i = 0; i < sd->n; i++) {
            const struct book_level *lv = sd->lv[i];
            if (sd->key[i] != book_key(s, lv->price) || (i && sd->key[i - 1] >= sd->key[i])) {
                snprintf(err, errlen, "book '%s': level keys out of order at %u", b->symbol, i);
                return -1;
            }
            int64_t open = 0;
            uint32_t count = 0;
            const struct book_order *prev = NULL;
            for (const struct book_order *o = lv->head; o != NULL; o = o->next) {
                if (o->prev != prev || o->level != lv || o->price != lv->price ||
                    book_side_of(o->side) != s || o->filled < 0 || o->filled >= o->qty ||
                    o->book != b->index) {
                    snprintf(err, errlen, "book '%s': bad order %llu at level %lld", b->symbol,
                             (unsigned long long)o->id, (long long)lv->price);
                    return -1;
                }
                open += o->qty - o->filled;
                count++;
                prev = o;
            }
            if (prev != lv->tail || count != lv->count || count == 0 || open != lv->open) {
                snprintf(err, errlen, "book '%s': level %lld totals or links wrong", b->symbol,
                         (long long)lv->price);
                return -1;
            }
            total += count;
        }
    }
    if (total != b->orders) {
        snprintf(err, errlen, "book '%s': order count %u, levels hold %u", b->symbol, b->orders,
                 total);
        return -1;
    }
    return 0;
}

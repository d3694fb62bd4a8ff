/* The matching engine of one shard: validation, matching, id map, closed memory, reports. */
#include "matcher/engine/engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "shared/shard.h"

/* Initial sizes: small enough that an idle shard costs little, large enough
 * that a busy one grows only a few times. */
#define IDS_INITIAL 1024u
#define SYMTAB_INITIAL 16u
#define RING_INITIAL 1024u
#define REPORTS_INITIAL 64u
#define ACCTTAB_INITIAL 16u

/* --- helpers ------------------------------------------------------------- */

uint64_t eng_fnv1a64(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = UINT64_C(14695981039346656037);
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

/*
 * Copies the string src (a field of size bytes) into dst NUL-padded to size
 * bytes. Returns 0, or -1 when src has no NUL within size bytes (dst then
 * holds its first size-1 bytes).
 */
static int copy_field(char *dst, const char *src, size_t size)
{
    size_t n = strnlen(src, size);
    int bad = n == size ? -1 : 0;
    if (bad)
        n = size - 1;
    memcpy(dst, src, n);
    memset(dst + n, 0, size - n);
    return bad;
}

/* The status of an order from its quantities (an open or just filled order). */
static inline uint8_t order_status(const struct book_order *o)
{
    if (o->filled == 0)
        return OP_STATUS_NEW;
    return o->filled == o->qty ? OP_STATUS_FILLED : OP_STATUS_PARTIALLY_FILLED;
}

/* Non-zero when order o (arriving) would trade against a level at price. */
/* Market and stop-market orders take any price. */
static inline int is_market(int type)
{
    return type == OP_TYPE_MARKET || type == OP_TYPE_STOP_MARKET;
}

static inline int is_stop(int type)
{
    return type == OP_TYPE_STOP_MARKET || type == OP_TYPE_STOP_LIMIT;
}

static inline int crosses(const struct book_order *o, int64_t price)
{
    if (is_market(o->type))
        return 1;
    return o->side == OP_SIDE_BUY ? o->price >= price : o->price <= price;
}

/* --- report buffer -------------------------------------------------------- */

void eng_reports_init(struct eng_reports *r)
{
    memset(r, 0, sizeof(*r));
}

void eng_reports_release(struct eng_reports *r)
{
    free(r->v);
    memset(r, 0, sizeof(*r));
}

/* Appends a zeroed report with its id, kind and time (the engine time of the
 * input being applied); aborts when out of memory. */
static struct op_report *rep_new(struct eng *e, struct eng_reports *out, int kind, int req_kind)
{
    if (out->len == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : REPORTS_INITIAL;
        struct op_report *v = realloc(out->v, cap * sizeof(*v));
        if (v == NULL)
            eng_oom("report buffer");
        out->v = v;
        out->cap = cap;
    }
    struct op_report *r = &out->v[out->len++];
    /* Zero every byte, padding included (determinism). A copy from a zero
     * constant compiles to a few vector stores; memset of this size becomes
     * `rep stos`, whose start-up cost was 5% of the whole benchmark. */
    static const struct op_report zero;
    memcpy(r, &zero, sizeof(*r));
    r->kind = (uint8_t)kind;
    r->req_kind = (uint8_t)req_kind;
    e->seq++;
    ENG_ASSERT(e->seq < (UINT64_C(1) << (64 - ENG_SHARD_BITS)));
    r->report_id = (e->seq << ENG_SHARD_BITS) | e->shard;
    r->ts_ns = e->now_ns;
    return r;
}

/* Fills r with o's description and state, and its book's symbol. */
static inline void rep_order(struct op_report *r, const struct eng *e, const struct book_order *o,
                             const struct book *b)
{
    r->status = o->pending ? OP_STATUS_PENDING_TRIGGER : order_status(o);
    r->side = o->side;
    r->type = o->type;
    r->tif = o->tif;
    r->post_only = o->post_only;
    r->order_id = o->id;
    r->price = o->price;
    r->qty = o->qty;
    r->filled_qty = o->filled;
    memcpy(r->symbol, b->symbol, OP_SYMBOL_MAX);
    memcpy(r->account, e->accounts[o->account], OP_ACCOUNT_MAX);
    memcpy(r->client_order_id, o->client_order_id, OP_CLORDID_MAX);
    r->stop_price = o->stop_price;
    r->expire_ns = o->expire_ns;
}

/* --- id map ---------------------------------------------------------------- */

/*
 * Where id's probe starts. Ids come from ingest's blocks (block << 20 | n,
 * n counting up per writer lane), so a shard's live ids are a few dense,
 * advancing runs: a page of ID_PAGE ids keeps its ids ID_SPREAD slots apart
 * in one region of slots at a hashed place, instead of every id at a random
 * one. A NEW's duplicate check, its rest or close, and the eviction of the
 * oldest closed id then touch a slot next to ones touched a moment before
 * (cached, or streamed in by the hardware prefetcher) rather than a random
 * cache line of a map that outgrows the caches (64 MiB at 1M remembered
 * ids): one DRAM miss fewer per message in the common case.
 *
 * Why spread: at the map's load (at most 1/2) there are about as many live
 * pages as regions, so regions are shared; a page's dense ids packed into
 * consecutive slots would then fill a shared region and push the other
 * page's ids, and every lookup of those, a whole region further (measured:
 * -50% on bench book's own mix, whose ids are all of one lane). Four slots apart, two or three
 * pages interleave in one region and a probe stays one or two slots long.
 * Any id still works (linear probing); ids that are not dense only lose the
 * locality.
 */
#define ID_PAGE_BITS 6   /* 64 ids per page */
#define ID_SPREAD_BITS 2 /* 4 slots apart: a region of 256 slots (4 KiB) */
#define ID_PAGE_MASK ((UINT64_C(1) << ID_PAGE_BITS) - 1)

static inline uint64_t id_home(const struct eng *e, uint64_t id)
{
    uint64_t x = (id >> ID_PAGE_BITS) * UINT64_C(0x9E3779B97F4A7C15);
    x ^= x >> 29;
    return ((x << (ID_PAGE_BITS + ID_SPREAD_BITS)) | ((id & ID_PAGE_MASK) << ID_SPREAD_BITS)) &
           e->ids_mask;
}

/* The slot holding id, or NULL. */
static inline struct eng_slot *ids_find(const struct eng *e, uint64_t id)
{
    for (uint64_t i = id_home(e, id);; i = (i + 1) & e->ids_mask) {
        struct eng_slot *s = &e->ids[i];
        if (s->id == id)
            return s;
        if (s->id == 0)
            return NULL;
    }
}

/* Id maps from this size up are mapped on their own, in transparent huge
 * pages (2 MiB): the map of a busy shard (64 MiB at 1M remembered closed
 * ids) is read at random, and with 4 KiB pages each lookup would also miss
 * the TLB (its reach is ~6 MiB) and walk the page table — a second DRAM
 * access. Below it, calloc. */
#define IDS_HUGE_BYTES (UINT64_C(2) << 20)

/* A zeroed array of n slots (n a power of two), or NULL. Large ones are
 * mmap'ed 2 MiB-aligned with MADV_HUGEPAGE and written once here, so that
 * the rehash that follows does not take a fault per page (a first read maps
 * the zero page, the first write then faults again and copies). */
static struct eng_slot *ids_alloc(uint64_t n)
{
    size_t bytes = (size_t)n * sizeof(struct eng_slot);
    if (bytes < IDS_HUGE_BYTES)
        return calloc(n, sizeof(struct eng_slot));
    size_t len = bytes + IDS_HUGE_BYTES;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    uintptr_t a = ((uintptr_t)p + IDS_HUGE_BYTES - 1) & ~(uintptr_t)(IDS_HUGE_BYTES - 1);
    char *al = p + (a - (uintptr_t)p);
    if (al > p)
        munmap(p, (size_t)(al - p));
    munmap(al + bytes, (size_t)(p + len - (al + bytes)));
    madvise(al, bytes, MADV_HUGEPAGE); /* a hint: without THP, 4 KiB pages */
    memset(al, 0, bytes);              /* fault every page in now, writing */
    return (struct eng_slot *)(void *)al;
}

/* Frees an array of n slots from ids_alloc. */
static void ids_free(struct eng_slot *v, uint64_t n)
{
    size_t bytes = (size_t)n * sizeof(struct eng_slot);
    if (v == NULL)
        return;
    if (bytes < IDS_HUGE_BYTES)
        free(v);
    else
        munmap(v, bytes);
}

static void ids_grow(struct eng *e)
{
    uint64_t old_n = e->ids_mask + 1;
    struct eng_slot *old = e->ids;
    uint64_t n = old_n * 2;
    e->ids = ids_alloc(n);
    if (e->ids == NULL)
        eng_oom("id map");
    e->ids_mask = n - 1;
    for (uint64_t j = 0; j < old_n; j++) {
        if (old[j].id == 0)
            continue;
        uint64_t i = id_home(e, old[j].id);
        while (e->ids[i].id != 0)
            i = (i + 1) & e->ids_mask;
        e->ids[i] = old[j];
    }
    ids_free(old, old_n);
}

/* Sets id → ref, inserting id when absent. */
static void ids_set(struct eng *e, uint64_t id, uintptr_t ref)
{
    if ((e->ids_used + 1) * 2 > e->ids_mask + 1)
        ids_grow(e);
    uint64_t i = id_home(e, id);
    for (;; i = (i + 1) & e->ids_mask) {
        if (e->ids[i].id == id)
            break;
        if (e->ids[i].id == 0) {
            e->ids[i].id = id;
            e->ids_used++;
            break;
        }
    }
    e->ids[i].ref = ref;
}

/* Removes id, which must be present, keeping every probe chain intact
 * (backward-shift deletion: no tombstones, so lookups stay short). */
static void ids_del(struct eng *e, uint64_t id)
{
    struct eng_slot *s = ids_find(e, id);
    ENG_ASSERT(s != NULL);
    uint64_t i = (uint64_t)(s - e->ids), j = i;
    for (;;) {
        j = (j + 1) & e->ids_mask;
        if (e->ids[j].id == 0)
            break;
        uint64_t k = id_home(e, e->ids[j].id);
        /* The entry at j may move to the hole at i unless its home lies
         * cyclically in (i, j]. */
        int stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            e->ids[i] = e->ids[j];
            i = j;
        }
    }
    e->ids[i].id = 0;
    e->ids[i].ref = 0;
    e->ids_used--;
}

static inline int ref_closed(uintptr_t ref)
{
    return (int)(ref & 1);
}

/* The open order an id-map ref points at; the caller has checked that
 * !ref_closed(ref). The map keeps tagged pointers (struct eng_slot), so this
 * is the one place that turns a ref back into a pointer. */
static inline struct book_order *ref_order(uintptr_t ref)
{
    /* NOLINTNEXTLINE(performance-no-int-to-ptr): decoding the tagged pointer eng_rest stored */
    return (struct book_order *)ref;
}

/* The open order id refers to, or NULL when it is closed or unknown. */
static struct book_order *open_order(const struct eng *e, uint64_t id)
{
    const struct eng_slot *s = id ? ids_find(e, id) : NULL;
    return s == NULL || ref_closed(s->ref) ? NULL : ref_order(s->ref);
}

int eng_id_known(const struct eng *e, uint64_t id)
{
    return id != 0 && ids_find(e, id) != NULL;
}

/* --- closed memory ------------------------------------------------------ */

/* Why 8: a message costs ~100-300 ns and a DRAM miss ~100 ns; 8 evictions
 * ahead leaves the prefetch time to land without its line being evicted
 * again before use. */
#define EVICT_AHEAD 8

void eng_closed_add(struct eng *e, uint64_t id, uint32_t account, uint32_t book)
{
    uint32_t at;
    if (e->closed_len == e->closed_max) {
        at = e->closed_head; /* evict the oldest */
        struct eng_slot *s = ids_find(e, e->ring[at].id);
        ENG_ASSERT(s != NULL && s->ref == (((uintptr_t)at << 1) | 1));
        ids_del(e, e->ring[at].id);
        e->closed_head = (at + 1) % e->closed_max;
        /* The slot of an eviction to come is a cold line (orders close in
         * another order than their ids): fetch it EVICT_AHEAD evictions
         * early, about as many messages, so that DRAM has answered by then. */
        __builtin_prefetch(
            &e->ids[id_home(e, e->ring[(e->closed_head + EVICT_AHEAD) % e->closed_max].id)]);
    } else {
        if (e->closed_len == e->ring_cap) {
            /* Still growing: the ring has not wrapped yet, so head is 0. */
            ENG_ASSERT(e->closed_head == 0);
            uint32_t cap = e->ring_cap ? e->ring_cap * 2 : RING_INITIAL;
            if (cap > e->closed_max)
                cap = e->closed_max;
            struct eng_closed *r = realloc(e->ring, cap * sizeof(*r));
            if (r == NULL)
                eng_oom("closed ring");
            e->ring = r;
            e->ring_cap = cap;
        }
        at = (e->closed_head + e->closed_len) % e->closed_max;
        e->closed_len++;
    }
    e->ring[at].id = id;
    e->ring[at].account = account;
    e->ring[at].book = book;
    ids_set(e, id, ((uintptr_t)at << 1) | 1);
}

/* --- accounts --------------------------------------------------------------- */

static inline uint32_t acct_home(uint32_t mask, const char *account)
{
    return (uint32_t)eng_fnv1a64(account, strlen(account)) & mask;
}

int64_t eng_account(struct eng *e, const char *account, int create)
{
    uint32_t i = acct_home(e->accttab_mask, account);
    for (;; i = (i + 1) & e->accttab_mask) {
        uint32_t v = e->accttab[i];
        if (v == 0)
            break;
        if (memcmp(e->accounts[v - 1], account, OP_ACCOUNT_MAX) == 0)
            return v - 1;
    }
    if (!create)
        return -1;
    if (e->naccounts == e->cap_accounts) {
        uint32_t cap = e->cap_accounts ? e->cap_accounts * 2 : 16;
        char(*v)[OP_ACCOUNT_MAX] = realloc(e->accounts, cap * sizeof(*v));
        if (v == NULL)
            eng_oom("account table");
        e->accounts = v;
        uint64_t *dm = realloc(e->dm_deadline, cap * sizeof(*dm));
        if (dm == NULL)
            eng_oom("dead-man table");
        memset(dm + e->cap_accounts, 0, (cap - e->cap_accounts) * sizeof(*dm));
        e->dm_deadline = dm;
        e->cap_accounts = cap;
    }
    uint32_t index = e->naccounts++;
    memcpy(e->accounts[index], account, OP_ACCOUNT_MAX);
    if ((uint64_t)e->naccounts * 2 > (uint64_t)e->accttab_mask + 1) {
        uint32_t n = (e->accttab_mask + 1) * 2;
        free(e->accttab);
        e->accttab = calloc(n, sizeof(*e->accttab));
        if (e->accttab == NULL)
            eng_oom("account index");
        e->accttab_mask = n - 1;
        for (uint32_t k = 0; k < e->naccounts; k++) {
            uint32_t j = acct_home(e->accttab_mask, e->accounts[k]);
            while (e->accttab[j] != 0)
                j = (j + 1) & e->accttab_mask;
            e->accttab[j] = k + 1;
        }
    } else {
        e->accttab[i] = index + 1; /* i: the empty slot the search ended at */
    }
    return index;
}

/* --- books ------------------------------------------------------------------ */

static inline uint32_t sym_home(const struct eng *e, const char *symbol)
{
    uint64_t a, b;
    memcpy(&a, symbol, 8);
    memcpy(&b, symbol + 8, 8);
    uint64_t x = a * UINT64_C(0x9E3779B97F4A7C15) ^ b * UINT64_C(0xC2B2AE3D27D4EB4F);
    return (uint32_t)(x ^ (x >> 31)) & e->symtab_mask;
}

/* The index of symbol's book (a NUL-padded field), or -1. */
static int64_t book_lookup(const struct eng *e, const char *symbol)
{
    for (uint32_t i = sym_home(e, symbol);; i = (i + 1) & e->symtab_mask) {
        uint32_t v = e->symtab[i];
        if (v == 0)
            return -1;
        if (memcmp(e->books[v - 1]->symbol, symbol, OP_SYMBOL_MAX) == 0)
            return v - 1;
    }
}

static void symtab_insert(struct eng *e, uint32_t index)
{
    uint32_t i = sym_home(e, e->books[index]->symbol);
    while (e->symtab[i] != 0)
        i = (i + 1) & e->symtab_mask;
    e->symtab[i] = index + 1;
}

/* The listing of symbol (NUL-padded) in e's sorted list, or NULL. */
static const struct eng_listing *listing_find(const struct eng *e, const char *symbol)
{
    uint32_t lo = 0, hi = e->nlisted;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = memcmp(e->listed[mid].symbol, symbol, OP_SYMBOL_MAX);
        if (c == 0)
            return &e->listed[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Sets the trading limits of book b from e's listing (every symbol trades,
 * with the engine's own limits, while no listing is set). */
static void book_limits(const struct eng *e, struct book *b)
{
    const struct eng_listing *l = e->listing ? listing_find(e, b->symbol) : NULL;
    b->listed = !e->listing || l != NULL;
    b->lot = l ? l->lot : 1;
    b->max_qty = l ? l->max_qty : ENG_QTY_MAX;
}

struct book *eng_book(struct eng *e, const char *symbol, int create)
{
    int64_t at = book_lookup(e, symbol);
    if (at >= 0)
        return e->books[at];
    if (!create)
        return NULL;
    if (e->nbooks == e->cap_books) {
        uint32_t cap = e->cap_books ? e->cap_books * 2 : 8;
        struct book **v = realloc(e->books, cap * sizeof(struct book *));
        if (v == NULL)
            eng_oom("book table");
        e->books = v;
        e->cap_books = cap;
    }
    struct book *b = malloc(sizeof(*b));
    if (b == NULL)
        eng_oom("book");
    book_init(b, symbol, e->nbooks);
    book_limits(e, b);
    e->books[e->nbooks++] = b;
    if ((uint64_t)e->nbooks * 2 > (uint64_t)e->symtab_mask + 1) {
        uint32_t n = (e->symtab_mask + 1) * 2;
        free(e->symtab);
        e->symtab = calloc(n, sizeof(*e->symtab));
        if (e->symtab == NULL)
            eng_oom("symbol table");
        e->symtab_mask = n - 1;
        for (uint32_t i = 0; i < e->nbooks; i++)
            symtab_insert(e, i);
    } else {
        symtab_insert(e, b->index);
    }
    return b;
}

/* Makes b->open_of hold account index a. */
static void open_of_grow(struct book *b, uint32_t a);

/* Counts one more open order (resting or pending stop) of account a in b. */
static inline void open_of_add(struct book *b, uint32_t a)
{
    if (a >= b->n_open_of)
        open_of_grow(b, a);
    b->open_of[a]++;
}

static void open_of_grow(struct book *b, uint32_t a)
{
    uint32_t n = b->n_open_of ? b->n_open_of : 8;
    while (n <= a)
        n *= 2;
    uint32_t *v = realloc(b->open_of, n * sizeof(*v));
    if (v == NULL)
        eng_oom("open-order counts");
    memset(v + b->n_open_of, 0, (n - b->n_open_of) * sizeof(*v));
    b->open_of = v;
    b->n_open_of = n;
}

void eng_rest(struct eng *e, struct book_order *o)
{
    ENG_ASSERT(o->book < e->nbooks);
    struct book *b = e->books[o->book];
    book_add(b, &e->levels, o);
    ids_set(e, o->id, (uintptr_t)o);
    open_of_add(b, o->account);
}

/* Takes the resting order o out of its book b (it stays in the id map as
 * open until close_order or eng_rest). */
static inline void unrest(struct eng *e, struct book *b, struct book_order *o)
{
    book_remove(b, &e->levels, o);
    ENG_ASSERT(o->account < b->n_open_of && b->open_of[o->account] > 0);
    b->open_of[o->account]--;
}

/* --- time: GTD expiries and dead-man switches (issue 15) ------------------- */

static inline int timer_before(const struct eng_timer *a, const struct eng_timer *b)
{
    return a->at != b->at ? a->at < b->at : a->id < b->id;
}

/* Recomputes next_event from the heap's top and the earliest dead-man
 * deadline (a switch fires once engine time passes its deadline). */
static void next_event_update(struct eng *e)
{
    uint64_t n = e->ngtd ? e->gtd[0].at : 0;
    if (e->dm_next != 0 && (n == 0 || e->dm_next + 1 < n))
        n = e->dm_next + 1;
    e->next_event = n;
}

static void gtd_sift_down(struct eng *e, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, m = i;
        if (l < e->ngtd && timer_before(&e->gtd[l], &e->gtd[m]))
            m = l;
        if (l + 1 < e->ngtd && timer_before(&e->gtd[l + 1], &e->gtd[m]))
            m = l + 1;
        if (m == i)
            return;
        struct eng_timer t = e->gtd[i];
        e->gtd[i] = e->gtd[m];
        e->gtd[m] = t;
        i = m;
    }
}

static void gtd_pop(struct eng *e)
{
    e->gtd[0] = e->gtd[--e->ngtd];
    gtd_sift_down(e, 0);
}

/* Pops the heap's top while it is stale (its order closed, or the id reused
 * with another expiry), so that next_event names a real expiry and an idle
 * shard is not ticked for one that will not happen. */
static void gtd_drop_stale_top(struct eng *e)
{
    while (e->ngtd) {
        const struct book_order *o = open_order(e, e->gtd[0].id);
        if (o != NULL && o->expire_ns == e->gtd[0].at)
            break;
        gtd_pop(e);
    }
    next_event_update(e);
}

/* Keeps the heap's entries of open orders only: run when stale entries (of
 * orders cancelled or filled before their expiry) outnumber the live ones,
 * so the heap stays O(open GTD orders). */
static void gtd_compact(struct eng *e)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < e->ngtd; i++) {
        const struct book_order *o = open_order(e, e->gtd[i].id);
        if (o != NULL && o->expire_ns == e->gtd[i].at)
            e->gtd[k++] = e->gtd[i];
    }
    e->ngtd = k;
    for (uint32_t i = k / 2; i-- > 0;)
        gtd_sift_down(e, i);
}

void eng_gtd_add(struct eng *e, const struct book_order *o)
{
    e->gtd_live++;
    if (e->ngtd > 2 * e->gtd_live + 1024)
        gtd_compact(e);
    if (e->ngtd == e->cap_gtd) {
        uint32_t cap = e->cap_gtd ? e->cap_gtd * 2 : 256;
        struct eng_timer *v = realloc(e->gtd, cap * sizeof(*v));
        if (v == NULL)
            eng_oom("expiry heap");
        e->gtd = v;
        e->cap_gtd = cap;
    }
    uint32_t i = e->ngtd++;
    e->gtd[i] = (struct eng_timer){o->expire_ns, o->id};
    while (i > 0 && timer_before(&e->gtd[i], &e->gtd[(i - 1) / 2])) {
        struct eng_timer t = e->gtd[i];
        e->gtd[i] = e->gtd[(i - 1) / 2];
        e->gtd[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
    next_event_update(e);
}

/* Recomputes dm_next, the earliest armed dead-man deadline. */
static void dm_recompute(struct eng *e)
{
    e->dm_next = 0;
    for (uint32_t a = 0; a < e->naccounts; a++)
        if (e->dm_deadline[a] != 0 && (e->dm_next == 0 || e->dm_deadline[a] < e->dm_next))
            e->dm_next = e->dm_deadline[a];
}

void eng_dead_man_set(struct eng *e, uint32_t account, uint64_t deadline)
{
    e->dm_deadline[account] = deadline;
    dm_recompute(e);
    next_event_update(e);
}

uint64_t eng_next_event_ns(const struct eng *e)
{
    return e->next_event;
}

/* --- stops waiting for their trigger (issue 15) ------------------------------ */

/* Trigger order within side s: buys by stop price ascending, sells
 * descending, then order id. */
static inline int stop_before(int s, const struct book_order *a, const struct book_order *b)
{
    if (a->stop_price != b->stop_price)
        return s == BOOK_BID ? a->stop_price < b->stop_price : a->stop_price > b->stop_price;
    return a->id < b->id;
}

/* The index of the first stop of st that o is not after. */
static uint32_t stop_pos(const struct book_stops *st, int s, const struct book_order *o)
{
    uint32_t lo = 0, hi = st->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (stop_before(s, st->v[mid], o))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void eng_stop_add(struct eng *e, struct book_order *o)
{
    struct book *b = e->books[o->book];
    int s = book_side_of(o->side);
    struct book_stops *st = &b->stops[s];
    if (st->n == st->cap) {
        uint32_t cap = st->cap ? st->cap * 2 : 16;
        struct book_order **v = realloc(st->v, cap * sizeof(struct book_order *));
        if (v == NULL)
            eng_oom("stop list");
        st->v = v;
        st->cap = cap;
    }
    uint32_t i = stop_pos(st, s, o);
    memmove(st->v + i + 1, st->v + i, (st->n - i) * sizeof(struct book_order *));
    st->v[i] = o;
    st->n++;
    o->next = o->prev = NULL;
    o->level = NULL;
    o->pending = 1;
    ids_set(e, o->id, (uintptr_t)o);
    open_of_add(b, o->account);
}

/* Takes the pending stop o out of its book's stop list. */
static void stop_remove(struct book *b, struct book_order *o)
{
    int s = book_side_of(o->side);
    struct book_stops *st = &b->stops[s];
    uint32_t i = stop_pos(st, s, o);
    ENG_ASSERT(i < st->n && st->v[i] == o);
    memmove(st->v + i, st->v + i + 1, (st->n - i - 1) * sizeof(struct book_order *));
    st->n--;
    b->open_of[o->account]--;
}

/* Moves the first k stops of st to the engine's queue of triggered stops. */
static void stops_trigger(struct eng *e, struct book_stops *st, uint32_t k)
{
    if (e->ntrig + k > e->cap_trig) {
        uint32_t cap = e->cap_trig ? e->cap_trig : 16;
        while (cap < e->ntrig + k)
            cap *= 2;
        struct book_order **v = realloc(e->trig, cap * sizeof(struct book_order *));
        if (v == NULL)
            eng_oom("trigger queue");
        e->trig = v;
        e->cap_trig = cap;
    }
    memcpy(e->trig + e->ntrig, st->v, k * sizeof(struct book_order *));
    e->ntrig += k;
    memmove(st->v, st->v + k, (st->n - k) * sizeof(struct book_order *));
    st->n -= k;
}

/* A trade printed at price p in b: queues the stops it triggers, buys then
 * sells, each in trigger order (they enter once the current taker is done,
 * docs/engine.md "Stops"). They stay pending (and counted) until they enter. */
static void check_stops(struct eng *e, struct book *b, int64_t p)
{
    struct book_stops *bs = &b->stops[BOOK_BID], *ss = &b->stops[BOOK_ASK];
    uint32_t kb = 0, ks = 0;
    while (kb < bs->n && bs->v[kb]->stop_price <= p)
        kb++;
    while (ks < ss->n && ss->v[ks]->stop_price >= p)
        ks++;
    if (kb)
        stops_trigger(e, bs, kb);
    if (ks)
        stops_trigger(e, ss, ks);
}

/* --- lifecycle ----------------------------------------------------------- */

struct eng *eng_new(uint32_t shard, uint32_t closed_max)
{
    if (closed_max == 0)
        closed_max = ENG_CLOSED_DEFAULT;
    if (shard >= ENG_SHARD_MAX || closed_max > ENG_CLOSED_LIMIT)
        return NULL;
    struct eng *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->shard = shard;
    e->closed_max = closed_max;
    e->ids = ids_alloc(IDS_INITIAL);
    e->symtab = calloc(SYMTAB_INITIAL, sizeof(*e->symtab));
    e->accttab = calloc(ACCTTAB_INITIAL, sizeof(*e->accttab));
    if (e->ids == NULL || e->symtab == NULL || e->accttab == NULL) {
        eng_free(e);
        return NULL;
    }
    e->ids_mask = IDS_INITIAL - 1;
    e->symtab_mask = SYMTAB_INITIAL - 1;
    e->accttab_mask = ACCTTAB_INITIAL - 1;
    book_pool_init(&e->orders, sizeof(struct book_order));
    book_pool_init(&e->levels, sizeof(struct book_level));
    return e;
}

void eng_free(struct eng *e)
{
    if (e == NULL)
        return;
    for (uint32_t i = 0; i < e->nbooks; i++) {
        book_release(e->books[i], &e->orders, &e->levels);
        free(e->books[i]);
    }
    free(e->books);
    free(e->symtab);
    ids_free(e->ids, e->ids ? e->ids_mask + 1 : 0);
    free(e->ring);
    free(e->accounts);
    free(e->accttab);
    free(e->listed);
    free(e->gtd);
    free(e->dm_deadline);
    free(e->trig);
    book_pool_release(&e->orders);
    book_pool_release(&e->levels);
    free(e);
}

int eng_list_symbols(struct eng *e, const struct op_symtab *syms, uint32_t shards)
{
    uint32_t n = 0;
    for (size_t i = 0; i < syms->n; i++)
        n += op_shard_of(syms->v[i].name, strlen(syms->v[i].name), shards) == e->shard;
    struct eng_listing *v = calloc(n ? n : 1, sizeof(*v)); /* 1: never NULL when it worked */
    if (v == NULL)
        return -1;
    uint32_t k = 0;
    for (size_t i = 0; i < syms->n; i++) { /* syms->v is sorted by name: so is v */
        const struct op_symbol *y = &syms->v[i];
        if (op_shard_of(y->name, strlen(y->name), shards) != e->shard)
            continue;
        copy_field(v[k].symbol, y->name, sizeof(v[k].symbol));
        v[k].lot = y->lot > 0 ? y->lot : 1;
        v[k].max_qty = y->max_qty < ENG_QTY_MAX ? y->max_qty : ENG_QTY_MAX;
        k++;
    }
    free(e->listed);
    e->listed = v;
    e->nlisted = n;
    e->listing = 1;
    for (uint32_t i = 0; i < e->nbooks; i++)
        book_limits(e, e->books[i]);
    return 0;
}

void eng_set_max_open(struct eng *e, uint32_t n)
{
    e->max_open = n;
}

/* --- inputs ----------------------------------------------------------------- */

/* Emits the REJECTED report of a CANCEL/AMEND (or unknown-kind) input: the
 * target id, requesting account and symbol only; the order is unchanged. */
static void reject_request(struct eng *e, const struct op_order_msg *in, const char *symbol,
                           const char *account, int reason, struct eng_reports *out)
{
    struct op_report *r = rep_new(e, out, OP_REPORT_REJECTED, in->kind);
    r->reason = (uint8_t)reason;
    r->order_id = in->order_id;
    memcpy(r->symbol, symbol, OP_SYMBOL_MAX);
    memcpy(r->account, account, OP_ACCOUNT_MAX);
}

/* Records o (arrived or resting, not in any level) as closed and returns it to the pool. */
static void gtd_drop_stale_top(struct eng *e);

static inline void close_order(struct eng *e, struct book_order *o)
{
    uint64_t id = o->id;
    int gtd = o->expire_ns != 0;
    eng_closed_add(e, id, o->account, o->book);
    book_pool_put(&e->orders, o);
    if (gtd) {
        e->gtd_live--;
        if (e->ngtd && e->gtd[0].id == id) /* the next expiry is gone: name the real one */
            gtd_drop_stale_top(e);
    }
}

/* Emits CANCELLED for o with reason, caused by an input of kind rk (its
 * state is CANCELLED from now on). */
static void rep_cancelled(struct eng *e, const struct book_order *o, const struct book *b,
                          int reason, int rk, struct eng_reports *out)
{
    struct op_report *r = rep_new(e, out, OP_REPORT_CANCELLED, rk);
    rep_order(r, e, o, b);
    r->status = OP_STATUS_CANCELLED;
    r->reason = (uint8_t)reason;
}

/* Cancels the resting order o of book b: out of the book, CANCELLED with
 * reason (input kind rk), closed. */
static void cancel_resting(struct eng *e, struct book *b, struct book_order *o, int reason, int rk,
                           struct eng_reports *out)
{
    unrest(e, b, o);
    rep_cancelled(e, o, b, reason, rk, out);
    close_order(e, o);
}

/* Cancels the open order o of book b, resting or a pending stop. */
static void cancel_open(struct eng *e, struct book *b, struct book_order *o, int reason, int rk,
                        struct eng_reports *out)
{
    if (!o->pending) {
        cancel_resting(e, b, o, reason, rk, out);
        return;
    }
    stop_remove(b, o);
    rep_cancelled(e, o, b, reason, rk, out);
    close_order(e, o);
}

/* FOK with self-trade prevention: the walk of fok_fillable order by order,
 * counting only what o could really trade (docs/engine.md, "Self-trade
 * prevention"): its own resting orders are skipped under cancel_maker (they
 * would be cancelled) and end the walk under every other mode (the taker
 * would be cancelled or decremented there). */
static int fok_fillable_stp(const struct book_side *sd, const struct book_order *o)
{
    int64_t need = o->qty;
    for (uint32_t i = sd->n; i-- > 0;) {
        const struct book_level *lv = sd->lv[i];
        if (!crosses(o, lv->price))
            return 0;
        for (const struct book_order *m = lv->head; m != NULL; m = m->next) {
            if (m->account == o->account) {
                if (o->stp != OP_STP_CANCEL_MAKER)
                    return 0;
                continue;
            }
            if (m->qty - m->filled >= need)
                return 1;
            need -= m->qty - m->filled;
        }
    }
    return 0;
}

/* Non-zero when the opposite side of b holds at least o's quantity at prices
 * o crosses (that o could trade, when self-trade prevention is on and the
 * account rests orders in b). */
static int fok_fillable(const struct book *b, const struct book_order *o)
{
    const struct book_side *sd = &b->side[book_side_of(o->side) ^ 1];
    if (o->stp != OP_STP_NONE && book_open_of(b, o->account) > 0)
        return fok_fillable_stp(sd, o);
    int64_t need = o->qty;
    for (uint32_t i = sd->n; i-- > 0;) {
        const struct book_level *lv = sd->lv[i];
        if (!crosses(o, lv->price))
            return 0;
        if (lv->open >= need)
            return 1;
        need -= lv->open;
    }
    return 0;
}

/* Emits AMENDED for o after a self-trade decrement (reason SELF_TRADE). */
static void rep_decremented(struct eng *e, const struct book_order *o, const struct book *b, int rk,
                            struct eng_reports *out)
{
    struct op_report *r = rep_new(e, out, OP_REPORT_AMENDED, rk);
    rep_order(r, e, o, b);
    r->reason = OP_REASON_SELF_TRADE;
}

/*
 * The arriving order o meets m, a resting order of its own account, and its
 * stp mode is not none (docs/engine.md, "Self-trade prevention"). Applies the
 * mode; returns 1 when o was cancelled (the caller closes it and stops), 0
 * when matching goes on.
 */
static int self_trade(struct eng *e, struct book *b, struct book_order *o, struct book_order *m,
                      int rk, struct eng_reports *out)
{
    switch (o->stp) {
    case OP_STP_CANCEL_MAKER:
        cancel_resting(e, b, m, OP_REASON_SELF_TRADE, rk, out);
        return 0;
    case OP_STP_CANCEL_BOTH:
        cancel_resting(e, b, m, OP_REASON_SELF_TRADE, rk, out);
        rep_cancelled(e, o, b, OP_REASON_SELF_TRADE, rk, out);
        return 1;
    case OP_STP_DECREMENT: {
        int64_t q = o->qty - o->filled;
        if (m->qty - m->filled < q)
            q = m->qty - m->filled;
        if (m->qty - m->filled == q) {
            cancel_resting(e, b, m, OP_REASON_SELF_TRADE, rk, out);
        } else {
            m->qty -= q;
            m->level->open -= q;
            rep_decremented(e, m, b, rk, out);
        }
        if (o->qty - o->filled == q) {
            rep_cancelled(e, o, b, OP_REASON_SELF_TRADE, rk, out);
            return 1;
        }
        o->qty -= q;
        rep_decremented(e, o, b, rk, out);
        return 0;
    }
    default: /* OP_STP_CANCEL_TAKER */
        rep_cancelled(e, o, b, OP_REASON_SELF_TRADE, rk, out);
        return 1;
    }
}

/* Matches the arriving order o (from an input of kind rk) against the
 * opposite side of b while it crosses, emitting one TRADE per maker touched,
 * at the maker's price. Returns 1 when self-trade prevention cancelled o
 * (the caller closes it), else 0. */
static int match(struct eng *e, struct book *b, struct book_order *o, int rk,
                 struct eng_reports *out)
{
    struct book_side *sd = &b->side[book_side_of(o->side) ^ 1];
    const int stp = o->stp;
    while (o->filled < o->qty && sd->n > 0) {
        struct book_level *lv = sd->lv[sd->n - 1];
        if (!crosses(o, lv->price))
            break;
        struct book_order *m = lv->head;
        if (stp != OP_STP_NONE && m->account == o->account) {
            if (self_trade(e, b, o, m, rk, out))
                return 1;
            continue;
        }
        int64_t q = o->qty - o->filled;
        if (m->qty - m->filled < q)
            q = m->qty - m->filled;
        o->filled += q;
        m->filled += q;
        lv->open -= q;

        struct op_report *r = rep_new(e, out, OP_REPORT_TRADE, rk);
        rep_order(r, e, o, b);
        r->maker_order_id = m->id;
        r->trade_price = lv->price;
        r->trade_qty = q;
        r->maker_qty = m->qty;
        r->maker_filled_qty = m->filled;
        r->maker_status = order_status(m);
        memcpy(r->maker_account, e->accounts[m->account], OP_ACCOUNT_MAX);

        int64_t px = lv->price;
        if (m->filled == m->qty) {
            unrest(e, b, m);
            close_order(e, m);
        }
        if (b->stops[BOOK_BID].n | b->stops[BOOK_ASK].n)
            check_stops(e, b, px);
    }
    return 0;
}

/*
 * The reason a NEW input is invalid, or OP_REASON_NONE: the same rules as
 * ingest's (docs/engine.md, "Validation"), checked again because anything can
 * be written into orders:{S}. b is the symbol's book when it has one, else
 * NULL (its listing is looked up). symbol, account and clordid are in's
 * strings, NUL-padded; strings_bad says one of them was not terminated.
 */
static int validate_new(const struct eng *e, const struct op_order_msg *in, int strings_bad,
                        const char *symbol, const char *account, const char *clordid,
                        const struct book *b)
{
    if (strings_bad || in->order_id == 0 || in->order_id > (uint64_t)INT64_MAX)
        return OP_REASON_MALFORMED;
    if (in->ts_ns == 0)
        return OP_REASON_BAD_TIME;
    int64_t lot = 1, max_qty = ENG_QTY_MAX;
    if (b != NULL) {
        if (!b->listed)
            return OP_REASON_UNKNOWN_SYMBOL;
        lot = b->lot, max_qty = b->max_qty;
    } else if (symbol[0] == '\0') {
        return OP_REASON_UNKNOWN_SYMBOL;
    } else if (e->listing) {
        const struct eng_listing *l = listing_find(e, symbol);
        if (l == NULL)
            return OP_REASON_UNKNOWN_SYMBOL;
        lot = l->lot, max_qty = l->max_qty;
    }
    if (account[0] == '\0')
        return OP_REASON_BAD_ACCOUNT;
    if (in->side != OP_SIDE_BUY && in->side != OP_SIDE_SELL)
        return OP_REASON_BAD_SIDE;
    if (in->type < OP_TYPE_LIMIT || in->type > OP_TYPE_STOP_LIMIT)
        return OP_REASON_BAD_TYPE;
    if (in->tif < OP_TIF_GTC || in->tif > OP_TIF_GTD ||
        (in->tif == OP_TIF_GTD && is_market(in->type)))
        return OP_REASON_BAD_TIF;
    if (in->qty < 1 || in->qty > max_qty || (lot > 1 && in->qty % lot != 0))
        return OP_REASON_BAD_QTY;
    if (is_market(in->type) ? in->price != 0 : in->price < 1)
        return OP_REASON_BAD_PRICE;
    if (is_stop(in->type) ? in->stop_price < 1 : in->stop_price != 0)
        return OP_REASON_BAD_STOP;
    if ((in->tif == OP_TIF_GTD) != (in->expire_ns != 0))
        return OP_REASON_BAD_EXPIRY;
    if (in->post_only && (is_market(in->type) || (in->tif != OP_TIF_GTC && in->tif != OP_TIF_GTD)))
        return OP_REASON_BAD_POST_ONLY;
    if (clordid[0] != '\0' && !op_client_order_id_valid(clordid))
        return OP_REASON_BAD_CLIENT_ID;
    if (in->stp > OP_STP_MAX)
        return OP_REASON_BAD_STP;
    return OP_REASON_NONE;
}

static void take(struct eng *e, struct book *b, struct book_order *o, int rk,
                 struct eng_reports *out);

static void apply_new(struct eng *e, const struct op_order_msg *in, struct eng_reports *out)
{
    char symbol[OP_SYMBOL_MAX], account[OP_ACCOUNT_MAX], clordid[OP_CLORDID_MAX];
    int bad = copy_field(symbol, in->symbol, sizeof(symbol));
    bad |= copy_field(account, in->account, sizeof(account));
    bad |= copy_field(clordid, in->client_order_id, sizeof(clordid));
    int64_t at = book_lookup(e, symbol);
    struct book *b = at >= 0 ? e->books[at] : NULL;
    int reason = validate_new(e, in, bad, symbol, account, clordid, b);
    if (reason == OP_REASON_NONE && eng_id_known(e, in->order_id))
        reason = OP_REASON_DUPLICATE_ID;
    /* An account the table lacks has no open order anywhere. */
    int64_t acct = reason == OP_REASON_NONE ? eng_account(e, account, 0) : -1;
    if (reason == OP_REASON_NONE && e->max_open != 0 && b != NULL && acct >= 0 &&
        book_open_of(b, (uint32_t)acct) >= e->max_open)
        reason = OP_REASON_TOO_MANY_OPEN_ORDERS;
    if (reason != OP_REASON_NONE) {
        struct op_report *r = rep_new(e, out, OP_REPORT_REJECTED, OP_MSG_NEW);
        r->reason = (uint8_t)reason;
        r->status = OP_STATUS_REJECTED;
        r->side = in->side;
        r->type = in->type;
        r->tif = in->tif;
        r->post_only = in->post_only;
        r->order_id = in->order_id;
        r->price = in->price;
        r->qty = in->qty;
        memcpy(r->symbol, symbol, OP_SYMBOL_MAX);
        memcpy(r->account, account, OP_ACCOUNT_MAX);
        memcpy(r->client_order_id, clordid, OP_CLORDID_MAX);
        return;
    }

    if (b == NULL)
        b = eng_book(e, symbol, 1);
    struct book_order *o = book_pool_get(&e->orders);
    o->next = o->prev = NULL;
    o->level = NULL;
    o->id = in->order_id;
    o->price = in->price;
    o->qty = in->qty;
    o->filled = 0;
    o->account = (uint32_t)(acct >= 0 ? acct : eng_account(e, account, 1));
    o->book = b->index;
    o->side = in->side;
    o->type = in->type;
    /* Market orders are IOC (a market FOK stays FOK: all or nothing at any
     * price); so are stop-market orders once triggered. */
    o->tif = is_market(in->type) && in->tif == OP_TIF_GTC ? OP_TIF_IOC : in->tif;
    o->post_only = in->post_only ? 1 : 0;
    o->stp = in->stp;
    o->pending = is_stop(in->type);
    o->expire_ns = in->expire_ns;
    o->stop_price = in->stop_price;
    memcpy(o->client_order_id, clordid, OP_CLORDID_MAX);

    struct op_report *r = rep_new(e, out, OP_REPORT_ACCEPTED, OP_MSG_NEW);
    rep_order(r, e, o, b);
    if (o->expire_ns != 0)
        eng_gtd_add(e, o);
    if (o->pending) { /* a stop: waits off the book for its trigger */
        eng_stop_add(e, o);
        return;
    }
    take(e, b, o, OP_MSG_NEW, out);
}

/*
 * The arriving order o (reported ACCEPTED or REPLACED by an input of kind
 * rk, in no level) takes liquidity from b: post-only and FOK checks,
 * matching, then the remainder rests (GTC) or is cancelled, and o is closed
 * when it does not rest.
 */
static void take(struct eng *e, struct book *b, struct book_order *o, int rk,
                 struct eng_reports *out)
{
    struct book_level *best = book_best(b, book_side_of(o->side) ^ 1);
    if (o->post_only && best != NULL && crosses(o, best->price)) {
        rep_cancelled(e, o, b, OP_REASON_POST_ONLY, rk, out);
        close_order(e, o);
        return;
    }
    if (o->tif == OP_TIF_FOK && !fok_fillable(b, o)) {
        rep_cancelled(e, o, b, OP_REASON_FOK_UNFILLED, rk, out);
        close_order(e, o);
        return;
    }
    if (match(e, b, o, rk, out)) {
        close_order(e, o); /* self-trade prevention cancelled it */
        return;
    }
    if (o->filled == o->qty) {
        close_order(e, o);
    } else if (o->tif == OP_TIF_IOC || o->tif == OP_TIF_FOK) {
        /* A market order that got nothing met an empty opposite side. */
        int why =
            is_market(o->type) && o->filled == 0 ? OP_REASON_NO_LIQUIDITY : OP_REASON_IOC_REMAINDER;
        rep_cancelled(e, o, b, why, rk, out);
        close_order(e, o);
    } else if (o->expire_ns != 0 && o->expire_ns <= e->now_ns) {
        /* A GTD order whose expiry engine time has reached does not rest. */
        rep_cancelled(e, o, b, OP_REASON_EXPIRED, rk, out);
        close_order(e, o);
    } else {
        eng_rest(e, o);
    }
}

/* Enters the triggered stop o (out of its stop list, still counted as
 * pending) as a taker: TRIGGERED, then as a new order would. */
static void enter_triggered(struct eng *e, struct book_order *o, int rk, struct eng_reports *out)
{
    struct book *b = e->books[o->book];
    b->open_of[o->account]--; /* no longer pending; counted again if it rests */
    o->pending = 0;
    struct op_report *r = rep_new(e, out, OP_REPORT_TRIGGERED, rk);
    rep_order(r, e, o, b);
    take(e, b, o, rk, out);
}

/* Copies the symbol and requesting account of a CANCEL/AMEND/CANCEL_ALL
 * input into symbol and account (NUL-padded) and checks what every request
 * needs: terminated strings, a time, an account. Returns 0, or -1 after
 * emitting the REJECTED report (MALFORMED, BAD_TIME, BAD_ACCOUNT). */
static int request_fields(struct eng *e, const struct op_order_msg *in, char symbol[OP_SYMBOL_MAX],
                          char account[OP_ACCOUNT_MAX], struct eng_reports *out)
{
    int bad = copy_field(symbol, in->symbol, OP_SYMBOL_MAX);
    bad |= copy_field(account, in->account, OP_ACCOUNT_MAX);
    if (!bad && in->ts_ns != 0 && account[0] != '\0')
        return 0;
    int reason = bad              ? OP_REASON_MALFORMED
                 : in->ts_ns == 0 ? OP_REASON_BAD_TIME
                                  : OP_REASON_BAD_ACCOUNT;
    reject_request(e, in, symbol, account, reason, out);
    return -1;
}

/*
 * Finds the open order a CANCEL/AMEND input targets, checking its symbol and
 * owner. Returns it, or NULL after emitting the REJECTED report.
 */
static struct book_order *target_of(struct eng *e, const struct op_order_msg *in,
                                    struct eng_reports *out, struct book **bookp)
{
    char symbol[OP_SYMBOL_MAX], account[OP_ACCOUNT_MAX];
    if (request_fields(e, in, symbol, account, out) != 0)
        return NULL;
    struct eng_slot *s = in->order_id ? ids_find(e, in->order_id) : NULL;
    if (s == NULL) {
        reject_request(e, in, symbol, account, OP_REASON_UNKNOWN_ORDER, out);
        return NULL;
    }
    /* An account the table lacks owns nothing: -1 matches no order. */
    int64_t acct = eng_account(e, account, 0);
    if (ref_closed(s->ref)) {
        const struct eng_closed *c = &e->ring[s->ref >> 1];
        int reason = OP_REASON_ORDER_CLOSED;
        if (memcmp(e->books[c->book]->symbol, symbol, OP_SYMBOL_MAX) != 0)
            reason = OP_REASON_UNKNOWN_ORDER; /* not an order of this symbol */
        else if (c->account != acct)
            reason = OP_REASON_NOT_OWNER;
        reject_request(e, in, symbol, account, reason, out);
        return NULL;
    }
    struct book_order *o = ref_order(s->ref);
    struct book *b = e->books[o->book];
    if (memcmp(b->symbol, symbol, OP_SYMBOL_MAX) != 0) {
        reject_request(e, in, symbol, account, OP_REASON_UNKNOWN_ORDER, out);
        return NULL;
    }
    if (o->account != acct) {
        reject_request(e, in, symbol, account, OP_REASON_NOT_OWNER, out);
        return NULL;
    }
    *bookp = b;
    return o;
}

static void apply_cancel(struct eng *e, const struct op_order_msg *in, struct eng_reports *out)
{
    struct book *b = NULL;
    struct book_order *o = target_of(e, in, out, &b);
    if (o == NULL)
        return;
    cancel_open(e, b, o, OP_REASON_USER_CANCEL, OP_MSG_CANCEL, out);
}

static void apply_amend(struct eng *e, const struct op_order_msg *in, struct eng_reports *out)
{
    struct book *b = NULL;
    struct book_order *o = target_of(e, in, out, &b);
    if (o == NULL)
        return;
    int64_t qty = in->qty != 0 ? in->qty : o->qty;
    int64_t price = in->price != 0 ? in->price : o->price;
    if ((in->qty == 0 && in->price == 0) || qty <= o->filled || qty > b->max_qty ||
        (in->qty != 0 && b->lot > 1 && qty % b->lot != 0) ||
        (is_market(o->type) ? in->price != 0 : price < 1) || (qty == o->qty && price == o->price)) {
        reject_request(e, in, b->symbol, e->accounts[o->account], OP_REASON_BAD_AMEND, out);
        return;
    }
    if (o->pending) { /* a stop off the book: nothing to lose, nothing to trade yet */
        o->qty = qty;
        o->price = price;
        struct op_report *r = rep_new(e, out, OP_REPORT_AMENDED, OP_MSG_AMEND);
        rep_order(r, e, o, b);
        return;
    }
    if (price == o->price && qty < o->qty) { /* a reduction: priority kept */
        o->level->open -= o->qty - qty;
        o->qty = qty;
        struct op_report *r = rep_new(e, out, OP_REPORT_AMENDED, OP_MSG_AMEND);
        rep_order(r, e, o, b);
        return;
    }
    /* A new price or more quantity: the order re-enters as a taker and, if
     * it rests, does so at the back of its level. */
    unrest(e, b, o);
    o->price = price;
    o->qty = qty;
    struct op_report *r = rep_new(e, out, OP_REPORT_REPLACED, OP_MSG_AMEND);
    rep_order(r, e, o, b);
    take(e, b, o, OP_MSG_AMEND, out);
}

/* Cancels every open order of account index acct in b with reason, for an
 * input of kind rk: resting ones (bids best first, then asks, each level
 * oldest first), then pending stops (buys, then sells, in trigger order);
 * returns how many. O(orders of b) when the account has orders there, O(1)
 * when not. */
static uint64_t cancel_all_in(struct eng *e, struct book *b, uint32_t acct, int reason, int rk,
                              struct eng_reports *out)
{
    uint32_t left = book_open_of(b, acct);
    uint64_t n = 0;
    for (int s = BOOK_BID; s <= BOOK_ASK && left > 0; s++) {
        struct book_side *sd = &b->side[s];
        /* Best first: removing level i (when it empties) moves only the
         * levels above it, which are done. */
        for (uint32_t i = sd->n; i-- > 0 && left > 0;) {
            for (struct book_order *o = sd->lv[i]->head, *nx; o != NULL && left > 0; o = nx) {
                nx = o->next;
                if (o->account != acct)
                    continue;
                cancel_resting(e, b, o, reason, rk, out);
                left--;
                n++;
            }
        }
    }
    for (int s = BOOK_BID; s <= BOOK_ASK && left > 0; s++) {
        struct book_stops *st = &b->stops[s];
        for (uint32_t i = 0; i < st->n && left > 0;) {
            struct book_order *o = st->v[i];
            if (o->account != acct) {
                i++;
                continue;
            }
            cancel_open(e, b, o, reason, rk, out); /* removes st->v[i] */
            left--;
            n++;
        }
    }
    return n;
}

static void apply_cancel_all(struct eng *e, const struct op_order_msg *in, struct eng_reports *out)
{
    char symbol[OP_SYMBOL_MAX], account[OP_ACCOUNT_MAX];
    if (request_fields(e, in, symbol, account, out) != 0)
        return;
    int64_t acct = eng_account(e, account, 0);
    uint64_t n = 0;
    if (acct >= 0 && symbol[0] != '\0') {
        int64_t at = book_lookup(e, symbol);
        if (at >= 0)
            n = cancel_all_in(e, e->books[at], (uint32_t)acct, OP_REASON_USER_CANCEL,
                              OP_MSG_CANCEL_ALL, out);
    } else if (acct >= 0) {
        for (uint32_t i = 0; i < e->nbooks; i++)
            n += cancel_all_in(e, e->books[i], (uint32_t)acct, OP_REASON_USER_CANCEL,
                               OP_MSG_CANCEL_ALL, out);
    }
    struct op_report *r = rep_new(e, out, OP_REPORT_CANCEL_ALL_DONE, OP_MSG_CANCEL_ALL);
    r->qty = (int64_t)n;
    memcpy(r->symbol, symbol, OP_SYMBOL_MAX);
    memcpy(r->account, account, OP_ACCOUNT_MAX);
}

/* Fires every dead-man switch whose deadline engine time has passed, in
 * order of deadline then account name: each open order of the account on
 * this shard CANCELLED DEAD_MAN, then CANCEL_ALL_DONE (reason DEAD_MAN); the
 * switch is then disarmed. */
static void fire_dead_man(struct eng *e, int rk, struct eng_reports *out)
{
    for (;;) {
        int64_t pick = -1;
        for (uint32_t a = 0; a < e->naccounts; a++) {
            uint64_t d = e->dm_deadline[a];
            if (d == 0 || e->now_ns <= d)
                continue;
            if (pick < 0 || d < e->dm_deadline[pick] ||
                (d == e->dm_deadline[pick] &&
                 memcmp(e->accounts[a], e->accounts[pick], OP_ACCOUNT_MAX) < 0))
                pick = a;
        }
        if (pick < 0)
            break;
        e->dm_deadline[pick] = 0;
        uint64_t n = 0;
        for (uint32_t i = 0; i < e->nbooks; i++)
            n += cancel_all_in(e, e->books[i], (uint32_t)pick, OP_REASON_DEAD_MAN, rk, out);
        struct op_report *r = rep_new(e, out, OP_REPORT_CANCEL_ALL_DONE, rk);
        r->reason = OP_REASON_DEAD_MAN;
        r->qty = (int64_t)n;
        memcpy(r->account, e->accounts[pick], OP_ACCOUNT_MAX);
    }
    dm_recompute(e);
}

/* What engine time has made due, before the input (of kind rk) that moved
 * it: GTD expiries in order of expiry then order id, then dead-man switches. */
static void run_due(struct eng *e, int rk, struct eng_reports *out)
{
    while (e->ngtd && e->gtd[0].at <= e->now_ns) {
        struct eng_timer t = e->gtd[0];
        gtd_pop(e);
        struct book_order *o = open_order(e, t.id);
        if (o != NULL && o->expire_ns == t.at) /* else stale: closed, or the id reused */
            cancel_open(e, e->books[o->book], o, OP_REASON_EXPIRED, rk, out);
    }
    if (e->dm_next != 0 && e->now_ns > e->dm_next)
        fire_dead_man(e, rk, out);
    gtd_drop_stale_top(e); /* and next_event_update */
}

/* Enters the stops the input's trades triggered, in order; their own trades
 * may trigger more (appended, entered in the same input). */
static void run_triggered(struct eng *e, int rk, struct eng_reports *out)
{
    while (e->trig_head < e->ntrig)
        enter_triggered(e, e->trig[e->trig_head++], rk, out);
    e->ntrig = e->trig_head = 0;
}

static void apply_tick(struct eng *e, const struct op_order_msg *in, struct eng_reports *out)
{
    static const char none[OP_ACCOUNT_MAX];
    if (in->ts_ns == 0) {
        reject_request(e, in, none, none, OP_REASON_BAD_TIME, out);
        return;
    }
    rep_new(e, out, OP_REPORT_TICK, OP_MSG_TICK);
}

static void apply_cancel_all_after(struct eng *e, const struct op_order_msg *in,
                                   struct eng_reports *out)
{
    char symbol[OP_SYMBOL_MAX], account[OP_ACCOUNT_MAX];
    if (request_fields(e, in, symbol, account, out) != 0)
        return;
    if (in->timeout_ms > ENG_DEAD_MAN_MAX_MS) {
        reject_request(e, in, symbol, account, OP_REASON_BAD_TIMEOUT, out);
        return;
    }
    uint32_t a = (uint32_t)eng_account(e, account, 1);
    eng_dead_man_set(e, a, in->timeout_ms ? e->now_ns + (uint64_t)in->timeout_ms * 1000000u : 0);
    struct op_report *r = rep_new(e, out, OP_REPORT_DEAD_MAN, OP_MSG_CANCEL_ALL_AFTER);
    r->qty = in->timeout_ms;
    memcpy(r->account, account, OP_ACCOUNT_MAX);
}

size_t eng_apply(struct eng *e, const struct op_order_msg *in, struct eng_reports *out)
{
    size_t before = out->len;
    /* Engine time never goes back (docs/engine.md, "Time"): two ingest
     * threads may stamp and write in opposite orders. */
    if (in->ts_ns > e->now_ns)
        e->now_ns = in->ts_ns;
    if (e->next_event != 0 && e->now_ns >= e->next_event)
        run_due(e, in->kind <= OP_MSG_KIND_MAX ? in->kind : 0, out);
    switch (in->kind) {
    case OP_MSG_NEW:
        apply_new(e, in, out);
        break;
    case OP_MSG_CANCEL:
        apply_cancel(e, in, out);
        break;
    case OP_MSG_AMEND:
        apply_amend(e, in, out);
        break;
    case OP_MSG_CANCEL_ALL:
        apply_cancel_all(e, in, out);
        break;
    case OP_MSG_TICK:
        apply_tick(e, in, out);
        break;
    case OP_MSG_CANCEL_ALL_AFTER:
        apply_cancel_all_after(e, in, out);
        break;
    default: {
        char symbol[OP_SYMBOL_MAX], account[OP_ACCOUNT_MAX];
        copy_field(symbol, in->symbol, sizeof(symbol));
        copy_field(account, in->account, sizeof(account));
        reject_request(e, in, symbol, account, OP_REASON_MALFORMED, out);
        break;
    }
    }
    if (e->ntrig != 0)
        run_triggered(e, in->kind, out);
    return out->len - before;
}

/* Prefetch distances of eng_apply_batch, in inputs: far enough ahead to
 * cover a DRAM miss (~100 ns) at ~100-200 ns per input, near enough that
 * the lines are still cached when used. */
#define PREFETCH_SLOT_AHEAD 16
#define PREFETCH_ORDER_AHEAD 8

void eng_prefetch(const struct eng *e, const struct op_order_msg *in, int stage)
{
    if (stage == 0) {
        __builtin_prefetch(&e->ids[id_home(e, in->order_id)]);
        return;
    }
    if (in->kind == OP_MSG_NEW || in->order_id == 0)
        return;
    /* A hint: only the slot at the id's home is looked at, not the probe
     * walk, which would repeat the lookup eng_apply does anyway (with
     * page-local homes the walk costs more than the misses it hid: bench
     * book's own mix, pipelined, 5.2-6.3M -> 6.9-7.8M ops/s). */
    const struct eng_slot *s = &e->ids[id_home(e, in->order_id)];
    if (s->id != in->order_id || ref_closed(s->ref))
        return;
    const char *o = (const char *)ref_order(s->ref);
    __builtin_prefetch(o);
    __builtin_prefetch(o + 64);
}

size_t eng_apply_batch(struct eng *e, const struct op_order_msg *in, size_t n,
                       struct eng_reports *out)
{
    size_t before = out->len;
    for (size_t i = 0; i < n; i++) {
        if (i + PREFETCH_SLOT_AHEAD < n)
            eng_prefetch(e, &in[i + PREFETCH_SLOT_AHEAD], 0);
        if (i + PREFETCH_ORDER_AHEAD < n)
            eng_prefetch(e, &in[i + PREFETCH_ORDER_AHEAD], 1);
        eng_apply(e, &in[i], out);
    }
    return out->len - before;
}

/* --- queries ----------------------------------------------------------------- */

size_t eng_depth(const struct eng *e, const char *symbol, int side, struct book_depth *out,
                 size_t max)
{
    char key[OP_SYMBOL_MAX];
    if (copy_field(key, symbol, sizeof(key)) != 0 || (side != OP_SIDE_BUY && side != OP_SIDE_SELL))
        return 0;
    int64_t at = book_lookup(e, key);
    if (at < 0)
        return 0;
    return book_depth(e->books[at], book_side_of(side), out, max);
}

uint64_t eng_open_orders(const struct eng *e)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < e->nbooks; i++)
        n += e->books[i]->orders;
    return n;
}

/* Checks b's open-order counts against a recount of its orders; 0 or -1. */
static int check_open_of(const struct eng *e, const struct book *b, char *err, size_t errlen)
{
    uint32_t *count = calloc(e->naccounts ? e->naccounts : 1, sizeof(*count));
    if (count == NULL)
        eng_oom("eng_check");
    for (int s = 0; s < 2; s++) {
        for (uint32_t j = 0; j < b->side[s].n; j++)
            for (const struct book_order *o = b->side[s].lv[j]->head; o; o = o->next)
                count[o->account]++;
        for (uint32_t j = 0; j < b->stops[s].n; j++)
            count[b->stops[s].v[j]->account]++;
    }
    int rc = 0;
    for (uint32_t a = 0; a < b->n_open_of || a < e->naccounts; a++) {
        uint32_t want = a < e->naccounts ? count[a] : 0;
        if (book_open_of(b, a) != want) {
            snprintf(err, errlen, "book '%s': account %u counted %u open orders, holds %u",
                     b->symbol, a, book_open_of(b, a), want);
            rc = -1;
            break;
        }
    }
    free(count);
    return rc;
}

/* Checks b's stop lists: trigger order, pending, off the book, in the id
 * map; adds their number to *stops and their GTD ones to *gtd. 0 or -1. */
static int check_stop_lists(const struct eng *e, const struct book *b, uint64_t *stops,
                            uint64_t *gtd, char *err, size_t errlen)
{
    for (int s = 0; s < 2; s++) {
        const struct book_stops *st = &b->stops[s];
        for (uint32_t j = 0; j < st->n; j++) {
            const struct book_order *o = st->v[j];
            const struct eng_slot *sl = ids_find(e, o->id);
            if (!o->pending || o->level != NULL || !is_stop(o->type) ||
                book_side_of(o->side) != s || o->book != b->index || sl == NULL ||
                sl->ref != (uintptr_t)o || o->account >= e->naccounts ||
                (j > 0 && !stop_before(s, st->v[j - 1], o))) {
                snprintf(err, errlen, "book '%s': stop %llu misplaced or inconsistent", b->symbol,
                         (unsigned long long)o->id);
                return -1;
            }
            *gtd += o->expire_ns != 0;
        }
        *stops += st->n;
    }
    return 0;
}

int eng_check(const struct eng *e, char *err, size_t errlen)
{
    uint64_t open = 0, levels = 0, gtd = 0;
    for (uint32_t i = 0; i < e->nbooks; i++) {
        const struct book *b = e->books[i];
        if (b->index != i || book_lookup(e, b->symbol) != i) {
            snprintf(err, errlen, "book %u: index or symbol table wrong", i);
            return -1;
        }
        if (book_check(b, err, errlen) != 0)
            return -1;
        open += b->orders;
        levels += b->side[0].n + b->side[1].n;
        for (int s = 0; s < 2; s++) {
            for (uint32_t j = 0; j < b->side[s].n; j++) {
                for (const struct book_order *o = b->side[s].lv[j]->head; o; o = o->next) {
                    const struct eng_slot *sl = ids_find(e, o->id);
                    if (sl == NULL || sl->ref != (uintptr_t)o) {
                        snprintf(err, errlen, "order %llu: not in the id map",
                                 (unsigned long long)o->id);
                        return -1;
                    }
                    gtd += o->expire_ns != 0;
                    if (o->account >= e->naccounts || o->stp > OP_STP_MAX || o->pending) {
                        snprintf(err, errlen, "order %llu: account or stp out of range",
                                 (unsigned long long)o->id);
                        return -1;
                    }
                }
            }
        }
        if (check_open_of(e, b, err, errlen) != 0 ||
            check_stop_lists(e, b, &open, &gtd, err, errlen) != 0)
            return -1;
    }
    if (e->closed_len > e->closed_max || e->closed_len > e->ring_cap ||
        e->closed_head >= (e->closed_max ? e->closed_max : 1)) {
        snprintf(err, errlen, "closed ring bounds wrong");
        return -1;
    }
    for (uint32_t k = 0; k < e->closed_len; k++) {
        uint32_t at = (e->closed_head + k) % e->closed_max;
        const struct eng_slot *sl = ids_find(e, e->ring[at].id);
        if (sl == NULL || sl->ref != (((uintptr_t)at << 1) | 1) || e->ring[at].book >= e->nbooks ||
            e->ring[at].account >= e->naccounts) {
            snprintf(err, errlen, "closed order %llu: id map or book wrong",
                     (unsigned long long)e->ring[at].id);
            return -1;
        }
    }
    uint64_t used = 0;
    for (uint64_t i = 0; i <= e->ids_mask; i++)
        used += e->ids[i].id != 0;
    if (used != e->ids_used || used != open + e->closed_len) {
        snprintf(err, errlen, "id map holds %llu ids, expected %llu", (unsigned long long)used,
                 (unsigned long long)open + e->closed_len);
        return -1;
    }
    if (gtd != e->gtd_live) {
        snprintf(err, errlen, "%llu open GTD orders, %u counted", (unsigned long long)gtd,
                 e->gtd_live);
        return -1;
    }
    if (e->orders.live != open || e->levels.live != levels) {
        snprintf(err, errlen, "pools: %zu orders / %zu levels live, books hold %llu / %llu",
                 e->orders.live, e->levels.live, (unsigned long long)open,
                 (unsigned long long)levels);
        return -1;
    }
    return 0;
}

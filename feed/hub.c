/* The feed's clients: authentication, subscriptions, positions, replays and bounded queues. */
#include "feed/hub.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "feed/book.h"
#include "feed/format.h"
#include "ingest/json.h"
#include "shared/alloc.h"
#include "shared/log.h"
#include "shared/metrics.h"
#include "shared/redis.h"
#include "shared/shard.h"

/*
 *   conn ──subs──▶ sub ─▶ sub          a connection's subscriptions
 *                   │
 *   acct["alice"] ──┴─ subs of channel "orders" of that account
 *   sym[i].trades, sym[i].book ─ subs of the public channels of symbol i
 *
 * Per shard a subscription is LIVE (it gets each entry the reader brings),
 * FETCH (it is replaying from the streams up to the live position) or
 * AHEAD (it resumed from a position this feed's reader has not reached:
 * entries up to it are skipped).
 */
enum chan { CH_ORDERS = 0, CH_TRADES, CH_BOOK };
static const char *const chan_names[] = {"orders", "trades", "book"};
enum shard_state { SH_LIVE = 0, SH_FETCH, SH_AHEAD };

/* Why 4096 buckets: a feed holds at most some thousands of accounts'
 * connections; chains stay short and the table is 32 KiB. */
#define ACCT_BUCKETS 4096
/* Why 1000 (docs/feed.md): a page of replay is read while the queue is
 * under half its bound; 1000 entries of a few reports each is well under. */
#define PAGE_ENTRIES_DEFAULT 1000
/* Why 64 KiB: a client message is a small JSON object; anything larger is
 * not one of ours (libwebsockets hands us fragments; ws.c joins them). */
#define CLIENT_TOKENS_MAX 64

struct sub;

struct acct {
    struct acct *next; /* hash chain */
    char name[OP_ACCOUNT_MAX];
    struct sub *subs;  /* orders subscriptions of the account */
    struct op_buf buf; /* reports of the entry being delivered */
    int touched;       /* in h->touched_accts */
    struct acct *tnext;
    struct op_buf batch; /* reports of the pump so far, for fully live subscribers */
    int batched;         /* in h->batch_accts */
    uint64_t batch_born; /* ms of the first entry in batch */
    struct acct *bnext;
};

struct sub {
    enum chan ch;
    struct feed_conn *conn;    /* (ref) NULL once the connection closed */
    uint32_t sym;              /* trades/book: symbol index */
    struct acct *acct;         /* orders: (ref) */
    struct sub *cnext;         /* in conn->subs */
    struct sub *knext, *kprev; /* in the account's or symbol's list */
    uint32_t nsh;              /* shards read: all (orders) or the symbol's one */
    uint32_t shard0;           /* the first shard (trades: the symbol's) */
    uint8_t *st;               /* [nsh] enum shard_state */
    struct op_sid *cur;        /* [nsh] last entry delivered (FETCH, AHEAD) */
    uint32_t nfetch;           /* shards in FETCH */
    uint32_t nahead_sh;        /* shards in AHEAD */
    int inflight;              /* a replay request is out */
    int validating;            /* the first one: nothing sent yet */
    int book_pending;          /* book: waiting for the first snapshot */
};

/* A queued message and when it was queued (monotonic ms). */
struct qslot {
    struct feed_msg *m;
    int64_t at_ms;
};

struct feed_conn {
    void *transport; /* (ref) the WebSocket */
    struct feed_conn *next, *prev;
    char account[OP_ACCOUNT_MAX];
    int authed;
    struct sub *subs;
    struct qslot *q; /* ring of queued messages */
    size_t qhead, qlen, qcap;
    size_t qbytes;
    int close_code; /* 0, 1008 or 4001 */
    const char *close_reason;
};

struct sym_state {
    struct sub *trades, *book;
    struct op_buf buf; /* trades of the entry being delivered */
    int touched;
    struct op_buf batch; /* trades of the pump so far, for live subscribers */
    int batched;         /* in h->batch_syms */
    uint64_t batch_born;
    uint32_t shard;            /* the symbol's shard, op_shard_of once at start */
    struct feed_book book_cur; /* the last book read (book_have) */
    int book_have;
    uint64_t book_seq;
};

struct feed_hub {
    struct feed_hub_config cfg;
    struct feed_hub_stats stats;
    struct op_sid *live; /* [shards] last entry delivered live */
    struct acct *accts[ACCT_BUCKETS];
    struct acct *touched_accts;
    struct sym_state *sym;  /* [syms->n] */
    uint32_t *touched_syms; /* [syms->n] */
    size_t ntouched_syms;
    struct feed_conn *conns;
    size_t nahead;            /* subscriptions with a shard AHEAD */
    struct acct *batch_accts; /* accounts with a batch to flush */
    uint32_t *batch_syms;     /* [syms->n] symbols with a batch to flush */
    size_t nbatch_syms;
    size_t batch_bytes; /* in all batches */
    struct json_parser json;
    struct op_buf tmp; /* message assembly */
    struct op_buf tmp2;
};

/* ---- messages and queues ------------------------------------------------- */

static struct feed_msg *msg_new(const char *text, size_t len, uint64_t born_ms)
{
    struct feed_msg *m = op_malloc(sizeof(*m) + FEED_MSG_PRE + len);
    if (!m) {
        op_log_fail("out_of_memory", "what=message bytes=%zu", len);
        return NULL;
    }
    m->refs = 0;
    m->len = (uint32_t)len;
    m->born_ms = born_ms;
    memcpy(feed_msg_text(m), text, len);
    return m;
}

static void msg_unref(struct feed_msg *m)
{
    if (m && --m->refs == 0)
        op_free(m);
}

/* Frees a message nobody took (refs 0). */
static void msg_drop_unused(struct feed_msg *m)
{
    if (m && m->refs == 0)
        op_free(m);
}

static void queue_clear(struct feed_hub *h, struct feed_conn *c)
{
    for (size_t i = 0; i < c->qlen; i++)
        msg_unref(c->q[(c->qhead + i) % c->qcap].m);
    h->stats.queued_bytes -= c->qbytes;
    c->qhead = c->qlen = c->qbytes = 0;
}

/* Closes c with code (its queue dropped), through the transport. */
static void conn_fail(struct feed_hub *h, struct feed_conn *c, int code, const char *reason)
{
    if (c->close_code)
        return;
    queue_clear(h, c);
    c->close_code = code;
    c->close_reason = reason;
    if (code == 4001)
        h->stats.slow_closed++;
    h->cfg.want_write(c->transport);
    h->cfg.kill(c->transport);
}

/*
 * Queues m on c (taking a reference). A client is slow, and closed with
 * 4001, when its queue would pass the byte bound, or when the oldest
 * message it has not taken yet has waited longer than the delay bound: a
 * client that reads, even behind a burst, is not closed for the burst's
 * size alone.
 */
static void enqueue(struct feed_hub *h, struct feed_conn *c, struct feed_msg *m)
{
    if (!m || !c || c->close_code)
        return;
    int64_t now = op_now_ms();
    if (c->qbytes + m->len > h->cfg.queue_max ||
        (c->qlen && h->cfg.max_delay_ms > 0 && now - c->q[c->qhead].at_ms > h->cfg.max_delay_ms)) {
        op_info("slow_consumer", "account=%s queued=%zu messages=%zu oldest_ms=%lld bound=%zu",
                c->account[0] ? c->account : "-", c->qbytes, c->qlen,
                c->qlen ? (long long)(now - c->q[c->qhead].at_ms) : 0LL, h->cfg.queue_max);
        conn_fail(h, c, 4001, "slow consumer");
        return;
    }
    if (c->qlen == c->qcap) {
        size_t cap = c->qcap ? c->qcap * 2 : 16;
        struct qslot *q = op_calloc(cap, sizeof(struct qslot));
        if (!q) {
            conn_fail(h, c, 4001, "slow consumer");
            return;
        }
        for (size_t i = 0; i < c->qlen; i++)
            q[i] = c->q[(c->qhead + i) % c->qcap];
        op_free(c->q);
        c->q = q;
        c->qcap = cap;
        c->qhead = 0;
    }
    c->q[(c->qhead + c->qlen) % c->qcap] = (struct qslot){m, now};
    c->qlen++;
    c->qbytes += m->len;
    h->stats.queued_bytes += m->len;
    m->refs++;
    if (c->qlen == 1)
        h->cfg.want_write(c->transport);
}

/* Queues the text of b on c as a message of its own. */
static void send_buf(struct feed_hub *h, struct feed_conn *c, const struct op_buf *b)
{
    struct feed_msg *m = msg_new(b->data, b->len, 0);
    enqueue(h, c, m);
    msg_drop_unused(m);
}

/* Sends {"type":"error","code":…,"message":…[,"channel":…][,"symbol":…]}. */
static void send_error(struct feed_hub *h, struct feed_conn *c, const char *code, const char *msg,
                       const struct sub *s, const char *channel, const char *symbol)
{
    struct op_buf *b = &h->tmp2;
    op_buf_reset(b);
    op_buf_printf(b, "{\"type\":\"error\",\"code\":\"%s\",\"message\":", code);
    feed_json_str(b, msg, strlen(msg));
    if (s) {
        channel = chan_names[s->ch];
        symbol = s->ch != CH_ORDERS ? h->cfg.syms->v[s->sym].name : NULL;
    }
    if (channel) {
        op_buf_printf(b, ",\"channel\":");
        feed_json_str(b, channel, strlen(channel));
    }
    if (symbol) {
        op_buf_printf(b, ",\"symbol\":");
        feed_json_str(b, symbol, strlen(symbol));
    }
    op_buf_append(b, "}", 1);
    send_buf(h, c, b);
}

/* ---- accounts and positions ------------------------------------------------ */

static struct acct *acct_find(struct feed_hub *h, const char *name, int create)
{
    uint32_t b = op_fnv1a32(name, strlen(name)) % ACCT_BUCKETS;
    for (struct acct *a = h->accts[b]; a; a = a->next)
        if (strcmp(a->name, name) == 0)
            return a;
    if (!create)
        return NULL;
    struct acct *a = op_calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    snprintf(a->name, sizeof(a->name), "%s", name);
    op_buf_init(&a->buf);
    op_buf_init(&a->batch);
    a->next = h->accts[b];
    h->accts[b] = a;
    return a;
}

/* The position of s: for each shard it reads, the live id or its own. */
static void put_pos(struct feed_hub *h, struct op_buf *b, const struct sub *s)
{
    for (uint32_t i = 0; i < s->nsh; i++) {
        uint32_t shard = s->shard0 + i;
        if (i)
            op_buf_append(b, ",", 1);
        feed_format_pos_part(b, shard, s->st[i] == SH_LIVE ? h->live[shard] : s->cur[i]);
    }
}

/*
 * Parses a position for s: "S:ms-seq" per shard s reads, each exactly
 * once, comma-separated, into s->cur. Returns 0, or -1 when it is not one.
 */
static int parse_pos(struct sub *s, const char *p)
{
    uint8_t *seen = s->st; /* reused as "seen" marks, reset by the caller */
    memset(seen, 0, s->nsh);
    uint32_t n = 0;
    while (*p) {
        char *end = NULL;
        if (*p < '0' || *p > '9')
            return -1;
        unsigned long shard = strtoul(p, &end, 10);
        if (!end || *end != ':' || shard < s->shard0 || shard >= s->shard0 + s->nsh)
            return -1;
        const char *id = end + 1;
        const char *stop = strchr(id, ',');
        size_t len = stop ? (size_t)(stop - id) : strlen(id);
        uint32_t i = (uint32_t)shard - s->shard0;
        if (seen[i] || op_sid_parse(id, len, &s->cur[i]) != 0)
            return -1;
        seen[i] = 1;
        n++;
        p = id + len;
        if (*p == ',') {
            p++;
            if (!*p)
                return -1;
        }
    }
    return n == s->nsh ? 0 : -1;
}

/* Sends {"type":"subscribed","channel":…[,"symbol":…][,"pos":…]}: where s
 * starts (book subscriptions have no position). */
static void send_subscribed(struct feed_hub *h, struct sub *s)
{
    struct op_buf *b = &h->tmp2;
    op_buf_reset(b);
    op_buf_printf(b, "{\"type\":\"subscribed\",\"channel\":\"%s\"", chan_names[s->ch]);
    if (s->ch != CH_ORDERS)
        op_buf_printf(b, ",\"symbol\":\"%s\"", h->cfg.syms->v[s->sym].name);
    if (s->ch != CH_BOOK) {
        op_buf_printf(b, ",\"pos\":\"");
        put_pos(h, b, s);
        op_buf_append(b, "\"", 1);
    }
    op_buf_append(b, "}", 1);
    send_buf(h, s->conn, b);
}

/* ---- building the messages of one entry ------------------------------------ */

/* Appends to the account builders and symbol builders what e holds. */
static void collect(struct feed_hub *h, const struct feed_entry *e, const struct acct *only_acct,
                    uint32_t only_sym, int trades_only)
{
    for (uint32_t i = 0; i < e->n; i++) {
        const struct op_report *r = &e->rep[i];
        if (r->kind == OP_REPORT_TICK)
            continue;
        const struct op_symbol *sym =
            op_symtab_find(h->cfg.syms, r->symbol, strnlen(r->symbol, sizeof(r->symbol)));
        if (!trades_only) {
            for (int leg = FEED_LEG_ORDER; leg <= FEED_LEG_MAKER; leg++) {
                const char *name = feed_leg_account(r, (enum feed_leg)leg);
                if (!name[0])
                    continue;
                struct acct *a =
                    only_acct
                        ? (strcmp(only_acct->name, name) == 0 ? (struct acct *)only_acct : NULL)
                        : acct_find(h, name, 0);
                if (!a || !a->subs)
                    continue;
                if (!a->touched) {
                    a->touched = 1;
                    a->tnext = h->touched_accts;
                    h->touched_accts = a;
                    op_buf_reset(&a->buf);
                } else {
                    op_buf_append(&a->buf, ",", 1);
                }
                feed_format_report(&a->buf, r, (enum feed_leg)leg, sym);
            }
        }
        if (!sym)
            continue;
        uint32_t si = (uint32_t)(sym - h->cfg.syms->v);
        if (trades_only && si != only_sym)
            continue;
        struct sym_state *ss = &h->sym[si];
        if (!trades_only && ss->book && !ss->touched)
            feed_source_book_touch(h->cfg.src, si);
        if (r->kind != OP_REPORT_TRADE || !ss->trades)
            continue;
        if (!ss->touched) {
            ss->touched = 1;
            h->touched_syms[h->ntouched_syms++] = si;
            op_buf_reset(&ss->buf);
        } else {
            op_buf_append(&ss->buf, ",", 1);
        }
        feed_format_trade(&ss->buf, r, sym);
    }
}

/* The "orders" message of account a's reports for s (its own position). */
static struct feed_msg *orders_msg(struct feed_hub *h, const struct sub *s,
                                   const struct op_buf *reports, uint64_t born_ms)
{
    struct op_buf *b = &h->tmp;
    op_buf_reset(b);
    op_buf_printf(b, "{\"type\":\"orders\",\"pos\":\"");
    put_pos(h, b, s);
    op_buf_printf(b, "\",\"reports\":[");
    op_buf_append(b, reports->data, reports->len);
    if (op_buf_append(b, "]}", 2) != 0)
        return NULL;
    return msg_new(b->data, b->len, born_ms);
}

/* The "trades" message of symbol si's builder, at position shard:id. */
static struct feed_msg *trades_msg(struct feed_hub *h, uint32_t si, uint32_t shard,
                                   struct op_sid id, const struct op_buf *trades, uint64_t born_ms)
{
    struct op_buf *b = &h->tmp;
    op_buf_reset(b);
    op_buf_printf(b, "{\"type\":\"trades\",\"symbol\":\"%s\",\"pos\":\"", h->cfg.syms->v[si].name);
    feed_format_pos_part(b, shard, id);
    op_buf_printf(b, "\",\"trades\":[");
    op_buf_append(b, trades->data, trades->len);
    if (op_buf_append(b, "]}", 2) != 0)
        return NULL;
    return msg_new(b->data, b->len, born_ms);
}

/* Resets the builders collect() touched. */
static void collect_done(struct feed_hub *h)
{
    for (struct acct *a = h->touched_accts; a; a = a->tnext)
        a->touched = 0;
    h->touched_accts = NULL;
    for (size_t i = 0; i < h->ntouched_syms; i++)
        h->sym[h->touched_syms[i]].touched = 0;
    h->ntouched_syms = 0;
}

/* ---- replays ------------------------------------------------------------- */

/* Asks the source for the next pages of every FETCH shard of s, unless one
 * is in flight or s's connection is over half its queue bound. */
static void fetch_more(struct feed_hub *h, struct sub *s)
{
    if (s->inflight || !s->nfetch || !s->conn || s->conn->close_code ||
        s->conn->qbytes > h->cfg.queue_max / 2)
        return;
    struct feed_fetch *f = op_calloc(1, sizeof(*f) + s->nfetch * sizeof(struct feed_page));
    if (!f) {
        op_log_fail("out_of_memory", "what=fetch");
        return;
    }
    f->owner = s;
    for (uint32_t i = 0; i < s->nsh; i++)
        if (s->st[i] == SH_FETCH) {
            f->pages[f->n].shard = s->shard0 + i;
            f->pages[f->n].from = s->cur[i];
            f->n++;
        }
    s->inflight = 1;
    feed_source_fetch(h->cfg.src, f);
}

static void sub_free(struct feed_hub *h, struct sub *s);

/*
 * Delivers a replay page of shard p->shard of s: the entries after
 * s->cur[i] up to the live position. The shard then goes LIVE once it
 * caught up, or AHEAD when its position is beyond what this feed's reader
 * has delivered (another feed instance was further on): the reader's
 * entries up to it are skipped. Returns 0, or -1 when entries between the
 * position and the live one are gone from the stream (a gap).
 */
static int replay_page(struct feed_hub *h, struct sub *s, const struct feed_page *p)
{
    uint32_t i = p->shard - s->shard0;
    uint32_t shard = p->shard;
    int beyond = 0; /* the page reached past the live position */
    for (const struct feed_entry *e = p->entries; e; e = e->next) {
        if (op_sid_cmp(e->id, h->live[shard]) > 0) {
            beyond = 1;
            break; /* the live reader has not delivered it yet: it will */
        }
        if (op_sid_cmp(e->id, s->cur[i]) <= 0)
            continue;
        collect(h, e, s->acct, s->sym, s->ch == CH_TRADES);
        s->cur[i] = e->id;
        struct feed_msg *m = NULL;
        if (s->ch == CH_ORDERS && s->acct->touched)
            m = orders_msg(h, s, &s->acct->buf, e->id.ms);
        else if (s->ch == CH_TRADES && h->sym[s->sym].touched)
            m = trades_msg(h, s->sym, shard, e->id, &h->sym[s->sym].buf, e->id.ms);
        collect_done(h);
        if (m) {
            enqueue(h, s->conn, m);
            msg_drop_unused(m);
        }
    }
    int c = op_sid_cmp(s->cur[i], h->live[shard]);
    if (c > 0) {
        s->st[i] = SH_AHEAD;
        h->nahead++;
        s->nahead_sh++;
        s->nfetch--;
    } else if (c == 0) {
        s->st[i] = SH_LIVE;
        s->nfetch--;
    } else if (beyond) {
        /* Behind the live position, yet the next entry the stream holds is
         * beyond it, although the reader read it: what lay between was
         * trimmed since. (A page that simply ended before the live position
         * was read before the reader got further: the next page follows,
         * and its XINFO check sees a trim.) */
        return -1;
    }
    return 0;
}

/* The answer to a replay request. */
static void on_fetch(struct feed_hub *h, struct feed_fetch *f)
{
    struct sub *s = f->owner;
    s->inflight = 0;
    if (!s->conn) {
        sub_free(h, s);
        return;
    }
    struct feed_conn *c = s->conn;
    enum feed_page_status worst = FEED_PAGE_OK;
    for (uint32_t k = 0; k < f->n; k++)
        if (f->pages[k].status > worst)
            worst = f->pages[k].status;
    if (worst != FEED_PAGE_OK && (s->validating || worst != FEED_PAGE_ERROR)) {
        if (worst == FEED_PAGE_GAP) {
            h->stats.gaps++;
            send_error(h, c, "gap",
                       "the streams no longer hold everything after this position: read the "
                       "state over REST, then subscribe without from",
                       s, NULL, NULL);
        } else if (worst == FEED_PAGE_BAD_POSITION) {
            send_error(h, c, "bad_position", "position is beyond the end of a stream", s, NULL,
                       NULL);
        } else {
            send_error(h, c, "unavailable", "redis is unavailable: subscribe again", s, NULL, NULL);
        }
        sub_free(h, s);
        return;
    }
    if (s->validating) {
        s->validating = 0;
        h->stats.resumes++;
        send_subscribed(h, s);
    }
    for (uint32_t k = 0; k < f->n; k++)
        if (f->pages[k].status == FEED_PAGE_OK && replay_page(h, s, &f->pages[k]) != 0) {
            h->stats.gaps++;
            send_error(h, c, "gap",
                       "the streams no longer hold everything after this position: read the "
                       "state over REST, then subscribe without from",
                       s, NULL, NULL);
            sub_free(h, s);
            return;
        }
    fetch_more(h, s);
}

/* ---- live delivery -------------------------------------------------------- */

/* Why 256 KiB: a pump's reports are sent as one message per account and
 * symbol (fewer, larger writes when the feed is busy); past this many bytes
 * the batch is sent at once, so that no message grows without bound. */
#define BATCH_MAX ((size_t)256 * 1024)

/* 1 when s receives every shard it reads live: it can take a batch. */
static int fully_live(const struct sub *s)
{
    return !s->validating && !s->nfetch && !s->nahead_sh;
}

/*
 * Sends the batches the pump built so far: one "orders" message per
 * account, shared by its fully live subscribers (they share the live
 * position), one "trades" message per symbol, shared by its live
 * subscribers; both at the live position.
 */
static void flush_batches(struct feed_hub *h)
{
    for (struct acct *a = h->batch_accts; a; a = a->bnext) {
        struct feed_msg *m = NULL;
        for (struct sub *s = a->subs; s; s = s->knext) {
            if (!fully_live(s))
                continue;
            if (!m && !(m = orders_msg(h, s, &a->batch, a->batch_born)))
                break;
            enqueue(h, s->conn, m);
        }
        msg_drop_unused(m);
        op_buf_reset(&a->batch);
        a->batched = 0;
    }
    h->batch_accts = NULL;
    for (size_t k = 0; k < h->nbatch_syms; k++) {
        uint32_t si = h->batch_syms[k];
        struct sym_state *ss = &h->sym[si];
        uint32_t shard = ss->shard;
        struct feed_msg *m = NULL;
        for (struct sub *s = ss->trades; s; s = s->knext) {
            if (!fully_live(s))
                continue;
            if (!m && !(m = trades_msg(h, si, shard, h->live[shard], &ss->batch, ss->batch_born)))
                break;
            enqueue(h, s->conn, m);
        }
        msg_drop_unused(m);
        op_buf_reset(&ss->batch);
        ss->batched = 0;
    }
    h->nbatch_syms = 0;
    h->batch_bytes = 0;
}

/* Shards of subscriptions that are AHEAD become LIVE once the reader
 * passes their position: the batches so far (which they must not get) are
 * sent first. */
static void ahead_check(struct feed_hub *h, uint32_t shard, struct op_sid id)
{
    int flushed = 0;
    for (struct feed_conn *c = h->conns; c; c = c->next)
        for (struct sub *s = c->subs; s; s = s->cnext) {
            if (shard < s->shard0 || shard >= s->shard0 + s->nsh)
                continue;
            uint32_t i = shard - s->shard0;
            if (s->st[i] == SH_AHEAD && op_sid_cmp(id, s->cur[i]) > 0) {
                if (!flushed) {
                    flush_batches(h);
                    flushed = 1;
                }
                s->st[i] = SH_LIVE;
                s->nahead_sh--;
                h->nahead--;
            }
        }
}

/* Appends the builder `from` (one entry's JSON objects) to batch. */
static void batch_add(struct feed_hub *h, struct op_buf *batch, const struct op_buf *from)
{
    if (batch->len)
        op_buf_append(batch, ",", 1);
    op_buf_append(batch, from->data, from->len);
    h->batch_bytes += from->len + 1;
}

/* Entries of shard were trimmed before the reader read them: every
 * subscription that gets shard live is told "gap" and ends (one replaying
 * it finds the gap on its own). */
static void on_hole(struct feed_hub *h, uint32_t shard)
{
    flush_batches(h); /* what came before the hole is good */
    for (struct feed_conn *c = h->conns; c; c = c->next) {
        struct sub *s = c->subs;
        while (s) {
            struct sub *next = s->cnext;
            if (s->ch != CH_BOOK && shard >= s->shard0 && shard < s->shard0 + s->nsh &&
                s->st[shard - s->shard0] != SH_FETCH) {
                h->stats.gaps++;
                send_error(h, c, "gap",
                           "the feed fell behind the streams' trimming and missed entries: read "
                           "the state over REST, then subscribe again",
                           s, NULL, NULL);
                sub_free(h, s);
            }
            s = next;
        }
    }
}

/*
 * One live entry: its reports go into the pump's batches for the fully
 * live subscribers, and, for a subscription still replaying another shard,
 * into a message of its own at its own position.
 */
static void deliver_live(struct feed_hub *h, const struct feed_entry *e)
{
    uint32_t shard = e->shard;
    if (e->hole) {
        if (shard < h->cfg.shards)
            on_hole(h, shard);
        return;
    }
    if (shard >= h->cfg.shards || op_sid_cmp(e->id, h->live[shard]) <= 0)
        return;
    if (h->nahead)
        ahead_check(h, shard, e->id);
    collect(h, e, NULL, 0, 0);
    h->live[shard] = e->id;
    for (struct acct *a = h->touched_accts; a; a = a->tnext) {
        int any_full = 0;
        for (struct sub *s = a->subs; s; s = s->knext) {
            if (fully_live(s)) {
                any_full = 1;
                continue;
            }
            if (s->validating || s->st[shard] != SH_LIVE)
                continue;
            struct feed_msg *m = orders_msg(h, s, &a->buf, e->id.ms);
            enqueue(h, s->conn, m);
            msg_drop_unused(m);
        }
        if (!any_full)
            continue;
        if (!a->batched) {
            a->batched = 1;
            a->batch_born = e->id.ms;
            a->bnext = h->batch_accts;
            h->batch_accts = a;
        }
        batch_add(h, &a->batch, &a->buf);
    }
    for (size_t k = 0; k < h->ntouched_syms; k++) {
        uint32_t si = h->touched_syms[k];
        struct sym_state *ss = &h->sym[si];
        if (!ss->batched) {
            ss->batched = 1;
            ss->batch_born = e->id.ms;
            h->batch_syms[h->nbatch_syms++] = si;
        }
        batch_add(h, &ss->batch, &ss->buf);
    }
    collect_done(h);
    if (h->batch_bytes > BATCH_MAX)
        flush_batches(h);
}

/* ---- books ---------------------------------------------------------------- */

static void send_snapshot(struct feed_hub *h, struct sub *s)
{
    struct sym_state *ss = &h->sym[s->sym];
    const struct op_symbol *sym = &h->cfg.syms->v[s->sym];
    struct op_buf *b = &h->tmp;
    op_buf_reset(b);
    if (feed_book_snapshot_json(&ss->book_cur, sym->name, sym->tick, ss->book_seq, b) != 0)
        return;
    send_buf(h, s->conn, b);
    s->book_pending = 0;
}

static void on_book(struct feed_hub *h, const struct feed_book_text *t)
{
    if (t->sym >= h->cfg.syms->n)
        return;
    struct sym_state *ss = &h->sym[t->sym];
    const struct op_symbol *sym = &h->cfg.syms->v[t->sym];
    if (!ss->book)
        return; /* nobody watches it any more */
    struct feed_book nb;
    feed_book_init(&nb);
    char err[160] = "";
    static const char empty[] = "{\"symbol\":\"\",\"ts\":\"\",\"bids\":[],\"asks\":[]}";
    const char *text = t->found ? t->text : empty;
    size_t len = t->found ? t->len : sizeof(empty) - 1;
    if (feed_book_parse(&nb, text, len, sym->tick, err, sizeof(err)) != 0) {
        op_warn("bad_book", "symbol=%s err=%s", sym->name, err);
        feed_book_release(&nb);
        return;
    }
    if (ss->book_have) {
        struct op_buf *b = &h->tmp;
        op_buf_reset(b);
        int changed =
            feed_book_update_json(&ss->book_cur, &nb, sym->name, sym->tick, ss->book_seq + 1, b);
        if (changed == 1) {
            ss->book_seq++;
            h->stats.book_updates++;
            struct feed_msg *m = msg_new(b->data, b->len, 0);
            for (struct sub *s = ss->book; s; s = s->knext)
                if (!s->book_pending)
                    enqueue(h, s->conn, m);
            msg_drop_unused(m);
        }
        feed_book_release(&ss->book_cur);
    } else {
        ss->book_seq++;
    }
    ss->book_cur = nb;
    ss->book_have = 1;
    for (struct sub *s = ss->book; s; s = s->knext)
        if (s->book_pending)
            send_snapshot(h, s);
}

/* ---- subscriptions -------------------------------------------------------- */

static void list_insert(struct sub **head, struct sub *s)
{
    s->kprev = NULL;
    s->knext = *head;
    if (*head)
        (*head)->kprev = s;
    *head = s;
}

static void list_remove(struct sub **head, struct sub *s)
{
    if (s->kprev)
        s->kprev->knext = s->knext;
    else if (*head == s)
        *head = s->knext;
    if (s->knext)
        s->knext->kprev = s->kprev;
    s->knext = s->kprev = NULL;
}

/* Unlinks s from its connection and lists, and frees it — or, while a
 * replay request is out, leaves it for on_fetch to free. */
static void sub_free(struct feed_hub *h, struct sub *s)
{
    if (s->conn) {
        struct sub **pp = &s->conn->subs;
        while (*pp && *pp != s)
            pp = &(*pp)->cnext;
        if (*pp)
            *pp = s->cnext;
        s->conn = NULL;
        h->stats.subscriptions--;
        h->nahead -= s->nahead_sh;
        s->nahead_sh = 0;
        if (s->ch == CH_ORDERS) {
            list_remove(&s->acct->subs, s);
        } else if (s->ch == CH_TRADES) {
            list_remove(&h->sym[s->sym].trades, s);
        } else {
            struct sym_state *ss = &h->sym[s->sym];
            list_remove(&ss->book, s);
            if (!ss->book) {
                feed_source_book_watch(h->cfg.src, s->sym, 0);
                if (ss->book_have)
                    feed_book_release(&ss->book_cur);
                ss->book_have = 0;
            }
        }
    }
    if (s->inflight)
        return;
    op_free(s->st);
    op_free(s->cur);
    op_free(s);
}

static struct sub *find_sub(struct feed_conn *c, enum chan ch, uint32_t sym)
{
    for (struct sub *s = c->subs; s; s = s->cnext)
        if (s->ch == ch && (ch == CH_ORDERS || s->sym == sym))
            return s;
    return NULL;
}

/*
 * One client message (len bytes of text), by its grammar:
 *   {"op":"auth","key":K}
 *   {"op":"subscribe"|"unsubscribe","channel":"orders"|"trades"|"book"
 *    [,"symbol":S][,"from":P]}
 * Answers on c's queue: authed / subscribed / unsubscribed, or an error
 * message that changes nothing (a bad key closes c with 1008 instead).
 */
static void handle(struct feed_hub *h, struct feed_conn *c, const char *text, size_t len)
{
    static const char *const allowed[] = {"op", "key", "channel", "symbol", "from", NULL};
    struct json_doc d;
    const char *err = NULL;
    if (json_parse_with(&h->json, &d, text, len, CLIENT_TOKENS_MAX, &err) != 0 ||
        d.toks[0].type != JSON_OBJECT) {
        send_error(h, c, "bad_request", err ? err : "message is not a JSON object", NULL, NULL,
                   NULL);
        return;
    }
    const char *bad = NULL;
    bool dup = false;
    if (json_object_check(&d, 0, allowed, &bad, &dup) != 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "%s field '%s'", dup ? "duplicate" : "unknown", bad);
        send_error(h, c, "bad_request", msg, NULL, NULL, NULL);
        return;
    }
    char op[16] = "", channel[16] = "", symbol[OP_SYMBOL_MAX + 1] = "", key[OP_APIKEY_MAX + 1] = "";
    char from[4096] = "";
    int t;
    if ((t = json_get(&d, 0, "op")) < 0 || json_string(&d, t, op, sizeof(op)) < 0) {
        send_error(h, c, "bad_request", "'op' must be auth, subscribe or unsubscribe", NULL, NULL,
                   NULL);
        return;
    }
    if (strcmp(op, "auth") == 0) {
        if ((t = json_get(&d, 0, "key")) < 0 || json_string(&d, t, key, sizeof(key)) < 0) {
            send_error(h, c, "bad_request", "'key' must be an API key string", NULL, NULL, NULL);
            return;
        }
        const struct op_apikey *k = op_apikeys_lookup(h->cfg.keys, key, strlen(key));
        if (!k || (c->authed && strcmp(c->account, k->account) != 0)) {
            h->stats.auth_failed++;
            conn_fail(h, c, 1008, k ? "another account" : "bad api key");
            return;
        }
        c->authed = 1;
        snprintf(c->account, sizeof(c->account), "%s", k->account);
        struct op_buf *b = &h->tmp2;
        op_buf_reset(b);
        op_buf_printf(b, "{\"type\":\"authed\",\"account\":");
        feed_json_str(b, c->account, strlen(c->account));
        op_buf_append(b, "}", 1);
        send_buf(h, c, b);
        return;
    }
    int sub_op = strcmp(op, "subscribe") == 0, unsub_op = strcmp(op, "unsubscribe") == 0;
    if (!sub_op && !unsub_op) {
        send_error(h, c, "bad_request", "'op' must be auth, subscribe or unsubscribe", NULL, NULL,
                   NULL);
        return;
    }
    enum chan ch;
    if ((t = json_get(&d, 0, "channel")) < 0 || json_string(&d, t, channel, sizeof(channel)) < 0) {
        send_error(h, c, "bad_request", "'channel' must be orders, trades or book", NULL, NULL,
                   NULL);
        return;
    }
    if (strcmp(channel, "orders") == 0)
        ch = CH_ORDERS;
    else if (strcmp(channel, "trades") == 0)
        ch = CH_TRADES;
    else if (strcmp(channel, "book") == 0)
        ch = CH_BOOK;
    else {
        send_error(h, c, "unknown_channel", "'channel' must be orders, trades or book", NULL,
                   channel, NULL);
        return;
    }
    uint32_t si = 0;
    if (ch != CH_ORDERS) {
        const struct op_symbol *sym = NULL;
        if ((t = json_get(&d, 0, "symbol")) < 0 || json_string(&d, t, symbol, sizeof(symbol)) < 0) {
            send_error(h, c, "bad_request", "'symbol' is required for this channel", NULL, channel,
                       NULL);
            return;
        }
        if (!(sym = op_symtab_find(h->cfg.syms, symbol, strlen(symbol)))) {
            send_error(h, c, "unknown_symbol", "symbol is not listed", NULL, channel, symbol);
            return;
        }
        si = (uint32_t)(sym - h->cfg.syms->v);
    }
    struct sub *old = find_sub(c, ch, si);
    if (unsub_op) {
        if (!old) {
            send_error(h, c, "not_subscribed", "no such subscription", NULL, channel,
                       ch != CH_ORDERS ? symbol : NULL);
            return;
        }
        struct op_buf *b = &h->tmp2;
        op_buf_reset(b);
        op_buf_printf(b, "{\"type\":\"unsubscribed\",\"channel\":\"%s\"", channel);
        if (ch != CH_ORDERS)
            op_buf_printf(b, ",\"symbol\":\"%s\"", symbol);
        op_buf_append(b, "}", 1);
        sub_free(h, old);
        send_buf(h, c, b);
        return;
    }
    if (old) {
        send_error(h, c, "already_subscribed", "already subscribed", NULL, channel,
                   ch != CH_ORDERS ? symbol : NULL);
        return;
    }
    if (ch == CH_ORDERS && !c->authed) {
        send_error(h, c, "auth_required", "send {\"op\":\"auth\",\"key\":…} first", NULL, channel,
                   NULL);
        return;
    }
    int has_from = (t = json_get(&d, 0, "from")) >= 0;
    if (has_from && (ch == CH_BOOK || json_string(&d, t, from, sizeof(from)) < 0)) {
        send_error(h, c, ch == CH_BOOK ? "bad_request" : "bad_position",
                   ch == CH_BOOK ? "the book channel has no resume: it starts with a snapshot"
                                 : "'from' must be a position string",
                   NULL, channel, ch != CH_ORDERS ? symbol : NULL);
        return;
    }
    struct sub *s = op_calloc(1, sizeof(*s));
    if (s) {
        s->ch = ch;
        s->sym = si;
        s->nsh = ch == CH_ORDERS ? h->cfg.shards : 1;
        s->shard0 = ch == CH_ORDERS ? 0 : h->sym[si].shard;
        s->st = op_calloc(s->nsh, 1);
        s->cur = op_calloc(s->nsh, sizeof(*s->cur));
        if (ch == CH_ORDERS)
            s->acct = acct_find(h, c->account, 1);
    }
    if (!s || !s->st || !s->cur || (ch == CH_ORDERS && !s->acct)) {
        if (s) {
            op_free(s->st);
            op_free(s->cur);
            op_free(s);
        }
        send_error(h, c, "unavailable", "out of memory", NULL, channel, NULL);
        return;
    }
    if (has_from && parse_pos(s, from) != 0) {
        op_free(s->st);
        op_free(s->cur);
        op_free(s);
        send_error(h, c, "bad_position",
                   ch == CH_ORDERS ? "want S:ms-seq for every shard, comma-separated"
                                   : "want S:ms-seq for the symbol's shard",
                   NULL, channel, ch != CH_ORDERS ? symbol : NULL);
        return;
    }
    s->conn = c;
    s->cnext = c->subs;
    c->subs = s;
    h->stats.subscriptions++;
    if (ch == CH_ORDERS)
        list_insert(&s->acct->subs, s);
    else if (ch == CH_TRADES)
        list_insert(&h->sym[si].trades, s);
    else {
        struct sym_state *ss = &h->sym[si];
        int first = ss->book == NULL;
        list_insert(&ss->book, s);
        s->book_pending = 1;
        if (first)
            feed_source_book_watch(h->cfg.src, si, 1);
    }
    if (has_from) {
        /* Replay first; "subscribed" is sent once the position is known good. */
        for (uint32_t i = 0; i < s->nsh; i++)
            s->st[i] = SH_FETCH;
        s->nfetch = s->nsh;
        s->validating = 1;
        fetch_more(h, s);
        if (!s->inflight) {
            send_error(h, c, "unavailable", "out of memory", s, NULL, NULL);
            sub_free(h, s);
        }
        return;
    }
    send_subscribed(h, s);
    if (ch == CH_BOOK && h->sym[si].book_have)
        send_snapshot(h, s);
}

/* ---- the transport's calls ------------------------------------------------ */

struct feed_hub *feed_hub_new(const struct feed_hub_config *cfg)
{
    struct feed_hub *h = op_calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->cfg = *cfg;
    size_t nsym = cfg->syms->n ? cfg->syms->n : 1;
    h->live = op_calloc(cfg->shards, sizeof(*h->live));
    h->sym = op_calloc(nsym, sizeof(*h->sym));
    h->touched_syms = op_calloc(nsym, sizeof(*h->touched_syms));
    h->batch_syms = op_calloc(nsym, sizeof(*h->batch_syms));
    json_parser_init(&h->json);
    op_buf_init(&h->tmp);
    op_buf_init(&h->tmp2);
    if (!h->live || !h->sym || !h->touched_syms || !h->batch_syms ||
        json_parser_reserve(&h->json, CLIENT_TOKENS_MAX) != 0) {
        feed_hub_free(h);
        return NULL;
    }
    for (size_t i = 0; i < nsym; i++) {
        op_buf_init(&h->sym[i].buf);
        op_buf_init(&h->sym[i].batch);
        if (i < cfg->syms->n)
            h->sym[i].shard =
                op_shard_of(cfg->syms->v[i].name, strlen(cfg->syms->v[i].name), cfg->shards);
        feed_book_init(&h->sym[i].book_cur);
    }
    for (uint32_t i = 0; i < cfg->shards; i++)
        h->live[i] = feed_source_start_id(cfg->src, i);
    return h;
}

void feed_hub_free(struct feed_hub *h)
{
    if (!h)
        return;
    while (h->conns)
        feed_hub_close(h, h->conns);
    for (size_t b = 0; b < ACCT_BUCKETS; b++)
        while (h->accts[b]) {
            struct acct *a = h->accts[b];
            h->accts[b] = a->next;
            op_buf_release(&a->buf);
            op_buf_release(&a->batch);
            op_free(a);
        }
    if (h->sym)
        for (size_t i = 0; i < (h->cfg.syms->n ? h->cfg.syms->n : 1); i++) {
            op_buf_release(&h->sym[i].buf);
            op_buf_release(&h->sym[i].batch);
            if (h->sym[i].book_have)
                feed_book_release(&h->sym[i].book_cur);
        }
    json_parser_release(&h->json);
    op_buf_release(&h->tmp);
    op_buf_release(&h->tmp2);
    op_free(h->live);
    op_free(h->sym);
    op_free(h->touched_syms);
    op_free(h->batch_syms);
    op_free(h);
}

struct feed_conn *feed_hub_open(struct feed_hub *h, void *transport)
{
    struct feed_conn *c = op_calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->transport = transport;
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->stats.connections++;
    h->stats.clients++;
    return c;
}

void feed_hub_close(struct feed_hub *h, struct feed_conn *c)
{
    if (!c)
        return;
    while (c->subs)
        sub_free(h, c->subs);
    queue_clear(h, c);
    op_free(c->q);
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    h->stats.clients--;
    op_free(c);
}

void feed_hub_text(struct feed_hub *h, struct feed_conn *c, const char *text, size_t len)
{
    if (c->close_code)
        return;
    handle(h, c, text, len);
}

int feed_hub_next(struct feed_hub *h, struct feed_conn *c, struct feed_msg **m, const char **reason)
{
    (void)h;
    *m = NULL;
    if (c->close_code) {
        *reason = c->close_reason;
        return c->close_code;
    }
    if (c->qlen)
        *m = c->q[c->qhead].m;
    return 0;
}

int feed_hub_sent(struct feed_hub *h, struct feed_conn *c)
{
    if (!c->qlen)
        return 0;
    struct feed_msg *m = c->q[c->qhead].m;
    c->qhead = (c->qhead + 1) % c->qcap;
    c->qlen--;
    c->qbytes -= m->len;
    h->stats.queued_bytes -= m->len;
    h->stats.messages++;
    h->stats.bytes += m->len;
    msg_unref(m);
    /* A replay waits while the queue is over half its bound: go on. */
    if (c->qbytes <= h->cfg.queue_max / 2)
        for (struct sub *s = c->subs; s; s = s->cnext)
            if (s->nfetch && !s->inflight)
                fetch_more(h, s);
    return c->qlen > 0;
}

void feed_hub_pump(struct feed_hub *h)
{
    struct feed_inbox in;
    feed_source_take(h->cfg.src, &in);
    for (struct feed_entry *e = in.entries; e; e = e->next)
        deliver_live(h, e);
    flush_batches(h);
    feed_entries_free(in.entries);
    while (in.fetches) {
        struct feed_fetch *f = in.fetches;
        in.fetches = f->next;
        f->next = NULL;
        on_fetch(h, f);
        feed_fetch_free(f);
    }
    for (struct feed_book_text *b = in.books; b; b = b->next)
        on_book(h, b);
    feed_books_free(in.books);
}

const struct feed_hub_stats *feed_hub_stats(const struct feed_hub *h)
{
    return &h->stats;
}

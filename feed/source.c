/* The feed's Redis side: a live reader of the fills streams, and a helper for replays and books. */
#include "feed/source.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shared/alloc.h"
#include "shared/codec.h"
#include "shared/log.h"
#include "shared/redis.h"
#include "shared/reply.h"
#include "shared/shard.h"

/* Why 500 ms: long enough that an idle feed costs Redis two commands a
 * second, short enough that a stop is noticed at once. */
#define READ_BLOCK_MS 500
/* Why 64 per stream: a read brings at most 64 x N entries; the service
 * thread handles them in one wake-up, and Redis answers quickly. */
#define READ_COUNT 64
/* Why 2 s: the matcher publishes a touched book within MATCHER_BOOK_MS
 * (100 ms by default); reading it for 2 s after the last touch also catches
 * the idle flush of an unusual MATCHER_BOOK_MS of up to ~1.5 s. */
#define BOOK_TOUCH_MS 2000
/* Every watched book is also read this often, in case a touch was missed
 * (a book changed by an input whose fills entry named other symbols). */
#define BOOK_FULL_MS 1000
/* How often the reader checks for entries trimmed before it read them, at
 * the least (see read_once). */
#define HOLE_CHECK_MS 1000

struct book_watch {
    int watched;           /* subscribers want it */
    int fresh;             /* send the next read even if unchanged */
    int64_t touched_until; /* monotonic ms */
    char *last;            /* text last sent (helper thread only) */
    size_t last_len;
};

struct feed_source {
    struct feed_source_config cfg;
    struct feed_source_stats stats;
    char (*keys)[32];       /* "fills:{S}" */
    struct op_sid *start;   /* where the streams ended at start-up */
    struct op_sid *cursor;  /* the reader's position (reader thread) */
    struct op_sid *hole_at; /* the first id after the last hole reported, per shard */
    int check_next;         /* check for holes before the next read */
    int64_t next_check_ms;  /* monotonic: check by then at the latest */
    uint64_t reconnects;    /* the reader's reconnects at the last check */
    struct op_redis reader; /* reader thread */
    struct op_redis helper; /* helper thread */
    struct op_codec *codec_r, *codec_h;
    struct op_report *scratch_r, *scratch_h; /* [OP_CODEC_REPORTS_MAX] decode space */

    pthread_mutex_t mu;  /* guards everything below */
    pthread_cond_t room; /* the inbox got room (reader waits) */
    pthread_cond_t work; /* the helper has work */
    int stop;
    struct feed_entry *in_head, *in_tail;
    size_t in_count;
    struct feed_fetch *fetch_in, *fetch_out; /* requests (helper) / answers (inbox) */
    struct feed_book_text *books_out;
    struct book_watch *watch; /* [syms->n] */
    int books_forced;         /* a watch needs a read now */

    pthread_t reader_t, helper_t;
    int started;
};

void feed_entries_free(struct feed_entry *e)
{
    while (e) {
        struct feed_entry *next = e->next;
        op_free(e);
        e = next;
    }
}

void feed_fetch_free(struct feed_fetch *f)
{
    while (f) {
        struct feed_fetch *next = f->next;
        for (uint32_t i = 0; i < f->n; i++)
            feed_entries_free(f->pages[i].entries);
        op_free(f);
        f = next;
    }
}

void feed_books_free(struct feed_book_text *b)
{
    while (b) {
        struct feed_book_text *next = b->next;
        op_free(b);
        b = next;
    }
}

const struct feed_source_stats *feed_source_stats(const struct feed_source *s)
{
    return &s->stats;
}

struct op_sid feed_source_start_id(const struct feed_source *s, uint32_t shard)
{
    return s->start[shard];
}

/* Parses a reply that is an id string (or the id of an [id, fields] entry). */
static int reply_sid(const struct redisReply *rep, struct op_sid *out)
{
    if (op_reply_type(rep) == OP_REPLY_ARRAY)
        rep = op_reply_at(rep, 0);
    size_t l = 0;
    const char *s = op_reply_str(rep, &l);
    return s && op_reply_type(rep) == OP_REPLY_STRING ? op_sid_parse(s, l, out) : -1;
}

/*
 * Decodes one [id, [field, value, …]] stream entry of shard into a new
 * feed_entry (its `m` as reports). An `m` that does not decode gives an
 * entry with no report and malformed set: its position still counts.
 * Returns the entry, or NULL when the reply is not an entry or memory ran
 * out (logged).
 */
static struct feed_entry *decode_entry(struct feed_source *s, struct op_codec *codec,
                                       struct op_report *scratch, uint32_t shard,
                                       const struct redisReply *e)
{
    struct op_sid id;
    if (reply_sid(op_reply_at(e, 0), &id) != 0)
        return NULL;
    const struct redisReply *m = op_reply_field(op_reply_at(e, 1), "m");
    size_t len = 0, n = 0;
    const char *data = op_reply_str(m, &len);
    int bad =
        !data || op_codec_decode_reports(codec, data, len, scratch, OP_CODEC_REPORTS_MAX, &n) != 0;
    if (bad) {
        n = 0;
        atomic_fetch_add(&s->stats.malformed, 1);
        op_warn("malformed_entry", "stream=%s id=%" PRIu64 "-%" PRIu64 " err=%s", s->keys[shard],
                id.ms, id.seq, data ? op_codec_error(codec) : "no m field");
    }
    struct feed_entry *fe = op_malloc(sizeof(*fe) + n * sizeof(struct op_report));
    if (!fe) {
        op_log_fail("out_of_memory", "what=entry reports=%zu", n);
        return NULL;
    }
    fe->next = NULL;
    fe->shard = shard;
    fe->id = id;
    fe->n = (uint32_t)n;
    fe->malformed = (uint32_t)bad;
    fe->hole = 0;
    if (n)
        memcpy(fe->rep, scratch, n * sizeof(struct op_report));
    return fe;
}

/* The shard of a "fills:{S}" key, or -1. */
static int shard_of_key(const struct feed_source *s, const struct redisReply *k)
{
    size_t l = 0;
    const char *t = op_reply_str(k, &l);
    for (uint32_t i = 0; t && i < s->cfg.shards; i++)
        if (strlen(s->keys[i]) == l && memcmp(s->keys[i], t, l) == 0)
            return (int)i;
    return -1;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* XINFO STREAM facts the gap check needs. */
struct stream_info {
    struct op_sid last;  /* last-generated-id */
    struct op_sid first; /* the first entry present; next(last) when empty */
    long long deleted;   /* entries-added - length: entries trimmed or deleted */
};

static int parse_info(const struct redisReply *rep, struct stream_info *si)
{
    if (op_reply_type(rep) != OP_REPLY_ARRAY)
        return -1;
    long long len = op_reply_int(op_reply_field(rep, "length"));
    long long added = op_reply_int(op_reply_field(rep, "entries-added"));
    if (reply_sid(op_reply_field(rep, "last-generated-id"), &si->last) != 0)
        return -1;
    si->deleted = added - len;
    if (len == 0 || reply_sid(op_reply_field(rep, "first-entry"), &si->first) != 0)
        si->first = op_sid_next(si->last);
    return 0;
}

/* A hole marker for shard: entries after the reader's cursor were trimmed
 * before it read them (the feed fell behind the recorders' trimming). */
static struct feed_entry *hole_marker(uint32_t shard, struct op_sid first)
{
    struct feed_entry *fe = op_calloc(1, sizeof(*fe));
    if (fe) {
        fe->shard = shard;
        fe->id = first;
        fe->hole = 1;
    }
    return fe;
}

/*
 * One XREAD over every stream from the reader's cursor; appends what it
 * read to the inbox. Returns 0, or -1 when Redis failed (logged, counted).
 *
 * Before the XREAD, in the same pipeline, XINFO STREAM of every shard tells
 * whether entries after the cursor were trimmed unread (a hole: the
 * subscribers of that shard are told "gap" before anything after it is
 * delivered). It is asked after start, a reconnect or a full page (the
 * reader is catching up, the case where trimming can overtake it) and at
 * least every HOLE_CHECK_MS; at the head of a stream a hole needs the
 * recorders to trim entries younger than their RECORDER_FILLS_RETAIN_MS.
 */
static int read_once(struct feed_source *s)
{
    uint32_t n = s->cfg.shards;
    size_t argc = 6 + 2 * (size_t)n;
    const char **argv = op_calloc(argc, sizeof(*argv));
    char(*ids)[OP_SID_TEXT_MAX] = op_calloc(n, sizeof(*ids));
    char count[16], block[16];
    int rc = -1;
    if (!argv || !ids) {
        op_log_fail("out_of_memory", "what=xread");
        goto out;
    }
    snprintf(count, sizeof(count), "%d", READ_COUNT);
    snprintf(block, sizeof(block), "%d", READ_BLOCK_MS);
    argv[0] = "XREAD";
    argv[1] = "COUNT";
    argv[2] = count;
    argv[3] = "BLOCK";
    argv[4] = block;
    argv[5] = "STREAMS";
    for (uint32_t i = 0; i < n; i++) {
        argv[6 + i] = s->keys[i];
        argv[6 + n + i] = op_sid_format(s->cursor[i], 0, ids[i]);
    }
    int64_t now = op_now_ms();
    int check = s->check_next || now >= s->next_check_ms || s->reader.reconnects != s->reconnects;
    struct feed_entry *holes = NULL, *holes_last = NULL;
    struct redisReply *rep = NULL;
    if (check) {
        for (uint32_t i = 0; i < n; i++)
            if (op_redis_appendf(&s->reader, "XINFO STREAM %s", s->keys[i]) != 0)
                goto failed;
    }
    if (op_redis_append(&s->reader, (int)argc, argv, NULL) != 0)
        goto failed;
    if (check) {
        s->check_next = 0;
        s->next_check_ms = now + HOLE_CHECK_MS;
        s->reconnects = s->reader.reconnects;
        for (uint32_t i = 0; i < n; i++) {
            struct redisReply *info = op_redis_next_reply(&s->reader);
            struct stream_info si;
            if (!info)
                goto failed;
            if (parse_info(info, &si) == 0 && si.deleted > 0 &&
                op_sid_cmp(op_sid_next(s->cursor[i]), si.first) < 0 &&
                op_sid_cmp(si.first, s->hole_at[i]) != 0) {
                struct feed_entry *h = hole_marker(i, si.first);
                s->hole_at[i] = si.first;
                op_warn("feed_behind_trim",
                        "stream=%s cursor=%" PRIu64 "-%" PRIu64 " first=%" PRIu64 "-%" PRIu64,
                        s->keys[i], s->cursor[i].ms, s->cursor[i].seq, si.first.ms, si.first.seq);
                atomic_fetch_add(&s->stats.holes, 1);
                if (h) {
                    if (holes_last)
                        holes_last->next = h;
                    else
                        holes = h;
                    holes_last = h;
                }
            }
            op_reply_free(info);
        }
    }
    rep = op_redis_next_reply(&s->reader);
failed:
    if (!rep || op_reply_type(rep) == OP_REPLY_ERROR) {
        feed_entries_free(holes);
        atomic_fetch_add(&s->stats.redis_errors, 1);
        atomic_store(&s->stats.redis_up, 0);
        op_warn("redis_read_failed", "err=%s", rep ? op_reply_str(rep, NULL) : s->reader.errstr);
        op_reply_free(rep);
        goto out;
    }
    atomic_store(&s->stats.redis_up, 1);
    struct feed_entry *head = holes, *last = holes_last;
    size_t got = 0;
    for (size_t k = 0; k < op_reply_count(rep); k++) {
        const struct redisReply *st = op_reply_at(rep, k);
        int shard = shard_of_key(s, op_reply_at(st, 0));
        const struct redisReply *list = op_reply_at(st, 1);
        if (shard < 0)
            continue;
        for (size_t j = 0; j < op_reply_count(list); j++) {
            struct feed_entry *fe =
                decode_entry(s, s->codec_r, s->scratch_r, (uint32_t)shard, op_reply_at(list, j));
            if (!fe)
                continue; /* not an entry: skipped; out of memory: logged */
            if (j + 1 == READ_COUNT)
                s->check_next = 1; /* a full page: catching up */
            s->cursor[shard] = fe->id;
            atomic_fetch_add(&s->stats.reports, fe->n);
            atomic_store(&s->stats.last_entry_ms, fe->id.ms);
            if (last)
                last->next = fe;
            else
                head = fe;
            last = fe;
            got++;
        }
    }
    op_reply_free(rep);
    rc = 0;
    if (!head)
        goto out;
    atomic_fetch_add(&s->stats.entries, got);
    pthread_mutex_lock(&s->mu);
    if (s->in_tail)
        s->in_tail->next = head;
    else
        s->in_head = head;
    s->in_tail = last;
    s->in_count += got;
    pthread_mutex_unlock(&s->mu);
    s->cfg.wake(s->cfg.wake_arg);
out:
    op_free(argv);
    op_free(ids);
    return rc;
}

static void *reader_main(void *arg)
{
    struct feed_source *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->stop && s->in_count >= FEED_INBOX_MAX)
            pthread_cond_wait(&s->room, &s->mu);
        int stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
        if (op_redis_ensure(&s->reader) != 0) {
            atomic_store(&s->stats.redis_up, 0);
            sleep_ms(OP_REDIS_BACKOFF_MIN_MS);
            continue;
        }
        if (read_once(s) != 0)
            sleep_ms(OP_REDIS_BACKOFF_MIN_MS);
    }
    return NULL;
}

/*
 * Serves one page: XINFO STREAM (the verdict) and XRANGE after `from`
 * (the entries), pipelined. The verdict: beyond the last id is a bad
 * position; when entries have been trimmed and the first one left is not
 * the one right after `from`, something after `from` may be gone: a gap
 * (cautious: when `from` itself was the last trimmed entry this says gap
 * although nothing is missing; the client then reads REST, which is
 * correct, only slower).
 */
static void serve_page(struct feed_source *s, struct feed_page *p)
{
    const char *key = s->keys[p->shard];
    char from[OP_SID_TEXT_MAX], count[16];
    snprintf(count, sizeof(count), "%" PRIu32, s->cfg.page_entries);
    op_sid_format(p->from, 1, from);
    p->status = FEED_PAGE_ERROR;
    if (op_redis_ensure(&s->helper) != 0 ||
        op_redis_appendf(&s->helper, "XINFO STREAM %s", key) != 0 ||
        op_redis_appendf(&s->helper, "XRANGE %s %s + COUNT %s", key, from, count) != 0) {
        atomic_fetch_add(&s->stats.redis_errors, 1);
        return;
    }
    struct redisReply *info = op_redis_next_reply(&s->helper);
    struct redisReply *range = info ? op_redis_next_reply(&s->helper) : NULL;
    struct stream_info si;
    if (!range || parse_info(info, &si) != 0 || op_reply_type(range) != OP_REPLY_ARRAY) {
        atomic_fetch_add(&s->stats.redis_errors, 1);
        goto out;
    }
    if (op_sid_cmp(p->from, si.last) > 0) {
        p->status = FEED_PAGE_BAD_POSITION;
        goto out;
    }
    if (si.deleted > 0 && op_sid_cmp(op_sid_next(p->from), si.first) < 0) {
        p->status = FEED_PAGE_GAP;
        goto out;
    }
    struct feed_entry **tail = &p->entries;
    size_t n = op_reply_count(range);
    for (size_t i = 0; i < n; i++) {
        struct feed_entry *fe =
            decode_entry(s, s->codec_h, s->scratch_h, p->shard, op_reply_at(range, i));
        if (!fe) {
            feed_entries_free(p->entries);
            p->entries = NULL;
            goto out; /* an error: the requester asks again */
        }
        *tail = fe;
        tail = &fe->next;
    }
    p->complete = n < s->cfg.page_entries;
    p->status = FEED_PAGE_OK;
    atomic_fetch_add(&s->stats.fetches, 1);
out:
    op_reply_free(info);
    op_reply_free(range);
}

/*
 * Reads the books due (watched and touched recently, or all watched ones
 * every BOOK_FULL_MS, or just watched) with one pipelined round of GETs,
 * and queues those whose text changed (or that a new watch wants).
 */
static void read_books(struct feed_source *s, int full)
{
    size_t nsym = s->cfg.syms->n;
    uint32_t *due = op_calloc(nsym ? nsym : 1, sizeof(*due));
    unsigned char *forced = op_calloc(nsym ? nsym : 1, 1);
    size_t n = 0;
    if (!due || !forced)
        goto out;
    int64_t now = op_now_ms();
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < nsym; i++) {
        struct book_watch *w = &s->watch[i];
        if (!w->watched)
            continue;
        if (full || w->fresh || now < w->touched_until) {
            forced[n] = (unsigned char)w->fresh;
            w->fresh = 0;
            due[n++] = (uint32_t)i;
        }
    }
    s->books_forced = 0;
    pthread_mutex_unlock(&s->mu);
    if (!n || op_redis_ensure(&s->helper) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const struct op_symbol *sym = &s->cfg.syms->v[due[i]];
        uint32_t shard = op_shard_of(sym->name, strlen(sym->name), s->cfg.shards);
        if (op_redis_appendf(&s->helper, "GET book:{%" PRIu32 "}:%s", shard, sym->name) != 0) {
            atomic_fetch_add(&s->stats.redis_errors, 1);
            goto out; /* the connection is dropped: the replies are gone too */
        }
    }
    struct feed_book_text *head = NULL;
    for (size_t i = 0; i < n; i++) {
        struct redisReply *rep = op_redis_next_reply(&s->helper);
        if (!rep) {
            atomic_fetch_add(&s->stats.redis_errors, 1);
            break;
        }
        size_t len = 0;
        const char *t = op_reply_type(rep) == OP_REPLY_STRING ? op_reply_str(rep, &len) : NULL;
        struct book_watch *w = &s->watch[due[i]];
        int same = w->last && t && w->last_len == len && memcmp(w->last, t, len) == 0;
        if ((same && !forced[i]) || (!t && !w->last && !forced[i])) {
            op_reply_free(rep);
            continue;
        }
        struct feed_book_text *b = op_malloc(sizeof(*b) + len + 1);
        char *copy = t ? op_malloc(len + 1) : NULL;
        if (!b || (t && !copy)) {
            op_free(b);
            op_free(copy);
            op_reply_free(rep);
            continue;
        }
        b->sym = due[i];
        b->found = t != NULL;
        b->len = len;
        if (t)
            memcpy(b->text, t, len);
        b->text[len] = '\0';
        op_free(w->last);
        w->last = copy;
        w->last_len = len;
        if (copy)
            memcpy(copy, t, len);
        b->next = head;
        head = b;
        atomic_fetch_add(&s->stats.books, 1);
        op_reply_free(rep);
    }
    if (head) {
        pthread_mutex_lock(&s->mu);
        struct feed_book_text *last = head;
        while (last->next)
            last = last->next;
        last->next = s->books_out;
        s->books_out = head;
        pthread_mutex_unlock(&s->mu);
        s->cfg.wake(s->cfg.wake_arg);
    }
out:
    op_free(due);
    op_free(forced);
}

static void *helper_main(void *arg)
{
    struct feed_source *s = arg;
    int64_t next_books = op_now_ms(), last_full = 0;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->stop && !s->fetch_in && !s->books_forced && op_now_ms() < next_books) {
            int64_t wait = next_books - op_now_ms();
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += wait / 1000;
            ts.tv_nsec += (long)(wait % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&s->work, &s->mu, &ts);
        }
        int stop = s->stop;
        struct feed_fetch *reqs = s->fetch_in;
        s->fetch_in = NULL;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
        /* Requests were pushed at the head: serve them oldest first. */
        struct feed_fetch *rev = NULL;
        while (reqs) {
            struct feed_fetch *next = reqs->next;
            reqs->next = rev;
            rev = reqs;
            reqs = next;
        }
        while (rev) {
            struct feed_fetch *f = rev;
            rev = rev->next;
            for (uint32_t i = 0; i < f->n; i++)
                serve_page(s, &f->pages[i]);
            pthread_mutex_lock(&s->mu);
            f->next = s->fetch_out;
            s->fetch_out = f;
            pthread_mutex_unlock(&s->mu);
            s->cfg.wake(s->cfg.wake_arg);
        }
        int64_t now = op_now_ms();
        if (now >= next_books || s->books_forced) {
            int full = now - last_full >= BOOK_FULL_MS;
            if (full)
                last_full = now;
            read_books(s, full);
            if (now >= next_books)
                next_books = now + s->cfg.book_ms;
        }
    }
    return NULL;
}

void feed_source_take(struct feed_source *s, struct feed_inbox *in)
{
    pthread_mutex_lock(&s->mu);
    in->entries = s->in_head;
    s->in_head = s->in_tail = NULL;
    s->in_count = 0;
    /* Answers were pushed at the head: hand them over oldest first. */
    struct feed_fetch *rev = NULL;
    while (s->fetch_out) {
        struct feed_fetch *next = s->fetch_out->next;
        s->fetch_out->next = rev;
        rev = s->fetch_out;
        s->fetch_out = next;
    }
    in->fetches = rev;
    in->books = s->books_out;
    s->books_out = NULL;
    pthread_cond_signal(&s->room);
    pthread_mutex_unlock(&s->mu);
}

void feed_source_fetch(struct feed_source *s, struct feed_fetch *f)
{
    pthread_mutex_lock(&s->mu);
    f->next = s->fetch_in;
    s->fetch_in = f;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
}

void feed_source_book_watch(struct feed_source *s, uint32_t sym, int on)
{
    if (sym >= s->cfg.syms->n)
        return;
    pthread_mutex_lock(&s->mu);
    struct book_watch *w = &s->watch[sym];
    if (on && !w->watched) {
        w->fresh = 1;
        s->books_forced = 1;
        pthread_cond_signal(&s->work);
    }
    w->watched = on;
    pthread_mutex_unlock(&s->mu);
}

void feed_source_book_touch(struct feed_source *s, uint32_t sym)
{
    if (sym >= s->cfg.syms->n)
        return;
    int64_t until = op_now_ms() + BOOK_TOUCH_MS;
    pthread_mutex_lock(&s->mu);
    s->watch[sym].touched_until = until;
    pthread_mutex_unlock(&s->mu);
}

struct feed_source *feed_source_new(const struct feed_source_config *cfg, char *err, size_t errlen)
{
    struct feed_source *s = op_calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    size_t nsym = cfg->syms->n ? cfg->syms->n : 1;
    s->keys = op_calloc(cfg->shards, sizeof(*s->keys));
    s->start = op_calloc(cfg->shards, sizeof(*s->start));
    s->cursor = op_calloc(cfg->shards, sizeof(*s->cursor));
    s->hole_at = op_calloc(cfg->shards, sizeof(*s->hole_at));
    s->watch = op_calloc(nsym, sizeof(*s->watch));
    s->codec_r = op_codec_new();
    s->codec_h = op_codec_new();
    s->scratch_r = op_calloc(OP_CODEC_REPORTS_MAX, sizeof(struct op_report));
    s->scratch_h = op_calloc(OP_CODEC_REPORTS_MAX, sizeof(struct op_report));
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->room, NULL);
    pthread_cond_init(&s->work, NULL);
    if (!s->keys || !s->start || !s->cursor || !s->hole_at || !s->watch || !s->codec_r ||
        !s->codec_h || !s->scratch_r || !s->scratch_h) {
        snprintf(err, errlen, "out of memory");
        feed_source_free(s);
        return NULL;
    }
    for (uint32_t i = 0; i < cfg->shards; i++)
        op_key_fills(s->keys[i], i);
    if (op_redis_init(&s->reader, cfg->redis_url, cfg->timeout_ms + READ_BLOCK_MS) != 0 ||
        op_redis_init(&s->helper, cfg->redis_url, cfg->timeout_ms) != 0) {
        snprintf(err, errlen, "%s", s->reader.errstr[0] ? s->reader.errstr : s->helper.errstr);
        feed_source_free(s);
        return NULL;
    }
    if (op_redis_connect(&s->reader) != 0) {
        snprintf(err, errlen, "%s", s->reader.errstr);
        feed_source_free(s);
        return NULL;
    }
    for (uint32_t i = 0; i < cfg->shards; i++) {
        struct redisReply *rep = op_redis_cmdf(&s->reader, "XINFO STREAM %s", s->keys[i]);
        struct stream_info si;
        if (!rep || parse_info(rep, &si) != 0) {
            snprintf(err, errlen, "cannot read stream '%s': %s (run orderpipe-setup first)",
                     s->keys[i],
                     rep ? (op_reply_str(rep, NULL) ? op_reply_str(rep, NULL) : "not a stream")
                         : s->reader.errstr);
            op_reply_free(rep);
            feed_source_free(s);
            return NULL;
        }
        op_reply_free(rep);
        s->start[i] = s->cursor[i] = si.last;
    }
    atomic_store(&s->stats.redis_up, 1);
    s->check_next = 1;
    return s;
}

int feed_source_start(struct feed_source *s)
{
    if (pthread_create(&s->reader_t, NULL, reader_main, s) != 0)
        return op_log_fail("thread_start", "what=reader");
    if (pthread_create(&s->helper_t, NULL, helper_main, s) != 0) {
        pthread_mutex_lock(&s->mu);
        s->stop = 1;
        pthread_cond_broadcast(&s->room);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->reader_t, NULL);
        return op_log_fail("thread_start", "what=helper");
    }
    s->started = 1;
    return 0;
}

void feed_source_stop(struct feed_source *s)
{
    if (!s || !s->started)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->room);
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->reader_t, NULL);
    pthread_join(s->helper_t, NULL);
    s->started = 0;
}

void feed_source_free(struct feed_source *s)
{
    if (!s)
        return;
    feed_source_stop(s);
    op_redis_release(&s->reader);
    op_redis_release(&s->helper);
    feed_entries_free(s->in_head);
    feed_fetch_free(s->fetch_in);
    feed_fetch_free(s->fetch_out);
    feed_books_free(s->books_out);
    if (s->watch)
        for (size_t i = 0; i < (s->cfg.syms->n ? s->cfg.syms->n : 1); i++)
            op_free(s->watch[i].last);
    op_codec_free(s->codec_r);
    op_codec_free(s->codec_h);
    op_free(s->scratch_r);
    op_free(s->scratch_h);
    op_free(s->keys);
    op_free(s->start);
    op_free(s->cursor);
    op_free(s->hole_at);
    op_free(s->watch);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->room);
    pthread_cond_destroy(&s->work);
    op_free(s);
}

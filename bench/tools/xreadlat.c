/* bench/feed.sh's baseline: how late a plain XREAD reader of the fills streams gets each entry. */
#include "bench/tools/fillsread.h"

/*
 *   xreadlat            (REDIS_URL, ORDER_SHARDS from the environment)
 *
 * Follows every fills:{S} stream from its end, as the feed's reader does
 * (XREAD COUNT 64 BLOCK 500 over all of them, no consumer group), until
 * SIGTERM/SIGINT, then prints:
 *
 *   xread latency (ms): p50 X p99 X p99.9 X max X (N entries, R reports)
 *   trades by symbol: AAPL 812 MSFT 790 …
 *   reports by account: alice 3011 bob 2998 …
 *
 * An entry's latency is the wall clock when the XREAD reply holding it
 * arrived minus the ms part of its id (the Redis clock when the matcher's
 * EXEC added it): what the stream itself gives a reader, with no feed in
 * between. The id has ms resolution, so this over-states by 0-1 ms, as the
 * feed clients' figure does. Histogram in 10 µs buckets up to 10 s.
 *
 * The two count lines are what a loss-free feed must deliver over the same
 * stretch of stream: every trade of a symbol to its `trades` subscribers,
 * every report leg naming an account (the report's owner, or a trade's
 * maker) to its `orders` subscribers — docs/feed.md.
 */

/* The feed's reader reads 64 entries per stream per XREAD, blocking 500 ms
 * (feed/source.c): the same here, so that the two differ only by the feed. */
#define READ_COUNT_TEXT "64"
#define READ_BLOCK_TEXT "500"
/* Why 64: the symbol table and the load generator's accounts are a handful;
 * names beyond the table are counted as "other". */
#define NAMES_MAX 64

/* Counts per name (symbols, accounts), in order of first appearance. */
struct tally {
    char name[NAMES_MAX][OP_ACCOUNT_MAX > OP_SYMBOL_MAX ? OP_ACCOUNT_MAX : OP_SYMBOL_MAX];
    uint64_t n[NAMES_MAX];
    size_t len;
    uint64_t other; /* entries whose name did not fit */
};

static uint64_t reports;
static struct tally trades_by_sym, by_account;

/* Counts one item (a trade of a symbol, a report leg of an account) for
 * name (n bytes, no NUL needed): what the feed sends its subscribers, item
 * for item, however it groups them into messages. */
static void tally_mark(struct tally *t, const char *name, size_t n)
{
    if (!n)
        return;
    size_t i = 0;
    while (i < t->len && (strlen(t->name[i]) != n || memcmp(t->name[i], name, n) != 0))
        i++;
    if (i == t->len) {
        if (t->len == NAMES_MAX || n >= sizeof(t->name[0])) {
            t->other++;
            return;
        }
        memcpy(t->name[i], name, n);
        t->name[i][n] = '\0';
        t->len++;
    }
    t->n[i]++;
}

static void tally_print(const struct tally *t, const char *title)
{
    printf("%s:", title);
    for (size_t i = 0; i < t->len; i++)
        printf(" %s %" PRIu64, t->name[i], t->n[i]);
    if (t->other)
        printf(" (other %" PRIu64 ")", t->other);
    printf("\n");
}

/* Counts what the feed would send for the n reports of one entry. */
static void count_entry(const struct op_report *reps, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        const struct op_report *r = &reps[k];
        if (r->kind == OP_REPORT_TICK)
            continue;
        tally_mark(&by_account, r->account, strnlen(r->account, sizeof(r->account)));
        if (r->kind != OP_REPORT_TRADE)
            continue;
        tally_mark(&by_account, r->maker_account,
                   strnlen(r->maker_account, sizeof(r->maker_account)));
        tally_mark(&trades_by_sym, r->symbol, strnlen(r->symbol, sizeof(r->symbol)));
    }
}

/* Each entry: its arrival minus its id time, and what it holds. */
static void on_entry(uint32_t shard, int64_t entry_ms, const struct op_report *reps, size_t n,
                     int64_t arrived_us)
{
    (void)shard;
    fills_observe(arrived_us - entry_ms * 1000);
    reports += n;
    count_entry(reps, n);
}

int main(void)
{
    int rc = fills_follow("xreadlat", READ_COUNT_TEXT, READ_BLOCK_TEXT, on_entry);
    if (rc == 0) {
        printf("xread latency (ms): p50 %.2f p99 %.2f p99.9 %.2f max %.2f (%" PRIu64
               " entries, %" PRIu64 " reports)\n",
               fills_pct(0.5), fills_pct(0.99), fills_pct(0.999), (double)fills_max_us / 1000.0,
               fills_total, reports);
        tally_print(&trades_by_sym, "trades by symbol");
        tally_print(&by_account, "reports by account");
    }
    free(fills_hist);
    return rc;
}

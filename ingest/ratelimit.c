/* Per-API-key rate limit: one token bucket per key, lock-free, time passed in. */
#include "ingest/ratelimit.h"

#include <stdatomic.h>

#include "shared/alloc.h"

#define NS_PER_S INT64_C(1000000000)
/* Why 10^9 for rate and burst: a token then costs at least 1 ns, and
 * burst * ns-per-token stays below 10^18, far from int64's limit, as does
 * a take of up to 10^6 tokens on top of a monotonic time. */
#define RATE_MAX NS_PER_S
#define BURST_MAX NS_PER_S
#define TAKE_MAX INT64_C(1000000)
/* A cache line: a bucket per line, so keys served by different threads
 * never share one (no false sharing on the hot path). */
#define LINE 64

struct bucket {
    _Atomic int64_t tat;                      /* when the bucket is full again, ns; 0: full */
    char pad[LINE - sizeof(_Atomic int64_t)]; /* one bucket per cache line */
};

struct ratelimit {
    int64_t token_ns;  /* 10^9 / rate: the time one token takes to come back */
    int64_t window_ns; /* burst * token_ns: how far tat may run ahead of now */
    int64_t burst;     /* INGEST_RATE_BURST */
    size_t nkeys;
    struct bucket *buckets; /* [nkeys], owned */
};

struct ratelimit *ratelimit_new(size_t nkeys, int64_t rate, int64_t burst)
{
    if (rate < 1 || rate > RATE_MAX || burst < 1 || burst > BURST_MAX || nkeys == 0)
        return NULL;
    struct ratelimit *rl = op_calloc(1, sizeof(*rl));
    if (!rl)
        return NULL;
    rl->buckets = op_calloc(nkeys, sizeof(*rl->buckets));
    if (!rl->buckets) {
        op_free(rl);
        return NULL;
    }
    rl->token_ns = NS_PER_S / rate;
    rl->window_ns = burst * rl->token_ns;
    rl->burst = burst;
    rl->nkeys = nkeys;
    return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
    if (!rl)
        return;
    op_free(rl->buckets);
    op_free(rl);
}

int64_t ratelimit_burst(const struct ratelimit *rl)
{
    return rl->burst;
}

enum ratelimit_outcome ratelimit_take(struct ratelimit *rl, size_t key, int64_t n, int64_t now_ns,
                                      int64_t *wait_ns)
{
    if (n > rl->burst)
        return RATELIMIT_TOO_MANY;
    if (n < 1 || n > TAKE_MAX || key >= rl->nkeys) /* a caller's bug: take nothing, refuse */
        return RATELIMIT_TOO_MANY;
    struct bucket *b = &rl->buckets[key];
    int64_t tat = atomic_load_explicit(&b->tat, memory_order_relaxed);
    for (;;) {
        int64_t next = (tat > now_ns ? tat : now_ns) + n * rl->token_ns;
        if (next - now_ns > rl->window_ns) {
            *wait_ns = next - now_ns - rl->window_ns;
            return RATELIMIT_WAIT;
        }
        /* On failure tat is reloaded: another thread took tokens of this key. */
        if (atomic_compare_exchange_weak_explicit(&b->tat, &tat, next, memory_order_relaxed,
                                                  memory_order_relaxed))
            return RATELIMIT_OK;
    }
}

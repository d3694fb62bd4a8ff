/* Per-API-key rate limit: one token bucket per key, lock-free, time passed in. */
#ifndef INGEST_RATELIMIT_H
#define INGEST_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

/*
 * A token bucket per key (INGEST_RATE_LIMIT tokens per second, holding at
 * most INGEST_RATE_BURST), kept as the generic cell rate algorithm: one
 * 64-bit "theoretical arrival time" per key, the moment its bucket would be
 * full again. Taking n tokens at `now` moves it to max(tat, now) + n/rate,
 * allowed while that stays within burst/rate of now. One compare-and-swap
 * on the key's own cache line, no lock, no allocation: HTTP threads serving
 * different keys never touch the same line, and two serving one key retry
 * the swap.
 *
 * Pure: the clock is the caller's (a monotonic one, in ns), so the unit
 * tests run it on a made-up timeline.
 */

enum ratelimit_outcome {
    RATELIMIT_OK = 0,       /* the tokens were taken */
    RATELIMIT_WAIT = 1,     /* not enough tokens now: *wait_ns until there are */
    RATELIMIT_TOO_MANY = 2, /* more than the burst at once: never (nothing taken) */
};

struct ratelimit;

/* A limiter for keys 0 … nkeys-1, each bucket full, at rate tokens per
 * second (1 … 10^9) holding at most burst (1 … 10^9). Returns NULL out of
 * memory or for a value out of range. Free with ratelimit_free. */
struct ratelimit *ratelimit_new(size_t nkeys, int64_t rate, int64_t burst);

void ratelimit_free(struct ratelimit *rl);

/*
 * Takes n tokens (1 … 10^6) from key's bucket at now_ns, all or none.
 * Returns RATELIMIT_OK; RATELIMIT_WAIT with *wait_ns (> 0) the time after
 * which the same request would pass, if no other took tokens meanwhile; or
 * RATELIMIT_TOO_MANY when n is above the burst. Thread-safe.
 */
enum ratelimit_outcome ratelimit_take(struct ratelimit *rl, size_t key, int64_t n, int64_t now_ns,
                                      int64_t *wait_ns);

/* The burst rl was made with. */
int64_t ratelimit_burst(const struct ratelimit *rl);

#endif

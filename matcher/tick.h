/* When an owned shard appends a tick input to orders:{S}: a pure decision, no clock, no I/O. */
#ifndef OP_MATCHER_TICK_H
#define OP_MATCHER_TICK_H

#include <stdint.h>

/*
 * Engine time is the largest `ts` of the inputs applied (docs/engine.md,
 * "Time"), so an expiry or a dead-man deadline happens only at an input.
 * While no order arrives, the shard's owner appends a tick input carrying
 * its wall clock (docs/matcher.md, "Ticks"). It does so only when that
 * would make something happen:
 *
 *   - ticks are on (tick_ms > 0, MATCHER_TICK_MS),
 *   - no tick of ours is in flight (written and not yet read back),
 *   - the shard read no new input for tick_ms (idle_ms, monotonic),
 *   - the engine has something pending (next_event_ns != 0,
 *     eng_next_event_ns) and the wall clock reached it (wall_ns >=
 *     next_event_ns): a tick stamped earlier would move engine time
 *     without firing anything.
 *
 * So an idle shard with nothing pending costs Redis nothing, and a busy
 * one never ticks (its inputs move time).
 *
 * Returns 0 when a tick is due now, the ms to wait before one may be due
 * (the idle time still missing, or the wall clock's distance to the
 * event, whichever is larger; at most TICK_WAIT_MAX_MS), or -1 when none
 * will be due without a change (ticks off, one in flight, nothing pending).
 */

/* Why a day: the caller only uses the wait to shorten an idle wait (at most
 * MATCHER_BLOCK_MS), so any bound beyond that works; a day keeps the
 * ns → ms arithmetic far from overflow whatever next_event_ns holds. */
#define TICK_WAIT_MAX_MS 86400000LL

static inline int64_t tick_wait_ms(int tick_ms, int in_flight, int64_t idle_ms,
                                   uint64_t next_event_ns, uint64_t wall_ns)
{
    if (tick_ms <= 0 || in_flight || next_event_ns == 0)
        return -1;
    int64_t wait = idle_ms >= tick_ms ? 0 : (int64_t)tick_ms - (idle_ms < 0 ? 0 : idle_ms);
    if (wall_ns < next_event_ns) {
        uint64_t ns = next_event_ns - wall_ns;
        int64_t ms = ns / 1000000 >= (uint64_t)TICK_WAIT_MAX_MS
                         ? TICK_WAIT_MAX_MS
                         : (int64_t)((ns + 999999) / 1000000); /* rounded up: never early */
        if (ms > wait)
            wait = ms;
    }
    return wait;
}

#endif

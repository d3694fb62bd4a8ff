#!/usr/bin/env bash
# Matcher failover: whatever happens to a matcher or to Redis in the middle of
# a sustained seeded flow, the fills streams afterwards hold exactly the
# reports of an uninterrupted run (the checker: same reports, ids and order,
# nothing missing or duplicated).
#   1. kill -9 mid-flow, then a restart (snapshot + replay + pending)
#   2. kill -9 of one of two workers: the other takes its shards over
#   3. SIGSTOP of an owner past its lease, takeover, SIGCONT: the old owner
#      publishes nothing more (fenced) and exits 0 on SIGTERM
#   4. Redis stopped and restarted (AOF) while a backlog is processed
set -uo pipefail
. "$OP_ROOT/tests/integration/matcher_lib.sh"

# --- 1. kill -9 and restart --------------------------------------------------------
m_reset
m_start k1
pid="$T_PID"
m_gen --count 40000 --rate 10000 >"$M_TMP/gen1.log" 2>&1 &
gen=$!
sleep 1.5
kill -KILL "$pid"
m_forget "$pid"
sleep 0.5
m_start k2
wait "$gen" || t_fail "ordergen (kill -9 case) failed: $(cat "$M_TMP/gen1.log")"
m_wait_fills 40000 120 && m_check 40000
t_match "the restarted matcher recovered from the stream" "$(cat "$OP_STACK_DIR/k2.log")" 'event=recovered'
t_stop_all

# --- 2. kill -9 of one of two workers: the other takes over --------------------------
m_reset
m_start a1
pa="$T_PID"
m_start b1
m_wait_owned 20 a1=2 b1=2
m_gen --count 40000 --rate 10000 >"$M_TMP/gen2.log" 2>&1 &
gen=$!
sleep 1.5
kill -KILL "$pa"
m_forget "$pa"
m_wait_owned 20 b1=4
wait "$gen" || t_fail "ordergen (takeover case) failed: $(cat "$M_TMP/gen2.log")"
m_wait_fills 40000 120 && m_check 40000
t_stop_all

# --- 3. SIGSTOP past the lease, takeover, SIGCONT --------------------------------------
m_reset
m_start s1
ps="$T_PID"
m_start s2
m_wait_owned 20 s1=2 s2=2
m_gen --count 30000 --rate 10000 >"$M_TMP/gen3.log" 2>&1 &
gen=$!
sleep 1
kill -STOP "$ps"
m_wait_owned 20 s2=4 # s1's leases expired while it was stopped
sleep 0.5
kill -CONT "$ps"
wait "$gen" || t_fail "ordergen (SIGSTOP case) failed: $(cat "$M_TMP/gen3.log")"
m_wait_fills 30000 120 && m_check 30000
t_match "the stopped owner found its leases lost" "$(cat "$OP_STACK_DIR/s1.log")" 'event=lease_lost'
m_wait_owned 20 s1=2 s2=2 # and the two share the shards again
m_gen --count 3000 --from 30000 >/dev/null
m_wait_fills 33000 60 && m_check 33000
t_stop_all

# --- 4. Redis restarted while a backlog is processed -----------------------------------
m_reset
m_gen --count 40000 >/dev/null || t_fail "ordergen (redis case) failed"
m_start r1
op_wait_until 30 "the first fills" bash -c "(( \$(redis-cli -p $OP_REDIS_PORT XLEN 'fills:{3}') > 0 ))"
"$OP_ROOT/ops/redis.sh" stop "$OP_REDIS_DIR" "$OP_REDIS_PORT" >/dev/null 2>&1
sleep 1
"$OP_ROOT/ops/redis.sh" start "$OP_REDIS_DIR" "$OP_REDIS_PORT" >/dev/null 2>&1
m_wait_fills 40000 120 && m_check 40000
m_gen --count 5000 --from 40000 >/dev/null || t_fail "ordergen after the restart failed"
m_wait_fills 45000 60 && m_check 45000
t_match "the matcher saw redis go away" "$(cat "$OP_STACK_DIR/r1.log")" 'event=redis_unavailable'
t_done

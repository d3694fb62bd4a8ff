#!/usr/bin/env bash
# Redis out of memory (issue 10, part 6): with `maxmemory` reached and
# `noeviction`, Redis refuses the matcher's publishes whole (EXECABORT). The
# matcher must retry the same batch with backoff — counting
# matcher_publish_refused_total, not re-recovering the shard in a loop (it
# used to, about once a second, replaying the whole stream each time) — and
# resume by itself once memory is freed: every input published exactly once
# (the checker), every trade recorded once in PostgreSQL.
set -uo pipefail
. "$OP_ROOT/tests/integration/matcher_lib.sh"

mport="$(op_free_port)"
rport="$(op_free_port "$mport")"
murl="http://127.0.0.1:$mport"
N=20000

metric() { # metric URL NAME: the value of the first sample of NAME
	curl -s --max-time 5 "$1/metrics" | awk -v n="$2" '$1 == n || index($1, n "{") == 1 { print $2; exit }'
}

restore_memory() { t_redis CONFIG SET maxmemory 0 >/dev/null; }
trap restore_memory EXIT

m_reset
psql "$DATABASE_URL" -X -q -c "TRUNCATE orders, fills, dead_letters" || t_fail "truncate"
t_eq "noeviction" "$(redis-cli -p "$OP_REDIS_PORT" --raw CONFIG GET maxmemory-policy | tail -n 1)" noeviction
# A lease long enough to sit out the SIGSTOP below; small batches, so that a
# batch is in hand (read ahead by the last EXEC) when memory runs out.
m_start o1 MATCHER_LEASE_MS=20000 MATCHER_METRICS_PORT="$mport" MATCHER_BATCH=50 MATCHER_SNAPSHOT_EVERY=100000
mpid="$T_PID"
# no trimming: the checker and the trade count read the whole fills streams
t_start rec orderpipe-recorder RECORDER_NAME=oomrec RECORDER_METRICS_PORT="$rport" RECORDER_FLUSH_MS=10 RECORDER_TRIM_INTERVAL_MS=0
m_wait_owned 30 o1=4
op_wait_until 20 "matcher metrics" curl -sf "$murl/healthz" >/dev/null || t_fail "matcher metrics"
rec0="$(metric "$murl" matcher_recoveries_total)"
t_eq "recoveries at start (one per shard)" "$rec0" 4

# --- queue the flow while the matcher is paused, then run out of memory ---------------
kill -STOP "$mpid"
m_gen --count "$N" >/dev/null || t_fail "ordergen failed"
kill -CONT "$mpid"
op_wait_until 30 "the first fills" bash -c "(( \$(redis-cli -p $OP_REDIS_PORT XLEN 'fills:{0}') + \$(redis-cli -p $OP_REDIS_PORT XLEN 'fills:{1}') > 0 ))" ||
	t_fail "no fills before memory ran out"
t_eq "maxmemory lowered" "$(t_redis CONFIG SET maxmemory 1)" OK
op_wait_until 30 "refused publishes" bash -c "(( \$(curl -s $murl/metrics | awk '\$1 == \"matcher_publish_refused_total\" { print \$2 }') > 0 ))" ||
	t_fail "matcher_publish_refused_total stayed 0"
r1="$(metric "$murl" matcher_publish_refused_total)"
c1="$(metric "$murl" matcher_recoveries_total)"
sleep 4 # several retries (100 ms doubling) and, in the old code, several recoveries
r2="$(metric "$murl" matcher_publish_refused_total)"
c2="$(metric "$murl" matcher_recoveries_total)"
printf 'out of memory: refusals %s -> %s, recoveries %s -> %s\n' "$r1" "$r2" "$c1" "$c2"
T_CHECKS=$((T_CHECKS + 1))
((r2 > r1)) || t_fail "refusals did not grow while out of memory ($r1 -> $r2)"
t_eq "no recovery while refused" "$c2" "$rec0"
t_eq "the refusal is logged" "$(grep -q 'event=publish_refused' "$OP_STACK_DIR/o1.log" && echo yes)" yes
t_eq "still the owner of every shard" "$(m_owned_by o1)" 4
m_caught_up && t_fail "caught up while out of memory: nothing was refused"

# --- memory back: it resumes by itself ----------------------------------------------
restore_memory
m_wait_fills "$N" 180 && m_check "$N"
t_eq "no recovery after resuming" "$(metric "$murl" matcher_recoveries_total)" "$rec0"
t_eq "resumed is logged" "$(grep -q 'event=publish_resumed' "$OP_STACK_DIR/o1.log" && echo yes)" yes

# Every trade of the fills streams is one row of fills in PostgreSQL.
trades=0
for ((s = 0; s < M_SHARDS; s++)); do
	n="$(redis-cli -p "$OP_REDIS_PORT" --raw XRANGE "fills:{$s}" - + | awk 'p { if (match($0, /trade=[0-9]+/)) t += substr($0, RSTART + 6, RLENGTH - 6); p = 0 } $0 == "kind" { p = 1 } END { print t + 0 }')"
	trades=$((trades + n))
done
got=""
for ((i = 0; i < 600; i++)); do
	got="$(psql "$DATABASE_URL" -X -A -t -q -c "SELECT count(*) FROM fills")"
	[[ "$got" == "$trades" ]] && break
	sleep 0.2
done
printf 'trades in fills streams: %s, rows in fills: %s\n' "$trades" "$got"
t_eq "every trade recorded once" "$got" "$trades"
t_done

#!/usr/bin/env bash
# Recorder with its servers going away, checked against the tables
# orderpipe-fillgen expects:
#  1. PostgreSQL stopped mid-flow: /healthz 503, the recorder holds one batch
#     and reads nothing new (the pending list stays about one batch while the
#     streams grow); PostgreSQL back: it resumes by itself, everything is
#     recorded once.
#  2. Redis stopped and restarted: /healthz 503 meanwhile, then it reconnects
#     by itself and records what comes next.
# SIGTERM at the end: exit 0.
set -uo pipefail
. "$OP_ROOT/tests/integration/recorder_lib.sh"

port="$(op_free_port)"
url="http://127.0.0.1:$port"
rec_reset
for p in 1 2 3; do mkdir -p "$REC_TMP/part$p"; done

# --- 1. PostgreSQL down mid-flow --------------------------------------------------
rec_start out RECORDER_METRICS_PORT="$port" RECORDER_BATCH_ROWS=200 RECORDER_FLUSH_MS=10 REDIS_TIMEOUT_MS=500
op_wait_until 20 "recorder metrics" curl -sf "$url/healthz" >/dev/null || t_fail "recorder did not become healthy"
rec_gen --inputs 8000 --seed 51 --round 100 --pace-ms 25 --expect "$REC_TMP/part1" >"$REC_TMP/gen.out" 2>&1 &
gen=$!
sleep 0.7
"$OP_ROOT/ops/postgres.sh" stop "$OP_PG_DIR" "$OP_PG_PORT" >/dev/null 2>&1
sleep 1.5
t_http GET "$url/healthz" ""
t_eq "postgres down: healthz" "$T_STATUS" 503
t_match "postgres down: healthz body" "$T_BODY" '"postgres":"down","blocked":true'
t_eq "postgres down: blocked gauge" "$(rec_metric "$port" recorder_blocked)" 1
wait "$gen" || t_fail "fillgen: $(cat "$REC_TMP/gen.out")"
p1="$(rec_pending_total)"
sleep 1
p2="$(rec_pending_total)"
printf 'postgres down: %s then %s entries pending, %s shards with undelivered entries\n' "$p1" "$p2" "$(rec_undrained delivered)"
t_eq "postgres down: nothing new read while blocked" "$p2" "$p1"
T_CHECKS=$((T_CHECKS + 1))
((p2 <= 400)) || t_fail "postgres down: $p2 entries pending, want at most about one batch (200 rows)"
t_match "postgres down: the streams keep the rest" "$(rec_undrained delivered)" '^[1-9]'
"$OP_ROOT/ops/postgres.sh" start "$OP_PG_DIR" "$OP_PG_PORT" >/dev/null 2>&1
rec_wait_drained 90 || t_fail "postgres back: not drained"
t_match "postgres back: retries counted" "$(curl -s "$url/metrics")" 'recorder_retries_total\{target="postgres"\} [1-9]'
t_http GET "$url/healthz" ""
t_eq "postgres back: healthz" "$T_STATUS" 200
rec_check_tables "postgres stopped and restarted mid-flow" "$REC_TMP/part1"

# --- 2. Redis down and back ----------------------------------------------------------
rec_gen --inputs 1000 --seed 52 --id-base 100000000 --seq-base 1000000 --expect "$REC_TMP/part2" || t_fail "fillgen 2"
rec_wait_drained 60 || t_fail "before redis stop: not drained"
"$OP_ROOT/ops/redis.sh" stop "$OP_REDIS_DIR" "$OP_REDIS_PORT" >/dev/null 2>&1
sleep 1.5
t_http GET "$url/healthz" ""
t_eq "redis down: healthz" "$T_STATUS" 503
t_match "redis down: healthz body" "$T_BODY" '"redis":"down"'
"$OP_ROOT/ops/redis.sh" start "$OP_REDIS_DIR" "$OP_REDIS_PORT" >/dev/null 2>&1
rec_gen --inputs 1000 --seed 53 --id-base 200000000 --seq-base 2000000 --expect "$REC_TMP/part3" || t_fail "fillgen 3"
rec_wait_drained 60 || t_fail "redis back: not drained"
ok=""
for ((i = 0; i < 30; i++)); do
	t_http GET "$url/healthz" ""
	[[ "$T_STATUS" == 200 ]] && { ok=1; break; }
	sleep 0.2
done
t_eq "redis back: healthz 200 without a restart" "${ok:-no}" 1
t_match "redis back: reconnected" "$(cat "$OP_STACK_DIR/out.log")" 'event=redis_reconnected'
t_stop_all
rec_merge_expect "$REC_TMP/all" "$REC_TMP/part1" "$REC_TMP/part2" "$REC_TMP/part3"
rec_check_tables "after both outages" "$REC_TMP/all"
t_eq "no dead letters" "$(rec_psql -c "SELECT count(*) FROM dead_letters")" 0
t_done

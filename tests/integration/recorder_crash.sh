#!/usr/bin/env bash
# Recorder crashes, checked against the tables orderpipe-fillgen expects:
#  1. killed (SIGKILL, by RECORDER_FAULT=exit_after_commit:3 — test only)
#     between a commit and its XACK: the committed batch is still pending; a
#     restart under the same name reads its own pending list first (ID 0),
#     re-applies it idempotently, and the tables end exact — nothing missing,
#     nothing twice.
#  2. kill -9 at random points of a sustained flow, restarted each time (under
#     new names, so the dead ones' pending entries come back by XAUTOCLAIM,
#     and sometimes under the same name): the tables end exact.
set -uo pipefail
. "$OP_ROOT/tests/integration/recorder_lib.sh"

port="$(op_free_port)"

# --- 1. killed between commit and XACK ---------------------------------------------
rec_reset
exp="$REC_TMP/fault"
mkdir -p "$exp"
rec_gen --inputs 3000 --seed 41 --expect "$exp" || t_fail "fillgen"
rec_start crash RECORDER_METRICS_PORT=0 RECORDER_BATCH_ROWS=200 RECORDER_FAULT=exit_after_commit:3
pid="$T_PID"
rc=0
wait "$pid" || rc=$?
T_PIDS=()
t_eq "fault: killed by SIGKILL after the third commit" "$rc" 137
t_match "fault: the log says so" "$(cat "$OP_STACK_DIR/crash.log")" 'event=fault_injected what=exit_after_commit commits=3'
pending="$(rec_pending_total)"
rows="$(rec_psql -c "SELECT count(*) FROM orders")"
printf 'fault: %s entries pending (committed, not acknowledged), %s orders rows\n' "$pending" "$rows"
t_match "fault: the committed batch is still pending" "$pending" '^[1-9][0-9]*$'
t_match "fault: three batches are in the tables" "$rows" '^[1-9][0-9]*$'
rec_start crash RECORDER_METRICS_PORT="$port" RECORDER_BATCH_ROWS=200
rec_wait_drained 60 || t_fail "fault: not drained after the restart"
t_match "fault: the restart read its own pending list first" "$(cat "$OP_STACK_DIR/crash.log")" 'event=pending_recovered entries=[1-9]'
t_stop_all
rec_check_tables "killed between commit and ack, restarted" "$exp"

# --- 2. kill -9 at random points of a sustained flow --------------------------------
rec_reset
exp="$REC_TMP/chaos"
mkdir -p "$exp"
rec_gen --inputs 30000 --seed 42 --round 100 --pace-ms 15 --expect "$exp" >"$REC_TMP/gen.out" 2>&1 &
gen=$!
RANDOM=42
kills=0
# Kill recorders for as long as the flow lasts (at least 5 times, at most 30).
for ((i = 0; i < 30 && (i < 5 || $(kill -0 "$gen" 2>/dev/null && echo 1 || echo 0)); i++)); do
	name="chaos$i"
	((i % 3 == 2)) && name="chaos$((i - 1))" # sometimes the same name again
	rec_start "$name" RECORDER_METRICS_PORT=0 RECORDER_BATCH_ROWS=$((50 + RANDOM % 400)) \
		RECORDER_FLUSH_MS=$((1 + RANDOM % 20)) RECORDER_CLAIM_IDLE_MS=300 RECORDER_TRIM_INTERVAL_MS=100
	sleep "0.$((2 + RANDOM % 6))"
	kill -KILL "$T_PID" 2>/dev/null && kills=$((kills + 1))
	wait "$T_PID" 2>/dev/null
	T_PIDS=()
done
wait "$gen" || t_fail "fillgen failed: $(cat "$REC_TMP/gen.out")"
cat "$REC_TMP/gen.out"
printf 'chaos: %d recorders killed with SIGKILL mid-flow\n' "$kills"
t_match "chaos: recorders killed" "$kills" '^([5-9]|[1-3][0-9])$'
rec_start final RECORDER_METRICS_PORT="$port" RECORDER_CLAIM_IDLE_MS=300 RECORDER_TRIM_INTERVAL_MS=100
rec_wait_drained 120 || t_fail "chaos: not drained"
printf 'chaos: the last recorder reclaimed %s entries of dead ones\n' "$(rec_metric "$port" recorder_reclaimed_total)"
t_stop_all
rec_check_tables "kill -9 at random points" "$exp"
t_eq "chaos: no dead letters" "$(rec_psql -c "SELECT count(*) FROM dead_letters")" 0
t_done

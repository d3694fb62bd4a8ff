#!/usr/bin/env bash
# Recorder, normal operation, against the tables orderpipe-fillgen expects
# (computed from its own order model, not from the recorder's code):
#  1. one recorder: every order and fill recorded exactly; poison entries of
#     four kinds (undecodable, unknown symbol, two constraint violations) in
#     dead_letters and acknowledged, the rest flowing on; /metrics, /healthz.
#  2. two recorders in parallel on the same shards with small batches (so a
#     maker's TRADE is often committed before its ACCEPTED, and a REPLACED
#     after a later report of its order): final order states, prices
#     included, equal the model's last report per order.
# Sections 1 and 2 use fillgen --controls: the reports of issue 14 too
# (self-trade cancels and decrements, replaces, cancel-alls, the new
# rejections), none of which is a dead letter.
#  3. trimming: XLEN drops once entries are acknowledged, never below an
#     entry still pending (a stuck consumer's); XAUTOCLAIM then takes the
#     stuck consumer's entries over and they are recorded.
set -uo pipefail
. "$OP_ROOT/tests/integration/recorder_lib.sh"

port="$(op_free_port)"

# --- 0. entries of many inputs each (as the matcher writes one per batch) ----------
# A read asks for entries, a batch is counted in reports: the recorder must
# size its reads by the entries' size, and still record everything exactly.
rec_reset
exp="$REC_TMP/grouped"
mkdir -p "$exp"
rec_gen --inputs 6000 --poison 4 --seed 12 --group 700 --expect "$exp" || t_fail "fillgen --group"
rec_start recg RECORDER_BATCH_ROWS=2000 RECORDER_METRICS_PORT=0
rec_wait_drained 60 || t_fail "grouped entries: streams not drained in 60 s"
rec_check_tables "grouped entries" "$exp"
t_eq "grouped entries: dead letters (poison stands alone)" "$(rec_psql -c "SELECT count(*) FROM dead_letters")" "$(cat "$exp/dead.count")"
t_stop_all

# --- 1. one recorder, poison included ------------------------------------------
rec_reset
exp="$REC_TMP/one"
mkdir -p "$exp"
rec_gen --inputs 4000 --poison 8 --seed 11 --controls --expect "$exp" || t_fail "fillgen"
rec_start rec1 RECORDER_METRICS_PORT="$port" RECORDER_TRIM_INTERVAL_MS=0
op_wait_until 20 "recorder metrics on $port" curl -sf "http://127.0.0.1:$port/healthz" >/dev/null ||
	t_fail "recorder /healthz did not answer 200"
rec_wait_drained 60 || t_fail "one recorder: streams not drained in 60 s"
rec_check_tables "one recorder" "$exp"
t_match "self-trade cancels recorded" "$(rec_psql -c "SELECT count(*) FROM orders WHERE reject_reason = 'SELF_TRADE'")" '^[1-9][0-9]*$'
t_match "rejections TOO_MANY_OPEN_ORDERS and BAD_STP recorded" "$(rec_psql -c "SELECT count(DISTINCT reject_reason) FROM orders WHERE reject_reason IN ('TOO_MANY_OPEN_ORDERS', 'BAD_STP')")" '^2$'
t_eq "dead letters" "$(rec_psql -c "SELECT count(*) FROM dead_letters")" "$(cat "$exp/dead.count")"
t_eq "dead letters: undecodable" "$(rec_psql -c "SELECT count(*) FROM dead_letters WHERE error LIKE 'cannot decode%' AND raw = '\\xc167617262616765'::bytea")" 2
t_eq "dead letters: unknown symbol" "$(rec_psql -c "SELECT count(*) FROM dead_letters WHERE error LIKE 'unknown symbol ''NOPE''%'")" 2
t_eq "dead letters: constraint (qty)" "$(rec_psql -c "SELECT count(*) FROM dead_letters WHERE error LIKE '%orders_qty_check%'")" 2
t_eq "dead letters: constraint (side)" "$(rec_psql -c "SELECT count(*) FROM dead_letters WHERE error LIKE '%orders_side_check%'")" 2
t_eq "dead letters keep the stream and entry id" "$(rec_psql -c "SELECT count(*) FROM dead_letters WHERE stream ~ '^fills:\{[0-9]+\}$' AND entry_id ~ '^[0-9]+-[0-9]+$'")" 8
t_eq "pending after drain" "$(rec_pending_total)" 0
t_http GET "http://127.0.0.1:$port/healthz" ""
t_eq "healthz status" "$T_STATUS" 200
t_match "healthz body" "$T_BODY" '"redis":"up","postgres":"up"'
fills="$(wc -l <"$exp/fills.tsv")"
t_eq "metric fills written" "$(rec_metric "$port" recorder_fills_written_total)" "$fills"
t_eq "metric dead letters" "$(rec_metric "$port" recorder_dead_letters_total)" 8
t_match "metric bisects (constraint poison isolated by splitting)" "$(rec_metric "$port" recorder_bisects_total)" '^[1-9][0-9]*$'
t_match "metric ignored rejects" "$(rec_metric "$port" recorder_ignored_rejects_total)" '^[1-9][0-9]*$'
t_match "metric lag per shard" "$(curl -s "http://127.0.0.1:$port/metrics")" 'recorder_lag_entries\{shard="0"\} 0'
t_match "metric commit histogram" "$(curl -s "http://127.0.0.1:$port/metrics")" 'recorder_commit_seconds_count [1-9]'
t_http GET "http://127.0.0.1:$port/nope" ""
t_eq "unknown path" "$T_STATUS" 404
t_stop_all

# Redelivery of everything (the group rewound) changes nothing: idempotent.
for ((s = 0; s < REC_SHARDS; s++)); do t_redis XGROUP SETID "fills:{$s}" recorders 0 >/dev/null; done
rec_start rec1b RECORDER_METRICS_PORT="$port" RECORDER_TRIM_INTERVAL_MS=0
rec_wait_drained 60 || t_fail "replay: streams not drained"
# The direct COPY met the recorded rows: every batch went through the safe path.
t_match "metric safe writes (redelivered batches redone with ON CONFLICT)" "$(rec_metric "$port" recorder_safe_writes_total)" '^[1-9][0-9]*$'
t_eq "metric fills written by the replay" "$(rec_metric "$port" recorder_fills_written_total)" 0
t_stop_all
rec_check_tables "everything delivered twice" "$exp"
t_eq "dead letters after replay" "$(rec_psql -c "SELECT count(*) FROM dead_letters")" 8

# --- 2. two recorders in parallel ------------------------------------------------
rec_reset
exp="$REC_TMP/two"
mkdir -p "$exp"
port2="$(op_free_port "$port")"
rec_start recA RECORDER_METRICS_PORT="$port" RECORDER_BATCH_ROWS=40 RECORDER_FLUSH_MS=5
rec_start recB RECORDER_METRICS_PORT="$port2" RECORDER_BATCH_ROWS=40 RECORDER_FLUSH_MS=5
sleep 0.5
rec_gen --inputs 6000 --seed 22 --round 100 --pace-ms 5 --controls --expect "$exp" || t_fail "fillgen"
rec_wait_drained 90 || t_fail "two recorders: streams not drained in 90 s"
a="$(rec_metric "$port" recorder_entries_total)"
b="$(rec_metric "$port2" recorder_entries_total)"
printf 'two recorders: A took %s entries, B took %s\n' "$a" "$b"
t_match "recorder A recorded a share" "${a:-0}" '^[1-9][0-9]*$'
t_match "recorder B recorded a share" "${b:-0}" '^[1-9][0-9]*$'
t_stop_all
rec_check_tables "two recorders" "$exp"
t_eq "no order left without its description" "$(rec_psql -c "SELECT count(*) FROM orders WHERE side IS NULL OR created_at IS NULL")" 0

# --- 3. trimming, never below a pending entry; XAUTOCLAIM -------------------------
# A is recorded and trimmed; a stuck consumer then takes the first entries of
# B and never acknowledges them; C follows. Trimming may drop A, never B or C.
rec_reset
for part in A:1:1 B:100000000:1000000 C:200000000:2000000; do
	IFS=: read -r name idb seqb <<<"$part"
	mkdir -p "$REC_TMP/trim$name"
done
rec_gen --inputs 2000 --seed 33 --expect "$REC_TMP/trimA" || t_fail "fillgen A"
# With the default RECORDER_FILLS_RETAIN_MS (60 s), entries this young stay
# in the streams once recorded (feed clients resume from them).
rec_start retain RECORDER_METRICS_PORT="$port" RECORDER_TRIM_INTERVAL_MS=200 RECORDER_CLAIM_IDLE_MS=0
rec_wait_drained 60 || t_fail "retain A: not drained"
sleep 0.6
t_eq "retention: the 2000 recorded entries younger than RECORDER_FILLS_RETAIN_MS are kept" \
	"$(rec_xlen_total)" 2000
t_stop_all
# The rest of this section trims as soon as recorded (retention 0).
rec_start rect RECORDER_METRICS_PORT="$port" RECORDER_TRIM_INTERVAL_MS=200 RECORDER_CLAIM_IDLE_MS=0 \
	RECORDER_FILLS_RETAIN_MS=0
rec_wait_drained 60 || t_fail "trim A: not drained"
sleep 0.6
t_stop_all
len_a="$(rec_xlen_total)"
T_CHECKS=$((T_CHECKS + 1))
((len_a < 1000)) || t_fail "trim: XLEN $len_a once the 2000 entries of A were acknowledged, want it well below"
rec_gen --inputs 1000 --seed 34 --id-base 100000000 --seq-base 1000000 --expect "$REC_TMP/trimB" || t_fail "fillgen B"
declare -A stuck
nstuck=0
for ((s = 0; s < REC_SHARDS; s++)); do
	stuck[$s]="$(redis-cli -p "$OP_REDIS_PORT" --raw XREADGROUP GROUP recorders stuck COUNT 5 STREAMS "fills:{$s}" '>' 2>/dev/null | sed -n 2p)"
done
nstuck="$(rec_pending_total)"
rec_gen --inputs 1000 --seed 35 --id-base 200000000 --seq-base 2000000 --expect "$REC_TMP/trimC" || t_fail "fillgen C"
total="$(rec_xlen_total)"
rec_start rect2 RECORDER_METRICS_PORT="$port" RECORDER_TRIM_INTERVAL_MS=200 RECORDER_CLAIM_IDLE_MS=0 \
	RECORDER_FILLS_RETAIN_MS=0
for ((i = 0; i < 300; i++)); do # everything delivered, only the stuck entries pending
	[[ "$(rec_undrained delivered)" == 0 && "$(rec_pending_total)" == "$nstuck" ]] && break
	sleep 0.1
done
sleep 1 # a few trim rounds
len="$(rec_xlen_total)"
printf 'trim: XLEN %s after A (2000 entries) was recorded, %s with B+C added and %s stuck entries of B pending, %s after B+C were recorded\n' "$len_a" "$total" "$nstuck" "$len"
T_CHECKS=$((T_CHECKS + 1))
((len >= 2000 && len <= total)) || t_fail "trim: XLEN $len, want the 2000 entries of B and C kept (the stuck ones are the first of B)"
for ((s = 0; s < REC_SHARDS; s++)); do
	[[ -n "${stuck[$s]}" ]] || continue
	# every entry from the stuck one on is still there
	want="$(redis-cli -p "$OP_REDIS_PORT" --raw XINFO STREAM "fills:{$s}" | awk 'p { print; exit } /^entries-added$/ { p = 1 }')"
	have="$(redis-cli -p "$OP_REDIS_PORT" --raw XRANGE "fills:{$s}" "${stuck[$s]}" + | grep -c '^[0-9]*-[0-9]*$')"
	first="$(redis-cli -p "$OP_REDIS_PORT" --raw XRANGE "fills:{$s}" - + COUNT 1 | head -n 1)"
	t_eq "fills:{$s}: the stuck entry ${stuck[$s]} is still there" \
		"$(redis-cli -p "$OP_REDIS_PORT" --raw XRANGE "fills:{$s}" "${stuck[$s]}" "${stuck[$s]}" | head -n 1)" "${stuck[$s]}"
	T_CHECKS=$((T_CHECKS + 1))
	[[ "$first" < "${stuck[$s]}" || "$first" == "${stuck[$s]}" ]] || t_fail "fills:{$s}: first entry $first is above the stuck ${stuck[$s]} ($have of $want entries left)"
done
t_stop_all
# A recorder that reclaims entries idle for 300 ms takes the stuck ones over.
sleep 0.4
rec_start rect3 RECORDER_METRICS_PORT="$port" RECORDER_TRIM_INTERVAL_MS=200 RECORDER_CLAIM_IDLE_MS=300 \
	RECORDER_FILLS_RETAIN_MS=0
rec_wait_drained 30 || t_fail "reclaim: streams not drained"
t_eq "metric reclaimed" "$(rec_metric "$port" recorder_reclaimed_total)" "$nstuck"
sleep 1
final="$(rec_xlen_total)"
printf 'trim: XLEN %s once everything is acknowledged\n' "$final"
T_CHECKS=$((T_CHECKS + 1))
((final < total / 3)) || t_fail "trim: XLEN $final did not drop well below $total"
t_match "metric trimmed" "$(rec_metric "$port" recorder_trimmed_total)" '^[1-9][0-9]*$'
t_stop_all
rec_merge_expect "$REC_TMP/trim" "$REC_TMP/trimA" "$REC_TMP/trimB" "$REC_TMP/trimC"
rec_check_tables "trim and reclaim" "$REC_TMP/trim"
t_done

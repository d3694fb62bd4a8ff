#!/usr/bin/env bash
# Matcher fault test of issue 15: kill -9 matchers while GTD orders and
# armed dead-man switches exist; the successors expire them at exactly the
# same inputs as one uninterrupted run of the log would.
#   A seeded flow with timers (ordergen --timers: GTD orders living 20 ms …
#   8 s, dead-man arms of 0.2 … 6 s and disarms, times on the wall clock) is
#   written at 2,000 inputs/s to three matchers (2/1/1 shards):
#   1. the owner of two shards is killed (-9) mid-flow: the two others take
#      them over (snapshot + replay + pending) while the flow goes on;
#   2. right after the flow, the owner of two shards is killed (-9) while
#      orders and switches are still due: only ticks move time now, and the
#      last matcher takes the shards over and expires what is left;
#   3. once every shard is idle with nothing due, the checker's log mode
#      replays each orders:{S} (with every tick any owner wrote) through a
#      fresh engine and compares its reports with fills:{S}, byte for byte.
#   The test fails unless GTD orders expired, switches fired and cancelled
#   orders, the successor of (2) published expiries or firings itself,
#   nothing is due or pending at the end, and the recoveries loaded
#   snapshots (the engine's timers went through eng_snapshot/eng_restore).
#
# The log must stay whole for the replay, but snapshots trim orders:{S}
# (XTRIM MINID ~ <snapshot id>): `~` only removes whole stream nodes, so the
# test makes each stream one node (stream-node-max-entries and -bytes 0,
# restored at the end) and snapshots still happen as usual.
set -uo pipefail
. "$OP_ROOT/tests/integration/matcher_lib.sh"

T_COUNT=12000 # inputs: 6 s at T_RATE
T_RATE=2000

# tm_check: the checker's log mode; prints its output, returns its status.
tm_check() {
	"$OP_BUILD/tests/integration/test_matcher_check" log 2>&1
}

# tm_count NAME OUT: the value of NAME=<n> in the checker's output OUT.
tm_count() {
	sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$2"
}

# FILLS_TIMED_LUA: the EXPIRED and DEAD_MAN reports (rsn 7, 8) of the fills
# entries after ARGV[i] ('-': all) of stream KEYS[i].
FILLS_TIMED_LUA="local n = 0
for i = 1, #KEYS do
  local from = ARGV[i] == '-' and '-' or '(' .. ARGV[i]
  for _, e in ipairs(redis.call('XRANGE', KEYS[i], from, '+')) do
    local f = e[2]
    for j = 1, #f, 2 do
      if f[j] == 'm' then
        for _, r in ipairs(cmsgpack.unpack(f[j + 1])) do
          if r.rsn == 7 or r.rsn == 8 then n = n + 1 end
        end
      end
    end
  end
end
return n"

old_entries="$(t_redis CONFIG GET stream-node-max-entries | sed -n 2p)"
old_bytes="$(t_redis CONFIG GET stream-node-max-bytes | sed -n 2p)"
t_redis CONFIG SET stream-node-max-entries 0 >/dev/null
t_redis CONFIG SET stream-node-max-bytes 0 >/dev/null
m_reset

m_start a1
pa="$T_PID"
m_start b1
pb="$T_PID"
m_start c1
m_wait_owned 20 a1=2 b1=1 c1=1

# --- 1. kill -9 mid-flow ------------------------------------------------------------
m_gen --count "$T_COUNT" --rate "$T_RATE" --timers --ts0 "$(date +%s%N)" \
	--ts-step $((1000000000 / T_RATE)) --batch 100 --group 25 >"$M_TMP/gen.log" 2>&1 &
gen=$!
sleep 2
kill -KILL "$pa"
m_forget "$pa"
m_wait_owned 20 b1=2 c1=2
wait "$gen" || t_fail "ordergen failed: $(cat "$M_TMP/gen.log")"

# --- 2. kill -9 after the flow, with timers still due ------------------------------
sleep 0.3
shards=() keys=() from=()
for ((s = 0; s < M_SHARDS; s++)); do
	[[ "$(t_redis GET "lease:{$s}")" == b1 ]] || continue
	shards+=("$s")
	keys+=("fills:{$s}")
	last="$(redis-cli -p "$OP_REDIS_PORT" --raw XREVRANGE "fills:{$s}" + - COUNT 1 | sed -n 1p)"
	from+=("${last:--}")
done
kill -KILL "$pb"
m_forget "$pb"
t_eq "b1 owned two shards when killed" "${#shards[@]}" 2
m_wait_owned 20 c1=4

# --- 3. idle, nothing due: the fills equal the replay of the log ---------------------
deadline=$((SECONDS + 90))
out=""
while :; do
	if m_caught_up && out="$(tm_check)" && [[ "$(tm_count pending "$out")" == 0 ]]; then
		break
	fi
	if ((SECONDS >= deadline)); then
		t_fail "timed out waiting for every shard to be idle with nothing due: ${out:-not caught up}"
		break
	fi
	sleep 1
done
printf '%s\n' "$out"
T_CHECKS=$((T_CHECKS + 1))
t_match "the fills are the replay of the log, every tick included" "$out" '^matchcheck: ok: log of'
for k in gtd expired armed dead_man_fired dead_man_cancelled ticks; do
	n="$(tm_count "$k" "$out")"
	[[ "$k" == ticks ]] && n="$(sed -n 's/.*(\([0-9]*\) ticks,.*/\1/p' <<<"$out")"
	[[ "${n:-0}" -gt 0 ]] || t_fail "no $k in the log's reports: the test proved nothing ($out)"
done
t_eq "nothing due on any shard" "$(tm_count pending "$out")" 0
after="$(t_redis EVAL "$FILLS_TIMED_LUA" "${#keys[@]}" "${keys[@]}" "${from[@]}")"
[[ "$after" =~ ^[0-9]+$ && "$after" -gt 0 ]] ||
	t_fail "the successor of the second kill published no expiry or firing on shards ${shards[*]} ($after)"
printf 'expiries and firings published after the second kill: %s\n' "$after"
for ((s = 0; s < M_SHARDS; s++)); do
	t_eq "shard $s: nothing pending in the group" \
		"$(redis-cli -p "$OP_REDIS_PORT" --raw XPENDING "orders:{$s}" matchers | sed -n 1p)" 0
done
t_match "the takeovers loaded snapshots" "$(cat "$OP_STACK_DIR/b1.log" "$OP_STACK_DIR/c1.log")" 'event=snapshot_loaded'
t_match "the last matcher recovered the shards of the second kill" "$(cat "$OP_STACK_DIR/c1.log")" 'event=recovered'
t_stop_all
t_redis CONFIG SET stream-node-max-entries "${old_entries:-100}" >/dev/null
t_redis CONFIG SET stream-node-max-bytes "${old_bytes:-4096}" >/dev/null
t_done

#!/usr/bin/env bash
# Matcher ticks (issue 15): the owner of an idle shard appends tick inputs to
# orders:{S} so that engine time moves. MATCHER_TICK_FORCE=1 makes the
# matcher tick as if an engine event were always due (the engine has none
# before GTD and the dead-man switch land), every MATCHER_TICK_MS of idleness.
#   1. ticks appear only in the shards the matcher owns (another "owner",
#      which writes nothing, holds shard 3), each an entry with ingest's
#      readable fields and `seq` = oseq:{S} before it; each is read back and
#      gets one report in fills:{S}; oseq:{S} = odone:{S} = the inputs held;
#      matcher_ticks_total counts them; MATCHER_TICK_MS=0 writes none
#   2. a deposed owner writes no tick: its lease taken over while it runs,
#      and while it is paused (SIGSTOP … SIGCONT) within its lease
set -uo pipefail
. "$OP_ROOT/tests/integration/matcher_lib.sh"

# tick_check S: "ok N" when every entry of orders:{S} is a tick written as
# ingest writes an entry (fields type sym n ids seq m in that order, type
# tick, sym "", n 1, ids -, seq counting from 0) and oseq:{S} is N,
# their number; else what is wrong.
TICK_LUA="local es = redis.call('XRANGE', KEYS[1], '-', '+')
for i, e in ipairs(es) do
  local names, f = {}, {}
  for j = 1, #e[2], 2 do names[#names + 1] = e[2][j]; f[e[2][j]] = e[2][j + 1] end
  local want = tostring(i - 1)
  if table.concat(names, ',') ~= 'type,sym,n,ids,seq,m' then return 'fields ' .. table.concat(names, ',') .. ' of ' .. e[1] end
  if f.type ~= 'tick' or f.sym ~= '' or f.n ~= '1' or f.ids ~= '-' or f.seq ~= want then
    return 'entry ' .. e[1] .. ': type=' .. f.type .. ' sym=' .. f.sym .. ' n=' .. f.n .. ' ids=' .. f.ids .. ' seq=' .. f.seq .. ' want seq ' .. want
  end
end
local oseq = redis.call('GET', KEYS[2]) or '0'
if oseq ~= tostring(#es) then return 'oseq ' .. oseq .. ' but ' .. #es .. ' inputs' end
return 'ok ' .. #es"
tick_check() {
	t_redis EVAL "$TICK_LUA" 2 "orders:{$1}" "oseq:{$1}"
}

# fills_sum S: "<inputs> <reports>" of fills:{S}: the sum of its entries'
# `n`, and of the counts in their `kind` fields.
FILLS_LUA="local n, r = 0, 0
for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
  local f = e[2]
  for j = 1, #f, 2 do
    if f[j] == 'n' then n = n + tonumber(f[j + 1]) end
    if f[j] == 'kind' then for c in string.gmatch(f[j + 1], '=(%d+)') do r = r + tonumber(c) end end
  end
end
return n .. ' ' .. r"
fills_sum() {
	t_redis EVAL "$FILLS_LUA" 1 "fills:{$1}"
}

xlen() {
	t_redis XLEN "orders:{$1}"
}

# wait_ticks SECS S N: until orders:{S} holds at least N entries
wait_ticks() {
	local deadline=$((SECONDS + $1))
	while (($(xlen "$2") < $3)); do
		if ((SECONDS >= deadline)); then
			t_fail "timed out after $1 s waiting for $3 ticks on shard $2 (have $(xlen "$2"))"
			return 1
		fi
		sleep 0.1
	done
}

# --- 1. ticks of the owned shards only, read back and reported ------------------------
m_reset
t_redis SET 'lease:{3}' intruder PX 600000 >/dev/null
port="$(op_free_port)"
m_start t1 MATCHER_TICK_MS=50 MATCHER_TICK_FORCE=1 MATCHER_METRICS_PORT="$port"
for s in 0 1 2; do wait_ticks 20 "$s" 5; done
t_eq "no tick on shard 3, which another owner holds" "$(xlen 3)" 0
t_eq "no oseq on shard 3" "$(t_redis EXISTS 'oseq:{3}')" 0
t_match "a tick's m is a tick input (k tick, id 0, ts, sym and acct empty)" \
	"$("$OP_BUILD/bin/orderpipe-tail" -n 1 -s - 'orders:{0}' 2>&1)" '"type":"tick","sym":"","n":"1","ids":"-","seq":"0","m":\[\{"k":"tick","id":"0","ts":[1-9][0-9]{17,},"sym":"","acct":""\}\]'
t_http GET "http://127.0.0.1:$port/metrics" ""
t_match "matcher_ticks_total counts them" "$T_BODY" 'matcher_ticks_total [1-9][0-9]*'
t_stop_all # hands the shards back: whatever was read is published
total=0
for s in 0 1 2; do
	c="$(tick_check "$s")"
	t_match "shard $s: ticks written as ingest writes entries, oseq raised with them" "$c" '^ok [0-9]+$'
	n="${c#ok }"
	t_eq "shard $s: inputs processed (odone) = oseq" "$(t_redis GET "odone:{$s}")" "$n"
	t_eq "shard $s: one report per tick, every tick covered" "$(fills_sum "$s")" "$n $n"
	t_eq "shard $s: nothing left pending" "$(redis-cli -p "$OP_REDIS_PORT" --raw XPENDING "orders:{$s}" matchers | sed -n 1p)" 0
	total=$((total + ${n:-0}))
done
t_eq "no report on shard 3" "$(t_redis XLEN 'fills:{3}')" 0
t_match "its start line names the tick settings" "$(cat "$OP_STACK_DIR/t1.log")" 'event=started.*tick_ms=50 tick_force=1'
printf 'ticks on shards 0-2: %d\n' "$total"

# MATCHER_TICK_MS=0: never, even with an event due
m_reset
m_start t0 MATCHER_TICK_MS=0 MATCHER_TICK_FORCE=1
m_wait_owned 20 t0=4
sleep 1
for s in 0 1 2 3; do t_eq "MATCHER_TICK_MS=0: no tick on shard $s" "$(xlen "$s")" 0; done
t_stop_all

# --- 2. a deposed owner writes no tick -------------------------------------------------
m_reset
m_start t2 MATCHER_TICK_MS=50 MATCHER_TICK_FORCE=1
pid="$T_PID"
for s in 0 1 2 3; do wait_ticks 20 "$s" 3; done
# Taken over while it runs: from the moment the lease changed, the fence
# refuses its ticks (an EXEC watched before the change returns nil).
t_redis SET 'lease:{0}' intruder PX 600000 >/dev/null
len0="$(xlen 0)" seq0="$(t_redis GET 'oseq:{0}')"
# Paused, taken over within its lease (its local deadline has not passed),
# resumed: its prefetched fence or the next one sees the change.
kill -STOP "$pid"
t_redis SET 'lease:{1}' intruder PX 600000 >/dev/null
len1="$(xlen 1)" seq1="$(t_redis GET 'oseq:{1}')" len2="$(xlen 2)"
sleep 0.3
kill -CONT "$pid"
sleep 1.5
t_eq "taken over while running: no tick after the takeover" "$(xlen 0)" "$len0"
t_eq "taken over while running: oseq unchanged" "$(t_redis GET 'oseq:{0}')" "$seq0"
t_eq "taken over while paused: no tick after the takeover" "$(xlen 1)" "$len1"
t_eq "taken over while paused: oseq unchanged" "$(t_redis GET 'oseq:{1}')" "$seq1"
t_match "its own shards still tick" "$(xlen 2)" "^[0-9]+$"
(($(xlen 2) > len2)) || t_fail "shard 2 did not tick after SIGCONT ($(xlen 2) <= $len2)"
t_match "it dropped the shards it lost" "$(grep -c 'event=lease_lost' "$OP_STACK_DIR/t2.log")" '^[2-9]$'
for s in 0 1; do
	t_match "shard $s: entries as ingest writes them, oseq = inputs" "$(tick_check "$s")" '^ok [0-9]+$'
done
t_stop_all
for s in 2 3; do
	c="$(tick_check "$s")"
	t_match "shard $s: entries as ingest writes them, oseq = inputs" "$c" '^ok [0-9]+$'
	t_eq "shard $s: odone = oseq after the hand-back" "$(t_redis GET "odone:{$s}")" "${c#ok }"
done
t_done

#!/usr/bin/env bash
# Out of memory inside the matcher (issue 11, part 5): MATCHER_FAULT=fail_alloc:N
# makes the Nth allocation through shared/alloc.h fail, once. For each N of a
# sweep that covers start-up, taking the leases, recovery and the first
# batches (their buffers grow there), the matcher must either stop cleanly
# (exit status non-zero, "out of memory" said) or get over it (the shard
# recovers) — and never publish a half batch: after a clean matcher finished
# the flow, the checker finds every input's reports exactly once.
set -uo pipefail
. "$OP_ROOT/tests/integration/matcher_lib.sh"

N=3000
in_batch=0
for n in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
	m_reset
	m_gen --count "$N" >/dev/null || t_fail "ordergen failed"
	m_start "f$n" MATCHER_FAULT="fail_alloc:$n" MATCHER_BATCH=500
	fpid="$T_PID"
	for ((i = 0; i < 300; i++)); do
		m_caught_up && break
		kill -0 "$fpid" 2>/dev/null || break
		sleep 0.1
	done
	log="$OP_STACK_DIR/f$n.log"
	if kill -0 "$fpid" 2>/dev/null; then
		kill -TERM "$fpid"
		wait "$fpid"
		st=$?
		m_forget "$fpid"
		t_eq "fail_alloc:$n: stopped by SIGTERM, exit 0" "$st" 0
		outcome="went on"
	else
		wait "$fpid"
		st=$?
		m_forget "$fpid"
		T_CHECKS=$((T_CHECKS + 1))
		((st != 0)) || t_fail "fail_alloc:$n: exited 0 without being asked"
		t_eq "fail_alloc:$n: says why it stopped" "$(grep -qi 'out of memory\|out_of_memory' "$log" && echo yes)" yes
		outcome="exited $st"
	fi
	hit="$(grep -o 'event=out_of_memory what=[a-z_]*' "$log" | head -n 1)"
	[[ "$hit" == *what=batch* || "$hit" == *what=outputs* || "$hit" == *what=xack* ]] && in_batch=$((in_batch + 1))
	printf 'fail_alloc:%s: %s (%s)\n' "$n" "$outcome" "${hit:-no out_of_memory line}"
	# A matcher without the fault finishes the flow; the fills are checked whole.
	m_start "c$n"
	m_wait_fills "$N" 60 && m_check "$N" >/dev/null
	kill -TERM "$T_PID"
	wait "$T_PID"
	m_forget "$T_PID"
done
printf 'allocations failed inside a batch: %s runs\n' "$in_batch"
T_CHECKS=$((T_CHECKS + 1))
((in_batch > 0)) || t_fail "no run failed an allocation of a batch: move the sweep"
t_done

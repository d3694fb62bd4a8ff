#!/usr/bin/env bash
# Load benchmark of the whole pipeline: ingest -> Redis -> matcher -> Redis ->
# recorder -> PostgreSQL at a target rate for a fixed time, with both
# durability modes, and at half the rate for latency. Writes
# var/bench/report.md and PNG plots (gnuplot) next to it.
#
#   bench/e2e.sh <build-dir>        (make bench BENCH=e2e)
#
# Settings: BENCH_RATE (orders/s offered, default 100000), BENCH_TIME (s,
# default 60), BENCH_BATCH (orders per request, 100), BENCH_CONNS (32),
# PL_MATCHERS / PL_RECORDERS (1 / 1), BENCH_MODES ("always everysec"),
# BENCH_HALF (1; 0 skips the two runs below saturation: the full-rate runs
# alone, for CPU-per-order comparisons), OP_REDIS_CLUSTER (1: the Redis is a
# local six-node Redis Cluster, 3 primaries + 3 replicas, ops/redis-cluster.sh;
# the "redis" CPU per order is then the sum of the six redis-servers).
#
# Measured per run: CPU per order of every kind of process over the load +
# drain window (the line "cpu per order (us): …"), match latency (ingest
# receipt -> fills entry in Redis; runs below saturation), orders offered and accepted per second (loadgen), orders
# and fills recorded in PostgreSQL (zero loss = every accepted order has its
# row), end-to-end latency of each fill from ingest receipt (the taker's ts,
# fills.matched_at) to its insert in the committing transaction
# (fills.recorded_at), stream backlogs, RSS of every process, Redis
# used_memory and CPU per process, every second.
set -euo pipefail
OP_BUILD="$(cd "${1:-build/rel}" && pwd)"
OP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export OP_BUILD OP_ROOT
rate="${BENCH_RATE:-100000}"
secs="${BENCH_TIME:-60}"
batch="${BENCH_BATCH:-100}"
conns="${BENCH_CONNS:-64}"
modes="${BENCH_MODES:-always everysec}"
out="$OP_ROOT/var/bench"
mkdir -p "$out"
rm -f "$out"/run-*.csv "$out"/run-*.txt "$out"/run-*.row "$out"/*.png "$out"/cpu.dat

printf 'machine: %s, %s cores, %s, %s GiB RAM\n' "$(uname -m)" "$(nproc)" \
	"$(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//')" \
	"$(awk '/MemTotal/ {printf "%.0f", $2/1048576}' /proc/meminfo)"
printf 'load: loadgen %s orders/s offered for %s s, %s orders per batch request, %s connections; matchers %s, recorders %s, ORDER_SHARDS %s\n' \
	"$rate" "$secs" "$batch" "$conns" "${PL_MATCHERS:-1}" "${PL_RECORDERS:-1}" "${ORDER_SHARDS:-4}"
if [[ "${OP_REDIS_CLUSTER:-0}" == 1 ]]; then
	redis_desc="a local Redis Cluster: 6 redis-servers, 3 primaries + 3 replicas (OP_REDIS_CLUSTER=1; redis CPU = all six)"
else
	redis_desc="one redis-server"
fi
printf 'redis: %s\n' "$redis_desc"

results=()
# run NAME FSYNC RATE: one run; appends a row to results.
run() {
	local name="$1" fsync="$2" r="$3"
	printf '\n==== run %s: appendfsync %s, %s orders/s offered for %s s\n' "$name" "$fsync" "$r" "$secs"
	(
		export OP_REDIS_FSYNC="$fsync"
		. "$OP_ROOT/bench/lib/pipeline.sh"
		trap pl_stop EXIT
		pl_start
		pl_start_sampling "$out/run-$name-samples.csv"
		# Match latency (ingest receipt -> fills entry in Redis) in the runs
		# below saturation only: its reader is one more XREAD client of every
		# fills entry, Redis CPU the full-rate runs should not pay.
		ml_pid=""
		if [[ "$name" != *-full ]]; then
			"$OP_BUILD/bench/tools/matchlat" >"$out/run-$name-matchlat.txt" 2>&1 &
			ml_pid=$!
		fi
		cpu0="$(pl_cpu_snapshot)"
		me=$BASHPID # (inside $(...) BASHPID would name the substitution's subshell)
		lg0="$(awk '{print $16 + $17}' "/proc/$me/stat")" # waited-for children of this shell: loadgen
		summary="$("$OP_BUILD/bench/tools/loadgen" --port "$pl_ingest_port" --rate "$r" --duration "$secs" \
			--batch "$batch" --conns "$conns" --csv "$out/run-$name-load.csv")"
		lg1="$(awk '{print $16 + $17}' "/proc/$me/stat")"
		printf '%s\n' "$summary"
		t_end=$SECONDS
		drained=yes
		pl_wait_drained 300 || drained=no
		drain_s=$((SECONDS - t_end))
		cpu1="$(pl_cpu_snapshot)"
		match="not measured (full-rate run)"
		if [[ -n "$ml_pid" ]]; then
			kill -TERM "$ml_pid" 2>/dev/null || true
			wait "$ml_pid" 2>/dev/null || true
			match="$(sed -n 's/^match latency (ms): //p' "$out/run-$name-matchlat.txt")"
		fi
		sleep 2
		pl_stop_sampling
		accepted="$(sed -E 's/.* accepted ([0-9]+) .*/\1/' <<<"$summary")"
		orders="$(pl_psql "SELECT count(*) FROM orders")"
		fills="$(pl_psql "SELECT count(*) FROM fills")"
		lat="$(pl_psql "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) || ' ' ||
			round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1) || ' ' ||
			round(percentile_cont(0.999) WITHIN GROUP (ORDER BY ms)::numeric, 1)
			FROM (SELECT extract(epoch FROM recorded_at - matched_at) * 1000 AS ms FROM fills) l")"
		pl_psql "COPY (SELECT s - min(s) OVER () + 1, count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY ms),
			percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), percentile_cont(0.999) WITHIN GROUP (ORDER BY ms)
			FROM (SELECT floor(extract(epoch FROM matched_at)) AS s,
			             extract(epoch FROM recorded_at - matched_at) * 1000 AS ms FROM fills) x
			GROUP BY s ORDER BY s) TO STDOUT WITH CSV" >"$out/run-$name-latency.csv"
		cpu="$(awk -F, 'NR==1 {for (i=1;i<=NF;i++) if ($i ~ /^cpu_/) {n[i]=substr($i,5)}; next}
			{for (i in n) {s[i]+=$i}; rows++} END {for (i in n) printf "%s %.0f%% ", n[i], s[i]/rows}' \
			"$out/run-$name-samples.csv")"
		loss=$([[ "$orders" == "$accepted" ]] && echo "zero loss" || echo "LOSS: $accepted accepted, $orders recorded")
		printf 'accepted %s orders (%s/s), recorded %s orders and %s fills; %s; drained %s s after the load (%s)\n' \
			"$accepted" "$((accepted / secs))" "$orders" "$fills" "$loss" "$drain_s" "$drained"
		printf 'end-to-end latency of fills (ingest receipt -> recorded), ms: p50 %s p99 %s p99.9 %s\n' $lat
		printf 'match latency (ingest receipt -> fills entry in redis), ms: %s\n' "${match:-none}"
		# CPU per order over the load + drain window: ticks / CLK_TCK / orders
		perorder="$(awk -v a="$cpu0" -v b="$cpu1" -v lg="$((lg1 - lg0))" -v hz="$(getconf CLK_TCK)" -v n="$orders" '
			BEGIN { na = split(a, x, " "); split(b, y, " "); tot = 0
				for (i = 1; i < na; i += 2) { us = (y[i+1] - x[i+1]) * 1e6 / hz / (n ? n : 1); tot += us
					out = out sprintf("%s %.1f ", x[i], us) }
				us = lg * 1e6 / hz / (n ? n : 1); tot += us
				printf "%sloadgen %.1f total %.1f", out, us, tot }')"
		printf 'cpu per order (us): %s\n' "$perorder"
		printf 'mean cpu by process: %s\n' "$cpu"
		# sustained: what the pipeline recorded per second, load time plus the
		# drain after it (the rate it can keep up with indefinitely)
		sustained=$((orders / (secs + drain_s)))
		printf 'sustained end to end: %s orders/s (%s recorded in %s s of load + %s s of drain)\n' \
			"$sustained" "$orders" "$secs" "$drain_s"
		printf '%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s\n' "$name" "$fsync" "$r" "$((accepted / secs))" "$sustained" \
			"$orders" "$fills" "$loss" "$drain_s" "$lat" "$cpu" "$perorder" "$match" >"$out/run-$name.row"
		printf '%s %s\n' "$name" "$perorder" >"$out/run-$name-cpu.txt"
	)
}

for m in $modes; do
	run "$m-full" "$m" "$rate"
done
if [[ "${BENCH_HALF:-1}" != 0 ]]; then
	run "always-half" always $((rate / 2))
	# and at half of what the pipeline sustained above: latency below saturation
	IFS='|' read -r _ _ _ _ sus _ <"$out/run-always-full.row"
	run "always-halfsustained" always $((sus / 2))
fi

# ---- report ------------------------------------------------------------------
plot() { # plot NAME TITLE YLABEL "using-spec…" [extra gnuplot settings]
	local name="$1" title="$2" ylabel="$3" spec="$4"
	gnuplot -e "set terminal png size 1000,500 noenhanced; set output '$out/$name.png'; set title '$title'; ${5:-}
		set xlabel 'seconds'; set ylabel '$ylabel'; set datafile separator ','; set key outside;
		set grid; plot $spec" 2>/dev/null || op_warn=1
}
specs=""
for f in "$out"/run-*-load.csv; do
	n="$(basename "$f" -load.csv)"; n="${n#run-}"
	specs+="'$f' every ::1 using 1:3 with lines title '$n accepted/s',"
done
plot throughput "Orders accepted per second" "orders/s" "${specs%,}"
specs=""
for f in "$out"/run-*-latency.csv; do
	n="$(basename "$f" -latency.csv)"; n="${n#run-}"
	specs+="'$f' using 1:4 with lines title '$n p99',"
	specs+="'$f' using 1:3 with lines title '$n p50',"
done
plot latency "End-to-end fill latency (ingest receipt to PostgreSQL), per second of match time" "ms (log scale)" "${specs%,}" "set logscale y;"
f="$out/run-always-full-samples.csv"
if [[ -f "$f" ]]; then
	hdr="$(head -1 "$f")"
	specs="'$f' every ::1 using 1:(\$2/1048576) with lines title 'redis used_memory MiB',"
	IFS=, read -ra cols <<<"$hdr"
	for i in "${!cols[@]}"; do
		[[ "${cols[i]}" == rss_kb_* ]] && specs+="'$f' every ::1 using 1:(\$$((i + 1))/1024) with lines title '${cols[i]#rss_kb_} RSS MiB',"
	done
	plot memory "Memory over time (always, full rate)" "MiB" "${specs%,}"
	plot backlog "Stream backlog (always, full rate)" "entries" "'$f' every ::1 using 1:3 with lines title 'orders backlog', '$f' every ::1 using 1:4 with lines title 'fills backlog'"
fi
# CPU per order: one stacked bar per run (columns: run, then kind/value pairs)
cat "$out"/run-*-cpu.txt 2>/dev/null | awk '{printf "%s", $1; for (i = 2; i < NF - 1; i += 2) printf " %s", $(i+1); printf "\n"}' >"$out/cpu.dat"
if [[ -s "$out/cpu.dat" ]]; then
	gnuplot -e "set terminal png size 1000,500 noenhanced; set output '$out/cpu.png';
		set title 'CPU per order by process (us), load + drain window'; set style data histograms;
		set style histogram rowstacked; set style fill solid border -1; set boxwidth 0.6; set key outside;
		set ylabel 'us per order'; set grid ytics;
		plot '$out/cpu.dat' using 2:xtic(1) title 'ingest', '' using 3 title 'matcher', '' using 4 title 'recorder',
		'' using 5 title 'redis', '' using 6 title 'postgres', '' using 7 title 'loadgen'" 2>/dev/null || true
fi

{
	printf '# orderpipe end-to-end load benchmark\n\n'
	printf -- '- machine: %s, %s cores, %s\n' "$(uname -m)" "$(nproc)" "$(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//')"
	printf -- '- date: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	printf -- '- load: %s orders/s offered for %s s per run, batches of %s, %s connections (bench/tools/loadgen)\n' "$rate" "$secs" "$batch" "$conns"
	printf -- '- services: 1 ingest, %s matcher(s), %s recorder(s), ORDER_SHARDS=%s; Redis %s (%s), PostgreSQL 15 (synchronous_commit on); all on this machine\n\n' \
		"${PL_MATCHERS:-1}" "${PL_RECORDERS:-1}" "${ORDER_SHARDS:-4}" "$(redis-server --version | awk '{print $3}')" "$redis_desc"
	printf '| run | appendfsync | offered/s | accepted/s | sustained/s | orders recorded | fills recorded | loss | drain after load (s) | fill latency p50 / p99 / p99.9 (ms) | match latency (ms) | mean CPU by process | CPU per order (us) |\n'
	printf '|---|---|---|---|---|---|---|---|---|---|---|---|---|\n'
	for f in "$out"/run-*.row; do
		IFS='|' read -r n fs r a su o fl l d lat cpu po ml <"$f"
		printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$n" "$fs" "$r" "$a" "$su" "$o" "$fl" "$l" "$d" "${lat// / \/ }" "$ml" "$cpu" "$po"
	done
	printf '\n*CPU per order*: user + system CPU of each kind of process (children included; PostgreSQL: the postmaster, its exited children and every live one) over the load + drain window, divided by the orders recorded. The bench'"'"'s own once-a-second sampling (redis-cli, psql) is in the redis and postgres figures. *Match latency*: a report'"'"'s ts (ingest receipt, or the engine time when later) to the time of its fills entry id (bench/tools/matchlat, an extra XREAD reader of every fills entry: measured below saturation only).\n'
	printf '\n*sustained* = orders recorded / (load time + time to drain the backlog afterwards): the rate the pipeline keeps up with. Latency is from ingest receiving the taker order to the fill row being inserted by the committing transaction; above the sustained rate it is mostly time spent in the backlog.\n'
	printf '\n![throughput](throughput.png)\n![latency](latency.png)\n![cpu per order](cpu.png)\n![memory](memory.png)\n![backlog](backlog.png)\n'
} >"$out/report.md"
printf '\nreport: %s\n' "$out/report.md"
IFS='|' read -r _ _ r _ sus _ <"$out/run-always-full.row"
printf 'bench e2e: %s orders/s sustained (baseline %s orders/s offered, ratio %s)\n' "$sus" "$r" "$(awk -v a="$sus" -v b="$r" 'BEGIN {printf "%.2f", a/b}')"

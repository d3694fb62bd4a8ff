#!/usr/bin/env bash
# Soak test: the whole pipeline under steady load for a long time; checks that
# memory stays flat. Not part of `make test` (it takes SOAK_TIME, 10 min by
# default); run it before a release:
#
#   ops/soak.sh [build-dir]            (default build/rel; `make` it first)
#
# Load: SOAK_RATE orders/s (default 50000, half of the 100k/s target) in
# batches of SOAK_BATCH (100), around fixed mid prices (loadgen --drift 0:
# with a wandering mid, orders left behind are never cancelled and the books
# grow for good, which is state, not a leak). After SOAK_WARMUP seconds
# (default 300: at 17.5k orders/s the matcher's pools and id map, sized for
# 2^20 remembered closed orders per shard, and the recorder's batch buffers
# reach their working size in steps during the first ~5 minutes; measured
# 2026-11-21: flat within 2.3% afterwards), the RSS
# of every service and Redis' used_memory must stay within SOAK_TOLERANCE
# percent (10) of their value at the end of the warm-up, for the rest of the
# run. Samples go to var/soak/samples.csv, a plot to var/soak/memory.png.
# Exit status: 0 flat, 1 something grew (or the pipeline fell behind).
set -euo pipefail
OP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OP_BUILD="$(cd "${1:-$OP_ROOT/build/rel}" && pwd)"
export OP_ROOT OP_BUILD
time_s="${SOAK_TIME:-600}"
rate="${SOAK_RATE:-50000}"
batch="${SOAK_BATCH:-100}"
warm="${SOAK_WARMUP:-300}"
tol="${SOAK_TOLERANCE:-10}"
out="$OP_ROOT/var/soak"
mkdir -p "$out"
. "$OP_ROOT/bench/lib/pipeline.sh"
trap pl_stop EXIT

printf 'soak: %s orders/s for %s s (warm-up %s s, tolerance %s%%), appendfsync %s\n' "$rate" "$time_s" "$warm" "$tol" "${OP_REDIS_FSYNC:-always}"
pl_start
pl_start_sampling "$out/samples.csv"
"$OP_BUILD/bench/tools/loadgen" --port "$pl_ingest_port" --rate "$rate" --duration "$time_s" \
	--batch "$batch" --conns 32 --drift 0 --csv "$out/load.csv"
drained=0
pl_wait_drained 120 && drained=1
pl_stop_sampling

# For every memory column: the value at the end of the warm-up, the largest
# after it, and whether it stayed within the tolerance.
verdict="$(awk -F, -v warm="$warm" -v tol="$tol" -v end="$time_s" '
	# Means over two 60 s windows: just after the warm-up, and the last minute
	# of the load. Means, not single samples: Redis memory is a sawtooth
	# (streams fill between two trims), so one sample says little.
	NR == 1 { for (i = 2; i <= NF; i++) if ($i ~ /^rss_kb_/ || $i == "redis_used_memory") { col[i] = $i }; next }
	$1 >= warm && $1 < warm + 60 { for (i in col) { early[i] += $i }; ne++ }
	$1 >= end - 60 && $1 < end { for (i in col) { late[i] += $i }; nl++ }
	{ for (i in col) if ($1 >= warm && $i > peak[i]) peak[i] = $i }
	END {
		bad = 0
		if (ne == 0 || nl == 0) { print "not enough samples after the warm-up"; bad = 1 }
		for (i in col) {
			e = ne ? early[i] / ne : 0; l = nl ? late[i] / nl : 0
			g = e > 0 ? (l - e) * 100 / e : 0
			printf "%-22s mean after warm-up %12.0f, mean of the last minute %12.0f, change %+6.1f%% (peak %d)\n", col[i], e, l, g, peak[i]
			if (g > tol) bad = 1
		}
		print (bad ? "GREW" : "FLAT")
	}' "$out/samples.csv")"
printf '%s\n' "$verdict"
gnuplot -e "set terminal png size 1000,500; set output '$out/memory.png'; set datafile separator ',';
	set title 'Memory during the soak'; set xlabel 'seconds'; set ylabel 'MiB'; set key outside; set grid;
	plot for [i=2:*] '$out/samples.csv' every ::1 using 1:(column(i)/1024) with lines title columnhead(i)" 2>/dev/null || true
if [[ "$(tail -1 <<<"$verdict")" != FLAT || $drained != 1 ]]; then
	printf 'soak: FAILED (memory grew more than %s%% or the pipeline did not drain)\n' "$tol"
	exit 1
fi
printf 'soak: memory flat within %s%% after warm-up; samples in %s\n' "$tol" "$out/samples.csv"

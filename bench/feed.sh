#!/usr/bin/env bash
# Benchmark of the feed: match -> WebSocket client latency with 100 and with
# 1,000 connected clients under a steady load, the feed's CPU per delivered
# message, and, as the baseline in the same windows, the latency a plain
# XREAD reader of the fills streams sees (what the stream itself gives).
# Goal (issue 16): p99 <= 5 ms at 100 clients.
#
#   bench/feed.sh <build-dir>        (make bench BENCH=feed)
#
# The whole stack on free loopback ports (bench/lib/pipeline.sh: Redis with
# OP_REDIS_FSYNC, default always; PostgreSQL; ingest, matcher, recorder) plus
# orderpipe-feed. Then one phase per client count in BENCH_FEED_CLIENTS
# (default "0 100 1000"; 0: the feed reads the streams, nobody subscribed):
#  1. bench/tools/xreadlat starts following every fills:{S} (XREAD COUNT 64
#     BLOCK 500, as the feed's reader does);
#  2. bench/tools/feedclients.mjs (Node.js, the `ws` package of tests/js)
#     opens the connections: BENCH_FEED_ORDERS of them (default 2) authenticate
#     as the load's accounts (dev-key-alice, dev-key-bob) and subscribe to
#     `orders`, the others to `trades` of one symbol each, round robin;
#  3. bench/tools/loadgen offers BENCH_FEED_RATE orders/s (default 20000,
#     about half the ~40-46k/s the e2e bench sustains on a 2-core machine with
#     appendfsync always) for BENCH_TIME s (default 20), batches of
#     BENCH_BATCH (100) on BENCH_CONNS connections (16): both accounts, limit
#     orders around a mid, about half of them crossing, so trades happen;
#  4. once the matcher has drained the orders and the feed its queues, both
#     readers stop and print what they measured.
# Latency = receive wall time (µs) - the ms time of the fills entry id (the
# Redis clock when the matcher published it, right after matching): the id's
# ms resolution over-states both figures by 0-1 ms. The feed's CPU is
# utime+stime of its process (/proc/<pid>/stat) from just before the load to
# the end of the drain, divided by the messages it wrote in that window
# (feed_messages_total of its /metrics) and by the fills entries it read
# (feed_entries_total). Every subscriber's message count is checked against
# what xreadlat counted in the same stream stretch (nothing lost, nothing
# twice, in order), for the subscribers the feed did not close. The machine
# may be shared: beside the figures are the busy share of its cores over the
# window, the share of it during which some task waited for a CPU
# (/proc/pressure/cpu) and the clients' event-loop delay; when those are
# high, a latency measures the crowd as much as the feed (then compare with
# the XREAD reader of the same window, and the feed's own histogram of entry
# id -> written to the socket, feed_delivery_seconds).
#
# Environment: BENCH_FEED_RATE, BENCH_TIME, BENCH_FEED_CLIENTS,
# BENCH_FEED_ORDERS, BENCH_FEED_THREADS (client threads, 2), BENCH_BATCH,
# BENCH_CONNS, OP_REDIS_FSYNC, ORDER_SHARDS (4). The summary line: p99 at 100
# clients against the XREAD reader's p99 in the same phase.
set -euo pipefail
OP_BUILD="$(cd "${1:-build/rel}" && pwd)"
OP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export OP_BUILD OP_ROOT
rate="${BENCH_FEED_RATE:-20000}"
secs="${BENCH_TIME:-20}"
phases="${BENCH_FEED_CLIENTS:-0 100 1000}"
orders_subs="${BENCH_FEED_ORDERS:-2}"
threads="${BENCH_FEED_THREADS:-2}"
batch="${BENCH_BATCH:-100}"
conns="${BENCH_CONNS:-16}"
export OP_REDIS_FSYNC="${OP_REDIS_FSYNC:-always}"
export SYMBOLS_FILE="${SYMBOLS_FILE:-$OP_ROOT/config/symbols.conf}"
export API_KEYS_FILE="${API_KEYS_FILE:-$OP_ROOT/config/api-keys.conf}"
# loadgen's accounts and symbols (its defaults, named here so the clients match)
keys="dev-key-alice,dev-key-bob"
symbols="AAPL,MSFT,GOOG,AMZN,TSLA"
for b in bin/orderpipe-feed bench/tools/loadgen bench/tools/xreadlat; do
	[[ -x "$OP_BUILD/$b" ]] || { echo "feed.sh: '$OP_BUILD/$b' is missing: build first (make all)" >&2; exit 2; }
done
command -v node >/dev/null || { echo "feed.sh: node is missing: run ops/install-deps.sh" >&2; exit 2; }
[[ -d "$OP_ROOT/tests/js/node_modules/ws" ]] ||
	{ echo "feed.sh: tests/js/node_modules/ws is missing: run ops/install-deps.sh" >&2; exit 2; }

. "$OP_ROOT/bench/lib/pipeline.sh"
out="$pl_dir/feed-bench"
mkdir -p "$out"
aux_pids=() # xreadlat and the clients of the current phase
cleanup() {
	local p
	for p in "${aux_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${aux_pids[@]}"; do wait "$p" 2>/dev/null || true; done
	pl_stop
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

hz="$(getconf CLK_TCK)"
printf 'machine: %s, %s cores, %s, %s GiB RAM, load average %s (shared with other work: figures are noisy)\n' \
	"$(uname -m)" "$(nproc)" "$(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//')" \
	"$(awk '/MemTotal/ {printf "%.0f", $2/1048576}' /proc/meminfo)" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'load: loadgen %s orders/s offered (BENCH_FEED_RATE; the e2e bench sustains ~40-46k/s here) for %s s per phase, %s orders per batch request, %s connections, both accounts, ~half crossing\n' \
	"$rate" "$secs" "$batch" "$conns"
printf 'stack: redis %s appendfsync %s, PostgreSQL, 1 ingest, %s matcher, %s recorder, 1 feed, ORDER_SHARDS %s; all on this machine with the clients\n' \
	"$(redis-server --version | sed -E 's/.*v=([^ ]+).*/\1/')" "$OP_REDIS_FSYNC" "$PL_MATCHERS" "$PL_RECORDERS" "$ORDER_SHARDS"
printf 'clients: %s per phase (Node.js %s, ws %s, %s threads); %s of them on orders (%s), the rest on trades of one of %s\n' \
	"${phases// / then }" "$(node --version)" \
	"$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$OP_ROOT/tests/js/node_modules/ws/package.json" | head -1)" \
	"$threads" "$orders_subs" "$keys" "$symbols"
printf 'latency: client receive wall time - ms of the fills entry id in the message pos; the id has ms resolution, so every latency figure over-states by 0-1 ms\n'

pl_start
feed_port="$(op_free_port)"
pl_run feed orderpipe-feed FEED_PORT="$feed_port" FEED_CONSOLE_DIR="$OP_ROOT/feed/console" LOG_LEVEL=warn
feed_pid="${pl_pids[-1]}"
op_wait_until 30 feed curl -sf "http://127.0.0.1:$feed_port/healthz" ||
	op_die "the feed did not start: $(tail -5 "$pl_dir/feed.log")"

metrics() { curl -sf "http://127.0.0.1:$feed_port/metrics"; }
metric() { awk -v n="$1" '$1 == n { print $2; exit }' <<<"$2"; }
# bucket LE TEXT: the feed_delivery_seconds bucket count at le="LE"
bucket() { awk -v le="feed_delivery_seconds_bucket{le=\"$1\"}" '$1 == le { print $2; exit }' <<<"$2"; }
# busy and total jiffies of every core (/proc/stat's first line)
cpu_all() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat; }
# µs some task has waited for a CPU since boot (/proc/pressure/cpu; 0 without PSI)
psi_some() { awk -F'total=' '/^some/ { printf "%.0f\n", $2 }' /proc/pressure/cpu 2>/dev/null || echo 0; }
# wait_line FILE PATTERN PID SECONDS: until FILE has a line matching PATTERN
wait_line() {
	local deadline=$((SECONDS + $4))
	until grep -q "$2" "$1" 2>/dev/null; do
		kill -0 "$3" 2>/dev/null || { cat "$1" >&2; op_die "'$2' never came: the process exited"; }
		((SECONDS < deadline)) || { cat "$1" >&2; op_die "'$2' did not come within $4 s"; }
		sleep 0.1
	done
}
# stop_pid PID NAME OUTPUT: SIGTERM, then its report within 30 s (else
# SIGKILL and fail: a reader that cannot report is a broken measurement).
stop_pid() {
	local deadline=$((SECONDS + 30))
	kill -TERM "$1" 2>/dev/null || true
	while kill -0 "$1" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
	kill -KILL "$1" 2>/dev/null && op_die "$2 did not stop within 30 s: $(tail -5 "$3")"
	wait "$1" || op_die "$2 failed: $(tail -5 "$3")"
}
# wait_quiet: the matcher has drained the orders, the feed has read every
# fills entry and emptied its queues (at most 60 s).
wait_quiet() {
	local deadline=$((SECONDS + 60)) m
	while ((SECONDS < deadline)); do
		m="$(metrics)"
		if (($(pl_backlog orders) == 0)) && [[ "$(metric feed_queued_bytes "$m")" == 0 ]]; then
			sleep 0.5 # what the last XREAD brought
			m="$(metrics)"
			[[ "$(metric feed_queued_bytes "$m")" == 0 ]] && return 0
		fi
		sleep 0.2
	done
	op_warn "the feed still had queued bytes after 60 s"
}

# kv NAME TEXT: the word after NAME in TEXT
kv() { awk -v k="$1" '{for (i = 1; i < NF; i++) if ($i == k) {print $(i + 1); exit}}' <<<"$2"; }
# d NAME: the growth of a feed counter over the phase's window (m0 -> m1)
d() { echo $(($(metric "$1" "$m1") - $(metric "$1" "$m0"))); }

declare -A R # R[<clients>,<field>]
seed=1
for n in $phases; do
	printf '\n==== phase: %s clients\n' "$n"
	aux_pids=()
	"$OP_BUILD/bench/tools/xreadlat" >"$out/xread-$n.txt" 2>&1 &
	xr_pid=$!
	aux_pids+=("$xr_pid")
	wait_line "$out/xread-$n.txt" '^xreadlat: reading' "$xr_pid" 10
	cl_pid=""
	if ((n > 0)); then
		t0=$SECONDS
		node "$OP_ROOT/bench/tools/feedclients.mjs" --url "ws://127.0.0.1:$feed_port/ws" --clients "$n" \
			--symbols "$symbols" --orders "$((orders_subs < n ? orders_subs : 0))" --keys "$keys" \
			--threads "$threads" >"$out/clients-$n.txt" 2>&1 &
		cl_pid=$!
		aux_pids+=("$cl_pid")
		wait_line "$out/clients-$n.txt" '^feedclients: ready' "$cl_pid" 120
		printf '%s clients connected and subscribed in %s s\n' "$n" "$((SECONDS - t0))"
	fi
	m0="$(metrics)"
	f0="$(op_cpu_ticks "$feed_pid")"
	c0="$([[ -n "$cl_pid" ]] && op_cpu_ticks "$cl_pid" || echo 0)"
	r0="$(op_cpu_ticks "$(cat "$pl_dir/redis/redis.pid")")"
	read -r b0 t0j <<<"$(cpu_all)"
	psi0="$(psi_some)"
	t_load=$(date +%s.%N)
	"$OP_BUILD/bench/tools/loadgen" --port "$pl_ingest_port" --rate "$rate" --duration "$secs" \
		--batch "$batch" --conns "$conns" --seed "$seed" --symbols "$symbols" 2>"$out/loadgen-$n.log" |
		tee "$out/loadgen-$n.txt"
	seed=$((seed + 1))
	wait_quiet
	t_end=$(date +%s.%N)
	m1="$(metrics)"
	f1="$(op_cpu_ticks "$feed_pid")"
	c1="$([[ -n "$cl_pid" ]] && op_cpu_ticks "$cl_pid" || echo 0)"
	r1="$(op_cpu_ticks "$(cat "$pl_dir/redis/redis.pid")")"
	read -r b1 t1j <<<"$(cpu_all)"
	psi1="$(psi_some)"
	kill -0 "$feed_pid" 2>/dev/null || { tail -20 "$pl_dir/feed.log" >&2; op_die "the feed died"; }
	stop_pid "$xr_pid" xreadlat "$out/xread-$n.txt"
	[[ -z "$cl_pid" ]] || stop_pid "$cl_pid" "the clients" "$out/clients-$n.txt"
	aux_pids=()
	cat "$out/xread-$n.txt"
	[[ -n "$cl_pid" ]] && grep '^feedclients: [a-z]' "$out/clients-$n.txt" | grep -v '^feedclients: ready'

	# ---- this phase's figures
	window="$(echo "$t_end - $t_load" | bc)"
	msgs="$(d feed_messages_total)"
	entries="$(d feed_entries_total)"
	fticks=$((f1 - f0))
	R[$n,window]="$(printf '%.1f' "$window")"
	R[$n,accepted]="$(sed -E 's/.* accepted ([0-9]+) .*/\1/' "$out/loadgen-$n.txt")"
	R[$n,entries]="$entries"
	R[$n,msgs]="$msgs"
	R[$n,feedcpu]="$(awk -v t="$fticks" -v hz="$hz" -v w="$window" 'BEGIN {printf "%.0f%%", t * 100 / hz / w}')"
	R[$n,permsg]="$(awk -v t="$fticks" -v hz="$hz" -v m="$msgs" 'BEGIN {if (m) printf "%.2f", t * 1e6 / hz / m; else print "-"}')"
	R[$n,perentry]="$(awk -v t="$fticks" -v hz="$hz" -v e="$entries" 'BEGIN {if (e) printf "%.0f", t * 1e6 / hz / e; else print "-"}')"
	R[$n,clientcpu]="$(awk -v t="$((c1 - c0))" -v hz="$hz" -v w="$window" 'BEGIN {printf "%.0f%%", t * 100 / hz / w}')"
	R[$n,rediscpu]="$(awk -v t="$((r1 - r0))" -v hz="$hz" -v w="$window" 'BEGIN {printf "%.0f%%", t * 100 / hz / w}')"
	R[$n,psi]="$(awk -v p="$((psi1 - psi0))" -v w="$window" 'BEGIN {if (p > 0) printf "%.0f%%", p / 1e4 / w; else print "-"}')"
	R[$n,busy]="$(awk -v b="$((b1 - b0))" -v t="$((t1j - t0j))" -v c="$(nproc)" 'BEGIN {printf "%.0f%% of %d cores", b * 100 / t, c}')"
	read -r _ _ _ _ xp50 _ xp99 _ xp999 _ xmax _ <<<"$(grep '^xread latency' "$out/xread-$n.txt")"
	R[$n,xread]="$xp50 / $xp99 / $xp999 / $xmax"
	R[$n,xp99]="$xp99"
	# the feed's own view: entry id time -> written to the socket (its histogram, delta)
	fd=""
	for le in 0.001 0.0025 0.005 0.01; do
		fd+="$(awk -v a="$(bucket "$le" "$m0")" -v b="$(bucket "$le" "$m1")" -v c0="$(metric feed_delivery_seconds_count "$m0")" \
			-v c1="$(metric feed_delivery_seconds_count "$m1")" -v le="$le" \
			'BEGIN {if (c1 > c0) printf "<=%gms %.1f%% ", le * 1000, (b - a) * 100 / (c1 - c0)}')"
	done
	R[$n,feedside]="${fd:--}"
	R[$n,slow]="$(d feed_slow_closed_total)"
	R[$n,rediserr]="$(d feed_redis_errors_total)"
	R[$n,holes]="$(d feed_holes_total 2>/dev/null || echo -)"
	if [[ -n "$cl_pid" ]]; then
		cl="$(cat "$out/clients-$n.txt")"
		all="$(grep '^feedclients: all:' <<<"$cl")"
		tr="$(grep '^feedclients: trades:' <<<"$cl")"
		or="$(grep '^feedclients: orders:' <<<"$cl")"
		cls="$(grep '^feedclients: closed' <<<"$cl")"
		lat4() { printf '%s / %s / %s / %s' "$(kv p50 "$1")" "$(kv p99 "$1")" "$(kv p999 "$1")" "$(kv max "$1")"; }
		R[$n,client]="$(lat4 "$all")"
		R[$n,cp99]="$(kv p99 "$all")"
		R[$n,trades]="$(kv messages "$tr") msgs, $(kv bytes_mean "$tr") B: $(lat4 "$tr")"
		R[$n,orders]="$(kv messages "$or") msgs, $(kv bytes_mean "$or") B: $(lat4 "$or")"
		R[$n,rate]="$(awk -v m="$(kv messages "$all")" -v n="$n" -v s="$secs" 'BEGIN {printf "%.1f", m / n / s}')"
		R[$n,clpermsg]="$(awk -v t="$((c1 - c0))" -v hz="$hz" -v m="$(kv messages "$all")" 'BEGIN {if (m) printf "%.1f", t * 1e6 / hz / m; else print "-"}')"
		R[$n,allrate]="$(awk -v m="$msgs" -v s="$secs" 'BEGIN {printf "%.0f", m / s}')"
		R[$n,closed]="$(kv closed "$cls") (trades $(kv trades "$cls"), orders $(kv orders "$cls"))"
		R[$n,errors]="$(kv errors "$cls")"
		lp="$(grep '^feedclients: event loop delay' <<<"$cl")"
		R[$n,loop]="$(awk '{for (i = 1; i <= NF; i++) {if ($i == "p99") m = "p"; else if ($i == "max") m = "x"
			else if (m == "p" && $i + 0 > p) p = $i + 0; else if (m == "x" && $i + 0 > x) x = $i + 0}}
			END {printf "%.1f / %.1f", p, x}' <<<"$lp")"
		R[$n,disorder]="$(kv disorder "$cls")"
		# every subscriber still open got exactly what the stream held for it
		want_t="$(sed -n 's/^trades by symbol: //p' "$out/xread-$n.txt")"
		want_a="$(sed -n 's/^reports by account: //p' "$out/xread-$n.txt")"
		got_t="$(sed -n 's/^feedclients: trades per open subscriber: //p' <<<"$cl")"
		got_a="$(sed -n 's/^feedclients: orders per open subscriber: //p' <<<"$cl")"
		R[$n,check]="$(awk -v wt="$want_t" -v wa="$want_a" -v gt="$got_t" -v ga="$got_a" -v closed="$(kv closed "$cls")" 'BEGIN {
			n = split(wt, a, " "); for (i = 1; i < n; i += 2) want["t " a[i]] = a[i + 1]
			n = split(wa, a, " "); for (i = 1; i < n; i += 2) want["o " a[i]] = a[i + 1]
			bad = ""; groups = 0
			n = split(gt, a, " "); for (i = 1; i + 2 <= n; i += 3) { k = "t " a[i]; groups++
				if (a[i + 1] != want[k] + 0 || a[i + 2] != want[k] + 0)
					bad = bad sprintf(" trades %s: got %s..%s of %d", a[i], a[i + 1], a[i + 2], want[k]) }
			n = split(ga, a, " "); for (i = 1; i + 2 <= n; i += 3) { k = "o " a[i]; groups++
				if (a[i + 1] != want[k] + 0 || a[i + 2] != want[k] + 0)
					bad = bad sprintf(" orders %s: got %s..%s of %d", a[i], a[i + 1], a[i + 2], want[k]) }
			if (bad != "") printf "MISMATCH:%s", bad
			else if (groups) printf "ok: every open subscriber got every trade of its symbol / report of its account the streams held, in order (%d closed by the feed: not checked)", closed
			else printf "nothing to check: every subscriber was closed by the feed" }')"
	else
		R[$n,client]="-"
		R[$n,clpermsg]="-"
		R[$n,loop]="-"
		R[$n,trades]="-"
		R[$n,orders]="-"
		R[$n,cp99]="-"
		R[$n,rate]="-"
		R[$n,allrate]="-"
		R[$n,closed]="-"
		R[$n,errors]="-"
		R[$n,disorder]="-"
		R[$n,check]="-"
	fi
done

# ---- side by side --------------------------------------------------------------
printf '\n==== results (latencies in ms: p50 / p99 / p99.9 / max, each over-stated by 0-1 ms by the entry id'"'"'s resolution)\n'
row() { # row TITLE FIELD
	local n
	printf '%-48s' "$1"
	for n in $phases; do printf ' | %-30s' "${R[$n,$2]}"; done
	printf '\n'
}
printf '%-48s' "clients"
for n in $phases; do printf ' | %-30s' "$n"; done
printf '\n'
row "orders accepted (loadgen)" accepted
row "window: load + drain (s)" window
row "fills entries read by the feed" entries
row "match -> client, every message" client
row "  trades messages" trades
row "  orders messages" orders
row "baseline: match -> XREAD reader, same window" xread
row "feed side: entry id -> written to the socket" feedside
row "messages/s per client" rate
row "messages/s written by the feed, all clients" allrate
row "feed CPU (share of one core)" feedcpu
row "feed CPU per delivered message (us)" permsg
row "feed CPU per fills entry (us)" perentry
row "clients' CPU (Node.js, share of one core)" clientcpu
row "clients' CPU per received message (us)" clpermsg
row "redis CPU (share of one core)" rediscpu
row "machine busy over the window" busy
row "time some task waited for a CPU (PSI)" psi
row "clients' event loop delay p99 / max (ms)" loop
row "connections the feed closed" closed
row "feed_slow_closed_total" slow
row "error messages received" errors
row "duplicates or reorderings" disorder
row "feed redis errors" rediserr
row "entries trimmed before the feed read them" holes
for n in $phases; do
	((n > 0)) || continue
	printf 'delivery check, %s clients: %s\n' "$n" "${R[$n,check]}"
	sed -n "s/^feedclients: close: /closed by the feed, $n clients: /p" "$out/clients-$n.txt"
	if [[ "${R[$n,slow]}" != 0 ]]; then
		printf '  (so at %s clients the rates and the CPU per message count only what was written before those closes; the feed built and dropped the rest)\n' "$n"
	fi
done
if [[ " $phases " == *" 100 "* ]]; then
	goal="$(awk -v p="${R[100,cp99]}" 'BEGIN {print (p <= 5 ? "met" : "NOT met")}')"
	printf 'goal p99 <= 5 ms at 100 clients: %s\n' "$goal"
	printf 'bench feed: %s ms p99 at 100 clients (baseline %s ms, ratio %s)\n' "${R[100,cp99]}" "${R[100,xp99]}" \
		"$(awk -v a="${R[100,cp99]}" -v b="${R[100,xp99]}" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}')"
fi

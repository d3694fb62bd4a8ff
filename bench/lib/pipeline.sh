# The whole pipeline on a private stack, for bench/e2e.sh and ops/soak.sh (sourced).
#
# pl_start: Redis (OP_REDIS_FSYNC) + PostgreSQL on free ports under a temp dir,
#   orderpipe-setup, ingest, PL_MATCHERS matchers, PL_RECORDERS recorders.
#   With OP_REDIS_CLUSTER=1 the Redis is a local six-node cluster
#   (ops/redis-cluster.sh: 3 primaries + 3 replicas) and REDIS_URL its first
#   node; every node's CPU, memory and RSS count as "redis".
# pl_sample_loop FILE: one CSV row per second until pl_stop_sampling:
#   t_s,redis_used_memory,orders_backlog,fills_backlog,fills_rows,<rss_kb per service…>,<cpu% per service…>
# pl_stop: stops everything and removes the temp dir.
# shellcheck shell=bash
. "$OP_ROOT/ops/lib.sh"

export ORDER_SHARDS="${ORDER_SHARDS:-4}"
PL_MATCHERS="${PL_MATCHERS:-1}"
PL_RECORDERS="${PL_RECORDERS:-1}"
pl_dir="$(mktemp -d /tmp/orderpipe-pl.XXXXXX)"
chmod 755 "$pl_dir" # PostgreSQL runs as the postgres user when we are root
pl_pids=()
pl_names=()
pl_sampler=""
pl_redis_port=""
pl_pg_port=""
pl_cluster=0
[[ "${OP_REDIS_CLUSTER:-0}" == 1 ]] && pl_cluster=1
pl_redis_ports=() # every redis-server's port (one, or the cluster's six)

pl_start() {
	local k
	if ((pl_cluster)); then
		pl_redis_port="$(op_free_cluster_port)"
		"$OP_ROOT/ops/redis-cluster.sh" start "$pl_dir/redis-cluster" "$pl_redis_port" 2>"$pl_dir/redis-cluster.log" ||
			op_die "the redis cluster did not start: $(tail -5 "$pl_dir/redis-cluster.log")"
		for ((k = 0; k < 6; k++)); do pl_redis_ports+=($((pl_redis_port + k))); done
	else
		pl_redis_port="$(op_free_port)"
		"$OP_ROOT/ops/redis.sh" start "$pl_dir/redis" "$pl_redis_port" >/dev/null
		pl_redis_ports=("$pl_redis_port")
	fi
	pl_pg_port="$(op_free_port)"
	"$OP_ROOT/ops/postgres.sh" start "$pl_dir/postgres" "$pl_pg_port" >/dev/null
	export REDIS_URL="redis://127.0.0.1:$pl_redis_port"
	export DATABASE_URL="postgresql://orderpipe@127.0.0.1:$pl_pg_port/orderpipe"
	"$OP_BUILD/bin/orderpipe-setup" >/dev/null 2>&1 || op_die "orderpipe-setup failed"
	pl_ingest_port="$(op_free_port)"
	pl_run ingest orderpipe-ingest INGEST_PORT="$pl_ingest_port" LOG_LEVEL=warn
	local i
	for ((i = 1; i <= PL_MATCHERS; i++)); do
		pl_run "matcher$i" orderpipe-matcher MATCHER_METRICS_PORT=0 LOG_LEVEL=warn
	done
	for ((i = 1; i <= PL_RECORDERS; i++)); do
		pl_run "recorder$i" orderpipe-recorder RECORDER_METRICS_PORT=0 LOG_LEVEL=warn
	done
	op_wait_until 30 ingest curl -sf "http://127.0.0.1:$pl_ingest_port/healthz" ||
		op_die "ingest did not start: $(tail -5 "$pl_dir/ingest.log")"
}

# pl_run NAME BINARY [ENV=VAL…]
pl_run() {
	local name="$1" bin="$2"
	shift 2
	env "$@" "$OP_BUILD/bin/$bin" >>"$pl_dir/$name.log" 2>&1 &
	pl_pids+=($!)
	pl_names+=("$name")
}

# pl_redis ARGS…: redis-cli on the (first) node, following redirections.
pl_redis() { redis-cli -c -p "$pl_redis_port" "$@"; }

# pl_redis_pids: the pid of every redis-server of the pipeline.
pl_redis_pids() {
	local p
	if ((pl_cluster)); then
		for p in "${pl_redis_ports[@]}"; do cat "$pl_dir/redis-cluster/$p/redis.pid" 2>/dev/null || echo 0; done
	else
		cat "$pl_dir/redis/redis.pid" 2>/dev/null || echo 0
	fi
}

# pl_redis_memory: used_memory summed over every redis-server (bytes).
pl_redis_memory() {
	local p total=0 m
	for p in "${pl_redis_ports[@]}"; do
		m="$(redis-cli -p "$p" INFO memory 2>/dev/null | awk -F: '/^used_memory:/ {print $2+0}')"
		total=$((total + ${m:-0}))
	done
	printf '%s\n' "$total"
}
pl_psql() { psql -qAtX "$DATABASE_URL" -c "$1"; }

# Sum over shards of lag + pending of GROUP on STREAM-prefix.
pl_backlog() {
	local prefix="$1" s total=0 v
	for ((s = 0; s < ORDER_SHARDS; s++)); do
		v="$(pl_redis XINFO GROUPS "$prefix:{$s}" 2>/dev/null | awk 'prev=="pending"||prev=="lag"{sum+=$1} {prev=$1} END{print sum+0}')"
		total=$((total + v))
	done
	printf '%s\n' "$total"
}

pl_rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
pl_cpu_ticks() { op_cpu_ticks "$1"; }

# CPU ticks of the whole PostgreSQL cluster: the postmaster and its children
# (the recorder's backend does the COPY/INSERT work).
pl_pg_ticks() { op_pg_cpu_ticks "$pl_dir/postgres/data"; }

# pl_cpu_snapshot: "ingest T matcher T recorder T redis T postgres T", the
# CPU ticks each kind of process has used so far (matchers and recorders
# summed; PostgreSQL = the postmaster with its exited children plus every
# live child: backends, checkpointer, WAL writer, ...). Two snapshots'
# difference is the CPU of a window.
pl_cpu_snapshot() {
	local i kind
	local -A t=([ingest]=0 [matcher]=0 [recorder]=0 [redis]=0 [postgres]=0)
	for i in "${!pl_pids[@]}"; do
		kind="${pl_names[i]%%[0-9]*}"
		t[$kind]=$((t[$kind] + $(op_cpu_ticks "${pl_pids[i]}" all)))
	done
	for i in $(pl_redis_pids); do
		t[redis]=$((t[redis] + $(op_cpu_ticks "$i" all)))
	done
	t[postgres]="$(op_pg_cpu_ticks "$pl_dir/postgres/data" all)"
	printf 'ingest %s matcher %s recorder %s redis %s postgres %s\n' \
		"${t[ingest]}" "${t[matcher]}" "${t[recorder]}" "${t[redis]}" "${t[postgres]}"
}

pl_sample_loop() {
	local file="$1" t=0 i hz start=$SECONDS k=0
	hz="$(getconf CLK_TCK)"
	local all_pids=("${pl_pids[@]}") all_names=("${pl_names[@]}")
	for i in $(pl_redis_pids); do
		k=$((k + 1))
		all_pids+=("$i")
		if ((pl_cluster)); then all_names+=("redis$k"); else all_names+=(redis); fi
	done
	{
		printf 't_s,redis_used_memory,orders_backlog,fills_backlog,fills_rows'
		for i in "${all_names[@]}"; do printf ',rss_kb_%s' "$i"; done
		for i in "${all_names[@]}"; do printf ',cpu_%s' "$i"; done
		printf ',cpu_postgres\n'
	} >"$file"
	local -a prev
	local pg_prev
	for i in "${!all_pids[@]}"; do prev[i]="$(pl_cpu_ticks "${all_pids[i]}")"; done
	pg_prev="$(pl_pg_ticks)"
	while [[ ! -e "$pl_dir/stop-sampling" ]]; do
		sleep 1
		t=$((SECONDS - start)) # the sampling itself takes time: stamp real seconds
		local mem ob fb rows line cur
		mem="$(pl_redis_memory)"
		ob="$(pl_backlog orders)"
		fb="$(pl_backlog fills)"
		# (a partitioned fills, migration 007, counts its inserts in its partitions)
		rows="$(pl_psql "SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables WHERE relid = 'fills'::regclass
		  OR relid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'fills'::regclass)" 2>/dev/null || echo 0)"
		line="$t,$mem,$ob,$fb,${rows:-0}"
		for i in "${!all_pids[@]}"; do line+=",$(pl_rss_kb "${all_pids[i]}")"; done
		for i in "${!all_pids[@]}"; do
			cur="$(pl_cpu_ticks "${all_pids[i]}")"
			line+=",$(((cur - prev[i]) * 100 / hz))"
			prev[i]="$cur"
		done
		cur="$(pl_pg_ticks)"
		line+=",$(((cur - pg_prev) * 100 / hz))"
		pg_prev="$cur"
		printf '%s\n' "$line" >>"$file"
	done
}

pl_start_sampling() {
	rm -f "$pl_dir/stop-sampling"
	pl_sample_loop "$1" &
	pl_sampler=$!
}

pl_stop_sampling() {
	touch "$pl_dir/stop-sampling"
	[[ -n "$pl_sampler" ]] && wait "$pl_sampler" 2>/dev/null
	pl_sampler=""
}

# pl_wait_drained TIMEOUT_S: until no backlog is left in either stream.
pl_wait_drained() {
	local deadline=$((SECONDS + $1))
	while ((SECONDS < deadline)); do
		if (($(pl_backlog orders) == 0 && $(pl_backlog fills) == 0)); then
			return 0
		fi
		sleep 0.5
	done
	return 1
}

pl_stop() {
	local p
	pl_stop_sampling 2>/dev/null || true
	for p in "${pl_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pl_pids[@]}"; do wait "$p" 2>/dev/null || true; done
	pl_pids=()
	if ((pl_cluster)); then
		"$OP_ROOT/ops/redis-cluster.sh" stop "$pl_dir/redis-cluster" "$pl_redis_port" >/dev/null 2>&1 || true
	else
		"$OP_ROOT/ops/redis.sh" stop "$pl_dir/redis" "$pl_redis_port" >/dev/null 2>&1 || true
	fi
	"$OP_ROOT/ops/postgres.sh" stop "$pl_dir/postgres" "$pl_pg_port" >/dev/null 2>&1 || true
	rm -rf "$pl_dir"
}

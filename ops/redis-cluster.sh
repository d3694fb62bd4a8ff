#!/usr/bin/env bash
# Start, stop or inspect a private six-node Redis Cluster for orderpipe.
#
#   ops/redis-cluster.sh start|stop|status <dir> <first-port>
#   ops/redis-cluster.sh free-port
#
# Six redis-server instances on 127.0.0.1, ports <first-port> ..
# <first-port>+5 (and their cluster bus ports, 10000 above), each started by ops/redis.sh in <dir>/<port>/ (so each has
# the durability settings of the single-instance stack: appendonly yes,
# appendfsync ${OP_REDIS_FSYNC:-always}, save "") plus cluster-enabled yes,
# its own cluster-config-file <dir>/<port>/nodes.conf and cluster-node-timeout
# ${OP_REDIS_CLUSTER_NODE_TIMEOUT_MS:-2000}. The first start forms the cluster
# with `redis-cli --cluster create … --cluster-replicas 1`: three primaries
# holding the 16384 slots, each with one replica. Later starts find the
# cluster in the nodes.conf files and only restart the nodes (a node that
# was a primary may come back as a replica of the one that took over).
#
# start  is idempotent: running nodes are left alone, missing ones started;
#        it returns once every node reports cluster_state:ok, sees all six
#        nodes and every slot served, and every replica's link to its
#        primary is up (or dies after OP_REDIS_START_TIMEOUT seconds).
# stop   stops the six (replicas first, so that no replica is promoted while
#        its primary is stopping): SHUTDOWN, then TERM and KILL after
#        OP_REDIS_STOP_TIMEOUT seconds (ops/redis.sh stop).
# status prints each node's state and role; exits 0 when all six answer and
#        the cluster is ok, 3 when none runs (the LSB convention), 1 otherwise.
#
# free-port prints a first port whose six ports and bus ports are free
#        (op_free_cluster_port of ops/lib.sh), for tests and benches.
#
# Services get REDIS_URL=redis://127.0.0.1:<first-port> (any node will do:
# they discover the others with CLUSTER SLOTS). Inspect with `redis-cli -c
# -p <first-port>` (-c follows MOVED/ASK redirections).
#
# Environment: OP_REDIS_FSYNC, OP_REDIS_START_TIMEOUT (30),
# OP_REDIS_STOP_TIMEOUT (60), OP_REDIS_AOF_REWRITE_PCT (those of
# ops/redis.sh), OP_REDIS_CLUSTER_NODE_TIMEOUT_MS (2000: how long a primary
# may be unreachable before its replica takes over).
set -euo pipefail
# shellcheck source=ops/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	printf 'usage: %s start|stop|status <dir> <first-port>\n       %s free-port\n' "$OP_PROG" "$OP_PROG" >&2
	exit 2
}

if [[ "${1:-}" == free-port ]]; then
	(($# == 1)) || usage
	op_free_cluster_port
	exit
fi

(($# == 3)) || usage
cmd="$1"
dir="$(op_abspath "$2")"
first="$3"
# Six nodes: the smallest cluster with a replica for each of three primaries
# (a failover needs a majority of primaries to vote, so at least three).
nodes=6
{ op_check_port "$first" && op_check_port $((10#$first + nodes - 1 + 10000)); } ||
	op_die "invalid first port '$first': expected a number in 1-$((65535 - nodes + 1 - 10000)) (the cluster uses it and the next $((nodes - 1)), and their bus ports 10000 above)"
first=$((10#$first))
ports=()
for ((i = 0; i < nodes; i++)); do ports+=($((first + i))); done
redis_sh="$OP_ROOT/ops/redis.sh"

# cli PORT ARGS...: redis-cli on one node (no redirection following).
cli() {
	local p="$1"
	shift
	redis-cli -h 127.0.0.1 -p "$p" "$@" 2>/dev/null
}

# bus_port_taken PORT: succeed if a TCP socket listens on PORT or is
# connected (or connecting) from it. Closing sockets (TIME-WAIT, FIN-WAIT:
# those a killed node leaves behind) do not stop redis-server's bind, which
# sets SO_REUSEADDR, so they do not count.
bus_port_taken() {
	op_port_listening "$1" && return 0
	command -v ss >/dev/null 2>&1 &&
		[[ -n "$(ss -Htn state established state syn-sent "( sport = :$1 )" 2>/dev/null)" ]]
}

# info_field PORT SECTION FIELD: print FIELD of INFO SECTION (or CLUSTER
# INFO when SECTION is "cluster-info") on node PORT; empty when unreachable.
info_field() {
	local p="$1" section="$2" field="$3"
	if [[ "$section" == cluster-info ]]; then
		cli "$p" CLUSTER INFO
	else
		cli "$p" INFO "$section"
	fi | tr -d '\r' | awk -F: -v f="$field" '$1 == f { print $2 }'
}

# node_ready PORT: succeed when node PORT sees a healthy cluster of all six
# nodes with every slot served, and (for a replica) its link to the primary
# is up.
node_ready() {
	local p="$1" ci
	ci="$(cli "$p" CLUSTER INFO | tr -d '\r')" || return 1
	grep -qx 'cluster_state:ok' <<<"$ci" || return 1
	grep -qx "cluster_known_nodes:$nodes" <<<"$ci" || return 1
	grep -qx 'cluster_slots_ok:16384' <<<"$ci" || return 1
	if [[ "$(info_field "$p" replication role)" == slave ]]; then
		[[ "$(info_field "$p" replication master_link_status)" == up ]] || return 1
	fi
	return 0
}

# cluster_ready: node_ready on every node, and no node flagged failing.
cluster_ready() {
	local p
	for p in "${ports[@]}"; do
		node_ready "$p" || return 1
	done
	! cli "$first" CLUSTER NODES | grep -qE 'fail|handshake|noaddr'
}

# formation: print "new" when no node knows another and no slot is assigned
# (the cluster must be created), "formed" when the first node sees all six
# and every slot assigned, "partial" otherwise.
formation() {
	local p fresh=0
	for p in "${ports[@]}"; do
		if [[ "$(info_field "$p" cluster-info cluster_known_nodes)" == 1 &&
			"$(info_field "$p" cluster-info cluster_slots_assigned)" == 0 ]]; then
			fresh=$((fresh + 1))
		fi
	done
	if ((fresh == nodes)); then
		echo new
	elif [[ "$(info_field "$first" cluster-info cluster_known_nodes)" == "$nodes" &&
		"$(info_field "$first" cluster-info cluster_slots_assigned)" == 16384 ]]; then
		echo formed
	else
		echo partial
	fi
}

do_start() {
	local p timeout="${OP_REDIS_START_TIMEOUT:-30}" nt="${OP_REDIS_CLUSTER_NODE_TIMEOUT_MS:-2000}" state
	local -a addrs=()
	{ [[ "$nt" =~ ^[0-9]+$ ]] && ((nt >= 100)); } ||
		op_die "invalid OP_REDIS_CLUSTER_NODE_TIMEOUT_MS='$nt': expected milliseconds, at least 100"
	op_need_cmd redis-server redis-server
	op_need_cmd redis-cli redis-tools
	mkdir -p "$dir"
	[[ -w "$dir" ]] || op_die "cannot write to cluster dir '$dir': fix its permissions or choose another dir"
	for p in "${ports[@]}"; do
		# The cluster bus listens on port+10000: redis-server would abort
		# with a bind error in its log only. A connected socket counts, not
		# only a listening one: above 32767 it may be the local end of an
		# outgoing connection (Linux's ephemeral range), which blocks the
		# bind as well.
		if ! op_read_pidfile "$dir/$p/redis.pid" >/dev/null && bus_port_taken $((p + 10000)); then
			op_die "tcp port $((p + 10000)) (the cluster bus port of node $p) is in use: pick another first port (one below 22763 keeps the bus ports out of the ephemeral range)"
		fi
		OP_REDIS_EXTRA_CONF="$(printf '%s\n' \
			'# Redis Cluster (ops/redis-cluster.sh)' \
			'cluster-enabled yes' \
			"cluster-config-file \"$dir/$p/nodes.conf\"" \
			"cluster-node-timeout $nt")" \
			"$redis_sh" start "$dir/$p" "$p" ||
			op_die "cannot start cluster node 127.0.0.1:$p: see the messages above (ops/redis-cluster.sh stop '$dir' $first stops the others)"
		addrs+=("127.0.0.1:$p")
	done

	state="$(formation)"
	case "$state" in
	new)
		op_log "creating the cluster: 3 primaries + 3 replicas on ports ${ports[0]}-${ports[nodes - 1]}"
		if ! redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1; then
			op_log_tail "$dir/create.log"
			op_die "redis-cli --cluster create failed: see $dir/create.log"
		fi
		;;
	formed) op_log "the cluster in '$dir' is already formed: waiting for it to be ok" ;;
	partial)
		op_die "the nodes in '$dir' form an incomplete cluster (some know no other node, or slots are unassigned): stop it (ops/redis-cluster.sh stop '$dir' $first) and remove '$dir' to create a fresh one"
		;;
	esac
	if ! op_wait_until "$timeout" "every node of the cluster to report cluster_state:ok with its replica links up" cluster_ready; then
		for p in "${ports[@]}"; do
			node_ready "$p" || op_log "node 127.0.0.1:$p is not ready: $(info_field "$p" cluster-info cluster_state) $(info_field "$p" replication role) link $(info_field "$p" replication master_link_status)"
		done
		op_die "the cluster on ports ${ports[0]}-${ports[nodes - 1]} is not ok after ${timeout}s: see $dir/<port>/redis.log"
	fi
	op_log "redis cluster ready on 127.0.0.1:${ports[0]}-${ports[nodes - 1]} (REDIS_URL=redis://127.0.0.1:$first; inspect with redis-cli -c -p $first)"
}

do_stop() {
	local p rc=0
	local -a replicas=() others=()
	for p in "${ports[@]}"; do
		if [[ "$(info_field "$p" replication role)" == slave ]]; then
			replicas+=("$p")
		else
			others+=("$p")
		fi
	done
	for p in "${replicas[@]}" "${others[@]}"; do
		"$redis_sh" stop "$dir/$p" "$p" || rc=1
	done
	((rc == 0)) || op_die "some nodes of the cluster in '$dir' did not stop: see above"
	op_log "redis cluster in '$dir' stopped"
}

do_status() {
	local p pid running=0 ok=0 role state
	for p in "${ports[@]}"; do
		if pid="$(op_read_pidfile "$dir/$p/redis.pid")"; then
			running=$((running + 1))
			role="$(info_field "$p" replication role)"
			state="$(info_field "$p" cluster-info cluster_state)"
			if node_ready "$p"; then ok=$((ok + 1)); fi
			printf 'redis cluster node 127.0.0.1:%s: running (pid %s, role %s, cluster_state %s)\n' \
				"$p" "$pid" "${role:-?}" "${state:-?}"
		else
			printf 'redis cluster node 127.0.0.1:%s: not running (dir %s)\n' "$p" "$dir/$p"
		fi
	done
	((running == 0)) && return 3
	((ok == nodes)) || return 1
	return 0
}

case "$cmd" in
start) do_start ;;
stop) do_stop ;;
status) do_status ;;
*) usage ;;
esac

#!/usr/bin/env bash
# Runs the benchmarks: all of them, or the ones named.
#
#   bench/run.sh <build-dir> [name...]      (make bench [BENCH=name] calls it)
#
# A benchmark <name> is either a script bench/<name>.sh (run as
# `bench/<name>.sh <build-dir>`, with OP_BUILD=<build-dir> exported; it starts
# whatever it needs) or a binary <build-dir>/bench/bench_<name>; the script
# wins when both exist. With no name, every one of them runs, in name order.
# Each prints its conditions and ends with a line
#   bench <name>: <value> <unit> (baseline <value> <unit>, ratio <r>)
# and those lines are repeated together at the end. Exits 1 if any benchmark
# failed, 2 on an unknown name (the available ones are listed).
set -euo pipefail
# shellcheck source=ops/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../ops/lib.sh"

(($# >= 1)) || { printf 'usage: %s <build-dir> [name...]\n' "$0" >&2; exit 2; }
build="$(op_abspath "$1")"
shift
export OP_BUILD="$build"

# available: print the name of every benchmark, sorted, once each.
available() {
	local f
	{
		for f in "$build"/bench/bench_*; do
			[[ -f "$f" && -x "$f" ]] || continue
			f="$(basename "$f")"
			printf '%s\n' "${f#bench_}"
		done
		for f in "$OP_ROOT"/bench/*.sh; do
			[[ -f "$f" ]] || continue
			f="$(basename "$f" .sh)"
			[[ "$f" == run ]] || printf '%s\n' "$f"
		done
	} | LC_ALL=C sort -u
}

mapfile -t all < <(available)
if (($# == 0)); then
	names=("${all[@]}")
	if ((${#names[@]} == 0)); then
		printf 'no benchmarks yet (no %s/bench/bench_* binary, no bench/*.sh script)\n' "$build"
		exit 0
	fi
else
	names=("$@")
	for n in "${names[@]}"; do
		if [[ ! -f "$OP_ROOT/bench/$n.sh" || "$n" == run ]] && [[ ! -x "$build/bench/bench_$n" ]]; then
			printf '%s: error: unknown benchmark '\''%s'\'': available: %s\n' "$OP_PROG" "$n" "${all[*]:-none yet}" >&2
			exit 2
		fi
	done
fi

out_file="$(mktemp)"
trap 'rm -f "$out_file"' EXIT
summaries=()
failures=()
for n in "${names[@]}"; do
	printf '==== bench %s\n' "$n"
	st=0
	if [[ -f "$OP_ROOT/bench/$n.sh" && "$n" != run ]]; then
		(cd "$OP_ROOT" && bash "bench/$n.sh" "$build" </dev/null 2>&1) | tee "$out_file" || st=${PIPESTATUS[0]}
	else
		(cd "$OP_ROOT" && "$build/bench/bench_$n" </dev/null 2>&1) | tee "$out_file" || st=${PIPESTATUS[0]}
	fi
	if ((st != 0)); then
		failures+=("$n")
		printf '==== bench %s: FAILED (exit status %s)\n' "$n" "$st"
		continue
	fi
	line="$(grep -E "^bench $n: " "$out_file" | tail -n 1 || true)"
	if [[ -z "$line" ]]; then
		op_warn "benchmark '$n' printed no 'bench $n: <value> <unit> (baseline ...)' summary line"
		line="bench $n: (no summary line)"
	fi
	summaries+=("$line")
done

printf '\n==== summary\n'
((${#summaries[@]} == 0)) || printf '%s\n' "${summaries[@]}"
if ((${#failures[@]})); then
	printf 'failed benchmarks: %s\n' "${failures[*]}"
	exit 1
fi

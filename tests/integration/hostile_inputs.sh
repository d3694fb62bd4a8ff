#!/usr/bin/env bash
# Hostile input written straight into the streams (issue 10, part 1): the
# matcher rejects what ingest would have refused, with reports the database
# accepts, and the recorder dead-letters single reports, never the good ones
# batched with them (tests/e2e/hostile.py).
set -uo pipefail
for b in orderpipe-ingest orderpipe-matcher orderpipe-recorder; do
	if [[ ! -x "$OP_BUILD/bin/$b" ]]; then
		printf 'hostile_inputs: SKIPPED: %s is not built yet\n' "$b"
		exit 0
	fi
done
exec python3 "$OP_ROOT/tests/e2e/hostile.py"

#!/usr/bin/env bash
# Hostile input written straight into the streams (issue 10, part 1): the
# matcher rejects what ingest would have refused, with reports the database
# accepts, and the recorder dead-letters single reports, never the good ones
# batched with them (tests/e2e/hostile.py).
set -uo pipefail
. "$OP_ROOT/tests/lib/testlib.sh"
t_skip_unless_built hostile_inputs
exec python3 "$OP_ROOT/tests/e2e/hostile.py"

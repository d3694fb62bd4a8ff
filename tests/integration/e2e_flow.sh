#!/usr/bin/env bash
# End-to-end through ingest, matcher and recorder over HTTP:
#  0. the reference model's own scenario tables (e2e.py --self-test: the
#     rules of self-trade prevention, replace, cancel-all and the open-order
#     limit of issue 14, no stack needed);
#  1. a seeded random order flow; the orders and fills tables must equal an
#     independent reference model (tests/e2e/e2e.py), with the inputs of
#     issue 14 that the running stack has (it probes for them first and
#     prints what it found);
#  2. the LOBSTER AAPL sample replayed; every execution burst must trade its
#     type-4 rows (tests/e2e/lobster.py; skipped when the sample is absent).
set -uo pipefail
. "$OP_ROOT/tests/lib/testlib.sh"
t_skip_unless_built e2e_flow
rc=0
python3 "$OP_ROOT/tests/e2e/e2e.py" --self-test || rc=1
python3 "$OP_ROOT/tests/e2e/e2e.py" || rc=1
python3 "$OP_ROOT/tests/e2e/lobster.py" || rc=1
exit "$rc"

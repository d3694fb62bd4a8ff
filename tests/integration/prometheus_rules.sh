#!/usr/bin/env bash
# The Prometheus configuration and alert rules of ops/prometheus (issue 18):
#  1. `promtool check config` (prometheus.yml with its rule file) and
#     `promtool check rules` (alerts.yml);
#  2. `promtool test rules alerts_test.yml`: series that fire each alert and
#     series that do not;
#  3. every alert has a case where it fires and one where it does not (an
#     exp_alerts: [] at some eval_time), and a section in docs/operations.md
#     (its runbook annotation names it);
#  4. the tests can fail: for each alert, alerts.yml with that alert's
#     expression made never true, then always true, must fail
#     `promtool test rules`;
#  5. every metric the rules use is exported by the real services: ingest,
#     a matcher and a recorder started against the test stack (on a Redis
#     database of their own), each /metrics read (its `# TYPE` lines), and
#     the services stopped (exit 0).
set -uo pipefail
. "$OP_ROOT/tests/lib/testlib.sh"

dir="$OP_ROOT/ops/prometheus"
if ! command -v promtool >/dev/null 2>&1; then
	t_fail "promtool is not installed: install the debian package 'prometheus' (ops/install-deps.sh)"
	t_done
	exit 1
fi
work="$OP_STACK_DIR/prometheus-rules"
rm -rf "$work"
mkdir -p "$work"

# --- 1, 2: promtool -------------------------------------------------------------
out="$(promtool check config "$dir/prometheus.yml" 2>&1)"
t_eq "promtool check config prometheus.yml: exit status" "$?" 0
printf '%s\n' "$out"
out="$(promtool check rules "$dir/alerts.yml" 2>&1)"
t_eq "promtool check rules alerts.yml: exit status" "$?" 0
printf '%s\n' "$out"
out="$(cd "$dir" && promtool test rules alerts_test.yml 2>&1)"
t_eq "promtool test rules alerts_test.yml: exit status" "$?" 0
printf '%s\n' "$out"

# --- 3: coverage, runbooks ------------------------------------------------------
# Prints one line per problem; the alert names, one a line, to $work/alerts.
python3 - "$dir/alerts.yml" "$dir/alerts_test.yml" "$OP_ROOT/docs/operations.md" "$work/alerts" >"$work/coverage" <<'PY'
import re, sys
import yaml
rules_path, tests_path, ops_path, names_out = sys.argv[1:]
rules = [r for g in yaml.safe_load(open(rules_path))["groups"] for r in g["rules"] if "alert" in r]
tests = yaml.safe_load(open(tests_path))["tests"]
fires, quiet = set(), set()
for t in tests:
    for c in t.get("alert_rule_test", []):
        (fires if c.get("exp_alerts") else quiet).add(c["alertname"])
# GitHub's anchor of a heading: lower case, punctuation dropped, spaces to '-'.
anchors = {re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-")
           for h in re.findall(r"^#+ (.+)$", open(ops_path).read(), re.M)}
names = []
for r in rules:
    a = r["alert"]
    names.append(a)
    if a not in fires:
        print(f"{a}: no test case where it fires")
    if a not in quiet:
        print(f"{a}: no test case where it does not fire (exp_alerts: [])")
    rb = r.get("annotations", {}).get("runbook", "")
    m = re.fullmatch(r"docs/operations\.md#([a-z0-9_-]+)", rb)
    if not m:
        print(f"{a}: runbook annotation '{rb}' is not docs/operations.md#<section>")
    elif m.group(1) not in anchors:
        print(f"{a}: docs/operations.md has no section #{m.group(1)}")
    if r.get("labels", {}).get("severity") not in ("page", "ticket"):
        print(f"{a}: severity is not page or ticket")
if len(set(names)) != len(names):
    print("alert names are not unique")
open(names_out, "w").write("".join(n + "\n" for n in names))
PY
t_eq "coverage script: exit status" "$?" 0
t_eq "coverage: problems" "$(cat "$work/coverage")" ""
mapfile -t alerts <"$work/alerts"
t_match "alerts.yml: alerts found" "${#alerts[@]}" '^[1-9][0-9]*$'

# --- 4: each alert's cases can fail ---------------------------------------------------
# mutate ALERT EXPR: a copy of ops/prometheus in $work/mut whose ALERT has
# the expression EXPR, with only ALERT's test cases (quicker than them all).
mutate() {
	rm -rf "$work/mut"
	cp -r "$dir" "$work/mut"
	python3 - "$work/mut" "$1" "$2" <<'PY' || return 1
import sys
import yaml
mut, alert, expr = sys.argv[1:]
doc = yaml.safe_load(open(f"{mut}/alerts.yml"))
hit = 0
for g in doc["groups"]:
    for r in g["rules"]:
        if r.get("alert") == alert:
            r["expr"] = expr
            hit += 1
if hit != 1:
    sys.exit(f"alert {alert} found {hit} times")
yaml.safe_dump(doc, open(f"{mut}/alerts.yml", "w"), sort_keys=False)
tests = yaml.safe_load(open(f"{mut}/alerts_test.yml"))
kept = []
for t in tests["tests"]:
    cases = [c for c in t.get("alert_rule_test", []) if c["alertname"] == alert]
    if cases:
        t["alert_rule_test"] = cases
        kept.append(t)
tests["tests"] = kept
yaml.safe_dump(tests, open(f"{mut}/alerts_test.yml", "w"), sort_keys=False)
PY
}
for a in "${alerts[@]}"; do
	mutate "$a" 'vector(1) == 0' || t_fail "cannot mutate $a"
	(cd "$work/mut" && promtool test rules alerts_test.yml >/dev/null 2>&1)
	t_eq "$a never true: promtool test rules fails" "$?" 1
	mutate "$a" 'vector(1)' || t_fail "cannot mutate $a"
	(cd "$work/mut" && promtool test rules alerts_test.yml >/dev/null 2>&1)
	t_eq "$a always true: promtool test rules fails" "$?" 1
done

# --- 5: the metric names are the services' own -------------------------------------
for b in orderpipe-ingest orderpipe-matcher orderpipe-recorder; do
	if [[ ! -x "$OP_BUILD/bin/$b" ]]; then
		printf 'prometheus_rules: the metric names not checked: %s is not built yet\n' "$b"
		t_done
		exit
	fi
done
# On a Redis database of their own (9, emptied before and after), so that the
# matcher does not match what earlier tests left in the shared stack's
# streams, nor the recorder record it for the tests after this one.
db_url=""
[[ "$REDIS_URL" =~ ^(redis://[^/]+)(/[0-9]*)?$ ]] && db_url="${BASH_REMATCH[1]}/9"
[[ -n "$db_url" ]] || { t_fail "REDIS_URL='$REDIS_URL' is not redis://HOST:PORT[/DB]"; t_done; exit 1; }
redis-cli -u "$db_url" FLUSHDB >/dev/null || t_fail "FLUSHDB of $db_url"
REDIS_URL="$db_url" "$OP_BUILD/bin/orderpipe-setup" --no-db >/dev/null 2>&1 ||
	t_fail "orderpipe-setup --no-db on $db_url"
mport="$(op_free_port "$INGEST_PORT")"
rport="$(op_free_port "$INGEST_PORT" "$mport")"
t_start ingest orderpipe-ingest REDIS_URL="$db_url" INGEST_PORT="$INGEST_PORT"
t_start matcher orderpipe-matcher REDIS_URL="$db_url" MATCHER_METRICS_PORT="$mport"
t_start recorder orderpipe-recorder REDIS_URL="$db_url" RECORDER_METRICS_PORT="$rport"
for p in "$INGEST_PORT" "$mport" "$rport"; do
	op_wait_until 30 "/metrics on port $p" curl -sf "http://127.0.0.1:$p/metrics" ||
		t_fail "no /metrics on port $p"
	curl -sf "http://127.0.0.1:$p/metrics" >>"$work/exported.txt" || true
done
t_stop_all
redis-cli -u "$db_url" FLUSHDB >/dev/null || t_fail "FLUSHDB of $db_url"
python3 - "$dir/alerts.yml" "$work/exported.txt" >"$work/metrics" <<'PY'
import re, sys
import yaml
rules_path, exported_path = sys.argv[1:]
exported = set(re.findall(r"^# TYPE (\S+) ", open(exported_path).read(), re.M))
used = set()
for g in yaml.safe_load(open(rules_path))["groups"]:
    for r in g["rules"]:
        used |= set(re.findall(r"\b((?:ingest|matcher|recorder|feed)_[a-z0-9_]+)", r["expr"]))
print(f"exported {len(exported)} families; the rules use {len(used)} metrics")
for m in sorted(used):
    base = re.sub(r"_(bucket|sum|count)$", "", m)
    if m not in exported and base not in exported:
        print(f"MISSING {m}")
PY
t_eq "metric check script: exit status" "$?" 0
cat "$work/metrics"
t_match "metrics exported" "$(head -n 1 "$work/metrics")" '^exported [1-9][0-9]* families; the rules use [1-9][0-9]* metrics$'
t_eq "metrics the rules use that no service exports" "$(grep '^MISSING' "$work/metrics")" ""

t_done

#!/usr/bin/env python3
"""Questions to a Prometheus server's HTTP API, for tests/compose/run.sh.

    prom.py targets URL [--tolerate INSTANCE ...]
        Prints every active target (job, instance, health, last error) and
        exits 0 when each one is up, but those named by --tolerate (whose
        health is printed and ignored); 1 otherwise, or when there is no
        target at all.
    prom.py rules URL COUNT
        Exits 0 when exactly COUNT alerting rules are loaded and every one
        evaluates without error (health "ok"); prints them.
    prom.py alert URL ALERTNAME INSTANCE
        Exits 0 when ALERTNAME is pending or firing for the target INSTANCE
        (its `instance` label); prints the alerts of that name.

URL is the server's root (http://127.0.0.1:9090). Exit status 2: the server
did not answer or answered something that is not the API's JSON.
"""
import json
import sys
import urllib.error
import urllib.request


def get(url, path):
    try:
        with urllib.request.urlopen(url.rstrip("/") + path, timeout=10) as r:
            doc = json.load(r)
    except (OSError, urllib.error.URLError, ValueError) as e:
        print(f"prom.py: GET {path}: {e}", file=sys.stderr)
        sys.exit(2)
    if doc.get("status") != "success":
        print(f"prom.py: GET {path}: status {doc.get('status')!r}", file=sys.stderr)
        sys.exit(2)
    return doc["data"]


def targets(url, tolerate):
    active = get(url, "/api/v1/targets?state=active")["activeTargets"]
    bad = 0
    for t in sorted(active, key=lambda t: (t["labels"].get("job", ""), t["labels"].get("instance", ""))):
        inst = t["labels"].get("instance", "")
        note = ""
        if t["health"] != "up":
            if inst in tolerate:
                note = " (tolerated)"
            else:
                bad += 1
        err = f" error={t['lastError']!r}" if t.get("lastError") else ""
        print(f"{t['labels'].get('job', '')} {inst} {t['health']}{note}{err}")
    return 0 if active and not bad else 1


def rules(url, count):
    loaded = [r for g in get(url, "/api/v1/rules?type=alert")["groups"] for r in g["rules"]]
    bad = 0
    for r in loaded:
        if r.get("health") != "ok":
            bad += 1
        print(f"{r['name']} health={r.get('health')} state={r.get('state')}"
              + (f" error={r['lastError']!r}" if r.get("lastError") else ""))
    print(f"{len(loaded)} alerting rules loaded, {count} expected, {bad} not healthy")
    return 0 if len(loaded) == count and not bad else 1


def alert(url, name, instance):
    found = 0
    for a in get(url, "/api/v1/alerts")["alerts"]:
        if a["labels"].get("alertname") != name:
            continue
        print(f"{name} instance={a['labels'].get('instance', '')} state={a['state']}")
        if a["labels"].get("instance") == instance and a["state"] in ("pending", "firing"):
            found = 1
    return 0 if found else 1


def main(argv):
    if len(argv) >= 2 and argv[0] == "targets":
        rest = argv[2:]
        if not (len(rest) % 2 or any(rest[i] != "--tolerate" for i in range(0, len(rest), 2))):
            return targets(argv[1], set(rest[1::2]))
    if len(argv) == 3 and argv[0] == "rules" and argv[2].isdigit():
        return rules(argv[1], int(argv[2]))
    if len(argv) == 4 and argv[0] == "alert":
        return alert(argv[1], argv[2], argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

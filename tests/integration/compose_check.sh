#!/usr/bin/env bash
# docker-compose.yml and Dockerfile checked without a Docker engine (none runs
# on the CI machines): the YAML parses; every service runs a binary the
# Makefile builds; every environment variable it sets is one the README
# documents (or the postgres image's own); health checks probe the port the
# service is configured to serve; every path the Dockerfile copies exists;
# the runtime image runs as a non-root user; no top-level `name:` (Compose v1
# refuses it); the redis, postgres and prometheus images are the official
# ones by default and overridable (${OP_*_IMAGE:-...}, for the stand-ins of
# tests/compose); Prometheus (ops/prometheus/prometheus.yml) scrapes every
# orderpipe service at its metrics port, and names no host that is not a
# service (but feed's, which the feed service will bring). The run on a real
# engine is `make test-compose` (tests/compose/run.sh).
set -uo pipefail
exec python3 - "$OP_ROOT" <<'PY'
import os, re, sys
import yaml

root = sys.argv[1]
fails = []
compose = yaml.safe_load(open(os.path.join(root, "docker-compose.yml")))
readme = open(os.path.join(root, "README.md")).read()
documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)`", readme, re.M))
documented |= {v for row in re.findall(r"^\| (`[A-Z_]+`(?:, `[A-Z_]+`)+) \|", readme, re.M)
               for v in re.findall(r"`([A-Z_]+)`", row)}
binaries = {"orderpipe-ingest": "ingest", "orderpipe-matcher": "matcher",
            "orderpipe-recorder": "recorder", "orderpipe-feed": "feed",
            "orderpipe-setup": "ops/tools/orderpipe-setup.c"}
services = compose.get("services", {})
for name, svc in services.items():
    cmd = svc.get("command") or []
    if cmd and cmd[0].startswith("/app/bin/"):
        b = cmd[0][len("/app/bin/"):]
        if b not in binaries or not os.path.exists(os.path.join(root, binaries[b])):
            fails.append(f"{name}: runs {cmd[0]}, which the Makefile does not build")
    env = svc.get("environment") or {}
    for var in (env if isinstance(env, dict) else {}):
        if var.startswith("POSTGRES_") and "postgres" in str(svc.get("image", "")):
            continue
        if var not in documented:
            fails.append(f"{name}: sets {var}, which README's configuration table does not document")
    hc = svc.get("healthcheck", {}).get("test", [])
    ports = re.findall(r"127\.0\.0\.1:(\d+)", " ".join(hc))
    for p in ports:
        configured = {str(v) for k, v in (env.items() if isinstance(env, dict) else []) if k.endswith("_PORT")}
        configured |= set(re.findall(r"^--[a-z.-]+=\S*:(\d+)$", "\n".join(cmd), re.M))
        if p not in configured:
            fails.append(f"{name}: health check probes port {p}, not a port the service is given ({configured})")
    for dep in (svc.get("depends_on") or {}):
        if dep not in services:
            fails.append(f"{name}: depends on unknown service {dep}")
# Compose v1 (docker-compose 1.29) refuses a top-level key it does not know
if "name" in compose:
    fails.append("a top-level 'name:' (Compose v1 refuses it: use -p or COMPOSE_PROJECT_NAME)")
for want in ("redis", "postgres", "setup", "ingest"):
    if want not in services:
        fails.append(f"no {want} service")
if sum(1 for s in services.values() if "orderpipe-matcher" in " ".join(s.get("command") or [])) < 2:
    fails.append("fewer than two matchers")
if sum(1 for s in services.values() if "orderpipe-recorder" in " ".join(s.get("command") or [])) < 2:
    fails.append("fewer than two recorders")
if "appendfsync" not in " ".join(services.get("redis", {}).get("command", [])) or \
        "always" not in services.get("redis", {}).get("command", []):
    fails.append("redis does not run with appendfsync always")
# The third-party images: official by default, overridable for the stand-ins.
for svc_name, var, official in (("redis", "OP_REDIS_IMAGE", "redis:"),
                                ("postgres", "OP_POSTGRES_IMAGE", "postgres:"),
                                ("prometheus", "OP_PROMETHEUS_IMAGE", "prom/prometheus:")):
    img = str(services.get(svc_name, {}).get("image", ""))
    m = re.fullmatch(r"\$\{" + var + r":-([^}]+)\}", img)
    if not m:
        fails.append(f"{svc_name}: image '{img}' is not ${{{var}:-<official image>}}")
    elif not m.group(1).startswith(official):
        fails.append(f"{svc_name}: default image '{m.group(1)}' is not the official {official}*")
# Prometheus scrapes every orderpipe service at the port it serves /metrics on.
metrics_port_var = {"orderpipe-ingest": "INGEST_PORT", "orderpipe-matcher": "MATCHER_METRICS_PORT",
                    "orderpipe-recorder": "RECORDER_METRICS_PORT", "orderpipe-feed": "FEED_PORT"}
prom = yaml.safe_load(open(os.path.join(root, "ops/prometheus/prometheus.yml")))
targets = {t for job in prom.get("scrape_configs", []) for sc in job.get("static_configs", [])
           for t in sc.get("targets", [])}
for name, svc in services.items():
    cmd = svc.get("command") or []
    binary = cmd[0][len("/app/bin/"):] if cmd and cmd[0].startswith("/app/bin/") else ""
    if binary not in metrics_port_var:
        continue
    env = svc.get("environment") or {}
    port = str(env.get(metrics_port_var[binary], "")) if isinstance(env, dict) else ""
    if not port:
        fails.append(f"{name}: no {metrics_port_var[binary]}: Prometheus cannot know its metrics port")
    elif f"{name}:{port}" not in targets:
        fails.append(f"{name}: ops/prometheus/prometheus.yml does not scrape {name}:{port}")
for t in sorted(targets):
    host = t.rsplit(":", 1)[0]
    if host not in services and host not in ("localhost", "feed"):
        fails.append(f"ops/prometheus/prometheus.yml scrapes {t}, which is no compose service")
vols = " ".join(services.get("prometheus", {}).get("volumes", []))
if "./ops/prometheus:/etc/prometheus" not in vols:
    fails.append("prometheus does not mount ./ops/prometheus at /etc/prometheus")
dockerfile = open(os.path.join(root, "Dockerfile")).read()
for src in re.findall(r"^COPY (?!--from)(\S+) ", dockerfile, re.M):
    if not os.path.exists(os.path.join(root, src)):
        fails.append(f"Dockerfile copies {src}, which does not exist")
if not re.search(r"^USER (?!root)\S+", dockerfile, re.M):
    fails.append("the runtime image does not switch to a non-root USER")
if "FROM debian:bookworm-slim AS build" not in dockerfile or dockerfile.count("FROM debian:bookworm-slim") < 2:
    fails.append("the Dockerfile is not a multi-stage build on debian:bookworm-slim")
for f in fails:
    print("FAIL:", f)
print(f"compose_check: {len(services)} services checked, {len(fails)} problems")
sys.exit(1 if fails else 0)
PY

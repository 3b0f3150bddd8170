#!/usr/bin/env bash
# Side-by-side race: Tern and rotel on the same machine, one after the
# other, with the same pre-encoded payloads from tern-loadgen.
#
#   benches/compare.sh [seconds-per-case] [items-per-request]
#
# Each collector is pinned to CPU 0; the load generator (and, for the
# forwarding pipelines, the counting sink) to CPU 1. Pipelines:
#   1. OTLP gRPC in -> batch -> discard   (Tern `nop`, rotel `blackhole`)
#   2. OTLP gRPC in -> batch -> OTLP gRPC out to a counting sink
#   3. the same as 2 with gzip on both sides
# For each pipeline and signal it prints items/s, collector CPU seconds
# (utime + stime from /proc), items per CPU-second, peak RSS (VmHWM), p99
# request latency, what the sink received, and the Tern/rotel ratios.
# rotel comes from its PyPI wheel (installed into benches/.venv).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_CASE="${1:-10}"
ITEMS="${2:-512}"
ROTEL_VERSION="0.0.1a15"
TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
OUT="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$OUT"' EXIT

cargo build --release --locked -p tern --bin tern -p tern-bench --bin tern-loadgen >&2
TERN="$TARGET_DIR/release/tern"
LOADGEN="$TARGET_DIR/release/tern-loadgen"

VENV=benches/.venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "rotel==$ROTEL_VERSION" >&2
ROTEL="$("$VENV/bin/python" -c 'import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), "rotel-agent"))')"
chmod +x "$ROTEL"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
peak_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listening on $1" >&2; return 1
}
json() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

tern_config() { # pipeline grpc_port http_port sink_port
  local exporter
  case "$1" in
    1) exporter="nop: {}" ; name=nop ;;
    2) exporter="otlp: {endpoint: \"127.0.0.1:$4\", compression: none, tls: {insecure: true}}" ; name=otlp ;;
    3) exporter="otlp: {endpoint: \"127.0.0.1:$4\", compression: gzip, tls: {insecure: true}}" ; name=otlp ;;
  esac
  cat <<YAML
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:$2"}
      http: {endpoint: "127.0.0.1:$3"}
processors:
  batch: {}
exporters:
  $exporter
service:
  telemetry:
    logs: {level: warn}
    metrics: {level: none}
  pipelines:
    traces: {receivers: [otlp], processors: [batch], exporters: [$name]}
    logs: {receivers: [otlp], processors: [batch], exporters: [$name]}
YAML
}

run_case() { # collector pipeline signal [rate]
  local collector=$1 pipeline=$2 signal=$3 rate=${4:-0}
  local grpc http sink pid sink_pid=""
  grpc=$(free_port); http=$(free_port); sink=$(free_port)
  local compression=none
  [ "$pipeline" = 3 ] && compression=gzip
  if [ "$pipeline" != 1 ]; then
    taskset -c 1 "$LOADGEN" sink --listen "127.0.0.1:$sink" > "$OUT/sink.json" &
    sink_pid=$!
    wait_port "$sink"
  fi
  if [ "$collector" = tern ]; then
    tern_config "$pipeline" "$grpc" "$http" "$sink" > "$OUT/tern.yaml"
    taskset -c 0 "$TERN" --config "$OUT/tern.yaml" 2> "$OUT/collector.log" &
  else
    local args=(--otlp-grpc-endpoint "127.0.0.1:$grpc" --otlp-http-endpoint "127.0.0.1:$http")
    case "$pipeline" in
      1) args+=(--exporter blackhole) ;;
      *) args+=(--exporter otlp --otlp-exporter-endpoint "http://127.0.0.1:$sink" --otlp-exporter-protocol grpc --otlp-exporter-compression "$compression") ;;
    esac
    taskset -c 0 "$ROTEL" start "${args[@]}" > "$OUT/collector.log" 2>&1 &
  fi
  pid=$!
  wait_port "$grpc"
  # rotel's `start` runs the agent in a child process: measure that one.
  local child
  child=$(pgrep -P "$pid" | head -n1 || true)
  [ -n "$child" ] && pid=$child
  local before after
  before=$(cpu_ticks "$pid")
  local report
  report=$(taskset -c 1 "$LOADGEN" send --target "127.0.0.1:$grpc" --signal "$signal" \
    --items-per-request "$ITEMS" --connections 2 --in-flight 8 --duration "$SECONDS_PER_CASE" \
    --compression "$compression" --rate "$rate")
  after=$(cpu_ticks "$pid")
  local rss
  rss=$(peak_kib "$pid")
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  pkill -TERM -P "$pid" 2>/dev/null || true
  local delivered="-"
  if [ -n "$sink_pid" ]; then
    sleep 1
    kill -TERM "$sink_pid"; wait "$sink_pid" 2>/dev/null || true
    delivered=$(json "$(cat "$OUT/sink.json")" "$signal")
  fi
  local hz cpu items ips
  hz=$(getconf CLK_TCK)
  cpu=$(python3 -c "print(($after - $before) / $hz)")
  items=$(json "$report" items_ok)
  ips=$(json "$report" items_per_sec)
  echo "$(json "$report" requests_per_sec)" > "$OUT/last_rps"
  printf '%s %s %s %.0f %.2f %.0f %.1f %s %s %s\n' "$collector" "$pipeline" "$signal" "$ips" "$cpu" \
    "$(python3 -c "print($items / max($cpu, 1e-9))")" "$(python3 -c "print($rss / 1024)")" \
    "$(json "$report" p99_ms)" "$items" "$delivered"
}

echo "# $(date -u +%FT%TZ) $(nproc) CPUs, $(uname -r); tern $("$TERN" --version | cut -d' ' -f2), rotel $ROTEL_VERSION; ${SECONDS_PER_CASE}s per case, $ITEMS items per request"
echo "collector pipeline signal items/s cpu_s items/cpu_s peak_rss_MiB p99_ms sent delivered"
for pipeline in 1 2 3; do
  for signal in traces logs; do
    for collector in tern rotel; do
      run_case "$collector" "$pipeline" "$signal" | tee -a "$OUT/results"
    done
  done
done
echo
echo "latency at half of each collector's own saturation rate (pipeline 1, traces):"
echo "collector pipeline signal items/s cpu_s items/cpu_s peak_rss_MiB p99_ms sent delivered"
for collector in tern rotel; do
  run_case "$collector" 1 traces > /dev/null
  half=$(python3 -c "print(float(open('$OUT/last_rps').read()) / 2)")
  run_case "$collector" 1 traces "$half"
done
echo
echo "ratios (tern / rotel): pipeline signal items/s items/cpu_s peak_rss"
python3 - "$OUT/results" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    c, p, s, ips, cpu, ipc, rss, p99, sent, delivered = line.split()
    rows[(c, p, s)] = (float(ips), float(ipc), float(rss))
for (c, p, s), (ips, ipc, rss) in sorted(rows.items()):
    if c != "tern" or ("rotel", p, s) not in rows:
        continue
    r = rows[("rotel", p, s)]
    print(f"{p} {s} {ips / r[0]:.2f}x {ipc / r[1]:.2f}x {rss / r[2]:.2f}x")
PY

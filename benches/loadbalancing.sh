#!/usr/bin/env bash
# Spans per CPU-second of Tern forwarding OTLP/gRPC through the
# `load_balancing` exporter (static resolver, 3 backends on 127.0.0.2-4)
# against the plain `otlp_grpc` exporter to one backend. The backends are
# `tern-loadgen sink`s (they only count); Tern is pinned to CPU 0 and the
# load generator and sinks to CPU 1. Each case runs SECONDS_PER_CASE
# seconds, ROUNDS times, alternating. Prints one line per run:
#   exporter round spans/s cpu_s spans/cpu_s delivered
#
# Usage: benches/loadbalancing.sh [ROUNDS] [SECONDS_PER_CASE]
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${1:-2}"
SECONDS_PER_CASE="${2:-6}"
OUT=${KEEP_OUT:-$(mktemp -d)}
[ -n "${KEEP_OUT:-}" ] || trap 'rm -rf "$OUT"' EXIT

source benches/common.sh

SINK_PORT=$(free_port)
GRPC=$(free_port)
HEALTH=$(free_port)

config() {
  local exporter
  case "$1" in
    otlp)
      exporter="  otlp_grpc:
    endpoint: 127.0.0.2:$SINK_PORT
    tls: {insecure: true}
    compression: none"
      name=otlp_grpc ;;
    load_balancing)
      exporter="  load_balancing:
    protocol:
      otlp:
        tls: {insecure: true}
        compression: none
    resolver:
      static:
        hostnames: [127.0.0.2:$SINK_PORT, 127.0.0.3:$SINK_PORT, 127.0.0.4:$SINK_PORT]"
      name=load_balancing ;;
  esac
  cat <<EOF
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:$GRPC
exporters:
$exporter
extensions:
  health_check:
    endpoint: 127.0.0.1:$HEALTH
service:
  extensions: [health_check]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [$name]
EOF
}

run_case() {
  local exporter=$1 round=$2 sinks=() pids=()
  local ips=(127.0.0.2)
  [ "$exporter" = load_balancing ] && ips=(127.0.0.2 127.0.0.3 127.0.0.4)
  for ip in "${ips[@]}"; do
    taskset -c 1 "$LOADGEN" sink --listen "$ip:$SINK_PORT" > "$OUT/sink-$ip.json" 2>/dev/null &
    pids+=($!)
    sinks+=("$ip")
  done
  for ip in "${sinks[@]}"; do wait_port "$SINK_PORT" "$ip"; done
  config "$exporter" > "$OUT/tern.yaml"
  taskset -c 0 "$TERN" --config "$OUT/tern.yaml" > "$OUT/tern.log" 2>&1 &
  local tern=$!
  wait_port "$GRPC"
  local before after report
  before=$(cpu_ticks "$tern")
  report=$(taskset -c 1 "$LOADGEN" send --target "127.0.0.1:$GRPC" --signal traces \
    --items-per-request 512 --connections 2 --in-flight 8 --duration "$SECONDS_PER_CASE")
  after=$(cpu_ticks "$tern")
  kill -TERM "$tern"; wait "$tern" 2>/dev/null || true
  sleep 0.5
  local delivered=0
  for i in "${!pids[@]}"; do
    kill -TERM "${pids[$i]}"; wait "${pids[$i]}" 2>/dev/null || true
    delivered=$((delivered + $(python3 -c "import json,sys; print(json.load(open(sys.argv[1])).get('traces', 0))" "$OUT/sink-${sinks[$i]}.json")))
  done
  python3 - "$exporter" "$round" "$before" "$after" "$delivered" "$report" <<'EOF'
import json, os, sys
exporter, rnd, before, after, delivered, report = sys.argv[1:]
r = json.loads(report)
cpu = (int(after) - int(before)) / os.sysconf("SC_CLK_TCK")
items = r["items_ok"]
print(f"{exporter} {rnd} {items / r['seconds']:.0f} {cpu:.2f} {items / max(cpu, 1e-9):.0f} {delivered}/{items}")
EOF
  # Tern's log of each run stays in KEEP_OUT (when given).
  cp "$OUT/tern.log" "$OUT/tern-$exporter-$round.log"
}

echo "exporter round spans/s cpu_s spans/cpu_s delivered/sent"
for round in $(seq 1 "$ROUNDS"); do
  run_case otlp "$round"
  run_case load_balancing "$round"
done

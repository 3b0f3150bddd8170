#!/usr/bin/env bash
# What a `forward` connector costs: Tern with OTLP gRPC in -> OTLP gRPC out
# to a counting sink, once as one pipeline and once as two pipelines joined
# by a `forward` connector, with the same load, alternating.
#
#   benches/forward.sh [seconds-per-case] [rounds]
#
# Tern is pinned to CPU 0, tern-loadgen (sender and sink) to CPU 1. For
# each case it prints items/s as the sender counted them, Tern's CPU
# seconds (utime + stime from /proc), items per CPU-second and what the
# sink received.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_CASE="${1:-10}"
ROUNDS="${2:-2}"
OUT="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$OUT"' EXIT

source benches/common.sh

config() { # $1: direct | forward
  local grpc=$2 sink=$3
  cat <<EOF
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:$grpc
exporters:
  otlp_grpc:
    endpoint: 127.0.0.1:$sink
    tls: {insecure: true}
    compression: none
connectors:
  forward:
service:
  telemetry:
    metrics: {level: none}
  pipelines:
EOF
  if [ "$1" = direct ]; then
    printf '    traces:\n      receivers: [otlp]\n      exporters: [otlp_grpc]\n'
  else
    printf '    traces:\n      receivers: [otlp]\n      exporters: [forward]\n'
    printf '    traces/out:\n      receivers: [forward]\n      exporters: [otlp_grpc]\n'
  fi
}

printf '%-8s %12s %8s %14s %12s\n' case items/s cpu_s items/cpu_s sink_items
for round in $(seq "$ROUNDS"); do
  for case in direct forward; do
    grpc=$(free_port); sink=$(free_port)
    config "$case" "$grpc" "$sink" > "$OUT/tern.yaml"
    read -r rate cpu per_cpu sink_items < <(measure_traces "$OUT/tern.yaml" "$grpc" "$sink" "$SECONDS_PER_CASE")
    printf '%-8s %12.0f %8.2f %14s %12s\n' "$case" "$rate" "$cpu" "$per_cpu" "$sink_items"
  done
done

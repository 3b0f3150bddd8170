#!/usr/bin/env bash
# What a persistent queue costs: Tern with OTLP gRPC in -> OTLP gRPC out to
# a counting sink, with the exporter's queue in memory, then kept by a
# `file_storage` extension without fsync, then with fsync on every group
# commit, with the same load, alternating. The log lives in a fresh
# directory under $TMPDIR (the machine's disk unless that is a tmpfs).
#
#   benches/storage.sh [seconds-per-case] [rounds] [requests-per-second]
#
# Without a rate the sender goes as fast as Tern accepts; the cases then
# differ in how many requests are refused (refusing costs CPU too) and in
# what is left on disk when the load stops (its export is not counted). A
# rate that every case sustains (1000 requests/s = 512 K spans/s here)
# compares the CPU cost per span alone.
#
# Tern is pinned to CPU 0, tern-loadgen (sender and sink) to CPU 1. For
# each case it prints items/s as the sender counted them, Tern's CPU
# seconds (utime + stime from /proc), items per CPU-second, that figure
# against the in-memory case of the same round, and what the sink received.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_CASE="${1:-10}"
ROUNDS="${2:-2}"
RATE="${3:-0}"
OUT="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$OUT"' EXIT

source benches/common.sh

config() { # $1: memory | fsync_off | fsync_on
  local grpc=$2 sink=$3 storage="" fsync=false
  [ "$1" = memory ] || storage=$'\n      storage: file_storage'
  [ "$1" = fsync_on ] && fsync=true
  cat <<EOF
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:$grpc
extensions:
  file_storage:
    directory: $OUT/storage-$grpc
    create_directory: true
    fsync: $fsync
exporters:
  otlp_grpc:
    endpoint: 127.0.0.1:$sink
    tls: {insecure: true}
    compression: none
    sending_queue:
      enabled: true$storage
service:
  extensions: [file_storage]
  telemetry:
    metrics: {level: none}
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp_grpc]
EOF
}

printf '%-10s %12s %8s %14s %8s %12s\n' case items/s cpu_s items/cpu_s vs_mem sink_items
for round in $(seq "$ROUNDS"); do
  base=0
  for case in memory fsync_off fsync_on; do
    grpc=$(free_port); sink=$(free_port)
    config "$case" "$grpc" "$sink" > "$OUT/tern.yaml"
    read -r rate cpu per_cpu sink_items < <(measure_traces "$OUT/tern.yaml" "$grpc" "$sink" "$SECONDS_PER_CASE" "$RATE")
    [ "$case" = memory ] && base=$per_cpu
    ratio=$(python3 -c "print(round($per_cpu / $base, 2) if $base > 0 else 0)")
    printf '%-10s %12.0f %8.2f %14s %8s %12s\n' "$case" "$rate" "$cpu" "$per_cpu" "$ratio" "$sink_items"
  done
done

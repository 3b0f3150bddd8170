#!/usr/bin/env bash
# What the persistent exporter queue costs: Tern forwarding OTLP/gRPC ->
# OTLP/gRPC to a counting sink with (1) the in-memory queue, (2)
# `sending_queue.storage: file_storage` with `fsync: false` and (3) the
# same with `fsync: true`, alternating, in one run on one machine.
#
#   benches/storage.sh [seconds-per-case] [rounds] [requests-per-second]
#
# Tern is pinned to CPU 0, tern-loadgen (sender and sink) to CPU 1; the
# sender runs 2 connections x 8 requests in flight of 512 GenAI spans, at
# the given rate (0, the default: as fast as accepted; at saturation the
# cases differ in how many requests are refused, which costs CPU too, so a
# rate every case sustains compares the cost per span alone). Tern's CPU (utime + stime from /proc) is taken from the
# start of the load until its exporter has sent every span the sender got
# acknowledged (at most 60 s more), so the drain of a backlog on disk is
# paid for too. The log directory is a fresh folder under $TMPDIR (set
# TMPDIR to measure another disk). Prints one line per run, then each
# storage case's median spans per CPU-second as a ratio to the in-memory
# queue's.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_CASE="${1:-5}"
ROUNDS="${2:-3}"
RATE="${3:-0}"
OUT="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$OUT"' EXIT

source benches/common.sh

config() { # case grpc_port sink_port metrics_port
  local queue=""
  case "$1" in
    memory) ;;
    fsync_off|fsync_on)
      queue="
    sending_queue:
      storage: file_storage"
      local fsync=false
      [ "$1" = fsync_on ] && fsync=true
      mkdir -p "$OUT/storage-$1"
      cat <<EOF
extensions:
  file_storage:
    directory: $OUT/storage-$1
    fsync: $fsync
EOF
      ;;
  esac
  cat <<EOF
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:$2
exporters:
  otlp_grpc:
    endpoint: 127.0.0.1:$3
    tls: {insecure: true}
    compression: none$queue
service:
  extensions: [$([ "$1" = memory ] || echo file_storage)]
  telemetry:
    logs: {level: warn}
    metrics: {readers: [{pull: {exporter: {prometheus: {host: "127.0.0.1", port: $4}}}}]}
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp_grpc]
EOF
}

# Spans the exporter has sent, from Tern's metrics on port $1.
sent_spans() {
  python3 - "$1" <<'EOF'
import sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
print(int(sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
              if l.startswith("otelcol_exporter_sent_spans_total"))))
EOF
}

run_case() { # case round
  local grpc sink metrics
  grpc=$(free_port); sink=$(free_port); metrics=$(free_port)
  config "$1" "$grpc" "$sink" "$metrics" > "$OUT/tern.yaml"
  taskset -c 1 "$LOADGEN" sink --listen "127.0.0.1:$sink" > "$OUT/sink.json" &
  local sink_pid=$!
  wait_port "$sink"
  taskset -c 0 "$TERN" --config "$OUT/tern.yaml" 2> "$OUT/tern.log" &
  local tern=$!
  wait_port "$grpc"
  local before after report items drained=yes
  before=$(cpu_ticks "$tern")
  report=$(taskset -c 1 "$LOADGEN" send --target "127.0.0.1:$grpc" --signal traces \
    --items-per-request 512 --connections 2 --in-flight 8 --duration "$SECONDS_PER_CASE" --rate "$RATE")
  items=$(json "$report" items_ok)
  local deadline=$((SECONDS + 60))
  until [ "$(sent_spans "$metrics")" -ge "$items" ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then drained=no; break; fi
    sleep 0.1
  done
  after=$(cpu_ticks "$tern")
  kill -TERM "$tern"; wait "$tern" || true
  kill -TERM "$sink_pid"; wait "$sink_pid" || true
  python3 - "$1" "$2" "$before" "$after" "$report" "$(cat "$OUT/sink.json")" "$drained" <<'EOF'
import json, os, sys
case, rnd, before, after, report, sink, drained = sys.argv[1:]
r, s = json.loads(report), json.loads(sink)
cpu = (int(after) - int(before)) / os.sysconf("SC_CLK_TCK")
items = r["items_ok"]
errors = sum(r["errors"].values())
print(f"{case:<10} {rnd:>5} {items / r['seconds']:>10.0f} {cpu:>7.2f} {items / max(cpu, 1e-9):>12.0f} "
      f"{s.get('traces', 0)}/{items} {errors:>7} {drained:>8}")
EOF
  rm -rf "$OUT/storage-$1"
}

printf '%-10s %5s %10s %7s %12s %s %7s %8s\n' case round spans/s cpu_s spans/cpu_s delivered/acked errors drained \
  | tee "$OUT/results"
for round in $(seq 1 "$ROUNDS"); do
  for case in memory fsync_off fsync_on; do
    run_case "$case" "$round" | tee -a "$OUT/results"
  done
done
python3 - "$OUT/results" <<'EOF'
import statistics, sys
per = {}
for line in open(sys.argv[1]).read().splitlines()[1:]:
    f = line.split()
    per.setdefault(f[0], []).append(float(f[4]))
base = statistics.median(per["memory"])
print()
for case, values in per.items():
    m = statistics.median(values)
    print(f"{case:<10} median {m:>12.0f} spans per CPU-second, {m / base:.2f}x the in-memory queue")
EOF

#!/usr/bin/env bash
# Side-by-side race: Tern, rotel and the reference OpenTelemetry Collector
# on the same machine, one after the other, with the same pre-encoded
# payloads from tern-loadgen.
#
#   benches/compare.sh [seconds-per-case] [items-per-request] [sections]
#
# sections (default: all of them, in this order): saturation latency load
# padded scaling sampler tail ratios.
#
# Each collector is pinned to CPU 0; the load generator (and, for the
# forwarding pipelines, the counting sink) to CPU 1. Pipelines:
#   1. OTLP gRPC in -> batch -> discard   (Tern and the Collector `nop`,
#      rotel `blackhole`)
#   2. OTLP gRPC in -> batch -> OTLP gRPC out to a counting sink
#   3. the same as 2 with gzip on both sides
#   sampler. OTLP gRPC in -> probabilistic_sampler 25% -> batch -> OTLP gRPC
#      out (Tern and the Collector)
#   tail. OTLP gRPC in -> tail_sampling (status_code ERROR, latency > 500 ms,
#      10% probabilistic; decision_wait 5s) -> OTLP gRPC out (Tern and the
#      Collector; rotel has no tail sampling)
# For each pipeline and signal it prints items/s, collector CPU seconds
# (utime + stime from /proc), items per CPU-second, peak RSS (VmHWM), p99
# request latency as the load generator saw it (from when each request was
# due), the hypervisor's steal time on the collector's CPU, for Tern the
# share of requests answered within 5 ms and the p99 from its own
# tern_receiver_request_duration_seconds histogram, what the sink received,
# and the ratios of Tern to each peer. Then: latency at half load (with the load
# generator's own floor against a sink that only counts), pipeline 2 at a
# rate both collectors sustain (peak RSS under load, not overload),
# pipeline 1 with ~430-byte spans, and Tern's scaling from one CPU to two
# ("1z": gzip in -> batch -> discard, where the collector, not the load
# generator, does most of the work).
# rotel comes from its PyPI wheel (installed into benches/.venv); the
# reference Collector ("otelcol" in the tables) is the pinned build of
# tests/refcol (v0.161.0), built by tests/refcol/build.sh into its cache
# folder, and left out, saying so, where Go is not installed.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_CASE="${1:-10}"
ITEMS="${2:-512}"
SECTIONS="${3:-saturation latency load padded scaling sampler tail ratios}"
ROTEL_VERSION="0.0.1a15"
OUT="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$OUT"' EXIT

source benches/common.sh

VENV=benches/.venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "rotel==$ROTEL_VERSION" >&2
ROTEL="$("$VENV/bin/python" -c 'import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), "rotel-agent"))')"
chmod +x "$ROTEL"

# The peers Tern races: rotel, and the reference Collector where Go builds it.
PEERS="rotel"
OTELCOL=""
refcol_rc=0
refcol_dir=$(tests/refcol/build.sh) || refcol_rc=$?
case $refcol_rc in
  0) OTELCOL="$refcol_dir/otelcol"; PEERS="rotel otelcol" ;;
  3) echo "Go is not installed: the reference Collector is left out" >&2 ;;
  *) exit "$refcol_rc" ;;
esac


TAIL_SAMPLING='tail_sampling: {decision_wait: 5s, policies: [{name: errors, type: status_code, status_code: {status_codes: [ERROR]}}, {name: slow, type: latency, latency: {threshold_ms: 500}}, {name: share, type: probabilistic, probabilistic: {sampling_percentage: 10}}]}'

SAMPLER='probabilistic_sampler: {sampling_percentage: 25}'

# The traces processors of a pipeline, and the settings they need beyond
# `batch` (the same for Tern and the Collector).
pipeline_processors() { # pipeline
  procs=batch extra=""
  case "$1" in
    tail) procs=tail_sampling; extra=$TAIL_SAMPLING ;;
    sampler) procs="probabilistic_sampler, batch"; extra=$SAMPLER ;;
  esac
}

tern_config() { # pipeline grpc_port http_port sink_port metrics_port
  local exporter
  case "$1" in
    1|1z) exporter="nop: {}" ; name=nop ;;
    2) exporter="otlp: {endpoint: \"127.0.0.1:$4\", compression: none, tls: {insecure: true}$TERN_QUEUE}" ; name=otlp ;;
    3) exporter="otlp: {endpoint: \"127.0.0.1:$4\", compression: gzip, tls: {insecure: true}}" ; name=otlp ;;
    tail|sampler) exporter="otlp: {endpoint: \"127.0.0.1:$4\", compression: none, tls: {insecure: true}}" ; name=otlp ;;
  esac
  local procs extra
  pipeline_processors "$1"
  cat <<YAML
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:$2"}
      http: {endpoint: "127.0.0.1:$3"}
processors:
  batch: {}
  $extra
exporters:
  $exporter
service:
  telemetry:
    logs: {level: warn}
    metrics: {readers: [{pull: {exporter: {prometheus: {host: "127.0.0.1", port: $5}}}}]}
  pipelines:
    traces: {receivers: [otlp], processors: [$procs], exporters: [$name]}
    logs: {receivers: [otlp], processors: [batch], exporters: [$name]}
YAML
}

# The same pipelines for the reference Collector: the same receiver and
# `batch`, its own telemetry off.
otelcol_config() { # pipeline grpc_port http_port sink_port
  local exporter
  case "$1" in
    1|1z) exporter="nop: {}" ; name=nop ;;
    2) exporter="otlp_grpc: {endpoint: \"127.0.0.1:$4\", compression: none, tls: {insecure: true}}" ; name=otlp_grpc ;;
    3) exporter="otlp_grpc: {endpoint: \"127.0.0.1:$4\", compression: gzip, tls: {insecure: true}}" ; name=otlp_grpc ;;
    tail|sampler) exporter="otlp_grpc: {endpoint: \"127.0.0.1:$4\", compression: none, tls: {insecure: true}}" ; name=otlp_grpc ;;
  esac
  local procs extra
  pipeline_processors "$1"
  cat <<YAML
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:$2"}
      http: {endpoint: "127.0.0.1:$3"}
processors:
  batch: {}
  $extra
exporters:
  $exporter
service:
  telemetry:
    logs: {level: warn}
    metrics: {level: none}
  pipelines:
    traces: {receivers: [otlp], processors: [$procs], exporters: [$name]}
    logs: {receivers: [otlp], processors: [batch], exporters: [$name]}
YAML
}

# Steal ticks (time the hypervisor ran someone else) of a CPU list like 0 or 0,1.
steal_ticks() { awk -v set=",$1," '$1 ~ /^cpu[0-9]/ { if (index(set, "," substr($1, 4) ",")) s += $9 } END { print s }' /proc/stat; }

# From Tern's tern_receiver_request_duration_seconds histogram (gRPC): the
# share of requests answered within 5 ms and the p99 (linear within its bucket).
server_latency() { # metrics text on stdin
  python3 -c '
import sys
b = []
for line in sys.stdin:
    if line.startswith("tern_receiver_request_duration_seconds_bucket") and "transport=\"grpc\"" in line:
        le = line.split("le=\"")[1].split("\"")[0]
        b.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
if not b or b[-1][1] == 0:
    print("- -"); sys.exit()
total = b[-1][1]
le5 = next(c for le, c in b if le >= 0.005) / total
target, lo, below = 0.99 * total, 0.0, 0.0
for le, c in b:
    if c >= target:
        p99 = le if le == float("inf") else lo + (le - lo) * (target - below) / max(c - below, 1)
        break
    lo, below = le, c
print(f"{le5 * 100:.1f}% {p99 * 1000:.2f}")'
}

# Globals a case may change: CPUs of the collector and of the load (the
# generator and the sink), the generator's connections.
C_CPUS=0
L_CPUS=1
CONNECTIONS=2
TERN_QUEUE=""  # extra settings for Tern's otlp exporter, e.g. ", sending_queue: {queue_size: 20}"

rss_mib() { awk '/VmRSS/ {print $2 / 1024}' "/proc/$1/status"; }

run_case() { # collector pipeline signal [rate] [items] [span padding]
  local collector=$1 pipeline=$2 signal=$3 rate=${4:-0} items_per_request=${5:-$ITEMS} padding=${6:-0}
  local grpc http sink metrics pid sink_pid=""
  grpc=$(free_port); http=$(free_port); sink=$(free_port); metrics=$(free_port)
  local compression=none
  case "$pipeline" in 3|1z) compression=gzip ;; esac
  if [ "$pipeline" != 1 ] && [ "$pipeline" != 1z ]; then
    taskset -c "$L_CPUS" "$LOADGEN" sink --listen "127.0.0.1:$sink" > "$OUT/sink.json" &
    sink_pid=$!
    wait_port "$sink"
  fi
  if [ "$collector" = tern ]; then
    tern_config "$pipeline" "$grpc" "$http" "$sink" "$metrics" > "$OUT/tern.yaml"
    taskset -c "$C_CPUS" "$TERN" --config "$OUT/tern.yaml" 2> "$OUT/collector.log" &
  elif [ "$collector" = otelcol ]; then
    otelcol_config "$pipeline" "$grpc" "$http" "$sink" > "$OUT/otelcol.yaml"
    taskset -c "$C_CPUS" "$OTELCOL" --config "$OUT/otelcol.yaml" > "$OUT/collector.log" 2>&1 &
  else
    local args=(--otlp-grpc-endpoint "127.0.0.1:$grpc" --otlp-http-endpoint "127.0.0.1:$http")
    case "$pipeline" in
      1) args+=(--exporter blackhole) ;;
      *) args+=(--exporter otlp --otlp-exporter-endpoint "http://127.0.0.1:$sink" --otlp-exporter-protocol grpc --otlp-exporter-compression "$compression") ;;
    esac
    taskset -c "$C_CPUS" "$ROTEL" start "${args[@]}" > "$OUT/collector.log" 2>&1 &
  fi
  pid=$!
  wait_port "$grpc"
  # rotel's `start` runs the agent in a child process: measure that one.
  local child
  child=$(pgrep -P "$pid" | head -n1 || true)
  [ -n "$child" ] && pid=$child
  local before after steal_before steal_after report
  before=$(cpu_ticks "$pid")
  steal_before=$(steal_ticks "$C_CPUS")
  # RSS halfway through, to compare with the end: flat under overload.
  (sleep "$(python3 -c "print($SECONDS_PER_CASE / 2)")"; rss_mib "$pid" > "$OUT/rss_mid") &
  # The tail pipeline gets whole agent traces of 10-50 spans (some failed
  # or slow), with enough distinct requests that ids do not repeat soon.
  local traffic=(--traffic genai)
  [ "$pipeline" = tail ] && traffic=(--traffic agent-traces --distinct 4096)
  report=$(taskset -c "$L_CPUS" "$LOADGEN" send --target "127.0.0.1:$grpc" --signal "$signal" "${traffic[@]}" \
    --items-per-request "$items_per_request" --connections "$CONNECTIONS" --in-flight 8 --duration "$SECONDS_PER_CASE" \
    --compression "$compression" --rate "$rate" --span-padding "$padding")
  after=$(cpu_ticks "$pid")
  steal_after=$(steal_ticks "$C_CPUS")
  local rss rss_end server="- -"
  rss=$(peak_kib "$pid")
  rss_end=$(rss_mib "$pid")
  if [ "$collector" = tern ]; then
    server=$(curl -fsS "http://127.0.0.1:$metrics/metrics" | server_latency)
  fi
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  pkill -TERM -P "$pid" 2>/dev/null || true
  local delivered="-"
  if [ -n "$sink_pid" ]; then
    sleep 1
    kill -TERM "$sink_pid"; wait "$sink_pid" 2>/dev/null || true
    delivered=$(json "$(cat "$OUT/sink.json")" "$signal")
  fi
  local hz cpu items ips steal
  hz=$(getconf CLK_TCK)
  cpu=$(python3 -c "print(($after - $before) / $hz)")
  items=$(json "$report" items_ok)
  ips=$(json "$report" items_per_sec)
  steal=$(python3 -c "print(100 * ($steal_after - $steal_before) / ($hz * $(json "$report" seconds) * len('$C_CPUS'.split(','))))")
  echo "$(json "$report" requests_per_sec)" > "$OUT/last_rps"
  local refused
  refused=$(python3 -c 'import json, sys; print(sum(json.loads(sys.argv[1])["errors"].values()))' "$report")
  printf '%s %s %s %.0f %.2f %.0f %.1f %.1f %.1f %s %.1f%% %s %s %s %s\n' "$collector" "$pipeline" "$signal" "$ips" "$cpu" \
    "$(python3 -c "print($items / max($cpu, 1e-9))")" "$(python3 -c "print($rss / 1024)")" \
    "$(cat "$OUT/rss_mid")" "$rss_end" "$(json "$report" p99_ms)" "$steal" "$server" "$items" "$refused" "$delivered"
}

COLUMNS="collector pipeline signal items/s cpu_s items/cpu_s peak_rss_MiB rss_mid_MiB rss_end_MiB p99_ms steal server_le_5ms server_p99_ms sent refused delivered"

section_saturation() {
  echo "saturation (as fast as accepted):"
  echo "$COLUMNS"
  for pipeline in 1 2 3; do
    for signal in traces logs; do
      for collector in tern $PEERS; do
        run_case "$collector" "$pipeline" "$signal" | tee -a "$OUT/results"
        if [ "$collector" = rotel ] && [ "$pipeline" = 2 ] && [ "$signal" = traces ]; then
          cp "$OUT/last_rps" "$OUT/rotel_p2_rps"
        fi
      done
    done
  done
}

section_latency() {
  echo "latency at half of each collector's own saturation rate (pipeline 1, traces), and the"
  echo "load generator alone against the counting sink on the collector's CPU at Tern's rate:"
  echo "$COLUMNS"
  local collector half tern_half="" sink sink_pid report
  for collector in tern $PEERS; do
    run_case "$collector" 1 traces > /dev/null
    half=$(python3 -c "print(float(open('$OUT/last_rps').read()) / 2)")
    run_case "$collector" 1 traces "$half"
    if [ "$collector" = tern ]; then tern_half=$half; fi
  done
  sink=$(free_port)
  taskset -c "$C_CPUS" "$LOADGEN" sink --listen "127.0.0.1:$sink" > /dev/null &
  sink_pid=$!
  wait_port "$sink"
  report=$(taskset -c "$L_CPUS" "$LOADGEN" send --target "127.0.0.1:$sink" --items-per-request "$ITEMS" \
    --connections 2 --in-flight 8 --duration "$SECONDS_PER_CASE" --rate "$tern_half")
  kill -TERM "$sink_pid"; wait "$sink_pid" 2>/dev/null || true
  echo "loadgen-to-sink - traces $(json "$report" items_per_sec) - - - - - $(json "$report" p99_ms) - - - - - -"
}

section_load() {
  echo "pipeline 2, traces, at saturation with Tern's sending queue at 20 batches (about what rotel"
  echo "holds: 10 requests in flight, 20 being encoded), then under load, not overload: every"
  echo "collector at 80 % of rotel's saturation request rate:"
  echo "$COLUMNS"
  TERN_QUEUE=", sending_queue: {queue_size: 20}" run_case tern 2 traces
  [ -f "$OUT/rotel_p2_rps" ] || { run_case rotel 2 traces > /dev/null; cp "$OUT/last_rps" "$OUT/rotel_p2_rps"; }
  local rate collector
  rate=$(python3 -c "print(float(open('$OUT/rotel_p2_rps').read()) * 0.8)")
  for collector in tern $PEERS; do
    run_case "$collector" 2 traces "$rate"
  done
}

section_padded() {
  echo "bigger spans (~430 bytes: --span-padding 130), pipeline 1, traces:"
  echo "$COLUMNS"
  local collector
  for collector in tern $PEERS; do
    run_case "$collector" 1 traces 0 "$ITEMS" 130 | tee -a "$OUT/results_padded"
  done
}

section_scaling() {
  echo "scaling (Tern, pipeline 1z: gRPC gzip in -> batch -> discard, 2048 items per request,"
  echo "4 connections): one CPU (load generator on the other), then both CPUs (shared with"
  echo "the load generator); three rounds, the median of each is compared:"
  echo "$COLUMNS"
  local round
  for round in 1 2 3; do
    CONNECTIONS=4 run_case tern 1z traces 0 2048 | tee -a "$OUT/scaling_one"
    C_CPUS=0,1 L_CPUS=0,1 CONNECTIONS=4 run_case tern 1z traces 0 2048 | tee -a "$OUT/scaling_both"
  done
  python3 - "$OUT/scaling_one" "$OUT/scaling_both" "$SECONDS_PER_CASE" <<'PY'
import statistics, sys
def med(path, col):
    return statistics.median(float(l.split()[col]) for l in open(path))
one, both, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
print(f"both CPUs / one CPU: {med(both, 3) / med(one, 3):.2f}x items/s; "
      f"Tern busy {med(one, 4) / secs:.2f} -> {med(both, 4) / secs:.2f} CPUs; "
      f"items per CPU-second {med(both, 5) / med(one, 5):.2f}x")
PY
}

section_ratios() {
  echo "ratios (tern / peer): peer pipeline signal items/s items/cpu_s peak_rss"
  touch "$OUT/results" "$OUT/results_padded"
  python3 - "$OUT/results" "$OUT/results_padded" <<'PY'
import sys
rows = {}
for path, tag in ((sys.argv[1], ""), (sys.argv[2], " (430-byte spans)")):
    for line in open(path):
        c, p, s, ips, cpu, ipc, rss = line.split()[:7]
        rows[(c, p + tag, s)] = (float(ips), float(ipc), float(rss))
for peer in ("rotel", "otelcol"):
    for (c, p, s), (ips, ipc, rss) in sorted(rows.items()):
        if c != "tern" or (peer, p, s) not in rows:
            continue
        r = rows[(peer, p, s)]
        print(f"{peer} {p} {s} {ips / r[0]:.2f}x {ipc / r[1]:.2f}x {rss / r[2]:.2f}x")
PY
}

section_sampler() {
  echo "probabilistic_sampler 25% -> batch -> OTLP gRPC (pipeline sampler) next to pass-through (pipeline 2), traces, at saturation:"
  echo "$COLUMNS"
  for collector in tern ${OTELCOL:+otelcol}; do
    for pipeline in 2 sampler; do
      run_case "$collector" "$pipeline" traces | tee -a "$OUT/results"
    done
  done
}

section_tail() {
  echo "tail_sampling (pipeline tail, traces, at saturation; decision_wait 5s holds every trace in flight):"
  echo "$COLUMNS"
  for collector in tern ${OTELCOL:+otelcol}; do
    run_case "$collector" tail traces | tee -a "$OUT/results"
  done
}

echo "# $(date -u +%FT%TZ) $(nproc) CPUs, $(uname -r); tern $("$TERN" --version | cut -d' ' -f2), rotel $ROTEL_VERSION${OTELCOL:+, otelcol $("$OTELCOL" --version | cut -d' ' -f3)}; ${SECONDS_PER_CASE}s per case, $ITEMS items per request"
for section in $SECTIONS; do
  "section_$section"
  echo
done

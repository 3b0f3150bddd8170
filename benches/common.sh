# Shared by the benchmark scripts (sourced, not run): the release binaries
# and the small helpers each script needs.

TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --locked -p tern --bin tern -p tern-bench --bin tern-loadgen >&2
TERN="$TARGET_DIR/release/tern"
LOADGEN="$TARGET_DIR/release/tern-loadgen"

# A free TCP port on loopback, never one this run handed out before (they
# are listed in $OUT/ports); see tests/python/ports.py.
free_port() { python3 tests/python/ports.py "$OUT/ports"; }
# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Peak resident memory of a process, in KiB.
peak_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
# Waits up to 10 s for something to listen on port $1 of host $2 (127.0.0.1).
wait_port() {
  local host=${2:-127.0.0.1}
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listening on $host:$1" >&2; return 1
}
# Field $2 of the JSON object $1.
json() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

# Runs one case: the sink (CPU 1), Tern with config $1 (CPU 0) on OTLP gRPC
# port $2 exporting to the sink on port $3, then tern-loadgen (CPU 1)
# sending traces for $4 seconds (at $5 requests per second when given, else
# as fast as accepted); prints "items/s cpu_s items/cpu_s sink_items"
# (Tern's CPU from /proc: utime + stime). Scratch files go to $OUT.
measure_traces() {
  local config=$1 grpc=$2 sink=$3 seconds=$4 send_rate=${5:-0}
  taskset -c 1 "$LOADGEN" sink --listen "127.0.0.1:$sink" > "$OUT/sink.json" &
  local sink_pid=$!
  wait_port "$sink"
  taskset -c 0 "$TERN" --config "$config" 2> "$OUT/tern.log" &
  local tern_pid=$!
  wait_port "$grpc"
  local before after report rate cpu
  before=$(cpu_ticks "$tern_pid")
  report=$(taskset -c 1 "$LOADGEN" send --target "127.0.0.1:$grpc" --signal traces \
    --duration "$seconds" --rate "$send_rate")
  after=$(cpu_ticks "$tern_pid")
  kill -TERM "$tern_pid"; wait "$tern_pid" || true
  kill -TERM "$sink_pid"; wait "$sink_pid" || true
  rate=$(json "$report" items_per_sec)
  cpu=$(python3 -c "print(($after - $before) / $(getconf CLK_TCK))")
  echo "$rate $cpu $(python3 -c "print(round($rate * $seconds / $cpu) if $cpu > 0 else 0)") $(json "$(cat "$OUT/sink.json")" traces)"
}

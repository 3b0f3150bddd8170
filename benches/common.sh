# Shared by the benchmark scripts (sourced, not run): the release binaries
# and the small helpers each script needs.

TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --locked -p tern --bin tern -p tern-bench --bin tern-loadgen >&2
TERN="$TARGET_DIR/release/tern"
LOADGEN="$TARGET_DIR/release/tern-loadgen"

# A free TCP port on loopback.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
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

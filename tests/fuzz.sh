#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time from its
# committed inputs (fuzz/corpus/<target> and fuzz/regressions/<target>),
# two at a time; fails when one crashes, printing the input. Called by tests/run.sh; runs alone too.
#
#   TERN_FUZZ_SECONDS  seconds per target (default 60; 0 skips the step)
#   TERN_FUZZ_SEED     libFuzzer's -seed (default 1, so a CI run mutates the
#                      same way each time and a failure reruns alike; 0 picks
#                      a random seed, for fuzzing by hand)
#   TERN_FUZZ_TOOLS    where cargo-fuzz is installed and kept between runs
#                      (default ~/.cache/tern-fuzz-tools)
#   CARGO_TARGET_DIR   the fuzz build goes to its fuzz/ subfolder
#
# Needs the nightly toolchain (installed with rustup when missing; when it
# cannot be, the step is skipped with a message). New inputs the fuzzers
# find go to a scratch folder, not into the clone: minimize and commit them
# by hand (see the testing section of README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET="${TERN_FUZZ_SECONDS:-60}"
SEED="${TERN_FUZZ_SEED:-1}"
TOOLS="${TERN_FUZZ_TOOLS:-$HOME/.cache/tern-fuzz-tools}"
CARGO_FUZZ_VERSION=0.13.2
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/fuzz"

if [ "$SECONDS_PER_TARGET" = 0 ]; then
  echo "SKIP: TERN_FUZZ_SECONDS=0"
  exit 0
fi

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  if ! rustup toolchain install nightly --profile minimal; then
    echo "SKIP: the nightly Rust toolchain cannot be installed here; the fuzz targets are not run (their corpora are still replayed by cargo test)"
    exit 0
  fi
fi
rustup run nightly rustc --version

if ! "$TOOLS/bin/cargo-fuzz" --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
  CARGO_TARGET_DIR="$TOOLS/build" cargo install --locked --force \
    --root "$TOOLS" --version "$CARGO_FUZZ_VERSION" cargo-fuzz
fi
export PATH="$TOOLS/bin:$PATH"

cd fuzz
# No sanitizer: Tern forbids unsafe code, so address checks add little and
# halve the executions; debug assertions (overflow checks) stay on.
FLAGS=(-s none --debug-assertions)
cargo +nightly fuzz build "${FLAGS[@]}"

# Crashing inputs are kept here (outside the clone) as well as printed.
CRASHES="$CARGO_TARGET_DIR/crashes"
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
run() {
  local target=$1
  mkdir -p "$SCRATCH/$target/new" "$SCRATCH/$target/crash"
  # New inputs go to the first folder; the committed ones are only read.
  local inputs=("$SCRATCH/$target/new" "corpus/$target")
  [ -d "regressions/$target" ] && inputs+=("regressions/$target")
  if cargo +nightly fuzz run "${FLAGS[@]}" "$target" "${inputs[@]}" -- \
      -max_total_time="$SECONDS_PER_TARGET" -seed="$SEED" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$SCRATCH/$target/crash/" >"$SCRATCH/$target.log" 2>&1; then
    echo "$target: $(grep -E '^Done [0-9]+ runs' "$SCRATCH/$target.log" || echo done)"
  else
    echo "FAIL: fuzz target $target crashed:"
    grep -v -E '^#[0-9]+|^ +[0-9]+: |^ +at ' "$SCRATCH/$target.log" | tail -n 40
    mkdir -p "$CRASHES/$target"
    for input in "$SCRATCH/$target/crash/"*; do
      [ -e "$input" ] || continue
      cp "$input" "$CRASHES/$target/"
      echo "input (kept as $CRASHES/$target/$(basename "$input")), as hex:"
      od -An -tx1 -v "$input" | head -n 500
    done
    return 1
  fi
}

failed=0
running=0
for target in $(cargo +nightly fuzz list); do
  run "$target" &
  running=$((running + 1))
  if [ "$running" -ge 2 ]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=1
  running=$((running - 1))
done
exit "$failed"

#!/usr/bin/env bash
# Tern's full test suite, from a fresh clone: formatting, lints, Rust unit
# and end-to-end tests, and the OpenTelemetry Python SDK interop tests.
# Sets up what it needs (a Python venv with pinned packages) on its own.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export TERN_BIN="$TARGET_DIR/debug/tern"
VENV="${TERN_VENV:-$PWD/.venv}"

step() { printf '\n==> %s\n' "$*"; }

step "python venv ($VENV)"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/python/requirements.txt

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo build (binaries for the end-to-end tests)"
cargo build --workspace --bins --locked

step "cargo test"
cargo test --workspace --locked

step "python interop tests (OpenTelemetry Python SDK -> tern)"
"$VENV/bin/python" -m pytest -q tests/python

step "all tests passed"

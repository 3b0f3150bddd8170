#!/usr/bin/env bash
# Tern's full test suite, from a fresh clone: formatting, lints, Rust unit
# and end-to-end tests, the fuzz targets for a bounded time (tests/fuzz.sh),
# and the interop tests against real parts (the OpenTelemetry Python SDK,
# a Prometheus server, promtool, the reference OpenTelemetry Collector built
# from its Go modules). Sets up what it needs on its own: Debian packages, a
# Python venv with pinned packages, the Collector in a cache folder
# (tests/refcol/build.sh), cargo-fuzz and the nightly toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export TERN_BIN="$TARGET_DIR/debug/tern"
VENV="${TERN_VENV:-$PWD/.venv}"

step() { printf '\n==> %s\n' "$*"; }

step "system packages (prometheus, promtool, openssl, dnsmasq)"
missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
command -v openssl >/dev/null || missing+=(openssl)
# The loadbalancing exporter's dns resolver test asks a real DNS server.
command -v dnsmasq >/dev/null || missing+=(dnsmasq-base)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi
prometheus --version 2>&1 | sed -n 1p

step "python venv ($VENV)"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/python/requirements.txt

step "reference OpenTelemetry Collector (tests/refcol, Go)"
refcol_rc=0
refcol_dir=$(tests/refcol/build.sh) || refcol_rc=$?
case $refcol_rc in
  0) export TERN_REFCOL="$refcol_dir/otelcol"
     "$TERN_REFCOL" --version ;;
  3) echo "SKIP: Go is not installed: the comparisons with the reference Collector (tests/tests/reference.rs, json_compat.rs) are skipped" ;;
  *) exit "$refcol_rc" ;;
esac

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo build (binaries for the end-to-end tests)"
cargo build --workspace --bins --locked

step "cargo test"
cargo test --workspace --locked

step "fuzzing (cargo-fuzz, each target ${TERN_FUZZ_SECONDS:-60} s from fuzz/corpus)"
tests/fuzz.sh

step "deployment tools (helm, kustomize, actionlint from their Go modules)"; tests/tools/build-deploy-tools.sh

step "interop tests (OpenTelemetry Python SDK -> tern -> Prometheus)"
"$VENV/bin/python" -m pytest -q tests/python

step "all tests passed"

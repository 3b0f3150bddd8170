#!/usr/bin/env bash
# Builds the reference OpenTelemetry Collector (main.go) and pdata-json from
# this Go module into a cache folder outside the clone, once per version of
# the module: the folder is named after a hash of its files (pins and
# sources) and the Go version, so a rebuild happens only when they change.
# Prints the folder (holding `otelcol` and `pdata-json`) on stdout; exits 3,
# saying so on stderr, where Go is absent.
#
#   TERN_REFCOL_CACHE  where the builds go (default ~/.cache/tern-refcol)
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v go >/dev/null; then
  echo "no Go toolchain (go not on PATH): the reference Collector is not built" >&2
  exit 3
fi
export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -trimpath"
key=$( (go version; find . -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) | LC_ALL=C sort | xargs sha256sum) | sha256sum | cut -c1-16)
out="${TERN_REFCOL_CACHE:-$HOME/.cache/tern-refcol}/$key"
if [ ! -x "$out/otelcol" ] || [ ! -x "$out/pdata-json" ]; then
  echo "building the reference Collector into $out (first build takes minutes)" >&2
  mkdir -p "$out"
  tmp=$(mktemp -d "$out/.build.XXXXXX")
  go build -o "$tmp/otelcol" .
  go build -o "$tmp/pdata-json" ./pdata-json
  # Renames, so that a concurrent build or reader never sees half a file.
  mv -f "$tmp/pdata-json" "$out/pdata-json"
  mv -f "$tmp/otelcol" "$out/otelcol"
  rmdir "$tmp"
fi
echo "$out"

#!/usr/bin/env bash
# Builds the Go tools listed in deploy-tools.txt (helm, kustomize,
# actionlint) at their pinned versions into a cache folder outside the
# clone, one folder per name and version, so repeat runs reuse them and a
# version change rebuilds. A tool that fails to build is reported here and
# its log kept beside it; the tests that need it then skip, naming it.
# Always exits 0: what did not build is said here and skipped, by name,
# by the tests.
set -uo pipefail
cd "$(dirname "$0")"

TOOLS_DIR="${TERN_DEPLOY_TOOLS:-$HOME/.cache/tern-deploy-tools}"
mkdir -p "$TOOLS_DIR"

if ! command -v go >/dev/null; then
  echo "go not found: helm, kustomize and actionlint are not built; the tests that need them will skip" >&2
  exit 0
fi

grep -v '^#' deploy-tools.txt | while read -r name package version; do
  [ -n "$name" ] || continue
  dir="$TOOLS_DIR/$name-$version"
  if [ -x "$dir/$name" ]; then
    echo "$name $version: cached ($dir/$name)"
    continue
  fi
  log="$TOOLS_DIR/$name-$version.log"
  tmp="$dir.partial"
  rm -rf "$tmp"
  start=$(date +%s)
  # Static, without the VCS stamp (a module download has none) and with
  # no cgo: the binaries depend on nothing on the machine.
  if CGO_ENABLED=0 GOBIN="$tmp" GOFLAGS=-buildvcs=false \
      go install -trimpath -ldflags="-s -w" "$package@$version" >"$log" 2>&1; then
    rm -rf "$dir"
    mv "$tmp" "$dir"
    echo "$name $version: built in $(( $(date +%s) - start )) s ($dir/$name)"
  else
    rm -rf "$tmp"
    echo "$name $version: BUILD FAILED after $(( $(date +%s) - start )) s; the tests that need it will skip (log: $log)" >&2
    tail -n 5 "$log" >&2
  fi
done

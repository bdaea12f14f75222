#!/usr/bin/env bash
# Docker figures for `make bench` (tests/docker_bench.rs): START-to-active
# against `docker create` + `docker start`, and one statistics tick with
# 20 running containers. Needs root and dockerd (.ci/install-docker); it
# runs its own private dockerd and removes everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if cargo test --release --test docker_bench -- --ignored --nocapture --test-threads=1 >"$out" 2>&1; then
  grep -E '^(docker |SKIPPED)' "$out" || { echo "no figures (see below)"; tail -20 "$out"; }
else
  tail -40 "$out"
  exit 1
fi

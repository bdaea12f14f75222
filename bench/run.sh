#!/usr/bin/env bash
# `make bench`: speed and size figures, each next to a baseline or target
# measured in the same run, reported as ratios. Never pass/fail.
set -euo pipefail
cd "$(dirname "$0")/.."
REL=target/release

echo "== binaries (release, stripped)"
for b in ciao-launcher ciao-launcher-server ciaolc; do
  printf '%-24s %8d bytes\n' "$b" "$(stat -c %s "$REL/$b")"
done

echo
echo "== simulation"
"$REL/examples/bench-sim" "$REL/ciao-launcher"

echo
echo "== durable state next to a busy neighbour"
"$REL/examples/bench-durable" "$REL/ciao-launcher"

for extra in bench/journal.sh bench/qemu.sh bench/docker.sh; do
  if [ -x "$extra" ]; then
    echo
    echo "== $extra"
    "$extra" || echo "($extra failed: see above)"
  fi
done

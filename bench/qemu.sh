#!/usr/bin/env bash
# qemu figures for `make bench` (reported, never asserted):
#  - START-to-active of ciao-launcher against the same steps done by a plain
#    shell script (qemu-img info/create, xorriso, qemu -daemonize, wait for
#    QMP), medians of 5 runs each in the same run, and their ratio;
#  - the cost of one stats tick with 10 running VMs.
# Needs root and qemu (.ci/install-qemu); VMs run under software emulation.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ] || ! command -v qemu-system-x86_64 >/dev/null; then
  echo "qemu bench: SKIPPED (needs root and qemu; run .ci/install-qemu)"
  exit 0
fi
cargo test --release --test qemu_bench -- --ignored --nocapture --test-threads=1 2>/dev/null \
  | grep -E '^(qemu START|one stats tick|BENCH )'

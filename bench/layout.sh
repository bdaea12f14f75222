#!/usr/bin/env bash
# `make layout`: regenerates src/bin/ciao-launcher.order, the functions of
# ciao-launcher that run at start-up, while idle and connected, and in a
# burst of STARTs, which src/build.rs has the linker place together
# (docs/memory.md, fourth round). Run it after changes that rename or add
# much code on those paths, or after a change of the Rust toolchain or of
# a dependency's version (both rename every function); a stale file only
# costs resident memory. Needs valgrind, perf and python3.
#
# Two sources, merged: every function executed under callgrind during a
# bench-sim run (exact, but on valgrind's CPU, which has no AVX-512), and
# the functions perf samples on the real CPU during another (for the
# CPU-specific variants aws-lc picks at run time).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in valgrind perf python3; do
  command -v "$tool" >/dev/null || { echo "layout: $tool is needed" >&2; exit 1; }
done
T=target/layout
CIAO_KEEP_SYMBOLS=1 CARGO_TARGET_DIR="$T" cargo build --release --bin ciao-launcher
cargo build --release --examples
bin="$PWD/$T/release/ciao-launcher"
work=$(mktemp -d /tmp/ciao-layout.XXXXXX)
trap 'rm -rf "$work"' EXIT

cat > "$work/cg.sh" <<EOS
#!/bin/sh
exec valgrind --tool=callgrind --callgrind-out-file=$work/cg.out --demangle=no $bin "\$@"
EOS
cat > "$work/perf.sh" <<EOS
#!/bin/sh
exec perf record -q -F 20000 -o $work/perf.data $bin "\$@"
EOS
chmod +x "$work/cg.sh" "$work/perf.sh"
echo "layout: callgrind run (slow)"
target/release/examples/bench-sim "$work/cg.sh" > "$work/cg.log" 2>&1 || true
echo "layout: perf run"
target/release/examples/bench-sim "$work/perf.sh" > "$work/perf.log" 2>&1 || true
# bench-sim ends the launcher with a signal perf does not pass on.
pkill -INT -f "perf record -q -F 20000 -o $work/perf.data" 2>/dev/null || true
for _ in 1 2 3 4 5 6 7 8 9 10; do
  pgrep -f "perf record -q -F 20000 -o $work/perf.data" >/dev/null || break
  sleep 1
done
perf script -i "$work/perf.data" -F ip,sym,dso --no-demangle 2>/dev/null > "$work/perf.txt" || true
nm "$bin" | awk '$2 ~ /^[tT]$/ { print $3 }' > "$work/syms.txt"

python3 - "$work" src/bin/ciao-launcher.order <<'EOPY'
import re, sys
work, out = sys.argv[1], sys.argv[2]
syms = set(open(f"{work}/syms.txt").read().split())
obs, fns = {}, {}
lines = open(f"{work}/cg.out", errors="replace").read().split("\n")
for l in lines:
    m = re.match(r"^(c?ob|c?fn)=\((\d+)\) (.*)$", l)
    if m:
        (obs if m.group(1).endswith("ob") else fns)[m.group(2)] = m.group(3)
order, seen, ob = [], set(), None
def add(name):
    name = re.sub(r"'\d+$", "", name)
    if name in syms and name not in seen:
        seen.add(name)
        order.append(name)
for l in lines:
    m = re.match(r"^ob=\((\d+)\)", l)
    if m:
        ob = obs.get(m.group(1), "")
        continue
    m = re.match(r"^fn=\((\d+)\)", l)
    if m and ob.endswith("ciao-launcher") and m.group(1) in fns:
        add(fns[m.group(1)])
from_cg = len(order)
for l in open(f"{work}/perf.txt", errors="replace"):
    p = l.split()
    if len(p) >= 3 and p[-1].endswith("ciao-launcher)"):
        add(p[1])
# Sorted: the set is what counts (the linker places it together), and a
# sorted file changes only where the set does.
open(out, "w").write("\n".join(sorted(order)) + "\n")
print(f"layout: {len(order)} functions ({from_cg} from callgrind, {len(order) - from_cg} more from perf) in {out}")
EOPY

#!/usr/bin/env bash
# usage: tests/lab/run.sh [-m MEM] [-p CPUS] [--] COMMAND [ARG...]
#
# Boots the kernel lab (Debian's stock kernel under qemu TCG, the host's
# root shared read-only over 9p with a tmpfs overlay, no network card),
# runs COMMAND as root inside, in the caller's working directory, and exits
# with COMMAND's status. 125: no status (the guest crashed, or LAB_TIMEOUT
# ran out and the VM was killed).
#
# Environment:
#   LAB_DIR      the lab prepared by setup.sh (default: target/tmp/kernel-lab
#                of this repository; prepared here when needed)
#   LAB_TIMEOUT  seconds before the VM is killed (default 300)
#   LAB_MEM      guest memory (default 512M; -m overrides it)
#   LAB_LOG      where the guest console goes (default: a file in LAB_DIR/runs,
#                removed after a success)
#   LAB_QUIET=1  do not stream the console to stdout; print it on failure
#                (unless LAB_LOG is set: then the caller reads it there)
# CI, RUST_BACKTRACE, RUST_LOG and CIAO_* are passed on to COMMAND.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mem=${LAB_MEM:-512M} cpus=1
while [ $# -gt 0 ]; do
  case $1 in
    -m) mem=$2; shift 2 ;;
    -p) cpus=$2; shift 2 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: $0 [-m MEM] [-p CPUS] [--] COMMAND [ARG...]" >&2; exit 2; }
dir=${LAB_DIR:-$here/../../target/tmp/kernel-lab}
"$here/setup.sh" "$dir" >&2 || exit 125
dir=$(cd "$dir" && pwd)
kver=$(cat "$dir/kver")
command -v qemu-system-x86_64 >/dev/null || { echo "lab: qemu-system-x86_64 is missing (.ci/install-qemu)" >&2; exit 125; }

# The command goes in a script on the host's disk, which the guest sees at
# the same path: the kernel command line (2048 bytes) only names it.
mkdir -p "$dir/runs"
run=$(mktemp -d "$dir/runs/run.XXXXXX")
log=${LAB_LOG:-$run/console.log}
{
  echo "cd $(printf '%q' "$PWD") || exit 125"
  for v in CI RUST_BACKTRACE RUST_LOG $(compgen -e | grep '^CIAO_'); do
    [ -n "${!v+x}" ] && echo "export $v=$(printf '%q' "${!v}")"
  done
  printf 'exec'
  printf ' %q' "$@"
  echo
} >"$run/cmd.sh"
for p in "$here/stage2.sh" "$run/cmd.sh" "$dir/kroot/lib/modules/$kver"; do
  case $p in *[!A-Za-z0-9_./+-]*) echo "lab: path unusable on the kernel command line: $p" >&2; exit 125 ;; esac
done

start=$(date +%s.%N)
tee_to=/dev/stdout
[ "${LAB_QUIET:-}" = 1 ] && tee_to=/dev/null
timeout -k 10 "${LAB_TIMEOUT:-300}" qemu-system-x86_64 \
  -nodefaults -no-user-config -accel tcg -cpu max -smp "$cpus" -m "$mem" -M pc \
  -kernel "$dir/kroot/boot/vmlinuz-$kver" -initrd "$dir/initrd.gz" \
  -append "console=ttyS0 quiet loglevel=1 panic=-1 lab.init=$here/stage2.sh lab.mods=$dir/kroot/lib/modules/$kver lab.cmd=$run/cmd.sh" \
  -fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap \
  -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
  -display none -serial stdio -no-reboot </dev/null 2>&1 | tee "$log" >"$tee_to"
qrc=${PIPESTATUS[0]}
[ "${LAB_QUIET:-}" = 1 ] || echo # the console's last line has no newline
secs=$(echo "$(date +%s.%N) $start" | awk '{printf "%.1f", $1 - $2}')
rc=$(sed -n 's/^LAB-EXIT=\([0-9]*\).*/\1/p' "$log" | tail -1)
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
  why="timed out after ${LAB_TIMEOUT:-300} s, VM killed"; rc=125
elif [ -z "$rc" ]; then
  why="no exit status from the guest (qemu status $qrc)"; rc=125
else
  why="exit status $rc"
fi
started=$(sed -n 's/^LAB-START uptime=\([0-9.]*\).*/, command started at guest uptime \1 s/p' "$log" | tail -1)
echo "lab: $why, ${secs} s wall$started" >&2
if [ "$rc" != 0 ]; then
  # A caller that named LAB_LOG reads the console itself.
  if [ "${LAB_QUIET:-}" = 1 ] && [ -z "${LAB_LOG:-}" ]; then
    echo "lab: guest console ($log):" >&2
    tail -n 300 "$log" >&2
  fi
  [ -z "${LAB_LOG:-}" ] && echo "lab: console kept in $log" >&2
else
  rm -rf "$run"
fi
exit "$rc"

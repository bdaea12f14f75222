#!/usr/bin/env bash
# The simulation burst again, with the data root on a fresh ext4 that has
# a journal (mkfs.ext4's defaults, what distributions install), loop-mounted
# for this run. On a file system without a journal (the root of these
# machines), ext4 checks each candidate inode of a new file or directory
# against recently deleted ones (`recently_deleted()`, only without a
# journal), and that check is most of a START's system time; the two runs
# side by side show how much of the CPU figure is the file system's.
# Needs root, mkfs.ext4 and a loop device; reported, never asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
REL=target/release

describe() {
  local src fs dev
  src=$(findmnt -n -o SOURCE --target "$1" 2>/dev/null | head -1)
  fs=$(findmnt -n -o FSTYPE --target "$1" 2>/dev/null | head -1)
  dev=$(basename "$src")
  if [ "$fs" = ext4 ]; then
    if ls -d /proc/fs/jbd2/"$dev"-* >/dev/null 2>&1; then
      echo "ext4 with a journal ($src)"
    else
      echo "ext4 without a journal ($src)"
    fi
  else
    echo "${fs:-unknown} ($src)"
  fi
}

echo "default data root (${TMPDIR:-/tmp}): $(describe "${TMPDIR:-/tmp}")"
if [ "$(id -u)" != 0 ] || ! command -v mkfs.ext4 >/dev/null; then
  echo "journal bench: SKIPPED (needs root and mkfs.ext4)"
  exit 0
fi
work=$(mktemp -d /tmp/ciao-bench-journal.XXXXXX)
cleanup() {
  umount "$work/mnt" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir "$work/mnt"
truncate -s 1G "$work/fs.img"
mkfs.ext4 -q -F "$work/fs.img"
if ! mount -o loop "$work/fs.img" "$work/mnt" 2>/dev/null; then
  echo "journal bench: SKIPPED (no loop device)"
  exit 0
fi
echo "this run's data root: $(describe "$work/mnt")"
TMPDIR="$work/mnt" "$REL/examples/bench-sim" "$REL/ciao-launcher" | grep -E '^(CPU|  of which user|burst)'

#!/usr/bin/env bash
# usage: tests/lab/setup.sh DIR
#
# Prepares the kernel lab in DIR: Debian's stock kernel (the package that
# linux-image-amd64 currently depends on, fetched with `apt-get download`
# and unpacked with `dpkg -x`, never installed), its module index (depmod),
# and a small initramfs (static busybox plus the modules that mount the
# host's root over 9p with an overlay). Idempotent: when DIR/ready is newer
# than the lab's scripts, it returns at once. Concurrent callers wait on
# DIR/lock. Needs apt package lists, dpkg, depmod (kmod), busybox-static,
# cpio and gzip: .ci/install-lab installs them.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
dir=$(cd "$1" && pwd)

fresh() {
  [ -f "$dir/ready" ] || return 1
  local f
  for f in "$here/setup.sh" "$here/initramfs-init"; do
    [ "$dir/ready" -nt "$f" ] || return 1
  done
}
fresh && exit 0
exec 9>"$dir/lock"
flock 9
fresh && exit 0 # another caller finished it while we waited

for t in apt-get apt-cache dpkg depmod modprobe cpio gzip flock; do
  command -v "$t" >/dev/null || { echo "setup: $t is missing (run .ci/install-lab)" >&2; exit 1; }
done
busybox=
for b in /usr/bin/busybox /bin/busybox; do
  if [ -x "$b" ] && ! ldd "$b" >/dev/null 2>&1; then busybox=$b; break; fi
done
[ -n "$busybox" ] || { echo "setup: no static busybox (install busybox-static)" >&2; exit 1; }

# The ABI number in the package name changes with point releases.
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null \
      | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$pkg" ] || { echo "setup: linux-image-amd64 resolves to no kernel (apt-get update?)" >&2; exit 1; }

rm -rf "$dir/kroot" "$dir/work" "$dir/ready"
mkdir -p "$dir/work"
# (apt's "download is performed unsandboxed" warning is expected as root)
(cd "$dir/work" && apt-get download -q=2 "$pkg" 2>"$dir/work/apt.err") \
  || { cat "$dir/work/apt.err" >&2; echo "setup: apt-get download $pkg failed" >&2; exit 1; }
dpkg -x "$dir/work/${pkg}"_*.deb "$dir/kroot"
kver=$(ls "$dir/kroot/lib/modules")
depmod -a -b "$dir/kroot" "$kver"

# The initramfs: busybox, /init, and the modules for virtio 9p and overlay
# in dependency order (modprobe resolves it, so a kernel that builds some
# of them in, or splits them differently, still works).
w="$dir/work/initramfs"
mkdir -p "$w/bin" "$w/mod"
cp "$busybox" "$w/bin/busybox"
cp "$here/initramfs-init" "$w/init"
chmod 755 "$w/init"
modprobe -d "$dir/kroot" -S "$kver" --show-depends -a virtio_pci 9pnet_virtio 9p overlay \
  | awk '$1 == "insmod" {print $2}' | awk '!seen[$0]++' >"$dir/work/modules"
: >"$w/mod/order"
while read -r m; do
  n=$(basename "$m"); n=${n%%.ko*}
  case $m in
    *.ko) cp "$m" "$w/mod/$n.ko" ;;
    *.ko.xz) xz -dc "$m" >"$w/mod/$n.ko" ;;
    *.ko.zst) zstd -qdc "$m" >"$w/mod/$n.ko" ;;
    *.ko.gz) gzip -dc "$m" >"$w/mod/$n.ko" ;;
    *) echo "setup: unknown module file $m" >&2; exit 1 ;;
  esac
  echo "$n" >>"$w/mod/order"
done <"$dir/work/modules"
(cd "$w" && find . | cpio -o -H newc --quiet) | gzip -1 >"$dir/initrd.gz"

echo "$kver" >"$dir/kver"
rm -rf "$dir/work"
echo "$kver" >"$dir/ready"
echo "setup: kernel $kver ready in $dir"

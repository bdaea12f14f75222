#!/usr/bin/env bash
# Builds the tiny test guest of the qemu tests from Debian packages only (no other download):
# the Debian kernel (linux-image-amd64, fetched with apt-get download and unpacked with dpkg -x)
# and a busybox initramfs, on a FAT "superfloppy" disk image that boots two ways:
#   - legacy BIOS: syslinux (syslinux.cfg);
#   - EFI (OVMF): systemd-boot from systemd-boot-efi as \EFI\BOOT\BOOTX64.EFI (loader/entries).
#
# The guest (its /init):
#   - mounts the config drive (ISO 9660, label config-2) and reads the hostname from
#     openstack/latest/meta_data.json and the first line of openstack/latest/user_data;
#   - counts its boots in BOOTS.TXT on its own root disk (so a RESTART on the same disk shows
#     boots=2) and writes CIAO.TXT there;
#   - lists its block devices on ttyS0, in the kernel's order, one line each:
#     "CIAO-TEST-GUEST disk <vdX> sectors=<n> data=<first line>", the data part only for a disk
#     whose first bytes are "CIAO-VOLUME ..." (a volume a test prepared); on each such disk it
#     writes "CIAO-GUEST-WROTE hostname=<h> boots=<n> disk=<vdX>" at byte 1 MiB (fsync'd), then
#     prints "CIAO-TEST-GUEST disks: <vda vdb ...>";
#   - then reports disks that appear or go later: "CIAO-TEST-GUEST hotplug added|removed <vdX>";
#   - prints "CIAO-TEST-GUEST hostname=<h> boots=<n> userdata=<first line>" on ttyS0;
#   - powers off when the ACPI power button is pressed, after appending shutdown=clean to
#     CIAO.TXT; if the user-data holds the word "ciao-test-ignore-acpi" it ignores the button
#     (to test STOP's escalation to QMP quit).
#
# Usage: make-test-guest.sh OUTPUT_IMAGE
# Needs: apt-get (root, to install the build tools when missing), dpkg, cpio, gzip, xz,
# mtools, dosfstools, syslinux, busybox-static.
set -euo pipefail
out=$(realpath -m "$1")
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
cd "$w"

need=()
command -v syslinux >/dev/null || need+=(syslinux syslinux-common)
command -v mcopy >/dev/null || need+=(mtools)
command -v mkfs.vfat >/dev/null || need+=(dosfstools)
command -v cpio >/dev/null || need+=(cpio)
command -v xz >/dev/null || need+=(xz-utils)
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx poweroff || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The kernel: whatever linux-image-amd64 depends on now.
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
if [ -z "$kpkg" ]; then
  apt-get update -q >/dev/null
  kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
fi
[ -n "$kpkg" ] || { echo "make-test-guest: cannot resolve linux-image-amd64 (apt-get update?)" >&2; exit 1; }
apt-get -o APT::Sandbox::User=root download "$kpkg" >/dev/null
apt-get -o APT::Sandbox::User=root download systemd-boot-efi >/dev/null
for d in ./*.deb; do dpkg -x "$d" root; done
kver=${kpkg#linux-image-}
M=root/lib/modules/$kver/kernel
sdboot=$(find root/usr/lib/systemd/boot/efi -name 'systemd-bootx64.efi' | head -1)
[ -n "$sdboot" ] || { echo "make-test-guest: systemd-bootx64.efi not found in systemd-boot-efi" >&2; exit 1; }

mkdir -p ir/bin ir/lib/modules ir/proc ir/sys ir/dev ir/mnt/cfg ir/mnt/root ir/etc
cp /bin/busybox ir/bin/busybox
for a in sh mount umount insmod cat echo sleep poweroff sync ls head grep sed mkdir dd find tr; do
  ln -s busybox ir/bin/$a
done
mods="drivers/virtio/virtio_ring.ko drivers/virtio/virtio.ko drivers/virtio/virtio_pci_legacy_dev.ko
drivers/virtio/virtio_pci_modern_dev.ko drivers/virtio/virtio_pci.ko drivers/block/virtio_blk.ko
drivers/cdrom/cdrom.ko fs/isofs/isofs.ko fs/fat/fat.ko fs/fat/vfat.ko fs/nls/nls_cp437.ko
fs/nls/nls_ascii.ko drivers/acpi/button.ko drivers/input/evdev.ko"
for m in $mods; do
  f=$(ls $M/$m* 2>/dev/null | head -1)
  [ -n "$f" ] || continue   # built into this kernel
  case $f in *.xz) xz -dc "$f" > ir/lib/modules/$(basename "$m");; *) cp "$f" ir/lib/modules/;; esac
  echo "$(basename "$m")" >> ir/lib/modules/order
done
cat > ir/init <<'INIT'
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m 2>/dev/null; done
sleep 1
host=none; ud=none; ignore=no
for d in /dev/vd?; do
  if mount -t iso9660 -o ro $d /mnt/cfg 2>/dev/null; then
    if [ -f /mnt/cfg/openstack/latest/meta_data.json ]; then
      host=$(tr ',{}' '\n\n\n' < /mnt/cfg/openstack/latest/meta_data.json | grep '"hostname"' | sed 's/.*: *"//; s/".*//')
      ud=$(head -1 /mnt/cfg/openstack/latest/user_data)
      grep -q ciao-test-ignore-acpi /mnt/cfg/openstack/latest/user_data && ignore=yes
      break
    fi
    umount /mnt/cfg
  fi
done
n=0
for d in /dev/vd?; do
  if mount -t vfat $d /mnt/root 2>/dev/null; then
    if [ -f /mnt/root/syslinux.cfg ]; then break; fi
    umount /mnt/root
  fi
done
if [ -f /mnt/root/syslinux.cfg ]; then
  [ -f /mnt/root/BOOTS.TXT ] && n=$(cat /mnt/root/BOOTS.TXT)
  n=$((n+1))
  printf 'hostname=%s\nuserdata=%s\nboots=%s\n' "$host" "$ud" "$n" > /mnt/root/CIAO.TXT
  sync
  # vfat's sync does not flush the disk's write cache, fsync does: without
  # it the writes may stay in qemu's qcow2 cache and die with a killed qemu.
  echo $n | dd of=/mnt/root/BOOTS.TXT conv=fsync 2>/dev/null
fi
# Block devices, in the kernel's order; prepared volumes are read and marked.
all=""
for d in /dev/vd?; do
  v=${d#/dev/}
  all="$all $v"
  sectors=$(cat /sys/block/$v/size 2>/dev/null)
  first=$(dd if=$d bs=64 count=1 2>/dev/null | tr -c 'A-Za-z0-9 =._:-' '\n' | head -1)
  case "$first" in
    CIAO-VOLUME*)
      echo "CIAO-TEST-GUEST disk $v sectors=$sectors data=$first" > /dev/ttyS0
      echo "CIAO-GUEST-WROTE hostname=$host boots=$n disk=$v" | dd of=$d bs=512 seek=2048 conv=notrunc,fsync 2>/dev/null
      ;;
    *) echo "CIAO-TEST-GUEST disk $v sectors=$sectors" > /dev/ttyS0;;
  esac
done
echo "CIAO-TEST-GUEST disks:$all" > /dev/ttyS0
# Hot-plug: a disk that appears or goes later is reported at once.
(
  known="$all"
  while true; do
    now=""
    for d in /dev/vd?; do [ -b "$d" ] && now="$now ${d#/dev/}"; done
    for v in $now; do case " $known " in *" $v "*) ;; *) echo "CIAO-TEST-GUEST hotplug added $v" > /dev/ttyS0;; esac; done
    for v in $known; do case " $now " in *" $v "*) ;; *) echo "CIAO-TEST-GUEST hotplug removed $v" > /dev/ttyS0;; esac; done
    known="$now"
    sleep 0.2 2>/dev/null || sleep 1
  done
) &
# The power button's event device is opened before the marker is printed:
# a test presses the button as soon as it sees the marker, and a press
# before the open would be lost (the guest would then ignore the STOP).
ev=""
for e in /sys/class/input/event*; do
  grep -q "Power Button" $e/device/name 2>/dev/null && ev=/dev/input/$(basename $e) && break
done
[ -n "$ev" ] && exec 3<"$ev"
echo "CIAO-TEST-GUEST hostname=$host boots=$n userdata=$ud" > /dev/ttyS0
if [ "$ignore" = yes ]; then
  echo "CIAO-TEST-GUEST ignoring the ACPI power button" > /dev/ttyS0
  while true; do sleep 3600; done
fi
if [ -n "$ev" ]; then dd of=/dev/null bs=24 count=1 <&3 2>/dev/null; else while true; do sleep 3600; done; fi
echo "CIAO-TEST-GUEST power button: shutting down" > /dev/ttyS0
[ -f /mnt/root/CIAO.TXT ] && echo "shutdown=clean" >> /mnt/root/CIAO.TXT
sync; umount /mnt/root 2>/dev/null; poweroff -f
INIT
chmod +x ir/init
(cd ir && find . | cpio -o -H newc 2>/dev/null | gzip -9) > initrd.gz
cp root/boot/vmlinuz-$kver vmlinuz
args="console=ttyS0 quiet panic=1"
printf 'DEFAULT linux\nPROMPT 0\nTIMEOUT 1\nLABEL linux\n  KERNEL vmlinuz\n  APPEND initrd=initrd.gz %s\n' "$args" > syslinux.cfg
printf 'timeout 0\ndefault ciao.conf\n' > loader.conf
printf 'title ciao test guest\nlinux /vmlinuz\ninitrd /initrd.gz\noptions %s\n' "$args" > ciao.conf
size=$(( ($(stat -c %s vmlinuz) + $(stat -c %s initrd.gz) + $(stat -c %s "$sdboot")) / 1048576 + 8 ))
dd if=/dev/zero of=disk.img bs=1M count=$size status=none
mkfs.vfat -n CIAOBOOT disk.img >/dev/null
mcopy -i disk.img vmlinuz initrd.gz syslinux.cfg ::/
mmd -i disk.img ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
mcopy -i disk.img "$sdboot" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i disk.img loader.conf ::/loader/loader.conf
mcopy -i disk.img ciao.conf ::/loader/entries/ciao.conf
syslinux --install disk.img
mkdir -p "$(dirname "$out")"
mv disk.img "$out.tmp"
mv "$out.tmp" "$out"
echo "test guest: $out ($size MiB, kernel $kver)"

#!/usr/bin/env bash
# The steps of a qemu START done by a plain shell script, for `make bench`
# (bench/qemu.sh compares the launcher's START-to-active with this):
# qemu-img info (backing format), qemu-img create (overlay), the config
# drive files and xorriso, qemu -daemonize with the launcher's arguments,
# then wait until QMP answers qmp_capabilities. Prints the milliseconds
# taken on stdout, then kills that qemu and removes DIR.
# Usage: baseline-start.sh DIR BACKING_IMAGE
set -euo pipefail
d=$(realpath -m "$1"); backing=$(realpath "$2")
t0=$(date +%s%N)
mkdir -p "$d/clr-cloud-init/openstack/latest"
fmt=$(qemu-img info --output=json "$backing" | sed -n 's/.*"format": *"\([a-z0-9_-]*\)".*/\1/p' | head -1)
qemu-img create -q -f qcow2 -F "$fmt" -b "$backing" "$d/image.qcow2"
printf '{\n  "uuid": "bench",\n  "hostname": "bench"\n}\n' > "$d/clr-cloud-init/openstack/latest/meta_data.json"
printf '#cloud-config\n' > "$d/clr-cloud-init/openstack/latest/user_data"
xorriso -as mkisofs -R -V config-2 -o "$d/seed.iso" "$d/clr-cloud-init" 2>/dev/null
rm -rf "$d/clr-cloud-init"
qemu-system-x86_64 -drive "file=$d/image.qcow2,if=virtio,aio=threads,format=qcow2" \
  -drive "file=$d/seed.iso,if=virtio,media=cdrom" -net nic,model=virtio -net user \
  -daemonize -pidfile "$d/qemu.pid" -qmp "unix:$d/socket,server=on,wait=off" -m 96 -smp cpus=1 \
  -display none -vga none -chardev "file,id=console0,append=on,path=$d/console.log" -serial chardev:console0
python3 - "$d/socket" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rw")
f.readline(); f.write('{"execute":"qmp_capabilities"}\n'); f.flush()
while '"return"' not in f.readline(): pass
PY
t1=$(date +%s%N)
echo $(( (t1 - t0) / 1000000 ))
kill -9 "$(cat "$d/qemu.pid")" 2>/dev/null || true
sleep 0.2
rm -rf "$d"

#!/bin/bash
# The lab's second stage, run by the guest kernel as PID 1 from the host's
# own userspace (read-only 9p under a tmpfs overlay). Mounts the usual
# filesystems, makes the unpacked kernel's modules visible to modprobe,
# runs the command script named by lab.cmd= (written by run.sh), prints
# LAB-EXIT=<status> on the console, and powers off.
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
# /run/netns for `ip netns`, /run/lock for qemu-nbd.
mount -t tmpfs tmpfs /run
mkdir -p /run/lock /run/netns
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
for a in $(cat /proc/cmdline); do
  case $a in
    lab.mods=*) mods=${a#lab.mods=} ;;
    lab.cmd=*) cmd=${a#lab.cmd=} ;;
  esac
done
kver=$(uname -r)
mkdir -p "/lib/modules/$kver" && mount --bind "$mods" "/lib/modules/$kver"
hostname lab
ip link set lo up
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb
# No carriage returns in the console log.
stty -onlcr -F /dev/console 2>/dev/null
echo "LAB-START uptime=$(cut -d' ' -f1 /proc/uptime)"
bash "$cmd" </dev/null 2>&1
rc=$?
echo "LAB-EXIT=$rc uptime=$(cut -d' ' -f1 /proc/uptime)"
echo o >/proc/sysrq-trigger
sleep 10

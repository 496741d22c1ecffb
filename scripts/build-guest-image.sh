#!/usr/bin/env bash
# Builds edgenet's small test guest for the `vm` node runtime from Debian packages, cached:
#   $OUT/vmlinuz      Debian's cloud kernel (linux-image-cloud-amd64)
#   $OUT/initrd.img   busybox (static) + qemu-guest-agent + the virtio modules + /init, which
#                     applies the cloud-init NoCloud seed (the `cidata` volume edgenet writes):
#                     hostname, network-config v2 matched on the MAC (address, gateway, DNS, MTU),
#                     user-data write_files (proxy environment, hosts, resolv.conf, render files)
#   $OUT/disk.qcow2   an empty base disk (the node's disk is an overlay of it)
# It is not cloud-init: the tests check the seed with cloud-init's own schema checker and parser.
# Usage: build-guest-image.sh [OUT]   (default /var/cache/edgenet/guest; EDGENET_GUEST_DIR too)
set -euo pipefail

OUT=${1:-${EDGENET_GUEST_DIR:-/var/cache/edgenet/guest}}
VERSION=3 # bump when the image's contents change: cached images of another version are rebuilt
if [ -f "$OUT/version" ] && [ "$(cat "$OUT/version")" = "$VERSION" ] &&
  [ -f "$OUT/vmlinuz" ] && [ -f "$OUT/initrd.img" ] && [ -f "$OUT/disk.qcow2" ]; then
  exit 0
fi
for tool in apt-get dpkg-deb depmod modprobe cpio gzip qemu-img ldd; do
  command -v "$tool" >/dev/null || {
    echo "build-guest-image: $tool is missing (run scripts/deps.sh)" >&2
    exit 1
  }
done
mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock 9 # one build at a time; a second caller waits and then finds the cache
if [ -f "$OUT/version" ] && [ "$(cat "$OUT/version")" = "$VERSION" ]; then exit 0; fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
kpkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
[ -n "$kpkg" ] || {
  echo "build-guest-image: linux-image-cloud-amd64 is unknown to apt (apt-get update?)" >&2
  exit 1
}
apt-get download -q "$kpkg" busybox-static qemu-guest-agent >/dev/null 2>&1 ||
  apt-get download "$kpkg" busybox-static qemu-guest-agent
mkdir pkg
for deb in *.deb; do dpkg-deb -x "$deb" pkg; done
kver=$(ls pkg/lib/modules)
depmod -b pkg "$kver"

root=$work/root
mkdir -p "$root"/{bin,sbin,etc/acpi/PWRF,proc,sys,dev,run,tmp,seed,var/run,var/log,usr/bin,lib/modules}
cp pkg/bin/busybox "$root/bin/busybox"
for a in sh mount umount insmod ip awk sed cat echo sleep ls mkdir hostname base64 grep \
  poweroff reboot sync acpid ping tr head cut kill ps env wc rm chmod; do
  ln -sf busybox "$root/bin/$a"
done
ln -sf ../bin/busybox "$root/sbin/init"
ln -sf bin/busybox "$root/init"
ln -sf ../bin/busybox "$root/sbin/poweroff"
ln -sf ../bin/busybox "$root/sbin/reboot"
# qemu-ga and the libraries it links (the build host's Debian ones), kept in their own
# directory: the static busybox must not find a libc to dlopen (its NSS lookups then crash).
cp pkg/usr/sbin/qemu-ga "$root/usr/bin/qemu-ga"
mkdir -p "$root/usr/lib/qga" "$root/lib64"
ldd pkg/usr/sbin/qemu-ga | awk '/=>/{print $3}' | while read -r lib; do
  [ -f "$lib" ] && cp -L "$lib" "$root/usr/lib/qga/"
done
cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"
# Modules, with their dependencies, in load order.
: >"$root/etc/modules"
for m in virtio_pci virtio_net virtio_blk virtio_console isofs button evdev; do
  modprobe -d pkg -S "$kver" --show-depends "$m" | awk '$1=="insmod"{print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
  base=$(basename "$ko")
  case "$base" in
  *.ko.xz) xz -dc "$ko" >"$root/lib/modules/${base%.xz}" ;;
  *.ko.zst) zstd -qdc "$ko" >"$root/lib/modules/${base%.zst}" ;;
  *) cp "$ko" "$root/lib/modules/$base" ;;
  esac
  echo "${base%.*}" | sed 's/\.ko$//' >>"$root/etc/modules"
done

cat >"$root/etc/inittab" <<'INITTAB'
::sysinit:/etc/rc
::respawn:/etc/qga
::once:/bin/acpid -f
::shutdown:/bin/sync
INITTAB
# QMP system_powerdown presses the ACPI power button: acpid runs this, init powers off.
printf '#!/bin/sh\nexec /bin/poweroff\n' >"$root/etc/acpi/PWRF/00000080"
chmod +x "$root/etc/acpi/PWRF/00000080"
cat >"$root/etc/qga" <<'QGA'
#!/bin/sh
# The agent's virtio-serial port, found by the name QEMU gives it.
for p in /sys/class/virtio-ports/*; do
  [ "$(cat "$p/name" 2>/dev/null)" = org.qemu.guest_agent.0 ] && LD_LIBRARY_PATH=/usr/lib/qga exec /usr/bin/qemu-ga -m virtio-serial -p "/dev/$(basename "$p")"
done
sleep 1
QGA
chmod +x "$root/etc/qga"
cat >"$root/etc/rc" <<'RC'
#!/bin/sh
# Boot: modules, then the NoCloud seed (volume label cidata) applied with busybox tools.
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /dev/pts; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /run
export PATH=/bin:/sbin:/usr/bin
while read -r m; do insmod "/lib/modules/$m.ko" 2>/dev/null; done </etc/modules
ip link set lo up
seed=
for i in 1 2 3 4 5 6 7 8 9 10; do
  for d in /dev/vd? /dev/sr?; do
    [ -b "$d" ] || continue
    mount -t iso9660 -o ro "$d" /seed 2>/dev/null || continue
    [ -f /seed/meta-data ] && { seed=$d; break 2; }
    umount /seed
  done
  sleep 0.2
done
[ -n "$seed" ] || { echo "edgenet-guest: no cidata seed" >/dev/console; exit 0; }
h=$(awk '$1=="local-hostname:"{print $2}' /seed/meta-data); [ -n "$h" ] && hostname "$h"
# network-config v2: the ethernet matched on its MAC gets the name, MTU, addresses, default
# route and DNS servers.
awk '
  { ind = match($0, /[^ ]/) - 1; sub(/^ +/, ""); }
  /^- / && list == "addr" && ind > lind { sub(/^- /, ""); print "addr", $0; next }
  /^- / && list == "dns" && ind > lind { sub(/^- /, ""); print "dns", $0; next }
  { list = "" }
  /^macaddress:/ { gsub(/"/, "", $2); print "mac", $2 }
  /^set-name:/ { print "name", $2 }
  /^mtu:/ { print "mtu", $2 }
  /^via:/ { print "via", $2 }
  /^addresses:/ && !ns { list = "addr"; lind = ind }
  /^nameservers:/ { ns = 1; nsind = ind }
  /^addresses:/ && ns { list = "dns"; lind = ind }
' /seed/network-config >/run/net
mac=$(awk '$1=="mac"{print $2}' /run/net | tr 'A-F' 'a-f')
dev=
for n in /sys/class/net/*; do [ "$(cat "$n/address")" = "$mac" ] && dev=$(basename "$n"); done
if [ -n "$dev" ]; then
  name=$(awk '$1=="name"{print $2}' /run/net)
  [ -n "$name" ] && [ "$name" != "$dev" ] && ip link set "$dev" name "$name" && dev=$name
  mtu=$(awk '$1=="mtu"{print $2}' /run/net); [ -n "$mtu" ] && ip link set "$dev" mtu "$mtu"
  ip link set "$dev" up
  for a in $(awk '$1=="addr"{print $2}' /run/net); do ip addr add "$a" dev "$dev"; done
  via=$(awk '$1=="via"{print $2}' /run/net); [ -n "$via" ] && ip route add default via "$via" dev "$dev"
  awk '$1=="dns"{print "nameserver", $2}' /run/net >/etc/resolv.conf
fi
# user-data write_files (edgenet writes them base64-encoded): path, content, permissions, append.
awk '
  function flush() { if (path != "") print path "\t" (perm == "" ? "0644" : perm) "\t" app "\t" content; path = ""; perm = ""; app = "no"; content = "" }
  { sub(/^ +/, "") }
  /^- path:/ { flush(); path = $3; gsub(/"/, "", path); next }
  /^path:/ { path = $2; gsub(/"/, "", path) }
  /^content:/ { content = $2 }
  /^permissions:/ { perm = $2; gsub(/\047|"/, "", perm) }
  /^append: true/ { app = "yes" }
  END { flush() }
' /seed/user-data | while IFS="$(printf '\t')" read -r path perm app content; do
  mkdir -p "$(dirname "$path")"
  if [ "$app" = yes ]; then echo "$content" | base64 -d >>"$path"; else echo "$content" | base64 -d >"$path"; fi
  chmod "$perm" "$path"
done
echo "edgenet-guest: seed applied" >/dev/console
RC
chmod +x "$root/etc/rc"
: >"$root/etc/environment"

(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd.img"
cp "pkg/boot/vmlinuz-$kver" "$work/vmlinuz"
qemu-img create -q -f qcow2 "$work/disk.qcow2" 1G
mv "$work/vmlinuz" "$work/initrd.img" "$work/disk.qcow2" "$OUT/"
echo "$kver" >"$OUT/kernel-version"
echo "$VERSION" >"$OUT/version"
echo "$OUT"

#!/usr/bin/env bash
# Builds the Debian package into target/debian/edgenet_<version>_<arch>.deb:
#   /usr/bin/edgenet
#   /lib/systemd/system/edgenet.service   (deploys at boot once /etc/edgenet/config.json exists)
#   /usr/share/man/man1/edgenet.1.gz
#   shell completions (bash, zsh, fish) when this edgenet has `edgenet completions`
#   /var/lib/edgenet (the state directory), /etc/edgenet
#
# Usage: scripts/build-deb.sh            (release build, then package)
#   EDGENET_DEB_BINARY=path scripts/build-deb.sh   packages that binary instead of building
# Needs dpkg-deb and gzip (Debian's dpkg and gzip packages).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
out="$root/target/debian"

bin="${EDGENET_DEB_BINARY:-}"
if [ -z "$bin" ]; then
  (cd "$root" && cargo build --release --locked -p edgenet)
  bin="$target/release/edgenet"
fi
[ -x "$bin" ] || { echo "build-deb: $bin is not an executable" >&2; exit 1; }

version="$("$bin" --version | awk '{print $2}')"
arch="$(dpkg --print-architecture)"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
pkg="$stage/edgenet"

install -D -m 0755 "$bin" "$pkg/usr/bin/edgenet"
strip --strip-unneeded "$pkg/usr/bin/edgenet" 2>/dev/null || true

# The unit comes from the same renderer as `edgenet install-unit`.
mkdir -p "$pkg/lib/systemd/system"
"$bin" install-unit --print --packaged >"$pkg/lib/systemd/system/edgenet.service"
chmod 0644 "$pkg/lib/systemd/system/edgenet.service"

# Man page: `edgenet man` (clap_mangen), from the binary itself.
mkdir -p "$pkg/usr/share/man/man1"
"$bin" man >"$stage/edgenet.1"
[ -s "$stage/edgenet.1" ] || { echo "build-deb: \`edgenet man\` wrote nothing" >&2; exit 1; }
gzip -9n -c "$stage/edgenet.1" >"$pkg/usr/share/man/man1/edgenet.1.gz"

# Shell completions, from the binary itself (`edgenet completions SHELL`).
for sh_ in bash zsh fish; do
  "$bin" completions "$sh_" >"$stage/$sh_"
  [ -s "$stage/$sh_" ] || { echo "build-deb: \`edgenet completions $sh_\` wrote nothing" >&2; exit 1; }
done
install -D -m 0644 "$stage/bash" "$pkg/usr/share/bash-completion/completions/edgenet"
install -D -m 0644 "$stage/zsh" "$pkg/usr/share/zsh/vendor-completions/_edgenet"
install -D -m 0644 "$stage/fish" "$pkg/usr/share/fish/vendor_completions.d/edgenet.fish"

install -d -m 0700 "$pkg/var/lib/edgenet"
install -d -m 0755 "$pkg/etc/edgenet"
install -D -m 0644 "$root/README.md" "$pkg/usr/share/doc/edgenet/README.md"

mkdir -p "$pkg/DEBIAN"
size="$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)"
cat >"$pkg/DEBIAN/control" <<EOF
Package: edgenet
Version: $version
Architecture: $arch
Maintainer: edgenet developers <edgenet@localhost>
Installed-Size: $size
Depends: libc6, nftables
Recommends: iproute2
Section: net
Priority: optional
Description: host networking for edge Kubernetes clusters
 edgenet builds the virtual switch, node guests, addresses, DNS, proxy and NAT
 of an edge Kubernetes cluster on a Linux host, from AKS Edge Essentials
 deployment JSON. The edgenet.service unit deploys again at every boot once
 /etc/edgenet/config.json exists.
EOF

cat >"$pkg/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = "configure" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
  # Enabled, but it does nothing until /etc/edgenet/config.json exists.
  systemctl enable edgenet.service >/dev/null 2>&1 || true
fi
exit 0
EOF

# Removing the package never tears the network down (the unit has no stop action); the
# deployment stays until `edgenet remove`.
cat >"$pkg/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = "remove" ] && [ -d /run/systemd/system ]; then
  systemctl disable edgenet.service >/dev/null 2>&1 || true
fi
exit 0
EOF

cat >"$pkg/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = "purge" ]; then
  if [ -e /var/lib/edgenet/state.json ]; then
    echo "edgenet: /var/lib/edgenet/state.json records a deployment; kept (run \`edgenet remove\` with edgenet installed, then delete it)" >&2
  else
    rm -f /var/lib/edgenet/lock
    rmdir --ignore-fail-on-non-empty /var/lib/edgenet /etc/edgenet 2>/dev/null || true
  fi
fi
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
EOF
chmod 0755 "$pkg/DEBIAN/postinst" "$pkg/DEBIAN/prerm" "$pkg/DEBIAN/postrm"

mkdir -p "$out"
deb="$out/edgenet_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$pkg" "$deb" >/dev/null
echo "$deb"

#!/usr/bin/env bash
# Installs what edgenet and its tests need that a fresh Debian machine lacks. Idempotent.
set -euo pipefail

packages=(
  iproute2        # ip, for tests' own assertions (edgenet itself talks netlink)
  nftables        # nft: edgenet's firewall table (nft -j -f -)
  util-linux      # nsenter, unshare, flock
  dnsmasq-base    # the lab's upstream DNS server
  tinyproxy       # the lab's HTTP proxy
  busybox         # the lab's HTTP server (busybox httpd)
  curl            # the lab's HTTP probes, and tests inside nodes
  iputils-ping    # the lab's ping probes
  libc-bin        # getent, for name lookups inside nodes in tests
  systemd         # systemd-analyze verify: the boot unit and the units `edgenet render` writes
  conntrack       # conntrack -L: what the kernel tracks, where /proc/net/nf_conntrack is missing
  iptables        # iptables-nft: Docker-shaped and ufw-shaped host firewalls in tests; DOCKER-USER rules
  python3         # AF_PACKET frame crafting in the anti-spoofing tests
  python3-pip     # pip, to install kubernetes-validate for the render schema tests
  graphviz        # dot: lays out the pictures of plan/status/lab status (a built-in layout otherwise)
  # The `vm` node runtime and its tests:
  qemu-system-x86 # QEMU (with qemu-utils below: installed together, at the same version)
  qemu-utils      # qemu-img: a VM node's disk overlay
  genisoimage     # the cloud-init NoCloud seed volume (ISO labelled cidata)
  cloud-init      # `cloud-init schema`: the seed edgenet writes is checked by cloud-init itself
  kmod            # depmod/modprobe: scripts/build-guest-image.sh picks the guest's modules
  cpio            # scripts/build-guest-image.sh packs the guest's initramfs
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "edgenet: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # qemu-system-x86 needs qemu-utils of its own version (a newer qemu-utils from backports
  # breaks it): both at the version apt would install qemu-system-x86 at.
  pins=()
  for p in "${missing[@]}"; do
    case "$p" in
    qemu-system-x86 | qemu-utils)
      v=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/{print $2}')
      pins+=("$p=$v")
      ;;
    *) pins+=("$p") ;;
    esac
  done
  if [[ " ${pins[*]} " == *" qemu-system-x86="* && " ${pins[*]} " != *" qemu-utils="* ]]; then
    pins+=("qemu-utils=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/{print $2}')")
  fi
  apt-get install -y -qq --no-install-recommends --allow-downgrades "${pins[@]}" >/dev/null
fi

# kubernetes-validate: the Kubernetes OpenAPI schemas, which the render tests check every
# rendered Kubernetes object against. Optional: without it those tests say they skipped.
if ! command -v kubernetes-validate >/dev/null 2>&1; then
  if command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
    python3 -m pip install --quiet kubernetes-validate 2>/dev/null ||
      python3 -m pip install --quiet --break-system-packages kubernetes-validate 2>/dev/null ||
      echo "edgenet: could not install kubernetes-validate (pip); the schema tests will skip" >&2
  else
    echo "edgenet: python3 with pip is missing; the Kubernetes schema tests will skip" >&2
  fi
fi

# chromium is large and only one test needs it (it renders the lab page headless, and says
# "skipped" without it), so failing to install it is not an error. EDGENET_NO_CHROMIUM=1 skips it.
if [ -z "${EDGENET_NO_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null) ||
      echo "edgenet: chromium could not be installed; the lab page rendering test will be skipped" >&2
  else
    echo "edgenet: chromium is not installed (needs root); the lab page rendering test will be skipped" >&2
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "edgenet: cargo (Rust ≥ 1.89) is needed: https://rustup.rs" >&2
  exit 1
fi

#!/usr/bin/env bash
# Installs the peers that `edgenet-bench peers` and `dataplane` measure edgenet against.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
packages=(netavark containernetworking-plugins iptables iperf3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

#!/usr/bin/env bash
# edgenet's main job on its built-in default, in the lab sandbox: builds edgenet, makes an
# "internet", a LAN and a machine out of network namespaces, deploys the built-in
# single-machine cluster network in the machine, and prints the reachability matrix.
# Nothing outside those namespaces changes. `scripts/lab.sh down` removes it all.
# Run as root. Any other arguments go to `edgenet lab up` (e.g. a config file).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --locked -p edgenet
if [ "${1:-}" = down ]; then
  exec target/release/edgenet lab down
fi
exec target/release/edgenet lab up "$@"

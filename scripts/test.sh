#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, property and real-kernel tests.
# Run as root for the kernel tests (they create and remove their own network namespaces and
# never touch the host's); without root they say "skipped: needs root".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The API docs build without warnings (broken or private links, stray HTML).
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
# `failpoints`: the kernel tests make deploys fail at named steps (EDGENET_FAILPOINT).
cargo test --workspace --locked --features edgenet/failpoints
# Release builds have no failpoints: this proves the variable is ignored without the feature.
cargo test -p edgenet-deploy --locked --lib failpoint

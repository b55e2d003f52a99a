#!/usr/bin/env bash
# Berth's test command: sets up, builds once, checks formatting and lints,
# and runs every test (unit and end-to-end, real registry, as root).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --locked
cargo nextest run --workspace --locked --no-fail-fast

#!/usr/bin/env bash
# Berth's test command: sets up, builds once, checks formatting and lints,
# builds the VM's guest image, and runs every test (unit and end-to-end,
# real registry, real VMs under QEMU, as root).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --locked
# The guest image the VM tests boot (static agent, Debian kernel, initramfs).
scripts/build-vm-image.sh target/vm-image
cargo nextest run --workspace --locked --no-fail-fast

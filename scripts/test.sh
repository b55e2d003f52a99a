#!/usr/bin/env bash
# Berth's test command: sets up, builds once, checks formatting and lints,
# builds the VM's guest image, and runs every test (unit and end-to-end,
# real registry, real VMs under QEMU, as root).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
# Berth Desktop's UI: lint, type check, component tests, and the build the
# app embeds (before clippy and the build compile the Tauri crate).
(cd ui && npm run --silent lint && npm run --silent check && npm run --silent test && npm run --silent build)
cargo clippy --workspace --all-targets --locked -- -D warnings
# The host crates' Windows and macOS code (WSL2, Virtualization.framework),
# type-checked and linted for those targets.
scripts/cross-check.sh
cargo build --workspace --locked
# Berth Desktop's .deb from that build, which a test installs and removes.
scripts/bundle-desktop.sh --debug
# The guest image the VM tests boot (static agent, Debian kernel, initramfs).
scripts/build-vm-image.sh target/vm-image
cargo nextest run --workspace --locked --no-fail-fast
# Berth Desktop end to end: the real app under Xvfb, driven through
# tauri-driver and WebKitWebDriver, against a real agent and registry.
(cd ui && xvfb-run -a -s "-screen 0 1280x800x24" npm run --silent e2e)

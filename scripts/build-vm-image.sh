#!/usr/bin/env bash
# Builds the Linux guest for Berth's VM into target/vm-image (or $1): the
# static guest binaries, then berth-vm-image (kernel from Debian's
# linux-image package, initramfs with the agent as /init, qcow2 data disk).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/vm-image}"
target=x86_64-unknown-linux-gnu
# Static binaries: glibc's static libc plus libseccomp.a (libseccomp-dev).
LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=/usr/lib/x86_64-linux-gnu \
  RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --locked -q -p berth-agent --profile guest --target "$target" --bins
cargo build --locked -q -p berth-vm-image
target/debug/berth-vm-image --out "$out" --agent-dir "target/$target/guest" \
  --cache target/vm-image-cache --disk-size "${BERTH_VM_DISK_SIZE:-16G}"

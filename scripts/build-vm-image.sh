#!/usr/bin/env bash
# Builds the Linux guest for Berth's VM into target/vm-image (or $1): the
# static guest binaries, then berth-vm-image (kernel from Debian's
# linux-image package, a small initramfs with stage one of the boot, a
# read-only system disk with the agent, the data disk).
#
#   scripts/build-vm-image.sh [OUT]                 x86_64, qcow2 (QEMU)
#   BERTH_VM_ARCH=aarch64 scripts/build-vm-image.sh  arm64 (Apple Silicon): needs
#       dpkg --add-architecture arm64, gcc-aarch64-linux-gnu, libc6-dev-arm64-cross,
#       libseccomp-dev:arm64 and `rustup target add aarch64-unknown-linux-gnu`
#   BERTH_VM_DISK_FORMAT=raw                         for macOS Virtualization.framework
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/vm-image}"
arch="${BERTH_VM_ARCH:-x86_64}"
target=$arch-unknown-linux-gnu
if [[ $arch == aarch64 ]]; then
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
  export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
fi
# Static binaries: glibc's static libc plus libseccomp.a (libseccomp-dev).
LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=/usr/lib/$arch-linux-gnu \
  RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --locked -q -p berth-agent --profile guest --target "$target" --bins
cargo build --locked -q -p berth-vm-image
target/debug/berth-vm-image --out "$out" --arch "$arch" --agent-dir "target/$target/guest" \
  --cache target/vm-image-cache --disk-size "${BERTH_VM_DISK_SIZE:-16G}" \
  --disk-format "${BERTH_VM_DISK_FORMAT:-qcow2}"

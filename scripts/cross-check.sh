#!/usr/bin/env bash
# Type-checks (and lints) Berth's host-side crates for the other platforms
# they run on: Windows (x86_64-pc-windows-gnu, the WSL2 backend) and macOS
# (aarch64-apple-darwin, the Virtualization.framework backend), so their
# code cannot rot on a Linux-only CI. Nothing is linked. Installs nothing:
# scripts/setup.sh adds the rustup targets, MinGW and clang. The agent
# (guest-agent) is Linux-only and is not checked here. Builds go to the
# shared target directory, under target/<triple>/.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(x86_64-pc-windows-gnu aarch64-apple-darwin)
# What each target checks. Not yet for Windows: the CLI (its terminal
# handling — raw mode, window size, SIGWINCH —, `vm start`'s detached
# supervisor and `vm stop`'s SIGTERM are Unix code with no Windows
# counterpart written) and the desktop app (tauri-build wants
# src-tauri/icons/icon.ico for the Windows resource file).
declare -A crates=(
  [x86_64-pc-windows-gnu]="-p berth-vm -p berth-client"
  [aarch64-apple-darwin]="-p berth-vm -p berth-client -p berth-cli -p berth-desktop"
)

installed="$(rustup target list --installed)"
for t in "${targets[@]}"; do
  if ! grep -qx "$t" <<<"$installed"; then
    echo "cross-check: the rustup target $t is missing: run scripts/setup.sh" >&2
    exit 1
  fi
done
for tool in x86_64-w64-mingw32-gcc clang llvm-ar; do
  if ! command -v "$tool" >/dev/null; then
    echo "cross-check: $tool is missing: run scripts/setup.sh" >&2
    exit 1
  fi
done

# Windows: ring's C and assembly build with Debian's MinGW, which the cc
# crate finds by itself (x86_64-w64-mingw32-gcc).

# macOS: `cargo check` still runs build scripts, and ring's compiles C for
# the target. Debian's clang can target Darwin but there is no macOS SDK
# here, and ring's base.h includes Apple's <TargetConditionals.h> only to
# learn which Apple OS it builds for. The smallest honest fix is a stand-in
# header that says "macOS, not iOS" (the values Apple's own header gives
# for this target), generated below into the target directory: no
# compiled object is ever linked, so nothing built against it ships. ring's
# own sysroot-less mode (-nostdlibinc, RING_CORE_NOSTDLIBINC) keeps the
# host's glibc headers out; clang's freestanding headers give stdint.h.
darwin_inc="$PWD/target/cross-check/darwin-include"
mkdir -p "$darwin_inc"
cat >"$darwin_inc/TargetConditionals.h" <<'H'
/* Stand-in for Apple's <TargetConditionals.h>, written by
   scripts/cross-check.sh for type-checking Berth for macOS on Linux (no
   SDK). Only ring's C code reads it; nothing built with it is linked. */
#ifndef BERTH_TARGET_CONDITIONALS_STANDIN_H
#define BERTH_TARGET_CONDITIONALS_STANDIN_H
#define TARGET_OS_MAC 1
#define TARGET_OS_OSX 1
#define TARGET_OS_IPHONE 0
#define TARGET_OS_IOS 0
#define TARGET_OS_TV 0
#define TARGET_OS_WATCH 0
#define TARGET_OS_VISION 0
#define TARGET_OS_SIMULATOR 0
#endif
H
export CC_aarch64_apple_darwin=clang
export AR_aarch64_apple_darwin=llvm-ar
export CFLAGS_aarch64_apple_darwin="--target=arm64-apple-macos11 -ffreestanding -nostdlibinc -DRING_CORE_NOSTDLIBINC=1 -I$darwin_inc"

for t in "${targets[@]}"; do
  start=$SECONDS
  echo "cross-check: $t"
  # shellcheck disable=SC2086 # the package list splits on purpose
  cargo clippy --locked --target "$t" ${crates[$t]} -- -D warnings
  echo "cross-check: $t clean in $((SECONDS - start)) s"
done

#!/usr/bin/env bash
# Installs what Berth's build, demo and tests need on Debian 12, from
# Debian's packages and crates.io only. Safe to run again. (docker.io is
# the reference the parity test compares Berth with: a private dockerd,
# started by that test alone.)
set -euo pipefail

packages=(docker-registry skopeo umoci busybox-static apache2-utils openssl ca-certificates curl gcc patch pkg-config libseccomp-dev procps tini nftables iproute2 qemu-system-x86 e2fsprogs docker.io docker-compose buildah)
# Berth Desktop (src-tauri, ui): WebKitGTK and GTK headers for the Tauri
# crate (a workspace member, so clippy and the build need them), Xvfb and
# ImageMagick for a display and screenshots, and Debian's WebKitWebDriver
# for the end-to-end test.
packages+=(libwebkit2gtk-4.1-dev libgtk-3-dev libayatana-appindicator3-dev librsvg2-dev libssl-dev libxdo-dev xvfb xauth webkit2gtk-driver imagemagick)
# scripts/cross-check.sh: MinGW for the Windows check; clang (with LLVM's
# ar) for the macOS one (ring's build script compiles C for the target).
packages+=(gcc-mingw-w64-x86-64 clang llvm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
  echo "setup: cargo is missing: install Rust (rustup) first" >&2
  exit 1
fi
# The cross-checked targets (installed only when missing: rustup needs
# the network).
installed_targets="$(rustup target list --installed 2>/dev/null || true)"
for t in x86_64-pc-windows-gnu aarch64-apple-darwin; do
  if ! grep -qx "$t" <<<"$installed_targets"; then
    echo "setup: adding the rustup target $t"
    rustup target add "$t"
  fi
done
# The VM's vsock on Linux hosts without /dev/vhost-vsock: a vhost-user
# backend in "hybrid vsock" mode, crates.io's vhost-device-vsock 0.3.0
# with Berth's fix (scripts/vhost-device-vsock.patch says what it fixes).
if ! vhost-device-vsock --version 2>/dev/null | grep -q '+berth\.1$'; then
  echo "setup: installing vhost-device-vsock 0.3.0 with Berth's fix"
  vsock_src="$(mktemp -d)"
  mkdir "$vsock_src/src"
  printf '[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\nvhost-device-vsock = "=0.3.0"\n' \
    >"$vsock_src/Cargo.toml"
  echo 'fn main() {}' >"$vsock_src/src/main.rs"
  (cd "$vsock_src" && cargo vendor --versioned-dirs -q vendor >/dev/null)
  patch -s -d "$vsock_src/vendor/vhost-device-vsock-0.3.0" -p1 <"$(dirname "$0")/vhost-device-vsock.patch"
  cargo install --locked --force --path "$vsock_src/vendor/vhost-device-vsock-0.3.0"
  rm -rf "$vsock_src"
fi
# Berth Desktop's UI packages come from its lockfile, and tauri-driver
# from crates.io.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "setup: node and npm are missing: install Node 20 first" >&2
  exit 1
fi
ui="$(dirname "$0")/../ui"
if [[ ! -d "$ui/node_modules" ]] || [[ "$ui/package-lock.json" -nt "$ui/node_modules/.package-lock.json" ]]; then
  echo "setup: installing the desktop UI's npm packages"
  (cd "$ui" && npm ci --no-audit --no-fund >/dev/null)
fi
# docker-py and testcontainers-python, for the Docker Engine API tests
# with real Python clients.
if ! python3 -c "import docker" 2>/dev/null; then
  echo "setup: installing docker-py from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check "docker==7.1.0"
fi
if ! python3 -c "import testcontainers.core.wait_strategies" 2>/dev/null; then
  echo "setup: installing testcontainers-python from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check "testcontainers==4.15.0"
fi
if ! command -v tauri-driver >/dev/null; then
  echo "setup: installing tauri-driver"
  cargo install tauri-driver --version 2.1.0 --locked
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

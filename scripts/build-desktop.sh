#!/usr/bin/env bash
# Builds Berth Desktop: the UI from its lockfile (npm ci, vite build), then
# the app with the `desktop` profile (release optimisation without the
# agent's fat LTO, so it builds in minutes) into
# target/desktop/berth-desktop. Run scripts/setup.sh first on a fresh
# machine (WebKitGTK and GTK headers).
set -euo pipefail
cd "$(dirname "$0")/.."
(cd ui && npm ci --no-audit --no-fund && npm run build)
cargo build -p berth-desktop --profile desktop --locked
echo "built ${CARGO_TARGET_DIR:-target}/desktop/berth-desktop"

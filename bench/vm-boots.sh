#!/usr/bin/env bash
# How often a VM boot needs the supervisor's guard: N boots of the guest under
# QEMU TCG (`berth vm start`, a ping, `berth vm stop`), counting the boots
# whose agent announced itself but did not answer over hybrid vsock within
# 15 s (machine::ANSWER_AFTER_SERVING; the supervisor then boots again).
#
# Usage: bench/vm-boots.sh [N]   (default 50). Needs root and QEMU.
# The guest image: BERTH_VM_IMAGE, else target/vm-image (built when missing);
# the vsock backend: BERTH_VHOST_VSOCK, else vhost-device-vsock on PATH; the CLI:
# BERTH, else target/release/berth (built).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-50}
root=$PWD
work=$(mktemp -d /tmp/berth-boots.XXXXXX)
[[ -n ${BERTH:-} ]] || cargo build --release --locked -p berth-cli
image=${BERTH_VM_IMAGE:-$root/target/vm-image}
[[ -f $image/manifest.json ]] || scripts/build-vm-image.sh "$image"
berth=${BERTH:-$root/target/release/berth}
trap '"$berth" vm stop --dir "$work/vm" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
echo "bench: $n boots, vsock backend $(${BERTH_VHOST_VSOCK:-vhost-device-vsock} --version), load $(cut -d' ' -f1-3 /proc/loadavg)"
guarded=0 failed=0 boots=()
for i in $(seq "$n"); do
  if ! "$berth" vm start --dir "$work/vm" --image "$image" --accel tcg --memory 1024 --network none \
    >"$work/out" 2>"$work/err"; then
    failed=$((failed + 1))
    echo "boot $i failed: $(tail -1 "$work/err")"
  fi
  if grep -q "did not answer over vsock" "$work/err"; then
    guarded=$((guarded + 1))
    echo "boot $i: the 15 s guard fired: $(grep -m1 'did not answer over vsock' "$work/err")"
  fi
  boots+=("$(grep -o 'ready ([0-9.]* s)' "$work/out" | grep -o '[0-9.]*' || echo nan)")
  "$berth" vm stop --dir "$work/vm" >/dev/null
done
printf '%s\n' "${boots[@]}" | sort -n | awk -v n="$n" -v g="$guarded" -v f="$failed" '
  {a[NR]=$1} END {printf "  %d boots: the 15 s guard fired %d times, %d starts failed; boot to ready median %.1f s, max %.1f s\n", n, g, f, a[int((NR+1)/2)], a[NR]}'

#!/usr/bin/env bash
# The Linux VM under QEMU TCG (this machine has no usable KVM):
#
#   boot     `berth vm start` until the agent answers over vsock, against the floor:
#            the same kernel, VMM and devices with a busybox /init that only prints
#            a line on the console (target: berth <= 1.2x the floor)
#   rpc      System/Ping round trips over the VM's hybrid vsock vs a native agent's
#            Unix socket (rpc-latency)
#   share    reading a 256 MiB file in a container from a 9p shared host folder vs
#            from a volume on the guest's own disk, guest caches dropped (target >= 75%)
#   give-back QEMU's resident memory (VmRSS) idle, with 600 MiB in a container's tmpfs
#            and after it exits; the qcow2's allocated MiB (du) before, with a 600 MiB
#            container and after its removal (targets: idle <= 200 MiB, >= 75% of the
#            rise back within 30 s for memory, a minute for the disk)
#   stop     `berth vm stop` with three running containers that exit on SIGTERM, 3 times
#            (target: <= 1 s); the guest's console shows where the time went
#
# Usage: bench/vm.sh [BOOTS]   (default 3; 0 skips the boot part). Needs root; builds
# the guest image.
set -euo pipefail
cd "$(dirname "$0")/.."
boots=${1:-3}
root=$PWD
work=$(mktemp -d /tmp/berth-vmbench.XXXXXX)

scripts/setup.sh
cargo build --release --locked -p berth-agent -p berth-cli -p berth-bench
scripts/build-vm-image.sh "$work/image" >/dev/null
bin=${CARGO_TARGET_DIR:-$root/target}/release
export BERTH_VM_ACCEL=tcg
source bench/lib.sh

cleanup() {
  for d in "$work"/vm-*; do [[ -d $d ]] && "$bin/berth" vm stop --dir "$d" >/dev/null 2>&1 || true; done
  [[ -n "${agent_pid:-}" ]] && kill "$agent_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
now_ms() { date +%s%3N; }

# The floor image: the same files, with the busybox init.
cp -r "$work/image" "$work/floor"
"$bin/floor-initramfs" "$work/floor/initramfs.cpio"

if ((boots > 0)); then
echo "== boot to ready, $boots boots each (TCG, 2 vCPUs, 1 GiB) =="
: >"$work/berth.ms"; : >"$work/floor.ms"
for i in $(seq "$boots"); do
  d=$work/vm-b$i
  "$bin/berth" vm start --dir "$d" --image "$work/image" --memory 1024 --no-shares --network none >/dev/null
  "$bin/berth" vm status --dir "$d" --format json | sed -n 's/.*"boot_ms": \([0-9]*\).*/\1/p' >>"$work/berth.ms"
  "$bin/berth" vm stop --dir "$d" >/dev/null
  # Second boot of the same VM: the data disk is formatted already.
  "$bin/berth" vm start --dir "$d" >/dev/null
  "$bin/berth" vm status --dir "$d" --format json | sed -n 's/.*"boot_ms": \([0-9]*\).*/\1/p' >>"$work/berth-warm.ms"
  "$bin/berth" vm stop --dir "$d" >/dev/null

  f=$work/vm-f$i
  start=$(now_ms)
  "$bin/berth" vm start --dir "$f" --image "$work/floor" --memory 1024 --no-shares --network none >/dev/null 2>&1 &
  until grep -q FLOOR-READY "$f/console.log" 2>/dev/null; do sleep 0.01; done
  echo $(( $(now_ms) - start )) >>"$work/floor.ms"
  "$bin/berth" vm stop --dir "$f" >/dev/null 2>&1 || true
  wait || true
done
b=$(median <"$work/berth.ms"); bw=$(median <"$work/berth-warm.ms"); f=$(median <"$work/floor.ms")
printf 'first boot (formats the disk): %6d ms\n' "$b"
printf 'later boots:                   %6d ms\n' "$bw"
printf 'floor (busybox init):          %6d ms\n' "$f"
awk -v b="$b" -v w="$bw" -v f="$f" 'BEGIN {printf "berth/floor: first %.2fx, later %.2fx (target <= 1.2x)\n", b/f, w/f}'
fi

echo "== RPC round trip =="
d=$work/vm-share
mkdir -p "$work/shared"
"$bin/berth" vm start --dir "$d" --image "$work/image" --memory 1024 --share "$work/shared" --network none >/dev/null
vmhost=$("$bin/berth" vm status --dir "$d" --format json | sed -n 's/.*"endpoint": "\(.*\)".*/\1/p')
busybox_image "$work"
start_agent "$bin" "$work"
"$bin/rpc-latency" "$host" 2000 | tee "$work/unix.txt"
"$bin/rpc-latency" "$vmhost" 2000 | tee "$work/vsock.txt"
u=$(sed -n 's/.*p50 \([0-9.]*\) us.*/\1/p' "$work/unix.txt"); v=$(sed -n 's/.*p50 \([0-9.]*\) us.*/\1/p' "$work/vsock.txt")
awk -v u="$u" -v v="$v" 'BEGIN {printf "vsock/unix p50: %.1fx\n", v/u}'

echo "== shared folder read in a container vs the guest's disk (256 MiB, dd bs=1M, guest caches dropped) =="
export BERTH_HOST=$vmhost
"$bin/berth" load -i "$work/bb-oci.tar" >/dev/null
id=$("$bin/berth" images -q | head -1); "$bin/berth" tag "$id" bb >/dev/null
dd if=/dev/urandom of="$work/shared/big" bs=1M count=256 status=none
"$bin/berth" volume create disk >/dev/null
"$bin/berth" run --rm -v disk:/v bb dd if=/dev/urandom of=/v/big bs=1M count=256 2>/dev/null
# This busybox's dd prints no rate: time the read with /proc/uptime in the
# container (MB/s of 256 MiB).
read_rate='read a _ </proc/uptime; dd if=$0 of=/dev/null bs=1M 2>/dev/null; read b _ </proc/uptime; echo "$a $b" | awk "{printf \"%.1f\n\", 256/(\$2-\$1)}"'
: >"$work/share.r"; : >"$work/disk.r"
for i in 1 2 3; do
  "$bin/berth" run --rm --privileged bb sh -c 'sync; echo 3 > /proc/sys/vm/drop_caches'
  "$bin/berth" run --rm -v "$work/shared:/s" bb sh -c "$read_rate" /s/big >>"$work/share.r"
  "$bin/berth" run --rm --privileged bb sh -c 'sync; echo 3 > /proc/sys/vm/drop_caches'
  "$bin/berth" run --rm -v disk:/v bb sh -c "$read_rate" /v/big >>"$work/disk.r"
done
s=$(median <"$work/share.r"); g=$(median <"$work/disk.r")
printf 'shared folder (9p): %8.1f MB/s\nguest disk:         %8.1f MB/s\n' "$s" "$g"
awk -v s="$s" -v g="$g" 'BEGIN {printf "share/disk: %.2f (target >= 0.75)\n", s/g}'

echo "== memory and disk given back to the host (a fresh VM, 1 GiB; 600 MiB in a container) =="
"$bin/berth" vm stop --dir "$d" >/dev/null
d=$work/vm-giveback
"$bin/berth" vm start --dir "$d" --image "$work/image" --memory 1024 --no-shares --network none >/dev/null
st=$("$bin/berth" vm status --dir "$d" --format json)
pid=$(sed -n 's/.*"vmm_pid": \([0-9]*\).*/\1/p' <<<"$st")
export BERTH_HOST=$(sed -n 's/.*"endpoint": "\(.*\)".*/\1/p' <<<"$st")
rss() { awk '/^VmRSS/ {print int($2/1024)}' "/proc/$pid/status"; }
du_mib() { du -m "$d/data.qcow2" | cut -f1; }
sleep 10
idle=$(rss)
"$bin/berth" load -i "$work/bb-oci.tar" >/dev/null
id=$("$bin/berth" images -q | head -1); "$bin/berth" tag "$id" bb >/dev/null
before=$(rss)
"$bin/berth" run -d --name hog --tmpfs /t:size=700m bb sh -c 'dd if=/dev/zero of=/t/fill bs=1M count=600 2>/dev/null; echo filled; sleep 1000' >/dev/null
until "$bin/berth" logs hog | grep -q filled; do sleep 0.2; done
loaded=$(rss)
"$bin/berth" rm -f hog >/dev/null
sleep 30
after=$(rss)
printf 'QEMU resident: idle %d MiB, before %d, with 600 MiB in tmpfs %d, 30 s after exit %d MiB\n' "$idle" "$before" "$loaded" "$after"
awk -v b="$before" -v l="$loaded" -v a="$after" 'BEGIN {printf "memory given back: %.0f%% of the rise (target >= 75%%)\n", 100*(l-a)/(l-b)}'
dbefore=$(du_mib)
"$bin/berth" run --name writer bb sh -c 'dd if=/dev/zero of=/big bs=1M count=600 2>/dev/null; sync' >/dev/null
sleep 2
dfull=$(du_mib)
"$bin/berth" rm writer >/dev/null
sleep 60
dafter=$(du_mib)
printf 'data disk (du): before %d MiB, with a 600 MiB container %d MiB, a minute after its removal %d MiB\n' "$dbefore" "$dfull" "$dafter"
awk -v b="$dbefore" -v f="$dfull" -v a="$dafter" 'BEGIN {printf "disk given back: %.0f%% of the growth (target >= 75%%)\n", 100*(f-a)/(f-b)}'
"$bin/berth" vm stop --dir "$d" >/dev/null

echo "== berth vm stop with 3 containers that exit on SIGTERM (3 stops) =="
d=$work/vm-stop
: >"$work/stop.ms"
for i in 1 2 3; do
  "$bin/berth" vm start --dir "$d" --image "$work/image" --memory 1024 --no-shares --network none >/dev/null
  export BERTH_HOST=$("$bin/berth" vm status --dir "$d" --format json | sed -n 's/.*"endpoint": "\(.*\)".*/\1/p')
  if ((i == 1)); then
    "$bin/berth" load -i "$work/bb-oci.tar" >/dev/null
    id=$("$bin/berth" images -q | head -1); "$bin/berth" tag "$id" bb >/dev/null
  fi
  for c in 1 2 3; do
    "$bin/berth" run -d bb sh -c "trap 'exit 0' TERM; while :; do sleep 0.1; done" >/dev/null
  done
  start=$(now_ms)
  "$bin/berth" vm stop --dir "$d" >/dev/null
  echo $(( $(now_ms) - start )) >>"$work/stop.ms"
done
printf 'berth vm stop: median %d ms of %s (target <= 1000 ms); load %s\n' "$(median <"$work/stop.ms")" "$(tr '\n' ' ' <"$work/stop.ms")" "$(cut -d' ' -f1-3 /proc/loadavg)"
grep 'power-off:' "$d/console.log" | tail -5

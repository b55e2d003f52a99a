#!/usr/bin/env bash
# Image benchmarks, side by side with Debian's peers; prints medians and ratios.
#
#   1. Pull and store a debootstrap image (~200 MB unpacked, one gzip layer) from a
#      local registry: berth pull vs podman pull vs skopeo copy + umoci unpack, every
#      store on the same dedicated filesystem.
#   2. A whole `berth images` process.
#   3. RPC round trips over the Unix socket (p50, p99).
#
# Usage: bench/images.sh [RUNS]   (default 5). Needs root. The debootstrap tree is cached
# in bench/.cache (about 60 s to make the first time).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
root=$PWD
cache=$root/bench/.cache
work=$(mktemp -d /tmp/berth-bench.XXXXXX)

scripts/setup.sh
source bench/lib.sh
need_packages podman runc debootstrap hyperfine uidmap
cargo build --release --locked -p berth-agent -p berth-cli -p berth-bench
bin=${CARGO_TARGET_DIR:-$root/target}/release

cleanup() {
  [[ -n "${agent_pid:-}" ]] && kill "$agent_pid" 2>/dev/null || true
  [[ -n "${registry_pid:-}" ]] && kill "$registry_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  if [[ -n "${stores:-}" ]]; then
    umount -R "$stores/podman" 2>/dev/null || true
    umount "$stores" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Every tool's store goes on one dedicated ext4 (loop-mounted, no `discard`):
# on a disk mounted with online discard, each delete slows the next run's file
# creation (plain `zcat | tar -x` drifts from 1.7 s to 4.8 s over three runs
# here), which would make the order of runs, not the tools, decide the result.
stores=$work/stores
mkdir -p "$stores"
truncate -s 8G "$work/stores.img"
mkfs.ext4 -q -F "$work/stores.img"
mount -o loop "$work/stores.img" "$stores"

# The image: a minimal Debian root as one gzip layer.
mkdir -p "$cache"
if [[ ! -f "$cache/debian.tar" ]]; then
  echo "bench: making a debootstrap image (once)"
  # The mirror apt already uses (deb822 "URIs:" or one-line "deb URL" form).
  mirror=$( (cat /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -E '^URIs:' | awk '{print $2}'; \
             grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}') | grep -v security | head -n1 || true)
  rm -rf "$cache/rootfs"
  debootstrap --variant=minbase bookworm "$cache/rootfs" ${mirror:+"$mirror"} >/dev/null
  tar -C "$cache/rootfs" --numeric-owner -cf "$cache/debian.tar" .
  rm -rf "$cache/rootfs"
fi
umoci init --layout "$work/layout" >/dev/null
umoci new --image "$work/layout:deb" >/dev/null
umoci raw add-layer --image "$work/layout:deb" "$cache/debian.tar" >/dev/null
umoci config --image "$work/layout:deb" --config.cmd /bin/bash >/dev/null

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
reg=127.0.0.1:$port
cat >"$work/registry.yml" <<EOC
version: 0.1
storage: { filesystem: { rootdirectory: $work/registry } }
http: { addr: "$reg" }
log: { level: error, accesslog: { disabled: true } }
EOC
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do curl -fs "http://$reg/v2/" >/dev/null && break; sleep 0.05; done
skopeo copy -q "oci:$work/layout:deb" "docker://$reg/bench/debian:1" --dest-tls-verify=false
image=$reg/bench/debian:1

"$bin/berth-agent" --root "$stores/berth" --listen "unix://$work/berth.sock" --log-level warn 2>"$work/agent.log" &
agent_pid=$!
export BERTH_HOST=unix://$work/berth.sock
for _ in $(seq 100); do [[ -S "$work/berth.sock" ]] && break; sleep 0.05; done

# podman with a private store, runc, and rlimits this machine allows.
cat >"$work/containers.conf" <<EOC
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
EOC
export CONTAINERS_CONF=$work/containers.conf
podman=(podman --root "$stores/podman" --runroot "$work/podman-run" --storage-driver overlay)

hf() { hyperfine --style basic --export-json "$work/$1.json" "${@:2}" >/dev/null 2>&1 || hyperfine --style basic --export-json "$work/$1.json" "${@:2}"; }
hf berth --runs "$runs" --prepare "$bin/berth image prune -a -f" "$bin/berth pull -q $image"
hf podman --runs "$runs" --prepare "${podman[*]} rmi -a -f" "${podman[*]} pull -q --tls-verify=false docker://$image"
hf skopeo --runs "$runs" --prepare "rm -rf $stores/oci $stores/bundle" \
  "skopeo copy -q --src-tls-verify=false docker://$image oci:$stores/oci:deb && umoci unpack --image $stores/oci:deb $stores/bundle"
"$bin/berth" pull -q "$image" >/dev/null
hf images --runs 100 -N --warmup 10 "$bin/berth images"
"$bin/rpc-latency" "unix://$work/berth.sock" 20000 >"$work/rpc.txt"

python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
med = lambda n: json.load(open(f"{w}/{n}.json"))["results"][0]["median"]
b, p, s = med("berth"), med("podman"), med("skopeo")
print(f"pull + unpack of a debootstrap image (median of runs):")
print(f"  berth pull               {b*1000:8.0f} ms")
print(f"  podman pull              {p*1000:8.0f} ms   berth is {p/b:.1f}x faster")
print(f"  skopeo copy+umoci unpack {s*1000:8.0f} ms   berth is {s/b:.1f}x faster")
print(f"whole `berth images` process: median {med('images')*1000:.2f} ms")
print(open(f"{w}/rpc.txt").read().strip())
PY

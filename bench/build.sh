#!/usr/bin/env bash
# Build benchmarks, side by side with Debian's peers; prints medians and ratios.
#
#   a. A small context (a few files; FROM busybox, COPY, RUN, ENV, CMD):
#      - fully cached rebuild (target: Berth <= 0.1 s and >= 2x faster than docker build),
#      - cold build, every step run again with --no-cache, base image already stored
#        (target: no slower than buildah).
#   b. A 10k-file context, one file changed, then rebuilt (COPY . and a RUN after it run
#      again; target: >= 2x faster than buildah); and the same context fully cached.
#   c. The small context's Dockerfile on a Debian 12 base made with debootstrap (minbase,
#      127 MB, 6.7k files; made once into /var/cache/berth-bench, see bench/lib.sh), with a
#      RUN that reads dpkg's database: fully cached and cold builds. Skipped, saying so,
#      when debootstrap cannot reach the package mirror.
#
# Peers: `buildah bud --layers` (chroot isolation, overlay store, private root) and
# `docker build` (BuildKit) against a private dockerd (Debian's docker.io: no bridge, no
# iptables, so the host's firewall stays as it was). Every builder pulls the same bases
# (busybox; Debian) from the same local registry. RUN steps have no network in Berth and docker
# (--network none); buildah's chroot isolation shares the host's (no setup, its fastest).
#
# Usage: bench/build.sh [RUNS]   (default 10). Needs root.
#
# Measured 2026-12-07, `bash bench/build.sh 5`, load average 3.5-3.9 (2 shared cores),
# medians, berth / buildah / docker:
#   a. cached 7 / 404 / 218 ms (29.5x docker); cold 85 / 734 / 173 ms (8.6x buildah)
#   b. cached 273 / 2324 / 351 ms; one file changed 599 / 4078 / 5250 ms (6.8x buildah;
#      it was 3764 / 4744 / 5072 ms, 1.26x, before a new COPY layer linked the last one's
#      unchanged files: making an inode costs 0.3-0.7 ms on this disk, a link 0.02 ms)
#   c. Debian: cached 6 / 312 / 277 ms; cold 62 / 562 / 367 ms
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
root=$PWD
work=$(mktemp -d /tmp/berth-build-bench.XXXXXX)

scripts/setup.sh
source bench/lib.sh
need_packages buildah docker.io runc hyperfine
cargo build --release --locked -p berth-agent -p berth-cli
bin=${CARGO_TARGET_DIR:-$root/target}/release
buildah_store=(--root "$work/buildah/root" --runroot "$work/buildah/run" --storage-driver overlay)

cleanup() {
  [[ -n "${agent_pid:-}" ]] && kill "$agent_pid" 2>/dev/null || true
  [[ -n "${dockerd_pid:-}" ]] && kill "$dockerd_pid" 2>/dev/null || true
  [[ -n "${registry_pid:-}" ]] && kill "$registry_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  buildah "${buildah_store[@]}" rm -a >/dev/null 2>&1 || true
  umount -R "$work/buildah" 2>/dev/null || true
  umount -R "$work/docker" 2>/dev/null || true
  rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT

busybox_image "$work"

# The base in a local registry.
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
skopeo copy -q "oci:$work/layout:latest" "docker://$reg/bench/bb:1" --dest-tls-verify=false
base=$reg/bench/bb:1
debian=
if debian_image "$work"; then
  skopeo copy -q "oci:$work/debian-layout:latest" "docker://$reg/bench/debian:1" --dest-tls-verify=false
  debian=$reg/bench/debian:1
fi

# Berth.
start_agent "$bin" "$work"

# buildah: a private overlay store.
buildah=(buildah "${buildah_store[@]}" bud --layers --isolation chroot --tls-verify=false -q)

# docker: a private dockerd; registries on loopback are insecure to it.
mkdir -p "$work/docker"
cat >"$work/daemon.json" <<EOC
{ "data-root": "$work/docker/data", "exec-root": "$work/docker/exec", "pidfile": "$work/docker/pid",
  "hosts": ["unix://$work/docker/docker.sock"], "bridge": "none", "iptables": false, "ip-forward": false,
  "ip-masq": false, "insecure-registries": ["127.0.0.0/8"] }
EOC
/usr/sbin/dockerd --config-file "$work/daemon.json" >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 200); do [[ -S $work/docker/docker.sock ]] && break; sleep 0.05; done
export DOCKER_BUILDKIT=1
docker=(env DOCKER_CONFIG="$work/docker/client" /usr/bin/docker -H "unix://$work/docker/docker.sock")
for _ in $(seq 100); do "${docker[@]}" version >/dev/null 2>&1 && break; sleep 0.1; done

# a. The small context.
small=$work/small
mkdir -p "$small"
printf 'one\n' >"$small/a.txt"
printf 'two\n' >"$small/b.txt"
printf '#!/bin/sh\ncat /app/all\n' >"$small/run.sh"
chmod 755 "$small/run.sh"
cat >"$small/Dockerfile" <<EOD
FROM $base
COPY a.txt b.txt run.sh /app/
RUN cat /app/a.txt /app/b.txt > /app/all && echo built
ENV GREETING=hello
CMD ["/app/run.sh"]
EOD
# b. 10k files in 100 folders.
big=$work/big
python3 - "$big" <<'EOP'
import os, sys
root = sys.argv[1]
for d in range(100):
    os.makedirs(f"{root}/src/d{d}", exist_ok=True)
    for f in range(100):
        with open(f"{root}/src/d{d}/f{f}.txt", "w") as fh:
            fh.write(f"file {d}/{f}\n" * 8)
EOP
cat >"$big/Dockerfile" <<EOD
FROM $base
COPY src /src
RUN find /src -type f | wc -l > /count
EOD

# c. The small context on Debian.
deb=$work/deb
if [[ -n $debian ]]; then
  mkdir -p "$deb"
  cp "$small"/{a.txt,b.txt,run.sh} "$deb/"
  cat >"$deb/Dockerfile" <<EOD
FROM $debian
COPY a.txt b.txt run.sh /app/
RUN dpkg -l | wc -l > /n && cat /app/a.txt /app/b.txt > /app/all && echo built
ENV GREETING=hello
CMD ["/app/run.sh"]
EOD
fi

berth_build="$bin/berth build -q --network none"
docker_build="${docker[*]} build -q --network none"
buildah_build="${buildah[*]}"

# Every builder pulls the base and fills its cache once before timing.
for ctx in "$small" "$big" ${debian:+"$deb"}; do
  $berth_build -t bench "$ctx" >/dev/null
  $buildah_build -t bench "$ctx" >/dev/null
  $docker_build -t bench "$ctx" >/dev/null
done

hf() { # name, hyperfine args...
  hyperfine --style none --export-json "$work/$1.json" "${@:2}" >/dev/null 2>&1 || \
    hyperfine --style basic --export-json "$work/$1.json" "${@:2}"
}
echo "bench: bash bench/build.sh $runs, $(uptime)"
# each NAME BUILD-ARGS HYPERFINE-OPTIONS...: the same build by Berth, buildah and
# docker, saved as NAME-berth, NAME-buildah and NAME-docker.
each() {
  local name=$1 args=$2 b
  for b in berth buildah docker; do
    local build=${b}_build
    hf "$name-$b" "${@:3}" "${!build} $args"
  done
}
echo "bench: small context, fully cached rebuild (median of $runs)"
each a-cached "-t bench $small" --warmup 2 --runs "$runs"
echo "bench: small context, cold (--no-cache) build (median of $runs)"
each a-cold "--no-cache -t bench $small" --runs "$runs"
echo "bench: 10k-file context, fully cached rebuild (median of $runs)"
each b-cached "-t bench $big" --warmup 1 --runs "$runs"
echo "bench: 10k-file context, one file changed, rebuilt (median of $runs)"
change="sh -c 'date +%s%N > $big/src/d7/f7.txt'"
each b "-t bench $big" --runs "$runs" --prepare "$change"
if [[ -n $debian ]]; then
  echo "bench: Debian base, small context, fully cached rebuild (median of $runs)"
  each c-cached "-t bench $deb" --warmup 2 --runs "$runs"
  echo "bench: Debian base, small context, cold (--no-cache) build (median of $runs)"
  each c-cold "--no-cache -t bench $deb" --runs "$runs"
fi

echo "bench: $(uptime)"
python3 - "$work" <<'PY'
import json, os, sys
w = sys.argv[1]
med = lambda n: json.load(open(f"{w}/{n}.json"))["results"][0]["median"]
def row(title, key, target):
    b, h, d = med(f"{key}-berth"), med(f"{key}-buildah"), med(f"{key}-docker")
    print(f"{title}")
    print(f"  berth   {b*1000:8.0f} ms")
    print(f"  buildah {h*1000:8.0f} ms   berth is {h/b:5.2f}x faster")
    print(f"  docker  {d*1000:8.0f} ms   berth is {d/b:5.2f}x faster")
    print(f"  target: {target}")
row("a. small context, fully cached rebuild", "a-cached", "berth <= 100 ms and >= 2x faster than docker")
row("a. small context, cold build (--no-cache)", "a-cold", "berth no slower than buildah (ratio >= 1)")
row("b. 10k-file context, fully cached rebuild", "b-cached", "(no target; the context's cost alone)")
row("b. 10k-file context, one file changed", "b", "berth >= 2x faster than buildah")
if os.path.exists(f"{w}/c-cold-docker.json"):
    row("c. Debian base, small context, fully cached rebuild", "c-cached", "(as a.)")
    row("c. Debian base, small context, cold build (--no-cache)", "c-cold", "(as a.)")
else:
    print("c. Debian base: skipped (debootstrap could not make it; see above)")
PY

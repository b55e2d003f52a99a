#!/usr/bin/env bash
# Container benchmarks, side by side with Debian's peers; prints medians and ratios.
#
#   1. `run --rm IMAGE true` as a whole CLI process, to an exited and removed container:
#      berth vs podman, both --network none, vs docker (Debian's docker.io, a private dockerd
#      without a bridge), so none of them sets up a network,
#      vs raw `runc run` / `crun run` on the same busybox rootfs.
#      Then the path a user takes first, each engine on its own default bridge: berth vs
#      podman (netavark) and docker (a second private dockerd with its bridge and
#      iptables), the peers each in a network namespace of their own so their
#      firewall rules never touch the host's.
#   2. The agent's RSS with 0, 10 and 100 running containers, and each container's
#      monitor process (Berth's per-container overhead: RSS, and PSS, which counts shared
#      pages once), the containers' own processes aside.
#
# Usage: bench/containers.sh [RUNS]   (default 20). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
root=$PWD
work=$(mktemp -d /tmp/berth-cbench.XXXXXX)

scripts/setup.sh
source bench/lib.sh
need_packages podman runc crun docker.io hyperfine uidmap
cargo build --release --locked -p berth-agent -p berth-cli
bin=${CARGO_TARGET_DIR:-$root/target}/release

cleanup() {
  [[ -n "${agent_pid:-}" ]] && { BERTH_HOST=$host "$bin/berth" ps -aq --no-trunc 2>/dev/null | xargs -r env BERTH_HOST=$host "$bin/berth" rm -f >/dev/null 2>&1 || true; kill "$agent_pid" 2>/dev/null || true; }
  [[ -n "${dockerd_pid:-}" ]] && kill "$dockerd_pid" 2>/dev/null || true
  [[ -n "${bridged_pid:-}" ]] && kill "$bridged_pid" 2>/dev/null || true
  sleep 1
  ip netns del berth-bench-podman 2>/dev/null || true
  ip netns del berth-bench-docker 2>/dev/null || true
  # dockerd loads br_netfilter, which sends bridged packets through the host's
  # iptables: unload it again if it was not there before.
  [[ -n "${had_br_netfilter:-}" ]] || rmmod br_netfilter 2>/dev/null || true
  wait 2>/dev/null || true
  umount -R "$work/docker" 2>/dev/null || true
  umount "$work/favordynmods" 2>/dev/null || true
  rm -rf "$work" 2>/dev/null || true
}
[[ -d /sys/module/br_netfilter ]] && had_br_netfilter=1
trap cleanup EXIT

# The image (busybox, static), and Berth.
busybox_image "$work"
start_agent "$bin" "$work"

# podman, with this host's limits (root's hard nofile is below podman's default).
cat >"$work/containers.conf" <<EOC
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
EOC
export CONTAINERS_CONF=$work/containers.conf
podman_root=(--root "$work/podman" --runroot "$work/podman-run")
podman "${podman_root[@]}" load -q -i "$work/bb-docker.tar" >/dev/null

# docker: a private dockerd.
mkdir -p "$work/docker"
cat >"$work/daemon.json" <<EOC
{ "data-root": "$work/docker/data", "exec-root": "$work/docker/exec", "pidfile": "$work/docker/pid",
  "hosts": ["unix://$work/docker/docker.sock"], "bridge": "none", "iptables": false, "ip-forward": false }
EOC
/usr/sbin/dockerd --config-file "$work/daemon.json" >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 200); do [[ -S $work/docker/docker.sock ]] && break; sleep 0.05; done
docker_cmd=(/usr/bin/docker -H "unix://$work/docker/docker.sock")
"${docker_cmd[@]}" load -q -i "$work/bb-docker.tar" >/dev/null

# runc and crun on the same rootfs.
true_bundle "$work"
# crun refuses hybrid cgroups; in its own mount namespace the cgroup2 mount is masked.
crun_cmd="unshare -m sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; cd $work/bundle && crun run bench-crun-\$\$ >/dev/null'"

hyper() { # name, command
  hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/$1.json" "$2" >/dev/null 2>&1 || \
    hyperfine --warmup 3 --runs "$runs" --export-json "$work/$1.json" "$2" >/dev/null
  python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['results'][0]['median']*1000)" "$work/$1.json"
}
echo "bench: run --rm IMAGE true, median of $runs"
t_berth=$(hyper berth "$bin/berth run --rm --network none bb true")
# The path a user takes first: the default bridge (veth, address, route, DNS).
t_bridge=$(hyper berth-bridge "$bin/berth run --rm bb true")
t_podman=$(hyper podman "podman ${podman_root[*]} run --rm --network none bb true")
t_docker=$(hyper docker "${docker_cmd[*]} run --rm bb true")
t_runc=$(hyper runc "sh -c 'cd $work/bundle && runc run bench-runc-\$\$ >/dev/null'")
t_crun=$(hyper crun "$crun_cmd" || echo 0)
python3 - "$t_berth" "$t_podman" "$t_docker" "$t_runc" "$t_crun" <<'EOP'
import sys
b, p, d, r, c = map(float, sys.argv[1:])
print(f"  berth  {b:8.1f} ms")
print(f"  podman {p:8.1f} ms   berth is {p/b:4.1f}x faster")
print(f"  docker {d:8.1f} ms   berth is {d/b:4.1f}x faster")
print(f"  runc   {r:8.1f} ms   berth/runc = {b/r:4.2f}")
if c > 0:
    print(f"  crun   {c:8.1f} ms   berth/crun = {b/c:4.2f} (target <= 1.5)")
EOP

# Each engine on its default bridge; the peers in network namespaces of their own.
ip netns add berth-bench-podman && ip -n berth-bench-podman link set lo up
ip netns add berth-bench-docker && ip -n berth-bench-docker link set lo up
mkdir -p "$work/bridged"
cat >"$work/bridged.json" <<EOC
{ "data-root": "$work/bridged/data", "exec-root": "$work/bridged/exec", "pidfile": "$work/bridged/pid",
  "hosts": ["unix://$work/bridged/docker.sock"] }
EOC
nsenter --net=/run/netns/berth-bench-docker /usr/sbin/dockerd --config-file "$work/bridged.json" >"$work/bridged.log" 2>&1 &
bridged_pid=$!
for _ in $(seq 200); do [[ -S $work/bridged/docker.sock ]] && break; sleep 0.05; done
bridged_cmd=(/usr/bin/docker -H "unix://$work/bridged/docker.sock")
"${bridged_cmd[@]}" load -q -i "$work/bb-docker.tar" >/dev/null
podman_net="nsenter --net=/run/netns/berth-bench-podman podman ${podman_root[*]}"
$podman_net run --rm bb true >/dev/null # makes the podman bridge once
echo "bench: run --rm IMAGE true on each one's default bridge, median of $runs"
b_podman=$(hyper podman-bridge "$podman_net run --rm bb true")
b_docker=$(hyper docker-bridge "${bridged_cmd[*]} run --rm bb true")
python3 - "$t_berth" "$t_bridge" "$b_podman" "$b_docker" <<'EOP'
import sys
none, b, p, d = map(float, sys.argv[1:])
print(f"  berth  {b:8.1f} ms   bridge/none = {b/none:4.2f} (target <= 1.5)")
print(f"  podman {p:8.1f} ms   berth is {p/b:4.1f}x faster (target >= 5)")
print(f"  docker {d:8.1f} ms   berth is {d/b:4.1f}x faster (target >= 5)")
EOP

# The first move of a process into a cgroup after a quiet spell waits for an RCU
# grace period (10-30 ms on this machine); every runtime makes that move at each
# start. A runtime whose runs follow each other within the grace window skips
# the wait. `favordynmods` (a cgroup mount option; any v1 hierarchy turns it on
# system-wide) removes the wait for everyone: measured here, then turned off.
fd_mount=$work/favordynmods
mkdir -p "$fd_mount"
if mount -t cgroup -o none,name=berth-bench,favordynmods cgroup "$fd_mount" 2>/dev/null; then
  echo "bench: the same, with cgroup favordynmods (no grace-period wait, for every runtime)"
  f_berth=$(hyper berth-fd "$bin/berth run --rm --network none bb true")
  f_crun=$(hyper crun-fd "$crun_cmd" || echo 0)
  umount "$fd_mount"
  python3 - "$f_berth" "$f_crun" <<'EOP'
import sys
b, c = map(float, sys.argv[1:])
print(f"  berth  {b:8.1f} ms")
if c > 0:
    print(f"  crun   {c:8.1f} ms   berth/crun = {b/c:4.2f}")
EOP
fi

rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# PSS shares each page among the processes that map it: what one more monitor really costs.
pss() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }
monitors() { # a monitor that ends meanwhile counts 0
  local t=0 v
  for p in $(pgrep -f "berth-monitor $work" || true); do v=$($1 "$p" 2>/dev/null || true); t=$((t + ${v:-0})); done
  echo $t
}
echo "bench: agent RSS (kB) with running containers"
r0=$(rss "$agent_pid")
for i in $(seq 10); do "$bin/berth" run -d --network none bb sleep 600 >/dev/null; done
r10=$(rss "$agent_pid"); m10=$(monitors rss); p10=$(monitors pss)
for i in $(seq 90); do "$bin/berth" run -d --network none bb sleep 600 >/dev/null; done
r100=$(rss "$agent_pid"); m100=$(monitors rss); p100=$(monitors pss)
python3 - "$r0" "$r10" "$r100" "$m10" "$m100" "$p10" "$p100" <<'EOP'
import sys
r0, r10, r100, m10, m100, p10, p100 = map(int, sys.argv[1:])
print(f"  agent:   0 containers {r0/1024:6.1f} MiB, 10: {r10/1024:6.1f} MiB, 100: {r100/1024:6.1f} MiB"
      f"  ({(r100-r0)/100:.0f} kB more per container)")
print(f"  monitors RSS: {m10/10/1024:.2f} MiB each with 10, {m100/100/1024:.2f} MiB each with 100")
print(f"  monitors PSS: {p10/10/1024:.2f} MiB each with 10, {p100/100/1024:.2f} MiB each with 100")
EOP

#!/usr/bin/env bash
# The Docker Engine API, side by side: the same `docker` CLI against Berth's
# Docker socket (berth-agent --docker-listen) and against a real dockerd
# (Debian's docker.io, private, no bridge and no iptables, so the host's
# firewall is left alone); prints medians and ratios.
#
#   1. `docker run --rm --network none bb true` as a whole CLI process
#      (create, attach, start, wait, remove). Target: Berth >= 3x faster.
#   2. `docker ps` with 100 running containers. Target: Berth >= 2x faster.
#
# Usage: bench/docker-api.sh [RUNS]   (default 20). Needs root. With
# BERTH_BIN=DIR it takes berth-agent from DIR instead of building it.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
root=$PWD
work=$(mktemp -d /tmp/berth-dbench.XXXXXX)

scripts/setup.sh
source bench/lib.sh
need_packages docker.io hyperfine
if [[ -n ${BERTH_BIN:-} ]]; then
  bin=$BERTH_BIN
else
  cargo build --release --locked -p berth-agent
  bin=${CARGO_TARGET_DIR:-$root/target}/release
fi
# One client for both sides: Docker's CLI 28 when installed, else Debian's.
cli=$(command -v /usr/local/bin/docker || echo /usr/bin/docker)
export DOCKER_CONFIG=$work/docker-config
berth_docker=("$cli" -H "unix://$work/berth-docker.sock")
real_docker=("$cli" -H "unix://$work/docker/docker.sock")

cleanup() {
  if [[ -n "${agent_pid:-}" ]]; then
    "${berth_docker[@]}" ps -aq 2>/dev/null | xargs -r "${berth_docker[@]}" rm -f >/dev/null 2>&1 || true
    kill "$agent_pid" 2>/dev/null || true
  fi
  if [[ -n "${dockerd_pid:-}" ]]; then
    "${real_docker[@]}" ps -aq 2>/dev/null | xargs -r "${real_docker[@]}" rm -f >/dev/null 2>&1 || true
    kill "$dockerd_pid" 2>/dev/null || true
  fi
  wait 2>/dev/null || true
  umount -R "$work/docker" 2>/dev/null || true
  rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT

busybox_image "$work"

# Berth, with its Docker socket.
"$bin/berth-agent" --root "$work/berth" --listen "unix://$work/berth.sock" \
  --docker-listen "unix://$work/berth-docker.sock" 2>"$work/agent.log" &
agent_pid=$!
for _ in $(seq 200); do [[ -S $work/berth-docker.sock ]] && break; sleep 0.02; done
"${berth_docker[@]}" load -q -i "$work/bb-docker.tar" >/dev/null

# A private dockerd, as bench/containers.sh starts it.
mkdir -p "$work/docker"
cat >"$work/daemon.json" <<EOC
{ "data-root": "$work/docker/data", "exec-root": "$work/docker/exec", "pidfile": "$work/docker/pid",
  "hosts": ["unix://$work/docker/docker.sock"], "bridge": "none", "iptables": false, "ip-forward": false }
EOC
/usr/sbin/dockerd --config-file "$work/daemon.json" >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 200); do [[ -S $work/docker/docker.sock ]] && break; sleep 0.05; done
"${real_docker[@]}" load -q -i "$work/bb-docker.tar" >/dev/null

# Both must run the container and pass its exit code on, or the timing is
# of a refusal.
for side in berth real; do
  declare -n d="${side}_docker"
  out=$("${d[@]}" run --rm --network none bb sh -c 'echo ok; exit 3' || echo "exit $?")
  [[ $out == $'ok\nexit 3' ]] || { echo "bench: $side cannot run the image: $out" >&2; exit 1; }
done

hyper() { # name, command
  hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/$1.json" "$2" >/dev/null
  python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['results'][0]['median']*1000)" "$work/$1.json"
}
echo "bench: the Docker API through $("$cli" --version | cut -d, -f1), median of $runs"
r_berth=$(hyper run-berth "${berth_docker[*]} run --rm --network none bb true")
r_real=$(hyper run-real "${real_docker[*]} run --rm --network none bb true")

for side in berth real; do
  declare -n d="${side}_docker"
  for _ in $(seq 100); do "${d[@]}" run -d --network none bb sleep 600 >/dev/null; done
  n=$("${d[@]}" ps -q | wc -l)
  [[ $n == 100 ]] || { echo "bench: $side lists $n running containers, not 100" >&2; exit 1; }
done
# The request alone, without the CLI process around it (a Go binary that
# takes most of a `docker ps`): GET /containers/json over one kept-alive
# connection, median of 200.
api_ps() { # socket
  python3 - "$1" <<'EOP'
import socket, statistics, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
req = b"GET /containers/json HTTP/1.1\r\nHost: docker\r\n\r\n"
times = []
for _ in range(200):
    t = time.perf_counter()
    s.sendall(req)
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    head, body = buf.split(b"\r\n\r\n", 1)
    h = head.decode().lower()
    if "content-length:" in h:
        n = int(h.split("content-length:")[1].split("\r\n")[0])
        while len(body) < n:
            body += s.recv(65536)
    else:
        while not body.endswith(b"0\r\n\r\n"):
            body += s.recv(65536)
    times.append(time.perf_counter() - t)
print(statistics.median(times) * 1000)
EOP
}
q_berth=$(api_ps "$work/berth-docker.sock")
q_real=$(api_ps "$work/docker/docker.sock")
floor=$(hyper floor "$cli --version")
p_berth=$(hyper ps-berth "${berth_docker[*]} ps")
p_real=$(hyper ps-real "${real_docker[*]} ps")
a_berth=$(hyper psa-berth "${berth_docker[*]} ps -a --no-trunc")
a_real=$(hyper psa-real "${real_docker[*]} ps -a --no-trunc")

python3 - "$r_berth" "$r_real" "$p_berth" "$p_real" "$a_berth" "$a_real" "$q_berth" "$q_real" "$floor" <<'EOP'
import sys
rb, rr, pb, pr, ab, ar, qb, qr, floor = map(float, sys.argv[1:])
def line(what, b, r, target):
    ok = "meets" if r / b >= target else "MISSES"
    print(f"  {what:44s} berth {b:7.1f} ms  dockerd {r:7.1f} ms  {r/b:4.1f}x faster ({ok} the {target:g}x target)")
line("docker run --rm --network none bb true", rb, rr, 3)
line("docker ps (100 running)", pb, pr, 2)
line("docker ps -a --no-trunc (100)", ab, ar, 2)
line("GET /containers/json alone (100)", qb, qr, 2)
print(f"  (the CLI alone, `docker --version`, takes {floor:.1f} ms of every docker command)")
EOP

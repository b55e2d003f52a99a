#!/usr/bin/env bash
# Writes guest-agent/link-order.txt: the agent's functions that run in
# everyday use (images, containers on the default bridge and without a
# network, logs, exec, volumes, networks, the Docker API), in the order they
# first ran, from a callgrind profile of the release agent. guest-agent/build.rs
# has the linker place them together, so the agent keeps fewer code pages
# resident.
# Run it after large changes to the agent; a stale list only costs memory.
#
# Usage: scripts/agent-link-order.sh   (needs root; installs valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scripts/setup.sh
source bench/lib.sh
need_packages valgrind
cargo build --release --locked -p berth-agent -p berth-cli
bin=${CARGO_TARGET_DIR:-$root/target}/release
work=$(mktemp -d /tmp/berth-order.XXXXXX)
trap 'kill "${agent_pid:-}" 2>/dev/null || true; sleep 1; rm -rf "$work"' EXIT
busybox_image "$work"
valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/cg.out" \
  "$bin/berth-agent" --root "$work/root" --listen "unix://$work/berth.sock" \
  --docker-listen "unix://$work/docker.sock" 2>"$work/agent.log" &
agent_pid=$!
for _ in $(seq 240); do [[ -S $work/berth.sock ]] && break; sleep 0.5; done
export BERTH_HOST=unix://$work/berth.sock
b=$bin/berth
docker_api() { curl -s --unix-socket "$work/docker.sock" "http://berth$1" >/dev/null; }
{
  id=$($b load -i "$work/bb-oci.tar" | awk '{print $NF}')
  $b tag "$id" bb
  $b images; $b image inspect bb; $b history bb
  for i in 1 2 3; do $b run -d --name "c$i" bb sleep 600; done
  $b run -d --network none --name n1 bb sleep 600
  for i in $(seq 4 12); do $b run -d --name "c$i" bb sleep 600; done
  $b ps; $b ps -a --no-trunc; $b ps -q; $b ps --format '{{.Names}} {{.Status}}'
  $b ps -q --filter status=running; $b ps -q --no-trunc --filter name=c --format '{{.ID}}'
  $b inspect c1; $b inspect -f '{{.State.Status}}' c1
  $b inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' c1 c2
  $b stop -t 1 c4 c5 c6 c7 c8 c9; $b rm c4 c5 c6 c7 c8 c9; $b rm -f c10 c11 c12
  $b run -d --name w1 bb sleep 1; $b wait w1; $b rm w1
  calls=()
  for _ in 1 2 3; do
    $b run --rm bb true & calls+=($!)
    $b exec c1 true & calls+=($!)
    $b logs c1 & calls+=($!)
    $b ps -q & calls+=($!)
  done
  wait "${calls[@]}"
  $b run --rm bb echo hi; $b run --rm --network none bb true; $b run --rm bb sh -c 'exit 3'
  $b run -d --name l1 bb sh -c 'for i in 1 2 3; do echo line $i; done'
  sleep 2; $b logs l1; $b logs -t --tail 1 l1
  $b exec c1 ls /; $b exec c1 sh -c 'echo out; echo err >&2'; echo | $b exec -i c1 cat
  $b top c1; $b stats --no-stream; $b port c1
  $b stop -t 1 c2; $b start c2; $b restart -t 1 c3; $b kill c3; $b wait c3
  $b cp c1:/etc/passwd "$work/passwd"; $b cp "$work/passwd" c1:/tmp/passwd; $b diff c1
  $b volume create v1; $b volume ls; $b volume inspect v1
  $b run --rm -v v1:/data bb sh -c 'echo x > /data/f'
  $b network create n1net; $b network ls; $b network inspect n1net
  $b run --rm --network n1net bb true
  $b rename l1 l2; $b pause c1; $b unpause c1
  $b system df; $b info; $b version
  timeout 2 "$b" events --since 0s
  $b commit c1 snap:1; $b tag snap:1 snap:2; $b rmi snap:2
  $b rm -f c1 c2 c3 n1 l2; $b volume rm v1; $b network rm n1net; $b rmi snap:1
  $b container prune -f; $b image prune -f; $b volume prune -f; $b network prune -f
  for path in /_ping /v1.51/containers/json /version /info /images/json; do docker_api "$path"; done
} >"$work/workload.log" 2>&1 || true
kill -INT "$agent_pid"
wait "$agent_pid" 2>/dev/null || true
agent_pid=
# The agent's own functions (as its symbol table names them), first run first.
nm "$bin/berth-agent" | awk 'NF == 3 && $2 ~ /[tT]/ {print $3}' >"$work/symbols"
python3 - "$work/cg.out" "$work/symbols" >"$work/order" <<'EOP'
import re, sys
symbols = set(open(sys.argv[2]).read().split())
names, objects, seen, current = {}, {}, set(), ""
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"^(ob|cob|fn|cfn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
    if not m:
        continue
    kind, idx, name = m.groups()
    table = objects if kind in ("ob", "cob") else names
    if name is not None:
        table[idx] = name
    if kind == "ob":
        current = objects[idx]
    elif kind == "fn" and current.endswith("berth-agent"):
        n = names[idx]
        if n in symbols and n not in seen:
            seen.add(n)
            print(n)
EOP
# A profile of a workload that did not run (the agent did not start, the
# image did not load) is a few dozen functions: keep the list there is.
count=$(wc -l <"$work/order")
if ((count < 1000)); then
  echo "only $count functions ran (see the workload's output above): link-order.txt left as it was" >&2
  tail -20 "$work/workload.log" >&2
  exit 1
fi
mv "$work/order" guest-agent/link-order.txt
echo "guest-agent/link-order.txt: $count functions"

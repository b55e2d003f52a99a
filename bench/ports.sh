#!/usr/bin/env bash
# Port-forwarding throughput: bulk TCP into a container's published port, against a
# direct loopback connection on the same machine (the floor Berth is measured on).
#
#   direct   tcp-throughput send 127.0.0.1:P  ->  a sink on the host's loopback
#   -p       tcp-throughput send 127.0.0.1:H  ->  nftables DNAT  ->  the sink in the container
#   relay    the Ports.Relay gRPC stream through the agent's Unix socket (what a VM's
#            host uses to publish container ports on its own localhost)
#
# The sink runs in the container's network namespace (nsenter), as a server in the
# container would. Median of RUNS transfers of MIB mebibytes each; prints ratios.
# Usage: bench/ports.sh [RUNS] [MIB]   (defaults 5 and 1024). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
mib=${2:-1024}
root=$PWD
work=$(mktemp -d /tmp/berth-pbench.XXXXXX)

scripts/setup.sh
cargo build --release --locked -p berth-agent -p berth-cli -p berth-bench
bin=$root/target/release
tt=$bin/tcp-throughput

cleanup() {
  [[ -n "${agent_pid:-}" ]] && { "$bin/berth" rm -f pb >/dev/null 2>&1 || true; kill "$agent_pid" 2>/dev/null || true; }
  [[ -n "${sinks:-}" ]] && kill $sinks 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT

source bench/lib.sh
busybox_image "$work"
start_agent "$bin" "$work"

"$bin/berth" run -d --name pb -p 127.0.0.1::9000 bb sleep 3600 >/dev/null
pid=$("$bin/berth" inspect -f '{{.State.Pid}}' pb)
hport=$("$bin/berth" port pb 9000 | cut -d: -f2)
nsenter --net="/proc/$pid/ns/net" "$tt" sink 0.0.0.0:9000 & sinks="$!"
dport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$tt" sink "127.0.0.1:$dport" & sinks="$sinks $!"
sleep 0.3

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
measure() { for _ in $(seq "$runs"); do "$@"; done | median; }
echo "bench: TCP throughput into a container, $mib MiB per transfer, median of $runs"
direct=$(measure "$tt" send "127.0.0.1:$dport" "$mib")
published=$(measure "$tt" send "127.0.0.1:$hport" "$mib")
relay=$(measure "$tt" relay-send "$host" pb 9000 "$mib")
python3 - "$direct" "$published" "$relay" <<'EOP'
import sys
d, p, r = map(float, sys.argv[1:])
print(f"  direct loopback      {d:8.1f} MiB/s")
print(f"  published port (-p)  {p:8.1f} MiB/s   {p/d:5.2f} of direct")
print(f"  Ports relay (gRPC)   {r:8.1f} MiB/s   {r/d:5.2f} of direct")
EOP

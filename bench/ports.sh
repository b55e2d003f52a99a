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
#
# Through the VM (QEMU TCG): bench/ports.sh vm [RUNS] [MIB]  (defaults 5 and 64)
#   raw vsock   the agent's SINK and ECHO probes on its relay port: the transport alone
#   published   a published port (the raw relay, one vsock connection per connection)
#               into a container's `nc -e dd` sink and echo
#   plus a 1-byte round trip through the published port (median of 200).
#   The guest image: BERTH_VM_IMAGE, else target/vm-image (built when missing); the
#   CLI: BERTH, else target/release/berth (built).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ${1:-} == vm ]]; then
  runs=${2:-5}
  mib=${3:-64}
  root=$PWD
  work=$(mktemp -d /tmp/berth-pbench.XXXXXX)
  scripts/setup.sh
  [[ -n ${BERTH:-} ]] || cargo build --release --locked -p berth-cli
  image=${BERTH_VM_IMAGE:-$root/target/vm-image}
  [[ -f $image/manifest.json ]] || scripts/build-vm-image.sh "$image"
  berth=${BERTH:-$root/target/release/berth}
  vmdir=$work/vm
  trap '"$berth" vm stop --dir "$vmdir" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
  source bench/lib.sh
  busybox_image "$work"
  "$berth" vm start --dir "$vmdir" --image "$image" --accel tcg --memory 1024 --network none >/dev/null
  export BERTH_HOST
  BERTH_HOST=$("$berth" vm status --dir "$vmdir" --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["endpoint"])')
  "$berth" load -i "$work/bb-oci.tar" >/dev/null
  sink=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  echo_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  # dd with 1 MiB blocks: busybox's cat and wc move 4 KiB per system call,
  # which under TCG is slower than the relay being measured.
  "$berth" run -d --name sink -p "$sink:9" bb nc -ll -p 9 -e sh -c 'dd of=/dev/null bs=1M 2>/dev/null; echo done' >/dev/null
  "$berth" run -d --name echo -p "$echo_port:7" bb nc -ll -p 7 -e dd bs=1M >/dev/null
  echo "bench: through the VM (QEMU TCG), $mib MiB per transfer, median of $runs; load $(cut -d' ' -f1-3 /proc/loadavg)"
  vsock=${BERTH_HOST#hybrid-vsock://}
  vsock=${vsock%%\?*}
  python3 - "$vsock" "$sink" "$echo_port" "$runs" "$mib" <<'EOP'
import socket, statistics, sys, threading, time
vsock, sink, echo, runs, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
total = mib << 20
chunk = b"\x5a" * (256 << 10)

def line(s):
    out = b""
    while not out.endswith(b"\n"):
        b = s.recv(1)
        if not b:
            break
        out += b
    return out.decode().strip()

def raw(ask):
    s = socket.socket(socket.AF_UNIX)
    s.connect(vsock)
    s.sendall(b"CONNECT 1025\n")
    assert line(s).startswith("OK"), "hybrid vsock refused"
    s.sendall(ask.encode() + b"\n")
    assert line(s) == "OK", ask
    return s

def published(port):
    for _ in range(150):
        try:
            s = socket.create_connection(("127.0.0.1", port))
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(b"p")
            if port == echo:
                assert s.recv(1) == b"p"
                return s
            s.close()
            return socket.create_connection(("127.0.0.1", port))
        except (OSError, AssertionError):
            time.sleep(0.2)
    raise SystemExit(f"port {port} never answered")

def one_way(s):
    t = time.monotonic()
    for _ in range(total // len(chunk)):
        s.sendall(chunk)
    s.shutdown(socket.SHUT_WR)
    got = line(s)
    assert got in ("done", str(total)), (got, total)
    return mib / (time.monotonic() - t)

def both_ways(s):
    t = time.monotonic()
    def send():
        for _ in range(total // len(chunk)):
            s.sendall(chunk)
        s.shutdown(socket.SHUT_WR)
    w = threading.Thread(target=send)
    w.start()
    n = 0
    while True:
        b = s.recv(1 << 20)
        if not b:
            break
        n += len(b)
    w.join()
    assert n == total, (n, total)
    return mib / (time.monotonic() - t)

def med(f):
    return statistics.median(f() for _ in range(runs))

raw_one = med(lambda: one_way(raw("SINK")))
pub_one = med(lambda: one_way(published(sink)))
raw_both = med(lambda: both_ways(raw("ECHO")))
pub_both = med(lambda: both_ways(published(echo)))
s = published(echo)
rtts = []
for _ in range(200):
    t = time.monotonic()
    s.sendall(b"x")
    assert s.recv(1) == b"x"
    rtts.append((time.monotonic() - t) * 1000)
print(f"  raw vsock, one way              {raw_one:8.1f} MiB/s")
print(f"  published port, one way         {pub_one:8.1f} MiB/s   {pub_one/raw_one:5.2f} of raw vsock")
print(f"  raw vsock, each way at once     {raw_both:8.1f} MiB/s")
print(f"  published port, each way        {pub_both:8.1f} MiB/s   {pub_both/raw_both:5.2f} of raw vsock")
print(f"  published port, 1-byte round trip  median {statistics.median(rtts):.2f} ms, p99 {sorted(rtts)[197]:.2f} ms")
EOP
  exit 0
fi
runs=${1:-5}
mib=${2:-1024}
root=$PWD
work=$(mktemp -d /tmp/berth-pbench.XXXXXX)

scripts/setup.sh
cargo build --release --locked -p berth-agent -p berth-cli -p berth-bench
bin=${CARGO_TARGET_DIR:-$root/target}/release
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

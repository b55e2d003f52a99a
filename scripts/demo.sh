#!/usr/bin/env bash
# Berth's main job end to end, offline: build, start the agent, start a
# local registry holding a small busybox image made on the spot, then pull
# it with `berth` and show it. Leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked -p berth-agent -p berth-cli
bin=$PWD/target/release
work=$(mktemp -d /tmp/berth-demo.XXXXXX)
cleanup() {
  if [[ -n "${agent_pid:-}" ]]; then
    "$bin/berth" ps -aq --no-trunc 2>/dev/null | xargs -r "$bin/berth" rm -f >/dev/null 2>&1 || true
    kill "$agent_pid" 2>/dev/null || true
  fi
  [[ -n "${registry_pid:-}" ]] && kill "$registry_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 5123)
cat >"$work/registry.yml" <<EOC
version: 0.1
storage: { filesystem: { rootdirectory: $work/registry } }
http: { addr: "127.0.0.1:$port" }
EOC
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!

echo "== building a busybox image (umoci) and pushing it to the local registry (skopeo)"
umoci init --layout "$work/layout" >/dev/null
umoci new --image "$work/layout:latest" >/dev/null
umoci unpack --image "$work/layout:latest" "$work/bundle" >/dev/null
mkdir -p "$work/bundle/rootfs/bin"
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
for applet in sh ls cat echo env hostname sleep ps id httpd wget mkdir; do ln -s busybox "$work/bundle/rootfs/bin/$applet"; done
umoci repack --image "$work/layout:latest" "$work/bundle" >/dev/null
umoci config --image "$work/layout:latest" --config.cmd /bin/sh --config.env PATH=/bin >/dev/null
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
skopeo copy -q "oci:$work/layout:latest" "docker://127.0.0.1:$port/demo/busybox:latest" --dest-tls-verify=false

echo "== starting berth-agent"
"$bin/berth-agent" --root "$work/root" --listen "unix://$work/berth.sock" 2>"$work/agent.log" &
agent_pid=$!
export BERTH_HOST="unix://$work/berth.sock"
for _ in $(seq 100); do [[ -S "$work/berth.sock" ]] && break; sleep 0.05; done

echo "== berth pull 127.0.0.1:$port/demo/busybox"
"$bin/berth" pull "127.0.0.1:$port/demo/busybox"
echo "== berth images"
"$bin/berth" images
echo "== berth image inspect (config)"
"$bin/berth" image inspect "127.0.0.1:$port/demo/busybox" | grep -A4 '"Cmd"'
echo "== berth save | berth rmi | berth load"
"$bin/berth" save -o "$work/busybox.tar" "127.0.0.1:$port/demo/busybox"
"$bin/berth" rmi "127.0.0.1:$port/demo/busybox"
"$bin/berth" load -i "$work/busybox.tar"
"$bin/berth" system df
img=127.0.0.1:$port/demo/busybox
echo "== berth run --rm $img sh -c 'echo hello from \$(hostname); id'"
"$bin/berth" run --rm "$img" sh -c 'echo hello from $(hostname); id'
echo "== berth run -d --name web -m 64m --pids-limit 50 $img sh -c 'while true; do echo tick; sleep 1; done'"
"$bin/berth" run -d --name web -m 64m --pids-limit 50 "$img" sh -c 'while true; do echo tick; sleep 1; done'
"$bin/berth" ps
echo "== berth exec web ps"
"$bin/berth" exec web ps
sleep 1
echo "== berth logs web"
"$bin/berth" logs web
echo "== berth stop web; berth rm web"
"$bin/berth" stop -t 1 web
"$bin/berth" rm web
echo "== a web server on a user network, with a named volume and a published port"
"$bin/berth" network create demo-net
"$bin/berth" volume create demo-site
"$bin/berth" run --rm -v demo-site:/www "$img" sh -c 'echo hello from a volume > /www/index.html'
"$bin/berth" run -d --name site --network demo-net -v demo-site:/www -p 127.0.0.1::80 "$img" httpd -f -p 80 -h /www
"$bin/berth" port site
echo "== another container reaches it by name"
"$bin/berth" run --rm --network demo-net "$img" sh -c 'for i in 1 2 3 4 5; do wget -q -O - http://site/ && break; sleep 0.2; done'
echo "== the host reaches it through the published port"
hport=$("$bin/berth" port site 80 | cut -d: -f2)
curl -fsS "http://127.0.0.1:$hport/"
echo "== berth exec site: change it, then berth diff and berth commit"
"$bin/berth" exec site sh -c 'echo committed > /motd'
"$bin/berth" diff site
"$bin/berth" commit -c 'CMD ["cat", "/motd"]' site demo/site:v1
"$bin/berth" run --rm demo/site:v1
"$bin/berth" rm -f site
"$bin/berth" network rm demo-net
"$bin/berth" volume rm demo-site
echo "== done: Berth pulled, stored, saved and loaded an image, ran containers from it, networked them, kept data in a volume and committed a change"

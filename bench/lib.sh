# Shared by the bench scripts (sourced): Debian's peers, a busybox image and a
# Berth agent.

# need_packages PKG...: installs those of Debian's packages that are missing.
need_packages() {
  local need=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
  done
  if ((${#need[@]})); then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
}

# busybox_image WORK: a static busybox with its applets as an OCI layout, then
# as WORK/bb-oci.tar and WORK/bb-docker.tar (image bb:latest); WORK/rootfs
# holds the same tree.
busybox_image() {
  local work=$1
  mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/tmp" "$work/rootfs/proc" "$work/rootfs/sys" "$work/rootfs/dev"
  cp /bin/busybox "$work/rootfs/bin/"
  for a in $(/bin/busybox --list); do [[ $a == busybox ]] || ln -sf busybox "$work/rootfs/bin/$a"; done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$work/rootfs/etc/passwd"
  tar -C "$work/rootfs" --numeric-owner -cf "$work/layer.tar" .
  umoci init --layout "$work/layout" >/dev/null
  umoci new --image "$work/layout:latest" >/dev/null
  umoci raw add-layer --image "$work/layout:latest" "$work/layer.tar" >/dev/null
  umoci config --image "$work/layout:latest" --config.cmd sh --config.env PATH=/bin >/dev/null
  skopeo copy -q "oci:$work/layout:latest" "oci-archive:$work/bb-oci.tar:bb:latest"
  skopeo copy -q "oci:$work/layout:latest" "docker-archive:$work/bb-docker.tar:bb:latest"
}

# true_bundle WORK: an OCI bundle at WORK/bundle running `true` in a copy of
# WORK/rootfs (busybox_image's tree), writable, without a terminal, for
# `runc run` and `crun run`.
true_bundle() {
  local work=$1
  mkdir -p "$work/bundle"
  cp -a "$work/rootfs" "$work/bundle/rootfs"
  (cd "$work/bundle" && runc spec && python3 - <<'EOP'
import json
s = json.load(open("config.json"))
s["process"]["terminal"] = False
s["process"]["args"] = ["true"]
s["root"]["readonly"] = False
json.dump(s, open("config.json", "w"))
EOP
  )
}

# start_agent BIN WORK: starts BIN/berth-agent on WORK/berth.sock (sets
# agent_pid, host and BERTH_HOST) and loads WORK/bb-oci.tar as bb.
start_agent() {
  local bin=$1 work=$2
  host=unix://$work/berth.sock
  "$bin/berth-agent" --root "$work/berth" --listen "$host" 2>"$work/agent.log" &
  agent_pid=$!
  for _ in $(seq 100); do [[ -S $work/berth.sock ]] && break; sleep 0.02; done
  export BERTH_HOST=$host
  local id
  id=$("$bin/berth" load -i "$work/bb-oci.tar" | awk '{print $NF}')
  "$bin/berth" tag "$id" bb >/dev/null
}

# debian_image WORK: a Debian 12 minbase made with debootstrap (from the
# package mirror apt uses), kept in /var/cache/berth-bench (made once, about
# a minute; reused while present) as WORK/debian-layout:latest, an OCI
# layout of one layer. Returns 1, after saying why, when debootstrap cannot
# be installed or cannot reach the mirror.
debian_image() {
  local work=$1 cache=/var/cache/berth-bench
  local rootfs=$cache/bookworm-minbase layout=$cache/bookworm-layout
  if [[ ! -f $layout/.done ]]; then
    if ! need_packages debootstrap 2>"$work/debootstrap.log"; then
      echo "bench: debootstrap could not be installed (see $work/debootstrap.log)"
      return 1
    fi
    if [[ ! -f $rootfs/.done ]]; then
      local mirror
      mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
      mirror=${mirror:-$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)}
      mirror=${mirror:-http://deb.debian.org/debian}
      echo "bench: debootstrap --variant=minbase bookworm from $mirror (once, into $rootfs)"
      rm -rf "$rootfs"
      mkdir -p "$cache"
      if ! debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >>"$work/debootstrap.log" 2>&1; then
        echo "bench: debootstrap could not reach $mirror (see $work/debootstrap.log)"
        rm -rf "$rootfs"
        return 1
      fi
      touch "$rootfs/.done"
    fi
    # (set -e does not reach into a function called as a condition: each
    # step is checked.)
    rm -rf "$layout" "$cache/bookworm-layer.tar"
    if ! { tar -C "$rootfs" --numeric-owner --exclude=./.done -cf "$cache/bookworm-layer.tar" . &&
      umoci init --layout "$layout" >/dev/null &&
      umoci new --image "$layout:latest" >/dev/null &&
      umoci raw add-layer --image "$layout:latest" "$cache/bookworm-layer.tar" >/dev/null &&
      umoci config --image "$layout:latest" --config.cmd bash \
        --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin >/dev/null; }; then
      echo "bench: the Debian image could not be made from $rootfs"
      rm -rf "$layout" "$cache/bookworm-layer.tar"
      return 1
    fi
    rm -f "$cache/bookworm-layer.tar"
    touch "$layout/.done"
  fi
  rm -rf "$work/debian-layout"
  cp -a "$layout" "$work/debian-layout" || return 1
}

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

#!/usr/bin/env bash
# Berth Desktop's figures, under Xvfb against a real agent holding N
# containers (default 50, running `sleep`):
#   - start: app start to its first painted container list (the app logs
#     the time when the UI has painted it);
#   - memory: resident memory of the app plus its WebKit processes, idle;
#   - idle CPU: CPU time of those processes over 10 s of doing nothing,
#     split between the app, its WebKit processes and the agent; then
#     again once every container is stopped (no stats stream at all).
#     Measured 2026-12-07, 50 running, desktop profile, debug agent, the
#     builds before and after back to back at load 3.2-3.4: 17.7% of one
#     core (web process 12.6%, app 5.1%; agent 20.1%) with a stream per
#     row in the DOM each repainting once a second, 1.5% (0.9%, 0.6%;
#     agent 15.2%) with batches every 3 s for the rows in view only; with
#     no container running 0.2-0.4% either way. The agent's share is its
#     sampling: each sample opens a cgroup manager, which parses
#     /proc/self/mountinfo (release agent: 8.9% for 19 streams).
#   - a state change: CHANGES times (default 6) a container is killed or
#     started with the CLI, and the app (with BERTH_DESKTOP_TIMINGS=1) logs
#     when the list showing its new state was painted, after the engine's
#     event and after the app heard it, and when the engine's whole list
#     asked for after the event was. N=500 measures the virtualized list.
#   - with VARIANTS (e.g. VARIANTS="all env settings"), the idle memory of
#     the app again with each part of its WebKit tuning switched off
#     (BERTH_DESKTOP_WEBKIT_DEFAULTS=VARIANT, see src-tauri/src/webkit.rs:
#     `all` is WebKit's defaults), for comparison.
# Usage: bench/desktop.sh [APP] (default target/desktop/berth-desktop, as
# scripts/build-desktop.sh builds it). Needs root, Xvfb, and berth and
# berth-agent in BIN (default target/debug). N sets the container count.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
target=${CARGO_TARGET_DIR:-target}
app=$(realpath "${1:-$target/desktop/berth-desktop}")
bin=$(realpath "${BIN:-target/debug}")
n=${N:-50}
work=$(mktemp -d)
cleanup() {
  [[ -n ${xvfb_pid:-} ]] && kill "$xvfb_pid" 2>/dev/null
  [[ -n ${bus_pid:-} ]] && kill "$bus_pid" 2>/dev/null
  if [[ -n ${agent_pid:-} ]]; then
    "$bin/berth" rm -f $("$bin/berth" ps -aq) >/dev/null 2>&1 || true
    kill "$agent_pid" 2>/dev/null; wait "$agent_pid" 2>/dev/null || true
  fi
  grep -o " $work[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

busybox_image "$work" >/dev/null
start_agent "$bin" "$work"
for i in $(seq "$n"); do
  "$bin/berth" run -d --network none --name "bench-$i" bb sleep 3600 >/dev/null
done

# A display of our own.
disp=:$((90 + RANDOM % 100))
Xvfb "$disp" -screen 0 1280x800x24 >/dev/null 2>&1 &
xvfb_pid=$!
# ... and a session bus, as every desktop session has: without one, GLib
# (the app's accessibility bridge, WebKit) tries to autolaunch a bus with
# dbus-launch a hundred times at start (measured here: 0.15-0.2 s of the
# start).
if [[ -z ${DBUS_SESSION_BUS_ADDRESS:-} ]]; then
  bus=$(dbus-daemon --session --fork --print-address=1 --print-pid=1)
  export DBUS_SESSION_BUS_ADDRESS=${bus%%$'\n'*}
  bus_pid=${bus##*$'\n'}
fi
sleep 0.5

# Descendants of a pid (the app's WebKit processes), with the pid itself.
tree() {
  local p=$1
  echo "$p"
  for c in $(pgrep -P "$p"); do tree "$c"; done
}
rss_kib() { local t=0 p; for p in "$@"; do t=$((t + $(awk '/VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0))); done; echo "$t"; }
pss_kib() { local t=0 p; for p in "$@"; do t=$((t + $(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0))); done; echo "$t"; }
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo "$t"; }
# idle PIDS...: the CPU those processes and the agent use over 10 s, as a
# percentage of one core, in total and by process name (comm; the
# agent is `agent`, counted apart from the total).
idle() {
  local p hz before after line
  hz=$(getconf CLK_TCK)
  declare -A before after
  for p in "$@" "$agent_pid"; do before[$p]=$(ticks "$p"); done
  sleep 10
  for p in "$@" "$agent_pid"; do after[$p]=$(ticks "$p"); done
  local total=0 d
  declare -A by
  for p in "$@"; do
    d=$((after[$p] - before[$p]))
    total=$((total + d))
    local name
    name=$(cat "/proc/$p/comm" 2>/dev/null || echo gone)
    by[$name]=$((${by[$name]:-0} + d))
  done
  by[agent]=$((after[$agent_pid] - before[$agent_pid]))
  line=$(awk -v d="$total" -v hz="$hz" 'BEGIN{printf "%.2f%% of one core (%d ticks)", d * 100 / (10 * hz), d}')
  for p in "${!by[@]}"; do
    line+=$(awk -v n="$p" -v d="${by[$p]}" -v hz="$hz" 'BEGIN{printf "; %s %.2f%%", n, d * 100 / (10 * hz)}')
  done
  echo "$line"
}

export BERTH_DESKTOP_TIMINGS=1
starts=()
for run in 1 2 3; do
  DISPLAY=$disp "$app" 2>"$work/app.log" &
  app_pid=$!
  for _ in $(seq 300); do grep -q "painted" "$work/app.log" && break; sleep 0.05; done
  ms=$(grep -o "painted [0-9]* ms" "$work/app.log" | awk '{print $2}')
  [[ -n $ms ]] || { echo "the app did not paint its list:"; cat "$work/app.log"; exit 1; }
  starts+=("$ms")
  if ((run < 3)); then kill "$app_pid"; wait "$app_pid" 2>/dev/null || true; fi
done
sleep 5 # settle
pids=($(tree "$app_pid"))
names=$(for p in "${pids[@]}"; do cat "/proc/$p/comm"; done | sort | uniq -c | tr -s ' \n' ' ')
mem=$(rss_kib "${pids[@]}")
pss=$(pss_kib "${pids[@]}")
idle_cpu=$(idle "${pids[@]}")
load=$(uptime)

# State changes: kill a running container, then start it again; each
# time, wait for the app's line saying the list showing it was painted.
changes=()
heard=()
refresh=()
seen=$(grep -c "change painted" "$work/app.log" || true)
for k in $(seq "${CHANGES:-6}"); do
  c=bench-$(((k + 1) / 2))
  if ((k % 2)); then "$bin/berth" kill "$c" >/dev/null; else "$bin/berth" start "$c" >/dev/null; fi
  for _ in $(seq 200); do
    (($(grep -c "change painted" "$work/app.log" || true) > seen)) && break
    sleep 0.025
  done
  sleep 0.5 # the change's later events (die after kill) paint too
  lines=$(grep "change painted" "$work/app.log" | tail -n +$((seen + 1)))
  seen=$(grep -c "change painted" "$work/app.log" || true)
  refresh+=("$(grep "list refresh painted" "$work/app.log" | tail -1 | grep -o "painted [0-9.]* ms" | awk '{print $2}')")
  [[ -n $lines ]] || { echo "the app did not paint change $k:"; tail "$work/app.log"; exit 1; }
  changes+=("$(echo "$lines" | grep -o "painted [0-9.]* ms" | awk '{print $2}' | sort -n | tail -1)")
  heard+=("$(echo "$lines" | grep -o "([0-9.]* ms" | tr -d '(' | awk '{print $1}' | sort -n | tail -1)")
done
# Idle again with no container running: no stats stream, no timer.
"$bin/berth" kill $("$bin/berth" ps -q) >/dev/null 2>&1 || true
sleep 5
pids=($(tree "$app_pid"))
idle_stopped=$(idle "${pids[@]}")
kill "$app_pid"; wait "$app_pid" 2>/dev/null || true

# The idle memory with part of the WebKit tuning switched off.
variants=()
for v in ${VARIANTS:-}; do
  BERTH_DESKTOP_WEBKIT_DEFAULTS=$v DISPLAY=$disp "$app" 2>"$work/app.log" &
  app_pid=$!
  for _ in $(seq 300); do grep -q "painted" "$work/app.log" && break; sleep 0.05; done
  sleep 5
  vp=($(tree "$app_pid"))
  variants+=("$v: $(($(rss_kib "${vp[@]}") / 1024)) MiB resident, $(($(pss_kib "${vp[@]}") / 1024)) MiB Pss")
  kill "$app_pid"; wait "$app_pid" 2>/dev/null || true
done

echo "app: $app"
echo "containers: $n running"
echo "start to first painted container list: ${starts[*]} ms (3 cold-ish starts)"
echo "memory, idle: $((mem / 1024)) MiB resident (VmRSS summed; shared libraries counted in each), $((pss / 1024)) MiB proportional (Pss) (processes:$names)"
for v in "${variants[@]}"; do echo "memory, idle, BERTH_DESKTOP_WEBKIT_DEFAULTS=$v"; done
echo "a state change painted after its event (kill, start, …; the slowest paint of each): ${changes[*]} ms; after the app heard it: ${heard[*]} ms"
echo "the engine's list of $n painted after the event (the last of each change): ${refresh[*]} ms"
echo "idle CPU over 10 s: $idle_cpu"
echo "idle CPU over 10 s, no container running: $idle_stopped"
echo "load during the idle measurement: $load"

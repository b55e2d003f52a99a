#!/usr/bin/env bash
# Where a `run --rm --network none bb true` spends its time, phase by phase,
# beside `crun run` of the same busybox rootfs (issue 22, item 2: Berth's run
# against crun's). The kernel's own trace points time each phase (perf record
# of process fork/exec/exit, cgroup attach, mount and pivot_root, system-wide),
# so nothing is instrumented and every process of a run is seen: the CLI, the
# agent's fork of the container's monitor, the monitor's overlay mount, its
# create helper, libcontainer's intermediate and init processes, the
# container's command and the exits after it. Prints each phase's median over
# RUNS runs and crun's phases the same way.
#
# Usage: bench/phases.sh [RUNS]   (default 30). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-30}
root=$PWD
work=$(mktemp -d /tmp/berth-phases.XXXXXX)

scripts/setup.sh
source bench/lib.sh
need_packages crun runc linux-perf
cargo build --release --locked -p berth-agent -p berth-cli
bin=${CARGO_TARGET_DIR:-$root/target}/release

cleanup() {
  [[ -n "${agent_pid:-}" ]] && kill "$agent_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT

busybox_image "$work"
start_agent "$bin" "$work"
"$bin/berth" run --rm --network none bb true # the image's layer is unpacked once

true_bundle "$work"

events=sched:sched_process_fork,sched:sched_process_exec,sched:sched_process_exit,cgroup:cgroup_attach_task
events+=,syscalls:sys_enter_pivot_root,syscalls:sys_enter_mount,syscalls:sys_exit_mount
record() { # name, command (run RUNS times under one recording)
  perf record -q -a -o "$work/$1.data" -e "$events" -- sh -c "for i in \$(seq $runs); do $2; done" >/dev/null 2>&1
  perf script -i "$work/$1.data" -F comm,pid,tid,time,event,trace >"$work/$1.txt" 2>/dev/null
}
record berth "$bin/berth run --rm --network none bb true"
# crun refuses hybrid cgroups; in its own mount namespace the cgroup2 mount is
# masked (as bench/containers.sh runs it).
record crun "unshare -m sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; cd $work/bundle && exec crun run phases-\$\$ >/dev/null'"

echo "bench: phases of run --rm true, medians of $runs runs (load: $(cut -d' ' -f1-3 /proc/loadavg))"
python3 - "$work/berth.txt" "$work/crun.txt" "$bin/berth" <<'EOP'
import re, statistics, sys

def events(path):
    for line in open(path):
        m = re.match(r"\s*(.+?)\s+(\d+)/(\d+)\s+([\d.]+):\s+(\S+):\s*(.*)", line)
        if m:
            comm, pid, tid, t, ev, rest = m.groups()
            yield comm, int(pid), int(tid), float(t) * 1000, ev, rest

def runs(path, starts, marks):
    """Splits a recording into runs at `starts` and notes each mark's first time."""
    out, cur = [], None
    for comm, pid, tid, t, ev, rest in events(path):
        if starts(comm, ev, rest):
            cur = {"start": t}
            out.append(cur)
            continue
        if cur is None:
            continue
        for name, test in marks:
            if name not in cur and test(comm, pid, tid, ev, rest):
                cur[name] = t
                break
    return out

def show(title, rs, order, labels):
    ok = [r for r in rs if all(k in r for k in order)]
    print(f"  {title}: {len(ok)} of {len(rs)} runs complete")
    for (a, b), label in zip(zip(order, order[1:]), labels):
        d = [r[b] - r[a] for r in ok]
        if d:
            print(f"    {label:58} {statistics.median(d):6.2f} ms")
    if ok:
        total = [r[order[-1]] - r[order[0]] for r in ok]
        print(f"    {'total':58} {statistics.median(total):6.2f} ms")
    return ok

berth_bin = sys.argv[3]
exec_of = lambda name: (lambda c, p, t, ev, r: ev == "sched:sched_process_exec" and name in r)
b = runs(
    sys.argv[1],
    lambda c, ev, r: ev == "sched:sched_process_exec" and f"filename={berth_bin} " in r + " ",
    [
        ("monitor", exec_of("berth-monitor")),
        ("mount_out", lambda c, p, t, ev, r: ev == "syscalls:sys_exit_mount" and c == "berth-monitor"),
        ("helper", exec_of("berth-create")),
        ("inter", lambda c, p, t, ev, r: ev == "sched:sched_process_fork" and c == "berth-create"),
        ("cgroup", lambda c, p, t, ev, r: ev == "cgroup:cgroup_attach_task"),
        ("init", lambda c, p, t, ev, r: ev == "sched:sched_process_fork" and "INTER" in c),
        ("pivot", lambda c, p, t, ev, r: ev == "syscalls:sys_enter_pivot_root"),
        ("command", exec_of("filename=/bin/true")),
        ("command_exit", lambda c, p, t, ev, r: ev == "sched:sched_process_exit" and c == "true"),
        ("monitor_exit", lambda c, p, t, ev, r: ev == "sched:sched_process_exit" and c == "berth-monitor" and p == t and "group_dead=true" in r),
        ("cli_exit", lambda c, p, t, ev, r: ev == "sched:sched_process_exit" and c == "berth"),
    ],
)
show("berth run --rm --network none bb true", b,
     ["start", "monitor", "mount_out", "helper", "inter", "cgroup", "init", "pivot", "command", "command_exit", "monitor_exit", "cli_exit"],
     ["CLI start, create and start requests, agent forks the monitor",
      "monitor: setup and the container's overlay mount",
      "monitor starts the create helper (berth-create)",
      "helper: libcontainer's builder, until it clones",
      "intermediate process: namespaces, then the cgroup join",
      "cgroup join, then the container's init is cloned",
      "init: mounts before pivot_root",
      "init: the rest of the root, seccomp, start handshake, exec",
      "the command (true) runs",
      "monitor: output drained, cleanup, exit recorded",
      "agent records and removes; the CLI exits"])
c = runs(
    sys.argv[2],
    lambda c, ev, r: ev == "sched:sched_process_exec" and "filename=/usr/bin/unshare" in r,
    [
        ("crun", exec_of("/usr/bin/crun")),
        ("cgroup", lambda c, p, t, ev, r: ev == "cgroup:cgroup_attach_task"),
        ("pivot", lambda c, p, t, ev, r: ev == "syscalls:sys_enter_pivot_root"),
        ("command", exec_of("filename=/bin/true")),
        ("command_exit", lambda c, p, t, ev, r: ev == "sched:sched_process_exit" and c == "true"),
        ("crun_exit", lambda c, p, t, ev, r: ev == "sched:sched_process_exit" and c == "crun" and p == t and "group_dead=true" in r),
    ],
)
show("crun run (same rootfs, no overlay)", c,
     ["start", "crun", "cgroup", "pivot", "command", "command_exit", "crun_exit"],
     ["unshare and umount (the bench's own wrapper)",
      "crun: config, cgroup join",
      "mounts before pivot_root",
      "the rest of the root, exec",
      "the command (true) runs",
      "crun waits and exits"])
EOP

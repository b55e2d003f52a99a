#!/usr/bin/env bash
# The engine under load, release build (what users run): the load tests of
# tests/tests/load.rs at full size —
#   - 100 containers on the default bridge started, listed, stopped, removed, and the
#     agent's RSS with them running (target <= 15 MiB);
#   - 1,000 API calls from 16 clients at once (40% ps, 20% inspect, 20% logs,
#     10% run --rm, 10% exec), p50/p99 per kind (target p99 < 1 s), then 1,000
#     `run --rm` that must leave no mount, cgroup, namespace, veth, nftables rule,
#     descriptor or monitor behind, and the agent's RSS after (target <= 15 MiB);
#   - `berth wait` returning after a container's process exits, over 100 runs
#     (target: within 20 ms).
# CI runs the same tests smaller on the debug build.
#
# Usage: bench/load.sh [CLIENTS] [RUNS]   (default 16 1000). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked -p berth-agent -p berth-cli
BERTH_LOAD_CLIENTS=${1:-16} BERTH_LOAD_RUNS=${2:-1000} CI=true \
  cargo nextest run --release --locked -p berth-tests --test load --no-capture --no-fail-fast --test-threads 1 2>&1 |
  grep -E '^(100 containers|agent RSS|1000 calls|  [a-z -]+ +p50|wait after)|PASS|FAIL|panicked'

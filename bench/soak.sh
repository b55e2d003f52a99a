#!/usr/bin/env bash
# Crash soak: kill -9 of the agent at random moments while pulls (from a local registry),
# `run -d`, `run --rm`, `commit` and writes into a volume are in flight, then a restart on
# the same root, KILLS times. After every restart the test (tests/tests/soak.rs, which CI runs
# with 10 kills) checks that the store opens, every container whose `run -d` returned is
# listed, running ones still run and can be stopped and their logs read, every image reported
# pulled or committed re-hashes to its digests (`berth save`, and every blob in the store),
# nothing half-written is visible, and no monitor, helper, mount, cgroup, network namespace or
# veth exists that the agent does not know. Prints the kills, what clients were told
# succeeded, the leftovers found (must be 0) and the time.
#
# Usage: bench/soak.sh [KILLS] [SEED]   (default 50, a seed from the clock). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-50}
log=$(mktemp /tmp/berth-soak.XXXXXX.log)
trap 'rm -f "$log"' EXIT

scripts/setup.sh
cargo build --locked -p berth-agent -p berth-cli
cargo nextest --version >/dev/null 2>&1 || cargo install cargo-nextest --locked
start=$(date +%s%N)
status=0
env SOAK_KILLS="$kills" ${2:+SOAK_SEED="$2"} cargo nextest run -p berth-tests --test soak \
  --no-capture >"$log" 2>&1 || status=$?
took_ms=$((($(date +%s%N) - start) / 1000000))
grep '^soak: ' "$log" || true
summary=$(grep '^soak: [0-9]* kills' "$log" || true)
leftovers=$(sed -n 's/.*leftovers found: \([0-9]*\).*/\1/p' <<<"$summary")
echo
printf '%-34s %s\n' "kills" "$kills"
printf '%-34s %s\n' "seed" "$(sed -n 's/^soak: seed \([0-9]*\).*/\1/p' "$log")"
printf '%-34s %s\n' "told succeeded" "$(sed -n 's/.*told succeeded: \({[^}]*}\).*/\1/p' <<<"$summary")"
printf '%-34s %s\n' "adopted running containers" "$(sed -n 's/.*adopted across restarts: \([0-9]*\).*/\1/p' <<<"$summary")"
printf '%-34s %s\n' "cut starts stopped at restart" "$(sed -n 's/.*cut starts stopped: \([0-9]*\).*/\1/p' <<<"$summary")"
printf '%-34s %s\n' "frozen containers thawed" "$(sed -n 's/.*frozen containers thawed: \([0-9]*\).*/\1/p' <<<"$summary")"
printf '%-34s %s\n' "images verified" "$(sed -n 's/.*images verified: \([0-9]*\).*/\1/p' <<<"$summary")"
printf '%-34s %s\n' "leftovers found" "${leftovers:-?}"
printf '%-34s %s s (soak itself: %s)\n' "time" "$((took_ms / 1000)).$((took_ms % 1000 / 100))" \
  "$(sed -n 's/.*kills in \([0-9.]* s\).*/\1/p' <<<"$summary")"
if ((status != 0)); then
  echo "soak FAILED; the test's output:" >&2
  grep -v '^soak: kill ' "$log" | tail -60 >&2
  exit "$status"
fi

#!/usr/bin/env bash
# Rate-limit decision benchmarks, one run, printed as ratios against their peers:
#   memory limiter ns/decision over 10 000 keys vs the governor crate (target: within 2x);
#   Redis limiter decisions/s with 64 concurrent requests on one multiplexed connection vs a
#   bare EVALSHA loop of the same script, one decision per call (the limiter batches).
# Usage: bench/ratelimit.sh [criterion filter, e.g. redis]
#   (from anywhere; needs cargo, starts Redis if it is down)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services up
command -v python3 >/dev/null || {
  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3 >/dev/null
}

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
cargo bench -p palisade-store --bench ratelimit -- --noplot "$@" | tee "$out"

PAIRED="$(grep '^PAIRED ' "$out" || true)" python3 - <<'PY'
import json, os
root = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "criterion")

def ns(group, name):
    path = os.path.join(root, group, name, "new", "estimates.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        # The median resists the load spikes of a shared machine better than the mean.
        return json.load(f)["median"]["point_estimate"]

print()
print("rate-limit decisions (one run)")
print("  memory vs governor, alternating batches of 10k keys (same load for both):")
for line in os.environ.get("PAIRED", "").splitlines():
    _, name, ours, theirs = line.split()
    ours, theirs = float(ours), float(theirs)
    print(f"    {name:<15} {ours:7.1f} ns  governor {theirs:7.1f} ns"
          f"  ratio {ours / theirs:4.2f}x (target <= 2.00x)")
print("  criterion medians:")
governor = ns("governor", "keyed_gcra")
if governor:
    print(f"  governor keyed GCRA (10k keys)     {governor:8.1f} ns/decision")
    print("  (memory rows: 10k keys, CoarseClock unless named)")
    for algo in ("sliding_window", "fixed_window", "token_bucket", "sliding_window_system_clock"):
        ours = ns("memory", algo)
        if ours:
            print(f"  memory {algo:<27} {ours:8.1f} ns/decision"
                  f"  ratio to governor {ours / governor:4.2f}x (target <= 2.00x)")
else:
    print("  memory: not measured in this run (filtered out)")
limiter, bare = ns("redis", "limiter_64_concurrent"), ns("redis", "bare_evalsha_64_concurrent")
if limiter and bare:
    print(f"  redis limiter, 64 concurrent:       {1e9 / limiter:10.0f} decisions/s")
    print(f"  bare EVALSHA loop, 64 concurrent:   {1e9 / bare:10.0f} decisions/s"
          f"  limiter/bare {bare / limiter:4.2f}")
else:
    print("  redis: not measured (see the bench output above)")
PY

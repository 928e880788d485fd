#!/usr/bin/env bash
# Rule evaluation cost for 1, 10 and 100 rules (criterion, crates/palisade-expr/benches/rules.rs),
# printed per request and per rule, against the budget of 5 µs per request for 100 rules.
# Usage: bench/rules.sh [extra criterion args, e.g. --quick]
set -euo pipefail
cd "$(dirname "$0")/.."

cargo bench -p palisade-expr --bench rules -- --noplot "$@" >/tmp/palisade-bench-rules.log 2>&1 \
    || { cat /tmp/palisade-bench-rules.log; exit 1; }

target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
echo "load average while measuring: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
python3 - "$target_dir/criterion" <<'PY'
import json, os, sys
root = sys.argv[1]
budget_ns = 5000.0
for group, label in (("rules", "wall time"), ("rules_cpu", "thread CPU time")):
    print(f"\n{label}: mean per request")
    print(f"{'request':<12} {'rules':>5} {'ns/request':>11} {'ns/rule':>8} {'vs 1 rule':>9} {'of 5 µs budget':>15}")
    for request in ("browser_get", "form_post"):
        base = None
        for count in (1, 10, 100):
            path = os.path.join(root, group, request, str(count), "new", "estimates.json")
            with open(path) as f:
                ns = json.load(f)["mean"]["point_estimate"]
            base = base or ns
            print(f"{request:<12} {count:>5} {ns:>11.0f} {ns / count:>8.1f} {ns / base:>8.1f}x {ns / budget_ns:>14.0%}")
PY

#!/usr/bin/env bash
# What the WAF rules cost the gateway, under wrk, in one run: the same palisade build in
# front of the same upstream (an nginx returning a small page), once with no WAF rules and
# once with the requirements' rules file loaded (SQL-injection block, /api/ rate limit, geo
# challenge with MaxMind's test country database). The requests (`GET /search?q=shoes&page=2`
# from 127.0.0.1) match no rule, so every rule is evaluated and the request is forwarded:
# the cost measured is evaluation (query scan, path scan, geo lookup), not refusals.
# The two are measured alternately, twice each, and the means compared.
# Prints throughput, p99 and CPU per request of each, and the ratios rules / no rules.
# Usage: bench/waf-gateway.sh [seconds per measurement, default 8] [connections, default 64]
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${1:-8}"
CONNECTIONS="${2:-64}"
UPSTREAM_PORT=18280 PLAIN_PORT=18281 RULES_PORT=18282 PLAIN_ADMIN=18283 RULES_ADMIN=18284
SHARED="${PALISADE_SHARED:-$(cd .. && pwd)/shared}"
GEO="$SHARED/fixtures/geoip/GeoLite2-Country-Test.mmdb"
TARGET="/search?q=shoes&page=2"

need() {
  command -v "$1" >/dev/null && return
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null
}
need nginx nginx
need wrk wrk
[ -r "$GEO" ] || { echo "missing $GEO (set PALISADE_SHARED)" >&2; exit 1; }

cargo build --release -q
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/upstream/logs"
cat >"$WORK/upstream/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $WORK/upstream/nginx.pid;
error_log $WORK/upstream/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  server { listen 127.0.0.1:$UPSTREAM_PORT; keepalive_requests 100000;
    location / { default_type text/html; return 200 '<!doctype html><p>search results</p>\n'; } }
}
CONF

cat >"$WORK/waf.yaml" <<'YAML'
rules:
  - name: Block SQL Injection
    expression: (http.request.uri.query contains "union" and http.request.uri.query contains "select")
    action: block
  - name: Rate Limit API
    expression: (http.request.uri.path contains "/api/")
    action: rate_limit
    threshold: 100/minute
  - name: Geo-blocking (if needed)
    expression: (ip.geoip.country in {"CN" "RU" "KP"})
    action: challenge
YAML

# Identical except for [waf]; no rate limits so that the load is never refused.
common="rate_limit = []
[log]
security = \"off\""
printf '%s\n' "$common" >"$WORK/plain.toml"
printf '%s\n[waf]\nrules = "waf.yaml"\ngeoip_country_db = "%s"\n' "$common" "$GEO" >"$WORK/rules.toml"

nginx -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" & PIDS+=($!)
start_palisade() { # config, port, admin port
  PALISADE_LOG=warn target/release/palisade serve --config "$1" \
    --upstream "http://127.0.0.1:$UPSTREAM_PORT" --listen "127.0.0.1:$2" \
    --admin-listen "127.0.0.1:$3" &
  PIDS+=($!)
}
start_palisade "$WORK/plain.toml" $PLAIN_PORT $PLAIN_ADMIN; PLAIN_PID=$!
start_palisade "$WORK/rules.toml" $RULES_PORT $RULES_ADMIN; RULES_PID=$!

for port in $UPSTREAM_PORT $PLAIN_PORT $RULES_PORT; do
  for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$port$TARGET" && break; sleep 0.1; done
done
# The rules really are in force: a union/select query is refused by one, not the other.
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$RULES_PORT/s?q=union+select")" = 403 ]
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PLAIN_PORT/s?q=union+select")" = 200 ]

ticks_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ="$(getconf CLK_TCK)"
declare -A RPS P99 CPU
measure() { # name, port, pid
  local name=$1 port=$2 pid=$3
  local before; before="$(ticks_of "$pid")"
  local out; out="$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:$port$TARGET")"
  local after; after="$(ticks_of "$pid")"
  local requests rps p99 cpu
  requests="$(echo "$out" | awk '/requests in/ {print $1}')"
  rps="$(echo "$out" | awk '/Requests\/sec/ {print $2}')"
  p99="$(echo "$out" | awk '$1 == "99%" {print $2}' | awk '/us$/ {sub("us",""); print $1/1000; next}
        /ms$/ {sub("ms",""); print $1; next} /s$/ {sub("s",""); print $1*1000}')"
  cpu="$(awk -v t=$((after - before)) -v hz="$HZ" -v n="$requests" 'BEGIN {printf "%.1f", t / hz / n * 1e6}')"
  printf '  %-9s %10s req/s   p99 %7s ms   CPU %6s us/request\n' "$name" "$rps" "$p99" "$cpu"
  RPS[$name]="$(awk -v a="${RPS[$name]:-0}" -v b="$rps" 'BEGIN {print a + b / 2}')"
  P99[$name]="$(awk -v a="${P99[$name]:-0}" -v b="$p99" 'BEGIN {print a + b / 2}')"
  CPU[$name]="$(awk -v a="${CPU[$name]:-0}" -v b="$cpu" 'BEGIN {print a + b / 2}')"
}

echo "wrk -t2 -c$CONNECTIONS -d${DURATION}s GET $TARGET, $(nproc) cores shared by wrk, palisade and the upstream"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
wrk -t2 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$PLAIN_PORT$TARGET" >/dev/null
wrk -t2 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$RULES_PORT$TARGET" >/dev/null
for round in 1 2; do
  echo "round $round"
  measure no-rules $PLAIN_PORT "$PLAIN_PID"
  measure rules $RULES_PORT "$RULES_PID"
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
echo
printf 'mean      no rules: %.0f req/s, p99 %.2f ms, %.1f us CPU/request\n' "${RPS[no-rules]}" "${P99[no-rules]}" "${CPU[no-rules]}"
printf 'mean   with rules: %.0f req/s, p99 %.2f ms, %.1f us CPU/request\n' "${RPS[rules]}" "${P99[rules]}" "${CPU[rules]}"
echo "rules / no rules: throughput $(ratio "${RPS[rules]}" "${RPS[no-rules]}")," \
  "p99 $(ratio "${P99[rules]}" "${P99[no-rules]}")," \
  "CPU per request $(ratio "${CPU[rules]}" "${CPU[no-rules]}")" \
  "(+$(awk -v a="${CPU[rules]}" -v b="${CPU[no-rules]}" 'BEGIN {printf "%.1f", a - b}') us)"

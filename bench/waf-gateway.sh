#!/usr/bin/env bash
# What the WAF costs the gateway, under wrk, in one run. Two comparisons:
#
# 1. Custom rules: the same palisade build (managed detection off) once with no WAF rules and
#    once with the requirements' rules file loaded (SQL-injection block, /api/ rate limit,
#    geo challenge with MaxMind's test country database), on `GET /search?q=shoes&page=2`.
#    The request matches no rule, so every rule is evaluated and the request is forwarded.
#
# 2. Managed detection against nginx + ModSecurity 3 + OWASP CRS 4 at paranoia 1
#    (../shared/anchors/modsecurity), on the request shapes of issue 4: a GET with three
#    query arguments and six headers, and a 1 KB urlencoded form POST, both benign (so both
#    WAFs inspect everything and forward). Each WAF is measured against itself without
#    detection (palisade `managed = false`; the anchor's `modsecurity off` server), so the
#    added CPU is the detection's. Both proxy to the same backend (the anchor's, inside the
#    anchor nginx); the anchor's one worker and palisade's one worker are pinned to the last
#    CPU, wrk to the first. The anchor's CPU includes its backend's work; the added figures
#    do not.
#
# Every configuration is measured twice, alternating, and the means compared.
# Prints throughput, p99 and CPU per request of each, and the ratios.
# Usage: bench/waf-gateway.sh [seconds per measurement, default 8] [connections, default 64]
# Env:   PALISADE_SHARED (../shared); WAF_GATEWAY_PART=1|2 to run one part only.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${1:-8}"
CONNECTIONS="${2:-64}"
PART="${WAF_GATEWAY_PART:-all}"
UPSTREAM_PORT=18280 PLAIN_PORT=18281 RULES_PORT=18282 PLAIN_ADMIN=18283 RULES_ADMIN=18284
OFF_PORT=18285 OFF_ADMIN=18286 ON_PORT=18287 ON_ADMIN=18288
export PORT_PL1=18580 PORT_PL2=18581 PORT_NOWAF=18582 PORT_PLAIN=18583 PORT_ENGINE=18584
export PORT_BACKEND=18590
SHARED="${PALISADE_SHARED:-$(cd .. && pwd)/shared}"
ANCHOR="$SHARED/anchors/modsecurity/anchor.sh"
GEO="$SHARED/fixtures/geoip/GeoLite2-Country-Test.mmdb"
TARGET="/search?q=shoes&page=2"
LAST_CPU=$(($(nproc) - 1))

if [ ! -x /usr/sbin/nginx ] || [ ! -e /usr/lib/nginx/modules/ngx_http_modsecurity_module.so ] \
  || ! command -v wrk >/dev/null; then
  "$ANCHOR" install
fi
[ -r "$GEO" ] || { echo "missing $GEO (set PALISADE_SHARED)" >&2; exit 1; }

cargo build --release -q
WORK="$(mktemp -d)"
export ANCHOR_DIR="$WORK/anchor"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  "$ANCHOR" stop >/dev/null 2>&1 || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

ticks_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ="$(getconf CLK_TCK)"
declare -A RPS P99 CPU
measure() { # name, port, pid whose CPU is counted, [wrk script]
  local name=$1 port=$2 pid=$3 script=${4:-}
  local args=(-t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency)
  [ -n "$script" ] && args+=(-s "$script")
  local before; before="$(ticks_of "$pid")"
  local out
  out="$(taskset -c 0 wrk "${args[@]}" "http://127.0.0.1:$port$TARGET")"
  local after; after="$(ticks_of "$pid")"
  local requests rps p99 cpu
  requests="$(echo "$out" | awk '/requests in/ {print $1}')"
  rps="$(echo "$out" | awk '/Requests\/sec/ {print $2}')"
  p99="$(echo "$out" | awk '$1 == "99%" {print $2}' | awk '/us$/ {sub("us",""); print $1/1000; next}
        /ms$/ {sub("ms",""); print $1; next} /s$/ {sub("s",""); print $1*1000}')"
  cpu="$(awk -v t=$((after - before)) -v hz="$HZ" -v n="$requests" 'BEGIN {printf "%.1f", t / hz / n * 1e6}')"
  printf '  %-22s %10s req/s   p99 %7s ms   CPU %7s us/request\n' "$name" "$rps" "$p99" "$cpu"
  RPS[$name]="$(awk -v a="${RPS[$name]:-0}" -v b="$rps" 'BEGIN {print a + b / 2}')"
  P99[$name]="$(awk -v a="${P99[$name]:-0}" -v b="$p99" 'BEGIN {print a + b / 2}')"
  CPU[$name]="$(awk -v a="${CPU[$name]:-0}" -v b="$cpu" 'BEGIN {print a + b / 2}')"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", a - b}'; }
start_palisade() { # config, port, admin port, [cpu list]
  local cpus=${4:-0-$LAST_CPU}
  PALISADE_LOG=warn taskset -c "$cpus" target/release/palisade serve --config "$1" \
    --upstream "http://127.0.0.1:$UPSTREAM" --listen "127.0.0.1:$2" --admin-listen "127.0.0.1:$3" &
  PIDS+=($!)
}
wait_for() { # port
  for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$1$TARGET" && return; sleep 0.1; done
  echo "port $1 did not answer" >&2; exit 1
}
# A host name, as real traffic has: CRS scores a numeric Host (rule 920350) on every request.
status_of() { curl -s -o /dev/null -w '%{http_code}' -H 'Host: shop.example' "$@"; }

part_rules() {
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
  # Identical except for the rules; no rate limits so that the load is never refused.
  local common="rate_limit = []
[log]
security = \"off\"
[spool]
dir = \"$WORK/spool\""
  printf '%s\n[waf]\nmanaged = false\n' "$common" >"$WORK/plain.toml"
  printf '%s\n[waf]\nmanaged = false\nrules = "waf.yaml"\ngeoip_country_db = "%s"\n' \
    "$common" "$GEO" >"$WORK/rules.toml"

  nginx -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" & PIDS+=($!)
  UPSTREAM=$UPSTREAM_PORT
  start_palisade "$WORK/plain.toml" $PLAIN_PORT $PLAIN_ADMIN; local plain_pid=$!
  start_palisade "$WORK/rules.toml" $RULES_PORT $RULES_ADMIN; local rules_pid=$!
  for port in $UPSTREAM_PORT $PLAIN_PORT $RULES_PORT; do wait_for "$port"; done
  # The rules really are in force: a union/select query is refused by one, not the other.
  [ "$(status_of "http://127.0.0.1:$RULES_PORT/s?q=union+select")" = 403 ]
  [ "$(status_of "http://127.0.0.1:$PLAIN_PORT/s?q=union+select")" = 200 ]

  echo "1. custom rules: wrk -t1 -c$CONNECTIONS -d${DURATION}s GET $TARGET"
  echo "   load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$PLAIN_PORT$TARGET" >/dev/null
  taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$RULES_PORT$TARGET" >/dev/null
  for round in 1 2; do
    echo " round $round"
    measure no-rules $PLAIN_PORT "$plain_pid"
    measure rules $RULES_PORT "$rules_pid"
  done
  printf ' mean      no rules: %.0f req/s, p99 %.2f ms, %.1f us CPU/request\n' \
    "${RPS[no-rules]}" "${P99[no-rules]}" "${CPU[no-rules]}"
  printf ' mean   with rules: %.0f req/s, p99 %.2f ms, %.1f us CPU/request\n' \
    "${RPS[rules]}" "${P99[rules]}" "${CPU[rules]}"
  echo " rules / no rules: throughput $(ratio "${RPS[rules]}" "${RPS[no-rules]}")," \
    "p99 $(ratio "${P99[rules]}" "${P99[no-rules]}")," \
    "CPU per request $(ratio "${CPU[rules]}" "${CPU[no-rules]}")" \
    "(+$(minus "${CPU[rules]}" "${CPU[no-rules]}") us)"
  echo
}

# The GET of issue 4: three query arguments and six headers (with Host, a name).
GET_TARGET="/search?q=running+shoes&page=2&sort=price"
write_scripts() {
  cat >"$WORK/get.lua" <<'LUA'
wrk.path = "/search?q=running+shoes&page=2&sort=price"
wrk.headers["Host"] = "shop.example"
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
wrk.headers["Accept"] = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
wrk.headers["Accept-Language"] = "en-GB,en;q=0.9"
wrk.headers["Accept-Encoding"] = "gzip, deflate, br"
wrk.headers["Cookie"] = "theme=dark; lang=en-GB"
LUA
  # A 1 KB urlencoded form: a shop checkout with an address and a free-text note.
  python3 - "$WORK/post.lua" <<'PY'
import sys, urllib.parse
fields = [("first_name", "Siobhan"), ("last_name", "O'Brien"), ("email", "s.obrien@example.ie"),
          ("phone", "+353 1 555 0199"), ("street", "12 Harbour View Road"), ("city", "Dublin"),
          ("postcode", "D02 X285"), ("country", "IE"), ("shipping", "standard"),
          ("newsletter", "on"), ("coupon", "SPRING24")]
note = ("Please leave the parcel with the neighbours at number fourteen if nobody is home "
        "We would like to select a delivery slot in the afternoon and both of the "
        "orders can ship together Thank you ")
# (With "the union of both orders" in the note, CRS at paranoia 1 blocks this benign form:
# rule 942190 matches "union ... select" across the repeated text. Palisade forwards it; the
# benchmark needs both WAFs to forward, so the note avoids the word.)
# The note goes last and encodes to letters and '+' only, so the cut lands inside it.
body = urllib.parse.urlencode(fields) + "&note=" + urllib.parse.quote_plus(note * 8)
body = body[:1024]
lua = ('wrk.method = "POST"\nwrk.path = "/checkout"\n'
       'wrk.headers["Host"] = "shop.example"\n'
       'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
       'wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36"\n'
       f'wrk.body = "{body}"\n')
open(sys.argv[1], "w").write(lua)
PY
  grep -o 'wrk.body = ".*"' "$WORK/post.lua" | sed 's/^wrk.body = "//; s/"$//' >"$WORK/post.body"
}

part_managed() {
  "$ANCHOR" setup >/dev/null
  "$ANCHOR" start >/dev/null
  local anchor_master; anchor_master="$(cat "$ANCHOR_DIR/run/nginx-anchor.pid")"
  local anchor_worker; anchor_worker="$(pgrep -P "$anchor_master" | head -n 1)"
  UPSTREAM=$PORT_BACKEND
  local common="rate_limit = []
[server]
workers = 1
[log]
security = \"off\"
[spool]
dir = \"$WORK/spool\""
  printf '%s\n[waf]\nmanaged = false\n' "$common" >"$WORK/off.toml"
  printf '%s\n' "$common" >"$WORK/on.toml"
  start_palisade "$WORK/off.toml" $OFF_PORT $OFF_ADMIN "$LAST_CPU"; local off_pid=$!
  start_palisade "$WORK/on.toml" $ON_PORT $ON_ADMIN "$LAST_CPU"; local on_pid=$!
  for port in $OFF_PORT $ON_PORT; do wait_for "$port"; done
  write_scripts
  # Both detections are in force, and both let the benchmark's requests through.
  for port in $ON_PORT $PORT_PL1; do
    [ "$(status_of "http://127.0.0.1:$port/s?q=1%27%20or%20%271%27%3D%271")" = 403 ]
    [ "$(status_of "http://127.0.0.1:$port$GET_TARGET")" = 200 ]
    [ "$(status_of -X POST -H 'Content-Type: application/x-www-form-urlencoded' \
      --data-binary @"$WORK/post.body" "http://127.0.0.1:$port/checkout")" = 200 ]
  done
  [ "$(status_of "http://127.0.0.1:$OFF_PORT/s?q=1%27%20or%20%271%27%3D%271")" = 200 ]

  echo "2. managed detection vs nginx + ModSecurity + CRS 4 (paranoia 1), one worker each on" \
    "CPU $LAST_CPU, wrk -t1 -c$CONNECTIONS -d${DURATION}s on CPU 0"
  echo "   load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  for shape in get post; do
    local script="$WORK/$shape.lua"
    for port in $OFF_PORT $ON_PORT $PORT_NOWAF $PORT_PL1; do
      taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d1s -s "$script" "http://127.0.0.1:$port/" >/dev/null
    done
    case $shape in
      get) echo " GET $GET_TARGET with six headers" ;;
      post) echo " POST /checkout, a 1 KB urlencoded form" ;;
    esac
    for round in 1 2; do
      echo "  round $round"
      measure "palisade-off-$shape" $OFF_PORT "$off_pid" "$script"
      measure "palisade-on-$shape" $ON_PORT "$on_pid" "$script"
      measure "nginx-off-$shape" $PORT_NOWAF "$anchor_worker" "$script"
      measure "modsecurity-$shape" $PORT_PL1 "$anchor_worker" "$script"
    done
  done

  echo
  echo " means (CPU per request of the WAF process; the anchor's includes its backend):"
  printf '  %-5s %-34s %10s %9s %14s\n' "" "" "req/s" "p99 ms" "CPU us/req"
  for shape in get post; do
    for name in palisade-off palisade-on nginx-off modsecurity; do
      local key="$name-$shape"
      printf '  %-5s %-34s %10.0f %9.2f %14.1f\n' "$shape" "$name" "${RPS[$key]}" "${P99[$key]}" \
        "${CPU[$key]}"
    done
  done
  echo
  for shape in get post; do
    local pal_add; pal_add="$(minus "${CPU[palisade-on-$shape]}" "${CPU[palisade-off-$shape]}")"
    local mod_add; mod_add="$(minus "${CPU[modsecurity-$shape]}" "${CPU[nginx-off-$shape]}")"
    echo " $shape: detection adds ${pal_add} us CPU/request in palisade, ${mod_add} us in" \
      "ModSecurity + CRS: ModSecurity / palisade $(ratio "$mod_add" "$pal_add")x;" \
      "throughput palisade / ModSecurity $(ratio "${RPS[palisade-on-$shape]}" "${RPS[modsecurity-$shape]}")," \
      "CPU per request ModSecurity / palisade $(ratio "${CPU[modsecurity-$shape]}" "${CPU[palisade-on-$shape]}")"
  done
}

case "$PART" in
  1) part_rules ;;
  2) part_managed ;;
  *) part_rules; part_managed ;;
esac

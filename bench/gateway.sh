#!/usr/bin/env bash
# Gateway throughput, latency and CPU per request under wrk: palisade with its default
# protections against nginx as a plain reverse proxy, in front of the same upstream, in one run.
#
# - The upstream is one nginx returning a small HTML page; both proxies forward to it over a
#   keep-alive pool (nginx: `keepalive 128`; palisade: its default pool).
# - palisade runs `palisade serve` with the default protections: the strict security header
#   set, the default rate limits switched to `log` mode (so the load is not refused; every
#   request past the 10th in a window publishes a `rate_limit.exceeded` event), managed WAF
#   detection, sessions, CSRF, and the JSON security log written to a file. nginx writes no
#   access log.
# - Both proxies get the same number of workers (nginx worker processes, palisade worker
#   threads) and the same CPUs. Two layouts (BENCH_MODES, both by default):
#     pinned: one worker each, pinned with taskset to the last CPU; wrk and the upstream
#             share the other CPUs. The proxy's core is the bottleneck, so requests/s measures
#             how much work a proxy does per request, undisturbed by wrk and the upstream.
#     shared: one worker per CPU, nothing pinned: the throughput a user of this machine sees.
# - Rounds alternate nginx and palisade (and the upstream alone, for reference); each figure
#   printed is the median over the rounds.
# - CPU per request is the proxy's user + system time (`/proc/PID/stat` fields 14 and 15,
#   over nginx's master and workers, over all of palisade's threads) during the timed run,
#   divided by the requests wrk completed; "system" is its kernel part (field 15), which on
#   loopback includes the TCP work of both ends of every write.
# Targets (issue 2): palisade / nginx throughput >= 1.0, CPU per request <= nginx's.
# The tools, the upstream and the wrk measurement are shared with bench/gateway-state.sh
# (bench/gateway-harness.sh).
#
# Usage: bench/gateway.sh [seconds per run, default 10] [connections, default 64]
#                         [rounds, default 3]
# Environment: BENCH_MODES="pinned shared" (either or both); PALISADE_BIN=path to measure a
# given palisade binary instead of building this checkout; BENCH_FLOOR=1 also measures
# "floor", a bare tokio proxy (crates/palisade-gateway/examples/floor_proxy.rs) that writes
# palisade's extra response headers but does nothing else: the least a proxy built like
# palisade costs here.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${1:-10}"
CONNECTIONS="${2:-64}"
ROUNDS="${3:-3}"
MODES="${BENCH_MODES:-pinned shared}"
UPSTREAM_PORT=18180 NGINX_PORT=18181 PALISADE_PORT=18182 ADMIN_PORT=18183 FLOOR_PORT=18184
FLOOR="${BENCH_FLOOR:-0}"
CPUS="$(nproc)"

# shellcheck source=bench/gateway-harness.sh
. bench/gateway-harness.sh
need nginx nginx
need wrk wrk
need taskset util-linux
need curl curl
palisade_binary
if [ "$FLOOR" = 1 ]; then
  cargo build --release -q -p palisade-gateway --example floor_proxy
fi

{
  cat bench/gateway.toml
  # The upload spool too, so that nothing is left in /tmp (palisade's default spool dir).
  printf '\n[log]\nsecurity = "%s"\n[spool]\ndir = "%s"\n' "$WORK/security.log" "$WORK/spool"
} >"$WORK/palisade.toml"

# Starts the upstream and both proxies for one layout: workers, proxy CPUs, other CPUs.
start_all() {
  local workers=$1 proxy_cpus=$2 other_cpus=$3
  nginx_conf proxy "$workers" "upstream app { server 127.0.0.1:$UPSTREAM_PORT; keepalive 128; }
  server { listen 127.0.0.1:$NGINX_PORT; keepalive_requests 1000000;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection '';
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; } }"
  sed -i "/^\[server\]/,\$d" "$WORK/palisade.toml"
  printf '[server]\nworkers = %s\n' "$workers" >>"$WORK/palisade.toml"

  start_upstream $UPSTREAM_PORT "$other_cpus"
  taskset -c "$proxy_cpus" nginx -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" &
  PIDS+=($!)
  PALISADE_LOG=error taskset -c "$proxy_cpus" "$PALISADE" serve \
    --config "$WORK/palisade.toml" --upstream "http://127.0.0.1:$UPSTREAM_PORT" \
    --listen "127.0.0.1:$PALISADE_PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" &
  PIDS+=($!)
  PALISADE_PID=$!
  for port in $UPSTREAM_PORT $NGINX_PORT $PALISADE_PORT; do wait_for "$port"; done
  if [ "$FLOOR" = 1 ]; then
    # The header lines palisade adds to the upstream's answer (every name the upstream's own
    # answer lacks), so the floor writes as many bytes per response.
    local upstream_names
    upstream_names="$(curl -sD - -o /dev/null "http://127.0.0.1:$UPSTREAM_PORT/" |
      awk -F: 'NR > 1 && NF > 1 {print tolower($1)}')"
    curl -sD - -o /dev/null "http://127.0.0.1:$PALISADE_PORT/" | tr -d '\r' |
      awk -F: -v names="$upstream_names" 'BEGIN {split(names, n, "\n"); for (i in n) seen[n[i]]=1}
        NR > 1 && NF > 1 && !(tolower($1) in seen)' >"$WORK/floor-headers"
    taskset -c "$proxy_cpus" target/release/examples/floor_proxy "127.0.0.1:$FLOOR_PORT" \
      "127.0.0.1:$UPSTREAM_PORT" "$workers" "$WORK/floor-headers" &
    PIDS+=($!)
    FLOOR_PID=$!
    wait_for $FLOOR_PORT
  fi
}

# Runs every round of one layout and prints its medians and ratios.
run_mode() { # mode
  local mode=$1 workers proxy_cpus other_cpus
  if [ "$mode" = pinned ] && [ "$CPUS" -ge 2 ]; then
    workers=1 proxy_cpus=$((CPUS - 1)) other_cpus="0-$((CPUS - 2))"
    WRK_THREADS=$((CPUS - 1))
  else
    mode=shared workers=$CPUS proxy_cpus="0-$((CPUS - 1))" other_cpus="0-$((CPUS - 1))"
    WRK_THREADS=$CPUS
  fi
  RPS=() P50=() P99=() CPU=()
  start_all "$workers" "$proxy_cpus" "$other_cpus"
  echo "== $mode: $workers proxy worker(s) on CPU $proxy_cpus; wrk -t$WRK_THREADS" \
    "-c$CONNECTIONS -d${DURATION}s and the upstream on CPU $other_cpus; $ROUNDS rounds"
  for round in $(seq "$ROUNDS"); do
    echo " round $round"
    # Alternate which proxy goes first, so neither always gets the quieter moment.
    if [ $((round % 2)) -eq 1 ]; then
      measure nginx $NGINX_PORT "$other_cpus" $(nginx_pids proxy)
      measure palisade $PALISADE_PORT "$other_cpus" "$PALISADE_PID"
    else
      measure palisade $PALISADE_PORT "$other_cpus" "$PALISADE_PID"
      measure nginx $NGINX_PORT "$other_cpus" $(nginx_pids proxy)
    fi
    if [ "$FLOOR" = 1 ]; then measure floor $FLOOR_PORT "$other_cpus" "$FLOOR_PID"; fi
    measure direct $UPSTREAM_PORT "$other_cpus"
  done
  stop_all

  echo " medians:"
  local name
  local names="direct nginx palisade"
  [ "$FLOOR" = 1 ] && names+=" floor"
  for name in $names; do print_medians "$name"; done
  # shellcheck disable=SC2086
  local rps_n rps_p p50_n p50_p p99_n p99_p cpu_n cpu_p
  rps_n="$(median ${RPS[nginx]})" rps_p="$(median ${RPS[palisade]})"
  p50_n="$(median ${P50[nginx]})" p50_p="$(median ${P50[palisade]})"
  p99_n="$(median ${P99[nginx]})" p99_p="$(median ${P99[palisade]})"
  cpu_n="$(median ${CPU[nginx]})" cpu_p="$(median ${CPU[palisade]})"
  echo "  nginx / direct throughput $(ratio "$rps_n" "$(median ${RPS[direct]})")"
  echo "  palisade / nginx: throughput $(ratio "$rps_p" "$rps_n") (target >= 1.0)," \
    "p50 $(ratio "$p50_p" "$p50_n"), p99 $(ratio "$p99_p" "$p99_n")," \
    "CPU per request $(ratio "$cpu_p" "$cpu_n") (target <= 1.0)"
  if [ "$FLOOR" = 1 ]; then
    # shellcheck disable=SC2086
    echo "  floor / nginx: throughput $(ratio "$(median ${RPS[floor]})" "$rps_n")," \
      "CPU per request $(ratio "$(median ${CPU[floor]})" "$cpu_n")"
  fi
  print_steal
}

echo "palisade $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $CPUS CPUs," \
  "$(nginx -v 2>&1 | sed 's/.*: //'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
for mode in $MODES; do run_mode "$mode"; done

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
#   divided by the requests wrk completed.
# Targets (issue 2): palisade / nginx throughput >= 1.0, CPU per request <= nginx's.
#
# Usage: bench/gateway.sh [seconds per run, default 10] [connections, default 64]
#                         [rounds, default 3]
# Environment: BENCH_MODES="pinned shared" (either or both); PALISADE_BIN=path to measure a
# given palisade binary instead of building this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${1:-10}"
CONNECTIONS="${2:-64}"
ROUNDS="${3:-3}"
MODES="${BENCH_MODES:-pinned shared}"
UPSTREAM_PORT=18180 NGINX_PORT=18181 PALISADE_PORT=18182 ADMIN_PORT=18183
CPUS="$(nproc)"

need() { # command, Debian package
  command -v "$1" >/dev/null && return
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null
}
need nginx nginx
need wrk wrk
need taskset util-linux
need curl curl

PALISADE="${PALISADE_BIN:-}"
if [ -z "$PALISADE" ]; then
  cargo build --release -q
  PALISADE=target/release/palisade
fi
WORK="$(mktemp -d)"
PIDS=()
stop_all() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}
trap 'stop_all; rm -rf "$WORK"' EXIT

# One nginx instance per role, so each role's CPU is measured apart.
nginx_conf() { # name, workers, server block
  mkdir -p "$WORK/$1/logs"
  cat >"$WORK/$1/nginx.conf" <<CONF
daemon off;
worker_processes $2;
pid $WORK/$1/nginx.pid;
error_log $WORK/$1/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  $3
}
CONF
}

cat >"$WORK/palisade.toml" <<CONF
[[rate_limit]]
name = "static-assets"
static_assets = "only"
limit = 200
window = "10s"
mode = "log"

[[rate_limit]]
name = "default"
static_assets = "exclude"
limit = 10
window = "10s"
mode = "log"

[log]
security = "$WORK/security.log"
CONF

wait_for() { # port
  for _ in $(seq 100); do
    curl -fs -o /dev/null "http://127.0.0.1:$1/" && return
    sleep 0.1
  done
  echo "nothing answers on 127.0.0.1:$1" >&2
  exit 1
}

# Starts the upstream and both proxies for one layout: workers, proxy CPUs, other CPUs.
start_all() {
  local workers=$1 proxy_cpus=$2 other_cpus=$3
  nginx_conf upstream 1 "server { listen 127.0.0.1:$UPSTREAM_PORT; keepalive_requests 1000000;
    location / { default_type text/html;
      return 200 '<!doctype html><p>hello from the upstream</p>\n'; } }"
  nginx_conf proxy "$workers" "upstream app { server 127.0.0.1:$UPSTREAM_PORT; keepalive 128; }
  server { listen 127.0.0.1:$NGINX_PORT; keepalive_requests 1000000;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection '';
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; } }"
  sed -i "/^\[server\]/,\$d" "$WORK/palisade.toml"
  printf '[server]\nworkers = %s\n' "$workers" >>"$WORK/palisade.toml"

  taskset -c "$other_cpus" nginx -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" &
  PIDS+=($!)
  taskset -c "$proxy_cpus" nginx -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" &
  PIDS+=($!)
  PALISADE_LOG=error taskset -c "$proxy_cpus" "$PALISADE" serve \
    --config "$WORK/palisade.toml" --upstream "http://127.0.0.1:$UPSTREAM_PORT" \
    --listen "127.0.0.1:$PALISADE_PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" &
  PIDS+=($!)
  PALISADE_PID=$!
  for port in $UPSTREAM_PORT $NGINX_PORT $PALISADE_PORT; do wait_for "$port"; done
}

# CPU ticks (user + system) of processes, all threads included.
ticks_of() { # pids...
  local total=0
  for pid in "$@"; do
    [ -r "/proc/$pid/stat" ] || continue
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$total"
}
nginx_pids() { # role
  local master; master="$(cat "$WORK/$1/nginx.pid")"
  echo "$master $(pgrep -P "$master" | tr '\n' ' ')"
}
to_us() { # wrk latency ("850.00us", "1.20ms", "1.01s") in microseconds
  echo "$1" | awk '/us$/ {sub("us",""); print $1; next} /ms$/ {sub("ms",""); print $1*1000; next}
                   /s$/ {sub("s",""); print $1*1e6}'
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

declare -A RPS P50 P99 CPU
HZ="$(getconf CLK_TCK)"
# One timed wrk run against a target: appends its figures to the target's lists.
measure() { # name, port, wrk cpus, pids to charge CPU to...
  local name=$1 port=$2 wrk_cpus=$3; shift 3
  local url="http://127.0.0.1:$port/"
  taskset -c "$wrk_cpus" wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d2s "$url" >/dev/null
  local before; before="$(ticks_of "$@")"
  local out
  out="$(taskset -c "$wrk_cpus" wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" \
    --latency "$url")"
  local after; after="$(ticks_of "$@")"
  if echo "$out" | grep -q "Non-2xx\|Socket errors"; then
    echo "$name: wrk saw errors:" >&2
    echo "$out" >&2
    exit 1
  fi
  local requests rps p50 p99 cpu="-"
  requests="$(echo "$out" | awk '/requests in/ {print $1}')"
  rps="$(echo "$out" | awk '/Requests\/sec/ {print $2}')"
  p50="$(to_us "$(echo "$out" | awk '$1 == "50%" {print $2}')")"
  p99="$(to_us "$(echo "$out" | awk '$1 == "99%" {print $2}')")"
  if [ "$#" -gt 0 ]; then
    cpu="$(awk -v t=$((after - before)) -v hz="$HZ" -v n="$requests" \
      'BEGIN {printf "%.1f", t / hz / n * 1e6}')"
  fi
  RPS[$name]+="$rps " P50[$name]+="$p50 " P99[$name]+="$p99 " CPU[$name]+="$cpu "
  printf '  %-9s %9.0f req/s  p50 %7.0f us  p99 %7.0f us  CPU %5s us/request\n' \
    "$name" "$rps" "$p50" "$p99" "$cpu"
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
    measure direct $UPSTREAM_PORT "$other_cpus"
  done
  stop_all

  echo " medians:"
  local name
  for name in direct nginx palisade; do
    # shellcheck disable=SC2086 # the lists are space-separated on purpose
    printf '  %-9s %9.0f req/s  p50 %7.0f us  p99 %7.0f us  CPU %5s us/request\n' "$name" \
      "$(median ${RPS[$name]})" "$(median ${P50[$name]})" "$(median ${P99[$name]})" \
      "$(median ${CPU[$name]})"
  done
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
}

echo "palisade $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $CPUS CPUs," \
  "$(nginx -v 2>&1 | sed 's/.*: //'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
for mode in $MODES; do run_mode "$mode"; done

#!/usr/bin/env bash
# Gateway throughput, p99 latency and CPU per request under wrk, in one run:
#   the upstream directly, nginx as a plain reverse proxy, and palisade with its default
#   protections (security headers on, the default rate limits in `log` mode so the load is
#   not refused, the security log written to a file).
# Prints each target's figures and palisade's ratios against nginx.
# Targets (issue 2): throughput ratio vs nginx >= 1.0, CPU per request <= nginx's.
# Usage: bench/gateway.sh [seconds per target, default 10] [connections, default 64]
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${1:-10}"
CONNECTIONS="${2:-64}"
UPSTREAM_PORT=18180 NGINX_PORT=18181 PALISADE_PORT=18182 ADMIN_PORT=18183

need() {
  command -v "$1" >/dev/null && return
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null
}
need nginx nginx
need wrk wrk

cargo build --release -q
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# One nginx instance per role, so each role's CPU is measured apart.
nginx_conf() { # name, server block
  mkdir -p "$WORK/$1/logs"
  cat >"$WORK/$1/nginx.conf" <<CONF
daemon off;
worker_processes auto;
pid $WORK/$1/nginx.pid;
error_log $WORK/$1/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  $2
}
CONF
}

nginx_conf upstream "server { listen 127.0.0.1:$UPSTREAM_PORT; keepalive_requests 100000;
    location / { default_type text/html; return 200 '<!doctype html><p>hello from the upstream</p>\n'; } }"
nginx_conf proxy "upstream app { server 127.0.0.1:$UPSTREAM_PORT; keepalive 128; }
  server { listen 127.0.0.1:$NGINX_PORT; keepalive_requests 100000;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection '';
      proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; } }"

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

nginx -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" & PIDS+=($!)
nginx -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" & PIDS+=($!)
PALISADE_LOG=warn target/release/palisade serve --config "$WORK/palisade.toml" \
  --upstream "http://127.0.0.1:$UPSTREAM_PORT" --listen "127.0.0.1:$PALISADE_PORT" \
  --admin-listen "127.0.0.1:$ADMIN_PORT" & PIDS+=($!)
PALISADE_PID=$!

for port in $UPSTREAM_PORT $NGINX_PORT $PALISADE_PORT; do
  for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
done

# CPU ticks (user + system) of a process and its children threads/workers.
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

HZ="$(getconf CLK_TCK)"
declare -A RPS P99 CPU
run() { # name, port, pids...
  local name=$1 port=$2; shift 2
  wrk -t2 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$port/" >/dev/null # warm-up
  local before; before="$(ticks_of "$@")"
  local out; out="$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:$port/")"
  local after; after="$(ticks_of "$@")"
  local requests; requests="$(echo "$out" | awk '/requests in/ {print $1}')"
  RPS[$name]="$(echo "$out" | awk '/Requests\/sec/ {print $2}')"
  P99[$name]="$(echo "$out" | awk '$1 == "99%" {print $2}')"
  if [ "$#" -gt 0 ]; then
    CPU[$name]="$(awk -v t=$((after - before)) -v hz="$HZ" -v n="$requests" 'BEGIN {printf "%.1f", t / hz / n * 1e6}')"
  else
    CPU[$name]="-"
  fi
  printf '%-10s %10s req/s   p99 %8s   proxy CPU %6s us/request\n' \
    "$name" "${RPS[$name]}" "${P99[$name]}" "${CPU[$name]}"
}

echo "wrk -t2 -c$CONNECTIONS -d${DURATION}s, one run, $(nproc) cores shared by wrk, proxy and upstream"
run direct $UPSTREAM_PORT
run nginx $NGINX_PORT $(nginx_pids proxy)
run palisade $PALISADE_PORT "$PALISADE_PID"

to_ms() { # wrk latency ("850.00us", "1.20ms", "1.01s") in ms
  echo "$1" | awk '/us$/ {sub("us",""); print $1/1000; next} /ms$/ {sub("ms",""); print $1; next}
                   /s$/ {sub("s",""); print $1*1000}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
echo
echo "nginx    / direct: throughput $(ratio "${RPS[nginx]}" "${RPS[direct]}")"
echo "palisade / direct: throughput $(ratio "${RPS[palisade]}" "${RPS[direct]}")"
echo "palisade / nginx:  throughput $(ratio "${RPS[palisade]}" "${RPS[nginx]}") (target >= 1.0)," \
  "p99 $(ratio "$(to_ms "${P99[palisade]}")" "$(to_ms "${P99[nginx]}")")," \
  "CPU per request $(ratio "${CPU[palisade]}" "${CPU[nginx]}") (target <= 1.0)"

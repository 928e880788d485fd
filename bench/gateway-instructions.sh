#!/usr/bin/env bash
# Instructions per proxied request, palisade against nginx, counted by valgrind's callgrind:
# the same figure run after run, whatever else the machine is doing (bench/gateway.sh's
# timings move by 5-10 % between runs on a shared machine; these by well under 1 %).
#
# - One upstream (nginx returning a 47-byte page, bench/gateway-harness.sh); nginx as a plain
#   reverse proxy (one process, no master, keep-alive pool) and palisade with
#   bench/gateway.sh's configuration (bench/gateway.toml: default protections, rate limits
#   in `log` mode, JSON security log to a file), one worker thread, each run in turn under
#   callgrind.
# - After a warm-up, the counters are zeroed, wrk sends requests for the given time, and the
#   counters are dumped: user-space instructions of every thread of the proxy (palisade's
#   log writer included) divided by the answers wrk received. Kernel work (the system calls
#   themselves) is not counted: bench/gateway.sh's "system" column shows that part.
# - Under callgrind a proxy runs about 50 times slower, so each run serves a few tens of
#   thousands of requests.
#
# - BENCH_STATE=redis also counts the rate-limit state backends: palisade with every request
#   under its limit (the default rule's limit raised to 1 000 000, as in bench/gateway-state.sh's
#   under-limit scenario), once with the counters in memory and once in the Redis at
#   127.0.0.1:6379 (under a key prefix of this run's own, deleted at the end), and the ratio.
#   Under callgrind fewer decisions wait together, so a script call carries fewer of them
#   than at full speed: the Redis figure leans towards the cost of a lone decision.
#
# - BENCH_REQUEST=browser sends, instead of wrk's bare `GET /` with one header, a page request
#   as a browser sends it: a path with a query, and 11 headers (User-Agent, Accept,
#   Accept-Language, Accept-Encoding, three cookies, Referer, Sec-Fetch-*, ...). Palisade's
#   per-field work (managed detection reads every header) shows there.
#
# - Needs nginx, wrk, curl and valgrind (and redis-cli with BENCH_STATE=redis): installs
#   Debian's packages when missing (root), and starts Redis with `scripts/services redis`
#   if nothing answers on 127.0.0.1:6379. Each run takes its seconds plus about 3 (start-up
#   under valgrind, a 2 s warm-up): two runs, four with BENCH_STATE=redis. It leaves nothing
#   behind (its scratch directory, palisade's upload spool included, is removed on exit).
#
# Usage: bench/gateway-instructions.sh [seconds per proxy, default 10] [connections, default 16]
# Environment: PALISADE_BIN=path to measure a given palisade binary instead of building this
# checkout; BENCH_TOP=N also prints palisade's N most costly functions (inclusive, per
# request); BENCH_STATE=redis and BENCH_REQUEST=browser (see above); BENCH_KEEP=dir keeps
# the callgrind files there. Read them with `callgrind_annotate --inclusive=yes
# --threshold=100 FILE` run outside the checkout (the default threshold shows only the
# thread's start for a dump taken mid-run).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${1:-10}"
CONNECTIONS="${2:-16}"
TOP="${BENCH_TOP:-0}"
UPSTREAM_PORT=18190 NGINX_PORT=18191 PALISADE_PORT=18192 ADMIN_PORT=18193
for value in "seconds=$DURATION" "connections=$CONNECTIONS" "BENCH_TOP=$TOP"; do
  if ! [[ "${value#*=}" =~ ^[0-9]+$ ]]; then
    echo "usage: bench/gateway-instructions.sh [seconds] [connections]: ${value%%=*} must be a" \
      "whole number, not '${value#*=}'" >&2
    exit 2
  fi
done
if [ "$DURATION" -lt 1 ] || [ "$CONNECTIONS" -lt 1 ]; then
  echo "usage: bench/gateway-instructions.sh [seconds] [connections]: both at least 1" >&2
  exit 2
fi
STATE="${BENCH_STATE:-}"
REQUEST="${BENCH_REQUEST:-bare}"
TARGET=/
WRK_HEADERS=()
case "$REQUEST" in
  bare) ;;
  browser)
    TARGET='/dashboard?tab=billing&page=2'
    WRK_HEADERS=(
      -H 'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36'
      -H 'Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8'
      -H 'Accept-Language: en-US,en;q=0.9'
      -H 'Accept-Encoding: gzip, deflate, br, zstd'
      -H 'Cookie: theme=dark; _ga=GA1.1.123456789.1700000000; locale=en'
      -H 'Referer: http://127.0.0.1/dashboard'
      -H 'Sec-Fetch-Dest: document'
      -H 'Sec-Fetch-Mode: navigate'
      -H 'Sec-Fetch-Site: same-origin'
      -H 'Sec-Fetch-User: ?1'
      -H 'Upgrade-Insecure-Requests: 1'
    )
    ;;
  *)
    echo "BENCH_REQUEST must be bare or browser, not '$REQUEST'" >&2
    exit 2
    ;;
esac
if [ -n "$STATE" ] && [ "$STATE" != redis ]; then
  echo "BENCH_STATE must be redis (or unset), not '$STATE'" >&2
  exit 2
fi
if [ -n "${PALISADE_BIN:-}" ] && ! [ -x "$PALISADE_BIN" ]; then
  echo "PALISADE_BIN=$PALISADE_BIN is not an executable file" >&2
  exit 2
fi

# shellcheck source=bench/gateway-harness.sh
. bench/gateway-harness.sh
need nginx nginx
need wrk wrk
need curl curl
need valgrind valgrind
palisade_binary
if [ "$STATE" = redis ]; then
  need redis-cli redis-tools
  REDIS=(redis-cli -h 127.0.0.1 -p 6379)
  "${REDIS[@]}" ping >/dev/null 2>&1 || scripts/services redis
  # Only this run's keys are ever deleted: never FLUSHALL a Redis others may use.
  KEY_PREFIX="palisade-instructions-$$-$(date +%s):"
  trap 'stop_all; "${REDIS[@]}" --scan --pattern "${KEY_PREFIX}*" |
    xargs -r -n 100 "${REDIS[@]}" del >/dev/null; rm -rf "$WORK"' EXIT
  for backend in memory redis; do
    {
      sed 's/^limit = 10$/limit = 1000000/' bench/gateway.toml
      printf '\n[log]\nsecurity = "%s"\n[server]\nworkers = 1\n[spool]\ndir = "%s"\n' \
        "$WORK/security-$backend.log" "$WORK/spool-$backend"
    } >"$WORK/under-limit-$backend.toml"
  done
  printf '\n[state]\nbackend = "redis"\nredis_url = "redis://127.0.0.1:6379"\nkey_prefix = "%s"\n' \
    "$KEY_PREFIX" >>"$WORK/under-limit-redis.toml"
fi

{
  cat bench/gateway.toml
  # The upload spool too, so that nothing is left in /tmp (palisade's default spool dir).
  printf '\n[log]\nsecurity = "%s"\n[server]\nworkers = 1\n[spool]\ndir = "%s"\n' \
    "$WORK/security.log" "$WORK/spool"
} >"$WORK/palisade.toml"
mkdir -p "$WORK/proxy/logs"
cat >"$WORK/proxy/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $WORK/proxy/nginx.pid;
error_log $WORK/proxy/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream app { server 127.0.0.1:$UPSTREAM_PORT; keepalive 128; }
  server { listen 127.0.0.1:$NGINX_PORT; keepalive_requests 1000000;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection '';
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; } }
}
CONF

start_upstream $UPSTREAM_PORT "0-$(($(nproc) - 1))"
wait_for $UPSTREAM_PORT

declare -A IR
# Runs one proxy under callgrind and records its instructions per request.
count() { # name, port, command...
  local name=$1 port=$2
  shift 2
  local out="$WORK/$name.callgrind"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$@" 2>"$WORK/$name.valgrind" &
  local pid=$!
  PIDS+=("$pid")
  # Up to a minute to start: under callgrind a proxy starts about 50 times slower.
  local up=0
  for _ in $(seq 300); do
    if curl -fs -o /dev/null "http://127.0.0.1:$port/"; then
      up=1
      break
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if [ "$up" = 0 ]; then
    echo "$name did not answer on 127.0.0.1:$port under valgrind; its output:" >&2
    cat "$WORK/$name.valgrind" >&2
    exit 1
  fi
  wrk -t1 -c"$CONNECTIONS" -d2s "${WRK_HEADERS[@]}" "http://127.0.0.1:$port$TARGET" >/dev/null
  callgrind_control -z "$pid" >"$WORK/control.log" 2>&1 || { cat "$WORK/control.log" >&2; exit 1; }
  local result
  result="$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "${WRK_HEADERS[@]}" \
    "http://127.0.0.1:$port$TARGET")" || true
  callgrind_control -d "$pid" >"$WORK/control.log" 2>&1 || { cat "$WORK/control.log" >&2; exit 1; }
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  if ! echo "$result" | grep -q "requests in" || echo "$result" | grep -q "Non-2xx\|Socket errors"; then
    echo "$name: wrk failed or saw errors:" >&2
    echo "$result" >&2
    exit 1
  fi
  local requests total
  requests="$(echo "$result" | awk '/requests in/ {print $1}')"
  total="$(cd "$WORK" && callgrind_annotate "$out.1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')"
  IR[$name]=$((total / requests))
  printf '  %-9s %8d requests  %7d instructions/request\n' "$name" "$requests" "${IR[$name]}"
  if [ "$name" = palisade ] && [ "$TOP" -gt 0 ]; then
    echo "  palisade's most costly functions (instructions per request, inclusive: the code"
    echo "  inlined into each and everything it calls; the server loop and handler first):"
    # Run from outside the checkout: there callgrind_annotate shortens source paths and
    # then adds up the inlined parts of a function differently. Each function's entry for
    # its binary (`[...]` at the end) is its whole inclusive cost; the entries without it are
    # the parts inlined from other files, already counted there.
    (cd "$WORK" && callgrind_annotate --inclusive=yes --threshold=100 "$out.1" 2>/dev/null) |
      awk -v n="$requests" '/%\) / && /\]$/ {
          v = $1; gsub(",", "", v); name = $0; sub(/^[^)]*%\) +/, "", name);
          sub(/ \[[^]]*\]$/, "", name); sub(/^[^:]*:/, "", name);
          if (name ~ /palisade_/ && !(name in seen)) {
            seen[name] = 1; printf "  %8.0f  %s\n", v / n, substr(name, 1, 110) } }' |
      head -n "$TOP" || true
  fi
  if [ -n "${BENCH_KEEP:-}" ]; then
    mkdir -p "$BENCH_KEEP"
    cp "$out.1" "$BENCH_KEEP/$name.callgrind"
  fi
}

if [ -n "${PALISADE_BIN:-}" ]; then
  built="$PALISADE_BIN ($("$PALISADE" --version 2>/dev/null || echo '?'))"
else
  built="$(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  git diff --quiet 2>/dev/null || built+=" with uncommitted changes"
fi
echo "palisade $built, $(nginx -v 2>&1 | sed 's/.*: //')," \
  "$(valgrind --version), wrk -t1 -c$CONNECTIONS -d${DURATION}s per proxy," \
  "request: $REQUEST"
count nginx $NGINX_PORT nginx -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf"
PALISADE_LOG=error count palisade $PALISADE_PORT "$PALISADE" serve \
  --config "$WORK/palisade.toml" --upstream "http://127.0.0.1:$UPSTREAM_PORT" \
  --listen "127.0.0.1:$PALISADE_PORT" --admin-listen "127.0.0.1:$ADMIN_PORT"
echo "  palisade / nginx instructions per request: $(ratio "${IR[palisade]}" "${IR[nginx]}")" \
  "(user space only. Issue 2's target is total CPU per request <= nginx's, measured by" \
  "bench/gateway.sh, where the kernel's share is about the same for both: the user-space" \
  "part must come down to about nginx's, a ratio near 1.0 here)"
if [ "$STATE" = redis ]; then
  echo " every request under its limit (each decided by the state backend):"
  for backend in memory redis; do
    PALISADE_LOG=error count "$backend" $PALISADE_PORT "$PALISADE" serve \
      --config "$WORK/under-limit-$backend.toml" --upstream "http://127.0.0.1:$UPSTREAM_PORT" \
      --listen "127.0.0.1:$PALISADE_PORT" --admin-listen "127.0.0.1:$ADMIN_PORT"
  done
  echo "  redis / memory instructions per request: $(ratio "${IR[redis]}" "${IR[memory]}")" \
    "(palisade's own work; Redis's is not counted)"
fi

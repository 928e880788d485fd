#!/usr/bin/env bash
# Gateway throughput, latency and CPU per request with the rate-limit counters in Redis
# (`[state] backend = "redis"`) against in memory (the default), in one run.
#
# - Two `palisade serve` instances run side by side in front of the same upstream (the nginx
#   of bench/gateway.sh), with the same default protections as there (strict headers,
#   managed WAF detection, sessions, CSRF, the JSON security log to a file) and the same
#   rate limits in `log` mode, so the load is never refused. They differ only in `[state]`:
#   memory, or the Redis at 127.0.0.1:6379 under a key prefix of this run's own.
# - Two scenarios (BENCH_SCENARIOS, both by default), each with fresh instances:
#     over-limit:  bench/gateway.sh's limits (10 per 10 s per IP). wrk's one client address
#                  is over its limit after 10 requests, so the Redis limiter's blocked cache
#                  answers almost every request without Redis.
#     under-limit: the same rules with a limit of 1 000 000 per 10 s: every request is
#                  allowed, so every decision goes to Redis (decisions that arrive together
#                  share one EVALSHA), as for a crowd of clients each under its limit.
# - Both instances use every CPU (one worker thread per CPU) and share them with wrk, the
#   upstream and Redis: the throughput a user of this machine sees, Redis's own work
#   included. Rounds alternate which backend goes first; the figures printed at the end are
#   medians over the rounds.
# - CPU per request is palisade's user + system time (all threads, /proc/PID/stat) during
#   the timed run, divided by the requests wrk completed. Redis's CPU (`INFO cpu`) and the
#   scripts it ran (`EVALSHA` calls, `INFO commandstats`) per request are printed beside it; this Redis may also
#   serve other clients, whose work lands in the same counters.
# - A Redis-backed run fails if palisade counted a state backend error or fallback, since the
#   memory fallback (`on_error = "local"`) would otherwise pass for Redis.
# Target (gateway issue): Redis-backed throughput >= 0.8x memory-backed.
#
# Usage: bench/gateway-state.sh [seconds per run, default 10] [connections, default 64]
#                               [rounds, default 3]
# Environment: BENCH_SCENARIOS="over-limit under-limit" (either or both); PALISADE_BIN=path
# to measure a given palisade binary instead of building this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${1:-10}"
CONNECTIONS="${2:-64}"
ROUNDS="${3:-3}"
SCENARIOS="${BENCH_SCENARIOS:-over-limit under-limit}"
UPSTREAM_PORT=18190
declare -A PORT=([memory]=18191 [redis]=18192) ADMIN=([memory]=18193 [redis]=18194)
CPUS="$(nproc)"
WRK_THREADS=$CPUS
ALL_CPUS="0-$((CPUS - 1))"
REDIS=(redis-cli -h 127.0.0.1 -p 6379)
# Only this run's keys are ever deleted: never FLUSHALL a Redis others may use.
KEY_PREFIX="palisade-bench-$$-$(date +%s):"

# shellcheck source=bench/gateway-harness.sh
. bench/gateway-harness.sh
need nginx nginx
need wrk wrk
need taskset util-linux
need curl curl
need redis-cli redis-tools
"${REDIS[@]}" ping >/dev/null 2>&1 || scripts/services redis
palisade_binary

own_keys() { "${REDIS[@]}" --scan --pattern "${KEY_PREFIX}*"; }
delete_own_keys() { own_keys | xargs -r -n 100 "${REDIS[@]}" del >/dev/null; }
trap 'stop_all; delete_own_keys; rm -rf "$WORK"' EXIT

# Running totals of the Redis server, for the per-request columns.
redis_field() { # INFO section, field: the field's first number ("calls=" for a command)
  "${REDIS[@]}" info "$1" | tr -d '\r' | awk -F '[:=,]' -v name="$2" \
    '$1 == name {for (i = 2; i <= NF; i++) if ($i ~ /^[0-9.]+$/) {print $i; exit}}'
}
redis_cpu_us() {
  awk -v s="$(redis_field cpu used_cpu_sys)" -v u="$(redis_field cpu used_cpu_user)" \
    'BEGIN {printf "%.0f", (s + u) * 1e6}'
}
# Scripts run: the limiter's round trips (the commands a script runs count apart).
redis_scripts() {
  echo $(($(redis_field commandstats cmdstat_evalsha || true) + 0))
}
SIDE_COUNTERS=("evalsha:redis_scripts" "redis-CPU-us:redis_cpu_us")

# palisade.toml for one backend and one scenario's limit.
write_config() { # backend, limit of the default rule
  local backend=$1 limit=$2 static_limit=200
  [ "$limit" -gt "$static_limit" ] && static_limit=$limit
  cat >"$WORK/$backend.toml" <<CONF
[server]
workers = $CPUS

[[rate_limit]]
name = "static-assets"
static_assets = "only"
limit = $static_limit
window = "10s"
mode = "log"

[[rate_limit]]
name = "default"
static_assets = "exclude"
limit = $limit
window = "10s"
mode = "log"

[session]
sqlite_path = "$WORK/sessions-$backend.db"

[log]
security = "$WORK/security-$backend.log"

[spool]
dir = "$WORK/spool-$backend"
CONF
  if [ "$backend" = redis ]; then
    printf '\n[state]\nbackend = "redis"\nredis_url = "redis://127.0.0.1:6379"\n' \
      >>"$WORK/$backend.toml"
    printf 'key_prefix = "%s"\n' "$KEY_PREFIX" >>"$WORK/$backend.toml"
  fi
}

declare -A PALISADE_PIDS
start_palisade() { # backend
  PALISADE_LOG=error "$PALISADE" serve --config "$WORK/$1.toml" \
    --upstream "http://127.0.0.1:$UPSTREAM_PORT" \
    --listen "127.0.0.1:${PORT[$1]}" --admin-listen "127.0.0.1:${ADMIN[$1]}" &
  PIDS+=($!)
  PALISADE_PIDS[$1]=$!
}

# Fails the run if the Redis-backed instance decided anything without Redis.
check_redis_used() {
  local metrics bad
  metrics="$(curl -fs "http://127.0.0.1:${ADMIN[redis]}/metrics")"
  bad="$(echo "$metrics" | awk '/^palisade_state_(backend_errors|fallbacks)_total/ && $2 != 0')"
  if [ -n "$bad" ] || [ -z "$(own_keys | head -1)" ]; then
    echo "the redis-backed palisade did not decide in Redis:" >&2
    echo "${bad:-no key under $KEY_PREFIX}" >&2
    exit 1
  fi
}

# Runs every round of one scenario and prints its medians and ratios.
run_scenario() { # scenario
  local scenario=$1 limit=10
  [ "$scenario" = under-limit ] && limit=1000000
  RPS=() P50=() P99=() CPU=() SIDE=()
  write_config memory "$limit"
  write_config redis "$limit"
  start_upstream $UPSTREAM_PORT "$ALL_CPUS"
  start_palisade memory
  start_palisade redis
  for port in $UPSTREAM_PORT "${PORT[memory]}" "${PORT[redis]}"; do wait_for "$port"; done
  echo "== $scenario (default rule: $limit requests per 10 s per IP, log mode):" \
    "$CPUS worker threads each; wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s; $ROUNDS rounds"
  local round first second
  for round in $(seq "$ROUNDS"); do
    echo " round $round (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    # Alternate which backend goes first, so neither always gets the quieter moment.
    first=memory second=redis
    [ $((round % 2)) -eq 0 ] && first=redis second=memory
    measure "$first" "${PORT[$first]}" "$ALL_CPUS" "${PALISADE_PIDS[$first]}"
    measure "$second" "${PORT[$second]}" "$ALL_CPUS" "${PALISADE_PIDS[$second]}"
  done
  check_redis_used
  stop_all
  delete_own_keys
  print_ratios
}

print_ratios() {
  echo " medians:"
  print_medians memory
  print_medians redis
  local rps_m rps_r p50_m p50_r p99_m p99_r cpu_m cpu_r
  # shellcheck disable=SC2086 # the lists are space-separated on purpose
  rps_m="$(median ${RPS[memory]})" rps_r="$(median ${RPS[redis]})"
  # shellcheck disable=SC2086
  p50_m="$(median ${P50[memory]})" p50_r="$(median ${P50[redis]})"
  # shellcheck disable=SC2086
  p99_m="$(median ${P99[memory]})" p99_r="$(median ${P99[redis]})"
  # shellcheck disable=SC2086
  cpu_m="$(median ${CPU[memory]})" cpu_r="$(median ${CPU[redis]})"
  local verdict="met"
  awk -v r="$(ratio "$rps_r" "$rps_m")" 'BEGIN {exit !(r < 0.8)}' && verdict="NOT met"
  echo "  redis / memory: throughput $(ratio "$rps_r" "$rps_m") (target >= 0.8: $verdict)," \
    "p50 $(ratio "$p50_r" "$p50_m"), p99 $(ratio "$p99_r" "$p99_m")," \
    "palisade CPU per request $(ratio "$cpu_r" "$cpu_m")"
  print_steal
}

echo "palisade $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $CPUS CPUs," \
  "$("${REDIS[@]}" info server | tr -d '\r' | awk -F: '/^redis_version:/ {print "redis " $2}')," \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"
for scenario in $SCENARIOS; do run_scenario "$scenario"; done
echo "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"

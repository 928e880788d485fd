# shellcheck shell=bash
# Shared by bench/gateway.sh and bench/gateway-state.sh (sourced, not run): the tools they
# install, the nginx upstream, the palisade binary, and one timed wrk run with its figures.
#
# A sourcing script sets DURATION, CONNECTIONS and WRK_THREADS before calling `measure`, and
# may add SIDE_COUNTERS (a Redis server's CPU, say) as extra per-request columns. Figures
# accumulate in RPS, P50, P99, CPU (and SIDE), keyed by target name, as space-separated
# lists for `median`.

need() { # command, Debian package
  command -v "$1" >/dev/null && return
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null
}

# Builds this checkout's release binary, unless PALISADE_BIN names one; sets PALISADE.
palisade_binary() {
  PALISADE="${PALISADE_BIN:-}"
  if [ -z "$PALISADE" ]; then
    cargo build --release -q
    PALISADE=target/release/palisade
  fi
}

# A scratch directory and the processes started in it, all stopped and removed on exit.
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

# The upstream every target forwards to: one nginx worker returning a 47-byte HTML page.
start_upstream() { # port, cpus
  nginx_conf upstream 1 "server { listen 127.0.0.1:$1; keepalive_requests 1000000;
    location / { default_type text/html;
      return 200 '<!doctype html><p>hello from the upstream</p>\n'; } }"
  taskset -c "$2" nginx -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" &
  PIDS+=($!)
}

wait_for() { # port
  for _ in $(seq 100); do
    curl -fs -o /dev/null "http://127.0.0.1:$1/" && return
    sleep 0.1
  done
  echo "nothing answers on 127.0.0.1:$1" >&2
  exit 1
}

# CPU ticks of processes, all threads included: `/proc/PID/stat` fields summed by an awk
# expression ($14 user, $15 system).
stat_ticks() { # awk expression, pids...
  local expression=$1 total=0
  shift
  for pid in "$@"; do
    [ -r "/proc/$pid/stat" ] || continue
    total=$((total + $(awk "{print $expression}" "/proc/$pid/stat")))
  done
  echo "$total"
}
ticks_of() { stat_ticks '$14 + $15' "$@"; } # user + system
# The system (kernel) part: on loopback it holds the TCP work of both ends of each write, so
# it shows how much of a proxy's cost is the bytes it moves.
sys_ticks_of() { stat_ticks '$15' "$@"; }
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

declare -A RPS P50 P99 CPU SYS SIDE
HZ="$(getconf CLK_TCK)"
# Steal time: CPU time the virtual machine's host gave to others while this machine's
# processes were ready to run (`/proc/stat`'s 8th figure). Each run prints its share of the
# run's CPU time; STEALS collects them. Runs with much of it are not comparable.
STEALS=""
steal_ticks() { awk '/^cpu / {print $9}' /proc/stat; }
# Extra per-request columns: "label:function" pairs; each function prints a running total
# (microseconds of CPU, commands served...) and the column is its growth during the timed
# run divided by the requests wrk completed.
SIDE_COUNTERS=()
side_totals() {
  local counter
  for counter in "${SIDE_COUNTERS[@]}"; do printf '%s ' "$("${counter#*:}")"; done
}

# One timed wrk run against a target, after a 2 s warm-up: appends its figures to the
# target's lists and prints them. A run in which wrk sees a non-2xx answer or a socket error
# fails the script.
measure() { # name, port, wrk cpus, pids to charge CPU to...
  local name=$1 port=$2 wrk_cpus=$3; shift 3
  local url="http://127.0.0.1:$port/"
  taskset -c "$wrk_cpus" wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d2s "$url" >/dev/null
  local before sys_before side_before out after sys_after side_after steal_before steal
  before="$(ticks_of "$@")" sys_before="$(sys_ticks_of "$@")" side_before="$(side_totals)"
  steal_before="$(steal_ticks)"
  out="$(taskset -c "$wrk_cpus" wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" \
    --latency "$url")"
  after="$(ticks_of "$@")" sys_after="$(sys_ticks_of "$@")" side_after="$(side_totals)"
  steal="$(awk -v t=$(($(steal_ticks) - steal_before)) -v hz="$HZ" -v s="$DURATION" \
    -v cpus="$(nproc)" 'BEGIN {printf "%.0f", 100 * t / hz / (s * cpus)}')"
  STEALS+="$steal "
  if echo "$out" | grep -q "Non-2xx\|Socket errors"; then
    echo "$name: wrk saw errors:" >&2
    echo "$out" >&2
    exit 1
  fi
  local requests rps p50 p99 cpu="-" sys="-"
  requests="$(echo "$out" | awk '/requests in/ {print $1}')"
  rps="$(echo "$out" | awk '/Requests\/sec/ {print $2}')"
  p50="$(to_us "$(echo "$out" | awk '$1 == "50%" {print $2}')")"
  p99="$(to_us "$(echo "$out" | awk '$1 == "99%" {print $2}')")"
  if [ "$#" -gt 0 ]; then
    cpu="$(awk -v t=$((after - before)) -v hz="$HZ" -v n="$requests" \
      'BEGIN {printf "%.1f", t / hz / n * 1e6}')"
    sys="$(awk -v t=$((sys_after - sys_before)) -v hz="$HZ" -v n="$requests" \
      'BEGIN {printf "%.1f", t / hz / n * 1e6}')"
  fi
  RPS[$name]+="$rps " P50[$name]+="$p50 " P99[$name]+="$p99 " CPU[$name]+="$cpu "
  SYS[$name]+="$sys "
  local i=0 counter per side=""
  read -ra side_before <<<"$side_before"
  read -ra side_after <<<"$side_after"
  for counter in "${SIDE_COUNTERS[@]}"; do
    per="$(awk -v d="$((side_after[i] - side_before[i]))" -v n="$requests" \
      'BEGIN {printf "%.2f", d / n}')"
    SIDE[$name:${counter%%:*}]+="$per "
    side+="  ${counter%%:*} $per"
    i=$((i + 1))
  done
  printf '  %-9s %9.0f req/s  p50 %7.0f us  p99 %7.0f us  CPU %5s us/request (system %4s)%s  steal %s%%\n' \
    "$name" "$rps" "$p50" "$p99" "$cpu" "$sys" "$side" "$steal"
}

# The host's steal time over the timed runs since the last call: median and largest share.
print_steal() {
  # shellcheck disable=SC2086 # the list is space-separated on purpose
  echo "  host steal time during the timed runs: median $(median $STEALS) %, at most" \
    "$(printf '%s\n' $STEALS | sort -g | tail -1) % of the machine's CPU time (above a few" \
    "per cent, the host was busy and the timings are not comparable with a quiet run's)"
  STEALS=""
}

# The medians of one target's runs, in `measure`'s format.
print_medians() { # name
  local name=$1 counter side=""
  # shellcheck disable=SC2086 # the lists are space-separated on purpose
  for counter in "${SIDE_COUNTERS[@]}"; do
    side+="  ${counter%%:*} $(median ${SIDE[$name:${counter%%:*}]})"
  done
  # shellcheck disable=SC2086
  printf '  %-9s %9.0f req/s  p50 %7.0f us  p99 %7.0f us  CPU %5s us/request (system %4s)%s\n' \
    "$name" "$(median ${RPS[$name]})" "$(median ${P50[$name]})" "$(median ${P99[$name]})" \
    "$(median ${CPU[$name]})" "$(median ${SYS[$name]})" "$side"
}

#!/usr/bin/env bash
# Benchmarks over loopback, in one run, and prints one table; raw JSON lines go to
# bench/results/latest.jsonl.
#
# The default suite (issue 16) puts Switchboard (smol and std runtimes) beside InspIRCd 3
# and ngIRCd (Debian packages, installed with apt-get when missing and the script runs as
# root; a server that cannot be installed or started is skipped with a message), each
# started by this script on a free loopback port with the permissive configs in
# bench/ircd/ and stopped by PID. Every figure is printed with its ratio to InspIRCd's:
#   paced    100 clients in one room, 10 senders, 2,000 msgs/s (200,000 deliveries/s):
#            server CPU per delivery, p99
#   closed   the same room, closed loop (window 64 per sender), 20,000 messages
#            (CLOSED_MESSAGES; DELIVERIES / 100): deliveries/s, CPU/delivery
#   idle     10,000 and 19,000 connections that register and join rooms of 100: RSS per
#            connection, connect+hello+join per second and the server's CPU for it
# Native rows (Switchboard only) are compared with InspIRCd's IRC figure for the same work.
# Each row also records the server's and loadgen's CPU use (percent of a core), which says
# which process was the bound.
#
#   bench/run.sh                      # the comparison, one run per row (about 12 minutes
#                                     # on 2 cores, build included)
#   RUNS_COMPARE=3 bench/run.sh       # the median of 3 runs per row (about 30 minutes)
#   QUICK=1 bench/run.sh              # small sizes, one run: a smoke test (4 minutes)
#   SERVERS="smol inspircd" bench/run.sh
#   SUITE=runtimes bench/run.sh       # the older matrix: every runtime, fan-out at 10,
#                                     # 100, 1,000, latency, idle 1k/10k/19k
#   HISTORY_ONLY=1 bench/run.sh       # only fan-out N=100 with history off and on
#   LOADGEN_THREADS=1 bench/run.sh    # loadgen's --threads (default: the number of cores)
#   COMPARE_ROWS=idle COMPARE_IDLE_N=19000 SERVERS=smol OUT=/tmp/x.jsonl bench/run.sh
#                                     # some rows only, into another file
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
QUICK=${QUICK:-0}
RUNTIMES=${RUNTIMES:-"smol async-std std"}
FANOUT_N=${FANOUT_N:-"10 100 1000"}
IDLE_N=${IDLE_N:-"1000 10000 19000"}
DELIVERIES=${DELIVERIES:-2000000}   # per fan-out run
HISTORY_ONLY=${HISTORY_ONLY:-0}
SUITE=${SUITE:-compare}
SERVERS=${SERVERS:-"inspircd ngircd smol std"}
COMPARE_IDLE_N=${COMPARE_IDLE_N:-"10000 19000"}
COMPARE_ROWS=${COMPARE_ROWS:-"fanout idle"}   # which rows of the comparison to run
STD_IDLE_MAX=${STD_IDLE_MAX:-10000}   # std holds two threads per connection
if [ "$QUICK" = 1 ]; then
  RUNS=1 FANOUT_N="10 100" IDLE_N="1000" DELIVERIES=200000 COMPARE_IDLE_N="1000"
fi
if [ "$SUITE" = compare ] && [ "$HISTORY_ONLY" != 1 ]; then
  RUNS=${RUNS_COMPARE:-1}
fi
threads_flag=()
[ -n "${LOADGEN_THREADS:-}" ] && threads_flag=(--threads "$LOADGEN_THREADS")

# Both the servers and the load generator hold one descriptor per connection.
ulimit -n "$(ulimit -Hn)"
echo "open-file limit: $(ulimit -n)" >&2
# The std runtime takes two threads per connection; at 19,000 connections that passes the
# default memory-map (65,530) and pid (32,768) limits. Raise them where allowed (root);
# otherwise the std server refuses connections past what the limits allow, and says so.
if [ "$(cat /proc/sys/vm/max_map_count 2>/dev/null || echo 0)" -lt 262144 ]; then
  sysctl -qw vm.max_map_count=262144 2>/dev/null || echo "cannot raise vm.max_map_count" >&2
fi
if [ "$(cat /proc/sys/kernel/pid_max 2>/dev/null || echo 0)" -lt 131072 ]; then
  sysctl -qw kernel.pid_max=131072 2>/dev/null || echo "cannot raise kernel.pid_max" >&2
fi

cargo build --release --examples --all-features >&2
bin=target/release/examples
mkdir -p bench/results
out=${OUT:-bench/results/latest.jsonl}
: > "$out"

server_pid=""
server_addr=""
# The example servers default to 90 % of their open-file limit (17,936 at 20,000), less
# than the 19,000-connection rows need; every connection takes one descriptor.
max_conns=$(($(ulimit -n) - 100))
# Whatever this script started is stopped when it ends, however it ends.
ircd_conf=""
trap 'stop_server; [ -z "$ircd_conf" ] || rm -f "$ircd_conf"' EXIT
trap 'exit 130' INT TERM

start_server() { # runtime [extra server flags...]; history is off unless the flags say
  local log rt=$1
  shift
  log=$(mktemp)
  # Flood control off and a deep outbound queue: the benchmark measures throughput, not
  # the protection against abusive clients. Keepalive far away so it does not interfere.
  "$bin/$rt-server" --listen 127.0.0.1:0 --quiet --msg-rate 0 \
    --max-outbound-bytes 16777216 --ping-interval-ms 600000 --idle-timeout-ms 1200000 \
    --hello-timeout-ms 60000 --max-conns-per-ip 1000000 --max-conns "$max_conns" \
    "${@:---no-history}" >"$log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    server_addr=$(sed -n 's/^listening on //p' "$log")
    [ -n "$server_addr" ] && break
    sleep 0.1
  done
  rm -f "$log"
  if [ -z "$server_addr" ]; then
    echo "the $rt server did not start" >&2
    stop_server
    return 1
  fi
}

stop_server() {
  [ -n "$server_pid" ] || return 0
  kill -TERM "$server_pid" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

record() { # runtime label json-line
  printf '{"runtime":"%s","label":"%s","result":%s}\n' "$1" "$2" "$3" >>"$out"
}

loadgen() { # runtime label args...
  local rt=$1 label=$2
  shift 2
  local line
  if ! line=$("$bin/loadgen" --server "$server_addr" --server-pid "$server_pid" --quiet \
    "${threads_flag[@]}" "$@" | tail -n 1); then
    echo "loadgen failed: $rt $label" >&2
  fi
  record "$rt" "$label" "${line:-{\"error\":\"no output\"\}}"
}

# Fan-out at N=100 with history off and on, side by side in one run: the cost of storing
# every message (SQLite, WAL, one transaction per batch) on a fresh data directory.
history_fanout() { # runtime
  local rt=$1 m=$((DELIVERIES / 1000)) data
  for r in $(seq "$RUNS"); do
    echo "   fan-out N=100, history off then on, run $r" >&2
    start_server "$rt"
    loadgen "$rt" "fanout-100-nohist" --clients 100 --senders 10 --messages "$m" --size 64 --window 64
    stop_server
    data=$(mktemp -d)
    start_server "$rt" --data-dir "$data"
    loadgen "$rt" "fanout-100-hist" --clients 100 --senders 10 --messages "$m" --size 64 --window 64
    stop_server
    rm -rf "$data"
  done
}

if [ "$HISTORY_ONLY" = 1 ]; then
  for rt in $RUNTIMES; do
    echo "== $rt" >&2
    history_fanout "$rt"
  done
  python3 bench/table.py "$out"
  exit 0
fi

# ---- The comparison with InspIRCd and ngIRCd (issue 16) ----

ircd_bin() { # name: its binary, or nothing
  command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; } || true
}

# Installs the Debian packages of the IRC servers that are missing, when it can.
install_ircds() {
  local missing=()
  for s in $SERVERS; do
    case $s in
      inspircd | ngircd) [ -n "$(ircd_bin "$s")" ] || missing+=("$s") ;;
    esac
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "cannot install ${missing[*]} (needs root and apt-get); they are skipped" >&2
    return 0
  fi
  echo "installing ${missing[*]} with apt-get" >&2
  # The packages' own service is not used: each server here runs from its committed
  # config on a port of its own.
  apt-get update -qq >&2 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2 ||
    echo "apt-get could not install ${missing[*]}; the missing ones are skipped" >&2
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts one of the IRC servers; returns 1 (and says why) if it cannot.
start_ircd() { # inspircd|ngircd
  local name=$1 exe port log
  exe=$(ircd_bin "$name")
  if [ -z "$exe" ]; then
    echo "   $name is not installed: skipped" >&2
    return 1
  fi
  port=$(free_port)
  ircd_conf=$(mktemp --suffix ".$name.conf")
  sed "s/@PORT@/$port/" "bench/ircd/$name.conf" >"$ircd_conf"
  log=$(mktemp)
  case $name in
    inspircd)
      local root=()
      [ "$(id -u)" = 0 ] && root=(--runasroot)
      "$exe" --nofork --nopid --nolog "${root[@]}" --config="$ircd_conf" >"$log" 2>&1 &
      ;;
    ngircd) "$exe" --nodaemon --config "$ircd_conf" >"$log" 2>&1 & ;;
  esac
  server_pid=$!
  server_addr="127.0.0.1:$port"
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      rm -f "$log"
      return 0
    fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "   $name did not start; skipped. Its output:" >&2
  sed 's/^/     /' "$log" >&2
  rm -f "$log"
  stop_server
  return 1
}

# Starts server $1 (a runtime or an IRC server); returns 1 if it cannot.
start_any() {
  case $1 in
    inspircd | ngircd) start_ircd "$1" ;;
    *) start_server "$1" ;;
  esac
}

stop_any() {
  stop_server
  [ -n "$ircd_conf" ] && rm -f "$ircd_conf"
  ircd_conf=""
}

# Connections set up at once in the idle rows: each server at a concurrency its
# registration handles. InspIRCd completes a registration on its once-a-second timer, so it
# needs many in flight; ngIRCd's registrations stall with more than a few in flight (16 at
# once gave 290/s, 4 gave 3,600/s on the 2-core machine); Switchboard takes the default.
idle_concurrency() {
  case $1 in
    inspircd) echo 2000 ;;
    ngircd) echo 4 ;;
    *) echo 128 ;;
  esac
}

compare_suite() {
  install_ircds
  # Closed-loop rows of 2,000 messages took about a second and varied by 40 % from run to
  # run; 20,000 messages (ten times DELIVERIES / 1000) give steady figures.
  local protos m=${CLOSED_MESSAGES:-$((DELIVERIES / 100))}
  for s in $SERVERS; do
    echo "== $s" >&2
    case $s in
      inspircd | ngircd) protos="irc" ;;
      *) protos="irc native" ;;
    esac
    for r in $(seq "$RUNS"); do
      [[ " $COMPARE_ROWS " == *" fanout "* ]] || break
      start_any "$s" || continue 2
      for p in $protos; do
        echo "   paced 200k deliveries/s, $p, run $r" >&2
        loadgen "$s" "paced-200k/$p" --protocol "$p" --clients 100 --senders 10 \
          --rate 2000 --messages 600 --size 64
        echo "   closed loop N=100, $p, run $r" >&2
        loadgen "$s" "closed-100/$p" --protocol "$p" --clients 100 --senders 10 \
          --messages "$m" --size 64 --window 64
      done
      stop_any
    done
    for n in $COMPARE_IDLE_N; do
      [[ " $COMPARE_ROWS " == *" idle "* ]] || break
      if [ "$s" = std ] && [ "$n" -gt "$STD_IDLE_MAX" ]; then
        continue
      fi
      for p in $protos; do
        for r in $(seq "$RUNS"); do
          echo "   idle N=$n, $p, run $r" >&2
          # A fresh server each time: resident memory does not shrink back between runs.
          start_any "$s" || continue 4
          loadgen "$s" "idle-$n/$p" --protocol "$p" --idle "$n" --hold 2 --timeout 300 \
            --concurrency "$(idle_concurrency "$s")"
          stop_any
        done
      done
    done
  done
  python3 bench/table.py --compare "$out"
}

if [ "$SUITE" = compare ]; then
  echo "loadgen threads: ${LOADGEN_THREADS:-the number of cores ($(nproc))}; load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  compare_suite
  echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  exit 0
fi

for rt in $RUNTIMES; do
  echo "== $rt" >&2
  history_fanout "$rt"
  start_server "$rt"
  for n in $FANOUT_N; do
    m=$((DELIVERIES / (10 * n)))
    for r in $(seq "$RUNS"); do
      echo "   fan-out N=$n run $r" >&2
      loadgen "$rt" "fanout-$n" --clients "$n" --senders 10 --messages "$m" --size 64 --window 64
    done
  done
  for r in $(seq "$RUNS"); do
    echo "   latency run $r" >&2
    # 100 clients, 2,000 messages/s: 200,000 deliveries per second.
    loadgen "$rt" "latency-200k" --clients 100 --senders 10 --rate 2000 --messages 600 --size 64
    # 500 clients at a light load: 50 messages/s, 25,000 deliveries per second.
    loadgen "$rt" "latency-500" --clients 500 --senders 10 --rate 50 --messages 50 --size 64
  done
  for r in $(seq "$RUNS"); do
    echo "   irc fan-out N=100 run $r" >&2
    loadgen "$rt" "irc-fanout-100" --protocol irc --clients 100 --senders 10 \
      --messages $((DELIVERIES / 1000)) --size 64 --window 64
  done
  stop_server
  for n in $IDLE_N; do
    for r in $(seq "$RUNS"); do
      echo "   idle N=$n run $r" >&2
      # A fresh server each time: resident memory does not shrink back between runs.
      start_server "$rt"
      loadgen "$rt" "idle-$n" --idle "$n" --hold 2 --timeout 120
      stop_server
    done
  done
done

python3 bench/table.py "$out"

#!/usr/bin/env bash
# Benchmarks every runtime's example server side by side, in one run, over loopback:
# fan-out at 10, 100 and 1,000 clients in one room (10 senders, 64-byte messages), latency
# at a fixed rate, idle capacity at 1,000, 10,000 and 19,000 connections, and IRC fan-out.
# Each figure is the median of RUNS runs (default 3). Prints one table; raw JSON lines go
# to bench/results/latest.jsonl.
#
#   bench/run.sh                 # everything (about 10 minutes)
#   QUICK=1 bench/run.sh         # small sizes, one run: a smoke test of the script
#   RUNTIMES="smol std" bench/run.sh
#   HISTORY_ONLY=1 bench/run.sh  # only fan-out N=100 with history off and on
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
QUICK=${QUICK:-0}
RUNTIMES=${RUNTIMES:-"smol async-std std"}
FANOUT_N=${FANOUT_N:-"10 100 1000"}
IDLE_N=${IDLE_N:-"1000 10000 19000"}
DELIVERIES=${DELIVERIES:-2000000}   # per fan-out run
HISTORY_ONLY=${HISTORY_ONLY:-0}
if [ "$QUICK" = 1 ]; then
  RUNS=1 FANOUT_N="10 100" IDLE_N="1000" DELIVERIES=200000
fi

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
out=bench/results/latest.jsonl
: > "$out"

server_pid=""
server_addr=""

start_server() { # runtime [extra server flags...]; history is off unless the flags say
  local log rt=$1
  shift
  log=$(mktemp)
  # Flood control off and a deep outbound queue: the benchmark measures throughput, not
  # the protection against abusive clients. Keepalive far away so it does not interfere.
  "$bin/$rt-server" --listen 127.0.0.1:0 --quiet --msg-rate 0 \
    --max-outbound-bytes 16777216 --ping-interval-ms 600000 --idle-timeout-ms 1200000 \
    --hello-timeout-ms 60000 --max-conns-per-ip 1000000 "${@:---no-history}" >"$log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    server_addr=$(sed -n 's/^listening on //p' "$log")
    [ -n "$server_addr" ] && break
    sleep 0.1
  done
  rm -f "$log"
  if [ -z "$server_addr" ]; then
    echo "the $rt server did not start" >&2
    exit 1
  fi
}

stop_server() {
  kill -TERM "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
}

record() { # runtime label json-line
  printf '{"runtime":"%s","label":"%s","result":%s}\n' "$1" "$2" "$3" >>"$out"
}

loadgen() { # runtime label args...
  local rt=$1 label=$2
  shift 2
  local line
  if ! line=$("$bin/loadgen" --server "$server_addr" --server-pid "$server_pid" --quiet "$@" | tail -n 1); then
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

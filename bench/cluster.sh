#!/usr/bin/env bash
# The cluster's cost (issue 15), in one run: one room of 100 clients (10 senders, 64-byte
# messages) on one plain server (column `single`), on one cluster node (`cluster-1`), and
# split over two cluster nodes (`cluster-2`, clients alternating between them); fan-out
# deliveries/s and latency at a fixed rate. Starts its own redis-server (Debian's) on a free
# loopback port. Each figure is the median of RUNS runs (default 3). Prints one table; raw
# JSON lines go to bench/results/cluster.jsonl.
#
#   bench/cluster.sh               # smol; RUNTIME=std or RUNTIME=async-std for the others
#   QUICK=1 bench/cluster.sh       # one short run: a smoke test of the script
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
RT=${RUNTIME:-smol}
DELIVERIES=${DELIVERIES:-2000000}
if [ "${QUICK:-0}" = 1 ]; then
  RUNS=1 DELIVERIES=200000
fi
command -v redis-server >/dev/null || { echo "needs redis-server (apt-get install redis-server)" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"

cargo build --release --examples --all-features >&2
bin=target/release/examples
mkdir -p bench/results
out=bench/results/cluster.jsonl
: > "$out"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
redis_pid=$!
pids=()
cleanup() {
  for p in "${pids[@]}" "$redis_pid"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.1
done
redis="redis://127.0.0.1:$redis_port"

addrs=()
start_node() { # [server flags...]: appends the node's address to addrs
  local log addr=""
  log=$(mktemp)
  # As bench/run.sh: flood control off, a deep outbound queue, keepalive far away.
  "$bin/$RT-server" --listen 127.0.0.1:0 --quiet --msg-rate 0 --no-history \
    --max-outbound-bytes 16777216 --ping-interval-ms 600000 --idle-timeout-ms 1200000 \
    --hello-timeout-ms 60000 --max-conns-per-ip 1000000 "$@" >"$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    addr=$(sed -n 's/^listening on //p' "$log")
    [ -n "$addr" ] && break
    sleep 0.1
  done
  rm -f "$log"
  [ -n "$addr" ] || { echo "the $RT server did not start" >&2; exit 1; }
  addrs+=("$addr")
}

stop_nodes() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
  addrs=()
}

loadgen() { # setup label args...
  local setup=$1 label=$2 line also=()
  shift 2
  for a in "${addrs[@]:1}"; do also+=(--also "$a"); done
  if ! line=$("$bin/loadgen" --server "${addrs[0]}" "${also[@]}" --quiet "$@" | tail -n 1); then
    echo "loadgen failed: $setup $label" >&2
  fi
  printf '{"runtime":"%s","label":"%s","result":%s}\n' "$setup" "$label" "${line:-{\"error\":\"no output\"\}}" >>"$out"
}

m=$((DELIVERIES / 1000))
for setup in single cluster-1 cluster-2; do
  echo "== $RT, $setup" >&2
  case $setup in
    single) start_node ;;
    cluster-1) start_node --cluster "$redis" --node-name n1 ;;
    cluster-2)
      start_node --cluster "$redis" --node-name n1
      start_node --cluster "$redis" --node-name n2
      ;;
  esac
  for r in $(seq "$RUNS"); do
    echo "   fan-out N=100 run $r" >&2
    loadgen "$setup" "fanout-100" --clients 100 --senders 10 --messages "$m" --size 64 --window 64
    echo "   latency run $r" >&2
    # 100 clients, 2,000 messages/s: 200,000 deliveries per second.
    loadgen "$setup" "latency-200k" --clients 100 --senders 10 --rate 2000 --messages 600 --size 64
  done
  stop_nodes
done

python3 bench/table.py "$out"

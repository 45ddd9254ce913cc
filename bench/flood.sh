#!/usr/bin/env bash
# Flood benchmark, every runtime's example server in turn, over loopback:
#  - room: flood control off (--msg-rate 0), 10 clients flooding one room of 100 as fast as
#    their sockets take it, while 2 healthy members whisper back and forth; prints the
#    healthy pair's round trips (target: p99 under 20 ms) and whether any healthy member
#    was closed (target: none).
#  - pong: default limits, one client sending pongs as fast as it can; prints the server's
#    CPU share (target: under 5 % of a core) and how many pongs a second it took in.
#
#   bench/flood.sh                   # 10 s per scenario and runtime
#   SECS=3 RUNTIMES=smol bench/flood.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${SECS:-10}
RUNTIMES=${RUNTIMES:-"smol async-std std"}
ulimit -n "$(ulimit -Hn)"
cargo build --release --examples --all-features >&2
bin=target/release/examples
mkdir -p bench/results
out=bench/results/flood.jsonl
: > "$out"

start_server() { # runtime flags...
  local rt=$1 log
  shift
  log=$(mktemp)
  "$bin/$rt-server" --listen 127.0.0.1:0 --quiet "$@" >"$log" 2>&1 &
  server_pid=$!
  server_addr=""
  for _ in $(seq 100); do
    server_addr=$(sed -n 's/^listening on //p' "$log")
    [ -n "$server_addr" ] && break
    sleep 0.1
  done
  rm -f "$log"
  [ -n "$server_addr" ] || { echo "the $rt server did not start" >&2; exit 1; }
}

stop_server() {
  kill -TERM "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
}

for rt in $RUNTIMES; do
  echo "== $rt: room flood, flood control off" >&2
  start_server "$rt" --msg-rate 0
  line=$("$bin/floodbench" room "$server_addr" "$SECS" | tee /dev/stderr | tail -n 1)
  printf '{"runtime":"%s","result":%s}\n' "$rt" "$line" >>"$out"
  stop_server
  echo "== $rt: one pong flooder, default limits" >&2
  start_server "$rt"
  line=$("$bin/floodbench" pong "$server_addr" "$SECS" "$server_pid" | tee /dev/stderr | tail -n 1)
  printf '{"runtime":"%s","result":%s}\n' "$rt" "$line" >>"$out"
  stop_server
done
cat "$out"

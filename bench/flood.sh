#!/usr/bin/env bash
# Flood benchmark, every runtime's example server in turn, over loopback:
#  - room: flood control off (--msg-rate 0), 10 clients flooding one room of 100 as fast as
#    their sockets take it, while 2 healthy members whisper back and forth; prints the
#    healthy pair's round trips (target: p99 under 20 ms) and whether any healthy member
#    was closed (target: none). Run twice back to back: output pacing on (the default)
#    and off (--outbound-high-water at the outbound limit), for the ratio.
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
  # Paced (the default) and unpaced back to back, so the ratio is fair on a noisy machine.
  for pacing in on off; do
    flags=(--msg-rate 0 --max-conns-per-ip 1000)
    [ "$pacing" = off ] && flags+=(--outbound-high-water 1048576)
    echo "== $rt: room flood, flood control off, output pacing $pacing" >&2
    start_server "$rt" "${flags[@]}"
    line=$("$bin/floodbench" room "$server_addr" "$SECS" | tee /dev/stderr | tail -n 1)
    printf '{"runtime":"%s","pacing":"%s","result":%s}\n' "$rt" "$pacing" "$line" >>"$out"
    stop_server
  done
  echo "== $rt: one pong flooder, default limits" >&2
  start_server "$rt"
  line=$("$bin/floodbench" pong "$server_addr" "$SECS" "$server_pid" | tee /dev/stderr | tail -n 1)
  printf '{"runtime":"%s","pacing":"on","result":%s}\n' "$rt" "$line" >>"$out"
  stop_server
done
cat "$out"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
room = {(r["runtime"], r["pacing"]): r["result"] for r in rows if r["result"]["mode"] == "room"}
pong = {r["runtime"]: r["result"] for r in rows if r["result"]["mode"] == "pong"}
print(f'{"runtime":<10} {"pacing":<6} {"trips":>6} {"p50 ms":>8} {"p99 ms":>8} {"max ms":>8} {"flood msgs":>11} {"KB/s/member":>11} {"members closed":>14} {"flooders closed":>15}')
for rt in dict.fromkeys(r["runtime"] for r in rows):
    for pacing in ("on", "off"):
        r = room.get((rt, pacing))
        if r:
            closed = r["passive_closed"] + int(r["pair_closed"])
            print(f'{rt:<10} {pacing:<6} {r["round_trips"]:>6} {r["p50_ms"]:>8.2f} {r["p99_ms"]:>8.2f} {r["max_ms"]:>8.2f} {r["flood_sent"]:>11} {r["member_bytes_per_sec"] / 1000:>11.0f} {closed:>14} {r["flooders_closed"]:>15}')
    on, off = room.get((rt, "on")), room.get((rt, "off"))
    if on and off and off["p99_ms"] > 0:
        print(f'{rt:<10} on/off p99 {on["p99_ms"] / off["p99_ms"]:.2f}x, delivered to members {on["member_bytes_per_sec"] / max(off["member_bytes_per_sec"], 1):.2f}x')
    if rt in pong:
        print(f'{rt:<10} pong flooder: server CPU {pong[rt]["server_cpu_percent"]:.2f} % of a core')
PY

#!/usr/bin/env bash
# TLS cost on smol, side by side with plain text in one run against one server (a plain
# and a TLS listener): fan-out deliveries/s at 100 clients (10 senders, 64-byte messages)
# and connections set up per second (TCP connect, TLS handshake, hello, welcome) at 1,000
# clients. Median of RUNS runs (default 3). The certificate is made here (P-256 ECDSA,
# self-signed) and deleted afterwards.
#
#   bench/tls.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DELIVERIES=${DELIVERIES:-2000000}
ulimit -n "$(ulimit -Hn)"
cargo build --release --example smol-server --example loadgen >&2
bin=target/release/examples
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -keyout "$dir/key.pem" -out "$dir/cert.pem" -subj /CN=localhost \
  -addext subjectAltName=IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE 2>/dev/null
"$bin/smol-server" --listen 127.0.0.1:0 --tls-listen 127.0.0.1:0 \
  --tls-cert "$dir/cert.pem" --tls-key "$dir/key.pem" --quiet --msg-rate 0 \
  --max-outbound-bytes 16777216 --ping-interval-ms 600000 --idle-timeout-ms 1200000 \
  --hello-timeout-ms 60000 --max-conns-per-ip 1000000 >"$dir/log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  [ "$(grep -c '^listening on' "$dir/log")" -ge 2 ] && break
  sleep 0.1
done
plain=$(sed -n 's/^listening on //p' "$dir/log" | sed -n 1p)
tls=$(sed -n 's/^listening on //p' "$dir/log" | sed -n 2p)
out=$dir/results.jsonl
run() { # label args...
  local label=$1
  shift
  local line
  line=$("$bin/loadgen" --server-pid "$pid" --quiet "$@" | tail -n 1)
  printf '{"label":"%s","result":%s}\n' "$label" "$line" >>"$out"
}
for r in $(seq "$RUNS"); do
  echo "run $r" >&2
  m=$((DELIVERIES / 1000))
  run plain-fanout --server "$plain" --clients 100 --senders 10 --messages "$m" --size 64 --window 64
  run tls-fanout --server "$tls" --ca "$dir/cert.pem" --clients 100 --senders 10 --messages "$m" --size 64 --window 64
  run plain-connect --server "$plain" --idle 1000 --hold 1 --timeout 120
  run tls-connect --server "$tls" --ca "$dir/cert.pem" --idle 1000 --hold 1 --timeout 120
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(label, key):
    v = [r["result"][key] for r in rows if r["label"] == label and key in r["result"]]
    return statistics.median(v) if v else float("nan")
print("| smol, 100 clients fan-out / 1,000 connects | plain | TLS | TLS / plain |")
print("|---|---|---|---|")
for name, key, a, b in [
    ("fan-out deliveries/s", "deliveries_per_sec", "plain-fanout", "tls-fanout"),
    ("server CPU ns per delivery", "server_cpu_ns_per_delivery", "plain-fanout", "tls-fanout"),
    ("fan-out p99 latency, us", "p99_us", "plain-fanout", "tls-fanout"),
    ("connections set up/s (TLS: handshakes/s)", "registrations_per_sec", "plain-connect", "tls-connect"),
]:
    x, y = med(a, key), med(b, key)
    ratio = f"{y / x:.2f}" if x else "n/a"
    print(f"| {name} | {x:,.0f} | {y:,.0f} | {ratio} |")
PY

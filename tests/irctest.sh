#!/usr/bin/env bash
# Runs irctest's RFC core profile (../shared/IRCTEST.md) against a freshly started example
# server of every runtime; exits non-zero if any test fails or anything is missing.
#
#   tests/irctest.sh [PROFILE [PYTEST ARGS...]]
#     PROFILE: core (default), modes, wide, ircv3 (../shared/irctest-run.sh's profiles), or
#     chathistory: irctest's chathistory tests with history on, and its message-tags and
#     echo-message tests. The chathistory tests ask for `sasl` and are marked as needing
#     services though the ones that run here use neither (those that do register accounts
#     and skip); they run from a copy of irctest with those two things taken out
#     (docs/IRC.md, irctest). The copy goes to the log directory; ../shared is untouched.
#
# Needs python3 (with venv) and the shared irctest copy beside the clone (../shared, or
# SHARED=DIR). The virtual environment is made once, from PyPI, in target/irctest-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SHARED=${SHARED:-$ROOT/../shared}
PROFILE=${1:-core}
shift || true
RUNNER=$SHARED/irctest-run.sh
if [ ! -x "$RUNNER" ] || [ ! -d "$SHARED/irctest" ]; then
  echo "irctest.sh: no irctest at $SHARED (set SHARED=DIR)" >&2
  exit 1
fi

VENV=$ROOT/target/irctest-venv
if ! "$VENV/bin/python" -c 'import pytest, pytest_timeout' 2>/dev/null; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet -r "$SHARED/irctest/requirements.txt" pytest-timeout
fi
export IRCTEST_PYTHON=$VENV/bin/python IRCTEST_PROFILE=$PROFILE

# The operator the modes profile uses: operuser / operpassword.
OPER_HASH=$(printf %s operpassword | "$IRCTEST_PYTHON" -c \
  'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')

cargo build --quiet --all-features --example smol-server --example async-std-server \
  --example std-server

failed=()
LOGDIR=$(mktemp -d -t irctest-ci.XXXXXX)

# The chathistory profile runs pytest itself, on the copy described above; the same summary
# line as irctest-run.sh's, and exit 1 if anything failed.
if [ "$PROFILE" = chathistory ]; then
  cp -r "$SHARED/irctest" "$LOGDIR/irctest"
  "$IRCTEST_PYTHON" - "$LOGDIR/irctest/irctest/server_tests/chathistory.py" <<'EOF'
import re, sys
path = sys.argv[1]
text = open(path).read()
patched = re.sub(r'\n\s*"sasl",', "", text)
marked = '@cases.mark_specifications("IRCv3")\n@cases.mark_services\nclass ChathistoryTestCase'
if marked not in patched:
    sys.exit("irctest.sh: chathistory.py no longer looks as expected; update the patch")
patched = patched.replace(marked, marked.replace("@cases.mark_services\n", ""))
open(path, "w").write(patched)
EOF
  RUNNER=$LOGDIR/chathistory-run.sh
  cat >"$RUNNER" <<'EOF'
#!/usr/bin/env bash
# chathistory-run.sh HOST PORT [pytest args]: the chathistory profile (see tests/irctest.sh).
set -uo pipefail
HOST=$1 PORT=$2
shift 2
cd "$IRCTEST_DIR"
export IRCTEST_SERVER_HOSTNAME=$HOST IRCTEST_SERVER_PORT=$PORT
S=irctest/server_tests
timeout -k 10 300 "$IRCTEST_PYTHON" -m pytest -p no:cacheprovider -v -rfE --tb=short \
  --timeout 20 --controller irctest.controllers.external_server "$@" \
  $S/chathistory.py::ChathistoryTestCase $S/message_tags.py $S/echo_message.py \
  >"$IRCTEST_LOG" 2>&1
rc=$?
summary=$(grep -E '^=+ .*(passed|failed|skipped|error).* in ' "$IRCTEST_LOG" | tail -n 1)
n() { echo "$summary" | grep -oE "[0-9]+ $1" | grep -oE '[0-9]+' || echo 0; }
echo "run: log $IRCTEST_LOG"
echo "$(n passed) passed, $(( $(n failed) + $(n error) )) failed, $(n skipped) skipped"
exit $(( rc != 0 ))
EOF
  chmod +x "$RUNNER"
  export IRCTEST_DIR=$LOGDIR/irctest
fi

# Starts the example server $1 (log files named $2) and sets `pid` and `addr`.
start() {
  local server=$1 name=$2 out=$LOGDIR/$2.out
  # Flood control is relaxed: irctest sends bursts faster than the default rate allows.
  # Every irctest client comes from 127.0.0.1, and a test may connect before the server
  # has seen the last test's clients close: the per-address limit is raised.
  "$ROOT/target/debug/examples/$server" --listen 127.0.0.1:0 --quiet \
    --server-name My.Little.Server --msg-rate 0 --oper "operuser:$OPER_HASH" \
    --data-dir "$LOGDIR/$name-data" \
    --max-conns-per-ip 1000 \
    >"$out" 2>"$LOGDIR/$name.err" &
  pid=$!
  addr=
  for _ in $(seq 100); do
    addr=$(sed -n 's/^listening on //p' "$out" | head -n1)
    [ -n "$addr" ] && return 0
    sleep 0.1
  done
  echo "irctest.sh: $server did not start: $(cat "$LOGDIR/$name.err")" >&2
  kill "$pid" 2>/dev/null || true
  return 1
}

stop() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

for server in smol-server async-std-server std-server; do
  start "$server" "$server" || { failed+=("$server (did not start)"); continue; }
  echo "== $server on $addr, $PROFILE profile"
  if IRCTEST_LOG=$LOGDIR/$server.log "$RUNNER" "${addr%:*}" "${addr##*:}" "$@" \
      | tail -n 2; then
    stop
    continue
  fi
  stop
  grep -E '^(FAILED|ERROR) ' "$LOGDIR/$server.log" || true
  # irctest closes a client and at once signs in another with the same nick. The std
  # runtime reads each connection on its own thread, so on a busy machine the new
  # connection's NICK may be handled before the old one's end of stream, and the nick is
  # still taken (docs/IRC.md). On std only, the failed tests run once more on a fresh
  # server, one at a time as before; they must pass then. smol and async-std serve every
  # connection from one thread and get no second try.
  if [ "$server" = std-server ]; then
    names=$(sed -n -E 's/^(FAILED|ERROR) [^ ]*::([A-Za-z0-9_]+)(\[[^]]*\])?( .*)?$/\2/p' \
      "$LOGDIR/$server.log" | sort -u | paste -sd' ' | sed 's/ / or /g')
    if [ -n "$names" ] && start "$server" "$server-again"; then
      echo "== $server again on $addr, only: $names"
      if IRCTEST_LOG=$LOGDIR/$server-again.log "$RUNNER" "${addr%:*}" "${addr##*:}" \
          "$@" -k "$names" | tail -n 2; then
        echo "irctest.sh: $server passed the failed tests on a second run (see above)"
        stop
        continue
      fi
      stop
    fi
  fi
  failed+=("$server")
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "irctest.sh: failures on: ${failed[*]} (logs in $LOGDIR)" >&2
  exit 1
fi
echo "irctest.sh: $PROFILE profile passed on every runtime"

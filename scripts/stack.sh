#!/usr/bin/env bash
# Starts, stops and reports the local ktrdr stack: ib-sim, ib-host, data, training-host, gateway,
# each as a background process with its log and pid in $KTRDR_RUN_DIR (default ./run).
#
#   scripts/stack.sh start   # start everything not already running, wait until all are SERVING
#   scripts/stack.sh stop    # SIGTERM everything (SIGKILL after 15 s)
#   scripts/stack.sh status  # what runs, where, and its health
#
# BIN_DIR is where the binaries are (make run sets it); ports are the documented defaults.
set -euo pipefail

cd "$(dirname "$0")/.."
RUN_DIR=${KTRDR_RUN_DIR:-run}
BIN_DIR=${BIN_DIR:-target/release}
HEALTH_WAIT_SECONDS=${HEALTH_WAIT_SECONDS:-60}

# name  binary  gRPC address
SERVICES=(
  "ib-sim        ktrdr-ib-sim         127.0.0.1:50055"
  "ib-host       ktrdr-ib-host        127.0.0.1:50052"
  "data          ktrdr-data           127.0.0.1:50054"
  "training-host ktrdr-training-host  127.0.0.1:50053"
  "gateway       ktrdr-gateway        127.0.0.1:50051"
)

is_running() { [[ -f "$RUN_DIR/$1.pid" ]] && kill -0 "$(cat "$RUN_DIR/$1.pid")" 2>/dev/null; }

start() {
  mkdir -p "$RUN_DIR"
  for entry in "${SERVICES[@]}"; do
    read -r name binary addr <<<"$entry"
    if is_running "$name"; then
      echo "  $name already running (pid $(cat "$RUN_DIR/$name.pid"))"
      continue
    fi
    [[ -x "$BIN_DIR/$binary" ]] || { echo "missing $BIN_DIR/$binary: run 'make build-release' (make run does)" >&2; exit 1; }
    KTRDR_LISTEN_ADDR="$addr" nohup "$BIN_DIR/$binary" >"$RUN_DIR/$name.log" 2>&1 &
    echo $! >"$RUN_DIR/$name.pid"
    echo "  started $name ($binary) on $addr, pid $!, log $RUN_DIR/$name.log"
  done
  for entry in "${SERVICES[@]}"; do
    read -r name binary addr <<<"$entry"
    if ! "$BIN_DIR/ktrdr" health --url "http://$addr" --wait "$HEALTH_WAIT_SECONDS" >/dev/null; then
      echo "$name did not become healthy on $addr; last log lines:" >&2
      tail -n 20 "$RUN_DIR/$name.log" >&2 || true
      exit 1
    fi
    echo "  $name SERVING on $addr"
  done
}

stop() {
  local pids=()
  for entry in "${SERVICES[@]}"; do
    read -r name _ _ <<<"$entry"
    if is_running "$name"; then
      kill -TERM "$(cat "$RUN_DIR/$name.pid")" && pids+=("$(cat "$RUN_DIR/$name.pid")") && echo "  stopping $name"
    fi
    rm -f "$RUN_DIR/$name.pid"
  done
  for _ in $(seq 1 150); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && { echo "stack stopped"; return 0; }
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  echo "stack stopped (some processes needed SIGKILL)"
}

status() {
  for entry in "${SERVICES[@]}"; do
    read -r name binary addr <<<"$entry"
    if is_running "$name"; then
      health=$("$BIN_DIR/ktrdr" health --url "http://$addr" 2>&1 | sed -n 1p || true)
      printf '  %-14s pid %-8s %-16s %s\n' "$name" "$(cat "$RUN_DIR/$name.pid")" "$addr" "$health"
    else
      printf '  %-14s stopped\n' "$name"
    fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac

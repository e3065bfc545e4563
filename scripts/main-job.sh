#!/usr/bin/env bash
# The main job of `make run`, through the gateway with the ktrdr CLI: load the example strategy's
# bars from IB (ib-sim by default) into the store, train the strategy, evaluate the model on
# its held-out test bars, then backtest it over its test part (costs included, fills at the next
# bar's open) and write an HTML report to run/backtest-report.html.
#
#   STRATEGY          strategy file (default strategies/rsi_bollinger_single.yaml)
#   MAIN_JOB_START    first bar to load and train on (default 2023-01-01)
#   MAIN_JOB_END      end of the range, exclusive (default 2024-07-01)
#   MAIN_JOB_EPOCHS   override of the strategy's epochs (default: the strategy's)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN_DIR=${BIN_DIR:-target/release}
KTRDR="$BIN_DIR/ktrdr"
STRATEGY=${STRATEGY:-strategies/rsi_bollinger_single.yaml}
START=${MAIN_JOB_START:-2023-01-01}
END=${MAIN_JOB_END:-2024-07-01}
EPOCHS=${MAIN_JOB_EPOCHS:-}

echo "==> ktrdr train $STRATEGY --start $START --end $END${EPOCHS:+ --epochs $EPOCHS}"
echo "    (loads the strategy's symbols and timeframes from IB through the gateway, then trains)"
"$KTRDR" train "$STRATEGY" --start "$START" --end "$END" ${EPOCHS:+--epochs "$EPOCHS"}

name=$(sed -n 's/^name: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$STRATEGY" | sed -n 1p)
read -r model test_start < <("$KTRDR" --json models list | python3 -c '
import json, sys
name = sys.argv[1]
models = [m for m in json.load(sys.stdin)["models"] if m["strategy_name"] == name]
if models:
    fit = models[0].get("fit_range") or {}
    print(models[0]["model_id"], fit.get("end") or "")
' "$name")
[[ -n ${model:-} ]] || { echo "no model of strategy $name was saved" >&2; exit 1; }

echo
echo "==> ktrdr models evaluate $model   (its held-out test bars)"
"$KTRDR" models evaluate "$model"

echo
echo "==> ktrdr backtest $model --start $test_start --end $END --report run/backtest-report.html"
echo "    (the model's test part: bars it was not fitted on)"
mkdir -p run
"$KTRDR" backtest "$model" --start "$test_start" --end "$END" --report run/backtest-report.html

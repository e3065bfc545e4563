#!/usr/bin/env python3
"""Replays the engine's parity scenarios in backtesting.py 0.6.6 and compares.

Usage: backtest_parity.py DIR, where DIR holds the JSON files written by
`cargo run -p ktrdr-backtest --example backtest_parity -- DIR`: generated bars and class
probabilities, the settings, and the engine's trades, equity curve and metrics.

For each scenario a backtesting.py Strategy applies the same decision rules to the same
probabilities, written here independently of the engine (and counts what each rule dropped): the most probable class (first
maximum), a confidence threshold, a minimum number of bars and of time since the last
executed decision, long-only or shorts, close-only or reversal on an opposite signal. It runs
with next-open fills (trade_on_close=False), commission only, finalize_trades=True. The trade
list, the equity curve bar by bar and every metric backtesting.py reports must equal the
engine's to 1e-9 (absolute below 1, relative above), and the signal counts exactly. Exits non-zero on any mismatch; the last
line reads `backtest parity: N passed, M failed`.

`backtest_parity.py --time FILE` runs one scenario (no engine output needed) and prints
`seconds S` for backtesting.py's run alone: the benchmark's reference figure.
"""

import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

try:
    import backtesting
    from backtesting import Backtest, Strategy
    from backtesting.lib import FractionalBacktest
except ImportError:
    sys.exit("backtesting.py is missing: pip install backtesting==0.6.6 (.ci/run installs it)")
if backtesting.__version__ != "0.6.6":
    sys.exit(f"backtesting.py {backtesting.__version__} found; the parity check needs 0.6.6")

TOLERANCE = 1e-9
# What the engine's SignalCounts hold, counted here by the mirror strategy.
SIGNAL_COUNTS = (
    "bars_with_prediction",
    "raw_buy",
    "raw_sell",
    "raw_hold",
    "dropped_low_confidence",
    "dropped_too_soon",
    "dropped_already_positioned",
    "dropped_shorts_disabled",
    "dropped_last_bar",
    "dropped_unaffordable",
    "executed",
)
# The largest scaled difference seen among values that matched, for the report.
deviation = 0.0


def close(a, b):
    global deviation
    if a is None or b is None:
        return a is None and b is None
    scaled = abs(a - b) / max(1.0, abs(a), abs(b))
    if scaled <= TOLERANCE:
        deviation = max(deviation, scaled)
        return True
    return False


def as_number(value):
    """A stats value as a float in ms for times and durations; None for NaN/NaT."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return float(value.value // 1_000_000)
    if isinstance(value, pd.Timedelta):
        return value.value / 1_000_000
    value = float(value)
    return None if math.isnan(value) else value


def mirror_strategy(config, timestamps_ms, probabilities):
    n = len(timestamps_ms)
    sizing = config["sizing"]
    size = sizing["fraction"] if "fraction" in sizing else int(sizing["units"])

    class Mirror(Strategy):
        def init(self):
            self.last = None  # (decision bar, its timestamp) of the last executed order
            self.pending = None
            self.before = None
            self.counts = dict.fromkeys(SIGNAL_COUNTS, 0)

        def enter(self, side):
            if side > 0:
                self.buy(size=size)
            else:
                self.sell(size=size)

        def drop(self, reason):
            self.counts[reason] += 1

        def next(self):
            i = len(self.data) - 1
            if self.pending is not None:
                if (len(self.closed_trades), len(self.trades)) != self.before:
                    self.last = (self.pending, timestamps_ms[self.pending])
                    self.counts["executed"] += 1
                else:
                    self.counts["dropped_unaffordable"] += 1
                self.pending = None
            p = probabilities[i]
            if np.isnan(p).any():
                return
            self.counts["bars_with_prediction"] += 1
            cls = int(np.argmax(p))
            self.counts[("raw_buy", "raw_hold", "raw_sell")[cls]] += 1
            if cls == 1:
                return
            if float(p[cls]) < config["threshold"]:
                return self.drop("dropped_low_confidence")
            if self.last is not None and (
                i - self.last[0] < config["min_bars"]
                or timestamps_ms[i] - self.last[1] < config["min_time_ms"]
            ):
                return self.drop("dropped_too_soon")
            want = 1 if cls == 0 else -1
            held = int(np.sign(self.position.size))
            if held == want:
                return self.drop("dropped_already_positioned")
            if held == 0 and want < 0 and not config["allow_shorts"]:
                return self.drop("dropped_shorts_disabled")
            if i == n - 1:
                return self.drop("dropped_last_bar")  # no later open to fill at
            self.before = (len(self.closed_trades), len(self.trades))
            if held != 0:
                self.position.close()
                if config["reverse"] and (want > 0 or config["allow_shorts"]):
                    self.enter(want)
            else:
                self.enter(want)
            self.pending = i

    return Mirror


def run_backtesting_py(doc):
    config = doc["config"]
    bars = doc["bars"]
    timestamps_ms = bars["timestamp_ms"]
    data = pd.DataFrame(
        {
            "Open": bars["open"],
            "High": bars["high"],
            "Low": bars["low"],
            "Close": bars["close"],
            "Volume": bars["volume"],
        },
        index=pd.to_datetime(timestamps_ms, unit="ms"),
    )
    probabilities = np.array(
        [[np.nan if v is None else v for v in row] for row in doc["probabilities"]],
        dtype=np.float32,
    )
    strategy = mirror_strategy(config, timestamps_ms, probabilities)
    commission = config["commission"]
    if config["fixed_fee"]:
        commission = (config["fixed_fee"], commission)
    options = dict(
        cash=config["cash"],
        commission=commission,
        trade_on_close=False,
        hedging=False,
        exclusive_orders=False,
        finalize_trades=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if config["lot_step"] is not None:
            bt = FractionalBacktest(data, strategy, fractional_unit=config["lot_step"], **options)
        else:
            bt = Backtest(data, strategy, **options)
        return bt.run()


def compare(doc, stats):
    problems = []
    engine = doc["engine"]
    trades = stats["_trades"]
    mine = engine["trades"]
    if len(trades) != len(mine):
        problems.append(f"# trades: backtesting.py {len(trades)}, engine {len(mine)}")
    fields = [
        ("Size", lambda t: t["units"] * (1 if t["side"] == "Long" else -1)),
        ("EntryBar", lambda t: t["entry_bar"]),
        ("ExitBar", lambda t: t["exit_bar"]),
        ("EntryPrice", lambda t: t["entry_price"]),
        ("ExitPrice", lambda t: t["exit_price"]),
        ("PnL", lambda t: t["pnl"]),
        ("Commission", lambda t: t["commissions"]),
        ("ReturnPct", lambda t: t["return_fraction"]),
        ("EntryTime", lambda t: t["entry_time_ms"]),
        ("ExitTime", lambda t: t["exit_time_ms"]),
    ]
    for k, (row, t) in enumerate(zip(trades.itertuples(index=False), mine)):
        for column, get in fields:
            theirs = as_number(getattr(row, column))
            ours = float(get(t))
            if not close(theirs, ours):
                problems.append(f"trade {k} {column}: backtesting.py {theirs!r}, engine {ours!r}")
                break
    equity = stats["_equity_curve"]["Equity"].to_numpy()
    ours = engine["equity"]
    if len(equity) != len(ours):
        problems.append(f"equity length: backtesting.py {len(equity)}, engine {len(ours)}")
    else:
        for i, (a, b) in enumerate(zip(equity, ours)):
            if not close(float(a), b):
                problems.append(f"equity at bar {i}: backtesting.py {a!r}, engine {b!r}")
                break
    counts = stats["_strategy"].counts
    for name in SIGNAL_COUNTS:
        if counts[name] != engine["signals"][name]:
            problems.append(f"signals {name}: mirror {counts[name]}, engine {engine['signals'][name]}")
    for name, value in engine["metrics"].items():
        if name not in stats.index:
            if name == "Commissions [$]" and value == 0:
                continue  # backtesting.py shows commissions only when there are some
            problems.append(f"{name}: missing from backtesting.py's stats")
            continue
        theirs = as_number(stats[name])
        if not close(theirs, value):
            problems.append(f"{name}: backtesting.py {theirs!r}, engine {value!r}")
    return problems


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--time":
        doc = json.loads(Path(sys.argv[2]).read_text())
        started = time.perf_counter()
        stats = run_backtesting_py(doc)
        print(f"seconds {time.perf_counter() - started:.6f} trades {len(stats['_trades'])}")
        return
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    files = sorted(Path(sys.argv[1]).glob("*.json"))
    if not files:
        sys.exit(f"no scenario files in {sys.argv[1]}; run the backtest_parity example first")
    global deviation
    passed = failed = 0
    for path in files:
        deviation = 0.0
        doc = json.loads(path.read_text())
        stats = run_backtesting_py(doc)
        problems = compare(doc, stats)
        trades = len(doc["engine"]["trades"])
        if problems:
            failed += 1
            print(f"FAIL {doc['name']} ({len(doc['engine']['equity'])} bars, {trades} trades)")
            for problem in problems:
                print(f"  {problem}")
        else:
            passed += 1
            print(
                f"ok   {doc['name']}: {len(doc['engine']['equity'])} bars, {trades} trades, "
                f"{len(doc['engine']['metrics'])} metrics and the signal counts, largest difference {deviation:.1e}"
            )
    print(f"backtest parity: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

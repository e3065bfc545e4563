#!/usr/bin/env python3
"""Tests of the Python client against the real binaries (run by `make test`).

Starts ktrdr-data, ktrdr-training-host and ktrdr-gateway from BIN_DIR on free loopback ports,
writes and imports bars through the gateway, reads them back into pandas (Arrow IPC) and checks
shape, columns and values, then trains a tiny strategy. Prints one line per check and ends with
"N passed, N failed, N skipped"; exits 1 when anything failed.
"""

from __future__ import annotations

import math
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BIN_DIR = Path(os.environ.get("BIN_DIR", ROOT / "target" / "debug"))
sys.path.insert(0, str(HERE))

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import ktrdr_client  # noqa: E402
from ktrdr_client import KtrdrClient, state_name  # noqa: E402

T0 = pd.Timestamp("2024-01-01T00:00:00Z")

# The strategy the Rust system tests train too.
TINY_STRATEGY = (ROOT / "tests" / "fixtures" / "tiny_strategy.yaml").read_text()


class Service:
    """A ktrdr binary on a free loopback port; its address from its "listening on" log line."""

    def __init__(self, binary: str, env: dict[str, str], work: Path):
        self.binary = binary
        self.log_path = work / f"{binary}.log"
        full_env = {**os.environ, "KTRDR_LISTEN_ADDR": "127.0.0.1:0", "NO_COLOR": "1", **env}
        self.log = self.log_path.open("w")
        path = BIN_DIR / binary
        if not path.is_file():
            raise SystemExit(f"{path} not found: build the binaries first (make build) or set BIN_DIR")
        self.process = subprocess.Popen(
            [str(path)], env=full_env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=self.log,
        )
        self.addr = self._wait_addr()

    def _wait_addr(self) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            match = re.search(r"listening on ([0-9.]+:[0-9]+)", self.log_path.read_text())
            if match:
                return match.group(1)
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"{self.binary} did not start:\n{self.log_path.read_text()}")

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


def hourly_frame(n: int) -> pd.DataFrame:
    index = pd.date_range(T0, periods=n, freq="h", name="timestamp")
    open_ = 100.0 + np.arange(n) * 0.25
    return pd.DataFrame(
        {
            "open": open_,
            "high": open_ + 1.0,
            "low": open_ - 1.0,
            "close": open_ + 0.5,
            "volume": 1000.0 + np.arange(n),
        },
        index=index,
    )


def trending_frame(n: int, seed: int) -> pd.DataFrame:
    """A seeded random walk with trending regimes, so ZigZag labelling finds segments."""
    rng = random.Random(seed)
    rows, price, drift = [], 100.0, 0.0
    for _ in range(n):
        if rng.random() < 0.03:
            drift = rng.choice([-0.0015, 0.0, 0.0015])
        open_ = price
        price *= 1.0 + drift + (rng.random() - 0.5) * 0.008
        rows.append((open_, max(open_, price) * (1 + rng.random() * 0.002),
                     min(open_, price) * (1 - rng.random() * 0.002), price, 1000 + rng.random() * 100))
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close", "volume"])
    frame.index = pd.date_range(T0, periods=n, freq="h", name="timestamp")
    return frame


PASSED: list[str] = []
FAILED: list[str] = []
SKIPPED: list[str] = []


class Skipped(Exception):
    """A check that cannot run against this build; the message says why."""


def check(name: str, fn) -> None:
    try:
        fn()
    except Skipped as why:
        SKIPPED.append(name)
        print(f"  skip  {name}: {why}")
    except Exception:  # noqa: BLE001 - report every failure and go on
        FAILED.append(name)
        print(f"  FAIL  {name}")
        print("\n".join("        " + line for line in traceback.format_exc().splitlines()))
    else:
        PASSED.append(name)
        print(f"  ok    {name}")


def main() -> int:
    print(f"Python client tests (binaries from {BIN_DIR}; pandas {pd.__version__})")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "data").mkdir()
        (work / "models").mkdir()
        services = []
        try:
            data = Service("ktrdr-data", {"KTRDR_DATA_DIR": str(work / "data")}, work)
            services.append(data)
            host = Service(
                "ktrdr-training-host",
                {"DATA_SERVICE_URL": data.url, "KTRDR_MODELS_DIR": str(work / "models"),
                 "KTRDR_STRATEGIES_DIR": str(work / "none")},
                work,
            )
            services.append(host)
            gateway = Service(
                "ktrdr-gateway",
                {"DATA_SERVICE_URL": data.url, "TRAINING_HOST_SERVICE_URL": host.url,
                 "IB_HOST_SERVICE_URL": "http://127.0.0.1:9"},
                work,
            )
            services.append(gateway)
            with KtrdrClient(gateway.url) as client:
                run_checks(client, work)
        finally:
            for service in reversed(services):
                service.stop()
    print(f"{len(PASSED)} passed, {len(FAILED)} failed, {len(SKIPPED)} skipped")
    return 1 if FAILED else 0


def run_checks(client: KtrdrClient, work: Path) -> None:
    expected = hourly_frame(100)

    def write_and_read_back():
        written = client.write_bars("AAPL", "1h", expected)
        assert written["bars_written"] == 100, written
        bars = client.read_bars("AAPL", "1h")
        assert bars.shape == (100, 5), bars.shape
        assert list(bars.columns) == ["open", "high", "low", "close", "volume"], list(bars.columns)
        assert bars.index.name == "timestamp"
        assert str(bars.index.tz) == "UTC", bars.index.tz
        assert bars.index[0] == T0 and bars.index[-1] == T0 + pd.Timedelta(hours=99)
        assert (bars.dtypes == "float64").all(), bars.dtypes
        pd.testing.assert_frame_equal(bars, expected, check_index_type=False, check_freq=False)

    def a_range_and_a_limit():
        part = client.read_bars("AAPL", "1h", start="2024-01-01T10:00:00Z", end=T0 + pd.Timedelta(hours=20))
        assert len(part) == 10, len(part)
        assert part.index[0] == T0 + pd.Timedelta(hours=10)
        assert part["close"].iloc[0] == expected["close"].iloc[10]
        tail = client.read_bars("AAPL", "1h", limit=3, from_end=True)
        assert list(tail.index) == list(expected.index[-3:]), tail.index
        epoch_ms = ktrdr_client.to_epoch_ms(T0 + pd.Timedelta(hours=98))
        assert len(client.read_bars("AAPL", "1h", start=epoch_ms)) == 2

    def an_empty_range_is_an_empty_frame():
        empty = client.read_bars("AAPL", "1h", start="2030-01-01")
        assert empty.shape == (0, 5), empty.shape
        assert list(empty.columns) == ["open", "high", "low", "close", "volume"]

    def an_unknown_dataset_is_not_found():
        try:
            client.read_bars("MSFT", "1d")
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.NOT_FOUND, err.code()
        else:
            raise AssertionError("no error for an unknown dataset")

    def an_original_csv_imports_and_reads_back():
        path = work / "EURUSD_4h.csv"
        lines = ["timestamp,open,high,low,close,volume"]
        for i in range(12):
            t = T0 + pd.Timedelta(hours=4 * i)
            lines.append(f"{t.strftime('%Y-%m-%dT%H:%M:%SZ')},1.1,1.2,1.0,{1.1 + i / 1000},{-1}")
        path.write_text("\n".join(lines) + "\n")
        imported = client.import_csv(path)
        assert (imported["symbol"], imported["timeframe"], imported["bars_written"]) == ("EURUSD", "4h", 12), imported
        bars = client.read_bars("EURUSD", "4h")
        assert bars.shape == (12, 5)
        assert math.isclose(bars["close"].iloc[-1], 1.111)
        assert (bars["volume"] == -1).all(), "IB's -1 no-volume marker is kept"

    check("write bars, read them back into pandas via Arrow IPC (shape, columns, values)", write_and_read_back)
    check("read a [start, end) range and the last N bars", a_range_and_a_limit)
    check("an empty range is an empty DataFrame with the columns", an_empty_range_is_an_empty_frame)
    check("an unknown dataset raises NOT_FOUND", an_unknown_dataset_is_not_found)
    check("import an original SYMBOL_tf.csv, read it back", an_original_csv_imports_and_reads_back)

    client.write_bars("EURUSD", "1h", trending_frame(600, 7))

    def train_through_the_gateway():
        session = client.train(TINY_STRATEGY, epochs=2, seed=3, data_mode="local")
        assert state_name(session.state) == "COMPLETED", session
        assert session.model_id, session

    def start_training_and_wait():
        session_id = client.start_training(TINY_STRATEGY, epochs=2, seed=3)
        epochs = [e for e in client.watch_training(session_id) if e.WhichOneof("event") == "epoch_progress"]
        assert len(epochs) == 2, epochs
        session = client.get_training(session_id)
        assert state_name(session.state) == "COMPLETED", session.error
        assert session.model_id.startswith("tiny_rsi/EURUSD_1h_v"), session.model_id
        assert 0.0 <= session.metrics.train_accuracy <= 1.0

    check("train() with GatewayService.TrainStrategy", train_through_the_gateway)
    check("start_training() through the gateway's TrainingService, watch it to COMPLETED", start_training_and_wait)

    def backtest_its_test_part_into_pandas():
        models = client.training.ListModels(ktrdr_client.training_pb2.ListModelsRequest(strategy_name="tiny_rsi"))
        model = models.models[0]
        start, end = model.fit_range.end_ms, ktrdr_client.to_epoch_ms(T0 + pd.Timedelta(hours=600))
        events = []
        summary = client.backtest(model.model_id, start, end, data_mode="local", on_event=events.append,
                                  commission_rate=0.0002, fraction_of_equity=0.5)
        assert summary.state == ktrdr_client.common_pb2.JOB_STATE_COMPLETED, summary
        result = summary.results[0]
        assert result.settings.commission_rate == 0.0002
        metrics = client.backtest_metrics(result)
        assert metrics["trades"] == result.metrics.trades
        equity = client.backtest_equity(result.backtest_id)
        assert len(equity) == result.bars, (len(equity), result.bars)
        assert str(equity.index.tz) == "UTC"
        assert equity.index[0] >= pd.Timestamp(start, unit="ms", tz="UTC")
        assert math.isclose(equity["equity"].iloc[-1], result.metrics.equity_final)
        trades = client.backtest_trades(result.backtest_id)
        assert len(trades) == result.metrics.trades
        assert list(trades.columns[:3]) == ["side", "units", "signal_time"], list(trades.columns)
        if len(trades):
            assert math.isclose(trades["pnl"].sum(), result.metrics.equity_final - 100_000, abs_tol=1e-6)

    def a_negative_commission_is_invalid_argument():
        model_id = client.training.ListModels(ktrdr_client.training_pb2.ListModelsRequest()).models[0].model_id
        try:
            client.backtest(model_id, T0, T0 + pd.Timedelta(hours=600), commission_rate=-1.0)
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.code()
            assert "commission_rate" in err.details(), err.details()
        else:
            raise AssertionError("no error for a negative commission")

    check("backtest() a model over its test part; metrics, equity and trades as pandas", backtest_its_test_part_into_pandas)
    check("backtest() with a negative commission raises INVALID_ARGUMENT naming it", a_negative_commission_is_invalid_argument)


if __name__ == "__main__":
    sys.exit(main())

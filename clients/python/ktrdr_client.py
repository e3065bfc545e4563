"""A small Python client of the ktrdr gateway.

    from ktrdr_client import KtrdrClient
    with KtrdrClient("localhost:50051") as ktrdr:
        bars = ktrdr.read_bars("EURUSD", "1h", start="2024-01-01", end="2024-02-01")
        print(bars.tail())          # pandas DataFrame indexed by UTC timestamp

Bars are read with DataService.ReadBars in Arrow IPC encoding and decoded with pyarrow, so large
reads never go through per-bar Python objects. The gRPC stubs are generated from ../../proto
with grpcio-tools on first import (into ./generated, not committed); `generate.sh` does it by
hand. Requirements: requirements.txt.
"""

from __future__ import annotations

import datetime as _dt
import os
import sys
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence, Union

HERE = Path(__file__).resolve().parent
PROTO_DIR = HERE.parent.parent / "proto"
GENERATED = HERE / "generated"


def _proto_files() -> list[Path]:
    return sorted(PROTO_DIR.rglob("*.proto"))


def generate_stubs(force: bool = False) -> None:
    """Generates the Python stubs of proto/ into GENERATED unless they are up to date."""
    marker = GENERATED / "ktrdr" / "gateway" / "v1" / "gateway_pb2_grpc.py"
    files = _proto_files()
    if not files:
        raise RuntimeError(f"no .proto files under {PROTO_DIR}")
    newest = max(f.stat().st_mtime for f in files)
    if not force and marker.exists() and marker.stat().st_mtime >= newest:
        return
    try:
        from grpc_tools import protoc
        import grpc_tools
    except ImportError as exc:  # pragma: no cover - environment problem
        raise RuntimeError(
            "grpcio-tools is missing: pip install -r clients/python/requirements.txt"
        ) from exc
    GENERATED.mkdir(parents=True, exist_ok=True)
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{well_known}",
        f"--python_out={GENERATED}",
        f"--grpc_python_out={GENERATED}",
        *[str(f) for f in files],
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("grpc_tools.protoc failed on " + " ".join(args))
    # Regular packages (not namespace packages), so `ktrdr` cannot be shadowed by another path.
    for directory in [GENERATED / "ktrdr", *(GENERATED / "ktrdr").rglob("*")]:
        if directory.is_dir():
            (directory / "__init__.py").touch()


generate_stubs()
if str(GENERATED) not in sys.path:
    sys.path.insert(0, str(GENERATED))

import grpc  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.ipc  # noqa: E402,F401

from ktrdr.common.v1 import common_pb2  # noqa: E402
from ktrdr.data.v1 import data_pb2, data_pb2_grpc  # noqa: E402
from ktrdr.gateway.v1 import gateway_pb2, gateway_pb2_grpc  # noqa: E402
from ktrdr.training.v1 import backtest_pb2, training_pb2, training_pb2_grpc  # noqa: E402

Timestamp = Union[None, int, str, _dt.datetime, pd.Timestamp]

TERMINAL_TRAINING_STATES = {
    training_pb2.TRAINING_STATE_COMPLETED,
    training_pb2.TRAINING_STATE_FAILED,
    training_pb2.TRAINING_STATE_CANCELLED,
    training_pb2.TRAINING_STATE_INTERRUPTED,
}

LOAD_MODES = {
    "local": gateway_pb2.LOAD_MODE_LOCAL,
    "tail": gateway_pb2.LOAD_MODE_TAIL,
    "backfill": gateway_pb2.LOAD_MODE_BACKFILL,
    "full": gateway_pb2.LOAD_MODE_FULL,
}


def to_epoch_ms(value: Timestamp) -> int:
    """UTC epoch ms from an int (taken as ms), an ISO string, a datetime or a pandas Timestamp;
    None → 0 (the API's open-ended side). Naive times are taken as UTC."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return int(stamp.tz_convert("UTC").value // 1_000_000)


def _time_range(start: Timestamp, end: Timestamp) -> Optional[common_pb2.TimeRange]:
    if start is None and end is None:
        return None
    return common_pb2.TimeRange(start_ms=to_epoch_ms(start), end_ms=to_epoch_ms(end))


def _target(url: str) -> str:
    """`http://host:port` or `host:port` → `host:port` (what grpc.insecure_channel wants)."""
    for prefix in ("http://", "grpc://"):
        if url.startswith(prefix):
            return url[len(prefix):].rstrip("/")
    if url.startswith("https://"):
        raise ValueError("TLS is not supported by this client; use http:// or host:port")
    return url


class KtrdrClient:
    """One channel to the gateway, shared by every call. Use as a context manager or close()."""

    def __init__(self, url: Optional[str] = None, timeout: float = 120.0):
        self.url = url or os.environ.get("KTRDR_GATEWAY_URL", "http://localhost:50051")
        self.timeout = timeout
        self.channel = grpc.insecure_channel(
            _target(self.url),
            options=[
                ("grpc.max_receive_message_length", 16 * 1024 * 1024),
                ("grpc.max_send_message_length", 16 * 1024 * 1024),
            ],
        )
        self.data = data_pb2_grpc.DataServiceStub(self.channel)
        self.gateway = gateway_pb2_grpc.GatewayServiceStub(self.channel)
        self.training = training_pb2_grpc.TrainingServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "KtrdrClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- data ----------------------------------------------------------------------------

    def read_bars(
        self,
        symbol: str,
        timeframe: str,
        start: Timestamp = None,
        end: Timestamp = None,
        limit: Optional[int] = None,
        from_end: bool = False,
    ) -> pd.DataFrame:
        """Stored bars of [start, end) as a DataFrame: index `timestamp` (UTC), columns open,
        high, low, close, volume (float64). Raises grpc.RpcError (NOT_FOUND for an unknown
        dataset)."""
        request = data_pb2.ReadBarsRequest(
            symbol=symbol,
            timeframe=timeframe,
            encoding=common_pb2.BAR_ENCODING_ARROW_IPC,
            from_end=from_end,
        )
        time_range = _time_range(start, end)
        if time_range is not None:
            request.range.CopyFrom(time_range)
        if limit is not None:
            request.limit = limit
        tables = []
        for item in self.data.ReadBars(request):
            if item.batch.WhichOneof("payload") != "arrow_ipc":
                continue
            reader = pa.ipc.open_stream(pa.py_buffer(item.batch.arrow_ipc))
            table = reader.read_all()
            if table.num_rows:
                tables.append(table)
        columns = ["open", "high", "low", "close", "volume"]
        if not tables:
            index = pd.DatetimeIndex([], tz="UTC", name="timestamp").as_unit("ms")
            return pd.DataFrame({c: pd.Series([], dtype="float64") for c in columns}, index=index)
        table = pa.concat_tables(tables)
        # Columns are looked up by name, as the contract asks (extra columns are ignored).
        frame = table.select(["timestamp", *columns]).to_pandas()
        return frame.set_index("timestamp")

    def write_bars(self, symbol: str, timeframe: str, bars: pd.DataFrame, source: str = "python") -> dict:
        """Writes a DataFrame shaped like read_bars' (UTC DatetimeIndex or a `timestamp` column;
        open/high/low/close/volume) into the store. Returns the WriteBarsResponse as a dict."""
        frame = bars.reset_index() if "timestamp" not in bars.columns else bars
        stamps = pd.to_datetime(frame["timestamp"], utc=True)
        columns = common_pb2.BarColumns(
            timestamp_ms=[int(t.value // 1_000_000) for t in stamps],
            open=frame["open"].astype(float).tolist(),
            high=frame["high"].astype(float).tolist(),
            low=frame["low"].astype(float).tolist(),
            close=frame["close"].astype(float).tolist(),
            volume=frame["volume"].astype(float).tolist(),
        )
        request = data_pb2.WriteBarsRequest(
            batch=common_pb2.BarBatch(symbol=symbol, timeframe=timeframe, columns=columns),
            source=source,
        )
        response = self.data.WriteBars(iter([request]), timeout=self.timeout)
        return {
            "symbol": response.symbol,
            "timeframe": response.timeframe,
            "bars_written": response.bars_written,
            "bar_count": response.coverage.bar_count,
        }

    def import_csv(self, path: Union[str, Path], symbol: str = "", timeframe: str = "") -> dict:
        """Imports a CSV file in the original ktrdr format (`SYMBOL_tf.csv`)."""
        path = Path(path)

        def requests() -> Iterator[data_pb2.ImportCsvRequest]:
            yield data_pb2.ImportCsvRequest(
                options=data_pb2.ImportCsvOptions(
                    symbol=symbol, timeframe=timeframe, file_name=path.name
                )
            )
            with path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    yield data_pb2.ImportCsvRequest(chunk=chunk)

        response = self.data.ImportCsv(requests(), timeout=self.timeout)
        return {
            "symbol": response.symbol,
            "timeframe": response.timeframe,
            "rows_read": response.rows_read,
            "bars_written": response.bars_written,
        }

    # ---- training ------------------------------------------------------------------------

    def train(
        self,
        strategy: Union[str, Path],
        symbols: Sequence[str] = (),
        timeframes: Sequence[str] = (),
        start: Timestamp = None,
        end: Timestamp = None,
        epochs: Optional[int] = None,
        seed: Optional[int] = None,
        data_mode: str = "tail",
        on_event: Optional[Callable[[gateway_pb2.TrainStrategyResponse], None]] = None,
    ) -> training_pb2.TrainingSession:
        """GatewayService.TrainStrategy: makes sure the data exists (loads per `data_mode`:
        local, tail, backfill, full), trains, follows the session to its end and returns it.
        `strategy` is a YAML file path, YAML text, or a strategy name known to the server.
        `on_event` sees every streamed event (data loads, training start, epochs)."""
        request = gateway_pb2.TrainStrategyRequest(
            symbols=list(symbols),
            timeframes=list(timeframes),
            data_mode=LOAD_MODES[data_mode],
        )
        kind, value = _strategy(strategy)
        setattr(request, kind, value)
        time_range = _time_range(start, end)
        if time_range is not None:
            request.range.CopyFrom(time_range)
        if epochs is not None:
            request.epochs = epochs
        if seed is not None:
            request.seed = seed
        session_id = ""
        for event in self.gateway.TrainStrategy(request):
            if on_event is not None:
                on_event(event)
            if event.WhichOneof("event") == "training_started":
                session_id = event.training_started.session_id
        if not session_id:
            raise RuntimeError("TrainStrategy ended before a training session started")
        return self.get_training(session_id)

    def start_training(
        self,
        strategy: Union[str, Path],
        symbols: Sequence[str] = (),
        timeframes: Sequence[str] = (),
        start: Timestamp = None,
        end: Timestamp = None,
        epochs: Optional[int] = None,
        seed: Optional[int] = None,
    ) -> str:
        """TrainingService.StartTraining on bars already stored; returns the session id."""
        request = training_pb2.StartTrainingRequest(symbols=list(symbols), timeframes=list(timeframes))
        kind, value = _strategy(strategy)
        setattr(request, kind, value)
        time_range = _time_range(start, end)
        if time_range is not None:
            request.range.CopyFrom(time_range)
        if epochs is not None:
            request.epochs = epochs
        if seed is not None:
            request.seed = seed
        return self.training.StartTraining(request, timeout=self.timeout).session_id

    def watch_training(self, session_id: str) -> Iterable[training_pb2.TrainingEvent]:
        """The session's events, past then live, until it ends."""
        request = training_pb2.WatchTrainingRequest(session_id=session_id)
        for item in self.training.WatchTraining(request):
            yield item.event

    def wait_training(self, session_id: str) -> training_pb2.TrainingSession:
        """Follows the session to its end and returns it."""
        for _ in self.watch_training(session_id):
            pass
        return self.get_training(session_id)

    def get_training(self, session_id: str) -> training_pb2.TrainingSession:
        request = training_pb2.GetTrainingRequest(session_id=session_id)
        return self.training.GetTraining(request, timeout=self.timeout).session

    # ---- backtests -----------------------------------------------------------------------

    def backtest(
        self,
        model: str,
        start: Timestamp,
        end: Timestamp,
        symbols: Sequence[str] = (),
        data_mode: str = "load",
        allow_training_overlap: bool = False,
        on_event: Optional[Callable[[gateway_pb2.BacktestEvent], None]] = None,
        **settings,
    ) -> gateway_pb2.BacktestSummary:
        """GatewayService.BacktestStrategy: backtests `model` (a model id, or a strategy name:
        its newest model) over [start, end) for each symbol (default: the model's), loading
        missing bars unless `data_mode` is "local", and returns the job's summary (one
        BacktestResult per symbol in `.results`). `settings` are BacktestSettings fields, e.g.
        commission_rate=0.0002, allow_shorts=True, fraction_of_equity=0.5. Bad settings raise
        grpc.RpcError INVALID_ARGUMENT naming the field."""
        request = gateway_pb2.BacktestStrategyRequest(
            symbols=list(symbols),
            settings=backtest_pb2.BacktestSettings(**settings),
            allow_training_overlap=allow_training_overlap,
            data_mode=gateway_pb2.LOAD_MODE_LOCAL if data_mode == "local" else 0,
        )
        if "/" in model:
            request.model_id = model
        else:
            request.strategy_name = model
        request.range.CopyFrom(common_pb2.TimeRange(start_ms=to_epoch_ms(start), end_ms=to_epoch_ms(end)))
        summary = None
        for item in self.gateway.BacktestStrategy(request):
            if on_event is not None:
                on_event(item.event)
            if item.event.WhichOneof("event") == "summary":
                summary = item.event.summary
        if summary is None:
            raise RuntimeError("BacktestStrategy ended without a summary")
        return summary

    @staticmethod
    def backtest_metrics(result: backtest_pb2.BacktestResult) -> pd.Series:
        """A result's metrics as a Series named by the metric fields (NaN where undefined)."""
        m = result.metrics
        fields = [f.name for f in m.DESCRIPTOR.fields if f.type != f.TYPE_MESSAGE]
        values = {
            name: (getattr(m, name) if not m.DESCRIPTOR.fields_by_name[name].has_presence
                   or m.HasField(name) else float("nan"))
            for name in fields
        }
        return pd.Series(values, name=result.backtest_id)

    def _backtest_table(self, backtest_id: str, table: int) -> pd.DataFrame:
        request = backtest_pb2.ReadBacktestTableRequest(
            backtest_id=backtest_id, table=table, format=backtest_pb2.TABLE_FORMAT_ARROW_IPC
        )
        data = b"".join(item.chunk for item in self.training.ReadBacktestTable(request, timeout=self.timeout))
        return pa.ipc.open_stream(pa.py_buffer(data)).read_all().to_pandas()

    def backtest_trades(self, backtest_id: str) -> pd.DataFrame:
        """A saved backtest's trades: one row per closed trade (side, units, signal/entry/exit
        times in UTC, prices, costs, pnl, return_pct, exit_reason)."""
        return self._backtest_table(backtest_id, backtest_pb2.BACKTEST_TABLE_TRADES)

    def backtest_equity(self, backtest_id: str) -> pd.DataFrame:
        """A saved backtest's equity curve, indexed by bar time (UTC): the bar's prices, the
        position held at its close, equity, drawdown_pct and the filters' decision."""
        return self._backtest_table(backtest_id, backtest_pb2.BACKTEST_TABLE_EQUITY).set_index("timestamp")


def _strategy(strategy: Union[str, Path]) -> tuple[str, str]:
    """("strategy_yaml", text) for a file or YAML text, else ("strategy_name", name)."""
    if isinstance(strategy, Path) or (
        isinstance(strategy, str) and "\n" not in strategy and Path(strategy).is_file()
    ):
        return "strategy_yaml", Path(strategy).read_text()
    if "\n" in strategy:
        return "strategy_yaml", strategy
    return "strategy_name", strategy.removesuffix(".yaml")


def state_name(state: int) -> str:
    """TRAINING_STATE_COMPLETED → COMPLETED."""
    return training_pb2.TrainingState.Name(state).removeprefix("TRAINING_STATE_")

#!/usr/bin/env python3
"""Classic-protocol TWS API clients against the real ktrdr-ib-sim binary (run by `make test`):
ib_async (the most used Python client, versions up to 178) and IBKR's own Python client
`ibapi` 9.81 (versions 100..157).

Starts ktrdr-ib-sim from BIN_DIR on free loopback ports. ib_async connects with its full
connect-time sync (positions, open and completed orders, account updates, executions), then
checks contract details, head timestamps, historical bars, IB's errors (200, 162) and the
control API's faults (connectivity lost, a failed request, a dropped connection). IBKR's
client checks contract details, head timestamp, bars and error 200 at its older version.
Historical bars are compared field by field with what the unmodified Rust `ibapi` 5.5 client
(protobuf protocol) receives from the same simulator process for the same request:
BIN_DIR/examples/ibapi_bars (`cargo build --workspace --examples`).

Prints one line per check (clients/python/test_client.py's runner) and ends with
"... N passed, N failed"; exits 1 when anything failed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import queue
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent.parent
BIN_DIR = Path(os.environ.get("BIN_DIR", ROOT / "target" / "debug"))
IBAPI_BARS = BIN_DIR / "examples" / "ibapi_bars"
sys.path.insert(0, str(ROOT / "clients" / "python"))

import grpc  # noqa: E402
import ib_async  # noqa: E402
from ib_async import IB, Forex, Stock  # noqa: E402
from ibapi import server_versions as ibkr_versions  # noqa: E402
from ibapi.client import EClient  # noqa: E402
from ibapi.contract import Contract as IbkrContract  # noqa: E402
from ibapi.wrapper import EWrapper  # noqa: E402

import ktrdr_client  # noqa: E402,F401  (generates the gRPC stubs of proto/)
from ktrdr.ib.v1 import sim_pb2, sim_pb2_grpc  # noqa: E402
from test_client import FAILED, PASSED, Service  # noqa: E402
from test_client import check as run_check  # noqa: E402

UTC = dt.timezone.utc
# The highest version ib_async speaks; the sim must agree on it.
IB_ASYNC_VERSION = ib_async.client.Client.MaxClientVersion
TIMEOUT = 20

# (contract for ib_async, ibapi_bars contract args, end, duration, bar size, what, rth)
BAR_REQUESTS = [
    (Stock("AAPL", "SMART", "USD"), ["stock", "AAPL"], dt.datetime(2024, 2, 7, tzinfo=UTC),
     "1 D", "1 min", "TRADES", True),
    (Stock("MSFT", "SMART", "USD"), ["stock", "MSFT"], dt.datetime(2024, 3, 1, tzinfo=UTC),
     "1 W", "5 mins", "TRADES", False),
    (Stock("SPY", "SMART", "USD"), ["stock", "SPY"], dt.datetime(2024, 1, 1, tzinfo=UTC),
     "1 Y", "1 day", "TRADES", True),
    (Forex("EURUSD"), ["forex", "EUR", "USD"], dt.datetime(2024, 2, 10, tzinfo=UTC),
     "1 W", "1 hour", "MIDPOINT", False),
]


def expect(condition, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def bar_key(date: dt.date | dt.datetime) -> str:
    """A bar's date as ibapi_bars prints it: unix seconds, or yyyymmdd for daily bars."""
    if isinstance(date, dt.datetime):
        return str(int(date.timestamp()))
    return date.strftime("%Y%m%d")


def ibapi_bars(tws: str, client_id: int, args: list[str], end: dt.datetime, duration: str,
               bar_size: str, what: str, rth: bool) -> list[tuple]:
    """The same request through the Rust `ibapi` client: (date, o, h, l, c, volume, wap, count)."""
    cmd = [str(IBAPI_BARS), tws, str(client_id), *args, str(int(end.timestamp())), duration,
           bar_size, what, "1" if rth else "0"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if run.returncode != 0:
        raise AssertionError(f"ibapi_bars failed ({run.returncode}): {run.stderr.strip()}")
    rows = []
    for line in run.stdout.splitlines():
        date, *numbers = line.split()
        *prices, count = numbers
        rows.append((date, *map(float, prices), int(count)))
    return rows


class Suite:
    def __init__(self, sim: Service):
        self.sim = sim
        self.control = sim_pb2_grpc.IbSimServiceStub(grpc.insecure_channel(sim.addr))
        status = self.control.GetSimStatus(sim_pb2.GetSimStatusRequest(), timeout=TIMEOUT)
        self.tws = status.tws_listen_addr
        self.host, port = self.tws.rsplit(":", 1)
        self.port = int(port)
        self.ib = IB()
        self.errors: list[tuple[int, int, str]] = []
        self.ib.errorEvent += self.on_error

    def on_error(self, req_id: int, code: int, text: str, *_contract) -> None:
        self.errors.append((req_id, code, text))

    def status(self):
        return self.control.GetSimStatus(sim_pb2.GetSimStatusRequest(), timeout=TIMEOUT)

    def errors_with(self, code: int) -> list[tuple[int, int, str]]:
        return [e for e in self.errors if e[1] == code]

    async def connect(self) -> None:
        # raiseSyncErrors: a connect-time request the sim leaves unanswered fails the check.
        await self.ib.connectAsync(self.host, self.port, clientId=11, timeout=TIMEOUT,
                                   raiseSyncErrors=True)
        expect(self.ib.isConnected(), "not connected after connectAsync")
        version = self.ib.client.serverVersion()
        expect(version == IB_ASYNC_VERSION,
               f"negotiated v{version}, expected ib_async's highest v{IB_ASYNC_VERSION}")
        expect(self.ib.managedAccounts() == ["DU1234567"],
               f"managed accounts {self.ib.managedAccounts()}")
        expect(self.ib.positions() == [] and self.ib.openTrades() == [],
               "an empty paper account has no positions or orders")
        clients = self.status().clients
        expect([(c.client_id, c.server_version) for c in clients] == [(11, IB_ASYNC_VERSION)],
               f"sim sees clients {clients}")

    async def stock_contract_details(self) -> None:
        details = await self.ib.reqContractDetailsAsync(Stock("AAPL", "SMART", "USD"))
        expect(len(details) == 1, f"{len(details)} AAPL contracts")
        d = details[0]
        expect(d.contract.conId == 265598, f"conId {d.contract.conId}")
        expect(d.contract.primaryExchange == "NASDAQ", f"primary {d.contract.primaryExchange}")
        expect(d.longName == "APPLE INC", f"long name {d.longName!r}")
        expect(d.timeZoneId == "US/Eastern" and d.tradingHours and d.liquidHours,
               f"hours {d.timeZoneId} {d.tradingHours[:40]!r}")
        expect(d.minTick == 0.01 and d.stockType == "COMMON", f"{d.minTick} {d.stockType}")

    async def forex_contract_details(self) -> None:
        details = await self.ib.reqContractDetailsAsync(Forex("EURUSD"))
        expect(len(details) == 1, f"{len(details)} EURUSD contracts")
        c = details[0].contract
        expect((c.secType, c.exchange, c.localSymbol, c.currency) ==
               ("CASH", "IDEALPRO", "EUR.USD", "USD"), f"contract {c}")
        qualified = await self.ib.qualifyContractsAsync(Forex("GBPUSD"))
        expect(qualified and qualified[0].conId == 12087797, f"qualified {qualified}")

    async def head_timestamp(self) -> None:
        head = await self.ib.reqHeadTimeStampAsync(Stock("AAPL", "SMART", "USD"), "TRADES",
                                                   useRTH=True, formatDate=2)
        expect(head == dt.datetime(1980, 12, 12, 14, 30, tzinfo=UTC), f"head {head}")

    async def bars_equal_ibapi(self) -> None:
        # ib_async and ibapi send the same request: IB's identical-request rule would refuse
        # the second, so pacing is off for this comparison.
        self.control.SetRules(sim_pb2.SetRulesRequest(
            pacing_identical_15s=False, pacing_same_contract_2s=False,
            pacing_60_per_10min=False), timeout=TIMEOUT)
        for i, (contract, args, end, duration, bar_size, what, rth) in enumerate(BAR_REQUESTS):
            name = f"{contract.symbol} {bar_size} x {duration}"
            bars = await self.ib.reqHistoricalDataAsync(
                contract, endDateTime=end, durationStr=duration, barSizeSetting=bar_size,
                whatToShow=what, useRTH=rth, formatDate=2, timeout=TIMEOUT)
            got = [(bar_key(b.date), b.open, b.high, b.low, b.close, b.volume, b.average,
                    b.barCount) for b in bars]
            want = ibapi_bars(self.tws, 40 + i, args, end, duration, bar_size, what, rth)
            expect(len(want) > 0, f"{name}: ibapi got no bars")
            expect(len(got) == len(want), f"{name}: ib_async {len(got)} bars, ibapi {len(want)}")
            for a, b in zip(got, want):
                expect(a == b, f"{name}: ib_async bar {a} != ibapi bar {b}")
            print(f"    {name}: {len(got)} bars identical to ibapi's")
        first = await self.ib.reqHistoricalDataAsync(
            Stock("AAPL", "SMART", "USD"), endDateTime=dt.datetime(2024, 2, 7, tzinfo=UTC),
            durationStr="1 D", barSizeSetting="1 min", whatToShow="TRADES", useRTH=True,
            formatDate=2, timeout=TIMEOUT)
        # One regular NYSE session: 390 one-minute bars from 09:30 New York (14:30 UTC).
        expect(len(first) == 390, f"{len(first)} one-minute bars in a session")
        expect(first[0].date == dt.datetime(2024, 2, 6, 14, 30, tzinfo=UTC),
               f"first bar at {first[0].date}")
        # formatDate=1 (ib_async's default): New York wall-clock times, the same instants.
        wall = await self.ib.reqHistoricalDataAsync(
            Stock("AAPL", "SMART", "USD"), endDateTime=dt.datetime(2024, 2, 7, tzinfo=UTC),
            durationStr="1 D", barSizeSetting="1 min", whatToShow="TRADES", useRTH=True,
            formatDate=1, timeout=TIMEOUT)
        expect([b.date for b in wall] == [b.date for b in first],
               f"formatDate=1 bars start at {wall[0].date if wall else None}")
        expect(str(wall[0].date.tzinfo) == "US/Eastern", f"time zone {wall[0].date.tzinfo}")
        self.control.ResetSim(sim_pb2.ResetSimRequest(), timeout=TIMEOUT)

    async def unknown_symbol_is_error_200(self) -> None:
        before = len(self.errors_with(200))
        details = await self.ib.reqContractDetailsAsync(Stock("NOPE", "SMART", "USD"))
        expect(details == [], f"details for NOPE: {details}")
        expect(len(self.errors_with(200)) == before + 1, f"errors {self.errors[-3:]}")
        expect("No security definition" in self.errors_with(200)[-1][2], self.errors[-1][2])

    async def pacing_burst_is_error_162(self) -> None:
        before = self.status().pacing_violations_sent
        seen = len(self.errors)
        aapl = Stock("AAPL", "SMART", "USD")
        # Seven different requests (each ending after a trading day) for one contract at
        # once: IB allows five per 2 s.
        ends = [dt.datetime(2024, 2, day, tzinfo=UTC) for day in (6, 7, 8, 9, 10, 13, 14)]
        answers = await asyncio.gather(*[
            self.ib.reqHistoricalDataAsync(aapl, endDateTime=end, durationStr="1 D",
                                           barSizeSetting="1 hour", whatToShow="TRADES",
                                           useRTH=True, formatDate=2, timeout=TIMEOUT)
            for end in ends])
        paced = [e for e in self.errors[seen:] if e[1] == 162 and "pacing violation" in e[2]]
        expect(len(paced) >= 2, f"expected 162 pacing violations, errors: {self.errors[-5:]}")
        expect(sum(1 for a in answers if not a) == len(paced), "paced requests return no bars")
        expect(all(len(a) == 7 for a in answers if a), "admitted requests return a session")
        expect(self.status().pacing_violations_sent >= before + 2, "sim counted no violations")

    async def connectivity_notices(self) -> None:
        self.control.InjectFault(sim_pb2.InjectFaultRequest(
            connectivity_lost=sim_pb2.ConnectivityLostFault()), timeout=TIMEOUT)
        self.control.InjectFault(sim_pb2.InjectFaultRequest(
            connectivity_restored=sim_pb2.ConnectivityRestoredFault()), timeout=TIMEOUT)
        for _ in range(100):
            if self.errors_with(1102):
                break
            await asyncio.sleep(0.05)
        expect(self.errors_with(1100) and self.errors_with(1102),
               f"expected 1100 then 1102, got {self.errors[-3:]}")

    async def failed_request_fault(self) -> None:
        self.control.InjectFault(sim_pb2.InjectFaultRequest(
            fail_next_requests=sim_pb2.FailNextRequestsFault(error_code=504, count=1)),
            timeout=TIMEOUT)
        head = await self.ib.reqHeadTimeStampAsync(Stock("MSFT", "SMART", "USD"), "TRADES",
                                                   useRTH=True, formatDate=2)
        expect(not head and self.errors_with(504), f"head {head!r}, errors {self.errors[-2:]}")

    async def dropped_connection_disconnects(self) -> None:
        disconnected = asyncio.Event()
        self.ib.disconnectedEvent += disconnected.set
        reply = self.control.InjectFault(sim_pb2.InjectFaultRequest(
            drop_connections=sim_pb2.DropConnectionsFault()), timeout=TIMEOUT)
        expect(reply.clients_affected == 1, f"{reply.clients_affected} clients dropped")
        await asyncio.wait_for(disconnected.wait(), TIMEOUT)
        expect(not self.ib.isConnected(), "still connected after the drop")
        # The client id is free again: a reconnect works.
        await self.connect()
        self.ib.disconnect()


def ibkr_contract(symbol: str, sec_type: str, exchange: str, currency: str) -> IbkrContract:
    c = IbkrContract()
    c.symbol, c.secType, c.exchange, c.currency = symbol, sec_type, exchange, currency
    return c


class IbkrClient(EWrapper, EClient):
    """IBKR's own EClient/EWrapper; every answer goes to one queue that `call` reads."""

    def __init__(self):
        EWrapper.__init__(self)
        EClient.__init__(self, self)
        self.inbox: queue.Queue = queue.Queue()
        self.ready = threading.Event()

    def nextValidId(self, orderId: int):
        self.ready.set()

    def error(self, reqId, errorCode, errorString):
        self.inbox.put(("error", reqId, (errorCode, errorString)))

    def contractDetails(self, reqId, contractDetails):
        self.inbox.put(("item", reqId, contractDetails))

    def contractDetailsEnd(self, reqId):
        self.inbox.put(("end", reqId, None))

    def historicalData(self, reqId, bar):
        self.inbox.put(("item", reqId, bar))

    def historicalDataEnd(self, reqId, start, end):
        self.inbox.put(("end", reqId, (start, end)))

    def headTimestamp(self, reqId, headTimestamp):
        self.inbox.put(("end", reqId, headTimestamp))

    def call(self, req_id: int, send) -> tuple[list, object, list]:
        """Sends a request; returns its items, its end (None after an error) and its errors."""
        send()
        items, errors = [], []
        while True:
            kind, rid, payload = self.inbox.get(timeout=TIMEOUT)
            if rid != req_id:
                continue
            if kind == "item":
                items.append(payload)
            elif kind == "end":
                return items, payload, errors
            else:
                errors.append(payload)
                return items, None, errors


class IbkrSuite:
    """IBKR's official Python client 9.81: classic text at its own highest version."""

    def __init__(self, suite: Suite):
        self.suite = suite
        self.app = IbkrClient()
        self.next_req = 100

    def req_id(self) -> int:
        self.next_req += 1
        return self.next_req

    def ibkr_connect(self) -> None:
        self.app.connect(self.suite.host, self.suite.port, 21)
        threading.Thread(target=self.app.run, daemon=True).start()
        expect(self.app.ready.wait(TIMEOUT), "no nextValidId from the sim")
        version = self.app.serverVersion()
        expect(version == ibkr_versions.MAX_CLIENT_VER,
               f"negotiated v{version}, expected IBKR's highest v{ibkr_versions.MAX_CLIENT_VER}")

    def ibkr_contract_details(self) -> None:
        for contract, want in [
            (ibkr_contract("AAPL", "STK", "SMART", "USD"), (265598, "AAPL", "APPLE INC")),
            (ibkr_contract("EUR", "CASH", "IDEALPRO", "USD"),
             (12087792, "EUR.USD", "European Monetary Union Euro")),
        ]:
            rid = self.req_id()
            items, end, errors = self.app.call(
                rid, lambda: self.app.reqContractDetails(rid, contract))
            expect(not errors and len(items) == 1, f"{contract.symbol}: {items} {errors}")
            d = items[0]
            got = (d.contract.conId, d.contract.localSymbol, d.longName)
            expect(got == want, f"{contract.symbol}: {got}")
            expect(d.timeZoneId == "US/Eastern" and d.tradingHours, f"hours of {contract.symbol}")

    def ibkr_head_timestamp(self) -> None:
        rid = self.req_id()
        aapl = ibkr_contract("AAPL", "STK", "SMART", "USD")
        _, head, errors = self.app.call(
            rid, lambda: self.app.reqHeadTimeStamp(rid, aapl, "TRADES", 1, 2))
        want = int(dt.datetime(1980, 12, 12, 14, 30, tzinfo=UTC).timestamp())
        expect(not errors and head == str(want), f"head {head!r} {errors}")

    def ibkr_bars_equal_ibapi(self) -> None:
        control = self.suite.control
        control.SetRules(sim_pb2.SetRulesRequest(
            pacing_identical_15s=False, pacing_same_contract_2s=False,
            pacing_60_per_10min=False), timeout=TIMEOUT)
        for i, (c, args, end, duration, bar_size, what, rth) in enumerate(BAR_REQUESTS):
            name = f"{c.symbol} {bar_size} x {duration}"
            contract = ibkr_contract(c.symbol, c.secType, c.exchange, c.currency)
            rid = self.req_id()
            bars, done, errors = self.app.call(rid, lambda: self.app.reqHistoricalData(
                rid, contract, end.strftime("%Y%m%d %H:%M:%S UTC"), duration, bar_size, what,
                1 if rth else 0, 2, False, []))
            expect(done is not None and not errors, f"{name}: {errors}")
            got = [(b.date, b.open, b.high, b.low, b.close, b.volume, b.average, b.barCount)
                   for b in bars]
            want = ibapi_bars(self.suite.tws, 60 + i, args, end, duration, bar_size, what, rth)
            expect(len(got) == len(want) > 0, f"{name}: IBKR {len(got)} bars, ibapi {len(want)}")
            for a, b in zip(got, want):
                expect(a == b, f"{name}: IBKR client bar {a} != ibapi bar {b}")
            print(f"    {name}: {len(got)} bars identical to ibapi's")
        control.ResetSim(sim_pb2.ResetSimRequest(), timeout=TIMEOUT)

    def ibkr_unknown_symbol_is_error_200(self) -> None:
        rid = self.req_id()
        nope = ibkr_contract("NOPE", "STK", "SMART", "USD")
        items, _, errors = self.app.call(rid, lambda: self.app.reqContractDetails(rid, nope))
        expect(not items and [e[0] for e in errors] == [200], f"errors {errors}")
        self.app.disconnect()


ASYNC_CHECKS = ["connect", "stock_contract_details", "forex_contract_details",
                "head_timestamp", "bars_equal_ibapi", "unknown_symbol_is_error_200",
                "pacing_burst_is_error_162", "connectivity_notices", "failed_request_fault",
                "dropped_connection_disconnects"]
IBKR_CHECKS = ["ibkr_connect", "ibkr_contract_details", "ibkr_head_timestamp",
               "ibkr_bars_equal_ibapi", "ibkr_unknown_symbol_is_error_200"]


def main() -> int:
    # ib_async logs every IB error it receives, the expected ones too: label them.
    logging.basicConfig(level=logging.WARNING, format="    (ib_async log) %(message)s")
    if not IBAPI_BARS.is_file():
        print(f"{IBAPI_BARS} not found: cargo build --workspace --examples",
              file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="ktrdr-ib-async-") as work:
        sim = Service("ktrdr-ib-sim", {"IB_SIM_ADDR": "127.0.0.1:0"}, Path(work))
        # ib_async runs on this loop (its checks are coroutines); IBKR's client on a thread.
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            suite = Suite(sim)
            print(f"ib_async {ib_async.__version__} (v{IB_ASYNC_VERSION}):")
            for name in ASYNC_CHECKS:
                run_check(name, lambda: loop.run_until_complete(getattr(suite, name)()))
                if "connect" in FAILED:  # nothing else can pass without a connection
                    break
            print(f"IBKR's ibapi 9.81 (v{ibkr_versions.MAX_CLIENT_VER}):")
            ibkr = IbkrSuite(suite)
            for name in IBKR_CHECKS:
                run_check(name, getattr(ibkr, name))
                if "ibkr_connect" in FAILED:
                    break
        finally:
            sim.stop()
            loop.close()
        if FAILED:
            log = (Path(work) / "ktrdr-ib-sim.log").read_text()
            print(f"--- ktrdr-ib-sim log (end) ---\n{log[-4000:]}")
    print(f"ib_async {ib_async.__version__} and IBKR's ibapi 9.81: {len(PASSED)} passed, "
          f"{len(FAILED)} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())

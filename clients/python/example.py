#!/usr/bin/env python3
"""Reads stored bars into pandas and, with --train, trains a strategy through the gateway.

    python3 clients/python/example.py EURUSD 1h --start 2024-01-01 --end 2024-02-01
    python3 clients/python/example.py EURUSD 1h --train strategies/rsi_bollinger_single.yaml --epochs 5

The gateway is KTRDR_GATEWAY_URL (default http://localhost:50051; `make run` starts one).
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ktrdr_client import KtrdrClient, state_name  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("symbol")
    parser.add_argument("timeframe")
    parser.add_argument("--start")
    parser.add_argument("--end")
    parser.add_argument("--url", help="gateway URL (default: KTRDR_GATEWAY_URL or http://localhost:50051)")
    parser.add_argument("--train", metavar="STRATEGY_YAML", help="also train this strategy")
    parser.add_argument("--epochs", type=int)
    args = parser.parse_args()

    with KtrdrClient(args.url) as ktrdr:
        bars = ktrdr.read_bars(args.symbol, args.timeframe, start=args.start, end=args.end)
        print(f"{len(bars)} bars of {args.symbol} {args.timeframe}")
        print(bars.tail())
        if len(bars):
            returns = bars["close"].pct_change().dropna()
            print(f"\nmean return per bar {returns.mean():.6f}, volatility {returns.std():.6f}")
        if args.train:
            def show(event):
                if event.WhichOneof("event") == "training" and event.training.WhichOneof("event") == "epoch_progress":
                    e = event.training.epoch_progress
                    print(f"epoch {e.epoch}/{e.total_epochs} loss {e.train_loss:.4f} acc {e.train_accuracy:.1%}")

            session = ktrdr.train(
                args.train, symbols=[args.symbol], timeframes=[args.timeframe],
                start=args.start, end=args.end, epochs=args.epochs, on_event=show,
            )
            print(f"session {session.session_id}: {state_name(session.state)} model {session.model_id or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

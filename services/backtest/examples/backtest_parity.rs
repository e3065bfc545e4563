//! Writes the backtesting.py parity scenarios: for each, generated bars and probabilities, the
//! settings in backtesting.py's terms, and this engine's trades, equity curve and metrics, as
//! one JSON file in the directory given as the only argument. `scripts/backtest_parity.py`
//! replays each in backtesting.py 0.6.6 and compares (`make test` runs both).
//!
//! The conventions both sides share: next-open fills, commission only (no slippage or spread,
//! which backtesting.py models differently), first bar without prediction (backtesting.py
//! decides from bar 1), and a last bar that is flat (open = close) so backtesting.py's
//! `finalize_trades` (at the last open) and the engine's forced close (at the last close) meet.

#![allow(clippy::unwrap_used, clippy::expect_used)] // an example program

#[path = "../tests/common/mod.rs"]
mod common;

use common::{BarSpec, Timeframe};
use ktrdr_backtest::{Costs, ExecutionConfig, Filters, Lots, Sizing, run};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

struct Scenario {
    name: &'static str,
    spec: BarSpec,
    config: ExecutionConfig,
    /// Per-bar chance the favoured class changes.
    switch: f64,
}

fn config(commission: f64, sizing: Sizing, filters: Filters) -> ExecutionConfig {
    ExecutionConfig {
        initial_capital: 10_000.0,
        costs: Costs {
            commission_rate: commission,
            ..Costs::NONE
        },
        sizing,
        filters,
        ..ExecutionConfig::default()
    }
}

fn scenarios() -> Vec<Scenario> {
    let filters = |threshold: f64, bars: u32, ms: i64, reverse: bool| Filters {
        confidence_threshold: threshold,
        min_bars_between_trades: bars,
        min_time_between_trades_ms: ms,
        reverse_on_opposite: reverse,
    };
    vec![
        Scenario {
            name: "long_only_hourly_every_day",
            spec: BarSpec {
                bars: 2_000,
                seed: 11,
                ..BarSpec::default()
            },
            config: config(
                0.001,
                Sizing::FractionOfEquity(0.5),
                filters(0.45, 2, 0, false),
            ),
            switch: 0.08,
        },
        Scenario {
            name: "shorts_reversing_hourly_weekdays",
            spec: BarSpec {
                bars: 3_000,
                weekdays_only: true,
                seed: 12,
                ..BarSpec::default()
            },
            config: ExecutionConfig {
                allow_shorts: true,
                ..config(
                    0.002,
                    Sizing::FractionOfEquity(0.95),
                    filters(0.4, 0, 4 * HOUR, true),
                )
            },
            switch: 0.1,
        },
        Scenario {
            name: "shorts_closing_only_daily_weekdays",
            spec: BarSpec {
                bars: 1_500,
                timeframe: Timeframe::D1,
                weekdays_only: true,
                volatility: 0.02,
                seed: 13,
                ..BarSpec::default()
            },
            config: ExecutionConfig {
                allow_shorts: true,
                ..config(
                    0.0005,
                    Sizing::FractionOfEquity(0.3),
                    filters(0.5, 0, 3 * DAY, false),
                )
            },
            switch: 0.1,
        },
        Scenario {
            name: "fixed_units_with_fixed_fee_15_minutes",
            spec: BarSpec {
                bars: 5_000,
                timeframe: Timeframe::M15,
                volatility: 0.004,
                seed: 14,
                ..BarSpec::default()
            },
            config: ExecutionConfig {
                costs: Costs {
                    commission_rate: 0.001,
                    fixed_fee: 1.5,
                    ..Costs::NONE
                },
                allow_shorts: true,
                ..config(0.0, Sizing::FixedUnits(7.0), filters(0.5, 4, 0, true))
            },
            switch: 0.05,
        },
        Scenario {
            name: "fractional_units_hourly",
            spec: BarSpec {
                bars: 2_500,
                start_price: 30_000.0,
                seed: 15,
                ..BarSpec::default()
            },
            config: ExecutionConfig {
                lots: Lots::Step(1e-4),
                ..config(
                    0.001,
                    Sizing::FractionOfEquity(0.3),
                    filters(0.45, 0, 0, false),
                )
            },
            switch: 0.08,
        },
        Scenario {
            name: "no_costs_weekly",
            spec: BarSpec {
                bars: 400,
                timeframe: Timeframe::W1,
                volatility: 0.03,
                seed: 16,
                ..BarSpec::default()
            },
            config: config(
                0.0,
                Sizing::FractionOfEquity(0.7),
                filters(0.0, 0, 0, false),
            ),
            switch: 0.15,
        },
    ]
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: backtest_parity OUTPUT_DIR");
    std::fs::create_dir_all(&dir).unwrap();
    for s in scenarios() {
        let bars = common::bars(&s.spec);
        let probabilities = common::probabilities(bars.len(), s.switch, 1, s.spec.seed);
        let result = run(common::view(&bars), &probabilities, &s.config).unwrap();
        let document =
            common::parity_document(s.name, &bars, &probabilities, &s.config, Some(&result));
        let path = format!("{dir}/{}.json", s.name);
        std::fs::write(&path, serde_json::to_vec(&document).unwrap()).unwrap();
        println!(
            "{path}: {} bars, {} trades",
            bars.len(),
            result.trades.len()
        );
    }
}

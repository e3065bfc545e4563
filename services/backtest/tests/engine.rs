//! The engine's rules one at a time on small hand-made inputs: fills, costs, filters (each
//! counted), sizing and annualisation.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] functions

mod common;

use common::{BarSpec, Bars, Timeframe};
use ktrdr_backtest::{
    Annualization, BacktestResult, Costs, Decision, ExecutionConfig, ExitReason, Fill, Filters,
    Lots, Probabilities, ReturnPeriod, Side, Sizing, run,
};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// 2024-01-01 00:00 UTC, a Monday.
const START: i64 = 1_704_067_200_000;

/// Hourly bars from (open, close) pairs; high/low just around them.
fn bars(prices: &[(f64, f64)]) -> Bars {
    Bars {
        timestamp_ms: (0..prices.len() as i64).map(|i| START + i * HOUR).collect(),
        open: prices.iter().map(|p| p.0).collect(),
        high: prices.iter().map(|p| p.0.max(p.1) + 1.0).collect(),
        low: prices.iter().map(|p| p.0.min(p.1) - 1.0).collect(),
        close: prices.iter().map(|p| p.1).collect(),
        volume: vec![1.0; prices.len()],
    }
}

/// One row per character: B buy, S sell, H hold, b/s a weak (0.4) buy/sell, - no prediction.
fn signals(pattern: &str) -> Vec<Probabilities> {
    pattern
        .chars()
        .map(|c| match c {
            'B' => [0.8, 0.1, 0.1],
            'S' => [0.1, 0.1, 0.8],
            'H' => [0.1, 0.8, 0.1],
            'b' => [0.4, 0.3, 0.3],
            's' => [0.3, 0.3, 0.4],
            '-' => [f32::NAN; 3],
            other => panic!("unknown signal {other}"),
        })
        .collect()
}

/// No costs, no filters, 10 whole units: the plainest configuration.
fn plain() -> ExecutionConfig {
    ExecutionConfig {
        initial_capital: 10_000.0,
        costs: Costs::NONE,
        sizing: Sizing::FixedUnits(10.0),
        filters: Filters::NONE,
        ..ExecutionConfig::default()
    }
}

fn flat_prices(n: usize) -> Vec<(f64, f64)> {
    (0..n)
        .map(|i| (100.0 + i as f64, 100.5 + i as f64))
        .collect()
}

fn backtest(prices: &[(f64, f64)], pattern: &str, config: &ExecutionConfig) -> BacktestResult {
    let b = bars(prices);
    run(common::view(&b), &signals(pattern), config).expect("valid inputs")
}

fn close_to(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn a_buy_fills_at_the_next_open_and_the_position_left_is_closed_at_the_last_close() {
    let prices = flat_prices(6);
    let r = backtest(&prices, "HBHHHH", &plain());
    assert_eq!(r.trades.len(), 1);
    let t = &r.trades[0];
    assert_eq!((t.signal_bar, t.entry_bar, t.exit_bar), (1, 2, 5));
    assert_eq!(t.entry_price, prices[2].0);
    assert_eq!(t.exit_price, prices[5].1);
    assert_eq!(t.exit_reason, ExitReason::EndOfData);
    assert_eq!(t.pnl, 10.0 * (prices[5].1 - prices[2].0));
    // Flat until the fill, then marked at each close.
    assert_eq!(r.equity[..2], [10_000.0, 10_000.0]);
    for i in 2..6 {
        assert!(close_to(
            r.equity[i],
            10_000.0 + 10.0 * (prices[i].1 - prices[2].0)
        ));
    }
}

#[test]
fn the_optimistic_mode_fills_at_the_deciding_bars_own_close() {
    let prices = flat_prices(6);
    let config = ExecutionConfig {
        fill: Fill::SameCloseOptimistic,
        ..plain()
    };
    let r = backtest(&prices, "HBHSHH", &config);
    let t = &r.trades[0];
    assert_eq!((t.entry_bar, t.exit_bar), (1, 3));
    assert_eq!((t.entry_price, t.exit_price), (prices[1].1, prices[3].1));
}

#[test]
fn commission_is_paid_on_both_sides_of_every_trade_including_the_forced_close() {
    let prices = flat_prices(6);
    let config = ExecutionConfig {
        costs: Costs {
            commission_rate: 0.01,
            ..Costs::NONE
        },
        ..plain()
    };
    let r = backtest(&prices, "HBHHHH", &config);
    let t = &r.trades[0];
    let entry = prices[2].0;
    let exit = prices[5].1;
    let commissions = 10.0 * entry * 0.01 + 10.0 * exit * 0.01;
    assert!(close_to(t.commissions, commissions));
    assert!(close_to(t.pnl, 10.0 * (exit - entry) - commissions));
    // The entry commission is in the equity from the fill on; the exit's at the last bar.
    assert!(close_to(
        r.equity[2],
        10_000.0 + 10.0 * (prices[2].1 - entry) - 10.0 * entry * 0.01
    ));
    assert!(close_to(r.equity[5], 10_000.0 + t.pnl));
    assert!(close_to(r.metrics.equity_final, 10_000.0 + t.pnl));
    assert!(close_to(r.metrics.commissions, commissions));
}

#[test]
fn a_fixed_fee_is_paid_on_each_fill() {
    let prices = flat_prices(6);
    let config = ExecutionConfig {
        costs: Costs {
            fixed_fee: 2.5,
            ..Costs::NONE
        },
        ..plain()
    };
    let r = backtest(&prices, "HBHSHH", &config);
    let t = &r.trades[0];
    assert_eq!(t.commissions, 5.0);
    assert!(close_to(t.pnl, 10.0 * (prices[4].0 - prices[2].0) - 5.0));
    assert!(close_to(r.equity[5], 10_000.0 + t.pnl));
}

#[test]
fn slippage_moves_every_fill_against_the_trader_on_both_sides() {
    let prices = flat_prices(8);
    let config = ExecutionConfig {
        costs: Costs {
            slippage_rate: 0.001,
            ..Costs::NONE
        },
        allow_shorts: true,
        ..plain()
    };
    let r = backtest(&prices, "HBHSHSHH", &config);
    let (long, short) = (&r.trades[0], &r.trades[1]);
    assert_eq!(long.side, Side::Long);
    assert!(close_to(long.entry_price, prices[2].0 * 1.001));
    assert!(close_to(long.exit_price, prices[4].0 * 0.999));
    assert!(close_to(
        long.slippage_cost,
        10.0 * (prices[2].0 + prices[4].0) * 0.001
    ));
    assert_eq!(short.side, Side::Short);
    assert!(close_to(short.entry_price, prices[6].0 * 0.999));
    // The forced close buys back at the last close, slipped upwards.
    assert!(close_to(short.exit_price, prices[7].1 * 1.001));
    assert_eq!(short.exit_reason, ExitReason::EndOfData);
    assert!(close_to(
        short.pnl,
        -10.0 * (short.exit_price - short.entry_price)
    ));
    assert!(close_to(
        r.metrics.equity_final,
        10_000.0 + long.pnl + short.pnl
    ));
}

#[test]
fn half_the_spread_is_paid_on_each_fill() {
    let prices = flat_prices(6);
    let config = ExecutionConfig {
        costs: Costs {
            spread_rate: 0.002,
            ..Costs::NONE
        },
        ..plain()
    };
    let r = backtest(&prices, "HBHSHH", &config);
    let t = &r.trades[0];
    assert!(close_to(t.entry_price, prices[2].0 * 1.001));
    assert!(close_to(t.exit_price, prices[4].0 * 0.999));
    assert!(close_to(
        t.spread_cost,
        10.0 * (prices[2].0 + prices[4].0) * 0.001
    ));
    assert!(close_to(r.metrics.spread_costs, t.spread_cost));
}

#[test]
fn every_filter_drops_its_signals_and_counts_them() {
    let prices = flat_prices(15);
    let config = ExecutionConfig {
        filters: Filters {
            confidence_threshold: 0.5,
            min_bars_between_trades: 3,
            ..Filters::NONE
        },
        ..plain()
    };
    let r = backtest(&prices, "-HSbBSHBSHHBHHS", &config);
    use Decision::*;
    assert_eq!(
        r.decisions,
        [
            NoPrediction,
            Hold,
            ShortsDisabled,
            LowConfidence,
            Open(Side::Long),
            TooSoon,
            Hold,
            AlreadyPositioned,
            Close,
            Hold,
            Hold,
            Open(Side::Long),
            Hold,
            Hold,
            LastBar,
        ]
    );
    let s = r.signals;
    assert_eq!((s.raw_buy, s.raw_sell, s.raw_hold), (4, 4, 6));
    assert_eq!(s.bars_with_prediction, 14);
    assert_eq!(s.dropped_shorts_disabled, 1);
    assert_eq!(s.dropped_low_confidence, 1);
    assert_eq!(s.dropped_already_positioned, 1);
    assert_eq!(s.dropped_too_soon, 1);
    assert_eq!(s.dropped_last_bar, 1);
    assert_eq!(s.executed, 3);
    assert_eq!(
        s.raw_buy + s.raw_sell,
        s.executed
            + s.dropped_low_confidence
            + s.dropped_too_soon
            + s.dropped_already_positioned
            + s.dropped_shorts_disabled
            + s.dropped_last_bar
            + s.dropped_unaffordable
    );
    assert_eq!(r.trades.len(), 2);
}

#[test]
fn the_minimum_time_between_trades_counts_from_the_last_executed_decision() {
    let prices = flat_prices(8);
    let config = ExecutionConfig {
        filters: Filters {
            min_time_between_trades_ms: 3 * HOUR,
            ..Filters::NONE
        },
        ..plain()
    };
    let r = backtest(&prices, "BSSSBHHH", &config);
    use Decision::*;
    assert_eq!(
        r.decisions[..5],
        [Open(Side::Long), TooSoon, TooSoon, Close, TooSoon]
    );
    assert_eq!(r.signals.dropped_too_soon, 3);
}

#[test]
fn an_opposite_signal_only_closes_unless_reversal_is_on() {
    let prices = flat_prices(8);
    let shorts = ExecutionConfig {
        allow_shorts: true,
        ..plain()
    };
    let r = backtest(&prices, "BHSHHHHH", &shorts);
    assert_eq!(r.decisions[2], Decision::Close);
    assert_eq!(r.trades.len(), 1);

    let reversing = ExecutionConfig {
        filters: Filters {
            reverse_on_opposite: true,
            ..Filters::NONE
        },
        ..shorts.clone()
    };
    let r = backtest(&prices, "BHSHHHHH", &reversing);
    assert_eq!(r.decisions[2], Decision::Reverse(Side::Short));
    assert_eq!(r.trades.len(), 2);
    assert_eq!((r.trades[0].exit_bar, r.trades[1].entry_bar), (3, 3));
    assert_eq!(r.trades[1].side, Side::Short);
    assert_eq!(r.signals.executed, 1 + 1);

    // Reversal into a short needs shorts: long-only closes.
    let long_only = ExecutionConfig {
        allow_shorts: false,
        ..reversing
    };
    let r = backtest(&prices, "BHSHHHHH", &long_only);
    assert_eq!(r.decisions[2], Decision::Close);
}

#[test]
fn a_fraction_of_equity_buys_whole_units_with_the_commission_included() {
    let prices = vec![
        (100.0, 100.0),
        (101.0, 101.0),
        (103.0, 102.0),
        (102.0, 102.0),
    ];
    let config = ExecutionConfig {
        initial_capital: 10_000.0,
        costs: Costs {
            commission_rate: 0.002,
            ..Costs::NONE
        },
        sizing: Sizing::FractionOfEquity(0.5),
        filters: Filters::NONE,
        ..ExecutionConfig::default()
    };
    let r = backtest(&prices, "HBHH", &config);
    // floor(5000 / (103 × 1.002)) = 48
    assert_eq!(r.trades[0].units, 48.0);
    let fractional = ExecutionConfig {
        lots: Lots::Step(0.01),
        ..config.clone()
    };
    let r = backtest(&prices, "HBHH", &fractional);
    assert!(close_to(r.trades[0].units, 48.44));
    let any = ExecutionConfig {
        lots: Lots::Any,
        ..config
    };
    let r = backtest(&prices, "HBHH", &any);
    let units = r.trades[0].units;
    assert!(close_to(units * 103.0 * 1.002, 5_000.0), "{units}");
}

#[test]
fn fixed_units_and_notional_are_skipped_and_counted_when_cash_does_not_cover_them() {
    let prices = flat_prices(6);
    let notional = ExecutionConfig {
        sizing: Sizing::FixedNotional(1_000.0),
        ..plain()
    };
    let r = backtest(&prices, "HBHHHH", &notional);
    assert_eq!(r.trades[0].units, (1_000.0f64 / prices[2].0).floor());

    let too_big = ExecutionConfig {
        sizing: Sizing::FixedUnits(1_000.0),
        ..plain()
    };
    let r = backtest(&prices, "HBHHBH", &too_big);
    assert!(r.trades.is_empty());
    assert_eq!(r.signals.dropped_unaffordable, 2);
    assert_eq!(r.signals.executed, 0);
    assert!(r.equity.iter().all(|&e| e == 10_000.0));
}

#[test]
fn invalid_settings_and_bars_name_their_field() {
    let b = bars(&flat_prices(4));
    let p = signals("HHHH");
    let mut config = ExecutionConfig::default();
    config.costs.commission_rate = -0.01;
    let err = run(common::view(&b), &p, &config).unwrap_err();
    assert_eq!(err.field, "costs.commission_rate");
    let config = ExecutionConfig {
        sizing: Sizing::FractionOfEquity(1.5),
        ..ExecutionConfig::default()
    };
    assert_eq!(
        run(common::view(&b), &p, &config).unwrap_err().field,
        "sizing.fraction"
    );
    let err = run(common::view(&b), &p[..3], &ExecutionConfig::default()).unwrap_err();
    assert_eq!(err.field, "probabilities");
    let mut unpriced = b.clone();
    unpriced.close[2] = f64::NAN;
    let err = run(common::view(&unpriced), &p, &ExecutionConfig::default()).unwrap_err();
    assert_eq!(err.field, "close");
    let mut unordered = b.clone();
    unordered.timestamp_ms[2] = unordered.timestamp_ms[1];
    let err = run(common::view(&unordered), &p, &ExecutionConfig::default()).unwrap_err();
    assert_eq!(err.field, "timestamp_ms");
}

#[test]
fn the_defaults_are_the_original_ktrdrs() {
    let c = ExecutionConfig::default();
    assert_eq!(c.initial_capital, 100_000.0);
    assert_eq!(
        (c.costs.commission_rate, c.costs.slippage_rate),
        (0.001, 0.0005)
    );
    assert_eq!(c.sizing, Sizing::FractionOfEquity(0.25));
    assert_eq!(c.lots, Lots::Whole);
    assert!(!c.allow_shorts);
    assert_eq!(c.filters.confidence_threshold, 0.5);
    assert_eq!(c.filters.min_time_between_trades_ms, 4 * HOUR);
    assert!(!c.filters.reverse_on_opposite);
    assert_eq!(c.fill, Fill::NextOpen);
}

fn annualized(spec: BarSpec, mode: Annualization) -> ktrdr_backtest::Annualized {
    let b = common::bars(&spec);
    let p = common::probabilities(b.len(), 0.05, 1, spec.seed);
    let config = ExecutionConfig {
        annualization: mode,
        ..ExecutionConfig::default()
    };
    run(common::view(&b), &p, &config)
        .unwrap()
        .metrics
        .annualization
}

#[test]
fn the_calendar_and_bar_size_choose_the_annualisation() {
    let weekdays_daily = BarSpec {
        timeframe: Timeframe::D1,
        weekdays_only: true,
        bars: 600,
        ..BarSpec::default()
    };
    let a = annualized(weekdays_daily, Annualization::Auto);
    assert_eq!((a.returns, a.periods_per_year), (ReturnPeriod::Day, 252.0));
    assert_eq!(a.bar_period_ms, DAY as f64);

    let crypto_hourly = BarSpec::default();
    let a = annualized(crypto_hourly, Annualization::Auto);
    assert_eq!((a.returns, a.periods_per_year), (ReturnPeriod::Day, 365.0));
    assert!(a.weekend_share > 0.6 * 2.0 / 7.0);

    let weekly = BarSpec {
        timeframe: Timeframe::W1,
        bars: 200,
        ..BarSpec::default()
    };
    let a = annualized(weekly, Annualization::Auto);
    assert_eq!((a.returns, a.periods_per_year), (ReturnPeriod::Week, 52.0));

    let forex = annualized(
        BarSpec {
            weekdays_only: true,
            ..BarSpec::default()
        },
        Annualization::TradingDays(260.0),
    );
    assert_eq!(
        (forex.returns, forex.periods_per_year),
        (ReturnPeriod::Day, 260.0)
    );

    let per_bar = annualized(
        BarSpec {
            timeframe: Timeframe::M15,
            ..BarSpec::default()
        },
        Annualization::per_bar(252.0, 26.0),
    );
    assert_eq!(
        (per_bar.returns, per_bar.periods_per_year),
        (ReturnPeriod::Bar, 6552.0)
    );
}

#[test]
fn per_bar_annualisation_compounds_the_geometric_mean_bar_return() {
    let b = common::bars(&BarSpec {
        bars: 300,
        ..BarSpec::default()
    });
    let p = common::probabilities(b.len(), 0.05, 1, 3);
    let config = ExecutionConfig {
        annualization: Annualization::PerBar(8760.0),
        ..ExecutionConfig::default()
    };
    let r = run(common::view(&b), &p, &config).unwrap();
    let returns: Vec<f64> = r.equity.windows(2).map(|w| w[1] / w[0] - 1.0).collect();
    let g =
        (returns.iter().map(|x| (1.0 + x).ln()).sum::<f64>() / returns.len() as f64).exp() - 1.0;
    let expected = ((1.0 + g).powf(8760.0) - 1.0) * 100.0;
    assert!(
        close_to(r.metrics.return_ann_pct, expected),
        "{} vs {expected}",
        r.metrics.return_ann_pct
    );
}

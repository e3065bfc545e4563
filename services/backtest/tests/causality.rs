//! Property tests over seeded random inputs and settings: nothing at or before bar t depends
//! on a later bar (decisions, fills, equity), and the same inputs give the very same result.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] functions

mod common;

use common::{BarSpec, Bars, SplitMix64};
use ktrdr_backtest::{
    BacktestResult, Costs, ExecutionConfig, Fill, Filters, Lots, Probabilities, Sizing, run,
};

const CASES: u64 = 200;

fn random_config(rng: &mut SplitMix64) -> ExecutionConfig {
    let pick = |rng: &mut SplitMix64, n: u64| rng.next_u64() % n;
    ExecutionConfig {
        initial_capital: 1_000.0 + 100_000.0 * rng.next_f64(),
        costs: Costs {
            commission_rate: 0.002 * rng.next_f64(),
            fixed_fee: if pick(rng, 2) == 0 {
                0.0
            } else {
                2.0 * rng.next_f64()
            },
            slippage_rate: 0.001 * rng.next_f64(),
            spread_rate: 0.001 * rng.next_f64(),
        },
        sizing: match pick(rng, 3) {
            0 => Sizing::FractionOfEquity(0.05 + 0.95 * rng.next_f64()),
            1 => Sizing::FixedUnits(1.0 + 20.0 * rng.next_f64()),
            _ => Sizing::FixedNotional(500.0 + 5_000.0 * rng.next_f64()),
        },
        lots: match pick(rng, 3) {
            0 => Lots::Whole,
            1 => Lots::Step(0.001),
            _ => Lots::Any,
        },
        allow_shorts: pick(rng, 2) == 0,
        filters: Filters {
            confidence_threshold: 0.6 * rng.next_f64(),
            min_bars_between_trades: pick(rng, 4) as u32,
            min_time_between_trades_ms: (pick(rng, 4) * 3_600_000) as i64,
            reverse_on_opposite: pick(rng, 2) == 0,
        },
        fill: if pick(rng, 4) == 0 {
            Fill::SameCloseOptimistic
        } else {
            Fill::NextOpen
        },
        ..ExecutionConfig::default()
    }
}

fn inputs(case: u64, rng: &mut SplitMix64) -> (Bars, Vec<Probabilities>) {
    let spec = BarSpec {
        bars: 20 + (rng.next_u64() % 300) as usize,
        weekdays_only: rng.next_u64().is_multiple_of(2),
        flat_last_bar: false,
        seed: case,
        ..BarSpec::default()
    };
    let bars = common::bars(&spec);
    let probabilities = common::probabilities(bars.len(), 0.15, (case % 5) as usize, case);
    (bars, probabilities)
}

/// Bit-exact text of a result (NaN compares equal to itself here).
fn fingerprint(result: &BacktestResult) -> String {
    format!("{result:?}")
}

/// Everything about bars 0..=t: decisions and equity, trades entered by then (their entry),
/// trades closed by then (whole).
fn known_at(result: &BacktestResult, t: usize) -> String {
    let entries: Vec<_> = result
        .trades
        .iter()
        .filter(|tr| tr.entry_bar <= t)
        .map(|tr| {
            (
                tr.side,
                tr.units,
                tr.signal_bar,
                tr.entry_bar,
                tr.entry_price,
            )
        })
        .collect();
    let closed: Vec<_> = result.trades.iter().filter(|tr| tr.exit_bar <= t).collect();
    format!(
        "{:?}\n{:?}\n{entries:?}\n{closed:?}",
        &result.decisions[..=t],
        &result.equity[..=t]
    )
}

#[test]
fn changing_any_bar_after_t_changes_nothing_at_or_before_t() {
    for case in 0..CASES {
        let mut rng = SplitMix64::new(case);
        let config = random_config(&mut rng);
        let (bars, probabilities) = inputs(case, &mut rng);
        let n = bars.len();
        let base = run(common::view(&bars), &probabilities, &config).unwrap();
        let t = (rng.next_u64() % (n as u64 - 1)) as usize;

        let mut later = bars.clone();
        let mut later_probabilities = probabilities.clone();
        let fresh = common::probabilities(n, 0.5, 0, case + 1_000);
        for i in t + 1..n {
            let factor = 0.5 + rng.next_f64();
            later.open[i] *= factor;
            later.high[i] *= factor * 1.01;
            later.low[i] *= factor * 0.99;
            later.close[i] *= 0.5 + rng.next_f64();
            later.volume[i] += 1.0;
        }
        later_probabilities[t + 1..].copy_from_slice(&fresh[t + 1..]);
        let changed = run(common::view(&later), &later_probabilities, &config).unwrap();
        assert_eq!(
            known_at(&base, t),
            known_at(&changed, t),
            "case {case}: bars after {t} of {n} changed the past ({config:?})"
        );

        // The same holds when the later bars do not exist at all (bar t + 1 is the last).
        let end = t + 2;
        let prefix = Bars {
            timestamp_ms: bars.timestamp_ms[..end].to_vec(),
            open: bars.open[..end].to_vec(),
            high: bars.high[..end].to_vec(),
            low: bars.low[..end].to_vec(),
            close: bars.close[..end].to_vec(),
            volume: bars.volume[..end].to_vec(),
        };
        let truncated = run(common::view(&prefix), &probabilities[..end], &config).unwrap();
        assert_eq!(
            known_at(&base, t),
            known_at(&truncated, t),
            "case {case}: cutting the bars after {} changed bar {t}",
            t + 1
        );
    }
}

#[test]
fn the_same_inputs_give_the_very_same_result() {
    for case in 0..CASES / 4 {
        let mut rng = SplitMix64::new(case);
        let config = random_config(&mut rng);
        let (bars, probabilities) = inputs(case, &mut rng);
        let first = run(common::view(&bars), &probabilities, &config).unwrap();
        let copy = bars.clone();
        let second = run(common::view(&copy), &probabilities.clone(), &config.clone()).unwrap();
        assert_eq!(fingerprint(&first), fingerprint(&second), "case {case}");
        assert_eq!(first.equity.len(), bars.len());
    }
}

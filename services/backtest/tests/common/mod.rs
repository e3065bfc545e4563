//! Inputs shared by the tests, the parity example and the benchmark (`#[path]`-included by the
//! latter two): ktrdr-strategy's generated bars, optionally on a weekday calendar, with opening
//! gaps and a flat last bar; persistent, noisy class probabilities; and the JSON document
//! `scripts/backtest_parity.py` replays in backtesting.py. Deterministic for a seed.

#![allow(dead_code)] // each includer uses a part

use ktrdr_backtest::{BacktestResult, BarsView, ExecutionConfig, Lots, Probabilities, Sizing};
use ktrdr_market::DAY_MS;
pub use ktrdr_market::{Bars, Timeframe};
pub use ktrdr_strategy::synthetic::SplitMix64;
use ktrdr_strategy::synthetic::{PathSpec, generate};
use serde_json::{Value, json};

/// The engine's view of owned bars.
pub fn view(bars: &Bars) -> BarsView<'_> {
    BarsView::from(bars)
}

/// The shape of generated bars.
#[derive(Debug, Clone, Copy)]
pub struct BarSpec {
    pub bars: usize,
    pub timeframe: Timeframe,
    /// Drop Saturdays and Sundays (a stock or forex calendar).
    pub weekdays_only: bool,
    pub start_price: f64,
    /// Per-bar standard deviation of log returns.
    pub volatility: f64,
    /// End with one flat bar (open = high = low = close = the previous close), so that a fill
    /// at its open and a close at its close are the same price.
    pub flat_last_bar: bool,
    pub seed: u64,
}

impl Default for BarSpec {
    fn default() -> Self {
        Self {
            bars: 1_000,
            timeframe: Timeframe::H1,
            weekdays_only: false,
            start_price: 100.0,
            volatility: 0.01,
            flat_last_bar: true,
            seed: 1,
        }
    }
}

fn is_weekend(timestamp_ms: i64) -> bool {
    (timestamp_ms.div_euclid(DAY_MS) + 3).rem_euclid(7) >= 5
}

/// Bars following `spec`: ktrdr-strategy's random walk (it starts on Monday 2024-01-01), whose
/// opens then gap from the previous close so that an open and the close before it differ.
pub fn bars(spec: &BarSpec) -> Bars {
    let generated = generate(&PathSpec {
        seed: spec.seed,
        bars: if spec.weekdays_only {
            spec.bars * 7 / 5 + 10
        } else {
            spec.bars
        },
        timeframe: spec.timeframe,
        start_price: spec.start_price,
        volatility: spec.volatility,
        ..PathSpec::default()
    });
    let keep: Vec<usize> = (0..generated.len())
        .filter(|&i| !(spec.weekdays_only && is_weekend(generated.timestamp_ms[i])))
        .take(spec.bars)
        .collect();
    let pick = |column: &[f64]| keep.iter().map(|&i| column[i]).collect::<Vec<f64>>();
    let mut bars = Bars {
        timestamp_ms: keep.iter().map(|&i| generated.timestamp_ms[i]).collect(),
        open: pick(&generated.open),
        high: pick(&generated.high),
        low: pick(&generated.low),
        close: pick(&generated.close),
        volume: pick(&generated.volume),
    };
    let mut rng = SplitMix64::new(spec.seed ^ 0x6A9);
    for i in 1..bars.len() {
        let gap = 1.0 + 0.2 * spec.volatility * (2.0 * rng.next_f64() - 1.0);
        bars.open[i] = bars.close[i - 1] * gap;
        bars.high[i] = bars.high[i].max(bars.open[i]);
        bars.low[i] = bars.low[i].min(bars.open[i]);
    }
    if spec.flat_last_bar && bars.len() > 1 {
        let last = bars.len() - 1;
        let price = bars.close[last - 1];
        bars.open[last] = price;
        bars.high[last] = price;
        bars.low[last] = price;
        bars.close[last] = price;
    }
    bars
}

/// Class probabilities that favour one class for a while (switching with probability `switch`
/// per bar), with noise; the first `warmup` rows are NaN (no prediction).
pub fn probabilities(bars: usize, switch: f64, warmup: usize, seed: u64) -> Vec<Probabilities> {
    let mut rng = SplitMix64::new(seed ^ 0x5EED);
    let mut favoured = 1usize;
    (0..bars)
        .map(|i| {
            if rng.next_f64() < switch {
                favoured = (rng.next_u64() % 3) as usize;
            }
            let mut row = [0f32; 3];
            for (class, p) in row.iter_mut().enumerate() {
                let bonus = if class == favoured { 1.2 } else { 0.0 };
                *p = (rng.next_f64() + bonus) as f32;
            }
            let total: f32 = row.iter().sum();
            for p in &mut row {
                *p /= total;
            }
            if i < warmup { [f32::NAN; 3] } else { row }
        })
        .collect()
}

/// A parity scenario as `scripts/backtest_parity.py` reads it: the settings in backtesting.py's
/// terms, the bars, the probabilities and (when given) the engine's trades, equity and metrics.
///
/// Only what backtesting.py can express is written: commission (relative and fixed), fraction
/// of equity or whole units, whole or stepped lots (its `FractionalBacktest`), shorts, and the
/// decision filters; slippage, spread and notional sizing have no counterpart there.
pub fn parity_document(
    name: &str,
    bars: &Bars,
    probabilities: &[Probabilities],
    config: &ExecutionConfig,
    result: Option<&BacktestResult>,
) -> Value {
    let sizing = match config.sizing {
        Sizing::FractionOfEquity(f) => json!({ "fraction": f }),
        Sizing::FixedUnits(u) => json!({ "units": u }),
        Sizing::FixedNotional(x) => json!({ "notional": x }),
    };
    let engine = result.map(|r| {
        let metrics: serde_json::Map<String, Value> = r
            .metrics
            .backtesting_py()
            .into_iter()
            .map(|(name, value)| (name.to_owned(), json!(value)))
            .collect();
        json!({
            "trades": r.trades,
            "equity": r.equity,
            "metrics": metrics,
            "signals": r.signals,
        })
    });
    json!({
        "name": name,
        "config": {
            "cash": config.initial_capital,
            "commission": config.costs.commission_rate,
            "fixed_fee": config.costs.fixed_fee,
            "sizing": sizing,
            "lot_step": match config.lots { Lots::Step(step) => Some(step), _ => None },
            "allow_shorts": config.allow_shorts,
            "reverse": config.filters.reverse_on_opposite,
            "threshold": config.filters.confidence_threshold,
            "min_bars": config.filters.min_bars_between_trades,
            "min_time_ms": config.filters.min_time_between_trades_ms,
        },
        "bars": bars,
        "probabilities": probabilities,
        "engine": engine,
    })
}

//! Generated inputs for tests, examples and benchmarks: seeded random-walk bars on a chosen
//! calendar and persistent, noisy class probabilities (deterministic for a seed), and the JSON
//! document `scripts/backtest_parity.py` replays in backtesting.py.

use serde_json::{Value, json};

use crate::BacktestResult;
use crate::bars::{BarsView, Probabilities};
use crate::calendar::DAY_MS;
use crate::config::{ExecutionConfig, Lots, Sizing};

/// SplitMix64: a tiny seeded generator, enough for test data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly standard normal (sum of 4 uniforms, rescaled).
    pub fn normal(&mut self) -> f64 {
        let s: f64 = (0..4).map(|_| self.uniform()).sum();
        (s - 2.0) * 3.0f64.sqrt()
    }
}

/// Owned bar columns for tests (the engine itself only ever borrows).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GeneratedBars {
    pub timestamp_ms: Vec<i64>,
    pub open: Vec<f64>,
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub close: Vec<f64>,
    pub volume: Vec<f64>,
}

impl GeneratedBars {
    pub fn view(&self) -> BarsView<'_> {
        BarsView {
            timestamp_ms: &self.timestamp_ms,
            open: &self.open,
            high: &self.high,
            low: &self.low,
            close: &self.close,
            volume: &self.volume,
        }
    }

    pub fn len(&self) -> usize {
        self.timestamp_ms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timestamp_ms.is_empty()
    }
}

/// The shape of generated bars.
#[derive(Debug, Clone, Copy)]
pub struct BarSpec {
    pub bars: usize,
    /// Bar spacing in ms.
    pub step_ms: i64,
    /// Skip Saturdays and Sundays (a stock or forex calendar).
    pub weekdays_only: bool,
    /// First bar's open time (UTC ms).
    pub start_ms: i64,
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
            step_ms: 3_600_000,
            weekdays_only: false,
            // 2024-01-01 00:00 UTC, a Monday.
            start_ms: 1_704_067_200_000,
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

/// Random-walk bars following `spec`.
pub fn bars(spec: &BarSpec) -> GeneratedBars {
    let mut rng = Rng::new(spec.seed);
    let mut out = GeneratedBars::default();
    let mut t = spec.start_ms;
    let mut previous_close = spec.start_price;
    for i in 0..spec.bars {
        while spec.weekdays_only && is_weekend(t) {
            t += spec.step_ms;
        }
        let last = i + 1 == spec.bars;
        let (open, high, low, close) = if last && spec.flat_last_bar {
            (
                previous_close,
                previous_close,
                previous_close,
                previous_close,
            )
        } else {
            let open = previous_close * (1.0 + 0.1 * spec.volatility * rng.normal());
            let close = open * (spec.volatility * rng.normal()).exp();
            let high = open.max(close) * (1.0 + 0.5 * spec.volatility * rng.uniform());
            let low = open.min(close) * (1.0 - 0.5 * spec.volatility * rng.uniform());
            (open, high, low, close)
        };
        out.timestamp_ms.push(t);
        out.open.push(open);
        out.high.push(high);
        out.low.push(low);
        out.close.push(close);
        out.volume.push((1_000.0 * (1.0 + rng.uniform())).round());
        previous_close = close;
        t += spec.step_ms;
    }
    out
}

/// Class probabilities that favour one class for a while (switching with probability
/// `switch` per bar), with noise; the first `warmup` rows are NaN (no prediction).
pub fn probabilities(bars: usize, switch: f64, warmup: usize, seed: u64) -> Vec<Probabilities> {
    let mut rng = Rng::new(seed ^ 0x5EED);
    let mut favoured = 1usize;
    (0..bars)
        .map(|i| {
            if rng.uniform() < switch {
                favoured = (rng.next_u64() % 3) as usize;
            }
            let mut row = [0f32; 3];
            for (class, p) in row.iter_mut().enumerate() {
                let bonus = if class == favoured { 1.2 } else { 0.0 };
                *p = (rng.uniform() + bonus) as f32;
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
    bars: &GeneratedBars,
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
        "bars": {
            "timestamp_ms": bars.timestamp_ms,
            "open": bars.open,
            "high": bars.high,
            "low": bars.low,
            "close": bars.close,
            "volume": bars.volume,
        },
        "probabilities": probabilities,
        "engine": engine,
    })
}

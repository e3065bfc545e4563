//! A borrowed view of OHLCV bar columns plus the per-bar class probabilities the engine reads.
//!
//! The engine owns no bar type: callers hand it slices of the columns they already hold
//! (`ktrdr_market::Bars` through `From`, an Arrow batch, a proto's columns). Timestamps are each
//! bar's open time in UTC epoch milliseconds and must strictly increase.

use crate::error::InvalidInput;

/// Bar columns of one symbol and one timeframe, all of the same length.
#[derive(Debug, Clone, Copy)]
pub struct BarsView<'a> {
    pub timestamp_ms: &'a [i64],
    pub open: &'a [f64],
    pub high: &'a [f64],
    pub low: &'a [f64],
    pub close: &'a [f64],
    pub volume: &'a [f64],
}

/// Class probabilities of one bar in the model's output order: BUY, HOLD, SELL. A bar whose
/// row holds a NaN has no prediction (a warm-up bar) and is never traded on.
pub type Probabilities = [f32; 3];

/// Index of BUY in a [`Probabilities`] row.
pub const BUY: usize = 0;
/// Index of HOLD in a [`Probabilities`] row.
pub const HOLD: usize = 1;
/// Index of SELL in a [`Probabilities`] row.
pub const SELL: usize = 2;

impl<'a> From<&'a ktrdr_market::Bars> for BarsView<'a> {
    fn from(bars: &'a ktrdr_market::Bars) -> Self {
        Self {
            timestamp_ms: &bars.timestamp_ms,
            open: &bars.open,
            high: &bars.high,
            low: &bars.low,
            close: &bars.close,
            volume: &bars.volume,
        }
    }
}

impl BarsView<'_> {
    /// Number of bars.
    pub fn len(&self) -> usize {
        self.timestamp_ms.len()
    }

    /// True when there are no bars.
    pub fn is_empty(&self) -> bool {
        self.timestamp_ms.is_empty()
    }

    /// Checks what the simulation relies on: at least two bars, equal column lengths, strictly
    /// increasing timestamps, finite positive open and close prices.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        self.check_shape()?;
        self.check_values()
    }

    /// At least two bars and equal column lengths.
    pub(crate) fn check_shape(&self) -> Result<(), InvalidInput> {
        let n = self.len();
        if n < 2 {
            return Err(InvalidInput::new(
                "bars",
                format!("a backtest needs at least 2 bars, got {n}; widen the range"),
            ));
        }
        for (name, column) in [
            ("open", self.open),
            ("high", self.high),
            ("low", self.low),
            ("close", self.close),
            ("volume", self.volume),
        ] {
            if column.len() != n {
                return Err(InvalidInput::new(
                    name,
                    format!("has {} values but there are {n} timestamps", column.len()),
                ));
            }
        }
        Ok(())
    }

    /// Strictly increasing timestamps, finite positive open and close prices.
    fn check_values(&self) -> Result<(), InvalidInput> {
        // Branch-free scans first (they vectorise); positions only to word an error.
        let ts = self.timestamp_ms;
        let increasing = ts[1..].iter().zip(ts).fold(true, |ok, (b, a)| ok & (a < b));
        if !increasing {
            let i = self
                .timestamp_ms
                .windows(2)
                .position(|w| w[1] <= w[0])
                .unwrap_or_default();
            return Err(InvalidInput::new(
                "timestamp_ms",
                format!(
                    "timestamps must strictly increase: bar {} ({}) is not after bar {i} ({})",
                    i + 1,
                    self.timestamp_ms[i + 1],
                    self.timestamp_ms[i]
                ),
            ));
        }
        let priced = |p: f64| (p > 0.0) & (p < f64::INFINITY);
        for (name, column) in [("open", self.open), ("close", self.close)] {
            if column.iter().fold(true, |ok, &p| ok & priced(p)) {
                continue;
            }
            if let Some(i) = column.iter().position(|&p| !priced(p)) {
                return Err(InvalidInput::new(
                    name,
                    format!(
                        "bar {i} has price {}; prices must be finite and > 0",
                        column[i]
                    ),
                ));
            }
        }
        Ok(())
    }
}

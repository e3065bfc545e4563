//! ktrdr's backtesting engine: OHLCV bars, one row of class probabilities (BUY, HOLD, SELL) per
//! bar and an [`ExecutionConfig`] in; trades, the equity curve bar by bar, what the decision
//! filters did with each signal, and metrics out.
//!
//! A pure library: no I/O, no clock, no threads; the same inputs give the same result bit for
//! bit. The time convention is a live trader's: the decision for bar t uses only what is known
//! at t's close, and its market order fills at the open of bar t + 1
//! ([`Fill::SameCloseOptimistic`] exists only as an explicitly optimistic comparison).
//!
//! Metrics follow backtesting.py 0.6.6's names and definitions (checked against it in
//! `make test`, see `scripts/backtest_parity.py`), with the annualisation chosen from the bar
//! size and the calendar and reported in [`Annualized`].
//!
//! A caller (a server, a walk-forward loop) holds bars as columns and probabilities from
//! batched inference, and calls [`run`]; [`simulate()`] and [`metrics::compute`] are the two
//! halves, for callers that stitch equity curves before computing metrics.

mod bars;
mod calendar;
mod config;
mod error;
pub mod metrics;
mod numeric;
mod simulate;
pub mod tables;

use serde::Serialize;

pub use bars::{BUY, BarsView, HOLD, Probabilities, SELL};
pub use calendar::ReturnPeriod;
pub use config::{Annualization, Costs, ExecutionConfig, Fill, Filters, Lots, Sizing};
pub use error::InvalidInput;
pub use metrics::{Annualized, Metrics, SideStats};
pub use simulate::{Decision, ExitReason, Side, SignalCounts, Simulation, Trade, simulate};

/// Everything a backtest produces.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BacktestResult {
    /// Closed trades, in the order they closed.
    pub trades: Vec<Trade>,
    /// Equity at each bar's close.
    pub equity: Vec<f64>,
    /// What the filters made of each bar's signal.
    pub decisions: Vec<Decision>,
    /// Raw signals and why those not executed were dropped.
    pub signals: SignalCounts,
    pub metrics: Metrics,
}

/// Validates the inputs, simulates and computes the metrics.
pub fn run(
    bars: BarsView<'_>,
    probabilities: &[Probabilities],
    config: &ExecutionConfig,
) -> Result<BacktestResult, InvalidInput> {
    let simulation = simulate(bars, probabilities, config)?;
    let metrics = metrics::compute_valid(bars, &simulation, config);
    Ok(BacktestResult {
        trades: simulation.trades,
        equity: simulation.equity,
        decisions: simulation.decisions,
        signals: simulation.signals,
        metrics,
    })
}

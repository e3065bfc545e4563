//! Execution settings of a backtest: capital, costs, sizing, lots, shorts, decision filters,
//! fill timing and annualisation. [`ExecutionConfig::default`] is the original ktrdr's
//! backtest (capital 100 000, commission 0.1 % and slippage 0.05 % per side, 25 % of equity in
//! whole units, long only, confidence ≥ 0.5, 4 h between trades, an opposite signal only
//! closes), with next-open fills.

use serde::Serialize;

use crate::error::InvalidInput;

const HOUR_MS: i64 = 3_600_000;

/// Everything that decides how signals become trades.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecutionConfig {
    /// Starting cash. Default 100 000 (the original's).
    pub initial_capital: f64,
    pub costs: Costs,
    pub sizing: Sizing,
    pub lots: Lots,
    /// Open short positions on SELL from flat (and on reversals). Default false: long only.
    pub allow_shorts: bool,
    pub filters: Filters,
    pub fill: Fill,
    pub annualization: Annualization,
}

/// Costs paid on every fill (each side of a trade), all of them in the trade's P&L and in the
/// equity curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Costs {
    /// Commission as a fraction of the filled notional (units × fill price). Default 0.001.
    pub commission_rate: f64,
    /// Fixed commission per fill, in cash. Default 0.
    pub fixed_fee: f64,
    /// Slippage as a fraction of the reference price, against the trader: buys fill higher,
    /// sells lower. Default 0.0005.
    pub slippage_rate: f64,
    /// Full bid-ask spread as a fraction of the reference price; each fill crosses half of it.
    /// Default 0.
    pub spread_rate: f64,
}

/// How many units an entry buys or sells.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Sizing {
    /// This fraction of the equity at the fill (cash, since entries happen flat), commission
    /// included, in (0, 1]. Default 0.25 (the original's 25 % of cash).
    FractionOfEquity(f64),
    /// A fixed number of units; the entry is skipped when the cash does not cover it.
    FixedUnits(f64),
    /// A fixed notional (units × fill price); skipped when the cash does not cover it.
    FixedNotional(f64),
}

/// Granularity of position sizes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Lots {
    /// Whole units, rounded down (the original's and backtesting.py's default).
    Whole,
    /// Multiples of this step, rounded down (backtesting.py's `FractionalBacktest` unit).
    Step(f64),
    /// Any positive size.
    Any,
}

/// The decision filters of the original ktrdr, applied in its order to each bar's raw signal
/// (the most probable class; ties go to BUY, then HOLD).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Filters {
    /// A signal whose probability is below this becomes HOLD. Default 0.5.
    pub confidence_threshold: f64,
    /// Bars between the decision bars of two executed trades, at least. Default 0.
    pub min_bars_between_trades: u32,
    /// Time between the decision bars of two executed trades, at least, in ms. Default 4 h
    /// (the original's `min_signal_separation: 4`).
    pub min_time_between_trades_ms: i64,
    /// An opposite signal closes the position and opens the other side (when that side is
    /// allowed) instead of only closing. Default false (the original only closes).
    pub reverse_on_opposite: bool,
}

/// When a decision taken at bar t's close is filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Fill {
    /// At the open of bar t + 1: what a live trader could do. Default.
    NextOpen,
    /// At bar t's own close, the price the decision was computed from: optimistic (a trader
    /// cannot both see the close and trade at it); for comparisons only.
    SameCloseOptimistic,
}

/// How returns are annualised for Return (Ann.), Volatility (Ann.), Sharpe, Sortino and
/// Calmar. The one used is reported in [`crate::Annualized`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Annualization {
    /// backtesting.py's rule: equity resampled to calendar days (weeks, months or years for
    /// bars that long, with 52, 12 or 1 periods a year); 365 days a year when the share of
    /// bars on Saturdays and Sundays exceeds 0.6 × 2/7 (a market that trades every day),
    /// otherwise 252. Default.
    Auto,
    /// Equity resampled to calendar days (or the bar's own period when bars are a week or
    /// longer), this many trading days a year: 252 for stocks, 260 for forex, 365 for crypto.
    TradingDays(f64),
    /// Per-bar returns without resampling, this many bars a year (trading days × bars a day;
    /// see [`Annualization::per_bar`]).
    PerBar(f64),
}

impl Annualization {
    /// Per-bar returns for a calendar of `trading_days` a year and `bars_per_day` bars a day.
    pub fn per_bar(trading_days: f64, bars_per_day: f64) -> Self {
        Self::PerBar(trading_days * bars_per_day)
    }
}

impl Default for ExecutionConfig {
    fn default() -> Self {
        Self {
            initial_capital: 100_000.0,
            costs: Costs::default(),
            sizing: Sizing::FractionOfEquity(0.25),
            lots: Lots::Whole,
            allow_shorts: false,
            filters: Filters::default(),
            fill: Fill::NextOpen,
            annualization: Annualization::Auto,
        }
    }
}

impl Default for Costs {
    fn default() -> Self {
        Self {
            commission_rate: 0.001,
            fixed_fee: 0.0,
            slippage_rate: 0.0005,
            spread_rate: 0.0,
        }
    }
}

impl Costs {
    /// No costs at all.
    pub const NONE: Costs = Costs {
        commission_rate: 0.0,
        fixed_fee: 0.0,
        slippage_rate: 0.0,
        spread_rate: 0.0,
    };
}

impl Default for Filters {
    fn default() -> Self {
        Self {
            confidence_threshold: 0.5,
            min_bars_between_trades: 0,
            min_time_between_trades_ms: 4 * HOUR_MS,
            reverse_on_opposite: false,
        }
    }
}

impl Filters {
    /// Every signal passes (except those contradicting the position).
    pub const NONE: Filters = Filters {
        confidence_threshold: 0.0,
        min_bars_between_trades: 0,
        min_time_between_trades_ms: 0,
        reverse_on_opposite: false,
    };
}

fn check(ok: bool, field: &str, message: impl FnOnce() -> String) -> Result<(), InvalidInput> {
    if ok {
        Ok(())
    } else {
        Err(InvalidInput::new(field, message()))
    }
}

impl ExecutionConfig {
    /// Rejects settings the engine cannot simulate, naming the field.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        let c = &self.costs;
        check(
            self.initial_capital.is_finite() && self.initial_capital > 0.0,
            "initial_capital",
            || format!("must be a positive amount, got {}", self.initial_capital),
        )?;
        for (field, rate) in [
            ("costs.commission_rate", c.commission_rate),
            ("costs.slippage_rate", c.slippage_rate),
            ("costs.spread_rate", c.spread_rate),
        ] {
            check((0.0..0.5).contains(&rate), field, || {
                format!("must be a fraction in [0, 0.5), got {rate} (0.001 is 0.1 %)")
            })?;
        }
        check(
            c.fixed_fee.is_finite() && c.fixed_fee >= 0.0,
            "costs.fixed_fee",
            || format!("must be ≥ 0, got {}", c.fixed_fee),
        )?;
        match self.sizing {
            Sizing::FractionOfEquity(f) => check(f > 0.0 && f <= 1.0, "sizing.fraction", || {
                format!("must be in (0, 1], got {f}")
            })?,
            Sizing::FixedUnits(u) => check(u.is_finite() && u > 0.0, "sizing.units", || {
                format!("must be > 0, got {u}")
            })?,
            Sizing::FixedNotional(x) => check(x.is_finite() && x > 0.0, "sizing.notional", || {
                format!("must be > 0, got {x}")
            })?,
        }
        if let Lots::Step(step) = self.lots {
            check(step.is_finite() && step > 0.0, "lots.step", || {
                format!("must be > 0, got {step}")
            })?;
        }
        let f = &self.filters;
        check(
            (0.0..=1.0).contains(&f.confidence_threshold),
            "filters.confidence_threshold",
            || format!("must be in [0, 1], got {}", f.confidence_threshold),
        )?;
        check(
            f.min_time_between_trades_ms >= 0,
            "filters.min_time_between_trades_ms",
            || format!("must be ≥ 0, got {}", f.min_time_between_trades_ms),
        )?;
        match self.annualization {
            Annualization::Auto => {}
            Annualization::TradingDays(d) => check(
                d.is_finite() && d > 0.0,
                "annualization.trading_days",
                || format!("must be > 0, got {d}"),
            )?,
            Annualization::PerBar(p) => check(
                p.is_finite() && p > 0.0,
                "annualization.periods_per_year",
                || format!("must be > 0, got {p}"),
            )?,
        }
        Ok(())
    }
}

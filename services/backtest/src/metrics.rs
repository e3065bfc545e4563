//! Metrics of a simulation, with backtesting.py 0.6.6's names and definitions (its
//! `_stats.compute_stats`) where it has one, and a few of ktrdr's own beside them.
//!
//! backtesting.py's conventions kept here: returns, drawdowns and trade figures are fractions
//! reported ×100 in the `_pct` fields; drawdowns are negative; Profit Factor uses trade
//! *returns*; Avg. Trade is the geometric mean of trade returns; annualised figures compound a
//! geometric mean period return; durations are rounded up to the data period's resolution.
//! A figure that is undefined (no trades, a zero denominator) is NaN, or None for durations.

use serde::Serialize;

use crate::bars::BarsView;
use std::ops::Range;

use ktrdr_market::DAY_MS;

use crate::calendar::{
    ReturnPeriod, ceil_duration_ms, data_period_ns, day_runs, group_of_day, resolution_ns,
    weekend_share,
};
use crate::config::{Annualization, ExecutionConfig};
use crate::error::InvalidInput;
use crate::numeric::{geometric_mean, mean, pairwise_sum, variance};
use crate::simulate::{Side, Simulation, Trade};

/// How returns were annualised.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Annualized {
    /// The period equity was resampled to.
    pub returns: ReturnPeriod,
    /// Periods a year the geometric mean return is compounded over.
    pub periods_per_year: f64,
    /// The data period (median bar spacing of the last 100 bars), in ms.
    pub bar_period_ms: f64,
    /// Share of bars dated Saturday or Sunday (what [`Annualization::Auto`] reads).
    pub weekend_share: f64,
}

/// Trades of one side.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SideStats {
    pub trades: u64,
    /// Share of trades with a positive P&L ×100; NaN without trades.
    pub win_rate_pct: f64,
    /// P&L after costs, summed.
    pub pnl: f64,
}

/// Every metric of a run. Field docs name backtesting.py's key where it has one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    /// `Start`: first bar's timestamp.
    pub start_ms: i64,
    /// `End`: last bar's timestamp.
    pub end_ms: i64,
    /// `Duration`.
    pub duration_ms: i64,
    /// `Exposure Time [%]`: share of bars with a position (entry to exit bar, both included).
    pub exposure_time_pct: f64,
    /// `Equity Final [$]`.
    pub equity_final: f64,
    /// `Equity Peak [$]`.
    pub equity_peak: f64,
    /// `Commissions [$]`.
    pub commissions: f64,
    /// `Return [%]`.
    pub return_pct: f64,
    /// `Buy & Hold Return [%]`: first close to last close.
    pub buy_hold_return_pct: f64,
    /// `Return (Ann.) [%]`: `(1 + g)^N - 1`, g the geometric mean period return.
    pub return_ann_pct: f64,
    /// `Volatility (Ann.) [%]`: `sqrt((var + (1 + g)^2)^N - (1 + g)^(2N))`.
    pub volatility_ann_pct: f64,
    /// `CAGR [%]` over the calendar time from first to last bar (365.25-day years).
    pub cagr_pct: f64,
    /// `Sharpe Ratio`: Return (Ann.) / Volatility (Ann.), risk-free rate 0.
    pub sharpe_ratio: f64,
    /// `Sortino Ratio`: annual return / (root mean square of negative period returns × √N).
    pub sortino_ratio: f64,
    /// `Calmar Ratio`: annual return / max drawdown.
    pub calmar_ratio: f64,
    /// `Alpha [%]`: Return - Beta × Buy & Hold Return.
    pub alpha_pct: f64,
    /// `Beta`: covariance of equity and close log returns over the variance of the latter.
    pub beta: f64,
    /// `Max. Drawdown [%]` (negative).
    pub max_drawdown_pct: f64,
    /// `Avg. Drawdown [%]` (negative): mean of each drawdown's depth.
    pub avg_drawdown_pct: f64,
    /// `Max. Drawdown Duration`: peak to recovery (or to the last bar).
    pub max_drawdown_duration_ms: Option<i64>,
    /// `Avg. Drawdown Duration`.
    pub avg_drawdown_duration_ms: Option<i64>,
    /// `# Trades`.
    pub trades: u64,
    /// `Win Rate [%]`: trades with a positive P&L.
    pub win_rate_pct: f64,
    /// `Best Trade [%]`.
    pub best_trade_pct: f64,
    /// `Worst Trade [%]`.
    pub worst_trade_pct: f64,
    /// `Avg. Trade [%]`: geometric mean of trade returns.
    pub avg_trade_pct: f64,
    /// `Max. Trade Duration`: entry to exit time.
    pub max_trade_duration_ms: Option<i64>,
    /// `Avg. Trade Duration`.
    pub avg_trade_duration_ms: Option<i64>,
    /// `Profit Factor`: sum of positive trade returns / |sum of negative ones|.
    pub profit_factor: f64,
    /// `Expectancy [%]`: arithmetic mean of trade returns.
    pub expectancy_pct: f64,
    /// `SQN`: √trades × mean P&L / standard deviation of P&L.
    pub sqn: f64,
    /// `Kelly Criterion`.
    pub kelly_criterion: f64,
    /// Gross profit / gross loss, in cash (NaN without a losing trade).
    pub profit_factor_dollars: f64,
    pub long: SideStats,
    pub short: SideStats,
    /// Notional traded (both sides of every trade) / initial capital.
    pub turnover: f64,
    /// Slippage paid on every fill.
    pub slippage_costs: f64,
    /// Spread paid on every fill.
    pub spread_costs: f64,
    pub annualization: Annualized,
}

impl Metrics {
    /// The metrics backtesting.py 0.6.6 reports, under its names; timestamps and durations in
    /// ms, None where it shows NaN/NaT.
    pub fn backtesting_py(&self) -> Vec<(&'static str, Option<f64>)> {
        let number = |v: f64| (!v.is_nan()).then_some(v);
        let ms = |v: Option<i64>| v.map(|v| v as f64);
        vec![
            ("Start", Some(self.start_ms as f64)),
            ("End", Some(self.end_ms as f64)),
            ("Duration", Some(self.duration_ms as f64)),
            ("Exposure Time [%]", number(self.exposure_time_pct)),
            ("Equity Final [$]", number(self.equity_final)),
            ("Equity Peak [$]", number(self.equity_peak)),
            ("Commissions [$]", number(self.commissions)),
            ("Return [%]", number(self.return_pct)),
            ("Buy & Hold Return [%]", number(self.buy_hold_return_pct)),
            ("Return (Ann.) [%]", number(self.return_ann_pct)),
            ("Volatility (Ann.) [%]", number(self.volatility_ann_pct)),
            ("CAGR [%]", number(self.cagr_pct)),
            ("Sharpe Ratio", number(self.sharpe_ratio)),
            ("Sortino Ratio", number(self.sortino_ratio)),
            ("Calmar Ratio", number(self.calmar_ratio)),
            ("Alpha [%]", number(self.alpha_pct)),
            ("Beta", number(self.beta)),
            ("Max. Drawdown [%]", number(self.max_drawdown_pct)),
            ("Avg. Drawdown [%]", number(self.avg_drawdown_pct)),
            ("Max. Drawdown Duration", ms(self.max_drawdown_duration_ms)),
            ("Avg. Drawdown Duration", ms(self.avg_drawdown_duration_ms)),
            ("# Trades", Some(self.trades as f64)),
            ("Win Rate [%]", number(self.win_rate_pct)),
            ("Best Trade [%]", number(self.best_trade_pct)),
            ("Worst Trade [%]", number(self.worst_trade_pct)),
            ("Avg. Trade [%]", number(self.avg_trade_pct)),
            ("Max. Trade Duration", ms(self.max_trade_duration_ms)),
            ("Avg. Trade Duration", ms(self.avg_trade_duration_ms)),
            ("Profit Factor", number(self.profit_factor)),
            ("Expectancy [%]", number(self.expectancy_pct)),
            ("SQN", number(self.sqn)),
            ("Kelly Criterion", number(self.kelly_criterion)),
        ]
    }
}

/// `x / y`, NaN where backtesting.py writes `x / (y or np.nan)`.
fn ratio_or_nan(x: f64, y: f64) -> f64 {
    if y == 0.0 { f64::NAN } else { x / y }
}

/// Chooses the return period and periods per year.
fn annualization(
    timestamps_ms: &[i64],
    days: &[(i64, Range<usize>)],
    mode: Annualization,
) -> Annualized {
    let period_ns = data_period_ns(timestamps_ms);
    let share = weekend_share(days, timestamps_ms.len());
    let freq_days = period_ns.div_euclid(DAY_MS as i128 * 1_000_000);
    let (returns, periods_per_year) = match mode {
        Annualization::PerBar(p) => (ReturnPeriod::Bar, p),
        Annualization::Auto | Annualization::TradingDays(_) => match freq_days {
            7 => (ReturnPeriod::Week, 52.0),
            31 => (ReturnPeriod::Month, 12.0),
            365 => (ReturnPeriod::Year, 1.0),
            _ => (
                ReturnPeriod::Day,
                match mode {
                    Annualization::TradingDays(days) => days,
                    _ if share > 2.0 / 7.0 * 0.6 => 365.0,
                    _ => 252.0,
                },
            ),
        },
    };
    Annualized {
        returns,
        periods_per_year,
        bar_period_ms: period_ns as f64 / 1e6,
        weekend_share: share,
    }
}

/// Simple returns of the last equity of each period (pandas' `resample().last().dropna()
/// .pct_change().dropna()`).
fn period_returns(days: &[(i64, Range<usize>)], equity: &[f64], period: ReturnPeriod) -> Vec<f64> {
    let mut returns = Vec::new();
    let mut push = |previous: f64, current: f64| {
        let r = current / previous - 1.0;
        if !r.is_nan() {
            returns.push(r);
        }
    };
    if period == ReturnPeriod::Bar {
        for w in equity.windows(2) {
            push(w[0], w[1]);
        }
        return returns;
    }
    // The last equity of each group, pushed as a return once the next group starts.
    let mut previous_last: Option<f64> = None;
    let mut current: Option<(i64, f64)> = None;
    for (day, bars) in days {
        let group = group_of_day(period, *day);
        let last = equity[bars.end - 1];
        if let Some((g, value)) = current
            && g != group
        {
            if let Some(p) = previous_last {
                push(p, value);
            }
            previous_last = Some(value);
        }
        current = Some((group, last));
    }
    if let (Some(p), Some((_, value))) = (previous_last, current) {
        push(p, value);
    }
    returns
}

/// backtesting.py's Beta: `np.cov(x, y)[0, 1] / np.cov(x, y)[1, 1]` for the log returns x of
/// equity and y of the close, NaN with fewer than two returns.
///
/// One pass without storing the returns: `Σxy - ΣxΣy/n` over `Σyy - (Σy)²/n`. Log returns have
/// means far below their spread, so this loses nothing measurable against NumPy's two passes.
fn beta(equity: &[f64], close: &[f64]) -> f64 {
    let n = equity.len() - 1;
    if n < 2 {
        return f64::NAN;
    }
    let (mut sx, mut sy, mut sxy, mut syy) = (0.0, 0.0, 0.0, 0.0);
    for (e, c) in equity.windows(2).zip(close.windows(2)) {
        // ln(1) is 0: bars without a position cost no logarithm.
        let x = if e[1] == e[0] {
            0.0
        } else {
            (e[1] / e[0]).ln()
        };
        let y = (c[1] / c[0]).ln();
        sx += x;
        sy += y;
        sxy += x * y;
        syy += y * y;
    }
    let n = n as f64;
    (sxy - sx * sy / n) / (syy - sy * sy / n)
}

struct Drawdowns {
    peak: f64,
    max: f64,
    mean_depth: f64,
    max_duration_ms: Option<i64>,
    avg_duration_ms: Option<i64>,
}

/// backtesting.py's `compute_drawdown_duration_peaks` in one pass without a division per bar.
///
/// The drawdown `1 - equity / running peak` is 0 exactly where equity reaches the running peak;
/// between two such bars the peak is constant, so the deepest drawdown there is
/// `1 - lowest equity / peak` (division is monotonic). A drawdown spans from a bar at the peak
/// to the next one (or to the last bar), at least two bars apart.
fn drawdowns(timestamps_ms: &[i64], equity: &[f64], resolution: i128) -> Drawdowns {
    let n = equity.len();
    let mut peak = equity[0];
    let mut max = 0.0f64;
    let mut depths = Vec::new();
    let mut total_ms: i128 = 0;
    let mut longest_ms = i64::MIN;
    let mut at_peak = 0usize;
    let mut lowest = f64::INFINITY;
    for i in 1..n {
        let e = equity[i];
        let reached = e >= peak;
        if !reached {
            lowest = lowest.min(e);
        }
        if reached || i == n - 1 {
            if lowest < f64::INFINITY {
                let depth = 1.0 - lowest / peak;
                max = max.max(depth);
                if i > at_peak + 1 {
                    depths.push(depth);
                    let duration = timestamps_ms[i] - timestamps_ms[at_peak];
                    total_ms += duration as i128;
                    longest_ms = longest_ms.max(duration);
                }
            }
            if reached {
                peak = e;
                at_peak = i;
                lowest = f64::INFINITY;
            }
        }
    }
    if depths.is_empty() {
        // backtesting.py falls back to the non-zero drawdowns themselves (no durations).
        let mut running = f64::NEG_INFINITY;
        let nonzero: Vec<f64> = equity
            .iter()
            .filter_map(|&e| {
                running = running.max(e);
                let dd = 1.0 - e / running;
                (dd != 0.0).then_some(dd)
            })
            .collect();
        return Drawdowns {
            peak,
            max,
            mean_depth: mean(&nonzero),
            max_duration_ms: None,
            avg_duration_ms: None,
        };
    }
    let count = depths.len() as i128;
    Drawdowns {
        peak,
        max,
        mean_depth: mean(&depths),
        max_duration_ms: Some(ceil_duration_ms(longest_ms as i128, 1, resolution)),
        avg_duration_ms: Some(ceil_duration_ms(total_ms, count, resolution)),
    }
}

fn side_stats(trades: &[Trade], side: Side) -> SideStats {
    let mut stats = SideStats {
        trades: 0,
        win_rate_pct: f64::NAN,
        pnl: 0.0,
    };
    let mut wins = 0u64;
    for t in trades.iter().filter(|t| t.side == side) {
        stats.trades += 1;
        stats.pnl += t.pnl;
        wins += u64::from(t.pnl > 0.0);
    }
    if stats.trades > 0 {
        stats.win_rate_pct = wins as f64 / stats.trades as f64 * 100.0;
    }
    stats
}

/// Computes every metric of `simulation` over `bars` (the bars it ran on, or the bars of a
/// stitched equity curve).
pub fn compute(
    bars: BarsView<'_>,
    simulation: &Simulation,
    config: &ExecutionConfig,
) -> Result<Metrics, InvalidInput> {
    bars.validate()?;
    if simulation.equity.len() != bars.len() {
        return Err(InvalidInput::new(
            "equity",
            format!(
                "has {} values but there are {} bars",
                simulation.equity.len(),
                bars.len()
            ),
        ));
    }
    Ok(compute_valid(bars, simulation, config))
}

/// [`compute`] for inputs known to be valid (a simulation of these very bars).
pub(crate) fn compute_valid(
    bars: BarsView<'_>,
    simulation: &Simulation,
    config: &ExecutionConfig,
) -> Metrics {
    let ts = bars.timestamp_ms;
    let close = bars.close;
    let equity = &simulation.equity;
    let trades = &simulation.trades;
    let n = equity.len();
    let resolution = resolution_ns(data_period_ns(ts));

    // Exposure: the union of [entry, exit] bar ranges (trades never overlap but may touch).
    let mut covered = 0usize;
    let mut next_free = 0usize;
    for t in trades {
        let from = t.entry_bar.max(next_free);
        if t.exit_bar >= from {
            covered += t.exit_bar - from + 1;
        }
        next_free = next_free.max(t.exit_bar + 1);
    }
    let mut commissions = 0.0;
    for t in trades {
        commissions += t.commissions;
    }
    let return_pct = (equity[n - 1] - equity[0]) / equity[0] * 100.0;
    let buy_hold_return_pct = (close[n - 1] - close[0]) / close[0] * 100.0;

    let days: Vec<(i64, Range<usize>)> = day_runs(ts).collect();
    let annualized = annualization(ts, &days, config.annualization);
    let returns = period_returns(&days, equity, annualized.returns);
    let periods = annualized.periods_per_year;
    let g = geometric_mean(&returns);
    let annual_return = (1.0 + g).powf(periods) - 1.0;
    let return_ann_pct = annual_return * 100.0;
    let volatility_ann_pct = ((variance(&returns) + (1.0 + g).powf(2.0)).powf(periods)
        - (1.0 + g).powf(2.0 * periods))
    .sqrt()
        * 100.0;
    let duration_ms = ts[n - 1] - ts[0];
    // pandas' `Timedelta.days + seconds / 86400` (whole seconds) over 365.25-day years.
    let years = (duration_ms.div_euclid(DAY_MS) as f64
        + (duration_ms.rem_euclid(DAY_MS) / 1000) as f64 / 86400.0)
        / 365.25;
    let cagr_pct = if years == 0.0 {
        f64::NAN
    } else {
        ((equity[n - 1] / equity[0]).powf(1.0 / years) - 1.0) * 100.0
    };
    let sharpe_ratio = ratio_or_nan(return_ann_pct, volatility_ann_pct);
    let downside: Vec<f64> = returns.iter().map(|r| r.min(0.0) * r.min(0.0)).collect();
    let sortino_ratio = annual_return / (mean(&downside).sqrt() * periods.sqrt());

    let dd = drawdowns(ts, equity, resolution);
    let calmar_ratio = ratio_or_nan(annual_return, dd.max);
    let beta = beta(equity, close);
    let alpha_pct = return_pct - beta * buy_hold_return_pct;

    let pnl: Vec<f64> = trades.iter().map(|t| t.pnl).collect();
    let trade_returns: Vec<f64> = trades.iter().map(|t| t.return_fraction).collect();
    let count = trades.len();
    let wins = pnl.iter().filter(|&&p| p > 0.0).count();
    let win_rate = if count == 0 {
        f64::NAN
    } else {
        wins as f64 / count as f64
    };
    let extreme = |pick: fn(f64, f64) -> f64| {
        trade_returns
            .iter()
            .copied()
            .reduce(pick)
            .map_or(f64::NAN, |r| r * 100.0)
    };
    let positive: Vec<f64> = trade_returns.iter().copied().filter(|&r| r > 0.0).collect();
    let negative: Vec<f64> = trade_returns.iter().copied().filter(|&r| r < 0.0).collect();
    let gains: Vec<f64> = pnl.iter().copied().filter(|&p| p > 0.0).collect();
    let losses: Vec<f64> = pnl.iter().copied().filter(|&p| p < 0.0).collect();
    let trade_ms: i128 = trades
        .iter()
        .map(|t| (t.exit_time_ms - t.entry_time_ms) as i128)
        .sum();
    let longest_trade = trades
        .iter()
        .map(|t| t.exit_time_ms - t.entry_time_ms)
        .max();
    let pnl_std = variance(&pnl).sqrt();
    let slippage_costs: f64 = trades.iter().map(|t| t.slippage_cost).sum();
    let spread_costs: f64 = trades.iter().map(|t| t.spread_cost).sum();

    Metrics {
        start_ms: ts[0],
        end_ms: ts[n - 1],
        duration_ms,
        exposure_time_pct: covered as f64 / n as f64 * 100.0,
        equity_final: equity[n - 1],
        equity_peak: dd.peak,
        commissions,
        return_pct,
        buy_hold_return_pct,
        return_ann_pct,
        volatility_ann_pct,
        cagr_pct,
        sharpe_ratio,
        sortino_ratio,
        calmar_ratio,
        alpha_pct,
        beta,
        max_drawdown_pct: -dd.max * 100.0,
        avg_drawdown_pct: -dd.mean_depth * 100.0,
        max_drawdown_duration_ms: dd.max_duration_ms,
        avg_drawdown_duration_ms: dd.avg_duration_ms,
        trades: count as u64,
        win_rate_pct: win_rate * 100.0,
        best_trade_pct: extreme(f64::max),
        worst_trade_pct: extreme(f64::min),
        avg_trade_pct: geometric_mean(&trade_returns) * 100.0,
        max_trade_duration_ms: longest_trade.map(|ms| ceil_duration_ms(ms as i128, 1, resolution)),
        avg_trade_duration_ms: (count > 0)
            .then(|| ceil_duration_ms(trade_ms, count as i128, resolution)),
        profit_factor: ratio_or_nan(pairwise_sum(&positive), pairwise_sum(&negative).abs()),
        expectancy_pct: mean(&trade_returns) * 100.0,
        sqn: ratio_or_nan((count as f64).sqrt() * mean(&pnl), pnl_std),
        kelly_criterion: win_rate - (1.0 - win_rate) / (mean(&gains) / -mean(&losses)),
        profit_factor_dollars: ratio_or_nan(pairwise_sum(&gains), pairwise_sum(&losses).abs()),
        long: side_stats(trades, Side::Long),
        short: side_stats(trades, Side::Short),
        turnover: simulation.traded_notional / config.initial_capital,
        slippage_costs,
        spread_costs,
        annualization: annualized,
    }
}

//! The bar loop: decisions, fills, costs, positions and the equity curve.
//!
//! Invariants:
//! - The decision at bar t reads only bar t's probabilities, the position and the time of the
//!   last executed trade, all known at t's close. With [`Fill::NextOpen`] its order fills at
//!   bar t + 1's open; nothing at or before t depends on any later bar.
//! - One position at a time (flat, long or short). Entries happen flat, so sizing reads cash
//!   only, never a price the trader could not know yet.
//! - Equity at bar t is cash plus the open position marked at t's close; cash already holds
//!   every cost paid. Costs per fill: commission (rate × notional + fixed fee), slippage and half
//!   the spread moving the fill price against the trader.
//! - The position left at the last bar is closed at its close, with its costs, before the last
//!   equity value is recorded.
//! - Equity ≤ 0 at a close liquidates the position there and ends trading (equity 0 after),
//!   as backtesting.py does.
//! - Deterministic: the same inputs give the same result, bit for bit.

use serde::Serialize;

use crate::bars::{BUY, BarsView, HOLD, Probabilities, SELL};
use crate::config::{ExecutionConfig, Fill, Lots, Sizing};
use crate::error::InvalidInput;
use crate::numeric::py_floordiv;

/// Long or short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Side {
    Long,
    Short,
}

impl Side {
    fn sign(self) -> f64 {
        match self {
            Side::Long => 1.0,
            Side::Short => -1.0,
        }
    }
}

/// What the filters made of one bar's signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Decision {
    /// Not looked at: trading had stopped (equity exhausted).
    NotEvaluated,
    /// The probabilities hold a NaN (a warm-up bar).
    NoPrediction,
    /// The most probable class is HOLD.
    Hold,
    /// BUY or SELL below the confidence threshold.
    LowConfidence,
    /// Too few bars or too little time since the last executed trade's decision.
    TooSoon,
    /// BUY while long or SELL while short.
    AlreadyPositioned,
    /// SELL while flat with shorts disabled.
    ShortsDisabled,
    /// A signal at the last bar, where no later price is left to fill at.
    LastBar,
    /// An order: open this side.
    Open(Side),
    /// An order: close the position.
    Close,
    /// An order: close the position and open this side.
    Reverse(Side),
}

/// Why a trade ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ExitReason {
    /// An opposite signal.
    Signal,
    /// Still open at the last bar: closed at its close.
    EndOfData,
    /// Equity fell to zero or below.
    OutOfMoney,
}

/// One closed trade. Prices are fill prices (slippage and spread included); times are the
/// bars' timestamps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trade {
    pub side: Side,
    /// Units held (positive for both sides).
    pub units: f64,
    /// The bar whose decision opened the trade.
    pub signal_bar: usize,
    pub entry_bar: usize,
    pub exit_bar: usize,
    pub entry_time_ms: i64,
    pub exit_time_ms: i64,
    pub entry_price: f64,
    pub exit_price: f64,
    /// Commissions of both fills, fixed fees included.
    pub commissions: f64,
    /// What slippage cost on both fills.
    pub slippage_cost: f64,
    /// What the spread cost on both fills.
    pub spread_cost: f64,
    /// Profit after every cost.
    pub pnl: f64,
    /// backtesting.py's `ReturnPct` (a fraction): the price return in the trade's direction
    /// minus commissions per unit of entry notional.
    pub return_fraction: f64,
    pub exit_reason: ExitReason,
}

/// Raw signals and what became of them. `raw_buy + raw_sell == executed + dropped_*` summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SignalCounts {
    /// Bars with probabilities (not NaN) that were looked at.
    pub bars_with_prediction: u64,
    pub raw_buy: u64,
    pub raw_sell: u64,
    pub raw_hold: u64,
    pub dropped_low_confidence: u64,
    pub dropped_too_soon: u64,
    pub dropped_already_positioned: u64,
    pub dropped_shorts_disabled: u64,
    pub dropped_last_bar: u64,
    /// Orders whose entry the cash could not cover (sizing gave no unit) and that had no
    /// position to close either.
    pub dropped_unaffordable: u64,
    /// Orders filled (at least one leg).
    pub executed: u64,
}

/// The simulation's output before metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Simulation {
    pub trades: Vec<Trade>,
    /// Equity at each bar's close (after the last bar's forced close).
    pub equity: Vec<f64>,
    pub decisions: Vec<Decision>,
    pub signals: SignalCounts,
    /// Units × fill price summed over every fill.
    pub traded_notional: f64,
}

struct Position {
    side: Side,
    units: f64,
    /// Signed units (negative when short), as backtesting.py's `Trade.size`.
    signed_units: f64,
    entry_price: f64,
    entry_bar: usize,
    signal_bar: usize,
    entry_commission: f64,
    entry_slippage: f64,
    entry_spread: f64,
}

struct Engine<'a> {
    bars: BarsView<'a>,
    config: &'a ExecutionConfig,
    cash: f64,
    position: Option<Position>,
    trades: Vec<Trade>,
    signals: SignalCounts,
    /// (decision bar, its timestamp) of the last executed order.
    last_executed: Option<(usize, i64)>,
    traded_notional: f64,
}

/// Validates the inputs and runs the bar loop.
pub fn simulate(
    bars: BarsView<'_>,
    probabilities: &[Probabilities],
    config: &ExecutionConfig,
) -> Result<Simulation, InvalidInput> {
    config.validate()?;
    bars.check_shape()?;
    if probabilities.len() != bars.len() {
        return Err(InvalidInput::new(
            "probabilities",
            format!(
                "has {} rows but there are {} bars; give one row per bar (NaN for none)",
                probabilities.len(),
                bars.len()
            ),
        ));
    }
    let (simulation, values_checked) = run_loop(bars, probabilities, config);
    if !values_checked {
        // The loop saw a bad value (or stopped early): the full check names it.
        bars.validate()?;
    }
    Ok(simulation)
}

/// The bar loop; also checks, without a pass of its own, that every timestamp increases and
/// every open and close is finite and positive (false when one is not or the loop stopped
/// early).
fn run_loop(
    bars: BarsView<'_>,
    probabilities: &[Probabilities],
    config: &ExecutionConfig,
) -> (Simulation, bool) {
    let n = bars.len();
    let mut engine = Engine {
        bars,
        config,
        cash: config.initial_capital,
        position: None,
        trades: Vec::new(),
        signals: SignalCounts::default(),
        last_executed: None,
        traded_notional: 0.0,
    };
    let mut equity = vec![0.0; n];
    let mut decisions = vec![Decision::NotEvaluated; n];
    let mut pending: Option<(Decision, usize)> = None;
    let same_close = config.fill == Fill::SameCloseOptimistic;
    let mut valid = true;
    let mut complete = true;
    let priced = |p: f64| (p > 0.0) & (p < f64::INFINITY);
    for i in 0..n {
        let (open, close) = (bars.open[i], bars.close[i]);
        valid &= priced(open) & priced(close);
        if i > 0 {
            valid &= bars.timestamp_ms[i] > bars.timestamp_ms[i - 1];
        }
        if let Some((order, signal_bar)) = pending.take() {
            engine.execute(order, signal_bar, i, open);
        }
        let mut value = engine.mark(close);
        if value <= 0.0 {
            // backtesting.py: a non-positive equity liquidates at the close and stops trading.
            engine.close_position(i, close, ExitReason::OutOfMoney);
            engine.cash = 0.0;
            complete = false;
            break;
        }
        let decision = engine.decide(i, &probabilities[i]);
        decisions[i] = decision;
        if matches!(
            decision,
            Decision::Open(_) | Decision::Close | Decision::Reverse(_)
        ) {
            if same_close {
                engine.execute(decision, i, i, close);
                value = engine.mark(close);
            } else {
                pending = Some((decision, i));
            }
        }
        if i == n - 1 && engine.position.is_some() {
            engine.close_position(i, close, ExitReason::EndOfData);
            value = engine.cash;
        }
        equity[i] = value;
    }
    let simulation = Simulation {
        trades: engine.trades,
        equity,
        decisions,
        signals: engine.signals,
        traded_notional: engine.traded_notional,
    };
    (simulation, valid && complete)
}

impl Engine<'_> {
    /// Cash plus the position marked at `price` (backtesting.py's `Broker.equity`).
    fn mark(&self, price: f64) -> f64 {
        match &self.position {
            None => self.cash,
            Some(p) => self.cash + (price * p.signed_units - p.signed_units * p.entry_price),
        }
    }

    /// Applies the filters to bar `i`'s signal, in the original's order.
    fn decide(&mut self, i: usize, p: &Probabilities) -> Decision {
        if p[BUY].is_nan() || p[HOLD].is_nan() || p[SELL].is_nan() {
            return Decision::NoPrediction;
        }
        self.signals.bars_with_prediction += 1;
        // argmax, first maximum wins (NumPy's argmax): BUY, then HOLD, then SELL.
        let (class, confidence) = if p[BUY] >= p[HOLD] && p[BUY] >= p[SELL] {
            (BUY, p[BUY])
        } else if p[HOLD] >= p[SELL] {
            (HOLD, p[HOLD])
        } else {
            (SELL, p[SELL])
        };
        if class == HOLD {
            self.signals.raw_hold += 1;
            return Decision::Hold;
        }
        if class == BUY {
            self.signals.raw_buy += 1;
        } else {
            self.signals.raw_sell += 1;
        }
        let filters = &self.config.filters;
        if f64::from(confidence) < filters.confidence_threshold {
            self.signals.dropped_low_confidence += 1;
            return Decision::LowConfidence;
        }
        if let Some((bar, time)) = self.last_executed
            && (i - bar < filters.min_bars_between_trades as usize
                || self.bars.timestamp_ms[i] - time < filters.min_time_between_trades_ms)
        {
            self.signals.dropped_too_soon += 1;
            return Decision::TooSoon;
        }
        let wanted = if class == BUY {
            Side::Long
        } else {
            Side::Short
        };
        let decision = match self.position.as_ref().map(|p| p.side) {
            Some(side) if side == wanted => {
                self.signals.dropped_already_positioned += 1;
                return Decision::AlreadyPositioned;
            }
            Some(_) => {
                if filters.reverse_on_opposite && (wanted == Side::Long || self.config.allow_shorts)
                {
                    Decision::Reverse(wanted)
                } else {
                    Decision::Close
                }
            }
            None => {
                if wanted == Side::Short && !self.config.allow_shorts {
                    self.signals.dropped_shorts_disabled += 1;
                    return Decision::ShortsDisabled;
                }
                Decision::Open(wanted)
            }
        };
        let no_later_price = i + 1 == self.bars.len();
        if no_later_price {
            self.signals.dropped_last_bar += 1;
            return Decision::LastBar;
        }
        decision
    }

    /// Fills an order decided at `signal_bar` at `bar`, from the reference price `price`.
    fn execute(&mut self, order: Decision, signal_bar: usize, bar: usize, price: f64) {
        let filled = match order {
            Decision::Open(side) => self.open_position(side, signal_bar, bar, price),
            Decision::Close => {
                self.close_position(bar, price, ExitReason::Signal);
                true
            }
            Decision::Reverse(side) => {
                self.close_position(bar, price, ExitReason::Signal);
                self.open_position(side, signal_bar, bar, price);
                true
            }
            _ => false,
        };
        if filled {
            self.signals.executed += 1;
            self.last_executed = Some((signal_bar, self.bars.timestamp_ms[signal_bar]));
        } else {
            self.signals.dropped_unaffordable += 1;
        }
    }

    /// The fill price for a buy (or sell) at reference `price`: slippage plus half the spread
    /// against the trader.
    fn fill_price(&self, price: f64, buying: bool) -> f64 {
        let costs = &self.config.costs;
        let adverse = costs.slippage_rate + costs.spread_rate * 0.5;
        if buying {
            price * (1.0 + adverse)
        } else {
            price * (1.0 - adverse)
        }
    }

    /// Commission of a fill (backtesting.py's `fixed + |size| × price × rate`).
    fn commission(&self, units: f64, price: f64) -> f64 {
        let costs = &self.config.costs;
        costs.fixed_fee + units * price * costs.commission_rate
    }

    /// Units to enter at fill price `price` with the current cash; None when not even one lot
    /// is affordable.
    fn size(&self, price: f64) -> Option<f64> {
        let costs = &self.config.costs;
        let round_down = |units: f64| match self.config.lots {
            Lots::Whole => units.floor(),
            Lots::Step(step) => (units / step).floor() * step,
            Lots::Any => units,
        };
        let units = match self.config.sizing {
            Sizing::FractionOfEquity(fraction) => {
                let budget = self.cash * fraction - costs.fixed_fee;
                // backtesting.py's `(margin × fraction) // (price + price × rate)`, per lot.
                let lot_price = match self.config.lots {
                    Lots::Step(step) => price * step,
                    Lots::Whole | Lots::Any => price,
                };
                // The commission per lot in backtesting.py's own arithmetic (it divides the
                // commission of `fraction` units by `fraction`), so the floor lands alike.
                let per_lot = lot_price + (fraction * lot_price * costs.commission_rate) / fraction;
                match self.config.lots {
                    Lots::Whole => py_floordiv(budget, per_lot),
                    Lots::Step(step) => py_floordiv(budget, per_lot) * step,
                    Lots::Any => budget / per_lot,
                }
            }
            Sizing::FixedUnits(units) => round_down(units),
            Sizing::FixedNotional(notional) => round_down(notional / price),
        };
        let affordable = match self.config.sizing {
            Sizing::FractionOfEquity(_) => true,
            Sizing::FixedUnits(_) | Sizing::FixedNotional(_) => {
                units * price + self.commission(units, price) <= self.cash
            }
        };
        (units.is_finite() && units > 0.0 && affordable).then_some(units)
    }

    /// Opens a position; false when sizing gives no unit.
    fn open_position(&mut self, side: Side, signal_bar: usize, bar: usize, price: f64) -> bool {
        let fill = self.fill_price(price, side == Side::Long);
        let Some(units) = self.size(fill) else {
            return false;
        };
        let commission = self.commission(units, fill);
        self.cash -= commission;
        self.traded_notional += units * fill;
        let costs = &self.config.costs;
        self.position = Some(Position {
            side,
            units,
            signed_units: side.sign() * units,
            entry_price: fill,
            entry_bar: bar,
            signal_bar,
            entry_commission: commission,
            entry_slippage: units * price * costs.slippage_rate,
            entry_spread: units * price * costs.spread_rate * 0.5,
        });
        true
    }

    /// Closes the position (if any) at reference `price` on `bar`.
    fn close_position(&mut self, bar: usize, price: f64, reason: ExitReason) {
        let Some(p) = self.position.take() else {
            return;
        };
        let fill = self.fill_price(price, p.side == Side::Short);
        let exit_commission = self.commission(p.units, fill);
        let gross = p.signed_units * (fill - p.entry_price);
        self.cash += gross - exit_commission;
        self.traded_notional += p.units * fill;
        let commissions = exit_commission + p.entry_commission;
        let costs = &self.config.costs;
        self.trades.push(Trade {
            side: p.side,
            units: p.units,
            signal_bar: p.signal_bar,
            entry_bar: p.entry_bar,
            exit_bar: bar,
            entry_time_ms: self.bars.timestamp_ms[p.entry_bar],
            exit_time_ms: self.bars.timestamp_ms[bar],
            entry_price: p.entry_price,
            exit_price: fill,
            commissions,
            slippage_cost: p.entry_slippage + p.units * price * costs.slippage_rate,
            spread_cost: p.entry_spread + p.units * price * costs.spread_rate * 0.5,
            pnl: gross - commissions,
            return_fraction: p.side.sign() * (fill / p.entry_price - 1.0)
                - commissions / (p.units * p.entry_price),
            exit_reason: reason,
        });
    }
}

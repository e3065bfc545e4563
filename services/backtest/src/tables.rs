//! The two tables a backtest leaves behind, as Arrow record batches: the trade list (one row per
//! closed trade) and the equity curve (one row per bar: the bar, the position held at its
//! close, equity, drawdown, and what the filters made of its signal). Each schema is defined
//! here once; servers save the batches as Arrow IPC and clients read them with pyarrow or as
//! CSV ([`to_csv`]).
//!
//! Column names and units: times are UTC epoch ms (`Timestamp(ms, "UTC")`), prices and money in
//! the quote currency, `return_pct` and `drawdown_pct` ×100, `position` in units (negative
//! while short).

use std::fmt::Write as _;
use std::sync::{Arc, LazyLock};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampMillisecondType};
use arrow_array::{Array, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::bars::BarsView;
use crate::simulate::{Decision, ExitReason, Side, Trade};

fn time(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        false,
    )
}

fn number(name: &str) -> Field {
    Field::new(name, DataType::Float64, false)
}

fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, false)
}

/// The trade list's schema.
pub static TRADES_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        text("side"),
        number("units"),
        time("signal_time"),
        time("entry_time"),
        time("exit_time"),
        number("entry_price"),
        number("exit_price"),
        number("commissions"),
        number("slippage_cost"),
        number("spread_cost"),
        number("pnl"),
        number("return_pct"),
        text("exit_reason"),
    ]))
});

/// The equity curve's schema.
pub static EQUITY_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        time("timestamp"),
        number("open"),
        number("high"),
        number("low"),
        number("close"),
        number("position"),
        number("equity"),
        number("drawdown_pct"),
        text("decision"),
    ]))
});

/// A side as the tables spell it.
pub fn side_name(side: Side) -> &'static str {
    match side {
        Side::Long => "long",
        Side::Short => "short",
    }
}

/// An exit reason as the tables spell it.
pub fn exit_reason_name(reason: ExitReason) -> &'static str {
    match reason {
        ExitReason::Signal => "signal",
        ExitReason::EndOfData => "end_of_data",
        ExitReason::OutOfMoney => "out_of_money",
    }
}

/// A decision as the tables spell it.
pub fn decision_name(decision: Decision) -> &'static str {
    match decision {
        Decision::NotEvaluated => "not_evaluated",
        Decision::NoPrediction => "no_prediction",
        Decision::Hold => "hold",
        Decision::LowConfidence => "low_confidence",
        Decision::TooSoon => "too_soon",
        Decision::AlreadyPositioned => "already_positioned",
        Decision::ShortsDisabled => "shorts_disabled",
        Decision::LastBar => "last_bar",
        Decision::Open(Side::Long) => "open_long",
        Decision::Open(Side::Short) => "open_short",
        Decision::Close => "close",
        Decision::Reverse(Side::Long) => "reverse_to_long",
        Decision::Reverse(Side::Short) => "reverse_to_short",
    }
}

fn times(values: Vec<i64>) -> Arc<dyn Array> {
    Arc::new(TimestampMillisecondArray::from(values).with_timezone("UTC"))
}

fn numbers(values: Vec<f64>) -> Arc<dyn Array> {
    Arc::new(Float64Array::from(values))
}

fn texts(values: Vec<&str>) -> Arc<dyn Array> {
    Arc::new(StringArray::from(values))
}

/// The trade list. `bars` gives each trade's signal time.
pub fn trades_batch(bars: BarsView<'_>, trades: &[Trade]) -> Result<RecordBatch, ArrowError> {
    let column = |f: fn(&Trade) -> f64| numbers(trades.iter().map(f).collect());
    let signal_time = trades
        .iter()
        .map(|t| {
            bars.timestamp_ms
                .get(t.signal_bar)
                .copied()
                .unwrap_or(t.entry_time_ms)
        })
        .collect();
    RecordBatch::try_new(
        TRADES_SCHEMA.clone(),
        vec![
            texts(trades.iter().map(|t| side_name(t.side)).collect()),
            column(|t| t.units),
            times(signal_time),
            times(trades.iter().map(|t| t.entry_time_ms).collect()),
            times(trades.iter().map(|t| t.exit_time_ms).collect()),
            column(|t| t.entry_price),
            column(|t| t.exit_price),
            column(|t| t.commissions),
            column(|t| t.slippage_cost),
            column(|t| t.spread_cost),
            column(|t| t.pnl),
            column(|t| t.return_fraction * 100.0),
            texts(
                trades
                    .iter()
                    .map(|t| exit_reason_name(t.exit_reason))
                    .collect(),
            ),
        ],
    )
}

/// Units held at each bar's close (negative while short): a trade holds from its entry bar up
/// to, not including, its exit bar (it is closed at the exit bar's open, or at the last bar's
/// close).
pub fn positions(bars: usize, trades: &[Trade]) -> Vec<f64> {
    let mut position = vec![0.0; bars];
    for trade in trades {
        let signed = match trade.side {
            Side::Long => trade.units,
            Side::Short => -trade.units,
        };
        let end = trade.exit_bar.min(bars);
        for held in position.iter_mut().take(end).skip(trade.entry_bar) {
            *held += signed;
        }
    }
    position
}

/// Drawdown from the running peak at each bar, ×100 (0 at a new peak, negative below it).
pub fn drawdown_pct(equity: &[f64]) -> Vec<f64> {
    let mut peak = f64::NEG_INFINITY;
    equity
        .iter()
        .map(|&e| {
            peak = peak.max(e);
            if peak > 0.0 {
                (e / peak - 1.0) * 100.0
            } else {
                0.0
            }
        })
        .collect()
}

/// The equity curve: one row per bar of `bars`.
pub fn equity_batch(
    bars: BarsView<'_>,
    trades: &[Trade],
    equity: &[f64],
    decisions: &[Decision],
) -> Result<RecordBatch, ArrowError> {
    let n = bars.len();
    if equity.len() != n || decisions.len() != n {
        return Err(ArrowError::InvalidArgumentError(format!(
            "{n} bars but {} equity values and {} decisions",
            equity.len(),
            decisions.len()
        )));
    }
    RecordBatch::try_new(
        EQUITY_SCHEMA.clone(),
        vec![
            times(bars.timestamp_ms.to_vec()),
            numbers(bars.open.to_vec()),
            numbers(bars.high.to_vec()),
            numbers(bars.low.to_vec()),
            numbers(bars.close.to_vec()),
            numbers(positions(n, trades)),
            numbers(equity.to_vec()),
            numbers(drawdown_pct(equity)),
            texts(decisions.iter().map(|&d| decision_name(d)).collect()),
        ],
    )
}

/// A batch of these tables as CSV with a header line; times as UTC epoch ms, numbers in
/// Rust's shortest round-trip form (NaN as `NaN`), text unquoted (the tables' words need none).
pub fn to_csv(batch: &RecordBatch) -> Result<String, ArrowError> {
    let schema = batch.schema();
    let mut out = String::with_capacity(batch.num_rows() * 16 * batch.num_columns().max(1));
    let header: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    out.push_str(&header.join(","));
    out.push('\n');
    enum Column<'a> {
        Time(&'a [i64]),
        Number(&'a [f64]),
        Text(&'a StringArray),
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(array, field)| match field.data_type() {
            DataType::Timestamp(TimeUnit::Millisecond, _) => Ok(Column::Time(
                array
                    .as_primitive::<TimestampMillisecondType>()
                    .values()
                    .as_ref(),
            )),
            DataType::Float64 => Ok(Column::Number(
                array.as_primitive::<Float64Type>().values().as_ref(),
            )),
            DataType::Utf8 => Ok(Column::Text(array.as_string::<i32>())),
            other => Err(ArrowError::InvalidArgumentError(format!(
                "column {:?} has type {other}, not one of the backtest tables'",
                field.name()
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    for row in 0..batch.num_rows() {
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            // Writing into a String cannot fail.
            let _ = match column {
                Column::Time(v) => write!(out, "{}", v[row]),
                Column::Number(v) => write!(out, "{}", v[row]),
                Column::Text(v) => write!(out, "{}", v.value(row)),
            };
        }
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Costs, ExecutionConfig, Filters};
    use crate::{BUY, SELL};

    fn bars() -> ktrdr_market::Bars {
        ktrdr_market::fixtures::hourly(8, 1_704_067_200_000)
    }

    fn run(bars: &ktrdr_market::Bars) -> crate::BacktestResult {
        let mut probabilities = vec![[0.0, 1.0, 0.0]; bars.len()];
        probabilities[1] = [0.0; 3];
        probabilities[1][BUY] = 1.0;
        probabilities[4] = [0.0; 3];
        probabilities[4][SELL] = 1.0;
        let config = ExecutionConfig {
            costs: Costs::NONE,
            filters: Filters::NONE,
            ..ExecutionConfig::default()
        };
        crate::run(bars.into(), &probabilities, &config).unwrap()
    }

    #[test]
    fn the_position_is_held_from_the_entry_bar_to_the_bar_before_the_exit() {
        let bars = bars();
        let result = run(&bars);
        let trade = &result.trades[0];
        assert_eq!((trade.entry_bar, trade.exit_bar), (2, 5));
        let held = positions(bars.len(), &result.trades);
        assert_eq!(
            held,
            [
                0.0,
                0.0,
                trade.units,
                trade.units,
                trade.units,
                0.0,
                0.0,
                0.0
            ]
        );
    }

    #[test]
    fn the_equity_table_has_one_row_per_bar_and_the_trades_table_one_per_trade() {
        let bars = bars();
        let result = run(&bars);
        let view = (&bars).into();
        let equity = equity_batch(view, &result.trades, &result.equity, &result.decisions).unwrap();
        assert_eq!(equity.num_rows(), bars.len());
        assert_eq!(equity.schema(), EQUITY_SCHEMA.clone());
        let trades = trades_batch(view, &result.trades).unwrap();
        assert_eq!(trades.num_rows(), result.trades.len());
        let csv = to_csv(&trades).unwrap();
        let mut lines = csv.lines();
        assert_eq!(
            lines.next().unwrap(),
            "side,units,signal_time,entry_time,exit_time,entry_price,exit_price,commissions,\
             slippage_cost,spread_cost,pnl,return_pct,exit_reason"
        );
        let row: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!(row[0], "long");
        assert_eq!(row[2], bars.timestamp_ms[1].to_string());
        assert_eq!(row[10].parse::<f64>().unwrap(), result.trades[0].pnl);
        assert_eq!(row[12], "signal");
    }

    #[test]
    fn drawdown_is_measured_from_the_running_peak() {
        let drawdown = drawdown_pct(&[100.0, 110.0, 99.0, 121.0]);
        assert_eq!(drawdown[..2], [0.0, 0.0]);
        assert!((drawdown[2] + 10.0).abs() < 1e-12, "{drawdown:?}");
        assert_eq!(drawdown[3], 0.0);
    }

    #[test]
    fn an_equity_curve_of_the_wrong_length_is_refused() {
        let bars = bars();
        let err = equity_batch((&bars).into(), &[], &[1.0], &[]).unwrap_err();
        assert!(err.to_string().contains("8 bars"), "{err}");
    }
}

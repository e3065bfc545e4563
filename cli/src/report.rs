//! `ktrdr backtest --report FILE.html`: one self-contained HTML page per backtest result.
//!
//! The page holds the metrics table, the equity curve, the drawdown curve and the close price
//! with every trade's entry and exit marked. Charts are inline SVG drawn with `plotters`; the
//! page loads nothing (no scripts, no style sheets, no fonts, no images from anywhere).
//! Inputs are the saved tables as ReadBacktestTable sends them in Arrow IPC: EQUITY (one row per
//! bar) and TRADES (one row per closed trade).

use std::fmt::Write as _;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use ktrdr_proto::training::v1::BacktestResult;
use plotters::prelude::*;

use crate::time::iso;

/// Chart size in SVG pixels.
const WIDTH: u32 = 1100;
const HEIGHT: u32 = 320;
/// Charts draw at most this many points per line (every k-th bar beyond it, the last kept).
const MAX_POINTS: usize = 4000;
/// The trade list shows at most this many trades (all are in `--trades`).
const MAX_TRADE_ROWS: usize = 500;

/// One bar of the equity table.
#[derive(Debug, Default)]
pub struct Curve {
    pub time_ms: Vec<i64>,
    pub close: Vec<f64>,
    pub equity: Vec<f64>,
    pub drawdown_pct: Vec<f64>,
}

/// One closed trade.
#[derive(Debug, Clone)]
pub struct TradeMark {
    pub side: String,
    pub units: f64,
    pub entry_time_ms: i64,
    pub exit_time_ms: i64,
    pub entry_price: f64,
    pub exit_price: f64,
    pub pnl: f64,
    pub return_pct: f64,
    pub exit_reason: String,
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a dyn Array, String> {
    batch
        .column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| format!("the backtest table has no column {name:?}"))
}

fn numbers(batch: &RecordBatch, name: &str) -> Result<Vec<f64>, String> {
    column(batch, name)?
        .as_primitive_opt::<Float64Type>()
        .map(|a| a.values().to_vec())
        .ok_or_else(|| format!("column {name:?} is not Float64"))
}

fn times(batch: &RecordBatch, name: &str) -> Result<Vec<i64>, String> {
    column(batch, name)?
        .as_primitive_opt::<TimestampMillisecondType>()
        .map(|a| a.values().to_vec())
        .ok_or_else(|| format!("column {name:?} is not a millisecond timestamp"))
}

fn texts(batch: &RecordBatch, name: &str) -> Result<Vec<String>, String> {
    column(batch, name)?
        .as_string_opt::<i32>()
        .map(|a| (0..a.len()).map(|i| a.value(i).to_owned()).collect())
        .ok_or_else(|| format!("column {name:?} is not text"))
}

fn batches(ipc: &[u8], table: &str) -> Result<Vec<RecordBatch>, String> {
    ktrdr_market::arrow::ipc_to_record_batches(ipc)
        .map_err(|e| format!("the {table} table is not Arrow IPC: {e}"))
}

/// The EQUITY table's columns the report draws.
pub fn curve_from_ipc(ipc: &[u8]) -> Result<Curve, String> {
    let mut curve = Curve::default();
    for batch in batches(ipc, "equity")? {
        curve.time_ms.extend(times(&batch, "timestamp")?);
        curve.close.extend(numbers(&batch, "close")?);
        curve.equity.extend(numbers(&batch, "equity")?);
        curve.drawdown_pct.extend(numbers(&batch, "drawdown_pct")?);
    }
    Ok(curve)
}

/// The TRADES table.
pub fn trades_from_ipc(ipc: &[u8]) -> Result<Vec<TradeMark>, String> {
    let mut trades = Vec::new();
    for batch in batches(ipc, "trades")? {
        let side = texts(&batch, "side")?;
        let units = numbers(&batch, "units")?;
        let entry_time = times(&batch, "entry_time")?;
        let exit_time = times(&batch, "exit_time")?;
        let entry_price = numbers(&batch, "entry_price")?;
        let exit_price = numbers(&batch, "exit_price")?;
        let pnl = numbers(&batch, "pnl")?;
        let return_pct = numbers(&batch, "return_pct")?;
        let exit_reason = texts(&batch, "exit_reason")?;
        for i in 0..batch.num_rows() {
            trades.push(TradeMark {
                side: side[i].clone(),
                units: units[i],
                entry_time_ms: entry_time[i],
                exit_time_ms: exit_time[i],
                entry_price: entry_price[i],
                exit_price: exit_price[i],
                pnl: pnl[i],
                return_pct: return_pct[i],
                exit_reason: exit_reason[i].clone(),
            });
        }
    }
    Ok(trades)
}

/// `text` safe inside HTML elements and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Indices of the points drawn: all of them up to [`MAX_POINTS`], else every k-th and the last.
fn sampled(n: usize) -> Vec<usize> {
    if n <= MAX_POINTS {
        return (0..n).collect();
    }
    let step = n.div_ceil(MAX_POINTS);
    let mut picked: Vec<usize> = (0..n).step_by(step).collect();
    if picked.last() != Some(&(n - 1)) {
        picked.push(n - 1);
    }
    picked
}

/// The finite range of `values` with 5 % padding; never empty.
fn value_range<'a>(values: impl IntoIterator<Item = &'a f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &v in values {
        if v.is_finite() {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo {
        (hi - lo) * 0.05
    } else {
        lo.abs().max(1.0) * 0.01
    };
    (lo - pad, hi + pad)
}

/// A date for the time axis.
fn date_label(ms: &i64) -> String {
    iso(*ms).chars().take(10).collect()
}

/// Marks drawn on top of a line: (time, value, kind).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    Entry,
    WinningExit,
    LosingExit,
}

/// One line chart as an SVG document.
fn line_chart(
    title: &str,
    unit: &str,
    time_ms: &[i64],
    values: &[f64],
    color: RGBColor,
    marks: &[(i64, f64, Mark)],
) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let fail = |e: &dyn std::fmt::Display| format!("drawing {title}: {e}");
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let picked = sampled(time_ms.len().min(values.len()));
        let (t0, t1) = match (time_ms.first(), time_ms.last()) {
            (Some(&a), Some(&b)) if b > a => (a, b),
            (Some(&a), _) => (a, a + 1),
            _ => (0, 1),
        };
        let (y0, y1) = value_range(
            picked
                .iter()
                .map(|&i| &values[i])
                .chain(marks.iter().map(|(_, v, _)| v)),
        );
        // Enough decimals to tell the labels apart (FX prices need 4, equity none).
        let step = (y1 - y0) / 6.0;
        let decimals = if step > 0.0 {
            (-step.log10()).ceil().clamp(0.0, 8.0) as usize
        } else {
            2
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(80)
            .build_cartesian_2d(t0..t1, y0..y1)
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_labels(8)
            .y_labels(6)
            .x_label_formatter(&date_label)
            .y_label_formatter(&|v| format!("{v:.decimals$}{unit}"))
            .light_line_style(RGBColor(236, 236, 236))
            .draw()
            .map_err(|e| fail(&e))?;
        chart
            .draw_series(LineSeries::new(
                picked
                    .iter()
                    .map(|&i| (time_ms[i], values[i]))
                    .filter(|(_, v)| v.is_finite()),
                color.stroke_width(2),
            ))
            .map_err(|e| fail(&e))?;
        let green = RGBColor(22, 150, 60);
        let red = RGBColor(200, 30, 30);
        chart
            .draw_series(
                marks
                    .iter()
                    .filter(|(_, _, kind)| *kind == Mark::Entry)
                    .map(|&(t, v, _)| TriangleMarker::new((t, v), 6, BLUE.filled())),
            )
            .map_err(|e| fail(&e))?;
        chart
            .draw_series(
                marks
                    .iter()
                    .filter(|(_, _, k)| *k != Mark::Entry)
                    .map(|&(t, v, kind)| {
                        let color = if kind == Mark::WinningExit {
                            green
                        } else {
                            red
                        };
                        Cross::new((t, v), 5, color.stroke_width(2))
                    }),
            )
            .map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(svg)
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fff}\
h1{font-size:22px;margin:0 0 4px}p.meta{color:#555;margin:0 0 16px}\
table{border-collapse:collapse;font-size:13px;margin:8px 0 24px}\
td,th{border-bottom:1px solid #e4e4e4;padding:3px 10px;text-align:left}\
td.n{text-align:right;font-variant-numeric:tabular-nums}\
.chart{margin:8px 0 16px}.legend{color:#555;font-size:13px}";

/// The report page for one result with its `metrics` (name, value) table; `equity_ipc` and
/// `trades_ipc` are its saved EQUITY and TRADES tables in Arrow IPC.
pub fn html(
    result: &BacktestResult,
    metrics: &[(&str, String)],
    equity_ipc: &[u8],
    trades_ipc: &[u8],
) -> Result<String, String> {
    let curve = curve_from_ipc(equity_ipc)?;
    let trades = trades_from_ipc(trades_ipc)?;
    let range = result.range.unwrap_or_default();
    let title = format!(
        "Backtest {} — {} {}",
        result.backtest_id, result.symbol, result.timeframe
    );
    let mut page = String::new();
    // Writing into a String cannot fail.
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n<p class=\"meta\">model {} · {} to {} · {} bars</p>\n",
        escape(&title),
        escape(&title),
        escape(&result.model_id),
        escape(&iso(range.start_ms)),
        escape(&iso(range.end_ms)),
        result.bars,
    );
    page.push_str("<table>\n");
    for (name, value) in metrics {
        let _ = writeln!(
            page,
            "<tr><th>{}</th><td class=\"n\">{}</td></tr>",
            escape(name),
            escape(value)
        );
    }
    page.push_str("</table>\n");

    let equity = line_chart(
        "Equity",
        "",
        &curve.time_ms,
        &curve.equity,
        RGBColor(31, 90, 180),
        &[],
    )?;
    let drawdown = line_chart(
        "Drawdown",
        "%",
        &curve.time_ms,
        &curve.drawdown_pct,
        RGBColor(200, 30, 30),
        &[],
    )?;
    let marks: Vec<(i64, f64, Mark)> = trades
        .iter()
        .flat_map(|t| {
            let exit = if t.pnl > 0.0 {
                Mark::WinningExit
            } else {
                Mark::LosingExit
            };
            [
                (t.entry_time_ms, t.entry_price, Mark::Entry),
                (t.exit_time_ms, t.exit_price, exit),
            ]
        })
        .collect();
    let price = line_chart(
        "Price and trades",
        "",
        &curve.time_ms,
        &curve.close,
        RGBColor(90, 90, 90),
        &marks,
    )?;
    for svg in [equity, drawdown, price] {
        let _ = writeln!(page, "<div class=\"chart\">{svg}</div>");
    }
    page.push_str(
        "<p class=\"legend\">Price: close; ▲ blue entry (fill price), ✕ green exit of a winning trade, ✕ red exit of a losing trade.</p>\n",
    );

    let _ = writeln!(
        page,
        "<h2>Trades ({}{})</h2>\n<table>\n<tr><th>side</th><th>units</th><th>entry</th><th>entry price</th><th>exit</th><th>exit price</th><th>P&amp;L</th><th>return</th><th>exit reason</th></tr>",
        trades.len(),
        if trades.len() > MAX_TRADE_ROWS {
            format!(", the first {MAX_TRADE_ROWS} shown")
        } else {
            String::new()
        }
    );
    for t in trades.iter().take(MAX_TRADE_ROWS) {
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{:.5}</td><td>{}</td><td class=\"n\">{:.5}</td><td class=\"n\">{:.2}</td><td class=\"n\">{:.2}%</td><td>{}</td></tr>",
            escape(&t.side),
            t.units,
            escape(&iso(t.entry_time_ms)),
            t.entry_price,
            escape(&iso(t.exit_time_ms)),
            t.exit_price,
            t.pnl,
            t.return_pct,
            escape(&t.exit_reason),
        );
    }
    page.push_str("</table>\n</body>\n</html>\n");
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::{Float64Array, StringArray, TimestampMillisecondArray};

    const T0: i64 = 1_704_067_200_000;
    const HOUR: i64 = 3_600_000;

    fn ipc(columns: Vec<(&str, Arc<dyn Array>)>) -> Vec<u8> {
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        ktrdr_market::arrow::record_batch_to_ipc(&batch).unwrap()
    }

    fn time(values: Vec<i64>) -> Arc<dyn Array> {
        Arc::new(TimestampMillisecondArray::from(values).with_timezone("UTC"))
    }

    fn num(values: Vec<f64>) -> Arc<dyn Array> {
        Arc::new(Float64Array::from(values))
    }

    fn text(values: Vec<&str>) -> Arc<dyn Array> {
        Arc::new(StringArray::from(values))
    }

    fn tables(n: usize) -> (Vec<u8>, Vec<u8>) {
        let t: Vec<i64> = (0..n as i64).map(|i| T0 + i * HOUR).collect();
        let close: Vec<f64> = (0..n).map(|i| 100.0 + (i as f64 * 0.3).sin()).collect();
        let equity: Vec<f64> = (0..n).map(|i| 10_000.0 + i as f64).collect();
        let equity_ipc = ipc(vec![
            ("timestamp", time(t.clone())),
            ("close", num(close)),
            ("equity", num(equity)),
            ("drawdown_pct", num(vec![-0.5; n])),
        ]);
        let trades_ipc = ipc(vec![
            ("side", text(vec!["long"])),
            ("units", num(vec![10.0])),
            ("entry_time", time(vec![t[2]])),
            ("exit_time", time(vec![t[5]])),
            ("entry_price", num(vec![100.5])),
            ("exit_price", num(vec![101.0])),
            ("pnl", num(vec![5.0])),
            ("return_pct", num(vec![0.5])),
            ("exit_reason", text(vec!["signal<&>"])),
        ]);
        (equity_ipc, trades_ipc)
    }

    #[test]
    fn the_report_is_one_page_of_inline_svg_with_every_trade_and_nothing_loaded() {
        let (equity, trades) = tables(50);
        let result = BacktestResult {
            backtest_id: "bt-1".into(),
            symbol: "EURUSD".into(),
            timeframe: "1h".into(),
            ..Default::default()
        };
        let metrics = crate::backtest::metric_rows(&result);
        let page = html(&result, &metrics, &equity, &trades).unwrap();
        assert_eq!(page.matches("<svg").count(), 3, "{page}");
        assert!(!page.contains("<script"));
        assert!(!page.contains("href="));
        assert!(
            page.contains("<polyline") || page.contains("<path"),
            "no line drawn"
        );
        assert!(page.contains("signal&lt;&amp;&gt;"), "text is escaped");
        assert!(page.contains("Sharpe"));
    }

    #[test]
    fn long_curves_are_thinned_but_keep_their_last_point() {
        let picked = sampled(10_001);
        assert!(picked.len() <= MAX_POINTS + 1);
        assert_eq!(picked.first(), Some(&0));
        assert_eq!(picked.last(), Some(&10_000));
        assert_eq!(sampled(3), [0, 1, 2]);
    }

    #[test]
    fn a_missing_column_is_named() {
        let bad = ipc(vec![("timestamp", time(vec![T0]))]);
        let err = curve_from_ipc(&bad).unwrap_err();
        assert!(err.contains("close"), "{err}");
    }
}

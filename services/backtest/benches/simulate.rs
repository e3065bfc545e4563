//! `cargo bench -p ktrdr-backtest --bench simulate`: prints a Markdown section for
//! BENCHMARKS.md.
//!
//! - the engine (simulation + every metric) over precomputed probabilities on 1 M generated
//!   hourly bars, one core, default settings;
//! - backtesting.py 0.6.6 (`scripts/backtest_parity.py --time`) on the same bars, signals and
//!   rules for a slice it finishes in seconds, against the engine on that same slice, as a
//!   ratio of bars per second.
//!
//! Wall clock, best of 10 runs for the engine, one for backtesting.py; expect ±15 % between
//! runs on a shared VM.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark program, not library code

use std::process::Command;
use std::time::Instant;

#[path = "../tests/common/mod.rs"]
mod common;

use common::{BarSpec, Bars};
use ktrdr_backtest::{Costs, ExecutionConfig, Filters, Sizing, metrics, run, simulate};

const BARS: usize = 1_000_000;
const REFERENCE_BARS: usize = 20_000;

/// Best wall time of `repeats` calls of `f`, in seconds.
fn best_of<T>(repeats: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..repeats {
        let started = Instant::now();
        let out = std::hint::black_box(f());
        best = best.min(started.elapsed().as_secs_f64());
        last = Some(out);
    }
    (best, last.expect("at least one repeat"))
}

/// Best wall time of a whole `run` (simulation and metrics), and the trade count.
fn time_engine(bars: &Bars, config: &ExecutionConfig, repeats: usize) -> (f64, usize) {
    let probabilities = common::probabilities(bars.len(), 0.05, 1, 7);
    let (seconds, result) = best_of(repeats, || {
        run(common::view(&bars), &probabilities, config).unwrap()
    });
    (seconds, result.trades.len())
}

fn row(what: &str, bars: usize, trades: usize, seconds: f64) {
    println!(
        "| {what} | {bars} | {trades} | {:.2} | {:.1} |",
        seconds * 1e3,
        bars as f64 / seconds / 1e6
    );
}

fn main() {
    let spec = BarSpec {
        bars: BARS,
        seed: 7,
        ..BarSpec::default()
    };
    let bars = common::bars(&spec);
    let default = ExecutionConfig::default();
    let (seconds, trades) = time_engine(&bars, &default, 10);
    let probabilities = common::probabilities(bars.len(), 0.05, 1, 7);
    let (simulate_seconds, simulation) = best_of(10, || {
        simulate(common::view(&bars), &probabilities, &default).unwrap()
    });
    let (metrics_seconds, _) = best_of(10, || {
        metrics::compute(common::view(&bars), &simulation, &default).unwrap()
    });

    println!("## Backtest engine (release, one core, generated hourly bars)");
    println!();
    println!("Simulation and every metric over precomputed class probabilities (no inference);");
    println!("best of 10 runs (the machine is shared).");
    println!();
    println!("| run | bars | trades | ms | M bars/s |");
    println!("|---|---:|---:|---:|---:|");
    row(
        "engine, default settings (the original's filters and costs)",
        BARS,
        trades,
        seconds,
    );
    row("… of which the simulation", BARS, trades, simulate_seconds);
    row("… of which the metrics", BARS, trades, metrics_seconds);

    // backtesting.py on a slice: the parity settings (commission only, its rules mirrored).
    let slice = common::bars(&BarSpec {
        bars: REFERENCE_BARS,
        seed: 7,
        ..BarSpec::default()
    });
    let parity = ExecutionConfig {
        initial_capital: 10_000.0,
        costs: Costs {
            commission_rate: 0.001,
            ..Costs::NONE
        },
        sizing: Sizing::FractionOfEquity(0.5),
        filters: Filters {
            confidence_threshold: 0.45,
            ..Filters::NONE
        },
        ..ExecutionConfig::default()
    };
    let (engine_seconds, engine_trades) = time_engine(&slice, &parity, 20);
    row(
        "engine, backtesting.py's conventions",
        REFERENCE_BARS,
        engine_trades,
        engine_seconds,
    );
    let probabilities = common::probabilities(slice.len(), 0.05, 1, 7);
    let document = common::parity_document("bench", &slice, &probabilities, &parity, None);
    let file =
        std::env::temp_dir().join(format!("ktrdr-backtest-bench-{}.json", std::process::id()));
    std::fs::write(&file, serde_json::to_vec(&document).unwrap()).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/backtest_parity.py"
    );
    let output = Command::new("python3")
        .arg(script)
        .arg("--time")
        .arg(&file)
        .output();
    let _ = std::fs::remove_file(&file);
    let reference = output.ok().filter(|o| o.status.success()).and_then(|o| {
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let mut words = text.split_whitespace();
        let seconds: f64 = words.nth(1)?.parse().ok()?;
        let trades: usize = words.nth(1)?.parse().ok()?;
        Some((seconds, trades))
    });
    match reference {
        Some((bt_seconds, bt_trades)) => {
            println!(
                "| backtesting.py 0.6.6, same bars, signals and rules | {REFERENCE_BARS} | {bt_trades} | {:.0} | {:.4} |",
                bt_seconds * 1e3,
                REFERENCE_BARS as f64 / bt_seconds / 1e6
            );
            println!();
            println!(
                "The engine is **{:.0}×** backtesting.py's speed on the same input (goal ≥ 100×).",
                bt_seconds / engine_seconds
            );
        }
        None => {
            println!();
            println!("backtesting.py was not run (python3 with backtesting==0.6.6 not available).");
        }
    }
}

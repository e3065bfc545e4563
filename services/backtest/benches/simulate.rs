//! `cargo bench -p ktrdr-backtest --bench simulate`: prints a Markdown section for
//! BENCHMARKS.md.
//!
//! - the engine (simulation + every metric) over precomputed probabilities on 1 M generated
//!   hourly bars, one core, default settings;
//! - backtesting.py 0.6.6 (`scripts/backtest_parity.py --time`) on the same bars, signals and
//!   rules for a slice it finishes in seconds, against the engine on that same slice, as a
//!   ratio of bars per second.
//!
//! Wall clock, best of 10 runs (200 on the slice) for the engine, one for backtesting.py;
//! expect ±15 % between runs on a shared VM.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark program, not library code

use std::process::Command;
use std::time::Instant;

#[path = "../tests/common/mod.rs"]
mod common;

use common::BarSpec;
use ktrdr_backtest::{Costs, ExecutionConfig, Filters, Sizing, metrics, run, simulate};

const BARS: usize = 1_000_000;
const REFERENCE_BARS: usize = 20_000;

/// This thread's CPU time in seconds (Linux; None elsewhere): unlike wall time, it does not
/// count the time other processes of a shared machine hold the core.
fn thread_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Best wall time of `repeats` calls of `f` and their mean CPU time, in seconds.
fn best_of<T>(repeats: usize, mut f: impl FnMut() -> T) -> (f64, Option<f64>, T) {
    let mut best = f64::INFINITY;
    let mut last = None;
    let cpu_before = thread_cpu_seconds();
    for _ in 0..repeats {
        let started = Instant::now();
        let out = std::hint::black_box(f());
        best = best.min(started.elapsed().as_secs_f64());
        last = Some(out);
    }
    let cpu = thread_cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| (after - before) / repeats as f64);
    (best, cpu, last.expect("at least one repeat"))
}

fn row(what: &str, bars: usize, trades: usize, wall: f64, cpu: Option<f64>) {
    let per_cpu = cpu.map_or("–".to_owned(), |c| {
        format!("{:.1}", bars as f64 / c / 1e6)
    });
    println!(
        "| {what} | {bars} | {trades} | {:.2} | {:.1} | {per_cpu} |",
        wall * 1e3,
        bars as f64 / wall / 1e6
    );
}

fn main() {
    let spec = BarSpec {
        bars: BARS,
        seed: 7,
        ..BarSpec::default()
    };
    let bars = common::bars(&spec);
    let view = common::view(&bars);
    let default = ExecutionConfig::default();
    let probabilities = common::probabilities(bars.len(), 0.05, 1, 7);
    let (wall, cpu, result) = best_of(10, || run(view, &probabilities, &default).unwrap());
    let trades = result.trades.len();
    let (simulate_wall, simulate_cpu, simulation) =
        best_of(10, || simulate(view, &probabilities, &default).unwrap());
    let (metrics_wall, metrics_cpu, _) = best_of(10, || {
        metrics::compute(view, &simulation, &default).unwrap()
    });

    println!("## Backtest engine (release, one core, generated hourly bars)");
    println!();
    println!("Simulation and every metric over precomputed class probabilities (no inference).");
    println!("Wall time is the best of 10 runs; the CPU-time rate (mean of the same runs) leaves");
    println!("out the time other processes held the core on a shared machine.");
    println!();
    println!("| run | bars | trades | ms (wall) | M bars/s (wall) | M bars/s (CPU time) |");
    println!("|---|---:|---:|---:|---:|---:|");
    row(
        "engine (`run`), default settings: the original's filters and costs",
        BARS,
        trades,
        wall,
        cpu,
    );
    row(
        "… `simulate` alone",
        BARS,
        trades,
        simulate_wall,
        simulate_cpu,
    );
    row(
        "… `metrics::compute` alone",
        BARS,
        trades,
        metrics_wall,
        metrics_cpu,
    );

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
    let slice_probabilities = common::probabilities(slice.len(), 0.05, 1, 7);
    let (engine_seconds, engine_cpu, engine_result) = best_of(200, || {
        run(common::view(&slice), &slice_probabilities, &parity).unwrap()
    });
    let engine_trades = engine_result.trades.len();
    row(
        "engine, backtesting.py's conventions",
        REFERENCE_BARS,
        engine_trades,
        engine_seconds,
        engine_cpu,
    );
    let document = common::parity_document("bench", &slice, &slice_probabilities, &parity, None);
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
                "| backtesting.py 0.6.6, same bars, signals and rules | {REFERENCE_BARS} | {bt_trades} | {:.0} | {:.4} | – |",
                bt_seconds * 1e3,
                REFERENCE_BARS as f64 / bt_seconds / 1e6
            );
            let speedup = bt_seconds / engine_seconds;
            println!();
            println!(
                "The engine is **{speedup:.0}×** backtesting.py's speed on the same input (goal ≥ 100×)."
            );
            // The line `make bench` gathers into the goals of BENCHMARKS.md.
            println!();
            println!(
                "Goal: backtest engine ÷ backtesting.py on the same input: {speedup:.0}× (goal ≥ 100×): **{}**",
                if speedup >= 100.0 { "met" } else { "not met" }
            );
        }
        None => {
            println!();
            println!("backtesting.py was not run (python3 with backtesting==0.6.6 not available).");
            println!();
            println!(
                "Goal: backtest engine ÷ backtesting.py (goal ≥ 100×): **not measured** (backtesting==0.6.6 not available)"
            );
        }
    }
}

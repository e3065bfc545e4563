//! `cargo bench -p ktrdr-strategy --bench pipeline`: prints a Markdown section for
//! BENCHMARKS.md.
//!
//! - every indicator (default parameters) on 1 M generated bars;
//! - indicators + fuzzy memberships + features of each example strategy on 1 M base bars.
//!
//! MLP training throughput is the `mlp_training` bench's.
//!
//! One run, wall clock; expect ±15 % between runs on a shared VM.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark program, not library code

use std::collections::BTreeMap;
use std::time::Instant;

use ktrdr_market::Timeframe;
use ktrdr_strategy::LoadedStrategy;
use ktrdr_strategy::features::compute_features;
use ktrdr_strategy::indicators::resolve;
use ktrdr_strategy::strategy::IndicatorSpec;
use ktrdr_strategy::synthetic::{PathSpec, generate};

/// The training host's allocator, so the figures are the training host's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BARS: usize = 1_000_000;
/// The strategy whose indicators, fuzzy memberships and features have a time goal, and the
/// goal in seconds.
const GOAL_STRATEGY: &str = "rsi_bollinger_single";
const GOAL_SECONDS: f64 = 0.2;
/// Runs of each strategy's pipeline; the median is reported.
const RUNS: usize = 5;

fn strategy(file: &str) -> LoadedStrategy {
    let path = format!("{}/../../strategies/{file}", env!("CARGO_MANIFEST_DIR"));
    LoadedStrategy::from_file(path).unwrap()
}

fn main() {
    let bars = generate(&PathSpec {
        bars: BARS,
        timeframe: Timeframe::M1,
        ..PathSpec::default()
    });
    println!("## Strategy pipeline (release, one core, generated bars)");
    println!();
    println!("### Indicators on 1 M bars (default parameters)");
    println!();
    println!("| indicator | ms | M bars/s |");
    println!("|---|---:|---:|");
    let mut total = 0.0;
    for name in ktrdr_strategy::indicators::KNOWN_NAMES {
        let spec = IndicatorSpec {
            name: name.to_owned(),
            indicator_type: None,
            feature_id: None,
            params: BTreeMap::new(),
        };
        let (def, _) = resolve(&spec, "bench").unwrap();
        let started = Instant::now();
        let out = def.kind.compute(&bars);
        let seconds = started.elapsed().as_secs_f64();
        std::hint::black_box(out);
        total += seconds;
        println!(
            "| {name} | {:.1} | {:.1} |",
            seconds * 1e3,
            BARS as f64 / seconds / 1e6
        );
    }
    println!("| **all 31** | {:.1} | |", total * 1e3);
    println!();

    println!("### Indicators + fuzzy + features on 1 M base bars");
    println!();
    println!(
        "Each strategy's pipeline runs {RUNS} times in one process; the median, and the first run \
         (fresh memory) beside it."
    );
    println!();
    println!("| strategy | timeframes | features | ms (median) | first run ms | M rows/s |");
    println!("|---|---|---:|---:|---:|---:|");
    let mut goal = None;
    for file in [
        "rsi_bollinger_single.yaml",
        "momentum_multi_symbol.yaml",
        "trend_multi_timeframe.yaml",
    ] {
        let s = strategy(file);
        let base = generate(&PathSpec {
            bars: BARS,
            ..PathSpec::default()
        });
        let by_tf: BTreeMap<Timeframe, _> = s
            .timeframes()
            .into_iter()
            .map(|tf| (tf, base.resample(tf).unwrap()))
            .collect();
        let mut times = Vec::with_capacity(RUNS);
        let mut features = None;
        for _ in 0..RUNS {
            let started = Instant::now();
            features = Some(compute_features(&s, &by_tf).unwrap());
            times.push(started.elapsed().as_secs_f64());
        }
        let features = features.unwrap();
        let first = times[0];
        times.sort_by(f64::total_cmp);
        let seconds = times[RUNS / 2];
        if s.config.name == GOAL_STRATEGY {
            goal = Some(seconds);
        }
        let tfs: Vec<String> = s.timeframes().iter().map(ToString::to_string).collect();
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.2} |",
            s.config.name,
            tfs.join(", "),
            features.names.len(),
            seconds * 1e3,
            first * 1e3,
            BARS as f64 / seconds / 1e6
        );
    }
    println!();
    // The line `make bench` gathers into the goals of BENCHMARKS.md.
    match goal {
        Some(seconds) => println!(
            "Goal: indicators + fuzzy + features of {GOAL_STRATEGY} on 1 M bars: {seconds:.3} s, median of {RUNS} (goal ≤ {GOAL_SECONDS} s): **{}**",
            if seconds <= GOAL_SECONDS {
                "met"
            } else {
                "not met"
            }
        ),
        None => {
            println!("Goal: {GOAL_STRATEGY} features (goal ≤ {GOAL_SECONDS} s): **not measured**")
        }
    }
    println!();
}

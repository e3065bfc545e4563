//! `cargo bench -p ktrdr-strategy --bench mlp_training`: MLP training throughput (samples/s).
//! Prints Markdown sections for BENCHMARKS.md:
//!
//! - ktrdr (burn, ndarray CPU backend) against PyTorch on the CPU, on two network shapes: the
//!   small one (30 inputs, hidden 32-16) and the original ktrdr's (36 inputs, hidden
//!   128-64-32), both with batch 64, Adam and dropout 0.2;
//! - an example strategy's own features and network on the CPU backend, and on the GPU when
//!   built with `--features cuda` and `KTRDR_BENCH_GPU=1` on a machine with CUDA.
//!
//! Both sides train on the same kind of rows (random features, labels from a fixed random
//! linear map) the same way: each epoch shuffles the training rows, runs the mini-batches and
//! evaluates the validation split; the test split is evaluated at the end. Both run on one
//! core (burn's ndarray backend is single-threaded here; torch gets `set_num_threads(1)`).
//! PyTorch runs `scripts/bench_torch.py` with the interpreter in `KTRDR_BENCH_PYTHON` (the
//! bench's own venv, which `scripts/bench.sh` sets up); without it that column says why.
//!
//! Each side runs three times, the two sides taking turns so that both meet the same machine
//! load; each figure is the median of its three (wall clock). Expect ±15 % between whole bench
//! runs on a shared VM.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark program, not library code

/// The training host's allocator, so that ktrdr trains here as it does there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use burn::backend::Autodiff;
use burn::tensor::backend::AutodiffBackend;
use ktrdr_market::Timeframe;
use ktrdr_strategy::LoadedStrategy;
use ktrdr_strategy::dataset::{SplitDatasets, SymbolBars, build_datasets};
use ktrdr_strategy::model::CpuBackend;
use ktrdr_strategy::strategy::Optimizer;
use ktrdr_strategy::synthetic::{PathSpec, generate, random_rows};
use ktrdr_strategy::training::{TrainControl, train};

const TRAIN_ROWS: usize = 20_000;
const EVAL_ROWS: usize = 3_000;
const EPOCHS: usize = 5;
const BATCH: usize = 64;
const LEARNING_RATE: f64 = 0.001;
const DROPOUT: f64 = 0.2;
/// The goal for ktrdr's samples/s over PyTorch's.
const GOAL: f64 = 3.0;
/// Runs of each side per shape; the median is reported.
const RUNS: usize = 3;

struct Shape {
    name: &'static str,
    inputs: usize,
    hidden: &'static [usize],
}

const SHAPES: [Shape; 2] = [
    Shape {
        name: "small",
        inputs: 30,
        hidden: &[32, 16],
    },
    Shape {
        name: "original ktrdr",
        inputs: 36,
        hidden: &[128, 64, 32],
    },
];

fn datasets(inputs: usize) -> SplitDatasets {
    random_rows(inputs, TRAIN_ROWS, EVAL_ROWS)
}

/// An example strategy from `strategies/`.
fn example(file: &str) -> LoadedStrategy {
    let path = format!("{}/../../strategies/{file}", env!("CARGO_MANIFEST_DIR"));
    LoadedStrategy::from_file(path).unwrap()
}

/// An example strategy with the shape's network and the benchmark's hyperparameters.
fn strategy(shape: &Shape) -> LoadedStrategy {
    let mut s = example("rsi_bollinger_single.yaml");
    let model = &mut s.config.model;
    model.architecture.hidden_layers = shape.hidden.to_vec();
    model.architecture.dropout = DROPOUT;
    model.symbol_embedding_dim = None;
    let hp = &mut model.training;
    hp.batch_size = BATCH;
    hp.epochs = EPOCHS;
    hp.learning_rate = LEARNING_RATE;
    hp.optimizer = Optimizer::Adam;
    hp.weight_decay = 0.0;
    hp.early_stopping = None;
    hp.lr_scheduler = None;
    hp.gradient_clip = None;
    s
}

/// Trains `s` on `data` with backend `B`; training rows × epochs per second of wall time.
fn samples_per_second<B: AutodiffBackend>(
    s: &LoadedStrategy,
    data: &SplitDatasets,
    device: &B::Device,
) -> f64 {
    let started = Instant::now();
    let trained = train::<B>(
        s,
        data,
        device,
        TrainControl {
            seed: 1,
            ..TrainControl::default()
        },
    )
    .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    (data.train.len() * trained.metrics.epochs_trained) as f64 / seconds
}

/// ktrdr's samples/s on `shape`.
fn ktrdr(shape: &Shape) -> f64 {
    samples_per_second::<Autodiff<CpuBackend>>(
        &strategy(shape),
        &datasets(shape.inputs),
        &Default::default(),
    )
}

/// PyTorch's samples/s and version on `shape`, or why it was not measured.
fn pytorch(shape: &Shape) -> Result<(f64, String), String> {
    let python = std::env::var("KTRDR_BENCH_PYTHON")
        .map_err(|_| "not measured: set KTRDR_BENCH_PYTHON (make bench does)".to_owned())?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench_torch.py");
    let hidden: Vec<String> = shape.hidden.iter().map(ToString::to_string).collect();
    let output = Command::new(&python)
        .arg(script)
        .args(["--inputs", &shape.inputs.to_string()])
        .args(["--hidden", &hidden.join(",")])
        .args(["--batch", &BATCH.to_string()])
        .args(["--train-rows", &TRAIN_ROWS.to_string()])
        .args(["--eval-rows", &EVAL_ROWS.to_string()])
        .args(["--epochs", &EPOCHS.to_string()])
        .args(["--learning-rate", &LEARNING_RATE.to_string()])
        .args(["--dropout", &DROPOUT.to_string()])
        .output()
        .map_err(|e| format!("not measured: cannot run {python}: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or("no message");
        return Err(format!("not measured: bench_torch.py failed: {last}"));
    }
    let result: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("not measured: bench_torch.py printed no JSON: {e}"))?;
    let rate = result["samples_per_second"]
        .as_f64()
        .ok_or("not measured: no samples_per_second")?;
    Ok((rate, result["torch"].as_str().unwrap_or("?").to_owned()))
}

/// The median of `values` (the upper middle one of an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    println!(
        "## MLP training against PyTorch (CPU, one core, batch {BATCH}, Adam, dropout {DROPOUT})"
    );
    println!();
    println!(
        "{TRAIN_ROWS} training rows × {EPOCHS} epochs of random features, validation ({EVAL_ROWS} rows) \
         after each epoch and test ({EVAL_ROWS} rows) at the end, included in the time; median of \
         {RUNS} runs of each side, taking turns. PyTorch runs \
         `scripts/bench_torch.py` (`torch.set_num_threads(1)`) in the bench's own venv. Goal: \
         ktrdr ≥ {GOAL}× PyTorch's samples/s on both shapes."
    );
    println!();
    println!("| network | ktrdr samples/s | PyTorch samples/s | ktrdr ÷ PyTorch | goal |");
    println!("|---|---:|---:|---:|---|");
    let mut version = None;
    let mut goals = Vec::new();
    for shape in &SHAPES {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            ours.push(ktrdr(shape));
            theirs.push(pytorch(shape));
        }
        let ours = median(ours);
        let theirs = theirs
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map(|runs| {
                let torch = runs.first().map(|(_, v)| v.clone()).unwrap_or_default();
                (
                    median(runs.into_iter().map(|(rate, _)| rate).collect()),
                    torch,
                )
            });
        let hidden: Vec<String> = shape.hidden.iter().map(ToString::to_string).collect();
        let network = format!("{} ({}-{}-3)", shape.name, shape.inputs, hidden.join("-"));
        match theirs {
            Ok((theirs, torch)) => {
                let ratio = ours / theirs;
                let verdict = if ratio >= GOAL { "met" } else { "not met" };
                println!("| {network} | {ours:.0} | {theirs:.0} | {ratio:.2}× | {verdict} |");
                // The line `make bench` gathers into the goals of BENCHMARKS.md.
                goals.push(format!(
                    "Goal: MLP training, {network}, ktrdr ÷ PyTorch: {ratio:.2}× (goal ≥ {GOAL}×): **{verdict}**"
                ));
                version = Some(torch);
            }
            Err(why) => {
                println!("| {network} | {ours:.0} | {why} | - | - |");
                goals.push(format!(
                    "Goal: MLP training, {network}, ktrdr ÷ PyTorch (goal ≥ {GOAL}×): **not measured** ({why})"
                ));
            }
        }
    }
    if let Some(version) = version {
        println!();
        println!("PyTorch {version}.");
    }
    println!();
    for goal in goals {
        println!("{goal}");
    }
    println!();
    example_strategy();
}

/// An example strategy's own features and network on generated bars.
fn example_strategy() {
    let s = {
        let mut s = example("rsi_bollinger_single.yaml");
        s.config.model.training.epochs = 3;
        s.config.model.training.early_stopping = None;
        s
    };
    let base = generate(&PathSpec {
        bars: 40_000,
        ..PathSpec::default()
    });
    let data = build_datasets(
        &s,
        &[SymbolBars {
            symbol: "EURUSD".to_owned(),
            bars: BTreeMap::from([(Timeframe::H1, base)]),
        }],
    )
    .unwrap();
    println!(
        "## MLP training throughput ({}, {} inputs, hidden {:?}, batch {}, Adam, 3 epochs)",
        s.config.name,
        data.feature_names.len(),
        s.config.model.architecture.hidden_layers,
        s.config.model.training.batch_size
    );
    println!();
    println!("| backend | training rows | samples/s |");
    println!("|---|---:|---:|");
    let cpu = samples_per_second::<Autodiff<CpuBackend>>(&s, &data, &Default::default());
    println!("| CPU (burn ndarray) | {} | {cpu:.0} |", data.train.len());
    #[cfg(feature = "cuda")]
    if std::env::var("KTRDR_BENCH_GPU").as_deref() == Ok("1") {
        use ktrdr_strategy::model::GpuBackend;
        let gpu = samples_per_second::<Autodiff<GpuBackend>>(&s, &data, &Default::default());
        println!("| GPU (burn cuda) | {} | {gpu:.0} |", data.train.len());
    }
    println!();
    println!("Validation and test evaluation are included in the training time.");
}

//! The same training on two devices, compared: samples/s of each and how far their final
//! metrics differ. `scripts/gpu-check.sh` runs it on a machine with an NVIDIA GPU:
//!
//! `cargo run --release -p ktrdr-strategy --features cuda --example gpu_check -- \
//!   --device cuda:0 [--batch 4096] [--epochs 10] [--train-rows 200000] [--eval-rows 20000] \
//!   [--accuracy-tolerance 0.01] [--loss-tolerance 0.01]`
//!
//! The network is the original ktrdr's shape (36 inputs, hidden 128-64-32, 3 outputs), ReLU,
//! Adam (learning rate 0.001), no dropout, on [`random_rows`]. Both devices start from the same
//! weights (initialised on the CPU, loaded as a checkpoint) and see the same batches in the same
//! order, so their runs differ only by floating-point rounding (sums in another order): the test
//! accuracy and loss must agree within the tolerances, else the exit status is 1. Validation
//! after each epoch and the test pass are included in the time. `--device cpu` compares the CPU
//! with itself (a build without `cuda` can only do that). Prints one JSON object.

#![allow(clippy::unwrap_used, clippy::expect_used)] // an example program, not library code

use std::time::Instant;

use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::backend::{AutodiffBackend, Backend};
use ktrdr_strategy::LoadedStrategy;
use ktrdr_strategy::compute::{Compute, OnBackend};
use ktrdr_strategy::dataset::SplitDatasets;
use ktrdr_strategy::model::{CpuBackend, MlpConfig};
use ktrdr_strategy::strategy::Optimizer;
use ktrdr_strategy::synthetic::random_rows;
use ktrdr_strategy::training::{BatchSource, TrainControl, TrainingMetrics, train};

const INPUTS: usize = 36;
const HIDDEN: [usize; 3] = [128, 64, 32];

struct Options {
    device: Compute,
    batch: usize,
    epochs: usize,
    train_rows: usize,
    eval_rows: usize,
    accuracy_tolerance: f64,
    loss_tolerance: f64,
}

fn options() -> Options {
    let mut o = Options {
        device: Compute::Cuda(0),
        batch: 4096,
        epochs: 10,
        train_rows: 200_000,
        eval_rows: 20_000,
        accuracy_tolerance: 0.01,
        loss_tolerance: 0.01,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).map(String::as_str).unwrap_or_default();
        let number = || -> usize {
            value
                .parse()
                .unwrap_or_else(|_| panic!("{} takes a whole number", pair[0]))
        };
        let fraction = || -> f64 {
            value
                .parse()
                .unwrap_or_else(|_| panic!("{} takes a number", pair[0]))
        };
        match pair[0].as_str() {
            "--device" => {
                o.device = match value.strip_prefix("cuda:") {
                    Some(n) => Compute::Cuda(n.parse().expect("--device cuda:N")),
                    None if value == "cpu" => Compute::Cpu,
                    None => panic!("--device takes cpu or cuda:N"),
                }
            }
            "--batch" => o.batch = number(),
            "--epochs" => o.epochs = number(),
            "--train-rows" => o.train_rows = number(),
            "--eval-rows" => o.eval_rows = number(),
            "--accuracy-tolerance" => o.accuracy_tolerance = fraction(),
            "--loss-tolerance" => o.loss_tolerance = fraction(),
            other => panic!("unknown option {other}"),
        }
    }
    o
}

/// The example single-symbol strategy with the original's network and these hyperparameters.
fn strategy(o: &Options) -> LoadedStrategy {
    let path = format!(
        "{}/../../strategies/rsi_bollinger_single.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut s = LoadedStrategy::from_file(path).unwrap();
    let model = &mut s.config.model;
    model.architecture.hidden_layers = HIDDEN.to_vec();
    model.architecture.dropout = 0.0;
    model.symbol_embedding_dim = None;
    let hp = &mut model.training;
    hp.batch_size = o.batch;
    hp.epochs = o.epochs;
    hp.learning_rate = 0.001;
    hp.optimizer = Optimizer::Adam;
    hp.weight_decay = 0.0;
    hp.early_stopping = None;
    hp.lr_scheduler = None;
    hp.gradient_clip = None;
    s
}

/// Training from the weights in `initial` (a checkpoint of epoch 0).
struct Fit<'a> {
    strategy: &'a LoadedStrategy,
    data: &'a SplitDatasets,
    initial: &'a std::path::Path,
    batches: BatchSource,
}

impl OnBackend for Fit<'_> {
    type Output = (TrainingMetrics, f64);
    fn run<B: AutodiffBackend>(self, device: &B::Device) -> Self::Output {
        let started = Instant::now();
        let trained = train::<B>(
            self.strategy,
            self.data,
            device,
            TrainControl {
                seed: 1,
                batches: self.batches,
                resume: Some((self.initial.to_path_buf(), 0)),
                ..TrainControl::default()
            },
        )
        .unwrap();
        // Reading the metrics back waited for the device: the time is the whole run.
        (trained.metrics, started.elapsed().as_secs_f64())
    }
}

fn main() {
    let o = options();
    let s = strategy(&o);
    let data = random_rows(INPUTS, o.train_rows, o.eval_rows);
    let dir = tempfile::tempdir().unwrap();
    let initial = dir.path().join("initial");
    let device = Default::default();
    CpuBackend::seed(&device, 1);
    MlpConfig::from_strategy(&s, INPUTS)
        .init::<CpuBackend>(&device)
        .save_file(
            initial.clone(),
            &NamedMpkFileRecorder::<FullPrecisionSettings>::new(),
        )
        .unwrap();
    let run = |compute: Compute| {
        compute
            .run(Fit {
                strategy: &s,
                data: &data,
                initial: &initial,
                batches: compute.batches(),
            })
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let (cpu, cpu_seconds) = run(Compute::Cpu);
    let (other, other_seconds) = run(o.device);
    let samples = (o.train_rows * o.epochs) as f64;
    let accuracy_difference = (cpu.test.accuracy - other.test.accuracy).abs();
    let loss_difference = (cpu.test.loss - other.test.loss).abs();
    let agree = accuracy_difference <= o.accuracy_tolerance && loss_difference <= o.loss_tolerance;
    let report = serde_json::json!({
        "network": format!("{INPUTS}-{}-3", HIDDEN.map(|h| h.to_string()).join("-")),
        "batch": o.batch,
        "epochs": o.epochs,
        "train_rows": o.train_rows,
        "device": o.device.id(),
        "cpu_samples_per_second": samples / cpu_seconds,
        "device_samples_per_second": samples / other_seconds,
        "speedup": cpu_seconds / other_seconds,
        "cpu_test_accuracy": cpu.test.accuracy,
        "device_test_accuracy": other.test.accuracy,
        "cpu_test_loss": cpu.test.loss,
        "device_test_loss": other.test.loss,
        "accuracy_difference": accuracy_difference,
        "loss_difference": loss_difference,
        "accuracy_tolerance": o.accuracy_tolerance,
        "loss_tolerance": o.loss_tolerance,
        "agree": agree,
    });
    println!("{report}");
    if !agree {
        std::process::exit(1);
    }
}

//! Trains a strategy on generated bars and prints its metrics and training speed.
//!
//! `cargo run --release -p ktrdr-strategy --example train_generated -- strategies/rsi_bollinger_single.yaml [bars] [epochs] [seed]`
//! With `--features cuda` it trains on the GPU (needs libcuda at run time).

use std::time::Instant;

use burn::backend::Autodiff;
use ktrdr_strategy::LoadedStrategy;
use ktrdr_strategy::dataset::{SymbolBars, build_datasets};
use ktrdr_strategy::synthetic::{PathSpec, generate};
use ktrdr_strategy::training::{TrainControl, train};

#[cfg(not(feature = "cuda"))]
type Backend = ktrdr_strategy::model::CpuBackend;
#[cfg(feature = "cuda")]
type Backend = ktrdr_strategy::model::GpuBackend;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .map_or("strategies/rsi_bollinger_single.yaml", String::as_str);
    let bars: usize = args.get(1).map_or(Ok(6_000), |s| s.parse())?;
    let mut strategy = LoadedStrategy::from_file(path)?;
    if let Some(epochs) = args.get(2) {
        strategy.config.model.training.epochs = epochs.parse()?;
    }
    let seed: u64 = args.get(3).map_or(Ok(7), |s| s.parse())?;
    for w in &strategy.warnings {
        eprintln!("warning: {}: {}", w.path, w.message);
    }
    let data: Vec<SymbolBars> = strategy
        .symbols()
        .iter()
        .enumerate()
        .map(|(i, symbol)| {
            let base = generate(&PathSpec {
                seed: 100 + i as u64,
                bars,
                ..PathSpec::default()
            });
            let by_tf = strategy
                .timeframes()
                .into_iter()
                .map(|tf| base.resample(tf).map(|b| (tf, b)))
                .collect::<Result<_, _>>()?;
            Ok::<_, ktrdr_strategy::StrategyError>(SymbolBars {
                symbol: symbol.clone(),
                bars: by_tf,
            })
        })
        .collect::<Result<_, _>>()?;
    let sets = build_datasets(&strategy, &data)?;
    println!(
        "{}: {} features; rows train {} / validation {} / test {}",
        strategy.config.name,
        sets.feature_names.len(),
        sets.train.len(),
        sets.validation.len(),
        sets.test.len()
    );
    let device = Default::default();
    let started = Instant::now();
    let trained = train::<Autodiff<Backend>>(
        &strategy,
        &sets,
        &device,
        TrainControl {
            seed,
            ..TrainControl::default()
        },
    )?;
    let seconds = started.elapsed().as_secs_f64();
    let m = &trained.metrics;
    println!(
        "epochs {} (best {}{}), val acc {:.3}, test acc {:.3} vs majority {:.3}, weighted F1 {:.3}",
        m.epochs_trained,
        m.best_epoch,
        if m.stopped_early {
            ", stopped early"
        } else {
            ""
        },
        m.best_val_accuracy,
        m.test.accuracy,
        m.majority_baseline_accuracy,
        m.test.f1_score
    );
    println!(
        "confusion (rows true BUY/HOLD/SELL): {:?}",
        m.test.confusion_matrix
    );
    println!(
        "training: {:.1} s, {:.0} samples/s",
        seconds,
        (sets.train.len() * m.epochs_trained) as f64 / seconds
    );
    Ok(())
}

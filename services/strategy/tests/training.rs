//! Training end to end on generated data: baseline, determinism, best weights, save/load,
//! progress and cancellation.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::sync::atomic::AtomicBool;

use burn::backend::Autodiff;
use burn::tensor::backend::AutodiffBackend;
use ktrdr_market::Timeframe;
use ktrdr_strategy::artifacts::{LoadedModel, ModelStore, SavedModel};
use ktrdr_strategy::compute::{Compute, OnBackend};
use ktrdr_strategy::dataset::{SplitDatasets, SymbolBars, build_datasets};
use ktrdr_strategy::model::CpuBackend;
use ktrdr_strategy::synthetic::{PathSpec, generate};
use ktrdr_strategy::training::{
    BatchSource, Progress, TrainControl, TrainedModel, TrainingMetrics, evaluate,
    predict_probabilities, train,
};
use ktrdr_strategy::{LoadedStrategy, StrategyError};

type Train = Autodiff<CpuBackend>;

fn strategy(file: &str, epochs: usize) -> LoadedStrategy {
    let path = format!("{}/../../strategies/{file}", env!("CARGO_MANIFEST_DIR"));
    let mut s = LoadedStrategy::from_file(path).unwrap();
    s.config.model.training.epochs = epochs;
    s
}

fn symbol_bars(s: &LoadedStrategy, symbol: &str, seed: u64, bars: usize) -> SymbolBars {
    let base = generate(&PathSpec {
        seed,
        bars,
        ..PathSpec::default()
    });
    SymbolBars {
        symbol: symbol.to_owned(),
        bars: s
            .timeframes()
            .into_iter()
            .map(|tf| (tf, base.resample(tf).unwrap()))
            .collect(),
    }
}

fn datasets(s: &LoadedStrategy, bars: usize) -> SplitDatasets {
    let data: Vec<SymbolBars> = s
        .symbols()
        .iter()
        .enumerate()
        .map(|(i, sym)| symbol_bars(s, sym, 100 + i as u64, bars))
        .collect();
    build_datasets(s, &data).unwrap()
}

fn fit(s: &LoadedStrategy, data: &SplitDatasets, seed: u64) -> TrainedModel<CpuBackend> {
    train::<Train>(
        s,
        data,
        &Default::default(),
        TrainControl {
            seed,
            ..TrainControl::default()
        },
    )
    .unwrap()
}

#[test]
fn single_symbol_beats_the_majority_baseline_and_is_deterministic() {
    let s = strategy("rsi_bollinger_single.yaml", 12);
    let data = datasets(&s, 6_000);
    let a = fit(&s, &data, 7);
    let b = fit(&s, &data, 7);
    assert_eq!(a.metrics, b.metrics, "same seed, same metrics");
    let m = &a.metrics;
    assert!(
        m.test.accuracy > m.majority_baseline_accuracy,
        "test accuracy {} ≤ majority baseline {}",
        m.test.accuracy,
        m.majority_baseline_accuracy
    );
    assert_eq!(m.test.rows, data.test.len());
    let confusion_total: usize = m.test.confusion_matrix.iter().flatten().sum();
    assert_eq!(confusion_total, data.test.len());
    let c = fit(&s, &data, 8);
    assert_ne!(
        a.metrics.history, c.metrics.history,
        "another seed, another run"
    );
}

#[test]
fn multi_symbol_with_embedding_and_multi_timeframe_train() {
    for file in ["momentum_multi_symbol.yaml", "trend_multi_timeframe.yaml"] {
        let s = strategy(file, 6);
        let data = datasets(&s, 4_000);
        let trained = fit(&s, &data, 1);
        let m = &trained.metrics;
        assert!(
            m.test.accuracy > m.majority_baseline_accuracy,
            "{file}: test accuracy {} ≤ majority baseline {}",
            m.test.accuracy,
            m.majority_baseline_accuracy
        );
    }
}

#[test]
fn early_stopping_keeps_the_best_weights() {
    let mut s = strategy("rsi_bollinger_single.yaml", 60);
    // A high learning rate overfits fast, so validation loss turns up early.
    s.config.model.training.learning_rate = 0.01;
    let es = s.config.model.training.early_stopping.as_mut().unwrap();
    es.patience = 3;
    let data = datasets(&s, 3_000);
    let trained = fit(&s, &data, 3);
    let m = &trained.metrics;
    assert!(
        m.stopped_early,
        "did not stop early in {} epochs",
        m.epochs_trained
    );
    assert_eq!(m.epochs_trained, m.best_epoch + 3);
    let best = &m.history[m.best_epoch - 1];
    assert_eq!(best.val_loss, m.best_val_loss);
    // The returned weights are the best epoch's, not the last epoch's.
    let again = evaluate(
        &trained.model,
        &data.validation,
        &trained.config,
        &Default::default(),
        64,
    );
    assert!(
        (again.loss - best.val_loss).abs() < 1e-12,
        "{} vs {}",
        again.loss,
        best.val_loss
    );
    assert_ne!(again.loss, m.history.last().unwrap().val_loss);
}

#[test]
fn a_version_appears_whole_with_its_extra_files_and_leaves_no_staging_behind() {
    let s = strategy("rsi_bollinger_single.yaml", 1);
    let data = datasets(&s, 600);
    let trained = fit(&s, &data, 3);
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path()).owned_by("host-a");
    // A save of this owner killed half-way: its staging directory and its empty claim. Another
    // owner's save in progress: the same, which must survive this owner's clean-up.
    let strategy_dir = dir.path().join(&s.config.name);
    for (owner, version) in [("host-a", 1), ("host-b", 2)] {
        let claim = strategy_dir.join(format!("EURUSD_1h_v{version}"));
        let staging = strategy_dir.join(format!(".staging.{owner}.EURUSD_1h_v{version}"));
        std::fs::create_dir_all(&staging).unwrap();
        std::fs::write(staging.join("model.mpk"), b"half").unwrap();
        std::fs::create_dir(&claim).unwrap();
    }
    let mut removed = store.clean_staging();
    removed.sort();
    assert_eq!(
        removed,
        [
            strategy_dir.join(".staging.host-a.EURUSD_1h_v1"),
            strategy_dir.join("EURUSD_1h_v1"),
        ]
    );
    assert!(strategy_dir.join(".staging.host-b.EURUSD_1h_v2").is_dir());
    assert!(strategy_dir.join("EURUSD_1h_v2").is_dir());

    let saved = store
        .save_with(&s, &trained, &[("strategy.yaml", b"name: x\n".as_slice())])
        .unwrap();
    assert!(saved.ends_with("EURUSD_1h_v3"), "{}", saved.display());
    assert_eq!(
        std::fs::read(saved.join("strategy.yaml")).unwrap(),
        b"name: x\n"
    );
    assert!(saved.join("metadata.json").is_file());
    let left: Vec<String> = std::fs::read_dir(&strategy_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".staging.host-a."))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // Extra files are names inside the version, never paths out of it.
    let err = store
        .save_with(&s, &trained, &[("../escape", b"x".as_slice())])
        .unwrap_err();
    assert!(matches!(err, StrategyError::Io { .. }), "{err:?}");
    assert!(!strategy_dir.join("escape").exists());
    assert!(
        !strategy_dir.join("EURUSD_1h_v4").exists(),
        "a failed save gives its claim back"
    );
}

#[test]
fn saved_model_reloads_and_predicts_the_same() {
    let s = strategy("momentum_multi_symbol.yaml", 2);
    let data = datasets(&s, 1_500);
    let trained = fit(&s, &data, 5);
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path());
    let first = store.save(&s, &trained).unwrap();
    let second = store.save(&s, &trained).unwrap();
    assert!(first.ends_with("momentum_multi_symbol/AAPL_MSFT_GOOGL_1h_v1"));
    assert!(second.ends_with("momentum_multi_symbol/AAPL_MSFT_GOOGL_1h_v2"));
    let latest = store
        .latest("momentum_multi_symbol", &s.symbols(), Timeframe::H1)
        .unwrap();
    assert_eq!(latest, second);
    for file in [
        "model.mpk",
        "config.json",
        "metrics.json",
        "features.json",
        "metadata.json",
    ] {
        assert!(second.join(file).is_file(), "{file}");
    }
    // Two hosts sharing the models directory save at once: distinct versions, and the pointer
    // ends on the newer one.
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| ModelStore::new(dir.path()).save(&s, &trained).unwrap());
        let b = scope.spawn(|| ModelStore::new(dir.path()).save(&s, &trained).unwrap());
        (a.join().unwrap(), b.join().unwrap())
    });
    let mut both = [a, b].map(|p| p.file_name().unwrap().to_string_lossy().into_owned());
    both.sort();
    assert_eq!(both, ["AAPL_MSFT_GOOGL_1h_v3", "AAPL_MSFT_GOOGL_1h_v4"]);
    assert!(
        store
            .latest("momentum_multi_symbol", &s.symbols(), Timeframe::H1)
            .unwrap()
            .ends_with("AAPL_MSFT_GOOGL_1h_v4")
    );

    let loaded = SavedModel::<CpuBackend>::load(&latest, &Default::default()).unwrap();
    assert_eq!(loaded.metrics, trained.metrics);
    assert_eq!(loaded.features.fuzzy_features, trained.feature_names);
    let device = Default::default();
    let before = predict_probabilities(&trained.model, &data.test, &trained.config, &device, 256);
    let after = predict_probabilities(&loaded.model, &data.test, &loaded.network, &device, 256);
    assert_eq!(before, after);

    // New bars for a known symbol: one prediction per complete row, probabilities sum to 1.
    let fresh = symbol_bars(&s, "MSFT", 999, 300);
    let predictions = loaded.predict("MSFT", &fresh.bars).unwrap();
    assert!(predictions.len() > 250);
    for p in &predictions {
        assert!((p.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    // The same through the in-memory model.
    let in_memory = ktrdr_strategy::artifacts::predict_bars(
        &s,
        &trained.config,
        &trained.model,
        &device,
        "MSFT",
        &fresh.bars,
    )
    .unwrap();
    assert_eq!(in_memory, predictions);
    let err = loaded.predict("TSLA", &fresh.bars).unwrap_err();
    assert!(err.to_string().contains("cannot score TSLA"), "{err}");

    // Loaded on a device chosen at run time: the same predictions and test metrics.
    let on_cpu = LoadedModel::load(&latest, &Compute::Cpu).unwrap();
    assert_eq!(on_cpu.metrics, trained.metrics);
    assert_eq!(on_cpu.predict("MSFT", &fresh.bars).unwrap(), predictions);
    assert_eq!(
        on_cpu.evaluate(&data.test, 256),
        evaluate(&trained.model, &data.test, &trained.config, &device, 256)
    );
}

/// Training as the training host runs it: through [`Compute::run`], generic over the backend.
struct Fit<'a> {
    strategy: &'a LoadedStrategy,
    data: &'a SplitDatasets,
    seed: u64,
    batches: BatchSource,
}

impl OnBackend for Fit<'_> {
    type Output = ktrdr_strategy::Result<TrainingMetrics>;
    fn run<B: AutodiffBackend>(self, device: &B::Device) -> Self::Output {
        let control = TrainControl {
            seed: self.seed,
            batches: self.batches,
            ..TrainControl::default()
        };
        train::<B>(self.strategy, self.data, device, control).map(|t| t.metrics)
    }
}

#[test]
fn training_through_the_run_time_device_choice_gives_the_cpu_backends_metrics_wherever_batches_are_cut()
 {
    for (file, epochs) in [
        ("rsi_bollinger_single.yaml", 4),
        ("momentum_multi_symbol.yaml", 2),
    ] {
        let s = strategy(file, epochs);
        let data = datasets(&s, 1_500);
        let direct = fit(&s, &data, 21).metrics;
        for batches in [BatchSource::Host, BatchSource::Device] {
            let generic = Compute::Cpu
                .run(Fit {
                    strategy: &s,
                    data: &data,
                    seed: 21,
                    batches,
                })
                .unwrap()
                .unwrap();
            assert_eq!(generic, direct, "{file}, batches cut on the {batches:?}");
        }
    }
}

#[test]
fn progress_is_reported_and_cancellation_stops_between_batches() {
    let s = strategy("rsi_bollinger_single.yaml", 2);
    let data = datasets(&s, 1_500);
    let batches_per_epoch = data.train.len().div_ceil(64);
    let mut events = Vec::new();
    let mut record = |p: &Progress| events.push(p.clone());
    train::<Train>(
        &s,
        &data,
        &Default::default(),
        TrainControl {
            seed: 1,
            cancel: None,
            progress: Some(&mut record),
            ..TrainControl::default()
        },
    )
    .unwrap();
    let epochs: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            Progress::Epoch(m) => Some(m.epoch),
            Progress::Batch { .. } => None,
        })
        .collect();
    assert_eq!(epochs, vec![1, 2]);
    assert_eq!(events.len(), 2 * batches_per_epoch + 2);

    let cancel = AtomicBool::new(false);
    let mut batches = 0;
    let mut stop_after_three = |p: &Progress| {
        if matches!(p, Progress::Batch { .. }) {
            batches += 1;
            if batches == 3 {
                cancel.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
    };
    let result = train::<Train>(
        &s,
        &data,
        &Default::default(),
        TrainControl {
            seed: 1,
            cancel: Some(&cancel),
            progress: Some(&mut stop_after_three),
            ..TrainControl::default()
        },
    );
    assert!(matches!(result, Err(StrategyError::Cancelled)));
    assert_eq!(batches, 3);
}

#[test]
fn empty_splits_are_refused() {
    let s = strategy("rsi_bollinger_single.yaml", 1);
    let data = datasets(&s, 60); // EMA(50) + lags leave no complete labelled rows in test
    let err = train::<Train>(&s, &data, &Default::default(), TrainControl::default()).unwrap_err();
    assert!(
        err.to_string().contains("split has no labelled rows"),
        "{err}"
    );
}

#[test]
fn importance_and_per_symbol_metrics() {
    let s = strategy("momentum_multi_symbol.yaml", 3);
    let data = datasets(&s, 1_500);
    let trained = fit(&s, &data, 2);
    let m = &trained.metrics;
    let names: Vec<&str> = m
        .feature_importance
        .iter()
        .map(|f| f.feature.as_str())
        .collect();
    assert_eq!(
        names,
        data.feature_names
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    assert!(
        m.feature_importance
            .iter()
            .all(|f| f.accuracy_drop.abs() <= 1.0)
    );
    let symbols: Vec<&str> = m.per_symbol.iter().map(|p| p.symbol.as_str()).collect();
    assert_eq!(symbols, vec!["AAPL", "MSFT", "GOOGL"]);
    let rows: usize = m.per_symbol.iter().map(|p| p.test.rows).sum();
    assert_eq!(rows, m.test.rows);
}

//! Training the MLP with burn: mini-batch gradient descent on the training split, validation
//! every epoch, early stopping that restores the best weights, test metrics at the end.
//!
//! Deterministic for a seed: the backend RNG (weight init) is seeded with it, and the batch
//! order and dropout masks come from our own RNGs seeded with it. The ndarray backend's RNG is
//! process-global, so two trainings initialised at the same moment in one process can disturb
//! each other's initial weights; the results stay valid, only not bit-reproducible.
//!
//! Where batches are cut is the caller's choice ([`BatchSource`]): on a GPU the training split is
//! copied to the device once (`Resident`), an epoch uploads only its shuffled row order and
//! each batch is gathered from it on the device; on the CPU each batch's rows are gathered on
//! the host, which is the copy. Both give the same batches, so the same metrics. Per batch, only
//! the loss and the predicted classes come back to the host; evaluation copies a split to the
//! device once and runs it in consecutive slices.
//!
//! Differences from the original, on purpose: the best weights are a real copy (the original's
//! shallow `state_dict().copy()` kept the last ones); validation and test are evaluated in
//! batches with dropout off; the learning-rate schedule and early stopping are applied per
//! epoch.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use burn::grad_clipping::GradientClippingConfig;
use burn::module::{AutodiffModule, Module};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, GradientsParams, Optimizer, RmsPropConfig, SgdConfig};
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::dataset::{Dataset, LabelDistribution, SplitDatasets};
use crate::error::{Result, StrategyError};
use crate::labels::Label;
use crate::model::{CLASSES, Mlp, MlpConfig, float_tensor, int_tensor, to_f32_vec, to_i64_vec};
use crate::strategy::{LoadedStrategy, LrSchedulerKind, Optimizer as OptimizerKind};
use crate::synthetic::SplitMix64;

/// One progress report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "progress_type", rename_all = "snake_case")]
pub enum Progress {
    /// After each batch.
    Batch {
        epoch: usize,
        total_epochs: usize,
        batch: usize,
        total_batches_per_epoch: usize,
        loss: f64,
        samples_processed: usize,
    },
    /// After each epoch's validation.
    Epoch(EpochMetrics),
}

/// Writes the weights of the model being trained to `path` (burn's named MessagePack, full
/// precision; the recorder sets the `.mpk` extension).
pub type SaveWeights<'s> = &'s dyn Fn(&Path) -> Result<()>;

/// Called after each epoch with the epoch (1-based) and a [`SaveWeights`] for the weights as
/// they are then.
pub type OnCheckpoint<'a> = &'a mut dyn FnMut(usize, SaveWeights<'_>) -> Result<()>;

/// Where a training run cuts its batches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BatchSource {
    /// Each batch's rows gathered on the host and copied in: cheapest when the device is the
    /// CPU, where that copy is the gather.
    #[default]
    Host,
    /// The training split copied to the device once; each batch gathered there from the
    /// epoch's row order (one small upload per epoch): for a GPU.
    Device,
}

/// How a caller steers a training run.
#[derive(Default)]
pub struct TrainControl<'a> {
    pub seed: u64,
    /// Where batches are cut ([`crate::compute::Compute::batches`] picks it for a device).
    pub batches: BatchSource,
    /// Checked between batches; when set, training stops with [`StrategyError::Cancelled`].
    pub cancel: Option<&'a AtomicBool>,
    pub progress: Option<&'a mut dyn FnMut(&Progress)>,
    /// Called after each epoch with the epoch (1-based) and a function that saves the current
    /// weights: how a caller keeps checkpoints.
    pub checkpoint: Option<OnCheckpoint<'a>>,
    /// Continue from a checkpoint: its weights file and the epochs it had completed. Training
    /// goes on at the next epoch with the same batch order as an uninterrupted run; the
    /// optimizer state (e.g. Adam's moments), the learning-rate schedule and early stopping
    /// start fresh, and `history` holds the resumed epochs only.
    pub resume: Option<(PathBuf, usize)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based.
    pub epoch: usize,
    pub total_epochs: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub learning_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub label: Label,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Rows of this true label.
    pub support: usize,
}

/// Metrics of a model on one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationMetrics {
    pub rows: usize,
    pub accuracy: f64,
    pub loss: f64,
    pub per_class: Vec<ClassMetrics>,
    /// Support-weighted averages (sklearn's `average="weighted"`, as the original reported).
    pub precision: f64,
    pub recall: f64,
    pub f1_score: f64,
    /// `confusion_matrix[true][predicted]`, in BUY, HOLD, SELL order.
    pub confusion_matrix: [[usize; CLASSES]; CLASSES],
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub parameters: usize,
    /// parameters × 4 (f32), as the original.
    pub size_bytes: usize,
    pub architecture: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelDistributions {
    pub train: LabelDistribution,
    pub validation: LabelDistribution,
    pub test: LabelDistribution,
}

/// What `metrics.json` holds. Deterministic for a seed: no wall-clock values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingMetrics {
    pub seed: u64,
    pub epochs_trained: usize,
    /// The epoch whose weights were kept (1-based).
    pub best_epoch: usize,
    pub stopped_early: bool,
    /// `val_loss` or `val_accuracy`.
    pub monitor: String,
    pub final_train_loss: f64,
    pub final_train_accuracy: f64,
    pub final_val_loss: f64,
    pub final_val_accuracy: f64,
    pub best_val_loss: f64,
    pub best_val_accuracy: f64,
    pub history: Vec<EpochMetrics>,
    pub test: EvaluationMetrics,
    /// Accuracy of always answering the test split's most frequent label.
    pub majority_baseline_accuracy: f64,
    pub label_distribution: LabelDistributions,
    pub model_info: ModelInfo,
    /// Permutation importance on the validation split, in feature order: the drop in
    /// validation accuracy when that one feature's column is shuffled (seeded).
    pub feature_importance: Vec<FeatureImportance>,
    /// Test metrics of each symbol, for multi-symbol strategies (empty otherwise).
    pub per_symbol: Vec<SymbolMetrics>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureImportance {
    pub feature: String,
    pub accuracy_drop: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SymbolMetrics {
    pub symbol: String,
    pub test: EvaluationMetrics,
}

/// A trained network (without autodiff) and how it got there.
#[derive(Debug)]
pub struct TrainedModel<B: Backend> {
    pub model: Mlp<B>,
    pub config: MlpConfig,
    pub feature_names: Vec<String>,
    pub metrics: TrainingMetrics,
}

/// Trains the strategy's MLP on `data` (from [`crate::dataset::build_datasets`]).
pub fn train<B: AutodiffBackend>(
    strategy: &LoadedStrategy,
    data: &SplitDatasets,
    device: &B::Device,
    control: TrainControl<'_>,
) -> Result<TrainedModel<B::InnerBackend>> {
    for (name, part) in [
        ("train", &data.train),
        ("validation", &data.validation),
        ("test", &data.test),
    ] {
        if part.is_empty() {
            return Err(StrategyError::data(format!(
                "the {name} split has no labelled rows with complete features; \
                 load more bars or change training.data_split"
            )));
        }
    }
    let config = MlpConfig::from_strategy(strategy, data.feature_names.len());
    if config.uses_embedding() && config.symbols != data.symbols {
        return Err(StrategyError::data(
            "dataset symbols differ from the strategy's".to_owned(),
        ));
    }
    let hp = &strategy.config.model.training;
    let weight_decay =
        (hp.weight_decay > 0.0).then(|| WeightDecayConfig::new(hp.weight_decay as f32));
    let clipping = hp
        .gradient_clip
        .map(|c| GradientClippingConfig::Norm(c as f32));
    B::seed(device, control.seed);
    let model = config.init::<B>(device);
    let run = Run {
        strategy,
        data,
        device,
        config: &config,
    };
    match hp.optimizer {
        OptimizerKind::Adam => {
            let optim = AdamConfig::new()
                .with_weight_decay(weight_decay)
                .with_grad_clipping(clipping)
                .init();
            run.fit(model, optim, control)
        }
        OptimizerKind::Sgd => {
            // torch's SGD(momentum=0.9) as the original: no dampening.
            let momentum = MomentumConfig::new().with_momentum(0.9).with_dampening(0.0);
            let optim = SgdConfig::new()
                .with_weight_decay(weight_decay)
                .with_momentum(Some(momentum))
                .with_gradient_clipping(clipping)
                .init();
            run.fit(model, optim, control)
        }
        OptimizerKind::Rmsprop => {
            // torch's RMSprop defaults (no momentum) as the original; burn defaults to 0.9.
            let optim = RmsPropConfig::new()
                .with_momentum(0.0)
                .with_weight_decay(weight_decay)
                .with_grad_clipping(clipping)
                .init();
            run.fit(model, optim, control)
        }
    }
}

struct Run<'r, B: Backend> {
    strategy: &'r LoadedStrategy,
    data: &'r SplitDatasets,
    device: &'r B::Device,
    config: &'r MlpConfig,
}

impl<B: AutodiffBackend> Run<'_, B> {
    fn fit<O: Optimizer<Mlp<B>, B>>(
        &self,
        mut model: Mlp<B>,
        mut optim: O,
        mut control: TrainControl<'_>,
    ) -> Result<TrainedModel<B::InnerBackend>> {
        let hp = &self.strategy.config.model.training;
        let train = &self.data.train;
        let epochs = hp.epochs;
        let batch_size = hp.batch_size;
        let total_batches = train.len().div_ceil(batch_size);
        let loss_fn = CrossEntropyLossConfig::new().init(self.device);
        let resident = (control.batches == BatchSource::Device)
            .then(|| Resident::<B>::upload(train, self.config, self.device));
        let early = hp.early_stopping.as_ref().filter(|e| e.enabled);
        let monitor = early.map_or("val_loss", |e| e.monitor.as_str()).to_owned();
        let mut schedule = LearningRate::new(hp);

        let mut rng = SplitMix64::new(control.seed ^ 0x5EED_BA7C_0000_0001);
        let mut dropout = SplitMix64::new(control.seed ^ 0xD809_0C7A_0000_0003);
        let mut order: Vec<usize> = (0..train.len()).collect();
        let mut history = Vec::with_capacity(epochs);
        let mut best: Option<(usize, f64, Mlp<B::InnerBackend>)> = None;
        let mut epochs_without_improvement = 0;
        let mut stopped_early = false;
        let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
        let mut first_epoch = 1;
        if let Some((path, done)) = control.resume.take() {
            model = model
                .load_file(path.clone(), &recorder, self.device)
                .map_err(|e| StrategyError::Weights {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
            // Replay the skipped epochs' shuffles so the batch order continues unchanged.
            for _ in 0..done.min(epochs) {
                shuffle(&mut order, &mut rng);
            }
            first_epoch = done + 1;
        }

        for epoch in first_epoch..=epochs {
            shuffle(&mut order, &mut rng);
            // On the device: the split, and this epoch's row order uploaded once.
            let on_device = resident
                .as_ref()
                .map(|resident| (resident, index_tensor::<B>(&order, self.device)));
            let lr = schedule.current();
            let (mut loss_sum, mut correct, mut seen) = (0.0, 0usize, 0usize);
            for (batch_index, batch) in order.chunks(batch_size).enumerate() {
                if control.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                    return Err(StrategyError::Cancelled);
                }
                let (x, y, symbols) = match &on_device {
                    Some((resident, order)) => resident.select(order.clone().narrow(
                        0,
                        batch_index * batch_size,
                        batch.len(),
                    )),
                    None => gather::<B>(train, batch, self.config, self.device),
                };
                let logits = model.forward_training(x, symbols, &mut dropout);
                let loss = loss_fn.forward(logits.clone(), y);
                let predicted = to_i64_vec(logits.argmax(1));
                let batch_loss = f64::from(
                    to_f32_vec(loss.clone())
                        .first()
                        .copied()
                        .unwrap_or(f32::NAN),
                );
                // The labels are on the host already: compared there, not read back.
                correct += predicted
                    .iter()
                    .zip(batch)
                    .filter(|&(&p, &row)| p == train.y[row].index() as i64)
                    .count();
                seen += batch.len();
                loss_sum += batch_loss * batch.len() as f64;
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(lr, model, grads);
                if let Some(progress) = control.progress.as_mut() {
                    progress(&Progress::Batch {
                        epoch,
                        total_epochs: epochs,
                        batch: batch_index + 1,
                        total_batches_per_epoch: total_batches,
                        loss: batch_loss,
                        samples_processed: seen,
                    });
                }
            }
            let valid_model = model.valid();
            let validation = evaluate(
                &valid_model,
                &self.data.validation,
                self.config,
                self.device,
                batch_size,
            );
            let metrics = EpochMetrics {
                epoch,
                total_epochs: epochs,
                train_loss: loss_sum / seen.max(1) as f64,
                train_accuracy: correct as f64 / seen.max(1) as f64,
                val_loss: validation.loss,
                val_accuracy: validation.accuracy,
                learning_rate: lr,
            };
            if let Some(progress) = control.progress.as_mut() {
                progress(&Progress::Epoch(metrics.clone()));
            }
            // Higher is better for accuracy, lower for loss: compare on one scale.
            let score = if monitor == "val_accuracy" {
                validation.accuracy
            } else {
                -validation.loss
            };
            let min_delta = early.map_or(0.0, |e| e.min_delta);
            let improved = best
                .as_ref()
                .is_none_or(|(_, best_score, _)| score > best_score + min_delta);
            if improved {
                // `valid()` is a copy of the parameters as they are now: later steps replace
                // the model's tensors, they do not write into this one.
                best = Some((epoch, score, valid_model));
                epochs_without_improvement = 0;
            } else {
                epochs_without_improvement += 1;
            }
            schedule.after_epoch(validation.loss);
            history.push(metrics);
            if let Some(checkpoint) = control.checkpoint.as_mut() {
                let save = |path: &Path| {
                    model
                        .valid()
                        .save_file(path.to_path_buf(), &recorder)
                        .map_err(|e| StrategyError::Weights {
                            path: path.display().to_string(),
                            message: e.to_string(),
                        })
                };
                checkpoint(epoch, &save)?;
            }
            if let Some(e) = early
                && epochs_without_improvement >= e.patience
            {
                stopped_early = true;
                break;
            }
        }

        let (best_epoch, _, best_model) = match best {
            Some(b) => b,
            None => (0, 0.0, model.valid()),
        };
        let test = evaluate(
            &best_model,
            &self.data.test,
            self.config,
            self.device,
            batch_size,
        );
        let last = history.last().cloned();
        let test_counts = self.data.test.label_counts();
        let majority = test_counts.iter().copied().max().unwrap_or(0) as f64
            / self.data.test.len().max(1) as f64;
        let parameters = best_model.num_params();
        let feature_importance = permutation_importance(
            &best_model,
            &self.data.validation,
            &self.data.feature_names,
            self.config,
            self.device,
            control.seed,
        );
        let per_symbol = if self.data.symbols.len() > 1 {
            self.data
                .symbols
                .iter()
                .enumerate()
                .map(|(index, symbol)| SymbolMetrics {
                    symbol: symbol.clone(),
                    test: evaluate(
                        &best_model,
                        &rows_of_symbol(&self.data.test, index as u32),
                        self.config,
                        self.device,
                        batch_size,
                    ),
                })
                .collect()
        } else {
            Vec::new()
        };
        let metrics = TrainingMetrics {
            seed: control.seed,
            epochs_trained: history.len(),
            best_epoch,
            stopped_early,
            monitor,
            final_train_loss: last.as_ref().map_or(f64::NAN, |m| m.train_loss),
            final_train_accuracy: last.as_ref().map_or(f64::NAN, |m| m.train_accuracy),
            final_val_loss: last.as_ref().map_or(f64::NAN, |m| m.val_loss),
            final_val_accuracy: last.as_ref().map_or(f64::NAN, |m| m.val_accuracy),
            best_val_loss: history
                .iter()
                .map(|m| m.val_loss)
                .fold(f64::INFINITY, f64::min),
            best_val_accuracy: history.iter().map(|m| m.val_accuracy).fold(0.0, f64::max),
            history,
            test,
            majority_baseline_accuracy: majority,
            label_distribution: LabelDistributions {
                train: LabelDistribution::of(&self.data.train),
                validation: LabelDistribution::of(&self.data.validation),
                test: LabelDistribution::of(&self.data.test),
            },
            model_info: ModelInfo {
                parameters,
                size_bytes: parameters * 4,
                architecture: self.config.architecture_name(),
            },
            feature_importance,
            per_symbol,
        };
        Ok(TrainedModel {
            model: best_model,
            config: self.config.clone(),
            feature_names: self.data.feature_names.clone(),
            metrics,
        })
    }
}

/// The per-epoch learning rate from `lr_scheduler`.
struct LearningRate {
    base: f64,
    current: f64,
    epoch: usize,
    scheduler: Option<crate::strategy::LrScheduler>,
    best_val_loss: f64,
    bad_epochs: usize,
}

impl LearningRate {
    fn new(hp: &crate::strategy::TrainingHyperparameters) -> Self {
        Self {
            base: hp.learning_rate,
            current: hp.learning_rate,
            epoch: 0,
            scheduler: hp.lr_scheduler.clone(),
            best_val_loss: f64::INFINITY,
            bad_epochs: 0,
        }
    }

    fn current(&self) -> f64 {
        self.current
    }

    fn after_epoch(&mut self, val_loss: f64) {
        self.epoch += 1;
        let Some(s) = &self.scheduler else { return };
        match s.kind {
            // torch defaults, as the original: step 30 × 0.1, exponential 0.95,
            // plateau factor 0.5 after 5 epochs.
            LrSchedulerKind::Step => {
                let step = s.step_size.unwrap_or(30).max(1);
                let gamma = s.gamma.unwrap_or(0.1);
                self.current = self.base * gamma.powi((self.epoch / step) as i32);
            }
            LrSchedulerKind::Exponential => {
                self.current = self.base * s.gamma.unwrap_or(0.95).powi(self.epoch as i32);
            }
            LrSchedulerKind::ReduceOnPlateau => {
                if val_loss < self.best_val_loss {
                    self.best_val_loss = val_loss;
                    self.bad_epochs = 0;
                } else {
                    self.bad_epochs += 1;
                    if self.bad_epochs > s.patience.unwrap_or(5) {
                        self.current *= s.factor.unwrap_or(0.5);
                        self.bad_epochs = 0;
                    }
                }
            }
        }
    }
}

/// The rows of `data` that belong to symbol `index`.
fn rows_of_symbol(data: &Dataset, index: u32) -> Dataset {
    let mut out = Dataset {
        feature_count: data.feature_count,
        ..Dataset::default()
    };
    for i in (0..data.len()).filter(|&i| data.symbol_index[i] == index) {
        out.x.extend_from_slice(data.row(i));
        out.y.push(data.y[i]);
        out.symbol_index.push(index);
        out.timestamp_ms.push(data.timestamp_ms[i]);
    }
    out
}

/// Drop in accuracy on `data` when each feature's column is shuffled, one at a time.
fn permutation_importance<B: Backend>(
    model: &Mlp<B>,
    data: &Dataset,
    names: &[String],
    config: &MlpConfig,
    device: &B::Device,
    seed: u64,
) -> Vec<FeatureImportance> {
    const BATCH: usize = 1024;
    let baseline = evaluate(model, data, config, device, BATCH).accuracy;
    let mut rng = SplitMix64::new(seed ^ 0x1A9B_0C7D_0000_0002);
    let mut shuffled = data.clone();
    let width = data.feature_count;
    names
        .iter()
        .enumerate()
        .map(|(j, name)| {
            let mut order: Vec<usize> = (0..data.len()).collect();
            shuffle(&mut order, &mut rng);
            for (row, &source) in order.iter().enumerate() {
                shuffled.x[row * width + j] = data.x[source * width + j];
            }
            let accuracy = evaluate(model, &shuffled, config, device, BATCH).accuracy;
            // Restore the column for the next feature.
            for row in 0..data.len() {
                shuffled.x[row * width + j] = data.x[row * width + j];
            }
            FeatureImportance {
                feature: name.clone(),
                accuracy_drop: baseline - accuracy,
            }
        })
        .collect()
}

/// Fisher–Yates with our seeded RNG.
fn shuffle(order: &mut [usize], rng: &mut SplitMix64) {
    for i in (1..order.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
}

/// A batch: features `[rows, width]`, labels `[rows]`, symbol indices `[rows]` (with an
/// embedding).
type Batch<B> = (Tensor<B, 2>, Tensor<B, 1, Int>, Option<Tensor<B, 1, Int>>);

/// A dataset copied to the device once: features `[rows, width]`, labels and (with an
/// embedding) symbol indices. Batches are cut from it on the device.
struct Resident<B: Backend> {
    x: Tensor<B, 2>,
    y: Tensor<B, 1, Int>,
    symbols: Option<Tensor<B, 1, Int>>,
}

impl<B: Backend> Resident<B> {
    fn upload(data: &Dataset, config: &MlpConfig, device: &B::Device) -> Self {
        let y: Vec<i64> = data.y.iter().map(|l| l.index() as i64).collect();
        let symbols = config.uses_embedding().then(|| {
            let s: Vec<i64> = data.symbol_index.iter().map(|&i| i64::from(i)).collect();
            int_tensor::<B>(&s, device)
        });
        Self {
            x: float_tensor::<B>(&data.x, data.len(), data.feature_count, device),
            y: int_tensor::<B>(&y, device),
            symbols,
        }
    }

    /// The rows named by `rows` (indices on the device), in that order.
    fn select(&self, rows: Tensor<B, 1, Int>) -> Batch<B> {
        (
            self.x.clone().select(0, rows.clone()),
            self.y.clone().select(0, rows.clone()),
            self.symbols.as_ref().map(|s| s.clone().select(0, rows)),
        )
    }

    /// The consecutive rows `start..start + len`.
    fn range(&self, start: usize, len: usize) -> Batch<B> {
        (
            self.x.clone().narrow(0, start, len),
            self.y.clone().narrow(0, start, len),
            self.symbols
                .as_ref()
                .map(|s| s.clone().narrow(0, start, len)),
        )
    }
}

/// The rows `indices` of `data` as tensors, gathered on the host.
fn gather<B: Backend>(
    data: &Dataset,
    indices: &[usize],
    config: &MlpConfig,
    device: &B::Device,
) -> Batch<B> {
    let mut x = Vec::with_capacity(indices.len() * data.feature_count);
    for &i in indices {
        x.extend_from_slice(data.row(i));
    }
    let y: Vec<i64> = indices.iter().map(|&i| data.y[i].index() as i64).collect();
    let symbols = config.uses_embedding().then(|| {
        let s: Vec<i64> = indices
            .iter()
            .map(|&i| i64::from(data.symbol_index[i]))
            .collect();
        int_tensor::<B>(&s, device)
    });
    (
        float_tensor::<B>(&x, indices.len(), data.feature_count, device),
        int_tensor::<B>(&y, device),
        symbols,
    )
}

/// Row indices as an integer tensor on the device.
fn index_tensor<B: Backend>(indices: &[usize], device: &B::Device) -> Tensor<B, 1, Int> {
    let values: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
    int_tensor::<B>(&values, device)
}

/// Softmax probabilities `[rows][3]` of `model` for every row of `data`, in batches (the data
/// copied to the device once).
pub fn predict_probabilities<B: Backend>(
    model: &Mlp<B>,
    data: &Dataset,
    config: &MlpConfig,
    device: &B::Device,
    batch_size: usize,
) -> Vec<[f32; CLASSES]> {
    let mut out = Vec::with_capacity(data.len());
    if data.is_empty() {
        return out;
    }
    let resident = Resident::<B>::upload(data, config, device);
    let batch_size = batch_size.max(1);
    for start in (0..data.len()).step_by(batch_size) {
        let (x, _, symbols) = resident.range(start, batch_size.min(data.len() - start));
        let probabilities = to_f32_vec(burn::tensor::activation::softmax(
            model.forward(x, symbols),
            1,
        ));
        for row in probabilities.chunks(CLASSES) {
            out.push([row[0], row[1], row[2]]);
        }
    }
    out
}

/// Accuracy, loss (mean cross-entropy), per-class and weighted precision/recall/F1 and the
/// confusion matrix of `model` on `data`, dropout off.
pub fn evaluate<B: Backend>(
    model: &Mlp<B>,
    data: &Dataset,
    config: &MlpConfig,
    device: &B::Device,
    batch_size: usize,
) -> EvaluationMetrics {
    let probabilities = predict_probabilities(model, data, config, device, batch_size);
    evaluation_of(&probabilities, data)
}

/// [`evaluate`]'s metrics from the probabilities a model gave for each row of `data`.
pub fn evaluation_of(probabilities: &[[f32; CLASSES]], data: &Dataset) -> EvaluationMetrics {
    let mut confusion = [[0usize; CLASSES]; CLASSES];
    let mut loss = 0.0;
    for (p, truth) in probabilities.iter().zip(&data.y) {
        let predicted = argmax(p);
        confusion[truth.index()][predicted] += 1;
        // Clamp as torch's log-softmax would never give log(0).
        loss -= f64::from(p[truth.index()]).max(1e-12).ln();
    }
    let rows = data.len();
    let correct: usize = (0..CLASSES).map(|c| confusion[c][c]).sum();
    let mut per_class = Vec::with_capacity(CLASSES);
    let (mut precision, mut recall, mut f1) = (0.0, 0.0, 0.0);
    for label in Label::ALL {
        let c = label.index();
        let support: usize = confusion[c].iter().sum();
        let predicted: usize = (0..CLASSES).map(|t| confusion[t][c]).sum();
        let tp = confusion[c][c] as f64;
        // sklearn's zero_division=0.
        let p = if predicted > 0 {
            tp / predicted as f64
        } else {
            0.0
        };
        let r = if support > 0 {
            tp / support as f64
        } else {
            0.0
        };
        let f = if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        };
        let weight = support as f64 / rows.max(1) as f64;
        precision += weight * p;
        recall += weight * r;
        f1 += weight * f;
        per_class.push(ClassMetrics {
            label,
            precision: p,
            recall: r,
            f1: f,
            support,
        });
    }
    EvaluationMetrics {
        rows,
        accuracy: correct as f64 / rows.max(1) as f64,
        loss: loss / rows.max(1) as f64,
        per_class,
        precision,
        recall,
        f1_score: f1,
        confusion_matrix: confusion,
    }
}

/// Index of the largest value; the first on ties.
pub fn argmax(p: &[f32; CLASSES]) -> usize {
    let mut best = 0;
    for (i, v) in p.iter().enumerate() {
        if *v > p[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::{LrScheduler, TrainingHyperparameters};

    fn schedule(
        kind: LrSchedulerKind,
        step_size: Option<usize>,
        gamma: Option<f64>,
    ) -> LearningRate {
        LearningRate::new(&TrainingHyperparameters {
            learning_rate: 0.1,
            lr_scheduler: Some(LrScheduler {
                kind,
                step_size,
                gamma,
                factor: None,
                patience: Some(1),
            }),
            ..TrainingHyperparameters::default()
        })
    }

    #[test]
    fn step_schedule() {
        // step 2, gamma 0.5: epochs 1-2 at 0.1, 3-4 at 0.05, 5 at 0.025.
        let mut lr = schedule(LrSchedulerKind::Step, Some(2), Some(0.5));
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(lr.current());
            lr.after_epoch(1.0);
        }
        assert_eq!(seen, vec![0.1, 0.1, 0.05, 0.05, 0.025]);
    }

    #[test]
    fn exponential_and_plateau_schedules() {
        let mut lr = schedule(LrSchedulerKind::Exponential, None, Some(0.5));
        lr.after_epoch(1.0);
        lr.after_epoch(1.0);
        assert!((lr.current() - 0.025).abs() < 1e-15);
        // Plateau, patience 1, factor 0.5: halves after 2 epochs without a better val loss.
        let mut lr = schedule(LrSchedulerKind::ReduceOnPlateau, None, None);
        lr.after_epoch(1.0); // best
        lr.after_epoch(1.0); // 1 bad epoch: not more than patience
        assert_eq!(lr.current(), 0.1);
        lr.after_epoch(1.5); // 2 bad epochs
        assert_eq!(lr.current(), 0.05);
    }

    #[test]
    fn argmax_prefers_the_first_on_ties() {
        assert_eq!(argmax(&[0.2, 0.5, 0.3]), 1);
        assert_eq!(argmax(&[0.4, 0.4, 0.2]), 0);
    }

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let mut a: Vec<usize> = (0..100).collect();
        let mut b = a.clone();
        shuffle(&mut a, &mut SplitMix64::new(9));
        shuffle(&mut b, &mut SplitMix64::new(9));
        assert_eq!(a, b);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(a, sorted);
    }
}

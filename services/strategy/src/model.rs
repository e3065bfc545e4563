//! The MLP: for each hidden size `Linear → activation → Dropout`, then `Linear(…, 3)` logits,
//! as the original's `ktrdr/neural/models/mlp.py`; optionally a symbol embedding concatenated
//! to the input (the original's `MultiSymbolMLP`).
//!
//! Dropout is inverted dropout as torch's (kept activations scaled by `1 / (1 - p)`), only in
//! [`Mlp::forward_training`]. Its masks come from the caller's seeded [`SplitMix64`] on the host,
//! not from the backend's RNG: a seed gives the same masks on every backend and in every thread,
//! and drawing them costs a fraction of the backend's per-element Bernoulli sampling.
//!
//! Generic over the burn backend: [`CpuBackend`] (ndarray) by default, `GpuBackend`
//! (burn-cuda) with the `cuda` feature; [`crate::compute::Compute`] chooses between them at run
//! time.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::activation;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::strategy::{Activation, LoadedStrategy};
use crate::synthetic::SplitMix64;

/// The CPU backend.
pub type CpuBackend = burn::backend::NdArray<f32>;
/// The GPU backend (`cuda` feature).
#[cfg(feature = "cuda")]
pub type GpuBackend = burn::backend::Cuda<f32, i32>;

/// Output classes: BUY, HOLD, SELL.
pub const CLASSES: usize = 3;

/// Everything needed to rebuild the network's shape (saved in `config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpConfig {
    pub input_size: usize,
    pub hidden_layers: Vec<usize>,
    pub activation: Activation,
    pub dropout: f64,
    /// Symbols the embedding knows, in index order; empty without an embedding.
    pub symbols: Vec<String>,
    pub symbol_embedding_dim: Option<usize>,
}

impl MlpConfig {
    pub fn from_strategy(strategy: &LoadedStrategy, input_size: usize) -> Self {
        let model = &strategy.config.model;
        let embedding = model.symbol_embedding_dim;
        Self {
            input_size,
            hidden_layers: model.architecture.hidden_layers.clone(),
            activation: model.architecture.activation,
            dropout: model.architecture.dropout,
            symbols: if embedding.is_some() {
                strategy.symbols()
            } else {
                Vec::new()
            },
            symbol_embedding_dim: embedding,
        }
    }

    /// `mlp_128_64_32`, as the original's `model_info.architecture`.
    pub fn architecture_name(&self) -> String {
        let sizes: Vec<String> = self.hidden_layers.iter().map(usize::to_string).collect();
        format!("mlp_{}", sizes.join("_"))
    }

    pub fn uses_embedding(&self) -> bool {
        self.symbol_embedding_dim.is_some() && !self.symbols.is_empty()
    }

    /// A freshly initialised network (weights from the backend's seeded RNG).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Mlp<B> {
        let embedding = match self.symbol_embedding_dim {
            Some(dim) if !self.symbols.is_empty() => {
                Some(EmbeddingConfig::new(self.symbols.len(), dim).init(device))
            }
            _ => None,
        };
        let mut width = self.input_size
            + embedding
                .as_ref()
                .map_or(0, |_| self.symbol_embedding_dim.unwrap_or(0));
        let mut hidden = Vec::with_capacity(self.hidden_layers.len());
        for &size in &self.hidden_layers {
            hidden.push(LinearConfig::new(width, size).init(device));
            width = size;
        }
        Mlp {
            hidden,
            output: LinearConfig::new(width, CLASSES).init(device),
            embedding,
            dropout: DropoutConfig::new(self.dropout).init(),
            activation: self.activation,
        }
    }
}

/// The network.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    hidden: Vec<Linear<B>>,
    output: Linear<B>,
    embedding: Option<Embedding<B>>,
    /// Holds the dropout probability; burn's module, so saved records keep their fields.
    dropout: Dropout,
    #[module(skip)]
    activation: Activation,
}

impl<B: Backend> Mlp<B> {
    /// Logits `[batch, 3]` for features `[batch, input_size]` and, with an embedding, the rows'
    /// symbol indices `[batch]`; no dropout (evaluation and inference).
    pub fn forward(
        &self,
        features: Tensor<B, 2>,
        symbols: Option<Tensor<B, 1, Int>>,
    ) -> Tensor<B, 2> {
        self.logits(features, symbols, None)
    }

    /// [`Mlp::forward`] with dropout after each hidden layer, its masks drawn from `rng`.
    pub fn forward_training(
        &self,
        features: Tensor<B, 2>,
        symbols: Option<Tensor<B, 1, Int>>,
        rng: &mut SplitMix64,
    ) -> Tensor<B, 2> {
        self.logits(features, symbols, Some(rng))
    }

    fn logits(
        &self,
        features: Tensor<B, 2>,
        symbols: Option<Tensor<B, 1, Int>>,
        mut dropout: Option<&mut SplitMix64>,
    ) -> Tensor<B, 2> {
        let mut x = features;
        if let (Some(embedding), Some(symbols)) = (&self.embedding, symbols) {
            let [batch] = symbols.dims();
            let embedded = embedding.forward(symbols.reshape([batch, 1]));
            let [_, _, dim] = embedded.dims();
            x = Tensor::cat(vec![x, embedded.reshape([batch, dim])], 1);
        }
        for layer in &self.hidden {
            x = layer.forward(x);
            x = match self.activation {
                Activation::Relu => activation::relu(x),
                Activation::Tanh => activation::tanh(x),
                Activation::Sigmoid => activation::sigmoid(x),
                // torch's default negative slope, as the original used.
                Activation::LeakyRelu => activation::leaky_relu(x, 0.01),
            };
            if let Some(rng) = dropout.as_deref_mut() {
                x = drop_out(x, self.dropout.prob, rng);
            }
        }
        self.output.forward(x)
    }

    pub fn has_embedding(&self) -> bool {
        self.embedding.is_some()
    }
}

/// Inverted dropout of `x` with probability `prob` (in [0, 1)): each element is kept with
/// probability `1 - prob`, resolved to 1/65 536, and scaled by `1 / (1 - prob)`.
fn drop_out<B: Backend>(x: Tensor<B, 2>, prob: f64, rng: &mut SplitMix64) -> Tensor<B, 2> {
    if prob <= 0.0 {
        return x;
    }
    let [rows, cols] = x.dims();
    let n = rows * cols;
    let keep = 1.0 - prob;
    let threshold = (keep * 65_536.0).round() as u64;
    let scale = (1.0 / keep) as f32;
    let draw = |bits: u64, i: usize| {
        if (bits >> (16 * i)) & 0xFFFF < threshold {
            scale
        } else {
            0.0
        }
    };
    let mut mask = vec![0.0_f32; n];
    // Four 16-bit uniforms per draw.
    let mut chunks = mask.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let bits = rng.next_u64();
        chunk.copy_from_slice(&[draw(bits, 0), draw(bits, 1), draw(bits, 2), draw(bits, 3)]);
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let bits = rng.next_u64();
        for (i, kept) in rest.iter_mut().enumerate() {
            *kept = draw(bits, i);
        }
    }
    let mask = Tensor::from_data(TensorData::new(mask, [rows, cols]), &x.device());
    x * mask
}

/// `rows × width` row-major `f32` values as a tensor.
pub fn float_tensor<B: Backend>(
    values: &[f32],
    rows: usize,
    width: usize,
    device: &B::Device,
) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(values.to_vec(), [rows, width]), device)
}

/// Integer indices as a 1-D tensor.
pub fn int_tensor<B: Backend>(values: &[i64], device: &B::Device) -> Tensor<B, 1, Int> {
    Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), device)
}

/// A tensor's values as `f32`.
pub fn to_f32_vec<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .unwrap_or_default()
}

/// An integer tensor's values as `i64`.
pub fn to_i64_vec<B: Backend, const D: usize>(tensor: Tensor<B, D, Int>) -> Vec<i64> {
    tensor
        .into_data()
        .convert::<i64>()
        .to_vec::<i64>()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ones(rows: usize, cols: usize) -> Tensor<CpuBackend, 2> {
        float_tensor::<CpuBackend>(&vec![1.0; rows * cols], rows, cols, &Default::default())
    }

    #[test]
    fn dropout_keeps_about_one_minus_p_scaled_up_and_the_same_seed_gives_the_same_mask() {
        let (rows, cols) = (250, 103); // a count of elements that is not a multiple of four
        let mask = |seed| to_f32_vec(drop_out(ones(rows, cols), 0.2, &mut SplitMix64::new(seed)));
        let first = mask(7);
        assert!(
            first.iter().all(|&v| v == 0.0 || (v - 1.25).abs() < 1e-6),
            "kept values are scaled by 1 / (1 - p)"
        );
        let kept = first.iter().filter(|&&v| v > 0.0).count() as f64 / first.len() as f64;
        assert!((kept - 0.8).abs() < 0.01, "kept {kept}");
        assert_eq!(first, mask(7));
        assert_ne!(first, mask(8));
        // The last two elements (past the last whole draw of four) are drawn too.
        let tails: Vec<f32> = (0..32)
            .flat_map(|seed| mask(seed)[rows * cols - 2..].to_vec())
            .collect();
        assert!(tails.iter().any(|&v| v > 0.0) && tails.contains(&0.0));
    }

    #[test]
    fn no_dropout_outside_training_and_none_at_p_zero() {
        let config = MlpConfig {
            input_size: 4,
            hidden_layers: vec![8],
            activation: Activation::Relu,
            dropout: 0.5,
            symbols: Vec::new(),
            symbol_embedding_dim: None,
        };
        let model = config.init::<CpuBackend>(&Default::default());
        let x = ones(16, 4);
        let plain = to_f32_vec(model.forward(x.clone(), None));
        assert_eq!(plain, to_f32_vec(model.forward(x.clone(), None)));
        let trained = to_f32_vec(model.forward_training(x, None, &mut SplitMix64::new(1)));
        assert_ne!(plain, trained, "training drops activations");
        let untouched = to_f32_vec(drop_out(ones(3, 3), 0.0, &mut SplitMix64::new(1)));
        assert_eq!(untouched, vec![1.0; 9]);
    }
}

//! The MLP: for each hidden size `Linear → activation → Dropout`, then `Linear(…, 3)` logits,
//! as the original's `ktrdr/neural/models/mlp.py`; optionally a symbol embedding concatenated
//! to the input (the original's `MultiSymbolMLP`).
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
    dropout: Dropout,
    #[module(skip)]
    activation: Activation,
}

impl<B: Backend> Mlp<B> {
    /// Logits `[batch, 3]` for features `[batch, input_size]` and, with an embedding, the rows'
    /// symbol indices `[batch]`.
    pub fn forward(
        &self,
        features: Tensor<B, 2>,
        symbols: Option<Tensor<B, 1, Int>>,
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
            x = self.dropout.forward(x);
        }
        self.output.forward(x)
    }

    pub fn has_embedding(&self) -> bool {
        self.embedding.is_some()
    }
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

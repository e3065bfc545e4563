//! Strategy files: the original ktrdr v2 YAML format, loaded unchanged, and its later v3
//! grammar (indicators as a map, explicit `nn_inputs`; see [`v3`]), with the same validation.
//!
//! Loading has three outcomes:
//! - a value of the wrong type, or YAML that does not parse, is a [`StrategyError::Parse`] naming
//!   the YAML path (`model.architecture.dropout`);
//! - a value that breaks a rule (range, ordering, a fuzzy set naming no indicator…) is a
//!   [`StrategyError::Invalid`] naming the path and the rule;
//! - keys this crate does not know, and known keys whose value the pipeline ignores, are
//!   [`ConfigWarning`]s collected in [`LoadedStrategy::warnings`]; they never fail the load.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Result, StrategyError};
use crate::fuzzy::MembershipFunction;
use crate::indicators::{self, IndicatorDef};
pub use crate::spec::{ConfigWarning, FuzzySetKind, FuzzySetSpec, IndicatorSpec};
use ktrdr_market::{Timeframe, normalize_symbol};

pub mod v3;

pub use v3::{FuzzySetDefinition, NnInput, TimeframeSelection};

/// A strategy as written in its YAML file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategyConfig {
    pub name: String,
    pub description: Option<String>,
    /// `"2.0"` in the original files; numbers are accepted and kept as text.
    #[serde(default, deserialize_with = "string_or_number")]
    pub version: Option<String>,
    pub hypothesis: Option<String>,
    pub scope: Option<Scope>,
    pub training_data: TrainingData,
    pub deployment: Option<Deployment>,
    pub indicators: Vec<IndicatorSpec>,
    /// indicator id → set name → membership function. Sorted by name: the feature order
    /// follows it.
    #[serde(default)]
    pub fuzzy_sets: BTreeMap<String, BTreeMap<String, FuzzySetSpec>>,
    /// v3: the fuzzy sets, each naming its indicator, in file order; empty in v2 (which uses
    /// `fuzzy_sets`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fuzzy_set_definitions: Vec<FuzzySetDefinition>,
    /// v3: the network's inputs, in order; empty in v2 (every fuzzy set on every timeframe).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nn_inputs: Vec<NnInput>,
    pub model: ModelConfig,
    pub decisions: Option<Decisions>,
    pub training: TrainingConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Universal,
    SymbolGroup,
    SymbolSpecific,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingData {
    pub symbols: SymbolsConfig,
    pub timeframes: TimeframesConfig,
    /// Ignored by the original and by us (documented there as bars of history to load).
    pub history_required: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SymbolsConfig {
    pub mode: SymbolsMode,
    pub symbol: Option<String>,
    pub list: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SymbolsMode {
    Single,
    MultiSymbol,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeframesConfig {
    pub mode: TimeframesMode,
    pub timeframe: Option<Timeframe>,
    pub list: Option<Vec<Timeframe>>,
    pub base_timeframe: Option<Timeframe>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeframesMode {
    Single,
    MultiTimeframe,
}

/// Where a trained model may be used. Kept for round-tripping; the pipeline does not use it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub target_symbols: Option<TargetSymbols>,
    pub target_timeframes: Option<TargetTimeframes>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetSymbols {
    pub mode: String,
    pub symbols: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetTimeframes {
    pub mode: String,
    pub timeframe: Option<Timeframe>,
    pub list: Option<Vec<Timeframe>>,
    /// The original's shipped files list deployment timeframes under this key.
    pub supported: Option<Vec<Timeframe>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    #[serde(default = "default_model_type", rename = "type")]
    pub model_type: String,
    pub architecture: Architecture,
    #[serde(default)]
    pub features: FeatureOptions,
    #[serde(default)]
    pub training: TrainingHyperparameters,
    pub symbol_embedding_dim: Option<usize>,
    /// Informational in the original (recomputed); checked against our count with a warning.
    pub input_size: Option<usize>,
}

fn default_model_type() -> String {
    "mlp".to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Architecture {
    pub hidden_layers: Vec<usize>,
    #[serde(default)]
    pub activation: Activation,
    /// The model always outputs logits; probabilities come from softmax at prediction time.
    pub output_activation: Option<String>,
    #[serde(default = "default_dropout")]
    pub dropout: f64,
}

fn default_dropout() -> f64 {
    0.2
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    #[default]
    Relu,
    Tanh,
    Sigmoid,
    LeakyRelu,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeatureOptions {
    /// Ignored, as in the original (features are fuzzy memberships only).
    #[serde(default)]
    pub include_price_context: bool,
    #[serde(default)]
    pub lookback_periods: usize,
    /// Ignored, as in the original: memberships are already in [0, 1].
    #[serde(default)]
    pub scale_features: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingHyperparameters {
    #[serde(default = "default_learning_rate")]
    pub learning_rate: f64,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    #[serde(default)]
    pub optimizer: Optimizer,
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    pub early_stopping: Option<EarlyStopping>,
    pub lr_scheduler: Option<LrScheduler>,
    pub gradient_clip: Option<f64>,
}

impl Default for TrainingHyperparameters {
    fn default() -> Self {
        Self {
            learning_rate: default_learning_rate(),
            batch_size: default_batch_size(),
            epochs: default_epochs(),
            optimizer: Optimizer::default(),
            weight_decay: default_weight_decay(),
            early_stopping: None,
            lr_scheduler: None,
            gradient_clip: None,
        }
    }
}

/// The largest learning rate a strategy or a request may set.
pub const MAX_LEARNING_RATE: f64 = 10.0;
/// The most epochs a strategy or a request may set.
pub const MAX_EPOCHS: usize = 100_000;
/// The largest batch a strategy or a request may set.
pub const MAX_BATCH_SIZE: usize = 1 << 20;
/// The most hidden layers a strategy or a request may set.
pub const MAX_HIDDEN_LAYERS: usize = 16;
/// The widest hidden layer a strategy or a request may set.
pub const MAX_LAYER_SIZE: usize = 65_536;

/// Checks hidden layer sizes against the limits every strategy and request share; `path` names
/// the list in the error (an index is appended for one bad size).
pub fn check_hidden_layers(path: &str, sizes: &[usize]) -> Result<()> {
    if sizes.is_empty() || sizes.len() > MAX_HIDDEN_LAYERS {
        return Err(StrategyError::invalid(
            path,
            format!("must list 1 to {MAX_HIDDEN_LAYERS} layer sizes"),
        ));
    }
    if let Some(i) = sizes.iter().position(|h| !(1..=MAX_LAYER_SIZE).contains(h)) {
        return Err(StrategyError::invalid(
            format!("{path}[{i}]"),
            format!("layer sizes must be from 1 to {MAX_LAYER_SIZE}"),
        ));
    }
    Ok(())
}

fn default_learning_rate() -> f64 {
    0.001
}
fn default_batch_size() -> usize {
    32
}
fn default_epochs() -> usize {
    100
}
fn default_weight_decay() -> f64 {
    0.0001
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Optimizer {
    #[default]
    Adam,
    Sgd,
    Rmsprop,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_patience")]
    pub patience: usize,
    #[serde(default = "default_monitor")]
    pub monitor: String,
    #[serde(default = "default_min_delta")]
    pub min_delta: f64,
}

fn default_true() -> bool {
    true
}
fn default_patience() -> usize {
    10
}
fn default_monitor() -> String {
    "val_loss".to_owned()
}
fn default_min_delta() -> f64 {
    1e-4
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrScheduler {
    #[serde(rename = "type")]
    pub kind: LrSchedulerKind,
    pub step_size: Option<usize>,
    pub gamma: Option<f64>,
    pub factor: Option<f64>,
    pub patience: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedulerKind {
    Step,
    Exponential,
    ReduceOnPlateau,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decisions {
    pub output_format: Option<String>,
    pub confidence_threshold: Option<f64>,
    pub position_awareness: Option<bool>,
    pub filters: Option<DecisionFilters>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionFilters {
    /// Bars between two signals (the original read it as hours; see §5.1 of the reference).
    pub min_signal_separation: Option<u32>,
    pub volume_filter: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingConfig {
    pub method: Option<String>,
    pub labels: LabelsConfig,
    pub data_split: DataSplit,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelsConfig {
    pub source: String,
    pub zigzag_threshold: f64,
    /// Ignored, as in the original: segment labels use only the threshold.
    pub label_lookahead: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DataSplit {
    pub train: f64,
    pub validation: f64,
    pub test: f64,
}

/// A validated strategy plus what loading it warned about.
#[derive(Debug, Clone)]
pub struct LoadedStrategy {
    pub config: StrategyConfig,
    /// Indicators resolved from `config.indicators`, in file order.
    pub indicators: Vec<IndicatorDef>,
    pub warnings: Vec<ConfigWarning>,
}

impl LoadedStrategy {
    /// Parses and validates a strategy from YAML text, v2 or v3 ([`v3`]).
    pub fn from_yaml_str(yaml: &str) -> Result<Self> {
        // YAML that does not parse is reported by the v2 parser, with its path.
        let v3 = serde_norway::from_str::<serde_norway::Value>(yaml).is_ok_and(|v| v3::is_v3(&v));
        let (mut config, mut warnings) = if v3 {
            let (file, warnings) = parse::<v3::StrategyFileV3>(yaml)?;
            (file.into_config(), warnings)
        } else {
            parse::<StrategyConfig>(yaml)?
        };
        normalise_names(&mut config)?;
        let indicators = validate(&config, &mut warnings)?;
        Ok(Self {
            config,
            indicators,
            warnings,
        })
    }

    /// Each fuzzy set's membership names: keyed by indicator id with sets by name in v2, by
    /// fuzzy set id with memberships in file order in v3.
    pub fn membership_names(&self) -> BTreeMap<String, Vec<String>> {
        if self.is_v3() {
            self.config
                .fuzzy_set_definitions
                .iter()
                .map(|s| {
                    (
                        s.id.clone(),
                        s.memberships.iter().map(|m| m.0.clone()).collect(),
                    )
                })
                .collect()
        } else {
            self.config
                .fuzzy_sets
                .iter()
                .map(|(k, v)| (k.clone(), v.keys().cloned().collect()))
                .collect()
        }
    }

    /// True for a v3 strategy (explicit `nn_inputs`).
    pub fn is_v3(&self) -> bool {
        !self.config.nn_inputs.is_empty() || !self.config.fuzzy_set_definitions.is_empty()
    }

    /// Validates an already parsed strategy (e.g. from a saved model's `config.json`).
    pub fn from_config(mut config: StrategyConfig) -> Result<Self> {
        normalise_names(&mut config)?;
        let mut warnings = Vec::new();
        let indicators = validate(&config, &mut warnings)?;
        Ok(Self {
            config,
            indicators,
            warnings,
        })
    }

    /// Reads, parses and validates a strategy file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| StrategyError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_yaml_str(&text)
    }

    /// The training symbols, in file order.
    pub fn symbols(&self) -> Vec<String> {
        let s = &self.config.training_data.symbols;
        match s.mode {
            SymbolsMode::Single => s.symbol.iter().cloned().collect(),
            SymbolsMode::MultiSymbol => s.list.clone().unwrap_or_default(),
        }
    }

    /// The timeframes, shortest (the base) first.
    pub fn timeframes(&self) -> Vec<Timeframe> {
        Self::timeframes_of(&self.config)
    }

    /// [`Self::timeframes`] of a configuration not yet validated.
    fn timeframes_of(config: &StrategyConfig) -> Vec<Timeframe> {
        let t = &config.training_data.timeframes;
        let mut list: Vec<Timeframe> = match t.mode {
            TimeframesMode::Single => t.timeframe.iter().copied().collect(),
            TimeframesMode::MultiTimeframe => t.list.clone().unwrap_or_default(),
        };
        list.sort();
        list.dedup();
        list
    }

    /// The timeframe labels and feature rows are on: the shortest one.
    pub fn base_timeframe(&self) -> Option<Timeframe> {
        self.timeframes().first().copied()
    }
}

/// Deserializes `yaml` as `T`, errors naming the YAML path, unknown keys as warnings.
fn parse<T: serde::de::DeserializeOwned>(yaml: &str) -> Result<(T, Vec<ConfigWarning>)> {
    let deserializer = serde_norway::Deserializer::from_str(yaml);
    let mut ignored = Vec::new();
    let mut on_ignored = |path: serde_ignored::Path| ignored.push(format_ignored_path(&path));
    let tracked = serde_ignored::Deserializer::new(deserializer, &mut on_ignored);
    let config: T = serde_path_to_error::deserialize(tracked).map_err(|e| {
        let path = display_path(e.path());
        let message = e.inner().to_string();
        // serde_norway already prefixes some messages with the path.
        let message = message
            .strip_prefix(&format!("{path}: "))
            .map(str::to_owned)
            .unwrap_or(message);
        StrategyError::Parse { path, message }
    })?;
    let warnings = ignored
        .into_iter()
        .map(|path| ConfigWarning {
            message: "unknown key, ignored".to_owned(),
            path,
        })
        .collect();
    Ok((config, warnings))
}

fn string_or_number<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<String>, D::Error> {
    let value = Option::<serde_norway::Value>::deserialize(deserializer)?;
    Ok(match value {
        None | Some(serde_norway::Value::Null) => None,
        Some(serde_norway::Value::String(s)) => Some(s),
        Some(serde_norway::Value::Number(n)) => Some(n.to_string()),
        Some(serde_norway::Value::Bool(b)) => Some(b.to_string()),
        Some(_) => {
            return Err(serde::de::Error::custom(
                "expected a version string or number",
            ));
        }
    })
}

/// `indicators[2].period` style, the way users read YAML.
fn display_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            serde_path_to_error::Segment::Map { key } => push_key(&mut out, key),
            serde_path_to_error::Segment::Enum { variant } => push_key(&mut out, variant),
            serde_path_to_error::Segment::Unknown => push_key(&mut out, "?"),
        }
    }
    if out.is_empty() {
        "(root)".to_owned()
    } else {
        out
    }
}

fn push_key(out: &mut String, key: &str) {
    if !out.is_empty() {
        out.push('.');
    }
    out.push_str(key);
}

fn format_ignored_path(path: &serde_ignored::Path) -> String {
    fn walk(path: &serde_ignored::Path, out: &mut String) {
        match path {
            serde_ignored::Path::Root => {}
            serde_ignored::Path::Seq { parent, index } => {
                walk(parent, out);
                out.push_str(&format!("[{index}]"));
            }
            serde_ignored::Path::Map { parent, key } => {
                walk(parent, out);
                push_key(out, key);
            }
            serde_ignored::Path::Some { parent }
            | serde_ignored::Path::NewtypeStruct { parent }
            | serde_ignored::Path::NewtypeVariant { parent } => walk(parent, out),
        }
    }
    let mut out = String::new();
    walk(path, &mut out);
    out
}

/// The names that become directories, made safe before anything else looks at them: `name`
/// names the model directory, so it must be a [`ktrdr_market::path::safe_name`]; each training
/// symbol is normalised the way every service spells it (`EUR/USD` → `EURUSD`), and one that
/// cannot be (`/EURUSD`, `../x`) is an error naming its field.
fn normalise_names(config: &mut StrategyConfig) -> Result<()> {
    ktrdr_market::path::safe_name(&config.name).map_err(|why| {
        StrategyError::invalid("name", format!("{why} (it names the model directory)"))
    })?;
    let symbols = &mut config.training_data.symbols;
    if let Some(symbol) = symbols.symbol.as_mut()
        && !symbol.trim().is_empty()
    {
        *symbol = normalize_symbol(symbol)
            .map_err(|why| StrategyError::invalid("training_data.symbols.symbol", why))?;
    }
    for (i, symbol) in symbols.list.iter_mut().flatten().enumerate() {
        if !symbol.trim().is_empty() {
            *symbol = normalize_symbol(symbol).map_err(|why| {
                StrategyError::invalid(format!("training_data.symbols.list[{i}]"), why)
            })?;
        }
    }
    Ok(())
}

/// The `list` under `path` of a `multi_<noun>` mode: it must name at least one `noun`.
fn listed<'a, T>(list: &'a Option<Vec<T>>, path: &str, noun: &str) -> Result<&'a [T]> {
    match list.as_deref() {
        Some(list) if !list.is_empty() => Ok(list),
        _ => Err(StrategyError::invalid(
            format!("{path}.list"),
            format!("must list at least one {noun} when mode is multi_{noun}"),
        )),
    }
}

/// Checks every rule the types cannot express and resolves the indicators.
fn validate(
    config: &StrategyConfig,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<Vec<IndicatorDef>> {
    let warn = |warnings: &mut Vec<ConfigWarning>, path: &str, message: &str| {
        warnings.push(ConfigWarning {
            path: path.to_owned(),
            message: message.to_owned(),
        })
    };
    // training_data.symbols
    let symbols = &config.training_data.symbols;
    match symbols.mode {
        SymbolsMode::Single => match &symbols.symbol {
            Some(s) if !s.trim().is_empty() => {}
            _ => {
                return Err(StrategyError::invalid(
                    "training_data.symbols.symbol",
                    "required and non-empty when mode is single",
                ));
            }
        },
        SymbolsMode::MultiSymbol => {
            let list = listed(&symbols.list, "training_data.symbols", "symbol")?;
            let mut seen = BTreeSet::new();
            for (i, s) in list.iter().enumerate() {
                if s.trim().is_empty() || !seen.insert(s) {
                    return Err(StrategyError::invalid(
                        format!("training_data.symbols.list[{i}]"),
                        "symbols must be non-empty and unique",
                    ));
                }
            }
        }
    }

    // training_data.timeframes
    let timeframes = &config.training_data.timeframes;
    match timeframes.mode {
        TimeframesMode::Single => {
            if timeframes.timeframe.is_none() {
                return Err(StrategyError::invalid(
                    "training_data.timeframes.timeframe",
                    "required when mode is single",
                ));
            }
        }
        TimeframesMode::MultiTimeframe => {
            let list = listed(&timeframes.list, "training_data.timeframes", "timeframe")?;
            if let Some(base) = timeframes.base_timeframe {
                let shortest = list.iter().min().copied();
                if shortest != Some(base) {
                    return Err(StrategyError::invalid(
                        "training_data.timeframes.base_timeframe",
                        "must be the shortest timeframe of the list (labels and feature rows \
                         are on the base timeframe; higher timeframes are joined onto it)",
                    ));
                }
            }
        }
    }
    if config.training_data.history_required.is_some() {
        warn(
            warnings,
            "training_data.history_required",
            "ignored: the caller decides how much history to load",
        );
    }

    // indicators
    if config.indicators.is_empty() {
        return Err(StrategyError::invalid(
            "indicators",
            "must list at least one indicator",
        ));
    }
    let is_v3 = !config.nn_inputs.is_empty() || !config.fuzzy_set_definitions.is_empty();
    let mut defs = Vec::with_capacity(config.indicators.len());
    for (i, spec) in config.indicators.iter().enumerate() {
        let path = if is_v3 {
            format!("indicators.{}", spec.id())
        } else {
            format!("indicators[{i}]")
        };
        let (def, param_warnings) = indicators::resolve(spec, &path)?;
        warnings.extend(param_warnings);
        defs.push(def);
    }

    if is_v3 {
        validate_v3(config, &defs, warnings)?;
    } else {
        validate_v2_fuzzy_sets(config, &defs, warnings)?;
    }
    validate_model_and_training(config, warnings)?;
    Ok(defs)
}

/// A v3 file's fuzzy sets and `nn_inputs` ([`v3`]): every reference resolves, every input is
/// on a training timeframe and appears once; unused fuzzy sets and indicators are warnings.
fn validate_v3(
    config: &StrategyConfig,
    defs: &[IndicatorDef],
    warnings: &mut Vec<ConfigWarning>,
) -> Result<()> {
    if !config.fuzzy_sets.is_empty() {
        return Err(StrategyError::invalid(
            "fuzzy_sets",
            "a v3 strategy (nn_inputs, or indicators as a map) defines fuzzy sets with an \
             `indicator:` each",
        ));
    }
    if config.fuzzy_set_definitions.is_empty() {
        return Err(StrategyError::invalid(
            "fuzzy_sets",
            "must define at least one fuzzy set: features are fuzzy memberships only",
        ));
    }
    let known = || {
        defs.iter()
            .map(|d| d.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for set in &config.fuzzy_set_definitions {
        let path = format!("fuzzy_sets.{}", set.id);
        let (id, output) = set.indicator_ref();
        let matching: Vec<&IndicatorDef> = defs.iter().filter(|d| d.id == id).collect();
        let def = match matching.as_slice() {
            [def] => *def,
            [] => {
                return Err(StrategyError::invalid(
                    format!("{path}.indicator"),
                    format!("no indicator has the id {id:?} (known: {})", known()),
                ));
            }
            _ => {
                return Err(StrategyError::invalid(
                    format!("{path}.indicator"),
                    format!("{} indicators have the id {id:?}", matching.len()),
                ));
            }
        };
        if let Some(reason) = def.kind.not_a_feature_reason() {
            return Err(StrategyError::invalid(format!("{path}.indicator"), reason));
        }
        if let Some(output) = output {
            let names = def.kind.output_names();
            if !names.iter().any(|n| n == output) {
                return Err(StrategyError::invalid(
                    format!("{path}.indicator"),
                    format!(
                        "indicator {id:?} has no output {output:?} (its outputs: {})",
                        names.join(", ")
                    ),
                ));
            }
        }
        if set.memberships.is_empty() {
            return Err(StrategyError::invalid(
                &path,
                "must define at least one membership function besides `indicator`",
            ));
        }
        for (name, spec) in &set.memberships {
            MembershipFunction::from_spec(spec, &format!("{path}.{name}.parameters"))?;
        }
    }
    if config.nn_inputs.is_empty() {
        return Err(StrategyError::invalid(
            "nn_inputs",
            "required in a v3 strategy: list the fuzzy sets the network receives and on which \
             timeframes (`- {fuzzy_set: rsi_fast, timeframes: all}`)",
        ));
    }
    let training_timeframes = LoadedStrategy::timeframes_of(config);
    let mut seen = BTreeSet::new();
    for (i, input) in config.nn_inputs.iter().enumerate() {
        let path = format!("nn_inputs[{i}]");
        if !config
            .fuzzy_set_definitions
            .iter()
            .any(|s| s.id == input.fuzzy_set)
        {
            return Err(StrategyError::invalid(
                format!("{path}.fuzzy_set"),
                format!(
                    "no fuzzy set {:?} (known: {})",
                    input.fuzzy_set,
                    config
                        .fuzzy_set_definitions
                        .iter()
                        .map(|s| s.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let timeframes = match &input.timeframes {
            TimeframeSelection::All => training_timeframes.clone(),
            TimeframeSelection::List(list) => list.clone(),
        };
        if timeframes.is_empty() {
            return Err(StrategyError::invalid(
                format!("{path}.timeframes"),
                "must name at least one timeframe, or be `all`",
            ));
        }
        for (j, tf) in timeframes.iter().enumerate() {
            if !training_timeframes.contains(tf) {
                return Err(StrategyError::invalid(
                    format!("{path}.timeframes[{j}]"),
                    format!(
                        "{tf} is not a training timeframe ({})",
                        training_timeframes
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            if !seen.insert((input.fuzzy_set.clone(), *tf)) {
                return Err(StrategyError::invalid(
                    format!("{path}.timeframes[{j}]"),
                    format!(
                        "{} on {tf} is already an input (its features would appear twice)",
                        input.fuzzy_set
                    ),
                ));
            }
        }
    }
    for set in &config.fuzzy_set_definitions {
        if !config.nn_inputs.iter().any(|i| i.fuzzy_set == set.id) {
            warnings.push(ConfigWarning {
                path: format!("fuzzy_sets.{}", set.id),
                message: format!(
                    "fuzzy set {:?} is in no nn_inputs entry, so the network never sees it",
                    set.id
                ),
            });
        }
    }
    for def in defs {
        if !config
            .fuzzy_set_definitions
            .iter()
            .any(|s| s.indicator_ref().0 == def.id)
        {
            warnings.push(ConfigWarning {
                path: def.path.clone(),
                message: format!(
                    "indicator {:?} is read by no fuzzy set, so it is not used",
                    def.id
                ),
            });
        }
    }
    Ok(())
}

/// A v2 file's `fuzzy_sets`: keyed by indicator id, each naming exactly one indicator.
fn validate_v2_fuzzy_sets(
    config: &StrategyConfig,
    defs: &[IndicatorDef],
    warnings: &mut Vec<ConfigWarning>,
) -> Result<()> {
    let warn = |warnings: &mut Vec<ConfigWarning>, path: &str, message: &str| {
        warnings.push(ConfigWarning {
            path: path.to_owned(),
            message: message.to_owned(),
        })
    };
    if config.fuzzy_sets.is_empty() {
        return Err(StrategyError::invalid(
            "fuzzy_sets",
            "must define at least one fuzzy set: features are fuzzy memberships only",
        ));
    }
    for (key, sets) in &config.fuzzy_sets {
        let path = format!("fuzzy_sets.{key}");
        let matching: Vec<&IndicatorDef> = defs.iter().filter(|d| d.id == *key).collect();
        match matching.len() {
            0 => {
                return Err(StrategyError::invalid(
                    &path,
                    format!(
                        "no indicator has the name or feature_id {key:?} (known: {})",
                        defs.iter()
                            .map(|d| d.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            1 => {}
            _ => {
                return Err(StrategyError::invalid(
                    &path,
                    format!(
                        "{} indicators are called {key:?}; give each a distinct feature_id",
                        matching.len()
                    ),
                ));
            }
        }
        if let Some(def) = matching.first()
            && let Some(reason) = def.kind.not_a_feature_reason()
        {
            return Err(StrategyError::invalid(&path, reason));
        }
        if sets.is_empty() {
            return Err(StrategyError::invalid(
                &path,
                "must define at least one set",
            ));
        }
        for (set_name, spec) in sets {
            MembershipFunction::from_spec(spec, &format!("{path}.{set_name}.parameters"))?;
        }
    }
    for def in defs {
        if !config.fuzzy_sets.contains_key(&def.id) {
            warn(
                warnings,
                &def.path,
                &format!(
                    "indicator {:?} has no fuzzy sets, so it is computed but not used",
                    def.id
                ),
            );
        }
    }
    Ok(())
}

/// The sections v2 and v3 share: model, decisions, training.
fn validate_model_and_training(
    config: &StrategyConfig,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<()> {
    let warn = |warnings: &mut Vec<ConfigWarning>, path: &str, message: &str| {
        warnings.push(ConfigWarning {
            path: path.to_owned(),
            message: message.to_owned(),
        })
    };
    let timeframes = &config.training_data.timeframes;

    // model
    let model = &config.model;
    if model.model_type != "mlp" {
        return Err(StrategyError::invalid(
            "model.type",
            "only \"mlp\" is supported",
        ));
    }
    let arch = &model.architecture;
    check_hidden_layers("model.architecture.hidden_layers", &arch.hidden_layers)?;
    if !(0.0..1.0).contains(&arch.dropout) {
        return Err(StrategyError::invalid(
            "model.architecture.dropout",
            "must be in [0, 1)",
        ));
    }
    if let Some(out) = &arch.output_activation
        && out != "softmax"
    {
        warn(
            warnings,
            "model.architecture.output_activation",
            "ignored: the model outputs logits and predictions use softmax",
        );
    }
    if model.features.include_price_context {
        warn(
            warnings,
            "model.features.include_price_context",
            "ignored, as in the original: features are fuzzy memberships only",
        );
    }
    if model.features.scale_features {
        warn(
            warnings,
            "model.features.scale_features",
            "ignored, as in the original: memberships are already in [0, 1]",
        );
    }
    if model.features.lookback_periods > 1_000 {
        return Err(StrategyError::invalid(
            "model.features.lookback_periods",
            "must be at most 1000",
        ));
    }
    if model.symbol_embedding_dim == Some(0) {
        return Err(StrategyError::invalid(
            "model.symbol_embedding_dim",
            "must be at least 1 when given",
        ));
    }
    let hp = &model.training;
    if !(hp.learning_rate.is_finite()
        && hp.learning_rate > 0.0
        && hp.learning_rate <= MAX_LEARNING_RATE)
    {
        return Err(StrategyError::invalid(
            "model.training.learning_rate",
            format!("must be a positive number up to {MAX_LEARNING_RATE}"),
        ));
    }
    if !(1..=MAX_BATCH_SIZE).contains(&hp.batch_size) {
        return Err(StrategyError::invalid(
            "model.training.batch_size",
            format!("must be from 1 to {MAX_BATCH_SIZE}"),
        ));
    }
    if !(1..=MAX_EPOCHS).contains(&hp.epochs) {
        return Err(StrategyError::invalid(
            "model.training.epochs",
            format!("must be from 1 to {MAX_EPOCHS}"),
        ));
    }
    if !(hp.weight_decay.is_finite() && hp.weight_decay >= 0.0) {
        return Err(StrategyError::invalid(
            "model.training.weight_decay",
            "must be zero or positive",
        ));
    }
    if let Some(es) = &hp.early_stopping {
        if !["val_loss", "val_accuracy"].contains(&es.monitor.as_str()) {
            return Err(StrategyError::invalid(
                "model.training.early_stopping.monitor",
                "must be val_loss or val_accuracy",
            ));
        }
        if es.patience == 0 {
            return Err(StrategyError::invalid(
                "model.training.early_stopping.patience",
                "must be at least 1",
            ));
        }
    }
    if let Some(clip) = hp.gradient_clip
        && !(clip.is_finite() && clip > 0.0)
    {
        return Err(StrategyError::invalid(
            "model.training.gradient_clip",
            "must be a positive number",
        ));
    }

    // decisions
    if let Some(decisions) = &config.decisions
        && let Some(t) = decisions.confidence_threshold
        && !(0.0..=1.0).contains(&t)
    {
        return Err(StrategyError::invalid(
            "decisions.confidence_threshold",
            "must be in [0, 1]",
        ));
    }

    // training
    let labels = &config.training.labels;
    if labels.source != "zigzag" {
        return Err(StrategyError::invalid(
            "training.labels.source",
            "only \"zigzag\" is supported",
        ));
    }
    if !(labels.zigzag_threshold > 0.0 && labels.zigzag_threshold < 1.0) {
        return Err(StrategyError::invalid(
            "training.labels.zigzag_threshold",
            "must be a fraction in (0, 1), e.g. 0.02 for 2 %",
        ));
    }
    if labels.label_lookahead.is_some() {
        warn(
            warnings,
            "training.labels.label_lookahead",
            "ignored, as in the original: segment labels use only the threshold",
        );
    }
    let split = config.training.data_split;
    for (name, value) in [
        ("train", split.train),
        ("validation", split.validation),
        ("test", split.test),
    ] {
        if !(0.0..=1.0).contains(&value) {
            return Err(StrategyError::invalid(
                format!("training.data_split.{name}"),
                "must be a fraction in [0, 1]",
            ));
        }
    }
    if split.train <= 0.0 {
        return Err(StrategyError::invalid(
            "training.data_split.train",
            "must be above 0",
        ));
    }
    let total = split.train + split.validation + split.test;
    if (total - 1.0).abs() > 1e-6 {
        return Err(StrategyError::invalid(
            "training.data_split",
            format!("train + validation + test must sum to 1 (they sum to {total})"),
        ));
    }
    if let Some(declared) = model.input_size {
        let timeframe_count = match timeframes.mode {
            TimeframesMode::Single => 1,
            TimeframesMode::MultiTimeframe => timeframes
                .list
                .iter()
                .flatten()
                .collect::<BTreeSet<_>>()
                .len(),
        };
        let per_row: usize = if config.nn_inputs.is_empty() {
            let sets: usize = config.fuzzy_sets.values().map(BTreeMap::len).sum();
            sets * timeframe_count
        } else {
            config
                .nn_inputs
                .iter()
                .map(|input| {
                    let memberships = config
                        .fuzzy_set_definitions
                        .iter()
                        .find(|s| s.id == input.fuzzy_set)
                        .map_or(0, |s| s.memberships.len());
                    let timeframes = match &input.timeframes {
                        TimeframeSelection::All => timeframe_count,
                        TimeframeSelection::List(list) => list.len(),
                    };
                    memberships * timeframes
                })
                .sum()
        };
        let computed = per_row * (1 + model.features.lookback_periods);
        if declared != computed {
            warn(
                warnings,
                "model.input_size",
                &format!(
                    "ignored: the features give {computed} inputs \
                     (memberships × timeframes × (1 + lookback_periods)), not {declared}"
                ),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

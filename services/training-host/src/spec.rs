//! Turning a `StartTrainingRequest` into a fully resolved [`SessionSpec`], and a spec back into
//! the strategy it trains. Everything a bad request can be caught on is checked here, before a
//! session exists, so `StartTraining` fails fast with `INVALID_ARGUMENT` / `NOT_FOUND`.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;

use ktrdr_common::market::{symbol_field, time_range};
use ktrdr_market::Timeframe;
use ktrdr_proto::training::v1 as pb;
use ktrdr_strategy::LoadedStrategy;
use ktrdr_strategy::strategy::{
    MAX_BATCH_SIZE, MAX_EPOCHS, MAX_LEARNING_RATE, SymbolsConfig, SymbolsMode, TimeframesConfig,
    TimeframesMode, check_hidden_layers,
};

use crate::device::DeviceRequest;
use crate::error::{Result, TrainingError};
use crate::record::SessionSpec;

/// Reads a strategy file named `name` (with or without `.yaml`) under `dir`. Names are safe
/// file names ([`ktrdr_market::path::safe_name`]), so a request cannot read outside the
/// directory.
pub fn read_named_strategy(dir: &Path, name: &str) -> Result<String> {
    let stem = name.strip_suffix(".yaml").unwrap_or(name);
    let path = ktrdr_market::path::safe_name(stem)
        .and_then(|stem| ktrdr_market::path::join_under(dir, format!("{stem}.yaml")))
        .map_err(|why| {
            TrainingError::invalid(
                "strategy_name",
                format!("not a strategy file name (e.g. \"neuro_mean_reversion\"): {why}"),
            )
        })?;
    std::fs::read_to_string(&path).map_err(|_| TrainingError::StrategyNotFound {
        name: name.to_owned(),
        path: path.display().to_string(),
    })
}

/// Parses `yaml` and applies the spec's overrides; the result is what gets trained and saved.
pub fn strategy_of(spec: &SessionSpec) -> Result<LoadedStrategy> {
    let base = LoadedStrategy::from_yaml_str(&spec.strategy_yaml)?;
    let mut config = base.config;
    let timeframes = spec
        .timeframes
        .iter()
        .map(|t| t.parse::<Timeframe>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| TrainingError::invalid("timeframes", e.to_string()))?;
    config.training_data.symbols = match spec.symbols.as_slice() {
        [one] => SymbolsConfig {
            mode: SymbolsMode::Single,
            symbol: Some(one.clone()),
            list: None,
        },
        many => SymbolsConfig {
            mode: SymbolsMode::MultiSymbol,
            symbol: None,
            list: Some(many.to_vec()),
        },
    };
    config.training_data.timeframes = match timeframes.as_slice() {
        [one] => TimeframesConfig {
            mode: TimeframesMode::Single,
            timeframe: Some(*one),
            list: None,
            base_timeframe: None,
        },
        many => TimeframesConfig {
            mode: TimeframesMode::MultiTimeframe,
            timeframe: None,
            list: Some(many.to_vec()),
            base_timeframe: many.iter().min().copied(),
        },
    };
    let hp = &mut config.model.training;
    hp.epochs = spec.epochs;
    hp.batch_size = spec.batch_size;
    hp.learning_rate = spec.learning_rate;
    if !spec.hidden_layers.is_empty() {
        config
            .model
            .architecture
            .hidden_layers
            .clone_from(&spec.hidden_layers);
    }
    Ok(LoadedStrategy::from_config(config)?)
}

fn positive<T: PartialOrd + Default + std::fmt::Display>(
    field: &str,
    v: Option<T>,
) -> Result<Option<T>> {
    match v {
        Some(v) if v <= T::default() => {
            Err(TrainingError::invalid(field, format!("{v} must be > 0")))
        }
        other => Ok(other),
    }
}

/// Validates `request` and resolves every default. `strategies_dir` serves `strategy_name`.
pub fn resolve(request: &pb::StartTrainingRequest, strategies_dir: &Path) -> Result<SessionSpec> {
    let yaml = match &request.strategy {
        Some(pb::start_training_request::Strategy::StrategyYaml(y)) if !y.trim().is_empty() => {
            y.clone()
        }
        Some(pb::start_training_request::Strategy::StrategyName(n)) => {
            read_named_strategy(strategies_dir, n)?
        }
        _ => {
            return Err(TrainingError::invalid(
                "strategy",
                "give strategy_yaml (the YAML text) or strategy_name (a file under strategies/)",
            ));
        }
    };
    let strategy = LoadedStrategy::from_yaml_str(&yaml)?;
    let symbols = if request.symbols.is_empty() {
        strategy.symbols()
    } else {
        request
            .symbols
            .iter()
            .enumerate()
            .map(|(i, s)| symbol_field(&format!("symbols[{i}]"), s).map_err(service_to_invalid))
            .collect::<Result<Vec<_>>>()?
    };
    if symbols.is_empty() {
        return Err(TrainingError::invalid(
            "symbols",
            "the strategy names no symbols; give them in the request",
        ));
    }
    let mut timeframes = if request.timeframes.is_empty() {
        strategy.timeframes()
    } else {
        request
            .timeframes
            .iter()
            .enumerate()
            .map(|(i, t)| {
                t.trim().parse::<Timeframe>().map_err(|_| {
                    TrainingError::invalid(
                        format!("timeframes[{i}]"),
                        format!(
                            "unknown timeframe {t:?}; accepted: 1m, 5m, 15m, 30m, 1h, 4h, 1d, 1w"
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?
    };
    timeframes.sort();
    timeframes.dedup();
    if timeframes.is_empty() {
        return Err(TrainingError::invalid(
            "timeframes",
            "the strategy names no timeframe",
        ));
    }
    let (start_ms, end_ms) =
        time_range("range", request.range.as_ref()).map_err(service_to_invalid)?;
    let hp = &strategy.config.model.training;
    let epochs = positive("epochs", request.epochs)?.map_or(hp.epochs, |e| e as usize);
    if epochs > MAX_EPOCHS {
        return Err(TrainingError::invalid(
            "epochs",
            format!("{epochs} is more than {MAX_EPOCHS}"),
        ));
    }
    let batch_size =
        positive("batch_size", request.batch_size)?.map_or(hp.batch_size, |b| b as usize);
    if batch_size > MAX_BATCH_SIZE {
        return Err(TrainingError::invalid(
            "batch_size",
            format!("{batch_size} is more than {MAX_BATCH_SIZE}"),
        ));
    }
    let learning_rate =
        positive("learning_rate", request.learning_rate)?.unwrap_or(hp.learning_rate);
    if !(learning_rate.is_finite() && learning_rate <= MAX_LEARNING_RATE) {
        return Err(TrainingError::invalid(
            "learning_rate",
            format!("{learning_rate} is not a finite number up to {MAX_LEARNING_RATE}"),
        ));
    }
    let hidden_layers: Vec<usize> = request
        .hidden_layers
        .iter()
        .map(|&h| usize::try_from(h).unwrap_or(0))
        .collect();
    if !hidden_layers.is_empty() {
        check_hidden_layers("hidden_layers", &hidden_layers).map_err(|e| match e {
            ktrdr_strategy::StrategyError::Invalid { path, rule } => {
                TrainingError::invalid(path, rule)
            }
            other => TrainingError::from(other),
        })?;
    }
    // Whether the host has the device is the manager's question (FAILED_PRECONDITION); here
    // only the spelling is checked.
    let raw_device = request.device.as_deref().unwrap_or_default();
    let device = DeviceRequest::parse(raw_device)
        .ok_or_else(|| {
            TrainingError::invalid(
                "device",
                format!(
                    "{raw_device:?} is not a device: use cpu, cuda or cuda:N, or leave it unset"
                ),
            )
        })?
        .to_string();
    let spec = SessionSpec {
        strategy_name: strategy.config.name.clone(),
        strategy_yaml: yaml,
        symbols,
        timeframes: timeframes.iter().map(ToString::to_string).collect(),
        start_ms,
        end_ms,
        epochs,
        batch_size,
        learning_rate,
        hidden_layers,
        seed: request.seed.unwrap_or_else(random_u64),
        device,
        labels: request
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
        // Set by the manager, which knows the earlier session.
        resumed_from: None,
        resume_checkpoint: None,
    };
    // The overrides must still give a valid strategy (e.g. fuzzy sets for every timeframe).
    strategy_of(&spec)?;
    Ok(spec)
}

fn service_to_invalid(e: ktrdr_common::ServiceError) -> TrainingError {
    match e {
        ktrdr_common::ServiceError::InvalidArgument {
            violations,
            message,
        } => match violations.first() {
            Some(v) => TrainingError::invalid(v.field.clone(), v.description.clone()),
            None => TrainingError::invalid("request", message),
        },
        other => TrainingError::internal(other.to_string()),
    }
}

/// 64 random bits from the standard library's per-process random hash keys (no RNG crate
/// needed for ids and seeds).
pub fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

/// A random (version 4) UUID.
pub fn new_session_id() -> String {
    let (a, b) = (random_u64(), random_u64());
    let a = (a & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000;
    let b = (b & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xFFFF,
        a & 0xFFFF,
        b >> 48,
        b & 0xFFFF_FFFF_FFFF
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const YAML: &str = r#"
name: "tiny"
training_data:
  symbols: { mode: "single", symbol: "EURUSD" }
  timeframes: { mode: "single", timeframe: "1h" }
indicators:
  - { name: "rsi", period: 14, source: "close" }
fuzzy_sets:
  rsi:
    low: { type: "triangular", parameters: [0, 20, 45] }
    high: { type: "triangular", parameters: [55, 80, 100] }
model:
  type: "mlp"
  architecture: { hidden_layers: [4], activation: "relu", dropout: 0.0 }
  training: { learning_rate: 0.01, batch_size: 32, epochs: 3, optimizer: "adam" }
training:
  labels: { source: "zigzag", zigzag_threshold: 0.01 }
  data_split: { train: 0.7, validation: 0.15, test: 0.15 }
"#;

    fn request(yaml: &str) -> pb::StartTrainingRequest {
        pb::StartTrainingRequest {
            strategy: Some(pb::start_training_request::Strategy::StrategyYaml(
                yaml.to_owned(),
            )),
            ..Default::default()
        }
    }

    fn field(err: TrainingError) -> String {
        match ktrdr_common::ServiceError::from(err) {
            ktrdr_common::ServiceError::InvalidArgument { violations, .. } => {
                violations[0].field.clone()
            }
            other => panic!("not INVALID_ARGUMENT: {other:?}"),
        }
    }

    #[test]
    fn defaults_come_from_the_strategy_and_overrides_reach_the_trained_strategy() {
        let dir = Path::new("/nonexistent");
        let spec = resolve(&request(YAML), dir).unwrap();
        assert_eq!(
            (spec.epochs, spec.batch_size, spec.symbols.clone()),
            (3, 32, vec!["EURUSD".to_owned()])
        );
        assert_eq!(spec.device, "", "unset: the host places it");
        let mut r = request(YAML);
        r.symbols = vec!["aapl".into(), "MSFT".into()];
        r.epochs = Some(7);
        r.batch_size = Some(8);
        r.seed = Some(5);
        r.hidden_layers = vec![16, 8];
        let spec = resolve(&r, dir).unwrap();
        let strategy = strategy_of(&spec).unwrap();
        assert_eq!(strategy.symbols(), ["AAPL", "MSFT"]);
        assert_eq!(strategy.config.model.architecture.hidden_layers, [16, 8]);
        assert_eq!(strategy.config.model.training.epochs, 7);
        assert_eq!(strategy.config.model.training.batch_size, 8);
        assert_eq!(spec.seed, 5);
    }

    #[test]
    fn bad_requests_name_the_field() {
        let dir = Path::new("/nonexistent");
        let bad = YAML.replace("period: 14", "period: -3");
        assert!(
            field(resolve(&request(&bad), dir).unwrap_err())
                .starts_with("strategy_yaml.indicators[0]")
        );
        let mut r = request(YAML);
        r.timeframes = vec!["2h".into()];
        assert_eq!(field(resolve(&r, dir).unwrap_err()), "timeframes[0]");
        let mut r = request(YAML);
        r.epochs = Some(0);
        assert_eq!(field(resolve(&r, dir).unwrap_err()), "epochs");
        let mut r = request(YAML);
        r.epochs = Some(i32::MAX);
        assert_eq!(field(resolve(&r, dir).unwrap_err()), "epochs");
        let mut r = request(YAML);
        r.learning_rate = Some(1e308);
        assert_eq!(field(resolve(&r, dir).unwrap_err()), "learning_rate");
        let mut r = request(YAML);
        r.batch_size = Some(i32::MAX);
        assert_eq!(field(resolve(&r, dir).unwrap_err()), "batch_size");
        let mut r = request(YAML);
        r.hidden_layers = vec![8, -1];
        assert_eq!(field(resolve(&r, dir).unwrap_err()), "hidden_layers[1]");
        let mut r = request(YAML);
        r.hidden_layers = vec![1; 17];
        assert_eq!(field(resolve(&r, dir).unwrap_err()), "hidden_layers");
        let mut r = request(YAML);
        r.device = Some("gpu0".into());
        assert_eq!(field(resolve(&r, dir).unwrap_err()), "device");
        // A well-spelt device passes here; whether the host has it is the manager's check.
        r.device = Some(" CUDA:1 ".into());
        assert_eq!(resolve(&r, dir).unwrap().device, "cuda:1");
        let r = pb::StartTrainingRequest::default();
        assert_eq!(field(resolve(&r, dir).unwrap_err()), "strategy");
    }

    #[test]
    fn timeframes_accept_the_same_spellings_as_every_other_service() {
        let dir = Path::new("/nonexistent");
        let mut r = request(YAML);
        r.timeframes = vec!["1H".into()];
        assert_eq!(resolve(&r, dir).unwrap().timeframes, ["1h"]);
        let upper = YAML.replace("timeframe: \"1h\"", "timeframe: \"1H\"");
        assert_ne!(upper, YAML);
        let spec = resolve(&request(&upper), dir).unwrap();
        assert_eq!(spec.timeframes, ["1h"]);
    }

    #[test]
    fn named_strategies_stay_inside_their_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tiny.yaml"), YAML).unwrap();
        assert_eq!(read_named_strategy(dir.path(), "tiny").unwrap(), YAML);
        assert_eq!(read_named_strategy(dir.path(), "tiny.yaml").unwrap(), YAML);
        assert!(matches!(
            read_named_strategy(dir.path(), "other"),
            Err(TrainingError::StrategyNotFound { .. })
        ));
        for bad in ["../tiny", "a/b", ".hidden", ""] {
            assert!(
                matches!(
                    read_named_strategy(dir.path(), bad),
                    Err(TrainingError::InvalidArgument { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn session_ids_are_version_4_uuids_and_differ() {
        let a = new_session_id();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(a, new_session_id());
    }
}

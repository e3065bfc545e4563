//! The original ktrdr's later strategy grammar ("v3"), loaded beside v2.
//!
//! A v3 file separates three things v2 ties together:
//! - `indicators` is a map: the key is the indicator id, `type` the calculation
//!   (`rsi_14: {type: rsi, period: 14}`);
//! - `fuzzy_sets` is a map of interpretations, each naming its indicator (`indicator: rsi_14`,
//!   or `indicator: bbands_20.upper` for one output of a multi-output indicator) beside its
//!   membership functions, in file order; a membership may be written short, `[a, b, c]`, for
//!   a triangle. Several fuzzy sets may read one indicator;
//! - `nn_inputs` (required) lists what the network receives: a fuzzy set and the timeframes to
//!   apply it on (`all`, or a list of training timeframes).
//!
//! Features are named `{timeframe}_{fuzzy_set}_{membership}` (always with the timeframe) and
//! ordered by `nn_inputs`, then the entry's timeframes, then the memberships in file order;
//! lags follow as in v2 ([`crate::features`]). Everything else (training data, model,
//! decisions, training) is the v2 schema, validated by the same rules.
//!
//! A v3 file becomes one [`StrategyConfig`]: its indicators as the v2 list (the id as
//! `feature_id`), its fuzzy sets as [`FuzzySetDefinition`]s and its inputs as [`NnInput`]s;
//! `config.json` of a saved model stores that form and reloads through the v2 path.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{
    Decisions, Deployment, FuzzySetKind, FuzzySetSpec, IndicatorSpec, ModelConfig, Scope,
    StrategyConfig, TrainingConfig, TrainingData, string_or_number,
};
use ktrdr_market::Timeframe;

/// A map that keeps its keys in file order (v3's memberships and fuzzy sets are ordered).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ordered<V>(pub Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Ordered<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for OrderedVisitor<V> {
            type Value = Ordered<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries: Vec<(String, V)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if entries.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format!("duplicate key {key:?}")));
                    }
                    let value = map.next_value()?;
                    entries.push((key, value));
                }
                Ok(Ordered(entries))
            }
        }
        deserializer.deserialize_map(OrderedVisitor(PhantomData))
    }
}

impl<V: Serialize> Serialize for Ordered<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// One v3 fuzzy set: the indicator it reads and its memberships, in file order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FuzzySetDefinition {
    /// The fuzzy set id (the key in the file): the middle part of its feature names.
    pub id: String,
    /// `indicator_id`, or `indicator_id.output` for one output of a multi-output indicator.
    pub indicator: String,
    /// Membership name → function, in file order.
    pub memberships: Vec<(String, FuzzySetSpec)>,
}

impl FuzzySetDefinition {
    /// (`indicator_id`, output) of [`Self::indicator`].
    pub fn indicator_ref(&self) -> (&str, Option<&str>) {
        match self.indicator.split_once('.') {
            Some((id, output)) => (id, Some(output)),
            None => (&self.indicator, None),
        }
    }
}

/// Timeframes of one `nn_inputs` entry: `all` (every training timeframe) or a list.
#[derive(Debug, Clone, PartialEq)]
pub enum TimeframeSelection {
    All,
    List(Vec<Timeframe>),
}

impl Serialize for TimeframeSelection {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::All => serializer.serialize_str("all"),
            Self::List(list) => list.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for TimeframeSelection {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            List(Vec<Timeframe>),
        }
        match Raw::deserialize(deserializer)
            .map_err(|_| de::Error::custom("expected \"all\" or a list of timeframes"))?
        {
            Raw::Word(w) if w == "all" => Ok(Self::All),
            Raw::Word(w) => match w.parse::<Timeframe>() {
                Ok(tf) => Ok(Self::List(vec![tf])),
                Err(_) => Err(de::Error::custom(format!(
                    "expected \"all\" or a list of timeframes, got {w:?}"
                ))),
            },
            Raw::List(list) => Ok(Self::List(list)),
        }
    }
}

/// One `nn_inputs` entry: a fuzzy set applied on some timeframes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NnInput {
    pub fuzzy_set: String,
    pub timeframes: TimeframeSelection,
}

/// A membership as written in a v3 file: full, or `[a, b, c]` for a triangle.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
enum Membership {
    Full(FuzzySetSpec),
    Triangle(Vec<f64>),
}

impl Membership {
    fn spec(self) -> FuzzySetSpec {
        match self {
            Self::Full(spec) => spec,
            Self::Triangle(parameters) => FuzzySetSpec {
                kind: FuzzySetKind::Triangular,
                parameters,
            },
        }
    }
}

/// One fuzzy set as written: `indicator` and the memberships beside it.
#[derive(Debug, Clone, Deserialize)]
struct FuzzySetV3 {
    indicator: String,
    #[serde(flatten)]
    memberships: Ordered<Membership>,
}

/// One indicator as written: `type` and its parameters.
#[derive(Debug, Clone, Deserialize)]
struct IndicatorV3 {
    #[serde(rename = "type")]
    indicator_type: String,
    #[serde(flatten)]
    params: BTreeMap<String, serde_norway::Value>,
}

/// A v3 strategy file as written.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct StrategyFileV3 {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, deserialize_with = "string_or_number")]
    version: Option<String>,
    #[serde(default)]
    hypothesis: Option<String>,
    #[serde(default)]
    scope: Option<Scope>,
    training_data: TrainingData,
    #[serde(default)]
    deployment: Option<Deployment>,
    indicators: Ordered<IndicatorV3>,
    fuzzy_sets: Ordered<FuzzySetV3>,
    /// Required; missing is reported by validation, with what to write.
    #[serde(default)]
    nn_inputs: Vec<NnInput>,
    model: ModelConfig,
    #[serde(default)]
    decisions: Option<Decisions>,
    training: TrainingConfig,
}

impl StrategyFileV3 {
    /// The one configuration type the pipeline reads.
    pub(super) fn into_config(self) -> StrategyConfig {
        StrategyConfig {
            name: self.name,
            description: self.description,
            version: self.version,
            hypothesis: self.hypothesis,
            scope: self.scope,
            training_data: self.training_data,
            deployment: self.deployment,
            indicators: self
                .indicators
                .0
                .into_iter()
                .map(|(id, i)| IndicatorSpec {
                    name: i.indicator_type.clone(),
                    indicator_type: Some(i.indicator_type),
                    feature_id: Some(id),
                    params: i.params,
                })
                .collect(),
            fuzzy_sets: BTreeMap::new(),
            fuzzy_set_definitions: self
                .fuzzy_sets
                .0
                .into_iter()
                .map(|(id, set)| FuzzySetDefinition {
                    id,
                    indicator: set.indicator,
                    memberships: set
                        .memberships
                        .0
                        .into_iter()
                        .map(|(name, m)| (name, m.spec()))
                        .collect(),
                })
                .collect(),
            nn_inputs: self.nn_inputs,
            model: self.model,
            decisions: self.decisions,
            training: self.training,
        }
    }
}

/// True when `yaml` is a v3 file: `indicators` is a map, or it has `nn_inputs`.
pub(super) fn is_v3(yaml: &serde_norway::Value) -> bool {
    yaml.get("indicators")
        .is_some_and(serde_norway::Value::is_mapping)
        || yaml.get("nn_inputs").is_some()
}

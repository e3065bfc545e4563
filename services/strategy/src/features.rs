//! Features: fuzzy memberships of the strategy's indicators, plus lags.
//!
//! # Order (what `features.json` records)
//! 1. For each timeframe, shortest (the base) first: every fuzzy column `{indicator}_{set}`
//!    sorted by name. With several timeframes every name is prefixed `{tf}_` (`4h_rsi_oversold`).
//! 2. Then, for `k = 1..=lookback_periods`, the same columns again as `{name}_lag_{k}`: the
//!    value `k` base bars earlier.
//!
//! # Time
//! A feature row belongs to a base bar and uses only what is known at that bar's **close**
//! (open time + timeframe). A higher-timeframe bar is used from the first base row whose close
//! time is at or after its own close time; before that the row sees the previous one. (The
//! original forward-filled higher-timeframe bars from their *open* time, so a 10:00 row saw that
//! day's daily close.)
//!
//! Values are memberships in [0, 1], or NaN where an indicator is still warming up, a lag
//! reaches before the data, or no higher-timeframe bar has closed yet. Rows with a NaN are
//! "incomplete" ([`FeatureMatrix::row_is_complete`]); training drops them instead of filling 0
//! as the original did.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Result, StrategyError};
use crate::fuzzy::MembershipFunction;
use crate::strategy::LoadedStrategy;
use ktrdr_market::{Bars, Timeframe};

/// Feature columns on the base timeframe's bars.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMatrix {
    pub names: Vec<String>,
    /// Base bars' open times.
    pub timestamp_ms: Vec<i64>,
    /// One column per name, each as long as `timestamp_ms`.
    pub columns: Vec<Vec<f64>>,
}

impl FeatureMatrix {
    pub fn rows(&self) -> usize {
        self.timestamp_ms.len()
    }

    /// True when no feature of row `i` is NaN.
    pub fn row_is_complete(&self, i: usize) -> bool {
        self.columns.iter().all(|c| !c[i].is_nan())
    }

    /// Row `i` as `f32`, in column order.
    pub fn row_f32(&self, i: usize) -> Vec<f32> {
        self.columns.iter().map(|c| c[i] as f32).collect()
    }
}

/// What `features.json` holds: enough to rebuild the same inputs for a saved model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// `pure_fuzzy_v1`, as the original: memberships only, no scaler.
    pub model_version: String,
    pub feature_type: String,
    /// Every feature name, in model input order.
    pub fuzzy_features: Vec<String>,
    pub feature_count: usize,
    pub timeframes: Vec<Timeframe>,
    pub base_timeframe: Timeframe,
    pub temporal_config: TemporalConfig,
    pub scaling_info: ScalingInfo,
    /// How the order is built, for humans.
    pub order: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemporalConfig {
    pub lookback_periods: usize,
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingInfo {
    pub scaled: bool,
    pub reason: String,
}

/// The base (un-lagged) fuzzy columns of one timeframe: `(name, indicator index, set)`,
/// sorted by name.
fn fuzzy_layout(strategy: &LoadedStrategy) -> Result<Vec<(String, usize, MembershipFunction)>> {
    let mut layout = Vec::new();
    for (key, sets) in &strategy.config.fuzzy_sets {
        let indicator = strategy
            .indicators
            .iter()
            .position(|d| d.id == *key)
            .ok_or_else(|| {
                StrategyError::invalid(format!("fuzzy_sets.{key}"), "names no indicator")
            })?;
        for (set_name, spec) in sets {
            let function = MembershipFunction::from_spec(
                spec,
                &format!("fuzzy_sets.{key}.{set_name}.parameters"),
            )?;
            layout.push((format!("{key}_{set_name}"), indicator, function));
        }
    }
    layout.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(layout)
}

fn prefixed(timeframes: &[Timeframe], tf: Timeframe, name: &str) -> String {
    if timeframes.len() > 1 {
        format!("{tf}_{name}")
    } else {
        name.to_owned()
    }
}

/// The feature names of `strategy`, in order, without computing anything.
pub fn feature_names(strategy: &LoadedStrategy) -> Result<Vec<String>> {
    let layout = fuzzy_layout(strategy)?;
    let timeframes = strategy.timeframes();
    let base: Vec<String> = timeframes
        .iter()
        .flat_map(|tf| {
            layout
                .iter()
                .map(|(name, _, _)| prefixed(&timeframes, *tf, name))
        })
        .collect();
    let mut names = base.clone();
    for k in 1..=strategy.config.model.features.lookback_periods {
        names.extend(base.iter().map(|n| format!("{n}_lag_{k}")));
    }
    Ok(names)
}

/// The `features.json` content for `strategy`.
pub fn feature_spec(strategy: &LoadedStrategy) -> Result<FeatureSpec> {
    let names = feature_names(strategy)?;
    let timeframes = strategy.timeframes();
    let base_timeframe = timeframes
        .first()
        .copied()
        .ok_or_else(|| StrategyError::invalid("training_data.timeframes", "no timeframe"))?;
    let lookback = strategy.config.model.features.lookback_periods;
    Ok(FeatureSpec {
        model_version: "pure_fuzzy_v1".to_owned(),
        feature_type: "fuzzy_memberships".to_owned(),
        feature_count: names.len(),
        fuzzy_features: names,
        timeframes,
        base_timeframe,
        temporal_config: TemporalConfig {
            lookback_periods: lookback,
            enabled: lookback > 0,
        },
        scaling_info: ScalingInfo {
            scaled: false,
            reason: "memberships are already in [0, 1]".to_owned(),
        },
        order: "per timeframe (shortest first) the fuzzy columns {indicator}_{set} sorted by \
                name, prefixed {tf}_ when there are several timeframes; then for k = 1..lookback \
                the same columns as {name}_lag_{k}"
            .to_owned(),
    })
}

/// For each base bar, the index of the last `higher` bar closed by the base bar's close, if any.
pub fn align_closed(
    base: &[i64],
    base_tf: Timeframe,
    higher: &[i64],
    higher_tf: Timeframe,
) -> Vec<Option<usize>> {
    let base_duration = base_tf.duration_ms();
    let higher_duration = higher_tf.duration_ms();
    let mut out = Vec::with_capacity(base.len());
    let mut next = 0; // first higher bar not yet closed
    for &open in base {
        let base_close = open + base_duration;
        while next < higher.len() && higher[next] + higher_duration <= base_close {
            next += 1;
        }
        out.push(next.checked_sub(1));
    }
    out
}

/// Computes the features of one symbol. `bars` must hold every timeframe of the strategy.
pub fn compute_features(
    strategy: &LoadedStrategy,
    bars: &BTreeMap<Timeframe, Bars>,
) -> Result<FeatureMatrix> {
    let layout = fuzzy_layout(strategy)?;
    let timeframes = strategy.timeframes();
    let base_tf = *timeframes
        .first()
        .ok_or_else(|| StrategyError::invalid("training_data.timeframes", "no timeframe"))?;
    let base_bars = bars
        .get(&base_tf)
        .ok_or_else(|| StrategyError::data(format!("no {base_tf} bars given")))?;
    base_bars.validate()?;
    let rows = base_bars.len();

    let mut names = Vec::new();
    let mut columns: Vec<Vec<f64>> = Vec::new();
    for &tf in &timeframes {
        let tf_bars = bars
            .get(&tf)
            .ok_or_else(|| StrategyError::data(format!("no {tf} bars given")))?;
        tf_bars.validate()?;
        // Each indicator once per timeframe, however many sets read it.
        let mut inputs: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        for (_, indicator, _) in &layout {
            inputs
                .entry(*indicator)
                .or_insert_with(|| strategy.indicators[*indicator].kind.feature_input(tf_bars));
        }
        let alignment = (tf != base_tf)
            .then(|| align_closed(&base_bars.timestamp_ms, base_tf, &tf_bars.timestamp_ms, tf));
        for (name, indicator, function) in &layout {
            let memberships = function.evaluate(&inputs[indicator]);
            let column = match &alignment {
                None => memberships,
                Some(map) => map
                    .iter()
                    .map(|j| j.map_or(f64::NAN, |j| memberships[j]))
                    .collect(),
            };
            names.push(prefixed(&timeframes, tf, name));
            columns.push(column);
        }
    }
    let base_count = columns.len();
    for k in 1..=strategy.config.model.features.lookback_periods {
        for c in 0..base_count {
            let lagged: Vec<f64> = (0..rows)
                .map(|i| if i >= k { columns[c][i - k] } else { f64::NAN })
                .collect();
            names.push(format!("{}_lag_{k}", names[c]));
            columns.push(lagged);
        }
    }
    Ok(FeatureMatrix {
        names,
        timestamp_ms: base_bars.timestamp_ms.clone(),
        columns,
    })
}

#[cfg(test)]
mod tests;

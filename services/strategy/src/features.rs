//! Features: fuzzy memberships of the strategy's indicators, plus lags.
//!
//! # Order (what `features.json` records)
//! 1. For each timeframe, shortest (the base) first: every fuzzy column `{indicator}_{set}`
//!    sorted by name. With several timeframes every name is prefixed `{tf}_` (`4h_rsi_oversold`).
//!    A v3 strategy orders them by its `nn_inputs` instead, named
//!    `{tf}_{fuzzy_set}_{membership}` ([`crate::strategy::v3`]).
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
use crate::strategy::{LoadedStrategy, TimeframeSelection};
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

/// One un-lagged feature column: a membership function of one indicator output on one
/// timeframe.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    timeframe: Timeframe,
    /// Index into [`LoadedStrategy::indicators`].
    indicator: usize,
    /// A named output of a multi-output indicator (v3 `indicator: id.output`); `None` reads
    /// the feature input ([`crate::indicators::IndicatorKind::feature_input`]).
    output: Option<String>,
    function: MembershipFunction,
}

/// The un-lagged columns of `strategy`, in model input order.
///
/// v2: per timeframe (shortest first), every fuzzy column `{indicator}_{set}` sorted by name,
/// prefixed `{tf}_` when there are several timeframes. v3 ([`crate::strategy::v3`]): per
/// `nn_inputs` entry, per timeframe of the entry, the memberships in file order, named
/// `{tf}_{fuzzy_set}_{membership}`.
fn layout(strategy: &LoadedStrategy) -> Result<Vec<Column>> {
    let timeframes = strategy.timeframes();
    let indicator_index = |id: &str, path: &str| {
        strategy
            .indicators
            .iter()
            .position(|d| d.id == id)
            .ok_or_else(|| StrategyError::invalid(path, "names no indicator"))
    };
    let mut columns = Vec::new();
    if strategy.is_v3() {
        for input in &strategy.config.nn_inputs {
            let set = strategy
                .config
                .fuzzy_set_definitions
                .iter()
                .find(|s| s.id == input.fuzzy_set)
                .ok_or_else(|| {
                    StrategyError::invalid("nn_inputs", format!("no fuzzy set {}", input.fuzzy_set))
                })?;
            let path = format!("fuzzy_sets.{}", set.id);
            let (id, output) = set.indicator_ref();
            let indicator = indicator_index(id, &format!("{path}.indicator"))?;
            let input_timeframes = match &input.timeframes {
                TimeframeSelection::All => timeframes.clone(),
                TimeframeSelection::List(list) => list.clone(),
            };
            for tf in input_timeframes {
                for (membership, spec) in &set.memberships {
                    columns.push(Column {
                        name: format!("{tf}_{}_{membership}", set.id),
                        timeframe: tf,
                        indicator,
                        output: output.map(str::to_owned),
                        function: MembershipFunction::from_spec(
                            spec,
                            &format!("{path}.{membership}.parameters"),
                        )?,
                    });
                }
            }
        }
        return Ok(columns);
    }
    let mut sets = Vec::new();
    for (key, named) in &strategy.config.fuzzy_sets {
        let indicator = indicator_index(key, &format!("fuzzy_sets.{key}"))?;
        for (set_name, spec) in named {
            let function = MembershipFunction::from_spec(
                spec,
                &format!("fuzzy_sets.{key}.{set_name}.parameters"),
            )?;
            sets.push((format!("{key}_{set_name}"), indicator, function));
        }
    }
    sets.sort_by(|a, b| a.0.cmp(&b.0));
    for &tf in &timeframes {
        for (name, indicator, function) in &sets {
            columns.push(Column {
                name: prefixed(&timeframes, tf, name),
                timeframe: tf,
                indicator: *indicator,
                output: None,
                function: *function,
            });
        }
    }
    Ok(columns)
}

fn prefixed(timeframes: &[Timeframe], tf: Timeframe, name: &str) -> String {
    if timeframes.len() > 1 {
        format!("{tf}_{name}")
    } else {
        name.to_owned()
    }
}

/// The series a column's membership function reads: the feature input, or the named output
/// (non-finite values as NaN).
fn column_input(strategy: &LoadedStrategy, column: &Column, bars: &Bars) -> Vec<f64> {
    let kind = &strategy.indicators[column.indicator].kind;
    match &column.output {
        None => kind.feature_input(bars),
        Some(output) => kind
            .compute(bars)
            .column(output)
            .map(|c| {
                c.iter()
                    .map(|v| if v.is_finite() { *v } else { f64::NAN })
                    .collect()
            })
            .unwrap_or_else(|| vec![f64::NAN; bars.len()]),
    }
}

/// The feature names of `strategy`, in order, without computing anything.
pub fn feature_names(strategy: &LoadedStrategy) -> Result<Vec<String>> {
    let base: Vec<String> = layout(strategy)?.into_iter().map(|c| c.name).collect();
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
        order: if strategy.is_v3() {
            "per nn_inputs entry, per timeframe of the entry, the memberships in file order, \
             named {tf}_{fuzzy_set}_{membership}; then for k = 1..lookback the same columns as \
             {name}_lag_{k}"
        } else {
            "per timeframe (shortest first) the fuzzy columns {indicator}_{set} sorted by \
             name, prefixed {tf}_ when there are several timeframes; then for k = 1..lookback \
             the same columns as {name}_lag_{k}"
        }
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

/// Bars of the probe series [`warmup_bars`] measures indicators on.
const WARMUP_PROBE_BARS: usize = 3_000;
/// Where the probe's truncated copy starts.
const WARMUP_PROBE_OFFSET: usize = 1_500;
/// The share of how a series was started that may remain after its warm-up: the seed error of
/// a recursive average (EMA, Wilder) decays geometrically, and the warm-up lasts until it is
/// below this fraction of the largest discrepancy.
pub const WARMUP_TOLERANCE: f64 = 1e-6;
/// The longest warm-up [`warmup_bars`] asks for, per series.
pub const MAX_WARMUP_BARS: usize = 1_000;

/// How many bars an indicator's series (a column's input, see [`column_input`]) needs before
/// its values stop depending on where the series starts, measured on the probe: the series on
/// a copy of the probe that starts [`WARMUP_PROBE_OFFSET`] bars later is compared with the
/// series on the whole probe; the warm-up ends where every later discrepancy is below
/// [`WARMUP_TOLERANCE`] times the largest one. A fraction of the discrepancy rather than a
/// fixed threshold, so the count does not depend on how far the probe's start happens to be
/// from its history. Window indicators (SMA, Bollinger) agree from their first value on; a
/// cumulative indicator that never forgets its start (OBV, A/D) gives its first defined bar.
fn series_warmup(series: impl Fn(&Bars) -> Vec<f64>, probe: &Bars) -> usize {
    let full = series(probe);
    let truncated = series(&probe.slice(WARMUP_PROBE_OFFSET..probe.len()));
    let first_defined = truncated
        .iter()
        .rposition(|v| v.is_nan())
        .map_or(0, |i| i + 1);
    let discrepancies: Vec<f64> = (first_defined..truncated.len())
        .map(|i| {
            let (a, b) = (truncated[i], full[WARMUP_PROBE_OFFSET + i]);
            if a.is_nan() || b.is_nan() {
                f64::INFINITY
            } else {
                (a - b).abs() / b.abs().max(1.0)
            }
        })
        .collect();
    let largest = discrepancies.iter().copied().fold(0.0, f64::max);
    // Rounding differences only: the series agrees from its first value on.
    if largest <= 1e-9 {
        return first_defined.min(MAX_WARMUP_BARS);
    }
    let warmup = match discrepancies
        .iter()
        .rposition(|&d| d > WARMUP_TOLERANCE * largest)
    {
        None => first_defined,
        // Still off at the end of the probe: it never forgets its start.
        Some(last) if last + 1 >= discrepancies.len() => first_defined,
        Some(last) => first_defined + last + 1,
    };
    warmup.min(MAX_WARMUP_BARS)
}

/// The warm-up of each timeframe of `strategy`: how many bars of it must precede the first
/// base bar whose features are wanted, so that its feature row is complete and its values do
/// not depend on how much older history is stored (see [`WARMUP_TOLERANCE`]).
///
/// Base timeframe: the slowest series read on it plus `lookback_periods` (the lags). A higher
/// timeframe: the slowest series read on it, plus one (the higher bar containing the first
/// base bar has not closed yet), plus the higher bars the lags reach back, plus one (a lag may
/// cross a higher bar's close). Series are measured on a generated price path
/// ([`crate::synthetic`]), so every indicator, present or future, is covered by the same rule.
pub fn warmup_bars(strategy: &LoadedStrategy) -> Result<BTreeMap<Timeframe, usize>> {
    let layout = layout(strategy)?;
    let timeframes = strategy.timeframes();
    let base_tf = *timeframes
        .first()
        .ok_or_else(|| StrategyError::invalid("training_data.timeframes", "no timeframe"))?;
    let probe = crate::synthetic::generate(&crate::synthetic::PathSpec {
        bars: WARMUP_PROBE_BARS,
        ..Default::default()
    });
    // Each (indicator, output) measured once.
    let mut measured: BTreeMap<(usize, Option<String>), usize> = BTreeMap::new();
    for column in &layout {
        measured
            .entry((column.indicator, column.output.clone()))
            .or_insert_with(|| series_warmup(|b| column_input(strategy, column, b), &probe));
    }
    let lookback = strategy.config.model.features.lookback_periods;
    Ok(timeframes
        .iter()
        .map(|&tf| {
            let slowest = layout
                .iter()
                .filter(|c| c.timeframe == tf)
                .map(|c| measured[&(c.indicator, c.output.clone())])
                .max()
                .unwrap_or(0);
            let bars = if tf == base_tf {
                slowest + lookback
            } else {
                let lag_span = (lookback as u64 * base_tf.duration_ms().max(0) as u64)
                    .div_ceil(tf.duration_ms().max(1) as u64)
                    as usize;
                slowest + 1 + lag_span + 1
            };
            (tf, bars)
        })
        .collect())
}

/// Computes the features of one symbol. `bars` must hold every timeframe of the strategy.
pub fn compute_features(
    strategy: &LoadedStrategy,
    bars: &BTreeMap<Timeframe, Bars>,
) -> Result<FeatureMatrix> {
    let layout = layout(strategy)?;
    let timeframes = strategy.timeframes();
    let base_tf = *timeframes
        .first()
        .ok_or_else(|| StrategyError::invalid("training_data.timeframes", "no timeframe"))?;
    let base_bars = bars
        .get(&base_tf)
        .ok_or_else(|| StrategyError::data(format!("no {base_tf} bars given")))?;
    base_bars.validate()?;
    let rows = base_bars.len();
    let mut per_tf: BTreeMap<Timeframe, &Bars> = BTreeMap::new();
    for &tf in &timeframes {
        let tf_bars = bars
            .get(&tf)
            .ok_or_else(|| StrategyError::data(format!("no {tf} bars given")))?;
        tf_bars.validate()?;
        per_tf.insert(tf, tf_bars);
    }

    // Each indicator output once per timeframe, however many columns read it, and dropped
    // after the last of them (its memory serves what is computed next); each higher timeframe
    // aligned once.
    let key = |column: &Column| (column.timeframe, column.indicator, column.output.clone());
    let mut readers: BTreeMap<(Timeframe, usize, Option<String>), usize> = BTreeMap::new();
    for column in &layout {
        *readers.entry(key(column)).or_default() += 1;
    }
    let mut inputs: BTreeMap<(Timeframe, usize, Option<String>), Vec<f64>> = BTreeMap::new();
    let mut alignments: BTreeMap<Timeframe, Vec<Option<usize>>> = BTreeMap::new();
    let mut names = Vec::with_capacity(layout.len());
    let mut columns: Vec<Vec<f64>> = Vec::with_capacity(layout.len());
    for column in &layout {
        let tf = column.timeframe;
        let tf_bars = per_tf[&tf];
        let input_key = key(column);
        let input = inputs
            .entry(input_key.clone())
            .or_insert_with(|| column_input(strategy, column, tf_bars));
        let memberships = column.function.evaluate(input);
        if let Some(left) = readers.get_mut(&input_key) {
            *left -= 1;
            if *left == 0 {
                inputs.remove(&input_key);
            }
        }
        let values = if tf == base_tf {
            memberships
        } else {
            alignments
                .entry(tf)
                .or_insert_with(|| {
                    align_closed(&base_bars.timestamp_ms, base_tf, &tf_bars.timestamp_ms, tf)
                })
                .iter()
                .map(|j| j.map_or(f64::NAN, |j| memberships[j]))
                .collect()
        };
        names.push(column.name.clone());
        columns.push(values);
    }
    let base_count = columns.len();
    for k in 1..=strategy.config.model.features.lookback_periods {
        for c in 0..base_count {
            let mut lagged = Vec::with_capacity(rows);
            lagged.resize(k.min(rows), f64::NAN);
            lagged.extend_from_slice(&columns[c][..rows.saturating_sub(k)]);
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

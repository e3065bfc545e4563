//! Training data: features and labels of every symbol, split chronologically per symbol, then
//! joined.
//!
//! For each symbol: features on all its base bars (so indicators warm up on earlier data);
//! the bars split into train / validation / test by time; **labels computed inside each part
//! only**, so a training label never looks at validation or test prices (a ZigZag segment
//! crossing the boundary would otherwise carry the future into training). Rows with an
//! incomplete feature row or no label are dropped. The parts of all symbols are then
//! concatenated in the strategy's symbol order; nothing is shuffled here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Result, StrategyError};
use crate::features::compute_features;
use crate::labels::{Label, segment_labels};
use crate::split::chronological_ranges;
use crate::strategy::LoadedStrategy;
use ktrdr_market::{Bars, Timeframe};

/// One symbol's bars, one series per timeframe.
#[derive(Debug, Clone)]
pub struct SymbolBars {
    pub symbol: String,
    pub bars: BTreeMap<Timeframe, Bars>,
}

/// Rows ready for a model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    pub feature_count: usize,
    /// Row-major, `len() * feature_count` values.
    pub x: Vec<f32>,
    pub y: Vec<Label>,
    /// Index into [`SplitDatasets::symbols`].
    pub symbol_index: Vec<u32>,
    /// Base bar open time of each row.
    pub timestamp_ms: Vec<i64>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.feature_count..(i + 1) * self.feature_count]
    }

    /// Count of each label, in [`Label::ALL`] order.
    pub fn label_counts(&self) -> [usize; 3] {
        let mut counts = [0; 3];
        for l in &self.y {
            counts[l.index()] += 1;
        }
        counts
    }

    fn append(&mut self, other: Dataset) {
        self.x.extend(other.x);
        self.y.extend(other.y);
        self.symbol_index.extend(other.symbol_index);
        self.timestamp_ms.extend(other.timestamp_ms);
    }
}

/// The three parts, all symbols joined.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitDatasets {
    pub feature_names: Vec<String>,
    pub symbols: Vec<String>,
    pub train: Dataset,
    pub validation: Dataset,
    pub test: Dataset,
    /// Per symbol, how many base bars went into each part (before dropping rows).
    pub bars_per_part: Vec<[usize; 3]>,
}

/// Builds the train / validation / test sets. `data` must hold every symbol of the strategy.
pub fn build_datasets(strategy: &LoadedStrategy, data: &[SymbolBars]) -> Result<SplitDatasets> {
    let symbols = strategy.symbols();
    let threshold = strategy.config.training.labels.zigzag_threshold;
    let split = strategy.config.training.data_split;
    let base_tf = strategy
        .base_timeframe()
        .ok_or_else(|| StrategyError::invalid("training_data.timeframes", "no timeframe"))?;
    let mut parts: [Dataset; 3] = Default::default();
    let mut feature_names = Vec::new();
    let mut bars_per_part = Vec::new();
    for (symbol_index, symbol) in symbols.iter().enumerate() {
        let symbol_bars = data
            .iter()
            .find(|d| d.symbol == *symbol)
            .ok_or_else(|| StrategyError::data(format!("no bars for symbol {symbol}")))?;
        let features = compute_features(strategy, &symbol_bars.bars)?;
        let base = symbol_bars
            .bars
            .get(&base_tf)
            .ok_or_else(|| StrategyError::data(format!("no {base_tf} bars for {symbol}")))?;
        let ranges = chronological_ranges(features.rows(), split);
        bars_per_part.push(ranges.clone().map(|r| r.len()));
        for (part, range) in parts.iter_mut().zip(ranges) {
            let labels = segment_labels(&base.close[range.clone()], threshold);
            let mut rows = Dataset {
                feature_count: features.columns.len(),
                ..Dataset::default()
            };
            for (offset, label) in labels.into_iter().enumerate() {
                let i = range.start + offset;
                if let Some(label) = label
                    && features.row_is_complete(i)
                {
                    rows.x.extend(features.row_f32(i));
                    rows.y.push(label);
                    rows.symbol_index.push(symbol_index as u32);
                    rows.timestamp_ms.push(features.timestamp_ms[i]);
                }
            }
            part.feature_count = rows.feature_count;
            part.append(rows);
        }
        feature_names = features.names;
    }
    let [train, validation, test] = parts;
    Ok(SplitDatasets {
        feature_names,
        symbols,
        train,
        validation,
        test,
        bars_per_part,
    })
}

/// Fewer labelled rows than this in the validation split make model selection (the best
/// epoch, early stopping) a matter of chance: one row more or less right moves validation
/// accuracy by over 1 %. The same number in the test split leaves its metrics as noisy.
/// Training warns below it (and refuses an empty split, see [`crate::training::train`]).
pub const MIN_SELECTION_ROWS: usize = 100;

impl SplitDatasets {
    /// `[train, validation, test]` with their names.
    pub fn parts(&self) -> [(&'static str, &Dataset); 3] {
        [
            ("train", &self.train),
            ("validation", &self.validation),
            ("test", &self.test),
        ]
    }

    /// What makes these splits unfit to select or judge a model on, as sentences saying what
    /// to change: a validation or test split under [`MIN_SELECTION_ROWS`] rows, or a split
    /// without any row of a label. Empty when the splits are fine.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, part) in self.parts() {
            if name != "train" && part.len() < MIN_SELECTION_ROWS {
                out.push(format!(
                    "the {name} split has {} labelled rows (fewer than {MIN_SELECTION_ROWS}): \
                     {} rests on chance; train on a longer range or give it a larger share \
                     in training.data_split",
                    part.len(),
                    if name == "validation" {
                        "choosing the best epoch and early stopping"
                    } else {
                        "its test metrics"
                    }
                ));
            }
            let counts = part.label_counts();
            let absent: Vec<&str> = Label::ALL
                .iter()
                .zip(counts)
                .filter(|(_, n)| *n == 0)
                .map(|(l, _)| l.name())
                .collect();
            if !part.is_empty() && !absent.is_empty() {
                out.push(format!(
                    "the {name} split has no {} rows: its accuracy says nothing about them",
                    absent.join(" or ")
                ));
            }
        }
        out
    }
}

/// Share of each label, for `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelDistribution {
    pub buy: usize,
    pub hold: usize,
    pub sell: usize,
    pub buy_pct: f64,
    pub hold_pct: f64,
    pub sell_pct: f64,
}

impl LabelDistribution {
    pub fn of(dataset: &Dataset) -> Self {
        let [buy, hold, sell] = dataset.label_counts();
        let total = (buy + hold + sell).max(1) as f64;
        Self {
            buy,
            hold,
            sell,
            buy_pct: 100.0 * buy as f64 / total,
            hold_pct: 100.0 * hold as f64 / total,
            sell_pct: 100.0 * sell as f64 / total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{PathSpec, generate};

    fn strategy(file: &str) -> LoadedStrategy {
        let path = format!("{}/../../strategies/{file}", env!("CARGO_MANIFEST_DIR"));
        LoadedStrategy::from_file(path).unwrap()
    }

    fn symbol(name: &str, seed: u64, bars: usize, s: &LoadedStrategy) -> SymbolBars {
        let base = generate(&PathSpec {
            seed,
            bars,
            ..PathSpec::default()
        });
        SymbolBars {
            symbol: name.to_owned(),
            bars: s
                .timeframes()
                .into_iter()
                .map(|tf| (tf, base.resample(tf).unwrap()))
                .collect(),
        }
    }

    #[test]
    fn multi_symbol_split_is_chronological_per_symbol_then_joined() {
        let s = strategy("momentum_multi_symbol.yaml");
        // GOOGL first in the data on purpose: the strategy's order decides the join order.
        let data = vec![
            symbol("GOOGL", 3, 1_500, &s),
            symbol("AAPL", 1, 2_000, &s),
            symbol("MSFT", 2, 1_000, &s),
        ];
        let d = build_datasets(&s, &data).unwrap();
        assert_eq!(d.symbols, vec!["AAPL", "MSFT", "GOOGL"]);
        assert_eq!(
            d.bars_per_part,
            vec![[1_400, 300, 300], [700, 150, 150], [1_050, 225, 225]]
        );
        for part in [&d.train, &d.validation, &d.test] {
            assert_eq!(part.feature_count, d.feature_names.len());
            assert_eq!(part.x.len(), part.len() * part.feature_count);
            // Symbols appear as contiguous blocks 0, 1, 2 and time increases inside each.
            assert!(part.symbol_index.windows(2).all(|w| w[0] <= w[1]));
            for w in part
                .symbol_index
                .iter()
                .zip(&part.timestamp_ms)
                .collect::<Vec<_>>()
                .windows(2)
            {
                if w[0].0 == w[1].0 {
                    assert!(w[0].1 < w[1].1);
                }
            }
            assert!(part.x.iter().all(|v| v.is_finite()));
        }
        // Per symbol, every training row is older than every validation row, which is older
        // than every test row.
        for sym in 0..3u32 {
            let times = |p: &Dataset| -> Vec<i64> {
                p.symbol_index
                    .iter()
                    .zip(&p.timestamp_ms)
                    .filter(|(s, _)| **s == sym)
                    .map(|(_, t)| *t)
                    .collect()
            };
            let (tr, va, te) = (times(&d.train), times(&d.validation), times(&d.test));
            assert!(!tr.is_empty() && !va.is_empty() && !te.is_empty());
            assert!(tr.iter().max() < va.iter().min());
            assert!(va.iter().max() < te.iter().min());
        }
        let dist = LabelDistribution::of(&d.train);
        assert_eq!(dist.buy + dist.hold + dist.sell, d.train.len());
        assert!(dist.buy > 0 && dist.sell > 0 && dist.hold > 0);
    }

    #[test]
    fn training_labels_do_not_depend_on_later_prices() {
        // Labels are computed inside each part: changing the validation and test prices
        // leaves every training row (features and label) as it was.
        let s = strategy("rsi_bollinger_single.yaml");
        let original = symbol("EURUSD", 5, 2_000, &s);
        let mut changed = original.clone();
        let bars = changed.bars.get_mut(&Timeframe::H1).unwrap();
        for i in 1_400..bars.len() {
            bars.close[i] *= if i % 2 == 0 { 1.2 } else { 0.8 };
        }
        let a = build_datasets(&s, &[original]).unwrap();
        let b = build_datasets(&s, &[changed]).unwrap();
        assert_eq!(a.train, b.train);
        assert_ne!(a.test, b.test);
    }

    #[test]
    fn a_tiny_validation_split_is_warned_about_and_a_large_one_is_not() {
        let mut s = strategy("rsi_bollinger_single.yaml");
        s.config.training.data_split = crate::strategy::DataSplit {
            train: 0.97,
            validation: 0.01,
            test: 0.02,
        };
        let d = build_datasets(&s, &[symbol("EURUSD", 5, 3_000, &s)]).unwrap();
        assert!(
            d.validation.len() < MIN_SELECTION_ROWS,
            "{}",
            d.validation.len()
        );
        let warnings = d.warnings();
        let expected = format!(
            "the validation split has {} labelled rows (fewer than {MIN_SELECTION_ROWS})",
            d.validation.len()
        );
        assert!(
            warnings.iter().any(|w| w.starts_with(&expected)),
            "{warnings:?}"
        );

        let s = strategy("rsi_bollinger_single.yaml");
        let d = build_datasets(&s, &[symbol("EURUSD", 5, 6_000, &s)]).unwrap();
        assert!(d.validation.len() >= MIN_SELECTION_ROWS);
        assert!(d.test.len() >= MIN_SELECTION_ROWS);
        assert!(
            !d.warnings().iter().any(|w| w.contains("fewer than")),
            "{:?}",
            d.warnings()
        );
    }

    #[test]
    fn missing_symbol_is_an_error() {
        let s = strategy("momentum_multi_symbol.yaml");
        let err = build_datasets(&s, &[symbol("AAPL", 1, 100, &s)]).unwrap_err();
        assert_eq!(err.to_string(), "data: no bars for symbol MSFT");
    }
}

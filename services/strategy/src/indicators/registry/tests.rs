//! Properties every indicator must have, checked on all 30 with their default parameters.

use std::collections::BTreeMap;

use super::*;
use crate::synthetic::{PathSpec, generate};

/// Every indicator with default parameters, by its canonical name.
fn all_defaults() -> Vec<(&'static str, IndicatorKind)> {
    KNOWN_NAMES
        .iter()
        .map(|name| {
            let spec = IndicatorSpec {
                name: (*name).to_owned(),
                indicator_type: None,
                feature_id: None,
                params: BTreeMap::new(),
            };
            let (def, warnings) = resolve(&spec, "indicators[0]").unwrap();
            assert!(warnings.is_empty());
            (*name, def.kind)
        })
        .collect()
}

fn first_valid(column: &[f64]) -> Option<usize> {
    column.iter().position(|v| !v.is_nan())
}

#[test]
fn thirty_distinct_indicator_types() {
    // KNOWN_NAMES lists 31 names because volume_sma is an SMA on volume.
    let mut kinds: Vec<String> = all_defaults()
        .iter()
        .map(|(_, k)| {
            format!("{k:?}")
                .split([' ', '{'])
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(kinds.len(), 30, "{kinds:?}");
}

#[test]
fn warm_up_lengths_of_the_defaults() {
    // Index of the first value, derived from each definition (see the doc comments):
    // rsi 14 changes → 14; sma/ema 20 → 19; macd slow 26 → 25; adx 2×14−1 = 27;
    // aroon needs 15 bars → 14; psar from the 2nd bar → 1; ichimoku tenkan 9 → 8;
    // supertrend ATR(10) → 10; distance SMA(20) → 19; stochastic raw 14 → 13, %K smoothed 3 → 15;
    // williams 13; cci 19; momentum/roc 10; rvi weights need 4 bars (3) + sum of 10 → 12;
    // mfi 14 TP changes → 14; fisher range of 10 → 9; atr 14 true ranges from bar 1 → 14;
    // bollinger / width 19; keltner max(EMA(20) → 19, ATR(10) → 10) = 19; donchian 19;
    // squeeze 19; obv 0; vwap 19; ad line 0; cmf 20; volume ratio: 20 bars before → 20; zigzag: wherever the first pivot is (not checked).
    let expected: BTreeMap<&str, usize> = [
        ("rsi", 14),
        ("sma", 19),
        ("volume_sma", 19),
        ("ema", 19),
        ("macd", 25),
        ("adx", 27),
        ("aroon", 14),
        ("parabolic_sar", 1),
        ("ichimoku", 8),
        ("supertrend", 10),
        ("distance_from_ma", 19),
        ("stochastic", 15),
        ("williams_r", 13),
        ("cci", 19),
        ("momentum", 10),
        ("roc", 10),
        ("rvi", 12),
        ("mfi", 14),
        ("fisher_transform", 9),
        ("atr", 14),
        ("bollinger_bands", 19),
        ("bollinger_band_width", 19),
        ("keltner_channels", 19),
        ("donchian_channels", 19),
        ("squeeze_intensity", 19),
        ("obv", 0),
        ("vwap", 19),
        ("ad_line", 0),
        ("cmf", 20),
        ("volume_ratio", 20),
    ]
    .into_iter()
    .collect();
    let bars = generate(&PathSpec {
        bars: 300,
        ..PathSpec::default()
    });
    for (name, kind) in all_defaults() {
        let out = kind.compute(&bars);
        let Some(&want) = expected.get(name) else {
            continue;
        };
        assert_eq!(first_valid(out.primary()), Some(want), "{name}");
        // Once warm, the primary output stays defined on this clean path.
        assert!(
            out.primary()[want..].iter().all(|v| v.is_finite()),
            "{name}"
        );
    }
}

#[test]
fn empty_and_single_bar_inputs() {
    let one = Bars {
        timestamp_ms: vec![0],
        open: vec![10.0],
        high: vec![11.0],
        low: vec![9.0],
        close: vec![10.5],
        volume: vec![100.0],
    };
    for (name, kind) in all_defaults() {
        let out = kind.compute(&Bars::default());
        assert!(out.columns.iter().all(|(_, c)| c.is_empty()), "{name}");
        let out = kind.compute(&one);
        for (col, values) in &out.columns {
            assert_eq!(values.len(), 1, "{name}.{col}");
            assert!(!values[0].is_infinite(), "{name}.{col}");
        }
        // Only running totals have a value on the very first bar.
        let defined = first_valid(out.primary()).is_some();
        assert_eq!(
            defined,
            matches!(name, "obv" | "ad_line"),
            "{name}: {:?}",
            out.primary()
        );
    }
    // OBV starts at the first bar's volume; the A/D line at CLV × V = ((10.5 − 9) − (11 − 10.5)) / 2 × 100 = 50.
    assert_eq!(IndicatorKind::Obv.compute(&one).primary(), &[100.0]);
    let ad = IndicatorKind::AdLine {
        use_sma_smoothing: false,
        smoothing_period: 21,
    };
    assert_eq!(ad.compute(&one).primary(), &[50.0]);
}

#[test]
fn flat_prices_and_zero_volume() {
    let n = 200;
    let flat = Bars {
        timestamp_ms: (0..n as i64).collect(),
        open: vec![50.0; n],
        high: vec![50.0; n],
        low: vec![50.0; n],
        close: vec![50.0; n],
        volume: vec![0.0; n],
    };
    // Expected steady value of the primary output on flat prices with no volume.
    let expected: BTreeMap<&str, f64> = [
        ("rsi", 50.0),
        ("sma", 50.0),
        ("volume_sma", 0.0),
        ("ema", 50.0),
        ("macd", 0.0),
        ("adx", 0.0),
        ("aroon", 100.0),
        ("parabolic_sar", 50.0),
        ("ichimoku", 50.0),
        ("supertrend", 1.0),
        ("distance_from_ma", 0.0),
        ("stochastic", 50.0),
        ("williams_r", -50.0),
        ("cci", 0.0),
        ("momentum", 0.0),
        ("roc", 0.0),
        ("rvi", 0.0),
        ("mfi", 50.0),
        ("fisher_transform", 0.0),
        ("atr", 0.0),
        ("bollinger_bands", 0.5),
        ("bollinger_band_width", 0.0),
        ("keltner_channels", 0.5),
        ("donchian_channels", 0.5),
        ("squeeze_intensity", 1.0),
        ("obv", 0.0),
        ("ad_line", 0.0),
        ("cmf", 0.0),
    ]
    .into_iter()
    .collect();
    for (name, kind) in all_defaults() {
        let out = kind.compute(&flat);
        for (col, values) in &out.columns {
            assert!(values.iter().all(|v| !v.is_infinite()), "{name}.{col}");
        }
        let last = out.primary()[n - 1];
        match expected.get(name) {
            Some(want) => assert!((last - want).abs() < 1e-9, "{name}: {last} ≠ {want}"),
            // Undefined without volume (VWAP, volume ratio) or without pivots (ZigZag).
            None => assert!(last.is_nan(), "{name}: {last}"),
        }
    }
}

#[test]
fn a_nan_bar_restarts_the_warm_up() {
    // With every field of bar 100 NaN, each indicator's output is NaN there, and on either
    // side equals the indicator computed on that side alone.
    let mut bars = generate(&PathSpec {
        bars: 300,
        ..PathSpec::default()
    });
    for column in [
        &mut bars.open,
        &mut bars.high,
        &mut bars.low,
        &mut bars.close,
        &mut bars.volume,
    ] {
        column[100] = f64::NAN;
    }
    let before = bars.slice(0..100);
    let after = bars.slice(101..300);
    for (name, kind) in all_defaults() {
        if name == "zigzag" {
            continue; // skips NaN prices instead (see labels::zigzag_pivots)
        }
        let full = kind.compute(&bars);
        let left = kind.compute(&before);
        let right = kind.compute(&after);
        for (c, (col, values)) in full.columns.iter().enumerate() {
            assert!(values[100].is_nan(), "{name}.{col}");
            let same = |a: f64, b: f64| a == b || (a.is_nan() && b.is_nan());
            assert!(
                values[..100]
                    .iter()
                    .zip(&left.columns[c].1)
                    .all(|(a, b)| same(*a, *b)),
                "{name}.{col} before"
            );
            assert!(
                values[101..]
                    .iter()
                    .zip(&right.columns[c].1)
                    .all(|(a, b)| same(*a, *b)),
                "{name}.{col} after"
            );
        }
    }
}

#[test]
fn feature_input_turns_price_levels_into_ratios() {
    let bars = generate(&PathSpec {
        bars: 100,
        ..PathSpec::default()
    });
    let sma = IndicatorKind::Sma {
        period: 5,
        source: PriceSource::Close,
    };
    let ratio = sma.feature_input(&bars);
    let level = sma.compute(&bars);
    for ((r, close), ma) in ratio.iter().zip(&bars.close).zip(level.primary()).skip(4) {
        assert!((r - close / ma).abs() < 1e-12);
    }
    // RSI stays as it is.
    let rsi = IndicatorKind::Rsi {
        period: 14,
        source: PriceSource::Close,
    };
    assert_eq!(
        format!("{:?}", rsi.feature_input(&bars)),
        format!("{:?}", rsi.compute(&bars).primary())
    );
}

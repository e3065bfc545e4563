//! Writes a seeded, deliberately awkward bar series and every registered indicator's outputs
//! on it as one JSON document on stdout, for `scripts/talib_parity.py` to compare with TA-Lib.
//!
//! `cargo run --example indicator_dump | python3 scripts/talib_parity.py` (without `-p`, so it
//! reuses the workspace build's dependencies).
//!
//! The bars (24 000 hourly bars, seed fixed) are rounded to a 0.01 tick so prices repeat and
//! typical prices tie exactly; they include flat runs (open = high = low = close, often with
//! zero volume), whole bars repeated, price gaps of 2–8 %, isolated zero-volume bars, and time
//! gaps (weekends, missing hours; indicators ignore time, the gaps are there for realism). The
//! document holds the bars and, per indicator, its strategy-file entry, its resolved kind (the
//! parameters the script passes to TA-Lib) and every output column, `null` for NaN.

use std::collections::BTreeMap;
use std::io::Write;

use ktrdr_market::Bars;
use ktrdr_strategy::indicators::{KNOWN_NAMES, resolve};
use ktrdr_strategy::strategy::IndicatorSpec;
use ktrdr_strategy::synthetic::SplitMix64;

const SEED: u64 = 20_260_214;
const BARS: usize = 24_000;
const TICK: f64 = 0.01;

/// Non-default parameter sets compared besides every indicator's defaults (strategy-file
/// syntax), so each code path with its own TA-Lib call is covered.
const VARIANTS: &str = r#"
- {name: vwap_close, type: vwap, use_typical_price: false}
- {name: ad_line_sma, type: ad_line, use_sma_smoothing: true, smoothing_period: 10}
- {name: distance_from_ema, type: distance_from_ma, ma_type: ema, period: 30}
- {name: parabolic_sar_ext, type: parabolic_sar, initial_af: 0.01, step_af: 0.03, max_af: 0.25}
- {name: rsi_hl2, type: rsi, period: 7, source: hl2}
- {name: stochastic_fast, type: stochastic, k_period: 5, d_period: 4, smooth_k: 1}
- {name: macd_fast, type: macd, fast_period: 5, slow_period: 13, signal_period: 4}
- {name: bollinger_wide, type: bollinger_bands, period: 10, std_dev: 2.5, source: hlc3}
- {name: keltner_short, type: keltner_channels, period: 10, atr_period: 14, multiplier: 1.5}
- {name: adx_short, type: adx, period: 5}
- {name: supertrend_short, type: supertrend, period: 7, multiplier: 2.0}
"#;

fn round_tick(x: f64) -> f64 {
    (x / TICK).round() * TICK
}

/// The test series. Deterministic: integer RNG, the same seed every run.
fn awkward_bars() -> Bars {
    let mut rng = SplitMix64::new(SEED);
    let mut bars = Bars::default();
    let hour = 3_600_000;
    let mut t: i64 = 1_704_067_200_000; // 2024-01-01 00:00 UTC, a Monday
    let mut close = 100.0;
    let mut flat_left = 0usize;
    let mut flat_volume = 0.0;
    while bars.len() < BARS {
        // Time: weekends are skipped, and about 1 % of hours are missing.
        t += hour;
        let day = (t / 86_400_000 + 3) % 7; // 0 = Monday
        if day >= 5 || rng.next_f64() < 0.01 {
            continue;
        }
        let (open, high, low, new_close, volume);
        if flat_left > 0 {
            flat_left -= 1;
            (open, high, low, new_close, volume) = (close, close, close, close, flat_volume);
        } else if rng.next_f64() < 0.008 {
            // A flat run of 3–60 bars, zero volume two times in three.
            flat_left = 3 + (rng.next_u64() % 58) as usize;
            flat_volume = if rng.next_u64().is_multiple_of(3) {
                (rng.next_u64() % 50) as f64
            } else {
                0.0
            };
            continue;
        } else if rng.next_f64() < 0.02 && !bars.is_empty() {
            // The previous bar again: equal typical price, equal close.
            let i = bars.len() - 1;
            (open, high, low, new_close, volume) = (
                bars.open[i],
                bars.high[i],
                bars.low[i],
                bars.close[i],
                bars.volume[i],
            );
        } else {
            let gap = if rng.next_f64() < 0.004 {
                let size = 0.02 + 0.06 * rng.next_f64();
                if rng.next_u64().is_multiple_of(2) {
                    size
                } else {
                    -size
                }
            } else {
                0.0
            };
            let o = round_tick(close * (1.0 + gap)).max(TICK);
            let c = round_tick(o * (0.004 * rng.next_normal()).exp()).max(TICK);
            let h = round_tick(o.max(c) * (1.0 + 0.002 * rng.next_normal().abs()));
            let l = round_tick(o.min(c) * (1.0 - 0.002 * rng.next_normal().abs())).max(TICK);
            let v = if rng.next_f64() < 0.03 {
                0.0
            } else {
                (1_000.0 * (0.6 * rng.next_normal()).exp()).round()
            };
            (open, high, low, new_close, volume) = (o, h, l, c, v);
        }
        close = new_close;
        bars.push(t, open, high, low, new_close, volume);
    }
    bars
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bars = awkward_bars();
    bars.validate()?;
    let mut specs: Vec<serde_json::Value> = KNOWN_NAMES
        .iter()
        .map(|name| serde_json::json!({ "name": name }))
        .collect();
    specs.extend(serde_norway::from_str::<Vec<serde_json::Value>>(VARIANTS)?);
    let mut indicators = Vec::new();
    for (i, entry) in specs.iter().enumerate() {
        let spec: IndicatorSpec = serde_json::from_value(entry.clone())?;
        let (def, warnings) = resolve(&spec, &format!("indicators[{i}]"))?;
        if let Some(w) = warnings.first() {
            return Err(format!("{}: {}", w.path, w.message).into());
        }
        let columns: BTreeMap<String, Vec<f64>> =
            def.kind.compute(&bars).columns.into_iter().collect();
        indicators.push(serde_json::json!({
            "id": def.id,
            "entry": entry,
            "kind": def.kind,
            "columns": columns,
        }));
    }
    let document = serde_json::json!({
        "seed": SEED,
        "bars": bars,
        "indicators": indicators,
    });
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    serde_json::to_writer(&mut out, &document)?;
    out.flush()?;
    Ok(())
}

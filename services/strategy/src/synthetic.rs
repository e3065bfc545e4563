//! Deterministic, seeded price paths for tests, examples and benchmarks, and ready-made
//! feature rows ([`random_rows`]) for measuring the network alone.
//!
//! The path is a geometric random walk whose drift switches between up, flat and down regimes
//! that persist for a while, so it has trends a ZigZag can label and a model can partly learn.
//! The same seed always gives the same bars, on every platform (integer RNG, no float `pow`
//! tricks that differ by libm).

use ktrdr_market::{Bars, Timeframe};

use crate::Label;
use crate::dataset::{Dataset, SplitDatasets};

/// Parameters of the generated path.
#[derive(Debug, Clone)]
pub struct PathSpec {
    pub seed: u64,
    pub bars: usize,
    pub timeframe: Timeframe,
    /// Open time of the first bar, UTC epoch ms.
    pub start_ms: i64,
    pub start_price: f64,
    /// Standard deviation of one bar's log return.
    pub volatility: f64,
    /// Absolute drift per bar during a trending regime.
    pub trend_drift: f64,
    /// Probability per bar that the regime changes.
    pub regime_switch: f64,
}

impl Default for PathSpec {
    fn default() -> Self {
        Self {
            seed: 42,
            bars: 1_000,
            timeframe: Timeframe::H1,
            // 2024-01-01 00:00 UTC.
            start_ms: 1_704_067_200_000,
            start_price: 100.0,
            volatility: 0.004,
            trend_drift: 0.0015,
            regime_switch: 0.02,
        }
    }
}

/// SplitMix64 (S. Vigna): tiny, fast and fully determined by its seed. Besides the data here it
/// draws training's batch order and dropout masks ([`crate::training`], [`crate::model`]), for
/// which its statistical quality is ample; it is no cryptographic generator.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        // 53 high bits → exactly representable.
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller; one of the pair is discarded for simplicity).
    pub fn next_normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // (0, 1], so ln is finite
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Generates `spec.bars` bars.
pub fn generate(spec: &PathSpec) -> Bars {
    let mut rng = SplitMix64::new(spec.seed);
    let n = spec.bars;
    let mut bars = Bars::with_capacity(n);
    let step = spec.timeframe.duration_ms();
    let mut price = spec.start_price;
    let mut regime: i32 = 0; // -1 down, 0 flat, 1 up
    const SUBSTEPS: usize = 4;
    for i in 0..n {
        if rng.next_f64() < spec.regime_switch {
            regime = (rng.next_u64() % 3) as i32 - 1;
        }
        let drift = f64::from(regime) * spec.trend_drift / SUBSTEPS as f64;
        let sub_vol = spec.volatility / (SUBSTEPS as f64).sqrt();
        let open = price;
        let (mut high, mut low) = (open, open);
        for _ in 0..SUBSTEPS {
            price *= (drift + sub_vol * rng.next_normal()).exp();
            high = high.max(price);
            low = low.min(price);
        }
        let volume = (1_000.0 * (1.0 + 0.5 * rng.next_normal().abs())).round();
        bars.push(
            spec.start_ms + i as i64 * step,
            open,
            high,
            low,
            price,
            volume,
        );
    }
    bars
}

/// A small deterministic generator (xorshift64*) of floats in [0, 1).
struct Rows(u64);

impl Rows {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32
    }

    /// `n` rows of `inputs` features in [0, 1), labelled by the largest of `mapping`'s three
    /// weighted sums of the centred features (so every label occurs).
    fn dataset(&mut self, n: usize, inputs: usize, mapping: &[[f32; 3]]) -> Dataset {
        let x: Vec<f32> = (0..n * inputs).map(|_| self.next()).collect();
        let y = x
            .chunks(inputs)
            .map(|row| {
                let mut sums = [0f32; 3];
                for (value, weights) in row.iter().zip(mapping) {
                    for (sum, w) in sums.iter_mut().zip(weights) {
                        *sum += (value - 0.5) * w;
                    }
                }
                let best = (0..3)
                    .max_by(|&a, &b| sums[a].total_cmp(&sums[b]))
                    .unwrap_or(1);
                [Label::Buy, Label::Hold, Label::Sell][best]
            })
            .collect();
        Dataset {
            feature_count: inputs,
            x,
            y,
            symbol_index: vec![0; n],
            timestamp_ms: (0..n as i64).collect(),
        }
    }
}

/// Train, validation and test rows of `inputs` random features with labels from one fixed
/// random linear map (learnable, every label present), for measuring training speed and
/// comparing backends without a strategy's pipeline. The same arguments give the same rows.
pub fn random_rows(inputs: usize, train_rows: usize, eval_rows: usize) -> SplitDatasets {
    let mut rows = Rows(0x9E37_79B9_7F4A_7C15);
    let mapping: Vec<[f32; 3]> = (0..inputs)
        .map(|_| [rows.next() - 0.5, rows.next() - 0.5, rows.next() - 0.5])
        .collect();
    SplitDatasets {
        feature_names: (0..inputs).map(|i| format!("f{i}")).collect(),
        symbols: vec!["EURUSD".to_owned()],
        train: rows.dataset(train_rows, inputs, &mapping),
        validation: rows.dataset(eval_rows, inputs, &mapping),
        test: rows.dataset(eval_rows, inputs, &mapping),
        bars_per_part: vec![[train_rows, eval_rows, eval_rows]],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bars_and_different_seed_differs() {
        let a = generate(&PathSpec::default());
        let b = generate(&PathSpec::default());
        assert_eq!(a, b);
        let c = generate(&PathSpec {
            seed: 7,
            ..PathSpec::default()
        });
        assert_ne!(a.close, c.close);
    }

    #[test]
    fn bars_are_consistent() {
        let b = generate(&PathSpec::default());
        b.validate().unwrap();
        for i in 0..b.len() {
            assert!(b.low[i] <= b.open[i].min(b.close[i]));
            assert!(b.high[i] >= b.open[i].max(b.close[i]));
            assert!(b.volume[i] > 0.0);
            if i > 0 {
                assert_eq!(b.open[i], b.close[i - 1]);
            }
        }
    }

    #[test]
    fn splitmix_known_first_value() {
        // First output of SplitMix64 seeded with 0 (reference implementation by S. Vigna).
        assert_eq!(SplitMix64::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn random_rows_are_seeded_and_hold_every_label() {
        let a = random_rows(6, 500, 100);
        let b = random_rows(6, 500, 100);
        assert_eq!(a.train.x, b.train.x);
        assert_eq!(a.test.y, b.test.y);
        assert_eq!(
            (a.train.len(), a.validation.len(), a.test.len()),
            (500, 100, 100)
        );
        assert_eq!(a.feature_names.len(), 6);
        assert!(
            a.train.label_counts().iter().all(|&n| n > 50),
            "{:?}",
            a.train.label_counts()
        );
        assert!(a.train.x.iter().all(|v| (0.0..1.0).contains(v)));
    }
}

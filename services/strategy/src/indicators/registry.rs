//! The indicator registry: names in strategy files → parameters → computation.

use serde::{Deserialize, Serialize};

use super::params::Params;
use super::{momentum, trend, volatility, volume};
use crate::error::Result;
use crate::spec::{ConfigWarning, IndicatorSpec};
use ktrdr_market::Bars;

/// Which price column an indicator reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceSource {
    Open,
    High,
    Low,
    Close,
    Volume,
    /// (high + low) / 2
    Hl2,
    /// (high + low + close) / 3
    Hlc3,
    /// (open + high + low + close) / 4
    Ohlc4,
}

impl PriceSource {
    const NAMES: [&'static str; 8] = [
        "open", "high", "low", "close", "volume", "hl2", "hlc3", "ohlc4",
    ];

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "open" => Self::Open,
            "high" => Self::High,
            "low" => Self::Low,
            "close" => Self::Close,
            "volume" => Self::Volume,
            "hl2" => Self::Hl2,
            "hlc3" => Self::Hlc3,
            "ohlc4" => Self::Ohlc4,
            _ => return None,
        })
    }

    /// The column for `bars` (a copy for derived prices, borrowed otherwise).
    pub fn column<'b>(self, bars: &'b Bars) -> std::borrow::Cow<'b, [f64]> {
        use std::borrow::Cow;
        let n = bars.len();
        match self {
            Self::Open => Cow::Borrowed(&bars.open),
            Self::High => Cow::Borrowed(&bars.high),
            Self::Low => Cow::Borrowed(&bars.low),
            Self::Close => Cow::Borrowed(&bars.close),
            Self::Volume => Cow::Borrowed(&bars.volume),
            Self::Hl2 => Cow::Owned((0..n).map(|i| (bars.high[i] + bars.low[i]) / 2.0).collect()),
            Self::Hlc3 => Cow::Owned(
                (0..n)
                    .map(|i| (bars.high[i] + bars.low[i] + bars.close[i]) / 3.0)
                    .collect(),
            ),
            Self::Ohlc4 => Cow::Owned(
                (0..n)
                    .map(|i| (bars.open[i] + bars.high[i] + bars.low[i] + bars.close[i]) / 4.0)
                    .collect(),
            ),
        }
    }
}

/// An indicator with its parameters resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum IndicatorKind {
    Rsi {
        period: usize,
        source: PriceSource,
    },
    Sma {
        period: usize,
        source: PriceSource,
    },
    Ema {
        period: usize,
        source: PriceSource,
    },
    Macd {
        fast_period: usize,
        slow_period: usize,
        signal_period: usize,
        source: PriceSource,
    },
    Adx {
        period: usize,
    },
    Aroon {
        period: usize,
        include_oscillator: bool,
    },
    ParabolicSar {
        initial_af: f64,
        step_af: f64,
        max_af: f64,
    },
    Ichimoku {
        tenkan_period: usize,
        kijun_period: usize,
        senkou_b_period: usize,
        displacement: usize,
    },
    SuperTrend {
        period: usize,
        multiplier: f64,
    },
    DistanceFromMa {
        period: usize,
        use_ema: bool,
        source: PriceSource,
    },
    ZigZag {
        threshold: f64,
    },
    Stochastic {
        k_period: usize,
        d_period: usize,
        smooth_k: usize,
    },
    WilliamsR {
        period: usize,
    },
    Cci {
        period: usize,
    },
    Momentum {
        period: usize,
        source: PriceSource,
    },
    Roc {
        period: usize,
        source: PriceSource,
    },
    Rvi {
        period: usize,
    },
    Mfi {
        period: usize,
    },
    FisherTransform {
        period: usize,
        smoothing: usize,
    },
    Atr {
        period: usize,
    },
    BollingerBands {
        period: usize,
        std_dev: f64,
        source: PriceSource,
    },
    BollingerBandWidth {
        period: usize,
        std_dev: f64,
        source: PriceSource,
    },
    KeltnerChannels {
        period: usize,
        atr_period: usize,
        multiplier: f64,
    },
    DonchianChannels {
        period: usize,
    },
    SqueezeIntensity {
        bb_period: usize,
        bb_std_dev: f64,
        kc_period: usize,
        kc_atr_period: usize,
        kc_multiplier: f64,
    },
    Obv,
    Vwap {
        period: usize,
        use_typical_price: bool,
    },
    AdLine {
        use_sma_smoothing: bool,
        smoothing_period: usize,
    },
    Cmf {
        period: usize,
    },
    VolumeRatio {
        period: usize,
    },
}

/// A strategy file's indicator, resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndicatorDef {
    /// The key fuzzy sets and feature names use (`feature_id`, else `name`).
    pub id: String,
    /// Its YAML path, `indicators[3]`.
    pub path: String,
    pub kind: IndicatorKind,
}

/// An indicator's computed columns; the first is the primary one, which fuzzy sets read.
#[derive(Debug, Clone, PartialEq)]
pub struct IndicatorOutput {
    pub columns: Vec<(String, Vec<f64>)>,
}

impl IndicatorOutput {
    pub fn primary(&self) -> &[f64] {
        self.columns
            .first()
            .map(|(_, c)| c.as_slice())
            .unwrap_or_default()
    }

    /// The primary column, owned (no copy).
    pub fn into_primary(self) -> Vec<f64> {
        self.columns
            .into_iter()
            .next()
            .map(|(_, c)| c)
            .unwrap_or_default()
    }

    pub fn column(&self, name: &str) -> Option<&[f64]> {
        self.columns
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.as_slice())
    }
}

/// Canonical type for a strategy file's `type` or `name`: lower-cased, `_`/`-`/spaces removed,
/// then aliases (`bbands` → `bollingerbands`, `volume_sma` → `volumesma`, …).
fn canonical_type(raw: &str) -> String {
    let compact: String = raw
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .flat_map(char::to_lowercase)
        .collect();
    let canonical = match compact.as_str() {
        "bbands" | "bollinger" | "bb" => "bollingerbands",
        "bbwidth" | "bollingerwidth" | "bollingerbandswidth" => "bollingerbandwidth",
        "stoch" | "stochasticoscillator" => "stochastic",
        "williams" | "willr" | "williamspercentr" => "williamsr",
        "psar" | "sar" => "parabolicsar",
        "supertrend" => "supertrend",
        "distancefromsma" | "distancema" | "madistance" => "distancefromma",
        "keltner" => "keltnerchannels",
        "donchian" => "donchianchannels",
        "squeeze" => "squeezeintensity",
        "fisher" => "fishertransform",
        "ad" | "adl" | "accumulationdistribution" | "accumulationdistributionline" => "adline",
        "chaikinmoneyflow" => "cmf",
        "rateofchange" => "roc",
        "mom" => "momentum",
        "relativevigorindex" => "rvi",
        "moneyflowindex" => "mfi",
        "onbalancevolume" => "obv",
        "averagetruerange" => "atr",
        "commoditychannelindex" => "cci",
        "ichimokucloud" => "ichimoku",
        other => other,
    };
    canonical.to_owned()
}

/// Resolves one `indicators[i]` entry: its type (from `type`, else `name`) and parameters.
/// Returns the definition and a warning per parameter the indicator does not know.
pub fn resolve(spec: &IndicatorSpec, path: &str) -> Result<(IndicatorDef, Vec<ConfigWarning>)> {
    use crate::error::StrategyError;
    // The original also allowed the parameters nested under `params:`.
    let mut flat = spec.params.clone();
    if let Some(serde_norway::Value::Mapping(nested)) = flat.remove("params") {
        for (k, v) in nested {
            if let Some(k) = k.as_str() {
                flat.entry(k.to_owned()).or_insert(v);
            }
        }
    }
    let p = Params::new(&flat, path);
    let type_name = spec.indicator_type.as_deref().unwrap_or(&spec.name);
    let source_default = |default: &str| -> Result<PriceSource> {
        let s = p.choice(&["source"], default, &PriceSource::NAMES)?;
        PriceSource::parse(&s)
            .ok_or_else(|| StrategyError::invalid(format!("{path}.source"), "unknown price source"))
    };
    let period = |default: usize| p.count(&["period", "window", "length"], default, 1);
    let positive = |names: &[&str], default: f64| p.number(names, default, "> 0", |v| v > 0.0);
    let canonical = canonical_type(type_name);
    let mut extra_warnings = Vec::new();
    let kind = match canonical.as_str() {
        "rsi" => IndicatorKind::Rsi {
            period: period(14)?,
            source: source_default("close")?,
        },
        "sma" => IndicatorKind::Sma {
            period: period(20)?,
            source: source_default("close")?,
        },
        "volumesma" => IndicatorKind::Sma {
            period: period(20)?,
            source: source_default("volume")?,
        },
        "ema" => IndicatorKind::Ema {
            period: period(20)?,
            source: source_default("close")?,
        },
        "macd" => {
            let fast_period = p.count(&["fast_period", "fast"], 12, 1)?;
            let slow_period = p.count(&["slow_period", "slow"], 26, 1)?;
            let signal_period = p.count(&["signal_period", "signal"], 9, 1)?;
            if fast_period >= slow_period {
                return Err(StrategyError::invalid(
                    format!("{path}.fast_period"),
                    "must be smaller than slow_period",
                ));
            }
            IndicatorKind::Macd {
                fast_period,
                slow_period,
                signal_period,
                source: source_default("close")?,
            }
        }
        "adx" => IndicatorKind::Adx {
            period: period(14)?,
        },
        "aroon" => IndicatorKind::Aroon {
            period: period(14)?,
            include_oscillator: p.boolean(&["include_oscillator"], false)?,
        },
        "parabolicsar" => {
            let initial_af = positive(&["initial_af", "af_start", "acceleration"], 0.02)?;
            let step_af = positive(&["step_af", "af_increment", "af_step", "step"], 0.02)?;
            let max_af = positive(&["max_af", "af_max", "maximum"], 0.2)?;
            if initial_af > max_af {
                return Err(StrategyError::invalid(
                    format!("{path}.max_af"),
                    "must be ≥ initial_af",
                ));
            }
            IndicatorKind::ParabolicSar {
                initial_af,
                step_af,
                max_af,
            }
        }
        "ichimoku" => IndicatorKind::Ichimoku {
            tenkan_period: p.count(&["tenkan_period", "conversion_period"], 9, 1)?,
            kijun_period: p.count(&["kijun_period", "base_period"], 26, 1)?,
            senkou_b_period: p.count(&["senkou_b_period", "span_b_period"], 52, 1)?,
            displacement: p.count(&["displacement"], 26, 0)?,
        },
        "supertrend" => IndicatorKind::SuperTrend {
            period: p.count(&["period", "atr_period"], 10, 1)?,
            multiplier: positive(&["multiplier", "factor"], 3.0)?,
        },
        "distancefromma" => IndicatorKind::DistanceFromMa {
            period: period(20)?,
            use_ema: p.choice(&["ma_type"], "sma", &["sma", "ema"])? == "ema",
            source: source_default("close")?,
        },
        "zigzag" => IndicatorKind::ZigZag {
            threshold: p.number(&["threshold"], 0.05, "in (0, 1)", |v| v > 0.0 && v < 1.0)?,
        },
        "stochastic" => IndicatorKind::Stochastic {
            k_period: p.count(&["k_period", "fastk_period", "period"], 14, 1)?,
            d_period: p.count(&["d_period", "slowd_period"], 3, 1)?,
            smooth_k: p.count(&["smooth_k", "slowk_period"], 3, 1)?,
        },
        "williamsr" => IndicatorKind::WilliamsR {
            period: period(14)?,
        },
        "cci" => IndicatorKind::Cci {
            period: period(20)?,
        },
        "momentum" => IndicatorKind::Momentum {
            period: period(10)?,
            source: source_default("close")?,
        },
        "roc" => IndicatorKind::Roc {
            period: period(10)?,
            source: source_default("close")?,
        },
        "rvi" => {
            let signal = p.count(&["signal_period"], 4, 1)?;
            if signal != 4 {
                extra_warnings.push(ConfigWarning {
                    path: format!("{path}.signal_period"),
                    message: "ignored: the standard RVI signal line is the 4-bar (1, 2, 2, 1)/6 \
                              weighted average (the original used an SMA of signal_period bars)"
                        .to_owned(),
                });
            }
            IndicatorKind::Rvi {
                period: period(10)?,
            }
        }
        "mfi" => IndicatorKind::Mfi {
            period: period(14)?,
        },
        "fishertransform" => IndicatorKind::FisherTransform {
            period: period(10)?,
            smoothing: p.count(&["smoothing"], 3, 1)?,
        },
        "atr" => IndicatorKind::Atr {
            period: period(14)?,
        },
        "bollingerbands" | "bollingerbandwidth" => {
            let period = period(20)?;
            let std_dev = positive(&["std_dev", "multiplier", "num_std", "stddev"], 2.0)?;
            let source = source_default("close")?;
            if canonical == "bollingerbands" {
                IndicatorKind::BollingerBands {
                    period,
                    std_dev,
                    source,
                }
            } else {
                IndicatorKind::BollingerBandWidth {
                    period,
                    std_dev,
                    source,
                }
            }
        }
        "keltnerchannels" => IndicatorKind::KeltnerChannels {
            period: period(20)?,
            atr_period: p.count(&["atr_period"], 10, 1)?,
            multiplier: positive(&["multiplier", "atr_multiplier"], 2.0)?,
        },
        "donchianchannels" => {
            // The middle line is always computed; the flag only existed to add a column.
            p.boolean(&["include_middle"], true)?;
            IndicatorKind::DonchianChannels {
                period: period(20)?,
            }
        }
        "squeezeintensity" => {
            // The original accepted `source`; Bollinger and Keltner both read the close here.
            p.choice(&["source"], "close", &["close"])?;
            IndicatorKind::SqueezeIntensity {
                bb_period: p.count(&["bb_period"], 20, 1)?,
                bb_std_dev: positive(&["bb_std_dev", "bb_multiplier", "bb_std"], 2.0)?,
                kc_period: p.count(&["kc_period"], 20, 1)?,
                kc_atr_period: p.count(&["kc_atr_period", "atr_period"], 10, 1)?,
                kc_multiplier: positive(&["kc_multiplier", "kc_mult"], 2.0)?,
            }
        }
        "obv" => IndicatorKind::Obv,
        "vwap" => IndicatorKind::Vwap {
            period: period(20)?,
            use_typical_price: p.boolean(&["use_typical_price"], true)?,
        },
        "adline" => IndicatorKind::AdLine {
            use_sma_smoothing: p.boolean(&["use_sma_smoothing"], false)?,
            smoothing_period: p.count(&["smoothing_period"], 21, 1)?,
        },
        "cmf" => IndicatorKind::Cmf {
            period: period(21)?,
        },
        "volumeratio" => IndicatorKind::VolumeRatio {
            period: period(20)?,
        },
        _ => {
            let field = if spec.indicator_type.is_some() {
                "type"
            } else {
                "name"
            };
            return Err(StrategyError::invalid(
                format!("{path}.{field}"),
                format!(
                    "unknown indicator {type_name:?}; known: {}",
                    KNOWN_NAMES.join(", ")
                ),
            ));
        }
    };
    if !kind.reads_source() && flat.contains_key("source") {
        // The original accepted `source` on every indicator and ignored it where an indicator
        // reads several columns; say so only when it asks for something other than the close.
        let source = p.choice(&["source"], "close", &PriceSource::NAMES)?;
        if source != "close" {
            extra_warnings.push(ConfigWarning {
                path: format!("{path}.source"),
                message: "ignored: this indicator reads high, low, close (and volume) itself"
                    .to_owned(),
            });
        }
    }
    let mut warnings = p.unused_warnings();
    warnings.extend(extra_warnings);
    Ok((
        IndicatorDef {
            id: spec.id().to_owned(),
            path: path.to_owned(),
            kind,
        },
        warnings,
    ))
}

/// The names accepted (besides aliases), for error messages.
pub const KNOWN_NAMES: [&str; 31] = [
    "rsi",
    "sma",
    "volume_sma",
    "ema",
    "macd",
    "adx",
    "aroon",
    "parabolic_sar",
    "ichimoku",
    "supertrend",
    "distance_from_ma",
    "zigzag",
    "stochastic",
    "williams_r",
    "cci",
    "momentum",
    "roc",
    "rvi",
    "mfi",
    "fisher_transform",
    "atr",
    "bollinger_bands",
    "bollinger_band_width",
    "keltner_channels",
    "donchian_channels",
    "squeeze_intensity",
    "obv",
    "vwap",
    "ad_line",
    "cmf",
    "volume_ratio",
];

impl IndicatorKind {
    /// The names of the indicator's outputs (what v3's `indicator: id.output` may name),
    /// measured on a generated price path.
    pub fn output_names(&self) -> Vec<String> {
        let probe = crate::synthetic::generate(&crate::synthetic::PathSpec {
            bars: 50,
            ..Default::default()
        });
        self.compute(&probe)
            .columns
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }

    /// Whether the indicator has a `source` parameter (reads one price column).
    pub fn reads_source(&self) -> bool {
        matches!(
            self,
            IndicatorKind::Rsi { .. }
                | IndicatorKind::Sma { .. }
                | IndicatorKind::Ema { .. }
                | IndicatorKind::Macd { .. }
                | IndicatorKind::DistanceFromMa { .. }
                | IndicatorKind::Momentum { .. }
                | IndicatorKind::Roc { .. }
                | IndicatorKind::BollingerBands { .. }
                | IndicatorKind::BollingerBandWidth { .. }
        )
    }

    /// Why this indicator cannot feed features, if it cannot.
    pub fn not_a_feature_reason(&self) -> Option<&'static str> {
        match self {
            IndicatorKind::ZigZag { .. } => Some(
                "zigzag cannot be a feature: a ZigZag pivot is only known after the price has \
                 moved `threshold` away from it, so its value at bar t uses later bars \
                 (it is used for labels, training.labels)",
            ),
            _ => None,
        }
    }

    /// Whether the primary output is a price level, which features turn into `close / value`
    /// so one fuzzy set fits every symbol and price level.
    ///
    /// The original did this for SMA and EMA only; we do it for every price-level overlay
    /// (VWAP, Parabolic SAR, Ichimoku's tenkan-sen) for the same reason. Price-unit
    /// oscillators (ATR, MACD, momentum) stay raw, as in the original.
    pub fn primary_is_price_level(&self) -> bool {
        match self {
            IndicatorKind::Sma { source, .. } | IndicatorKind::Ema { source, .. } => {
                *source != PriceSource::Volume
            }
            IndicatorKind::Vwap { .. }
            | IndicatorKind::ParabolicSar { .. }
            | IndicatorKind::Ichimoku { .. } => true,
            _ => false,
        }
    }

    /// Computes every output column on `bars`; the first is the primary one, the series fuzzy
    /// sets read:
    /// - single-output indicators: their value;
    /// - MACD: the MACD line (as the original); ADX: ADX; Stochastic: %K; RVI and Fisher:
    ///   the indicator line, not its signal; Aroon: "up", or the oscillator when
    ///   `include_oscillator` is set; SuperTrend: the direction (+1 up, −1 down);
    /// - Bollinger, Keltner, Donchian: %B, the close's position in the band (0 lower, 1 upper).
    ///   Scale-free, so one fuzzy set fits every symbol; the original's name matching found no
    ///   band column at all, so no original file depends on another choice;
    /// - Ichimoku: the tenkan-sen (read as close / tenkan by features).
    pub fn compute(&self, bars: &Bars) -> IndicatorOutput {
        let (h, l, c, v) = (
            &bars.high[..],
            &bars.low[..],
            &bars.close[..],
            &bars.volume[..],
        );
        let columns: Vec<(&str, Vec<f64>)> = match *self {
            IndicatorKind::Rsi { period, source } => {
                vec![("rsi", momentum::rsi(&source.column(bars), period))]
            }
            IndicatorKind::Sma { period, source } => {
                vec![("sma", trend::sma(&source.column(bars), period))]
            }
            IndicatorKind::Ema { period, source } => {
                vec![("ema", trend::ema(&source.column(bars), period))]
            }
            IndicatorKind::Macd {
                fast_period,
                slow_period,
                signal_period,
                source,
            } => {
                let (line, signal, hist) = trend::macd(
                    &source.column(bars),
                    fast_period,
                    slow_period,
                    signal_period,
                );
                vec![("macd", line), ("signal", signal), ("histogram", hist)]
            }
            IndicatorKind::Adx { period } => {
                let (adx, plus, minus) = trend::adx(h, l, c, period);
                vec![("adx", adx), ("plus_di", plus), ("minus_di", minus)]
            }
            IndicatorKind::Aroon {
                period,
                include_oscillator,
            } => {
                let (up, down, osc) = trend::aroon(h, l, period);
                if include_oscillator {
                    vec![("oscillator", osc), ("up", up), ("down", down)]
                } else {
                    vec![("up", up), ("down", down), ("oscillator", osc)]
                }
            }
            IndicatorKind::ParabolicSar {
                initial_af,
                step_af,
                max_af,
            } => {
                vec![(
                    "sar",
                    trend::parabolic_sar(h, l, initial_af, step_af, max_af),
                )]
            }
            IndicatorKind::Ichimoku {
                tenkan_period,
                kijun_period,
                senkou_b_period,
                displacement,
            } => {
                let [t, k, a, b] = trend::ichimoku(
                    h,
                    l,
                    tenkan_period,
                    kijun_period,
                    senkou_b_period,
                    displacement,
                );
                vec![
                    ("tenkan", t),
                    ("kijun", k),
                    ("senkou_a", a),
                    ("senkou_b", b),
                ]
            }
            IndicatorKind::SuperTrend { period, multiplier } => {
                let (line, direction) = trend::supertrend(h, l, c, period, multiplier);
                vec![("direction", direction), ("supertrend", line)]
            }
            IndicatorKind::DistanceFromMa {
                period,
                use_ema,
                source,
            } => {
                vec![(
                    "distance",
                    trend::distance_from_ma(&source.column(bars), period, use_ema),
                )]
            }
            IndicatorKind::ZigZag { threshold } => {
                let mut out = vec![f64::NAN; c.len()];
                for pivot in crate::labels::zigzag_pivots(c, threshold) {
                    out[pivot.index] = c[pivot.index];
                }
                vec![("zigzag", out)]
            }
            IndicatorKind::Stochastic {
                k_period,
                d_period,
                smooth_k,
            } => {
                let (k, d) = momentum::stochastic(h, l, c, k_period, d_period, smooth_k);
                vec![("k", k), ("d", d)]
            }
            IndicatorKind::WilliamsR { period } => {
                vec![("williams_r", momentum::williams_r(h, l, c, period))]
            }
            IndicatorKind::Cci { period } => vec![("cci", momentum::cci(h, l, c, period))],
            IndicatorKind::Momentum { period, source } => {
                vec![("momentum", momentum::momentum(&source.column(bars), period))]
            }
            IndicatorKind::Roc { period, source } => {
                vec![("roc", momentum::roc(&source.column(bars), period))]
            }
            IndicatorKind::Rvi { period } => {
                let (value, signal) = momentum::rvi(&bars.open, h, l, c, period);
                vec![("rvi", value), ("signal", signal)]
            }
            IndicatorKind::Mfi { period } => vec![("mfi", momentum::mfi(h, l, c, v, period))],
            IndicatorKind::FisherTransform { period, smoothing } => {
                let (fisher, signal) = momentum::fisher_transform(h, l, period, smoothing);
                vec![("fisher", fisher), ("signal", signal)]
            }
            IndicatorKind::Atr { period } => vec![("atr", volatility::atr(h, l, c, period))],
            IndicatorKind::BollingerBands {
                period,
                std_dev,
                source,
            } => {
                let b = volatility::bollinger(&source.column(bars), period, std_dev);
                vec![
                    ("percent_b", b.percent_b),
                    ("upper", b.upper),
                    ("middle", b.middle),
                    ("lower", b.lower),
                    ("bandwidth", b.bandwidth),
                ]
            }
            IndicatorKind::BollingerBandWidth {
                period,
                std_dev,
                source,
            } => {
                vec![(
                    "bandwidth",
                    volatility::bollinger(&source.column(bars), period, std_dev).bandwidth,
                )]
            }
            IndicatorKind::KeltnerChannels {
                period,
                atr_period,
                multiplier,
            } => {
                let b = volatility::keltner(h, l, c, period, atr_period, multiplier);
                vec![
                    ("percent_b", b.percent_b),
                    ("upper", b.upper),
                    ("middle", b.middle),
                    ("lower", b.lower),
                    ("bandwidth", b.bandwidth),
                ]
            }
            IndicatorKind::DonchianChannels { period } => {
                let b = volatility::donchian(h, l, c, period);
                vec![
                    ("percent_b", b.percent_b),
                    ("upper", b.upper),
                    ("middle", b.middle),
                    ("lower", b.lower),
                    ("bandwidth", b.bandwidth),
                ]
            }
            IndicatorKind::SqueezeIntensity {
                bb_period,
                bb_std_dev,
                kc_period,
                kc_atr_period,
                kc_multiplier,
            } => {
                vec![(
                    "intensity",
                    volatility::squeeze_intensity(
                        h,
                        l,
                        c,
                        bb_period,
                        bb_std_dev,
                        kc_period,
                        kc_atr_period,
                        kc_multiplier,
                    ),
                )]
            }
            IndicatorKind::Obv => vec![("obv", volume::obv(c, v))],
            IndicatorKind::Vwap {
                period,
                use_typical_price,
            } => vec![("vwap", volume::vwap(h, l, c, v, period, use_typical_price))],
            IndicatorKind::AdLine {
                use_sma_smoothing,
                smoothing_period,
            } => {
                vec![(
                    "ad_line",
                    volume::ad_line(h, l, c, v, use_sma_smoothing.then_some(smoothing_period)),
                )]
            }
            IndicatorKind::Cmf { period } => vec![("cmf", volume::cmf(h, l, c, v, period))],
            IndicatorKind::VolumeRatio { period } => {
                vec![("volume_ratio", volume::volume_ratio(v, period))]
            }
        };
        IndicatorOutput {
            columns: columns
                .into_iter()
                .map(|(n, c)| (n.to_owned(), c))
                .collect(),
        }
    }

    /// The series fuzzy sets read: the primary output, as `close / value` for price levels.
    /// Infinite values become NaN.
    pub fn feature_input(&self, bars: &Bars) -> Vec<f64> {
        let mut values = match *self {
            // Only %B is read: the bands themselves are not computed.
            IndicatorKind::BollingerBands {
                period,
                std_dev,
                source,
            } => volatility::bollinger_percent_b(&source.column(bars), period, std_dev),
            // Only %K is read: %D is not computed.
            IndicatorKind::Stochastic {
                k_period, smooth_k, ..
            } => momentum::stochastic_k(&bars.high, &bars.low, &bars.close, k_period, smooth_k),
            _ => self.compute(bars).into_primary(),
        };
        if self.primary_is_price_level() {
            for (v, c) in values.iter_mut().zip(&bars.close) {
                *v = if *v != 0.0 { c / *v } else { f64::NAN };
            }
        }
        for v in &mut values {
            if !v.is_finite() {
                *v = f64::NAN;
            }
        }
        values
    }
}

#[cfg(test)]
mod tests;

//! Resampling to a coarser timeframe: open = first, high = max, low = min, close = last,
//! volume = sum. IB's `-1` "no volume" markers count as 0, unless every bar of a bucket has one,
//! then the bucket keeps `-1`. A bucket is stamped with its open time ([`Timeframe::bar_start`]).
//!
//! One resampler serves the store (chunk by chunk, [`Resampler`]) and the feature pipeline
//! (whole series, [`Bars::resample`]), so both give the same bars for the same input.

use crate::bars::{Bars, BarsError};
use crate::timeframe::Timeframe;

/// Aggregates sorted bars chunk by chunk; a bucket is emitted once a later bucket starts.
#[derive(Debug)]
pub struct Resampler {
    target: Timeframe,
    current: Option<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    start: i64,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: f64,
    all_no_volume: bool,
}

impl Bucket {
    fn volume(&self) -> f64 {
        if self.all_no_volume {
            -1.0
        } else {
            self.volume
        }
    }
}

impl Resampler {
    pub fn new(target: Timeframe) -> Self {
        Self {
            target,
            current: None,
        }
    }

    /// Adds a chunk; returns the buckets it completed.
    pub fn push(&mut self, bars: &Bars) -> Bars {
        let mut done = Bars::default();
        for i in 0..bars.len() {
            let start = self.target.bar_start(bars.timestamp_ms[i]);
            let v = bars.volume[i];
            match &mut self.current {
                Some(b) if b.start == start => {
                    b.high = b.high.max(bars.high[i]);
                    b.low = b.low.min(bars.low[i]);
                    b.close = bars.close[i];
                    b.volume += v.max(0.0);
                    b.all_no_volume &= v == -1.0;
                }
                _ => {
                    if let Some(b) = self.current.take() {
                        done.push(b.start, b.open, b.high, b.low, b.close, b.volume());
                    }
                    self.current = Some(Bucket {
                        start,
                        open: bars.open[i],
                        high: bars.high[i],
                        low: bars.low[i],
                        close: bars.close[i],
                        volume: v.max(0.0),
                        all_no_volume: v == -1.0,
                    });
                }
            }
        }
        done
    }

    /// The last, possibly partial, bucket.
    pub fn finish(self) -> Bars {
        let mut done = Bars::default();
        if let Some(b) = self.current {
            done.push(b.start, b.open, b.high, b.low, b.close, b.volume());
        }
        done
    }
}

impl Bars {
    /// These bars aggregated into bars of `target`. The last bucket may be incomplete (it holds
    /// only the bars seen so far), exactly as a live feed would show it; feature alignment never
    /// uses a higher-timeframe bar before its close time.
    pub fn resample(&self, target: Timeframe) -> Result<Bars, BarsError> {
        self.validate()?;
        let mut resampler = Resampler::new(target);
        let mut out = resampler.push(self);
        out.extend(&resampler.finish());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(n: i64, first_hour: i64) -> Bars {
        let mut bars = Bars::default();
        for h in first_hour..first_hour + n {
            let p = 100.0 + h as f64;
            bars.push(h * 3_600_000, p, p + 2.0, p - 2.0, p + 1.0, 10.0);
        }
        bars
    }

    #[test]
    fn hours_become_four_hour_bars_across_chunks() {
        let hourly = hours(9, 0);
        let mut r = Resampler::new(Timeframe::H4);
        let mut out = r.push(&hourly.slice(0..3));
        out.extend(&r.push(&hourly.slice(3..9)));
        out.extend(&r.finish());
        assert_eq!(out.timestamp_ms, [0, 14_400_000, 28_800_000]);
        assert_eq!(out.open, [100.0, 104.0, 108.0]);
        assert_eq!(out.high, [105.0, 109.0, 110.0]);
        assert_eq!(out.low, [98.0, 102.0, 106.0]);
        assert_eq!(out.close, [104.0, 108.0, 109.0]);
        assert_eq!(out.volume, [40.0, 40.0, 10.0]);
        assert_eq!(hourly.resample(Timeframe::H4).unwrap(), out);
    }

    #[test]
    fn a_series_starting_mid_bucket_is_stamped_with_the_bucket_open() {
        // Five hourly bars from 02:00: buckets 00:00 (02:00, 03:00) and 04:00 (04:00..06:00).
        let r = hours(5, 2).resample(Timeframe::H4).unwrap();
        assert_eq!(r.timestamp_ms, [0, 14_400_000]);
        assert_eq!(r.open, [102.0, 104.0]);
        assert_eq!(r.close, [104.0, 107.0]);
        assert_eq!(r.volume, [20.0, 30.0]);
    }

    #[test]
    fn no_volume_markers_count_as_zero_unless_the_whole_bucket_has_none() {
        let mut bars = Bars::default();
        bars.push(0, 1.0, 1.0, 1.0, 1.0, -1.0);
        bars.push(60_000, 1.0, 1.0, 1.0, 1.0, -1.0);
        bars.push(3_600_000, 1.0, 1.0, 1.0, 1.0, -1.0);
        bars.push(3_660_000, 1.0, 1.0, 1.0, 1.0, 5.0);
        let mut r = Resampler::new(Timeframe::H1);
        let mut out = r.push(&bars);
        out.extend(&r.finish());
        assert_eq!(out.volume, [-1.0, 5.0]);
        // The whole-series path gives the same answer, never a sum of -1s.
        assert_eq!(bars.resample(Timeframe::H1).unwrap().volume, [-1.0, 5.0]);
    }

    #[test]
    fn resampling_unsorted_bars_is_an_error() {
        let mut bars = hours(3, 0);
        bars.timestamp_ms.swap(0, 1);
        assert!(bars.resample(Timeframe::H4).is_err());
    }
}

//! Resampling to a coarser timeframe: open = first, high = max, low = min, close = last,
//! volume = sum (IB's −1 "no volume" markers count as 0 unless every bar has one).

use ktrdr_common::market::Timeframe;

use crate::bars::Bars;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_become_four_hour_bars_across_chunks() {
        let mut hourly = Bars::default();
        for h in 0..9 {
            let p = 100.0 + f64::from(h);
            hourly.push(
                1_704_067_200_000 + i64::from(h) * 3_600_000,
                p,
                p + 2.0,
                p - 2.0,
                p + 1.0,
                10.0,
            );
        }
        let mut r = Resampler::new(Timeframe::H4);
        let mut out = r.push(&hourly.slice(0, 3));
        out.extend(&r.push(&hourly.slice(3, 9)));
        out.extend(&r.finish());
        assert_eq!(
            out.timestamp_ms,
            [1_704_067_200_000, 1_704_081_600_000, 1_704_096_000_000]
        );
        assert_eq!(out.open, [100.0, 104.0, 108.0]);
        assert_eq!(out.high, [105.0, 109.0, 110.0]);
        assert_eq!(out.low, [98.0, 102.0, 106.0]);
        assert_eq!(out.close, [104.0, 108.0, 109.0]);
        assert_eq!(out.volume, [40.0, 40.0, 10.0]);
    }

    #[test]
    fn no_volume_markers() {
        let mut bars = Bars::default();
        bars.push(0, 1.0, 1.0, 1.0, 1.0, -1.0);
        bars.push(60_000, 1.0, 1.0, 1.0, 1.0, -1.0);
        bars.push(3_600_000, 1.0, 1.0, 1.0, 1.0, -1.0);
        bars.push(3_660_000, 1.0, 1.0, 1.0, 1.0, 5.0);
        let mut r = Resampler::new(Timeframe::H1);
        let mut out = r.push(&bars);
        out.extend(&r.finish());
        assert_eq!(out.volume, [-1.0, 5.0]);
    }
}

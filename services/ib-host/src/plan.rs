//! Splitting a range into the fewest legal IB historical requests.
//!
//! IB allows only certain (duration, bar size) pairs (its "step sizes" table). For each ktrdr
//! timeframe the planner uses the longest legal duration, walking back from the end of the
//! range, and covers the remainder with the shortest legal duration that reaches the start.
//! Pure and unit-tested; the simulator enforces the same table independently.

use ktrdr_market::{AssetClass, Timeframe};
use time::{Date, Month, OffsetDateTime};

const DAY: i64 = 86_400;

/// IB's barSizeSetting for a ktrdr timeframe.
pub fn bar_size(tf: Timeframe) -> &'static str {
    match tf {
        Timeframe::M1 => "1 min",
        Timeframe::M5 => "5 mins",
        Timeframe::M15 => "15 mins",
        Timeframe::M30 => "30 mins",
        Timeframe::H1 => "1 hour",
        Timeframe::H4 => "4 hours",
        Timeframe::D1 => "1 day",
        Timeframe::W1 => "1 week",
    }
}

fn bar_secs(tf: Timeframe) -> i64 {
    tf.duration_ms() / 1000
}

/// An IB durationStr: a count and a unit (S, D, W, M, Y).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IbDuration {
    pub count: i64,
    pub unit: char,
}

impl IbDuration {
    pub const fn new(count: i64, unit: char) -> Self {
        Self { count, unit }
    }

    /// The durationStr as sent, e.g. "1 D".
    pub fn text(self) -> String {
        format!("{} {}", self.count, self.unit)
    }

    /// Start of the window IB serves for a request ending at `end` (unix seconds).
    pub fn start_before(self, end: i64) -> i64 {
        match self.unit {
            'S' => end - self.count,
            'D' => end - self.count * DAY,
            'W' => end - self.count * 7 * DAY,
            'M' => minus_months(end, self.count),
            _ => minus_months(end, 12 * self.count),
        }
    }

    fn nominal_secs(self) -> i64 {
        match self.unit {
            'S' => self.count,
            'D' => self.count * DAY,
            'W' => self.count * 7 * DAY,
            'M' => self.count * 30 * DAY,
            _ => self.count * 365 * DAY,
        }
    }
}

/// Whether IB accepts `duration` with bars of `tf` (IB's step-size table).
pub fn is_legal(duration: IbDuration, tf: Timeframe) -> bool {
    if duration.count < 1 || (duration.unit == 'S' && duration.count > DAY) {
        return false;
    }
    // (largest span, smallest bar, largest bar) in seconds, from IB's "Historical Data
    // Limitations" page: 60 S … 1 Y.
    const TABLE: &[(i64, i64, i64)] = &[
        (60, 1, 60),
        (120, 1, 120),
        (1_800, 1, 1_800),
        (3_600, 5, 3_600),
        (14_400, 10, 10_800),
        (28_800, 30, 28_800),
        (DAY, 60, DAY),
        (2 * DAY, 120, DAY),
        (7 * DAY, 180, 7 * DAY),
        (31 * DAY, 1_800, 30 * DAY),
    ];
    let span = duration.nominal_secs();
    let (min_bar, max_bar) = TABLE
        .iter()
        .find(|(max_span, _, _)| span <= *max_span)
        .map_or((DAY, 30 * DAY), |(_, lo, hi)| (*lo, *hi));
    (min_bar..=max_bar).contains(&bar_secs(tf))
}

/// The longest duration one request may cover for `tf`. One day of 1-minute bars is IB's
/// documented maximum (users report up to a week working, but not reliably).
pub fn max_duration(tf: Timeframe) -> IbDuration {
    match tf {
        Timeframe::M1 => IbDuration::new(1, 'D'),
        Timeframe::M5 | Timeframe::M15 => IbDuration::new(1, 'W'),
        Timeframe::M30 | Timeframe::H1 | Timeframe::H4 => IbDuration::new(1, 'M'),
        Timeframe::D1 | Timeframe::W1 => IbDuration::new(1, 'Y'),
    }
}

/// The shortest legal duration whose window, ending at `end`, reaches back to `start`.
fn covering(tf: Timeframe, start: i64, end: i64) -> IbDuration {
    let span = end - start;
    let ceil_div = |a: i64, b: i64| (a + b - 1) / b;
    let mut candidates = vec![];
    if span <= DAY {
        candidates.push(IbDuration::new(span.max(1), 'S'));
    }
    candidates.push(IbDuration::new(ceil_div(span, DAY).max(1), 'D'));
    candidates.push(IbDuration::new(ceil_div(span, 7 * DAY).max(1), 'W'));
    let mut months = 1;
    while minus_months(end, months) > start && months < 1200 {
        months += 1;
    }
    candidates.push(IbDuration::new(months, 'M'));
    candidates.push(IbDuration::new(ceil_div(months, 12).max(1), 'Y'));
    candidates
        .into_iter()
        .find(|d| is_legal(*d, tf))
        .unwrap_or_else(|| max_duration(tf))
}

/// One IB request of a plan: the part `[start, end)` of the range it covers (unix seconds)
/// and what is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub start: i64,
    pub end: i64,
    pub duration: IbDuration,
    /// IB endDateTime, `yyyymmdd-hh:mm:ss` in UTC.
    pub end_date_time: String,
}

/// The fewest legal requests covering `[start, end)` (unix seconds), in ascending time.
pub fn plan(tf: Timeframe, start: i64, end: i64) -> Vec<Segment> {
    let longest = max_duration(tf);
    let mut segments = vec![];
    let mut seg_end = end;
    // Bounded: each step moves back by at least a day (or reaches start).
    while seg_end > start && segments.len() < 100_000 {
        let full_start = longest.start_before(seg_end);
        let (seg_start, duration) = if full_start == start {
            (start, longest)
        } else if full_start < start {
            (start, covering(tf, start, seg_end))
        } else {
            (full_start, longest)
        };
        segments.push(Segment {
            start: seg_start,
            end: seg_end,
            duration,
            end_date_time: utc_dashed(seg_end),
        });
        seg_end = seg_start;
    }
    segments.reverse();
    segments
}

/// Whether `[start, end)` (unix seconds) lies wholly inside the weekend closure of an asset
/// class, so asking IB for it can only return "no data". The closures are the parts of the
/// weekend closed whatever the daylight-saving state (New York is UTC-4 or UTC-5):
/// forex Friday 22:00 to Sunday 21:00 UTC, CME futures Friday 22:00 to Sunday 22:00 UTC, stocks
/// Saturday 01:00 to Monday 08:00 UTC (04:00–20:00 New York with extended hours), and regular
/// hours only Friday 21:00 to Monday 13:30 UTC. Holidays are not skipped (IB answers them with
/// "no data", which FetchBars reports as a warning).
pub fn in_weekend_closure(class: AssetClass, use_rth: bool, start: i64, end: i64) -> bool {
    const H: i64 = 3_600;
    // (from, to) relative to Saturday 00:00 UTC.
    let (from, to) = match (class, use_rth) {
        (AssetClass::Forex, _) => (-2 * H, 45 * H),
        (AssetClass::Future, false) => (-2 * H, 46 * H),
        (AssetClass::Stock, false) => (H, 56 * H),
        (AssetClass::Stock | AssetClass::Future, true) => (-3 * H, 61 * H + 30 * 60),
    };
    let day = start.div_euclid(DAY);
    // 1970-01-01 was a Thursday: (day + 4) % 7 is 0 on Sundays, 6 on Saturdays.
    let since_saturday = (day + 4 + 1).rem_euclid(7);
    let saturday = (day - since_saturday) * DAY;
    [saturday, saturday + 7 * DAY]
        .iter()
        .any(|sat| start >= sat + from && end <= sat + to)
}

/// `yyyymmdd-hh:mm:ss` (UTC), IB's unambiguous endDateTime form.
pub fn utc_dashed(unix: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{:04}{:02}{:02}-{:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => String::new(),
    }
}

/// Calendar subtraction of `n` months, the day clamped to the month's length.
pub fn minus_months(unix: i64, n: i64) -> i64 {
    let Ok(t) = OffsetDateTime::from_unix_timestamp(unix) else {
        return unix;
    };
    let months = i64::from(t.year()) * 12 + i64::from(u8::from(t.month())) - 1 - n;
    let Ok(month) = Month::try_from((months.rem_euclid(12) + 1) as u8) else {
        return unix;
    };
    let Ok(year) = i32::try_from(months.div_euclid(12)) else {
        return unix;
    };
    let day = t.day().min(time::util::days_in_month(month, year));
    let Ok(date) = Date::from_calendar_date(year, month, day) else {
        return unix;
    };
    let secs_of_day = unix - t.date().midnight().assume_utc().unix_timestamp();
    date.midnight().assume_utc().unix_timestamp() + secs_of_day
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn ts(t: OffsetDateTime) -> i64 {
        t.unix_timestamp()
    }

    #[test]
    fn ibs_table_for_ktrdr_timeframes() {
        assert!(is_legal(IbDuration::new(1, 'D'), Timeframe::M1));
        assert!(!is_legal(IbDuration::new(2, 'D'), Timeframe::M1));
        assert!(
            !is_legal(IbDuration::new(4, 'W'), Timeframe::M1),
            "the original's 30-day bug"
        );
        assert!(is_legal(IbDuration::new(1, 'W'), Timeframe::M5));
        assert!(is_legal(IbDuration::new(1, 'M'), Timeframe::H1));
        assert!(!is_legal(IbDuration::new(2, 'M'), Timeframe::H1));
        assert!(is_legal(IbDuration::new(3, 'Y'), Timeframe::D1));
        assert!(!is_legal(IbDuration::new(60, 'S'), Timeframe::D1));
        for tf in Timeframe::ALL {
            assert!(is_legal(max_duration(tf), tf), "{tf}");
        }
    }

    #[test]
    fn two_years_of_hours_take_24_monthly_requests() {
        let start = ts(datetime!(2023-01-01 0:00 UTC));
        let end = ts(datetime!(2025-01-01 0:00 UTC));
        let p = plan(Timeframe::H1, start, end);
        assert_eq!(p.len(), 24);
        assert!(p.iter().all(|s| s.duration == IbDuration::new(1, 'M')));
        assert_eq!(p[0].start, start);
        assert_eq!(p[23].end, end);
        assert_eq!(p[23].end_date_time, "20250101-00:00:00");
        for w in p.windows(2) {
            assert_eq!(w[0].end, w[1].start, "contiguous");
        }
    }

    #[test]
    fn thirty_days_of_minutes_take_30_daily_requests_and_remainders_use_short_durations() {
        let start = ts(datetime!(2024-01-01 0:00 UTC));
        let p = plan(Timeframe::M1, start, start + 30 * DAY);
        assert_eq!(p.len(), 30);
        let p = plan(Timeframe::M1, start, start + 30 * DAY + 5 * 3600);
        assert_eq!(p.len(), 31);
        assert_eq!(p[0].duration, IbDuration::new(5 * 3600, 'S'));
        let p = plan(Timeframe::H1, start, start + 40 * DAY);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].duration.text(), "9 D");
        assert!(p.iter().all(|s| is_legal(s.duration, Timeframe::H1)));
        let p = plan(Timeframe::D1, start, start + 3 * 365 * DAY);
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn weekend_segments_are_known_closed_per_asset_class() {
        let sat = ts(datetime!(2024-03-09 0:00 UTC));
        let sun = sat + DAY;
        let fri = sat - DAY;
        // Forex: Saturday closed; Sunday opens at 21:00/22:00 UTC.
        assert!(in_weekend_closure(AssetClass::Forex, false, sat, sun));
        assert!(!in_weekend_closure(
            AssetClass::Forex,
            false,
            sun,
            sun + DAY
        ));
        assert!(!in_weekend_closure(AssetClass::Forex, false, fri, sat));
        // Stocks: all of Saturday and Sunday; with extended hours Saturday 00:00–01:00 UTC may
        // still hold Friday-evening bars in winter.
        assert!(in_weekend_closure(AssetClass::Stock, true, sat, sun));
        assert!(in_weekend_closure(AssetClass::Stock, true, sun, sun + DAY));
        assert!(!in_weekend_closure(AssetClass::Stock, false, sat, sun));
        assert!(in_weekend_closure(AssetClass::Stock, false, sun, sun + DAY));
        assert!(!in_weekend_closure(AssetClass::Stock, true, fri, sat));
        // Longer windows that span a trading day are never skipped.
        assert!(!in_weekend_closure(AssetClass::Stock, true, fri, sun + DAY));
        // Any weekday of the week works as the reference.
        let wed = ts(datetime!(2024-03-13 12:00 UTC));
        assert!(!in_weekend_closure(
            AssetClass::Forex,
            false,
            wed,
            wed + 3_600
        ));
        let next_sat = sat + 7 * DAY;
        assert!(in_weekend_closure(
            AssetClass::Future,
            false,
            next_sat,
            next_sat + DAY
        ));
    }

    #[test]
    fn every_plan_covers_its_range_with_legal_windows() {
        let start = ts(datetime!(2024-02-29 13:37:11 UTC));
        for tf in Timeframe::ALL {
            for span in [59, 3_600, DAY + 1, 9 * DAY, 45 * DAY, 400 * DAY] {
                let p = plan(tf, start, start + span);
                assert_eq!(p.first().map(|s| s.start), Some(start));
                for s in &p {
                    assert!(is_legal(s.duration, tf), "{tf} {s:?}");
                    assert!(
                        s.duration.start_before(s.end) <= s.start,
                        "{tf} {s:?} covers its part"
                    );
                }
            }
        }
    }
}

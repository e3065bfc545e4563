//! Time arithmetic on bar timestamps (UTC epoch ms) as backtesting.py does it on a pandas
//! `DatetimeIndex`: the data period (median spacing of the last 100 bars), the share of bars
//! on weekends, calendar grouping for resampled returns, and the rounding of durations up to
//! the period's resolution.

use std::ops::Range;

use ktrdr_market::{DAY_MS, HOUR_MS, MINUTE_MS};
use serde::Serialize;

const SECOND_MS: i64 = 1_000;
/// 1970-01-01 was a Thursday; the first Monday is 4 days later.
const FIRST_MONDAY_DAY: i64 = 4;
const NS_PER_MS: i128 = 1_000_000;

/// The period returns are measured over before annualising.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ReturnPeriod {
    /// Each bar's return, no resampling.
    Bar,
    /// Last equity of each UTC calendar day with bars.
    Day,
    /// Last equity of each Monday-to-Sunday week.
    Week,
    /// Last equity of each calendar month.
    Month,
    /// Last equity of each calendar year.
    Year,
}

/// The data period in nanoseconds: the median spacing of the last 100 timestamps (pandas'
/// median of the `diff()`, the mean of the two middle values for an even count).
pub(crate) fn data_period_ns(timestamps_ms: &[i64]) -> i128 {
    let tail = &timestamps_ms[timestamps_ms.len().saturating_sub(100)..];
    let mut diffs: Vec<i128> = tail
        .windows(2)
        .map(|w| (w[1] - w[0]) as i128 * NS_PER_MS)
        .collect();
    if diffs.is_empty() {
        return 0;
    }
    diffs.sort_unstable();
    let m = diffs.len() / 2;
    if diffs.len() % 2 == 1 {
        diffs[m]
    } else {
        (diffs[m - 1] + diffs[m]) / 2
    }
}

/// pandas' `Timedelta.resolution_string` as a length in ns: the smallest non-zero unit of the
/// period (1 h 30 min → minutes).
pub(crate) fn resolution_ns(period_ns: i128) -> i128 {
    const UNITS: [i128; 6] = [
        DAY_MS as i128 * NS_PER_MS,
        HOUR_MS as i128 * NS_PER_MS,
        MINUTE_MS as i128 * NS_PER_MS,
        SECOND_MS as i128 * NS_PER_MS,
        NS_PER_MS,
        1_000,
    ];
    UNITS
        .into_iter()
        .find(|unit| period_ns % unit == 0)
        .unwrap_or(1)
}

/// A duration of `total_ms / count` rounded up to `resolution_ns` (pandas' `Timedelta.ceil`),
/// in ms.
pub(crate) fn ceil_duration_ms(total_ms: i128, count: i128, resolution_ns: i128) -> i64 {
    let numerator = total_ms * NS_PER_MS;
    let step = count * resolution_ns;
    let units = numerator.div_euclid(step) + i128::from(numerator.rem_euclid(step) != 0);
    let ns = units * resolution_ns;
    (ns.div_euclid(NS_PER_MS) + i128::from(ns.rem_euclid(NS_PER_MS) != 0)) as i64
}

/// Day of the week of a day number (days since 1970-01-01), Monday = 0 (pandas' `dayofweek`).
fn day_of_week(day: i64) -> i64 {
    (day + 3).rem_euclid(7)
}

/// Runs of consecutive bars on the same UTC calendar day: (day number, index range). One
/// division per day, not per bar.
pub(crate) fn day_runs(timestamps_ms: &[i64]) -> impl Iterator<Item = (i64, Range<usize>)> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let first = *timestamps_ms.get(i)?;
        let day = first.div_euclid(DAY_MS);
        let next_day = (day + 1) * DAY_MS;
        let start = i;
        i += 1;
        while i < timestamps_ms.len() && timestamps_ms[i] < next_day {
            i += 1;
        }
        Some((day, start..i))
    })
}

/// Share of bars dated Saturday or Sunday, from the [`day_runs`] of `bars` bars.
pub(crate) fn weekend_share(days: &[(i64, Range<usize>)], bars: usize) -> f64 {
    let weekend: usize = days
        .iter()
        .filter(|(day, _)| day_of_week(*day) >= 5)
        .map(|(_, run)| run.len())
        .sum();
    weekend as f64 / bars as f64
}

/// (year, month) of a day number (Howard Hinnant's civil-from-days).
fn year_month(day: i64) -> (i64, i64) {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month)
}

/// The group a day falls in when equity is resampled to `period` (not [`ReturnPeriod::Bar`]):
/// pandas' `resample("D" | "W" | "ME" | "YE")` bins, weeks running Monday to Sunday.
pub(crate) fn group_of_day(period: ReturnPeriod, day: i64) -> i64 {
    match period {
        ReturnPeriod::Bar | ReturnPeriod::Day => day,
        ReturnPeriod::Week => (day - FIRST_MONDAY_DAY).div_euclid(7),
        ReturnPeriod::Month => {
            let (year, month) = year_month(day);
            year * 12 + month
        }
        ReturnPeriod::Year => year_month(day).0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_period_is_the_median_spacing_of_the_last_bars() {
        let hourly: Vec<i64> = (0..300).map(|i| i * HOUR_MS).collect();
        assert_eq!(data_period_ns(&hourly), HOUR_MS as i128 * NS_PER_MS);
        let uneven = [0, HOUR_MS, 3 * HOUR_MS];
        assert_eq!(data_period_ns(&uneven), 3 * HOUR_MS as i128 * NS_PER_MS / 2);
    }

    #[test]
    fn durations_round_up_to_the_smallest_unit_of_the_period() {
        let hour = HOUR_MS as i128 * NS_PER_MS;
        assert_eq!(resolution_ns(hour), hour);
        assert_eq!(
            resolution_ns(90 * MINUTE_MS as i128 * NS_PER_MS),
            60_000 * NS_PER_MS
        );
        assert_eq!(
            resolution_ns(DAY_MS as i128 * NS_PER_MS * 7),
            DAY_MS as i128 * NS_PER_MS
        );
        // 5 h over 2 = 2.5 h → 3 h at an hourly resolution; exact multiples stay.
        assert_eq!(ceil_duration_ms(5 * HOUR_MS as i128, 2, hour), 3 * HOUR_MS);
        assert_eq!(ceil_duration_ms(4 * HOUR_MS as i128, 2, hour), 2 * HOUR_MS);
    }

    #[test]
    fn calendar_groups_follow_utc_days_monday_weeks_and_months() {
        // 2024-03-03 is a Sunday, 2024-03-04 a Monday.
        let sunday_ms = 1_709_424_000_000;
        let sunday = sunday_ms / DAY_MS;
        let monday = sunday + 1;
        assert_eq!(day_of_week(sunday), 6);
        assert_eq!(day_of_week(monday), 0);
        let week = |day| group_of_day(ReturnPeriod::Week, day);
        assert_ne!(week(sunday), week(monday));
        assert_eq!(week(monday), week(monday + 6));
        assert_ne!(week(monday), week(monday + 7));
        assert_eq!(year_month(sunday), (2024, 3));
        assert_eq!(year_month(sunday - 3), (2024, 2)); // 2024-02-29
        assert_eq!(year_month(0), (1970, 1));
        let two: Vec<_> = day_runs(&[sunday_ms, sunday_ms + DAY_MS]).collect();
        assert_eq!(weekend_share(&two, 2), 0.5);
        let runs: Vec<_> = day_runs(&[0, 1, DAY_MS - 1, DAY_MS, 3 * DAY_MS]).collect();
        assert_eq!(runs, [(0, 0..3), (1, 3..4), (3, 4..5)]);
    }
}

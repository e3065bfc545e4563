//! Trading calendars: when a bar is expected to exist.
//!
//! - **US equities** (NYSE/NASDAQ regular hours): 09:30–16:00 America/New_York, Monday to
//!   Friday, minus NYSE holidays (rules from 1998, plus the unscheduled closures since 2001), with
//!   13:00 early closes on July 3, the day after Thanksgiving and December 24.
//! - **Forex** (IDEALPRO, 24/5): Sunday 17:00 to Friday 17:00 America/New_York.
//! - **CME futures** (Globex): Sunday 18:00 to Friday 17:00 America/New_York with the daily
//!   17:00–18:00 maintenance break; US equity holidays are used as the holiday list (CME's own
//!   holiday schedule differs on a few days a year — a documented approximation).
//!
//! Daily bars are expected on trading dates (the bar's UTC date), weekly bars on weeks with at
//! least one trading date.

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeZone, Timelike, Weekday};
use chrono_tz::America::New_York;
use chrono_tz::Tz;
use ktrdr_market::{AssetClass, DAY_MS, Timeframe};

/// Which calendar a symbol trades on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calendar {
    UsEquity,
    Forex,
    CmeFutures,
}

impl Calendar {
    pub fn for_symbol(symbol: &str) -> Self {
        match AssetClass::of(symbol) {
            AssetClass::Stock => Self::UsEquity,
            AssetClass::Forex => Self::Forex,
            AssetClass::Future => Self::CmeFutures,
        }
    }

    /// The name reported in `GetCoverageResponse.calendar`.
    pub fn name(self) -> &'static str {
        match self {
            Self::UsEquity => "us_equity_regular_hours",
            Self::Forex => "forex_24x5",
            Self::CmeFutures => "cme_globex",
        }
    }

    pub fn time_zone(self) -> &'static str {
        "America/New_York"
    }

    /// Whether the trading venue is closed for the whole NY-local `date` (weekend or holiday).
    pub fn is_closed_date(self, date: NaiveDate) -> bool {
        match self {
            Self::Forex => matches!(date.weekday(), Weekday::Sat),
            Self::UsEquity | Self::CmeFutures => is_weekend(date) || is_nyse_holiday(date),
        }
    }

    /// Whether a bar of `timeframe` opening at `ts_ms` is expected to exist.
    pub fn expects_bar(self, timeframe: Timeframe, ts_ms: i64) -> bool {
        match timeframe {
            Timeframe::D1 => self.is_trading_date(utc_date(ts_ms)),
            Timeframe::W1 => (0..7).any(|d| self.is_trading_date(utc_date(ts_ms + d * DAY_MS))),
            _ => self.is_open_during(ts_ms, ts_ms + timeframe.duration_ms()),
        }
    }

    /// Whether a daily bar is expected on `date`.
    fn is_trading_date(self, date: NaiveDate) -> bool {
        match self {
            Self::Forex => !is_weekend(date),
            Self::UsEquity | Self::CmeFutures => !is_weekend(date) && !is_nyse_holiday(date),
        }
    }

    /// Whether the venue is open at any moment of `[start_ms, end_ms)`. Sessions are checked
    /// on the NY-local dates the interval touches.
    fn is_open_during(self, start_ms: i64, end_ms: i64) -> bool {
        let (Some(first), Some(last)) = (ny(start_ms), ny(end_ms - 1)) else {
            return false;
        };
        let mut date = first.date_naive().pred_opt().unwrap_or(first.date_naive());
        while date <= last.date_naive() {
            for (open, close) in self.sessions(date) {
                if open < end_ms && close > start_ms {
                    return true;
                }
            }
            match date.succ_opt() {
                Some(next) => date = next,
                None => break,
            }
        }
        false
    }

    /// The open intervals (UTC ms) that start on NY-local `date`.
    fn sessions(self, date: NaiveDate) -> Vec<(i64, i64)> {
        let at = |d: NaiveDate, h: u32, m: u32| ny_ms(d, h, m);
        match self {
            Self::UsEquity => {
                if is_weekend(date) || is_nyse_holiday(date) {
                    return Vec::new();
                }
                let close = if is_nyse_early_close(date) {
                    (13, 0)
                } else {
                    (16, 0)
                };
                pair(at(date, 9, 30), at(date, close.0, close.1))
            }
            Self::Forex => match date.weekday() {
                // Sunday 17:00 to Friday 17:00: each session runs 17:00 → 17:00 next day.
                Weekday::Sun | Weekday::Mon | Weekday::Tue | Weekday::Wed | Weekday::Thu => {
                    pair(at(date, 17, 0), date.succ_opt().and_then(|n| at(n, 17, 0)))
                }
                _ => Vec::new(),
            },
            Self::CmeFutures => match date.weekday() {
                // 18:00 → 17:00 next day, Sunday to Thursday evenings, unless the next day is a holiday.
                Weekday::Sun | Weekday::Mon | Weekday::Tue | Weekday::Wed | Weekday::Thu => {
                    let next = date.succ_opt();
                    if next.is_some_and(is_nyse_holiday) {
                        Vec::new()
                    } else {
                        pair(at(date, 18, 0), next.and_then(|n| at(n, 17, 0)))
                    }
                }
                _ => Vec::new(),
            },
        }
    }
}

fn pair(open: Option<i64>, close: Option<i64>) -> Vec<(i64, i64)> {
    match (open, close) {
        (Some(o), Some(c)) => vec![(o, c)],
        _ => Vec::new(),
    }
}

fn ny(ts_ms: i64) -> Option<DateTime<Tz>> {
    DateTime::from_timestamp_millis(ts_ms).map(|t| t.with_timezone(&New_York))
}

/// The NY-local date of `ts_ms`.
pub fn ny_date(ts_ms: i64) -> Option<NaiveDate> {
    ny(ts_ms).map(|t| t.date_naive())
}

fn utc_date(ts_ms: i64) -> NaiveDate {
    DateTime::from_timestamp_millis(ts_ms)
        .map(|t| t.date_naive())
        .unwrap_or_default()
}

/// UTC ms of NY-local `date h:m` (the earlier instant when DST makes it ambiguous).
fn ny_ms(date: NaiveDate, h: u32, m: u32) -> Option<i64> {
    let local = date.and_time(NaiveTime::from_hms_opt(h, m, 0)?);
    New_York
        .from_local_datetime(&local)
        .earliest()
        .map(|t| t.timestamp_millis())
}

pub fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u8) -> Option<NaiveDate> {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n)
}

fn last_weekday(year: i32, month: u32, weekday: Weekday) -> Option<NaiveDate> {
    (1..=5)
        .rev()
        .find_map(|n| NaiveDate::from_weekday_of_month_opt(year, month, weekday, n))
}

/// Easter Sunday (Gregorian; the anonymous computus).
fn easter(year: i32) -> Option<NaiveDate> {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, u32::try_from(month).ok()?, u32::try_from(day).ok()?)
}

/// A fixed-date holiday moved to Friday when on Saturday and Monday when on Sunday.
fn observed(date: NaiveDate) -> NaiveDate {
    match date.weekday() {
        Weekday::Sat => date.pred_opt().unwrap_or(date),
        Weekday::Sun => date.succ_opt().unwrap_or(date),
        _ => date,
    }
}

/// Days the NYSE closed outside its holiday rules.
const UNSCHEDULED_CLOSURES: &[(i32, u32, u32)] = &[
    (2001, 9, 11),
    (2001, 9, 12),
    (2001, 9, 13),
    (2001, 9, 14),
    (2004, 6, 11),
    (2007, 1, 2),
    (2012, 10, 29),
    (2012, 10, 30),
    (2018, 12, 5),
    (2025, 1, 9),
];

/// Whether the NYSE is closed all day on `date` (a weekday) for a holiday.
pub fn is_nyse_holiday(date: NaiveDate) -> bool {
    let year = date.year();
    let ymd = |m, d| NaiveDate::from_ymd_opt(year, m, d);
    // New Year's Day: observed on Monday when on Sunday; not observed when on Saturday.
    let new_year = ymd(1, 1)
        .filter(|d| d.weekday() != Weekday::Sat)
        .map(observed);
    let juneteenth = (year >= 2022).then(|| ymd(6, 19).map(observed)).flatten();
    let holidays = [
        new_year,
        nth_weekday(year, 1, Weekday::Mon, 3),
        nth_weekday(year, 2, Weekday::Mon, 3),
        easter(year).and_then(|e| e.checked_sub_days(chrono::Days::new(2))),
        last_weekday(year, 5, Weekday::Mon),
        juneteenth,
        ymd(7, 4).map(observed),
        nth_weekday(year, 9, Weekday::Mon, 1),
        nth_weekday(year, 11, Weekday::Thu, 4),
        ymd(12, 25).map(observed),
    ];
    holidays.contains(&Some(date))
        || UNSCHEDULED_CLOSURES.contains(&(year, date.month(), date.day()))
}

/// Whether the NYSE closes at 13:00 on `date`.
pub fn is_nyse_early_close(date: NaiveDate) -> bool {
    if is_weekend(date) || is_nyse_holiday(date) {
        return false;
    }
    let year = date.year();
    let black_friday = nth_weekday(year, 11, Weekday::Thu, 4).and_then(|t| t.succ_opt());
    let july_3 = NaiveDate::from_ymd_opt(year, 7, 3);
    let dec_24 = NaiveDate::from_ymd_opt(year, 12, 24);
    Some(date) == black_friday || Some(date) == july_3 || Some(date) == dec_24
}

/// The NY-local hour of `ts_ms` (for messages and tests).
pub fn ny_hour(ts_ms: i64) -> Option<u32> {
    ny(ts_ms).map(|t| t.hour())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn nyse_holidays_follow_the_rules_and_observances() {
        for holiday in [
            d(2024, 1, 1),
            d(2024, 1, 15), // MLK
            d(2024, 2, 19), // Presidents
            d(2024, 3, 29), // Good Friday
            d(2024, 5, 27), // Memorial
            d(2024, 6, 19), // Juneteenth
            d(2024, 7, 4),
            d(2024, 9, 2),   // Labor
            d(2024, 11, 28), // Thanksgiving
            d(2024, 12, 25),
            d(2023, 1, 2),   // New Year on Sunday → Monday
            d(2021, 12, 24), // Christmas on Saturday → Friday
            d(2020, 7, 3),   // July 4 on Saturday → Friday
            d(2012, 10, 29), // Hurricane Sandy
            d(2025, 1, 9),   // President Carter
        ] {
            assert!(is_nyse_holiday(holiday), "{holiday}");
        }
        for open in [
            d(2024, 1, 2),
            d(2021, 12, 31),
            d(2021, 6, 18),
            d(2024, 10, 14),
        ] {
            assert!(
                !is_nyse_holiday(open),
                "{open}: New Year on Saturday, pre-2022 Juneteenth and Columbus Day are trading days"
            );
        }
        assert!(is_nyse_early_close(d(2024, 11, 29)));
        assert!(is_nyse_early_close(d(2024, 12, 24)));
        assert!(is_nyse_early_close(d(2024, 7, 3)));
        assert!(
            !is_nyse_early_close(d(2020, 7, 3)),
            "a holiday, not an early close"
        );
    }

    #[test]
    fn equity_bars_follow_regular_hours_across_dst() {
        let cal = Calendar::UsEquity;
        let h1 = Timeframe::H1;
        // 2024-01-03 (EST, UTC-5): 14:00 UTC = 09:00 NY overlaps the 09:30 open; 21:00 UTC = 16:00 is closed.
        assert!(cal.expects_bar(h1, 1_704_290_400_000));
        assert!(!cal.expects_bar(h1, 1_704_315_600_000));
        assert!(
            !cal.expects_bar(h1, 1_704_286_800_000),
            "13:00 UTC = 08:00 NY"
        );
        // 2024-07-02 (EDT, UTC-4): 13:00 UTC = 09:00 NY overlaps the open.
        assert!(cal.expects_bar(h1, 1_719_925_200_000));
        // Early close: 2024-11-29 18:00 UTC = 13:00 NY is after the close.
        assert!(!cal.expects_bar(h1, 1_732_903_200_000));
        // Saturday and a holiday.
        assert!(!cal.expects_bar(Timeframe::D1, 1_704_499_200_000)); // 2024-01-06
        assert!(!cal.expects_bar(Timeframe::D1, 1_704_067_200_000)); // 2024-01-01
        assert!(cal.expects_bar(Timeframe::D1, 1_704_153_600_000)); // 2024-01-02
    }

    #[test]
    fn forex_trades_sunday_evening_to_friday_evening() {
        let cal = Calendar::Forex;
        let h1 = Timeframe::H1;
        // 2024-01-07 is a Sunday: 21:00 UTC = 16:00 NY closed, 22:00 UTC = 17:00 NY open.
        assert!(!cal.expects_bar(h1, 1_704_661_200_000));
        assert!(cal.expects_bar(h1, 1_704_664_800_000));
        // Friday 2024-01-05 21:00 UTC = 16:00 NY open, 22:00 UTC = 17:00 closed.
        assert!(cal.expects_bar(h1, 1_704_488_400_000));
        assert!(!cal.expects_bar(h1, 1_704_492_000_000));
        // Saturday noon.
        assert!(!cal.expects_bar(h1, 1_704_542_400_000));
    }

    #[test]
    fn futures_pause_daily_from_17_to_18_new_york() {
        let cal = Calendar::CmeFutures;
        // 2024-01-03 22:00 UTC = 17:00 NY (break); 23:00 UTC = 18:00 NY (open).
        assert!(!cal.expects_bar(Timeframe::H1, 1_704_319_200_000));
        assert!(cal.expects_bar(Timeframe::H1, 1_704_322_800_000));
    }

    #[test]
    fn calendars_by_symbol() {
        assert_eq!(Calendar::for_symbol("AAPL"), Calendar::UsEquity);
        assert_eq!(Calendar::for_symbol("EURUSD"), Calendar::Forex);
        assert_eq!(Calendar::for_symbol("ES"), Calendar::CmeFutures);
    }
}
